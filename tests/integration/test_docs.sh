#!/usr/bin/env bash
# The docs are true to the tree: no pointer to a document the project
# does not contain, every relative link in docs/ and the READMEs
# resolves, and the default of migrate --retention is the same in the
# code's --help and in the docs.
set -euo pipefail
S="$1"
root="$(cd "$(dirname "$0")/../.." && pwd)"
fail() { echo "FAIL: $*" >&2; exit 1; }
check() { echo "ok: $*"; }
cd "$root"

# documents of the design phase that the repo does not hold
bad="$(grep -rnE '\b(CLI|DESIGN|TESTING|STYLE|TEXT)\.md\b|\bTESTING (B[0-9]|S[0-9]|section)' \
    --include='*.c' --include='*.h' --include='*.md' --include='*.sh' \
    --include='*.py' --include='*.txt' --include='*.cmake' \
    --exclude-dir=build --exclude-dir='build-*' --exclude-dir=.git \
    --exclude-dir=node_modules . | grep -v '^./tests/integration/test_docs.sh:' || true)"
[ -z "$bad" ] || { echo "$bad" >&2; fail "pointers to documents not in the repo"; }
check "no pointer to a document the project does not contain"

python3 - <<'PY' || fail "broken links"
import glob, os, re, sys
bad = []
for md in glob.glob("docs/*.md") + glob.glob("*.md") + glob.glob("*/README.md"):
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", open(md).read()):
        if "://" in target:
            continue
        if not os.path.exists(os.path.join(os.path.dirname(md), target)):
            bad.append(f"{md}: {target}")
if bad:
    print("\n".join(bad), file=sys.stderr)
    sys.exit(1)
PY
check "every relative link in the docs resolves"

help="$("$S" migrate --help)"
default="$(sed -n 's/.*(default \([0-9]*\): keep all).*/\1/p' <<<"$help")"
[ "$default" = 0 ] || fail "migrate --help does not give the retention default"
grep -q -- '--retention N` keeps the archived logs of the last N sealed epochs' docs/cli.md &&
    grep -A1 -- 'keeps the archived logs of the last N sealed epochs' docs/cli.md |
    grep -q '(default 0: keep all)' || fail "docs/cli.md: --retention default"
grep -q -- '`--retention 0` (the default) keeps all' docs/migrations.md ||
    fail "docs/migrations.md: --retention default"
! grep -rn 'last 4 sealed\|(default 4)' docs/ || fail "a retention default of 4 left in docs/"
check "--retention defaults to 0 (keep all) in --help and the docs"
