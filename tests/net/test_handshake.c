/*
 * test_handshake.c: two handshake state machines wired in memory, and a
 * hand-built client that follows docs/protocol.md to forge, replay and
 * tamper (docs/testing.md B6 for the auth signature, B9, B19, B20, S1-S3).
 */
#include <check.h>
#include <sodium.h>
#include <string.h>

#include "crdtnet/frame.h"
#include "crdtnet/handshake.h"
#include "net_internal.h"
#include "support/support.h"

typedef struct {
    unsigned char pk[CRDTNET_PK_BYTES];
    unsigned char sk[CRDTNET_SK_BYTES];
} ident;

/* Callback context: who is a member, and which space is served. */
typedef struct {
    const ident *members[4];
    int n_members;
    const unsigned char *space; /* served space, or NULL for none */
    int member_calls;
} policy;

/* Everything one side put on the wire, for replay and S2 checks. */
typedef struct {
    unsigned char frame[8][CRDTNET_HS_MSG_MAX];
    size_t len[8];
    int n;
} capture;

static ident id_a, id_b, id_x; /* client, server, outsider */
static const unsigned char space1[16] = "space-one-16byte";
static const unsigned char space2[16] = "space-two-16byte";
static policy pol_c, pol_s;
static crdtnet_hs *cli, *srv;
static crdtnet_channel *ch_c, *ch_s;
static capture cap_c, cap_s;

static int
is_member(const unsigned char pk[CRDTNET_PK_BYTES], void *ctx)
{
    policy *p = ctx;
    int i;

    p->member_calls++;
    for (i = 0; i < p->n_members; i++)
        if (memcmp(p->members[i]->pk, pk, CRDTNET_PK_BYTES) == 0)
            return 1;
    return 0;
}

static int
space_ok(const unsigned char space_id[CRDTNET_SPACE_ID_BYTES], void *ctx)
{
    policy *p = ctx;

    return p->space != NULL && memcmp(p->space, space_id, 16) == 0;
}

static void
make_ident(ident *id, unsigned char seed_byte)
{
    unsigned char seed[crypto_sign_SEEDBYTES];

    memset(seed, seed_byte, sizeof seed);
    crypto_sign_seed_keypair(id->pk, id->sk, seed);
}

static void
setup(void)
{
    ck_assert_int_ge(sodium_init(), 0);
    make_ident(&id_a, 0xa1);
    make_ident(&id_b, 0xb2);
    make_ident(&id_x, 0xc3);
    memset(&pol_c, 0, sizeof pol_c);
    memset(&pol_s, 0, sizeof pol_s);
    /* Both know the space's member list: a and b. */
    pol_c.members[0] = pol_s.members[0] = &id_a;
    pol_c.members[1] = pol_s.members[1] = &id_b;
    pol_c.n_members = pol_s.n_members = 2;
    pol_s.space = space1;
    memset(&cap_c, 0, sizeof cap_c);
    memset(&cap_s, 0, sizeof cap_s);
    cli = srv = NULL;
    ch_c = ch_s = NULL;
}

static void
teardown(void)
{
    crdtnet_hs_free(cli);
    crdtnet_hs_free(srv);
    crdtnet_channel_free(ch_c);
    crdtnet_channel_free(ch_s);
}

static crdtnet_hs *
new_hs(crdtnet_hs_role role, const ident *id, policy *pol,
       const unsigned char *space, const unsigned char *eph_sk)
{
    crdtnet_hs_config cfg = CRDTNET_HS_CONFIG_INIT;
    crdtnet_hs *hs = NULL;

    cfg.role = role;
    cfg.space_id = space;
    cfg.pk = id->pk;
    cfg.sk = id->sk;
    cfg.is_member = is_member;
    cfg.space_ok = space_ok;
    cfg.ctx = pol;
    cfg.test_ephemeral_sk = eph_sk;
    ck_assert_int_eq(crdtnet_hs_new(&hs, &cfg), CRDT_OK);
    return hs;
}

/*
 * Move frames from @p from to @p to through a real framer (header +
 * payload, as on a socket). Frames for a side that is done or failed are
 * captured but not fed: on a socket they would go to the channel.
 */
static int
move(crdtnet_hs *from, crdtnet_hs *to, capture *cap)
{
    unsigned char wire[4 + CRDTNET_HS_MSG_MAX];
    const unsigned char *p, *q;
    crdtnet_framer *fr;
    size_t n, m, used;
    int moved = 0;

    ck_assert_int_eq(crdtnet_framer_new(&fr, CRDTNET_HS_MSG_MAX), CRDT_OK);
    while (crdtnet_hs_next_out(from, &p, &n) == CRDT_OK) {
        ck_assert_int_lt(cap->n, 8);
        memcpy(cap->frame[cap->n], p, n);
        cap->len[cap->n++] = n;
        moved++;
        ck_assert_int_eq(crdtnet_frame_header(wire, n), CRDT_OK);
        memcpy(wire + 4, p, n);
        ck_assert_int_eq(crdtnet_framer_feed(fr, wire, n + 4, &used),
                         CRDT_OK);
        ck_assert_uint_eq(used, n + 4);
        ck_assert_int_eq(crdtnet_framer_next(fr, &q, &m), CRDT_OK);
        if (to != NULL && !crdtnet_hs_done(to) && !crdtnet_hs_failed(to))
            (void)crdtnet_hs_feed(to, q, m);
    }
    crdtnet_framer_free(fr);
    return moved;
}

