"""harness.py - start real peers for briefd's integration tests.

Each test class gets: a real redis-server on a free port with a temporary data dir, the
project's model simulator (briefd-modelsim) on a free port, and one or more briefd processes
with a generated config, all over real sockets. Binaries come from the environment
(BRIEFD_BIN, BRIEFD_SIM_BIN, set by ctest) or the default build dir.
"""
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BRIEFD = os.environ.get("BRIEFD_BIN", os.path.join(ROOT, "build", "briefd"))
SIM = os.environ.get("BRIEFD_SIM_BIN", os.path.join(ROOT, "build", "briefd-modelsim"))
REDIS = os.environ.get("REDIS_SERVER", "redis-server")

# Sanitizer builds: fail on leaks and UB; keep symbolized reports in the logs.
os.environ.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:exitcode=23")
os.environ.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1:exitcode=24")


def free_port():
    """A port free now. A briefd that answered on it before is gone: what answers there next
    (a simulator, another test's server) is not recorded for the OpenAPI check as briefd."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with _openapi_lock:
        _openapi["ports"].pop(port, None)
    return port


def wait_port(port, timeout=15.0, proc=None, log=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("process exited early (%s); log:\n%s" % (proc.returncode, _tail(log)))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("port %d did not open; log:\n%s" % (port, _tail(log)))


def wait_for(cond, timeout, what):
    """Poll cond() until it is true; fail with what after timeout seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError("timed out after %.1f s waiting for %s" % (timeout, what))


def eventually(fetch, pred, timeout=10.0, what="a condition"):
    """Call fetch() until pred(result) holds (statistics are folded from the job records
    about once a second, so they trail the jobs); returns the last result, or fails."""
    deadline = time.time() + timeout
    while True:
        r = fetch()
        if pred(r):
            return r
        if time.time() >= deadline:
            raise AssertionError("timed out after %.1f s waiting for %s; last: %r" % (
                timeout, what, r if not isinstance(r, (bytes, str)) else r[:2000]))
        time.sleep(0.05)


def log_lines(path, needle):
    """The lines of a log file that contain needle."""
    with open(path, "rb") as f:
        return [ln for ln in f.read().decode("utf-8", "replace").splitlines() if needle in ln]


def _tail(path, n=4000):
    if not path or not os.path.exists(path):
        return ""
    with open(path, "rb") as f:
        data = f.read()
    return data[-n:].decode("utf-8", "replace")


