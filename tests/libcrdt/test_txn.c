/*
 * test_txn.c: local writes and reads of every field type, reopen.
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crdt/crdt.h"
#include "crdt/raw.h"
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
}

START_TEST(test_put_get_register)
{
    char buf[128];
    crdt_commit_info info;
    crdt_txn *t;
    crdt_value v = crdt_value_str("Ada", 3);

    ck_assert_int_eq(crdt_txn_begin(&t, r), CRDT_OK);
    ck_assert_int_eq(crdt_txn_put(t, "people", "p1", "name", &v), CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, &info), CRDT_OK);
    ck_assert_uint_eq(info.first_seq, 1);
    ck_assert_uint_eq(info.last_seq, 1);
    tu_field_str(buf, sizeof buf, r, "people", "p1", "name");
    ck_assert_str_eq(buf, "\"Ada\"");
    ck_assert_int_eq(tu_put_int(r, "people", "p1", "name", 7), CRDT_OK);
    tu_field_str(buf, sizeof buf, r, "people", "p1", "name");
    ck_assert_str_eq(buf, "7");
}
END_TEST

START_TEST(test_counter_and_set)
{
    char buf[128];
    crdt_txn *t;
    crdt_value a = crdt_value_str("a", 1), b = crdt_value_str("b", 1);

    ck_assert_int_eq(crdt_txn_begin(&t, r), CRDT_OK);
    ck_assert_int_eq(crdt_txn_incr(t, "c", "d", "n", 5), CRDT_OK);
    ck_assert_int_eq(crdt_txn_incr(t, "c", "d", "n", -2), CRDT_OK);
    ck_assert_int_eq(crdt_txn_sadd(t, "c", "d", "tags", &b), CRDT_OK);
    ck_assert_int_eq(crdt_txn_sadd(t, "c", "d", "tags", &a), CRDT_OK);
    ck_assert_int_eq(crdt_txn_sadd(t, "c", "d", "tags", &a), CRDT_OK);
    ck_assert_int_eq(crdt_txn_put(t, "c", "d", "n", &a), CRDT_ETYPE);
    ck_assert_uint_eq(crdt_txn_op_count(t), 5);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    tu_field_str(buf, sizeof buf, r, "c", "d", "n");
    ck_assert_str_eq(buf, "c3");
    tu_field_str(buf, sizeof buf, r, "c", "d", "tags");
    ck_assert_str_eq(buf, "[\"a\",\"b\"]");

    ck_assert_int_eq(crdt_txn_begin(&t, r), CRDT_OK);
    ck_assert_int_eq(crdt_txn_srem(t, "c", "d", "tags", &a), CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    tu_field_str(buf, sizeof buf, r, "c", "d", "tags");
    ck_assert_str_eq(buf, "[\"b\"]");

    ck_assert_int_eq(crdt_txn_begin(&t, r), CRDT_OK);
    ck_assert_int_eq(crdt_txn_del_field(t, "c", "d", "n"), CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    tu_field_str(buf, sizeof buf, r, "c", "d", "n");
    ck_assert_str_eq(buf, "");
    /* a counter deleted and incremented again starts from zero */
    ck_assert_int_eq(crdt_txn_begin(&t, r), CRDT_OK);
    ck_assert_int_eq(crdt_txn_incr(t, "c", "d", "n", 4), CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    tu_field_str(buf, sizeof buf, r, "c", "d", "n");
    ck_assert_str_eq(buf, "c4");
}
END_TEST

static int
count_name(const char *name, size_t len, void *ctx)
{
    (void)name;
    (void)len;
    (*(int *)ctx)++;
    return 0;
}

