"""Integration: the model simulator (briefd-modelsim) itself, over real HTTP: the control
plane (knobs, per-model knobs, rules), truncation, mid-stream errors, in-flight peaks, the
request log, capabilities, required headers and the judge (bench/sim/README.md)."""
import json
import math
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SIM, Sim  # noqa: E402

PHI, GPT = "phi-4-mini", "gpt-oss-20b"
DOC = ("Revenue grew 12 percent in the third quarter. Costs were flat. The board approved a "
       "new data center in Ohio, at a cost of 40 million dollars. Hiring continues in 2025.")
RUBRIC = {"type": "json_schema",
          "json_schema": {"name": "brief_rubric", "strict": True,
                          "schema": {"type": "object", "properties": {}}}}


def prompt(doc=DOC, words=40):
    return "Summarize the following document as an executive brief of at most %d words.\n\n" \
           "Document:\n%s" % (words, doc)


def judge_prompt(doc, words, brief):
    return "Document:\n%s\n\nMaximum words: %d\n\nBrief:\n%s" % (doc, words, brief)


def tokens(s):
    return -(-len(s.encode()) // 4)


def events(raw):
    """The data: payloads of an SSE body, in order."""
    return [line[6:] for line in raw.decode().split("\n") if line.startswith("data: ")]


def deadline_wait(what, cond, timeout=10.0):
    """Poll cond() until it is true (a state the simulator reaches on its own)."""
    end = time.time() + timeout
    while time.time() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError("timed out waiting for " + what)


class SimCase(unittest.TestCase):
    """One simulator for the class; every test starts with all settings off and zero stats."""
    sim_args = ()
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.tmpdir = tempfile.TemporaryDirectory(prefix="briefd-sim-")
        cls.sim = Sim(cls.tmpdir.name, "fast", cls.sim_args).start()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.sim.stop()
        finally:
            cls.tmpdir.cleanup()

    def setUp(self):
        self.sim.faults()
        self.sim.reset()

    def chat(self, model, text, headers=None, system=None, **kw):
        msgs = ([{"role": "system", "content": system}] if system else []) + \
               [{"role": "user", "content": text}]
        body = dict({"model": model, "messages": msgs}, **kw)
        return self.sim.request("POST", "/v1/chat/completions", body, headers)

    def ok(self, model, text, **kw):
        st, body, _ = self.chat(model, text, **kw)
        self.assertEqual(st, 200, body)
        return body

    def stream(self, model, text, **kw):
        st, raw, h = self.chat(model, text, stream=True, **kw)
        self.assertEqual(st, 200, raw)
        return events(raw), h

    def bad_faults(self, body):
        st, r, _ = self.sim.request("POST", "/sim/faults", body)
        self.assertEqual(st, 400, r)
        return r["error"]["param"]


class ControlPlane(SimCase):
    def test_bad_settings_name_the_key_and_change_nothing(self):
        before = self.sim.faults(error_rate=0.0, rules=[Sim.rule("x", status=500)])
        cases = [
            ({"nope": 1}, "nope"),
            ({"error_rate": 2}, "error_rate"),
            ({"no_usage": 1}, "no_usage"),
            ({"fail_model": "gpt-4"}, "fail_model"),
            ({"reasoning_field": "thoughts"}, "reasoning_field"),
            ({"judge_wrap": "xml"}, "judge_wrap"),
            ({"models": {"gpt-4": {}}}, "models.gpt-4"),
            ({"models": {GPT: {"no_strem": True}}}, "models.gpt-oss-20b.no_strem"),
            ({"models": {GPT: {"fail_model": PHI}}}, "models.gpt-oss-20b.fail_model"),
            ({"require_headers": {"bad name": None}}, "require_headers.bad name"),
            ({"require_headers": {"api-key": 5}}, "require_headers.api-key"),
            ({"rules": {}}, "rules"),
            ({"rules": [{"status": 500}, {"statuss": 500}]}, "rules[1].statuss"),
            ({"rules": [{"status": 700}]}, "rules[0].status"),
            ({"rules": [{"status": 500, "hang": True}]}, "rules[0].hang"),
            ({"rules": [{"contains": "x"}]}, "rules[0]"),
            ({"rules": [{"contains": "", "status": 500}]}, "rules[0].contains"),
            ({"rules": [{"model": "gpt-4", "status": 500}]}, "rules[0].model"),
            ({"rules": [{"kind": "embed", "status": 500}]}, "rules[0].kind"),
            ({"rules": [{"count": 1.5, "status": 500}]}, "rules[0].count"),
            ({"rules": [{"logprob_mean": 0.5}]}, "rules[0].logprob_mean"),
            ({"rules": [{"max_tokens": 0}]}, "rules[0].max_tokens"),
            ({"rules": [{"delay_ms": -1}]}, "rules[0].delay_ms"),
            ({"rules": [{"status": 500}] * 65}, "rules"),
        ]
        for body, param in cases:
            with self.subTest(body=body):
                self.assertEqual(self.bad_faults(body), param)
        self.assertEqual(self.sim.get_faults(), before)

    def test_settings_round_trip(self):
        setting = {
            "error_rate": 0.25, "fail_next": 3, "no_usage": True, "reasoning_field": "none",
            "judge_wrap": "fence", "require_bearer": "k", "require_headers": {"x-a": None},
            "fail_model": PHI,
            "models": {GPT: {"no_stream": True, "rate_limit_next": 2}},
            "rules": [Sim.rule("Ohio", model=GPT, count=2, status=503, delay_ms=5),
                      Sim.rule(None, kind="judge", logprob_mean=-1.0, max_tokens=9)],
        }
        got = self.sim.faults(**setting)
        again = self.sim.faults(**got)        # what GET shows is a valid setting
        self.assertEqual(got, again)
        self.assertEqual(got["models"], {GPT: {"no_stream": True, "rate_limit_next": 2}})
        self.assertEqual(got["rules"][0], {"model": GPT, "kind": None, "contains": "Ohio",
                                           "count": 2, "status": 503, "delay_ms": 5})
        self.assertEqual(got["rules"][1]["kind"], "judge")
        self.assertEqual(got["require_headers"], {"x-a": None})
        self.assertEqual(self.sim.faults()["rules"], [])

    def test_rule_matches_model_substring_and_count(self):
        self.sim.rules(Sim.rule("Zebra", model=GPT, count=2, status=503))
        self.ok(PHI, prompt(DOC + " Zebra crossing."))            # other model
        self.ok(GPT, prompt())                                    # no substring
        for _ in range(2):
            st, r, _ = self.chat(GPT, prompt(DOC + " Zebra crossing."))
            self.assertEqual(st, 503, r)
            self.assertEqual(r["error"]["code"], "sim_unavailable")
        self.ok(GPT, prompt(DOC + " Zebra crossing."))            # spent
        self.assertEqual(self.sim.get_faults()["rules"][0]["count"], 0)
        stats = self.sim.stats()
        self.assertEqual(stats["rule_hits"], [2])
        self.assertEqual(stats["by_model"][GPT]["by_outcome"]["error"], 2)
        self.assertEqual(stats["by_model"][GPT]["by_outcome"]["ok"], 2)

    def test_429_rule_sends_retry_after_once(self):
        self.sim.rules(Sim.rule("Ohio", status=429, count=1))
        st, r, h = self.chat(PHI, prompt())
        self.assertEqual(st, 429)
        self.assertEqual(r["error"]["code"], "rate_limit_exceeded")
        self.assertEqual(h["retry-after"], "1")
        self.ok(PHI, prompt())

    def test_first_matching_rule_wins_per_effect(self):
        self.sim.rules(Sim.rule("Ohio", logprob_mean=-1.6),
                       Sim.rule(None, logprob_mean=-0.15, max_tokens=6))
        r = self.ok(PHI, prompt(), logprobs=True)
        lps = [t["logprob"] for t in r["choices"][0]["logprobs"]["content"]]
        self.assertEqual(len(lps), 6)                       # the second rule's max_tokens
        self.assertAlmostEqual(sum(lps) / len(lps), -1.6, places=3)   # the first's mean
        r = self.ok(PHI, prompt("Costs were flat for a year. Nothing else changed."),
                    logprobs=True)
        lps = [t["logprob"] for t in r["choices"][0]["logprobs"]["content"]]
        self.assertAlmostEqual(sum(lps) / len(lps), -0.15, delta=0.08 / len(lps) + 1e-4)
        self.assertEqual(self.sim.stats()["rule_hits"], [1, 2])

    def test_hang_garbage_delay(self):
        self.sim.rules(Sim.rule("garbage please", garbage=True),
                       Sim.rule("slowly", delay_ms=300))
        with self.assertRaises(ValueError):     # 200, application/json, not JSON
            self.chat(PHI, prompt(DOC + " garbage please"))
        self.assertEqual(self.sim.stats()["by_outcome"]["garbage"], 1)
        t0 = time.time()
        self.ok(PHI, prompt(DOC + " slowly"))
        self.assertGreaterEqual(time.time() - t0, 0.3)
        self.sim.rules(Sim.rule(None, hang=True))
        with self.assertRaises(socket.timeout):
            _post_with_timeout(self.sim.port, {"model": PHI, "messages": [
                {"role": "user", "content": "hi"}]}, 0.5)
        deadline_wait("the hung request to be dropped",
                      lambda: self.sim.stats()["aborted"] == 1)
        self.assertEqual(self.sim.stats()["by_outcome"]["hang"], 1)

    def test_old_markers_are_plain_text(self):
        r = self.ok(PHI, prompt(DOC + " [[sim:fail]] [[sim:lowconf]] [[sim:length]]"),
                    logprobs=True)
        c = r["choices"][0]
        self.assertEqual(c["finish_reason"], "stop")
        lps = [t["logprob"] for t in c["logprobs"]["content"]]
        self.assertGreater(sum(lps) / len(lps), -0.8)
        st, _, _ = self.chat(GPT, prompt(DOC + " [[sim:fail-refine]] [[sim:429-once]]"))
        self.assertEqual(st, 200)

    def test_fail_model_scopes_global_knobs_and_models_override(self):
        self.sim.faults(fail_next=1, fail_model=GPT, models={PHI: {"rate_limit_next": 1}})
        self.assertEqual(self.chat(PHI, prompt())[0], 429)
        self.assertEqual(self.chat(PHI, prompt())[0], 200)
        self.assertEqual(self.chat(GPT, prompt())[0], 500)
        self.assertEqual(self.chat(GPT, prompt())[0], 200)
        f = self.sim.get_faults()
        self.assertEqual((f["fail_next"], f["models"][PHI]["rate_limit_next"]), (0, 0))

    def test_bad_requests(self):
        cases = [({"model": PHI}, 400, "messages"),
                 ({"model": 5, "messages": []}, 400, "model"),
                 ({"model": "gpt-4", "messages": [{"role": "user", "content": "x"}]}, 404,
                  "model"),
                 ({"model": PHI, "messages": [{"role": "user", "content": "x"}],
                   "max_tokens": 0}, 400, "max_tokens"),
                 ({"model": PHI, "messages": [{"role": "user", "content": "x"}],
                   "temperature": 3}, 400, "temperature"),
                 ({"model": PHI, "messages": [{"role": "user", "content": "x"}],
                   "response_format": {"type": "json_schema"}}, 400, "response_format")]
        for body, status, param in cases:
            with self.subTest(body=body):
                st, r, _ = self.sim.request("POST", "/v1/chat/completions", body)
                self.assertEqual(st, status, r)
                self.assertEqual(r["error"]["param"], param)
        by = self.sim.stats()["by_outcome"]
        self.assertEqual((by["bad_request"], by["not_found"]), (5, 1))


def _post_with_timeout(port, body, timeout):
    """POST on a raw socket and wait for an answer that never comes (socket.timeout)."""
    data = json.dumps(body).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                  % (len(data), data))
        s.recv(1)


