/*
 * daemon.c: the sync daemon (crdtnet/daemon.h): accept connections and
 * keep live sessions with configured peers. Accepted connections share
 * one event loop (epoll); each configured peer link has its own thread.
 *
 *   new (bind, listen) --run--> RUNNING --stop()--> STOPPING --> run
 *                                                    returns --> free
 *
 * Threads:
 *   - the caller of crdtnet_daemon_run(): the event loop. It waits
 *     (epoll, level-triggered) on the listening socket, the stop pipe and
 *     every accepted connection, accepts, and turns each connection
 *     (crdtnet__conn_turn) when its socket is ready or its deadline (a
 *     min-heap, timer_heap.c) is due; a turn reads at most 64 KiB and
 *     writes at most 256 KiB, so a connection merging or sending a
 *     snapshot holds the others up for one bounded slice, not its
 *     whole transfer;
 *   - one thread per (configured peer, replica): connect, run a live
 *     session, reconnect with exponential backoff and jitter.
 * Invariants:
 *  (1) At most max_conns accepted connections and max_handshakes of them
 *      not yet authenticated exist at once, and at most max_per_addr of
 *      those from one source address (plus those evicted and about to
 *      end). When full, the idlest connection still in its handshake
 *      (nothing received for longest; at least EVICT_AGE_MS old) is
 *      evicted to make room, of the same address when that address is
 *      at its limit: a flood of half-open connections cannot keep a
 *      member out for the whole handshake timeout, and one address
 *      cannot take the slots of another. With none to evict, a new
 *      connection is closed at once, before any byte is read
 *      (docs/testing.md B19, S5).
 *  (2) Every wait polls the stop pipe or is at most 250 ms (every
 *      connection is turned at least that often and reads its stop
 *      flag), so stop() ends every session and thread within about a
 *      second:
 *      the pipe is written once and never drained, so every poller sees
 *      it readable from then on.
 *  (3) stop() only stores to a sig_atomic_t and write()s to a pipe, so a
 *      signal handler may call it.
 *  (4) Every thread started is joined, and every connection ended,
 *      before run() returns.
 *  (5) Only the loop's thread turns, ends or frees a connection, and
 *      changes the timer heap and the epoll set; the lists of
 *      connections are changed under d->mu (other threads read them to
 *      stop sessions of a removed space).
 */
#define _GNU_SOURCE /* accept4, pipe2 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "crdtnet/daemon.h"
#include "io_internal.h"
#include "timer_heap.h"

#define HOST_MAX 256
#define RBUF_BYTES ((size_t)64 * 1024) /* one read of one connection */
#define ACCEPT_BURST 64   /* connections accepted per wake */
#define EVENTS_MAX 256    /* readiness events per wake */
#define TIMERS_BURST 4096 /* due connections turned per wake */
#define ACCEPT_PAUSE_MS 100 /* out of fds: stop accepting this long */
#define EVICT_AGE_MS 100 /* a handshake younger than this is never evicted */
#define PORT_MAX 32

struct crdtnet_daemon;

typedef struct dconn {
    struct crdtnet_daemon *d;
    crdtnet__conn *cn;
    crdtnet__conn_hooks h;
    int fd;
    volatile sig_atomic_t stop; /* its own: set on stop or its space's removal */
    crdtnet_conn_options copts; /* the daemon's, with its own stop flag */
    crdt_replica *r;            /* its space, once known (conn_stats) */
    int authed; /* its handshake slot was given back */
    volatile int evict; /* told to end if still in its handshake */
    int events;         /* what epoll waits for (POLLIN, POLLOUT); 0: none */
    size_t heap_pos;    /* its deadline in d->timers */
    long long t_accept;
    long long rx_ms;    /* when it last sent bytes (conn.c stores it) */
    unsigned char addr[16]; /* its source address (IPv4: 4 bytes) */
    int family;
    uint64_t born;      /* d->conn_seq when it was listed */
    struct dconn *next, *prev;       /* d->conns: every one */
    struct dconn *hs_next, *hs_prev; /* d->hs: those in the handshake */
} dconn;

typedef struct {
    struct crdtnet_daemon *d;
    pthread_t th;
    int started;
    int authed;
    volatile sig_atomic_t stop; /* its own: set on stop or removal */
    crdtnet_conn_options copts; /* refreshed from the daemon's per dial */
    crdt_replica *r;
    char host[HOST_MAX];
    char port[PORT_MAX];
    char where[HOST_MAX + PORT_MAX + 4]; /* "host:port", for logs */
} dpeer;

struct crdtnet_daemon {
    /* CRDTNET_DAEMON_MAX_SPACES slots, filled in order and never moved
     * (threads hold pointers into them); n is published last */
    crdt_replica **reps; /* a slot's handle changes only while removed
                          * and idle (add_space): atomic loads */
    unsigned char (*sids)[CRDT_SPACE_ID_BYTES]; /* each slot's space */
    crdtnet_space_stats *stats; /* one per replica */
    uint64_t *seen_txn;         /* the loop's: last commit id seen */
    int *removed;               /* 1: no longer served (under mu) */
    uint64_t *removed_at;       /* conn_seq when it was removed */
    uint64_t conn_seq;          /* connections listed so far (under mu) */
    size_t n;
    int lfd;
    int port;                        /* atomic: read by any thread */
    char where[HOST_MAX + PORT_MAX]; /* the bound address, for logs */
    /* a listener set_listen() bound, for the loop to take (under mu) */
    int new_lfd, new_port;
    char new_where[HOST_MAX + PORT_MAX];
    int wake_fd; /* an eventfd: set_listen() wakes the loop with it */
    int pipe_r, pipe_w;
    volatile sig_atomic_t stop;
    crdtnet_conn_options copts; /* live, our stop flag, our log */
    crdtnet_log_fn user_log;
    crdtnet_log_event_fn user_event;
    void *user_log_ctx;
    int quiet;
    unsigned max_conns, max_hs, max_per_addr;
    int backoff_min, backoff_max;
    dpeer *peers;    /* n_addrs * CRDTNET_DAEMON_MAX_SPACES slots */
    size_t n_peers;  /* used: n_addrs per replica slot */
    size_t n_addrs;  /* configured peer addresses */
    int running;     /* peer threads are started as links are added */
    pthread_mutex_t mu;
    dconn *conns;
    dconn *hs;       /* those of conns not yet authenticated */
    int ep;          /* the event loop's epoll instance */
    crdtnet__heap timers;
    unsigned char *rbuf; /* every connection's reads go through it */
    long long accept_paused_until; /* 0: accepting */
    unsigned n_conns, n_hs;
    unsigned n_evicting; /* evicted, in their handshake, not yet ended */
    int ran;
    long long refused_logged_ms;
    unsigned long refused;
    unsigned long refused_evicted; /* pending handshakes evicted */
};

