"""Integration: the whole job path over real HTTP, real Redis and the model simulator."""
import json
import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Briefd, Stack, request, rkey  # noqa: E402

SHORT = ("Revenue grew 12 percent in the third quarter. Costs were flat. "
         "The board approved a new data center in Ohio.")
LONG = " ".join(
    "Sentence %d describes the regional sales programme, its budget of %d million dollars, "
    "the partners involved and the milestones planned for the coming quarters." % (i, i * 3)
    for i in range(40))


def verdict(job, policy):
    for v in job["route"]["verdicts"]:
        if v["policy"] == policy:
            return v
    raise AssertionError("no verdict for %s in %s" % (policy, job["route"]))


class JobPath(Stack):
    config_over = {
        "routing": {"mode": "any", "policies": [
            {"type": "length", "min_chars": 400},
            {"type": "topic", "flags": ["legal"], "keywords": ["lawsuit"]},
            {"type": "confidence", "min_mean_logprob": -0.8, "on_missing": "keep"}],
            "guards": {"max_refine_rate": None}},
    }

    def submit(self, body, wait=30):
        st, job, hdrs = self.briefd.post_job(body, wait=wait)
        self.assertIn(st, (200, 202), job)
        if job["status"] not in ("succeeded", "failed"):
            job = self.briefd.wait_job(job["id"])
        return job

    def confident(self, word, **knobs):
        """Drafts of documents containing word come with a high mean logprob."""
        self.sim.rules(self.sim.rule(word, logprob_mean=self.sim.HIGHCONF), **knobs)

    def test_kept_draft(self):
        self.confident("Ohio")
        job = self.submit({"text": SHORT, "max_words": 40})
        self.assertEqual(job["status"], "succeeded")
        self.assertEqual(job["route"]["decision"], "keep")
        self.assertEqual(job["route"]["mode"], "any")
        self.assertEqual([v["verdict"] for v in job["route"]["verdicts"]], ["keep"] * 3)
        res = job["result"]
        self.assertFalse(res["refined"])
        self.assertFalse(res["degraded"])
        self.assertEqual(res["model"], "phi-4-mini")
        self.assertEqual(res["brief"], res["draft"])
        self.assertIn("Revenue grew", res["brief"])
        self.assertNotIn("refine", job["usage"])
        self.assertGreater(job["usage"]["draft"]["prompt_tokens"], 0)
        self.assertGreater(job["usage"]["draft"]["completion_tokens"], 0)
        self.assertFalse(job["usage"]["draft"]["estimated"])
        lat = job["latency_ms"]
        for k in ("queue", "draft", "route", "total"):
            self.assertIn(k, lat)
            self.assertGreaterEqual(lat[k], 0)
        self.assertNotIn("refine", lat)
        self.assertGreaterEqual(lat["total"], lat["draft"])
        self.assertEqual(job["attempts"], 1)
        self.assertIsNone(job["error"])
        self.assertTrue(job["created_at"].endswith("Z"))
        self.assertTrue(job["finished_at"] >= job["created_at"])

    def record(self, job_id):
        """The stored record's header line, parsed."""
        rec = self.redis.cmd("GET", rkey("t%d:" % self.redis.port, "job:" + job_id))
        self.assertIsNotNone(rec, job_id)
        return json.loads(rec.split("\n", 1)[0])

    def test_record_leaves_a_kept_draft_out(self):
        """A kept draft is the brief: the record holds the text once, GET gives both back;
        a refined job's record keeps its draft."""
        self.sim.rules(self.sim.rule("degrade", model="gpt-oss-20b", status=500),
                       self.sim.rule("Ohio", logprob_mean=self.sim.HIGHCONF))
        kept = self.submit({"text": SHORT})
        degraded = self.submit({"text": SHORT + " degrade", "topic_flags": ["legal"]})
        refined = self.submit({"text": SHORT, "topic_flags": ["legal"]})
        self.assertEqual((kept["result"]["refined"], degraded["result"]["degraded"],
                          refined["result"]["refined"]), (False, True, True))
        for job, stored in ((kept, False), (degraded, False), (refined, True)):
            with self.subTest(job=job["result"]):
                res = self.record(job["id"])["job"]["result"]
                self.assertEqual("draft" in res, stored, res)
                self.assertEqual(res["brief"], job["result"]["brief"])
                st, got = self.briefd.get("/v1/jobs/" + job["id"])[:2]
                self.assertEqual(st, 200, got)
                # as the job was answered, members in the same order
                self.assertEqual(list(got["result"].items()), list(job["result"].items()))
        self.assertEqual(degraded["result"]["draft"], degraded["result"]["brief"])
        self.assertEqual(list(degraded["result"])[-2:], ["draft", "refine_error"])
        self.assertNotEqual(refined["result"]["draft"], refined["result"]["brief"])

    def test_refine_by_length_alone(self):
        self.confident("regional sales programme")
        job = self.submit({"text": LONG, "max_words": 100})
        self.assertEqual(verdict(job, "length")["verdict"], "refine")
        self.assertEqual(verdict(job, "topic")["verdict"], "keep")
        self.assertEqual(verdict(job, "confidence")["verdict"], "keep")
        self.assertGreaterEqual(verdict(job, "length")["score"], 400)
        self.assertEqual(job["route"]["decision"], "refine")
        self.assertTrue(job["result"]["refined"])
        self.assertEqual(job["result"]["model"], "gpt-oss-20b")
        self.assertNotEqual(job["result"]["brief"], job["result"]["draft"])
        self.assertIn("refine", job["usage"])
        self.assertIn("refine", job["latency_ms"])

    def test_refine_by_topic_flag_alone(self):
        self.confident("Ohio")
        job = self.submit({"text": SHORT, "topic_flags": ["Legal"]})
        self.assertEqual(verdict(job, "length")["verdict"], "keep")
        self.assertEqual(verdict(job, "topic")["verdict"], "refine")
        self.assertIn("legal", verdict(job, "topic")["detail"])
        self.assertEqual(verdict(job, "confidence")["verdict"], "keep")
        self.assertTrue(job["result"]["refined"])

    def test_refine_by_topic_keyword_alone(self):
        self.confident("Lawsuit")
        job = self.submit({"text": SHORT + " A supplier filed a Lawsuit."})
        self.assertEqual(verdict(job, "topic")["verdict"], "refine")
        self.assertIn("lawsuit", verdict(job, "topic")["detail"])
        self.assertTrue(job["result"]["refined"])

    def test_refine_by_confidence_alone(self):
        self.sim.rules(self.sim.rule("Ohio", logprob_mean=self.sim.LOWCONF))
        job = self.submit({"text": SHORT})
        self.assertEqual(verdict(job, "length")["verdict"], "keep")
        self.assertEqual(verdict(job, "topic")["verdict"], "keep")
        v = verdict(job, "confidence")
        self.assertEqual(v["verdict"], "refine")
        self.assertLess(v["score"], -0.8)
        self.assertAlmostEqual(v["score"], job["signals"]["logprobs"]["mean"], places=9)
        self.assertTrue(job["result"]["refined"])

    def test_truncated_draft_counts_as_low_confidence(self):
        # the draft model stops at 8 tokens (finish_reason "length", content really cut)
        self.sim.rules(self.sim.rule("Ohio", model="phi-4-mini", max_tokens=8),
                       self.sim.rule("Ohio", logprob_mean=self.sim.HIGHCONF))
        job = self.submit({"text": SHORT})
        v = verdict(job, "confidence")
        self.assertEqual(v["verdict"], "refine")
        self.assertIn("length", v["detail"])
        self.assertTrue(job["signals"]["truncated"])
        self.assertLessEqual(job["usage"]["draft"]["completion_tokens"], 8)
        self.assertLessEqual(len(job["result"]["draft"].encode()), 32)

    def test_degraded_refinement_keeps_draft(self):
        self.sim.rules(self.sim.rule("Ohio", model="gpt-oss-20b", status=500),
                       self.sim.rule("Ohio", logprob_mean=self.sim.HIGHCONF))
        job = self.submit({"text": SHORT, "topic_flags": ["legal"]})
        self.assertEqual(job["status"], "succeeded")
        self.assertEqual(job["route"]["decision"], "refine")
        res = job["result"]
        self.assertTrue(res["degraded"])
        self.assertFalse(res["refined"])
        self.assertEqual(res["brief"], res["draft"])
        self.assertEqual(res["model"], "phi-4-mini")
        self.assertIn("refine_error", res)
        self.assertIn("500", res["refine_error"])

    def test_draft_refused_fails_job_with_clear_error(self):
        # a 4xx is about the job (too long a prompt, say): not retried, the job fails
        self.sim.rules(self.sim.rule("Ohio", model="phi-4-mini", status=400))
        job = self.submit({"text": SHORT})
        self.assertEqual(job["status"], "failed")
        self.assertEqual(job["error"]["code"], "draft_failed")
        self.assertEqual(job["error"]["reason"], "http_4xx")
        self.assertIn("1 attempts", job["error"]["message"])
        self.assertIsNone(job["result"])

    def test_draft_model_out_requeues_without_spending_attempts(self):
        # 500s are the model's fault, not the job's: after its retries (3 calls) the job goes
        # back to the queue uncounted, twice, then the model answers and the job succeeds
        self.sim.reset()
        self.sim.rules(self.sim.rule("Ohio", model="phi-4-mini", status=500, count=6),
                       self.sim.rule("Ohio", logprob_mean=self.sim.HIGHCONF))
        job = self.submit({"text": SHORT})
        self.assertEqual(job["status"], "succeeded", job)
        self.assertEqual(job["attempts"], 1)
        phi = self.sim.stats()["by_model"]["phi-4-mini"]["by_outcome"]
        self.assertEqual(phi["error"], 6)
        self.assertEqual(phi["ok"], 1)

    def test_429_is_retried(self):
        self.sim.reset()
        self.sim.rules(self.sim.rule("Ohio", status=429, count=1),
                       self.sim.rule("Ohio", logprob_mean=self.sim.HIGHCONF))
        job = self.submit({"text": SHORT})
        self.assertEqual(job["status"], "succeeded")
        stats = self.sim.stats()
        phi = stats["by_model"]["phi-4-mini"]["by_outcome"]
        self.assertEqual(phi["rate_limited"], 1, stats)
        self.assertEqual(phi["ok"], 1, stats)
        self.assertEqual(self.sim.get_faults()["rules"][0]["count"], 0)   # spent
        # the 429 said Retry-After: 1 (the simulator's default): the retry waited it out,
        # longer than the 50 ms backoff the config asks for
        waited = job["latency_ms"]["draft"] - job["usage"]["draft"]["busy_ms"]
        self.assertGreaterEqual(waited, 950, job["latency_ms"])

    def test_5xx_then_success_is_retried(self):
        self.sim.reset()
        self.confident("Ohio", fail_next=2, fail_model="phi-4-mini")
        job = self.submit({"text": SHORT})
        self.assertEqual(job["status"], "succeeded")
        self.assertEqual(job["attempts"], 1)   # retried within the call, not re-delivered
        # the simulator really sent the two 500s before the answer that was used
        phi = self.sim.stats()["by_model"]["phi-4-mini"]["by_outcome"]
        self.assertEqual(phi.get("error"), 2, phi)
        self.assertEqual(phi.get("ok"), 1, phi)
        self.assertEqual(self.sim.get_faults()["fail_next"], 0)

    def test_garbage_body_is_retried_then_fails_clearly(self):
        self.sim.faults(garbage_rate=1.0, fail_model="phi-4-mini")
        job = self.submit({"text": SHORT})
        self.assertEqual(job["status"], "failed")
        self.assertEqual(job["error"]["reason"], "bad_body")

    def test_missing_usage_is_estimated(self):
        self.confident("Ohio", no_usage=True)
        job = self.submit({"text": SHORT})
        self.assertTrue(job["usage"]["draft"]["estimated"])
        self.assertGreater(job["usage"]["draft"]["completion_tokens"], 0)

    def test_missing_logprobs_follow_on_missing(self):
        self.sim.faults(null_logprobs=True)
        job = self.submit({"text": SHORT})
        v = verdict(job, "confidence")
        self.assertEqual(v["verdict"], "keep")
        self.assertIn("on_missing=keep", v["detail"])
        self.assertFalse(job["signals"]["logprobs"]["present"])

    def test_wait_zero_returns_202_with_location(self):
        st, job, hdrs = self.briefd.post_job({"text": SHORT})
        self.assertEqual(st, 202)
        self.assertEqual(job["status"], "queued")
        self.assertEqual(hdrs["location"], "/v1/jobs/" + job["id"])
        self.assertTrue(job["id"].startswith("job_"))
        done = self.briefd.wait_job(job["id"])
        self.assertEqual(done["status"], "succeeded")

    def test_events_stream(self):
        self.sim.rules(self.sim.rule("Ohio", logprob_mean=self.sim.LOWCONF))
        st, job, _ = self.briefd.post_job({"text": SHORT})
        self.assertEqual(st, 202)
        conn = socket.create_connection(("127.0.0.1", self.briefd.port), timeout=20)
        conn.sendall(("GET /v1/jobs/%s/events HTTP/1.1\r\nHost: x\r\n\r\n" % job["id"]).encode())
        data = b""
        while b"event: done" not in data or not data.endswith(b"0\r\n\r\n"):
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
        conn.close()
        text = data.decode()
        self.assertIn("text/event-stream", text)
        self.assertIn("event: done", text)
        self.assertIn('"status":"succeeded"', text)
        # the terminal status event comes before the done event
        self.assertLess(text.index('event: status'), text.index("event: done"))

    def test_unknown_job_404(self):
        st, body, _ = self.briefd.get("/v1/jobs/job_01M899CZYDCP5YQKTPHM9B7QDC")
        self.assertEqual(st, 404)
        self.assertEqual(body["error"]["code"], "job_not_found")
        st, body, _ = self.briefd.get("/v1/jobs/../../etc/passwd")
        self.assertEqual(st, 404)

    def test_method_not_allowed(self):
        st, body, hdrs = self.briefd.request("DELETE", "/v1/jobs")
        self.assertEqual(st, 405)
        self.assertEqual(hdrs["allow"], "POST")
        self.assertEqual(body["error"]["type"], "invalid_request_error")

    def test_priority_and_metadata_are_kept(self):
        job = self.submit({"text": SHORT, "priority": "high",
                           "metadata": {"source": "crm", "tenant": "acme"}})
        self.assertEqual(job["priority"], "high")
        self.assertEqual(job["metadata"], {"source": "crm", "tenant": "acme"})


