/*
 * heads.c: per-actor chain state (the version vector plus what checking
 * the next change needs), log keys and the meta counters; and the heads
 * blob (crdt/raw.h), the one place that reads it.
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
    uint64_t v;
    int rc = crdt__meta_u64(txn, r, key, &v);

    if (rc < 0)
        return rc;
    v = (delta < 0 && (uint64_t)(-delta) > v) ? 0 : v + (uint64_t)delta;
    return crdt__meta_put_u64(txn, r, key, v);
}

/* ---- the heads blob: array of actor, seq, hash, pk, inc per actor ---- */

int
crdt_heads_parse(const unsigned char *blob, size_t len, crdt_head_fn fn,
                 void *ctx)
{
    crdt__mp m = { blob, blob + len };
    uint32_t n;
    int rc;

    if (len == 0)
        return CRDT_OK;
    if (blob == NULL)
        return CRDT_EPROTO;
    if (len > CRDT_HEADS_BLOB_MAX)
        return CRDT_ELIMIT;
    if (crdt__mp_array(&m, &n) < 0 || n % 5 != 0)
        return CRDT_EPROTO;
    for (uint32_t i = 0; i < n / 5; i++) {
        crdt_actor check;
        crdt_head h;

        if (crdt__mp_bin_fixed(&m, h.actor.b, CRDT_ACTOR_BYTES) < 0 ||
            crdt__mp_uint(&m, &h.seq) < 0 ||
            crdt__mp_bin_fixed(&m, h.hash, CRDT_HASH_BYTES) < 0 ||
            crdt__mp_bin_fixed(&m, h.pk, CRDT_PUBKEY_BYTES) < 0 ||
            crdt__mp_bin_fixed(&m, h.inc, 8) < 0)
            return CRDT_EPROTO;
        crdt__actor_of(&check, h.pk, h.inc);
        if (memcmp(check.b, h.actor.b, CRDT_ACTOR_BYTES) != 0)
            return CRDT_EPROTO;
        if (fn != NULL && (rc = fn(&h, ctx)) < 0)
            return rc;
    }
    return m.p == m.end ? CRDT_OK : CRDT_EPROTO;
}

typedef struct {
    const crdt_actor *actor;
    uint64_t seq;
} seq_of;

static int
find_seq(const crdt_head *h, void *ctx)
{
    seq_of *s = ctx;

    /* an actor named twice counts with its larger seq, as in
     * crdt_heads_vv() (a version vector keeps the larger of two) */
    if (memcmp(h->actor.b, s->actor->b, CRDT_ACTOR_BYTES) == 0 &&
        h->seq > s->seq)
        s->seq = h->seq;
    return CRDT_OK;
}

int
crdt_heads_seq(uint64_t *seq_out, const unsigned char *blob, size_t len,
               const crdt_actor *actor)
{
    seq_of s = { actor, 0 };
    int rc;

    if (seq_out == NULL || actor == NULL)
        return CRDT_EINVAL;
    if ((rc = crdt_heads_parse(blob, len, find_seq, &s)) < 0)
        return rc;
    *seq_out = s.seq;
    return CRDT_OK;
}

static int
add_to_vv(const crdt_head *h, void *ctx)
{
    return crdt_vv_set(ctx, &h->actor, h->seq);
}

int
crdt_heads_vv(crdt_vv **out, const unsigned char *blob, size_t len)
{
    crdt_vv *vv;
    int rc;

    if (out == NULL)
        return CRDT_EINVAL;
    *out = NULL;
    if ((rc = crdt_vv_new(&vv)) < 0)
        return rc;
    if ((rc = crdt_heads_parse(blob, len, add_to_vv, vv)) < 0) {
        crdt_vv_free(vv);
        return rc;
    }
    *out = vv;
    return CRDT_OK;
}