/* Every line of the daemon and its connections goes through here: to
 * the caller's event or line function, else to stderr. */
static void
daemon_event(int level, const char *peer, const char *msg, void *ctx)
{
    crdtnet_daemon *d = ctx;
    char line[600];

    if (d->quiet)
        return;
    if (d->user_event != NULL) {
        d->user_event(level, peer, msg, d->user_log_ctx);
        return;
    }
    if (peer != NULL)
        snprintf(line, sizeof line, "%s: %s", peer, msg);
    else
        snprintf(line, sizeof line, "%s", msg);
    if (d->user_log != NULL)
        d->user_log(line, d->user_log_ctx);
    else /* one call, so lines from threads do not interleave */
        fprintf(stderr, CRDTNET_DAEMON_LOG_PREFIX "%s\n", line);
}

static void
dlog(crdtnet_daemon *d, int level, const char *peer, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
dlog(crdtnet_daemon *d, int level, const char *peer, const char *fmt, ...)
{
    char line[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    daemon_event(level, peer, line, d);
}

/* The daemon's own lines that concern no peer. */
#define dlogf(d, level, ...) dlog((d), (level), NULL, __VA_ARGS__)

/* Wait up to @p ms or until stop; 1 if stopping (keeps (2)). */
static int
wait_stop(crdtnet_daemon *d, long long ms)
{
    long long end = crdtnet__now_ms() + ms, left;
    struct pollfd pfd;

    while (!CRDTNET__FLAG(d->stop)) {
        left = end - crdtnet__now_ms();
        if (left <= 0)
            return 0;
        pfd.fd = d->pipe_r;
        pfd.events = POLLIN;
        pfd.revents = 0;
        if (poll(&pfd, 1, left > 1000 ? 1000 : (int)left) > 0)
            break;
    }
    return 1;
}

/* ---- listening ---------------------------------------------------- */

/* A listening socket on @p host:@p port (non-blocking), its port and
 * "host:port" for logs; a failure is logged. */
static int
open_listener(crdtnet_daemon *d, const char *host, const char *port,
              int *fd_out, int *port_out, char *where, size_t where_len)
{
    struct addrinfo hints, *res = NULL, *ai;
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int fd = -1, one = 1, rc, err = 0;

    if (host != NULL && (host[0] == '\0' || strcmp(host, "*") == 0))
        host = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        dlogf(d, CRDTNET_LOG_ERROR, "cannot resolve %s:%s: %s",
              host ? host : "*", port, gai_strerror(rc));
        return CRDT_EIO;
    }
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family,
                    ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                    ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
            listen(fd, SOMAXCONN) == 0)
            break;
        err = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        dlogf(d, CRDTNET_LOG_ERROR, "cannot listen on %s:%s: %s",
              host ? host : "*", port, strerror(err));
        return CRDT_EIO;
    }
    *port_out = 0;
    snprintf(where, where_len, "?");
    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0) {
        char h[INET6_ADDRSTRLEN] = "?";

        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;

            *port_out = ntohs(a->sin_port);
            inet_ntop(AF_INET, &a->sin_addr, h, sizeof h);
            snprintf(where, where_len, "%s:%d", h, *port_out);
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

            *port_out = ntohs(a->sin6_port);
            inet_ntop(AF_INET6, &a->sin6_addr, h, sizeof h);
            snprintf(where, where_len, "[%s]:%d", h, *port_out);
        }
    }
    *fd_out = fd;
    return CRDT_OK;
}

static int
bind_listen(crdtnet_daemon *d, const char *host, const char *port)
{
    int p = 0, rc;

    rc = open_listener(d, host, port, &d->lfd, &p, d->where,
                       sizeof d->where);
    if (rc == CRDT_OK)
        __atomic_store_n(&d->port, p, __ATOMIC_RELEASE);
    return rc;
}

