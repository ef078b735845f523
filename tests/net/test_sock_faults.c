/*
 * test_sock_faults.c: sync sessions over real TCP sockets on 127.0.0.1
 * whose socket calls misbehave (support/sockfault.h), served both by
 * crdtnet_serve_conn() on a thread of its own and by the daemon's event
 * loop. Two replicas each hold changes the other lacks; every run starts
 * from byte copies of them.
 *
 *  - Transient faults (EINTR, EAGAIN, reads and writes of 1 byte or of a
 *    random part, an aborted accept): the sync ends as a clean one does,
 *    both sides in one state.
 *  - A connection reset at each send() or recv() of the session in turn:
 *    each side ends soon, with CRDT_EIO (never "bad data" nor "not
 *    authorised": a daemon marks a replica damaged, or a peer refused,
 *    on those) or with CRDT_OK, and then it holds everything: a reset
 *    that breaks only the closing comes after the exchange is complete.
 *    A clean sync afterwards brings both to the state an unbroken one
 *    gives: a reset loses nothing and leaves nothing half done.
 */
#include <check.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "crdt/crdt.h"
#include "crdtnet/conn.h"
#include "crdtnet/daemon.h"
#include "io_internal.h"
#include "support/epoch_util.h"
#include "support/replica_util.h"
#include "support/sockfault.h"
#include "support/support.h"

#define CALLS_MAX 5000 /* far above what one session here makes */
#define SESSION_MS_MAX 2500 /* a broken session ends within this */

TU_PAIR_FIXTURE(tu_pair_open)

static char ref_hash[65]; /* both replicas after a clean sync */

/* ---- the pair ------------------------------------------------------ */

/* @p n changes of a 120-byte string each: with 600-byte messages, a
 * dozen messages each way. */
static void
put_notes(crdt_replica *r, const char *who, int n)
{
    char doc[32], text[121];

    for (int i = 0; i < n; i++) {
        crdt_value v;
        crdt_txn *t;

        snprintf(doc, sizeof doc, "%s%d", who, i);
        memset(text, 'a' + i % 26, 120);
        text[120] = '\0';
        v = crdt_value_str(text, 120);
        ck_assert_int_eq(crdt_txn_begin(&t, r), CRDT_OK);
        ck_assert_int_eq(crdt_txn_put(t, "notes", doc, "body", &v), CRDT_OK);
        ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    }
}

static crdtnet_conn_options
options(void)
{
    crdtnet_conn_options o = CRDTNET_CONN_OPTIONS_INIT;

    o.batch_bytes = 600;
    o.handshake_timeout_ms = 5000; /* a backstop: SESSION_MS_MAX decides */
    o.idle_timeout_ms = 5000;
    return o;
}

/* ---- one sync: the client y against the server x ------------------- */

typedef struct {
    int lfd, rc;
    crdt_replica *r;
    crdtnet_conn_options o;
    crdtnet_report rep;
    pthread_t th;
} server;

static void *
server_main(void *arg)
{
    server *s = arg;
    struct pollfd pfd = { s->lfd, POLLIN, 0 };
    int fd;

    s->rc = -1; /* nobody came: the test fails on it */
    if (poll(&pfd, 1, 10000) <= 0)
        return NULL;
    fd = accept(s->lfd, NULL, NULL);
    if (fd >= 0)
        s->rc = crdtnet_serve_conn(fd, &s->r, 1, &s->o, &s->rep);
    return NULL;
}

/* The result of one sync: each side's error and the time it took. */
typedef struct {
    int ex, ey;
    long long ms;
    char why_x[sizeof(crdtnet_report){0}.reason];
    char why_y[sizeof(crdtnet_report){0}.reason];
} run_result;

static int
client(crdtnet_report *rep, crdt_replica *y, int port)
{
    crdtnet_conn_options o = options();
    char p[16];

    snprintf(p, sizeof p, "%d", port);
    return crdtnet_sync_connect(rep, y, "127.0.0.1", p, &o);
}

/* crdtnet_serve_conn() on a thread of its own serves @p x. */
static run_result
sync_threaded(crdt_replica *x, crdt_replica *y)
{
    run_result res;
    crdtnet_report rep;
    server s;
    int port;
    long long t0 = crdtnet__now_ms();

    memset(&s, 0, sizeof s);
    s.lfd = test_listen_local(&port);
    s.r = x;
    s.o = options();
    ck_assert_int_eq(pthread_create(&s.th, NULL, server_main, &s), 0);
    res.ey = client(&rep, y, port);
    pthread_join(s.th, NULL);
    close(s.lfd);
    res.ms = crdtnet__now_ms() - t0;
    res.ex = s.rc;
    snprintf(res.why_x, sizeof res.why_x, "%s", s.rep.reason);
    snprintf(res.why_y, sizeof res.why_y, "%s", rep.reason);
    return res;
}

