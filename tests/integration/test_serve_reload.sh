#!/usr/bin/env bash
# SIGHUP applies the config's spaces, peers and limits to a running daemon,
# with a real `strata serve --config` process on 127.0.0.1:
#  - a space added to the file is served (a member syncs it), a space
#    taken out is refused, and its live session (a second daemon's peer
#    link) is ended by the server;
#  - a space kept is checked again before the daemon reads more of it:
#    a value damaged in it while the daemon runs takes it out with
#    "reload: corrupt replica", the other space goes on;
#  - a space removed and listed again is served again;
#  - limits are applied to new sessions;
#  - /metrics and /healthz follow: an added space is listed, a removed
#    one is not;
#  - a peer added gets a live link, a peer removed loses it.
# Every wait is bounded (10 s for a log line, 20 s for a sync).
set -euo pipefail
S="$1"
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/strata-reload.XXXXXX")"
pids=()
. "$here/support/lib.sh"
trap cleanup EXIT
cd "$work"

# sync_rc DIR: one bounded sync with the daemon; its exit code in $rc
sync_rc() {
    rc=0
    timeout 20 "$S" sync "$1" "127.0.0.1:$port" >/dev/null 2>sync.err || rc=$?
    [ "$rc" -lt 124 ] || fail "sync $1 did not end: exit $rc"
}

# A and G: two spaces; A2, G2 members of each that sync with the daemon
for r in A G; do
    "$S" init "$r" >/dev/null
    sp="$("$S" status "$r" --json | js 'd["space_id"]')"
    "$S" init "${r}2" --space-id "$sp" >/dev/null
    "$S" member add "$r" "$("$S" id "${r}2")"
done
"$S" put A notes a1 title '"in A"'
for i in $(seq 1 20); do
    echo "{\"op\":\"put\",\"coll\":\"g\",\"doc\":\"d$i\",\"field\":\"f\",\"value\":\"needle-$i-QQQQQQQQ\"}"
done > g.jsonl
"$S" import G g.jsonl >/dev/null
"$S" init A3 --space-id "$("$S" status A --json | js 'd["space_id"]')" >/dev/null
"$S" member add A "$("$S" id A3)"

cat > d.conf <<EOF
space = A
listen = 127.0.0.1:0
metrics = 127.0.0.1:0
EOF
: > d.log
"$S" serve --config d.conf >/dev/null 2> d.log &
pD=$!
pids+=($pD)
wait_for d.log 'listening on 127\.0\.0\.1:[0-9]+'
port="$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' d.log | head -1)"
wait_for d.log 'metrics on http://127\.0\.0\.1:[0-9]+/metrics'
mport="$(sed -n 's|.*metrics on http://127.0.0.1:\([0-9]*\)/metrics.*|\1|p' d.log | head -1)"
spA="$("$S" status A --json | js 'd["space_id"]')"
spG="$("$S" status G --json | js 'd["space_id"]')"
# listed SPACE: its replica is in /metrics
listed() {
    curl -sf "http://127.0.0.1:$mport/metrics" > m.txt || fail "no /metrics"
    grep -q "strata_space_info{space=\"$1\"" m.txt
}

sync_rc A2
[ "$rc" = 0 ] || fail "A2 could not sync A: $(cat sync.err)"
[ "$("$S" get A2 notes a1 title)" = '"in A"' ] || fail "A2 did not get A's data"
sync_rc G2
[ "$rc" != 0 ] || fail "G is served before it is in the config"
check "the config's space A is served, G is not"

# a second daemon with A3 keeps a live session with the first one
: > p.log
n_auth="$(grep -c 'authenticated peer' d.log || true)" # A2's sync logged one
"$S" serve A3 --listen 127.0.0.1:0 --peer "127.0.0.1:$port" >/dev/null 2> p.log &
pids+=($!)
# one line more than before: an earlier session's must not count
wait_for d.log 'authenticated peer' $((n_auth + 1))
check "a live peer link to A is up"

