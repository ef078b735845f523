/*
 * conn.c: one sync connection over TCP, driven either by its own thread
 * with poll() timeouts (crdtnet_sync_connect, crdtnet_serve_conn) or by
 * the daemon's event loop one turn at a time (crdtnet__conn_turn): the
 * socket and the clock around a crdtnet_peer (peer.c),
 * which does the framing, the handshake, the channel and the session,
 * exactly as for any other transport (docs/protocol.md, "Sessions over
 * TCP"). What this file adds: reading and writing the socket, the
 * deadlines (handshake, idle, write, stop), keepalives and the live
 * tick, the log lines' peer address, and the daemon's hooks.
 *
 * Invariants:
 *  (1) One piece of output at a time: the next is asked of the peer only
 *      once the previous one is fully written; reading goes on while it
 *      is written (the peer allows it), so two sides that both send
 *      megabytes never wait on each other.
 *  (2) Until the peer is authenticated, a read is at most one handshake
 *      frame long, and the only heap memory held for it is the peer's
 *      (its framer, handshake and state: a few KiB).
 *  (3) Every wait is a poll() of at most TICK_MS, so the stop flag is
 *      seen within 250 ms and every deadline is checked at least that
 *      often; no loop spins without a poll or progress.
 *  (4) We close only after our FINAL is written and the peer's FINAL or
 *      EOF was read (or a deadline passed), so unread data never turns
 *      our close into a reset that could cost the peer our last message.
 *  (5) Live: the peer's clock (crdtnet_peer_tick) runs on every wake
 *      and wakes us when it is due, at least every TICK_MS: new
 *      commits by any process are pushed, and a peer whose membership
 *      was revoked is closed within TICK_MS of the commit.
 *  (6) A turn reads at most one buffer (64 KiB; one handshake frame
 *      before authentication) and writes at most TURN_OUT_BYTES, so a
 *      connection that merges or sends a lot (a snapshot) shares an
 *      event loop fairly with thousands of idle ones: what is left waits
 *      for the next turn (level-triggered readiness brings it back).
 *  (7) A turn on a timer with no output in flight frees the peer's
 *      message buffers (crdtnet__peer_trim): an idle live session holds
 *      its state, not the buffers of its largest message so far.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "crdtnet/conn.h"
#include "crdtnet/frame.h"
#include "crdtnet/handshake.h"
#include "crdtnet/peer.h"
#include "io_internal.h"
#include "peer_internal.h"

#define TICK_MS 250
#define STOP_LINGER_MS 1000
#define RBUF_BYTES ((size_t)64 * 1024)
#define ADDR_MAX 96
#define TURN_OUT_BYTES ((size_t)256 * 1024)

struct crdtnet__conn {
    int fd;
    crdtnet_peer *p;
    /* settings, defaults resolved */
    int live, hs_ms, idle_ms;
    volatile sig_atomic_t *stop;
    crdtnet_log_fn log;
    crdtnet_log_event_fn log_event;
    void *log_ctx;
    void (*progress)(const crdtnet_report *rep, void *ctx);
    void *progress_ctx;
    const crdtnet__conn_hooks *hooks;
    /* the piece being written (keeps (1)) */
    const unsigned char *out;
    size_t out_len, out_off;
    /* closing */
    int eof, eof_told, shut_wr, stopping;
    /* clocks (ms) */
    long long t_start, t_rx, t_tx, t_wprog, t_stop;
    uint64_t t_peer; /* when crdtnet_peer_tick() wants to run again */
    int more; /* the output budget of a turn ran out (keeps (6)) */
    crdtnet__peer_hooks ph;
    char addr[ADDR_MAX];
};
typedef struct crdtnet__conn conn;

long long
crdtnet__now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the peer's hooks --------------------------------------------- */

/* One event about this connection's peer: structured if the caller
 * asked for events, else the line "ADDR: MESSAGE". */
