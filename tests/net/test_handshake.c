/*
 * test_handshake.c: two handshake state machines wired in memory, and a
 * hand-built client that follows docs/protocol.md to forge, replay and
 * tamper (docs/testing.md B6 for the auth signature, B9, B19, B20, S1-S3).
 */
#include <check.h>
#include <sodium.h>
#include <stdio.h>
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
    int invite_calls;
    int invite_accept;
    unsigned char invite_pk[CRDTNET_PK_BYTES];
    unsigned char invite_secret[CRDTNET_INVITE_SECRET_BYTES];
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

static int
invite_ok(const unsigned char pk[CRDTNET_PK_BYTES],
          const unsigned char secret[CRDTNET_INVITE_SECRET_BYTES], char *why,
          size_t why_size, void *ctx)
{
    policy *p = ctx;

    p->invite_calls++;
    memcpy(p->invite_pk, pk, CRDTNET_PK_BYTES);
    memcpy(p->invite_secret, secret, CRDTNET_INVITE_SECRET_BYTES);
    if (!p->invite_accept)
        snprintf(why, why_size, "invitation already used");
    return p->invite_accept;
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
new_hs_with(crdtnet_hs_role role, const ident *id, policy *pol,
            const unsigned char *space, const crdtnet__hs_test *t,
            const unsigned char *invite)
{
    crdtnet_hs_config cfg = CRDTNET_HS_CONFIG_INIT;
    crdtnet_hs *hs = NULL;

    cfg.role = role;
    cfg.space_id = space;
    cfg.pk = id->pk;
    cfg.sk = id->sk;
    cfg.is_member = is_member;
    cfg.space_ok = space_ok;
    cfg.invite_ok = invite_ok;
    cfg.invite = invite;
    cfg.ctx = pol;
    ck_assert_int_eq(crdtnet__hs_new_test(&hs, &cfg, t), CRDT_OK);
    return hs;
}

/* A client for @p space, or a server matched to @p space (NULL: none). */
static crdtnet_hs *
new_hs(crdtnet_hs_role role, const ident *id, policy *pol,
       const unsigned char *space, const unsigned char *eph_sk)
{
    crdtnet__hs_test t = {eph_sk, 0, NULL};

    return new_hs_with(role, id, pol, space, &t, NULL);
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
    srv = new_hs(CRDTNET_HS_SERVER, &id_b, &pol_s, space1, NULL);
}

/* The client's first frame, for hand-made variants of it. */
static size_t
client_hello(unsigned char *out, const unsigned char *space)
{
    const unsigned char *p;
    crdtnet_hs *c = new_hs(CRDTNET_HS_CLIENT, &id_a, &pol_c, space, NULL);
    size_t n;

    ck_assert_int_eq(crdtnet_hs_next_out(c, &p, &n), CRDT_OK);
    memcpy(out, p, n);
    crdtnet_hs_free(c);
    return n;
}

/* Frames @p hs has queued (drained and dropped). */
static int
queued(crdtnet_hs *hs)
{
    const unsigned char *p;
    size_t n;
    int k = 0;

    while (crdtnet_hs_next_out(hs, &p, &n) == CRDT_OK)
        k++;
    return k;
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
    /* Three messages: hello; reply; auth. */
    ck_assert_int_eq(cap_c.n, 2);
    ck_assert_int_eq(cap_s.n, 1);
    ck_assert_uint_eq(cap_c.len[0], 77);
    ck_assert_uint_eq(cap_s.len[0], 180);
    ck_assert_uint_eq(cap_c.len[1], 143);
    ck_assert_int_eq(pol_s.invite_calls, 0);

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
    /* Even an 8-byte slice of a key would be a leak worth knowing. */
    ck_assert(!capture_contains(&cap_c, id_a.pk + 8, 8));
    /* Nor the space id: the hello carries only a MAC made with it. */
    ck_assert(!capture_contains(&cap_c, space1, 16));
}
END_TEST

/*
 * (b) The client sends its key only after the server proved its own: a
 * client that does not accept the server's key sends nothing after its
 * hello, and the server never sees the client's key.
 */
START_TEST(test_hs_client_key_only_after_server_proved_its_own)
{
    pol_c.members[0] = &id_x; /* the client trusts only x */
    pol_c.n_members = 1;
    start_default();
    pump();
    ck_assert_int_eq(crdtnet_hs_failed(cli), CRDT_EAUTH);
    ck_assert_ptr_nonnull(strstr(crdtnet_hs_reason(cli), "server is not"));
    ck_assert_int_eq(cap_c.n, 1); /* the hello, nothing else */
    ck_assert_int_eq(pol_s.member_calls, 0);
    ck_assert(!crdtnet_hs_done(srv));
    ck_assert_int_eq(crdtnet_hs_failed(srv), 0); /* still waiting */
    /* And the server's reply alone authenticates it to a client that
     * accepts it: the client finishes before the server has its key. */
    crdtnet_hs_free(cli);
    crdtnet_hs_free(srv);
    memset(&cap_c, 0, sizeof cap_c);
    memset(&cap_s, 0, sizeof cap_s);
    pol_c.members[0] = &id_b;
    start_default();
    move(cli, srv, &cap_c);
    move(srv, cli, &cap_s);
    ck_assert(crdtnet_hs_done(cli));
    ck_assert(!crdtnet_hs_done(srv));
    ck_assert_int_eq(pol_s.member_calls, 0);
}
END_TEST

START_TEST(test_hs_take_channel_waits_for_output_to_drain)
{
    const unsigned char *p;
    size_t n;

    start_default();
    move(cli, srv, &cap_c); /* hello */
    move(srv, cli, &cap_s); /* reply: the client is done */
    ck_assert(crdtnet_hs_done(cli));
    ck_assert_int_eq(crdtnet_hs_take_channel(&ch_c, cli), CRDT_EAGAIN);
    ck_assert_int_eq(crdtnet_hs_take_channel(&ch_s, srv), CRDT_EAGAIN);
    ck_assert_int_eq(crdtnet_hs_next_out(cli, &p, &n), CRDT_OK);
    ck_assert_int_eq(crdtnet_hs_take_channel(&ch_c, cli), CRDT_OK);
    ck_assert_int_eq(crdtnet_hs_feed(srv, p, n), CRDT_OK);
    ck_assert(crdtnet_hs_done(srv));
    ck_assert_int_eq(crdtnet_hs_next_out(srv, &p, &n), CRDT_EAGAIN);
    ck_assert_int_eq(crdtnet_hs_take_channel(&ch_s, srv), CRDT_OK);
}
END_TEST

static int
refuse_to_sign(unsigned char sig[64], const void *msg, size_t len, void *ctx)
{
    (void)sig, (void)msg, (void)len, (void)ctx;
    return -1;
}

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
    cfg.sign = refuse_to_sign; /* and sk: one way to sign, not two */
    ck_assert_int_eq(crdtnet_hs_new(&hs, &cfg), CRDT_EINVAL);
    cfg.sk = NULL;
    cfg.sign = NULL; /* neither */
    ck_assert_int_eq(crdtnet_hs_new(&hs, &cfg), CRDT_EINVAL);
    cfg.sk = id_a.sk;
    cfg.version = 1; /* the layout before invitations */
    ck_assert_int_eq(crdtnet_hs_new(&hs, &cfg), CRDT_EINVAL);
    ck_assert_ptr_null(hs);
}
END_TEST

