/*
 * w_merge.c: w1_merge (merge throughput vs raw LMDB) and memory (peak
 * RSS of that merge at 1x and 4x the history).
 *
 * w1_merge, full size:
 *  - setup (not timed): 4 source replicas of one space each commit
 *    250,000 register writes in changes of 100 ops (one crdt_txn per 100
 *    crdt_txn_put), keys uniform over 10,000 documents of collection
 *    "c", one int field "v", seeded splitmix64. The sources commit one
 *    change each in turn, so their HLC stamps interleave like those of
 *    peers writing at the same time (then about a third of the merged
 *    writes win their LWW comparison and reach LMDB). The sources are
 *    opened with no_sync (they are setup, not measured). Their changes are
 *    exported with crdt_export_* into a spool file, interleaved: 25
 *    changes of each source in turn, so every batch below holds changes
 *    of all four actors, as a sync round with four peers would.
 *  - measured, in a forked child: a FRESH replica (default options:
 *    durable) merges the spool with crdt_merge() in batches of 100
 *    changes (10,000 ops, one LMDB write txn each, 100 calls), then
 *    reads every document with crdt_read_doc() in one read txn. The
 *    spool is read from the file batch by batch inside the timing (it is
 *    in the page cache; this costs a few ms) so that memory holds one
 *    batch, not the whole history.
 *  - reference lmdb_ref (ref_w1_child): the same number of records of
 *    the same key and value sizes (12 and 25 bytes: what libcrdt stores
 *    for one of these register writes), keys drawn the same way, one
 *    durable txn per 10,000 records, then one get per document.
 *
 * memory: the same merge at 1,000,000 ops and at 4,000,000 ops (4
 * sources x 1,000,000, same 10,000 documents: only the history grows),
 * each in its own child with the RSS sampler; growth = peak_4m / peak_1m.
 */
#include "bench.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crdt/crdt.h"


#define N_SOURCES 4
#define CHANGE_OPS 100
#define BATCH_CHANGES 100
#define DOC_WIDTH 5

typedef struct {
    uint64_t ops_per_src, n_docs, seed;
    int change_ops;    /* ops per change */
    int batch_changes; /* changes per merge batch */
    int strip;         /* drop the signature of a change whose successor
                          is in the same batch, as a sync session does */
    char dir[600];   /* scratch for the sources */
    char spool[700]; /* output */
} spool_args;

/* spool file: "SBSP" space(16) then per change: len(4, LE) bytes */

static int
put_u32(FILE *f, uint32_t v)
{
    unsigned char b[4] = { (unsigned char)v, (unsigned char)(v >> 8),
                           (unsigned char)(v >> 16), (unsigned char)(v >> 24) };
    return fwrite(b, 1, 4, f) == 4 ? 0 : -1;
}

