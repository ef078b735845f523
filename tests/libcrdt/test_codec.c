/*
 * test_codec.c: encoding round trips (changes, ops of every kind and
 * value type, version vectors), the HLC, size limits, the hash chain,
 * and a tiny map that grows through 100,000 writes.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crdt/crdt.h"
#include "crdt/raw.h"
#include "internal.h" /* crdt__op_decode: a copy inside a copy */
#include "support/op_context.h"
#include "support/replica_util.h"
#include "support/support.h"

static char dir[256];
static crdt_replica *r;

static void
setup(void)
{
    r = tu_create(dir, sizeof dir, NULL);
}

static void
teardown(void)
{
    crdt_replica_close(r);
    test_rmtree(dir);
    crdt_set_clock(NULL, NULL);
}

/* The one change in the log (copied). */
static unsigned char *
last_change(size_t *len)
{
    crdt_export *e;
    const unsigned char *p;
    unsigned char *copy = NULL;
    size_t l;

    ck_assert_int_eq(crdt_export_begin(&e, r, NULL), CRDT_OK);
    while (crdt_export_next(e, &p, &l) == CRDT_OK) {
        free(copy);
        copy = malloc(l);
        memcpy(copy, p, l);
        *len = l;
    }
    crdt_export_end(e);
    return copy;
}

START_TEST(test_every_op_and_value_round_trips)
{
    static const char nul[] = { 'a', 0, 'b' };
    crdt_value vals[] = {
        crdt_value_null(), crdt_value_bool(1), crdt_value_int(INT64_MIN),
        crdt_value_int(INT64_MAX), crdt_value_double(-1.5),
        crdt_value_double(INFINITY), crdt_value_str("h\xc3\xa9", 3),
        crdt_value_str("", 0), crdt_value_bytes(nul, sizeof nul),
    };
    size_t nv = sizeof vals / sizeof vals[0], len;
    crdt_txn *t;
    crdt_change c;
    crdt_op_iter it;
    crdt_op op;
    unsigned char *bytes;

    ck_assert_int_eq(crdt_txn_begin(&t, r), CRDT_OK);
    for (size_t i = 0; i < nv; i++) {
        char f[8];
        snprintf(f, sizeof f, "f%zu", i);
        ck_assert_int_eq(crdt_txn_put(t, "c", "d", f, &vals[i]), CRDT_OK);
    }
    ck_assert_int_eq(crdt_txn_incr(t, "c", "d", "n", -7), CRDT_OK);
    ck_assert_int_eq(crdt_txn_sadd(t, "c", "d", "s", &vals[6]), CRDT_OK);
    ck_assert_int_eq(crdt_txn_srem(t, "c", "d", "s", &vals[6]), CRDT_OK);
    ck_assert_int_eq(crdt_txn_del_field(t, "c", "d", "f0"), CRDT_OK);
    ck_assert_int_eq(crdt_txn_del_doc(t, "c", "e"), CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);

    bytes = last_change(&len);
    ck_assert_int_eq(crdt_change_decode(&c, bytes, len), CRDT_OK);
    ck_assert_int_eq(crdt_change_verify(&c), CRDT_OK);
    ck_assert_uint_eq(c.n_ops, nv + 5);
    crdt_op_iter_init(&it, &c);
    for (size_t i = 0; i < nv; i++) {
        ck_assert_int_eq(crdt_op_iter_next(&op, &it), CRDT_OK);
        ck_assert_int_eq(op.kind, CRDT_OP_PUT);
        ck_assert_int_eq(crdt_value_cmp(&op.value, &vals[i]), 0);
    }
    ck_assert_int_eq(crdt_op_iter_next(&op, &it), CRDT_OK);
    ck_assert_int_eq(op.kind, CRDT_OP_INCR);
    ck_assert_int_eq(op.delta, -7);
    ck_assert_int_eq(crdt_op_iter_next(&op, &it), CRDT_OK);
    ck_assert_int_eq(op.kind, CRDT_OP_SADD);
    ck_assert_int_eq(crdt_op_iter_next(&op, &it), CRDT_OK);
    ck_assert_int_eq(op.kind, CRDT_OP_SREM);
    ck_assert_ptr_nonnull(op.observed);
    ck_assert_int_eq(crdt_op_iter_next(&op, &it), CRDT_OK);
    ck_assert_int_eq(op.kind, CRDT_OP_DEL_FIELD);
    ck_assert_int_eq(crdt_op_iter_next(&op, &it), CRDT_OK);
    ck_assert_int_eq(op.kind, CRDT_OP_DEL_DOC);
    ck_assert_ptr_null(op.field);
    ck_assert_int_eq(crdt_op_iter_next(&op, &it), CRDT_ENOTFOUND);
    free(bytes);
}
END_TEST

/* Copies (op kind 11, crdt_txn_copy_of()): each op written while a copy
 * is set names the op it copies, survives the change's encoding, is
 * never folded into a run with its neighbour, and a copy inside a copy
 * is refused. */
