/*
 * test_rewrite.c: the migration builder's rewrite of the state: lenses
 * and custom hooks that reorder a document's fields, untouched
 * collections on both sides of a migrated one, and the state hash after
 * it (kept as entries are written, then recomputed from scratch). A
 * state of many batches goes through the builder's second thread
 * (rewrite_run.c) and comes out as the inline rewrite makes it; an
 * entry it cannot read, late in the slot, fails the whole migration.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crdt/crdt.h"
#include "crdt/raw.h"
#include "epoch/epoch.h"
#include "epoch_internal.h"
#include "support/epoch_util.h"
#include "support/replica_util.h"
#include "support/support.h"

#define N_DOCS 300

/* a: a fresh attached replica for each test */
TU_ATTACHED_FIXTURE((void)0)

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
    before = tu_state_entries(a);
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
    /* the default once, for the collection (entry 00 'V' m) */
    ck_assert_uint_eq(tu_state_entries(a), before + 1);
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

/* The lens default of every document shows, and no document stores it:
 * the collection keeps it once (entry 00 'V' coll, docs/storage.md 4.2).
 * Documents with names of every length, two collections with different
 * defaults, a field whose name starts with the default's. */
static void
default_entry_is(const char *coll, const char *doc, const char *field,
                 const crdt_value *v)
{
    unsigned char k[CRDT_STATE_KEY_MAX], want[64];
    crdt_state_entry e;
    const void *got;
    size_t kl, wl, gl;
    crdt_raw *t;
    crdt_read *rd;
    crdt_field f;

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
                               &gl) == CRDT_ENOTFOUND, "%s/%s/%s: stored",
                  coll, doc, field);
    crdt_raw_abort(t);
    ck_assert_int_eq(crdt_read_begin(&rd, a), CRDT_OK);
    ck_assert_int_eq(crdt_read_field(&f, rd, coll, doc, field), CRDT_OK);
    ck_assert_int_eq(f.kind, CRDT_FIELD_REGISTER);
    ck_assert_int_eq(crdt_value_cmp(&f.value, v), 0);
    crdt_read_end(rd);
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
    before = tu_state_entries(a);
    migrate("collection q 1 -> 2\n"
            "add n string default \"-\"\n"
            "collection qq 1 -> 2\n"
            "add n int default -7\n"
            "add nn string default \"\"\n", &e);
    assert_hash_exact(&e);
    /* n where it was absent (odd lengths), nn on every document of qq:
     * kept once per collection, not per document */
    ck_assert_uint_eq(tu_state_entries(a), before + 2);
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


/* What field @p field of k/@p doc shows: its kind, and 1 if it shows at
 * all (its value in *@p v, a string copied into @p buf). */
static int
shown(crdt_field_kind *kind, crdt_value *v, char *buf, size_t size,
      const char *doc, const char *field)
{
    crdt_read *rd;
    crdt_field f;
    int rc;

    ck_assert_int_eq(crdt_read_begin(&rd, a), CRDT_OK);
    rc = crdt_read_field(&f, rd, "k", doc, field);
    if (rc == CRDT_OK) {
        *kind = f.kind;
        *v = f.value;
        if (f.value.type == CRDT_VSTRING) {
            snprintf(buf, size, "%.*s", (int)f.value.u.s.len,
                     f.value.u.s.ptr);
            v->u.s.ptr = buf;
        }
    }
    crdt_read_end(rd);
    ck_assert(rc == CRDT_OK || rc == CRDT_ENOTFOUND);
    return rc == CRDT_OK;
}

static int
names_cb(const crdt_field *f, void *ctx)
{
    strcat(ctx, f->name);
    strcat(ctx, ",");
    return 0;
}

static void
fields_are(const char *doc, const char *want)
{
    crdt_read *rd;
    char got[256] = "";

    ck_assert_int_eq(crdt_read_begin(&rd, a), CRDT_OK);
    ck_assert_int_eq(crdt_read_doc(rd, "k", doc, names_cb, got), CRDT_OK);
    crdt_read_end(rd);
    ck_assert_str_eq(got, want);
}