class Drafts(SimCase):
    def test_stopwords_do_not_score(self):
        """The extractive draft scores sentences by their content words: sentences made of
        stopwords (repeated, so they would score highest if counted) are left out."""
        filler = "There were those which would have been there with them. " * 6
        doc = filler + "Revenue grew and revenue beat the revenue forecast."
        c = self.ok(PHI, prompt(doc))["choices"][0]["message"]["content"]
        self.assertIn("Revenue grew", c)
        self.assertNotIn("those", c)


class Truncation(SimCase):
    def test_max_tokens_really_cuts(self):
        full = self.ok(PHI, prompt())["choices"][0]["message"]["content"]
        self.assertGreater(tokens(full), 5)
        r = self.ok(PHI, prompt(), max_tokens=5, logprobs=True)
        c = r["choices"][0]
        self.assertEqual(c["finish_reason"], "length")
        self.assertEqual(c["message"]["content"], full.encode()[:20].decode())
        self.assertLessEqual(r["usage"]["completion_tokens"], 5)
        self.assertEqual(r["usage"]["completion_tokens"], tokens(c["message"]["content"]))
        self.assertEqual("".join(t["token"] for t in c["logprobs"]["content"]),
                         c["message"]["content"])
        r = self.ok(PHI, prompt(), max_tokens=1000)
        self.assertEqual(r["choices"][0]["finish_reason"], "stop")
        self.assertEqual(r["choices"][0]["message"]["content"], full)

    def test_rule_limit_below_request_limit(self):
        self.sim.rules(Sim.rule("Ohio", model=PHI, max_tokens=3))
        r = self.ok(PHI, prompt(), max_tokens=10)
        self.assertEqual(r["choices"][0]["finish_reason"], "length")
        self.assertEqual(r["usage"]["completion_tokens"], 3)
        self.assertLessEqual(len(r["choices"][0]["message"]["content"].encode()), 12)
        r = self.ok(GPT, prompt(), max_tokens=10)          # the rule is phi's
        self.assertEqual(r["usage"]["completion_tokens"], 10)

    def test_utf8_cut_and_stream(self):
        doc = "Le café a vendu 12 crêpes à Zürich. Les coûts sont stables. " * 3
        r = self.ok(PHI, prompt(doc), max_tokens=7)
        content = r["choices"][0]["message"]["content"]
        self.assertLessEqual(len(content.encode()), 28)
        self.assertEqual(r["usage"]["completion_tokens"], tokens(content))
        evs, _ = self.stream(PHI, prompt(doc), max_tokens=7,
                             stream_options={"include_usage": True})
        self.assertEqual(evs[-1], "[DONE]")
        chunks = [json.loads(e) for e in evs[:-1]]
        text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks
                       if c["choices"])
        self.assertEqual(text, content)
        self.assertEqual(chunks[-2]["choices"][0]["finish_reason"], "length")
        self.assertEqual(chunks[-1]["usage"]["completion_tokens"], tokens(content))


