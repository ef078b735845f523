/*
 * peer.c: a sync peer over any transport (crdtnet/peer.h): the framer,
 * the handshake, the channel and the session behind feed()/next_out().
 * The same protocol steps as conn.c's TCP connection, minus sockets,
 * clocks and threads (docs/protocol.md, "Sessions over TCP": the bytes
 * on any transport are the bytes on TCP).
 *
 *   HS --hs done--> SESSION --session over / peer FINAL / error / stop-->
 *    |                        CLOSING --our FINAL out, then the peer's
 *    |                                  FINAL or eof()--> DONE
 *    +--hs failed--> FLUSH (its error frame goes out) --> DONE
 *    +--eof(), bad frame--> DONE
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
 */
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crdtnet/channel.h"
#include "crdtnet/conn.h"
#include "crdtnet/frame.h"
#include "crdtnet/handshake.h"
#include "crdtnet/peer.h"
#include "net_internal.h"

#define SESSION_FRAME_MAX (CRDTNET_SESSION_MSG_MAX + CRDTNET_CHANNEL_ABYTES)

enum { ST_HS = 1, ST_FLUSH, ST_SESSION, ST_CLOSING, ST_DONE };

struct crdtnet_peer {
    crdtnet_hs_role role;
    int state;
    crdtnet_peer_options o;
    crdt_replica *r;             /* the client's, or the server's pick */
    crdt_replica **reps;
    size_t n_reps;
    crdtnet_framer *fr;
    crdtnet_hs *hs;
    crdtnet_channel *ch;
    crdtnet_session *s;
    int tofu_used, authenticated;
    unsigned char peer_key[CRDTNET_PK_BYTES];
    /* output: bytes waiting to be handed out, then the piece handed out */
    unsigned char *obuf;
    size_t olen, ocap;
    int handed;                  /* obuf was handed out: drop it next */
    int final_sent, peer_final, peer_err, eof, stopping;
    int err;
    char reason[CRDTNET_REASON_MAX + 8];
    uint64_t bytes_in, bytes_out;
};

