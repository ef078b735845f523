#!/usr/bin/env bash
# test_cli_basic.sh: the single-replica commands of the strata CLI
# (init, id, member, put/incr/sadd/srem/del, get, ls, export, status,
# log) and their exit codes. Usage: test_cli_basic.sh PATH_TO_STRATA
set -euo pipefail

S=${1:?usage: $0 PATH_TO_STRATA}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
R=$T/r

fail() { echo "FAIL: $*" >&2; exit 1; }
check() { echo "check: $*"; }
# eq ACTUAL EXPECTED WHAT
eq() { [ "$1" == "$2" ] || fail "$3: got [$1], want [$2]"; }
# code WANT CMD...: run CMD, expect exit code WANT, keep stderr in $T/err
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
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

check "init creates a replica, prints space id and key"
$S init "$R" >"$T/init.txt"
grep -Eq '^space_id [0-9a-f]{32}$' "$T/init.txt" || fail "init output: $(cat "$T/init.txt")"
grep -Eq '^public_key [0-9a-f]{64}$' "$T/init.txt" || fail "init output"
PK=$(awk '/^public_key/ {print $2}' "$T/init.txt")
SPACE=$(awk '/^space_id/ {print $2}' "$T/init.txt")
code 1 $S init "$R"
one_line_error "init .*: already a replica"

check "init --json, --space-id joins a space, --phrase-file gives the same key"
$S init "$T/j" --json >"$T/j.json"
eq "$(json 'sorted(d.keys())' <"$T/j.json")" "['public_key', 'space_id']" "init --json keys"
$S init "$T/join" --space-id "$SPACE" --json >"$T/join.json"
eq "$(json 'd["space_id"]' <"$T/join.json")" "$SPACE" "joined space id"
eq "$($S member ls "$T/join")" "" "a joining replica has no members yet"
code 1 $S init "$T/bad" --space-id 1234
echo "  correct horse battery staple  " >"$T/phrase"
$S init "$T/p1" --phrase-file "$T/phrase" --json >"$T/p1.json"
$S init "$T/p2" --phrase-file "$T/phrase" --json >"$T/p2.json"
eq "$(json 'd["public_key"]' <"$T/p1.json")" "$(json 'd["public_key"]' <"$T/p2.json")" "phrase keys"
echo short >"$T/short"
code 1 $S init "$T/p3" --phrase-file "$T/short"
code 2 $S init "$T/p4" --phrase-file "$T/nosuchfile"

check "id and member"
eq "$($S id "$R")" "$PK" "id"
eq "$($S member ls "$R")" "$PK" "creator is a member"
OTHER=$(printf 'AB%.0s' $(seq 32))
$S member add "$R" "$OTHER"
LOWER=$(echo "$OTHER" | tr A-F a-f)
eq "$($S member ls "$R" --json)" \
   "$(python3 -c 'import json,sys; print(json.dumps(sorted([{"public_key": k, "role": "owner" if k == sys.argv[2] else "writer"} for k in sys.argv[1:]], key=lambda m: m["public_key"]), separators=(",", ":")))' "$LOWER" "$PK")" \
   "member ls --json: both keys with roles, lowercase, in key order"
code 1 $S member add "$R" abc
code 1 $S member add "$R" "$(printf 'zz%.0s' $(seq 32))"
code 1 $S member frob "$R"

check "put/get of every value type"
$S put "$R" people ada name Ada
$S put "$R" people ada quoted '"42"'
$S put "$R" people ada age 36
$S put "$R" people ada height -1.5
$S put "$R" people ada tenth 0.1
$S put "$R" people ada alive true
$S put "$R" people ada spouse null
$S put "$R" people ada big 9223372036854775807
$S put "$R" people ada blob '{"$bytes":"AAEC/w=="}'
$S put "$R" people ada broken '{oops'
eq "$($S get "$R" people ada name)" '"Ada"' "bare word is a string"
eq "$($S get "$R" people ada quoted)" '"42"' "JSON string"
eq "$($S get "$R" people ada age)" '36' "integer"
eq "$($S get "$R" people ada height)" '-1.5' "negative real"
eq "$($S get "$R" people ada tenth)" '0.1' "real in shortest form"
eq "$($S get "$R" people ada alive)" 'true' "bool"
eq "$($S get "$R" people ada spouse)" 'null' "null"
eq "$($S get "$R" people ada big)" '9223372036854775807' "int64 max"
eq "$($S get "$R" people ada blob)" '{"$bytes":"AAEC/w=="}' "bytes"
eq "$($S get "$R" people ada broken)" '"{oops"' "invalid JSON is a string"
code 1 $S put "$R" people ada huge 9223372036854775808
code 1 $S put "$R" people ada arr '[1,2]'
code 1 $S put "$R" people ada b64 '{"$bytes":"not base64!"}'

check "incr"
$S incr "$R" people ada visits 5
$S incr "$R" people ada visits -2
eq "$($S get "$R" people ada visits)" '3' "counter"
code 1 $S incr "$R" people ada visits 1.5
code 1 $S incr "$R" people ada name 1
one_line_error "incr: "