static void
on_log(int level, const char *msg, void *ctx)
{
    conn *c = ctx;
    char line[600];

    if (c->log_event != NULL) {
        c->log_event(level, c->addr, msg, c->log_ctx);
        return;
    }
    snprintf(line, sizeof line, "%s: %s", c->addr, msg);
    c->log(line, c->log_ctx);
}

static void
on_authenticated(void *ctx)
{
    conn *c = ctx;

    if (c->hooks != NULL && c->hooks->authenticated != NULL)
        c->hooks->authenticated(c->hooks->ctx);
}

static crdtnet_space_stats *
on_stats(crdt_replica *r, void *ctx)
{
    conn *c = ctx;

    return c->hooks != NULL && c->hooks->stats != NULL
               ? c->hooks->stats(r, c->hooks->ctx)
               : NULL;
}

static void
on_progress(const crdtnet_report *rep, void *ctx)
{
    conn *c = ctx;

    c->progress(rep, c->progress_ctx);
}

/* ---- the loop ----------------------------------------------------- */

static int
pending(const conn *c)
{
    return c->out != NULL;
}

static int
phase(const conn *c)
{
    return crdtnet__peer_phase(c->p);
}

/*
 * A failure this loop detected (timeout, socket error, eviction): the
 * peer says goodbye if it can (@p hard 0: a session's FINAL carries the
 * error), else ends at once; then a piece still being written is
 * dropped, as nobody will read it. @p code 0: end without a failure.
 */
