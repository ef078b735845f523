#!/usr/bin/env bash
# test_cli_migrate.sh: `strata migrate` with a lens file and as a pure
# compaction, `strata epochs`, and the epoch fields of `status`; lens files
# that do not parse or do not fit change nothing. Also `verify` and an
# empty `quarantine`. Usage: test_cli_migrate.sh PATH_TO_STRATA
set -euo pipefail

S=${1:?usage: $0 PATH_TO_STRATA}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
R=$T/r

fail() { echo "FAIL: $*" >&2; exit 1; }
check() { echo "check: $*"; }
# eq ACTUAL EXPECTED WHAT
eq() { [ "$1" == "$2" ] || fail "$3: got [$1], want [$2]"; }
# code WANT CMD...: run CMD, expect exit code WANT; stdout in $T/out,
# stderr in $T/err
code() {
    local want=$1 got=0
    shift
    "$@" >"$T/out" 2>"$T/err" || got=$?
    [ "$got" == "$want" ] || fail "$* exited $got, want $want ($(cat "$T/err"))"
}
# one_line_error PREFIX: stderr is one line starting "strata: PREFIX"
one_line_error() {
    [ "$(wc -l <"$T/err")" == 1 ] || fail "error is not one line: $(cat "$T/err")"
    grep -q "^strata: $1" "$T/err" || fail "error [$(cat "$T/err")] lacks [strata: $1]"
}
# json EXPR < FILE: evaluate EXPR with d = the parsed JSON
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

check "a replica with contacts (name, age, legacy_flag) and another collection"
$S init "$R" >/dev/null
$S put "$R" contacts p1 name "Ada Lovelace"
$S put "$R" contacts p1 age 41
$S put "$R" contacts p1 legacy_flag true
$S put "$R" contacts p2 name Bob
$S put "$R" contacts p2 age 7
$S put "$R" contacts p3 legacy_flag false
$S put "$R" other x age 5
$S status "$R" --json >"$T/s0.json"
eq "$(json 'd["epoch"]["number"], d["schema"], d["upgrading"]' <"$T/s0.json")" \
    "0 {} None" "status before"

cat >"$T/lens" <<'EOF'
# the example of docs/migrations.md
collection contacts 1 -> 2
rename name -> full_name
add note string default ""
remove legacy_flag
convert age int -> string
EOF

check "migrate DIR LENS --json: epoch 1, schema contacts 2"
code 0 $S migrate "$R" "$T/lens" --json
cp "$T/out" "$T/m1.json"
eq "$(json 'd["epoch"]["number"], d["schema"]' <"$T/m1.json")" "1 {'contacts': 2}" "migrate --json"
E1=$(json 'd["epoch"]["id"]' <"$T/m1.json")
[[ "$E1" =~ ^[0-9a-f]{64}$ ]] || fail "epoch id [$E1]"
eq "$(cat "$T/err")" "" "no progress on stderr when it is not a terminal"

check "documents are migrated; other collections are not"
eq "$($S get "$R" contacts p1)" '{"age":"41","full_name":"Ada Lovelace","note":""}' "p1"
eq "$($S get "$R" contacts p2)" '{"age":"7","full_name":"Bob","note":""}' "p2"
eq "$($S get "$R" contacts p3)" '{"note":""}' "p3"
eq "$($S get "$R" contacts p1 age)" '"41"' "age is a string"
code 2 $S get "$R" contacts p1 legacy_flag
code 2 $S get "$R" contacts p1 name
eq "$($S get "$R" other x)" '{"age":5}' "other collection"

