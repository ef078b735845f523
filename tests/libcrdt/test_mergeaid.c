/*
 * test_mergeaid.c: a large merge's aid (mergeaid.h) packs the log runs
 * and checks the signatures beside the merge. Whatever it does, the
 * replica must end byte for byte as without it (log records, state,
 * heads), and a forged actor must fail the merge with CRDT_EAUTH and
 * leave nothing behind, wherever that actor sorts among the others.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crdt/crdt.h"
#include "crdt/raw.h"
#include "crdt/text.h"
#include "internal.h"
#include "mergeaid.h"
#include "support/replica_util.h"
#include "support/support.h"

#define N_SRC 3

static char dsrc[N_SRC][256], dx[256], dy[256];
static crdt_replica *src[N_SRC], *x, *y;

static void
setup(void)
{
    unsigned char space[16];

    src[0] = tu_create(dsrc[0], sizeof dsrc[0], NULL);
    crdt_replica_space_id(src[0], space);
    for (int i = 1; i < N_SRC; i++)
        src[i] = tu_create(dsrc[i], sizeof dsrc[i], space);
    x = tu_create(dx, sizeof dx, space);
    y = tu_create(dy, sizeof dy, space);
}

static void
teardown(void)
{
    for (int i = 0; i < N_SRC; i++) {
        crdt_replica_close(src[i]);
        test_rmtree(dsrc[i]);
    }
    crdt_replica_close(x);
    crdt_replica_close(y);
    test_rmtree(dx);
    test_rmtree(dy);
    tu_merge_aid_always(0);
}

static void
assert_same_replica(crdt_replica *p, crdt_replica *q)
{
    static const int dbs[] = { CRDT_DB_LOG, CRDT_DB_HEADS, CRDT_DB_STATE0,
                                CRDT_DB_STATE1, CRDT_DB_PENDING,
                                CRDT_DB_QUARANTINE };
    char hp[65], hq[65];

    for (size_t i = 0; i < sizeof dbs / sizeof dbs[0]; i++) {
        unsigned char a[32], b[32];
        tu_db_digest(p, dbs[i], a);
        tu_db_digest(q, dbs[i], b);
        ck_assert_msg(memcmp(a, b, 32) == 0, "database %d differs", dbs[i]);
    }
    tu_hash(hp, p);
    tu_hash(hq, q);
    ck_assert_str_eq(hp, hq);
}

/* Each source writes @p changes changes: registers over a few documents
 * and, on source 0, a text typed and edited. */
static void
write_sources(int changes)
{
    uint64_t rng = 5;

    for (int s = 0; s < N_SRC; s++)
        for (int i = 0; i < changes; i++) {
            crdt_txn *t;
            char doc[16];
            int ops = 1 + (int)(test_rand(&rng) % 40);

            ck_assert_int_eq(crdt_txn_begin(&t, src[s]), CRDT_OK);
            for (int o = 0; o < ops; o++) {
                snprintf(doc, sizeof doc, "d%02d",
                         (int)(test_rand(&rng) % 30));
                crdt_value v = crdt_value_int((int64_t)test_rand(&rng));
                ck_assert_int_eq(crdt_txn_put(t, "c", doc, "v", &v),
                                 CRDT_OK);
            }
            if (s == 0)
                ck_assert_int_eq(crdt_txn_text_insert(t, "m", "doc", "body",
                                                      (uint64_t)i,
                                                      "typed", 5),
                                 CRDT_OK);
            ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
        }
}

/* Every change of every source, in one batch (copies). */
static tu_batch
all_changes(void)
{
    tu_batch all = { NULL, 0 }, part[N_SRC];
    size_t k = 0;

    for (int s = 0; s < N_SRC; s++) {
        part[s] = tu_export_all(src[s]);
        all.n += part[s].n;
    }
    all.v = calloc(all.n, sizeof *all.v);
    ck_assert_ptr_nonnull(all.v);
    /* interleaved, as a sync round with several peers brings them */
    for (size_t i = 0; k < all.n; i++)
        for (int s = 0; s < N_SRC; s++)
            if (i < part[s].n) {
                all.v[k++] = part[s].v[i];
                part[s].v[i].data = NULL;
            }
    for (int s = 0; s < N_SRC; s++)
        tu_batch_free(&part[s]);
    return all;
}