START_TEST(test_del_doc_and_listing)
{
    crdt_read *rd;
    crdt_txn *t;
    int n = 0;

    ck_assert_int_eq(tu_put_int(r, "a", "x", "f", 1), CRDT_OK);
    ck_assert_int_eq(tu_put_int(r, "a", "y", "f", 2), CRDT_OK);
    ck_assert_int_eq(tu_put_int(r, "b", "z", "f", 3), CRDT_OK);
    ck_assert_int_eq(crdt_txn_begin(&t, r), CRDT_OK);
    ck_assert_int_eq(crdt_txn_del_doc(t, "a", "x"), CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);

    ck_assert_int_eq(crdt_read_begin(&rd, r), CRDT_OK);
    ck_assert_int_eq(crdt_read_docs(rd, "a", count_name, &n), CRDT_OK);
    ck_assert_int_eq(n, 1);
    n = 0;
    ck_assert_int_eq(crdt_read_collections(rd, count_name, &n), CRDT_OK);
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(crdt_read_doc(rd, "a", "x", NULL, NULL), CRDT_ENOTFOUND);
    crdt_read_end(rd);
}
END_TEST

START_TEST(test_reopen_keeps_everything)
{
    char path[300], buf[64], h1[65], h2[65];
    crdt_actor a1, a2;

    ck_assert_int_eq(tu_put_int(r, "a", "x", "f", 42), CRDT_OK);
    tu_hash(h1, r);
    a1 = crdt_replica_actor(r);
    crdt_replica_close(r);
    snprintf(path, sizeof path, "%s/r", dir);
    ck_assert_int_eq(crdt_replica_open(&r, path, NULL), CRDT_OK);
    a2 = crdt_replica_actor(r);
    ck_assert_mem_eq(a1.b, a2.b, 8);
    tu_field_str(buf, sizeof buf, r, "a", "x", "f");
    ck_assert_str_eq(buf, "42");
    tu_hash(h2, r);
    ck_assert_str_eq(h1, h2);
}
END_TEST

START_TEST(test_open_refuses_non_replica)
{
    crdt_replica *x = NULL;
    crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
    char path[300];

    snprintf(path, sizeof path, "%s/missing", dir);
    ck_assert_int_eq(crdt_replica_open(&x, path, NULL), CRDT_ENOTFOUND);
    ck_assert_int_eq(crdt_replica_open(&x, dir, NULL), CRDT_ENOTFOUND);
    snprintf(path, sizeof path, "%s/r", dir);
    o.create = 1;
    ck_assert_int_eq(crdt_replica_open(&x, path, &o), CRDT_EEXISTS);
}
END_TEST

