/*
 * fuzz_handshake.c: the fuzzer plays the peer against one handshake state
 * machine (docs/testing.md, "Fuzzing"), with fixed keys and
 * deterministic randombytes so every input replays exactly.
 *
 * Input: byte 0 is a set of flags, the rest a list of frames, each a
 * 2-byte big-endian length and that many bytes.
 *   bit 0  role under test: 0 server, 1 client
 *   bit 1  assisted: the harness plays the other side honestly (a hello
 *          with a valid MAC; a reply sealed with the real keys) so the
 *          fuzzer reaches the decoders behind the AEAD: a server's next
 *          fuzz frame is sealed as the client's auth, a client's first
 *          fuzz frame becomes the plaintext of the reply's box. Byte 0 of
 *          such a frame: bit 1 sends the rest raw instead; after the
 *          handshake bits 0 and 2 pick the channel tag (MESSAGE, FINAL,
 *          PUSH, REKEY).
 *   bit 2  assisted: a genuine, correctly signed auth instead
 *   bit 3  the harness's identity is not a member
 *   bit 4  an invitation: the client under test sends one; the harness,
 *          as client, sends the one the server's callback accepts
 *   bit 5  server under test matched no space (config space_id NULL)
 * Checked: no crash or sanitizer report; output frames are 1..4096 bytes;
 * failure codes are the documented ones and sticky; done only for the
 * harness's key, as a member or with the invitation; a server without a
 * space does no X25519; after done, leftover frames go to the channel.
 */
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crdtnet/channel.h"
#include "crdtnet/handshake.h"
#include "net_internal.h"
#include "support/fuzz_rng.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- deterministic randombytes ------------------------------------- */


/* ---- fixed identities and policy ------------------------------------ */

typedef struct {
    unsigned char pk[32], sk[64];
} ident;

static ident target, harness;
static const unsigned char space[16] = "fuzz-space-16byt";
static const unsigned char eph_target[32] = {0x11, 0x22, 0x33};
static const unsigned char eph_harness[32] = {0x44, 0x55, 0x66};
static int harness_is_member;
static const unsigned char invite_secret[32] = {0x17};
static int invite_calls;

static int
invite_ok(const unsigned char pk[32], const unsigned char secret[32],
          char *why, size_t why_size, void *ctx)
{
    (void)ctx;
    invite_calls++;
    if (memcmp(pk, harness.pk, 32) == 0 &&
        memcmp(secret, invite_secret, 32) == 0)
        return 1;
    if (why_size > 0)
        why[0] = '\0';
    return 0;
}

static int
is_member(const unsigned char pk[32], void *ctx)
{
    (void)ctx;
    return harness_is_member && memcmp(pk, harness.pk, 32) == 0;
}

static int
space_ok(const unsigned char id[16], void *ctx)
{
    (void)ctx;
    return memcmp(id, space, 16) == 0;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    unsigned char seed[32];

    (void)argc;
    (void)argv;
    fuzz_rng_install();
    if (sodium_init() < 0)
        abort();
    memset(seed, 0xa1, sizeof seed);
    crypto_sign_seed_keypair(target.pk, target.sk, seed);
    memset(seed, 0xb2, sizeof seed);
    crypto_sign_seed_keypair(harness.pk, harness.sk, seed);
    return 0;
}

/* ---- driving the state machine -------------------------------------- */

typedef struct {
    crdtnet_hs *hs;
    const uint8_t *in; /* remaining fuzz frames */
    size_t left;
    /* assisted mode: the harness's half of the session */
    crdtnet__stream push, pull;
    unsigned char th[32];
    unsigned char k[5][32];
    const unsigned char *seal_key; /* server target: seal fuzz as auth */
    int have_keys;
    int invite;
} run;

static int
next_frame(run *r, const uint8_t **p, size_t *n)
{
    size_t len;

    if (r->left < 2)
        return 0;
    len = ((size_t)r->in[0] << 8) | r->in[1];
    if (len > r->left - 2)
        len = r->left - 2;
    *p = r->in + 2;
    *n = len;
    r->in += 2 + len;
    r->left -= 2 + len;
    return 1;
}

static void
check_code(int rc)
{
    if (rc != CRDT_OK && rc != CRDT_EPROTO && rc != CRDT_EAUTH &&
        rc != CRDT_EVERSION)
        abort();
}

