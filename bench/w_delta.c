/*
 * w_delta.c: sync_delta: two replicas that share 1,000,000 ops of 10,000
 * actors and differ by one change each way sync over an encrypted
 * loopback connection between two processes; what goes on the wire and
 * how long it takes (the target: at most 8 KiB both ways, handshake
 * included, in under 20 ms).
 *
 *  - setup (not timed, once): replica A (no_sync) writes, as 10,000
 *    actors (a new incarnation each), one change each of 100 register
 *    writes (quick: 5) over 10,000 documents; it makes B, created in its
 *    space, a writer; B merges A's whole log (crdt_merge, 100 changes a
 *    batch). Then A and B each commit one more change of one op, so
 *    each lacks exactly one change of the other.
 *  - measured, in a forked child (the client) on fresh copies of A and
 *    B (each file fsynced before the clock starts, so the session's
 *    fdatasync writes back its own commit, not the copy): it forks
 *    the server process (A: crdtnet_serve_conn on 127.0.0.1), and
 *    times crdtnet_sync_connect() from B (TCP connect,
 *    handshake, the whole session). bytes: TCP payload both ways, the
 *    server's TCP_INFO (bytes_acked + bytes_received) after the session.
 *    Checks: both sides CRDT_OK, one change received each way, in sync,
 *    equal state hashes. The same without fsync (ms_no_fsync), and
 *    durable against a server that read its heads once before it
 *    accepted, as a daemon that served a session before
 *    (ms_warm_server).
 *  - also, in one process (crdtnet_peer pair over memory, the same
 *    bytes a socket carries): the handshake's bytes, the round trips
 *    (flights of bytes one way and back), the session in sync protocol
 *    4, and the same sync in protocol 3 (the whole version vector and
 *    heads in HELLO and FIN): full_vv_bytes, for comparison.
 */
#include "bench.h"
#include "sync_util.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crdt/crdt.h"
#include "crdt/raw.h"
#include "crdtnet/conn.h"
#include "crdtnet/peer.h"
#include "epoch/epoch.h"

#define N_ACTORS 10000
#define N_DOCS 10000
#define WAIT_MS 60000
#define BUDGET_BYTES 8192
#define BUDGET_MS 20.0

static uint64_t
ops_per_actor(void)
{
    return g_opts.quick ? 5 : 100;
}

/* ---- setup ---- */

typedef struct {
    const char *a_dir, *b_dir;
} setup_args;

static int
put_change(crdt_replica *r, uint64_t *seed, uint64_t n_ops, char *err,
           size_t errlen)
{
    crdt_txn *t = NULL;
    int rc = crdt_txn_begin(&t, r);

    for (uint64_t i = 0; rc == CRDT_OK && i < n_ops; i++) {
        char doc[16];
        crdt_value v = crdt_value_int(bench_value(seed));
        bench_doc_id(doc, 5, bench_rand(seed) % N_DOCS);
        rc = crdt_txn_put(t, "c", doc, "v", &v);
    }
    if (rc == CRDT_OK)
        return crdt_txn_commit(t, NULL);
    snprintf(err, errlen, "put: %s", crdt_strerror(rc));
    if (t != NULL)
        crdt_txn_abort(t);
    return rc;
}

/* B merges A's log, 100 changes a merge. */
static int
copy_log(bench_res *out, crdt_replica *a, crdt_replica *b)
{
    crdt_export *ex = NULL;
    unsigned char *buf[100];
    crdt_bytes items[100];
    size_t n = 0;
    int rc;

    if ((rc = crdt_export_begin(&ex, a, NULL)) < 0)
        return bench_fail(out, "export_begin: %s", crdt_strerror(rc));
    for (;;) {
        const unsigned char *p;
        size_t len;

        rc = crdt_export_next(ex, &p, &len);
        if (rc == CRDT_OK) {
            buf[n] = malloc(len);
            if (buf[n] == NULL) {
                rc = CRDT_ENOMEM;
                break;
            }
            memcpy(buf[n], p, len);
            items[n].data = buf[n];
            items[n].len = len;
            n++;
        }
        if (n == 100 || (rc != CRDT_OK && n > 0)) {
            crdt_merge_report mr;
            int mrc = crdt_merge(&mr, b, items, n);
            for (size_t i = 0; i < n; i++)
                free(buf[i]);
            n = 0;
            if (mrc < 0) {
                rc = mrc;
                break;
            }
        }
        if (rc != CRDT_OK)
            break;
    }
    crdt_export_end(ex);
    if (rc != CRDT_ENOTFOUND)
        return bench_fail(out, "copy the log: %s", crdt_strerror(rc));
    return 0;
}

