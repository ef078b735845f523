/*
 * w_commit.c: local_commit: how fast local changes become durable.
 *
 * Measured on a fresh replica (default options: durable): 2,000 one-op
 * changes (crdt_txn_begin, one crdt_txn_put, crdt_txn_commit) one after
 * the other, and 200 changes of 100 ops (quick: 200 and 20). Documents
 * are drawn from 10,000, int register "v".
 *
 * References, measured in the same child on the same disk:
 *  - fsync_ref: the disk's sync rate: the same number of (pwrite 4 KiB
 *    at offset 0 + fdatasync). That is the cheapest durable write the
 *    disk offers; ratio_vs_fsync = commits/s / fsyncs/s.
 *  - lmdb_commit_ref: raw LMDB committing the same shape of records (one,
 *    or 100 random documents, per durable txn). LMDB syncs twice per
 *    commit (data pages, then the meta page through its O_DSYNC fd), so
 *    with LMDB underneath ratio_vs_fsync stays near or below 0.5.
 *
 * Sync latency on a shared or virtual disk drifts within seconds, so the
 * work is cut into 10 rounds and each round runs a tenth of every
 * measurement in turn (ours, fsync, LMDB): all of them see the same disk.
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crdt/crdt.h"

#define ROUNDS 10
#define N_DOCS 10000

typedef struct {
    char dir[700];
    uint64_t n1, n100;
} commit_args;

/* out->v[] slots */
enum { V_OURS1, V_OURS100, V_FSYNC, V_LMDB1, V_LMDB100, V_CPU1, V_CPUL1,
       V_USR1, V_USRL1 };

static int
commits(bench_res *out, crdt_replica *r, uint64_t n, int ops, uint64_t *s)
{
    char doc[32];

    for (uint64_t i = 0; i < n; i++) {
        crdt_txn *t;
        int rc = crdt_txn_begin(&t, r);
        if (rc < 0)
            return bench_fail(out, "txn_begin: %s", crdt_strerror(rc));
        for (int j = 0; j < ops; j++) {
            crdt_value v = crdt_value_int(bench_value(s));
            bench_doc_id(doc, 5, bench_rand(s) % N_DOCS);
            if ((rc = crdt_txn_put(t, "c", doc, "v", &v)) < 0) {
                crdt_txn_abort(t);
                return bench_fail(out, "txn_put: %s", crdt_strerror(rc));
            }
        }
        if ((rc = crdt_txn_commit(t, NULL)) < 0)
            return bench_fail(out, "txn_commit: %s", crdt_strerror(rc));
    }
    return 0;
}

static int
fsyncs(bench_res *out, int fd, uint64_t n)
{
    char buf[4096];

    memset(buf, 0xa5, sizeof buf);
    for (uint64_t i = 0; i < n; i++) {
        buf[0] = (char)i;
        if (pwrite(fd, buf, sizeof buf, 0) != (ssize_t)sizeof buf ||
            fdatasync(fd) != 0)
            return bench_fail(out, "fdatasync: %s", strerror(errno));
    }
    return 0;
}

