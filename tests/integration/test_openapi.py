"""Integration: docs/openapi.yaml is the API briefd serves (docs/API.md,
"OpenAPI description").

- The route table (`briefd routes`) and the spec's operations are the same set, with the
  same authentication; a live briefd answers every operation it lists, and a method the
  spec does not list for a path gets 405 there.
- GET /openapi.json serves docs/openapi.yaml as the build converts it (cmake/openapi_json.py,
  which refuses what JSON cannot hold), with no key while authentication is on.
- The client examples of docs/examples/ (JavaScript, Python, curl) run against a live
  briefd with authentication on: each submits with an Idempotency-Key, waits and reports the
  job's route, cost and latency.
Every response here is also checked against the spec by the harness (openapi_check.mjs)."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BRIEFD, ROOT, Stack, request, rkey  # noqa: E402

SPEC_YAML = os.path.join(ROOT, "docs", "openapi.yaml")
CONVERT = os.path.join(ROOT, "cmake", "openapi_json.py")
EXAMPLES = os.path.join(ROOT, "docs", "examples")
METHODS = ("get", "post", "put", "delete", "patch", "head", "options", "trace")
DOC = ("Acme Corp reported third-quarter revenue of 41.2 million dollars, up 12 percent. "
       "A supplier filed a lawsuit in Ohio over a late shipment. Costs rose 8 percent.")
CLIENT_KEY, ADMIN_KEY = "oa-client-key-0001", "oa-admin-key-0001"


def convert(text):
    """(exit code, stdout JSON text or None, stderr) of the build's converter on text."""
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = os.path.join(tmp, "in.yaml"), os.path.join(tmp, "out.json")
        with open(src, "w") as f:
            f.write(text)
        r = subprocess.run([sys.executable, CONVERT, src, dst], capture_output=True, text=True,
                           timeout=60)
        out = None
        if os.path.exists(dst):
            with open(dst) as f:
                out = f.read()
        return r.returncode, out, r.stderr


def spec():
    with open(SPEC_YAML) as f:
        rc, out, err = convert(f.read())
    assert rc == 0, err
    return json.loads(out)


def spec_operations(doc):
    """{(METHOD, path): auth} of the spec, auth as `briefd routes` says it."""
    kinds = {(): "none", ("admin",): "admin", ("admin", "bearer"): "client"}
    ops = {}
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method in METHODS:
                names = tuple(sorted(name for req in op["security"] for name in req))
                ops[(method.upper(), path)] = kinds.get(names, "security %r" % (names,))
    return ops


