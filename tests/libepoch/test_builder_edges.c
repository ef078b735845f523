/*
 * test_builder_edges.c: the answers of the migration builder, the epoch
 * records and the re-derivation at their edges: bad arguments of every
 * entry point, a builder used after its commit, a lens or custom
 * migration whose versions do not fit the schema, a migration refused
 * while a reset stages or another migration was interrupted, records
 * too long or with a damaged body, a store that lost its genesis key,
 * a long chain kept or pruned by the retention, and an epoch of many
 * writers re-derived. Every refusal leaves the replica byte for byte as it
 * was: what docs say of epoch.h's error answers.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crdt/crdt.h"
#include "crdt/raw.h"
#include "epoch/epoch.h"
#include "support/epoch_util.h"
#include "support/replica_util.h"
#include "support/support.h"

/* a: a fresh attached replica for each test */
TU_ATTACHED_FIXTURE(ck_assert_int_eq(tu_put_int(a, "c", "d", "x", 1), CRDT_OK))

static uint64_t
epoch_number(void)
{
    epoch_info e;
    uint64_t n;

    ck_assert_int_eq(epoch_current(&e, a), CRDT_OK);
    n = e.number;
    epoch_info_clear(&e);
    return n;
}

static int
keep_doc(epoch_doc *doc, const char *coll, const char *doc_id, void *ctx)
{
    (void)doc;
    (void)coll;
    (void)doc_id;
    (void)ctx;
    return CRDT_OK;
}

/* A builder whose commit must be refused with @p want, the replica byte
 * for byte as it was and no marker left behind. */
static void
assert_commit_refused(epoch_builder *bl, int want)
{
    unsigned char before[32], after[32];
    epoch_info e;
    epoch_marker m;

    tu_digest_all(a, before);
    memset(&e, 0, sizeof e);
    ck_assert_int_eq(epoch_builder_commit(&e, bl), want);
    ck_assert_uint_eq(e.number, 0);
    ck_assert_ptr_null(e.raw);
    epoch_builder_free(bl);
    tu_digest_all(a, after);
    ck_assert_mem_eq(before, after, 32);
    ck_assert_int_eq(epoch_marker_get(&m, a), CRDT_ENOTFOUND);
}

/* ---- bad arguments ---- */

START_TEST(test_builder_refuses_bad_arguments)
{
    epoch_builder *bl = NULL;
    epoch_lens *l = tu_lens("collection c 1 -> 2\nrename x -> y\n");
    unsigned char before[32], after[32];

    tu_digest_all(a, before);
    ck_assert_int_eq(epoch_builder_new(NULL, a), CRDT_EINVAL);
    ck_assert_int_eq(epoch_builder_new(&bl, NULL), CRDT_EINVAL);
    ck_assert_ptr_null(bl);
    ck_assert_int_eq(epoch_builder_add_lens(NULL, l), CRDT_EINVAL);
    ck_assert_int_eq(epoch_builder_set_custom(NULL, "n", "c", 2, keep_doc,
                                              NULL),
                     CRDT_EINVAL);
    epoch_builder_set_progress(NULL, NULL, NULL); /* no-ops */
    epoch_builder_set_retention(NULL, 3);
    ck_assert_int_eq(epoch_builder_commit(NULL, NULL), CRDT_EINVAL);
    epoch_builder_free(NULL);

    ck_assert_int_eq(epoch_builder_new(&bl, a), CRDT_OK);
    ck_assert_int_eq(epoch_builder_add_lens(bl, NULL), CRDT_EINVAL);
    ck_assert_int_eq(epoch_builder_set_custom(bl, NULL, "c", 2, keep_doc,
                                              NULL),
                     CRDT_EINVAL);
    ck_assert_int_eq(epoch_builder_set_custom(bl, "", "c", 2, keep_doc,
                                              NULL),
                     CRDT_EINVAL);
    ck_assert_int_eq(epoch_builder_set_custom(bl, "n", "c", 2, NULL, NULL),
                     CRDT_EINVAL);
    ck_assert_int_eq(epoch_builder_set_custom(bl, "n", "", 2, keep_doc,
                                              NULL),
                     CRDT_EINVAL);
    ck_assert_int_eq(epoch_builder_set_custom(bl, "n", NULL, 2, keep_doc,
                                              NULL),
                     CRDT_EINVAL);
    /* one lens file per epoch: a second one is refused, the first kept */
    ck_assert_int_eq(epoch_builder_add_lens(bl, l), CRDT_OK);
    ck_assert_int_eq(epoch_builder_add_lens(bl, l), CRDT_EINVAL);
    epoch_builder_free(bl);
    epoch_lens_free(l);
    /* none of it wrote anything */
    tu_digest_all(a, after);
    ck_assert_mem_eq(before, after, 32);
    ck_assert_uint_eq(epoch_number(), 0);
}
END_TEST

