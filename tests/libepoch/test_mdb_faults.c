/*
 * test_mdb_faults.c: an LMDB call failing at every point of a migration
 * (a compaction, and a lens that renames, converts, removes and adds a
 * default, over text and list fields too), of a stale replica's reset
 * into the new epoch (records stored, snapshot walked on the fresh side
 * and put on the stale one, the reset committed, its own writes rebased),
 * of the merge that rebases a stale replica's changes through the lens,
 * and of the quarantine's listing and re-application. As in
 * tests/libcrdt/test_mdb_faults.c: the call answers CRDT_EIO, nothing
 * follows on the failed txn but its abort, the replica is byte for byte
 * as before, and the next try succeeds.
 */
#include <check.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crdt/crdt.h"
#include "crdt/raw.h"
#include "crdt/sync.h"
#include "crdt/text.h"
#include "epoch/epoch.h"
#include "support/epoch_util.h"
#include "support/mdbfault.h"
#include "support/replica_util.h"
#include "support/support.h"

#define CALLS_MAX 50000 /* far above what any operation here makes */

TU_PAIR_FIXTURE(tu_pair_open)

#define LENS                                                                   \
    "collection c 1 -> 2\n"                                                    \
    "rename name -> title\n"                                                   \
    "convert age int -> string\n"                                              \
    "remove gone\n"                                                            \
    "add note string default \"-\"\n"                                         \
    "convert t text -> string\n"

/* Documents with every kind of field the lens touches, and sequences. */
static void
fill(crdt_replica *r, const char *prefix, int n)
{
    for (int i = 0; i < n; i++) {
        crdt_value v = crdt_value_int(i);
        crdt_txn *t;
        char doc[32];

        snprintf(doc, sizeof doc, "%s%d", prefix, i);
        ck_assert_int_eq(crdt_txn_begin(&t, r), CRDT_OK);
        ck_assert_int_eq(crdt_txn_put(t, "c", doc, "name", &v), CRDT_OK);
        ck_assert_int_eq(crdt_txn_put(t, "c", doc, "age", &v), CRDT_OK);
        ck_assert_int_eq(crdt_txn_put(t, "c", doc, "gone", &v), CRDT_OK);
        ck_assert_int_eq(crdt_txn_incr(t, "c", doc, "n", i), CRDT_OK);
        ck_assert_int_eq(crdt_txn_text_insert(t, "c", doc, "t", 0, "hey", 3),
                         CRDT_OK);
        ck_assert_int_eq(crdt_txn_list_insert(t, "c", doc, "l", 0, &v),
                         CRDT_OK);
        ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    }
}

static int
migrate(crdt_replica *r, const char *lens_text)
{
    epoch_builder *bl;
    epoch_lens *l = lens_text ? tu_lens(lens_text) : NULL;
    int rc;

    if ((rc = epoch_builder_new(&bl, r)) == CRDT_OK) {
        if (l == NULL || (rc = epoch_builder_add_lens(bl, l)) == CRDT_OK)
            rc = epoch_builder_commit(NULL, bl);
        epoch_builder_free(bl);
    }
    epoch_lens_free(l);
    return rc;
}

static void
each_call(const char *what, crdt_replica *r,
          int (*op)(crdt_replica *, void *), void *arg,
          int (*committed)(crdt_replica *, void *))
{
    mdbfault_each_call(what, r, op, arg, committed, CALLS_MAX);
}

static int
op_migrate(crdt_replica *r, void *arg)
{
    return migrate(r, arg);
}

/* _i = 0: a compaction; 1: the lens */
START_TEST(test_migration_fails_at_every_lmdb_call)
{
    epoch_info e;

    fill(a, "d", 20);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    fill(b, "b", 3); /* another actor's log to archive */
    ck_assert_int_eq(tu_sync_one_way(a, b), CRDT_OK);
    /* without a reader slot for its second thread it runs on one */
    mdbfault_spare_reads(1);
    each_call(_i ? "lens migration" : "compaction", a, op_migrate, _i ? LENS : NULL, NULL);
    mdbfault_spare_reads(0);
    ck_assert_int_eq(epoch_current(&e, a), CRDT_OK);
    ck_assert_uint_eq(e.number, 1);
    epoch_info_clear(&e);
    ck_assert_int_eq(migrate(b, _i ? LENS : NULL), CRDT_OK);
    tu_assert_converged(a, b); /* the same epoch, derived alike */
}
END_TEST

