/*
 * test_changepack.c: packed change lists (crdt_changes_pack/unpack,
 * docs/protocol.md "Packed changes"). Every change comes back byte for
 * byte: runs with and without signatures, several authors interleaved,
 * every op kind (the ones without a compact form go raw), a change that
 * is not ours to rebuild goes verbatim; register writes shrink to about
 * their value and document number; malformed lists are refused.
 * Version 2 of the form (one-op changes smaller) likewise, and version
 * 1 stays what crdt_changes_pack() writes.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crdt/crdt.h"
#include "crdt/text.h"
#include "internal.h" /* crdt__changes_pack_decoded: what a merge's log uses */
#include "support/hand_pack.h"
#include "support/replica_util.h"
#include "support/support.h"

/* a and b: a fresh pair of one space for each test */
TU_PAIR_FIXTURE(tu_pair_create)

/* @p n changes of @p ops register writes each, w1-like */
static void
w1_changes(crdt_replica *r, int n, int ops, uint64_t *seed)
{
    for (int i = 0; i < n; i++) {
        crdt_txn *t;
        ck_assert_int_eq(crdt_txn_begin(&t, r), CRDT_OK);
        for (int j = 0; j < ops; j++) {
            char doc[16];
            uint64_t x = test_rand(seed);
            crdt_value v = crdt_value_int((int64_t)((x >> 2) | (1ULL << 40)));
            snprintf(doc, sizeof doc, "d%05u",
                     (unsigned)(test_rand(seed) % 10000));
            ck_assert_int_eq(crdt_txn_put(t, "c", doc, "v", &v), CRDT_OK);
        }
        ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    }
}

/* unpack @p packed (freed), compare with @p in byte for byte;
 * @return @p plen */
static size_t
unpacks_to(unsigned char *packed, size_t plen, const crdt_bytes *in, size_t n)
{
    unsigned char *buf = NULL;
    crdt_bytes *out = NULL;
    size_t m = 0;

    ck_assert_int_eq(crdt_changes_unpack(&out, &m, &buf, packed, plen),
                     CRDT_OK);
    ck_assert_uint_eq(m, n);
    for (size_t i = 0; i < n; i++) {
        ck_assert_uint_eq(out[i].len, in[i].len);
        ck_assert(memcmp(out[i].data, in[i].data, in[i].len) == 0);
    }
    crdt_free(out);
    crdt_free(buf);
    crdt_free(packed);
    return plen;
}

/* pack @p in in form @p version, unpack, compare byte for byte */
static size_t
round_trip_version(const crdt_bytes *in, size_t n, int version)
{
    unsigned char *packed = NULL;
    size_t plen = 0;

    ck_assert_int_eq(crdt_changes_pack_version(&packed, &plen, in, NULL, n,
                                               version),
                     CRDT_OK);
    ck_assert_uint_eq(packed[0], version);
    return unpacks_to(packed, plen, in, n);
}

static size_t round_trip_v1(const crdt_bytes *in, size_t n);

/* pack @p in, unpack, compare every change byte for byte; the same in
 * version 2. @return the version-1 size. */
static size_t
round_trip(const crdt_bytes *in, size_t n)
{
    size_t plen = round_trip_v1(in, n);

    ck_assert_uint_eq(round_trip_version(in, n, CRDT_CHANGES_PACK_V1), plen);
    round_trip_version(in, n, CRDT_CHANGES_PACK_V2);
    return plen;
}

static size_t
round_trip_v1(const crdt_bytes *in, size_t n)
{
    unsigned char *packed = NULL;
    size_t plen = 0;

    ck_assert_int_eq(crdt_changes_pack(&packed, &plen, in, n), CRDT_OK);
    /* a merge's log packs the changes it decoded (their headers only)
     * without decoding them again: the same bytes */
    {
        crdt_change *dec = calloc(n ? n : 1, sizeof *dec);
        unsigned char *p2 = NULL;
        size_t l2 = 0, ok = 0;
        ck_assert_ptr_nonnull(dec);
        for (size_t i = 0; i < n; i++)
            ok += crdt__change_decode_header(&dec[i], in[i].data,
                                             in[i].len) == CRDT_OK;
        if (ok == n) {
            ck_assert_int_eq(crdt__changes_pack_decoded(&p2, &l2, in, dec, n),
                             CRDT_OK);
            ck_assert_uint_eq(l2, plen);
            ck_assert(memcmp(p2, packed, plen) == 0);
            crdt_free(p2);
        }
        free(dec);
    }
    return unpacks_to(packed, plen, in, n);
}

/* the list the session would send: a change followed by its successor
 * loses its signature */
