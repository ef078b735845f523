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
#include "crdt/raw.h"
#include "epoch/epoch.h"
#include "epoch/lens.h"
#include "support/epoch_util.h"
#include "support/replica_util.h"
#include "support/support.h"

/* a and b: a fresh attached pair of one space for each test */
TU_PAIR_FIXTURE(tu_pair_open)


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

typedef struct {
    int n;
    char reason[64];
} qseen;

static int
q_cb(const epoch_quarantined *q, void *ctx)
{
    qseen *s = ctx;

    s->n++;
    snprintf(s->reason, sizeof s->reason, "%s", q->reason);
    return 0;
}

static void
assert_quarantined(crdt_replica *r, int n, const char *reason)
{
    qseen s = { 0, "" };

    ck_assert_int_eq(epoch_quarantine_list(r, q_cb, &s), CRDT_OK);
    ck_assert_int_eq(s.n, n);
    if (n > 0)
        ck_assert_str_eq(s.reason, reason);
}

/* Elements an epoch would drop now (the compaction run in a raw txn
 * that is then aborted). */
static uint64_t
droppable(crdt_replica *r)
{
    crdt_raw *t;
    uint64_t n = 0;

    ck_assert_int_eq(crdt_raw_begin(&t, r, 1), CRDT_OK);
    ck_assert_int_eq(crdt_raw_seq_compact(t, &n), CRDT_OK);
    crdt_raw_abort(t);
    return n;
}

