/*
 * test_rewrite.c: the migration builder's rewrite of the state: lenses
 * and custom hooks that reorder a document's fields, untouched
 * collections on both sides of a migrated one, and the state hash after
 * it (kept as entries are written, then recomputed from scratch).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crdt/crdt.h"
#include "crdt/raw.h"
#include "epoch/epoch.h"
#include "support/replica_util.h"
#include "support/support.h"

#define N_DOCS 300

static char da[256];
static crdt_replica *a;

static void
setup(void)
{
    a = tu_create(da, sizeof da, NULL);
    ck_assert_int_eq(epoch_attach(a), CRDT_OK);
}

static void
teardown(void)
{
    crdt_replica_close(a);
    test_rmtree(da);
}

static void
migrate(const char *text, epoch_info *out)
{
    epoch_builder *bl;
    epoch_lens *l = NULL;
    epoch_lens_error err;

    ck_assert_msg(epoch_lens_parse(&l, text, strlen(text), &err) == CRDT_OK,
                  "lens: line %d: %s", err.line, err.message);
    ck_assert_int_eq(epoch_builder_new(&bl, a), CRDT_OK);
    ck_assert_int_eq(epoch_builder_add_lens(bl, l), CRDT_OK);
    ck_assert_int_eq(epoch_builder_commit(out, bl), CRDT_OK);
    epoch_builder_free(bl);
    epoch_lens_free(l);
}

/* The hash the store kept equals the one recomputed from its entries,
 * and the one the epoch record carries. */
static void
assert_hash_exact(const epoch_info *e)
{
    crdt_raw *t;
    unsigned char kept[32], again[32];

    ck_assert_int_eq(crdt_raw_begin(&t, a, 0), CRDT_OK);
    crdt_raw_state_hash(t, kept);
    ck_assert_int_eq(crdt_raw_state_rehash(t, again), CRDT_OK);
    crdt_raw_abort(t);
    ck_assert_mem_eq(kept, again, 32);
    if (e != NULL)
        ck_assert_mem_eq(kept, e->state_hash, 32);
}

static uint64_t
state_entries(void)
{
    crdt_raw *t;
    uint64_t n = 0;

    ck_assert_int_eq(crdt_raw_begin(&t, a, 0), CRDT_OK);
    ck_assert_int_eq(crdt_raw_count(&n, t, crdt_raw_state_db(t, 0)),
                     CRDT_OK);
    crdt_raw_abort(t);
    return n;
}

static void
field_is(const char *coll, const char *doc, const char *field,
         const char *want)
{
    char buf[128];

    tu_field_str(buf, sizeof buf, a, coll, doc, field);
    ck_assert_msg(strcmp(buf, want) == 0, "%s/%s/%s: got '%s', want '%s'",
                  coll, doc, field, buf, want);
}

/* Collections a and z around m, each document of m with registers,
 * a counter and a set, every tenth one deleted. */
static void
fill(void)
{
    crdt_txn *t;
    char doc[16];

    ck_assert_int_eq(crdt_txn_begin(&t, a), CRDT_OK);
    for (int i = 0; i < N_DOCS; i++) {
        crdt_value v = crdt_value_int(i), s1 = crdt_value_int(1000 + i),
                   s2 = crdt_value_int(2000 + i);
        snprintf(doc, sizeof doc, "d%04d", i);
        ck_assert_int_eq(crdt_txn_put(t, "a", doc, "v", &v), CRDT_OK);
        ck_assert_int_eq(crdt_txn_put(t, "m", doc, "b", &v), CRDT_OK);
        ck_assert_int_eq(crdt_txn_put(t, "m", doc, "k", &v), CRDT_OK);
        ck_assert_int_eq(crdt_txn_put(t, "m", doc, "y", &v), CRDT_OK);
        ck_assert_int_eq(crdt_txn_incr(t, "m", doc, "c", i + 1), CRDT_OK);
        ck_assert_int_eq(crdt_txn_sadd(t, "m", doc, "s", &s1), CRDT_OK);
        ck_assert_int_eq(crdt_txn_sadd(t, "m", doc, "s", &s2), CRDT_OK);
        ck_assert_int_eq(crdt_txn_put(t, "z", doc, "v", &v), CRDT_OK);
        if (i % 10 == 9) {
            ck_assert_int_eq(crdt_txn_del_doc(t, "m", doc), CRDT_OK);
            ck_assert_int_eq(crdt_txn_put(t, "m", doc, "k", &v), CRDT_OK);
        }
    }
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
}

