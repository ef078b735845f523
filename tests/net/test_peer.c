/*
 * test_peer.c: crdtnet_peer, the transport-free sync object: two peers
 * wired in memory with bytes cut at random places, a peer against the
 * TCP server (crdtnet_serve_conn) over a socket it drives itself, a
 * refused member, a transport that ends early, and garbage input.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "crdt/crdt.h"
#include "crdt/raw.h"
#include "crdtnet/conn.h"
#include "crdtnet/peer.h"
#include "epoch/epoch.h"
#include "peer_internal.h"
#include "support/replica_util.h"
#include "support/support.h"

static char da[256], db[256], dc[256];
static crdt_replica *a, *b, *c; /* a and b: members of each other */
static unsigned char space[16];

static crdt_replica *
make(char *dir, size_t size, const unsigned char *sp)
{
    crdt_replica *r = tu_create(dir, size, sp);

    ck_assert_int_eq(epoch_attach(r), CRDT_OK);
    return r;
}

static void
setup(void)
{
    a = make(da, sizeof da, NULL);
    crdt_replica_space_id(a, space);
    b = make(db, sizeof db, space);
    c = make(dc, sizeof dc, space);
    tu_set_member(a, a, 1);
    tu_set_member(a, b, 1);
}

static void
teardown(void)
{
    crdt_replica_close(a);
    crdt_replica_close(b);
    crdt_replica_close(c);
    test_rmtree(da);
    test_rmtree(db);
    test_rmtree(dc);
}

/* Move bytes both ways, cut into pieces of random size, until both are
 * done (bounded). */
static void
pump(crdtnet_peer *x, crdtnet_peer *y, uint64_t *seed)
{
    crdtnet_peer *side[2] = { x, y };
    int rounds = 0;

    while (!(crdtnet_peer_done(x) && crdtnet_peer_done(y))) {
        int moved = 0;
        ck_assert_int_lt(++rounds, 100000);
        for (int i = 0; i < 2; i++) {
            const unsigned char *p;
            size_t n;
            while (crdtnet_peer_next_out(side[i], &p, &n) == CRDT_OK) {
                size_t off = 0;
                while (off < n) {
                    size_t k = 1 + test_rand(seed) % 700;
                    if (k > n - off)
                        k = n - off;
                    crdtnet_peer_feed(side[1 - i], p + off, k);
                    off += k;
                }
                moved = 1;
            }
        }
        if (!moved) {
            /* nothing moves and not done: a bug; say which */
            ck_assert_msg(crdtnet_peer_done(x) && crdtnet_peer_done(y),
                          "stalled: x done %d, y done %d",
                          crdtnet_peer_done(x), crdtnet_peer_done(y));
        }
    }
}