static void
strip_runs(tu_batch *x)
{
    for (size_t i = 0; i + 1 < x->n; i++) {
        crdt_change c, nx;
        unsigned char *q;
        size_t nl;
        ck_assert_int_eq(crdt_change_decode(&c, x->v[i].data, x->v[i].len),
                         CRDT_OK);
        ck_assert_int_eq(crdt_change_decode(&nx, x->v[i + 1].data,
                                            x->v[i + 1].len), CRDT_OK);
        if (!crdt_change_proves(&nx, &c))
            continue;
        q = (unsigned char *)x->v[i].data; /* tu_batch owns copies */
        nl = crdt_change_strip_sig(q, x->v[i].len);
        if (nl > 0)
            x->v[i].len = nl;
    }
}

START_TEST(test_register_writes_round_trip_small)
{
    uint64_t seed = test_seed("changepack");
    tu_batch x;
    size_t raw = 0, plen, ops = 20 * 100;

    w1_changes(a, 20, 100, &seed);
    x = tu_export_all(a);
    ck_assert_uint_eq(x.n, 20);
    strip_runs(&x);
    for (size_t i = 0; i < x.n; i++)
        raw += x.v[i].len;
    plen = round_trip(x.v, x.n);
    /* an op: the short form, the document number (2 bytes, 3 from
     * 8192), the value (8 bytes) */
    ck_assert_msg(plen <= ops * 21 / 2 + 400, "packed %zu bytes for %zu ops "
                  "(raw %zu)", plen, ops, raw);
    ck_assert_uint_lt(plen * 10, raw * 6); /* the raw list is ~21 B/op */
    tu_batch_free(&x);
}
END_TEST

/* pack @p x in form @p version and merge it unpacked into @p r */
static int
merge_packed(crdt_replica *r, const tu_batch *x, int version,
             crdt_merge_report *rep)
{
    unsigned char *packed = NULL;
    size_t plen = 0, n = 0;
    crdt_unpacked *u = NULL;
    const crdt_bytes *list;
    int rc;

    ck_assert_int_eq(crdt_changes_pack_version(&packed, &plen, x->v, NULL,
                                               x->n, version),
                     CRDT_OK);
    ck_assert_int_eq(crdt_unpacked_new(&u, packed, plen), CRDT_OK);
    list = crdt_unpacked_changes(u, &n);
    ck_assert_uint_eq(n, x->n);
    for (size_t i = 0; i < n; i++) {
        ck_assert_uint_eq(list[i].len, x->v[i].len);
        ck_assert(memcmp(list[i].data, x->v[i].data, x->v[i].len) == 0);
    }
    rc = crdt_merge_unpacked(rep, r, u);
    crdt_unpacked_free(u);
    crdt_free(packed);
    return rc;
}

/* crdt_merge_unpacked() (the hashes the unpack computed, not hashed
 * again) merges as crdt_merge() does: one-op and larger changes, a text,
 * runs without signatures; a change whose signature was altered is
 * refused (CRDT_EAUTH) as by crdt_merge(), and nothing is kept. */
START_TEST(test_merge_unpacked_as_merge)
{
    uint64_t seed = test_seed("changepack-merge");
    char dc[256], hb[65], hc[65], hd[65];
    unsigned char space[16];
    crdt_replica *c;
    crdt_merge_report rb, rc_;
    tu_batch x;

    w1_changes(a, 40, 1, &seed);
    w1_changes(a, 5, 30, &seed);
    for (int i = 0; i < 20; i++) {
        crdt_txn *t;
        ck_assert_int_eq(crdt_txn_begin(&t, a), CRDT_OK);
        ck_assert_int_eq(crdt_txn_text_insert(t, "m", "doc", "body",
                                              (uint64_t)i, "k", 1),
                         CRDT_OK);
        ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    }
    x = tu_export_all(a);
    strip_runs(&x);
    crdt_replica_space_id(a, space);
    c = tu_create(dc, sizeof dc, space);
    ck_assert_int_eq(merge_packed(b, &x, CRDT_CHANGES_PACK_V2, &rb),
                     CRDT_OK);
    ck_assert_int_eq(crdt_merge(&rc_, c, x.v, x.n), CRDT_OK);
    ck_assert_uint_eq(rb.changes_applied, rc_.changes_applied);
    ck_assert_uint_eq(rb.ops_applied, rc_.ops_applied);
    tu_hash(hb, b);
    tu_hash(hc, c);
    ck_assert_str_eq(hb, hc);
    crdt_replica_close(c);
    test_rmtree(dc);

    /* the last change holds the run's one signature: alter it */
    {
        unsigned char *q = (unsigned char *)x.v[x.n - 1].data;
        q[x.v[x.n - 1].len - 1] ^= 0x01;
    }
    c = tu_create(dc, sizeof dc, space);
    tu_hash(hd, c);
    ck_assert_int_eq(merge_packed(c, &x, CRDT_CHANGES_PACK_V1, NULL),
                     CRDT_EAUTH);
    tu_hash(hc, c);
    ck_assert_str_eq(hc, hd);
    ck_assert_int_eq(crdt_merge(NULL, c, x.v, x.n), CRDT_EAUTH);
    crdt_replica_close(c);
    test_rmtree(dc);
    tu_batch_free(&x);
}
END_TEST

