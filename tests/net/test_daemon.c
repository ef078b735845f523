/*
 * test_daemon.c: the sync daemon on 127.0.0.1 with real sockets: several
 * spaces and concurrent clients, live push between two daemons (a write
 * by another process reaches the peer daemon's replica), 64 concurrent
 * clients beside a silent one, connection caps (docs/testing.md
 * B19, S1, S5),
 * counters per space and log events with level and peer, and a clean
 * stop. Every wait is bounded in time; timings are printed.
 */
#include <arpa/inet.h>
#include <check.h>
#include <sys/resource.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crdt/crdt.h"
#include "crdtnet/conn.h"
#include "crdtnet/daemon.h"
#include "crdtnet/peer.h"
#include "epoch/epoch.h"
#include "io_internal.h"
#include "support/replica_util.h"
#include "support/support.h"

#define N_MANY 64

/* ---- helpers ------------------------------------------------------ */

typedef struct {
    char dir[256];
    char path[300];
    crdt_replica *r;
} rep_t;

static long long
now_ms(void)
{
    return crdtnet__now_ms();
}

static void
rep_make(rep_t *x, const unsigned char *space)
{
    crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;

    ck_assert_int_eq(test_tmpdir(x->dir, sizeof x->dir), 0);
    snprintf(x->path, sizeof x->path, "%s/r", x->dir);
    o.create = 1;
    o.space_id = space;
    o.map_size = (size_t)8 << 20; /* many replicas: keep the maps small */
    ck_assert_int_eq(crdt_replica_open(&x->r, x->path, &o), CRDT_OK);
    ck_assert_int_eq(epoch_attach(x->r), CRDT_OK);
}

static void
rep_free(rep_t *x)
{
    if (x->r == NULL)
        return;
    crdt_replica_close(x->r);
    x->r = NULL;
    test_rmtree(x->dir);
}

static void
space_of(unsigned char out[16], const rep_t *x)
{
    crdt_replica_space_id(x->r, out);
}

static void
member_txn(crdt_txn *t, crdt_replica *who)
{
    unsigned char pk[32];
    char hex[65];
    crdt_value yes = crdt_value_bool(1);

    crdt_replica_public_key(who, pk);
    crdt_hex(hex, pk, sizeof pk);
    ck_assert_int_eq(crdt_txn_put(t, "$members", hex, "member", &yes),
                     CRDT_OK);
}

