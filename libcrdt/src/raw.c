/*
 * raw.c: the storage layer's interface for libepoch (crdt/raw.h).
 *
 * Invariants:
 *  (1) Every state write through here keeps the slot's multiset hash.
 *  (2) Moving log records (archive, replay) keeps the meta counters
 *      ops_in_log / changes_in_log equal to what the log holds.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "seq.h"

int crdt__vv_from_heads(crdt_vv **out, MDB_txn *txn, crdt_replica *r);

static int spare_store(crdt_raw *t);

struct crdt_raw_cursor {
    MDB_cursor *c;
};

int
crdt_raw_begin(crdt_raw **out, crdt_replica *r, int write)
{
    crdt_raw *t;
    int rc;

    if (out == NULL || r == NULL)
        return CRDT_EINVAL;
    t = calloc(1, sizeof *t);
    if (t == NULL)
        return CRDT_ENOMEM;
    t->w = &t->own;
    t->write = write;
    if (write) {
        rc = crdt__wctx_begin(&t->own, r, 0);
        t->own.seq_foreign = 1; /* raw writes bypass the sequence cache */
    } else {
        t->own.r = r;
        rc = crdt__txn_begin(r, 0, &t->own.txn);
        if (rc == CRDT_OK &&
            (rc = crdt__state_slot(t->own.txn, r, &t->own.state_slot)) < 0)
            crdt__txn_end(r, t->own.txn, 0);
        if (rc == CRDT_OK)
            t->own.state = r->dbi[CRDT_DB_STATE0 + t->own.state_slot];
    }
    if (rc < 0) {
        free(t);
        return rc;
    }
    *out = t;
    return CRDT_OK;
}

int
crdt_raw_begin_base(crdt_raw **out, crdt_raw *w)
{
    crdt_raw *t;
    int rc;

    if (out == NULL || w == NULL || !w->write || w->w->txn == NULL)
        return CRDT_EINVAL;
    if ((rc = crdt_raw_begin(&t, w->w->r, 0)) < 0)
        return rc;
    /* a write txn's id is the last committed one's plus one, a read
     * txn's the last committed one's */
    if (mdb_txn_id(t->own.txn) + 1 != mdb_txn_id(w->w->txn)) {
        crdt_raw_abort(t);
        return CRDT_EBUSY;
    }
    *out = t;
    return CRDT_OK;
}

int
crdt_raw_commit(crdt_raw *t)
{
    int rc;

    if (t == NULL)
        return CRDT_EINVAL;
    if (t->write) {
        if ((rc = spare_store(t)) < 0) {
            crdt__wctx_abort(t->w);
            free(t);
            return crdt__full(rc);
        }
        rc = crdt__wctx_commit(t->w);
    } else {
        rc = crdt__txn_end(t->w->r, t->w->txn, 0);
        t->w->txn = NULL;
    }
    free(t);
    return crdt__full(rc);
}

void
crdt_raw_abort(crdt_raw *t)
{
    if (t == NULL)
        return;
    crdt__wctx_abort(t->w);
    free(t);
}

int
crdt_replica_grow(crdt_replica *r)
{
    return r ? crdt__store_grow(r) : CRDT_EINVAL;
}

crdt_replica *
crdt_raw_replica(crdt_raw *t)
{
    return t->w->r;
}

static MDB_dbi
dbi(crdt_raw *t, crdt_db db)
{
    return t->w->r->dbi[db];
}

int
crdt_raw_get(crdt_raw *t, crdt_db db, const void *k, size_t kl,
             const void **v_out, size_t *vl_out)
{
    MDB_val key = { kl, (void *)k }, v;
    int rc;

    if ((unsigned)db >= CRDT_DB__COUNT)
        return CRDT_EINVAL;
    rc = mdb_get(t->w->txn, dbi(t, db), &key, &v);
    if (rc != 0)
        return crdt__mdb_err(rc);
    *v_out = v.mv_data;
    *vl_out = v.mv_size;
    return CRDT_OK;
}

int
crdt_raw_put(crdt_raw *t, crdt_db db, const void *k, size_t kl,
             const void *v, size_t vl)
{
    MDB_val key = { kl, (void *)k }, val = { vl, (void *)v };

    if ((unsigned)db >= CRDT_DB__COUNT || !t->write)
        return CRDT_EINVAL;
    if (db == CRDT_DB_STATE0 || db == CRDT_DB_STATE1)
        return CRDT_EINVAL; /* keeps (1): use the state calls */
    return crdt__full(
        crdt__mdb_err(mdb_put(t->w->txn, dbi(t, db), &key, &val, 0)));
}