static void
put_str(crdt_replica *r, const char *doc, const char *text)
{
    crdt_value v = crdt_value_str(text, strlen(text));
    crdt_txn *t;

    ck_assert_int_eq(crdt_txn_begin(&t, r), CRDT_OK);
    ck_assert_int_eq(crdt_txn_put(t, "notes", doc, "title", &v), CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
}

START_TEST(test_two_peers_in_memory_converge)
{
    crdtnet_peer *pc, *ps;
    crdtnet_report rc_rep, rs_rep;
    crdtnet_peer_progress pg;
    uint64_t seed = test_seed("peer pump");
    char ha[65], hb[65], buf[64];
    unsigned char pk[32];

    for (int i = 0; i < 50; i++) {
        char doc[16];
        snprintf(doc, sizeof doc, "a%d", i);
        put_str(a, doc, "from a");
        snprintf(doc, sizeof doc, "b%d", i);
        put_str(b, doc, "from b");
    }
    ck_assert_int_eq(crdtnet_peer_new(&pc, &b, 1, CRDTNET_HS_CLIENT, NULL),
                     CRDT_OK);
    ck_assert_int_eq(crdtnet_peer_new(&ps, &a, 1, CRDTNET_HS_SERVER, NULL),
                     CRDT_OK);
    ck_assert_int_eq(crdtnet_peer_result(pc, NULL), CRDT_EAGAIN);
    pump(pc, ps, &seed);
    ck_assert_int_eq(crdtnet_peer_result(pc, &rc_rep), CRDT_OK);
    ck_assert_int_eq(crdtnet_peer_result(ps, &rs_rep), CRDT_OK);
    ck_assert(rc_rep.in_sync);
    ck_assert(rs_rep.in_sync);
    ck_assert_uint_eq(rc_rep.changes_sent, 50);
    ck_assert_uint_ge(rc_rep.changes_received, 50);
    crdtnet_peer_progress_get(pc, &pg);
    ck_assert(pg.authenticated && pg.done);
    ck_assert_uint_gt(pg.bytes_in, 0);
    ck_assert_uint_gt(pg.bytes_out, 0);
    ck_assert_uint_eq(pg.changes_sent, 50);
    crdt_replica_public_key(a, pk);
    ck_assert_mem_eq(pg.peer_key, pk, 32);
    tu_hash(ha, a);
    tu_hash(hb, b);
    ck_assert_str_eq(ha, hb);
    tu_field_str(buf, sizeof buf, a, "notes", "b7", "title");
    ck_assert_str_eq(buf, "\"from b\"");
    /* done: more bytes are dropped, nothing more comes out */
    const unsigned char *p;
    size_t n;
    ck_assert_int_eq(crdtnet_peer_feed(pc, "x", 1), CRDT_ECLOSED);
    ck_assert_int_eq(crdtnet_peer_next_out(pc, &p, &n), CRDT_ECLOSED);
    crdtnet_peer_free(pc);
    crdtnet_peer_free(ps);
}
END_TEST

START_TEST(test_non_member_is_refused)
{
    crdtnet_peer *pc, *ps;
    crdtnet_report rep;
    uint64_t seed = 7;
    crdtnet_peer_options strict = CRDTNET_PEER_OPTIONS_INIT;

    put_str(a, "secret", "x");
    strict.no_tofu = 1;
    tu_set_member(c, c, 1); /* c's member set is not empty: no TOFU either */
    ck_assert_int_eq(crdtnet_peer_new(&pc, &c, 1, CRDTNET_HS_CLIENT,
                                      &strict), CRDT_OK);
    ck_assert_int_eq(crdtnet_peer_new(&ps, &a, 1, CRDTNET_HS_SERVER, NULL),
                     CRDT_OK);
    /* The client refuses the server (not in its member set) and, not
     * trusting it, tells it nothing: the transport just closes. */
    for (int i = 0; i < 10 && !crdtnet_peer_done(pc); i++) {
        const unsigned char *p;
        size_t n;
        while (crdtnet_peer_next_out(pc, &p, &n) == CRDT_OK)
            crdtnet_peer_feed(ps, p, n);
        while (crdtnet_peer_next_out(ps, &p, &n) == CRDT_OK)
            crdtnet_peer_feed(pc, p, n);
    }
    (void)seed;
    ck_assert(crdtnet_peer_done(pc));
    crdtnet_peer_eof(ps);
    ck_assert_int_eq(crdtnet_peer_result(ps, &rep), CRDT_EIO);
    ck_assert_int_eq(crdtnet_peer_result(pc, &rep), CRDT_EAUTH);
    ck_assert_ptr_nonnull(strstr(rep.reason, "member"));
    char buf[32];
    tu_field_str(buf, sizeof buf, c, "notes", "secret", "title");
    ck_assert_str_eq(buf, "");
    crdtnet_peer_free(pc);
    crdtnet_peer_free(ps);
}
END_TEST

START_TEST(test_transport_ends_early_and_garbage)
{
    crdtnet_peer *pc, *ps;
    crdtnet_report rep;
    const unsigned char *p;
    size_t n;
    unsigned char junk[300];

    ck_assert_int_eq(crdtnet_peer_new(&pc, &b, 1, CRDTNET_HS_CLIENT, NULL),
                     CRDT_OK);
    ck_assert_int_eq(crdtnet_peer_next_out(pc, &p, &n), CRDT_OK); /* hello */
    crdtnet_peer_eof(pc);
    ck_assert(crdtnet_peer_done(pc));
    ck_assert_int_eq(crdtnet_peer_result(pc, &rep), CRDT_EIO);
    ck_assert_ptr_nonnull(strstr(rep.reason, "handshake"));
    crdtnet_peer_free(pc);

    /* a server fed garbage ends with an error, never crashes or hangs */
    ck_assert_int_eq(crdtnet_peer_new(&ps, &a, 1, CRDTNET_HS_SERVER, NULL),
                     CRDT_OK);
    memset(junk, 0xff, sizeof junk);
    ck_assert_int_eq(crdtnet_peer_feed(ps, junk, sizeof junk), CRDT_OK);
    for (int i = 0; i < 10 && crdtnet_peer_next_out(ps, &p, &n) == CRDT_OK;
         i++)
        ;
    ck_assert(crdtnet_peer_done(ps));
    ck_assert_int_lt(crdtnet_peer_result(ps, &rep), 0);
    crdtnet_peer_free(ps);

    ck_assert_int_eq(crdtnet_peer_new(&ps, &a, 0, CRDTNET_HS_SERVER, NULL),
                     CRDT_EINVAL);
    crdt_replica *two[2] = { a, b };
    ck_assert_int_eq(crdtnet_peer_new(&ps, two, 2, CRDTNET_HS_CLIENT, NULL),
                     CRDT_EINVAL);
}
END_TEST

/* ---- against the TCP server: the same bytes on any wire ---- */

typedef struct {
    int fd;
    int rc;
} serve_arg;

static void *
serve_thread(void *p)
{
    serve_arg *s = p;
    crdtnet_report rep;

    s->rc = crdtnet_serve_conn(s->fd, &a, 1, NULL, &rep);
    return NULL;
}

START_TEST(test_peer_talks_to_the_tcp_server)
{
    int sv[2];
    serve_arg s;
    pthread_t th;
    crdtnet_peer *pc;
    crdtnet_report rep;
    unsigned char buf[65536];
    char ha[65], hb[65];

    put_str(a, "x", "over the wire");
    put_str(b, "y", "from the peer");
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv),
                     0);
    s.fd = sv[0];
    s.rc = 1;
    ck_assert_int_eq(pthread_create(&th, NULL, serve_thread, &s), 0);
    ck_assert_int_eq(crdtnet_peer_new(&pc, &b, 1, CRDTNET_HS_CLIENT, NULL),
                     CRDT_OK);
    for (int rounds = 0; !crdtnet_peer_done(pc); rounds++) {
        const unsigned char *p;
        size_t n;
        struct pollfd pfd = { sv[1], POLLIN, 0 };
        ck_assert_int_lt(rounds, 10000);
        while (crdtnet_peer_next_out(pc, &p, &n) == CRDT_OK)
            for (size_t off = 0; off < n;) {
                ssize_t w = write(sv[1], p + off, n - off);
                ck_assert_int_gt(w, 0);
                off += (size_t)w;
            }
        if (crdtnet_peer_done(pc))
            break;
        ck_assert_int_eq(poll(&pfd, 1, 10000), 1);
        ssize_t r = read(sv[1], buf, sizeof buf);
        if (r <= 0)
            crdtnet_peer_eof(pc);
        else
            crdtnet_peer_feed(pc, buf, (size_t)r);
    }
    ck_assert_int_eq(crdtnet_peer_result(pc, &rep), CRDT_OK);
    ck_assert(rep.in_sync);
    crdtnet_peer_free(pc);
    shutdown(sv[1], SHUT_WR);
    pthread_join(th, NULL);
    close(sv[1]);
    ck_assert_int_eq(s.rc, CRDT_OK);
    tu_hash(ha, a);
    tu_hash(hb, b);
    ck_assert_str_eq(ha, hb);
}
END_TEST