START_TEST(test_copies_name_the_op_they_copy)
{
    static const unsigned char nested[] = {
        0x95, 0x0b, 0xc4, 0x08, 1, 2, 3, 4, 5, 6, 7, 8, 0x03, 0xc4, 0x08,
        9, 9, 9, 9, 9, 9, 9, 9,
        0x95, 0x0b, 0xc4, 0x08, 1, 2, 3, 4, 5, 6, 7, 8, 0x03, 0xc4, 0x08,
        9, 9, 9, 9, 9, 9, 9, 9,
        0x95, 0x00, 0xa1, 'c', 0xa1, 'd', 0xa1, 'f', 0x01,
    };
    crdt_actor orig;
    unsigned char tag[8] = { 0xaa, 1, 2, 3, 4, 5, 6, 0xbb };
    crdt_value v = crdt_value_int(5);
    crdt_txn *t;
    crdt_change c;
    crdt_op_iter it;
    crdt_op op;
    crdt__mp m = { nested, nested + sizeof nested };
    unsigned char *bytes;
    size_t len;

    memset(orig.b, 0x42, sizeof orig.b);
    ck_assert_int_eq(crdt_txn_begin(&t, r), CRDT_OK);
    ck_assert_int_eq(crdt_txn_copy_of(t, &orig, 7, NULL, 0), CRDT_EINVAL);
    ck_assert_int_eq(crdt_txn_copy_of(t, &orig, 7, tag, UINT64_MAX),
                     CRDT_OK);
    ck_assert_int_eq(crdt_txn_put(t, "c", "d", "f", &v), CRDT_OK);
    ck_assert_int_eq(crdt_txn_copy_of(t, &orig, 8, tag, 0), CRDT_OK);
    ck_assert_int_eq(crdt_txn_text_insert(t, "c", "d", "t", 0, "ab", 2),
                     CRDT_OK);
    ck_assert_int_eq(crdt_txn_copy_of(t, &orig, 9, tag, 0x123456), CRDT_OK);
    ck_assert_int_eq(crdt_txn_text_insert(t, "c", "d", "t", 2, "cd", 2),
                     CRDT_OK);
    ck_assert_int_eq(crdt_txn_copy_of(t, NULL, 0, NULL, 0), CRDT_OK);
    ck_assert_int_eq(crdt_txn_text_insert(t, "c", "d", "t", 4, "e", 1),
                     CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);

    bytes = last_change(&len);
    ck_assert_int_eq(crdt_change_decode(&c, bytes, len), CRDT_OK);
    ck_assert_int_eq(crdt_change_verify(&c), CRDT_OK);
    ck_assert_uint_eq(c.n_ops, 4); /* the two copied inserts stay apart */
    crdt_op_iter_init(&it, &c);
    for (uint64_t seq = 7; seq <= 9; seq++) {
        ck_assert_int_eq(crdt_op_iter_next(&op, &it), CRDT_OK);
        ck_assert(op.is_copy);
        ck_assert_uint_eq(op.copy_seq, seq);
        ck_assert_mem_eq(op.copy_actor.b, orig.b, 8);
        ck_assert_mem_eq(op.copy_tag, tag, 8);
        /* the original's stamp, when given */
        ck_assert_uint_eq(op.copy_hlc, seq == 7   ? UINT64_MAX
                                       : seq == 8 ? 0
                                                  : 0x123456);
    }
    ck_assert_int_eq(op.kind, CRDT_OP_TINS);
    ck_assert_int_eq(op.text_len, 2);
    ck_assert_int_eq(crdt_op_iter_next(&op, &it), CRDT_OK);
    ck_assert(!op.is_copy);
    ck_assert_int_eq(crdt_op_iter_next(&op, &it), CRDT_ENOTFOUND);
    free(bytes);
    ck_assert_int_eq(crdt__op_decode(&op, &m), CRDT_EPROTO);
    /* a stamp of 0, or a seventh element, is no copy */
    {
        static const unsigned char zero[] = {
            0x96, 0x0b, 0xc4, 0x08, 1, 2, 3, 4, 5, 6, 7, 8, 0x03, 0xc4, 0x08,
            9, 9, 9, 9, 9, 9, 9, 9, 0x00,
            0x95, 0x00, 0xa1, 'c', 0xa1, 'd', 0xa1, 'f', 0x01,
        };
        unsigned char ok[sizeof zero], seven[sizeof zero + 1];
        crdt__mp mz = { zero, zero + sizeof zero };
        crdt__mp mo = { ok, ok + sizeof ok };
        crdt__mp ms = { seven, seven + sizeof seven };

        ck_assert_int_eq(crdt__op_decode(&op, &mz), CRDT_EPROTO);
        memcpy(ok, zero, sizeof zero);
        ok[23] = 0x2a;
        ck_assert_int_eq(crdt__op_decode(&op, &mo), CRDT_OK);
        ck_assert(op.is_copy);
        ck_assert_uint_eq(op.copy_hlc, 0x2a);
        ck_assert_int_eq(op.kind, CRDT_OP_PUT);
        memcpy(seven, ok, sizeof ok);
        seven[0] = 0x97;
        seven[sizeof ok] = 0x01;
        ck_assert_int_eq(crdt__op_decode(&op, &ms), CRDT_EPROTO);
    }
}
END_TEST

