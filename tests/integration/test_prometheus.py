"""Integration: GET /metrics (docs/METRICS.md) - the per-process series (build info, Redis
up, circuit breakers, process_*) that answer while Redis is down, the cluster-wide series
that come back with it, zero series for every configured model, `promtool check metrics`
on each, and the Grafana dashboard checked (deploy/grafana/check.sh) against a capture from
a default run."""
import json
import os
import re
import shutil
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BRIEFD, ROOT, Stack, eventually, free_port  # noqa: E402

SHORT = ("Revenue grew 12 percent in the third quarter. Costs were flat. "
         "The board approved a new data center in Ohio.")
CHECK_SH = os.path.join(ROOT, "deploy", "grafana", "check.sh")
DASHBOARD = os.path.join(ROOT, "deploy", "grafana", "briefd-dashboard.json")


def promtool_ok(test, text):
    promtool = shutil.which("promtool")
    test.assertIsNotNone(promtool, "promtool (package prometheus) is needed: deploy/setup.sh")
    r = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True)
    test.assertEqual(r.returncode, 0, (r.stdout + r.stderr).decode() + "\n" + text[-3000:])


def sample(text, name, **labels):
    """The value of the series name{labels...} (labels given must match; others may exist),
    or None."""
    for line in text.splitlines():
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        have = dict(re.findall(r'([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            return float(m.group(3))
    return None


class MetricsWithoutRedis(Stack):
    appendonly = True     # the counters survive the Redis restart below
    config_over = {"models": {"draft": {"fallbacks": [
        {"base_url": "http://127.0.0.1:%d/v1" % free_port(), "name": "phi-backup"}]}}}

    def metrics(self):
        st, text, h = self.briefd.get("/metrics")
        self.assertEqual(st, 200, text)
        self.assertTrue(h["content-type"].startswith("text/plain; version=0.0.4"))
        return text.decode()

    def test_metrics_while_redis_is_down_and_after(self):
        for i in range(2):
            st, job, _ = self.briefd.post_job({"text": SHORT + " %d" % i}, wait=30)
            self.assertEqual(st, 200, job)
        up = eventually(self.metrics, lambda t: sample(t, "briefd_jobs_total",
                                                       status="succeeded") == 2,
                        what="two jobs counted")
        promtool_ok(self, up)
        version = subprocess.run([BRIEFD, "--version"], capture_output=True,
                                 text=True).stdout.split()[1]
        self.assertEqual(sample(up, "briefd_build_info", version=version), 1)
        self.assertEqual(sample(up, "briefd_redis_up"), 1)
        # every configured model has its cost and error series, zero included
        self.assertGreater(sample(up, "briefd_cost_usd_total", model="phi-4-mini"), 0)
        self.assertEqual(sample(up, "briefd_cost_usd_total", model="phi-backup"), 0)
        self.assertEqual(sample(up, "briefd_upstream_errors_total", model="phi-backup",
                                reason="connect"), 0)
        self.assertEqual(sample(up, "briefd_fallback_answers_total", role="draft",
                                endpoint="fallback1"), 0)
        self.assertEqual(sample(up, "briefd_breaker_open", role="draft", endpoint="primary",
                                model="phi-4-mini", url=self.sim.base_url), 0)
        self.assertEqual(sample(up, "briefd_breaker_open", role="draft", endpoint="fallback1",
                                model="phi-backup"), 0)
        now = time.time()
        start = sample(up, "process_start_time_seconds")
        self.assertTrue(now - 600 < start <= now + 1, (start, now))
        self.assertGreater(sample(up, "process_resident_memory_bytes"), 1 << 20)
        self.assertGreater(sample(up, "process_open_fds"), 3)
        self.assertGreaterEqual(sample(up, "process_cpu_seconds_total"), 0)

        self.redis.stop()
        down = eventually(self.metrics, lambda t: sample(t, "briefd_redis_up") == 0,
                          what="briefd_redis_up 0")
        promtool_ok(self, down)
        self.assertEqual(sample(down, "briefd_build_info", version=version), 1)
        self.assertIsNotNone(sample(down, "process_cpu_seconds_total"))
        self.assertEqual(sample(down, "briefd_breaker_open", role="refine", endpoint="primary",
                                model="gpt-oss-20b"), 0)
        # the cluster-wide series are left out, not zeroed (a counter must not go back to 0)
        self.assertIsNone(sample(down, "briefd_jobs_total", status="succeeded"))
        self.assertIsNone(sample(down, "briefd_cost_usd_total", model="phi-backup"))
        self.assertNotIn("briefd_queue_depth", down)
        self.assertEqual(self.briefd.get("/readyz")[0], 503)
        self.assertEqual(self.briefd.get("/healthz")[0], 200)

        self.redis.start()
        back = eventually(self.metrics, lambda t: sample(t, "briefd_redis_up") == 1 and
                          sample(t, "briefd_jobs_total", status="succeeded") is not None,
                          timeout=30, what="the cluster-wide series back")
        promtool_ok(self, back)
        self.assertEqual(sample(back, "briefd_jobs_total", status="succeeded"), 2)


class GrafanaOnDefaultRun(Stack):
    """The shipped dashboard against what a default configuration really emits."""

    def test_check_sh_passes_on_a_live_capture(self):
        for i, flags in enumerate(([], ["legal"], [], ["exec"])):
            st, job, _ = self.briefd.post_job({"text": SHORT + " %d" % i, "topic_flags": flags},
                                              wait=30)
            self.assertEqual(st, 200, job)
        text = eventually(lambda: self.briefd.get("/metrics")[1].decode(),
                          lambda t: sample(t, "briefd_jobs_total", status="succeeded") == 4,
                          what="four jobs counted")
        promtool_ok(self, text)
        capture = os.path.join(self.tmp, "metrics.txt")
        with open(capture, "w") as f:
            f.write(text)
        r = subprocess.run([CHECK_SH, capture], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("OK:", r.stdout)
        # the dashboard has its deployment variable, used by every briefd query
        with open(DASHBOARD) as f:
            dash = json.load(f)
        names = [v["name"] for v in dash["templating"]["list"]]
        self.assertIn("deployment", names)
        exprs = re.findall(r'"expr": "((?:[^"\\]|\\.)*)"', json.dumps(dash))
        self.assertTrue(exprs)
        for e in exprs:
            self.assertIn('deployment=~\\"$deployment\\"', e)
        # and the check fails when the dashboard asks for what /metrics does not have
        bad = json.loads(json.dumps(dash))
        bad["panels"][1]["targets"][0]["expr"] = \
            'sum(rate(briefd_no_such_metric_total{job=~"$job"}[5m]))'
        bad["panels"][2]["targets"][0]["expr"] = \
            'max by (colour) (briefd_jobs_total{job=~"$job",status="lost"})'
        bad_path = os.path.join(self.tmp, "bad-dashboard.json")
        with open(bad_path, "w") as f:
            json.dump(bad, f)
        r = subprocess.run([CHECK_SH, capture, bad_path], capture_output=True, text=True)
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("briefd_no_such_metric_total: not in", r.stdout)
        self.assertIn("grouping label 'colour'", r.stdout)
        self.assertIn('briefd_jobs_total{status="lost"} never seen', r.stdout)


if __name__ == "__main__":
    unittest.main()
