/*
 * daemon.c: the sync daemon (crdtnet/daemon.h): accept connections and
 * keep live sessions with configured peers. Accepted connections share
 * one event loop (epoll); each configured peer link has its own thread.
 * This file: the daemon's life (new, run, stop, free), its listener,
 * counters and event loop; daemon_admit.c the accepted connections,
 * daemon_peers.c the peer links' threads, daemon_spaces.c the changes
 * while it runs; daemon_int.h the state they share.
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

#include "daemon_int.h"

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

void
crdtnet__dlog(crdtnet_daemon *d, int level, const char *peer, const char *fmt,
              ...)
{
    char line[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    daemon_event(level, peer, line, d);
}

/* Wait up to @p ms or until stop; 1 if stopping (keeps (2)). */
int
crdtnet__wait_stop(crdtnet_daemon *d, long long ms)
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
int
crdtnet__open_listener(crdtnet_daemon *d, const char *host, const char *port,
                       int *fd_out, int *port_out, char *where,
                       size_t where_len)
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

    rc = crdtnet__open_listener(d, host, port, &d->lfd, &p, d->where,
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

crdtnet_space_stats *
crdtnet__space_stats_of(crdtnet_daemon *d, crdt_replica *r)
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
        (void)crdtnet__wait_stop(d, 100); /* no spin */
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
            for (int i = 0;
                 i < ACCEPT_BURST && !CRDTNET__FLAG(d->stop) && d->lfd >= 0 &&
                 d->accept_paused_until == 0 && crdtnet__accept_one(d);
                 i++)
                ;
        } else {
            crdtnet__dconn_turn(d, tag, crdtnet__poll_of_epoll(ev[k].events));
        }
    }
    crdtnet__accept_resume(d);
    now = crdtnet__now_ms();
    fan_out(d, now);
    for (k = 0; k < TIMERS_BURST &&
                (c = crdtnet__heap_top(&d->timers, &due)) != NULL &&
                due <= now;
         k++)
        crdtnet__dconn_turn(d, c, 0);
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
        if (crdtnet__peer_start(d, i) < 0) {
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
    crdtnet__peers_end(d, SIZE_MAX);
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