/* An insert's text is checked once while its op is decoded: every str
 * header, ASCII taken eight bytes at a time, and a NUL, a byte >= 0x80
 * or bad UTF-8 anywhere (within the first eight bytes or after them) is
 * refused exactly as before, the code points counted. */
static int
decode_text_op(const unsigned char *text, size_t n, int hdr, crdt_op *op)
{
    unsigned char b[400];
    size_t l = 0;
    crdt__mp m;

    static const unsigned char head[] = { 0x99, 6,    0xa1, 'c', 0xa1, 'd',
                                          0xa1, 'f',  0,    1,   0xc0, 0xc0 };
    memcpy(b, head, sizeof head);
    l = sizeof head;
    if (hdr == 1) {
        b[l++] = (unsigned char)(0xa0 | n);
    } else if (hdr == 2) {
        b[l++] = 0xd9;
        b[l++] = (unsigned char)n;
    } else if (hdr == 3) {
        b[l++] = 0xda;
        b[l++] = (unsigned char)(n >> 8);
        b[l++] = (unsigned char)n;
    } else {
        b[l++] = 0xdb;
        b[l++] = 0;
        b[l++] = 0;
        b[l++] = (unsigned char)(n >> 8);
        b[l++] = (unsigned char)n;
    }
    memcpy(b + l, text, n);
    m.p = b;
    m.end = b + l + n;
    memset(op, 0, sizeof *op);
    return crdt__op_decode(op, &m);
}

START_TEST(test_insert_text_is_checked_once_as_before)
{
    unsigned char t[300];
    crdt_op op;

    for (int hdr = 1; hdr <= 4; hdr++) {
        size_t n = hdr == 1 ? 31 : 200;
        memset(t, 'a', n);
        ck_assert_int_eq(decode_text_op(t, n, hdr, &op), CRDT_OK);
        ck_assert_uint_eq(op.len, n);
        ck_assert_uint_eq(op.text_len, n);
        for (size_t at = 0; at < n; at += 3) {
            memset(t, 'a', n);
            t[at] = 0; /* NUL */
            ck_assert_int_eq(decode_text_op(t, n, hdr, &op), CRDT_EPROTO);
            t[at] = 0x80; /* a lone continuation byte */
            ck_assert_int_eq(decode_text_op(t, n, hdr, &op), CRDT_EPROTO);
            if (at + 1 < n) { /* a two-byte code point: counted as one */
                t[at] = 0xc3;
                t[at + 1] = 0xa9;
                ck_assert_int_eq(decode_text_op(t, n, hdr, &op), CRDT_OK);
                ck_assert_uint_eq(op.len, n - 1);
            }
        }
    }
    /* a length past the end */
    memset(t, 'a', 20);
    ck_assert_int_eq(decode_text_op(t, 20, 2, &op), CRDT_OK);
    {
        unsigned char b[] = { 0x99, 6, 0xa1, 'c', 0xa1, 'd', 0xa1, 'f', 0,
                              1,    0xc0, 0xc0, 0xd9, 5, 'a', 'b' };
        crdt__mp m = { b, b + sizeof b };
        ck_assert_int_eq(crdt__op_decode(&op, &m), CRDT_EPROTO);
    }
}
END_TEST

/* @p v in msgpack form @p form: 0 fixint, 1..4 uint 8..64, 5..8 int 8..64
 * (a signed form of a non-negative number is still a uint). */
static size_t
put_int_form(unsigned char *b, int form, uint64_t v)
{
    static const unsigned char tag[] = { 0, 0xcc, 0xcd, 0xce, 0xcf,
                                         0xd0, 0xd1, 0xd2, 0xd3 };
    static const size_t bytes[] = { 0, 1, 2, 4, 8, 1, 2, 4, 8 };

    if (form == 0) {
        b[0] = (unsigned char)v;
        return 1;
    }
    b[0] = tag[form];
    for (size_t i = 0; i < bytes[form]; i++)
        b[1 + i] = (unsigned char)(v >> (8 * (bytes[form] - 1 - i)));
    return 1 + bytes[form];
}

static int
int_form_holds(int form, uint64_t v)
{
    static const uint64_t max[] = { 0x7f, 0xff, 0xffff, 0xffffffffu,
                                    UINT64_MAX, 0x7f, 0x7fff, 0x7fffffff,
                                    INT64_MAX };
    return v <= max[form];
}

/* The copy decode_exact() read: the op's names and text point into it
 * until the next call. */