/* ---- (a) strangers ---------------------------------------------------- */

/*
 * A server answers a client of another space, a stranger's random MAC
 * and plain garbage alike: with nothing at all. On the old protocol the
 * first got "unknown space" and the others "malformed".
 */
START_TEST(test_hs_stranger_and_wrong_space_see_the_same_silence)
{
    unsigned char hello[128], garbage[77];
    crdtnet_hs *s;
    size_t n;
    int i;

    for (i = 0; i < 3; i++) {
        n = client_hello(hello, i == 0 ? space2 : space1);
        if (i == 1)
            randombytes_buf(hello + n - 32, 32); /* a stranger's MAC */
        if (i == 2) {
            randombytes_buf(garbage, sizeof garbage);
            memcpy(hello, garbage, sizeof garbage);
        }
        ck_assert(!crdtnet_hs_hello_is_for(hello, n, space1));
        s = new_hs(CRDTNET_HS_SERVER, &id_b, &pol_s, space1, NULL);
        ck_assert_int_lt(crdtnet_hs_feed(s, hello, n), 0);
        ck_assert_int_eq(queued(s), 0);
        ck_assert_uint_eq(crdtnet__hs_x25519_count(s), 0);
        crdtnet_hs_free(s);
        /* A server that matched no space at all: the same. */
        s = new_hs(CRDTNET_HS_SERVER, &id_b, &pol_s, NULL, NULL);
        ck_assert_int_lt(crdtnet_hs_feed(s, hello, n), 0);
        ck_assert_int_eq(queued(s), 0);
        crdtnet_hs_free(s);
    }
    n = client_hello(hello, space1);
    ck_assert(crdtnet_hs_hello_is_for(hello, n, space1));
    ck_assert(!crdtnet_hs_hello_is_for(hello, n, space2));
}
END_TEST

