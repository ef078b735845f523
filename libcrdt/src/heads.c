/*
 * heads.c: per-actor chain state (the version vector plus what checking
 * the next change needs), log keys and the meta counters.
 */
#include <string.h>

#include "internal.h"

int
crdt__head_get(MDB_txn *txn, crdt_replica *r, const crdt_actor *a,
               crdt__head *out)
{
    MDB_val k = { CRDT_ACTOR_BYTES, (void *)a->b }, v;
    const unsigned char *p;
    int rc = mdb_get(txn, r->dbi[CRDT_DB_HEADS], &k, &v);

    if (rc != 0)
        return crdt__mdb_err(rc);
    if (v.mv_size != CRDT__HEAD_BYTES)
        return CRDT_ECORRUPT;
    p = v.mv_data;
    out->seq = crdt__rd64(p);
    memcpy(out->hash, p + 8, CRDT_HASH_BYTES);
    memcpy(out->pk, p + 40, CRDT_PUBKEY_BYTES);
    memcpy(out->inc, p + 72, 8);
    return CRDT_OK;
}

int
crdt__head_put(MDB_txn *txn, crdt_replica *r, const crdt_actor *a,
               const crdt__head *h)
{
    unsigned char b[CRDT__HEAD_BYTES];
    MDB_val k = { CRDT_ACTOR_BYTES, (void *)a->b }, v = { sizeof b, b };

    crdt__be64(b, h->seq);
    memcpy(b + 8, h->hash, CRDT_HASH_BYTES);
    memcpy(b + 40, h->pk, CRDT_PUBKEY_BYTES);
    memcpy(b + 72, h->inc, 8);
    return crdt__mdb_err(mdb_put(txn, r->dbi[CRDT_DB_HEADS], &k, &v, 0));
}

void
crdt__log_key(unsigned char *k, const crdt_actor *a, uint64_t seq)
{
    memcpy(k, a->b, CRDT_ACTOR_BYTES);
    crdt__be64(k + CRDT_ACTOR_BYTES, seq);
}

int
crdt__count_add(MDB_txn *txn, crdt_replica *r, const char *key,
                int64_t delta)
{
    uint64_t v = crdt__meta_u64(txn, r, key);

    v = (delta < 0 && (uint64_t)(-delta) > v) ? 0 : v + (uint64_t)delta;
    return crdt__meta_put_u64(txn, r, key, v);
}
