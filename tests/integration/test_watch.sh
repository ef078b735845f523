#!/usr/bin/env bash
# test_watch.sh: `strata watch` prints the commits of other processes as
# they happen, filters by collection and document, resumes with --since
# (also across a restart of the watcher), says "everything" for a cursor
# it cannot serve, costs no CPU while idle and exits 0 on SIGINT.
# Usage: test_watch.sh PATH_TO_STRATA
set -euo pipefail

S=${1:?usage: $0 PATH_TO_STRATA}
T=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$T"
}
trap cleanup EXIT
R=$T/r

fail() { echo "FAIL: $*" >&2; exit 1; }
check() { echo "check: $*"; }
eq() { [ "$1" == "$2" ] || fail "$3: got [$1], want [$2]"; }
# wait_lines FILE N: until FILE has N lines (at most 10 s)
wait_lines() {
    for _ in $(seq 100); do
        [ "$(wc -l <"$1")" -ge "$2" ] && return 0
        sleep 0.1
    done
    fail "$1 has $(wc -l <"$1") lines, want $2: $(cat "$1")"
}
# cpu_ticks PID: user + system time in clock ticks
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

$S init "$R" >/dev/null

check "a watcher sees another process's commits, one line per document"
$S watch "$R" >"$T/all" 2>"$T/all.err" & W=$!; PIDS+=($W)
$S watch "$R" notes >"$T/coll" 2>&1 & PIDS+=($!)
$S watch "$R" notes n2 --json >"$T/doc" 2>&1 & PIDS+=($!)
sleep 0.5 # the watchers are up (none prints anything before a commit)
eq "$(cat "$T/all")" "" "nothing before a commit"
$S put "$R" notes n1 title hello
$S incr "$R" stats s views 3
printf '%s\n' '{"op":"put","coll":"notes","doc":"n2","field":"a","value":1}' \
    '{"op":"sadd","coll":"notes","doc":"n2","field":"tags","value":"x"}' \
    '{"op":"put","coll":"notes","doc":"n1","field":"body","value":"b"}' |
    $S import "$R" - >/dev/null
$S del "$R" notes n1
wait_lines "$T/all" 5
cut -d' ' -f2- "$T/all" >"$T/all.cut"
eq "$(cat "$T/all.cut")" "notes n1 title
stats s views
notes n1 body
notes n2 a,tags
notes n1 -!" "watch lines"
wait_lines "$T/coll" 4
eq "$(cut -d' ' -f2- "$T/coll" | tr '\n' '|')" \
    "notes n1 title|notes n1 body|notes n2 a,tags|notes n1 -!|" "collection filter"
wait_lines "$T/doc" 1
python3 - "$T/doc" <<'PY'
import json, sys
lines = open(sys.argv[1]).read().splitlines()
assert len(lines) == 1, lines
d = json.loads(lines[0])
assert sorted(d) == ["coll", "cursor", "doc", "fields", "whole"], d
assert (d["coll"], d["doc"], d["fields"], d["whole"]) == ("notes", "n2", ["a", "tags"], False), d
PY
# the cursor column is HEX16.SEQ and increases by one per commit
awk '{print $1}' "$T/all" | python3 -c '
import sys
c = [l.split(".") for l in sys.stdin.read().split()]
assert all(len(g) == 16 for g, _ in c), c
s = [int(x) for _, x in c]
assert s[0] + 1 == s[1] and s[1] + 1 == s[2] == s[3] - 0 and s[3] + 1 == s[4], s'

check "an idle watcher uses no CPU"
before=$(cpu_ticks $W)
sleep 3
after=$(cpu_ticks $W)
[ $((after - before)) -le 2 ] || fail "idle watcher used $((after - before)) ticks in 3 s"

check "SIGINT ends it with exit 0"
kill -INT $W
rc=0; wait $W || rc=$?
eq "$rc" 0 "watch exit code after SIGINT"
eq "$(cat "$T/all.err")" "" "watch stderr"

check "--since resumes after a line, also across a restart"
C2=$(sed -n 2p "$T/all" | cut -d' ' -f1)
$S put "$R" other x y 1   # while no watcher runs
$S watch "$R" --since "$C2" >"$T/since" 2>&1 & PIDS+=($!)
wait_lines "$T/since" 4
eq "$(cut -d' ' -f2- "$T/since" | tr '\n' '|')" \
    "notes n1 body|notes n2 a,tags|notes n1 -!|other x y|" "resumed lines"
$S put "$R" other x z 2
wait_lines "$T/since" 5
eq "$(sed -n 5p "$T/since" | cut -d' ' -f2-)" "other x z" "live after catching up"

check "a cursor of another replica says everything once"
$S init "$T/r2" >/dev/null
$S put "$T/r2" a b c 1
C_OTHER=$($S watch "$T/r2" --since 0000000000000000.0 --json &
          P=$!; sleep 1; kill -INT $P; wait $P)
C_OTHER=$(python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["cursor"])' <<<"$C_OTHER")
$S watch "$R" --since "$C_OTHER" >"$T/foreign" 2>&1 & PIDS+=($!)
wait_lines "$T/foreign" 1
sleep 0.3
eq "$(wc -l <"$T/foreign")" 1 "one line only"
grep -Eq '^[0-9a-f]{16}\.[0-9]+ \*$' "$T/foreign" || fail "foreign: $(cat "$T/foreign")"

check "bad arguments"
rc=0; $S watch "$R" --since nonsense >/dev/null 2>"$T/err" || rc=$?
eq "$rc" 1 "bad cursor exit"
grep -q "^strata: watch: bad cursor" "$T/err" || fail "bad cursor message: $(cat "$T/err")"
rc=0; $S watch "$T/nowhere" >/dev/null 2>"$T/err" || rc=$?
eq "$rc" 2 "missing replica exit"
echo "ok"
