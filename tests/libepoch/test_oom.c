/*
 * test_oom.c: a migration through a lens (with a text made a string, and
 * without) while one allocation of our own code fails, for every
 * allocation in turn: the builder answers CRDT_ENOMEM and the replica is
 * as it was (same epoch, same state hash,
 * no upgrade marker left behind), or the migration succeeds. Only the
 * allocations of our objects fail (support/oom.h).
 *
 * Then what follows a migration, through support/oom.h's loop (each
 * failure CRDT_ENOMEM, the replica byte for byte as before): a stale
 * replica's reset into the new epoch (its records stored, the reset),
 * the merge that rebases its changes through the lens, the quarantine
 * listed and re-applied, and the parse of a lens of every step kind.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crdt/crdt.h"
#include "crdt/text.h"
#include "epoch/epoch.h"
#include "support/epoch_util.h"
#include "support/oom.h"
#include "support/replica_util.h"
#include "support/support.h"

static char da[256], db[256];
static crdt_replica *a, *b;

static void
setup(void)
{
    a = tu_create(da, sizeof da, NULL);
    ck_assert_int_eq(epoch_attach(a), CRDT_OK);
}

static void
teardown(void)
{
    oom_disarm();
    crdt_replica_close(a);
    test_rmtree(da);
    if (b != NULL) {
        crdt_replica_close(b);
        test_rmtree(db);
        b = NULL;
    }
}

static int
migrate(epoch_lens *l)
{
    epoch_builder *bl;
    epoch_info e;
    int rc;

    if ((rc = epoch_builder_new(&bl, a)) < 0)
        return rc;
    rc = epoch_builder_add_lens(bl, l);
    if (rc == CRDT_OK)
        rc = epoch_builder_commit(&e, bl);
    epoch_builder_free(bl);
    if (rc == CRDT_OK)
        epoch_info_clear(&e);
    return rc;
}

START_TEST(test_migration_out_of_memory_at_every_allocation)
{
    /* _i = 1: the text made a string too */
    static const char *const texts[] = {
        "collection c 1 -> 2\n"
        "rename v -> w\n"
        "add note string default \"\"\n"
        "convert w int -> string\n",
        "collection c 1 -> 2\n"
        "rename v -> w\n"
        "add note string default \"\"\n"
        "convert w int -> string\n"
        "convert t text -> string\n"
    };
    const char *text = texts[_i];
    char h0[65], h1[65], got[64];
    epoch_lens *l = NULL;
    epoch_info e0, e1;
    epoch_marker m;
    long n, failed = 0;
    int rc = CRDT_ENOMEM;

    for (int i = 0; i < 40; i++) {
        char doc[16];
        snprintf(doc, sizeof doc, "d%d", i);
        ck_assert_int_eq(tu_put_int(a, "c", doc, "v", i), CRDT_OK);
        if (i % 8 == 0) { /* a text the lens makes a string */
            crdt_txn *t;
            ck_assert_int_eq(crdt_txn_begin(&t, a), CRDT_OK);
            ck_assert_int_eq(crdt_txn_text_insert(t, "c", doc, "t", 0,
                                                  "hey", 3),
                             CRDT_OK);
            ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
        }
    }
    ck_assert_int_eq(epoch_lens_parse(&l, text, strlen(text), NULL),
                     CRDT_OK);
    tu_hash(h0, a);
    ck_assert_int_eq(epoch_current(&e0, a), CRDT_OK);
    for (n = 1; n < 20000; n++) {
        oom_arm(n);
        rc = migrate(l);
        int hit = oom_disarm();
        if (rc == CRDT_OK) {
            ck_assert_msg(!hit, "allocation %ld failed, migration said OK",
                          n);
            break;
        }
        failed++;
        ck_assert_msg(rc == CRDT_ENOMEM, "allocation %ld: %s", n,
                      crdt_strerror(rc));
        /* nothing happened: same epoch, same state, no marker */
        tu_hash(h1, a);
        ck_assert_str_eq(h1, h0);
        ck_assert_int_eq(epoch_current(&e1, a), CRDT_OK);
        ck_assert_mem_eq(e1.id, e0.id, 32);
        epoch_info_clear(&e1);
        ck_assert_int_eq(epoch_marker_get(&m, a), CRDT_ENOTFOUND);
    }
    ck_assert_int_eq(rc, CRDT_OK);
    ck_assert_int_gt(failed, 0);
    ck_assert_int_eq(epoch_current(&e1, a), CRDT_OK);
    ck_assert(memcmp(e1.id, e0.id, 32) != 0);
    epoch_info_clear(&e1);
    tu_field_str(got, sizeof got, a, "c", "d7", "w");
    ck_assert_str_eq(got, "\"7\"");
    if (_i) {
        tu_field_str(got, sizeof got, a, "c", "d8", "t");
        ck_assert_str_eq(got, "\"hey\"");
    }
    epoch_info_clear(&e0);
    epoch_lens_free(l);
}
END_TEST