static unsigned char *exact_copy;

/* Decode @p len bytes from a copy of their own size (a read past them is
 * an ASan error), as an op of a format-2 change or standalone. */
static int
decode_exact(crdt_op *op, const unsigned char *b, size_t len, int in_change)
{
    unsigned char *c;
    crdt__mp m;
    crdt_op_iter ctx;
    int rc;

    free(exact_copy);
    exact_copy = c = malloc(len ? len : 1);
    ck_assert_ptr_nonnull(c);
    memcpy(c, b, len);
    m.p = c;
    m.end = c + len;
    tu_format2_context(&ctx);
    rc = crdt__op_decode_in(op, &m, in_change ? &ctx : NULL);
    if (rc == CRDT_OK)
        ck_assert_ptr_eq(m.p, m.end);
    return rc;
}

START_TEST(test_op_counters_and_names_read_in_every_encoding)
{
    static const uint64_t vals[] = { 1, 100, 200, 70000, UINT64_C(5000000000) };
    unsigned char b[128];
    crdt_op op;

    for (size_t vi = 0; vi < sizeof vals / sizeof vals[0]; vi++) {
        for (int form = 0; form <= 8; form++) {
            uint64_t v = vals[vi];
            size_t l = 0;
            if (!int_form_holds(form, v))
                continue;
            /* TINS: pos, ctr and a bare-ctr left origin in this form */
            b[l++] = 0x99;
            b[l++] = 6;
            b[l++] = 0xa1;
            b[l++] = 'c';
            b[l++] = 0xc0; /* the op before's document */
            b[l++] = 0xd9; /* a str8 name */
            b[l++] = 1;
            b[l++] = 'f';
            l += put_int_form(b + l, form, v);
            l += put_int_form(b + l, form, v);
            l += put_int_form(b + l, form, v);
            b[l++] = 0xc0;
            b[l++] = 0xa2;
            b[l++] = 'h';
            b[l++] = 'i';
            ck_assert_int_eq(decode_exact(&op, b, l, 1), CRDT_OK);
            ck_assert_int_eq(op.kind, CRDT_OP_TINS);
            ck_assert_uint_eq(op.pos, v);
            ck_assert_uint_eq(op.ctr, v);
            ck_assert_uint_eq(op.left.ctr, v);
            ck_assert_uint_eq(op.left.actor.b[0], 0x07);
            ck_assert_uint_eq(op.right.ctr, 0);
            ck_assert_uint_eq(op.len, 2);
            ck_assert(op.doc_len == 1 && op.doc[0] == 'd');
            ck_assert(op.field_len == 1 && op.field[0] == 'f');
            /* every shorter prefix is refused, without a read past it */
            for (size_t cut = 0; cut < l; cut++)
                ck_assert_int_eq(decode_exact(&op, b, cut, 1), CRDT_EPROTO);
            /* PUT of this value as an int */
            l = 0;
            b[l++] = 0x95;
            b[l++] = CRDT_OP_PUT;
            b[l++] = 0xa1;
            b[l++] = 'c';
            b[l++] = 0xa2;
            b[l++] = 'd';
            b[l++] = '9';
            b[l++] = 0xa1;
            b[l++] = 'v';
            l += put_int_form(b + l, form, v);
            ck_assert_int_eq(decode_exact(&op, b, l, 0), CRDT_OK);
            ck_assert_int_eq(op.value.type, CRDT_VINT);
            ck_assert_int_eq(op.value.u.i, (int64_t)v);
            for (size_t cut = 0; cut < l; cut++)
                ck_assert_int_eq(decode_exact(&op, b, cut, 0), CRDT_EPROTO);
        }
    }
    {   /* negative ints; a uint64 past INT64_MAX is no int */
        unsigned char neg[] = { 0x95, CRDT_OP_PUT, 0xa1, 'c', 0xa1, 'd',
                                0xa1, 'v', 0xff };
        unsigned char big[] = { 0x95, CRDT_OP_PUT, 0xa1, 'c', 0xa1, 'd',
                                0xa1, 'v', 0xcf, 0x80, 0, 0, 0, 0, 0, 0, 0 };
        unsigned char neg64[] = { 0x95, CRDT_OP_PUT, 0xa1, 'c', 0xa1, 'd',
                                  0xa1, 'v', 0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0 };
        ck_assert_int_eq(decode_exact(&op, neg, sizeof neg, 1), CRDT_OK);
        ck_assert_int_eq(op.value.u.i, -1);
        ck_assert_int_eq(decode_exact(&op, big, sizeof big, 1), CRDT_EPROTO);
        ck_assert_int_eq(decode_exact(&op, neg64, sizeof neg64, 1), CRDT_OK);
        ck_assert_int_eq(op.value.u.i, INT64_MIN);
    }
    {   /* names: empty, a NUL, bad UTF-8 are refused however they come;
         * a UTF-8 name repeated is the same name */
        unsigned char op_b[] = { 0x95, CRDT_OP_PUT, 0xa1, 'c', 0xa2, 0xc3,
                                 0xa9, 0xa1, 'v', 1 };
        crdt__mp m = { op_b, op_b + sizeof op_b };
        crdt_op_iter ctx;
        tu_format2_context(&ctx);
        ck_assert_int_eq(crdt__op_decode_in(&op, &m, &ctx), CRDT_OK);
        m.p = op_b;
        ck_assert_int_eq(crdt__op_decode_in(&op, &m, &ctx), CRDT_OK);
        ck_assert(op.doc_len == 2 && memcmp(op.doc, "\xc3\xa9", 2) == 0);
        op_b[4] = 0xa0; /* empty */
        ck_assert_int_eq(decode_exact(&op, op_b, sizeof op_b, 1),
                         CRDT_EPROTO);
        op_b[4] = 0xa2;
        op_b[5] = 'x';
        op_b[6] = 0; /* a NUL */
        ck_assert_int_eq(decode_exact(&op, op_b, sizeof op_b, 1),
                         CRDT_EPROTO);
        op_b[6] = 0x80; /* a lone continuation byte */
        ck_assert_int_eq(decode_exact(&op, op_b, sizeof op_b, 0),
                         CRDT_EPROTO);
        op_b[4] = 0xc0; /* nil: only in a change, after a named op */
        ck_assert_int_eq(decode_exact(&op, op_b, sizeof op_b, 0),
                         CRDT_EPROTO);
    }
    {   /* a fixarray that declares more items than there are bytes */
        unsigned char arr[] = { 0x9f, 6, 0xa1, 'c' };
        ck_assert_int_eq(decode_exact(&op, arr, sizeof arr, 1), CRDT_EPROTO);
    }
    free(exact_copy);
    exact_copy = NULL;
}
END_TEST

