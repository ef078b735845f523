/*
 * test_logrec.c: run records (docs/storage.md 3). A merge stores an
 * actor's run of changes as one log record; every reader hands the
 * changes out byte for byte as they were signed (export, a partial
 * export from inside a run, the chain check, the record check, the log
 * counters); a damaged run is named; splitting a run gives one record
 * per change that read the same; a local commit after single records
 * (what every replica written before runs holds) still works.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crdt/crdt.h"
#include "crdt/raw.h"
#include "support/replica_util.h"
#include "support/support.h"

TU_PAIR_FIXTURE(tu_pair_create)

#define N_CHANGES 10

/* @p n changes of two ops each on @p r. */
static void
commit_n(crdt_replica *r, int n)
{
    for (int i = 0; i < n; i++) {
        crdt_txn *t;
        crdt_value v = crdt_value_int(i);
        char doc[16];
        snprintf(doc, sizeof doc, "d%02d", i);
        ck_assert_int_eq(crdt_txn_begin(&t, r), CRDT_OK);
        ck_assert_int_eq(crdt_txn_put(t, "c", doc, "v", &v), CRDT_OK);
        ck_assert_int_eq(crdt_txn_put(t, "c", doc, "w", &v), CRDT_OK);
        ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    }
}

/* The log records of @p r: count, and how many are runs. */
static void
log_shape(crdt_replica *r, size_t *records, size_t *runs)
{
    crdt_raw *t;
    crdt_raw_cursor *c;
    const void *k, *v;
    size_t kl, vl;
    int rc;

    *records = *runs = 0;
    ck_assert_int_eq(crdt_raw_begin(&t, r, 0), CRDT_OK);
    ck_assert_int_eq(crdt_raw_cursor_open(&c, t, CRDT_DB_LOG), CRDT_OK);
    for (rc = crdt_raw_cursor_seek(c, NULL, 0, &k, &kl, &v, &vl);
         rc == CRDT_OK; rc = crdt_raw_cursor_next(c, &k, &kl, &v, &vl)) {
        (*records)++;
        *runs += vl > 0 && ((const unsigned char *)v)[0] == 0xc1;
    }
    ck_assert_int_eq(rc, CRDT_ENOTFOUND);
    crdt_raw_cursor_close(c);
    crdt_raw_abort(t);
}

static void
assert_same_batches(const tu_batch *x, const tu_batch *y)
{
    ck_assert_uint_eq(x->n, y->n);
    for (size_t i = 0; i < x->n; i++) {
        ck_assert_uint_eq(x->v[i].len, y->v[i].len);
        ck_assert(memcmp(x->v[i].data, y->v[i].data, x->v[i].len) == 0);
    }
}

static void
assert_records_sound(crdt_replica *r)
{
    char why[256];

    ck_assert_msg(crdt_replica_check_records(r, why, sizeof why) == CRDT_OK,
                  "%s", why);
}

START_TEST(test_merge_writes_a_run_as_one_record)
{
    tu_batch sent, served;
    crdt_read *rd;
    crdt_stats st;
    size_t records, runs;

    commit_n(a, N_CHANGES);
    sent = tu_export_all(a);
    ck_assert_uint_eq(sent.n, N_CHANGES);
    ck_assert_int_eq(crdt_merge(NULL, b, sent.v, sent.n), CRDT_OK);
    log_shape(b, &records, &runs);
    ck_assert_uint_eq(records, 1);
    ck_assert_uint_eq(runs, 1);
    /* served on byte for byte, signatures and all */
    served = tu_export_all(b);
    assert_same_batches(&sent, &served);
    ck_assert_int_eq(crdt_read_begin(&rd, b), CRDT_OK);
    crdt_read_stats(&st, rd);
    crdt_read_end(rd);
    ck_assert_uint_eq(st.changes_in_log, N_CHANGES);
    ck_assert_uint_eq(st.ops_in_log, 2 * N_CHANGES);
    assert_records_sound(b);
    tu_batch_free(&sent);
    tu_batch_free(&served);
}
END_TEST