static void
add_member(rep_t *x, rep_t *who)
{
    crdt_txn *t;

    ck_assert_int_eq(crdt_txn_begin(&t, x->r), CRDT_OK);
    member_txn(t, who->r);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
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

static int
has_field(crdt_replica *r, const char *doc, const char *want)
{
    char buf[128];

    tu_field_str(buf, sizeof buf, r, "notes", doc, "title");
    return strcmp(buf, want) == 0;
}

/* Wait up to @p limit_ms; the milliseconds it took, or -1. */
static long long
wait_field(crdt_replica *r, const char *doc, const char *want, int limit_ms)
{
    long long start = now_ms();

    while (now_ms() - start < limit_ms) {
        if (has_field(r, doc, want))
            return now_ms() - start;
        usleep(10 * 1000);
    }
    return -1;
}

static uint64_t
doc_count(crdt_replica *r)
{
    crdt_read *rd;
    uint64_t n = 0;

    ck_assert_int_eq(crdt_read_begin(&rd, r), CRDT_OK);
    ck_assert_int_eq(crdt_read_doc_count(&n, rd), CRDT_OK);
    crdt_read_end(rd);
    return n;
}

/* Log lines, captured for assertions; STRATA_TEST_LOG=1 also prints. */
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char log_buf[1 << 16];
static size_t log_len;

static void
capture(const char *line, void *ctx)
{
    const char *env = getenv("STRATA_TEST_LOG");
    size_t n = strlen(line);

    if (env != NULL && env[0] == '1')
        fprintf(stderr, "%s: %s\n", (const char *)ctx, line);
    pthread_mutex_lock(&log_mu);
    if (log_len + n + 1 < sizeof log_buf) {
        memcpy(log_buf + log_len, line, n);
        log_buf[log_len + n] = '\n';
        log_len += n + 1;
        log_buf[log_len] = '\0';
    }
    pthread_mutex_unlock(&log_mu);
}

static int
logged(const char *what)
{
    int yes;

    pthread_mutex_lock(&log_mu);
    yes = strstr(log_buf, what) != NULL;
    pthread_mutex_unlock(&log_mu);
    return yes;
}

/* @p what in the log within 3 s: a daemon logs an event a moment after
 * what a test can see of it (a port moved, a peer refused). */
static int
wait_logged(const char *what)
{
    long long t0 = now_ms();

    while (!logged(what) && now_ms() - t0 < 3000)
        usleep(10 * 1000);
    return logged(what);
}

/* A daemon running in its own thread. */
typedef struct {
    crdtnet_daemon *d;
    pthread_t th;
    int rc;
    char port[16];
} daemon_t;

static void *
daemon_main(void *arg)
{
    daemon_t *x = arg;

    x->rc = crdtnet_daemon_run(x->d);
    return NULL;
}

static void
daemon_start(daemon_t *x, crdt_replica *const *reps, size_t n,
             const char *const *peers, size_t n_peers,
             crdtnet_daemon_options *o, const char *name)
{
    crdtnet_daemon_options d = CRDTNET_DAEMON_OPTIONS_INIT;

    if (o == NULL)
        o = &d;
    o->conn.log = capture;
    o->conn.log_ctx = (void *)name;
    ck_assert_int_eq(crdtnet_daemon_new(&x->d, reps, n, "127.0.0.1", "0",
                                        peers, n_peers, o),
                     CRDT_OK);
    ck_assert_int_gt(crdtnet_daemon_port(x->d), 0);
    snprintf(x->port, sizeof x->port, "%d", crdtnet_daemon_port(x->d));
    ck_assert_int_eq(pthread_create(&x->th, NULL, daemon_main, x), 0);
}

/* Stop and join; the milliseconds it took. */
static long long
daemon_stop(daemon_t *x)
{
    long long t0 = now_ms();

    crdtnet_daemon_stop(x->d);
    pthread_join(x->th, NULL);
    crdtnet_daemon_free(x->d);
    x->d = NULL;
    ck_assert_int_eq(x->rc, CRDT_OK);
    return now_ms() - t0;
}

/* A client thread: one crdtnet_sync_connect(). */
typedef struct {
    crdt_replica *r;
    const char *port;
    crdtnet_conn_options o;
    crdtnet_report rep;
    int rc;
    pthread_t th;
} client_t;

static void *
client_main(void *arg)
{
    client_t *c = arg;

    c->rc = crdtnet_sync_connect(&c->rep, c->r, "127.0.0.1", c->port, &c->o);
    return NULL;
}

static void
client_init(client_t *c, crdt_replica *r, const char *port)
{
    crdtnet_conn_options o = CRDTNET_CONN_OPTIONS_INIT;

    memset(c, 0, sizeof *c);
    c->r = r;
    c->port = port;
    c->o = o;
}

static void
client_run(client_t *c)
{
    ck_assert_int_eq(pthread_create(&c->th, NULL, client_main, c), 0);
}

static void
client_start(client_t *c, crdt_replica *r, const char *port)
{
    client_init(c, r, port);
    client_run(c);
}

/* A TCP connection to 127.0.0.1:@p port; -1 if refused. */
static int
try_dial(const char *port)
{
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    ck_assert_int_ge(fd, 0);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((uint16_t)atoi(port));
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int
dial_raw(const char *port)
{
    int fd = try_dial(port);

    ck_assert_int_ge(fd, 0);
    return fd;
}

/* Milliseconds until the daemon closes @p fd; -1 if not in @p limit_ms. */
static long long
ms_until_closed(int fd, int limit_ms)
{
    long long start = now_ms(), left;
    unsigned char buf[512];
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

static void
setup(void)
{
    pthread_mutex_lock(&log_mu);
    log_len = 0;
    log_buf[0] = '\0';
    pthread_mutex_unlock(&log_mu);
}

static void
teardown(void)
{
}

/* ---- arguments ---------------------------------------------------- */

START_TEST(test_daemon_new_checks_its_arguments)
{
    crdtnet_daemon_options o = CRDTNET_DAEMON_OPTIONS_INIT;
    const char *bad_peer[] = { "no-port-here" };
    unsigned char sp[16];
    crdt_replica *two[2];
    crdtnet_daemon *d = NULL, *d2 = NULL;
    rep_t a, b;

    o.quiet = 1;
    rep_make(&a, NULL);
    space_of(sp, &a);
    rep_make(&b, sp);
    two[0] = a.r;
    two[1] = b.r;
    ck_assert_int_eq(crdtnet_daemon_new(&d, two, 2, "127.0.0.1", "0", NULL,
                                        0, &o),
                     CRDT_EINVAL); /* two replicas of one space */
    ck_assert_int_eq(crdtnet_daemon_new(&d, two, 0, "127.0.0.1", "0", NULL,
                                        0, &o),
                     CRDT_EINVAL);
    ck_assert_int_eq(crdtnet_daemon_new(&d, two, 1, "127.0.0.1", "0",
                                        bad_peer, 1, &o),
                     CRDT_EINVAL);
    ck_assert_int_eq(crdtnet_daemon_new(&d, two, 1, "127.0.0.1", "0", NULL,
                                        0, &o),
                     CRDT_OK);
    {
        char port[16];

        snprintf(port, sizeof port, "%d", crdtnet_daemon_port(d));
        ck_assert_int_eq(crdtnet_daemon_new(&d2, two + 1, 1, "127.0.0.1",
                                            port, NULL, 0, &o),
                         CRDT_EIO); /* in use */
    }
    /* stop before run: run returns at once; a second run is refused */
    crdtnet_daemon_stop(d);
    crdtnet_daemon_stop(d);
    ck_assert_int_eq(crdtnet_daemon_run(d), CRDT_OK);
    ck_assert_int_eq(crdtnet_daemon_run(d), CRDT_EINVAL);
    crdtnet_daemon_free(d);
    crdtnet_daemon_free(NULL);
    rep_free(&a);
    rep_free(&b);
}
END_TEST

/* ---- several spaces, concurrent clients --------------------------- */

START_TEST(test_daemon_two_spaces_three_concurrent_clients)
{
    rep_t s1, s2, c1, c2, c3, x;
    unsigned char sp1[16], sp2[16];
    crdt_replica *reps[2];
    client_t cl[4];
    daemon_t dm;
    int i;

    rep_make(&s1, NULL);
    rep_make(&s2, NULL);
    space_of(sp1, &s1);
    space_of(sp2, &s2);
    rep_make(&c1, sp1);
    rep_make(&c2, sp1);
    rep_make(&c3, sp2);
    rep_make(&x, sp1); /* not a member */
    add_member(&s1, &c1);
    add_member(&s1, &c2);
    add_member(&s2, &c3);
    /* c3 checks strictly: the daemon must answer as s2, not as s1 */
    add_member(&c3, &s2);
    add_member(&c3, &c3);
    put_str(s1.r, "s1", "space one");
    put_str(s2.r, "s2", "space two");
    put_str(c1.r, "c1", "by c1");
    put_str(c2.r, "c2", "by c2");
    put_str(c3.r, "c3", "by c3");
    put_str(x.r, "x", "by x");
    reps[0] = s1.r;
    reps[1] = s2.r;
    daemon_start(&dm, reps, 2, NULL, 0, NULL, "daemon");

    client_start(&cl[0], c1.r, dm.port);
    client_start(&cl[1], c2.r, dm.port);
    client_init(&cl[2], c3.r, dm.port);
    cl[2].o.no_tofu = 1;
    client_run(&cl[2]);
    client_start(&cl[3], x.r, dm.port);
    for (i = 0; i < 4; i++)
        pthread_join(cl[i].th, NULL);
    ck_assert_int_eq(cl[0].rc, CRDT_OK);
    ck_assert_int_eq(cl[1].rc, CRDT_OK);
    ck_assert_int_eq(cl[2].rc, CRDT_OK);
    ck_assert_int_eq(cl[3].rc, CRDT_EAUTH);

    ck_assert(has_field(c1.r, "s1", "\"space one\""));
    ck_assert(has_field(c2.r, "s1", "\"space one\""));
    ck_assert(has_field(c3.r, "s2", "\"space two\""));
    ck_assert(!has_field(c3.r, "s1", "\"space one\""));
    ck_assert(has_field(s1.r, "c1", "\"by c1\""));
    ck_assert(has_field(s1.r, "c2", "\"by c2\""));
    ck_assert(has_field(s2.r, "c3", "\"by c3\""));
    ck_assert(!has_field(s1.r, "x", "\"by x\""));
    ck_assert(!has_field(s2.r, "c1", "\"by c1\""));
    ck_assert(!has_field(x.r, "s1", "\"space one\""));
    /* S1: the refusal is logged with its reason */
    ck_assert(wait_logged("handshake failed: not a member of this space"));

    ck_assert_int_lt(daemon_stop(&dm), 3000);
    ck_assert(logged("stopped"));
    rep_free(&s1);
    rep_free(&s2);
    rep_free(&c1);
    rep_free(&c2);
    rep_free(&c3);
    rep_free(&x);
}
END_TEST

/* ---- counters and structured log events --------------------------- */

/* Events, captured: level and peer of the first event whose message
 * contains a given text. */
static pthread_mutex_t ev_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    int level;
    char peer[64];
    char msg[160];
} events[64];
static int n_events;

static void
capture_event(int level, const char *peer, const char *msg, void *ctx)
{
    (void)ctx;
    pthread_mutex_lock(&ev_mu);
    if (n_events < 64) {
        events[n_events].level = level;
        snprintf(events[n_events].peer, sizeof events[n_events].peer, "%s",
                 peer != NULL ? peer : "(none)");
        snprintf(events[n_events].msg, sizeof events[n_events].msg, "%s",
                 msg);
        n_events++;
    }
    pthread_mutex_unlock(&ev_mu);
}

static int
event_of(const char *what)
{
    int i, found = -1;

    pthread_mutex_lock(&ev_mu);
    for (i = 0; i < n_events && found < 0; i++)
        if (strstr(events[i].msg, what) != NULL)
            found = i;
    pthread_mutex_unlock(&ev_mu);
    return found;
}

START_TEST(test_daemon_counts_per_space_and_logs_events)
{
    crdtnet_daemon_options o = CRDTNET_DAEMON_OPTIONS_INIT;
    crdtnet_space_stats st1, st2;
    rep_t s1, s2, c1, x;
    unsigned char sp1[16];
    crdt_replica *reps[2];
    client_t cl[2];
    daemon_t dm;
    int e;

    rep_make(&s1, NULL);
    rep_make(&s2, NULL);
    space_of(sp1, &s1);
    rep_make(&c1, sp1);
    rep_make(&x, sp1); /* not a member */
    add_member(&s1, &c1);
    put_str(s1.r, "s1", "space one");
    put_str(c1.r, "c1", "by c1");
    reps[0] = s1.r;
    reps[1] = s2.r;
    n_events = 0;
    /* daemon_start() sets a line function too: events take precedence */
    o.conn.log_event = capture_event;
    daemon_start(&dm, reps, 2, NULL, 0, &o, "daemon");
    client_start(&cl[0], c1.r, dm.port);
    pthread_join(cl[0].th, NULL);
    client_start(&cl[1], x.r, dm.port);
    pthread_join(cl[1].th, NULL);
    ck_assert_int_eq(cl[0].rc, CRDT_OK);
    ck_assert_int_eq(cl[1].rc, CRDT_EAUTH);

    /* the connection threads finish just after the clients return */
    for (int i = 0; i < 100; i++) {
        ck_assert_int_eq(crdtnet_daemon_space_stats(dm.d, 0, &st1), CRDT_OK);
        if (st1.sessions[CRDTNET_OUTCOME_AUTH] == 1)
            break;
        usleep(20 * 1000);
    }
    ck_assert_int_eq(crdtnet_daemon_space_stats(dm.d, 1, &st2), CRDT_OK);
    ck_assert_int_eq(crdtnet_daemon_space_stats(dm.d, 2, &st2), CRDT_EINVAL);
    ck_assert_int_eq(crdtnet_daemon_space_stats(dm.d, 1, &st2), CRDT_OK);
    ck_assert_uint_eq(st1.sessions[CRDTNET_OUTCOME_OK], 1);
    ck_assert_uint_eq(st1.sessions[CRDTNET_OUTCOME_AUTH], 1);
    ck_assert_uint_ge(st1.changes_in, 1);
    ck_assert_uint_ge(st1.changes_out, 2); /* the member and s1's note */
    ck_assert_uint_ge(st1.ops_in, 1);
    ck_assert_uint_gt(st1.bytes_in, 0);
    ck_assert_uint_gt(st1.bytes_out, 0);
    ck_assert_uint_eq(st1.peers_connected, 0);
    ck_assert_uint_ge(st1.merges, 1);
    ck_assert_uint_eq(st1.merge_buckets[0] + st1.merge_buckets[1] +
                          st1.merge_buckets[2] + st1.merge_buckets[3] +
                          st1.merge_buckets[4] + st1.merge_buckets[5] +
                          st1.merge_buckets[6] + st1.merge_buckets[7] +
                          st1.merge_buckets[8] + st1.merge_buckets[9] +
                          st1.merge_buckets[10] + st1.merge_buckets[11],
                      st1.merges);
    /* nothing moved in the other space */
    ck_assert_uint_eq(st2.changes_in + st2.changes_out + st2.bytes_in +
                          st2.sessions[CRDTNET_OUTCOME_OK],
                      0);

    /* events carry a level and the peer; daemon lines have no peer */
    ck_assert_int_ge(e = event_of("authenticated peer"), 0);
    ck_assert_int_eq(events[e].level, CRDTNET_LOG_INFO);
    ck_assert(strncmp(events[e].peer, "127.0.0.1:", 10) == 0);
    ck_assert(strstr(events[e].msg, "127.0.0.1") == NULL);
    ck_assert_int_ge(e = event_of("handshake failed"), 0);
    ck_assert_int_eq(events[e].level, CRDTNET_LOG_WARN);
    ck_assert(strncmp(events[e].peer, "127.0.0.1:", 10) == 0);
    ck_assert_int_ge(e = event_of("listening on"), 0);
    ck_assert_str_eq(events[e].peer, "(none)");
    ck_assert(!logged("authenticated peer")); /* not the line function */

    daemon_stop(&dm);
    ck_assert_uint_eq(crdtnet_merge_bucket_us(CRDTNET_MERGE_BUCKETS - 1),
                      UINT64_MAX);
    ck_assert_str_eq(crdtnet_outcome_name(CRDTNET_OUTCOME_AUTH), "auth");
    rep_free(&s1);
    rep_free(&s2);
    rep_free(&c1);
    rep_free(&x);
}
END_TEST

/* ---- live push between two daemons -------------------------------- */

/*
 * A writer process, forked while the test is still single-threaded: it
 * waits for a byte on @p go, then opens the replica at @p path with its
 * own handle, commits one write and reports 'k' (or 'e') on @p done.
 */
static pid_t
fork_writer(const char *path, int *go_w, int *done_r)
{
    int go[2], done[2];
    pid_t pid;

    ck_assert_int_eq(pipe(go), 0);
    ck_assert_int_eq(pipe(done), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct pollfd pfd = { go[0], POLLIN, 0 };
        crdt_replica *r = NULL;
        crdt_value v = crdt_value_str("from another process", 20);
        crdt_txn *t;
        char res = 'e', c;

        close(go[1]);
        close(done[0]);
        if (poll(&pfd, 1, 60000) == 1 && read(go[0], &c, 1) == 1 &&
            crdt_replica_open(&r, path, NULL) == CRDT_OK &&
            crdt_txn_begin(&t, r) == CRDT_OK) {
            if (crdt_txn_put(t, "notes", "other", "title", &v) == CRDT_OK &&
                crdt_txn_commit(t, NULL) == CRDT_OK)
                res = 'k';
            else
                crdt_txn_abort(t);
        }
        crdt_replica_close(r);
        if (write(done[1], &res, 1) != 1)
            res = 'e';
        _exit(res == 'k' ? 0 : 1);
    }
    close(go[0]);
    close(done[1]);
    *go_w = go[1];
    *done_r = done[0];
    return pid;
}

START_TEST(test_daemon_live_peer_pushes_another_process_write)
{
    crdtnet_daemon_options oa = CRDTNET_DAEMON_OPTIONS_INIT;
    rep_t a, b;
    unsigned char sp[16];
    const char *peers[1];
    char peer[64], res = 0;
    daemon_t da, db;
    long long ms, t0, stop_a, stop_b;
    int go_w, done_r, status;
    pid_t pid;

    rep_make(&a, NULL);
    space_of(sp, &a);
    rep_make(&b, sp);
    add_member(&a, &a);
    add_member(&a, &b);
    add_member(&b, &a);
    add_member(&b, &b);
    put_str(a.r, "first", "before the daemons");
    pid = fork_writer(a.path, &go_w, &done_r);

    daemon_start(&db, &b.r, 1, NULL, 0, NULL, "daemon-b");
    snprintf(peer, sizeof peer, "127.0.0.1:%s", db.port);
    peers[0] = peer;
    oa.backoff_min_ms = 200;
    daemon_start(&da, &a.r, 1, peers, 1, &oa, "daemon-a");

    /* The outgoing session syncs what a held. */
    ck_assert_int_ge(wait_field(b.r, "first", "\"before the daemons\"", 5000),
                     0);
    /* A write by this process through a's daemon's handle... */
    put_str(a.r, "same", "same process");
    ms = wait_field(b.r, "same", "\"same process\"", 5000);
    ck_assert_int_ge(ms, 0);
    ck_assert_int_lt(ms, 2000);
    /* ... and one by another process, through its own handle. */
    t0 = now_ms();
    ck_assert_int_eq(write(go_w, "g", 1), 1);
    ms = wait_field(b.r, "other", "\"from another process\"", 5000);
    ck_assert_int_eq(read(done_r, &res, 1), 1);
    ck_assert_int_eq(res, 'k');
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_int_ge(ms, 0);
    ck_assert_int_lt(ms, 2000);
    fprintf(stderr, "push latency (another process's write, a -> b): %lld ms"
                    " (incl. the writer's open and commit: %lld ms)\n",
            ms, now_ms() - t0);
    /* ... and back: b's writes reach a over the same live session. */
    put_str(b.r, "back", "from b");
    ms = wait_field(a.r, "back", "\"from b\"", 5000);
    ck_assert_int_ge(ms, 0);
    ck_assert_int_lt(ms, 2000);

    stop_a = daemon_stop(&da);
    stop_b = daemon_stop(&db);
    fprintf(stderr, "stop: daemon a %lld ms, daemon b %lld ms\n", stop_a,
            stop_b);
    ck_assert_int_lt(stop_a, 3000);
    ck_assert_int_lt(stop_b, 3000);
    close(go_w);
    close(done_r);
    rep_free(&a);
    rep_free(&b);
}
END_TEST

START_TEST(test_daemon_peer_reconnects_after_the_peer_restarts)
{
    crdtnet_daemon_options oa = CRDTNET_DAEMON_OPTIONS_INIT;
    crdtnet_daemon_options ob = CRDTNET_DAEMON_OPTIONS_INIT;
    rep_t a, b;
    unsigned char sp[16];
    const char *peers[1];
    char peer[64];
    daemon_t da, db;
    crdtnet_daemon *d2;

    rep_make(&a, NULL);
    space_of(sp, &a);
    rep_make(&b, sp);
    add_member(&a, &b);
    add_member(&b, &a);
    daemon_start(&db, &b.r, 1, NULL, 0, &ob, "daemon-b");
    snprintf(peer, sizeof peer, "127.0.0.1:%s", db.port);
    peers[0] = peer;
    oa.backoff_min_ms = 100;
    oa.backoff_max_ms = 400;
    daemon_start(&da, &a.r, 1, peers, 1, &oa, "daemon-a");
    put_str(a.r, "one", "1");
    ck_assert_int_ge(wait_field(b.r, "one", "\"1\"", 5000), 0);

    /* b goes away; a keeps retrying; b comes back on the same port */
    ck_assert_int_lt(daemon_stop(&db), 3000);
    put_str(a.r, "two", "2");
    usleep(500 * 1000);
    ck_assert(wait_logged("reconnecting in"));
    ck_assert_int_eq(crdtnet_daemon_new(&d2, &b.r, 1, "127.0.0.1",
                                        db.port, NULL, 0, &ob),
                     CRDT_OK);
    db.d = d2;
    ck_assert_int_eq(pthread_create(&db.th, NULL, daemon_main, &db), 0);
    ck_assert_int_ge(wait_field(b.r, "two", "\"2\"", 5000), 0);
    ck_assert_int_lt(daemon_stop(&da), 3000);
    ck_assert_int_lt(daemon_stop(&db), 3000);
    rep_free(&a);
    rep_free(&b);
}
END_TEST

/* ---- many clients, a silent one, caps (B19, S5) ------------------- */

START_TEST(test_daemon_64_clients_beside_a_silent_one)
{
    crdtnet_daemon_options o = CRDTNET_DAEMON_OPTIONS_INIT;
    static rep_t cli[N_MANY];
    static client_t cl[N_MANY];
    unsigned char sp[16];
    char doc[32];
    rep_t s;
    daemon_t dm;
    crdt_txn *t;
    long long t0, all_ms, silent_ms;
    int i, silent;

    rep_make(&s, NULL);
    space_of(sp, &s);
    ck_assert_int_eq(crdt_txn_begin(&t, s.r), CRDT_OK);
    for (i = 0; i < N_MANY; i++) {
        rep_make(&cli[i], sp); /* empty member sets: trust on first use */
        snprintf(doc, sizeof doc, "client-%02d", i);
        put_str(cli[i].r, doc, "hello");
        member_txn(t, cli[i].r);
    }
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    put_str(s.r, "server", "hello all");
    o.conn.handshake_timeout_ms = 1000;
    daemon_start(&dm, &s.r, 1, NULL, 0, &o, "daemon");

    silent = dial_raw(dm.port); /* connects and sends nothing */
    t0 = now_ms();
    for (i = 0; i < N_MANY; i++)
        client_start(&cl[i], cli[i].r, dm.port);
    for (i = 0; i < N_MANY; i++)
        pthread_join(cl[i].th, NULL);
    all_ms = now_ms() - t0;
    for (i = 0; i < N_MANY; i++) {
        ck_assert_msg(cl[i].rc == CRDT_OK, "client %d: %s: %s", i,
                      crdt_strerror(cl[i].rc), cl[i].rep.reason);
        ck_assert(has_field(cli[i].r, "server", "\"hello all\""));
    }
    silent_ms = ms_until_closed(silent, 5000);
    close(silent);
    fprintf(stderr, "%d concurrent clients synced in %lld ms\n", N_MANY,
            all_ms);
    ck_assert_int_lt(all_ms, 20000);
    ck_assert_int_ge(silent_ms, 0); /* dropped at the handshake timeout */
    /* every client's doc, the server's, and the members */
    ck_assert_uint_eq(doc_count(s.r), 2 * N_MANY + 1);
    ck_assert(wait_logged("handshake failed: handshake timed out"));

    ck_assert_int_lt(daemon_stop(&dm), 3000);
    for (i = 0; i < N_MANY; i++)
        rep_free(&cli[i]);
    rep_free(&s);
}
END_TEST

START_TEST(test_daemon_silent_client_does_not_delay_others)
{
    crdtnet_daemon_options o = CRDTNET_DAEMON_OPTIONS_INIT;
    rep_t s, c;
    unsigned char sp[16];
    client_t cl;
    daemon_t dm;
    long long t0, ms, closed_ms;
    int silent;

    rep_make(&s, NULL);
    space_of(sp, &s);
    rep_make(&c, sp);
    add_member(&s, &c);
    o.conn.handshake_timeout_ms = 1000;
    daemon_start(&dm, &s.r, 1, NULL, 0, &o, "daemon");
    silent = dial_raw(dm.port);
    t0 = now_ms();
    client_start(&cl, c.r, dm.port);
    pthread_join(cl.th, NULL);
    ms = now_ms() - t0;
    ck_assert_int_eq(cl.rc, CRDT_OK);
    ck_assert_int_lt(ms, 900); /* well before the silent one is dropped */
    closed_ms = ms_until_closed(silent, 5000) + ms;
    close(silent);
    fprintf(stderr, "beside a silent connection: sync %lld ms, silent one "
                    "dropped after %lld ms\n",
            ms, closed_ms);
    ck_assert_int_ge(closed_ms, 900);
    ck_assert_int_lt(closed_ms, 2500);
    ck_assert_int_lt(daemon_stop(&dm), 3000);
    rep_free(&s);
    rep_free(&c);
}
END_TEST

/* A replica LMDB gave up on is served again through a new handle: the
 * old one stays the daemon's until no session can read it (a connection
 * still in its handshake that began while the space was served counts),
 * then the new handle takes the space's place and counters. */
START_TEST(test_daemon_space_opened_again_takes_its_place)
{
    crdtnet_daemon_options o = CRDTNET_DAEMON_OPTIONS_INIT;
    crdt_open_options oo = CRDT_OPEN_OPTIONS_INIT;
    crdtnet_space_stats st;
    rep_t s, c, other;
    unsigned char sp[16];
    client_t cl;
    daemon_t dm;
    long long t0;
    int silent, rc;

    rep_make(&s, NULL);
    space_of(sp, &s);
    rep_make(&c, sp);
    rep_make(&other, NULL);
    add_member(&s, &c);
    add_member(&s, &s); /* c checks the server once it holds the set */
    put_str(c.r, "c1", "first");
    o.conn.handshake_timeout_ms = 3000;
    daemon_start(&dm, &s.r, 1, NULL, 0, &o, "daemon");
    client_start(&cl, c.r, dm.port);
    pthread_join(cl.th, NULL);
    ck_assert_int_eq(cl.rc, CRDT_OK);
    ck_assert(has_field(s.r, "c1", "\"first\""));
    ck_assert_int_eq(crdtnet_daemon_space_idle(dm.d, s.r), CRDT_EINVAL);
    ck_assert_int_eq(crdtnet_daemon_space_idle(dm.d, other.r),
                     CRDT_ENOTFOUND);
    ck_assert_int_eq(crdtnet_daemon_space_idle(dm.d, NULL), CRDT_EINVAL);

    silent = dial_raw(dm.port); /* in its handshake: may pick the space */
    usleep(300 * 1000);         /* the loop has listed it */
    ck_assert_int_eq(crdtnet_daemon_remove_space(dm.d, s.r), CRDT_OK);
    ck_assert_int_eq(crdtnet_daemon_space_idle(dm.d, s.r), CRDT_EBUSY);
    close(silent);
    t0 = now_ms();
    while ((rc = crdtnet_daemon_space_idle(dm.d, s.r)) == CRDT_EBUSY &&
           now_ms() - t0 < 5000)
        usleep(10 * 1000);
    ck_assert_int_eq(rc, CRDT_OK);

    crdt_replica_close(s.r); /* the daemon no longer reads it */
    oo.map_size = (size_t)8 << 20;
    ck_assert_int_eq(crdt_replica_open(&s.r, s.path, &oo), CRDT_OK);
    ck_assert_int_eq(epoch_attach(s.r), CRDT_OK);
    ck_assert_int_eq(crdtnet_daemon_add_space(dm.d, s.r), CRDT_OK);
    ck_assert_int_eq(crdtnet_daemon_add_space(dm.d, s.r), CRDT_EEXISTS);
    /* the same slot, its counters kept */
    ck_assert_int_eq(crdtnet_daemon_space_stats(dm.d, 1, &st), CRDT_EINVAL);
    ck_assert_int_eq(crdtnet_daemon_space_stats(dm.d, 0, &st), CRDT_OK);
    ck_assert_uint_eq(st.changes_in, 1); /* c1 */

    put_str(c.r, "c2", "second");
    client_start(&cl, c.r, dm.port);
    pthread_join(cl.th, NULL);
    if (cl.rc != CRDT_OK)
        fprintf(stderr, "second sync: %s\n", cl.rep.reason);
    ck_assert_int_eq(cl.rc, CRDT_OK);
    ck_assert(has_field(s.r, "c2", "\"second\""));
    ck_assert_int_eq(crdtnet_daemon_space_stats(dm.d, 0, &st), CRDT_OK);
    ck_assert_uint_eq(st.changes_in, 2);
    ck_assert_int_lt(daemon_stop(&dm), 3000);
    rep_free(&s);
    rep_free(&c);
    rep_free(&other);
}
END_TEST

/* The listening address changes while running: new connections use the
 * new one, the old port refuses, a connection accepted before goes on,
 * and an address that cannot be bound leaves the daemon where it was. */
START_TEST(test_daemon_moves_its_listener_live)
{
    crdtnet_daemon_options o = CRDTNET_DAEMON_OPTIONS_INIT;
    rep_t s, c;
    unsigned char sp[16];
    client_t cl;
    daemon_t dm;
    char old_port[16], busy[16];
    long long t0;
    int early, p;

    rep_make(&s, NULL);
    space_of(sp, &s);
    rep_make(&c, sp);
    add_member(&s, &c);
    add_member(&s, &s);
    put_str(c.r, "c1", "first");
    o.conn.handshake_timeout_ms = 3000;
    daemon_start(&dm, &s.r, 1, NULL, 0, &o, "daemon");
    snprintf(old_port, sizeof old_port, "%s", dm.port);
    early = dial_raw(old_port); /* accepted before the move */
    usleep(100 * 1000);

    ck_assert_int_eq(crdtnet_daemon_set_listen(dm.d, "127.0.0.1", "0"),
                     CRDT_OK);
    t0 = now_ms();
    while ((p = crdtnet_daemon_port(dm.d)) == atoi(old_port) &&
           now_ms() - t0 < 3000)
        usleep(10 * 1000);
    ck_assert_int_ne(p, atoi(old_port));
    snprintf(dm.port, sizeof dm.port, "%d", p);
    ck_assert(wait_logged("(was 127.0.0.1:")); /* logged after the move */

    client_start(&cl, c.r, dm.port);
    pthread_join(cl.th, NULL);
    ck_assert_int_eq(cl.rc, CRDT_OK);
    ck_assert(has_field(s.r, "c1", "\"first\""));
    ck_assert_int_eq(try_dial(old_port), -1); /* the old port refuses */
    /* the connection accepted before is still the daemon's */
    ck_assert_int_eq(ms_until_closed(early, 300), -1);
    close(early);

    /* a port in use: refused, nothing moves */
    snprintf(busy, sizeof busy, "%s", dm.port);
    ck_assert_int_eq(crdtnet_daemon_set_listen(dm.d, "127.0.0.1", busy),
                     CRDT_EIO);
    ck_assert_int_eq(crdtnet_daemon_set_listen(dm.d, "127.0.0.1", NULL),
                     CRDT_EINVAL);
    usleep(100 * 1000);
    ck_assert_int_eq(crdtnet_daemon_port(dm.d), p);
    put_str(c.r, "c2", "second");
    client_start(&cl, c.r, dm.port);
    pthread_join(cl.th, NULL);
    ck_assert_int_eq(cl.rc, CRDT_OK);
    ck_assert(has_field(s.r, "c2", "\"second\""));
    ck_assert_int_lt(daemon_stop(&dm), 3000);
    rep_free(&s);
    rep_free(&c);
}
END_TEST

START_TEST(test_daemon_caps_connections_and_handshakes)
{
    crdtnet_daemon_options o = CRDTNET_DAEMON_OPTIONS_INIT;
    rep_t s, c;
    unsigned char sp[16];
    client_t cl;
    daemon_t dm;
    int fd[3], i;

    rep_make(&s, NULL);
    space_of(sp, &s);
    rep_make(&c, sp);
    add_member(&s, &c);
    o.max_handshakes = 2;
    o.conn.handshake_timeout_ms = 5000;
    daemon_start(&dm, &s.r, 1, NULL, 0, &o, "daemon");
    for (i = 0; i < 2; i++) {
        fd[i] = dial_raw(dm.port);
        usleep(150 * 1000); /* accepted in order, old enough to evict */
    }
    /* full: a third half-open connection evicts the oldest pending one,
     * long before its handshake timeout */
    fd[2] = dial_raw(dm.port);
    ck_assert_int_ge(ms_until_closed(fd[0], 1000), 0);
    /* a real client gets in the same way while two are pending */
    usleep(150 * 1000);
    client_start(&cl, c.r, dm.port);
    pthread_join(cl.th, NULL);
    ck_assert_int_eq(cl.rc, CRDT_OK);
    ck_assert_int_ge(ms_until_closed(fd[1], 1000), 0);
    for (i = 0; i < 3; i++)
        close(fd[i]);
    ck_assert_int_lt(daemon_stop(&dm), 3000);
    rep_free(&s);
    rep_free(&c);
}
END_TEST

/* 1,000 connections that each send part of a frame header and idle: a
 * member's sync still succeeds, promptly (the oldest pending handshakes
 * make room), and the daemon stops on time. */
START_TEST(test_daemon_member_syncs_during_a_flood)
{
    crdtnet_daemon_options o = CRDTNET_DAEMON_OPTIONS_INIT;
    static const unsigned char part[2] = { 0, 0 };
    enum { FLOOD = 1000 };
    struct rlimit rl;
    rep_t s, c;
    unsigned char sp[16];
    client_t cl;
    daemon_t dm;
    long long t0;
    int *fd = calloc(FLOOD, sizeof *fd);

    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur < 4096 && rl.rlim_max >= 4096) {
        rl.rlim_cur = 4096;
        ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    }
    ck_assert_uint_ge(rl.rlim_cur, 4096);
    rep_make(&s, NULL);
    space_of(sp, &s);
    rep_make(&c, sp);
    add_member(&s, &c);
    put_str(c.r, "flooded", "written during a flood");
    daemon_start(&dm, &s.r, 1, NULL, 0, &o, "daemon");
    for (int i = 0; i < FLOOD; i++) {
        fd[i] = dial_raw(dm.port);
        (void)send(fd[i], part, sizeof part, MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    usleep(200 * 1000);
    t0 = now_ms();
    client_start(&cl, c.r, dm.port);
    pthread_join(cl.th, NULL);
    ck_assert_msg(cl.rc == CRDT_OK, "sync during the flood: %s",
                  crdt_strerror(cl.rc));
    ck_assert_int_lt(now_ms() - t0, 5000); /* bounded, never the 10 s */
    for (int i = 0; i < FLOOD; i++)
        close(fd[i]);
    free(fd);
    ck_assert_int_lt(daemon_stop(&dm), 3000);
    rep_free(&s);
    rep_free(&c);
}
END_TEST

/* ---- one address flooding, another's member (S5) ------------------ */

/* A TCP connection from @p src (a loopback address) to the daemon; -1
 * if refused. */
static int
dial_from(const char *src, const char *port)
{
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    ck_assert_int_ge(fd, 0);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    ck_assert_int_eq(inet_pton(AF_INET, src, &sa.sin_addr), 1);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((uint16_t)atoi(port));
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Sync @p r with the daemon from source address @p src: a crdtnet_peer
 * driven over the socket (crdtnet_sync_connect cannot pick its source
 * address). Bounded: 10 s without a byte ends it. */
static int
sync_from(const char *src, crdt_replica *r, const char *port,
          crdtnet_report *rep)
{
    static unsigned char buf[65536];
    crdtnet_peer *p;
    int fd = dial_from(src, port), rc;

    if (fd < 0)
        return CRDT_EIO;
    ck_assert_int_eq(crdtnet_peer_new(&p, &r, 1, CRDTNET_HS_CLIENT, NULL),
                     CRDT_OK);
    for (int rounds = 0; !crdtnet_peer_done(p) && rounds < 100000;
         rounds++) {
        const unsigned char *out;
        size_t n;
        struct pollfd pfd = { fd, POLLIN, 0 };
        ssize_t got;

        while (crdtnet_peer_next_out(p, &out, &n) == CRDT_OK)
            for (size_t off = 0; off < n;) {
                ssize_t w = send(fd, out + off, n - off, MSG_NOSIGNAL);
                if (w <= 0) {
                    crdtnet_peer_eof(p);
                    break;
                }
                off += (size_t)w;
            }
        if (crdtnet_peer_done(p))
            break;
        if (poll(&pfd, 1, 10000) != 1) {
            crdtnet_peer_eof(p);
            break;
        }
        got = recv(fd, buf, sizeof buf, 0);
        if (got <= 0)
            crdtnet_peer_eof(p);
        else
            crdtnet_peer_feed(p, buf, (size_t)got);
    }
    rc = crdtnet_peer_result(p, rep);
    crdtnet_peer_free(p);
    close(fd);
    return rc;
}

/* Connects from 127.0.0.1 as fast as it can, sends part of a frame
 * header on each connection and keeps the newest HOLD open, until told
 * to stop (bounded in count and time). */
typedef struct {
    const char *port;
    volatile int stop;
    int attempts;
    pthread_t th;
} flooder_t;

static void *
flooder_main(void *arg)
{
    enum { HOLD = 400, MAX_ATTEMPTS = 50000 };
    static const unsigned char part[2] = { 0, 0 };
    flooder_t *f = arg;
    static int held[HOLD];
    int k = 0;
    long long end = now_ms() + 15000;
    struct sockaddr_in sa;

    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((uint16_t)atoi(f->port));

    for (int i = 0; i < HOLD; i++)
        held[i] = -1;
    while (!__atomic_load_n(&f->stop, __ATOMIC_RELAXED) &&
           f->attempts < MAX_ATTEMPTS && now_ms() < end) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
                        0);

        f->attempts++;
        if (fd < 0)
            break;
        /* non-blocking: a full accept queue must not pause the flood */
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 &&
            errno != EINPROGRESS) {
            close(fd);
            continue;
        }
        (void)send(fd, part, sizeof part, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (held[k] >= 0)
            close(held[k]);
        held[k] = fd;
        k = (k + 1) % HOLD;
    }
    for (int i = 0; i < HOLD; i++)
        if (held[i] >= 0)
            close(held[i]);
    return NULL;
}

/* One address that keeps every handshake slot busy with fresh idle
 * connections (too young to be evicted by age) cannot keep out a member
 * connecting from another address: when the daemon is full, a
 * connection from an address below its share takes the place of one
 * from an address above it. Five syncs in a row, no retry: without the
 * per-address rule each one gets in only if it happens to arrive while
 * a flood connection is old enough to evict. */
START_TEST(test_daemon_one_address_cannot_starve_another)
{
    crdtnet_daemon_options o = CRDTNET_DAEMON_OPTIONS_INIT;
    crdtnet_report rep;
    rep_t s, c;
    unsigned char sp[16];
    char buf[64];
    daemon_t dm;
    flooder_t f;
    int rc = CRDT_OK, ok = 0;
    long long t0;
    struct rlimit rl;

    rep_make(&s, NULL);
    space_of(sp, &s);
    rep_make(&c, sp);
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur < 4096 && rl.rlim_max >= 4096) {
        rl.rlim_cur = 4096;
        ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    }
    ck_assert_uint_ge(rl.rlim_cur, 4096);
    add_member(&s, &s); /* so c accepts s again after its first sync */
    add_member(&s, &c);
    o.max_handshakes = 8;
    o.max_handshakes_per_addr = 4;
    daemon_start(&dm, &s.r, 1, NULL, 0, &o, "daemon");
    memset(&f, 0, sizeof f);
    f.port = dm.port;
    ck_assert_int_eq(pthread_create(&f.th, NULL, flooder_main, &f), 0);
    usleep(300 * 1000); /* the flood is in full swing */
    t0 = now_ms();
    for (int i = 0; i < 5 && rc == CRDT_OK; i++) {
        char doc[16];
        snprintf(doc, sizeof doc, "other%d", i);
        put_str(c.r, doc, "from another address");
        if ((rc = sync_from("127.0.0.2", c.r, dm.port, &rep)) == CRDT_OK)
            ok++;
    }
    __atomic_store_n(&f.stop, 1, __ATOMIC_RELAXED);
    pthread_join(f.th, NULL);
    fprintf(stderr, "members from 127.0.0.2 during a flood of %d "
                    "connections from 127.0.0.1: %d of 5 synced, %lld ms\n",
            f.attempts, ok, now_ms() - t0);
    ck_assert_msg(rc == CRDT_OK, "sync %d from another address: %s (%s)",
                  ok + 1, crdt_strerror(rc), rep.reason);
    ck_assert_int_gt(f.attempts, 8);
    tu_field_str(buf, sizeof buf, s.r, "notes", "other4", "title");
    ck_assert_str_eq(buf, "\"from another address\"");
    ck_assert_int_lt(daemon_stop(&dm), 3000);
    rep_free(&s);
    rep_free(&c);
}
END_TEST

Suite *
test_suite(void)
{
    Suite *s = suite_create("daemon");
    TCase *tc = tcase_create("daemon");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_daemon_new_checks_its_arguments);
    tcase_add_test(tc, test_daemon_two_spaces_three_concurrent_clients);
    tcase_add_test(tc, test_daemon_counts_per_space_and_logs_events);
    tcase_add_test(tc, test_daemon_live_peer_pushes_another_process_write);
    tcase_add_test(tc, test_daemon_peer_reconnects_after_the_peer_restarts);
    tcase_add_test(tc, test_daemon_64_clients_beside_a_silent_one);
    tcase_add_test(tc, test_daemon_silent_client_does_not_delay_others);
    tcase_add_test(tc, test_daemon_space_opened_again_takes_its_place);
    tcase_add_test(tc, test_daemon_moves_its_listener_live);
    tcase_add_test(tc, test_daemon_caps_connections_and_handshakes);
    tcase_add_test(tc, test_daemon_member_syncs_during_a_flood);
    tcase_add_test(tc, test_daemon_one_address_cannot_starve_another);
    suite_add_tcase(s, tc);
    return s;
}
