/*
 * test_epoch.c: the migration builder, the marker, rebasing of stale
 * replicas through the lens chain, quarantine, forks.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crdt/crdt.h"
#include "crdt/raw.h"
#include "epoch/epoch.h"
#include "support/epoch_util.h"
#include "support/replica_util.h"
#include "support/support.h"

/* a and b: a fresh attached pair of one space for each test */
TU_PAIR_FIXTURE(tu_pair_open)


START_TEST(test_compaction_keeps_state_and_empties_log)
{
    char h1[65], h2[65], buf[64];
    epoch_info e, cur;
    crdt_read *rd;
    crdt_stats st;

    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(tu_put_int(a, "c", "d", "f", i), CRDT_OK);
    tu_hash(h1, a);
    tu_migrate(a, NULL, &e);
    ck_assert_uint_eq(e.number, 1);
    tu_hash(h2, a);
    ck_assert_str_eq(h1, h2);
    ck_assert_int_eq(crdt_read_begin(&rd, a), CRDT_OK);
    ck_assert_int_eq(crdt_read_stats(&st, rd), CRDT_OK);
    crdt_read_end(rd);
    ck_assert_uint_eq(st.ops_in_log, 0);
    ck_assert_uint_eq(st.epoch_number, 1);
    ck_assert_mem_eq(st.epoch_id, e.id, 32);
    ck_assert_int_eq(epoch_current(&cur, a), CRDT_OK);
    ck_assert_mem_eq(cur.id, e.id, 32);
    epoch_info_clear(&cur);
    epoch_info_clear(&e);
    /* writing goes on, with seq continuing */
    ck_assert_int_eq(tu_put_int(a, "c", "d", "f", 99), CRDT_OK);
    tu_field_str(buf, sizeof buf, a, "c", "d", "f");
    ck_assert_str_eq(buf, "99");
}
END_TEST