int
crdtnet_daemon_new(crdtnet_daemon **out, crdt_replica *const *replicas,
                   size_t n, const char *listen_host,
                   const char *listen_port, const char *const *peers,
                   size_t n_peers, const crdtnet_daemon_options *opts)
{
    crdtnet_daemon_options defaults = CRDTNET_DAEMON_OPTIONS_INIT;
    unsigned char a[CRDT_SPACE_ID_BYTES], b[CRDT_SPACE_ID_BYTES];
    crdtnet_daemon *d;
    int fds[2], rc;
    size_t i, j, k;

    if (out == NULL || replicas == NULL || n == 0 || listen_port == NULL ||
        (n_peers > 0 && peers == NULL))
        return CRDT_EINVAL;
    for (i = 0; i < n; i++) {
        if (replicas[i] == NULL)
            return CRDT_EINVAL;
        crdt_replica_space_id(replicas[i], a);
        for (j = 0; j < i; j++) {
            crdt_replica_space_id(replicas[j], b);
            if (memcmp(a, b, sizeof a) == 0)
                return CRDT_EINVAL; /* two replicas of one space */
        }
    }
    if (opts == NULL)
        opts = &defaults;
    d = calloc(1, sizeof *d);
    if (d == NULL)
        return CRDT_ENOMEM;
    d->lfd = d->pipe_r = d->pipe_w = d->ep = d->new_lfd = d->wake_fd = -1;
    d->copts = opts->conn;
    d->copts.version = 1;
    d->copts.live = 1;
    d->copts.stop = &d->stop;
    d->copts.log = NULL;
    d->copts.log_event = daemon_event;
    d->copts.log_ctx = d;
    d->user_log = opts->conn.log;
    d->user_event = opts->conn.log_event;
    d->user_log_ctx = opts->conn.log_ctx;
    d->quiet = opts->quiet;
    d->max_conns =
        opts->max_conns ? opts->max_conns : CRDTNET_DAEMON_MAX_CONNS_DEFAULT;
    d->max_hs = opts->max_handshakes ? opts->max_handshakes : 128;
    d->max_per_addr =
        opts->max_handshakes_per_addr ? opts->max_handshakes_per_addr : 32;
    d->backoff_min = opts->backoff_min_ms > 0 ? opts->backoff_min_ms : 1000;
    d->backoff_max =
        opts->backoff_max_ms > 0 ? opts->backoff_max_ms : 60000;
    if (d->backoff_max < d->backoff_min)
        d->backoff_max = d->backoff_min;
    rc = CRDT_ENOMEM;
    if (n > CRDTNET_DAEMON_MAX_SPACES || n_peers > CRDTNET_DAEMON_MAX_PEERS) {
        rc = CRDT_ELIMIT;
        goto fail;
    }
    d->reps = calloc(CRDTNET_DAEMON_MAX_SPACES, sizeof *d->reps);
    d->stats = calloc(CRDTNET_DAEMON_MAX_SPACES, sizeof *d->stats);
    d->removed = calloc(CRDTNET_DAEMON_MAX_SPACES, sizeof *d->removed);
    d->seen_txn = calloc(CRDTNET_DAEMON_MAX_SPACES, sizeof *d->seen_txn);
    d->sids = calloc(CRDTNET_DAEMON_MAX_SPACES, sizeof *d->sids);
    d->removed_at =
        calloc(CRDTNET_DAEMON_MAX_SPACES, sizeof *d->removed_at);
    if (d->reps == NULL || d->stats == NULL || d->removed == NULL ||
        d->seen_txn == NULL || d->sids == NULL || d->removed_at == NULL)
        goto fail;
    memcpy(d->reps, replicas, n * sizeof *d->reps);
    for (i = 0; i < n; i++)
        crdt_replica_space_id(replicas[i], d->sids[i]);
    d->n = n;
    if (n_peers > 0) {
        d->peers = calloc(n_peers * CRDTNET_DAEMON_MAX_SPACES,
                          sizeof *d->peers);
        if (d->peers == NULL)
            goto fail;
    }
    for (i = 0, k = 0; i < n_peers; i++) {
        char host[HOST_MAX], port[PORT_MAX];

        if (crdtnet_split_hostport(host, sizeof host, port, sizeof port,
                                   peers[i]) != CRDT_OK) {
            dlogf(d, CRDTNET_LOG_ERROR,
                  "bad peer address \"%s\": expected HOST:PORT",
                  peers[i] ? peers[i] : "");
            rc = CRDT_EINVAL;
            goto fail;
        }
        for (j = 0; j < n; j++, k++) {
            d->peers[k].d = d;
            d->peers[k].r = replicas[j];
            memcpy(d->peers[k].host, host, sizeof host);
            memcpy(d->peers[k].port, port, sizeof port);
            snprintf(d->peers[k].where, sizeof d->peers[k].where,
                     "%s%s%s:%s", strchr(host, ':') ? "[" : "", host,
                     strchr(host, ':') ? "]" : "", port);
        }
    }
    d->n_peers = n_peers * n;
    d->n_addrs = n_peers;
    if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) {
        rc = CRDT_EIO;
        goto fail;
    }
    d->pipe_r = fds[0];
    d->pipe_w = fds[1];
    if ((d->ep = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
        (d->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0 ||
        (d->rbuf = malloc(RBUF_BYTES)) == NULL) {
        rc = d->ep < 0 || d->wake_fd < 0 ? CRDT_EIO : CRDT_ENOMEM;
        goto fail;
    }
    if (pthread_mutex_init(&d->mu, NULL) != 0) {
        rc = CRDT_ERROR;
        goto fail;
    }
    rc = bind_listen(d, listen_host, listen_port);
    if (rc < 0) {
        pthread_mutex_destroy(&d->mu);
        goto fail;
    }
    *out = d;
    return CRDT_OK;

fail:
    if (d->ep >= 0)
        close(d->ep);
    if (d->wake_fd >= 0)
        close(d->wake_fd);
    free(d->rbuf);
    if (d->pipe_r >= 0)
        close(d->pipe_r);
    if (d->pipe_w >= 0)
        close(d->pipe_w);
    free(d->peers);
    free(d->seen_txn);
    free(d->removed);
    free(d->removed_at);
    free(d->sids);
    free(d->stats);
    free(d->reps);
    free(d);
    return rc;
}

int
crdtnet_daemon_port(const crdtnet_daemon *d)
{
    return d ? __atomic_load_n(&d->port, __ATOMIC_ACQUIRE) : -1;
}

void
crdtnet_daemon_stop(crdtnet_daemon *d)
{
    int saved = errno;
    ssize_t w;

    if (d == NULL)
        return;
    CRDTNET__FLAG_SET(d->stop, 1);
    w = write(d->pipe_w, "x", 1); /* full pipe: already written */
    (void)w;
    errno = saved;
}

/* ---- counters ----------------------------------------------------- */

static crdtnet_space_stats *
stats_of(crdtnet_daemon *d, crdt_replica *r)
{
    size_t n = __atomic_load_n(&d->n, __ATOMIC_ACQUIRE);

    for (size_t i = 0; i < n; i++)
        if (__atomic_load_n(&d->reps[i], __ATOMIC_ACQUIRE) == r)
            return &d->stats[i];
    return NULL;
}

int
crdtnet_daemon_space_stats(crdtnet_daemon *d, size_t i,
                           crdtnet_space_stats *out)
{
    const uint64_t *src;
    uint64_t *dst;

    _Static_assert(sizeof *out % sizeof(uint64_t) == 0,
                   "the counters are all uint64_t");
    if (d == NULL || out == NULL || i >= __atomic_load_n(&d->n,
                                                        __ATOMIC_ACQUIRE))
        return CRDT_EINVAL;
    src = (const uint64_t *)&d->stats[i];
    dst = (uint64_t *)out;
    for (size_t k = 0; k < sizeof *out / sizeof(uint64_t); k++)
        dst[k] = __atomic_load_n(&src[k], __ATOMIC_RELAXED);
    return CRDT_OK;
}

/* ---- accepted connections ----------------------------------------- */

/* Under d->mu: take @p c out of the list of pending handshakes. */
static void
hs_unlink(crdtnet_daemon *d, dconn *c)
{
    if (c->hs_prev != NULL)
        c->hs_prev->hs_next = c->hs_next;
    else
        d->hs = c->hs_next;
    if (c->hs_next != NULL)
        c->hs_next->hs_prev = c->hs_prev;
    c->hs_next = c->hs_prev = NULL;
}

static void
conn_authenticated(void *ctx)
{
    dconn *c = ctx;

    pthread_mutex_lock(&c->d->mu);
    if (c->evict) { /* evicted too late: it ends by itself */
        c->d->n_evicting--;
        c->evict = 0;
    }
    c->authed = 1;
    c->d->n_hs--; /* keeps (1) */
    hs_unlink(c->d, c);
    pthread_mutex_unlock(&c->d->mu);
}

/* Under d->mu: 1 if @p r is served now. */
static int
served(crdtnet_daemon *d, crdt_replica *r)
{
    for (size_t i = 0; i < d->n; i++)
        if (d->reps[i] == r)
            return !d->removed[i];
    return 0;
}

/* Called once the connection knows its space: it remembers it, and
 * ends at once if the space was removed since it started. */
static crdtnet_space_stats *
conn_stats(crdt_replica *r, void *ctx)
{
    dconn *c = ctx;

    pthread_mutex_lock(&c->d->mu);
    c->r = r;
    if (!served(c->d, r) || CRDTNET__FLAG(c->d->stop))
        CRDTNET__FLAG_SET(c->stop, 1);
    pthread_mutex_unlock(&c->d->mu);
    return stats_of(c->d, r);
}

static void
refuse(crdtnet_daemon *d, int fd, const char *why)
{
    long long now = crdtnet__now_ms();

    close(fd);
    d->refused++;
    if (now - d->refused_logged_ms >= 1000) { /* a flood logs 1 line/s */
        dlogf(d, CRDTNET_LOG_WARN, "refused %lu connection(s): %s",
              d->refused, why);
        d->refused = 0;
        d->refused_logged_ms = now;
    }
}

static int
same_addr(const dconn *a, const dconn *b)
{
    return a->family == b->family &&
           memcmp(a->addr, b->addr, sizeof a->addr) == 0;
}

/* Under d->mu: handshakes in progress from @p from's address, not
 * counting those told to end. */
static unsigned
pending_from(const crdtnet_daemon *d, const dconn *from)
{
    const dconn *c;
    unsigned n = 0;

    for (c = d->hs; c != NULL; c = c->hs_next)
        if (!c->evict && same_addr(c, from))
            n++;
    return n;
}

/* Under d->mu: may @p c be evicted (in its handshake, not yet told, and
 * old enough, unless @p any_age)? */
static int
evictable(const dconn *c, int any_age, long long now)
{
    return !c->authed && !c->evict &&
           (any_age || now - c->t_accept >= EVICT_AGE_MS);
}

/*
 * Under d->mu: tell the idlest connection still in its handshake to end,
 * so a new one can take its place (keeps (1)); 1 if one was. Which ones
 * may go: with @p from, only those of its address (at least
 * EVICT_AGE_MS old); with @p over_share, those of any address holding
 * more than its share of pending handshakes, however young (that
 * address cannot keep the others out); else any at least EVICT_AGE_MS
 * old. The one told is turned at once (the loop's thread calls this).
 */
static int
evict_idlest(crdtnet_daemon *d, const dconn *from, int over_share,
             long long now)
{
    dconn *c, *idlest = NULL;
    long long rx, best = 0;

    for (c = d->hs; c != NULL; c = c->hs_next) {
        if (!evictable(c, over_share, now) ||
            (from != NULL && !same_addr(c, from)))
            continue;
        rx = __atomic_load_n(&c->rx_ms, __ATOMIC_RELAXED);
        if (idlest != NULL &&
            (rx > best || (rx == best && c->t_accept >= idlest->t_accept)))
            continue;
        if (over_share && pending_from(d, c) <= d->max_per_addr)
            continue;
        idlest = c;
        best = rx;
    }
    if (idlest == NULL)
        return 0;
    __atomic_store_n(&idlest->evict, 1, __ATOMIC_RELAXED);
    d->n_evicting++;
    if (idlest->cn != NULL)
        (void)crdtnet__heap_set(&d->timers, idlest, &idlest->heap_pos, now);
    return 1;
}

/* The source address of an accepted connection, as a key. */
static void
set_source(dconn *c, const struct sockaddr_storage *ss)
{
    c->family = ss->ss_family;
    if (ss->ss_family == AF_INET)
        memcpy(c->addr, &((const struct sockaddr_in *)ss)->sin_addr, 4);
    else if (ss->ss_family == AF_INET6)
        memcpy(c->addr, &((const struct sockaddr_in6 *)ss)->sin6_addr, 16);
}

/* Under d->mu: room for one more pending handshake from @p c's
 * address, evicting if full (keeps (1)); NULL, or why not. */
static const char *
make_room(crdtnet_daemon *d, const dconn *c)
{
    long long now = crdtnet__now_ms();
    int at_share = pending_from(d, c) >= d->max_per_addr;

    /* full: the idlest pending handshake makes room (those evicted and
     * still ending do not count; they end on their next turn). An
     * address that holds its share only replaces one of its own; one
     * below it first takes the place of an address above it. */
    if ((d->n_conns - d->n_evicting >= d->max_conns ||
         d->n_hs - d->n_evicting >= d->max_hs) &&
        d->n_conns < d->max_conns + d->max_hs &&
        (at_share ? evict_idlest(d, c, 0, now)
                  : evict_idlest(d, NULL, 1, now) ||
                        evict_idlest(d, NULL, 0, now)))
        d->refused_evicted++;
    if (d->n_conns - d->n_evicting >= d->max_conns)
        return "too many connections";
    if (d->n_hs - d->n_evicting >= d->max_hs ||
        d->n_conns >= d->max_conns + d->max_hs)
        return at_share ? "too many handshakes in progress from one address"
                        : "too many handshakes in progress";
    return NULL;
}

/* Under d->mu: list @p c as a new connection in its handshake. */
static void
conn_link(crdtnet_daemon *d, dconn *c)
{
    d->n_conns++;
    d->n_hs++;
    c->born = ++d->conn_seq;
    c->prev = NULL;
    c->next = d->conns;
    if (d->conns != NULL)
        d->conns->prev = c;
    d->conns = c;
    c->hs_prev = NULL;
    c->hs_next = d->hs;
    if (d->hs != NULL)
        d->hs->hs_prev = c;
    d->hs = c;
}

/* Under d->mu: the counts and lists without @p c (keeps (1)). */
static void
conn_unlink(crdtnet_daemon *d, dconn *c)
{
    if (!c->authed) {
        d->n_hs--;
        hs_unlink(d, c);
    }
    if (c->evict)
        d->n_evicting--;
    d->n_conns--;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        d->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
}

/* poll(2) events to epoll's, and back. */
static uint32_t
to_epoll(int ev)
{
    return ((ev & POLLIN) ? EPOLLIN | EPOLLRDHUP : 0) |
           ((ev & POLLOUT) ? EPOLLOUT : 0);
}

static int
from_epoll(uint32_t ev)
{
    return ((ev & (EPOLLIN | EPOLLRDHUP)) ? POLLIN : 0) |
           ((ev & EPOLLOUT) ? POLLOUT : 0) | ((ev & EPOLLERR) ? POLLERR : 0) |
           ((ev & EPOLLHUP) ? POLLHUP : 0);
}

/* A connection is over: its result and log lines, then gone. */
static void
conn_close(crdtnet_daemon *d, dconn *c)
{
    crdtnet__heap_remove(&d->timers, &c->heap_pos);
    if (c->events != 0)
        (void)epoll_ctl(d->ep, EPOLL_CTL_DEL, c->fd, NULL);
    (void)crdtnet__conn_end(c->cn, NULL); /* closes the socket */
    pthread_mutex_lock(&d->mu);
    conn_unlink(d, c);
    pthread_mutex_unlock(&d->mu);
    free(c);
}

/*
 * After a turn: end the connection if it is over, else wait for what
 * it wants (a connection that wants nothing is out of the epoll set, so
 * a hung-up socket cannot wake the loop again and again) and until its
 * next deadline.
 */
static void
conn_schedule(crdtnet_daemon *d, dconn *c, long long now)
{
    struct epoll_event e;
    int ev, op;

    if (crdtnet__conn_done(c->cn)) {
        conn_close(d, c);
        return;
    }
    ev = crdtnet__conn_events(c->cn);
    if (ev != c->events) {
        op = c->events == 0 ? EPOLL_CTL_ADD
                            : ev == 0 ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;
        memset(&e, 0, sizeof e);
        e.events = to_epoll(ev);
        e.data.ptr = c;
        if (epoll_ctl(d->ep, op, c->fd, &e) == 0)
            c->events = ev;
    }
    if (crdtnet__heap_set(&d->timers, c, &c->heap_pos,
                          crdtnet__conn_due(c->cn, now)) < 0)
        /* out of memory: no deadline, so end it */
        CRDTNET__FLAG_SET(c->stop, 1);
}

static void
conn_turn(crdtnet_daemon *d, dconn *c, int revents)
{
    long long now = crdtnet__now_ms();

    crdtnet__conn_turn(c->cn, revents, d->rbuf, RBUF_BYTES, now);
    conn_schedule(d, c, now);
}

/* Out of fds (or memory): leave the listening socket out of the epoll
 * set for a moment, so the loop neither spins nor sleeps. */
static void
accept_pause(crdtnet_daemon *d)
{
    d->accept_paused_until = crdtnet__now_ms() + ACCEPT_PAUSE_MS;
    (void)epoll_ctl(d->ep, EPOLL_CTL_DEL, d->lfd, NULL);
}

static void
accept_resume(crdtnet_daemon *d)
{
    struct epoll_event e;

    if (d->accept_paused_until == 0 || d->lfd < 0 ||
        crdtnet__now_ms() < d->accept_paused_until)
        return;
    memset(&e, 0, sizeof e);
    e.events = EPOLLIN;
    e.data.ptr = &d->lfd;
    (void)epoll_ctl(d->ep, EPOLL_CTL_ADD, d->lfd, &e);
    d->accept_paused_until = 0;
}

/* Accept one connection; 0 when there was none to accept. */
static int
accept_one(crdtnet_daemon *d)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    crdt_replica *reps[CRDTNET_DAEMON_MAX_SPACES];
    size_t n = 0;
    const char *why;
    dconn *c;
    int fd, rc;

    fd = accept4(d->lfd, (struct sockaddr *)&ss, &sl,
                 SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
            errno == ENOMEM) {
            dlogf(d, CRDTNET_LOG_ERROR, "accept: %s", strerror(errno));
            accept_pause(d);
        }
        return 0;
    }
    c = calloc(1, sizeof *c);
    if (c == NULL) {
        refuse(d, fd, "out of memory");
        return 1;
    }
    c->d = d;
    c->fd = fd;
    c->heap_pos = CRDTNET__HEAP_NONE;
    c->t_accept = c->rx_ms = crdtnet__now_ms();
    c->h.authenticated = conn_authenticated;
    c->h.stats = conn_stats;
    c->h.ctx = c;
    c->h.evict = &c->evict;
    c->h.rx_ms = &c->rx_ms;
    set_source(c, &ss);
    pthread_mutex_lock(&d->mu);
    if ((why = make_room(d, c)) != NULL) {
        pthread_mutex_unlock(&d->mu);
        free(c);
        refuse(d, fd, why);
        return 1;
    }
    conn_link(d, c); /* listed before it can finish */
    /* the spaces served when it starts, and the settings in force */
    for (size_t i = 0; i < d->n; i++)
        if (!d->removed[i])
            reps[n++] = d->reps[i];
    c->copts = d->copts;
    c->copts.stop = &c->stop;
    if (CRDTNET__FLAG(d->stop))
        CRDTNET__FLAG_SET(c->stop, 1);
    pthread_mutex_unlock(&d->mu);
    rc = n == 0 ? CRDT_EINVAL
                : crdtnet__conn_accept(&c->cn, fd, reps, n, &c->copts,
                                       &c->h);
    if (rc < 0) { /* the socket is closed */
        if (n == 0)
            close(fd);
        pthread_mutex_lock(&d->mu);
        conn_unlink(d, c);
        pthread_mutex_unlock(&d->mu);
        free(c);
        return 1;
    }
    conn_turn(d, c, 0); /* starts its clock, asks for readiness */
    return 1;
}

