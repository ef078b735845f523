/*
 * test_epoch_edges.c: the answers of libepoch at its edges: bad
 * arguments, the marker of an interrupted migration damaged or of a kind
 * that cannot resume, ops that a custom migration or a lens chain blocks
 * or changes on their way up, copies whose original an epoch folded or
 * not, and quarantine entries of every op kind listed, filtered and
 * re-applied.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crdt/crdt.h"
#include "crdt/raw.h"
#include "crdt/text.h"
#include "epoch/epoch.h"
#include "support/epoch_util.h"
#include "support/replica_util.h"
#include "support/support.h"

extern int epoch__marker_put(crdt_raw *, uint64_t, const char *,
                             const char *);

/* a and b: a fresh attached pair of one space for each test */
TU_PAIR_FIXTURE(tu_pair_open)

static int
count_cb(const epoch_quarantined *q, void *ctx)
{
    (void)q;
    (*(int *)ctx)++;
    return 0;
}

/* ---- bad arguments ---- */

START_TEST(test_null_arguments_are_refused)
{
    epoch_marker m;
    uint64_t n = 7, applied = 7, kept = 7;
    crdt_actor actor = crdt_replica_actor(a);
    int seen = 0;

    ck_assert_int_eq(epoch_attach(NULL), CRDT_EINVAL);
    epoch_detach(NULL); /* a no-op */
    ck_assert_int_eq(epoch_marker_get(NULL, a), CRDT_EINVAL);
    ck_assert_int_eq(epoch_marker_get(&m, NULL), CRDT_EINVAL);
    epoch_marker_clear(NULL);
    ck_assert_int_eq(epoch_quarantine_list(NULL, count_cb, &seen),
                     CRDT_EINVAL);
    ck_assert_int_eq(epoch_quarantine_list(a, NULL, NULL), CRDT_EINVAL);
    ck_assert_int_eq(epoch_quarantine_count(NULL, a), CRDT_EINVAL);
    ck_assert_int_eq(epoch_quarantine_count(&n, NULL), CRDT_EINVAL);
    ck_assert_int_eq(epoch_quarantine_unsynced(&n, NULL, NULL, 0, "x"),
                     CRDT_EINVAL);
    ck_assert_int_eq(epoch_quarantine_unsynced(&n, a, NULL, 0, NULL),
                     CRDT_EINVAL);
    ck_assert_int_eq(epoch_quarantine_apply(&applied, &kept, NULL),
                     CRDT_EINVAL);
    ck_assert_int_eq(epoch_quarantine_apply_lost(&applied, a, NULL),
                     CRDT_EINVAL);
    ck_assert_int_eq(epoch_quarantine_apply_lost(&applied, NULL, &actor),
                     CRDT_EINVAL);
    /* nothing was written on the way */
    ck_assert_uint_eq(n, 7);
    ck_assert_uint_eq(applied, 7);
    ck_assert_uint_eq(kept, 7);
    ck_assert_int_eq(seen, 0);
    ck_assert_int_eq(epoch_marker_get(&m, a), CRDT_ENOTFOUND);
    ck_assert_int_eq(epoch_migration_abort(a), CRDT_ENOTFOUND);
    ck_assert_int_eq(epoch_migration_resume(NULL, a, NULL, NULL),
                     CRDT_ENOTFOUND);
    /* an empty quarantine re-applies nothing and says so */
    ck_assert_int_eq(epoch_quarantine_apply(&applied, &kept, a), CRDT_OK);
    ck_assert_uint_eq(applied, 0);
    ck_assert_uint_eq(kept, 0);
    ck_assert_int_eq(epoch_quarantine_apply_lost(&applied, a, &actor),
                     CRDT_OK);
    ck_assert_uint_eq(applied, 0);
}
END_TEST

/* ---- the marker ---- */

static void
meta_put(crdt_replica *r, const char *key, const void *v, size_t vl)
{
    crdt_raw *t;

    ck_assert_int_eq(crdt_raw_begin(&t, r, 1), CRDT_OK);
    ck_assert_int_eq(crdt_raw_put(t, CRDT_DB_META, key, strlen(key), v, vl),
                     CRDT_OK);
    ck_assert_int_eq(crdt_raw_commit(t), CRDT_OK);
}

