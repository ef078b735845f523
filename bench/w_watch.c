/*
 * w_watch.c: watch_latency: how soon a commit by another process reaches
 * a watcher (crdt_feed_watch + crdt_feed_since, what `strata watch` and
 * the Node binding's subscribe do).
 *
 * A writer process makes 1,000 one-op durable commits (quick: 200), one
 * document each, 2 ms apart (an app's pace, not a flood: a flood measures
 * the queue, not the wake-up); before each it stores its clock
 * (CLOCK_MONOTONIC, one clock for every process) in a shared page. The
 * watcher process sleeps in poll() on the watch, reads what changed since
 * its cursor and notes when each document arrived. Latency = arrival -
 * the writer's clock before crdt_txn_begin: it includes the commit itself
 * (a watcher cannot see a write before it is durable), so the commit's
 * own duration, measured in the writer, is the reference: ratio =
 * latency / commit time. Target: p99 < 50 ms. Also reported: the
 * watcher's CPU per commit seen.
 */
#include "bench.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "crdt/crdt.h"

#define MAX_N 1000
#define GAP_US 2000

typedef struct {
    char dir[700];
    int n;
} watch_args;

typedef struct {
    double begin[MAX_N];  /* writer: before txn_begin */
    double commit[MAX_N]; /* writer: commit duration */
    double seen[MAX_N];   /* watcher: arrival */
    int writer_rc;
} shared_t;

enum { V_P50, V_P99, V_MAX, V_C50, V_C99, V_CPU_US, V_SEEN };

