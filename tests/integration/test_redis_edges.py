"""Integration: configuration and Redis edge cases (issue 13, item 7) - a reload that would
change what is bound at start-up is refused and the running config stays; a Redis that
refuses the password or the database keeps briefd not ready, with Redis's words in /readyz and
a bounded number of log lines; a Redis out of memory is reported as what Redis said, not as
"unreachable"; limits.idempotency_ttl_s may not outlive workers.result_ttl_s; the finish script
on its own: a batch with a record missing writes nothing; a facade job read right after its
answer, while its record waits behind another finish batch, is read after the record; while
Redis stores nothing, the facade's records waiting in memory are bounded (503 records_backlog)
and every answered run is recorded once Redis is back."""
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BRIEFD, REDIS, Briefd, Redis, Sim, Stack, _resp_take,  # noqa: E402
                     base_config, eventually, job_id_of_entry, log_lines, queue_state, rkey,
                     tail, wait_for, wait_port)
from test_prometheus import sample  # noqa: E402

TEXT = "Revenue grew 12 percent. Costs were flat. The board approved a new data center."


class ArgsRedis(Redis):
    """A redis-server with extra command-line arguments (requirepass, databases ...)."""

    def __init__(self, tmp, extra):
        super().__init__(tmp)
        self.extra = list(extra)

    def start(self):
        args = [REDIS, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
                "--save", "", "--appendonly", "no", "--logfile", self.log] + self.extra
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, proc=self.proc, log=self.log)
        return self


class RestartOnlyReload(Stack):
    """redis.url, redis.prefix and listen are bound at start-up: a reload that changes one is
    refused with 422 naming it, and everything goes on under the running config."""

    def reload_with(self, mutate):
        cfg = json.loads(json.dumps(self.original))
        mutate(cfg)
        self.briefd.write_config(cfg)
        return self.briefd.request("POST", "/v1/config/reload")

    def tearDown(self):
        self.briefd.write_config(self.original)

    def setUp(self):
        super().setUp()
        self.original = json.loads(json.dumps(self.briefd.config))

    def assert_refused(self, st, body, param):
        self.assertEqual(st, 422, body)
        self.assertEqual(body["error"]["code"], "invalid_config")
        self.assertEqual(body["error"]["param"], param)
        self.assertIn("restart", body["error"]["message"])
        self.assertEqual([e["param"] for e in body["error"]["errors"]], [param])

    def test_prefix_change_refused_and_nothing_moves(self):
        v0 = self.briefd.get("/v1/config")[1]
        old_prefix = v0["redis"]["prefix"]
        st, body, _ = self.reload_with(
            lambda c: c["redis"].update(prefix="moved:"))
        self.assert_refused(st, body, "redis.prefix")
        v1 = self.briefd.get("/v1/config")[1]
        self.assertEqual(v1["version"], v0["version"])
        self.assertEqual(v1["redis"]["prefix"], old_prefix)
        # jobs still go under the old prefix, and a ?wait still hears the job's events at
        # once (the subscription is on the channel jobs are published to)
        t = time.time()
        st, job, _ = self.briefd.post_job({"text": TEXT}, wait=20)
        self.assertEqual(st, 200, job)
        self.assertLess(time.time() - t, 8.0)
        self.assertIsNotNone(self.redis.cmd("GET", rkey(old_prefix, "job:" + job["id"])))
        self.assertIsNone(self.redis.cmd("GET", rkey("moved:", "job:" + job["id"])))
        self.assertEqual(self.redis.cmd("KEYS", "{moved:}*"), [])

    def test_url_and_listen_changes_refused(self):
        st, body, _ = self.reload_with(lambda c: c["redis"].update(
            url="redis://127.0.0.1:%d/3" % self.redis.port))
        self.assert_refused(st, body, "redis.url")
        st, body, _ = self.reload_with(lambda c: c["redis"].update(
            url="redis://:secret@127.0.0.1:%d/0" % self.redis.port))
        self.assert_refused(st, body, "redis.url")        # a password is part of the url
        self.assertNotIn("secret", json.dumps(body))
        st, body, _ = self.reload_with(lambda c: c.update(listen="127.0.0.1:1"))
        self.assert_refused(st, body, "listen")
        st, body, _ = self.reload_with(lambda c: c["redis"].update(command_timeout_ms=1234))
        self.assert_refused(st, body, "redis.command_timeout_ms")
        # what may change still does
        st, body, _ = self.reload_with(lambda c: c.setdefault("limits", {}).update(max_wait_s=30))
        self.assertEqual(st, 200, body)
        self.assertEqual(self.briefd.get("/v1/config")[1]["limits"]["max_wait_s"], 30)

    def test_sighup_refused_logged(self):
        v0 = self.briefd.get("/v1/config")[1]["version"]
        cfg = json.loads(json.dumps(self.briefd.config))
        cfg["redis"]["prefix"] = "other:"
        self.briefd.write_config(cfg)
        self.briefd.proc.send_signal(1)
        wait_for(lambda: log_lines(self.briefd.log, "redis.prefix: cannot change on reload"),
                 10, "the refused SIGHUP reload in the log")
        self.assertEqual(self.briefd.get("/v1/config")[1]["version"], v0)


