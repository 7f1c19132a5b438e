#!/usr/bin/env bash
# run.sh - build the libFuzzer harnesses (clang, BRIEFD_FUZZ=ON) and run each for a bounded time.
#
# Usage: tests/fuzz/run.sh [SECONDS_PER_HARNESS (60)] [BUILD_DIR (build-fuzz)]
#        FUZZ_HARNESSES="fuzz_job fuzz_oai" tests/fuzz/run.sh 30   # a subset
#        FUZZ_SEED=0 tests/fuzz/run.sh 600                            # a random seed
#
# By default every harness runs with the fixed seed FUZZ_SEED=1 over the committed seed
# corpus (a fresh build dir has no other inputs), so CI explores the same inputs in the same
# order each time and does not fail on a random new finding; open-ended fuzzing
# (bench/fuzz-long.sh) uses a random seed, and what it finds becomes a seed here.
#
# Configures BUILD_DIR with CC=clang -DBRIEFD_FUZZ=ON (-O1 -g, asserts on), builds the
# harnesses, copies each seed corpus (tests/fuzz/corpus/<harness>/) into a working corpus
# under BUILD_DIR (fuzz-corpus/<harness>/: new inputs accumulate there across runs; the tree
# is never written), runs each harness for SECONDS with its dictionary, prints
# "fuzz <name>: N execs, crashes C" per harness and writes those lines to
# BUILD_DIR/fuzz-results.txt. Exits non-zero if any harness crashed, leaked, timed out or
# could not run; the log (BUILD_DIR/fuzz-logs/<harness>.log) and the crash artifact path
# (BUILD_DIR/fuzz-artifacts/<harness>/...) are printed. Reproduce a crash with
#   BUILD_DIR/tests/fuzz/<harness> <artifact>
set -euo pipefail

SECS=${1:-60}
SEED=${FUZZ_SEED:-1}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${2:-build-fuzz}
case $BUILD in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
read -r -a HARNESSES <<<"${FUZZ_HARNESSES:-fuzz_http fuzz_job fuzz_json fuzz_config fuzz_oai fuzz_judge fuzz_feedback fuzz_hconn}"
JOBS=$(nproc 2>/dev/null || echo 2)

case $SECS in
    '' | *[!0-9]*) echo "run.sh: SECONDS must be a whole number, got '$SECS'" >&2; exit 2 ;;
esac
if ! command -v clang >/dev/null; then
    echo "run.sh: clang not found (deploy/setup.sh installs clang and libclang-rt-14-dev)" >&2
    exit 2
fi

cd "$ROOT"
echo "fuzz: configure and build in $BUILD (clang, BRIEFD_FUZZ=ON)"
CC=clang cmake -S . -B "$BUILD" -DBRIEFD_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O1 -g" >/dev/null
cmake --build "$BUILD" -j"$JOBS" --target "${HARNESSES[@]}"

export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=1:abort_on_error=0"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}print_stacktrace=1:halt_on_error=1"

RESULTS="$BUILD/fuzz-results.txt"
mkdir -p "$BUILD/fuzz-logs"
: >"$RESULTS"
failed=0

for h in "${HARNESSES[@]}"; do
    bin="$BUILD/tests/fuzz/$h"
    work="$BUILD/fuzz-corpus/$h"
    art="$BUILD/fuzz-artifacts/$h"
    log="$BUILD/fuzz-logs/$h.log"
    dict=()
    mkdir -p "$work" "$art"
    if [ -d "tests/fuzz/corpus/$h" ]; then
        cp -p tests/fuzz/corpus/"$h"/* "$work"/
    fi
    if [ -f "tests/fuzz/$h.dict" ]; then
        dict=(-dict="tests/fuzz/$h.dict")
    fi
    echo "fuzz: $h for ${SECS}s (log $log)"
    set +e
    "$bin" -seed="$SEED" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$art/" "${dict[@]}" "$work" >"$log" 2>&1
    rc=$?
    set -e
    execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -n 1)
    crashes=$(grep -c 'Test unit written to' "$log" || true)
    if [ "$rc" -ne 0 ] && [ "$crashes" -eq 0 ]; then
        crashes=1 # died without an artifact (e.g. in LLVMFuzzerInitialize): count it
    fi
    line="fuzz ${h#fuzz_}: ${execs:-0} execs, crashes $crashes"
    echo "$line"
    echo "$line" >>"$RESULTS"
    if [ "$rc" -ne 0 ]; then
        failed=1
        echo "fuzz: $h FAILED (exit $rc); last lines of $log:"
        grep -E 'ERROR|SUMMARY|runtime error|fuzz_[a-z]+: |Test unit written|^ +#[0-9]+ ' \
            "$log" | head -n 40 | sed 's/^/    /'
        grep -o 'Test unit written to .*' "$log" | sed 's/^/fuzz: artifact: /' || true
        echo "fuzz: reproduce: $bin <artifact>"
    fi
done

echo "fuzz: results in $RESULTS"
exit "$failed"