class Facade(Stack):
    """POST /v1/chat/completions: the pipeline as a standard chat.completion."""
    config_over = {"routing": {"policies": [{"type": "topic", "flags": ["exec"],
                                             "keywords": ["lawsuit"]}]}}

    def test_completion(self):
        body = {"model": "briefd-hybrid", "max_tokens": 60, "temperature": 0.2,
                "messages": [{"role": "system", "content": "focus on risks"},
                             {"role": "user", "content": SHORT + " A lawsuit is pending."}]}
        st, r, h = self.briefd.request("POST", "/v1/chat/completions", body)
        self.assertEqual(st, 200, r)
        self.assertEqual(r["object"], "chat.completion")
        self.assertEqual(r["model"], "briefd-hybrid")
        self.assertTrue(r["id"].startswith("chatcmpl-job_"))
        msg = r["choices"][0]["message"]
        self.assertEqual(msg["role"], "assistant")
        self.assertEqual(r["choices"][0]["finish_reason"], "stop")
        self.assertEqual(r["briefd"]["route"]["decision"], "refine")
        job = self.briefd.get("/v1/jobs/" + r["briefd"]["job_id"])[1]
        self.assertEqual(msg["content"], job["result"]["brief"])
        self.assertEqual(job["max_words"], 45)   # 60 tokens ~ 45 words
        u = r["usage"]
        self.assertEqual(u["prompt_tokens"], job["usage"]["draft"]["prompt_tokens"]
                         + job["usage"]["refine"]["prompt_tokens"])
        self.assertEqual(u["total_tokens"], u["prompt_tokens"] + u["completion_tokens"])
        self.assertEqual(r["briefd"]["cost_usd"], job["cost_usd"])
        # the answer's briefd object and headers say what the record says
        b = r["briefd"]
        self.assertEqual(b["route"], job["route"])
        self.assertEqual(b["latency_ms"], job["latency_ms"])
        self.assertEqual((b["model"], b["refined"], b["degraded"], b["cached"]),
                         ("gpt-oss-20b", True, False, False))
        self.assertEqual((job["result"]["model"], job["result"]["refined"]),
                         ("gpt-oss-20b", True))
        self.assertEqual(h["x-briefd-job-id"], b["job_id"])
        self.assertEqual(h["x-briefd-route"], "refine")
        self.assertEqual(float(h["x-briefd-cost-usd"]), job["cost_usd"]["total"])
        self.assert_signals(job)

    def assert_signals(self, job):
        # the record's signals are added after the answer went out: still there
        sig = job["signals"]
        self.assertGreater(sig["words"], 0)
        self.assertIs(sig["over_max_words"], False)
        self.assertIsInstance(sig["unsupported_numbers"], list)
        self.assertIs(sig["logprobs"]["present"], True)

    def test_stream(self):
        body = {"model": "briefd-hybrid", "stream": True,
                "stream_options": {"include_usage": True},
                "messages": [{"role": "user", "content": SHORT}]}
        st, raw, h = self.briefd.request("POST", "/v1/chat/completions", body)
        self.assertEqual(st, 200)
        self.assertIn("text/event-stream", h["content-type"])
        events = [l[6:] for l in raw.decode().split("\n") if l.startswith("data: ")]
        self.assertEqual(events[-1], "[DONE]")
        chunks = [json.loads(e) for e in events[:-1]]
        text = "".join(c["choices"][0]["delta"].get("content", "")
                       for c in chunks if c["choices"])
        self.assertIn("Revenue grew", text)
        self.assertEqual(chunks[-2]["choices"][0]["finish_reason"], "stop")
        self.assertGreater(chunks[-1]["usage"]["total_tokens"], 0)
        job = self.briefd.get("/v1/jobs/" + h["x-briefd-job-id"])[1]
        for c in chunks[-2:]:  # the last chunk and the usage chunk carry the briefd object
            self.assertEqual(c["briefd"]["job_id"], job["id"])
            self.assertEqual(c["briefd"]["route"], job["route"])
            self.assertEqual(c["briefd"]["cost_usd"], job["cost_usd"])
            self.assertEqual(c["briefd"]["model"], job["result"]["model"])
        self.assertEqual(chunks[-1]["usage"]["total_tokens"],
                         sum(u["prompt_tokens"] + u["completion_tokens"]
                             for u in job["usage"].values()))
        self.assert_signals(job)

    def test_errors(self):
        st, r, _ = self.briefd.request("POST", "/v1/chat/completions",
                                       {"model": "gpt-4", "messages": [{"role": "user",
                                                                        "content": "x"}]})
        self.assertEqual(st, 404)
        self.assertEqual(r["error"]["code"], "model_not_found")
        st, r, _ = self.briefd.request("POST", "/v1/chat/completions",
                                       {"model": "briefd-hybrid", "messages": []})
        self.assertEqual(st, 400)
        self.sim.rules(self.sim.rule("Ohio", status=500))
        st, r, _ = self.briefd.request("POST", "/v1/chat/completions",
                                       {"model": "briefd-hybrid",
                                        "messages": [{"role": "user", "content": SHORT}]})
        self.assertEqual(st, 502)
        self.assertEqual(r["error"]["code"], "draft_failed")
        st, r, _ = self.briefd.get("/v1/models")
        self.assertEqual([m["id"] for m in r["data"]], ["briefd-hybrid"])


