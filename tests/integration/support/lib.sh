# Helpers sourced by the integration scripts (tests/integration/test_*.sh).
# The caller sets S (the strata binary) and work (its temp dir), cds
# there, and declares pids=() for the daemons to stop at exit.

fail() { echo "FAIL: $*" >&2; exit 1; }
check() { echo "ok: $*"; }
# js EXPR < JSON: evaluate a Python expression on the document d
js() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }
hash() { "$S" status "$1" --json | js 'd["state_hash"]'; }
epoch() { "$S" status "$1" --json | js 'd["epoch"]["id"]'; }
# wait_for FILE PATTERN [COUNT]: up to 10 s for an extended regex to
# match COUNT lines (default 1)
wait_for() {
    local want="${3:-1}"
    for _ in $(seq 1 200); do
        [ "$(grep -Ec "$2" "$1")" -ge "$want" ] && return 0
        sleep 0.05
    done
    cat "$1" >&2
    fail "no \"$2\" ($want) in $1"
}

# serve LOG DIR... [--peer HP]: start a daemon on a free loopback port;
# sets $port and $daemon and records the pid (not in a subshell, so the
# exit trap can stop it)
serve() {
    local log="$1"; shift
    : > "$log"
    "$S" serve "$@" --listen 127.0.0.1:0 >/dev/null 2>"$log" &
    daemon=$!
    pids+=($daemon)
    port=""
    for _ in $(seq 1 100); do
        port="$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$log" | head -1)"
        [ -n "$port" ] && return 0
        sleep 0.05
    done
    cat "$log" >&2
    fail "daemon did not start"
}

# stop the daemon started last
stop_last() { kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true; unset 'pids[-1]'; }

# stop every daemon started here
stop_all() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}

# the exit trap: stop every daemon, remove the temp dir
cleanup() {
    stop_all
    rm -rf "$work"
}