/* ---- outgoing peers ----------------------------------------------- */

static void
peer_authenticated(void *ctx)
{
    dpeer *p = ctx;

    p->authed = 1;
}

static crdtnet_space_stats *
peer_stats(crdt_replica *r, void *ctx)
{
    return stats_of(((dpeer *)ctx)->d, r);
}

static long long
jitter(long long ms)
{
    /* between half and the whole delay, so peers do not reconnect in
     * lockstep */
    uint32_t half = (uint32_t)(ms / 2);

    return ms - half + randombytes_uniform(half + 1);
}

static void *
peer_main(void *arg)
{
    dpeer *p = arg;
    crdtnet_daemon *d = p->d;
    crdtnet__conn_hooks h = { peer_authenticated, peer_stats, p, NULL, NULL };
    long long backoff = d->backoff_min, wait;
    crdtnet_report rep;
    int rc;

    while (!CRDTNET__FLAG(d->stop) && !CRDTNET__FLAG(p->stop)) {
        if (crdt_replica_damaged(p->r)) {
            dlogf(d, CRDTNET_LOG_ERROR, "peer %s:%s: not syncing %s any "
                  "more: its replica is damaged", p->host, p->port,
                  crdt_replica_path(p->r));
            break;
        }
        p->authed = 0;
        pthread_mutex_lock(&d->mu); /* the settings in force */
        p->copts = d->copts;
        p->copts.stop = &p->stop;
        pthread_mutex_unlock(&d->mu);
        rc = crdtnet__sync_connect(&rep, p->r, p->host, p->port, &p->copts,
                                   &h);
        if (CRDTNET__FLAG(d->stop) || CRDTNET__FLAG(p->stop))
            break;
        if (p->authed)
            backoff = d->backoff_min; /* it worked; start over */
        if (rc == CRDT_EBUSY) {
            wait = rep.busy_retry_ms ? (long long)rep.busy_retry_ms : 1000;
            if (wait > d->backoff_max)
                wait = d->backoff_max;
        } else {
            wait = jitter(backoff);
            backoff = backoff * 2 > d->backoff_max ? d->backoff_max
                                                   : backoff * 2;
        }
        dlog(d, rc == CRDT_OK ? CRDTNET_LOG_INFO : CRDTNET_LOG_WARN,
             p->where, "%s%s%s; reconnecting in %lld ms",
             rc == CRDT_OK ? "session ended" : crdt_strerror(rc),
              rep.reason[0] && rc != CRDT_OK ? ": " : "",
              rc != CRDT_OK ? rep.reason : "", wait);
        /* in slices, so a removal ends the wait too */
        while (wait > 0 && !CRDTNET__FLAG(p->stop)) {
            if (wait_stop(d, wait > 250 ? 250 : wait))
                break;
            wait -= 250;
        }
    }
    return NULL;
}

