/*
 * test_mdb_faults.c: an LMDB call failing at every point of a sync
 * session, on either side: two replicas that each hold changes the other
 * lacks, and a replica behind an epoch that is reset into it and has its
 * own changes rebased, and a copied replica behind an epoch that folded
 * its original's writes. Each run starts from byte copies of the same two
 * replicas. A run that reached the failed call ends with CRDT_EIO on the
 * side that met it (the other side is told by an ERROR, or simply sees
 * the session end), with no call on the failed txn but its abort; what
 * either side had committed before stays, and a second session without
 * faults brings both to one state: a failure loses nothing and leaves
 * nothing half done. (A session that ends well and converged although a
 * call failed met it in a cleanup that may fail: dropping a finished
 * reset's staging token, which a later reset finds stale.) A full map
 * at each write in turn: the side that meets it grows the map and does
 * the work again, and the session ends as a clean one does; so does a
 * map another process grew, met at each txn's begin in turn.
 */
#include <check.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crdt/crdt.h"
#include "crdtnet/session.h"
#include "epoch/epoch.h"
#include "support/epoch_util.h"
#include "support/mdbfault.h"
#include "support/replica_util.h"
#include "support/support.h"

#define CALLS_MAX 20000 /* far above what one session here makes */

TU_PAIR_FIXTURE(tu_pair_open)

/* One session each way, wired in memory; errors answered, not
 * asserted. */
static void
session(crdt_replica *x, crdt_replica *y, int *ex, int *ey)
{
    crdtnet_session_options o = CRDTNET_SESSION_OPTIONS_INIT;
    crdtnet_session *sx = NULL, *sy = NULL;

    o.batch_bytes = 600; /* several messages each way */
    *ex = crdtnet_session_new(&sx, x, &o);
    *ey = crdtnet_session_new(&sy, y, &o);
    if (*ex == CRDT_OK && *ey == CRDT_OK) {
        for (int round = 0; round < 100000; round++) {
            int moved = tu_pump(sx, sy);
            moved |= tu_pump(sy, sx);
            if (!moved)
                break;
        }
        *ex = crdtnet_session_error(sx);
        *ey = crdtnet_session_error(sy);
    }
    crdtnet_session_free(sx);
    crdtnet_session_free(sy);
}

/* Same state and epoch (tu_assert_converged() without asserting). */
static int
converged(crdt_replica *x, crdt_replica *y)
{
    char hx[65], hy[65];
    epoch_info cx, cy;
    int same;

    tu_hash(hx, x);
    tu_hash(hy, y);
    ck_assert_int_eq(epoch_current(&cx, x), CRDT_OK);
    ck_assert_int_eq(epoch_current(&cy, y), CRDT_OK);
    same = strcmp(hx, hy) == 0 && memcmp(cx.id, cy.id, 32) == 0;
    epoch_info_clear(&cx);
    epoch_info_clear(&cy);
    return same;
}

/* Fail each LMDB call of a session between copies of a and b in turn
 * (both closed by then). */
static void
each_call(const char *what)
{
    long n;
    int done = 0;

    for (n = 1; n < CALLS_MAX && !done; n++) {
        char dx[256], dy[256];
        crdt_replica *x, *y;
        int ex, ey, hit;

        tu_pair_copy(da, db, dx, dy, &x, &y);
        mdbfault_arm(n);
        session(x, y, &ex, &ey);
        hit = mdbfault_disarm();
        if (!hit) {
            MDBFAULT_EXPECT(ex == CRDT_OK && ey == CRDT_OK, "%s: no failed "
                            "call, yet %s / %s", what, crdt_strerror(ex),
                            crdt_strerror(ey));
            done = 1;
        } else if (ex != CRDT_OK || ey != CRDT_OK || !converged(x, y)) {
            /* (both OK and converged: the call was a cleanup's that may
             * fail, as dropping a finished reset's staging token) */
            MDBFAULT_EXPECT(ex == CRDT_EIO || ey == CRDT_EIO, "%s: LMDB "
                            "call %ld (from %s) failed, the sides said %s / "
                            "%s", what, n,
                            mdbfault_where(mdbfault_failed_site()),
                            crdt_strerror(ex), crdt_strerror(ey));
            MDBFAULT_EXPECT(mdbfault_misuses() == 0, "%s: LMDB call %ld "
                            "(from %s) failed, then %ld more calls on its "
                            "txn (last from %s)", what, n,
                            mdbfault_where(mdbfault_failed_site()),
                            mdbfault_misuses(),
                            mdbfault_where(mdbfault_misuse_site()));
        }
        /* nothing lost, nothing half done: a clean session converges */
        session(x, y, &ex, &ey);
        MDBFAULT_EXPECT(ex == CRDT_OK && ey == CRDT_OK, "%s: after call "
                        "%ld failed, the next session said %s / %s", what,
                        n, crdt_strerror(ex), crdt_strerror(ey));
        if (ex == CRDT_OK && ey == CRDT_OK)
            tu_assert_converged(x, y);
        tu_pair_close(x, dx, y, dy);
    }
    ck_assert_int_eq(done, 1);
    mdbfault_reach(what, n);
}

