"""Integration: tenants (jobs_per_minute, daily_budget_usd, max_refine_rate) enforced across
several briefd processes, GET /v1/tenants/{id}, and the exact cache (hits, scope, TTL, single
flight) - over real HTTP, a real Redis and the model simulator."""
import json
import math
import os
import re
import sys
import threading
import time
import unittest
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Briefd, Redis, Sim, Stack, base_config, eventually, rkey,  # noqa: E402
                     tail, wait_for)

TEXT = ("Revenue grew 12 percent in the third quarter. Costs were flat. The board approved "
        "a new data center in Ohio and a hiring plan for the support team.")
ADMIN = {"Authorization": "Bearer admin-key-0001"}
ACME = {"Authorization": "Bearer acme-key-00001"}       # bound to tenant acme
KEYS = {"BRIEFD_ADMIN_KEYS": "admin-key-0001", "BRIEFD_API_KEYS": "acme=acme-key-00001"}
ALWAYS_REFINE = {"policies": [{"type": "length", "min_chars": 1}],
                 "guards": {"max_refine_rate": None}}


def submit_many(procs, bodies, workers=60, headers=None):
    """POST every body (round robin over procs) at once; [(status, body, headers)].
    headers: one dict for all, or a function of the index."""
    def one(i):
        h = headers(i) if callable(headers) else (headers or ADMIN)
        return procs[i % len(procs)].post_job(bodies[i], headers=h)
    with ThreadPoolExecutor(max_workers=workers) as ex:
        return list(ex.map(one, range(len(bodies))))


