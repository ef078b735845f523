/*
 * test_conn.c: sync sessions over real TCP sockets on 127.0.0.1, and the
 * member set (docs/testing.md B1, B2, B19, S1, S5). A server thread accepts and
 * runs crdtnet_serve_conn(); the test thread is the client. Every wait
 * is bounded in time.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "crdt/crdt.h"
#include "crdt/raw.h"
#include "crdtnet/channel.h"
#include "crdtnet/conn.h"
#include "crdtnet/frame.h"
#include "crdtnet/handshake.h"
#include "epoch/epoch.h"
#include "io_internal.h"
#include "support/replica_util.h"
#include "support/support.h"

#define MAX_SERVED 4

static char da[256], db[256], dc[256];
static crdt_replica *a, *b, *c; /* a serves; b and c are clients */
static unsigned char space[16];

/* ---- helpers ------------------------------------------------------ */

static crdt_replica *
make(char *dir, size_t size, const unsigned char *sp)
{
    crdt_replica *r = tu_create(dir, size, sp);

    ck_assert_int_eq(epoch_attach(r), CRDT_OK);
    return r;
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

static void
field(char *buf, size_t size, crdt_replica *r, const char *doc)
{
    tu_field_str(buf, size, r, "notes", doc, "title");
}

static long long
now_ms(void)
{
    return crdtnet__now_ms();
}

static int
dial_raw(int port)
{
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    ck_assert_int_ge(fd, 0);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((uint16_t)port);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return fd;
}

/* Milliseconds until the peer closes @p fd (EOF or reset); -1 if not
 * within @p limit_ms. Bytes it sends meanwhile are discarded. */
static long long
ms_until_closed(int fd, int limit_ms)
{
    long long start = now_ms(), left;
    unsigned char buf[4096];
    struct pollfd pfd = { fd, POLLIN, 0 };
    ssize_t r;

    for (;;) {
        left = start + limit_ms - now_ms();
        if (left <= 0)
            return -1;
        if (poll(&pfd, 1, (int)left) <= 0)
            continue;
        r = recv(fd, buf, sizeof buf, 0);
        if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN))
            return now_ms() - start;
    }
}

/* STRATA_TEST_LOG=1 shows every connection's log lines. */
static void
log_line(const char *line, void *ctx)
{
    fprintf(stderr, "%s: %s\n", (const char *)ctx, line);
}

static void
with_log(crdtnet_conn_options *o, const char *who)
{
    const char *env = getenv("STRATA_TEST_LOG");

    if (env != NULL && env[0] == '1' && o->log == NULL) {
        o->log = log_line;
        o->log_ctx = (void *)who;
    }
}

/* A server thread: accept and serve up to @c count connections. */
typedef struct {
    int lfd, port, count;
    crdt_replica *reps[2];
    size_t n;
    crdtnet_conn_options o;
    int rc[MAX_SERVED];
    crdtnet_report rep[MAX_SERVED];
    long long ms[MAX_SERVED];
    int served;
    pthread_t th;
} server;

static void *
server_main(void *arg)
{
    server *s = arg;
    struct pollfd pfd;

    for (s->served = 0; s->served < s->count; s->served++) {
        long long t0;
        int fd;

        pfd.fd = s->lfd;
        pfd.events = POLLIN;
        pfd.revents = 0;
        if (poll(&pfd, 1, 20000) <= 0)
            break; /* the test fails on s->served */
        fd = accept(s->lfd, NULL, NULL);
        if (fd < 0)
            break;
        t0 = now_ms();
        s->rc[s->served] = crdtnet_serve_conn(fd, s->reps, s->n, &s->o,
                                              &s->rep[s->served]);
        s->ms[s->served] = now_ms() - t0;
    }
    return NULL;
}

static void
server_start(server *s, int count, const crdtnet_conn_options *o)
{
    crdtnet_conn_options d = CRDTNET_CONN_OPTIONS_INIT;

    memset(s, 0, sizeof *s);
    s->lfd = test_listen_local(&s->port);
    s->count = count;
    s->reps[0] = a;
    s->n = 1;
    s->o = o ? *o : d;
    with_log(&s->o, "server");
    ck_assert_int_eq(pthread_create(&s->th, NULL, server_main, s), 0);
}

static void
server_join(server *s)
{
    pthread_join(s->th, NULL);
    close(s->lfd);
    ck_assert_int_eq(s->served, s->count);
}

static int
client_sync(crdtnet_report *rep, crdt_replica *r, int port,
            const crdtnet_conn_options *o)
{
    crdtnet_conn_options d = CRDTNET_CONN_OPTIONS_INIT;
    char p[16];
    int rc;

    if (o != NULL)
        d = *o;
    with_log(&d, "client");
    snprintf(p, sizeof p, "%d", port);
    rc = crdtnet_sync_connect(rep, r, "127.0.0.1", p, &d);
    if (rc != CRDT_OK && getenv("STRATA_TEST_LOG") != NULL)
        fprintf(stderr, "client: %s: %s\n", crdt_strerror(rc), rep->reason);
    return rc;
}

