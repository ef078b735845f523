/*
 * test_txn_write.c: crdt_txn_write(): concurrent callers' changes share
 * LMDB txns, yet each call is its own change, signed and chained as a
 * txn of its own would be, and a call that fails leaves nothing.
 * (Durability and shared syncs: test_groupcommit.c.)
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crdt/crdt.h"
#include "support/replica_util.h"
#include "support/support.h"

TU_PAIR_FIXTURE(tu_pair_create)

#define THREADS 8
#define PER_THREAD 40
#define FAILED_BY_FN (-1000) /* what a failing body returns */

typedef struct {
    int th, i;
    int fail;      /* the body records its ops, then fails */
    size_t big;    /* > 0: a bytes value of this size as well */
} body_args;

/* Two ops: doc tTT-IIII's register v, and the shared counter. */
static int
body(crdt_txn *t, void *arg)
{
    const body_args *ba = arg;
    char doc[32];
    crdt_value v = crdt_value_int((int64_t)ba->th * 10000 + ba->i);
    int rc;

    snprintf(doc, sizeof doc, "t%02d-%04d", ba->th, ba->i);
    if ((rc = crdt_txn_put(t, "c", doc, "v", &v)) < 0 ||
        (rc = crdt_txn_incr(t, "c", "total", "n", 1)) < 0)
        return rc;
    if (ba->big > 0) {
        unsigned char *p = malloc(ba->big);
        crdt_value bv;

        ck_assert_ptr_nonnull(p);
        memset(p, ba->i & 0xff, ba->big);
        bv = crdt_value_bytes(p, ba->big);
        rc = crdt_txn_put(t, "c", doc, "big", &bv);
        free(p);
        if (rc < 0)
            return rc;
    }
    return ba->fail ? FAILED_BY_FN : CRDT_OK;
}

typedef struct {
    crdt_replica *r;
    int th, fail_every;
    size_t big;
    crdt_commit_info info[PER_THREAD];
    int rc[PER_THREAD];
} thread_args;

static void *
writer(void *arg)
{
    thread_args *ta = arg;

    for (int i = 0; i < PER_THREAD; i++) {
        body_args ba = { ta->th, i,
                         ta->fail_every && i % ta->fail_every == 0, ta->big };
        ta->rc[i] = crdt_txn_write(ta->r, body, &ba, &ta->info[i]);
    }
    return NULL;
}

static int
cmp_u64(const void *x, const void *y)
{
    uint64_t p = *(const uint64_t *)x, q = *(const uint64_t *)y;
    return p < q ? -1 : p > q;
}

/* Run THREADS writers on @p rep; returns the calls that succeeded and
 * checks their seqs: two ops each, together exactly 1 .. 2n. */
