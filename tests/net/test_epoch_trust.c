/*
 * test_epoch_trust.c: a replica that holds the previous epoch re-derives
 * a compaction or lens epoch from its own state before adopting it. A
 * forged epoch (signed by its creator, but whose state does not follow
 * from the ops it folds) is refused with a reason and the replica stays
 * at its epoch with nothing lost; a replica that has nothing to derive
 * from (a new one) trusts the signature alone, and only a valid one.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crdt/crdt.h"
#include "crdt/raw.h"
#include "crdtnet/session.h"
#include "epoch/epoch.h"
#include "support/epoch_util.h"
#include "support/replica_util.h"
#include "support/support.h"

/* a and b: a fresh attached pair of one space for each test */
TU_PAIR_FIXTURE(tu_pair_open)

/* The test helper that builds a bad snapshot: write one register into
 * @p r's state directly, as no op of its log does (the state hash moves
 * with it), so the next epoch @p r makes folds a state that does not
 * follow from its ops. */
static void
tamper_state(crdt_replica *r, int64_t v)
{
    tu_state_put_ghost(r, "balance", v);
}

/* a writes, then both hold the same ops at epoch 0 */
static void
shared_history(void)
{
    tu_sync_result s;

    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(tu_put_int(a, "c", "d", "balance", 10 + i), CRDT_OK);
    ck_assert_int_eq(tu_put_int(a, "c", "e", "n", 1), CRDT_OK);
    s = tu_sessions_run(a, b, NULL);
    ck_assert_int_eq(s.ex, 0);
    ck_assert_int_eq(s.ey, 0);
}

static uint64_t
epoch_number(crdt_replica *r)
{
    epoch_info e;
    uint64_t n;

    ck_assert_int_eq(epoch_current(&e, r), CRDT_OK);
    n = e.number;
    epoch_info_clear(&e);
    return n;
}

static const char *RENAME = "collection c 1 -> 2\nrename n -> count\n";

static void
check_genuine(const char *lens_text)
{
    epoch_info e;
    epoch_check chk;
    tu_sync_result s;

    shared_history();
    tu_migrate(a, lens_text, &e);
    /* b holds the records, then checks the epoch itself */
    ck_assert_int_eq(epoch_store_records(b, (const unsigned char *const *)&e.raw,
                                         &e.raw_len, 1), CRDT_OK);
    ck_assert_int_eq(epoch_check_derivation(&chk, b, e.id), CRDT_OK);
    ck_assert_msg(chk.verdict == EPOCH_DERIVED_MATCH, "%s", chk.reason);
    ck_assert_uint_eq(chk.number, 1);
    s = tu_sessions_run(a, b, NULL);
    ck_assert_int_eq(s.ex, 0);
    ck_assert_msg(s.ey == 0, "%s", s.ry.reason);
    ck_assert_int_eq(s.ry.snapshot_received, 1);
    tu_assert_converged(a, b);
    epoch_info_clear(&e);
}

START_TEST(test_genuine_compaction_adopted)
{
    check_genuine(NULL);
}
END_TEST

START_TEST(test_genuine_lens_adopted)
{
    char buf[64];

    check_genuine(RENAME);
    tu_field_str(buf, sizeof buf, b, "c", "e", "count");
    ck_assert_str_eq(buf, "1");
}
END_TEST

static void
check_forged(const char *lens_text)
{
    char before[65], after[65], buf[64];
    epoch_info e;
    epoch_check chk;
    tu_sync_result s;
    uint64_t q0, q1;

    shared_history();
    tu_hash(before, b);
    ck_assert_int_eq(epoch_quarantine_count(&q0, b), CRDT_OK);
    tamper_state(a, 1000000);
    tu_migrate(a, lens_text, &e);
    ck_assert_int_eq(epoch_store_records(b, (const unsigned char *const *)&e.raw,
                                         &e.raw_len, 1), CRDT_OK);
    ck_assert_int_eq(epoch_check_derivation(&chk, b, e.id), CRDT_OK);
    ck_assert_int_eq(chk.verdict, EPOCH_DERIVED_MISMATCH);
    ck_assert_ptr_nonnull(strstr(chk.reason, "epoch 1 from "));
    ck_assert_ptr_nonnull(strstr(chk.reason, "does not match its migration: "
                                             "state hash differs"));
    /* the sync path refuses it: b stays at epoch 0, nothing changes */
    s = tu_sessions_run(a, b, NULL);
    ck_assert_int_eq(s.ey, CRDT_EREJECTED);
    ck_assert_ptr_nonnull(strstr(s.ry.reason, "does not match its "
                                              "migration"));
    ck_assert_uint_eq(epoch_number(b), 0);
    tu_hash(after, b);
    ck_assert_str_eq(before, after);
    ck_assert_int_eq(epoch_quarantine_count(&q1, b), CRDT_OK);
    ck_assert_uint_eq(q0, q1);
    tu_field_str(buf, sizeof buf, b, "c", "d", "balance");
    ck_assert_str_eq(buf, "14");
    /* b keeps writing and syncing at epoch 0 with a replica there */
    ck_assert_int_eq(tu_put_int(b, "c", "d", "balance", 15), CRDT_OK);
    {
        char dc[256];
        unsigned char space[16];
        crdt_replica *c;
        tu_sync_result s2;

        crdt_replica_space_id(b, space);
        c = tu_create(dc, sizeof dc, space);
        ck_assert_int_eq(epoch_attach(c), CRDT_OK);
        s2 = tu_sessions_run(b, c, NULL);
        ck_assert_msg(s2.ex == 0 && s2.ey == 0, "%s / %s", s2.rx.reason,
                      s2.ry.reason);
        tu_field_str(buf, sizeof buf, c, "c", "d", "balance");
        ck_assert_str_eq(buf, "15");
        crdt_replica_close(c);
        test_rmtree(dc);
    }
    /* and refuses the forged epoch again on the next try */
    s = tu_sessions_run(a, b, NULL);
    ck_assert_int_eq(s.ey, CRDT_EREJECTED);
    ck_assert_uint_eq(epoch_number(b), 0);
    /* an epoch built on the forged one is refused with its reason */
    tu_migrate(a, NULL, NULL);
    s = tu_sessions_run(a, b, NULL);
    ck_assert_int_eq(s.ey, CRDT_EREJECTED);
    ck_assert_ptr_nonnull(strstr(s.ry.reason, "epoch 1 from "));
    ck_assert_uint_eq(epoch_number(b), 0);
    tu_field_str(buf, sizeof buf, b, "c", "d", "balance");
    ck_assert_str_eq(buf, "15");
    epoch_info_clear(&e);
}

