#!/usr/bin/env bash
# Every address the CLI takes is read by the library's one parser, the
# same the daemon uses for its peers: an IPv6 literal needs brackets
# ("[::1]:7400"), the port is a number 0..65535, and a malformed address
# is a usage error (exit 1) before anything is opened or dialled.
set -euo pipefail
S="$1"
work="$(mktemp -d "${TMPDIR:-/tmp}/strata-hostport.XXXXXX")"
trap 'rm -rf "$work"' EXIT
cd "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }
expect() { # expect CODE PATTERN CMD...: exit code and a one-line error
    local want="$1" pat="$2"; shift 2
    set +e; timeout 20 "$@" >out.txt 2>err.txt; local got=$?; set -e
    [ "$got" = "$want" ] || { cat err.txt; fail "$* -> exit $got, want $want"; }
    grep -q "^strata: .*$pat" err.txt ||
        { cat err.txt; fail "$*: no clear error matching '$pat'"; }
    echo "ok: exit $want: $(head -1 err.txt)"
}

"$S" init R >/dev/null
for bad in '::1:7400' 'fe80::1:7400' '127.0.0.1:70000' '127.0.0.1:http' \
           '[::1]7400' '127.0.0.1:' ':7400' '[]:7400'; do
    expect 1 "bad address" "$S" sync R "$bad"
    expect 1 "bad peer address" "$S" serve R --listen 127.0.0.1:0 --peer "$bad"
    expect 1 "bad address" "$S" serve R --listen "$bad"
done
# a well-formed address gets as far as dialling: nothing listens there
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
set +e; timeout 20 "$S" sync R "127.0.0.1:$port" >out.txt 2>err.txt; got=$?; set -e
[ "$got" = 7 ] || { cat err.txt; fail "sync to a closed port: exit $got, want 7"; }
echo "ok: a good address is dialled (exit 7: nothing listens)"