static void
give_up(conn *c, int hard, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
give_up(conn *c, int hard, int code, const char *fmt, ...)
{
    char why[CRDTNET_REASON_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    if (hard)
        crdtnet__peer_kill(c->p, code, "%s", why);
    else
        crdtnet__peer_fail(c->p, code, "%s", why);
    if (phase(c) == CRDTNET__PEER_DONE)
        c->out = NULL;
}

/* Ask the peer for the next piece to write, if none is pending. */
static void
next_piece(conn *c, long long now)
{
    if (pending(c))
        return;
    if (c->eof && !c->eof_told && crdtnet__peer_final_sent(c->p)) {
        /* our FINAL is out: now the EOF read earlier ends the peer */
        c->eof_told = 1;
        crdtnet_peer_eof(c->p);
    }
    if (crdtnet_peer_next_out(c->p, &c->out, &c->out_len) == CRDT_OK) {
        c->out_off = 0;
        c->t_wprog = now;
        return;
    }
    c->out = NULL;
    if (crdtnet__peer_final_sent(c->p) && !c->shut_wr) {
        shutdown(c->fd, SHUT_WR);
        c->shut_wr = 1;
    }
}

static void
do_write(conn *c, long long now)
{
    ssize_t w;

    while (pending(c)) {
        w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
                 MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            give_up(c, 1, CRDT_EIO, "send: %s", strerror(errno));
            return;
        }
        c->t_wprog = c->t_tx = now;
        c->out_off += (size_t)w;
        if (c->out_off == c->out_len)
            c->out = NULL;
    }
}

static void
do_read(conn *c, unsigned char *buf, size_t size, long long now)
{
    ssize_t r;

    r = recv(c->fd, buf, size, MSG_DONTWAIT);
    if (r < 0) {
        if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
            return;
        give_up(c, 1, CRDT_EIO, "recv: %s", strerror(errno));
        return;
    }
    if (r == 0) {
        c->eof = 1;
        /* CLOSING goes on until our FINAL is out (keeps (4)) */
        if (phase(c) == CRDTNET__PEER_CLOSING &&
            crdtnet__peer_final_sent(c->p)) {
            c->eof_told = 1;
            crdtnet_peer_eof(c->p); /* our FINAL, if pending, goes on */
        } else if (phase(c) != CRDTNET__PEER_CLOSING) {
            c->eof_told = 1;
            crdtnet_peer_eof(c->p);
            c->out = NULL; /* nobody reads it */
        }
        return;
    }
    c->t_rx = now;
    if (c->hooks != NULL && c->hooks->rx_ms != NULL)
        __atomic_store_n(c->hooks->rx_ms, now, __ATOMIC_RELAXED);
    (void)crdtnet_peer_feed(c->p, buf, (size_t)r);
}

static void
check_timers(conn *c, long long now)
{
    int ph;

    if (c->stop != NULL && CRDTNET__FLAG(*c->stop) != 0 && !c->stopping) {
        c->stopping = 1;
        c->t_stop = now;
        crdtnet_peer_stop(c->p);
        if (phase(c) == CRDTNET__PEER_DONE)
            c->out = NULL; /* stopped in the handshake */
    }
    if (c->stopping && now - c->t_stop >= STOP_LINGER_MS)
        give_up(c, 1, 0, "stopped");
    ph = phase(c);
    if (ph == CRDTNET__PEER_HS && c->hooks != NULL &&
        c->hooks->evict != NULL &&
        __atomic_load_n(c->hooks->evict, __ATOMIC_RELAXED))
        give_up(c, 0, CRDT_EIO, "evicted: the oldest handshake in progress "
                "while the daemon was full");
    if (ph == CRDTNET__PEER_HS && now - c->t_start >= c->hs_ms)
        give_up(c, 0, CRDT_EIO, "handshake timed out after %d ms", c->hs_ms);
    if (ph == CRDTNET__PEER_FLUSH && now - c->t_wprog >= STOP_LINGER_MS)
        give_up(c, 1, 0, "error frame not taken");
    if (pending(c) && now - c->t_wprog >= c->idle_ms)
        give_up(c, 1, CRDT_EIO, "write timed out");
    ph = phase(c);
    if ((ph == CRDTNET__PEER_SESSION || ph == CRDTNET__PEER_CLOSING) &&
        now - c->t_rx >= c->idle_ms)
        give_up(c, 0, CRDT_EIO, "idle timeout (%d ms)", c->idle_ms);
    /* keepalives, live pushes, revocation; keeps (5) */
    c->t_peer = crdtnet_peer_tick(c->p, (uint64_t)now);
    if (phase(c) == CRDTNET__PEER_DONE)
        c->out = NULL;
}

static int
poll_timeout(const conn *c, long long now)
{
    long long t = TICK_MS, left;
    int ph = phase(c);

    if (ph == CRDTNET__PEER_HS) {
        left = c->t_start + c->hs_ms - now;
        if (left < t)
            t = left;
    }
    if (c->t_peer != UINT64_MAX) {
        left = (long long)c->t_peer - now;
        if (left < t)
            t = left;
    }
    return t < 0 ? 0 : (int)t;
}

/*
 * Write what the peer has, at most TURN_OUT_BYTES of it per turn
 * (keeps (6)): a piece is asked for only once the last one is written,
 * and asking may seal a session message (an export, a snapshot slice),
 * so one connection never holds an event loop for longer than that.
 */
static void
flush_out(conn *c, long long now)
{
    size_t budget = TURN_OUT_BYTES;

    c->more = 0;
    for (;;) {
        if (budget == 0 && !pending(c)) {
            c->more = 1; /* ask for the next piece on the next turn */
            return;
        }
        next_piece(c, now);
        if (!pending(c))
            return;
        budget = c->out_len - c->out_off >= budget
                     ? 0
                     : budget - (c->out_len - c->out_off);
        do_write(c, now);
        if (pending(c))
            return; /* the socket is full: wait until writable */
    }
}

void
crdtnet__conn_turn(crdtnet__conn *c, int revents, unsigned char *rbuf,
                   size_t rsize, long long now)
{
    if (revents & (POLLOUT | POLLERR))
        do_write(c, now);
    if (!crdtnet_peer_done(c->p) && !c->eof &&
        (revents & (POLLIN | POLLHUP | POLLERR)))
        do_read(c, rbuf,
                phase(c) == CRDTNET__PEER_HS
                    ? CRDTNET_FRAME_HEADER_BYTES + CRDTNET_HS_MSG_MAX
                    : rsize,
                now);
    check_timers(c, now);
    flush_out(c, now);
    /* a timer turn with nothing in flight: the peer's message buffers
     * go until the next message (keeps an idle session small, (7)) */
    if (revents == 0 && !pending(c) && !c->more)
        crdtnet__peer_trim(c->p);
    /* all sent, about to wait for the peer: work ahead (a session of
     * protocol 4 reads its heads for HELLO while the peer builds its
     * own) */
    if (!pending(c) && !c->more)
        crdtnet__peer_idle(c->p);
}

void
crdtnet__conn_poke(crdtnet__conn *c)
{
    /* the live tick, not a bare poke: the peer's membership is read
     * again before anything new is queued for it (revocation) */
    crdtnet__peer_tick(c->p);
}

int
crdtnet__conn_done(const crdtnet__conn *c)
{
    return !pending(c) && crdtnet_peer_done(c->p);
}

int
crdtnet__conn_events(const crdtnet__conn *c)
{
    int ev = 0;

    if (crdtnet__conn_done(c))
        return 0;
    if (!c->eof)
        ev |= POLLIN;
    if (pending(c) || c->more)
        ev |= POLLOUT;
    return ev;
}

long long
crdtnet__conn_due(const crdtnet__conn *c, long long now)
{
    return now + poll_timeout(c, now);
}

static void
run(conn *c)
{
    /* (2): the read buffer is on this thread's stack; until the peer is
     * authenticated, reads are at most one handshake frame long. */
    unsigned char rbuf[RBUF_BYTES];
    struct pollfd pfd;
    long long now;
    int rc, revents = 0;

    for (;;) {
        now = crdtnet__now_ms();
        crdtnet__conn_turn(c, revents, rbuf, sizeof rbuf, now);
        revents = 0;
        if (crdtnet__conn_done(c))
            break;
        pfd.fd = c->fd;
        pfd.events = (short)crdtnet__conn_events(c);
        pfd.revents = 0;
        rc = poll(&pfd, 1, c->more ? 0 : poll_timeout(c, now)); /* (3) */
        if (rc < 0 && errno != EINTR) {
            give_up(c, 1, CRDT_EIO, "poll: %s", strerror(errno));
            break;
        }
        if (rc > 0)
            revents = pfd.revents;
    }
}

/* Copy @p src into @p dst, cut to fit, always NUL-terminated. */
static void
copy_str(char *dst, size_t size, const char *src)
{
    size_t n = strlen(src);

    if (n >= size)
        n = size - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* A connection on @p fd with a new peer (@p fd is closed on failure). */
static int
conn_new(conn **out, int fd, crdt_replica *const *reps, size_t n,
         crdtnet_hs_role role, const char *addr,
         const crdtnet_conn_options *o, const crdtnet__conn_hooks *h)
{
    crdtnet_peer_options po = CRDTNET_PEER_OPTIONS_INIT;
    conn *c;
    int rc;

    if ((c = calloc(1, sizeof *c)) == NULL) {
        close(fd);
        return CRDT_ENOMEM;
    }
    c->fd = fd;
    c->hooks = h;
    copy_str(c->addr, sizeof c->addr, addr);
    if (o != NULL) {
        c->live = o->live;
        c->hs_ms = o->handshake_timeout_ms;
        c->idle_ms = o->idle_timeout_ms;
        c->stop = o->stop;
        c->log = o->log;
        c->log_event = o->log_event;
        c->log_ctx = o->log_ctx;
        c->progress = o->progress;
        c->progress_ctx = o->progress_ctx;
        po.policy = o->policy;
        po.batch_bytes = o->batch_bytes;
        po.plain_changes = o->plain_changes;
        po.no_tofu = o->no_tofu;
        po.live = o->live;
        po.handshake_timeout_ms = o->handshake_timeout_ms;
        po.idle_timeout_ms = o->idle_timeout_ms;
    }
    if (c->hs_ms <= 0)
        c->hs_ms = 10000;
    if (c->idle_ms <= 0)
        c->idle_ms = 30000;
    rc = crdtnet_peer_new(&c->p, reps, n, role, &po);
    if (rc < 0) {
        close(fd);
        free(c);
        return rc;
    }
    c->ph.authenticated = on_authenticated;
    c->ph.stats = on_stats;
    if (c->log != NULL || c->log_event != NULL)
        c->ph.log = on_log;
    if (c->progress != NULL)
        c->ph.progress = on_progress;
    c->ph.ctx = c;
    crdtnet__peer_set_hooks(c->p, &c->ph);
    c->t_start = c->t_rx = c->t_tx = c->t_wprog = crdtnet__now_ms();
    *out = c;
    return CRDT_OK;
}

int
crdtnet__conn_end(crdtnet__conn *c, crdtnet_report *out)
{
    int rc;

    if (c == NULL)
        return CRDT_EINVAL;
    rc = crdtnet__peer_finish(c->p, out);
    crdtnet_peer_free(c->p);
    close(c->fd);
    free(c);
    return rc;
}

/* Run the connection on @p fd with a new peer; closes @p fd. */
static int
conn_run(int fd, crdt_replica *const *reps, size_t n, crdtnet_hs_role role,
         const char *addr, const crdtnet_conn_options *o,
         const crdtnet__conn_hooks *h, crdtnet_report *out)
{
    conn *c;
    int rc;

    rc = conn_new(&c, fd, reps, n, role, addr, o, h);
    if (rc < 0)
        return rc;
    run(c);
    return crdtnet__conn_end(c, out);
}

static void
set_nodelay(int fd)
{
    int one = 1;

    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void
peer_addr(char *buf, size_t size, int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char host[INET6_ADDRSTRLEN];

    snprintf(buf, size, "peer");
    if (getpeername(fd, (struct sockaddr *)&ss, &len) != 0)
        return;
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;

        if (inet_ntop(AF_INET, &a->sin_addr, host, sizeof host))
            snprintf(buf, size, "%s:%u", host, ntohs(a->sin_port));
    } else if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

        if (inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host))
            snprintf(buf, size, "[%s]:%u", host, ntohs(a->sin6_port));
    }
}

