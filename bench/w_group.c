/*
 * w_group.c: group_commit: how many durable commits per second 16
 * threads of one process get through one shared replica handle,
 * against one thread committing alone (a real app with several
 * threads, or a daemon merging while the app writes).
 *
 * Each thread makes one-op durable changes (one crdt_txn_put of an int
 * register) with crdt_txn_write(), which commits concurrent callers'
 * changes in one LMDB txn, on a fresh replica opened with group_commit
 * (syncs shared as well). The one-writer reference commits the same
 * changes from one thread on the same replica, with crdt_txn_begin()
 * and crdt_txn_commit(). The same 16 threads also commit with
 * crdt_txn_begin() and crdt_txn_commit() (a txn each, syncs shared):
 * the figure without the shared txn. And the same 16 threads commit
 * with crdt_txn_write() on a replica opened no_sync: what the commits'
 * own work allows when a sync costs nothing (the bound of the ratio on a
 * fast disk), beside the cpus the process kept busy. Sync latency on a
 * shared disk drifts within seconds, so the work is cut into rounds and
 * each round runs a share of all four in turn.
 *
 * Figures: aggregate commits/s (ratio_vs_one_writer = commits/s of the
 * 16 threads / commits/s of one; txn_commit_ratio_vs_one_writer for the
 * threads committing a txn each), and the latency of each commit (from
 * the call to its return: the commit is durable then), p50 and p99;
 * cpus_busy (the process's cpu time / wall time of the 16 threads),
 * no_sync_commits_per_s and no_sync_ratio_vs_one_writer.
 */
#include "bench.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crdt/crdt.h"

#define ROUNDS 5
#define THREADS 16
#define N_DOCS 10000

typedef struct {
    char dir[700];
    uint64_t n1;     /* one writer's commits, over all rounds */
    uint64_t per_th; /* each thread's commits, over all rounds */
} group_args;

enum { V_ONE_S, V_GROUP_S, V_ONE_P50, V_ONE_P99, V_P50, V_P99, V_MAX,
       V_ONE_DISK, V_GROUP_DISK, V_TXN_S, V_TXN_P50, V_TXN_P99, V_GROUP_CPU,
       V_NOSYNC_S, V_NOSYNC_CPU };

typedef struct {
    crdt_replica *r;
    uint64_t n, seed;
    double *lat; /* n latencies, seconds */
    int rc;
    int shared; /* crdt_txn_write(), not a txn of its own */
    char err[160];
    struct gate *start;
} writer;

/* Threads start together once all exist (or not at all). */
struct gate {
    pthread_mutex_t m;
    pthread_cond_t c;
    int open, cancel;
};

typedef struct {
    const char *doc;
    const crdt_value *v;
} put_args;

static int
put_one(crdt_txn *t, void *arg)
{
    const put_args *p = arg;

    return crdt_txn_put(t, "c", p->doc, "v", p->v);
}

static int
commit_one(writer *w, uint64_t i)
{
    crdt_txn *t;
    char doc[32];
    crdt_value v = crdt_value_int(bench_value(&w->seed));
    double t0 = bench_now();
    int rc;

    bench_doc_id(doc, 5, bench_rand(&w->seed) % N_DOCS);
    if (w->shared) {
        put_args p = { doc, &v };
        if ((rc = crdt_txn_write(w->r, put_one, &p, NULL)) < 0) {
            snprintf(w->err, sizeof w->err, "txn_write: %s",
                     crdt_strerror(rc));
            return rc;
        }
        w->lat[i] = bench_now() - t0;
        return 0;
    }
    if ((rc = crdt_txn_begin(&t, w->r)) < 0) {
        snprintf(w->err, sizeof w->err, "txn_begin: %s", crdt_strerror(rc));
        return rc;
    }
    if ((rc = crdt_txn_put(t, "c", doc, "v", &v)) < 0) {
        crdt_txn_abort(t);
        snprintf(w->err, sizeof w->err, "txn_put: %s", crdt_strerror(rc));
        return rc;
    }
    if ((rc = crdt_txn_commit(t, NULL)) < 0) {
        snprintf(w->err, sizeof w->err, "txn_commit: %s", crdt_strerror(rc));
        return rc;
    }
    w->lat[i] = bench_now() - t0;
    return 0;
}

static void *
writer_main(void *arg)
{
    writer *w = arg;

    if (w->start != NULL) {
        pthread_mutex_lock(&w->start->m);
        while (!w->start->open)
            pthread_cond_wait(&w->start->c, &w->start->m);
        if (w->start->cancel)
            w->n = 0;
        pthread_mutex_unlock(&w->start->m);
    }
    for (uint64_t i = 0; i < w->n && w->rc == 0; i++)
        w->rc = commit_one(w, i);
    return NULL;
}