def wait_job(proc, job_id, timeout=60.0):
    """The finished job (GET with the admin key, ?wait)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        st, job, _ = proc.get("/v1/jobs/%s?wait=5" % job_id, headers=ADMIN)
        if st == 200 and job["status"] in ("succeeded", "failed"):
            return job
        time.sleep(0.05)
    raise AssertionError("job %s did not finish; log:\n%s" % (job_id, tail(proc.log)))


class Multi(unittest.TestCase):
    """Redis, the simulator and N briefd processes sharing them, with auth on (KEYS)."""
    N = 3
    config_over = {}

    @classmethod
    def setUpClass(cls):
        import tempfile
        cls.tmpdir = tempfile.TemporaryDirectory(prefix="briefd-it-")
        cls.tmp = cls.tmpdir.name
        cls.redis = Redis(cls.tmp).start()
        cls.sim = Sim(cls.tmp).start()
        cfg = base_config(cls.redis, cls.sim, **cls.config_over)
        cls.procs = []
        for i in range(cls.N):
            cls.procs.append(Briefd(cls.tmp, cfg, name="p%d" % i, env=KEYS).start())
        cls.briefd = cls.procs[0]

    @classmethod
    def tearDownClass(cls):
        codes = [p.stop() for p in cls.procs]
        logs = [tail(p.log, 6000) for p in cls.procs]
        sim_err = cls.sim.stop(check=False)
        cls.redis.stop()
        cls.tmpdir.cleanup()
        if any(codes):
            raise AssertionError("briefd exited %s:\n%s" % (codes, "\n".join(logs)))
        if sim_err:
            raise AssertionError(sim_err)
        from harness import check_openapi
        check_openapi()  # every briefd response of the class against docs/openapi.yaml

    def setUp(self):
        self.sim.faults()


def redis_now_ms(redis):
    sec, usec = redis.cmd("TIME")
    return int(sec) * 1000 + int(usec) // 1000


def midnight_s(now_s):
    return int(math.ceil((now_s // 86400 + 1) * 86400 - now_s))


class RateLimit(Multi):
    """300 concurrent submissions to 3 briefd processes against jobs_per_minute 100: exactly
    100 get in, the others get 429 tenant_rate_limited with a correct Retry-After. Half of
    them come with acme's tenant-bound key, which wins over what metadata.tenant says."""
    LIMIT = 100
    config_over = {"tenants": {"by_id": {"acme": {"jobs_per_minute": LIMIT}}}}

    def test_exactly_the_limit_across_processes(self):
        bodies = [{"text": TEXT + " (%d)" % i,
                   "metadata": {"tenant": "acme" if i % 2 else "spoofed"}} for i in range(300)]
        t0 = redis_now_ms(self.redis)
        res = submit_many(self.procs, bodies, headers=lambda i: ADMIN if i % 2 else ACME)
        accepted = [r for r in res if r[0] == 202]
        refused = [r for r in res if r[0] == 429]
        self.assertEqual(len(accepted), self.LIMIT, [r[1] for r in res if r[0] not in (202, 429)])
        self.assertEqual(len(refused), 300 - self.LIMIT)
        for st, body, hdrs in refused:
            self.assertEqual(body["error"]["type"], "rate_limit_error")
            self.assertEqual(body["error"]["code"], "tenant_rate_limited")
            ra = int(hdrs["retry-after"])
            self.assertTrue(1 <= ra <= 60, ra)
        # the admissions, counted once in Redis for all three processes
        zkey = rkey(self.briefd.config["redis"]["prefix"], "tenant:rate:acme")
        self.assertEqual(self.redis.cmd("ZCARD", zkey), self.LIMIT)
        # Retry-After: until the oldest admission leaves the one-minute window
        oldest = int(float(self.redis.cmd("ZRANGE", zkey, "0", "0", "WITHSCORES")[1]))
        st, body, hdrs = self.procs[1].post_job(bodies[0], headers=ACME)
        now = redis_now_ms(self.redis)
        self.assertEqual(st, 429, body)
        want = math.ceil((oldest + 60000 - now) / 1000.0)
        self.assertTrue(want - 1 <= int(hdrs["retry-after"]) <= want + 1,
                        (hdrs["retry-after"], want))
        self.assertGreaterEqual(oldest, t0)
        # another tenant (no limits: by_id lists only acme, no default) is not held up
        st, body, _ = self.procs[2].post_job({"text": TEXT, "metadata": {"tenant": "beta"}},
                                             headers=ADMIN)
        self.assertEqual(st, 202, body)
        # the facade is a submission too
        st, body, hdrs = self.procs[0].request("POST", "/v1/chat/completions", {
            "model": "briefd-hybrid", "messages": [{"role": "user", "content": TEXT}]},
            headers=ACME)
        self.assertEqual(st, 429, body)
        self.assertEqual(body["error"]["code"], "tenant_rate_limited")
        self.assertIn("retry-after", hdrs)
        # GET /v1/tenants/{id}: admin only, the minute's admissions
        st, body, _ = self.procs[1].get("/v1/tenants/acme", headers=ACME)
        self.assertEqual(st, 403, body)
        st, t, _ = self.procs[1].get("/v1/tenants/acme", headers=ADMIN)
        self.assertEqual(st, 200, t)
        self.assertEqual(t["id"], "acme")
        self.assertEqual(t["jobs_this_minute"], self.LIMIT)
        self.assertEqual(t["limits"], {"jobs_per_minute": self.LIMIT, "daily_budget_usd": None,
                                       "max_refine_rate": None})
        self.assertEqual(t["limits_from"], "by_id")
        self.assertIsNone(t["remaining_budget_usd"])
        st, t, _ = self.procs[1].get("/v1/tenants/nobody", headers=ADMIN)
        self.assertEqual(st, 200, t)
        self.assertEqual(t["limits_from"], "default")     # no default limits: none
        self.assertEqual(set(t["limits"].values()), {None})
        self.assertEqual(t["jobs_this_minute"], 0)
        # every accepted job runs
        for st, job, _ in accepted[:5]:
            done = wait_job(self.procs[0], job["id"])
            self.assertEqual(done["status"], "succeeded")
            self.assertEqual(done["tenant"], "acme")


class AckedTenantSubmits(Stack):
    """With redis.min_replicas_acked, a tenant's admitted submission is on the replica when
    it is answered 202 (the tenant script goes through the acknowledged connection), and a
    refusal is a 429, not a replication timeout."""
    config_over = {"redis": {"min_replicas_acked": 1, "replica_ack_timeout_ms": 500},
                   "tenants": {"by_id": {"acme": {"jobs_per_minute": 3}}}}

    @classmethod
    def setUpClass(cls):
        from ha_harness import SentinelSet
        cls.redis_factory = SentinelSet
        super().setUpClass()

    def test_admitted_then_refused(self):
        from harness import job_record
        replica, prefix = self.redis.nodes[1], self.briefd.config["redis"]["prefix"]
        res = [self.briefd.post_job({"text": TEXT + " acked %d" % i,
                                     "metadata": {"tenant": "acme"}}) for i in range(5)]
        self.assertEqual([st for st, _, _ in res], [202, 202, 202, 429, 429], res)
        for st, job, _ in res[:3]:
            self.assertIsNotNone(job_record(replica, prefix, job["id"]), job["id"])
        self.assertEqual(res[3][1]["error"]["code"], "tenant_rate_limited")
        self.assertEqual(replica.cmd("ZCARD", rkey(prefix, "tenant:rate:acme")), 3)