/* Under d->mu: start the thread of peer link @p i (if running). */
static int
peer_start(crdtnet_daemon *d, size_t i)
{
    dpeer *p = &d->peers[i];

    if (!d->running || p->started)
        return CRDT_OK;
    CRDTNET__FLAG_SET(p->stop, 0);
    if (pthread_create(&p->th, NULL, peer_main, p) != 0) {
        dlog(d, CRDTNET_LOG_ERROR, p->where,
             "cannot start a thread for this peer");
        return CRDT_ERROR;
    }
    p->started = 1;
    return CRDT_OK;
}

/* Stop the peer links of replica slot @p slot (SIZE_MAX: all of them)
 * and join their threads. The threads are taken under d->mu, so two
 * callers never join one thread. */
static void
peers_end(crdtnet_daemon *d, size_t slot)
{
    pthread_t *ths;
    size_t k = 0, i;

    pthread_mutex_lock(&d->mu);
    ths = malloc((d->n_peers ? d->n_peers : 1) * sizeof *ths);
    for (i = 0; i < d->n_peers; i++) {
        dpeer *p = &d->peers[i];
        if (slot != SIZE_MAX && i / d->n_addrs != slot)
            continue;
        CRDTNET__FLAG_SET(p->stop, 1);
        if (p->started && ths != NULL) {
            ths[k++] = p->th;
            p->started = 0;
        }
    }
    pthread_mutex_unlock(&d->mu);
    for (i = 0; i < k; i++) /* their waits are sliced: about a second */
        pthread_join(ths[i], NULL);
    free(ths);
}