START_TEST(test_bad_names_and_values)
{
    crdt_txn *t;
    crdt_value v = crdt_value_str("\xff", 1);
    crdt_value ok = crdt_value_int(1);
    char longname[80];

    memset(longname, 'x', 70);
    longname[70] = 0;
    ck_assert_int_eq(crdt_txn_begin(&t, r), CRDT_OK);
    ck_assert_int_eq(crdt_txn_put(t, "c", "d", "f", &v), CRDT_EINVAL);
    ck_assert_int_eq(crdt_txn_put(t, "", "d", "f", &ok), CRDT_EINVAL);
    ck_assert_int_eq(crdt_txn_put(t, longname, "d", "f", &ok), CRDT_EINVAL);
    ck_assert_int_eq(crdt_txn_put(t, "c", "d", "f", &ok), CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
}
END_TEST

START_TEST(test_map_grows_instead_of_failing)
{
    crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
    crdt_replica *small;
    char path[300], buf[64];
    static char big[60000];
    crdt_value v = crdt_value_str(big, sizeof big);

    memset(big, 'q', sizeof big);
    snprintf(path, sizeof path, "%s/small", dir);
    o.create = 1;
    o.map_size = 256 * 1024;
    ck_assert_int_eq(crdt_replica_open(&small, path, &o), CRDT_OK);
    for (int i = 0; i < 60; i++) {
        crdt_txn *t;
        char doc[16];
        snprintf(doc, sizeof doc, "d%d", i);
        ck_assert_int_eq(crdt_txn_begin(&t, small), CRDT_OK);
        ck_assert_int_eq(crdt_txn_put(t, "c", doc, "f", &v), CRDT_OK);
        ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    }
    ck_assert_int_eq(tu_put_int(small, "c", "x", "n", 9), CRDT_OK);
    tu_field_str(buf, sizeof buf, small, "c", "x", "n");
    ck_assert_str_eq(buf, "9");
    crdt_replica_close(small);
}
END_TEST

/* One 60 KB register write to @p doc of @p to: CRDT_OK or the failure. */
static int
put_big(crdt_replica *to, const char *doc)
{
    static char big[60000];
    crdt_value v = crdt_value_str(big, sizeof big);
    crdt_txn *t;
    int rc;

    memset(big, 'q', sizeof big);
    if ((rc = crdt_txn_begin(&t, to)) < 0)
        return rc;
    if ((rc = crdt_txn_put(t, "c", doc, "f", &v)) < 0) {
        crdt_txn_abort(t);
        return rc;
    }
    return crdt_txn_commit(t, NULL);
}

static void *
end_read(void *rd)
{
    crdt_read_end(rd);
    return NULL;
}

/* A thread that holds a read (or an export) of a replica and writes to it
 * beyond the map: growing waits until no txn of the process is open, so
 * it used to wait for itself forever (a sync session merging while its
 * own export is open; a daemon's loop turning one connection's merge
 * while another's export is open). It gets CRDT_EBUSY at once, nothing
 * written, and the same write succeeds once the read has ended. */
START_TEST(test_map_growth_never_waits_for_the_callers_own_read)
{
    crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
    crdt_replica *small, *src;
    crdt_read *rd;
    crdt_export *e;
    char path[300], doc[16];
    unsigned char space[16];
    tu_batch x;
    pthread_t th;
    crdt_env_stats es0, es1;
    crdt_stats st;
    int rc = CRDT_OK, i;

    snprintf(path, sizeof path, "%s/small", dir);
    o.create = 1;
    o.map_size = 256 * 1024;
    ck_assert_int_eq(crdt_replica_open(&small, path, &o), CRDT_OK);
    ck_assert_int_eq(crdt_read_begin(&rd, small), CRDT_OK);
    for (i = 0; i < 60 && rc == CRDT_OK; i++) {
        snprintf(doc, sizeof doc, "d%d", i);
        rc = put_big(small, doc);
    }
    ck_assert_int_eq(rc, CRDT_EBUSY); /* and not a hang */
    st = tu_stats(small);
    ck_assert_uint_eq(st.ops_in_log, (uint64_t)i - 1);
    crdt_read_end(rd);
    ck_assert_int_eq(put_big(small, doc), CRDT_OK); /* grows now */

    /* a merge while an export of the same replica is open */
    snprintf(path, sizeof path, "%s/src", dir);
    o.map_size = 0;
    crdt_replica_space_id(small, space);
    o.space_id = space;
    ck_assert_int_eq(crdt_replica_open(&src, path, &o), CRDT_OK);
    for (i = 0; i < 60; i++) {
        snprintf(doc, sizeof doc, "s%d", i);
        ck_assert_int_eq(put_big(src, doc), CRDT_OK);
    }
    x = tu_export_all(src);
    ck_assert_int_eq(crdt_export_begin(&e, small, NULL), CRDT_OK);
    rc = crdt_merge(NULL, small, x.v, x.n);
    ck_assert_int_eq(rc, CRDT_EBUSY);
    crdt_export_end(e);
    ck_assert_int_eq(crdt_merge(NULL, small, x.v, x.n), CRDT_OK);
    ck_assert_uint_eq(tu_stats(small).ops_in_log, st.ops_in_log + 1 + 60);
    tu_batch_free(&x);
    crdt_replica_close(src);

    /* a read handed to another thread and ended there is no longer this
     * thread's: its writes grow the map again */
    ck_assert_int_eq(crdt_read_begin(&rd, small), CRDT_OK);
    ck_assert_int_eq(pthread_create(&th, NULL, end_read, rd), 0);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    ck_assert_int_eq(crdt_replica_env_stats(small, &es0), CRDT_OK);
    rc = CRDT_OK;
    for (i = 0; i < 120 && rc == CRDT_OK; i++) {
        snprintf(doc, sizeof doc, "h%d", i);
        rc = put_big(small, doc);
    }
    ck_assert_int_eq(rc, CRDT_OK);
    ck_assert_int_eq(crdt_replica_env_stats(small, &es1), CRDT_OK);
    ck_assert_uint_gt(es1.map_size, es0.map_size); /* it did grow */
    crdt_replica_close(small);
}
END_TEST

START_TEST(test_map_limit_gives_efull)
{
    crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
    crdt_replica *small;
    char path[300];
    static char big[60000];
    crdt_value v = crdt_value_str(big, sizeof big);
    int rc = CRDT_OK, i;

    memset(big, 'q', sizeof big);
    snprintf(path, sizeof path, "%s/capped", dir);
    o.create = 1;
    o.map_size = 256 * 1024;
    o.max_map_size = 1024 * 1024;
    ck_assert_int_eq(crdt_replica_open(&small, path, &o), CRDT_OK);
    for (i = 0; i < 100 && rc == CRDT_OK; i++) {
        crdt_txn *t;
        char doc[16];
        snprintf(doc, sizeof doc, "d%d", i);
        ck_assert_int_eq(crdt_txn_begin(&t, small), CRDT_OK);
        rc = crdt_txn_put(t, "c", doc, "f", &v);
        if (rc == CRDT_OK)
            rc = crdt_txn_commit(t, NULL);
        else
            crdt_txn_abort(t);
    }
    ck_assert_int_eq(rc, CRDT_EFULL);
    crdt_replica_close(small);
    /* it still opens, and what was committed is there */
    ck_assert_int_eq(crdt_replica_open(&small, path, NULL), CRDT_OK);
    crdt_replica_close(small);
}
END_TEST

/* (3): an op that fails for want of room fails the txn: every later
 * call answers CRDT_EBADTXN, and the commit commits nothing. */
START_TEST(test_failed_txn_refuses_everything_after)
{
    crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
    crdt_replica *small;
    crdt_txn *t;
    crdt_read *rd;
    crdt_stats st;
    char path[300];
    static char big[60000];
    crdt_value v = crdt_value_str(big, sizeof big);
    uint64_t n;
    int rc = CRDT_OK, i;

    memset(big, 'q', sizeof big);
    snprintf(path, sizeof path, "%s/capped", dir);
    o.create = 1;
    o.map_size = 256 * 1024;
    o.max_map_size = 1024 * 1024;
    ck_assert_int_eq(crdt_replica_open(&small, path, &o), CRDT_OK);
    ck_assert_int_eq(crdt_txn_begin(&t, small), CRDT_OK);
    for (i = 0; i < 100 && rc == CRDT_OK; i++) {
        char doc[16];
        snprintf(doc, sizeof doc, "d%d", i);
        rc = crdt_txn_put(t, "c", doc, "f", &v);
    }
    ck_assert_int_eq(rc, CRDT_EFULL);
    n = crdt_txn_op_count(t);
    ck_assert_int_eq(crdt_txn_put(t, "c", "x", "f", &v), CRDT_EBADTXN);
    ck_assert_int_eq(crdt_txn_incr(t, "c", "x", "n", 1), CRDT_EBADTXN);
    ck_assert_int_eq(crdt_txn_raw_del(t, CRDT_DB_LOG, "k", 1), CRDT_EBADTXN);
    ck_assert_uint_eq(crdt_txn_op_count(t), n);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_EBADTXN);
    ck_assert_int_eq(crdt_read_begin(&rd, small), CRDT_OK);
    crdt_read_stats(&st, rd);
    crdt_read_end(rd);
    ck_assert_uint_eq(st.changes_in_log, 0);
    ck_assert_uint_eq(st.ops_in_log, 0);
    crdt_replica_close(small);
}
END_TEST