static int
setup_child(bench_res *out, void *ctx)
{
    const setup_args *sa = ctx;
    crdt_open_options o = CRDT_OPEN_OPTIONS_INIT, ob = CRDT_OPEN_OPTIONS_INIT;
    crdt_replica *a = NULL, *b = NULL;
    unsigned char space[CRDT_SPACE_ID_BYTES], pk[CRDT_PUBKEY_BYTES],
        pka[CRDT_PUBKEY_BYTES];
    uint64_t seed = g_opts.seed * 7919 + 17;
    crdt_txn *t = NULL;
    char err[200];
    int rc = -1;

    o.create = 1;
    o.no_sync = 1; /* setup only */
    if ((rc = crdt_replica_open(&a, sa->a_dir, &o)) < 0) {
        bench_fail(out, "create A: %s", crdt_strerror(rc));
        goto done;
    }
    crdt_replica_space_id(a, space);
    ob.create = 1;
    ob.no_sync = 1;
    ob.space_id = space;
    if ((rc = crdt_replica_open(&b, sa->b_dir, &ob)) < 0) {
        bench_fail(out, "create B: %s", crdt_strerror(rc));
        goto done;
    }
    /* both members: each side checks the other's key strictly */
    crdt_replica_public_key(a, pka);
    crdt_replica_public_key(b, pk);
    if ((rc = crdt_txn_begin(&t, a)) < 0 ||
        (rc = crdt_txn_member_set(t, pka, CRDT_ROLE_WRITER)) < 0 ||
        (rc = crdt_txn_member_set(t, pk, CRDT_ROLE_WRITER)) < 0 ||
        (rc = crdt_txn_commit(t, NULL)) < 0) {
        bench_fail(out, "make A and B members: %s", crdt_strerror(rc));
        goto done;
    }
    for (int i = 0; i < N_ACTORS; i++) {
        /* a new incarnation is a new actor: 10,000 of them, one key */
        if ((rc = crdt_replica_new_incarnation(a)) < 0) {
            bench_fail(out, "new incarnation: %s", crdt_strerror(rc));
            goto done;
        }
        if ((rc = put_change(a, &seed, ops_per_actor(), err, sizeof err)) <
            0) {
            bench_fail(out, "%s", err);
            goto done;
        }
    }
    if ((rc = copy_log(out, a, b)) < 0)
        goto done;
    /* one change each way */
    if ((rc = put_change(a, &seed, 1, err, sizeof err)) < 0 ||
        (rc = put_change(b, &seed, 1, err, sizeof err)) < 0) {
        bench_fail(out, "%s", err);
        goto done;
    }
    rc = 0;
done:
    crdt_replica_close(a);
    crdt_replica_close(b);
    return rc < 0 ? -1 : 0;
}

/* ---- over TCP: a server process and the measured client ---- */

typedef struct {
    char srv_dir[700], cli_dir[700];
    int no_sync; /* both replicas without fsync: the protocol alone */
    int warm;    /* the server read its heads once before it accepted */
} run_args;

typedef struct {
    int rc;
    char reason[200];
    uint64_t changes_received, bytes_sent, bytes_received;
    int in_sync;
    unsigned char hash[CRDT_HASH_BYTES];
} srv_result;