static void
pump(void)
{
    int i;

    for (i = 0; i < 10; i++)
        if (move(cli, srv, &cap_c) + move(srv, cli, &cap_s) == 0)
            return;
    ck_abort_msg("handshake did not settle");
}

static void
start_default(void)
{
    cli = new_hs(CRDTNET_HS_CLIENT, &id_a, &pol_c, space1, NULL);
    srv = new_hs(CRDTNET_HS_SERVER, &id_b, &pol_s, NULL, NULL);
}

static int
contains(const unsigned char *hay, size_t n, const unsigned char *needle,
         size_t m)
{
    size_t i;

    for (i = 0; i + m <= n; i++)
        if (memcmp(hay + i, needle, m) == 0)
            return 1;
    return 0;
}

static int
capture_contains(const capture *cap, const unsigned char *needle, size_t m)
{
    int i;

    for (i = 0; i < cap->n; i++)
        if (contains(cap->frame[i], cap->len[i], needle, m))
            return 1;
    return 0;
}

/* ---- the happy path ------------------------------------------------- */

START_TEST(test_hs_completes_and_both_sides_agree)
{
    unsigned char pk[32], sp[16];
    const unsigned char *p, *q;
    size_t n, m;

    start_default();
    ck_assert_int_eq(crdtnet_hs_peer_key(cli, pk), CRDT_EAGAIN);
    ck_assert_int_eq(crdtnet_hs_space(srv, sp), CRDT_EAGAIN);
    pump();
    ck_assert(crdtnet_hs_done(cli));
    ck_assert(crdtnet_hs_done(srv));
    ck_assert_int_eq(crdtnet_hs_failed(cli), 0);
    ck_assert_str_eq(crdtnet_hs_reason(cli), "");
    ck_assert_int_eq(crdtnet_hs_peer_key(cli, pk), CRDT_OK);
    ck_assert_mem_eq(pk, id_b.pk, 32);
    ck_assert_int_eq(crdtnet_hs_peer_key(srv, pk), CRDT_OK);
    ck_assert_mem_eq(pk, id_a.pk, 32);
    ck_assert_int_eq(crdtnet_hs_space(srv, sp), CRDT_OK);
    ck_assert_mem_eq(sp, space1, 16);
    ck_assert_int_eq(crdtnet_hs_space(cli, sp), CRDT_OK);
    ck_assert_mem_eq(sp, space1, 16);
    /* 1.5 round trips: hello; ack, hdr; hdr, auth; auth. */
    ck_assert_int_eq(cap_c.n, 3);
    ck_assert_int_eq(cap_s.n, 3);

    ck_assert_int_eq(crdtnet_hs_take_channel(&ch_c, cli), CRDT_OK);
    ck_assert_int_eq(crdtnet_hs_take_channel(&ch_s, srv), CRDT_OK);
    ck_assert_int_eq(crdtnet_hs_take_channel(&ch_s, srv), CRDT_EINVAL);
    ck_assert_int_eq(crdtnet_hs_feed(cli, "x", 1), CRDT_EINVAL);

    ck_assert_int_eq(crdtnet_channel_seal(ch_c, "ping", 4, &p, &n), CRDT_OK);
    ck_assert_int_eq(crdtnet_channel_open(ch_s, p, n, &q, &m), CRDT_OK);
    ck_assert_uint_eq(m, 4);
    ck_assert_mem_eq(q, "ping", 4);
    ck_assert_int_eq(crdtnet_channel_seal(ch_s, "pong!", 5, &p, &n),
                     CRDT_OK);
    ck_assert_int_eq(crdtnet_channel_open(ch_c, p, n, &q, &m), CRDT_OK);
    ck_assert_uint_eq(m, 5);
    ck_assert_mem_eq(q, "pong!", 5);
}
END_TEST

/* S2: neither long-term key, nor a signature, is ever on the wire. */
START_TEST(test_hs_identities_never_in_plaintext)
{
    start_default();
    pump();
    ck_assert(crdtnet_hs_done(cli) && crdtnet_hs_done(srv));
    ck_assert(!capture_contains(&cap_c, id_a.pk, 32));
    ck_assert(!capture_contains(&cap_s, id_a.pk, 32));
    ck_assert(!capture_contains(&cap_c, id_b.pk, 32));
    ck_assert(!capture_contains(&cap_s, id_b.pk, 32));
    /* Even a 4-byte slice of a key would be a leak worth knowing. */
    ck_assert(!capture_contains(&cap_c, id_a.pk + 8, 8));
}
END_TEST