static int
commit_child(bench_res *out, void *ctx)
{
    const commit_args *a = ctx;
    crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
    crdt_replica *r = NULL;
    ref_commit *ref = NULL;
    uint64_t s = g_opts.seed ^ 0xc0ffee;
    char path[800], block[4096];
    double t, c, u;
    int fd = -1, rc = -1;

    o.create = 1;
    snprintf(path, sizeof path, "%s/replica", a->dir);
    if ((rc = crdt_replica_open(&r, path, &o)) < 0)
        return bench_fail(out, "open: %s", crdt_strerror(rc));
    snprintf(path, sizeof path, "%s/lmdb", a->dir);
    if (mkdir(path, 0700) != 0 ||
        ref_commit_open(&ref, path, N_DOCS, s ^ 1, out->err,
                        sizeof out->err) < 0) {
        rc = -1;
        goto done;
    }
    snprintf(path, sizeof path, "%s/fsync.dat", a->dir);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    memset(block, 0, sizeof block);
    /* allocate the block first: the loop then measures flushes only */
    if (fd < 0 || pwrite(fd, block, sizeof block, 0) != (ssize_t)sizeof block ||
        fsync(fd) != 0) {
        rc = bench_fail(out, "%s: %s", path, strerror(errno));
        goto done;
    }
    for (int round = 0; round < ROUNDS; round++) {
        uint64_t n1 = a->n1 / ROUNDS, n100 = a->n100 / ROUNDS;

        t = bench_now();
        c = bench_cpu_seconds();
        u = bench_user_seconds();
        if ((rc = commits(out, r, n1, 1, &s)) < 0)
            goto done;
        out->v[V_OURS1] += bench_now() - t;
        out->v[V_CPU1] += bench_cpu_seconds() - c;
        out->v[V_USR1] += bench_user_seconds() - u;
        t = bench_now();
        if ((rc = fsyncs(out, fd, n1)) < 0)
            goto done;
        out->v[V_FSYNC] += bench_now() - t;
        t = bench_now();
        c = bench_cpu_seconds();
        u = bench_user_seconds();
        if ((rc = ref_commit_run(ref, n1, 1, out->err, sizeof out->err)) < 0)
            goto done;
        out->v[V_LMDB1] += bench_now() - t;
        out->v[V_CPUL1] += bench_cpu_seconds() - c;
        out->v[V_USRL1] += bench_user_seconds() - u;
        t = bench_now();
        if ((rc = commits(out, r, n100, 100, &s)) < 0)
            goto done;
        out->v[V_OURS100] += bench_now() - t;
        t = bench_now();
        if ((rc = ref_commit_run(ref, n100, 100, out->err,
                                 sizeof out->err)) < 0)
            goto done;
        out->v[V_LMDB100] += bench_now() - t;
    }
    rc = 0;
done:
    if (fd >= 0)
        close(fd);
    ref_commit_close(ref);
    crdt_replica_close(r);
    return rc < 0 ? -1 : 0;
}

