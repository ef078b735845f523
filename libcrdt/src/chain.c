/*
 * chain.c: what a sync needs to find an equivocation (one actor, two
 * different signed changes for the same seqs: a copied data directory,
 * a backup restored twice): every head with its chain hash, and whether
 * the chain we hold for an actor passes through a given (seq, hash).
 *
 * A change's bytes are the same on every replica that holds it, and a
 * chain is cut into the same changes everywhere, so the change ending at
 * a seq is found under the same key in every log (or archive).
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define HEADS_MAX 65536 /* as many as a version vector holds */

int
crdt_heads_export(unsigned char **out, size_t *len, crdt_replica *r)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_val k, v;
    crdt__enc e, items;
    size_t n = 0;
    int rc;

    if (out == NULL || len == NULL || r == NULL)
        return CRDT_EINVAL;
    if ((rc = crdt__txn_begin(r, 0, &txn)) < 0)
        return rc;
    rc = crdt__mdb_err(mdb_cursor_open(txn, r->dbi[CRDT_DB_HEADS], &cur));
    if (rc < 0) {
        crdt__txn_end(r, txn, 0);
        return rc;
    }
    crdt__enc_init(&items);
    rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (rc == 0) {
        const unsigned char *p = v.mv_data;
        if (k.mv_size != CRDT_ACTOR_BYTES || v.mv_size != CRDT__HEAD_BYTES) {
            rc = MDB_CORRUPTED;
            break;
        }
        crdt__enc_bin(&items, k.mv_data, CRDT_ACTOR_BYTES);
        msgpack_pack_uint64(&items.pk, crdt__rd64(p));
        crdt__enc_bin(&items, p + 8, CRDT_HASH_BYTES);
        n++;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    crdt__txn_end(r, txn, 0);
    if (rc != MDB_NOTFOUND) {
        crdt__enc_free(&items);
        return crdt__mdb_err(rc);
    }
    crdt__enc_init(&e);
    msgpack_pack_array(&e.pk, 3 * n);
    crdt__enc_raw(&e, items.sb.data, items.sb.size);
    rc = crdt__enc_ok(&items) < 0 ? CRDT_ENOMEM : crdt__enc_ok(&e);
    crdt__enc_free(&items);
    if (rc < 0) {
        crdt__enc_free(&e);
        return rc;
    }
    *out = (unsigned char *)e.sb.data; /* handed over */
    *len = e.sb.size;
    return CRDT_OK;
}

MDB_txn *crdt__read_txn(crdt_read *rd);
crdt_replica *crdt__read_replica(crdt_read *rd);

/* Up to @p max heads of @p txn after actor @p after (NULL: from the
 * first) into @p buf; *n of them. */
