/*
 * test_oom.c: a sync session between two replicas in memory while one
 * allocation of our own code fails, for every allocation in turn. A
 * session may then end with CRDT_ENOMEM (or its peer with the error it
 * was told), never with a crash, a short message or a damaged replica:
 * each replica's kept state hash equals the one recomputed from its
 * entries, and a sync without failures then converges. Only the
 * allocations of our own objects fail (support/oom.h). Five syncs: a
 * plain one, one with a peer of an older release, one whose heads are
 * compared by summary rounds (over 64 actors a side), one that resets a
 * replica behind a migration, and one that resets a copied replica whose
 * original's writes an epoch folded.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crdt/crdt.h"
#include "crdt/raw.h"
#include "crdtnet/session.h"
#include "epoch/epoch.h"
#include "support/epoch_util.h"
#include "support/oom.h"
#include "support/replica_util.h"
#include "support/support.h"

static char da[256], db[256];
static crdt_replica *a, *b;
static int b_is_old; /* b speaks as a release before PACKED messages */

static void
setup(void)
{
    tu_pair_open(&a, da, &b, db, sizeof da);
}

static void
teardown(void)
{
    oom_disarm();
    b_is_old = 0;
    tu_pair_close(a, da, b, db);
}

static void
write_some(crdt_replica *r, int from, int n)
{
    for (int i = from; i < from + n; i++) {
        crdt_value v = crdt_value_int(i), s = crdt_value_str("x", 1);
        crdt_txn *t;
        char doc[16];

        snprintf(doc, sizeof doc, "d%d", i % 5);
        ck_assert_int_eq(crdt_txn_begin(&t, r), CRDT_OK);
        ck_assert_int_eq(crdt_txn_put(t, "c", doc, "v", &v), CRDT_OK);
        ck_assert_int_eq(crdt_txn_incr(t, "c", doc, "n", 1), CRDT_OK);
        ck_assert_int_eq(crdt_txn_sadd(t, "c", doc, "s", &s), CRDT_OK);
        if (i % 4 == 3)
            ck_assert_int_eq(crdt_txn_srem(t, "c", doc, "s", &s), CRDT_OK);
        ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    }
}

/* Pump messages both ways until neither side has more; the copies use
 * the real allocator, so only the sessions meet the failure. */
static void
pump(int *ea, int *eb)
{
    crdtnet_session_options o = CRDTNET_SESSION_OPTIONS_INIT, ob;
    crdtnet_session *s[2] = { NULL, NULL };
    const unsigned char *msg;
    size_t len;

    o.batch_bytes = 512; /* several CHANGES messages, several merges */
    ob = o;
    if (b_is_old) { /* before PACKED and before summaries */
        ob.plain_changes = 1;
        ob.sync_proto = 3;
    }
    *ea = crdtnet_session_new(&s[0], a, &o);
    *eb = crdtnet_session_new(&s[1], b, &ob);
    for (int round = 0; round < 10000 && *ea == 0 && *eb == 0; round++) {
        int moved = 0;

        for (int i = 0; i < 2; i++)
            while (crdtnet_session_next_out(s[i], &msg, &len) == CRDT_OK) {
                unsigned char *copy = oom_real_malloc(len);
                memcpy(copy, msg, len);
                crdtnet_session_feed(s[1 - i], copy, len);
                free(copy);
                moved = 1;
            }
        if (!moved)
            break;
    }
    if (*ea == 0)
        *ea = crdtnet_session_error(s[0]);
    if (*eb == 0)
        *eb = crdtnet_session_error(s[1]);
    crdtnet_session_free(s[0]);
    crdtnet_session_free(s[1]);
}

static void
pump_clean(void)
{
    int ea, eb;

    pump(&ea, &eb);
    ck_assert_int_eq(ea, 0);
    ck_assert_int_eq(eb, 0);
}

static void
assert_hash_exact(crdt_replica *r)
{
    crdt_raw *t;
    unsigned char kept[32], again[32];

    ck_assert_int_eq(crdt_raw_begin(&t, r, 0), CRDT_OK);
    crdt_raw_state_hash(t, kept);
    ck_assert_int_eq(crdt_raw_state_rehash(t, again), CRDT_OK);
    crdt_raw_abort(t);
    ck_assert_mem_eq(kept, again, 32);
}

