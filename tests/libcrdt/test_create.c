/*
 * test_create.c: creating a replica commits without a sync of its own
 * (docs/storage.md 1.1). The first durable commit after it syncs it; a
 * close with none since syncs it. What a system crash can leave of an
 * unsynced creation (an empty data file, LMDB's initial meta pages, meta
 * pages of zeroes, the creation's meta page over pages that never
 * reached the disk) opens as a directory with no replica: CRDT_ENOTFOUND,
 * and a create replaces it. A complete replica, a later commit over
 * lost pages, a creation with a damaged (not zeroed) page and damaged
 * meta pages are not such leftovers: they are refused as before.
 */
#define _GNU_SOURCE
#include <check.h>
#include <fcntl.h>
#include <lmdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crdt/crdt.h"
#include "internal.h"
#include "support/replica_util.h"
#include "support/support.h"

static char dir[256], path[300], data[320];

/* LMDB (a shared library) syncs the data file with fdatasync(): the
 * definition here takes its place and counts the calls. */
static unsigned long syncs;

int
fdatasync(int fd)
{
    __atomic_add_fetch(&syncs, 1, __ATOMIC_SEQ_CST);
    return (int)syscall(SYS_fdatasync, fd);
}

static crdt_replica *
create_at(void)
{
    crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
    crdt_replica *r = NULL;

    o.create = 1;
    ck_assert_int_eq(crdt_replica_open(&r, path, &o), CRDT_OK);
    return r;
}

static int
open_plain(void)
{
    crdt_replica *r = NULL;
    int rc = crdt_replica_open(&r, path, NULL);

    crdt_replica_close(r);
    return rc;
}

static void
put_one(crdt_replica *r)
{
    crdt_txn *t;
    crdt_value v = crdt_value_int(7);

    ck_assert_int_eq(crdt_txn_begin(&t, r), CRDT_OK);
    ck_assert_int_eq(crdt_txn_put(t, "c", "d", "f", &v), CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
}

static void
setup(void)
{
    ck_assert_int_eq(test_tmpdir(dir, sizeof dir), 0);
    snprintf(path, sizeof path, "%s/r", dir);
    snprintf(data, sizeof data, "%s/data.mdb", path);
}

static void
teardown(void)
{
    test_rmtree(dir);
}

/* A create on a leftover creates afresh, and the replica works. */
static void
assert_replaced_by_create(void)
{
    crdt_replica *r;

    ck_assert_int_eq(open_plain(), CRDT_ENOTFOUND);
    r = create_at();
    put_one(r);
    crdt_replica_close(r);
    ck_assert_int_eq(open_plain(), CRDT_OK);
}

static void
zero_range(off_t from, off_t to)
{
    int fd = open(data, O_RDWR);
    char z[4096] = { 0 };

    ck_assert_int_ge(fd, 0);
    for (off_t o = from; o < to; o += (off_t)sizeof z)
        ck_assert_int_eq(pwrite(fd, z, sizeof z, o), (ssize_t)sizeof z);
    close(fd);
}

static off_t
data_size(void)
{
    struct stat st;

    ck_assert_int_eq(stat(data, &st), 0);
    return st.st_size;
}

START_TEST(test_creation_syncs_with_the_first_durable_commit)
{
    crdt_replica *r;
    unsigned long before = syncs;

    r = create_at();
    ck_assert_uint_eq(syncs, before); /* no sync of its own */
    ck_assert_int_eq(r->create_unsynced, 1);
    put_one(r); /* a durable commit: the whole file synced */
    ck_assert_uint_gt(syncs, before);
    ck_assert_int_eq(r->create_unsynced, 0);
    before = syncs;
    crdt_replica_close(r);
    ck_assert_uint_eq(syncs, before); /* nothing left to sync */
}
END_TEST

START_TEST(test_close_syncs_a_creation_nothing_synced)
{
    crdt_replica *r;
    unsigned long before = syncs;

    r = create_at();
    ck_assert_uint_eq(syncs, before);
    crdt_replica_close(r);
    ck_assert_uint_eq(syncs, before + 1);
    ck_assert_int_eq(open_plain(), CRDT_OK);
}
END_TEST

START_TEST(test_no_sync_open_defers_nothing)
{
    crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
    crdt_replica *r = NULL;

    o.create = 1;
    o.no_sync = 1;
    ck_assert_int_eq(crdt_replica_open(&r, path, &o), CRDT_OK);
    ck_assert_int_eq(r->create_unsynced, 0);
    crdt_replica_close(r);
}
END_TEST

START_TEST(test_complete_creation_is_a_replica)
{
    crdt_replica *r = create_at();

    crdt_replica_close(r); /* synced by the close: txn 1 only */
    ck_assert_int_eq(crdt__store_unborn(path), 0);
    ck_assert_int_eq(open_plain(), CRDT_OK);
    {
        crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
        o.create = 1;
        ck_assert_int_eq(crdt_replica_open(&r, path, &o), CRDT_EEXISTS);
    }
}
END_TEST

START_TEST(test_empty_data_file_is_no_replica)
{
    ck_assert_int_eq(mkdir(path, 0700), 0);
    close(open(data, O_CREAT | O_WRONLY, 0600));
    ck_assert_int_eq(crdt__store_unborn(path), 1);
    assert_replaced_by_create();
}
END_TEST

START_TEST(test_initial_meta_pages_only_are_no_replica)
{
    MDB_env *env;

    /* what LMDB writes when it opens a new file, with nothing committed */
    ck_assert_int_eq(mkdir(path, 0700), 0);
    ck_assert_int_eq(mdb_env_create(&env), 0);
    ck_assert_int_eq(mdb_env_open(env, path, 0, 0600), 0);
    mdb_env_close(env);
    ck_assert_int_ge(data_size(), 8192);
    ck_assert_int_eq(crdt__store_unborn(path), 1);
    assert_replaced_by_create();
}
END_TEST

START_TEST(test_zeroed_meta_pages_are_no_replica)
{
    crdt_replica *r = create_at();

    crdt_replica_close(r);
    zero_range(0, 8192); /* the creation's pages on disk, no meta */
    ck_assert_int_eq(crdt__store_unborn(path), 1);
    assert_replaced_by_create();
}
END_TEST

START_TEST(test_creation_meta_over_lost_pages_is_no_replica)
{
    crdt_replica *r = create_at();
    off_t size;

    crdt_replica_close(r);
    size = data_size();
    ck_assert_int_gt(size, 8192);
    zero_range(8192, size); /* its meta page reached the disk, not its pages */
    ck_assert_int_eq(crdt__store_unborn(path), 1);
    assert_replaced_by_create();
    /* and shorter than the meta page says */
    r = NULL;
    test_rmtree(path);
    r = create_at();
    crdt_replica_close(r);
    ck_assert_int_eq(truncate(data, 8192), 0);
    ck_assert_int_eq(crdt__store_unborn(path), 1);
    assert_replaced_by_create();
}
END_TEST

START_TEST(test_later_commit_over_lost_pages_stays_damaged)
{
    crdt_replica *r = create_at();
    off_t size;

    put_one(r);
    crdt_replica_close(r);
    size = data_size();
    zero_range(8192, size);
    ck_assert_int_eq(crdt__store_unborn(path), 0);
    ck_assert_int_eq(open_plain(), CRDT_ECORRUPT);
    {
        crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
        o.create = 1;
        ck_assert_int_eq(crdt_replica_open(&r, path, &o), CRDT_EEXISTS);
    }
    ck_assert_int_eq(data_size(), size); /* nothing removed */
}
END_TEST

START_TEST(test_creation_with_a_damaged_page_stays_damaged)
{
    crdt_replica *r = create_at();
    int fd;
    char junk[4096];

    crdt_replica_close(r);
    memset(junk, 0x5a, sizeof junk); /* damage, not a write that was lost */
    fd = open(data, O_RDWR);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pwrite(fd, junk, sizeof junk, 2 * 4096),
                     (ssize_t)sizeof junk);
    close(fd);
    ck_assert_int_eq(crdt__store_unborn(path), 0);
    ck_assert_int_eq(open_plain(), CRDT_ECORRUPT);
}
END_TEST