static void
server_main(const void *ctx, int port_w, int res_w)
{
    const run_args *a = ctx;
    crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
    crdtnet_conn_options co = CRDTNET_CONN_OPTIONS_INIT;
    crdtnet_report rep;
    srv_result sr;
    crdt_replica *r = NULL;
    int fd = -1, dfd = -1, rc;

    memset(&sr, 0, sizeof sr);
    memset(&rep, 0, sizeof rep);
    signal(SIGPIPE, SIG_IGN);
    sr.rc = -1;
    o.no_sync = a->no_sync;
    if ((rc = crdt_replica_open(&r, a->srv_dir, &o)) < 0 ||
        (rc = epoch_attach(r)) < 0) {
        snprintf(sr.reason, sizeof sr.reason, "server: open: %s",
                 crdt_strerror(rc));
        goto out;
    }
    if (a->warm) {
        /* as a daemon that served a session before: its heads' pages
         * are mapped (a fresh mapping faults on each, "where the time
         * goes" in docs/performance.md) */
        unsigned char *hb = NULL;
        size_t cap = 0, nh = 0;
        crdt_read *rd;
        if ((rc = crdt_read_begin(&rd, r)) == CRDT_OK) {
            rc = crdt_read_heads(&hb, &cap, &nh, rd);
            crdt_read_end(rd);
        }
        crdt_free(hb);
        if (rc < 0) {
            snprintf(sr.reason, sizeof sr.reason, "server: heads: %s",
                     crdt_strerror(rc));
            goto out;
        }
    }
    fd = sync_listen_accept(port_w, WAIT_MS);
    port_w = -1;
    if (fd == SYNC_LISTEN_FAILED) {
        snprintf(sr.reason, sizeof sr.reason, "server: listen: %s",
                 strerror(errno));
        goto out;
    }
    if (fd < 0) {
        snprintf(sr.reason, sizeof sr.reason, "server: accept");
        goto out;
    }
    dfd = dup(fd); /* for TCP_INFO: crdtnet_serve_conn closes fd */
    rc = crdtnet_serve_conn(fd, &r, 1, &co, &rep);
    if (dfd >= 0) {
        sync_tcp_bytes(dfd, &sr.bytes_sent, &sr.bytes_received);
        close(dfd);
    }
    sr.changes_received = rep.changes_received;
    sr.in_sync = rep.in_sync;
    if (rc < 0) {
        snprintf(sr.reason, sizeof sr.reason, "server: %s: %s",
                 crdt_strerror(rc), rep.reason);
        goto out;
    }
    if ((rc = sync_state_hash(r, sr.hash)) < 0) {
        snprintf(sr.reason, sizeof sr.reason, "server: read_stats");
        goto out;
    }
    sr.rc = 0;
out:
    sync_server_exit(port_w, r, res_w, &sr, sizeof sr);
}