START_TEST(test_hs_take_channel_waits_for_output_to_drain)
{
    const unsigned char *p;
    size_t n;

    start_default();
    /* Run until the server is done, but keep its last frame queued. */
    move(cli, srv, &cap_c);
    move(srv, cli, &cap_s);
    ck_assert_int_eq(crdtnet_hs_take_channel(&ch_s, srv), CRDT_EAGAIN);
    while (crdtnet_hs_next_out(cli, &p, &n) == CRDT_OK)
        ck_assert_int_eq(crdtnet_hs_feed(srv, p, n), CRDT_OK);
    ck_assert(crdtnet_hs_done(srv));
    ck_assert_int_eq(crdtnet_hs_take_channel(&ch_s, srv), CRDT_EAGAIN);
    ck_assert_int_eq(crdtnet_hs_next_out(srv, &p, &n), CRDT_OK);
    ck_assert_int_eq(crdtnet_hs_next_out(srv, &p, &n), CRDT_EAGAIN);
    ck_assert_int_eq(crdtnet_hs_take_channel(&ch_s, srv), CRDT_OK);
}
END_TEST

START_TEST(test_hs_new_rejects_bad_config)
{
    crdtnet_hs_config cfg = CRDTNET_HS_CONFIG_INIT;
    crdtnet_hs *hs = NULL;

    cfg.role = CRDTNET_HS_CLIENT;
    cfg.space_id = space1;
    cfg.pk = id_a.pk;
    cfg.sk = id_a.sk;
    ck_assert_int_eq(crdtnet_hs_new(&hs, &cfg), CRDT_EINVAL); /* no cb */
    cfg.is_member = is_member;
    cfg.sk = id_b.sk; /* not a's */
    ck_assert_int_eq(crdtnet_hs_new(&hs, &cfg), CRDT_EINVAL);
    cfg.sk = id_a.sk;
    cfg.role = (crdtnet_hs_role)0;
    ck_assert_int_eq(crdtnet_hs_new(&hs, &cfg), CRDT_EINVAL);
    cfg.role = CRDTNET_HS_SERVER; /* no space_ok */
    ck_assert_int_eq(crdtnet_hs_new(&hs, &cfg), CRDT_EINVAL);
    cfg.role = CRDTNET_HS_CLIENT;
    cfg.frame_max = 10;
    ck_assert_int_eq(crdtnet_hs_new(&hs, &cfg), CRDT_EINVAL);
    cfg.frame_max = 0;
    cfg.version = 2;
    ck_assert_int_eq(crdtnet_hs_new(&hs, &cfg), CRDT_EINVAL);
    ck_assert_ptr_null(hs);
}
END_TEST

/* ---- refusals ------------------------------------------------------- */

START_TEST(test_hs_wrong_space_is_refused_with_reason)
{
    cli = new_hs(CRDTNET_HS_CLIENT, &id_a, &pol_c, space2, NULL);
    srv = new_hs(CRDTNET_HS_SERVER, &id_b, &pol_s, NULL, NULL);
    pump();
    ck_assert_int_eq(crdtnet_hs_failed(srv), CRDT_EAUTH);
    ck_assert_str_eq(crdtnet_hs_reason(srv), "unknown space");
    ck_assert_int_eq(crdtnet_hs_failed(cli), CRDT_EAUTH);
    ck_assert_str_eq(crdtnet_hs_reason(cli), "peer: unknown space");
    ck_assert_int_eq(cap_s.n, 1); /* just the error frame */
    ck_assert_int_eq(pol_s.member_calls, 0);
    ck_assert_int_eq(crdtnet_hs_take_channel(&ch_c, cli), CRDT_EAUTH);
}
END_TEST

START_TEST(test_hs_non_member_client_is_refused)
{
    const unsigned char *p;
    size_t n;

    cli = new_hs(CRDTNET_HS_CLIENT, &id_x, &pol_c, space1, NULL);
    srv = new_hs(CRDTNET_HS_SERVER, &id_b, &pol_s, NULL, NULL);
    pump();
    ck_assert_int_eq(crdtnet_hs_failed(srv), CRDT_EAUTH);
    ck_assert_str_eq(crdtnet_hs_reason(srv), "not a member of this space");
    ck_assert_int_eq(crdtnet_hs_failed(cli), CRDT_EAUTH);
    ck_assert_str_eq(crdtnet_hs_reason(cli),
                     "peer: not a member of this space");
    ck_assert(!crdtnet_hs_done(cli) && !crdtnet_hs_done(srv));
    ck_assert_int_eq(crdtnet_hs_take_channel(&ch_s, srv), CRDT_EAUTH);
    ck_assert_int_eq(crdtnet_hs_take_channel(&ch_c, cli), CRDT_EAUTH);
    ck_assert_ptr_null(ch_s);
    /* Keeps handshake.c (2): the server never revealed who it is. */
    ck_assert(!capture_contains(&cap_s, id_b.pk, 32));
    /* Sticky: everything returns the same code, nothing more is sent. */
    ck_assert_int_eq(crdtnet_hs_feed(srv, "x", 1), CRDT_EAUTH);
    ck_assert_int_eq(crdtnet_hs_next_out(srv, &p, &n), CRDT_EAUTH);
    ck_assert_int_eq(crdtnet_hs_peer_key(srv, (unsigned char[32]){0}),
                     CRDT_EAUTH);
}
END_TEST

/* The client refuses a server outside the space. The server finished its
 * side first, so it learns why from a final message on its channel. */
