#!/usr/bin/env bash
# A replica whose log holds format-1 changes (support/format1_store.mdb.gz:
# the data file of a replica written by the code before change format 2:
# init, put title "hi", text "Hello" + " world", delete the "H", incr
# views 3) opens, reads, verifies, writes format-2 changes on top of its
# format-1 chain, and syncs both ways with a current replica, which then
# serves the format-1 changes on to a third.
set -euo pipefail
S="$1"
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/strata-chformat.XXXXXX")"
pids=()
. "$here/support/lib.sh"
trap cleanup EXIT
cd "$work"

mkdir -m 700 A
gzip -dc "$here/support/format1_store.mdb.gz" > A/data.mdb
want='{"body":"ello world","title":"hi","views":3}'
[ "$("$S" get A notes n1)" = "$want" ] || fail "get on the format-1 store"
[ "$(hash A)" = 1e28b92e2df41e91e2f043279e8a1dd9899b8c943e1b1ae4a04ee6c2323f43e3 ] ||
    fail "state hash of the format-1 store"
"$S" verify A >/dev/null || fail "verify of the format-1 store"
check "a store of format-1 changes opens, reads and verifies"

sp="$("$S" status A --json | js 'd["space_id"]')"
"$S" init B --space-id "$sp" >/dev/null
"$S" init C --space-id "$sp" >/dev/null
"$S" member add A "$("$S" id B)"          # format 2 on a format-1 chain
"$S" member add A "$("$S" id C)"
"$S" text A notes n1 body insert 0 "J"
"$S" verify A >/dev/null || fail "verify after format-2 writes"
serve a.log A; pA=$port
"$S" sync B "127.0.0.1:$pA" >/dev/null
[ "$(hash B)" = "$(hash A)" ] || fail "B and A differ after sync"
[ "$("$S" get B notes n1)" = '{"body":"Jello world","title":"hi","views":3}' ] ||
    fail "B's copy"
"$S" verify B >/dev/null || fail "verify B"
check "it syncs with a current replica: format-1 and format-2 changes"

"$S" text B notes n1 body insert 11 "!"
"$S" sync B "127.0.0.1:$pA" >/dev/null
[ "$(hash B)" = "$(hash A)" ] || fail "A and B differ after B's write"
stop_last
serve b.log B; pB=$port
"$S" sync C "127.0.0.1:$pB" >/dev/null
[ "$(hash C)" = "$(hash A)" ] || fail "C differs"
[ "$("$S" get C notes n1)" = '{"body":"Jello world!","title":"hi","views":3}' ] ||
    fail "C's copy"
"$S" verify C >/dev/null || fail "verify C"
check "the format-1 changes are served on, unchanged, by a replica that merged them"