static int
tcp_child(bench_res *out, void *ctx)
{
    const run_args *a = ctx;
    crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
    crdtnet_conn_options co = CRDTNET_CONN_OPTIONS_INIT;
    crdtnet_report rep;
    srv_result sr;
    crdt_replica *r = NULL;
    unsigned char hash[CRDT_HASH_BYTES];
    sync_server srv;
    int rc = -1;
    double t0, t1, c0, c1;
    char ps[16];

    memset(&sr, 0, sizeof sr);
    signal(SIGPIPE, SIG_IGN);
    if (sync_server_start(&srv, out, server_main, a) < 0)
        return -1;
    o.no_sync = a->no_sync;
    if ((rc = crdt_replica_open(&r, a->cli_dir, &o)) < 0 ||
        (rc = epoch_attach(r)) < 0) {
        bench_fail(out, "open client: %s", crdt_strerror(rc));
        goto done;
    }
    rc = -1;
    if (sync_server_port(&srv, ps, sizeof ps, WAIT_MS) < 0) {
        bench_fail(out, "the server process did not start");
        goto done;
    }
    c0 = bench_cpu_seconds();
    t0 = bench_now();
    rc = crdtnet_sync_connect(&rep, r, "127.0.0.1", ps, &co);
    t1 = bench_now();
    c1 = bench_cpu_seconds();
    if (rc < 0) {
        bench_fail(out, "crdtnet_sync_connect: %s: %s", crdt_strerror(rc),
                   rep.reason);
        goto done;
    }
    rc = -1;
    if (sync_read_all(srv.res_r, &sr, sizeof sr, WAIT_MS) < 0) {
        bench_fail(out, "no result from the server process");
        goto done;
    }
    if (sr.rc != 0) {
        bench_fail(out, "%s", sr.reason);
        goto done;
    }
    if (sync_state_hash(r, hash) < 0 ||
        memcmp(hash, sr.hash, sizeof hash) != 0 ||
        !rep.in_sync || !sr.in_sync) {
        bench_fail(out, "not in sync after the session");
        goto done;
    }
    if (rep.changes_received != 1 || sr.changes_received != 1) {
        bench_fail(out, "changes received: client %llu, server %llu; "
                        "expected 1 each",
                   (unsigned long long)rep.changes_received,
                   (unsigned long long)sr.changes_received);
        goto done;
    }
    out->v[0] = (t1 - t0) * 1000.0;
    out->v[1] = (double)(sr.bytes_sent + sr.bytes_received);
    out->v[2] = (double)sr.bytes_sent;     /* server -> client */
    out->v[3] = (double)sr.bytes_received; /* client -> server */
    out->v[4] = rep.summary_rounds;
    out->v[5] = rep.sync_proto;
    out->v[6] = (c1 - c0) * 1000.0;
    rc = 0;
done:
    crdt_replica_close(r);
    sync_server_end(&srv, rc < 0);
    return rc < 0 ? -1 : 0;
}

/* ---- in one process: the bytes of each part, and protocol 3 ---- */

typedef struct {
    char srv_dir[700], cli_dir[700];
    unsigned proto; /* 0: the newest; 3 */
} pair_args;

/* Move every byte @p from has for @p to; how many. */
static int
pump(crdtnet_peer *from, crdtnet_peer *to, uint64_t *moved)
{
    const unsigned char *p;
    size_t n;

    *moved = 0;
    while (crdtnet_peer_next_out(from, &p, &n) == CRDT_OK) {
        *moved += n;
        if (crdtnet_peer_feed(to, p, n) < 0)
            return -1;
    }
    return 0;
}

static int
pair_child(bench_res *out, void *ctx)
{
    const pair_args *a = ctx;
    crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
    crdtnet_peer_options po = CRDTNET_PEER_OPTIONS_INIT;
    crdt_replica *rs = NULL, *rc_ = NULL;
    crdtnet_peer *ps = NULL, *pc = NULL;
    crdtnet_report rep;
    uint64_t total = 0, flights = 0, moved;
    int last_dir = -1, rc = -1;
    double t0, t1;

    po.sync_proto = a->proto;
    if (crdt_replica_open(&rs, a->srv_dir, &o) < 0 || epoch_attach(rs) < 0 ||
        crdt_replica_open(&rc_, a->cli_dir, &o) < 0 ||
        epoch_attach(rc_) < 0) {
        bench_fail(out, "open the replicas");
        goto done;
    }
    if (crdtnet_peer_new(&pc, &rc_, 1, CRDTNET_HS_CLIENT, &po) < 0 ||
        crdtnet_peer_new(&ps, &rs, 1, CRDTNET_HS_SERVER, &po) < 0) {
        bench_fail(out, "crdtnet_peer_new");
        goto done;
    }
    t0 = bench_now();
    for (int i = 0; i < 100000 && !(crdtnet_peer_done(pc) &&
                                    crdtnet_peer_done(ps)); i++) {
        int any = 0;
        for (int d = 0; d < 2; d++) {
            if (pump(d == 0 ? pc : ps, d == 0 ? ps : pc, &moved) < 0) {
                bench_fail(out, "feed");
                goto done;
            }
            if (moved == 0)
                continue;
            any = 1;
            total += moved;
            if (last_dir != d)
                flights++;
            last_dir = d;
        }
        if (!any)
            break;
    }
    t1 = bench_now();
    if (crdtnet_peer_result(pc, &rep) != CRDT_OK || !rep.in_sync) {
        bench_fail(out, "in-process sync (protocol %u) did not end in sync: "
                        "%s", a->proto ? a->proto : 4, rep.reason);
        goto done;
    }
    out->v[0] = (double)total;
    out->v[1] = (double)flights;
    out->v[2] = (t1 - t0) * 1000.0;
    out->v[3] = rep.summary_rounds;
    out->v[4] = rep.sync_proto;
    rc = 0;
done:
    crdtnet_peer_free(pc);
    crdtnet_peer_free(ps);
    crdt_replica_close(rs);
    crdt_replica_close(rc_);
    return rc;
}

