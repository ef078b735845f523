#!/usr/bin/env bash
# Build the libFuzzer targets (clang, ASan + UBSan) in build-fuzz and run
# every tests/fuzz/fuzz_*.c target for SECONDS each, two at a time, each
# on a temporary copy of its corpus (tests/fuzz/corpus/<target>/), with
# the limits in docs/testing.md, "Fuzzing". Prints per target the executions
# and whether it crashed; exits 1 if any did, naming the crash file.
#
#   scripts/fuzz.sh [SECONDS]    (default 20; an empty argument too)
#   JOBS=N         targets run at once (default 2)
#   FUZZ_SEED=N    libFuzzer's -seed (default 1, so a short run mutates the
#                  same way on every machine and a green local run of at
#                  least as long predicts CI; 0 = a new seed each run, for
#                  the soak tier and hunting)
#   FUZZ_GROW=1    then merge into tests/fuzz/corpus/<target>/ the inputs
#                  of the run that reach code its corpus does not
#                  (libFuzzer's -merge=1), to commit: ctest replays the
#                  corpus in every build (fuzz_replay_<target>)
#
# Needs only what scripts/setup.sh installs (clang, libclang-rt-14-dev,
# cmake). Logs: build-fuzz/fuzz-logs/<target>.log; crash, leak, OOM and
# timeout inputs: build-fuzz/fuzz-artifacts/<target>/. Inputs under
# tests/fuzz/crashes/ reproduce bugs the targets found; they are not
# fuzzed from, but ctest replays them (fuzz_replay_<target>).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

secs="${1:-}"
secs="${secs:-20}"
case "$secs" in
    ''|*[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;;
esac
jobs="${JOBS:-2}"
seed="${FUZZ_SEED:-1}"
case "$seed" in
    ''|*[!0-9]*) echo "FUZZ_SEED must be a number" >&2; exit 2 ;;
esac
build=build-fuzz
logs="$build/fuzz-logs"
arts="$build/fuzz-artifacts"

echo "== build ($build: clang, libFuzzer, ASan + UBSan)"
CC=clang cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DSTRATA_FUZZ=ON -DSTRATA_SANITIZE=ON >/dev/null
targets=()
for src in tests/fuzz/fuzz_*.c; do
    targets+=("$(basename "$src" .c)")
done
# only the targets and the libraries they link: the rest is not needed
cmake --build "$build" -j "$(nproc)" --target "${targets[@]}" >/dev/null

work="$(mktemp -d "${TMPDIR:-/tmp}/strata-fuzz.XXXXXX")"
# replicas the targets make: tmpfs when there is one
if [ -w /dev/shm ]; then
    scratch="$(mktemp -d /dev/shm/strata-fuzz.XXXXXX)"
else
    scratch="$work/scratch"
    mkdir -p "$scratch"
fi
trap 'rm -rf "$work" "$scratch"' EXIT
mkdir -p "$logs" "$arts"

run_one() {   # run_one TARGET: fuzz it; the exit code says how it went
    local t="$1" corpus="$work/$1" art="$arts/$1/"
    mkdir -p "$corpus" "$art" "$scratch/$t"
    if [ -d "tests/fuzz/corpus/$t" ]; then
        cp -R "tests/fuzz/corpus/$t/." "$corpus/"
    fi
    rm -f "$art"crash-* "$art"leak-* "$art"oom-* "$art"timeout-* \
        "$art"slow-unit-*
    # a data file image is whole pages: room for a small replica's
    local max_len=70000
    [ "$t" = fuzz_pagecheck ] && max_len=131072
    # the hard limit catches a target that hangs outside libFuzzer's watch
    STRATA_FUZZ_TMP="$scratch/$t" \
        ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}" \
        UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}" \
        timeout -k 10 "$((secs + 120))" \
        "$build/tests/fuzz/$t" "$corpus" -max_total_time="$secs" \
        -max_len="$max_len" -seed="$seed" -rss_limit_mb=1024 -malloc_limit_mb=64 -timeout=2 \
        -print_final_stats=1 -artifact_prefix="$art" \
        >"$logs/$t.log" 2>&1 || return
    if [ "${FUZZ_GROW:-0}" = 1 ]; then
        mkdir -p "tests/fuzz/corpus/$t"
        STRATA_FUZZ_TMP="$scratch/$t" \
            "$build/tests/fuzz/$t" -merge=1 -max_len="$max_len" \
            -rss_limit_mb=1024 -malloc_limit_mb=64 -timeout=2 \
            "tests/fuzz/corpus/$t" "$corpus" >>"$logs/$t.log" 2>&1
    fi
}

echo "== fuzz: ${#targets[@]} targets, ${secs}s each, $jobs at a time, seed $seed"
running=0
for t in "${targets[@]}"; do
    if [ "$running" -ge "$jobs" ]; then
        wait -n || true
        running=$((running - 1))
    fi
    ( rc=0; run_one "$t" || rc=$?; echo "$rc" >"$work/$t.rc" ) &
    running=$((running + 1))
done
wait

printf '%-16s %12s %8s %6s  %s\n' target executions exec/s cov result
failed=0
for t in "${targets[@]}"; do
    log="$logs/$t.log"
    rc="$(cat "$work/$t.rc" 2>/dev/null || echo 1)"
    execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" |
        tail -1)"
    [ -n "$execs" ] || execs="$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' \
        "$log" | tail -1)"
    speed="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)"
    cov="$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2 || true)"
    crash="$(ls -1 "$arts/$t/" 2>/dev/null | grep -E \
        '^(crash|leak|oom|timeout)-' | head -1 || true)"
    if [ "$rc" = 0 ] && [ -z "$crash" ]; then
        result=ok
    else
        failed=1
        result="FAILED (exit $rc)"
        [ -n "$crash" ] && result="$result: $arts/$t/$crash"
        result="$result; log $log"
    fi
    printf '%-16s %12s %8s %6s  %s\n' "$t" "${execs:-?}" "${speed:-?}" \
        "${cov:-?}" "$result"
done
if [ "$failed" -ne 0 ]; then
    echo "fuzz: FAILED; reproduce with: $build/tests/fuzz/TARGET FILE" >&2
    exit 1
fi
echo "fuzz: all targets ok"
