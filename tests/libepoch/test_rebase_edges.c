/*
 * test_rebase_edges.c: the rebase hook (libepoch/src/rebase.c) and the
 * quarantine re-apply (quarantine.c) on paths test_epoch_edges.c and
 * test_seq_epoch.c do not take: a stale text op whose field a lens
 * leaves alone while it adds a default to the document the op creates;
 * a stale op carried through three lenses where a default one lens adds
 * is removed by the next (the document must not get it) and the third
 * adds another; a quarantine whose only held op the current state
 * refuses (it stays held, nothing else changes, the re-apply succeeds);
 * the losing chain of an equivocation re-applied for another actor
 * (nothing moves) and then for its own (all of it comes back).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crdt/crdt.h"
#include "epoch/epoch.h"
#include "support/epoch_util.h"
#include "support/replica_util.h"
#include "support/support.h"

/* a and b: a fresh attached pair of one space for each test */
TU_PAIR_FIXTURE(tu_pair_open)

static void
assert_field(crdt_replica *r, const char *doc, const char *field,
             const char *want)
{
    char buf[128];

    tu_field_str(buf, sizeof buf, r, "c", doc, field);
    ck_assert_msg(strcmp(buf, want) == 0, "c/%s/%s is '%s', want '%s'", doc,
                  field, buf, want);
}

static void
migrate(crdt_replica *r, const char *lens_text)
{
    epoch_info e;

    tu_migrate(r, lens_text, &e);
    epoch_info_clear(&e);
}

/* b, one epoch behind, inserts text into a document only it has; a's
 * lens adds a field and does not touch the text. Rebased, the insert
 * keeps its field name and its document gets the lens's default, on
 * both replicas, and nothing is quarantined. */
START_TEST(test_stale_text_op_through_a_lens_that_leaves_it)
{
    crdt_txn *t;
    uint64_t n = 9;

    ck_assert_int_eq(tu_put_int(a, "c", "d", "x", 1), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    ck_assert_int_eq(crdt_txn_begin(&t, b), CRDT_OK);
    ck_assert_int_eq(crdt_txn_text_insert(t, "c", "new", "t", 0, "hi", 2),
                     CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    migrate(a, "collection c 1 -> 2\nadd note string default \"n\"\n");

    ck_assert_int_eq(tu_reset_from(b, a), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(a, b), CRDT_OK);
    ck_assert_int_eq(epoch_quarantine_count(&n, b), CRDT_OK);
    ck_assert_uint_eq(n, 0);
    assert_field(b, "new", "t", "\"hi\"");
    assert_field(b, "new", "note", "\"n\"");
    assert_field(a, "new", "t", "\"hi\"");
    assert_field(a, "new", "note", "\"n\"");
    assert_field(a, "d", "note", "\"n\"");
    tu_assert_converged(a, b);
}
END_TEST

/* b stays at the first epoch while a migrates three times: add f, remove
 * f, add g. b's write to a new document, rebased through all three,
 * brings g's default but not f's, which the second lens removed. */
START_TEST(test_default_removed_by_a_later_lens_is_not_written)
{
    ck_assert_int_eq(tu_put_int(a, "c", "d", "x", 1), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    ck_assert_int_eq(tu_put_int(b, "c", "new", "x", 2), CRDT_OK);
    migrate(a, "collection c 1 -> 2\nadd f int default 5\n");
    migrate(a, "collection c 2 -> 3\nremove f int default 5\n");
    migrate(a, "collection c 3 -> 4\nadd g int default 7\n");

    ck_assert_int_eq(tu_reset_from(b, a), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(a, b), CRDT_OK);
    ck_assert_uint_eq(tu_quarantine_count(b), 0);
    assert_field(b, "new", "x", "2");
    assert_field(b, "new", "g", "7");
    assert_field(b, "new", "f", "");
    assert_field(a, "new", "x", "2");
    assert_field(a, "new", "g", "7");
    assert_field(a, "new", "f", "");
    /* the document a migrated itself agrees */
    assert_field(a, "d", "g", "7");
    assert_field(a, "d", "f", "");
    tu_assert_converged(a, b);
}
END_TEST

/* The one held op (a put to a field a lens removed) meets a counter of
 * that name written since: the re-apply succeeds, applies nothing, keeps
 * the op held, and the counter is as it was. */
START_TEST(test_only_held_op_refused_stays_held)
{
    uint64_t applied = 9, kept = 9;
    crdt_txn *t;

    ck_assert_int_eq(tu_put_int(a, "c", "d", "keep", 1), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    ck_assert_int_eq(tu_put_int(b, "c", "d", "gone", 7), CRDT_OK);
    migrate(a, "collection c 1 -> 2\nremove gone\n");
    ck_assert_int_eq(tu_reset_from(b, a), CRDT_OK);
    ck_assert_uint_eq(tu_quarantine_count(b), 1);
    assert_field(b, "d", "gone", "");

    ck_assert_int_eq(crdt_txn_begin(&t, b), CRDT_OK);
    ck_assert_int_eq(crdt_txn_incr(t, "c", "d", "gone", 3), CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    ck_assert_int_eq(epoch_quarantine_apply(&applied, &kept, b), CRDT_OK);
    ck_assert_uint_eq(applied, 0);
    ck_assert_uint_eq(kept, 1);
    ck_assert_uint_eq(tu_quarantine_count(b), 1);
    assert_field(b, "d", "gone", "c3");
    assert_field(b, "d", "keep", "1");
}
END_TEST

/* b holds a copy's chain of c's actor that loses to a's: the reset
 * holds the copy's two changes (kind equivocation). Re-applying the lost
 * ops of another actor takes none of them; of c's actor, both, as new
 * writes that show in the state. */
START_TEST(test_apply_lost_filters_held_entries_by_actor)
{
    crdt_actor forked, other = crdt_replica_actor(a);
    uint64_t applied = 9;

    tu_forked_chains(a, b, &forked);
    ck_assert_int_eq(tu_reset_with_log_answered(b, a, &forked, 1), CRDT_OK);
    ck_assert_uint_eq(tu_quarantine_count(b), 2);
    assert_field(b, "copy0", "v", "");

    ck_assert_int_eq(epoch_quarantine_apply_lost(&applied, b, &other),
                     CRDT_OK);
    ck_assert_uint_eq(applied, 0);
    ck_assert_uint_eq(tu_quarantine_count(b), 2);
    assert_field(b, "copy0", "v", "");

    ck_assert_int_eq(epoch_quarantine_apply_lost(&applied, b, &forked),
                     CRDT_OK);
    ck_assert_uint_eq(applied, 2);
    ck_assert_uint_eq(tu_quarantine_count(b), 0);
    assert_field(b, "copy0", "v", "3");
    assert_field(b, "copy1", "v", "4");
    assert_field(b, "orig", "v", "2");
}
END_TEST

Suite *
test_suite(void)
{
    Suite *s = suite_create("rebase_edges");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_stale_text_op_through_a_lens_that_leaves_it);
    tcase_add_test(tc, test_default_removed_by_a_later_lens_is_not_written);
    tcase_add_test(tc, test_only_held_op_refused_stays_held);
    tcase_add_test(tc, test_apply_lost_filters_held_entries_by_actor);
    suite_add_tcase(s, tc);
    return s;
}
