/*
 * test_text.c: text and list fields: local edits, persistence, the
 * interleaving anomalies of the Fugue paper (Weidner and Kleppmann,
 * "The Art of the Fugue", 2023), convergence whatever the delivery
 * order, lists, cursors and type clashes.
 */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crdt/crdt.h"
#include "crdt/raw.h"
#include "support/replica_util.h"
#include "support/support.h"

#define MAXR 4
static char dirs[MAXR][256];
static crdt_replica *rep[MAXR];
static int nrep;

static void
open_n(int n)
{
    crdt_read *rd;
    crdt_stats st;

    nrep = n;
    rep[0] = tu_create(dirs[0], sizeof dirs[0], NULL);
    ck_assert_int_eq(crdt_read_begin(&rd, rep[0]), CRDT_OK);
    crdt_read_end(rd);
    (void)st;
    for (int i = 1; i < n; i++) {
        unsigned char space[CRDT_SPACE_ID_BYTES];
        crdt_replica_space_id(rep[0], space);
        rep[i] = tu_create(dirs[i], sizeof dirs[i], space);
    }
}

static void
close_all(void)
{
    for (int i = 0; i < nrep; i++) {
        crdt_replica_close(rep[i]);
        test_rmtree(dirs[i]);
    }
    nrep = 0;
}

