/*
 * test_oom.c: running out of memory at every allocation of libcrdt's own
 * code in a merge, a local write txn (a txn of its own, or a
 * crdt_txn_write()) and reads: each call answers
 * CRDT_ENOMEM or succeeds, and a failed one leaves the replica exactly as
 * it was (same state hash); the same call then succeeds. Only the
 * allocations of our own objects fail (support/oom.h).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crdt/crdt.h"
#include "support/oom.h"
#include "support/replica_util.h"
#include "support/support.h"

static char da[256], db[256];
static crdt_replica *a, *b;

static void
setup(void)
{
    tu_pair_create(&a, da, &b, db, sizeof da);
}

static void
teardown(void)
{
    oom_disarm();
    tu_pair_close(a, da, b, db);
}

START_TEST(test_merge_out_of_memory_at_every_allocation)
{
    char before[65], after[65], want[65];
    tu_batch x;
    long n;
    int rc = CRDT_ENOMEM;

    for (int i = 0; i < 30; i++)
        ck_assert_int_eq(tu_write_all_kinds(a, i, 0), CRDT_OK);
    x = tu_export_all(a);
    tu_hash(before, b);
    for (n = 1; n < 10000 && rc != CRDT_OK; n++) {
        oom_arm(n);
        rc = crdt_merge(NULL, b, x.v, x.n);
        int hit = oom_disarm();
        if (rc == CRDT_OK) {
            ck_assert_msg(!hit, "allocation %ld failed, merge said OK", n);
            break;
        }
        ck_assert_msg(rc == CRDT_ENOMEM, "allocation %ld: %s", n,
                      crdt_strerror(rc));
        tu_hash(after, b);
        ck_assert_str_eq(after, before);
    }
    ck_assert_int_eq(rc, CRDT_OK);
    ck_assert_int_gt(n, 2); /* some allocation was failed on the way */
    tu_hash(after, b);
    tu_hash(want, a);
    ck_assert_str_eq(after, want);
    tu_batch_free(&x);
}
END_TEST

/* _i = 1: through crdt_txn_write() (a group of one) */
START_TEST(test_local_txn_out_of_memory_at_every_allocation)
{
    char before[65], after[65];
    long n;
    int rc = CRDT_ENOMEM;

    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(tu_write_all_kinds(a, i, _i), CRDT_OK);
    for (n = 1; n < 10000 && rc != CRDT_OK; n++) {
        tu_hash(before, a);
        oom_arm(n);
        /* with a DEL_DOC and observations */
        rc = tu_write_all_kinds(a, 6, _i);
        int hit = oom_disarm();
        if (rc == CRDT_OK) {
            ck_assert_msg(!hit, "allocation %ld failed, commit said OK", n);
            break;
        }
        ck_assert_msg(rc == CRDT_ENOMEM, "allocation %ld: %s", n,
                      crdt_strerror(rc));
        tu_hash(after, a);
        ck_assert_str_eq(after, before);
    }
    ck_assert_int_eq(rc, CRDT_OK);
    ck_assert_int_gt(n, 2);
}
END_TEST

static int
count_field(const crdt_field *f, void *ctx)
{
    (void)f;
    ++*(int *)ctx;
    return 0;
}

START_TEST(test_reads_out_of_memory_at_every_allocation)
{
    long n;
    int rc = CRDT_ENOMEM, fields = 0, want = 0;
    crdt_read *rd;

    for (int i = 0; i < 12; i++)
        ck_assert_int_eq(tu_write_all_kinds(a, i, 0), CRDT_OK);
    ck_assert_int_eq(crdt_read_begin(&rd, a), CRDT_OK);
    ck_assert_int_eq(crdt_read_doc(rd, "c", "d1", count_field, &want),
                     CRDT_OK);
    crdt_read_end(rd);
    ck_assert_int_gt(want, 0);
    for (n = 1; n < 10000 && rc != CRDT_OK; n++) {
        crdt_read *r2 = NULL;
        crdt_vv *vv = NULL;

        fields = 0;
        oom_arm(n);
        rc = crdt_read_begin(&r2, a);
        if (rc == CRDT_OK)
            rc = crdt_read_doc(r2, "c", "d1", count_field, &fields);
        if (rc == CRDT_OK)
            rc = crdt_read_vv(&vv, r2);
        int hit = oom_disarm();
        crdt_vv_free(vv);
        if (r2 != NULL)
            crdt_read_end(r2);
        if (rc == CRDT_OK) {
            ck_assert_msg(!hit, "allocation %ld failed, read said OK", n);
            break;
        }
        ck_assert_msg(rc == CRDT_ENOMEM, "allocation %ld: %s", n,
                      crdt_strerror(rc));
    }
    ck_assert_int_eq(rc, CRDT_OK);
    ck_assert_int_eq(fields, want);
}
END_TEST

Suite *
test_suite(void)
{
    Suite *s = suite_create("oom");
    TCase *tc = tcase_create("oom");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_merge_out_of_memory_at_every_allocation);
    tcase_add_loop_test(tc, test_local_txn_out_of_memory_at_every_allocation,
                        0, 2);
    tcase_add_test(tc, test_reads_out_of_memory_at_every_allocation);
    suite_add_tcase(s, tc);
    return s;
}
