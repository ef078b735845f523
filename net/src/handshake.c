/*
 * handshake.c: the authenticated key exchange, sans-I/O, and the bounded
 * codec for its four messages (docs/protocol.md, "Handshake").
 *
 * Client:  new: queue hello
 *   C_WAIT_ACK --ack--> queue hdr, {auth} --> C_WAIT_HDR --hdr-->
 *   C_WAIT_AUTH --{auth} verified, member--> DONE
 * Server:
 *   S_WAIT_HELLO --hello--> queue ack, hdr --> S_WAIT_HDR --hdr-->
 *   S_WAIT_AUTH --{auth} verified, member--> queue {auth}, DONE
 * Any state --bad input--> FAILED (sticky)          {x}: sealed
 *
 * Invariants:
 *  (1) Nothing identifying (long-term key, signature) is queued before
 *      our push stream exists: identities never travel in plaintext.
 *  (2) The server reveals its identity only to a client that proved it
 *      is a member, so probing a daemon does not tell who runs it.
 *  (3) Failure is sticky and queues at most one error frame: plaintext
 *      only from a server answering a hello, sealed with TAG_FINAL once
 *      our push stream exists. A peer's error is never answered.
 *  (4) Secrets are wiped as soon as they are no longer needed: the
 *      ephemeral key after key exchange, each session key once its
 *      stream is set up, everything on failure or free.
 *  (5) Signatures cover the transcript hash built from the keys and space
 *      we hold, never re-encoded peer messages, so encoding variants
 *      cannot change what is signed.
 *  (6) The decoder never allocates and never trusts a count beyond the
 *      bytes present (docs/testing.md B3); messages are flat, so nesting (B4) is
 *      just a type error.
 */
#include <limits.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crdtnet/frame.h"
#include "net_internal.h"

#define MAGIC "strata"
#define MAGIC_ERR "strata-error"
#define TH_LABEL "strata-hs-v1"
#define SIG_LABEL_CLIENT "strata-auth-client"
#define SIG_LABEL_SERVER "strata-auth-server"
#define LABEL_MAX 18 /* the longer signature label */
#define EPH_BYTES crypto_kx_PUBLICKEYBYTES
#define TH_BYTES 32
#define SIG_BYTES crypto_sign_BYTES
#define HDR_BYTES crypto_secretstream_xchacha20poly1305_HEADERBYTES
#define BIT(kind) (1u << (kind))

_Static_assert(EPH_BYTES == 32 && crypto_kx_SECRETKEYBYTES == 32 &&
                   crypto_kx_SESSIONKEYBYTES ==
                       crypto_secretstream_xchacha20poly1305_KEYBYTES &&
                   SIG_BYTES == 64 &&
                   crypto_sign_PUBLICKEYBYTES == CRDTNET_PK_BYTES &&
                   crypto_sign_SECRETKEYBYTES == CRDTNET_SK_BYTES,
               "sizes in handshake.h and net_internal.h match libsodium");

static const char R_VERSION[] = "unsupported protocol version";
static const char R_SPACE[] = "unknown space";
static const char R_EPH[] = "invalid ephemeral key";
static const char R_DECRYPT[] = "decryption failed";
static const char R_SIG[] = "bad signature";
static const char R_MEMBER[] = "not a member of this space";
static const char R_MALFORMED[] = "malformed handshake message";
static const char R_TOO_BIG[] = "handshake message too large";

/* ---- bounded msgpack reader --------------------------------------- */

typedef struct {
    const unsigned char *p;
    size_t n;
} rd;

typedef struct {
    int neg;    /* below zero: s holds it; otherwise u does */
    uint64_t u;
    int64_t s;
} mp_int;

static int
rd_be(rd *r, size_t k, uint64_t *v)
{
    uint64_t x = 0;
    size_t i;

    if (r->n < k)
        return CRDT_EPROTO;
    for (i = 0; i < k; i++)
        x = (x << 8) | r->p[i];
    r->p += k;
    r->n -= k;
    *v = x;
    return CRDT_OK;
}

static int
rd_tag(rd *r, unsigned char *b)
{
    if (r->n == 0)
        return CRDT_EPROTO;
    *b = *r->p++;
    r->n--;
    return CRDT_OK;
}