/* ---- server ------------------------------------------------------- */

int
crdtnet__serve_conn(int fd, crdt_replica *const *replicas, size_t n,
                    const crdtnet_conn_options *opts, crdtnet_report *out,
                    const crdtnet__conn_hooks *h)
{
    char addr[ADDR_MAX];

    if (out != NULL)
        memset(out, 0, sizeof *out);
    if (fd < 0 || replicas == NULL || n == 0) {
        if (fd >= 0)
            close(fd);
        return CRDT_EINVAL;
    }
    set_nodelay(fd);
    peer_addr(addr, sizeof addr, fd);
    /* The handshake is created when the hello arrives (keeps (2)). */
    return conn_run(fd, replicas, n, CRDTNET_HS_SERVER, addr, opts, h, out);
}

int
crdtnet__conn_accept(crdtnet__conn **out, int fd,
                     crdt_replica *const *replicas, size_t n,
                     const crdtnet_conn_options *opts,
                     const crdtnet__conn_hooks *h)
{
    char addr[ADDR_MAX];
    int fl;

    if (out == NULL || fd < 0 || replicas == NULL || n == 0) {
        if (fd >= 0)
            close(fd);
        return CRDT_EINVAL;
    }
    fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0) {
        close(fd);
        return CRDT_EIO;
    }
    set_nodelay(fd);
    peer_addr(addr, sizeof addr, fd);
    return conn_new(out, fd, replicas, n, CRDTNET_HS_SERVER, addr, opts, h);
}

