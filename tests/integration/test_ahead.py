"""Integration: jobs started ahead of their submit (service/worker.h, worker_ahead).

A `?wait` job submitted to a process whose worker idles starts at once, while the submit
that claims its entry for this process is on its way to Redis. These tests hold Redis
still with CLIENT PAUSE to make each outcome of that submit happen for certain: the
draft call reaches the model while the submit waits; the script claims the job's own
entry, an older entry of the queue's backlog, or nothing (a refused submit). Whatever the
outcome, every job runs to one record, is counted once and leaves nothing pending."""
import os
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Stack, eventually, job_id_of_entry, log_lines, queue_state,  # noqa: E402
                     request, rkey, wait_for)

TEXT = ("Revenue grew 12 percent in the third quarter. Costs were flat. "
        "The board approved a new data center in Ohio.")


def resp_command(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


class StartedAhead(Stack):
    config_over = {"routing": {"policies": [], "guards": {"max_refine_rate": None}}}

    def setUp(self):
        super().setUp()
        self.prefix = self.briefd.config["redis"]["prefix"]
        self.sim.reset()

    # --- helpers ---

    def clients(self, cmd):
        """Redis clients whose current (or postponed) command is cmd, with their flags."""
        rows = []
        for line in self.redis.cmd("CLIENT", "LIST").splitlines():
            kv = dict(f.split("=", 1) for f in line.split(" ") if "=" in f)
            if kv.get("cmd") == cmd:
                rows.append(kv)
        return rows

    def wait_idle(self):
        """briefd's worker waits in its blocking read, no job in flight: it may start ahead."""
        wait_for(lambda: any("b" in c["flags"] for c in self.clients("xreadgroup")), 10,
                 "the worker's blocking read")
        wait_for(lambda: queue_state(self.redis, self.prefix)["pending"] == 0, 10,
                 "no entry pending")

    def post_in_thread(self, rid):
        out = {}

        def run():
            out["r"] = self.briefd.post_job({"text": TEXT}, wait=30,
                                            headers={"X-Request-Id": rid})
        t = threading.Thread(target=run)
        t.start()
        return t, out

    def drafts(self, rid=None):
        return [r for r in self.sim.requests() if r["model"] == "phi-4-mini" and
                (rid is None or r["headers"].get("x-request-id") == rid)]

    def jobs_counted(self):
        st, s, _ = self.briefd.get("/v1/stats?window=3600")
        self.assertEqual(st, 200, s)
        return s["jobs"]

    def assert_clean(self):
        """Every job ended once: each record counted once, nothing left in the queues."""
        records = len(self.redis.cmd("KEYS", rkey(self.prefix, "job:*")))
        eventually(self.jobs_counted, lambda n: n == records, 10,
                   "the statistics to count the %d job records" % records)
        q = queue_state(self.redis, self.prefix)
        self.assertEqual((q["xlen"], q["pending"], q["dead"]), (0, 0, 0), q)
        # no run ended without its entry (a dropped job that ran on to a refused finish)
        self.assertEqual(log_lines(self.briefd.log, "result was discarded"), [])
        self.assertEqual(log_lines(self.briefd.log, " error: "), [])

    def ended(self, job_id):
        st, job, _ = self.briefd.get("/v1/jobs/%s?wait=20" % job_id)
        self.assertEqual(st, 200, job)
        self.assertEqual(job["status"], "succeeded", job)
        return job

    # --- tests ---

    def test_draft_runs_while_the_submit_waits(self):
        """Redis paused: the draft call reaches the model before the submit has run; the
        job then ends as one record, counted once, the answer equal to what GET returns."""
        self.wait_idle()
        self.redis.cmd("CLIENT", "PAUSE", "1500", "ALL")
        t0 = time.monotonic()
        t, out = self.post_in_thread("ahead-1")
        wait_for(lambda: self.drafts("ahead-1"), 1.2, "the draft call while Redis is paused")
        self.assertLess(time.monotonic() - t0, 1.5, "the draft came after the pause")
        self.assertTrue(t.is_alive(), "answered before the submit ran")
        t.join(40)
        st, job, hdrs = out["r"]
        self.assertEqual(st, 200, job)
        self.assertEqual(job["status"], "succeeded", job)
        self.assertEqual(hdrs.get("x-briefd-job-id"), job["id"])
        self.assertEqual(job["attempts"], 1)
        self.assertEqual(self.briefd.get("/v1/jobs/" + job["id"])[1], job)
        self.assertEqual(len(self.drafts("ahead-1")), 1, "the job was drafted twice")
        self.assert_clean()

    def test_backlog_entry_claimed_first(self):
        """The queue holds entries no worker has read yet when the submit runs: its script
        claims the oldest (as a worker's read would) and this worker runs it; the job started
        ahead is dropped and runs when its own entry is read. Every job runs once."""
        st, first, _ = self.briefd.post_job({"text": TEXT}, wait=20)
        self.assertEqual(st, 200, first)
        rec = self.redis.cmd("GET", rkey(self.prefix, "job:" + first["id"]))
        _, req, meta = rec.split("\n", 2)
        q = rkey(self.prefix, "q:normal")
        self.wait_idle()
        self.redis.cmd("CLIENT", "PAUSE", "1500", "WRITE")
        # three entries queued by another client, postponed by the pause ahead of the submit:
        # when the submit's script runs, the worker's blocking read has not been served them
        # all (Redis serves it once the postponed commands ran, or after the first XADD)
        with socket.create_connection(("127.0.0.1", self.redis.port), timeout=10) as s:
            s.sendall(b"".join(resp_command("XADD", q, "*", "r", req, "m", meta)
                               for _ in range(3)))
            wait_for(lambda: self.clients("xadd"), 2, "the XADDs postponed by the pause")
            t, out = self.post_in_thread("ahead-2")
            wait_for(lambda: self.clients("evalsha"), 2, "the submit postponed by the pause")
            f = s.makefile("rb")
            entries = [f.readline().strip() and f.readline().strip().decode()
                       for _ in range(3)]
        t.join(40)
        st, job, _ = out["r"]
        self.assertEqual(st, 200, job)
        self.assertEqual(job["status"], "succeeded", job)
        claimed = [e for e in entries
                   if log_lines(self.briefd.log, "claimed entry %s of the backlog" % e)]
        self.assertEqual(len(claimed), 1, "no entry of the backlog claimed by the submit")
        for e in entries:
            self.assertEqual(self.ended(job_id_of_entry("normal", e))["attempts"], 1)
        # the job itself ran twice (ahead, then from its entry), stored once
        self.assertEqual(len(self.drafts("ahead-2")), 2)
        self.assert_clean()

    def test_refused_submit_drops_the_job(self):
        """A submit refused (the Idempotency-Key names an earlier job): the job started
        ahead is dropped unrecorded, uncounted; the answer is the earlier job's."""
        hdr = {"Idempotency-Key": "ahead-key-1"}
        st, first, _ = self.briefd.post_job({"text": TEXT}, wait=20, headers=hdr)
        self.assertEqual(st, 200, first)
        records = set(self.redis.cmd("KEYS", rkey(self.prefix, "job:*")))
        self.wait_idle()
        self.sim.reset()
        st, again, _ = self.briefd.post_job({"text": TEXT}, wait=20,
                                            headers=dict(hdr, **{"X-Request-Id": "ahead-3"}))
        self.assertEqual(st, 200, again)
        self.assertEqual(again["id"], first["id"])
        self.assertLessEqual(len(self.drafts("ahead-3")), 1)
        self.wait_idle()  # the dropped job gave its slot back: the worker idles again
        # one more job starts ahead and ends normally: nothing was left behind
        st, third, _ = self.briefd.post_job({"text": TEXT + " Third."}, wait=20)
        self.assertEqual((st, third["status"]), (200, "succeeded"), third)
        self.assert_clean()
        added = set(self.redis.cmd("KEYS", rkey(self.prefix, "job:*"))) - records
        self.assertEqual(added, {rkey(self.prefix, "job:" + third["id"])})


if __name__ == "__main__":
    unittest.main()