static int
rd_array(rd *r, size_t *count)
{
    unsigned char b;
    uint64_t c;
    int rc = rd_tag(r, &b);

    if (rc < 0)
        return rc;
    if (b >= 0x90 && b <= 0x9f)
        c = b & 0x0f;
    else if (b == 0xdc)
        rc = rd_be(r, 2, &c);
    else if (b == 0xdd)
        rc = rd_be(r, 4, &c);
    else
        return CRDT_EPROTO;
    /* Every element takes at least one byte (6). */
    if (rc < 0 || c > r->n)
        return CRDT_EPROTO;
    *count = (size_t)c;
    return CRDT_OK;
}

/* A str (bin == 0) or bin (bin == 1); the body is a view into r. */
static int
rd_raw(rd *r, int bin, const unsigned char **body, size_t *len)
{
    unsigned char b;
    uint64_t l;
    int rc = rd_tag(r, &b);

    if (rc < 0)
        return rc;
    if (!bin && b >= 0xa0 && b <= 0xbf)
        l = b & 0x1f;
    else if ((!bin && b == 0xd9) || (bin && b == 0xc4))
        rc = rd_be(r, 1, &l);
    else if ((!bin && b == 0xda) || (bin && b == 0xc5))
        rc = rd_be(r, 2, &l);
    else if ((!bin && b == 0xdb) || (bin && b == 0xc6))
        rc = rd_be(r, 4, &l);
    else
        return CRDT_EPROTO;
    if (rc < 0 || l > r->n)
        return CRDT_EPROTO;
    *body = r->p;
    *len = (size_t)l;
    r->p += l;
    r->n -= l;
    return CRDT_OK;
}

static int
rd_bin_exact(rd *r, unsigned char *out, size_t want)
{
    const unsigned char *b;
    size_t len;
    int rc = rd_raw(r, 1, &b, &len);

    if (rc < 0 || len != want)
        return CRDT_EPROTO;
    memcpy(out, b, want);
    return CRDT_OK;
}

static int
rd_int(rd *r, mp_int *v)
{
    unsigned char b;
    uint64_t x;
    size_t k;
    int rc = rd_tag(r, &b);

    if (rc < 0)
        return rc;
    memset(v, 0, sizeof *v);
    if (b <= 0x7f) {
        v->u = b;
        return CRDT_OK;
    }
    if (b >= 0xe0) {
        v->neg = 1;
        v->s = (int64_t)b - 256;
        return CRDT_OK;
    }
    if (b >= 0xcc && b <= 0xcf) {
        return rd_be(r, (size_t)1 << (b - 0xcc), &v->u);
    }
    if (b < 0xd0 || b > 0xd3)
        return CRDT_EPROTO;
    k = (size_t)1 << (b - 0xd0);
    rc = rd_be(r, k, &x);
    if (rc < 0)
        return rc;
    if (k < 8 && (x >> (8 * k - 1)) != 0) { /* sign bit of a short int */
        v->neg = 1;
        v->s = (int64_t)x - ((int64_t)1 << (8 * k));
    } else if (k == 8 && (x >> 63) != 0) {
        v->neg = 1;
        v->s = -(int64_t)(~x) - 1; /* two's complement without overflow */
    } else {
        v->u = x;
    }
    return CRDT_OK;
}

static int
str_is(const unsigned char *s, size_t len, const char *want)
{
    return len == strlen(want) && sodium_memcmp(s, want, len) == 0;
}

static int
decode_strata(crdtnet__hs_msg *m, unsigned accept, rd *r, size_t count)
{
    mp_int v;

    if (!(accept & (BIT(CRDTNET__MSG_HELLO) | BIT(CRDTNET__MSG_ACK))) ||
        count < 2 || rd_int(r, &v) < 0 || v.neg)
        return CRDT_EPROTO;
    /* Version first: a later version may lay out the rest differently. */
    if (v.u != CRDTNET_PROTO_VERSION)
        return CRDT_EVERSION;
    m->version = v.u;
    if (accept & BIT(CRDTNET__MSG_HELLO)) {
        m->kind = CRDTNET__MSG_HELLO;
        if (count != 4 || rd_bin_exact(r, m->space, sizeof m->space) < 0)
            return CRDT_EPROTO;
    } else {
        m->kind = CRDTNET__MSG_ACK;
        if (count != 3)
            return CRDT_EPROTO;
    }
    return rd_bin_exact(r, m->eph, sizeof m->eph);
}