check "status --json: epoch 1, schema, empty log"
$S status "$R" --json >"$T/s1.json"
python3 - "$T/s1.json" "$E1" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["epoch"] == {"number": 1, "id": sys.argv[2]}, d["epoch"]
assert d["schema"] == {"contacts": 2}, d["schema"]
assert d["ops_in_log"] == 0, d
assert d["quarantined"] == 0 and d["upgrading"] is None, d
assert d["docs"] == 4, d
EOF
$S status "$R" >"$T/s1.txt"
grep -q '^schema: *contacts=2$' "$T/s1.txt" || fail "status text schema: $(cat "$T/s1.txt")"
grep -q '^epoch: *1 ' "$T/s1.txt" || fail "status text epoch"
grep -q '^upgrading: *no$' "$T/s1.txt" || fail "status text upgrading"

check "epochs --json: genesis and epoch 1, chained"
$S epochs "$R" --json >"$T/e1.json"
python3 - "$T/e1.json" "$E1" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
assert len(d) == 2, d
keys = ["number", "id", "parent", "schema", "lens", "custom", "created_ms",
        "state_hash"]
assert all(list(e.keys()) == keys for e in d), d
g, e = d
assert g["number"] == 0 and g["parent"] is None and g["lens"] is None, g
assert e["number"] == 1 and e["id"] == sys.argv[2] and e["parent"] == g["id"], e
assert e["schema"] == {"contacts": 2}, e
assert e["lens"].startswith("collection contacts 1 -> 2\n"), e["lens"]
assert "rename name -> full_name" in e["lens"], e["lens"]
assert e["custom"] is None and e["created_ms"] > 0, e
EOF
S1_HASH=$(json 'd["state_hash"]' <"$T/s1.json")
eq "$(json 'd[1]["state_hash"]' <"$T/e1.json")" "$S1_HASH" "epoch's state hash"
$S epochs "$R" >"$T/e1.txt"
eq "$(grep -c '^epoch ' "$T/e1.txt")" 2 "epochs text: two epochs"
grep -q "^epoch 1 $E1\$" "$T/e1.txt" || fail "epochs text: $(cat "$T/e1.txt")"
grep -q '^  lens: *collection contacts 1 -> 2' "$T/e1.txt" || fail "epochs text lens"

check "a lens with a syntax error on line 3: exit 6 with FILE:3:, nothing changes"
printf 'collection contacts 2 -> 3\nrename full_name -> name\nrenam note -> memo\n' >"$T/bad3"
code 6 $S migrate "$R" "$T/bad3"
one_line_error "migrate: $T/bad3:3: "
$S status "$R" --json >"$T/s.json"
cmp -s "$T/s.json" "$T/s1.json" || fail "status changed after a bad lens"

check "a lens from the wrong version: exit 6, nothing changes"
printf 'collection contacts 1 -> 3\nrename full_name -> name\n' >"$T/from1"
code 6 $S migrate "$R" "$T/from1"
one_line_error "migrate: .*contacts.* version 2.*version 1"
printf 'collection contacts 5 -> 6\nrename full_name -> name\n' >"$T/from5"
code 6 $S migrate "$R" "$T/from5"
one_line_error "migrate: "
$S status "$R" --json >"$T/s.json"
cmp -s "$T/s.json" "$T/s1.json" || fail "status changed after a lens of the wrong version"
eq "$($S epochs "$R" --json | json 'len(d)')" 2 "still two epochs"

check "other refusals: missing file 2, no marker to resume/abort 2, usage 1"
code 2 $S migrate "$R" "$T/nosuchfile"
one_line_error "migrate: open "
code 2 $S migrate "$R" --resume
one_line_error "migrate: no interrupted migration"
code 2 $S migrate "$R" --abort
code 1 $S migrate "$R" --resume --abort
code 1 $S migrate "$R" "$T/lens" --resume
code 1 $S migrate "$R" --retention -1
code 1 $S migrate "$R" --retention 2 --abort
printf 'collection $members 1 -> 2\nrename member -> m\n' >"$T/own"
code 6 $S migrate "$R" "$T/own"
code 2 $S migrate "$T/nowhere"