START_TEST(test_damaged_meta_pages_stay_damaged)
{
    crdt_replica *r = create_at();
    int fd;
    char junk[8192];

    crdt_replica_close(r);
    memset(junk, 0x5a, sizeof junk);
    fd = open(data, O_RDWR);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pwrite(fd, junk, sizeof junk, 0), (ssize_t)sizeof junk);
    close(fd);
    ck_assert_int_eq(crdt__store_unborn(path), 0);
    ck_assert_int_eq(open_plain(), CRDT_ECORRUPT);
}
END_TEST

START_TEST(test_leftover_held_open_elsewhere_is_not_removed)
{
    MDB_env *env;
    int to_child[2], to_parent[2];
    char c;
    pid_t pid;

    ck_assert_int_eq(mkdir(path, 0700), 0);
    ck_assert_int_eq(pipe(to_child), 0);
    ck_assert_int_eq(pipe(to_parent), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) { /* another process in the middle of a creation */
        if (mdb_env_create(&env) != 0 || mdb_env_open(env, path, 0, 0600))
            _exit(1);
        if (write(to_parent[1], "o", 1) != 1 || read(to_child[0], &c, 1) < 0)
            _exit(1);
        mdb_env_close(env);
        _exit(0);
    }
    ck_assert_int_eq(read(to_parent[0], &c, 1), 1);
    {
        crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
        crdt_replica *r = NULL;
        o.create = 1;
        ck_assert_int_eq(crdt_replica_open(&r, path, &o), CRDT_EBUSY);
    }
    ck_assert_int_eq(access(data, F_OK), 0);
    ck_assert_int_eq(write(to_child[1], "x", 1), 1);
    {
        int st;
        ck_assert_int_eq(waitpid(pid, &st, 0), pid);
        ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    close(to_child[0]);
    close(to_child[1]);
    close(to_parent[0]);
    close(to_parent[1]);
    assert_replaced_by_create(); /* once it is gone */
}
END_TEST

Suite *
test_suite(void)
{
    Suite *s = suite_create("create");
    TCase *tc = tcase_create("create");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_creation_syncs_with_the_first_durable_commit);
    tcase_add_test(tc, test_close_syncs_a_creation_nothing_synced);
    tcase_add_test(tc, test_no_sync_open_defers_nothing);
    tcase_add_test(tc, test_complete_creation_is_a_replica);
    tcase_add_test(tc, test_empty_data_file_is_no_replica);
    tcase_add_test(tc, test_initial_meta_pages_only_are_no_replica);
    tcase_add_test(tc, test_zeroed_meta_pages_are_no_replica);
    tcase_add_test(tc, test_creation_meta_over_lost_pages_is_no_replica);
    tcase_add_test(tc, test_later_commit_over_lost_pages_stays_damaged);
    tcase_add_test(tc, test_creation_with_a_damaged_page_stays_damaged);
    tcase_add_test(tc, test_damaged_meta_pages_stay_damaged);
    tcase_add_test(tc, test_leftover_held_open_elsewhere_is_not_removed);
    suite_add_tcase(s, tc);
    return s;
}
