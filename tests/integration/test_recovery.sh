#!/usr/bin/env bash
# Backup, restore, recovery from a phrase plus one peer, and rebuilding a
# corrupt replica, with real strata processes on 127.0.0.1.
set -euo pipefail
S="$1"
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/strata-recovery.XXXXXX")"
pids=()
. "$here/support/lib.sh"
trap cleanup EXIT
cd "$work"

# ---- backup during continuous writes ----
"$S" init W >/dev/null
( for i in $(seq 1 400); do "$S" put W c "d$((i % 50))" v "$i" >/dev/null || exit 1; done ) &
writer=$!
sleep 0.3
"$S" backup W w.bak --json > b.json
wait "$writer"
"$S" restore w.bak W2 >/dev/null
"$S" verify W2 >/dev/null || fail "verify of the restored replica"
[ "$(hash W2)" = "$(js 'd["state_hash"]' < b.json)" ] ||
    fail "restored state differs from the backup's recorded point"
[ "$(js 'd["ops"]' < b.json)" -gt 0 ] || fail "empty backup"
set +e; "$S" restore w.bak W2 2>/dev/null; code=$?; set -e
[ "$code" != 0 ] || fail "restore overwrote an existing replica"
check "a backup taken during writes restores to its recorded state hash"

# ---- lose the directory, recover from the phrase plus one peer ----
"$S" phrase > alice.phrase
"$S" init A --phrase-file alice.phrase >/dev/null
space="$("$S" status A --json | js 'd["space_id"]')"
"$S" init B --space-id "$space" >/dev/null
"$S" member add A "$("$S" id B)"
"$S" put A notes n1 text '"written by A before the loss"'
"$S" incr A notes n1 views 3
serve a.log A; pA=$port
"$S" sync B "127.0.0.1:$pA" >/dev/null
stop_last
old_actor="$("$S" status A --json | js 'sorted(d["vv"])[0]')"
old_seq="$("$S" status A --json | js 'd["vv"][sorted(d["vv"])[0]]')"
old_pk="$("$S" id A)"
rm -rf A                                               # the device is lost
"$S" init A --space-id "$space" --phrase-file alice.phrase >/dev/null
[ "$("$S" id A)" = "$old_pk" ] || fail "the phrase did not give the same key"
"$S" put A notes n2 text '"written before the first sync"'
serve b.log B; pB=$port
"$S" sync A "127.0.0.1:$pB" >/dev/null
[ "$("$S" get A notes n1 text)" = '"written by A before the loss"' ] ||
    fail "A's own earlier write did not come back"
"$S" put A notes n3 text '"after"'
"$S" put B notes n4 text '"after too"'
"$S" sync A "127.0.0.1:$pB" >/dev/null
[ "$(hash A)" = "$(hash B)" ] || fail "A and B differ after recovery"
"$S" status A --json > a.json
# the recovered replica writes under a new actor; the old actor's seqs
# stay where the peer saw them
python3 -c '
import json, sys
vv = json.load(sys.stdin)["vv"]
assert len(vv) >= 3, vv
assert vv[sys.argv[1]] == int(sys.argv[2]), vv
' "$old_actor" "$old_seq" < a.json || fail "an (actor, seq) was reused"
check "a lost replica recovers from its phrase and one peer, no seq reused"

# ---- a corrupt data file: detected, moved aside, rebuilt from a peer ----
stop_last
python3 - <<'PY'
import random
p = "A/data.mdb"
data = bytearray(open(p, "rb").read())
random.seed(7)
for i in range(8192, len(data), 53):
    data[i] = random.randrange(256)
open(p, "wb").write(data)
PY
set +e; "$S" verify A 2>err.txt; code=$?; set -e
[ "$code" = 6 ] || { cat err.txt; fail "verify: expected exit 6, got $code"; }
serve b2.log B; pB=$port
"$S" rebuild A "127.0.0.1:$pB" --phrase-file alice.phrase --space-id "$space" >/dev/null 2>rb.txt
ls -d A.broken-* >/dev/null || fail "the corrupt replica was not kept aside"
[ "$(hash A)" = "$(hash B)" ] || fail "rebuilt replica differs from the peer"
"$S" verify A >/dev/null || fail "verify after rebuild"
[ "$("$S" get A notes n3 text)" = '"after"' ] || fail "data lost in rebuild"
check "a corrupt replica is detected (exit 6), kept aside and rebuilt"

# ---- a readable replica rebuilt without a phrase keeps its identity ----
id_before="$("$S" id A)"
sleep 1.1 # the aside directory is named by the second
"$S" rebuild A "127.0.0.1:$pB" >/dev/null 2>rb2.txt || { cat rb2.txt; fail "rebuild without a phrase"; }
[ "$(ls -d A.broken-* | wc -l)" = 2 ] || fail "the second rebuild kept no copy aside"
! ls -d A.rebuild-* >/dev/null 2>&1 || fail "the new replica was left beside the old"
[ "$("$S" id A)" = "$id_before" ] || fail "rebuild without a phrase changed the key"
[ "$("$S" status A --json | js 'd["space_id"]')" = "$space" ] || fail "rebuild changed the space"
[ "$(hash A)" = "$(hash B)" ] || fail "rebuilt replica differs from the peer"
check "a readable replica is rebuilt with its own key pair and space"