class Streams(SimCase):
    def test_stream_error_after(self):
        full = self.ok(GPT, prompt())["choices"][0]["message"]["content"]
        self.sim.rules(Sim.rule("Ohio", model=GPT, stream_error_after=3))
        evs, _ = self.stream(GPT, prompt(), logprobs=True,
                             stream_options={"include_usage": True})
        self.assertNotIn("[DONE]", evs)
        last = json.loads(evs[-1])
        self.assertEqual(set(last), {"error"})
        self.assertEqual(last["error"]["code"], "sim_stream_error")
        chunks = [json.loads(e) for e in evs[:-1]]
        text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
        self.assertEqual(text, full.encode()[:12].decode())
        ntok = sum(len((c["choices"][0].get("logprobs") or {}).get("content", []))
                   for c in chunks)
        self.assertEqual(ntok, 3)
        self.assertTrue(all(c["choices"][0]["finish_reason"] is None for c in chunks))
        st, r, _ = self.chat(GPT, prompt())                       # not streamed: a 500
        self.assertEqual(st, 500, r)
        by = self.sim.stats()["by_model"][GPT]["by_outcome"]
        self.assertEqual((by["stream_error"], by["error"], by["ok"]), (1, 1, 1))

    def test_stream_error_after_zero_tokens(self):
        self.sim.rules(Sim.rule(None, stream_error_after=0))
        evs, _ = self.stream(PHI, prompt())
        self.assertEqual(json.loads(evs[-1])["error"]["type"], "server_error")
        self.assertFalse(any("content" in json.loads(e)["choices"][0]["delta"]
                             for e in evs[:-1]))

    def test_peak_inflight(self):
        self.sim.rules(Sim.rule(None, hang=True))
        socks = []
        try:
            for model in [PHI] * 4 + [GPT] * 2:
                socks.append(_send_chat(self.sim.port, model))
            deadline_wait("6 requests in flight",
                          lambda: self.sim.stats()["inflight"] == 6)
            st = self.sim.stats()
            self.assertEqual(st["peak_inflight"], 6)
            self.assertEqual(st["by_model"][PHI]["inflight"], 4)
            self.assertEqual(st["by_model"][PHI]["peak_inflight"], 4)
            self.assertEqual(st["by_model"][GPT]["peak_inflight"], 2)
            self.assertEqual(st["pending"], 6)
        finally:
            for s in socks:
                s.close()
        deadline_wait("the clients to be gone", lambda: self.sim.stats()["inflight"] == 0)
        st = self.sim.stats()
        self.assertEqual((st["peak_inflight"], st["aborted"], st["pending"]), (6, 6, 0))
        self.sim.reset()
        st = self.sim.stats()
        self.assertEqual((st["inflight"], st["peak_inflight"]), (0, 0))
        self.sim.faults()
        self.ok(PHI, prompt())
        self.assertEqual(self.sim.stats()["peak_inflight"], 1)

    def test_delayed_answers_count_while_waiting(self):
        self.sim.rules(Sim.rule(None, delay_ms=400))
        socks = [_send_chat(self.sim.port, PHI) for _ in range(3)]
        try:
            deadline_wait("3 in flight", lambda: self.sim.stats()["inflight"] == 3)
            for s in socks:
                self.assertIn(b"200 OK", _read_all(s))
        finally:
            for s in socks:
                s.close()
        st = self.sim.stats()
        self.assertEqual((st["inflight"], st["peak_inflight"], st["aborted"]), (0, 3, 0))


