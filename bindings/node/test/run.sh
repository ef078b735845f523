#!/usr/bin/env bash
# run.sh PKG STRATA TESTDIR SRCDIR: test the Node binding the way a user
# gets it: pack the built package, install the tarball into a scratch
# project (offline: nothing is fetched), and run the tests with
# `node --test` from there, so they `require('strata-crdt')` like an app.
set -euo pipefail
pkg=$1 strata=$2 tests=$3 src=$4
work=$(mktemp -d "${TMPDIR:-/tmp}/strata-node.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir "$work/app"
(cd "$pkg" && npm pack --silent --pack-destination "$work" >/dev/null)
cd "$work/app"
printf '{"name":"scratch-app","version":"1.0.0","private":true}\n' > package.json
npm install --silent --offline --no-audit --no-fund "$work"/strata-crdt-*.tgz
[ -f node_modules/strata-crdt/build/strata.node ] || { echo "FAIL: addon not installed" >&2; exit 1; }
cp "$tests"/*.test.js .
STRATA_BIN=$strata STRATA_SRC=$src node --test --test-concurrency=1 ./*.test.js