/* (d) No X25519 for a first message whose MAC does not verify. */
START_TEST(test_hs_server_does_no_x25519_before_the_mac)
{
    unsigned char hello[128];
    size_t n = client_hello(hello, space1);

    srv = new_hs(CRDTNET_HS_SERVER, &id_b, &pol_s, space1, NULL);
    ck_assert_uint_eq(crdtnet__hs_x25519_count(srv), 0); /* not at new */
    hello[n - 1] ^= 1;
    ck_assert_int_eq(crdtnet_hs_feed(srv, hello, n), CRDT_EAUTH);
    ck_assert_uint_eq(crdtnet__hs_x25519_count(srv), 0);
    crdtnet_hs_free(srv);
    srv = new_hs(CRDTNET_HS_SERVER, &id_b, &pol_s, space1, NULL);
    hello[n - 1] ^= 1;
    ck_assert_int_eq(crdtnet_hs_feed(srv, hello, n), CRDT_OK);
    ck_assert_uint_eq(crdtnet__hs_x25519_count(srv), 2); /* key pair, ee */
}
END_TEST

/* ---- (c) the transcript binds version and space ---------------------- */

START_TEST(test_hs_transcript_binds_version_and_space)
{
    crdtnet__hs_test t = {NULL, 1, NULL};
    unsigned char hello[128];
    size_t n;

    /* A client that hashes version 1 while sending version 2 (a
     * downgrade in the middle) cannot open the server's reply. */
    cli = new_hs_with(CRDTNET_HS_CLIENT, &id_a, &pol_c, space1, &t, NULL);
    srv = new_hs(CRDTNET_HS_SERVER, &id_b, &pol_s, space1, NULL);
    pump();
    ck_assert_int_eq(crdtnet_hs_failed(cli), CRDT_EAUTH);
    ck_assert_str_eq(crdtnet_hs_reason(cli), "decryption failed");
    ck_assert_int_eq(cap_c.n, 1);
    crdtnet_hs_free(cli);
    crdtnet_hs_free(srv);
    memset(&cap_c, 0, sizeof cap_c);
    memset(&cap_s, 0, sizeof cap_s);

    /* The MAC says space1, the transcript space2: the same. */
    t.transcript_version = 0;
    t.transcript_space = space2;
    cli = new_hs_with(CRDTNET_HS_CLIENT, &id_a, &pol_c, space1, &t, NULL);
    srv = new_hs(CRDTNET_HS_SERVER, &id_b, &pol_s, space1, NULL);
    pump();
    ck_assert_int_eq(crdtnet_hs_failed(cli), CRDT_EAUTH);
    ck_assert_int_eq(cap_c.n, 1);
    crdtnet_hs_free(srv);

    /* The version on the wire is under the MAC: changed, it is refused
     * (as another version: 1 is answered with a version error). */
    n = client_hello(hello, space1);
    ck_assert_uint_eq(hello[8], 2);
    hello[8] = 3;
    ck_assert(!crdtnet_hs_hello_is_for(hello, n, space1));
    srv = new_hs(CRDTNET_HS_SERVER, &id_b, &pol_s, space1, NULL);
    ck_assert_int_eq(crdtnet_hs_feed(srv, hello, n), CRDT_EVERSION);
}
END_TEST

/* ---- refusals ------------------------------------------------------- */

/* An old (version 1) client gets a clear version error, whatever its
 * space; a client meeting an old server's error shows the peer's text. */
START_TEST(test_hs_version_mismatch_is_eversion)
{
    unsigned char v1[61] = {0x94, 0xa6, 's', 't', 'r', 'a', 't', 'a', 0x01,
                            0xc4, 0x10};
    const unsigned char *p;
    crdtnet__hs_msg m;
    int code;
    char why[CRDTNET_REASON_MAX];
    size_t n;

    memcpy(v1 + 11, space2, 16);
    v1[27] = 0xc4;
    v1[28] = 0x20;
    memset(v1 + 29, 9, 32);
    srv = new_hs(CRDTNET_HS_SERVER, &id_b, &pol_s, space1, NULL);
    ck_assert_int_eq(crdtnet_hs_feed(srv, v1, sizeof v1), CRDT_EVERSION);
    ck_assert_int_eq(crdtnet_hs_next_out(srv, &p, &n), CRDT_OK);
    ck_assert_int_eq(crdtnet_hs_parse_error(p, n, &code, why, sizeof why),
                     CRDT_OK);
    ck_assert_int_eq(code, CRDT_EVERSION);
    ck_assert_ptr_nonnull(strstr(why, "protocol version"));
    ck_assert_uint_eq(crdtnet__hs_x25519_count(srv), 0);

    /* What an old server says to our hello. */
    memset(&m, 0, sizeof m);
    m.kind = CRDTNET__MSG_ERROR;
    m.code = CRDT_EVERSION;
    m.reason_len = strlen("unsupported protocol version");
    memcpy(m.reason, "unsupported protocol version", m.reason_len);
    {
        unsigned char buf[300];
        cli = new_hs(CRDTNET_HS_CLIENT, &id_a, &pol_c, space1, NULL);
        (void)queued(cli);
        ck_assert_int_eq(crdtnet__hs_encode(buf, sizeof buf, &n, &m),
                         CRDT_OK);
        ck_assert_int_eq(crdtnet_hs_feed(cli, buf, n), CRDT_EVERSION);
        ck_assert_str_eq(crdtnet_hs_reason(cli),
                         "peer: unsupported protocol version");
        ck_assert_int_eq(queued(cli), 0);
    }
}
END_TEST

