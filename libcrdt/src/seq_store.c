/*
 * seq_store.c: sequence fields in LMDB, the per-replica cache of their
 * in-memory order, and applying the sequence ops.
 *
 * State keys under a field's block P = coll 0 doc 0 field 0 KIND
 * (KIND 'T' text, 'L' list; docs/storage.md):
 *   P                              header: 0x01 (the field exists)
 *   P 'r' actor(8) ctr(8)          run: len(8) left(16) right(16) content
 *   P 'd' actor(8) ctr(8)          deleted ids ctr .. ctr+len-1: len(8)
 *   P 'p' wait(16) actor(8) ctr(8) insert held for element wait:
 *                                  left(16) right(16) n(8) content
 *   P 'v' actor(8) ctr(8)          list element value: hlc(8) actor(8) v
 *   P 'b' index(8)                 an epoch's compacted runs, in document
 *                                  order (index 0, 1, ...): n(1) actor(8)*n
 *                                  then segments of varint actor index,
 *                                  ctr, len, nbytes, content (seq_compact.c)
 *   P 'x' actor(8)                 ids of actor below ctr(8) were folded
 *                                  into an epoch (seq_compact.c)
 *   P 'a' actor(8) seq(8) tag(8) copy actor(8) ctr(8)
 *                                  a copy of the insert at (actor, seq) of
 *                                  the change tagged tag, applied before its
 *                                  original: len(8) (seq_copy.c)
 * An id is actor(8) ctr(8), ctr 0 for none.
 *
 * Invariants (each makes the state a function of the ops applied, not
 * of their order, so the state hash agrees):
 *  (1) a run grows only by its actor's next insert that continues it
 *      (next ctr, left origin its last element, same right origin);
 *      ops of one actor are applied in seq order, so the runs are the
 *      same everywhere;
 *  (2) delete records are the maximal intervals of the union of all
 *      deleted ranges (touching ranges are joined);
 *  (3) an insert is applied once: its first id already in a run means
 *      applied; an insert whose origin is missing is held (one record,
 *      keyed by what it waits for) and applied when that element comes;
 *      while an actor has an insert held, its later inserts are held
 *      behind it (waiting for its last element), so each actor's inserts
 *      are integrated in their order, which the merge rule needs;
 *  (4) a list value keeps the max (hlc, actor) stamp, and under one stamp
 *      the value whose bytes sort last.
 */
#include <stdlib.h>
#include <string.h>

#include "seq_int.h"

#define CACHE_MAX 8

void
crdt__seqkey_make(crdt__seqkey *k, const char *coll, size_t cl,
                  const char *doc, size_t dl, const char *field, size_t fl,
                  unsigned char kind)
{
    size_t n = 0;

    memcpy(k->b + n, coll, cl);
    n += cl;
    k->b[n++] = 0;
    memcpy(k->b + n, doc, dl);
    n += dl;
    k->b[n++] = 0;
    memcpy(k->b + n, field, fl);
    n += fl;
    k->b[n++] = 0;
    k->b[n++] = kind;
    k->len = n;
    k->kind = kind;
}

/* key = P sub id [id2] */
typedef struct {
    unsigned char b[sizeof(((crdt__seqkey *)0)->b) + 1 + 32];
    size_t len;
} skey;

static void
skey_make(skey *k, const crdt__seqkey *p, unsigned char sub,
          const crdt_actor *a, uint64_t ctr)
{
    memcpy(k->b, p->b, p->len);
    k->len = p->len;
    k->b[k->len++] = sub;
    if (a != NULL) {
        memcpy(k->b + k->len, a->b, 8);
        crdt__be64(k->b + k->len + 8, ctr);
        k->len += 16;
    }
}

static void
put_id(unsigned char *p, const crdt_seq_id *id)
{
    memcpy(p, id->actor.b, 8);
    crdt__be64(p + 8, id->ctr);
}

static void
get_id(crdt_seq_id *id, const unsigned char *p)
{
    memcpy(id->actor.b, p, 8);
    id->ctr = crdt__rd64(p + 8);
}

static int
id_eq(const crdt_seq_id *a, const crdt_seq_id *b)
{
    return a->ctr == b->ctr &&
           (a->ctr == 0 || memcmp(a->actor.b, b->actor.b, 8) == 0);
}

/* ---- building from the records ---- */

typedef struct {
    crdt_actor a;
    uint64_t c, l;
} drec;

static int dels_grow(seq_actor *sa);

static int
integrate_all(crdt__seq *s)
{
    seq_run **stack = NULL;
    size_t n = 0, cap = 0;
    int rc = CRDT_OK;

    for (size_t ai = 0; ai < s->nact && rc == CRDT_OK; ai++)
        for (size_t ri = 0; ri < s->act[ai].n && rc == CRDT_OK; ri++) {
            seq_run *root = s->act[ai].runs[ri];
            if (root->state == 2)
                continue;
            n = 0;
            if (n == cap) {
                cap = cap ? cap * 2 : 64;
                seq_run **ns = realloc(stack, cap * sizeof *ns);
                if (ns == NULL) {
                    rc = CRDT_ENOMEM;
                    break;
                }
                stack = ns;
            }
            stack[n++] = root;
            root->state = 1;
            while (n > 0 && rc == CRDT_OK) {
                seq_run *t = stack[n - 1], *dep = NULL;
                crdt_seq_id before = { t->actor, t->ctr - 1 };
                const crdt_seq_id *o[3] = { &t->left, &t->right, &before };
                seq_actor *ta = crdt__seq_actor(s, &t->actor, 0);
                /* the actor's previous run goes first (invariant 3) */
                if (ta != NULL) {
                    size_t lo = 0, hi = ta->n;
                    while (lo < hi) { /* t's index among the actor's runs */
                        size_t mid = (lo + hi) / 2;
                        if (ta->runs[mid]->ctr < t->ctr)
                            lo = mid + 1;
                        else
                            hi = mid;
                    }
                    before.ctr = lo > 0 ? ta->runs[lo - 1]->ctr : 0;
                }
                for (int i = 0; i < 3 && dep == NULL; i++) {
                    seq_run *d;
                    if (o[i]->ctr == 0)
                        continue;
                    d = crdt__seq_run_find(s, o[i]);
                    if (d == NULL || d == t || d->state == 1) {
                        rc = CRDT_ECORRUPT; /* missing or circular */
                        break;
                    }
                    /* the element must be in the part already stored */
                    if (d->state == 0)
                        dep = d;
                }
                if (rc < 0)
                    break;
                if (dep != NULL) {
                    if (n == cap) {
                        cap *= 2;
                        seq_run **ns = realloc(stack, cap * sizeof *ns);
                        if (ns == NULL) {
                            rc = CRDT_ENOMEM;
                            break;
                        }
                        stack = ns;
                    }
                    dep->state = 1;
                    stack[n++] = dep;
                    continue;
                }
                rc = crdt__seq_integrate(s, t, 0, t->len);
                t->state = 2;
                n--;
            }
        }
    free(stack);
    return rc;
}