class Budget(Multi):
    """A tenant's daily budget: refinements are held back (guard:tenant_budget) once they
    could pass it, then new jobs are refused (429 tenant_budget_exhausted); spend never passes
    the budget by more than one job's cost, with several processes and jobs in flight."""
    BUDGET = 1.0
    config_over = {
        "models": {"draft": {"price": {"input_per_mtok": 200.0, "output_per_mtok": 200.0}},
                   "refine": {"price": {"input_per_mtok": 300.0, "output_per_mtok": 300.0}}},
        "routing": ALWAYS_REFINE,
        "tenants": {"default": {"daily_budget_usd": BUDGET}},
    }

    def tenant(self, name):
        st, t, _ = self.briefd.get("/v1/tenants/" + name, headers=ADMIN)
        self.assertEqual(st, 200, t)
        return t

    def test_one_by_one_refine_then_hold_back_then_refuse(self):
        jobs, refusal = [], None
        for i in range(80):
            st, j, hdrs = self.procs[i % 3].post_job(
                {"text": TEXT + " (seq %d)" % i, "metadata": {"tenant": "seq"}}, wait=30,
                headers=ADMIN)
            if st == 429:
                refusal = (j, hdrs)
                break
            self.assertEqual(st, 200, j)
            jobs.append(j)
        self.assertIsNotNone(refusal, "the budget never refused a job")
        body, hdrs = refusal
        self.assertEqual(body["error"]["code"], "tenant_budget_exhausted")
        self.assertEqual(body["error"]["type"], "rate_limit_error")
        want = midnight_s(time.time())
        self.assertTrue(abs(int(hdrs["retry-after"]) - want) <= 5, (hdrs["retry-after"], want))
        refined = [k for k, j in enumerate(jobs) if j["result"]["refined"]]
        held = [k for k, j in enumerate(jobs)
                if "guard:tenant_budget" in [v["policy"] for v in j["route"]["verdicts"]]]
        self.assertTrue(refined and held, [j["route"] for j in jobs])
        self.assertLess(max(refined), min(held))            # refinements first, then held back
        g = [v for v in jobs[held[0]]["route"]["verdicts"] if v["policy"] == "guard:tenant_budget"][0]
        self.assertEqual(g["verdict"], "keep")
        self.assertIn("daily budget 1 USD", g["detail"])
        self.assertTrue(jobs[held[0]]["route"]["guarded"])
        self.assertFalse(jobs[held[0]]["result"]["refined"])
        # the tenant's spend is exactly what its jobs cost, and at most one job over
        costs = [j["cost_usd"]["total"] for j in jobs]
        t = eventually(lambda: self.tenant("seq"), lambda t: t["reserved_usd"] == 0,
                       what="reservations settled")
        self.assertAlmostEqual(t["spent_today_usd"], sum(costs), places=9)
        self.assertGreaterEqual(t["spent_today_usd"], self.BUDGET)
        self.assertLessEqual(t["spent_today_usd"], self.BUDGET + max(costs))
        self.assertEqual(t["remaining_budget_usd"], 0)
        self.assertEqual(t["limits_from"], "default")
        print("budget one by one: jobs=%d refined=%d held=%d spent=%.6f budget=%g max_job=%.6f"
              % (len(jobs), len(refined), len(held), t["spent_today_usd"], self.BUDGET,
                 max(costs)))
        # the facade is refused too
        st, body, _ = self.procs[2].request("POST", "/v1/chat/completions", {
            "model": "briefd-hybrid", "messages": [{"role": "user", "content": TEXT}],
            "metadata": {"tenant": "seq"}}, headers=ADMIN)
        self.assertEqual(st, 429, body)
        self.assertEqual(body["error"]["code"], "tenant_budget_exhausted")

    def test_concurrent_jobs_never_pass_budget_by_more_than_one_job(self):
        bodies = [{"text": TEXT + " (burst %d)" % i, "metadata": {"tenant": "burst"}}
                  for i in range(60)]
        res = submit_many(self.procs, bodies, workers=30)
        ids = [b["id"] for st, b, _ in res if st == 202]
        self.assertTrue(ids, res[:3])
        done = [wait_job(self.procs[0], i) for i in ids]
        ok = [j for j in done if j["status"] == "succeeded"]
        refused = [j for j in done if j["status"] == "failed"]
        self.assertTrue(ok)
        for j in refused:   # accepted before the budget was spent, refused at the worker
            self.assertEqual(j["error"]["code"], "tenant_budget_exhausted", j["error"])
            self.assertEqual(j["cost_usd"]["total"], 0)
        costs = [j["cost_usd"]["total"] for j in ok]
        t = eventually(lambda: self.tenant("burst"), lambda t: t["reserved_usd"] == 0,
                       what="reservations settled")
        self.assertAlmostEqual(t["spent_today_usd"], sum(costs), places=9)
        self.assertGreaterEqual(t["spent_today_usd"], self.BUDGET)   # the budget was reached
        self.assertLessEqual(t["spent_today_usd"], self.BUDGET + max(costs))
        held = [j for j in ok if j["route"].get("guarded")]
        print("budget burst: accepted=%d succeeded=%d held=%d refused=%d spent=%.6f budget=%g "
              "max_job=%.6f" % (len(ids), len(ok), len(held), len(refused),
                                t["spent_today_usd"], self.BUDGET, max(costs)))
        # once it is spent, submissions are refused at once
        st, body, _ = self.procs[1].post_job(bodies[0], headers=ADMIN)
        self.assertEqual(st, 429, body)
        self.assertEqual(body["error"]["code"], "tenant_budget_exhausted")


