#!/usr/bin/env bash
# test_migrate_writers.sh: a writer started while a migration runs fails
# at once with exit 3 (it never waits on the migration's writer lock) and
# writes nothing; after the migration, writes work again.
# Usage: test_migrate_writers.sh PATH_TO_STRATA
# STRATA_BUSY_MS: the bound on a refused write's wall time, process start
# included (default 100; the sanitizer build starts processes more slowly).
set -euo pipefail
S="$1"
work="$(mktemp -d "${TMPDIR:-/tmp}/strata-migw.XXXXXX")"
pids=()
. "$(dirname "$0")/support/lib.sh"
trap cleanup EXIT
cd "$work"
limit_ms="${STRATA_BUSY_MS:-100}"

now_ms() { date +%s%3N; }

# 400,000 documents: a migration of them runs long enough (a few hundred
# ms) for several writers to start during it
"$S" init R >/dev/null
for k in 0 1 2 3; do
    python3 -c '
import sys
k = sys.argv[1]
w = sys.stdout.write
for i in range(100000):
    w("{\"op\":\"put\",\"coll\":\"c\",\"doc\":\"d%s_%d\",\"field\":\"a\",\"value\":%d}\n" % (k, i, i))
' "$k" > in.jsonl
    "$S" import R in.jsonl >/dev/null
done
rm -f in.jsonl
check "a replica of 400,000 documents"

# One migration round: puts in a loop while it runs. The migration runs
# niced, so that on a busy machine the puts get to run while it does.
busy=0 wrote=0 tries=0 round=0
: > busy.txt; : > busy_ms.txt
migrate_round() {
    local from=$1 to=$2 old=$3 new=$4
    printf 'collection c %s -> %s\nrename %s -> %s\n' "$from" "$to" "$old" "$new" > l.lens
    nice -n 10 "$S" migrate R l.lens >mig.out 2>mig.err &
    mig=$!
    pids+=($mig)
    local n=0
    while kill -0 "$mig" 2>/dev/null && [ $n -lt 400 ]; do
        n=$((n + 1)); tries=$((tries + 1))
        local t0 code dt
        t0=$(now_ms)
        set +e
        "$S" put R w "t$tries" f 1 >/dev/null 2>put.err
        code=$?
        set -e
        dt=$(( $(now_ms) - t0 ))
        case $code in
        3)  busy=$((busy + 1))
            echo "t$tries" >> busy.txt
            echo "$dt" >> busy_ms.txt
            grep -q "^strata: .*busy: a migration is in progress" put.err ||
                fail "busy put: $(cat put.err)"
            ;;
        0)  wrote=$((wrote + 1)) ;;
        *)  fail "put during the migration exited $code: $(cat put.err)" ;;
        esac
    done
    wait "$mig" || fail "migrate failed: $(cat mig.err)"
    pids=()
}
# a round may end before any put saw its marker (a loaded machine): up to
# three rounds, renaming back and forth
migrate_round 1 2 a b
[ "$busy" -ge 1 ] || migrate_round 2 3 b a
[ "$busy" -ge 1 ] || migrate_round 3 4 a b
[ "$busy" -ge 1 ] ||
    fail "no put started during a migration answered busy ($tries tries, $wrote written)"
field=$(sed -n 's/^rename .* -> //p' l.lens)

# On a loaded machine one process start alone may take longer than the
# limit: the reference is the fastest of three reads (a process that
# opens the replica and waits on nothing) timed in this run; the fastest
# busy answer must come within the limit of it, and none may come near
# the time a wait on the migration's writer lock would take.
ref=""
for _ in 1 2 3; do
    t0=$(now_ms); "$S" get R c d0_7 >/dev/null; dt=$(( $(now_ms) - t0 ))
    [ -z "$ref" ] || [ "$dt" -lt "$ref" ] && ref=$dt
done
fastest=$(sort -n busy_ms.txt | head -1)
slowest=$(sort -n busy_ms.txt | tail -1)
[ $((fastest - ref)) -lt "$limit_ms" ] ||
    fail "the fastest busy answer took $fastest ms, a read $ref ms (limit: $limit_ms ms more)"
[ "$slowest" -lt $((limit_ms * 10)) ] ||
    fail "a busy answer took $slowest ms: it waited on the migration"
check "$busy puts during the migration answered exit 3 in $fastest..$slowest ms ($wrote before or after it)"

# a refused write wrote nothing; the migration did its work
while read -r d; do
    "$S" get R w "$d" >/dev/null 2>&1 && fail "a refused put wrote w/$d"
done < busy.txt
[ "$("$S" get R c d0_7 "$field")" = 7 ] || fail "the migration did not rename to $field"
[ "$("$S" status R --json | js 'd["upgrading"]')" = None ] || fail "marker left"
"$S" put R w after f 2
[ "$("$S" get R w after f)" = 2 ] || fail "a put after the migration"
check "refused writes wrote nothing; writes work after the migration (a read: $ref ms)"
