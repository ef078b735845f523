/*
 * test_oom_seq.c: running out of memory at every allocation of libcrdt's
 * own code in the text and list paths (support/oom.h, oom_each_call()):
 * concurrent edits merged (runs typed at both ends, deletes across the
 * other's inserts), typing one character per insert (folded into one run
 * by the txn) and deleting one by one, and a merge of inserts whose
 * anchors have not come yet (parked) followed by the one that brings
 * them. Each failed call answers CRDT_ENOMEM, leaves every database byte
 * for byte as it was, and the texts and lists read as before.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crdt/crdt.h"
#include "crdt/text.h"
#include "support/oom.h"
#include "support/replica_util.h"
#include "support/support.h"

OOM_PAIR_FIXTURE(tu_pair_create)

typedef struct {
    tu_batch x;
    uint64_t sum; /* what tu_seqs_sum() gave before */
} merge_arg;

static int
merge_op(crdt_replica *r, void *arg)
{
    merge_arg *m = arg;
    return crdt_merge(NULL, r, m->x.v, m->x.n);
}

static int
seqs_same(crdt_replica *r, void *arg)
{
    merge_arg *m = arg;
    uint64_t sum;

    return tu_seqs_sum(r, &sum) != CRDT_OK || sum != m->sum;
}

START_TEST(test_concurrent_seq_merge_out_of_memory)
{
    merge_arg m;
    char ha[65], hb[65];
    uint64_t sa, sb;

    tu_seqs_pair(a, b);
    m.x = tu_export_all(a);
    ck_assert_int_eq(tu_seqs_sum(b, &m.sum), CRDT_OK);
    ck_assert_int_gt(oom_each_call("concurrent text merge", b, merge_op, &m,
                                   seqs_same, NULL, 20000),
                     2);
    ck_assert_int_eq(tu_sync_one_way(a, b), CRDT_OK);
    tu_hash(ha, a);
    tu_hash(hb, b);
    ck_assert_str_eq(ha, hb);
    ck_assert_int_eq(tu_seqs_sum(a, &sa), CRDT_OK);
    ck_assert_int_eq(tu_seqs_sum(b, &sb), CRDT_OK);
    ck_assert_uint_eq(sa, sb);
    tu_batch_free(&m.x);
}
END_TEST

/* Typing as an editor does (tu_type_run()) in c/DOC/t. */
typedef struct {
    const char *doc;
    char *before; /* the text before, for type_undone() */
} type_arg;

static int
type_op(crdt_replica *r, void *arg)
{
    const type_arg *ta = arg;

    return tu_type_run(r, ta->doc);
}

static char *
text_of(crdt_replica *r, const char *doc)
{
    crdt_read *rd;
    char *text = NULL;
    size_t len;

    ck_assert_int_eq(crdt_read_begin(&rd, r), CRDT_OK);
    ck_assert_int_eq(crdt_read_text(&text, &len, rd, "c", doc, "t"), CRDT_OK);
    crdt_read_end(rd);
    return text;
}

/* 0 when c/DOC/t reads as it did before the typing */
static int
type_undone(crdt_replica *r, void *arg)
{
    const type_arg *ta = arg;
    char *now = text_of(r, ta->doc);
    int differs = strcmp(now, ta->before) != 0;

    crdt_text_free(now);
    return differs;
}

/* Sequence paths: typing folded into runs, and a merge of inserts whose
 * anchors have not come yet (parked until they do). b types a text;
 * c, having b's text, types into it and deletes some of it; a takes
 * c's changes first (parked: their anchors are b's) and b's after
 * (the parked ones integrated then). */
START_TEST(test_seq_paths_out_of_memory)
{
    tu_parked sc;
    merge_arg from_c, from_b;
    type_arg ta = { "d5", NULL };

    tu_parked_scene(&sc, a, b);
    from_c.x = sc.from_c;
    from_b.x = sc.from_b;
    ck_assert_int_eq(type_op(a, &ta), CRDT_OK);
    ta.before = text_of(a, "d5");
    ck_assert_int_gt(oom_each_call("typing", a, type_op, &ta, type_undone,
                                   NULL, 20000),
                     2);
    crdt_text_free(ta.before);
    ck_assert_int_eq(tu_seqs_sum(a, &from_c.sum), CRDT_OK);
    ck_assert_int_gt(oom_each_call("merge, anchors missing", a, merge_op,
                                   &from_c, seqs_same, NULL, 20000),
                     2);
    ck_assert_int_eq(tu_seqs_sum(a, &from_b.sum), CRDT_OK);
    ck_assert_int_gt(oom_each_call("merge, anchors come", a, merge_op,
                                   &from_b, seqs_same, NULL, 20000),
                     2);
    tu_parked_close(&sc, a);
}
END_TEST

Suite *
test_suite(void)
{
    Suite *s = suite_create("oom_seq");
    TCase *tc = tcase_create("oom_seq");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_concurrent_seq_merge_out_of_memory);
    tcase_add_test(tc, test_seq_paths_out_of_memory);
    suite_add_tcase(s, tc);
    return s;
}