START_TEST(test_compaction_places_stale_text_ops)
{
    char buf[128];

    ins(a, "t", 0, "abcdefgh");
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    /* b inserts between two elements a deletes, and between two that
     * survive */
    ins(b, "t", 4, "XY"); /* abcdXYefgh: origins d, e */
    ins(b, "t", 2, "Z");  /* abZcdXYefgh: origins b, c */
    del(a, "t", 3, 4);    /* a deletes "defg": abch */
    ck_assert_uint_eq(droppable(a), 4);
    tu_migrate(a, NULL, NULL);
    ck_assert_uint_eq(droppable(a), 0); /* dropped by the epoch */
    tu_migrate(a, NULL, NULL);
    ins(a, "t", 4, "!");
    text_of(buf, sizeof buf, a, "t");
    ck_assert_str_eq(buf, "abch!");
    ck_assert_int_eq(tu_reset_from(b, a), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(a, b), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    /* "XY" named dropped elements: quarantined, on both sides alike;
     * "Z" lands between its surviving origins */
    text_of(buf, sizeof buf, a, "t");
    ck_assert_str_eq(buf, "abZch!");
    text_of(buf, sizeof buf, b, "t");
    ck_assert_str_eq(buf, "abZch!");
    assert_quarantined(a, 1, "anchor compacted away");
    assert_quarantined(b, 1, "anchor compacted away");
    assert_same();
}
END_TEST

/* After an epoch: both replicas type concurrently around and inside the
 * compacted text, deletes of base elements, a list with a deleted element
 * and a set value; every read is what it was, and they converge. */
START_TEST(test_compacted_sequences_keep_working)
{
    char buf[128];
    crdt_txn *t;
    crdt_value v7 = crdt_value_int(7);
    crdt_read *rd;
    crdt_value *v;
    size_t k;

    ins(a, "t", 0, "hello world");
    del(a, "t", 5, 6);             /* hello */
    ins(a, "t", 5, " there");      /* hello there */
    del(a, "t", 0, 1);             /* ello there */
    ins(a, "t", 0, "H");           /* Hello there */
    lins(a, "l", 0, 1);
    lins(a, "l", 1, 2);
    lins(a, "l", 2, 3);
    ck_assert_int_eq(crdt_txn_begin(&t, a), CRDT_OK);
    ck_assert_int_eq(crdt_txn_list_delete(t, "c", "d", "l", 1, 1), CRDT_OK);
    ck_assert_int_eq(crdt_txn_list_set(t, "c", "d", "l", 1, &v7), CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    ck_assert_uint_eq(droppable(a), 8);
    tu_migrate(a, NULL, NULL);
    text_of(buf, sizeof buf, a, "t");
    ck_assert_str_eq(buf, "Hello there");
    ck_assert_int_eq(tu_reset_from(b, a), CRDT_OK);
    text_of(buf, sizeof buf, b, "t");
    ck_assert_str_eq(buf, "Hello there");
    assert_same();
    /* concurrent edits on the compacted text */
    ins(a, "t", 5, ",");
    ins(b, "t", 11, "!");
    del(a, "t", 0, 1);
    del(b, "t", 5, 6);
    ck_assert_int_eq(tu_sync_one_way(a, b), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    text_of(buf, sizeof buf, a, "t");
    ck_assert_str_eq(buf, "ello,!");
    text_of(buf, sizeof buf, b, "t");
    ck_assert_str_eq(buf, "ello,!");
    ck_assert_int_eq(crdt_read_begin(&rd, b), CRDT_OK);
    ck_assert_int_eq(crdt_read_list(&v, &k, rd, "c", "d", "l"), CRDT_OK);
    ck_assert_uint_eq(k, 2);
    ck_assert_int_eq(v[0].u.i, 1);
    ck_assert_int_eq(v[1].u.i, 7);
    crdt_list_free(v);
    crdt_read_end(rd);
    assert_same();
    /* a second epoch over that, then a cold read of a fresh copy */
    tu_migrate(a, NULL, NULL);
    ck_assert_int_eq(tu_reset_from(b, a), CRDT_OK);
    text_of(buf, sizeof buf, b, "t");
    ck_assert_str_eq(buf, "ello,!");
    assert_same();
}
END_TEST

/* A lens default (a register stamped 0) given to a document, and an
 * insert into the same field as a text, in either order: one state. */
static void
lens_default(crdt_replica *r, const char *field)
{
    crdt_raw *t;
    crdt_value nul = crdt_value_null();

    ck_assert_int_eq(crdt_raw_begin(&t, r, 1), CRDT_OK);
    ck_assert_int_eq(crdt_raw_state_default(t, "c", "d", field, &nul),
                     CRDT_OK);
    ck_assert_int_eq(crdt_raw_commit(t), CRDT_OK);
}

START_TEST(test_lens_default_and_text_in_either_order)
{
    char buf[64];

    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK); /* b joins */
    ins(b, "t", 0, "xy");
    lens_default(b, "t"); /* the text first: no default */
    lens_default(a, "t"); /* first the default, then the text */
    ck_assert_int_eq(tu_sync_one_way(a, b), CRDT_OK);
    text_of(buf, sizeof buf, a, "t");
    ck_assert_str_eq(buf, "xy");
    text_of(buf, sizeof buf, b, "t");
    ck_assert_str_eq(buf, "xy");
    assert_same();
}
END_TEST

/* A document of the cut whose only entry is a lens default, which a
 * text op rebased into that field takes away (above): the document is
 * not new, so it gets no born mark (docs/storage.md 4.2), whether the
 * text comes before or after another write to it. Replica a takes the
 * write first, a byte copy of a taken right after its migration takes
 * the text first; both end with the same entries. */
START_TEST(test_taken_default_does_not_make_a_document_new)
{
    char buf[64], dc[300], ha[65], hc[65];
    crdt_replica *c;

    ck_assert_int_eq(tu_put_int(a, "c", "d", "x", 1), CRDT_OK);
    ck_assert_int_eq(tu_put_int(a, "c", "e", "y", 2), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    ins(b, "t", 0, "hi"); /* b offline, against version 1 */
    /* d keeps its default stored (its only entry), e leaves it out */
    tu_migrate(a, "collection c 1 -> 2\nremove x\nadd t string default "
                  "\"\"\n", NULL);
    crdt_replica_close(a);
    tu_copy_dir(da, dc, sizeof dc);
    a = tu_open_dir(da);
    c = tu_open_dir(dc);
    ck_assert_int_eq(tu_put_int(a, "c", "d", "z", 9), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(a, b), CRDT_OK); /* the write, text */
    ck_assert_int_eq(tu_sync_one_way(c, b), CRDT_OK); /* the text, write */
    ck_assert_int_eq(tu_sync_one_way(c, a), CRDT_OK);
    text_of(buf, sizeof buf, c, "t");
    ck_assert_str_eq(buf, "hi");
    text_of(buf, sizeof buf, a, "t");
    ck_assert_str_eq(buf, "hi");
    tu_field_str(buf, sizeof buf, c, "c", "d", "z");
    ck_assert_str_eq(buf, "9");
    tu_hash(ha, a);
    tu_hash(hc, c);
    ck_assert_str_eq(ha, hc);
    crdt_replica_close(c);
    test_rmtree(dc);
}
END_TEST

static void
put_str(crdt_replica *r, const char *field, const char *s)
{
    crdt_txn *t;
    crdt_value v = crdt_value_str(s, strlen(s));

    ck_assert_int_eq(crdt_txn_begin(&t, r), CRDT_OK);
    ck_assert_int_eq(crdt_txn_put(t, "c", "d", field, &v), CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
}

/* The string register c/d/@p field, or "<type N>" / "<absent>". */
static void
str_of(char *buf, size_t size, crdt_replica *r, const char *field)
{
    crdt_read *rd;
    crdt_field f;
    int rc;

    ck_assert_int_eq(crdt_read_begin(&rd, r), CRDT_OK);
    rc = crdt_read_field(&f, rd, "c", "d", field);
    if (rc == CRDT_ENOTFOUND)
        snprintf(buf, size, "<absent>");
    else if (f.kind != CRDT_FIELD_REGISTER || f.value.type != CRDT_VSTRING)
        snprintf(buf, size, "<kind %d>", (int)f.kind);
    else
        snprintf(buf, size, "%.*s", (int)f.value.u.s.len, f.value.u.s.ptr);
    crdt_read_end(rd);
}

/* A lens turns a string register into a text: the documents' strings
 * become texts everyone edits by element; a stale replica's write of
 * the old string is quarantined; ops on other fields are rebased. */
START_TEST(test_lens_string_to_text)
{
    char buf[128];

    put_str(a, "body", "h\xc3\xa9llo");
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    put_str(b, "body", "bye");   /* stale: against the string */
    put_str(b, "title", "t1");   /* stale, on a field the lens keeps */
    tu_migrate(a, "collection c 1 -> 2\nconvert body string -> text\n",
               NULL);
    text_of(buf, sizeof buf, a, "body");
    ck_assert_str_eq(buf, "h\xc3\xa9llo");
    ins(a, "body", 5, "!");
    del(a, "body", 0, 1);
    ck_assert_int_eq(tu_reset_from(b, a), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(a, b), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    text_of(buf, sizeof buf, a, "body");
    ck_assert_str_eq(buf, "\xc3\xa9llo!");
    text_of(buf, sizeof buf, b, "body");
    ck_assert_str_eq(buf, "\xc3\xa9llo!");
    ins(b, "body", 0, "H"); /* b edits the text too, after its reset */
    ck_assert_int_eq(tu_sync_one_way(a, b), CRDT_OK);
    text_of(buf, sizeof buf, a, "body");
    ck_assert_str_eq(buf, "H\xc3\xa9llo!");
    str_of(buf, sizeof buf, a, "title");
    ck_assert_str_eq(buf, "t1");
    assert_quarantined(a, 1, "field converted to text");
    assert_quarantined(b, 1, "field converted to text");
    assert_same();
}
END_TEST

/* And back: a text becomes a string register of its visible text; a
 * stale replica's text insert is quarantined. */
START_TEST(test_lens_text_to_string)
{
    char buf[128];

    crdt_txn *t;

    ins(a, "t", 0, "abcdef");
    del(a, "t", 1, 2);           /* adef */
    ins(a, "u", 0, "gone");      /* a deleted text stays deleted */
    ck_assert_int_eq(crdt_txn_begin(&t, a), CRDT_OK);
    ck_assert_int_eq(crdt_txn_del_field(t, "c", "d", "u"), CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    ins(b, "t", 4, "!");         /* stale: against the text */
    tu_migrate(a, "collection c 1 -> 2\nconvert t text -> string\n"
               "rename t -> s\nconvert u text -> string\n", NULL);
    str_of(buf, sizeof buf, a, "s");
    ck_assert_str_eq(buf, "adef");
    str_of(buf, sizeof buf, a, "u");
    ck_assert_str_eq(buf, "<absent>");
    text_of(buf, sizeof buf, a, "t");
    ck_assert_str_eq(buf, "<absent>");
    ck_assert_int_eq(tu_reset_from(b, a), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(a, b), CRDT_OK);
    str_of(buf, sizeof buf, b, "s");
    ck_assert_str_eq(buf, "adef");
    assert_quarantined(a, 1, "field converted to string");
    assert_quarantined(b, 1, "field converted to string");
    assert_same();
    put_str(b, "s", "new"); /* a real write wins over the converted one */
    ck_assert_int_eq(tu_sync_one_way(a, b), CRDT_OK);
    str_of(buf, sizeof buf, a, "s");
    ck_assert_str_eq(buf, "new");
    assert_same();
}
END_TEST

/* The language: the spelling, its canonical text and its inverse. */
START_TEST(test_lens_text_conversion_language)
{
    static const char *const bad[] = {
        "collection c 1 -> 2\nconvert f int -> text\n",
        "collection c 1 -> 2\nconvert f text -> text\n",
        "collection c 1 -> 2\nconvert f string -> text default \"\"\n",
    };
    const char *src = "collection c 1 -> 2\nconvert body string -> text\n";
    epoch_lens *l, *inv;
    char *text;
    size_t len;

    ck_assert_int_eq(epoch_lens_parse(&l, src, strlen(src), NULL), CRDT_OK);
    ck_assert_int_eq(epoch_lens_format(&text, &len, l), CRDT_OK);
    ck_assert_str_eq(text, src);
    free(text);
    ck_assert_int_eq(epoch_lens_invert(&inv, l), CRDT_OK);
    ck_assert_int_eq(epoch_lens_format(&text, &len, inv), CRDT_OK);
    ck_assert_ptr_nonnull(strstr(text, "convert body text -> string"));
    free(text);
    epoch_lens_free(inv);
    epoch_lens_free(l);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        l = NULL;
        ck_assert_int_eq(epoch_lens_parse(&l, bad[i], strlen(bad[i]), NULL),
                         CRDT_ECORRUPT);
    }
}
END_TEST

/* A replica that holds exactly the cut re-derives an epoch over text
 * (compaction, and a string -> text lens) to the same state hash. */
static void
rederive(const char *lens_text)
{
    epoch_info e;
    epoch_check chk;

    tu_migrate(a, lens_text, &e);
    ck_assert_int_eq(epoch_store_records(b,
                                         (const unsigned char *const *)&e.raw,
                                         &e.raw_len, 1),
                     CRDT_OK);
    ck_assert_int_eq(epoch_check_derivation(&chk, b, e.id), CRDT_OK);
    ck_assert_msg(chk.verdict == EPOCH_DERIVED_MATCH, "%s", chk.reason);
    epoch_info_clear(&e);
}

START_TEST(test_rederived_epochs_over_text)
{
    put_str(a, "body", "abc");
    ins(a, "t", 0, "hello world");
    del(a, "t", 2, 5);
    lins(a, "l", 0, 1);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    rederive(NULL);
    ck_assert_int_eq(tu_reset_from(b, a), CRDT_OK);
    del(a, "t", 0, 1);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    rederive("collection c 1 -> 2\nconvert body string -> text\n");
    ck_assert_int_eq(tu_reset_from(b, a), CRDT_OK);
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

/* A lens migration compacts text fields whether the lens touches their
 * collection (the text goes through the rewrite) or not (copied as it
 * is); one of another collection only takes the same path. */
START_TEST(test_lens_migrations_compact_text_in_any_collection)
{
    char buf[128];

    ins(a, "t", 0, "abcdefgh");
    del(a, "t", 3, 4);
    ck_assert_int_eq(tu_put_int(a, "m", "x", "v", 1), CRDT_OK);
    ck_assert_uint_eq(droppable(a), 4);
    tu_migrate(a, "collection m 1 -> 2\nrename v -> w\n", NULL);
    ck_assert_uint_eq(droppable(a), 0);
    text_of(buf, sizeof buf, a, "t");
    ck_assert_str_eq(buf, "abch");
    ins(a, "t", 1, "XYZ");
    del(a, "t", 1, 3);
    ck_assert_uint_eq(droppable(a), 3);
    tu_migrate(a, "collection c 1 -> 2\nadd n int default 1\n", NULL);
    ck_assert_uint_eq(droppable(a), 0);
    text_of(buf, sizeof buf, a, "t");
    ck_assert_str_eq(buf, "abch");
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
    tcase_add_test(tc, test_compacted_sequences_keep_working);
    tcase_add_test(tc, test_lens_default_and_text_in_either_order);
    tcase_add_test(tc, test_taken_default_does_not_make_a_document_new);
    tcase_add_test(tc, test_lens_string_to_text);
    tcase_add_test(tc, test_lens_text_to_string);
    tcase_add_test(tc, test_lens_text_conversion_language);
    tcase_add_test(tc, test_rederived_epochs_over_text);
    tcase_add_test(tc, test_custom_migration_keeps_text_and_list);
    tcase_add_test(tc, test_lens_migrations_compact_text_in_any_collection);
    suite_add_tcase(s, tc);
    return s;
}