/* ---- the event loop ----------------------------------------------- */

/* Register @p fd for readability, tagged with @p tag. */
static int
watch(crdtnet_daemon *d, int fd, void *tag)
{
    struct epoll_event e;

    memset(&e, 0, sizeof e);
    e.events = EPOLLIN;
    e.data.ptr = tag;
    return epoll_ctl(d->ep, EPOLL_CTL_ADD, fd, &e);
}

/*
 * A commit in a served space (merged from one session, or made by any
 * process): every session of that space runs its live tick and is
 * turned at once, so a change fans out in one pass of the loop instead
 * of on each session's next tick (up to 250 ms later, spread over the
 * sessions). The live tick reads the peer's membership first, so a
 * revoked peer is closed, never sent the commits after its revocation;
 * the regular ticks still run for a commit whose data a read could not
 * see yet.
 */
static void
fan_out(crdtnet_daemon *d, long long now)
{
    crdt_replica *changed[CRDTNET_DAEMON_MAX_SPACES];
    size_t n = __atomic_load_n(&d->n, __ATOMIC_ACQUIRE), k = 0;
    uint64_t t;
    dconn *c;

    /* under mu: a removed space's handle may be closed once it is idle
     * (crdtnet_daemon_space_idle), so only served ones are read */
    pthread_mutex_lock(&d->mu);
    for (size_t i = 0; i < n; i++) {
        if (d->removed[i])
            continue;
        t = crdt_replica_last_txn(d->reps[i]);
        if (t != d->seen_txn[i]) {
            d->seen_txn[i] = t;
            changed[k++] = d->reps[i];
        }
    }
    pthread_mutex_unlock(&d->mu);
    for (c = k > 0 ? d->conns : NULL; c != NULL; c = c->next) {
        if (!c->authed || c->r == NULL)
            continue;
        for (size_t i = 0; i < k; i++)
            if (c->r == changed[i]) {
                crdtnet__conn_poke(c->cn);
                (void)crdtnet__heap_set(&d->timers, c, &c->heap_pos, now);
                break;
            }
    }
}

/* A listener crdtnet_daemon_set_listen() bound replaces ours: new
 * connections come through it from now on; those accepted already are
 * sockets of their own and go on. */