START_TEST(test_hs_server_not_member_is_refused_by_client)
{
    const unsigned char *q;
    char reason[CRDTNET_REASON_MAX];
    size_t m;
    int code;

    pol_c.n_members = 1; /* the client only trusts a */
    start_default();
    pump();
    ck_assert_int_eq(crdtnet_hs_failed(cli), CRDT_EAUTH);
    ck_assert_str_eq(crdtnet_hs_reason(cli), "not a member of this space");
    ck_assert_int_eq(crdtnet_hs_take_channel(&ch_c, cli), CRDT_EAUTH);
    ck_assert(crdtnet_hs_done(srv));
    ck_assert_int_eq(cap_c.n, 4); /* hello, hdr, auth, sealed error */
    ck_assert_int_eq(crdtnet_hs_take_channel(&ch_s, srv), CRDT_OK);
    ck_assert_int_eq(
        crdtnet_channel_open(ch_s, cap_c.frame[3], cap_c.len[3], &q, &m),
        CRDT_OK);
    ck_assert(crdtnet_channel_peer_closed(ch_s));
    ck_assert_int_eq(crdtnet_hs_parse_error(q, m, &code, reason,
                                            sizeof reason),
                     CRDT_OK);
    ck_assert_int_eq(code, CRDT_EAUTH);
    ck_assert_str_eq(reason, "not a member of this space");
}
END_TEST

/* Flip one bit of the client's sealed auth: the MAC fails (B6, B9). */
START_TEST(test_hs_tampered_auth_is_eauth)
{
    const unsigned char *p;
    unsigned char buf[CRDTNET_HS_MSG_MAX];
    size_t n;

    start_default();
    move(cli, srv, &cap_c);
    move(srv, cli, &cap_s);
    ck_assert_int_eq(crdtnet_hs_next_out(cli, &p, &n), CRDT_OK); /* hdr */
    ck_assert_int_eq(crdtnet_hs_feed(srv, p, n), CRDT_OK);
    ck_assert_int_eq(crdtnet_hs_next_out(cli, &p, &n), CRDT_OK); /* auth */
    memcpy(buf, p, n);
    buf[n / 2] ^= 0x10;
    ck_assert_int_eq(crdtnet_hs_feed(srv, buf, n), CRDT_EAUTH);
    ck_assert_str_eq(crdtnet_hs_reason(srv), "decryption failed");
    ck_assert(!crdtnet_hs_done(srv));
}
END_TEST

START_TEST(test_hs_tampered_header_fails_later)
{
    const unsigned char *p;
    unsigned char buf[64];
    size_t n;

    start_default();
    move(cli, srv, &cap_c);
    move(srv, cli, &cap_s);
    ck_assert_int_eq(crdtnet_hs_next_out(cli, &p, &n), CRDT_OK); /* hdr */
    ck_assert_uint_eq(n, 24);
    memcpy(buf, p, n);
    buf[3] ^= 1;
    ck_assert_int_eq(crdtnet_hs_feed(srv, buf, n), CRDT_OK);
    ck_assert_int_eq(crdtnet_hs_next_out(cli, &p, &n), CRDT_OK); /* auth */
    ck_assert_int_eq(crdtnet_hs_feed(srv, p, n), CRDT_EAUTH);
    /* A header of the wrong size is malformed. */
    crdtnet_hs_free(srv);
    crdtnet_hs_free(cli);
    start_default();
    move(cli, srv, &cap_c);
    ck_assert_int_eq(crdtnet_hs_feed(srv, buf, 23), CRDT_EPROTO);
}
END_TEST

/* ---- a hand-built client, straight from docs/protocol.md ------------- */

typedef struct {
    unsigned char eph_pk[32], eph_sk[32];
    unsigned char rx[32], tx[32], th[32];
    crdtnet__stream push, pull;
} manual;

static size_t
encode(unsigned char *buf, const crdtnet__hs_msg *m)
{
    size_t n;

    ck_assert_int_eq(crdtnet__hs_encode(buf, CRDTNET_HS_MSG_MAX, &n, m),
                     CRDT_OK);
    return n;
}

static size_t
manual_hello(manual *mc, unsigned char *buf, const unsigned char *space,
             uint64_t version)
{
    crdtnet__hs_msg m;

    memset(&m, 0, sizeof m);
    crypto_kx_keypair(mc->eph_pk, mc->eph_sk);
    m.kind = CRDTNET__MSG_HELLO;
    m.version = version;
    memcpy(m.space, space, 16);
    memcpy(m.eph, mc->eph_pk, 32);
    return encode(buf, &m);
}