START_TEST(test_interleaved_authors_and_every_kind)
{
    uint64_t seed = test_seed("changepack-kinds");
    tu_batch x, y, all;
    crdt_txn *t;
    crdt_value s = crdt_value_str("hello", 5), n = crdt_value_null();

    w1_changes(a, 3, 7, &seed);
    w1_changes(b, 2, 5, &seed);
    ck_assert_int_eq(crdt_txn_begin(&t, a), CRDT_OK);
    ck_assert_int_eq(crdt_txn_put(t, "notes", "n1", "title", &s), CRDT_OK);
    ck_assert_int_eq(crdt_txn_put(t, "notes", "n2", "title", &n), CRDT_OK);
    ck_assert_int_eq(crdt_txn_incr(t, "notes", "n1", "views", -5), CRDT_OK);
    ck_assert_int_eq(crdt_txn_sadd(t, "notes", "n1", "tags", &s), CRDT_OK);
    ck_assert_int_eq(crdt_txn_text_insert(t, "notes", "n1", "body", 0,
                                          "abc", 3), CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    ck_assert_int_eq(crdt_txn_begin(&t, a), CRDT_OK);
    ck_assert_int_eq(crdt_txn_srem(t, "notes", "n1", "tags", &s), CRDT_OK);
    ck_assert_int_eq(crdt_txn_del_field(t, "notes", "n1", "views"), CRDT_OK);
    ck_assert_int_eq(crdt_txn_del_doc(t, "notes", "n2"), CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    w1_changes(b, 2, 5, &seed);
    x = tu_export_all(a);
    y = tu_export_all(b);
    /* interleaved a, b, a, b, ...: the tables and chains per author */
    all.n = x.n + y.n;
    all.v = calloc(all.n, sizeof *all.v);
    ck_assert_ptr_nonnull(all.v);
    for (size_t i = 0, k = 0; k < all.n; i++) {
        if (i < x.n)
            all.v[k++] = x.v[i];
        if (i < y.n)
            all.v[k++] = y.v[i];
    }
    round_trip(all.v, all.n);
    strip_runs(&x);
    round_trip(x.v, x.n);
    /* what merges from the unpacked list is what merges from the list */
    {
        unsigned char *packed, *buf;
        size_t plen, m;
        crdt_bytes *out;
        char ha[65], hb[65];
        ck_assert_int_eq(crdt_changes_pack(&packed, &plen, x.v, x.n),
                         CRDT_OK);
        ck_assert_int_eq(crdt_changes_unpack(&out, &m, &buf, packed, plen),
                         CRDT_OK);
        ck_assert_int_eq(crdt_merge(NULL, b, out, m), CRDT_OK);
        ck_assert_int_eq(tu_sync_one_way(a, b), CRDT_OK);
        tu_hash(ha, a);
        tu_hash(hb, b);
        ck_assert_str_eq(ha, hb);
        crdt_free(out);
        crdt_free(buf);
        crdt_free(packed);
    }
    free(all.v);
    tu_batch_free(&x);
    tu_batch_free(&y);
}
END_TEST

START_TEST(test_not_ours_goes_verbatim)
{
    uint64_t seed = test_seed("changepack-verbatim");
    tu_batch x;
    unsigned char *odd;
    crdt_change c;

    w1_changes(a, 3, 4, &seed);
    x = tu_export_all(a);
    /* the middle change with its seq as a uint64 (cf): still a change,
     * not what our writer makes; it must come back exactly so */
    ck_assert_int_eq(crdt_change_decode(&c, x.v[1].data, x.v[1].len),
                     CRDT_OK);
    {
        const unsigned char *p = x.v[1].data;
        size_t len = x.v[1].len, at = 0;
        /* 92 c4 LL 99 02 c4 10 <16> c4 20 <32> c4 20 <32> c4 08 <8> seq */
        ck_assert_uint_eq(p[0], 0x92);
        ck_assert_uint_eq(p[1], 0xc4);
        at = 3 + 2 + 18 + 34 + 34 + 10;
        ck_assert_uint_eq(p[at], c.seq); /* a fixint */
        odd = malloc(len + 8);
        ck_assert_ptr_nonnull(odd);
        memcpy(odd, p, at);
        odd[at] = 0xcf;
        for (int i = 0; i < 8; i++)
            odd[at + 1 + i] = (unsigned char)(c.seq >> (56 - 8 * i));
        memcpy(odd + at + 9, p + at + 1, len - at - 1);
        odd[2] = (unsigned char)(p[2] + 8);
        ck_assert_int_eq(crdt_change_decode(&c, odd, len + 8), CRDT_OK);
        free((void *)x.v[1].data);
        x.v[1].data = odd;
        x.v[1].len = len + 8;
    }
    round_trip(x.v, x.n);
    tu_batch_free(&x);
}
END_TEST

START_TEST(test_malformed_lists_are_refused)
{
    uint64_t seed = test_seed("changepack-bad");
    tu_batch x;
    unsigned char *packed, *buf, *cut;
    size_t plen, m;
    crdt_bytes *out;
    static const unsigned char bomb[] = {
        1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0xff, 0xff, 0xff, 0xff, 0x0f /* 2^32 - 1 records */
    };

    w1_changes(a, 2, 10, &seed);
    x = tu_export_all(a);
    ck_assert_int_eq(crdt_changes_pack(&packed, &plen, x.v, x.n), CRDT_OK);
    /* every prefix is refused, never read beyond */
    for (size_t l = 0; l < plen; l++) {
        cut = malloc(l ? l : 1);
        ck_assert_ptr_nonnull(cut);
        memcpy(cut, packed, l);
        ck_assert_int_eq(crdt_changes_unpack(&out, &m, &buf, cut, l),
                         CRDT_EPROTO);
        free(cut);
    }
    /* a trailing byte */
    cut = malloc(plen + 1);
    ck_assert_ptr_nonnull(cut);
    memcpy(cut, packed, plen);
    cut[plen] = 0;
    ck_assert_int_eq(crdt_changes_unpack(&out, &m, &buf, cut, plen + 1),
                     CRDT_EPROTO);
    /* another version */
    cut[0] = 3;
    ck_assert_int_eq(crdt_changes_unpack(&out, &m, &buf, cut, plen),
                     CRDT_EPROTO);
    free(cut);
    /* a count the bytes cannot hold is refused before any allocation */
    ck_assert_int_eq(crdt_changes_unpack(&out, &m, &buf, bomb, sizeof bomb),
                     CRDT_EPROTO);
    ck_assert_int_eq(crdt_changes_unpack(&out, &m, &buf, packed,
                                         (size_t)CRDT_CHANGES_PACKED_MAX + 1),
                     CRDT_ELIMIT);
    crdt_free(packed);
    tu_batch_free(&x);
}
END_TEST

/* Packing with the hashes the caller decoded gives the bytes packing
 * alone gives; wrong hashes only cost size: every change still comes
 * back byte for byte. */
START_TEST(test_pack_with_known_hashes)
{
    uint64_t seed = test_seed("changepack-hashed");
    tu_batch x;
    unsigned char *hashes, *p1 = NULL, *p2 = NULL, *p3 = NULL, *buf = NULL;
    size_t l1 = 0, l2 = 0, l3 = 0, m = 0;
    crdt_bytes *out = NULL;

    w1_changes(a, 12, 3, &seed);
    x = tu_export_all(a);
    strip_runs(&x);
    hashes = calloc(x.n, CRDT_HASH_BYTES);
    ck_assert_ptr_nonnull(hashes);
    for (size_t i = 0; i < x.n; i++) {
        crdt_change c;
        ck_assert_int_eq(crdt_change_decode(&c, x.v[i].data, x.v[i].len),
                         CRDT_OK);
        memcpy(hashes + i * CRDT_HASH_BYTES, c.hash, CRDT_HASH_BYTES);
    }
    ck_assert_int_eq(crdt_changes_pack(&p1, &l1, x.v, x.n), CRDT_OK);
    ck_assert_int_eq(crdt_changes_pack_hashed(&p2, &l2, x.v, hashes, x.n),
                     CRDT_OK);
    ck_assert_uint_eq(l1, l2);
    ck_assert(memcmp(p1, p2, l1) == 0);
    /* wrong hashes: no change is chained, each still rebuilds */
    memset(hashes, 0x5a, x.n * CRDT_HASH_BYTES);
    ck_assert_int_eq(crdt_changes_pack_hashed(&p3, &l3, x.v, hashes, x.n),
                     CRDT_OK);
    ck_assert_uint_gt(l3, l1);
    ck_assert_int_eq(crdt_changes_unpack(&out, &m, &buf, p3, l3), CRDT_OK);
    ck_assert_uint_eq(m, x.n);
    for (size_t i = 0; i < x.n; i++) {
        ck_assert_uint_eq(out[i].len, x.v[i].len);
        ck_assert(memcmp(out[i].data, x.v[i].data, x.v[i].len) == 0);
    }
    crdt_free(p3);
    p3 = NULL;
    ck_assert_int_eq(crdt_changes_pack_hashed(&p3, &l3, x.v, NULL, x.n),
                     CRDT_EINVAL);
    crdt_free(out);
    crdt_free(buf);
    crdt_free(p1);
    crdt_free(p2);
    free(hashes);
    tu_batch_free(&x);
}
END_TEST

/* A hand-written pack (support/hand_pack.h) whose first change's op is
 * @p op (NULL: a PUT of c, d, v = 1), then @p second (or NULL). */
static size_t
pack_by_hand(unsigned char *p, const unsigned char *second, size_t second_len,
             const unsigned char *op, size_t op_len)
{
    static const unsigned char first_op[] = {
        0x08, 0, 1, 'c', 0, 1, 'd', 0, 1, 'v', 0x01};

    if (op == NULL) {
        op = first_op;
        op_len = sizeof first_op;
    }
    return tu_hand_pack(p, op, op_len, second, second_len);
}

static int
unpack_rc(const unsigned char *p, size_t len)
{
    crdt_bytes *out = NULL;
    unsigned char *buf = NULL;
    size_t m = 0;
    int rc = crdt_changes_unpack(&out, &m, &buf, p, len);

    crdt_free(out);
    crdt_free(buf);
    return rc;
}

/* The unpacker takes only the form the packer writes (docs/protocol.md,
 * "Packed changes", canonical form): the same changes in another form
 * are refused. */
START_TEST(test_non_canonical_packs_are_refused)
{
    unsigned char p[512];
    /* the second change: same author and epoch, chained, the names by
     * index, the value's tag the last one */
    static const unsigned char ok2[] = {0x1d, 0, 1, 0x48, 1, 3, 5};
    static const unsigned char tag_sent[] = {0x1d, 0, 1, 0x08, 1, 3, 5, 1};
    static const unsigned char author_by_index[] = {0x15, 0, 0, 1, 0x48,
                                                    1, 3, 5};
    static const unsigned char epoch_by_index[] = {0x0d, 0, 0, 1, 0x48,
                                                   1, 3, 5};
    static const unsigned char overlong[] = {0x1d, 0, 0x81, 0x00, 0x48,
                                             1, 3, 5};
    unsigned char author_again[64], epoch_again[64];
    /* a raw op of the compact shape; the same with a str16 header */
    static const unsigned char raw_compact[] = {
        3, 9, 0x95, 0, 0xa1, 'c', 0xa1, 'd', 0xa1, 'v', 0x01};
    static const unsigned char raw_str16[] = {
        3, 11, 0x95, 0, 0xda, 0, 1, 'c', 0xa1, 'd', 0xa1, 'v', 0x01};
    size_t n;

    ck_assert_int_eq(unpack_rc(p, pack_by_hand(p, NULL, 0, NULL, 0)),
                     CRDT_OK);
    ck_assert_int_eq(unpack_rc(p, pack_by_hand(p, ok2, sizeof ok2, NULL, 0)),
                     CRDT_OK);
    ck_assert_int_eq(unpack_rc(p, pack_by_hand(p, tag_sent, sizeof tag_sent,
                                               NULL, 0)),
                     CRDT_EPROTO);
    ck_assert_int_eq(unpack_rc(p, pack_by_hand(p, author_by_index,
                                               sizeof author_by_index, NULL,
                                               0)),
                     CRDT_EPROTO);
    ck_assert_int_eq(unpack_rc(p, pack_by_hand(p, epoch_by_index,
                                               sizeof epoch_by_index, NULL,
                                               0)),
                     CRDT_EPROTO);
    ck_assert_int_eq(unpack_rc(p, pack_by_hand(p, overlong, sizeof overlong,
                                               NULL, 0)),
                     CRDT_EPROTO);
    /* a new author (epoch) that is the one already in the table */
    n = 0;
    author_again[n++] = 0x15; /* chained, same epoch, not same author */
    author_again[n++] = 1;    /* author 1: new */
    memset(author_again + n, 0x22, 40);
    n += 40;
    author_again[n++] = 0;
    author_again[n++] = 1;
    author_again[n++] = 0x48;
    author_again[n++] = 1;
    author_again[n++] = 3;
    author_again[n++] = 5;
    ck_assert_int_eq(unpack_rc(p, pack_by_hand(p, author_again, n, NULL, 0)),
                     CRDT_EPROTO);
    n = 0;
    epoch_again[n++] = 0x0d; /* chained, same author, not same epoch */
    epoch_again[n++] = 1;    /* epoch 1: new */
    memset(epoch_again + n, 0x33, 32);
    n += 32;
    epoch_again[n++] = 0;
    epoch_again[n++] = 1;
    epoch_again[n++] = 0x48;
    epoch_again[n++] = 1;
    epoch_again[n++] = 3;
    epoch_again[n++] = 5;
    ck_assert_int_eq(unpack_rc(p, pack_by_hand(p, epoch_again, n, NULL, 0)),
                     CRDT_EPROTO);
    ck_assert_int_eq(unpack_rc(p, pack_by_hand(p, NULL, 0, raw_compact,
                                               sizeof raw_compact)),
                     CRDT_EPROTO);
    ck_assert_int_eq(unpack_rc(p, pack_by_hand(p, NULL, 0, raw_str16,
                                               sizeof raw_str16)),
                     CRDT_OK);
}
END_TEST

/* An op whose name has a longer str header than the shortest is packed
 * raw, the rest of its change compact; the change comes back exactly. */
START_TEST(test_non_shortest_name_goes_raw)
{
    uint64_t seed = test_seed("changepack-raw-op");
    tu_batch x;
    crdt_change c;
    unsigned char *odd, *packed = NULL;
    size_t plen = 0, at, len;
    const unsigned char *p;

    w1_changes(a, 1, 1, &seed);
    x = tu_export_all(a);
    ck_assert_uint_eq(x.n, 1);
    p = x.v[0].data;
    len = x.v[0].len;
    ck_assert_int_eq(crdt_change_decode(&c, p, len), CRDT_OK);
    /* the op [kind, coll, ...]: coll's fixstr header as a str8 */
    at = (size_t)(c.ops - p) + 1;
    ck_assert_uint_eq(p[at], 0x95);
    ck_assert_uint_eq(p[at + 2] & 0xe0, 0xa0);
    ck_assert_uint_eq(p[1], 0xc4);
    odd = malloc(len + 1);
    ck_assert_ptr_nonnull(odd);
    memcpy(odd, p, at + 2);
    odd[at + 2] = 0xd9;
    odd[at + 3] = p[at + 2] & 0x1f;
    memcpy(odd + at + 4, p + at + 3, len - at - 3);
    odd[2] = (unsigned char)(p[2] + 1); /* the body's bin8 length */
    ck_assert_int_eq(crdt_change_decode(&c, odd, len + 1), CRDT_OK);
    free((void *)x.v[0].data);
    x.v[0].data = odd;
    x.v[0].len = len + 1;
    ck_assert_int_eq(crdt_changes_pack(&packed, &plen, x.v, 1), CRDT_OK);
    ck_assert_uint_eq(packed[18], 0x03); /* packed and signed: not verbatim */
    crdt_free(packed);
    round_trip(x.v, x.n);
    tu_batch_free(&x);
}
END_TEST

/* a clock the test moves (crdt_set_clock) */
static uint64_t test_ms;

static uint64_t
test_clock(void *ctx)
{
    (void)ctx;
    return test_ms;
}

static void
one_op_change(crdt_replica *r, uint64_t ms, int ops, uint64_t *seed)
{
    test_ms = ms;
    w1_changes(r, 1, ops, seed);
}

/* Version 2: changes of one op, as a writer committing one op at a time
 * makes them, take about their op; every stamp mode (the same ms, the
 * next, a later one, a delta after a merged later stamp, a clock that
 * stepped back) and change of several ops in between come back byte
 * for byte; version 1 is what crdt_changes_pack() writes. */
START_TEST(test_version2_one_op_changes)
{
    uint64_t seed = test_seed("changepack-v2");
    tu_batch x;
    size_t l1, l2;
    unsigned char *p = NULL;
    size_t pl = 0;

    crdt_set_clock(test_clock, NULL);
    one_op_change(a, 1000, 1, &seed); /* the author's first */
    one_op_change(a, 1000, 1, &seed); /* the same ms: expected */
    one_op_change(a, 1001, 1, &seed); /* the next ms */
    one_op_change(a, 1100, 1, &seed); /* a later ms */
    one_op_change(a, 1100, 3, &seed); /* three ops */
    one_op_change(a, 1100, 1, &seed);
    one_op_change(b, 5000, 1, &seed);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    one_op_change(a, 1100, 1, &seed); /* after b's later stamp: a delta */
    one_op_change(a, 900, 1, &seed);  /* the clock stepped back */
    for (int i = 0; i < 200; i++)     /* a writer of ~3 changes a ms */
        one_op_change(a, 2000 + (uint64_t)i / 3, 1, &seed);
    crdt_set_clock(NULL, NULL);
    x = tu_export_all(a);
    strip_runs(&x);
    l1 = round_trip(x.v, x.n);
    l2 = round_trip_version(x.v, x.n, CRDT_CHANGES_PACK_V2);
    /* an op: short form, document number, value (11 bytes); a change:
     * the flags byte; a new author and epoch once */
    ck_assert_msg(l2 <= x.n * 13 + 300, "version 2: %zu bytes for %zu "
                  "changes (version 1: %zu)", l2, x.n, l1);
    ck_assert_uint_le(l2 + x.n * 3, l1);
    ck_assert_int_eq(crdt_changes_pack_version(&p, &pl, x.v, NULL, x.n, 3),
                     CRDT_EINVAL);
    ck_assert_int_eq(crdt_changes_pack_version(&p, &pl, x.v, NULL, x.n, 0),
                     CRDT_EINVAL);
    tu_batch_free(&x);
}
END_TEST

/* A version-2 pack by hand: space 0x11..., @p n records; the first of
 * one author (0x22...), epoch (0x33...), seq 1, prev 0x44..., hlc 1 (a
 * delta: no other mode gives it), with op @p op; then @p rest. */
static size_t
hand_pack_v2(unsigned char *p, unsigned n, const unsigned char *op,
             size_t op_len, const unsigned char *rest, size_t rest_len)
{
    size_t at = 0;

    p[at++] = 2;
    memset(p + at, 0x11, 16);
    at += 16;
    p[at++] = (unsigned char)n;
    p[at++] = 0x21; /* packed, one op, hlc as a delta */
    p[at++] = 0;
    memset(p + at, 0x22, 40);
    at += 40;
    p[at++] = 0;
    memset(p + at, 0x33, 32);
    at += 32;
    p[at++] = 1;
    memset(p + at, 0x44, 32);
    at += 32;
    p[at++] = 2; /* zigzag(1) */
    memcpy(p + at, op, op_len);
    at += op_len;
    memcpy(p + at, rest, rest_len);
    return at + rest_len;
}

/* One version-2 pack of a first record and @p second: @p rc expected. */
static void
check_v2(const unsigned char *second, size_t len, int rc)
{
    /* PUT c d v = 1, each name a literal */
    static const unsigned char op[] = {0x08, 0, 1, 'c', 0, 1, 'd',
                                       0, 1, 'v', 0x01};
    unsigned char p[512];

    ck_assert_int_eq(unpack_rc(p, hand_pack_v2(p, 2, op, sizeof op, second,
                                               len)),
                     rc);
}

/* Version 2's canonical form: one encoding per change. */
START_TEST(test_version2_non_canonical_refused)
{
    /* chained, same author and epoch, one op; the op by the names'
     * indices, the value's tag the last one: 48 01 03 05 */
#define OP 0x48, 1, 3, 5
    static const unsigned char same[] = {0x7d, OP};      /* hlc 2 */
    static const unsigned char same_as_delta[] = {0x3d, 0, OP};
    static const unsigned char one_op_spelled[] = {0x5d, 1, OP};
    static const unsigned char two_ops[] = {0x5c | 0x01, 2, OP, OP};
    static const unsigned char next_ms[] = {0xbd, OP};   /* 1 << 16 */
    static const unsigned char next_ms_as_delta[] = {0x3d, 0xfc, 0xff, 0x07,
                                                     OP};
    static const unsigned char later_ms[] = {0xfd, 0, OP}; /* 2 << 16 */
    static const unsigned char later_ms_as_delta[] = {0x3d, 0xfc, 0xff, 0x0f,
                                                      OP};
    static const unsigned char later_ms_last[] = {
        0xfd, 0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f, OP};
    static const unsigned char later_ms_beyond[] = {
        0xfd, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f, OP};
    static const unsigned char delta_back[] = {0x3d, 3, OP}; /* hlc 0 */
    static const unsigned char delta_counter[] = {0x3d, 2, OP}; /* hlc 3 */
#undef OP
    unsigned char p[512];

    check_v2(same, sizeof same, CRDT_OK);
    check_v2(same_as_delta, sizeof same_as_delta, CRDT_EPROTO);
    check_v2(one_op_spelled, sizeof one_op_spelled, CRDT_EPROTO);
    check_v2(two_ops, sizeof two_ops, CRDT_OK);
    check_v2(next_ms, sizeof next_ms, CRDT_OK);
    check_v2(next_ms_as_delta, sizeof next_ms_as_delta, CRDT_EPROTO);
    check_v2(later_ms, sizeof later_ms, CRDT_OK);
    check_v2(later_ms_as_delta, sizeof later_ms_as_delta, CRDT_EPROTO);
    check_v2(later_ms_last, sizeof later_ms_last, CRDT_OK);
    check_v2(later_ms_beyond, sizeof later_ms_beyond, CRDT_EPROTO);
    check_v2(delta_back, sizeof delta_back, CRDT_OK);
    check_v2(delta_counter, sizeof delta_counter, CRDT_OK);
    /* flag bits 5..7 are version 2's: version 1 refuses them */
    {
        static const unsigned char op[] = {0x08, 0, 1, 'c', 0, 1, 'd',
                                           0, 1, 'v', 0x01};
        static const unsigned char v1_flags[] = {0x3d, 0, 1, 0x48, 1, 3, 5};
        ck_assert_int_eq(unpack_rc(p, pack_by_hand(p, v1_flags,
                                                   sizeof v1_flags, op,
                                                   sizeof op)),
                         CRDT_EPROTO);
    }
}
END_TEST

/* Version 2's short op repeats the last compact op's names; the long
 * form with that header is canonical only when a name differs. */
START_TEST(test_version2_short_op_names)
{
    /* PUT c d1 v = 1: d1 makes "d" + 1 digit the last template; names
     * c (token 1), d1 (3), v (5) */
    static const unsigned char op[] = {0x08, 0, 1, 'c', 0, 2, 'd', '1',
                                       0, 1, 'v', 0x01};
    /* c d2 v: the header 50 (doc by the last template, same tag) */
    static const unsigned char r2[] = {0x7d, 0x50, 1, 2, 5};
    /* then c d3 v: the short op 83, no names */
    static const unsigned char short3[] = {0x7d, 0x50, 1, 2, 5, 0x7d, 0x83};
    static const unsigned char long3[] = {0x7d, 0x50, 1, 2, 5,
                                          0x7d, 0x50, 1, 3, 5};
    /* k d3 v: the same header, another coll: the long form; then the
     * short op repeats k */
    static const unsigned char other3[] = {0x7d, 0x50, 1, 2, 5,
                                           0x7d, 0x50, 0, 1, 'k', 3, 5,
                                           0x7d, 0x84};
    unsigned char p[512];
    unsigned char *buf = NULL;
    crdt_bytes *out = NULL;
    size_t m = 0, len;
    crdt_change c;
    static const unsigned char want[] = {0x95, 0, 0xa1, 'k', 0xa2, 'd', '4',
                                         0xa1, 'v', 0x01};

    ck_assert_int_eq(unpack_rc(p, hand_pack_v2(p, 2, op, sizeof op, r2,
                                               sizeof r2)),
                     CRDT_OK);
    ck_assert_int_eq(unpack_rc(p, hand_pack_v2(p, 3, op, sizeof op, short3,
                                               sizeof short3)),
                     CRDT_OK);
    ck_assert_int_eq(unpack_rc(p, hand_pack_v2(p, 3, op, sizeof op, long3,
                                               sizeof long3)),
                     CRDT_EPROTO);
    len = hand_pack_v2(p, 4, op, sizeof op, other3, sizeof other3);
    ck_assert_int_eq(crdt_changes_unpack(&out, &m, &buf, p, len), CRDT_OK);
    ck_assert_uint_eq(m, 4);
    ck_assert_int_eq(crdt_change_decode(&c, out[3].data, out[3].len),
                     CRDT_OK);
    /* [0, "k", "d4", "v", 1] */
    ck_assert_uint_eq(c.ops_len, 11); /* 91 and the op */
    ck_assert(memcmp(c.ops + 1, want, sizeof want) == 0);
    crdt_free(out);
    crdt_free(buf);
}
END_TEST

Suite *
test_suite(void)
{
    Suite *s = suite_create("changepack");
    TCase *tc = tcase_create("changepack");

    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_register_writes_round_trip_small);
    tcase_add_test(tc, test_interleaved_authors_and_every_kind);
    tcase_add_test(tc, test_not_ours_goes_verbatim);
    tcase_add_test(tc, test_malformed_lists_are_refused);
    tcase_add_test(tc, test_pack_with_known_hashes);
    tcase_add_test(tc, test_non_canonical_packs_are_refused);
    tcase_add_test(tc, test_non_shortest_name_goes_raw);
    tcase_add_test(tc, test_version2_one_op_changes);
    tcase_add_test(tc, test_version2_non_canonical_refused);
    tcase_add_test(tc, test_version2_short_op_names);
    tcase_add_test(tc, test_merge_unpacked_as_merge);
    suite_add_tcase(s, tc);
    return s;
}
