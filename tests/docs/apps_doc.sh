#!/usr/bin/env bash
# apps_doc.sh SRC STRATA CC CFLAGS LIBS NODE_PKG: docs/apps.md's snippets
# as its readers would use them: the ```c blocks in order are one C
# program, compiled against the libraries and run; the ```js blocks are
# one Node program, run with the binding installed in a scratch project
# (skipped when the binding was not built). Both run against a real
# `strata serve` of a space the script sets up as the guide says.
set -euo pipefail
src=$1 S=$2 cc=$3 cflags=$4 libs=$5 pkg=$6
work=$(mktemp -d "${TMPDIR:-/tmp}/strata-apps.XXXXXX")
daemon=""
trap '[ -n "$daemon" ] && kill $daemon 2>/dev/null; rm -rf "$work"' EXIT
cd "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }

extract() { # extract LANG: the fenced blocks of that language, in order
    awk -v lang="$1" '
        /^```/ { if (inb) { inb = 0; next } if ($0 == "```" lang) { inb = 1; next } }
        inb { print }' "$src/docs/apps.md"
}
extract c > app.c
extract js > app.js
[ -s app.c ] && [ -s app.js ] || fail "no snippets found"

"$S" init server >/dev/null
space=$("$S" status server --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["space_id"])')
"$S" init app --space-id "$space" >/dev/null
"$S" member add server "$("$S" id app)"
"$S" put server todo from-server title '"hello"'
"$S" serve server --listen 127.0.0.1:0 2>serve.log >/dev/null & daemon=$!
for _ in $(seq 100); do
    port=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' serve.log | head -1)
    [ -n "$port" ] && break
    sleep 0.05
done
[ -n "$port" ] || fail "daemon did not start: $(cat serve.log)"

# shellcheck disable=SC2086
$cc -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror $cflags app.c -o app-c $libs ||
    fail "the C snippets do not compile"
./app-c app "$port" server >c.out 2>&1 || fail "the C program failed: $(cat c.out)"
cat c.out
grep -q "changed todo/t1 (3 fields)" c.out || fail "no subscription call in C"
grep -q "^sync: .*in sync" c.out || fail "C TCP sync: $(cat c.out)"
grep -q "^peer: success, in sync" c.out || fail "C peer sync: $(cat c.out)"
[ "$("$S" get server todo t1 title)" = '"buy milk"' ] || fail "the server lacks t1"
echo "ok: the C snippets compile and run"

if [ ! -f "$pkg/build/strata.node" ]; then
    echo "skipped: the JS snippets (the Node binding was not built)"
    exit 0
fi
mkdir js && cd js
printf '{"name":"apps-doc","version":"1.0.0","private":true}\n' > package.json
(cd "$pkg" && npm pack --silent --pack-destination "$work" >/dev/null)
npm install --silent --offline --no-audit --no-fund "$work"/strata-crdt-*.tgz
cp ../app.js .
node app.js ../app "$port" ../server "$S" >js.out 2>&1 || fail "the JS program failed: $(cat js.out)"
cat js.out
grep -q "^tcp: in sync" js.out && grep -q "^pipe: in sync" js.out || fail "JS syncs"
[ "$("$S" get ../server todo t2 title)" = '"walk the dog"' ] || fail "the server lacks t2"
echo "ok: the JS snippets run"