/* After its commit a builder only takes epoch_builder_free(). */
START_TEST(test_builder_is_spent_after_its_commit)
{
    epoch_builder *bl;
    epoch_lens *l = tu_lens("collection c 1 -> 2\nrename x -> y\n");
    unsigned char before[32], after[32];
    char buf[64];
    epoch_info e;

    ck_assert_int_eq(epoch_builder_new(&bl, a), CRDT_OK);
    ck_assert_int_eq(epoch_builder_add_lens(bl, l), CRDT_OK);
    ck_assert_int_eq(epoch_builder_commit(&e, bl), CRDT_OK);
    ck_assert_uint_eq(e.number, 1);
    tu_digest_all(a, before);
    ck_assert_int_eq(epoch_builder_commit(NULL, bl), CRDT_EINVAL);
    ck_assert_int_eq(epoch_builder_add_lens(bl, l), CRDT_EINVAL);
    ck_assert_int_eq(epoch_builder_set_custom(bl, "n", "c", 3, keep_doc,
                                              NULL),
                     CRDT_EINVAL);
    epoch_builder_free(bl);
    tu_digest_all(a, after);
    ck_assert_mem_eq(before, after, 32);
    ck_assert_uint_eq(epoch_number(), 1);
    tu_field_str(buf, sizeof buf, a, "c", "d", "y");
    ck_assert_str_eq(buf, "1");
    epoch_info_clear(&e);
    epoch_lens_free(l);
}
END_TEST

START_TEST(test_record_readers_refuse_bad_arguments)
{
    static const unsigned char zero_id[EPOCH_ID_BYTES];
    epoch_info e, *chain = NULL;
    size_t n = 7, len = 7;
    const unsigned char *rec = zero_id, *heads = NULL;
    unsigned char before[32], after[32];
    epoch_check chk;

    tu_digest_all(a, before);
    memset(&e, 0, sizeof e);
    ck_assert_int_eq(epoch_record_decode(NULL, zero_id, 1), CRDT_EINVAL);
    ck_assert_int_eq(epoch_record_decode(&e, NULL, 1), CRDT_EINVAL);
    ck_assert_int_eq(epoch_current(NULL, a), CRDT_EINVAL);
    ck_assert_int_eq(epoch_current(&e, NULL), CRDT_EINVAL);
    ck_assert_int_eq(epoch_get(NULL, a, zero_id), CRDT_EINVAL);
    ck_assert_int_eq(epoch_get(&e, NULL, zero_id), CRDT_EINVAL);
    ck_assert_int_eq(epoch_get(&e, a, NULL), CRDT_EINVAL);
    ck_assert_int_eq(epoch_chain(NULL, &n, a), CRDT_EINVAL);
    ck_assert_int_eq(epoch_chain(&chain, NULL, a), CRDT_EINVAL);
    ck_assert_int_eq(epoch_chain(&chain, &n, NULL), CRDT_EINVAL);
    ck_assert_int_eq(epoch_all(NULL, &n, a), CRDT_EINVAL);
    ck_assert_int_eq(epoch_all(&chain, NULL, a), CRDT_EINVAL);
    ck_assert_int_eq(epoch_all(&chain, &n, NULL), CRDT_EINVAL);
    ck_assert_int_eq(epoch_store_records(NULL, &rec, &len, 1), CRDT_EINVAL);
    ck_assert_int_eq(epoch_store_records(a, NULL, &len, 1), CRDT_EINVAL);
    ck_assert_int_eq(epoch_store_records(a, &rec, NULL, 1), CRDT_EINVAL);
    ck_assert_int_eq(epoch_record_heads(NULL, &len, &e), CRDT_EINVAL);
    ck_assert_int_eq(epoch_record_heads(&heads, NULL, &e), CRDT_EINVAL);
    ck_assert_int_eq(epoch_record_heads(&heads, &len, NULL), CRDT_EINVAL);
    ck_assert_int_eq(epoch_check_derivation(NULL, a, zero_id), CRDT_EINVAL);
    ck_assert_int_eq(epoch_check_derivation(&chk, NULL, zero_id),
                     CRDT_EINVAL);
    ck_assert_int_eq(epoch_check_derivation(&chk, a, NULL), CRDT_EINVAL);
    epoch_info_clear(NULL); /* a no-op */
    /* nothing was filled in nor written */
    ck_assert_ptr_null(e.raw);
    ck_assert_ptr_null(chain);
    ck_assert_ptr_null(heads);
    ck_assert_uint_eq(n, 7);
    ck_assert_uint_eq(len, 7);
    tu_digest_all(a, after);
    ck_assert_mem_eq(before, after, 32);
    /* no records is no work */
    ck_assert_int_eq(epoch_store_records(a, NULL, NULL, 0), CRDT_OK);
}
END_TEST

