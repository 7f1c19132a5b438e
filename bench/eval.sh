#!/usr/bin/env bash
# eval.sh - the quality side of briefd's cost/quality trade-off on the shipped dataset:
# `briefd eval` (docs/EVALUATION.md) against the model simulator at its realistic profile
# (bench/sim/README.md), which also plays the judge.
#
# usage: bench/eval.sh [DATASET] [briefd eval options ...]
#   DATASET         JSON Lines documents (default bench/data/docs.jsonl)
#   options         passed on, e.g. --arms draft,hybrid --limit 20
# environment:
#   BUILD           the build directory with briefd and briefd-modelsim (default build)
#   OUT             where the report goes (default bench/results/eval)
#   CONCURRENCY     documents in flight (default 8)
#
# Writes OUT/report.json, report.md, report.html and OUT/eval.log (briefd's progress lines),
# and prints the arms table. The simulator runs on a free port and is stopped at the end.
# Prices are the ones docs/API.md's examples use (USD per million tokens: draft 0.075 in /
# 0.30 out, refine and judge 0.07 / 0.30), so costs do not depend on timing; routing is the
# default chain. The default OUT is not committed; bench/results/eval-example/ holds one run
# (OUT=bench/results/eval-example), committed as an example of the report.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build=${BUILD:-$root/build}
dataset=${1:-$root/bench/data/docs.jsonl}
[ $# -gt 0 ] && shift
out=${OUT:-$root/bench/results/eval}
concurrency=${CONCURRENCY:-8}

for bin in briefd briefd-modelsim; do
    if [ ! -x "$build/$bin" ]; then
        echo "eval.sh: $build/$bin not found (build first, or set BUILD)" >&2
        exit 1
    fi
done
if [ ! -f "$dataset" ]; then
    echo "eval.sh: dataset $dataset not found (give its path as the first argument)" >&2
    exit 1
fi

tmp=$(mktemp -d)
sim_pid=
cleanup() {
    if [ -n "$sim_pid" ] && kill -0 "$sim_pid" 2>/dev/null; then
        kill -TERM "$sim_pid"
        wait "$sim_pid" || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

"$build/briefd-modelsim" --listen 127.0.0.1:0 --profile realistic --quiet \
    >"$tmp/sim.out" 2>"$tmp/sim.err" &
sim_pid=$!
# the simulator prints one line once it listens: "... listening on http://HOST:PORT/v1 ..."
url=
for _ in $(seq 1 100); do
    url=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$tmp/sim.out")
    [ -n "$url" ] && break
    if ! kill -0 "$sim_pid" 2>/dev/null; then
        echo "eval.sh: the simulator exited:" >&2
        cat "$tmp/sim.err" >&2
        exit 1
    fi
    sleep 0.1
done
if [ -z "$url" ]; then
    echo "eval.sh: the simulator did not start listening" >&2
    exit 1
fi

cat >"$tmp/eval.json" <<JSON
{
  "models": {
    "draft": {"base_url": "$url", "price": {"input_per_mtok": 0.075, "output_per_mtok": 0.30}},
    "refine": {"base_url": "$url", "price": {"input_per_mtok": 0.07, "output_per_mtok": 0.30}},
    "judge": {"price": {"input_per_mtok": 0.07, "output_per_mtok": 0.30}}
  }
}
JSON

mkdir -p "$out"
echo "eval.sh: $dataset with the simulator at $url (profile realistic) -> $out" >&2
"$build/briefd" eval --config "$tmp/eval.json" --dataset "$dataset" --out "$out" \
    --concurrency "$concurrency" "$@" 2> >(tee "$out/eval.log" >&2)