static void
marker_put(crdt_replica *r, uint64_t target, const char *lens,
           const char *custom)
{
    crdt_raw *t;

    ck_assert_int_eq(crdt_raw_begin(&t, r, 1), CRDT_OK);
    ck_assert_int_eq(epoch__marker_put(t, target, lens, custom), CRDT_OK);
    ck_assert_int_eq(crdt_raw_commit(t), CRDT_OK);
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

/* Every way the marker's four items can be damaged is CRDT_ECORRUPT for
 * the reader and for resume, which then changes nothing; abort still
 * drops it, and the writers go on. */
START_TEST(test_damaged_marker_is_corrupt_and_can_be_aborted)
{
    static const struct {
        const char *bytes;
        size_t len;
    } bad[] = {
        { "\xc0", 1 },                         /* not an array */
        { "\x93\x01\x02\xa0", 4 },             /* three items */
        { "\x94\xa1x\x02\xa0\xa0", 6 },        /* target not a uint */
        { "\x94\x01\xa0\xa0\xa0", 5 },         /* started not a uint */
        { "\x94\x01\x02\x03\xa0", 5 },         /* lens not a string */
        { "\x94\x01\x02\xa0\x03", 5 },         /* custom not a string */
        { "\x94\x01\x02\xa5" "ab", 6 },        /* lens cut short */
    };
    char buf[64];
    epoch_marker m;
    epoch_info e;

    ck_assert_int_eq(tu_put_int(a, "c", "d", "f", 1), CRDT_OK);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&m, 0xab, sizeof m);
        meta_put(a, "upgrade", bad[i].bytes, bad[i].len);
        ck_assert_msg(epoch_marker_get(&m, a) == CRDT_ECORRUPT, "case %zu",
                      i);
        /* nothing half-decoded is handed out */
        ck_assert_ptr_null(m.lens);
        ck_assert_ptr_null(m.custom);
        ck_assert_int_eq(epoch_migration_resume(&e, a, NULL, NULL),
                         CRDT_ECORRUPT);
        ck_assert_uint_eq(epoch_number(a), 0);
        ck_assert_int_eq(epoch_migration_abort(a), CRDT_OK);
        ck_assert_int_eq(epoch_marker_get(&m, a), CRDT_ENOTFOUND);
    }
    ck_assert_int_eq(tu_put_int(a, "c", "d", "f", 2), CRDT_OK);
    tu_field_str(buf, sizeof buf, a, "c", "d", "f");
    ck_assert_str_eq(buf, "2");
}
END_TEST

/* A custom migration is code: resume cannot re-run it (CRDT_EVERSION)
 * and leaves the marker, writers stay busy until it is aborted. */
START_TEST(test_custom_marker_does_not_resume)
{
    epoch_marker m;
    epoch_info e;
    crdt_txn *t;

    marker_put(a, 1, "", "add-migrated");
    ck_assert_int_eq(epoch_marker_get(&m, a), CRDT_OK);
    ck_assert_str_eq(m.custom, "add-migrated");
    ck_assert_str_eq(m.lens, "");
    epoch_marker_clear(&m);
    ck_assert_ptr_null(m.custom);
    ck_assert_int_eq(epoch_migration_resume(&e, a, NULL, NULL),
                     CRDT_EVERSION);
    ck_assert_int_eq(epoch_marker_get(&m, a), CRDT_OK);
    epoch_marker_clear(&m);
    ck_assert_int_eq(crdt_txn_begin(&t, a), CRDT_EBUSY);
    ck_assert_int_eq(epoch_migration_abort(a), CRDT_OK);
    ck_assert_int_eq(epoch_migration_abort(a), CRDT_ENOTFOUND);
    ck_assert_int_eq(tu_put_int(a, "c", "d", "f", 1), CRDT_OK);
    ck_assert_uint_eq(epoch_number(a), 0);
}
END_TEST

/* A lens text in the marker that does not parse is damage: resume says
 * CRDT_ECORRUPT and leaves the marker for an abort. */
START_TEST(test_marker_with_a_broken_lens_is_corrupt)
{
    epoch_marker m;
    epoch_info e;

    marker_put(a, 1, "collection c 1 -> \nrename\n", "");
    ck_assert_int_eq(epoch_marker_get(&m, a), CRDT_OK);
    epoch_marker_clear(&m);
    ck_assert_int_eq(epoch_migration_resume(&e, a, NULL, NULL),
                     CRDT_ECORRUPT);
    ck_assert_int_eq(epoch_marker_get(&m, a), CRDT_OK);
    epoch_marker_clear(&m);
    ck_assert_uint_eq(epoch_number(a), 0);
    ck_assert_int_eq(epoch_migration_abort(a), CRDT_OK);
}
END_TEST

/* A compaction's marker (no lens) resumes as a compaction; the number it
 * recorded is not trusted: the new epoch is the one after the current. */
START_TEST(test_compaction_marker_resumes_as_the_next_epoch)
{
    char h1[65], h2[65];
    epoch_marker m;
    epoch_info e;

    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(tu_put_int(a, "c", "d", "f", i), CRDT_OK);
    tu_hash(h1, a);
    marker_put(a, 9, "", "");
    ck_assert_int_eq(epoch_migration_resume(&e, a, NULL, NULL), CRDT_OK);
    ck_assert_uint_eq(e.number, 1);
    ck_assert_str_eq(e.lens, "");
    ck_assert_str_eq(e.custom, "");
    epoch_info_clear(&e);
    tu_hash(h2, a);
    ck_assert_str_eq(h1, h2);
    ck_assert_uint_eq(tu_stats(a).ops_in_log, 0);
    ck_assert_int_eq(epoch_marker_get(&m, a), CRDT_ENOTFOUND);
}
END_TEST

/* A recorded lens that no longer fits the schema (its `from` version is
 * not the replica's) fails the resume with the builder's CRDT_EINVAL: the
 * stale marker is gone, the epoch and the state are as they were. */
START_TEST(test_marker_lens_that_does_not_fit_is_refused)
{
    char buf[64];
    epoch_marker m;
    epoch_info e;

    ck_assert_int_eq(tu_put_int(a, "c", "d", "name", 1), CRDT_OK);
    marker_put(a, 1, "collection c 2 -> 3\nrename name -> title\n", "");
    ck_assert_int_eq(epoch_migration_resume(&e, a, NULL, NULL), CRDT_EINVAL);
    ck_assert_int_eq(epoch_marker_get(&m, a), CRDT_ENOTFOUND);
    ck_assert_uint_eq(epoch_number(a), 0);
    tu_field_str(buf, sizeof buf, a, "c", "d", "name");
    ck_assert_str_eq(buf, "1");
}
END_TEST