static int
cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double
pct(double *x, uint64_t n, double p)
{
    uint64_t i = (uint64_t)(p * (double)(n - 1) + 0.5);
    return x[i < n ? i : n - 1];
}

/* Add the device's bytes written between @p before and @p after to
 * @p sum; once either is unknown the sum stays -1. */
static void
disk_add(double *sum, double before, double after)
{
    if (*sum < 0 || before < 0 || after < before)
        *sum = -1;
    else
        *sum += after - before;
}

/* One round of the 16 threads; adds their wall time and the disk's
 * bytes to @p secs and @p disk. */
static int
run_threads(bench_res *out, crdt_replica *r, const char *path, int shared,
            uint64_t nt, double *lat, uint64_t seed, double *secs,
            double *disk, double *cpu)
{
    writer w[THREADS];
    pthread_t th[THREADS];
    struct gate start = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
                          0, 0 };
    int started = 0;
    double t, d, c;

    for (int i = 0; i < THREADS; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].r = r;
        w[i].n = nt;
        w[i].shared = shared;
        w[i].seed = seed + (uint64_t)i;
        w[i].lat = lat + (uint64_t)i * nt;
        w[i].start = &start;
        if (pthread_create(&th[i], NULL, writer_main, &w[i]) != 0)
            break;
        started++;
    }
    pthread_mutex_lock(&start.m);
    start.open = 1;
    start.cancel = started < THREADS;
    d = bench_disk_written(path);
    c = bench_cpu_seconds();
    pthread_cond_broadcast(&start.c);
    pthread_mutex_unlock(&start.m);
    t = bench_now();
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    *secs += bench_now() - t;
    if (cpu != NULL)
        *cpu += bench_cpu_seconds() - c;
    if (disk != NULL)
        disk_add(disk, d, bench_disk_written(path));
    if (started < THREADS)
        return bench_fail(out, "pthread_create failed");
    for (int i = 0; i < THREADS; i++)
        if (w[i].rc != 0)
            return bench_fail(out, "thread %d: %s", i, w[i].err);
    return 0;
}

static int
group_child(bench_res *out, void *ctx)
{
    const group_args *a = ctx;
    crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
    crdt_replica *r = NULL;
    uint64_t n1 = a->n1 / ROUNDS, nt = a->per_th / ROUNDS;
    uint64_t ng = nt * THREADS;
    double *lat1 = calloc(n1 * ROUNDS, sizeof *lat1);
    double *latg = calloc(ng * ROUNDS, sizeof *latg);
    double *latt = calloc(ng * ROUNDS, sizeof *latt);
    double *latn = calloc(ng * ROUNDS, sizeof *latn);
    double txn_disk = 0;
    crdt_replica *nosync = NULL;
    char path[800], nspath[800];
    int rc = -1;

    o.create = 1;
    o.group_commit = 1; /* every figure: durable, syncs shared */
    snprintf(path, sizeof path, "%s/replica", a->dir);
    snprintf(nspath, sizeof nspath, "%s/no_sync", a->dir);
    if (lat1 == NULL || latg == NULL || latt == NULL || latn == NULL) {
        rc = bench_fail(out, "out of memory");
        goto done;
    }
    if ((rc = crdt_replica_open(&r, path, &o)) < 0) {
        rc = bench_fail(out, "open: %s", crdt_strerror(rc));
        goto done;
    }
    /* the ceiling: the same changes with no sync at all */
    o.group_commit = 0;
    o.no_sync = 1;
    if ((rc = crdt_replica_open(&nosync, nspath, &o)) < 0) {
        rc = bench_fail(out, "open no_sync: %s", crdt_strerror(rc));
        goto done;
    }
    for (int round = 0; round < ROUNDS; round++) {
        writer one;
        uint64_t seed = g_opts.seed * 1000003u + (uint64_t)(round * 64);
        double t, d;

        memset(&one, 0, sizeof one);
        one.r = r;
        one.n = n1;
        one.seed = g_opts.seed ^ (0x51ee7ULL + (uint64_t)round);
        one.lat = lat1 + (uint64_t)round * n1;
        d = bench_disk_written(path);
        t = bench_now();
        writer_main(&one);
        out->v[V_ONE_S] += bench_now() - t;
        disk_add(&out->v[V_ONE_DISK], d, bench_disk_written(path));
        if (one.rc != 0) {
            rc = bench_fail(out, "one writer: %s", one.err);
            goto done;
        }
        if ((rc = run_threads(out, r, path, 1, nt,
                              latg + (uint64_t)round * ng, seed,
                              &out->v[V_GROUP_S], &out->v[V_GROUP_DISK],
                              &out->v[V_GROUP_CPU])) < 0 ||
            (rc = run_threads(out, r, path, 0, nt,
                              latt + (uint64_t)round * ng, seed + 32,
                              &out->v[V_TXN_S], &txn_disk, NULL)) < 0 ||
            (rc = run_threads(out, nosync, nspath, 1, nt,
                              latn + (uint64_t)round * ng, seed,
                              &out->v[V_NOSYNC_S], NULL,
                              &out->v[V_NOSYNC_CPU])) < 0)
            goto done;
    }
    qsort(lat1, n1 * ROUNDS, sizeof *lat1, cmp_d);
    qsort(latg, ng * ROUNDS, sizeof *latg, cmp_d);
    qsort(latt, ng * ROUNDS, sizeof *latt, cmp_d);
    out->v[V_ONE_P50] = pct(lat1, n1 * ROUNDS, 0.50);
    out->v[V_ONE_P99] = pct(lat1, n1 * ROUNDS, 0.99);
    out->v[V_P50] = pct(latg, ng * ROUNDS, 0.50);
    out->v[V_P99] = pct(latg, ng * ROUNDS, 0.99);
    out->v[V_MAX] = latg[ng * ROUNDS - 1];
    out->v[V_TXN_P50] = pct(latt, ng * ROUNDS, 0.50);
    out->v[V_TXN_P99] = pct(latt, ng * ROUNDS, 0.99);
    rc = 0;
done:
    crdt_replica_close(r);
    crdt_replica_close(nosync);
    free(lat1);
    free(latg);
    free(latt);
    free(latn);
    return rc < 0 ? -1 : 0;
}