/* The server refuses a non-member after it proved itself: a sealed error
 * the client meets as the first, final message of its channel. */
START_TEST(test_hs_non_member_client_is_refused)
{
    const unsigned char *p, *q;
    size_t n, m;
    char why[CRDTNET_REASON_MAX];
    int code;

    cli = new_hs(CRDTNET_HS_CLIENT, &id_x, &pol_c, space1, NULL);
    srv = new_hs(CRDTNET_HS_SERVER, &id_b, &pol_s, space1, NULL);
    move(cli, srv, &cap_c);
    move(srv, cli, &cap_s);
    ck_assert(crdtnet_hs_done(cli));
    move(cli, srv, &cap_c);
    ck_assert_int_eq(crdtnet_hs_failed(srv), CRDT_EAUTH);
    ck_assert_str_eq(crdtnet_hs_reason(srv), "not a member of this space");
    ck_assert_int_eq(crdtnet_hs_take_channel(&ch_c, cli), CRDT_OK);
    ck_assert_int_eq(crdtnet_hs_next_out(srv, &p, &n), CRDT_OK);
    ck_assert_int_eq(crdtnet_channel_open(ch_c, p, n, &q, &m), CRDT_OK);
    ck_assert(crdtnet_channel_peer_closed(ch_c));
    ck_assert_int_eq(crdtnet_hs_parse_error(q, m, &code, why, sizeof why),
                     CRDT_OK);
    ck_assert_int_eq(code, CRDT_EAUTH);
    ck_assert_str_eq(why, "not a member of this space");
    ck_assert_int_eq(crdtnet_hs_next_out(srv, &p, &n), CRDT_EAUTH);
}
END_TEST

START_TEST(test_hs_invitation_reaches_the_server_sealed)
{
    unsigned char secret[CRDTNET_INVITE_SECRET_BYTES];
    const unsigned char *p, *q;
    size_t n, m;
    char why[CRDTNET_REASON_MAX];
    int code;

    memset(secret, 0x5e, sizeof secret);
    pol_s.invite_accept = 1;
    cli = new_hs_with(CRDTNET_HS_CLIENT, &id_x, &pol_c, space1, NULL, secret);
    srv = new_hs(CRDTNET_HS_SERVER, &id_b, &pol_s, space1, NULL);
    pump();
    ck_assert(crdtnet_hs_done(cli) && crdtnet_hs_done(srv));
    ck_assert_int_eq(pol_s.invite_calls, 1);
    ck_assert_mem_eq(pol_s.invite_pk, id_x.pk, 32);
    ck_assert_mem_eq(pol_s.invite_secret, secret, sizeof secret);
    ck_assert(!capture_contains(&cap_c, secret, 8));
    crdtnet_hs_free(cli);
    crdtnet_hs_free(srv);

    /* A member that still sends its invitation (its first sync stopped
     * after it was admitted) gets in as a member: the used invitation is
     * not looked at again. */
    pol_s.invite_accept = 0;
    cli = new_hs_with(CRDTNET_HS_CLIENT, &id_a, &pol_c, space1, NULL, secret);
    srv = new_hs(CRDTNET_HS_SERVER, &id_b, &pol_s, space1, NULL);
    pump();
    ck_assert(crdtnet_hs_done(cli) && crdtnet_hs_done(srv));
    ck_assert_int_eq(pol_s.invite_calls, 1);
    crdtnet_hs_free(cli);
    crdtnet_hs_free(srv);

    /* Refused: the callback's reason reaches the client. */
    pol_s.invite_accept = 0;
    cli = new_hs_with(CRDTNET_HS_CLIENT, &id_x, &pol_c, space1, NULL, secret);
    srv = new_hs(CRDTNET_HS_SERVER, &id_b, &pol_s, space1, NULL);
    move(cli, srv, &cap_c);
    move(srv, cli, &cap_s);
    move(cli, srv, &cap_c);
    ck_assert_int_eq(crdtnet_hs_failed(srv), CRDT_EAUTH);
    ck_assert_int_eq(crdtnet_hs_take_channel(&ch_c, cli), CRDT_OK);
    ck_assert_int_eq(crdtnet_hs_next_out(srv, &p, &n), CRDT_OK);
    ck_assert_int_eq(crdtnet_channel_open(ch_c, p, n, &q, &m), CRDT_OK);
    ck_assert_int_eq(crdtnet_hs_parse_error(q, m, &code, why, sizeof why),
                     CRDT_OK);
    ck_assert_str_eq(why, "invitation already used");
}
END_TEST

