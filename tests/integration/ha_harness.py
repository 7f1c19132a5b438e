"""ha_harness.py - Redis set-ups for the high-availability tests (tests/integration/test_ha.py).

Each class stands in for harness.Redis where a test's Stack sets redis_factory (a class, not a
function: a plain function would become a method): start(), stop(), port (a stable number for
key prefixes), cmd() (to the current primary) and redis_config(prefix), the config's "redis"
section. Everything listens on 127.0.0.1 only. A missing binary is an error (never a skip).

- SentinelSet: a primary, replicas and three sentinels (down-after-milliseconds 1000).
- ClusterSet: a three-node Redis Cluster (redis-cli --cluster create), no replicas.
- TlsSidecar: redis-server on a TLS port only (a throwaway CA and certificate made with
  openssl), an ACL user, and stunnel in client mode exposing a plain port to briefd.
"""
import os
import shutil
import signal
import subprocess
import time

from harness import REDIS, Redis, _tail, free_port, wait_for, wait_port

SENTINEL = os.environ.get("REDIS_SENTINEL", "redis-sentinel")
REDIS_CLI = os.environ.get("REDIS_CLI", "redis-cli")
STUNNEL = os.environ.get("STUNNEL", "stunnel4")
OPENSSL = os.environ.get("OPENSSL", "openssl")


def need(binary):
    """The path of binary; a missing one fails the test (these tests never skip)."""
    path = shutil.which(binary)
    if not path:
        raise AssertionError("%s is not installed (deploy/setup.sh installs it)" % binary)
    return path


def crc16(data):
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def key_slot(prefix):
    """The Cluster slot of briefd's keys: every key carries the hash tag {prefix}."""
    return crc16(prefix.encode()) % 16384


def info_field(info, name):
    for line in info.splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    return None


class Node(Redis):
    """A redis-server with extra arguments (replicaof, cluster mode, TLS, ACL users)."""

    def __init__(self, tmp, extra=(), port=None, plain=True):
        super().__init__(tmp, port=port)
        self.extra = list(extra)
        self.plain = plain

    def start(self):
        need(REDIS)
        args = [REDIS, "--port", str(self.port if self.plain else 0), "--bind", "127.0.0.1",
                "--dir", self.dir, "--save", "", "--appendonly", "no",
                "--repl-diskless-sync-delay", "0", "--logfile", self.log] + self.extra
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, proc=self.proc, log=self.log)
        if self.plain:  # the port is ours, not another test's that took it meanwhile
            pid = info_field(self.cmd("INFO", "server"), "process_id")
            if pid != str(self.proc.pid):
                self.stop()
                raise AssertionError("port %d answered by another process (pid %s)" % (
                    self.port, pid))
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None