def _send_chat(port, model):
    data = json.dumps({"model": model, "messages": [{"role": "user", "content": prompt()}]}).encode()
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
              b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
              % (len(data), data))
    return s


def _read_all(s):
    out = b""
    while True:
        b = s.recv(65536)
        if not b:
            return out
        out += b


class RequestLog(SimCase):
    def test_fields_and_headers(self):
        hdrs = {"Authorization": "Bearer test-key-1", "api-key": "azure-key",
                "X-Request-Id": "rid-42", "traceparent": "00-abc-def-01",
                "X-Portkey-Provider": "openai", "X-Custom": "c", "Other-Header": "no"}
        self.chat(GPT, judge_prompt(DOC, 40, "Brief: Costs were flat."), headers=hdrs,
                  response_format=RUBRIC, max_tokens=600, temperature=0, logprobs=True)
        self.chat(PHI, prompt())
        log = self.sim.requests()
        self.assertEqual(len(log), 2)
        self.assertEqual(log[0]["model"], PHI)                     # newest first
        e = log[1]
        self.assertEqual(log[0]["seq"], e["seq"] + 1)
        self.assertEqual({k: e[k] for k in ("model", "kind", "stream", "logprobs",
                                            "response_format", "max_tokens", "temperature",
                                            "outcome")},
                         {"model": GPT, "kind": "judge", "stream": False, "logprobs": True,
                          "response_format": "brief_rubric", "max_tokens": 600,
                          "temperature": 0, "outcome": "ok"})
        self.assertEqual(e["authorization"], {"scheme": "Bearer", "token": "test-key-1"})
        self.assertEqual(e["headers"], {"api-key": "azure-key", "x-request-id": "rid-42",
                                        "traceparent": "00-abc-def-01",
                                        "x-portkey-provider": "openai", "x-custom": "c"})
        self.assertIsNone(log[0]["authorization"])
        self.assertEqual(log[0]["response_format"], None)
        self.assertEqual(len(self.sim.requests(limit=1)), 1)

    def test_refused_requests_are_logged_and_bounds(self):
        self.sim.request("POST", "/v1/chat/completions", raw=b"{not json",
                         headers={"Content-Type": "application/json"})
        e = self.sim.requests()[0]
        self.assertEqual((e["model"], e["kind"], e["outcome"]), (None, None, "bad_request"))
        for bad in ("0", "257", "x"):
            st, r, _ = self.sim.request("GET", "/sim/requests?limit=" + bad)
            self.assertEqual(st, 400, r)
        self.sim.reset()
        self.assertEqual(self.sim.requests(), [])

    def test_ring_keeps_the_last_256(self):
        for i in range(260):
            self.chat(PHI, "note %d" % i)
        log = self.sim.requests()
        self.assertEqual(len(log), 256)
        self.assertEqual(log[0]["seq"] - log[-1]["seq"], 255)


