/*
 * conn.c: one sync connection over TCP, driven by one thread with poll()
 * timeouts. Frames carry the handshake, then sealed session messages
 * (docs/protocol.md, "Sessions over TCP").
 *
 *   HS --hs done--> SESSION --session over / peer FINAL / error / stop-->
 *    |                                CLOSING --our FINAL written, then
 *    |                                          peer FINAL or EOF--> DONE
 *    +--hs failed--> FLUSH (send its error frame) --> DONE
 *    +--timeout, EOF, bad frame--> DONE
 *
 * Invariants:
 *  (1) Output is one frame at a time, in order: the handshake's frames
 *      all go out before the first channel frame, and the next session
 *      message is pulled (and sealed) only when the previous one is fully
 *      written. Memory for output is one sealed message, never a queue.
 *  (2) Before the handshake is done the framer's maximum is
 *      CRDTNET_HS_MSG_MAX, and the only heap memory held for the peer is
 *      the framer and the handshake (about 2 KiB): the connection state
 *      and read buffer live on this thread's stack.
 *  (3) Nothing from the peer reaches the session before the handshake
 *      authenticated it as a member; nothing of ours is sealed before.
 *  (4) Every wait is a poll() of at most TICK_MS, so the stop flag is
 *      seen within 250 ms and every deadline is checked at least that
 *      often; no loop spins without a poll or progress.
 *  (5) We close only after our FINAL is written and the peer's FINAL or
 *      EOF was read (or a deadline passed), so unread data never turns
 *      our close into a reset that could cost the peer our last message.
 *  (6) Live: a commit seen through crdt_replica_last_txn() is pushed: the
 *      session is poked on the tick that sees the new id and once more on
 *      the next, since the id can be visible a moment before the data.
 *  (7) Revocation: on every tick that sees a new commit (by any process
 *      or session), the peer's role is read again; a peer that lost it
 *      (removed, docs/security.md) gets an authentication error in our
 *      FINAL and the session closes, within TICK_MS of the commit.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "crdt/raw.h"
#include "crdtnet/channel.h"
#include "crdtnet/conn.h"
#include "crdtnet/frame.h"
#include "crdtnet/handshake.h"
#include "io_internal.h"
#include "net_internal.h"

#define TICK_MS 250
#define STOP_LINGER_MS 1000
#define RBUF_BYTES ((size_t)64 * 1024)
#define HSQ_BYTES (2 * (CRDTNET_FRAME_HEADER_BYTES + CRDTNET_HS_MSG_MAX))
#define SESSION_FRAME_MAX (CRDTNET_SESSION_MSG_MAX + CRDTNET_CHANNEL_ABYTES)
#define ADDR_MAX 96

_Static_assert(SESSION_FRAME_MAX <= CRDTNET_FRAME_MAX_HARD,
               "session frames fit the framer's hard maximum");

enum { ST_HS = 1, ST_FLUSH, ST_SESSION, ST_CLOSING, ST_DONE };

typedef struct {
    int fd;
    crdtnet_hs_role role;
    int state;
    /* settings, defaults resolved */
    int live, hs_ms, idle_ms, no_tofu;
    epoch_policy policy;
    size_t batch_bytes;
    volatile sig_atomic_t *stop;
    crdtnet_log_fn log;
    crdtnet_log_event_fn log_event;
    void *log_ctx;
    void (*progress)(const crdtnet_report *rep, void *ctx);
    void *progress_ctx;
    const crdtnet__conn_hooks *hooks;
    /* replicas: the client's own, or the one the server picked */
    crdt_replica *r;
    crdt_replica *const *reps;
    size_t n_reps;
    /* protocol state */
    crdtnet_framer *fr;
    crdtnet_hs *hs;
    crdtnet_channel *ch;
    crdtnet_session *s;
    int tofu_used;
    unsigned char peer_pk[CRDT_PUBKEY_BYTES]; /* once authenticated */
    /* output: handshake frames, or one sealed frame (keeps (1)) */
    unsigned char hsq[HSQ_BYTES];
    size_t hsq_len, hsq_off;
    unsigned char hdr[CRDTNET_FRAME_HEADER_BYTES];
    const unsigned char *body;
    size_t body_len, out_off; /* out_off counts hdr + body */
    int have_frame;
    /* closing */
    int final_sent, shut_wr, peer_final, eof, stopping, stopped_in_hs;
    int err;                  /* first failure, sticky; 0 = none */
    char reason[CRDTNET_REASON_MAX + 8];
    int peer_err;             /* the peer's FINAL carried an error */
    /* clocks (ms) */
    long long t_start, t_rx, t_tx, t_wprog, t_stop, t_txn;
    uint64_t last_txn;
    int repoke;               /* poke again on the next tick */
    char addr[ADDR_MAX];
    /* counters (crdtnet__conn_hooks.stats), once the space is known */
    crdtnet_space_stats *st;
    int st_looked, st_peer;   /* looked up; counted in peers_connected */
    uint64_t bytes_in, bytes_out; /* not yet published */
    crdtnet_report pub;       /* the session report as last published */
} conn;

