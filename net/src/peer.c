/*
 * peer.c: a sync peer over any transport (crdtnet/peer.h): the framer,
 * the handshake, the channel and the session behind feed()/next_out().
 * The one implementation of the protocol steps: the TCP client and
 * server (conn.c) and the pipes of `--stdio`/`--via` drive it; they only
 * move bytes and keep the clock (docs/protocol.md, "Sessions over TCP":
 * the bytes on any transport are the bytes on TCP). Counters, log
 * lines and the result are in peer_report.c; the state both share is in
 * peer_state.h.
 *
 *   HS --hs done--> SESSION --session over / peer FINAL / error / stop-->
 *    |                        CLOSING --our FINAL out, then the peer's
 *    |                                  FINAL or eof()--> DONE
 *    +--hs failed--> FLUSH (its error frame goes out) --> DONE
 *    +--eof(), bad frame, timeout--> DONE
 *
 * Invariants:
 *  (1) Output is handed out one piece at a time, in order: handshake
 *      frames first, then one sealed frame per session message. A
 *      session message is pulled (and sealed) only when the previous one
 *      was taken, so output memory is one frame, never a queue.
 *  (2) Before authentication the framer's maximum is CRDTNET_HS_MSG_MAX:
 *      an unauthenticated sender can make us hold at most one 4 KiB
 *      frame (plus the handshake's state).
 *  (3) Nothing from the other side reaches the session before the
 *      handshake authenticated it as a member; nothing of ours is sealed
 *      before.
 *  (4) The first failure and its reason stick; later ones are its
 *      consequences.
 *  (5) feed() never writes the output buffer (only next_out() does), so
 *      a transport may read while the piece it was handed is still
 *      being written: both sides of a sync can send at once.
 *  (6) Revocation: on every tick that sees a new commit (by any process
 *      or session), the peer's role is read again; a peer that lost it
 *      gets an authentication error in our FINAL and the session closes.
 */
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <time.h>

#include "crdt/raw.h"
#include "crdtnet/channel.h"
#include "crdtnet/conn.h"
#include "crdtnet/frame.h"
#include "crdtnet/handshake.h"
#include "crdtnet/peer.h"
#include "io_internal.h"
#include "net_internal.h"
#include "peer_internal.h"

#define SESSION_FRAME_MAX (CRDTNET_SESSION_MSG_MAX + CRDTNET_CHANNEL_ABYTES)

_Static_assert(SESSION_FRAME_MAX <= CRDTNET_FRAME_MAX_HARD,
               "session frames fit the framer's hard maximum");

#include "peer_state.h"

