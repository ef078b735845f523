/*
 * test_map_resident.c: the resident-map budget (crdt_open_options
 * map_resident). After write commits the pages of LMDB's map that the
 * process keeps mapped stay within the budget, also across map growth,
 * and everything reads back the same after the pages were dropped.
 * The resident size is the Rss of the data file's mapping in
 * /proc/self/smaps, so these tests only run on Linux.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crdt/crdt.h"
#include "crdt/raw.h"
#include "support/replica_util.h"
#include "support/support.h"

#define MIB ((size_t)1024 * 1024)
#define BUDGET (2 * MIB)
#define SLACK (1 * MIB) /* statm counters are approximate */
#define COMMITS 120
#define PUTS 100         /* per commit */
#define VALUE_BYTES 1500 /* 120 x 100 x 1.5 KB: about 18 MB of state */

static char dir[256], sub[300];
static crdt_replica *r;

static void
open_replica(size_t map_size, size_t budget)
{
    crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;

    ck_assert_int_eq(test_tmpdir(dir, sizeof dir), 0);
    snprintf(sub, sizeof sub, "%s/r", dir);
    o.create = 1;
    o.no_sync = 1; /* the test is about the map, not durability */
    o.map_size = map_size;
    o.map_resident = budget;
    ck_assert_int_eq(crdt_replica_open(&r, sub, &o), CRDT_OK);
}

static void
teardown(void)
{
    crdt_replica_close(r);
    r = NULL;
    test_rmtree(dir);
}

/* Rss of this replica's data.mdb mapping, in bytes. The maps show the
 * canonical path, so match on the unique temp dir name. */
static size_t
map_rss(void)
{
    char line[1024], want[300];
    const char *base = strrchr(dir, '/');
    size_t total = 0;
    int in_map = 0, seen = 0;
    FILE *f = fopen("/proc/self/smaps", "r");

    ck_assert_ptr_nonnull(f);
    snprintf(want, sizeof want, "%s/r/data.mdb\n", base ? base : dir);
    while (fgets(line, sizeof line, f) != NULL) {
        unsigned long long kib, lo, hi;
        size_t n = strlen(line), w = strlen(want);
        if (sscanf(line, "%llx-%llx ", &lo, &hi) == 2) { /* a header */
            in_map = n >= w && strcmp(line + n - w, want) == 0;
            seen |= in_map;
        } else if (in_map && sscanf(line, "Rss: %llu kB", &kib) == 1) {
            total += (size_t)kib * 1024;
        }
    }
    fclose(f);
    ck_assert_msg(seen, "no mapping of %s in /proc/self/smaps", want);
    return total;
}

static void
value_of(char *buf, unsigned c, unsigned i)
{
    uint64_t s = (uint64_t)c * 1000003u + i;

    for (size_t k = 0; k < VALUE_BYTES; k++)
        buf[k] = (char)('a' + test_rand(&s) % 26);
}

/* Write COMMITS commits of PUTS fresh documents each; return the largest
 * map Rss seen right after a commit. */
static size_t
write_all(void)
{
    static char val[VALUE_BYTES];
    size_t worst = 0;

    for (unsigned c = 0; c < COMMITS; c++) {
        crdt_txn *t;
        char doc[32];
        size_t rss;

        ck_assert_int_eq(crdt_txn_begin(&t, r), CRDT_OK);
        for (unsigned i = 0; i < PUTS; i++) {
            crdt_value v = crdt_value_str(val, VALUE_BYTES);
            value_of(val, c, i);
            snprintf(doc, sizeof doc, "d%05u", c * PUTS + i);
            ck_assert_int_eq(crdt_txn_put(t, "c", doc, "v", &v), CRDT_OK);
        }
        ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
        rss = map_rss();
        if (rss > worst)
            worst = rss;
    }
    return worst;
}

/* Read every document back in one read txn and compare. */
static void
read_all(void)
{
    static char want[VALUE_BYTES];
    crdt_read *rd;
    crdt_field fl;
    char doc[32];

    ck_assert_int_eq(crdt_read_begin(&rd, r), CRDT_OK);
    for (unsigned c = 0; c < COMMITS; c++)
        for (unsigned i = 0; i < PUTS; i++) {
            snprintf(doc, sizeof doc, "d%05u", c * PUTS + i);
            ck_assert_int_eq(crdt_read_field(&fl, rd, "c", doc, "v"),
                             CRDT_OK);
            value_of(want, c, i);
            ck_assert_int_eq(fl.value.type, CRDT_VSTRING);
            ck_assert_uint_eq(fl.value.u.s.len, VALUE_BYTES);
            ck_assert(memcmp(fl.value.u.s.ptr, want, VALUE_BYTES) == 0);
        }
    crdt_read_end(rd);
}

static void
one_more_commit(void)
{
    ck_assert_int_eq(tu_put_int(r, "c", "extra", "n", 1), CRDT_OK);
}

START_TEST(test_resident_map_stays_within_budget)
{
    size_t worst;

    open_replica(0, BUDGET);
    worst = write_all();
    ck_assert_msg(worst <= BUDGET + SLACK,
                  "map Rss reached %zu KiB after a commit (budget %zu KiB)",
                  worst / 1024, BUDGET / 1024);
    read_all(); /* maps the whole state again, then... */
    one_more_commit();
    ck_assert_uint_le(map_rss(), BUDGET + SLACK); /* ...a commit drops it */
    read_all();
}
END_TEST