START_TEST(test_export_and_chain_check_inside_a_run)
{
    tu_batch sent;
    crdt_actor actor = crdt_replica_actor(a);
    crdt_change c4;
    crdt_vv *lacks;
    crdt_export *e;
    const unsigned char *p;
    size_t len, n = 0;
    unsigned char other[CRDT_HASH_BYTES];
    int found;

    commit_n(a, N_CHANGES);
    sent = tu_export_all(a);
    ck_assert_int_eq(crdt_merge(NULL, b, sent.v, sent.n), CRDT_OK);
    /* a peer that holds up to seq 8 (four changes) gets the rest */
    ck_assert_int_eq(crdt_vv_new(&lacks), CRDT_OK);
    ck_assert_int_eq(crdt_vv_set(lacks, &actor, 8), CRDT_OK);
    ck_assert_int_eq(crdt_export_begin(&e, b, lacks), CRDT_OK);
    while (crdt_export_next(e, &p, &len) == CRDT_OK) {
        ck_assert_uint_lt(4 + n, sent.n);
        ck_assert_uint_eq(len, sent.v[4 + n].len);
        ck_assert(memcmp(p, sent.v[4 + n].data, len) == 0);
        n++;
    }
    crdt_export_end(e);
    crdt_vv_free(lacks);
    ck_assert_uint_eq(n, N_CHANGES - 4);
    /* the change ending at seq 8 sits inside the run */
    ck_assert_int_eq(crdt_change_decode(&c4, sent.v[3].data, sent.v[3].len),
                     CRDT_OK);
    ck_assert_uint_eq(c4.seq + c4.n_ops - 1, 8);
    ck_assert_int_eq(crdt_chain_check(&found, b, &actor, 8, c4.hash),
                     CRDT_OK);
    ck_assert_int_eq(found, CRDT_CHAIN_SAME);
    memcpy(other, c4.hash, sizeof other);
    other[0] ^= 1;
    ck_assert_int_eq(crdt_chain_check(&found, b, &actor, 8, other), CRDT_OK);
    ck_assert_int_eq(found, CRDT_CHAIN_FORK);
    /* seq 7 is inside a change: another cut of the chain */
    ck_assert_int_eq(crdt_chain_check(&found, b, &actor, 7, c4.hash),
                     CRDT_OK);
    ck_assert_int_eq(found, CRDT_CHAIN_FORK);
    /* merging the same changes again: duplicates, nothing written */
    {
        crdt_merge_report rep;
        size_t records, runs;
        ck_assert_int_eq(crdt_merge(&rep, b, sent.v, sent.n), CRDT_OK);
        ck_assert_uint_eq(rep.duplicates, N_CHANGES);
        ck_assert_uint_eq(rep.conflicts, 0);
        log_shape(b, &records, &runs);
        ck_assert_uint_eq(records, 1);
    }
    tu_batch_free(&sent);
}
END_TEST

/* Rewrite @p r's only log record with its last byte cut. */
static void
cut_the_run(crdt_replica *r)
{
    crdt_raw *t;
    crdt_raw_cursor *c;
    const void *k, *v;
    size_t kl, vl;
    unsigned char key[16], *copy;

    ck_assert_int_eq(crdt_raw_begin(&t, r, 1), CRDT_OK);
    ck_assert_int_eq(crdt_raw_cursor_open(&c, t, CRDT_DB_LOG), CRDT_OK);
    ck_assert_int_eq(crdt_raw_cursor_seek(c, NULL, 0, &k, &kl, &v, &vl),
                     CRDT_OK);
    ck_assert_uint_eq(kl, 16);
    memcpy(key, k, 16);
    copy = malloc(vl);
    ck_assert_ptr_nonnull(copy);
    memcpy(copy, v, vl);
    crdt_raw_cursor_close(c);
    ck_assert_int_eq(crdt_raw_put(t, CRDT_DB_LOG, key, 16, copy, vl - 1),
                     CRDT_OK);
    free(copy);
    ck_assert_int_eq(crdt_raw_commit(t), CRDT_OK);
}

