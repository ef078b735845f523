/*
 * fuzz_handshake.c: the fuzzer plays the peer against one handshake state
 * machine (docs/testing.md, "Fuzzing"), with fixed keys and
 * deterministic randombytes so every input replays exactly.
 *
 * Input: byte 0 is a set of flags, the rest a list of frames, each a
 * 2-byte big-endian length and that many bytes.
 *   bit 0  role under test: 0 server, 1 client
 *   bit 1  assisted: the harness does the plaintext part of the protocol
 *          honestly and seals each fuzz frame with its real push stream,
 *          so the fuzzer reaches the decoder behind the MAC. Byte 0 of
 *          such a frame picks the tag (bits 0 and 2: MESSAGE, FINAL,
 *          PUSH, REKEY) or, with bit 1, sends the rest raw instead.
 *   bit 2  assisted: first send a genuine, correctly signed auth
 *   bit 3  the harness's identity is not a member
 * Checked: no crash or sanitizer report; output frames are 1..4096 bytes;
 * failure codes are the documented ones and sticky; done only for the
 * harness's own key when it is a member; after done, leftover frames go
 * to the channel.
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
    int have_keys;
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

static void
transcript(run *r, const unsigned char *client_eph,
           const unsigned char *server_eph)
{
    unsigned char buf[12 + 16 + 64];

    memcpy(buf, "strata-hs-v1", 12);
    memcpy(buf + 12, space, 16);
    memcpy(buf + 28, client_eph, 32);
    memcpy(buf + 60, server_eph, 32);
    crypto_generichash(r->th, 32, buf, sizeof buf, NULL, 0);
}

static void
seal_and_feed(run *r, const unsigned char *m, size_t n, unsigned char tag)
{
    unsigned char ct[CRDTNET_HS_MSG_MAX + 64];
    unsigned long long clen;

    crypto_secretstream_xchacha20poly1305_push(&r->push, ct, &clen, m, n,
                                               NULL, 0, tag);
    (void)feed(r, ct, (size_t)clen);
}

static void
send_genuine_auth(run *r, int role_target)
{
    const char *label = role_target == CRDTNET_HS_SERVER
                            ? "strata-auth-client"
                            : "strata-auth-server";
    unsigned char msg[64], buf[256];
    crdtnet__hs_msg m;
    size_t n = strlen(label);

    memcpy(msg, label, n);
    memcpy(msg + n, r->th, 32);
    memset(&m, 0, sizeof m);
    m.kind = CRDTNET__MSG_AUTH;
    memcpy(m.pk, harness.pk, 32);
    crypto_sign_detached(m.sig, NULL, msg, n + 32, harness.sk);
    if (crdtnet__hs_encode(buf, sizeof buf, &n, &m) != CRDT_OK)
        abort();
    seal_and_feed(r, buf, n,
                  crypto_secretstream_xchacha20poly1305_TAG_MESSAGE);
}

/* Harness as client: hello, read ack + hdr, send our hdr. */
static void
assist_server(run *r)
{
    unsigned char keep[2][CRDTNET_HS_MSG_MAX], buf[128], rx[32], tx[32];
    unsigned char pk[32];
    size_t keep_len[2], n;
    crdtnet__hs_msg m;
    int kept;

    memset(&m, 0, sizeof m);
    m.kind = CRDTNET__MSG_HELLO;
    m.version = CRDTNET_PROTO_VERSION;
    memcpy(m.space, space, 16);
    crypto_scalarmult_base(pk, eph_harness);
    memcpy(m.eph, pk, 32);
    if (crdtnet__hs_encode(buf, sizeof buf, &n, &m) != CRDT_OK ||
        crdtnet_hs_feed(r->hs, buf, n) != CRDT_OK)
        abort();
    drain(r, keep, keep_len, &kept);
    if (kept != 2 ||
        crdtnet__hs_decode(&m, 1u << CRDTNET__MSG_ACK, keep[0],
                           keep_len[0]) != CRDT_OK ||
        crypto_kx_client_session_keys(rx, tx, pk, eph_harness, m.eph) != 0)
        abort();
    transcript(r, pk, m.eph);
    crypto_secretstream_xchacha20poly1305_init_pull(&r->pull, keep[1], rx);
    crypto_secretstream_xchacha20poly1305_init_push(&r->push, buf, tx);
    if (feed(r, buf, 24) != CRDT_OK)
        abort();
    r->have_keys = 1;
}

