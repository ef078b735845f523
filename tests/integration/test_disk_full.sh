#!/usr/bin/env bash
# A real full filesystem (a 4 MiB tmpfs, not a capped map): a write, an
# import and a sync that run out of space end with exit 7 and "storage
# full" (LMDB reports the short write as an I/O error), the replica
# keeps exactly what it had, and once space is freed the same commands
# succeed. Needs root to mount the tmpfs; skipped (77) where it cannot.
set -euo pipefail
S="$1"
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/strata-full.XXXXXX")"
pids=()
. "$here/support/lib.sh"
fs="$work/fs"
# the tmpfs is unmounted however the script ends (a timeout's TERM too)
trap 'stop_all; umount "$fs" 2>/dev/null || true; rm -rf "$work"' EXIT
trap 'exit 1' INT TERM
cd "$work"
mkdir "$fs"
if ! mount -t tmpfs -o size=4m tmpfs "$fs" 2>/dev/null; then
    echo "skipped: cannot mount a small tmpfs here (needs root)"
    exit 77
fi

free_kib() { df -k "$fs" | tail -1 | awk '{print $4}'; }
# fill FS leaving KIB free (a file to delete later frees it again)
fill_to() { dd if=/dev/zero of="$fs/filler" bs=1k \
    count=$(( $(free_kib) - $1 )) 2>/dev/null || true; }
expect_full() { # expect_full CMD...: exit 7 and a one-line storage full
    set +e; "$@" >out.txt 2>err.txt; local got=$?; set -e
    [ "$got" = 7 ] || { cat err.txt; fail "strata $2 -> exit $got, want 7"; }
    grep -q "^strata: .*storage full" err.txt ||
        { cat err.txt; fail "strata $2: no 'storage full' error"; }
    echo "ok: exit 7: $(head -1 err.txt)"
}

A="$fs/A"
"$S" init "$A" >/dev/null
sp="$("$S" status "$A" --json | js 'd["space_id"]')"
"$S" init B --space-id "$sp" >/dev/null
"$S" member add "$A" "$("$S" id B)"
"$S" put "$A" c mine v '"kept"'
serve a.log "$A"                 # B learns the space's owner from A
"$S" sync B "127.0.0.1:$port" >/dev/null
stop_last
python3 - <<'EOF'
import json
with open('big.jsonl', 'w') as f:
    for i in range(3000):
        f.write(json.dumps({"op": "put", "coll": "c", "doc": "d%05d" % i,
                            "field": "v", "value": "x" * 300}) + "\n")
EOF
h0="$(hash "$A")"
fill_to 40

# ---- a local write and an import that do not fit ----
big="$(head -c 100000 /dev/zero | tr '\0' y)"
expect_full "$S" put "$A" c huge v "\"$big\""
expect_full "$S" import "$A" big.jsonl --atomic
[ "$(hash "$A")" = "$h0" ] || fail "the state changed after failed writes"
"$S" verify "$A" >/dev/null || fail "verify after a full disk"
[ "$("$S" get "$A" c mine v)" = '"kept"' ] || fail "lost a committed write"
check "writes that do not fit fail whole; the replica verifies"

# ---- a sync that brings more than fits, to a client and to a daemon ----
"$S" import B big.jsonl >/dev/null
serve b.log B
expect_full "$S" sync "$A" "127.0.0.1:$port"
pB=$port
serve a.log "$A"
set +e; "$S" sync B "127.0.0.1:$port" >out.txt 2>err.txt; got=$?; set -e
grep -q "storage full" err.txt || { cat err.txt; fail "B: exit $got, no 'storage full'"; }
wait_for a.log "storage full"     # logged a moment after the client saw it
echo "ok: exit $got: $(head -1 err.txt)"
stop_last
[ "$(hash "$A")" = "$h0" ] || fail "the state changed after a failed sync"
"$S" verify "$A" >/dev/null || fail "verify after a failed sync"
check "a sync into a full disk fails, client or daemon, with nothing half-applied"

# ---- space freed: the same commands succeed ----
rm -f "$fs/filler"
"$S" sync "$A" "127.0.0.1:$pB" >/dev/null || fail "sync after freeing space"
[ "$("$S" get "$A" c d02999 v)" = "\"$(head -c 300 /dev/zero | tr '\0' x)\"" ] ||
    fail "the synced data is not there"
"$S" put "$A" c after v 1 || fail "put after freeing space"
"$S" verify "$A" >/dev/null || fail "verify after freeing space"
[ "$("$S" get "$A" c mine v)" = '"kept"' ] || fail "lost a committed write"
check "after space is freed the same sync and writes succeed"