static int
get_varint(const unsigned char **p, const unsigned char *end, uint64_t *out)
{
    uint64_t v = 0;

    for (int shift = 0; shift < 64; shift += 7) {
        if (*p >= end)
            return CRDT_ECORRUPT;
        v |= (uint64_t)(**p & 0x7f) << shift;
        if (!(*(*p)++ & 0x80)) {
            *out = v;
            return CRDT_OK;
        }
    }
    return CRDT_ECORRUPT;
}

/*
 * One 'b' record: segments placed at the end of the order, in turn (the
 * 'b' records come first in key order, so before any other run). Each
 * is a base run whose left origin is the element before it and whose
 * right origin is the end, as if one writer had typed the compacted
 * sequence from start to end: later inserts integrate against that.
 */
static int
base_load(crdt__seq *s, const unsigned char *v, size_t vl, int text,
          crdt_seq_id *last)
{
    const unsigned char *p = v, *end = v + vl, *actors;
    unsigned n;

    if (vl == 0)
        return CRDT_ECORRUPT;
    n = *p++;
    if (n == 0 || (size_t)(end - p) < 8 * (size_t)n)
        return CRDT_ECORRUPT;
    actors = p;
    p += 8 * (size_t)n;
    if (p == end)
        return CRDT_ECORRUPT;
    while (p < end) {
        crdt_actor a;
        uint64_t ai, c, len, nb;
        crdt_seq_id first, lastid;
        seq_actor *sa;
        seq_run *r;
        long i;
        int rc;

        if (get_varint(&p, end, &ai) < 0 || get_varint(&p, end, &c) < 0 ||
            get_varint(&p, end, &len) < 0 || get_varint(&p, end, &nb) < 0 ||
            ai >= n)
            return CRDT_ECORRUPT;
        memcpy(a.b, actors + 8 * ai, 8);
        if (c == 0 || len == 0 || len > (UINT64_C(1) << 61) ||
            c > (UINT64_C(1) << 61) - len || nb > (size_t)(end - p) ||
            nb < len)
            return CRDT_ECORRUPT; /* ids stay far below the codec's 2^62
                                     (seq_codec.c), ranges and inserts
                                     next to them too */
        first.actor = a;
        first.ctr = c;
        lastid.actor = a;
        lastid.ctr = c + len - 1;
        if (crdt__seq_run_find(s, &first) != NULL ||
            crdt__seq_run_find(s, &lastid) != NULL)
            return CRDT_ECORRUPT; /* overlaps a run */
        if ((r = crdt__seq_run_new(s, &a, c)) == NULL)
            return CRDT_ENOMEM;
        sa = crdt__seq_actor(s, &a, 0);
        {
            size_t lo = 0, hi = sa->n; /* r's index: runs sorted by ctr */
            while (lo < hi) {
                size_t mid = (lo + hi) / 2;
                if (sa->runs[mid]->ctr < c)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            i = (long)lo;
        }
        if ((size_t)i + 1 < sa->n && sa->runs[i + 1]->ctr < c + len)
            return CRDT_ECORRUPT; /* a run inside it */
        r->left = *last;
        if ((rc = crdt__seq_run_append(r, p, (size_t)nb, len, text)) < 0 ||
            (rc = crdt__seq_base_add(s, r)) < 0)
            return rc;
        r->state = 2;
        p += nb;
        *last = lastid;
    }
    return CRDT_OK;
}

int
crdt__seq_build(crdt__seq **out, MDB_txn *txn, MDB_dbi dbi, const crdt__seqkey *k)
{
    crdt__seq *s = calloc(1, sizeof *s);
    MDB_cursor *cur = NULL;
    MDB_val key, val;
    drec *d = NULL;
    size_t nd = 0, capd = 0;
    crdt_seq_id base_last = { { { 0 } }, 0 };
    int rc = CRDT_OK, mrc;

    if (s == NULL)
        return CRDT_ENOMEM;
    s->key = *k;
    s->dbi = dbi;
    if ((rc = crdt__mdb_err(mdb_cursor_open(txn, dbi, &cur))) < 0)
        goto fail;
    key.mv_size = k->len;
    key.mv_data = (void *)k->b;
    for (mrc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE); mrc == 0;
         mrc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        const unsigned char *kb = key.mv_data, *v = val.mv_data;
        crdt_actor a;
        uint64_t c;

        if (key.mv_size < k->len || memcmp(kb, k->b, k->len) != 0)
            break;
        if (key.mv_size == k->len) {
            s->has_header = 1;
            continue;
        }
        if (kb[k->len] == 'p') {
            seq_actor *sa;
            crdt_actor oa;
            uint64_t end;
            if (key.mv_size != k->len + 33 || val.mv_size < 40) {
                rc = CRDT_ECORRUPT;
                goto fail;
            }
            memcpy(oa.b, kb + k->len + 17, 8);
            end = crdt__rd64(kb + k->len + 25) + crdt__rd64(v + 32);
            if ((sa = crdt__seq_actor(s, &oa, 1)) == NULL) {
                rc = CRDT_ENOMEM;
                goto fail;
            }
            if (end > sa->held_end)
                sa->held_end = end;
            s->nparked++;
            continue;
        }
        if (kb[k->len] == 'v')
            continue;
        if (kb[k->len] == 'a') {
            if (key.mv_size != k->len + 41 || val.mv_size != 8) {
                rc = CRDT_ECORRUPT;
                goto fail;
            }
            s->ncopies++;
            continue;
        }
        if (kb[k->len] == 'b') {
            if (key.mv_size != k->len + 9 ||
                (rc = base_load(s, v, val.mv_size, k->kind == 'T',
                                &base_last)) < 0) {
                rc = rc < 0 ? rc : CRDT_ECORRUPT;
                goto fail;
            }
            continue;
        }
        if (kb[k->len] == 'x') {
            seq_actor *sa;
            if (key.mv_size != k->len + 9 || val.mv_size != 8) {
                rc = CRDT_ECORRUPT;
                goto fail;
            }
            memcpy(a.b, kb + k->len + 1, 8);
            if ((sa = crdt__seq_actor(s, &a, 1)) == NULL) {
                rc = CRDT_ENOMEM;
                goto fail;
            }
            sa->cut_end = crdt__rd64(v);
            continue;
        }
        if (key.mv_size != k->len + 17) {
            rc = CRDT_ECORRUPT;
            goto fail;
        }
        memcpy(a.b, kb + k->len + 1, 8);
        c = crdt__rd64(kb + k->len + 9);
        if (kb[k->len] == 'd') {
            seq_actor *sa;
            if (val.mv_size != 8 || c == 0) {
                rc = CRDT_ECORRUPT;
                goto fail;
            }
            if (nd == capd) {
                capd = capd ? capd * 2 : 16;
                drec *nd2 = realloc(d, capd * sizeof *d);
                if (nd2 == NULL) {
                    rc = CRDT_ENOMEM;
                    goto fail;
                }
                d = nd2;
            }
            d[nd].a = a;
            d[nd].c = c;
            d[nd].l = crdt__rd64(v);
            if ((sa = crdt__seq_actor(s, &a, 1)) == NULL) {
                rc = CRDT_ENOMEM;
                goto fail;
            }
            if (c + d[nd].l > sa->del_end)
                sa->del_end = c + d[nd].l;
            nd++;
        } else if (kb[k->len] == 'r') {
            seq_run *r;
            uint64_t len;
            if (val.mv_size < 40 || c == 0) {
                rc = CRDT_ECORRUPT;
                goto fail;
            }
            len = crdt__rd64(v);
            if ((r = crdt__seq_run_new(s, &a, c)) == NULL) {
                rc = CRDT_ENOMEM;
                goto fail;
            }
            get_id(&r->left, v + 8);
            get_id(&r->right, v + 24);
            if ((rc = crdt__seq_run_append(r, v + 40, val.mv_size - 40, len,
                                           k->kind == 'T')) < 0)
                goto fail;
        } else {
            rc = CRDT_ECORRUPT;
            goto fail;
        }
    }
    if (mrc != 0 && mrc != MDB_NOTFOUND) {
        rc = crdt__mdb_err(mrc);
        goto fail;
    }
    mdb_cursor_close(cur);
    cur = NULL;
    if ((rc = integrate_all(s)) < 0)
        goto fail;
    for (size_t i = 0; i < nd; i++) {
        seq_actor *sa;
        if ((rc = crdt__seq_mark_deleted(s, &d[i].a, d[i].c,
                                         d[i].c + d[i].l)) < 0)
            goto fail;
        /* the records in memory too: in key order, so sorted; disjoint
         * and never touching (invariant 2), or they are not ours */
        if ((sa = crdt__seq_actor(s, &d[i].a, 1)) == NULL) {
            rc = CRDT_ENOMEM;
            goto fail;
        }
        if (d[i].l == 0 || d[i].c + d[i].l < d[i].c ||
            (sa->ndel > 0 && d[i].c <= sa->dels[sa->ndel - 1].e)) {
            rc = CRDT_ECORRUPT;
            goto fail;
        }
        if (sa->ndel == sa->capdel && dels_grow(sa) < 0) {
            rc = CRDT_ENOMEM;
            goto fail;
        }
        sa->dels[sa->ndel].c = d[i].c;
        sa->dels[sa->ndel].e = d[i].c + d[i].l;
        sa->ndel++;
    }
    free(d);
    *out = s;
    return CRDT_OK;
fail:
    if (cur)
        mdb_cursor_close(cur);
    free(d);
    crdt__seq_free(s);
    return rc;
}