static int
make_spool_child(bench_res *out, void *ctx)
{
    const spool_args *a = ctx;
    crdt_replica *src[N_SOURCES] = { NULL };
    crdt_export *ex[N_SOURCES] = { NULL };
    unsigned char space[CRDT_SPACE_ID_BYTES];
    uint64_t n_changes = 0, bytes = 0, seeds[N_SOURCES];
    int live = N_SOURCES, rc = -1;
    unsigned char *hold_buf = NULL, *strip_buf = NULL;
    size_t hold_cap = 0, strip_cap = 0;
    FILE *f = NULL;
    char path[700], doc[32];

    for (int i = 0; i < N_SOURCES; i++) {
        crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;

        o.create = 1;
        o.no_sync = 1; /* setup only: the measured replica is durable */
        o.map_resident = SIZE_MAX; /* no RSS check after every commit */
        o.space_id = i ? space : NULL;
        snprintf(path, sizeof path, "%s/src%d", a->dir, i);
        bench_rmtree(path);
        if ((rc = crdt_replica_open(&src[i], path, &o)) < 0) {
            bench_fail(out, "open source: %s", crdt_strerror(rc));
            goto done;
        }
        if (i == 0)
            crdt_replica_space_id(src[0], space);
        seeds[i] = a->seed * 1000003u + (uint64_t)i + 1;
    }
    /* the peers write at the same time: one change each in turn, so
     * their HLC stamps interleave as concurrent writers' would */
    for (uint64_t done = 0; done < a->ops_per_src;
         done += (uint64_t)a->change_ops) {
        for (int i = 0; i < N_SOURCES; i++) {
            crdt_txn *t;
            if ((rc = crdt_txn_begin(&t, src[i])) < 0) {
                bench_fail(out, "txn_begin: %s", crdt_strerror(rc));
                goto done;
            }
            for (int j = 0; j < a->change_ops; j++) {
                crdt_value v = crdt_value_int(bench_value(&seeds[i]));
                bench_doc_id(doc, DOC_WIDTH,
                             bench_rand(&seeds[i]) % a->n_docs);
                if ((rc = crdt_txn_put(t, "c", doc, "v", &v)) < 0) {
                    crdt_txn_abort(t);
                    bench_fail(out, "txn_put: %s", crdt_strerror(rc));
                    goto done;
                }
            }
            if ((rc = crdt_txn_commit(t, NULL)) < 0) {
                bench_fail(out, "txn_commit: %s", crdt_strerror(rc));
                goto done;
            }
        }
    }
    f = fopen(a->spool, "wb");
    if (f == NULL || fwrite("SBSP", 1, 4, f) != 4 ||
        fwrite(space, 1, sizeof space, f) != sizeof space) {
        bench_fail(out, "spool %s: %s", a->spool, strerror(errno));
        rc = -1;
        goto done;
    }
    for (int i = 0; i < N_SOURCES; i++) {
        if ((rc = crdt_export_begin(&ex[i], src[i], NULL)) < 0) {
            bench_fail(out, "export_begin: %s", crdt_strerror(rc));
            goto done;
        }
    }
    /* interleave: batch_changes / N_SOURCES changes of each in turn */
    while (live > 0) {
        int per = a->batch_changes / N_SOURCES;

        live = 0;
        for (int i = 0; i < N_SOURCES; i++) {
            const unsigned char *p = NULL, *np;
            size_t len = 0, nlen;
            /* one change ahead: is the next one in this batch too? */
            for (int j = 0; ex[i] && j <= per; j++) {
                rc = j < per ? crdt_export_next(ex[i], &np, &nlen)
                             : CRDT_ENOTFOUND;
                if (rc < 0 && rc != CRDT_ENOTFOUND) {
                    bench_fail(out, "export_next: %s", crdt_strerror(rc));
                    goto done;
                }
                if (p != NULL) {
                    if (a->strip && rc == CRDT_OK) {
                        /* its successor follows in this batch */
                        if (len > strip_cap) {
                            free(strip_buf);
                            strip_cap = len * 2;
                            if ((strip_buf = malloc(strip_cap)) == NULL) {
                                rc = bench_fail(out, "out of memory");
                                goto done;
                            }
                        }
                        memcpy(strip_buf, p, len);
                        len = crdt_change_strip_sig(strip_buf, len);
                        p = strip_buf;
                    }
                    if (put_u32(f, (uint32_t)len) < 0 ||
                        fwrite(p, 1, len, f) != len) {
                        bench_fail(out, "spool write: %s", strerror(errno));
                        rc = -1;
                        goto done;
                    }
                    n_changes++;
                    bytes += len;
                    p = NULL;
                }
                if (rc == CRDT_ENOTFOUND) {
                    if (j < per) {
                        crdt_export_end(ex[i]);
                        ex[i] = NULL;
                    }
                    break;
                }
                /* export's buffer lives until the next call: keep a copy */
                if (nlen > hold_cap) {
                    free(hold_buf);
                    hold_cap = nlen * 2;
                    if ((hold_buf = malloc(hold_cap)) == NULL) {
                        rc = bench_fail(out, "out of memory");
                        goto done;
                    }
                }
                memcpy(hold_buf, np, nlen);
                p = hold_buf;
                len = nlen;
            }
            if (ex[i])
                live++;
        }
    }
    rc = 0;
    out->v[0] = (double)n_changes;
    out->v[1] = (double)bytes;
done:
    for (int i = 0; i < N_SOURCES; i++) {
        crdt_export_end(ex[i]);
        crdt_replica_close(src[i]);
        snprintf(path, sizeof path, "%s/src%d", a->dir, i);
        bench_rmtree(path);
    }
    free(hold_buf);
    free(strip_buf);
    if (f != NULL && fclose(f) != 0 && rc == 0)
        rc = bench_fail(out, "spool close: %s", strerror(errno));
    return rc < 0 ? -1 : 0;
}

