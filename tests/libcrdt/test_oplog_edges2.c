/*
 * test_oplog_edges2.c: more of the op log's answers at its edges: change
 * bytes written by hand in forms our writer never makes (wider msgpack
 * headers, a count or a stamp of the wrong type, too many ops), the
 * packed change lists they go into (verbatim, past a table's or the
 * message's limit), the arguments the change and pack calls refuse,
 * and writes that cannot be what they ask for (a NULL field, a group
 * body that fails or writes to another replica, an op past the size
 * of a change) (docs/storage.md 5, docs/protocol.md "Packed changes",
 * crdt/change.h, crdt/sync.h, crdt/txn.h).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crdt/crdt.h"
#include "crdt/feed.h"
#include "crdt/raw.h"
#include "crdt/text.h"
#include "support/replica_util.h"
#include "support/support.h"

TU_PAIR_FIXTURE(tu_pair_create)

/* ---- change bytes by hand ---- */

typedef struct {
    unsigned char *p;
    size_t len, cap;
} hb;

static void
hb_put(hb *o, const void *p, size_t n)
{
    if (o->len + n > o->cap) {
        size_t nc = o->cap ? o->cap : 256;
        while (nc < o->len + n)
            nc *= 2;
        o->p = realloc(o->p, nc);
        ck_assert_ptr_nonnull(o->p);
        o->cap = nc;
    }
    if (n > 0)
        memcpy(o->p + o->len, p, n);
    o->len += n;
}

static void
hb_byte(hb *o, unsigned c)
{
    unsigned char x = (unsigned char)c;
    hb_put(o, &x, 1);
}

static void
hb_be(hb *o, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--)
        hb_byte(o, (unsigned)(v >> (8 * i)) & 0xff);
}

/* A uint: the shortest form, or (@p wide) always 0xcf and 8 bytes. */
static void
hb_uint(hb *o, uint64_t v, int wide)
{
    if (wide) {
        hb_byte(o, 0xcf);
        hb_be(o, v, 8);
    } else if (v <= 0x7f) {
        hb_byte(o, (unsigned)v);
    } else if (v <= 0xff) {
        hb_byte(o, 0xcc);
        hb_be(o, v, 1);
    } else if (v <= 0xffff) {
        hb_byte(o, 0xcd);
        hb_be(o, v, 2);
    } else if (v <= 0xffffffffu) {
        hb_byte(o, 0xce);
        hb_be(o, v, 4);
    } else {
        hb_byte(o, 0xcf);
        hb_be(o, v, 8);
    }
}

/* A bin: the shortest header, or (@p wide) the next wider one. */
static void
hb_bin(hb *o, const void *p, size_t n, int wide)
{
    int w = n <= 0xff ? 1 : n <= 0xffff ? 2 : 4;

    if (wide)
        w = w == 1 ? 2 : 4;
    hb_byte(o, w == 1 ? 0xc4 : w == 2 ? 0xc5 : 0xc6);
    hb_be(o, n, w);
    hb_put(o, p, n);
}

static void
hb_array(hb *o, uint32_t n)
{
    if (n <= 15) {
        hb_byte(o, 0x90 | n);
    } else if (n <= 0xffff) {
        hb_byte(o, 0xdc);
        hb_be(o, n, 2);
    } else {
        hb_byte(o, 0xdd);
        hb_be(o, n, 4);
    }
}

/* What a hand-made change is: its fields, and which of them are written
 * other than our writer writes them. */
typedef struct {
    unsigned char space[16], epoch[32], pk[32], inc[8], prev[32];
    uint64_t seq, hlc;
    int signed_;        /* a 64-byte signature, else nil */
    const unsigned char *ops; /* the op array's items */
    size_t ops_len;
    uint32_t n_ops;
    /* the forms */
    int outer16, body_wide, version_wide, space_wide, seq_wide, prev_wide,
        sig_wide;
    int seq_nil, hlc_nil; /* a nil where the uint goes */
    int outer_items;      /* 0: 2; else that many items (nils after) */
} hspec;

/* [0, "c", "d", "f", 1]: a register write, as our writer encodes it */
static const unsigned char PUT_OP[] = { 0x95, 0x00, 0xa1, 'c', 0xa1, 'd',
                                        0xa1, 'f', 0x01 };

static void
spec_init(hspec *s, const unsigned char *space)
{
    memset(s, 0, sizeof *s);
    memcpy(s->space, space, sizeof s->space);
    memset(s->epoch, 0x11, sizeof s->epoch);
    memset(s->pk, 0x22, sizeof s->pk);
    memset(s->inc, 0x33, sizeof s->inc);
    s->seq = 1;
    s->hlc = (uint64_t)1000 << 16;
    s->signed_ = 1;
    s->ops = PUT_OP;
    s->ops_len = sizeof PUT_OP;
    s->n_ops = 1;
}

