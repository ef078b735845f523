/*
 * strata-hubload: many live sync clients in one process, for loading a
 * `strata serve` with thousands of sessions (the `hub` workload of
 * strata-bench, and tests/integration/test_serve_hub.sh).
 *
 *   strata-hubload HOST:PORT [--idle DIR --idle-sessions N]
 *                  [--sub DIR]... [--writer DIR] [--inflight K]
 *
 * One event loop (epoll) drives every session: each is a crdtnet_peer
 * client (live) on a non-blocking socket, fed and drained the way
 * crdtnet/peer.h describes, with crdtnet_peer_tick() as its clock. The
 * N idle sessions share the replica DIR (a space where nothing
 * changes); each --sub DIR is one subscriber session on its own replica
 * (so one that receives a change never sends it back for another);
 * --writer DIR is one more session whose replica commits on request.
 * At most K handshakes (default 16) are in progress at once (until the
 * daemon's first session bytes arrive), so the daemon's handshake
 * limits (128, 32 per address once full) are never what refuses us; a
 * session that fails before it authenticates is tried again (5 times).
 *
 * Talks to its parent by lines: stdout says "connected C failed F" once
 * every session authenticated or gave up (within 120 s); stdin commands:
 *   mark             remember each subscriber's received change count
 *   write            the writer commits one change: "wrote T" (T: the
 *                    commit's time, CLOCK_MONOTONIC microseconds)
 *   report T MS      once every subscriber received a change since
 *                    mark (or MS ms passed): "lat N L1 L2 ..." (us
 *                    after T, one per subscriber that received it)
 *   count            "live C": sessions authenticated and open now
 *   quit             every session says goodbye; "bye", exit
 * EOF on stdin is quit.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "crdt/crdt.h"
#include "crdtnet/peer.h"
#include "epoch/epoch.h"

#define MAX_REPLICAS 4096
#define RBUF 65536
#define ATTEMPTS 5
#define CONNECT_DEADLINE_MS 120000
#define QUIT_LINGER_MS 3000

typedef struct {
    int fd;              /* -1: not connected */
    crdtnet_peer *p;
    crdt_replica *r;
    int sub, writer;
    int connecting, authed, settled, gave_up, attempts;
    uint64_t auth_in;    /* bytes received when it authenticated */
    const unsigned char *out;
    size_t out_len, out_off;
    int events;
    uint64_t due;
    uint64_t base;       /* changes received at mark */
    long long got_us;    /* when one more arrived after mark; 0: not yet */
} sess;

static sess *S;
static size_t n_sess;
static int ep = -1;
static struct sockaddr_storage srv;
static socklen_t srv_len;
static int inflight, max_inflight = 16;
static unsigned char rbuf[RBUF];

static long long
now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static uint64_t
now_ms(void)
{
    return (uint64_t)(now_us() / 1000);
}

static void
die(const char *what, int rc)
{
    fprintf(stderr, "strata-hubload: %s: %s\n", what,
            rc < 0 ? crdt_strerror(rc) : strerror(errno));
    exit(1);
}

static crdt_replica *
open_replica(const char *dir)
{
    crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
    crdt_replica *r;
    int rc;

    o.no_sync = 1; /* a load generator: its replicas are throwaway */
    if ((rc = crdt_replica_open(&r, dir, &o)) < 0)
        die(dir, rc);
    if ((rc = epoch_attach(r)) < 0)
        die("epoch_attach", rc);
    return r;
}

static void
set_events(sess *s, int want)
{
    struct epoll_event e;

    if (want == s->events || s->fd < 0)
        return;
    memset(&e, 0, sizeof e);
    e.events = (uint32_t)want;
    e.data.ptr = s;
    if (epoll_ctl(ep, s->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, s->fd,
                  &e) == 0)
        s->events = want;
}

