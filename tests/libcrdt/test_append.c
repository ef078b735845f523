/*
 * test_append.c: a merge writes keys after the state's last one with
 * MDB_APPEND and the others with a searched put (state.c, put_new).
 * Whichever way each record goes, the stored records and the state hash
 * must be the same: replicas that merge the same changes in different
 * batchings, and with other keys before and after the merged ones,
 * must hold byte-identical records.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crdt/crdt.h"
#include "crdt/text.h"
#include "internal.h"
#include "support/replica_util.h"
#include "support/support.h"

TU_PAIR_FIXTURE(tu_pair_create)

/* BLAKE2b of every state record (klen key vlen value, in key order) of
 * the active state. Also checks the stored hash is the records' hash. */
static void
records_digest(crdt_replica *r, unsigned char out[32])
{
    unsigned char stored[32], re[32];
    MDB_txn *txn;
    MDB_val h;
    int slot;

    ck_assert_int_eq(crdt__txn_begin(r, 0, &txn), CRDT_OK);
    ck_assert_int_eq(crdt__state_slot(txn, r, &slot), CRDT_OK);
    ck_assert_int_eq(crdt__meta_get(txn, r, slot ? "hash1" : "hash0", &h),
                     CRDT_OK);
    ck_assert_uint_eq(h.mv_size, 32);
    memcpy(stored, h.mv_data, 32);
    ck_assert_int_eq(crdt__state_rehash(txn, r->dbi[CRDT_DB_STATE0 + slot],
                                        2, re),
                     CRDT_OK);
    ck_assert(memcmp(stored, re, 32) == 0);
    crdt__txn_end(r, txn, 0);
    tu_db_digest(r, CRDT_DB_STATE0 + slot, out);
}

/* Changes of @p r: a text edited in many changes (inserts that grow
 * runs, deletes that join ranges), registers and a list around it. */
static void
write_history(crdt_replica *r)
{
    uint64_t rng = 11, len = 0;

    for (int i = 0; i < 120; i++) {
        crdt_txn *t;
        char doc[8], s[16];

        ck_assert_int_eq(crdt_txn_begin(&t, r), CRDT_OK);
        if (len > 4 && test_rand(&rng) % 4 == 0) {
            uint64_t n = 1 + test_rand(&rng) % 3;
            ck_assert_int_eq(crdt_txn_text_delete(t, "m", "doc", "body",
                                                  test_rand(&rng) % (len - n),
                                                  n),
                             CRDT_OK);
            len -= n;
        } else {
            uint64_t pos = len ? test_rand(&rng) % (len + 1) : 0;
            int n = 1 + (int)(test_rand(&rng) % 9);
            for (int j = 0; j < n; j++)
                s[j] = (char)('a' + test_rand(&rng) % 26);
            ck_assert_int_eq(crdt_txn_text_insert(t, "m", "doc", "body", pos,
                                                  s, (size_t)n),
                             CRDT_OK);
            len += (uint64_t)n;
        }
        snprintf(doc, sizeof doc, "d%d", (int)(test_rand(&rng) % 40));
        {
            crdt_value v = crdt_value_int(i);
            ck_assert_int_eq(crdt_txn_put(t, "m", doc, "f", &v), CRDT_OK);
        }
        ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    }
}

START_TEST(test_append_or_not_same_records)
{
    char dc[256], dd[256], de[256], ha[65], hb[65];
    unsigned char space[16], ga[32], gb[32], gc[32], gd[32], ge[32];
    crdt_replica *c, *d, *e;
    tu_batch all, dall;

    write_history(a);
    all = tu_export_all(a);
    crdt_replica_space_id(a, space);

    /* b: fresh, one merge (its records go past the last key: appends) */
    ck_assert_int_eq(crdt_merge(NULL, b, all.v, all.n), CRDT_OK);
    /* c: fresh, one change a merge */
    c = tu_create(dc, sizeof dc, space);
    for (size_t i = 0; i < all.n; i++)
        ck_assert_int_eq(crdt_merge(NULL, c, &all.v[i], 1), CRDT_OK);
    records_digest(a, ga);
    records_digest(b, gb);
    records_digest(c, gc);
    ck_assert(memcmp(gb, ga, 32) == 0);
    ck_assert(memcmp(gc, ga, 32) == 0);
    tu_hash(ha, a);
    tu_hash(hb, b);
    ck_assert_str_eq(hb, ha);

    /* d: keys before ("a") and after ("z") the merged ones first, so its
     * merge's puts land between them (no append succeeds past "z") */
    d = tu_create(dd, sizeof dd, space);
    tu_put_int(d, "a", "x", "f", 1);
    tu_put_int(d, "z", "x", "f", 2);
    tu_put_int(d, "m", "d9", "g", 3); /* inside the merged block */
    ck_assert_int_eq(crdt_merge(NULL, d, all.v, all.n), CRDT_OK);
    /* e: the merged changes first (appends), then d's own */
    e = tu_create(de, sizeof de, space);
    ck_assert_int_eq(crdt_merge(NULL, e, all.v, all.n), CRDT_OK);
    dall = tu_export_all(d);
    ck_assert_int_eq(crdt_merge(NULL, e, dall.v, dall.n), CRDT_OK);
    records_digest(d, gd);
    records_digest(e, ge);
    ck_assert(memcmp(gd, ge, 32) == 0);
    tu_hash(ha, d);
    tu_hash(hb, e);
    ck_assert_str_eq(hb, ha);

    tu_batch_free(&dall);
    crdt_replica_close(e);
    test_rmtree(de);
    crdt_replica_close(d);
    test_rmtree(dd);
    crdt_replica_close(c);
    test_rmtree(dc);
    tu_batch_free(&all);
}
END_TEST

Suite *
test_suite(void)
{
    Suite *s = suite_create("append");
    TCase *tc = tcase_create("append");

    /* one durable commit per change: a loaded disk takes seconds */
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_append_or_not_same_records);
    suite_add_tcase(s, tc);
    return s;
}
