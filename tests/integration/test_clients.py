"""Integration: a Python client of the OpenAI-compatible facade written with the standard
library only (urllib, json) - what the official `openai` package would do for
models.retrieve, chat.completions.create (plain and streamed) and its typed errors. The
`openai` package itself cannot be installed on the machines briefd is developed on (no PyPI
access; Debian 12's python3-openai does not import), so the official SDK is tested in
JavaScript (facade_openai.mjs, test_jobs.FacadeOpenAISdk)."""
import json
import os
import sys
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Stack  # noqa: E402

SHORT = ("Revenue grew 12 percent in the third quarter. Costs were flat. "
         "The board approved a new data center in Ohio.")
KEY = "k-stdlib-client-01"


class APIError(Exception):
    """What the OpenAI SDKs raise: the status and the error object's fields."""

    def __init__(self, status, error):
        super().__init__(error.get("message"))
        self.status = status
        self.type = error.get("type")
        self.code = error.get("code")
        self.param = error.get("param")


class Client:
    def __init__(self, base_url, api_key):
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key

    def _open(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base_url + path, data=data, method=method)
        req.add_header("Authorization", "Bearer " + self.api_key)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            return urllib.request.urlopen(req, timeout=60)
        except urllib.error.HTTPError as e:
            raise APIError(e.code, json.loads(e.read())["error"]) from None

    def retrieve_model(self, model):
        with self._open("GET", "/models/" + urllib.request.quote(model, safe="")) as r:
            return json.loads(r.read())

    def create(self, **body):
        with self._open("POST", "/chat/completions", body) as r:
            return json.loads(r.read())

    def stream(self, **body):
        """Yield each chunk of a streamed completion as it arrives (Server-Sent Events)."""
        body["stream"] = True
        with self._open("POST", "/chat/completions", body) as r:
            assert r.headers.get_content_type() == "text/event-stream"
            for raw in r:
                line = raw.decode("utf-8").rstrip("\r\n")
                if not line.startswith("data: "):
                    continue
                if line == "data: [DONE]":
                    return
                yield json.loads(line[6:])


class StdlibClient(Stack):
    @classmethod
    def setUpClass(cls):
        os.environ["BRIEFD_API_KEYS"] = KEY
        try:
            super().setUpClass()
        finally:
            del os.environ["BRIEFD_API_KEYS"]
        cls.client = Client("http://127.0.0.1:%d/v1" % cls.briefd.port, KEY)

    def test_models_retrieve(self):
        m = self.client.retrieve_model("briefd-hybrid")
        self.assertEqual(m, {"id": "briefd-hybrid", "object": "model", "created": 0,
                             "owned_by": "briefd"})
        with self.assertRaises(APIError) as cm:
            self.client.retrieve_model("gpt-4o")
        e = cm.exception
        self.assertEqual((e.status, e.type, e.code, e.param),
                         (404, "invalid_request_error", "model_not_found", None))
        self.assertIn("gpt-4o", str(e))

    def test_completion_and_errors(self):
        r = self.client.create(model="briefd-hybrid",
                               messages=[{"role": "user", "content": SHORT}])
        self.assertEqual(r["object"], "chat.completion")
        self.assertTrue(r["choices"][0]["message"]["content"])
        self.assertEqual(r["usage"]["total_tokens"],
                         r["usage"]["prompt_tokens"] + r["usage"]["completion_tokens"])
        with self.assertRaises(APIError) as cm:
            self.client.create(model="briefd-hybrid",
                               messages=[{"role": "user", "content": SHORT}],
                               tools=[{"type": "function", "function": {"name": "f"}}],
                               tool_choice="auto")
        e = cm.exception
        self.assertEqual((e.status, e.type, e.code, e.param),
                         (400, "invalid_request_error", "unsupported_parameter", "tools"))
        with self.assertRaises(APIError) as cm:
            self.client.create(model="nope", messages=[{"role": "user", "content": SHORT}])
        self.assertEqual((cm.exception.status, cm.exception.code), (404, "model_not_found"))
        bad = Client(self.client.base_url, "k-wrong-key-000")
        with self.assertRaises(APIError) as cm:
            bad.retrieve_model("briefd-hybrid")
        self.assertEqual((cm.exception.status, cm.exception.type, cm.exception.code),
                         (401, "authentication_error", "invalid_api_key"))

    def test_streaming(self):
        chunks = list(self.client.stream(model="briefd-hybrid",
                                         messages=[{"role": "user", "content": SHORT}],
                                         stream_options={"include_usage": True}))
        self.assertGreater(len(chunks), 2)
        self.assertEqual(chunks[0]["choices"][0]["delta"].get("role"), "assistant")
        text = "".join(c["choices"][0]["delta"].get("content") or ""
                       for c in chunks if c["choices"])
        finals = [c["choices"][0]["finish_reason"] for c in chunks
                  if c["choices"] and c["choices"][0].get("finish_reason")]
        self.assertEqual(finals, ["stop"])
        self.assertEqual(chunks[-1]["choices"], [])
        self.assertGreater(chunks[-1]["usage"]["total_tokens"], 0)
        job = self.briefd.get("/v1/jobs/" + chunks[-1]["briefd"]["job_id"],
                              headers={"Authorization": "Bearer " + KEY})[1]
        self.assertEqual(text, job["result"]["brief"])


if __name__ == "__main__":
    unittest.main()
