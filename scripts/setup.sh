#!/usr/bin/env bash
# Install every Debian package Strata needs to build, test and run.
# Run as root on a fresh Debian machine; safe to run again.
set -euo pipefail

packages=(
    build-essential cmake pkg-config git
    liblmdb-dev lmdb-utils       # storage
    libsodium-dev                # identity, signatures, key exchange, AEAD
    libmsgpack-dev               # wire and log encoding (msgpack-c)
    libjansson-dev               # JSON for the CLI (values, --json, import)
    zlib1g-dev                   # reading the gzip editing traces (tests)
    libmicrohttpd-dev            # HTTP for `strata serve --metrics`
    check                        # unit tests
    clang libclang-rt-14-dev     # sanitizers and libFuzzer
    llvm                         # llvm-profdata, llvm-cov: scripts/coverage.sh
    python3                      # test relay and helpers
    curl                         # tests scrape the metrics endpoint
    valgrind                     # leak check of the CLI scenario
)
# The Node.js binding (bindings/node) and its tests: node, npm (packs and
# installs the addon into a scratch project) and node_api.h, which Debian
# ships in libnode-dev. A nodejs from another repository (NodeSource)
# brings all three and conflicts with Debian's npm: keep it then.
command -v node >/dev/null || packages+=(nodejs)
command -v npm >/dev/null || packages+=(npm)
[ -f /usr/include/node/node_api.h ] || packages+=(libnode-dev)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$p")
done

if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "setup: need root to install: ${missing[*]}" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