/* ---- after a migration ---- */

#define LENS                                                                   \
    "collection c 1 -> 2\n"                                                    \
    "rename v -> title\n"                                                      \
    "convert age int -> string\n"                                              \
    "remove gone\n"                                                            \
    "add note string default \"-\"\n"                                         \
    "convert t text -> string\n"

#define CALLS_MAX 50000

/* b joins a's space; both hold @p n documents with a text; then b goes
 * offline and writes against version 1 (one write the lens drops), and
 * a migrates through LENS and writes on. */
static void
stale_pair(int n)
{
    unsigned char space[16];

    crdt_replica_space_id(a, space);
    b = tu_create(db, sizeof db, space);
    ck_assert_int_eq(epoch_attach(b), CRDT_OK);
    for (int i = 0; i < n; i++) {
        char doc[16];
        crdt_txn *t;

        snprintf(doc, sizeof doc, "d%d", i);
        ck_assert_int_eq(tu_put_int(a, "c", doc, "v", i), CRDT_OK);
        ck_assert_int_eq(tu_put_int(a, "c", doc, "age", i), CRDT_OK);
        ck_assert_int_eq(crdt_txn_begin(&t, a), CRDT_OK);
        ck_assert_int_eq(crdt_txn_text_insert(t, "c", doc, "t", 0, "hey", 3),
                         CRDT_OK);
        ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    }
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    ck_assert_int_eq(tu_put_int(b, "c", "d1", "v", 77), CRDT_OK);
    ck_assert_int_eq(tu_put_int(b, "c", "d2", "gone", 78), CRDT_OK);
    ck_assert_int_eq(tu_put_int(b, "c", "d9", "age", 79), CRDT_OK);
    tu_migrate(a, LENS, NULL);
    ck_assert_int_eq(tu_put_int(a, "c", "d3", "title", 80), CRDT_OK);
}

START_TEST(test_reset_out_of_memory_at_every_allocation)
{
    stale_pair(8);
    oom_each_call("store records", b, tu_store_records_answered, a, NULL, NULL,
                  CALLS_MAX);
    ck_assert_int_gt(oom_each_call("reset", b, tu_reset_answered, a, NULL,
                                   tu_at_epoch_of, CALLS_MAX),
                     2);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(a, b), CRDT_OK);
    tu_assert_converged(a, b);
}
END_TEST

static int
op_merge_from(crdt_replica *to, void *from)
{
    return tu_merge_from_answered(to, from, oom_real_malloc);
}

/* b's changes of the epoch before, merged by a: rebased through the
 * lens, the write to a removed field into the quarantine; then the
 * quarantine listed and re-applied. */
START_TEST(test_rebase_and_quarantine_out_of_memory)
{
    uint64_t q = 0;
    int listed = 0;

    stale_pair(6);
    ck_assert_int_gt(oom_each_call("rebasing merge", a, op_merge_from, b,
                                   NULL, NULL, CALLS_MAX),
                     2);
    ck_assert_int_eq(epoch_quarantine_count(&q, a), CRDT_OK);
    ck_assert_uint_eq(q, 1);
    oom_each_call("quarantine list", a, tu_quarantine_listed, &listed, NULL,
                  NULL, CALLS_MAX);
    ck_assert_int_eq(listed, 1);
    oom_each_call("quarantine apply", a, tu_quarantine_applied, NULL, NULL,
                  NULL, CALLS_MAX);
    ck_assert_int_eq(tu_reset_from(b, a), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(a, b), CRDT_OK);
    tu_assert_converged(a, b);
}
END_TEST

