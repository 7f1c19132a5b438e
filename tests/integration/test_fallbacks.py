"""Integration: models.X.fallbacks (docs/CONFIG.md#fallbacks). A primary that is out (503
after its retries, or a closed port) hands the stage to the next endpoint; the job records
which endpoint answered and is priced at that endpoint's price; an open breaker skips its
endpoint at once; a 4xx never falls back. Two simulators: the primary and the fallback."""
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Briefd, Redis, Sim, Stack, base_config, eventually,  # noqa: E402
                     free_port, tail)
from test_upstreams import run_probe  # noqa: E402

SHORT = ("Revenue grew 12 percent in the third quarter. Costs were flat. "
         "The board approved a new data center in Ohio.")
DRAFT, REFINE = "phi-4-mini", "gpt-oss-20b"
FB_PRICE = {"input_per_mtok": 7.0, "output_per_mtok": 11.0, "source": "fallback contract"}


class TwoSims(Stack):
    """Redis, the primary simulator (self.sim), a fallback simulator (self.fb) and briefd
    configured by models(cls) -> the "models" section."""
    routing = {"policies": [{"type": "length", "min_chars": 1}],
               "guards": {"max_refine_rate": None}}

    @classmethod
    def setUpClass(cls):
        cls.tmpdir = tempfile.TemporaryDirectory(prefix="briefd-it-")
        cls.tmp = cls.tmpdir.name
        cls.redis = Redis(cls.tmp).start()
        cls.sim = Sim(cls.tmp, "fast").start()
        cls.fb = Sim(cls.tmp, "fast").start()
        cls.closed = free_port()   # nothing listens there: connection refused
        cfg = base_config(cls.redis, cls.sim, models=cls.models(), routing=cls.routing)
        cls.briefd = Briefd(cls.tmp, cfg).start()

    @classmethod
    def tearDownClass(cls):
        fb_err = cls.fb.stop(check=False)
        super().tearDownClass()
        if fb_err:
            raise AssertionError(fb_err)

    def setUp(self):
        super().setUp()
        self.fb.faults()
        self.sim.reset()
        self.fb.reset()

    def count(self, sim, model):
        return sim.stats()["by_model"].get(model, {}).get("requests", 0)

    def metrics(self):
        st, text, _ = self.briefd.get("/metrics")
        self.assertEqual(st, 200)
        return text.decode()


class DraftFallback(TwoSims):
    @classmethod
    def models(cls):
        return {"draft": {"max_attempts": 2, "backoff_ms": 20, "breaker_failures": 1,
                          "breaker_open_ms": 600000,
                          "price": {"input_per_mtok": 0.1, "output_per_mtok": 0.2},
                          "fallbacks": [
                              {"base_url": "http://127.0.0.1:%d/v1" % cls.closed},
                              {"base_url": cls.fb.base_url, "price": FB_PRICE}]}}

    def test_primary_down_fallback_answers_then_breakers_skip(self):
        self.sim.rules(self.sim.rule(model=DRAFT, status=503))
        st, job, h = self.briefd.post_job({"text": SHORT}, wait=30)
        self.assertEqual(st, 200, job)
        self.assertEqual(job["status"], "succeeded", job)
        # the primary was tried (503 twice), then the closed port, then the fallback answered
        self.assertEqual(self.count(self.sim, DRAFT), 2)
        self.assertEqual(self.count(self.fb, DRAFT), 1)
        u = job["usage"]["draft"]
        self.assertEqual(u["endpoint"], self.fb.base_url)
        self.assertNotIn("model", u)             # the fallback inherited the model's name
        self.assertEqual(job["result"]["model"], REFINE)
        # priced at the fallback's price, not the primary's
        want = (u["prompt_tokens"] * 7.0 + u["completion_tokens"] * 11.0) / 1e6
        self.assertEqual(job["cost_usd"]["draft"], want)
        self.assertEqual(job["usage"]["refine"]["endpoint"], self.sim.base_url)
        # the fallback got the job's request id too
        self.assertEqual(self.fb.requests(1)[0]["headers"]["x-request-id"], job["request_id"])
        log = tail(self.briefd.log, 100000)
        self.assertIn("circuit breaker for the draft model 'phi-4-mini' is now open (calls go "
                      "to its fallbacks)", log)
        self.assertIn("circuit breaker for fallback 1 of the draft model, 'phi-4-mini' at "
                      "http://127.0.0.1:%d/v1, is now open (calls skip this fallback)"
                      % self.closed, log)

        # both breakers are open now: the next job goes straight to fallback 2
        self.sim.reset()
        st, job2, _ = self.briefd.post_job({"text": SHORT + " Again."}, wait=30)
        self.assertEqual(job2["status"], "succeeded", job2)
        self.assertEqual(job2["usage"]["draft"]["endpoint"], self.fb.base_url)
        self.assertEqual(self.count(self.sim, DRAFT), 0)   # the primary was skipped
        self.assertEqual(self.count(self.fb, DRAFT), 2)
        self.assertLess(job2["latency_ms"]["draft"], job["latency_ms"]["draft"])

        # the facade runs the same pipeline
        st, r, h = self.briefd.request("POST", "/v1/chat/completions", {
            "model": "briefd-hybrid", "messages": [{"role": "user", "content": SHORT}]})
        self.assertEqual(st, 200, r)
        job3 = self.briefd.get("/v1/jobs/" + h["x-briefd-job-id"])[1]
        self.assertEqual(job3["usage"]["draft"]["endpoint"], self.fb.base_url)
        self.assertEqual(self.count(self.sim, DRAFT), 0)

        text = self.metrics()
        self.assertIn('briefd_breaker_open{role="draft",model="phi-4-mini",endpoint="primary",'
                      'url="%s"} 1' % self.sim.base_url, text)
        self.assertIn('briefd_breaker_open{role="draft",model="phi-4-mini",endpoint="fallback2",'
                      'url="%s"} 0' % self.fb.base_url, text)
        self.assertIn('briefd_breaker_open{role="refine",model="gpt-oss-20b",'
                      'endpoint="primary",url="%s"} 0' % self.sim.base_url, text)
        eventually(self.metrics, lambda t: 'briefd_fallback_answers_total{role="draft",'
                   'endpoint="fallback2"} 3' in t, what="three draft stages answered by fallback 2")