class Redis:
    def __init__(self, tmp, appendonly=False, port=None):
        self.tmp = tmp
        self.fixed_port = port is not None    # a restart on the port it had
        self.appendonly = appendonly
        self.proc = None
        self._place(port or free_port())

    def _place(self, port):
        self.port = port
        self.dir = os.path.join(self.tmp, "redis-%d" % self.port)
        os.makedirs(self.dir, exist_ok=True)
        self.log = os.path.join(self.dir, "redis.log")

    def _ours(self):
        """Whether the Redis answering on the port is the process we started."""
        try:
            info = self.cmd("INFO", "server")
        except Exception:  # another server, or one that wants a password
            return False
        m = re.search(r"process_id:(\d+)", info or "")
        return m is not None and int(m.group(1)) == self.proc.pid

    def start(self):
        # Tests run in parallel: another process may take the port between free_port() and
        # redis-server's bind. Ours then exits, and the port answers all the same - with
        # another test's Redis, whose keys (the prefix is derived from the port) it would
        # share. So the answering server must be ours; if not, another port.
        for _ in range(5):
            args = [REDIS, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
                    "--save", "", "--appendonly", "yes" if self.appendonly else "no",
                    "--appendfsync", "always", "--logfile", self.log]
            self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
            wait_port(self.port, proc=self.proc, log=self.log)
            if self._ours():
                return self
            self.proc.kill()
            self.proc.wait(10)
            if self.fixed_port:
                raise RuntimeError("port %d is held by another process" % self.port)
            self._place(free_port())
        raise RuntimeError("redis-server found no free port")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def cmd(self, *args):
        """One command over RESP on a fresh socket; returns the decoded reply."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            out = b"*%d\r\n" % len(args)
            for a in args:
                a = a if isinstance(a, bytes) else str(a).encode()
                out += b"$%d\r\n%s\r\n" % (len(a), a)
            s.sendall(out)
            f = s.makefile("rb")
            return _resp(f)


def _resp(f):
    line = f.readline()
    if not line:
        raise ConnectionError("redis closed the connection")
    t, rest = line[:1], line[1:-2]
    if t == b"+":
        return rest.decode()
    if t == b"-":
        raise RuntimeError(rest.decode())
    if t == b":":
        return int(rest)
    if t == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)[:-2]
        return data.decode("utf-8", "replace")
    if t == b"*":
        n = int(rest)
        return None if n < 0 else [_resp(f) for _ in range(n)]
    raise RuntimeError("bad RESP type %r" % t)


class Sim:
    """The model simulator (bench/sim/README.md documents its control plane)."""
    LOWCONF = -1.6      # a mean logprob below briefd's default -0.8 confidence threshold
    HIGHCONF = -0.15    # a confident answer

    def __init__(self, tmp, profile="fast", extra=()):
        self.port = free_port()
        self.log = os.path.join(tmp, "sim-%d.log" % self.port)
        self.args = [SIM, "--listen", "127.0.0.1:%d" % self.port, "--profile", profile] + list(extra)
        self.proc = None
        self.exit_checked = False

    def start(self):
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.args, stdout=out, stderr=subprocess.STDOUT)
        wait_port(self.port, proc=self.proc, log=self.log)
        return self

    @property
    def base_url(self):
        return "http://127.0.0.1:%d/v1" % self.port

    def request(self, method, path, body=None, headers=None, raw=None):
        return request("127.0.0.1", self.port, method, path, body, headers, raw)

    def faults(self, **kw):
        """POST /sim/faults: replaces every setting (knobs, models=..., rules=[...])."""
        st, body, _ = self.request("POST", "/sim/faults", kw)
        assert st == 200, body
        return body

    @staticmethod
    def rule(contains=None, model=None, count=None, kind=None, **effect):
        """One rule: requests to model (None: any) whose last user message contains the
        substring (None: any), for the next count of them (None: all), get effect
        (status=, logprob_mean=, max_tokens=, hang=, garbage=, stream_error_after=,
        delay_ms=)."""
        r = {"contains": contains, "model": model, "count": count, "kind": kind}
        r.update(effect)
        return r

    def rules(self, *rules, **knobs):
        """Set these rules (in order) and knobs; everything else off."""
        return self.faults(rules=list(rules), **knobs)

    def get_faults(self):
        return self.request("GET", "/sim/faults")[1]

    def stats(self):
        return self.request("GET", "/sim/stats")[1]

    def requests(self, limit=None):
        """The request log, newest first."""
        path = "/sim/requests" + ("?limit=%d" % limit if limit is not None else "")
        st, body, _ = self.request("GET", path)
        assert st == 200, body
        return body["data"]

    def reset(self):
        st, body, _ = self.request("POST", "/sim/reset", {})
        assert st == 200, body

    def stop(self, check=True):
        """SIGTERM and wait. The simulator must exit 0 (a sanitizer finding makes it exit
        non-zero): with check, an AssertionError otherwise; without, the complaint (or None)
        is returned."""
        err = None
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                err = "the simulator did not exit within 10 s of SIGTERM (killed)"
        if self.proc and not self.exit_checked:
            self.exit_checked = True
            if err is None and self.proc.returncode != 0:
                err = "the simulator exited %s (sanitizer finding?)" % self.proc.returncode
            if err:
                err += "; log:\n" + _tail(self.log, 8000)
        if err and check:
            raise AssertionError(err)
        return err


class Briefd:
    def __init__(self, tmp, config, role="all", env=None, name="briefd"):
        self.port = free_port()
        self.tmp = tmp
        config = json.loads(json.dumps(config))
        if role in ("all", "api"):
            config["listen"] = "127.0.0.1:%d" % self.port
        self.config_path = os.path.join(tmp, "%s-%d.json" % (name, self.port))
        self.write_config(config)
        self.log = os.path.join(tmp, "%s-%d.log" % (name, self.port))
        self.role = role
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.proc = None
        record_responses(self.port, tmp)

    def write_config(self, config):
        self.config = config
        with open(self.config_path, "w") as f:
            json.dump(config, f)

    def start(self):
        args = [BRIEFD, "serve", "--config", self.config_path, "--role", self.role]
        if self.role == "worker":
            args += ["--listen", "127.0.0.1:%d" % self.port]
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=self.env)
        wait_port(self.port, proc=self.proc, log=self.log)
        deadline = time.time() + 10
        while time.time() < deadline:
            st, _, _ = self.get("/readyz")
            if st == 200:
                return self
            time.sleep(0.05)
        raise RuntimeError("briefd not ready:\n" + _tail(self.log))

    def request(self, method, path, body=None, headers=None, raw=None):
        return request("127.0.0.1", self.port, method, path, body, headers, raw)

    def get(self, path, headers=None):
        return self.request("GET", path, headers=headers)

    def post_job(self, body, wait=None, headers=None):
        path = "/v1/jobs" + ("?wait=%s" % wait if wait is not None else "")
        return self.request("POST", path, body, headers)

    def wait_job(self, job_id, timeout=30.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            st, job, _ = self.get("/v1/jobs/%s?wait=5" % job_id)
            if st == 200 and job["status"] in ("succeeded", "failed"):
                return job
            time.sleep(0.05)
        raise AssertionError("job %s did not finish; log:\n%s" % (job_id, _tail(self.log)))

    def stop(self, timeout=40):
        """SIGTERM; returns the exit code (sanitizer findings make it non-zero)."""
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return -9

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def request(host, port, method, path, body=None, headers=None, raw=None, timeout=70):
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    hdrs = {}
    data = None
    if raw is not None:
        data = raw
    elif body is not None:
        data = json.dumps(body).encode()
        hdrs["Content-Type"] = "application/json"
    hdrs.update(headers or {})
    try:
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        payload = resp.read()
        ctype = resp.getheader("Content-Type", "")
        record_response(port, method, path, resp.status, resp.getheaders(), payload, hdrs, data)
        out = payload
        if "json" in ctype and payload:
            out = json.loads(payload)
        return resp.status, out, dict((k.lower(), v) for k, v in resp.getheaders())
    finally:
        conn.close()


# --- the OpenAPI contract: every briefd response checked against docs/openapi.yaml ---------
# request() records each exchange with a briefd port (Briefd registers its port) into a JSONL
# file; openapi_problems() has tests/integration/openapi_check.mjs (ajv) validate what was
# recorded since the last check. Stack.tearDownClass fails its class on a mismatch, other
# classes call check_openapi() in theirs, and whatever is still unchecked when the process
# exits is checked then (a mismatch makes the test program exit 1). Clients of their own
# (event stream readers) hand their exchanges to record_response().
OPENAPI_YAML = os.path.join(ROOT, "docs", "openapi.yaml")
OPENAPI_CHECK = os.path.join(HERE, "openapi_check.mjs")
_openapi = {"dir": None, "ports": {}, "spec": None}
_openapi_lock = threading.Lock()


def _openapi_dir():
    if _openapi["dir"] is None:
        import atexit
        _openapi["dir"] = tempfile.mkdtemp(prefix="briefd-openapi-")
        atexit.register(_openapi_at_exit)
    return _openapi["dir"]


def record_responses(port, tmp):
    """Record what briefd answers on port from now on (into a file named after tmp)."""
    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in os.path.basename(tmp))
    _openapi["ports"][port] = os.path.join(_openapi_dir(), (name or "briefd") + ".jsonl")


def _current_test():
    f = sys._getframe(2)
    for _ in range(40):
        if f is None:
            break
        me = f.f_locals.get("self")
        if isinstance(me, unittest.TestCase):
            return me.id()
        cls = f.f_locals.get("cls")
        if isinstance(cls, type) and issubclass(cls, unittest.TestCase):
            return "%s.%s" % (cls.__module__, cls.__qualname__)
        f = f.f_back
    return None


def _text(data):
    if data is None:
        return None
    if isinstance(data, str):
        return data
    try:
        return bytes(data).decode("utf-8")
    except (UnicodeDecodeError, TypeError):
        return None


def record_response(port, method, path, status, headers, body, req_headers=None, req_body=None):
    """Add one exchange with the briefd on port (if it records) for the OpenAPI check:
    headers as (name, value) pairs or a dict, body the response's bytes or text (only JSON
    and event streams are kept), req_* what was sent."""
    where = _openapi["ports"].get(port)
    if where is None:
        return
    pairs = headers.items() if isinstance(headers, dict) else headers
    hdrs = {}
    for k, v in pairs:
        hdrs[k.lower()] = v
    ctype = hdrs.get("content-type", "")
    keep = "json" in ctype or "event-stream" in ctype
    rec = {"test": _current_test(), "method": method, "path": path, "status": status,
           "headers": hdrs, "body": _text(body) if keep else None,
           "request": {"headers": dict(req_headers or {}), "body": _text(req_body)}}
    line = json.dumps(rec) + "\n"
    with _openapi_lock:
        with open(where, "a", encoding="utf-8") as f:
            f.write(line)


def _openapi_spec():
    """docs/openapi.yaml as JSON, converted as the build does (cmake/openapi_json.py)."""
    if _openapi["spec"] is None:
        out = os.path.join(_openapi_dir(), "openapi.json")
        conv = os.path.join(ROOT, "cmake", "openapi_json.py")
        r = subprocess.run([sys.executable, conv, OPENAPI_YAML, out], capture_output=True,
                           text=True, timeout=60)
        if r.returncode != 0:
            raise AssertionError("docs/openapi.yaml does not convert: " + r.stderr)
        _openapi["spec"] = out
    return _openapi["spec"]


def openapi_problems():
    """Check every exchange recorded since the last check; None, or what did not match."""
    import glob
    import shutil
    with _openapi_lock:
        if _openapi["dir"] is None:
            return None
        files = sorted(glob.glob(os.path.join(_openapi["dir"], "*.jsonl")))
        taken = []
        for i, f in enumerate(files):
            dst = "%s.%d.checking" % (f, i)
            os.replace(f, dst)
            taken.append(dst)
    if not taken:
        return None
    node = shutil.which("node")
    if not node:
        return "node is not installed (deploy/setup.sh installs it): the OpenAPI check needs it"
    keep = os.environ.get("BRIEFD_OPENAPI_KEEP")  # a directory: keep the records there
    try:
        r = subprocess.run([node, OPENAPI_CHECK, _openapi_spec()] + taken, capture_output=True,
                           text=True, timeout=300, cwd=HERE)
    finally:
        for f in taken:
            if keep:
                shutil.copy(f, os.path.join(keep, "%d-%s" % (os.getpid(), os.path.basename(f))))
            os.unlink(f)
    if r.returncode == 0:
        sys.stderr.write(r.stdout)
        return None
    return ("briefd's responses do not match docs/openapi.yaml (fix the spec, or the server "
            "when it is wrong):\n" + r.stdout + r.stderr)


def check_openapi():
    """Fail (AssertionError) when a response recorded since the last check breaks the spec."""
    err = openapi_problems()
    if err:
        raise AssertionError(err)


def _openapi_at_exit():
    import shutil
    err = openapi_problems()
    shutil.rmtree(_openapi["dir"], ignore_errors=True)
    if err:
        sys.stderr.write("\n" + err + "\n")
        sys.stderr.flush()
        os._exit(1)


def base_config(redis_, sim, **over):
    """A config pointing at this test's Redis and simulator, with a test prefix (over may hold
    a "redis" section too: its keys are merged in)."""
    redis = redis_
    cfg = {
        "redis": {"url": "redis://127.0.0.1:%d/0" % redis.port, "prefix": "t%d:" % redis.port},
        "workers": {"concurrency": 16, "max_attempts": 3, "job_timeout_ms": 20000,
                    "result_ttl_s": 3600},
        "models": {
            "draft": {"base_url": sim.base_url, "timeout_ms": 5000, "max_attempts": 3,
                      "backoff_ms": 50},
            "refine": {"base_url": sim.base_url, "timeout_ms": 5000, "max_attempts": 3,
                       "backoff_ms": 50},
        },
    }
    if hasattr(redis, "redis_config"):  # Sentinel, Cluster, TLS sidecar (ha_harness.py)
        cfg["redis"] = redis.redis_config(cfg["redis"]["prefix"])
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(cfg.get(k), dict):
            merged = dict(cfg[k])
            for k2, v2 in v.items():
                if isinstance(v2, dict) and isinstance(merged.get(k2), dict):
                    m2 = dict(merged[k2])
                    m2.update(v2)
                    merged[k2] = m2
                else:
                    merged[k2] = v2
            cfg[k] = merged
        else:
            cfg[k] = v
    return cfg


class Stack(unittest.TestCase):
    """A test case class with Redis + simulator + one briefd, shared by its tests."""
    sim_profile = "fast"
    sim_args = ()
    config_over = {}
    appendonly = False
    redis_factory = None    # a callable(tmp) -> a Redis-like setup (ha_harness.py), or None
    briefd_env = {}         # environment variables added for briefd (API keys, secrets)

    @classmethod
    def setUpClass(cls):
        cls.tmpdir = tempfile.TemporaryDirectory(prefix="briefd-it-")
        cls.tmp = cls.tmpdir.name
        if cls.redis_factory is not None:
            cls.redis = cls.redis_factory(cls.tmp).start()
        else:
            cls.redis = Redis(cls.tmp, appendonly=cls.appendonly).start()
        try:
            cls.sim = Sim(cls.tmp, cls.sim_profile, cls.sim_args).start()
            cls.briefd = Briefd(cls.tmp, base_config(cls.redis, cls.sim, **cls.config_over),
                                env=cls.briefd_env).start()
        except BaseException:  # tearDownClass will not run: stop what was started
            for part in ("briefd", "sim"):
                if getattr(cls, part, None) is not None and getattr(cls, part).proc:
                    getattr(cls, part).proc.kill()
            cls.redis.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        rc = cls.briefd.stop()
        sim_err = cls.sim.stop(check=False)
        cls.redis.stop()
        log = _tail(cls.briefd.log, 20000)
        cls.tmpdir.cleanup()
        spec_err = openapi_problems()
        if rc != 0:
            raise AssertionError("briefd exited %s on SIGTERM (sanitizer finding?):\n%s" % (rc, log))
        if sim_err:
            raise AssertionError(sim_err)
        if spec_err:
            raise AssertionError(spec_err)

    def setUp(self):
        self.sim.faults()  # all faults off


# --- chaos-test helpers (tests/integration/test_chaos.py) ----------------------------------
# Appended: nothing above depends on them.

PRIORITIES = ("high", "normal", "low")
PRIO_INDEX = {"low": 0, "normal": 1, "high": 2}
GROUP = "briefd-workers"
_B32 = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def rkey(prefix, name):
    """A Redis key of briefd's: every key carries the hash tag "{<prefix>}" (one slot)."""
    return "{" + prefix + "}" + name


