#!/usr/bin/env bash
# What an embedding project sees after `cmake --install`: the install tree
# is moved elsewhere (the .pc files and the CMake package must follow
# it), every installed header stands alone and includes only installed
# headers, and two consumers build and run against it: one with
# pkg-config + make (shared and static), one with find_package(Strata)
# (Strata::net and Strata::net_static). Every version number agrees. A
# packager's configure needs neither Check nor the benches, and finds
# msgpack-c under either pkg-config name.
set -euo pipefail
S="$1"
build="$(cd "$(dirname "$S")/.." && pwd)"
src="$(cd "$(dirname "$0")/../.." && pwd)"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/strata-install.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

cmake --install "$build" --prefix "$tmp/first" >/dev/null
mv "$tmp/first" "$tmp/prefix"          # relocated after the install
P="$tmp/prefix"
libdir="$(find "$P" -name strata-crdt.pc -printf '%h\n' | head -n1)"
libdir="${libdir%/pkgconfig}"
libdir="${libdir#$P/}"
[ -n "$libdir" ] || fail "no pkgconfig directory installed"
[ ! -e "$P/bin/strata-bench" ] || fail "strata-bench installed into bin/"
[ -x "$P/bin/strata" ] || fail "strata not installed into bin/"

version="$("$S" --version)"
version="${version#strata }"
echo "ok: strata --version says $version"

# -- headers: each compiles alone; includes resolve inside the install ----
nh=0
while IFS= read -r h; do
    rel="${h#$P/include/}"
    while IFS= read -r inc; do
        [ -f "$P/include/$inc" ] ||
            fail "installed $rel includes \"$inc\", which is not installed"
    done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$h")
    printf '#include "%s"\n' "$rel" > "$tmp/one.c"
    cc -std=c11 -Wall -Wextra -Werror -fsyntax-only -I"$P/include" "$tmp/one.c" ||
        fail "installed $rel does not compile on its own"
    nh=$((nh + 1))
done < <(find "$P/include" -name '*.h' | sort)
echo "ok: $nh installed headers stand alone and include only installed headers"

# the app-facing umbrellas: crdt/crdt.h leaves the storage layer's
# crdt/raw.h out; crdtnet/crdtnet.h brings every crdtnet header
cat > "$tmp/umbrella.c" <<'C'
#include <crdt/crdt.h>
#ifdef CRDT_RAW_H
#error "crdt/crdt.h includes crdt/raw.h"
#endif
#include <crdtnet/crdtnet.h>
int (*sync_fn)(crdtnet_report *, crdt_replica *, const char *, const char *,
               const crdtnet_conn_options *) = crdtnet_sync_connect;
void (*stop_fn)(crdtnet_daemon *) = crdtnet_daemon_stop;
int (*hs_fn)(crdtnet_hs **, const crdtnet_hs_config *) = crdtnet_hs_new;
C
cc -std=c11 -Wall -Werror -fsyntax-only -I"$P/include" "$tmp/umbrella.c" ||
    fail "the umbrella headers"
echo "ok: crdt/crdt.h leaves crdt/raw.h out; crdtnet/crdtnet.h is the whole API"

# -- consumer 1: pkg-config + make ----------------------------------------
mkdir "$tmp/app"
cat > "$tmp/app/app.c" <<'C'
#include <crdt/crdt.h>
#include <crdtnet/crdtnet.h>
#include <epoch/epoch.h>
#include <stdio.h>
#include <string.h>

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
    if (strcmp(crdt_version(), CRDT_VERSION_STRING) != 0 ||
        strcmp(epoch_version(), crdt_version()) != 0 ||
        strcmp(crdtnet_version(), crdt_version()) != 0)
        return 2;
    o.create = 1;
    if (crdt_replica_open(&r, argv[1], &o) != CRDT_OK || epoch_attach(r) != 0 ||
        crdt_txn_begin(&t, r) != CRDT_OK ||
        crdt_txn_put(t, "c", "d", "f", &v) != CRDT_OK ||
        crdt_txn_commit(t, NULL) != CRDT_OK || crdt_read_begin(&rd, r) != 0 ||
        crdt_read_field(&f, rd, "c", "d", "f") != CRDT_OK)
        return 1;
    printf("%lld %s\n", (long long)f.value.u.i, crdt_version());
    crdt_read_end(rd);
    crdt_replica_close(r);
    return 0;
}
C
cat > "$tmp/app/Makefile" <<'MK'
PKGS = strata-net
CFLAGS = -std=c11 -Wall -Werror $(shell pkg-config --cflags $(PKGS))
# the static archives, then the system libraries they need
SYSLIBS = $(filter-out -lstrata_%,$(shell pkg-config --libs --static $(PKGS)))
app: app.c
	$(CC) $(CFLAGS) app.c -o app $(shell pkg-config --libs $(PKGS))
