#!/usr/bin/env bash
# Roles with real processes on 127.0.0.1 (docs/security.md): member add
# --role, member rm, member ls --json; a writer or reader cannot change
# the member set or (a reader) write; a removed key is refused by the
# handshake, cannot be re-added, and its live session to a daemon is
# closed within about a second of the removal, so it receives no write
# made afterwards.
set -euo pipefail
S="$1"
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/strata-members.XXXXXX")"
pids=()
. "$here/support/lib.sh"
trap cleanup EXIT
cd "$work"

code() { # code N CMD...: run CMD, expect exit status N
    local want="$1"; shift
    local got=0
    "$@" >out.txt 2>err.txt || got=$?
    [ "$got" = "$want" ] || { cat err.txt >&2; fail "exit $got, want $want: $*"; }
}
role_of() { # role_of DIR KEY
    "$S" member ls "$1" --json |
        python3 -c 'import json,sys; print({m["public_key"]: m["role"] for m in json.load(sys.stdin)}.get(sys.argv[1], "none"))' "$2"
}

# ---- 1. roles from the CLI ----
"$S" init O >/dev/null
sp="$("$S" status O --json | js 'd["space_id"]')"
for r in W R A X; do "$S" init "$r" --space-id "$sp" >/dev/null; done
kO=$("$S" id O); kW=$("$S" id W); kR=$("$S" id R); kA=$("$S" id A); kX=$("$S" id X)
"$S" member add O "$kW"
"$S" member add O "$kR" --role reader
"$S" member add O "$kA" --role admin
[ "$(role_of O "$kO")" = owner ] || fail "the creator is not the owner"
[ "$(role_of O "$kW")" = writer ] && [ "$(role_of O "$kR")" = reader ] &&
    [ "$(role_of O "$kA")" = admin ] || fail "roles: $("$S" member ls O --json)"
code 1 "$S" member add O "$kX" --role king
code 1 "$S" member rm O
check "member add --role and member ls --json give owner, admin, writer, reader"

serve o.log O; pO=$port
for r in W R A; do "$S" sync "$r" "127.0.0.1:$pO" >/dev/null; done
code 4 "$S" member add W "$kX"
grep -q "not permitted" err.txt || fail "no reason: $(cat err.txt)"
code 4 "$S" member add R "$kX"
code 4 "$S" put R docs d f 1
code 4 "$S" member add A "$kX" --role admin
code 4 "$S" member rm A "$kO"
"$S" member add A "$kX"
"$S" sync A "127.0.0.1:$pO" >/dev/null
[ "$(role_of O "$kX")" = writer ] || fail "an admin's add did not reach the owner"
check "writers and readers cannot change the member set; an admin adds writers, not admins"

# ---- 2. removal ----
code 4 "$S" member rm O "$kO"
code 2 "$S" member rm O "$(printf '01%.0s' $(seq 32))"
"$S" member rm O "$kR"
[ "$(role_of O "$kR")" = removed ] || fail "R is not removed"
"$S" member ls O | grep -q "$kR" && fail "plain member ls lists a removed key"
code 4 "$S" member add O "$kR"
code 5 "$S" sync R "127.0.0.1:$pO"
check "member rm: removed for good, refused by the handshake (exit 5)"

# ---- 3. revocation ends a live session within a second ----
"$S" put O docs before v 1
serve w.log W --peer "127.0.0.1:$pO"
for _ in $(seq 1 100); do
    [ "$("$S" get W docs before v 2>/dev/null)" = 1 ] && break
    sleep 0.05
done
[ "$("$S" get W docs before v 2>/dev/null)" = 1 ] || fail "the live session did not deliver"
"$S" put O docs live v 2          # still delivered while W is a member
for _ in $(seq 1 100); do
    [ "$("$S" get W docs live v 2>/dev/null)" = 2 ] && break
    sleep 0.05
done
[ "$("$S" get W docs live v 2>/dev/null)" = 2 ] || fail "a live write did not arrive"
t0=$(date +%s%N)
"$S" member rm O "$kW"
closed=""
for _ in $(seq 1 40); do
    if grep -q "no longer a member" o.log; then closed=yes; break; fi
    sleep 0.05
done
t1=$(date +%s%N)
[ -n "$closed" ] || { cat o.log >&2; fail "the removed peer's session was not closed"; }
ms=$(( (t1 - t0) / 1000000 ))
[ "$ms" -le 2000 ] || fail "closed after $ms ms"
"$S" put O docs secret v 3
sleep 1.5
[ "$("$S" get W docs secret v 2>/dev/null || true)" = "" ] ||
    fail "the removed peer received a write made after its removal"
check "a removed peer's live session is closed (${ms} ms) and gets nothing after"