class LateEntries(Stack):
    """A submit far from the queue bound is one XADD carrying its deadline (field d, Redis's
    clock): the entry id is Redis's clock when the XADD ran, so an entry whose id is past d
    reached Redis after briefd gave up on it (and answered the client an error). The worker
    that reads it discards it unrun; an entry within its deadline runs."""

    def test_late_entry_discarded_on_time_entry_runs(self):
        st, job, _ = self.briefd.post_job({"text": TEXT}, wait=20)
        self.assertEqual(st, 200, job)
        prefix = self.briefd.config["redis"]["prefix"]
        rec = self.redis.cmd("GET", rkey(prefix, "job:" + job["id"]))
        _, req, meta = rec.split("\n", 2)
        q = rkey(prefix, "q:normal")
        now_ms = int(time.time() * 1000)
        late = self.redis.cmd("XADD", q, "*", "r", req, "m", meta, "d", str(now_ms - 60000))
        ok = self.redis.cmd("XADD", q, "*", "r", req, "m", meta, "d", str(now_ms + 60000))
        late_id, ok_id = job_id_of_entry("normal", late), job_id_of_entry("normal", ok)

        def ended(jid):
            st, body = self.briefd.get("/v1/jobs/" + jid)[:2]
            return st == 200 and body["status"] in ("succeeded", "failed")
        wait_for(lambda: ended(ok_id), 20, "the entry within its deadline to run")
        self.assertEqual(self.briefd.get("/v1/jobs/" + ok_id)[1]["status"], "succeeded")
        wait_for(lambda: queue_state(self.redis, prefix)["xlen"] == 0, 20,
                 "the late entry to be discarded")
        self.assertEqual(queue_state(self.redis, prefix)["pending"], 0)
        st, body = self.briefd.get("/v1/jobs/" + late_id)[:2]
        self.assertEqual(st, 404, body)
        self.assertIsNone(self.redis.cmd("GET", rkey(prefix, "job:" + late_id)))
        lines = log_lines(self.briefd.log, "reached Redis after its submit gave up")
        self.assertEqual(len(lines), 1, lines)
        self.assertIn(late, lines[0])
        self.assertIn(late_id, lines[0])


def xreadgroup_calls(redis):
    """XREADGROUP calls Redis has run (INFO commandstats)."""
    for line in redis.cmd("INFO", "commandstats").splitlines():
        if line.startswith("cmdstat_xreadgroup:"):
            return int(line.split("calls=", 1)[1].split(",", 1)[0])
    return 0


class PriorityOrder(Stack):
    """One call slot: a job holds it (its model call answered late) while three low, three
    normal and three high jobs queue, submitted in that order. The worker takes them high
    before normal before low: the model sees them in that order."""
    config_over = {"workers": {"concurrency": 1}}

    def test_high_before_normal_before_low(self):
        self.sim.rules(Sim.rule("BLOCKER", delay_ms=1500))
        st, blocker, _ = self.briefd.post_job({"text": TEXT + " BLOCKER"})
        self.assertEqual(st, 202, blocker)
        wait_for(lambda: self.sim.stats()["pending"] >= 1, 10, "the blocker's model call")
        ids = [blocker["id"]]
        for prio in ("low", "normal", "high"):
            for i in range(3):
                st, job, _ = self.briefd.post_job(
                    {"text": "%s (%s %d)" % (TEXT, prio, i), "priority": prio},
                    headers={"X-Request-Id": "prio-%s-%d" % (prio, i)})
                self.assertEqual(st, 202, job)
                ids.append(job["id"])
        for jid in ids:
            self.assertEqual(self.briefd.wait_job(jid)["status"], "succeeded")
        order = []
        for r in reversed(self.sim.requests()):     # oldest first
            rid = r["headers"].get("x-request-id", "")
            if rid.startswith("prio-") and rid not in order:
                order.append(rid)
        self.assertEqual([o.split("-")[1] for o in order],
                         ["high"] * 3 + ["normal"] * 3 + ["low"] * 3, order)


