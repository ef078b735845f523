/*
 * test_groupcommit.c: many threads committing on one replica handle
 * share syncs, and a commit is durable when its call returns. The tests
 * that commit run twice: with a txn per commit (crdt_txn_begin and
 * crdt_txn_commit), and with crdt_txn_write() (changes sharing txns).
 *
 * This program defines fdatasync(): LMDB (a shared library) calls it
 * to sync the data file, so the definition here takes its place and
 * can count the syncs, slow them down, or fail one.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "crdt/crdt.h"
#include "internal.h"
#include "support/replica_util.h"
#include "support/support.h"

#define THREADS 16

static unsigned long syncs_started;   /* fdatasync calls begun */
static unsigned long sync_done_start; /* highest start index completed */
static int sync_fail_next;            /* the next call fails with EIO */
static int sync_delay_us;             /* each call takes at least this */

int
fdatasync(int fd)
{
    unsigned long me = __atomic_add_fetch(&syncs_started, 1, __ATOMIC_SEQ_CST);
    int rc;

    if (__atomic_exchange_n(&sync_fail_next, 0, __ATOMIC_SEQ_CST)) {
        errno = EIO;
        return -1;
    }
    rc = (int)syscall(SYS_fdatasync, fd);
    if (sync_delay_us > 0)
        usleep((useconds_t)sync_delay_us);
    if (rc == 0) {
        unsigned long cur = __atomic_load_n(&sync_done_start, __ATOMIC_SEQ_CST);
        while (cur < me && !__atomic_compare_exchange_n(
                               &sync_done_start, &cur, me, 0,
                               __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
            ;
    }
    return rc;
}

static char dir[256];
static crdt_replica *r;
static int shared_txn; /* commit with crdt_txn_write() */

static int
put_int(crdt_replica *rep, const char *coll, const char *doc, int64_t v)
{
    return shared_txn ? tu_write_int(rep, coll, doc, "v", v)
                      : tu_put_int(rep, coll, doc, "v", v);
}

static void
setup(void)
{
    crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
    char path[300];

    crdt_replica_close(tu_create(dir, sizeof dir, NULL));
    snprintf(path, sizeof path, "%s/r", dir);
    o.group_commit = 1;
    ck_assert_int_eq(crdt_replica_open(&r, path, &o), CRDT_OK);
}

static void
teardown(void)
{
    crdt_replica_close(r);
    test_rmtree(dir);
}

typedef struct {
    int id, n;
    int bad;      /* commits that returned before a sync begun after them */
    int failed;   /* commits that did not return CRDT_OK */
} worker;

static int
put_doc(crdt_replica *rep, int th, int i)
{
    char doc[32];

    snprintf(doc, sizeof doc, "t%02d-%05d", th, i);
    return put_int(rep, "c", doc, (int64_t)th * 100000 + i);
}

/* The kill test's docs: one collection per round. */
static int
put_round(crdt_replica *rep, int round, int th, int i)
{
    char coll[16], doc[32];

    snprintf(coll, sizeof coll, "r%d", round);
    snprintf(doc, sizeof doc, "t%02d-%05d", th, i);
    return put_int(rep, coll, doc, (int64_t)th * 100000 + i);
}

static void *
work(void *arg)
{
    worker *w = arg;

    for (int i = 0; i < w->n; i++) {
        /* a sync that covers this commit begins after its LMDB commit,
         * so after this point */
        unsigned long before =
            __atomic_load_n(&syncs_started, __ATOMIC_SEQ_CST);
        if (put_doc(r, w->id, i) != CRDT_OK) {
            w->failed++;
            continue;
        }
        if (__atomic_load_n(&sync_done_start, __ATOMIC_SEQ_CST) <= before)
            w->bad++;
    }
    return NULL;
}

/* 16 threads on one handle: every commit returns after a sync that
 * began after it, and the threads share syncs. */
START_TEST(test_threads_share_syncs)
{
    pthread_t th[THREADS];
    worker w[THREADS];
    uint64_t syncs0 = crdt__store_syncs(r), syncs;
    unsigned long calls0 = syncs_started;
    char buf[64], doc[32];
    int n = 20;

    shared_txn = _i;
    sync_delay_us = 1000; /* a slow disk: commits queue behind syncs */
    for (int i = 0; i < THREADS; i++) {
        w[i] = (worker){ i, n, 0, 0 };
        ck_assert_int_eq(pthread_create(&th[i], NULL, work, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(w[i].failed, 0);
        ck_assert_int_eq(w[i].bad, 0);
    }
    sync_delay_us = 0;
    syncs = crdt__store_syncs(r) - syncs0;
    /* one sync per commit is what the threads would cost alone */
    ck_assert_uint_gt(syncs, 0);
    ck_assert_uint_lt(syncs, (uint64_t)THREADS * (uint64_t)n / 2);
    ck_assert_uint_eq(syncs_started - calls0, syncs);
    for (int i = 0; i < THREADS; i++) {
        snprintf(doc, sizeof doc, "t%02d-%05d", i, n - 1);
        tu_field_str(buf, sizeof buf, r, "c", doc, "v");
        ck_assert_int_eq(atoll(buf), (long long)i * 100000 + n - 1);
    }
}
END_TEST

/* One thread alone: one sync per commit (not LMDB's two). */
START_TEST(test_one_writer_one_sync_per_commit)
{
    unsigned long calls0 = syncs_started;

    shared_txn = _i;
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(put_doc(r, 0, i), CRDT_OK);
    ck_assert_uint_eq(syncs_started - calls0, 10);
}
END_TEST

/* A failed sync fails the commits it covered; later ones succeed. */
START_TEST(test_failed_sync_fails_commit)
{
    char buf[64];

    shared_txn = _i;
    ck_assert_int_eq(put_doc(r, 0, 0), CRDT_OK);
    sync_fail_next = 1;
    ck_assert_int_eq(put_doc(r, 0, 1), CRDT_EIO);
    ck_assert_int_eq(sync_fail_next, 0);
    ck_assert_int_eq(put_doc(r, 0, 2), CRDT_OK);
    tu_field_str(buf, sizeof buf, r, "c", "t00-00002", "v");
    ck_assert_str_eq(buf, "2");
}
END_TEST

/* ---- kill -9 while 16 threads commit ---- */

static int report_fd = -1;

static double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct {
    crdt_replica *rep;
    int id, round;
} killer_arg;

static void *
commit_forever(void *arg)
{
    killer_arg *a = arg;

    for (int i = 0; i < 100000; i++) {
        int rec[2] = { a->id, i };
        if (put_round(a->rep, a->round, a->id, i) != CRDT_OK)
            _exit(3);
        /* returned: durable. Tell the parent (8 bytes: one write) */
        if (write(report_fd, rec, sizeof rec) != (ssize_t)sizeof rec)
            _exit(4);
    }
    return NULL;
}

static void
child_commits(const char *path, int round)
{
    crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
    crdt_replica *rep;
    pthread_t th[THREADS];

    o.group_commit = 1;
    killer_arg a[THREADS];

    int rc = crdt_replica_open(&rep, path, &o);
    if (rc != CRDT_OK) {
        fprintf(stderr, "child open %s: %s\n", path, crdt_strerror(rc));
        _exit(2);
    }
    for (int i = 0; i < THREADS; i++) {
        a[i] = (killer_arg){ rep, i, round };
        if (pthread_create(&th[i], NULL, commit_forever, &a[i]) != 0)
            _exit(5);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    _exit(0);
}

/* Without the option a commit is LMDB's own durable one: the library
 * never syncs for it. */
START_TEST(test_default_open_does_not_group)
{
    crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
    char path[300];
    crdt_replica *d;

    snprintf(path, sizeof path, "%s/r", dir);
    crdt_replica_close(r);
    ck_assert_int_eq(crdt_replica_open(&d, path, &o), CRDT_OK);
    r = d;
    for (int i = 0; i < 5; i++)
        tu_put_int(r, "c", "d", "f", i);
    ck_assert_uint_eq(crdt__store_syncs(r), 0);
}
END_TEST

START_TEST(test_kill_keeps_returned_commits)
{
    static int last[THREADS];
    char path[300], buf[64], doc[32], coll[16];

    shared_txn = _i;
    snprintf(path, sizeof path, "%s/r", dir);
    crdt_replica_close(r); /* no environment crosses the fork */
    r = NULL;
    for (int i = 0; i < THREADS; i++)
        last[i] = -1;
    srand((unsigned)time(NULL));
    for (int round = 0; round < 4; round++) {
        int fds[2], rec[2], status, got = 0;
        int want = 20 + rand() % 200;
        double t0 = now_s();
        pid_t pid;

        ck_assert_int_eq(pipe(fds), 0);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            close(fds[0]);
            report_fd = fds[1];
            child_commits(path, round);
        }
        close(fds[1]);
        /* let it commit a while (bounded), then kill it mid-commit */
        while (got < want && now_s() - t0 < 20 &&
               read(fds[0], rec, sizeof rec) == (ssize_t)sizeof rec) {
            ck_assert(rec[0] >= 0 && rec[0] < THREADS);
            ck_assert_int_eq(rec[1], last[rec[0]] + 1);
            last[rec[0]] = rec[1];
            got++;
        }
        usleep((useconds_t)(rand() % 3000));
        kill(pid, SIGKILL);
        /* what it reported before dying was returned before it died */
        while (read(fds[0], rec, sizeof rec) == (ssize_t)sizeof rec) {
            ck_assert(rec[0] >= 0 && rec[0] < THREADS);
            ck_assert_int_eq(rec[1], last[rec[0]] + 1);
            last[rec[0]] = rec[1];
        }
        close(fds[0]);
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert_msg(WIFSIGNALED(status), "child exited %d",
                      WIFEXITED(status) ? WEXITSTATUS(status) : -1);

        /* reopened: every commit reported as returned is there */
        ck_assert_int_eq(crdt_replica_open(&r, path, NULL), CRDT_OK);
        ck_assert_int_eq(crdt_replica_check_records(r, NULL, 0), CRDT_OK);
        snprintf(coll, sizeof coll, "r%d", round);
        for (int t = 0; t < THREADS; t++)
            for (int i = 0; i <= last[t]; i++) {
                snprintf(doc, sizeof doc, "t%02d-%05d", t, i);
                tu_field_str(buf, sizeof buf, r, coll, doc, "v");
                ck_assert_msg(atoll(buf) == (long long)t * 100000 + i,
                              "round %d: returned commit %s lost", round,
                              doc);
            }
        crdt_replica_close(r);
        r = NULL;
        /* the next round writes other documents */
        for (int i = 0; i < THREADS; i++)
            last[i] = -1;
    }
}
END_TEST

Suite *
test_suite(void)
{
    Suite *s = suite_create("groupcommit");
    TCase *tc = tcase_create("groupcommit");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_threads_share_syncs, 0, 2);
    tcase_add_loop_test(tc, test_one_writer_one_sync_per_commit, 0, 2);
    tcase_add_loop_test(tc, test_failed_sync_fails_commit, 0, 2);
    tcase_add_test(tc, test_default_open_does_not_group);
    tcase_add_loop_test(tc, test_kill_keeps_returned_commits, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}
