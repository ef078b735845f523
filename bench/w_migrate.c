/*
 * w_migrate.c: migrate (the migration builder through a four-step lens)
 * and open (open + status on a big replica).
 *
 * Setup (not timed, shared by both): a replica of 1,000,000 documents
 * (quick: 50,000) of collection "c", one int register "v" each, built
 * with 100 crdt_txn of 10,000 puts (no_sync: setup only), so the active
 * log also holds 1,000,000 ops; a tiny replica (one op) for contrast;
 * and a raw LMDB env holding the same number of state-shaped records.
 *
 * migrate, per run: the big replica is copied (not timed) and, in a
 * forked child with default (durable) options, migrated with
 * epoch_builder_new/add_lens/commit through
 *     collection c 1 -> 2 / rename v -> w / add note string default "" /
 *     convert w int -> string / rename w -> value
 * Reference lmdb_rewrite_ref: raw LMDB, ONE txn that reads every record
 * of a 1,000,000-record DB, puts each into a second DB and drops the
 * first, then commits durably (also on a fresh copy per run).
 * Both also report their child's CPU seconds over the timed part
 * (cpu_seconds): on a shared machine the wall time also holds the wait
 * for a CPU and for the disk.
 *
 * open: 20 times crdt_replica_open + crdt_read_begin + crdt_read_stats +
 * crdt_read_vv + close, each timed, in one child (warm page cache).
 */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crdt/crdt.h"
#include "epoch/epoch.h"

#define DOC_WIDTH 7
#define BUILD_TXN 10000
#define N_OPENS 20

static const char LENS[] = "collection c 1 -> 2\n"
                           "rename v -> w\n"
                           "add note string default \"\"\n"
                           "convert w int -> string\n"
                           "rename w -> value\n";

typedef struct {
    char big[700], small[700], ref[700];
    uint64_t n_docs;
    int ready;
} mig_setup;

static mig_setup setup_state;

static int
build_child(bench_res *out, void *ctx)
{
    mig_setup *m = ctx;
    crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
    crdt_replica *r = NULL;
    uint64_t s = g_opts.seed ^ 0x5eed;
    char doc[32];
    int rc;

    o.create = 1;
    o.no_sync = 1; /* setup only */
    if ((rc = crdt_replica_open(&r, m->big, &o)) < 0)
        return bench_fail(out, "open big: %s", crdt_strerror(rc));
    for (uint64_t d = 0; d < m->n_docs;) {
        crdt_txn *t;
        if ((rc = crdt_txn_begin(&t, r)) < 0) {
            crdt_replica_close(r);
            return bench_fail(out, "txn_begin: %s", crdt_strerror(rc));
        }
        for (int j = 0; j < BUILD_TXN && d < m->n_docs; j++, d++) {
            crdt_value v = crdt_value_int(bench_value(&s));
            bench_doc_id(doc, DOC_WIDTH, d);
            if ((rc = crdt_txn_put(t, "c", doc, "v", &v)) < 0)
                break;
        }
        if (rc < 0) {
            crdt_txn_abort(t);
            crdt_replica_close(r);
            return bench_fail(out, "txn_put: %s", crdt_strerror(rc));
        }
        if ((rc = crdt_txn_commit(t, NULL)) < 0) {
            crdt_replica_close(r);
            return bench_fail(out, "txn_commit: %s", crdt_strerror(rc));
        }
    }
    crdt_replica_close(r);
    r = NULL;
    if ((rc = crdt_replica_open(&r, m->small, &o)) < 0)
        return bench_fail(out, "open small: %s", crdt_strerror(rc));
    {
        crdt_txn *t;
        crdt_value v = crdt_value_int(1);
        rc = crdt_txn_begin(&t, r);
        if (rc == CRDT_OK && (rc = crdt_txn_put(t, "c", "d", "v", &v)) < 0)
            crdt_txn_abort(t);
        if (rc == CRDT_OK)
            rc = crdt_txn_commit(t, NULL);
    }
    crdt_replica_close(r);
    if (rc < 0)
        return bench_fail(out, "small: %s", crdt_strerror(rc));
    if (ref_rewrite_setup(m->ref, m->n_docs, g_opts.seed, out->err,
                          sizeof out->err) < 0)
        return -1;
    out->v[0] = (double)bench_dir_bytes(m->big);
    out->v[1] = (double)bench_dir_bytes(m->ref);
    return 0;
}

