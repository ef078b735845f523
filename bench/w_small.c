/*
 * w_small.c: w1_small: w1's register writes made as changes of ONE op
 * each (1,000,000 changes; quick 24,000: about half of w1's quick
 * size, over the same 500 documents), merged and synced, against w1 itself
 * (changes of 100 ops, the same number of ops) measured in the same
 * run, interleaved.
 *
 *  - setup (not timed): the sources commit one op per change (w_merge.c,
 *    spool slot 2); the spool holds 10,000 changes per merge batch
 *    (2,500 of each source in turn: the same 10,000 ops per batch as
 *    w1), each change without its signature when the next change of its
 *    actor is in the same batch, as a sync session sends them (one
 *    signature per actor per batch). A server replica merges it and a
 *    client joins, as for w1_sync; the same for the w1 spool.
 *  - each run: w1_merge (reference), the w1_small merge (fresh durable
 *    replica, crdt_merge of 10,000 changes per call, then every
 *    document read), the w1 sync (reference: w1_sync's default batch),
 *    the w1_small sync (same session code, the server's log of
 *    1,000,001 changes).
 *  - ratio_vs_w1_merge = w1_small merge ops/s / w1_merge ops/s;
 *    sync_ratio_vs_w1_sync = w1_small sync ops/s / w1 sync ops/s;
 *    wire_bytes_per_op = TCP payload server -> client / ops, and
 *    wire_ratio_vs_w1_sync its ratio to w1's.
 */
#include "bench.h"

#include <stdio.h>
#include <string.h>

int
w_small_run(bench_entry *e)
{
    uint64_t n_ops = w1_small_total_ops();
    int runs = g_opts.runs;
    const char *big = w1_small_ref_spool(e), *small;
    double mref[64], msm[64], cpu[64], sref[64], ssm[64];
    double wref = 0, wsm = 0;
    char srv[2][700], cli[2][700];
    bench_res res;

    if (big == NULL || (small = w1_small_spool(e)) == NULL)
        return -1;
    for (int k = 0; k < 2; k++) {
        char name[32];
        snprintf(name, sizeof name, "small_srv%d", k);
        if (bench_subdir(srv[k], sizeof srv[k], name) < 0)
            goto nodir;
        snprintf(name, sizeof name, "small_cli%d", k);
        if (bench_subdir(cli[k], sizeof cli[k], name) < 0)
            goto nodir;
        bench_rmtree(srv[k]);
        bench_rmtree(cli[k]);
        bench_log("w1_small setup: server replica merges the %s spool",
                  k ? "one-op" : "w1");
        if (w1_sync_setup(&res, k ? small : big, k ? W1_SMALL_BATCH : 0,
                          srv[k], cli[k]) < 0) {
            entry_failed(e, "setup: %s", res.err);
            return -1;
        }
    }
    for (int i = 0; i < runs; i++) {
        bench_log("w1_small run %d/%d", i + 1, runs);
        if (w1_merge_fresh(&res, big, n_ops, i) < 0) {
            entry_failed(e, "w1_merge reference: %s", res.err);
            return -1;
        }
        mref[i] = res.v[0];
        if (w1_merge_fresh_batch(&res, small, n_ops, i, W1_SMALL_BATCH) < 0) {
            entry_failed(e, "merge: %s", res.err);
            return -1;
        }
        msm[i] = res.v[0];
        cpu[i] = res.v[11];
        if ((uint64_t)res.v[2] != n_ops) {
            entry_failed(e, "merged %.0f changes, expected %llu", res.v[2],
                         (unsigned long long)n_ops);
            return -1;
        }
        if (w1_sync_once(&res, srv[0], cli[0], n_ops / W1_CHANGE_OPS + 1,
                         n_ops + 1, i) < 0) {
            entry_failed(e, "w1 sync reference: %s", res.err);
            return -1;
        }
        sref[i] = res.v[0];
        wref = res.v[6];
        if (w1_sync_once(&res, srv[1], cli[1], n_ops + 1, n_ops + 1, i) <
            0) {
            entry_failed(e, "sync: %s", res.err);
            return -1;
        }
        ssm[i] = res.v[0];
        wsm = res.v[6];
        bench_log("  merge %.3f s (w1_merge %.3f s); sync %.3f s (w1 %.3f "
                  "s); wire %.1f B/op (w1 %.1f)",
                  msm[i], mref[i], ssm[i], sref[i], wsm / (double)n_ops,
                  wref / (double)n_ops);
    }
    for (int k = 0; k < 2; k++) {
        bench_rmtree(srv[k]);
        bench_rmtree(cli[k]);
    }

    bench_fig fm = bench_fig_of(msm, runs), fmr = bench_fig_of(mref, runs);
    bench_fig fs = bench_fig_of(ssm, runs), fsr = bench_fig_of(sref, runs);
    double ours = (double)n_ops / fm.med, ref = (double)n_ops / fmr.med;
    double sync = (double)n_ops / fs.med, sref_ops = (double)n_ops / fsr.med;
    double bpo = wsm / (double)n_ops, rbpo = wref / (double)n_ops;

    entry_timing(e, "ops", n_ops, &fm);
    entry_int(e, "changes", n_ops);
    entry_int(e, "change_ops", 1);
    entry_int(e, "batch_changes", W1_SMALL_BATCH);
    entry_num(e, "cpu_seconds", bench_fig_of(cpu, runs).med);
    entry_obj(e, "reference");
    entry_str(e, "name", "w1_merge");
    entry_str(e, "what", "the same writes in changes of 100 ops (w1_merge), "
                         "interleaved with this workload's runs");
    entry_timing(e, "ops", n_ops, &fmr);
    entry_end(e);
    entry_num(e, "ratio_vs_w1_merge", ours / ref);
    entry_obj(e, "sync");
    entry_str(e, "what", "the one-op changes pulled over the loopback "
                         "session, as w1_sync (default batch)");
    entry_timing(e, "ops", n_ops, &fs);
    entry_end(e);
    entry_obj(e, "w1_sync");
    entry_timing(e, "ops", n_ops, &fsr);
    entry_num(e, "wire_bytes_per_op", rbpo);
    entry_end(e);
    entry_num(e, "sync_ops_per_s", sync);
    entry_num(e, "sync_ratio_vs_w1_sync", sync / sref_ops);
    entry_num(e, "wire_bytes_per_op", bpo);
    entry_num(e, "wire_ratio_vs_w1_sync", bpo / rbpo);
    entry_row(e, "%-12s %9llu ops %8.3f s [%.3f..%.3f] %11.0f ops/s  "
                 "ratio %.3f vs w1_merge (changes of one op)",
              "w1_small", (unsigned long long)n_ops, fm.med, fm.min, fm.max,
              ours, ours / ref);
    entry_row(e, "%-12s   sync %.3f s [%.3f..%.3f] %.0f ops/s, ratio %.3f "
                 "vs w1 sync; wire %.1f B/op, %.3fx w1's %.1f",
              "", fs.med, fs.min, fs.max, sync, sync / sref_ops, bpo,
              bpo / rbpo, rbpo);
    entry_row(e, "%-12s %9llu ops %8.3f s [%.3f..%.3f] %11.0f ops/s; sync "
                 "%.3f s %.0f ops/s",
              "  w1_merge", (unsigned long long)n_ops, fmr.med, fmr.min,
              fmr.max, ref, fsr.med, sref_ops);
    return 0;
nodir:
    entry_failed(e, "cannot create the w1_small dirs");
    return -1;
}