START_TEST(test_reset_fails_at_every_lmdb_call)
{
    fill(a, "d", 8);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    /* b goes offline and writes against version 1 */
    ck_assert_int_eq(tu_put_int(b, "c", "d1", "name", 77), CRDT_OK);
    ck_assert_int_eq(tu_put_int(b, "c", "d2", "gone", 78), CRDT_OK);
    ck_assert_int_eq(migrate(a, LENS), CRDT_OK);
    ck_assert_int_eq(tu_put_int(a, "c", "d3", "title", 79), CRDT_OK);
    each_call("store records", b, tu_store_records_answered, a, NULL);
    each_call("reset", b, tu_reset_answered, a, tu_at_epoch_of);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(a, b), CRDT_OK);
    tu_assert_converged(a, b);
}
END_TEST

static int
op_merge_from(crdt_replica *to, void *arg)
{
    return tu_merge_from_answered(to, arg, malloc);
}

/* b's changes of the epoch before, merged by a: rebased through the
 * lens (one of them into the quarantine: its field was removed). */
START_TEST(test_rebasing_merge_fails_at_every_lmdb_call)
{
    uint64_t q = 0;

    fill(a, "d", 6);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    ck_assert_int_eq(tu_put_int(b, "c", "d1", "name", 77), CRDT_OK);
    ck_assert_int_eq(tu_put_int(b, "c", "d2", "gone", 78), CRDT_OK);
    ck_assert_int_eq(tu_put_int(b, "c", "d9", "age", 79), CRDT_OK);
    ck_assert_int_eq(migrate(a, LENS), CRDT_OK);
    each_call("rebasing merge", a, op_merge_from, b, NULL);
    ck_assert_int_eq(epoch_quarantine_count(&q, a), CRDT_OK);
    ck_assert_uint_eq(q, 1);
    ck_assert_int_eq(tu_reset_from(b, a), CRDT_OK);
    tu_assert_converged(a, b);
}
END_TEST

START_TEST(test_quarantine_fails_at_every_lmdb_call)
{
    int listed = 0;
    uint64_t q = 0;

    fill(a, "d", 3);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    ck_assert_int_eq(tu_put_int(b, "c", "d1", "gone", 78), CRDT_OK);
    ck_assert_int_eq(tu_put_int(b, "c", "d2", "gone", 79), CRDT_OK);
    ck_assert_int_eq(migrate(a, LENS), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(a, b), CRDT_OK);
    ck_assert_int_eq(epoch_quarantine_count(&q, a), CRDT_OK);
    ck_assert_uint_eq(q, 2);
    each_call("quarantine list", a, tu_quarantine_listed, &listed, NULL);
    ck_assert_int_eq(listed, 2);
    each_call("quarantine apply", a, tu_quarantine_applied, NULL, NULL);
}
END_TEST

static int
op_marker_get(crdt_replica *r, void *arg)
{
    epoch_marker m;
    int rc = epoch_marker_get(&m, r);

    (void)arg;
    if (rc == CRDT_OK)
        epoch_marker_clear(&m);
    return rc;
}

static int
op_resume(crdt_replica *r, void *arg)
{
    (void)arg;
    return epoch_migration_resume(NULL, r, NULL, NULL);
}

static int
op_abort(crdt_replica *r, void *arg)
{
    (void)arg;
    return epoch_migration_abort(r);
}

/* Reading the marker, resuming the migration it records, and dropping
 * another one. A resume drops the old marker and runs the migration
 * afresh, and a migration that fails cleanly leaves no marker behind
 * (writers go on): a failed resume leaves the state and the epoch as
 * they were, with the marker or without it. */
