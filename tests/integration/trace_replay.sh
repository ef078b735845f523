#!/usr/bin/env bash
# The w2 trace replayer of strata-bench (--only w2 --check): the
# repository's traces end with their endContent on every replica; a
# small concurrent trace with merges and an agent whose own history
# forks replays too; a wrong endContent and a patch past the end fail.
#   trace_replay.sh STRATA_BENCH TRACES_DIR
set -euo pipefail
B="$1"
traces="$2"
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/strata-w2.XXXXXX")"
pids=()
. "$here/support/lib.sh"
trap cleanup EXIT
cd "$work"

replay() { "$B" --quiet --json --only w2 --check --dir "$work" --trace "$1"; }

for t in automerge-paper clownschool; do
    f="$traces/$t.json.gz"
    [ -f "$f" ] || fail "missing $f"
    replay "$f" > "$t.json" || fail "replay of $t failed"
    [ "$(js 'd["workloads"]["w2"]["end_content"]' < "$t.json")" = \
      "equal on every replica" ] || fail "$t: $(cat "$t.json")"
done
check "automerge-paper and clownschool end with endContent on every replica"

# agent 1's txn 4 does not descend from its txn 1: its replica is rebuilt
cat > small.json <<'JSON'
{"kind":"concurrent","endContent":"YZbcX","numAgents":3,"txns":[
 {"parents":[],"numChildren":2,"agent":0,"time":"","patches":[[0,0,"abc"]]},
 {"parents":[0],"numChildren":1,"agent":1,"time":"","patches":[[3,0,"X"]]},
 {"parents":[0],"numChildren":2,"agent":0,"time":"","patches":[[0,0,"Y"]]},
 {"parents":[1,2],"numChildren":0,"agent":2,"time":"","patches":[[1,1,""]]},
 {"parents":[2],"numChildren":0,"agent":1,"time":"","patches":[[2,0,"Z"]]},
 {"parents":[4],"numChildren":0,"agent":1,"time":"","patches":[]}]}
JSON
gzip -c small.json > small.json.gz
replay small.json.gz > small.out || fail "small concurrent trace failed"
replay small.json > plain.out || fail "an uncompressed trace is refused"
check "a concurrent trace with merges and a forked agent history replays"

python3 - "$traces/clownschool.json.gz" <<'PY'
import gzip, json, sys
d = json.load(gzip.open(sys.argv[1]))
d["endContent"] = d["endContent"][:-1] + ("x" if d["endContent"][-1] != "x" else "y")
gzip.open("wrong.json.gz", "wt").write(json.dumps(d))
PY
if replay wrong.json.gz > /dev/null 2> err.txt; then fail "a wrong endContent passed"; fi
grep -q "first difference" err.txt || fail "no reason: $(cat err.txt)"
sed 's/\[2,0,"Z"\]/[9,0,"Z"]/' small.json > past.json
if replay past.json > /dev/null 2> err.txt; then fail "a patch past the end passed"; fi
grep -q "patch 4" err.txt || fail "bad patch not named: $(cat err.txt)"
printf '{"endContent":"","txns":[{"patches":[[0,0]]}]}' > bad.json
if replay bad.json > /dev/null 2> err.txt; then fail "a malformed trace passed"; fi
grep -q "not \[pos, del, ins\]" err.txt || fail "no reason: $(cat err.txt)"
check "a wrong endContent, a patch past the end and a malformed trace fail"
