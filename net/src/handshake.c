/*
 * handshake.c: the authenticated key exchange, sans-I/O, and the bounded
 * codec for its messages (docs/protocol.md, "Handshake"). The pattern is
 * Noise XX's, with Ed25519 signatures over the transcript where XX has
 * the static-key exchanges es and se:
 *
 *   -> hello  e, mac                 (mac: keyed by the space id)
 *   <- reply  e, ee, {s, sig, hdr}   (the server proves its key first)
 *   -> auth   {s, sig, hdr[, invite]}
 *
 * Client:  new: queue hello --> C_WAIT_REPLY --reply verified, member-->
 *          queue auth, DONE
 * Server:  S_WAIT_HELLO --hello MAC verified--> queue reply --> S_WAIT_AUTH
 *          --auth verified, member or invitation accepted--> DONE
 * Any state --bad input--> FAILED (sticky)
 *
 * Invariants:
 *  (1) The client's long-term key leaves only sealed, and only after the
 *      server proved its own key over this transcript and the client's
 *      is_member callback accepted it.
 *  (2) A server answers nothing to a hello whose MAC does not verify
 *      under the space it serves: a stranger and a client of another
 *      space see the same silence. The one exception is a hello of
 *      another protocol version, answered with a version error whatever
 *      its space, so it tells nothing about the space either.
 *  (3) No X25519 before the hello's MAC verified (one keyed BLAKE2b), so
 *      flooding a server with first messages costs it only hashes.
 *  (4) The protocol version and the space id start the transcript hash,
 *      and every key and signature depends on it: peers that disagree on
 *      either cannot finish.
 *  (5) Signatures cover transcript hashes built from values we hold,
 *      never re-encoded peer messages.
 *  (6) Failure is sticky and queues at most one error frame. Secrets are
 *      wiped as soon as they are no longer needed and on failure.
 *  (7) The decoder is libcrdt's bounded reader: it never allocates and
 *      never trusts a count beyond the bytes present (docs/testing.md
 *      B3); messages are flat, so nesting (B4) is just a type error.
 */
#include <limits.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crdtnet/frame.h"
#include "internal.h" /* libcrdt: bounded msgpack reader */
#include "net_internal.h"

#define MAGIC "strata"
#define MAGIC_ERR "strata-error"
#define NET_LABEL "strata-net-v2"
#define TH_LABEL "strata-hs-v2"
#define KDF_CTX "strataHS" /* crypto_kdf context: exactly 8 bytes */
#define SIG_LABEL_CLIENT "strata-auth-client"
#define SIG_LABEL_SERVER "strata-auth-server"
#define LABEL_BYTES 18 /* both signature labels */
#define EPH_BYTES CRDTNET__EPH_BYTES
#define MAC_BYTES CRDTNET__MAC_BYTES
#define TH_BYTES 32
#define SIG_BYTES CRDTNET__SIG_BYTES
#define HDR_BYTES CRDTNET__HDR_BYTES
#define KEY_BYTES 32
#define ABYTES crypto_aead_xchacha20poly1305_ietf_ABYTES
#define BIT(kind) (1u << (kind))

enum { KDF_REPLY = 1, KDF_AUTH, KDF_C2S, KDF_S2C };

_Static_assert(EPH_BYTES == crypto_scalarmult_BYTES &&
                   EPH_BYTES == crypto_scalarmult_SCALARBYTES &&
                   KEY_BYTES ==
                       crypto_secretstream_xchacha20poly1305_KEYBYTES &&
                   KEY_BYTES == crypto_aead_xchacha20poly1305_ietf_KEYBYTES &&
                   HDR_BYTES ==
                       crypto_secretstream_xchacha20poly1305_HEADERBYTES &&
                   SIG_BYTES == crypto_sign_BYTES &&
                   crypto_sign_PUBLICKEYBYTES == CRDTNET_PK_BYTES &&
                   crypto_sign_SECRETKEYBYTES == CRDTNET_SK_BYTES &&
                   sizeof KDF_CTX - 1 == crypto_kdf_CONTEXTBYTES &&
                   CRDTNET_SPACE_ID_BYTES >= crypto_generichash_KEYBYTES_MIN,
               "sizes in handshake.h and handshake_internal.h match libsodium");

static const char R_VERSION[] =
    "unsupported protocol version (this side speaks version 2)";
static const char R_STRANGER[] = "hello not for a space served here";
static const char R_EPH[] = "invalid ephemeral key";
static const char R_DECRYPT[] = "decryption failed";
static const char R_SIG[] = "bad signature";
static const char R_MEMBER[] = "not a member of this space";
static const char R_SERVER[] = "the server is not a member of this space "
                               "(nor the key this replica pinned)";
