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
from harness import Briefd, Stack, base_config, free_port, rkey, tail, wait_for  # noqa: E402

SHORT = ("Revenue grew 12 percent in the third quarter. Costs were flat. "
         "The board approved a new data center in Ohio.")
SECRET = base64.b64encode(os.urandom(32)).decode()
ENV = {"T_WEBHOOK_SECRET": "whsec_" + SECRET}


class _Server(http.server.ThreadingHTTPServer):
    allow_reuse_address = True
    request_queue_size = 128        # many deliveries may connect at once
    daemon_threads = True


class Receiver:
    """A webhook receiver on 127.0.0.1 (port 0: any free one): records (headers, raw body) of
    every POST and answers with the next status of `statuses` (then 204), each after `delay`
    seconds; `gate`, when set, holds every answer until it is set. `most` is the largest
    number of POSTs it had in hand at once."""

    def __init__(self, statuses=(), port=0, delay=0.0, gate=None):
        self.got = []
        self.statuses = list(statuses)
        self.delay = delay
        self.gate = gate
        self.lock = threading.Lock()
        self.now = self.most = 0
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                with outer.lock:
                    outer.now += 1
                    outer.most = max(outer.most, outer.now)
                held = True
                try:
                    n = int(self.headers["Content-Length"])
                    body = self.rfile.read(n)
                    if outer.gate is not None:
                        outer.gate.wait(60)
                    time.sleep(outer.delay)
                    with outer.lock:
                        outer.got.append(({k.lower(): v for k, v in self.headers.items()},
                                          body, self.path))
                        status = outer.statuses.pop(0) if outer.statuses else 204
                        # no longer in hand once answered: briefd may send its next POST the
                        # moment it reads this answer, before this thread runs on
                        outer.now -= 1
                        held = False
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                finally:
                    if held:
                        with outer.lock:
                            outer.now -= 1

            def log_message(self, *a):
                pass

        self.srv = _Server(("127.0.0.1", port), H)
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
    config_over = {"webhooks": {"secret_env": "T_WEBHOOK_SECRET", "allow": ["127.0.0.1"],
                                "backoff_base_ms": 500}}
    briefd_env = ENV

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
    briefd_env = {"BRIEFD_API_KEYS": KEY}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
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


# --- durable, bounded deliveries (issue 13, item 3) ----------------------------------------

FAST = {"allow": ["127.0.0.1"], "backoff_base_ms": 300, "timeout_ms": 1000}


def webhook_of(b, job_id):
    st, job, _ = b.get("/v1/jobs/" + job_id)
    assert st == 200, (st, job)
    return job.get("webhook")