START_TEST(test_renames_that_reorder_fields_keep_state_and_hash)
{
    epoch_info e;
    char doc[16], want[32];
    uint64_t before;

    fill();
    assert_hash_exact(NULL);
    before = state_entries();
    /* b moves after every other field, y before them; k keeps its place
     * but its value changes; the counter and the set are renamed across
     * the others; the default lands between them */
    migrate("collection m 1 -> 2\n"
            "rename b -> zz\n"
            "rename y -> aa\n"
            "convert k int -> string\n"
            "rename c -> x\n"
            "rename s -> ab\n"
            "add n string default \"-\"\n", &e);
    assert_hash_exact(&e);
    /* one default per live or tombstoned document of m */
    ck_assert_uint_eq(state_entries(), before + N_DOCS);
    for (int i = 0; i < N_DOCS; i++) {
        int gone = i % 10 == 9;
        snprintf(doc, sizeof doc, "d%04d", i);
        snprintf(want, sizeof want, "%d", i);
        field_is("a", doc, "v", want);
        field_is("z", doc, "v", want);
        field_is("m", doc, "zz", gone ? "" : want);
        field_is("m", doc, "aa", gone ? "" : want);
        field_is("m", doc, "b", "");
        field_is("m", doc, "y", "");
        snprintf(want, sizeof want, "\"%d\"", i);
        field_is("m", doc, "k", want);
        snprintf(want, sizeof want, "c%d", i + 1);
        field_is("m", doc, "x", gone ? "" : want);
        snprintf(want, sizeof want, "[%d,%d]", 1000 + i, 2000 + i);
        field_is("m", doc, "ab", gone ? "" : want);
        /* stamped (0, actor 0): under a document tombstone */
        field_is("m", doc, "n", gone ? "" : "\"-\"");
    }
    epoch_info_clear(&e);

    /* a second migration renames them back into the first order */
    migrate("collection m 2 -> 3\n"
            "rename zz -> b\n"
            "rename aa -> y\n", &e);
    assert_hash_exact(&e);
    field_is("m", "d0000", "b", "0");
    field_is("m", "d0000", "y", "0");
    field_is("m", "d0000", "ab", "[1000,2000]");
    epoch_info_clear(&e);

    /* writes go on and keep the hash exact */
    ck_assert_int_eq(tu_put_int(a, "m", "d0001", "b", 7), CRDT_OK);
    field_is("m", "d0001", "b", "7");
    assert_hash_exact(NULL);
}
END_TEST

START_TEST(test_removed_and_dropped_fields_keep_hash)
{
    epoch_info e;

    fill();
    migrate("collection m 1 -> 2\n"
            "remove b int\n"
            "rename y -> a\n"
            "add zz int default 5\n", &e);
    assert_hash_exact(&e);
    field_is("m", "d0003", "b", "");
    field_is("m", "d0003", "a", "3");
    field_is("m", "d0003", "zz", "5");
    field_is("z", "d0003", "v", "3");
    epoch_info_clear(&e);
    migrate("collection m 2 -> 3\ndrop\n", &e);
    assert_hash_exact(&e);
    field_is("m", "d0003", "a", "");
    field_is("a", "d0003", "v", "3");
    field_is("z", "d0003", "v", "3");
    epoch_info_clear(&e);
}
END_TEST

/* Sets fields in reverse name order, and a set's elements backwards. */
static int
reverse_fields(epoch_doc *doc, const char *coll, const char *id, void *ctx)
{
    crdt_value v = crdt_value_int(9);
    char name[8];
    int rc = CRDT_OK;

    (void)coll;
    (void)id;
    (void)ctx;
    for (int i = 25; i >= 0 && rc == CRDT_OK; i--) {
        snprintf(name, sizeof name, "r%c", 'a' + i);
        rc = epoch_doc_set_register(doc, name, &v);
    }
    for (int i = 9; i >= 0 && rc == CRDT_OK; i--) {
        crdt_value el = crdt_value_int(i * 1000);
        rc = epoch_doc_set_add(doc, "set", &el);
    }
    if (rc == CRDT_OK)
        rc = epoch_doc_set_counter(doc, "cnt", -4);
    return rc;
}

START_TEST(test_custom_hook_fields_in_any_order_keep_hash)
{
    epoch_builder *bl;
    epoch_info e;

    fill();
    ck_assert_int_eq(epoch_builder_new(&bl, a), CRDT_OK);
    ck_assert_int_eq(epoch_builder_set_custom(bl, "reverse", "m", 2,
                                              reverse_fields, NULL),
                     CRDT_OK);
    ck_assert_int_eq(epoch_builder_commit(&e, bl), CRDT_OK);
    epoch_builder_free(bl);
    assert_hash_exact(&e);
    field_is("m", "d0004", "ra", "9");
    field_is("m", "d0004", "rq", "9");
    field_is("m", "d0004", "rz", "9");
    field_is("m", "d0004", "k", "4");
    field_is("m", "d0004", "cnt", "c-4");
    field_is("m", "d0004", "set",
             "[0,1000,2000,3000,4000,5000,6000,7000,8000,9000]");
    field_is("a", "d0004", "v", "4");
    field_is("z", "d0004", "v", "4");
    epoch_info_clear(&e);
}
END_TEST

/* A default goes where the field is absent after the lens: a field
 * renamed onto its name keeps its value, and a field renamed away from
 * it leaves room for the default. */