/* The change @p s says, as bytes in @p out (the caller frees out->p). */
static void
build(hb *out, const hspec *s)
{
    hb body = { 0 };
    unsigned char sig[64];

    hb_byte(&body, 0x99);
    if (s->version_wide) {
        hb_byte(&body, 0xcc);
        hb_byte(&body, 2);
    } else {
        hb_byte(&body, 2);
    }
    hb_bin(&body, s->space, sizeof s->space, s->space_wide);
    hb_bin(&body, s->epoch, sizeof s->epoch, 0);
    hb_bin(&body, s->pk, sizeof s->pk, 0);
    hb_bin(&body, s->inc, sizeof s->inc, 0);
    if (s->seq_nil)
        hb_byte(&body, 0xc0);
    else
        hb_uint(&body, s->seq, s->seq_wide);
    if (s->hlc_nil)
        hb_byte(&body, 0xc0);
    else
        hb_uint(&body, s->hlc, 0);
    hb_bin(&body, s->prev, sizeof s->prev, s->prev_wide);
    hb_array(&body, s->n_ops);
    hb_put(&body, s->ops, s->ops_len);

    memset(out, 0, sizeof *out);
    if (s->outer16) {
        hb_byte(out, 0xdc);
        hb_be(out, s->outer_items ? s->outer_items : 2, 2);
    } else {
        hb_array(out, s->outer_items ? (uint32_t)s->outer_items : 2);
    }
    hb_bin(out, body.p, body.len, s->body_wide);
    memset(sig, 0x5e, sizeof sig);
    if (s->signed_)
        hb_bin(out, sig, sizeof sig, s->sig_wide);
    else
        hb_byte(out, 0xc0);
    for (int i = 2; i < s->outer_items; i++)
        hb_byte(out, 0xc0);
    free(body.p);
}

static int
decode_spec(crdt_change *c, const hspec *s, hb *keep)
{
    build(keep, s);
    return crdt_change_decode(c, keep->p, keep->len);
}

static void
space_of(unsigned char space[16])
{
    crdt_replica_space_id(a, space);
}

/* ---- codec ---- */

START_TEST(test_change_decode_refuses_what_is_no_change)
{
    unsigned char space[16], *ops;
    crdt_change c;
    hspec s;
    hb x;
    size_t n = CRDT_CHANGE_MAX_OPS + 1;

    space_of(space);
    spec_init(&s, space);
    build(&x, &s);
    ck_assert_int_eq(crdt_change_decode(&c, x.p, x.len), CRDT_OK);
    ck_assert_int_eq(crdt_change_decode(&c, NULL, x.len), CRDT_EINVAL);
    ck_assert_int_eq(crdt_change_decode(NULL, x.p, x.len), CRDT_EINVAL);
    free(x.p);

    /* a stamp that is no uint */
    s.hlc_nil = 1;
    ck_assert_int_eq(decode_spec(&c, &s, &x), CRDT_EPROTO);
    free(x.p);
    s.hlc_nil = 0;

    /* more ops than a change may hold: a limit, named before a walk */
    ops = calloc(1, n);
    ck_assert_ptr_nonnull(ops);
    s.ops = ops;
    s.ops_len = n;
    s.n_ops = (uint32_t)n;
    ck_assert_int_eq(decode_spec(&c, &s, &x), CRDT_ELIMIT);
    free(x.p);
    free(ops);
}
END_TEST

START_TEST(test_change_peek_refuses_a_bad_header)
{
    unsigned char space[16];
    crdt_actor who;
    crdt_change c;
    uint64_t last = 77;
    hspec s;
    hb x;

    space_of(space);
    spec_init(&s, space);
    s.seq = 5;
    s.n_ops = 2;
    {
        static unsigned char two[2 * sizeof PUT_OP];
        memcpy(two, PUT_OP, sizeof PUT_OP);
        memcpy(two + sizeof PUT_OP, PUT_OP, sizeof PUT_OP);
        s.ops = two;
        s.ops_len = sizeof two;
        ck_assert_int_eq(decode_spec(&c, &s, &x), CRDT_OK);
    }
    ck_assert_int_eq(crdt_change_peek(&who, &last, x.p, x.len), CRDT_OK);
    ck_assert(memcmp(who.b, c.actor.b, CRDT_ACTOR_BYTES) == 0);
    ck_assert_uint_eq(last, 6);
    last = 77;
    ck_assert_int_eq(crdt_change_peek(NULL, &last, x.p, x.len), CRDT_EINVAL);
    ck_assert_int_eq(crdt_change_peek(&who, NULL, x.p, x.len), CRDT_EINVAL);
    ck_assert_int_eq(crdt_change_peek(&who, &last, NULL, x.len),
                     CRDT_EINVAL);
    free(x.p);

    /* three items where a change has two */
    s.outer_items = 3;
    build(&x, &s);
    ck_assert_int_eq(crdt_change_peek(&who, &last, x.p, x.len), CRDT_EPROTO);
    free(x.p);
    s.outer_items = 0;
    /* a seq that is no uint, seq 0, a seq past half the range */
    s.seq_nil = 1;
    build(&x, &s);
    ck_assert_int_eq(crdt_change_peek(&who, &last, x.p, x.len), CRDT_EPROTO);
    free(x.p);
    s.seq_nil = 0;
    s.seq = 0;
    build(&x, &s);
    ck_assert_int_eq(crdt_change_peek(&who, &last, x.p, x.len), CRDT_EPROTO);
    free(x.p);
    s.seq = UINT64_MAX / 2 + 1;
    build(&x, &s);
    ck_assert_int_eq(crdt_change_peek(&who, &last, x.p, x.len), CRDT_EPROTO);
    free(x.p);
    /* no ops */
    s.seq = 5;
    s.n_ops = 0;
    s.ops_len = 0;
    build(&x, &s);
    ck_assert_int_eq(crdt_change_peek(&who, &last, x.p, x.len), CRDT_EPROTO);
    free(x.p);
    ck_assert_uint_eq(last, 77);
}
END_TEST