int
crdt_raw_del(crdt_raw *t, crdt_db db, const void *k, size_t kl)
{
    MDB_val key = { kl, (void *)k };

    if ((unsigned)db >= CRDT_DB__COUNT || !t->write ||
        db == CRDT_DB_STATE0 || db == CRDT_DB_STATE1)
        return CRDT_EINVAL;
    return crdt__full(crdt__mdb_err(mdb_del(t->w->txn, dbi(t, db), &key,
                                            NULL)));
}

int
crdt_raw_clear(crdt_raw *t, crdt_db db)
{
    if ((unsigned)db >= CRDT_DB__COUNT || !t->write)
        return CRDT_EINVAL;
    if (dbi(t, db) == t->w->state) {
        crdt__feed_all(t->w);
        t->w->copies_waiting = 0;
        t->w->kept_defaults = 0;
    }
    return crdt__full(crdt__mdb_err(mdb_drop(t->w->txn, dbi(t, db), 0)));
}

int
crdt_raw_count(uint64_t *out, crdt_raw *t, crdt_db db)
{
    MDB_stat st;
    int rc;

    if ((unsigned)db >= CRDT_DB__COUNT)
        return CRDT_EINVAL;
    rc = crdt__mdb_err(mdb_stat(t->w->txn, dbi(t, db), &st));
    if (rc == CRDT_OK)
        *out = st.ms_entries;
    return rc;
}

int
crdt_raw_cursor_open(crdt_raw_cursor **out, crdt_raw *t, crdt_db db)
{
    crdt_raw_cursor *c;
    int rc;

    if ((unsigned)db >= CRDT_DB__COUNT)
        return CRDT_EINVAL;
    c = calloc(1, sizeof *c);
    if (c == NULL)
        return CRDT_ENOMEM;
    rc = crdt__mdb_err(mdb_cursor_open(t->w->txn, dbi(t, db), &c->c));
    if (rc < 0) {
        free(c);
        return rc;
    }
    *out = c;
    return CRDT_OK;
}

void
crdt_raw_cursor_close(crdt_raw_cursor *c)
{
    if (c == NULL)
        return;
    mdb_cursor_close(c->c);
    free(c);
}

static int
cursor_out(int rc, MDB_val *k, MDB_val *v, const void **k_out,
           size_t *kl_out, const void **v_out, size_t *vl_out)
{
    if (rc != 0)
        return crdt__mdb_err(rc);
    if (k_out) {
        *k_out = k->mv_data;
        *kl_out = k->mv_size;
    }
    if (v_out) {
        *v_out = v->mv_data;
        *vl_out = v->mv_size;
    }
    return CRDT_OK;
}

int
crdt_raw_cursor_seek(crdt_raw_cursor *c, const void *k, size_t kl,
                     const void **k_out, size_t *kl_out, const void **v_out,
                     size_t *vl_out)
{
    MDB_val key = { kl, (void *)k }, v;
    int rc = k ? mdb_cursor_get(c->c, &key, &v, MDB_SET_RANGE)
               : mdb_cursor_get(c->c, &key, &v, MDB_FIRST);

    return cursor_out(rc, &key, &v, k_out, kl_out, v_out, vl_out);
}

int
crdt_raw_cursor_next(crdt_raw_cursor *c, const void **k_out, size_t *kl_out,
                     const void **v_out, size_t *vl_out)
{
    MDB_val key, v;
    int rc = mdb_cursor_get(c->c, &key, &v, MDB_NEXT);

    return cursor_out(rc, &key, &v, k_out, kl_out, v_out, vl_out);
}

/* ---- state slots ---- */

crdt_db
crdt_raw_state_db(crdt_raw *t, int spare)
{
    return (crdt_db)(CRDT_DB_STATE0 + (t->w->state_slot ^ (spare ? 1 : 0)));
}

static const char *
hash_key(int slot)
{
    return slot ? "hash1" : "hash0";
}

/* t->spare_loaded: the spare hash is not in t->spare_acc yet; it is; or
 * it is and the slot was emptied in this txn, so keys put in increasing
 * order can be appended (see crdt_raw_spare_put). */
enum { SPARE_UNLOADED = 0, SPARE_LOADED = 1, SPARE_APPEND = 2 };

static int
spare_load(crdt_raw *t)
{
    MDB_val hv;
    int spare = t->w->state_slot ^ 1, rc;

    if (t->spare_loaded)
        return CRDT_OK;
    memset(t->spare_acc, 0, sizeof t->spare_acc);
    rc = crdt__meta_get(t->w->txn, t->w->r, hash_key(spare), &hv);
    if (rc == CRDT_OK && hv.mv_size == 32)
        crdt__acc_load(t->spare_acc, hv.mv_data);
    else if (rc < 0 && rc != CRDT_ENOTFOUND)
        return rc;
    t->spare_loaded = SPARE_LOADED;
    return CRDT_OK;
}