class ReadsAtLowLoad(Stack):
    """At low load a worker's blocking read answers with the one new entry it was woken for,
    which shows the queues are empty: the next read blocks at once, without polling the
    three queues first - about one XREADGROUP a job, not four."""

    def test_one_read_a_job(self):
        st, job, _ = self.briefd.post_job({"text": TEXT}, wait=20)     # warmed up
        self.assertEqual(st, 200, job)
        before, n = xreadgroup_calls(self.redis), 20
        for i in range(n):
            st, job, _ = self.briefd.post_job({"text": "%s (%d)" % (TEXT, i)}, wait=20)
            self.assertEqual((st, job["status"]), (200, "succeeded"), job)
        calls = xreadgroup_calls(self.redis) - before
        # n reads, plus one for each second a read blocked with nothing to take
        self.assertGreaterEqual(calls, n)
        self.assertLessEqual(calls, n + 6, calls)


class EventLog:
    """Every message published on a prefix's events channel, as [(id, status, len)] lists
    (one per message, in order), read by a background subscriber."""

    def __init__(self, redis, prefix):
        import threading
        self.messages, self.lock = [], threading.Lock()
        self.sock = socket.create_connection(("127.0.0.1", redis.port), timeout=5)
        ch = rkey(prefix, "events").encode()
        self.sock.sendall(b"*2\r\n$9\r\nSUBSCRIBE\r\n$%d\r\n%s\r\n" % (len(ch), ch))
        self.buf = b""
        self._read_one()                       # the subscribe confirmation
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _read_one(self):
        while True:
            msg, self.buf = _resp_take(self.buf)
            if msg is not None:
                return msg
            data = self.sock.recv(65536)
            if not data:
                raise OSError("closed")
            self.buf += data

    def _run(self):
        try:
            while True:
                msg = self._read_one()
                if isinstance(msg, list) and msg[0] == "message":
                    with self.lock:
                        self.messages.append(parse_lens(msg[2]))
        except OSError:
            return

    def find(self, job_id):
        """(the message holding job_id's terminal event, that event) or (None, None)."""
        with self.lock:
            for m in self.messages:
                for ev in m:
                    if ev[0] == job_id and ev[1] in ("succeeded", "failed"):
                        return m, ev
        return None, None

    def close(self):
        self.sock.close()


def parse_lens(payload):
    out, data = [], payload.encode("utf-8")
    while data:
        nl = data.find(b"\n")
        head = data[:nl].decode().split(" ")
        n = int(head[2])
        out.append((head[0], head[1], n))
        data = data[nl + 1 + n + 1:]
    return out


class FinishEvents(unittest.TestCase):
    """A finish batch publishes its terminal events after an origin line naming the process.
    The events carry no job object - the finishing process answers its own parked requests
    in process, other listeners read the record - except for a job whose submit was parked
    on another process (an API-only process in front of worker processes): that event
    carries the job, in a message of its own, so the waiting process answers without
    reading Redis. The waiter's
    mark never shows in the job object."""

    @classmethod
    def setUpClass(cls):
        cls.tmpdir = tempfile.TemporaryDirectory(prefix="briefd-it-")
        cls.redis = Redis(cls.tmpdir.name).start()
        cls.sim = Sim(cls.tmpdir.name, "fast").start()
        cls.procs = []

    @classmethod
    def tearDownClass(cls):
        rcs = [p.stop() for p in cls.procs]
        cls.sim.stop(check=False)
        cls.redis.stop()
        cls.tmpdir.cleanup()
        if any(rc != 0 for rc in rcs):
            raise AssertionError("a briefd exited %s on SIGTERM" % rcs)

    def start(self, prefix, role):
        cfg = base_config(self.redis, self.sim)
        cfg["redis"]["prefix"] = prefix
        b = Briefd(self.tmpdir.name, cfg, role=role, name="%s%s" % (prefix.strip(":"), role))
        self.procs.append(b.start())
        return b

    def event_of(self, log, job_id):
        wait_for(lambda: log.find(job_id)[0] is not None, 10, "the terminal event of " + job_id)
        return log.find(job_id)

    def test_all_in_one_event_has_no_job(self):
        log = EventLog(self.redis, "one:")
        try:
            b = self.start("one:", "all")
            st, job, _ = b.post_job({"text": TEXT}, wait=20)
            self.assertEqual(st, 200, job)
            self.assertEqual(job["status"], "succeeded")
            self.assertNotIn("waiter", job)
            msg, ev = self.event_of(log, job["id"])
            self.assertEqual(ev[2], 0, msg)             # answered in process: no job object
            self.assertEqual(msg[0][1], "origin", msg)
            self.assertEqual(msg[0][2], 0, msg)
            self.assertNotIn("waiter", b.get("/v1/jobs/" + job["id"])[1])
        finally:
            log.close()

    def test_api_process_waiting_gets_the_job_in_the_event(self):
        log = EventLog(self.redis, "split:")
        try:
            api = self.start("split:", "api")
            self.start("split:", "worker")
            st, job, _ = api.post_job({"text": TEXT}, wait=20)
            self.assertEqual(st, 200, job)
            self.assertEqual(job["status"], "succeeded")
            self.assertTrue(job["result"]["brief"])
            self.assertNotIn("waiter", job)
            msg, ev = self.event_of(log, job["id"])
            self.assertEqual(len(msg), 1, msg)          # a message of its own
            self.assertGreater(ev[2], 100, msg)         # the job object rides along
            got = api.get("/v1/jobs/" + job["id"])[1]
            self.assertNotIn("waiter", got)
            self.assertEqual(got["result"], job["result"])
            # a job nobody waits for: its event carries no object; a later ?wait on it
            # reads the record
            st, queued, _ = api.post_job({"text": TEXT + " Later."})
            self.assertEqual(st, 202, queued)
            msg, ev = self.event_of(log, queued["id"])
            self.assertEqual(ev[2], 0, msg)
            st, done, _ = api.get("/v1/jobs/%s?wait=5" % queued["id"])
            self.assertEqual(st, 200, done)
            self.assertEqual(done["status"], "succeeded")
        finally:
            log.close()