int
w_group_run(bench_entry *e)
{
    group_args a;
    double s1[64], sg[64], o50[64], o99[64], g50[64], g99[64], gmax[64];
    double d1[64], dg[64], st[64], t50[64], t99[64];
    double gcpu[64], sn[64], ncpu[64];
    int runs = g_opts.runs;
    bench_res res;

    memset(&a, 0, sizeof a);
    a.n1 = g_opts.quick ? 150 : 1000;
    a.per_th = g_opts.quick ? 50 : 250;
    for (int i = 0; i < runs; i++) {
        bench_log("group_commit run %d/%d: %llu commits by one thread, "
                  "%d x %llu by %d threads",
                  i + 1, runs, (unsigned long long)a.n1, THREADS,
                  (unsigned long long)a.per_th, THREADS);
        if (bench_subdir(a.dir, sizeof a.dir, "group") < 0) {
            entry_failed(e, "cannot create group dir");
            return -1;
        }
        if (bench_run_child(&res, group_child, &a) < 0) {
            bench_rmtree(a.dir);
            entry_failed(e, "group_commit: %s", res.err);
            return -1;
        }
        bench_rmtree(a.dir);
        s1[i] = res.v[V_ONE_S];
        sg[i] = res.v[V_GROUP_S];
        o50[i] = res.v[V_ONE_P50] * 1e6;
        o99[i] = res.v[V_ONE_P99] * 1e6;
        g50[i] = res.v[V_P50] * 1e6;
        g99[i] = res.v[V_P99] * 1e6;
        gmax[i] = res.v[V_MAX] * 1e6;
        st[i] = res.v[V_TXN_S];
        t50[i] = res.v[V_TXN_P50] * 1e6;
        t99[i] = res.v[V_TXN_P99] * 1e6;
        gcpu[i] = res.v[V_GROUP_CPU] / res.v[V_GROUP_S];
        sn[i] = res.v[V_NOSYNC_S];
        ncpu[i] = res.v[V_NOSYNC_CPU] / res.v[V_NOSYNC_S];
        d1[i] = res.v[V_ONE_DISK] / 1024.0 / (double)a.n1;
        dg[i] = res.v[V_GROUP_DISK] / 1024.0 /
                (double)(a.per_th * THREADS);
        bench_log("  one writer %.0f commits/s (p50 %.0f us, p99 %.0f us); "
                  "%d threads %.0f commits/s (p50 %.0f us, p99 %.0f us)",
                  (double)a.n1 / s1[i], o50[i], o99[i], THREADS,
                  (double)(a.per_th * THREADS) / sg[i], g50[i], g99[i]);
        bench_log("  %d threads, a txn each: %.0f commits/s (p50 %.0f us, "
                  "p99 %.0f us)", THREADS,
                  (double)(a.per_th * THREADS) / st[i], t50[i], t99[i]);
        bench_log("  %d threads, no sync: %.0f commits/s (%.2f cpus busy; "
                  "%.2f with the syncs)", THREADS,
                  (double)(a.per_th * THREADS) / sn[i], ncpu[i], gcpu[i]);
    }
    uint64_t ng = a.per_th * THREADS;
    bench_fig f1 = bench_fig_of(s1, runs), fg = bench_fig_of(sg, runs);
    bench_fig fo50 = bench_fig_of(o50, runs), fo99 = bench_fig_of(o99, runs);
    bench_fig fg50 = bench_fig_of(g50, runs), fg99 = bench_fig_of(g99, runs);
    bench_fig fgmax = bench_fig_of(gmax, runs);
    bench_fig ft = bench_fig_of(st, runs);
    bench_fig ft50 = bench_fig_of(t50, runs), ft99 = bench_fig_of(t99, runs);
    double c1 = (double)a.n1 / f1.med, cg = (double)ng / fg.med;
    double ct = (double)ng / ft.med;

    entry_int(e, "threads", THREADS);
    entry_timing(e, "commits", ng, &fg);
    entry_num(e, "p50_us", fg50.med);
    entry_num(e, "p99_us", fg99.med);
    entry_num(e, "max_us", fgmax.med);
    entry_obj(e, "reference");
    entry_str(e, "name", "one_writer");
    entry_str(e, "what", "the same one-op durable commits by one thread on "
                         "the same replica, interleaved in rounds");
    entry_timing(e, "commits", a.n1, &f1);
    entry_end(e);
    entry_num(e, "one_writer_commits_per_s", c1);
    entry_num(e, "one_writer_p50_us", fo50.med);
    entry_num(e, "one_writer_p99_us", fo99.med);
    entry_num(e, "ratio_vs_one_writer", cg / c1);
    entry_str(e, "how", "crdt_txn_write(): the threads' changes share "
                        "LMDB txns and syncs");
    /* the same threads each with a txn of their own (syncs shared) */
    entry_num(e, "txn_commit_commits_per_s", ct);
    entry_num(e, "txn_commit_p50_us", ft50.med);
    entry_num(e, "txn_commit_p99_us", ft99.med);
    entry_num(e, "txn_commit_ratio_vs_one_writer", ct / c1);
    /* what the disk wrote per commit, the whole device's count: LMDB
     * copies each page a txn changes, so this, not the commit's CPU, is
     * what 16 threads sharing syncs run into on a fast disk */
    bench_fig fd1 = bench_fig_of(d1, runs), fdg = bench_fig_of(dg, runs);
    int have_disk = fd1.min >= 0 && fdg.min >= 0;
    if (have_disk) {
        entry_num(e, "disk_kib_per_commit", fdg.med);
        entry_num(e, "one_writer_disk_kib_per_commit", fd1.med);
    }
    entry_row(e, "%-12s %9llu com %8.3f s [%.3f..%.3f] %11.0f com/s  "
                 "ratio %.3f vs one writer (%d threads, one replica)",
              "group_commit", (unsigned long long)ng, fg.med, fg.min,
              fg.max, cg, cg / c1, THREADS);
    entry_row(e, "%-12s   latency p50 %.0f us, p99 %.0f us, max %.0f us; "
                 "one writer p50 %.0f us, p99 %.0f us",
              "", fg50.med, fg99.med, fgmax.med, fo50.med, fo99.med);
    entry_row(e, "%-12s %9llu com %8.3f s [%.3f..%.3f] %11.0f com/s",
              "  one_writer", (unsigned long long)a.n1, f1.med, f1.min,
              f1.max, c1);
    entry_row(e, "%-12s %9llu com %8.3f s [%.3f..%.3f] %11.0f com/s  "
                 "ratio %.3f (a txn each; p50 %.0f us, p99 %.0f us)",
              "  txn_commit", (unsigned long long)ng, ft.med, ft.min, ft.max,
              ct, ct / c1, ft50.med, ft99.med);
    if (have_disk)
        entry_row(e, "%-12s   the disk wrote %.1f KiB per commit (%d "
                     "threads), %.1f KiB (one writer)",
                  "", fdg.med, THREADS, fd1.med);
    /* what bounds it: the cpus the process kept busy meanwhile, and the
     * same threads' rate with no sync at all (the commits' own work) */
    bench_fig fn = bench_fig_of(sn, runs);
    bench_fig fgc = bench_fig_of(gcpu, runs), fnc = bench_fig_of(ncpu, runs);
    double cn = (double)ng / fn.med;
    entry_num(e, "cpus_busy", fgc.med);
    entry_num(e, "no_sync_commits_per_s", cn);
    entry_num(e, "no_sync_cpus_busy", fnc.med);
    entry_num(e, "no_sync_ratio_vs_one_writer", cn / c1);
    entry_row(e, "%-12s   %.2f cpus busy; with no sync at all %.0f com/s, "
                 "ratio %.3f (%.2f cpus busy)",
              "", fgc.med, cn, cn / c1, fnc.med);
    return 0;
}