START_TEST(test_change_proves_and_strip_sig_at_their_edges)
{
    unsigned char space[16], junk[100];
    crdt_change c1, c2, other;
    hspec s;
    hb x1, x2, x;
    size_t len;

    space_of(space);
    spec_init(&s, space);
    ck_assert_int_eq(decode_spec(&c1, &s, &x1), CRDT_OK);
    s.seq = 2;
    memcpy(s.prev, c1.hash, sizeof s.prev);
    ck_assert_int_eq(decode_spec(&c2, &s, &x2), CRDT_OK);
    ck_assert_int_eq(crdt_change_proves(&c2, &c1), 1);
    ck_assert_int_eq(crdt_change_proves(NULL, &c1), 0);
    ck_assert_int_eq(crdt_change_proves(&c2, NULL), 0);
    /* the same actor id over another incarnation: not its successor */
    other = c2;
    other.incarnation[0] ^= 1;
    ck_assert_int_eq(crdt_change_proves(&other, &c1), 0);

    /* strip_sig: what it cannot strip it leaves as it was */
    ck_assert_uint_eq(crdt_change_strip_sig(NULL, 100), 0);
    ck_assert_uint_eq(crdt_change_strip_sig(x1.p, 65), 0);
    memset(junk, 0xc0, sizeof junk);
    ck_assert_uint_eq(crdt_change_strip_sig(junk, sizeof junk), 0);
    s.signed_ = 0;
    build(&x, &s);
    len = x.len;
    ck_assert_uint_eq(crdt_change_strip_sig(x.p, x.len), 0);
    ck_assert_uint_eq(x.p[len - 1], 0xc0);
    free(x.p);
    /* a signature under a bin 16 header: not where a bin 8 would be */
    s.signed_ = 1;
    s.sig_wide = 1;
    build(&x, &s);
    ck_assert_int_eq(crdt_change_decode(&other, x.p, x.len), CRDT_OK);
    ck_assert_ptr_nonnull(other.sig);
    ck_assert_uint_eq(crdt_change_strip_sig(x.p, x.len), 0);
    ck_assert_uint_eq(x.p[x.len - 67], 0xc5);
    free(x.p);
    /* and the one it strips */
    len = crdt_change_strip_sig(x2.p, x2.len);
    ck_assert_uint_eq(len, x2.len - 65);
    ck_assert_int_eq(crdt_change_decode(&other, x2.p, len), CRDT_OK);
    ck_assert_ptr_null(other.sig);
    ck_assert(memcmp(other.hash, c2.hash, sizeof other.hash) == 0);
    free(x1.p);
    free(x2.p);
}
END_TEST

/* crdt_op_iter over a change header whose op bytes are not what the
 * decoder left there: no array, nothing to iterate; bytes after the
 * last op, EPROTO. */
START_TEST(test_op_iter_over_bad_op_bytes)
{
    static const unsigned char not_array[] = { 0xc0 };
    unsigned char space[16], *tail;
    crdt_change c, bad;
    crdt_op_iter it;
    crdt_op op;
    hspec s;
    hb x;

    space_of(space);
    spec_init(&s, space);
    ck_assert_int_eq(decode_spec(&c, &s, &x), CRDT_OK);
    bad = c;
    bad.ops = not_array;
    bad.ops_len = sizeof not_array;
    crdt_op_iter_init(&it, &bad);
    ck_assert_int_eq(crdt_op_iter_next(&op, &it), CRDT_ENOTFOUND);

    tail = malloc(c.ops_len + 1);
    ck_assert_ptr_nonnull(tail);
    memcpy(tail, c.ops, c.ops_len);
    tail[c.ops_len] = 0x00;
    bad = c;
    bad.ops = tail;
    bad.ops_len = c.ops_len + 1;
    crdt_op_iter_init(&it, &bad);
    ck_assert_int_eq(crdt_op_iter_next(&op, &it), CRDT_EPROTO);
    ck_assert_int_eq(crdt_op_iter_next(&op, &it), CRDT_ENOTFOUND);
    /* the op itself, as the change holds it */
    crdt_op_iter_init(&it, &c);
    ck_assert_int_eq(crdt_op_iter_next(&op, &it), CRDT_OK);
    ck_assert_int_eq(op.kind, CRDT_OP_PUT);
    ck_assert_int_eq(op.value.u.i, 1);
    ck_assert_int_eq(crdt_op_iter_next(&op, &it), CRDT_ENOTFOUND);
    free(tail);
    free(x.p);
}
END_TEST

/* ---- packed change lists ---- */

/* the first record's flags: after version, space and a one-byte count */
#define FIRST_FLAGS 18

