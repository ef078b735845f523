/*
 * test_seq_epoch.c: text and list fields across epochs: a stale
 * replica's sequence ops rebased through a rename, quarantined by a
 * remove, and placed after compactions; a custom migration keeps them;
 * every replica ends equal.
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

static char da[256], db[256];
static crdt_replica *a, *b;

static void
setup(void)
{
    tu_pair_open(&a, da, &b, db, sizeof da);
}

static void
teardown(void)
{
    tu_pair_close(a, da, b, db);
}


static void
ins(crdt_replica *r, const char *field, uint64_t pos, const char *s)
{
    crdt_txn *t;

    ck_assert_int_eq(crdt_txn_begin(&t, r), CRDT_OK);
    ck_assert_int_eq(crdt_txn_text_insert(t, "c", "d", field, pos, s,
                                          strlen(s)),
                     CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
}

static void
del(crdt_replica *r, const char *field, uint64_t pos, uint64_t len)
{
    crdt_txn *t;

    ck_assert_int_eq(crdt_txn_begin(&t, r), CRDT_OK);
    ck_assert_int_eq(crdt_txn_text_delete(t, "c", "d", field, pos, len),
                     CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
}

static void
lins(crdt_replica *r, const char *field, uint64_t pos, int64_t v)
{
    crdt_txn *t;
    crdt_value val = crdt_value_int(v);

    ck_assert_int_eq(crdt_txn_begin(&t, r), CRDT_OK);
    ck_assert_int_eq(crdt_txn_list_insert(t, "c", "d", field, pos, &val),
                     CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
}

/* The text of c/d/@p field, or "<absent>". */
static void
text_of(char *buf, size_t size, crdt_replica *r, const char *field)
{
    crdt_read *rd;
    char *s = NULL;
    size_t n = 0;
    int rc;

    ck_assert_int_eq(crdt_read_begin(&rd, r), CRDT_OK);
    rc = crdt_read_text(&s, &n, rd, "c", "d", field);
    crdt_read_end(rd);
    if (rc == CRDT_ENOTFOUND) {
        snprintf(buf, size, "<absent>");
        return;
    }
    ck_assert_int_eq(rc, CRDT_OK);
    snprintf(buf, size, "%.*s", (int)n, s);
    crdt_text_free(s);
}

static void
assert_same(void)
{
    char ha[65], hb[65];

    tu_hash(ha, a);
    tu_hash(hb, b);
    ck_assert_str_eq(ha, hb);
}