/* Send hello, read ack + hdr, send our hdr: ready for the auth message. */
static void
manual_to_auth(manual *mc)
{
    unsigned char buf[CRDTNET_HS_MSG_MAX], th_in[12 + 16 + 64];
    const unsigned char *p;
    crdtnet__hs_msg ack;
    size_t n;

    n = manual_hello(mc, buf, space1, 1);
    ck_assert_int_eq(crdtnet_hs_feed(srv, buf, n), CRDT_OK);
    ck_assert_int_eq(crdtnet_hs_next_out(srv, &p, &n), CRDT_OK);
    ck_assert_int_eq(crdtnet__hs_decode(&ack, 1u << CRDTNET__MSG_ACK, p, n),
                     CRDT_OK);
    ck_assert_int_eq(crypto_kx_client_session_keys(mc->rx, mc->tx,
                                                   mc->eph_pk, mc->eph_sk,
                                                   ack.eph),
                     0);
    memcpy(th_in, "strata-hs-v1", 12);
    memcpy(th_in + 12, space1, 16);
    memcpy(th_in + 28, mc->eph_pk, 32);
    memcpy(th_in + 60, ack.eph, 32);
    crypto_generichash(mc->th, 32, th_in, sizeof th_in, NULL, 0);
    ck_assert_int_eq(crdtnet_hs_next_out(srv, &p, &n), CRDT_OK);
    ck_assert_uint_eq(n, 24);
    crypto_secretstream_xchacha20poly1305_init_pull(&mc->pull, p, mc->rx);
    crypto_secretstream_xchacha20poly1305_init_push(&mc->push, buf, mc->tx);
    ck_assert_int_eq(crdtnet_hs_feed(srv, buf, 24), CRDT_OK);
}

/* Seal [claimed_pk, sig by signer over label || th] and feed it. */
static int
manual_auth(manual *mc, const unsigned char *claimed_pk, const ident *signer,
            const char *label)
{
    unsigned char msg[64], buf[CRDTNET_HS_MSG_MAX], ct[CRDTNET_HS_MSG_MAX];
    unsigned long long clen;
    crdtnet__hs_msg m;
    size_t n = strlen(label);

    memcpy(msg, label, n);
    memcpy(msg + n, mc->th, 32);
    memset(&m, 0, sizeof m);
    m.kind = CRDTNET__MSG_AUTH;
    memcpy(m.pk, claimed_pk, 32);
    crypto_sign_detached(m.sig, NULL, msg, n + 32, signer->sk);
    n = encode(buf, &m);
    crypto_secretstream_xchacha20poly1305_push(
        &mc->push, ct, &clen, buf, n, NULL, 0,
        crypto_secretstream_xchacha20poly1305_TAG_MESSAGE);
    return crdtnet_hs_feed(srv, ct, (size_t)clen);
}

/* Control: the documented bytes, built by hand, are accepted. */
START_TEST(test_hs_manual_client_following_the_spec_succeeds)
{
    unsigned char plain[CRDTNET_HS_MSG_MAX], msg[64];
    unsigned long long mlen;
    const unsigned char *p;
    crdtnet__hs_msg m;
    unsigned char tag;
    manual mc;
    size_t n;

    srv = new_hs(CRDTNET_HS_SERVER, &id_b, &pol_s, NULL, NULL);
    manual_to_auth(&mc);
    ck_assert_int_eq(manual_auth(&mc, id_a.pk, &id_a, "strata-auth-client"),
                     CRDT_OK);
    ck_assert(crdtnet_hs_done(srv));
    /* And the server's auth verifies as documented. */
    ck_assert_int_eq(crdtnet_hs_next_out(srv, &p, &n), CRDT_OK);
    ck_assert_int_eq(crypto_secretstream_xchacha20poly1305_pull(
                         &mc.pull, plain, &mlen, &tag, p, n, NULL, 0),
                     0);
    ck_assert_int_eq(tag, crypto_secretstream_xchacha20poly1305_TAG_MESSAGE);
    ck_assert_int_eq(crdtnet__hs_decode(&m, 1u << CRDTNET__MSG_AUTH, plain,
                                        (size_t)mlen),
                     CRDT_OK);
    ck_assert_mem_eq(m.pk, id_b.pk, 32);
    memcpy(msg, "strata-auth-server", 18);
    memcpy(msg + 18, mc.th, 32);
    ck_assert_int_eq(crypto_sign_verify_detached(m.sig, msg, 50, m.pk), 0);
}
END_TEST

/* B6 for the handshake: an outsider claims a member's key. */
START_TEST(test_hs_forged_signature_is_eauth)
{
    manual mc;

    srv = new_hs(CRDTNET_HS_SERVER, &id_b, &pol_s, NULL, NULL);
    manual_to_auth(&mc);
    ck_assert_int_eq(manual_auth(&mc, id_a.pk, &id_x, "strata-auth-client"),
                     CRDT_EAUTH);
    ck_assert_str_eq(crdtnet_hs_reason(srv), "bad signature");
    ck_assert_int_eq(pol_s.member_calls, 0);
    ck_assert(!crdtnet_hs_done(srv));
}
END_TEST

/* Reflection: a server-labelled signature is no client proof. */
START_TEST(test_hs_wrong_label_is_eauth)
{
    manual mc;

    srv = new_hs(CRDTNET_HS_SERVER, &id_b, &pol_s, NULL, NULL);
    manual_to_auth(&mc);
    ck_assert_int_eq(manual_auth(&mc, id_a.pk, &id_a, "strata-auth-server"),
                     CRDT_EAUTH);
    ck_assert_str_eq(crdtnet_hs_reason(srv), "bad signature");
}
END_TEST