START_TEST(test_prefault_keeps_contents)
{
    /* populating a buffer's pages is a hint: what the buffer holds is
     * unchanged, at any alignment and size, and nothing is touched
     * outside it */
    size_t len = 1024 * 1024 + 77;
    unsigned char *b = malloc(len + 64);

    ck_assert_ptr_nonnull(b);
    for (size_t i = 0; i < len + 64; i++)
        b[i] = (unsigned char)(i * 31 + 7);
    crdt__prefault(b + 13, len);
    crdt__prefault(b, 100);   /* too small to bother */
    crdt__prefault(NULL, len);
    for (size_t i = 0; i < len + 64; i++)
        ck_assert_uint_eq(b[i], (unsigned char)(i * 31 + 7));
    free(b);
}
END_TEST

START_TEST(test_vv_copy_and_reserve)
{
    crdt_vv *vv, *copy;
    crdt_actor a, got;
    uint64_t seq;

    ck_assert_int_eq(crdt_vv_new(&vv), CRDT_OK);
    ck_assert_int_eq(crdt_vv_reserve(vv, 65537), CRDT_ELIMIT);
    ck_assert_int_eq(crdt_vv_reserve(NULL, 1), CRDT_EINVAL);
    /* room made before and between sets keeps every entry */
    ck_assert_int_eq(crdt_vv_reserve(vv, 100), CRDT_OK);
    for (int i = 0; i < 300; i++) {
        memset(a.b, 0, sizeof a.b);
        a.b[0] = (unsigned char)((299 - i) >> 8); /* descending: inserts */
        a.b[1] = (unsigned char)(299 - i);
        ck_assert_int_eq(crdt_vv_set(vv, &a, (uint64_t)i + 1), CRDT_OK);
        if (i == 150)
            ck_assert_int_eq(crdt_vv_reserve(vv, 1000), CRDT_OK);
    }
    ck_assert_int_eq(crdt_vv_reserve(vv, 10), CRDT_OK); /* never shrinks */
    ck_assert_uint_eq(crdt_vv_count(vv), 300);
    ck_assert_int_eq(crdt_vv_copy(&copy, vv), CRDT_OK);
    ck_assert_uint_eq(crdt_vv_count(copy), 300);
    ck_assert(crdt_vv_covers(vv, copy) && crdt_vv_covers(copy, vv));
    for (size_t i = 0; i < 300; i++) {
        crdt_vv_entry(copy, i, &got, &seq);
        ck_assert_uint_eq(got.b[1], (unsigned char)i);
        ck_assert_uint_eq(seq, 300 - i);
    }
    /* the copy is its own: raising it leaves the original as it was */
    crdt_vv_entry(copy, 7, &got, &seq);
    ck_assert_int_eq(crdt_vv_set(copy, &got, seq + 5), CRDT_OK);
    ck_assert_uint_eq(crdt_vv_get(vv, &got), seq);
    ck_assert_uint_eq(crdt_vv_get(copy, &got), seq + 5);
    crdt_vv_free(copy);
    crdt_vv_free(vv);
    /* an empty vector copies to an empty one */
    ck_assert_int_eq(crdt_vv_new(&vv), CRDT_OK);
    ck_assert_int_eq(crdt_vv_copy(&copy, vv), CRDT_OK);
    ck_assert_uint_eq(crdt_vv_count(copy), 0);
    crdt_vv_free(copy);
    crdt_vv_free(vv);
}
END_TEST

