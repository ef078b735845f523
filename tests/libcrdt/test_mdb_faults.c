/*
 * test_mdb_faults.c: an LMDB call failing at every point of a local
 * write txn (a txn of its own, or crdt_txn_write()), a merge, reads, an
 * export and a reopen. The failing call answers EIO (support/mdbfault.h);
 * each public call then answers CRDT_EIO, ends the txn the error
 * belongs to without another call on it, and leaves every database of
 * the replica byte for byte as it was; the same call then succeeds. The
 * loops stop at the first run that reaches no armed call, so each one
 * fails every LMDB call its operation makes, in turn.
 */
#include <check.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crdt/crdt.h"
#include "crdt/raw.h"
#include "crdt/feed.h"
#include "crdt/members.h"
#include "crdt/text.h"
#include "support/mdbfault.h"
#include "support/replica_util.h"
#include "support/support.h"

#define CALLS_MAX 20000 /* far above what any operation here makes */

TU_PAIR_FIXTURE(tu_pair_create)

/* One change of every kind, text and list included, on a few
 * documents. */
static int
all_kinds(crdt_txn *t, void *arg)
{
    int i = *(const int *)arg;
    crdt_value v = crdt_value_int(i), s = crdt_value_str("x", 1);
    char doc[16];
    int rc;

    snprintf(doc, sizeof doc, "d%d", i % 4);
    if ((rc = crdt_txn_put(t, "c", doc, "v", &v)) < 0 ||
        (rc = crdt_txn_incr(t, "c", doc, "n", i)) < 0 ||
        (rc = crdt_txn_sadd(t, "c", doc, "s", &s)) < 0 ||
        (rc = crdt_txn_text_insert(t, "c", doc, "t", 0, "ab", 2)) < 0 ||
        (rc = crdt_txn_list_insert(t, "c", doc, "l", 0, &v)) < 0 ||
        (i % 2 == 1 &&
         (rc = crdt_txn_text_delete(t, "c", doc, "t", 1, 1)) < 0) ||
        (i % 2 == 1 && (rc = crdt_txn_list_set(t, "c", doc, "l", 0, &s)) < 0) ||
        (i % 3 == 0 && (rc = crdt_txn_srem(t, "c", doc, "s", &s)) < 0) ||
        (i % 5 == 0 && (rc = crdt_txn_del_field(t, "c", doc, "v")) < 0) ||
        (i % 7 == 6 && (rc = crdt_txn_del_doc(t, "c", doc)) < 0))
        return rc;
    return CRDT_OK;
}

static int
write_all_kinds(crdt_replica *r, int i, int shared)
{
    crdt_txn *t;
    int rc;

    if (shared)
        return crdt_txn_write(r, all_kinds, &i, NULL);
    if ((rc = crdt_txn_begin(&t, r)) < 0)
        return rc;
    if ((rc = all_kinds(t, &i)) < 0) {
        crdt_txn_abort(t);
        return rc;
    }
    return crdt_txn_commit(t, NULL);
}

/* _i = 1: through crdt_txn_write() (a group of one) */
START_TEST(test_local_txn_fails_at_every_lmdb_call)
{
    unsigned char before[32], after[32];
    long n;
    int done = 0;

    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(write_all_kinds(a, i, _i), CRDT_OK);
    tu_digest_all(a, before);
    for (n = 1; n < CALLS_MAX && !done; n++) {
        mdbfault_arm(n);
        /* with a doc delete, a text delete and a list set */
        done = mdbfault_judge(write_all_kinds(a, 13, _i), n, "commit");
        if (done == 2) {
            tu_digest_all(a, before);
            done = 0;
        } else if (!done) {
            tu_digest_all(a, after);
            MDBFAULT_EXPECT(memcmp(after, before, 32) == 0, "commit: LMDB "
                            "call %ld failed, the replica changed", n);
        }
    }
    ck_assert_int_eq(done, 1);
    mdbfault_reach(__func__, n);
    ck_assert_int_gt(n, 10); /* calls were failed on the way */
    tu_digest_all(a, after);
    ck_assert_mem_ne(after, before, 32);
}
END_TEST

