#!/usr/bin/env bash
# test_damaged.sh: a damaged data.mdb never makes a command or the daemon
# die by a signal. Damage: the file truncated to half; 4 KiB of random
# bytes at several offsets and seeds; each meta page zeroed; a change's
# and a state entry's bytes changed inside sound pages. Every command
# (status, get, ls, export, put, log, verify, sync) and the daemon run
# on each copy: no exit >= 128; a corrupt replica exits 6 with "corrupt
# replica" and what to do; put never succeeds where verify finds damage;
# a zeroed meta page opens at the other one with a warning; an empty
# leaf page is refused at open; random
# bytes inside a record's value (state, log, heads) make every command
# exit 6 (records are checked at open); the daemon
# leaves a damaged space out (or stops serving it when what it is about
# to send fails its check) and keeps serving the others.
# Usage: test_damaged.sh PATH_TO_STRATA
set -euo pipefail
S="$1"
work="$(mktemp -d "${TMPDIR:-/tmp}/strata-damaged.XXXXXX")"
pids=()
. "$(dirname "$0")/support/lib.sh"
trap cleanup EXIT
cd "$work"

# ---- the replicas: O (to damage) and B in one space, G in another ----
"$S" init O >/dev/null
sp="$("$S" status O --json | js 'd["space_id"]')"
"$S" init B --space-id "$sp" >/dev/null
"$S" member add O "$("$S" id B)"
python3 -c '
for i in range(3000):
    print("{\"op\":\"put\",\"coll\":\"c\",\"doc\":\"d%d\",\"field\":\"a\",\"value\":\"%s\"}" % (i, "x" * (i % 50)))
' > in.jsonl
"$S" import O in.jsonl >/dev/null
for i in $(seq 1 10); do
    echo "{\"op\":\"put\",\"coll\":\"c\",\"doc\":\"e$i\",\"field\":\"f\",\"value\":\"needle-$i-QQQQQQQQ\"}"
done > in.jsonl
"$S" import O in.jsonl >/dev/null
"$S" init G >/dev/null
"$S" put G g one v 1
gsp="$("$S" status G --json | js 'd["space_id"]')"
serve o.log O
"$S" sync B "127.0.0.1:$port" >/dev/null
stop_last
"$S" verify O >/dev/null
# K0: a member of O's space that never synced (copied for each daemon run)
"$S" init K0 --space-id "$sp" >/dev/null
"$S" member add O "$("$S" id K0)"
"$S" verify O >/dev/null
size=$(stat -c %s O/data.mdb)
# B serves for the whole test: the damaged copies sync with it
serve b.log B; pB=$port
size=$(stat -c %s O/data.mdb)
check "a replica of $((size / 4096)) pages, its peer B, another space G (${SECONDS}s)"

# run_cmd NAME CMD...: run it; fail on a signal death; code in $code
run_cmd() {
    local name="$1"; shift
    set +e; "$@" >out.txt 2>err.txt; code=$?; set -e
    [ "$code" -lt 128 ] || fail "$case: $name died by signal $((code - 128)): $(cat err.txt)"
    case "$code" in
    0|2) ;;
    6)  grep -q "corrupt replica\|damaged\|diverged\|snapshot hash mismatch\|cannot apply the snapshot" err.txt ||
            fail "$case: $name exit 6 without saying what is damaged: $(cat err.txt)"
        ;;
    *)  fail "$case: $name exited $code: $(cat err.txt)" ;;
    esac
}

# every command on replica D; sets vcode (verify) and pcode (put)
all_commands() {
    local D="$1"
    run_cmd status "$S" status "$D"
    run_cmd status-json "$S" status "$D" --json
    run_cmd get "$S" get "$D" c d5
    run_cmd ls "$S" ls "$D" c
    run_cmd export "$S" export "$D"
    run_cmd log "$S" log "$D"
    run_cmd verify "$S" verify "$D"; vcode=$code; cp err.txt verify.err
    if [ "$vcode" = 6 ]; then
        grep -q "corrupt replica.*strata verify.*strata restore.*strata rebuild\|damaged change at\|local damage" err.txt ||
            fail "$case: verify does not say what to do: $(cat err.txt)"
    fi
    # damage to the file's structure is found at every open; damage
    # inside a value (a change's or an entry's bytes in a sound page) only
    # by reading the value: verify, and the daemon before it sends one
    structural=0
    grep -q "corrupt replica" err.txt && structural=1
    run_cmd put "$S" put "$D" c zz f 1; pcode=$code
    [ "$structural" = 0 ] || [ "$pcode" = 6 ] ||
        fail "$case: put succeeded (exit $pcode) on a replica verify finds damaged"
    run_cmd sync "$S" sync "$D" "127.0.0.1:$pB" --timeout-ms 5000
    [ "$structural" = 0 ] || [ "$code" = 6 ] ||
        fail "$case: sync of a damaged replica exited $code"
    # whatever the damage, the peer never receives any of it
    "$S" verify B >/dev/null 2>b.err || fail "$case: B received damage: $(cat b.err)"
}