static int
merge_with(crdt_replica *r, size_t min_bytes, const crdt_bytes *v, size_t n)
{
    int rc;

    tu_merge_aid_always(min_bytes == 0);
    crdt__mergeaid_min_bytes = min_bytes;
    rc = crdt_merge(NULL, r, v, n);
    tu_merge_aid_always(0);
    return rc;
}

START_TEST(test_aid_writes_what_the_merge_would)
{
    tu_batch all;
    unsigned long before;

    write_sources(40);
    all = all_changes();
    ck_assert_uint_ge(all.n, 3 * 40);
    ck_assert_int_eq(merge_with(x, SIZE_MAX, all.v, all.n), CRDT_OK);
    before = crdt__mergeaid_records;
    ck_assert_int_eq(merge_with(y, 0, all.v, all.n), CRDT_OK);
    /* one run record per source, written by the aid */
    ck_assert_uint_eq(crdt__mergeaid_records - before, N_SRC);
    assert_same_replica(x, y);
    tu_batch_free(&all);
}
END_TEST

/* Enough state entries to go round the aid's hash queue several times
 * (hashq.c: 8 chunks of 64 KiB), most of them replacing an entry the
 * same merge wrote: the state and its hash as without the aid. */
START_TEST(test_aid_hashes_many_entries)
{
    tu_batch all;
    uint64_t rng = 9;

    for (int s = 0; s < N_SRC; s++)
        for (int i = 0; i < 30; i++) {
            crdt_txn *t;
            ck_assert_int_eq(crdt_txn_begin(&t, src[s]), CRDT_OK);
            for (int o = 0; o < 400; o++) {
                char doc[16];
                snprintf(doc, sizeof doc, "d%04d",
                         (int)(test_rand(&rng) % 3000));
                crdt_value v = crdt_value_int((int64_t)test_rand(&rng));
                ck_assert_int_eq(crdt_txn_put(t, "c", doc, "v", &v),
                                 CRDT_OK);
            }
            ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
        }
    all = all_changes();
    ck_assert_int_eq(merge_with(x, SIZE_MAX, all.v, all.n), CRDT_OK);
    ck_assert_int_eq(merge_with(y, 0, all.v, all.n), CRDT_OK);
    assert_same_replica(x, y);
    tu_batch_free(&all);
}
END_TEST

/* Changes @p a and @p b in (actor, seq) order, for the test's sort */
static int
cmp_change(const crdt_bytes *a, const crdt_bytes *b)
{
    crdt_change ca, cb;
    int c;

    ck_assert_int_eq(crdt_change_decode(&ca, a->data, a->len), CRDT_OK);
    ck_assert_int_eq(crdt_change_decode(&cb, b->data, b->len), CRDT_OK);
    c = memcmp(ca.actor.b, cb.actor.b, CRDT_ACTOR_BYTES);
    return c ? c : (ca.seq > cb.seq) - (ca.seq < cb.seq);
}

/* A batch that comes as runs already in (actor, seq) order (merge.c
 * merges them instead of sorting): the sources' logs one after the
 * other, then twice the first source's first changes (duplicates, whose
 * keys equal earlier ones): five runs, an odd number. The replica ends
 * as after the same changes handed over already sorted (stably: a
 * duplicate after its original), one run with nothing to merge. */
