"""Integration: briefd on highly available Redis set-ups (docs/REDIS.md).

- the job path (a representative subset of test_jobs.py's classes) against Sentinel;
- a failover: 300 jobs submitted while the primary is killed (kill -9), Sentinel promotes the
  replica, briefd follows without a restart; with redis.min_replicas_acked 1 no job answered
  202 is lost, without it the losses are counted and printed;
- acknowledged submits: every 202 is on the replica already; too few replicas -> 503
  replication_timeout; the submit latency with and without (printed);
- a three-node Redis Cluster: briefd pointed at a node that does not own its slot finds the
  one that does; scripts and jobs run;
- TLS through a stunnel sidecar, with an ACL user.
Everything runs on 127.0.0.1; a missing binary fails (never skips).
"""
import concurrent.futures
import os
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import test_jobs  # noqa: E402  (its classes are subclassed below, not run from here)
from ha_harness import (AclSentinelSet, ClusterSet, PasswordSentinelSet,  # noqa: E402
                        SentinelSet, TlsSidecar, key_slot, kill9, need,
                        resp_pipeline)
from harness import (Briefd, Sim, Stack, base_config, eventually, job_record,  # noqa: E402
                     tail, wait_for)

DOC = ("Revenue grew 12 percent in the third quarter. Costs were flat. "
       "The board approved a new data center in Ohio. Item %d.")


def percentile(values, q):
    v = sorted(values)
    if not v:
        return float("nan")
    i = min(len(v) - 1, max(0, int(round(q / 100.0 * (len(v) - 1)))))
    return v[i]


def primary_of(briefd):
    st, body, _ = briefd.get("/readyz")
    return st, body.get("redis_primary", {}) if isinstance(body, dict) else {}


# --- the job path against Sentinel ------------------------------------------------------------

class SentinelJobPath(test_jobs.JobPath):
    redis_factory = SentinelSet


class SentinelWebhook(test_jobs.Webhook):
    redis_factory = SentinelSet


class SentinelBadInput(test_jobs.BadInput):
    redis_factory = SentinelSet


class SentinelFacade(test_jobs.Facade):
    redis_factory = SentinelSet


class SentinelCosts(test_jobs.Costs):
    redis_factory = SentinelSet


class SentinelReady(Stack):
    redis_factory = SentinelSet

    def test_readyz_names_the_primary(self):
        st, p = primary_of(self.briefd)
        self.assertEqual(st, 200)
        self.assertEqual(p["via"], "sentinel")
        self.assertEqual(p["host"], "127.0.0.1")
        self.assertEqual(p["port"], self.redis.primary_port())
        # every connection of briefd's is on the primary, none on the replica
        names = [c for c in self.redis.cmd("CLIENT", "LIST").splitlines() if "name=briefd-" in c]
        self.assertTrue(any("name=briefd-cmd" in c for c in names), names)
        self.assertTrue(any("name=briefd-worker" in c for c in names), names)
        replica = self.redis.nodes[1]
        self.assertFalse([c for c in replica.cmd("CLIENT", "LIST").splitlines()
                          if "name=briefd-" in c])


class SentinelPassword(Stack):
    """Sentinels with requirepass: briefd authenticates with redis.sentinel_password_env."""
    redis_factory = PasswordSentinelSet

    def test_authenticated_discovery(self):
        st, p = primary_of(self.briefd)
        self.assertEqual((st, p["via"], p["port"]), (200, "sentinel", self.redis.primary_port()))
        st, job, _ = self.briefd.post_job({"text": DOC % 1}, wait=30)
        self.assertEqual((st, job["status"]), (200, "succeeded"), job)
        # briefd's connection to a sentinel is there (it could only be made with the password)
        seen = []
        for port in self.redis.sentinel_ports:
            seen += [c for c in self.redis.sentinel_cmd(port, "CLIENT", "LIST").splitlines()
                     if "name=briefd-sentinel" in c]
        self.assertTrue(seen)
        with self.assertRaises(RuntimeError):  # and it is needed (NOAUTH)
            resp_pipeline(self.redis.sentinel_ports[0],
                          [("SENTINEL", "get-master-addr-by-name", SentinelSet.MASTER)])


# --- failover ---------------------------------------------------------------------------------