static int
decode_error(crdtnet__hs_msg *m, rd *r, size_t count)
{
    const unsigned char *s;
    mp_int v;

    if (count != 3 || rd_int(r, &v) < 0 || (!v.neg && v.u > INT64_MAX))
        return CRDT_EPROTO;
    m->kind = CRDTNET__MSG_ERROR;
    m->code = v.neg ? v.s : (int64_t)v.u;
    if (rd_raw(r, 0, &s, &m->reason_len) < 0 ||
        m->reason_len > CRDTNET__REASON_WIRE_MAX)
        return CRDT_EPROTO;
    memcpy(m->reason, s, m->reason_len);
    m->reason[m->reason_len] = '\0';
    return CRDT_OK;
}

int
crdtnet__hs_decode(crdtnet__hs_msg *out, unsigned accept,
                   const unsigned char *p, size_t n)
{
    crdtnet__hs_msg m;
    rd r = {p, n};
    const unsigned char *s;
    size_t count, len;
    int rc;

    if (out == NULL || (p == NULL && n > 0))
        return CRDT_EINVAL;
    if (n > CRDTNET_HS_MSG_MAX)
        return CRDT_EPROTO;
    memset(&m, 0, sizeof m);
    rc = rd_array(&r, &count);
    if (rc < 0 || count == 0 || r.n == 0)
        return CRDT_EPROTO;
    if (*r.p == 0xc4 || *r.p == 0xc5 || *r.p == 0xc6) { /* auth: a bin */
        if (!(accept & BIT(CRDTNET__MSG_AUTH)) || count != 2)
            return CRDT_EPROTO;
        m.kind = CRDTNET__MSG_AUTH;
        rc = rd_bin_exact(&r, m.pk, sizeof m.pk);
        if (rc == CRDT_OK)
            rc = rd_bin_exact(&r, m.sig, sizeof m.sig);
    } else {
        rc = rd_raw(&r, 0, &s, &len);
        if (rc < 0)
            return rc;
        if (str_is(s, len, MAGIC))
            rc = decode_strata(&m, accept, &r, count);
        else if (str_is(s, len, MAGIC_ERR) &&
                 (accept & BIT(CRDTNET__MSG_ERROR)))
            rc = decode_error(&m, &r, count);
        else
            rc = CRDT_EPROTO;
    }
    if (rc < 0)
        return rc;
    if (r.n != 0) /* trailing bytes */
        return CRDT_EPROTO;
    *out = m;
    return CRDT_OK;
}

/* ---- encoder (msgpack-c, into a fixed buffer) ---------------------- */

typedef struct {
    unsigned char *p;
    size_t cap;
    size_t len;
} fixbuf;

static int
fixbuf_write(void *data, const char *buf, size_t len)
{
    fixbuf *b = data;

    if (len > b->cap - b->len)
        return -1;
    memcpy(b->p + b->len, buf, len);
    b->len += len;
    return 0;
}

int
crdtnet__hs_encode(unsigned char *buf, size_t cap, size_t *len_out,
                   const crdtnet__hs_msg *m)
{
    fixbuf fb = {buf, cap, 0};
    msgpack_packer pk;
    int bad = 0;

    msgpack_packer_init(&pk, &fb, fixbuf_write);
    switch (m->kind) {
    case CRDTNET__MSG_HELLO:
    case CRDTNET__MSG_ACK:
        bad |= msgpack_pack_array(&pk, m->kind == CRDTNET__MSG_HELLO ? 4 : 3);
        bad |= msgpack_pack_str_with_body(&pk, MAGIC, strlen(MAGIC));
        bad |= msgpack_pack_uint64(&pk, m->version);
        if (m->kind == CRDTNET__MSG_HELLO)
            bad |= msgpack_pack_bin_with_body(&pk, m->space, sizeof m->space);
        bad |= msgpack_pack_bin_with_body(&pk, m->eph, sizeof m->eph);
        break;
    case CRDTNET__MSG_AUTH:
        bad |= msgpack_pack_array(&pk, 2);
        bad |= msgpack_pack_bin_with_body(&pk, m->pk, sizeof m->pk);
        bad |= msgpack_pack_bin_with_body(&pk, m->sig, sizeof m->sig);
        break;
    case CRDTNET__MSG_ERROR:
        if (m->reason_len > CRDTNET__REASON_WIRE_MAX)
            return CRDT_EINVAL;
        bad |= msgpack_pack_array(&pk, 3);
        bad |= msgpack_pack_str_with_body(&pk, MAGIC_ERR, strlen(MAGIC_ERR));
        bad |= msgpack_pack_int64(&pk, m->code);
        bad |= msgpack_pack_str_with_body(&pk, m->reason, m->reason_len);
        break;
    default:
        return CRDT_EINVAL;
    }
    if (bad)
        return CRDT_ELIMIT;
    *len_out = fb.len;
    return CRDT_OK;
}