def finish_script():
    """FINISH_LUA as Redis runs it: read from service/store.c (the C string literal)."""
    import re
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "service",
                       "store.c")
    with open(src) as f:
        text = f.read()
    body = re.search(r"static const char FINISH_LUA\[\] =\n(.*?);\n", text, re.S).group(1)
    body = re.sub(r"/\*.*?\*/", "", body, flags=re.S)
    parts = re.findall(r'"((?:[^"\\]|\\.)*)"', body)
    return "".join(parts).encode().decode("unicode_escape")


class FinishScript(unittest.TestCase):
    """The finish script on its own, against a real Redis: a batch whose records were all
    written stores every job (each record renamed into place, each entry acked, the deltas
    queued); a batch with one record missing fails whole, naming that job, and writes
    nothing - not even for the jobs whose records are there."""

    @classmethod
    def setUpClass(cls):
        cls.tmpdir = tempfile.TemporaryDirectory(prefix="briefd-it-")
        cls.redis = Redis(cls.tmpdir.name).start()
        cls.lua = finish_script()

    @classmethod
    def tearDownClass(cls):
        cls.redis.stop()
        cls.tmpdir.cleanup()

    def batch(self, n, prefix, direct=0):
        """KEYS and ARGV of a batch of n jobs, each delivered from q:normal (group g), then
        direct more that never were queued (the facade's: prio -1, entry "direct")."""
        r = self.redis
        q = prefix + "q:normal"
        r.cmd("XGROUP", "CREATE", q, "g", "$", "MKSTREAM")
        entries = [r.cmd("XADD", q, "*", "r", "{}") for _ in range(n)]
        if n:
            r.cmd("XREADGROUP", "GROUP", "g", "c", "COUNT", str(n), "STREAMS", q, ">")
        keys = [prefix + "q:low", q, prefix + "q:high", prefix + "pend"]
        args = ["g", prefix + "events", str(n + direct), "origin"]
        for i, e in enumerate(entries + ["direct"] * direct):
            e = e.decode() if isinstance(e, bytes) else e
            keys += [prefix + "job:%d" % i, prefix + "jobx:%d" % i, prefix + "fin:%d" % i,
                     prefix + "spend", prefix + "resv", prefix + "exp"]
            args += ["1" if e != "direct" else "-1", e, "0", "succeeded", "delta%d" % i,
                     "job_%d" % i, "0", "0", "", ""]
        keys += [prefix + "wh:q", prefix + "wh:due"]
        return keys, args

    def write_records(self, prefix, args):
        """What the finishing process writes before the script: each job's record at its fin:
        key, starting with its delivery (by which the script knows its own record)."""
        for i in range(int(args[2])):
            self.redis.cmd("SET", prefix + "fin:%d" % i,
                           '{"delivery":"%s","job":{}}\nrecord %d' % (args[5 + 10 * i], i))

    def run_script(self, keys, args):
        try:
            return self.redis.cmd("EVAL", self.lua, str(len(keys)), *(keys + args))
        except Exception as e:  # an error reply
            return e

    def test_all_records_written(self):
        keys, args = self.batch(3, "a:")
        for i in range(3):
            self.redis.cmd("SET", "a:fin:%d" % i, "record %d" % i)
        self.assertEqual(self.run_script(keys, args), [1, 1, 1])
        for i in range(3):
            self.assertEqual(self.redis.cmd("GET", "a:job:%d" % i), "record %d" % i)
            self.assertEqual(self.redis.cmd("EXISTS", "a:fin:%d" % i), 0)
        self.assertEqual(self.redis.cmd("LRANGE", "a:pend", "0", "-1"),
                         ["delta0", "delta1", "delta2"])
        self.assertEqual(self.redis.cmd("XPENDING", "a:q:normal", "g")[0], 0)
        self.assertEqual(self.redis.cmd("XLEN", "a:q:normal"), 0)

    def test_a_resent_batch_counts_once(self):
        """A batch whose answer was lost (the connection dropped) is sent again, records and
        all: every job - the queued ones and the facade's, which no queue entry fences - is
        reported stored earlier (2), and counted and published once."""
        keys, args = self.batch(2, "r:", direct=2)
        for attempt in range(2):
            self.write_records("r:", args)
            self.assertEqual(self.run_script(keys, args), [1 + attempt] * 4)
            for i in range(4):
                self.assertTrue(self.redis.cmd("GET", "r:job:%d" % i).endswith("record %d" % i))
                self.assertEqual(self.redis.cmd("EXISTS", "r:fin:%d" % i), 0)
            self.assertEqual(self.redis.cmd("LRANGE", "r:pend", "0", "-1"),
                             ["delta0", "delta1", "delta2", "delta3"])

    def test_a_missing_record_stores_nothing(self):
        keys, args = self.batch(3, "b:")
        self.redis.cmd("SET", "b:fin:0", "record 0")
        self.redis.cmd("SET", "b:fin:2", "record 2")   # job_1's record is missing
        err = self.run_script(keys, args)
        self.assertIsInstance(err, Exception)
        self.assertIn("the record of job_1 is missing", str(err))
        for i in range(3):
            self.assertEqual(self.redis.cmd("EXISTS", "b:job:%d" % i), 0)
        self.assertEqual(self.redis.cmd("EXISTS", "b:fin:0"), 1)
        self.assertEqual(self.redis.cmd("EXISTS", "b:pend"), 0)
        self.assertEqual(self.redis.cmd("XPENDING", "b:q:normal", "g")[0], 3)  # none acked