static void
ins(crdt_replica *r, uint64_t pos, const char *s)
{
    crdt_txn *t;

    ck_assert_int_eq(crdt_txn_begin(&t, r), CRDT_OK);
    ck_assert_int_eq(crdt_txn_text_insert(t, "c", "d", "t", pos, s,
                                          strlen(s)), CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
}

static void
del(crdt_replica *r, uint64_t pos, uint64_t n)
{
    crdt_txn *t;

    ck_assert_int_eq(crdt_txn_begin(&t, r), CRDT_OK);
    ck_assert_int_eq(crdt_txn_text_delete(t, "c", "d", "t", pos, n), CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
}

/* Type @p s one code point at a time from @p pos. */
static void
type_fwd(crdt_replica *r, uint64_t pos, const char *s)
{
    char c[8];

    for (size_t i = 0, k = 0; s[i]; k++) {
        size_t n = 1;
        while (((unsigned char)s[i + n] & 0xc0) == 0x80)
            n++;
        memcpy(c, s + i, n);
        c[n] = 0;
        ins(r, pos + k, c);
        i += n;
    }
}

/* Type @p s backwards: every character at @p pos (cursor stays put). */
static void
type_back(crdt_replica *r, uint64_t pos, const char *s)
{
    char c[2] = { 0, 0 };

    for (size_t i = strlen(s); i > 0; i--) {
        c[0] = s[i - 1];
        ins(r, pos, c);
    }
}

static char *
text(crdt_replica *r)
{
    crdt_read *rd;
    char *s = NULL;
    size_t n;
    int rc;

    ck_assert_int_eq(crdt_read_begin(&rd, r), CRDT_OK);
    rc = crdt_read_text(&s, &n, rd, "c", "d", "t");
    crdt_read_end(rd);
    if (rc == CRDT_ENOTFOUND)
        return strdup("<none>");
    ck_assert_int_eq(rc, CRDT_OK);
    ck_assert_uint_eq(strlen(s), n);
    return s;
}

static void
ck_text(crdt_replica *r, const char *want)
{
    char *s = text(r);

    ck_assert_str_eq(s, want);
    crdt_text_free(s);
}

static void
sync_all(void)
{
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < nrep; i++)
            for (int j = 0; j < nrep; j++)
                if (i != j)
                    ck_assert_int_eq(tu_sync_one_way(rep[i], rep[j]),
                                     CRDT_OK);
}

static void
ck_same_hash(void)
{
    char h0[65], h[65];

    tu_hash(h0, rep[0]);
    for (int i = 1; i < nrep; i++) {
        tu_hash(h, rep[i]);
        ck_assert_str_eq(h, h0);
    }
}

START_TEST(test_local_edits)
{
    crdt_read *rd;
    char *s;
    size_t n;
    uint64_t len;

    open_n(1);
    ck_text(rep[0], "<none>");
    ins(rep[0], 0, "hello");
    ins(rep[0], 5, " world");
    ins(rep[0], 0, ">> ");
    ck_text(rep[0], ">> hello world");
    del(rep[0], 0, 3);
    del(rep[0], 4, 2); /* "hell world" minus "o " */
    ck_text(rep[0], "hellworld");
    ins(rep[0], 4, "\xc3\xa9\xe2\x82\xac!"); /* e-acute, euro: code points */
    ck_text(rep[0], "hell\xc3\xa9\xe2\x82\xac!world");
    ck_assert_int_eq(crdt_read_begin(&rd, rep[0]), CRDT_OK);
    ck_assert_int_eq(crdt_read_seq_len(&len, rd, "c", "d", "t"), CRDT_OK);
    ck_assert_uint_eq(len, 12);
    ck_assert_int_eq(crdt_read_text_slice(&s, &n, rd, "c", "d", "t", 4, 3),
                     CRDT_OK);
    ck_assert_str_eq(s, "\xc3\xa9\xe2\x82\xac!");
    crdt_text_free(s);
    ck_assert_int_eq(crdt_read_text_slice(&s, &n, rd, "c", "d", "t", 13, 1),
                     CRDT_EINVAL);
    crdt_read_end(rd);
    del(rep[0], 5, 1);
    ck_text(rep[0], "hell\xc3\xa9!world");

    /* reopened: the order is rebuilt from the stored runs */
    crdt_replica_close(rep[0]);
    {
        char sub[300];
        crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
        snprintf(sub, sizeof sub, "%s/r", dirs[0]);
        ck_assert_int_eq(crdt_replica_open(&rep[0], sub, &o), CRDT_OK);
    }
    ck_text(rep[0], "hell\xc3\xa9!world");
    ins(rep[0], 11, "!");
    ck_text(rep[0], "hell\xc3\xa9!world!");
    close_all();
}
END_TEST

START_TEST(test_bad_calls)
{
    crdt_txn *t;
    crdt_value v = crdt_value_int(1);

    open_n(1);
    ins(rep[0], 0, "abc");
    ck_assert_int_eq(crdt_txn_begin(&t, rep[0]), CRDT_OK);
    ck_assert_int_eq(crdt_txn_text_insert(t, "c", "d", "t", 4, "x", 1),
                     CRDT_EINVAL);
    ck_assert_int_eq(crdt_txn_text_insert(t, "c", "d", "t", 0, "\xff", 1),
                     CRDT_EINVAL);
    ck_assert_int_eq(crdt_txn_text_insert(t, "c", "d", "t", 0, "a\0b", 3),
                     CRDT_EINVAL);
    ck_assert_int_eq(crdt_txn_text_delete(t, "c", "d", "t", 2, 2),
                     CRDT_EINVAL);
    ck_assert_int_eq(crdt_txn_text_delete(t, "c", "d", "nope", 0, 1),
                     CRDT_ENOTFOUND);
    ck_assert_int_eq(crdt_txn_put(t, "c", "d", "t", &v), CRDT_ETYPE);
    ck_assert_int_eq(crdt_txn_list_insert(t, "c", "d", "t", 0, &v),
                     CRDT_ETYPE);
    ck_assert_int_eq(crdt_txn_put(t, "c", "d", "r", &v), CRDT_OK);
    ck_assert_int_eq(crdt_txn_text_insert(t, "c", "d", "r", 0, "x", 1),
                     CRDT_ETYPE);
    ck_assert_int_eq(crdt_txn_text_insert(t, "c", "d", "t", 0, "", 0),
                     CRDT_OK);
    ck_assert_uint_eq(crdt_txn_op_count(t), 1);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    ck_text(rep[0], "abc");
    close_all();
}
END_TEST

/* The field view: a text is a string, a list its values in order. */
START_TEST(test_field_view)
{
    crdt_read *rd;
    crdt_field f;
    crdt_txn *t;
    crdt_value a = crdt_value_str("a", 1), b = crdt_value_int(2);
    char buf[256];

    open_n(1);
    ins(rep[0], 0, "xyz");
    ck_assert_int_eq(crdt_txn_begin(&t, rep[0]), CRDT_OK);
    ck_assert_int_eq(crdt_txn_list_insert(t, "c", "d", "l", 0, &b), CRDT_OK);
    ck_assert_int_eq(crdt_txn_list_insert(t, "c", "d", "l", 0, &a), CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    ck_assert_int_eq(crdt_read_begin(&rd, rep[0]), CRDT_OK);
    ck_assert_int_eq(crdt_read_field(&f, rd, "c", "d", "t"), CRDT_OK);
    ck_assert_int_eq(f.kind, CRDT_FIELD_TEXT);
    ck_assert_int_eq(f.value.type, CRDT_VSTRING);
    ck_assert_uint_eq(f.value.u.s.len, 3);
    ck_assert_int_eq(memcmp(f.value.u.s.ptr, "xyz", 3), 0);
    ck_assert_int_eq(crdt_read_field(&f, rd, "c", "d", "l"), CRDT_OK);
    ck_assert_int_eq(f.kind, CRDT_FIELD_LIST);
    ck_assert_uint_eq(f.n_elems, 2);
    ck_assert_int_eq(f.elems[0].type, CRDT_VSTRING);
    ck_assert_int_eq(f.elems[1].u.i, 2);
    crdt_read_end(rd);
    tu_field_str(buf, sizeof buf, rep[0], "c", "d", "l");
    ck_assert_str_eq(buf, "[\"a\",2]");
    close_all();
}
END_TEST

/* Fugue paper, forward interleaving: two users type a word each at the
 * same place at the same time; the words must not interleave. */
START_TEST(test_forward_interleaving)
{
    char *s;

    open_n(2);
    ins(rep[0], 0, "Shopping:\n");
    sync_all();
    type_fwd(rep[0], 10, "eggs\n");
    type_fwd(rep[1], 10, "milk\n");
    type_fwd(rep[0], 15, "bread\n");
    sync_all();
    s = text(rep[0]);
    ck_assert_msg(strcmp(s, "Shopping:\neggs\nbread\nmilk\n") == 0 ||
                      strcmp(s, "Shopping:\nmilk\neggs\nbread\n") == 0,
                  "interleaved: %s", s);
    ck_text(rep[1], s);
    free(s);
    ck_same_hash();
    close_all();
}
END_TEST

/* Fugue paper, backward interleaving: both users type backwards
 * (each character before the previous one). Plain RGA interleaves here;
 * the runs must stay whole. */
START_TEST(test_backward_interleaving)
{
    char *s;

    open_n(2);
    ins(rep[0], 0, "[]");
    sync_all();
    type_back(rep[0], 1, "alice");
    type_back(rep[1], 1, "bob");
    sync_all();
    s = text(rep[0]);
    ck_assert_msg(strcmp(s, "[alicebob]") == 0 ||
                      strcmp(s, "[bobalice]") == 0,
                  "interleaved: %s", s);
    ck_text(rep[1], s);
    free(s);
    ck_same_hash();
    close_all();
}
END_TEST

/* Fugue paper, figure of the ambiguous case: user A types "abc" then
 * goes back and types "x" between a and b; concurrently B types "123"
 * after "a" of a shared "a". Every word stays in one piece, on both
 * replicas, and three replicas typing at one place never mix. */
START_TEST(test_three_way_same_place)
{
    char *s;
    const char *words[3] = { "one ", "two ", "three " };

    open_n(3);
    ins(rep[0], 0, "<>");
    sync_all();
    for (int i = 0; i < 3; i++)
        type_fwd(rep[i], 1, words[i]);
    type_back(rep[2], 1, "back ");
    sync_all();
    s = text(rep[0]);
    ck_assert_uint_eq(strlen(s), 2 + 4 + 4 + 6 + 5);
    for (int i = 0; i < 3; i++)
        ck_assert_msg(strstr(s, words[i]) != NULL, "%s split: %s", words[i], s);
    ck_assert_msg(strstr(s, "back ") != NULL, "back split: %s", s);
    for (int i = 1; i < 3; i++)
        ck_text(rep[i], s);
    free(s);
    ck_same_hash();
    close_all();
}
END_TEST

/* Deletes of ranges another replica inserts into, and concurrent
 * deletes of the same range. */
START_TEST(test_concurrent_deletes)
{
    open_n(2);
    ins(rep[0], 0, "0123456789");
    sync_all();
    del(rep[0], 2, 6);        /* 01 89 */
    ins(rep[1], 5, "abc");    /* 01234abc56789 */
    del(rep[1], 3, 4);        /* 012bc56789 -> wait: deletes 3,4,a,b */
    sync_all();
    ck_text(rep[0], "01c89");
    ck_text(rep[1], "01c89");
    ck_same_hash();
    close_all();
}
END_TEST

typedef struct {
    unsigned char *data;
    size_t len;
} blob;

/* Every change of @p from, merged into @p to one at a time in a random
 * order (gaps in one actor's chain wait; missing origins wait). */
static void
deliver_shuffled(crdt_replica *to, crdt_replica *from, uint64_t *rng)
{
    crdt_export *e;
    const unsigned char *p;
    size_t len, n = 0, cap = 0;
    blob *all = NULL;

    ck_assert_int_eq(crdt_export_begin(&e, from, NULL), CRDT_OK);
    while (crdt_export_next(e, &p, &len) == CRDT_OK) {
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            all = realloc(all, cap * sizeof *all);
        }
        all[n].data = malloc(len);
        memcpy(all[n].data, p, len);
        all[n].len = len;
        n++;
    }
    crdt_export_end(e);
    for (size_t i = n; i > 1; i--) {
        size_t j = test_rand(rng) % i;
        blob tmp = all[i - 1];
        all[i - 1] = all[j];
        all[j] = tmp;
    }
    for (size_t i = 0; i < n; i++) {
        crdt_bytes b = { all[i].data, all[i].len };
        ck_assert_int_eq(crdt_merge(NULL, to, &b, 1), CRDT_OK);
        free(all[i].data);
    }
    free(all);
}

/* Three writers edit concurrently with random inserts and deletes,
 * syncing now and then; a fourth replica receives everything in a
 * random order. Every replica ends with the same text and state hash. */
START_TEST(test_random_orders_converge)
{
    uint64_t rng = test_seed("text convergence") + (uint64_t)_i;
    static const char *pieces[] = { "a", "bc", "def", "\xc3\xa9", "xyz!",
                                    "\xe2\x82\xac" };
    char *want;

    open_n(4);
    for (int round = 0; round < 20; round++) {
        for (int w = 0; w < 3; w++) {
            int edits = 1 + (int)(test_rand(&rng) % 4);
            for (int k = 0; k < edits; k++) {
                crdt_read *rd;
                uint64_t len = 0;
                int rc;
                ck_assert_int_eq(crdt_read_begin(&rd, rep[w]), CRDT_OK);
                rc = crdt_read_seq_len(&len, rd, "c", "d", "t");
                crdt_read_end(rd);
                ck_assert(rc == CRDT_OK || rc == CRDT_ENOTFOUND);
                if (len > 0 && test_rand(&rng) % 3 == 0) {
                    uint64_t pos = test_rand(&rng) % len;
                    uint64_t n = 1 + test_rand(&rng) % (len - pos < 5
                                                         ? len - pos : 5);
                    del(rep[w], pos, n);
                } else {
                    const char *p = pieces[test_rand(&rng) % 6];
                    uint64_t pos = test_rand(&rng) % (len + 1);
                    if (test_rand(&rng) % 2)
                        type_fwd(rep[w], pos, p);
                    else
                        ins(rep[w], pos, p);
                }
            }
        }
        if (test_rand(&rng) % 4 == 0) {
            int a = (int)(test_rand(&rng) % 3), b = (int)(test_rand(&rng) % 3);
            if (a != b)
                ck_assert_int_eq(tu_sync_one_way(rep[a], rep[b]), CRDT_OK);
        }
    }
    for (int w = 0; w < 3; w++)
        deliver_shuffled(rep[3], rep[w], &rng);
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 3; j++)
                if (i != j)
                    ck_assert_int_eq(tu_sync_one_way(rep[i], rep[j]),
                                     CRDT_OK);
    want = text(rep[0]);
    for (int i = 1; i < 4; i++) {
        char *got = text(rep[i]);
        ck_assert_msg(strcmp(got, want) == 0, "replica %d: %s\nwant %s", i,
                      got, want);
        free(got);
    }
    free(want);
    ck_same_hash();
    /* a cold rebuild gives the same text as the cached order */
    {
        char sub[300];
        crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
        want = text(rep[3]);
        crdt_replica_close(rep[3]);
        snprintf(sub, sizeof sub, "%s/r", dirs[3]);
        ck_assert_int_eq(crdt_replica_open(&rep[3], sub, &o), CRDT_OK);
        ck_text(rep[3], want);
        free(want);
    }
    close_all();
}
END_TEST