class DurableWebhooks(unittest.TestCase):
    """Each test starts its own Redis, simulator and briefd processes."""
    @classmethod
    def tearDownClass(cls):
        from harness import check_openapi
        check_openapi()  # every briefd response of the class against docs/openapi.yaml


    def setUp(self):
        import tempfile
        from harness import Redis, Sim
        self.tmpdir = tempfile.TemporaryDirectory(prefix="briefd-it-")
        self.tmp = self.tmpdir.name
        self.redis = Redis(self.tmp).start()
        self.sim = Sim(self.tmp).start()
        self.procs = []
        self.receivers = []

    def tearDown(self):
        bad = []
        for b in self.procs:
            if b.proc and b.proc.poll() is None:
                rc = b.stop()
                if rc != 0:
                    bad.append((b.log, rc, tail(b.log, 3000)))
        for rx in self.receivers:
            rx.close()
        self.sim.stop()
        self.redis.stop()
        self.tmpdir.cleanup()
        self.assertEqual(bad, [], "briefd exited non-zero on SIGTERM")

    def briefd(self, name="briefd", **webhooks):
        cfg = base_config(self.redis, self.sim, webhooks=dict(FAST, **webhooks))
        cfg["redis"]["command_timeout_ms"] = 1000
        b = Briefd(self.tmp, cfg, name=name).start()
        self.procs.append(b)
        return b

    def wait_gone(self, b, rx, job_id):
        """A delivery that ended is out of the queue and has no attempt in flight."""
        wait_for(lambda: self.redis.cmd("HEXISTS", rkey(self.prefix(b), "wh:q"), job_id) == 0
                 and rx.now == 0, 10, "the delivery to leave the queue")

    def receiver(self, **kw):
        rx = Receiver(**kw)
        self.receivers.append(rx)
        return rx

    def prefix(self, b):
        return b.config["redis"]["prefix"]

    def test_receiver_down_then_up(self):
        """The receiver is down (connection refused) for 3 s: retries go on with backoff
        and the callback arrives once it is up; the job records the outcome."""
        b = self.briefd()
        port = free_port()
        st, job, _ = b.post_job({"text": SHORT, "callback_url":
                                 "http://127.0.0.1:%d/hook" % port}, wait=30)
        self.assertEqual(st, 200, job)
        self.assertEqual(job["webhook"], {"attempts": 0, "status": "pending",
                                          "last_status": None, "error": None})
        wait_for(lambda: (webhook_of(b, job["id"]) or {}).get("attempts", 0) >= 2, 10,
                 "two failed attempts")
        w = webhook_of(b, job["id"])
        self.assertEqual((w["status"], w["last_status"], w["error"]),
                         ("pending", None, "could not connect"))
        time.sleep(max(0.0, 3.0 - (time.time() - self.t0())))
        rx = self.receiver(port=port)
        got = rx.wait(1, timeout=30)
        self.assertEqual(len(got), 1)
        self.assertEqual(json.loads(got[0][1])["id"], job["id"])
        self.assertNotIn("webhook", json.loads(got[0][1]))
        wait_for(lambda: webhook_of(b, job["id"])["status"] == "delivered", 10, "delivered")
        w = webhook_of(b, job["id"])
        self.assertGreaterEqual(w["attempts"], 3)
        self.assertEqual((w["last_status"], w["error"]), (204, None))
        self.assertEqual(self.redis.cmd("ZCARD", rkey(self.prefix(b), "wh:due")), 0)
        self.assertEqual(self.redis.cmd("HLEN", rkey(self.prefix(b), "wh:q")), 0)
        print("  receiver down 3 s: delivered on attempt %d" % w["attempts"])

    def t0(self):
        return self._t0

    def run(self, result=None):
        self._t0 = time.time()
        return super().run(result)

    def finish_jobs(self, b, n, url):
        ids = []
        for i in range(n):
            st, job, _ = b.post_job({"text": SHORT + " (%d)" % i, "callback_url": url})
            self.assertEqual(st, 202, job)
            ids.append(job["id"])
        for jid in ids:
            self.assertEqual(b.wait_job(jid)["status"], "succeeded")
        return ids

    def assert_delivered_once_each(self, b, rx, ids, timeout):
        wait_for(lambda: len(set(json.loads(g[1])["id"] for g in rx.got)) >= len(ids), timeout,
                 "every job's callback")
        seen = [json.loads(g[1])["id"] for g in rx.got]
        self.assertEqual(sorted(set(seen)), sorted(ids))
        wait_for(lambda: all(webhook_of(b, j)["status"] == "delivered" for j in ids), 10,
                 "every delivery recorded")
        return seen

    def test_kill9_with_pending_deliveries(self):
        """kill -9 of the process with deliveries pending (and some claimed, mid-attempt):
        a new process delivers every one of them."""
        gate = threading.Event()
        rx = self.receiver(gate=gate)              # accepts, and answers nothing for now
        a = self.briefd(name="a")
        ids = self.finish_jobs(a, 12, rx.url())
        wait_for(lambda: len(rx.got) + rx.now >= 1, 10, "an attempt in flight")
        pending = self.redis.cmd("HLEN", rkey(self.prefix(a), "wh:q"))
        a.kill()
        self.procs.remove(a)
        gate.set()                                # what a had sent is answered into the void
        wait_for(lambda: rx.now == 0, 10, "the held answers to be sent")
        rx.got.clear()
        t = time.time()
        b = self.briefd(name="b")
        seen = self.assert_delivered_once_each(b, rx, ids, 30)
        print("  kill -9 with %d deliveries pending: a new process delivered all %d in %.1f s "
              "(%d POSTs)" % (pending, len(ids), time.time() - t, len(seen)))
        self.assertEqual(pending, len(ids))

    def test_sigterm_gives_claims_back(self):
        """SIGTERM while attempts are in flight: their claims are given back uncounted, and
        a new process delivers them at once (not after the lease)."""
        gate = threading.Event()
        rx = self.receiver(gate=gate)
        a = self.briefd(name="a", max_in_flight=4)
        ids = self.finish_jobs(a, 8, rx.url())
        wait_for(lambda: rx.now >= 4, 10, "four attempts in flight")
        self.assertEqual(a.stop(), 0)
        self.procs.remove(a)
        q = self.redis.cmd("HGETALL", rkey(self.prefix(a), "wh:q"))
        states = dict(zip(q[::2], q[1::2]))
        self.assertEqual(sorted(states), sorted(ids))
        self.assertEqual(set(v.split(" ")[0] for v in states.values()), {"0"},
                         "given-back attempts are not counted: %s" % states)
        gate.set()
        wait_for(lambda: rx.now == 0, 10, "the held answers to be sent")
        rx.got.clear()
        t = time.time()
        b = self.briefd(name="b")
        self.assert_delivered_once_each(b, rx, ids, 30)
        took = time.time() - t
        lease = 1.0 + 2 * 1.0 + 1.0
        print("  SIGTERM with 4 attempts in flight, 8 pending: delivered by a new process in "
              "%.1f s" % took)
        self.assertLess(took, lease + 2.0)
        self.assertEqual([webhook_of(b, j)["attempts"] for j in ids], [1] * len(ids))

    def test_in_flight_cap(self):
        """A slow receiver (0.8 s per POST): never more than webhooks.max_in_flight attempts
        at once."""
        rx = self.receiver(delay=0.8)
        b = self.briefd(max_in_flight=3, timeout_ms=5000)
        ids = self.finish_jobs(b, 12, rx.url())
        self.assert_delivered_once_each(b, rx, ids, 30)
        print("  12 deliveries to a slow receiver: at most %d at once (max_in_flight 3)" % rx.most)
        self.assertEqual(rx.most, 3)

    def test_total_deadline_fails_the_delivery(self):
        """A receiver that always answers 500: retried until webhooks.max_age_s, then the
        delivery fails; the job says so."""
        rx = self.receiver(statuses=[500] * 100)
        b = self.briefd(max_age_s=2)
        st, job, _ = b.post_job({"text": SHORT, "callback_url": rx.url()}, wait=30)
        self.assertEqual(st, 200, job)
        wait_for(lambda: webhook_of(b, job["id"])["status"] == "failed", 15, "failed")
        w = webhook_of(b, job["id"])
        self.assertEqual((w["last_status"], w["error"]), (500, "HTTP 500"))
        self.assertEqual(w["attempts"], len(rx.got))
        self.assertGreaterEqual(w["attempts"], 2)
        # no attempt after the deadline (2 s after the job ended, plus scheduling slack)
        self.assertLess(w["attempts"], 4)
        self.assertIn("webhooks.max_age_s reached", tail(b.log, 100000))
        # the failed delivery left the queue and no attempt is in flight: nothing more comes
        self.wait_gone(b, rx, job["id"])
        self.assertEqual(w["attempts"], len(rx.got))
        # and max_attempts bounds it the same way
        st, job2, _ = b.post_job({"text": SHORT + " Two.", "callback_url": rx.url(
            "/two")}, wait=30)
        wait_for(lambda: webhook_of(b, job2["id"])["status"] == "failed", 15, "failed")
        self.assertLessEqual(webhook_of(b, job2["id"])["attempts"], 3)

    def test_max_attempts(self):
        rx = self.receiver(statuses=[503] * 100)
        b = self.briefd(max_attempts=3)
        st, job, _ = b.post_job({"text": SHORT, "callback_url": rx.url()}, wait=30)
        self.assertEqual(st, 200, job)
        wait_for(lambda: webhook_of(b, job["id"])["status"] == "failed", 15, "failed")
        self.assertEqual(webhook_of(b, job["id"])["attempts"], 3)
        self.wait_gone(b, rx, job["id"])   # out of the queue, nothing in flight
        self.assertEqual(len(rx.got), 3)
        self.assertIn("failed after 3 attempts: HTTP 503", tail(b.log, 100000))

    def test_no_credentials_in_logs_or_record(self):
        port = free_port()
        url = "http://hookuser:pa55word-xyz@127.0.0.1:%d/hooks/briefd?token=qs-secret-123" % port
        b = self.briefd()
        st, job, _ = b.post_job({"text": SHORT, "callback_url": url}, wait=30)
        self.assertEqual(st, 200, job)
        wait_for(lambda: webhook_of(b, job["id"])["attempts"] >= 2, 10, "retries")
        rx = self.receiver(port=port)
        rx.wait(1, timeout=30)
        wait_for(lambda: webhook_of(b, job["id"])["status"] == "delivered", 10, "delivered")
        log = tail(b.log, 200000)
        self.assertIn("webhook for job %s to http://127.0.0.1:%d/hooks/briefd: attempt 1 failed"
                      % (job["id"], port), log)
        shown = json.dumps(webhook_of(b, job["id"]))
        for secret in ("pa55word-xyz", "qs-secret-123", "hookuser"):
            self.assertNotIn(secret, log)
            self.assertNotIn(secret, shown)


if __name__ == "__main__":
    unittest.main()