class FacadeRecord(Stack):
    """A facade answer's record is made after the answer, off the next request's path (a
    model call's wait, at most 1 ms later): still there for any read of the process that
    follows the answer, and across a stop that follows it."""

    def facade(self, b):
        st, r, _ = b.request("POST", "/v1/chat/completions",
                             {"model": "briefd-hybrid",
                              "messages": [{"role": "user", "content": SHORT}]})
        self.assertEqual(st, 200, r)
        return r["briefd"]["job_id"]

    def test_read_right_after_the_answer(self):
        # each GET reaches briefd well within the 1 ms the record may wait: the waiting
        # records are made before the read
        for _ in range(40):
            jid = self.facade(self.briefd)
            st, job, _ = self.briefd.get("/v1/jobs/" + jid)
            self.assertEqual((st, job.get("status")), (200, "succeeded"), job)

    def test_stop_right_after_the_answers(self):
        # role api: no worker to wait for, the stop comes within the 1 ms the last record
        # may wait
        for round_ in range(3):
            b = Briefd(self.tmp, self.briefd.config, role="api", name="stop%d" % round_).start()
            ids = [self.facade(b) for _ in range(3)]
            self.assertEqual(b.stop(), 0)
            for jid in ids:  # read through the other process: its reads flush nothing
                st, job, _ = self.briefd.get("/v1/jobs/" + jid)
                self.assertEqual((st, job.get("status")), (200, "succeeded"), job)
                self.assertIn("signals", job)


