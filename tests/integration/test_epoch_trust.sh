#!/usr/bin/env bash
# Epochs re-derived before adoption, with real processes on 127.0.0.1
# (docs/security.md, section 7): a replica that holds the previous epoch
# and exactly the changes the next one folds refuses an admin-signed
# epoch whose state does not follow from those changes (exit 4, the
# reason, nothing changed, still syncing at its epoch), and refuses it
# again later; a replica that missed a write before the forged epoch
# fetches it from the giver's archive and refuses the epoch too; a
# brand-new replica adopts it on the owner's signature alone; a genuine
# compaction (after a write the other replica missed, which it fetches)
# and a genuine lens epoch are adopted.
set -euo pipefail
S="$1"
T="${STRATA_TEST_TAMPER:?set by ctest: the strata-test-tamper helper}"
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/strata-epochtrust.XXXXXX")"
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
number() { "$S" status "$1" --json | js 'd["epoch"]["number"]'; }

# ---- a forged compaction ----
"$S" init O >/dev/null
sp="$("$S" status O --json | js 'd["space_id"]')"
"$S" init B --space-id "$sp" >/dev/null
"$S" init C --space-id "$sp" >/dev/null
"$S" init D --space-id "$sp" >/dev/null
"$S" init E --space-id "$sp" >/dev/null
for r in B C D E; do "$S" member add O "$("$S" id $r)"; done
for i in 1 2 3; do "$S" put O acct alice balance "$((i * 10))"; done
"$S" put O acct bob balance 5
serve o.log O; pO=$port
"$S" sync E "127.0.0.1:$pO" >/dev/null
stop_last
"$S" put O acct dave balance 9              # E misses this write
serve o.log O; pO=$port
"$S" sync B "127.0.0.1:$pO" >/dev/null
[ "$(hash B)" = "$(hash O)" ] || fail "B did not sync"
stop_last
hB="$(hash B)"

"$T" O acct alice balance 1000000      # the state, not the log
"$S" migrate O >/dev/null
serve o.log O; pO=$port
code 4 "$S" sync B "127.0.0.1:$pO"
grep -q "epoch 1 from [0-9a-f]* does not match its migration: state hash differs" err.txt ||
    fail "refusal reason: $(cat err.txt)"
[ "$(number B)" = 0 ] && [ "$(hash B)" = "$hB" ] || fail "B changed"
[ "$("$S" get B acct alice balance)" = 30 ] || fail "B's balance"
check "a replica holding the previous epoch refuses a forged compaction, nothing changes"

code 4 "$S" sync E "127.0.0.1:$pO"
grep -q "epoch 1 from [0-9a-f]* does not match its migration: state hash differs" err.txt ||
    fail "E's refusal reason: $(cat err.txt)"
[ "$(number E)" = 0 ] || fail "E adopted the forged epoch"
[ "$("$S" get E acct dave balance)" = 9 ] || fail "E did not fetch the write it missed"
[ "$(hash E)" = "$hB" ] || fail "E does not hold exactly what B holds"
check "a replica that missed a write fetches it from the giver's archive and refuses the forged compaction"

"$S" put B acct carol balance 7            # B goes on at epoch 0
"$S" sync C "127.0.0.1:$pO" >/dev/null     # C is new: signature alone
[ "$(number C)" = 1 ] || fail "C did not adopt the owner-signed epoch"
stop_last
serve b.log B; pB=$port                     # B still serves epoch 0
"$S" sync D "127.0.0.1:$pB" >/dev/null
[ "$(number D)" = 0 ] && [ "$("$S" get D acct carol balance)" = 7 ] ||
    fail "D did not sync with B at epoch 0"
stop_last
serve o.log O; pO=$port
code 4 "$S" sync B "127.0.0.1:$pO"          # beyond the cut now: still refused
grep -q "does not match its migration" err.txt || fail "second refusal: $(cat err.txt)"
[ "$(number B)" = 0 ] || fail "B adopted the forged epoch later"
[ "$("$S" get B acct carol balance)" = 7 ] || fail "B lost its write"
stop_last
check "a new replica adopts it on the signature alone; B syncs on at epoch 0, refuses the epoch again and keeps its writes"

# ---- genuine epochs, a compaction then a lens ----
"$S" init G >/dev/null
sg="$("$S" status G --json | js 'd["space_id"]')"
"$S" init H --space-id "$sg" >/dev/null
"$S" member add G "$("$S" id H)"
"$S" put G contacts p1 name Ada
"$S" put G contacts p2 name Bob
serve g.log G; pG=$port
"$S" sync H "127.0.0.1:$pG" >/dev/null
stop_last
"$S" put G contacts p3 name Cy              # H misses this write
"$S" migrate G >/dev/null
serve g.log G; pG=$port
[ "$("$S" sync H "127.0.0.1:$pG" --json | js 'd["cut_changes"]')" = 1 ] ||
    fail "H did not fetch the change it missed first"
[ "$(epoch H)" = "$(epoch G)" ] && [ "$(hash H)" = "$(hash G)" ] ||
    fail "H did not adopt the genuine compaction"
[ "$("$S" get H contacts p3 name)" = '"Cy"' ] || fail "H lacks the write it missed"
stop_last
printf 'collection contacts 1 -> 2\nrename name -> full_name\n' > lens
"$S" migrate G lens >/dev/null
serve g.log G; pG=$port
"$S" sync H "127.0.0.1:$pG" >/dev/null
[ "$(epoch H)" = "$(epoch G)" ] && [ "$(hash H)" = "$(hash G)" ] ||
    fail "H did not adopt the genuine lens epoch"
[ "$("$S" get H contacts p1 full_name)" = '"Ada"' ] || fail "lens not applied on H"
check "genuine compaction and lens epochs are re-derived and adopted"
