#!/usr/bin/env bash
# The shared libraries export their API and nothing else: every dynamic
# symbol carries the library's own prefix (crdt_, epoch_, crdtnet_) and
# no double underscore (crdt__, epoch__ and crdtnet__ are internal), and
# every public function the archive defines is exported (a declaration
# that lost its CRDT_API/EPOCH_API/CRDTNET_API would fail here).
set -euo pipefail
S="$1"
build="$(cd "$(dirname "$S")/.." && pwd)"
fail() { echo "FAIL: $*"; exit 1; }
bad=0
check() {   # check DIR STEM PREFIX
    local so="$build/$1/libstrata_$2.so" a="$build/$1/libstrata_$2.a" p="$3"
    [ -f "$so" ] && [ -f "$a" ] || fail "no $so or $a"
    local exported wrong missing
    exported="$(nm -D --defined-only "$so" | awk 'NF == 3 { print $3 }' | sort -u)"
    [ -n "$exported" ] || fail "$so exports nothing"
    wrong="$(grep -vE "^${p}_[a-z0-9]" <<<"$exported" || true)"
    wrong+="$(grep -E '__' <<<"$exported" || true)"
    if [ -n "$wrong" ]; then
        echo "FAIL: $so exports symbols outside its API:"; echo "$wrong" | sed 's/^/  /'
        bad=1
    fi
    missing="$(nm --defined-only "$a" 2>/dev/null | awk '$2 == "T" { print $3 }' |
        grep -E "^${p}_[a-z0-9]" | grep -v '__' | sort -u |
        comm -23 - <(printf '%s\n' "$exported") || true)"
    if [ -n "$missing" ]; then
        echo "FAIL: $so hides public functions (declare them with the API macro):"
        echo "$missing" | sed 's/^/  /'
        bad=1
    fi
    echo "$so: $(wc -l <<<"$exported") symbols, all ${p}_"
}
check libcrdt crdt crdt
check libepoch epoch epoch
check net crdtnet crdtnet
[ "$bad" = 0 ] || exit 1
echo "ok: the shared libraries export only their API"
