"""Latency as the client feels it (docs/API.md#streaming, docs/CONFIG.md#routing,
docs/CONFIG.md#models): the facade streams as the models generate, job events carry the
brief's text as delta events, pre-routing skips the draft of a flagged document, and
models.X.max_concurrency caps the calls in flight to a model across processes."""
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (ROOT, Briefd, Redis, Sim, Stack, base_config, rkey,  # noqa: E402
                     wait_for)
from harness import record_response  # noqa: E402

DOC = ("The board met on Tuesday to review the quarterly results. Revenue rose 12 percent "
       "to 4.1 million dollars while costs fell by 3 percent. The company hired 40 engineers "
       "in Ohio and opened a second office. ") * 3
FLAGGED = DOC + "Counsel said the lawsuit with Initech was settled in March."
ROUTING = {"policies": [{"type": "topic", "flags": ["legal"], "keywords": ["lawsuit"]}],
           "guards": {"max_refine_rate": None}}
REFINE, DRAFT = "gpt-oss-20b", "phi-4-mini"


def read_sse(port, method, path, body=None, timeout=60):
    """Send the request and read its event stream as it arrives: (status, events), each
    event (t seconds since the request, kind, data) where kind is the SSE event name
    ("message" by default) or "comment" for a ': ...' line."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    t0 = time.monotonic()
    conn.request(method, path, json.dumps(body) if body is not None else None,
                 {"Content-Type": "application/json"} if body is not None else {})
    r = conn.getresponse()
    events, name = [], "message"
    sent = (json.dumps(body) if body is not None else None,
            {"Content-Type": "application/json"} if body is not None else {})
    if r.status != 200:
        text = r.read().decode()
        record_response(port, method, path, r.status, r.getheaders(), text, sent[1], sent[0])
        return r.status, [(0, "body", text)]
    raw = []  # the stream as read, for the OpenAPI check (harness.record_response)
    while True:
        line = r.readline()
        if not line:
            break
        raw.append(line.decode())
        t = time.monotonic() - t0
        line = line.decode().rstrip("\r\n")
        if line.startswith(":"):
            events.append((t, "comment", line[1:].strip()))
        elif line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            events.append((t, name, line[6:]))
            name = "message"
            if line == "data: [DONE]" or events[-1][1] == "done":
                break
    conn.close()
    record_response(port, method, path, r.status, r.getheaders(), "".join(raw) + "\n",
                    sent[1], sent[0])
    return r.status, events


def facade_stream(port, text, include_usage=True):
    body = {"model": "briefd-hybrid", "stream": True,
            "messages": [{"role": "user", "content": text}]}
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    return read_sse(port, "POST", "/v1/chat/completions", body)


def chunks(events):
    """The JSON chunks of a facade stream, with their arrival times: [(t, chunk)]."""
    return [(t, json.loads(d)) for t, k, d in events
            if k == "message" and d != "[DONE]"]


def content_times(events):
    return [(t, c["choices"][0]["delta"].get("content", "")) for t, c in chunks(events)
            if c.get("choices") and c["choices"][0]["delta"].get("content")]


def final_chunk(events):
    return [c for _, c in chunks(events) if c.get("choices")
            and c["choices"][0].get("finish_reason")][0]


class FacadeStreaming(Stack):
    # slow enough to see the stream: a brief of ~100 tokens takes ~0.7 s to generate
    sim_args = ("--ttft-ms", "200", "--tps", "150")
    config_over = {"routing": ROUTING}

    def job_of(self, events):
        job_id = final_chunk(events)["briefd"]["job_id"]
        st, job, _ = self.briefd.get("/v1/jobs/" + job_id)
        self.assertEqual(st, 200, job)
        return job

    def test_refined_brief_streams_before_the_job_ends(self):
        st, events = facade_stream(self.briefd.port, FLAGGED)
        self.assertEqual(st, 200, events)
        self.assertEqual(events[-1][2], "[DONE]")
        cs = chunks(events)
        self.assertEqual(cs[0][1]["choices"][0]["delta"], {"role": "assistant", "content": ""})
        texts = content_times(events)
        self.assertGreater(len(texts), 5, "the refine model's tokens come as they arrive")
        job = self.job_of(events)
        self.assertEqual(job["route"]["decision"], "refine")
        self.assertTrue(job["result"]["refined"], job)
        self.assertEqual("".join(x for _, x in texts), job["result"]["brief"])
        lat = job["latency_ms"]
        t_first, t_end = texts[0][0], events[-1][0]
        # the role chunk goes out at once, long before the draft is done
        self.assertLess(cs[0][0], lat["draft"] / 1000.0)
        # the first content comes after draft + route + the refine's first token, and well
        # before the refinement is over
        self.assertGreaterEqual(t_first, (lat["draft"] + lat["refine_ttft"]) / 1000.0 * 0.9)
        self.assertLess(t_first, t_end - 0.4 * (lat["refine"] - lat["refine_ttft"]) / 1000.0)
        # the usage chunk: empty choices, the job's tokens
        usage = [c for _, c in cs if "usage" in c][-1]
        self.assertEqual(usage["choices"], [])
        total = sum(u["prompt_tokens"] + u["completion_tokens"] for u in job["usage"].values())
        self.assertEqual(usage["usage"]["total_tokens"], total)
        self.assertEqual(final_chunk(events)["briefd"]["route"]["decision"], "refine")

    def test_kept_draft_goes_out_once_routing_decides(self):
        # a slow draft: keep-alive comments while it runs
        self.sim.rules(self.sim.rule(model=DRAFT, delay_ms=2600))
        st, events = facade_stream(self.briefd.port, DOC, include_usage=False)
        self.assertEqual(st, 200, events)
        job = self.job_of(events)
        self.assertEqual(job["route"]["decision"], "keep")
        texts = content_times(events)
        self.assertEqual("".join(x for _, x in texts), job["result"]["brief"])
        self.assertEqual(job["result"]["brief"], job["result"]["draft"])
        comments = [t for t, k, _ in events if k == "comment"]
        self.assertTrue(comments and comments[0] < texts[0][0], events[:4])
        self.assertFalse([c for _, c in chunks(events) if "usage" in c])  # not asked for

    def test_refine_failure_before_any_text_serves_the_draft(self):
        self.sim.rules(self.sim.rule(model=REFINE, status=500))
        st, events = facade_stream(self.briefd.port, FLAGGED)
        self.assertEqual(events[-1][2], "[DONE]")
        job = self.job_of(events)
        self.assertTrue(job["result"]["degraded"], job)
        self.assertEqual("".join(x for _, x in content_times(events)), job["result"]["draft"])
        self.assertTrue(final_chunk(events)["briefd"]["degraded"])

    def test_refine_failure_mid_stream_ends_with_an_error_chunk(self):
        self.sim.rules(self.sim.rule(model=REFINE, stream_error_after=6))
        self.sim.reset()
        st, events = facade_stream(self.briefd.port, FLAGGED)
        self.assertEqual(st, 200)
        self.assertNotIn("[DONE]", [d for _, _, d in events])
        last = json.loads(events[-1][2])
        self.assertEqual(last["error"]["code"], "refine_failed", last)
        self.assertEqual(last["error"]["type"], "api_error")
        self.assertTrue(content_times(events), "some text went out before the failure")
        job_id = last["error"]["message"].rsplit("(job ", 1)[1].rstrip(")")
        job = self.briefd.wait_job(job_id)
        self.assertTrue(job["result"]["degraded"], job)  # the record keeps the draft
        self.assertEqual(job["result"]["brief"], job["result"]["draft"])
        # one refine attempt: text went out, so the call was not retried
        refines = [r for r in self.sim.requests() if r.get("model") == REFINE]
        self.assertEqual(len(refines), 1, refines)

    def test_draft_outage_ends_with_an_error_chunk(self):
        self.sim.rules(self.sim.rule(model=DRAFT, status=503))
        st, events = facade_stream(self.briefd.port, DOC)
        self.assertEqual(st, 200)
        last = json.loads(events[-1][2])
        self.assertEqual(last["error"]["code"], "draft_failed", last)
        self.assertFalse(content_times(events))

    def test_openai_js_sdk_streams(self):
        node = shutil.which("node")
        self.assertTrue(node and os.path.isdir(os.path.join(ROOT, "node_modules", "openai")),
                        "node and node_modules/openai are needed (deploy/setup.sh)")
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "stream_openai.mjs")
        base = "http://127.0.0.1:%d/v1" % self.briefd.port
        r = subprocess.run([node, script, base, FLAGGED], capture_output=True, text=True,
                           timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        out = json.loads(r.stdout)
        self.assertIsNone(out["error"])
        got = [c for c in out["chunks"] if c["content"]]
        self.assertGreater(len(got), 5)
        job_id = [c["job_id"] for c in out["chunks"] if c["job_id"]][0]
        job = self.briefd.get("/v1/jobs/" + job_id)[1]
        self.assertEqual("".join(c["content"] for c in got), job["result"]["brief"])
        end = out["chunks"][-1]["t"]
        self.assertLess(got[0]["t"], end - 0.4 * (job["latency_ms"]["refine"]
                                                  - job["latency_ms"]["refine_ttft"]))
        self.assertEqual(out["usage"]["total_tokens"],
                         sum(u["prompt_tokens"] + u["completion_tokens"]
                             for u in job["usage"].values()))
        # a failure after text went out: the SDK raises the error chunk
        self.sim.rules(self.sim.rule(model=REFINE, stream_error_after=6))
        r = subprocess.run([node, script, base, FLAGGED], capture_output=True, text=True,
                           timeout=120)
        out = json.loads(r.stdout)
        self.assertEqual(out["error"]["name"], "APIError", out)
        self.assertEqual(out["error"]["code"], "refine_failed")
        self.assertTrue([c for c in out["chunks"] if c["content"]])


class JobEventDeltas(Stack):
    sim_args = ("--ttft-ms", "150", "--tps", "150")
    config_over = {"routing": ROUTING}

    def events_of(self, body):
        st, job, _ = self.briefd.post_job(body)
        self.assertEqual(st, 202, job)
        st, events = read_sse(self.briefd.port, "GET", "/v1/jobs/%s/events" % job["id"])
        self.assertEqual(st, 200)
        done = json.loads(events[-1][2])
        deltas = [(t, json.loads(d)["text"]) for t, k, d in events if k == "delta"]
        return events, deltas, done

    def test_refinement_text_arrives_as_delta_events(self):
        events, deltas, done = self.events_of({"text": FLAGGED})
        self.assertEqual(events[-1][1], "done")
        self.assertTrue(done["result"]["refined"], done)
        self.assertEqual("".join(x for _, x in deltas), done["result"]["brief"])
        self.assertGreater(len(deltas), 3, "published as the refine model streams")
        t_done = events[-1][0]
        lat = done["latency_ms"]
        self.assertLess(deltas[0][0], t_done - 0.4 * (lat["refine"] - lat["refine_ttft"]) / 1e3)
        # streamed for the listener though models.refine.stream is off
        self.assertFalse(self.briefd.get("/v1/config")[1]["models"]["refine"]["stream"])

    def test_kept_draft_comes_as_one_delta_before_done(self):
        events, deltas, done = self.events_of({"text": DOC})
        self.assertEqual(done["route"]["decision"], "keep")
        self.assertEqual([x for _, x in deltas], [done["result"]["brief"]])
        kinds = [k for _, k, _ in events if k in ("delta", "done")]
        self.assertEqual(kinds, ["delta", "done"])

    def test_no_listener_no_stream(self):
        """Nobody listens: the refinement is not streamed (models.refine.stream is off)."""
        self.sim.reset()
        st, job, _ = self.briefd.post_job({"text": FLAGGED}, wait=30)
        self.assertTrue(job["result"]["refined"], job)
        refines = [r for r in self.sim.requests() if r.get("model") == REFINE]
        self.assertEqual([r.get("stream") for r in refines], [False])


class PreRouting(Stack):
    sim_args = ("--ttft-ms", "50", "--tps", "2000")
    config_over = {"routing": dict(ROUTING, pre_route=True)}

    def sim_models(self):
        return [r.get("model") for r in reversed(self.sim.requests())]

    def set_pre_route(self, on):
        cfg = json.loads(json.dumps(self.briefd.config))
        cfg["routing"]["pre_route"] = on
        self.briefd.write_config(cfg)
        st, body, _ = self.briefd.request("POST", "/v1/config/reload")
        self.assertEqual(st, 200, body)

    def test_flagged_document_skips_the_draft(self):
        # a neutral rule that counts refine prompts carrying a draft
        self.sim.rules(self.sim.rule(model=REFINE, contains="Draft brief:", delay_ms=0))
        self.sim.reset()
        st, job, _ = self.briefd.post_job({"text": DOC, "topic_flags": ["legal"]}, wait=30)
        self.assertEqual(job["status"], "succeeded", job)
        self.assertEqual(self.sim_models(), [REFINE], "no draft call reached the simulator")
        self.assertEqual(job["route"]["stage"], "input")
        self.assertEqual(job["route"]["decision"], "refine")
        self.assertIsNone(job["result"]["draft"])
        self.assertTrue(job["result"]["refined"])
        self.assertNotIn("draft", job["usage"])
        self.assertNotIn("draft", job["latency_ms"])
        self.assertNotIn("draft", job["cost_usd"])
        # the refine model got the direct prompt (the document, no draft)
        self.assertEqual(self.sim.stats()["rule_hits"], [0])
        # unflagged: drafted and routed on the draft
        self.sim.reset()
        st, job, _ = self.briefd.post_job({"text": DOC}, wait=30)
        self.assertEqual(job["route"]["stage"], "draft")
        self.assertEqual(self.sim_models(), [DRAFT])
        # a keyword in the document decides at the input too
        st, job, _ = self.briefd.post_job({"text": FLAGGED}, wait=30)
        self.assertEqual(job["route"]["stage"], "input")
        self.assertIn("keyword 'lawsuit'", json.dumps(job["route"]["verdicts"]))

    def test_pre_route_off_drafts_first(self):
        self.set_pre_route(False)
        try:
            self.sim.reset()
            st, job, _ = self.briefd.post_job({"text": FLAGGED}, wait=30)
            self.assertEqual(job["route"]["stage"], "draft")
            self.assertEqual(self.sim_models(), [DRAFT, REFINE])
            self.assertTrue(job["result"]["refined"])
        finally:
            self.set_pre_route(True)

    def test_failed_direct_refinement_falls_back_to_the_draft(self):
        self.sim.rules(self.sim.rule(model=REFINE, status=500))
        st, job, _ = self.briefd.post_job({"text": FLAGGED}, wait=30)
        self.assertEqual(job["status"], "succeeded", job)
        self.assertTrue(job["result"]["degraded"], job)
        self.assertEqual(job["route"]["stage"], "input")
        self.assertTrue(job["result"]["draft"])
        self.assertEqual(job["result"]["brief"], job["result"]["draft"])
        self.assertIn("draft", job["usage"])


class ConcurrencyCaps(unittest.TestCase):
    """Two briefd processes on one Redis, each model capped at 2 calls in flight."""

    @classmethod
    def setUpClass(cls):
        cls.tmpdir = tempfile.TemporaryDirectory(prefix="briefd-caps-")
        tmp = cls.tmpdir.name
        cls.redis = Redis(tmp).start()
        cls.sim = Sim(tmp, "fast", ("--ttft-ms", "150", "--tps", "400")).start()
        cfg = base_config(cls.redis, cls.sim, routing=ROUTING,
                          workers={"concurrency": 16, "job_timeout_ms": 8000,
                                   "claim_idle_ms": 9000},
                          models={"draft": {"max_concurrency": 2, "timeout_ms": 3500,
                                            "max_attempts": 1},
                                  "refine": {"max_concurrency": 2}})
        cls.cfg = cfg
        cls.procs = [Briefd(tmp, cfg, name="a").start(), Briefd(tmp, cfg, name="b").start()]

    @classmethod
    def tearDownClass(cls):
        codes = [p.stop() for p in cls.procs]
        cls.sim.stop()
        cls.redis.stop()
        cls.tmpdir.cleanup()
        for c in codes:
            if c not in (0, -9):
                raise AssertionError("briefd exited %s" % c)

    def submit_all(self, n, procs):
        ids, lock = [], threading.Lock()

        def one(i):
            p = procs[i % len(procs)]
            st, job, _ = p.post_job({"text": FLAGGED if i % 2 else DOC + " Item %d." % i,
                                     "priority": "high" if i % 5 == 0 else "normal"})
            self.assertEqual(st, 202, job)
            with lock:
                ids.append((p, job["id"]))
        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return ids

    def test_a_cap_of_two_holds_across_processes(self):
        self.sim.reset()
        ids = self.submit_all(20, self.procs)
        jobs = [p.wait_job(i, timeout=90) for p, i in ids]
        self.assertEqual([j["status"] for j in jobs], ["succeeded"] * 20)
        stats = self.sim.stats()
        for model in (DRAFT, REFINE):
            peak = stats["by_model"][model]["peak_inflight"]
            self.assertLessEqual(peak, 2, stats)
            self.assertEqual(peak, 2, "the cap was reached: the test shows it holds")
        waits = [j["latency_ms"].get("draft_wait", -1) for j in jobs]
        self.assertTrue(all(w >= 0 for w in waits), waits)  # the wait is its own stage
        self.assertGreater(max(waits), 100, waits)          # 20 jobs, 2 at a time
        refined = [j for j in jobs if j["result"]["refined"]]
        self.assertTrue(all("refine_wait" in j["latency_ms"] for j in refined))
        st, s, _ = self.procs[0].get("/v1/stats")
        wait_for(lambda: self.procs[0].get("/v1/stats")[1]["latency_ms"]
                 .get("draft_wait", {}).get("count", 0) >= 20, 10, "draft_wait in stats")
        st, metrics, _ = self.procs[0].get("/metrics")
        self.assertIn('briefd_stage_duration_seconds_count{stage="draft_wait"}', metrics.decode())

    def test_a_killed_process_frees_its_slots(self):
        tmp = self.tmpdir.name
        victim = Briefd(tmp, self.cfg, name="victim").start()
        survivor = self.procs[0]
        # the victim alone picks up two jobs whose draft calls hang, holding both slots
        self.procs[1].stop()
        survivor.stop()
        self.sim.rules(self.sim.rule(model=DRAFT, hang=True, count=2))
        held = [victim.post_job({"text": DOC + " Held %d." % i})[1]["id"] for i in range(2)]
        slots = rkey(self.cfg["redis"]["prefix"], "slots:")
        wait_for(lambda: self.slot_members(slots) == 2, 10, "the victim holding both slots")
        victim.kill()
        self.procs[0] = survivor = Briefd(tmp, self.cfg, name="a2").start()
        self.procs[1] = Briefd(tmp, self.cfg, name="b2").start()
        self.assertEqual(self.slot_members(slots), 2)  # the dead process's leases, for now
        st, fresh, _ = survivor.post_job({"text": DOC + " Fresh."})
        job = survivor.wait_job(fresh["id"], timeout=60)
        self.assertEqual(job["status"], "succeeded", job)
        # it waited for the dead process's leases to lapse (claim_idle_ms 9000: renewed every
        # 3 s, so they lapse 6 to 9 s after the kill), in line for a slot (and, if its
        # deadline passed first, back in the queue)
        lat = job["latency_ms"]
        self.assertGreater(lat["queue"] + lat["draft_wait"], 3000, lat)
        for i in held:  # reclaimed from the dead process: nothing lost
            self.assertEqual(survivor.wait_job(i, timeout=60)["status"], "succeeded")
        wait_for(lambda: self.slot_members(slots) == 0, 10, "every lease given back")

    def slot_members(self, prefix):
        keys = self.redis.cmd("KEYS", prefix + "*")
        return sum(int(self.redis.cmd("ZCARD", k)) for k in keys)


if __name__ == "__main__":
    unittest.main()
