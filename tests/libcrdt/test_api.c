/*
 * test_api.c: the app-facing surface: signing without the secret key
 * leaving the library, buffers released with the library's own free,
 * a replica made with another's key pair without the key leaving it,
 * the version, and the umbrella header leaving crdt/raw.h out.
 */
#include <check.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "crdt/crdt.h"
#include "support/replica_util.h"
#include "support/support.h"

#ifdef CRDT_RAW_H
#error "crdt/crdt.h includes crdt/raw.h, which is not for applications"
#endif

static char dir[256];
static crdt_replica *r;

static void
setup(void)
{
    r = tu_create(dir, sizeof dir, NULL);
}

static void
teardown(void)
{
    crdt_replica_close(r);
    test_rmtree(dir);
}

START_TEST(test_sign_verifies_with_the_public_key)
{
    unsigned char sig[CRDT_SIG_BYTES], pk[CRDT_PUBKEY_BYTES];
    const char msg[] = "epoch 7 record";

    crdt_replica_public_key(r, pk);
    ck_assert_int_eq(crdt_replica_sign(sig, r, msg, sizeof msg), CRDT_OK);
    ck_assert_int_eq(crypto_sign_verify_detached(
                         sig, (const unsigned char *)msg, sizeof msg, pk),
                     0);
    /* another message, or another key, does not verify */
    ck_assert_int_ne(crypto_sign_verify_detached(
                         sig, (const unsigned char *)msg, sizeof msg - 1, pk),
                     0);
    pk[0] ^= 1;
    ck_assert_int_ne(crypto_sign_verify_detached(
                         sig, (const unsigned char *)msg, sizeof msg, pk),
                     0);
    /* the empty message is a message */
    crdt_replica_public_key(r, pk);
    ck_assert_int_eq(crdt_replica_sign(sig, r, NULL, 0), CRDT_OK);
    ck_assert_int_eq(crypto_sign_verify_detached(sig, NULL, 0, pk), 0);
    ck_assert_int_eq(crdt_replica_sign(NULL, r, msg, 1), CRDT_EINVAL);
    ck_assert_int_eq(crdt_replica_sign(sig, NULL, msg, 1), CRDT_EINVAL);
    ck_assert_int_eq(crdt_replica_sign(sig, r, NULL, 1), CRDT_EINVAL);
}
END_TEST

START_TEST(test_library_buffers_go_back_through_crdt_free)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    crdt_read *rd;
    crdt_vv *vv, *back;

    ck_assert_int_eq(tu_put_int(r, "c", "d", "f", 1), CRDT_OK);
    ck_assert_int_eq(crdt_read_begin(&rd, r), CRDT_OK);
    ck_assert_int_eq(crdt_read_vv(&vv, rd), CRDT_OK);
    crdt_read_end(rd);
    ck_assert_int_eq(crdt_vv_encode(&buf, &len, vv), CRDT_OK);
    ck_assert_int_eq(crdt_vv_decode(&back, buf, len), CRDT_OK);
    ck_assert(crdt_vv_covers(back, vv) && crdt_vv_covers(vv, back));
    crdt_free(buf);
    crdt_free(NULL);
    crdt_vv_free(back);
    crdt_vv_free(vv);
}
END_TEST

START_TEST(test_create_like_takes_the_key_pair_not_the_incarnation)
{
    crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
    unsigned char s1[CRDT_SIG_BYTES], s2[CRDT_SIG_BYTES];
    unsigned char sp1[CRDT_SPACE_ID_BYTES], sp2[CRDT_SPACE_ID_BYTES];
    unsigned char other[CRDT_SPACE_ID_BYTES], seed[CRDT_SEED_BYTES] = { 1 };
    char d2[300];
    crdt_replica *twin;
    crdt_actor a1, a2;

    ck_assert_int_eq(test_tmpdir(d2, sizeof d2), 0);
    test_rmtree(d2); /* a fresh path: the replica makes the directory */
    ck_assert_int_eq(crdt_replica_create_like(&twin, r, d2, NULL), CRDT_OK);
    /* Ed25519 signatures are deterministic: same key, same signature */
    ck_assert_int_eq(crdt_replica_sign(s1, r, "m", 1), CRDT_OK);
    ck_assert_int_eq(crdt_replica_sign(s2, twin, "m", 1), CRDT_OK);
    ck_assert_mem_eq(s1, s2, sizeof s1);
    crdt_replica_space_id(r, sp1);
    crdt_replica_space_id(twin, sp2);
    ck_assert_mem_eq(sp1, sp2, sizeof sp1);
    a1 = crdt_replica_actor(r);
    a2 = crdt_replica_actor(twin);
    ck_assert(memcmp(a1.b, a2.b, sizeof a1.b) != 0); /* new incarnation */
    crdt_replica_close(twin);
    /* a replica is there now */
    ck_assert_int_eq(crdt_replica_create_like(&twin, r, d2, NULL),
                     CRDT_EEXISTS);
    test_rmtree(d2);
    /* another space on request; a seed is refused */
    memset(other, 7, sizeof other);
    o.space_id = other;
    ck_assert_int_eq(crdt_replica_create_like(&twin, r, d2, &o), CRDT_OK);
    crdt_replica_space_id(twin, sp2);
    ck_assert_mem_eq(sp2, other, sizeof other);
    crdt_replica_close(twin);
    test_rmtree(d2);
    o.seed = seed;
    ck_assert_int_eq(crdt_replica_create_like(&twin, r, d2, &o), CRDT_EINVAL);
    ck_assert_int_eq(crdt_replica_create_like(&twin, NULL, d2, NULL),
                     CRDT_EINVAL);
}
END_TEST

START_TEST(test_version_is_the_build_version)
{
    char v[32];

    snprintf(v, sizeof v, "%d.%d.%d", CRDT_VERSION_MAJOR, CRDT_VERSION_MINOR,
             CRDT_VERSION_PATCH);
    ck_assert_str_eq(crdt_version(), v);
    ck_assert_str_eq(CRDT_VERSION_STRING, v);
}
END_TEST

Suite *
test_suite(void)
{
    Suite *s = suite_create("api");
    TCase *tc = tcase_create("api");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_sign_verifies_with_the_public_key);
    tcase_add_test(tc, test_library_buffers_go_back_through_crdt_free);
    tcase_add_test(tc, test_create_like_takes_the_key_pair_not_the_incarnation);
    tcase_add_test(tc, test_version_is_the_build_version);
    suite_add_tcase(s, tc);
    return s;
}