/* Printable ASCII only: a peer's text ends up in logs and terminals. */
static void
sanitize(char *dst, size_t size, const char *src, size_t len)
{
    size_t i;

    if (len > size - 1)
        len = size - 1;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)src[i];
        dst[i] = (c >= 0x20 && c <= 0x7e) ? (char)c : '?';
    }
    dst[len] = '\0';
}

int
crdtnet_hs_parse_error(const void *msg, size_t len, int *code_out,
                       char *reason_out, size_t reason_size)
{
    crdtnet__hs_msg m;

    if ((msg == NULL && len > 0) || code_out == NULL || reason_out == NULL ||
        reason_size == 0)
        return CRDT_EINVAL;
    if (crdtnet__hs_decode(&m, BIT(CRDTNET__MSG_ERROR), msg, len) < 0 ||
        m.code < INT_MIN || m.code > INT_MAX)
        return CRDT_EPROTO;
    *code_out = (int)m.code;
    sanitize(reason_out, reason_size, m.reason, m.reason_len);
    return CRDT_OK;
}

/* ---- state machine -------------------------------------------------- */

enum {
    C_WAIT_ACK = 1,
    C_WAIT_HDR,
    C_WAIT_AUTH,
    S_WAIT_HELLO,
    S_WAIT_HDR,
    S_WAIT_AUTH,
    DONE
};

/*
 * A side queues at most four frames in a whole handshake (client: hello,
 * hdr, auth, error). The largest is a sealed error: 1 + 13 + 9 + 2 + 255
 * bytes of msgpack + 17 = 297, so a half-open connection costs us under
 * 2 KiB here (docs/testing.md S5).
 */
#define OUT_SLOTS 4
#define OUT_CAP 320

struct crdtnet_hs {
    crdtnet_hs_role role;
    int state;
    int err;
    int have_space;
    int have_push;
    int taken;
    unsigned char space[CRDTNET_SPACE_ID_BYTES];
    unsigned char pk[CRDTNET_PK_BYTES];
    unsigned char sk[CRDTNET_SK_BYTES];
    unsigned char eph_pk[EPH_BYTES];
    unsigned char eph_sk[crypto_kx_SECRETKEYBYTES];
    unsigned char rx[crypto_kx_SESSIONKEYBYTES];
    unsigned char tx[crypto_kx_SESSIONKEYBYTES];
    unsigned char th[TH_BYTES];
    unsigned char peer_pk[CRDTNET_PK_BYTES];
    crdtnet__stream push;
    crdtnet__stream pull;
    crdtnet_hs_member_cb is_member;
    crdtnet_hs_space_cb space_ok;
    void *ctx;
    size_t frame_max;
    unsigned char out[OUT_SLOTS][OUT_CAP];
    size_t out_len[OUT_SLOTS];
    size_t out_n;
    size_t out_pos;
    char reason[CRDTNET_REASON_MAX + 8]; /* room for "peer: " */
};

static void
wipe_secrets(crdtnet_hs *hs)
{
    sodium_memzero(hs->sk, sizeof hs->sk);
    sodium_memzero(hs->eph_sk, sizeof hs->eph_sk);
    sodium_memzero(hs->rx, sizeof hs->rx);
    sodium_memzero(hs->tx, sizeof hs->tx);
    sodium_memzero(&hs->push, sizeof hs->push);
    sodium_memzero(&hs->pull, sizeof hs->pull);
}

static unsigned char *
out_slot(crdtnet_hs *hs)
{
    if (hs->out_pos == hs->out_n)
        hs->out_pos = hs->out_n = 0;
    if (hs->out_n == OUT_SLOTS)
        abort(); /* a bug: the protocol never queues this many */
    return hs->out[hs->out_n];
}

static void
out_commit(crdtnet_hs *hs, size_t len)
{
    hs->out_len[hs->out_n++] = len;
}

