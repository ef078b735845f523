#!/usr/bin/env bash
# Sync with real processes on 127.0.0.1: convergence of three replicas,
# a replica offline across two lens migrations, rejection beyond policy
# with quarantine, a fork healed without losing ops, a non-member
# refused, and nothing readable on the wire.
set -euo pipefail
S="$1"
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/strata-sync.XXXXXX")"
pids=()
. "$here/support/lib.sh"
trap cleanup EXIT
cd "$work"

new_space() { # new_space NAME...: first creates, others join; all members of the first
    local first="$1"; shift
    "$S" init "$first" >/dev/null
    local sp; sp="$("$S" status "$first" --json | js 'd["space_id"]')"
    for r in "$@"; do
        "$S" init "$r" --space-id "$sp" >/dev/null
        "$S" member add "$first" "$("$S" id "$r")"
    done
}

# ---- 1. three replicas, concurrent writes of every type ----
new_space A B C
serve a.log A; pA=$port
"$S" put A docs x title '"from A"'
"$S" put B docs x title '"from B"'
"$S" put C docs y n 1
"$S" incr A docs z hits 5
"$S" incr B docs z hits 7
"$S" incr C docs z hits -2
"$S" sadd A docs z tags '"a"'
"$S" sadd B docs z tags '"b"'
"$S" srem C docs z tags '"a"'
"$S" put C docs w blob '{"$bytes":"AAEC"}'
"$S" del C docs y
for round in 1 2; do
    for r in B C; do "$S" sync "$r" "127.0.0.1:$pA" >/dev/null; done
done
[ "$(hash A)" = "$(hash B)" ] && [ "$(hash B)" = "$(hash C)" ] ||
    fail "three replicas differ"
[ "$("$S" get C docs z hits)" = "10" ] || fail "counter is not 10"
check "three replicas with concurrent writes of every type converge"

# ---- 2. offline across two migrations, rejoins rebased ----
"$S" put C contacts grace name '"Grace"'      # C offline from here on
"$S" put C contacts grace age 85
printf 'collection contacts 1 -> 2\nrename name -> full_name\n' > l1
printf 'collection contacts 2 -> 3\nconvert age int -> string\nadd note string default "-"\n' > l2
"$S" put A contacts ada name '"Ada"'
"$S" migrate A l1 >/dev/null
"$S" put A contacts alan full_name '"Alan"'
"$S" migrate A l2 >/dev/null
"$S" sync B "127.0.0.1:$pA" >/dev/null
"$S" sync C "127.0.0.1:$pA" --json > c.json
[ "$(js 'd["snapshot_received"]' < c.json)" = "True" ] || fail "C was not reset"
"$S" sync B "127.0.0.1:$pA" >/dev/null
for r in A B C; do
    got="$("$S" get "$r" contacts grace)"
    [ "$got" = '{"age":"85","full_name":"Grace","note":"-"}' ] ||
        fail "$r has grace as $got"
done
[ "$(epoch A)" = "$(epoch C)" ] && [ "$(hash A)" = "$(hash C)" ] &&
    [ "$(hash A)" = "$(hash B)" ] || fail "not converged after the rebase"
check "a replica offline across two lens migrations is rebased everywhere"

# the default is kept once for the collection: every replica shows it
# on the documents that were there, none on one written afterwards
for r in A B C; do
    got="$("$S" get "$r" contacts ada)"
    [ "$got" = '{"full_name":"Ada","note":"-"}' ] || fail "$r has ada as $got"
done
"$S" put B contacts kay full_name '"Kay"'
"$S" sync B "127.0.0.1:$pA" >/dev/null
"$S" sync C "127.0.0.1:$pA" >/dev/null
for r in A B C; do
    got="$("$S" get "$r" contacts kay)"
    [ "$got" = '{"full_name":"Kay"}' ] || fail "$r has kay as $got"
done
[ "$(hash A)" = "$(hash B)" ] && [ "$(hash A)" = "$(hash C)" ] ||
    fail "not converged after a write in the new schema"
check "a lens default shows on the old documents, not on a new one"

