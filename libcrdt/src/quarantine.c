/*
 * quarantine.c: the one writer and reader of quarantine records
 * (crdt/raw.h; docs/storage.md section 6). libcrdt owns the database;
 * merge, the authority rules, a snapshot's replay and libepoch (rebase,
 * reset) all write through here, and libepoch lists through
 * crdt_quarantine_decode().
 *
 *   key   = actor(8) | seq(8) | kind(1) | tag(8)   (crdt_quarantine_key();
 *           stores written before kinds existed: actor(8) | seq(8))
 *   value = [ reason: str, epoch: bin32, hlc: uint, op: bin ]
 *
 * The op is stored as its change encoded it, and its stamp is the
 * change's hlc plus its index (what merge would have applied).
 */
#include <string.h>

#include "internal.h"

int
crdt__quarantine_put(MDB_txn *txn, crdt_replica *r, const crdt_change *c,
                     uint64_t seq, const crdt_op *op, int kind,
                     const char *why, size_t why_len)
{
    unsigned char key[CRDT_QUARANTINE_KEY_BYTES];
    MDB_val k = { sizeof key, key }, v;
    crdt__enc e, o;
    int rc;

    crdt_quarantine_key(key, &c->actor, seq, kind, c->hash);
    crdt__enc_init(&e);
    crdt__enc_init(&o);
    rc = crdt__op_encode(&o, op);
    if (rc == CRDT_OK) {
        msgpack_pack_array(&e.pk, 4);
        crdt__enc_str(&e, why, why_len);
        crdt__enc_bin(&e, c->epoch_id, CRDT_HASH_BYTES);
        msgpack_pack_uint64(&e.pk, c->hlc + (seq - c->seq));
        crdt__enc_bin(&e, o.sb.data, o.sb.size);
        rc = crdt__enc_ok(&e);
    }
    if (rc == CRDT_OK) {
        v.mv_size = e.sb.size;
        v.mv_data = e.sb.data;
        rc = crdt__mdb_err(mdb_put(txn, r->dbi[CRDT_DB_QUARANTINE], &k, &v,
                                   0));
    }
    crdt__enc_free(&e);
    crdt__enc_free(&o);
    return rc;
}

int
crdt__quarantine_change(MDB_txn *txn, crdt_replica *r, const crdt_change *c,
                        uint64_t above, int kind, const char *why,
                        size_t why_len, uint64_t *n_out)
{
    crdt_op_iter it;
    crdt_op op;
    uint64_t i = 0, n = 0;
    int rc;

    crdt_op_iter_init(&it, c);
    while ((rc = crdt_op_iter_next(&op, &it)) == CRDT_OK) {
        if (c->seq + i > above) {
            rc = crdt__quarantine_put(txn, r, c, c->seq + i, &op, kind, why,
                                      why_len);
            if (rc < 0)
                return rc;
            n++;
        }
        i++;
    }
    if (rc != CRDT_ENOTFOUND)
        return rc;
    if (n_out != NULL)
        *n_out = n;
    return CRDT_OK;
}

int
crdt__quarantine_ops(crdt__wctx *w, const crdt_change *c, int kind,
                     const char *why, size_t why_len, uint64_t *n_out)
{
    return crdt__quarantine_change(w->txn, w->r, c, 0, kind, why, why_len,
                                   n_out);
}

int
crdt_quarantine_decode(crdt_quarantined *out, const void *k, size_t kl,
                       const void *v, size_t vl)
{
    crdt__mp m = { v, (const unsigned char *)v + vl }, om;
    const unsigned char *key = k, *ob;
    crdt_quarantined q;
    uint32_t n, rl, ol;

    if (out == NULL || k == NULL || (v == NULL && vl > 0))
        return CRDT_ECORRUPT;
    if (kl != 16 && kl != CRDT_QUARANTINE_KEY_BYTES)
        return CRDT_ECORRUPT;
    memset(&q, 0, sizeof q);
    memcpy(q.actor.b, key, CRDT_ACTOR_BYTES);
    q.seq = crdt__rd64(key + 8);
    q.kind = kl == 16 ? 0 : key[16];
    q.tag = kl == 16 ? NULL : key + 17;
    if (crdt__mp_array(&m, &n) < 0 || n != 4 ||
        crdt__mp_str(&m, &q.reason, &rl) < 0 ||
        crdt__mp_bin_fixed(&m, q.epoch_id, CRDT_HASH_BYTES) < 0 ||
        crdt__mp_uint(&m, &q.hlc) < 0 || crdt__mp_bin(&m, &ob, &ol) < 0)
        return CRDT_ECORRUPT;
    q.reason_len = rl;
    om.p = ob;
    om.end = ob + ol;
    if (crdt__op_decode(&q.op, &om) < 0)
        return CRDT_ECORRUPT;
    *out = q;
    return CRDT_OK;
}

int
crdt_raw_quarantine_put(crdt_raw *t, const crdt_change *c, uint64_t seq,
                        const crdt_op *op, int kind, const char *reason)
{
    if (t == NULL || !t->write || c == NULL || op == NULL ||
        reason == NULL || seq < c->seq)
        return CRDT_EINVAL;
    return crdt__full(crdt__quarantine_put(t->w->txn, t->w->r, c, seq, op,
                                           kind, reason, strlen(reason)));
}

int
crdt_raw_quarantine_change(uint64_t *n_out, crdt_raw *t,
                           const crdt_change *c, uint64_t above, int kind,
                           const char *reason)
{
    if (t == NULL || !t->write || c == NULL || reason == NULL)
        return CRDT_EINVAL;
    return crdt__full(crdt__quarantine_change(t->w->txn, t->w->r, c, above,
                                              kind, reason, strlen(reason),
                                              n_out));
}