static int
spare_store(crdt_raw *t)
{
    unsigned char b[32];

    if (!t->spare_dirty)
        return CRDT_OK;
    crdt__acc_bytes(b, t->spare_acc);
    t->spare_dirty = 0;
    return crdt__meta_put(t->w->txn, t->w->r, hash_key(t->w->state_slot ^ 1),
                          b, 32);
}

/* The write context's cursor, moved onto the spare slot (state.c moves it
 * back to the active slot when it needs it there). */
static int
spare_cursor(crdt__wctx *w, MDB_dbi db)
{
    int rc;

    if (w->cur != NULL && w->cur_dbi == db)
        return CRDT_OK;
    if (w->cur != NULL)
        mdb_cursor_close(w->cur);
    w->cur = NULL;
    w->cur_at = 0;
    if ((rc = mdb_cursor_open(w->txn, db, &w->cur)) != 0)
        return crdt__mdb_err(rc);
    w->cur_dbi = db;
    return CRDT_OK;
}

/* Put one entry into the spare slot; @p hashed: its hash is already in
 * a batch's sum (crdt_raw_spare_put_batch adds the sum), so only a value
 * it replaces is taken out here. */
static int
spare_put_one(crdt_raw *t, MDB_dbi db, const void *k, size_t kl,
              const void *v, size_t vl, int hashed)
{
    MDB_val key = { kl, (void *)k }, val = { vl, (void *)v };
    uint64_t h[4];
    int rc;

    if (t->spare_loaded == SPARE_APPEND) {
        /* a migration refilling the emptied slot in key order: append
         * at the end, with no descent, filling pages instead of splitting
         * them. LMDB checks the key is above the last one (so it is new:
         * nothing to take out of the hash) and refuses it otherwise */
        if ((rc = spare_cursor(t->w, db)) < 0)
            return rc;
        rc = mdb_cursor_put(t->w->cur, &key, &val, MDB_APPEND);
        if (rc == MDB_KEYEXIST) {
            t->spare_loaded = SPARE_LOADED; /* out of order: stop trying */
            val.mv_size = vl;
            val.mv_data = (void *)v;
        } else if (rc != 0) {
            return crdt__full(crdt__mdb_err(rc));
        } else {
            goto added;
        }
    }
    /* one descent for a new key; an existing one hands back its value */
    rc = mdb_put(t->w->txn, db, &key, &val, MDB_NOOVERWRITE);
    if (rc == MDB_KEYEXIST) {
        crdt__hash_entry(h, k, kl, val.mv_data, val.mv_size);
        for (int i = 0; i < 4; i++)
            t->spare_acc[i] -= h[i];
        val.mv_size = vl;
        val.mv_data = (void *)v;
        rc = mdb_put(t->w->txn, db, &key, &val, 0);
    }
    if (rc != 0)
        return crdt__full(crdt__mdb_err(rc));
added:
    if (!hashed) {
        crdt__hash_entry(h, k, kl, v, vl);
        for (int i = 0; i < 4; i++)
            t->spare_acc[i] += h[i];
    }
    t->spare_dirty = 1;
    return CRDT_OK;
}

int
crdt_raw_spare_put(crdt_raw *t, const void *k, size_t kl, const void *v,
                   size_t vl)
{
    int rc;

    if (t == NULL || !t->write)
        return CRDT_EINVAL;
    if ((rc = spare_load(t)) < 0)
        return crdt__full(rc);
    return crdt__full(spare_put_one(
        t, dbi(t, CRDT_DB_STATE0 + (t->w->state_slot ^ 1)), k, kl, v, vl, 0));
}

int
crdt_raw_spare_put_batch(crdt_raw *t, const crdt_raw_batch *b)
{
    const unsigned char *p, *end;
    MDB_dbi db;
    int rc = CRDT_OK;

    if (t == NULL || b == NULL || !t->write)
        return CRDT_EINVAL;
    if ((rc = spare_load(t)) < 0)
        return crdt__full(rc);
    db = dbi(t, CRDT_DB_STATE0 + (t->w->state_slot ^ 1));
    p = crdt__batch_entries(b, &end);
    while (p < end && rc == CRDT_OK) {
        uint32_t kl, vl;
        memcpy(&kl, p, 4); /* in memory only: the host's byte order */
        memcpy(&vl, p + 4, 4);
        rc = spare_put_one(t, db, p + 8, kl, p + 8 + kl, vl, 1);
        p += 8 + (size_t)kl + vl;
    }
    if (rc < 0) /* the caller aborts the txn: the sum does not matter */
        return crdt__full(rc);
    crdt__batch_sum_into(b, t->spare_acc);
    t->spare_dirty = 1;
    return CRDT_OK;
}