/* ---- rebasing ---- */

static int
add_flag(epoch_doc *doc, const char *coll, const char *id, void *ctx)
{
    crdt_value v = crdt_value_int(1);

    (void)coll;
    (void)id;
    (void)ctx;
    return epoch_doc_set_register(doc, "flag", &v);
}

typedef struct {
    int n;
    int kind;
    char reason[128];
    unsigned char epoch_id[EPOCH_ID_BYTES];
} first_entry;

static int
first_cb(const epoch_quarantined *q, void *ctx)
{
    first_entry *f = ctx;

    if (f->n++ == 0) {
        f->kind = q->kind;
        snprintf(f->reason, sizeof f->reason, "%s", q->reason);
        memcpy(f->epoch_id, q->epoch_id, EPOCH_ID_BYTES);
    }
    return 0;
}

/* Ops written before a custom migration cannot be carried over it: a
 * replica past it quarantines each (kind 'r', with the reason and the
 * epoch they were written in), in the first merge and in a later one. */
START_TEST(test_custom_migration_blocks_old_ops)
{
    epoch_builder *bl;
    epoch_info g, e;
    first_entry f;
    crdt_merge_report rep;
    tu_batch x;
    char buf[64];
    uint64_t n = 0;

    ck_assert_int_eq(tu_put_int(a, "c", "d", "x", 1), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    ck_assert_int_eq(epoch_current(&g, b), CRDT_OK);
    ck_assert_int_eq(tu_put_int(b, "c", "d", "x", 2), CRDT_OK);
    ck_assert_int_eq(epoch_builder_new(&bl, a), CRDT_OK);
    ck_assert_int_eq(epoch_builder_set_custom(bl, "flag", "c", 2, add_flag,
                                              NULL), CRDT_OK);
    ck_assert_int_eq(epoch_builder_commit(&e, bl), CRDT_OK);
    epoch_builder_free(bl);
    ck_assert_int_eq(tu_sync_one_way(a, b), CRDT_OK);
    ck_assert_int_eq(epoch_quarantine_count(&n, a), CRDT_OK);
    ck_assert_uint_eq(n, 1);
    memset(&f, 0, sizeof f);
    ck_assert_int_eq(epoch_quarantine_list(a, first_cb, &f), CRDT_OK);
    ck_assert_int_eq(f.n, 1);
    ck_assert_int_eq(f.kind, CRDT_QK_REBASE);
    ck_assert_str_eq(f.reason, "a custom migration is in the way");
    ck_assert_mem_eq(f.epoch_id, g.id, EPOCH_ID_BYTES);
    tu_field_str(buf, sizeof buf, a, "c", "d", "x");
    ck_assert_str_eq(buf, "1");
    /* the next change of the same old epoch takes the same path */
    ck_assert_int_eq(tu_put_int(b, "c", "d", "y", 3), CRDT_OK);
    x = tu_export_beyond(b, a);
    ck_assert_uint_eq(x.n, 1);
    ck_assert_int_eq(crdt_merge(&rep, a, x.v, x.n), CRDT_OK);
    ck_assert_uint_eq(rep.quarantined_ops, 1);
    tu_batch_free(&x);
    ck_assert_int_eq(epoch_quarantine_count(&n, a), CRDT_OK);
    ck_assert_uint_eq(n, 2);
    tu_field_str(buf, sizeof buf, a, "c", "d", "y");
    ck_assert_str_eq(buf, "");
    epoch_info_clear(&g);
    epoch_info_clear(&e);
}
END_TEST

/* The path of an old epoch is kept between merges, and rebuilt when the
 * replica itself moved to a new epoch since: a later change of the same
 * old epoch goes through the newer lens as well. */
START_TEST(test_rebase_path_follows_a_new_local_epoch)
{
    char buf[64];
    epoch_info e;

    ck_assert_int_eq(tu_put_int(a, "c", "d", "name", 1), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    tu_migrate(a, "collection c 1 -> 2\nrename name -> full\n", &e);
    epoch_info_clear(&e);
    ck_assert_int_eq(tu_put_int(b, "c", "p1", "name", 2), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(a, b), CRDT_OK);
    tu_field_str(buf, sizeof buf, a, "c", "p1", "full");
    ck_assert_str_eq(buf, "2");
    tu_migrate(a, "collection c 2 -> 3\nrename full -> title\n", &e);
    epoch_info_clear(&e);
    ck_assert_int_eq(tu_put_int(b, "c", "p2", "name", 3), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(a, b), CRDT_OK);
    tu_field_str(buf, sizeof buf, a, "c", "p2", "title");
    ck_assert_str_eq(buf, "3");
    tu_field_str(buf, sizeof buf, a, "c", "p2", "full");
    ck_assert_str_eq(buf, "");
    tu_field_str(buf, sizeof buf, a, "c", "p1", "title");
    ck_assert_str_eq(buf, "2");
}
END_TEST

/* A value a convert step cannot convert becomes null on its way up, for
 * a put and for set ops, exactly as the migrated documents have it. */
START_TEST(test_unconvertible_values_become_null)
{
    char buf[64];
    crdt_value s;
    crdt_txn *t;
    epoch_info e;
    crdt_read *rd;
    crdt_field f;

    ck_assert_int_eq(crdt_txn_begin(&t, a), CRDT_OK);
    s = crdt_value_str("7", 1);
    ck_assert_int_eq(crdt_txn_put(t, "c", "d", "age", &s), CRDT_OK);
    ck_assert_int_eq(crdt_txn_sadd(t, "c", "d", "tags", &s), CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    ck_assert_int_eq(crdt_txn_begin(&t, b), CRDT_OK);
    s = crdt_value_str("old", 3);
    ck_assert_int_eq(crdt_txn_put(t, "c", "p", "age", &s), CRDT_OK);
    ck_assert_int_eq(crdt_txn_sadd(t, "c", "p", "tags", &s), CRDT_OK);
    s = crdt_value_str("seven", 5);
    ck_assert_int_eq(crdt_txn_srem(t, "c", "d", "tags", &s), CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    tu_migrate(a, "collection c 1 -> 2\nconvert age string -> int\n"
                  "convert tags string -> int\n", &e);
    epoch_info_clear(&e);
    tu_field_str(buf, sizeof buf, a, "c", "d", "age");
    ck_assert_str_eq(buf, "7");
    ck_assert_int_eq(tu_sync_one_way(a, b), CRDT_OK);
    ck_assert_uint_eq(tu_quarantine_count(a), 0);
    tu_field_str(buf, sizeof buf, a, "c", "p", "age");
    ck_assert_str_eq(buf, "null");
    ck_assert_int_eq(crdt_read_begin(&rd, a), CRDT_OK);
    ck_assert_int_eq(crdt_read_field(&f, rd, "c", "p", "tags"), CRDT_OK);
    ck_assert_int_eq(f.kind, CRDT_FIELD_SET);
    ck_assert_uint_eq(f.n_elems, 1);
    ck_assert_int_eq(f.elems[0].type, CRDT_VNULL);
    crdt_read_end(rd);
    tu_field_str(buf, sizeof buf, a, "c", "d", "tags");
    ck_assert_str_eq(buf, "[7]");
}
END_TEST

/* A document only old ops bring gets the defaults of every step on the
 * path, carried by the later steps (renamed, converted, or not at all
 * when a later step removes the field), as a migrated document has them. */
START_TEST(test_defaults_are_carried_through_later_steps)
{
    char buf[64];
    epoch_info e;

    ck_assert_int_eq(tu_put_int(a, "c", "d", "x", 1), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    ck_assert_int_eq(tu_put_int(b, "c", "p", "x", 2), CRDT_OK);
    tu_migrate(a, "collection c 1 -> 2\nadd note string default \"n\"\n"
                  "add num int default 5\nadd tmp int default 1\n", &e);
    epoch_info_clear(&e);
    tu_migrate(a, "collection c 2 -> 3\nrename note -> memo\n"
                  "convert num int -> string\nremove tmp\n", &e);
    epoch_info_clear(&e);
    ck_assert_int_eq(tu_sync_one_way(a, b), CRDT_OK);
    ck_assert_uint_eq(tu_quarantine_count(a), 0);
    static const char *docs[] = { "d", "p" };
    for (int i = 0; i < 2; i++) {
        tu_field_str(buf, sizeof buf, a, "c", docs[i], "memo");
        ck_assert_str_eq(buf, "\"n\"");
        tu_field_str(buf, sizeof buf, a, "c", docs[i], "num");
        ck_assert_str_eq(buf, "\"5\"");
        tu_field_str(buf, sizeof buf, a, "c", docs[i], "note");
        ck_assert_str_eq(buf, "");
        tu_field_str(buf, sizeof buf, a, "c", docs[i], "tmp");
        ck_assert_str_eq(buf, "");
    }
    tu_field_str(buf, sizeof buf, a, "c", "p", "x");
    ck_assert_str_eq(buf, "2");
}
END_TEST

/* Deletes written before a lens carry what they observed through it: a
 * renamed field's part under its new name, a removed field's part
 * dropped, a converted set's elements converted. On a replica past the
 * lens the deletes still delete what they saw. */
START_TEST(test_deletes_carry_what_they_observed)
{
    char buf[64];
    crdt_value v;
    crdt_txn *t;
    epoch_info e;

    ck_assert_int_eq(crdt_txn_begin(&t, a), CRDT_OK);
    v = crdt_value_int(1);
    ck_assert_int_eq(crdt_txn_put(t, "c", "d", "keep", &v), CRDT_OK);
    ck_assert_int_eq(crdt_txn_put(t, "c", "d", "old", &v), CRDT_OK);
    ck_assert_int_eq(crdt_txn_put(t, "c", "d", "gone", &v), CRDT_OK);
    ck_assert_int_eq(crdt_txn_sadd(t, "c", "d", "tags", &v), CRDT_OK);
    ck_assert_int_eq(crdt_txn_sadd(t, "c", "d2", "tags", &v), CRDT_OK);
    v = crdt_value_int(2);
    ck_assert_int_eq(crdt_txn_sadd(t, "c", "d2", "tags", &v), CRDT_OK);
    ck_assert_int_eq(crdt_txn_incr(t, "c", "d2", "n", 3), CRDT_OK);
    ck_assert_int_eq(crdt_txn_sadd(t, "c", "d", "olds", &v), CRDT_OK);
    ck_assert_int_eq(crdt_txn_incr(t, "c", "d", "goner", 1), CRDT_OK);
    v = crdt_value_str("x", 1);
    ck_assert_int_eq(crdt_txn_sadd(t, "c", "d3", "words", &v), CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    ck_assert_int_eq(crdt_txn_begin(&t, b), CRDT_OK);
    ck_assert_int_eq(crdt_txn_del_field(t, "c", "d3", "words"), CRDT_OK);
    ck_assert_int_eq(crdt_txn_del_doc(t, "c", "d"), CRDT_OK);
    ck_assert_int_eq(crdt_txn_del_field(t, "c", "d2", "tags"), CRDT_OK);
    ck_assert_int_eq(crdt_txn_incr(t, "c", "d2", "n", 4), CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    tu_migrate(a, "collection c 1 -> 2\nrename old -> new\nremove gone\n"
                  "convert tags int -> string\nrename olds -> news\n"
                  "remove goner\nconvert words string -> int\n", &e);
    epoch_info_clear(&e);
    tu_field_str(buf, sizeof buf, a, "c", "d2", "tags");
    ck_assert_str_eq(buf, "[\"1\",\"2\"]");
    ck_assert_int_eq(tu_sync_one_way(a, b), CRDT_OK);
    ck_assert_uint_eq(tu_quarantine_count(a), 0);
    tu_field_str(buf, sizeof buf, a, "c", "d", "keep");
    ck_assert_str_eq(buf, "");
    tu_field_str(buf, sizeof buf, a, "c", "d", "new");
    ck_assert_str_eq(buf, "");
    tu_field_str(buf, sizeof buf, a, "c", "d", "news");
    ck_assert_str_eq(buf, "");
    tu_field_str(buf, sizeof buf, a, "c", "d3", "words");
    ck_assert_str_eq(buf, "");
    tu_field_str(buf, sizeof buf, a, "c", "d2", "tags");
    ck_assert_str_eq(buf, "");
    tu_field_str(buf, sizeof buf, a, "c", "d2", "n");
    ck_assert_str_eq(buf, "c7");
    ck_assert_int_eq(tu_reset_from(b, a), CRDT_OK);
    tu_assert_converged(a, b);
}
END_TEST

/* The hash of the last change @p r wrote itself. */
static void
last_change_hash(unsigned char *hash, crdt_replica *r)
{
    crdt_actor me = crdt_replica_actor(r);
    tu_batch x = tu_export_all(r);
    crdt_change ch;
    int found = 0;

    for (size_t i = 0; i < x.n; i++) {
        ck_assert_int_eq(crdt_change_decode(&ch, x.v[i].data, x.v[i].len),
                         CRDT_OK);
        if (memcmp(ch.actor.b, me.b, CRDT_ACTOR_BYTES) == 0) {
            memcpy(hash, ch.hash, CRDT_HASH_BYTES);
            found = 1;
        }
    }
    ck_assert(found);
    tu_batch_free(&x);
}

/* Copies (crdt_txn_copy_of()) written in an old epoch: a change whose
 * copies name the very change the current epoch's cut holds for their
 * actor has them skipped up to the cut, the state has them already;
 * copies of an actor the cut does not name, past the cut, or of a change
 * that names another change than the cut's apply as any op. */
START_TEST(test_copies_skip_only_what_the_epoch_folded)
{
    unsigned char hash[CRDT_HASH_BYTES], wrong[8];
    crdt_actor aa = crdt_replica_actor(a), ghost;
    crdt_value v;
    crdt_txn *t;
    epoch_info e;
    char buf[64];

    ck_assert_int_eq(tu_put_int(b, "c", "bd", "x", 1), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(a, b), CRDT_OK);
    ck_assert_int_eq(tu_put_int(a, "c", "d", "x", 1), CRDT_OK); /* a's 1 */
    last_change_hash(hash, a);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    memcpy(wrong, hash, 8);
    wrong[0] ^= 0xff;
    memset(&ghost, 0x5a, sizeof ghost);

    ck_assert_int_eq(crdt_txn_begin(&t, b), CRDT_OK);
    v = crdt_value_int(2);
    ck_assert_int_eq(crdt_txn_put(t, "c", "plain", "x", &v), CRDT_OK);
    v = crdt_value_int(60);
    /* an actor the cut does not name */
    ck_assert_int_eq(crdt_txn_copy_of(t, &ghost, 1, hash, 0), CRDT_OK);
    ck_assert_int_eq(crdt_txn_put(t, "c", "g", "x", &v), CRDT_OK);
    /* folded: skipped on a, twice from one change (the refs cached) */
    ck_assert_int_eq(crdt_txn_copy_of(t, &aa, 1, hash, 0), CRDT_OK);
    v = crdt_value_int(50);
    ck_assert_int_eq(crdt_txn_put(t, "c", "d", "x", &v), CRDT_OK);
    ck_assert_int_eq(crdt_txn_put(t, "c", "d", "y", &v), CRDT_OK);
    ck_assert_int_eq(crdt_txn_list_insert(t, "c", "d", "l", 0, &v), CRDT_OK);
    v = crdt_value_int(60);
    /* past the cut, naming the folded change and another one */
    ck_assert_int_eq(crdt_txn_copy_of(t, &aa, 9, hash, 0), CRDT_OK);
    ck_assert_int_eq(crdt_txn_put(t, "c", "s", "x", &v), CRDT_OK);
    ck_assert_int_eq(crdt_txn_copy_of(t, &aa, 9, wrong, 0), CRDT_OK);
    ck_assert_int_eq(crdt_txn_put(t, "c", "s", "y", &v), CRDT_OK);
    ck_assert_int_eq(crdt_txn_copy_of(t, NULL, 0, NULL, 0), CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    /* a change copying only from another change than the cut's */
    ck_assert_int_eq(crdt_txn_begin(&t, b), CRDT_OK);
    ck_assert_int_eq(crdt_txn_copy_of(t, &aa, 1, wrong, 0), CRDT_OK);
    ck_assert_int_eq(crdt_txn_put(t, "c", "w", "x", &v), CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);

    tu_migrate(a, NULL, &e); /* folds a's seq 1 and b's first */
    epoch_info_clear(&e);
    ck_assert_int_eq(tu_sync_one_way(a, b), CRDT_OK);
    ck_assert_uint_eq(tu_quarantine_count(a), 0);
    tu_field_str(buf, sizeof buf, a, "c", "d", "x");
    ck_assert_str_eq(buf, "1");
    tu_field_str(buf, sizeof buf, a, "c", "d", "y");
    ck_assert_str_eq(buf, "");
    tu_field_str(buf, sizeof buf, a, "c", "d", "l");
    ck_assert(strcmp(buf, "") == 0 || strcmp(buf, "[]") == 0);
    tu_field_str(buf, sizeof buf, a, "c", "plain", "x");
    ck_assert_str_eq(buf, "2");
    static const char *shown[][2] = {
        { "g", "x" }, { "s", "x" }, { "s", "y" }, { "w", "x" },
    };
    for (size_t i = 0; i < 4; i++) {
        tu_field_str(buf, sizeof buf, a, "c", shown[i][0], shown[i][1]);
        ck_assert_msg(strcmp(buf, "60") == 0, "%s/%s: %s", shown[i][0],
                      shown[i][1], buf);
    }
}
END_TEST

/* ---- the quarantine ---- */

typedef struct {
    int n;
    int kinds[16];
} kinds_seen;

static int
kinds_cb(const epoch_quarantined *q, void *ctx)
{
    kinds_seen *k = ctx;

    if (k->n < 16)
        k->kinds[k->n] = q->op.kind;
    k->n++;
    return 0;
}

/* Ops of every kind on a collection a lens dropped are quarantined, each
 * listed with its kind as written; re-applied, each is a new local write
 * in the current state, and one the state refuses stays held. */
START_TEST(test_every_op_kind_is_held_and_reapplied)
{
    static const int expect[] = {
        CRDT_OP_TDEL, CRDT_OP_PUT, CRDT_OP_INCR, CRDT_OP_SADD, CRDT_OP_SADD, CRDT_OP_SREM,
        CRDT_OP_TINS, CRDT_OP_TDEL, CRDT_OP_LINS, CRDT_OP_LINS, CRDT_OP_LSET,
        CRDT_OP_LDEL, CRDT_OP_DEL_FIELD, CRDT_OP_PUT, CRDT_OP_DEL_DOC,
    };
    uint64_t applied = 0, kept = 0;
    kinds_seen k;
    crdt_value v;
    crdt_txn *t;
    epoch_info e;
    char buf[64];

    ck_assert_int_eq(tu_put_int(a, "gone", "d", "f", 1), CRDT_OK);
    ck_assert_int_eq(crdt_txn_begin(&t, a), CRDT_OK);
    ck_assert_int_eq(crdt_txn_text_insert(t, "gone", "p", "u", 0, "abcdef",
                                          6), CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    ck_assert_int_eq(crdt_txn_begin(&t, b), CRDT_OK);
    ck_assert_int_eq(crdt_txn_text_delete(t, "gone", "p", "u", 4, 2),
                     CRDT_OK);
    v = crdt_value_int(5);
    ck_assert_int_eq(crdt_txn_put(t, "gone", "p", "r", &v), CRDT_OK);
    ck_assert_int_eq(crdt_txn_incr(t, "gone", "p", "n", 3), CRDT_OK);
    ck_assert_int_eq(crdt_txn_sadd(t, "gone", "p", "s", &v), CRDT_OK);
    v = crdt_value_int(6);
    ck_assert_int_eq(crdt_txn_sadd(t, "gone", "p", "s", &v), CRDT_OK);
    ck_assert_int_eq(crdt_txn_srem(t, "gone", "p", "s", &v), CRDT_OK);
    ck_assert_int_eq(crdt_txn_text_insert(t, "gone", "p", "t", 0, "abc", 3),
                     CRDT_OK);
    ck_assert_int_eq(crdt_txn_text_delete(t, "gone", "p", "t", 1, 1),
                     CRDT_OK);
    ck_assert_int_eq(crdt_txn_list_insert(t, "gone", "p", "l", 0, &v),
                     CRDT_OK);
    ck_assert_int_eq(crdt_txn_list_insert(t, "gone", "p", "l", 1, &v),
                     CRDT_OK);
    v = crdt_value_int(7);
    ck_assert_int_eq(crdt_txn_list_set(t, "gone", "p", "l", 0, &v), CRDT_OK);
    ck_assert_int_eq(crdt_txn_list_delete(t, "gone", "p", "l", 1, 1),
                     CRDT_OK);
    ck_assert_int_eq(crdt_txn_del_field(t, "gone", "p", "r"), CRDT_OK);
    ck_assert_int_eq(crdt_txn_put(t, "gone", "q", "r", &v), CRDT_OK);
    ck_assert_int_eq(crdt_txn_del_doc(t, "gone", "q"), CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);

    tu_migrate(a, "collection gone 1 -> 2\ndrop\n", &e);
    epoch_info_clear(&e);
    ck_assert_int_eq(tu_reset_from(b, a), CRDT_OK);
    memset(&k, 0, sizeof k);
    ck_assert_int_eq(epoch_quarantine_list(b, kinds_cb, &k), CRDT_OK);
    ck_assert_int_eq(k.n, 15);
    for (int i = 0; i < 15; i++)
        ck_assert_msg(k.kinds[i] == expect[i], "op %d: kind %d", i,
                      k.kinds[i]);
    tu_field_str(buf, sizeof buf, b, "gone", "p", "n");
    ck_assert_str_eq(buf, "");

    /* the state refuses two: a put onto what is now a counter, a text
     * delete past the end of what is now a shorter text */
    ck_assert_int_eq(crdt_txn_begin(&t, b), CRDT_OK);
    ck_assert_int_eq(crdt_txn_incr(t, "gone", "p", "r", 1), CRDT_OK);
    ck_assert_int_eq(crdt_txn_text_insert(t, "gone", "p", "u", 0, "ab", 2),
                     CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    ck_assert_int_eq(epoch_quarantine_apply(&applied, &kept, b), CRDT_OK);
    ck_assert_uint_eq(applied, 13);
    ck_assert_uint_eq(kept, 2);
    ck_assert_uint_eq(tu_quarantine_count(b), kept);
    tu_field_str(buf, sizeof buf, b, "gone", "p", "n");
    ck_assert_str_eq(buf, "c3");
    tu_field_str(buf, sizeof buf, b, "gone", "p", "s");
    ck_assert_str_eq(buf, "[5]");
    tu_field_str(buf, sizeof buf, b, "gone", "q", "r");
    ck_assert_str_eq(buf, "");
    /* the held delete of r went in after its refused put: the counter
     * written meanwhile is deleted */
    tu_field_str(buf, sizeof buf, b, "gone", "p", "r");
    ck_assert_str_eq(buf, "");
    tu_field_str(buf, sizeof buf, b, "gone", "p", "u");
    ck_assert_str_eq(buf, "\"ab\"");
}
END_TEST

/* A damaged quarantine record stops the listing with CRDT_ECORRUPT (the
 * records before it were shown), and with it the re-apply, which changes
 * nothing; the count still counts it. */
START_TEST(test_damaged_quarantine_entry_is_corrupt)
{
    unsigned char key[CRDT_QUARANTINE_KEY_BYTES];
    uint64_t applied = 9, n = 0;
    crdt_raw *t;
    int seen = 0;

    ck_assert_int_eq(tu_put_int(a, "c", "d", "keep", 1), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    ck_assert_int_eq(tu_put_int(b, "c", "d", "gone", 7), CRDT_OK);
    {
        epoch_info e;
        tu_migrate(a, "collection c 1 -> 2\nremove gone\n", &e);
        epoch_info_clear(&e);
    }
    ck_assert_int_eq(tu_reset_from(b, a), CRDT_OK);
    ck_assert_uint_eq(tu_quarantine_count(b), 1);
    memset(key, 0xff, sizeof key); /* sorts after every real actor */
    ck_assert_int_eq(crdt_raw_begin(&t, b, 1), CRDT_OK);
    ck_assert_int_eq(crdt_raw_put(t, CRDT_DB_QUARANTINE, key, sizeof key,
                                  "\xc1", 1), CRDT_OK);
    ck_assert_int_eq(crdt_raw_commit(t), CRDT_OK);
    ck_assert_int_eq(epoch_quarantine_list(b, count_cb, &seen),
                     CRDT_ECORRUPT);
    ck_assert_int_eq(seen, 1);
    ck_assert_int_eq(epoch_quarantine_count(&n, b), CRDT_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(epoch_quarantine_apply(&applied, NULL, b),
                     CRDT_ECORRUPT);
    ck_assert_uint_eq(applied, 9);
    ck_assert_uint_eq(tu_quarantine_count(b), 2);
}
END_TEST

static int
stop_cb(const epoch_quarantined *q, void *ctx)
{
    (void)q;
    (*(int *)ctx)++;
    return 42;
}

/* A callback's non-zero answer stops the listing and is returned. */
START_TEST(test_listing_stops_at_the_callbacks_answer)
{
    int seen = 0;
    uint64_t moved = 0;

    ck_assert_int_eq(tu_put_int(a, "c", "d", "x", 1), CRDT_OK);
    ck_assert_int_eq(tu_put_int(a, "c", "d", "y", 2), CRDT_OK);
    ck_assert_int_eq(epoch_quarantine_unsynced(&moved, a, NULL, 0, "why"),
                     CRDT_OK);
    ck_assert_uint_eq(moved, 2);
    ck_assert_int_eq(epoch_quarantine_list(a, stop_cb, &seen), 42);
    ck_assert_int_eq(seen, 1);
}
END_TEST

/* Damaged heads of the target: CRDT_EPROTO, the log and the quarantine
 * as they were. A target holding everything moves nothing. */
START_TEST(test_unsynced_with_damaged_heads_moves_nothing)
{
    uint64_t moved = 5;
    crdt_stats st;

    ck_assert_int_eq(tu_put_int(a, "c", "d", "x", 1), CRDT_OK);
    ck_assert_int_eq(epoch_quarantine_unsynced(&moved, a,
                                               (const unsigned char *)"\x91\x01",
                                               2, "why"),
                     CRDT_EPROTO);
    ck_assert_uint_eq(moved, 5);
    st = tu_stats(a);
    ck_assert_uint_eq(st.ops_in_log, 1);
    ck_assert_uint_eq(tu_quarantine_count(a), 0);
    ck_assert_int_eq(epoch_quarantine_unsynced(NULL, a, NULL, 0, "why"),
                     CRDT_OK);
    ck_assert_uint_eq(tu_quarantine_count(a), 1);
}
END_TEST

/* apply_lost re-applies only the losing ops of the actor it is given:
 * entries of another kind, or of another actor, stay. */
START_TEST(test_apply_lost_takes_only_its_actor)
{
    crdt_actor other;
    uint64_t applied = 9;

    ck_assert_int_eq(tu_put_int(a, "c", "d", "x", 1), CRDT_OK);
    ck_assert_int_eq(epoch_quarantine_unsynced(&applied, a, NULL, 0, "why"),
                     CRDT_OK);
    memset(&other, 0x11, sizeof other);
    applied = 9;
    ck_assert_int_eq(epoch_quarantine_apply_lost(&applied, a, &other),
                     CRDT_OK);
    ck_assert_uint_eq(applied, 0);
    ck_assert_uint_eq(tu_quarantine_count(a), 1);
}
END_TEST

/* Without the hook a replica cannot read another epoch's ops: the merge
 * fails with CRDT_ENOTFOUND and changes nothing; attached again, the
 * same changes are rebased. */
START_TEST(test_detached_replica_refuses_old_epoch_ops)
{
    char buf[64];
    epoch_info e;

    ck_assert_int_eq(tu_put_int(a, "c", "d", "name", 1), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    ck_assert_int_eq(tu_put_int(b, "c", "p", "name", 2), CRDT_OK);
    tu_migrate(a, "collection c 1 -> 2\nrename name -> title\n", &e);
    epoch_info_clear(&e);
    epoch_detach(a);
    ck_assert_int_eq(tu_sync_one_way(a, b), CRDT_ENOTFOUND);
    tu_field_str(buf, sizeof buf, a, "c", "p", "title");
    ck_assert_str_eq(buf, "");
    ck_assert_int_eq(epoch_attach(a), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(a, b), CRDT_OK);
    tu_field_str(buf, sizeof buf, a, "c", "p", "title");
    ck_assert_str_eq(buf, "2");
}
END_TEST

/* A copy written in a newer epoch, merged by a replica still at the
 * genesis (it holds the newer record): the genesis folds nothing, so the
 * copy applies, carried down through the lens. */
START_TEST(test_copy_into_the_genesis_applies)
{
    unsigned char hash[CRDT_HASH_BYTES];
    crdt_actor bb = crdt_replica_actor(b);
    const unsigned char *rec;
    size_t len;
    crdt_value v = crdt_value_int(8);
    crdt_txn *t;
    epoch_info e;
    char buf[64];

    ck_assert_int_eq(tu_put_int(b, "c", "d", "name", 1), CRDT_OK);
    last_change_hash(hash, b);
    ck_assert_int_eq(tu_sync_one_way(a, b), CRDT_OK);
    tu_migrate(a, "collection c 1 -> 2\nrename name -> title\n", &e);
    ck_assert_int_eq(crdt_txn_begin(&t, a), CRDT_OK);
    ck_assert_int_eq(crdt_txn_copy_of(t, &bb, 1, hash, 0), CRDT_OK);
    ck_assert_int_eq(crdt_txn_put(t, "c", "q", "title", &v), CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    rec = e.raw;
    len = e.raw_len;
    ck_assert_int_eq(epoch_store_records(b, &rec, &len, 1), CRDT_OK);
    epoch_info_clear(&e);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    ck_assert_uint_eq(epoch_number(b), 0);
    tu_field_str(buf, sizeof buf, b, "c", "q", "name");
    ck_assert_str_eq(buf, "8");
}
END_TEST

Suite *
test_suite(void)
{
    Suite *s = suite_create("epoch_edges");
    TCase *tc = tcase_create("edges");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_null_arguments_are_refused);
    tcase_add_test(tc, test_damaged_marker_is_corrupt_and_can_be_aborted);
    tcase_add_test(tc, test_custom_marker_does_not_resume);
    tcase_add_test(tc, test_marker_with_a_broken_lens_is_corrupt);
    tcase_add_test(tc, test_compaction_marker_resumes_as_the_next_epoch);
    tcase_add_test(tc, test_marker_lens_that_does_not_fit_is_refused);
    tcase_add_test(tc, test_custom_migration_blocks_old_ops);
    tcase_add_test(tc, test_rebase_path_follows_a_new_local_epoch);
    tcase_add_test(tc, test_unconvertible_values_become_null);
    tcase_add_test(tc, test_defaults_are_carried_through_later_steps);
    tcase_add_test(tc, test_deletes_carry_what_they_observed);
    tcase_add_test(tc, test_copies_skip_only_what_the_epoch_folded);
    tcase_add_test(tc, test_every_op_kind_is_held_and_reapplied);
    tcase_add_test(tc, test_damaged_quarantine_entry_is_corrupt);
    tcase_add_test(tc, test_listing_stops_at_the_callbacks_answer);
    tcase_add_test(tc, test_unsynced_with_damaged_heads_moves_nothing);
    tcase_add_test(tc, test_apply_lost_takes_only_its_actor);
    tcase_add_test(tc, test_detached_replica_refuses_old_epoch_ops);
    tcase_add_test(tc, test_copy_into_the_genesis_applies);
    suite_add_tcase(s, tc);
    return s;
}