START_TEST(test_batch_in_runs_merges_as_sorted)
{
    tu_batch part[N_SRC];
    crdt_bytes *runs, *sorted;
    crdt_merge_report rx, ry;
    size_t n = 0, k = 0;

    write_sources(25);
    for (int s = 0; s < N_SRC; s++) {
        part[s] = tu_export_all(src[s]);
        n += part[s].n;
    }
    n += 2 * 10;
    runs = calloc(n, sizeof *runs);
    sorted = calloc(n, sizeof *sorted);
    ck_assert_ptr_nonnull(runs);
    ck_assert_ptr_nonnull(sorted);
    for (int s = N_SRC - 1; s >= 0; s--)
        for (size_t i = 0; i < part[s].n; i++)
            runs[k++] = part[s].v[i];
    for (int r = 0; r < 2; r++)
        for (size_t i = 0; i < 10; i++)
            runs[k++] = part[0].v[i];
    ck_assert_uint_eq(k, n);
    for (size_t i = 0; i < n; i++) { /* stable insertion */
        size_t j = i;
        for (; j > 0 && cmp_change(&sorted[j - 1], &runs[i]) > 0; j--)
            sorted[j] = sorted[j - 1];
        sorted[j] = runs[i];
    }
    crdt__mergeaid_min_bytes = SIZE_MAX; /* the merge alone, both */
    ck_assert_int_eq(crdt_merge(&rx, x, sorted, n), CRDT_OK);
    ck_assert_int_eq(crdt_merge(&ry, y, runs, n), CRDT_OK);
    ck_assert_uint_eq(ry.duplicates, 20);
    ck_assert_uint_eq(rx.duplicates, ry.duplicates);
    ck_assert_uint_eq(rx.ops_applied, ry.ops_applied);
    assert_same_replica(x, y);
    free(runs);
    free(sorted);
    for (int s = 0; s < N_SRC; s++)
        tu_batch_free(&part[s]);
}
END_TEST

/* Duplicates and gaps: runs the aid packed but the merge cuts otherwise
 * (a change already held, one whose predecessor is missing) are written
 * by the merge, and the log read for a duplicate sees every run before. */
START_TEST(test_aid_with_duplicates_and_gaps)
{
    tu_batch all;
    crdt_bytes *late;
    size_t n_late = 0;

    write_sources(30);
    all = all_changes();
    /* first: every third change is held back (the changes after it wait
     * in the pending area) */
    late = calloc(all.n, sizeof *late);
    ck_assert_ptr_nonnull(late);
    {
        crdt_bytes *first = calloc(all.n, sizeof *first);
        size_t n_first = 0;
        ck_assert_ptr_nonnull(first);
        for (size_t i = 0; i < all.n; i++) {
            if (i % 3 == 1)
                late[n_late++] = all.v[i];
            else
                first[n_first++] = all.v[i];
        }
        ck_assert_int_eq(merge_with(x, SIZE_MAX, first, n_first), CRDT_OK);
        ck_assert_int_eq(merge_with(y, 0, first, n_first), CRDT_OK);
        assert_same_replica(x, y);
        free(first);
    }
    /* then everything again: duplicates around the late ones */
    ck_assert_int_eq(merge_with(x, SIZE_MAX, all.v, all.n), CRDT_OK);
    ck_assert_int_eq(merge_with(y, 0, all.v, all.n), CRDT_OK);
    assert_same_replica(x, y);
    free(late);
    tu_batch_free(&all);
}
END_TEST

/* The signed last change of source @p forged's run altered: the merge
 * fails with CRDT_EAUTH and holds nothing, with and without the aid. */
