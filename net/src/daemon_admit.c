/*
 * daemon_admit.c: the daemon's accepted connections: admission (the
 * limits of daemon.c (1), and the eviction of the idlest handshake to
 * make room), the epoll set and the timer heap of each, and its turns.
 * Only the loop's thread runs this (daemon.c (5)).
 */
#define _GNU_SOURCE /* accept4, pipe2 */
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
    return crdtnet__space_stats_of(c->d, r);
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

int
crdtnet__poll_of_epoll(uint32_t ev)
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

void
crdtnet__dconn_turn(crdtnet_daemon *d, dconn *c, int revents)
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

void
crdtnet__accept_resume(crdtnet_daemon *d)
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
int
crdtnet__accept_one(crdtnet_daemon *d)
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
    crdtnet__dconn_turn(d, c, 0); /* starts its clock, asks for readiness */
    return 1;
}
