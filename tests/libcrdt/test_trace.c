/*
 * test_trace.c: replaying the sequential automerge-paper editing trace
 * (tests/traces, CC BY 4.0) gives its endContent, in a replica written
 * with many edits per txn, and in a fresh replica that merges all of
 * that replica's changes; after reopening, the text is rebuilt from the
 * stored runs and is still the same.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crdt/crdt.h"
#include "support/replica_util.h"
#include "support/support.h"
#include "support/trace.h"

#ifndef STRATA_TRACES
#define STRATA_TRACES "tests/traces"
#endif
#define PER_TXN 1000 /* edits per txn */

static void
ck_text(crdt_replica *r, const trace *tr)
{
    crdt_read *rd;
    char *s;
    size_t n;

    ck_assert_int_eq(crdt_read_begin(&rd, r), CRDT_OK);
    ck_assert_int_eq(crdt_read_text(&s, &n, rd, "c", "d", "t"), CRDT_OK);
    crdt_read_end(rd);
    ck_assert_uint_eq(n, tr->end_len);
    ck_assert(memcmp(s, tr->end, n) == 0);
    crdt_text_free(s);
}

START_TEST(test_automerge_paper)
{
    char d1[256], d2[256], h1[65], h2[65], sub[300];
    crdt_replica *a, *b;
    crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
    unsigned char space[CRDT_SPACE_ID_BYTES];
    crdt_txn *t = NULL;
    size_t edits = 0;
    trace tr;

    ck_assert_int_eq(trace_load(&tr, STRATA_TRACES "/automerge-paper.json.gz"),
                     0);
    ck_assert(!tr.concurrent);
    a = tu_create(d1, sizeof d1, NULL);
    crdt_replica_space_id(a, space);
    b = tu_create(d2, sizeof d2, space);
    if (tr.start[0] != 0) {
        ck_assert_int_eq(crdt_txn_begin(&t, a), CRDT_OK);
        ck_assert_int_eq(crdt_txn_text_insert(t, "c", "d", "t", 0, tr.start,
                                              strlen(tr.start)), CRDT_OK);
        ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
        t = NULL;
    }
    for (size_t i = 0; i < tr.n_txns; i++)
        for (size_t j = 0; j < tr.txns[i].n_patches; j++) {
            const trace_patch *p = &tr.txns[i].patches[j];
            if (t == NULL)
                ck_assert_int_eq(crdt_txn_begin(&t, a), CRDT_OK);
            if (p->del > 0)
                ck_assert_int_eq(crdt_txn_text_delete(t, "c", "d", "t",
                                                      p->pos, p->del),
                                 CRDT_OK);
            if (p->ins_len > 0)
                ck_assert_int_eq(crdt_txn_text_insert(t, "c", "d", "t",
                                                      p->pos, p->ins,
                                                      p->ins_len), CRDT_OK);
            if (++edits % PER_TXN == 0) {
                ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
                t = NULL;
            }
        }
    if (t != NULL)
        ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    ck_assert_uint_eq(edits, 259778);
    ck_text(a, &tr);

    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    ck_text(b, &tr);
    tu_hash(h1, a);
    tu_hash(h2, b);
    ck_assert_str_eq(h1, h2);

    crdt_replica_close(b);
    snprintf(sub, sizeof sub, "%s/r", d2);
    ck_assert_int_eq(crdt_replica_open(&b, sub, &o), CRDT_OK);
    ck_text(b, &tr);

    crdt_replica_close(a);
    crdt_replica_close(b);
    test_rmtree(d1);
    test_rmtree(d2);
    trace_free(&tr);
}
END_TEST

Suite *
test_suite(void)
{
    Suite *s = suite_create("trace");
    TCase *tc = tcase_create("replay");

    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, test_automerge_paper);
    suite_add_tcase(s, tc);
    return s;
}