START_TEST(test_vv_round_trip_and_limits)
{
    crdt_vv *vv, *back;
    unsigned char *buf;
    size_t len;
    static const unsigned char bomb[] = { 0xdf, 0xff, 0xff, 0xff, 0xff };

    ck_assert_int_eq(crdt_vv_new(&vv), CRDT_OK);
    for (int i = 0; i < 300; i++) {
        crdt_actor a;
        memset(a.b, 0, sizeof a.b);
        a.b[0] = (unsigned char)(i >> 8);
        a.b[1] = (unsigned char)i;
        ck_assert_int_eq(crdt_vv_set(vv, &a, (uint64_t)i * 1000003u), CRDT_OK);
    }
    ck_assert_int_eq(crdt_vv_encode(&buf, &len, vv), CRDT_OK);
    ck_assert_int_eq(crdt_vv_decode(&back, buf, len), CRDT_OK);
    ck_assert(crdt_vv_covers(vv, back) && crdt_vv_covers(back, vv));
    ck_assert_uint_eq(crdt_vv_total(vv), crdt_vv_total(back));
    for (size_t cut = 0; cut + 1 < len; cut += 13) {
        crdt_vv *x = NULL;
        ck_assert_int_eq(crdt_vv_decode(&x, buf, cut), CRDT_EPROTO);
    }
    {
        crdt_vv *x = NULL;
        ck_assert_int_eq(crdt_vv_decode(&x, bomb, sizeof bomb), CRDT_EPROTO);
    }
    free(buf);
    crdt_vv_free(vv);
    crdt_vv_free(back);
}
END_TEST

static uint64_t fake_ms;

static uint64_t
fake_clock(void *ctx)
{
    (void)ctx;
    return fake_ms;
}

START_TEST(test_hlc_stays_increasing_when_the_clock_steps_back)
{
    crdt_commit_info a, b, c;
    crdt_txn *t;
    crdt_value v = crdt_value_int(1);

    crdt_set_clock(fake_clock, NULL);
    fake_ms = 1800000000000ull;
    ck_assert_int_eq(crdt_txn_begin(&t, r), CRDT_OK);
    ck_assert_int_eq(crdt_txn_put(t, "c", "d", "f", &v), CRDT_OK);
    ck_assert_int_eq(crdt_txn_put(t, "c", "d", "g", &v), CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, &a), CRDT_OK);
    fake_ms -= 3600000; /* an hour back */
    ck_assert_int_eq(crdt_txn_begin(&t, r), CRDT_OK);
    ck_assert_int_eq(crdt_txn_put(t, "c", "d", "f", &v), CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, &b), CRDT_OK);
    ck_assert_uint_gt(b.hlc, a.hlc + 1); /* above every op of a */
    fake_ms += 7200000; /* and forward again: follows the clock */
    ck_assert_int_eq(crdt_txn_begin(&t, r), CRDT_OK);
    ck_assert_int_eq(crdt_txn_put(t, "c", "d", "f", &v), CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, &c), CRDT_OK);
    ck_assert_uint_eq(c.hlc >> 16, fake_ms);
    ck_assert_uint_eq(c.first_seq, 4);
}
END_TEST

START_TEST(test_oversized_change_is_refused)
{
    crdt_txn *t;
    char *big = malloc(CRDT_CHANGE_MAX);
    unsigned char *junk = malloc(CRDT_CHANGE_MAX + 16);
    crdt_value v;
    crdt_change c;
    int rc = CRDT_OK;

    memset(big, 'x', CRDT_CHANGE_MAX);
    v = crdt_value_str(big, CRDT_CHANGE_MAX / 3);
    ck_assert_int_eq(crdt_txn_begin(&t, r), CRDT_OK);
    for (int i = 0; i < 4 && rc == CRDT_OK; i++) {
        char f[8];
        snprintf(f, sizeof f, "f%d", i);
        rc = crdt_txn_put(t, "c", "d", f, &v);
    }
    ck_assert_int_eq(rc, CRDT_ELIMIT); /* the op that would overflow */
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK); /* the rest fits */
    memset(junk, 0x92, CRDT_CHANGE_MAX + 16);
    ck_assert_int_eq(crdt_change_decode(&c, junk, CRDT_CHANGE_MAX + 1),
                     CRDT_ELIMIT);
    free(big);
    free(junk);
}
END_TEST