static int
ensure_setup(bench_entry *e)
{
    mig_setup *m = &setup_state;
    bench_res res;
    double t0 = bench_now();

    if (m->ready)
        return 0;
    m->n_docs = g_opts.quick ? 50000 : 1000000;
    if (bench_subdir(m->big, sizeof m->big, "big") < 0 ||
        bench_subdir(m->small, sizeof m->small, "small") < 0 ||
        bench_subdir(m->ref, sizeof m->ref, "rewrite_src") < 0) {
        entry_failed(e, "cannot create setup dirs under %s", g_opts.base);
        return -1;
    }
    bench_rmtree(m->big);
    bench_rmtree(m->small);
    bench_log("setup: replica of %llu documents",
              (unsigned long long)m->n_docs);
    if (bench_run_child(&res, build_child, m) < 0) {
        entry_failed(e, "setup: %s", res.err);
        return -1;
    }
    bench_log("setup done in %.1f s: replica %.1f MiB, lmdb %.1f MiB",
              bench_now() - t0, res.v[0] / 1048576, res.v[1] / 1048576);
    m->ready = 1;
    return 0;
}

/* ---- migrate ---- */

static int
str_field(const crdt_field *f, void *ctx)
{
    int *ok = ctx;

    if (f->kind == CRDT_FIELD_REGISTER && f->value.type == CRDT_VSTRING)
        (*ok)++;
    return 0;
}

static int
migrate_child(bench_res *out, void *ctx)
{
    const char *dir = ctx;
    crdt_replica *r = NULL;
    epoch_builder *b = NULL;
    epoch_lens *l = NULL;
    epoch_lens_error le;
    epoch_info next;
    crdt_read *rd;
    bench_sampler *smp;
    double t0, t1, c0, c1;
    char doc[32];
    int rc, ok = 0;

    memset(&next, 0, sizeof next);
    if ((rc = crdt_replica_open(&r, dir, NULL)) < 0)
        return bench_fail(out, "open: %s", crdt_strerror(rc));
    if ((rc = epoch_lens_parse(&l, LENS, strlen(LENS), &le)) < 0) {
        crdt_replica_close(r);
        return bench_fail(out, "lens line %d: %s", le.line, le.message);
    }
    smp = bench_sampler_start();
    t0 = bench_now();
    c0 = bench_cpu_seconds();
    rc = epoch_builder_new(&b, r);
    if (rc == CRDT_OK)
        rc = epoch_builder_add_lens(b, l);
    if (rc == CRDT_OK)
        rc = epoch_builder_commit(&next, b);
    epoch_builder_free(b);
    t1 = bench_now();
    c1 = bench_cpu_seconds();
    bench_sampler_stop(smp, &out->v[3], &out->v[4]);
    epoch_lens_free(l);
    if (rc < 0) {
        crdt_replica_close(r);
        return bench_fail(out, "migrate: %s", crdt_strerror(rc));
    }
    /* check: both string fields of the first and last documents */
    if (crdt_read_begin(&rd, r) == CRDT_OK) {
        bench_doc_id(doc, DOC_WIDTH, 0);
        crdt_read_doc(rd, "c", doc, str_field, &ok);
        bench_doc_id(doc, DOC_WIDTH, setup_state.n_docs - 1);
        crdt_read_doc(rd, "c", doc, str_field, &ok);
        crdt_read_end(rd);
    }
    out->v[0] = t1 - t0;
    out->v[1] = (double)next.number;
    out->v[2] = (double)bench_dir_bytes(dir);
    out->v[5] = c1 - c0;
    epoch_info_clear(&next);
    crdt_replica_close(r);
    if (ok != 4)
        return bench_fail(out, "migrated documents look wrong (%d/4)", ok);
    return 0;
}