static void vfail(crdtnet_peer *p, int code, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static void
vfail(crdtnet_peer *p, int code, const char *fmt, va_list ap)
{
    if (p->err != 0)
        return; /* keeps (4) */
    p->err = code;
    vsnprintf(p->reason, sizeof p->reason, fmt, ap);
}

static void
fail(crdtnet_peer *p, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
fail(crdtnet_peer *p, int code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vfail(p, code, fmt, ap);
    va_end(ap);
}

/* ---- handshake callbacks ------------------------------------------- */

static int
server_space_ok(const unsigned char space_id[CRDTNET_SPACE_ID_BYTES],
                void *ctx)
{
    crdtnet_peer *p = ctx;
    unsigned char sid[CRDT_SPACE_ID_BYTES];

    for (size_t i = 0; i < p->n_reps; i++) {
        if (crdt_replica_damaged(p->reps[i]))
            continue; /* no longer served: see crdtnet__peer_finish() */
        crdt_replica_space_id(p->reps[i], sid);
        if (sodium_memcmp(sid, space_id, sizeof sid) == 0) {
            p->r = p->reps[i];
            return 1;
        }
    }
    return 0;
}

static int
server_is_member(const unsigned char pk[CRDTNET_PK_BYTES], void *ctx)
{
    crdtnet_peer *p = ctx;

    return p->r != NULL && crdtnet_is_member(p->r, pk); /* strict */
}

static int
server_invite_ok(const unsigned char pk[CRDTNET_PK_BYTES],
                 const unsigned char secret[CRDTNET_INVITE_SECRET_BYTES],
                 char *why, size_t why_size, void *ctx)
{
    crdtnet_peer *p = ctx;

    return p->r != NULL &&
           crdtnet__invite_redeem(p->r, pk, secret, (uint64_t)time(NULL),
                                  why, why_size);
}

/* The peer key a joining replica pinned (meta CRDTNET_PIN_META): 1 and
 * the key, 0 if none, -1 if unreadable (then no pin, and no trust
 * either, see client_is_member). */
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
    crdtnet_peer *p = ctx;
    unsigned char pin[CRDT_PUBKEY_BYTES];
    uint64_t n;
    int pinned;

    if (crdtnet_is_member(p->r, pk))
        return 1;
    if (crdtnet_member_count(p->r, &n) != CRDT_OK || n != 0)
        return 0;
    /* A replica that joined and never synced: the key it pinned at init,
     * else (trust on first use) whichever server it was told to use. */
    if ((pinned = pinned_key(p->r, pin)) != 0) {
        if (pinned < 0 || sodium_memcmp(pin, pk, sizeof pin) != 0)
            return 0;
        p->tofu_used = 1;
        return 1;
    }
    if (!p->o.no_tofu) {
        p->tofu_used = 1;
        return 1;
    }
    return 0;
}

/* The commit a read txn begun now sees; 0 when none can begin. */
static uint64_t
visible_txn(crdt_replica *r)
{
    crdt_read *rd;
    uint64_t id;

    if (crdt_read_begin(&rd, r) != CRDT_OK)
        return 0;
    id = crdt_read_txn_id(rd);
    crdt_read_end(rd);
    return id;
}

/* Keeps (6): the peer's role, read again after a commit. A client that
 * trusted its server on first use (an empty member set) keeps that
 * session: the member set it is receiving is the server's own. */
static int
still_member(crdtnet_peer *p)
{
    return p->tofu_used || crdtnet_is_member(p->r, p->peer_key);
}

/* ---- output -------------------------------------------------------- */

/* Append @p n bytes to the buffer @p *buf (length @p *len, capacity
 * @p *cap), growing it as needed. */
static int
append(unsigned char **buf, size_t *len, size_t *cap,
       const unsigned char *bytes, size_t n)
{
    size_t need = *len + n;

    if (need > *cap) {
        size_t c = *cap ? *cap : 256;
        unsigned char *nb;
        while (c < need)
            c *= 2;
        if ((nb = realloc(*buf, c)) == NULL)
            return CRDT_ENOMEM;
        *buf = nb;
        *cap = c;
    }
    memcpy(*buf + *len, bytes, n);
    *len = need;
    return CRDT_OK;
}

/* Append one frame (header + @p body) to obuf; only from next_out()
 * (keeps (5)). */
static int
put_frame(crdtnet_peer *p, const unsigned char *body, size_t n)
{
    unsigned char hdr[CRDTNET_FRAME_HEADER_BYTES];
    int rc;

    if ((rc = crdtnet_frame_header(hdr, n)) < 0)
        return rc;
    if ((rc = append(&p->obuf, &p->olen, &p->ocap, hdr, sizeof hdr)) < 0)
        return rc;
    return n > 0 ? append(&p->obuf, &p->olen, &p->ocap, body, n) : CRDT_OK;
}

/* Queue the handshake's frames in hsq, never in obuf: feed() calls it
 * (keeps (5)), and the handshake gives its channel only once everything
 * it had to say was taken. */
static void
drain_hs(crdtnet_peer *p)
{
    unsigned char hdr[CRDTNET_FRAME_HEADER_BYTES];
    const unsigned char *m;
    size_t n;

    while (p->hs != NULL && crdtnet_hs_next_out(p->hs, &m, &n) == CRDT_OK)
        if (crdtnet_frame_header(hdr, n) < 0 ||
            append(&p->hsq, &p->hsq_len, &p->hsq_cap, hdr, sizeof hdr) < 0 ||
            append(&p->hsq, &p->hsq_len, &p->hsq_cap, m, n) < 0) {
            fail(p, CRDT_ENOMEM, "out of memory");
            p->state = ST_DONE;
            return;
        }
}

static void
begin_close(crdtnet_peer *p)
{
    if (p->state == ST_SESSION)
        p->state = ST_CLOSING;
}

/*
 * The FINAL plaintext: empty when all went well or the session already
 * told the peer (its ERROR message), else an error message
 * [ "strata-error", code, reason ] as crdtnet_hs_parse_error() reads it,
 * for failures of this layer (bad frame, timeout). A peer's error is
 * never answered.
 */
static void
seal_final(crdtnet_peer *p)
{
    unsigned char buf[CRDTNET_HS_MSG_MAX];
    const unsigned char *m;
    size_t n = 0, rl;

    p->final_sent = 1;
    if (p->err < 0 && !p->peer_err && !p->peer_final) {
        crdtnet__hs_msg e;

        memset(&e, 0, sizeof e);
        e.kind = CRDTNET__MSG_ERROR;
        e.code = p->err;
        rl = strlen(p->reason);
        e.reason_len =
            rl > CRDTNET__REASON_WIRE_MAX ? CRDTNET__REASON_WIRE_MAX : rl;
        memcpy(e.reason, p->reason, e.reason_len);
        if (crdtnet__hs_encode(buf, sizeof buf, &n, &e) != CRDT_OK)
            n = 0;
    }
    if (crdtnet_channel_seal_final(p->ch, n ? buf : NULL, n, &m, &n) !=
            CRDT_OK ||
        put_frame(p, m, n) < 0)
        p->state = ST_DONE; /* cannot even say goodbye */
}

/* Seal one session message (or an empty keepalive) into obuf. */
static int
put_sealed(crdtnet_peer *p, const unsigned char *m, size_t n)
{
    const unsigned char *sealed;
    size_t sn;
    int rc;

    rc = crdtnet_channel_seal(p->ch, m, n, &sealed, &sn);
    if (rc == CRDT_OK)
        rc = put_frame(p, sealed, sn);
    if (rc == CRDT_OK)
        return CRDT_OK;
    fail(p, rc, "seal: %s", crdt_strerror(rc));
    begin_close(p);
    return rc;
}

/* Pull what comes next into obuf (keeps (1)). */
static void
fill(crdtnet_peer *p)
{
    const unsigned char *m;
    size_t n;
    int rc;

    if (p->olen > 0)
        return;
    drain_hs(p); /* the client's hello */
    if (p->hsq_len > 0) { /* handshake frames go before any sealed one */
        if (append(&p->obuf, &p->olen, &p->ocap, p->hsq, p->hsq_len) < 0) {
            fail(p, CRDT_ENOMEM, "out of memory");
            p->state = ST_DONE;
        }
        sodium_memzero(p->hsq, p->hsq_len);
        p->hsq_len = 0;
        return;
    }
    if (p->state == ST_HS)
        return;
    if (p->state == ST_FLUSH) {
        p->state = ST_DONE; /* the handshake's error frame went out */
        return;
    }
    if (p->state == ST_SESSION) {
        rc = crdtnet_session_next_out(p->s, &m, &n);
        if (rc == CRDT_OK) {
            p->keepalive = 0;
            if (put_sealed(p, m, n) == CRDT_OK)
                return;
        } else if (rc != CRDT_EAGAIN) {
            begin_close(p); /* the session finished or failed */
        } else if (p->peer_final || p->peer_err || p->stopping) {
            begin_close(p); /* the other side will send nothing more */
        } else if (p->keepalive) {
            /* an empty message, never given to the session */
            p->keepalive = 0;
            if (put_sealed(p, NULL, 0) == CRDT_OK)
                return;
        } else {
            return;
        }
    }
    if (p->state == ST_CLOSING && !p->final_sent) {
        seal_final(p);
        return;
    }
    if (p->state == ST_CLOSING && (p->peer_final || p->eof))
        p->state = ST_DONE;
}

/* ---- input --------------------------------------------------------- */

static void
hs_finished(crdtnet_peer *p)
{
    crdtnet_session_options so = CRDTNET_SESSION_OPTIONS_INIT;
    unsigned char sid[CRDTNET_SPACE_ID_BYTES];
    char pkhex[2 * CRDTNET_PK_BYTES + 1], sidhex[2 * sizeof sid + 1];
    int rc;

    drain_hs(p); /* its last frames, before the channel can be taken */
    if (p->state == ST_DONE)
        return;
    rc = crdtnet_hs_take_channel(&p->ch, p->hs);
    if (rc == CRDT_OK)
        rc = crdtnet_framer_set_max(p->fr, SESSION_FRAME_MAX);
    if (rc == CRDT_OK) {
        so.policy = p->o.policy;
        so.batch_bytes = p->o.batch_bytes;
        so.live = p->o.live;
        so.plain_changes = p->o.plain_changes;
        so.sync_proto = p->o.sync_proto;
        rc = crdtnet_session_new(&p->s, p->r, &so);
    }
    if (rc < 0) {
        fail(p, rc, "starting the session: %s", crdt_strerror(rc));
        p->state = ST_DONE;
        return;
    }
    crdtnet_hs_peer_key(p->hs, p->peer_key);
    crdtnet_hs_space(p->hs, sid);
    crdt_hex(pkhex, p->peer_key, sizeof p->peer_key);
    crdt_hex(sidhex, sid, sizeof sid);
    crdtnet__peer_log(p, CRDTNET_LOG_INFO, "authenticated peer %s for space %s%s",
          pkhex, sidhex,
          p->tofu_used ? " (trusted on first use: empty member set)" : "");
    crdtnet_hs_free(p->hs);
    p->hs = NULL;
    p->authenticated = 1;
    p->state = ST_SESSION;
    /* the handshake's membership read may predate the last commit */
    p->last_txn = crdt_replica_last_txn(p->r);
    p->repoke = visible_txn(p->r) < p->last_txn;
    if (p->h.authenticated != NULL)
        p->h.authenticated(p->h.ctx);
    crdtnet__peer_publish(p);
    if (p->st != NULL) {
        crdtnet__count(&p->st->peers_connected, 1);
        p->st_peer = 1;
    }
}

/* The handshake proves our identity through this, so the secret key
 * never leaves libcrdt. @p ctx is the replica whose identity we use. */
static int
replica_sign(unsigned char sig[64], const void *msg, size_t len, void *ctx)
{
    return crdt_replica_sign(sig, (const crdt_replica *)ctx, msg, len) ==
                   CRDT_OK
               ? 0
               : -1;
}

/*
 * Server: the identity to answer with is that of the replica holding the
 * space the client asks for, so the hello (plaintext, and the first
 * frame) is matched against each space before the handshake is created.
 * Anything that matches none goes to a handshake with the first
 * replica's identity and no space, which closes without a word.
 */
static int
server_hs_new(crdtnet_peer *p, const unsigned char *m, size_t n)
{
    crdtnet_hs_config cfg = CRDTNET_HS_CONFIG_INIT;
    unsigned char pk[CRDT_PUBKEY_BYTES];
    unsigned char sid[CRDT_SPACE_ID_BYTES];
    crdt_replica *id = p->reps[0];

    /* The hello names no space: its MAC verifies under one (or none). */
    for (size_t i = 0; i < p->n_reps; i++) {
        if (crdt_replica_damaged(p->reps[i]))
            continue; /* no longer served: see crdtnet__peer_finish() */
        crdt_replica_space_id(p->reps[i], sid);
        if (crdtnet_hs_hello_is_for(m, n, sid)) {
            id = p->reps[i];
            cfg.space_id = sid;
            break;
        }
    }
    p->r = NULL; /* chosen again by the handshake's space_ok */
    crdt_replica_public_key(id, pk);
    cfg.role = CRDTNET_HS_SERVER;
    cfg.pk = pk;
    cfg.sign = replica_sign;
    cfg.sign_ctx = id;
    cfg.is_member = server_is_member;
    cfg.space_ok = server_space_ok;
    cfg.invite_ok = server_invite_ok;
    cfg.ctx = p;
    cfg.frame_max = SESSION_FRAME_MAX;
    return crdtnet_hs_new(&p->hs, &cfg);
}

static void
hs_frame(crdtnet_peer *p, const unsigned char *m, size_t n)
{
    int rc;

    if (p->hs == NULL) {
        rc = server_hs_new(p, m, n);
        if (rc < 0) {
            fail(p, rc, "starting the handshake: %s", crdt_strerror(rc));
            p->state = ST_DONE;
            return;
        }
    }
    (void)crdtnet_hs_feed(p->hs, m, n);
    rc = crdtnet_hs_failed(p->hs);
    if (rc < 0) {
        fail(p, rc, "%s", crdtnet_hs_reason(p->hs));
        drain_hs(p); /* its error frame */
        if (p->state != ST_DONE)
            p->state = ST_FLUSH;
        return;
    }
    if (crdtnet_hs_done(p->hs))
        hs_finished(p);
}

/*
 * A bad frame after the handshake: we still say goodbye. Our FINAL (with
 * the error, unless the peer already sent its own) goes out before the
 * end, so the peer reads why instead of a reset connection.
 */
static void
bad_channel_frame(crdtnet_peer *p)
{
    if (p->state == ST_SESSION)
        begin_close(p);
    else if (p->state != ST_CLOSING || p->final_sent)
        p->state = ST_DONE;
}

static void
session_message(crdtnet_peer *p, const unsigned char *m, size_t n)
{
    const crdtnet_report *rep = crdtnet_session_report(p->s);
    uint64_t before = rep->changes_received + rep->snapshot_entries_received;
    long long t0 = p->st != NULL ? crdtnet__now_us() : 0;

    (void)crdtnet_session_feed(p->s, m, n); /* failure: next_out ends */
    crdtnet__peer_publish(p);
    if (p->st != NULL &&
        rep->changes_received + rep->snapshot_entries_received != before)
        crdtnet__count_merge(p->st, (uint64_t)(crdtnet__now_us() - t0));
    if (p->h.progress != NULL)
        p->h.progress(rep, p->h.ctx);
}

static void
channel_frame(crdtnet_peer *p, const unsigned char *f, size_t n)
{
    const unsigned char *m;
    size_t mn;
    int rc;

    if (p->peer_final) {
        fail(p, CRDT_EPROTO, "frame after the peer's final message");
        bad_channel_frame(p);
        return;
    }
    rc = crdtnet_channel_open(p->ch, f, n, &m, &mn);
    if (rc < 0) {
        fail(p, rc, "bad frame from peer: %s", crdt_strerror(rc));
        bad_channel_frame(p);
        return;
    }
    if (crdtnet_channel_peer_closed(p->ch)) {
        p->peer_final = 1;
        if (mn > 0) {
            char why[CRDTNET_REASON_MAX];
            int code;

            if (crdtnet_hs_parse_error(m, mn, &code, why, sizeof why) ==
                CRDT_OK) {
                if (code >= 0 || code < CRDT_EPERM)
                    code = CRDT_EAUTH; /* unknown codes, as the spec says */
                fail(p, code, "peer: %s", why);
                p->peer_err = 1;
            }
        }
        return; /* fill() closes once the session has nothing more */
    }
    if (p->state != ST_SESSION)
        return; /* the session is over: drop */
    if (mn == 0) { /* a keepalive, or the offer of sync protocol 4 */
        (void)crdtnet_session_feed(p->s, m, 0);
        return;
    }
    session_message(p, m, mn);
}

int
crdtnet_peer_feed(crdtnet_peer *p, const void *bytes, size_t n)
{
    const unsigned char *buf = bytes, *f;
    size_t off = 0, used, len;
    int rc, stalls = 0;

    if (p == NULL || (bytes == NULL && n > 0))
        return CRDT_EINVAL;
    if (p->state == ST_DONE)
        return CRDT_ECLOSED;
    p->bytes_in += n;
    while (p->state != ST_DONE && p->state != ST_FLUSH) {
        rc = crdtnet_framer_next(p->fr, &f, &len);
        if (rc == CRDT_OK) {
            stalls = 0;
            if (p->state == ST_HS)
                hs_frame(p, f, len);
            else
                channel_frame(p, f, len);
            continue;
        }
        if (rc != CRDT_EAGAIN) {
            if (rc == CRDT_ELIMIT)
                fail(p, CRDT_EPROTO, "frame larger than allowed");
            else
                fail(p, rc == CRDT_ENOMEM ? rc : CRDT_EPROTO,
                     "bad frame: %s", crdt_strerror(rc));
            if (p->state == ST_HS)
                p->state = ST_DONE;
            else
                bad_channel_frame(p);
            break;
        }
        if (off == n)
            break;
        rc = crdtnet_framer_feed(p->fr, buf + off, n - off, &used);
        if (rc < 0)
            continue; /* framer_next reports it */
        if (used == 0 && ++stalls > 1) { /* never spin */
            fail(p, CRDT_ERROR, "framer made no progress");
            p->state = ST_DONE;
            break;
        }
        off += used;
    }
    crdtnet__peer_publish(p);
    return CRDT_OK;
}

int
crdtnet_peer_next_out(crdtnet_peer *p, const unsigned char **bytes,
                      size_t *n)
{
    if (p == NULL || bytes == NULL || n == NULL)
        return CRDT_EINVAL;
    if (p->handed) { /* the last piece was sent */
        p->handed = 0;
        p->olen = 0;
    }
    if (p->state != ST_DONE)
        fill(p);
    if (p->olen == 0)
        return p->state == ST_DONE ? CRDT_ECLOSED : CRDT_EAGAIN;
    p->handed = 1;
    p->bytes_out += p->olen;
    crdtnet__peer_publish(p);
    *bytes = p->obuf;
    *n = p->olen;
    return CRDT_OK;
}

int
crdtnet_peer_done(const crdtnet_peer *p)
{
    return p == NULL || (p->state == ST_DONE &&
                         (p->olen == 0 || p->handed));
}

void
crdtnet_peer_eof(crdtnet_peer *p)
{
    if (p == NULL || p->eof)
        return;
    p->eof = 1;
    if (p->state == ST_HS && p->role == CRDTNET_HS_CLIENT)
        fail(p, CRDT_EIO, "connection closed during the handshake "
                          "(a server answers only a hello for a space it "
                          "serves)");
    else if (p->state == ST_HS)
        fail(p, CRDT_EIO, "connection closed during the handshake");
    else if (p->state == ST_SESSION)
        fail(p, CRDT_EIO, "connection closed by the peer");
    /* nobody reads what we would still send */
    p->state = ST_DONE;
}

void
crdtnet_peer_stop(crdtnet_peer *p)
{
    if (p == NULL || p->stopping)
        return;
    p->stopping = 1;
    if (p->state == ST_HS) {
        p->stopped_in_hs = 1;
        fail(p, CRDT_ECLOSED, "stopped");
        p->state = ST_DONE;
    }
    begin_close(p);
}

void
crdtnet_peer_poke(crdtnet_peer *p)
{
    if (p != NULL && p->state == ST_SESSION)
        crdtnet_session_poke(p->s);
}

void
crdtnet_peer_progress_get(const crdtnet_peer *p, crdtnet_peer_progress *out)
{
    const crdtnet_report *rep;

    memset(out, 0, sizeof *out);
    if (p == NULL)
        return;
    out->authenticated = p->authenticated;
    out->done = crdtnet_peer_done(p);
    out->bytes_in = p->bytes_in;
    out->bytes_out = p->bytes_out;
    if (p->s != NULL) {
        rep = crdtnet_session_report(p->s);
        out->changes_sent = rep->changes_sent;
        out->changes_received = rep->changes_received;
    }
    if (p->authenticated)
        memcpy(out->peer_key, p->peer_key, sizeof out->peer_key);
}

/* ---- for transports that keep the clock (peer_internal.h) ---------- */

void
crdtnet__peer_trim(crdtnet_peer *p)
{
    if (p == NULL)
        return;
    if (p->obuf != NULL && p->olen == 0 && !p->handed) {
        sodium_memzero(p->obuf, p->ocap);
        free(p->obuf);
        p->obuf = NULL;
        p->ocap = 0;
    }
    if (p->hs == NULL && p->hsq != NULL && p->hsq_len == 0) {
        sodium_memzero(p->hsq, p->hsq_cap);
        free(p->hsq);
        p->hsq = NULL;
        p->hsq_cap = 0;
    }
    crdtnet__framer_trim(p->fr);
    crdtnet__channel_trim(p->ch);
    crdtnet__session_trim(p->s);
}

void
crdtnet__peer_idle(crdtnet_peer *p)
{
    if (p != NULL && p->state == ST_SESSION && p->s != NULL &&
        p->olen == 0 && !p->handed)
        crdtnet__session_idle(p->s);
}

void
crdtnet__peer_set_hooks(crdtnet_peer *p, const crdtnet__peer_hooks *h)
{
    if (p != NULL && h != NULL)
        p->h = *h;
}

int
crdtnet__peer_phase(const crdtnet_peer *p)
{
    return p->state;
}

int
crdtnet__peer_final_sent(const crdtnet_peer *p)
{
    return p->final_sent;
}

void
crdtnet__peer_fail(crdtnet_peer *p, int code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vfail(p, code, fmt, ap);
    va_end(ap);
    if (p->state == ST_SESSION)
        begin_close(p);
    else
        p->state = ST_DONE;
}

void
crdtnet__peer_kill(crdtnet_peer *p, int code, const char *fmt, ...)
{
    va_list ap;

    if (code != 0) {
        va_start(ap, fmt);
        vfail(p, code, fmt, ap);
        va_end(ap);
    }
    p->state = ST_DONE;
}

void
crdtnet__peer_tick(crdtnet_peer *p)
{
    uint64_t t;

    if (p->state != ST_SESSION)
        return;
    t = crdt_replica_last_txn(p->r);
    if (t == p->last_txn && !p->repoke)
        return;
    /* LMDB publishes a commit's id a moment before a new read txn can
     * see the commit (longer when the committing process is preempted),
     * so the membership read and the export a poke starts may miss it:
     * tick again until a read sees the commit. Once one does, every
     * read begun after it does too. */
    p->last_txn = t;
    p->repoke = visible_txn(p->r) < t;
    if (!still_member(p)) { /* keeps (6) */
        char hex[2 * CRDT_PUBKEY_BYTES + 1];
        crdt_hex(hex, p->peer_key, sizeof p->peer_key);
        fail(p, CRDT_EAUTH, "peer %s is no longer a member of the space",
             hex);
        crdtnet__peer_log(p, CRDTNET_LOG_WARN, "closing: %s", p->reason);
        begin_close(p);
    } else if (p->o.live) {
        crdtnet_session_poke(p->s);
    }
}

void
crdtnet__peer_keepalive(crdtnet_peer *p)
{
    if (p->state == ST_SESSION)
        p->keepalive = 1;
}

#define PEER_TICK_MS 250

/* The earlier of @p a and @p b. */
static uint64_t
earlier(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

uint64_t
crdtnet_peer_tick(crdtnet_peer *p, uint64_t now)
{
    uint64_t hs_ms, idle_ms, next = UINT64_MAX;

    if (p == NULL || p->state == ST_DONE)
        return UINT64_MAX;
    hs_ms = p->o.handshake_timeout_ms > 0 ? (uint64_t)p->o.handshake_timeout_ms
                                          : 10000;
    idle_ms = p->o.idle_timeout_ms > 0 ? (uint64_t)p->o.idle_timeout_ms
                                       : 30000;
    if (!p->ticked) {
        p->ticked = 1;
        p->t_start = p->t_rx = p->t_tx = p->t_live = now;
    }
    /* traffic since the last tick dates from about now: a loop ticks
     * each time it wakes, so this is late by at most one wait */
    if (p->bytes_in != p->tick_in)
        p->t_rx = now;
    if (p->bytes_out != p->tick_out)
        p->t_tx = now;
    p->tick_in = p->bytes_in;
    p->tick_out = p->bytes_out;
    if (p->state == ST_HS && now - p->t_start >= hs_ms)
        crdtnet__peer_fail(p, CRDT_EIO, "handshake timed out after %llu ms",
                           (unsigned long long)hs_ms);
    if ((p->state == ST_SESSION || p->state == ST_CLOSING) &&
        now - p->t_rx >= idle_ms)
        crdtnet__peer_fail(p, CRDT_EIO, "idle timeout (%llu ms)",
                           (unsigned long long)idle_ms);
    if (p->state == ST_SESSION && now - p->t_live >= PEER_TICK_MS) {
        p->t_live = now;
        crdtnet__peer_tick(p);
    }
    if (p->state == ST_SESSION && p->o.live &&
        now - p->t_tx >= idle_ms / 3) {
        p->t_tx = now; /* one keepalive per third of the idle timeout */
        crdtnet__peer_keepalive(p);
    }
    switch (p->state) {
    case ST_HS:
        next = p->t_start + hs_ms;
        break;
    case ST_SESSION:
        next = earlier(p->t_rx + idle_ms, p->t_live + PEER_TICK_MS);
        if (p->o.live)
            next = earlier(next, p->t_tx + idle_ms / 3);
        break;
    case ST_CLOSING:
        next = p->t_rx + idle_ms;
        break;
    default: /* FLUSH: the transport's to finish */
        next = now + PEER_TICK_MS;
        break;
    }
    return p->state == ST_DONE ? UINT64_MAX : next;
}

/* ---- life ---------------------------------------------------------- */

int
crdtnet_peer_new(crdtnet_peer **out, crdt_replica *const *replicas,
                 size_t n, crdtnet_hs_role role,
                 const crdtnet_peer_options *opts)
{
    crdtnet_peer_options defaults = CRDTNET_PEER_OPTIONS_INIT;
    crdtnet_hs_config cfg = CRDTNET_HS_CONFIG_INIT;
    unsigned char pk[CRDT_PUBKEY_BYTES];
    unsigned char sid[CRDT_SPACE_ID_BYTES];
    unsigned char inv[CRDTNET_INVITE_SECRET_BYTES];
    crdtnet_peer *p;
    int rc;

    if (out == NULL || replicas == NULL || n == 0 ||
        (role == CRDTNET_HS_CLIENT && n != 1) ||
        (role != CRDTNET_HS_CLIENT && role != CRDTNET_HS_SERVER))
        return CRDT_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (replicas[i] == NULL)
            return CRDT_EINVAL;
    if ((p = calloc(1, sizeof *p)) == NULL)
        return CRDT_ENOMEM;
    p->o = defaults;
    if (opts != NULL && opts->version >= 2)
        p->o = *opts;
    else if (opts != NULL) /* version 1: the fields before sync_proto */
        memcpy(&p->o, opts, offsetof(crdtnet_peer_options, sync_proto));
    p->role = role;
    p->state = ST_HS;
    if ((p->reps = malloc(n * sizeof *p->reps)) == NULL) {
        free(p);
        return CRDT_ENOMEM;
    }
    memcpy(p->reps, replicas, n * sizeof *p->reps);
    p->n_reps = n;
    rc = crdtnet_framer_new(&p->fr, CRDTNET_HS_MSG_MAX); /* keeps (2) */
    if (rc == CRDT_OK && role == CRDTNET_HS_CLIENT) {
        p->r = replicas[0];
        crdt_replica_space_id(p->r, sid);
        crdt_replica_public_key(p->r, pk);
        cfg.role = CRDTNET_HS_CLIENT;
        cfg.space_id = sid;
        cfg.pk = pk;
        cfg.sign = replica_sign;
        cfg.sign_ctx = p->r;
        cfg.is_member = client_is_member;
        cfg.ctx = p;
        cfg.frame_max = SESSION_FRAME_MAX;
        if (crdtnet__invite_pending(p->r, inv))
            cfg.invite = inv;
        rc = crdtnet_hs_new(&p->hs, &cfg);
        sodium_memzero(inv, sizeof inv);
    }
    if (rc < 0) {
        crdtnet_peer_free(p);
        return rc;
    }
    *out = p;
    return CRDT_OK;
}

void
crdtnet_peer_free(crdtnet_peer *p)
{
    if (p == NULL)
        return;
    crdtnet_session_free(p->s);
    crdtnet_channel_free(p->ch);
    crdtnet_hs_free(p->hs);
    crdtnet_framer_free(p->fr);
    if (p->obuf != NULL)
        sodium_memzero(p->obuf, p->ocap);
    free(p->obuf);
    if (p->hsq != NULL)
        sodium_memzero(p->hsq, p->hsq_cap);
    free(p->hsq);
    free(p->reps);
    free(p);
}