# the daemon serving damaged D and sound G: never dies by a signal,
# keeps serving G; a peer of D's space gets nothing damaged. With a
# second argument: a command run once the daemon serves (damage made
# while it runs)
daemon_check() {
    local D="$1" after="${2:-}" g2 k2
    g2="g2-$RANDOM$RANDOM"; k2="k2-$RANDOM$RANDOM"
    : > d.log
    "$S" serve "$D" G --listen 127.0.0.1:0 >/dev/null 2>d.log &
    daemon=$!; pids+=($daemon); port=""
    for _ in $(seq 1 100); do
        port="$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' d.log | head -1)"
        [ -n "$port" ] && break
        kill -0 "$daemon" 2>/dev/null || break
        sleep 0.05
    done
    [ -n "$port" ] || { wait "$daemon" || code=$?; fail "$case: the daemon did not start (exit ${code:-0}): $(cat d.log)"; }
    [ -z "$after" ] || $after
    # a peer of D's space: it must never receive damaged data
    cp -a K0 "$k2"
    set +e; "$S" sync "$k2" "127.0.0.1:$port" --timeout-ms 5000 >/dev/null 2>k2.err; set -e
    "$S" verify "$k2" >/dev/null 2>&1 ||
        fail "$case: the daemon served damaged data: $(cat k2.err; "$S" verify "$k2" 2>&1)"
    # the other space is still served
    "$S" init "$g2" --space-id "$gsp" >/dev/null
    "$S" member add G "$("$S" id "$g2")"
    "$S" sync "$g2" "127.0.0.1:$port" --timeout-ms 5000 >/dev/null 2>g2.err ||
        fail "$case: the daemon stopped serving the sound space: $(cat g2.err; cat d.log)"
    [ "$("$S" get "$g2" g one v)" = 1 ] || fail "$case: G was not served"
    kill -0 "$daemon" 2>/dev/null || fail "$case: the daemon died: $(cat d.log)"
    stop_last
    rm -rf "$g2" "$k2"
}

fresh() { rm -rf D; cp -a O D; }

# ---- truncated to half ----
case=truncated
fresh
truncate -s $((size / 2)) D/data.mdb
all_commands D
[ "$vcode" = 6 ] || fail "$case: verify exit $vcode, want 6"
grep -q "truncated" err.txt || true
"$S" status D 2>err.txt && fail "$case: status succeeded"
grep -q "^strata: open D: corrupt replica: the data file is truncated" err.txt ||
    fail "$case: $(cat err.txt)"
daemon_check D
grep -q "not serving D" d.log || fail "$case: no log line for the left-out space: $(cat d.log)"
check "$case: every command exits 6 (corrupt replica), the daemon serves the other space (${SECONDS}s)"

# ---- 4 KiB of random bytes at several offsets and seeds ----
damaged=0 structural_n=0
for spec in 20:0:1 20:2048:2 50:0:2 50:2048:1 75:0:1 90:0:1 90:2048:2; do
    IFS=: read -r frac shift seed <<<"$spec"
    case="random@$frac%+$shift/seed$seed"
    fresh
    off=$(( size * frac / 100 / 4096 * 4096 + shift ))
    python3 -c '
import random, sys
off, seed = int(sys.argv[1]), int(sys.argv[2])
random.seed(seed)
with open("D/data.mdb", "r+b") as f:
    f.seek(off)
    f.write(bytes(random.randrange(256) for _ in range(4096)))
' "$off" "$seed"
    all_commands D
    [ "$vcode" = 6 ] && damaged=$((damaged + 1))
    structural_n=$((structural_n + structural))
    case "$spec" in 50:0:2|90:0:1) daemon_check D ;; esac
done
[ "$structural_n" -ge 3 ] || fail "only $structural_n of 7 random damages were found at open"
check "random 4 KiB at 7 offsets and seeds: no signal; $damaged damaged (exit 6), $structural_n of them found at open (put refused) (${SECONDS}s)"