START_TEST(test_interrupted_migration_fails_at_every_lmdb_call)
{
    char before[65], after[65];
    epoch_info e;
    long n;
    int done = 0;

    fill(a, "d", 6);
    tu_interrupted(a, LENS);
    each_call("marker", a, op_marker_get, NULL, NULL);
    tu_hash(before, a);
    mdbfault_spare_reads(1); /* as a migration: its second thread's */
    for (n = 1; n < CALLS_MAX && !done; n++) {
        if (op_marker_get(a, NULL) == CRDT_ENOTFOUND)
            tu_interrupted(a, LENS); /* the last try dropped it */
        mdbfault_arm(n);
        done = mdbfault_judge(op_resume(a, NULL), n, "resume");
        if (done)
            break;
        tu_hash(after, a);
        ck_assert_int_eq(epoch_current(&e, a), CRDT_OK);
        MDBFAULT_EXPECT(strcmp(after, before) == 0 && e.number == 0,
                        "resume: LMDB call %ld failed, the state moved", n);
        epoch_info_clear(&e);
    }
    mdbfault_spare_reads(0);
    ck_assert_int_eq(done, 1);
    mdbfault_reach("resume", n);
    ck_assert_int_eq(epoch_current(&e, a), CRDT_OK);
    ck_assert_uint_eq(e.number, 1);
    epoch_info_clear(&e);
    ck_assert_int_eq(op_marker_get(a, NULL), CRDT_ENOTFOUND);
    tu_interrupted(a, "");
    each_call("abort", a, op_abort, NULL, NULL);
    ck_assert_int_eq(op_marker_get(a, NULL), CRDT_ENOTFOUND);
    ck_assert_int_eq(tu_put_int(a, "c", "d1", "title", 9), CRDT_OK);
}
END_TEST

/* ---- the archive kept, pruned and exported; a lens's kept defaults -- */

/* Archive entries of @p r under epoch @p number. */
static uint64_t
archived(crdt_replica *r, uint64_t number)
{
    crdt_raw *t;
    crdt_raw_cursor *c;
    const void *k, *v;
    size_t kl, vl;
    uint64_t n = 0;
    int rc;

    ck_assert_int_eq(crdt_raw_begin(&t, r, 0), CRDT_OK);
    ck_assert_int_eq(crdt_raw_cursor_open(&c, t, CRDT_DB_ARCHIVE), CRDT_OK);
    for (rc = crdt_raw_cursor_seek(c, NULL, 0, &k, &kl, &v, &vl);
         rc == CRDT_OK; rc = crdt_raw_cursor_next(c, &k, &kl, &v, &vl)) {
        const unsigned char *kb = k;
        uint64_t e = 0;
        for (int i = 0; i < 8 && kl >= 8; i++)
            e = e << 8 | kb[i];
        n += kl >= 8 && e == number;
    }
    ck_assert_int_eq(rc, CRDT_ENOTFOUND);
    crdt_raw_cursor_close(c);
    crdt_raw_abort(t);
    return n;
}

static int
op_compact_keeping_two(crdt_replica *r, void *unused)
{
    epoch_builder *bl;
    int rc;

    (void)unused;
    if ((rc = epoch_builder_new(&bl, r)) == CRDT_OK) {
        epoch_builder_set_retention(bl, 2);
        rc = epoch_builder_commit(NULL, bl);
        epoch_builder_free(bl);
    }
    return rc;
}

/* What a sync giver sends of an old epoch's cut: the archived changes
 * of epoch 1 up to the vv in arg->upto; arg->n counts them. */
typedef struct {
    const crdt_vv *upto;
    size_t n;
} archive_export;

static int
op_export_archive(crdt_replica *r, void *arg)
{
    archive_export *x = arg;
    const unsigned char *buf;
    crdt_export *e;
    size_t len;
    int rc;

    x->n = 0;
    if ((rc = crdt_export_begin_archive(&e, r, 1, NULL, x->upto)) < 0)
        return rc;
    while ((rc = crdt_export_next(e, &buf, &len)) == CRDT_OK)
        x->n++;
    crdt_export_end(e);
    return rc == CRDT_ENOTFOUND ? CRDT_OK : rc;
}