/* Drain the target's output; keep the last two frames for the harness. */
static void
drain(run *r, unsigned char keep[2][CRDTNET_HS_MSG_MAX], size_t keep_len[2],
      int *kept)
{
    const unsigned char *p;
    size_t n;
    int rc;

    *kept = 0;
    while ((rc = crdtnet_hs_next_out(r->hs, &p, &n)) == CRDT_OK) {
        if (n == 0 || n > CRDTNET_HS_MSG_MAX)
            abort();
        if (*kept < 2) {
            memcpy(keep[*kept], p, n);
            keep_len[(*kept)++] = n;
        }
    }
    if (rc != CRDT_EAGAIN && rc != crdtnet_hs_failed(r->hs))
        abort();
}

static int
feed(run *r, const void *p, size_t n)
{
    unsigned char keep[2][CRDTNET_HS_MSG_MAX];
    size_t keep_len[2];
    int kept, rc;

    if (crdtnet_hs_done(r->hs) || crdtnet_hs_failed(r->hs))
        return -1;
    rc = crdtnet_hs_feed(r->hs, p, n);
    check_code(rc);
    if (rc < 0 && (rc != crdtnet_hs_failed(r->hs) ||
                   crdtnet_hs_feed(r->hs, p, n) != rc))
        abort();
    drain(r, keep, keep_len, &kept);
    return rc;
}

/* ---- the harness's half, written from docs/protocol.md ------------- */

static void
h_mix(unsigned char h[32], const unsigned char *a, size_t an)
{
    crypto_generichash_state st;

    crypto_generichash_init(&st, NULL, 0, 32);
    crypto_generichash_update(&st, h, 32);
    crypto_generichash_update(&st, a, an);
    crypto_generichash_final(&st, h, 32);
}

/* h1 from the hello's C_eph and mac. */
static void
h_start(run *r, const unsigned char *c_eph, const unsigned char *mac)
{
    unsigned char in[64];

    memcpy(in, "strata-hs-v2\x02", 13);
    memcpy(in + 13, space, 16);
    crypto_generichash(r->th, 32, in, 29, NULL, 0);
    memcpy(in, c_eph, 32);
    memcpy(in + 32, mac, 32);
    h_mix(r->th, in, 64);
}

/* After h2: ee, then k[1..4] (reply, auth, c2s, s2c). */
static int
h_keys(run *r, const unsigned char *eph_sk, const unsigned char *peer_eph)
{
    unsigned char ee[32], master[32];
    uint64_t i;

    if (crypto_scalarmult(ee, eph_sk, peer_eph) != 0)
        return -1;
    crypto_generichash(master, 32, r->th, 32, ee, 32);
    for (i = 1; i <= 4; i++)
        crypto_kdf_derive_from_key(r->k[i], 32, i, "strataHS", master);
    return 0;
}

static const unsigned char zero_nonce[24];

static size_t
seal_box(const run *r, const unsigned char *key, const unsigned char *m,
         size_t n, unsigned char *out)
{
    unsigned long long clen;

    crypto_aead_xchacha20poly1305_ietf_encrypt(out, &clen, m, n, r->th, 32,
                                               NULL, zero_nonce, key);
    return (size_t)clen;
}

/* A genuine [ pk, sig, hdr (, invite) ] from the harness; opens its push
 * stream with @p tx. */
static size_t
genuine_auth(run *r, int as_client, const unsigned char *tx,
             unsigned char *out)
{
    unsigned char msg[82];
    crdtnet__hs_msg m;
    size_t n;

    memcpy(msg, as_client ? "strata-auth-client" : "strata-auth-server", 18);
    memcpy(msg + 18, r->th, 32);
    memcpy(msg + 50, harness.pk, 32);
    memset(&m, 0, sizeof m);
    m.kind = as_client ? CRDTNET__MSG_CAUTH : CRDTNET__MSG_SAUTH;
    memcpy(m.pk, harness.pk, 32);
    crypto_sign_detached(m.sig, NULL, msg, sizeof msg, harness.sk);
    crypto_secretstream_xchacha20poly1305_init_push(&r->push, m.hdr, tx);
    if (as_client && r->invite) {
        m.has_invite = 1;
        memcpy(m.invite, invite_secret, 32);
    }
    if (crdtnet__hs_encode(out, 256, &n, &m) != CRDT_OK)
        abort();
    r->have_keys = 1;
    return n;
}

/* Harness as client against the target server: a genuine hello, the
 * server's reply opened; then the auth is the fuzzer's (sealed with the
 * real key) or, with @p genuine, the harness's own. */
