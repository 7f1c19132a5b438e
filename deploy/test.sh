#!/usr/bin/env bash
# test.sh - set up, build and run every test: unit tests and integration tests (real
# redis-server, the model simulator, briefd over real HTTP), first in a normal build, then
# in an AddressSanitizer + UndefinedBehaviorSanitizer build. Exits non-zero if any fails.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
JOBS=$(nproc)

bash deploy/setup.sh

echo "== build (RelWithDebInfo) and test"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$JOBS"
(cd build && ctest --output-on-failure -j"$JOBS")
# the chaos scenarios' report lines (accepted / lost / duplicated)
grep -h '^chaos ' build/Testing/Temporary/LastTest.log || true

echo "== build (ASan + UBSan) and test"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DBRIEFD_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$JOBS"
(cd build-asan && ctest --output-on-failure -j"$JOBS")
grep -h '^chaos ' build-asan/Testing/Temporary/LastTest.log || true

# GCC's warnings depend on the optimizer (-O3 and -Os see truncations and uninitialized
# values -O2 does not): every build type must compile under -Werror, not only the two above
for bt in Release MinSizeRel; do
    echo "== build ($bt): compile only"
    cmake -S . -B "build-$bt" -DCMAKE_BUILD_TYPE="$bt" >/dev/null
    cmake --build "build-$bt" -j"$JOBS"
done

# ---- fuzz (bounded): libFuzzer harnesses, clang build in build-fuzz (tests/fuzz/run.sh) ----
echo "== fuzz (bounded)"; tests/fuzz/run.sh "${BRIEFD_FUZZ_SECONDS:-60}"
