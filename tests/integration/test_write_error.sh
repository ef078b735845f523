#!/usr/bin/env bash
# A write error under a running daemon: one write of LMDB's meta page
# fails (a preload, support/failwrite.c), so LMDB refuses every later
# txn of the daemon's environment. The sync that hit it fails as an I/O
# error, a reload reports the space unreadable (never corrupt), the file
# holds everything up to the last commit (verify in another process),
# and the reload opens it again (a new LMDB environment) and serves it:
# no restart. Skipped (77) without the preload (the sanitizer builds).
set -euo pipefail
S="$1"
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/strata-werr.XXXXXX")"
pids=()
. "$here/support/lib.sh"
trap cleanup EXIT
cd "$work"
if [ -z "${STRATA_TEST_FAILWRITE:-}" ] || [ ! -f "$STRATA_TEST_FAILWRITE" ]; then
    echo "skipped: no write-failing preload in this build"
    exit 77
fi

"$S" init A >/dev/null
sp="$("$S" status A --json | js 'd["space_id"]')"
"$S" init B --space-id "$sp" >/dev/null
"$S" member add A "$("$S" id B)"
"$S" put A c kept v 1
LD_PRELOAD="$STRATA_TEST_FAILWRITE" STRATA_TEST_FAIL_META="$work/trigger" \
    serve a.log A
"$S" sync B "127.0.0.1:$port" >/dev/null || fail "first sync"
h0="$(hash A)"

# ---- the daemon's commit of B's change fails on the meta page ----
"$S" put B c lost v 2
touch trigger
set +e; "$S" sync B "127.0.0.1:$port" >out.txt 2>err.txt; code=$?; set -e
[ ! -e trigger ] || fail "the preload did not fail a meta-page write"
[ "$code" = 7 ] || { cat err.txt; fail "sync: exit $code, want 7"; }
grep -q "I/O error" err.txt || { cat err.txt; fail "sync: no I/O error"; }
# LMDB refuses every later txn of that environment: the next session
# fails too (the handshake cannot read the member set, so it fails
# closed), and nothing calls the space damaged
set +e; "$S" sync B "127.0.0.1:$port" >out.txt 2>err.txt; code=$?; set -e
[ "$code" != 0 ] || fail "second sync succeeded on a dead environment"
if grep -q "damaged" a.log; then cat a.log; fail "the daemon called it damaged"; fi
check "a failed meta-page write fails this sync and the next, never as damage"

# wait_log PATTERN: the daemon's log shows it within 10 s
wait_log() {
    for _ in $(seq 1 200); do
        grep -q "$1" a.log && return 0
        sleep 0.05
    done
    cat a.log; fail "the daemon never logged: $1"
}

# ---- a reload while the replica cannot be opened: unreadable, not corrupt
# (the directory is away, as a disk that is still failing would be) ----
mv A A.away
kill -HUP "$daemon"
wait_log "reload: cannot read A .*opening it again"
wait_log "reload: cannot open A again; not serving it"
if grep -q "corrupt" a.log; then cat a.log; fail "the daemon called it corrupt"; fi
set +e; "$S" sync B "127.0.0.1:$port" >out.txt 2>err.txt; code=$?; set -e
[ "$code" != 0 ] || fail "a space not served took a sync"
check "a reload reports the space unreadable, not corrupt, and stops serving it"

# ---- the file is sound: the next reload opens it again, same daemon ----
mv A.away A
"$S" verify A >/dev/null || fail "verify after the write error"
[ "$(hash A)" = "$h0" ] || fail "the state moved"
[ "$("$S" get A c kept v)" = "1" ] || fail "lost a committed write"
kill -HUP "$daemon"
wait_log "reload: opened A again, every page and record checked: serving it"
kill -0 "$daemon" || fail "the daemon is gone"
"$S" sync B "127.0.0.1:$port" >/dev/null || { cat a.log; fail "sync after the reopen"; }
[ "$("$S" get A c lost v)" = "2" ] || fail "B's change did not arrive"
[ "$("$S" get A c kept v)" = "1" ] || fail "lost a committed write"
check "the file holds every commit; a reload opens it again and serves it, no restart"

# ---- a reload right after a failed write (the disk sound): at once ----
"$S" put B c again v 3
touch trigger
set +e; "$S" sync B "127.0.0.1:$port" >/dev/null 2>err.txt; code=$?; set -e
[ ! -e trigger ] || fail "the preload did not fail a meta-page write (2)"
[ "$code" = 7 ] || { cat err.txt; fail "sync (2): exit $code, want 7"; }
n0="$(grep -c "opened A again" a.log)"
kill -HUP "$daemon"
for _ in $(seq 1 200); do
    [ "$(grep -c "opened A again" a.log)" -gt "$n0" ] && break
    sleep 0.05
done
[ "$(grep -c "opened A again" a.log)" -gt "$n0" ] ||
    { cat a.log; fail "the second reload did not open A again"; }
"$S" sync B "127.0.0.1:$port" >/dev/null || { cat a.log; fail "sync after the second reopen"; }
[ "$("$S" get A c again v)" = "3" ] || fail "B's second change did not arrive"
if grep -q "damaged\|corrupt" a.log; then cat a.log; fail "the daemon called it damaged"; fi
check "a failed write, a reload, and the same daemon serves the space again"
