/*
 * w_sync.c: w1_sync: the w1 ops pulled over an encrypted loopback sync
 * session (crdtnet) between two processes, against w1_merge measured in
 * the same run, interleaved with it.
 *
 *  - setup (not timed, once): the w1 spool (w_merge.c: 4 sources x
 *    250,000 register writes in changes of 100 ops) is merged into a
 *    "server" replica (w1_merge_into: the w1_merge child, kept); a fresh
 *    "client" replica is created in the same space; the server makes
 *    the client a writer (crdt_txn_member_set()). Both are closed; each
 *    run works on fresh copies of the two directories (the client has
 *    no data: it pulls everything).
 *  - measured, in a forked child (the client): it forks the server
 *    process, which opens its copy, epoch_attach()es it, listens on
 *    127.0.0.1 port 0, reports the port through a pipe, accepts one
 *    connection and runs crdtnet_serve_conn(). The client opens its copy
 *    (default options: durable, like w1_merge's fresh replica),
 *    epoch_attach()es it, then the clock runs from
 *    crdtnet_sync_connect() (TCP connect, handshake, the session: the
 *    server exports its log, seals it in the channel, the client opens
 *    and merges it) to the end of reading every document with
 *    crdt_read_doc() in one read txn, like w1_merge.
 *  - checks: both sides returned CRDT_OK, the client received every
 *    change (the 10,000 changes of w1 plus the server's $members change)
 *    and the client's state hash (crdt_read_stats) equals the server's
 *    after the session; else the entry is failed.
 *  - setup also writes the server's log, in the order the session sends
 *    it to a fresh client (crdt_export_begin with no vv: actor by actor),
 *    to a second spool: "session_order_merge" is w1_merge of that spool,
 *    the same merge work as the sync without the network. The order
 *    matters: w1's spool interleaves the four actors, so most merged
 *    writes win their LWW comparison and reach LMDB; actor by actor, the
 *    writes of actors 1-3 mostly lose to the (newer) writes already held.
 *  - each run does: w1_merge (w1_merge_fresh), the session-order merge,
 *    the sync with the default
 *    batch (crdtnet_conn_options.batch_bytes = 0: 256 KiB messages), the
 *    sync with batch_bytes = 1 MiB, the default-batch sync with both
 *    sides plain (crdtnet_conn_options.plain_changes: no PACKED
 *    messages, what an older peer sends; "plain", and wire_ratio_vs_plain
 *    = bytes packed / plain). ratio = sync ops/s / w1_merge ops/s
 *    (default batch), both medians of this workload's runs.
 *  - bytes on the wire: the server's TCP_INFO (tcpi_bytes_acked and
 *    tcpi_bytes_received, TCP payload, on a dup of the accepted socket)
 *    after crdtnet_serve_conn() returned (it shut down its side first).
 *    wire_bytes_per_op = server-to-client bytes / ops: the figure set
 *    beside each peer library's update bytes per op (peers entry).
 *  - bytes on disk: disk_bytes is a compacting copy (crdt_backup) of the
 *    client replica after the sync and the reads, outside the timing.
 */
#include "bench.h"
#include "sync_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sys/stat.h>

#include "crdt/backup.h"
#include "crdt/crdt.h"
#include "crdtnet/conn.h"
#include "epoch/epoch.h"

#define BATCH_1MIB ((size_t)1 << 20)
#define DEFAULT_BATCH ((size_t)256 * 1024) /* session.h: 0 = 256 KiB */
#define WAIT_MS 120000                     /* server start, accept */

typedef struct {
    char srv_dir[700], cli_dir[700];
    uint64_t n_docs, expect_changes, expect_ops;
    size_t batch_bytes; /* 0: the default */
    int plain;          /* both sides plain: no PACKED messages */
} sync_args;

/* What the server process sends back. */
typedef struct {
    int rc;
    char reason[200];
    uint64_t changes_sent, changes_received;
    uint64_t bytes_sent, bytes_received; /* TCP payload, 0 if unknown */
    unsigned char hash[CRDT_HASH_BYTES];
    double seconds; /* accept to the end of crdtnet_serve_conn */
    double cpu;     /* user + sys of the server process, same span */
} srv_result;