static void
assert_round_trip(const crdt_bytes *list, size_t n, unsigned char **packed,
                  size_t *plen)
{
    crdt_bytes *got = NULL;
    unsigned char *buf = NULL;
    size_t gn = 0;

    ck_assert_int_eq(crdt_changes_pack(packed, plen, list, n), CRDT_OK);
    ck_assert_int_eq(crdt_changes_unpack(&got, &gn, &buf, *packed, *plen),
                     CRDT_OK);
    ck_assert_uint_eq(gn, n);
    for (size_t i = 0; i < n; i++) {
        ck_assert_uint_eq(got[i].len, list[i].len);
        ck_assert(memcmp(got[i].data, list[i].data, list[i].len) == 0);
    }
    crdt_free(got);
    crdt_free(buf);
}

/* Each form our writer never uses: it decodes, and a pack keeps it
 * byte for byte, as a verbatim record. */
START_TEST(test_changes_in_other_forms_pack_verbatim)
{
    unsigned char space[16], *packed;
    crdt_bytes list[8];
    hb x[8];
    crdt_change c;
    size_t plen;
    hspec s;

    space_of(space);
    for (int i = 0; i < 8; i++) {
        spec_init(&s, space);
        s.seq = 1 + (uint64_t)i;
        switch (i) {
        case 0: s.outer16 = 1; break;
        case 1: s.body_wide = 1; break;
        case 2: s.version_wide = 1; break;
        case 3: s.space_wide = 1; break;
        case 4: s.seq_wide = 1; break;
        case 5: s.prev_wide = 1; break;
        case 6: s.sig_wide = 1; break;
        default: break; /* our own form: packed */
        }
        ck_assert_int_eq(decode_spec(&c, &s, &x[i]), CRDT_OK);
        list[i].data = x[i].p;
        list[i].len = x[i].len;
        assert_round_trip(&list[i], 1, &packed, &plen);
        if (i < 7) {
            ck_assert_uint_eq(packed[FIRST_FLAGS], 0);
            ck_assert_uint_ge(plen, x[i].len);
        } else {
            ck_assert_uint_ne(packed[FIRST_FLAGS], 0);
            ck_assert_uint_lt(plen, x[i].len);
        }
        crdt_free(packed);
    }
    /* all of them in one list */
    assert_round_trip(list, 8, &packed, &plen);
    crdt_free(packed);
    for (int i = 0; i < 8; i++)
        free(x[i].p);
}
END_TEST

/* A list with more epochs (_i 0) or authors (_i 1) than the packed
 * form's tables hold: the change past the limit goes verbatim. */
START_TEST(test_pack_past_a_table_limit_goes_verbatim)
{
    size_t n = _i == 0 ? 257 : 4097;
    crdt_bytes *list = calloc(n, sizeof *list);
    unsigned char space[16], *packed, *less;
    size_t plen, llen;
    hspec s;

    ck_assert_ptr_nonnull(list);
    space_of(space);
    for (size_t i = 0; i < n; i++) {
        hb x;
        spec_init(&s, space);
        if (_i == 0) {
            s.epoch[0] = (unsigned char)i;
            s.epoch[1] = (unsigned char)(i >> 8);
            s.seq = 1 + i;
        } else {
            s.pk[0] = (unsigned char)i;
            s.pk[1] = (unsigned char)(i >> 8);
        }
        build(&x, &s);
        list[i].data = x.p;
        list[i].len = x.len;
    }
    assert_round_trip(list, n, &packed, &plen);
    ck_assert_int_eq(crdt_changes_pack(&less, &llen, list, n - 1), CRDT_OK);
    /* the last one whole, its count one byte longer at most */
    ck_assert_uint_ge(plen, llen + list[n - 1].len);
    crdt_free(less);
    crdt_free(packed);
    for (size_t i = 0; i < n; i++)
        free((void *)list[i].data);
    free(list);
}
END_TEST

START_TEST(test_pack_and_unpack_refuse_bad_arguments)
{
    unsigned char space[16], *out = (unsigned char *)1, *buf = NULL, *big;
    crdt_bytes one, *got = NULL;
    size_t len = 9, n = 9, at;
    hspec s;
    hb x;

    space_of(space);
    spec_init(&s, space);
    build(&x, &s);
    one.data = x.p;
    one.len = x.len;
    ck_assert_int_eq(crdt_changes_pack(NULL, &len, &one, 1), CRDT_EINVAL);
    ck_assert_int_eq(crdt_changes_pack(&out, NULL, &one, 1), CRDT_EINVAL);
    ck_assert_int_eq(crdt_changes_pack(&out, &len, NULL, 1), CRDT_EINVAL);
    ck_assert_uint_eq(len, 9);
    /* no changes: an empty list, packed */
    ck_assert_int_eq(crdt_changes_pack(&out, &len, NULL, 0), CRDT_OK);
    ck_assert_int_eq(crdt_changes_unpack(&got, &n, &buf, out, len), CRDT_OK);
    ck_assert_uint_eq(n, 0);
    crdt_free(got);
    crdt_free(buf);
    crdt_free(out);
    ck_assert_int_eq(crdt_changes_pack_hashed(&out, &len, NULL, NULL, 0),
                     CRDT_OK);
    crdt_free(out);

    n = 9;
    ck_assert_int_eq(crdt_changes_unpack(NULL, &n, &buf, x.p, x.len),
                     CRDT_EINVAL);
    ck_assert_int_eq(crdt_changes_unpack(&got, NULL, &buf, x.p, x.len),
                     CRDT_EINVAL);
    ck_assert_int_eq(crdt_changes_unpack(&got, &n, NULL, x.p, x.len),
                     CRDT_EINVAL);
    ck_assert_int_eq(crdt_changes_unpack(&got, &n, &buf, NULL, 1),
                     CRDT_EINVAL);
    ck_assert_uint_eq(n, 9);
    /* no bytes at all: not even a version */
    ck_assert_int_eq(crdt_changes_unpack(&got, &n, &buf, NULL, 0),
                     CRDT_EPROTO);
    ck_assert_ptr_null(got);
    ck_assert_uint_eq(n, 0);

    /* a count the bytes could hold, past what a list may rebuild: refused
     * before anything is allocated for it */
    big = calloc(1, 32 + 4 * 131073u);
    ck_assert_ptr_nonnull(big);
    big[0] = 1;
    at = 17;
    big[at++] = 0x81; /* 131073 as a varint: 81 80 08 */
    big[at++] = 0x80;
    big[at++] = 0x08;
    ck_assert_int_eq(crdt_changes_unpack(&got, &n, &buf, big,
                                         at + 4 * 131073u), CRDT_EPROTO);
    ck_assert_ptr_null(got);
    ck_assert_ptr_null(buf);
    free(big);
    free(x.p);
}
END_TEST