int
crdt_raw_spare_clear(crdt_raw *t)
{
    static const unsigned char zero[32];
    int spare = t->w->state_slot ^ 1;
    int rc;

    if (!t->write)
        return CRDT_EINVAL;
    rc = crdt__mdb_err(mdb_drop(t->w->txn, dbi(t, CRDT_DB_STATE0 + spare), 0));
    if (rc == CRDT_OK)
        rc = crdt__meta_put(t->w->txn, t->w->r, hash_key(spare), zero, 32);
    memset(t->spare_acc, 0, sizeof t->spare_acc);
    t->spare_loaded = rc == CRDT_OK ? SPARE_APPEND : SPARE_LOADED;
    t->spare_dirty = 0;
    return crdt__full(rc);
}

int
crdt_raw_swap_state(crdt_raw *t)
{
    crdt__wctx *w = t->w;
    static const unsigned char zero[32];
    MDB_val hv;
    int old = w->state_slot, rc;

    if (!t->write)
        return CRDT_EINVAL;
    if ((rc = spare_store(t)) < 0)
        return crdt__full(rc);
    t->spare_loaded = SPARE_UNLOADED; /* the slots trade places */
    if (w->cur != NULL) { /* the old slot is about to be emptied */
        mdb_cursor_close(w->cur);
        w->cur = NULL;
        w->cur_at = 0;
    }
    /* flush the active accumulator before leaving the slot */
    crdt__wctx_hash_settle(w);
    if (w->acc_dirty) {
        unsigned char b[32];
        crdt__acc_bytes(b, w->acc);
        if ((rc = crdt__meta_put(w->txn, w->r, hash_key(old), b, 32)) < 0)
            return crdt__full(rc);
        w->acc_dirty = 0;
    }
    if ((rc = crdt__meta_put_u64(w->txn, w->r, "slot", old ^ 1)) < 0)
        return crdt__full(rc);
    crdt__feed_all(w); /* a whole new state: say so, once */
    w->state_slot = old ^ 1;
    w->state = w->r->dbi[CRDT_DB_STATE0 + w->state_slot];
    w->copies_waiting = 0; /* another state: look again */
    w->kept_defaults = 0;
    memset(w->acc, 0, sizeof w->acc);
    rc = crdt__meta_get(w->txn, w->r, hash_key(w->state_slot), &hv);
    if (rc == CRDT_OK && hv.mv_size == 32)
        crdt__acc_load(w->acc, hv.mv_data);
    else if (rc < 0 && rc != CRDT_ENOTFOUND)
        return crdt__full(rc);
    rc = crdt__mdb_err(mdb_drop(w->txn, w->r->dbi[CRDT_DB_STATE0 + old], 0));
    if (rc == CRDT_OK)
        rc = crdt__meta_put(w->txn, w->r, hash_key(old), zero, 32);
    return crdt__full(rc);
}

int
crdt_raw_state_hash(crdt_raw *t, unsigned char *out)
{
    MDB_val hv;
    int rc;

    if (t->write) {
        crdt__wctx_hash_settle(t->w);
        crdt__acc_bytes(out, t->w->acc);
        return CRDT_OK;
    }
    memset(out, 0, 32);
    rc = crdt__meta_get(t->w->txn, t->w->r, hash_key(t->w->state_slot), &hv);
    if (rc == CRDT_OK && hv.mv_size == 32)
        memcpy(out, hv.mv_data, 32);
    return rc == CRDT_ENOTFOUND ? CRDT_OK : rc;
}

int
crdt_raw_state_rehash(crdt_raw *t, unsigned char *out)
{
    return crdt__state_rehash(t->w->txn, t->w->state, CRDT__STORE_FORMAT,
                              out);
}

/* ---- epochs and the log ---- */

int
crdt_raw_set_epoch(crdt_raw *t, uint64_t number, const unsigned char *id)
{
    int rc;

    if (!t->write)
        return CRDT_EINVAL;
    rc = crdt__meta_put_u64(t->w->txn, t->w->r, "epoch_num", number);
    if (rc == CRDT_OK)
        rc = crdt__meta_put(t->w->txn, t->w->r, "epoch_id", id,
                            CRDT_HASH_BYTES);
    return crdt__full(rc);
}