int
crdtnet_serve_conn(int fd, crdt_replica *const *replicas, size_t n,
                   const crdtnet_conn_options *opts, crdtnet_report *out)
{
    return crdtnet__serve_conn(fd, replicas, n, opts, out, NULL);
}

/* ---- client ------------------------------------------------------- */

/* Connect with a deadline, trying each address in turn. */
static int
dial(int *fd_out, const char *host, const char *port, int timeout_ms,
     volatile sig_atomic_t *stop, char *why, size_t why_size)
{
    struct addrinfo hints, *res = NULL, *ai;
    long long deadline = crdtnet__now_ms() + timeout_ms;
    int fd = -1, rc, err = 0;

    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    /* an address written as numbers needs no lookup: without
     * AI_ADDRCONFIG, which asks the kernel for the host's addresses
     * (netlink) and loads the name service first, about 0.5 ms of a
     * loopback sync */
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    rc = getaddrinfo(host, port, &hints, &res);
    if (rc == EAI_NONAME) {
        hints.ai_flags = AI_ADDRCONFIG;
        rc = getaddrinfo(host, port, &hints, &res);
    }
    if (rc != 0) {
        snprintf(why, why_size, "cannot resolve %s:%s: %s", host, port,
                 gai_strerror(rc));
        return CRDT_EIO;
    }
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC |
                                       SOCK_NONBLOCK,
                    ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        err = errno;
        if (err == EINPROGRESS) {
            struct pollfd pfd = { fd, POLLOUT, 0 };
            socklen_t len = sizeof err;
            long long left;

            err = ETIMEDOUT;
            for (;;) {
                left = deadline - crdtnet__now_ms();
                if (left <= 0 || (stop != NULL && CRDTNET__FLAG(*stop)))
                    break;
                rc = poll(&pfd, 1, left < TICK_MS ? (int)left : TICK_MS);
                if (rc < 0 && errno != EINTR) {
                    err = errno;
                    break;
                }
                if (rc > 0) {
                    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) !=
                        0)
                        err = errno;
                    break;
                }
            }
            if (err == 0)
                break;
        }
        close(fd);
        fd = -1;
        if (crdtnet__now_ms() >= deadline ||
            (stop != NULL && CRDTNET__FLAG(*stop)))
            break;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        snprintf(why, why_size, "cannot connect to %s:%s: %s", host, port,
                 err ? strerror(err) : "no address");
        return CRDT_EIO;
    }
    /* Blocking again; every call uses MSG_DONTWAIT after poll(). */
    (void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    set_nodelay(fd);
    *fd_out = fd;
    return CRDT_OK;
}