/* Verbatim changes whose sum passes CRDT_CHANGES_PACKED_MAX: the pack is
 * refused as a whole. */
START_TEST(test_pack_past_the_message_limit_is_elimit)
{
    size_t vlen = 3u * 1024 * 1024;
    unsigned char space[16], *op, *out = NULL;
    crdt_bytes list[3];
    hb x[3];
    size_t len = 5;
    crdt_change c;
    hspec s;

    op = malloc(vlen + 16);
    ck_assert_ptr_nonnull(op);
    memcpy(op, PUT_OP, 8); /* 95 00 c d f, then a bin 32 value */
    op[8] = 0xc6;
    op[9] = (unsigned char)(vlen >> 24);
    op[10] = (unsigned char)(vlen >> 16);
    op[11] = (unsigned char)(vlen >> 8);
    op[12] = (unsigned char)vlen;
    memset(op + 13, 0x61, vlen);
    space_of(space);
    for (int i = 0; i < 3; i++) {
        spec_init(&s, space);
        s.version_wide = 1; /* verbatim */
        s.seq = 1 + (uint64_t)i;
        s.ops = op;
        s.ops_len = vlen + 13;
        ck_assert_int_eq(decode_spec(&c, &s, &x[i]), CRDT_OK);
        list[i].data = x[i].p;
        list[i].len = x[i].len;
    }
    ck_assert_int_eq(crdt_changes_pack(&out, &len, list, 2), CRDT_OK);
    crdt_free(out);
    ck_assert_int_eq(crdt_changes_pack(&out, &len, list, 3), CRDT_ELIMIT);
    ck_assert_ptr_null(out);
    ck_assert_uint_eq(len, 0);
    for (int i = 0; i < 3; i++)
        free(x[i].p);
    free(op);
}
END_TEST

/* ---- txn ---- */