START_TEST(test_hs_version_mismatch_is_eversion)
{
    unsigned char buf[CRDTNET_HS_MSG_MAX];
    const unsigned char *p;
    crdtnet__hs_msg m;
    manual mc;
    size_t n;

    srv = new_hs(CRDTNET_HS_SERVER, &id_b, &pol_s, NULL, NULL);
    n = manual_hello(&mc, buf, space1, 2);
    ck_assert_int_eq(crdtnet_hs_feed(srv, buf, n), CRDT_EVERSION);
    ck_assert_str_eq(crdtnet_hs_reason(srv), "unsupported protocol version");
    /* The server's plaintext error reaches a real client as EVERSION. */
    cli = new_hs(CRDTNET_HS_CLIENT, &id_a, &pol_c, space1, NULL);
    ck_assert_int_eq(crdtnet_hs_next_out(cli, &p, &n), CRDT_OK);
    ck_assert_int_eq(crdtnet_hs_next_out(srv, &p, &n), CRDT_OK);
    ck_assert_int_eq(crdtnet_hs_feed(cli, p, n), CRDT_EVERSION);
    ck_assert_str_eq(crdtnet_hs_reason(cli),
                     "peer: unsupported protocol version");
    ck_assert_int_eq(crdtnet_hs_next_out(srv, &p, &n), CRDT_EVERSION);

    /* An ack with another version is EVERSION at the client too. */
    crdtnet_hs_free(cli);
    cli = new_hs(CRDTNET_HS_CLIENT, &id_a, &pol_c, space1, NULL);
    memset(&m, 0, sizeof m);
    m.kind = CRDTNET__MSG_ACK;
    m.version = 7;
    crypto_kx_keypair(m.eph, mc.eph_sk);
    n = encode(buf, &m);
    ck_assert_int_eq(crdtnet_hs_feed(cli, buf, n), CRDT_EVERSION);
}
END_TEST

/* B3, B4, B5 on the hello: each on a fresh server, each EPROTO, and the
 * server answers with one plaintext error frame. */
START_TEST(test_hs_malformed_hello_is_eproto)
{
    unsigned char good[128], bad[CRDTNET_HS_MSG_MAX + 1];
    const unsigned char *p;
    size_t glen, n, i;
    manual mc;
    int rc, c;

    glen = manual_hello(&mc, good, space1, 1);
    ck_assert_uint_eq(glen, 61);
    for (c = 0; c < 12; c++) {
        srv = new_hs(CRDTNET_HS_SERVER, &id_b, &pol_s, NULL, NULL);
        memset(bad, 0, sizeof bad);
        switch (c) {
        case 0: /* truncated by one */
            memcpy(bad, good, glen - 1);
            n = glen - 1;
            break;
        case 1: /* one trailing byte */
            memcpy(bad, good, glen);
            bad[glen] = 0xc0;
            n = glen + 1;
            break;
        case 2: /* garbage */
            for (i = 0; i < 100; i++)
                bad[i] = (unsigned char)(i * 37 + 11);
            n = 100;
            break;
        case 3: /* allocation bomb: array32 claiming 2^32-1 */
            memcpy(bad, "\xdd\xff\xff\xff\xff", 5);
            n = 5;
            break;
        case 4: /* deep nesting: 0x91 x 4000 + nil */
            memset(bad, 0x91, 4000);
            bad[4000] = 0xc0;
            n = 4001;
            break;
        case 5: /* space as a str, not a bin */
            memcpy(bad, good, glen);
            bad[9] = 0xd9;
            n = glen;
            break;
        case 6: /* 15-byte space */
            memcpy(bad, good, 9);
            bad[9] = 0xc4;
            bad[10] = 15;
            memcpy(bad + 11, good + 11, 15);
            memcpy(bad + 26, good + 27, 34);
            n = glen - 1;
            break;
        case 7: /* array of 3 */
            memcpy(bad, good, glen);
            bad[0] = 0x93;
            n = glen;
            break;
        case 8: /* wrong magic */
            memcpy(bad, good, glen);
            bad[2] = 'S';
            n = glen;
            break;
        case 9: /* too large */
            memcpy(bad, good, glen);
            n = CRDTNET_HS_MSG_MAX + 1;
            break;
        case 10: /* bin32 length SIZE_MAX-ish */
            memcpy(bad, good, 9);
            memcpy(bad + 9, "\xc6\xff\xff\xff\xfd", 5);
            n = 14;
            break;
        default: /* a map, not an array */
            bad[0] = 0x81;
            bad[1] = 0xc0;
            bad[2] = 0xc0;
            n = 3;
            break;
        }
        rc = crdtnet_hs_feed(srv, bad, n);
        ck_assert_msg(rc == CRDT_EPROTO, "case %d: %d", c, rc);
        ck_assert_int_eq(crdtnet_hs_next_out(srv, &p, &n), CRDT_OK);
        ck_assert_int_eq(crdtnet_hs_next_out(srv, &p, &n), CRDT_EPROTO);
        crdtnet_hs_free(srv);
        srv = NULL;
    }
    /* The well-formed one still works: the cases above were the bytes. */
    srv = new_hs(CRDTNET_HS_SERVER, &id_b, &pol_s, NULL, NULL);
    ck_assert_int_eq(crdtnet_hs_feed(srv, good, glen), CRDT_OK);
}
END_TEST