long long
crdtnet__now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
logf_(conn *c, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* One event about this connection's peer: structured if the caller
 * asked for events, else the line "ADDR: MESSAGE". */
static void
logf_(conn *c, int level, const char *fmt, ...)
{
    char line[512];
    size_t n;
    va_list ap;

    if (c->log == NULL && c->log_event == NULL)
        return;
    n = c->log_event != NULL
            ? 0
            : (size_t)snprintf(line, sizeof line, "%s: ", c->addr);
    if (n >= sizeof line)
        n = 0;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - n, fmt, ap);
    va_end(ap);
    if (c->log_event != NULL)
        c->log_event(level, c->addr, line, c->log_ctx);
    else
        c->log(line, c->log_ctx);
}

/* ---- counters ----------------------------------------------------- */

static long long
now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Add what happened since the last call to the space's counters. */
static void
publish(conn *c)
{
    const crdtnet_report *rep;
    crdtnet_space_stats *st;

    if (!c->st_looked && c->r != NULL) {
        c->st_looked = 1;
        if (c->hooks != NULL && c->hooks->stats != NULL)
            c->st = c->hooks->stats(c->r, c->hooks->ctx);
    }
    if ((st = c->st) == NULL)
        return;
    if (c->bytes_in > 0)
        crdtnet__count(&st->bytes_in, c->bytes_in);
    if (c->bytes_out > 0)
        crdtnet__count(&st->bytes_out, c->bytes_out);
    c->bytes_in = c->bytes_out = 0;
    if (c->s == NULL)
        return;
    rep = crdtnet_session_report(c->s);
#define PUBLISH(field, counter)                                             \
    do {                                                                    \
        if (rep->field > c->pub.field)                                      \
            crdtnet__count(&st->counter, rep->field - c->pub.field);       \
        c->pub.field = rep->field;                                          \
    } while (0)
    PUBLISH(changes_received, changes_in);
    PUBLISH(changes_sent, changes_out);
    PUBLISH(ops_received, ops_in);
    PUBLISH(rebased_ops, rebased_ops);
    PUBLISH(quarantined_ops, quarantined_ops);
    PUBLISH(conflicts, conflicts);
#undef PUBLISH
}