/* ---- the measured merge ---- */

#define MAX_BATCH 10000

typedef struct {
    FILE *f;
    unsigned char *buf;
    size_t cap;
    size_t batch; /* changes per batch, <= MAX_BATCH */
    crdt_bytes items[MAX_BATCH];
    size_t off[MAX_BATCH];
} spool_reader;

/* Read up to r->batch changes; *n_out = 0 at the end. */
static int
spool_batch(spool_reader *r, size_t *n_out)
{
    size_t n = 0, used = 0;
    unsigned char lb[4];

    while (n < r->batch && fread(lb, 1, 4, r->f) == 4) {
        size_t len = (size_t)lb[0] | (size_t)lb[1] << 8 |
                     (size_t)lb[2] << 16 | (size_t)lb[3] << 24;
        if (used + len > r->cap) {
            size_t cap = (used + len) * 2;
            unsigned char *nb = realloc(r->buf, cap);
            if (nb == NULL)
                return -1;
            r->buf = nb;
            r->cap = cap;
        }
        if (fread(r->buf + used, 1, len, r->f) != len)
            return -1;
        r->off[n] = used;
        r->items[n].len = len;
        used += len;
        n++;
    }
    for (size_t i = 0; i < n; i++)
        r->items[i].data = r->buf + r->off[i];
    *n_out = n;
    return 0;
}

typedef struct {
    const char *spool;
    char dir[700];
    uint64_t n_docs;
    int sample; /* run the RSS sampler thread (memory workload) */
    int batch_changes; /* 0: BATCH_CHANGES */
} merge_args;

static int
count_field(const crdt_field *f, void *ctx)
{
    (void)f;
    (*(uint64_t *)ctx)++;
    return 0;
}

int
w1_read_docs(bench_res *out, crdt_replica *r, uint64_t n_docs,
             uint64_t *docs_out)
{
    crdt_read *rd;
    uint64_t docs = 0, fields = 0;
    char doc[32];
    int rc;

    if ((rc = crdt_read_begin(&rd, r)) < 0)
        return bench_fail(out, "read_begin: %s", crdt_strerror(rc));
    for (uint64_t d = 0; d < n_docs; d++) {
        bench_doc_id(doc, DOC_WIDTH, d);
        rc = crdt_read_doc(rd, "c", doc, count_field, &fields);
        if (rc == CRDT_OK)
            docs++;
        else if (rc != CRDT_ENOTFOUND) {
            crdt_read_end(rd);
            return bench_fail(out, "read_doc: %s", crdt_strerror(rc));
        }
    }
    crdt_read_end(rd);
    *docs_out = docs;
    return 0;
}