/* ---- the server process ---- */

static void
server_fail(srv_result *sr, int rc, const char *what)
{
    sr->rc = rc < 0 ? rc : -1;
    snprintf(sr->reason, sizeof sr->reason, "server: %s: %s", what,
             rc < 0 ? crdt_strerror(rc) : strerror(errno));
}

static void
server_main(const void *ctx, int port_w, int res_w)
{
    const sync_args *a = ctx;
    crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
    crdtnet_conn_options co = CRDTNET_CONN_OPTIONS_INIT;
    crdtnet_report rep;
    srv_result sr;
    crdt_replica *r = NULL;
    int fd = -1, dfd = -1, rc;

    memset(&sr, 0, sizeof sr);
    signal(SIGPIPE, SIG_IGN);
    if ((rc = crdt_replica_open(&r, a->srv_dir, &o)) < 0) {
        server_fail(&sr, rc, "open");
        goto out;
    }
    if ((rc = epoch_attach(r)) < 0) {
        server_fail(&sr, rc, "epoch_attach");
        goto out;
    }
    fd = sync_listen_accept(port_w, WAIT_MS);
    port_w = -1;
    if (fd < 0) {
        server_fail(&sr, 0,
                    fd == SYNC_LISTEN_FAILED ? "listen on 127.0.0.1"
                                             : "accept");
        goto out;
    }
    dfd = dup(fd); /* for TCP_INFO: crdtnet_serve_conn closes fd */
    co.batch_bytes = a->batch_bytes;
    co.plain_changes = a->plain;
    {
        double t0 = bench_now(), c0 = bench_cpu_seconds();
        rc = crdtnet_serve_conn(fd, &r, 1, &co, &rep);
        sr.seconds = bench_now() - t0;
        sr.cpu = bench_cpu_seconds() - c0;
    }
    if (dfd >= 0) {
        /* the client's FINAL came after all of it, so all is acked */
        sync_tcp_bytes(dfd, &sr.bytes_sent, &sr.bytes_received);
        close(dfd);
    }
    sr.changes_sent = rep.changes_sent;
    sr.changes_received = rep.changes_received;
    if (rc < 0) {
        sr.rc = rc;
        snprintf(sr.reason, sizeof sr.reason, "server: %s: %s",
                 crdt_strerror(rc), rep.reason);
        goto out;
    }
    if ((rc = sync_state_hash(r, sr.hash)) < 0)
        server_fail(&sr, rc, "read_stats");
out:
    sync_server_exit(port_w, r, res_w, &sr, sizeof sr);
}

/* ---- the client (the measured child) ---- */