/* The daemon's log lines: STRATA_TEST_LOG=1 shows them. */
static void
daemon_log(const char *line, void *ctx)
{
    const char *env = getenv("STRATA_TEST_LOG");

    (void)ctx;
    if (env != NULL && env[0] == '1')
        fprintf(stderr, "daemon: %s\n", line);
}

typedef struct {
    crdtnet_daemon *d;
    pthread_t th;
    int rc;
} daemon_t;

static void *
daemon_main(void *arg)
{
    daemon_t *x = arg;

    x->rc = crdtnet_daemon_run(x->d);
    return NULL;
}

/* The daemon's event loop serves @p x (its side's answer is not
 * returned: ex is CRDT_OK; what it did shows in the state). */
static run_result
sync_daemon(crdt_replica *x, crdt_replica *y)
{
    crdtnet_daemon_options o = CRDTNET_DAEMON_OPTIONS_INIT;
    run_result res;
    crdtnet_report rep;
    daemon_t dm;
    long long t0;

    o.conn = options();
    o.conn.log = daemon_log;
    ck_assert_int_eq(crdtnet_daemon_new(&dm.d, &x, 1, "127.0.0.1", "0",
                                        NULL, 0, &o),
                     CRDT_OK);
    ck_assert_int_eq(pthread_create(&dm.th, NULL, daemon_main, &dm), 0);
    t0 = crdtnet__now_ms();
    res.ey = client(&rep, y, crdtnet_daemon_port(dm.d));
    res.ms = crdtnet__now_ms() - t0;
    crdtnet_daemon_stop(dm.d);
    pthread_join(dm.th, NULL);
    ck_assert_int_eq(dm.rc, CRDT_OK);
    crdtnet_daemon_free(dm.d);
    res.ex = CRDT_OK;
    res.why_x[0] = '\0';
    snprintf(res.why_y, sizeof res.why_y, "%s", rep.reason);
    return res;
}

typedef run_result (*sync_fn)(crdt_replica *x, crdt_replica *y);

/* ---- fixtures ------------------------------------------------------ */

/* Members both ways, changes on both sides, the replicas closed; the
 * state a clean sync of copies gives goes to ref_hash. */
static void
prepare(void)
{
    char dx[256], dy[256];
    crdt_replica *x, *y;
    run_result r;

    tu_set_member(a, a, 1);
    tu_set_member(a, b, 1);
    tu_set_member(b, a, 1);
    tu_set_member(b, b, 1);
    put_notes(a, "a", 40);
    put_notes(b, "b", 40);
    crdt_replica_close(a);
    crdt_replica_close(b);
    a = b = NULL;
    tu_pair_copy(da, db, dx, dy, &x, &y);
    r = sync_threaded(x, y);
    ck_assert_msg(r.ex == CRDT_OK && r.ey == CRDT_OK, "%s / %s",
                  r.why_x, r.why_y);
    tu_assert_converged(x, y);
    tu_hash(ref_hash, x);
    tu_pair_close(x, dx, y, dy);
}

/* The pair again, for the fixture's teardown. */
static void
reopen(void)
{
    a = tu_open_dir(da);
    b = tu_open_dir(db);
}

/* Copies of the pair, @p sync under whatever sockfault is armed; the
 * copies are left open in @p x and @p y. */
static run_result
run_on_copies(sync_fn sync, char *dx, char *dy, crdt_replica **x,
              crdt_replica **y)
{
    tu_pair_copy(da, db, dx, dy, x, y);
    return sync(*x, *y);
}

static void
assert_reference(crdt_replica *x, crdt_replica *y)
{
    char h[65];

    tu_assert_converged(x, y);
    tu_hash(h, x);
    ck_assert_str_eq(h, ref_hash);
}

/* ---- transient faults ---------------------------------------------- */

/* Seeds per chaos test: STRATA_SOCKFAULT_SEEDS (the soak tier's), else
 * 12. */
static int
chaos_seeds(void)
{
    const char *env = getenv("STRATA_SOCKFAULT_SEEDS");
    long n = env != NULL ? strtol(env, NULL, 10) : 0;

    return n > 0 && n < 1000000 ? (int)n : 12;
}

