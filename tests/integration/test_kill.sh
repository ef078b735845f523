#!/usr/bin/env bash
# Crash loops with real processes: SIGKILL at random moments during
# import, migrate, sync and serve (KILLS times each, default 10; set
# STRATA_KILLS for a soak). After every kill the replica opens, verify
# passes, and every write a command reported as committed is there.
set -euo pipefail
S="$1"
kills="${STRATA_KILLS:-10}"
seed="${2:-$(( $(date +%s) % 100000 ))}"
echo "test_kill: seed $seed, $kills kills per command (replay: $0 STRATA $seed)"
RANDOM=$seed
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/strata-kill.XXXXXX")"
pids=()
. "$here/support/lib.sh"
fail() { echo "FAIL (seed $seed): $*" >&2; exit 1; }
trap cleanup EXIT
cd "$work"

nap() { sleep "0.0$(( RANDOM % 9 ))$(( RANDOM % 10 ))"; }   # 0..90 ms
committed=()   # "DIR DOC VALUE" of every put that returned 0
put_ok() {     # put_ok DIR DOC VALUE: a write reported committed
    "$S" put "$1" ledger "$2" v "$3" >/dev/null && committed+=("$1 $2 $3")
}
# One export per replica, not one `get` per write: the list grows to 100
# writes, checked after each of 80 kills.
check_replica() { # the replica opens, verifies, holds its committed puts
    timeout 60 "$S" verify "$1" >/dev/null 2>v.err || { cat v.err; fail "verify $1 failed or took over 60 s"; }
    local d missing
    for d in $(printf '%s\n' "${committed[@]}" | awk 'NF { print $1 }' | sort -u); do
        "$S" export "$d" >"export.$d" 2>v.err || { cat v.err; fail "export $d failed"; }
    done
    missing="$(printf '%s\n' "${committed[@]}" | python3 -c '
import json, sys
held = {}
for line in sys.stdin:
    if not line.strip():
        continue
    d, doc, val = line.split()
    if d not in held:
        held[d] = {}
        for rec in open("export." + d):
            o = json.loads(rec)
            if o["coll"] == "ledger":
                held[d][o["doc"]] = o["fields"].get("v")
    v = held[d].get(doc)
    if (v if isinstance(v, str) else json.dumps(v)) != val:
        print(doc + "=" + val + " from " + d)
        break
')"
    [ -z "$missing" ] || fail "committed write $missing missing"
}

# ---- import ----
"$S" init I >/dev/null
python3 -c '
import json
for i in range(20000):
    print(json.dumps({"op":"put","coll":"bulk","doc":"d%d" % i,"field":"v","value":i}))
' > bulk.jsonl
for k in $(seq 1 "$kills"); do
    before="$("$S" status I --json | js 'd["ops_in_log"]')"
    "$S" import I bulk.jsonl --atomic >/dev/null 2>&1 &
    p=$!; nap; kill -9 "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true
    after="$("$S" status I --json | js 'd["ops_in_log"]')"
    [ "$after" = "$before" ] || [ "$after" = $((before + 20000)) ] ||
        fail "import was half applied: $before -> $after"
    put_ok I "i$k" "$k"
    check_replica I
done
echo "ok: $kills kills during import: all or nothing, committed writes kept"

# ---- migrate ----
"$S" init M >/dev/null
python3 -c '
import json
for i in range(30000):
    print(json.dumps({"op":"put","coll":"c","doc":"d%d" % i,"field":"a","value":i}))
' > m.jsonl
"$S" import M m.jsonl >/dev/null
mid=0
for k in $(seq 1 "$kills"); do
    v="$("$S" status M --json | js 'd["schema"].get("c", 1)')"
    if [ $((v % 2)) = 1 ]; then from=a; to=b; else from=b; to=a; fi
    printf 'collection c %d -> %d\nrename %s -> %s\n' "$v" $((v + 1)) "$from" "$to" > lens
    "$S" migrate M lens >/dev/null 2>&1 &
    p=$!; nap; kill -9 "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true
    "$S" status M --json > st.json
    up="$(js 'd["upgrading"] is not None' < st.json)"
    nv="$(js 'd["schema"].get("c", 1)' < st.json)"
    if [ "$up" = True ]; then
        mid=$((mid + 1))
        [ "$nv" = "$v" ] || fail "marker present but the epoch moved"
        set +e; "$S" put M ledger busy v 1 >/dev/null 2>&1; code=$?; set -e
        [ "$code" = 3 ] || fail "a write during an interrupted migration: exit $code"
        if [ $((RANDOM % 2)) = 0 ]; then
            "$S" migrate M --resume >/dev/null; nv=$((v + 1))
        else
            "$S" migrate M --abort >/dev/null
        fi
    fi
    field="$([ $((nv % 2)) = 1 ] && echo a || echo b)"
    "$S" get M c d12345 "$field" >/dev/null || fail "d12345.$field missing at version $nv"
    put_ok M "m$k" "$k"
    check_replica M
done
echo "ok: $kills kills during migrate ($mid mid-transaction): old or new epoch, never between"

# ---- sync (the client killed) and serve (the daemon killed) ----
"$S" init A >/dev/null
space="$("$S" status A --json | js 'd["space_id"]')"
"$S" init B --space-id "$space" >/dev/null
"$S" member add A "$("$S" id B)"
serve a.log A
for k in $(seq 1 "$kills"); do
    put_ok A "a$k" "$k"
    put_ok B "b$k" "$k"
    "$S" sync B "127.0.0.1:$port" >/dev/null 2>&1 &
    p=$!; nap; kill -9 "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true
    check_replica B
done
echo "ok: $kills kills during sync"
for k in $(seq 1 "$kills"); do
    put_ok A "s$k" "$k"
    timeout 30 "$S" sync B "127.0.0.1:$port" >/dev/null 2>&1 &
    p=$!; nap; kill -9 "$daemon" 2>/dev/null || true
    wait "$daemon" 2>/dev/null || true
    rc=0; wait "$p" 2>/dev/null || rc=$?
    [ "$rc" != 124 ] || fail "kill $k: a sync with a killed daemon did not end in 30 s"
    check_replica A
    serve a.log A
done
timeout 30 "$S" sync B "127.0.0.1:$port" >/dev/null || fail "sync after the kills (exit $?)"
timeout 30 "$S" sync B "127.0.0.1:$port" >/dev/null || fail "second sync after the kills (exit $?)"
[ "$("$S" status A --json | js 'd["state_hash"]')" = \
  "$("$S" status B --json | js 'd["state_hash"]')" ] || fail "A and B differ at the end"
echo "ok: $kills kills of the daemon; A and B converge afterwards"
echo "test_kill: $((kills * 4)) kills survived, 0 committed writes lost"
