#!/usr/bin/env bash
# test_cli_crash.sh: kill -9 a real `strata migrate` of 200,000 documents
# and a real `strata import` at random moments. After each kill the
# replica opens and is at the old epoch or the new one, never between:
#  - old epoch, marker present ("upgrading" set): interrupted; writers get
#    busy (exit 3) until `migrate --resume` or `--abort`;
#  - old epoch, no marker: killed before the migration started;
#  - new epoch, no marker: the migration committed;
# and the documents agree with the epoch (all old field names or all new).
# An import is all or nothing, and `verify` passes after every kill.
# Usage: test_cli_crash.sh PATH_TO_STRATA [SEED]
set -euo pipefail

S=${1:?usage: $0 PATH_TO_STRATA [SEED]}
SEED=${2:-${SEED:-$(( $(date +%s) % 32768 ))}}
RANDOM=$SEED
echo "seed $SEED (rerun: $0 $S $SEED)"
T=$(mktemp -d)
BG=
cleanup() {
    if [ -n "$BG" ]; then kill -9 "$BG" 2>/dev/null || true; fi
    rm -rf "$T"
}
trap cleanup EXIT

N=200000    # documents
BATCH=50000 # lines per import: one import is one change (at most 4 MiB)
MAX_TRIES=12

fail() { echo "FAIL (seed $SEED): $*" >&2; exit 1; }
check() { echo "check: $*"; }
eq() { [ "$1" == "$2" ] || fail "$3: got [$1], want [$2]"; }
code() {
    local want=$1 got=0
    shift
    "$@" >"$T/out" 2>"$T/err" || got=$?
    [ "$got" == "$want" ] || fail "$* exited $got, want $want ($(cat "$T/err"))"
}
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# run_and_kill MAX_MS CMD...: start CMD in the background, kill -9 it after
# a random 20..MAX_MS ms; sets KILLED=1 if it was still running, else 0
run_and_kill() {
    local max=$1 ms
    shift
    ms=$(( 20 + RANDOM % (max - 19) ))
    "$@" >/dev/null 2>&1 &
    BG=$!
    sleep "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
    KILLED=0
    if kill -9 "$BG" 2>/dev/null; then KILLED=1; fi
    wait "$BG" 2>/dev/null || true
    BG=
    echo "  killed after $ms ms (still running: $KILLED)"
}

# docs_state DIR: "old" if every document has only the old field names,
# "new" if every one has only the new ones; anything else fails
docs_state() {
    $S export "$1" 2>/dev/null | python3 -c "
import json, sys
old = new = 0
for line in sys.stdin:
    d = json.loads(line)
    i = int(d['doc'][1:])
    f = d['fields']
    if f == {'name': 'Person %d' % i}:
        old += 1
    elif f == {'full_name': 'Person %d' % i, 'note': ''}:
        new += 1
    else:
        sys.exit('document %s is neither old nor new: %s' % (d['doc'], f))
if old and new:
    sys.exit('mixed: %d old and %d new documents' % (old, new))
if old + new != $N:
    sys.exit('%d documents, want $N' % (old + new))
print('old' if old else 'new')
" || fail "documents of $1 are not all old or all new"
}

# epoch_state DIR: "NUMBER MARKER" from status --json (MARKER 0 or 1),
# after checking that status opens the replica and prints no warning
epoch_state() {
    $S status "$1" --json >"$T/st.json" 2>"$T/st.err" || fail "status of $1 failed: $(cat "$T/st.err")"
    [ ! -s "$T/st.err" ] || fail "status printed on stderr: $(cat "$T/st.err")"
    json 'd["epoch"]["number"], int(d["upgrading"] is not None)' <"$T/st.json"
}

