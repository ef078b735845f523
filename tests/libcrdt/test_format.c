/*
 * test_format.c: replicas and backups written by store format 1 (whose
 * state hash was a sum of BLAKE2b) still open and restore: opening one
 * for writing recomputes the state hash and moves it to the current
 * format; a read-only open says CRDT_EVERSION; a format-1 backup is
 * checked against the format-1 hash. Formats 2 (single-change log
 * records only), 3 (change-feed records of version 1 only) and 4 (no
 * lens defaults kept once per collection) open read-only as they are and
 * move to format 5 when opened for writing; a newer format is
 * CRDT_EVERSION. A new replica is written by one txn.
 */
#include <check.h>
#include <lmdb.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crdt/crdt.h"
#include "internal.h"
#include "support/replica_util.h"
#include "support/support.h"

static char dir[256];

/* A replica with registers, a counter and a set, closed. */
static void
make_replica(char *path, size_t size)
{
    crdt_replica *r = tu_create(dir, sizeof dir, NULL);
    crdt_txn *t;

    ck_assert_int_eq(crdt_txn_begin(&t, r), CRDT_OK);
    for (int i = 0; i < 50; i++) {
        char doc[16];
        crdt_value v = crdt_value_int(i), e = crdt_value_str("x", 1);
        snprintf(doc, sizeof doc, "d%d", i);
        ck_assert_int_eq(crdt_txn_put(t, "c", doc, "v", &v), CRDT_OK);
        ck_assert_int_eq(crdt_txn_incr(t, "c", doc, "n", i), CRDT_OK);
        ck_assert_int_eq(crdt_txn_sadd(t, "c", doc, "s", &e), CRDT_OK);
    }
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    crdt_replica_close(r);
    snprintf(path, size, "%s/r", dir);
}

static void
read_format(const char *path, unsigned char *out)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi meta;
    MDB_val v;

    ck_assert_int_eq(mdb_env_create(&env), 0);
    ck_assert_int_eq(mdb_env_set_maxdbs(env, 16), 0);
    ck_assert_int_eq(mdb_env_open(env, path, MDB_RDONLY, 0600), 0);
    ck_assert_int_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    ck_assert_int_eq(mdb_dbi_open(txn, "meta", 0, &meta), 0);
    ck_assert_int_eq(mdb_get(txn, meta, &(MDB_val){ 6, "format" }, &v), 0);
    ck_assert_uint_eq(v.mv_size, 4);
    *out = ((unsigned char *)v.mv_data)[3];
    mdb_txn_abort(txn);
    mdb_env_close(env);
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

START_TEST(test_format_1_is_upgraded_by_a_writable_open)
{
    crdt_open_options ro = CRDT_OPEN_OPTIONS_INIT;
    crdt_replica *r = NULL;
    char path[300], got[64];
    unsigned char v1[32], fmt;
    crdt_read *rd;
    crdt_stats st;

    make_replica(path, sizeof path);
    tu_downgrade_to_1(path, v1);
    ro.read_only = 1;
    ck_assert_int_eq(crdt_replica_open(&r, path, &ro), CRDT_EVERSION);
    read_format(path, &fmt);
    ck_assert_uint_eq(fmt, 1); /* untouched */

    ck_assert_int_eq(crdt_replica_open(&r, path, NULL), CRDT_OK);
    assert_hash_exact(r);
    ck_assert_int_eq(crdt_read_begin(&rd, r), CRDT_OK);
    ck_assert_int_eq(crdt_read_stats(&st, rd), CRDT_OK);
    crdt_read_end(rd);
    ck_assert(memcmp(st.state_hash, v1, 32) != 0);
    tu_field_str(got, sizeof got, r, "c", "d7", "n");
    ck_assert_str_eq(got, "c7");
    /* writes go on, the hash stays exact */
    ck_assert_int_eq(tu_put_int(r, "c", "d7", "v", 70), CRDT_OK);
    assert_hash_exact(r);
    crdt_replica_close(r);
    read_format(path, &fmt);
    ck_assert_uint_eq(fmt, CRDT__STORE_FORMAT);
    ck_assert_int_eq(crdt_replica_open(&r, path, &ro), CRDT_OK);
    crdt_replica_close(r);
    test_rmtree(dir);
}
END_TEST

START_TEST(test_formats_2_to_4_read_as_they_are_and_move_to_5_on_write)
{
    crdt_open_options ro = CRDT_OPEN_OPTIONS_INIT;
    crdt_replica *r = NULL;
    char path[300], got[64], why[200];
    unsigned char fmt;

    make_replica(path, sizeof path);
    read_format(path, &fmt);
    ck_assert_uint_eq(fmt, 5); /* what a new replica gets */
    tu_set_format(path, (unsigned char)_i);
    ro.read_only = 1;
    ck_assert_int_eq(crdt_replica_open(&r, path, &ro), CRDT_OK);
    tu_field_str(got, sizeof got, r, "c", "d7", "v");
    ck_assert_str_eq(got, "7");
    ck_assert_int_eq(crdt_replica_check_records(r, why, sizeof why),
                     CRDT_OK);
    crdt_replica_close(r);
    read_format(path, &fmt);
    ck_assert_uint_eq(fmt, _i); /* untouched */
    ck_assert_int_eq(crdt_replica_open(&r, path, NULL), CRDT_OK);
    ck_assert_int_eq(tu_put_int(r, "c", "d7", "v", 70), CRDT_OK);
    crdt_replica_close(r);
    read_format(path, &fmt);
    ck_assert_uint_eq(fmt, 5);
    /* a format this build does not know yet */
    tu_set_format(path, 6);
    ck_assert_int_eq(crdt_replica_open(&r, path, NULL), CRDT_EVERSION);
    ck_assert_int_eq(crdt_replica_open(&r, path, &ro), CRDT_EVERSION);
    test_rmtree(dir);
}
END_TEST