# ---- a zeroed meta page: the other one opens, with a warning ----
for m in 0 1; do
    case="meta$m"
    fresh
    dd if=/dev/zero of=D/data.mdb bs=4096 count=1 seek=$m conv=notrunc 2>/dev/null
    "$S" status D --json >st.json 2>err.txt || fail "$case: status: $(cat err.txt)"
    grep -q "warning: D: LMDB meta page $m was damaged; restored from meta page" err.txt ||
        fail "$case: no warning: $(cat err.txt)"
    all_commands D
    [ "$vcode" = 0 ] || fail "$case: verify after the restore exit $vcode"
    [ "$pcode" = 0 ] || fail "$case: put after the restore exit $pcode"
    [ "$("$S" get D c e3 f)" = '"needle-3-QQQQQQQQ"' ] || fail "$case: data lost"
done
check "a zeroed meta page: opened at the other one with a warning; verify ok (${SECONDS}s)"

# ---- an empty leaf page in a tree (found by fuzz_pagecheck): LMDB would
# read its first node from past the pointer array; the open's page walk
# refuses it before LMDB reads it ----
case=empty-leaf
rm -rf D && mkdir D
cp "$(dirname "$0")/../fuzz/crashes/fuzz_pagecheck/restored_meta_subdb_sigbus" D/data.mdb
all_commands D
[ "$vcode" = 6 ] || fail "$case: verify exit $vcode"
grep -q "damaged page 5 (an empty leaf)" verify.err ||
    fail "$case: verify does not name the empty page: $(cat verify.err)"
check "an empty leaf page: every command exits 6 naming it, no signal (${SECONDS}s)"

# ---- a meta page whose last page number wraps the file length around
# (2^64 - 1): not a sound meta page, so nothing is "restored" from it ----
case=meta-wraps
rm -rf D && mkdir D
img="$(dirname "$0")/../fuzz/crashes/fuzz_pagecheck/meta_last_page_wraps"
cp "$img" D/data.mdb
all_commands D
[ "$vcode" = 6 ] || fail "$case: verify exit $vcode"
grep -q "both LMDB meta pages are damaged" verify.err ||
    fail "$case: verify does not refuse both meta pages: $(cat verify.err)"
cmp -s "$img" D/data.mdb || fail "$case: an open wrote into the damaged file"
check "a meta page with a wrapping last page: refused, the file left as it was (${SECONDS}s)"

# ---- a change's and a state entry's bytes changed inside sound pages ----
case=values
damage_values() {
    python3 -c '
d = bytearray(open("D/data.mdb", "rb").read())
n, i = 0, d.find(b"needle-7-QQQQQQQQ")
# in place (a daemon may have the file mapped: never truncate it)
with open("D/data.mdb", "r+b") as f:
    while i >= 0:
        f.seek(i + 9)
        f.write(bytes([d[i + 9] ^ 0x01]))
        n += 1
        i = d.find(b"needle-7-QQQQQQQQ", i + 1)
assert n >= 2, n
'
}
# every open of a replica within the page budget checks its records:
# each command refuses it (exit 6), nothing is printed as data, and
# nothing is written on top
refused_everywhere() {
    local c
    for c in "status D" "get D c d5" "get D c e7 f" "ls D c" "export D" \
             "log D" "put D c zz f 1" "incr D c e7 n 1" "del D c e7"; do
        set +e; $S $c >out.txt 2>err.txt; code=$?; set -e
        [ "$code" = 6 ] || fail "$case: $c exited $code, want 6: $(cat out.txt err.txt)"
        grep -q "^strata: open D: corrupt replica: .*run strata verify D" err.txt ||
            fail "$case: $c: $(cat err.txt)"
        [ ! -s out.txt ] || fail "$case: $c printed data from a damaged replica: $(head -c 200 out.txt)"
    done
}
fresh
damage_values
cmp -s O/data.mdb D/data.mdb && fail "$case: nothing damaged"
before="$(md5sum < D/data.mdb)"
refused_everywhere
[ "$(md5sum < D/data.mdb)" = "$before" ] || fail "$case: a command wrote to the damaged replica"
all_commands D
[ "$vcode" = 6 ] || fail "$case: verify exit $vcode, want 6"
grep -q "local damage" verify.err ||
    fail "$case: verify does not name the damage as local: $(cat verify.err)"
fresh   # the sync above may have repaired D from B: damage it again
damage_values
daemon_check D
grep -q "not serving D: its replica is corrupt" d.log ||
    fail "$case: the daemon did not leave D out at start: $(cat d.log)"
