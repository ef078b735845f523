#!/usr/bin/env bash
# Invitations and the handshake with real processes on 127.0.0.1
# (docs/security.md "Invitations", docs/protocol.md "Handshake"): invite,
# init --invite, sync; a used, expired or mistyped token is refused with
# a clear message; a daemon of another identity serving the same space
# id is refused by a joiner that pinned the inviter, and learns nothing;
# a stranger's hello and a client of another space get silence, an old
# client a version error.
set -euo pipefail
S="$1"
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/strata-invite.XXXXXX")"
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

# ---- 1. invite, join, sync ----
"$S" init O >/dev/null
"$S" put O notes n1 title '"from the owner"'
sp="$("$S" status O --json | js 'd["space_id"]')"
kO=$("$S" id O)
serve o.log O; pO=$port
tok=$("$S" invite O)
[ "${#tok}" = 126 ] || fail "token length ${#tok}: $tok"
"$S" init I --invite "$tok" >/dev/null
[ "$("$S" status I --json | js 'd["space_id"]')" = "$sp" ] || fail "I is not in O's space"
"$S" sync I "127.0.0.1:$pO" >/dev/null
kI=$("$S" id I)
[ "$(role_of O "$kI")" = writer ] || fail "O did not add I as a writer: $("$S" member ls O --json)"
[ "$(role_of I "$kI")" = writer ] && [ "$(role_of I "$kO")" = owner ] ||
    fail "I did not receive the member set"
[ "$("$S" get I notes n1 title)" = '"from the owner"' ] || fail "I did not receive the data"
"$S" put I notes n2 title '"from the joiner"'
"$S" sync I "127.0.0.1:$pO" >/dev/null
[ "$("$S" get O notes n2 title)" = '"from the joiner"' ] || fail "the joiner's write did not reach O"
check "invite; init --invite; sync: the joiner is a writer and syncs both ways"

# ---- 2. a used token is refused ----
"$S" init J --invite "$tok" >/dev/null
code 5 "$S" sync J "127.0.0.1:$pO"
grep -q "invitation already used" err.txt || fail "reuse reason: $(cat err.txt)"
[ "$(role_of O "$("$S" id J)")" = none ] || fail "a reused token let J in"
[ "$("$S" member ls J)" = "" ] || fail "J received the member set"
check "a used token is refused: invitation already used (exit 5)"

# ---- 3. expired, mistyped, not permitted; roles ----
old=$("$S" invite O --ttl 1)
sleep 2
code 5 "$S" init E --invite "$old"
grep -q "expired" err.txt || fail "expired at init: $(cat err.txt)"
soon=$("$S" invite O --ttl 2)
"$S" init E2 --invite "$soon" >/dev/null
sleep 3
code 5 "$S" sync E2 "127.0.0.1:$pO"
grep -q "invitation expired" err.txt || fail "expired at the server: $(cat err.txt)"
typo=$(python3 -c 'import sys; t=sys.argv[1]; print(t[:40] + ("B" if t[40] != "B" else "C") + t[41:])' "$tok")
code 1 "$S" init X --invite "$typo"
grep -q "not an invitation token" err.txt || fail "bad token: $(cat err.txt)"
code 1 "$S" init X --invite "$tok" --space-id "$sp"
code 1 "$S" invite O --role king
code 1 "$S" invite O --ttl 0
code 4 "$S" invite I
grep -q "not permitted" err.txt || fail "a writer invited: $(cat err.txt)"
rt=$("$S" invite O --role reader --json | js 'd["token"]')
"$S" init R --invite "$rt" >/dev/null
"$S" sync R "127.0.0.1:$pO" >/dev/null
[ "$(role_of O "$("$S" id R)")" = reader ] || fail "R is not a reader"
code 4 "$S" put R notes n3 title '"no"'
check "expired (at init and at the server), mistyped and unpermitted invitations are refused; --role reader"

# ---- 4. a fake daemon for the same space id is refused ----
"$S" init F --space-id "$sp" >/dev/null   # another identity, same space id
serve f.log F; pF=$port
lt=$("$S" invite O)
"$S" init L --invite "$lt" >/dev/null
kL=$("$S" id L)
code 5 "$S" sync L "127.0.0.1:$pF"
grep -q "pinned" err.txt || fail "fake daemon reason: $(cat err.txt)"
[ "$("$S" member ls L)" = "" ] || fail "the fake daemon's member set reached L"
! grep -q "$kL" f.log || fail "the fake daemon learned the joiner's key"
"$S" sync L "127.0.0.1:$pO" >/dev/null   # the token was never shown to F
[ "$(role_of O "$kL")" = writer ] && [ "$(hash L)" = "$(hash O)" ] ||
    fail "L did not join through the real daemon"
check "a daemon of another identity for the same space is refused and learns nothing; the inviter's then admits"

# ---- 5. silence for strangers and other spaces; a version error for v1 ----
"$S" init Z >/dev/null                       # a space O's daemon does not serve
code 7 "$S" sync Z "127.0.0.1:$pO"
grep -q "closed during the handshake" err.txt || fail "other space: $(cat err.txt)"
python3 - "$pO" <<'PY'
import os, socket, struct, sys
port = int(sys.argv[1])
def answer(payload):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(struct.pack(">I", len(payload)) + payload)
    got = b""
    while True:
        b = s.recv(4096)
        if not b:
            break
        got += b
    s.close()
    return got
eph = os.urandom(32)
stranger = b"\x94\xa6strata\x02\xc4\x20" + eph + b"\xc4\x20" + os.urandom(32)
assert answer(stranger) == b"", "a stranger's hello was answered"
v1 = b"\x94\xa6strata\x01\xc4\x10" + os.urandom(16) + b"\xc4\x20" + eph
got = answer(v1)
assert b"strata-error" in got and b"protocol version" in got, got
PY
check "a stranger's hello and another space get silence; a version 1 hello a version error"