check "a replica of $N documents, imported in batches of $BATCH"
python3 - "$T" "$N" "$BATCH" <<'EOF'
import json, sys
t, n, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for b in range(n // batch):
    with open("%s/imp%d.jsonl" % (t, b), "w") as f:
        for i in range(b * batch, (b + 1) * batch):
            f.write(json.dumps({"op": "put", "coll": "contacts",
                                "doc": "p%06d" % i, "field": "name",
                                "value": "Person %d" % i}) + "\n")
# more batches, for the import kills: one collection each
for k in range(1, 5):
    with open("%s/extra%d.jsonl" % (t, k), "w") as f:
        for i in range(batch):
            f.write(json.dumps({"op": "put", "coll": "extra%d" % k,
                                "doc": "q%06d" % i, "field": "v",
                                "value": i}) + "\n")
EOF
$S init "$T/base" >/dev/null
for ((b = 0; b < N / BATCH; b++)); do
    $S import "$T/base" "$T/imp$b.jsonl" >/dev/null
done
eq "$($S status "$T/base" --json | json 'd["docs"]')" "$N" "documents"
cat >"$T/lens" <<'EOF'
collection contacts 1 -> 2
rename name -> full_name
add note string default ""
EOF

# Timing of one uninterrupted migration, to aim the kills.
cp -r "$T/base" "$T/timed"
START=$(date +%s%N)
$S migrate "$T/timed" "$T/lens" >/dev/null
MS=$(( ($(date +%s%N) - START) / 1000000 ))
rm -rf "$T/timed"
echo "  an uninterrupted migration takes $MS ms"

check "kill -9 migrate at random moments: old or new epoch, never between"
RESUMED=0 ABORTED= MAX_MS=300
for ((try = 1; try <= MAX_TRIES; try++)); do
    [ $RESUMED == 1 ] && [ -n "$ABORTED" ] && break
    K=$T/k$try
    cp -r "$T/base" "$K"
    run_and_kill "$MAX_MS" $S migrate "$K" "$T/lens"
    read -r EPOCH MARKER <<<"$(epoch_state "$K")"
    DOCS=$(docs_state "$K")
    echo "  try $try: epoch $EPOCH, marker $MARKER, documents $DOCS"
    case "$EPOCH $MARKER" in
    "0 0") eq "$DOCS" old "documents before the migration started" ;;
    "1 0") eq "$DOCS" new "documents after the migration committed"
           eq "$($S status "$K" --json | json 'd["schema"]')" "{'contacts': 2}" "schema"
           # finished too fast: aim earlier
           [ "$MAX_MS" -gt 40 ] && MAX_MS=$(( MAX_MS / 2 )) ;;
    "0 1") eq "$DOCS" old "documents of an interrupted migration"
           eq "$(json 'd["upgrading"]["target_epoch"]' <"$T/st.json")" 1 "marker target"
           LENS=$(json 'd["upgrading"]["lens"]' <"$T/st.json")
           [[ "$LENS" == *"rename name -> full_name"* ]] ||
               fail "marker lens: $(cat "$T/st.json")"
           # readers read; writers and a new migration are busy
           code 0 $S get "$K" contacts p000001
           eq "$(cat "$T/out")" '{"name":"Person 1"}' "read during the marker"
           grep -q "^strata: warning: a migration was interrupted (target epoch 1); run strata migrate $K --resume or --abort\$" "$T/err" ||
               fail "open warning: $(cat "$T/err")"
           code 3 $S put "$K" contacts p000001 name X
           code 3 $S import "$K" "$T/extra1.jsonl"
           code 3 $S migrate "$K" "$T/lens"
           grep -q "^strata: migrate: busy: a migration is in progress or was interrupted; run strata migrate $K --resume or --abort\$" "$T/err" ||
               fail "migrate busy message: $(cat "$T/err")"
           code 3 $S migrate "$K"
           if [ $RESUMED == 0 ]; then
               check "  --resume completes the migration"
               code 0 $S migrate "$K" --resume --json
               eq "$(json 'd["epoch"]["number"], d["schema"]' <"$T/out")" "1 {'contacts': 2}" "resume"
               eq "$(epoch_state "$K")" "1 0" "epoch and marker after resume"
               eq "$(docs_state "$K")" new "documents after resume"
               code 2 $S migrate "$K" --resume
               RESUMED=1
           else
               check "  --abort leaves the old epoch"
               code 0 $S migrate "$K" --abort
               grep -q '^aborted the migration to epoch 1' "$T/out" || fail "abort: $(cat "$T/out")"
               eq "$(epoch_state "$K")" "0 0" "epoch and marker after abort"
               eq "$(docs_state "$K")" old "documents after abort"
               code 2 $S migrate "$K" --abort
               ABORTED=$K
           fi
           code 0 $S put "$K" contacts p000001 name "Person 1"
           [ ! -s "$T/err" ] || fail "a warning after the marker is gone: $(cat "$T/err")"
           code 0 $S verify "$K" ;;
    *) fail "epoch $EPOCH with marker $MARKER: between epochs" ;;
    esac
    if [ "$EPOCH $MARKER" != "0 1" ]; then rm -rf "$K"; fi
done
[ $RESUMED == 1 ] || fail "no kill landed inside the migration (of $MS ms) in $MAX_TRIES tries"
[ -n "$ABORTED" ] || fail "only one kill landed inside the migration in $MAX_TRIES tries"

check "after --abort the migration can run again"
code 0 $S migrate "$ABORTED" "$T/lens"
eq "$(docs_state "$ABORTED")" new "documents after migrating again"

check "kill -9 import at random moments: all of its ops or none, verify passes"
I=$T/imp
cp -r "$T/base" "$I"
for ((try = 1; try <= 4; try++)); do
    BEFORE=$($S status "$I" --json | json 'd["ops_in_log"]')
    run_and_kill 400 $S import "$I" "$T/extra$try.jsonl" --atomic
    code 0 $S verify "$I"
    AFTER=$($S status "$I" --json | json 'd["ops_in_log"]')
    HAVE=0
    if $S get "$I" "extra$try" q000000 >/dev/null 2>&1; then HAVE=1; fi
    case "$((AFTER - BEFORE)) $HAVE" in
    "0 0") echo "  try $try: nothing imported" ;;
    "$BATCH 1")
        echo "  try $try: all $BATCH ops imported"
        eq "$($S get "$I" "extra$try" q049999 v)" 49999 "last op of the import"
        eq "$($S ls "$I" "extra$try" | wc -l)" "$BATCH" "documents imported" ;;
    *) fail "import killed: $((AFTER - BEFORE)) ops of $BATCH, first doc present: $HAVE" ;;
    esac
done
code 0 $S put "$I" contacts p000001 name again

echo "PASS test_cli_crash (seed $SEED, migration of $N documents in $MS ms)"