static void
check_forged(int forged)
{
    unsigned char before[32], after[32];
    char h0[65], h1[65];
    tu_batch all;
    crdt_bytes *last = NULL;
    crdt_actor mine = crdt_replica_actor(src[forged]);
    uint64_t seq = 0;

    write_sources(20);
    all = all_changes();
    for (size_t i = 0; i < all.n; i++) {
        crdt_actor a;
        uint64_t s;
        ck_assert_int_eq(crdt_change_peek(&a, &s, all.v[i].data,
                                          all.v[i].len),
                         CRDT_OK);
        if (memcmp(a.b, mine.b, CRDT_ACTOR_BYTES) == 0 &&
            (last == NULL || s > seq)) {
            last = &all.v[i];
            seq = s;
        }
    }
    ck_assert_ptr_nonnull(last);
    tu_change_alter_op(last);
    tu_hash(h0, y);
    tu_db_digest(y, CRDT_DB_LOG, before);
    ck_assert_int_eq(merge_with(x, SIZE_MAX, all.v, all.n), CRDT_EAUTH);
    ck_assert_int_eq(merge_with(y, 0, all.v, all.n), CRDT_EAUTH);
    tu_hash(h1, y);
    tu_db_digest(y, CRDT_DB_LOG, after);
    ck_assert_str_eq(h0, h1);
    ck_assert(memcmp(before, after, 32) == 0);
    assert_same_replica(x, y);
    tu_batch_free(&all);
}

START_TEST(test_aid_refuses_a_forged_actor)
{
    check_forged(_i);
}
END_TEST

static uint64_t
far_future(void *ctx)
{
    (void)ctx;
    return (uint64_t)time(NULL) * 1000 + 3600 * 1000; /* an hour ahead */
}

/* The aid screens the second half of the batch's headers: an error
 * there fails the merge, and an error in both halves answers the
 * first one's, as one thread screening in order would. */
START_TEST(test_aid_screens_in_order)
{
    char dz[256];
    crdt_replica *z;
    crdt_bytes *v;
    tu_batch all, late, other;
    size_t n;

    write_sources(20);
    all = all_changes();
    /* a change stamped an hour ahead, and one of another space */
    crdt_set_clock(far_future, NULL);
    ck_assert_int_eq(tu_put_int(src[1], "c", "late", "v", 1), CRDT_OK);
    crdt_set_clock(NULL, NULL);
    late = tu_export_all(src[1]);
    z = tu_create(dz, sizeof dz, NULL);
    ck_assert_int_eq(tu_put_int(z, "c", "z", "v", 1), CRDT_OK);
    other = tu_export_all(z);
    v = calloc(all.n + 2, sizeof *v);
    ck_assert_ptr_nonnull(v);
    /* other space at the end (the aid's half) */
    memcpy(v, all.v, all.n * sizeof *v);
    v[all.n] = other.v[0];
    n = all.n + 1;
    ck_assert_int_eq(merge_with(y, 0, v, n), CRDT_EAUTH);
    ck_assert_int_eq(merge_with(x, SIZE_MAX, v, n), CRDT_EAUTH);
    /* and the future change first (the merge's half): that one answers */
    memmove(v + 1, v, n * sizeof *v);
    v[0] = late.v[late.n - 1];
    n++;
    ck_assert_int_eq(merge_with(y, 0, v, n), CRDT_ECLOCK);
    ck_assert_int_eq(merge_with(x, SIZE_MAX, v, n), CRDT_ECLOCK);
    assert_same_replica(x, y);
    /* the batch alone merges */
    ck_assert_int_eq(merge_with(y, 0, all.v, all.n), CRDT_OK);
    ck_assert_int_eq(merge_with(x, SIZE_MAX, all.v, all.n), CRDT_OK);
    assert_same_replica(x, y);
    free(v);
    tu_batch_free(&all);
    tu_batch_free(&late);
    tu_batch_free(&other);
    crdt_replica_close(z);
    test_rmtree(dz);
}
END_TEST

Suite *
test_suite(void)
{
    Suite *s = suite_create("mergeaid");
    TCase *tc = tcase_create("mergeaid");

    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_aid_writes_what_the_merge_would);
    tcase_add_test(tc, test_aid_with_duplicates_and_gaps);
    tcase_add_test(tc, test_aid_hashes_many_entries);
    tcase_add_test(tc, test_batch_in_runs_merges_as_sorted);
    tcase_add_test(tc, test_aid_screens_in_order);
    tcase_add_loop_test(tc, test_aid_refuses_a_forged_actor, 0, N_SRC);
    suite_add_tcase(s, tc);
    return s;
}
