/*
 * test_faults.c: storage faults at every point of a write. A replica is
 * capped at a map size that runs out somewhere inside a local txn, a
 * merge or a migration; for each cap the operation either succeeds or
 * fails with CRDT_EFULL, and the replica then holds exactly the state
 * before or exactly the state after, with a consistent hash.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crdt/crdt.h"
#include "crdt/raw.h"
#include "epoch/epoch.h"
#include "support/replica_util.h"
#include "support/support.h"

static char dir[256];

static void
setup(void)
{
    ck_assert_int_eq(test_tmpdir(dir, sizeof dir), 0);
}

static void
teardown(void)
{
    test_rmtree(dir);
}

static crdt_replica *
open_capped(const char *name, size_t cap, const unsigned char *space)
{
    crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
    crdt_replica *r = NULL;
    char path[400];

    snprintf(path, sizeof path, "%s/%s", dir, name);
    o.create = 1;
    o.map_size = cap;
    o.max_map_size = cap;
    o.no_sync = 1;
    o.space_id = space;
    ck_assert_int_eq(crdt_replica_open(&r, path, &o), CRDT_OK);
    return r;
}

static void
hash_of(unsigned char *out, crdt_replica *r)
{
    crdt_raw *t;
    unsigned char again[32];

    ck_assert_int_eq(crdt_raw_begin(&t, r, 0), CRDT_OK);
    crdt_raw_state_hash(t, out);
    ck_assert_int_eq(crdt_raw_state_rehash(t, again), CRDT_OK);
    crdt_raw_abort(t);
    ck_assert_mem_eq(out, again, 32); /* the kept hash is the state's */
}

static int
big_txn(crdt_replica *r, int n)
{
    static char val[3000];
    crdt_txn *t;
    crdt_value v = crdt_value_str(val, sizeof val);
    int rc;

    memset(val, 'v', sizeof val);
    if ((rc = crdt_txn_begin(&t, r)) < 0)
        return rc;
    for (int i = 0; i < n; i++) {
        char doc[16];
        snprintf(doc, sizeof doc, "d%d", i);
        if ((rc = crdt_txn_put(t, "c", doc, "f", &v)) < 0) {
            crdt_txn_abort(t);
            return rc;
        }
    }
    return crdt_txn_commit(t, NULL);
}

START_TEST(test_local_txn_is_all_or_nothing_at_every_cap)
{
    int full = 0, ok = 0;

    for (size_t cap = 96 * 1024; cap <= 2048 * 1024; cap += 64 * 1024) {
        char name[32];
        unsigned char before[32], after[32];
        crdt_replica *r;
        crdt_read *rd;
        crdt_stats st;
        int rc;

        snprintf(name, sizeof name, "t%zu", cap);
        r = open_capped(name, cap, NULL);
        hash_of(before, r);
        rc = big_txn(r, 150);
        ck_assert_msg(rc == CRDT_OK || rc == CRDT_EFULL, "cap %zu: %d", cap,
                      rc);
        hash_of(after, r);
        ck_assert_int_eq(crdt_read_begin(&rd, r), CRDT_OK);
        ck_assert_int_eq(crdt_read_stats(&st, rd), CRDT_OK);
        crdt_read_end(rd);
        if (rc == CRDT_EFULL) {
            full++;
            ck_assert_mem_eq(before, after, 32);
            ck_assert_uint_eq(st.ops_in_log, 0);
        } else {
            ok++;
            ck_assert_uint_eq(st.ops_in_log, 150);
        }
        crdt_replica_close(r);
    }
    ck_assert_int_gt(full, 0);
    ck_assert_int_gt(ok, 0);
}
END_TEST