class FacadeOpenAISdk(Stack):
    """The official OpenAI JS SDK (npm `openai`) is a client of the facade. (No Python SDK:
    Debian 12's python3-openai does not import - its typing_extensions and pydantic are too
    old - and nothing else installs it from Debian packages.)"""
    KEY = "sdk-client-key-0001"
    config_over = {"routing": {"policies": [{"type": "topic", "keywords": ["lawsuit"]}]},
                   "auth": {"keys_env": "T_SDK_KEYS"}}

    @classmethod
    def setUpClass(cls):
        os.environ["T_SDK_KEYS"] = cls.KEY
        super().setUpClass()

    def test_openai_sdk(self):
        import shutil
        import subprocess
        node = shutil.which("node")
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        # a missing dependency fails the test (it never skips)
        self.assertIsNotNone(node, "node is needed (deploy/setup.sh)")
        self.assertTrue(os.path.isdir(os.path.join(root, "node_modules", "openai")),
                        "node_modules/openai is needed (deploy/setup.sh runs npm ci)")
        self.sim.rules(self.sim.rule("Zanzibar", model="phi-4-mini", status=400))
        base = "http://127.0.0.1:%d/v1" % self.briefd.port
        auth = {"Authorization": "Bearer " + self.KEY}
        r = subprocess.run([node, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                               "facade_openai.mjs"), base, self.KEY],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        out = json.loads(r.stdout)
        # the response headers, as the SDK hands them out
        ph = out["plain_headers"]
        self.assertEqual(ph["job_id"], out["plain_job_id"])
        self.assertEqual(ph["route"], "refine")
        self.assertEqual(ph["request_id"], "sdk-request-0001")
        pj = self.briefd.get("/v1/jobs/" + ph["job_id"], headers=auth)[1]
        self.assertEqual(float(ph["cost"]), pj["cost_usd"]["total"])
        self.assertEqual(pj["request_id"], "sdk-request-0001")
        self.assertEqual(pj["traceparent"],
                         "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        # a stream's headers go out before the job ends: its id only; its last chunk has
        # the route and the cost
        sh, sb = out["stream_headers"], out["stream_briefd"]
        self.assertIsNone(sh["route"])
        self.assertIsNone(sh["cost"])
        self.assertEqual(sh["job_id"], sb["job_id"])
        sj = self.briefd.get("/v1/jobs/" + sh["job_id"], headers=auth)[1]
        self.assertEqual(out["streamed2"], sj["result"]["brief"])
        self.assertEqual(sb["route"], "refine")
        self.assertEqual(sb["cost"], sj["cost_usd"]["total"])
        # a streamed request whose draft failed ends in an error the SDK raises
        self.assertEqual(out["stream_error"]["name"], "APIError", out["stream_error"])
        self.assertEqual(out["stream_error"]["code"], "draft_failed")
        self.assertEqual(out["auth_error"], {"status": 401, "code": "invalid_api_key",
                                             "type": "authentication_error",
                                             "name": "AuthenticationError", "param": None})
        job = self.briefd.get("/v1/jobs/" + out["job_id"], headers=auth)[1]
        self.assertEqual(out["content"], job["result"]["brief"])
        self.assertTrue(job["result"]["refined"])
        self.assertEqual(out["finish_reason"], "stop")
        # models.retrieve, and the SDK's typed errors for a 404 and a 400
        self.assertEqual(out["retrieved"], {"id": "briefd-hybrid", "object": "model",
                                            "owned_by": "briefd"})
        self.assertEqual(out["retrieve_error"], {"status": 404, "code": "model_not_found",
                                                 "type": "invalid_request_error",
                                                 "name": "NotFoundError", "param": None})
        self.assertEqual(out["tools_error"], {"status": 400, "code": "unsupported_parameter",
                                              "type": "invalid_request_error",
                                              "name": "BadRequestError", "param": "tools"})
        self.assertEqual(out["usage"]["total_tokens"],
                         out["usage"]["prompt_tokens"] + out["usage"]["completion_tokens"])
        self.assertIn("Revenue grew", out["streamed"])
        self.assertGreater(out["chunks"], 2)
        self.assertGreater(out["stream_usage"]["total_tokens"], 0)
        self.assertEqual(out["models"], ["briefd-hybrid"])
        self.assertEqual(out["error"]["status"], 404)
        self.assertEqual(out["error"]["code"], "model_not_found")
        self.assertEqual(out["error"]["name"], "NotFoundError")


class Webhook(Stack):
    # the receiver runs on 127.0.0.1, a loopback target: the tests allow it explicitly
    config_over = {"webhooks": {"allow": ["127.0.0.1"]}}

    def test_callback_receives_job(self):
        import http.server
        import threading
        got = []

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers["Content-Length"])
                got.append(json.loads(self.rfile.read(n)))
                self.send_response(204 if len(got) > 1 else 500)  # first delivery fails
                self.end_headers()

            def log_message(self, *a):
                pass
        srv = http.server.HTTPServer(("127.0.0.1", 0), H)
        th = threading.Thread(target=srv.serve_forever, daemon=True)
        th.start()
        try:
            url = "http://127.0.0.1:%d/hook" % srv.server_address[1]
            st, job, _ = self.briefd.post_job({"text": SHORT, "callback_url": url}, wait=30)
            self.assertEqual(st, 200)
            deadline = time.time() + 10
            while time.time() < deadline and len(got) < 2:
                time.sleep(0.05)
            self.assertEqual(len(got), 2, "the failed delivery is retried once")
            self.assertEqual(got[1]["id"], job["id"])
            self.assertEqual(got[1]["status"], "succeeded")
            self.assertEqual(got[1]["result"]["brief"], job["result"]["brief"])
        finally:
            srv.shutdown()