def _fnv1a64(data):
    h = 0xcbf29ce484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def job_id_of_entry(prio, entry):
    """The id of the job first queued as entry "<ms>-<seq>" of stream prio (service/job.c)."""
    import struct
    ms, seq = (int(x) for x in entry.split("-"))
    kind = PRIO_INDEX[prio]
    check = _fnv1a64(struct.pack("<QQQ", kind, ms, seq)) & ((1 << 38) - 1)
    tail = (kind << 78) | (seq << 38) | check
    head = "".join(_B32[(ms >> (5 * (9 - i))) & 31] for i in range(10))
    return "job_" + head + "".join(_B32[(tail >> (5 * (15 - i))) & 31] for i in range(16))


def entry_of_id(job_id):
    """(prio, entry) of a queued job's id, or None for another id."""
    v = 0
    for ch in job_id[4:14]:
        v = (v << 5) | _B32.index(ch)
    ms, t = v, 0
    for ch in job_id[14:]:
        t = (t << 5) | _B32.index(ch)
    kind, seq = t >> 78, (t >> 38) & ((1 << 40) - 1)
    if kind > 2:
        return None
    prio = [p for p, i in PRIO_INDEX.items() if i == kind][0]
    entry = "%d-%d" % (ms, seq)
    return (prio, entry) if job_id_of_entry(prio, entry) == job_id else None