START_TEST(test_list_ops)
{
    crdt_txn *t;
    crdt_read *rd;
    crdt_value *vals;
    size_t n;
    crdt_value v[4] = { crdt_value_int(1), crdt_value_str("two", 3),
                        crdt_value_bool(1), crdt_value_bytes("\0b", 2) };

    open_n(2);
    ck_assert_int_eq(crdt_txn_begin(&t, rep[0]), CRDT_OK);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(crdt_txn_list_insert(t, "c", "d", "l", (uint64_t)i,
                                              &v[i]), CRDT_OK);
    ck_assert_int_eq(crdt_txn_list_set(t, "c", "d", "l", 4, &v[0]),
                     CRDT_EINVAL);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    sync_all();
    /* concurrent: replica 0 sets element 1, replica 1 deletes element 0
     * and sets element 1 later (its stamp wins) */
    ck_assert_int_eq(crdt_txn_begin(&t, rep[0]), CRDT_OK);
    ck_assert_int_eq(crdt_txn_list_set(t, "c", "d", "l", 1, &v[2]), CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    ck_assert_int_eq(crdt_txn_begin(&t, rep[1]), CRDT_OK);
    ck_assert_int_eq(crdt_txn_list_delete(t, "c", "d", "l", 0, 1), CRDT_OK);
    ck_assert_int_eq(crdt_txn_list_set(t, "c", "d", "l", 0,
                                       &(crdt_value){ .type = CRDT_VINT,
                                                      .u.i = 99 }), CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    sync_all();
    for (int r = 0; r < 2; r++) {
        ck_assert_int_eq(crdt_read_begin(&rd, rep[r]), CRDT_OK);
        ck_assert_int_eq(crdt_read_list(&vals, &n, rd, "c", "d", "l"),
                         CRDT_OK);
        crdt_read_end(rd);
        ck_assert_uint_eq(n, 3);
        ck_assert_int_eq(vals[0].type, CRDT_VINT);
        ck_assert_int_eq(vals[0].u.i, 99);
        ck_assert_int_eq(vals[1].type, CRDT_VBOOL);
        ck_assert_int_eq(vals[2].type, CRDT_VBYTES);
        ck_assert_int_eq(memcmp(vals[2].u.s.ptr, "\0b", 2), 0);
        crdt_list_free(vals);
    }
    ck_same_hash();
    close_all();
}
END_TEST

START_TEST(test_cursors)
{
    crdt_read *rd;
    crdt_cursor c, end, back;
    unsigned char b[CRDT_CURSOR_BYTES];
    uint64_t pos;

    open_n(2);
    ins(rep[0], 0, "hello world");
    sync_all();
    ck_assert_int_eq(crdt_read_begin(&rd, rep[0]), CRDT_OK);
    ck_assert_int_eq(crdt_read_cursor_at(&c, rd, "c", "d", "t", 6), CRDT_OK);
    ck_assert_int_eq(crdt_read_cursor_at(&end, rd, "c", "d", "t", 11),
                     CRDT_OK);
    ck_assert_int_eq(crdt_read_cursor_at(&back, rd, "c", "d", "t", 12),
                     CRDT_EINVAL);
    crdt_read_end(rd);
    crdt_cursor_bytes(b, &c);
    crdt_cursor_parse(&back, b);
    ins(rep[1], 0, ">>> ");   /* before the cursor, on another replica */
    del(rep[0], 9, 2);       /* after it */
    sync_all();
    ck_assert_int_eq(crdt_read_begin(&rd, rep[0]), CRDT_OK);
    ck_assert_int_eq(crdt_read_cursor_pos(&pos, rd, "c", "d", "t", &back),
                     CRDT_OK);
    ck_assert_uint_eq(pos, 10); /* still before the 'w' */
    ck_assert_int_eq(crdt_read_cursor_pos(&pos, rd, "c", "d", "t", &end),
                     CRDT_OK);
    ck_assert_uint_eq(pos, 13);
    crdt_read_end(rd);
    del(rep[0], 9, 3); /* the space, "w" and "o" are gone */
    ck_assert_int_eq(crdt_read_begin(&rd, rep[0]), CRDT_OK);
    ck_assert_int_eq(crdt_read_cursor_pos(&pos, rd, "c", "d", "t", &c),
                     CRDT_OK);
    ck_assert_uint_eq(pos, 9);
    crdt_read_end(rd);
    close_all();
}
END_TEST

/* A typing run of many one-character changes is one stored run. */
START_TEST(test_typing_run_and_field_delete)
{
    crdt_txn *t;
    char buf[64];

    open_n(2);
    type_fwd(rep[0], 0, "abcdefghijklmnopqrstuvwxyz");
    sync_all();
    ck_text(rep[1], "abcdefghijklmnopqrstuvwxyz");
    ins(rep[1], 26, "!");
    ck_assert_int_eq(crdt_txn_begin(&t, rep[0]), CRDT_OK);
    ck_assert_int_eq(crdt_txn_del_field(t, "c", "d", "t"), CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    ck_text(rep[0], "");
    sync_all();
    /* the concurrent insert survives the field delete */
    ck_text(rep[0], "!");
    ck_text(rep[1], "!");
    tu_field_str(buf, sizeof buf, rep[0], "c", "d", "t");
    ck_assert_str_eq(buf, "\"!\"");
    ck_same_hash();
    close_all();
}
END_TEST

/* The stored state hash of @p r equals the one computed from its
 * records: the merge kept the hash of every record it changed. */
static void
ck_hash_of_records(crdt_replica *r)
{
    unsigned char kept[32], again[32];
    crdt_raw *t;

    ck_assert_int_eq(crdt_raw_begin(&t, r, 0), CRDT_OK);
    crdt_raw_state_hash(t, kept);
    ck_assert_int_eq(crdt_raw_state_rehash(t, again), CRDT_OK);
    crdt_raw_abort(t);
    ck_assert_mem_eq(kept, again, 32);
}

/*
 * A merge writes a sequence's run and delete records once, at its end
 * (seq_store.c): whatever the batches, the records, the text and the
 * state hash are those of merging change by change. The history types
 * runs (growing over many changes), deletes ranges that join on both
 * sides, and deletes again inside deleted ranges; replica 1 takes it in
 * ONE crdt_merge, 2 change by change, 3 half by half (its second batch
 * grows runs and delete records the first one stored).
 */
START_TEST(test_one_batch_merge_is_change_by_change)
{
    uint64_t rng = test_seed("one batch merge");
    tu_batch b;
    crdt_merge_report mr;
    char *want;

    open_n(4);
    type_fwd(rep[0], 0, "the quick brown fox jumps over the lazy dog");
    for (int i = 0; i < 120; i++) {
        crdt_read *rd;
        uint64_t len = 0;

        ck_assert_int_eq(crdt_read_begin(&rd, rep[0]), CRDT_OK);
        ck_assert_int_eq(crdt_read_seq_len(&len, rd, "c", "d", "t"), CRDT_OK);
        crdt_read_end(rd);
        switch (test_rand(&rng) % 4) {
        case 0: /* a backspace run */
            for (uint64_t k = 1 + test_rand(&rng) % 4, p = len / 2;
                 k > 0 && p > 0; k--, p--)
                del(rep[0], p - 1, 1);
            break;
        case 1: /* a delete of a few, somewhere */
            if (len > 3)
                del(rep[0], test_rand(&rng) % (len - 3),
                    1 + test_rand(&rng) % 3);
            break;
        default: /* typing */
            type_fwd(rep[0], test_rand(&rng) % (len + 1),
                     i % 2 ? "ab" : "xyz");
        }
    }
    want = text(rep[0]);
    b = tu_export_all(rep[0]);
    ck_assert_uint_gt(b.n, 200);
    ck_assert_int_eq(crdt_merge(&mr, rep[1], b.v, b.n), CRDT_OK);
    for (size_t i = 0; i < b.n; i++)
        ck_assert_int_eq(crdt_merge(&mr, rep[2], &b.v[i], 1), CRDT_OK);
    ck_assert_int_eq(crdt_merge(&mr, rep[3], b.v, b.n / 2), CRDT_OK);
    ck_assert_int_eq(crdt_merge(&mr, rep[3], b.v + b.n / 2, b.n - b.n / 2),
                     CRDT_OK);
    tu_batch_free(&b);
    for (int i = 1; i < 4; i++) {
        ck_text(rep[i], want);
        ck_hash_of_records(rep[i]);
    }
    ck_same_hash();
    /* the records alone (a cold rebuild) give the same text */
    {
        char sub[300];
        crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
        crdt_replica_close(rep[1]);
        snprintf(sub, sizeof sub, "%s/r", dirs[1]);
        ck_assert_int_eq(crdt_replica_open(&rep[1], sub, &o), CRDT_OK);
        ck_text(rep[1], want);
    }
    free(want);
    close_all();
}
END_TEST

Suite *
test_suite(void)
{
    Suite *s = suite_create("text");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_local_edits);
    tcase_add_test(tc, test_bad_calls);
    tcase_add_test(tc, test_field_view);
    tcase_add_test(tc, test_forward_interleaving);
    tcase_add_test(tc, test_backward_interleaving);
    tcase_add_test(tc, test_three_way_same_place);
    tcase_add_test(tc, test_concurrent_deletes);
    tcase_add_loop_test(tc, test_random_orders_converge, 0, 3);
    tcase_add_test(tc, test_list_ops);
    tcase_add_test(tc, test_cursors);
    tcase_add_test(tc, test_typing_run_and_field_delete);
    tcase_add_test(tc, test_one_batch_merge_is_change_by_change);
    suite_add_tcase(s, tc);
    return s;
}