FAILOVER_JOBS = 300
KILL_AFTER = 100        # jobs accepted before the replica is cut off, then the primary killed
CUT_OFF_ATTEMPTS = 20   # submits tried while the replica is cut off
WORKERS = {"concurrency": 16, "max_attempts": 5, "job_timeout_ms": 5000,
           "claim_idle_ms": 6000, "result_ttl_s": 3600}


class Failover(unittest.TestCase):
    @classmethod
    def tearDownClass(cls):
        from harness import check_openapi
        check_openapi()  # every briefd response of the class against docs/openapi.yaml

    """Each test builds its own primary + replica + three sentinels, cuts the replica off the
    primary (the writes then accepted exist on the primary only, as in a network partition or a
    lagging replica), kills the primary (kill -9) and lets Sentinel promote the replica."""

    def setUp(self):
        need("redis-sentinel")
        self.tmpdir = tempfile.TemporaryDirectory(prefix="briefd-ha-")
        self.tmp = self.tmpdir.name
        self.ss = AclSentinelSet(self.tmp).start()
        self.sim = Sim(self.tmp, "fast").start()
        self.briefd = None

    def tearDown(self):
        rc = self.briefd.stop() if self.briefd else 0
        sim_err = self.sim.stop(check=False)
        self.ss.stop()
        log = tail(self.briefd.log, 6000) if self.briefd else ""
        self.tmpdir.cleanup()
        self.assertEqual(rc, 0, "briefd exited %s on SIGTERM:\n%s" % (rc, log))
        self.assertIsNone(sim_err)

    def start_briefd(self, acks):
        redis_over = {"min_replicas_acked": acks, "replica_ack_timeout_ms": 500}
        cfg = base_config(self.ss, self.sim, workers=WORKERS, redis=redis_over)
        self.briefd = Briefd(self.tmp, cfg).start()
        return self.briefd

    def submit_until_accepted(self, i, book):
        """POST job i with its Idempotency-Key until 202/200 (60 s); 503s are retried."""
        body = {"text": DOC % i, "max_words": 30}
        key = {"Idempotency-Key": "failover-%d" % i}
        deadline = time.time() + 60
        while time.time() < deadline:
            t = time.time()
            try:
                st, job, _ = self.briefd.post_job(body, headers=key)
            except OSError:
                st, job = 0, None
            with book["lock"]:
                book["attempts"] += 1
            if st in (200, 202):
                with book["lock"]:
                    book["accepted"][i] = (job["id"], t)
                return
            with book["lock"]:
                code = job.get("error", {}).get("code") if isinstance(job, dict) else str(st)
                book["refused"][code] = book["refused"].get(code, 0) + 1
            time.sleep(0.05)
        raise AssertionError("job %d not accepted within 60 s" % i)

    def run_failover(self, acks):
        briefd = self.start_briefd(acks)
        pid = briefd.proc.pid
        old = self.ss.primary_port()
        book = {"lock": threading.Lock(), "accepted": {}, "refused": {}, "attempts": 0}
        t0 = time.time()
        killed = {}

        def killer():
            wait_for(lambda: len(book["accepted"]) >= KILL_AFTER, 60, "jobs before the kill")
            self.ss.partition()
            cut = book["attempts"]
            wait_for(lambda: book["attempts"] >= cut + CUT_OFF_ATTEMPTS, 60,
                     "submits while the replica is cut off")
            killed["t"] = time.time()
            kill9(self.ss.node(old))
            wait_for(lambda: self.ss.primary_port() != old, 60, "Sentinel to promote the replica")
            killed["promoted"] = time.time()
            # the old primary comes back (empty, no persistence) as a replica of the new one,
            # as a supervisor would restart it, so that min_replicas_acked can be met again
            node = self.ss.node(old)
            node.extra += ["--replicaof", "127.0.0.1", str(self.ss.primary_port())]
            node.start()

        kt = threading.Thread(target=killer)
        kt.start()
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            futs = []
            for i in range(FAILOVER_JOBS):
                delay = t0 + i * 0.02 - time.time()  # about 50 submits a second
                if delay > 0:
                    time.sleep(delay)
                futs.append(pool.submit(self.submit_until_accepted, i, book))
            for f in futs:
                f.result()
        kt.join()
        new = self.ss.primary_port()
        self.assertNotEqual(new, old)
        # briefd followed without a restart
        self.assertEqual(briefd.proc.pid, pid)
        self.assertIsNone(briefd.proc.poll())
        eventually(lambda: primary_of(briefd), lambda r: r[0] == 200 and r[1].get("port") == new,
                   30, "briefd's /readyz to name the new primary")
        first_after = min([t for _, t in book["accepted"].values() if t > killed["t"]] or [0])
        return self.account(book, killed, first_after, old, new)

    def account(self, book, killed, first_after, old, new):
        lost, done = [], 0
        for i, (jid, _t) in sorted(book["accepted"].items()):
            st, _, _ = self.briefd.get("/v1/jobs/%s" % jid)
            if st == 404:
                lost.append(jid)
                continue
            job = self.briefd.wait_job(jid, timeout=90)
            self.assertEqual(job["status"], "succeeded", job)
            done += 1
        fig = {"accepted": len(book["accepted"]), "lost": len(lost), "succeeded": done,
               "refused": dict(book["refused"]),
               "promotion_s": round(killed["promoted"] - killed["t"], 2),
               "first_accept_after_kill_s": round(first_after - killed["t"], 2)
               if first_after else None,
               "old": old, "new": new}
        return fig, lost

    def test_failover_acked_loses_nothing(self):
        fig, lost = self.run_failover(acks=1)
        print("\nFAILOVER min_replicas_acked=1: %r" % fig, flush=True)
        self.assertEqual(fig["accepted"], FAILOVER_JOBS)
        self.assertEqual(lost, [], "jobs answered 202 and lost despite WAIT: %r" % fig)
        self.assertEqual(fig["succeeded"], FAILOVER_JOBS)

    def test_failover_unacked_counts_losses(self):
        fig, lost = self.run_failover(acks=0)
        print("\nFAILOVER min_replicas_acked=0: %r" % fig, flush=True)
        self.assertEqual(fig["accepted"], FAILOVER_JOBS)
        self.assertEqual(fig["succeeded"] + fig["lost"], FAILOVER_JOBS)
        # what was accepted while the replica was cut off existed on the primary only
        self.assertGreater(fig["lost"], 0, fig)