class BadInput(Stack):
    """Every bad input of docs/API.md gets its status and envelope, and nothing is queued."""
    config_over = {"limits": {"max_text_bytes": 1000}}

    CASES = [
        ({"raw": b"{not json"}, 400, "invalid_json", None),
        ({"raw": b""}, 400, "invalid_json", None),
        ({"raw": b"[1,2]"}, 400, "invalid_json", None),
        ({"body": {}}, 400, "text_required", "text"),
        ({"body": {"text": ""}}, 400, "text_required", "text"),
        ({"body": {"text": "   \n"}}, 400, "text_required", "text"),
        ({"body": {"text": 5}}, 400, "invalid_type", "text"),
        ({"body": {"text": "x" * 1001}}, 413, "text_too_large", "text"),
        ({"raw": b'{"text":"\xff\xfe bad utf8"}'}, 400, "invalid_utf8", "text"),
        ({"body": {"text": "ok", "max_words": 5}}, 422, "invalid_value", "max_words"),
        ({"body": {"text": "ok", "max_words": 2001}}, 422, "invalid_value", "max_words"),
        ({"body": {"text": "ok", "max_words": 12.5}}, 400, "invalid_type", "max_words"),
        ({"body": {"text": "ok", "max_words": "50"}}, 400, "invalid_type", "max_words"),
        ({"body": {"text": "ok", "topic_flags": "legal"}}, 400, "invalid_type", "topic_flags"),
        ({"body": {"text": "ok", "topic_flags": [1]}}, 400, "invalid_type", "topic_flags[0]"),
        ({"body": {"text": "ok", "topic_flags": ["x"] * 33}}, 422, "invalid_value", "topic_flags"),
        ({"body": {"text": "ok", "priority": "urgent"}}, 422, "invalid_value", "priority"),
        ({"body": {"text": "ok", "metadata": {"source": 1}}}, 400, "invalid_type", "metadata.source"),
        ({"body": {"text": "ok", "metadata": []}}, 400, "invalid_type", "metadata"),
        ({"body": {"text": "ok", "callback_url": "ftp://x/y"}}, 422, "invalid_value", "callback_url"),
        ({"body": {"text": "ok", "instructions": 7}}, 400, "invalid_type", "instructions"),
        ({"body": {"text": "ok", "instructions": "i" * 5000}}, 422, "invalid_value", "instructions"),
        ({"body": {"text": "ok", "surprise": True}}, 400, "unknown_parameter", "surprise"),
        ({"body": {"text": "ok"}, "ctype": "text/plain"}, 415, "unsupported_media_type", None),
        ({"body": {"text": "ok"}, "query": "?wait=61"}, 400, "invalid_value", "wait"),
        ({"body": {"text": "ok"}, "query": "?wait=abc"}, 400, "invalid_value", "wait"),
    ]

    def queued(self):
        p = "t%d:" % self.redis.port
        total = sum(self.redis.cmd("XLEN", rkey(p, "q:" + q)) for q in ("high", "normal", "low"))
        keys = self.redis.cmd("KEYS", rkey(p, "job:*"))
        return total, len(keys)

    def test_every_bad_input(self):
        before = self.queued()
        for case, status, code, param in self.CASES:
            with self.subTest(case=str(case)[:80]):
                raw = case.get("raw")
                if raw is None:
                    raw = json.dumps(case["body"]).encode()
                hdrs = {"Content-Type": case.get("ctype", "application/json")}
                st, body, h = request("127.0.0.1", self.briefd.port, "POST",
                                      "/v1/jobs" + case.get("query", ""), raw=raw, headers=hdrs)
                self.assertEqual(st, status, body)
                err = body["error"]
                self.assertEqual(set(err), {"type", "code", "message", "param"})
                self.assertEqual(err["type"], "invalid_request_error")
                self.assertEqual(err["code"], code)
                self.assertEqual(err["param"], param)
                self.assertTrue(err["message"])
                self.assertIn("x-request-id", h)
        self.assertEqual(self.queued(), before, "a bad request queued something")

    def test_oversized_body_413(self):
        st, body, _ = request("127.0.0.1", self.briefd.port, "POST", "/v1/jobs",
                              raw=b'{"text":"' + b"a" * 200000 + b'"}',
                              headers={"Content-Type": "application/json"})
        self.assertEqual(st, 413)
        self.assertEqual(body["error"]["type"], "invalid_request_error")

    def test_garbage_http_400(self):
        s = socket.create_connection(("127.0.0.1", self.briefd.port), timeout=5)
        s.sendall(b"BLAH / NOPE\r\n\r\n")
        data = s.recv(4096)
        s.close()
        self.assertTrue(data.startswith(b"HTTP/1.1 400"), data)
        st, _, _ = self.briefd.get("/healthz")  # still up
        self.assertEqual(st, 200)