static int
heads_from(unsigned char *buf, size_t max, size_t *n, const crdt_actor *after,
           MDB_txn *txn, crdt_replica *r)
{
    MDB_cursor *cur;
    MDB_val k, v;
    size_t i = 0;
    int rc;

    if ((rc = crdt__mdb_err(mdb_cursor_open(txn, r->dbi[CRDT_DB_HEADS],
                                            &cur))) < 0)
        return rc;
    if (after == NULL) {
        rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    } else {
        k.mv_size = CRDT_ACTOR_BYTES;
        k.mv_data = (void *)after->b;
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        if (rc == 0 && k.mv_size == CRDT_ACTOR_BYTES &&
            memcmp(k.mv_data, after->b, CRDT_ACTOR_BYTES) == 0)
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    while (rc == 0 && i < max) {
        unsigned char *e = buf + i * CRDT_HEAD_ENTRY_BYTES;
        if (k.mv_size != CRDT_ACTOR_BYTES || v.mv_size != CRDT__HEAD_BYTES) {
            rc = MDB_CORRUPTED;
            break;
        }
        /* the stored head starts with seq (big-endian) and chain hash */
        memcpy(e, k.mv_data, CRDT_ACTOR_BYTES);
        memcpy(e + CRDT_ACTOR_BYTES, v.mv_data, 8 + CRDT_HASH_BYTES);
        i++;
        if (i < max)
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return crdt__mdb_err(rc);
    *n = i;
    return CRDT_OK;
}

int
crdt_read_heads(unsigned char **buf, size_t *cap, size_t *n, crdt_read *rd)
{
    MDB_txn *txn;
    MDB_stat st;
    crdt_replica *r;
    size_t need;
    int rc;

    if (buf == NULL || cap == NULL || n == NULL || rd == NULL)
        return CRDT_EINVAL;
    txn = crdt__read_txn(rd);
    r = crdt__read_replica(rd);
    if ((rc = crdt__mdb_err(mdb_stat(txn, r->dbi[CRDT_DB_HEADS], &st))) < 0)
        return rc;
    if (st.ms_entries > HEADS_MAX)
        return CRDT_ELIMIT;
    /* one buffer, sized once: the caller keeps it for the next read */
    need = (st.ms_entries ? st.ms_entries : 1) * CRDT_HEAD_ENTRY_BYTES;
    if (*buf == NULL || *cap < need) {
        unsigned char *nb = realloc(*buf, need);
        if (nb == NULL)
            return CRDT_ENOMEM;
        crdt__prefault(nb, need); /* 480 KB at 10,000 heads */
        *buf = nb;
        *cap = need;
    }
    return heads_from(*buf, st.ms_entries, n, NULL, txn, r);
}

int
crdt_read_heads_after(unsigned char *buf, size_t max, size_t *n,
                      const crdt_actor *after, crdt_read *rd)
{
    if (buf == NULL || n == NULL || rd == NULL)
        return CRDT_EINVAL;
    return heads_from(buf, max, n, after, crdt__read_txn(rd),
                      crdt__read_replica(rd));
}

/* The stored change of @p a ending at @p seq in @p dbi (keys [@p prefix
 * |] actor | last seq, a record may hold a run) against @p hash:
 * CRDT_ENOTFOUND when no change ends there; @p spans: one holds @p seq
 * without ending there. */
static int
compare_at(int *out, int *spans, MDB_txn *txn, MDB_dbi dbi,
           const unsigned char *prefix, size_t plen, const crdt_actor *a,
           uint64_t seq, const unsigned char *hash)
{
    crdt__logrec lr;
    crdt_change held;
    MDB_cursor *cur;
    size_t idx;
    int rc;

    *spans = 0;
    if ((rc = crdt__mdb_err(mdb_cursor_open(txn, dbi, &cur))) < 0)
        return rc;
    rc = crdt__logrec_find(&lr, &idx, cur, prefix, plen, a, seq);
    mdb_cursor_close(cur);
    if (rc < 0)
        return rc;
    if (crdt__logrec_decode(&held, &lr, idx) < 0)
        rc = CRDT_ECORRUPT;
    else if (held.seq + held.n_ops - 1 == seq)
        *out = memcmp(held.hash, hash, CRDT_HASH_BYTES) == 0
                   ? CRDT_CHAIN_SAME : CRDT_CHAIN_FORK;
    else {
        *spans = held.seq <= seq;
        rc = CRDT_ENOTFOUND;
    }
    crdt__logrec_close(&lr);
    return rc;
}

int
crdt__chain_check(int *out, MDB_txn *txn, crdt_replica *r,
                  const crdt_actor *a, uint64_t seq,
                  const unsigned char *hash)
{
    unsigned char key[8];
    crdt__head h;
    uint64_t epochs;
    int rc, spans;

    *out = CRDT_CHAIN_UNKNOWN;
    rc = crdt__head_get(txn, r, a, &h);
    if (rc == CRDT_ENOTFOUND)
        return CRDT_OK;
    if (rc < 0)
        return rc;
    if (h.seq < seq)
        return CRDT_OK; /* we hold less: the other side can tell */
    if (h.seq == seq) {
        *out = memcmp(h.hash, hash, CRDT_HASH_BYTES) == 0 ? CRDT_CHAIN_SAME
                                                           : CRDT_CHAIN_FORK;
        return CRDT_OK;
    }
    rc = compare_at(out, &spans, txn, r->dbi[CRDT_DB_LOG], NULL, 0, a, seq,
                    hash);
    if (rc != CRDT_ENOTFOUND)
        return rc;
    if (spans) {
        /* no change of ours ends at @p seq: one that spans it is another
         * cut of the chain, so another chain */
        *out = CRDT_CHAIN_FORK;
        return CRDT_OK;
    }
    /* folded into an epoch: the archive keeps the change (until pruned) */
    if ((rc = crdt__meta_u64(txn, r, "epoch_num", &epochs)) < 0)
        return rc;
    for (uint64_t e = 0; e <= epochs && e < 1u << 20; e++) {
        crdt__be64(key, e);
        rc = compare_at(out, &spans, txn, r->dbi[CRDT_DB_ARCHIVE], key, 8, a,
                        seq, hash);
        if (rc != CRDT_ENOTFOUND)
            return rc;
    }
    return CRDT_OK; /* pruned, or never ours: cannot tell */
}

int
crdt_chain_check(int *out, crdt_replica *r, const crdt_actor *a,
                 uint64_t seq, const unsigned char *hash)
{
    MDB_txn *txn;
    int rc;

    if (out == NULL || r == NULL || a == NULL || hash == NULL)
        return CRDT_EINVAL;
    if ((rc = crdt__txn_begin(r, 0, &txn)) < 0)
        return rc;
    rc = crdt__chain_check(out, txn, r, a, seq, hash);
    crdt__txn_end(r, txn, 0);
    return rc;
}

int
crdt_head_read(uint64_t *seq, unsigned char *hash, crdt_replica *r,
               const crdt_actor *a)
{
    MDB_txn *txn;
    crdt__head h;
    int rc;

    if (seq == NULL || hash == NULL || r == NULL || a == NULL)
        return CRDT_EINVAL;
    if ((rc = crdt__txn_begin(r, 0, &txn)) < 0)
        return rc;
    rc = crdt__head_get(txn, r, a, &h);
    crdt__txn_end(r, txn, 0);
    if (rc == CRDT_OK) {
        *seq = h.seq;
        memcpy(hash, h.hash, CRDT_HASH_BYTES);
    }
    return rc;
}

int
crdt_equivocations_add(crdt_replica *r, uint64_t n)
{
    MDB_txn *txn;
    int rc;

    if (r == NULL)
        return CRDT_EINVAL;
    if (n == 0)
        return CRDT_OK;
    if ((rc = crdt__txn_begin(r, 1, &txn)) < 0)
        return rc;
    if ((rc = crdt__count_add(txn, r, "equivocations", (int64_t)n)) < 0) {
        crdt__txn_end(r, txn, 0);
        return rc;
    }
    return crdt__txn_end(r, txn, 1);
}

void
crdt_quarantine_key(unsigned char *key, const crdt_actor *a, uint64_t seq,
                    int kind, const unsigned char *change_hash)
{
    crdt__log_key(key, a, seq);
    key[16] = (unsigned char)kind;
    if (change_hash != NULL)
        memcpy(key + 17, change_hash, 8);
    else
        memset(key + 17, 0, 8);
}

int
crdt_forks_find(crdt_actor **out, size_t *n_out, crdt_replica *r,
                const unsigned char *heads, size_t len)
{
    crdt__mp m = { heads, NULL };
    crdt_actor *v = NULL;
    size_t n = 0;
    uint32_t items;
    MDB_txn *txn;
    int rc;

    if (out == NULL || n_out == NULL || r == NULL || heads == NULL)
        return CRDT_EINVAL;
    m.end = heads + len;
    *out = NULL;
    *n_out = 0;
    if (crdt__mp_array(&m, &items) < 0 || items % 3 != 0)
        return CRDT_EPROTO;
    if (items / 3 > HEADS_MAX)
        return CRDT_ELIMIT;
    if ((rc = crdt__txn_begin(r, 0, &txn)) < 0)
        return rc;
    for (uint32_t i = 0; i < items / 3; i++) {
        crdt_actor a;
        uint64_t seq;
        unsigned char hash[CRDT_HASH_BYTES];
        int found;

        if (crdt__mp_bin_fixed(&m, a.b, CRDT_ACTOR_BYTES) < 0 ||
            crdt__mp_uint(&m, &seq) < 0 ||
            crdt__mp_bin_fixed(&m, hash, CRDT_HASH_BYTES) < 0) {
            rc = CRDT_EPROTO;
            break;
        }
        if ((rc = crdt__chain_check(&found, txn, r, &a, seq, hash)) < 0)
            break;
        if (found == CRDT_CHAIN_FORK) {
            crdt_actor *nv = realloc(v, (n + 1) * sizeof *nv);
            if (nv == NULL) {
                rc = CRDT_ENOMEM;
                break;
            }
            v = nv;
            v[n++] = a;
        }
    }
    crdt__txn_end(r, txn, 0);
    if (rc == CRDT_OK && m.p != m.end)
        rc = CRDT_EPROTO;
    if (rc < 0) {
        free(v);
        return rc;
    }
    *out = v;
    *n_out = n;
    return CRDT_OK;
}

int
crdt_heads_lookup(uint64_t *seq, unsigned char *hash,
                  const unsigned char *heads, size_t len, const crdt_actor *a)
{
    crdt__mp m = { heads, NULL };
    uint32_t items;

    if (heads == NULL)
        return CRDT_EPROTO;
    m.end = heads + len;
    if (crdt__mp_array(&m, &items) < 0 || items % 3 != 0)
        return CRDT_EPROTO;
    for (uint32_t i = 0; i < items / 3; i++) {
        crdt_actor x;
        if (crdt__mp_bin_fixed(&m, x.b, CRDT_ACTOR_BYTES) < 0 ||
            crdt__mp_uint(&m, seq) < 0 ||
            crdt__mp_bin_fixed(&m, hash, CRDT_HASH_BYTES) < 0)
            return CRDT_EPROTO;
        if (memcmp(x.b, a->b, CRDT_ACTOR_BYTES) == 0)
            return CRDT_OK;
    }
    return CRDT_ENOTFOUND;
}

/*
 * Signatures of a run: a change stored without its signature is proven
 * by the changes after it in the same log, each chained to the one
 * before (same actor, next seq, prev = its hash), up to a signed change
 * whose signature verifies. A log never keeps an unsigned change
 * without such a successor (a merge takes one only with the rest of its
 * run, merge.c), so every change a replica holds can be served with its
 * proof: the chain up to the next signed change (docs/storage.md).
 */
int
crdt__log_prove(MDB_txn *txn, MDB_dbi dbi, const crdt_change *c)
{
    crdt_change prev = *c, next;
    crdt__logrec lr;
    MDB_cursor *cur;
    MDB_val k, v;
    size_t idx;
    int rc;

    if (c->sig != NULL)
        return crdt_change_verify(c);
    if ((rc = crdt__mdb_err(mdb_cursor_open(txn, dbi, &cur))) < 0)
        return rc;
    /* the successors, in the rest of a run and the records after it;
     * prev keeps only values (hash, seq, actor), never a view */
    rc = crdt__logrec_find(&lr, &idx, cur, NULL, 0, &c->actor,
                           c->seq + c->n_ops);
    if (rc < 0) {
        mdb_cursor_close(cur);
        return rc == CRDT_ENOTFOUND ? CRDT_EAUTH : rc;
    }
    for (;;) {
        int done = 0;
        rc = CRDT_EAUTH; /* the run ends unsigned: nothing vouches for it */
        for (; idx < lr.n && !done; idx++) {
            if (crdt__logrec_decode(&next, &lr, idx) < 0 ||
                !crdt_change_proves(&next, &prev)) {
                done = 1;
                break;
            }
            if (next.sig != NULL) {
                rc = crdt_change_verify(&next);
                done = 2;
                break;
            }
            prev = next;
        }
        crdt__logrec_close(&lr);
        if (done)
            break;
        int got = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
        if (got != 0 && got != MDB_NOTFOUND) {
            rc = crdt__mdb_err(got); /* no answer, not "unproven" */
            break;
        }
        if (got != 0 || k.mv_size != 16 ||
            memcmp(k.mv_data, c->actor.b, CRDT_ACTOR_BYTES) != 0 ||
            crdt__logrec_open(&lr, k.mv_data, k.mv_size, v.mv_data,
                              v.mv_size) < 0)
            break;
        idx = 0;
    }
    mdb_cursor_close(cur);
    return rc;
}