static void
chaos_runs(sync_fn sync, const char *what, uint64_t first_seed, int seeds)
{
    sockfault_counts before = sockfault_totals(), after;

    for (int i = 0; i < seeds; i++) {
        char dx[256], dy[256];
        crdt_replica *x, *y;
        run_result r;

        sockfault_chaos(first_seed + (uint64_t)i, 35);
        r = run_on_copies(sync, dx, dy, &x, &y);
        sockfault_off();
        ck_assert_msg(r.ex == CRDT_OK && r.ey == CRDT_OK,
                      "%s, seed %llu: %s (%s) / %s (%s)", what,
                      (unsigned long long)(first_seed + (uint64_t)i),
                      crdt_strerror(r.ex), r.why_x, crdt_strerror(r.ey),
                      r.why_y);
        ck_assert_msg(r.ms < SESSION_MS_MAX * 2, "%s: %lld ms", what,
                      r.ms);
        assert_reference(x, y);
        tu_pair_close(x, dx, y, dy);
    }
    after = sockfault_totals();
    /* every kind was dealt, not only the harmless ones */
    ck_assert_int_gt(after.eintr, before.eintr);
    ck_assert_int_gt(after.eagain, before.eagain);
    ck_assert_int_gt(after.one_byte, before.one_byte);
    ck_assert_int_gt(after.short_io, before.short_io);
}

START_TEST(test_sync_through_transient_socket_faults)
{
    prepare();
    chaos_runs(sync_threaded, "threaded", 1, chaos_seeds());
    reopen();
}
END_TEST

START_TEST(test_daemon_sync_through_transient_socket_faults)
{
    sockfault_counts before, after;

    prepare();
    before = sockfault_totals();
    chaos_runs(sync_daemon, "daemon", 1000001, chaos_seeds());
    after = sockfault_totals();
    ck_assert_int_gt(after.aborted, before.aborted); /* accept4 too */
    reopen();
}
END_TEST

/* ---- a reset at every call ----------------------------------------- */

static int
eio_or_ok(int rc)
{
    return rc == CRDT_OK || rc == CRDT_EIO;
}

static void
reset_at_each_call(sync_fn sync, const char *what)
{
    long k;
    int done = 0, eio_x = 0, eio_y = 0;

    for (k = 1; k < CALLS_MAX && !done; k++) {
        char dx[256], dy[256];
        crdt_replica *x, *y;
        run_result r;
        long calls;
        int broke;

        sockfault_break_at(k);
        r = run_on_copies(sync, dx, dy, &x, &y);
        calls = sockfault_off();
        broke = sockfault_broke();
        if (!broke) {
            ck_assert_msg(r.ex == CRDT_OK && r.ey == CRDT_OK,
                          "%s: no reset, yet %s / %s", what,
                          crdt_strerror(r.ex), crdt_strerror(r.ey));
            done = 1;
        } else {
            ck_assert_msg(eio_or_ok(r.ex) && eio_or_ok(r.ey),
                          "%s: reset at call %ld of %ld, the sides said %s "
                          "(%s) / %s (%s)", what, k, calls,
                          crdt_strerror(r.ex), r.why_x, crdt_strerror(r.ey),
                          r.why_y);
            /* both ended well: the session was over before the reset
             * (it broke the closing), so both hold everything */
            if (r.ex == CRDT_OK && r.ey == CRDT_OK)
                assert_reference(x, y);
            eio_x += r.ex == CRDT_EIO;
            eio_y += r.ey == CRDT_EIO;
        }
        ck_assert_msg(r.ms < SESSION_MS_MAX, "%s: reset at call %ld, the "
                      "session took %lld ms", what, k, r.ms);
        /* nothing lost, nothing half done */
        r = sync(x, y);
        ck_assert_msg(r.ex == CRDT_OK && r.ey == CRDT_OK, "%s: after a "
                      "reset at call %ld, the next sync said %s (%s) / %s "
                      "(%s)", what, k, crdt_strerror(r.ex), r.why_x,
                      crdt_strerror(r.ey), r.why_y);
        assert_reference(x, y);
        tu_pair_close(x, dx, y, dy);
    }
    ck_assert_int_eq(done, 1);
    if (getenv("STRATA_TEST_LOG") != NULL)
        fprintf(stderr, "%s: %ld calls; EIO %d times on the server's "
                "side, %d on the client's\n", what, k - 2, eio_x, eio_y);
    /* the session made calls to break, and the breaks were felt on
     * both sides (the daemon's own answers are not returned) */
    ck_assert_int_gt(k, 20);
    ck_assert_int_gt(eio_y, 0);
    if (sync == sync_threaded)
        ck_assert_int_gt(eio_x, 0);
}

START_TEST(test_reset_at_every_socket_call)
{
    prepare();
    reset_at_each_call(sync_threaded, "threaded");
    reopen();
}
END_TEST

START_TEST(test_daemon_reset_at_every_socket_call)
{
    prepare();
    reset_at_each_call(sync_daemon, "daemon");
    reopen();
}
END_TEST

Suite *
test_suite(void)
{
    Suite *s = suite_create("net_sock_faults");
    TCase *tc = tcase_create("net_sock_faults");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_sync_through_transient_socket_faults);
    tcase_add_test(tc, test_daemon_sync_through_transient_socket_faults);
    tcase_add_test(tc, test_reset_at_every_socket_call);
    tcase_add_test(tc, test_daemon_reset_at_every_socket_call);
    suite_add_tcase(s, tc);
    return s;
}