START_TEST(test_txn_refuses_a_null_name)
{
    crdt_value v = crdt_value_int(4);
    crdt_txn *t;
    char buf[32];

    ck_assert_int_eq(crdt_txn_begin(&t, a), CRDT_OK);
    ck_assert_int_eq(crdt_txn_put(t, NULL, "d", "f", &v), CRDT_EINVAL);
    ck_assert_int_eq(crdt_txn_put(t, "c", NULL, "f", &v), CRDT_EINVAL);
    ck_assert_int_eq(crdt_txn_put(t, "c", "d", NULL, &v), CRDT_EINVAL);
    ck_assert_int_eq(crdt_txn_incr(t, "c", "d", NULL, 1), CRDT_EINVAL);
    ck_assert_int_eq(crdt_txn_sadd(t, "c", "d", NULL, &v), CRDT_EINVAL);
    ck_assert_int_eq(crdt_txn_srem(t, "c", "d", NULL, &v), CRDT_EINVAL);
    ck_assert_int_eq(crdt_txn_del_field(t, "c", "d", NULL), CRDT_EINVAL);
    ck_assert_int_eq(crdt_txn_del_doc(t, NULL, "d"), CRDT_EINVAL);
    ck_assert_uint_eq(crdt_txn_op_count(t), 0);
    /* and the txn goes on */
    ck_assert_int_eq(crdt_txn_put(t, "c", "d", "f", &v), CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    tu_field_str(buf, sizeof buf, a, "c", "d", "f");
    ck_assert_str_eq(buf, "4");
}
END_TEST

static void
assert_text(crdt_replica *r, const char *field, const char *want)
{
    crdt_read *rd;
    char *s = NULL;
    size_t len = 0;

    ck_assert_int_eq(crdt_read_begin(&rd, r), CRDT_OK);
    ck_assert_int_eq(crdt_read_text(&s, &len, rd, "c", "d", field), CRDT_OK);
    crdt_read_end(rd);
    ck_assert_uint_eq(len, strlen(want));
    ck_assert(memcmp(s, want, len) == 0);
    crdt_text_free(s);
}

/* A change near CRDT_CHANGE_MAX: typing that would take it past is
 * refused (CRDT_ELIMIT) whether it continues the last insert or starts
 * an op of its own, and the txn goes on: the next keystroke is an op of
 * its own, and the change commits what was accepted. */
START_TEST(test_typing_past_the_change_limit_is_refused)
{
    size_t vlen = CRDT_CHANGE_MAX - 4096 - 13 - 200, big = 4000;
    char *val = malloc(vlen), *text = malloc(big);
    crdt_value v;
    crdt_txn *t;

    ck_assert_ptr_nonnull(val);
    ck_assert_ptr_nonnull(text);
    memset(val, 0x42, vlen);
    memset(text, 'k', big);
    v = crdt_value_bytes(val, vlen);
    ck_assert_int_eq(crdt_txn_begin(&t, a), CRDT_OK);
    ck_assert_int_eq(crdt_txn_put(t, "c", "d", "f", &v), CRDT_OK);
    ck_assert_int_eq(crdt_txn_text_insert(t, "c", "d", "t", 0, "ab", 2),
                     CRDT_OK);
    ck_assert_uint_eq(crdt_txn_op_count(t), 2);
    /* behind "ab": would fold into its op, and overflow it */
    ck_assert_int_eq(crdt_txn_text_insert(t, "c", "d", "t", 2, text, big),
                     CRDT_ELIMIT);
    /* another text: an op of its own, too large as well */
    ck_assert_int_eq(crdt_txn_text_insert(t, "c", "d", "u", 0, text, big),
                     CRDT_ELIMIT);
    ck_assert_uint_eq(crdt_txn_op_count(t), 2);
    /* the refused op was the last written: nothing to fold into */
    ck_assert_int_eq(crdt_txn_text_insert(t, "c", "d", "t", 2, "x", 1),
                     CRDT_OK);
    ck_assert_uint_eq(crdt_txn_op_count(t), 3);
    ck_assert_int_eq(crdt_txn_text_insert(t, "c", "d", "t", 3, "y", 1),
                     CRDT_OK);
    ck_assert_uint_eq(crdt_txn_op_count(t), 3);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    assert_text(a, "t", "abxy");
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    assert_text(b, "t", "abxy");
    free(val);
    free(text);
}
END_TEST

/* ---- crdt_txn_write() ---- */

static int
put_one(crdt_txn *t, void *arg)
{
    crdt_value v = crdt_value_int(*(int *)arg);
    return crdt_txn_put(t, "c", "d", "g", &v);
}

static int
fail_after_put(crdt_txn *t, void *arg)
{
    (void)put_one(t, arg);
    return -42;
}

/* A body of one replica that writes to another: that is no write of the
 * replica whose lock it holds, and it commits. */
static int
write_other(crdt_txn *t, void *arg)
{
    int v = 5;
    crdt_value x = crdt_value_int(1);
    int rc = crdt_txn_write(b, put_one, &v, NULL);

    *(int *)arg = rc;
    return crdt_txn_put(t, "c", "d", "h", &x);
}

START_TEST(test_group_body_writes_another_replica)
{
    crdt_commit_info info;
    int inner = 99;
    char buf[32];

    ck_assert_int_eq(crdt_txn_write(a, write_other, &inner, &info), CRDT_OK);
    ck_assert_int_eq(inner, CRDT_OK);
    ck_assert_uint_eq(info.first_seq, 1);
    tu_field_str(buf, sizeof buf, b, "c", "d", "g");
    ck_assert_str_eq(buf, "5");
    tu_field_str(buf, sizeof buf, a, "c", "d", "h");
    ck_assert_str_eq(buf, "1");
}
END_TEST

/* A thread that holds a read of the replica writes alone: a body that
 * fails there leaves nothing either. */
START_TEST(test_write_alone_body_that_fails)
{
    crdt_commit_info info = { 7, 7, 7 };
    crdt_read *rd;
    int v = 3;
    char buf[32];

    ck_assert_int_eq(crdt_read_begin(&rd, a), CRDT_OK);
    ck_assert_int_eq(crdt_txn_write(a, fail_after_put, &v, &info), -42);
    ck_assert_uint_eq(info.first_seq, 0);
    ck_assert_int_eq(crdt_txn_write(a, put_one, &v, &info), CRDT_OK);
    ck_assert_uint_eq(info.first_seq, 1);
    crdt_read_end(rd);
    tu_field_str(buf, sizeof buf, a, "c", "d", "g");
    ck_assert_str_eq(buf, "3");
    ck_assert_uint_eq(tu_stats(a).changes_in_log, 1);
}
END_TEST

START_TEST(test_write_on_read_only_replica_is_eperm)
{
    crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
    crdt_commit_info info = { 7, 7, 7 };
    char path[300];
    int v = 1;

    snprintf(path, sizeof path, "%s", crdt_replica_path(a));
    crdt_replica_close(a);
    o.read_only = 1;
    ck_assert_int_eq(crdt_replica_open(&a, path, &o), CRDT_OK);
    ck_assert_int_eq(crdt_txn_write(a, put_one, &v, &info), CRDT_EPERM);
    ck_assert_uint_eq(info.first_seq, 0);
    ck_assert_uint_eq(tu_stats(a).changes_in_log, 0);
}
END_TEST

static int
feed_writes(void *ctx, const crdt_feed_event *ev)
{
    int v = 9;

    (void)ev;
    if (*(int *)ctx == 99)
        *(int *)ctx = crdt_txn_write(a, put_one, &v, NULL);
    return 0;
}

START_TEST(test_write_from_a_feed_callback_is_ebusy)
{
    crdt_feed_sub *sub;
    int got = 99;
    char buf[32];

    ck_assert_int_eq(crdt_feed_subscribe(&sub, a, NULL, NULL, feed_writes,
                                         &got), CRDT_OK);
    ck_assert_int_eq(tu_put_int(a, "c", "d", "g", 1), CRDT_OK);
    crdt_feed_unsubscribe(sub);
    ck_assert_int_eq(got, CRDT_EBUSY);
    tu_field_str(buf, sizeof buf, a, "c", "d", "g");
    ck_assert_str_eq(buf, "1");
    ck_assert_uint_eq(tu_stats(a).changes_in_log, 1);
}
END_TEST

/* A body whose op failed its txn (the map may not grow) but returned 0:
 * CRDT_EBADTXN, nothing committed, and the replica writes on. */
static int
put_big(crdt_txn *t, void *arg)
{
    crdt_value v = crdt_value_bytes(arg, 3u * 1024 * 1024);

    (void)crdt_txn_put(t, "c", "d", "big", &v);
    return 0;
}

START_TEST(test_group_body_whose_txn_failed_is_ebadtxn)
{
    crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
    crdt_commit_info info = { 7, 7, 7 };
    char path[300], buf[32];
    unsigned char *big = calloc(1, 3u * 1024 * 1024);
    int v = 2;

    ck_assert_ptr_nonnull(big);
    snprintf(path, sizeof path, "%s", crdt_replica_path(a));
    crdt_replica_close(a);
    o.map_size = 1024 * 1024;
    o.max_map_size = 1024 * 1024;
    ck_assert_int_eq(crdt_replica_open(&a, path, &o), CRDT_OK);
    ck_assert_int_eq(crdt_txn_write(a, put_big, big, &info), CRDT_EBADTXN);
    ck_assert_uint_eq(info.first_seq, 0);
    ck_assert_int_eq(crdt_txn_write(a, put_one, &v, &info), CRDT_OK);
    ck_assert_uint_eq(info.first_seq, 1);
    tu_field_str(buf, sizeof buf, a, "c", "d", "g");
    ck_assert_str_eq(buf, "2");
    tu_field_str(buf, sizeof buf, a, "c", "d", "big");
    ck_assert_str_eq(buf, "");
    free(big);
}
END_TEST

/* The last element id issued (meta seq_ctr) cut short: an insert is
 * refused as damage, not numbered from 1 again (its id would be that of
 * an element already there, and the insert lost); put right, typing
 * goes on where it was. */
START_TEST(test_damaged_seq_ctr_refuses_an_insert)
{
    unsigned char *ctr;
    crdt_value v = crdt_value_int(1);
    crdt_txn *t;
    crdt_raw *r;
    const void *got;
    size_t len;

    ck_assert_int_eq(crdt_txn_begin(&t, a), CRDT_OK);
    ck_assert_int_eq(crdt_txn_text_insert(t, "c", "d", "t", 0, "ab", 2),
                     CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    ck_assert_int_eq(crdt_raw_begin(&r, a, 1), CRDT_OK);
    ck_assert_int_eq(crdt_raw_get(r, CRDT_DB_META, "seq_ctr", 7, &got, &len),
                     CRDT_OK);
    ck_assert_uint_eq(len, 16);
    ctr = malloc(len);
    ck_assert_ptr_nonnull(ctr);
    memcpy(ctr, got, len);
    ck_assert_int_eq(crdt_raw_put(r, CRDT_DB_META, "seq_ctr", 7, ctr, 15),
                     CRDT_OK);
    ck_assert_int_eq(crdt_raw_commit(r), CRDT_OK);

    ck_assert_int_eq(crdt_txn_begin(&t, a), CRDT_OK);
    ck_assert_int_eq(crdt_txn_text_insert(t, "c", "d", "t", 1, "X", 1),
                     CRDT_ECORRUPT);
    ck_assert_int_eq(crdt_txn_list_insert(t, "c", "d", "l", 0, &v),
                     CRDT_ECORRUPT);
    ck_assert_uint_eq(crdt_txn_op_count(t), 0);
    ck_assert_int_eq(crdt_txn_put(t, "c", "d", "f", &v), CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);

    ck_assert_int_eq(crdt_raw_begin(&r, a, 1), CRDT_OK);
    ck_assert_int_eq(crdt_raw_put(r, CRDT_DB_META, "seq_ctr", 7, ctr, 16),
                     CRDT_OK);
    ck_assert_int_eq(crdt_raw_commit(r), CRDT_OK);
    ck_assert_int_eq(crdt_txn_begin(&t, a), CRDT_OK);
    ck_assert_int_eq(crdt_txn_text_insert(t, "c", "d", "t", 1, "X", 1),
                     CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    assert_text(a, "t", "aXb");
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    assert_text(b, "t", "aXb");
    free(ctr);
}
END_TEST

/* The export calls' argument checks: CRDT_EINVAL, and crdt_export_next()
 * of no export is done. A real export of the same replica then gives
 * its one change, and an archive export of an epoch it never had gives
 * none. */
START_TEST(test_export_calls_refuse_bad_arguments)
{
    crdt_export *e = NULL;
    const unsigned char *p = NULL;
    size_t len = 0;
    crdt_change c;
    crdt_vv *upto;

    ck_assert_int_eq(tu_put_int(a, "c", "d", "f", 1), CRDT_OK);
    ck_assert_int_eq(crdt_export_begin(NULL, a, NULL), CRDT_EINVAL);
    ck_assert_int_eq(crdt_export_begin(&e, NULL, NULL), CRDT_EINVAL);
    ck_assert_ptr_null(e);
    ck_assert_int_eq(crdt_export_next(NULL, &p, &len), CRDT_ENOTFOUND);
    ck_assert_ptr_null(p);
    ck_assert_int_eq(crdt_vv_new(&upto), CRDT_OK);
    ck_assert_int_eq(crdt_export_begin_archive(NULL, a, 0, NULL, upto),
                     CRDT_EINVAL);
    ck_assert_int_eq(crdt_export_begin_archive(&e, NULL, 0, NULL, upto),
                     CRDT_EINVAL);
    ck_assert_int_eq(crdt_export_begin_archive(&e, a, 0, NULL, NULL),
                     CRDT_EINVAL);
    ck_assert_ptr_null(e);

    ck_assert_int_eq(crdt_export_begin(&e, a, NULL), CRDT_OK);
    ck_assert_int_eq(crdt_export_next_change(e, &p, &len, NULL),
                     CRDT_EINVAL);
    ck_assert_int_eq(crdt_export_next_change(e, NULL, &len, &c),
                     CRDT_EINVAL);
    ck_assert_int_eq(crdt_export_next_change(e, &p, NULL, &c), CRDT_EINVAL);
    ck_assert_int_eq(crdt_export_next_change(e, &p, &len, &c), CRDT_OK);
    ck_assert_uint_eq(c.seq, 1);
    ck_assert_int_eq(crdt_export_next_change(e, &p, &len, &c),
                     CRDT_ENOTFOUND);
    crdt_export_end(e);

    ck_assert_int_eq(crdt_export_begin_archive(&e, a, 0, NULL, upto),
                     CRDT_OK);
    ck_assert_int_eq(crdt_export_next(e, &p, &len), CRDT_ENOTFOUND);
    crdt_export_end(e);
    crdt_vv_free(upto);
}
END_TEST

/* The heads-blob readers' argument checks (crdt/raw.h): a blob that is
 * not there but has a length is malformed, a missing output or actor is
 * CRDT_EINVAL; an empty blob holds no head. */
START_TEST(test_heads_blob_readers_refuse_bad_arguments)
{
    crdt_actor actor = { { 1, 2, 3, 4, 5, 6, 7, 8 } };
    uint64_t seq = 9;
    crdt_vv *vv = NULL;

    ck_assert_int_eq(crdt_heads_parse(NULL, 5, NULL, NULL), CRDT_EPROTO);
    ck_assert_int_eq(crdt_heads_seq(NULL, NULL, 0, &actor), CRDT_EINVAL);
    ck_assert_int_eq(crdt_heads_seq(&seq, NULL, 0, NULL), CRDT_EINVAL);
    ck_assert_uint_eq(seq, 9);
    ck_assert_int_eq(crdt_heads_seq(&seq, NULL, 0, &actor), CRDT_OK);
    ck_assert_uint_eq(seq, 0);
    ck_assert_int_eq(crdt_heads_vv(NULL, NULL, 0), CRDT_EINVAL);
    ck_assert_int_eq(crdt_heads_vv(&vv, NULL, 0), CRDT_OK);
    ck_assert_uint_eq(crdt_vv_count(vv), 0);
    crdt_vv_free(vv);
}
END_TEST

Suite *
test_suite(void)
{
    Suite *s = suite_create("oplog_edges2");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_change_decode_refuses_what_is_no_change);
    tcase_add_test(tc, test_export_calls_refuse_bad_arguments);
    tcase_add_test(tc, test_heads_blob_readers_refuse_bad_arguments);
    tcase_add_test(tc, test_change_peek_refuses_a_bad_header);
    tcase_add_test(tc, test_change_proves_and_strip_sig_at_their_edges);
    tcase_add_test(tc, test_op_iter_over_bad_op_bytes);
    tcase_add_test(tc, test_changes_in_other_forms_pack_verbatim);
    tcase_add_loop_test(tc, test_pack_past_a_table_limit_goes_verbatim, 0, 2);
    tcase_add_test(tc, test_pack_and_unpack_refuse_bad_arguments);
    tcase_add_test(tc, test_pack_past_the_message_limit_is_elimit);
    tcase_add_test(tc, test_txn_refuses_a_null_name);
    tcase_add_test(tc, test_typing_past_the_change_limit_is_refused);
    tcase_add_test(tc, test_group_body_writes_another_replica);
    tcase_add_test(tc, test_write_alone_body_that_fails);
    tcase_add_test(tc, test_write_on_read_only_replica_is_eperm);
    tcase_add_test(tc, test_write_from_a_feed_callback_is_ebusy);
    tcase_add_test(tc, test_group_body_whose_txn_failed_is_ebadtxn);
    tcase_add_test(tc, test_damaged_seq_ctr_refuses_an_insert);
    suite_add_tcase(s, tc);
    return s;
}