START_TEST(test_merge_is_all_or_nothing_at_every_cap)
{
    crdt_replica *src = open_capped("src", 64u << 20, NULL);
    unsigned char space[16];
    crdt_export *e;
    crdt_bytes items[64];
    unsigned char *copies[64];
    const unsigned char *p;
    size_t n = 0, len;
    int full = 0, ok = 0;

    crdt_replica_space_id(src, space);
    for (int k = 0; k < 10; k++)
        ck_assert_int_eq(big_txn(src, 30), CRDT_OK);
    ck_assert_int_eq(crdt_export_begin(&e, src, NULL), CRDT_OK);
    while (crdt_export_next(e, &p, &len) == CRDT_OK && n < 64) {
        copies[n] = malloc(len);
        memcpy(copies[n], p, len);
        items[n].data = copies[n];
        items[n].len = len;
        n++;
    }
    crdt_export_end(e);
    for (size_t cap = 96 * 1024; cap <= 4096 * 1024; cap += 160 * 1024) {
        char name[32];
        unsigned char before[32], after[32], want[32];
        crdt_replica *r;
        int rc;

        snprintf(name, sizeof name, "m%zu", cap);
        r = open_capped(name, cap, space);
        hash_of(before, r);
        rc = crdt_merge(NULL, r, items, n);
        ck_assert_msg(rc == CRDT_OK || rc == CRDT_EFULL, "cap %zu: %d", cap,
                      rc);
        hash_of(after, r);
        if (rc == CRDT_EFULL) {
            full++;
            ck_assert_mem_eq(before, after, 32);
        } else {
            ok++;
            hash_of(want, src);
            ck_assert_mem_eq(after, want, 32);
        }
        crdt_replica_close(r);
    }
    ck_assert_int_gt(full, 0);
    ck_assert_int_gt(ok, 0);
    for (size_t i = 0; i < n; i++)
        free(copies[i]);
    crdt_replica_close(src);
}
END_TEST

START_TEST(test_migration_is_all_or_nothing_at_every_cap)
{
    int full = 0, ok = 0;
    static const char lens_text[] =
        "collection c 1 -> 2\nrename f -> g\nadd note string default \"-\"\n";

    for (size_t cap = 256 * 1024; cap <= 4096 * 1024; cap += 128 * 1024) {
        char name[32];
        unsigned char before[32], after[32];
        crdt_replica *r;
        epoch_builder *b;
        epoch_lens *l;
        epoch_marker m;
        epoch_info cur;
        int rc;

        snprintf(name, sizeof name, "g%zu", cap);
        r = open_capped(name, cap, NULL);
        /* fill about half of the map, so the migration's copy overflows */
        rc = big_txn(r, (int)(cap / 3000 / 6));
        ck_assert_int_eq(rc, CRDT_OK);
        hash_of(before, r);
        ck_assert_int_eq(epoch_lens_parse(&l, lens_text, strlen(lens_text),
                                          NULL), CRDT_OK);
        ck_assert_int_eq(epoch_builder_new(&b, r), CRDT_OK);
        ck_assert_int_eq(epoch_builder_add_lens(b, l), CRDT_OK);
        rc = epoch_builder_commit(NULL, b);
        epoch_builder_free(b);
        epoch_lens_free(l);
        ck_assert_msg(rc == CRDT_OK || rc == CRDT_EFULL, "cap %zu: %d", cap,
                      rc);
        hash_of(after, r);
        ck_assert_int_eq(epoch_current(&cur, r), CRDT_OK);
        ck_assert_int_eq(epoch_marker_get(&m, r), CRDT_ENOTFOUND);
        if (rc == CRDT_EFULL) {
            full++;
            ck_assert_mem_eq(before, after, 32);
            ck_assert_uint_eq(cur.number, 0);
        } else {
            ok++;
            ck_assert_uint_eq(cur.number, 1);
        }
        epoch_info_clear(&cur);
        crdt_replica_close(r);
    }
    ck_assert_int_gt(full, 0);
    ck_assert_int_gt(ok, 0);
}
END_TEST

Suite *
test_suite(void)
{
    Suite *s = suite_create("faults");
    TCase *tc = tcase_create("map-full");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, test_local_txn_is_all_or_nothing_at_every_cap);
    tcase_add_test(tc, test_merge_is_all_or_nothing_at_every_cap);
    tcase_add_test(tc, test_migration_is_all_or_nothing_at_every_cap);
    suite_add_tcase(s, tc);
    return s;
}
