#!/usr/bin/env bash
# After `cmake --install`, another C project builds against Strata with
# nothing but pkg-config: shared and static.
set -euo pipefail
S="$1"
build="$(cd "$(dirname "$S")/.." && pwd)"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/strata-install.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
export PKG_CONFIG_PATH="$tmp/prefix/lib/pkgconfig"
pc() { pkg-config --define-variable=prefix="$tmp/prefix" "$@"; }
cat > "$tmp/app.c" <<'C'
#include <crdt/crdt.h>
#include <crdtnet/crdtnet.h>
#include <epoch/epoch.h>
#include <stdio.h>

int
main(int argc, char **argv)
{
    crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
    crdt_replica *r;
    crdt_txn *t;
    crdt_value v = crdt_value_int(42);
    crdt_read *rd;
    crdt_field f;

    (void)argc;
    o.create = 1;
    if (crdt_replica_open(&r, argv[1], &o) != CRDT_OK || epoch_attach(r) != 0 ||
        crdt_txn_begin(&t, r) != CRDT_OK ||
        crdt_txn_put(t, "c", "d", "f", &v) != CRDT_OK ||
        crdt_txn_commit(t, NULL) != CRDT_OK || crdt_read_begin(&rd, r) != 0 ||
        crdt_read_field(&f, rd, "c", "d", "f") != CRDT_OK)
        return 1;
    printf("%lld %s %s\n", (long long)f.value.u.i, epoch_version(),
           crdtnet_version());
    crdt_read_end(rd);
    crdt_replica_close(r);
    return 0;
}
C
cc -std=c11 -Wall -Werror "$tmp/app.c" -o "$tmp/app" $(pc --cflags --libs strata-net)
out="$(LD_LIBRARY_PATH="$tmp/prefix/lib" "$tmp/app" "$tmp/replica")"
[ "${out%% *}" = 42 ] || { echo "FAIL: shared: $out"; exit 1; }
echo "ok: built and ran against the shared libraries: $out"
cc -std=c11 "$tmp/app.c" -o "$tmp/app_static" $(pc --cflags strata-net) \
    "$tmp/prefix/lib/libstrata_crdtnet.a" "$tmp/prefix/lib/libstrata_epoch.a" \
    "$tmp/prefix/lib/libstrata_crdt.a" $(pc --libs --static strata-crdt) -lpthread
out="$("$tmp/app_static" "$tmp/replica2")"
[ "${out%% *}" = 42 ] || { echo "FAIL: static: $out"; exit 1; }
echo "ok: built and ran against the static libraries"