/* A document born after the lens that gave its collection defaults. */
static int
op_put_newborn(crdt_replica *r, void *unused)
{
    crdt_value v = crdt_value_int(9);
    crdt_txn *t;
    int rc;

    (void)unused;
    if ((rc = crdt_txn_begin(&t, r)) < 0)
        return rc;
    if ((rc = crdt_txn_put(t, "c", "d9", "v", &v)) < 0) {
        crdt_txn_abort(t);
        return rc;
    }
    return crdt_txn_commit(t, NULL);
}

/* The default a document born before the lens shows; arg gets it. */
static int
op_read_default(crdt_replica *r, void *arg)
{
    char *got = arg;
    crdt_read *rd;
    crdt_field f;
    int rc;

    got[0] = 0;
    if ((rc = crdt_read_begin(&rd, r)) < 0)
        return rc;
    rc = crdt_read_field(&f, rd, "c", "d0", "note");
    if (rc == CRDT_OK && f.kind == CRDT_FIELD_REGISTER &&
        f.value.type == CRDT_VSTRING)
        snprintf(got, 16, "%.*s", (int)f.value.u.s.len, f.value.u.s.ptr);
    crdt_read_end(rd);
    return rc;
}

/* Epoch 1 through a lens that adds a field with a default, epoch 2 a
 * compaction, and then a compaction that keeps two epochs' archives:
 * epoch 0's archived log is pruned. Then the export of epoch 1's
 * archive, a document born in the collection that keeps the defaults
 * (marked so that it does not show them), and a default read. */
START_TEST(test_archive_and_defaults_fail_at_every_lmdb_call)
{
    archive_export x = { NULL, 0 };
    crdt_read *rd;
    crdt_vv *upto = NULL;
    char got[16];

    ck_assert_int_eq(tu_put_int(a, "c", "d0", "v", 0), CRDT_OK);
    ck_assert_int_eq(tu_put_int(a, "c", "d1", "v", 1), CRDT_OK);
    tu_migrate(a, "collection c 1 -> 2\nadd note string default \"-\"\n",
               NULL);
    ck_assert_int_eq(tu_put_int(a, "c", "d2", "v", 2), CRDT_OK);
    ck_assert_int_eq(crdt_read_begin(&rd, a), CRDT_OK);
    ck_assert_int_eq(crdt_read_vv(&upto, rd), CRDT_OK);
    crdt_read_end(rd);
    tu_migrate(a, NULL, NULL);
    ck_assert_int_eq(tu_put_int(a, "c", "d3", "v", 3), CRDT_OK);
    ck_assert_uint_eq(archived(a, 0), 2);
    ck_assert_uint_eq(archived(a, 1), 1);
    mdbfault_spare_reads(1); /* as a migration: its second thread's */
    each_call("pruning compaction", a, op_compact_keeping_two, NULL, NULL);
    mdbfault_spare_reads(0);
    ck_assert_uint_eq(archived(a, 0), 0);
    ck_assert_uint_eq(archived(a, 1), 1);
    ck_assert_uint_eq(archived(a, 2), 1);

    x.upto = upto;
    each_call("archive export", a, op_export_archive, &x, NULL);
    ck_assert_uint_eq(x.n, 1); /* d2's change */
    crdt_vv_free(upto);

    each_call("newborn document", a, op_put_newborn, NULL, NULL);
    tu_field_str(got, sizeof got, a, "c", "d9", "note");
    ck_assert_str_eq(got, ""); /* born after the defaults */
    tu_field_str(got, sizeof got, a, "c", "d9", "v");
    ck_assert_str_eq(got, "9");
    each_call("default read", a, op_read_default, got, NULL);
    ck_assert_str_eq(got, "-");
}
END_TEST

static int
op_reset_with_log(crdt_replica *stale, void *fresh)
{
    return tu_reset_with_log_answered(stale, fresh, NULL, 0);
}

/* A copy of an insert and its original, both in the log a reset
 * replays (tu_copy_and_original()): the copy waits, the original takes
 * it away; "hey" once. */