/* ---- versions that do not fit ---- */

/* The lens's `from` must be the collection's version now: a lens for
 * version 1 of a collection at version 2 is CRDT_EINVAL, nothing kept. */
START_TEST(test_lens_from_an_older_version_is_refused)
{
    epoch_builder *bl;
    epoch_lens *l = tu_lens("collection c 1 -> 2\nrename x -> y\n");
    epoch_info e;

    tu_migrate(a, "collection c 1 -> 2\nadd z int default 0\n", NULL);
    ck_assert_int_eq(epoch_builder_new(&bl, a), CRDT_OK);
    ck_assert_int_eq(epoch_builder_add_lens(bl, l), CRDT_OK);
    assert_commit_refused(bl, CRDT_EINVAL);
    ck_assert_uint_eq(epoch_number(), 1);
    epoch_lens_free(l);
    /* the version it is at takes it */
    tu_migrate(a, "collection c 2 -> 3\nrename x -> y\n", &e);
    ck_assert_uint_eq(e.number, 2);
    ck_assert_uint_eq(epoch_schema_version(&e, "c"), 3);
    epoch_info_clear(&e);
}
END_TEST

/* A custom migration must raise its collection's version: to the one it
 * is at (named in the schema by an earlier lens, or 1 when unnamed) or
 * below is CRDT_EINVAL. */
START_TEST(test_custom_migration_must_raise_the_version)
{
    epoch_builder *bl;
    epoch_info e;
    char buf[64];

    tu_migrate(a, "collection c 1 -> 2\nadd z int default 4\n"
                  "collection e 1 -> 5\nadd w int default 0\n", NULL);
    for (uint32_t to = 0; to <= 2; to++) {
        ck_assert_int_eq(epoch_builder_new(&bl, a), CRDT_OK);
        ck_assert_int_eq(epoch_builder_set_custom(bl, "keep", "c", to,
                                                  keep_doc, NULL),
                         CRDT_OK);
        assert_commit_refused(bl, CRDT_EINVAL);
    }
    /* an unnamed collection is at version 1 */
    ck_assert_int_eq(epoch_builder_new(&bl, a), CRDT_OK);
    ck_assert_int_eq(epoch_builder_set_custom(bl, "keep", "u", 1, keep_doc,
                                              NULL),
                     CRDT_OK);
    assert_commit_refused(bl, CRDT_EINVAL);
    ck_assert_uint_eq(epoch_number(), 1);

    /* a second set_custom replaces the first */
    ck_assert_int_eq(epoch_builder_new(&bl, a), CRDT_OK);
    ck_assert_int_eq(epoch_builder_set_custom(bl, "first", "u", 2, keep_doc,
                                              NULL),
                     CRDT_OK);
    ck_assert_int_eq(epoch_builder_set_custom(bl, "keep", "c", 3, keep_doc,
                                              NULL),
                     CRDT_OK);
    ck_assert_int_eq(epoch_builder_commit(&e, bl), CRDT_OK);
    epoch_builder_free(bl);
    ck_assert_uint_eq(e.number, 2);
    ck_assert_str_eq(e.custom, "keep");
    ck_assert_uint_eq(epoch_schema_version(&e, "c"), 3);
    ck_assert_uint_eq(epoch_schema_version(&e, "e"), 5);
    ck_assert_uint_eq(epoch_schema_version(&e, "u"), 1);
    epoch_info_clear(&e);
    tu_field_str(buf, sizeof buf, a, "c", "d", "x");
    ck_assert_str_eq(buf, "1");
    tu_field_str(buf, sizeof buf, a, "c", "d", "z");
    ck_assert_str_eq(buf, "4");
}
END_TEST