static int
sync_child(bench_res *out, void *ctx)
{
    const sync_args *a = ctx;
    crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
    crdtnet_conn_options co = CRDTNET_CONN_OPTIONS_INIT;
    crdtnet_report rep;
    srv_result sr;
    crdt_replica *r = NULL;
    unsigned char hash[CRDT_HASH_BYTES];
    sync_server srv;
    int rc = -1;
    uint64_t docs = 0;
    double t0, t1, t2, c0, c1;
    char ps[16];

    memset(&sr, 0, sizeof sr);
    signal(SIGPIPE, SIG_IGN);
    if (sync_server_start(&srv, out, server_main, a) < 0)
        return -1;
    if (sync_server_port(&srv, ps, sizeof ps, WAIT_MS) < 0) {
        if (sync_read_all(srv.res_r, &sr, sizeof sr, 5000) == 0 &&
            sr.reason[0])
            bench_fail(out, "%s", sr.reason);
        else
            bench_fail(out, "the server process did not start");
        goto done;
    }
    if ((rc = crdt_replica_open(&r, a->cli_dir, &o)) < 0) {
        bench_fail(out, "open client: %s", crdt_strerror(rc));
        goto done;
    }
    if ((rc = epoch_attach(r)) < 0) {
        bench_fail(out, "epoch_attach client: %s", crdt_strerror(rc));
        goto done;
    }
    co.batch_bytes = a->batch_bytes;
    co.plain_changes = a->plain;

    c0 = bench_cpu_seconds();
    t0 = bench_now();
    rc = crdtnet_sync_connect(&rep, r, "127.0.0.1", ps, &co);
    t1 = bench_now();
    if (rc < 0) {
        bench_fail(out, "crdtnet_sync_connect: %s: %s", crdt_strerror(rc),
                   rep.reason);
        goto done;
    }
    if ((rc = w1_read_docs(out, r, a->n_docs, &docs)) < 0)
        goto done;
    t2 = bench_now();
    c1 = bench_cpu_seconds();

    if ((rc = sync_state_hash(r, hash)) < 0) {
        bench_fail(out, "client read_stats: %s", crdt_strerror(rc));
        goto done;
    }
    if (sync_read_all(srv.res_r, &sr, sizeof sr, WAIT_MS) < 0) {
        rc = bench_fail(out, "no result from the server process");
        goto done;
    }
    if (sr.rc != 0) {
        rc = bench_fail(out, "%s", sr.reason);
        goto done;
    }
    if (rep.changes_received != a->expect_changes ||
        rep.ops_received != a->expect_ops) {
        rc = bench_fail(out,
                        "client received %llu changes / %llu ops, expected "
                        "%llu / %llu",
                        (unsigned long long)rep.changes_received,
                        (unsigned long long)rep.ops_received,
                        (unsigned long long)a->expect_changes,
                        (unsigned long long)a->expect_ops);
        goto done;
    }
    if (memcmp(hash, sr.hash, CRDT_HASH_BYTES) != 0) {
        rc = bench_fail(out, "state hash mismatch: client and server differ "
                             "after the session");
        goto done;
    }
    out->v[0] = t2 - t0;
    out->v[1] = (double)rep.ops_received;
    out->v[2] = (double)rep.changes_received;
    out->v[3] = t1 - t0;
    out->v[4] = t2 - t1;
    out->v[5] = (double)docs;
    out->v[6] = (double)sr.bytes_sent;
    out->v[7] = (double)sr.bytes_received;
    out->v[8] = c1 - c0;
    out->v[9] = sr.cpu;
    out->v[10] = sr.seconds;
    out->v[11] = (double)sr.changes_sent;
    out->v[12] = rep.in_sync;
    { /* the client's bytes on disk: a compacting copy (LMDB never
       * shrinks its file), outside the timing */
        char file[760];
        struct stat sb;
        snprintf(file, sizeof file, "%s.backup", a->cli_dir);
        if (crdt_backup(NULL, r, file) == CRDT_OK && stat(file, &sb) == 0)
            out->v[13] = (double)sb.st_size;
        unlink(file);
    }
    rc = 0;
done:
    crdt_replica_close(r);
    sync_server_end(&srv, rc < 0);
    return rc < 0 ? -1 : 0;
}

/* ---- setup ---- */

typedef struct {
    const char *srv_dir, *cli_dir, *spool;
} setup_args;

static int
put_u32(FILE *f, uint32_t v)
{
    unsigned char b[4] = { (unsigned char)v, (unsigned char)(v >> 8),
                           (unsigned char)(v >> 16), (unsigned char)(v >> 24) };
    return fwrite(b, 1, 4, f) == 4 ? 0 : -1;
}

/* The server's log as the session sends it to a fresh client
 * (crdt_export_begin with an empty vv: actor by actor, in seq order),
 * into a spool for w1_merge_fresh. */
