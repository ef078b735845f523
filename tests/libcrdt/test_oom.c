/*
 * test_oom.c: running out of memory at every allocation of libcrdt's own
 * code in a merge (also with its second thread, the aid, forced on, and
 * one whose member removal makes the authority rules replay the log, and
 * the pending area's displacements and forks), a
 * local write txn (a txn of its own, or a crdt_txn_write()) and reads:
 * each call answers CRDT_ENOMEM or succeeds, and a failed one leaves the
 * replica exactly as it was (same state hash); the same call then
 * succeeds. Only the allocations of our own objects fail (support/oom.h).
 * test_oom_seq.c and test_oom_api.c take the rest of the API through
 * the same loop.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crdt/crdt.h"
#include "support/epoch_util.h"
#include "support/oom.h"
#include "support/replica_util.h"
#include "support/support.h"

OOM_PAIR_FIXTURE(tu_pair_create)

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

/* A batch merged with the merge's second thread (its aid) whatever its
 * size: a failed allocation of the aid's may be absorbed (the merge does
 * the work on one thread), with the same result. The batch comes
 * rotated by half, two runs in (actor, seq) order: the merge's sort
 * merges them in a buffer, or sorts in place when it cannot have one. */
START_TEST(test_merge_with_aid_out_of_memory)
{
    tu_batch x;

    for (int i = 0; i < 30; i++)
        ck_assert_int_eq(tu_write_all_kinds(a, i, 0), CRDT_OK);
    ck_assert_int_eq(tu_put_int(b, "c", "own", "v", 1), CRDT_OK);
    x = tu_export_all(a);
    {
        size_t half = x.n / 2;
        crdt_bytes *rot = malloc(x.n * sizeof *rot);

        ck_assert_ptr_nonnull(rot);
        for (size_t i = 0; i < x.n; i++)
            rot[i] = x.v[(i + half) % x.n];
        memcpy(x.v, rot, x.n * sizeof *rot);
        free(rot);
    }
    crdt_replica_close(b);
    tu_merge_aid_always(1);
    ck_assert_int_gt(oom_each_call_on_copy("merge with its aid", db,
                                           tu_merge_batch, &x, 20000),
                     2);
    tu_merge_aid_always(0);
    b = tu_open_dir(db); /* for the fixture */
    tu_batch_free(&x);
}
END_TEST

/* A removal merged after the removed writer's later writes: the
 * authority rules replay the log; its two later ops are refused. */
START_TEST(test_removal_replay_out_of_memory)
{
    tu_trio t;
    tu_batch x;
    char got[32];

    tu_removal_scene(&t, &x);
    ck_assert_int_gt(oom_each_call("removal replayed", t.p, tu_merge_batch, &x,
                                   NULL, NULL, 20000),
                     2);
    tu_field_str(got, sizeof got, t.p, "c", "x", "f");
    ck_assert_str_eq(got, "1");
    tu_field_str(got, sizeof got, t.p, "c", "y", "f");
    ck_assert_str_eq(got, "");
    tu_batch_free(&x);
    tu_trio_close(&t);
}
END_TEST

/* The pending area's harder cases (tu_pending_scene()): parking into a
 * full share displaces the farthest change to the quarantine; a copy's
 * changes parked are met or passed by the chain and quarantined. */
START_TEST(test_pending_cases_out_of_memory)
{
    tu_pending_cases p;
    uint64_t q;

    tu_pending_scene(&p, a, da, &b, db);
    ck_assert_int_gt(oom_each_call("merge, a copy's changes parked", b,
                                   tu_merge_batch, &p.fork, NULL, NULL,
                                   10000),
                     2);
    ck_assert_uint_eq(tu_pending(b), 3);
    ck_assert_int_gt(oom_each_call("merge, displacing a parked change", b,
                                   tu_merge_batch, &p.near, NULL, NULL,
                                   10000),
                     2);
    q = tu_quarantine_count(b);
    ck_assert_int_gt(oom_each_call("merge, the chain meets them", b,
                                   tu_merge_batch, &p.all, NULL, NULL, 10000),
                     2);
    ck_assert_uint_eq(tu_pending(b), 0);
    ck_assert_uint_eq(tu_quarantine_count(b), q + 2);
    tu_pending_close(&p, a, b);
}
END_TEST

/* A gap filled: the changes parked behind it are drained in one merge,
 * more of them than the run's first list of buffers it keeps. */
START_TEST(test_long_drain_out_of_memory)
{
    tu_batch x, rest, first;
    char ha[65], hb[65];

    for (int i = 0; i < 20; i++)
        ck_assert_int_eq(tu_put_int(a, "c", "d", "f", i), CRDT_OK);
    x = tu_export_all(a);
    ck_assert_uint_eq(x.n, 20);
    rest.v = x.v + 1;
    rest.n = x.n - 1;
    first.v = x.v;
    first.n = 1;
    ck_assert_int_eq(tu_merge_batch(b, &rest), CRDT_OK);
    ck_assert_uint_eq(tu_pending(b), 19);
    ck_assert_int_gt(oom_each_call("merge, 19 parked changes drained", b,
                                   tu_merge_batch, &first, NULL, NULL, 10000),
                     2);
    ck_assert_uint_eq(tu_pending(b), 0);
    tu_hash(ha, a);
    tu_hash(hb, b);
    ck_assert_str_eq(ha, hb);
    tu_batch_free(&x);
}
END_TEST

Suite *
test_suite(void)
{
    Suite *s = suite_create("oom");
    TCase *tc = tcase_create("oom");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_merge_out_of_memory_at_every_allocation);
    tcase_add_loop_test(tc, test_local_txn_out_of_memory_at_every_allocation,
                        0, 2);
    tcase_add_test(tc, test_reads_out_of_memory_at_every_allocation);
    tcase_add_test(tc, test_merge_with_aid_out_of_memory);
    tcase_add_test(tc, test_removal_replay_out_of_memory);
    tcase_add_test(tc, test_pending_cases_out_of_memory);
    tcase_add_test(tc, test_long_drain_out_of_memory);
    suite_add_tcase(s, tc);
    return s;
}