START_TEST(test_hs_malformed_ack_is_eproto)
{
    unsigned char buf[CRDTNET_HS_MSG_MAX];
    const unsigned char *p;
    crdtnet__hs_msg m;
    size_t n;

    cli = new_hs(CRDTNET_HS_CLIENT, &id_a, &pol_c, space1, NULL);
    memset(&m, 0, sizeof m);
    m.kind = CRDTNET__MSG_ACK;
    m.version = 1;
    memset(m.eph, 9, 32);
    n = encode(buf, &m);
    ck_assert_int_eq(crdtnet_hs_feed(cli, buf, n - 1), CRDT_EPROTO);
    ck_assert_str_eq(crdtnet_hs_reason(cli), "malformed handshake message");
    /* The client never talks to an unauthenticated server about it. */
    ck_assert_int_eq(crdtnet_hs_next_out(cli, &p, &n), CRDT_OK); /* hello */
    ck_assert_int_eq(crdtnet_hs_next_out(cli, &p, &n), CRDT_EPROTO);
}
END_TEST

/* B20: every small-order X25519 point, at the server and the client. */
START_TEST(test_hs_low_order_ephemeral_is_eauth)
{
    static const unsigned char pts[7][32] = {
        {0},
        {1},
        {0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3,
         0xfa, 0xf1, 0x9f, 0xc4, 0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32,
         0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00},
        {0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1,
         0x55, 0x9c, 0x83, 0xef, 0x5b, 0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c,
         0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd, 0xd0, 0x9f, 0x11, 0x57},
        {0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
         0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
         0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
        {0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
         0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
         0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
        {0xee, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
         0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
         0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
    };
    unsigned char buf[CRDTNET_HS_MSG_MAX];
    const unsigned char *p;
    crdtnet__hs_msg m;
    size_t n;
    int i;

    for (i = 0; i < 7; i++) {
        srv = new_hs(CRDTNET_HS_SERVER, &id_b, &pol_s, NULL, NULL);
        memset(&m, 0, sizeof m);
        m.kind = CRDTNET__MSG_HELLO;
        m.version = 1;
        memcpy(m.space, space1, 16);
        memcpy(m.eph, pts[i], 32);
        n = encode(buf, &m);
        ck_assert_int_eq(crdtnet_hs_feed(srv, buf, n), CRDT_EAUTH);
        ck_assert_str_eq(crdtnet_hs_reason(srv), "invalid ephemeral key");
        ck_assert_int_eq(crdtnet_hs_next_out(srv, &p, &n), CRDT_OK);
        crdtnet_hs_free(srv);
        srv = NULL;

        cli = new_hs(CRDTNET_HS_CLIENT, &id_a, &pol_c, space1, NULL);
        m.kind = CRDTNET__MSG_ACK;
        n = encode(buf, &m);
        ck_assert_int_eq(crdtnet_hs_feed(cli, buf, n), CRDT_EAUTH);
        ck_assert_str_eq(crdtnet_hs_reason(cli), "invalid ephemeral key");
        crdtnet_hs_free(cli);
        cli = NULL;
    }
}
END_TEST

/* B9, S3a: a captured client handshake replayed to a new server. */
START_TEST(test_hs_replayed_client_handshake_cannot_complete)
{
    int i, rc = CRDT_OK;

    start_default();
    pump();
    ck_assert(crdtnet_hs_done(srv));
    ck_assert_int_eq(cap_c.n, 3);
    crdtnet_hs_free(srv);
    srv = new_hs(CRDTNET_HS_SERVER, &id_b, &pol_s, NULL, NULL);
    for (i = 0; i < cap_c.n && rc == CRDT_OK; i++)
        rc = crdtnet_hs_feed(srv, cap_c.frame[i], cap_c.len[i]);
    ck_assert_int_eq(i, 3);
    ck_assert_int_eq(rc, CRDT_EAUTH);
    ck_assert_str_eq(crdtnet_hs_reason(srv), "decryption failed");
    ck_assert(!crdtnet_hs_done(srv));
}
END_TEST

/* Frames fed twice within one handshake fail too. */
START_TEST(test_hs_replayed_auth_in_same_session_fails)
{
    const unsigned char *p;
    unsigned char auth[CRDTNET_HS_MSG_MAX];
    size_t n, an;

    start_default();
    move(cli, srv, &cap_c);
    move(srv, cli, &cap_s);
    ck_assert_int_eq(crdtnet_hs_next_out(cli, &p, &n), CRDT_OK); /* hdr */
    ck_assert_int_eq(crdtnet_hs_feed(srv, p, n), CRDT_OK);
    ck_assert_int_eq(crdtnet_hs_next_out(cli, &p, &n), CRDT_OK); /* auth */
    memcpy(auth, p, n);
    an = n;
    ck_assert_int_eq(crdtnet_hs_feed(srv, auth, an), CRDT_OK);
    ck_assert(crdtnet_hs_done(srv));
    ck_assert_int_eq(crdtnet_hs_take_channel(&ch_s, srv), CRDT_EAGAIN);
    ck_assert_int_eq(crdtnet_hs_next_out(srv, &p, &n), CRDT_OK);
    ck_assert_int_eq(crdtnet_hs_take_channel(&ch_s, srv), CRDT_OK);
    /* The same bytes again, now as a channel frame: stale counter. */
    ck_assert_int_eq(crdtnet_channel_open(ch_s, auth, an, &p, &n),
                     CRDT_EAUTH);
}
END_TEST

/* Golden bytes: docs/protocol.md's example hello and ack. */
START_TEST(test_hs_golden_hello_and_ack)
{
    static const char hello_hex[] =
        "94a6737472617461" "01" "c410" "73706163652d6f6e652d313662797465"
        "c420" "a4e09292b651c278b9772c569f5fa9bb"
        "13d906b46ab68c9df9dc2b4409f8a209";
    static const char ack_hex[] =
        "93a6737472617461" "01"
        "c420" "ce8d3ad1ccb633ec7b70c17814a5c76e"
        "cd029685050d344745ba05870e587d59";
    unsigned char eph_c[32], eph_s[32], want[128];
    const unsigned char *p;
    size_t n, wn;

    memset(eph_c, 0x01, 32);
    memset(eph_s, 0x02, 32);
    cli = new_hs(CRDTNET_HS_CLIENT, &id_a, &pol_c, space1, eph_c);
    srv = new_hs(CRDTNET_HS_SERVER, &id_b, &pol_s, NULL, eph_s);
    ck_assert_int_eq(crdtnet_hs_next_out(cli, &p, &n), CRDT_OK);
    ck_assert_int_eq(sodium_hex2bin(want, sizeof want, hello_hex,
                                    strlen(hello_hex), NULL, &wn, NULL),
                     0);
    ck_assert_uint_eq(n, wn);
    ck_assert_mem_eq(p, want, n);
    ck_assert_int_eq(crdtnet_hs_feed(srv, p, n), CRDT_OK);
    ck_assert_int_eq(crdtnet_hs_next_out(srv, &p, &n), CRDT_OK);
    ck_assert_int_eq(sodium_hex2bin(want, sizeof want, ack_hex,
                                    strlen(ack_hex), NULL, &wn, NULL),
                     0);
    ck_assert_uint_eq(n, wn);
    ck_assert_mem_eq(p, want, n);
}
END_TEST

START_TEST(test_hs_parse_error_sanitizes)
{
    static const unsigned char msg[] = {0x93, 0xac, 's', 't', 'r', 'a', 't',
                                        'a', '-', 'e', 'r', 'r', 'o', 'r',
                                        0xf5, 0xa4, 'a', 0x1b, '\n', 'b'};
    char reason[8];
    int code;

    ck_assert_int_eq(crdtnet_hs_parse_error(msg, sizeof msg, &code, reason,
                                            sizeof reason),
                     CRDT_OK);
    ck_assert_int_eq(code, CRDT_EAUTH);
    ck_assert_str_eq(reason, "a??b");
    ck_assert_int_eq(crdtnet_hs_parse_error(msg, sizeof msg - 1, &code,
                                            reason, sizeof reason),
                     CRDT_EPROTO);
    ck_assert_int_eq(crdtnet_hs_parse_error(msg, sizeof msg, &code, reason, 3),
                     CRDT_OK);
    ck_assert_str_eq(reason, "a?");
}
END_TEST

Suite *
test_suite(void)
{
    Suite *s = suite_create("handshake");
    TCase *ok = tcase_create("complete");
    TCase *bad = tcase_create("refuse");
    TCase *wire = tcase_create("wire");

    tcase_add_checked_fixture(ok, setup, teardown);
    tcase_add_test(ok, test_hs_completes_and_both_sides_agree);
    tcase_add_test(ok, test_hs_identities_never_in_plaintext);
    tcase_add_test(ok, test_hs_take_channel_waits_for_output_to_drain);
    tcase_add_test(ok, test_hs_new_rejects_bad_config);
    tcase_add_test(ok, test_hs_manual_client_following_the_spec_succeeds);
    suite_add_tcase(s, ok);

    tcase_add_checked_fixture(bad, setup, teardown);
    tcase_add_test(bad, test_hs_wrong_space_is_refused_with_reason);
    tcase_add_test(bad, test_hs_non_member_client_is_refused);
    tcase_add_test(bad, test_hs_server_not_member_is_refused_by_client);
    tcase_add_test(bad, test_hs_tampered_auth_is_eauth);
    tcase_add_test(bad, test_hs_tampered_header_fails_later);
    tcase_add_test(bad, test_hs_forged_signature_is_eauth);
    tcase_add_test(bad, test_hs_wrong_label_is_eauth);
    tcase_add_test(bad, test_hs_version_mismatch_is_eversion);
    tcase_add_test(bad, test_hs_low_order_ephemeral_is_eauth);
    tcase_add_test(bad, test_hs_replayed_client_handshake_cannot_complete);
    tcase_add_test(bad, test_hs_replayed_auth_in_same_session_fails);
    suite_add_tcase(s, bad);

    tcase_add_checked_fixture(wire, setup, teardown);
    tcase_add_test(wire, test_hs_malformed_hello_is_eproto);
    tcase_add_test(wire, test_hs_malformed_ack_is_eproto);
    tcase_add_test(wire, test_hs_golden_hello_and_ack);
    tcase_add_test(wire, test_hs_parse_error_sanitizes);
    suite_add_tcase(s, wire);
    return s;
}
