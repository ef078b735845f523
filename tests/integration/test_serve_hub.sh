#!/usr/bin/env bash
# One strata serve holding 1,000 live sessions from a load generator
# (strata-hubload: one process, one event loop of crdtnet_peer clients)
# while a member's `strata sync` and a live subscriber still work: the
# daemon's event loop serves everyone, nobody waits on the crowd, the
# sessions stay connected, and they all end cleanly on SIGTERM.
set -euo pipefail
S="$1"
H="${STRATA_HUBLOAD:?set STRATA_HUBLOAD to the strata-hubload binary}"
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/strata-hub.XXXXXX")"
pids=()
. "$here/support/lib.sh"
trap cleanup EXIT
cd "$work"

N=1000
"$S" init A >/dev/null
sp="$("$S" status A --json | js 'd["space_id"]')"
for r in I B W; do
    "$S" init "$r" --space-id "$sp" >/dev/null
    "$S" member add A "$("$S" id "$r")"
done
"$S" put A docs hello text '"from the hub"'
serve a.log A; pA=$port
daemon_pid=$daemon

# the load: N idle live sessions sharing replica I, and W subscribed;
# its commands come through a fifo, its answers go to load.out
mkfifo cmd
"$H" "127.0.0.1:$pA" --idle I --idle-sessions "$N" --sub W \
    < cmd > load.out 2> load.err &
load=$!
pids+=($load)
exec 3> cmd
for _ in $(seq 1 600); do     # at most 60 s
    grep -q '^connected' load.out && break
    sleep 0.1
done
grep -q "^connected $((N + 1)) failed 0$" load.out ||
    { cat load.out load.err >&2; tail -5 a.log >&2; fail "the load did not connect: $(cat load.out)"; }
fds=$(ls /proc/"$daemon_pid"/fd | wc -l)
[ "$fds" -gt "$N" ] || fail "the daemon holds $fds descriptors, not $N connections"
[ "$(ls /proc/"$daemon_pid"/task | wc -l)" -lt 8 ] ||
    fail "a thread per connection: $(ls /proc/"$daemon_pid"/task | wc -l) threads"
check "one daemon holds $((N + 1)) live sessions in a few threads"

# a member syncs while the crowd is connected: it gets the data, soon
start=$(date +%s%N)
"$S" sync B "127.0.0.1:$pA" --json > b.json
ms=$(( ($(date +%s%N) - start) / 1000000 ))
[ "$(js 'd["in_sync"]' < b.json)" = "True" ] || fail "sync: $(cat b.json)"
[ "$("$S" get B docs hello text)" = '"from the hub"' ] || fail "B lacks the data"
[ "$ms" -lt 10000 ] || fail "the sync took $ms ms"
check "a strata sync succeeds in $ms ms while $((N + 1)) sessions are held"

# its change reaches the live subscriber through the daemon
echo mark >&3
"$S" put B docs news text '"pushed"'
"$S" sync B "127.0.0.1:$pA" >/dev/null
echo "report 0 5000" >&3
for _ in $(seq 1 100); do
    grep -q '^lat' load.out && break
    sleep 0.1
done
grep -q '^lat 1 ' load.out || fail "the subscriber did not receive the change: $(grep '^lat' load.out)"
check "a change synced by one member is pushed to a live subscriber"

# all still there
echo count >&3
for _ in $(seq 1 50); do
    grep -q '^live' load.out && break
    sleep 0.1
done
grep -q "^live $((N + 1))$" load.out || fail "sessions lost: $(grep '^live' load.out)"
check "every session is still connected"

# SIGTERM: every session ends with its final message, within seconds
kill "$daemon_pid"
for _ in $(seq 1 100); do
    kill -0 "$daemon_pid" 2>/dev/null || break
    sleep 0.1
done
! kill -0 "$daemon_pid" 2>/dev/null || fail "the daemon did not stop within 10 s"
grep -q "stopped" a.log || fail "no clean stop: $(tail -3 a.log)"
echo quit >&3
exec 3>&-
wait "$load" 2>/dev/null || true
check "the daemon stops cleanly with $((N + 1)) sessions"