START_TEST(test_damaged_run_is_named)
{
    tu_batch sent;
    char why[256];
    crdt_raw *t;
    crdt_raw_cursor *c;
    const void *k, *v;
    size_t kl, vl, n = 0;
    crdt_bytes *list = NULL;
    unsigned char *buf = NULL;

    commit_n(a, N_CHANGES);
    sent = tu_export_all(a);
    ck_assert_int_eq(crdt_merge(NULL, b, sent.v, sent.n), CRDT_OK);
    cut_the_run(b);
    ck_assert_int_eq(crdt_replica_check_records(b, why, sizeof why),
                     CRDT_ECORRUPT);
    ck_assert_msg(strstr(why, "damaged run at ") != NULL &&
                      strstr(why, "up to seq 20") != NULL, "%s", why);
    ck_assert_int_eq(crdt_raw_begin(&t, b, 0), CRDT_OK);
    ck_assert_int_eq(crdt_raw_cursor_open(&c, t, CRDT_DB_LOG), CRDT_OK);
    ck_assert_int_eq(crdt_raw_cursor_seek(c, NULL, 0, &k, &kl, &v, &vl),
                     CRDT_OK);
    ck_assert_int_eq(crdt_raw_log_changes(&list, &n, &buf, k, kl, v, vl),
                     CRDT_ECORRUPT);
    ck_assert_ptr_null(list);
    ck_assert_ptr_null(buf);
    crdt_raw_cursor_close(c);
    crdt_raw_abort(t);
    tu_batch_free(&sent);
}
END_TEST

START_TEST(test_split_gives_one_record_per_change)
{
    tu_batch sent, served;
    crdt_raw *t;
    uint64_t split = 0;
    size_t records, runs;

    commit_n(a, N_CHANGES);
    sent = tu_export_all(a);
    ck_assert_int_eq(crdt_merge(NULL, b, sent.v, sent.n), CRDT_OK);
    ck_assert_int_eq(crdt_raw_begin(&t, b, 1), CRDT_OK);
    ck_assert_int_eq(crdt_raw_log_split(&split, t, CRDT_DB_LOG), CRDT_OK);
    ck_assert_int_eq(crdt_raw_commit(t), CRDT_OK);
    ck_assert_uint_eq(split, 1);
    log_shape(b, &records, &runs);
    ck_assert_uint_eq(records, N_CHANGES);
    ck_assert_uint_eq(runs, 0);
    served = tu_export_all(b);
    assert_same_batches(&sent, &served);
    assert_records_sound(b);
    tu_batch_free(&sent);
    tu_batch_free(&served);
}
END_TEST

START_TEST(test_singles_and_runs_live_together)
{
    tu_batch sent, more;
    size_t records, runs;

    /* single records, as every replica written before runs holds */
    commit_n(b, 3);
    commit_n(a, 4);
    sent = tu_export_all(a);
    ck_assert_int_eq(crdt_merge(NULL, b, sent.v, sent.n), CRDT_OK);
    /* a later merge of the same actor: a run after the run */
    commit_n(a, 3);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    commit_n(b, 2);
    log_shape(b, &records, &runs);
    ck_assert_uint_eq(records, 3 + 2 + 2);
    ck_assert_uint_eq(runs, 2);
    assert_records_sound(b);
    /* a fresh peer gets everything from b, byte for byte what a sent */
    ck_assert_int_eq(tu_sync_one_way(a, b), CRDT_OK);
    more = tu_export_all(a);
    ck_assert_uint_eq(more.n, 4 + 3 + 3 + 2);
    assert_records_sound(a);
    tu_batch_free(&sent);
    tu_batch_free(&more);
}
END_TEST

/* A run moved to the archive unchanged is served from there, also from
 * inside it and up to a cut inside it. */
START_TEST(test_archived_run_is_served_from_inside)
{
    tu_batch sent;
    crdt_actor actor = crdt_replica_actor(a);
    crdt_vv *from, *upto;
    crdt_export *e;
    crdt_raw *t;
    const unsigned char *p;
    size_t len, n = 0;

    commit_n(a, N_CHANGES);
    sent = tu_export_all(a);
    ck_assert_int_eq(crdt_merge(NULL, b, sent.v, sent.n), CRDT_OK);
    ck_assert_int_eq(crdt_raw_begin(&t, b, 1), CRDT_OK);
    ck_assert_int_eq(crdt_raw_archive_log(t, NULL, 0), CRDT_OK);
    ck_assert_int_eq(crdt_raw_commit(t), CRDT_OK);
    /* changes 3..7 (seqs 5..14) of the archived run */
    ck_assert_int_eq(crdt_vv_new(&from), CRDT_OK);
    ck_assert_int_eq(crdt_vv_new(&upto), CRDT_OK);
    ck_assert_int_eq(crdt_vv_set(from, &actor, 4), CRDT_OK);
    ck_assert_int_eq(crdt_vv_set(upto, &actor, 14), CRDT_OK);
    ck_assert_int_eq(crdt_export_begin_archive(&e, b, 0, from, upto),
                     CRDT_OK);
    while (crdt_export_next(e, &p, &len) == CRDT_OK) {
        ck_assert_uint_lt(2 + n, 7);
        ck_assert_uint_eq(len, sent.v[2 + n].len);
        ck_assert(memcmp(p, sent.v[2 + n].data, len) == 0);
        n++;
    }
    crdt_export_end(e);
    ck_assert_uint_eq(n, 5);
    crdt_vv_free(from);
    crdt_vv_free(upto);
    tu_batch_free(&sent);
}
END_TEST

