#!/usr/bin/env bash
# How many call sites of LMDB (mdb_*) and of the allocator in the
# libraries' code (libcrdt/src, libepoch/src, net/src) the fault tests
# failed at least once. The sites are the calls the linker sends to the
# tests' wrappers (tests/support/mdbfault.c, oom.c), found in the fault
# test binaries with objdump and named FILE:LINE with addr2line; the
# ones failed are what those tests wrote under BUILD/fault-sites while
# ctest ran them (STRATA_FAULT_SITES, tests/support/faultsites.h).
#
#   scripts/fault_sites.sh [BUILD] [--list]
#
# BUILD defaults to build; --list also names every site never failed.
# A figure, never a verdict: the exit status is 0 whenever it counted.
set -euo pipefail

build="${1:-build}"
list="${2:-}"
root="$(cd "$(dirname "$0")/.." && pwd)"
sites="$build/fault-sites"

if [ ! -d "$sites" ]; then
    echo "fault_sites: no $sites (run ctest in $build first)" >&2
    exit 1
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# FILE:LINE of each address on stdin, inside our libraries' src/ only
locate() { # binary
    addr2line -e "$1" | sed -e 's/ (discriminator [0-9]*)//' |
        grep -E "^$root/(libcrdt|libepoch|net)/src/" |
        sed -e "s|^$root/||" || true
}

count() { # kind label wrapper-regex binaries...
    local kind="$1" label="$2" re="$3" bin all hit
    shift 3
    all="$tmp/$kind.all"
    hit="$tmp/$kind.hit"
    : > "$all"
    : > "$hit"
    for bin in "$@"; do
        bin="$build/tests/$bin"
        [ -x "$bin" ] || continue
        # the call instructions to the wrappers (a tail call's return
        # address is its caller's, so only calls are counted)
        objdump -d --no-show-raw-insn "$bin" |
            awk -v re="call +[0-9a-f]+ <($re)>" \
                '$0 ~ re { a = $1; sub(":", "", a); print "0x" a }' |
            locate "$bin" >> "$all"
    done
    # one addr2line per binary
    cat "$sites/$kind".* 2>/dev/null | sort -u > "$tmp/$kind.raw" || true
    for bin in $(cut -d' ' -f1 "$tmp/$kind.raw" | sort -u); do
        awk -v b="$bin" '$1 == b { print $2 }' "$tmp/$kind.raw" |
            locate "$bin" >> "$hit"
    done
    sort -u -o "$all" "$all"
    sort -u -o "$hit" "$hit"
    local n_all n_hit
    n_all=$(wc -l < "$all")
    n_hit=$(comm -12 "$all" "$hit" | wc -l)
    awk -v l="$label" -v h="$n_hit" -v a="$n_all" 'BEGIN {
        printf "%s: %d of %d call sites in src/ failed at least once (%.1f%%)\n",
               l, h, a, a ? 100 * h / a : 0 }'
    if [ "$list" = "--list" ]; then
        comm -23 "$all" "$hit" | sed -e 's/^/  never failed: /'
    fi
}

mdb='__wrap_mdb_(txn_begin|txn_commit|get|put|del|drop|cursor_open|cursor_get|cursor_put|cursor_del)'
count mdb "LMDB calls" "$mdb" \
    libcrdt_test_mdb_faults libepoch_test_mdb_faults net_test_mdb_faults
count alloc "allocations" '__wrap_(malloc|calloc|realloc)' \
    libcrdt_test_oom libcrdt_test_oom_seq libcrdt_test_oom_api \
    libepoch_test_oom net_test_oom
