#!/usr/bin/env bash
# Text and list fields through the CLI with real processes: the text and
# list commands, get, the exact op shapes of log --json and import, bad
# input, and two replicas syncing concurrent edits over 127.0.0.1.
set -euo pipefail
S="$1"
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/strata-text.XXXXXX")"
pids=()
. "$here/support/lib.sh"
trap cleanup EXIT
cd "$work"

# expect CODE CMD...: run CMD, which must exit with CODE
expect() {
    local want="$1"; shift
    set +e
    "$@" >out.txt 2>err.txt
    local code=$?
    set -e
    [ "$code" = "$want" ] || { cat err.txt >&2; fail "$* exited $code, not $want"; }
}

"$S" init A >/dev/null
sp="$("$S" status A --json | js 'd["space_id"]')"
"$S" init B --space-id "$sp" >/dev/null
"$S" member add A "$("$S" id B)"

# ---- 1. text: insert, delete, code points ----
"$S" text A n d t insert 0 "hllo"
"$S" text A n d t insert 1 "é"          # code point 1, byte 1
"$S" text A n d t insert 5 " wörld"
"$S" text A n d t insert 6 "☃"           # after the space
[ "$("$S" get A n d t)" = '"héllo ☃wörld"' ] || fail "text is $("$S" get A n d t)"
"$S" text A n d t delete 6 1             # the snowman: one code point
"$S" text A n d t delete 0 1
[ "$("$S" get A n d t)" = '"éllo wörld"' ] || fail "after deletes: $("$S" get A n d t)"
check "text insert and delete count code points; get prints a JSON string"

# ---- 2. list: insert, set, delete; get prints an array in order ----
"$S" list A n d l insert 0 '"b"'
"$S" list A n d l insert 0 1
"$S" list A n d l insert 2 true
"$S" list A n d l insert 1 '{"$bytes":"AAE="}'
[ "$("$S" get A n d l)" = '[1,{"$bytes":"AAE="},"b",true]' ] || fail "list is $("$S" get A n d l)"
"$S" list A n d l set 2 null
"$S" list A n d l delete 0 2
[ "$("$S" get A n d l)" = '[null,true]' ] || fail "list after set/delete: $("$S" get A n d l)"
[ "$("$S" get A n d)" = '{"l":[null,true],"t":"éllo wörld"}' ] ||
    fail "document is $("$S" get A n d)"
check "list insert, set and delete; a document shows its text and list"

# ---- 3. bad input: clear errors, nothing written ----
"$S" put A n d r 5
h0="$(hash A)"
expect 1 "$S" text A n d t insert 11 "x"        # past the end (10)
grep -q "past the end" err.txt || fail "no reason: $(cat err.txt)"
expect 1 "$S" text A n d t delete 9 2
expect 1 "$S" text A n d t insert 0 ""
expect 1 "$S" text A n d t insert -1 "x"
expect 1 "$S" text A n d t insert 1x "x"
expect 1 "$S" text A n d t delete 0 0
expect 1 "$S" text A n d t replace 0 "x"
expect 1 "$S" list A n d l set 2 1               # length 2
expect 1 "$S" list A n d t insert 0 1            # a text is not a list
expect 1 "$S" text A n d l insert 0 "x"          # a list is not a text
expect 1 "$S" text A n d r insert 0 "x"          # a register
expect 2 "$S" text A n d nothere delete 0 1
expect 2 "$S" list A n d nothere set 0 1
expect 1 "$S" text A '$members' d t insert 0 "x"
expect 1 "$S" text A n d t insert 0 "x" extra
[ "$(hash A)" = "$h0" ] || fail "a refused write changed the replica"
"$S" del A n d r
check "bad positions, lengths, types and verbs exit 1 or 2 and write nothing"

# ---- 4. log --json prints the exact op shapes ----
"$S" init L >/dev/null
"$S" text L c d f insert 0 "abc"
"$S" text L c d f delete 1 1
"$S" list L c d g insert 0 '"x"'
"$S" list L c d g set 0 7
"$S" list L c d g delete 0 1
"$S" log L --json > log.json
for want in \
    '{"op":"tins","coll":"c","doc":"d","field":"f","pos":0,"text":"abc"}' \
    '{"op":"tdel","coll":"c","doc":"d","field":"f","pos":1,"len":1}' \
    '{"op":"lins","coll":"c","doc":"d","field":"g","pos":0,"value":"x"}' \
    '{"op":"lset","coll":"c","doc":"d","field":"g","pos":0,"value":7}' \
    '{"op":"ldel","coll":"c","doc":"d","field":"g","pos":0,"len":1}'; do
    grep -qF "$want" log.json || { cat log.json >&2; fail "log --json lacks $want"; }
done
check "log --json prints tins, tdel, lins, lset, ldel exactly"