START_TEST(test_merge_fails_at_every_lmdb_call)
{
    unsigned char before[32], after[32];
    char ha[65], hb[65];
    tu_batch x;
    long n;
    int done = 0;

    for (int i = 0; i < 20; i++)
        ck_assert_int_eq(write_all_kinds(a, i, 0), CRDT_OK);
    ck_assert_int_eq(tu_put_int(b, "c", "own", "v", 1), CRDT_OK);
    x = tu_export_all(a);
    tu_digest_all(b, before);
    for (n = 1; n < CALLS_MAX && !done; n++) {
        mdbfault_arm(n);
        done = mdbfault_judge(crdt_merge(NULL, b, x.v, x.n), n, "merge");
        if (done == 2) {
            tu_digest_all(b, before);
            done = 0;
        } else if (!done) {
            tu_digest_all(b, after);
            MDBFAULT_EXPECT(memcmp(after, before, 32) == 0, "merge: LMDB "
                            "call %ld failed, the replica changed", n);
        }
    }
    ck_assert_int_eq(done, 1);
    mdbfault_reach(__func__, n);
    ck_assert_int_gt(n, 10);
    ck_assert_int_eq(tu_sync_one_way(a, b), CRDT_OK);
    tu_hash(ha, a);
    tu_hash(hb, b);
    ck_assert_str_eq(ha, hb);
    tu_batch_free(&x);
}
END_TEST

static int
count_field(const crdt_field *f, void *ctx)
{
    (void)f;
    ++*(int *)ctx;
    return 0;
}

static int
count_name(const char *name, size_t len, void *ctx)
{
    (void)name;
    (void)len;
    ++*(int *)ctx;
    return 0;
}

/* The text and the list of a document. */
static int
read_seqs(crdt_read *rd, int *got)
{
    crdt_value *vals = NULL;
    char *text = NULL;
    size_t len, n;
    int rc;

    if ((rc = crdt_read_text(&text, &len, rd, "c", "d2", "t")) < 0)
        return rc;
    free(text);
    if ((rc = crdt_read_list(&vals, &n, rd, "c", "d2", "l")) < 0)
        return rc;
    crdt_list_free(vals);
    *got += (int)(len + n);
    return CRDT_OK;
}

/* Reads of every kind in one snapshot; @p got counts what they saw. */
static int
read_all(crdt_replica *r, int *got)
{
    crdt_read *rd = NULL;
    crdt_vv *vv = NULL;
    crdt_field f;
    crdt_stats st;
    uint64_t docs;
    int rc;

    *got = 0;
    if ((rc = crdt_read_begin(&rd, r)) < 0)
        return rc;
    if ((rc = read_seqs(rd, got)) == CRDT_OK &&
        (rc = crdt_read_doc(rd, "c", "d1", count_field, got)) == CRDT_OK &&
        (rc = crdt_read_docs(rd, "c", count_name, got)) == CRDT_OK &&
        (rc = crdt_read_collections(rd, count_name, got)) == CRDT_OK &&
        (rc = crdt_read_field(&f, rd, "c", "d2", "t")) == CRDT_OK &&
        (rc = crdt_read_stats(&st, rd)) == CRDT_OK &&
        (rc = crdt_read_doc_count(&docs, rd)) == CRDT_OK)
        rc = crdt_read_vv(&vv, rd);
    crdt_vv_free(vv);
    crdt_read_end(rd);
    return rc;
}

START_TEST(test_reads_fail_at_every_lmdb_call)
{
    unsigned char before[32], after[32];
    int want = 0, got = 0, done = 0;
    long n;

    for (int i = 0; i < 12; i++)
        ck_assert_int_eq(write_all_kinds(a, i, 0), CRDT_OK);
    ck_assert_int_eq(read_all(a, &want), CRDT_OK);
    ck_assert_int_gt(want, 3);
    tu_digest_all(a, before);
    for (n = 1; n < CALLS_MAX && !done; n++) {
        mdbfault_arm(n);
        done = mdbfault_judge(read_all(a, &got), n, "read") & 1;
    }
    ck_assert_int_eq(done, 1);
    mdbfault_reach(__func__, n);
    ck_assert_int_eq(got, want);
    tu_digest_all(a, after);
    ck_assert_mem_eq(after, before, 32);
}
END_TEST

