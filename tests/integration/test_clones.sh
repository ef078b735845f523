#!/usr/bin/env bash
# A copied data directory (or a backup restored twice) that writes:
# with the CLI and a daemon, the copy and its original each write the
# same seq; one sync finds the equivocation on both sides, both pick the
# same winner, the loser's write survives under a new actor, and they
# converge. Then compaction: a later clone write is not lost either.
set -euo pipefail
S="$1"
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/strata-clones.XXXXXX")"
pids=()
. "$here/support/lib.sh"
trap cleanup EXIT
cd "$work"

"$S" init A >/dev/null
"$S" put A c base v 1
cp -a A C                         # the copy: same key, same actor
"$S" put A c orig v 2             # both write seq 2 of that actor
"$S" put C c copy v 3
serve a.log A
"$S" sync C "127.0.0.1:$port" --json > s1.json 2> s1.err ||
    { cat s1.err; fail "sync of the copy failed"; }
[ "$(js 'd["in_sync"]' < s1.json)" = True ] || fail "not in sync: $(cat s1.json)"
[ "$(js 'd["equivocations"]' < s1.json)" = 1 ] || fail "not found: $(cat s1.json)"
grep -q "equivocation" s1.err || fail "no warning on the client"
for _ in $(seq 1 50); do grep -q "equivocation" a.log && break; sleep 0.1; done
grep -q "equivocation" a.log || fail "no log line in the daemon"
stop_last
[ "$(hash A)" = "$(hash C)" ] || fail "A and C differ"
for d in A C; do
    "$S" status "$d" | grep -q "^equivocations: 1$" ||
        fail "$d does not count the equivocation"
    for doc in base orig copy; do
        [ -n "$("$S" get "$d" c "$doc" v)" ] || fail "$doc lost on $d"
    done
done
[ "$("$S" id A)" = "$("$S" id C)" ] # same key pair; new actors inside
check "copy and original: found on both sides, converged, nothing lost"

# Serve A (its log in $2), sync the copy $1 with it twice, and check
# that the two converged.
meet() {
    serve "$2" A
    "$S" sync "$1" "127.0.0.1:$port" >/dev/null 2> "$1.err" ||
        { cat "$1.err"; fail "sync of $1 failed"; }
    "$S" sync "$1" "127.0.0.1:$port" >/dev/null 2>> "$1.err" ||
        { cat "$1.err"; fail "second sync of $1 failed"; }
    stop_last
    [ "$(hash A)" = "$(hash "$1")" ] || fail "A and $1 differ"
}

# a second copy writes; its original compacts before they meet
cp -a A D
"$S" put A c orig2 v 4
"$S" put D c copy2 v 5
"$S" migrate A >/dev/null               # compaction: the log is archived
meet D a2.log
for d in A D; do
    for doc in orig2 copy2; do
        [ -n "$("$S" get "$d" c "$doc" v 2>/dev/null)" ] ||
            "$S" quarantine "$d" ls | grep -q "$doc" ||
            fail "$doc is neither in $d nor in its quarantine"
    done
done
check "a copy against a compacted original: nothing lost"

# counters: the copy's increment and the original's each count once
"$S" incr A c hits n 1
cp -a A E
"$S" incr A c hits n 10
"$S" incr E c hits n 100
meet E a3.log
for d in A E; do
    [ "$("$S" get "$d" c hits n)" = 111 ] ||
        fail "$d counts $("$S" get "$d" c hits n), not 1 + 10 + 100"
done
check "a copy's increment and its original's each count once"

# registers: the loser's write is re-applied under its own first stamp,
# so the later of the two writes shows whichever version lost (under a
# newer stamp, the loser's value showed)
cp -a A F
"$S" put A c reg v '"a"'
"$S" put F c reg v '"f"'                # later, or at the same instant
meet F a4.log
for d in A F; do
    [ "$("$S" get "$d" c reg v)" = '"f"' ] ||
        fail "$d shows $("$S" get "$d" c reg v), not the later write"
done
check "a copy's register write keeps its place in time"