def queue_state(redis, prefix):
    """{"xlen": total XLEN of the three streams, "pending": total XPENDING count,
    "dead": XLEN of the dead-letter stream, "consumers": {name: pending}}."""
    out = {"xlen": 0, "pending": 0, "dead": 0, "consumers": {}}
    for p in PRIORITIES:
        key = rkey(prefix, "q:" + p)
        out["xlen"] += redis.cmd("XLEN", key)
        try:
            summary = redis.cmd("XPENDING", key, GROUP)
        except RuntimeError:  # NOGROUP: the stream or group does not exist yet
            continue
        out["pending"] += summary[0] or 0
        for name, count in summary[3] or []:
            out["consumers"][name] = out["consumers"].get(name, 0) + int(count)
    out["dead"] = redis.cmd("XLEN", rkey(prefix, "dead"))
    return out


def _entry_fields(redis, key, entry):
    found = redis.cmd("XRANGE", key, entry, entry)
    for _eid, fields in found or []:
        return dict(zip(fields[::2], fields[1::2]))
    return None


def pending_jobs(redis, prefix, consumer):
    """Job ids of the entries pending for one consumer of the group (all priorities)."""
    ids = []
    for p in PRIORITIES:
        key = rkey(prefix, "q:" + p)
        try:
            rows = redis.cmd("XPENDING", key, GROUP, "-", "+", "1000", consumer)
        except RuntimeError:
            continue
        for entry, _owner, _idle, _deliveries in rows or []:
            kv = _entry_fields(redis, key, entry)
            if kv is not None:
                ids.append(kv.get("id") or job_id_of_entry(p, entry))
    return ids