static int
merge_child(bench_res *out, void *ctx)
{
    const merge_args *a = ctx;
    crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
    crdt_replica *r = NULL;
    static spool_reader sr; /* large: not on the stack */
    bench_sampler *smp = NULL;
    unsigned char hdr[4 + CRDT_SPACE_ID_BYTES];
    uint64_t ops = 0, changes = 0, batches = 0, docs = 0;
    crdt_merge_report rep;
    double t0, t1, t2, c0;
    int rc = -1;

    memset(&sr, 0, sizeof sr);
    sr.batch = a->batch_changes ? (size_t)a->batch_changes : BATCH_CHANGES;
    sr.f = fopen(a->spool, "rb");
    if (sr.f == NULL)
        return bench_fail(out, "spool %s: %s", a->spool, strerror(errno));
    setvbuf(sr.f, NULL, _IOFBF, 1 << 20); /* before the first read */
    if (fread(hdr, 1, sizeof hdr, sr.f) != sizeof hdr ||
        memcmp(hdr, "SBSP", 4) != 0) {
        fclose(sr.f);
        return bench_fail(out, "spool %s unreadable", a->spool);
    }
    o.create = 1; /* everything else default: durable */
    o.space_id = hdr + 4;
    if ((rc = crdt_replica_open(&r, a->dir, &o)) < 0) {
        bench_fail(out, "open fresh replica: %s", crdt_strerror(rc));
        goto done;
    }
    if (a->sample)
        smp = bench_sampler_start();

    t0 = bench_now();
    c0 = bench_cpu_seconds();
    for (;;) {
        size_t n;
        if (spool_batch(&sr, &n) < 0) {
            rc = bench_fail(out, "spool read failed");
            goto done;
        }
        if (n == 0)
            break;
        if ((rc = crdt_merge(&rep, r, sr.items, n)) < 0) {
            bench_fail(out, "crdt_merge: %s", crdt_strerror(rc));
            goto done;
        }
        ops += rep.ops_applied;
        changes += rep.changes_applied;
        batches++;
        if (rep.pending || rep.duplicates) {
            rc = bench_fail(out, "unexpected pending/duplicates");
            goto done;
        }
    }
    t1 = bench_now();
    if ((rc = w1_read_docs(out, r, a->n_docs, &docs)) < 0)
        goto done;
    t2 = bench_now();
    out->v[0] = t2 - t0;
    out->v[1] = (double)ops;
    out->v[2] = (double)changes;
    out->v[3] = (double)batches;
    out->v[4] = (double)docs;
    out->v[5] = t1 - t0;
    out->v[6] = t2 - t1;
    out->v[7] = (double)bench_dir_bytes(a->dir);
    out->v[9] = bench_status_kib("RssFile");
    out->v[11] = bench_cpu_seconds() - c0; /* merge and reads */
    rc = 0;
done:
    if (smp != NULL)
        bench_sampler_stop(smp, &out->v[8], &out->v[10]);
    crdt_replica_close(r);
    free(sr.buf);
    if (sr.f)
        fclose(sr.f);
    return rc < 0 ? -1 : 0;
}

/* ---- spools shared by w1_merge and memory ---- */

/* slot 0: w1; 1: memory's 4x; 2: w1_small (changes of one op); 3: w1
 * at w1_small's size when that differs (quick) */
static char spool_path[4][700];
static uint64_t spool_ops[4];

static const char *
get_spool(int slot, uint64_t ops_per_src, uint64_t n_docs, bench_entry *e)
{
    spool_args a;
    bench_res res;
    double t0 = bench_now();

    if (spool_ops[slot] == ops_per_src * N_SOURCES)
        return spool_path[slot];
    memset(&a, 0, sizeof a);
    a.ops_per_src = ops_per_src;
    a.n_docs = n_docs;
    a.seed = g_opts.seed + (uint64_t)(slot == 1);
    a.change_ops = slot == 2 ? 1 : CHANGE_OPS;
    a.batch_changes = slot == 2 ? W1_SMALL_BATCH : BATCH_CHANGES;
    a.strip = slot == 2;
    if (bench_subdir(a.dir, sizeof a.dir,
                     slot == 3   ? "sources_s"
                     : slot == 2 ? "sources1"
                     : slot      ? "sources4x"
                                 : "sources") < 0) {
        entry_failed(e, "cannot create %s/sources", g_opts.base);
        return NULL;
    }
    snprintf(a.spool, sizeof a.spool, "%s/changes%d.spool", g_opts.base,
             slot);
    bench_log("setup: %d sources x %llu ops (changes of %d) -> spool",
              N_SOURCES, (unsigned long long)ops_per_src, a.change_ops);
    if (bench_run_child(&res, make_spool_child, &a) < 0) {
        entry_failed(e, "setup: %s", res.err);
        return NULL;
    }
    bench_rmtree(a.dir);
    bench_log("setup done in %.1f s: %.0f changes, %.1f MiB", bench_now() - t0,
              res.v[0], res.v[1] / 1048576);
    snprintf(spool_path[slot], sizeof spool_path[slot], "%s", a.spool);
    spool_ops[slot] = ops_per_src * N_SOURCES;
    return spool_path[slot];
}

static uint64_t
w1_ops_per_src(void)
{
    return g_opts.quick ? 12500 : 250000;
}

static uint64_t
w1_docs(void)
{
    return g_opts.quick ? 500 : 10000;
}