/* @p code at each call of kind @p which (mdbfault_arm_code()) of a
 * session between copies of a and b, in turn: MDB_MAP_FULL at each
 * write (the side that meets it grows the map and does the work again),
 * MDB_MAP_RESIZED at each txn's begin (it adopts the size another
 * process gave the map). The session ends as one that never met it
 * does. */
static void
each_absorbed(const char *what, int code, int which)
{
    long n;
    int done = 0;

    for (n = 1; n < CALLS_MAX && !done; n++) {
        char dx[256], dy[256];
        crdt_replica *x, *y;
        int ex, ey;

        tu_pair_copy(da, db, dx, dy, &x, &y);
        mdbfault_arm_code(n, code, which);
        session(x, y, &ex, &ey);
        done = !mdbfault_disarm();
        MDBFAULT_EXPECT(ex == CRDT_OK && ey == CRDT_OK, "%s: %s at call %ld "
                        "(from %s), the sides said %s / %s", what,
                        mdb_strerror(code), n,
                        mdbfault_where(mdbfault_failed_site()),
                        crdt_strerror(ex), crdt_strerror(ey));
        MDBFAULT_EXPECT(mdbfault_misuses() == 0, "%s: %s at call %ld, then "
                        "%ld more calls on its txn", what, mdb_strerror(code),
                        n, mdbfault_misuses());
        if (ex == CRDT_OK && ey == CRDT_OK)
            tu_assert_converged(x, y);
        tu_pair_close(x, dx, y, dy);
    }
    ck_assert_int_eq(done, 1);
    mdbfault_reach(what, n);
}

/* The pair again, for the fixture's teardown. */
static void
reopen(void)
{
    a = tu_open_dir(da);
    b = tu_open_dir(db);
}

START_TEST(test_session_fails_at_every_lmdb_call)
{
    for (int i = 0; i < 12; i++) {
        char doc[16];
        snprintf(doc, sizeof doc, "d%d", i);
        ck_assert_int_eq(tu_put_int(a, "c", doc, "x", i), CRDT_OK);
        ck_assert_int_eq(tu_put_int(b, "c", doc, "y", i), CRDT_OK);
    }
    crdt_replica_close(a);
    crdt_replica_close(b);
    each_call("session");
    each_absorbed("session, map full", MDB_MAP_FULL, MDBFAULT_WRITES);
    each_absorbed("session, map resized", MDB_MAP_RESIZED, MDBFAULT_BEGINS);
    reopen(); /* for the fixture's teardown */
}
END_TEST

START_TEST(test_reset_session_fails_at_every_lmdb_call)
{
    tu_sync_result r;

    ck_assert_int_eq(tu_put_int(a, "people", "p1", "name", 1), CRDT_OK);
    r = tu_sessions_run(a, b, NULL);
    ck_assert_int_eq(r.ex, CRDT_OK);
    /* b writes against version 1 while a migrates */
    ck_assert_int_eq(tu_put_int(b, "people", "p2", "name", 2), CRDT_OK);
    ck_assert_int_eq(tu_put_int(b, "people", "p1", "name", 3), CRDT_OK);
    tu_migrate(a, "collection people 1 -> 2\nrename name -> full_name\n",
               NULL);
    ck_assert_int_eq(tu_put_int(a, "people", "p3", "full_name", 4),
                     CRDT_OK);
    crdt_replica_close(a);
    crdt_replica_close(b);
    each_call("reset session");
    each_absorbed("reset session, map full", MDB_MAP_FULL, MDBFAULT_WRITES);
    each_absorbed("reset session, map resized", MDB_MAP_RESIZED,
                  MDBFAULT_BEGINS);
    reopen();
}
END_TEST

/* b, a copy behind an epoch that folded its original's writes
 * (tu_copy_behind_epoch()), reset into it by the session */
START_TEST(test_copy_reset_session_fails_at_every_lmdb_call)
{
    tu_copy_behind_epoch(a, &b, db, sizeof db);
    crdt_replica_close(a);
    crdt_replica_close(b);
    each_call("copy's reset session");
    reopen();
    ck_assert_int_ge(tu_copy_writes_kept(b), 5); /* untouched: the copies
                                                   were the loop's */
}
END_TEST

Suite *
test_suite(void)
{
    Suite *s = suite_create("net_mdb_faults");
    TCase *tc = tcase_create("net_mdb_faults");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 900);
    tcase_add_test(tc, test_session_fails_at_every_lmdb_call);
    tcase_add_test(tc, test_reset_session_fails_at_every_lmdb_call);
    tcase_add_test(tc, test_copy_reset_session_fails_at_every_lmdb_call);
    suite_add_tcase(s, tc);
    return s;
}