static int
queue_plain(crdtnet_hs *hs, const crdtnet__hs_msg *m)
{
    size_t len;
    int rc = crdtnet__hs_encode(out_slot(hs), OUT_CAP, &len, m);

    if (rc == CRDT_OK)
        out_commit(hs, len);
    return rc;
}

static int
queue_sealed(crdtnet_hs *hs, const crdtnet__hs_msg *m, unsigned char tag)
{
    unsigned char plain[OUT_CAP - crypto_secretstream_xchacha20poly1305_ABYTES];
    unsigned char *slot = out_slot(hs);
    unsigned long long clen;
    size_t len;
    int rc = crdtnet__hs_encode(plain, sizeof plain, &len, m);

    if (rc < 0)
        return rc;
    if (crypto_secretstream_xchacha20poly1305_push(&hs->push, slot, &clen,
                                                   plain, len, NULL, 0,
                                                   tag) != 0)
        rc = CRDT_ERROR;
    else
        out_commit(hs, (size_t)clen);
    sodium_memzero(plain, sizeof plain);
    return rc;
}

/* Keeps (3). @p tell: send the peer an error frame, if we can. */
static int
fail(crdtnet_hs *hs, int rc, const char *reason, int tell)
{
    crdtnet__hs_msg m;

    hs->err = rc;
    snprintf(hs->reason, sizeof hs->reason, "%s", reason);
    if (tell) {
        memset(&m, 0, sizeof m);
        m.kind = CRDTNET__MSG_ERROR;
        m.code = rc;
        m.reason_len = strlen(reason);
        memcpy(m.reason, reason, m.reason_len);
        if (hs->have_push)
            (void)queue_sealed(hs, &m,
                               crypto_secretstream_xchacha20poly1305_TAG_FINAL);
        else if (hs->role == CRDTNET_HS_SERVER)
            (void)queue_plain(hs, &m);
    }
    wipe_secrets(hs); /* keeps (4) */
    return rc;
}

/* The peer told us why it gave up; surface its reason, do not answer. */
static int
fail_peer(crdtnet_hs *hs, const crdtnet__hs_msg *m)
{
    char text[CRDTNET_REASON_MAX];
    int rc = CRDT_EAUTH; /* unknown codes: the peer refused us */

    if (m->code == CRDT_EVERSION || m->code == CRDT_EPROTO ||
        m->code == CRDT_EAUTH)
        rc = (int)m->code;
    sanitize(text, sizeof text, m->reason, m->reason_len);
    hs->err = rc;
    snprintf(hs->reason, sizeof hs->reason, "peer: %s", text);
    wipe_secrets(hs);
    return rc;
}

static void
transcript(crdtnet_hs *hs, const unsigned char *client_eph,
           const unsigned char *server_eph)
{
    unsigned char buf[sizeof TH_LABEL - 1 + CRDTNET_SPACE_ID_BYTES +
                      2 * EPH_BYTES];
    size_t n = sizeof TH_LABEL - 1;

    memcpy(buf, TH_LABEL, n);
    memcpy(buf + n, hs->space, CRDTNET_SPACE_ID_BYTES);
    n += CRDTNET_SPACE_ID_BYTES;
    memcpy(buf + n, client_eph, EPH_BYTES);
    n += EPH_BYTES;
    memcpy(buf + n, server_eph, EPH_BYTES);
    n += EPH_BYTES;
    crypto_generichash(hs->th, sizeof hs->th, buf, n, NULL, 0);
}

/* label || th: what each side signs; the labels stop reflection. */
static size_t
sig_input(const crdtnet_hs *hs, const char *label,
          unsigned char buf[LABEL_MAX + TH_BYTES])
{
    size_t n = strlen(label);

    memcpy(buf, label, n);
    memcpy(buf + n, hs->th, TH_BYTES);
    return n + TH_BYTES;
}

/* Open our push stream and queue its header; wipes tx (keeps (4)). */
static int
start_push(crdtnet_hs *hs)
{
    unsigned char *slot = out_slot(hs);

    crypto_secretstream_xchacha20poly1305_init_push(&hs->push, slot, hs->tx);
    sodium_memzero(hs->tx, sizeof hs->tx);
    out_commit(hs, HDR_BYTES);
    hs->have_push = 1;
    return CRDT_OK;
}