class TenantRefineRate(Multi):
    """A tenant's max_refine_rate holds back its own refinements (after min_samples of its
    decided jobs); other tenants are not affected."""
    N = 1
    MIN = 4
    config_over = {
        "routing": {"policies": [{"type": "length", "min_chars": 1}],
                    "guards": {"max_refine_rate": None, "min_samples": MIN, "window_s": 600}},
        "tenants": {"by_id": {"acme": {"max_refine_rate": 0.5}}},
    }

    def test_tenant_rate_guard(self):
        results = []
        deadline = time.time() + 40
        while time.time() < deadline and not any(j["route"].get("guarded") for j in results):
            st, j, _ = self.briefd.post_job({"text": TEXT + " %d" % len(results)}, wait=30,
                                            headers=ACME)
            self.assertEqual(st, 200, j)
            results.append(j)
            # the tenant's figures are folded (about 1 s), then re-read (every 1 s)
            eventually(lambda: self.briefd.get("/v1/stats?window=600&by=tenant",
                                               headers=ADMIN)[1],
                       lambda s: s.get("groups", {}).get("acme", {}).get("jobs") == len(results),
                       what="acme's job counted")
        guarded = [i for i, j in enumerate(results) if j["route"].get("guarded")]
        self.assertTrue(guarded, [j["route"] for j in results])
        self.assertGreaterEqual(guarded[0], self.MIN)
        v = results[guarded[0]]["route"]["verdicts"][-1]
        self.assertEqual(v["policy"], "guard:tenant_refine_rate")
        m = re.search(r"refine rate ([0-9.]+) of (\d+) decided jobs over 600 s >= max 0.5",
                      v["detail"])
        self.assertIsNotNone(m, v)
        self.assertGreaterEqual(int(m.group(2)), self.MIN)
        # another tenant refines as its policies say
        st, j, _ = self.briefd.post_job({"text": TEXT + " other", "metadata": {"tenant": "beta"}},
                                        wait=30, headers=ADMIN)
        self.assertTrue(j["result"]["refined"], j["route"])
        st, t, _ = self.briefd.get("/v1/tenants/acme", headers=ADMIN)
        self.assertEqual(st, 200, t)
        self.assertEqual(t["limits"]["max_refine_rate"], 0.5)
        self.assertEqual(t["window_s"], 600)
        self.assertGreaterEqual(t["decided"], self.MIN)
        self.assertAlmostEqual(t["refine_rate"], t["refined"] / t["decided"])
        # the per-tenant table of /v1/stats carries the limits
        st, s, _ = eventually(
            lambda: self.briefd.get("/v1/stats?window=3600&by=tenant", headers=ADMIN),
            lambda r: "beta" in r[1].get("groups", {}), what="beta's job counted")
        self.assertEqual(s["groups"]["acme"]["limits"]["max_refine_rate"], 0.5)
        self.assertIsNone(s["groups"]["beta"]["limits"]["max_refine_rate"])


