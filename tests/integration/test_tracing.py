"""Integration: request ids and W3C trace context (docs/API.md#request-ids-and-tracing) -
stored on the job, returned, sent upstream on every model call (the simulator's request log
shows what arrived), a new span per call - and the x-briefd-* response headers on job and
facade responses."""
import json
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Stack  # noqa: E402

SHORT = ("Revenue grew 12 percent in the third quarter. Costs were flat. "
         "The board approved a new data center in Ohio.")
DRAFT, REFINE = "phi-4-mini", "gpt-oss-20b"
TID = "4bf92f3577b34da6a3ce929d0e0e4736"
TP = "00-%s-00f067aa0ba902b7-01" % TID
TS = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"


class Tracing(Stack):
    config_over = {"routing": {"policies": [{"type": "topic", "keywords": ["lawsuit"]}],
                               "guards": {"max_refine_rate": None}}}

    def calls(self, n):
        """The last n requests the simulator received, oldest first."""
        return list(reversed(self.sim.requests(n)))

    def test_ids_and_trace_reach_every_call(self):
        h = {"X-Request-Id": "client-rid-0001", "traceparent": TP, "tracestate": TS}
        st, job, rh = self.briefd.post_job({"text": SHORT + " A lawsuit is pending."},
                                           wait=30, headers=h)
        self.assertEqual(st, 200, job)
        self.assertTrue(job["result"]["refined"], job)
        self.assertEqual(rh["x-request-id"], "client-rid-0001")
        self.assertEqual(job["request_id"], "client-rid-0001")
        self.assertEqual(job["traceparent"], TP)
        self.assertEqual(job["tracestate"], TS)
        draft, refine = self.calls(2)
        self.assertEqual((draft["model"], refine["model"]), (DRAFT, REFINE))
        spans = set()
        for call in (draft, refine):
            hd = call["headers"]
            self.assertEqual(hd["x-request-id"], "client-rid-0001")
            m = re.match(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-01$", hd["traceparent"])
            self.assertIsNotNone(m, hd)
            self.assertEqual(m.group(1), TID)          # the caller's trace
            self.assertNotEqual(m.group(2), "00f067aa0ba902b7")   # a span of our own
            self.assertNotEqual(m.group(2), "0" * 16)
            spans.add(m.group(2))
            self.assertEqual(hd["tracestate"], TS)
        self.assertEqual(len(spans), 2)                # a new span per call
        # GET returns them too, with the headers of a finished job
        st, again, gh = self.briefd.get("/v1/jobs/" + job["id"])
        self.assertEqual(again["request_id"], "client-rid-0001")
        self.assertEqual(gh["x-briefd-job-id"], job["id"])
        self.assertEqual(gh["x-briefd-route"], "refine")
        self.assertEqual(float(gh["x-briefd-cost-usd"]), job["cost_usd"]["total"])
        self.assertEqual(rh["x-briefd-job-id"], job["id"])
        self.assertEqual(rh["x-briefd-route"], "refine")
        self.assertEqual(float(rh["x-briefd-cost-usd"]), job["cost_usd"]["total"])

    def test_a_later_version_is_sent_as_00(self):
        h = {"traceparent": "cc-%s-00f067aa0ba902b7-09-future" % TID}
        st, job, _ = self.briefd.post_job({"text": SHORT}, wait=30, headers=h)
        self.assertEqual(job["traceparent"], "00-%s-00f067aa0ba902b7-09" % TID)
        tp = self.calls(1)[0]["headers"]["traceparent"]
        self.assertRegex(tp, r"^00-%s-[0-9a-f]{16}-09$" % TID)

    def test_invalid_context_is_ignored(self):
        for bad in ("00-%s-00f067aa0ba902b7-01" % ("0" * 32),     # zero trace id
                    "00-%s-0000000000000000-01" % TID,             # zero parent id
                    "00-%s-00f067aa0ba902b7-01" % TID.upper(),     # upper-case hex
                    "ff-%s-00f067aa0ba902b7-01" % TID,             # version ff
                    "00-%s-00f067aa0ba902b7-01-x" % TID,           # 00 with more after it
                    "00-%s-00f067aa0ba902b7" % TID):               # no flags
            st, job, _ = self.briefd.post_job({"text": SHORT}, wait=30,
                                              headers={"traceparent": bad, "tracestate": TS,
                                                       "X-Request-Id": "has space"})
            self.assertEqual(st, 200, job)
            self.assertNotIn("traceparent", job, bad)
            self.assertNotIn("tracestate", job, bad)
            self.assertRegex(job["request_id"], r"^req_[0-9a-f]{16}$")   # generated
            hd = self.calls(1)[0]["headers"]
            self.assertNotIn("traceparent", hd)
            self.assertNotIn("tracestate", hd)
            self.assertEqual(hd["x-request-id"], job["request_id"])
        # a tracestate beyond the bounds is dropped, the traceparent kept
        st, job, _ = self.briefd.post_job({"text": SHORT}, wait=30, headers={
            "traceparent": TP, "tracestate": "k=" + "v" * 600})
        self.assertEqual(job["traceparent"], TP)
        self.assertNotIn("tracestate", job)
        self.assertNotIn("tracestate", self.calls(1)[0]["headers"])

    def test_queued_job_headers_and_idempotent_replay(self):
        st, job, h = self.briefd.post_job({"text": SHORT + " queued"},
                                          headers={"Idempotency-Key": "trace-idem-1",
                                                   "X-Request-Id": "first-send"})
        self.assertEqual(st, 202, job)
        self.assertEqual(h["x-briefd-job-id"], job["id"])
        self.assertNotIn("x-briefd-route", h)
        self.assertNotIn("x-briefd-cost-usd", h)
        self.assertEqual(job["request_id"], "first-send")
        # the same request sent again with another id is the same job, not a conflict
        st, again, h2 = self.briefd.post_job({"text": SHORT + " queued"}, wait=30,
                                             headers={"Idempotency-Key": "trace-idem-1",
                                                      "X-Request-Id": "second-send"})
        self.assertEqual(st, 200, again)
        self.assertEqual(again["id"], job["id"])
        self.assertEqual(again["request_id"], "first-send")
        self.assertEqual(h2["x-request-id"], "second-send")
        self.assertEqual(h2["x-briefd-job-id"], job["id"])
        self.assertEqual(h2["x-briefd-route"], "keep")
        # the events stream names its job
        st, _, eh = self.briefd.get("/v1/jobs/%s/events" % job["id"])
        self.assertEqual(eh["x-briefd-job-id"], job["id"])

    def test_facade_headers_and_ids(self):
        body = {"model": "briefd-hybrid",
                "messages": [{"role": "user", "content": SHORT + " A lawsuit is pending."}]}
        st, r, h = self.briefd.request("POST", "/v1/chat/completions", body,
                                       headers={"X-Request-Id": "facade-rid", "traceparent": TP})
        self.assertEqual(st, 200, r)
        self.assertEqual(h["x-briefd-job-id"], r["briefd"]["job_id"])
        self.assertEqual(h["x-briefd-route"], "refine")
        job = self.briefd.get("/v1/jobs/" + h["x-briefd-job-id"])[1]
        self.assertEqual(float(h["x-briefd-cost-usd"]), job["cost_usd"]["total"])
        self.assertEqual(job["request_id"], "facade-rid")
        self.assertEqual(job["traceparent"], TP)
        for call in self.calls(2):
            self.assertEqual(call["headers"]["x-request-id"], "facade-rid")
            self.assertTrue(call["headers"]["traceparent"].startswith("00-" + TID))
        # streamed: the stream's headers go out before the job ends - its id only; the last
        # chunk's briefd object has the route and the cost
        st, text, h = self.briefd.request("POST", "/v1/chat/completions",
                                          dict(body, stream=True))
        self.assertEqual(st, 200)
        self.assertNotIn("x-briefd-route", h)
        self.assertNotIn("x-briefd-cost-usd", h)
        chunks = [json.loads(line[6:]) for line in text.decode().splitlines()
                  if line.startswith("data: {")]
        last = [c["briefd"] for c in chunks if "briefd" in c][-1]
        self.assertEqual(last["job_id"], h["x-briefd-job-id"])
        self.assertEqual(last["route"]["decision"], "refine")
        job = self.briefd.get("/v1/jobs/" + h["x-briefd-job-id"])[1]
        self.assertEqual(last["cost_usd"]["total"], job["cost_usd"]["total"])
        # an error still names the job it was
        self.sim.rules(self.sim.rule(model=DRAFT, status=400))
        st, r, h = self.briefd.request("POST", "/v1/chat/completions", body)
        self.assertEqual(st, 502, r)
        job = self.briefd.get("/v1/jobs/" + h["x-briefd-job-id"])[1]
        self.assertEqual(job["status"], "failed")
        self.assertEqual(float(h["x-briefd-cost-usd"]), 0)


if __name__ == "__main__":
    unittest.main()
