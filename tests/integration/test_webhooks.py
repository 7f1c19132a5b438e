"""Integration: webhook deliveries - Standard Webhooks signatures verified with Python's own
hmac/hashlib/base64, the callback target policy at submit and at send time, URLs redacted in
logs - and API key fingerprints shared by the processes of one deployment."""
import base64
import hashlib
import hmac
import http.server
import json
import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Briefd, Stack, base_config, tail, wait_for  # noqa: E402

SHORT = ("Revenue grew 12 percent in the third quarter. Costs were flat. "
         "The board approved a new data center in Ohio.")
SECRET = base64.b64encode(os.urandom(32)).decode()
ENV = {"T_WEBHOOK_SECRET": "whsec_" + SECRET}


def with_env(env, fn):
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return fn()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class Receiver:
    """A webhook receiver on 127.0.0.1: records (headers, raw body) of every POST and answers
    with the next status of `statuses` (then 204)."""

    def __init__(self, statuses=()):
        self.got = []
        self.statuses = list(statuses)
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers["Content-Length"])
                outer.got.append(({k.lower(): v for k, v in self.headers.items()},
                                  self.rfile.read(n), self.path))
                self.send_response(outer.statuses.pop(0) if outer.statuses else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.srv.server_address[1]
        self.thread = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path="/hook"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def wait(self, n, timeout=15):
        deadline = time.time() + timeout
        while time.time() < deadline and len(self.got) < n:
            time.sleep(0.05)
        return self.got

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def verify(headers, body, secret_b64):
    """The Standard Webhooks check, written from the specification with the standard library:
    HMAC-SHA256 over "{id}.{timestamp}.{body}" with the base64-decoded secret, compared in
    constant time with each "v1,<base64>" of the signature header."""
    key = base64.b64decode(secret_b64)
    content = ("%s.%s." % (headers["webhook-id"], headers["webhook-timestamp"])).encode() + body
    want = base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
    for sig in headers["webhook-signature"].split(" "):
        version, _, value = sig.partition(",")
        if version == "v1" and hmac.compare_digest(value, want):
            return True
    return False


class SignedWebhooks(Stack):
    # the receiver runs on 127.0.0.1, a loopback target: allowed explicitly
    config_over = {"webhooks": {"secret_env": "T_WEBHOOK_SECRET", "allow": ["127.0.0.1"]}}

    @classmethod
    def setUpClass(cls):
        with_env(ENV, super().setUpClass)

    def test_signature_verifies_and_id_is_stable_across_retries(self):
        rx = Receiver(statuses=[500])  # the first delivery fails and is retried
        try:
            st, job, _ = self.briefd.post_job({"text": SHORT, "callback_url": rx.url()}, wait=30)
            self.assertEqual(st, 200, job)
            got = rx.wait(2)
            self.assertEqual(len(got), 2)
            now = time.time()
            for headers, body, path in got:
                self.assertEqual(path, "/hook")
                self.assertTrue(verify(headers, body, SECRET), headers)
                self.assertLess(abs(int(headers["webhook-timestamp"]) - now), 120)
                self.assertEqual(json.loads(body)["id"], job["id"])
            self.assertEqual(got[0][0]["webhook-id"], got[1][0]["webhook-id"])
            self.assertRegex(got[0][0]["webhook-id"], r"^msg_[0-9a-f]{32}$")
            # a tampered body does not verify
            self.assertFalse(verify(got[0][0], got[0][1] + b" ", SECRET))
            # another delivery is another message
            st, job2, _ = self.briefd.post_job({"text": SHORT + " Two.", "callback_url": rx.url()},
                                               wait=30)
            got = rx.wait(3)
            self.assertNotEqual(got[2][0]["webhook-id"], got[0][0]["webhook-id"])
            self.assertTrue(verify(got[2][0], got[2][1], SECRET))
        finally:
            rx.close()

    def test_url_credentials_and_query_stay_out_of_logs(self):
        rx = Receiver(statuses=[400])  # a final failure is logged
        try:
            url = "http://hookuser:pa55word-xyz@127.0.0.1:%d/hooks/briefd?token=qs-secret-123" % rx.port
            st, job, _ = self.briefd.post_job({"text": SHORT, "callback_url": url}, wait=30)
            self.assertEqual(st, 200, job)
            rx.wait(1)
            deadline = time.time() + 5
            log = ""
            while time.time() < deadline and "webhook for job " + job["id"] not in log:
                time.sleep(0.05)
                log = tail(self.briefd.log, 200000)
            line = [l for l in log.splitlines() if "webhook for job " + job["id"] in l][0]
            self.assertIn("http://127.0.0.1:%d/hooks/briefd failed after 1 attempts" % rx.port,
                          line)
            for secret in ("pa55word-xyz", "qs-secret-123", "hookuser", SECRET):
                self.assertNotIn(secret, log)
            self.assertEqual(rx.got[0][0]["authorization"],
                             "Basic " + base64.b64encode(b"hookuser:pa55word-xyz").decode())
        finally:
            rx.close()


class RefusedTargets(Stack):
    """No allow list: loopback, private, link-local, CGNAT, unspecified and metadata targets
    are refused at submit with 422 (param callback_url); nothing is queued."""

    REFUSED = [
        "http://127.0.0.1:9/hook",
        "http://10.1.2.3/hook",
        "http://172.16.5.4/hook",
        "http://192.168.1.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:8080/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://[fd00:ec2::254]/latest",
        "http://[fe80::1]/hook",
        "http://0.0.0.0:80/hook",
        "http://100.64.0.1/hook",
        "http://localhost:9/hook",              # a name that resolves to loopback
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://2130706433/hook",               # 127.0.0.1 written as one number
    ]

    def test_refused_at_submit(self):
        before = len(self.sim.requests())
        for url in self.REFUSED:
            st, body, _ = self.briefd.post_job({"text": SHORT, "callback_url": url})
            self.assertEqual(st, 422, (url, body))
            self.assertEqual(body["error"]["code"], "invalid_value", url)
            self.assertEqual(body["error"]["param"], "callback_url", url)
            self.assertIn("webhooks.allow", body["error"]["message"], url)
        self.assertEqual(len(self.sim.requests()), before, "nothing was queued")

    def test_malformed_urls_refused(self):
        for url in ("http://a@b@example.com/x", "http://example.com\\@127.0.0.1/",
                    "http://[::1%25eth0]/x", "http://exa mple.com/"):
            st, body, _ = self.briefd.post_job({"text": SHORT, "callback_url": url})
            self.assertEqual(st, 422, (url, body))
            self.assertEqual(body["error"]["param"], "callback_url")

    def test_public_literal_accepted(self):
        # a public address passes the policy (the delivery itself will fail: nothing listens)
        st, body, _ = self.briefd.post_job({"text": SHORT, "callback_url": "http://192.0.2.10:9/x"})
        self.assertEqual(st, 202, body)
        self.briefd.wait_job(body["id"])  # its model calls are over before the next test


class SendTimeCheck(Stack):
    """The address a delivery connects to is checked again when it is sent, under the
    configuration of that moment: a target allowed at submit but refused by then gets
    nothing (as a name re-resolved to a private address would)."""
    config_over = {"webhooks": {"allow": ["127.0.0.1"]}}

    def test_refused_at_send(self):
        rx = Receiver()
        try:
            self.sim.rules(self.sim.rule("Slowpoke", delay_ms=1500))
            st, job, _ = self.briefd.post_job({"text": SHORT + " Slowpoke.",
                                               "callback_url": rx.url()})
            self.assertEqual(st, 202, job)
            wait_for(lambda: self.sim.stats()["pending"] == 1, 10, "the draft call in flight")
            cfg = dict(self.briefd.config)
            cfg["webhooks"] = {"allow": []}
            self.briefd.write_config(cfg)
            st, body, _ = self.briefd.request("POST", "/v1/config/reload")
            self.assertEqual(st, 200, body)
            # the precondition: the job had not ended (nor sent anything) before the reload
            self.assertEqual(self.sim.stats()["pending"], 1)
            done = self.briefd.wait_job(job["id"])
            self.assertEqual(done["status"], "succeeded")
            deadline = time.time() + 5
            log = ""
            while time.time() < deadline and "refused" not in log:
                time.sleep(0.05)
                log = tail(self.briefd.log, 100000)
            self.assertIn("webhook for job %s to %s refused: 127.0.0.1 is a loopback address"
                          % (job["id"], rx.url()), log)
            # the refusal is the delivery's end (logged when it gives up): it was refused
            # before connecting, so the receiver never saw a request
            self.assertEqual(rx.got, [])
        finally:
            self.briefd.write_config(dict(self.briefd.config, webhooks={"allow": ["127.0.0.1"]}))
            self.briefd.request("POST", "/v1/config/reload")
            rx.close()


class Fingerprints(Stack):
    """api_key_id: an HMAC fingerprint, the same from every process of a deployment."""
    KEY = "k-fingerprint-0123456789"

    @classmethod
    def setUpClass(cls):
        with_env({"BRIEFD_API_KEYS": cls.KEY}, super().setUpClass)
        cfg = base_config(cls.redis, cls.sim)
        cls.other = Briefd(cls.tmp, cfg, role="api", env={"BRIEFD_API_KEYS": cls.KEY},
                           name="other").start()
        cfg = base_config(cls.redis, cls.sim, auth={"fingerprint_salt_env": "T_SALT"})
        cls.salted = Briefd(cls.tmp, cfg, role="api",
                            env={"BRIEFD_API_KEYS": cls.KEY, "T_SALT": "a deployment salt"},
                            name="salted").start()

    @classmethod
    def tearDownClass(cls):
        rc1, rc2 = cls.other.stop(), cls.salted.stop()
        super().tearDownClass()
        assert rc1 == 0 and rc2 == 0, (rc1, rc2)

    def key_id(self, proc):
        auth = {"Authorization": "Bearer " + self.KEY}
        st, job, _ = proc.post_job({"text": SHORT}, headers=auth)
        self.assertEqual(st, 202, job)
        st, job, _ = proc.get("/v1/jobs/" + job["id"], headers=auth)
        return job["api_key_id"]

    def test_stable_across_processes_and_salted(self):
        a, b, c = self.key_id(self.briefd), self.key_id(self.other), self.key_id(self.salted)
        self.assertRegex(a, r"^key_[0-9a-f]{16}$")
        self.assertEqual(a, b)
        self.assertRegex(c, r"^key_[0-9a-f]{16}$")
        self.assertNotEqual(a, c)
        self.assertNotIn(self.KEY, a + c)


if __name__ == "__main__":
    unittest.main()