/* Sync a and b with each allocation failing in turn: each side ends
 * with a clean result, CRDT_ENOMEM, or CRDT_ECLOSED (the peer went),
 * its state hash exact; a clean run then converges them. */
static void
sync_at_every_allocation(void)
{
    char ha[65], hb[65];
    long n, failed = 0;
    int ea = CRDT_ENOMEM, eb = 0;

    for (n = 1; n < 50000; n++) {
        oom_arm(n);
        pump(&ea, &eb);
        int hit = oom_disarm();
        if (!hit) { /* no allocation left to fail: a clean run */
            ck_assert_int_eq(ea, 0);
            ck_assert_int_eq(eb, 0);
            break;
        }
        if (ea != 0 || eb != 0) {
            failed++;
            ck_assert_msg(ea == 0 || ea == CRDT_ENOMEM || ea == CRDT_ECLOSED,
                          "allocation %ld: a: %s", n, crdt_strerror(ea));
            ck_assert_msg(eb == 0 || eb == CRDT_ENOMEM || eb == CRDT_ECLOSED,
                          "allocation %ld: b: %s", n, crdt_strerror(eb));
        }
        assert_hash_exact(a);
        assert_hash_exact(b);
    }
    ck_assert_int_gt(failed, 0);
    pump(&ea, &eb);
    ck_assert_int_eq(ea, 0);
    ck_assert_int_eq(eb, 0);
    tu_assert_converged(a, b);
    tu_hash(ha, a);
    tu_hash(hb, b);
    ck_assert_str_eq(ha, hb);
}

START_TEST(test_sync_out_of_memory_at_every_allocation)
{
    write_some(a, 0, 40);
    write_some(b, 100, 10);
    sync_at_every_allocation();
}
END_TEST

/* b is a peer of an older release: plain change lists, the whole
 * version vector and heads in HELLO and FIN */
START_TEST(test_old_peer_sync_out_of_memory)
{
    b_is_old = 1;
    write_some(a, 0, 30);
    write_some(b, 100, 10);
    sync_at_every_allocation();
}
END_TEST

/* b, a copy behind an epoch that folded its original's writes
 * (tu_copy_behind_epoch()): the sync resets b into a's epoch, where its
 * own versions of those seqs must come back under a new actor or wait in
 * its quarantine (the reset's cross-epoch fork paths). */
START_TEST(test_copy_behind_epoch_sync_out_of_memory)
{
    tu_copy_behind_epoch(a, &b, db, sizeof db);
    sync_at_every_allocation();
    ck_assert_int_ge(tu_copy_writes_kept(b), 5);
}
END_TEST

/* @p n writes by @p r, each under an actor of its own (a new
 * incarnation before each) */
static void
write_as_new_actors(crdt_replica *r, int from, int n)
{
    for (int i = from; i < from + n; i++) {
        ck_assert_int_eq(crdt_replica_new_incarnation(r), CRDT_OK);
        write_some(r, i, 1);
    }
}

/* More than 64 heads on each side: the heads are compared by summary
 * rounds (docs/protocol.md, "Summaries"), not sent whole. */
START_TEST(test_summary_sync_out_of_memory)
{
    write_as_new_actors(a, 0, 70);
    pump_clean();
    write_as_new_actors(a, 100, 3);
    write_as_new_actors(b, 200, 2);
    sync_at_every_allocation();
}
END_TEST

/* b is behind a's migration, with writes of its own: the session resets
 * it to a's snapshot and rebases its writes. */
START_TEST(test_reset_sync_out_of_memory)
{
    write_some(a, 0, 20);
    pump_clean();
    write_some(b, 100, 3);
    tu_migrate(a, "collection c 1 -> 2\nrename v -> w\n", NULL);
    write_some(a, 200, 2);
    sync_at_every_allocation();
}
END_TEST

Suite *
test_suite(void)
{
    Suite *s = suite_create("oom");
    TCase *tc = tcase_create("sync");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_sync_out_of_memory_at_every_allocation);
    tcase_add_test(tc, test_summary_sync_out_of_memory);
    tcase_add_test(tc, test_old_peer_sync_out_of_memory);
    tcase_add_test(tc, test_reset_sync_out_of_memory);
    tcase_add_test(tc, test_copy_behind_epoch_sync_out_of_memory);
    suite_add_tcase(s, tc);
    return s;
}