/* ---- the cache ---- */

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

static int
put_header(crdt__wctx *w, crdt__seq *s)
{
    static const unsigned char one = 1;
    MDB_val old;
    int rc;

    if (s->has_header)
        return CRDT_OK;
    rc = crdt__state_get(w, s->key.b, s->key.len, &old);
    if (rc == CRDT_ENOTFOUND)
        rc = crdt__state_put(w, s->key.b, s->key.len, &one, 1, NULL);
    if (rc == CRDT_OK)
        s->has_header = 1;
    return rc;
}

/*
 * Inside a merge (w->seq_defer) run and delete records are written
 * back, not through: an op changes the sequence in memory and notes
 * what the stored record held (a run only grows at its end, so its old
 * record is its first stored_len elements; an actor's delete records
 * are copied before their first change), and crdt__seq_flush_touched()
 * writes each changed record once: one state hash update and one
 * B-tree write per record, not one per op that touched it (a merge of a
 * text's history extends a run or joins a delete range many times). The
 * records written are the ones writing each op through would leave:
 * the state, and so its hash, is the same. Outside a merge every op
 * writes its records at once.
 */

/* Note @p r about to change (before it grows, or just made: @p fresh). */
static int
run_touch(crdt__seq *s, seq_run *r, int fresh)
{
    if (r->dirty)
        return CRDT_OK;
    if (s->ndirty == s->capdirty) {
        size_t cap = s->capdirty ? s->capdirty * 2 : 16;
        seq_run **n = realloc(s->dirty_runs, cap * sizeof *n);
        if (n == NULL)
            return CRDT_ENOMEM;
        s->dirty_runs = n;
        s->capdirty = cap;
    }
    r->stored_len = fresh ? 0 : r->len;
    r->stored_nbytes = fresh ? 0 : r->nbytes;
    r->dirty = 1;
    s->dirty_runs[s->ndirty++] = r;
    return CRDT_OK;
}

/* Keep @p sa's stored delete records before their first change. */
static int
dels_touch(crdt__seq *s, seq_actor *sa)
{
    if (sa->dels_dirty)
        return CRDT_OK;
    if (s->ndirtyd == s->capdirtyd) {
        size_t cap = s->capdirtyd ? s->capdirtyd * 2 : 4;
        crdt_actor *n = realloc(s->dirty_dels, cap * sizeof *n);
        if (n == NULL)
            return CRDT_ENOMEM;
        s->dirty_dels = n;
        s->capdirtyd = cap;
    }
    free(sa->dels0);
    sa->dels0 = NULL;
    if (sa->ndel > 0) {
        if ((sa->dels0 = malloc(sa->ndel * sizeof *sa->dels0)) == NULL)
            return CRDT_ENOMEM;
        memcpy(sa->dels0, sa->dels, sa->ndel * sizeof *sa->dels0);
    }
    sa->ndel0 = sa->ndel;
    sa->dels_dirty = 1;
    s->dirty_dels[s->ndirtyd++] = sa->actor;
    return CRDT_OK;
}