def route_table():
    r = subprocess.run([BRIEFD, "routes"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    ops = {}
    for line in r.stdout.splitlines():
        method, path, auth = line.split(" ")
        ops[(method, path)] = auth
    return ops


def fill(path, job_id):
    """A URL for a path template: a job id for {id}, else a sample the route accepts."""
    samples = {"/v1/models/{id}": "/v1/models/briefd-hybrid",
               "/v1/tenants/{id}": "/v1/tenants/acme"}
    return samples.get(path, path.replace("{id}", job_id))


class Contract(unittest.TestCase):
    """No briefd running: the route table against the spec, the converter's strictness."""

    def test_route_table_is_the_spec(self):
        served, described = route_table(), spec_operations(spec())
        self.assertEqual(sorted(set(served) - set(described)), [],
                         "routes briefd serves that docs/openapi.yaml does not describe")
        self.assertEqual(sorted(set(described) - set(served)), [],
                         "operations docs/openapi.yaml describes that briefd does not serve")
        for op, auth in served.items():
            self.assertEqual(described[op], auth, "authentication of %s %s" % op)
        self.assertIn(("GET", "/openapi.json"), served)
        self.assertEqual(served[("GET", "/v1/tenants/{id}")], "admin")

    def test_every_operation_declares_its_errors_and_headers(self):
        doc = spec()
        for path, item in doc["paths"].items():
            for method, op in item.items():
                if method not in METHODS:
                    continue
                where = "%s %s" % (method.upper(), path)
                self.assertIn("4XX", op["responses"], where)
                if op["security"]:
                    self.assertIn("401", op["responses"], where + ": a key can be refused")
                for status, resp in op["responses"].items():
                    ref = resp.get("$ref", "").rsplit("/", 1)[-1]
                    resp = doc["components"]["responses"][ref] if ref else resp
                    self.assertIn("X-Request-Id", resp.get("headers", {}),
                                  "%s -> %s: every response carries X-Request-Id" % (
                                      where, status))

    def test_converter_refuses_what_json_cannot_hold(self):
        for text, why in (("a: 1\na: 2\n", "repeated key 'a'"),
                          ("responses:\n  200: {}\n", "key 200 is not a string"),
                          ("x: .inf\n", "not a JSON number"),
                          ("x: !!binary aGk=\n", "is not JSON"),
                          ("x: [\n", "expected")):
            rc, out, err = convert(text)
            self.assertEqual(rc, 1, text)
            self.assertIn(why, err, text)
            self.assertIsNone(out, text)

    def test_converter_reads_yaml_1_2(self):
        rc, out, err = convert("a: yes\nb: 2026-12-02\nc: true\nd: ~\ne: '200'\nf: 1.5\n")
        self.assertEqual(rc, 0, err)
        self.assertEqual(out, '{"a":"yes","b":"2026-12-02","c":true,"d":null,"e":"200","f":1.5}\n')


class Served(Stack):
    """A live briefd with authentication on (a client key and an admin key)."""

    @classmethod
    def setUpClass(cls):
        os.environ["OA_KEYS"], os.environ["OA_ADMIN"] = CLIENT_KEY, ADMIN_KEY
        cls.config_over = {"auth": {"keys_env": "OA_KEYS", "admin_keys_env": "OA_ADMIN"}}
        try:
            super().setUpClass()
        finally:
            del os.environ["OA_KEYS"], os.environ["OA_ADMIN"]

    def call(self, method, path, body=None, key=None, headers=None):
        h = dict(headers or {})
        if key:
            h["Authorization"] = "Bearer " + key
        return self.briefd.request(method, path, body, h)

    def test_openapi_json_is_the_yaml_and_needs_no_key(self):
        with open(SPEC_YAML) as f:
            want = convert(f.read())[1]
        st, body, hdrs = self.briefd.get("/openapi.json")
        self.assertEqual(st, 200)
        self.assertEqual(hdrs["content-type"], "application/json")
        self.assertTrue(body == json.loads(want),
                        "briefd serves another description than docs/openapi.yaml converts to "
                        "(built from an older one?)")
        self.assertEqual(int(hdrs["content-length"]), len(want.encode()))
        st, body, hdrs = self.briefd.request("HEAD", "/openapi.json")
        self.assertEqual((st, body), (200, b""))
        self.assertEqual(int(hdrs["content-length"]), len(want.encode()))
        st, body, hdrs = self.briefd.request("POST", "/openapi.json", raw=b"")
        self.assertEqual(st, 405)
        self.assertEqual(hdrs["allow"], "GET, HEAD")

    def test_every_listed_operation_is_served(self):
        st, job, _ = self.call("POST", "/v1/jobs?wait=30", {"text": DOC}, CLIENT_KEY)
        self.assertEqual(st, 200, job)
        bodies = {("POST", "/v1/jobs"): {"text": DOC},
                  ("POST", "/v1/jobs/{id}/feedback"): {"score": 4, "label": "good"},
                  ("POST", "/v1/chat/completions"): {
                      "model": "briefd-hybrid", "messages": [{"role": "user", "content": DOC}]}}
        for (method, path), auth in sorted(route_table().items()):
            url = fill(path, job["id"])
            key = {"none": None, "client": CLIENT_KEY, "admin": ADMIN_KEY}[auth]
            st, body, _ = self.call(method, url, bodies.get((method, path)), key,
                                    {} if (method, path) in bodies or method == "GET"
                                    else {"Content-Length": "0"})
            code = (body.get("error") or {}).get("code") if isinstance(body, dict) else None
            self.assertNotIn(st, (405,), "%s %s" % (method, url))
            self.assertNotEqual(code, "not_found", "%s %s: %s" % (method, url, body))
            self.assertLess(st, 500, "%s %s: %s" % (method, url, body))
            if auth != "none":
                st, body, _ = self.call(method, url, bodies.get((method, path)))
                self.assertEqual(st, 401, "%s %s answers without a key" % (method, url))

    def test_errors_of_every_route(self):
        """Each route's own refusals (the harness holds them to the spec like the rest)."""
        job_id = "job_01M8TF00C7A5XB8MFJTDWJ3M9C"
        chat = {"model": "briefd-hybrid", "messages": [{"role": "user", "content": DOC}]}
        cases = [
            ("POST", "/v1/jobs", {"text": " "}, CLIENT_KEY, 400, "text_required"),
            ("POST", "/v1/jobs", {"text": DOC, "max_words": 5}, CLIENT_KEY, 422, "invalid_value"),
            ("GET", "/v1/jobs/%s?wait=99" % job_id, None, CLIENT_KEY, 400, "invalid_value"),
            ("GET", "/v1/jobs/" + job_id, None, CLIENT_KEY, 404, "job_not_found"),
            ("GET", "/v1/jobs/%s/events" % job_id, None, CLIENT_KEY, 404, "job_not_found"),
            ("POST", "/v1/jobs/%s/feedback" % job_id, {"score": 4}, CLIENT_KEY, 404,
             "job_not_found"),
            ("POST", "/v1/jobs/%s/feedback" % job_id, {"score": 6}, CLIENT_KEY, 422,
             "invalid_value"),
            ("POST", "/v1/jobs/%s/feedback" % job_id, {"label": "x"}, CLIENT_KEY, 400,
             "score_required"),
            ("POST", "/v1/chat/completions", dict(chat, model="gpt-4o"), CLIENT_KEY, 404,
             "model_not_found"),
            ("POST", "/v1/chat/completions", dict(chat, n=2), CLIENT_KEY, 400, "invalid_value"),
            ("POST", "/v1/chat/completions",
             dict(chat, messages=[{"role": "user", "content": "x"}] * 257), CLIENT_KEY, 422,
             "invalid_value"),
            ("GET", "/v1/models/gpt-4o", None, CLIENT_KEY, 404, "model_not_found"),
            ("GET", "/v1/stats?window=10", None, CLIENT_KEY, 400, "invalid_value"),
            ("GET", "/v1/config", None, CLIENT_KEY, 403, "admin_required"),
            ("POST", "/v1/config/reload", None, CLIENT_KEY, 403, "admin_required"),
            ("GET", "/v1/dead-letters?limit=0", None, ADMIN_KEY, 400, "invalid_value"),
            ("GET", "/v1/dead-letters", None, CLIENT_KEY, 403, "admin_required"),
            ("POST", "/v1/dead-letters/%s/requeue" % job_id, None, ADMIN_KEY, 404,
             "job_not_found"),
            ("POST", "/v1/dead-letters/%s/requeue" % job_id, None, CLIENT_KEY, 403,
             "admin_required"),
            ("GET", "/v1/tenants/" + "t" * 300, None, ADMIN_KEY, 400, "invalid_value"),
            ("GET", "/v1/tenants/acme", None, CLIENT_KEY, 403, "admin_required"),
            ("GET", "/v1/stats", None, "not-a-key-at-all", 401, "invalid_api_key"),
        ]
        for method, path, body, key, status, code in cases:
            st, got, _ = self.call(method, path, body, key,
                                   None if body is not None else {"Content-Length": "0"})
            self.assertEqual((st, got["error"]["code"]), (status, code), "%s %s" % (method, path))
        st, got, _ = self.briefd.request("POST", "/v1/chat/completions", raw=b"hi", headers={
            "Content-Type": "text/plain", "Authorization": "Bearer " + CLIENT_KEY})
        self.assertEqual((st, got["error"]["code"]), (415, "unsupported_media_type"))

    def test_methods_the_spec_does_not_list_get_405(self):
        job_id = "job_01M8TF00C7A5XB8MFJTDWJ3M9C"
        for path, item in spec()["paths"].items():
            allow = "GET, HEAD" if "get" in item else "POST"
            for method in ("GET", "POST", "PUT", "DELETE", "PATCH"):
                if method.lower() in item:
                    continue
                url = fill(path, job_id)
                st, body, hdrs = self.call(method, url, key=ADMIN_KEY,
                                           headers={"Content-Length": "0"})
                self.assertEqual(st, 405, "%s %s: %s" % (method, url, body))
                self.assertEqual(hdrs["allow"], allow, "%s %s" % (method, url))


class Described(Stack):
    """Answers the other tests rarely see, so the harness checks them against the spec too:
    a route decided in score mode (route.score), the HTTP layer's refusals (414, 431)."""
    config_over = {"routing": {"mode": "score", "threshold": 0.3}}

    def test_score_mode_route(self):
        st, job, _ = self.briefd.post_job({"text": DOC, "topic_flags": ["legal"]}, wait=30)
        self.assertEqual(st, 200, job)
        self.assertEqual(job["route"]["mode"], "score")
        self.assertIsInstance(job["route"]["score"], (int, float))

    def test_http_layer_refusals(self):
        st, body, _ = self.briefd.get("/v1/stats?pad=" + "x" * 5000)
        self.assertEqual((st, body["error"]["code"]), (414, "url_too_long"))
        many = dict(("X-Pad-%02d" % i, "1") for i in range(70))
        st, body, _ = self.briefd.get("/healthz", headers=many)
        self.assertEqual((st, body["error"]["code"]), (431, "headers_too_large"))


class Examples(Stack):
    """docs/examples/ against a live briefd, authentication on."""

    @classmethod
    def setUpClass(cls):
        os.environ["OA_KEYS"] = CLIENT_KEY
        cls.config_over = {"auth": {"keys_env": "OA_KEYS"}}
        try:
            super().setUpClass()
        finally:
            del os.environ["OA_KEYS"]

    def run_example(self, args, key=CLIENT_KEY):
        env = dict(os.environ, BRIEFD_URL="http://127.0.0.1:%d" % self.briefd.port)
        env.pop("BRIEFD_API_KEY", None)
        if key:
            env["BRIEFD_API_KEY"] = key
        return subprocess.run(args, input=DOC, capture_output=True, text=True, env=env,
                              timeout=120, cwd=ROOT)

    def idempotency_keys(self):
        prefix = self.briefd.config["redis"]["prefix"]
        return self.redis.cmd("KEYS", rkey(prefix, "idem:*"))

    def check_example(self, args, tool):
        if not shutil.which(tool):
            self.fail("%s is needed to run the example (deploy/setup.sh installs it)" % tool)
        before = len(self.idempotency_keys())
        r = self.run_example(args)
        self.assertEqual(r.returncode, 0, r.stderr)
        out = json.loads(r.stdout)
        self.assertEqual(len(self.idempotency_keys()), before + 1,
                         "the example sends an Idempotency-Key")
        st, job, _ = request("127.0.0.1", self.briefd.port, "GET", "/v1/jobs/" + out["id"],
                             headers={"Authorization": "Bearer " + CLIENT_KEY})
        self.assertEqual(st, 200, job)
        self.assertEqual(out["status"], "succeeded")
        self.assertEqual(job["metadata"], {"source": "example"})
        self.assertEqual(out["route"], job["route"]["decision"])
        self.assertIn(out["route"], ("keep", "refine"))
        self.assertEqual(out["model"], job["result"]["model"])
        self.assertEqual(out["cost_usd"], job["cost_usd"]["total"])
        self.assertGreater(out["cost_usd"], 0)
        self.assertEqual(out["latency_ms"], job["latency_ms"]["total"])
        self.assertEqual(out["brief"], job["result"]["brief"])
        self.assertIsNone(out["error"])
        # without the key the example reports briefd's refusal and fails
        r = self.run_example(args, key=None)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("missing_api_key", r.stderr)

    def test_javascript_example(self):
        self.check_example(["node", os.path.join(EXAMPLES, "brief.mjs")], "node")

    def test_python_example(self):
        self.check_example([sys.executable, os.path.join(EXAMPLES, "brief.py")], "python3")

    def test_curl_example(self):
        if not shutil.which("curl"):
            self.fail("curl is needed to run the example (deploy/setup.sh installs it)")
        self.check_example(["sh", os.path.join(EXAMPLES, "brief.sh")], "jq")


if __name__ == "__main__":
    unittest.main()
