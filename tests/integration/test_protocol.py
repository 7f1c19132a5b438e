"""Integration: the edges of briefd's HTTP and JSON contract over raw sockets: strict JSON
bodies, the body bound, half-closed clients, methods, versions, transfer codings, the
events stream of an unknown job, and connection caps (docs/API.md)."""
import json
import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Stack, request, rkey, wait_for  # noqa: E402

TEXT = ("Revenue grew 12 percent in the third quarter. Costs were flat. "
        "The board approved a new data center in Ohio.")
MAX_TEXT = 100000


def raw_request(port, data, half_close=False, timeout=20):
    """Send data on a fresh connection (then shutdown(SHUT_WR) if asked); everything the
    server sends until it closes."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
        return out
    finally:
        s.close()


def parse_response(data):
    """(status, headers (lower-case names), body) of the first response in data."""
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if "content-length" in headers:
        body = rest[:int(headers["content-length"])]
    elif headers.get("transfer-encoding") == "chunked":
        body = b""
        while True:
            size_line, _, rest = rest.partition(b"\r\n")
            n = int(size_line.split(b";")[0], 16)
            if n == 0:
                break
            body += rest[:n]
            rest = rest[n + 2:]
    else:
        body = rest
    return status, headers, body


def post_raw(port, path, body, ctype="application/json"):
    return request("127.0.0.1", port, "POST", path, raw=body, headers={"Content-Type": ctype})


class Protocol(Stack):
    config_over = {"limits": {"max_text_bytes": MAX_TEXT}}

    def queued(self):
        p = "t%d:" % self.redis.port
        total = sum(self.redis.cmd("XLEN", rkey(p, "q:" + q)) for q in ("high", "normal", "low"))
        keys = self.redis.cmd("KEYS", rkey(p, "job:*"))
        return total, len(keys)

    def settled(self):
        """queued() once earlier tests' work has landed: no entry left in the queues, and the
        same count of records at two polls in a row (a facade run's record is stored after its
        answer, up to facade.record_hold_ms later)."""
        last = [None]

        def still():
            cur, prev = self.queued(), last[0]
            last[0] = cur
            return cur[0] == 0 and cur == prev
        wait_for(still, 30, "earlier tests' jobs and records to land")
        return last[0]

    def expect_error(self, path, body, status, code, param):
        st, r, h = post_raw(self.briefd.port, path, body)
        self.assertEqual(st, status, r)
        self.assertEqual(r["error"]["code"], code, r)
        self.assertEqual(r["error"]["param"], param, r)
        self.assertEqual(set(r["error"]), {"type", "code", "message", "param"})
        return r

    # --- strict JSON -------------------------------------------------------------------

    def test_nul_in_any_string_is_refused_not_cut(self):
        before = self.settled()
        cases = [
            (b'{"text":"Revenue rose 10%.\\u0000 SECRET TAIL"}', "text"),
            (b'{"text":"x","instructions":"a\\u0000b"}', "instructions"),
            (b'{"text":"x","topic_flags":["ok","b\\u0000"]}', "topic_flags[1]"),
            (b'{"text":"x","metadata":{"source":"crm\\u0000x"}}', "metadata.source"),
            (b'{"text":"x","metadata":{"a\\u0000b":"v"}}', "metadata.a\\u0000b"),
            (b'{"text":"x","priority":"high\\u0000"}', "priority"),
        ]
        for body, param in cases:
            with self.subTest(body=body):
                self.expect_error("/v1/jobs", body, 400, "invalid_value", param)
        chat = (b'{"model":"briefd-hybrid","messages":[{"role":"user",'
                b'"content":"Revenue rose 10%.\\u0000 SECRET TAIL"}]}')
        self.expect_error("/v1/chat/completions", chat, 400, "invalid_value",
                          "messages[0].content")
        self.assertEqual(self.queued(), before, "a refused body queued something")

    def test_trailing_data_and_control_characters_are_invalid_json(self):
        before = self.settled()
        for body in (b'{"text":"x"} garbage', b'{"text":"x"}{"text":"y"}',
                     b'{"text":"tab\there"}', b'{"text":"a\x01b"}', b'{"text":"a\x00b"}',
                     b'{"text":"x","max_words":012}'):
            with self.subTest(body=body):
                self.expect_error("/v1/jobs", body, 400, "invalid_json", None)
        chat = b'{"model":"briefd-hybrid","messages":[{"role":"user","content":"%s"}]}'
        for body in (chat % b"x" + b" garbage", chat % b"x" + b"{}", chat % b"a\x02b"):
            with self.subTest(body=body):
                self.expect_error("/v1/chat/completions", body, 400, "invalid_json", None)
        self.assertEqual(self.queued(), before)

    def test_lone_surrogates_and_bad_utf8(self):
        self.expect_error("/v1/jobs", b'{"text":"a\\ud800b"}', 400, "invalid_utf8", "text")
        self.expect_error("/v1/jobs", b'{"text":"x","metadata":{"k":"\\udc00"}}', 400,
                          "invalid_utf8", "metadata.k")
        self.expect_error("/v1/jobs", b'{"text":"x","metadata":{"k":"\xff"}}', 400,
                          "invalid_utf8", "metadata.k")
        self.expect_error("/v1/chat/completions",
                          b'{"model":"briefd-hybrid","messages":[{"role":"user",'
                          b'"content":"\\ud800"}]}', 400, "invalid_utf8", "messages[0].content")
        # a surrogate pair is fine, and is stored as the character it encodes
        st, job, _ = post_raw(self.briefd.port, "/v1/jobs?wait=30",
                              b'{"text":"ok \\ud83d\\ude00","metadata":{"k":"\\u00e9"}}')
        self.assertEqual(st, 200, job)
        self.assertEqual(job["metadata"], {"k": "\u00e9"})

    # --- the body bound admits any encoding of an admissible text -----------------------

    def post_text(self, text):
        body = json.dumps({"text": text}, ensure_ascii=True).encode()
        st, r, _ = post_raw(self.briefd.port, "/v1/jobs", body)
        return st, r, len(body)

    def test_escaped_text_within_the_limit_is_accepted(self):
        for name, ch in (("emoji", "\U0001F600"), ("latin", "\u00e9"), ("cjk", "\u4e2d")):
            n = MAX_TEXT // len(ch.encode())
            with self.subTest(text=name):
                st, r, size = self.post_text(ch * n)           # just under (or at) the limit
                self.assertEqual(st, 202, "%s: %d bytes of body: %r" % (name, size, r))
                st, r, size = self.post_text(ch * (n + 1))     # just over
                self.assertEqual(st, 413, r)
                self.assertEqual(r["error"]["code"], "text_too_large", r)
                self.assertEqual(r["error"]["param"], "text")

    # --- half-closed clients get their answer ---------------------------------------------

    def test_half_closed_post_gets_its_answer(self):
        body = json.dumps({"text": TEXT}).encode()
        req = (b"POST /v1/jobs?wait=10 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n" % len(body)) + body
        before = self.settled()
        data = raw_request(self.briefd.port, req, half_close=True)
        self.assertTrue(data, "no response to a half-closed POST")
        st, h, b = parse_response(data)
        self.assertEqual(st, 200, data[:300])
        job = json.loads(b)
        self.assertEqual(job["status"], "succeeded")
        self.assertEqual(h["location"], "/v1/jobs/" + job["id"])
        self.assertEqual(self.queued()[1], before[1] + 1)   # one job, and the client has it

    def test_half_closed_get_gets_its_answer(self):
        st, job, _ = self.briefd.post_job({"text": TEXT}, wait=30)
        self.assertEqual(st, 200, job)
        for path in ("/v1/jobs/%s" % job["id"], "/v1/jobs/%s?wait=5" % job["id"], "/healthz",
                     "/v1/stats?window=3600", "/metrics"):
            with self.subTest(path=path):
                data = raw_request(self.briefd.port,
                                   b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode(),
                                   half_close=True)
                self.assertTrue(data, "no response")
                st, _, b = parse_response(data)
                self.assertEqual(st, 200, data[:300])
                if path.startswith("/v1/jobs/"):
                    self.assertEqual(json.loads(b)["id"], job["id"])
        # a request still incomplete when the client half-closes gets nothing
        self.assertEqual(raw_request(self.briefd.port, b"GET /healthz HTTP/1.1\r\nHo",
                                     half_close=True), b"")

    # --- HTTP conformance -------------------------------------------------------------------

    def test_methods_get_405_with_allow(self):
        st, job, _ = self.briefd.post_job({"text": TEXT}, wait=30)
        self.assertEqual(st, 200, job)
        get_routes = ["/healthz", "/readyz", "/metrics", "/v1/stats", "/v1/models", "/v1/config",
                      "/v1/dead-letters", "/dashboard", "/v1/jobs/" + job["id"],
                      "/v1/jobs/%s/events" % job["id"]]
        post_routes = ["/v1/jobs", "/v1/chat/completions", "/v1/config/reload"]
        for path in get_routes + post_routes:
            for method in ("TRACE", "PUT", "DELETE", "PATCH", "OPTIONS"):
                with self.subTest(method=method, path=path):
                    st, r, h = self.briefd.request(method, path)
                    self.assertEqual(st, 405, r)
                    self.assertEqual(r["error"]["code"], "method_not_allowed")
                    want = "POST" if path in post_routes else "GET, HEAD"
                    self.assertEqual(h["allow"], want)

    def test_head_on_get_routes(self):
        st, job, _ = self.briefd.post_job({"text": TEXT}, wait=30)
        for path in ("/healthz", "/readyz", "/metrics", "/v1/stats", "/v1/models",
                     "/dashboard", "/v1/jobs/" + job["id"]):
            with self.subTest(path=path):
                gst, gbody, gh = self.briefd.request("GET", path)
                data = raw_request(self.briefd.port, b"HEAD %s HTTP/1.1\r\nHost: x\r\n"
                                   b"Connection: close\r\n\r\n" % path.encode())
                head, _, rest = data.partition(b"\r\n\r\n")
                self.assertTrue(head.startswith(b"HTTP/1.1 %d " % gst), head)
                self.assertEqual(rest, b"", "a HEAD response carries no body")
                hdrs = dict(l.split(": ", 1) for l in head.decode().split("\r\n")[1:])
                self.assertEqual(hdrs["Content-Type"], gh["content-type"])
                if path in ("/dashboard", "/healthz", "/v1/models"):
                    self.assertEqual(hdrs["Content-Length"], gh["content-length"])
        # the events stream of a finished job: the head, then the close
        data = raw_request(self.briefd.port, b"HEAD /v1/jobs/%s/events HTTP/1.1\r\nHost: x\r\n"
                           b"\r\n" % job["id"].encode(), timeout=5)
        self.assertTrue(data.startswith(b"HTTP/1.1 200 "), data)
        self.assertIn(b"text/event-stream", data)
        self.assertTrue(data.endswith(b"\r\n\r\n"), data)

    def test_http2_request_line_gets_505(self):
        for line in (b"GET /healthz HTTP/2.0", b"GET /healthz HTTP/3.0", b"GET /healthz HTTP/0.9"):
            with self.subTest(line=line):
                data = raw_request(self.briefd.port, line + b"\r\nHost: x\r\n\r\n")
                st, h, b = parse_response(data)
                self.assertEqual(st, 505, data[:200])
                self.assertEqual(json.loads(b)["error"]["code"], "http_version_not_supported")

    def test_transfer_coding_other_than_chunked_is_501(self):
        before = self.settled()
        body = json.dumps({"text": TEXT}).encode()
        req = (b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Transfer-Encoding: gzip, chunked\r\n\r\n")
        # answered at the end of the headers, before any body byte is sent
        s = socket.create_connection(("127.0.0.1", self.briefd.port), timeout=10)
        try:
            s.sendall(req)
            data = b""
            while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        finally:
            s.close()
        st, h, b = parse_response(data)
        self.assertEqual(st, 501, data[:300])
        self.assertEqual(json.loads(b)["error"]["code"], "unsupported_transfer_encoding")
        # plain chunked still works
        chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
        data = raw_request(self.briefd.port, req.replace(b"gzip, chunked", b"chunked") + chunked,
                           half_close=True)
        self.assertEqual(parse_response(data)[0], 202, data[:300])
        self.assertEqual(self.queued()[0] + self.queued()[1] >= before[0] + before[1], True)

    def test_events_of_unknown_job_is_404(self):
        st, r, h = self.briefd.get("/v1/jobs/job_01M899CZYDCP5YQKTPHM9B7QDC/events")
        self.assertEqual(st, 404, r)
        self.assertEqual(r["error"]["code"], "job_not_found")
        self.assertEqual(r["error"]["param"], "id")
        self.assertIn("application/json", h["content-type"])
        # a job that exists still streams
        st, job, _ = self.briefd.post_job({"text": TEXT}, wait=30)
        st, raw, h = self.briefd.get("/v1/jobs/%s/events" % job["id"])
        self.assertEqual(st, 200)
        self.assertIn("text/event-stream", h["content-type"])
        self.assertIn(b"event: done", raw)


if __name__ == "__main__":
    unittest.main(verbosity=2)