/* Put @p r's own head back to seq 1 (what a reset that took its later
 * changes out of the log leaves) without touching what it issued. */
static void
head_back_to_one(crdt_replica *x)
{
    crdt_raw *t;
    unsigned char *h;
    size_t hl;

    ck_assert_int_eq(crdt_raw_begin(&t, x, 1), CRDT_OK);
    ck_assert_int_eq(crdt_raw_heads_encode(&h, &hl, t), CRDT_OK);
    /* [[actor bin8, seq (fixint), ...]]: the one actor's entry */
    ck_assert_uint_eq(h[0], 0x95);
    ck_assert_uint_eq(h[11], 0x03);
    h[11] = 0x01;
    ck_assert_int_eq(crdt_raw_heads_replace(t, h, hl), CRDT_OK);
    ck_assert_int_eq(crdt_raw_commit(t), CRDT_OK);
    free(h);
}

static int
put_v(crdt_txn *t, void *arg)
{
    crdt_value v = crdt_value_int(*(const int *)arg);

    return crdt_txn_put(t, "c", "d", "v", &v);
}

/* A reset commits, then renews the incarnation in a txn of its own (and
 * that may fail): a write in between must not reuse a seq its actor
 * issued. It renews first, and writes seq 1 of the new actor; so does a
 * crdt_txn_write() group (_i = 1). */
