#!/bin/sh
# brief.sh - submit a document to briefd, wait for its brief, print route, cost and latency.
#
#   sh docs/examples/brief.sh [BASE_URL] < document.txt
#
# curl and jq. BASE_URL defaults to $BRIEFD_URL or http://127.0.0.1:8080; BRIEFD_API_KEY is
# sent as a bearer key when set (authentication on). The operations and fields are those of
# docs/openapi.yaml (served at /openapi.json).
set -eu
BASE=${1:-${BRIEFD_URL:-http://127.0.0.1:8080}}
KEY="example-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"

api() {   # curl with the key when there is one
    if [ -n "${BRIEFD_API_KEY:-}" ]; then
        curl -sS -H "Authorization: Bearer $BRIEFD_API_KEY" "$@"
    else
        curl -sS "$@"
    fi
}

# submitJob (POST /v1/jobs): ?wait=30 holds the request until the job ends (up to 30 s). The
# Idempotency-Key makes a retry safe: --retry resends on 429 and 503, after their Retry-After.
job=$(jq -Rs '{text: ., max_words: 80, metadata: {source: "example"}}' |
      api --retry 2 -H 'Content-Type: application/json' -H "Idempotency-Key: $KEY" \
          --data-binary @- "$BASE/v1/jobs?wait=30")
if echo "$job" | jq -e 'has("id") | not' >/dev/null; then
    echo "briefd refused the job: $(echo "$job" | jq -c .error)" >&2
    exit 1
fi
# 202, still queued or running: getJob (GET /v1/jobs/{id}?wait=30) until it has ended
while echo "$job" | jq -e '.status | IN("succeeded", "failed") | not' >/dev/null; do
    job=$(api "$BASE/v1/jobs/$(echo "$job" | jq -r .id)?wait=30")
done
# a failed job is an answer too: its failure is in .error
echo "$job" | jq '{id, status, route: .route.decision, model: .result.model,
                   cost_usd: .cost_usd.total, latency_ms: .latency_ms.total,
                   brief: .result.brief, error}'
