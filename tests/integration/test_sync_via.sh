#!/usr/bin/env bash
# Sync over pipes instead of TCP: `strata sync DIR --via CMD` runs CMD
# (here `strata serve OTHER --stdio`, in place of ssh) and syncs over its
# stdin/stdout; `strata sync --stdio` and `serve --stdio` paired through
# two FIFOs; the same report and exit codes as over TCP (a non-member
# refused: 5, also when the client's last write failed; a command that
# is not a peer: 7); bad arguments.
set -euo pipefail
S="$1"
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/strata-via.XXXXXX")"
pids=()
. "$here/support/lib.sh"
trap cleanup EXIT
cd "$work"

"$S" init A >/dev/null
sp="$("$S" status A --json | js 'd["space_id"]')"
"$S" init B --space-id "$sp" >/dev/null
"$S" init C --space-id "$sp" >/dev/null
"$S" member add A "$("$S" id B)"
"$S" put A notes a title '"from A"'
"$S" put B notes b title '"from B"'
"$S" incr B notes b n 3

# ---- --via: the command is the server ----
"$S" sync B --via "'$S' serve A --stdio" >out.txt 2>err.txt ||
    fail "sync --via exited $? ($(cat err.txt))"
grep -q "in sync" out.txt || fail "report: $(cat out.txt)"
grep -q "strata serve: session ended" err.txt || fail "server log: $(cat err.txt)"
[ "$(hash A)" = "$(hash B)" ] || fail "A and B differ after sync --via"
[ "$("$S" get A notes b n)" = "3" ] || fail "A lacks B's counter"
check "sync --via 'strata serve A --stdio' converges and reports"

"$S" put A notes a2 title '"later"'
"$S" sync B --via "'$S' serve A --stdio --quiet" --json >via.json
python3 - via.json <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
want = {"changes_sent", "changes_received", "ops_received", "snapshot_received",
        "snapshot_sent", "snapshot_entries", "rebased", "quarantined", "conflicts",
        "rejected", "in_sync", "reason", "state_hash", "busy_retry_ms",
        "equivocations", "equivocation_lost", "cut_changes"}
assert set(d) == want, set(d) ^ want
assert d["in_sync"] is True and d["changes_received"] == 1, d
PY
check "sync --via --json has the keys of a TCP sync"

# ---- the same exit codes as over TCP ----
code=0; "$S" sync C --via "'$S' serve A --stdio" >/dev/null 2>err.txt || code=$?
[ "$code" = 5 ] || fail "non-member via: exit $code ($(cat err.txt))"
grep -q "member" err.txt || fail "non-member reason: $(cat err.txt)"
[ "$("$S" get C notes a title 2>/dev/null || true)" = "" ] || fail "C got data"
check "a non-member is refused (exit 5), nothing moves"

# The refusal may come after the client's handshake is done on its side:
# it still sends its first session message while the server writes the
# error frame and exits. Its write then fails (EPIPE); the refusal,
# already in the pipe, must still be read and reported (exit 5, not the
# I/O error 7). The timing varies, so try it a number of times (it went
# wrong about one time in ten when the write error ended the session).
for i in $(seq 30); do
    code=0; "$S" sync C --via "'$S' serve A --stdio" >/dev/null 2>err.txt ||
        code=$?
    [ "$code" = 5 ] || fail "non-member via, try $i: exit $code ($(cat err.txt))"
done
check "a refused client reads the refusal even when its write failed (30 tries)"

code=0; "$S" sync B --via "echo not a peer" >/dev/null 2>err.txt || code=$?
[ "$code" = 6 ] || fail "bogus command: exit $code ($(cat err.txt))"
code=0; "$S" sync B --via "exit 3" >/dev/null 2>err.txt || code=$?
[ "$code" = 7 ] || fail "failing command: exit $code ($(cat err.txt))"
grep -q "handshake" err.txt || fail "failing command reason: $(cat err.txt)"
check "a command that talks nonsense: exit 6; one that says nothing: exit 7"

# The pipe loop has a clock: a command that trickles a byte every 100 ms
# but never completes a handshake is not "idle", yet the handshake
# timeout ends it (exit 7) long before it stops by itself (5 s).
start=$(date +%s)
code=0; "$S" sync B --timeout-ms 600 --via \
    "printf '\\000\\000\\000\\100'; for i in \$(seq 50); do sleep 0.1; printf x; done" \
    >/dev/null 2>err.txt || code=$?
[ "$code" = 7 ] || fail "trickling command: exit $code ($(cat err.txt))"
grep -q "handshake timed out after 600 ms" err.txt ||
    fail "trickling command reason: $(cat err.txt)"
[ $(( $(date +%s) - start )) -le 3 ] || fail "the handshake timeout came late"
check "the handshake timeout applies over --via"

# ---- --stdio on both ends, through two FIFOs ----
"$S" put B notes c title '"over fifos"'
mkfifo up down   # sync opens "up" first, else both wait on a reader
"$S" serve A --stdio <up >down 2>serve.err & sp_pid=$!; pids+=($sp_pid)
"$S" sync B --stdio >up <down 2>sync.err || fail "sync --stdio: $(cat sync.err)"
wait $sp_pid || fail "serve --stdio exited $?: $(cat serve.err)"
unset 'pids[-1]'
grep -q "in sync" sync.err || fail "stdio report on stderr: $(cat sync.err)"
[ "$("$S" get A notes c title)" = '"over fifos"' ] || fail "A lacks c"
check "sync --stdio and serve --stdio talk through FIFOs"

# ---- usage ----
for args in "B" "B 127.0.0.1:1 --stdio" "B --stdio --via true" "B --via ''"; do
    code=0; eval "\"\$S\" sync $args" >/dev/null 2>&1 || code=$?
    [ "$code" = 1 ] || fail "sync $args: exit $code, want 1"
done
code=0; "$S" serve A --stdio --listen 127.0.0.1:0 >/dev/null 2>&1 || code=$?
[ "$code" = 1 ] || fail "serve --stdio --listen: exit $code"
check "bad combinations are usage errors"