class FacadeReadAfterAnswer(Stack):
    """The facade answers before its record is stored (the record goes out in the next finish
    batch). A GET of that job, sent to the same process right after the answer, must see the
    record also when the record waits behind a batch Redis has not answered yet: the read is
    held until the record has gone out ahead of it on the same connection."""
    config_over = {"routing": {"policies": [], "guards": {"max_refine_rate": None}}}

    def chat(self, text):
        st, r, _ = self.briefd.request("POST", "/v1/chat/completions", {
            "model": "briefd-hybrid", "messages": [{"role": "user", "content": text}]})
        self.assertEqual(st, 200, r)
        return r["briefd"]["job_id"]

    def test_get_waits_for_the_record_behind_a_batch_in_flight(self):
        warm = self.chat(TEXT)
        wait_for(lambda: self.briefd.get("/v1/jobs/" + warm)[0] == 200, 10, "the first record")
        # Redis holds every write for 1.5 s: the first run's finish batch is sent and waits in
        # Redis; the second run's record queues behind it, in this process
        self.redis.cmd("CLIENT", "PAUSE", "1500", "WRITE")
        t0 = time.time()
        first = self.chat(TEXT + " First.")
        second = self.chat(TEXT + " Second.")
        self.assertLess(time.time() - t0, 1.2, "the answers must come while Redis is paused")
        for jid in (second, first):
            st, job, _ = self.briefd.get("/v1/jobs/" + jid)
            self.assertEqual(st, 200, (jid, job))
            self.assertEqual(job["status"], "succeeded")
            self.assertEqual(job["id"], jid)