/* Close the session's connection; it may be tried again. */
static void
drop(sess *s)
{
    static int told;

    if (!s->authed && s->p != NULL && told < 3) {
        crdtnet_report rep;
        int rc = crdtnet_peer_result(s->p, &rep);
        told++; /* a few reasons, not a flood */
        fprintf(stderr, "strata-hubload: a session failed: %s: %s\n",
                crdt_strerror(rc), rep.reason);
    }
    if (s->fd >= 0 && !s->settled)
        inflight--;
    if (s->fd >= 0)
        close(s->fd);
    crdtnet_peer_free(s->p);
    s->p = NULL;
    s->fd = -1;
    s->events = 0;
    s->out = NULL;
    s->connecting = 0;
    if (!s->authed && s->attempts >= ATTEMPTS)
        s->gave_up = 1;
    s->authed = s->settled = 0;
}

static void
start(sess *s)
{
    crdtnet_peer_options po = CRDTNET_PEER_OPTIONS_INIT;
    int one = 1;

    s->attempts++;
    po.live = 1;
    if (crdtnet_peer_new(&s->p, &s->r, 1, CRDTNET_HS_CLIENT, &po) < 0)
        die("crdtnet_peer_new", CRDT_ENOMEM);
    s->fd = socket(srv.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                   0);
    if (s->fd < 0)
        die("socket", 0);
    (void)setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    inflight++;
    s->connecting = 1;
    s->due = now_ms();
    if (connect(s->fd, (struct sockaddr *)&srv, srv_len) == 0 ||
        errno == EINPROGRESS) {
        set_events(s, EPOLLOUT);
        return;
    }
    drop(s);
}

/* Move bytes both ways as far as the socket allows. */
static void
service(sess *s, uint32_t ev)
{
    crdtnet_peer_progress pr;
    ssize_t n;

    if (s->connecting) {
        int err = 0;
        socklen_t l = sizeof err;

        if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
            return;
        if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &l) != 0 || err) {
            drop(s);
            return;
        }
        s->connecting = 0;
        (void)crdtnet_peer_tick(s->p, now_ms());
    }
    if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        n = recv(s->fd, rbuf, sizeof rbuf, 0);
        if (n == 0)
            crdtnet_peer_eof(s->p);
        else if (n > 0)
            (void)crdtnet_peer_feed(s->p, rbuf, (size_t)n);
        else if (errno != EAGAIN && errno != EINTR)
            crdtnet_peer_eof(s->p);
    }
    for (;;) {
        if (s->out == NULL &&
            crdtnet_peer_next_out(s->p, &s->out, &s->out_len) != CRDT_OK) {
            s->out = NULL;
            break;
        }
        if (s->out_off == 0 && s->out_len == 0) {
            s->out = NULL;
            continue;
        }
        n = send(s->fd, s->out + s->out_off, s->out_len - s->out_off,
                 MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN)
                break;
            crdtnet_peer_eof(s->p);
            s->out = NULL;
            break;
        }
        s->out_off += (size_t)n;
        if (s->out_off == s->out_len) {
            s->out = NULL;
            s->out_off = 0;
        }
    }
    crdtnet_peer_progress_get(s->p, &pr);
    if (pr.authenticated && !s->authed) {
        s->authed = 1;
        s->auth_in = pr.bytes_in;
    }
    /* in flight until the daemon's first session bytes arrive: it
     * authenticates after our last handshake message, and counts the
     * handshake against its limits until then */
    if (s->authed && !s->settled && pr.bytes_in > s->auth_in) {
        s->settled = 1;
        inflight--;
    }
    if (s->sub && s->got_us == 0 && pr.changes_received > s->base)
        s->got_us = now_us();
    if (crdtnet_peer_done(s->p)) {
        drop(s);
        return;
    }
    set_events(s, EPOLLIN | (s->out != NULL ? EPOLLOUT : 0));
}

static void
tick_all(void)
{
    uint64_t t = now_ms();

    for (size_t i = 0; i < n_sess; i++) {
        sess *s = &S[i];
        if (s->p == NULL || s->connecting || t < s->due)
            continue;
        s->due = crdtnet_peer_tick(s->p, t);
        service(s, 0);
    }
}

static void
start_more(void)
{
    for (size_t i = 0; i < n_sess && inflight < max_inflight; i++)
        if (S[i].p == NULL && !S[i].gave_up &&
            (!S[i].attempts || !S[i].authed))
            start(&S[i]);
}

static size_t
count_live(void)
{
    size_t n = 0;

    for (size_t i = 0; i < n_sess; i++)
        n += S[i].p != NULL && S[i].authed && !crdtnet_peer_done(S[i].p);
    return n;
}