app_static: app.c
	$(CC) $(CFLAGS) app.c -o app_static \
	    -Wl,-Bstatic $(shell pkg-config --libs $(PKGS)) -Wl,-Bdynamic $(SYSLIBS)
MK
export PKG_CONFIG_PATH="$P/$libdir/pkgconfig"
pcv="$(pkg-config --modversion strata-net)"
[ "$pcv" = "$version" ] || fail "strata-net.pc says $pcv, strata says $version"
inc="$(pkg-config --variable=includedir strata-crdt)"
[ "$(cd "$inc" && pwd)" = "$P/include" ] ||
    fail "strata-crdt.pc does not follow the moved prefix: $inc"
make -s -C "$tmp/app" app app_static >/dev/null
out="$(LD_LIBRARY_PATH="$P/$libdir" "$tmp/app/app" "$tmp/r1")" ||
    fail "pkg-config app (shared) exited $?"
[ "$out" = "42 $version" ] || fail "pkg-config app (shared): $out"
out="$("$tmp/app/app_static" "$tmp/r2")" || fail "pkg-config app (static) exited $?"
[ "$out" = "42 $version" ] || fail "pkg-config app (static): $out"
ldd "$tmp/app/app_static" | grep -q libstrata && fail "app_static loads a shared libstrata"
echo "ok: pkg-config + make consumer ran against the moved prefix (shared and static)"

# -- consumer 2: find_package(Strata) + CMake ------------------------------
mkdir "$tmp/capp"
cp "$tmp/app/app.c" "$tmp/capp/app.c"
cat > "$tmp/capp/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.18)
project(todo C)
find_package(Strata 0.1 REQUIRED)
message(STATUS "Strata_VERSION=${Strata_VERSION}")
add_executable(app app.c)
target_link_libraries(app PRIVATE Strata::net)
add_executable(app_static app.c)
target_link_libraries(app_static PRIVATE Strata::net_static)
CM
cmake -S "$tmp/capp" -B "$tmp/capp/build" -DCMAKE_PREFIX_PATH="$P" \
    > "$tmp/capp/configure.log" || { cat "$tmp/capp/configure.log"; fail "find_package(Strata)"; }
grep -q "Strata_VERSION=$version\$" "$tmp/capp/configure.log" ||
    fail "CMake package version is not $version"
cmake --build "$tmp/capp/build" >/dev/null
out="$("$tmp/capp/build/app" "$tmp/r3")" || fail "CMake app (shared) exited $?"
[ "$out" = "42 $version" ] || fail "CMake app (shared): $out"
out="$("$tmp/capp/build/app_static" "$tmp/r4")" || fail "CMake app (static) exited $?"
[ "$out" = "42 $version" ] || fail "CMake app (static): $out"
# the package is versioned: a release it is not must not be accepted
mkdir "$tmp/vapp"
cat > "$tmp/vapp/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.18)
project(wants_future NONE)
find_package(Strata 99 REQUIRED)
CM
if cmake -S "$tmp/vapp" -B "$tmp/vapp/build" -DCMAKE_PREFIX_PATH="$P" >/dev/null 2>&1; then
    fail "find_package(Strata 99) accepted release $version"
fi
echo "ok: find_package(Strata) consumer ran (Strata::net, Strata::net_static); version checked"

# -- a packager's configure: no Check, no benches, msgpack-c 6's name ------
mkdir "$tmp/pc"
for m in lmdb libsodium jansson; do
    cp "$(pkg-config --path "$m")" "$tmp/pc/"
done
cp "$(pkg-config --path msgpack-c 2>/dev/null || pkg-config --path msgpack)" \
    "$tmp/pc/msgpack-c.pc"
PKG_CONFIG_LIBDIR="$tmp/pc" PKG_CONFIG_PATH="" cmake -S "$src" -B "$tmp/pkgbuild" \
    -DSTRATA_BUILD_TESTS=OFF -DSTRATA_BUILD_BENCH=OFF > "$tmp/pkgbuild.log" 2>&1 ||
    { cat "$tmp/pkgbuild.log"; fail "configure without Check and with msgpack-c.pc"; }
grep -q '^Requires.private:.* msgpack-c$' "$tmp/pkgbuild/libcrdt/strata-crdt.pc" ||
    fail "strata-crdt.pc does not require the msgpack-c module it was built with"
echo "ok: library build configures without Check or benches, finds msgpack-c"