int
w_migrate_run(bench_entry *e)
{
    mig_setup *m = &setup_state;
    double sec[64], ref[64], rss[64], rrss[64], anon[64], file[64];
    double cpu[64], rcpu[64];
    double bytes = 0;
    int runs = g_opts.runs;
    char dir[700];
    bench_res res;

    if (ensure_setup(e) < 0)
        return -1;
    for (int i = 0; i < runs; i++) {
        bench_log("migrate run %d/%d: %llu documents", i + 1, runs,
                  (unsigned long long)m->n_docs);
        if (bench_subdir(dir, sizeof dir, "migrate") < 0 ||
            bench_copy_dir(m->big, dir) < 0) {
            entry_failed(e, "cannot copy %s", m->big);
            return -1;
        }
        if (bench_run_child(&res, migrate_child, dir) < 0) {
            entry_failed(e, "migrate: %s", res.err);
            return -1;
        }
        bench_rmtree(dir);
        sec[i] = res.v[0];
        rss[i] = res.peak_rss_kib;
        anon[i] = res.v[3];
        file[i] = res.v[4];
        cpu[i] = res.v[5];
        bytes = res.v[2];
        bench_log("  %.3f s (%.0f docs/s, CPU %.3f s), peak RSS %.1f MiB "
                  "(sampled: private %.1f, LMDB map %.1f)", sec[i],
                  (double)m->n_docs / sec[i], cpu[i], rss[i] / 1024,
                  anon[i] / 1024, file[i] / 1024);

        if (bench_subdir(dir, sizeof dir, "rewrite") < 0 ||
            bench_copy_dir(m->ref, dir) < 0) {
            entry_failed(e, "cannot copy %s", m->ref);
            return -1;
        }
        if (bench_run_child(&res, ref_rewrite_child, dir) < 0) {
            entry_failed(e, "lmdb_rewrite_ref: %s", res.err);
            return -1;
        }
        bench_rmtree(dir);
        if ((uint64_t)res.v[1] != m->n_docs) {
            entry_failed(e, "lmdb_rewrite_ref copied %.0f records", res.v[1]);
            return -1;
        }
        ref[i] = res.v[0];
        rcpu[i] = res.v[2];
        rrss[i] = res.peak_rss_kib;
        bench_log("  lmdb_rewrite_ref %.3f s (CPU %.3f s), peak RSS %.1f MiB",
                  ref[i], rcpu[i], rrss[i] / 1024);
    }
    bench_fig fs = bench_fig_of(sec, runs), fr = bench_fig_of(ref, runs);
    bench_fig fm = bench_fig_of(rss, runs), frm = bench_fig_of(rrss, runs);
    bench_fig fa = bench_fig_of(anon, runs), ff = bench_fig_of(file, runs);
    bench_fig fc = bench_fig_of(cpu, runs), frc = bench_fig_of(rcpu, runs);
    double ours = (double)m->n_docs / fs.med;
    double theirs = (double)m->n_docs / fr.med;

    entry_timing(e, "docs", m->n_docs, &fs);
    entry_str(e, "lens", "collection c 1 -> 2 / rename v -> w / add note "
                         "string default \"\" / convert w int -> string / "
                         "rename w -> value");
    entry_num(e, "cpu_seconds", fc.med);
    entry_mib(e, "peak_rss_mib", &fm);
    entry_mib(e, "peak_anon_mib", &fa);
    entry_mib(e, "peak_file_mib", &ff);
    entry_num(e, "replica_mib_after", bytes / 1048576);
    entry_obj(e, "reference");
    entry_str(e, "name", "lmdb_rewrite_ref");
    entry_str(e, "what", "raw LMDB, one txn: read every record of a DB, put "
                         "it into a second DB, drop the first, commit");
    entry_timing(e, "docs", m->n_docs, &fr);
    entry_num(e, "cpu_seconds", frc.med);
    entry_mib(e, "peak_rss_mib", &frm);
    entry_end(e);
    entry_num(e, "ratio_vs_lmdb", ours / theirs);
    entry_num(e, "cpu_ratio_vs_lmdb", fc.med > 0 ? frc.med / fc.med : 0);
    entry_row(e, "%-12s %9llu doc %8.3f s [%.3f..%.3f] %11.0f doc/s  "
                 "ratio %.3f vs lmdb_rewrite_ref",
              "migrate", (unsigned long long)m->n_docs, fs.med, fs.min,
              fs.max, ours, ours / theirs);
    entry_row(e, "%-12s   CPU %.3f s against %.3f s: ratio %.3f; peak RSS "
                 "%.1f MiB [%.1f..%.1f]: private %.1f, LMDB map %.1f",
              "", fc.med, frc.med, fc.med > 0 ? frc.med / fc.med : 0,
              fm.med / 1024, fm.min / 1024, fm.max / 1024, fa.med / 1024,
              ff.med / 1024);
    entry_row(e, "%-12s %9llu rec %8.3f s [%.3f..%.3f] %11.0f rec/s  "
                 "peak RSS %.1f MiB",
              "  lmdb_rewr.", (unsigned long long)m->n_docs, fr.med, fr.min,
              fr.max, theirs, frm.med / 1024);
    return 0;
}

