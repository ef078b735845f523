#!/usr/bin/env bash
# A replica written by store format 1 (its state hash summed BLAKE2b):
# reading commands upgrade it and answer as before, its state hash is
# the one a format-2 replica with the same entries has, it verifies, and
# it syncs with a current peer. $STRATA_TEST_FORMAT1 downgrades a replica.
set -euo pipefail
S="$1"
F1="${STRATA_TEST_FORMAT1:?the format-1 helper (set by ctest)}"
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/strata-format.XXXXXX")"
pids=()
. "$here/support/lib.sh"
trap cleanup EXIT
cd "$work"

"$S" init A >/dev/null
sp="$("$S" status A --json | js 'd["space_id"]')"
"$S" init B --space-id "$sp" >/dev/null
"$S" member add A "$("$S" id B)"
"$S" put A notes n1 title '"hello"'
"$S" incr A notes n1 views 3
"$S" sadd A notes n1 tags '"x"'
h0="$(hash A)"
before="$("$S" get A notes n1)"

"$F1" A
[ "$("$S" get A notes n1)" = "$before" ] || fail "get after the downgrade"
[ "$(hash A)" = "$h0" ] || fail "state hash after the upgrade"
"$S" verify A >/dev/null || fail "verify after the upgrade"
check "a format-1 replica is upgraded by a read: same contents and hash, verifies"

"$F1" A
"$S" put A notes n2 title '"again"'     # a writer upgrades it too
serve a.log A; pA=$port
"$S" sync B "127.0.0.1:$pA" >/dev/null
[ "$(hash B)" = "$(hash A)" ] || fail "B and A differ after sync"
[ "$("$S" get B notes n1)" = "$before" ] || fail "B lacks n1"
check "an upgraded replica syncs with a current one"