static void
fail(crdtnet_peer *p, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
fail(crdtnet_peer *p, int code, const char *fmt, ...)
{
    va_list ap;

    if (p->err != 0)
        return; /* keeps (4) */
    p->err = code;
    va_start(ap, fmt);
    vsnprintf(p->reason, sizeof p->reason, fmt, ap);
    va_end(ap);
}

/* ---- handshake callbacks (as conn.c's) ----------------------------- */

static int
server_space_ok(const unsigned char space_id[CRDTNET_SPACE_ID_BYTES],
                void *ctx)
{
    crdtnet_peer *p = ctx;
    unsigned char sid[CRDT_SPACE_ID_BYTES];

    for (size_t i = 0; i < p->n_reps; i++) {
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

static int
client_is_member(const unsigned char pk[CRDTNET_PK_BYTES], void *ctx)
{
    crdtnet_peer *p = ctx;
    uint64_t n;

    if (crdtnet_is_member(p->r, pk))
        return 1;
    /* Trust on first use: a replica that joined and never synced. */
    if (!p->o.no_tofu && crdtnet_member_count(p->r, &n) == CRDT_OK &&
        n == 0) {
        p->tofu_used = 1;
        return 1;
    }
    return 0;
}

/* ---- output -------------------------------------------------------- */

/* Append one frame (header + @p body) to obuf. */
static int
put_frame(crdtnet_peer *p, const unsigned char *body, size_t n)
{
    size_t need = p->olen + CRDTNET_FRAME_HEADER_BYTES + n;
    int rc;

    if (need > p->ocap) {
        size_t cap = p->ocap ? p->ocap : 4096;
        unsigned char *nb;
        while (cap < need)
            cap *= 2;
        if ((nb = realloc(p->obuf, cap)) == NULL)
            return CRDT_ENOMEM;
        p->obuf = nb;
        p->ocap = cap;
    }
    if ((rc = crdtnet_frame_header(p->obuf + p->olen, n)) < 0)
        return rc;
    if (n > 0)
        memcpy(p->obuf + p->olen + CRDTNET_FRAME_HEADER_BYTES, body, n);
    p->olen = need;
    return CRDT_OK;
}

static void
drain_hs(crdtnet_peer *p)
{
    const unsigned char *m;
    size_t n;

    while (p->hs != NULL && crdtnet_hs_next_out(p->hs, &m, &n) == CRDT_OK)
        if (put_frame(p, m, n) < 0) {
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

/* Our FINAL: empty when all went well or the session already said why;
 * else [ "strata-error", code, reason ] for this layer's failures. */
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

/* Pull what comes next into obuf (keeps (1)). */
static void
fill(crdtnet_peer *p)
{
    const unsigned char *m, *sealed;
    size_t n, sn;
    int rc;

    if (p->olen > 0)
        return;
    if (p->state == ST_HS) {
        drain_hs(p);
        return;
    }
    if (p->state == ST_FLUSH) {
        p->state = ST_DONE; /* the handshake's error frame went out */
        return;
    }
    if (p->state == ST_SESSION) {
        rc = crdtnet_session_next_out(p->s, &m, &n);
        if (rc == CRDT_OK) {
            rc = crdtnet_channel_seal(p->ch, m, n, &sealed, &sn);
            if (rc == CRDT_OK)
                rc = put_frame(p, sealed, sn);
            if (rc == CRDT_OK)
                return;
            fail(p, rc, "seal: %s", crdt_strerror(rc));
            begin_close(p);
        } else if (rc != CRDT_EAGAIN) {
            begin_close(p); /* the session finished or failed */
        } else if (p->peer_final || p->peer_err || p->stopping) {
            begin_close(p); /* the other side will send nothing more */
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
    int rc;

    drain_hs(p); /* the last handshake frame goes out before any sealed */
    rc = crdtnet_hs_take_channel(&p->ch, p->hs);
    if (rc == CRDT_OK)
        rc = crdtnet_framer_set_max(p->fr, SESSION_FRAME_MAX);
    if (rc == CRDT_OK) {
        so.policy = p->o.policy;
        so.batch_bytes = p->o.batch_bytes;
        so.live = p->o.live;
        rc = crdtnet_session_new(&p->s, p->r, &so);
    }
    if (rc < 0) {
        fail(p, rc, "starting the session: %s", crdt_strerror(rc));
        p->state = ST_DONE;
        return;
    }
    crdtnet_hs_peer_key(p->hs, p->peer_key);
    crdtnet_hs_free(p->hs);
    p->hs = NULL;
    p->authenticated = 1;
    p->state = ST_SESSION;
}

/* Server: answer with the identity of the replica holding the space the
 * client's hello is for (matched before the handshake exists). */
static int
server_hs_new(crdtnet_peer *p, const unsigned char *m, size_t n)
{
    crdtnet_hs_config cfg = CRDTNET_HS_CONFIG_INIT;
    unsigned char pk[CRDT_PUBKEY_BYTES], sk[CRDT_SECKEY_BYTES];
    unsigned char sid[CRDT_SPACE_ID_BYTES];
    crdt_replica *id = p->reps[0];
    size_t i;
    int rc;

    /* The hello names no space: its MAC verifies under one (or none). */
    for (i = 0; i < p->n_reps; i++) {
        crdt_replica_space_id(p->reps[i], sid);
        if (crdtnet_hs_hello_is_for(m, n, sid)) {
            id = p->reps[i];
            cfg.space_id = sid;
            break;
        }
    }
    p->r = NULL; /* chosen again by the handshake's space_ok */
    crdt_replica_public_key(id, pk);
    crdt_replica_secret_key(id, sk);
    cfg.role = CRDTNET_HS_SERVER;
    cfg.pk = pk;
    cfg.sk = sk;
    cfg.is_member = server_is_member;
    cfg.space_ok = server_space_ok;
    cfg.invite_ok = server_invite_ok;
    cfg.ctx = p;
    cfg.frame_max = SESSION_FRAME_MAX;
    rc = crdtnet_hs_new(&p->hs, &cfg);
    sodium_memzero(sk, sizeof sk);
    return rc;
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

static void
channel_frame(crdtnet_peer *p, const unsigned char *f, size_t n)
{
    const unsigned char *m;
    size_t mn;
    int rc;

    if (p->peer_final) {
        fail(p, CRDT_EPROTO, "frame after the peer's final message");
        p->state = ST_DONE;
        return;
    }
    rc = crdtnet_channel_open(p->ch, f, n, &m, &mn);
    if (rc < 0) {
        fail(p, rc, "bad frame from peer: %s", crdt_strerror(rc));
        begin_close(p);
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
    if (mn == 0 || p->state != ST_SESSION)
        return; /* keepalive, or the session is over: drop */
    (void)crdtnet_session_feed(p->s, m, mn); /* failure: next_out ends */
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
            if (p->state == ST_SESSION)
                begin_close(p);
            else
                p->state = ST_DONE;
            return CRDT_OK;
        }
        if (off == n)
            return CRDT_OK;
        rc = crdtnet_framer_feed(p->fr, buf + off, n - off, &used);
        if (rc < 0)
            continue; /* framer_next reports it */
        if (used == 0 && ++stalls > 1) {
            fail(p, CRDT_ERROR, "framer made no progress");
            p->state = ST_DONE;
            return CRDT_OK;
        }
        off += used;
    }
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
    if (p->state == ST_HS)
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

/* As conn.c's result(): the same end reads the same way on any wire. */
int
crdtnet_peer_result(const crdtnet_peer *p, crdtnet_report *out)
{
    const crdtnet_report *rep;
    int serr, rc;

    if (out != NULL)
        memset(out, 0, sizeof *out);
    if (p == NULL)
        return CRDT_EINVAL;
    rep = p->s ? crdtnet_session_report(p->s) : NULL;
    serr = p->s ? crdtnet_session_error(p->s) : CRDT_OK;
    if (p->state != ST_DONE)
        return CRDT_EAGAIN;
    if (p->s == NULL)
        rc = p->err < 0 ? p->err : CRDT_EIO;
    else if (rep->rejected)
        rc = CRDT_EREJECTED;
    else if (rep->busy_retry_ms > 0 || serr == CRDT_EBUSY)
        rc = CRDT_EBUSY;
    else if (serr < 0)
        rc = serr;
    else if (p->peer_err)
        rc = p->err;
    else if (crdtnet_session_finished(p->s))
        rc = CRDT_OK;
    else if (p->err < 0)
        rc = p->err;
    else if (p->o.live && (p->peer_final || p->stopping))
        rc = CRDT_OK;
    else if (p->stopping)
        rc = CRDT_ECLOSED;
    else
        rc = CRDT_EIO;
    if (out != NULL) {
        if (rep != NULL)
            *out = *rep;
        if (rc < 0 && (out->reason[0] == '\0' || p->peer_err)) {
            const char *why = p->reason[0] ? p->reason : crdt_strerror(rc);
            size_t wl = strlen(why);
            if (wl >= sizeof out->reason)
                wl = sizeof out->reason - 1; /* cut to fit */
            memcpy(out->reason, why, wl);
            out->reason[wl] = '\0';
        }
    }
    return rc;
}

/* ---- life ---------------------------------------------------------- */

int
crdtnet_peer_new(crdtnet_peer **out, crdt_replica *const *replicas,
                 size_t n, crdtnet_hs_role role,
                 const crdtnet_peer_options *opts)
{
    crdtnet_peer_options defaults = CRDTNET_PEER_OPTIONS_INIT;
    crdtnet_hs_config cfg = CRDTNET_HS_CONFIG_INIT;
    unsigned char pk[CRDT_PUBKEY_BYTES], sk[CRDT_SECKEY_BYTES];
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
    p->o = opts ? *opts : defaults;
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
        crdt_replica_secret_key(p->r, sk);
        cfg.role = CRDTNET_HS_CLIENT;
        cfg.space_id = sid;
        cfg.pk = pk;
        cfg.sk = sk;
        cfg.is_member = client_is_member;
        cfg.ctx = p;
        cfg.frame_max = SESSION_FRAME_MAX;
        if (crdtnet__invite_pending(p->r, inv))
            cfg.invite = inv;
        rc = crdtnet_hs_new(&p->hs, &cfg);
        sodium_memzero(sk, sizeof sk);
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
    free(p->reps);
    free(p);
}