static int
export_spool(bench_res *out, crdt_replica *srv, const char *path,
             const unsigned char space[CRDT_SPACE_ID_BYTES])
{
    crdt_export *ex = NULL;
    FILE *f = fopen(path, "wb");
    int rc;

    if (f == NULL || fwrite("SBSP", 1, 4, f) != 4 ||
        fwrite(space, 1, CRDT_SPACE_ID_BYTES, f) != CRDT_SPACE_ID_BYTES) {
        rc = bench_fail(out, "spool %s: %s", path, strerror(errno));
        goto done;
    }
    if ((rc = crdt_export_begin(&ex, srv, NULL)) < 0) {
        bench_fail(out, "export_begin: %s", crdt_strerror(rc));
        goto done;
    }
    for (;;) {
        const unsigned char *p;
        size_t len;

        rc = crdt_export_next(ex, &p, &len);
        if (rc == CRDT_ENOTFOUND)
            break;
        if (rc < 0) {
            bench_fail(out, "export_next: %s", crdt_strerror(rc));
            goto done;
        }
        if (put_u32(f, (uint32_t)len) < 0 || fwrite(p, 1, len, f) != len) {
            rc = bench_fail(out, "spool write: %s", strerror(errno));
            goto done;
        }
    }
    rc = 0;
done:
    crdt_export_end(ex);
    if (f != NULL && fclose(f) != 0 && rc == 0)
        rc = bench_fail(out, "spool close: %s", strerror(errno));
    return rc < 0 ? -1 : 0;
}

/* Create the client in the server's space; the server accepts it. */
static int
setup_child(bench_res *out, void *ctx)
{
    const setup_args *a = ctx;
    crdt_open_options o = CRDT_OPEN_OPTIONS_INIT, oc = CRDT_OPEN_OPTIONS_INIT;
    crdt_replica *srv = NULL, *cli = NULL;
    unsigned char space[CRDT_SPACE_ID_BYTES], pk[CRDT_PUBKEY_BYTES];
    crdt_txn *t = NULL;
    int rc;

    if ((rc = crdt_replica_open(&srv, a->srv_dir, &o)) < 0) {
        bench_fail(out, "open server: %s", crdt_strerror(rc));
        goto done;
    }
    crdt_replica_space_id(srv, space);
    oc.create = 1;
    oc.space_id = space;
    if ((rc = crdt_replica_open(&cli, a->cli_dir, &oc)) < 0) {
        bench_fail(out, "create client: %s", crdt_strerror(rc));
        goto done;
    }
    crdt_replica_public_key(cli, pk);
    if ((rc = crdt_txn_begin(&t, srv)) < 0 ||
        (rc = crdt_txn_member_set(t, pk, CRDT_ROLE_WRITER)) < 0) {
        if (t != NULL)
            crdt_txn_abort(t);
        bench_fail(out, "put member: %s", crdt_strerror(rc));
        goto done;
    }
    if ((rc = crdt_txn_commit(t, NULL)) < 0) {
        bench_fail(out, "commit member: %s", crdt_strerror(rc));
        goto done;
    }
    rc = a->spool != NULL ? export_spool(out, srv, a->spool, space) : 0;
done:
    crdt_replica_close(cli);
    crdt_replica_close(srv);
    return rc < 0 ? -1 : 0;
}

/* One sync run on fresh copies of the master replicas. */
static int
one_sync_n(bench_res *res, const char *srv_master, const char *cli_master,
           size_t batch, int run, uint64_t expect_changes,
           uint64_t expect_ops, int plain)
{
    sync_args a;
    char name[64];
    int rc;

    memset(&a, 0, sizeof a);
    snprintf(name, sizeof name, "sync_srv%d", run);
    if (bench_subdir(a.srv_dir, sizeof a.srv_dir, name) < 0)
        return bench_fail(res, "cannot create %s", name);
    bench_rmtree(a.srv_dir);
    snprintf(name, sizeof name, "sync_cli%d", run);
    if (bench_subdir(a.cli_dir, sizeof a.cli_dir, name) < 0)
        return bench_fail(res, "cannot create %s", name);
    bench_rmtree(a.cli_dir);
    if (bench_copy_dir(srv_master, a.srv_dir) < 0 ||
        bench_copy_dir(cli_master, a.cli_dir) < 0) {
        rc = bench_fail(res, "cannot copy the replicas");
        goto out;
    }
    a.n_docs = w1_n_docs();
    a.expect_changes = expect_changes;
    a.expect_ops = expect_ops;
    a.batch_bytes = batch;
    a.plain = plain;
    rc = bench_run_child(res, sync_child, &a);
out:
    bench_rmtree(a.srv_dir);
    bench_rmtree(a.cli_dir);
    return rc;
}