static void
take_listener(crdtnet_daemon *d)
{
    char was[sizeof d->where];
    int fd;

    pthread_mutex_lock(&d->mu);
    fd = d->new_lfd;
    d->new_lfd = -1;
    if (fd >= 0 && CRDTNET__FLAG(d->stop)) { /* no new connections */
        close(fd);
        fd = -1;
    }
    if (fd >= 0) {
        memcpy(was, d->where, sizeof was);
        memcpy(d->where, d->new_where, sizeof d->where);
        __atomic_store_n(&d->port, d->new_port, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&d->mu);
    if (fd < 0)
        return;
    if (d->lfd >= 0) {
        (void)epoll_ctl(d->ep, EPOLL_CTL_DEL, d->lfd, NULL);
        close(d->lfd);
    }
    d->lfd = fd;
    if (d->accept_paused_until == 0 && watch(d, d->lfd, &d->lfd) != 0)
        dlogf(d, CRDTNET_LOG_ERROR, "epoll_ctl: %s", strerror(errno));
    dlogf(d, CRDTNET_LOG_INFO, "listening on %s (was %s)", d->where, was);
}

/* One wake of the loop: wait for readiness or the earliest deadline
 * (at most a second), then turn what is ready and what is due. */
static void
loop_once(crdtnet_daemon *d)
{
    struct epoll_event ev[EVENTS_MAX];
    long long now = crdtnet__now_ms(), due, wait = 1000;
    dconn *c;
    int n, k;

    if (crdtnet__heap_top(&d->timers, &due) != NULL)
        wait = due <= now ? 0 : due - now < wait ? due - now : wait;
    if (d->accept_paused_until != 0 && wait > ACCEPT_PAUSE_MS)
        wait = ACCEPT_PAUSE_MS;
    n = epoll_wait(d->ep, ev, EVENTS_MAX, (int)wait);
    if (n < 0 && errno != EINTR) {
        dlogf(d, CRDTNET_LOG_ERROR, "epoll_wait: %s", strerror(errno));
        (void)wait_stop(d, 100); /* no spin */
    }
    for (k = 0; k < n; k++) {
        void *tag = ev[k].data.ptr;

        if (tag == &d->pipe_r) {
            /* never drained (keeps (2)): out of the set, or it spins */
            (void)epoll_ctl(d->ep, EPOLL_CTL_DEL, d->pipe_r, NULL);
        } else if (tag == &d->wake_fd) {
            uint64_t v;
            (void)!read(d->wake_fd, &v, sizeof v);
            take_listener(d);
        } else if (tag == &d->lfd) {
            for (int i = 0; i < ACCEPT_BURST && !CRDTNET__FLAG(d->stop) &&
                            d->lfd >= 0 && d->accept_paused_until == 0 &&
                            accept_one(d);
                 i++)
                ;
        } else {
            conn_turn(d, tag, from_epoll(ev[k].events));
        }
    }
    accept_resume(d);
    now = crdtnet__now_ms();
    fan_out(d, now);
    for (k = 0; k < TIMERS_BURST &&
                (c = crdtnet__heap_top(&d->timers, &due)) != NULL &&
                due <= now;
         k++)
        conn_turn(d, c, 0);
}

/* ---- run, free ---------------------------------------------------- */

int
crdtnet_daemon_run(crdtnet_daemon *d)
{
    long long now;
    dconn *c;
    size_t i;
    int rc = CRDT_OK;

    if (d == NULL || d->ran)
        return CRDT_EINVAL;
    d->ran = 1;
    dlogf(d, CRDTNET_LOG_INFO,
          "listening on %s for %zu space(s), %zu peer link(s)", d->where,
          d->n, d->n_peers);
    if (watch(d, d->lfd, &d->lfd) != 0 ||
        watch(d, d->pipe_r, &d->pipe_r) != 0 ||
        watch(d, d->wake_fd, &d->wake_fd) != 0) {
        dlogf(d, CRDTNET_LOG_ERROR, "epoll_ctl: %s", strerror(errno));
        return CRDT_ERROR;
    }
    pthread_mutex_lock(&d->mu);
    d->running = 1;
    for (i = 0; i < d->n_peers && !CRDTNET__FLAG(d->stop); i++) {
        if (d->removed[i / (d->n_addrs ? d->n_addrs : 1)])
            continue;
        if (peer_start(d, i) < 0) {
            rc = CRDT_ERROR;
            crdtnet_daemon_stop(d);
            break;
        }
    }
    pthread_mutex_unlock(&d->mu);
    while (!CRDTNET__FLAG(d->stop))
        loop_once(d);
    dlogf(d, CRDTNET_LOG_INFO, "stopping");
    if (d->accept_paused_until == 0)
        (void)epoll_ctl(d->ep, EPOLL_CTL_DEL, d->lfd, NULL);
    close(d->lfd); /* no new connection completes from now on */
    d->lfd = -1;
    /* every connection and link has its own stop flag */
    pthread_mutex_lock(&d->mu);
    d->running = 0;
    for (c = d->conns; c != NULL; c = c->next)
        CRDTNET__FLAG_SET(c->stop, 1);
    pthread_mutex_unlock(&d->mu);
    now = crdtnet__now_ms();
    for (c = d->conns; c != NULL; c = c->next) /* (5): ours to read */
        (void)crdtnet__heap_set(&d->timers, c, &c->heap_pos, now);
    /* each ends within a second of its stop flag (conn.c's linger) */
    while (d->conns != NULL)
        loop_once(d);
    peers_end(d, SIZE_MAX);
    dlogf(d, CRDTNET_LOG_INFO, "stopped");
    return rc;
}

void
crdtnet_daemon_free(crdtnet_daemon *d)
{
    if (d == NULL)
        return;
    if (d->lfd >= 0)
        close(d->lfd);
    if (d->new_lfd >= 0)
        close(d->new_lfd);
    close(d->pipe_r);
    close(d->pipe_w);
    close(d->ep);
    close(d->wake_fd);
    free(d->rbuf);
    crdtnet__heap_free(&d->timers);
    pthread_mutex_destroy(&d->mu);
    free(d->peers);
    free(d->seen_txn);
    free(d->removed);
    free(d->removed_at);
    free(d->sids);
    free(d->stats);
    free(d->reps);
    free(d);
}

/* ---- changes while running: spaces and settings -------------------- */

/* Under d->mu: 1 if a session or link may still read slot @p slot's
 * handle: one that picked its space, or one still in its handshake that
 * began while the space was served (it may pick it yet). The slot's
 * links were joined when it was removed. */
static int
slot_in_use(crdtnet_daemon *d, size_t slot)
{
    for (dconn *c = d->conns; c != NULL; c = c->next)
        if (c->r == d->reps[slot] ||
            (c->r == NULL && c->born <= d->removed_at[slot]))
            return 1;
    return 0;
}

int
crdtnet_daemon_add_space(crdtnet_daemon *d, crdt_replica *r)
{
    unsigned char a[CRDT_SPACE_ID_BYTES];
    size_t i, slot;
    int rc = CRDT_OK;

    if (d == NULL || r == NULL)
        return CRDT_EINVAL;
    crdt_replica_space_id(r, a);
    pthread_mutex_lock(&d->mu);
    /* one slot per space: this handle's, or the one its space had */
    for (i = 0, slot = d->n; i < d->n && slot == d->n; i++)
        if (d->reps[i] == r || memcmp(a, d->sids[i], sizeof a) == 0)
            slot = i;
    if (slot < d->n && !d->removed[slot]) {
        pthread_mutex_unlock(&d->mu);
        return CRDT_EEXISTS;
    }
    if (slot < d->n && d->reps[slot] != r) { /* another handle of it */
        if (slot_in_use(d, slot)) {
            pthread_mutex_unlock(&d->mu);
            return CRDT_EBUSY;
        }
        __atomic_store_n(&d->reps[slot], r, __ATOMIC_RELEASE);
        for (i = 0; i < d->n_addrs; i++)
            d->peers[slot * d->n_addrs + i].r = r;
    }
    if (slot == d->n) {
        if (d->n == CRDTNET_DAEMON_MAX_SPACES) {
            pthread_mutex_unlock(&d->mu);
            return CRDT_ELIMIT;
        }
        d->reps[slot] = r;
        memcpy(d->sids[slot], a, sizeof a);
        for (i = 0; i < d->n_addrs; i++) { /* its links, as new() makes */
            dpeer *p = &d->peers[slot * d->n_addrs + i], *q = &d->peers[i];
            memset(p, 0, sizeof *p);
            p->d = d;
            p->r = r;
            memcpy(p->host, q->host, sizeof p->host);
            memcpy(p->port, q->port, sizeof p->port);
            memcpy(p->where, q->where, sizeof p->where);
        }
        d->n_peers = (slot + 1) * d->n_addrs;
        __atomic_store_n(&d->n, slot + 1, __ATOMIC_RELEASE);
    }
    d->removed[slot] = 0;
    for (i = 0; i < d->n_addrs && !CRDTNET__FLAG(d->stop) && rc == CRDT_OK;
         i++)
        rc = peer_start(d, slot * d->n_addrs + i);
    pthread_mutex_unlock(&d->mu);
    return rc;
}

int
crdtnet_daemon_set_listen(crdtnet_daemon *d, const char *host,
                          const char *port)
{
    char where[sizeof d->where];
    uint64_t one = 1;
    int fd, p, rc;

    if (d == NULL || port == NULL)
        return CRDT_EINVAL;
    rc = open_listener(d, host, port, &fd, &p, where, sizeof where);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&d->mu);
    if (d->new_lfd >= 0) /* an earlier one the loop has not taken */
        close(d->new_lfd);
    d->new_lfd = fd;
    d->new_port = p;
    memcpy(d->new_where, where, sizeof where);
    pthread_mutex_unlock(&d->mu);
    (void)!write(d->wake_fd, &one, sizeof one);
    return CRDT_OK;
}