# --- acknowledged submits -----------------------------------------------------------------------

class AckedSubmits(Stack):
    redis_factory = SentinelSet
    config_over = {"redis": {"min_replicas_acked": 1, "replica_ack_timeout_ms": 500}}

    def prefix(self):
        return self.briefd.config["redis"]["prefix"]

    def test_every_202_is_on_the_replica(self):
        replica = self.redis.nodes[1]
        for i in range(50):
            st, job, _ = self.briefd.post_job({"text": DOC % i},
                                              headers={"Idempotency-Key": "acked-%d" % i})
            self.assertEqual(st, 202, job)
            # read from the replica at once: WAIT returned, so it holds the job already
            self.assertIsNotNone(job_record(replica, self.prefix(), job["id"]), job["id"])

    def test_too_few_replicas_is_503_then_retry_finds_the_job(self):
        other = Briefd(self.tmp, dict(self.briefd.config, redis=dict(
            self.briefd.config["redis"], min_replicas_acked=2)), name="two-replicas").start()
        try:
            key = {"Idempotency-Key": "two-replicas-1"}
            t = time.time()
            st, body, hdrs = other.post_job({"text": DOC % 999}, headers=key)
            self.assertEqual(st, 503, body)
            self.assertEqual(body["error"]["code"], "replication_timeout")
            self.assertEqual(hdrs.get("retry-after"), "1")
            self.assertGreaterEqual(time.time() - t, 0.45)  # it waited replica_ack_timeout_ms
            # the job was written: the retry (here through the one-replica process) finds it
            st, job, _ = self.briefd.post_job({"text": DOC % 999}, headers=key)
            self.assertIn(st, (200, 202), job)
            self.assertEqual(self.briefd.wait_job(job["id"])["status"], "succeeded")
        finally:
            self.assertEqual(other.stop(), 0, tail(other.log))