# damage made while the daemon runs: found when it reads the records
fresh
daemon_check D damage_values
grep -q "corrupt replica D .*no longer serving this space" d.log ||
    fail "$case: the daemon did not say it stops serving D: $(cat d.log)"
check "damaged values: every command refuses them (exit 6, nothing printed or written), verify names local damage; the daemon leaves D out, or stops serving it when the damage comes while it runs, and serves the other"

# ---- random bytes inside one record's value, several seeds ----
# (mdb_values.py lists each record's value bytes in the file: state
# entries, changes, heads; the page headers stay sound)
python3 "$(dirname "$0")/support/mdb_values.py" O/data.mdb > values.txt
for spec in state0:1 state0:2 state0:3 log:1 log:2 log:3 heads:1 heads:2; do
    IFS=: read -r db seed <<<"$spec"
    case="value-$db/seed$seed"
    fresh
    python3 - "$db" "$seed" <<'PY'
import random, sys
db, seed = sys.argv[1], int(sys.argv[2])
rows = [l.split() for l in open("values.txt") if l.split()[0] == db]
random.seed(seed)
_, off, n, key = random.choice(rows)
off, n = int(off), int(n)
d = bytearray(open("D/data.mdb", "rb").read())
k = random.randrange(1, min(n, 16) + 1)
at = off + random.randrange(0, n - k + 1)
for i in range(k):
    d[at + i] ^= random.randrange(1, 256)   # every byte changes
open("D/data.mdb", "wb").write(bytes(d))
PY
    before="$(md5sum < D/data.mdb)"
    refused_everywhere
    [ "$(md5sum < D/data.mdb)" = "$before" ] || fail "$case: a command wrote to the damaged replica"
    set +e; "$S" verify D >/dev/null 2>verify.err; vcode=$?; set -e
    [ "$vcode" = 6 ] || fail "$case: verify exit $vcode, want 6"
    grep -q "damaged .* at \|state hash mismatch" verify.err ||
        fail "$case: verify does not name the damage: $(cat verify.err)"
    "$S" verify B >/dev/null 2>b.err || fail "$case: B received damage: $(cat b.err)"
done
check "random bytes in one value (state, log, heads) at 8 seeds: every command exits 6 with the corrupt-replica line, prints nothing, writes nothing; verify names it"

# ---- a replica past the page budget of a plain open: its records are
# not checked at open, but `log` prints no change it cannot vouch for ----
case=big-log
"$S" init BIG >/dev/null
python3 -c '
for i in range(110000):
    print("{\"op\":\"put\",\"coll\":\"c\",\"doc\":\"d%d\",\"field\":\"a\",\"value\":\"%s\"}" % (i, "y" * (i % 60)))
' > big.jsonl
"$S" import BIG big.jsonl >/dev/null
for i in 1 2 3; do "$S" put BIG c tail$i f "$i"; done
[ "$(stat -c %s BIG/data.mdb)" -gt $((4096 * 4096)) ] || fail "$case: BIG is within the page budget"
python3 "$(dirname "$0")/support/mdb_values.py" BIG/data.mdb | awk '$1 == "log"' > big_log.txt
[ "$(wc -l < big_log.txt)" -ge 4 ] || fail "$case: too few changes"
for pick in 1 2; do   # the first change (followed by others), the last
    rm -rf BD && cp -a BIG BD
    if [ "$pick" = 1 ]; then row="$(head -1 big_log.txt)"; else row="$(tail -1 big_log.txt)"; fi
    python3 - $row <<'PY'
import sys
_, off, n, _ = sys.argv[1:5]
off, n = int(off), int(n)
with open("BD/data.mdb", "r+b") as f:
    f.seek(off + n // 2)          # inside the body
    b = f.read(1)
    f.seek(off + n // 2)
    f.write(bytes([b[0] ^ 0x20]))
PY
    set +e; "$S" log BD >out.txt 2>err.txt; code=$?; set -e
    [ "$code" = 6 ] || fail "$case/$pick: log exited $code"
    grep -q "^strata: log: corrupt replica: \(damaged change at [0-9a-f]* up to seq [0-9]* in the log\|a damaged change in this replica's own log\)" err.txt ||
        fail "$case/$pick: $(cat err.txt)"
    set +e; "$S" log BIG >good.txt 2>/dev/null; set -e
    # everything printed is a line of the sound log, in order: a prefix
    head -n "$(wc -l < out.txt)" good.txt | cmp -s - out.txt ||
        fail "$case/$pick: log printed a line the sound replica does not have"
done
check "a replica past the page budget: log refuses a damaged change before printing it (exit 6)"
echo "damaged files: no command and no daemon died by a signal"
