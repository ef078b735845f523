/*
 * test_oom.c: a migration through a lens (with a text made a string, and
 * without) while one allocation of our own code fails, for every
 * allocation in turn: the builder answers CRDT_ENOMEM and the replica is
 * as it was (same epoch, same state hash,
 * no upgrade marker left behind), or the migration succeeds. Only the
 * allocations of our objects fail (support/oom.h).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crdt/crdt.h"
#include "crdt/text.h"
#include "epoch/epoch.h"
#include "support/oom.h"
#include "support/replica_util.h"
#include "support/support.h"

static char da[256];
static crdt_replica *a;

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
    return s;
}
