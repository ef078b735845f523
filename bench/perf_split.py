#!/usr/bin/env python3
"""Split a strata-bench perf profile by process and by where time goes.

    perf record -e cpu-clock -F 4000 -g -o w1.data \
        build-prof/bench/strata-bench --only w1_merge --runs 1 -q
    perf script -i w1.data -F comm,pid,ip,sym,dso > w1.txt
    python3 bench/perf_split.py w1.txt merge_child

Each workload run is a forked child; the child whose stacks contain the
given function (merge_child, migrate_child, commit_child, ...) is kept.
LMDB and libsodium come without frame pointers in Debian, so their
stacks stop at the library: a sample in them is credited to the library
and to the deepest of our frames the unwinder still saw, if any.
Prints, as shares of the child's samples: per library, per leaf
("self", our function or library:our caller), and inclusive per function.
"""
import collections
import sys


def samples_of(path):
    """Yield (pid, [(sym, dso), ...] leaf first) per sample."""
    pid, stack = None, []
    for line in open(path, errors="replace"):
        if not line.strip():
            if pid is not None:
                yield pid, stack
            pid, stack = None, []
            continue
        if not line[0].isspace():
            pid, stack = line.split()[1], []
            continue
        parts = line.strip().split(None, 1)
        if len(parts) < 2:
            continue
        sym, _, dso = parts[1].rpartition(" (")
        stack.append((sym.split("+0x")[0], dso.rstrip(")")))
    if pid is not None:
        yield pid, stack


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: perf_split.py PERF_SCRIPT_OUTPUT CHILD_FUNCTION")
    by_pid = collections.defaultdict(list)
    for pid, stack in samples_of(sys.argv[1]):
        by_pid[pid].append(stack)
    want = [p for p, st in by_pid.items()
            if any(sym == sys.argv[2] for s in st for sym, _ in s)]
    if not want:
        sys.exit("no process ran " + sys.argv[2])
    st = max((by_pid[p] for p in want), key=len)
    n = len(st)
    lib, leaf, incl = (collections.Counter() for _ in range(3))
    for s in st:
        if not s:
            continue
        sym, dso = s[0]
        name = dso.rsplit("/", 1)[-1]
        lib[name] += 1
        ours = "strata" in dso
        caller = next((x for x, d in s if "strata" in d), "?")
        leaf[sym if ours else name + ":" + caller] += 1
        for x in {x for x, _ in s}:
            incl[x] += 1
    print("%d samples" % n)
    for title, c, k in (("library", lib, 8), ("self", leaf, 25),
                        ("inclusive", incl, 30)):
        print("== " + title)
        for key, v in c.most_common(k):
            print("%6.2f%%  %s" % (100.0 * v / n, key))


if __name__ == "__main__":
    main()
