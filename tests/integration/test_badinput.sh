#!/usr/bin/env bash
# Bad input and faults at the command line: each gives a clear one-line
# error with its exit code, never a crash, and loses nothing.
set -euo pipefail
S="$1"
work="$(mktemp -d "${TMPDIR:-/tmp}/strata-bad.XXXXXX")"
trap 'rm -rf "$work"' EXIT
cd "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }
expect() { # expect CODE PATTERN CMD...: exit code and a one-line error
    local want="$1" pat="$2"; shift 2
    set +e; "$@" >out.txt 2>err.txt; local got=$?; set -e
    [ "$got" = "$want" ] || { cat err.txt; fail "$* -> exit $got, want $want"; }
    [ "$(wc -l < err.txt)" -ge 1 ] && grep -q "^strata: .*$pat" err.txt ||
        { cat err.txt; fail "$*: no clear error matching '$pat'"; }
    echo "ok: exit $want: $(head -1 err.txt)"
}

"$S" init R >/dev/null
"$S" put R c keep v '"kept"'
h0="$("$S" status R --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["state_hash"])')"

# missing directory, a directory that is not a replica, a file
expect 2 "not a replica\|no such" "$S" get missing c d
mkdir empty; expect 2 "not a replica" "$S" get empty c d
echo hi > afile; expect 2 "not a replica" "$S" status afile
# usage errors
expect 1 "" "$S" put R c d
expect 1 "reserved" "$S" put R '$members' d f 1
expect 1 "" "$S" incr R c d n notanumber
# bad input files: a truncated JSON line, invalid UTF-8, wrong types
printf '{"op":"put","coll":"c","doc":"d","field":"f","value":1}\n{"op":"put","coll":' > trunc.jsonl
expect 6 "line 2" "$S" import R trunc.jsonl --atomic
printf '{"op":"put","coll":"c","doc":"d","field":"f","value":"\xff\xfe"}\n' > utf8.jsonl
expect 6 "line 1" "$S" import R utf8.jsonl --atomic
printf '{"op":"incr","coll":"c","doc":"d","field":"n","n":"seven"}\n' > types.jsonl
expect 6 "line 1" "$S" import R types.jsonl --atomic
printf '{"op":"put","coll":"c","doc":"%s","field":"f","value":1}\n' "$(head -c 100 /dev/zero | tr '\0' x)" > long.jsonl
expect 6 "line 1" "$S" import R long.jsonl --atomic
# a lens that does not parse, one of the wrong version
printf 'collection c 1 -> 2\nrename a\n' > bad.lens
expect 6 ":2:" "$S" migrate R bad.lens
printf 'collection c 7 -> 8\nrename a -> b\n' > wrong.lens
expect 6 "" "$S" migrate R wrong.lens
# a backup file that is not one
head -c 1000 /dev/urandom > junk.strata
expect 6 "damaged" "$S" restore junk.strata R2
# storage full: a capped map
big="$(head -c 60000 /dev/zero | tr '\0' y)"
set +e
code=0
for i in $(seq 1 200); do
    STRATA_MAP_MAX_MB=2 "$S" put R fill "d$i" f "\"$big\"" 2>err.txt
    code=$?
    [ "$code" = 0 ] || break
done
set -e
[ "$code" = 7 ] || { cat err.txt; fail "storage full: exit $code, want 7"; }
grep -q "^strata: put: storage full" err.txt || fail "storage full message"
echo "ok: exit 7: $(head -1 err.txt)"
# nothing was lost, the replica still opens and verifies
[ "$("$S" get R c keep v)" = '"kept"' ] || fail "data lost"
"$S" verify R >/dev/null || fail "verify after the errors"
# the rejected inputs changed nothing but the fill
"$S" get R c d >/dev/null 2>&1 && fail "a refused import wrote c/d"
# a sync with a port nobody listens on: I/O error
expect 7 "" "$S" sync R 127.0.0.1:1 --timeout-ms 2000
# a read-only filesystem (a read-only bind mount in a private mount
# namespace; root ignores permission bits, so chmod would prove nothing)
mkdir ro
"$S" init ro/R >/dev/null
"$S" put ro/R c d v '"before"'
if unshare -m true 2>/dev/null; then
    unshare -m bash -c '
        mount --bind "$1" "$1" && mount -o remount,ro,bind "$1" || exit 90
        "$2" put "$1/R" c d v 2 2>"$3/ro.err"; echo $? > "$3/ro.code"
        "$2" get "$1/R" c d v > "$3/ro.get" 2>&1; echo $? >> "$3/ro.code"
    ' _ "$work/ro" "$S" "$work" || true
    if [ -s ro.code ]; then
        [ "$(head -1 ro.code)" = 7 ] || { cat ro.err; fail "read-only: write exit $(head -1 ro.code), want 7"; }
        grep -q "^strata: .*permission denied" ro.err || fail "read-only: $(cat ro.err)"
        [ "$(sed -n 2p ro.code)" = 0 ] && [ "$(cat ro.get)" = '"before"' ] ||
            fail "read-only: reads should still work"
        echo "ok: exit 7: $(head -1 ro.err) (reads still work)"
    else
        echo "skipped: a read-only bind mount is not allowed here"
    fi
else
    echo "skipped: no private mount namespace here (read-only filesystem)"
fi
[ "$("$S" get ro/R c d v)" = '"before"' ] || fail "read-only: data changed"
echo "bad inputs: all refused with their exit code; nothing lost"