# ---- 3. beyond policy: rejected, ops in quarantine (exit 4) ----
"$S" put C contacts hedy full_name '"Hedy"'   # C offline again
"$S" migrate A >/dev/null
"$S" migrate A >/dev/null
set +e
"$S" sync C "127.0.0.1:$pA" --max-epochs-behind 1 2>err.txt
code=$?
set -e
[ "$code" = 4 ] || { cat err.txt; fail "expected exit 4, got $code"; }
grep -q "quarantine" err.txt || fail "no quarantine hint: $(cat err.txt)"
"$S" quarantine C ls --json > q.json
[ "$(js 'len(d)' < q.json)" = "1" ] || fail "quarantine: $(cat q.json)"
grep -q hedy q.json || fail "hedy's op is not in quarantine"
[ "$(epoch A)" = "$(epoch C)" ] || fail "C did not follow the canonical epoch"
check "beyond policy: exit 4, the unsynced op listed in quarantine"

# ---- 4. a fork: both sides made an epoch while partitioned ----
new_space P Q
"$S" member add P "$("$S" id Q)" --role admin   # only admins make epochs
serve p.log P; pP=$port
"$S" put P f d1 v 1
"$S" sync Q "127.0.0.1:$pP" >/dev/null
kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true; unset 'pids[-1]'
"$S" put P f d2 v 2
"$S" put Q f d3 v 3
"$S" migrate P >/dev/null
printf 'collection f 1 -> 2\nrename v -> value\n' > lf
"$S" migrate Q lf >/dev/null
"$S" put P f d4 v 4
"$S" put Q f d5 value 5
serve p2.log P; pP=$port
"$S" sync Q "127.0.0.1:$pP" >/dev/null
"$S" sync Q "127.0.0.1:$pP" >/dev/null
[ "$(epoch P)" = "$(epoch Q)" ] || fail "fork: two epochs remain"
[ "$(hash P)" = "$(hash Q)" ] || fail "fork: states differ"
for d in d1 d2 d3 d4 d5; do
    "$S" get P f "$d" >/dev/null || fail "fork: $d lost"
done
check "a fork ends with one epoch id and no op lost"

# ---- 5. a non-member is refused; nothing readable on the wire ----
"$S" init X --space-id "$("$S" status P --json | js 'd["space_id"]')" >/dev/null
set +e
"$S" sync X "127.0.0.1:$pP" 2>err.txt
code=$?
set -e
[ "$code" = 5 ] || fail "non-member: expected exit 5, got $code"
[ "$("$S" status X --json | js 'd["ops_in_log"]')" = "0" ] || fail "data moved"
check "a non-member is refused with exit 5 and nothing moves"

marker="MARKER-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
"$S" put P secret s text "\"$marker\""
python3 "$here/support/relay.py" relay.port "$pP" capture.bin &
pids+=($!)
for _ in $(seq 1 50); do [ -s relay.port ] && break; sleep 0.1; done
"$S" sync Q "127.0.0.1:$(cat relay.port)" >/dev/null
[ "$("$S" get Q secret s text)" = "\"$marker\"" ] || fail "marker not synced"
[ -s capture.bin ] || fail "the relay captured nothing"
if grep -aq "$marker" capture.bin; then fail "marker visible on the wire"; fi
pk="$("$S" id Q)"
if grep -aq "$pk" capture.bin; then fail "public key visible on the wire"; fi
check "the marker never appears in $(stat -c %s capture.bin) bytes on the wire"

# ---- 6. the daemon pushes writes of other processes within a second ----
new_space L M
serve m.log M; pM=$port
serve l.log L --peer "127.0.0.1:$pM"; pL=$port
"$S" member add M "$("$S" id L)"
sleep 1
"$S" put L live d v '"pushed"'
ok=""
for _ in $(seq 1 40); do
    if [ "$("$S" get M live d v 2>/dev/null || true)" = '"pushed"' ]; then ok=1; break; fi
    sleep 0.1
done
[ -n "$ok" ] || { cat l.log m.log >&2; fail "write not pushed to the peer"; }
check "a daemon pushes a write made by another process to its peer"