# ---- 5. import: the same shapes; a bad line changes nothing ----
"$S" init I >/dev/null
cat > ops.jsonl <<'EOF'
{"op":"tins","coll":"c","doc":"d","field":"f","pos":0,"text":"hello"}
{"op":"tins","coll":"c","doc":"d","field":"f","pos":5,"text":" world"}
{"op":"tdel","coll":"c","doc":"d","field":"f","pos":0,"len":1}
{"op":"tins","coll":"c","doc":"d","field":"f","pos":0,"text":"J"}
{"op":"lins","coll":"c","doc":"d","field":"g","pos":0,"value":"a"}
{"op":"lins","coll":"c","doc":"d","field":"g","pos":1,"value":2}
{"op":"lset","coll":"c","doc":"d","field":"g","pos":0,"value":"z"}
{"op":"ldel","coll":"c","doc":"d","field":"g","pos":1,"len":1}
EOF
"$S" import I ops.jsonl >/dev/null
[ "$("$S" get I c d)" = '{"f":"Jello world","g":["z"]}' ] || fail "import gave $("$S" get I c d)"
hI="$(hash I)"
printf '%s\n' '{"op":"tins","coll":"c","doc":"d","field":"f","pos":0,"text":"x"}' \
    '{"op":"tins","coll":"c","doc":"d","field":"f","pos":99,"text":"x"}' > bad1.jsonl
expect 6 "$S" import I bad1.jsonl --atomic
grep -q "line 2" err.txt || fail "bad line not named: $(cat err.txt)"
for bad in '{"op":"tins","coll":"c","doc":"d","field":"f","pos":0}' \
           '{"op":"tins","coll":"c","doc":"d","field":"f","pos":0,"text":""}' \
           '{"op":"tdel","coll":"c","doc":"d","field":"f","pos":0,"len":0}' \
           '{"op":"tdel","coll":"c","doc":"d","field":"f","pos":-1,"len":1}' \
           '{"op":"ldel","coll":"c","doc":"d","field":"g","pos":0,"len":1,"value":1}' \
           '{"op":"lset","coll":"c","doc":"d","field":"g","pos":"0","value":1}' \
           '{"op":"lins","coll":"c","doc":"d","field":"f","pos":0,"value":1}' \
           '{"op":"put","coll":"c","doc":"d","field":"f","value":1,"pos":0}'; do
    printf '%s\n' "$bad" > bad.jsonl
    expect 6 "$S" import I bad.jsonl
done
[ "$(hash I)" = "$hI" ] || fail "a refused import changed the replica"
# what log --json prints imports back into a replica of its own
python3 -c '
import json, sys
for line in open("log.json"):
    for op in json.loads(line)["ops"]:
        if not op["coll"].startswith("$"):   # the member set is the tool'"'"'s
            print(json.dumps(op))' > relog.jsonl
"$S" init R >/dev/null
"$S" import R relog.jsonl >/dev/null
[ "$("$S" get R c d f)" = "$("$S" get L c d f)" ] || fail "log -> import differs"
check "import applies sequence ops in order; bad lines exit 6 and change nothing"

# ---- 6. two replicas, concurrent edits, sync over 127.0.0.1 ----
"$S" text A s doc body insert 0 "The cat sat."
serve a.log A; pA=$port
"$S" sync B "127.0.0.1:$pA" >/dev/null
[ "$("$S" get B s doc body)" = '"The cat sat."' ] || fail "B did not get the text"
# both insert at the same place, one deletes a range the other inserts into
"$S" text A s doc body insert 4 "black "
"$S" text B s doc body insert 4 "fat "
"$S" text B s doc body delete 8 3             # "cat" on B: "The fat  sat."
"$S" text A s doc body insert 5 "Z"            # "The bZlack cat sat."
"$S" text A s doc body insert 12 "!"           # inside the "cat" B deletes
"$S" list A s doc items insert 0 '"a1"'
"$S" list B s doc items insert 0 '"b1"'
"$S" list B s doc items insert 1 '"b2"'
for round in 1 2; do "$S" sync B "127.0.0.1:$pA" >/dev/null; done
ta="$("$S" get A s doc body)"; tb="$("$S" get B s doc body)"
[ "$ta" = "$tb" ] || fail "texts differ: A $ta, B $tb"
[ "$(hash A)" = "$(hash B)" ] || fail "state hashes differ"
case "$ta" in
    '"The bZlack fat ! sat."'|'"The fat bZlack ! sat."') ;;
    *) fail "concurrent inserts interleaved or lost: $ta" ;;
esac
la="$("$S" get A s doc items)"
[ "$la" = "$("$S" get B s doc items)" ] || fail "lists differ"
case "$la" in
    '["a1","b1","b2"]'|'["b1","b2","a1"]') ;;
    *) fail "list runs interleaved: $la" ;;
esac
check "concurrent text and list edits sync between two processes and converge"