check "sadd/srem give a sorted set"
for v in zeta alpha 7 mid true; do $S sadd "$R" people ada tags "$v"; done
$S srem "$R" people ada tags mid
eq "$($S get "$R" people ada tags)" '[true,7,"alpha","zeta"]' "sorted set"

check "get of a document: fields in name order"
eq "$($S get "$R" people ada)" \
   '{"age":36,"alive":true,"big":9223372036854775807,"blob":{"$bytes":"AAEC/w=="},"broken":"{oops","height":-1.5,"name":"Ada","quoted":"42","spouse":null,"tags":[true,7,"alpha","zeta"],"tenth":0.1,"visits":3}' \
   "document"
code 2 $S get "$R" people nobody
one_line_error "get: not found"
code 2 $S get "$R" people ada nofield

check "del of a field and of a document"
$S put "$R" people bob name Bob
$S put "$R" pets rex kind dog
$S del "$R" people ada spouse
code 2 $S get "$R" people ada spouse
code 2 $S del "$R" people ada spouse
$S del "$R" people bob
code 2 $S get "$R" people bob

check "ls and export skip reserved collections"
eq "$($S ls "$R")" "$(printf 'people\npets')" "ls collections"
eq "$($S ls "$R" people --json)" '["ada"]' "ls docs --json"
eq "$($S ls "$R" --json)" '["people","pets"]' "ls --json"
eq "$($S ls "$R" nothing)" "" "ls of an empty collection"
$S export "$R" >"$T/export.jsonl"
eq "$(wc -l <"$T/export.jsonl")" 2 "export lines"
python3 - "$T/export.jsonl" <<'EOF'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
assert [(l["coll"], l["doc"]) for l in lines] == [("people", "ada"), ("pets", "rex")], lines
assert list(lines[0].keys()) == ["coll", "doc", "fields"]
assert lines[0]["fields"]["tags"] == [True, 7, "alpha", "zeta"]
assert lines[1]["fields"] == {"kind": "dog"}
EOF

check "reserved collections are refused for writes"
code 1 $S put "$R" '$members' x member true
one_line_error "put: reserved collection"
code 1 $S sadd "$R" '$x' d f 1
code 1 $S del "$R" '$members' "$PK"

check "status --json"
$S status "$R" --json >"$T/status.json"
python3 - "$T/status.json" "$SPACE" "$PK" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
keys = ["space_id", "public_key", "epoch", "schema", "vv", "state_hash",
        "ops_in_log", "docs", "quarantined", "upgrading", "staging", "readers"]
assert list(d.keys()) == keys, list(d.keys())
assert d["space_id"] == sys.argv[2] and d["public_key"] == sys.argv[3]
assert d["epoch"]["number"] == 0 and len(d["epoch"]["id"]) == 64
assert d["schema"] == {} and d["quarantined"] == 0 and d["upgrading"] is None
assert d["staging"] is None and d["readers"]["max"] > 0, d
assert len(d["state_hash"]) == 64
assert len(d["vv"]) == 1
(seq,) = d["vv"].values()
assert seq == d["ops_in_log"], d
assert d["docs"] == 2, d  # people/ada, pets/rex; the member set not counted
EOF
$S status "$R" | grep '^state_hash: ' >/dev/null || fail "status text"

check "log"
N=$($S status "$R" --json | json 'd["ops_in_log"]')
eq "$($S log "$R" | wc -l)" "$N" "one change per write"
$S log "$R" --json >"$T/log.jsonl"
tail -1 "$T/log.jsonl" >"$T/last.json"
python3 - "$T/last.json" "$N" <<'EOF'
import json, sys
d = json.loads(open(sys.argv[1]).read())
assert list(d.keys()) == ["actor", "seq", "last_seq", "hlc", "epoch", "hash", "ops"], d
n = int(sys.argv[2])
assert d["seq"] == n and d["last_seq"] == n, d
assert d["ops"] == [{"op": "del", "coll": "people", "doc": "bob"}], d["ops"]
EOF
head -1 "$T/log.jsonl" | grep -q '"coll":"$members"' || fail "first change is the member record"

check "usage errors exit 1, missing replicas exit 2"
code 1 $S
code 1 $S frobnicate
code 1 $S put "$R" people ada
code 1 $S put "$R" people ada f v extra
code 1 $S get "$R" people ada --bogus
code 1 $S migrate "$R" --resume --abort
one_line_error "migrate: --resume and --abort exclude each other"
code 2 $S get "$T/nowhere" people ada
one_line_error "open .*: not a replica"
mkdir "$T/empty"
code 2 $S status "$T/empty" --json
code 2 $S ls "$T/init.txt"
code 1 $S put "$R" people "$(printf 'x%.0s' $(seq 65))" f 1

check "every command answers --help with exit 0"
for c in init id member put incr sadd srem del get ls import export status log \
         migrate epochs serve sync quarantine backup restore verify; do
    $S "$c" --help >"$T/help" || fail "$c --help exited $?"
    grep -q "^usage: strata $c" "$T/help" || fail "$c --help: $(cat "$T/help")"
done
$S --help | grep '^usage: strata' >/dev/null || fail "strata --help"

echo "PASS test_cli_basic"
