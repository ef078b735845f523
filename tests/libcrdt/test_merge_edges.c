/*
 * test_merge_edges.c: the merge's less travelled answers: arguments it
 * refuses, changes of another epoch (without a hook, through a hook that
 * merges in turn, parked until their epoch is known), a log record that
 * no longer decodes, forks whose op counts differ from the chain held,
 * a full pending area, and queued writes to names alike in their first
 * bytes.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crdt/crdt.h"
#include "crdt/raw.h"
#include "crdt/sync.h"
#include "support/replica_util.h"
#include "support/support.h"

/* a and b: a fresh pair of one space for each test */
TU_PAIR_FIXTURE(tu_pair_create)

/* An epoch id no replica of the pair was made in. */
static const unsigned char other_epoch[32] = {
    0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a,
    0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a,
    0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a
};

/* From now on @p r's local changes carry other_epoch. */
static void
move_to_other_epoch(crdt_replica *r)
{
    crdt_raw *t;

    ck_assert_int_eq(crdt_raw_begin(&t, r, 1), CRDT_OK);
    ck_assert_int_eq(crdt_raw_set_epoch(t, 1, other_epoch), CRDT_OK);
    ck_assert_int_eq(crdt_raw_commit(t), CRDT_OK);
}

/* b reopened (same directory) with a smaller pending area. */
static void
reopen_b(uint64_t pending_max, uint64_t pending_max_actor)
{
    crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
    char sub[300];

    crdt_replica_close(b);
    snprintf(sub, sizeof sub, "%s/r", db);
    if (pending_max > 0)
        o.pending_max = pending_max;
    if (pending_max_actor > 0)
        o.pending_max_actor = pending_max_actor;
    ck_assert_int_eq(crdt_replica_open(&b, sub, &o), CRDT_OK);
}