check "writes in the new schema, then a compaction: epoch 2, same state hash"
$S put "$R" contacts p1 note "first programmer"
$S put "$R" contacts p4 full_name Carol
$S incr "$R" contacts p4 visits 3
$S status "$R" --json >"$T/s.json"
eq "$(json 'd["ops_in_log"]' <"$T/s.json")" 3 "ops in the log before compacting"
HASH=$(json 'd["state_hash"]' <"$T/s.json")
code 0 $S migrate "$R"
[[ "$(cat "$T/out")" =~ ^epoch\ 2\ [0-9a-f]{64}$ ]] || fail "migrate output: $(cat "$T/out")"
$S status "$R" --json >"$T/s2.json"
eq "$(json 'd["epoch"]["number"], d["schema"], d["ops_in_log"]' <"$T/s2.json")" \
    "2 {'contacts': 2} 0" "status after compaction"
eq "$(json 'd["state_hash"]' <"$T/s2.json")" "$HASH" "state hash kept by compaction"
eq "$($S get "$R" contacts p4)" '{"full_name":"Carol","visits":3}' "p4 after compaction"
E=$($S epochs "$R" --json)
eq "$(echo "$E" | json 'len(d), d[2]["lens"], d[2]["schema"]')" "3 None {'contacts': 2}" "epochs after compaction"

check "writes keep working; seq goes on"
$S put "$R" contacts p1 age '"42"'
$S sadd "$R" contacts p1 tags math
eq "$($S get "$R" contacts p1)" \
    '{"age":"42","full_name":"Ada Lovelace","note":"first programmer","tags":["math"]}' "p1 after writes"
eq "$($S status "$R" --json | json 'd["ops_in_log"]')" 2 "ops after compaction"
N_VV=$($S status "$R" --json | json 'sum(d["vv"].values())')
[ "$N_VV" -gt 10 ] || fail "seq restarted: vv sum $N_VV"

check "a second lens (text output), --retention, the chain of four"
printf 'collection contacts 2 -> 3\nrename full_name -> name\n' >"$T/lens3"
code 0 $S migrate "$R" "$T/lens3" --retention 1
[[ "$(cat "$T/out")" =~ ^epoch\ 3\ [0-9a-f]{64}$ ]] || fail "migrate output: $(cat "$T/out")"
eq "$($S get "$R" contacts p4 name)" '"Carol"' "renamed again"
eq "$($S status "$R" --json | json 'd["schema"]')" "{'contacts': 3}" "schema 3"
$S epochs "$R" --json >"$T/e3.json"
python3 - "$T/e3.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
assert [e["number"] for e in d] == [0, 1, 2, 3], d
for a, b in zip(d, d[1:]):
    assert b["parent"] == a["id"], (a, b)
EOF

check "verify: ok with counts; quarantine: empty"
code 0 $S verify "$R"
grep -q '^ok: ' "$T/out" || fail "verify output: $(cat "$T/out")"
code 0 $S verify "$R" --json
eq "$(json 'd["ok"], d["changes"], d["ops"]' <"$T/out")" "True 0 0" "verify --json"
$S put "$R" contacts p9 name Zed
eq "$($S verify "$R" --json | json 'd["changes"], d["ops"]')" "1 1" "verify counts a change"
eq "$($S quarantine "$R")" "" "quarantine ls"
eq "$($S quarantine "$R" ls --json)" "[]" "quarantine ls --json"
eq "$($S quarantine "$R" export)" "" "quarantine export"
eq "$($S quarantine "$R" apply)" "applied 0, kept 0" "quarantine apply"
eq "$($S quarantine "$R" apply --json)" '{"applied":0,"kept":0}' "quarantine apply --json"
code 1 $S quarantine "$R" frob

check "--help"
for c in migrate epochs quarantine verify; do
    $S "$c" --help >"$T/help" || fail "$c --help exited $?"
    grep -q "^usage: strata $c" "$T/help" || fail "$c --help: $(cat "$T/help")"
    grep -q "not available" "$T/help" && fail "$c is not available"
done

echo "PASS test_cli_migrate"
