/*
 * seq_cache.c: the per-replica cache of sequence fields' orders: a
 * write txn works on its own copies and hands them back at its commit,
 * a read borrows one that matches its snapshot (seq.h).
 */
#include <stdlib.h>
#include <string.h>

#include "seq_int.h"

#define CACHE_MAX 8

static int
same_key(const crdt__seq *s, MDB_dbi dbi, const crdt__seqkey *k)
{
    return s->dbi == dbi && s->key.len == k->len &&
           memcmp(s->key.b, k->b, k->len) == 0;
}

static int
cache_find(crdt_replica *r, MDB_dbi dbi, const crdt__seqkey *k)
{
    for (int i = 0; i < CACHE_MAX; i++)
        if (r->seq_cache[i] != NULL && same_key(r->seq_cache[i], dbi, k))
            return i;
    return -1;
}

/* A free slot, evicting an idle entry if needed; -1 if all are busy. */
static int
cache_slot(crdt_replica *r)
{
    for (int i = 0; i < CACHE_MAX; i++)
        if (r->seq_cache[i] == NULL)
            return i;
    for (int i = 0; i < CACHE_MAX; i++)
        if (!r->seq_cache[i]->busy) {
            crdt__seq_free(r->seq_cache[i]);
            r->seq_cache[i] = NULL;
            return i;
        }
    return -1;
}

static void
cache_drop(crdt_replica *r, crdt__seq *s)
{
    for (int i = 0; i < CACHE_MAX; i++)
        if (r->seq_cache[i] == s)
            r->seq_cache[i] = NULL;
    crdt__seq_free(s);
}

void
crdt__seq_cache_free(crdt_replica *r)
{
    for (int i = 0; i < CACHE_MAX; i++) {
        crdt__seq_free(r->seq_cache[i]);
        r->seq_cache[i] = NULL;
    }
}

int
crdt__seq_for_write(crdt__seq **out, crdt__wctx *w, const crdt__seqkey *k)
{
    crdt_replica *r = w->r;
    uint64_t id = mdb_txn_id(w->txn);
    crdt__seq *s;
    int i, rc;

    for (s = w->seq_touched; s != NULL; s = s->next_touched)
        if (same_key(s, w->state, k)) {
            *out = s;
            return s->broken ? CRDT_ENOMEM : CRDT_OK;
        }
    pthread_mutex_lock(&r->seq_lock);
    i = cache_find(r, w->state, k);
    if (i >= 0 && !r->seq_cache[i]->busy &&
        r->seq_cache[i]->valid_at == id - 1) {
        s = r->seq_cache[i];
        s->busy = 1;
        pthread_mutex_unlock(&r->seq_lock);
    } else {
        if (i >= 0 && !r->seq_cache[i]->busy) {
            crdt__seq_free(r->seq_cache[i]);
            r->seq_cache[i] = NULL;
        }
        pthread_mutex_unlock(&r->seq_lock);
        if ((rc = crdt__seq_build(&s, w->txn, w->state, k)) < 0)
            return rc;
        s->busy = 1;
        pthread_mutex_lock(&r->seq_lock);
        if (cache_find(r, w->state, k) < 0 && (i = cache_slot(r)) >= 0) {
            r->seq_cache[i] = s;
            s->cached = 1;
        }
        pthread_mutex_unlock(&r->seq_lock);
    }
    s->next_touched = w->seq_touched;
    w->seq_touched = s;
    *out = s;
    return CRDT_OK;
}

void
crdt__seq_wctx_commit(crdt__wctx *w, uint64_t txnid)
{
    crdt_replica *r = w->r;
    crdt__seq *s, *next;

    pthread_mutex_lock(&r->seq_lock);
    for (int i = 0; i < CACHE_MAX; i++) {
        crdt__seq *c = r->seq_cache[i];
        if (c != NULL && !c->busy) {
            if (c->valid_at == txnid - 1 && !w->seq_foreign)
                c->valid_at = txnid; /* this txn left it alone */
            else if (w->seq_foreign) {
                crdt__seq_free(c);
                r->seq_cache[i] = NULL;
            }
        }
    }
    for (s = w->seq_touched; s != NULL; s = next) {
        next = s->next_touched;
        s->next_touched = NULL;
        s->busy = 0;
        s->valid_at = txnid;
        if (!s->cached || s->broken || w->seq_foreign)
            s->cached ? cache_drop(r, s) : crdt__seq_free(s);
    }
    pthread_mutex_unlock(&r->seq_lock);
    w->seq_touched = NULL;
}

void
crdt__seq_wctx_abort(crdt__wctx *w)
{
    crdt_replica *r = w->r;
    crdt__seq *s, *next;

    if (w->seq_touched == NULL)
        return;
    pthread_mutex_lock(&r->seq_lock);
    for (s = w->seq_touched; s != NULL; s = next) {
        next = s->next_touched;
        s->cached ? cache_drop(r, s) : crdt__seq_free(s);
    }
    pthread_mutex_unlock(&r->seq_lock);
    w->seq_touched = NULL;
}

int
crdt__seq_for_read(crdt__seq **out, crdt_replica *r, MDB_txn *txn,
                   MDB_dbi dbi, const crdt__seqkey *k)
{
    uint64_t id = mdb_txn_id(txn);
    crdt__seq *s;
    int i, rc;

    pthread_mutex_lock(&r->seq_lock);
    i = cache_find(r, dbi, k);
    if (i >= 0 && !r->seq_cache[i]->busy && r->seq_cache[i]->valid_at == id) {
        *out = r->seq_cache[i];
        return CRDT_OK; /* held under the lock until release */
    }
    pthread_mutex_unlock(&r->seq_lock);
    if ((rc = crdt__seq_build(&s, txn, dbi, k)) < 0)
        return rc;
    s->valid_at = id;
    pthread_mutex_lock(&r->seq_lock);
    i = cache_find(r, dbi, k);
    if (i >= 0 && !r->seq_cache[i]->busy &&
        r->seq_cache[i]->valid_at < id) {
        crdt__seq_free(r->seq_cache[i]);
        r->seq_cache[i] = NULL;
        i = -1;
    }
    if (i < 0 && (i = cache_slot(r)) >= 0) {
        r->seq_cache[i] = s;
        s->cached = 1;
        *out = s;
        return CRDT_OK; /* held under the lock */
    }
    pthread_mutex_unlock(&r->seq_lock);
    *out = s;
    return CRDT_OK;
}

void
crdt__seq_release(crdt_replica *r, crdt__seq *s)
{
    if (s == NULL)
        return;
    if (s->cached)
        pthread_mutex_unlock(&r->seq_lock);
    else
        crdt__seq_free(s);
}

/* ---- writing records ---- */