/* One change of @p r with two ops: c/@p doc/f and c/@p doc/g. */
static void
put_two_ops(crdt_replica *r, const char *doc, int64_t v)
{
    crdt_txn *t;
    crdt_value x = crdt_value_int(v);

    ck_assert_int_eq(crdt_txn_begin(&t, r), CRDT_OK);
    ck_assert_int_eq(crdt_txn_put(t, "c", doc, "f", &x), CRDT_OK);
    ck_assert_int_eq(crdt_txn_put(t, "c", doc, "g", &x), CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
}

static void
assert_field(crdt_replica *r, const char *coll, const char *doc,
             const char *field, const char *want)
{
    char buf[64];

    tu_field_str(buf, sizeof buf, r, coll, doc, field);
    ck_assert_str_eq(buf, want);
}

START_TEST(test_merge_refuses_missing_arguments)
{
    unsigned char before[32], after[32];
    crdt_merge_report rep;
    tu_batch x;

    ck_assert_int_eq(tu_put_int(a, "c", "d", "f", 1), CRDT_OK);
    x = tu_export_all(a);
    tu_digest_all(b, before);
    ck_assert_int_eq(crdt_merge(&rep, NULL, x.v, x.n), CRDT_EINVAL);
    /* a count without the list: nothing to read them from */
    ck_assert_int_eq(crdt_merge(&rep, b, NULL, 1), CRDT_EINVAL);
    /* and nothing to merge is no error */
    ck_assert_int_eq(crdt_merge(&rep, b, NULL, 0), CRDT_OK);
    tu_digest_all(b, after);
    ck_assert_mem_eq(before, after, 32);
    tu_batch_free(&x);
}
END_TEST

START_TEST(test_unpacked_refuses_missing_arguments)
{
    crdt_unpacked *u;
    crdt_merge_report rep;
    unsigned char *packed;
    size_t len, n = 99;
    tu_batch x;

    ck_assert_int_eq(tu_put_int(a, "c", "d", "f", 1), CRDT_OK);
    ck_assert_int_eq(tu_put_int(a, "c", "d", "f", 2), CRDT_OK);
    x = tu_export_all(a);
    ck_assert_int_eq(crdt_changes_pack(&packed, &len, x.v, x.n), CRDT_OK);
    ck_assert_int_eq(crdt_unpacked_new(NULL, packed, len), CRDT_EINVAL);
    ck_assert_ptr_null(crdt_unpacked_changes(NULL, &n));
    ck_assert_uint_eq(n, 0);
    crdt_unpacked_free(NULL);
    ck_assert_int_eq(crdt_merge_unpacked(&rep, b, NULL), CRDT_EINVAL);
    assert_field(b, "c", "d", "f", "");

    ck_assert_int_eq(crdt_unpacked_new(&u, packed, len), CRDT_OK);
    /* the list without its count is the same list */
    ck_assert_ptr_eq(crdt_unpacked_changes(u, NULL),
                     crdt_unpacked_changes(u, &n));
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(crdt_merge_unpacked(&rep, b, u), CRDT_OK);
    ck_assert_uint_eq(rep.changes_applied, 2);
    assert_field(b, "c", "d", "f", "2");
    crdt_unpacked_free(u);
    crdt_free(packed);
    tu_batch_free(&x);
}
END_TEST

/* A change of an epoch the replica cannot read (no hook to rebase it):
 * the whole merge fails, and nothing of it stays. */
START_TEST(test_other_epoch_without_hook_fails_the_merge)
{
    unsigned char before[32], after[32];
    crdt_merge_report rep;
    tu_batch x;

    ck_assert_int_eq(tu_put_int(a, "c", "d", "f", 1), CRDT_OK);
    move_to_other_epoch(a);
    ck_assert_int_eq(tu_put_int(a, "c", "d", "f", 2), CRDT_OK);
    x = tu_export_all(a);
    ck_assert_uint_eq(x.n, 2);
    tu_digest_all(b, before);
    ck_assert_int_eq(crdt_merge(&rep, b, x.v, x.n), CRDT_ENOTFOUND);
    tu_digest_all(b, after);
    ck_assert_mem_eq(before, after, 32);
    assert_field(b, "c", "d", "f", "");
    tu_batch_free(&x);
}
END_TEST

/* A hook that passes each op unchanged and, at its first call, merges
 * @c inner through the hook's own txn (libepoch does so with the
 * changes a rebase needs first). */
typedef struct {
    const tu_batch *inner;
    int calls;
    int inner_rc;
    crdt_merge_report inner_rep;
} rebase_ctx;

static int
rebase_as_is(void *ctx, crdt_raw *t, const crdt_change *c, uint64_t seq,
             const crdt_op *in, crdt_op *out)
{
    rebase_ctx *rc = ctx;

    (void)c;
    (void)seq;
    if (rc->calls++ == 0 && rc->inner != NULL)
        rc->inner_rc = crdt_raw_merge(&rc->inner_rep, t, rc->inner->v,
                                      rc->inner->n);
    *out = *in;
    return rc->inner_rc < 0 ? rc->inner_rc : CRDT_OK;
}

static const crdt_epoch_hook as_is_hook = { rebase_as_is, NULL };

/* A merge inside the epoch hook of a merge: each applies its own
 * changes, and both land in the log and the state. */
START_TEST(test_merge_inside_the_epoch_hook)
{
    char dc[256];
    unsigned char space[16];
    crdt_replica *c;
    crdt_merge_report rep;
    rebase_ctx ctx = { 0 };
    tu_batch inner, outer, all;

    crdt_replica_space_id(a, space);
    c = tu_create(dc, sizeof dc, space);
    ck_assert_int_eq(tu_put_int(c, "c", "inner", "f", 7), CRDT_OK);
    ck_assert_int_eq(tu_put_int(c, "c", "inner", "f", 8), CRDT_OK);
    inner = tu_export_all(c);
    move_to_other_epoch(a);
    ck_assert_int_eq(tu_put_int(a, "c", "outer", "f", 9), CRDT_OK);
    outer = tu_export_all(a);

    ctx.inner = &inner;
    crdt_replica_set_epoch_hook(b, &as_is_hook, &ctx);
    ck_assert_int_eq(crdt_merge(&rep, b, outer.v, outer.n), CRDT_OK);
    crdt_replica_set_epoch_hook(b, NULL, NULL);
    ck_assert_int_eq(ctx.calls, 1);
    ck_assert_int_eq(ctx.inner_rc, CRDT_OK);
    ck_assert_uint_eq(ctx.inner_rep.changes_applied, 2);
    ck_assert_uint_eq(rep.changes_applied, 1);
    ck_assert_uint_eq(rep.rebased_ops, 1);
    assert_field(b, "c", "inner", "f", "8");
    assert_field(b, "c", "outer", "f", "9");
    all = tu_export_all(b);
    ck_assert_uint_eq(all.n, 3);
    ck_assert_uint_eq(tu_stats(b).changes_in_log, 3);
    tu_batch_free(&all);
    tu_batch_free(&inner);
    tu_batch_free(&outer);
    crdt_replica_close(c);
    test_rmtree(dc);
}
END_TEST

/* A parked change of another epoch applies once the head reaches it when
 * the replica holds that epoch's record (0), or cannot tell its genesis
 * (1: no genesis record, as before it was kept; 2: a damaged one). */
START_TEST(test_parked_change_of_a_known_epoch_applies)
{
    crdt_merge_report rep;
    crdt_raw *t;
    rebase_ctx ctx = { 0 };
    tu_batch x;

    ck_assert_int_eq(tu_put_int(a, "c", "d", "f", 1), CRDT_OK);
    move_to_other_epoch(a);
    ck_assert_int_eq(tu_put_int(a, "c", "d", "f", 2), CRDT_OK);
    x = tu_export_all(a);
    ck_assert_uint_eq(x.n, 2);

    ck_assert_int_eq(crdt_raw_begin(&t, b, 1), CRDT_OK);
    if (_i == 0)
        ck_assert_int_eq(crdt_raw_put(t, CRDT_DB_EPOCHS, other_epoch,
                                      sizeof other_epoch, "e", 1),
                         CRDT_OK);
    else if (_i == 1)
        ck_assert_int_eq(crdt_raw_del(t, CRDT_DB_META, "genesis_id", 10),
                         CRDT_OK);
    else
        ck_assert_int_eq(crdt_raw_put(t, CRDT_DB_META, "genesis_id", 10,
                                      "short", 5),
                         CRDT_OK);
    ck_assert_int_eq(crdt_raw_commit(t), CRDT_OK);

    crdt_replica_set_epoch_hook(b, &as_is_hook, &ctx);
    ck_assert_int_eq(crdt_merge(&rep, b, &x.v[1], 1), CRDT_OK);
    ck_assert_uint_eq(rep.pending, 1);
    ck_assert_uint_eq(tu_pending(b), 1);
    ck_assert_int_eq(crdt_merge(&rep, b, &x.v[0], 1), CRDT_OK);
    crdt_replica_set_epoch_hook(b, NULL, NULL);
    ck_assert_uint_eq(rep.changes_applied, 2);
    ck_assert_uint_eq(rep.rebased_ops, 1);
    ck_assert_int_eq(ctx.calls, 1);
    ck_assert_uint_eq(tu_pending(b), 0);
    assert_field(b, "c", "d", "f", "2");
    tu_batch_free(&x);
}
END_TEST

/* A change held in a log record of its own that no longer decodes: a
 * copy of it merged again cannot be compared, and the merge says the
 * store is damaged rather than take it for a duplicate. */
START_TEST(test_duplicate_of_a_damaged_record_is_ecorrupt)
{
    static const unsigned char junk[] = { 0x01, 0x02, 0x03 };
    unsigned char before[32], after[32], key[64];
    crdt_raw_cursor *cur;
    crdt_merge_report rep;
    const void *k, *v;
    size_t kl, vl;
    crdt_raw *t;
    tu_batch x;

    ck_assert_int_eq(tu_put_int(a, "c", "d", "f", 1), CRDT_OK);
    x = tu_export_all(a);
    ck_assert_int_eq(crdt_merge(&rep, b, x.v, x.n), CRDT_OK);
    ck_assert_uint_eq(rep.changes_applied, 1);

    ck_assert_int_eq(crdt_raw_begin(&t, b, 1), CRDT_OK);
    ck_assert_int_eq(crdt_raw_cursor_open(&cur, t, CRDT_DB_LOG), CRDT_OK);
    ck_assert_int_eq(crdt_raw_cursor_seek(cur, NULL, 0, &k, &kl, &v, &vl),
                     CRDT_OK);
    ck_assert_uint_le(kl, sizeof key);
    memcpy(key, k, kl);
    ck_assert_uint_eq(vl, x.v[0].len); /* the change itself, not a run */
    ck_assert_int_ne(crdt_raw_cursor_next(cur, &k, &kl, &v, &vl), CRDT_OK);
    crdt_raw_cursor_close(cur);
    ck_assert_int_eq(crdt_raw_put(t, CRDT_DB_LOG, key, kl, junk, sizeof junk),
                     CRDT_OK);
    ck_assert_int_eq(crdt_raw_commit(t), CRDT_OK);

    tu_digest_all(b, before);
    ck_assert_int_eq(crdt_merge(&rep, b, x.v, x.n), CRDT_ECORRUPT);
    tu_digest_all(b, after);
    ck_assert_mem_eq(before, after, 32);
    tu_batch_free(&x);
}
END_TEST

/* A copy of a writes seq 2 as one change of two ops (2..3) where a wrote
 * one op: it starts inside the head b holds and ends past it. A fork,
 * quarantined; b keeps a's chain. */
START_TEST(test_fork_reaching_past_the_head_is_quarantined)
{
    char dc[256], h1[65], h2[65];
    crdt_replica *clone;
    crdt_merge_report rep;
    tu_batch x, y;

    ck_assert_int_eq(tu_put_int(a, "c", "d", "f", 1), CRDT_OK);
    clone = tu_clone_open(da, dc, sizeof dc);
    ck_assert_int_eq(tu_put_int(a, "c", "d", "f", 2), CRDT_OK);
    put_two_ops(clone, "d", 3);
    x = tu_export_all(a);
    y = tu_export_all(clone);
    ck_assert_uint_eq(y.n, 2);
    ck_assert_int_eq(crdt_merge(&rep, b, x.v, x.n), CRDT_OK);
    tu_hash(h1, b);
    ck_assert_int_eq(crdt_merge(&rep, b, y.v, y.n), CRDT_OK);
    ck_assert_uint_eq(rep.duplicates, 1); /* seq 1, written before the copy */
    ck_assert_uint_eq(rep.conflicts, 1);
    ck_assert_uint_eq(rep.quarantined_ops, 2);
    ck_assert_uint_eq(rep.changes_applied, 0);
    tu_hash(h2, b);
    ck_assert_str_eq(h1, h2);
    assert_field(b, "c", "d", "f", "2");
    assert_field(b, "c", "d", "g", "");
    ck_assert_uint_eq(tu_quarantine_count(b), 2);
    tu_batch_free(&x);
    tu_batch_free(&y);
    crdt_replica_close(clone);
    test_rmtree(dc);
}
END_TEST

/* a's seq 2..3 is one change of two ops, held in a record of its own; a
 * copy of a wrote seq 3 as a change of its own. It ends where a's does
 * but starts elsewhere: not a duplicate, a fork. */
START_TEST(test_fork_ending_on_a_held_change_is_quarantined)
{
    char dc[256], h1[65], h2[65];
    crdt_replica *clone;
    crdt_merge_report rep;
    tu_batch x, y;

    ck_assert_int_eq(tu_put_int(a, "c", "d", "f", 1), CRDT_OK);
    clone = tu_clone_open(da, dc, sizeof dc);
    put_two_ops(a, "d", 2);
    ck_assert_int_eq(tu_put_int(clone, "c", "d", "f", 3), CRDT_OK);
    ck_assert_int_eq(tu_put_int(clone, "c", "d", "f", 4), CRDT_OK);
    x = tu_export_all(a);
    y = tu_export_all(clone);
    ck_assert_uint_eq(x.n, 2);
    ck_assert_uint_eq(y.n, 3);
    /* one at a time: each in a record of its own, not a run */
    ck_assert_int_eq(crdt_merge(&rep, b, &x.v[0], 1), CRDT_OK);
    ck_assert_int_eq(crdt_merge(&rep, b, &x.v[1], 1), CRDT_OK);
    ck_assert_uint_eq(rep.changes_applied, 1);
    tu_hash(h1, b);
    ck_assert_int_eq(crdt_merge(&rep, b, &y.v[2], 1), CRDT_OK);
    ck_assert_uint_eq(rep.duplicates, 0);
    ck_assert_uint_eq(rep.conflicts, 1);
    ck_assert_uint_eq(rep.quarantined_ops, 1);
    tu_hash(h2, b);
    ck_assert_str_eq(h1, h2);
    assert_field(b, "c", "d", "f", "2");
    assert_field(b, "c", "d", "g", "2");
    ck_assert_uint_eq(tu_quarantine_count(b), 1);
    tu_batch_free(&x);
    tu_batch_free(&y);
    crdt_replica_close(clone);
    test_rmtree(dc);
}
END_TEST

/* The replica's whole pending area is full: a change that would wait
 * goes to the quarantine, and those parked stay. */
START_TEST(test_full_pending_area_quarantines_the_newcomer)
{
    crdt_merge_report rep;
    tu_batch x;

    reopen_b(1, 0);
    for (int i = 1; i <= 4; i++)
        ck_assert_int_eq(tu_put_int(a, "c", "d", "f", i), CRDT_OK);
    x = tu_export_all(a);
    ck_assert_int_eq(crdt_merge(&rep, b, &x.v[2], 1), CRDT_OK);
    ck_assert_uint_eq(rep.pending, 1);
    ck_assert_int_eq(crdt_merge(&rep, b, &x.v[3], 1), CRDT_OK);
    ck_assert_uint_eq(rep.pending, 0);
    ck_assert_uint_eq(rep.quarantined_ops, 1);
    ck_assert_uint_eq(tu_pending(b), 1);
    ck_assert_uint_eq(tu_quarantine_count(b), 1);
    /* seq 1 and 2 come: the parked 3 follows them, 4 waits for a peer */
    ck_assert_int_eq(crdt_merge(&rep, b, x.v, 2), CRDT_OK);
    ck_assert_uint_eq(rep.changes_applied, 3);
    ck_assert_uint_eq(tu_pending(b), 0);
    assert_field(b, "c", "d", "f", "3");
    tu_batch_free(&x);
}
END_TEST

/* An actor's share of the pending area is full and the newcomer is
 * farther ahead than every parked change: it is the one quarantined. */
START_TEST(test_full_share_quarantines_a_farther_newcomer)
{
    crdt_merge_report rep;
    tu_batch x;

    reopen_b(0, 2);
    for (int i = 1; i <= 4; i++)
        ck_assert_int_eq(tu_put_int(a, "c", "d", "f", i), CRDT_OK);
    x = tu_export_all(a);
    for (int i = 1; i <= 2; i++) { /* seqs 2 and 3 wait for 1 */
        ck_assert_int_eq(crdt_merge(&rep, b, &x.v[i], 1), CRDT_OK);
        ck_assert_uint_eq(rep.pending, 1);
    }
    ck_assert_int_eq(crdt_merge(&rep, b, &x.v[3], 1), CRDT_OK);
    ck_assert_uint_eq(rep.pending, 0);
    ck_assert_uint_eq(rep.quarantined_ops, 1);
    ck_assert_uint_eq(tu_pending(b), 2);
    ck_assert_uint_eq(tu_quarantine_count(b), 1);
    ck_assert_int_eq(crdt_merge(&rep, b, &x.v[0], 1), CRDT_OK);
    ck_assert_uint_eq(rep.changes_applied, 3);
    ck_assert_uint_eq(tu_pending(b), 0);
    assert_field(b, "c", "d", "f", "3");
    tu_batch_free(&x);
}
END_TEST

/* Registers of two collections whose names agree in their first bytes,
 * written in one change: the merge's queue keeps the newest write of
 * each field, and these are two fields, not one. */
START_TEST(test_queued_writes_to_names_alike_stay_apart)
{
    static const char *colls[] = { "collection-with-long-name-A",
                                   "collection-with-long-name-B" };
    crdt_merge_report rep;
    crdt_txn *t;
    tu_batch x;

    ck_assert_int_eq(crdt_txn_begin(&t, a), CRDT_OK);
    for (int i = 0; i < 2; i++) {
        crdt_value v = crdt_value_int(10 + i);
        ck_assert_int_eq(crdt_txn_put(t, colls[i], "d", "f", &v), CRDT_OK);
    }
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    x = tu_export_all(a);
    ck_assert_int_eq(crdt_merge(&rep, b, x.v, x.n), CRDT_OK);
    ck_assert_uint_eq(rep.ops_applied, 2);
    assert_field(b, colls[0], "d", "f", "10");
    assert_field(b, colls[1], "d", "f", "11");
    {
        char ha[65], hb[65];
        tu_hash(ha, a);
        tu_hash(hb, b);
        ck_assert_str_eq(ha, hb);
    }
    tu_batch_free(&x);
}
END_TEST

/* The same tests with every merge given an aid (libcrdt's mergeaid.h),
 * whatever its size: the aid must change none of the answers. */
TU_AID_FIXTURE

static void
add_tests(TCase *tc)
{
    tcase_add_test(tc, test_merge_refuses_missing_arguments);
    tcase_add_test(tc, test_unpacked_refuses_missing_arguments);
    tcase_add_test(tc, test_other_epoch_without_hook_fails_the_merge);
    tcase_add_test(tc, test_merge_inside_the_epoch_hook);
    tcase_add_loop_test(tc, test_parked_change_of_a_known_epoch_applies, 0,
                        3);
    tcase_add_test(tc, test_duplicate_of_a_damaged_record_is_ecorrupt);
    tcase_add_test(tc, test_fork_reaching_past_the_head_is_quarantined);
    tcase_add_test(tc, test_fork_ending_on_a_held_change_is_quarantined);
    tcase_add_test(tc, test_full_pending_area_quarantines_the_newcomer);
    tcase_add_test(tc, test_full_share_quarantines_a_farther_newcomer);
    tcase_add_test(tc, test_queued_writes_to_names_alike_stay_apart);
}

Suite *
test_suite(void)
{
    Suite *s = suite_create("merge edges");
    TCase *tc = tcase_create("merge edges");
    TCase *aid = tcase_create("merge edges with an aid");

    tcase_set_timeout(tc, 60);
    tcase_set_timeout(aid, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    add_tests(tc);
    tcase_add_checked_fixture(aid, setup_aid, teardown_aid);
    add_tests(aid);
    suite_add_tcase(s, tc);
    suite_add_tcase(s, aid);
    return s;
}