class SentinelSet:
    """A primary, n_replicas replicas and three sentinels watching them as MASTER."""
    MASTER = "briefd-primary"
    n_replicas = 1
    n_sentinels = 3
    acl_user = None     # (user, password): briefd connects as this ACL user
    sentinel_password = None  # the sentinels' requirepass (briefd reads it from SENTINEL_PW_ENV)
    SENTINEL_PW_ENV = "BRIEFD_TEST_SENTINEL_PW"

    def __init__(self, tmp):
        self.tmp = tmp
        acl = []
        if self.acl_user:
            acl = ["--user", self.acl_user[0], "on", ">" + self.acl_user[1], "~*", "&*", "+@all"]
        self.nodes = [Node(tmp, list(acl))]
        for _ in range(self.n_replicas):
            self.nodes.append(Node(tmp, acl + ["--replicaof", "127.0.0.1",
                                               str(self.nodes[0].port)]))
        self.port = self.nodes[0].port          # stable: names key prefixes
        self.sentinel_ports = [free_port() for _ in range(self.n_sentinels)]
        self.sentinel_procs = []

    # --- set-up -------------------------------------------------------------------------
    def start(self):
        need(SENTINEL)
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self):
        for n in self.nodes:
            n.start()
        for n in self.nodes[1:]:
            wait_for(lambda n=n: info_field(n.cmd("INFO", "replication"),
                                            "master_link_status") == "up",
                     30, "replica %d to sync; its log:\n%s" % (n.port, _tail(n.log, 2000)))
        for port in self.sentinel_ports:
            self._start_sentinel(port)
        for port in self.sentinel_ports:
            try:
                wait_for(lambda p=port: self._sentinel_sees_all(p), 30,
                         "sentinel %d to see the replicas and the other sentinels" % port)
            except AssertionError as e:
                raise AssertionError("%s\n%s" % (e, self.logs()))
        return self

    def _start_sentinel(self, port):
        d = os.path.join(self.tmp, "sentinel-%d" % port)
        os.makedirs(d, exist_ok=True)
        conf = os.path.join(d, "sentinel.conf")
        with open(conf, "w") as f:
            f.write("port %d\nbind 127.0.0.1\ndir %s\nlogfile %s\n" % (
                port, d, os.path.join(d, "sentinel.log")))
            f.write("sentinel monitor %s 127.0.0.1 %d 2\n" % (self.MASTER, self.nodes[0].port))
            f.write("sentinel down-after-milliseconds %s 1000\n" % self.MASTER)
            f.write("sentinel failover-timeout %s 10000\n" % self.MASTER)
            f.write("sentinel parallel-syncs %s 1\n" % self.MASTER)
            if self.sentinel_password:
                f.write("requirepass %s\nsentinel sentinel-pass %s\n" % (
                    self.sentinel_password, self.sentinel_password))
        proc = subprocess.Popen([SENTINEL, conf], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        wait_port(port, proc=proc, log=os.path.join(d, "sentinel.log"))
        self.sentinel_procs.append(proc)

    def sentinel_cmd(self, port, *args):
        if not self.sentinel_password:
            return Redis.cmd(_Addr(port), *args)
        return resp_pipeline(port, [("AUTH", self.sentinel_password), args])[-1]

    def _sentinel_sees_all(self, port):
        try:
            reps = self.sentinel_cmd(port, "SENTINEL", "replicas", self.MASTER) or []
            sents = self.sentinel_cmd(port, "SENTINEL", "sentinels", self.MASTER) or []
        except (OSError, RuntimeError):
            return False
        return len(reps) >= self.n_replicas and len(sents) >= self.n_sentinels - 1

    # --- the current primary --------------------------------------------------------------
    def primary_port(self):
        """The primary's port as the sentinels say (the first that answers)."""
        for port in self.sentinel_ports:
            try:
                addr = self.sentinel_cmd(port, "SENTINEL", "get-master-addr-by-name",
                                         self.MASTER)
            except (OSError, RuntimeError):
                continue
            if addr:
                return int(addr[1])
        raise AssertionError("no sentinel answered")

    def node(self, port):
        for n in self.nodes:
            if n.port == port:
                return n
        raise AssertionError("no node on port %d" % port)

    def primary(self):
        return self.node(self.primary_port())

    def cmd(self, *args):
        return self.primary().cmd(*args)

    def redis_config(self, prefix):
        # the URL's host and port are not used with sentinels (port 1 proves it)
        auth = "%s:%s@" % self.acl_user if self.acl_user else ""
        cfg = {"url": "redis://%s127.0.0.1:1/0" % auth, "prefix": prefix,
               "sentinels": ["127.0.0.1:%d" % p for p in self.sentinel_ports],
               "master_name": self.MASTER}
        if self.sentinel_password:
            os.environ[self.SENTINEL_PW_ENV] = self.sentinel_password  # briefd inherits it
            cfg["sentinel_password_env"] = self.SENTINEL_PW_ENV
        return cfg

    def stop(self):
        for proc in self.sentinel_procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(10)
        for n in self.nodes:
            n.stop()

    def logs(self):
        out = []
        for port in self.sentinel_ports:
            out.append("--- sentinel %d\n%s" % (port, _tail(os.path.join(
                self.tmp, "sentinel-%d" % port, "sentinel.log"), 3000)))
        return "\n".join(out)


class AclSentinelSet(SentinelSet):
    """briefd connects as an ACL user, so that the default user (the replication link's) can be
    switched off on the primary: partition() cuts the replica off the primary, as a network
    partition would, while briefd keeps writing to it."""
    acl_user = ("briefd", "ha-acl-pw")

    def partition(self):
        """Drop the replication link and refuse its reconnection (one pipelined write, so the
        replica cannot reconnect in between)."""
        killed, _ = resp_pipeline(self.primary_port(), [
            ("CLIENT", "KILL", "TYPE", "replica"), ("ACL", "SETUSER", "default", "off")])
        if killed < 1:
            raise AssertionError("no replication link to cut")

    def replica_offsets(self):
        return [int(info_field(n.cmd("INFO", "replication"), "slave_repl_offset") or -1)
                for n in self.nodes[1:] if n.alive()]


class PasswordSentinelSet(SentinelSet):
    """Sentinels that require a password (requirepass; sentinel-pass among themselves)."""
    sentinel_password = "sentinel-s3cret"


def resp_pipeline(port, cmds):
    """Send cmds on one connection to 127.0.0.1:port; the list of replies (errors raise)."""
    import socket
    from harness import _resp
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        out = b""
        for cmd in cmds:
            out += b"*%d\r\n" % len(cmd)
            for a in cmd:
                a = a if isinstance(a, bytes) else str(a).encode()
                out += b"$%d\r\n%s\r\n" % (len(a), a)
        s.sendall(out)
        f = s.makefile("rb")
        return [_resp(f) for _ in cmds]


class _Addr:
    """Just a port, for harness.Redis.cmd."""

    def __init__(self, port):
        self.port = port


class ClusterSet:
    """Three cluster-enabled redis-servers joined with redis-cli --cluster create."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.nodes = []
        for _ in range(3):
            n = Node(tmp)
            n.extra = ["--cluster-enabled", "yes", "--cluster-config-file",
                       os.path.join(n.dir, "nodes.conf"), "--cluster-node-timeout", "2000",
                       "--cluster-port", str(free_port())]  # not port + 10000: may be > 65535
            self.nodes.append(n)
        self.port = self.nodes[0].port

    def start(self):
        need(REDIS_CLI)
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self):
        for n in self.nodes:
            n.start()
        out = subprocess.run([REDIS_CLI, "--cluster", "create"] +
                             ["127.0.0.1:%d" % n.port for n in self.nodes] +
                             ["--cluster-replicas", "0", "--cluster-yes"],
                             capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise AssertionError("cluster create failed:\n%s%s" % (out.stdout, out.stderr))
        for n in self.nodes:
            wait_for(lambda n=n: info_field(n.cmd("CLUSTER", "INFO"), "cluster_state") == "ok",
                     30, "node %d to see the cluster ok" % n.port)
        return self

    def owner_port(self, slot):
        for start, end, master, *_ in self.nodes[0].cmd("CLUSTER", "SLOTS"):
            if start <= slot <= end:
                return int(master[1])
        raise AssertionError("no node owns slot %d" % slot)

    def cmd(self, *args):
        """To the node owning briefd's keys (redirected once on MOVED)."""
        try:
            return self.nodes[0].cmd(*args)
        except RuntimeError as e:
            if not str(e).startswith("MOVED "):
                raise
            port = int(str(e).rsplit(":", 1)[1])
            return [n for n in self.nodes if n.port == port][0].cmd(*args)

    def redis_config(self, prefix):
        return {"url": "redis://127.0.0.1:%d/0" % self.nodes[0].port, "prefix": prefix}

    def stop(self):
        for n in self.nodes:
            n.stop()


class TlsSidecar:
    """redis-server speaking TLS only, with an ACL user; stunnel (client mode) in front of it
    exposes a plain port on 127.0.0.1, which is what briefd is given."""
    USER = "briefd"
    PASSWORD = "tls-s1decar-pw"

    def __init__(self, tmp):
        self.tmp = tmp
        self.dir = os.path.join(tmp, "tls")
        os.makedirs(self.dir, exist_ok=True)
        self.tls_port = free_port()
        self.port = free_port()                 # stunnel's plain side
        self.stunnel = None
        self.redis = None

    def _openssl(self, *args):
        out = subprocess.run([OPENSSL] + list(args), capture_output=True, text=True,
                             cwd=self.dir, timeout=60)
        if out.returncode != 0:
            raise AssertionError("openssl %s failed:\n%s" % (args[0], out.stderr))

    def make_certs(self):
        need(OPENSSL)
        self._openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                      "-subj", "/CN=briefd-test-ca", "-keyout", "ca.key", "-out", "ca.crt")
        self._openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
                      "-keyout", "server.key", "-out", "server.csr")
        with open(os.path.join(self.dir, "san.ext"), "w") as f:
            f.write("subjectAltName=IP:127.0.0.1\n")
        self._openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                      "-CAcreateserial", "-days", "1", "-extfile", "san.ext",
                      "-out", "server.crt")

    def start(self):
        need(STUNNEL)
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self):
        self.make_certs()
        p = lambda name: os.path.join(self.dir, name)  # noqa: E731
        self.redis = Node(self.tmp, port=self.tls_port, plain=False, extra=[
            "--tls-port", str(self.tls_port), "--tls-cert-file", p("server.crt"),
            "--tls-key-file", p("server.key"), "--tls-ca-cert-file", p("ca.crt"),
            "--tls-auth-clients", "no",
            "--user", "default", "off",
            "--user", self.USER, "on", ">" + self.PASSWORD, "~*", "&*", "+@all"]).start()
        conf = p("stunnel.conf")
        with open(conf, "w") as f:
            f.write("foreground = yes\npid =\noutput = %s\n\n" % p("stunnel.log"))
            f.write("[redis]\nclient = yes\naccept = 127.0.0.1:%d\nconnect = 127.0.0.1:%d\n"
                    % (self.port, self.tls_port))
            f.write("CAfile = %s\nverifyChain = yes\ncheckIP = 127.0.0.1\n" % p("ca.crt"))
        self.stunnel = subprocess.Popen([STUNNEL, conf], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        wait_port(self.port, proc=self.stunnel, log=p("stunnel.log"))
        return self

    def cmd(self, *args):
        """Through the sidecar, as the ACL user."""
        return resp_pipeline(self.port, [("AUTH", self.USER, self.PASSWORD), args])[-1]

    def redis_config(self, prefix):
        return {"url": "redis://%s:%s@127.0.0.1:%d/0" % (self.USER, self.PASSWORD, self.port),
                "prefix": prefix}

    def stop(self):
        if self.stunnel and self.stunnel.poll() is None:
            self.stunnel.send_signal(signal.SIGTERM)
            self.stunnel.wait(10)
        if self.redis:
            self.redis.stop()


def kill9(node):
    """kill -9 a node (no shutdown, no final write)."""
    node.proc.send_signal(signal.SIGKILL)
    node.proc.wait(10)


def now_ms():
    return time.monotonic() * 1000.0