/* Delete record (@p a, @p c): now @p len, stored @p old (0: none). */
static int
put_del_record(crdt__wctx *w, crdt__seq *s, const crdt_actor *a, uint64_t c,
               uint64_t len, uint64_t old)
{
    unsigned char ov[8], nv[8];
    MDB_val o = { 8, ov };
    skey k;

    if (len == old)
        return CRDT_OK;
    /* no state_get put the cursor on this key: no in-place overwrite */
    w->cur_at = 0;
    skey_make(&k, &s->key, 'd', a, c);
    crdt__be64(ov, old);
    crdt__be64(nv, len);
    return len == 0 ? crdt__state_del(w, k.b, k.len, &o)
                    : crdt__state_put(w, k.b, k.len, nv, 8,
                                      old ? &o : NULL);
}

/* Room for one more delete record of @p sa at the end: the free slots
 * before the array are taken back first, then the allocation grows. */
static int
dels_grow(seq_actor *sa)
{
    if (sa->dels_skip > 0) {
        seq_ival *base = sa->dels - sa->dels_skip;
        memmove(base, sa->dels, sa->ndel * sizeof *sa->dels);
        sa->capdel += sa->dels_skip;
        sa->dels = base;
        sa->dels_skip = 0;
        if (sa->ndel < sa->capdel)
            return CRDT_OK;
    }
    {
        size_t cap = sa->capdel ? sa->capdel * 2 : 8;
        seq_ival *nv = realloc(sa->dels, cap * sizeof *nv);
        if (nv == NULL)
            return CRDT_ENOMEM;
        sa->dels = nv;
        sa->capdel = cap;
    }
    return CRDT_OK;
}