/* Every change of @p r through an export; @p n counts them. */
static int
export_all(crdt_replica *r, size_t *n)
{
    crdt_export *e;
    const unsigned char *buf;
    size_t len;
    int rc;

    *n = 0;
    if ((rc = crdt_export_begin(&e, r, NULL)) < 0)
        return rc;
    while ((rc = crdt_export_next(e, &buf, &len)) == CRDT_OK)
        ++*n;
    crdt_export_end(e);
    return rc == CRDT_ENOTFOUND ? CRDT_OK : rc;
}

START_TEST(test_export_fails_at_every_lmdb_call)
{
    size_t want = 0, got = 0;
    long n;
    int done = 0;

    for (int i = 0; i < 12; i++)
        ck_assert_int_eq(write_all_kinds(a, i, 0), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK); /* a merged run too */
    ck_assert_int_eq(tu_put_int(b, "c", "d9", "v", 9), CRDT_OK);
    ck_assert_int_eq(export_all(b, &want), CRDT_OK);
    ck_assert_uint_eq(want, 13);
    for (n = 1; n < CALLS_MAX && !done; n++) {
        mdbfault_arm(n);
        done = mdbfault_judge(export_all(b, &got), n, "export") & 1;
    }
    ck_assert_int_eq(done, 1);
    mdbfault_reach(__func__, n);
    ck_assert_uint_eq(got, want);
}
END_TEST

START_TEST(test_reopen_fails_at_every_lmdb_call)
{
    unsigned char before[32], after[32];
    crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
    char path[300];
    long n;
    int done = 0;

    for (int i = 0; i < 6; i++)
        ck_assert_int_eq(write_all_kinds(a, i, 0), CRDT_OK);
    tu_digest_all(a, before);
    crdt_replica_close(a);
    a = NULL;
    o.no_sync = 1;
    snprintf(path, sizeof path, "%s/r", da); /* tu_create()'s */
    for (n = 1; n < CALLS_MAX && !done; n++) {
        mdbfault_arm(n);
        done = mdbfault_judge(crdt_replica_open(&a, path, &o), n, "open");
        if (done == 2) {
            crdt_replica_close(a);
            a = NULL;
            done = 0;
        } else if (!done) {
            ck_assert_ptr_null(a);
        }
    }
    ck_assert_int_eq(done, 1);
    mdbfault_reach(__func__, n);
    tu_digest_all(a, after);
    ck_assert_mem_eq(after, before, 32);
}
END_TEST

/* A batch whose first change of an actor is missing parks the rest in
 * the pending area; the batch that brings it applies them all. */
START_TEST(test_merge_with_a_gap_fails_at_every_lmdb_call)
{
    unsigned char before[32], after[32];
    char ha[65], hb[65];
    tu_batch x;
    long n;
    int done = 0;

    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(write_all_kinds(a, i, 0), CRDT_OK);
    x = tu_export_all(a);
    for (int pass = 0; pass < 2; pass++) {
        /* pass 0: all but the first (parked); pass 1: the first */
        const crdt_bytes *v = pass == 0 ? x.v + 1 : x.v;
        size_t count = pass == 0 ? x.n - 1 : 1;
        done = 0;
        tu_digest_all(b, before);
        for (n = 1; n < CALLS_MAX && !done; n++) {
            mdbfault_arm(n);
            done = mdbfault_judge(crdt_merge(NULL, b, v, count), n, "merge");
            if (done == 2) {
                tu_digest_all(b, before);
                done = 0;
            } else if (!done) {
                tu_digest_all(b, after);
                MDBFAULT_EXPECT(memcmp(after, before, 32) == 0, "merge pass "
                                "%d: LMDB call %ld failed, the replica "
                                "changed", pass, n);
            }
        }
        ck_assert_int_eq(done, 1);
        mdbfault_reach(__func__, n);
        ck_assert_uint_eq(tu_pending(b), pass == 0 ? x.n - 1 : 0);
    }
    tu_hash(ha, a);
    tu_hash(hb, b);
    ck_assert_str_eq(ha, hb);
    tu_batch_free(&x);
}
END_TEST

static int
member_writes(crdt_txn *t, void *arg)
{
    const unsigned char *pk = arg;
    int rc;

    if ((rc = crdt_txn_member_set(t, pk, CRDT_ROLE_WRITER)) < 0)
        return rc;
    return crdt_txn_member_set(t, pk + 32, CRDT_ROLE_READER);
}

/* Granting roles (the member set checked and written), then reading
 * them back. */