START_TEST(test_same_ops_same_migration_same_epoch)
{
    epoch_info ea, eb;

    ck_assert_int_eq(tu_put_int(a, "c", "d", "name", 1), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    tu_migrate(a, "collection c 1 -> 2\nrename name -> title\n", &ea);
    tu_migrate(b, "collection c 1 -> 2\nrename name -> title\n", &eb);
    ck_assert_mem_eq(ea.id, eb.id, 32);
    ck_assert_uint_eq(epoch_schema_version(&ea, "c"), 2);
    epoch_info_clear(&ea);
    epoch_info_clear(&eb);
}
END_TEST

START_TEST(test_lens_migrates_documents)
{
    char buf[64];
    epoch_info e;

    ck_assert_int_eq(tu_put_int(a, "contacts", "p1", "age", 41), CRDT_OK);
    ck_assert_int_eq(tu_put_int(a, "contacts", "p1", "legacy", 1), CRDT_OK);
    ck_assert_int_eq(tu_put_int(a, "other", "x", "age", 5), CRDT_OK);
    tu_migrate(a,
            "collection contacts 1 -> 2\n"
            "convert age int -> string\n"
            "remove legacy\n"
            "add note string default \"\"\n", &e);
    tu_field_str(buf, sizeof buf, a, "contacts", "p1", "age");
    ck_assert_str_eq(buf, "\"41\"");
    tu_field_str(buf, sizeof buf, a, "contacts", "p1", "legacy");
    ck_assert_str_eq(buf, "");
    tu_field_str(buf, sizeof buf, a, "contacts", "p1", "note");
    ck_assert_str_eq(buf, "\"\"");
    tu_field_str(buf, sizeof buf, a, "other", "x", "age");
    ck_assert_str_eq(buf, "5");
    /* the stored hash is the hash of the new state */
    {
        crdt_raw *t;
        unsigned char h1[32], h2[32];
        ck_assert_int_eq(crdt_raw_begin(&t, a, 0), CRDT_OK);
        crdt_raw_state_hash(t, h1);
        ck_assert_int_eq(crdt_raw_state_rehash(t, h2), CRDT_OK);
        crdt_raw_abort(t);
        ck_assert_mem_eq(h1, h2, 32);
        ck_assert_mem_eq(h1, e.state_hash, 32);
    }
    epoch_info_clear(&e);
}
END_TEST

START_TEST(test_lens_version_mismatch_is_refused)
{
    epoch_builder *bl;
    epoch_lens *l = tu_lens("collection c 2 -> 3\nrename a -> b\n");
    epoch_marker m;

    ck_assert_int_eq(epoch_builder_new(&bl, a), CRDT_OK);
    ck_assert_int_eq(epoch_builder_add_lens(bl, l), CRDT_OK);
    ck_assert_int_eq(epoch_builder_commit(NULL, bl), CRDT_EINVAL);
    epoch_builder_free(bl);
    epoch_lens_free(l);
    ck_assert_int_eq(epoch_marker_get(&m, a), CRDT_ENOTFOUND);
}
END_TEST

START_TEST(test_marker_makes_writers_busy_and_resumes)
{
    crdt_raw *t;
    crdt_txn *txn;
    epoch_marker m;
    epoch_info e;
    char buf[64];
    extern int epoch__marker_put(crdt_raw *, uint64_t, const char *,
                                 const char *);

    ck_assert_int_eq(tu_put_int(a, "c", "d", "name", 1), CRDT_OK);
    /* a crash after the marker txn: the marker is there, epoch unchanged */
    ck_assert_int_eq(crdt_raw_begin(&t, a, 1), CRDT_OK);
    ck_assert_int_eq(epoch__marker_put(t, 1,
                                       "collection c 1 -> 2\n"
                                       "rename name -> title\n", ""),
                     CRDT_OK);
    ck_assert_int_eq(crdt_raw_commit(t), CRDT_OK);
    ck_assert_int_eq(crdt_txn_begin(&txn, a), CRDT_EBUSY);
    ck_assert_int_eq(epoch_marker_get(&m, a), CRDT_OK);
    ck_assert_uint_eq(m.target_number, 1);
    epoch_marker_clear(&m);
    tu_field_str(buf, sizeof buf, a, "c", "d", "name"); /* readers read */
    ck_assert_str_eq(buf, "1");
    ck_assert_int_eq(epoch_migration_resume(&e, a, NULL, NULL), CRDT_OK);
    ck_assert_uint_eq(e.number, 1);
    epoch_info_clear(&e);
    tu_field_str(buf, sizeof buf, a, "c", "d", "title");
    ck_assert_str_eq(buf, "1");
    ck_assert_int_eq(epoch_marker_get(&m, a), CRDT_ENOTFOUND);
    ck_assert_int_eq(tu_put_int(a, "c", "d", "title", 2), CRDT_OK);
    /* abort drops a marker and changes nothing */
    ck_assert_int_eq(crdt_raw_begin(&t, a, 1), CRDT_OK);
    ck_assert_int_eq(epoch__marker_put(t, 2, "", ""), CRDT_OK);
    ck_assert_int_eq(crdt_raw_commit(t), CRDT_OK);
    ck_assert_int_eq(epoch_migration_abort(a), CRDT_OK);
    ck_assert_int_eq(tu_put_int(a, "c", "d", "title", 3), CRDT_OK);
}
END_TEST

START_TEST(test_stale_replica_is_rebased)
{
    char ha[65], hb[65], buf[64];
    epoch_info e;

    ck_assert_int_eq(tu_put_int(a, "contacts", "p1", "name", 1), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    /* b goes offline and writes against version 1 */
    ck_assert_int_eq(tu_put_int(b, "contacts", "p2", "name", 2), CRDT_OK);
    ck_assert_int_eq(tu_put_int(b, "contacts", "p1", "name", 3), CRDT_OK);
    /* a migrates twice meanwhile */
    tu_migrate(a, "collection contacts 1 -> 2\nrename name -> full_name\n", &e);
    epoch_info_clear(&e);
    ck_assert_int_eq(tu_put_int(a, "contacts", "p3", "full_name", 4), CRDT_OK);
    tu_migrate(a, "collection contacts 2 -> 3\nrename full_name -> title\n", &e);
    epoch_info_clear(&e);
    /* b comes back: reset into a's epoch, its own writes rebased */
    ck_assert_int_eq(tu_reset_from(b, a), CRDT_OK);
    tu_field_str(buf, sizeof buf, b, "contacts", "p2", "title");
    ck_assert_str_eq(buf, "2");
    tu_field_str(buf, sizeof buf, b, "contacts", "p1", "title");
    ck_assert_str_eq(buf, "3");
    tu_field_str(buf, sizeof buf, b, "contacts", "p3", "title");
    ck_assert_str_eq(buf, "4");
    /* a receives b's old-epoch changes and rebases them the same way */
    ck_assert_int_eq(tu_sync_one_way(a, b), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    tu_field_str(buf, sizeof buf, a, "contacts", "p2", "title");
    ck_assert_str_eq(buf, "2");
    tu_hash(ha, a);
    tu_hash(hb, b);
    ck_assert_str_eq(ha, hb);
}
END_TEST

/* A change parked ahead of the head whose epoch b holds no record of
 * (it came before the record): when the head reaches it, it waits in the
 * pending area, and the merge that brought the head there succeeds (it
 * used to fail with CRDT_ENOTFOUND, and every later merge of the actor:
 * simulator seed 9272). With the record stored, it applies. */
START_TEST(test_parked_change_of_an_unknown_epoch_waits)
{
    crdt_merge_report rep;
    epoch_info *chain, e;
    size_t n;
    tu_batch x1, x2;
    char ha[65], hb[65];

    ck_assert_int_eq(tu_put_int(a, "c", "d", "v", 1), CRDT_OK);
    x1 = tu_export_all(a); /* seq 1, written at the genesis */
    tu_migrate(a, "collection c 1 -> 2\nrename v -> w\n", &e);
    epoch_info_clear(&e);
    ck_assert_int_eq(tu_put_int(a, "c", "d", "x", 2), CRDT_OK);
    x2 = tu_export_all(a); /* seq 2, written in epoch 1 */
    ck_assert_uint_eq(x1.n, 1);
    ck_assert_uint_eq(x2.n, 1);

    ck_assert_int_eq(crdt_merge(&rep, b, x2.v, 1), CRDT_OK);
    ck_assert_uint_eq(rep.pending, 1);
    ck_assert_int_eq(crdt_merge(&rep, b, x1.v, 1), CRDT_OK);
    ck_assert_uint_eq(rep.changes_applied, 1);
    ck_assert_uint_eq(tu_pending(b), 1);

    ck_assert_int_eq(epoch_chain(&chain, &n, a), CRDT_OK);
    for (size_t i = 1; i < n; i++) {
        const unsigned char *rec = chain[i].raw;
        size_t len = chain[i].raw_len;
        ck_assert_int_eq(epoch_store_records(b, &rec, &len, 1), CRDT_OK);
    }
    epoch_chain_free(chain, n);
    ck_assert_int_eq(crdt_merge(&rep, b, x2.v, 1), CRDT_OK);
    ck_assert_uint_eq(rep.changes_applied, 1);
    ck_assert_uint_eq(tu_pending(b), 0);
    ck_assert_int_eq(tu_reset_from(b, a), CRDT_OK);
    tu_hash(ha, a);
    tu_hash(hb, b);
    ck_assert_str_eq(ha, hb);
    tu_batch_free(&x1);
    tu_batch_free(&x2);
}
END_TEST

/* a migrates through @p lens, b resets into it: b's quarantined ops */
static uint64_t
migrate_a_reset_b(const char *lens)
{
    uint64_t n = 0;
    epoch_info e;

    tu_migrate(a, lens, &e);
    epoch_info_clear(&e);
    ck_assert_int_eq(tu_reset_from(b, a), CRDT_OK);
    ck_assert_int_eq(epoch_quarantine_count(&n, b), CRDT_OK);
    return n;
}

/* A held text delete whose text the migration removed cannot apply: it
 * stays held, and the held ops that can apply still do (it used to fail
 * the whole apply with CRDT_ENOTFOUND, and with it the reset that
 * re-applies a copied replica's losing writes). */
START_TEST(test_held_op_on_a_missing_text_stays_held)
{
    uint64_t n = 0, applied = 0, kept = 0;
    crdt_txn *t;

    ck_assert_int_eq(crdt_txn_begin(&t, a), CRDT_OK);
    ck_assert_int_eq(crdt_txn_text_insert(t, "c", "d", "t", 0, "ab", 2),
                     CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    ck_assert_int_eq(crdt_txn_begin(&t, b), CRDT_OK);
    ck_assert_int_eq(crdt_txn_text_delete(t, "c", "d", "t", 0, 1), CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    ck_assert_int_eq(tu_put_int(b, "c", "d", "gone", 7), CRDT_OK);
    ck_assert_uint_eq(migrate_a_reset_b("collection c 1 -> 2\nremove t\n"
                                        "remove gone\n"),
                      2);

    ck_assert_int_eq(epoch_quarantine_apply(&applied, &kept, b), CRDT_OK);
    ck_assert_uint_eq(applied, 1); /* the put: a new write of `gone` */
    ck_assert_uint_eq(kept, 1);    /* the text delete */
    ck_assert_int_eq(epoch_quarantine_count(&n, b), CRDT_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(tu_put_int(b, "c", "d", "after", 1), CRDT_OK);
}
END_TEST

START_TEST(test_removed_field_ops_are_quarantined)
{
    uint64_t n = 0;
    char ha[65], hb[65];

    ck_assert_int_eq(tu_put_int(a, "c", "d", "keep", 1), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    ck_assert_int_eq(tu_put_int(b, "c", "d", "gone", 7), CRDT_OK);
    ck_assert_int_eq(tu_put_int(b, "c", "d", "keep", 8), CRDT_OK);
    ck_assert_uint_eq(migrate_a_reset_b("collection c 1 -> 2\nremove gone\n"),
                      1);
    ck_assert_int_eq(tu_sync_one_way(a, b), CRDT_OK);
    ck_assert_int_eq(epoch_quarantine_count(&n, a), CRDT_OK);
    ck_assert_uint_eq(n, 1);
    tu_hash(ha, a);
    tu_hash(hb, b);
    ck_assert_str_eq(ha, hb);
}
END_TEST

static int
upper(epoch_doc *doc, const char *coll, const char *id, void *ctx)
{
    crdt_value v = crdt_value_int(100);
    (void)coll;
    (void)id;
    (void)ctx;
    return epoch_doc_set_register(doc, "migrated", &v);
}

START_TEST(test_custom_migration_rejects_stale_peers)
{
    epoch_builder *bl;
    epoch_info e, *chain;
    epoch_relation rel;
    const char *reason = NULL;
    size_t n;
    char buf[64];

    ck_assert_int_eq(tu_put_int(a, "c", "d", "x", 1), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    ck_assert_int_eq(epoch_builder_new(&bl, a), CRDT_OK);
    ck_assert_int_eq(epoch_builder_set_custom(bl, "add-migrated", "c", 2,
                                              upper, NULL), CRDT_OK);
    ck_assert_int_eq(epoch_builder_commit(&e, bl), CRDT_OK);
    epoch_builder_free(bl);
    tu_field_str(buf, sizeof buf, a, "c", "d", "migrated");
    ck_assert_str_eq(buf, "100");
    ck_assert_int_eq(epoch_chain(&chain, &n, a), CRDT_OK);
    const unsigned char *rec = chain[1].raw;
    size_t len = chain[1].raw_len;
    ck_assert_int_eq(epoch_store_records(b, &rec, &len, 1), CRDT_OK);
    epoch_chain_free(chain, n);
    ck_assert_int_eq(epoch_relate(&rel, &reason, b, e.id, NULL),
                     CRDT_EREJECTED);
    ck_assert_int_eq(rel, EPOCH_BEHIND);
    ck_assert_ptr_nonnull(reason);
    epoch_info_clear(&e);
}
END_TEST

START_TEST(test_fork_ends_with_one_epoch_and_no_op_lost)
{
    epoch_info ea, eb;
    epoch_relation ra, rb;
    char ha[65], hb[65], buf[64];
    crdt_replica *loser, *winner;

    ck_assert_int_eq(tu_put_int(a, "c", "d", "x", 1), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    /* partitioned: both write, both migrate */
    ck_assert_int_eq(tu_put_int(a, "c", "da", "x", 2), CRDT_OK);
    ck_assert_int_eq(tu_put_int(b, "c", "db", "x", 3), CRDT_OK);
    tu_migrate(a, NULL, &ea);
    tu_migrate(b, "collection c 1 -> 2\nrename x -> y\n", &eb);
    ck_assert_int_eq(tu_put_int(a, "c", "da2", "x", 4), CRDT_OK);
    ck_assert_int_eq(tu_put_int(b, "c", "db2", "y", 5), CRDT_OK);
    {   /* exchange records */
        const unsigned char *ra_ = ea.raw, *rb_ = eb.raw;
        size_t la = ea.raw_len, lb = eb.raw_len;
        ck_assert_int_eq(epoch_store_records(b, &ra_, &la, 1), CRDT_OK);
        ck_assert_int_eq(epoch_store_records(a, &rb_, &lb, 1), CRDT_OK);
    }
    ck_assert_int_eq(epoch_relate(&ra, NULL, a, eb.id, NULL), CRDT_OK);
    ck_assert_int_eq(epoch_relate(&rb, NULL, b, ea.id, NULL), CRDT_OK);
    ck_assert((ra == EPOCH_FORK_WIN && rb == EPOCH_FORK_LOSE) ||
              (ra == EPOCH_FORK_LOSE && rb == EPOCH_FORK_WIN));
    loser = ra == EPOCH_FORK_LOSE ? a : b;
    winner = loser == a ? b : a;
    ck_assert_int_eq(tu_reset_from(loser, winner), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(winner, loser), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(loser, winner), CRDT_OK);
    tu_hash(ha, a);
    tu_hash(hb, b);
    ck_assert_str_eq(ha, hb);
    {
        epoch_info ca, cb;
        ck_assert_int_eq(epoch_current(&ca, a), CRDT_OK);
        ck_assert_int_eq(epoch_current(&cb, b), CRDT_OK);
        ck_assert_mem_eq(ca.id, cb.id, 32);
        epoch_info_clear(&ca);
        epoch_info_clear(&cb);
    }
    /* every write is there, in the winner's schema */
    const char *f = winner == b ? "y" : "x";
    static const char *docs[] = { "d", "da", "db", "da2", "db2" };
    for (int i = 0; i < 5; i++) {
        tu_field_str(buf, sizeof buf, a, "c", docs[i], f);
        ck_assert_msg(buf[0] != 0, "doc %s lost", docs[i]);
    }
    epoch_info_clear(&ea);
    epoch_info_clear(&eb);
}
END_TEST

Suite *
test_suite(void)
{
    Suite *s = suite_create("epoch");
    TCase *tc = tcase_create("builder");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_compaction_keeps_state_and_empties_log);
    tcase_add_test(tc, test_same_ops_same_migration_same_epoch);
    tcase_add_test(tc, test_lens_migrates_documents);
    tcase_add_test(tc, test_lens_version_mismatch_is_refused);
    tcase_add_test(tc, test_marker_makes_writers_busy_and_resumes);
    tcase_add_test(tc, test_stale_replica_is_rebased);
    tcase_add_test(tc, test_removed_field_ops_are_quarantined);
    tcase_add_test(tc, test_held_op_on_a_missing_text_stays_held);
    tcase_add_test(tc, test_parked_change_of_an_unknown_epoch_waits);
    tcase_add_test(tc, test_custom_migration_rejects_stale_peers);
    tcase_add_test(tc, test_fork_ends_with_one_epoch_and_no_op_lost);
    suite_add_tcase(s, tc);
    return s;
}