static const char R_MALFORMED[] = "malformed handshake message";
static const char R_TOO_BIG[] = "handshake message too large";

/* ---- decoder (libcrdt's bounded reader) ---------------------------- */

static int
str_is(const char *s, uint32_t len, const char *want)
{
    return len == strlen(want) && memcmp(s, want, len) == 0;
}

static int
decode_hello(crdtnet__hs_msg *m, crdt__mp *r, uint32_t count)
{
    if (count < 2 || crdt__mp_uint(r, &m->version) < 0)
        return CRDT_EPROTO;
    /* Version first: a later version may lay out the rest differently. */
    if (m->version != CRDTNET_PROTO_VERSION)
        return CRDT_EVERSION;
    m->kind = CRDTNET__MSG_HELLO;
    if (count != 4 || crdt__mp_bin_fixed(r, m->eph, EPH_BYTES) < 0 ||
        crdt__mp_bin_fixed(r, m->mac, MAC_BYTES) < 0)
        return CRDT_EPROTO;
    return CRDT_OK;
}

static int
decode_error(crdtnet__hs_msg *m, crdt__mp *r, uint32_t count)
{
    const char *s;
    uint32_t len;

    if (count != 3 || crdt__mp_int(r, &m->code) < 0 ||
        crdt__mp_str(r, &s, &len) < 0 || len > CRDTNET__REASON_WIRE_MAX)
        return CRDT_EPROTO;
    m->kind = CRDTNET__MSG_ERROR;
    memcpy(m->reason, s, len);
    m->reason_len = len;
    m->reason[len] = '\0';
    return CRDT_OK;
}

/* [ pk, sig, hdr ] (SAUTH, CAUTH) or [ pk, sig, hdr, invite ] (CAUTH). */
static int
decode_auth(crdtnet__hs_msg *m, unsigned accept, crdt__mp *r, uint32_t count)
{
    int cauth = (accept & BIT(CRDTNET__MSG_CAUTH)) != 0;

    if (count != 3 && !(cauth && count == 4))
        return CRDT_EPROTO;
    m->kind = cauth ? CRDTNET__MSG_CAUTH : CRDTNET__MSG_SAUTH;
    if (crdt__mp_bin_fixed(r, m->pk, CRDTNET_PK_BYTES) < 0 ||
        crdt__mp_bin_fixed(r, m->sig, SIG_BYTES) < 0 ||
        crdt__mp_bin_fixed(r, m->hdr, HDR_BYTES) < 0)
        return CRDT_EPROTO;
    if (count == 4) {
        m->has_invite = 1;
        if (crdt__mp_bin_fixed(r, m->invite, CRDTNET__INVITE_SECRET_BYTES) < 0)
            return CRDT_EPROTO;
    }
    return CRDT_OK;
}