/* ---- what the TCP path had alone, now on every transport ---- */

/* Move bytes both ways until neither side has anything to send
 * (bounded); for live peers, which are never done by themselves. */
static void
pump_idle(crdtnet_peer *x, crdtnet_peer *y)
{
    crdtnet_peer *side[2] = { x, y };
    int moved = 1;

    for (int rounds = 0; moved; rounds++) {
        ck_assert_int_lt(rounds, 100000);
        moved = 0;
        for (int i = 0; i < 2; i++) {
            const unsigned char *p;
            size_t n;
            while (crdtnet_peer_next_out(side[i], &p, &n) == CRDT_OK) {
                crdtnet_peer_feed(side[1 - i], p, n);
                moved = 1;
            }
        }
    }
}

static void
pin(crdt_replica *r, crdt_replica *server)
{
    unsigned char pk[32];
    crdt_raw *t;

    crdt_replica_public_key(server, pk);
    ck_assert_int_eq(crdt_raw_begin(&t, r, 1), CRDT_OK);
    ck_assert_int_eq(crdt_raw_put(t, CRDT_DB_META, CRDTNET_PIN_META,
                                  sizeof CRDTNET_PIN_META - 1, pk,
                                  sizeof pk),
                     CRDT_OK);
    ck_assert_int_eq(crdt_raw_commit(t), CRDT_OK);
}

