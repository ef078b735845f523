#!/usr/bin/env bash
# The daemon as a service, with real processes on 127.0.0.1: every log
# line has a timestamp, a level and a peer (text and JSON), --log-level
# filters, /metrics counters move after real syncs (and a live peer is
# counted), /healthz answers, scheduled backups show in the metrics, a
# config file is read with --opt=value options on top, SIGHUP reloads it
# (log level live, listen "needs a restart", a broken file is refused and
# the daemon goes on), and two replicas of one space are refused clearly.
set -euo pipefail
S="$1"
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/strata-serve.XXXXXX")"
pids=()
. "$here/support/lib.sh"
trap cleanup EXIT
cd "$work"

# metric NAME_AND_LABELS: its value in the last scrape (m.txt)
metric() { awk -v k="$1" '$1 == k { print $2 }' m.txt; }
scrape() { curl -sf "http://127.0.0.1:$mport/metrics" > m.txt; }

"$S" init A >/dev/null
sp="$("$S" status A --json | js 'd["space_id"]')"
for r in B C; do
    "$S" init "$r" --space-id "$sp" >/dev/null
    "$S" member add A "$("$S" id "$r")"
done

# ---- 1. two replicas of one space: a clear refusal ----
rc=0
"$S" serve A B --listen 127.0.0.1:0 2> two.err || rc=$?
[ "$rc" = 1 ] || fail "serve A B exited $rc"
grep -q "A and B are replicas of the same space $sp" two.err ||
    { cat two.err >&2; fail "serve A B does not say why"; }
rc=0
"$S" serve A ./A --listen 127.0.0.1:0 2> same.err || rc=$?
[ "$rc" = 1 ] && grep -q "are the same replica" same.err ||
    fail "serve A ./A not refused clearly"
check "two replicas of one space, or one twice, are refused clearly"

