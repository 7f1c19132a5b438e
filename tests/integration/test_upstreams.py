"""Integration: what briefd sends upstream (models.*.headers, api_key_env, auth_header) as
the simulator's request log records it, default prices, and `briefd probe` against the
simulator with each capability switched off."""
import json
import os
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BRIEFD, Stack, base_config, free_port  # noqa: E402

SHORT = ("Revenue grew 12 percent in the third quarter. Costs were flat. "
         "The board approved a new data center in Ohio.")

DRAFT, REFINE = "phi-4-mini", "gpt-oss-20b"

# secrets handed to briefd through the environment only
ENV = {
    "T_DRAFT_KEY": "sk-draft-0123456789",
    "T_REFINE_KEY": "az-refine-9876543210",
    "T_PORTKEY_KEY": "pk-secret-5555",
}

UPSTREAM_MODELS = {
    "draft": {"api_key_env": "T_DRAFT_KEY",
              "headers": {"X-Title": "briefd tests",
                          "x-portkey-provider": "openai",
                          "x-portkey-api-key": {"env": "T_PORTKEY_KEY"}}},
    "refine": {"api_key_env": "T_REFINE_KEY", "auth_header": "api-key",
               "headers": {"x-portkey-custom-host": "http://10.0.0.5:8000/v1"}},
}


def run_probe(config, tmp, env=None, json_out=True):
    path = os.path.join(tmp, "probe-%d.json" % free_port())
    with open(path, "w") as f:
        json.dump(config, f)
    e = dict(os.environ)
    e.update(env or {})
    args = [BRIEFD, "probe", "--config", path] + (["--json"] if json_out else [])
    r = subprocess.run(args, capture_output=True, text=True, timeout=120, env=e)
    return r.returncode, (json.loads(r.stdout) if json_out and r.stdout else r.stdout), r.stderr


class UpstreamHeaders(Stack):
    """Each configured header and auth mode reaches the upstream exactly as configured."""
    config_over = {"models": UPSTREAM_MODELS,
                   "routing": {"policies": [{"type": "length", "min_chars": 1}],
                               "guards": {"max_refine_rate": None}}}
    briefd_env = ENV

    def latest(self, model):
        for entry in self.sim.requests():
            if entry["model"] == model:
                return entry
        raise AssertionError("no request to %s in the simulator's log" % model)

    def check_draft_request(self, e, rid=None):
        """rid: the job's request_id, which a job's calls carry as X-Request-Id."""
        self.assertEqual(e["authorization"], {"scheme": "Bearer", "token": ENV["T_DRAFT_KEY"]})
        want = {"x-title": "briefd tests", "x-portkey-provider": "openai",
                "x-portkey-api-key": ENV["T_PORTKEY_KEY"]}
        if rid:
            want["x-request-id"] = rid
        self.assertEqual(e["headers"], want)

    def check_refine_request(self, e, rid=None):
        self.assertIsNone(e["authorization"])
        want = {"api-key": ENV["T_REFINE_KEY"], "x-portkey-custom-host": "http://10.0.0.5:8000/v1"}
        if rid:
            want["x-request-id"] = rid
        self.assertEqual(e["headers"], want)

    def test_headers_and_auth_reach_upstream(self):
        st, job, _ = self.briefd.post_job({"text": SHORT}, wait=30)
        self.assertEqual(st, 200, job)
        self.assertTrue(job["result"]["refined"], job)
        self.assertRegex(job["request_id"], r"^req_[0-9a-f]{16}$")
        self.check_draft_request(self.latest(DRAFT), job["request_id"])
        self.check_refine_request(self.latest(REFINE), job["request_id"])

    def test_upstream_requiring_them_accepts(self):
        # the simulator refuses requests without these (400/401): the job only succeeds if
        # every header and key arrived with the configured value
        self.sim.faults(models={
            DRAFT: {"require_bearer": ENV["T_DRAFT_KEY"],
                    "require_headers": {"x-title": "briefd tests",
                                        "x-portkey-api-key": ENV["T_PORTKEY_KEY"]}},
            REFINE: {"require_headers": {"api-key": ENV["T_REFINE_KEY"],
                                         "x-portkey-custom-host": None}}})
        st, job, _ = self.briefd.post_job({"text": SHORT}, wait=30)
        self.assertEqual(st, 200, job)
        self.assertEqual(job["status"], "succeeded", job)
        self.assertTrue(job["result"]["refined"], job)
        # and a requirement briefd does not meet fails the draft (a 4xx is not retried)
        self.sim.faults(models={DRAFT: {"require_headers": {"x-other": None}}})
        st, job, _ = self.briefd.post_job({"text": SHORT}, wait=30)
        self.assertEqual(job["status"], "failed", job)
        self.assertEqual(job["error"]["reason"], "http_4xx", job)

    def test_secrets_stay_out_of_config_and_logs(self):
        st, cfg, _ = self.briefd.get("/v1/config")
        self.assertEqual(st, 200)
        d = cfg["models"]["draft"]
        self.assertEqual(d["headers"]["x-portkey-api-key"], {"env": "T_PORTKEY_KEY"})
        self.assertEqual(d["headers"]["X-Title"], "briefd tests")
        self.assertEqual(cfg["models"]["refine"]["auth_header"], "api-key")
        self.assertEqual(d["api_key"], "***")
        text = json.dumps(cfg)
        self.briefd.post_job({"text": SHORT}, wait=30)
        with open(self.briefd.log, encoding="utf-8", errors="replace") as f:
            log = f.read()
        for secret in ENV.values():
            self.assertNotIn(secret, text)
            self.assertNotIn(secret, log)

    def test_probe_sends_the_same(self):
        cfg = base_config(self.redis, self.sim, models=UPSTREAM_MODELS)
        rc, out, err = run_probe(cfg, self.tmp, env=ENV)
        self.assertEqual(rc, 0, (out, err))
        self.check_draft_request(self.latest(DRAFT))
        self.check_refine_request(self.latest(REFINE))