/* A replica that joined and never synced trusts only the server key it
 * pinned, over a pipe as over TCP. */
START_TEST(test_client_trusts_only_its_pinned_key)
{
    crdtnet_peer *pc, *ps;
    crdtnet_report rep;
    uint64_t seed = 11;

    pin(b, c); /* b's member set is empty: the pin decides */
    ck_assert_int_eq(crdtnet_peer_new(&pc, &b, 1, CRDTNET_HS_CLIENT, NULL),
                     CRDT_OK);
    ck_assert_int_eq(crdtnet_peer_new(&ps, &a, 1, CRDTNET_HS_SERVER, NULL),
                     CRDT_OK);
    pump_idle(pc, ps);
    /* the client refuses in silence and hangs up: the server sees EOF */
    ck_assert(crdtnet_peer_done(pc));
    crdtnet_peer_eof(ps);
    ck_assert_int_eq(crdtnet_peer_result(pc, &rep), CRDT_EAUTH);
    ck_assert_ptr_nonnull(strstr(rep.reason, "member"));
    crdtnet_peer_free(pc);
    crdtnet_peer_free(ps);

    pin(b, a);
    ck_assert_int_eq(crdtnet_peer_new(&pc, &b, 1, CRDTNET_HS_CLIENT, NULL),
                     CRDT_OK);
    ck_assert_int_eq(crdtnet_peer_new(&ps, &a, 1, CRDTNET_HS_SERVER, NULL),
                     CRDT_OK);
    pump(pc, ps, &seed);
    ck_assert_int_eq(crdtnet_peer_result(pc, &rep), CRDT_OK);
    ck_assert(rep.in_sync);
    crdtnet_peer_free(pc);
    crdtnet_peer_free(ps);
}
END_TEST

/* Live: the tick after a commit reads the peer's membership again; a
 * peer removed from the space gets an authentication error in the
 * server's FINAL and both ends close. Until then, the tick pushes new
 * commits. */