int
crdt_raw_get_epoch(crdt_raw *t, uint64_t *number_out, unsigned char *id_out)
{
    MDB_val v;
    int rc = crdt__meta_get(t->w->txn, t->w->r, "epoch_id", &v);

    if (rc < 0 || v.mv_size != CRDT_HASH_BYTES)
        return rc < 0 ? rc : CRDT_ECORRUPT;
    if (id_out)
        memcpy(id_out, v.mv_data, CRDT_HASH_BYTES);
    if (number_out)
        return crdt__meta_u64(t->w->txn, t->w->r, "epoch_num", number_out);
    return CRDT_OK;
}

/* Recount the log after records moved (keeps (2)). */
static int
recount_log(crdt__wctx *w)
{
    MDB_cursor *cur;
    MDB_val k, v;
    uint64_t ops = 0, changes = 0;
    crdt_change c;
    int rc;

    if ((rc = crdt__mdb_err(mdb_cursor_open(w->txn, w->r->dbi[CRDT_DB_LOG],
                                            &cur))) < 0)
        return rc;
    rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (rc == 0) {
        crdt__logrec lr;
        if (crdt__logrec_open(&lr, NULL, 0, v.mv_data, v.mv_size) ==
            CRDT_OK) {
            for (size_t i = 0; i < lr.n; i++)
                if (crdt__logrec_decode(&c, &lr, i) == CRDT_OK)
                    ops += c.n_ops;
            changes += lr.n;
            crdt__logrec_close(&lr);
        } else {
            changes++; /* a damaged run: the record check names it */
        }
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (rc != MDB_NOTFOUND)
        return crdt__mdb_err(rc);
    if ((rc = crdt__meta_put_u64(w->txn, w->r, "ops_in_log", ops)) < 0)
        return rc;
    return crdt__meta_put_u64(w->txn, w->r, "changes_in_log", changes);
}

static int
archive_one(crdt__wctx *w, MDB_cursor *cur, const MDB_val *k,
            const MDB_val *v, uint64_t epoch_number)
{
    unsigned char ak[24];
    MDB_val key = { sizeof ak, ak }, val = *v;
    int rc;

    crdt__be64(ak, epoch_number);
    memcpy(ak + 8, k->mv_data, 16);
    rc = mdb_put(w->txn, w->r->dbi[CRDT_DB_ARCHIVE], &key, &val, 0);
    if (rc == 0)
        rc = mdb_cursor_del(cur, 0);
    return crdt__mdb_err(rc);
}

int
crdt_raw_log_split(uint64_t *split_out, crdt_raw *t, crdt_db db)
{
    if (!t->write || (db != CRDT_DB_LOG && db != CRDT_DB_ARCHIVE &&
                      db != CRDT_DB_STAGING))
        return CRDT_EINVAL;
    return crdt__full(crdt__log_split(split_out, t->w->txn, dbi(t, db)));
}

int
crdt_raw_recount_log(crdt_raw *t)
{
    if (!t->write)
        return CRDT_EINVAL;
    return crdt__full(recount_log(t->w));
}

int
crdt_raw_archive_log(crdt_raw *t, const crdt_vv *upto, uint64_t epoch_number)
{
    crdt__wctx *w = t->w;
    MDB_cursor *cur;
    MDB_val k, v;
    int rc;

    if (!t->write)
        return CRDT_EINVAL;
    /* a run may straddle @p upto: its changes are judged one by one */
    if (upto != NULL &&
        (rc = crdt__log_split(NULL, w->txn, w->r->dbi[CRDT_DB_LOG])) < 0)
        return crdt__full(rc);
    if ((rc = crdt__mdb_err(mdb_cursor_open(w->txn, w->r->dbi[CRDT_DB_LOG],
                                            &cur))) < 0)
        return rc;
    rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (rc == 0) {
        crdt_actor a;
        uint64_t last;

        if (k.mv_size != 16) {
            rc = MDB_CORRUPTED;
            break;
        }
        memcpy(a.b, k.mv_data, 8);
        last = crdt__rd64((unsigned char *)k.mv_data + 8);
        if (upto == NULL || last <= crdt_vv_get(upto, &a)) {
            int e = archive_one(w, cur, &k, &v, epoch_number);
            if (e < 0) {
                mdb_cursor_close(cur);
                return crdt__full(e);
            }
            rc = mdb_cursor_get(cur, &k, &v, MDB_GET_CURRENT);
            if (rc == EINVAL || rc == MDB_NOTFOUND) /* deleted the last */
                rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
            continue;
        }
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (rc != MDB_NOTFOUND)
        return crdt__full(crdt__mdb_err(rc));
    return crdt__full(recount_log(w));
}

int
crdt_raw_prune_archive(crdt_raw *t, uint64_t keep_from)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rc;

    if (!t->write)
        return CRDT_EINVAL;
    if ((rc = crdt__mdb_err(mdb_cursor_open(t->w->txn,
                                            dbi(t, CRDT_DB_ARCHIVE), &cur))) < 0)
        return rc;
    rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (rc == 0 && k.mv_size >= 8 && crdt__rd64(k.mv_data) < keep_from) {
        rc = mdb_cursor_del(cur, 0);
        if (rc == 0)
            rc = mdb_cursor_get(cur, &k, &v, MDB_GET_CURRENT);
    }
    mdb_cursor_close(cur);
    return rc == 0 || rc == MDB_NOTFOUND || rc == EINVAL
               ? CRDT_OK : crdt__full(crdt__mdb_err(rc));
}

int
crdt_raw_heads_encode(unsigned char **buf_out, size_t *len_out, crdt_raw *t)
{
    MDB_cursor *cur;
    MDB_val k, v;
    crdt__enc e, items;
    size_t n = 0;
    int rc;

    if ((rc = crdt__mdb_err(mdb_cursor_open(t->w->txn, dbi(t, CRDT_DB_HEADS),
                                            &cur))) < 0)
        return rc;
    crdt__enc_init(&items);
    rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (rc == 0) {
        const unsigned char *p = v.mv_data;
        if (k.mv_size != 8 || v.mv_size != CRDT__HEAD_BYTES) {
            rc = MDB_CORRUPTED;
            break;
        }
        crdt__enc_bin(&items, k.mv_data, 8);
        msgpack_pack_uint64(&items.pk, crdt__rd64(p));
        crdt__enc_bin(&items, p + 8, 32);
        crdt__enc_bin(&items, p + 40, 32);
        crdt__enc_bin(&items, p + 72, 8);
        n++;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (rc != MDB_NOTFOUND) {
        crdt__enc_free(&items);
        return crdt__mdb_err(rc);
    }
    crdt__enc_init(&e);
    msgpack_pack_array(&e.pk, 5 * n);
    crdt__enc_raw(&e, items.sb.data, items.sb.size);
    rc = crdt__enc_ok(&items) < 0 ? CRDT_ENOMEM : crdt__enc_ok(&e);
    crdt__enc_free(&items);
    if (rc < 0) {
        crdt__enc_free(&e);
        return rc;
    }
    *buf_out = (unsigned char *)e.sb.data;
    *len_out = e.sb.size;
    return CRDT_OK;
}

static int
put_head(const crdt_head *h, void *ctx)
{
    crdt_raw *t = ctx;
    crdt__head hd;

    hd.seq = h->seq;
    memcpy(hd.hash, h->hash, CRDT_HASH_BYTES);
    memcpy(hd.pk, h->pk, CRDT_PUBKEY_BYTES);
    memcpy(hd.inc, h->inc, 8);
    return crdt__full(crdt__head_put(t->w->txn, t->w->r, &h->actor, &hd));
}

int
crdt_raw_heads_replace(crdt_raw *t, const unsigned char *buf, size_t len)
{
    int rc;

    if (!t->write)
        return CRDT_EINVAL;
    if ((rc = crdt_heads_parse(buf, len, NULL, NULL)) < 0)
        return rc; /* checked whole before anything is dropped */
    if ((rc = crdt__mdb_err(mdb_drop(t->w->txn, dbi(t, CRDT_DB_HEADS), 0))) < 0)
        return crdt__full(rc);
    return crdt__full(crdt_heads_parse(buf, len, put_head, t));
}

int
crdt_raw_vv(crdt_vv **out, crdt_raw *t)
{
    return crdt__vv_from_heads(out, t->w->txn, t->w->r);
}

int
crdt_raw_replay_log(crdt_merge_report *report, crdt_raw *t,
                    uint64_t archive_epoch)
{
    crdt__wctx *w = t->w;
    unsigned char cur_epoch[CRDT_HASH_BYTES];
    crdt_merge_report rep;
    MDB_cursor *cur;
    MDB_val k, v;
    int rc;

    if (!t->write)
        return CRDT_EINVAL;
    memset(&rep, 0, sizeof rep);
    if ((rc = crdt_raw_get_epoch(t, NULL, cur_epoch)) < 0)
        return rc;
    /* the passes below park, quarantine or archive single changes */
    if ((rc = crdt__log_split(NULL, w->txn, w->r->dbi[CRDT_DB_LOG])) < 0)
        return crdt__full(rc);
    if ((rc = crdt__mdb_err(mdb_cursor_open(w->txn, w->r->dbi[CRDT_DB_LOG],
                                            &cur))) < 0)
        return rc;
    rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (rc == 0) {
        crdt_change c;
        crdt__head h;
        unsigned char *copy;
        size_t len = v.mv_size;
        int e;

        copy = malloc(len);
        if (copy == NULL) {
            rc = ENOMEM;
            break;
        }
        memcpy(copy, v.mv_data, len);
        e = crdt_change_decode(&c, copy, len);
        if (e == CRDT_OK) {
            e = crdt__head_get(w->txn, w->r, &c.actor, &h);
            if (e == CRDT_ENOTFOUND) {
                memset(&h, 0, sizeof h);
                memcpy(h.pk, c.pubkey, 32);
                memcpy(h.inc, c.incarnation, 8);
                e = CRDT_OK;
            }
        }
        if (e == CRDT_OK && c.seq + c.n_ops - 1 == h.seq &&
            memcmp(c.hash, h.hash, CRDT_HASH_BYTES) != 0 &&
            crdt__log_prove(w->txn, w->r->dbi[CRDT_DB_LOG], &c) == CRDT_OK) {
            /* the snapshot folded another change for these seqs: an
             * equivocation (a copy of this replica wrote); ours is kept
             * in the quarantine, never taken as folded */
            static const char why[] = "equivocation: the snapshot holds "
                                      "another change for these seqs (a "
                                      "copied replica?); this one lost";
            uint64_t nq = 0;
            e = crdt__quarantine_ops(w, &c, CRDT_QK_EQUIVOCATION, why,
                                     sizeof why - 1, &nq);
            if (e == CRDT_OK)
                e = crdt__count_add(w->txn, w->r, "equivocations", 1);
            if (e == CRDT_OK)
                e = crdt__mdb_err(mdb_cursor_del(cur, 0));
            free(copy);
            if (e < 0) {
                mdb_cursor_close(cur);
                return crdt__full(e);
            }
            rep.conflicts++;
            rep.quarantined_ops += nq;
            rc = mdb_cursor_get(cur, &k, &v, MDB_GET_CURRENT);
            if (rc == EINVAL || rc == MDB_NOTFOUND)
                rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
            continue;
        }
        if (e == CRDT_OK && c.seq + c.n_ops - 1 <= h.seq) {
            /* folded into the snapshot already */
            e = archive_one(w, cur, &k, &v, archive_epoch);
            free(copy);
            if (e < 0) {
                mdb_cursor_close(cur);
                return crdt__full(e);
            }
            rc = mdb_cursor_get(cur, &k, &v, MDB_GET_CURRENT);
            if (rc == EINVAL || rc == MDB_NOTFOUND)
                rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
            continue;
        }
        /* a change stored without its signature whose run's signed end
         * is not in the log any more (a pass of the reset moved the end
         * beyond the target's cut to the quarantine, and a later reset
         * into a lower cut brought the rest back): nothing here proves
         * it, so it waits in the pending area, as merge.c's
         * drain_pending() leaves such a change, until a peer sends the
         * run again (docs/storage.md 5.5) */
        int proof = CRDT_OK, proved = 0;
        if (e == CRDT_OK && c.sig == NULL && c.seq == h.seq + 1 &&
            memcmp(c.prev, h.hash, CRDT_HASH_BYTES) == 0) {
            proof = crdt__log_prove(w->txn, w->r->dbi[CRDT_DB_LOG], &c);
            proved = 1;
        }
        if (e == CRDT_OK &&
            (c.seq > h.seq + 1 || (proved && proof == CRDT_EAUTH))) {
            /* its predecessors are not here (they reached us folded in a
             * snapshot of a losing epoch): park it until they come, from
             * whoever still holds them in a log or an archive */
            MDB_val pk, pv = { len, copy };
            unsigned char pkey[16];
            crdt__log_key(pkey, &c.actor, c.seq);
            pk.mv_size = sizeof pkey;
            pk.mv_data = pkey;
            e = crdt__mdb_err(mdb_put(w->txn, w->r->dbi[CRDT_DB_PENDING], &pk,
                                      &pv, 0));
            if (e == CRDT_OK)
                e = crdt__count_add(w->txn, w->r, "pending", 1);
            if (e == CRDT_OK)
                e = crdt__mdb_err(mdb_cursor_del(cur, 0));
            free(copy);
            if (e < 0) {
                mdb_cursor_close(cur);
                return crdt__full(e);
            }
            rep.pending++;
            rc = mdb_cursor_get(cur, &k, &v, MDB_GET_CURRENT);
            if (rc == EINVAL || rc == MDB_NOTFOUND)
                rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
            continue;
        }
        if (e == CRDT_OK && (c.seq != h.seq + 1 ||
                             memcmp(c.prev, h.hash, CRDT_HASH_BYTES) != 0)) {
            e = CRDT_ECONFLICT; /* two different changes for one seq */
        }
        /* a replayed change may have come with a peer's snapshot: check
         * its author's signature like any merge would */
        if (e == CRDT_OK) /* its signature, or its run's (chain.c) */
            e = proved ? proof
                       : crdt__log_prove(w->txn, w->r->dbi[CRDT_DB_LOG], &c);
        if (e == CRDT_OK &&
            (memcmp(c.pubkey, h.pk, CRDT_PUBKEY_BYTES) != 0 ||
             memcmp(c.incarnation, h.inc, 8) != 0))
            e = CRDT_EAUTH;
        if (e == CRDT_OK) {
            unsigned char at[16];
            memcpy(at, k.mv_data, sizeof at); /* a split log: 16 bytes */
            w->replay_key = at;
            e = crdt__apply_change(w, &c, 0, cur_epoch, &rep);
            w->replay_key = NULL;
        }
        if (e == CRDT_OK) {
            h.seq = c.seq + c.n_ops - 1;
            memcpy(h.hash, c.hash, CRDT_HASH_BYTES);
            e = crdt__head_put(w->txn, w->r, &c.actor, &h);
            rep.changes_applied++;
        }
        free(copy);
        if (e < 0) {
            mdb_cursor_close(cur);
            return crdt__full(e);
        }
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (rc != MDB_NOTFOUND)
        return crdt__full(crdt__mdb_err(rc));
    if ((rc = recount_log(w)) < 0)
        return crdt__full(rc);
    if (report)
        *report = rep;
    return CRDT_OK;
}

int
crdt_raw_merge(crdt_merge_report *report, crdt_raw *t,
               const crdt_bytes *changes, size_t n)
{
    crdt_merge_report rep;
    int rc;

    if (!t->write)
        return CRDT_EINVAL;
    memset(&rep, 0, sizeof rep);
    rc = crdt__merge_in(t->w, &rep, changes, NULL, n);
    if (rc == CRDT_OK && report)
        *report = rep;
    return crdt__full(rc);
}

int
crdt_raw_state_default(crdt_raw *t, const char *coll, const char *doc,
                       const char *field, const crdt_value *v)
{
    unsigned char k[CRDT__KEY_MAX + 8], val[16 + 4096];
    size_t cl, dl, fl, kl;
    MDB_val key, data;
    MDB_cursor *cur;
    int rc, n;

    if (!t->write || !crdt__name_ok(coll) || !crdt__name_ok(doc) ||
        !crdt__name_ok(field) || v == NULL)
        return CRDT_EINVAL;
    cl = strlen(coll);
    dl = strlen(doc);
    fl = strlen(field);
    kl = cl + dl + fl + 3;
    memcpy(k, coll, cl);
    k[cl] = 0;
    memcpy(k + cl + 1, doc, dl);
    k[cl + 1 + dl] = 0;
    memcpy(k + cl + dl + 2, field, fl);
    k[kl - 1] = 0;
    if ((rc = crdt__mdb_err(mdb_cursor_open(t->w->txn, t->w->state, &cur))) < 0)
        return rc;
    key.mv_size = kl;
    key.mv_data = k;
    rc = mdb_cursor_get(cur, &key, &data, MDB_SET_RANGE);
    int present = rc == 0 && key.mv_size > kl && memcmp(key.mv_data, k, kl) == 0;
    mdb_cursor_close(cur);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return crdt__mdb_err(rc);
    if (present)
        return CRDT_OK;
    memset(val, 0, 16);
    n = crdt__value_bytes(val + 16, sizeof val - 16, v);
    if (n < 0)
        return CRDT_ELIMIT;
    k[kl] = 'R';
    return crdt__full(
        crdt__state_put(t->w, k, kl + 1, val, 16 + (size_t)n, NULL));
}

int
crdt_raw_apply_op(crdt_raw *t, const crdt_op *op, uint64_t hlc,
                  const crdt_actor *actor, uint64_t seq)
{
    if (!t->write)
        return CRDT_EINVAL;
    return crdt__full(crdt__state_apply(t->w, op, hlc, actor, seq));
}

int
crdt_raw_apply_deleted(crdt_raw *t, const crdt_op *op, uint64_t hlc,
                       const crdt_actor *actor, uint64_t seq)
{
    if (!t->write || op == NULL || actor == NULL ||
        (op->kind != CRDT_OP_TINS && op->kind != CRDT_OP_LINS) ||
        op->len == 0)
        return CRDT_EINVAL;
    return crdt__full(crdt__seq_apply_deleted(t->w, op, hlc, actor, seq));
}