def consumer_of(proc_pid, consumers):
    """The consumer name (instance "host-PID-xxxx") of a briefd process, or None."""
    tag = "-%d-" % proc_pid
    for name in consumers:
        if tag in name:
            return name
    return None


def job_record(redis, prefix, job_id):
    """What Redis holds of a job, read the way the store's GET does: {"status", "attempts",
    "finished_ms", "out"} (None if there is no such job). attempts counts deliveries begun.
    The job may finish between reading its record and its queue entry (the store's GET is
    one script; these are separate reads): then the record is read again."""
    r = _job_record_once(redis, prefix, job_id)
    return r if r is not None else _job_record_once(redis, prefix, job_id)


def _job_record_once(redis, prefix, job_id):
    rec = redis.cmd("GET", rkey(prefix, "job:" + job_id))
    if rec is not None:
        r = json.loads(rec.split("\n", 1)[0])   # header line; then request, metadata
        job = r["job"]
        return {"status": job["status"], "attempts": job["attempts"],
                "finished_ms": r["finished_ms"], "out": job}
    x = redis.cmd("HMGET", rkey(prefix, "jobx:" + job_id), "e", "p")
    if x[0] is not None:
        prio, entry = [p for p, i in PRIO_INDEX.items() if i == int(x[1])][0], x[0]
    else:
        pe = entry_of_id(job_id)
        if pe is None:
            return None
        prio, entry = pe
    key = rkey(prefix, "q:" + prio)
    kv = _entry_fields(redis, key, entry)
    if kv is None:
        return None
    held = redis.cmd("XPENDING", key, GROUP, entry, entry, "1")
    a = int(kv.get("a", "1"))
    return {"status": "drafting" if held else "queued", "attempts": a if held else a - 1,
            "finished_ms": None, "out": None}