/* One measured merge in a fresh replica; removes it after. */
static int
one_merge_b(bench_res *res, const char *spool, uint64_t n_docs, int run,
            int sample, int batch)
{
    merge_args m;
    char name[64];
    int rc;

    memset(&m, 0, sizeof m);
    m.spool = spool;
    m.n_docs = n_docs;
    m.sample = sample;
    m.batch_changes = batch;
    snprintf(name, sizeof name, "fresh%d", run);
    if (bench_subdir(m.dir, sizeof m.dir, name) < 0)
        return bench_fail(res, "cannot create %s", name);
    bench_rmtree(m.dir); /* the replica creates it */
    rc = bench_run_child(res, merge_child, &m);
    bench_rmtree(m.dir);
    return rc;
}

static int
one_merge(bench_res *res, const char *spool, uint64_t n_docs, int run,
          int sample)
{
    return one_merge_b(res, spool, n_docs, run, sample, 0);
}

/* ---- shared with w_sync.c and w_peers.c (bench.h) ---- */

double g_w1_merge_ops_per_s;

uint64_t
w1_total_ops(void)
{
    return w1_ops_per_src() * N_SOURCES;
}

uint64_t
w1_n_docs(void)
{
    return w1_docs();
}

const char *
w1_spool(bench_entry *e)
{
    return get_spool(0, w1_ops_per_src(), w1_docs(), e);
}

/* Quick: about half of w1's quick size (a whole number of 100-op
 * changes per source), so that the 24,000 one-op commits of the setup
 * stay within the quick budget on a loaded machine. */
static uint64_t
small_ops_per_src(void)
{
    return g_opts.quick ? 6000 : w1_ops_per_src();
}

uint64_t
w1_small_total_ops(void)
{
    return small_ops_per_src() * N_SOURCES;
}

const char *
w1_small_spool(bench_entry *e)
{
    return get_spool(2, small_ops_per_src(), w1_docs(), e);
}

const char *
w1_small_ref_spool(bench_entry *e)
{
    if (small_ops_per_src() == w1_ops_per_src())
        return w1_spool(e);
    return get_spool(3, small_ops_per_src(), w1_docs(), e);
}

int
w1_merge_fresh_batch(bench_res *res, const char *spool, uint64_t expect_ops,
                     int run, int batch_changes)
{
    if (one_merge_b(res, spool, w1_docs(), run, 0, batch_changes) < 0)
        return -1;
    if ((uint64_t)res->v[1] != expect_ops)
        return bench_fail(res, "merged %.0f ops, expected %llu", res->v[1],
                          (unsigned long long)expect_ops);
    return 0;
}

int
w1_merge_fresh(bench_res *res, const char *spool, uint64_t expect_ops,
               int run)
{
    if (one_merge(res, spool, w1_docs(), run, 0) < 0)
        return -1;
    if ((uint64_t)res->v[1] != expect_ops)
        return bench_fail(res, "merged %.0f ops, expected %llu", res->v[1],
                          (unsigned long long)expect_ops);
    return 0;
}

int
w1_merge_into_batch(bench_res *res, const char *spool, const char *dir,
                    int batch_changes)
{
    merge_args m;

    memset(&m, 0, sizeof m);
    m.batch_changes = batch_changes;
    m.spool = spool;
    m.n_docs = w1_docs();
    snprintf(m.dir, sizeof m.dir, "%s", dir);
    return bench_run_child(res, merge_child, &m);
}