int
crdtnet__sync_connect(crdtnet_report *out, crdt_replica *r,
                      const char *host, const char *port,
                      const crdtnet_conn_options *opts,
                      const crdtnet__conn_hooks *h)
{
    char why[CRDTNET_REASON_MAX], addr[ADDR_MAX];
    int fd = -1, rc, cto;

    if (out != NULL)
        memset(out, 0, sizeof *out);
    if (r == NULL || host == NULL || port == NULL)
        return CRDT_EINVAL;
    cto = opts != NULL && opts->connect_timeout_ms > 0
              ? opts->connect_timeout_ms
              : 10000;
    why[0] = '\0';
    rc = dial(&fd, host, port, cto, opts ? opts->stop : NULL, why,
              sizeof why);
    if (rc < 0) {
        if (out != NULL)
            copy_str(out->reason, sizeof out->reason, why);
        return rc;
    }
    snprintf(addr, sizeof addr, "%s%s%s:%s", strchr(host, ':') ? "[" : "",
             host, strchr(host, ':') ? "]" : "", port);
    return conn_run(fd, &r, 1, CRDTNET_HS_CLIENT, addr, opts, h, out);
}

int
crdtnet_sync_connect(crdtnet_report *out, crdt_replica *r, const char *host,
                     const char *port, const crdtnet_conn_options *opts)
{
    return crdtnet__sync_connect(out, r, host, port, opts, NULL);
}
