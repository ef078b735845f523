#!/usr/bin/env bash
# A write error under a running daemon: one write of LMDB's meta page
# fails (a preload, support/failwrite.c), so LMDB refuses every later
# txn of the daemon's environment. The sync that hit it fails as an I/O
# error, a reload reports the space unreadable (never corrupt), the file
# holds everything up to the last commit (verify in another process),
# and a restarted daemon serves it again. Skipped (77) without the
# preload (the sanitizer builds).
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

# ---- a reload: unreadable, not corrupt ----
kill -HUP "$daemon"
for _ in $(seq 1 100); do
    grep -q "reload: cannot read" a.log && break
    sleep 0.05
done
grep -q "reload: cannot read .*restart the daemon" a.log ||
    { cat a.log; fail "the reload did not report the space unreadable"; }
if grep -q "corrupt" a.log; then cat a.log; fail "the daemon called it corrupt"; fi
check "a reload reports the space unreadable, not corrupt"

# ---- the file is sound; a new daemon serves it ----
"$S" verify A >/dev/null || fail "verify after the write error"
[ "$(hash A)" = "$h0" ] || fail "the state moved"
[ "$("$S" get A c kept v)" = "1" ] || fail "lost a committed write"
stop_last
serve a2.log A
"$S" sync B "127.0.0.1:$port" >/dev/null || fail "sync with a new daemon"
[ "$("$S" get A c lost v)" = "2" ] || fail "B's change did not arrive"
check "the file holds every commit; a restarted daemon serves it again"
