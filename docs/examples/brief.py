#!/usr/bin/env python3
"""brief.py - submit a document to briefd, wait for its brief, print route, cost and latency.

    python3 docs/examples/brief.py [BASE_URL] < document.txt

Python 3 standard library only (urllib). BASE_URL defaults to $BRIEFD_URL or
http://127.0.0.1:8080; BRIEFD_API_KEY is sent as a bearer key when set (authentication on).
The operations and fields are those of docs/openapi.yaml (served at /openapi.json).
"""
import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid

BASE = (sys.argv[1] if len(sys.argv) > 1 else
        os.environ.get("BRIEFD_URL", "http://127.0.0.1:8080")).rstrip("/")
AUTH = {"Authorization": "Bearer " + os.environ["BRIEFD_API_KEY"]} \
    if os.environ.get("BRIEFD_API_KEY") else {}


def call(method, path, body=None, headers=None):
    """(status, headers, JSON body) of one request; error statuses are answers too."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(BASE + path, data=data, method=method,
                                 headers=dict(AUTH, **(headers or {})))
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=70) as r:
            return r.status, r.headers, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, e.headers, json.load(e)


def main():
    text = sys.stdin.read()
    # submitJob (POST /v1/jobs): ?wait=30 holds the request until the job ends (up to 30 s).
    # The Idempotency-Key makes a retry safe: the same key and body answer with the same job.
    key = "example-" + uuid.uuid4().hex
    body = {"text": text, "max_words": 80, "metadata": {"source": "example"}}
    for attempt in range(1, 4):
        status, headers, job = call("POST", "/v1/jobs?wait=30", body, {"Idempotency-Key": key})
        # 429 (queue full, tenant limits) and 503 (Redis, shutdown) say when to come back
        if status not in (429, 503) or attempt == 3:
            break
        time.sleep(int(headers.get("Retry-After", "1")))
    # 202: not finished yet - getJob (GET /v1/jobs/{id}?wait=30) until it has ended (200)
    while status == 202:
        status, headers, job = call("GET", "/v1/jobs/%s?wait=30" % job["id"])
    if status != 200:
        sys.exit("briefd answered %d %s: %s" % (status, job["error"]["code"],
                                               job["error"]["message"]))
    # A failed job is a 200 too: the failure is in job["error"] (the Job schema's JobError).
    route = job.get("route") or {}
    print(json.dumps({
        "id": job["id"],
        "status": job["status"],
        "route": route.get("decision"),                         # keep | refine
        "model": (job["result"] or {}).get("model"),            # who wrote the brief
        "cost_usd": job.get("cost_usd", {}).get("total"),       # JobCost.total
        "latency_ms": job.get("latency_ms", {}).get("total"),   # JobLatency.total
        "replayed": headers.get("Idempotent-Replayed") == "true",
        "brief": (job["result"] or {}).get("brief"),
        "error": job["error"],
    }, indent=2))


if __name__ == "__main__":
    main()