/* Index of the first delete record of @p sa ending at or after @p c. */
static size_t
dels_from(const seq_actor *sa, uint64_t c)
{
    size_t lo = 0, hi = sa->ndel;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (sa->dels[mid].e < c)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Join [c, e) of @p a into the delete records (invariant 2): the
 * records it overlaps or touches become one. */
static int
put_deleted(crdt__wctx *w, crdt__seq *s, const crdt_actor *a, uint64_t c,
            uint64_t e)
{
    seq_actor *sa = crdt__seq_actor(s, a, 1);
    size_t lo, hi;
    uint64_t nc = c, ne = e, at_nc = 0;
    int rc;

    if (sa == NULL)
        return CRDT_ENOMEM;
    lo = dels_from(sa, c);
    for (hi = lo; hi < sa->ndel && sa->dels[hi].c <= e; hi++) {
        if (sa->dels[hi].c <= c && sa->dels[hi].e >= e)
            return CRDT_OK; /* already all deleted */
        if (sa->dels[hi].c < nc)
            nc = sa->dels[hi].c;
        if (sa->dels[hi].e > ne)
            ne = sa->dels[hi].e;
    }
    if (w->seq_defer) {
        if ((rc = dels_touch(s, sa)) < 0)
            return rc;
    } else { /* through: the records joined go, the one at nc is put */
        for (size_t i = lo; i < hi; i++) {
            uint64_t l = sa->dels[i].e - sa->dels[i].c;
            if (sa->dels[i].c == nc)
                at_nc = l;
            else if ((rc = put_del_record(w, s, a, sa->dels[i].c, 0, l)) < 0)
                return rc;
        }
        if ((rc = put_del_record(w, s, a, nc, ne - nc, at_nc)) < 0)
            return rc;
    }
    /* the records before lo or those from hi on move, whichever are
     * fewer (a text's deletes often join old records, near the start):
     * moving the ones before lo leaves free slots before the array */
    if (hi == lo && sa->dels_skip > 0 && lo < sa->ndel - lo) {
        memmove(sa->dels - 1, sa->dels, lo * sizeof *sa->dels);
        sa->dels--;
        sa->dels_skip--;
        sa->capdel++;
        sa->ndel++;
    } else if (hi == lo) { /* a new record at lo */
        if (sa->ndel == sa->capdel && dels_grow(sa) < 0)
            return CRDT_ENOMEM;
        memmove(&sa->dels[lo + 1], &sa->dels[lo],
                (sa->ndel - lo) * sizeof *sa->dels);
        sa->ndel++;
    } else if (hi - lo > 1 && lo < sa->ndel - hi) {
        size_t k = hi - lo - 1; /* records that go */
        memmove(sa->dels + k, sa->dels, lo * sizeof *sa->dels);
        sa->dels += k;
        sa->dels_skip += k;
        sa->capdel -= k;
        sa->ndel -= k;
    } else if (hi - lo > 1) {
        memmove(&sa->dels[lo + 1], &sa->dels[hi],
                (sa->ndel - hi) * sizeof *sa->dels);
        sa->ndel -= hi - lo - 1;
    }
    sa->dels[lo].c = nc;
    sa->dels[lo].e = ne;
    return CRDT_OK;
}

/* Write @p sa's delete records that differ from the stored ones. */
static int
flush_dels(crdt__wctx *w, crdt__seq *s, seq_actor *sa)
{
    const seq_ival *o = sa->dels0, *n = sa->dels;
    size_t i = 0, j = 0;
    int rc = CRDT_OK;

    while (rc == CRDT_OK && (i < sa->ndel0 || j < sa->ndel)) {
        if (j == sa->ndel || (i < sa->ndel0 && o[i].c < n[j].c)) {
            rc = put_del_record(w, s, &sa->actor, o[i].c, 0,
                                o[i].e - o[i].c); /* gone */
            i++;
        } else if (i == sa->ndel0 || n[j].c < o[i].c) {
            rc = put_del_record(w, s, &sa->actor, n[j].c, n[j].e - n[j].c,
                                0); /* new */
            j++;
        } else {
            rc = put_del_record(w, s, &sa->actor, n[j].c, n[j].e - n[j].c,
                                o[i].e - o[i].c);
            i++;
            j++;
        }
    }
    if (rc == CRDT_OK) {
        free(sa->dels0);
        sa->dels0 = NULL;
        sa->ndel0 = 0;
        sa->dels_dirty = 0;
    }
    return rc;
}

static int
actor_cmp(const void *x, const void *y)
{
    return memcmp(x, y, CRDT_ACTOR_BYTES);
}

static int
run_cmp(const void *x, const void *y)
{
    const seq_run *a = *(seq_run *const *)x, *b = *(seq_run *const *)y;
    int c = memcmp(a->actor.b, b->actor.b, CRDT_ACTOR_BYTES);

    if (c != 0)
        return c;
    return a->ctr < b->ctr ? -1 : a->ctr > b->ctr;
}

/* Already in key order? A merge of one writer's history touches its
 * runs in the order they were made, which is their keys' order: the
 * sort is then skipped. */
static int
runs_sorted(seq_run *const *v, size_t n)
{
    for (size_t i = 1; i < n; i++)
        if (run_cmp(&v[i - 1], &v[i]) > 0)
            return 0;
    return 1;
}

/* The record of run @p r: its first @p len elements, @p nbytes bytes. */
static size_t
run_value(unsigned char *v, const seq_run *r, uint64_t len, size_t nbytes)
{
    crdt__be64(v, len);
    put_id(v + 8, &r->left);
    put_id(v + 24, &r->right);
    memcpy(v + 40, r->bytes, nbytes);
    return 40 + nbytes;
}

/* Write what @p s changed in memory (see above), in key order: the
 * delete records ('d'), then the runs ('r'). */
static int
seq_flush(crdt__wctx *w, crdt__seq *s)
{
    unsigned char small[512], *buf = small;
    size_t bufcap = sizeof small;
    int rc = CRDT_OK;

    /* actors in key order: the records go in key order */
    if (s->ndirtyd > 1)
        qsort(s->dirty_dels, s->ndirtyd, sizeof *s->dirty_dels, actor_cmp);
    for (size_t i = 0; i < s->ndirtyd && rc == CRDT_OK; i++) {
        seq_actor *sa = crdt__seq_actor(s, &s->dirty_dels[i], 0);
        if (sa != NULL && sa->dels_dirty)
            rc = flush_dels(w, s, sa);
    }
    if (rc < 0)
        return rc;
    s->ndirtyd = 0;

    if (s->ndirty > 1 && !runs_sorted(s->dirty_runs, s->ndirty))
        qsort(s->dirty_runs, s->ndirty, sizeof *s->dirty_runs, run_cmp);
    for (size_t i = 0; i < s->ndirty && rc == CRDT_OK; i++) {
        seq_run *r = s->dirty_runs[i];
        MDB_val old;
        size_t vl = 40 + r->nbytes, ol = 0;
        skey k;

        if (2 * vl > bufcap) {
            unsigned char *nb = malloc(2 * vl);
            if (nb == NULL)
                return CRDT_ENOMEM;
            if (buf != small)
                free(buf);
            buf = nb;
            bufcap = 2 * vl;
        }
        run_value(buf, r, r->len, r->nbytes);
        if (r->stored_len > 0)
            ol = run_value(buf + vl, r, r->stored_len, r->stored_nbytes);
        old.mv_size = ol;
        old.mv_data = buf + vl;
        skey_make(&k, &s->key, 'r', &r->actor, r->ctr);
        w->cur_at = 0; /* the cursor is not on this key: no overwrite */
        rc = crdt__state_put(w, k.b, k.len, buf, vl,
                             r->stored_len > 0 ? &old : NULL);
        if (rc == CRDT_OK)
            r->dirty = 0;
    }
    if (buf != small)
        free(buf);
    if (rc == CRDT_OK)
        s->ndirty = 0;
    return rc;
}

int
crdt__seq_flush_touched(crdt__wctx *w)
{
    int rc = CRDT_OK;

    for (crdt__seq *s = w->seq_touched; s != NULL && rc == CRDT_OK;
         s = s->next_touched)
        if (s->ndirty > 0 || s->ndirtyd > 0)
            rc = seq_flush(w, s);
    return rc;
}

/* ---- applying ---- */

typedef struct {
    crdt_seq_id *v; /* ranges as (id, len in ctr... ) pairs: id + count */
    uint64_t *n;
    size_t len, cap;
} worklist;

static int
work_push(worklist *wl, const crdt_actor *a, uint64_t c, uint64_t n)
{
    if (wl->len == wl->cap) {
        size_t cap = wl->cap ? wl->cap * 2 : 8;
        crdt_seq_id *v = realloc(wl->v, cap * sizeof *v);
        uint64_t *nn;
        if (v == NULL)
            return CRDT_ENOMEM;
        wl->v = v;
        if ((nn = realloc(wl->n, cap * sizeof *nn)) == NULL)
            return CRDT_ENOMEM;
        wl->n = nn;
        wl->cap = cap;
    }
    wl->v[wl->len].actor = *a;
    wl->v[wl->len].ctr = c;
    wl->n[wl->len] = n;
    wl->len++;
    return CRDT_OK;
}

static int
park(crdt__wctx *w, crdt__seq *s, const crdt_seq_id *wait,
     const crdt_actor *actor, uint64_t ctr, const crdt_seq_id *left,
     const crdt_seq_id *right, const void *bytes, size_t nb, uint64_t n)
{
    unsigned char *v;
    skey k;
    MDB_val old;
    int rc;

    skey_make(&k, &s->key, 'p', &wait->actor, wait->ctr);
    memcpy(k.b + k.len, actor->b, 8);
    crdt__be64(k.b + k.len + 8, ctr);
    k.len += 16;
    rc = crdt__state_get(w, k.b, k.len, &old);
    if (rc != CRDT_ENOTFOUND)
        return rc; /* held already (invariant 3) */
    if ((v = malloc(40 + nb)) == NULL)
        return CRDT_ENOMEM;
    put_id(v, left);
    put_id(v + 16, right);
    crdt__be64(v + 32, n);
    memcpy(v + 40, bytes, nb);
    rc = crdt__state_put(w, k.b, k.len, v, 40 + nb, NULL);
    free(v);
    if (rc == CRDT_OK) {
        seq_actor *sa = crdt__seq_actor(s, actor, 1);
        if (sa == NULL)
            return CRDT_ENOMEM;
        s->nparked++;
        if (ctr + n > sa->held_end)
            sa->held_end = ctr + n;
    }
    return rc;
}

/* Mark new ids [c, c + n) of @p a deleted if a delete came first. */
static int
early_deletes(crdt__seq *s, const crdt_actor *a, uint64_t c, uint64_t n)
{
    seq_actor *sa = crdt__seq_actor(s, a, 0);
    int rc = CRDT_OK;

    if (sa == NULL || sa->del_end <= c)
        return CRDT_OK;
    /* the records ending after c (ending at c: nothing of ours) */
    for (size_t i = dels_from(sa, c + 1); i < sa->ndel && rc == CRDT_OK &&
                                          sa->dels[i].c < c + n;
         i++) {
        crdt_actor ac = *a; /* the actor array may move: copy it */
        uint64_t dc = sa->dels[i].c, de = sa->dels[i].e;
        rc = crdt__seq_mark_deleted(s, &ac, dc, de);
        sa = crdt__seq_actor(s, &ac, 0);
    }
    return rc;
}

/*
 * A keystroke: the insert continues its actor's newest run, which ends
 * just before it, and nothing of this actor is held or folded there. The
 * checks of ins_one() then all pass without a lookup by id (the id is
 * past every run of the actor; the left origin is the run's last
 * element; the right origin, the run's, follows it: see
 * crdt__seq_typing_frag), and the run and its last fragment grow.
 * 1: done (rc in *rc); 0: not such an insert, ins_one() decides.
 */
static int
ins_typing(crdt__wctx *w, crdt__seq *s, const crdt_actor *actor, uint64_t ctr,
           const crdt_seq_id *left, const crdt_seq_id *right,
           const void *bytes, size_t nb, uint64_t n, worklist *wl, int *rc)
{
    seq_actor *sa = crdt__seq_actor(s, actor, 0);
    seq_run *r;
    seq_frag *last;

    if (sa == NULL || sa->n == 0 || sa->held_end != 0 || ctr < sa->cut_end)
        return 0;
    r = sa->runs[sa->n - 1];
    if (r->base || r->ctr + r->len != ctr || left->ctr + 1 != ctr ||
        memcmp(left->actor.b, actor->b, CRDT_ACTOR_BYTES) != 0 ||
        !id_eq(right, &r->right) ||
        (last = crdt__seq_typing_frag(s, r, right)) == NULL)
        return 0;
    if ((*rc = put_header(w, s)) < 0 || (*rc = run_touch(s, r, 0)) < 0 ||
        (*rc = crdt__seq_run_append(r, bytes, nb, n,
                                    s->key.kind == 'T')) < 0)
        return 1;
    crdt__seq_typing_grow(s, last, n);
    if ((*rc = early_deletes(s, actor, ctr, n)) < 0)
        return 1;
    *rc = s->nparked > 0 ? work_push(wl, actor, ctr, n) : CRDT_OK;
    return 1;
}

static int
ins_one(crdt__wctx *w, crdt__seq *s, const crdt_actor *actor, uint64_t ctr,
        const crdt_seq_id *left, const crdt_seq_id *right, const void *bytes,
        size_t nb, uint64_t n, worklist *wl, int unparked)
{
    crdt_seq_id id = { *actor, ctr }, prev_id = { *actor, ctr - 1 };
    seq_actor *sa;
    seq_run *r;
    uint64_t off;
    int rc;

    if (ins_typing(w, s, actor, ctr, left, right, bytes, nb, n, wl, &rc))
        return rc;
    if (crdt__seq_run_find(s, &id) != NULL)
        return CRDT_OK; /* applied before (invariant 3) */
    if ((sa = crdt__seq_actor(s, actor, 0)) != NULL && ctr < sa->cut_end)
        return CRDT_OK; /* applied before an epoch folded it (or dropped
                           it, deleted): never again */
    if (!unparked && sa != NULL && sa->held_end > ctr)
        return CRDT_OK; /* held already: this actor's inserts come in
                           order, so one at or after it is held only if
                           this one was applied before (a reset replays
                           its log over a state that holds it) */
    /* ids of this actor are never reused: an insert overlapping a later
     * run of its actor is not from an honest writer; ignore it */
    if ((sa = crdt__seq_actor(s, actor, 0)) != NULL && sa->n > 0 &&
        sa->runs[sa->n - 1]->ctr > ctr) {
        size_t lo = 0, hi = sa->n; /* the first run starting after ctr */
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (sa->runs[mid]->ctr <= ctr)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < sa->n && sa->runs[lo]->ctr < ctr + n)
            return CRDT_OK;
    }
    if (sa != NULL && sa->held_end != 0 && sa->held_end <= ctr) {
        /* an earlier insert of this actor is held: queue behind it */
        crdt_seq_id behind = { *actor, sa->held_end - 1 };
        if (!crdt__seq_has(s, &behind))
            return park(w, s, &behind, actor, ctr, left, right, bytes, nb,
                        n);
        sa->held_end = 0; /* that one is in after all */
    }
    if (!crdt__seq_has(s, left))
        return park(w, s, left, actor, ctr, left, right, bytes, nb, n);
    if (!crdt__seq_has(s, right))
        return park(w, s, right, actor, ctr, left, right, bytes, nb, n);
    if ((rc = put_header(w, s)) < 0)
        return rc;
    r = crdt__seq_run_find(s, &prev_id);
    if (r != NULL && !r->base && r->ctr + r->len == ctr &&
        id_eq(left, &prev_id) &&
        id_eq(right, &r->right)) {
        off = r->len; /* invariant (1): the run grows */
        if ((rc = run_touch(s, r, 0)) < 0)
            return rc;
    } else {
        if ((r = crdt__seq_run_new(s, actor, ctr)) == NULL)
            return CRDT_ENOMEM;
        r->left = *left;
        r->right = *right;
        off = 0;
        if ((rc = run_touch(s, r, 1)) < 0)
            return rc;
    }
    if ((rc = crdt__seq_run_append(r, bytes, nb, n, s->key.kind == 'T')) < 0 ||
        (rc = crdt__seq_integrate(s, r, off, n)) < 0 ||
        (rc = early_deletes(s, actor, ctr, n)) < 0)
        return rc;
    if ((sa = crdt__seq_actor(s, actor, 0)) != NULL && sa->held_end == ctr + n)
        sa->held_end = 0; /* the newest held one is in: none is left */
    return s->nparked > 0 ? work_push(wl, actor, ctr, n) : CRDT_OK;
}

