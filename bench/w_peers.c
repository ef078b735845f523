/*
 * w_peers.c: peers: the W1 merge on Yjs, Automerge and Loro, against
 * w1_merge of the same run.
 *
 * The peers run in node: bench/peers/w1.js (its header says how it maps
 * w1 onto each library: same generator, seeds, document keys, changes of
 * 100 ops, batches of 100 changes interleaved by source; timed: a fresh
 * document merges every change, then every document is read once). This
 * file finds the script, installs its npm packages on first use
 * (`npm install --no-audit --no-fund` in bench/peers, when node_modules
 * lacks one of them), runs
 *
 *   node --expose-gc w1.js --ops N --docs D --seed S --runs R
 *
 * and reads its JSON lines. ratio_vs_best_peer = w1_merge ops/s (the
 * median of the w1_merge workload of this run; measured here if that
 * workload did not run) / the fastest peer's ops/s.
 *
 * STRATA_BENCH_NO_NPM=1 never runs npm (offline machines: the entry is
 * then "not run" when a package is missing).
 *
 * The script is found in $STRATA_BENCH_PEERS_DIR, else in the source tree
 * this binary was built from (STRATA_SOURCE_DIR/bench/peers), else next
 * to the binary (../../bench/peers, ../bench/peers). No node, no script,
 * a failed npm install or a failed node run make the entry "not run:
 * <reason>", never a failure: the peers are optional.
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_PEERS 8
#define NODE_LIMIT_S 3600 /* the whole node run */

static const char *const PACKAGES[] = { "yjs", "@automerge/automerge",
                                        "loro-crdt" };

static void
not_run(bench_entry *e, const char *fmt, ...) BENCH_FMT(2, 3);

static void
not_run(bench_entry *e, const char *fmt, ...)
{
    va_list ap;

    e->status = 1;
    va_start(ap, fmt);
    vsnprintf(e->reason, sizeof e->reason, fmt, ap);
    va_end(ap);
}

static int
is_file(const char *p)
{
    struct stat st;

    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* The directory holding w1.js, into @p out; -1 if none. */
static int
find_peers_dir(char *out, size_t size)
{
    const char *env = getenv("STRATA_BENCH_PEERS_DIR");
    char exe[PATH_MAX], path[PATH_MAX + 64];
    ssize_t n;

    if (env != NULL && env[0]) {
        snprintf(out, size, "%s", env);
        snprintf(path, sizeof path, "%s/w1.js", out);
        return is_file(path) ? 0 : -1; /* explicit: no fallback */
    }
#ifdef STRATA_SOURCE_DIR
    snprintf(out, size, "%s/bench/peers", STRATA_SOURCE_DIR);
    snprintf(path, sizeof path, "%s/w1.js", out);
    if (is_file(path))
        return 0;
#endif
    n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        char *slash;
        static const char *const rel[] = { "/../../bench/peers",
                                           "/../bench/peers" };

        exe[n] = 0;
        slash = strrchr(exe, '/');
        if (slash != NULL)
            *slash = 0;
        for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
            int a = snprintf(out, size, "%s%s", exe, rel[i]);
            int b = snprintf(path, sizeof path, "%s/w1.js", out);
            if (a < 0 || (size_t)a >= size || b < 0 ||
                (size_t)b >= sizeof path)
                continue; /* too long to be ours */
            if (is_file(path))
                return 0;
        }
    }
    return -1;
}

/*
 * Run @p argv in @p cwd. With @p out, its stdout is collected there (up
 * to @p cap - 1 bytes, NUL-terminated); else it goes to our stderr when
 * verbose. stderr goes to ours when verbose, else to /dev/null. Killed
 * after @p limit_s seconds. @return the exit status (0..255), 127 if it
 * could not be executed, -1 on a local error or a timeout, -2 - signal
 * when killed by a signal.
 */
