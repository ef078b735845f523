/*
 * test_backup.c: online backup while a writer keeps writing, restore,
 * refusals, and the new incarnation of a restored replica.
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crdt/crdt.h"
#include "crdt/raw.h"
#include "support/replica_util.h"
#include "support/support.h"

static char dir[256];
static crdt_replica *r;
static volatile int stop;

static void
setup(void)
{
    r = tu_create(dir, sizeof dir, NULL);
}

static void
teardown(void)
{
    crdt_replica_close(r);
    test_rmtree(dir);
}

static void *
writer(void *arg)
{
    (void)arg;
    for (int i = 0; !__atomic_load_n(&stop, __ATOMIC_RELAXED) && i < 100000;
         i++) {
        char doc[16];
        snprintf(doc, sizeof doc, "d%d", i % 500);
        if (tu_put_int(r, "c", doc, "v", i) != CRDT_OK)
            break;
    }
    return NULL;
}

START_TEST(test_backup_during_writes_restores_exactly)
{
    char file[300], restored[300], h[65];
    crdt_backup_info info, back;
    crdt_replica *x;
    pthread_t th;
    crdt_read *rd;
    crdt_stats st;
    crdt_actor a1, a2;

    for (int i = 0; i < 200; i++)
        ck_assert_int_eq(tu_put_int(r, "c", "seed", "v", i), CRDT_OK);
    snprintf(file, sizeof file, "%s/backup.strata", dir);
    snprintf(restored, sizeof restored, "%s/restored", dir);
    __atomic_store_n(&stop, 0, __ATOMIC_RELAXED);
    ck_assert_int_eq(pthread_create(&th, NULL, writer, NULL), 0);
    ck_assert_int_eq(crdt_backup(&info, r, file), CRDT_OK);
    __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
    pthread_join(th, NULL);
    ck_assert_uint_ge(info.ops_total, 200);

    ck_assert_int_eq(crdt_backup_check(&back, file), CRDT_OK);
    ck_assert_mem_eq(back.state_hash, info.state_hash, 32);
    ck_assert_int_eq(crdt_restore(&back, file, restored), CRDT_OK);
    ck_assert_int_eq(crdt_replica_open(&x, restored, NULL), CRDT_OK);
    ck_assert_int_eq(crdt_read_begin(&rd, x), CRDT_OK);
    ck_assert_int_eq(crdt_read_stats(&st, rd), CRDT_OK);
    crdt_read_end(rd);
    ck_assert_mem_eq(st.state_hash, info.state_hash, 32);
    /* a new incarnation: same key, new actor */
    a1 = crdt_replica_actor(r);
    a2 = crdt_replica_actor(x);
    ck_assert(memcmp(a1.b, a2.b, 8) != 0);
    ck_assert_int_eq(tu_put_int(x, "c", "after", "v", 1), CRDT_OK);
    tu_hash(h, x);
    crdt_replica_close(x);
    /* restore never overwrites */
    ck_assert_int_eq(crdt_restore(NULL, file, restored), CRDT_EEXISTS);
}
END_TEST

START_TEST(test_corrupt_backup_is_refused)
{
    char file[300], restored[300];
    FILE *f;
    long size;
    int c;

    ck_assert_int_eq(tu_put_int(r, "c", "d", "v", 1), CRDT_OK);
    snprintf(file, sizeof file, "%s/b.strata", dir);
    snprintf(restored, sizeof restored, "%s/out", dir);
    ck_assert_int_eq(crdt_backup(NULL, r, file), CRDT_OK);
    f = fopen(file, "r+b");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    size = ftell(f);
    /* flip bits of the middle byte (writing a constant left the file as
     * it was whenever that byte already held it: random keys make it
     * one run in 256) */
    fseek(f, size / 2, SEEK_SET);
    c = fgetc(f);
    ck_assert_int_ne(c, EOF);
    fseek(f, size / 2, SEEK_SET);
    fputc(c ^ 0x5a, f);
    fclose(f);
    ck_assert_int_eq(crdt_backup_check(NULL, file), CRDT_ECORRUPT);
    ck_assert_int_eq(crdt_restore(NULL, file, restored), CRDT_ECORRUPT);
    /* nothing left behind */
    ck_assert_int_eq(crdt_replica_open(&(crdt_replica *){ NULL }, restored,
                                       NULL), CRDT_ENOTFOUND);
    ck_assert_int_eq(crdt_backup_check(NULL, "/nonexistent/x"),
                     CRDT_ENOTFOUND);
}
END_TEST

/* A backup taken while a reset stages a snapshot: the restored copy has
 * no reset in progress (its owner's session is with the original). */
START_TEST(test_restore_drops_a_staging_reset)
{
    char file[300], restored[300];
    unsigned char rec[24] = { 0 };
    crdt_replica *x;
    crdt_raw *t;
    const void *v;
    size_t vl;
    uint64_t n = 1;

    ck_assert_int_eq(tu_put_int(r, "c", "d", "v", 1), CRDT_OK);
    ck_assert_int_eq(crdt_raw_begin(&t, r, 1), CRDT_OK);
    ck_assert_int_eq(crdt_raw_put(t, CRDT_DB_META, "staging", 7, rec,
                                  sizeof rec), CRDT_OK);
    ck_assert_int_eq(crdt_raw_put(t, CRDT_DB_STAGING, "0123456789abcdef", 16,
                                  "x", 1), CRDT_OK);
    ck_assert_int_eq(crdt_raw_commit(t), CRDT_OK);
    snprintf(file, sizeof file, "%s/staging.strata", dir);
    snprintf(restored, sizeof restored, "%s/restored", dir);
    ck_assert_int_eq(crdt_backup(NULL, r, file), CRDT_OK);
    ck_assert_int_eq(crdt_restore(NULL, file, restored), CRDT_OK);

    ck_assert_int_eq(crdt_replica_open(&x, restored, NULL), CRDT_OK);
    ck_assert_int_eq(crdt_raw_begin(&t, x, 0), CRDT_OK);
    ck_assert_int_eq(crdt_raw_get(t, CRDT_DB_META, "staging", 7, &v, &vl),
                     CRDT_ENOTFOUND);
    ck_assert_int_eq(crdt_raw_count(&n, t, CRDT_DB_STAGING), CRDT_OK);
    ck_assert_uint_eq(n, 0);
    crdt_raw_abort(t);
    crdt_replica_close(x);
    /* the original keeps its own */
    ck_assert_int_eq(crdt_raw_begin(&t, r, 0), CRDT_OK);
    ck_assert_int_eq(crdt_raw_get(t, CRDT_DB_META, "staging", 7, &v, &vl),
                     CRDT_OK);
    crdt_raw_abort(t);
}
END_TEST

Suite *
test_suite(void)
{
    Suite *s = suite_create("backup");
    TCase *tc = tcase_create("backup");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_backup_during_writes_restores_exactly);
    tcase_add_test(tc, test_corrupt_backup_is_refused);
    tcase_add_test(tc, test_restore_drops_a_staging_reset);
    suite_add_tcase(s, tc);
    return s;
}