/* Apply the inserts that waited for ids [c, c + n) of @p a. */
static int
unpark(crdt__wctx *w, crdt__seq *s, const crdt_actor *a, uint64_t c,
       uint64_t n, worklist *wl)
{
    MDB_cursor *cur;
    MDB_val key, val;
    skey k;
    size_t base = s->key.len + 1;
    int mrc, rc;

    for (;;) {
        unsigned char *copy;
        size_t kl, vl;
        crdt_actor oa;
        crdt_seq_id l, r;
        uint64_t oc, on;

        if ((rc = crdt__mdb_err(mdb_cursor_open(w->txn, w->state, &cur))) < 0)
            return rc;
        skey_make(&k, &s->key, 'p', a, c);
        key.mv_size = k.len;
        key.mv_data = k.b;
        mrc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
        if (mrc != 0 || key.mv_size != k.len + 16 ||
            memcmp(key.mv_data, k.b, base + 8) != 0 ||
            crdt__rd64((unsigned char *)key.mv_data + base + 8) >= c + n) {
            mdb_cursor_close(cur);
            return mrc == 0 || mrc == MDB_NOTFOUND ? CRDT_OK
                                                   : crdt__mdb_err(mrc);
        }
        kl = key.mv_size;
        vl = val.mv_size;
        if (vl < 40 || (copy = malloc(kl + vl)) == NULL) {
            mdb_cursor_close(cur);
            return vl < 40 ? CRDT_ECORRUPT : CRDT_ENOMEM;
        }
        memcpy(copy, key.mv_data, kl);
        memcpy(copy + kl, val.mv_data, vl);
        mdb_cursor_close(cur);
        {
            MDB_val ov = { vl, copy + kl };
            rc = crdt__state_del(w, copy, kl, &ov);
        }
        if (rc == CRDT_OK) {
            s->nparked--;
            memcpy(oa.b, copy + kl - 16, 8);
            oc = crdt__rd64(copy + kl - 8);
            get_id(&l, copy + kl);
            get_id(&r, copy + kl + 16);
            on = crdt__rd64(copy + kl + 32);
            rc = ins_one(w, s, &oa, oc, &l, &r, copy + kl + 40, vl - 40, on,
                         wl, 1);
        }
        free(copy);
        if (rc < 0)
            return rc;
    }
}

