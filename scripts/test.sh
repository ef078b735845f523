#!/usr/bin/env bash
# Build Strata and run the whole test suite: a Release-ish build with
# ctest (Check unit tests, integration tests with real processes), then
# the same tests under AddressSanitizer + UBSan, then a short fuzz run.
# Installs what it needs first (scripts/setup.sh), so it works on a
# fresh Debian machine as root.
#
#   STRATA_SOAK=1   also run the long soak and fuzz tiers
#   JOBS=N          parallel build and test jobs (default: nproc)
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bash scripts/setup.sh

jobs="${JOBS:-$(nproc)}"

build() {   # build DIR [cmake args...]
    local dir="$1"; shift
    cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DSTRATA_BUILD_TESTS=ON -DSTRATA_BUILD_BENCH=ON "$@" >/dev/null
    cmake --build "$dir" -j "$jobs"
}

echo "== build (RelWithDebInfo)"
build build
echo "== tests"
rm -rf build/fault-sites # what this run's fault tests reach, counted below
(cd build && ctest --output-on-failure -j "$jobs")
echo "== fault injection: call sites reached (a figure, not a gate)"
bash scripts/fault_sites.sh build

if [ -n "${STRATA_SOAK:-}" ]; then
    echo "== simulator soak (seeds 301-1300; ctest runs 1-300)"
    build/tests/sim/strata-sim --first-seed 301 --seeds 1000
fi

echo "== bench (quick: proves strata-bench runs; figures are never asserted)"
STRATA_BENCH_NO_NPM=1 build/bench/strata-bench --quick --quiet --json > build/bench-quick.json
echo "strata-bench --quick: ok ($(wc -c < build/bench-quick.json) bytes of JSON)"

echo "== build (ASan + UBSan)"
build build-asan -DSTRATA_SANITIZE=ON
echo "== tests under ASan + UBSan"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --output-on-failure -j "$jobs")

if [ -x scripts/fuzz.sh ]; then
    echo "== fuzz (short)"
    # the soak tier hunts with a new seed each run; the short run repeats
    # the same mutations everywhere (scripts/fuzz.sh, FUZZ_SEED)
    # 15 s a target keeps the whole CI run under 25 minutes on 2 cores
    fuzz_secs=15
    if [ -n "${STRATA_SOAK:-}" ]; then
        export FUZZ_SEED="${FUZZ_SEED:-0}"
        fuzz_secs=3600
    fi
    bash scripts/fuzz.sh "$fuzz_secs"
fi