int
w_commit_run(bench_entry *e)
{
    commit_args a;
    double s1[64], s100[64], sf[64], sl[64], sl100[64], cpu1[64], cpul1[64];
    double usr1[64], usrl1[64];
    int runs = g_opts.runs;
    bench_res res;

    memset(&a, 0, sizeof a);
    a.n1 = g_opts.quick ? 200 : 2000;
    a.n100 = g_opts.quick ? 20 : 200;
    for (int i = 0; i < runs; i++) {
        bench_log("local_commit run %d/%d: %llu one-op + %llu 100-op commits",
                  i + 1, runs, (unsigned long long)a.n1,
                  (unsigned long long)a.n100);
        if (bench_subdir(a.dir, sizeof a.dir, "commit") < 0) {
            entry_failed(e, "cannot create commit dir");
            return -1;
        }
        if (bench_run_child(&res, commit_child, &a) < 0) {
            entry_failed(e, "local_commit: %s", res.err);
            return -1;
        }
        bench_rmtree(a.dir);
        s1[i] = res.v[V_OURS1];
        s100[i] = res.v[V_OURS100];
        sf[i] = res.v[V_FSYNC];
        sl[i] = res.v[V_LMDB1];
        sl100[i] = res.v[V_LMDB100];
        cpu1[i] = res.v[V_CPU1];
        cpul1[i] = res.v[V_CPUL1];
        usr1[i] = res.v[V_USR1];
        usrl1[i] = res.v[V_USRL1];
        bench_log("  %.0f commits/s, fsync %.0f/s, lmdb %.0f commits/s; "
                  "100-op: %.0f commits/s, lmdb %.0f commits/s",
                  (double)a.n1 / s1[i], (double)a.n1 / sf[i],
                  (double)a.n1 / sl[i], (double)a.n100 / s100[i],
                  (double)a.n100 / sl100[i]);
    }
    bench_fig f1 = bench_fig_of(s1, runs), f100 = bench_fig_of(s100, runs);
    bench_fig ff = bench_fig_of(sf, runs), fl = bench_fig_of(sl, runs);
    bench_fig fl100 = bench_fig_of(sl100, runs);
    double c1 = (double)a.n1 / f1.med, c100 = (double)a.n100 / f100.med;
    double fs = (double)a.n1 / ff.med, ls = (double)a.n1 / fl.med;
    double ls100 = (double)a.n100 / fl100.med;
    /* is a one-op commit waiting on the disk or on the CPU? */
    double cpu_us = bench_fig_of(cpu1, runs).med / (double)a.n1 * 1e6;
    double lcpu_us = bench_fig_of(cpul1, runs).med / (double)a.n1 * 1e6;
    double wall_us = f1.med / (double)a.n1 * 1e6;
    double usr_us = bench_fig_of(usr1, runs).med / (double)a.n1 * 1e6;
    double lusr_us = bench_fig_of(usrl1, runs).med / (double)a.n1 * 1e6;

    entry_timing(e, "commits", a.n1, &f1);
    entry_int(e, "ops", a.n1);
    entry_num(e, "ops_per_s", c1);
    entry_obj(e, "reference");
    entry_str(e, "name", "fsync_ref");
    entry_str(e, "what", "pwrite 4 KiB at offset 0 + fdatasync, same dir, "
                         "interleaved with the commits");
    entry_timing(e, "fsyncs", a.n1, &ff);
    entry_end(e);
    entry_num(e, "ratio_vs_fsync", c1 / fs);
    entry_obj(e, "lmdb_commit_ref");
    entry_str(e, "what", "raw LMDB, one 37-byte state-shaped record per "
                         "durable txn");
    entry_timing(e, "commits", a.n1, &fl);
    entry_end(e);
    entry_num(e, "ratio_vs_lmdb_commit", c1 / ls);
    entry_num(e, "cpu_us_per_commit", cpu_us);
    entry_num(e, "lmdb_cpu_us_per_commit", lcpu_us);
    entry_num(e, "cpu_share", cpu_us / wall_us);
    entry_num(e, "user_us_per_commit", usr_us);
    entry_num(e, "lmdb_user_us_per_commit", lusr_us);
    entry_num(e, "user_share", usr_us / wall_us);
    entry_obj(e, "changes_of_100_ops");
    entry_timing(e, "commits", a.n100, &f100);
    entry_int(e, "ops", a.n100 * 100);
    entry_num(e, "ops_per_s", c100 * 100);
    entry_num(e, "ratio_vs_fsync", c100 / fs);
    entry_obj(e, "lmdb_commit_ref");
    entry_str(e, "what", "raw LMDB, 100 state-shaped records (random of "
                         "10,000 docs) per durable txn");
    entry_timing(e, "commits", a.n100, &fl100);
    entry_end(e);
    entry_num(e, "ratio_vs_lmdb_commit", c100 / ls100);
    entry_end(e);

    entry_row(e, "%-12s %9llu com %8.3f s [%.3f..%.3f] %11.0f com/s  "
                 "ratio %.3f vs fsync_ref, %.3f vs lmdb_commit_ref",
              "local_commit", (unsigned long long)a.n1, f1.med, f1.min,
              f1.max, c1, c1 / fs, c1 / ls);
    entry_row(e, "%-12s   one-op commit: %.0f us: user CPU %.0f us (%.0f%%), "
                 "kernel %.0f us (writes, writeback in the syncs), the rest "
                 "waits on the disk; raw LMDB commit: user %.0f us, kernel "
                 "%.0f us",
              "", wall_us, usr_us, 100 * usr_us / wall_us, cpu_us - usr_us,
              lusr_us, lcpu_us - lusr_us);
    entry_row(e, "%-12s %9llu com %8.3f s [%.3f..%.3f] %11.0f com/s  "
                 "100-op changes (%.0f ops/s): %.3f vs fsync_ref, %.3f vs "
                 "lmdb",
              "", (unsigned long long)a.n100, f100.med, f100.min, f100.max,
              c100, c100 * 100, c100 / fs, c100 / ls100);
    entry_row(e, "%-12s %9llu syn %8.3f s [%.3f..%.3f] %11.0f fsyncs/s",
              "  fsync_ref", (unsigned long long)a.n1, ff.med, ff.min, ff.max,
              fs);
    entry_row(e, "%-12s %9llu com %8.3f s [%.3f..%.3f] %11.0f com/s "
                 "(1 record per txn)",
              "  lmdb_commit", (unsigned long long)a.n1, fl.med, fl.min,
              fl.max, ls);
    entry_row(e, "%-12s %9llu com %8.3f s [%.3f..%.3f] %11.0f com/s "
                 "(100 records per txn)",
              "  lmdb_commit", (unsigned long long)a.n100, fl100.med,
              fl100.min, fl100.max, ls100);
    return 0;
}