static int
queue_auth(crdtnet_hs *hs)
{
    unsigned char msg[LABEL_MAX + TH_BYTES];
    const char *label = hs->role == CRDTNET_HS_CLIENT ? SIG_LABEL_CLIENT
                                                      : SIG_LABEL_SERVER;
    size_t n = sig_input(hs, label, msg);
    crdtnet__hs_msg m;

    memset(&m, 0, sizeof m);
    m.kind = CRDTNET__MSG_AUTH;
    memcpy(m.pk, hs->pk, sizeof m.pk);
    crypto_sign_detached(m.sig, NULL, msg, n, hs->sk);
    return queue_sealed(hs, &m,
                        crypto_secretstream_xchacha20poly1305_TAG_MESSAGE);
}

static int
queue_hello(crdtnet_hs *hs)
{
    crdtnet__hs_msg m;

    memset(&m, 0, sizeof m);
    m.kind = CRDTNET__MSG_HELLO;
    m.version = CRDTNET_PROTO_VERSION;
    memcpy(m.space, hs->space, sizeof m.space);
    memcpy(m.eph, hs->eph_pk, sizeof m.eph);
    return queue_plain(hs, &m);
}

static int
on_hello(crdtnet_hs *hs, const unsigned char *p, size_t n)
{
    crdtnet__hs_msg m, ack;
    int rc = crdtnet__hs_decode(&m, BIT(CRDTNET__MSG_HELLO), p, n);

    if (rc == CRDT_EVERSION)
        return fail(hs, rc, R_VERSION, 1);
    if (rc < 0)
        return fail(hs, CRDT_EPROTO, R_MALFORMED, 1);
    if (!hs->space_ok(m.space, hs->ctx))
        return fail(hs, CRDT_EAUTH, R_SPACE, 1);
    memcpy(hs->space, m.space, sizeof hs->space);
    hs->have_space = 1;
    /* -1 for low-order or otherwise invalid points (docs/testing.md B20). */
    if (crypto_kx_server_session_keys(hs->rx, hs->tx, hs->eph_pk, hs->eph_sk,
                                      m.eph) != 0)
        return fail(hs, CRDT_EAUTH, R_EPH, 1);
    sodium_memzero(hs->eph_sk, sizeof hs->eph_sk);
    transcript(hs, m.eph, hs->eph_pk);

    memset(&ack, 0, sizeof ack);
    ack.kind = CRDTNET__MSG_ACK;
    ack.version = CRDTNET_PROTO_VERSION;
    memcpy(ack.eph, hs->eph_pk, sizeof ack.eph);
    rc = queue_plain(hs, &ack);
    if (rc == CRDT_OK)
        rc = start_push(hs);
    if (rc < 0)
        return fail(hs, rc, "internal error", 0);
    hs->state = S_WAIT_HDR;
    return CRDT_OK;
}

static int
on_ack(crdtnet_hs *hs, const unsigned char *p, size_t n)
{
    unsigned accept = BIT(CRDTNET__MSG_ACK) | BIT(CRDTNET__MSG_ERROR);
    crdtnet__hs_msg m;
    int rc = crdtnet__hs_decode(&m, accept, p, n);

    /* No push stream yet, so the client tells the server nothing. */
    if (rc == CRDT_EVERSION)
        return fail(hs, rc, R_VERSION, 0);
    if (rc < 0)
        return fail(hs, CRDT_EPROTO, R_MALFORMED, 0);
    if (m.kind == CRDTNET__MSG_ERROR)
        return fail_peer(hs, &m);
    if (crypto_kx_client_session_keys(hs->rx, hs->tx, hs->eph_pk, hs->eph_sk,
                                      m.eph) != 0)
        return fail(hs, CRDT_EAUTH, R_EPH, 0);
    sodium_memzero(hs->eph_sk, sizeof hs->eph_sk);
    transcript(hs, hs->eph_pk, m.eph);
    rc = start_push(hs);
    if (rc == CRDT_OK)
        rc = queue_auth(hs);
    if (rc < 0)
        return fail(hs, rc, "internal error", 0);
    hs->state = C_WAIT_HDR;
    return CRDT_OK;
}

static int
on_header(crdtnet_hs *hs, const unsigned char *p, size_t n)
{
    if (n != HDR_BYTES)
        return fail(hs, CRDT_EPROTO, R_MALFORMED, 1);
    if (crypto_secretstream_xchacha20poly1305_init_pull(&hs->pull, p,
                                                        hs->rx) != 0)
        return fail(hs, CRDT_EAUTH, R_DECRYPT, 1);
    sodium_memzero(hs->rx, sizeof hs->rx);
    hs->state = hs->role == CRDTNET_HS_CLIENT ? C_WAIT_AUTH : S_WAIT_AUTH;
    return CRDT_OK;
}