static int
run_writers(crdt_replica *rep, int fail_every, size_t big)
{
    static thread_args ta[THREADS];
    pthread_t th[THREADS];
    uint64_t firsts[THREADS * PER_THREAD];
    int n = 0;

    for (int i = 0; i < THREADS; i++) {
        memset(&ta[i], 0, sizeof ta[i]);
        ta[i].r = rep;
        ta[i].th = i;
        ta[i].fail_every = fail_every;
        ta[i].big = big;
        ck_assert_int_eq(pthread_create(&th[i], NULL, writer, &ta[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
    for (int i = 0; i < THREADS; i++)
        for (int j = 0; j < PER_THREAD; j++) {
            int failing = fail_every && j % fail_every == 0;
            ck_assert_int_eq(ta[i].rc[j], failing ? FAILED_BY_FN : CRDT_OK);
            if (failing) {
                ck_assert_uint_eq(ta[i].info[j].first_seq, 0);
                continue;
            }
            ck_assert_uint_eq(ta[i].info[j].last_seq,
                              ta[i].info[j].first_seq + (big ? 2 : 1));
            firsts[n++] = ta[i].info[j].first_seq;
        }
    qsort(firsts, (size_t)n, sizeof *firsts, cmp_u64);
    for (int k = 0; k < n; k++)
        ck_assert_uint_eq(firsts[k], (uint64_t)k * (big ? 3 : 2) + 1);
    return n;
}

/* Every change is in the state, the log's records check out, and a
 * replica that merges the export (signatures checked) reaches the same
 * state. */
static void
check_all(crdt_replica *rep, crdt_replica *other, int fail_every, int n)
{
    char buf[64], doc[32], h1[65], h2[65];
    crdt_merge_report mr;
    tu_batch x;

    for (int i = 0; i < THREADS; i++)
        for (int j = 0; j < PER_THREAD; j++) {
            snprintf(doc, sizeof doc, "t%02d-%04d", i, j);
            tu_field_str(buf, sizeof buf, rep, "c", doc, "v");
            if (fail_every && j % fail_every == 0)
                ck_assert_msg(buf[0] == '\0', "%s: a failed call left %s",
                              doc, buf);
            else
                ck_assert_int_eq(atoll(buf), (long long)i * 10000 + j);
        }
    tu_field_str(buf, sizeof buf, rep, "c", "total", "n");
    ck_assert_int_eq(atoi(buf + 1), n); /* "c<count>" */
    ck_assert_uint_eq(tu_stats(rep).changes_in_log, (uint64_t)n);
    ck_assert_int_eq(crdt_replica_check_records(rep, NULL, 0), CRDT_OK);
    x = tu_export_all(rep);
    ck_assert_int_eq(crdt_merge(&mr, other, x.v, x.n), CRDT_OK);
    ck_assert_uint_eq(mr.changes_applied, (uint64_t)n);
    ck_assert_uint_eq(mr.pending + mr.quarantined_ops + mr.conflicts, 0);
    tu_hash(h1, rep);
    tu_hash(h2, other);
    ck_assert_str_eq(h1, h2);
    tu_batch_free(&x);
}

START_TEST(test_each_call_is_one_change)
{
    uint64_t txn0 = crdt_replica_last_txn(a), txns;
    int n = run_writers(a, 0, 0);

    ck_assert_int_eq(n, THREADS * PER_THREAD);
    /* the changes shared LMDB txns: threads wait while one syncs */
    txns = crdt_replica_last_txn(a) - txn0;
    ck_assert_uint_gt(txns, 0);
    ck_assert_uint_lt(txns, (uint64_t)n);
    check_all(a, b, 0, n);
}
END_TEST

START_TEST(test_failed_call_leaves_nothing)
{
    int n = run_writers(a, 3, 0);

    ck_assert_int_eq(n, THREADS * (PER_THREAD - (PER_THREAD + 2) / 3));
    check_all(a, b, 3, n);
}
END_TEST

/* The map fills while groups write: it grows and nothing is lost. */
START_TEST(test_map_grows_under_groups)
{
    crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
    crdt_env_stats es;
    char path[300];
    int n;

    crdt_replica_close(a);
    snprintf(path, sizeof path, "%s/r", da);
    o.map_size = 1 << 20;
    ck_assert_int_eq(crdt_replica_open(&a, path, &o), CRDT_OK);
    n = run_writers(a, 4, 16000);
    ck_assert_int_eq(crdt_replica_env_stats(a, &es), CRDT_OK);
    ck_assert_uint_gt(es.map_size, (uint64_t)(4 << 20));
    check_all(a, b, 4, n);
}
END_TEST

static int
nothing(crdt_txn *t, void *arg)
{
    (void)t;
    (void)arg;
    return CRDT_OK;
}

static int
bad_op(crdt_txn *t, void *arg)
{
    crdt_value v = crdt_value_int(1);

    (void)arg;
    /* a name that is not valid: refused, the txn goes on */
    ck_assert_int_eq(crdt_txn_put(t, "", "d", "f", &v), CRDT_EINVAL);
    return crdt_txn_put(t, "c", "d", "f", &v);
}

static int
ends_itself(crdt_txn *t, void *arg)
{
    crdt_value v = crdt_value_int(2);

    (void)arg;
    ck_assert_int_eq(crdt_txn_put(t, "c", "d", "g", &v), CRDT_OK);
    /* the group ends it, not the body */
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_EINVAL);
    crdt_txn_abort(t);
    return crdt_txn_put(t, "c", "d", "h", &v);
}

/* Another write of the replica begun inside a body: CRDT_EBUSY, not a
 * wait for the writer lock this thread holds. */
static int
nested(crdt_txn *t, void *arg)
{
    crdt_replica *rep = arg;
    crdt_value v = crdt_value_int(3);
    crdt_txn *other;

    ck_assert_int_eq(crdt_txn_write(rep, nothing, NULL, NULL), CRDT_EBUSY);
    ck_assert_int_eq(crdt_txn_begin(&other, rep), CRDT_EBUSY);
    ck_assert_int_eq(crdt_merge(NULL, rep, NULL, 0), CRDT_EBUSY);
    return crdt_txn_put(t, "c", "d", "nested", &v);
}

START_TEST(test_bodies)
{
    crdt_commit_info info;
    char buf[32];

    ck_assert_int_eq(crdt_txn_write(a, nothing, NULL, &info), CRDT_OK);
    ck_assert_uint_eq(info.first_seq, 0);
    ck_assert_int_eq(crdt_txn_write(a, bad_op, NULL, &info), CRDT_OK);
    ck_assert_uint_eq(info.first_seq, 1);
    ck_assert_uint_eq(info.last_seq, 1);
    ck_assert_int_eq(crdt_txn_write(a, ends_itself, NULL, &info), CRDT_OK);
    ck_assert_uint_eq(info.first_seq, 2);
    ck_assert_uint_eq(info.last_seq, 3);
    tu_field_str(buf, sizeof buf, a, "c", "d", "h");
    ck_assert_str_eq(buf, "2");
    ck_assert_int_eq(crdt_txn_write(a, nested, a, &info), CRDT_OK);
    ck_assert_uint_eq(info.first_seq, 4);
    tu_field_str(buf, sizeof buf, a, "c", "d", "nested");
    ck_assert_str_eq(buf, "3");
    ck_assert_int_eq(crdt_txn_write(NULL, nothing, NULL, NULL), CRDT_EINVAL);
    ck_assert_int_eq(crdt_txn_write(a, NULL, NULL, NULL), CRDT_EINVAL);
    ck_assert_int_eq(crdt_replica_check_records(a, NULL, 0), CRDT_OK);
}
END_TEST

/* A thread that holds a read of the replica writes alone (it must not
 * wait for another thread's group), and sees its own change at once. */
START_TEST(test_caller_holding_a_read)
{
    crdt_read *rd;
    char buf[32];
    body_args args = { 0, 0, 0, 0 };

    ck_assert_int_eq(crdt_read_begin(&rd, a), CRDT_OK);
    ck_assert_int_eq(crdt_txn_write(a, body, &args, NULL), CRDT_OK);
    crdt_read_end(rd);
    tu_field_str(buf, sizeof buf, a, "c", "t00-0000", "v");
    ck_assert_str_eq(buf, "0");
}
END_TEST

Suite *
test_suite(void)
{
    Suite *s = suite_create("txn_write");
    TCase *tc = tcase_create("txn_write");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_each_call_is_one_change);
    tcase_add_test(tc, test_failed_call_leaves_nothing);
    tcase_add_test(tc, test_map_grows_under_groups);
    tcase_add_test(tc, test_bodies);
    tcase_add_test(tc, test_caller_holding_a_read);
    suite_add_tcase(s, tc);
    return s;
}