static void
write_change(void)
{
    static int seq;
    crdt_txn *t;
    crdt_value v;
    char key[32];
    long long t0;
    int rc;

    for (size_t i = 0; i < n_sess; i++) {
        if (!S[i].writer)
            continue;
        snprintf(key, sizeof key, "k%d", seq++);
        v = crdt_value_int(seq);
        t0 = now_us();
        if ((rc = crdt_txn_begin(&t, S[i].r)) < 0 ||
            (rc = crdt_txn_put(t, "hub", key, "n", &v)) < 0 ||
            (rc = crdt_txn_commit(t, NULL)) < 0)
            die("writer commit", rc);
        crdtnet_peer_poke(S[i].p);
        service(&S[i], 0);
        printf("wrote %lld\n", t0);
        fflush(stdout);
        return;
    }
    printf("wrote 0\n");
    fflush(stdout);
}

/* report: pending until every subscriber has it or the deadline. */
static int reporting;
static long long rep_t0, rep_deadline;

static void
report_maybe(void)
{
    size_t subs = 0, got = 0;

    if (!reporting)
        return;
    for (size_t i = 0; i < n_sess; i++) {
        subs += S[i].sub;
        got += S[i].sub && S[i].got_us != 0;
    }
    if (got < subs && now_us() < rep_deadline)
        return;
    reporting = 0;
    printf("lat %zu", got);
    for (size_t i = 0; i < n_sess; i++)
        if (S[i].sub && S[i].got_us != 0)
            printf(" %lld", S[i].got_us - rep_t0);
    printf("\n");
    fflush(stdout);
}

static int quitting;
static long long quit_deadline;

static void
command(char *line)
{
    long long t, ms;

    if (strncmp(line, "mark", 4) == 0) {
        for (size_t i = 0; i < n_sess; i++) {
            crdtnet_peer_progress pr;
            crdtnet_peer_progress_get(S[i].p, &pr);
            S[i].base = pr.changes_received;
            S[i].got_us = 0;
        }
        printf("marked\n");
    } else if (strncmp(line, "write", 5) == 0) {
        write_change();
        return;
    } else if (sscanf(line, "report %lld %lld", &t, &ms) == 2) {
        reporting = 1;
        rep_t0 = t;
        rep_deadline = now_us() + ms * 1000;
        report_maybe();
        return;
    } else if (strncmp(line, "count", 5) == 0) {
        printf("live %zu\n", count_live());
    } else if (strncmp(line, "quit", 4) == 0) {
        quitting = 1;
    }
    fflush(stdout);
}

static void
read_stdin(void)
{
    static char buf[4096];
    static size_t len;
    ssize_t n = read(0, buf + len, sizeof buf - 1 - len);
    char *nl;

    if (n <= 0) {
        quitting = 1;
        (void)epoll_ctl(ep, EPOLL_CTL_DEL, 0, NULL);
        return;
    }
    len += (size_t)n;
    buf[len] = '\0';
    while ((nl = strchr(buf, '\n')) != NULL) {
        *nl = '\0';
        command(buf);
        len -= (size_t)(nl + 1 - buf);
        memmove(buf, nl + 1, len + 1);
    }
    if (len == sizeof buf - 1)
        len = 0; /* a line too long: dropped */
}

static void
resolve(const char *hp)
{
    char host[256];
    const char *colon = strrchr(hp, ':');
    struct addrinfo hints, *res;

    if (colon == NULL || (size_t)(colon - hp) >= sizeof host) {
        fprintf(stderr, "strata-hubload: expected HOST:PORT\n");
        exit(2);
    }
    memcpy(host, hp, (size_t)(colon - hp));
    host[colon - hp] = '\0';
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, colon + 1, &hints, &res) != 0) {
        fprintf(stderr, "strata-hubload: cannot resolve %s\n", hp);
        exit(2);
    }
    memcpy(&srv, res->ai_addr, res->ai_addrlen);
    srv_len = res->ai_addrlen;
    freeaddrinfo(res);
}