static unsigned char *
slurp(const char *file, size_t *len)
{
    FILE *f = fopen(file, "rb");
    unsigned char *p;
    long n;

    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
    n = ftell(f);
    ck_assert_int_eq(fseek(f, 0, SEEK_SET), 0);
    p = malloc((size_t)n);
    ck_assert_uint_eq(fread(p, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return p;
}

static void
spit(const char *file, const unsigned char *p, size_t len)
{
    FILE *f = fopen(file, "wb");

    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(p, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
}

static void
put_be(unsigned char *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

/*
 * A backup as format 1 wrote it: the same file layout, with the data of
 * a format-1 replica and its format-1 state hash in the header. Built
 * from a current backup by swapping the data and the header's hash.
 */
START_TEST(test_format_1_backup_restores)
{
    crdt_replica *r;
    crdt_backup_info info;
    char path[300], file[400], old[400], scratch[400], again[400];
    unsigned char v1[32], *b, *data, *out, *hp;
    size_t blen, dlen, hl, olen;

    make_replica(path, sizeof path);
    ck_assert_int_eq(crdt_replica_open(&r, path, NULL), CRDT_OK);
    snprintf(file, sizeof file, "%s/now.bak", dir);
    ck_assert_int_eq(crdt_backup(&info, r, file), CRDT_OK);
    crdt_replica_close(r);
    tu_downgrade_to_1(path, v1);
    snprintf(scratch, sizeof scratch, "%s/r/data.mdb", dir);
    data = slurp(scratch, &dlen);

    b = slurp(file, &blen);
    hl = (size_t)b[12] << 24 | (size_t)b[13] << 16 | (size_t)b[14] << 8 |
         b[15];
    /* the header's state hash: the one bin32 equal to info.state_hash */
    hp = NULL;
    for (size_t i = 16; i + 32 <= 16 + hl; i++)
        if (memcmp(b + i, info.state_hash, 32) == 0)
            hp = b + i;
    ck_assert_ptr_nonnull(hp);
    memcpy(hp, v1, 32);
    olen = 16 + hl + 8 + dlen + 32;
    out = malloc(olen);
    memcpy(out, b, 16 + hl);
    put_be(out + 16 + hl, dlen, 8);
    memcpy(out + 16 + hl + 8, data, dlen);
    crypto_generichash(out + olen - 32, 32, out, olen - 32, NULL, 0);
    snprintf(old, sizeof old, "%s/format1.bak", dir);
    spit(old, out, olen);

    snprintf(again, sizeof again, "%s/restored", dir);
    ck_assert_int_eq(crdt_restore(&info, old, again), CRDT_OK);
    ck_assert_mem_eq(info.state_hash, v1, 32);
    ck_assert_int_eq(crdt_replica_open(&r, again, NULL), CRDT_OK);
    assert_hash_exact(r);
    crdt_replica_close(r);

    /* a header hash that is neither format's is refused */
    memset(out + (hp - b), 0x5a, 32);
    crypto_generichash(out + olen - 32, 32, out, olen - 32, NULL, 0);
    spit(old, out, olen);
    snprintf(again, sizeof again, "%s/refused", dir);
    ck_assert_int_eq(crdt_restore(NULL, old, again), CRDT_ECORRUPT);

    free(b);
    free(data);
    free(out);
    test_rmtree(dir);
}
END_TEST

/* Creating a replica is one commit: the format record and the
 * identity (space, keys, incarnation, epoch 0) land together, so a crash
 * never leaves a store with a format and no identity, and creation
 * syncs once instead of twice. */
START_TEST(test_creation_is_one_txn)
{
    static const char *const keys[] = { "format", "space", "pk", "sk",
                                        "inc", "epoch_id", "genesis_id",
                                        "epoch_num", "slot", "hash0",
                                        "hash1" };
    crdt_replica *r = tu_create(dir, sizeof dir, NULL);
    char path[300];
    MDB_env *env;
    MDB_envinfo info;
    MDB_txn *txn;
    MDB_dbi meta;
    MDB_val v;

    crdt_replica_close(r);
    snprintf(path, sizeof path, "%s/r", dir);
    ck_assert_int_eq(mdb_env_create(&env), 0);
    ck_assert_int_eq(mdb_env_set_maxdbs(env, 16), 0);
    ck_assert_int_eq(mdb_env_open(env, path, MDB_RDONLY, 0600), 0);
    ck_assert_int_eq(mdb_env_info(env, &info), 0);
    ck_assert_uint_eq(info.me_last_txnid, 1);
    ck_assert_int_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    ck_assert_int_eq(mdb_dbi_open(txn, "meta", 0, &meta), 0);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        MDB_val k = { strlen(keys[i]), (void *)keys[i] };
        ck_assert_msg(mdb_get(txn, meta, &k, &v) == 0, "no %s", keys[i]);
    }
    mdb_txn_abort(txn);
    mdb_env_close(env);
    /* and it opens as the replica it was */
    {
        crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
        ck_assert_int_eq(crdt_replica_open(&r, path, &o), CRDT_OK);
        crdt_replica_close(r);
    }
    test_rmtree(dir);
}
END_TEST

Suite *
test_suite(void)
{
    Suite *s = suite_create("format");
    TCase *tc = tcase_create("format");

    tcase_add_test(tc, test_format_1_is_upgraded_by_a_writable_open);
    tcase_add_test(tc, test_format_1_backup_restores);
    tcase_add_loop_test(
        tc, test_formats_2_to_4_read_as_they_are_and_move_to_5_on_write, 2,
        5);
    tcase_add_test(tc, test_creation_is_one_txn);
    suite_add_tcase(s, tc);
    return s;
}