START_TEST(test_copy_and_original_replay_fails_at_every_lmdb_call)
{
    crdt_replica *stale, *fresh;
    char got[16];

    tu_copy_and_original(a, b, &stale, &fresh);
    each_call("records", stale, tu_store_records_answered, fresh, NULL);
    each_call("reset replaying a copy and its original", stale,
              op_reset_with_log, fresh, tu_at_epoch_of);
    tu_field_str(got, sizeof got, stale, "c", "d", "t");
    ck_assert_str_eq(got, "\"hey\"");
    ck_assert_int_eq(tu_sync_one_way(fresh, stale), CRDT_OK);
    tu_assert_converged(a, b);
}
END_TEST

static int
put_entry(const void *k, size_t kl, const void *v, size_t vl, void *rs)
{
    return epoch_reset_put(rs, k, kl, v, vl);
}

/* A reset to arg->fresh's snapshot with arg->change staged. */
typedef struct {
    crdt_replica *fresh;
    const crdt_bytes *change;
} staged_reset;

static int
op_reset_staging(crdt_replica *stale, void *arg)
{
    const staged_reset *x = arg;
    unsigned char id[32], hash[32];
    epoch_reset *rs;
    epoch_info e;
    int rc;

    if ((rc = epoch_current(&e, x->fresh)) < 0)
        return rc;
    rc = epoch_reset_begin(&rs, stale, e.id, NULL);
    epoch_info_clear(&e);
    if (rc < 0)
        return rc;
    rc = epoch_snapshot_walk(x->fresh, id, hash, put_entry, rs);
    if (rc == CRDT_OK)
        rc = epoch_reset_change(rs, x->change->data, x->change->len);
    if (rc < 0) {
        epoch_reset_abort(rs);
        return rc;
    }
    return epoch_reset_commit(NULL, rs, hash);
}

static int
staged_reset_committed(crdt_replica *stale, void *arg)
{
    return tu_at_epoch_of(stale, ((staged_reset *)arg)->fresh);
}

/* A copy of a third replica c wrote another version of c's seq 2; a
 * folded c's own into a compaction. b's reset to a's epoch is handed the
 * copy's version along with the snapshot (a sender that holds it in its
 * log): the replay finds the snapshot's head another change for that
 * seq and keeps the staged one in the quarantine as an equivocation. */
START_TEST(test_equivocation_replay_fails_at_every_lmdb_call)
{
    unsigned char space[16];
    char dc[256], dcopy[256], got[16];
    crdt_replica *c, *copy;
    staged_reset x = { NULL, NULL };
    tu_batch forked;

    crdt_replica_space_id(a, space);
    c = tu_create(dc, sizeof dc, space);
    ck_assert_int_eq(epoch_attach(c), CRDT_OK);
    ck_assert_int_eq(tu_put_int(c, "c", "base", "v", 1), CRDT_OK);
    crdt_replica_close(c);
    tu_copy_dir(dc, dcopy, sizeof dcopy);
    c = tu_open_dir(dc);
    copy = tu_open_dir(dcopy);
    ck_assert_int_eq(tu_put_int(c, "c", "orig", "v", 2), CRDT_OK);
    ck_assert_int_eq(tu_put_int(copy, "c", "copy0", "v", 3), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(a, c), CRDT_OK);
    forked = tu_export_all(copy);
    ck_assert_uint_eq(forked.n, 2);
    crdt_replica_close(c);
    crdt_replica_close(copy);
    test_rmtree(dc);
    test_rmtree(dcopy);
    tu_migrate(a, NULL, NULL);

    x.fresh = a;
    x.change = &forked.v[1]; /* the copy's seq 2 */
    each_call("records", b, tu_store_records_answered, a, NULL);
    each_call("reset staging a copy's change", b, op_reset_staging, &x,
              staged_reset_committed);
    tu_batch_free(&forked);
    ck_assert_uint_eq(tu_quarantine_count(b), 1);
    tu_field_str(got, sizeof got, b, "c", "orig", "v");
    ck_assert_str_eq(got, "2");
    tu_field_str(got, sizeof got, b, "c", "copy0", "v");
    ck_assert_str_eq(got, "");
    tu_assert_converged(a, b);
}
END_TEST

/* ---- the map full at every write, grown by another process ---------- */