START_TEST(test_forged_compaction_refused)
{
    check_forged(NULL);
}
END_TEST

START_TEST(test_forged_lens_refused)
{
    check_forged(RENAME);
}
END_TEST

/* A brand-new replica holds nothing to derive from: it adopts a forged
 * epoch on its creator's valid signature alone (docs/security.md). */
START_TEST(test_new_replica_trusts_signature_only)
{
    char dc[256], ha[65], hc[65];
    unsigned char space[16];
    crdt_replica *c;
    epoch_info e;
    epoch_check chk;
    tu_sync_result s;

    shared_history();
    tamper_state(a, 1000000);
    tu_migrate(a, NULL, &e);
    crdt_replica_space_id(a, space);
    c = tu_create(dc, sizeof dc, space);
    ck_assert_int_eq(epoch_attach(c), CRDT_OK);
    ck_assert_int_eq(epoch_store_records(c, (const unsigned char *const *)&e.raw,
                                         &e.raw_len, 1), CRDT_OK);
    ck_assert_int_eq(epoch_check_derivation(&chk, c, e.id), CRDT_OK);
    ck_assert_int_eq(chk.verdict, EPOCH_DERIVED_UNCHECKED);
    ck_assert_uint_gt(chk.lacking, 0);
    ck_assert_ptr_nonnull(strstr(chk.reason, "signature alone"));
    s = tu_sessions_run(a, c, NULL);
    ck_assert_msg(s.ey == 0, "%s", s.ry.reason);
    ck_assert_uint_eq(epoch_number(c), 1);
    tu_hash(ha, a);
    tu_hash(hc, c);
    ck_assert_str_eq(ha, hc);
    crdt_replica_close(c);
    test_rmtree(dc);
    epoch_info_clear(&e);
}
END_TEST

/* ...but only a valid signature: a record whose signature was altered
 * is not stored, so no reset to it can begin. */
START_TEST(test_bad_signature_not_stored)
{
    char dc[256];
    unsigned char space[16], *bad;
    const unsigned char *rec;
    crdt_replica *c;
    epoch_info e, got;
    size_t len;

    shared_history();
    tu_migrate(a, NULL, &e);
    crdt_replica_space_id(a, space);
    c = tu_create(dc, sizeof dc, space);
    bad = malloc(e.raw_len);
    memcpy(bad, e.raw, e.raw_len);
    bad[e.raw_len - 1] ^= 0x01; /* the signature is the record's tail */
    rec = bad;
    len = e.raw_len;
    ck_assert_int_lt(epoch_store_records(c, &rec, &len, 1), 0);
    ck_assert_int_eq(epoch_get(&got, c, e.id), CRDT_ENOTFOUND);
    free(bad);
    crdt_replica_close(c);
    test_rmtree(dc);
    epoch_info_clear(&e);
}
END_TEST

/* b wrote beyond the cut: it cannot take its own ops out of the state,
 * so the signature vouches; the epoch is adopted and b's ops survive. */
START_TEST(test_beyond_cut_trusts_signature)
{
    char buf[64];
    epoch_info e;
    epoch_check chk;
    tu_sync_result s;

    shared_history();
    ck_assert_int_eq(tu_put_int(b, "c", "x", "mine", 7), CRDT_OK);
    tu_migrate(a, NULL, &e);
    ck_assert_int_eq(epoch_store_records(b, (const unsigned char *const *)&e.raw,
                                         &e.raw_len, 1), CRDT_OK);
    ck_assert_int_eq(epoch_check_derivation(&chk, b, e.id), CRDT_OK);
    ck_assert_int_eq(chk.verdict, EPOCH_DERIVED_UNCHECKED);
    ck_assert_ptr_nonnull(strstr(chk.reason, "beyond the cut"));
    s = tu_sessions_run(a, b, NULL);
    ck_assert_msg(s.ey == 0, "%s", s.ry.reason);
    s = tu_sessions_run(a, b, NULL);
    ck_assert_msg(s.ex == 0 && s.ey == 0, "%s", s.ry.reason);
    tu_assert_converged(a, b);
    tu_field_str(buf, sizeof buf, a, "c", "x", "mine");
    ck_assert_str_eq(buf, "7");
    epoch_info_clear(&e);
}
END_TEST

Suite *
test_suite(void)
{
    Suite *s = suite_create("epoch_trust");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_genuine_compaction_adopted);
    tcase_add_test(tc, test_genuine_lens_adopted);
    tcase_add_test(tc, test_forged_compaction_refused);
    tcase_add_test(tc, test_forged_lens_refused);
    tcase_add_test(tc, test_new_replica_trusts_signature_only);
    tcase_add_test(tc, test_bad_signature_not_stored);
    tcase_add_test(tc, test_beyond_cut_trusts_signature);
    suite_add_tcase(s, tc);
    return s;
}