START_TEST(test_hs_tampered_reply_and_auth_are_eauth)
{
    const unsigned char *p;
    unsigned char buf[CRDTNET_HS_MSG_MAX];
    size_t n, k;

    for (k = 0; k < 2; k++) {
        start_default();
        move(cli, srv, &cap_c);
        ck_assert_int_eq(crdtnet_hs_next_out(srv, &p, &n), CRDT_OK);
        memcpy(buf, p, n);
        buf[k == 0 ? 5 : n - 3] ^= 0x40; /* S_eph, then the box */
        ck_assert_int_eq(crdtnet_hs_feed(cli, buf, n), CRDT_EAUTH);
        ck_assert_int_eq(queued(cli), 0);
        crdtnet_hs_free(cli);
        crdtnet_hs_free(srv);
    }
    start_default();
    move(cli, srv, &cap_c);
    move(srv, cli, &cap_s);
    ck_assert_int_eq(crdtnet_hs_next_out(cli, &p, &n), CRDT_OK);
    memcpy(buf, p, n);
    buf[20] ^= 1;
    ck_assert_int_eq(crdtnet_hs_feed(srv, buf, n), CRDT_EAUTH);
    ck_assert_str_eq(crdtnet_hs_reason(srv), "decryption failed");
}
END_TEST

START_TEST(test_hs_low_order_ephemeral_is_eauth)
{
    /* X25519's point of order 1 (u = 1), under a valid MAC. */
    static const unsigned char low[32] = {1};
    unsigned char knet[32], in[33], hello[77];
    unsigned char sk[32];
    crdtnet__hs_msg m;
    size_t n;

    memset(&m, 0, sizeof m);
    m.kind = CRDTNET__MSG_HELLO;
    m.version = CRDTNET_PROTO_VERSION;
    memcpy(m.eph, low, 32);
    crypto_generichash(knet, 32, (const unsigned char *)"strata-net-v2", 13,
                       space1, 16);
    in[0] = 2;
    memcpy(in + 1, low, 32);
    crypto_generichash(m.mac, 32, in, 33, knet, 32);
    ck_assert_int_eq(crdtnet__hs_encode(hello, sizeof hello, &n, &m),
                     CRDT_OK);
    ck_assert(crdtnet_hs_hello_is_for(hello, n, space1));
    memset(sk, 2, sizeof sk);
    srv = new_hs(CRDTNET_HS_SERVER, &id_b, &pol_s, space1, sk);
    ck_assert_int_eq(crdtnet_hs_feed(srv, hello, n), CRDT_EAUTH);
    ck_assert_str_eq(crdtnet_hs_reason(srv), "invalid ephemeral key");
    ck_assert_int_eq(queued(srv), 0);

    /* And a reply with it: the client refuses, silently. */
    cli = new_hs(CRDTNET_HS_CLIENT, &id_a, &pol_c, space1, NULL);
    (void)queued(cli);
    memset(&m, 0, sizeof m);
    m.kind = CRDTNET__MSG_REPLY;
    memcpy(m.eph, low, 32);
    m.box = hello; /* any bytes: the exchange fails first */
    m.box_len = 40;
    ck_assert_int_eq(crdtnet__hs_encode(in, 0, &n, &m), CRDT_ELIMIT);
    {
        unsigned char buf[128];
        ck_assert_int_eq(crdtnet__hs_encode(buf, sizeof buf, &n, &m),
                         CRDT_OK);
        ck_assert_int_eq(crdtnet_hs_feed(cli, buf, n), CRDT_EAUTH);
        ck_assert_str_eq(crdtnet_hs_reason(cli), "invalid ephemeral key");
    }
}
END_TEST

