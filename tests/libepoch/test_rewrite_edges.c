/*
 * test_rewrite_edges.c: the rewrite of the state (rewrite.c) and the
 * lens defaults kept once per collection (rewrite_defaults.c) on data of
 * unusual shapes: documents larger than the rewriter's first buffers,
 * defaults too large to keep once, more fields than the rewriter caches,
 * more collections and defaults than its first arrays hold, a list in a
 * collection no lens touches, defaults that a later lens removes, and a
 * custom hook's registers (stamped (0, actor 0) as lens defaults are)
 * next to a later lens's defaults. Each scene checks what docs/lenses.md
 * and the files' comments say a read shows after the migration.
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

/* a: a fresh attached replica for each test */
TU_ATTACHED_FIXTURE((void)0)

/* @p coll/@p doc/@p field reads as @p want (tu_field_str()'s form). */
static void
expect(const char *coll, const char *doc, const char *field, const char *want)
{
    char got[256];

    tu_field_str(got, sizeof got, a, coll, doc, field);
    ck_assert_msg(strcmp(got, want) == 0, "%s/%s/%s: '%s', want '%s'", coll,
                  doc, field, got, want);
}

/* @p coll/@p doc/@p field is a string register of @p len bytes @p ch. */
static void
expect_long(const char *coll, const char *doc, const char *field, size_t len,
            char ch)
{
    crdt_read *rd;
    crdt_field f;

    ck_assert_int_eq(crdt_read_begin(&rd, a), CRDT_OK);
    ck_assert_int_eq(crdt_read_field(&f, rd, coll, doc, field), CRDT_OK);
    ck_assert_int_eq(f.kind, CRDT_FIELD_REGISTER);
    ck_assert_int_eq(f.value.type, CRDT_VSTRING);
    ck_assert_uint_eq(f.value.u.s.len, len);
    for (size_t i = 0; i < len; i++)
        if (f.value.u.s.ptr[i] != ch)
            ck_abort_msg("%s/%s/%s: byte %zu is '%c'", coll, doc, field, i,
                         f.value.u.s.ptr[i]);
    crdt_read_end(rd);
}

static char *
repeat(char ch, size_t n)
{
    char *s = malloc(n + 1);

    ck_assert_ptr_nonnull(s);
    memset(s, ch, n);
    s[n] = 0;
    return s;
}

static void
put_str(crdt_txn *t, const char *coll, const char *doc, const char *field,
        const char *s)
{
    crdt_value v = crdt_value_str(s, strlen(s));

    ck_assert_int_eq(crdt_txn_put(t, coll, doc, field, &v), CRDT_OK);
}

/* ---- large values ---- */

/* Documents larger than the rewriter's first buffer (4 KiB), the second
 * larger than what the first grew it to, and lens defaults larger than
 * its first default buffer (256 bytes), a later collection's larger
 * still: every byte comes through. */
START_TEST(test_large_documents_and_defaults_come_through_whole)
{
    char *s5 = repeat('a', 5000), *s9 = repeat('b', 9000),
         *lens = malloc(8192);
    char *d300 = repeat('p', 300), *d1000 = repeat('q', 1000);
    crdt_txn *t;

    ck_assert_ptr_nonnull(lens);
    ck_assert_int_eq(crdt_txn_begin(&t, a), CRDT_OK);
    put_str(t, "big", "d1", "s", s5);
    put_str(t, "big", "d2", "s", s9);
    put_str(t, "more", "d1", "k", "x");
    put_str(t, "more", "d2", "k", "y");
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    snprintf(lens, 8192,
             "collection big 1 -> 2\nrename s -> t\n"
             "add n string default \"%s\"\n"
             "collection more 1 -> 2\nadd m string default \"%s\"\n",
             d300, d1000);
    tu_migrate(a, lens, NULL);
    expect_long("big", "d1", "t", 5000, 'a');
    expect_long("big", "d2", "t", 9000, 'b');
    expect("big", "d1", "s", "");
    expect_long("big", "d1", "n", 300, 'p');
    expect_long("big", "d2", "n", 300, 'p');
    expect_long("more", "d1", "m", 1000, 'q');
    expect_long("more", "d2", "m", 1000, 'q');
    expect("more", "d2", "k", "\"y\"");
    free(s5);
    free(s9);
    free(d300);
    free(d1000);
    free(lens);
}
END_TEST