class SubmitLatency(unittest.TestCase):
    """p50/p95 of POST /v1/jobs with and without min_replicas_acked 1 (printed)."""
    @classmethod
    def tearDownClass(cls):
        from harness import check_openapi
        check_openapi()  # every briefd response of the class against docs/openapi.yaml

    N = 400

    def test_latency_with_and_without_acks(self):
        with tempfile.TemporaryDirectory(prefix="briefd-lat-") as tmp:
            ss = SentinelSet(tmp).start()
            sim = Sim(tmp, "fast").start()
            procs = {}
            try:
                for acks in (0, 1):
                    cfg = base_config(ss, sim, redis={"min_replicas_acked": acks})
                    cfg["redis"]["prefix"] = "lat%d:" % acks
                    procs[acks] = Briefd(tmp, cfg, name="lat%d" % acks).start()
                lat = {0: [], 1: []}
                for i in range(self.N):
                    for acks in (0, 1):  # interleaved, so both see the same machine
                        t = time.perf_counter()
                        st, job, _ = procs[acks].post_job({"text": DOC % i})
                        lat[acks].append((time.perf_counter() - t) * 1000.0)
                        self.assertEqual(st, 202, job)
                fig = {a: {"p50_ms": round(percentile(v, 50), 3),
                           "p95_ms": round(percentile(v, 95), 3)} for a, v in lat.items()}
                print("\nSUBMIT LATENCY (n=%d each, sequential) min_replicas_acked=0: %r; "
                      "min_replicas_acked=1: %r" % (self.N, fig[0], fig[1]), flush=True)
            finally:
                for p in procs.values():
                    self.assertEqual(p.stop(), 0, tail(p.log))
                sim_err = sim.stop(check=False)
                ss.stop()
                self.assertIsNone(sim_err)


# --- Redis Cluster --------------------------------------------------------------------------------

def _cluster_prefix():
    """A prefix whose slot is in the third node's range (10923..16383): not the seed's."""
    for i in range(1000):
        p = "ha%d:" % i
        if key_slot(p) >= 10923:
            return p
    raise AssertionError("no prefix found")


CLUSTER_PREFIX = _cluster_prefix()


class ClusterJobs(Stack):
    redis_factory = ClusterSet
    config_over = {"redis": {"prefix": CLUSTER_PREFIX}}

    def test_finds_the_slot_owner_and_runs_jobs(self):
        slot = key_slot(CLUSTER_PREFIX)
        owner = self.redis.owner_port(slot)
        self.assertNotEqual(owner, self.redis.nodes[0].port)  # the URL names another node
        st, p = primary_of(self.briefd)
        self.assertEqual(st, 200)
        self.assertEqual((p["via"], p["port"]), ("cluster", owner))
        ids = []
        for i in range(20):
            hdrs = {"Idempotency-Key": "cluster-%d" % i} if i % 2 else None
            st, job, _ = self.briefd.post_job({"text": DOC % i, "priority": "high"
                                               if i % 3 == 0 else "normal"}, headers=hdrs)
            self.assertEqual(st, 202, job)
            ids.append(job["id"])
        st, job, _ = self.briefd.post_job({"text": DOC % 100}, wait=30)
        self.assertEqual((st, job["status"]), (200, "succeeded"), job)
        for jid in ids:
            self.assertEqual(self.briefd.wait_job(jid)["status"], "succeeded")
        # every key is in the one slot, on its owner
        owner_node = [n for n in self.redis.nodes if n.port == owner][0]
        self.assertGreater(owner_node.cmd("CLUSTER", "COUNTKEYSINSLOT", slot), 0)
        for n in self.redis.nodes:
            if n.port != owner:
                self.assertEqual(n.cmd("DBSIZE"), 0, n.port)
        # the statistics scripts (fold, window, totals) ran there too
        stats = eventually(lambda: self.briefd.get("/v1/stats?window=3600")[1],
                           lambda b: b.get("jobs", 0) >= 21, 15,
                           "the statistics to count the jobs")
        self.assertEqual(stats["succeeded"], 21)
        st, metrics, _ = self.briefd.get("/metrics")
        self.assertEqual(st, 200)


# --- TLS through a stunnel sidecar, ACL user ----------------------------------------------------

class TlsSidecarJobs(Stack):
    redis_factory = TlsSidecar

    def test_jobs_through_stunnel_with_acl_user(self):
        for i in range(10):
            st, job, _ = self.briefd.post_job({"text": DOC % i}, wait=30)
            self.assertEqual((st, job["status"]), (200, "succeeded"), job)
        clients = [c for c in self.redis.cmd("CLIENT", "LIST").splitlines() if "name=briefd-" in c]
        self.assertTrue(clients)
        for c in clients:
            self.assertIn("user=%s" % TlsSidecar.USER, c)
        # the server has no plain port: everything went through TLS
        self.assertEqual(self.redis.cmd("CONFIG", "GET", "port"), ["port", "0"])
        st, p = primary_of(self.briefd)
        self.assertEqual((st, p["via"], p["port"]), (200, "url", self.redis.port))


if __name__ == "__main__":
    unittest.main()