class Costs(Stack):
    """Cost arithmetic to the last digit: token prices for the draft, per-hour for refine."""
    config_over = {
        "models": {
            "draft": {"price": {"input_per_mtok": 0.07, "output_per_mtok": 0.35}},
            "refine": {"price": {"input_per_mtok": 0.5, "output_per_mtok": 1.5,
                                 "per_hour": 1.2}},
        },
        "routing": {"policies": [{"type": "topic", "flags": ["exec"]}]},
    }

    def test_cost_arithmetic_exact(self):
        st, job, _ = self.briefd.post_job({"text": SHORT, "topic_flags": ["exec"]}, wait=30)
        self.assertEqual(st, 200, job)
        d, r = job["usage"]["draft"], job["usage"]["refine"]
        want_d = (d["prompt_tokens"] * 0.07 + d["completion_tokens"] * 0.35) / 1e6
        want_r = (r["prompt_tokens"] * 0.5 + r["completion_tokens"] * 1.5) / 1e6 \
            + 1.2 * r["busy_ms"] / 3.6e6
        self.assertEqual(job["cost_usd"]["draft"], want_d)
        self.assertEqual(job["cost_usd"]["refine"], want_r)
        self.assertEqual(job["cost_usd"]["total"], want_d + want_r)
        self.assertGreater(want_d, 0)
        self.assertGreater(r["busy_ms"], 0)

    def test_usage_matches_simulator_formula(self):
        # The simulator reports prompt_tokens = ceil(P / 4), P the bytes of every message's
        # content, and completion_tokens = ceil(C / 4), C the bytes of the answer
        # (bench/sim/README.md): briefd sends the prompts its config renders and passes the
        # usage through, for both models.
        body = {"text": SHORT, "topic_flags": ["exec"], "max_words": 55,
                "instructions": "Mention the costs."}
        st, job, _ = self.briefd.post_job(body, wait=30)
        self.assertEqual(st, 200, job)
        self.assertTrue(job["result"]["refined"], job["route"])
        models = self.briefd.get("/v1/config")[1]["models"]
        ceil4 = lambda s: -(-len(s.encode()) // 4)

        def prompt(slot, draft=""):
            p = models[slot]["prompt"]
            user = (p["user"].replace("{max_words}", "55")
                    .replace("{instructions}", "\n\nInstructions: Mention the costs.")
                    .replace("{text}", SHORT).replace("{draft}", draft))
            return p["system"] + user
        d, r = job["usage"]["draft"], job["usage"]["refine"]
        self.assertEqual(d["prompt_tokens"], ceil4(prompt("draft")))
        self.assertEqual(d["completion_tokens"], ceil4(job["result"]["draft"]))
        self.assertEqual(r["prompt_tokens"], ceil4(prompt("refine", job["result"]["draft"])))
        self.assertEqual(r["completion_tokens"], ceil4(job["result"]["brief"]))
        self.assertFalse(d["estimated"] or r["estimated"])


class Streaming(Stack):
    """Streaming draft and refine: time-to-first-token is measured."""
    sim_profile = "realistic"
    config_over = {
        "models": {"draft": {"stream": True}, "refine": {"stream": True}},
        "routing": {"policies": [{"type": "topic", "flags": ["exec"]}]},
    }

    def test_stream_ttft(self):
        st, job, _ = self.briefd.post_job({"text": SHORT, "topic_flags": ["exec"]}, wait=30)
        self.assertEqual(st, 200, job)
        lat = job["latency_ms"]
        self.assertGreater(lat["draft_ttft"], 50)      # realistic profile: ttft 80 ms
        self.assertLess(lat["draft_ttft"], lat["draft"])
        self.assertGreater(lat["refine_ttft"], 250)    # 350 ms for gpt-oss-20b
        self.assertLess(lat["refine_ttft"], lat["refine"])
        self.assertTrue(job["result"]["refined"])
        self.assertFalse(job["usage"]["draft"]["estimated"])
        # gpt-oss's reasoning_content never becomes the brief
        self.assertNotIn("analysis", job["result"]["brief"].lower()[:40])


if __name__ == "__main__":
    unittest.main(verbosity=2)