/* ---- the disk ---- */

/* What one durable commit of a merge costs this disk, in the same run:
 * 16 scattered 4 KiB pages written into a 1 MiB file, then one
 * fdatasync (about what a merge of one change writes), median of 9, in
 * ms; -1 on failure. */
static double
commit_sync_ms(const char *dir)
{
    char path[800];
    unsigned char page[4096];
    double t[9];
    int fd, ok = 1;

    snprintf(path, sizeof path, "%s/sync_probe", dir);
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return -1;
    memset(page, 0x5a, sizeof page);
    for (int i = 0; i < 256 && ok; i++)
        ok = pwrite(fd, page, sizeof page, (off_t)i * 4096) == 4096;
    ok = ok && fdatasync(fd) == 0;
    for (int r = 0; r < 9 && ok; r++) {
        double t0 = bench_now();
        for (int i = 0; i < 16 && ok; i++) {
            page[0] = (unsigned char)(r * 16 + i);
            ok = pwrite(fd, page, sizeof page,
                        (off_t)((i * 37 + r * 5) % 256) * 4096) == 4096;
        }
        ok = ok && fdatasync(fd) == 0;
        t[r] = (bench_now() - t0) * 1000.0;
    }
    close(fd);
    unlink(path);
    return ok ? bench_fig_of(t, 9).med : -1;
}

/* ---- the workload ---- */

/* fsync every file of @p dir: a fresh copy is on disk before the
 * measured sync, whose first fdatasync would otherwise write back the
 * whole copy (64 MB at full size), not the session's own commit. */