# ---- G in, A out ----
cat > d.conf <<EOF
space = G
listen = 127.0.0.1:0
metrics = 127.0.0.1:0
max-conns = 32
idle-timeout = 20
EOF
t0=$SECONDS
kill -HUP "$pD"
wait_for d.log 'reload: no longer serving .*A \(space [0-9a-f]+\); its sessions were ended'
wait_for d.log 'reload: serving G \(space [0-9a-f]+\)'
wait_for d.log 'reload: limits applied to new sessions: max-conns 32, max-handshakes [0-9]+, max-handshakes-per-addr [0-9]+, idle-timeout 20 s'
# the live session of A ended on the server's side, the link is refused
wait_for p.log 'session ended; reconnecting in'
wait_for p.log '(unknown space|connection closed during the handshake[^;]*); reconnecting in'
kill -0 "$pD" 2>/dev/null || fail "the reload killed the daemon"
sync_rc G2
[ "$rc" = 0 ] || fail "G2 could not sync the added space G: $(cat sync.err)"
[ "$("$S" get G2 g d3 f)" = '"needle-3-QQQQQQQQ"' ] || fail "G2 did not get G's data"
sync_rc A2
[ "$rc" != 0 ] || fail "A is still served after it left the config"
listed "$spG" || fail "/metrics does not list the added space G"
! listed "$spA" || fail "/metrics still lists the removed space A"
curl -sf "http://127.0.0.1:$mport/healthz" | grep -qx ok || fail "/healthz not ok"
check "SIGHUP: G served, A refused, A's live session ended ($((SECONDS - t0)) s); /metrics lists G, not A"

# ---- a value of G damaged while it is served: the next reload's check
# takes it out before the daemon reads more of it ----
python3 - <<'EOF'
d = open("G/data.mdb", "rb").read()
n, i = 0, d.find(b"needle-7-QQQQQQQQ")
with open("G/data.mdb", "r+b") as f:   # in place: the daemon maps it
    while i >= 0:
        f.seek(i + 9)
        f.write(bytes([d[i + 9] ^ 0x01]))
        n += 1
        i = d.find(b"needle-7-QQQQQQQQ", i + 1)
assert n >= 2, n
EOF
cat > d.conf <<EOF
space = G
space = A
listen = 127.0.0.1:0
metrics = 127.0.0.1:0
EOF
kill -HUP "$pD"
wait_for d.log 'reload: corrupt replica G \(space [0-9a-f]+\): damaged .*; no longer serving this space; run strata verify G'
wait_for d.log 'reload: serving A \(space [0-9a-f]+\)'
kill -0 "$pD" 2>/dev/null || fail "the damaged space killed the daemon"
sync_rc G2
[ "$rc" != 0 ] || fail "the damaged space G is still served"
sync_rc A2
[ "$rc" = 0 ] || fail "A, listed again, is not served: $(cat sync.err)"
"$S" verify A2 >/dev/null || fail "A2 got damage"
listed "$spA" || fail "/metrics does not list A, served again"
! listed "$spG" || fail "/metrics still lists G, taken out"
curl -sf "http://127.0.0.1:$mport/healthz" | grep -qx ok || fail "/healthz not ok without G"
check "a reload checks the spaces it keeps: damaged G is taken out, A listed again is served"

# ---- a peer added: the daemon keeps a live link to it; removed: ends ----
"$S" init A4 --space-id "$("$S" status A --json | js 'd["space_id"]')" >/dev/null
"$S" member add A "$("$S" id A4)"
sync_rc A4   # its member set, from A
[ "$rc" = 0 ] || fail "A4 could not sync A: $(cat sync.err)"
"$S" put A4 notes a4 title '"from A4"'
: > x.log
"$S" serve A4 --listen 127.0.0.1:0 >/dev/null 2> x.log &
pids+=($!)
wait_for x.log 'listening on 127\.0\.0\.1:[0-9]+'
xport="$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' x.log | head -1)"
echo "peer = 127.0.0.1:$xport" >> d.conf
kill -HUP "$pD"
wait_for d.log 'reload: peer links restarted: 1 address\(es\)'
wait_for x.log 'authenticated peer'
for _ in $(seq 1 100); do
    [ "$("$S" get A notes a4 title 2>/dev/null)" = '"from A4"' ] && break
    sleep 0.05
done
[ "$("$S" get A notes a4 title)" = '"from A4"' ] || fail "the added peer link did not sync"
sed -i '/^peer = /d' d.conf
kill -HUP "$pD"
wait_for d.log 'reload: peer links restarted: 0 address\(es\)'
wait_for x.log 'session ended'
kill -0 "$pD" 2>/dev/null || fail "changing the peers killed the daemon"
check "a peer added by a reload gets a live link (A4's write reached A), removed: the link ends"
echo "reload: spaces, peers and limits applied live"