static int
one_sync(bench_res *res, const char *srv_master, const char *cli_master,
         size_t batch, int run, int plain)
{
    return one_sync_n(res, srv_master, cli_master, batch, run,
                      w1_total_ops() / W1_CHANGE_OPS + 1, /* + $members */
                      w1_total_ops() + 1, plain);
}

int
w1_sync_setup(bench_res *res, const char *spool, int batch,
              const char *srv, const char *cli)
{
    setup_args sa;

    if (w1_merge_into_batch(res, spool, srv, batch) < 0)
        return -1;
    sa.srv_dir = srv;
    sa.cli_dir = cli;
    sa.spool = NULL; /* no session-order spool */
    return bench_run_child(res, setup_child, &sa);
}

int
w1_sync_once(bench_res *res, const char *srv, const char *cli,
             uint64_t expect_changes, uint64_t expect_ops, int run)
{
    return one_sync_n(res, srv, cli, 0, run, expect_changes, expect_ops, 0);
}

typedef struct {
    double sec[64], sync[64], read[64], ccpu[64], scpu[64], ssec[64];
    double sent, recvd, changes, docs, rss[64], disk;
    int in_sync; /* every run's client report said in_sync */
} sync_figs;

static void
keep(sync_figs *f, int i, const bench_res *res)
{
    f->sec[i] = res->v[0];
    f->sync[i] = res->v[3];
    f->read[i] = res->v[4];
    f->ccpu[i] = res->v[8];
    f->scpu[i] = res->v[9];
    f->ssec[i] = res->v[10];
    f->rss[i] = res->peak_rss_kib;
    f->changes = res->v[2];
    f->docs = res->v[5];
    f->sent = res->v[6];
    f->recvd = res->v[7];
    f->disk = res->v[13];
    f->in_sync = (i == 0 || f->in_sync) && res->v[12] != 0;
}

static void
report_batch(bench_entry *e, const sync_figs *f, int runs, uint64_t n_ops,
             size_t batch, double ref_ops)
{
    bench_fig fs = bench_fig_of(f->sec, runs);
    bench_fig rss = bench_fig_of(f->rss, runs);

    entry_timing(e, "ops", n_ops, &fs);
    entry_int(e, "batch_bytes", batch);
    entry_num(e, "sync_seconds", bench_fig_of(f->sync, runs).med);
    entry_num(e, "read_seconds", bench_fig_of(f->read, runs).med);
    entry_num(e, "client_cpu_seconds", bench_fig_of(f->ccpu, runs).med);
    entry_num(e, "server_cpu_seconds", bench_fig_of(f->scpu, runs).med);
    entry_num(e, "server_seconds", bench_fig_of(f->ssec, runs).med);
    entry_int(e, "changes_received", (uint64_t)f->changes);
    entry_int(e, "in_sync", (uint64_t)f->in_sync);
    entry_int(e, "docs_read", (uint64_t)f->docs);
    entry_int(e, "wire_bytes_server_to_client", (uint64_t)f->sent);
    entry_int(e, "wire_bytes_client_to_server", (uint64_t)f->recvd);
    /* what the server sent (TCP payload: frames, channel, every message)
     * per op pulled: the figure to set beside a peer's update bytes */
    entry_num(e, "wire_bytes_per_op", f->sent / (double)n_ops);
    entry_int(e, "disk_bytes", (uint64_t)f->disk);
    entry_num(e, "disk_bytes_per_op", f->disk / (double)n_ops);
    entry_mib(e, "client_peak_rss_mib", &rss);
    entry_num(e, "ratio_vs_w1_merge", ((double)n_ops / fs.med) / ref_ops);
}

