#!/usr/bin/env python3
"""bench_jobs.py - throughput and overhead of briefd's job path, with the model simulator at
zero latency (so what is measured is briefd + Redis, not the models).

Starts redis-server, briefd-modelsim --profile zero and briefd (from BUILD, default
build/), pushes N jobs through POST /v1/jobs?wait from C concurrent clients, and prints
(and writes to bench/results.txt): jobs/s, end-to-end latency p50/p95, briefd's own
overhead per job (latency_ms.total minus the model stages) p50/p95, the refine share, and
briefd's peak RSS. Several rounds; the medians are what to quote.

usage: bench/bench_jobs.py [--jobs N] [--clients C] [--rounds R] [--build DIR]
"""
import argparse
import concurrent.futures as cf
import json
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def peak_rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def one_round(b, n, clients):
    import harness
    texts = ["Quarterly report %d. Revenue grew %d percent on strong demand in Europe. Costs "
             "were flat. The board approved a new data center. %s" %
             (i, i % 17, "Legal flagged a lawsuit." if i % 4 == 0 else "") for i in range(n)]

    def submit(t):
        t0 = time.perf_counter()
        st, job, _ = harness.request("127.0.0.1", b.port, "POST", "/v1/jobs?wait=30",
                                     {"text": t, "max_words": 60})
        return st, job, (time.perf_counter() - t0) * 1000
    t0 = time.perf_counter()
    with cf.ThreadPoolExecutor(clients) as ex:
        res = list(ex.map(submit, texts))
    wall = time.perf_counter() - t0
    ok = [r for r in res if r[0] == 200 and r[1]["status"] == "succeeded"]
    e2e = [r[2] for r in ok]
    over = []
    for _, j, _ in ok:
        lat = j["latency_ms"]
        over.append(lat["total"] - lat.get("queue", 0) - lat.get("draft", 0) - lat.get("refine", 0))
    refined = sum(1 for _, j, _ in ok if j["result"]["refined"])
    return {"ok": len(ok), "n": n, "jobs_per_s": len(ok) / wall, "e2e_p50": pct(e2e, 0.5),
            "e2e_p95": pct(e2e, 0.95), "overhead_p50": pct(over, 0.5),
            "overhead_p95": pct(over, 0.95), "refine_share": refined / max(1, len(ok))}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=400)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--build", default=os.path.join(HERE, "..", "build"))
    a = ap.parse_args()
    os.environ["BRIEFD_BIN"] = os.path.join(a.build, "briefd")
    os.environ["BRIEFD_SIM_BIN"] = os.path.join(a.build, "briefd-modelsim")
    import harness
    with tempfile.TemporaryDirectory(prefix="briefd-bench-") as tmp:
        redis = harness.Redis(tmp).start()
        sim = harness.Sim(tmp, "zero").start()
        cfg = harness.base_config(redis, sim, workers={"concurrency": 64},
                                  routing={"guards": {"max_refine_rate": None}})
        b = harness.Briefd(tmp, cfg).start()
        try:
            one_round(b, 50, a.clients)  # warm-up
            rounds = [one_round(b, a.jobs, a.clients) for _ in range(a.rounds)]
            rss = peak_rss_kb(b.proc.pid)
        finally:
            b.stop()
            sim.stop()
            redis.stop()
    med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    lines = [
        "briefd job path benchmark (%s), %d rounds of %d jobs from %d clients, simulator "
        "profile zero, one briefd process (role all), local redis-server"
        % (time.strftime("%Y-%m-%d"), a.rounds, a.jobs, a.clients),
        "  per round jobs/s: " + ", ".join("%.0f" % r["jobs_per_s"] for r in rounds),
        "  median jobs/s:             %.0f" % med["jobs_per_s"],
        "  median e2e latency p50/p95: %.1f / %.1f ms (client-measured, POST ?wait; the Python client shares the 2 cores)"
        % (med["e2e_p50"], med["e2e_p95"]),
        "  median time outside model calls and queue p50/p95: %.2f / %.2f ms per job (routing, bookkeeping)"
        % (med["overhead_p50"], med["overhead_p95"]),
        "  refine share: %.2f;  succeeded: %d of %d per round (median)"
        % (med["refine_share"], med["ok"], a.jobs),
        "  briefd peak RSS: %.1f MiB" % (rss / 1024.0),
    ]
    text = "\n".join(lines) + "\n"
    print(text, end="")
    with open(os.path.join(HERE, "results.txt"), "a") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