class RefineFallback(TwoSims):
    @classmethod
    def models(cls):
        return {"refine": {"max_attempts": 2, "backoff_ms": 20,
                           "fallbacks": [{"base_url": cls.fb.base_url, "name": DRAFT,
                                          "timeout_ms": 3000, "price": FB_PRICE}]}}

    def test_refine_falls_back_with_its_name_and_price(self):
        self.sim.rules(self.sim.rule(model=REFINE, status=503))
        st, job, h = self.briefd.post_job({"text": SHORT}, wait=30)
        self.assertEqual(st, 200, job)
        self.assertTrue(job["result"]["refined"], job)
        self.assertFalse(job["result"]["degraded"], job)
        u = job["usage"]["refine"]
        self.assertEqual(u["endpoint"], self.fb.base_url)
        self.assertEqual(u["model"], DRAFT)              # the fallback's own name
        self.assertEqual(job["result"]["model"], DRAFT)
        want = (u["prompt_tokens"] * 7.0 + u["completion_tokens"] * 11.0) / 1e6
        self.assertEqual(job["cost_usd"]["refine"], want)
        self.assertEqual(self.count(self.sim, REFINE), 2)
        self.assertEqual(self.fb.requests(1)[0]["model"], DRAFT)
        self.assertEqual(float(h["x-briefd-cost-usd"]), job["cost_usd"]["total"])

    def test_a_4xx_is_not_an_outage(self):
        self.sim.rules(self.sim.rule(model=REFINE, status=400))
        st, job, _ = self.briefd.post_job({"text": SHORT + " Bad request."}, wait=30)
        self.assertEqual(st, 200, job)
        self.assertTrue(job["result"]["degraded"], job)
        self.assertIn("http_4xx", job["result"]["refine_error"])
        self.assertEqual(self.count(self.fb, DRAFT), 0)

    def test_every_endpoint_out_degrades(self):
        self.sim.rules(self.sim.rule(model=REFINE, status=503))
        self.fb.rules(self.fb.rule(status=502))
        st, job, _ = self.briefd.post_job({"text": SHORT + " Nothing up."}, wait=30)
        self.assertEqual(st, 200, job)
        self.assertTrue(job["result"]["degraded"], job)
        self.assertEqual(job["usage"]["refine"]["endpoint"], self.fb.base_url)
        self.assertIn("http_5xx", job["result"]["refine_error"])

    def test_probe_and_config_show_the_fallbacks(self):
        rc, out, err = run_probe(self.briefd.config, self.tmp)
        self.assertEqual(rc, 0, (out, err))
        m = {x["role"]: x for x in out["models"]}
        fb = m["refine.fallbacks[0]"]
        self.assertIs(fb["reachable"], True, fb)
        self.assertEqual((fb["name"], fb["base_url"]), (DRAFT, self.fb.base_url))
        self.assertEqual(self.fb.requests(1)[0]["model"], DRAFT)
        st, cfg, _ = self.briefd.get("/v1/config")
        f = cfg["models"]["refine"]["fallbacks"]
        self.assertEqual(len(f), 1)
        self.assertEqual(f[0]["base_url"], self.fb.base_url)
        self.assertEqual(f[0]["price"]["source"], "fallback contract")
        self.assertEqual(f[0]["timeout_ms"], 3000)
        self.assertEqual(cfg["models"]["draft"]["fallbacks"], [])


if __name__ == "__main__":
    unittest.main()