START_TEST(test_budget_holds_across_map_growth)
{
    size_t worst;

    /* a 1 MiB map doubles several times on the way: each growth
     * remaps, and the map must be found again at its new address */
    open_replica(1 * MIB, BUDGET);
    worst = write_all();
    ck_assert_msg(worst <= BUDGET + SLACK,
                  "map Rss reached %zu KiB after a commit (budget %zu KiB)",
                  worst / 1024, BUDGET / 1024);
    read_all();
}
END_TEST

START_TEST(test_without_budget_the_map_stays_resident)
{
    /* the control: the same work with dropping off keeps far more than
     * the budget mapped, so the tests above measure something */
    open_replica(0, SIZE_MAX);
    write_all();
    read_all();
    one_more_commit();
    ck_assert_uint_gt(map_rss(), 4 * BUDGET);
}
END_TEST

START_TEST(test_open_read_txn_pointer_survives_drops)
{
    crdt_raw *rt;
    const void *v;
    size_t vl;
    unsigned char copy[64];

    open_replica(256 * MIB, BUDGET); /* no growth while the txn is open */
    ck_assert_int_eq(crdt_raw_begin(&rt, r, 0), CRDT_OK);
    ck_assert_int_eq(crdt_raw_get(rt, CRDT_DB_META, "pk", 2, &v, &vl),
                     CRDT_OK);
    ck_assert_uint_eq(vl, 32);
    memcpy(copy, v, vl);
    write_all(); /* drops the map's pages several times */
    ck_assert(memcmp(v, copy, vl) == 0);
    crdt_raw_abort(rt);
    read_all();
}
END_TEST

START_TEST(test_reads_before_the_first_write_stay_mapped)
{
    crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;

    open_replica(0, BUDGET);
    write_all();
    crdt_replica_close(r);
    /* a new handle (as a new process's) reads everything, then writes
     * once: the first write commit takes the base and keeps what was
     * read (a sync reads its heads again right after that commit) */
    o.no_sync = 1;
    o.map_resident = BUDGET;
    ck_assert_int_eq(crdt_replica_open(&r, sub, &o), CRDT_OK);
    read_all();
    one_more_commit();
    ck_assert_uint_gt(map_rss(), 4 * BUDGET);
    /* from then on the budget holds as before */
    read_all();
    one_more_commit();
    ck_assert_uint_gt(map_rss(), 4 * BUDGET); /* nothing new since */
    crdt_replica_close(r);
    ck_assert_int_eq(crdt_replica_open(&r, sub, &o), CRDT_OK);
    one_more_commit(); /* the base, before anything was read */
    read_all();
    one_more_commit(); /* grown by far more than the budget: dropped */
    ck_assert_uint_le(map_rss(), BUDGET + SLACK);
    read_all();
}
END_TEST

/* Open descriptors of this process (its /proc/self/fd entries). */
static int
open_fds(void)
{
    char path[64];
    int n = 0;

    for (int fd = 0; fd < 4096; fd++) {
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        if (access(path, F_OK) == 0)
            n++;
    }
    return n;
}

/* The descriptor of this process open on its statm file, or -1. */
static int
statm_fd(void)
{
    char path[64], link[128], want[64];
    ssize_t n;

    snprintf(want, sizeof want, "/proc/%ld/statm", (long)getpid());
    for (int fd = 0; fd < 4096; fd++) {
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        n = readlink(path, link, sizeof link - 1);
        if (n <= 0)
            continue;
        link[n] = '\0';
        if (strcmp(link, want) == 0)
            return fd;
    }
    return -1;
}

START_TEST(test_the_kept_statm_descriptor_closes_with_the_handle)
{
    crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
    int before, fd;

    /* the budget's check keeps /proc/self/statm open per handle: a
     * handle opened, written and closed many times leaks none */
    open_replica(0, BUDGET);
    one_more_commit();
    crdt_replica_close(r);
    r = NULL;
    before = open_fds();
    o.no_sync = 1;
    o.map_resident = BUDGET;
    for (int i = 0; i < 50; i++) {
        ck_assert_int_eq(crdt_replica_open(&r, sub, &o), CRDT_OK);
        one_more_commit();
        crdt_replica_close(r);
        r = NULL;
    }
    ck_assert_int_eq(open_fds(), before);

    /* closed behind the handle's back: the next check fails quietly,
     * the one after opens it again */
    ck_assert_int_eq(crdt_replica_open(&r, sub, &o), CRDT_OK);
    one_more_commit();
    fd = statm_fd();
    ck_assert_int_ge(fd, 0);
    close(fd);
    one_more_commit();
    ck_assert_int_eq(statm_fd(), -1);
    one_more_commit();
    ck_assert_int_ge(statm_fd(), 0);
    crdt_replica_close(r);
    r = NULL;
    ck_assert_int_eq(statm_fd(), -1);

    /* a read-only handle never commits: it keeps none */
    o.read_only = 1;
    ck_assert_int_eq(crdt_replica_open(&r, sub, &o), CRDT_OK);
    ck_assert_int_eq(statm_fd(), -1);
}
END_TEST

Suite *
test_suite(void)
{
    Suite *s = suite_create("map_resident");
    TCase *tc = tcase_create("budget");

    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 120);
#ifdef __linux__
    tcase_add_test(tc, test_resident_map_stays_within_budget);
    tcase_add_test(tc, test_budget_holds_across_map_growth);
    tcase_add_test(tc, test_without_budget_the_map_stays_resident);
    tcase_add_test(tc, test_open_read_txn_pointer_survives_drops);
    tcase_add_test(tc, test_reads_before_the_first_write_stay_mapped);
    tcase_add_test(tc, test_the_kept_statm_descriptor_closes_with_the_handle);
#endif
    suite_add_tcase(s, tc);
    return s;
}
