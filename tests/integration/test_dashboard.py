"""Integration: the /dashboard page in headless Chromium shows what GET /v1/stats says."""
import json
import os
import shutil
import subprocess
import sys
import unittest
from decimal import ROUND_HALF_UP, Decimal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ROOT, Sim, Stack, eventually  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CHECK = os.path.join(HERE, "dashboard_check.mjs")
CHROMIUM = os.environ.get("CHROMIUM_BIN", "/usr/bin/chromium")
ARTIFACTS = os.environ.get("BRIEFD_ARTIFACTS", "/tmp")

SHORT = ("Revenue grew 12 percent in the third quarter. Costs were flat. "
         "The board approved a new data center in Ohio.")
LONG = " ".join(
    "Sentence %d describes the regional sales programme, its budget of %d million dollars, "
    "the partners involved and the milestones planned for the coming quarters." % (i, i * 3)
    for i in range(40))

# Real jobs with known dimensions; the routing below refines the long, the legal-flagged and
# the low-confidence ones, keeps the rest; one fails outright, one has its refine fail.
JOBS = [
    ("crm", "acme", LONG, []),                                        # refine: length
    ("crm", "acme", SHORT, []),                                       # keep
    ("crm", "globex", SHORT, ["legal"]),                              # refine: topic
    ("wiki", "acme", SHORT, []),                                      # keep
    ("wiki", "initech", SHORT + " Second note.", []),                 # keep
    ("email", "initech", SHORT + " Reviewed by Quinn.", []),          # refine: confidence
    ("email", "globex", LONG + " Reviewed by Rhodes.", []),           # refine fails: degraded
    ("wiki", "globex", SHORT + " Reviewed by Soto.", []),             # draft fails: failed
]
# The simulator's rules for them (first match wins): Quinn's draft is unsure, Rhodes's
# refinement fails, Soto's draft is refused (a 4xx: the job fails; a 5xx would only make it
# wait for the model), every other draft is confident.
SIM_RULES = [
    Sim.rule("Quinn", logprob_mean=Sim.LOWCONF),
    Sim.rule("Rhodes", model="gpt-oss-20b", status=500),
    Sim.rule("Soto", model="phi-4-mini", status=400),
    Sim.rule(None, logprob_mean=Sim.HIGHCONF),
]

CONFIG = {
    "routing": {"mode": "any", "policies": [
        {"type": "length", "min_chars": 400},
        {"type": "topic", "flags": ["legal"], "keywords": ["lawsuit"]},
        {"type": "confidence", "min_mean_logprob": -0.8, "on_missing": "keep"}],
        "guards": {"max_refine_rate": None}},
    "models": {
        "draft": {"price": {"input_per_mtok": 0.15, "output_per_mtok": 0.6}},
        "refine": {"price": {"input_per_mtok": 1.2, "output_per_mtok": 4.8}},
    },
    # acme's two SHORT jobs are one brief: the second comes from the exact cache
    "cache": {"ttl_s": 3600},
    "tenants": {"by_id": {"acme": {"jobs_per_minute": 600, "daily_budget_usd": 10}}},
}


def pct(rate):
    """The page's percentage: JavaScript's (rate * 100).toFixed(1) + '%'."""
    return str(Decimal(rate * 100).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)) + "%"


def browser_missing():
    """What the browser check lacks on this machine, or None."""
    if not shutil.which("node"):
        return "node is not installed (deploy/setup.sh installs it)"
    if not os.path.exists(os.path.join(ROOT, "node_modules", "playwright-core")):
        return "node_modules/playwright-core is missing (deploy/setup.sh runs npm ci)"
    if not os.access(CHROMIUM, os.X_OK):
        return "%s is missing (deploy/setup.sh installs Debian's chromium)" % CHROMIUM
    return None


def run_check(test, port, shot, key=None):
    """Run dashboard_check.mjs against briefd's /dashboard; the figures it printed."""
    missing = browser_missing()
    if missing:  # a missing dependency fails the test (it never skips)
        test.fail(missing)
    args = ["node", CHECK, "http://127.0.0.1:%d/dashboard" % port, shot]
    if key:
        args += ["--key", key]
    p = subprocess.run(args, capture_output=True, text=True, timeout=180, cwd=HERE)
    test.assertEqual(p.returncode, 0, "dashboard_check failed:\n%s\n%s" % (p.stderr, p.stdout))
    return json.loads(p.stdout)