/* A captured client handshake replayed to a new server: the server's
 * fresh ephemeral key changes every key, so the auth cannot open. */
START_TEST(test_hs_replayed_client_handshake_cannot_complete)
{
    start_default();
    pump();
    ck_assert(crdtnet_hs_done(srv));
    crdtnet_hs_free(srv);
    srv = new_hs(CRDTNET_HS_SERVER, &id_b, &pol_s, space1, NULL);
    ck_assert_int_eq(crdtnet_hs_feed(srv, cap_c.frame[0], cap_c.len[0]),
                     CRDT_OK);
    ck_assert_int_eq(crdtnet_hs_feed(srv, cap_c.frame[1], cap_c.len[1]),
                     CRDT_EAUTH);
    ck_assert_str_eq(crdtnet_hs_reason(srv), "decryption failed");
}
END_TEST

/* ---- the wire ------------------------------------------------------- */

START_TEST(test_hs_malformed_hello_is_silent)
{
    static const unsigned char bad[][12] = {
        {0x94, 0xa6, 's', 't', 'r', 'a', 't', 'x', 0x02}, /* magic */
        {0x91, 0xa6, 's', 't', 'r', 'a', 't', 'a'},       /* too short */
        {0x95, 0xa6, 's', 't', 'r', 'a', 't', 'a', 0x02}, /* count, cut */
        {0x94, 0xa6, 's', 't', 'r', 'a', 't', 'a', 0xff}, /* negative */
        {0x94, 0xa6, 's', 't', 'r', 'a', 't', 'a', 0x90}, /* nested */
        {0xdd, 0xff, 0xff, 0xff, 0xff},                    /* huge count */
        {0xc4, 0x01, 0x00},                                /* not an array */
    };
    static const size_t len[] = {9, 8, 9, 9, 9, 5, 3};
    unsigned char hello[128];
    size_t i, n;

    for (i = 0; i < sizeof len / sizeof len[0]; i++) {
        srv = new_hs(CRDTNET_HS_SERVER, &id_b, &pol_s, space1, NULL);
        ck_assert_int_eq(crdtnet_hs_feed(srv, bad[i], len[i]), CRDT_EPROTO);
        ck_assert_int_eq(queued(srv), 0);
        crdtnet_hs_free(srv);
        srv = NULL;
    }
    /* Trailing bytes after a valid hello. */
    n = client_hello(hello, space1);
    hello[n] = 0xc0;
    srv = new_hs(CRDTNET_HS_SERVER, &id_b, &pol_s, space1, NULL);
    ck_assert_int_eq(crdtnet_hs_feed(srv, hello, n + 1), CRDT_EPROTO);
    ck_assert_int_eq(queued(srv), 0);
    crdtnet_hs_free(srv);
    /* Too large for a handshake frame. */
    srv = new_hs(CRDTNET_HS_SERVER, &id_b, &pol_s, space1, NULL);
    {
        static unsigned char big[CRDTNET_HS_MSG_MAX + 1];
        ck_assert_int_eq(crdtnet_hs_feed(srv, big, sizeof big), CRDT_EPROTO);
        ck_assert_int_eq(queued(srv), 0);
    }
}
END_TEST

/* The shared reader accepts any encoding of the named type (here the
 * version as a uint16 and a bin16), as the spec says receivers must. */
START_TEST(test_hs_hello_in_longer_encodings_is_accepted)
{
    unsigned char hello[128], wide[160];
    size_t n = client_hello(hello, space1), k = 0;

    memcpy(wide, hello, 8); /* 94 a6 "strata" */
    k = 8;
    wide[k++] = 0xcd;
    wide[k++] = 0x00;
    wide[k++] = 0x02;
    wide[k++] = 0xc5;
    wide[k++] = 0x00;
    wide[k++] = 0x20;
    memcpy(wide + k, hello + 11, 32);
    k += 32;
    memcpy(wide + k, hello + 43, n - 43);
    k += n - 43;
    ck_assert(crdtnet_hs_hello_is_for(wide, k, space1));
    srv = new_hs(CRDTNET_HS_SERVER, &id_b, &pol_s, space1, NULL);
    ck_assert_int_eq(crdtnet_hs_feed(srv, wide, k), CRDT_OK);
    ck_assert_int_eq(queued(srv), 1);
}
END_TEST