START_TEST(test_broken_hash_chain_is_refused)
{
    char db[256], h0[65], h1[65];
    unsigned char space[16];
    crdt_replica *b;
    unsigned char *c1, *c2;
    size_t l1, l2;
    crdt_bytes one;
    crdt_merge_report rep;

    crdt_replica_space_id(r, space);
    b = tu_create(db, sizeof db, space);
    ck_assert_int_eq(tu_put_int(r, "c", "d", "f", 1), CRDT_OK);
    c1 = last_change(&l1);
    ck_assert_int_eq(tu_put_int(r, "c", "d", "f", 2), CRDT_OK);
    c2 = last_change(&l2);
    /* b holds change 1; a change 2 whose body was re-signed is not the
     * successor: only a valid signature AND chain gets in */
    one.data = c1;
    one.len = l1;
    ck_assert_int_eq(crdt_merge(NULL, b, &one, 1), CRDT_OK);
    tu_hash(h0, b);
    c2[l2 - 70] ^= 1; /* inside the body: hash and signature break */
    one.data = c2;
    one.len = l2;
    ck_assert_int_lt(crdt_merge(&rep, b, &one, 1), 0);
    tu_hash(h1, b);
    ck_assert_str_eq(h0, h1);
    free(c1);
    free(c2);
    crdt_replica_close(b);
    test_rmtree(db);
}
END_TEST

/* crdt__mp_skip steps over exactly one item of each kind, and refuses a
 * truncated one without moving (its scalars of fixed size are skipped
 * without being decoded). */
START_TEST(test_mp_skip_steps_over_one_item_of_each_kind)
{
    static const struct {
        unsigned char b[12];
        size_t len; /* the item's bytes; b[len] is a marker 0x2a */
    } items[] = {
        { { 0x00 }, 1 },  { { 0x7f }, 1 },  { { 0xe0 }, 1 },
        { { 0xff }, 1 },  { { 0xc0 }, 1 },  { { 0xc2 }, 1 },
        { { 0xc3 }, 1 },  { { 0xcc, 0xff }, 2 },
        { { 0xcd, 1, 2 }, 3 },  { { 0xce, 1, 2, 3, 4 }, 5 },
        { { 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff }, 9 },
        { { 0xd0, 0x80 }, 2 },  { { 0xd1, 1, 2 }, 3 },
        { { 0xd2, 1, 2, 3, 4 }, 5 },
        { { 0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0 }, 9 },
        { { 0xca, 1, 2, 3, 4 }, 5 },  { { 0xcb, 1, 2, 3, 4, 5, 6, 7, 8 }, 9 },
        { { 0xc4, 2, 9, 9 }, 4 },  { { 0xa2, 'h', 'i' }, 3 },
        { { 0x92, 0x01, 0xcd, 1, 2 }, 5 },  { { 0x81, 0xa1, 'k', 0xc0 }, 4 },
    };
    static const unsigned char bad[] = { 0xc1, 0xc7, 0xd4, 0xd8 };

    for (size_t i = 0; i < sizeof items / sizeof items[0]; i++) {
        unsigned char buf[16];
        crdt__mp m;

        memcpy(buf, items[i].b, items[i].len);
        buf[items[i].len] = 0x2a;
        m.p = buf;
        m.end = buf + items[i].len + 1;
        ck_assert_int_eq(crdt__mp_skip(&m), CRDT_OK);
        ck_assert_ptr_eq(m.p, buf + items[i].len);
        /* one byte short: refused, not moved */
        m.p = buf;
        m.end = buf + items[i].len - 1;
        ck_assert_int_eq(crdt__mp_skip(&m), CRDT_EPROTO);
        ck_assert_ptr_eq(m.p, buf);
    }
    for (size_t i = 0; i < sizeof bad; i++) {
        unsigned char buf[16] = { 0 };
        crdt__mp m = { buf, buf + sizeof buf };

        buf[0] = bad[i];
        ck_assert_int_eq(crdt__mp_skip(&m), CRDT_EPROTO);
        ck_assert_ptr_eq(m.p, buf);
    }
}
END_TEST

/* Nested items: containers of every header size are stepped over whole,
 * a count larger than the bytes left or a cut inside a nested item is
 * refused without moving, and nesting stops at 32 levels. */