/* Keep the first failure and its reason (later ones are consequences). */
static void
fail(conn *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
fail(conn *c, int code, const char *fmt, ...)
{
    va_list ap;

    if (c->err != 0)
        return;
    c->err = code;
    va_start(ap, fmt);
    vsnprintf(c->reason, sizeof c->reason, fmt, ap);
    va_end(ap);
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

static int
stop_requested(const conn *c)
{
    return c->stop != NULL && *c->stop != 0;
}

static int
pending(const conn *c)
{
    return c->hsq_off < c->hsq_len || c->have_frame;
}

/* ---- handshake callbacks ------------------------------------------ */

static int
server_space_ok(const unsigned char space_id[CRDTNET_SPACE_ID_BYTES],
                void *ctx)
{
    conn *c = ctx;
    unsigned char sid[CRDT_SPACE_ID_BYTES];
    size_t i;

    for (i = 0; i < c->n_reps; i++) {
        crdt_replica_space_id(c->reps[i], sid);
        if (crdt_replica_damaged(c->reps[i]))
            continue; /* no longer served: see result() */
        if (sodium_memcmp(sid, space_id, sizeof sid) == 0) {
            c->r = c->reps[i];
            return 1;
        }
    }
    return 0;
}

static int
server_is_member(const unsigned char pk[CRDTNET_PK_BYTES], void *ctx)
{
    conn *c = ctx;

    return c->r != NULL && crdtnet_is_member(c->r, pk); /* strict */
}

static int
server_invite_ok(const unsigned char pk[CRDTNET_PK_BYTES],
                 const unsigned char secret[CRDTNET_INVITE_SECRET_BYTES],
                 char *why, size_t why_size, void *ctx)
{
    conn *c = ctx;

    return c->r != NULL &&
           crdtnet__invite_redeem(c->r, pk, secret, (uint64_t)time(NULL),
                                  why, why_size);
}

/* The peer key a joining replica pinned (meta CRDTNET_PIN_META): 1 and
 * the key, 0 if none (or unreadable: then no pin, and no trust either,
 * see client_is_member). */
static int
pinned_key(crdt_replica *r, unsigned char *pk)
{
    crdt_raw *t;
    const void *v;
    size_t vl;
    int found = 0;

    if (crdt_raw_begin(&t, r, 0) < 0)
        return -1;
    if (crdt_raw_get(t, CRDT_DB_META, CRDTNET_PIN_META,
                     sizeof CRDTNET_PIN_META - 1, &v, &vl) == CRDT_OK &&
        vl == CRDT_PUBKEY_BYTES) {
        memcpy(pk, v, CRDT_PUBKEY_BYTES);
        found = 1;
    }
    crdt_raw_abort(t);
    return found;
}

static int
client_is_member(const unsigned char pk[CRDTNET_PK_BYTES], void *ctx)
{
    conn *c = ctx;
    unsigned char pin[CRDT_PUBKEY_BYTES];
    uint64_t n;
    int pinned;

    if (crdtnet_is_member(c->r, pk))
        return 1;
    if (crdtnet_member_count(c->r, &n) != CRDT_OK || n != 0)
        return 0;
    /* A replica that joined and never synced: the key it pinned at init,
     * else (trust on first use) whichever server it was told to use. */
    if ((pinned = pinned_key(c->r, pin)) != 0) {
        if (pinned < 0 || sodium_memcmp(pin, pk, sizeof pin) != 0)
            return 0;
        c->tofu_used = 1;
        return 1;
    }
    if (!c->no_tofu) {
        c->tofu_used = 1;
        return 1;
    }
    return 0;
}

/* Keeps (7): the peer's role, read again after a commit. A client that
 * trusted its server on first use (an empty member set) keeps that
 * session: the member set it is receiving is the server's own. */
static int
still_member(conn *c)
{
    return c->tofu_used || crdtnet_is_member(c->r, c->peer_pk);
}

/* ---- output ------------------------------------------------------- */

/* Move every frame the handshake queued into hsq (keeps (1)). */
static void
drain_hs(conn *c)
{
    const unsigned char *p;
    size_t n;

    while (crdtnet_hs_next_out(c->hs, &p, &n) == CRDT_OK) {
        if (c->hsq_off == c->hsq_len)
            c->hsq_off = c->hsq_len = 0;
        if (c->hsq_off > 0 && c->hsq_len + 4 + n > sizeof c->hsq) {
            memmove(c->hsq, c->hsq + c->hsq_off, c->hsq_len - c->hsq_off);
            c->hsq_len -= c->hsq_off;
            c->hsq_off = 0;
        }
        if (c->hsq_len + 4 + n > sizeof c->hsq ||
            crdtnet_frame_header(c->hsq + c->hsq_len, n) != CRDT_OK) {
            fail(c, CRDT_ERROR, "handshake output overflow");
            c->state = ST_DONE;
            return;
        }
        if (c->hsq_len == c->hsq_off)
            c->t_wprog = crdtnet__now_ms();
        memcpy(c->hsq + c->hsq_len + 4, p, n);
        c->hsq_len += 4 + n;
    }
}

static void
set_frame(conn *c, const unsigned char *p, size_t n)
{
    (void)crdtnet_frame_header(c->hdr, n); /* n <= frame max: sealed */
    c->body = p;
    c->body_len = n;
    c->out_off = 0;
    c->have_frame = 1;
    c->t_wprog = crdtnet__now_ms();
}

static void
begin_close(conn *c)
{
    if (c->state == ST_SESSION)
        c->state = ST_CLOSING;
}

/*
 * The FINAL plaintext: empty when all went well or the session already
 * told the peer (its ERROR message), else an error message
 * [ "strata-error", code, reason ] as crdtnet_hs_parse_error() reads it,
 * for failures of this layer (bad frame, timeout). A peer's error is
 * never answered.
 */
static void
seal_final(conn *c)
{
    unsigned char buf[CRDTNET_HS_MSG_MAX];
    const unsigned char *p;
    size_t n = 0, rl;

    c->final_sent = 1;
    if (c->err < 0 && !c->peer_err && !c->peer_final) {
        crdtnet__hs_msg m;

        memset(&m, 0, sizeof m);
        m.kind = CRDTNET__MSG_ERROR;
        m.code = c->err;
        rl = strlen(c->reason);
        m.reason_len =
            rl > CRDTNET__REASON_WIRE_MAX ? CRDTNET__REASON_WIRE_MAX : rl;
        memcpy(m.reason, c->reason, m.reason_len);
        if (crdtnet__hs_encode(buf, sizeof buf, &n, &m) != CRDT_OK)
            n = 0;
    }
    if (crdtnet_channel_seal_final(c->ch, n ? buf : NULL, n, &p, &n) ==
        CRDT_OK)
        set_frame(c, p, n);
    else
        c->state = ST_DONE; /* cannot even say goodbye */
}

/* Pull the next frame to send, if nothing is pending (keeps (1)). */
static void
fill_output(conn *c, long long now)
{
    const unsigned char *m, *p;
    size_t n, pn;
    int rc;

    if (pending(c))
        return;
    if (c->state == ST_FLUSH) {
        c->state = ST_DONE;
        return;
    }
    if (c->state == ST_SESSION) {
        rc = crdtnet_session_next_out(c->s, &m, &n);
        if (rc == CRDT_OK) {
            rc = crdtnet_channel_seal(c->ch, m, n, &p, &pn);
            if (rc == CRDT_OK) {
                set_frame(c, p, pn);
                return;
            }
            fail(c, rc, "seal: %s", crdt_strerror(rc));
            begin_close(c);
        } else if (rc != CRDT_EAGAIN) {
            begin_close(c); /* the session finished or failed */
        } else if (c->peer_final || c->peer_err) {
            begin_close(c); /* the peer will send nothing more */
        } else if (c->live && now - c->t_tx >= c->idle_ms / 3) {
            /* keepalive: an empty message, never given to the session */
            rc = crdtnet_channel_seal(c->ch, NULL, 0, &p, &pn);
            if (rc == CRDT_OK) {
                set_frame(c, p, pn);
                return;
            }
            fail(c, rc, "seal: %s", crdt_strerror(rc));
            begin_close(c);
        }
    }
    if (c->state == ST_CLOSING && !c->final_sent) {
        seal_final(c);
        return;
    }
    if (c->state == ST_CLOSING && c->final_sent && !c->shut_wr) {
        shutdown(c->fd, SHUT_WR);
        c->shut_wr = 1;
    }
    if (c->state == ST_CLOSING && c->shut_wr && (c->peer_final || c->eof))
        c->state = ST_DONE;
}

static void
do_write(conn *c, long long now)
{
    ssize_t w;

    for (;;) {
        if (c->hsq_off < c->hsq_len) {
            w = send(c->fd, c->hsq + c->hsq_off, c->hsq_len - c->hsq_off,
                     MSG_NOSIGNAL | MSG_DONTWAIT);
        } else if (c->have_frame) {
            struct iovec iov[2];
            struct msghdr mh;
            int k = 0;

            memset(&mh, 0, sizeof mh);
            if (c->out_off < sizeof c->hdr) {
                iov[k].iov_base = c->hdr + c->out_off;
                iov[k++].iov_len = sizeof c->hdr - c->out_off;
                iov[k].iov_base = (void *)c->body;
                iov[k++].iov_len = c->body_len;
            } else {
                size_t off = c->out_off - sizeof c->hdr;

                iov[k].iov_base = (void *)(c->body + off);
                iov[k++].iov_len = c->body_len - off;
            }
            mh.msg_iov = iov;
            mh.msg_iovlen = (size_t)k;
            w = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        } else {
            return;
        }
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            fail(c, CRDT_EIO, "send: %s", strerror(errno));
            c->state = ST_DONE;
            return;
        }
        c->t_wprog = c->t_tx = now;
        c->bytes_out += (uint64_t)w;
        if (c->hsq_off < c->hsq_len) {
            c->hsq_off += (size_t)w;
        } else {
            c->out_off += (size_t)w;
            if (c->out_off == sizeof c->hdr + c->body_len)
                c->have_frame = 0;
        }
        if (!pending(c))
            return;
    }
}

/* ---- input -------------------------------------------------------- */

static void
hs_finished(conn *c)
{
    crdtnet_session_options so = CRDTNET_SESSION_OPTIONS_INIT;
    unsigned char pk[CRDTNET_PK_BYTES], sid[CRDTNET_SPACE_ID_BYTES];
    char pkhex[2 * CRDTNET_PK_BYTES + 1], sidhex[2 * sizeof sid + 1];
    int rc;

    rc = crdtnet_hs_take_channel(&c->ch, c->hs); /* drain_hs() ran */
    if (rc == CRDT_OK)
        rc = crdtnet_framer_set_max(c->fr, SESSION_FRAME_MAX);
    if (rc == CRDT_OK) {
        so.policy = c->policy;
        so.batch_bytes = c->batch_bytes;
        so.live = c->live;
        rc = crdtnet_session_new(&c->s, c->r, &so);
    }
    if (rc < 0) {
        fail(c, rc, "starting the session: %s", crdt_strerror(rc));
        c->state = ST_DONE;
        return;
    }
    crdtnet_hs_peer_key(c->hs, pk);
    memcpy(c->peer_pk, pk, sizeof c->peer_pk);
    crdtnet_hs_space(c->hs, sid);
    crdt_hex(pkhex, pk, sizeof pk);
    crdt_hex(sidhex, sid, sizeof sid);
    logf_(c, CRDTNET_LOG_INFO, "authenticated peer %s for space %s%s",
          pkhex, sidhex,
          c->tofu_used ? " (trusted on first use: empty member set)" : "");
    crdtnet_hs_free(c->hs);
    c->hs = NULL;
    c->state = ST_SESSION;
    c->last_txn = crdt_replica_last_txn(c->r);
    c->t_txn = crdtnet__now_ms();
    if (c->hooks != NULL && c->hooks->authenticated != NULL)
        c->hooks->authenticated(c->hooks->ctx);
    publish(c);
    if (c->st != NULL) {
        crdtnet__count(&c->st->peers_connected, 1);
        c->st_peer = 1;
    }
}

/*
 * Server: the identity to answer with is that of the replica holding the
 * space the client asks for, so the hello (plaintext, and the first
 * frame) is matched against each space before the handshake is created.
 * Anything that matches none goes to a handshake with the first
 * replica's identity and no space, which closes without a word.
 */
static int
server_hs_new(conn *c, const unsigned char *p, size_t n)
{
    crdtnet_hs_config cfg = CRDTNET_HS_CONFIG_INIT;
    unsigned char pk[CRDT_PUBKEY_BYTES], sk[CRDT_SECKEY_BYTES];
    unsigned char sid[CRDT_SPACE_ID_BYTES];
    crdt_replica *id = c->reps[0];
    size_t i;
    int rc;

    /* The hello names no space: its MAC verifies under one (or none). */
    for (i = 0; i < c->n_reps; i++) {
        crdt_replica_space_id(c->reps[i], sid);
        if (!crdt_replica_damaged(c->reps[i]) &&
            crdtnet_hs_hello_is_for(p, n, sid)) {
            id = c->reps[i];
            cfg.space_id = sid;
            break;
        }
    }
    c->r = NULL; /* chosen again by the handshake's space_ok */
    crdt_replica_public_key(id, pk);
    crdt_replica_secret_key(id, sk);
    cfg.role = CRDTNET_HS_SERVER;
    cfg.pk = pk;
    cfg.sk = sk;
    cfg.is_member = server_is_member;
    cfg.space_ok = server_space_ok;
    cfg.invite_ok = server_invite_ok;
    cfg.ctx = c;
    cfg.frame_max = SESSION_FRAME_MAX;
    rc = crdtnet_hs_new(&c->hs, &cfg);
    sodium_memzero(sk, sizeof sk);
    return rc;
}

static void
hs_frame(conn *c, const unsigned char *p, size_t n)
{
    int rc;

    if (c->hs == NULL) {
        rc = server_hs_new(c, p, n);
        if (rc < 0) {
            fail(c, rc, "starting the handshake: %s", crdt_strerror(rc));
            c->state = ST_DONE;
            return;
        }
    }
    (void)crdtnet_hs_feed(c->hs, p, n);
    drain_hs(c);
    if (c->state == ST_DONE)
        return;
    rc = crdtnet_hs_failed(c->hs);
    if (rc < 0) {
        fail(c, rc, "%s", crdtnet_hs_reason(c->hs));
        c->state = ST_FLUSH;
        return;
    }
    if (crdtnet_hs_done(c->hs))
        hs_finished(c);
}

/*
 * A bad frame after the handshake: we still say goodbye. Our FINAL (with
 * the error, unless the peer already sent its own) goes out before we
 * close, and a FINAL half written is finished, so the peer reads why
 * instead of a reset connection.
 */
static void
bad_channel_frame(conn *c)
{
    if (c->state == ST_SESSION)
        begin_close(c);
    else if (c->state != ST_CLOSING || (c->final_sent && !pending(c)))
        c->state = ST_DONE;
}

static void
channel_frame(conn *c, const unsigned char *p, size_t n)
{
    const unsigned char *m;
    size_t mn;
    int rc;

    if (c->peer_final) {
        fail(c, CRDT_EPROTO, "frame after the peer's final message");
        bad_channel_frame(c);
        return;
    }
    rc = crdtnet_channel_open(c->ch, p, n, &m, &mn);
    if (rc < 0) {
        fail(c, rc, "bad frame from peer: %s", crdt_strerror(rc));
        bad_channel_frame(c);
        return;
    }
    if (crdtnet_channel_peer_closed(c->ch)) {
        c->peer_final = 1;
        if (mn > 0) {
            char why[CRDTNET_REASON_MAX];
            int code;

            if (crdtnet_hs_parse_error(m, mn, &code, why, sizeof why) ==
                CRDT_OK) {
                if (code >= 0 || code < CRDT_EPERM)
                    code = CRDT_EAUTH; /* unknown codes, as the spec says */
                fail(c, code, "peer: %s", why);
                c->peer_err = 1;
            }
        }
        /* The session may still have to settle (and we to send):
         * fill_output() closes once it has nothing more. */
        return;
    }
    if (mn == 0 || c->state != ST_SESSION)
        return; /* keepalive, or the session is over: drop */
    {
        const crdtnet_report *rep = crdtnet_session_report(c->s);
        uint64_t before = rep->changes_received +
                          rep->snapshot_entries_received;
        long long t0 = now_us();

        (void)crdtnet_session_feed(c->s, m, mn); /* failure: next_out
                                                    ends */
        publish(c);
        if (c->st != NULL &&
            rep->changes_received + rep->snapshot_entries_received !=
                before)
            crdtnet__count_merge(c->st, (uint64_t)(now_us() - t0));
        if (c->progress != NULL)
            c->progress(rep, c->progress_ctx);
    }
}

/* Feed @p n bytes through the framer; act on each whole frame. */
static void
process(conn *c, const unsigned char *buf, size_t n)
{
    const unsigned char *p;
    size_t off = 0, used, len;
    int rc, stalls = 0;

    while (c->state != ST_DONE && c->state != ST_FLUSH) {
        rc = crdtnet_framer_next(c->fr, &p, &len);
        if (rc == CRDT_OK) {
            stalls = 0;
            if (c->state == ST_HS)
                hs_frame(c, p, len);
            else
                channel_frame(c, p, len);
            continue;
        }
        if (rc != CRDT_EAGAIN) {
            if (rc == CRDT_ELIMIT)
                fail(c, CRDT_EPROTO, "frame larger than allowed");
            else
                fail(c, rc == CRDT_ENOMEM ? rc : CRDT_EPROTO,
                     "bad frame: %s", crdt_strerror(rc));
            if (c->state == ST_HS)
                c->state = ST_DONE;
            else
                bad_channel_frame(c);
            return;
        }
        if (off == n)
            return;
        rc = crdtnet_framer_feed(c->fr, buf + off, n - off, &used);
        if (rc < 0)
            continue; /* framer_next reports it */
        if (used == 0 && ++stalls > 1) { /* never spin (keeps (4)) */
            fail(c, CRDT_ERROR, "framer made no progress");
            c->state = ST_DONE;
            return;
        }
        off += used;
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
        fail(c, CRDT_EIO, "recv: %s", strerror(errno));
        c->state = ST_DONE;
        return;
    }
    if (r == 0) {
        c->eof = 1;
        if (c->state == ST_HS && c->role == CRDTNET_HS_CLIENT)
            fail(c, CRDT_EIO, "connection closed during the handshake "
                              "(a server answers only a hello for a space "
                              "it serves)");
        else if (c->state == ST_HS)
            fail(c, CRDT_EIO, "connection closed during the handshake");
        else if (c->state == ST_SESSION)
            fail(c, CRDT_EIO, "connection closed by the peer");
        /* CLOSING goes on until our FINAL is out; see fill_output() */
        if (c->state != ST_CLOSING || (c->final_sent && !pending(c)))
            c->state = ST_DONE;
        return;
    }
    c->t_rx = now;
    c->bytes_in += (uint64_t)r;
    if (c->state == ST_FLUSH)
        return; /* failed handshake: discard */
    process(c, buf, (size_t)r);
}

/* ---- the loop ----------------------------------------------------- */

static void
check_timers(conn *c, long long now)
{
    if (stop_requested(c) && !c->stopping) {
        c->stopping = 1;
        c->t_stop = now;
        if (c->state == ST_HS) {
            c->stopped_in_hs = 1;
            fail(c, CRDT_ECLOSED, "stopped");
            c->state = ST_DONE;
        }
        begin_close(c);
    }
    if (c->stopping && now - c->t_stop >= STOP_LINGER_MS)
        c->state = ST_DONE;
    if (c->state == ST_HS && c->hooks != NULL && c->hooks->evict != NULL &&
        __atomic_load_n(c->hooks->evict, __ATOMIC_RELAXED)) {
        fail(c, CRDT_EIO, "evicted: the oldest handshake in progress while "
             "the daemon was full");
        c->state = ST_DONE;
    }
    if (c->state == ST_HS && now - c->t_start >= c->hs_ms) {
        fail(c, CRDT_EIO, "handshake timed out after %d ms", c->hs_ms);
        c->state = ST_DONE;
    }
    if (c->state == ST_FLUSH && now - c->t_wprog >= STOP_LINGER_MS)
        c->state = ST_DONE;
    if (pending(c) && now - c->t_wprog >= c->idle_ms &&
        c->state != ST_DONE) {
        fail(c, CRDT_EIO, "write timed out");
        c->state = ST_DONE;
    }
    if ((c->state == ST_SESSION || c->state == ST_CLOSING) &&
        now - c->t_rx >= c->idle_ms) {
        fail(c, CRDT_EIO, "idle timeout (%d ms)", c->idle_ms);
        if (c->state == ST_SESSION)
            begin_close(c);
        else
            c->state = ST_DONE;
    }
    if (c->state == ST_SESSION && now - c->t_txn >= TICK_MS) {
        /* Writes by other processes or threads reach the peer. */
        uint64_t t = crdt_replica_last_txn(c->r);

        c->t_txn = now;
        if (t != c->last_txn || c->repoke) {
            /* LMDB publishes a commit's id a moment before a new read
             * txn can see the commit, so the export a poke starts may
             * miss it: poke once more on the next tick (keeps (6)). */
            c->repoke = t != c->last_txn;
            c->last_txn = t;
            if (!still_member(c)) { /* keeps (7) */
                char hex[2 * CRDT_PUBKEY_BYTES + 1];
                crdt_hex(hex, c->peer_pk, sizeof c->peer_pk);
                fail(c, CRDT_EAUTH, "peer %s is no longer a member of the "
                     "space", hex);
                logf_(c, CRDTNET_LOG_WARN, "closing: %s", c->reason);
                begin_close(c);
            } else if (c->live) {
                crdtnet_session_poke(c->s);
            }
        }
    }
}

static int
poll_timeout(const conn *c, long long now)
{
    long long t = TICK_MS, left;

    if (c->state == ST_HS) {
        left = c->t_start + c->hs_ms - now;
        if (left < t)
            t = left;
    }
    if (c->state == ST_SESSION && c->live) {
        left = c->t_txn + TICK_MS - now;
        if (left < t)
            t = left;
        left = c->t_tx + c->idle_ms / 3 - now; /* the next keepalive */
        if (!pending(c) && left < t)
            t = left;
    }
    return t < 0 ? 0 : (int)t;
}

static void
run(conn *c)
{
    /* (2): the read buffer is on this thread's stack; until the peer is
     * authenticated, reads are at most one handshake frame long. */
    unsigned char rbuf[RBUF_BYTES];
    struct pollfd pfd;
    long long now;
    int rc;

    c->t_start = c->t_rx = c->t_tx = c->t_wprog = crdtnet__now_ms();
    if (c->role == CRDTNET_HS_CLIENT)
        drain_hs(c); /* the hello */
    for (;;) {
        now = crdtnet__now_ms();
        check_timers(c, now);
        if (c->state != ST_DONE)
            fill_output(c, now);
        if (c->state == ST_DONE)
            break;
        pfd.fd = c->fd;
        pfd.events = 0;
        if (!c->eof)
            pfd.events |= POLLIN;
        if (pending(c))
            pfd.events |= POLLOUT;
        pfd.revents = 0;
        rc = poll(&pfd, 1, poll_timeout(c, now)); /* keeps (4) */
        if (rc < 0 && errno != EINTR) {
            fail(c, CRDT_EIO, "poll: %s", strerror(errno));
            break;
        }
        if (rc <= 0)
            continue;
        now = crdtnet__now_ms();
        if (pfd.revents & (POLLOUT | POLLERR))
            do_write(c, now);
        if (c->state != ST_DONE && !c->eof &&
            (pfd.revents & (POLLIN | POLLHUP | POLLERR)))
            do_read(c, rbuf,
                    c->state == ST_HS
                        ? CRDTNET_FRAME_HEADER_BYTES + CRDTNET_HS_MSG_MAX
                        : sizeof rbuf,
                    now);
        publish(c);
    }
}

/* A failure of our own storage or memory, not of the peer or network. */
static int
local_failure(int rc)
{
    return rc == CRDT_ECORRUPT || rc == CRDT_EFULL || rc == CRDT_ENOMEM ||
           rc == CRDT_ERROR;
}

/* The connection's result, from what happened (see conn.h). */
static int
result(conn *c, crdtnet_report *out)
{
    const crdtnet_report *rep = c->s ? crdtnet_session_report(c->s) : NULL;
    int serr = c->s ? crdtnet_session_error(c->s) : CRDT_OK;
    int rc;

    if (c->s == NULL)
        rc = c->err < 0 ? c->err : CRDT_EIO;
    else if (rep->rejected)
        rc = CRDT_EREJECTED;
    else if (rep->busy_retry_ms > 0 || serr == CRDT_EBUSY)
        rc = CRDT_EBUSY;
    else if (serr < 0)
        rc = serr;
    else if (c->peer_err)
        rc = c->err;
    else if (crdtnet_session_finished(c->s))
        rc = CRDT_OK;
    else if (c->err < 0)
        rc = c->err;
    else if (c->live && (c->peer_final || c->stopping))
        rc = CRDT_OK;
    else if (c->stopping)
        rc = CRDT_ECLOSED;
    else
        rc = CRDT_EIO;
    if (out != NULL) {
        if (rep != NULL)
            *out = *rep;
        if (rc < 0 && (out->reason[0] == '\0' || c->peer_err)) {
            const char *why = c->reason[0] ? c->reason : crdt_strerror(rc);

            copy_str(out->reason, sizeof out->reason, why);
        }
    }
    if (rep != NULL && rep->local_damage && c->r != NULL) {
        unsigned char sid[CRDT_SPACE_ID_BYTES];
        char sidhex[2 * CRDT_SPACE_ID_BYTES + 1];

        crdt_replica_space_id(c->r, sid);
        crdt_hex(sidhex, sid, sizeof sid);
        logf_(c, CRDTNET_LOG_ERROR,
              "corrupt replica %s (space %s): a change or snapshot it was "
              "about to send failed its check, nothing damaged was sent; "
              "no longer serving this space; run strata verify %s",
              crdt_replica_path(c->r), sidhex, crdt_replica_path(c->r));
    }
    publish(c);
    if (c->st != NULL) {
        crdtnet__count(&c->st->sessions[crdtnet__outcome(rc)], 1);
        if (rep != NULL && rep->snapshot_received)
            crdtnet__count(&c->st->snapshots_in, 1);
        if (rep != NULL && rep->snapshot_sent)
            crdtnet__count(&c->st->snapshots_out, 1);
        if (c->st_peer)
            __atomic_fetch_sub(&c->st->peers_connected, 1,
                               __ATOMIC_RELAXED);
        c->st_peer = 0;
    }
    if (rep != NULL && rep->equivocations > 0) {
        char actor[2 * CRDT_ACTOR_BYTES + 1];
        crdt_hex(actor, rep->equivocating.b, CRDT_ACTOR_BYTES);
        logf_(c, CRDTNET_LOG_WARN,
              "equivocation: actor %s (and %llu more) wrote two different "
              "chains (a copied or twice-restored replica); ours %s%s",
              actor, (unsigned long long)(rep->equivocations - 1),
              rep->equivocation_lost ? "lost: quarantined, took the peer's"
                                     : "won",
              rep->renewed ? "; now writing as a new actor" : "");
    }
    if (rc == CRDT_OK && c->err == 0 && c->s != NULL)
        logf_(c, CRDTNET_LOG_INFO,
              "session ended: sent %llu changes, received %llu changes "
              "(%llu ops)%s%s",
              (unsigned long long)rep->changes_sent,
              (unsigned long long)rep->changes_received,
              (unsigned long long)rep->ops_received,
              rep->snapshot_received ? ", reset to the peer's snapshot" : "",
              rep->in_sync ? ", in sync" : "");
    else if (rc == CRDT_OK)
        logf_(c, CRDTNET_LOG_INFO,
              "session ended: sent %llu changes, received %llu changes "
              "(%llu ops) (%s)",
              (unsigned long long)rep->changes_sent,
              (unsigned long long)rep->changes_received,
              (unsigned long long)rep->ops_received, c->reason);
    else if (c->s == NULL && !c->stopped_in_hs)
        logf_(c, CRDTNET_LOG_WARN, "handshake failed: %s",
              c->reason[0] ? c->reason : crdt_strerror(rc));
    else if (c->s != NULL)
        logf_(c, local_failure(rc) ? CRDTNET_LOG_ERROR : CRDTNET_LOG_WARN,
              "session failed: %s: %s", crdt_strerror(rc),
              out != NULL ? out->reason
                          : (c->reason[0] ? c->reason : rep->reason));
    return rc;
}

static void
conn_init(conn *c, int fd, crdtnet_hs_role role,
          const crdtnet_conn_options *o, const crdtnet__conn_hooks *h)
{
    memset(c, 0, sizeof *c);
    c->fd = fd;
    c->role = role;
    c->state = ST_HS;
    c->hooks = h;
    if (o != NULL) {
        c->live = o->live;
        c->policy = o->policy;
        c->batch_bytes = o->batch_bytes;
        c->hs_ms = o->handshake_timeout_ms;
        c->idle_ms = o->idle_timeout_ms;
        c->no_tofu = o->no_tofu;
        c->stop = o->stop;
        c->log = o->log;
        c->log_event = o->log_event;
        c->log_ctx = o->log_ctx;
        c->progress = o->progress;
        c->progress_ctx = o->progress_ctx;
    }
    if (c->hs_ms <= 0)
        c->hs_ms = 10000;
    if (c->idle_ms <= 0)
        c->idle_ms = 30000;
}

static void
conn_release(conn *c)
{
    crdtnet_session_free(c->s);
    crdtnet_channel_free(c->ch);
    crdtnet_hs_free(c->hs);
    crdtnet_framer_free(c->fr);
    if (c->fd >= 0)
        close(c->fd);
    sodium_memzero(c->hsq, sizeof c->hsq);
    c->s = NULL;
    c->ch = NULL;
    c->hs = NULL;
    c->fr = NULL;
    c->fd = -1;
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
    conn *c;
    int rc;

    if (out != NULL)
        memset(out, 0, sizeof *out);
    if (fd < 0 || replicas == NULL || n == 0) {
        if (fd >= 0)
            close(fd);
        return CRDT_EINVAL;
    }
    /* The connection state lives on this thread's stack (keeps (2)). */
    {
        conn cs;

        c = &cs;
        conn_init(c, fd, CRDTNET_HS_SERVER, opts, h);
        c->reps = replicas;
        c->n_reps = n;
        set_nodelay(fd);
        peer_addr(c->addr, sizeof c->addr, fd);

        /* The handshake is created when the hello arrives (keeps (2)). */
        rc = crdtnet_framer_new(&c->fr, CRDTNET_HS_MSG_MAX);
        if (rc < 0) {
            conn_release(c);
            return rc;
        }
        run(c);
        rc = result(c, out);
        conn_release(c);
    }
    return rc;
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
    hints.ai_flags = AI_ADDRCONFIG;
    rc = getaddrinfo(host, port, &hints, &res);
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
                if (left <= 0 || (stop != NULL && *stop))
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
        if (crdtnet__now_ms() >= deadline || (stop != NULL && *stop))
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
    crdtnet_hs_config cfg = CRDTNET_HS_CONFIG_INIT;
    unsigned char pk[CRDT_PUBKEY_BYTES], sk[CRDT_SECKEY_BYTES];
    unsigned char sid[CRDT_SPACE_ID_BYTES];
    unsigned char inv[CRDTNET_INVITE_SECRET_BYTES];
    char why[CRDTNET_REASON_MAX];
    int fd = -1, rc, cto;
    conn *c;

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
    {
        conn cs;

        c = &cs;
        conn_init(c, fd, CRDTNET_HS_CLIENT, opts, h);
        c->r = r;
        snprintf(c->addr, sizeof c->addr, "%s%s%s:%s",
                 strchr(host, ':') ? "[" : "", host,
                 strchr(host, ':') ? "]" : "", port);
        crdt_replica_space_id(r, sid);
        crdt_replica_public_key(r, pk);
        crdt_replica_secret_key(r, sk);
        cfg.role = CRDTNET_HS_CLIENT;
        cfg.space_id = sid;
        cfg.pk = pk;
        cfg.sk = sk;
        cfg.is_member = client_is_member;
        cfg.ctx = c;
        cfg.frame_max = SESSION_FRAME_MAX;
        if (crdtnet__invite_pending(r, inv))
            cfg.invite = inv;
        rc = crdtnet_hs_new(&c->hs, &cfg);
        sodium_memzero(sk, sizeof sk);
        sodium_memzero(inv, sizeof inv);
        if (rc == CRDT_OK)
            rc = crdtnet_framer_new(&c->fr, CRDTNET_HS_MSG_MAX);
        if (rc < 0) {
            conn_release(c);
            return rc;
        }
        run(c);
        rc = result(c, out);
        conn_release(c);
    }
    return rc;
}

int
crdtnet_sync_connect(crdtnet_report *out, crdt_replica *r, const char *host,
                     const char *port, const crdtnet_conn_options *opts)
{
    return crdtnet__sync_connect(out, r, host, port, opts, NULL);
}