static int
apply_insert(crdt__wctx *w, crdt__seq *s, const crdt_actor *actor,
             uint64_t ctr, const crdt_seq_id *left, const crdt_seq_id *right,
             const void *bytes, size_t nb, uint64_t n)
{
    worklist wl = { 0 };
    int rc = ins_one(w, s, actor, ctr, left, right, bytes, nb, n, &wl, 0);

    /* bounded: each pass removes one held record */
    while (rc == CRDT_OK && wl.len > 0) {
        /* copied: unpark pushes more, which may move the list */
        crdt_actor a = wl.v[wl.len - 1].actor;
        uint64_t c = wl.v[wl.len - 1].ctr, cnt = wl.n[wl.len - 1];
        wl.len--;
        rc = unpark(w, s, &a, c, cnt, &wl);
    }
    free(wl.v);
    free(wl.n);
    return rc;
}

static int
apply_lset(crdt__wctx *w, crdt__seq *s, const crdt_seq_id *target,
           uint64_t hlc, const crdt_actor *actor, const crdt_value *v)
{
    unsigned char *buf;
    MDB_val old;
    skey k;
    int n, rc, c = 1;

    skey_make(&k, &s->key, 'v', &target->actor, target->ctr);
    rc = crdt__state_get(w, k.b, k.len, &old);
    if (rc < 0 && rc != CRDT_ENOTFOUND)
        return rc;
    if (rc == CRDT_OK && old.mv_size >= 16 &&
        (c = crdt__stamp_cmp(hlc, actor, old.mv_data)) < 0)
        return CRDT_OK; /* invariant (4) */
    if ((buf = malloc(16 + CRDT__LIST_VALUE_MAX + 16)) == NULL)
        return CRDT_ENOMEM;
    crdt__be64(buf, hlc);
    memcpy(buf + 8, actor->b, 8);
    n = crdt__value_bytes(buf + 16, CRDT__LIST_VALUE_MAX + 16, v);
    if (n >= 0 && c == 0 &&
        !crdt__bytes_above(buf + 16, (size_t)n,
                           (const unsigned char *)old.mv_data + 16,
                           old.mv_size - 16))
        rc = CRDT_OK; /* (4): the same write, or the lower value */
    else
        rc = n < 0 ? CRDT_ELIMIT
                   : crdt__state_put(w, k.b, k.len, buf, 16 + (size_t)n,
                                     rc == CRDT_OK ? &old : NULL);
    free(buf);
    return rc;
}

/*
 * A lens default is a register stamped (0, actor 0), given to a document
 * that has no entry for the field when an op rebased through that lens
 * touches it (libepoch). Whether the field had an entry then depends on
 * the order ops arrived in, so a sequence op takes such a default away:
 * with a sequence written before it, no default was given; written after
 * it, the default goes. Either order ends with the sequence alone.
 */
static int
drop_lens_default(crdt__wctx *w, const crdt__seqkey *k)
{
    static const unsigned char zero[16];
    unsigned char rk[sizeof k->b];
    MDB_val old;
    int rc;

    memcpy(rk, k->b, k->len - 1);
    rk[k->len - 1] = 'R';
    rc = crdt__state_get(w, rk, k->len, &old);
    if (rc == CRDT_ENOTFOUND)
        return CRDT_OK;
    if (rc < 0)
        return rc;
    if (old.mv_size < 16 || memcmp(old.mv_data, zero, 16) != 0)
        return CRDT_OK; /* a real write: the usual field rules apply */
    {
        unsigned char *copy = malloc(old.mv_size);
        MDB_val ov;
        if (copy == NULL)
            return CRDT_ENOMEM;
        memcpy(copy, old.mv_data, old.mv_size);
        ov.mv_size = old.mv_size;
        ov.mv_data = copy;
        /* it may have been the document's only entry: still not born */
        rc = crdt__state_not_born(w, rk, k->len);
        if (rc == CRDT_OK)
            rc = crdt__state_del(w, rk, k->len, &ov);
        free(copy);
    }
    return rc;
}

int
crdt__seq_apply(crdt__wctx *w, const crdt_op *op, uint64_t hlc,
                const crdt_actor *actor)
{
    unsigned char kind = op->kind == CRDT_OP_TINS || op->kind == CRDT_OP_TDEL
                             ? 'T' : 'L';
    crdt__seqkey key;
    crdt__seq *s;
    crdt_op_ranges it;
    crdt_seq_range rg;
    int rc;

    crdt__seqkey_make(&key, op->coll, op->coll_len, op->doc, op->doc_len,
                      op->field, op->field_len, kind);
    if ((rc = crdt__seq_for_write(&s, w, &key)) < 0)
        return rc;
    /* a default is given only to a field without entries; after this op
     * the field has one, so one look per built sequence is enough */
    if (!s->default_gone) {
        if ((rc = drop_lens_default(w, &key)) < 0)
            return rc;
        s->default_gone = 1;
    }
    switch (op->kind) {
    case CRDT_OP_TINS:
        rc = apply_insert(w, s, actor, op->ctr, &op->left, &op->right,
                          op->text, op->text_len, op->len);
        break;
    case CRDT_OP_LINS: {
        unsigned char *vb = malloc(CRDT__LIST_VALUE_MAX + 16);
        int n;
        if (vb == NULL)
            return CRDT_ENOMEM;
        n = crdt__value_bytes(vb, CRDT__LIST_VALUE_MAX + 16, &op->value);
        rc = n < 0 ? CRDT_ELIMIT
                   : apply_insert(w, s, actor, op->ctr, &op->left, &op->right,
                                  vb, (size_t)n, 1);
        free(vb);
        break;
    }
    case CRDT_OP_TDEL:
    case CRDT_OP_LDEL:
        crdt_op_ranges_init(&it, op);
        while ((rc = crdt_op_ranges_next(&rg, &it)) == CRDT_OK) {
            seq_actor *sa;
            if ((rc = put_deleted(w, s, &rg.actor, rg.ctr,
                                  rg.ctr + rg.len)) < 0 ||
                (rc = crdt__seq_mark_deleted(s, &rg.actor, rg.ctr,
                                             rg.ctr + rg.len)) < 0)
                break;
            if ((sa = crdt__seq_actor(s, &rg.actor, 1)) == NULL) {
                rc = CRDT_ENOMEM;
                break;
            }
            if (rg.ctr + rg.len > sa->del_end)
                sa->del_end = rg.ctr + rg.len;
        }
        if (rc == CRDT_ENOTFOUND)
            rc = CRDT_OK;
        break;
    case CRDT_OP_LSET:
        rc = apply_lset(w, s, &op->target, hlc, actor, &op->value);
        break;
    default:
        rc = CRDT_EPROTO;
    }
    /* outside a merge's queue flush, the records are written now: the
     * state is whole after every op (a hook, a raw read, a local txn's
     * next call may read it) */
    if (rc == CRDT_OK && !w->seq_defer && (s->ndirty > 0 || s->ndirtyd > 0))
        rc = seq_flush(w, s);
    if (rc == CRDT_ENOMEM)
        s->broken = 1;
    return rc;
}