int
w_merge_run(bench_entry *e)
{
    uint64_t per = w1_ops_per_src(), n_docs = w1_docs();
    uint64_t n_ops = per * N_SOURCES;
    double sec[64], ref[64], rss[64], msec[64], rsec[64], file[64], cpu[64];
    double bytes = 0, docs = 0;
    int runs = g_opts.runs;
    const char *spool = get_spool(0, per, n_docs, e);

    if (spool == NULL)
        return -1;
    for (int i = 0; i < runs; i++) {
        bench_res res;
        ref_w1_args ra;
        char rdir[700];

        bench_log("w1_merge run %d/%d: merge %llu ops", i + 1, runs,
                  (unsigned long long)n_ops);
        if (one_merge(&res, spool, n_docs, i, 0) < 0) {
            entry_failed(e, "merge: %s", res.err);
            return -1;
        }
        if ((uint64_t)res.v[1] != n_ops) {
            entry_failed(e, "merged %.0f ops, expected %llu", res.v[1],
                         (unsigned long long)n_ops);
            return -1;
        }
        sec[i] = res.v[0];
        msec[i] = res.v[5];
        rsec[i] = res.v[6];
        rss[i] = res.peak_rss_kib;
        file[i] = res.v[9];
        cpu[i] = res.v[11];
        docs = res.v[4];
        bytes = res.v[7];
        bench_log("  %.3f s (%.0f ops/s), peak RSS %.1f MiB", sec[i],
                  (double)n_ops / sec[i], rss[i] / 1024);

        if (bench_subdir(rdir, sizeof rdir, "lmdb_ref") < 0) {
            entry_failed(e, "cannot create lmdb_ref dir");
            return -1;
        }
        ra.dir = rdir;
        ra.n_ops = n_ops;
        ra.n_docs = n_docs;
        ra.batch_ops = (uint64_t)CHANGE_OPS * BATCH_CHANGES;
        ra.seed = g_opts.seed;
        if (bench_run_child(&res, ref_w1_child, &ra) < 0) {
            entry_failed(e, "lmdb_ref: %s", res.err);
            return -1;
        }
        bench_rmtree(rdir);
        ref[i] = res.v[0];
        bench_log("  lmdb_ref %.3f s (%.0f records/s)", ref[i],
                  (double)n_ops / ref[i]);
    }

    bench_fig fs = bench_fig_of(sec, runs), fr = bench_fig_of(ref, runs);
    bench_fig fm = bench_fig_of(msec, runs), frd = bench_fig_of(rsec, runs);
    bench_fig frss = bench_fig_of(rss, runs), ffile = bench_fig_of(file, runs);
    bench_fig fcpu = bench_fig_of(cpu, runs);
    double ours = (double)n_ops / fs.med, theirs = (double)n_ops / fr.med;

    g_w1_merge_ops_per_s = ours;
    entry_timing(e, "ops", n_ops, &fs);
    entry_int(e, "sources", N_SOURCES);
    entry_int(e, "docs", n_docs);
    entry_int(e, "docs_read", (uint64_t)docs);
    entry_int(e, "change_ops", CHANGE_OPS);
    entry_int(e, "batch_changes", BATCH_CHANGES);
    entry_int(e, "batch_ops", (uint64_t)CHANGE_OPS * BATCH_CHANGES);
    entry_num(e, "merge_seconds", fm.med);
    entry_num(e, "read_seconds", frd.med);
    entry_num(e, "cpu_seconds", fcpu.med);
    entry_mib(e, "peak_rss_mib", &frss);
    entry_mib(e, "file_rss_end_mib", &ffile);
    entry_num(e, "replica_mib", bytes / 1048576);
    entry_obj(e, "reference");
    entry_str(e, "name", "lmdb_ref");
    entry_str(e, "what", "raw LMDB: one 12-byte key / 25-byte value record "
                         "per op, one durable txn per batch, then one get "
                         "per document");
    entry_timing(e, "ops", n_ops, &fr);
    entry_end(e);
    entry_num(e, "ratio_vs_lmdb", ours / theirs);
    entry_row(e, "%-12s %9llu ops %8.3f s [%.3f..%.3f] %11.0f ops/s  "
                 "ratio %.3f vs lmdb_ref",
              "w1_merge", (unsigned long long)n_ops, fs.med, fs.min, fs.max,
              ours, ours / theirs);
    entry_row(e, "%-12s   merge %.3f s + read %llu docs %.3f s (CPU %.3f s); "
                 "replica %.1f MiB; peak RSS %.1f MiB",
              "", fm.med, (unsigned long long)docs, frd.med, fcpu.med,
              bytes / 1048576, frss.med / 1024);
    entry_row(e, "%-12s %9llu rec %8.3f s [%.3f..%.3f] %11.0f rec/s",
              "  lmdb_ref", (unsigned long long)n_ops, fr.med, fr.min,
              fr.max, theirs);
    return 0;
}

/* memory: one size, @p runs children with the sampler. */
typedef struct {
    uint64_t ops;
    bench_fig hwm, anon, file, sec;
} mem_size;