class FacadeRecordHold(Stack):
    """An answered facade run's record is held up to facade.record_hold_ms (here 1000) for
    others to share its finish script: sequential runs inside the hold are stored by one
    script (their events in one message). The hold never delays a reader - a GET of a held
    run sends it at once - and SIGTERM stores what is held before the process leaves."""
    config_over = {"routing": {"policies": [], "guards": {"max_refine_rate": None}},
                   "facade": {"record_hold_ms": 1000}}

    def chat(self, b, text):
        st, r, _ = b.request("POST", "/v1/chat/completions", {
            "model": "briefd-hybrid", "messages": [{"role": "user", "content": text}]})
        self.assertEqual(st, 200, r)
        return r["briefd"]["job_id"]

    def prefix(self):
        return base_config(self.redis, self.sim)["redis"]["prefix"]

    def test_answered_runs_share_one_finish(self):
        log = EventLog(self.redis, self.prefix())
        try:
            ids = [self.chat(self.briefd, "%s Run %d." % (TEXT, i)) for i in range(5)]
            for jid in ids:
                wait_for(lambda: log.find(jid)[0] is not None, 10, "the event of " + jid)
            msgs = [log.find(jid)[0] for jid in ids]
            self.assertTrue(all(m is msgs[0] for m in msgs), msgs)  # one finish script
            for jid in ids:
                self.assertEqual(self.redis.cmd("EXISTS", rkey(self.prefix(), "job:" + jid)), 1)
        finally:
            log.close()

    def test_a_get_sends_the_held_record(self):
        jid = self.chat(self.briefd, TEXT + " Read at once.")
        t0 = time.time()
        st, job, _ = self.briefd.get("/v1/jobs/" + jid)
        self.assertEqual((st, job.get("status")), (200, "succeeded"), job)
        self.assertLess(time.time() - t0, 0.9, "the GET waited for the hold")

    def test_sigterm_stores_the_held_records(self):
        cfg = base_config(self.redis, self.sim, **self.config_over)
        cfg["facade"]["record_hold_ms"] = 1000
        b = Briefd(self.tmp, cfg, name="held").start()
        jid = self.chat(b, TEXT + " Then a stop.")
        self.assertEqual(b.stop(), 0)
        self.assertEqual(self.redis.cmd("EXISTS", rkey(self.prefix(), "job:" + jid)), 1)


class FacadeRecordBacklog(Stack):
    """While Redis does not store records, answered facade runs' records wait in the process;
    at facade.max_unrecorded (here 8) a new request is refused (503 records_backlog) before it
    runs, so memory stays bounded - and every answered run is recorded and counted once Redis
    is back."""
    config_over = {"routing": {"policies": [], "guards": {"max_refine_rate": None}},
                   "facade": {"max_unrecorded": 8, "record_hold_ms": 0}}

    def chat(self, i):
        return self.briefd.request("POST", "/v1/chat/completions", {
            "model": "briefd-hybrid",
            "messages": [{"role": "user", "content": "%s Backlog run %d." % (TEXT, i)}]})

    def pending(self):
        st, text, _ = self.briefd.get("/metrics")
        self.assertEqual(st, 200)
        return sample(text.decode(), "briefd_records_pending")

    def jobs_counted(self):
        return self.briefd.get("/v1/stats?window=3600")[1].get("jobs")

    def test_refused_at_the_bound_and_every_answer_recorded(self):
        before = self.jobs_counted()
        self.assertEqual(self.pending(), 0)
        self.redis.cmd("CLIENT", "PAUSE", "30000", "WRITE")  # Redis stores nothing
        try:
            ids = []
            for i in range(8):
                st, r, _ = self.chat(i)
                self.assertEqual(st, 200, r)
                ids.append(r["briefd"]["job_id"])
            st, r, h = self.chat(8)
            self.assertEqual(st, 503, r)
            self.assertEqual((r["error"]["type"], r["error"]["code"]),
                             ("server_error", "records_backlog"), r)
            self.assertIn("8 answered requests", r["error"]["message"])
            self.assertEqual(h.get("retry-after"), "1", h)
            self.assertEqual(self.pending(), 8)  # (the scrape waits for Redis's counters)
        finally:
            self.redis.cmd("CLIENT", "UNPAUSE")
        wait_for(lambda: self.pending() == 0, 15, "the held records stored")
        for jid in ids:
            st, job, _ = self.briefd.get("/v1/jobs/" + jid)
            self.assertEqual((st, job.get("status")), (200, "succeeded"), (jid, job))
        eventually(self.jobs_counted, lambda n: n == before + 8, 10,
                   "the 8 answered runs counted once")
        st, r, _ = self.chat(9)  # the backlog gone, requests run again
        self.assertEqual(st, 200, r)


