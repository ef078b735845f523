/*
 * seq_load.c: a sequence field's order built from its records (the
 * runs, delete records, held inserts and an epoch's compacted runs of
 * seq_store.c's key layout), each run integrated as its ops were.
 */
#include <stdlib.h>
#include <string.h>

#include "seq_int.h"

typedef struct {
    crdt_actor a;
    uint64_t c, l;
} drec;

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
            seq_get_id(&r->left, v + 8);
            seq_get_id(&r->right, v + 24);
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
        if (sa->ndel == sa->capdel && crdt__seq_dels_grow(sa) < 0) {
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

