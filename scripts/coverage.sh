#!/usr/bin/env bash
# Branch coverage of the code whose every path matters most, measured
# with clang's source-based coverage (llvm-cov) over the whole ctest
# suite: unit tests, integration tests with real processes, and the
# simulator's seeds. Prints, for each area, the branches taken both ways
# against all of them, then the files of each area, least covered first.
#
#   scripts/coverage.sh            build build-cov, run ctest, report
#   scripts/coverage.sh --report   report again from the last run
#   JOBS=N                         parallel build and test jobs
#
# Installs what it needs first (scripts/setup.sh: clang, and llvm for
# llvm-profdata and llvm-cov). The areas and the target are docs/testing.md's,
# "Coverage". Output: build-cov/coverage/summary.txt (the tables) and
# build-cov/coverage/<area>.txt (llvm-cov's per-file report).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

build=build-cov
out="$build/coverage"
raw="$out/raw"
jobs="${JOBS:-$(nproc)}"
report_only=0
bash scripts/setup.sh # clang, llvm-profdata, llvm-cov
case "${1:-}" in
    --report) report_only=1 ;;
    '') ;;
    *) echo "usage: $0 [--report]" >&2; exit 2 ;;
esac

tool() {   # tool NAME: the versioned llvm tool that matches clang
    local v
    v="$(clang --version | sed -n 's/.*clang version \([0-9]*\).*/\1/p' |
         head -n 1)"
    if command -v "$1-$v" >/dev/null; then
        echo "$1-$v"
    else
        echo "$1"
    fi
}
profdata="$(tool llvm-profdata)"
cov="$(tool llvm-cov)"

# the areas: name, then the sources (globs under the repository)
areas=(
    "merge|libcrdt/src/merge.c libcrdt/src/mergeaid.c libcrdt/src/applyq.c libcrdt/src/unpacked.c libcrdt/src/hashq.c"
    "op-log|libcrdt/src/txn.c libcrdt/src/txn_group.c libcrdt/src/logrec.c libcrdt/src/logrun.c libcrdt/src/chain.c libcrdt/src/heads.c libcrdt/src/oprun.c libcrdt/src/changepack.c libcrdt/src/codec.c libcrdt/src/export.c"
    "epoch/migration|libepoch/src/*.c"
    "sync state machine|net/src/session*.c net/src/summary.c net/src/cut.c"
)

if [ "$report_only" = 0 ]; then
    echo "== build ($build: clang, source-based coverage)"
    CC=clang cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DSTRATA_COVERAGE=ON -DSTRATA_BUILD_TESTS=ON \
        -DSTRATA_BUILD_BENCH=ON >/dev/null
    cmake --build "$build" -j "$jobs" >/dev/null
    rm -rf "$raw"
    mkdir -p "$raw"
    echo "== ctest (every process merges its counters into a pool)"
    # %8m: a pool of 8 files per binary, merged into as processes exit,
    # so thousands of CLI runs do not leave thousands of files
    # two tests check the build, not the code, and cannot pass on this
    # one: the profile runtime exports its own symbols from the shared
    # libraries, and valgrind 3.19 cannot read clang 14's DWARF 5
    (cd "$build" && LLVM_PROFILE_FILE="$root/$raw/%8m.profraw" \
        ctest --output-on-failure -j "$jobs" \
            -E '^integration_test_(symbols|valgrind)$') || {
        echo "coverage: ctest failed; the figures would not be the suite's" >&2
        exit 1
    }
fi

shopt -s nullglob
profiles=("$raw"/*.profraw)
if [ "${#profiles[@]}" -eq 0 ]; then
    echo "coverage: no counters under $raw: run without --report" >&2
    exit 1
fi
"$profdata" merge -sparse -o "$out/all.profdata" "${profiles[@]}"

# every instrumented executable and library the suite ran
objects=()
while IFS= read -r f; do
    if "$cov" report -instr-profile "$out/all.profdata" "$f" \
        >/dev/null 2>&1; then
        if [ "${#objects[@]}" -eq 0 ]; then
            objects+=("$f") # the first is llvm-cov's BIN, the rest -object
        else
            objects+=(-object "$f")
        fi
    fi
done < <(find "$build" -type f \( -perm -u+x -o -name '*.so' -o \
    -name '*.node' \) ! -path '*/CMakeFiles/*' ! -path "$out/*")
if [ "${#objects[@]}" -eq 0 ]; then
    echo "coverage: no instrumented binary found in $build" >&2
    exit 1
fi

summary="$out/summary.txt"
: > "$summary"
printf '%-20s %10s %10s %8s   %s\n' area branches taken cover \
    "lines cover" | tee -a "$summary"
for a in "${areas[@]}"; do
    name="${a%%|*}"
    # shellcheck disable=SC2206 # the globs are meant to expand
    files=(${a#*|})
    file="$out/$(echo "$name" | tr ' /' '__').txt"
    "$cov" report -instr-profile "$out/all.profdata" "${objects[@]}" \
        "${files[@]}" > "$file"
    # TOTAL: regions (3), functions (3), lines (3), branches (3)
    awk -v name="$name" '$1 == "TOTAL" {
        b = $(NF - 2); m = $(NF - 1); lc = $(NF - 3)
        printf "%-20s %10d %10d %7.2f%%   %s\n", name, b, b - m,
            b ? 100 * (b - m) / b : 0, lc }' "$file" | tee -a "$summary"
done
echo
echo "least covered files (branch cover, missed branches):"
for a in "${areas[@]}"; do
    file="$out/$(echo "${a%%|*}" | tr ' /' '__').txt"
    awk 'NF > 12 && $1 != "TOTAL" && $1 != "Filename" && $1 !~ /^-/ {
        printf "  %-44s %8s %6s\n", $1, $NF, $(NF - 1) }' "$file" |
        sort -k2 -n | head -n 4
done
echo "per-file reports: $out/*.txt"