static int
sync_dir_files(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int rc = 0;

    if (d == NULL)
        return -1;
    while ((de = readdir(d)) != NULL) {
        char path[1024];
        int fd;
        if (de->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if ((fd = open(path, O_RDONLY)) < 0)
            continue; /* not a file we can open: nothing of ours */
        if (fsync(fd) != 0)
            rc = -1;
        close(fd);
    }
    closedir(d);
    return rc;
}

static int
fresh_copies(bench_res *res, const char *a, const char *b, char *srv,
             char *cli, size_t size, int run)
{
    char name[64];

    snprintf(name, sizeof name, "delta_srv%d", run);
    if (bench_subdir(srv, size, name) < 0)
        return bench_fail(res, "cannot create %s", name);
    bench_rmtree(srv);
    snprintf(name, sizeof name, "delta_cli%d", run);
    if (bench_subdir(cli, size, name) < 0)
        return bench_fail(res, "cannot create %s", name);
    bench_rmtree(cli);
    if (bench_copy_dir(a, srv) < 0 || bench_copy_dir(b, cli) < 0)
        return bench_fail(res, "cannot copy the replicas");
    if (sync_dir_files(srv) < 0 || sync_dir_files(cli) < 0)
        return bench_fail(res, "cannot sync the copies");
    return 0;
}

/* One TCP sync (tcp_child) on fresh copies of @p a and @p b, removed
 * after; @p no_sync: both replicas opened without fsync; @p warm: the
 * server read its heads before it accepted. */
static int
tcp_run(bench_res *res, const char *a, const char *b, int no_sync, int warm,
        int run)
{
    run_args ra;
    int rc;

    ra.no_sync = no_sync;
    ra.warm = warm;
    if (fresh_copies(res, a, b, ra.srv_dir, ra.cli_dir, sizeof ra.srv_dir,
                     run) < 0)
        return -1;
    rc = bench_run_child(res, tcp_child, &ra);
    bench_rmtree(ra.srv_dir);
    bench_rmtree(ra.cli_dir);
    return rc;
}

int
w_delta_run(bench_entry *e)
{
    char a_dir[700], b_dir[700];
    double ms[64], bytes[64], ms_ns[64], ms_warm[64], cpu[64], s2c = 0, c2s = 0, rounds = 0, proto = 0;
    double p4_bytes = 0, p4_flights = 0, p4_ms = 0, p3_bytes = 0, p3_ms = 0;
    double p3_flights = 0, sync_ms;
    int runs = g_opts.runs;
    setup_args sa;
    bench_res res;
    double t0 = bench_now();
    /* the handshake, byte for byte (docs/protocol.md): hello 77, reply
     * 180, auth 143, each in a 4-byte frame header */
    const double hs_bytes = 77 + 180 + 143 + 3 * 4;

    if (bench_subdir(a_dir, sizeof a_dir, "delta_a") < 0 ||
        bench_subdir(b_dir, sizeof b_dir, "delta_b") < 0) {
        entry_failed(e, "cannot create the replica dirs");
        return -1;
    }
    bench_rmtree(a_dir);
    bench_rmtree(b_dir);
    sa.a_dir = a_dir;
    sa.b_dir = b_dir;
    bench_log("sync_delta setup: %d actors x %llu ops, then one change "
              "each way",
              N_ACTORS, (unsigned long long)ops_per_actor());
    if (bench_run_child(&res, setup_child, &sa) < 0) {
        entry_failed(e, "setup: %s", res.err);
        return -1;
    }
    bench_log("sync_delta setup done in %.1f s", bench_now() - t0);
    for (int i = 0; i < runs; i++) {
        pair_args pa;

        if (tcp_run(&res, a_dir, b_dir, 0, 0, i) < 0) {
            entry_failed(e, "%s", res.err);
            return -1;
        }
        ms[i] = res.v[0];
        bytes[i] = res.v[1];
        cpu[i] = res.v[6];
        s2c = res.v[2];
        c2s = res.v[3];
        rounds = res.v[4];
        proto = res.v[5];
        bench_log("  sync_delta run %d/%d: %.2f ms, %.0f bytes on the wire "
                  "(protocol %.0f, %.0f summary rounds)",
                  i + 1, runs, ms[i], bytes[i], proto, rounds);
        /* the same without fsync: what the protocol itself costs (each
         * side's merge is one durable commit: two fdatasyncs) */
        if (tcp_run(&res, a_dir, b_dir, 1, 0, i) < 0) {
            entry_failed(e, "no_sync: %s", res.err);
            return -1;
        }
        ms_ns[i] = res.v[0];
        /* durable, against a server whose heads are warm (a daemon
         * after its first session) */
        if (tcp_run(&res, a_dir, b_dir, 0, 1, i) < 0) {
            entry_failed(e, "warm server: %s", res.err);
            return -1;
        }
        ms_warm[i] = res.v[0];
        if (i > 0)
            continue;
        /* once: the same sync in one process, protocols 4 and 3 */
        for (unsigned p = 0; p <= 3; p += 3) {
            if (fresh_copies(&res, a_dir, b_dir, pa.srv_dir, pa.cli_dir,
                             sizeof pa.srv_dir, i) < 0) {
                entry_failed(e, "%s", res.err);
                return -1;
            }
            pa.proto = p;
            if (bench_run_child(&res, pair_child, &pa) < 0) {
                entry_failed(e, "in process: %s", res.err);
                return -1;
            }
            if (p == 0) {
                p4_bytes = res.v[0];
                p4_flights = res.v[1];
                p4_ms = res.v[2];
            } else {
                p3_bytes = res.v[0];
                p3_flights = res.v[1];
                p3_ms = res.v[2];
            }
            bench_rmtree(pa.srv_dir);
            bench_rmtree(pa.cli_dir);
        }
    }
    sync_ms = commit_sync_ms(a_dir); /* the replicas' own disk */
    bench_rmtree(a_dir);
    bench_rmtree(b_dir);

    bench_fig fm = bench_fig_of(ms, runs), fb = bench_fig_of(bytes, runs);
    entry_str(e, "what", "two replicas sharing 10,000 actors' ops, one "
                         "change each way: crdtnet_sync_connect to "
                         "crdtnet_serve_conn on 127.0.0.1, two processes");
    entry_int(e, "actors", N_ACTORS);
    entry_int(e, "shared_ops", (uint64_t)N_ACTORS * ops_per_actor());
    entry_num(e, "bytes", fb.med);
    entry_num(e, "bytes_min", fb.min);
    entry_num(e, "bytes_max", fb.max);
    entry_num(e, "ms", fm.med);
    entry_num(e, "ms_min", fm.min);
    entry_num(e, "ms_max", fm.max);
    entry_num(e, "ms_no_fsync", bench_fig_of(ms_ns, runs).med);
    entry_num(e, "ms_warm_server", bench_fig_of(ms_warm, runs).med);
    entry_num(e, "commit_sync_ms", sync_ms);
    entry_num(e, "client_cpu_ms", bench_fig_of(cpu, runs).med);
    entry_int(e, "budget_bytes", BUDGET_BYTES);
    entry_num(e, "budget_ms", BUDGET_MS);
    entry_int(e, "bytes_server_to_client", (uint64_t)s2c);
    entry_int(e, "bytes_client_to_server", (uint64_t)c2s);
    entry_int(e, "sync_proto", (uint64_t)proto);
    entry_int(e, "summary_rounds", (uint64_t)rounds);
    entry_int(e, "handshake_bytes", (uint64_t)hs_bytes);
    entry_num(e, "handshake_share", hs_bytes / fb.med);
    entry_int(e, "in_process_bytes", (uint64_t)p4_bytes);
    entry_int(e, "round_trips", (uint64_t)((p4_flights + 1) / 2));
    entry_num(e, "in_process_ms", p4_ms);
    entry_obj(e, "full_vv");
    entry_str(e, "what", "the same sync in protocol 3 (whole version "
                         "vector and heads in HELLO and FIN), in one "
                         "process");
    entry_int(e, "bytes", (uint64_t)p3_bytes);
    entry_int(e, "round_trips", (uint64_t)((p3_flights + 1) / 2));
    entry_num(e, "ms", p3_ms);
    entry_num(e, "ratio_bytes", p4_bytes > 0 ? p3_bytes / p4_bytes : 0);
    entry_end(e);
    entry_row(e, "%-12s %8.0f bytes %7.2f ms [%.2f..%.2f]  (budget %d "
                 "bytes, %.0f ms); handshake %.0f bytes (%.0f%%)",
              "sync_delta", fb.med, fm.med, fm.min, fm.max, BUDGET_BYTES,
              BUDGET_MS, hs_bytes, 100.0 * hs_bytes / fb.med);
    entry_row(e, "%-12s   without fsync (replicas opened no_sync): %.2f "
                 "ms; client CPU %.2f ms; server's heads warm: %.2f ms",
              "", bench_fig_of(ms_ns, runs).med, bench_fig_of(cpu, runs).med,
              bench_fig_of(ms_warm, runs).med);
    entry_row(e, "%-12s   this disk, one merge's durable commit (16 pages, "
                 "one fdatasync): %.2f ms",
              "", sync_ms);
    entry_row(e, "%-12s   protocol %.0f, %.0f summary rounds, %.0f round "
                 "trips; protocol 3 (full vv): %.0f bytes (%.0fx), %.0f "
                 "round trips",
              "", proto, rounds, (p4_flights + 1) / 2, p3_bytes,
              p4_bytes > 0 ? p3_bytes / p4_bytes : 0, (p3_flights + 1) / 2);
    if (fb.med > BUDGET_BYTES || fm.med >= BUDGET_MS)
        bench_log("sync_delta: over budget: %.0f bytes, %.2f ms", fb.med,
                  fm.med);
    return 0;
}
