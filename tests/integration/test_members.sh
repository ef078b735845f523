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

# ---- 4. epochs: only admins make them; a new replica trusts the owner's ----
"$S" sync X "127.0.0.1:$pO" >/dev/null
code 4 "$S" migrate X
grep -q "only an admin makes epochs" err.txt || fail "migrate reason: $(cat err.txt)"
echo "a phrase for the writer X2 of this test" > x2.phrase
"$S" init X2 --space-id "$sp" --phrase-file x2.phrase >/dev/null
"$S" member add O "$("$S" id X2)"
"$S" init X3 --space-id "$sp" --phrase-file x2.phrase >/dev/null   # same key, knows no owner
"$S" put X3 docs forged v 1
"$S" migrate X3 >/dev/null        # nothing here says X3 may not
e0="$(epoch O)"
code 5 "$S" sync X3 "127.0.0.1:$pO"
grep -q "not an admin" err.txt || fail "forged epoch reason: $(cat err.txt)"
[ "$(epoch O)" = "$e0" ] || fail "the owner adopted a writer's epoch"
check "a writer cannot make an epoch, nor impose one made where it seemed allowed"

"$S" sync A "127.0.0.1:$pO" >/dev/null
"$S" migrate A >/dev/null          # an admin's epoch
serve a.log A; pA=$port
"$S" sync O "127.0.0.1:$pA" >/dev/null
[ "$(epoch O)" = "$(epoch A)" ] || fail "the owner did not follow an admin's epoch"
"$S" init N --space-id "$sp" >/dev/null
"$S" member add O "$("$S" id N)"
"$S" sync O "127.0.0.1:$pA" >/dev/null
code 5 "$S" sync N "127.0.0.1:$pA"
grep -q "not signed by the space's owner" err.txt || fail "snapshot reason: $(cat err.txt)"
[ "$("$S" status N --json | js 'd["epoch"]["number"]')" = 0 ] || fail "N adopted the snapshot"
"$S" migrate O >/dev/null          # the owner's epoch
"$S" sync N "127.0.0.1:$pO" >/dev/null
[ "$(epoch N)" = "$(epoch O)" ] && [ "$(hash N)" = "$(hash O)" ] ||
    fail "a new replica did not adopt the owner's snapshot"
check "admins' epochs are followed; a new replica adopts only an owner-signed snapshot"

# ---- 5. a joiner that pins a known peer key is not fooled by a fake daemon ----
"$S" init F --space-id "$sp" >/dev/null          # a daemon that says yes to anyone
"$S" init P --space-id "$sp" --peer-key "$kO" >/dev/null
"$S" member add F "$("$S" id P)"
serve f.log F; pF=$port
code 5 "$S" sync P "127.0.0.1:$pF"
[ "$("$S" member ls P)" = "" ] || fail "the fake daemon's member set reached P"
code 1 "$S" init P2 --peer-key "$kO"
"$S" member add O "$("$S" id P)"
"$S" sync P "127.0.0.1:$pO" >/dev/null
[ "$(role_of P "$kO")" = owner ] && [ "$(hash P)" = "$(hash O)" ] ||
    fail "P did not sync with the pinned owner"
check "init --space-id --peer-key: the first sync trusts only the pinned key"