/* Lens defaults whose pairs exceed what one DEFAULTS entry may hold
 * (CRDT_STATE_DEFAULTS_MAX) are not kept once: each document gets them
 * stored, as before the once-per-collection form, and reads the same.
 * A later collection with fewer defaults reuses the rewriter's arrays. */
START_TEST(test_defaults_too_large_to_keep_once_are_stored_per_document)
{
    enum { N = 17, LEN = 4000 };
    size_t cap = N * (LEN + 64) + 256;
    char *lens = malloc(cap), *val = repeat('v', LEN);
    size_t off;
    uint64_t before;
    char f[16];

    ck_assert_ptr_nonnull(lens);
    ck_assert_int_eq(tu_put_int(a, "huge", "d1", "k", 1), CRDT_OK);
    ck_assert_int_eq(tu_put_int(a, "huge", "d2", "k", 2), CRDT_OK);
    ck_assert_int_eq(tu_put_int(a, "w", "d1", "k", 3), CRDT_OK);
    before = tu_state_entries(a);
    off = (size_t)snprintf(lens, cap, "collection huge 1 -> 2\n");
    for (int i = 0; i < N; i++)
        off += (size_t)snprintf(lens + off, cap - off,
                                "add f%02d string default \"%s\"\n", i, val);
    snprintf(lens + off, cap - off,
             "collection w 1 -> 2\nadd g int default 8\n");
    tu_migrate(a, lens, NULL);
    for (int i = 0; i < N; i++) {
        snprintf(f, sizeof f, "f%02d", i);
        expect_long("huge", "d1", f, LEN, 'v');
        expect_long("huge", "d2", f, LEN, 'v');
    }
    expect("huge", "d2", "k", "2");
    expect("w", "d1", "g", "8");
    /* huge's defaults went into both its documents (2 * N entries);
     * w's one is kept once for the collection (one DEFAULTS entry) */
    ck_assert_uint_eq(tu_state_entries(a), before + 2 * N + 1);
    free(lens);
    free(val);
}
END_TEST

/* ---- many fields, collections and defaults ---- */

/* A collection of more fields than the rewriter remembers the lens's
 * answer for (32): the fields past them are renamed and removed all the
 * same, in every document. */
START_TEST(test_fields_past_the_rewriters_cache_are_mapped)
{
    enum { FIELDS = 40 };
    crdt_txn *t;
    char f[16], want[16];

    ck_assert_int_eq(crdt_txn_begin(&t, a), CRDT_OK);
    for (int d = 0; d < 2; d++)
        for (int i = 0; i < FIELDS; i++) {
            crdt_value v = crdt_value_int(100 * d + i);
            snprintf(f, sizeof f, "f%02d", i);
            ck_assert_int_eq(crdt_txn_put(t, "w", d ? "d1" : "d0", f, &v),
                             CRDT_OK);
        }
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    tu_migrate(a, "collection w 1 -> 2\nrename f39 -> g39\nremove f38\n"
                  "rename f00 -> g00\n",
               NULL);
    for (int d = 0; d < 2; d++) {
        const char *doc = d ? "d1" : "d0";
        for (int i = 1; i < 38; i++) {
            snprintf(f, sizeof f, "f%02d", i);
            snprintf(want, sizeof want, "%d", 100 * d + i);
            expect("w", doc, f, want);
        }
        snprintf(want, sizeof want, "%d", 100 * d + 39);
        expect("w", doc, "g39", want);
        snprintf(want, sizeof want, "%d", 100 * d);
        expect("w", doc, "g00", want);
        expect("w", doc, "f38", "");
        expect("w", doc, "f39", "");
        expect("w", doc, "f00", "");
    }
}
END_TEST

/* Defaults kept once for more collections, and more defaults in one
 * collection, than the first arrays hold (8 each): a later lens over
 * that collection renames one of its kept defaults and every document
 * shows the rest as before. */