int
w_sync_run(bench_entry *e)
{
    uint64_t n_ops = w1_total_ops();
    int runs = g_opts.runs;
    const char *spool = w1_spool(e);
    static sync_figs fd, fm, fp; /* default batch, 1 MiB, plain */
    double ref[64], ref2[64];
    char srv[700], cli[700], spool2[700];
    setup_args sa;
    bench_res res;
    double t0 = bench_now();

    if (spool == NULL)
        return -1;
    if (bench_subdir(srv, sizeof srv, "sync_server") < 0 ||
        bench_subdir(cli, sizeof cli, "sync_client") < 0) {
        entry_failed(e, "cannot create the sync dirs");
        return -1;
    }
    bench_rmtree(srv);
    bench_rmtree(cli);
    bench_log("w1_sync setup: server replica merges the w1 spool");
    if (w1_merge_into(&res, spool, srv) < 0) {
        entry_failed(e, "setup: server merge: %s", res.err);
        return -1;
    }
    snprintf(spool2, sizeof spool2, "%s/sync_order.spool", g_opts.base);
    sa.srv_dir = srv;
    sa.cli_dir = cli;
    sa.spool = spool2;
    if (bench_run_child(&res, setup_child, &sa) < 0) {
        entry_failed(e, "setup: %s", res.err);
        return -1;
    }
    bench_log("w1_sync setup done in %.1f s", bench_now() - t0);

    for (int i = 0; i < runs; i++) {
        bench_log("w1_sync run %d/%d: w1_merge reference", i + 1, runs);
        if (w1_merge_fresh(&res, spool, n_ops, i) < 0) {
            entry_failed(e, "w1_merge reference: %s", res.err);
            return -1;
        }
        ref[i] = res.v[0];
        bench_log("  w1_merge %.3f s (%.0f ops/s)", ref[i],
                  (double)n_ops / ref[i]);
        if (w1_merge_fresh(&res, spool2, n_ops + 1, i) < 0) {
            entry_failed(e, "w1_merge in session order: %s", res.err);
            return -1;
        }
        ref2[i] = res.v[0];
        bench_log("  w1_merge in session order %.3f s (%.0f ops/s)", ref2[i],
                  (double)n_ops / ref2[i]);
        if (one_sync(&res, srv, cli, 0, i, 0) < 0) {
            entry_failed(e, "%s", res.err);
            return -1;
        }
        keep(&fd, i, &res);
        bench_log("  sync (default batch) %.3f s (%.0f ops/s): session "
                  "%.3f s, reads %.3f s; cpu client %.2f s, server %.2f s; "
                  "%.1f MiB on the wire",
                  fd.sec[i], (double)n_ops / fd.sec[i], fd.sync[i],
                  fd.read[i], fd.ccpu[i], fd.scpu[i], fd.sent / 1048576);
        if (one_sync(&res, srv, cli, BATCH_1MIB, i, 0) < 0) {
            entry_failed(e, "batch 1 MiB: %s", res.err);
            return -1;
        }
        keep(&fm, i, &res);
        bench_log("  sync (1 MiB batch) %.3f s (%.0f ops/s): session %.3f "
                  "s, reads %.3f s; cpu client %.2f s, server %.2f s",
                  fm.sec[i], (double)n_ops / fm.sec[i], fm.sync[i],
                  fm.read[i], fm.ccpu[i], fm.scpu[i]);
        if (one_sync(&res, srv, cli, 0, i, 1) < 0) {
            entry_failed(e, "plain: %s", res.err);
            return -1;
        }
        keep(&fp, i, &res);
        bench_log("  sync (default batch, plain: no PACKED) %.3f s (%.0f "
                  "ops/s); cpu client %.2f s, server %.2f s; %.1f MiB on "
                  "the wire", fp.sec[i], (double)n_ops / fp.sec[i],
                  fp.ccpu[i], fp.scpu[i], fp.sent / 1048576);
    }
    bench_rmtree(srv);
    bench_rmtree(cli);
    unlink(spool2);

    bench_fig fr = bench_fig_of(ref, runs), fr2 = bench_fig_of(ref2, runs);
    double ref2_ops = (double)n_ops / fr2.med;
    bench_fig fs = bench_fig_of(fd.sec, runs), fs1 = bench_fig_of(fm.sec, runs);
    double ref_ops = (double)n_ops / fr.med;
    double ours = (double)n_ops / fs.med, ours1 = (double)n_ops / fs1.med;

    report_batch(e, &fd, runs, n_ops, DEFAULT_BATCH, ref_ops);
    entry_str(e, "batch", "default (crdtnet_conn_options.batch_bytes = 0)");
    entry_str(e, "what", "client process: crdtnet_sync_connect to a server "
                         "process on 127.0.0.1 (crdtnet_serve_conn), fresh "
                         "durable client pulls every change, then "
                         "crdt_read_doc on every document");
    entry_obj(e, "batch_1mib");
    report_batch(e, &fm, runs, n_ops, BATCH_1MIB, ref_ops);
    entry_end(e);
    entry_obj(e, "plain");
    entry_str(e, "what", "the default-batch sync with both sides plain "
                         "(crdtnet_conn_options.plain_changes: what a peer "
                         "from before PACKED messages sends)");
    report_batch(e, &fp, runs, n_ops, DEFAULT_BATCH, ref_ops);
    entry_end(e);
    entry_num(e, "wire_ratio_vs_plain", fd.sent / fp.sent);
    entry_obj(e, "reference");
    entry_str(e, "name", "w1_merge");
    entry_str(e, "what", "w1_merge (spool merged by crdt_merge into a fresh "
                         "replica, then reads), interleaved with the syncs");
    entry_timing(e, "ops", n_ops, &fr);
    entry_end(e);
    entry_obj(e, "session_order_merge");
    entry_str(e, "what", "crdt_merge of the same changes in the order the "
                         "session sends them (the server's export: actor "
                         "by actor), batches of 100 changes, fresh "
                         "replica, then reads: the sync without the "
                         "network");
    entry_timing(e, "ops", n_ops, &fr2);
    entry_num(e, "sync_ratio", ours / ref2_ops);
    entry_num(e, "sync_ratio_1mib", ours1 / ref2_ops);
    entry_end(e);
    entry_num(e, "ratio_vs_w1_merge", ours / ref_ops);
    entry_num(e, "ratio_vs_w1_merge_1mib", ours1 / ref_ops);

    entry_row(e, "%-12s %9llu ops %8.3f s [%.3f..%.3f] %11.0f ops/s  "
                 "ratio %.3f vs w1_merge",
              "w1_sync", (unsigned long long)n_ops, fs.med, fs.min, fs.max,
              ours, ours / ref_ops);
    entry_row(e, "%-12s   default batch (256 KiB): session %.3f s + read "
                 "%.3f s; cpu client %.2f s, server %.2f s; %.1f MiB on "
                 "the wire = %.2f B/op; client on disk %.1f B/op",
              "", bench_fig_of(fd.sync, runs).med,
              bench_fig_of(fd.read, runs).med,
              bench_fig_of(fd.ccpu, runs).med,
              bench_fig_of(fd.scpu, runs).med, fd.sent / 1048576,
              fd.sent / (double)n_ops, fd.disk / (double)n_ops);
    entry_row(e, "%-12s   plain (no PACKED): %.3f s, %.2f B/op on the "
                 "wire (packed/plain %.3f); cpu client %.2f s, server "
                 "%.2f s",
              "", bench_fig_of(fp.sec, runs).med, fp.sent / (double)n_ops,
              fd.sent / fp.sent, bench_fig_of(fp.ccpu, runs).med,
              bench_fig_of(fp.scpu, runs).med);
    entry_row(e, "%-12s   1 MiB batch: %.3f s [%.3f..%.3f] %.0f ops/s, "
                 "ratio %.3f",
              "", fs1.med, fs1.min, fs1.max, ours1, ours1 / ref_ops);
    entry_row(e, "%-12s %9llu ops %8.3f s [%.3f..%.3f] %11.0f ops/s",
              "  w1_merge", (unsigned long long)n_ops, fr.med, fr.min,
              fr.max, ref_ops);
    entry_row(e, "%-12s %9llu ops %8.3f s [%.3f..%.3f] %11.0f ops/s  "
                 "(w1_merge of the session's order; sync/this %.3f)",
              "  merge_so", (unsigned long long)n_ops, fr2.med, fr2.min,
              fr2.max, ref2_ops, ours / ref2_ops);
    return 0;
}