static int
on_auth(crdtnet_hs *hs, const unsigned char *p, size_t n)
{
    unsigned char plain[CRDTNET_HS_MSG_MAX];
    unsigned char msg[LABEL_MAX + TH_BYTES];
    const char *label = hs->role == CRDTNET_HS_CLIENT ? SIG_LABEL_SERVER
                                                      : SIG_LABEL_CLIENT;
    unsigned long long mlen;
    unsigned char tag;
    crdtnet__hs_msg m;
    size_t mn;
    int rc;

    if (crypto_secretstream_xchacha20poly1305_pull(
            &hs->pull, plain, &mlen, &tag, p, n, NULL, 0) != 0)
        return fail(hs, CRDT_EAUTH, R_DECRYPT, 1);
    if (tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL) {
        rc = crdtnet__hs_decode(&m, BIT(CRDTNET__MSG_ERROR), plain,
                                (size_t)mlen);
        if (rc < 0)
            return fail(hs, CRDT_EPROTO, R_MALFORMED, 0);
        return fail_peer(hs, &m);
    }
    if (tag != crypto_secretstream_xchacha20poly1305_TAG_MESSAGE ||
        crdtnet__hs_decode(&m, BIT(CRDTNET__MSG_AUTH), plain, (size_t)mlen) <
            0)
        return fail(hs, CRDT_EPROTO, R_MALFORMED, 1);
    mn = sig_input(hs, label, msg); /* keeps (5) */
    if (crypto_sign_verify_detached(m.sig, msg, mn, m.pk) != 0)
        return fail(hs, CRDT_EAUTH, R_SIG, 1);
    if (!hs->is_member(m.pk, hs->ctx))
        return fail(hs, CRDT_EAUTH, R_MEMBER, 1);
    memcpy(hs->peer_pk, m.pk, sizeof hs->peer_pk);
    if (hs->role == CRDTNET_HS_SERVER) { /* only now: keeps (2) */
        rc = queue_auth(hs);
        if (rc < 0)
            return fail(hs, rc, "internal error", 0);
    }
    sodium_memzero(hs->sk, sizeof hs->sk);
    hs->state = DONE;
    return CRDT_OK;
}

static int
config_ok(const crdtnet_hs_config *cfg)
{
    if (cfg->version != 1 || cfg->pk == NULL || cfg->sk == NULL ||
        cfg->is_member == NULL)
        return 0;
    if (cfg->frame_max != 0 && (cfg->frame_max < CRDTNET_FRAME_MAX_MIN ||
                                cfg->frame_max > CRDTNET_FRAME_MAX_HARD))
        return 0;
    if (cfg->role == CRDTNET_HS_CLIENT)
        return cfg->space_id != NULL;
    if (cfg->role == CRDTNET_HS_SERVER)
        return cfg->space_ok != NULL;
    return 0;
}

int
crdtnet_hs_new(crdtnet_hs **out, const crdtnet_hs_config *cfg)
{
    crdtnet_hs *hs;
    int rc = CRDT_OK;

    if (out == NULL || cfg == NULL || !config_ok(cfg))
        return CRDT_EINVAL;
    if (sodium_init() < 0)
        return CRDT_ERROR;
    /* libsodium's secret key ends with its public key. */
    if (sodium_memcmp(cfg->sk + 32, cfg->pk, CRDTNET_PK_BYTES) != 0)
        return CRDT_EINVAL;
    hs = calloc(1, sizeof *hs);
    if (hs == NULL)
        return CRDT_ENOMEM;
    hs->role = cfg->role;
    memcpy(hs->pk, cfg->pk, sizeof hs->pk);
    memcpy(hs->sk, cfg->sk, sizeof hs->sk);
    hs->is_member = cfg->is_member;
    hs->space_ok = cfg->space_ok;
    hs->ctx = cfg->ctx;
    hs->frame_max = cfg->frame_max;
    if (cfg->test_ephemeral_sk != NULL) {
        memcpy(hs->eph_sk, cfg->test_ephemeral_sk, sizeof hs->eph_sk);
        if (crypto_scalarmult_base(hs->eph_pk, hs->eph_sk) != 0)
            rc = CRDT_EINVAL;
    } else {
        crypto_kx_keypair(hs->eph_pk, hs->eph_sk);
    }
    if (rc == CRDT_OK && hs->role == CRDTNET_HS_CLIENT) {
        memcpy(hs->space, cfg->space_id, sizeof hs->space);
        hs->have_space = 1;
        hs->state = C_WAIT_ACK;
        rc = queue_hello(hs);
    } else {
        hs->state = S_WAIT_HELLO;
    }
    if (rc < 0) {
        crdtnet_hs_free(hs);
        return rc;
    }
    *out = hs;
    return CRDT_OK;
}

