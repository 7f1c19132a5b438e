#!/usr/bin/env bash
# quickstart.sh - set up, build and run briefd on its embedded defaults.
#
# Installs dependencies (deploy/setup.sh), builds, then runs in the foreground:
#   - a local redis-server on 127.0.0.1:6379 (data under build/quickstart/redis), unless a
#     Redis already answers there;
#   - the model simulator (briefd-modelsim) on 127.0.0.1:5273, standing in for phi-4-mini
#     and gpt-oss-20b, unless BRIEFD_CONFIG names a config (with your real endpoints) or
#     something already serves /v1/models there (Foundry Local's default port);
#   - briefd serve, on http://127.0.0.1:8080 (or as BRIEFD_CONFIG says).
# Ctrl-C stops all of them.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

bash deploy/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"

RUN="$ROOT/build/quickstart"
mkdir -p "$RUN/redis"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    redis-server --port 6379 --bind 127.0.0.1 --dir "$RUN/redis" --appendonly yes \
        --logfile "$RUN/redis/redis.log" &
    pids+=($!)
    for _ in $(seq 50); do redis-cli -p 6379 ping >/dev/null 2>&1 && break; sleep 0.1; done
    echo "quickstart: started redis-server on 127.0.0.1:6379 (data in $RUN/redis)"
fi

CONFIG_ARGS=()
if [ -n "${BRIEFD_CONFIG:-}" ]; then
    CONFIG_ARGS=(--config "$BRIEFD_CONFIG")
elif ! curl -sf -m 1 http://127.0.0.1:5273/v1/models >/dev/null 2>&1; then
    build/briefd-modelsim --listen 127.0.0.1:5273 --profile realistic --quiet \
        >"$RUN/modelsim.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 50); do curl -sf -m 1 http://127.0.0.1:5273/v1/models >/dev/null && break; sleep 0.1; done
    echo "quickstart: started briefd-modelsim (a SIMULATOR of phi-4-mini and gpt-oss-20b) on 127.0.0.1:5273"
fi

cat <<'MSG'

briefd is starting on http://127.0.0.1:8080 - try:

  curl -s 'http://127.0.0.1:8080/v1/jobs?wait=30' -H 'Content-Type: application/json' \
    -d '{"text": "Revenue grew 12% in Q3 while costs stayed flat. The board approved a new data center in Ohio. Legal flagged a pending lawsuit from a former supplier.", "topic_flags": ["legal"], "max_words": 60}'

  curl -s http://127.0.0.1:8080/v1/jobs/JOB_ID        # poll a job
  curl -s http://127.0.0.1:8080/readyz

Ctrl-C stops briefd, the simulator and the Redis this script started.
MSG

build/briefd serve "${CONFIG_ARGS[@]}" &
pids+=($!)
wait "${pids[-1]}"