START_TEST(test_members_fail_at_every_lmdb_call)
{
    unsigned char before[32], after[32], pk[64];
    crdt_role role, want;
    long n;
    int done = 0;

    randombytes_buf(pk, sizeof pk);
    tu_digest_all(a, before);
    for (n = 1; n < CALLS_MAX && !done; n++) {
        mdbfault_arm(n);
        done = mdbfault_judge(crdt_txn_write(a, member_writes, pk, NULL), n,
                              "members");
        if (done == 2) {
            tu_digest_all(a, before);
            done = 0;
        } else if (!done) {
            tu_digest_all(a, after);
            MDBFAULT_EXPECT(memcmp(after, before, 32) == 0, "members: LMDB "
                            "call %ld failed, the replica changed", n);
        }
    }
    ck_assert_int_eq(done, 1);
    mdbfault_reach(__func__, n);
    done = 0;
    for (n = 1; n < CALLS_MAX && !done; n++) {
        mdbfault_arm(n);
        done = mdbfault_judge(crdt_member_role(a, pk, &role), n, "role") & 1;
    }
    ck_assert_int_eq(done, 1);
    ck_assert_int_eq(crdt_member_role(a, pk, &want), CRDT_OK);
    ck_assert_int_eq(role, want);
}
END_TEST

/* The checks of the records (every change's hash and signature, the
 * state's hash) and of the pages. */
START_TEST(test_checks_fail_at_every_lmdb_call)
{
    char why[200];
    long n;
    int done = 0;

    for (int i = 0; i < 6; i++)
        ck_assert_int_eq(write_all_kinds(a, i, 0), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    ck_assert_int_eq(write_all_kinds(b, 9, 0), CRDT_OK);
    for (n = 1; n < CALLS_MAX && !done; n++) {
        mdbfault_arm(n);
        done = mdbfault_judge(crdt_replica_check_records(b, why, sizeof why),
                              n, "record check") & 1;
    }
    ck_assert_int_eq(done, 1);
    mdbfault_reach(__func__, n);
    done = 0;
    for (n = 1; n < CALLS_MAX && !done; n++) {
        mdbfault_arm(n);
        done = mdbfault_judge(crdt_replica_check(b, 0, why, sizeof why), n,
                              "page check") & 1;
    }
    ck_assert_int_eq(done, 1);
}
END_TEST

static int
count_event(void *ctx, const crdt_feed_event *ev)
{
    (void)ev;
    ++*(int *)ctx;
    return 0;
}

/* The change feed read back from its start and from its head. */
START_TEST(test_feed_fails_at_every_lmdb_call)
{
    crdt_feed_cursor from, next, head;
    long n;
    int done = 0, events = 0, rc;

    memset(&from, 0, sizeof from);
    ck_assert_int_eq(crdt_feed_head(&from, a), CRDT_OK);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(write_all_kinds(a, i, 0), CRDT_OK);
    for (n = 1; n < CALLS_MAX && !done; n++) {
        events = 0;
        mdbfault_arm(n);
        rc = crdt_feed_head(&head, a);
        if (rc == CRDT_OK)
            rc = crdt_feed_since(a, &from, NULL, NULL, 0, count_event,
                                 &events, &next);
        done = mdbfault_judge(rc < 0 ? rc : CRDT_OK, n, "feed") & 1;
    }
    ck_assert_int_eq(done, 1);
    ck_assert_int_eq(events, 5);
    ck_assert_uint_eq(next.seq, head.seq);
}
END_TEST

Suite *
test_suite(void)
{
    Suite *s = suite_create("mdb_faults");
    TCase *tc = tcase_create("mdb_faults");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_local_txn_fails_at_every_lmdb_call, 0, 2);
    tcase_add_test(tc, test_merge_fails_at_every_lmdb_call);
    tcase_add_test(tc, test_reads_fail_at_every_lmdb_call);
    tcase_add_test(tc, test_export_fails_at_every_lmdb_call);
    tcase_add_test(tc, test_reopen_fails_at_every_lmdb_call);
    tcase_add_test(tc, test_merge_with_a_gap_fails_at_every_lmdb_call);
    tcase_add_test(tc, test_members_fail_at_every_lmdb_call);
    tcase_add_test(tc, test_checks_fail_at_every_lmdb_call);
    tcase_add_test(tc, test_feed_fails_at_every_lmdb_call);
    suite_add_tcase(s, tc);
    return s;
}