def submit_all(briefd):
    """Submit JOBS and wait for each; the finished job objects."""
    ids = []
    for source, tenant, text, flags in JOBS:
        body = {"text": text, "max_words": 80, "metadata": {"source": source, "tenant": tenant}}
        if flags:
            body["topic_flags"] = flags
        st, job, _ = briefd.post_job(body)
        if st != 202:
            raise AssertionError("POST /v1/jobs answered %s: %s" % (st, job))
        ids.append(job["id"])
    return [briefd.wait_job(i, timeout=60) for i in ids]


class Dashboard(Stack):
    config_over = CONFIG

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.sim.rules(*SIM_RULES)
            cls.jobs = submit_all(cls.briefd)
            # statistics are folded from the job records about once a second
            eventually(lambda: cls.briefd.get("/v1/stats?window=3600"),
                       lambda r: r[0] == 200 and r[1]["jobs"] == len(cls.jobs),
                       what="every job counted")
        except BaseException:
            cls.tearDownClass()
            raise

    def stats(self, by):
        st, body, _ = self.briefd.get("/v1/stats?window=3600&by=%s" % by)
        self.assertEqual(st, 200, body)
        return body

    def test_assets_served(self):
        for path, ctype, needle in (("/dashboard", "text/html", b"/dashboard/dashboard.js"),
                                    ("/dashboard/", "text/html", b"/dashboard/chart.umd.js"),
                                    ("/dashboard/dashboard.js", "javascript", b"/v1/stats"),
                                    ("/dashboard/chart.umd.js", "javascript", b"Chart.js v4")):
            st, body, hdrs = self.briefd.get(path)
            self.assertEqual(st, 200, path)
            self.assertIn(ctype, hdrs.get("content-type", ""), path)
            self.assertIn(needle, body, path)
            self.assertIn("cache-control", hdrs, path)
        st, _, _ = self.briefd.get("/dashboard/nope.js")
        self.assertEqual(st, 404)

    def test_page_shows_stats(self):
        outcomes = [(j["status"], j["result"]["refined"] if j.get("result") else None,
                     j["result"]["degraded"] if j.get("result") else None) for j in self.jobs]
        self.assertIn(("failed", None, None), outcomes)
        self.assertIn(("succeeded", False, True), outcomes)
        self.assertIn(("succeeded", True, False), outcomes)

        shot = os.path.join(ARTIFACTS, "dashboard.png")
        page = run_check(self, self.briefd.port, shot)
        stats = self.stats("source")
        tenants = self.stats("tenant")
        tiles = page["tiles"]

        self.assertEqual(page["window"], 3600)
        self.assertEqual(page["state"], "ready")
        self.assertEqual(page["http_status"], 200)
        self.assertIn("text/html", page["content_type"])
        # headline figures: the same numbers, displayed as the page formats them
        self.assertEqual(stats["jobs"], len(JOBS))
        self.assertEqual(tiles["jobs"]["value"], stats["jobs"])
        self.assertEqual(tiles["jobs"]["text"], str(stats["jobs"]))
        self.assertEqual(tiles["refine-rate"]["text"], pct(stats["refine_rate"]))
        self.assertAlmostEqual(tiles["refine-rate"]["value"], stats["refine_rate"], places=9)
        self.assertEqual(tiles["failed"]["value"], stats["failed"])
        self.assertEqual(tiles["degraded"]["value"], stats["degraded"])
        self.assertGreater(stats["cost_usd"]["per_job"], 0)
        self.assertAlmostEqual(tiles["cost-per-job"]["value"], stats["cost_usd"]["per_job"], places=12)
        self.assertTrue(tiles["cost-per-job"]["text"].startswith("$0.0"), tiles["cost-per-job"])
        self.assertAlmostEqual(tiles["cost-total"]["value"], stats["cost_usd"]["total"], places=12)
        self.assertEqual(tiles["savings"]["text"],
                         pct(stats["counterfactual_usd"]["savings_vs_all_refine"]))
        # breakdowns: every source and tenant, with its own figures
        sources = page["tables"]["by-source"]
        self.assertEqual(set(sources), set(stats["groups"]))
        self.assertEqual(set(sources), {"crm", "wiki", "email"})
        for name, g in stats["groups"].items():
            self.assertEqual(sources[name]["jobs"]["value"], g["jobs"], name)
            self.assertEqual(sources[name]["refine_rate"]["text"], pct(g["refine_rate"]), name)
        by_tenant = page["tables"]["by-tenant"]
        self.assertEqual(set(by_tenant), set(tenants["groups"]))
        self.assertEqual(set(by_tenant), {"acme", "globex", "initech"})
        for name, g in tenants["groups"].items():
            self.assertEqual(by_tenant[name]["jobs"]["value"], g["jobs"], name)
        # the tenants' limits and what is left of acme's budget today
        self.assertEqual(by_tenant["acme"]["limits"]["text"], "600/min · $10.00/day")
        self.assertEqual(by_tenant["globex"]["limits"]["text"], "—")
        left = tenants["groups"]["acme"]["remaining_budget_usd"]
        self.assertTrue(0 < left < 10, left)
        self.assertAlmostEqual(by_tenant["acme"]["budget_left"]["value"], left, places=12)
        self.assertEqual(by_tenant["globex"]["budget_left"]["text"], "—")
        # the exact cache's hit rate
        self.assertGreaterEqual(stats["cache"]["hits"], 1)
        self.assertEqual(tiles["cache-hit-rate"]["text"], pct(stats["cache"]["hit_rate"]))
        self.assertAlmostEqual(tiles["cache-hit-rate"]["value"], stats["cache"]["hit_rate"],
                               places=9)
        # refine votes by policy, tokens per model, latency percentiles
        policies = page["tables"]["by-policy"]
        for name, votes in stats["by_policy"].items():
            want = votes["refine"] if isinstance(votes, dict) else votes
            self.assertEqual(policies[name]["votes"]["value"], want, name)
        self.assertEqual(set(page["tables"]["tokens"]), set(stats["tokens"]))
        for model, t in stats["tokens"].items():
            self.assertEqual(page["tables"]["tokens"][model]["prompt"]["value"], t["prompt"], model)
        latency = page["tables"]["latency-table"]
        for stage in ("queue", "draft", "refine", "total"):
            self.assertAlmostEqual(latency[stage]["p95"]["value"], stats["latency_ms"][stage]["p95"],
                                   places=6, msg=stage)
        for chart, drawn in page["charts"].items():
            self.assertGreater(drawn["painted"], 0, chart)
        self.assertTrue(page["last_updated"]["text"].startswith("Updated "), page["last_updated"])
        self.assertTrue(os.path.getsize(shot) > 10000, shot)
        # the API going away is said plainly, and the last figures stay
        gone = page["unreachable"]
        self.assertTrue(gone["visible"], gone)
        self.assertIn("unreachable", gone["banner"])
        self.assertEqual(gone["jobs"], str(stats["jobs"]))
        self.assertIn("stale", gone["last_updated"])


