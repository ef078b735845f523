#!/usr/bin/env bash
# The CLI scenario under valgrind --leak-check=full: no leak, no invalid
# access. (Skipped when valgrind is missing, with a message.)
set -euo pipefail
S="$1"
command -v valgrind >/dev/null || { echo "valgrind not installed: skipped"; exit 0; }
work="$(mktemp -d "${TMPDIR:-/tmp}/strata-vg.XXXXXX")"
trap 'rm -rf "$work"' EXIT
cd "$work"
vg() {
    valgrind -q --leak-check=full --show-leak-kinds=definite,indirect \
        --errors-for-leak-kinds=definite,indirect --error-exitcode=99 \
        --trace-children=no "$S" "$@"
}
run() { vg "$@" >/dev/null 2>vg.err || { cat vg.err; echo "FAIL: valgrind: strata $*"; exit 1; }; }
run init R
run put R c d name '"Ada"'
run incr R c d n 5
run sadd R c d tags '"x"'
run srem R c d tags '"x"'
printf '{"op":"put","coll":"c","doc":"e","field":"f","value":1}\n' > in.jsonl
run import R in.jsonl
run get R c d
run ls R
run export R
run status R --json
run log R --json
printf 'collection c 1 -> 2\nrename name -> full_name\n' > lens
run migrate R lens
run epochs R --json
run quarantine R ls
run backup R r.bak
run restore r.bak R2
run del R c d
echo "ok: the CLI scenario is clean under valgrind --leak-check=full"