START_TEST(test_hs_malformed_reply_is_eproto)
{
    static const unsigned char bad[][6] = {
        {0x92, 0xc4, 0x01, 0x00, 0xc4, 0x00}, /* short eph */
        {0x93, 0xc4, 0x00},                   /* count */
        {0x92, 0xa1, 'x'},                    /* a str */
    };
    static const size_t len[] = {6, 3, 3};
    size_t i;

    for (i = 0; i < 3; i++) {
        cli = new_hs(CRDTNET_HS_CLIENT, &id_a, &pol_c, space1, NULL);
        (void)queued(cli);
        ck_assert_int_eq(crdtnet_hs_feed(cli, bad[i], len[i]), CRDT_EPROTO);
        ck_assert_int_eq(queued(cli), 0);
        crdtnet_hs_free(cli);
        cli = NULL;
    }
}
END_TEST

/* docs/protocol.md, "Example": the hello for a fixed ephemeral key. */
START_TEST(test_hs_golden_hello)
{
    static const char want[] =
        "94a673747261746102c420a4e09292b651c278b9772c569f5fa9bb13d906b46a"
        "b68c9df9dc2b4409f8a209c4206098186fa0f73a0c4b09113c7eab2d1ceb8fd8"
        "ff7b6b25184c9fb08dcf4a0e15";
    unsigned char eph[32];
    const unsigned char *p;
    char hex[2 * 77 + 1];
    size_t n, i;

    memset(eph, 1, sizeof eph);
    cli = new_hs(CRDTNET_HS_CLIENT, &id_a, &pol_c, space1, eph);
    ck_assert_int_eq(crdtnet_hs_next_out(cli, &p, &n), CRDT_OK);
    ck_assert_uint_eq(n, 77);
    for (i = 0; i < n; i++)
        snprintf(hex + 2 * i, 3, "%02x", p[i]);
    ck_assert_str_eq(hex, want);
}
END_TEST

/* An implementation written from docs/protocol.md alone, with libsodium
 * primitives only, completes a handshake with the reference server. */
static void
h_mix(unsigned char h[32], const unsigned char *a, size_t an)
{
    crypto_generichash_state st;

    crypto_generichash_init(&st, NULL, 0, 32);
    crypto_generichash_update(&st, h, 32);
    crypto_generichash_update(&st, a, an);
    crypto_generichash_final(&st, h, 32);
}

