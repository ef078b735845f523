#!/usr/bin/env bash
# Progress on a terminal, silence otherwise: import, backup, restore,
# verify, sync and rebuild of a log of 10,000 ops draw a progress line
# on stderr when it is a terminal (a pseudo-terminal here) and print
# nothing on stderr when it is a file.
set -euo pipefail
S="$1"
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/strata-progress.XXXXXX")"
pids=()
. "$here/support/lib.sh"
trap cleanup EXIT
cd "$work"

# on_tty NAME CMD...: run CMD on a pseudo-terminal; its output in NAME.tty
on_tty() {
    local name="$1"; shift
    python3 "$here/support/pty_run.py" "$@" > "$name.tty" ||
        { cat "$name.tty" >&2; fail "$name on a terminal failed"; }
}
# drew NAME LABEL: the terminal output has LABEL's progress line
drew() { tr '\r' '\n' < "$1.tty" | grep -q "^$2: " || { cat -A "$1.tty" >&2; fail "$1: no progress on a terminal"; }; }
# quiet NAME CMD...: stderr to a file stays empty
quiet() {
    local name="$1"; shift
    "$@" > /dev/null 2> "$name.err" || { cat "$name.err" >&2; fail "$name failed"; }
    [ ! -s "$name.err" ] || { cat -A "$name.err" >&2; fail "$name: output on stderr when not a terminal"; }
}

python3 -c '
import json
with open("big.jsonl", "w") as f:
    for i in range(10000):
        f.write(json.dumps({"op": "put", "coll": "c", "doc": "d%d" % i,
                            "field": "f", "value": i}) + "\n")'
"$S" init A >/dev/null
"$S" init A2 >/dev/null
on_tty import "$S" import A big.jsonl
drew import 'import'
grep -q '100% ' import.tty || fail "import did not reach 100%"
quiet import2 "$S" import A2 big.jsonl
check "import: progress on a terminal, silent otherwise"

on_tty backup "$S" backup A a.strata
drew backup 'backup'
quiet backup2 "$S" backup A a2.strata
on_tty restore "$S" restore a.strata R1
drew restore 'restore'
quiet restore2 "$S" restore a.strata R2
check "backup and restore: progress on a terminal, silent otherwise"

on_tty verify "$S" verify A
drew verify 'verify'
quiet verify2 "$S" verify A
check "verify: progress on a terminal, silent otherwise"

sp="$("$S" status A --json | js 'd["space_id"]')"
for r in B C D; do
    "$S" init "$r" --space-id "$sp" >/dev/null
    "$S" member add A "$("$S" id "$r")"
done
serve a.log A
on_tty sync "$S" sync B "127.0.0.1:$port"
drew sync 'sync'
tr '\r' '\n' < sync.tty | grep -Eq '^sync: [1-9][0-9]{4} ops' || { cat -A sync.tty >&2; fail "sync did not count the ops"; }
quiet sync2 "$S" sync C "127.0.0.1:$port"
on_tty rebuild "$S" rebuild B "127.0.0.1:$port"
drew rebuild 'rebuild'
"$S" rebuild D "127.0.0.1:$port" > /dev/null 2> rebuild2.err
! grep -q $'\r' rebuild2.err || fail "rebuild drew progress into a file"
check "sync and rebuild: progress on a terminal, silent otherwise"
