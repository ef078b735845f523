/*
 * write.c: a small write txn of libepoch (a marker, epoch records, a
 * quarantine move) that a full map does not fail: LMDB's MDB_MAP_FULL
 * comes back as CRDT_EFULL, the map grows and the txn runs again.
 */
#include "epoch_internal.h"

#define TRIES 8

int
epoch__write(crdt_replica *r, int (*fn)(crdt_raw *t, void *ctx), void *ctx)
{
    crdt_raw *t;
    int rc = CRDT_EFULL;

    for (int tries = 0; tries < TRIES; tries++) {
        if ((rc = crdt_raw_begin(&t, r, 1)) < 0)
            return rc;
        if ((rc = fn(t, ctx)) < 0)
            crdt_raw_abort(t);
        else
            rc = crdt_raw_commit(t);
        if (!epoch__grew(r, &rc))
            break;
    }
    return rc;
}