class Cache(Stack):
    """The exact cache: a repeated document is a new job with a copy of the result at no
    cost; another tenant, other instructions or a configuration change miss; identical jobs
    at the same moment call the models once."""
    config_over = {"cache": {"ttl_s": 3600}, "routing": ALWAYS_REFINE}

    def sim_calls(self):
        return self.sim.stats()["requests"]

    def cache_counts(self, tenant):
        st, s, _ = self.briefd.get("/v1/stats?window=3600&by=tenant")
        c = s.get("groups", {}).get(tenant, {}).get("cache", {})
        return c.get("hits"), c.get("misses")

    def test_hit_and_what_misses(self):
        body = {"text": TEXT + " cache-1", "max_words": 50, "topic_flags": ["legal", "exec"],
                "metadata": {"tenant": "cachetest"}}
        st, first, _ = self.briefd.post_job(body, wait=30)
        self.assertEqual(st, 200, first)
        self.assertFalse(first["cached"])
        self.assertTrue(first["result"]["refined"])
        calls = self.sim_calls()
        again = dict(body, topic_flags=["exec", "legal", "exec"])   # flags are a set
        st, hit, _ = self.briefd.post_job(again, wait=30)
        self.assertEqual(st, 200, hit)
        self.assertTrue(hit["cached"], hit)
        self.assertEqual(hit["cached_from"], first["id"])
        self.assertNotEqual(hit["id"], first["id"])
        self.assertEqual(hit["result"], first["result"])
        self.assertEqual(hit["cost_usd"]["total"], 0)
        self.assertEqual(hit["usage"], {})
        self.assertNotIn("route", hit)
        self.assertEqual(self.sim_calls(), calls)           # no model was called
        st, got, _ = self.briefd.get("/v1/jobs/" + hit["id"])
        self.assertTrue(got["cached"])
        # each of these changes the answer's inputs: a miss
        for other in (dict(body, metadata={"tenant": "cachetest2"}), dict(body, max_words=51),
                      dict(body, instructions="focus on costs"), dict(body, topic_flags=["legal"])):
            st, j, _ = self.briefd.post_job(other, wait=30)
            self.assertEqual(st, 200, j)
            self.assertFalse(j["cached"], other)
        self.assertGreater(self.sim_calls(), calls)
        eventually(lambda: self.cache_counts("cachetest"), lambda c: c == (1, 4),
                   what="one hit and four misses counted for the tenant")
        self.assertEqual(self.cache_counts("cachetest2"), (0, 1))
        st, s, _ = self.briefd.get("/v1/stats?window=3600")
        self.assertAlmostEqual(s["cache"]["hit_rate"], s["cache"]["hits"] /
                               (s["cache"]["hits"] + s["cache"]["misses"]))
        st, text, _ = self.briefd.get("/metrics")
        text = text.decode() if isinstance(text, bytes) else text
        self.assertRegex(text, r"(?m)^briefd_cache_hits_total [1-9]")
        self.assertRegex(text, r"(?m)^briefd_cache_misses_total [1-9]")

    def test_config_change_misses(self):
        body = {"text": TEXT + " cache-2"}
        st, a, _ = self.briefd.post_job(body, wait=30)
        self.assertFalse(a["cached"])
        cfg = json.loads(json.dumps(self.briefd.config))
        # outside the answer's scope: still a hit
        cfg.setdefault("limits", {})["max_wait_s"] = 59
        self.briefd.write_config(cfg)
        st, r, _ = self.briefd.request("POST", "/v1/config/reload")
        self.assertEqual(st, 200, r)
        st, b, _ = self.briefd.post_job(body, wait=30)
        self.assertTrue(b["cached"], b)
        # the draft model's prompt shapes the answer: a miss, the models run again
        cfg["models"]["draft"]["prompt"] = {"system": "You write briefs. Be terse."}
        self.briefd.write_config(cfg)
        st, r, _ = self.briefd.request("POST", "/v1/config/reload")
        self.assertEqual(st, 200, r)
        calls = self.sim_calls()
        st, c, _ = self.briefd.post_job(body, wait=30)
        self.assertFalse(c["cached"], c)
        self.assertNotEqual(c["config_version"], a["config_version"])
        self.assertGreater(self.sim_calls(), calls)
        st, d, _ = self.briefd.post_job(body, wait=30)
        self.assertTrue(d["cached"])
        self.assertEqual(d["cached_from"], c["id"])

    def test_facade_hits(self):
        from test_streaming import chunks, facade_stream, final_chunk
        text = TEXT + " facade-cache"
        body = {"model": "briefd-hybrid", "messages": [{"role": "user", "content": text}]}
        st, first, _ = self.briefd.request("POST", "/v1/chat/completions", body)
        self.assertEqual(st, 200, first)
        self.assertFalse(first["briefd"]["cached"])
        calls = self.sim_calls()
        st, hit, _ = self.briefd.request("POST", "/v1/chat/completions", body)
        self.assertEqual(st, 200, hit)
        self.assertTrue(hit["briefd"]["cached"], hit["briefd"])
        self.assertEqual(hit["briefd"]["cached_from"], first["briefd"]["job_id"])
        self.assertEqual(hit["choices"][0]["message"]["content"],
                         first["choices"][0]["message"]["content"])
        self.assertEqual(hit["briefd"]["cost_usd"]["total"], 0)
        # streamed: the copy's text goes out as content chunks
        st, events = facade_stream(self.briefd.port, text)
        self.assertEqual(st, 200, events)
        streamed = "".join(c["choices"][0]["delta"].get("content", "")
                           for _, c in chunks(events) if c.get("choices"))
        self.assertEqual(streamed, first["choices"][0]["message"]["content"])
        self.assertTrue(final_chunk(events)["briefd"]["cached"])
        self.assertEqual(self.sim_calls(), calls)

    def test_concurrent_duplicates_call_the_models_once(self):
        marker = "single-flight-%d" % os.getpid()
        # the draft of this document takes a while, so the duplicates overlap it
        self.sim.rules(self.sim.rule(marker, model="phi-4-mini", delay_ms=700),
                       self.sim.rule(marker, model="gpt-oss-20b", delay_ms=0))
        body = {"text": TEXT + " " + marker}
        res = submit_many([self.briefd], [body] * 6, workers=6)
        self.assertEqual([st for st, _, _ in res], [202] * 6, res)
        jobs = [self.briefd.wait_job(b["id"]) for _, b, _ in res]
        self.assertEqual([j["status"] for j in jobs], ["succeeded"] * 6)
        ran = [j for j in jobs if not j["cached"]]
        self.assertEqual(len(ran), 1, [(j["id"], j.get("cached_from")) for j in jobs])
        for j in jobs:
            if j["cached"]:
                self.assertEqual(j["cached_from"], ran[0]["id"])
                self.assertEqual(j["result"], ran[0]["result"])
        hits = self.sim.stats()["rule_hits"]
        self.assertEqual(hits, [1, 1])    # one draft, one refinement for the six jobs


class CacheTTL(Stack):
    """An entry lives cache.ttl_s: once Redis has let it go, the same document runs again."""
    config_over = {"cache": {"ttl_s": 2}}

    def test_miss_after_ttl(self):
        prefix = self.briefd.config["redis"]["prefix"]
        body = {"text": TEXT + " ttl"}
        st, a, _ = self.briefd.post_job(body, wait=30)
        self.assertFalse(a["cached"])
        entries = lambda: [k for k in self.redis.cmd("KEYS", rkey(prefix, "cache:*"))
                           if ":lock:" not in k]
        self.assertEqual(len(entries()), 1)    # written before the job's result
        wait_for(lambda: entries() == [], 10, "the cache entry to expire")
        st, b, _ = self.briefd.post_job(body, wait=30)
        self.assertFalse(b["cached"], b)
        self.assertNotEqual(b["id"], a["id"])


if __name__ == "__main__":
    unittest.main()