class IdempotencyTtl(unittest.TestCase):
    @classmethod
    def tearDownClass(cls):
        from harness import check_openapi
        check_openapi()  # every briefd response of the class against docs/openapi.yaml

    """limits.idempotency_ttl_s longer than workers.result_ttl_s is refused at load with its
    path; left out, it is derived as min(86400, result_ttl_s)."""

    def check(self, cfg):
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(cfg, f)
        try:
            return subprocess.run([BRIEFD, "check", "--config", f.name], capture_output=True,
                                  text=True, timeout=30)
        finally:
            os.unlink(f.name)

    def test_refused_and_derived(self):
        r = self.check({"workers": {"result_ttl_s": 3600}, "limits": {"idempotency_ttl_s": 7200}})
        self.assertNotEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("limits.idempotency_ttl_s: must not exceed workers.result_ttl_s (3600)",
                      r.stdout + r.stderr)
        r = self.check({"workers": {"result_ttl_s": 3600}, "limits": {"idempotency_ttl_s": 3600}})
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_derived_default_shown(self):
        with tempfile.TemporaryDirectory(prefix="briefd-it-") as tmp:
            redis = Redis(tmp).start()
            sim = Sim(tmp).start()
            b = Briefd(tmp, base_config(redis, sim, workers={"result_ttl_s": 600})).start()
            try:
                lim = b.get("/v1/config")[1]["limits"]
                self.assertEqual(lim["idempotency_ttl_s"], 600)
                # a replayed key answers with the job, whose record lives as long as the key
                h = {"Idempotency-Key": "ttl-check"}
                st, j1, _ = b.post_job({"text": TEXT}, headers=h)
                self.assertEqual(st, 202)
                prefix = b.config["redis"]["prefix"]
                ttl = redis.cmd("TTL", rkey(prefix, "idem:anon:ttl-check"))
                self.assertTrue(0 < ttl <= 600, ttl)
                self.assertEqual(b.stop(), 0)
            finally:
                b.kill()
                sim.stop()
                redis.stop()


class OwnRedis(unittest.TestCase):
    """A test that starts its own processes (a Redis of its kind, the simulator, briefd) in
    self.stack; they are killed or stopped in reverse order afterwards."""

    @classmethod
    def tearDownClass(cls):
        from harness import check_openapi
        check_openapi()  # every briefd response of the class against docs/openapi.yaml

    def setUp(self):
        self.tmpdir = tempfile.TemporaryDirectory(prefix="briefd-it-")
        self.tmp = self.tmpdir.name
        self.stack = []

    def tearDown(self):
        for p in reversed(self.stack):
            if isinstance(p, Briefd):
                p.kill()
            else:
                p.stop()
        self.tmpdir.cleanup()


class RedisRefusals(OwnRedis):
    """A wrong password or database: not ready, with what Redis said; a Redis out of memory:
    503 with what Redis said."""

    def start_unready(self, redis, url):
        """briefd against a Redis that refuses its handshake: it never becomes ready, so it is
        started by hand (Briefd.start waits for /readyz 200)."""
        sim = Sim(self.tmp).start()
        self.stack.append(sim)
        cfg = base_config(redis, sim)
        cfg["redis"].update(url=url, command_timeout_ms=500)
        b = Briefd(self.tmp, cfg)
        self.stack.append(b)
        with open(b.log, "ab") as out:
            b.proc = subprocess.Popen([BRIEFD, "serve", "--config", b.config_path], stdout=out,
                                      stderr=subprocess.STDOUT, env=b.env)
        wait_port(b.port, proc=b.proc, log=b.log)
        return b

    def assert_not_ready(self, b, words):
        st, body, _ = b.get("/readyz")
        wait_for(lambda: words in (b.get("/readyz")[1].get("redis_error") or ""), 10,
                 "/readyz naming %r" % words)
        st, body, _ = b.get("/readyz")
        self.assertEqual(st, 503, body)
        self.assertFalse(body["redis"])
        self.assertEqual(b.get("/healthz")[0], 200)
        st, body, h = b.post_job({"text": TEXT})
        self.assertEqual(st, 503, body)
        self.assertEqual(body["error"]["code"], "redis_unavailable")
        self.assertIn(words, body["error"]["message"])
        self.assertIn("retry-after", h)

    def test_wrong_password(self):
        redis = ArgsRedis(self.tmp, ["--requirepass", "right-password"]).start()
        self.stack.append(redis)
        b = self.start_unready(redis, "redis://:wrong-password@127.0.0.1:%d/0" % redis.port)
        self.assert_not_ready(b, "WRONGPASS")
        # reconnects go on (100 ms doubling to 5 s): a few attempts, but the refusal is logged
        # once per connection, not once per attempt or per request
        t0 = time.time()
        for _ in range(20):
            b.get("/readyz")
            b.post_job({"text": TEXT})
        time.sleep(max(0.0, 3.0 - (time.time() - t0)))
        lines = log_lines(b.log, "WRONGPASS")
        self.assertGreaterEqual(len(lines), 1)
        # one line per connection (cmd, sub, worker, ...), not one per attempt or request
        conns = [ln.split("(", 1)[1].split(")", 1)[0] for ln in lines]
        self.assertEqual(len(conns), len(set(conns)), lines)
        self.assertLessEqual(len(lines), 6, lines)
        self.assertNotIn("wrong-password", tail(b.log, 100000))
        self.assertNotIn("wrong-password", json.dumps(b.get("/readyz")[1]))

    def test_no_password_given(self):
        redis = ArgsRedis(self.tmp, ["--requirepass", "right-password"]).start()
        self.stack.append(redis)
        b = self.start_unready(redis, "redis://127.0.0.1:%d/0" % redis.port)
        self.assert_not_ready(b, "NOAUTH")

    def test_database_out_of_range(self):
        redis = ArgsRedis(self.tmp, ["--databases", "4"]).start()
        self.stack.append(redis)
        b = self.start_unready(redis, "redis://127.0.0.1:%d/9" % redis.port)
        self.assert_not_ready(b, "DB index is out of range")

    def test_out_of_memory(self):
        redis = Redis(self.tmp).start()
        self.stack.append(redis)
        sim = Sim(self.tmp).start()
        self.stack.append(sim)
        b = Briefd(self.tmp, base_config(redis, sim)).start()
        self.stack.append(b)
        st, job, _ = b.post_job({"text": TEXT}, wait=20)
        self.assertEqual(st, 200, job)
        redis.cmd("CONFIG", "SET", "maxmemory-policy", "noeviction")
        redis.cmd("CONFIG", "SET", "maxmemory", "1")   # below what Redis already uses
        st, body, h = b.post_job({"text": TEXT + " oom"})
        self.assertEqual(st, 503, body)
        self.assertEqual(body["error"]["code"], "redis_error")
        self.assertIn("OOM command not allowed", body["error"]["message"])
        self.assertNotIn("unreachable", body["error"]["message"])
        self.assertIn("retry-after", h)
        self.assertEqual(b.get("/readyz")[0], 200)    # reachable: it answers, it is full
        redis.cmd("CONFIG", "SET", "maxmemory", "0")
        st, job, _ = b.post_job({"text": TEXT + " after"}, wait=20)
        self.assertEqual(st, 200, job)
        self.assertEqual(b.stop(), 0)