START_TEST(test_defaults_follow_the_new_names)
{
    epoch_info e;

    ck_assert_int_eq(tu_put_int(a, "q", "both", "a", 42), CRDT_OK);
    ck_assert_int_eq(tu_put_int(a, "q", "both", "n", 3), CRDT_OK);
    ck_assert_int_eq(tu_put_int(a, "q", "only_a", "a", 1), CRDT_OK);
    ck_assert_int_eq(tu_put_int(a, "q", "only_n", "n", 8), CRDT_OK);
    migrate("collection q 1 -> 2\n"
            "rename n -> m\n"
            "rename a -> n\n"
            "add n int default 5\n"
            "add o int default 9\n", &e);
    assert_hash_exact(&e);
    field_is("q", "both", "m", "3");
    field_is("q", "both", "n", "42");
    field_is("q", "both", "o", "9");
    field_is("q", "only_a", "m", "");
    field_is("q", "only_a", "n", "1");
    field_is("q", "only_n", "m", "8");
    field_is("q", "only_n", "n", "5");
    field_is("q", "only_n", "a", "");
    epoch_info_clear(&e);
}
END_TEST

/* The lens default of every document is the entry libcrdt encodes for
 * it (the rewrite encodes it once per collection and puts each
 * document's key in front): documents with names of every length, two
 * collections with different defaults, a field whose name starts with
 * the default's. */
static void
default_entry_is(const char *coll, const char *doc, const char *field,
                 const crdt_value *v)
{
    unsigned char k[CRDT_STATE_KEY_MAX], want[64];
    crdt_state_entry e;
    const void *got;
    size_t kl, wl, gl;
    crdt_raw *t;

    memset(&e, 0, sizeof e);
    e.kind = CRDT_ENTRY_REGISTER;
    e.coll = coll;
    e.coll_len = strlen(coll);
    e.doc = doc;
    e.doc_len = strlen(doc);
    e.field = field;
    e.field_len = strlen(field);
    e.value = *v;
    ck_assert_int_eq(crdt_state_entry_encode(k, &kl, want, sizeof want, &wl,
                                             &e), CRDT_OK);
    ck_assert_int_eq(crdt_raw_begin(&t, a, 0), CRDT_OK);
    ck_assert_msg(crdt_raw_get(t, crdt_raw_state_db(t, 0), k, kl, &got,
                               &gl) == CRDT_OK, "%s/%s/%s: no entry", coll,
                  doc, field);
    ck_assert_uint_eq(gl, wl);
    ck_assert_mem_eq(got, want, wl);
    crdt_raw_abort(t);
}

START_TEST(test_defaults_encoded_for_every_document)
{
    static const char *colls[] = { "q", "qq" };
    crdt_value dq = crdt_value_str("-", 1), dqq = crdt_value_int(-7);
    char doc[CRDT_NAME_MAX + 1];
    epoch_info e;
    uint64_t before;

    for (int c = 0; c < 2; c++)
        for (int len = 1; len <= CRDT_NAME_MAX; len += 3) {
            memset(doc, 'a' + len % 26, (size_t)len);
            doc[len] = 0;
            /* "no" starts with "n" but is another field */
            ck_assert_int_eq(tu_put_int(a, colls[c], doc,
                                        len % 2 ? "no" : "n", len),
                             CRDT_OK);
        }
    before = state_entries();
    migrate("collection q 1 -> 2\n"
            "add n string default \"-\"\n"
            "collection qq 1 -> 2\n"
            "add n int default -7\n"
            "add nn string default \"\"\n", &e);
    assert_hash_exact(&e);
    /* n where it was absent (odd lengths), nn on every document of qq */
    ck_assert_uint_eq(state_entries(), before + 11 + 11 + 22);
    for (int c = 0; c < 2; c++)
        for (int len = 1; len <= CRDT_NAME_MAX; len += 3) {
            char want[16];
            memset(doc, 'a' + len % 26, (size_t)len);
            doc[len] = 0;
            snprintf(want, sizeof want, "%d", len);
            if (len % 2) {
                field_is(colls[c], doc, "no", want);
                default_entry_is(colls[c], doc, "n", c ? &dqq : &dq);
            } else {
                field_is(colls[c], doc, "n", want);
            }
            if (c) {
                crdt_value empty = crdt_value_str("", 0);
                default_entry_is(colls[c], doc, "nn", &empty);
            }
        }
    epoch_info_clear(&e);
}
END_TEST

Suite *
test_suite(void)
{
    Suite *s = suite_create("rewrite");
    TCase *tc = tcase_create("rewrite");

    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_renames_that_reorder_fields_keep_state_and_hash);
    tcase_add_test(tc, test_removed_and_dropped_fields_keep_hash);
    tcase_add_test(tc, test_custom_hook_fields_in_any_order_keep_hash);
    tcase_add_test(tc, test_defaults_follow_the_new_names);
    tcase_add_test(tc, test_defaults_encoded_for_every_document);
    suite_add_tcase(s, tc);
    return s;
}