# ---- 2. config file, JSON logs, metrics after real syncs ----
mkdir bk
cat > a.conf <<EOF
# the daemon of A
space = A
listen = 127.0.0.1:0
log-format = json
log-level = debug
backup-dir = $work/bk
backup-every = 1
backup-keep = 2
EOF
: > a.log
"$S" serve --config=a.conf --metrics=127.0.0.1:0 >/dev/null 2> a.log &
pA=$!
pids+=($pA)
wait_for a.log '"listening on 127\.0\.0\.1:[0-9]+'
port="$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' a.log)"
mport="$(sed -n 's|.*metrics on http://127.0.0.1:\([0-9]*\)/metrics.*|\1|p' a.log)"
[ -n "$mport" ] || fail "no metrics address logged"
curl -sf "http://127.0.0.1:$mport/healthz" | grep -qx ok || fail "/healthz"
scrape
[ "$(metric "strata_changes_received_total{space=\"$sp\"}")" = 0 ] ||
    fail "counters do not start at 0"

"$S" put B docs x title '"from B"'
"$S" incr B docs x hits 3
"$S" put C docs y title '"from C"'
"$S" sync B "127.0.0.1:$port" >/dev/null
"$S" sync C "127.0.0.1:$port" >/dev/null
scrape
lab="space=\"$sp\""
[ "$(metric "strata_changes_received_total{$lab}")" -ge 3 ] ||
    fail "changes received did not move"
[ "$(metric "strata_changes_sent_total{$lab}")" -ge 3 ] ||
    fail "changes sent did not move"
[ "$(metric "strata_bytes_received_total{$lab}")" -gt 0 ] &&
    [ "$(metric "strata_bytes_sent_total{$lab}")" -gt 0 ] ||
    fail "bytes did not move"
[ "$(metric "strata_sync_sessions_total{$lab,outcome=\"ok\"}")" = 2 ] ||
    fail "not two ok sessions"
[ "$(metric "strata_merge_seconds_count{$lab}")" -ge 1 ] &&
    [ "$(metric "strata_merge_seconds_bucket{$lab,le=\"+Inf\"}")" = \
      "$(metric "strata_merge_seconds_count{$lab}")" ] ||
    fail "merge histogram inconsistent"
[ "$(metric "strata_map_used_bytes{$lab}")" -gt 0 ] &&
    [ "$(metric "strata_map_size_bytes{$lab}")" -ge \
      "$(metric "strata_map_used_bytes{$lab}")" ] ||
    fail "map size and use"
[ "$(metric "strata_reader_slots_max{$lab}")" -gt 0 ] || fail "reader slots"
[ -n "$(metric "strata_pending_changes{$lab}")" ] || fail "no pending gauge"
for m in strata_rebased_ops_total strata_quarantined_ops_total \
         strata_peers_connected strata_backup_last_timestamp_seconds; do
    [ -n "$(metric "$m{$lab}")" ] || fail "no $m"
done
# a refused client is an auth outcome of that space
"$S" init D --space-id "$sp" >/dev/null
"$S" sync D "127.0.0.1:$port" >/dev/null 2>&1 || true
scrape
[ "$(metric "strata_sync_sessions_total{$lab,outcome=\"auth\"}")" = 1 ] ||
    fail "the refused non-member is not counted"
check "metrics count changes, bytes, sessions by outcome, merges after real syncs"

# scheduled backups every second show in the metrics
for _ in $(seq 1 60); do
    scrape
    [ "$(metric "strata_backup_last_success{$lab}")" = 1 ] && break
    sleep 0.1
done
[ "$(metric "strata_backup_last_success{$lab}")" = 1 ] &&
    [ "$(metric "strata_backups_total{$lab,result=\"ok\"}")" -ge 1 ] ||
    fail "backup not in the metrics"
ls bk/*.strata >/dev/null || fail "no backup file"
check "scheduled backups: time and result in the metrics"

# a live peer link is a connected peer on both sides
"$S" serve C --listen=127.0.0.1:0 --peer "127.0.0.1:$port" \
    --log-level=warn >/dev/null 2> c.log &
pids+=($!)
ok=""
for _ in $(seq 1 100); do
    scrape
    [ "$(metric "strata_peers_connected{$lab}")" = 1 ] && { ok=1; break; }
    sleep 0.05
done
[ -n "$ok" ] || fail "the live peer is not counted as connected"
check "a live peer link counts as a connected peer"

# ---- 3. every log line: one JSON object with ts, level, peer, msg ----
python3 - a.log <<'EOF' || fail "JSON log lines"
import json, re, sys
n = peers = 0
for line in open(sys.argv[1]):
    o = json.loads(line)
    assert set(o) == {"ts", "level", "peer", "msg"}, o
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", o["ts"]), o
    assert o["level"] in ("error", "warn", "info", "debug"), o
    assert o["peer"] is None or re.fullmatch(r"127\.0\.0\.1:\d+", o["peer"]), o
    n += 1
    peers += o["peer"] is not None and "authenticated peer" in o["msg"]
assert n >= 6 and peers >= 3, (n, peers)
EOF
grep -q '"level":"warn".*handshake failed' a.log ||
    fail "the refused handshake is not a warning"
# --log-level=warn: the second daemon logged no info line
! grep -q ' info ' c.log || fail "--log-level warn let info through"
check "JSON log: every line has ts, level and peer; --log-level filters"

# ---- 4. SIGHUP reloads the config ----
sed -i 's/^log-format = json/log-format = text/; s/^log-level = debug/log-level = info/' a.conf
# an address that cannot be bound (TEST-NET, not on this host): refused,
# the daemon stays where it was
echo 'listen = 192.0.2.1:7' >> a.conf
lines=$(wc -l < a.log)
kill -HUP "$pA"
wait_for a.log 'reload: cannot listen on 192\.0\.2\.1:7; still listening on'
kill -0 "$pA" 2>/dev/null || fail "SIGHUP killed the daemon"
wait_for a.log '^[0-9T:.-]+Z info peer=- reloaded'
"$S" sync B "127.0.0.1:$port" >/dev/null # still on the old port
# another address: the listener moves live, no restart
sed -i 's/^listen = 192.0.2.1:7$/listen = 127.0.0.2:0/' a.conf
kill -HUP "$pA"
wait_for a.log 'listening on 127\.0\.0\.2:[0-9]+ \(was 127\.0\.0\.1:'"$port"'\)'
old_port=$port
port="$(sed -n 's/.*listening on 127.0.0.2:\([0-9]*\) (was.*/\1/p' a.log | tail -1)"
"$S" sync B "127.0.0.2:$port" >/dev/null || fail "sync on the new address"
rc=0; "$S" sync B "127.0.0.1:$old_port" >/dev/null 2>&1 || rc=$?
[ "$rc" != 0 ] || fail "the old address still takes syncs"
wait_for a.log 'session ended'
tail -n +"$((lines + 1))" a.log | grep -v '^{' > text.log
grep -Evq '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}\.[0-9]{3}Z (error|warn|info|debug) peer=[^ ]+ ' text.log &&
    { cat text.log >&2; fail "a text line without timestamp, level, peer"; }
grep -q 'info peer=127.0.0.1:[0-9]* session ended' text.log ||
    fail "no text session line with its peer"
echo 'bogus line' >> a.conf
kill -HUP "$pA"
wait_for a.log 'reload: .*a.conf:[0-9]+: want "key = value"; the settings in force stay'
kill -0 "$pA" 2>/dev/null || fail "a bad config on reload killed the daemon"
"$S" sync B "127.0.0.2:$port" >/dev/null
check "SIGHUP reloads: format and level live, listen moves live (an unbindable one is refused), a bad file is refused"

# ---- 5. options: unknown and bad values are usage errors ----
rc=0; "$S" serve A --listen 127.0.0.1:0 --log-level=loud 2>/dev/null || rc=$?
[ "$rc" = 1 ] || fail "bad --log-level exited $rc"
rc=0; "$S" serve A --listen=127.0.0.1:0 --nope 2>/dev/null || rc=$?
[ "$rc" = 1 ] || fail "unknown option exited $rc"
rc=0; "$S" serve --config missing.conf 2>/dev/null || rc=$?
[ "$rc" = 2 ] || fail "missing config exited $rc"
python3 -c 'print("# comment\n" * 120000, end="")' > huge.conf
rc=0; "$S" serve --config huge.conf 2> huge.err || rc=$?
[ "$rc" = 1 ] && grep -q 'config file larger than' huge.err ||
    fail "a config file over 1 MiB is not refused"
printf 'listen = 127.0.0.1:0\nspace = A\0B\n' > nul.conf
rc=0; "$S" serve --config nul.conf 2> nul.err || rc=$?
[ "$rc" = 1 ] && grep -q 'NUL byte' nul.err || fail "a NUL in the config"
"$S" serve --help | grep -q -- '--metrics HOST:PORT' || fail "help"
check "bad options, a missing, huge or NUL-holding config file are refused"

# ---- 6. the shipped unit and config start a daemon ----
unit="$here/../../contrib/strata.service"
conf="$here/../../contrib/strata.conf"
if command -v systemd-analyze >/dev/null; then
    sed "s|/usr/local/bin/strata|$S|" "$unit" > strata.service
    systemd-analyze verify ./strata.service || fail "systemd-analyze verify"
fi
mkdir -p state
sed "s|/var/lib/strata|$work/state|; s|^listen = .*|listen = 127.0.0.1:0|;
     s|^metrics = .*|metrics = 127.0.0.1:0|" "$conf" > strata.conf
"$S" init state/notes >/dev/null
exec_start="$(sed -n 's/^ExecStart=//p' "$unit")"
exec_start="${exec_start//\/usr\/local\/bin\/strata/$S}"
exec_start="${exec_start//\/etc\/strata\/strata.conf/$work/strata.conf}"
: > unit.log
$exec_start 2> unit.log &
pids+=($!)
wait_for unit.log 'listening on 127\.0\.0\.1:[0-9]+'
mport="$(sed -n 's|.*metrics on http://127.0.0.1:\([0-9]*\)/metrics.*|\1|p' unit.log)"
curl -sf "http://127.0.0.1:$mport/healthz" | grep -qx ok || fail "unit health"
check "the shipped unit verifies and its ExecStart runs the shipped config"
# the metrics endpoint moves on a reload: the new one serves, the old one
# is closed
sed -i 's|^metrics = .*|metrics = 127.0.0.2:0|' strata.conf
kill -HUP "${pids[-1]}"
wait_for unit.log 'metrics on http://127\.0\.0\.2:[0-9]+/metrics'
mport2="$(sed -n 's|.*metrics on http://127.0.0.2:\([0-9]*\)/metrics.*|\1|p' unit.log | tail -1)"
curl -sf "http://127.0.0.2:$mport2/healthz" | grep -qx ok || fail "health on the new metrics address"
curl -sf "http://127.0.0.2:$mport2/metrics" > m2.txt || fail "no /metrics on the new address"
grep -q '^strata_space_info' m2.txt || fail "no metrics on the new address"
! curl -sf "http://127.0.0.1:$mport/healthz" >/dev/null 2>&1 || fail "the old metrics address still answers"
check "a reload moves the metrics endpoint"