static void
assist_server(run *r, int genuine)
{
    unsigned char keep[2][CRDTNET_HS_MSG_MAX], buf[256], pt[256], box[300];
    unsigned char pk[32], knet[32], in[33];
    unsigned long long ptlen;
    size_t keep_len[2], n;
    crdtnet__hs_msg m;
    int kept;

    memset(&m, 0, sizeof m);
    m.kind = CRDTNET__MSG_HELLO;
    m.version = CRDTNET_PROTO_VERSION;
    crypto_scalarmult_base(pk, eph_harness);
    memcpy(m.eph, pk, 32);
    crypto_generichash(knet, 32, (const unsigned char *)"strata-net-v2", 13,
                       space, 16);
    in[0] = 2;
    memcpy(in + 1, pk, 32);
    crypto_generichash(m.mac, 32, in, 33, knet, 32);
    if (crdtnet__hs_encode(buf, sizeof buf, &n, &m) != CRDT_OK ||
        crdtnet_hs_feed(r->hs, buf, n) != CRDT_OK)
        abort();
    h_start(r, pk, m.mac);
    drain(r, keep, keep_len, &kept);
    if (kept != 1 ||
        crdtnet__hs_decode(&m, 1u << CRDTNET__MSG_REPLY, keep[0],
                           keep_len[0]) != CRDT_OK)
        abort();
    h_mix(r->th, m.eph, 32);
    if (h_keys(r, eph_harness, m.eph) != 0 || m.box_len > sizeof box ||
        crypto_aead_xchacha20poly1305_ietf_decrypt(
            pt, &ptlen, NULL, m.box, m.box_len, r->th, 32, zero_nonce,
            r->k[1]) != 0 ||
        crdtnet__hs_decode(&m, 1u << CRDTNET__MSG_SAUTH, pt,
                           (size_t)ptlen) != CRDT_OK ||
        memcmp(m.pk, target.pk, 32) != 0)
        abort();
    crypto_secretstream_xchacha20poly1305_init_pull(&r->pull, m.hdr, r->k[4]);
    memcpy(box, keep[0], keep_len[0]); /* h3 covers the reply's box */
    if (crdtnet__hs_decode(&m, 1u << CRDTNET__MSG_REPLY, box, keep_len[0]) !=
        CRDT_OK)
        abort();
    h_mix(r->th, m.box, m.box_len);
    r->seal_key = r->k[2];
    if (genuine) {
        n = genuine_auth(r, 1, r->k[3], pt);
        n = seal_box(r, r->k[2], pt, n, box);
        (void)feed(r, box, n);
    }
}

/* Harness as server against the target client: the client's hello read;
 * the reply's box holds the fuzzer's first frame or, with @p genuine, the
 * harness's own auth. */
static void
assist_client(run *r, int genuine, const uint8_t *fp, size_t fn)
{
    unsigned char keep[2][CRDTNET_HS_MSG_MAX], pt[300], box[CRDTNET_HS_MSG_MAX];
    unsigned char reply[CRDTNET_HS_MSG_MAX], pk[32];
    size_t keep_len[2], n;
    crdtnet__hs_msg m;
    int kept;

    drain(r, keep, keep_len, &kept);
    if (kept != 1 ||
        crdtnet__hs_decode(&m, 1u << CRDTNET__MSG_HELLO, keep[0],
                           keep_len[0]) != CRDT_OK ||
        !crdtnet_hs_hello_is_for(keep[0], keep_len[0], space))
        abort();
    h_start(r, m.eph, m.mac);
    crypto_scalarmult_base(pk, eph_harness);
    h_mix(r->th, pk, 32);
    if (h_keys(r, eph_harness, m.eph) != 0)
        abort();
    if (genuine) {
        n = genuine_auth(r, 0, r->k[4], pt);
        n = seal_box(r, r->k[1], pt, n, box);
    } else {
        if (fn > 1000)
            fn = 1000;
        n = seal_box(r, r->k[1], fp, fn, box);
        crypto_secretstream_xchacha20poly1305_init_push(&r->push, pt,
                                                        r->k[4]);
        r->have_keys = 1;
    }
    memset(&m, 0, sizeof m);
    m.kind = CRDTNET__MSG_REPLY;
    memcpy(m.eph, pk, 32);
    m.box = box;
    m.box_len = n;
    if (crdtnet__hs_encode(reply, sizeof reply, &n, &m) != CRDT_OK)
        abort();
    (void)feed(r, reply, n);
}

#define ABYTES_SS crypto_secretstream_xchacha20poly1305_ABYTES