class UnixSocket(OwnRedis):
    """redis.url unix://:password@/path?db=N: every connection of the process goes over the
    socket (none over TCP), with the password and the database of the URL; /readyz names the
    socket; a Redis restarted on the same socket is reconnected to."""

    def cli(self, sock, *args):
        return subprocess.run(["redis-cli", "-s", sock, "-a", "pw-unix", "--no-auth-warning"] +
                              list(args), capture_output=True, text=True, check=True).stdout

    def test_jobs_over_the_socket(self):
        redis = ArgsRedis(self.tmp, ["--requirepass", "pw-unix", "--unixsocketperm", "700"])
        sock = os.path.join(redis.dir, "redis.sock")
        redis.extra += ["--unixsocket", sock]
        redis.start()
        self.stack.append(redis)
        sim = Sim(self.tmp).start()
        self.stack.append(sim)
        cfg = base_config(redis, sim)
        cfg["redis"]["url"] = "unix://:pw-unix@%s?db=3" % sock
        b = Briefd(self.tmp, cfg).start()
        self.stack.append(b)
        st, body, _ = b.get("/readyz")
        self.assertEqual(st, 200, body)
        self.assertEqual(body["redis_primary"], {"host": sock, "port": 0, "via": "url"})
        st, job, _ = b.post_job({"text": TEXT}, wait=20)
        self.assertEqual(st, 200, job)
        self.assertEqual(job["status"], "succeeded")
        prefix = cfg["redis"]["prefix"]
        self.assertEqual(self.cli(sock, "-n", "3", "EXISTS", rkey(prefix, "job:" + job["id"])),
                         "1\n")
        self.assertEqual(self.cli(sock, "-n", "0", "DBSIZE"), "0\n")
        clients = [dict(kv.split("=", 1) for kv in ln.split() if "=" in kv)
                   for ln in self.cli(sock, "CLIENT", "LIST").splitlines()]
        ours = [c for c in clients if c.get("name", "").startswith("briefd-")]
        names = {c["name"] for c in ours}
        self.assertTrue({"briefd-cmd", "briefd-worker", "briefd-sub"} <= names, clients)
        for c in ours:
            self.assertTrue(c["addr"].startswith(sock), c)
        # Redis restarted on the same socket: not ready while it is down, then ready again
        redis.stop()
        wait_for(lambda: b.get("/readyz")[0] == 503, 10, "/readyz 503 with Redis stopped")
        redis.start()
        wait_for(lambda: b.get("/readyz")[0] == 200, 15, "/readyz 200 after the restart")
        st, job, _ = b.post_job({"text": TEXT + " again"}, wait=20)
        self.assertEqual(st, 200, job)
        self.assertEqual(job["status"], "succeeded")
        self.assertTrue(any("redis %s connected" % sock in ln
                            for ln in log_lines(b.log, "connected")), tail(b.log, 3000))
        self.assertEqual(b.stop(), 0)


if __name__ == "__main__":
    unittest.main()