def tail(path, n=4000):
    """The last n bytes of a log file, decoded."""
    return _tail(path, n)


class EventTally:
    """Counts the terminal events ("<id> succeeded|failed") published on the job events
    channel, from a background thread that re-subscribes when Redis goes away. A job that
    ends twice shows up with a count of 2."""

    def __init__(self, redis, prefix):
        import threading
        self.redis = redis
        self.channel = rkey(prefix, "events")
        self.lock = threading.Lock()
        self.terminal = {}          # id -> [status, ...]
        self.seen = 0
        self.sessions = 0           # subscriptions made; > 1: events may have been missed
        self.gaps = []              # (lost, back): wall-clock times the subscription was down
        self._lost = None
        self.subscribed = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="event-tally", daemon=True)

    def start(self, timeout=5.0):
        self._thread.start()
        if not self.subscribed.wait(timeout):
            raise RuntimeError("could not subscribe to %s" % self.channel)
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(5)

    def ends(self, job_id):
        with self.lock:
            return list(self.terminal.get(job_id, ()))

    def down_at(self, t, before=0.0, after=0.0):
        """Was the subscription down at wall-clock time t (a gap widened by before/after)?"""
        with self.lock:
            gaps = list(self.gaps) + ([(self._lost, time.time())] if self._lost else [])
        return any(lost - before <= t <= back + after for lost, back in gaps)

    def _run(self):
        while not self._stop.is_set():
            try:
                self._session()
            except OSError:
                pass
            with self.lock:
                if self.subscribed.is_set() and self._lost is None:
                    self._lost = time.time()
            self.subscribed.clear()
            self._stop.wait(0.1)

    def _session(self):
        with socket.create_connection(("127.0.0.1", self.redis.port), timeout=1.0) as s:
            ch = self.channel.encode()
            s.sendall(b"*2\r\n$9\r\nSUBSCRIBE\r\n$%d\r\n%s\r\n" % (len(ch), ch))
            buf = b""
            s.settimeout(0.2)
            while not self._stop.is_set():
                try:
                    data = s.recv(65536)
                except socket.timeout:
                    continue
                if not data:
                    return
                buf += data
                while True:
                    msg, buf = _resp_take(buf)
                    if msg is None:
                        break
                    self._on_message(msg)

    def _on_message(self, msg):
        if not isinstance(msg, list) or len(msg) != 3:
            return
        kind = msg[0]
        if kind == "subscribe":
            with self.lock:
                self.sessions += 1
                if self._lost is not None:
                    self.gaps.append((self._lost, time.time()))
                    self._lost = None
            self.subscribed.set()
        elif kind == "message":
            for job_id, status in parse_events(msg[2]):
                if status in ("succeeded", "failed"):
                    with self.lock:
                        self.terminal.setdefault(job_id, []).append(status)
                with self.lock:
                    self.seen += 1