/* ---- lists ---- */

typedef struct {
    crdt_value *v;
    size_t n, cap, bytes;
    const unsigned char **ov_key; /* overrides: sorted keys (id, 16 bytes) */
    const unsigned char **ov_val;
    size_t nov;
    int rc;
} list_acc;

static const unsigned char *
find_override(const list_acc *a, const crdt_actor *actor, uint64_t ctr)
{
    unsigned char id[16];
    size_t lo = 0, hi = a->nov;

    memcpy(id, actor->b, 8);
    crdt__be64(id + 8, ctr);
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = memcmp(a->ov_key[mid], id, 16);
        if (c == 0)
            return a->ov_val[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static int
list_cb(const seq_run *r, uint64_t off, uint64_t len, void *ctx)
{
    list_acc *a = ctx;
    crdt__mp m = { r->bytes, r->bytes + r->nbytes };

    for (uint64_t i = 0; i < off; i++)
        if (crdt__mp_skip(&m) < 0)
            return a->rc = CRDT_ECORRUPT;
    for (uint64_t i = 0; i < len; i++) {
        crdt_value v;
        const unsigned char *ov = find_override(a, &r->actor,
                                                r->ctr + off + i);
        if (crdt__mp_value(&m, &v) < 0)
            return a->rc = CRDT_ECORRUPT;
        if (ov != NULL) {
            crdt__mp om = { ov + 16, ov + 16 + crdt__rd64(ov - 8) };
            if (crdt__mp_value(&om, &v) < 0)
                return a->rc = CRDT_ECORRUPT;
        }
        if (a->n == a->cap) {
            size_t cap = a->cap ? a->cap * 2 : 16;
            crdt_value *nv = realloc(a->v, cap * sizeof *nv);
            if (nv == NULL)
                return a->rc = CRDT_ENOMEM;
            a->v = nv;
            a->cap = cap;
        }
        a->v[a->n++] = v;
        if (v.type == CRDT_VSTRING || v.type == CRDT_VBYTES)
            a->bytes += v.u.s.len;
    }
    return 0;
}

int
crdt__seq_list(const crdt__seq *s, MDB_txn *txn, MDB_dbi dbi,
               crdt_value **out, size_t *n)
{
    list_acc a = { 0 };
    MDB_cursor *cur;
    MDB_val key, val;
    skey k;
    size_t capov = 0;
    unsigned char **lenbox = NULL;
    int mrc, rc;
    crdt_value *res;
    char *p;

    /* overrides: keep views into the map; the value length sits in a
     * box just before each view (ov - 8), built here */
    if ((rc = crdt__mdb_err(mdb_cursor_open(txn, dbi, &cur))) < 0)
        return rc;
    skey_make(&k, &s->key, 'v', NULL, 0);
    key.mv_size = k.len;
    key.mv_data = k.b;
    for (mrc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE); mrc == 0;
         mrc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        unsigned char *box;
        if (key.mv_size != k.len + 16 || memcmp(key.mv_data, k.b, k.len) != 0)
            break;
        if (val.mv_size < 17)
            continue;
        if (a.nov == capov) {
            capov = capov ? capov * 2 : 16;
            const unsigned char **nk = realloc(a.ov_key, capov * sizeof *nk);
            if (nk != NULL)
                a.ov_key = nk;
            const unsigned char **nv = realloc(a.ov_val, capov * sizeof *nv);
            if (nv != NULL)
                a.ov_val = nv;
            unsigned char **nb = realloc(lenbox, capov * sizeof *nb);
            if (nb != NULL)
                lenbox = nb;
            if (nk == NULL || nv == NULL || nb == NULL) {
                rc = CRDT_ENOMEM;
                break;
            }
        }
        if ((box = malloc(8 + val.mv_size)) == NULL) {
            rc = CRDT_ENOMEM;
            break;
        }
        crdt__be64(box, val.mv_size - 16);
        memcpy(box + 8, val.mv_data, val.mv_size);
        lenbox[a.nov] = box;
        a.ov_key[a.nov] = (unsigned char *)key.mv_data + k.len;
        a.ov_val[a.nov] = box + 8;
        a.nov++;
    }
    mdb_cursor_close(cur);
    if (rc == CRDT_OK)
        crdt__seq_walk(s, list_cb, &a);
    if (rc == CRDT_OK)
        rc = a.rc;
    if (rc == CRDT_OK) {
        res = malloc(a.n * sizeof *res + a.bytes + 1);
        if (res == NULL) {
            rc = CRDT_ENOMEM;
        } else {
            p = (char *)(res + a.n);
            for (size_t i = 0; i < a.n; i++) {
                res[i] = a.v[i];
                if (res[i].type == CRDT_VSTRING || res[i].type == CRDT_VBYTES) {
                    memcpy(p, a.v[i].u.s.ptr, a.v[i].u.s.len);
                    res[i].u.s.ptr = p;
                    p += a.v[i].u.s.len;
                }
            }
            *out = res;
            *n = a.n;
        }
    }
    for (size_t i = 0; i < a.nov; i++)
        free(lenbox[i]);
    free(lenbox);
    free(a.ov_key);
    free(a.ov_val);
    free(a.v);
    return rc;
}