START_TEST(test_write_behind_what_its_actor_issued_renews_first)
{
    crdt_actor before = crdt_replica_actor(r), after;
    crdt_commit_info info;
    int v = 4;

    for (int i = 1; i <= 3; i++)
        ck_assert_int_eq(tu_put_int(r, "c", "d", "v", i), CRDT_OK);
    head_back_to_one(r);
    if (_i) {
        ck_assert_int_eq(crdt_txn_write(r, put_v, &v, &info), CRDT_OK);
    } else {
        crdt_txn *t;
        ck_assert_int_eq(crdt_txn_begin(&t, r), CRDT_OK);
        ck_assert_int_eq(put_v(t, &v), CRDT_OK);
        ck_assert_int_eq(crdt_txn_commit(t, &info), CRDT_OK);
    }
    after = crdt_replica_actor(r);
    ck_assert_mem_ne(before.b, after.b, sizeof before.b);
    ck_assert_uint_eq(info.first_seq, 1);
    /* the next write goes on under the new actor */
    ck_assert_int_eq(tu_put_int(r, "c", "d", "v", 5), CRDT_OK);
    after = crdt_replica_actor(r);
    ck_assert_int_eq(crdt_txn_write(r, put_v, &v, &info), CRDT_OK);
    ck_assert_uint_eq(info.first_seq, 3);
    ck_assert_mem_eq(crdt_replica_actor(r).b, after.b, sizeof after.b);
}
END_TEST

Suite *
test_suite(void)
{
    Suite *s = suite_create("txn");
    TCase *tc = tcase_create("local");

    tcase_add_checked_fixture(tc, setup, teardown);
    /* the map tests write tens of MB: seconds under a sanitizer (over
     * Check's 4 s default under ThreadSanitizer) */
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_put_get_register);
    tcase_add_test(tc, test_counter_and_set);
    tcase_add_test(tc, test_del_doc_and_listing);
    tcase_add_test(tc, test_reopen_keeps_everything);
    tcase_add_test(tc, test_open_refuses_non_replica);
    tcase_add_test(tc, test_bad_names_and_values);
    tcase_add_test(tc, test_map_grows_instead_of_failing);
    tcase_add_test(tc, test_map_limit_gives_efull);
    tcase_add_test(tc, test_failed_txn_refuses_everything_after);
    tcase_add_test(tc, test_map_growth_never_waits_for_the_callers_own_read);
    tcase_add_loop_test(tc, test_write_behind_what_its_actor_issued_renews_first,
                        0, 2);
    suite_add_tcase(s, tc);
    return s;
}