/* Harness as server: read hello, send ack + hdr, read hdr + auth. */
static void
assist_client(run *r)
{
    unsigned char keep[2][CRDTNET_HS_MSG_MAX], buf[128], rx[32], tx[32];
    unsigned char pk[32], cli_eph[32];
    size_t keep_len[2], n;
    crdtnet__hs_msg m;
    int kept;

    drain(r, keep, keep_len, &kept);
    if (kept != 1 ||
        crdtnet__hs_decode(&m, 1u << CRDTNET__MSG_HELLO, keep[0],
                           keep_len[0]) != CRDT_OK)
        abort();
    memcpy(cli_eph, m.eph, 32);
    crypto_scalarmult_base(pk, eph_harness);
    if (crypto_kx_server_session_keys(rx, tx, pk, eph_harness, cli_eph) != 0)
        abort();
    transcript(r, cli_eph, pk);
    memset(&m, 0, sizeof m);
    m.kind = CRDTNET__MSG_ACK;
    m.version = CRDTNET_PROTO_VERSION;
    memcpy(m.eph, pk, 32);
    if (crdtnet__hs_encode(buf, sizeof buf, &n, &m) != CRDT_OK ||
        crdtnet_hs_feed(r->hs, buf, n) != CRDT_OK)
        abort();
    drain(r, keep, keep_len, &kept); /* client hdr + auth */
    if (kept != 2)
        abort();
    crypto_secretstream_xchacha20poly1305_init_pull(&r->pull, keep[0], rx);
    crypto_secretstream_xchacha20poly1305_init_push(&r->push, buf, tx);
    if (feed(r, buf, 24) != CRDT_OK)
        abort();
    r->have_keys = 1;
}

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

    if (r->have_keys && n > 0 && !(p[0] & 2)) {
        crypto_secretstream_xchacha20poly1305_push(
            &r->push, ct, &clen, p + 1, n - 1, NULL, 0,
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

    /* Invariant: only the harness, and only as a member, gets in. */
    if (crdtnet_hs_peer_key(r->hs, pk) != CRDT_OK || !harness_is_member ||
        memcmp(pk, harness.pk, 32) != 0)
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
    const uint8_t *p;
    run r;
    size_t n;
    int flags;

    if (size < 1)
        return 0;
    rng = 0x5eed; /* every input replays exactly */
    flags = data[0];
    harness_is_member = !(flags & 8);
    memset(&r, 0, sizeof r);
    r.in = data + 1;
    r.left = size - 1;
    cfg.role = (flags & 1) ? CRDTNET_HS_CLIENT : CRDTNET_HS_SERVER;
    cfg.space_id = space;
    cfg.pk = target.pk;
    cfg.sk = target.sk;
    cfg.is_member = is_member;
    cfg.space_ok = space_ok;
    cfg.test_ephemeral_sk = eph_target;
    if (crdtnet_hs_new(&r.hs, &cfg) != CRDT_OK)
        abort();

    if (flags & 2) {
        if (cfg.role == CRDTNET_HS_SERVER)
            assist_server(&r);
        else
            assist_client(&r);
        if (flags & 4)
            send_genuine_auth(&r, cfg.role);
    }
    while (!crdtnet_hs_done(r.hs) && !crdtnet_hs_failed(r.hs) &&
           next_frame(&r, &p, &n))
        deliver(&r, NULL, p, n);
    if (crdtnet_hs_done(r.hs))
        after_done(&r);
    else if (crdtnet_hs_failed(r.hs) &&
             (crdtnet_hs_reason(r.hs)[0] == '\0' ||
              crdtnet_hs_take_channel(NULL, r.hs) != CRDT_EINVAL))
        abort();
    crdtnet_hs_free(r.hs);
    sodium_memzero(&r.push, sizeof r.push);
    sodium_memzero(&r.pull, sizeof r.pull);
    return 0;
}
