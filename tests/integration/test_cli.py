"""Integration: the command line (help, version, usage messages, check with warnings), the
example configurations, and small service behaviours: a reload naming every mistake (API
and SIGHUP), /readyz while stopping, one Cache-Control on event streams, the circuit
breaker's log line naming the model's role."""
import glob
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BRIEFD, ROOT, Stack, eventually, tail, wait_for  # noqa: E402

SHORT = ("Revenue grew 12 percent in the third quarter. Costs were flat. "
         "The board approved a new data center in Ohio.")


def run(*args, env=None):
    e = dict(os.environ)
    for k in ("BRIEFD_API_KEYS", "BRIEFD_ADMIN_KEYS"):
        e.pop(k, None)
    e.update(env or {})
    return subprocess.run([BRIEFD] + list(args), capture_output=True, text=True, timeout=60,
                          env=e)


def project_version():
    with open(os.path.join(ROOT, "CMakeLists.txt")) as f:
        return re.search(r"project\(briefd VERSION ([0-9.]+)", f.read()).group(1)


class CommandLine(unittest.TestCase):
    def test_help_and_version(self):
        for args in (["--help"], ["-h"], ["help"], ["serve", "--help"], ["check", "-h"],
                     ["probe", "--help"], ["replay", "--help"]):
            r = run(*args)
            self.assertEqual(r.returncode, 0, args)
            self.assertIn("briefd serve", r.stdout, args)
            self.assertIn("briefd probe", r.stdout, args)
            self.assertEqual(r.stderr, "", args)
        r = run("--version")
        self.assertEqual((r.returncode, r.stdout), (0, "briefd %s\n" % project_version()))

    def test_usage_errors(self):
        r = run()
        self.assertEqual(r.returncode, 2)
        self.assertIn("usage", r.stderr)
        r = run("serve", "--bogus", "1")
        self.assertEqual(r.returncode, 2)
        r = run("replay", "--target-refine-rate", "0.3")
        self.assertEqual(r.returncode, 2)
        self.assertEqual(r.stderr, "briefd replay: --target-refine-rate is an option of briefd "
                                   "calibrate, not of briefd replay\n")
        r = run("calibrate")
        self.assertEqual(r.returncode, 2)
        self.assertEqual(r.stderr, "briefd calibrate: --target-refine-rate R (0..1) or "
                                   "--target-gap G (0..4) is required\n")
        r = run("calibrate", "--target-gap", "0.5", "--target-refine-rate", "0.3")
        self.assertEqual((r.returncode, r.stderr), (2, "briefd calibrate: give "
                         "--target-refine-rate R or --target-gap G, not both\n"))
        r = run("calibrate", "--target-gap", "5")
        self.assertEqual((r.returncode, r.stderr), (2, "briefd calibrate: --target-gap G must "
                         "be from 0 to 4 (points of overall score)\n"))
        r = run("replay", "--target-gap", "0.5")
        self.assertEqual((r.returncode, r.stderr), (2, "briefd replay: --target-gap is an "
                         "option of briefd calibrate, not of briefd replay\n"))
        r = run("replay", "--window", "0")
        self.assertEqual(r.stderr, "briefd replay: --window S must be >= 1\n")

    def test_check_warns_about_unset_variables(self):
        path = os.path.join(ROOT, "deploy", "examples", "portkey.json")
        r = run("check", "--config", path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("ok (version", r.stdout)
        self.assertIn("%s: warning: models.draft.headers.x-portkey-api-key.env: "
                      "$PORTKEY_API_KEY is not set: this header is not sent" % path, r.stderr)
        self.assertIn("models.refine.api_key_env: $VLLM_API_KEY is not set: no Authorization "
                      "header is sent", r.stderr)
        r = run("check", "--config", path, env={"PORTKEY_API_KEY": "pk-1", "VLLM_API_KEY": "v-1",
                                               "BRIEFD_API_KEYS": "k-123456789",
                                               "BRIEFD_ADMIN_KEYS": "k-admin-12345"})
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        r = run("check", "--config", path, env={"PORTKEY_API_KEY": "bad\rvalue"})
        self.assertEqual(r.returncode, 1)
        self.assertIn("models.draft.headers.x-portkey-api-key.env: $PORTKEY_API_KEY must hold",
                      r.stderr)
        self.assertNotIn("bad", r.stderr.replace("$PORTKEY_API_KEY", ""))

    def test_examples_pass_check(self):
        files = sorted(glob.glob(os.path.join(ROOT, "deploy", "examples", "*.json")))
        self.assertGreaterEqual(len(files), 8)
        with open(os.path.join(ROOT, "deploy", "examples", "README.md")) as f:
            readme = f.read()
        for path in files:
            r = run("check", "--config", path)
            self.assertEqual(r.returncode, 0, (path, r.stderr))
            self.assertIn(": ok (version ", r.stdout)
            self.assertIn("`%s`" % os.path.basename(path), readme)
        for name in ("foundry-local", "llama-cpp", "vllm-gpt-oss", "ollama", "openai",
                     "azure-openai", "portkey", "litellm"):
            self.assertIn(os.path.join(ROOT, "deploy", "examples", name + ".json"), files)

    def test_example_json_is_the_defaults(self):
        with tempfile.NamedTemporaryFile("w", suffix=".json") as empty:
            empty.write("{}")
            empty.flush()
            a = run("check", "--config", os.path.join(ROOT, "deploy", "briefd.example.json"))
            b = run("check", "--config", empty.name)
        va = a.stdout.split("(version ")[1]
        vb = b.stdout.split("(version ")[1]
        self.assertEqual(va, vb, "deploy/briefd.example.json must list every key at its default")


class ReloadMistakes(Stack):
    def test_reload_names_every_mistake(self):
        good = dict(self.briefd.config)
        bad = json.loads(json.dumps(good))
        bad["workers"]["concurrency"] = 0
        bad["models"]["draft"]["temperature"] = "hot"
        bad["bogus"] = 1
        self.briefd.write_config(bad)
        try:
            st, body, _ = self.briefd.request("POST", "/v1/config/reload")
            self.assertEqual(st, 422)
            e = body["error"]
            self.assertEqual(e["code"], "invalid_config")
            self.assertEqual([x["param"] for x in e["errors"]],
                             ["workers.concurrency", "models.draft.temperature", "bogus"])
            self.assertEqual(e["param"], "workers.concurrency")
            self.assertTrue(e["message"].startswith("3 mistakes: workers.concurrency: must be "
                                                    "between 1 and 4096; "), e["message"])
            self.assertIn("models.draft.temperature: expected number", e["message"])
            self.assertIn("bogus: unknown key", e["message"])
            self.briefd.proc.send_signal(signal.SIGHUP)
            deadline = time.time() + 5
            while time.time() < deadline and "reload refused" not in tail(self.briefd.log):
                time.sleep(0.05)
            line = [l for l in tail(self.briefd.log).splitlines() if "reload refused" in l][-1]
            self.assertIn("3 mistakes", line)
            self.assertIn("models.draft.temperature: expected number", line)
            self.assertIn("bogus: unknown key", line)
        finally:
            self.briefd.write_config(good)
        st, body, _ = self.briefd.request("POST", "/v1/config/reload")
        self.assertEqual(st, 200, body)


class StoppingAndStreams(Stack):
    config_over = {"workers": {"shutdown_grace_ms": 4000}}

    def test_sse_sends_cache_control_once(self):
        st, job, _ = self.briefd.post_job({"text": SHORT}, wait=30)
        conn = http.client.HTTPConnection("127.0.0.1", self.briefd.port, timeout=10)
        conn.request("GET", "/v1/jobs/%s/events" % job["id"])
        r = conn.getresponse()
        r.read()
        self.assertEqual(r.msg.get_all("Cache-Control"), ["no-cache"])
        conn.request("POST", "/v1/chat/completions",
                     json.dumps({"model": "briefd-hybrid", "stream": True,
                                 "messages": [{"role": "user", "content": SHORT}]}),
                     {"Content-Type": "application/json"})
        r = conn.getresponse()
        r.read()
        self.assertEqual(r.status, 200)
        self.assertEqual(r.msg.get_all("Cache-Control"), ["no-cache"])
        conn.close()

    def test_zz_readyz_while_stopping(self):
        # runs last in this class: it stops the process
        self.sim.rules(self.sim.rule("Lingering", delay_ms=2500))
        st, job, _ = self.briefd.post_job({"text": SHORT + " Lingering."})
        self.assertEqual(st, 202)
        conn = http.client.HTTPConnection("127.0.0.1", self.briefd.port, timeout=10)
        conn.request("GET", "/readyz")
        r = conn.getresponse()
        self.assertEqual(json.loads(r.read())["status"], "ok")
        # the job is in flight: the simulator holds its draft
        wait_for(lambda: self.sim.stats()["pending"] == 1, 10, "the draft call in flight")
        self.briefd.proc.send_signal(signal.SIGTERM)
        seen = []

        def readyz():   # on the open connection, until the signal has been handled
            conn.request("GET", "/readyz")
            r = conn.getresponse()
            seen.append((r.status, json.loads(r.read())))
            return r.status != 200
        wait_for(readyz, 10, "/readyz to change after SIGTERM")
        conn.close()
        status, body = seen[-1]
        self.assertEqual(status, 503)
        self.assertEqual(body["status"], "unavailable")
        self.assertIs(body["stopping"], True)
        self.assertEqual(self.sim.stats()["pending"], 1)   # it was stopping with a job in flight
        self.assertEqual(self.briefd.proc.wait(30), 0)


class BreakerLogLines(Stack):
    config_over = {"models": {"draft": {"breaker_failures": 1, "max_attempts": 1},
                              "refine": {"breaker_failures": 1, "max_attempts": 1}},
                   "routing": {"policies": [{"type": "length", "min_chars": 1}],
                               "guards": {"max_refine_rate": None}}}

    def test_breaker_names_the_role(self):
        self.sim.rules(self.sim.rule("Refinefail", model="gpt-oss-20b", status=500))
        st, job, _ = self.briefd.post_job({"text": SHORT + " Refinefail."}, wait=30)
        self.assertTrue(job["result"]["degraded"], job)
        self.sim.rules(self.sim.rule("Draftfail", model="phi-4-mini", status=500))
        # a draft model answering 5xx is an outage: the job goes back to the queue
        st, job, _ = self.briefd.post_job({"text": SHORT + " Draftfail."})
        self.assertEqual(st, 202, job)
        draft_open = ("circuit breaker for the draft model 'phi-4-mini' is now open (calls "
                      "paused; jobs wait in the queue)")
        wait_for(lambda: draft_open in tail(self.briefd.log, 100000), 30,
                 "the draft breaker's log line")
        # not failed: back in the queue (a hand-back moves the job to a new entry; read it
        # once that has landed)
        st, again = eventually(lambda: self.briefd.request("GET", "/v1/jobs/" + job["id"])[:2],
                               lambda r: r[0] == 202, 10, "the job back in the queue")
        self.assertIn(again["status"], ("queued", "drafting"), again)
        log = tail(self.briefd.log, 100000)
        self.assertIn("circuit breaker for the refine model 'gpt-oss-20b' is now open (calls "
                      "paused; jobs that route to refinement keep their drafts)", log)


if __name__ == "__main__":
    unittest.main()