START_TEST(test_renamed_text_takes_stale_ops)
{
    char buf[128];

    ins(a, "t", 0, "hello");
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    /* b offline, against version 1 */
    ins(b, "t", 5, " world");
    del(b, "t", 0, 1);
    /* a renames the field, then writes under the new name */
    tu_migrate(a, "collection c 1 -> 2\nrename t -> body\n", NULL);
    ins(a, "body", 0, "!"); /* not where b inserts: one order only */
    ck_assert_int_eq(tu_reset_from(b, a), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(a, b), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    text_of(buf, sizeof buf, a, "body");
    ck_assert_str_eq(buf, "!ello world");
    text_of(buf, sizeof buf, b, "body");
    ck_assert_str_eq(buf, "!ello world");
    text_of(buf, sizeof buf, a, "t");
    ck_assert_str_eq(buf, "<absent>");
    assert_same();
}
END_TEST

START_TEST(test_removed_text_quarantines_stale_ops)
{
    char buf[128];
    uint64_t n = 0;

    ins(a, "t", 0, "hello");
    lins(a, "l", 0, 1);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    ins(b, "t", 0, ">");
    lins(b, "l", 1, 2);
    tu_migrate(a, "collection c 1 -> 2\nremove t\n", NULL);
    ck_assert_int_eq(tu_reset_from(b, a), CRDT_OK);
    ck_assert_int_eq(epoch_quarantine_count(&n, b), CRDT_OK);
    ck_assert_uint_eq(n, 1); /* the text insert; the list op lands */
    ck_assert_int_eq(tu_sync_one_way(a, b), CRDT_OK);
    ck_assert_int_eq(epoch_quarantine_count(&n, a), CRDT_OK);
    ck_assert_uint_eq(n, 1);
    text_of(buf, sizeof buf, a, "t");
    ck_assert_str_eq(buf, "<absent>");
    {
        crdt_read *rd;
        crdt_value *v;
        size_t k;

        ck_assert_int_eq(crdt_read_begin(&rd, a), CRDT_OK);
        ck_assert_int_eq(crdt_read_list(&v, &k, rd, "c", "d", "l"), CRDT_OK);
        ck_assert_uint_eq(k, 2);
        ck_assert_int_eq(v[0].u.i, 1);
        ck_assert_int_eq(v[1].u.i, 2);
        crdt_list_free(v);
        crdt_read_end(rd);
    }
    assert_same();
}
END_TEST

START_TEST(test_compaction_places_stale_text_ops)
{
    char buf[128];

    ins(a, "t", 0, "abcdefgh");
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    /* b inserts after "d" and inside the range a deletes */
    ins(b, "t", 4, "XY");
    ins(b, "t", 7, "Z"); /* abcdXYeZfgh: between "e" and "f" */
    del(a, "t", 3, 4);   /* a deletes "defg": abch */
    tu_migrate(a, NULL, NULL);
    tu_migrate(a, NULL, NULL);
    ins(a, "t", 4, "!");
    ck_assert_int_eq(tu_reset_from(b, a), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(a, b), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    text_of(buf, sizeof buf, a, "t");
    ck_assert_str_eq(buf, "abcXYZh!");
    text_of(buf, sizeof buf, b, "t");
    ck_assert_str_eq(buf, "abcXYZh!");
    assert_same();
}
END_TEST

static int
mark(epoch_doc *doc, const char *coll, const char *id, void *ctx)
{
    crdt_value v = crdt_value_bool(1);

    (void)coll;
    (void)id;
    (void)ctx;
    return epoch_doc_set_register(doc, "checked", &v);
}

START_TEST(test_custom_migration_keeps_text_and_list)
{
    char buf[128];
    epoch_builder *bl;
    crdt_read *rd;
    crdt_value *v;
    size_t k;

    ins(a, "t", 0, "abc");
    del(a, "t", 1, 1);
    lins(a, "l", 0, 5);
    ck_assert_int_eq(tu_put_int(a, "c", "d", "r", 1), CRDT_OK);
    ck_assert_int_eq(epoch_builder_new(&bl, a), CRDT_OK);
    ck_assert_int_eq(epoch_builder_set_custom(bl, "mark", "c", 2, mark, NULL),
                     CRDT_OK);
    ck_assert_int_eq(epoch_builder_commit(NULL, bl), CRDT_OK);
    epoch_builder_free(bl);
    text_of(buf, sizeof buf, a, "t");
    ck_assert_str_eq(buf, "ac");
    ins(a, "t", 1, "b"); /* its origins are ids from before the hook */
    text_of(buf, sizeof buf, a, "t");
    ck_assert_str_eq(buf, "abc");
    ck_assert_int_eq(crdt_read_begin(&rd, a), CRDT_OK);
    ck_assert_int_eq(crdt_read_list(&v, &k, rd, "c", "d", "l"), CRDT_OK);
    ck_assert_uint_eq(k, 1);
    ck_assert_int_eq(v[0].u.i, 5);
    crdt_list_free(v);
    crdt_read_end(rd);
    ck_assert_int_eq(tu_reset_from(b, a), CRDT_OK);
    text_of(buf, sizeof buf, b, "t");
    ck_assert_str_eq(buf, "abc");
    assert_same();
}
END_TEST

Suite *
test_suite(void)
{
    Suite *s = suite_create("seq_epoch");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_renamed_text_takes_stale_ops);
    tcase_add_test(tc, test_removed_text_quarantines_stale_ops);
    tcase_add_test(tc, test_compaction_places_stale_text_ops);
    tcase_add_test(tc, test_custom_migration_keeps_text_and_list);
    suite_add_tcase(s, tc);
    return s;
}