def parse_events(payload):
    """[(id, status)] of one events message: '<id> <status> <len>\n<len bytes>\n' each."""
    out, data = [], payload.encode("utf-8")
    while data:
        nl = data.find(b"\n")
        if nl < 0:
            break
        head = data[:nl].decode().split(" ")
        if len(head) != 3:
            break
        n = int(head[2])
        out.append((head[0], head[1]))
        data = data[nl + 1 + n + 1:]
    return out


def _resp_take(buf):
    """Parse one RESP value from the front of buf: (value, rest) or (None, buf)."""
    end = buf.find(b"\r\n")
    if end < 0:
        return None, buf
    t, rest, after = buf[:1], buf[1:end], buf[end + 2:]
    if t in (b"+", b"-"):
        return rest.decode("utf-8", "replace"), after
    if t == b":":
        return int(rest), after
    if t == b"$":
        n = int(rest)
        if n < 0:
            return "", after
        if len(after) < n + 2:
            return None, buf
        return after[:n].decode("utf-8", "replace"), after[n + 2:]
    if t == b"*":
        n = int(rest)
        items = []
        for _ in range(max(n, 0)):
            v, after = _resp_take(after)
            if v is None:
                return None, buf
            items.append(v)
        return items, after
    raise ValueError("bad RESP type %r" % t)