/* A migration interrupted after its marker txn, resumed: a failed
 * resume leaves the state and the epoch as they were, with the marker
 * or without it (a migration that fails cleanly drops its marker). */
START_TEST(test_resume_out_of_memory_at_every_allocation)
{
    char before[65], after[65];
    epoch_info e;
    epoch_marker m;
    long n;
    int rc = CRDT_ENOMEM;

    for (int i = 0; i < 6; i++) {
        char doc[16];
        snprintf(doc, sizeof doc, "d%d", i);
        ck_assert_int_eq(tu_put_int(a, "c", doc, "v", i), CRDT_OK);
    }
    tu_interrupted(a, LENS);
    tu_hash(before, a);
    for (n = 1; n < CALLS_MAX; n++) {
        if (epoch_marker_get(&m, a) == CRDT_OK)
            epoch_marker_clear(&m);
        else
            tu_interrupted(a, LENS); /* the last try dropped it */
        oom_arm(n);
        rc = epoch_migration_resume(NULL, a, NULL, NULL);
        int hit = oom_disarm();
        if (!hit) {
            ck_assert_int_eq(rc, CRDT_OK);
            break;
        }
        ck_assert_msg(rc == CRDT_ENOMEM, "allocation %ld: %s", n,
                      crdt_strerror(rc));
        tu_hash(after, a);
        ck_assert_str_eq(after, before);
        ck_assert_int_eq(epoch_current(&e, a), CRDT_OK);
        ck_assert_uint_eq(e.number, 0);
        epoch_info_clear(&e);
    }
    ck_assert_int_eq(rc, CRDT_OK);
    ck_assert_int_gt(n, 2);
    ck_assert_int_eq(epoch_current(&e, a), CRDT_OK);
    ck_assert_uint_eq(e.number, 1);
    epoch_info_clear(&e);
    ck_assert_int_eq(epoch_marker_get(&m, a), CRDT_ENOTFOUND);
}
END_TEST

/* A lens of every step kind and clause, with comments and blank lines,
 * parsed and inverted (what a rebase down the chain does). */
static int
op_parse(crdt_replica *r, void *arg)
{
    epoch_lens *l = NULL, *inv = NULL;
    int rc;

    (void)r;
    rc = epoch_lens_parse(&l, arg, strlen(arg), NULL);
    if (rc == CRDT_OK)
        rc = epoch_lens_invert(&inv, l);
    epoch_lens_free(inv);
    epoch_lens_free(l);
    return rc;
}

START_TEST(test_lens_parse_out_of_memory)
{
    static const char text[] =
        "# every kind of step\n"
        "collection contacts 1 -> 2\n"
        "rename name -> full_name\n"
        "\n"
        "add note string default \"\"\n"
        "add n int default 3\n"
        "remove legacy_flag  # gone\n"
        "convert age int -> string\n"
        "convert status string -> int map \"a\"=1, \"b\"=2 default 0 "
        "reverse-default \"?\"\n"
        "convert body text -> string\n"
        "collection other 4 -> 5\n"
        "rename a -> b\n";

    ck_assert_int_gt(oom_each_call("lens parse", a, op_parse, (void *)text,
                                   NULL, NULL, CALLS_MAX),
                     2);
}
END_TEST

Suite *
test_suite(void)
{
    Suite *s = suite_create("oom");
    TCase *tc = tcase_create("migration");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_migration_out_of_memory_at_every_allocation,
                        0, 2);
    suite_add_tcase(s, tc);

    tc = tcase_create("after");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_reset_out_of_memory_at_every_allocation);
    tcase_add_test(tc, test_rebase_and_quarantine_out_of_memory);
    tcase_add_test(tc, test_lens_parse_out_of_memory);
    tcase_add_test(tc, test_resume_out_of_memory_at_every_allocation);
    suite_add_tcase(s, tc);
    return s;
}