/* One fuzz frame, to the handshake or, once done, to the channel. */
static void
deliver(run *r, crdtnet_channel *ch, const uint8_t *p, size_t n)
{
    static const unsigned char tags[4] = {
        crypto_secretstream_xchacha20poly1305_TAG_MESSAGE,
        crypto_secretstream_xchacha20poly1305_TAG_FINAL,
        crypto_secretstream_xchacha20poly1305_TAG_PUSH,
        crypto_secretstream_xchacha20poly1305_TAG_REKEY,
    };
    unsigned char ct[CRDTNET_HS_MSG_MAX + 64];
    unsigned long long clen;
    const unsigned char *q;
    size_t m;
    int rc;

    if (ch == NULL && r->seal_key != NULL && n > 0 && !(p[0] & 2)) {
        size_t k = n - 1 > 1000 ? 1000 : n - 1;
        n = seal_box(r, r->seal_key, p + 1, k, ct);
        p = ct;
    } else if (r->have_keys && n > 0 && !(p[0] & 2)) {
        /* a frame is up to 65,535 bytes: seal what fits in ct (libsodium
         * is not instrumented, so an overflow here corrupted the stack) */
        size_t k = n - 1 > sizeof ct - ABYTES_SS ? sizeof ct - ABYTES_SS
                                                 : n - 1;
        crypto_secretstream_xchacha20poly1305_push(
            &r->push, ct, &clen, p + 1, k, NULL, 0,
            tags[(p[0] & 1) | ((p[0] >> 1) & 2)]);
        p = ct;
        n = (size_t)clen;
    } else if (r->have_keys && n > 0) {
        p++;
        n--;
    }
    if (ch == NULL) {
        (void)feed(r, p, n);
        return;
    }
    rc = crdtnet_channel_open(ch, p, n, &q, &m);
    if (rc != CRDT_OK && rc != CRDT_EAUTH && rc != CRDT_EPROTO &&
        rc != CRDT_ECLOSED)
        abort();
}

static void
after_done(run *r)
{
    crdtnet_channel *ch;
    const unsigned char *p, *q;
    unsigned char pk[32];
    size_t n, m;

    /* Invariant: only the harness gets in, as a member or (server under
     * test) with the right invitation. */
    if (crdtnet_hs_peer_key(r->hs, pk) != CRDT_OK ||
        memcmp(pk, harness.pk, 32) != 0 ||
        !(harness_is_member || (r->invite && invite_calls > 0)))
        abort();
    if (crdtnet_hs_take_channel(&ch, r->hs) != CRDT_OK)
        abort();
    while (next_frame(r, &p, &n))
        deliver(r, ch, p, n);
    if (crdtnet_channel_seal(ch, "x", 1, &q, &m) == CRDT_OK && m != 18)
        abort();
    crdtnet_channel_free(ch);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    crdtnet_hs_config cfg = CRDTNET_HS_CONFIG_INIT;
    crdtnet__hs_test t = {eph_target, 0, NULL};
    const uint8_t *p;
    run r;
    size_t n;
    int flags;

    if (size < 1)
        return 0;
    rng = 0x5eed; /* every input replays exactly */
    flags = data[0];
    harness_is_member = !(flags & 8);
    invite_calls = 0;
    memset(&r, 0, sizeof r);
    r.in = data + 1;
    r.left = size - 1;
    r.invite = (flags & 16) != 0;
    cfg.role = (flags & 1) ? CRDTNET_HS_CLIENT : CRDTNET_HS_SERVER;
    cfg.space_id = (flags & 32) && cfg.role == CRDTNET_HS_SERVER ? NULL
                                                                 : space;
    cfg.pk = target.pk;
    cfg.sk = target.sk;
    cfg.is_member = is_member;
    cfg.space_ok = space_ok;
    cfg.invite_ok = invite_ok;
    if (r.invite && cfg.role == CRDTNET_HS_CLIENT)
        cfg.invite = invite_secret;
    if (crdtnet__hs_new_test(&r.hs, &cfg, &t) != CRDT_OK)
        abort();

    if ((flags & 2) && cfg.space_id != NULL) {
        if (cfg.role == CRDTNET_HS_SERVER) {
            assist_server(&r, flags & 4);
        } else if (flags & 4) {
            assist_client(&r, 1, NULL, 0);
        } else if (next_frame(&r, &p, &n)) {
            assist_client(&r, 0, p, n);
        }
    }
    while (!crdtnet_hs_done(r.hs) && !crdtnet_hs_failed(r.hs) &&
           next_frame(&r, &p, &n))
        deliver(&r, NULL, p, n);
    /* Invariant (3) of handshake.c: no X25519 for a server that has not
     * verified a hello's MAC (a server with no space never does). */
    if (cfg.role == CRDTNET_HS_SERVER && cfg.space_id == NULL &&
        crdtnet__hs_x25519_count(r.hs) != 0)
        abort();
    if (crdtnet_hs_done(r.hs))
        after_done(&r);
    else if (crdtnet_hs_failed(r.hs) &&
             (crdtnet_hs_reason(r.hs)[0] == '\0' ||
              crdtnet_hs_take_channel(NULL, r.hs) != CRDT_EINVAL))
        abort();
    crdtnet_hs_free(r.hs);
    sodium_memzero(&r, sizeof r);
    return 0;
}
