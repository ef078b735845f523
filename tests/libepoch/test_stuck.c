/*
 * test_stuck.c: states a killed process leaves behind are recognised at
 * once, not after a timeout: the staging token of a reset whose process
 * died, and the LMDB reader slot of a reader that died, which a
 * long-lived writer clears by itself.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crdt/crdt.h"
#include "epoch/epoch.h"
#include "support/replica_util.h"
#include "support/support.h"

static char dir[256];

/* Run @p fn in a child with its own handle on the replica; the child
 * exits without cleaning up, as a killed process would. */
static pid_t
child_dies(void (*fn)(crdt_replica *))
{
    char sub[300];
    pid_t pid;
    int status;

    snprintf(sub, sizeof sub, "%s/r", dir);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        crdt_replica *c;
        if (crdt_replica_open(&c, sub, NULL) != CRDT_OK)
            _exit(2);
        fn(c);
        _exit(0); /* no abort, no close: its state stays behind */
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    return pid;
}

static void
begin_reset(crdt_replica *c)
{
    epoch_info e;
    epoch_reset *rs;

    if (epoch_current(&e, c) != CRDT_OK ||
        epoch_reset_begin(&rs, c, e.id, NULL) != CRDT_OK)
        _exit(3);
}

START_TEST(test_staging_of_a_dead_process_is_void_at_once)
{
    crdt_replica *r = tu_create(dir, sizeof dir, NULL);
    epoch_staging st;
    epoch_reset *rs;
    epoch_info e;
    pid_t pid;

    ck_assert_int_eq(tu_put_int(r, "c", "d", "f", 1), CRDT_OK);
    pid = child_dies(begin_reset);
    ck_assert_int_eq(epoch_staging_get(&st, r), CRDT_OK);
    ck_assert_int_eq(st.present, 1);
    ck_assert_uint_eq(st.pid, (uint64_t)pid);
    ck_assert_int_eq(st.owner_alive, 0);
    ck_assert_int_eq(st.active, 0);
    /* the next reset (a sync receiving a snapshot) is not busy */
    ck_assert_int_eq(epoch_current(&e, r), CRDT_OK);
    ck_assert_int_eq(epoch_reset_begin(&rs, r, e.id, NULL), CRDT_OK);
    ck_assert_int_eq(epoch_staging_get(&st, r), CRDT_OK);
    ck_assert_int_eq(st.owner_alive, 1); /* ours now */
    ck_assert_int_eq(st.active, 1);
    epoch_reset_abort(rs);
    ck_assert_int_eq(epoch_staging_get(&st, r), CRDT_OK);
    ck_assert_int_eq(st.present, 0);
    epoch_info_clear(&e);
    crdt_replica_close(r);
    test_rmtree(dir);
}
END_TEST

static void
begin_read(crdt_replica *c)
{
    crdt_read *rd;

    if (crdt_read_begin(&rd, c) != CRDT_OK)
        _exit(3);
}

START_TEST(test_a_writer_clears_dead_readers)
{
    crdt_replica *r = tu_create(dir, sizeof dir, NULL);
    crdt_env_stats es;

    ck_assert_int_eq(tu_put_int(r, "c", "d", "f", 1), CRDT_OK);
    child_dies(begin_read);
    ck_assert_int_eq(crdt_replica_env_stats(r, &es), CRDT_OK);
    ck_assert_uint_eq(es.readers_used, 1); /* the dead reader's slot */
    /* this handle stays open (a daemon): its next commit a second
     * later sweeps the slot, with nobody opening the replica again */
    usleep(1100 * 1000);
    ck_assert_int_eq(tu_put_int(r, "c", "d", "f", 2), CRDT_OK);
    ck_assert_int_eq(crdt_replica_env_stats(r, &es), CRDT_OK);
    ck_assert_uint_eq(es.readers_used, 0);
    crdt_replica_close(r);
    test_rmtree(dir);
}
END_TEST

Suite *
test_suite(void)
{
    Suite *s = suite_create("stuck");
    TCase *tc = tcase_create("stuck");

    tcase_add_test(tc, test_staging_of_a_dead_process_is_void_at_once);
    tcase_add_test(tc, test_a_writer_clears_dead_readers);
    suite_add_tcase(s, tc);
    return s;
}