START_TEST(test_many_kept_defaults_and_collections_carry_through)
{
    enum { COLLS = 10, DEFS = 10 };
    char lens[2048], coll[16], f[16], want[16];
    size_t off = 0;

    ck_assert_int_eq(tu_put_int(a, "c", "d1", "x", 1), CRDT_OK);
    ck_assert_int_eq(tu_put_int(a, "c", "d2", "x", 2), CRDT_OK);
    off += (size_t)snprintf(lens + off, sizeof lens - off,
                            "collection c 1 -> 2\n");
    for (int i = 0; i < DEFS; i++)
        off += (size_t)snprintf(lens + off, sizeof lens - off,
                                "add e%d int default %d\n", i, i);
    for (int i = 0; i < COLLS; i++) {
        snprintf(coll, sizeof coll, "k%d", i);
        ck_assert_int_eq(tu_put_int(a, coll, "d", "x", i), CRDT_OK);
        off += (size_t)snprintf(lens + off, sizeof lens - off,
                                "collection %s 1 -> 2\nadd y int default "
                                "%d\n", coll, 50 + i);
    }
    tu_migrate(a, lens, NULL);
    tu_migrate(a, "collection c 2 -> 3\nrename e3 -> r3\n", NULL);
    for (int i = 0; i < DEFS; i++) {
        snprintf(f, sizeof f, i == 3 ? "r%d" : "e%d", i);
        snprintf(want, sizeof want, "%d", i);
        expect("c", "d1", f, want);
        expect("c", "d2", f, want);
    }
    expect("c", "d2", "e3", "");
    expect("c", "d2", "x", "2");
    for (int i = 0; i < COLLS; i++) {
        snprintf(coll, sizeof coll, "k%d", i);
        snprintf(want, sizeof want, "%d", 50 + i);
        expect(coll, "d", "y", want);
    }
}
END_TEST

/* Kept defaults that a later lens removes leave nothing to keep for
 * their collection: its documents no longer show them. Collections
 * whose names start one another (k, kk) keep theirs in key order, a
 * conversion to text that a later step removes converts nothing, and
 * one in another collection leaves their defaults alone. */
START_TEST(test_kept_defaults_removed_later_are_gone)
{
    crdt_txn *t;

    ck_assert_int_eq(crdt_txn_begin(&t, a), CRDT_OK);
    put_str(t, "r", "d1", "s", "one");
    put_str(t, "k", "d1", "s", "two");
    put_str(t, "kk", "d1", "s", "three");
    put_str(t, "t", "d1", "s", "four");
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    tu_migrate(a, "collection r 1 -> 2\nadd q int default 4\n", NULL);
    expect("r", "d1", "q", "4");
    tu_migrate(a, "collection r 2 -> 3\nremove q\n"
                  "collection kk 1 -> 2\nadd b int default 2\n"
                  "collection k 1 -> 2\nadd b int default 1\n"
                  "convert s string -> text\nremove s\n"
                  "collection t 1 -> 2\nconvert s string -> text\n",
               NULL);
    expect("r", "d1", "q", "");
    expect("r", "d1", "s", "\"one\"");
    expect("k", "d1", "b", "1");
    expect("k", "d1", "s", "");
    expect("kk", "d1", "b", "2");
    expect("kk", "d1", "s", "\"three\"");
    expect("t", "d1", "s", "\"four\"");
}
END_TEST

/* ---- sequences in collections no lens touches ---- */

/* A text and a list in a collection the lens does not name are copied
 * as they come, and then compacted as every epoch does: their deleted
 * elements go, what they show stays. */