/* ---- open ---- */

static int
open_child(bench_res *out, void *ctx)
{
    const char *dir = ctx;

    for (int i = 0; i < N_OPENS; i++) {
        crdt_replica *r;
        crdt_read *rd;
        crdt_stats st;
        crdt_vv *vv;
        double t0;
        int rc;

        memset(&st, 0, sizeof st);
        t0 = bench_now();
        rc = crdt_replica_open(&r, dir, NULL);
        if (rc < 0)
            return bench_fail(out, "open: %s", crdt_strerror(rc));
        rc = crdt_read_begin(&rd, r);
        if (rc == CRDT_OK) {
            rc = crdt_read_stats(&st, rd);
            if (rc == CRDT_OK && (rc = crdt_read_vv(&vv, rd)) == CRDT_OK)
                crdt_vv_free(vv);
            crdt_read_end(rd);
        }
        crdt_replica_close(r);
        out->v[i] = (bench_now() - t0) * 1000;
        if (rc < 0)
            return bench_fail(out, "status: %s", crdt_strerror(rc));
        if (i == 0)
            out->v[N_OPENS] = (double)st.ops_in_log;
    }
    return 0;
}

int
w_open_run(bench_entry *e)
{
    mig_setup *m = &setup_state;
    bench_res big, small;

    if (ensure_setup(e) < 0)
        return -1;
    bench_log("open: %d opens of the %llu-document replica", N_OPENS,
              (unsigned long long)m->n_docs);
    if (bench_run_child(&big, open_child, m->big) < 0) {
        entry_failed(e, "open big: %s", big.err);
        return -1;
    }
    if (bench_run_child(&small, open_child, m->small) < 0) {
        entry_failed(e, "open small: %s", small.err);
        return -1;
    }
    bench_fig fb = bench_fig_of(big.v, N_OPENS);
    bench_fig fs = bench_fig_of(small.v, N_OPENS);

    entry_int(e, "docs", m->n_docs);
    entry_int(e, "ops_in_log", (uint64_t)big.v[N_OPENS]);
    entry_int(e, "opens", N_OPENS);
    entry_num(e, "ms", fb.med);
    entry_num(e, "min_ms", fb.min);
    entry_num(e, "max_ms", fb.max);
    entry_num(e, "seconds", fb.med / 1000);
    entry_num(e, "min", fb.min / 1000);
    entry_num(e, "max", fb.max / 1000);
    entry_obj(e, "small_replica");
    entry_str(e, "what", "the same on a replica of one op");
    entry_int(e, "ops_in_log", (uint64_t)small.v[N_OPENS]);
    entry_num(e, "ms", fs.med);
    entry_num(e, "min_ms", fs.min);
    entry_num(e, "max_ms", fs.max);
    entry_end(e);
    entry_str(e, "reference", "none");
    entry_row(e, "%-12s %9llu doc %8.3f ms [%.3f..%.3f] median of %d "
                 "(open+status; %llu ops in log)",
              "open", (unsigned long long)m->n_docs, fb.med, fb.min, fb.max,
              N_OPENS, (unsigned long long)big.v[N_OPENS]);
    entry_row(e, "%-12s %9d doc %8.3f ms [%.3f..%.3f] (one-op replica)", "",
              1, fs.med, fs.min, fs.max);
    return 0;
}