/* ---- another migration or a reset in the way ---- */

/* While a reset stages its snapshot (its token active), a migration and
 * a re-derivation are CRDT_EBUSY and change nothing; once it is aborted
 * both go on. */
START_TEST(test_staging_reset_blocks_migration_and_derivation)
{
    epoch_reset *rs;
    epoch_builder *bl;
    epoch_info cur, e;
    epoch_check chk;
    unsigned char before[32], after[32];

    ck_assert_int_eq(epoch_current(&cur, a), CRDT_OK);
    ck_assert_int_eq(epoch_reset_begin(&rs, a, cur.id, NULL), CRDT_OK);
    ck_assert_int_eq(epoch_builder_new(&bl, a), CRDT_OK);
    epoch_builder_set_progress(bl, NULL, NULL);
    assert_commit_refused(bl, CRDT_EBUSY);
    tu_digest_all(a, before);
    ck_assert_int_eq(epoch_check_derivation(&chk, a, cur.id), CRDT_EBUSY);
    tu_digest_all(a, after);
    ck_assert_mem_eq(before, after, 32);
    epoch_reset_abort(rs);

    ck_assert_int_eq(epoch_check_derivation(&chk, a, cur.id), CRDT_OK);
    ck_assert_int_eq(chk.verdict, EPOCH_DERIVED_UNCHECKED);
    ck_assert_uint_eq(chk.number, 0);
    tu_migrate(a, NULL, &e);
    ck_assert_uint_eq(e.number, 1);
    ck_assert_mem_eq(e.parent, cur.id, EPOCH_ID_BYTES);
    epoch_info_clear(&e);
    epoch_info_clear(&cur);
}
END_TEST

/* An interrupted migration's marker makes the next commit CRDT_EBUSY
 * (resume or abort it first); the marker stays as it was. */
START_TEST(test_interrupted_migration_blocks_the_next)
{
    epoch_builder *bl;
    epoch_marker m;
    epoch_info e;
    unsigned char before[32], after[32];

    tu_interrupted(a, "");
    tu_digest_all(a, before);
    ck_assert_int_eq(epoch_builder_new(&bl, a), CRDT_OK);
    ck_assert_int_eq(epoch_builder_commit(&e, bl), CRDT_EBUSY);
    epoch_builder_free(bl);
    tu_digest_all(a, after);
    ck_assert_mem_eq(before, after, 32);
    ck_assert_int_eq(epoch_marker_get(&m, a), CRDT_OK);
    ck_assert_uint_eq(m.target_number, 1);
    epoch_marker_clear(&m);
    ck_assert_int_eq(epoch_migration_abort(a), CRDT_OK);
    tu_migrate(a, NULL, &e);
    ck_assert_uint_eq(e.number, 1);
    epoch_info_clear(&e);
}
END_TEST

/* ---- records ---- */

/* A record longer than EPOCH_RECORD_MAX is refused before it is read
 * (CRDT_ELIMIT); one whose schema map claims more collections than a
 * record may name is CRDT_EPROTO. */