int
crdtnet__hs_decode(crdtnet__hs_msg *out, unsigned accept,
                   const unsigned char *p, size_t n)
{
    crdtnet__hs_msg m;
    crdt__mp r = {p, p + n};
    const char *s;
    uint32_t count, len;
    int rc;

    if (out == NULL || (p == NULL && n > 0))
        return CRDT_EINVAL;
    if (n > CRDTNET_HS_MSG_MAX || n == 0)
        return CRDT_EPROTO;
    memset(&m, 0, sizeof m);
    if (crdt__mp_array(&r, &count) < 0 || count == 0)
        return CRDT_EPROTO;
    if (accept & (BIT(CRDTNET__MSG_SAUTH) | BIT(CRDTNET__MSG_CAUTH))) {
        rc = decode_auth(&m, accept, &r, count);
    } else if (crdt__mp_str(&r, &s, &len) == CRDT_OK) {
        if (str_is(s, len, MAGIC) && (accept & BIT(CRDTNET__MSG_HELLO)))
            rc = decode_hello(&m, &r, count);
        else if (str_is(s, len, MAGIC_ERR) &&
                 (accept & BIT(CRDTNET__MSG_ERROR)))
            rc = decode_error(&m, &r, count);
        else
            rc = CRDT_EPROTO;
    } else if ((accept & BIT(CRDTNET__MSG_REPLY)) && count == 2) {
        const unsigned char *box = NULL;
        uint32_t box_len = 0;

        m.kind = CRDTNET__MSG_REPLY;
        rc = crdt__mp_bin_fixed(&r, m.eph, EPH_BYTES);
        if (rc == CRDT_OK)
            rc = crdt__mp_bin(&r, &box, &box_len);
        if (rc == CRDT_OK && box_len < ABYTES)
            rc = CRDT_EPROTO;
        m.box = box;
        m.box_len = box_len;
    } else {
        rc = CRDT_EPROTO;
    }
    if (rc < 0)
        return rc;
    if (r.p != r.end) /* trailing bytes */
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
        bad |= msgpack_pack_array(&pk, 4);
        bad |= msgpack_pack_str_with_body(&pk, MAGIC, strlen(MAGIC));
        bad |= msgpack_pack_uint64(&pk, m->version);
        bad |= msgpack_pack_bin_with_body(&pk, m->eph, EPH_BYTES);
        bad |= msgpack_pack_bin_with_body(&pk, m->mac, MAC_BYTES);
        break;
    case CRDTNET__MSG_REPLY:
        bad |= msgpack_pack_array(&pk, 2);
        bad |= msgpack_pack_bin_with_body(&pk, m->eph, EPH_BYTES);
        bad |= msgpack_pack_bin_with_body(&pk, m->box, m->box_len);
        break;
    case CRDTNET__MSG_SAUTH:
    case CRDTNET__MSG_CAUTH:
        bad |= msgpack_pack_array(&pk, m->has_invite ? 4 : 3);
        bad |= msgpack_pack_bin_with_body(&pk, m->pk, CRDTNET_PK_BYTES);
        bad |= msgpack_pack_bin_with_body(&pk, m->sig, SIG_BYTES);
        bad |= msgpack_pack_bin_with_body(&pk, m->hdr, HDR_BYTES);
        if (m->has_invite)
            bad |= msgpack_pack_bin_with_body(&pk, m->invite,
                                              CRDTNET__INVITE_SECRET_BYTES);
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

/* ---- the hello's MAC ---------------------------------------------- */

/* mac = BLAKE2b-256(key = K_net, u8 version || C_eph), with
 * K_net = BLAKE2b-256(key = space_id, NET_LABEL). */
static void
hello_mac(unsigned char mac[MAC_BYTES], const unsigned char *space_id,
          uint64_t version, const unsigned char eph[EPH_BYTES])
{
    unsigned char knet[KEY_BYTES], in[1 + EPH_BYTES];

    crypto_generichash(knet, sizeof knet, (const unsigned char *)NET_LABEL,
                       sizeof NET_LABEL - 1, space_id,
                       CRDTNET_SPACE_ID_BYTES);
    in[0] = (unsigned char)version;
    memcpy(in + 1, eph, EPH_BYTES);
    crypto_generichash(mac, MAC_BYTES, in, sizeof in, knet, sizeof knet);
    sodium_memzero(knet, sizeof knet);
}

int
crdtnet_hs_hello_is_for(const void *p, size_t n,
                        const unsigned char space_id[CRDTNET_SPACE_ID_BYTES])
{
    unsigned char want[MAC_BYTES];
    crdtnet__hs_msg m;
    int ok;

    if (p == NULL || space_id == NULL ||
        crdtnet__hs_decode(&m, BIT(CRDTNET__MSG_HELLO), p, n) < 0)
        return 0;
    if (sodium_init() < 0)
        return 0;
    hello_mac(want, space_id, m.version, m.eph);
    ok = crypto_verify_32(want, m.mac) == 0;
    sodium_memzero(want, sizeof want);
    return ok;
}

/* ---- state machine -------------------------------------------------- */

enum { C_WAIT_REPLY = 1, S_WAIT_HELLO, S_WAIT_AUTH, DONE };

/*
 * A side queues at most two frames in a whole handshake (client: hello,
 * auth; server: reply, error). The largest is a sealed error: 1 + 13 +
 * 9 + 2 + 255 bytes of msgpack + 17 = 297, so a half-open connection
 * costs us under 1 KiB here (docs/testing.md S5).
 */
#define OUT_SLOTS 2
#define OUT_CAP 320
/* The sealed auth plaintexts: [ pk, sig, hdr, invite ] at most. */
#define AUTH_PLAIN_MAX (1 + 34 + 66 + 26 + 34)

/* How fail() tells the peer. */
enum { TELL_NOTHING, TELL_PLAIN, TELL_SEALED };

struct crdtnet_hs {
    crdtnet_hs_role role;
    int state;
    int err;
    int have_space;
    int have_push;
    int has_invite;
    int taken;
    unsigned x25519;
    uint64_t th_version;
    unsigned char th_space[CRDTNET_SPACE_ID_BYTES];
    unsigned char space[CRDTNET_SPACE_ID_BYTES];
    unsigned char pk[CRDTNET_PK_BYTES];
    unsigned char sk[CRDTNET_SK_BYTES]; /* unused when sign is set */
    crdtnet_hs_sign_cb sign;
    void *sign_ctx;
    unsigned char invite[CRDTNET_INVITE_SECRET_BYTES];
    unsigned char eph_pk[EPH_BYTES];
    unsigned char eph_sk[EPH_BYTES];
    int fixed_eph;
    unsigned char k_auth[KEY_BYTES]; /* seals the client's auth */
    unsigned char k_rx[KEY_BYTES];
    unsigned char k_tx[KEY_BYTES];
    unsigned char th[TH_BYTES];
    unsigned char peer_pk[CRDTNET_PK_BYTES];
    crdtnet__stream push;
    crdtnet__stream pull;
    crdtnet_hs_member_cb is_member;
    crdtnet_hs_space_cb space_ok;
    crdtnet_hs_invite_cb invite_ok;
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
    sodium_memzero(hs->invite, sizeof hs->invite);
    sodium_memzero(hs->eph_sk, sizeof hs->eph_sk);
    sodium_memzero(hs->k_auth, sizeof hs->k_auth);
    sodium_memzero(hs->k_rx, sizeof hs->k_rx);
    sodium_memzero(hs->k_tx, sizeof hs->k_tx);
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
queue_sealed_error(crdtnet_hs *hs, const crdtnet__hs_msg *m)
{
    unsigned char plain[OUT_CAP - crypto_secretstream_xchacha20poly1305_ABYTES];
    unsigned char *slot = out_slot(hs);
    unsigned long long clen;
    size_t len;
    int rc = crdtnet__hs_encode(plain, sizeof plain, &len, m);

    if (rc < 0)
        return rc;
    if (crypto_secretstream_xchacha20poly1305_push(
            &hs->push, slot, &clen, plain, len, NULL, 0,
            crypto_secretstream_xchacha20poly1305_TAG_FINAL) != 0)
        return CRDT_ERROR;
    out_commit(hs, (size_t)clen);
    return CRDT_OK;
}

/* Keeps (6). */
static int
fail(crdtnet_hs *hs, int rc, const char *reason, int tell)
{
    crdtnet__hs_msg m;

    hs->err = rc;
    snprintf(hs->reason, sizeof hs->reason, "%s", reason);
    if (tell != TELL_NOTHING) {
        memset(&m, 0, sizeof m);
        m.kind = CRDTNET__MSG_ERROR;
        m.code = rc;
        m.reason_len = strlen(reason);
        if (m.reason_len > CRDTNET__REASON_WIRE_MAX)
            m.reason_len = CRDTNET__REASON_WIRE_MAX;
        memcpy(m.reason, reason, m.reason_len);
        if (tell == TELL_SEALED && hs->have_push)
            (void)queue_sealed_error(hs, &m);
        else if (tell == TELL_PLAIN)
            (void)queue_plain(hs, &m);
    }
    wipe_secrets(hs);
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

/* th = BLAKE2b-256(th || a || b); b may be NULL. */
static void
mix(crdtnet_hs *hs, const unsigned char *a, size_t an, const unsigned char *b,
    size_t bn)
{
    crypto_generichash_state st;

    crypto_generichash_init(&st, NULL, 0, TH_BYTES);
    crypto_generichash_update(&st, hs->th, TH_BYTES);
    crypto_generichash_update(&st, a, an);
    if (b != NULL)
        crypto_generichash_update(&st, b, bn);
    crypto_generichash_final(&st, hs->th, TH_BYTES);
}

/* h0 = BLAKE2b-256(TH_LABEL || u8 version || space_id): keeps (4). */
static void
transcript_start(crdtnet_hs *hs)
{
    unsigned char in[sizeof TH_LABEL - 1 + 1 + CRDTNET_SPACE_ID_BYTES];
    size_t n = sizeof TH_LABEL - 1;

    memcpy(in, TH_LABEL, n);
    in[n++] = (unsigned char)hs->th_version;
    memcpy(in + n, hs->th_space, CRDTNET_SPACE_ID_BYTES);
    n += CRDTNET_SPACE_ID_BYTES;
    crypto_generichash(hs->th, TH_BYTES, in, n, NULL, 0);
}

static void
make_ephemeral(crdtnet_hs *hs)
{
    if (!hs->fixed_eph)
        randombytes_buf(hs->eph_sk, sizeof hs->eph_sk);
    crypto_scalarmult_base(hs->eph_pk, hs->eph_sk);
    hs->x25519++;
}

/*
 * ee = X25519(our eph, theirs); master = BLAKE2b-256(key = ee, th) with
 * th = h2; then the four keys, crypto_kdf subkeys of master. Wipes the
 * ephemeral secret. -1 for a low-order peer key (docs/testing.md B20).
 */
static int
derive_keys(crdtnet_hs *hs, const unsigned char peer_eph[EPH_BYTES],
            unsigned char k_reply[KEY_BYTES])
{
    unsigned char ee[EPH_BYTES], master[KEY_BYTES];
    int client = hs->role == CRDTNET_HS_CLIENT;
    int rc;

    hs->x25519++;
    rc = crypto_scalarmult(ee, hs->eph_sk, peer_eph);
    sodium_memzero(hs->eph_sk, sizeof hs->eph_sk);
    if (rc != 0) {
        sodium_memzero(ee, sizeof ee);
        return -1;
    }
    crypto_generichash(master, sizeof master, hs->th, TH_BYTES, ee,
                       sizeof ee);
    sodium_memzero(ee, sizeof ee);
    crypto_kdf_derive_from_key(k_reply, KEY_BYTES, KDF_REPLY, KDF_CTX, master);
    crypto_kdf_derive_from_key(hs->k_auth, KEY_BYTES, KDF_AUTH, KDF_CTX,
                               master);
    crypto_kdf_derive_from_key(client ? hs->k_tx : hs->k_rx, KEY_BYTES,
                               KDF_C2S, KDF_CTX, master);
    crypto_kdf_derive_from_key(client ? hs->k_rx : hs->k_tx, KEY_BYTES,
                               KDF_S2C, KDF_CTX, master);
    sodium_memzero(master, sizeof master);
    return 0;
}

/* label || th || pk: what each side signs (keeps (5)); the labels stop
 * one side's signature being reflected as the other's. */
static size_t
sig_input(const crdtnet_hs *hs, const char *label, const unsigned char *pk,
          unsigned char buf[LABEL_BYTES + TH_BYTES + CRDTNET_PK_BYTES])
{
    memcpy(buf, label, LABEL_BYTES);
    memcpy(buf + LABEL_BYTES, hs->th, TH_BYTES);
    memcpy(buf + LABEL_BYTES + TH_BYTES, pk, CRDTNET_PK_BYTES);
    return LABEL_BYTES + TH_BYTES + CRDTNET_PK_BYTES;
}

static const unsigned char ZERO_NONCE
    [crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];

/* Our auth plaintext [ pk, sig, hdr (, invite) ], sealed with @p key and
 * ad = th into @p out. Opens our push stream (its header goes inside). */
static int
seal_auth(crdtnet_hs *hs, const unsigned char key[KEY_BYTES],
          unsigned char *out, size_t cap, size_t *out_len)
{
    unsigned char plain[AUTH_PLAIN_MAX];
    unsigned char msg[LABEL_BYTES + TH_BYTES + CRDTNET_PK_BYTES];
    const char *label = hs->role == CRDTNET_HS_CLIENT ? SIG_LABEL_CLIENT
                                                      : SIG_LABEL_SERVER;
    unsigned long long clen;
    crdtnet__hs_msg m;
    size_t n;
    int rc;

    memset(&m, 0, sizeof m);
    m.kind = hs->role == CRDTNET_HS_CLIENT ? CRDTNET__MSG_CAUTH
                                           : CRDTNET__MSG_SAUTH;
    memcpy(m.pk, hs->pk, sizeof m.pk);
    n = sig_input(hs, label, hs->pk, msg);
    if (hs->sign != NULL) {
        if (hs->sign(m.sig, msg, n, hs->sign_ctx) != 0)
            return CRDT_ERROR;
    } else {
        crypto_sign_detached(m.sig, NULL, msg, n, hs->sk);
    }
    crypto_secretstream_xchacha20poly1305_init_push(&hs->push, m.hdr,
                                                    hs->k_tx);
    sodium_memzero(hs->k_tx, sizeof hs->k_tx);
    hs->have_push = 1;
    if (hs->has_invite) {
        m.has_invite = 1;
        memcpy(m.invite, hs->invite, sizeof m.invite);
    }
    rc = crdtnet__hs_encode(plain, sizeof plain, &n, &m);
    sodium_memzero(&m, sizeof m);
    if (rc == CRDT_OK && n + ABYTES > cap)
        rc = CRDT_ELIMIT;
    if (rc == CRDT_OK) {
        crypto_aead_xchacha20poly1305_ietf_encrypt(out, &clen, plain, n,
                                                   hs->th, TH_BYTES, NULL,
                                                   ZERO_NONCE, key);
        *out_len = (size_t)clen;
    }
    sodium_memzero(plain, sizeof plain);
    return rc;
}

/* Open a sealed auth @p box with @p key and ad = th, verify the
 * signature, set up our pull stream; the decoded message in @p m. */
static int
open_auth(crdtnet_hs *hs, const unsigned char key[KEY_BYTES],
          const unsigned char *box, size_t box_len, crdtnet__hs_msg *m,
          const char **why)
{
    unsigned char plain[CRDTNET_HS_MSG_MAX];
    unsigned char msg[LABEL_BYTES + TH_BYTES + CRDTNET_PK_BYTES];
    const char *label = hs->role == CRDTNET_HS_CLIENT ? SIG_LABEL_SERVER
                                                      : SIG_LABEL_CLIENT;
    unsigned accept = hs->role == CRDTNET_HS_CLIENT ? BIT(CRDTNET__MSG_SAUTH)
                                                    : BIT(CRDTNET__MSG_CAUTH);
    unsigned long long mlen;
    int rc;

    if (box_len < ABYTES || box_len - ABYTES > sizeof plain ||
        crypto_aead_xchacha20poly1305_ietf_decrypt(
            plain, &mlen, NULL, box, box_len, hs->th, TH_BYTES, ZERO_NONCE,
            key) != 0) {
        *why = R_DECRYPT;
        return CRDT_EAUTH;
    }
    rc = crdtnet__hs_decode(m, accept, plain, (size_t)mlen);
    sodium_memzero(plain, sizeof plain);
    if (rc < 0) {
        *why = R_MALFORMED;
        return CRDT_EPROTO;
    }
    if (crypto_sign_verify_detached(m->sig, msg,
                                    sig_input(hs, label, m->pk, msg),
                                    m->pk) != 0) {
        *why = R_SIG;
        return CRDT_EAUTH;
    }
    if (crypto_secretstream_xchacha20poly1305_init_pull(&hs->pull, m->hdr,
                                                        hs->k_rx) != 0) {
        *why = R_DECRYPT;
        return CRDT_EAUTH;
    }
    sodium_memzero(hs->k_rx, sizeof hs->k_rx);
    return CRDT_OK;
}

static int
queue_hello(crdtnet_hs *hs)
{
    crdtnet__hs_msg m;

    memset(&m, 0, sizeof m);
    m.kind = CRDTNET__MSG_HELLO;
    m.version = CRDTNET_PROTO_VERSION;
    memcpy(m.eph, hs->eph_pk, sizeof m.eph);
    hello_mac(m.mac, hs->space, m.version, m.eph);
    mix(hs, m.eph, EPH_BYTES, m.mac, MAC_BYTES); /* h1 */
    return queue_plain(hs, &m);
}

static int
on_hello(crdtnet_hs *hs, const unsigned char *p, size_t n)
{
    unsigned char want[MAC_BYTES], k_reply[KEY_BYTES];
    unsigned char box[OUT_CAP];
    crdtnet__hs_msg m, reply;
    size_t box_len;
    int rc = crdtnet__hs_decode(&m, BIT(CRDTNET__MSG_HELLO), p, n);

    /* Keeps (2): only the version is ever answered in plaintext. */
    if (rc == CRDT_EVERSION)
        return fail(hs, rc, R_VERSION, TELL_PLAIN);
    if (rc < 0)
        return fail(hs, CRDT_EPROTO, R_MALFORMED, TELL_NOTHING);
    if (!hs->have_space)
        return fail(hs, CRDT_EAUTH, R_STRANGER, TELL_NOTHING);
    hello_mac(want, hs->space, m.version, m.eph);
    rc = crypto_verify_32(want, m.mac);
    sodium_memzero(want, sizeof want);
    if (rc != 0 || !hs->space_ok(hs->space, hs->ctx))
        return fail(hs, CRDT_EAUTH, R_STRANGER, TELL_NOTHING);
    /* Keeps (3): the first X25519 comes after the MAC. */
    make_ephemeral(hs);
    transcript_start(hs);
    mix(hs, m.eph, EPH_BYTES, m.mac, MAC_BYTES);  /* h1 */
    mix(hs, hs->eph_pk, EPH_BYTES, NULL, 0);      /* h2 */
    if (derive_keys(hs, m.eph, k_reply) < 0)
        return fail(hs, CRDT_EAUTH, R_EPH, TELL_NOTHING);
    rc = seal_auth(hs, k_reply, box, sizeof box, &box_len);
    sodium_memzero(k_reply, sizeof k_reply);
    if (rc < 0)
        return fail(hs, rc, "internal error", TELL_NOTHING);
    memset(&reply, 0, sizeof reply);
    reply.kind = CRDTNET__MSG_REPLY;
    memcpy(reply.eph, hs->eph_pk, EPH_BYTES);
    reply.box = box;
    reply.box_len = box_len;
    rc = queue_plain(hs, &reply);
    if (rc < 0)
        return fail(hs, rc, "internal error", TELL_NOTHING);
    mix(hs, box, box_len, NULL, 0); /* h3 */
    hs->state = S_WAIT_AUTH;
    return CRDT_OK;
}

static int
on_reply(crdtnet_hs *hs, const unsigned char *p, size_t n)
{
    unsigned accept = BIT(CRDTNET__MSG_REPLY) | BIT(CRDTNET__MSG_ERROR);
    unsigned char k_reply[KEY_BYTES];
    unsigned char *slot;
    crdtnet__hs_msg m, a;
    const char *why = R_MALFORMED;
    size_t len;
    int rc = crdtnet__hs_decode(&m, accept, p, n);

    /* No channel yet: a client that fails here tells the server nothing,
     * so an impostor learns nothing about who tried to join (keeps (1)). */
    if (rc < 0)
        return fail(hs, CRDT_EPROTO, R_MALFORMED, TELL_NOTHING);
    if (m.kind == CRDTNET__MSG_ERROR)
        return fail_peer(hs, &m);
    mix(hs, m.eph, EPH_BYTES, NULL, 0); /* h2 */
    if (derive_keys(hs, m.eph, k_reply) < 0)
        return fail(hs, CRDT_EAUTH, R_EPH, TELL_NOTHING);
    rc = open_auth(hs, k_reply, m.box, m.box_len, &a, &why);
    sodium_memzero(k_reply, sizeof k_reply);
    if (rc < 0)
        return fail(hs, rc, why, TELL_NOTHING);
    if (!hs->is_member(a.pk, hs->ctx))
        return fail(hs, CRDT_EAUTH, R_SERVER, TELL_NOTHING);
    memcpy(hs->peer_pk, a.pk, sizeof hs->peer_pk);
    mix(hs, m.box, m.box_len, NULL, 0); /* h3 */
    slot = out_slot(hs);
    rc = seal_auth(hs, hs->k_auth, slot, OUT_CAP, &len);
    if (rc < 0)
        return fail(hs, rc, "internal error", TELL_NOTHING);
    out_commit(hs, len);
    /* The streams live on in push and pull; nothing else is needed. */
    sodium_memzero(hs->sk, sizeof hs->sk);
    sodium_memzero(hs->invite, sizeof hs->invite);
    sodium_memzero(hs->k_auth, sizeof hs->k_auth);
    hs->state = DONE;
    return CRDT_OK;
}

static int
on_auth(crdtnet_hs *hs, const unsigned char *p, size_t n)
{
    char why_inv[CRDTNET_REASON_MAX];
    const char *why = R_MALFORMED;
    crdtnet__hs_msg a;
    int member, rc = open_auth(hs, hs->k_auth, p, n, &a, &why);

    sodium_memzero(hs->k_auth, sizeof hs->k_auth);
    if (rc < 0)
        return fail(hs, rc, why, TELL_SEALED);
    member = hs->is_member(a.pk, hs->ctx);
    if (!member && a.has_invite) { /* a member needs no invitation */
        why_inv[0] = '\0';
        rc = hs->invite_ok != NULL &&
             hs->invite_ok(a.pk, a.invite, why_inv, sizeof why_inv, hs->ctx);
        sodium_memzero(a.invite, sizeof a.invite);
        if (!rc)
            return fail(hs, CRDT_EAUTH,
                        why_inv[0] != '\0' ? why_inv : "invitation refused",
                        TELL_SEALED);
    } else if (!member) {
        return fail(hs, CRDT_EAUTH, R_MEMBER, TELL_SEALED);
    }
    memcpy(hs->peer_pk, a.pk, sizeof hs->peer_pk);
    sodium_memzero(hs->sk, sizeof hs->sk);
    hs->state = DONE;
    return CRDT_OK;
}

static int
config_ok(const crdtnet_hs_config *cfg)
{
    if (cfg->version != 2 || cfg->pk == NULL || cfg->is_member == NULL ||
        (cfg->sk == NULL) == (cfg->sign == NULL))
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
crdtnet__hs_new_test(crdtnet_hs **out, const crdtnet_hs_config *cfg,
                     const crdtnet__hs_test *t)
{
    crdtnet_hs *hs;
    int rc = CRDT_OK;

    if (out == NULL || cfg == NULL || !config_ok(cfg))
        return CRDT_EINVAL;
    if (sodium_init() < 0)
        return CRDT_ERROR;
    /* libsodium's secret key ends with its public key. */
    if (cfg->sk != NULL &&
        sodium_memcmp(cfg->sk + 32, cfg->pk, CRDTNET_PK_BYTES) != 0)
        return CRDT_EINVAL;
    hs = calloc(1, sizeof *hs);
    if (hs == NULL)
        return CRDT_ENOMEM;
    hs->role = cfg->role;
    memcpy(hs->pk, cfg->pk, sizeof hs->pk);
    if (cfg->sk != NULL)
        memcpy(hs->sk, cfg->sk, sizeof hs->sk);
    hs->sign = cfg->sign;
    hs->sign_ctx = cfg->sign_ctx;
    hs->is_member = cfg->is_member;
    hs->space_ok = cfg->space_ok;
    hs->invite_ok = cfg->invite_ok;
    hs->ctx = cfg->ctx;
    hs->frame_max = cfg->frame_max;
    if (cfg->space_id != NULL) {
        memcpy(hs->space, cfg->space_id, sizeof hs->space);
        hs->have_space = 1;
    }
    if (hs->role == CRDTNET_HS_CLIENT && cfg->invite != NULL) {
        memcpy(hs->invite, cfg->invite, sizeof hs->invite);
        hs->has_invite = 1;
    }
    hs->th_version = CRDTNET_PROTO_VERSION;
    memcpy(hs->th_space, hs->space, sizeof hs->th_space);
    if (t != NULL) {
        if (t->ephemeral_sk != NULL) {
            memcpy(hs->eph_sk, t->ephemeral_sk, sizeof hs->eph_sk);
            hs->fixed_eph = 1;
        }
        if (t->transcript_version != 0)
            hs->th_version = t->transcript_version;
        if (t->transcript_space != NULL)
            memcpy(hs->th_space, t->transcript_space, sizeof hs->th_space);
    }
    if (hs->role == CRDTNET_HS_CLIENT) {
        hs->state = C_WAIT_REPLY;
        make_ephemeral(hs);
        transcript_start(hs);
        rc = queue_hello(hs);
    } else {
        hs->state = S_WAIT_HELLO; /* no key pair yet: keeps (3) */
    }
    if (rc < 0) {
        crdtnet_hs_free(hs);
        return rc;
    }
    *out = hs;
    return CRDT_OK;
}

int
crdtnet_hs_new(crdtnet_hs **out, const crdtnet_hs_config *cfg)
{
    return crdtnet__hs_new_test(out, cfg, NULL);
}

unsigned
crdtnet__hs_x25519_count(const crdtnet_hs *hs)
{
    return hs == NULL ? 0 : hs->x25519;
}

int
crdtnet_hs_feed(crdtnet_hs *hs, const void *payload, size_t len)
{
    const unsigned char *p = payload;
    int tell = TELL_NOTHING;

    if (hs == NULL || (payload == NULL && len > 0))
        return CRDT_EINVAL;
    if (hs->err != 0)
        return hs->err;
    if (hs->state == DONE)
        return CRDT_EINVAL; /* frames now belong to the channel */
    if (hs->state == S_WAIT_AUTH)
        tell = TELL_SEALED;
    if (len == 0)
        return fail(hs, CRDT_EPROTO, R_MALFORMED, tell);
    if (len > CRDTNET_HS_MSG_MAX)
        return fail(hs, CRDT_EPROTO, R_TOO_BIG, tell);
    switch (hs->state) {
    case S_WAIT_HELLO:
        return on_hello(hs, p, len);
    case C_WAIT_REPLY:
        return on_reply(hs, p, len);
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
    /* A server knows its space for sure only once the MAC verified. */
    if (!hs->have_space ||
        (hs->role == CRDTNET_HS_SERVER && hs->state == S_WAIT_HELLO) ||
        (hs->role == CRDTNET_HS_SERVER && hs->err != 0 && !hs->have_push))
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