static int
mem_measure(mem_size *m, bench_entry *e, int slot, uint64_t per,
            uint64_t n_docs)
{
    double hwm[64], anon[64], file[64], sec[64];
    int runs = g_opts.runs;
    const char *spool = get_spool(slot, per, n_docs, e);
    bench_res res;

    if (spool == NULL)
        return -1;
    m->ops = per * N_SOURCES;
    for (int i = 0; i < runs; i++) {
        bench_log("memory run %d/%d: merge %llu ops", i + 1, runs,
                  (unsigned long long)m->ops);
        if (one_merge(&res, spool, n_docs, i, 1) < 0) {
            entry_failed(e, "merge %llu: %s", (unsigned long long)m->ops,
                         res.err);
            return -1;
        }
        if ((uint64_t)res.v[1] != m->ops) {
            entry_failed(e, "merged %.0f ops, expected %llu", res.v[1],
                         (unsigned long long)m->ops);
            return -1;
        }
        hwm[i] = res.peak_rss_kib;
        anon[i] = res.v[8];
        file[i] = res.v[10];
        sec[i] = res.v[0];
        bench_log("  %.3f s, peak RSS %.1f MiB (sampled peaks: private %.1f "
                  "MiB, LMDB map %.1f MiB)",
                  sec[i], hwm[i] / 1024, anon[i] / 1024, file[i] / 1024);
    }
    m->hwm = bench_fig_of(hwm, runs);
    m->anon = bench_fig_of(anon, runs);
    m->file = bench_fig_of(file, runs);
    m->sec = bench_fig_of(sec, runs);
    return 0;
}

int
w_memory_run(bench_entry *e)
{
    uint64_t n_docs = w1_docs();
    mem_size s, l;

    if (mem_measure(&s, e, 0, w1_ops_per_src(), n_docs) < 0 ||
        mem_measure(&l, e, 1, g_opts.quick ? 50000 : 1000000, n_docs) < 0)
        return -1;

    entry_int(e, "ops", s.ops);
    entry_num(e, "seconds", s.sec.med);
    entry_num(e, "min", s.sec.min);
    entry_num(e, "max", s.sec.max);
    entry_num(e, "ops_per_s", (double)s.ops / s.sec.med);
    entry_mib(e, "peak_rss_mib", &s.hwm);
    entry_mib(e, "peak_anon_mib", &s.anon);
    entry_mib(e, "peak_file_mib", &s.file);
    entry_obj(e, "large");
    entry_timing(e, "ops", l.ops, &l.sec);
    entry_mib(e, "peak_rss_mib", &l.hwm);
    entry_mib(e, "peak_anon_mib", &l.anon);
    entry_mib(e, "peak_file_mib", &l.file);
    entry_end(e);
    entry_num(e, "growth", l.hwm.med / s.hwm.med);
    entry_num(e, "growth_anon", l.anon.med / s.anon.med);
    entry_str(e, "what", "w1_merge at 1x and 4x the ops (same documents), "
                         "each in its own child: VmHWM, and RssAnon / "
                         "RssFile sampled every ms");
    entry_str(e, "reference", "none (targets: < 100 MiB, growth < 1.25x)");
    entry_row(e, "%-12s %9llu ops peak RSS %7.1f MiB [%.1f..%.1f]  "
                 "private %.1f, LMDB map %.1f",
              "memory", (unsigned long long)s.ops, s.hwm.med / 1024,
              s.hwm.min / 1024, s.hwm.max / 1024, s.anon.med / 1024,
              s.file.med / 1024);
    entry_row(e, "%-12s %9llu ops peak RSS %7.1f MiB [%.1f..%.1f]  "
                 "private %.1f, LMDB map %.1f",
              "", (unsigned long long)l.ops, l.hwm.med / 1024,
              l.hwm.min / 1024, l.hwm.max / 1024, l.anon.med / 1024,
              l.file.med / 1024);
    entry_row(e, "%-12s   growth %.3fx (private: %.3fx); 4x merge at "
                 "%.0f ops/s",
              "", l.hwm.med / s.hwm.med, l.anon.med / s.anon.med,
              (double)l.ops / l.sec.med);
    return 0;
}

int
w1_merge_into(bench_res *res, const char *spool, const char *dir)
{
    return w1_merge_into_batch(res, spool, dir, 0);
}