START_TEST(test_record_too_long_or_with_a_huge_schema_is_refused)
{
    static const unsigned char one[1] = { 0x90 };
    /* the map's header, then room for its 100001 claimed pairs (two
     * bytes each at least), so only the count can refuse it */
    enum { PAIRS = 100001, BODY = 3 + 2 + EPOCH_ID_BYTES + 5 + 2 * PAIRS };
    size_t cap = BODY + 128;
    unsigned char *rec = calloc(1, cap), *p = rec;
    epoch_info e;

    ck_assert_ptr_nonnull(rec);
    memset(&e, 0, sizeof e);
    ck_assert_int_eq(epoch_record_decode(&e, one, EPOCH_RECORD_MAX + 1u),
                     CRDT_ELIMIT);
    /* [ body, creator, created_ms, sig ] */
    *p++ = 0x94;
    *p++ = 0xc6; /* bin32 */
    *p++ = 0;
    *p++ = (unsigned char)(BODY >> 16);
    *p++ = (unsigned char)(BODY >> 8);
    *p++ = (unsigned char)BODY;
    *p++ = 0x98;              /* the body: 8 items */
    *p++ = 0x01;              /* format */
    *p++ = 0x01;              /* number */
    *p++ = 0xc4;              /* parent */
    *p++ = EPOCH_ID_BYTES;
    memset(p, 0xab, EPOCH_ID_BYTES);
    p += EPOCH_ID_BYTES;
    *p++ = 0xdf;              /* map32 */
    *p++ = (unsigned char)(PAIRS >> 24);
    *p++ = (unsigned char)(PAIRS >> 16);
    *p++ = (unsigned char)(PAIRS >> 8);
    *p++ = (unsigned char)PAIRS;
    p += 2 * PAIRS;           /* zeros */
    *p++ = 0xc4;
    *p++ = 32;
    memset(p, 0x11, 32);
    p += 32;
    *p++ = 0x07;
    *p++ = 0xc4;
    *p++ = 64;
    memset(p, 0x22, 64);
    p += 64;
    ck_assert_uint_le((size_t)(p - rec), cap);
    ck_assert_int_eq(epoch_record_decode(&e, rec, (size_t)(p - rec)),
                     CRDT_EPROTO);
    ck_assert_ptr_null(e.raw);
    ck_assert_ptr_null(e.schema);
    free(rec);
}
END_TEST

/* A store whose meta lost its genesis_id (docs/storage.md: written at
 * creation), or holds a damaged one, still knows epoch 0 while it is at
 * it: the current epoch's id is the genesis. Past epoch 0, or with the
 * current epoch's id lost or damaged too, no id is the genesis:
 * CRDT_ENOTFOUND, nothing synthesised; stored records are found. */
static void
meta_set(const char *key, const void *v, size_t vl)
{
    crdt_raw *t;

    ck_assert_int_eq(crdt_raw_begin(&t, a, 1), CRDT_OK);
    if (v != NULL)
        ck_assert_int_eq(crdt_raw_put(t, CRDT_DB_META, key, strlen(key), v,
                                      vl),
                         CRDT_OK);
    else
        ck_assert_int_eq(crdt_raw_del(t, CRDT_DB_META, key, strlen(key)),
                         CRDT_OK);
    ck_assert_int_eq(crdt_raw_commit(t), CRDT_OK);
}

START_TEST(test_genesis_known_without_its_meta_key)
{
    static const unsigned char other[EPOCH_ID_BYTES] = { 1, 2, 3 };
    static const unsigned char bad[3] = { 9, 9, 9 };
    epoch_info cur, e, one;

    ck_assert_int_eq(epoch_current(&cur, a), CRDT_OK);
    ck_assert_uint_eq(cur.number, 0);
    for (int damaged = 1; damaged >= 0; damaged--) {
        meta_set("genesis_id", damaged ? bad : NULL, sizeof bad);
        ck_assert_int_eq(epoch_get(&e, a, cur.id), CRDT_OK);
        ck_assert_uint_eq(e.number, 0);
        ck_assert_mem_eq(e.id, cur.id, EPOCH_ID_BYTES);
        ck_assert_str_eq(e.lens, "");
        ck_assert_uint_eq(e.n_schema, 0);
        epoch_info_clear(&e);
        ck_assert_int_eq(epoch_get(&e, a, other), CRDT_ENOTFOUND);
    }

    /* at epoch 1 the current id is no longer the genesis's */
    meta_set("genesis_id", cur.id, EPOCH_ID_BYTES);
    tu_migrate(a, NULL, &one);
    meta_set("genesis_id", NULL, 0);
    ck_assert_int_eq(epoch_get(&e, a, cur.id), CRDT_ENOTFOUND);
    ck_assert_int_eq(epoch_get(&e, a, one.id), CRDT_OK);
    ck_assert_uint_eq(e.number, 1);
    epoch_info_clear(&e);

    /* the current epoch's id damaged, then gone */
    meta_set("epoch_id", bad, sizeof bad);
    ck_assert_int_eq(epoch_get(&e, a, cur.id), CRDT_ENOTFOUND);
    meta_set("epoch_id", NULL, 0);
    ck_assert_int_eq(epoch_get(&e, a, cur.id), CRDT_ENOTFOUND);
    epoch_info_clear(&one);
    epoch_info_clear(&cur);
}
END_TEST

