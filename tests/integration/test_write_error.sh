#!/usr/bin/env bash
# A write error under a running daemon: one write of LMDB's meta page
# fails (a preload, support/failwrite.c), so LMDB refuses every later
# txn of the daemon's environment. The sync that hit it fails as an I/O
# error, never as damage; the daemon notices (crdt_replica_failed()),
# stops serving the space and opens it again (a new LMDB environment,
# every page and record checked) and serves it: no restart. While it
# cannot be opened it stays out and is tried again (a reload: at once).
# The file holds every commit (verify in another process). Skipped (77)
# without the preload (the sanitizer builds).
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
    serve a.log A --metrics 127.0.0.1:0
mport="$(sed -n 's|.*metrics on http://127.0.0.1:\([0-9]*\)/metrics.*|\1|p' a.log)"
[ -n "$mport" ] || { cat a.log; fail "no metrics address"; }
"$S" sync B "127.0.0.1:$port" >/dev/null || fail "first sync"
h0="$(hash A)"

# ---- the daemon's commit of B's change fails on the meta page ----
"$S" put B c lost v 2
touch trigger
set +e; "$S" sync B "127.0.0.1:$port" >out.txt 2>err.txt; code=$?; set -e
[ ! -e trigger ] || fail "the preload did not fail a meta-page write"
[ "$code" = 7 ] || { cat err.txt; fail "sync: exit $code, want 7"; }
grep -q "I/O error" err.txt || { cat err.txt; fail "sync: no I/O error"; }
if grep -q "damaged\|corrupt" a.log; then cat a.log; fail "the daemon called it damaged"; fi
check "a failed meta-page write fails that sync as an I/O error, never as damage"

# ---- the daemon notices by itself and opens the replica again ----
wait_for a.log 'storage failed under A \(space .*LMDB refuses its environment'
wait_for a.log 'opened A again, every page and record checked: serving it'
kill -0 "$daemon" || fail "the daemon is gone"
"$S" verify A >/dev/null || fail "verify after the write error"
[ "$("$S" get A c kept v)" = "1" ] || fail "lost a committed write"
"$S" sync B "127.0.0.1:$port" >/dev/null || { cat a.log; fail "sync after the reopen"; }
[ "$("$S" get A c lost v)" = "2" ] || fail "B's change did not arrive"
h1="$(hash A)"
check "the daemon opens the replica again by itself, no restart; the change arrives"

# ---- failing again while the replica cannot be opened (its directory
# away, as a disk still failing): it stays out, not corrupt ----
"$S" put B c away v 3
mv A A.away
touch trigger
set +e; "$S" sync B "127.0.0.1:$port" >/dev/null 2>err.txt; code=$?; set -e
[ ! -e trigger ] || fail "the preload did not fail a meta-page write (2)"
[ "$code" = 7 ] || { cat err.txt; fail "sync (2): exit $code, want 7"; }
wait_for a.log 'storage failed under A' 2
kill -HUP "$daemon" # try now, not 10 s after the last open
wait_for a.log 'cannot open A again; not serving it; next try in 5 s'
if grep -q "corrupt\|damaged" a.log; then cat a.log; fail "the daemon called it corrupt"; fi
set +e; "$S" sync B "127.0.0.1:$port" >out.txt 2>err.txt; code=$?; set -e
[ "$code" != 0 ] || fail "a space not served took a sync"
# health says so while it is out; the metrics name it
rc=0; curl -s -o health.txt -w '%{http_code}' "http://127.0.0.1:$mport/healthz" > code.txt || rc=$?
[ "$(cat code.txt)" = 503 ] || { cat health.txt; fail "healthz: $(cat code.txt), want 503"; }
grep -q "storage failed; not served until it opens again" health.txt || { cat health.txt; fail "healthz does not say why"; }
curl -sf "http://127.0.0.1:$mport/metrics" > m.txt || fail "no /metrics"
grep -q '^strata_space_storage_failed{space="[0-9a-f]*"} 1$' m.txt ||
    fail "no strata_space_storage_failed"
check "while it cannot be opened the space stays out, never called corrupt; /healthz fails (503)"

# ---- the directory is back: the next try serves it, same daemon ----
mv A.away A
"$S" verify A >/dev/null || fail "verify after the second write error"
[ "$(hash A)" = "$h1" ] || fail "the state moved"
kill -HUP "$daemon"
wait_for a.log 'opened A again, every page and record checked: serving it' 2
"$S" sync B "127.0.0.1:$port" >/dev/null || { cat a.log; fail "sync after the second reopen"; }
[ "$("$S" get A c away v)" = "3" ] || fail "B's second change did not arrive"
curl -sf "http://127.0.0.1:$mport/healthz" > h.txt || fail "healthz after the reopen"
grep -qx ok h.txt || fail "healthz after the reopen: $(cat h.txt)"
curl -sf "http://127.0.0.1:$mport/metrics" > m.txt || fail "no /metrics after the reopen"
! grep -q '^strata_space_storage_failed{' m.txt ||
    fail "strata_space_storage_failed after the reopen"
[ "$("$S" get A c kept v)" = "1" ] || fail "lost a committed write"
if grep -q "damaged\|corrupt" a.log; then cat a.log; fail "the daemon called it damaged"; fi
check "a reload serves it again once it opens; every change kept"