int
crdtnet_hs_feed(crdtnet_hs *hs, const void *payload, size_t len)
{
    const unsigned char *p = payload;

    if (hs == NULL || (payload == NULL && len > 0))
        return CRDT_EINVAL;
    if (hs->err != 0)
        return hs->err;
    if (hs->state == DONE)
        return CRDT_EINVAL; /* frames now belong to the channel */
    if (len == 0)
        return fail(hs, CRDT_EPROTO, R_MALFORMED, 1);
    if (len > CRDTNET_HS_MSG_MAX)
        return fail(hs, CRDT_EPROTO, R_TOO_BIG, 1);
    switch (hs->state) {
    case S_WAIT_HELLO:
        return on_hello(hs, p, len);
    case C_WAIT_ACK:
        return on_ack(hs, p, len);
    case C_WAIT_HDR:
    case S_WAIT_HDR:
        return on_header(hs, p, len);
    default:
        return on_auth(hs, p, len);
    }
}

int
crdtnet_hs_next_out(crdtnet_hs *hs, const unsigned char **payload_out,
                    size_t *len_out)
{
    if (hs == NULL || payload_out == NULL || len_out == NULL)
        return CRDT_EINVAL;
    if (hs->out_pos < hs->out_n) {
        *payload_out = hs->out[hs->out_pos];
        *len_out = hs->out_len[hs->out_pos];
        hs->out_pos++;
        return CRDT_OK;
    }
    return hs->err != 0 ? hs->err : CRDT_EAGAIN;
}

int
crdtnet_hs_done(const crdtnet_hs *hs)
{
    return hs != NULL && hs->err == 0 && hs->state == DONE;
}

int
crdtnet_hs_failed(const crdtnet_hs *hs)
{
    return hs == NULL ? CRDT_EINVAL : hs->err;
}

const char *
crdtnet_hs_reason(const crdtnet_hs *hs)
{
    return hs == NULL ? "" : hs->reason;
}

int
crdtnet_hs_peer_key(const crdtnet_hs *hs,
                    unsigned char pk_out[CRDTNET_PK_BYTES])
{
    if (hs == NULL || pk_out == NULL)
        return CRDT_EINVAL;
    if (hs->err != 0)
        return hs->err;
    if (hs->state != DONE)
        return CRDT_EAGAIN;
    memcpy(pk_out, hs->peer_pk, CRDTNET_PK_BYTES);
    return CRDT_OK;
}

int
crdtnet_hs_space(const crdtnet_hs *hs,
                 unsigned char space_out[CRDTNET_SPACE_ID_BYTES])
{
    if (hs == NULL || space_out == NULL)
        return CRDT_EINVAL;
    if (!hs->have_space)
        return CRDT_EAGAIN;
    memcpy(space_out, hs->space, CRDTNET_SPACE_ID_BYTES);
    return CRDT_OK;
}

int
crdtnet_hs_take_channel(crdtnet_channel **out, crdtnet_hs *hs)
{
    int rc;

    if (out == NULL || hs == NULL)
        return CRDT_EINVAL;
    if (hs->err != 0)
        return hs->err;
    if (hs->taken)
        return CRDT_EINVAL;
    if (hs->state != DONE || hs->out_pos < hs->out_n)
        return CRDT_EAGAIN;
    rc = crdtnet__channel_new(out, &hs->push, &hs->pull, hs->frame_max);
    if (rc < 0)
        return rc;
    hs->taken = 1;
    wipe_secrets(hs);
    return CRDT_OK;
}

void
crdtnet_hs_free(crdtnet_hs *hs)
{
    if (hs == NULL)
        return;
    sodium_memzero(hs, sizeof *hs); /* keys, states, transcript */
    free(hs);
}