/* epoch_record_heads() of a record whose bytes are damaged (not what
 * epoch_record_decode() gave): CRDT_ECORRUPT at each place the walk to
 * the heads can fail, and nothing returned. */
START_TEST(test_heads_of_a_damaged_record_are_corrupt)
{
    static const struct {
        const char *why;
        unsigned char raw[16];
        size_t len;
    } cases[] = {
        { "not an array", { 0xc0 }, 1 },
        { "body not bin", { 0x94, 0xc0 }, 2 },
        { "body not an array", { 0x94, 0xc4, 0x01, 0xc0 }, 4 },
        { "body of two items", { 0x94, 0xc4, 0x03, 0x98, 0x01, 0x02 }, 6 },
        { "heads not bin",
          { 0x94, 0xc4, 0x08, 0x98, 1, 2, 3, 4, 5, 6, 0xc0 }, 11 },
    };
    epoch_info e, good;
    const unsigned char *heads;
    size_t len;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memset(&e, 0, sizeof e);
        e.raw = (unsigned char *)cases[i].raw;
        e.raw_len = cases[i].len;
        heads = NULL;
        len = 99;
        ck_assert_msg(epoch_record_heads(&heads, &len, &e) == CRDT_ECORRUPT,
                      "%s", cases[i].why);
        ck_assert_ptr_null(heads);
        ck_assert_uint_eq(len, 99);
    }
    /* the same walk over a real record finds the heads */
    tu_migrate(a, NULL, &good);
    ck_assert_int_eq(epoch_record_heads(&heads, &len, &good), CRDT_OK);
    ck_assert_ptr_nonnull(heads);
    ck_assert_uint_gt(len, 0);
    epoch_info_clear(&good);
}
END_TEST

/* A long chain: epoch_all() and epoch_chain() give every record, oldest
 * first, past the sizes their arrays start with; the retention keeps the
 * archived logs of the last epochs only once the chain is longer than
 * it. */
START_TEST(test_long_chain_is_listed_whole_and_pruned_by_retention)
{
    enum { N = 11 };
    epoch_info *all = NULL, *chain = NULL, e;
    size_t n_all = 0, n_chain = 0;
    uint64_t archived[N + 1];
    crdt_raw *t;

    for (int i = 1; i <= N; i++) {
        epoch_builder *bl;
        ck_assert_int_eq(tu_put_int(a, "c", "d", "x", i + 1), CRDT_OK);
        ck_assert_int_eq(epoch_builder_new(&bl, a), CRDT_OK);
        epoch_builder_set_retention(bl, 3);
        ck_assert_int_eq(epoch_builder_commit(&e, bl), CRDT_OK);
        epoch_builder_free(bl);
        ck_assert_uint_eq(e.number, (uint64_t)i);
        epoch_info_clear(&e);
        ck_assert_int_eq(crdt_raw_begin(&t, a, 0), CRDT_OK);
        ck_assert_int_eq(crdt_raw_count(&archived[i], t, CRDT_DB_ARCHIVE),
                         CRDT_OK);
        crdt_raw_abort(t);
    }
    /* epoch 1 seals the genesis log's two changes, each later one the
     * one change written since; at epoch 3 (not past the retention)
     * nothing goes, from epoch 4 on the logs of the last 3 remain */
    ck_assert_uint_eq(archived[1], 2);
    ck_assert_uint_eq(archived[2], 3);
    ck_assert_uint_eq(archived[3], 4);
    for (int i = 4; i <= N; i++)
        ck_assert_uint_eq(archived[i], 3);

    ck_assert_int_eq(epoch_all(&all, &n_all, a), CRDT_OK);
    ck_assert_int_eq(epoch_chain(&chain, &n_chain, a), CRDT_OK);
    ck_assert_uint_eq(n_chain, N + 1);
    ck_assert_uint_ge(n_all, N);
    for (size_t i = 0; i < n_chain; i++)
        ck_assert_uint_eq(chain[i].number, i);
    for (size_t i = 1; i < n_all; i++)
        ck_assert_uint_lt(all[i - 1].number, all[i].number);
    epoch_chain_free(all, n_all);
    epoch_chain_free(chain, n_chain);
}
END_TEST