int
bench_run_prog(char *const argv[], const char *cwd, char *out, size_t cap,
         int limit_s, char *why, size_t why_size)
{
    int p[2] = { -1, -1 }, status = 0;
    size_t used = 0;
    double end = bench_now() + limit_s;
    pid_t pid;

    if (out != NULL && pipe(p) != 0) {
        snprintf(why, why_size, "pipe: %s", strerror(errno));
        return -1;
    }
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    if (pid < 0) {
        snprintf(why, why_size, "fork: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);

        if (null >= 0)
            dup2(null, 0);
        if (out != NULL) {
            dup2(p[1], 1);
            close(p[0]);
            close(p[1]);
        } else if (g_opts.verbose) {
            dup2(2, 1);
        } else if (null >= 0) {
            dup2(null, 1);
        }
        if (!g_opts.verbose && null >= 0)
            dup2(null, 2);
        if (cwd != NULL && chdir(cwd) != 0)
            _exit(126);
        execvp(argv[0], argv);
        _exit(127);
    }
    if (out != NULL) {
        close(p[1]);
        for (;;) {
            struct pollfd pfd = { p[0], POLLIN, 0 };
            int left = (int)((end - bench_now()) * 1000);
            char sink[4096];
            ssize_t r;

            if (left <= 0) {
                kill(pid, SIGKILL);
                snprintf(why, why_size, "%s timed out after %d s", argv[0],
                         limit_s);
                break;
            }
            if (poll(&pfd, 1, left) <= 0)
                continue;
            if (used + 1 < cap)
                r = read(p[0], out + used, cap - 1 - used);
            else
                r = read(p[0], sink, sizeof sink);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                break;
            if (used + 1 < cap)
                used += (size_t)r;
        }
        out[used] = 0;
        close(p[0]);
    }
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (why[0])
        return -1;
    if (WIFSIGNALED(status)) {
        snprintf(why, why_size, "%s killed by signal %d", argv[0],
                 WTERMSIG(status));
        return -2 - WTERMSIG(status);
    }
    return WEXITSTATUS(status);
}

/* ---- the JSON lines of w1.js (flat objects) ---- */

static const char *
json_key(const char *line, const char *key)
{
    char pat[80];
    const char *p;

    snprintf(pat, sizeof pat, "\"%s\":", key);
    p = strstr(line, pat);
    return p ? p + strlen(pat) : NULL;
}

int
bench_json_num(const char *line, const char *key, double *v)
{
    const char *p = json_key(line, key);
    char *end;

    if (p == NULL)
        return -1;
    *v = strtod(p, &end);
    return end == p ? -1 : 0;
}

int
bench_json_str(const char *line, const char *key, char *out, size_t size)
{
    const char *p = json_key(line, key);
    size_t n = 0;

    if (p == NULL || *p != '"')
        return -1;
    for (p++; *p && *p != '"' && *p != '\n'; p++) {
        if (*p == '\\' && p[1])
            p++;
        if (n + 1 < size)
            out[n++] = *p;
    }
    out[n] = 0;
    return 0;
}

int
bench_peers_prepare(bench_entry *e, char *dir, size_t dir_size,
                    char *nodever, size_t nodever_size)
{
    char path[PATH_MAX + 64], why[300] = "";
    int rc;

    if (find_peers_dir(dir, dir_size) < 0) {
        not_run(e, "bench/peers/w1.js not found (set "
                   "STRATA_BENCH_PEERS_DIR)");
        return 1;
    }
    {
        char *argv[] = { "node", "--version", NULL };
        rc = bench_run_prog(argv, NULL, nodever, nodever_size, 60, why,
                            sizeof why);
        if (rc != 0) {
            not_run(e, "node is not available (%s)",
                    rc == 127 ? "not found in PATH"
                    : why[0]  ? why
                              : "node --version failed");
            return 1;
        }
        nodever[strcspn(nodever, "\r\n")] = 0;
    }
    for (size_t i = 0; i < sizeof PACKAGES / sizeof PACKAGES[0]; i++) {
        snprintf(path, sizeof path, "%s/node_modules/%s/package.json", dir,
                 PACKAGES[i]);
        if (is_file(path))
            continue;
        char *argv[] = { "npm", "install", "--no-audit", "--no-fund", NULL };
        const char *no = getenv("STRATA_BENCH_NO_NPM");

        if (no != NULL && no[0] && strcmp(no, "0") != 0) {
            not_run(e, "npm package %s is not installed in %s and "
                       "STRATA_BENCH_NO_NPM is set",
                    PACKAGES[i], dir);
            return 1;
        }
        bench_log("peers: %s missing: npm install --no-audit --no-fund in %s",
                  PACKAGES[i], dir);
        rc = bench_run_prog(argv, dir, NULL, 0, 600, why, sizeof why);
        if (rc != 0) {
            not_run(e, "npm install in %s failed (%s)", dir,
                    rc == 127 ? "npm not found in PATH"
                    : why[0]  ? why
                              : "see its output");
            return 1;
        }
        break;
    }
    for (size_t i = 0; i < sizeof PACKAGES / sizeof PACKAGES[0]; i++) {
        snprintf(path, sizeof path, "%s/node_modules/%s/package.json", dir,
                 PACKAGES[i]);
        if (!is_file(path)) {
            not_run(e, "npm package %s is not installed in %s", PACKAGES[i],
                    dir);
            return 1;
        }
    }
    return 0;
}

typedef struct {
    char name[40], version[40], error[160];
    double ops, seconds, min, max, ops_per_s, docs_read, update_bytes,
        setup_seconds;
} peer;

int
w_peers_run(bench_entry *e)
{
    static char buf[1 << 16];
    char dir[PATH_MAX], path[PATH_MAX + 64], why[300] = "";
    char nodever[64] = "", a_ops[32], a_docs[32], a_seed[32], a_runs[32];
    peer peers[MAX_PEERS];
    int n_peers = 0, best = -1, rc;
    uint64_t n_ops = w1_total_ops(), n_docs = w1_n_docs();
    double ours = g_w1_merge_ops_per_s, ref_sec[64];
    const char *ref_from = "w1_merge of this run";
    bench_fig fr = { 0, 0, 0, 0 };

    if (bench_peers_prepare(e, dir, sizeof dir, nodever, sizeof nodever) != 0)
        return 0;

    /* the reference: w1_merge of this run, or measured here */
    if (ours <= 0) {
        const char *spool = w1_spool(e);
        bench_res res;

        if (spool == NULL)
            return -1;
        for (int i = 0; i < g_opts.runs; i++) {
            bench_log("peers: w1_merge reference run %d/%d", i + 1,
                      g_opts.runs);
            if (w1_merge_fresh(&res, spool, n_ops, i) < 0) {
                entry_failed(e, "w1_merge reference: %s", res.err);
                return -1;
            }
            ref_sec[i] = res.v[0];
        }
        fr = bench_fig_of(ref_sec, g_opts.runs);
        ours = (double)n_ops / fr.med;
        ref_from = "w1_merge measured by this workload";
    }

    snprintf(path, sizeof path, "%s/w1.js", dir);
    snprintf(a_ops, sizeof a_ops, "%llu", (unsigned long long)n_ops);
    snprintf(a_docs, sizeof a_docs, "%llu", (unsigned long long)n_docs);
    snprintf(a_seed, sizeof a_seed, "%llu", (unsigned long long)g_opts.seed);
    snprintf(a_runs, sizeof a_runs, "%d", g_opts.runs);
    {
        char *argv[] = { "node",  "--expose-gc", path,   "--ops", a_ops,
                         "--docs", a_docs,       "--seed", a_seed, "--runs",
                         a_runs,  g_opts.verbose ? NULL : "--quiet", NULL };
        double t0 = bench_now();

        bench_log("peers: node %s w1.js --ops %s --docs %s --seed %s "
                  "--runs %s",
                  nodever, a_ops, a_docs, a_seed, a_runs);
        rc = bench_run_prog(argv, dir, buf, sizeof buf, NODE_LIMIT_S, why,
                      sizeof why);
        bench_log("peers: node done in %.1f s", bench_now() - t0);
    }
    for (char *line = buf, *nl; line && *line; line = nl) {
        peer *p = &peers[n_peers];

        nl = strchr(line, '\n');
        if (nl != NULL)
            *nl++ = 0;
        if (line[0] != '{' || n_peers >= MAX_PEERS)
            continue;
        memset(p, 0, sizeof *p);
        if (bench_json_str(line, "name", p->name, sizeof p->name) < 0)
            continue;
        bench_json_str(line, "version", p->version, sizeof p->version);
        if (bench_json_str(line, "error", p->error, sizeof p->error) == 0 ||
            bench_json_num(line, "ops_per_s", &p->ops_per_s) < 0 ||
            bench_json_num(line, "seconds", &p->seconds) < 0) {
            if (!p->error[0])
                snprintf(p->error, sizeof p->error, "unreadable result");
            bench_log("peers: %s: %s", p->name, p->error);
        }
        bench_json_num(line, "ops", &p->ops);
        bench_json_num(line, "min", &p->min);
        bench_json_num(line, "max", &p->max);
        bench_json_num(line, "docs_read", &p->docs_read);
        bench_json_num(line, "update_bytes", &p->update_bytes);
        bench_json_num(line, "setup_seconds", &p->setup_seconds);
        if (!p->error[0] && (uint64_t)p->ops != n_ops)
            snprintf(p->error, sizeof p->error, "ran %.0f ops, not %llu",
                     p->ops, (unsigned long long)n_ops);
        if (!p->error[0] && (best < 0 || p->ops_per_s > peers[best].ops_per_s))
            best = n_peers;
        n_peers++;
    }
    if (best < 0) {
        if (n_peers > 0)
            not_run(e, "no peer ran: %s: %s", peers[0].name, peers[0].error);
        else
            not_run(e, "node w1.js gave no result (%s)",
                    why[0] ? why : rc ? "non-zero exit" : "empty output");
        return 0;
    }

    entry_str(e, "node", nodever);
    entry_str(e, "script", "bench/peers/w1.js");
    entry_int(e, "ops", n_ops);
    entry_int(e, "docs", n_docs);
    entry_str(e, "what", "w1 on each library: a fresh document merges 4 "
                         "sources' updates (changes of 100 ops, batches of "
                         "100 changes), then every document is read; in "
                         "memory, no durability");
    for (int i = 0; i < n_peers; i++) {
        const peer *p = &peers[i];

        entry_obj(e, p->name);
        entry_str(e, "version", p->version);
        if (p->error[0]) {
            entry_str(e, "error", p->error);
            entry_end(e);
            entry_row(e, "%-12s %-10s %s", i ? "" : "peers", p->name,
                      p->error);
            continue;
        }
        bench_fig f = { p->seconds, p->min, p->max, g_opts.runs };
        entry_timing(e, "ops", n_ops, &f);
        entry_int(e, "docs_read", (uint64_t)p->docs_read);
        entry_num(e, "update_mib", p->update_bytes / 1048576);
        entry_int(e, "update_bytes", (uint64_t)p->update_bytes);
        /* the library's updates for the whole w1, per op: beside
         * w1_sync.wire_bytes_per_op */
        entry_num(e, "wire_bytes_per_op", p->update_bytes / (double)n_ops);
        entry_num(e, "setup_seconds", p->setup_seconds);
        entry_end(e);
        entry_row(e, "%-12s %-10s %9llu ops %8.3f s [%.3f..%.3f] %11.0f "
                     "ops/s  (%s)",
                  i ? "" : "peers", p->name, (unsigned long long)n_ops,
                  p->seconds, p->min, p->max, p->ops_per_s, p->version);
    }
    entry_obj(e, "reference");
    entry_str(e, "name", "w1_merge");
    entry_str(e, "from", ref_from);
    entry_num(e, "ops_per_s", ours);
    if (fr.n > 0)
        entry_timing(e, "ops", n_ops, &fr);
    entry_end(e);
    entry_str(e, "best_peer", peers[best].name);
    entry_num(e, "best_peer_ops_per_s", peers[best].ops_per_s);
    entry_num(e, "ratio_vs_best_peer", ours / peers[best].ops_per_s);
    entry_row(e, "%-12s   w1_merge %.0f ops/s (%s) / %s %.0f ops/s: "
                 "ratio %.3f",
              "", ours, ref_from, peers[best].name, peers[best].ops_per_s,
              ours / peers[best].ops_per_s);
    return 0;
}