class Capabilities(SimCase):
    def test_logprobs_knobs(self):
        c = self.ok(PHI, prompt(), logprobs=True)["choices"][0]
        self.assertTrue(c["logprobs"]["content"])
        for t in c["logprobs"]["content"]:      # the shape OpenAI's servers answer with
            self.assertEqual(sorted(t), ["bytes", "logprob", "token", "top_logprobs"])
            self.assertIsNone(t["bytes"])
            self.assertEqual(t["top_logprobs"], [])
            self.assertLessEqual(t["logprob"], 0)
        self.sim.faults(models={PHI: {"null_logprobs": True}, GPT: {"no_logprobs": True}})
        self.assertIsNone(self.ok(PHI, prompt(), logprobs=True)["choices"][0]["logprobs"])
        self.assertNotIn("logprobs", self.ok(GPT, prompt(), logprobs=True)["choices"][0])

    def test_no_stream_per_model(self):
        self.sim.faults(models={GPT: {"no_stream": True}})
        st, body, h = self.chat(GPT, prompt(), stream=True,
                                stream_options={"include_usage": True})
        self.assertEqual(st, 200)
        self.assertIn("application/json", h["content-type"])
        self.assertEqual(body["object"], "chat.completion")
        self.assertGreater(body["usage"]["completion_tokens"], 0)
        evs, h = self.stream(PHI, prompt())
        self.assertIn("text/event-stream", h["content-type"])
        self.assertEqual(evs[-1], "[DONE]")
        self.assertEqual(self.sim.stats()["by_model"][GPT]["streams"], 0)

    def test_no_stream_usage(self):
        evs, _ = self.stream(PHI, prompt(), stream_options={"include_usage": True})
        self.assertIn("usage", json.loads(evs[-2]))
        self.sim.faults(no_stream_usage=True)
        evs, _ = self.stream(PHI, prompt(), stream_options={"include_usage": True})
        self.assertEqual(evs[-1], "[DONE]")
        self.assertFalse(any("usage" in json.loads(e) for e in evs[:-1]))
        self.assertIn("usage", self.ok(PHI, prompt()))      # a plain answer keeps it

    def test_reasoning_field(self):
        msg = self.ok(GPT, prompt())["choices"][0]["message"]
        self.assertTrue(msg["reasoning_content"])
        self.sim.faults(models={GPT: {"reasoning_field": "reasoning"}})
        msg = self.ok(GPT, prompt())["choices"][0]["message"]
        self.assertNotIn("reasoning_content", msg)
        self.assertTrue(msg["reasoning"])
        evs, _ = self.stream(GPT, prompt())
        deltas = [json.loads(e)["choices"][0]["delta"] for e in evs[:-1]]
        self.assertTrue(any("reasoning" in d for d in deltas))
        self.sim.faults(reasoning_field="none")
        msg = self.ok(GPT, prompt())["choices"][0]["message"]
        self.assertEqual(set(msg), {"role", "content"})

    def test_unlisted(self):
        self.sim.faults(models={PHI: {"unlisted": True}})
        st, r, _ = self.sim.request("GET", "/v1/models")
        self.assertEqual([m["id"] for m in r["data"]], [GPT])
        self.assertEqual(self.sim.request("GET", "/v1/models/" + PHI)[0], 404)
        self.assertEqual(self.sim.request("GET", "/v1/models/" + GPT)[0], 200)
        self.ok(PHI, prompt())                                  # still answers

    def test_usage_formula(self):
        system = "You write briefs. ünïcödé"
        r = self.ok(PHI, prompt(), system=system)
        content = r["choices"][0]["message"]["content"]
        self.assertEqual(r["usage"]["prompt_tokens"],
                         -(-(len(system.encode()) + len(prompt().encode())) // 4))
        self.assertEqual(r["usage"]["completion_tokens"], tokens(content))
        self.assertEqual(r["usage"]["total_tokens"],
                         r["usage"]["prompt_tokens"] + r["usage"]["completion_tokens"])


class RequiredHeaders(SimCase):
    def test_gateway_header(self):
        self.sim.faults(require_headers={"x-portkey-provider": None})
        st, r, _ = self.chat(PHI, prompt())
        self.assertEqual(st, 400)
        self.assertEqual(r["error"]["code"], "missing_required_header")
        self.assertEqual(r["error"]["param"], "x-portkey-provider")
        self.assertEqual(r["error"]["message"],
                         "Either x-portkey-config or x-portkey-provider header is required")
        self.assertEqual(self.sim.request("GET", "/v1/models")[0], 400)
        self.assertEqual(self.chat(PHI, prompt(), headers={"X-Portkey-Provider": "x"})[0], 200)
        self.assertEqual(self.sim.request("GET", "/v1/models",
                                          headers={"x-portkey-provider": "y"})[0], 200)
        self.assertEqual(self.sim.request("GET", "/healthz")[0], 200)
        self.assertEqual(self.sim.stats()["by_outcome"]["bad_request"], 1)

    def test_header_value(self):
        self.sim.faults(require_headers={"api-key": "secret"})
        st, r, _ = self.chat(PHI, prompt())
        self.assertEqual((st, r["error"]["param"]), (400, "api-key"))
        st, r, _ = self.chat(PHI, prompt(), headers={"api-key": "wrong"})
        self.assertEqual((st, r["error"]["code"]), (401, "invalid_header_value"))
        self.assertEqual(self.chat(PHI, prompt(), headers={"api-key": "secret"})[0], 200)

    def test_bearer_per_model(self):
        self.sim.faults(models={GPT: {"require_bearer": "K2"}})
        self.assertEqual(self.chat(PHI, prompt())[0], 200)
        for hdrs in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic K2"}):
            st, r, _ = self.chat(GPT, prompt(), headers=hdrs)
            self.assertEqual((st, r["error"]["code"]), (401, "invalid_api_key"), hdrs)
        self.assertEqual(self.chat(GPT, prompt(), headers={"Authorization": "Bearer K2"})[0],
                         200)
        self.assertEqual(self.sim.stats()["by_model"][GPT]["by_outcome"]["unauthorized"], 3)


class Flags(SimCase):
    """The same knobs from the command line."""
    sim_args = ("--require-header", "x-portkey-provider", "--require-bearer", "KEY",
                "--judge-wrap", "fence")

    def setUp(self):
        self.sim.reset()    # keep the command-line settings

    def test_flags_set_knobs(self):
        f = self.sim.get_faults()
        self.assertEqual((f["require_headers"], f["require_bearer"], f["judge_wrap"]),
                         ({"x-portkey-provider": None}, "KEY", "fence"))
        self.assertEqual(self.chat(PHI, prompt())[0], 400)
        hdrs = {"x-portkey-provider": "openai"}
        self.assertEqual(self.chat(PHI, prompt(), headers=hdrs)[0], 401)
        hdrs["Authorization"] = "Bearer KEY"
        self.assertEqual(self.chat(PHI, prompt(), headers=hdrs)[0], 200)

    def test_command_line(self):
        def run(*args):
            return subprocess.run([SIM] + list(args), capture_output=True, text=True, timeout=10)
        r = run("--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("SIMULATOR", r.stdout)
        for bad in (["--nope"], ["--error-rate", "2"], ["--reasoning-field", "x"],
                    ["--no-usage", "--faults", "{}"], ["--faults", "{\"rules\": 1}"],
                    ["--fail-model", "gpt-4"]):
            self.assertEqual(run(*bad).returncode, 2, bad)

    def test_faults_flag(self):
        setting = {"models": {GPT: {"unlisted": True}},
                   "rules": [Sim.rule("Ohio", status=500)]}
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "faults.json")
            with open(path, "w") as f:
                json.dump(setting, f)
            other = Sim(tmp, "zero", ["--faults", "@" + path, "--no-usage"]).start()
            try:
                f = other.get_faults()
                self.assertEqual(f["models"], {GPT: {"unlisted": True}})
                self.assertEqual(f["rules"][0]["status"], 500)
                self.assertTrue(f["no_usage"])
            finally:
                other.stop()


    def test_max_conns(self):
        """--max-conns N: with N connections busy, the next one is refused with a 503."""
        with tempfile.TemporaryDirectory() as tmp:
            other = Sim(tmp, "zero", ["--max-conns", "3", "--hang-rate", "1"]).start()
            socks = []
            try:
                socks = [_send_chat(other.port, PHI) for _ in range(2)]
                # the stats request is the third connection, closed once answered
                deadline_wait("2 in flight", lambda: other.stats()["inflight"] == 2)
                refused = None
                deadline = time.time() + 10
                while refused is None and time.time() < deadline:
                    third = _send_chat(other.port, PHI)  # the third busy one
                    socks.append(third)
                    st, body, _ = other.request("GET", "/sim/stats")
                    if st == 503:
                        refused = body
                    else:
                        # only if the third was admitted but not yet read: the server then
                        # closed it as never used to make room (as an idle keep-alive one)
                        third.settimeout(5)
                        try:
                            self.assertEqual(third.recv(100), b"", "a 4th connection admitted")
                        except ConnectionResetError:
                            pass  # closed with its request unread
                        socks.pop().close()
                self.assertIsNotNone(refused, "no connection was refused")
                self.assertEqual(refused["error"]["code"], "too_many_connections")
                socks.pop(0).close()  # one busy connection goes: room for the next
                deadline_wait("room again", lambda: other.request(
                    "GET", "/sim/stats")[0] == 200)
            finally:
                for s in socks:
                    s.close()
                other.stop()
        for bad in ("0", "65537", "1.5", "x"):
            r = subprocess.run([SIM, "--max-conns", bad], capture_output=True, timeout=10)
            self.assertEqual(r.returncode, 2, bad)


class Harness(unittest.TestCase):
    def test_stop_checks_the_exit_status(self):
        with tempfile.TemporaryDirectory() as tmp:
            good = Sim(tmp, "zero").start()
            self.assertIsNone(good.stop(check=False))      # SIGTERM: exit status 0
            bad = Sim(tmp, "zero").start()
            bad.proc.kill()
            bad.proc.wait()
            with self.assertRaisesRegex(AssertionError, "exited -9"):
                bad.stop()


class Judge(SimCase):
    def judge(self, brief, doc=DOC, words=40, model=GPT, **kw):
        r = self.ok(model, judge_prompt(doc, words, brief), system="the rubric",
                    temperature=0, response_format=RUBRIC, **kw)
        return r, r["choices"][0]["message"]["content"]

    def scores(self, brief, **kw):
        _, content = self.judge(brief, **kw)
        v = json.loads(content)
        self.assertEqual(list(v), ["coherence", "faithfulness", "brevity", "rationale"])
        for k in ("coherence", "faithfulness", "brevity"):
            self.assertIsInstance(v[k], int)
            self.assertTrue(1 <= v[k] <= 5, v)
        return v

    TIDY = "Brief: Revenue grew 12 percent in the third quarter. Costs were flat."

    def test_deterministic_and_any_model(self):
        r1, c1 = self.judge(self.TIDY)
        r2, c2 = self.judge(self.TIDY)
        self.assertEqual(c1, c2)
        _, c3 = self.judge(self.TIDY, model=PHI)
        self.assertEqual(c1, c3)
        self.assertEqual(json.loads(c1)["faithfulness"], 5)
        u = r1["usage"]
        self.assertEqual(u["prompt_tokens"], math.ceil(
            (len("the rubric".encode()) + len(judge_prompt(DOC, 40, self.TIDY).encode())) / 4))
        self.assertEqual(u["completion_tokens"], tokens(c1))
        self.ok(PHI, prompt())
        self.assertEqual(self.sim.stats()["by_kind"], {"chat": 1, "judge": 3})
        self.assertEqual(self.sim.stats()["by_model"][PHI]["by_kind"], {"chat": 1, "judge": 1})

    def test_invented_numbers_lower_faithfulness(self):
        base = self.scores("Brief: Revenue grew 12 percent. Costs were flat in 2025.")
        one = self.scores("Brief: Revenue grew 14 percent. Costs were flat in 2025.")
        two = self.scores("Brief: Revenue grew 14 percent. Costs were flat in 2031.")
        self.assertEqual(base["faithfulness"], 5)
        self.assertEqual(one["faithfulness"], 4)
        self.assertEqual(two["faithfulness"], 3)
        self.assertIn("14", two["rationale"])
        self.assertIn("2031", two["rationale"])
        six = self.scores("Brief: Figures 1 2 3 4 5 6 7 are new; 8 and 9 too.")
        self.assertEqual(six["faithfulness"], 1)

    def test_over_the_word_limit_lowers_brevity(self):
        brief = self.TIDY + " The board approved a new data center in Ohio."
        within = self.scores(brief, words=40)
        over = self.scores(brief, words=15)
        far = self.scores(brief, words=8)
        self.assertEqual(within["brevity"], 5)
        self.assertLess(over["brevity"], within["brevity"])
        self.assertLess(far["brevity"], over["brevity"])

    def test_coherence_rules(self):
        tidy = self.scores(self.TIDY)["coherence"]
        self.assertLess(self.scores("Brief: Revenue grew 12 percent in the third")["coherence"],
                        tidy)                                          # mid-sentence
        self.assertLess(self.scores("Brief: Costs flat.")["coherence"], tidy)   # too short
        self.assertLess(self.scores("Brief: - revenue grew 12 percent - costs were flat - "
                                    "hiring continues.")["coherence"], tidy)   # bullets
        bad = self.scores("nonsense", doc="x", words=5)
        self.assertEqual(bad["coherence"], 1)
        st, r, _ = self.chat(GPT, "Rate this brief please.", response_format=RUBRIC)
        v = json.loads(r["choices"][0]["message"]["content"])
        self.assertEqual((v["coherence"], v["faithfulness"], v["brevity"]), (1, 1, 1))

    def test_wraps_and_broken_answers(self):
        plain = self.scores(self.TIDY)
        self.sim.faults(judge_wrap="prose")
        _, c = self.judge(self.TIDY)
        self.assertFalse(c.lstrip().startswith("{"))
        self.assertTrue(c.rstrip()[-1] != "}")
        self.assertEqual(json.loads(c[c.index("{"):c.rindex("}") + 1]), plain)
        self.sim.faults(judge_wrap="fence")
        _, c = self.judge(self.TIDY)
        m = re.fullmatch(r"```json\n(.*)\n```", c, re.S)
        self.assertTrue(m, c)
        self.assertEqual(json.loads(m.group(1)), plain)
        self.sim.faults(judge_out_of_range=True)
        v = json.loads(self.judge(self.TIDY)[1])
        self.assertEqual(sum(v[k] == 7 for k in ("coherence", "faithfulness", "brevity")), 1)
        self.sim.faults(judge_garbage=True)
        _, c = self.judge(self.TIDY)
        self.assertNotIn("{", c)
        self.assertRaises(ValueError, json.loads, c)

    def test_judge_rules_and_limits(self):
        self.sim.rules(Sim.rule(None, kind="judge", status=500))
        st, _, _ = self.chat(GPT, judge_prompt(DOC, 40, self.TIDY), response_format=RUBRIC)
        self.assertEqual(st, 500)
        self.ok(GPT, prompt())                                     # a brief request is not judged
        self.sim.faults()
        r, c = self.judge(self.TIDY, max_tokens=10)
        self.assertEqual(r["choices"][0]["finish_reason"], "length")
        self.assertEqual(len(c.encode()), 40)
        self.assertRaises(ValueError, json.loads, c)

    def test_refinements_usually_beat_drafts(self):
        """With briefd's prompts, gpt-oss-20b's tidy refinement usually scores higher than
        phi-4-mini's extractive draft; for some documents the draft is as good."""
        draft_tpl = ("Summarize the following document as an executive brief of at most {w} "
                     "words.\n\nDocument:\n{t}")
        refine_tpl = ("Rewrite the draft brief below into a clear, accurate executive brief of "
                      "at most {w} words. Keep every fact; fix omissions using the source "
                      "document.\n\nSource document:\n{t}\n\nDraft brief:\n{d}")
        subjects = ["Revenue", "Costs", "The board", "Hiring", "Churn", "Shipping", "The audit"]
        verbs = ["grew", "fell", "stalled", "rose", "doubled", "slowed"]
        as_good = 0
        n = 60
        for i in range(n):
            t = " ".join("%s %s by %d percent in region %d." % (
                subjects[(i + k) % 7], verbs[(i * 3 + k) % 6], (i * 7 + k * 13) % 90 + 2, k)
                for k in range(3 + i % 9))
            w = (30, 45, 60)[i % 3]
            d = self.ok(PHI, draft_tpl.format(w=w, t=t), max_tokens=300)
            d = d["choices"][0]["message"]["content"]
            r = self.ok(GPT, refine_tpl.format(w=w, t=t, d=d), max_tokens=600)
            r = r["choices"][0]["message"]["content"]
            sd, sr = self.scores(d, doc=t, words=w), self.scores(r, doc=t, words=w)
            total = lambda s: s["coherence"] + s["faithfulness"] + s["brevity"]  # noqa: E731
            as_good += total(sd) >= total(sr)
        share = as_good / n
        self.assertGreaterEqual(share, 0.05)
        self.assertLessEqual(share, 0.35)


if __name__ == "__main__":
    unittest.main(verbosity=2)