static void
setup(void)
{
    a = make(da, sizeof da, NULL);
    crdt_replica_space_id(a, space);
    b = make(db, sizeof db, space);
    c = NULL;
    /* a and b know each other */
    tu_set_member(a, a, 1);
    tu_set_member(a, b, 1);
    tu_set_member(b, a, 1);
    tu_set_member(b, b, 1);
}

static void
teardown(void)
{
    crdt_replica_close(a);
    crdt_replica_close(b);
    crdt_replica_close(c);
    test_rmtree(da);
    test_rmtree(db);
    if (c != NULL)
        test_rmtree(dc);
}

/* ---- membership --------------------------------------------------- */

START_TEST(test_members_true_false_absent_and_wrong_type)
{
    unsigned char pk[32];
    char hex[65];
    crdt_value v = crdt_value_int(1);
    crdt_txn *t;
    uint64_t n = 99;

    c = make(dc, sizeof dc, space);
    ck_assert_int_eq(crdtnet_member_count(c, &n), CRDT_OK);
    ck_assert_uint_eq(n, 0);
    crdt_replica_public_key(a, pk);
    ck_assert_int_eq(crdtnet_is_member(c, pk), 0);
    tu_set_member(c, a, 1);
    ck_assert_int_eq(crdtnet_is_member(c, pk), 1);
    tu_set_member(c, b, 0); /* false: not a member */
    crdt_replica_public_key(b, pk);
    ck_assert_int_eq(crdtnet_is_member(c, pk), 0);
    /* an int 1 is not "true" (fails closed) */
    crdt_replica_public_key(c, pk);
    crdt_hex(hex, pk, sizeof pk);
    ck_assert_int_eq(crdt_txn_begin(&t, c), CRDT_OK);
    ck_assert_int_eq(crdt_txn_put(t, "$members", hex, "member", &v),
                     CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    ck_assert_int_eq(crdtnet_is_member(c, pk), 0);
    ck_assert_int_eq(crdtnet_member_count(c, &n), CRDT_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(crdtnet_member_count(a, &n), CRDT_OK);
    ck_assert_uint_eq(n, 2);
}
END_TEST

START_TEST(test_split_hostport)
{
    char h[64], p[16];

    ck_assert_int_eq(crdtnet_split_hostport(h, sizeof h, p, sizeof p,
                                             "127.0.0.1:7000"),
                     CRDT_OK);
    ck_assert_str_eq(h, "127.0.0.1");
    ck_assert_str_eq(p, "7000");
    ck_assert_int_eq(
        crdtnet_split_hostport(h, sizeof h, p, sizeof p, "[::1]:80"),
        CRDT_OK);
    ck_assert_str_eq(h, "::1");
    ck_assert_str_eq(p, "80");
    ck_assert_int_eq(
        crdtnet_split_hostport(h, sizeof h, p, sizeof p, "::1:80"),
        CRDT_EINVAL);
    ck_assert_int_eq(
        crdtnet_split_hostport(h, sizeof h, p, sizeof p, "host"),
        CRDT_EINVAL);
    ck_assert_int_eq(
        crdtnet_split_hostport(h, sizeof h, p, sizeof p, ":80"),
        CRDT_EINVAL);
    ck_assert_int_eq(
        crdtnet_split_hostport(h, sizeof h, p, sizeof p, "host:"),
        CRDT_EINVAL);
    /* the port is a number a socket can have */
    ck_assert_int_eq(
        crdtnet_split_hostport(h, sizeof h, p, sizeof p, "host:65535"),
        CRDT_OK);
    ck_assert_int_eq(
        crdtnet_split_hostport(h, sizeof h, p, sizeof p, "host:0"), CRDT_OK);
    ck_assert_int_eq(
        crdtnet_split_hostport(h, sizeof h, p, sizeof p, "host:65536"),
        CRDT_EINVAL);
    ck_assert_int_eq(
        crdtnet_split_hostport(h, sizeof h, p, sizeof p, "host:http"),
        CRDT_EINVAL);
    ck_assert_int_eq(
        crdtnet_split_hostport(h, sizeof h, p, sizeof p, "[::1]:-1"),
        CRDT_EINVAL);
    ck_assert_int_eq(
        crdtnet_split_hostport(h, sizeof h, p, sizeof p, "[]:80"),
        CRDT_EINVAL);
}
END_TEST

/* ---- the happy path ----------------------------------------------- */

START_TEST(test_conn_sync_moves_writes_both_ways)
{
    unsigned char ha[32], hb[32];
    crdtnet_report rep;
    char buf[128], hxa[65], hxb[65];
    server s;

    put_str(a, "from-a", "written on a");
    put_str(b, "from-b", "written on b");
    server_start(&s, 1, NULL);
    ck_assert_int_eq(client_sync(&rep, b, s.port, NULL), CRDT_OK);
    server_join(&s);
    ck_assert_int_eq(s.rc[0], CRDT_OK);

    field(buf, sizeof buf, b, "from-a");
    ck_assert_str_eq(buf, "\"written on a\"");
    field(buf, sizeof buf, a, "from-b");
    ck_assert_str_eq(buf, "\"written on b\"");
    tu_hash(hxa, a);
    tu_hash(hxb, b);
    ck_assert_str_eq(hxa, hxb);
    ck_assert_int_eq(rep.in_sync, 1);
    ck_assert_int_eq(s.rep[0].in_sync, 1);
    ck_assert_uint_ge(rep.changes_sent, 1);
    ck_assert_uint_ge(rep.changes_received, 1);
    crdt_unhex(ha, 32, hxa);
    crdt_unhex(hb, 32, hxb);
    ck_assert_mem_eq(rep.state_hash, ha, 32);
    ck_assert_mem_eq(s.rep[0].state_hash, hb, 32);
}
END_TEST

START_TEST(test_conn_second_sync_moves_nothing)
{
    crdtnet_report rep;
    server s;

    put_str(a, "x", "1");
    server_start(&s, 2, NULL);
    ck_assert_int_eq(client_sync(&rep, b, s.port, NULL), CRDT_OK);
    ck_assert_int_eq(client_sync(&rep, b, s.port, NULL), CRDT_OK);
    server_join(&s);
    ck_assert_int_eq(s.rc[1], CRDT_OK);
    ck_assert_uint_eq(rep.changes_received, 0);
    ck_assert_uint_eq(rep.changes_sent, 0);
    ck_assert_int_eq(rep.in_sync, 1);
}
END_TEST

/* Both sides send megabytes at once: more than the socket buffers hold,
 * so a layer that only wrote while writing would deadlock. */
START_TEST(test_conn_megabytes_both_ways_do_not_deadlock)
{
    crdtnet_conn_options o = CRDTNET_CONN_OPTIONS_INIT;
    static char big[16 * 1024];
    crdtnet_report rep;
    char ha[65], hb[65], doc[32];
    crdt_replica *side[2];
    long long t0;
    server s;
    int i, j, k;

    side[0] = a;
    side[1] = b;
    for (k = 0; k < 2; k++) {
        for (i = 0; i < 40; i++) {
            crdt_txn *t;

            ck_assert_int_eq(crdt_txn_begin(&t, side[k]), CRDT_OK);
            for (j = 0; j < 5; j++) {
                crdt_value v;

                memset(big, 'a' + (i + j + k) % 26, sizeof big);
                v = crdt_value_str(big, sizeof big);
                snprintf(doc, sizeof doc, "big-%d-%d-%d", k, i, j);
                ck_assert_int_eq(crdt_txn_put(t, "bulk", doc, "v", &v),
                                 CRDT_OK);
            }
            ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
        }
    }
    o.batch_bytes = 1024 * 1024; /* messages larger than a socket buffer */
    server_start(&s, 1, &o);
    t0 = now_ms();
    ck_assert_int_eq(client_sync(&rep, b, s.port, &o), CRDT_OK);
    server_join(&s);
    fprintf(stderr, "3.3 MB each way synced in %lld ms\n", now_ms() - t0);
    ck_assert_int_eq(s.rc[0], CRDT_OK);
    ck_assert_uint_eq(rep.changes_received, 40 + 2);
    ck_assert_uint_eq(s.rep[0].changes_received, 40 + 2);
    tu_hash(ha, a);
    tu_hash(hb, b);
    ck_assert_str_eq(ha, hb);
}
END_TEST

/* ---- refusals (S1) ------------------------------------------------ */

START_TEST(test_conn_non_member_is_refused_and_nothing_moves)
{
    char before_a[65], after_a[65], before_c[65], after_c[65], buf[64];
    crdtnet_report rep;
    server s;

    c = make(dc, sizeof dc, space); /* same space; a does not list it */
    tu_set_member(c, a, 1);
    tu_set_member(c, c, 1);
    put_str(c, "from-c", "secret of c");
    put_str(a, "from-a", "secret of a");
    tu_hash(before_a, a);
    tu_hash(before_c, c);
    server_start(&s, 1, NULL);
    ck_assert_int_eq(client_sync(&rep, c, s.port, NULL), CRDT_EAUTH);
    server_join(&s);
    ck_assert_int_eq(s.rc[0], CRDT_EAUTH);
    ck_assert_ptr_nonnull(strstr(rep.reason, "not a member"));
    ck_assert_ptr_nonnull(strstr(s.rep[0].reason, "not a member"));
    tu_hash(after_a, a);
    tu_hash(after_c, c);
    ck_assert_str_eq(before_a, after_a);
    ck_assert_str_eq(before_c, after_c);
    field(buf, sizeof buf, a, "from-c");
    ck_assert_str_eq(buf, "");
    field(buf, sizeof buf, c, "from-a");
    ck_assert_str_eq(buf, "");
}
END_TEST

START_TEST(test_conn_client_of_another_space_is_refused)
{
    crdtnet_report rep;
    char before[65], after[65];
    server s;

    c = make(dc, sizeof dc, NULL); /* a space of its own */
    tu_set_member(c, c, 1);
    tu_set_member(c, a, 1);
    tu_set_member(a, c, 1); /* even a listed key gets nothing */
    tu_hash(before, a);
    server_start(&s, 1, NULL);
    /* The server answers a hello of another space like a stranger's:
     * it closes without a word (docs/protocol.md, "Failure"). */
    ck_assert_int_eq(client_sync(&rep, c, s.port, NULL), CRDT_EIO);
    server_join(&s);
    ck_assert_int_eq(s.rc[0], CRDT_EAUTH);
    ck_assert_ptr_nonnull(strstr(rep.reason, "closed during the handshake"));
    ck_assert_ptr_nonnull(strstr(s.rep[0].reason, "not for a space"));
    tu_hash(after, a);
    ck_assert_str_eq(before, after);
}
END_TEST

START_TEST(test_conn_client_refuses_a_server_outside_its_members)
{
    char before[65], after[65];
    crdtnet_report rep;
    server s;

    c = make(dc, sizeof dc, space);
    tu_set_member(c, c, 1); /* non-empty, without a: strict */
    tu_set_member(a, c, 1);
    put_str(a, "from-a", "not for c");
    tu_hash(before, c);
    server_start(&s, 1, NULL);
    ck_assert_int_eq(client_sync(&rep, c, s.port, NULL), CRDT_EAUTH);
    server_join(&s);
    ck_assert_ptr_nonnull(strstr(rep.reason, "not a member"));
    /* the client says nothing to a server it does not accept: not even
     * its key, which it would have sent next */
    ck_assert_int_eq(s.rc[0], CRDT_EIO);
    ck_assert_ptr_nonnull(strstr(s.rep[0].reason, "handshake"));
    tu_hash(after, c);
    ck_assert_str_eq(before, after);
}
END_TEST

START_TEST(test_conn_new_replica_trusts_the_server_on_first_use)
{
    crdtnet_conn_options strict = CRDTNET_CONN_OPTIONS_INIT;
    crdtnet_report rep;
    char buf[64];
    uint64_t n = 9;
    server s;

    c = make(dc, sizeof dc, space); /* joined, never synced: no members */
    tu_set_member(a, c, 1);
    put_str(a, "from-a", "hello c");
    strict.no_tofu = 1;
    server_start(&s, 2, NULL);
    ck_assert_int_eq(client_sync(&rep, c, s.port, &strict), CRDT_EAUTH);
    ck_assert_int_eq(crdtnet_member_count(c, &n), CRDT_OK);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(client_sync(&rep, c, s.port, NULL), CRDT_OK);
    server_join(&s);
    field(buf, sizeof buf, c, "from-a");
    ck_assert_str_eq(buf, "\"hello c\"");
    /* the member set came with the data: the next sync is strict */
    ck_assert_int_eq(crdtnet_member_count(c, &n), CRDT_OK);
    ck_assert_uint_eq(n, 3);
}
END_TEST

/* ---- bad input (B1, B2, B19) -------------------------------------- */

static void
send_all(int fd, const void *p, size_t n)
{
    ck_assert_int_eq(send(fd, p, n, MSG_NOSIGNAL), (ssize_t)n);
}

START_TEST(test_conn_garbage_and_huge_lengths_end_the_connection)
{
    static const unsigned char huge[4] = { 0xff, 0xff, 0xff, 0xff };
    static const unsigned char zero[4] = { 0, 0, 0, 0 };
    unsigned char junk[20] = { 0, 0, 0, 16 };
    crdtnet_report rep;
    char buf[64];
    long long ms;
    server s;
    int fd, i;

    for (i = 4; i < 20; i++)
        junk[i] = (unsigned char)(i * 37);
    put_str(a, "from-a", "still served");
    server_start(&s, 4, NULL);

    fd = dial_raw(s.port); /* a length of 4 GiB: closed before allocating */
    send_all(fd, huge, sizeof huge);
    ms = ms_until_closed(fd, 5000);
    ck_assert_int_ge(ms, 0);
    ck_assert_int_lt(ms, 2000);
    close(fd);

    fd = dial_raw(s.port); /* a zero length */
    send_all(fd, zero, sizeof zero);
    ms = ms_until_closed(fd, 5000);
    ck_assert_int_ge(ms, 0);
    ck_assert_int_lt(ms, 2000);
    close(fd);

    fd = dial_raw(s.port); /* a 16-byte frame of garbage */
    send_all(fd, junk, sizeof junk);
    ms = ms_until_closed(fd, 5000);
    ck_assert_int_ge(ms, 0);
    ck_assert_int_lt(ms, 2000);
    close(fd);

    ck_assert_int_eq(client_sync(&rep, b, s.port, NULL), CRDT_OK);
    server_join(&s);
    ck_assert_int_eq(s.rc[0], CRDT_EPROTO);
    ck_assert_int_eq(s.rc[1], CRDT_EPROTO);
    ck_assert_int_eq(s.rc[2], CRDT_EPROTO);
    ck_assert_int_eq(s.rc[3], CRDT_OK);
    field(buf, sizeof buf, b, "from-a");
    ck_assert_str_eq(buf, "\"still served\"");
}
END_TEST

START_TEST(test_conn_silent_client_is_dropped_at_the_handshake_timeout)
{
    crdtnet_conn_options o = CRDTNET_CONN_OPTIONS_INIT;
    unsigned char half[3] = { 0, 0, 61 }; /* a header cut short (B1) */
    crdtnet_report rep;
    long long ms;
    server s;
    int fd;

    o.handshake_timeout_ms = 1000;
    server_start(&s, 3, &o);
    fd = dial_raw(s.port); /* sends nothing */
    ms = ms_until_closed(fd, 5000);
    close(fd);
    ck_assert_int_ge(ms, 900);
    ck_assert_int_lt(ms, 2500);

    fd = dial_raw(s.port); /* sends part of a header, then stalls */
    send_all(fd, half, sizeof half);
    ms = ms_until_closed(fd, 5000);
    close(fd);
    ck_assert_int_ge(ms, 900);
    ck_assert_int_lt(ms, 2500);

    ck_assert_int_eq(client_sync(&rep, b, s.port, NULL), CRDT_OK);
    server_join(&s);
    ck_assert_int_eq(s.rc[0], CRDT_EIO);
    ck_assert_ptr_nonnull(strstr(s.rep[0].reason, "timed out"));
    ck_assert_int_eq(s.rc[1], CRDT_EIO);
    ck_assert_int_eq(s.rc[2], CRDT_OK);
}
END_TEST

START_TEST(test_conn_connect_refused_is_eio_with_a_reason)
{
    crdtnet_report rep;
    int port, fd = test_listen_local(&port);

    close(fd); /* nothing listens there now */
    ck_assert_int_eq(client_sync(&rep, b, port, NULL), CRDT_EIO);
    ck_assert_ptr_nonnull(strstr(rep.reason, "cannot connect"));
    ck_assert_int_eq(crdtnet_sync_connect(&rep, b, "127.0.0.1", "1", NULL),
                     CRDT_EIO);
    ck_assert_int_eq(crdtnet_sync_connect(&rep, NULL, "h", "1", NULL),
                     CRDT_EINVAL);
}
END_TEST

/* ---- a hand-driven client: handshake, then raw bytes (B1, B2) ------ */

/* The handshake signs through the replica: its secret key stays put. */
static int
sign_as_replica(unsigned char sig[64], const void *msg, size_t len,
                void *ctx)
{
    return crdt_replica_sign(sig, ctx, msg, len) == CRDT_OK ? 0 : -1;
}

static int
yes_member(const unsigned char pk[32], void *ctx)
{
    (void)pk;
    (void)ctx;
    return 1;
}

/* Read exactly @p n bytes within 5 s. */
static void
read_exact(int fd, unsigned char *p, size_t n)
{
    long long end = now_ms() + 5000;
    struct pollfd pfd = { fd, POLLIN, 0 };
    size_t got = 0;
    ssize_t r;

    while (got < n) {
        ck_assert_int_lt(now_ms(), end);
        if (poll(&pfd, 1, 250) <= 0)
            continue;
        r = recv(fd, p + got, n - got, 0);
        ck_assert_int_gt(r, 0);
        got += (size_t)r;
    }
}

static void
send_frame(int fd, const unsigned char *p, size_t n)
{
    unsigned char hdr[4];

    ck_assert_int_eq(crdtnet_frame_header(hdr, n), CRDT_OK);
    ck_assert_int_eq(send(fd, hdr, 4, MSG_NOSIGNAL), 4);
    ck_assert_int_eq(send(fd, p, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* Authenticate as @p r over @p fd with the real handshake; the channel
 * is returned, and nothing of the sync protocol has been sent. */
static crdtnet_channel *
raw_handshake(int fd, crdt_replica *r)
{
    crdtnet_hs_config cfg = CRDTNET_HS_CONFIG_INIT;
    unsigned char pk[32], sp[16], buf[CRDTNET_HS_MSG_MAX];
    const unsigned char *p;
    crdtnet_channel *ch = NULL;
    crdtnet_hs *hs;
    size_t n;
    int i;

    crdt_replica_public_key(r, pk);
    crdt_replica_space_id(r, sp);
    cfg.role = CRDTNET_HS_CLIENT;
    cfg.space_id = sp;
    cfg.pk = pk;
    cfg.sign = sign_as_replica;
    cfg.sign_ctx = r;
    cfg.is_member = yes_member;
    cfg.frame_max = CRDTNET_SESSION_MSG_MAX + CRDTNET_CHANNEL_ABYTES;
    ck_assert_int_eq(crdtnet_hs_new(&hs, &cfg), CRDT_OK);
    for (i = 0; i < 10 && !crdtnet_hs_done(hs); i++) {
        unsigned char hdr[4];
        size_t len;

        while (crdtnet_hs_next_out(hs, &p, &n) == CRDT_OK)
            send_frame(fd, p, n);
        if (crdtnet_hs_done(hs))
            break;
        read_exact(fd, hdr, 4);
        len = (size_t)hdr[0] << 24 | (size_t)hdr[1] << 16 |
              (size_t)hdr[2] << 8 | hdr[3];
        ck_assert_uint_le(len, sizeof buf);
        read_exact(fd, buf, len);
        ck_assert_int_eq(crdtnet_hs_feed(hs, buf, len), CRDT_OK);
    }
    ck_assert(crdtnet_hs_done(hs));
    while (crdtnet_hs_next_out(hs, &p, &n) == CRDT_OK) /* our auth */
        send_frame(fd, p, n);
    ck_assert_int_eq(crdtnet_hs_take_channel(&ch, hs), CRDT_OK);
    crdtnet_hs_free(hs);
    return ch;
}

START_TEST(test_conn_truncated_frame_after_auth_waits_then_closes)
{
    crdtnet_conn_options o = CRDTNET_CONN_OPTIONS_INIT;
    static const unsigned char part[3 + 4] = { 0, 0, 0, 100, 1, 2, 3 };
    static const unsigned char huge[4] = { 0x7f, 0xff, 0xff, 0xff };
    char before[65], after[65];
    crdtnet_channel *ch;
    crdtnet_report rep;
    long long ms;
    server s;
    int fd;

    put_str(b, "from-b", "never sent");
    tu_hash(before, a);
    o.idle_timeout_ms = 1000;
    server_start(&s, 3, &o);

    /* B1: a frame cut short after the handshake: the server waits for
     * the rest up to the idle timeout, then closes; nothing applied */
    fd = dial_raw(s.port);
    ch = raw_handshake(fd, b);
    send_all(fd, part, 3);
    send_all(fd, part + 3, 4);
    ms = ms_until_closed(fd, 5000);
    close(fd);
    crdtnet_channel_free(ch);
    ck_assert_int_ge(ms, 800);
    ck_assert_int_lt(ms, 3000);

    /* B2: a length above the session maximum, after the handshake */
    fd = dial_raw(s.port);
    ch = raw_handshake(fd, b);
    send_all(fd, huge, sizeof huge);
    ms = ms_until_closed(fd, 5000);
    close(fd);
    crdtnet_channel_free(ch);
    ck_assert_int_ge(ms, 0);
    ck_assert_int_lt(ms, 800);

    ck_assert_int_eq(client_sync(&rep, c = make(dc, sizeof dc, space),
                                 s.port, NULL),
                     CRDT_EAUTH); /* c is no member: a third connection */
    server_join(&s);
    ck_assert_int_eq(s.rc[0], CRDT_EIO);
    ck_assert_ptr_nonnull(strstr(s.rep[0].reason, "idle timeout"));
    ck_assert_int_eq(s.rc[1], CRDT_EPROTO);
    tu_hash(after, a);
    ck_assert_str_eq(before, after);
}
END_TEST

/* A tampered frame from an authenticated client: the server's FINAL
 * (with the authentication error) arrives before it closes, so the
 * client can report the real reason, not a broken connection. */
START_TEST(test_conn_tampered_frame_gets_final_before_close)
{
    crdtnet_conn_options o = CRDTNET_CONN_OPTIONS_INIT;
    static const unsigned char junk[64] = { 0x91, 0x08 };
    unsigned char hdr[4], *body;
    const unsigned char *p, *m;
    crdtnet_channel *ch;
    size_t n, mn, len;
    server s;
    int fd, got_final = 0, code = 0;
    char why[CRDTNET_REASON_MAX];

    server_start(&s, 1, &o);
    fd = dial_raw(s.port);
    ch = raw_handshake(fd, b);
    ck_assert_int_eq(crdtnet_channel_seal(ch, junk, sizeof junk, &p, &n),
                     CRDT_OK);
    body = malloc(n);
    memcpy(body, p, n);
    body[n / 2] ^= 0x40; /* one flipped bit in the ciphertext */
    send_frame(fd, body, n);
    free(body);
    for (int i = 0; i < 16 && !got_final; i++) {
        read_exact(fd, hdr, 4);
        len = (size_t)hdr[0] << 24 | (size_t)hdr[1] << 16 |
              (size_t)hdr[2] << 8 | hdr[3];
        ck_assert_uint_le(len, CRDTNET_SESSION_MSG_MAX + 64);
        body = malloc(len);
        read_exact(fd, body, len);
        ck_assert_int_eq(crdtnet_channel_open(ch, body, len, &m, &mn),
                         CRDT_OK);
        if (crdtnet_channel_peer_closed(ch)) {
            got_final = 1;
            ck_assert_int_eq(crdtnet_hs_parse_error(m, mn, &code, why,
                                                    sizeof why), CRDT_OK);
        }
        free(body);
    }
    ck_assert_int_eq(got_final, 1);
    ck_assert_int_eq(code, CRDT_EAUTH);
    close(fd);
    crdtnet_channel_free(ch);
    server_join(&s);
    ck_assert_int_eq(s.rc[0], CRDT_EAUTH);
}
END_TEST

/* Our FINAL and a forged frame behind it, in one write: the server
 * still sends its FINAL before it closes (it used to close at once). */
START_TEST(test_conn_frame_after_final_gets_final_before_close)
{
    crdtnet_conn_options o = CRDTNET_CONN_OPTIONS_INIT;
    unsigned char two[256], hdr[4], *body;
    const unsigned char *p, *m;
    crdtnet_channel *ch;
    size_t n, mn, len, off = 0;
    server s;
    int fd, got_final = 0;

    server_start(&s, 1, &o);
    fd = dial_raw(s.port);
    ch = raw_handshake(fd, b);
    ck_assert_int_eq(crdtnet_channel_seal_final(ch, NULL, 0, &p, &n),
                     CRDT_OK);
    ck_assert_uint_le(n + 4 + 4 + 40, sizeof two);
    ck_assert_int_eq(crdtnet_frame_header(two, n), CRDT_OK);
    memcpy(two + 4, p, n);
    off = 4 + n;
    ck_assert_int_eq(crdtnet_frame_header(two + off, 40), CRDT_OK);
    memset(two + off + 4, 0x5a, 40); /* not sealed by us: forged */
    off += 44;
    send_all(fd, two, off);
    for (int i = 0; i < 16 && !got_final; i++) {
        read_exact(fd, hdr, 4);
        len = (size_t)hdr[0] << 24 | (size_t)hdr[1] << 16 |
              (size_t)hdr[2] << 8 | hdr[3];
        ck_assert_uint_le(len, CRDTNET_SESSION_MSG_MAX + 64);
        body = malloc(len);
        read_exact(fd, body, len);
        ck_assert_int_eq(crdtnet_channel_open(ch, body, len, &m, &mn),
                         CRDT_OK);
        got_final = crdtnet_channel_peer_closed(ch);
        free(body);
    }
    ck_assert_int_eq(got_final, 1);
    close(fd);
    crdtnet_channel_free(ch);
    server_join(&s);
    ck_assert_int_eq(s.rc[0], CRDT_EPROTO);
}
END_TEST

/* ---- busy and rejected, over TCP ---------------------------------- */

START_TEST(test_conn_busy_server_gives_ebusy_with_retry_after)
{
    extern int epoch__marker_put(crdt_raw *, uint64_t, const char *,
                                 const char *);
    crdtnet_report rep;
    crdt_raw *t;
    server s;

    ck_assert_int_eq(crdt_raw_begin(&t, a, 1), CRDT_OK);
    ck_assert_int_eq(epoch__marker_put(t, 1, "", ""), CRDT_OK);
    ck_assert_int_eq(crdt_raw_commit(t), CRDT_OK);
    server_start(&s, 1, NULL);
    ck_assert_int_eq(client_sync(&rep, b, s.port, NULL), CRDT_EBUSY);
    server_join(&s);
    ck_assert_uint_gt(rep.busy_retry_ms, 0);
    ck_assert_int_eq(s.rc[0], CRDT_EBUSY);
}
END_TEST

static int
mark(epoch_doc *doc, const char *coll, const char *id, void *ctx)
{
    crdt_value v = crdt_value_bool(1);

    (void)coll;
    (void)id;
    (void)ctx;
    return epoch_doc_set_register(doc, "checked", &v);
}

START_TEST(test_conn_stale_client_is_rejected_and_keeps_its_ops)
{
    crdtnet_report rep;
    epoch_builder *bl;
    uint64_t q = 0;
    char ha[65], hb[65];
    server s;

    put_str(a, "d", "one");
    server_start(&s, 3, NULL);
    ck_assert_int_eq(client_sync(&rep, b, s.port, NULL), CRDT_OK);
    put_str(b, "d", "two");   /* unsynced when a migrates ... */
    put_str(b, "e", "three");
    ck_assert_int_eq(epoch_builder_new(&bl, a), CRDT_OK);
    ck_assert_int_eq(
        epoch_builder_set_custom(bl, "mark", "notes", 2, mark, NULL),
        CRDT_OK); /* ... through a custom step: not rebasable */
    ck_assert_int_eq(epoch_builder_commit(NULL, bl), CRDT_OK);
    epoch_builder_free(bl);
    ck_assert_int_eq(client_sync(&rep, b, s.port, NULL), CRDT_EREJECTED);
    ck_assert_int_eq(rep.rejected, 1);
    ck_assert_uint_eq(rep.quarantined_ops, 2);
    ck_assert_ptr_nonnull(strstr(rep.reason, "rejected"));
    ck_assert_int_eq(epoch_quarantine_count(&q, b), CRDT_OK);
    ck_assert_uint_eq(q, 2);
    /* b followed a's epoch and syncs normally from now on */
    ck_assert_int_eq(client_sync(&rep, b, s.port, NULL), CRDT_OK);
    server_join(&s);
    ck_assert_int_eq(s.rc[1], CRDT_OK);
    tu_hash(ha, a);
    tu_hash(hb, b);
    ck_assert_str_eq(ha, hb);
}
END_TEST

/* ---- live sessions ------------------------------------------------ */

typedef struct {
    crdt_replica *r;
    int port, rc;
    crdtnet_conn_options o;
    crdtnet_report rep;
    long long ms;
} client_arg;

static void *
client_main(void *arg)
{
    client_arg *ca = arg;
    long long t0 = now_ms();

    ca->rc = client_sync(&ca->rep, ca->r, ca->port, &ca->o);
    ca->ms = now_ms() - t0;
    return NULL;
}

/* Wait up to @p limit_ms for doc @p doc of @p r to read @p want. */
static long long
wait_field(crdt_replica *r, const char *doc, const char *want, int limit_ms)
{
    long long start = now_ms();
    char buf[128];

    while (now_ms() - start < limit_ms) {
        field(buf, sizeof buf, r, doc);
        if (strcmp(buf, want) == 0)
            return now_ms() - start;
        usleep(20 * 1000);
    }
    return -1;
}

START_TEST(test_conn_live_pushes_both_ways_and_stops_cleanly)
{
    volatile sig_atomic_t stop_s = 0, stop_c = 0;
    crdtnet_conn_options so = CRDTNET_CONN_OPTIONS_INIT;
    client_arg ca;
    pthread_t th;
    long long ms, t0;
    server s;

    so.live = 1;
    so.stop = &stop_s;
    server_start(&s, 1, &so);
    memset(&ca, 0, sizeof ca);
    ca.r = b;
    ca.port = s.port;
    ca.o = so;
    ca.o.stop = &stop_c;
    ck_assert_int_eq(pthread_create(&th, NULL, client_main, &ca), 0);

    usleep(300 * 1000);
    put_str(a, "live-a", "pushed by a");
    ms = wait_field(b, "live-a", "\"pushed by a\"", 5000);
    ck_assert_int_ge(ms, 0);
    ck_assert_int_lt(ms, 2000);
    put_str(b, "live-b", "pushed by b");
    ms = wait_field(a, "live-b", "\"pushed by b\"", 5000);
    ck_assert_int_ge(ms, 0);
    ck_assert_int_lt(ms, 2000);

    t0 = now_ms();
    __atomic_store_n(&stop_s, 1, __ATOMIC_RELAXED); /* the server ends */
    pthread_join(th, NULL);
    server_join(&s);
    ck_assert_int_lt(now_ms() - t0, 2500);
    ck_assert_int_eq(s.rc[0], CRDT_OK);
    ck_assert_int_eq(ca.rc, CRDT_OK);
    ck_assert_uint_ge(ca.rep.changes_received, 1);
    ck_assert_uint_ge(s.rep[0].changes_received, 1);
}
END_TEST

START_TEST(test_conn_live_keepalive_outlasts_the_idle_timeout)
{
    volatile sig_atomic_t stop_s = 0, stop_c = 0;
    crdtnet_conn_options so = CRDTNET_CONN_OPTIONS_INIT;
    client_arg ca;
    pthread_t th;
    server s;

    so.live = 1;
    so.idle_timeout_ms = 1000;
    so.stop = &stop_s;
    server_start(&s, 1, &so);
    memset(&ca, 0, sizeof ca);
    ca.r = b;
    ca.port = s.port;
    ca.o = so;
    ca.o.stop = &stop_c;
    ck_assert_int_eq(pthread_create(&th, NULL, client_main, &ca), 0);
    usleep(3500 * 1000); /* more than three idle timeouts, no data */
    put_str(a, "late", "still connected");
    ck_assert_int_ge(wait_field(b, "late", "\"still connected\"", 3000), 0);
    __atomic_store_n(&stop_c, 1, __ATOMIC_RELAXED); /* the client ends it */
    pthread_join(th, NULL);
    server_join(&s);
    ck_assert_int_eq(ca.rc, CRDT_OK);
    ck_assert_int_eq(s.rc[0], CRDT_OK);
}
END_TEST

Suite *
test_suite(void)
{
    Suite *s = suite_create("conn");
    TCase *tc = tcase_create("conn");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_members_true_false_absent_and_wrong_type);
    tcase_add_test(tc, test_split_hostport);
    tcase_add_test(tc, test_conn_sync_moves_writes_both_ways);
    tcase_add_test(tc, test_conn_second_sync_moves_nothing);
    tcase_add_test(tc, test_conn_megabytes_both_ways_do_not_deadlock);
    tcase_add_test(tc, test_conn_non_member_is_refused_and_nothing_moves);
    tcase_add_test(tc, test_conn_client_of_another_space_is_refused);
    tcase_add_test(tc, test_conn_client_refuses_a_server_outside_its_members);
    tcase_add_test(tc, test_conn_new_replica_trusts_the_server_on_first_use);
    tcase_add_test(tc, test_conn_garbage_and_huge_lengths_end_the_connection);
    tcase_add_test(tc,
                   test_conn_silent_client_is_dropped_at_the_handshake_timeout);
    tcase_add_test(tc, test_conn_connect_refused_is_eio_with_a_reason);
    tcase_add_test(tc, test_conn_truncated_frame_after_auth_waits_then_closes);
    tcase_add_test(tc, test_conn_tampered_frame_gets_final_before_close);
    tcase_add_test(tc, test_conn_frame_after_final_gets_final_before_close);
    tcase_add_test(tc, test_conn_busy_server_gives_ebusy_with_retry_after);
    tcase_add_test(tc, test_conn_stale_client_is_rejected_and_keeps_its_ops);
    tcase_add_test(tc, test_conn_live_pushes_both_ways_and_stops_cleanly);
    tcase_add_test(tc, test_conn_live_keepalive_outlasts_the_idle_timeout);
    suite_add_tcase(s, tc);
    return s;
}