class PooledConnections(Stack):
    """The model client keeps a pooled connection's poll between transfers (clients/curlm.c):
    a pool whose server went away must neither spin the loop nor hang the next calls."""
    config_over = {"routing": {"policies": [], "guards": {"max_refine_rate": None}},
                   "models": {"draft": {"timeout_ms": 3000, "max_attempts": 1}}}
    FACADE = {"model": "briefd-hybrid", "messages": [{"role": "user", "content": SHORT}]}

    def cpu_s(self):
        with open("/proc/%d/stat" % self.briefd.proc.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def facade_round(self, n):
        """n facade requests at once: each answered 200, with the time the slowest took."""
        out = [None] * n

        def one(i):
            t0 = time.monotonic()
            st, b, _ = self.briefd.request("POST", "/v1/chat/completions", self.FACADE)
            out[i] = (st, b, time.monotonic() - t0)
        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        for st, b, _ in out:
            self.assertEqual(st, 200, b)
        return max(o[2] for o in out)

    def warm(self):
        for _ in range(3):  # several connections, each reused (their polls kept)
            self.facade_round(4)

    def calls_go_through(self):
        for _ in range(3):
            # below the draft's 3 s timeout: no call waits on a poll that was lost
            slowest = self.facade_round(4)
            self.assertLess(slowest, 2.5)
        st, j, _ = self.briefd.post_job({"text": SHORT}, wait=10)
        self.assertEqual(st, 200, j)
        self.assertEqual(j["status"], "succeeded", j)

    def closed_by_briefd(self):
        """Connections to the simulator that this side closed (TIME_WAIT towards its port)."""
        out = set()
        for name in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                with open(name) as f:
                    rows = f.read().splitlines()[1:]
            except FileNotFoundError:
                continue
            for row in rows:
                fields = row.split()
                if fields[3] == "06" and int(fields[2].rsplit(":", 1)[1], 16) == self.sim.port:
                    out.add((fields[1], fields[2]))
        return out

    def test_pool_kept_when_the_load_dips(self):
        """Connections opened for a burst stay pooled while the load dips (libcurl's default
        pool, 4 per transfer in flight now, would close all but 4 of them), so the next
        burst opens none."""
        self.facade_round(16)
        self.facade_round(16)
        before = self.closed_by_briefd()
        for _ in range(10):
            self.facade_round(1)
        self.facade_round(16)
        closed = self.closed_by_briefd() - before
        self.assertEqual(len(closed), 0, "briefd closed %d pooled upstream connections" %
                         len(closed))

    def test_call_timed_out_on_a_pooled_connection(self):
        """curl closes the connection of a call that timed out; the next socket often gets
        its fd number, and must be watched as the new socket it is."""
        self.warm()
        self.sim.faults(rules=[self.sim.rule(hang=True, count=1)])
        st, b, _ = self.briefd.request("POST", "/v1/chat/completions", self.FACADE)
        self.assertGreaterEqual(st, 500, b)
        self.sim.faults()
        self.calls_go_through()

    def test_upstream_restarted_under_a_pool(self):
        self.warm()
        before = self.cpu_s()
        self.sim.stop()  # every pooled connection is closed under briefd
        t0 = time.monotonic()
        time.sleep(1.0)  # a window to watch: a loop spinning on a closed idle socket burns it
        used = self.cpu_s() - before
        spent = time.monotonic() - t0
        self.assertLess(used, 0.3 * spent,
                        "briefd used %.2f s of CPU in %.2f s idle" % (used, spent))
        self.sim.exit_checked = False
        self.sim.start()  # the same port
        self.calls_go_through()


class DefaultPrices(Stack):
    """With no price in the file, jobs are priced at the embedded list prices."""
    config_over = {"routing": {"policies": [{"type": "length", "min_chars": 1}],
                               "guards": {"max_refine_rate": None}}}

    def test_costs_from_default_prices(self):
        st, cfg, _ = self.briefd.get("/v1/config")
        prices = {role: cfg["models"][role]["price"] for role in ("draft", "refine")}
        for p in prices.values():
            self.assertGreater(p["input_per_mtok"], 0)
            self.assertGreater(p["output_per_mtok"], 0)
        st, job, _ = self.briefd.post_job({"text": SHORT}, wait=30)
        self.assertEqual(st, 200, job)
        for role in ("draft", "refine"):
            u, p = job["usage"][role], prices[role]
            want = (u["prompt_tokens"] * p["input_per_mtok"]
                    + u["completion_tokens"] * p["output_per_mtok"]) / 1e6
            if p["per_hour"] > 0:
                want += p["per_hour"] * u["busy_ms"] / 3.6e6
            self.assertEqual(job["cost_usd"][role], want)
            self.assertGreater(want, 0)


class Probe(Stack):
    """briefd probe against the simulator, with each capability switched off in turn."""

    def probe(self, **faults):
        self.sim.faults(**faults)
        cfg = base_config(self.redis, self.sim)
        rc, out, err = run_probe(cfg, self.tmp)
        self.assertEqual(err, "")
        return rc, {m["role"]: m for m in out["models"]}, out

    def test_everything_works(self):
        rc, m, out = self.probe()
        self.assertEqual(rc, 0)
        self.assertTrue(out["ok"])
        for role in ("draft", "refine"):
            p = m[role]
            for key in ("reachable", "listed", "logprobs", "usage", "streaming",
                        "stream_usage"):
                self.assertIs(p[key], True, (role, key, p))
            self.assertGreater(p["total_ms"], 0)
            self.assertGreaterEqual(p["ttft_ms"], 0)
            self.assertLessEqual(p["ttft_ms"], p["total_ms"])
        self.assertEqual(m["draft"]["advice"], [])
        self.assertEqual(m["refine"]["reasoning"], "reasoning_content")

    def test_no_logprobs(self):
        for knob in ("no_logprobs", "null_logprobs"):
            rc, m, _ = self.probe(models={DRAFT: {knob: True}})
            self.assertEqual(rc, 0)
            self.assertIs(m["draft"]["logprobs"], False, knob)
            self.assertIs(m["draft"]["logprobs_refused"], False)
            self.assertTrue(any("on_missing" in a for a in m["draft"]["advice"]), m["draft"])
            self.assertIs(m["refine"]["logprobs"], True)

    def test_no_stream(self):
        rc, m, _ = self.probe(models={REFINE: {"no_stream": True}})
        self.assertEqual(rc, 0)
        self.assertIs(m["refine"]["streaming"], False)
        self.assertIsNone(m["refine"]["stream_usage"])
        self.assertTrue(any("stream: false" in a for a in m["refine"]["advice"]), m["refine"])
        self.assertIs(m["draft"]["streaming"], True)

    def test_no_stream_usage(self):
        rc, m, _ = self.probe(models={DRAFT: {"no_stream_usage": True}})
        self.assertIs(m["draft"]["streaming"], True)
        self.assertIs(m["draft"]["stream_usage"], False)
        self.assertIs(m["draft"]["usage"], True)
        self.assertTrue(any("no usage" in a for a in m["draft"]["advice"]), m["draft"])

    def test_reasoning_fields(self):
        for value, want in (("reasoning", "reasoning"), ("reasoning_content", "reasoning_content"),
                            ("none", "none")):
            rc, m, _ = self.probe(models={REFINE: {"reasoning_field": value}})
            self.assertEqual(m["refine"]["reasoning"], want, value)
        rc, m, _ = self.probe(models={REFINE: {"harmony_leak": True, "reasoning_field": "none"}})
        self.assertEqual(m["refine"]["reasoning"], "harmony")
        self.assertTrue(any("harmony" in a for a in m["refine"]["advice"]))

    def test_unlisted(self):
        rc, m, _ = self.probe(models={DRAFT: {"unlisted": True}})
        self.assertEqual(rc, 0)
        self.assertIs(m["draft"]["listed"], False)
        self.assertIs(m["refine"]["listed"], True)
        self.assertTrue(any("check name" in a for a in m["draft"]["advice"]), m["draft"])

    def test_credentials_refused_is_unreachable(self):
        rc, m, out = self.probe(models={REFINE: {"require_bearer": "sk-never-sent"}})
        self.assertEqual(rc, 1)
        self.assertFalse(out["ok"])
        self.assertIs(m["refine"]["reachable"], False)
        self.assertEqual(m["refine"]["http_status"], 401)
        self.assertTrue(any("credentials" in a for a in m["refine"]["advice"]))
        self.assertIs(m["draft"]["reachable"], True)

    def test_unreachable_exits_1_and_text_report(self):
        cfg = base_config(self.redis, self.sim)
        cfg["models"]["draft"]["base_url"] = "http://127.0.0.1:%d/v1" % free_port()
        rc, out, _ = run_probe(cfg, self.tmp)
        self.assertEqual(rc, 1)
        m = {x["role"]: x for x in out["models"]}
        self.assertIs(m["draft"]["reachable"], False)
        self.assertIn("connect", m["draft"]["error"])
        rc, text, _ = run_probe(cfg, self.tmp, json_out=False)
        self.assertEqual(rc, 1)
        self.assertIn("draft model phi-4-mini", text)
        self.assertIn("reachable     no", text)
        self.assertIn("probe: a model did not answer (exit 1)", text)


if __name__ == "__main__":
    unittest.main()