/* A run whose change in the middle was altered: the change after it
 * names the old hash as its prev. Every reader refuses the run, though
 * the run's read now hands its hashes on instead of hashing again. */
START_TEST(test_forged_change_inside_a_run_is_refused)
{
    tu_batch sent;
    char why[256];
    crdt_export *e;
    crdt_change c;
    const unsigned char *p;
    size_t len;
    int rc;

    commit_n(a, N_CHANGES);
    sent = tu_export_all(a);
    ck_assert_int_eq(crdt_merge(NULL, b, sent.v, sent.n), CRDT_OK);
    assert_records_sound(b);
    tu_change_alter_op(&sent.v[4]);
    tu_log_put_run(b, sent.v, sent.n); /* in place of the merged run */
    ck_assert_int_eq(crdt_replica_check_records(b, why, sizeof why),
                     CRDT_ECORRUPT);
    ck_assert_int_eq(crdt_export_begin_as_stored(&e, b, NULL), CRDT_OK);
    while ((rc = crdt_export_next_change(e, &p, &len, &c)) == CRDT_OK)
        ;
    ck_assert_int_eq(rc, CRDT_ECORRUPT);
    crdt_export_end(e);
    tu_batch_free(&sent);
}
END_TEST

/* crdt_export_next_change() gives what crdt_change_decode() gives, for
 * the changes of a run (hashed when the run was read) and for single
 * changes alike. */
START_TEST(test_export_next_change_is_the_decode)
{
    tu_batch sent;
    crdt_export *e;
    crdt_change c, d;
    const unsigned char *p;
    size_t len, n = 0;
    int rc;

    commit_n(a, N_CHANGES);
    sent = tu_export_all(a);
    ck_assert_int_eq(crdt_merge(NULL, b, sent.v, sent.n), CRDT_OK);
    commit_n(b, 3);
    for (int stored = 0; stored < 2; stored++) {
        n = 0;
        ck_assert_int_eq(stored ? crdt_export_begin_as_stored(&e, b, NULL)
                                : crdt_export_begin(&e, b, NULL),
                         CRDT_OK);
        while ((rc = crdt_export_next_change(e, &p, &len, &c)) == CRDT_OK) {
            ck_assert_int_eq(crdt_change_decode(&d, p, len), CRDT_OK);
            ck_assert(memcmp(c.hash, d.hash, CRDT_HASH_BYTES) == 0);
            ck_assert(memcmp(c.actor.b, d.actor.b, CRDT_ACTOR_BYTES) == 0);
            ck_assert_uint_eq(c.seq, d.seq);
            ck_assert_uint_eq(c.n_ops, d.n_ops);
            ck_assert_uint_eq(c.hlc, d.hlc);
            ck_assert(c.ops == d.ops && c.ops_len == d.ops_len);
            ck_assert(c.sig == d.sig);
            n++;
        }
        ck_assert_int_eq(rc, CRDT_ENOTFOUND);
        crdt_export_end(e);
        ck_assert_uint_eq(n, N_CHANGES + 3);
    }
    tu_batch_free(&sent);
}
END_TEST

Suite *
test_suite(void)
{
    Suite *s = suite_create("logrec");
    TCase *tc = tcase_create("logrec");

    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_merge_writes_a_run_as_one_record);
    tcase_add_test(tc, test_export_and_chain_check_inside_a_run);
    tcase_add_test(tc, test_damaged_run_is_named);
    tcase_add_test(tc, test_split_gives_one_record_per_change);
    tcase_add_test(tc, test_singles_and_runs_live_together);
    tcase_add_test(tc, test_archived_run_is_served_from_inside);
    tcase_add_test(tc, test_forged_change_inside_a_run_is_refused);
    tcase_add_test(tc, test_export_next_change_is_the_decode);
    suite_add_tcase(s, tc);
    return s;
}