START_TEST(test_mp_skip_nested_counts_and_depth)
{
    static const unsigned char ok[] = {
        0xdc, 0, 3,             /* array16 of 3: */
        0xde, 0, 1,             /*   map16 of 1 pair: */
        0xd9, 2, 'a', 'b',      /*     str8 key */
        0xc5, 0, 2, 7, 7,       /*     bin16 value */
        0x90,                   /*   an empty array */
        0xdd, 0, 0, 0, 2,       /*   array32 of 2: */
        0x80,                   /*     an empty map */
        0xdf, 0, 0, 0, 1,       /*     map32 of 1 pair: */
        0x01, 0xdb, 0, 0, 0, 1, 'z', /*  1 -> str32 "z" */
    };
    unsigned char buf[64];
    crdt__mp m = { ok, ok + sizeof ok };

    ck_assert_int_eq(crdt__mp_skip(&m), CRDT_OK);
    ck_assert_ptr_eq(m.p, ok + sizeof ok);
    /* cut anywhere inside: refused, not moved */
    for (size_t cut = 0; cut < sizeof ok; cut++) {
        m.p = ok;
        m.end = ok + cut;
        ck_assert_int_eq(crdt__mp_skip(&m), CRDT_EPROTO);
        ck_assert_ptr_eq(m.p, ok);
    }
    /* a count beyond the bytes left (each item takes at least one) */
    {
        static const unsigned char big[] = { 0xdd, 0xff, 0xff, 0xff, 0xff,
                                             1, 2, 3 };
        static const unsigned char pairs[] = { 0x83, 1, 2, 3, 4, 5 };
        m = (crdt__mp){ big, big + sizeof big };
        ck_assert_int_eq(crdt__mp_skip(&m), CRDT_EPROTO);
        ck_assert_ptr_eq(m.p, big);
        m = (crdt__mp){ pairs, pairs + sizeof pairs };
        ck_assert_int_eq(crdt__mp_skip(&m), CRDT_EPROTO);
        ck_assert_ptr_eq(m.p, pairs);
    }
    /* 32 nested arrays around a 1 are fine; 33 are too deep, and an
     * empty array at the 33rd level is not an item at the 33rd */
    memset(buf, 0x91, 33);
    buf[32] = 0x01;
    m = (crdt__mp){ buf, buf + 33 };
    ck_assert_int_eq(crdt__mp_skip(&m), CRDT_OK);
    ck_assert_ptr_eq(m.p, buf + 33);
    buf[32] = 0x91;
    buf[33] = 0x01;
    m = (crdt__mp){ buf, buf + 34 };
    ck_assert_int_eq(crdt__mp_skip(&m), CRDT_ELIMIT);
    ck_assert_ptr_eq(m.p, buf);
    buf[32] = 0x90;
    m = (crdt__mp){ buf, buf + 33 };
    ck_assert_int_eq(crdt__mp_skip(&m), CRDT_OK);
    ck_assert_ptr_eq(m.p, buf + 33);
}
END_TEST

START_TEST(test_tiny_map_grows_through_100000_writes)
{
    crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
    crdt_replica *t1;
    char path[300], buf[32];
    crdt_read *rd;
    crdt_stats st;

    snprintf(path, sizeof path, "%s/tiny", dir);
    o.create = 1;
    o.map_size = 64 * 1024;
    o.no_sync = 1; /* the map, not the disk, is under test */
    ck_assert_int_eq(crdt_replica_open(&t1, path, &o), CRDT_OK);
    for (int k = 0; k < 100; k++) {
        crdt_txn *t;
        ck_assert_int_eq(crdt_txn_begin(&t, t1), CRDT_OK);
        for (int i = 0; i < 1000; i++) {
            char doc[16];
            crdt_value v = crdt_value_int(k * 1000 + i);
            snprintf(doc, sizeof doc, "d%d", k * 1000 + i);
            ck_assert_int_eq(crdt_txn_put(t, "c", doc, "v", &v), CRDT_OK);
        }
        ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    }
    ck_assert_int_eq(crdt_read_begin(&rd, t1), CRDT_OK);
    ck_assert_int_eq(crdt_read_stats(&st, rd), CRDT_OK);
    crdt_read_end(rd);
    ck_assert_uint_eq(st.ops_in_log, 100000);
    crdt_replica_close(t1);
    ck_assert_int_eq(crdt_replica_open(&t1, path, NULL), CRDT_OK);
    tu_field_str(buf, sizeof buf, t1, "c", "d99999", "v");
    ck_assert_str_eq(buf, "99999");
    crdt_replica_close(t1);
}
END_TEST

Suite *
test_suite(void)
{
    Suite *s = suite_create("codec");
    TCase *tc = tcase_create("codec");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_every_op_and_value_round_trips);
    tcase_add_test(tc, test_copies_name_the_op_they_copy);
    tcase_add_test(tc, test_vv_round_trip_and_limits);
    tcase_add_test(tc, test_vv_copy_and_reserve);
    tcase_add_test(tc, test_prefault_keeps_contents);
    tcase_add_test(tc, test_insert_text_is_checked_once_as_before);
    tcase_add_test(tc, test_op_counters_and_names_read_in_every_encoding);
    tcase_add_test(tc, test_hlc_stays_increasing_when_the_clock_steps_back);
    tcase_add_test(tc, test_oversized_change_is_refused);
    tcase_add_test(tc, test_broken_hash_chain_is_refused);
    tcase_add_test(tc, test_tiny_map_grows_through_100000_writes);
    tcase_add_test(tc, test_mp_skip_steps_over_one_item_of_each_kind);
    tcase_add_test(tc, test_mp_skip_nested_counts_and_depth);
    suite_add_tcase(s, tc);
    return s;
}