class DashboardAuth(Stack):
    """Auth on: the page asks for a key once and keeps it for the tab."""
    KEY = "dash-test-key-1"
    config_over = CONFIG
    briefd_env = {"BRIEFD_API_KEYS": KEY}

    def test_key_asked_once(self):
        st, _, _ = self.briefd.get("/v1/stats")
        self.assertEqual(st, 401)
        auth = {"Authorization": "Bearer " + self.KEY}
        body = {"text": SHORT, "metadata": {"source": "crm", "tenant": "acme"}}
        st, job, _ = self.briefd.post_job(body, headers=auth)
        self.assertEqual(st, 202, job)
        st, job, _ = self.briefd.get("/v1/jobs/%s?wait=30" % job["id"], headers=auth)
        self.assertEqual(job["status"], "succeeded", job)
        eventually(lambda: self.briefd.get("/v1/stats", headers=auth),
                   lambda r: r[0] == 200 and r[1]["jobs"] == 1, what="the job counted")
        page = run_check(self, self.briefd.port, os.path.join(ARTIFACTS, "dashboard-auth.png"),
                         key=self.KEY)
        self.assertFalse(page["asked_again_after_reload"], page)
        self.assertTrue(page["key_in_session_storage"], page)
        self.assertEqual(page["tiles"]["jobs"]["value"], 1)
        self.assertIn("crm", page["tables"]["by-source"])


if __name__ == "__main__":
    unittest.main()