START_TEST(test_hs_manual_client_following_the_spec_succeeds)
{
    unsigned char eph_sk[32], eph_pk[32], knet[32], mac[32], in[64];
    unsigned char h[32], ee[32], master[32], k[5][32];
    unsigned char hello[77], pt[256], sig_in[82], sig[64], auth[256];
    unsigned char hdr[24];
    const unsigned char *reply, *q;
    crypto_secretstream_xchacha20poly1305_state push, pull;
    unsigned long long ptlen, alen;
    unsigned char tag;
    size_t rn, n, m;
    int i;

    srv = new_hs(CRDTNET_HS_SERVER, &id_b, &pol_s, space1, NULL);
    randombytes_buf(eph_sk, 32);
    crypto_scalarmult_base(eph_pk, eph_sk);
    crypto_generichash(knet, 32, (const unsigned char *)"strata-net-v2", 13,
                       space1, 16);
    in[0] = 2;
    memcpy(in + 1, eph_pk, 32);
    crypto_generichash(mac, 32, in, 33, knet, 32);
    memcpy(hello, "\x94\xa6strata\x02\xc4\x20", 11);
    memcpy(hello + 11, eph_pk, 32);
    memcpy(hello + 43, "\xc4\x20", 2);
    memcpy(hello + 45, mac, 32);
    ck_assert_int_eq(crdtnet_hs_feed(srv, hello, 77), CRDT_OK);
    ck_assert_int_eq(crdtnet_hs_next_out(srv, &reply, &rn), CRDT_OK);

    /* h0, h1 */
    memcpy(in, "strata-hs-v2\x02", 13);
    memcpy(in + 13, space1, 16);
    crypto_generichash(h, 32, in, 29, NULL, 0);
    memcpy(in, eph_pk, 32);
    memcpy(in + 32, mac, 32);
    h_mix(h, in, 64);
    /* reply: 92 c4 20 S_eph c4 LEN box */
    ck_assert_uint_eq(reply[0], 0x92);
    ck_assert_uint_eq(reply[35], 0xc4);
    ck_assert_uint_eq(reply[36], rn - 37);
    h_mix(h, reply + 3, 32); /* h2 */
    ck_assert_int_eq(crypto_scalarmult(ee, eph_sk, reply + 3), 0);
    crypto_generichash(master, 32, h, 32, ee, 32);
    for (i = 1; i <= 4; i++)
        crypto_kdf_derive_from_key(k[i], 32, (uint64_t)i, "strataHS", master);
    memset(in, 0, 24); /* the zero nonce */
    ck_assert_int_eq(crypto_aead_xchacha20poly1305_ietf_decrypt(
                         pt, &ptlen, NULL, reply + 37, rn - 37, h, 32, in,
                         k[1]),
                     0);
    ck_assert_uint_eq(ptlen, 127);
    ck_assert_mem_eq(pt + 3, id_b.pk, 32);
    memcpy(sig_in, "strata-auth-server", 18);
    memcpy(sig_in + 18, h, 32);
    memcpy(sig_in + 50, id_b.pk, 32);
    ck_assert_int_eq(crypto_sign_verify_detached(pt + 37, sig_in, 82,
                                                 id_b.pk),
                     0);
    ck_assert_int_eq(crypto_secretstream_xchacha20poly1305_init_pull(
                         &pull, pt + 103, k[4]),
                     0);
    h_mix(h, reply + 37, rn - 37); /* h3 */

    memcpy(sig_in, "strata-auth-client", 18);
    memcpy(sig_in + 18, h, 32);
    memcpy(sig_in + 50, id_a.pk, 32);
    crypto_sign_detached(sig, NULL, sig_in, 82, id_a.sk);
    crypto_secretstream_xchacha20poly1305_init_push(&push, hdr, k[3]);
    memcpy(pt, "\x93\xc4\x20", 3);
    memcpy(pt + 3, id_a.pk, 32);
    memcpy(pt + 35, "\xc4\x40", 2);
    memcpy(pt + 37, sig, 64);
    memcpy(pt + 101, "\xc4\x18", 2);
    memcpy(pt + 103, hdr, 24);
    crypto_aead_xchacha20poly1305_ietf_encrypt(auth, &alen, pt, 127, h, 32,
                                               NULL, in, k[2]);
    ck_assert_int_eq(crdtnet_hs_feed(srv, auth, (size_t)alen), CRDT_OK);
    ck_assert(crdtnet_hs_done(srv));

    /* The channel works both ways. */
    ck_assert_int_eq(crdtnet_hs_take_channel(&ch_s, srv), CRDT_OK);
    ck_assert_int_eq(crdtnet_channel_seal(ch_s, "hi", 2, &q, &n), CRDT_OK);
    ck_assert_int_eq(crypto_secretstream_xchacha20poly1305_pull(
                         &pull, pt, &ptlen, &tag, q, n, NULL, 0),
                     0);
    ck_assert_uint_eq(ptlen, 2);
    ck_assert_mem_eq(pt, "hi", 2);
    crypto_secretstream_xchacha20poly1305_push(&push, auth, &alen,
                                               (const unsigned char *)"yo",
                                               2, NULL, 0, 0);
    ck_assert_int_eq(crdtnet_channel_open(ch_s, auth, (size_t)alen, &q, &m),
                     CRDT_OK);
    ck_assert_mem_eq(q, "yo", 2);
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
    tcase_add_test(ok, test_hs_client_key_only_after_server_proved_its_own);
    tcase_add_test(ok, test_hs_take_channel_waits_for_output_to_drain);
    tcase_add_test(ok, test_hs_new_rejects_bad_config);
    tcase_add_test(ok, test_hs_manual_client_following_the_spec_succeeds);
    tcase_add_test(ok, test_hs_invitation_reaches_the_server_sealed);
    suite_add_tcase(s, ok);

    tcase_add_checked_fixture(bad, setup, teardown);
    tcase_add_test(bad, test_hs_stranger_and_wrong_space_see_the_same_silence);
    tcase_add_test(bad, test_hs_server_does_no_x25519_before_the_mac);
    tcase_add_test(bad, test_hs_transcript_binds_version_and_space);
    tcase_add_test(bad, test_hs_version_mismatch_is_eversion);
    tcase_add_test(bad, test_hs_non_member_client_is_refused);
    tcase_add_test(bad, test_hs_tampered_reply_and_auth_are_eauth);
    tcase_add_test(bad, test_hs_low_order_ephemeral_is_eauth);
    tcase_add_test(bad, test_hs_replayed_client_handshake_cannot_complete);
    suite_add_tcase(s, bad);

    tcase_add_checked_fixture(wire, setup, teardown);
    tcase_add_test(wire, test_hs_malformed_hello_is_silent);
    tcase_add_test(wire, test_hs_hello_in_longer_encodings_is_accepted);
    tcase_add_test(wire, test_hs_malformed_reply_is_eproto);
    tcase_add_test(wire, test_hs_golden_hello);
    tcase_add_test(wire, test_hs_parse_error_sanitizes);
    suite_add_tcase(s, wire);
    return s;
}