START_TEST(test_live_tick_pushes_then_closes_a_revoked_peer)
{
    crdtnet_peer_options live = CRDTNET_PEER_OPTIONS_INIT;
    crdtnet_peer *pc, *ps;
    crdtnet_report rep;
    char buf[64];

    live.live = 1;
    ck_assert_int_eq(crdtnet_peer_new(&pc, &b, 1, CRDTNET_HS_CLIENT, &live),
                     CRDT_OK);
    ck_assert_int_eq(crdtnet_peer_new(&ps, &a, 1, CRDTNET_HS_SERVER, &live),
                     CRDT_OK);
    pump_idle(pc, ps);
    ck_assert_int_eq(crdtnet__peer_phase(ps), CRDTNET__PEER_SESSION);
    put_str(a, "later", "pushed by the tick");
    crdtnet__peer_tick(ps);
    pump_idle(pc, ps);
    tu_field_str(buf, sizeof buf, b, "notes", "later", "title");
    ck_assert_str_eq(buf, "\"pushed by the tick\"");

    tu_set_member(a, b, 0); /* b is removed */
    crdtnet__peer_tick(ps);
    pump_idle(pc, ps);
    ck_assert(crdtnet_peer_done(ps));
    ck_assert(crdtnet_peer_done(pc));
    ck_assert_int_eq(crdtnet_peer_result(ps, &rep), CRDT_EAUTH);
    ck_assert_ptr_nonnull(strstr(rep.reason, "no longer a member"));
    ck_assert_int_eq(crdtnet_peer_result(pc, &rep), CRDT_EAUTH);
    ck_assert_ptr_nonnull(strstr(rep.reason, "no longer a member"));
    crdtnet_peer_free(pc);
    crdtnet_peer_free(ps);
}
END_TEST

/* An idle live session whose message buffers were trimmed on both sides
 * (as the daemon does on a quiet tick) goes on: a commit made after is
 * pushed, and again after a second trim. */
START_TEST(test_live_session_works_after_trim)
{
    crdtnet_peer_options live = CRDTNET_PEER_OPTIONS_INIT;
    crdtnet_peer *pc, *ps;
    char buf[64];

    live.live = 1;
    ck_assert_int_eq(crdtnet_peer_new(&pc, &b, 1, CRDTNET_HS_CLIENT, &live),
                     CRDT_OK);
    ck_assert_int_eq(crdtnet_peer_new(&ps, &a, 1, CRDTNET_HS_SERVER, &live),
                     CRDT_OK);
    pump_idle(pc, ps);
    ck_assert_int_eq(crdtnet__peer_phase(ps), CRDTNET__PEER_SESSION);
    for (int round = 0; round < 2; round++) {
        char val[32];

        crdtnet__peer_trim(pc);
        crdtnet__peer_trim(ps);
        snprintf(val, sizeof val, "after trim %d", round);
        put_str(a, "trimmed", val);
        crdtnet__peer_tick(ps);
        pump_idle(pc, ps);
        tu_field_str(buf, sizeof buf, b, "notes", "trimmed", "title");
        ck_assert_ptr_nonnull(strstr(buf, val));
        ck_assert_int_eq(crdtnet__peer_phase(pc), CRDTNET__PEER_SESSION);
    }
    crdtnet_peer_free(pc);
    crdtnet_peer_free(ps);
}
END_TEST

/* The public clock: a handshake with no answer fails after its timeout;
 * a quiet live session gets a keepalive after a third of the idle
 * timeout and fails after all of it; the membership re-check of the
 * tick closes a revoked peer. Times are made up: no sleeping. */
