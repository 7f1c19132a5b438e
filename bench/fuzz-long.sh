#!/usr/bin/env bash
# fuzz-long.sh - the fuzz run of tests/fuzz/run.sh with a longer time per harness (default 600 s)
# and a random seed (FUZZ_SEED=0; CI uses the fixed seed 1).
# Usage: bench/fuzz-long.sh [SECONDS_PER_HARNESS (600)] [BUILD_DIR (build-fuzz)]
# The working corpus under BUILD_DIR/fuzz-corpus/ grows across runs; inputs worth keeping
# (new coverage, regressions) can be minimized with `<harness> -merge=1 NEW_DIR BUILD_DIR/...`
# and copied into tests/fuzz/corpus/<harness>/ by hand.
set -euo pipefail
FUZZ_SEED=${FUZZ_SEED:-0} exec "$(cd "$(dirname "$0")/.." && pwd)/tests/fuzz/run.sh" "${1:-600}" "${2:-build-fuzz}"