static double
mono(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int
cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static double
pct(double *v, int n, double p)
{
    int i = (int)(p * (n - 1) + 0.5);

    return v[i < n ? i : n - 1];
}

static void
writer(const char *path, shared_t *sh, int n)
{
    crdt_replica *r;
    char doc[32];

    if (crdt_replica_open(&r, path, NULL) < 0) {
        sh->writer_rc = 1;
        _exit(1);
    }
    for (int i = 0; i < n; i++) {
        crdt_txn *t;
        crdt_value v = crdt_value_int(i);
        double t0;

        usleep(GAP_US);
        snprintf(doc, sizeof doc, "d%05d", i);
        t0 = mono();
        sh->begin[i] = t0; /* read after the commit the watcher saw */
        if (crdt_txn_begin(&t, r) < 0 || crdt_txn_put(t, "w", doc, "v", &v) < 0 ||
            crdt_txn_commit(t, NULL) < 0) {
            sh->writer_rc = 2;
            _exit(2);
        }
        sh->commit[i] = mono() - t0;
    }
    crdt_replica_close(r);
    _exit(0);
}

typedef struct {
    shared_t *sh;
    int n, got;
} seen_ctx;

static int
on_event(void *ctx, const crdt_feed_event *ev)
{
    seen_ctx *s = ctx;
    double now = mono();

    for (size_t i = 0; i < ev->ndocs; i++) {
        int k = atoi(ev->docs[i].doc + 1);
        if (k >= 0 && k < s->n && s->sh->seen[k] == 0) {
            s->sh->seen[k] = now;
            s->got++;
        }
    }
    return 0;
}

static int
watch_child(bench_res *out, void *ctx)
{
    const watch_args *a = ctx;
    crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
    crdt_replica *r = NULL;
    crdt_feed_watch *w = NULL;
    crdt_feed_cursor cur, next;
    shared_t *sh;
    seen_ctx sc;
    char path[800];
    double lat[MAX_N], com[MAX_N], cpu0, deadline;
    pid_t pid;
    int rc, status;

    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE,
              MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED)
        return bench_fail(out, "mmap: %s", strerror(errno));
    memset(sh, 0, sizeof *sh);
    o.create = 1;
    snprintf(path, sizeof path, "%s/replica", a->dir);
    if ((rc = crdt_replica_open(&r, path, &o)) < 0)
        return bench_fail(out, "open: %s", crdt_strerror(rc));
    if ((rc = crdt_feed_watch_open(&w, path)) < 0 ||
        (rc = crdt_feed_head(&cur, r)) < 0) {
        crdt_replica_close(r);
        return bench_fail(out, "watch: %s", crdt_strerror(rc));
    }
    pid = fork();
    if (pid < 0)
        return bench_fail(out, "fork: %s", strerror(errno));
    if (pid == 0)
        writer(path, sh, a->n);
    sc.sh = sh;
    sc.n = a->n;
    sc.got = 0;
    cpu0 = bench_cpu_seconds();
    deadline = mono() + 60;
    while (sc.got < a->n && mono() < deadline) {
        rc = crdt_feed_since(r, &cur, "w", NULL, 0, on_event, &sc, &next);
        if (rc < 0)
            break;
        if (next.seq != cur.seq) {
            cur = next;
            continue;
        }
        if (waitpid(pid, &status, WNOHANG) == pid) {
            pid = -1;
            if (sc.got < a->n) { /* nothing more is coming: last look */
                crdt_feed_since(r, &cur, "w", NULL, 0, on_event, &sc, &next);
                break;
            }
        }
        if ((rc = crdt_feed_watch_wait(w, 1000)) < 0)
            break;
    }
    out->v[V_CPU_US] = (bench_cpu_seconds() - cpu0) / a->n * 1e6;
    if (pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    crdt_feed_watch_close(w);
    crdt_replica_close(r);
    if (sc.got < a->n) {
        rc = bench_fail(out, "watcher saw %d of %d commits (writer %d)",
                        sc.got, a->n, sh->writer_rc);
        munmap(sh, sizeof *sh);
        return rc;
    }
    for (int i = 0; i < a->n; i++) {
        lat[i] = sh->seen[i] - sh->begin[i];
        com[i] = sh->commit[i];
    }
    qsort(lat, (size_t)a->n, sizeof lat[0], cmp_d);
    qsort(com, (size_t)a->n, sizeof com[0], cmp_d);
    out->v[V_P50] = pct(lat, a->n, 0.50);
    out->v[V_P99] = pct(lat, a->n, 0.99);
    out->v[V_MAX] = lat[a->n - 1];
    out->v[V_C50] = pct(com, a->n, 0.50);
    out->v[V_C99] = pct(com, a->n, 0.99);
    out->v[V_SEEN] = sc.got;
    munmap(sh, sizeof *sh);
    return 0;
}

int
w_watch_run(bench_entry *e)
{
    watch_args a;
    double p50[64], p99[64], mx[64], c50[64], c99[64], cpu[64];
    int runs = g_opts.runs;
    bench_res res;

    memset(&a, 0, sizeof a);
    a.n = g_opts.quick ? 200 : MAX_N;
    for (int i = 0; i < runs; i++) {
        bench_log("watch_latency run %d/%d: %d commits by another process",
                  i + 1, runs, a.n);
        if (bench_subdir(a.dir, sizeof a.dir, "watch") < 0) {
            entry_failed(e, "cannot create watch dir");
            return -1;
        }
        if (bench_run_child(&res, watch_child, &a) < 0) {
            entry_failed(e, "watch_latency: %s", res.err);
            return -1;
        }
        bench_rmtree(a.dir);
        p50[i] = res.v[V_P50] * 1e3;
        p99[i] = res.v[V_P99] * 1e3;
        mx[i] = res.v[V_MAX] * 1e3;
        c50[i] = res.v[V_C50] * 1e3;
        c99[i] = res.v[V_C99] * 1e3;
        cpu[i] = res.v[V_CPU_US];
        bench_log("  p50 %.2f ms, p99 %.2f ms, max %.2f ms; commit p50 "
                  "%.2f ms, p99 %.2f ms", p50[i], p99[i], mx[i], c50[i],
                  c99[i]);
    }
    bench_fig f50 = bench_fig_of(p50, runs), f99 = bench_fig_of(p99, runs);
    bench_fig fmx = bench_fig_of(mx, runs), fc50 = bench_fig_of(c50, runs);
    bench_fig fc99 = bench_fig_of(c99, runs), fcpu = bench_fig_of(cpu, runs);

    entry_int(e, "commits", (uint64_t)a.n);
    entry_num(e, "p50_ms", f50.med);
    entry_num(e, "p50_ms_min", f50.min);
    entry_num(e, "p50_ms_max", f50.max);
    entry_num(e, "p99_ms", f99.med);
    entry_num(e, "p99_ms_min", f99.min);
    entry_num(e, "p99_ms_max", f99.max);
    entry_num(e, "max_ms", fmx.med);
    entry_num(e, "target_p99_ms", 50);
    entry_num(e, "watcher_cpu_us_per_commit", fcpu.med);
    entry_obj(e, "reference");
    entry_str(e, "name", "commit_ref");
    entry_str(e, "what", "the durable commit itself, timed in the writer "
                         "(begin to commit returned)");
    entry_num(e, "p50_ms", fc50.med);
    entry_num(e, "p99_ms", fc99.med);
    entry_end(e);
    entry_num(e, "ratio_p50_vs_commit", f50.med / fc50.med);
    entry_num(e, "ratio_p99_vs_commit", f99.med / fc99.med);
    entry_row(e, "%-12s %9d com  p50 %.2f ms [%.2f..%.2f]  p99 %.2f ms "
                 "[%.2f..%.2f]  max %.2f ms  (target p99 < 50 ms)",
              "watch_latency", a.n, f50.med, f50.min, f50.max, f99.med,
              f99.min, f99.max, fmx.med);
    entry_row(e, "%-12s   reference: the commit itself p50 %.2f ms, p99 "
                 "%.2f ms; ratio p50 %.2f, p99 %.2f; watcher CPU %.0f us "
                 "per commit",
              "", fc50.med, fc99.med, f50.med / fc50.med, f99.med / fc99.med,
              fcpu.med);
    return 0;
}