START_TEST(test_public_tick_times_out_keeps_alive_and_revokes)
{
    crdtnet_peer_options o = CRDTNET_PEER_OPTIONS_INIT;
    crdtnet_peer *pc, *ps;
    crdtnet_report rep;
    const unsigned char *out;
    size_t n;
    uint64_t next;

    o.live = 1;
    o.handshake_timeout_ms = 1000;
    o.idle_timeout_ms = 3000;
    /* a handshake that nobody answers */
    ck_assert_int_eq(crdtnet_peer_new(&pc, &b, 1, CRDTNET_HS_CLIENT, &o),
                     CRDT_OK);
    next = crdtnet_peer_tick(pc, 5000);
    ck_assert(next == 6000);
    ck_assert_int_eq(crdtnet_peer_next_out(pc, &out, &n), CRDT_OK);
    ck_assert(crdtnet_peer_tick(pc, 5999) == 6000);
    ck_assert(!crdtnet_peer_done(pc));
    ck_assert(crdtnet_peer_tick(pc, 6000) == UINT64_MAX);
    ck_assert(crdtnet_peer_done(pc));
    ck_assert_int_eq(crdtnet_peer_result(pc, &rep), CRDT_EIO);
    ck_assert_ptr_nonnull(strstr(rep.reason, "handshake timed out"));
    crdtnet_peer_free(pc);

    /* a quiet live session: keepalives, then the idle timeout */
    ck_assert_int_eq(crdtnet_peer_new(&pc, &b, 1, CRDTNET_HS_CLIENT, &o),
                     CRDT_OK);
    ck_assert_int_eq(crdtnet_peer_new(&ps, &a, 1, CRDTNET_HS_SERVER, &o),
                     CRDT_OK);
    (void)crdtnet_peer_tick(pc, 0);
    (void)crdtnet_peer_tick(ps, 0);
    pump_idle(pc, ps);
    ck_assert_int_eq(crdtnet__peer_phase(ps), CRDTNET__PEER_SESSION);
    (void)crdtnet_peer_tick(pc, 10);
    (void)crdtnet_peer_tick(ps, 10);
    ck_assert_int_eq(crdtnet_peer_next_out(ps, &out, &n), CRDT_EAGAIN);
    next = crdtnet_peer_tick(ps, 900);
    ck_assert(next <= 10 + 1000); /* the next keepalive at the latest */
    ck_assert_int_eq(crdtnet_peer_next_out(ps, &out, &n), CRDT_EAGAIN);
    (void)crdtnet_peer_tick(ps, 1010);
    ck_assert_int_eq(crdtnet_peer_next_out(ps, &out, &n), CRDT_OK);
    ck_assert(!crdtnet_peer_done(ps));
    (void)crdtnet_peer_tick(ps, 3010); /* nothing received for 3 s */
    ck_assert_int_eq(crdtnet__peer_phase(ps), CRDTNET__PEER_CLOSING);
    pump_idle(pc, ps);
    ck_assert(crdtnet_peer_done(ps));
    ck_assert_int_eq(crdtnet_peer_result(ps, &rep), CRDT_EIO);
    ck_assert_ptr_nonnull(strstr(rep.reason, "idle timeout"));
    crdtnet_peer_free(pc);
    crdtnet_peer_free(ps);

    /* revocation, seen by the tick's membership re-check */
    ck_assert_int_eq(crdtnet_peer_new(&pc, &b, 1, CRDTNET_HS_CLIENT, &o),
                     CRDT_OK);
    ck_assert_int_eq(crdtnet_peer_new(&ps, &a, 1, CRDTNET_HS_SERVER, &o),
                     CRDT_OK);
    (void)crdtnet_peer_tick(ps, 0);
    pump_idle(pc, ps);
    tu_set_member(a, b, 0);
    (void)crdtnet_peer_tick(ps, 300);
    pump_idle(pc, ps);
    ck_assert(crdtnet_peer_done(ps));
    ck_assert_int_eq(crdtnet_peer_result(pc, &rep), CRDT_EAUTH);
    ck_assert_ptr_nonnull(strstr(rep.reason, "no longer a member"));
    crdtnet_peer_free(pc);
    crdtnet_peer_free(ps);
}
END_TEST

Suite *
test_suite(void)
{
    Suite *s = suite_create("peer");
    TCase *tc = tcase_create("peer");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_two_peers_in_memory_converge);
    tcase_add_test(tc, test_non_member_is_refused);
    tcase_add_test(tc, test_transport_ends_early_and_garbage);
    tcase_add_test(tc, test_peer_talks_to_the_tcp_server);
    tcase_add_test(tc, test_client_trusts_only_its_pinned_key);
    tcase_add_test(tc, test_live_tick_pushes_then_closes_a_revoked_peer);
    tcase_add_test(tc, test_live_session_works_after_trim);
    tcase_add_test(tc, test_public_tick_times_out_keeps_alive_and_revokes);
    suite_add_tcase(s, tc);
    return s;
}
