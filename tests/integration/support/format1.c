/*
 * format1.c: turn a replica into what store format 1 wrote (its state
 * hash was a sum of BLAKE2b, docs/storage.md section 4.3), so the tests
 * can check that current strata upgrades one. Test helper only.
 *
 *   strata-test-format1 DIR
 */
#include <lmdb.h>
#include <stdio.h>

#include "internal.h"

int
main(int argc, char **argv)
{
    static const unsigned char fmt1[4] = { 0, 0, 0, 1 };
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi meta, state;
    unsigned char h[32];
    int rc;

    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    if ((rc = mdb_env_create(&env)) != 0 ||
        (rc = mdb_env_set_maxdbs(env, 16)) != 0 ||
        (rc = mdb_env_set_mapsize(env, (size_t)1 << 30)) != 0 ||
        (rc = mdb_env_open(env, argv[1], 0, 0600)) != 0 ||
        (rc = mdb_txn_begin(env, NULL, 0, &txn)) != 0 ||
        (rc = mdb_dbi_open(txn, "meta", 0, &meta)) != 0) {
        fprintf(stderr, "%s: %s\n", argv[1], mdb_strerror(rc));
        return 1;
    }
    for (int slot = 0; slot < 2; slot++) {
        MDB_val k = { 5, (void *)(slot ? "hash1" : "hash0") };
        MDB_val v = { 32, h };

        if ((rc = mdb_dbi_open(txn, slot ? "state1" : "state0", 0,
                               &state)) != 0 ||
            crdt__state_rehash(txn, state, 1, h) != CRDT_OK ||
            (rc = mdb_put(txn, meta, &k, &v, 0)) != 0) {
            fprintf(stderr, "%s: state slot %d\n", argv[1], slot);
            return 1;
        }
    }
    rc = mdb_put(txn, meta, &(MDB_val){ 6, (void *)"format" },
                 &(MDB_val){ 4, (void *)fmt1 }, 0);
    if (rc == 0)
        rc = mdb_txn_commit(txn);
    mdb_env_close(env);
    if (rc != 0) {
        fprintf(stderr, "%s: %s\n", argv[1], mdb_strerror(rc));
        return 1;
    }
    return 0;
}
