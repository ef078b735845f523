#!/usr/bin/env bash
# The Strata demo: three replicas of one space on this machine.
#   1. A and B sync over loopback through A's daemon (encrypted, signed).
#   2. C goes offline and keeps writing in schema version 1.
#   3. A migrates the collection to version 2 with a lens (a new epoch);
#      B follows through sync.
#   4. C comes back: it is behind by an epoch, so it resets to the new
#      epoch and its offline writes are rebased through the lens.
#   5. All three replicas end with the same epoch and the same state hash.
# Installs what it needs (scripts/setup.sh) and builds first.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release ${STRATA_DEMO_CMAKE_ARGS:-} >/dev/null
cmake --build build -j "$(nproc)" --target strata >/dev/null

S="$root/build/cli/strata"
work="$(mktemp -d "${TMPDIR:-/tmp}/strata-demo.XXXXXX")"
daemon=""
cleanup() {
    if [ -n "$daemon" ]; then kill "$daemon" 2>/dev/null || true; wait "$daemon" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
cd "$work"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
show() { printf '   %-2s epoch %s  state %s\n' "$1" \
    "$("$S" status "$1" --json | python3 -c 'import json,sys; e=json.load(sys.stdin)["epoch"]; print(e["number"], e["id"][:12])')" \
    "$("$S" status "$1" --json | field state_hash | cut -c1-16)"; }

say "three replicas of one space, each with its own Ed25519 identity"
"$S" init A >/dev/null
space="$("$S" status A --json | field space_id)"
"$S" init B --space-id "$space" >/dev/null
"$S" init C --space-id "$space" >/dev/null
"$S" member add A "$("$S" id B)"
"$S" member add A "$("$S" id C)"
echo "   space $space; A knows B and C as members"

say "A serves the space on loopback"
"$S" serve A --listen 127.0.0.1:0 2>daemon.log &
daemon=$!
port=""
for _ in $(seq 1 50); do
    port="$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' daemon.log | head -1)"
    [ -n "$port" ] && break
    sleep 0.1
done
[ -n "$port" ] || { cat daemon.log; echo "demo: daemon did not start" >&2; exit 1; }
echo "   daemon on 127.0.0.1:$port"

say "writes on A and B, then B and C sync through A"
"$S" put A contacts ada name '"Ada Lovelace"'
"$S" put A contacts ada age 36
"$S" sadd A contacts ada tags '"math"'
"$S" put B contacts alan name '"Alan Turing"'
"$S" incr B stats visits total 3
"$S" sync B "127.0.0.1:$port"
"$S" sync C "127.0.0.1:$port"
"$S" sync B "127.0.0.1:$port" >/dev/null
for r in A B C; do show $r; done

say "C goes offline and keeps writing (schema version 1)"
"$S" put C contacts grace name '"Grace Hopper"'
"$S" put C contacts grace age 85
"$S" incr C stats visits total 2
echo "   C: $("$S" get C contacts grace)"

say "meanwhile A migrates contacts 1 -> 2 with a lens: a new epoch in one transaction"
cat > lens.txt <<'LENS'
collection contacts 1 -> 2
rename name -> full_name
add note string default ""
convert age int -> string
LENS
cat lens.txt | sed 's/^/   | /'
"$S" migrate A lens.txt
"$S" sync B "127.0.0.1:$port"
echo "   A: $("$S" get A contacts ada)"
for r in A B C; do show $r; done

say "C comes back: behind by an epoch, it resets and its writes are rebased"
"$S" sync C "127.0.0.1:$port"
"$S" sync B "127.0.0.1:$port" >/dev/null
echo "   C's offline write, as A now has it: $("$S" get A contacts grace)"
echo "   visits counted on every replica: $("$S" get B stats visits total)"

say "converged"
for r in A B C; do show $r; done
hA="$("$S" status A --json | field state_hash)"
hB="$("$S" status B --json | field state_hash)"
hC="$("$S" status C --json | field state_hash)"
if [ "$hA" = "$hB" ] && [ "$hB" = "$hC" ]; then
    echo "   all three replicas hold the same state: $hA"
else
    echo "demo: replicas differ" >&2
    exit 1
fi