int
crdtnet_daemon_space_idle(crdtnet_daemon *d, crdt_replica *r)
{
    size_t slot;
    int rc;

    if (d == NULL || r == NULL)
        return CRDT_EINVAL;
    pthread_mutex_lock(&d->mu);
    for (slot = 0; slot < d->n && d->reps[slot] != r; slot++)
        ;
    if (slot == d->n)
        rc = CRDT_ENOTFOUND;
    else if (!d->removed[slot])
        rc = CRDT_EINVAL;
    else
        rc = slot_in_use(d, slot) ? CRDT_EBUSY : CRDT_OK;
    pthread_mutex_unlock(&d->mu);
    return rc;
}

int
crdtnet_daemon_remove_space(crdtnet_daemon *d, crdt_replica *r)
{
    size_t slot;
    dconn *c;

    if (d == NULL || r == NULL)
        return CRDT_EINVAL;
    pthread_mutex_lock(&d->mu);
    for (slot = 0; slot < d->n && d->reps[slot] != r; slot++)
        ;
    if (slot == d->n || d->removed[slot]) {
        pthread_mutex_unlock(&d->mu);
        return CRDT_ENOTFOUND;
    }
    d->removed[slot] = 1; /* new handshakes: not served */
    d->removed_at[slot] = d->conn_seq;
    for (c = d->conns; c != NULL; c = c->next)
        if (c->r == r)
            CRDTNET__FLAG_SET(c->stop, 1); /* ends with its final message */
    pthread_mutex_unlock(&d->mu);
    peers_end(d, slot);
    return CRDT_OK;
}

int
crdtnet_daemon_set_peers(crdtnet_daemon *d, const char *const *peers,
                         size_t n_peers)
{
    dpeer *np = NULL, *old;
    size_t i, j;
    int rc = CRDT_OK;

    if (d == NULL || (n_peers > 0 && peers == NULL))
        return CRDT_EINVAL;
    if (n_peers > CRDTNET_DAEMON_MAX_PEERS)
        return CRDT_ELIMIT;
    if (n_peers > 0 &&
        (np = calloc(n_peers * CRDTNET_DAEMON_MAX_SPACES, sizeof *np)) ==
            NULL)
        return CRDT_ENOMEM;
    for (i = 0; i < n_peers; i++) { /* the addresses, in slot 0's place */
        dpeer *p = &np[i];
        if (crdtnet_split_hostport(p->host, sizeof p->host, p->port,
                                   sizeof p->port, peers[i]) != CRDT_OK) {
            free(np);
            return CRDT_EINVAL;
        }
        snprintf(p->where, sizeof p->where, "%s%s%s:%s",
                 strchr(p->host, ':') ? "[" : "", p->host,
                 strchr(p->host, ':') ? "]" : "", p->port);
    }
    peers_end(d, SIZE_MAX); /* every link ends; the new set starts */
    pthread_mutex_lock(&d->mu);
    if (CRDTNET__FLAG(d->stop)) {
        pthread_mutex_unlock(&d->mu);
        free(np);
        return CRDT_ECLOSED;
    }
    for (j = d->n; j-- > 0;) /* slot j's links; slot 0's last */
        for (i = 0; i < n_peers; i++) {
            dpeer *p = &np[j * n_peers + i];
            if (j > 0)
                memcpy(p, &np[i], sizeof *p);
            p->d = d;
            p->r = d->reps[j];
            p->started = 0;
        }
    old = d->peers;
    d->peers = np;
    d->n_addrs = n_peers;
    d->n_peers = d->n * n_peers;
    for (i = 0; i < d->n_peers && rc == CRDT_OK; i++)
        if (!d->removed[i / n_peers])
            rc = peer_start(d, i);
    pthread_mutex_unlock(&d->mu);
    free(old); /* its threads were joined above */
    return rc;
}

int
crdtnet_daemon_set_options(crdtnet_daemon *d,
                           const crdtnet_daemon_options *o)
{
    if (d == NULL || o == NULL)
        return CRDT_EINVAL;
    pthread_mutex_lock(&d->mu);
    d->max_conns =
        o->max_conns ? o->max_conns : CRDTNET_DAEMON_MAX_CONNS_DEFAULT;
    d->max_hs = o->max_handshakes ? o->max_handshakes : 128;
    d->max_per_addr =
        o->max_handshakes_per_addr ? o->max_handshakes_per_addr : 32;
    d->copts.policy = o->conn.policy;
    d->copts.idle_timeout_ms = o->conn.idle_timeout_ms;
    d->copts.handshake_timeout_ms = o->conn.handshake_timeout_ms;
    d->copts.batch_bytes = o->conn.batch_bytes;
    pthread_mutex_unlock(&d->mu);
    return CRDT_OK;
}