START_TEST(test_untouched_list_and_text_are_kept)
{
    crdt_txn *t;
    crdt_value one = crdt_value_int(1), two = crdt_value_int(2),
               three = crdt_value_int(3);

    ck_assert_int_eq(crdt_txn_begin(&t, a), CRDT_OK);
    ck_assert_int_eq(crdt_txn_list_insert(t, "l", "d", "xs", 0, &one),
                     CRDT_OK);
    ck_assert_int_eq(crdt_txn_list_insert(t, "l", "d", "xs", 1, &two),
                     CRDT_OK);
    ck_assert_int_eq(crdt_txn_list_insert(t, "l", "d", "xs", 2, &three),
                     CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    ck_assert_int_eq(crdt_txn_begin(&t, a), CRDT_OK);
    ck_assert_int_eq(crdt_txn_list_delete(t, "l", "d", "xs", 1, 1), CRDT_OK);
    ck_assert_int_eq(crdt_txn_text_insert(t, "l", "d", "tx", 0, "hello", 5),
                     CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    ck_assert_int_eq(tu_put_int(a, "m", "d", "x", 1), CRDT_OK);
    tu_migrate(a, "collection m 1 -> 2\nrename x -> y\n", NULL);
    expect("l", "d", "xs", "[1,3]");
    expect("l", "d", "tx", "\"hello\"");
    expect("m", "d", "y", "1");
}
END_TEST

/* ---- custom hooks ---- */

typedef struct {
    int saw_wrong_q; /* a deleted field shown, or a live one not */
    int docs;
} stamp_ctx;

/* Sets y (5 in d1, 500 elsewhere: values of two encoded lengths) and x;
 * z to what the later lens's default will be. */
static int
stamp(epoch_doc *doc, const char *coll, const char *doc_id, void *ctx)
{
    stamp_ctx *c = ctx;
    crdt_value v, y = crdt_value_int(strcmp(doc_id, "d1") == 0 ? 5 : 500),
                  x = crdt_value_str("str", 3), z = crdt_value_int(1);
    int rc;

    (void)coll;
    c->docs++;
    /* q is deleted in d3 only */
    if ((epoch_doc_get_register(&v, doc, "q") == CRDT_OK) !=
        (strcmp(doc_id, "d3") != 0))
        c->saw_wrong_q = 1;
    if ((rc = epoch_doc_set_register(doc, "y", &y)) < 0 ||
        (rc = epoch_doc_set_register(doc, "x", &x)) < 0)
        return rc;
    return strcmp(doc_id, "d2") == 0 ? epoch_doc_set_register(doc, "z", &z)
                                     : CRDT_OK;
}

/* A custom hook's registers are stamped (0, actor 0) as lens defaults
 * are; a later lens that adds defaults of the same names (y) keeps
 * them where the hook wrote other values, and a field deleted before
 * the hook is not shown to it. Counters and sets the hook keeps come
 * through both migrations. */
START_TEST(test_hook_registers_survive_a_later_lens_default)
{
    stamp_ctx ctx = { 0, 0 };
    epoch_builder *bl;
    epoch_info e;
    crdt_txn *t;
    crdt_value s1 = crdt_value_int(1), s2 = crdt_value_int(2);

    ck_assert_int_eq(crdt_txn_begin(&t, a), CRDT_OK);
    for (int i = 1; i <= 3; i++) {
        char doc[8];
        snprintf(doc, sizeof doc, "d%d", i);
        ck_assert_int_eq(crdt_txn_incr(t, "c", doc, "n", 3), CRDT_OK);
        ck_assert_int_eq(crdt_txn_sadd(t, "c", doc, "s", &s1), CRDT_OK);
        ck_assert_int_eq(crdt_txn_sadd(t, "c", doc, "s", &s2), CRDT_OK);
        ck_assert_int_eq(crdt_txn_put(t, "c", doc, "q", &s1), CRDT_OK);
    }
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    ck_assert_int_eq(crdt_txn_begin(&t, a), CRDT_OK);
    ck_assert_int_eq(crdt_txn_del_field(t, "c", "d3", "q"), CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);

    ck_assert_int_eq(epoch_builder_new(&bl, a), CRDT_OK);
    ck_assert_int_eq(epoch_builder_set_custom(bl, "stamp", "c", 2, stamp,
                                              &ctx),
                     CRDT_OK);
    ck_assert_int_eq(epoch_builder_commit(&e, bl), CRDT_OK);
    epoch_builder_free(bl);
    epoch_info_clear(&e);
    ck_assert_int_eq(ctx.docs, 3);
    ck_assert_int_eq(ctx.saw_wrong_q, 0);

    tu_migrate(a, "collection c 2 -> 3\nadd y int default 7\n"
                  "add z int default 1\nadd w int default 9\n",
               NULL);
    expect("c", "d1", "y", "5");
    expect("c", "d2", "y", "500");
    expect("c", "d3", "y", "500");
    for (int i = 1; i <= 3; i++) {
        char doc[8];
        snprintf(doc, sizeof doc, "d%d", i);
        expect("c", doc, "x", "\"str\"");
        expect("c", doc, "z", "1");
        expect("c", doc, "w", "9");
        expect("c", doc, "n", "c3");
        expect("c", doc, "s", "[1,2]");
    }
    expect("c", "d1", "q", "1");
    expect("c", "d3", "q", "");
}
END_TEST

/* Records, per document, whether the field named by ctx shows. */
typedef struct {
    const char *field;
    int shown[4]; /* by the document's last digit */
} seen_ctx;

static int
note_field(epoch_doc *doc, const char *coll, const char *doc_id, void *ctx)
{
    seen_ctx *c = ctx;
    crdt_value v;
    size_t n = strlen(doc_id);
    int i = n > 0 ? doc_id[n - 1] - '0' : -1;

    (void)coll;
    if (i >= 0 && i < 4)
        c->shown[i] = epoch_doc_get_register(&v, doc, c->field) == CRDT_OK;
    return CRDT_OK;
}

static void
run_custom(const char *coll, uint32_t to, epoch_custom_fn fn, void *ctx)
{
    epoch_builder *bl;
    epoch_info e;

    ck_assert_int_eq(epoch_builder_new(&bl, a), CRDT_OK);
    ck_assert_int_eq(epoch_builder_set_custom(bl, "note", coll, to, fn, ctx),
                     CRDT_OK);
    ck_assert_int_eq(epoch_builder_commit(&e, bl), CRDT_OK);
    epoch_builder_free(bl);
    epoch_info_clear(&e);
}

/* A hook is shown a collection's kept defaults where a read shows them:
 * in a document older than the lens that added them, not in one created
 * after it (it carries the mark that it shows none). */
START_TEST(test_hook_sees_kept_defaults_where_reads_do)
{
    seen_ctx ctx = { "g", { -1, -1, -1, -1 } };

    ck_assert_int_eq(tu_put_int(a, "c", "d1", "x", 1), CRDT_OK);
    tu_migrate(a, "collection c 1 -> 2\nadd g int default 6\n", NULL);
    ck_assert_int_eq(tu_put_int(a, "c", "d2", "x", 2), CRDT_OK);
    expect("c", "d1", "g", "6");
    expect("c", "d2", "g", "");
    run_custom("c", 3, note_field, &ctx);
    ck_assert_int_eq(ctx.shown[1], 1);
    ck_assert_int_eq(ctx.shown[2], 0);
    expect("c", "d1", "g", "6");
    expect("c", "d2", "g", "");
    expect("c", "d2", "x", "2");
}
END_TEST

static uint64_t
fixed_clock(void *ctx)
{
    (void)ctx;
    return 1700000000000ull;
}

/* A field written at the very stamp of its document's deletion, by
 * another actor: the hook is shown it exactly when a read shows it (the
 * tie goes by actor, as the replica orders stamps). */
START_TEST(test_hook_breaks_a_stamp_tie_with_the_delete_as_reads_do)
{
    char dx[256], dy[256], before[64], after[64];
    crdt_replica *x, *y, *keep = a;
    seen_ctx ctx = { "v", { -1, -1, -1, -1 } };
    crdt_txn *t;

    tu_pair_open(&x, dx, &y, dy, sizeof dx);
    crdt_set_clock(fixed_clock, NULL);
    ck_assert_int_eq(crdt_txn_begin(&t, x), CRDT_OK);
    ck_assert_int_eq(crdt_txn_del_doc(t, "c", "d1"), CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    ck_assert_int_eq(tu_put_int(y, "c", "d1", "v", 7), CRDT_OK);
    ck_assert_int_eq(tu_put_int(y, "c", "d1", "w", 8), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(x, y), CRDT_OK);
    crdt_set_clock(NULL, NULL);
    tu_field_str(before, sizeof before, x, "c", "d1", "v");
    a = x; /* run_custom() and expect() work on a */
    run_custom("c", 2, note_field, &ctx);
    tu_field_str(after, sizeof after, x, "c", "d1", "v");
    a = keep;
    ck_assert_int_eq(ctx.shown[1], strcmp(before, "7") == 0);
    ck_assert_str_eq(after, before);
    tu_pair_close(x, dx, y, dy);
}
END_TEST

Suite *
test_suite(void)
{
    Suite *s = suite_create("rewrite_edges");
    TCase *tc = tcase_create("edges");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_large_documents_and_defaults_come_through_whole);
    tcase_add_test(tc,
                   test_defaults_too_large_to_keep_once_are_stored_per_document);
    tcase_add_test(tc, test_fields_past_the_rewriters_cache_are_mapped);
    tcase_add_test(tc, test_many_kept_defaults_and_collections_carry_through);
    tcase_add_test(tc, test_kept_defaults_removed_later_are_gone);
    tcase_add_test(tc, test_untouched_list_and_text_are_kept);
    tcase_add_test(tc, test_hook_registers_survive_a_later_lens_default);
    tcase_add_test(tc, test_hook_sees_kept_defaults_where_reads_do);
    tcase_add_test(tc, test_hook_breaks_a_stamp_tie_with_the_delete_as_reads_do);
    suite_add_tcase(s, tc);
    return s;
}
