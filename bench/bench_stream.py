#!/usr/bin/env python3
"""bench_stream.py - the latency a streaming client feels, with pre-routing off and on.

Starts redis-server, briefd-modelsim at its realistic profile (phi-4-mini: first token
after 80 ms, 60 tokens/s; gpt-oss-20b: 350 ms, 25 tokens/s) and briefd (from BUILD,
default build/), then streams every document of bench/data/docs.jsonl through the facade
(POST /v1/chat/completions, stream: true) from C concurrent clients, once with
routing.pre_route off and once on. Routing: the topic policy (keywords "lawsuit",
"breach"), length (draft >= 600 chars, or a document >= 20000 chars) and confidence, with
no guard. For each run it prints (and appends to bench/results.txt) the time to the first
content token and to the last token (the [DONE]), p50 and p95, for all documents and for
those routing refined; and how many drafts pre-routing skipped.

usage: bench/bench_stream.py [--clients C] [--limit N] [--build DIR]
"""
import argparse
import concurrent.futures as cf
import http.client
import json
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def stream_one(port, doc):
    """(ttft s, ttlt s, job id) of one streamed facade request."""
    body = {"model": "briefd-hybrid", "stream": True, "max_tokens": doc["max_words"] * 4 // 3,
            "messages": [{"role": "user", "content": doc["text"]}]}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    t0 = time.monotonic()
    conn.request("POST", "/v1/chat/completions", json.dumps(body),
                 {"Content-Type": "application/json"})
    r = conn.getresponse()
    first, job_id = None, None
    while True:
        line = r.readline()
        if not line:
            break
        line = line.decode().strip()
        if not line.startswith("data: "):
            continue
        if line == "data: [DONE]":
            break
        c = json.loads(line[6:])
        if "error" in c:
            raise RuntimeError(c["error"])
        if c.get("choices") and c["choices"][0]["delta"].get("content") and first is None:
            first = time.monotonic() - t0
        if c.get("briefd"):
            job_id = c["briefd"]["job_id"]
    end = time.monotonic() - t0
    conn.close()
    return first, end, job_id


def run(briefd, docs, clients):
    import harness
    with cf.ThreadPoolExecutor(clients) as ex:
        res = list(ex.map(lambda d: stream_one(briefd.port, d), docs))
    rows = []
    for first, end, job_id in res:
        st, job, _ = harness.request("127.0.0.1", briefd.port, "GET", "/v1/jobs/" + job_id)
        rows.append((first, end, job["result"]["refined"], job["route"].get("stage")))
    return rows


def summary(name, rows):
    def fig(sel):
        ft = [r[0] for r in sel]
        lt = [r[1] for r in sel]
        return "n=%d ttft p50 %.2f s p95 %.2f s, last token p50 %.2f s p95 %.2f s" % (
            len(sel), pct(ft, .5), pct(ft, .95), pct(lt, .5), pct(lt, .95))
    refined = [r for r in rows if r[2]]
    skipped = sum(1 for r in rows if r[3] == "input")
    return ["%s: all     %s" % (name, fig(rows)),
            "%s: refined %s" % (name, fig(refined)),
            "%s: drafts skipped by pre-routing: %d of %d" % (name, skipped, len(rows))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--limit", type=int, default=0, help="documents (0: all)")
    ap.add_argument("--build", default=os.path.join(HERE, "..", "build"))
    a = ap.parse_args()
    os.environ["BRIEFD_BIN"] = os.path.join(a.build, "briefd")
    os.environ["BRIEFD_SIM_BIN"] = os.path.join(a.build, "briefd-modelsim")
    import harness
    with open(os.path.join(HERE, "data", "docs.jsonl")) as f:
        docs = [json.loads(line) for line in f if line.strip()]
    if a.limit:
        docs = docs[:a.limit]
    routing = {"policies": [{"type": "topic", "keywords": ["lawsuit", "breach"]},
                            {"type": "length", "min_chars": 600, "min_input_chars": 20000},
                            {"type": "confidence"}],
               "guards": {"max_refine_rate": None}}
    lines = ["bench_stream.py %s: %d documents, %d clients, simulator realistic" %
             (time.strftime("%Y-%m-%d %H:%M"), len(docs), a.clients)]
    with tempfile.TemporaryDirectory(prefix="briefd-bench-") as tmp:
        redis = harness.Redis(tmp).start()
        sim = harness.Sim(tmp, "realistic").start()
        try:
            for pre in (False, True):
                cfg = harness.base_config(
                    redis, sim, workers={"concurrency": 64, "job_timeout_ms": 300000},
                    models={"draft": {"timeout_ms": 120000}, "refine": {"timeout_ms": 120000}},
                    routing=dict(routing, pre_route=pre))
                b = harness.Briefd(tmp, cfg, name="pre%d" % pre).start()
                try:
                    rows = run(b, docs, a.clients)
                finally:
                    b.stop()
                for line in summary("pre_route %s" % ("on" if pre else "off"), rows):
                    print(line, flush=True)
                    lines.append(line)
        finally:
            sim.stop(check=False)
            redis.stop()
    with open(os.path.join(HERE, "results.txt"), "a") as f:
        f.write("\n".join(lines) + "\n\n")


if __name__ == "__main__":
    main()