/* A lens default is kept once for its collection (docs/storage.md 4.2):
 * every document that was there shows it until a write, a field delete
 * or a doc delete says otherwise; a document born after it does not
 * show it; a later migration renames it and adds to it without writing
 * it into each document, and one that turns it into text stores it in
 * every document. The kept hash is the recomputed one throughout. */
START_TEST(test_kept_defaults_read_written_and_migrated_again)
{
    crdt_field_kind kind;
    crdt_value v, one = crdt_value_int(1), seven = crdt_value_int(7);
    crdt_value as = crdt_value_str("a", 1);
    char doc[8], buf[64];
    uint64_t before;
    crdt_txn *t;
    epoch_info e;

    for (int i = 1; i <= 5; i++) {
        snprintf(doc, sizeof doc, "d%d", i);
        ck_assert_int_eq(tu_put_int(a, "k", doc, "x", i), CRDT_OK);
    }
    before = tu_state_entries(a);
    migrate("collection k 1 -> 2\nadd note string default \"-\"\n", &e);
    assert_hash_exact(&e);
    epoch_info_clear(&e);
    ck_assert_uint_eq(tu_state_entries(a), before + 1);
    for (int i = 1; i <= 5; i++) {
        snprintf(doc, sizeof doc, "d%d", i);
        ck_assert(shown(&kind, &v, buf, sizeof buf, doc, "note"));
        ck_assert_int_eq(kind, CRDT_FIELD_REGISTER);
        ck_assert_str_eq(buf, "-");
    }
    fields_are("d5", "note,x,");

    ck_assert_int_eq(crdt_txn_begin(&t, a), CRDT_OK);
    ck_assert_int_eq(crdt_txn_put(t, "k", "d1", "note", &as), CRDT_OK);
    ck_assert_int_eq(crdt_txn_del_field(t, "k", "d2", "note"), CRDT_OK);
    ck_assert_int_eq(crdt_txn_del_doc(t, "k", "d3"), CRDT_OK);
    /* it is a register: a counter op on it is refused */
    ck_assert_int_eq(crdt_txn_incr(t, "k", "d4", "note", 1), CRDT_ETYPE);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    ck_assert(shown(&kind, &v, buf, sizeof buf, "d1", "note"));
    ck_assert_str_eq(buf, "a");
    ck_assert(!shown(&kind, &v, buf, sizeof buf, "d2", "note"));
    fields_are("d2", "x,");
    ck_assert(!shown(&kind, &v, buf, sizeof buf, "d3", "note"));
    /* born after the migration, or back after a delete: no default */
    ck_assert_int_eq(crdt_txn_begin(&t, a), CRDT_OK);
    ck_assert_int_eq(crdt_txn_put(t, "k", "d6", "x", &one), CRDT_OK);
    ck_assert_int_eq(crdt_txn_put(t, "k", "d3", "x", &seven), CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    fields_are("d6", "x,");
    fields_are("d3", "x,");
    assert_hash_exact(NULL);

    before = tu_state_entries(a);
    migrate("collection k 2 -> 3\nrename note -> memo\n"
            "add flag bool default false\n", &e);
    assert_hash_exact(&e);
    epoch_info_clear(&e);
    /* the kept entry replaced; d6 (born after it) stores its flag */
    ck_assert_uint_eq(tu_state_entries(a), before + 1);
    fields_are("d5", "flag,memo,x,");
    fields_are("d4", "flag,memo,x,");
    fields_are("d1", "flag,memo,x,");
    ck_assert(shown(&kind, &v, buf, sizeof buf, "d1", "memo"));
    ck_assert_str_eq(buf, "a");
    ck_assert(shown(&kind, &v, buf, sizeof buf, "d5", "memo"));
    ck_assert_str_eq(buf, "-");
    fields_are("d2", "flag,x,");
    fields_are("d3", "x,");
    fields_are("d6", "flag,x,");
    ck_assert(shown(&kind, &v, buf, sizeof buf, "d6", "flag"));
    ck_assert_int_eq(v.type, CRDT_VBOOL);
    ck_assert_int_eq(v.u.b, 0);

    migrate("collection k 3 -> 4\nconvert memo string -> text\n", &e);
    assert_hash_exact(&e);
    epoch_info_clear(&e);
    ck_assert(shown(&kind, &v, buf, sizeof buf, "d5", "memo"));
    ck_assert_int_eq(kind, CRDT_FIELD_TEXT);
    ck_assert_str_eq(buf, "-");
    ck_assert(shown(&kind, &v, buf, sizeof buf, "d1", "memo"));
    ck_assert_int_eq(kind, CRDT_FIELD_TEXT);
    ck_assert_str_eq(buf, "a");
    fields_are("d5", "flag,memo,x,");
    fields_are("d6", "flag,x,");
    fields_are("d2", "flag,x,");
}
END_TEST

/* A document whose only field a lens removes keeps its default stored:
 * left out, the document would be gone. */
START_TEST(test_default_alone_is_stored)
{
    crdt_field_kind kind;
    crdt_value v;
    char buf[64];
    epoch_info e;
    uint64_t before;

    ck_assert_int_eq(tu_put_int(a, "k", "only", "x", 1), CRDT_OK);
    ck_assert_int_eq(tu_put_int(a, "k", "more", "x", 2), CRDT_OK);
    ck_assert_int_eq(tu_put_int(a, "k", "more", "y", 3), CRDT_OK);
    before = tu_state_entries(a);
    migrate("collection k 1 -> 2\nremove x\nadd n string default \"z\"\n",
            &e);
    assert_hash_exact(&e);
    epoch_info_clear(&e);
    /* x gone twice, the kept entry, n stored in "only" */
    ck_assert_uint_eq(tu_state_entries(a), before - 2 + 1 + 1);
    fields_are("only", "n,");
    fields_are("more", "n,y,");
    ck_assert(shown(&kind, &v, buf, sizeof buf, "only", "n"));
    ck_assert_str_eq(buf, "z");
}
END_TEST

/* Enough documents for many of the second thread's batches (256 KiB):
 * the ring of four goes round several times. */
#define N_BIG 70000
#define BIG_LENS "collection c 1 -> 2\n" \
                 "rename v -> w\n" \
                 "add note string default \"\"\n" \
                 "convert w int -> string\n" \
                 "rename w -> value\n"

static void
fill_big(crdt_replica *r)
{
    crdt_txn *t;
    char doc[16];

    ck_assert_int_eq(crdt_txn_begin(&t, r), CRDT_OK);
    for (int i = 0; i < N_BIG; i++) {
        crdt_value v = crdt_value_int(i * 7919);
        snprintf(doc, sizeof doc, "d%06d", i);
        ck_assert_int_eq(crdt_txn_put(t, "c", doc, "v", &v), CRDT_OK);
        if (i % 100 == 0) /* collections around c, copied as they come */
            ck_assert_int_eq(crdt_txn_put(t, "b", doc, "v", &v), CRDT_OK);
        if (i % 97 == 0)
            ck_assert_int_eq(crdt_txn_put(t, "d", doc, "v", &v), CRDT_OK);
    }
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
}

typedef struct {
    uint64_t last, total;
    int calls, backwards;
} progress_seen;

static void
on_progress(uint64_t done, uint64_t total, void *ctx)
{
    progress_seen *p = ctx;

    if (done < p->last)
        p->backwards++;
    p->last = done;
    p->total = total;
    p->calls++;
}

START_TEST(test_many_batches_keep_state_and_hash)
{
    epoch_builder *bl;
    epoch_lens *l = tu_lens(BIG_LENS);
    progress_seen p = { 0, 0, 0, 0 };
    epoch_info e;
    uint64_t before;
    char doc[16], want[32];

    fill_big(a);
    before = tu_state_entries(a);
    ck_assert_int_eq(epoch_builder_new(&bl, a), CRDT_OK);
    ck_assert_int_eq(epoch_builder_add_lens(bl, l), CRDT_OK);
    epoch_builder_set_progress(bl, on_progress, &p);
    ck_assert_int_eq(epoch_builder_commit(&e, bl), CRDT_OK);
    epoch_builder_free(bl);
    epoch_lens_free(l);
    assert_hash_exact(&e);
    ck_assert_uint_eq(tu_state_entries(a), before + 1); /* note, once */
    ck_assert_int_eq(p.backwards, 0);
    ck_assert_int_gt(p.calls, 1);
    ck_assert_uint_eq(p.last, before);
    ck_assert_uint_eq(p.total, before);
    for (int i = 0; i < N_BIG; i += 1237) {
        snprintf(doc, sizeof doc, "d%06d", i);
        snprintf(want, sizeof want, "\"%d\"", i * 7919);
        field_is("c", doc, "value", want);
        field_is("c", doc, "note", "\"\"");
        field_is("c", doc, "v", "");
    }
    field_is("b", "d069900", "v", "553538100");
    field_is("d", "d069937", "v", "553831103");
    epoch_info_clear(&e);
}
END_TEST

/* The builder's result (second thread) against the inline rewrite of a
 * byte copy of the same replica: the same entries, byte for byte. */
START_TEST(test_second_thread_writes_what_inline_writes)
{
    char copy[256];
    crdt_replica *b;
    crdt_raw *ta, *tb;
    crdt_raw_cursor *ca, *cb;
    epoch__rewrite_opts o;
    epoch_lens *l = tu_lens(BIG_LENS);
    const void *ka, *va, *kb, *vb;
    size_t kla, vla, klb, vlb;
    unsigned char ha[32], hb[32];
    uint64_t n = 0;
    int ra, rb, wrote_seq = -1;

    fill_big(a);
    crdt_replica_close(a);
    tu_copy_dir(da, copy, sizeof copy);
    a = tu_open_dir(da);
    b = tu_open_dir(copy);
    migrate(BIG_LENS, NULL);

    memset(&o, 0, sizeof o);
    o.lens = l;
    ck_assert_int_eq(crdt_raw_begin(&tb, b, 1), CRDT_OK);
    ck_assert_int_eq(epoch__rewrite_slot(tb, &o, &wrote_seq), CRDT_OK);
    ck_assert_int_eq(wrote_seq, 0);
    ck_assert_int_eq(crdt_raw_swap_state(tb), CRDT_OK);
    crdt_raw_state_hash(tb, hb);
    ck_assert_int_eq(crdt_raw_begin(&ta, a, 0), CRDT_OK);
    crdt_raw_state_hash(ta, ha);
    ck_assert_mem_eq(ha, hb, 32);
    ck_assert_int_eq(crdt_raw_cursor_open(&ca, ta, crdt_raw_state_db(ta, 0)),
                     CRDT_OK);
    ck_assert_int_eq(crdt_raw_cursor_open(&cb, tb, crdt_raw_state_db(tb, 0)),
                     CRDT_OK);
    ra = crdt_raw_cursor_seek(ca, NULL, 0, &ka, &kla, &va, &vla);
    rb = crdt_raw_cursor_seek(cb, NULL, 0, &kb, &klb, &vb, &vlb);
    while (ra == CRDT_OK && rb == CRDT_OK) {
        ck_assert_uint_eq(kla, klb);
        ck_assert_mem_eq(ka, kb, kla);
        ck_assert_uint_eq(vla, vlb);
        ck_assert_mem_eq(va, vb, vla);
        n++;
        ra = crdt_raw_cursor_next(ca, &ka, &kla, &va, &vla);
        rb = crdt_raw_cursor_next(cb, &kb, &klb, &vb, &vlb);
    }
    ck_assert_int_eq(ra, CRDT_ENOTFOUND);
    ck_assert_int_eq(rb, CRDT_ENOTFOUND);
    ck_assert_uint_gt(n, N_BIG);
    crdt_raw_cursor_close(ca);
    crdt_raw_cursor_close(cb);
    crdt_raw_abort(ta);
    crdt_raw_abort(tb);
    epoch_lens_free(l);
    crdt_replica_close(b);
    test_rmtree(copy);
}
END_TEST

/* An entry the rewrite cannot read, after many batches were appended:
 * the migration fails as a whole and the replica stays as it was. */
START_TEST(test_unreadable_entry_late_fails_whole_migration)
{
    static const char bad[] = "zz-no-doc-key"; /* no NUL: not a key */
    epoch_builder *bl;
    epoch_lens *l = tu_lens(BIG_LENS);
    epoch_info cur;
    epoch_marker m;
    crdt_raw *t;
    unsigned char before[32], after[32];
    uint64_t n_before;

    crdt_raw_cursor *c;
    const void *k, *v;
    size_t kl, vl;
    int rc;

    fill_big(a);
    /* the state again, with the bad entry last, through the spare slot */
    ck_assert_int_eq(crdt_raw_begin(&t, a, 1), CRDT_OK);
    ck_assert_int_eq(crdt_raw_spare_clear(t), CRDT_OK);
    ck_assert_int_eq(crdt_raw_cursor_open(&c, t, crdt_raw_state_db(t, 0)),
                     CRDT_OK);
    for (rc = crdt_raw_cursor_seek(c, NULL, 0, &k, &kl, &v, &vl);
         rc == CRDT_OK; rc = crdt_raw_cursor_next(c, &k, &kl, &v, &vl))
        ck_assert_int_eq(crdt_raw_spare_put(t, k, kl, v, vl), CRDT_OK);
    ck_assert_int_eq(rc, CRDT_ENOTFOUND);
    crdt_raw_cursor_close(c);
    ck_assert_int_eq(crdt_raw_spare_put(t, bad, sizeof bad - 1, "x", 1),
                     CRDT_OK);
    ck_assert_int_eq(crdt_raw_swap_state(t), CRDT_OK);
    crdt_raw_state_hash(t, before);
    ck_assert_int_eq(crdt_raw_commit(t), CRDT_OK);
    n_before = tu_state_entries(a);
    ck_assert_int_eq(epoch_builder_new(&bl, a), CRDT_OK);
    ck_assert_int_eq(epoch_builder_add_lens(bl, l), CRDT_OK);
    ck_assert_int_eq(epoch_builder_commit(NULL, bl), CRDT_ECORRUPT);
    epoch_builder_free(bl);
    epoch_lens_free(l);
    ck_assert_int_eq(epoch_current(&cur, a), CRDT_OK);
    ck_assert_uint_eq(cur.number, 0);
    epoch_info_clear(&cur);
    ck_assert_int_eq(epoch_marker_get(&m, a), CRDT_ENOTFOUND);
    ck_assert_uint_eq(tu_state_entries(a), n_before);
    ck_assert_int_eq(crdt_raw_begin(&t, a, 0), CRDT_OK);
    crdt_raw_state_hash(t, after);
    crdt_raw_abort(t);
    ck_assert_mem_eq(before, after, 32);
    field_is("c", "d000001", "v", "7919");
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
    tcase_add_test(tc, test_kept_defaults_read_written_and_migrated_again);
    tcase_add_test(tc, test_default_alone_is_stored);
    tcase_add_test(tc, test_many_batches_keep_state_and_hash);
    tcase_add_test(tc, test_second_thread_writes_what_inline_writes);
    tcase_add_test(tc, test_unreadable_entry_late_fails_whole_migration);
    suite_add_tcase(s, tc);
    return s;
}
