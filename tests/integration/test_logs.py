"""Integration: briefd's log - JSON lines that parse one by one, the access line of every
HTTP request, the authentication summary and environment warnings at start, log settings
changed by a reload."""
import json
import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Stack, tail  # noqa: E402

SHORT = ("Revenue grew 12 percent in the third quarter. Costs were flat. "
         "The board approved a new data center in Ohio.")


def read_lines(path):
    with open(path, encoding="utf-8") as f:
        return [l for l in f.read().split("\n") if l]


class JsonLogs(Stack):
    config_over = {"log": {"format": "json", "level": "debug"},
                   "routing": {"policies": [{"type": "length", "min_chars": 1}],
                               "guards": {"max_refine_rate": None}}}

    def exercise(self):
        """A few requests of every kind, each with its own X-Request-Id; returns
        {request id: (method, path, status)}."""
        sent = {}

        def req(method, path, body=None, raw=None, headers=None, want=None):
            rid = "t-%d-%d" % (len(sent), int(time.time() * 1000))
            h = {"X-Request-Id": rid}
            h.update(headers or {})
            st, out, _ = self.briefd.request(method, path, body, h, raw)
            if want is not None:
                self.assertEqual(st, want, out)
            sent[rid] = (method, path.split("?")[0], st)
            return out

        req("GET", "/healthz", want=200)
        req("GET", "/readyz", want=200)
        req("GET", "/nope?secret=1", want=404)
        req("POST", "/v1/jobs", raw=b"{not json", headers={"Content-Type": "application/json"},
            want=400)
        job = req("POST", "/v1/jobs?wait=30", {"text": SHORT}, want=200)
        req("GET", "/v1/jobs/%s?wait=1" % job["id"], want=200)
        req("GET", "/v1/jobs/%s/events" % job["id"], want=200)
        self.sim.rules(self.sim.rule("Failing", status=400))
        failed = req("POST", "/v1/jobs?wait=30", {"text": SHORT + " Failing."}, want=200)
        self.assertEqual(failed["status"], "failed")
        req("POST", "/v1/chat/completions",
            {"model": "briefd-hybrid", "stream": True,
             "messages": [{"role": "user", "content": SHORT}]}, want=200)
        req("GET", "/v1/models/briefd-hybrid", want=200)
        req("GET", "/metrics", want=200)
        return sent

    def test_every_line_is_json_and_every_request_has_an_access_line(self):
        sent = self.exercise()
        deadline = time.time() + 5
        while time.time() < deadline:
            lines = read_lines(self.briefd.log)
            ids = {json.loads(l).get("request_id") for l in lines}
            if set(sent) <= ids:
                break
            time.sleep(0.05)
        records = []
        for line in read_lines(self.briefd.log):
            rec = json.loads(line)  # every line parses on its own
            for key in ("ts", "level", "pid", "msg"):
                self.assertIn(key, rec, line)
            self.assertIn(rec["level"], ("debug", "info", "warn", "error"))
            records.append(rec)
        access = {r["request_id"]: r for r in records if r["msg"] == "access"}
        for rid, (method, path, status) in sent.items():
            a = access.get(rid)
            self.assertIsNotNone(a, "no access line for %s %s" % (method, path))
            self.assertEqual((a["method"], a["path"], a["status"]), (method, path, status))
            self.assertGreaterEqual(a["duration_ms"], 0)
            self.assertGreater(a["bytes"], 0)
        self.assertNotIn("secret", json.dumps(list(access.values())))
        msgs = [r["msg"] for r in records]
        self.assertIn("auth off: no API keys loaded; every route is open", msgs)
        warn = [r for r in records if r["level"] == "warn" and r.get("key") == "auth.keys_env"]
        self.assertTrue(warn and "BRIEFD_API_KEYS is not set" in warn[0]["msg"], warn)

    def test_malformed_http_is_logged_too(self):
        s = socket.create_connection(("127.0.0.1", self.briefd.port), timeout=5)
        s.sendall(b"BLAH / NOPE\r\n\r\n")
        s.recv(4096)
        s.close()
        deadline = time.time() + 5
        while time.time() < deadline:
            recs = [json.loads(l) for l in read_lines(self.briefd.log)]
            if any(r["msg"] == "access" and r["status"] == 400 and not r.get("path")
                   for r in recs):
                return
            time.sleep(0.05)
        self.fail("no access line for a malformed request:\n" + tail(self.briefd.log))


class LevelsAndReload(Stack):
    config_over = {"log": {"level": "warn"}}

    def test_level_then_reload_to_json(self):
        self.briefd.get("/healthz", headers={"X-Request-Id": "before-reload"})
        text = tail(self.briefd.log, 100000)
        self.assertIn("warn: auth.keys_env: $BRIEFD_API_KEYS is not set", text)
        cfg = dict(self.briefd.config, log={"format": "json", "level": "info"})
        self.briefd.write_config(cfg)
        st, body, _ = self.briefd.request("POST", "/v1/config/reload")
        self.assertEqual(st, 200, body)
        self.briefd.get("/healthz", headers={"X-Request-Id": "after-reload"})
        deadline = time.time() + 5
        while time.time() < deadline and "after-reload" not in tail(self.briefd.log, 100000):
            time.sleep(0.05)
        lines = read_lines(self.briefd.log)
        # the log is written in order: the access line of before-reload (an info line, below
        # warn) would be there by now
        self.assertNotIn("before-reload", "\n".join(lines))
        start = next(i for i, l in enumerate(lines) if "config reloaded" in l)
        for line in lines[start:]:
            json.loads(line)
        self.assertTrue(any(json.loads(l).get("request_id") == "after-reload"
                            for l in lines[start:]))


class AuthSummary(Stack):
    @classmethod
    def setUpClass(cls):
        os.environ["BRIEFD_API_KEYS"] = "k-client-00001,k-client-00002"
        os.environ["BRIEFD_ADMIN_KEYS"] = "k-admin-000001"
        try:
            super().setUpClass()
        finally:
            del os.environ["BRIEFD_API_KEYS"]
            del os.environ["BRIEFD_ADMIN_KEYS"]

    def test_auth_on_with_counts(self):
        text = tail(self.briefd.log, 100000)
        self.assertIn("auth on: 2 client keys, 1 admin key", text)
        self.assertNotIn("k-client-0000", text)
        self.assertNotIn("is not set", text)


if __name__ == "__main__":
    unittest.main()
