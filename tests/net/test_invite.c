/*
 * test_invite.c: invitation tokens and their records (crdtnet/invite.h,
 * net/src/invite.c): a token round-trips and a changed character is
 * refused; only a member that may change the member set invites; the
 * inviter's replica redeems a secret exactly once, before its expiry,
 * and only there; the joiner keeps the
 * pin and the secret only until it holds a member set; and a joiner
 * redeems its invitation through two in-memory peers.
 */
#include <check.h>
#include <string.h>
#include <time.h>

#include "crdt/crdt.h"
#include "crdt/members.h"
#include "crdt/raw.h"
#include "crdtnet/conn.h"
#include "crdtnet/invite.h"
#include "crdtnet/peer.h"
#include "epoch/epoch.h"
#include "net_internal.h"
#include "support/replica_util.h"
#include "support/support.h"

static char da[256], db[256];
static crdt_replica *a, *b; /* a: the inviter (a member); b: a stranger */

static crdt_replica *
make(char *dir, size_t size, const unsigned char *sp)
{
    crdt_replica *r = tu_create(dir, size, sp);

    ck_assert_int_eq(epoch_attach(r), CRDT_OK);
    return r;
}

static void
setup(void)
{
    unsigned char sp[16], pk[32];
    crdt_txn *t;

    a = make(da, sizeof da, NULL);
    crdt_replica_space_id(a, sp);
    b = make(db, sizeof db, sp);
    crdt_replica_public_key(a, pk);
    ck_assert_int_eq(crdt_txn_begin(&t, a), CRDT_OK); /* no owner: admin */
    ck_assert_int_eq(crdt_txn_member_set(t, pk, CRDT_ROLE_WRITER), CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
}

static void
teardown(void)
{
    crdt_replica_close(a);
    crdt_replica_close(b);
    test_rmtree(da);
    test_rmtree(db);
}

static void
invite(crdtnet_invite *inv, crdt_role role, uint64_t ttl, uint64_t now)
{
    char tok[CRDTNET_INVITE_TOKEN_LEN + 1];

    ck_assert_int_eq(crdtnet_invite_create(a, role, ttl, now, tok, sizeof tok),
                     CRDT_OK);
    ck_assert_uint_eq(strlen(tok), CRDTNET_INVITE_TOKEN_LEN);
    ck_assert_int_eq(crdtnet_invite_parse(tok, inv), CRDT_OK);
}

START_TEST(test_token_round_trips_and_typos_are_refused)
{
    char tok[CRDTNET_INVITE_TOKEN_LEN + 1];
    unsigned char sp[16], pk[32];
    crdtnet_invite inv;
    size_t i;

    ck_assert_int_eq(crdtnet_invite_create(a, CRDT_ROLE_READER, 60, 1000,
                                           tok, sizeof tok),
                     CRDT_OK);
    ck_assert_int_eq(crdtnet_invite_parse(tok, &inv), CRDT_OK);
    crdt_replica_space_id(a, sp);
    crdt_replica_public_key(a, pk);
    ck_assert_mem_eq(inv.space_id, sp, 16);
    ck_assert_mem_eq(inv.inviter_pk, pk, 32);
    ck_assert_int_eq(inv.role, CRDT_ROLE_READER);
    ck_assert_uint_eq(inv.expires, 1060);
    for (i = 0; i < CRDTNET_INVITE_TOKEN_LEN - 1; i += 7) {
        char bad[sizeof tok];
        memcpy(bad, tok, sizeof tok);
        bad[i] = bad[i] == 'B' ? 'C' : 'B';
        ck_assert_int_eq(crdtnet_invite_parse(bad, &inv), CRDT_EINVAL);
    }
    ck_assert_int_eq(crdtnet_invite_parse("", &inv), CRDT_EINVAL);
    tok[CRDTNET_INVITE_TOKEN_LEN - 1] = '\0';
    ck_assert_int_eq(crdtnet_invite_parse(tok, &inv), CRDT_EINVAL);
    /* bad arguments */
    ck_assert_int_eq(crdtnet_invite_create(a, CRDT_ROLE_OWNER, 60, 0, tok,
                                           sizeof tok),
                     CRDT_EINVAL);
    ck_assert_int_eq(crdtnet_invite_create(a, CRDT_ROLE_WRITER, 0, 0, tok,
                                           sizeof tok),
                     CRDT_EINVAL);
    ck_assert_int_eq(crdtnet_invite_create(a, CRDT_ROLE_WRITER,
                                           CRDTNET_INVITE_TTL_MAX + 1, 0, tok,
                                           sizeof tok),
                     CRDT_EINVAL);
    ck_assert_int_eq(crdtnet_invite_create(a, CRDT_ROLE_WRITER, 60, 0, tok,
                                           CRDTNET_INVITE_TOKEN_LEN),
                     CRDT_EINVAL);
}
END_TEST

START_TEST(test_only_a_member_invites)
{
    char tok[CRDTNET_INVITE_TOKEN_LEN + 1];

    ck_assert_int_eq(crdtnet_invite_create(b, CRDT_ROLE_WRITER, 60, 0, tok,
                                           sizeof tok),
                     CRDT_EPERM);
}
END_TEST

START_TEST(test_a_secret_is_redeemed_once_before_it_expires)
{
    unsigned char pk[32], other[32];
    crdtnet_invite inv, late;
    char why[CRDTNET_REASON_MAX];
    crdt_role role;

    crdt_replica_public_key(b, pk);
    memset(other, 0x42, sizeof other);
    invite(&inv, CRDT_ROLE_READER, 100, 1000);
    ck_assert(!crdtnet_is_member(a, pk));
    ck_assert_int_eq(crdtnet__invite_redeem(a, pk, inv.secret, 1050, why,
                                            sizeof why),
                     1);
    /* (a space without an owner shows every member as an admin; the
     * roles of an owned space are checked by test_invite.sh) */
    ck_assert_int_eq(crdt_member_role(a, pk, &role), CRDT_OK);
    ck_assert_int_eq(role, CRDT_ROLE_ADMIN);
    ck_assert(crdtnet_is_member(a, pk));
    /* once: not again, for nobody */
    ck_assert_int_eq(crdtnet__invite_redeem(a, other, inv.secret, 1051, why,
                                            sizeof why),
                     0);
    ck_assert_str_eq(why, "invitation already used");
    ck_assert(!crdtnet_is_member(a, other));
    /* expiry: the record's, checked by the redeeming replica */
    invite(&late, CRDT_ROLE_WRITER, 100, 1000);
    ck_assert_int_eq(crdtnet__invite_redeem(a, other, late.secret, 1100, why,
                                            sizeof why),
                     0);
    ck_assert_str_eq(why, "invitation expired");
    ck_assert(!crdtnet_is_member(a, other));
    /* a secret this replica never made */
    late.secret[0] ^= 1;
    ck_assert_int_eq(crdtnet__invite_redeem(a, other, late.secret, 1000, why,
                                            sizeof why),
                     0);
    ck_assert_ptr_nonnull(strstr(why, "unknown invitation"));
    /* the same secret on another replica of the space: unknown there */
    ck_assert_int_eq(crdtnet__invite_redeem(b, other, inv.secret, 1000, why,
                                            sizeof why),
                     0);
    ck_assert_ptr_nonnull(strstr(why, "unknown invitation"));
}
END_TEST

START_TEST(test_joiner_keeps_pin_and_secret_until_it_has_members)
{
    unsigned char secret[32], pk[32];
    crdtnet_invite inv;
    const void *v;
    size_t vl;
    crdt_raw *t;

    invite(&inv, CRDT_ROLE_WRITER, 100, 1000);
    ck_assert_int_eq(crdtnet__invite_pending(b, secret), 0);
    ck_assert_int_eq(crdtnet_invite_keep(b, &inv), CRDT_OK);
    ck_assert_int_eq(crdtnet__invite_pending(b, secret), 1);
    ck_assert_mem_eq(secret, inv.secret, 32);
    ck_assert_int_eq(crdt_raw_begin(&t, b, 0), CRDT_OK);
    ck_assert_int_eq(crdt_raw_get(t, CRDT_DB_META, CRDTNET_PIN_META,
                                  sizeof CRDTNET_PIN_META - 1, &v, &vl),
                     CRDT_OK);
    crdt_replica_public_key(a, pk);
    ck_assert_uint_eq(vl, 32);
    ck_assert_mem_eq(v, pk, 32);
    crdt_raw_abort(t);
    /* a replica of another space refuses it */
    ck_assert_int_eq(crdtnet_invite_keep(a, &inv) == CRDT_OK, 1); /* same */
    inv.space_id[0] ^= 1;
    ck_assert_int_eq(crdtnet_invite_keep(b, &inv), CRDT_EINVAL);
}
END_TEST

/* The whole path through the handshake, over two in-memory peers. */
START_TEST(test_joiner_gets_in_with_its_invitation)
{
    crdtnet_peer *pc, *ps;
    crdtnet_report rep;
    crdtnet_invite inv;
    unsigned char pk[32];
    int i;

    invite(&inv, CRDT_ROLE_WRITER, 3600, (uint64_t)time(NULL));
    ck_assert_int_eq(crdtnet_invite_keep(b, &inv), CRDT_OK);
    ck_assert_int_eq(crdtnet_peer_new(&pc, &b, 1, CRDTNET_HS_CLIENT, NULL),
                     CRDT_OK);
    ck_assert_int_eq(crdtnet_peer_new(&ps, &a, 1, CRDTNET_HS_SERVER, NULL),
                     CRDT_OK);
    for (i = 0; i < 1000 && !(crdtnet_peer_done(pc) && crdtnet_peer_done(ps));
         i++) {
        const unsigned char *p;
        size_t n;
        while (crdtnet_peer_next_out(pc, &p, &n) == CRDT_OK)
            crdtnet_peer_feed(ps, p, n);
        while (crdtnet_peer_next_out(ps, &p, &n) == CRDT_OK)
            crdtnet_peer_feed(pc, p, n);
    }
    ck_assert_int_eq(crdtnet_peer_result(ps, &rep), CRDT_OK);
    ck_assert_int_eq(crdtnet_peer_result(pc, &rep), CRDT_OK);
    crdtnet_peer_free(pc);
    crdtnet_peer_free(ps);
    crdt_replica_public_key(b, pk);
    ck_assert(crdtnet_is_member(a, pk));
    ck_assert(crdtnet_is_member(b, pk)); /* it received the member set */
    ck_assert_int_eq(crdtnet__invite_pending(b, inv.secret), 0);
}
END_TEST

Suite *
test_suite(void)
{
    Suite *s = suite_create("invite");
    TCase *tc = tcase_create("invite");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_token_round_trips_and_typos_are_refused);
    tcase_add_test(tc, test_only_a_member_invites);
    tcase_add_test(tc, test_a_secret_is_redeemed_once_before_it_expires);
    tcase_add_test(tc, test_joiner_keeps_pin_and_secret_until_it_has_members);
    tcase_add_test(tc, test_joiner_gets_in_with_its_invitation);
    suite_add_tcase(s, tc);
    return s;
}
