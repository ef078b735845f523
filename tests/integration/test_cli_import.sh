#!/usr/bin/env bash
# test_cli_import.sh: `strata import --atomic` of 100,000 JSON lines is one
# change, fast, and all or nothing; a streamed import (the default) of any
# size is one change per 10,000 lines, stops at a bad line keeping the
# lines before it, and resumes with --from-line.
# Usage: test_cli_import.sh PATH_TO_STRATA
set -euo pipefail

S=${1:?usage: $0 PATH_TO_STRATA}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
R=$T/r
N=100000

fail() { echo "FAIL: $*" >&2; exit 1; }
check() { echo "check: $*"; }
eq() { [ "$1" == "$2" ] || fail "$3: got [$1], want [$2]"; }
field() { python3 -c "import json,sys; print(json.load(sys.stdin)[sys.argv[1]])" "$1"; }

check "generate $N lines"
python3 - "$T/ops.jsonl" "$N" <<'EOF'
import json, sys
path, n = sys.argv[1], int(sys.argv[2])
with open(path, "w") as f:
    for i in range(n):
        doc = "d%05d" % (i // 4)
        k = i % 4
        if k == 0:
            op = {"op": "put", "coll": "items", "doc": doc, "field": "name",
                  "value": "item %d" % i}
        elif k == 1:
            op = {"op": "incr", "coll": "items", "doc": doc, "field": "qty",
                  "n": i}
        elif k == 2:
            op = {"op": "sadd", "coll": "items", "doc": doc, "field": "tags",
                  "value": "t%d" % (i % 7)}
        else:
            op = {"op": "put", "coll": "items", "doc": doc, "field": "price",
                  "value": i / 100}
        f.write(json.dumps(op) + "\n")
        if i == 1000:
            f.write("\n")  # blank lines are skipped
EOF

$S init "$R" >/dev/null
# init records the creator in the member set: one change of one op
BASE_OPS=$($S status "$R" --json | field ops_in_log)
BASE_CHANGES=$($S log "$R" | wc -l)

check "import $N lines in one transaction, in under 30 s"
START=$(date +%s.%N)
$S import "$R" "$T/ops.jsonl" --atomic --json >"$T/import.json"
END=$(date +%s.%N)
SECS=$(python3 -c "print(round($END - $START, 2))")
echo "  import of $N lines took $SECS s"
python3 -c "import sys; sys.exit(0 if $SECS < 30 else 1)" || fail "import took $SECS s"
eq "$(field ops <"$T/import.json")" "$N" "ops imported"
eq "$(field first_seq <"$T/import.json")" "$((BASE_OPS + 1))" "first_seq"
eq "$(field last_seq <"$T/import.json")" "$((BASE_OPS + N))" "last_seq"

check "status and log: $N more ops, ONE more change"
$S status "$R" --json >"$T/status.json"
eq "$(field ops_in_log <"$T/status.json")" "$((BASE_OPS + N))" "ops_in_log"
eq "$(field docs <"$T/status.json")" "$((N / 4))" "docs"
eq "$($S log "$R" | wc -l)" "$((BASE_CHANGES + 1))" "changes in the log"
$S log "$R" >"$T/log.txt"
tail -1 "$T/log.txt" | grep -q " ops=$N " || fail "the import is not one change of $N ops: $(tail -1 "$T/log.txt")"
$S log "$R" --json >"$T/log.jsonl"
tail -1 "$T/log.jsonl" | python3 -c "
import json, sys
d = json.load(sys.stdin)
assert len(d['ops']) == $N and d['last_seq'] - d['seq'] + 1 == $N
assert d['ops'][0] == {'op': 'put', 'coll': 'items', 'doc': 'd00000', 'field': 'name', 'value': 'item 0'}, d['ops'][0]
assert d['ops'][1]['n'] == 1
"

check "a sample of values"
eq "$($S get "$R" items d00000)" '{"name":"item 0","price":0.03,"qty":1,"tags":["t2"]}' "d00000"
eq "$($S get "$R" items d12345 name)" '"item 49380"' "d12345 name"
eq "$($S get "$R" items d12345 qty)" '49381' "d12345 qty"
eq "$($S get "$R" items d24999 price)" '999.99' "d24999 price"
eq "$($S ls "$R" items | wc -l)" "$((N / 4))" "ls items"
eq "$($S export "$R" | wc -l)" "$((N / 4))" "export lines"

check "a bad line 50,000: exit 6 with its line number, nothing committed"
HASH=$(field state_hash <"$T/status.json")
python3 - "$T/ops.jsonl" "$T/bad.jsonl" <<'EOF'
import sys
lines = open(sys.argv[1]).read().splitlines()
lines = [l for l in lines if l]          # no blank line: line numbers exact
lines[49999] = '{"op":"put","coll":"items","doc":"x"'
open(sys.argv[2], "w").write("\n".join(lines) + "\n")
EOF
rc=0
$S import "$R" "$T/bad.jsonl" --atomic 2>"$T/err" || rc=$?
eq "$rc" 6 "exit code"
grep -q '^strata: import: line 50000: ' "$T/err" || fail "error: $(cat "$T/err")"
eq "$(wc -l <"$T/err")" 1 "one-line error"
$S status "$R" --json >"$T/after.json"
eq "$(field state_hash <"$T/after.json")" "$HASH" "state hash after a failed import"
eq "$(field ops_in_log <"$T/after.json")" "$((BASE_OPS + N))" "ops_in_log after a failed import"

check "other bad lines: wrong type, reserved collection, unknown op"
for line in '{"op":"incr","coll":"items","doc":"d00000","field":"name","n":1}' \
            '{"op":"put","coll":"$members","doc":"x","field":"member","value":true}' \
            '{"op":"frob","coll":"items","doc":"x","field":"f"}' \
            '{"op":"incr","coll":"items","doc":"x","field":"f","n":1.5}' \
            '{"op":"put","coll":"items","doc":"x","field":"f"}' \
            '[1,2]'; do
    rc=0
    printf '{"op":"put","coll":"items","doc":"new","field":"f","value":1}\n%s\n' "$line" |
        $S import "$R" - --atomic 2>"$T/err" || rc=$?
    eq "$rc" 6 "exit code for $line"
    grep -q '^strata: import: line 2: ' "$T/err" || fail "error: $(cat "$T/err")"
done
rc=0
$S get "$R" items new >/dev/null 2>&1 || rc=$?
eq "$rc" 2 "nothing from the failed imports"

check "stdin, del, and a missing file"
printf '{"op":"del","coll":"items","doc":"d00000"}\n{"op":"del","coll":"items","doc":"d00001","field":"tags"}\n' |
    $S import "$R" - >"$T/out"
eq "$(cat "$T/out")" "imported 2 ops" "summary"
rc=0; $S get "$R" items d00000 >/dev/null 2>&1 || rc=$?
eq "$rc" 2 "deleted doc"
eq "$($S get "$R" items d00001)" '{"name":"item 4","price":0.07,"qty":5}' "deleted field"
rc=0; $S import "$R" "$T/nosuchfile" 2>/dev/null || rc=$?
eq "$rc" 2 "missing input file"

check "streaming (the default): 150,000 lines, over one change's limits, as 15 changes in order"
S2=$T/s2
$S init "$S2" >/dev/null
python3 - "$T/big.jsonl" <<'EOF'
import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(150000):
        f.write(json.dumps({"op": "put", "coll": "big", "doc": "d%d" % i,
                            "field": "v", "value": "%030d" % i}) + "\n")
EOF
rc=0; $S import "$S2" "$T/big.jsonl" --atomic 2>"$T/err" || rc=$?
eq "$rc" 6 "--atomic refuses one change over the limits"
$S import "$S2" "$T/big.jsonl" --json >"$T/big.json"
eq "$(field ops <"$T/big.json")" 150000 "ops of the streamed import"
eq "$(field changes <"$T/big.json")" 15 "changes of the streamed import"
eq "$($S get "$S2" big d149999 v)" '"000000000000000000000000149999"' "the last line applied"
eq "$($S log "$S2" | wc -l)" 16 "one change per 10,000 lines (and init's own)"

check "a bad line stops a streamed import: the lines before it stay, --from-line resumes"
S3=$T/s3
$S init "$S3" >/dev/null
python3 - "$T/big.jsonl" "$T/bad2.jsonl" <<'EOF'
import sys
lines = open(sys.argv[1]).read().splitlines()
lines[123455] = '{"op":"put","coll":"big"'
open(sys.argv[2], "w").write("\n".join(lines) + "\n")
EOF
rc=0; $S import "$S3" "$T/bad2.jsonl" 2>"$T/err" || rc=$?
eq "$rc" 6 "exit code at a bad line"
grep -q '^strata: import: line 123456: .*resume with --from-line 123456$' "$T/err" ||
    fail "error: $(cat "$T/err")"
opsof() { $S status "$1" --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["ops_in_log"], d["state_hash"])'; }
eq "$(opsof "$S3" | cut -d' ' -f1)" $((123455 + 1)) "the lines before the bad one are imported (and init's op), nothing after"
sed -i '123456s/.*/{"op":"put","coll":"big","doc":"d123455","field":"v","value":"000000000000000000000000123455"}/' "$T/bad2.jsonl"
$S import "$S3" "$T/bad2.jsonl" --from-line 123456 >/dev/null
eq "$(opsof "$S3" | cut -d' ' -f1)" "$(opsof "$S2" | cut -d' ' -f1)" "ops after resuming"
eq "$($S export "$S3" | md5sum)" "$($S export "$S2" | md5sum)" \
    "the resumed import holds what the uninterrupted one does"

echo "PASS test_cli_import ($N lines in $SECS s)"