/* A stale replica's whole reset: the records, then the reset. */
static int
op_store_and_reset(crdt_replica *stale, void *arg)
{
    int rc = tu_store_records_answered(stale, arg);

    return rc < 0 ? rc : tu_reset_answered(stale, arg);
}

/* At each write of a compaction (_i = 0), a lens migration (1), a
 * stale replica's reset (2), a rebasing merge (3) and the quarantine's
 * re-application (4), the map is full: the public call grows it and
 * does the work again, CRDT_OK, with what a run that never met a full
 * map leaves: byte for byte (the reset and the merge), the same state
 * (a migration's record holds its time; the quarantine's re-applied
 * ops are a new local change, stamped by the clock). The replica
 * written is a byte copy each time: of a (0, 1, 3, 4), or of the stale
 * b (2). _i = 5 to 9: the same operations, with MDB_MAP_RESIZED at each
 * txn's begin in turn (another process grew the map; a migration's
 * second thread begins its read txn while the first holds the write
 * txn): the size is adopted and the txn begun again. */
START_TEST(test_map_full_or_resized_is_absorbed)
{
    int resized = _i >= 5;
    static const char *const what[] = { "compaction", "lens migration",
                                        "reset", "rebasing merge",
                                        "quarantine apply" };
    int (*const ops[])(crdt_replica *, void *) = {
        op_migrate, op_migrate, op_store_and_reset, op_merge_from,
        tu_quarantine_applied
    };
    static const int same[] = { MDBFAULT_SAME_STATE, MDBFAULT_SAME_STATE,
                                MDBFAULT_SAME_BYTES, MDBFAULT_SAME_BYTES, 0 };
    int k = _i % 5;
    crdt_replica **written = k == 2 ? &b : &a;
    void *arg = NULL;

    fill(a, "d", 8);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    /* b writes against version 1: one op the lens renames, one whose
     * field it removes (quarantined) */
    ck_assert_int_eq(tu_put_int(b, "c", "d1", "name", 77), CRDT_OK);
    ck_assert_int_eq(tu_put_int(b, "c", "d2", "gone", 78), CRDT_OK);
    if (k == 1)
        arg = LENS;
    if (k >= 2) {
        ck_assert_int_eq(migrate(a, LENS), CRDT_OK);
        ck_assert_int_eq(tu_put_int(a, "c", "d3", "title", 79), CRDT_OK);
        arg = k == 2 ? (void *)a : (void *)b;
    }
    if (k == 4)
        ck_assert_int_eq(tu_sync_one_way(a, b), CRDT_OK);
    crdt_replica_close(*written);
    ck_assert_int_gt(mdbfault_each_absorbed(
                         what[k], k == 2 ? db : da,
                         resized ? MDB_MAP_RESIZED : MDB_MAP_FULL,
                         resized ? MDBFAULT_BEGINS : MDBFAULT_WRITES, ops[k],
                         arg, same[k], CALLS_MAX),
                     resized ? 0 : 3);
    *written = tu_open_dir(k == 2 ? db : da);
}
END_TEST

Suite *
test_suite(void)
{
    Suite *s = suite_create("epoch_mdb_faults");
    TCase *tc = tcase_create("epoch_mdb_faults");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, test_migration_fails_at_every_lmdb_call, 0, 2);
    tcase_add_test(tc, test_reset_fails_at_every_lmdb_call);
    tcase_add_test(tc, test_rebasing_merge_fails_at_every_lmdb_call);
    tcase_add_test(tc, test_quarantine_fails_at_every_lmdb_call);
    tcase_add_test(tc, test_interrupted_migration_fails_at_every_lmdb_call);
    tcase_add_loop_test(tc, test_map_full_or_resized_is_absorbed, 0, 10);
    suite_add_tcase(s, tc);

    tc = tcase_create("side_roads");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_archive_and_defaults_fail_at_every_lmdb_call);
    tcase_add_test(tc, test_copy_and_original_replay_fails_at_every_lmdb_call);
    tcase_add_test(tc, test_equivocation_replay_fails_at_every_lmdb_call);
    suite_add_tcase(s, tc);
    return s;
}