int
main(int argc, char **argv)
{
    const char *idle = NULL, *writer = NULL;
    const char *subs[MAX_REPLICAS];
    size_t n_subs = 0, n_idle = 0, k = 0;
    crdt_replica *idle_r = NULL;
    struct epoll_event ev[256], e;
    struct rlimit rl;
    int announced = 0;
    long long deadline;

    if (argc < 2) {
        fprintf(stderr, "usage: strata-hubload HOST:PORT [--idle DIR "
                        "--idle-sessions N] [--sub DIR]... [--writer DIR] "
                        "[--inflight K]\n");
        return 2;
    }
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--idle"))
            idle = argv[i + 1];
        else if (!strcmp(argv[i], "--idle-sessions"))
            n_idle = strtoul(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--sub") && n_subs < MAX_REPLICAS)
            subs[n_subs++] = argv[i + 1];
        else if (!strcmp(argv[i], "--writer"))
            writer = argv[i + 1];
        else if (!strcmp(argv[i], "--inflight"))
            max_inflight = atoi(argv[i + 1]) > 0 ? atoi(argv[i + 1]) : 1;
        else {
            fprintf(stderr, "strata-hubload: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max; /* one fd per session */
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
    resolve(argv[1]);
    n_sess = (idle ? n_idle : 0) + n_subs + (writer ? 1 : 0);
    if ((S = calloc(n_sess ? n_sess : 1, sizeof *S)) == NULL)
        die("calloc", CRDT_ENOMEM);
    if (idle != NULL && n_idle > 0)
        idle_r = open_replica(idle);
    for (size_t i = 0; i < n_subs; i++, k++) {
        S[k].r = open_replica(subs[i]);
        S[k].sub = 1;
    }
    if (writer != NULL) {
        S[k].r = open_replica(writer);
        S[k++].writer = 1;
    }
    for (size_t i = 0; idle_r != NULL && i < n_idle; i++)
        S[k++].r = idle_r;
    for (size_t i = 0; i < n_sess; i++)
        S[i].fd = -1;
    if ((ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
        die("epoll_create1", 0);
    memset(&e, 0, sizeof e);
    e.events = EPOLLIN;
    e.data.ptr = NULL; /* stdin */
    (void)epoll_ctl(ep, EPOLL_CTL_ADD, 0, &e);
    deadline = now_us() + (long long)CONNECT_DEADLINE_MS * 1000;
    for (;;) {
        int n;

        if (!quitting)
            start_more();
        n = epoll_wait(ep, ev, 256, 20);
        for (int i = 0; i < n; i++) {
            if (ev[i].data.ptr == NULL)
                read_stdin();
            else
                service(ev[i].data.ptr, ev[i].events);
        }
        tick_all();
        report_maybe();
        if (!announced) {
            size_t authed = 0, gave = 0;
            for (size_t i = 0; i < n_sess; i++) {
                authed += S[i].authed;
                gave += S[i].gave_up;
            }
            if (authed + gave == n_sess || now_us() >= deadline) {
                announced = 1;
                printf("connected %zu failed %zu\n", authed,
                       n_sess - authed);
                fflush(stdout);
            }
        }
        if (quitting && quit_deadline == 0) {
            quit_deadline = now_us() + QUIT_LINGER_MS * 1000LL;
            for (size_t i = 0; i < n_sess; i++) {
                S[i].gave_up = 1; /* no retries from now on */
                if (S[i].p != NULL) {
                    crdtnet_peer_stop(S[i].p);
                    if (S[i].fd >= 0 && !S[i].connecting)
                        service(&S[i], 0);
                }
            }
        }
        if (quitting) {
            size_t open = 0;
            for (size_t i = 0; i < n_sess; i++)
                open += S[i].p != NULL;
            if (open == 0 || now_us() >= quit_deadline)
                break;
        }
    }
    for (size_t i = 0; i < n_sess; i++)
        if (S[i].p != NULL) {
            S[i].attempts = ATTEMPTS;
            drop(&S[i]);
        }
    for (size_t i = 0; i < n_sess; i++)
        if (S[i].r != idle_r)
            crdt_replica_close(S[i].r);
    crdt_replica_close(idle_r);
    printf("bye\n");
    fflush(stdout);
    free(S);
    return 0;
}