/* ---- re-derivation ---- */

/* An epoch folding the heads of more writers than the heads lists start
 * with (16) is re-derived by a replica holding exactly those changes:
 * the same state hash, EPOCH_DERIVED_MATCH, and nothing written. */
START_TEST(test_epoch_of_many_writers_is_rederived)
{
    enum { WRITERS = 18 };
    unsigned char space[16], before[32], after[32];
    const unsigned char *rec;
    char dw[256], dbb[256], doc[16];
    crdt_replica *b;
    epoch_info e;
    epoch_check chk;
    size_t len;

    crdt_replica_space_id(a, space);
    for (int i = 0; i < WRITERS; i++) {
        crdt_replica *w = tu_create(dw, sizeof dw, space);
        snprintf(doc, sizeof doc, "w%02d", i);
        ck_assert_int_eq(tu_put_int(w, "c", doc, "x", i), CRDT_OK);
        ck_assert_int_eq(tu_sync_one_way(a, w), CRDT_OK);
        crdt_replica_close(w);
        test_rmtree(dw);
    }
    b = tu_create(dbb, sizeof dbb, space);
    ck_assert_int_eq(epoch_attach(b), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    tu_migrate(a, "collection c 1 -> 2\nrename x -> y\n", &e);
    rec = e.raw;
    len = e.raw_len;
    ck_assert_int_eq(epoch_store_records(b, &rec, &len, 1), CRDT_OK);
    tu_digest_all(b, before);
    ck_assert_int_eq(epoch_check_derivation(&chk, b, e.id), CRDT_OK);
    ck_assert_int_eq(chk.verdict, EPOCH_DERIVED_MATCH);
    ck_assert_uint_eq(chk.number, 1);
    ck_assert_uint_eq(chk.lacking, 0);
    ck_assert_int_eq(chk.forked, 0);
    ck_assert_ptr_nonnull(strstr(chk.reason, "re-derived"));
    tu_digest_all(b, after);
    ck_assert_mem_eq(before, after, 32);
    epoch_info_clear(&e);
    crdt_replica_close(b);
    test_rmtree(dbb);
}
END_TEST

Suite *
test_suite(void)
{
    Suite *s = suite_create("builder_edges");
    TCase *tc = tcase_create("edges");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_builder_refuses_bad_arguments);
    tcase_add_test(tc, test_builder_is_spent_after_its_commit);
    tcase_add_test(tc, test_record_readers_refuse_bad_arguments);
    tcase_add_test(tc, test_lens_from_an_older_version_is_refused);
    tcase_add_test(tc, test_custom_migration_must_raise_the_version);
    tcase_add_test(tc, test_staging_reset_blocks_migration_and_derivation);
    tcase_add_test(tc, test_interrupted_migration_blocks_the_next);
    tcase_add_test(tc, test_record_too_long_or_with_a_huge_schema_is_refused);
    tcase_add_test(tc, test_genesis_known_without_its_meta_key);
    tcase_add_test(tc, test_heads_of_a_damaged_record_are_corrupt);
    tcase_add_test(tc, test_long_chain_is_listed_whole_and_pruned_by_retention);
    tcase_add_test(tc, test_epoch_of_many_writers_is_rederived);
    suite_add_tcase(s, tc);
    return s;
}
