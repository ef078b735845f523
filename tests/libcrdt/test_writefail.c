/*
 * test_writefail.c: write errors under LMDB.
 *
 * This program defines pwrite() and writev(): LMDB (a shared library)
 * writes the data file through them, so the definitions here take their
 * place and can fail the next write of data.mdb's pages or of its meta
 * pages with EIO.
 *
 *  - a page's write fails: the commit fails with CRDT_EIO, none of it
 *    stays, and the next commit on the same handle succeeds;
 *  - the meta page's write fails: LMDB refuses every later txn of that
 *    environment (MDB_PANIC). The handle answers CRDT_EIO, never
 *    CRDT_ECORRUPT (the file is sound: a daemon must not report it
 *    damaged), and a new handle finds the data as of the commit before.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "crdt/crdt.h"
#include "support/data_file.h"
#include "support/replica_util.h"
#include "support/support.h"

enum { FAIL_NONE, FAIL_PAGE, FAIL_META };

static int fail_next; /* which write of data.mdb fails next (once) */
static int failed;    /* writes failed so far */

/* The meta pages are the file's first two pages. */
static int
should_fail(int fd, off_t off)
{
    int want = __atomic_load_n(&fail_next, __ATOMIC_SEQ_CST);
    long page = sysconf(_SC_PAGESIZE);

    if (want == FAIL_NONE || !test_is_data_file(fd))
        return 0;
    if ((want == FAIL_META) != (off >= 0 && off < 2 * page))
        return 0;
    __atomic_store_n(&fail_next, FAIL_NONE, __ATOMIC_SEQ_CST);
    failed++;
    return 1;
}

ssize_t
pwrite(int fd, const void *buf, size_t n, off_t off)
{
    if (should_fail(fd, off)) {
        errno = EIO;
        return -1;
    }
    return (ssize_t)syscall(SYS_pwrite64, fd, buf, n, off);
}

ssize_t
writev(int fd, const struct iovec *iov, int cnt)
{
    /* LMDB seeks, then writes a run of data pages: never the meta (the
     * position is asked only while a failure is armed) */
    if (__atomic_load_n(&fail_next, __ATOMIC_SEQ_CST) != FAIL_NONE &&
        should_fail(fd, lseek(fd, 0, SEEK_CUR))) {
        errno = EIO;
        return -1;
    }
    return (ssize_t)syscall(SYS_writev, fd, iov, cnt);
}

static char dir[256], path[300];
static crdt_replica *r;

static void
setup(void)
{
    crdt_replica_close(tu_create(dir, sizeof dir, NULL));
    snprintf(path, sizeof path, "%s/r", dir);
    ck_assert_int_eq(crdt_replica_open(&r, path, NULL), CRDT_OK);
    fail_next = FAIL_NONE;
    failed = 0;
}

static void
teardown(void)
{
    crdt_replica_close(r);
    r = NULL;
    test_rmtree(dir);
}

static void
reopen(void)
{
    char why[256];

    crdt_replica_close(r);
    ck_assert_int_eq(crdt_replica_open(&r, path, NULL), CRDT_OK);
    ck_assert_msg(crdt_replica_check_records(r, why, sizeof why) == CRDT_OK,
                  "%s", why);
}

static void
expect_field(const char *field, const char *want)
{
    char got[64];

    tu_field_str(got, sizeof got, r, "c", "d", field);
    ck_assert_str_eq(got, want);
}

START_TEST(test_a_failed_page_write_fails_the_commit_only)
{
    ck_assert_int_eq(tu_put_int(r, "c", "d", "a", 1), CRDT_OK);
    ck_assert_int_eq(crdt_replica_failed(r), 0);
    ck_assert_int_eq(crdt_replica_failed(NULL), 0);
    fail_next = FAIL_PAGE;
    ck_assert_int_eq(tu_put_int(r, "c", "d", "b", 2), CRDT_EIO);
    ck_assert_int_eq(failed, 1);
    ck_assert_int_eq(crdt_replica_failed(r), 0); /* only that commit */
    expect_field("a", "1");
    expect_field("b", "");
    ck_assert_int_eq(tu_put_int(r, "c", "d", "c", 3), CRDT_OK);
    reopen();
    expect_field("a", "1");
    expect_field("b", "");
    expect_field("c", "3");
}
END_TEST

START_TEST(test_a_failed_meta_write_is_an_io_error_not_damage)
{
    crdt_read *rd;
    crdt_txn *t;

    ck_assert_int_eq(tu_put_int(r, "c", "d", "a", 1), CRDT_OK);
    fail_next = FAIL_META;
    ck_assert_int_eq(tu_put_int(r, "c", "d", "b", 2), CRDT_EIO);
    ck_assert_int_eq(failed, 1);
    /* LMDB gives up on this environment: every txn is refused, as an
     * I/O error, not as a damaged file */
    ck_assert_int_eq(crdt_txn_begin(&t, r), CRDT_EIO);
    ck_assert_int_eq(crdt_read_begin(&rd, r), CRDT_EIO);
    ck_assert_int_eq(crdt_replica_failed(r), 1); /* what a daemon asks */
    ck_assert_int_eq(crdt_replica_damaged(r), 0);
    /* a new handle reads the file as of the commit before */
    reopen();
    ck_assert_int_eq(crdt_replica_failed(r), 0);
    expect_field("a", "1");
    expect_field("b", "");
    ck_assert_int_eq(tu_put_int(r, "c", "d", "c", 3), CRDT_OK);
    expect_field("c", "3");
}
END_TEST

Suite *
test_suite(void)
{
    Suite *s = suite_create("writefail");
    TCase *tc = tcase_create("writes");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_a_failed_page_write_fails_the_commit_only);
    tcase_add_test(tc, test_a_failed_meta_write_is_an_io_error_not_damage);
    suite_add_tcase(s, tc);
    return s;
}
