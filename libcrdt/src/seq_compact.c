/*
 * seq_compact.c: what an epoch does to a text or list field.
 *
 * At an epoch every replica that adopts it holds every element of the
 * cut, so a deleted element can no longer be named by a new op of a
 * peer at that epoch. The compaction rewrites each sequence block of the
 * state (record layout: seq_store.c) as:
 *
 *   'b' records  the kept elements in document order, adjacent elements
 *                of one actor with consecutive counters folded into one
 *                segment, segments packed into records of about
 *                B_RECORD bytes (the layout is at the writer below);
 *   'd' records  what the old delete ranges said about ids that were not
 *                integrated (a delete that came before its insert), plus
 *                the kept deleted elements;
 *   'x' records  per actor, the end of the ids the epoch folded: an
 *                insert below it was applied before (or dropped, being
 *                deleted), and an origin below it that is not in the
 *                base was compacted away (crdt_raw_seq_gone);
 *   'p', 'v'     held inserts stay; list values of dropped elements go;
 *   'a'          copies waiting for their originals stay (seq_copy.c).
 *
 * Kept: every visible element, and a deleted one that a held insert
 * names as origin (it waits for its other origin; it must still find
 * this one). Everything else deleted is dropped.
 *
 * Invariants:
 *  (1) The result is a function of the block's records alone (the order
 *      is the built order; packing and folding are fixed rules), so every
 *      replica that compacts the same state writes the same records and
 *      the epoch's state hash agrees.
 *  (2) The visible sequence (and each list value) reads the same before
 *      and after.
 *  (3) Compacting twice changes nothing the second time but what was
 *      deleted in between.
 */
#include <stdlib.h>
#include <string.h>

#include "seq_int.h"

#define B_RECORD 32768 /* a 'b' record is closed past this many bytes: a
                          few overflow pages, little waste per record */
#define B_SEG 65536    /* most bytes in one segment (one list value may
                          exceed it alone) */

typedef struct {
    unsigned char *p;
    size_t len, cap;
} cbuf;

static int
cbuf_add(cbuf *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        unsigned char *np;
        while (cap < b->len + n)
            cap *= 2;
        if ((np = realloc(b->p, cap)) == NULL)
            return CRDT_ENOMEM;
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    return CRDT_OK;
}

typedef struct {
    crdt_actor a;
    uint64_t c, e;
} ival;

typedef struct {
    ival *v;
    size_t n, cap;
} ivals;

static int
ivals_add(ivals *l, const crdt_actor *a, uint64_t c, uint64_t e)
{
    if (c >= e)
        return CRDT_OK;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        ival *nv = realloc(l->v, cap * sizeof *nv);
        if (nv == NULL)
            return CRDT_ENOMEM;
        l->v = nv;
        l->cap = cap;
    }
    l->v[l->n].a = *a;
    l->v[l->n].c = c;
    l->v[l->n].e = e;
    l->n++;
    return CRDT_OK;
}

static int
ival_cmp(const void *x, const void *y)
{
    const ival *a = x, *b = y;
    int c = memcmp(a->a.b, b->a.b, 8);

    if (c != 0)
        return c;
    return a->c < b->c ? -1 : a->c > b->c;
}

/* Sort and join touching intervals (seq_store.c invariant 2). */
static void
ivals_normalize(ivals *l)
{
    size_t o = 0;

    if (l->n == 0)
        return;
    qsort(l->v, l->n, sizeof *l->v, ival_cmp);
    for (size_t i = 1; i < l->n; i++) {
        if (memcmp(l->v[o].a.b, l->v[i].a.b, 8) == 0 &&
            l->v[i].c <= l->v[o].e) {
            if (l->v[i].e > l->v[o].e)
                l->v[o].e = l->v[i].e;
        } else {
            l->v[++o] = l->v[i];
        }
    }
    l->n = o + 1;
}

/* A copy of one record of the block, to delete once the walk is done. */
typedef struct {
    unsigned char *k, *v;
    size_t kl, vl;
} rec;

typedef struct {
    rec *v;
    size_t n, cap;
} recs;

static int
recs_add(recs *l, const void *k, size_t kl, const void *v, size_t vl)
{
    unsigned char *b;

    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 32;
        rec *nv = realloc(l->v, cap * sizeof *nv);
        if (nv == NULL)
            return CRDT_ENOMEM;
        l->v = nv;
        l->cap = cap;
    }
    if ((b = malloc(kl + vl + 1)) == NULL)
        return CRDT_ENOMEM;
    memcpy(b, k, kl);
    memcpy(b + kl, v, vl);
    l->v[l->n].k = b;
    l->v[l->n].kl = kl;
    l->v[l->n].v = b + kl;
    l->v[l->n].vl = vl;
    l->n++;
    return CRDT_OK;
}

static void
recs_free(recs *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].k);
    free(l->v);
}

/* The records being written: 'b' records in order, segments inside.
 * A record's value (docs/storage.md, 4.4):
 *   n(1) actor(8) * n       the actors its segments name
 *   segments to the end:    varint actor index, varint ctr, varint len,
 *                           varint nbytes, nbytes of content
 * (varint: LEB128, at most 10 bytes). A record is closed once it holds
 * B_RECORD bytes or 255 actors; a segment never holds more than B_SEG
 * bytes (a longer stretch is cut into several), so every record stays
 * far below what a snapshot entry may hold. */
typedef struct {
    crdt__wctx *w;
    const crdt__seqkey *key;
    crdt_actor actors[255];
    unsigned n_actors;
    cbuf segs;        /* the closed segments of the record being filled */
    cbuf open;        /* the open segment's content */
    int has_open;
    unsigned open_actor;
    uint64_t open_ctr, open_len;
    uint64_t index;   /* of the next 'b' record */
} writer;

static int
put_new(crdt__wctx *w, const unsigned char *k, size_t kl, const void *v,
        size_t vl)
{
    MDB_val old;
    int rc = crdt__state_get(w, k, kl, &old);

    if (rc == CRDT_OK || rc == CRDT_ENOTFOUND)
        rc = crdt__state_put(w, k, kl, v, vl, rc == CRDT_OK ? &old : NULL);
    return rc;
}

static int
put_varint(cbuf *b, uint64_t v)
{
    unsigned char t[CRDT__VARINT_MAX];

    return cbuf_add(b, t, crdt__varint_put(t, v));
}

static int
close_segment(writer *wr)
{
    int rc;

    if (!wr->has_open)
        return CRDT_OK;
    wr->has_open = 0;
    if ((rc = put_varint(&wr->segs, wr->open_actor)) < 0 ||
        (rc = put_varint(&wr->segs, wr->open_ctr)) < 0 ||
        (rc = put_varint(&wr->segs, wr->open_len)) < 0 ||
        (rc = put_varint(&wr->segs, wr->open.len)) < 0)
        return rc;
    rc = cbuf_add(&wr->segs, wr->open.p, wr->open.len);
    wr->open.len = 0;
    return rc;
}

static int
flush_record(writer *wr)
{
    unsigned char k[sizeof wr->key->b + 9];
    unsigned char n;
    cbuf v = { 0 };
    int rc;

    if ((rc = close_segment(wr)) < 0)
        return rc;
    if (wr->segs.len == 0)
        return CRDT_OK;
    n = (unsigned char)wr->n_actors;
    if ((rc = cbuf_add(&v, &n, 1)) == CRDT_OK)
        rc = cbuf_add(&v, wr->actors, 8 * (size_t)wr->n_actors);
    if (rc == CRDT_OK)
        rc = cbuf_add(&v, wr->segs.p, wr->segs.len);
    if (rc == CRDT_OK) {
        memcpy(k, wr->key->b, wr->key->len);
        k[wr->key->len] = 'b';
        crdt__be64(k + wr->key->len + 1, wr->index++);
        rc = put_new(wr->w, k, wr->key->len + 9, v.p, v.len);
    }
    free(v.p);
    wr->segs.len = 0;
    wr->n_actors = 0;
    return rc;
}

/* Append elements [off, off + len) of @p r (at most B_SEG bytes). */
static int
emit_piece(writer *wr, const seq_run *r, uint64_t off, uint64_t len,
           size_t b0, size_t b1)
{
    unsigned ai;
    int rc;

    if (wr->has_open &&
        memcmp(wr->actors[wr->open_actor].b, r->actor.b, 8) == 0 &&
        wr->open_ctr + wr->open_len == r->ctr + off &&
        wr->open.len + (b1 - b0) <= B_SEG) {
        wr->open_len += len; /* the segment grows */
        return cbuf_add(&wr->open, r->bytes + b0, b1 - b0);
    }
    if ((rc = close_segment(wr)) < 0)
        return rc;
    if (wr->segs.len >= B_RECORD && (rc = flush_record(wr)) < 0)
        return rc;
    for (ai = 0; ai < wr->n_actors; ai++)
        if (memcmp(wr->actors[ai].b, r->actor.b, 8) == 0)
            break;
    if (ai == wr->n_actors) {
        if (ai == 255) {
            if ((rc = flush_record(wr)) < 0)
                return rc;
            ai = 0;
        }
        wr->actors[ai] = r->actor;
        wr->n_actors = ai + 1;
    }
    wr->has_open = 1;
    wr->open_actor = ai;
    wr->open_ctr = r->ctr + off;
    wr->open_len = len;
    return cbuf_add(&wr->open, r->bytes + b0, b1 - b0);
}

/* Append elements [off, off + len) of @p r to the base, cut so that no
 * segment holds more than B_SEG bytes. */
static int
emit(writer *wr, const seq_run *r, uint64_t off, uint64_t len)
{
    int text = wr->key->kind == 'T';

    while (len > 0) {
        uint64_t k = len < 4096 ? len : 4096;
        size_t b0, b1;
        int rc;
        for (;;) {
            if ((rc = crdt__seq_run_bytes(r, text, off, k, &b0, &b1)) < 0)
                return rc;
            if (b1 - b0 <= B_SEG || k == 1)
                break;
            k /= 2;
        }
        if ((rc = emit_piece(wr, r, off, k, b0, b1)) < 0)
            return rc;
        off += k;
        len -= k;
    }
    return CRDT_OK;
}

static int
id_cmp(const void *x, const void *y)
{
    const crdt_seq_id *a = x, *b = y;
    int c = memcmp(a->actor.b, b->actor.b, 8);

    if (c != 0)
        return c;
    return a->ctr < b->ctr ? -1 : a->ctr > b->ctr;
}

static int
held_has(const crdt_seq_id *held, size_t n, const crdt_actor *a, uint64_t c)
{
    crdt_seq_id id;

    id.actor = *a;
    id.ctr = c;
    return n > 0 && bsearch(&id, held, n, sizeof *held, id_cmp) != NULL;
}

static int
compact_block(crdt__wctx *w, const crdt__seqkey *key, uint64_t *dropped)
{
    crdt__seq *s = NULL;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    recs old = { 0 };
    ivals del = { 0 }, cut = { 0 };
    crdt_seq_id *held = NULL;
    size_t nheld = 0, capheld = 0;
    writer wr;
    int rc, mrc;

    memset(&wr, 0, sizeof wr);
    wr.w = w;
    wr.key = key;
    if ((rc = crdt__seq_build(&s, w->txn, w->state, key)) < 0)
        return rc;

    /* what to take away or look at: every record but the header */
    if ((rc = crdt__mdb_err(mdb_cursor_open(w->txn, w->state, &cur))) < 0)
        goto done;
    k.mv_size = key->len;
    k.mv_data = (void *)key->b;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); mrc == 0;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        const unsigned char *kb = k.mv_data, *vb = v.mv_data;
        unsigned char sub;

        if (k.mv_size < key->len || memcmp(kb, key->b, key->len) != 0)
            break;
        if (k.mv_size == key->len)
            continue;
        sub = kb[key->len];
        if (sub == 'a') /* a copy still waiting: it stays as it is */
            continue;
        if (sub == 'p') {
            if (v.mv_size < 32) {
                rc = CRDT_ECORRUPT;
                break;
            }
            for (int i = 0; i < 2; i++) {
                if (nheld == capheld) {
                    size_t cap = capheld ? capheld * 2 : 16;
                    crdt_seq_id *nh = realloc(held, cap * sizeof *nh);
                    if (nh == NULL) {
                        rc = CRDT_ENOMEM;
                        break;
                    }
                    held = nh;
                    capheld = cap;
                }
                memcpy(held[nheld].actor.b, vb + 16 * i, 8);
                held[nheld].ctr = crdt__rd64(vb + 16 * i + 8);
                if (held[nheld].ctr != 0)
                    nheld++;
            }
            if (rc < 0)
                break;
            continue;
        }
        if (sub == 'v') {
            crdt_seq_id id;
            if (k.mv_size != key->len + 17)
                continue;
            memcpy(id.actor.b, kb + key->len + 1, 8);
            id.ctr = crdt__rd64(kb + key->len + 9);
            /* a value of an element that is integrated and deleted goes
             * with it (unless held inserts keep it); one of an element
             * not here yet stays */
            if (crdt__seq_elem_deleted(s, &id) != 1)
                continue;
        } else if (sub == 'd' && k.mv_size == key->len + 17 &&
                   v.mv_size == 8) {
            crdt_actor a;
            uint64_t c = crdt__rd64(kb + key->len + 9);
            memcpy(a.b, kb + key->len + 1, 8);
            if ((rc = ivals_add(&del, &a, c, c + crdt__rd64(vb))) < 0)
                break;
        } else if (sub == 'x' && k.mv_size == key->len + 9 &&
                   v.mv_size == 8) {
            crdt_actor a;
            memcpy(a.b, kb + key->len + 1, 8);
            if ((rc = ivals_add(&cut, &a, 0, crdt__rd64(vb))) < 0)
                break;
        } else if (sub != 'b' && sub != 'r') {
            rc = CRDT_ECORRUPT;
            break;
        }
        if ((rc = recs_add(&old, kb, k.mv_size, vb, v.mv_size)) < 0)
            break;
    }
    if (rc == CRDT_OK && mrc != 0 && mrc != MDB_NOTFOUND)
        rc = crdt__mdb_err(mrc); /* not the end: LMDB's error */
    mdb_cursor_close(cur);
    if (rc < 0)
        goto done;
    if (nheld > 1)
        qsort(held, nheld, sizeof *held, id_cmp);

    /* a deleted element that a held insert names is kept, with its
     * value: its 'v' record is not taken away */
    {
        size_t o = 0;
        for (size_t i = 0; i < old.n; i++) {
            rec *e = &old.v[i];
            if (e->k[key->len] == 'v') {
                crdt_actor a;
                memcpy(a.b, e->k + key->len + 1, 8);
                if (held_has(held, nheld, &a,
                             crdt__rd64(e->k + key->len + 9))) {
                    free(e->k);
                    continue;
                }
            }
            old.v[o++] = *e;
        }
        old.n = o;
    }

    for (size_t i = 0; i < old.n && rc == CRDT_OK; i++) {
        MDB_val ov = { old.v[i].vl, old.v[i].v };
        rc = crdt__state_del(w, old.v[i].k, old.v[i].kl, &ov);
    }
    if (rc < 0)
        goto done;

    /* delete ranges: the ids no run holds stay deleted */
    {
        ivals keep = { 0 };
        for (size_t i = 0; i < del.n && rc == CRDT_OK; i++) {
            seq_actor *sa = crdt__seq_actor(s, &del.v[i].a, 0);
            uint64_t c = del.v[i].c, e = del.v[i].e;
            for (size_t j = 0; sa != NULL && j < sa->n && c < e &&
                               rc == CRDT_OK; j++) {
                const seq_run *r = sa->runs[j];
                if (r->ctr + r->len <= c)
                    continue;
                if (r->ctr >= e)
                    break;
                if (r->ctr > c)
                    rc = ivals_add(&keep, &del.v[i].a, c, r->ctr);
                c = r->ctr + r->len;
            }
            if (rc == CRDT_OK && c < e)
                rc = ivals_add(&keep, &del.v[i].a, c, e);
        }
        free(del.v);
        del = keep;
    }

    /* the base, in document order */
    for (size_t c = 0; c < s->nch && rc == CRDT_OK; c++)
        for (uint32_t i = 0; i < s->ch[c]->n && rc == CRDT_OK; i++) {
            const seq_frag *f = s->ch[c]->f[i];
            const seq_run *r = f->run;
            if (!f->deleted) {
                rc = emit(&wr, r, f->off, f->len);
                continue;
            }
            for (uint64_t o = f->off; o < f->off + f->len && rc == CRDT_OK;
                 o++) {
                if (!held_has(held, nheld, &r->actor, r->ctr + o)) {
                    (*dropped)++;
                    continue;
                }
                if ((rc = emit(&wr, r, o, 1)) == CRDT_OK)
                    rc = ivals_add(&del, &r->actor, r->ctr + o,
                                   r->ctr + o + 1);
            }
        }
    if (rc == CRDT_OK)
        rc = flush_record(&wr);

    /* the folded ids: each actor's runs end below the new cut */
    for (size_t i = 0; i < s->nact && rc == CRDT_OK; i++) {
        const seq_actor *sa = &s->act[i];
        if (sa->n > 0)
            rc = ivals_add(&cut, &sa->actor, 0,
                           sa->runs[sa->n - 1]->ctr +
                               sa->runs[sa->n - 1]->len);
    }
    ivals_normalize(&cut);
    ivals_normalize(&del);
    for (size_t i = 0; i < del.n && rc == CRDT_OK; i++) {
        unsigned char kb[sizeof key->b + 17], vb[8];
        memcpy(kb, key->b, key->len);
        kb[key->len] = 'd';
        memcpy(kb + key->len + 1, del.v[i].a.b, 8);
        crdt__be64(kb + key->len + 9, del.v[i].c);
        crdt__be64(vb, del.v[i].e - del.v[i].c);
        rc = put_new(w, kb, key->len + 17, vb, 8);
    }
    for (size_t i = 0; i < cut.n && rc == CRDT_OK; i++) {
        unsigned char kb[sizeof key->b + 9], vb[8];
        memcpy(kb, key->b, key->len);
        kb[key->len] = 'x';
        memcpy(kb + key->len + 1, cut.v[i].a.b, 8);
        crdt__be64(vb, cut.v[i].e);
        rc = put_new(w, kb, key->len + 9, vb, 8);
    }
done:
    crdt__seq_free(s);
    recs_free(&old);
    free(del.v);
    free(cut.v);
    free(held);
    free(wr.segs.p);
    free(wr.open.p);
    return rc;
}

/* Is @p kb (@p kl bytes) a sequence block's header key? */
static int
block_key(crdt__seqkey *out, const unsigned char *kb, size_t kl)
{
    const unsigned char *p = kb, *end = kb + kl, *z;

    for (int i = 0; i < 3; i++) {
        if ((z = memchr(p, 0, (size_t)(end - p))) == NULL || z == p)
            return 0;
        p = z + 1;
    }
    if (p + 1 != end || (*p != 'T' && *p != 'L') ||
        kl > sizeof out->b)
        return 0;
    memcpy(out->b, kb, kl);
    out->len = kl;
    out->kind = *p;
    return 1;
}

int
crdt_raw_seq_compact(crdt_raw *t, uint64_t *dropped_out)
{
    crdt__wctx *w;
    crdt__seqkey *keys = NULL;
    size_t n = 0, cap = 0;
    uint64_t dropped = 0;
    MDB_cursor *cur;
    MDB_val k, v;
    int rc, mrc;

    if (t == NULL || !t->write)
        return CRDT_EINVAL;
    w = t->w;
    w->seq_foreign = 1; /* the cached orders are stale after this */
    if ((rc = crdt__mdb_err(mdb_cursor_open(w->txn, w->state, &cur))) < 0)
        return rc;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        crdt__seqkey sk;
        if (!block_key(&sk, k.mv_data, k.mv_size))
            continue;
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 8;
            crdt__seqkey *nk = realloc(keys, nc * sizeof *nk);
            if (nk == NULL) {
                rc = CRDT_ENOMEM;
                break;
            }
            keys = nk;
            cap = nc;
        }
        keys[n++] = sk;
    }
    mdb_cursor_close(cur);
    if (rc == CRDT_OK && mrc != 0 && mrc != MDB_NOTFOUND)
        rc = crdt__mdb_err(mrc);
    for (size_t i = 0; i < n && rc == CRDT_OK; i++)
        rc = compact_block(w, &keys[i], &dropped);
    free(keys);
    if (rc == CRDT_OK && dropped_out != NULL)
        *dropped_out = dropped;
    return crdt__full(rc);
}

int
crdt_raw_seq_gone(crdt_raw *t, const crdt_op *op)
{
    crdt__seqkey key;
    unsigned char kb[sizeof key.b + 9];
    const crdt_seq_id *ids[2];
    MDB_val k, v;
    crdt__seq *s = NULL;
    int rc, gone = 0;

    if (t == NULL || op == NULL || op->field == NULL)
        return CRDT_EINVAL;
    if (op->kind != CRDT_OP_TINS && op->kind != CRDT_OP_LINS)
        return 0;
    ids[0] = &op->left;
    ids[1] = &op->right;
    crdt__seqkey_make(&key, op->coll, op->coll_len, op->doc, op->doc_len,
                      op->field, op->field_len,
                      op->kind == CRDT_OP_TINS ? 'T' : 'L');
    for (int i = 0; i < 2 && !gone; i++) {
        if (ids[i]->ctr == 0)
            continue;
        memcpy(kb, key.b, key.len);
        kb[key.len] = 'x';
        memcpy(kb + key.len + 1, ids[i]->actor.b, 8);
        k.mv_size = key.len + 9;
        k.mv_data = kb;
        rc = mdb_get(t->w->txn, t->w->state, &k, &v);
        if (rc == MDB_NOTFOUND)
            continue;
        if (rc != 0 || v.mv_size != 8) {
            crdt__seq_free(s);
            return rc != 0 ? crdt__mdb_err(rc) : CRDT_ECORRUPT;
        }
        if (ids[i]->ctr >= crdt__rd64(v.mv_data))
            continue; /* after the cut: may still come */
        if (s == NULL &&
            (rc = crdt__seq_build(&s, t->w->txn, t->w->state, &key)) < 0)
            return rc;
        gone = crdt__seq_elem_deleted(s, ids[i]) < 0;
    }
    crdt__seq_free(s);
    return gone;
}

/* ---- a lens's string <-> text conversion (crdt_raw_seq_retype) ---- */

/* Field key prefix coll 0 doc 0 field 0 into @p k; its length. */
static size_t
field_prefix(unsigned char *k, const char *coll, size_t cl, const char *doc,
             size_t dl, const char *field, size_t fl)
{
    memcpy(k, coll, cl);
    k[cl] = 0;
    memcpy(k + cl + 1, doc, dl);
    k[cl + dl + 1] = 0;
    memcpy(k + cl + dl + 2, field, fl);
    k[cl + dl + fl + 2] = 0;
    return cl + dl + fl + 3;
}

/* The register of one document becomes a text holding its string (an
 * empty text if it held another value): header, one base of elements
 * (actor 0, 1 ..), the folded ids of actor 0. A field tombstone stays
 * as it is: the field stays deleted. */
static int
register_to_text(crdt__wctx *w, const unsigned char *fk, size_t fkl)
{
    crdt__seqkey key;
    unsigned char rk[sizeof key.b], *copy = NULL;
    static const unsigned char one = 1;
    MDB_val old;
    crdt_value v;
    int rc;

    memcpy(rk, fk, fkl);
    rk[fkl] = 'R';
    if ((rc = crdt__state_get(w, rk, fkl + 1, &old)) < 0)
        return rc == CRDT_ENOTFOUND ? CRDT_OK : rc;
    if (old.mv_size == 17 && ((const unsigned char *)old.mv_data)[16] == 0xc1)
        return CRDT_OK; /* a field tombstone: the field stays deleted */
    if (old.mv_size < 16 || (copy = malloc(old.mv_size)) == NULL)
        return old.mv_size < 16 ? CRDT_ECORRUPT : CRDT_ENOMEM;
    memcpy(copy, old.mv_data, old.mv_size);
    old.mv_data = copy;
    if ((rc = crdt__state_del(w, rk, fkl + 1, &old)) < 0)
        goto done;
    memcpy(key.b, fk, fkl);
    key.b[fkl] = 'T';
    key.len = fkl + 1;
    key.kind = 'T';
    if ((rc = put_new(w, key.b, key.len, &one, 1)) < 0)
        goto done;
    if (crdt__value_parse(&v, copy + 16, old.mv_size - 16) == 0 &&
        v.type == CRDT_VSTRING && v.u.s.len > 0) {
        seq_run r;
        writer wr;
        uint64_t n = 0;
        unsigned char xk[sizeof key.b + 9], xv[8];

        memset(&r, 0, sizeof r);
        memset(&wr, 0, sizeof wr);
        for (size_t i = 0; i < v.u.s.len; i++)
            n += (((const unsigned char *)v.u.s.ptr)[i] & 0xc0) != 0x80;
        r.ctr = 1;
        r.len = n;
        r.bytes = (unsigned char *)v.u.s.ptr;
        r.nbytes = v.u.s.len;
        r.ascii = n == v.u.s.len;
        wr.w = w;
        wr.key = &key;
        rc = emit(&wr, &r, 0, n);
        if (rc == CRDT_OK)
            rc = flush_record(&wr);
        free(wr.segs.p);
        free(wr.open.p);
        if (rc == CRDT_OK) {
            memcpy(xk, key.b, key.len);
            xk[key.len] = 'x';
            memset(xk + key.len + 1, 0, 8);
            crdt__be64(xv, n + 1);
            rc = put_new(w, xk, key.len + 9, xv, 8);
        }
    }
done:
    free(copy);
    return rc;
}

/* The text of one document becomes a string register stamped (0, actor
 * 0), like a lens default: any real write wins over it (a register
 * entry of the field already there, a field tombstone, stays). */
static int
text_to_register(crdt__wctx *w, const unsigned char *fk, size_t fkl)
{
    crdt__seqkey key;
    crdt__seq *s = NULL;
    recs old = { 0 };
    MDB_cursor *cur;
    MDB_val k, v;
    char *text = NULL;
    size_t tl = 0;
    unsigned char rk[sizeof key.b], *val = NULL;
    int rc, mrc, n;

    memcpy(key.b, fk, fkl);
    key.b[fkl] = 'T';
    key.len = fkl + 1;
    key.kind = 'T';
    if ((rc = crdt__seq_build(&s, w->txn, w->state, &key)) < 0)
        return rc;
    rc = crdt__seq_text(s, 0, crdt__seq_len(s), &text, &tl);
    crdt__seq_free(s);
    if (rc < 0)
        return rc;
    if ((rc = crdt__mdb_err(mdb_cursor_open(w->txn, w->state, &cur))) < 0)
        goto done;
    k.mv_size = key.len;
    k.mv_data = key.b;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); mrc == 0;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size < key.len || memcmp(k.mv_data, key.b, key.len) != 0)
            break;
        if ((rc = recs_add(&old, k.mv_data, k.mv_size, v.mv_data,
                           v.mv_size)) < 0)
            break;
    }
    if (rc == CRDT_OK && mrc != 0 && mrc != MDB_NOTFOUND)
        rc = crdt__mdb_err(mrc); /* not the end: LMDB's error */
    mdb_cursor_close(cur);
    for (size_t i = 0; i < old.n && rc == CRDT_OK; i++) {
        MDB_val ov = { old.v[i].vl, old.v[i].v };
        rc = crdt__state_del(w, old.v[i].k, old.v[i].kl, &ov);
    }
    if (rc < 0)
        goto done;
    if ((val = malloc(16 + tl + 16)) == NULL) {
        rc = CRDT_ENOMEM;
        goto done;
    }
    memset(val, 0, 16);
    n = crdt__value_bytes(val + 16, tl + 16,
                          &(crdt_value){ .type = CRDT_VSTRING,
                                         .u.s = { text, tl } });
    memcpy(rk, fk, fkl);
    rk[fkl] = 'R';
    {
        MDB_val ov;
        rc = crdt__state_get(w, rk, fkl + 1, &ov);
        if (rc == CRDT_OK)
            goto done; /* a register entry with a real stamp (a field
                          tombstone): it wins over stamp 0, by LWW */
        if (rc != CRDT_ENOTFOUND)
            goto done;
    }
    rc = n < 0 ? CRDT_ELIMIT : crdt__state_put(w, rk, fkl + 1, val,
                                               16 + (size_t)n, NULL);
done:
    recs_free(&old);
    free(val);
    free(text);
    return rc;
}

int
crdt_raw_seq_retype(crdt_raw *t, const char *coll, const char *field,
                    int to_text)
{
    crdt__wctx *w;
    unsigned char pk[CRDT_NAME_MAX + 1];
    char (*docs)[CRDT_NAME_MAX + 1] = NULL;
    size_t cl, fl, n = 0, cap = 0;
    MDB_cursor *cur;
    MDB_val k, v;
    int rc = CRDT_OK, mrc;

    if (t == NULL || !t->write || !crdt__name_ok(coll) ||
        !crdt__name_ok(field))
        return CRDT_EINVAL;
    w = t->w;
    w->seq_foreign = 1;
    cl = strlen(coll);
    fl = strlen(field);
    memcpy(pk, coll, cl);
    pk[cl] = 0;
    /* the documents with an entry for the field of the kind converted */
    if ((rc = crdt__mdb_err(mdb_cursor_open(w->txn, w->state, &cur))) < 0)
        return rc;
    k.mv_size = cl + 1;
    k.mv_data = pk;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); mrc == 0;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        const unsigned char *kb = k.mv_data, *d, *z;
        size_t dl;
        if (k.mv_size < cl + 1 || memcmp(kb, pk, cl + 1) != 0)
            break;
        d = kb + cl + 1;
        z = memchr(d, 0, k.mv_size - cl - 1);
        if (z == NULL)
            continue;
        dl = (size_t)(z - d);
        if (dl == 0 || dl > CRDT_NAME_MAX ||
            k.mv_size != cl + dl + fl + 4 ||
            memcmp(z + 1, field, fl) != 0 || z[1 + fl] != 0 ||
            z[2 + fl] != (to_text ? 'R' : 'T'))
            continue;
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            void *nd = realloc(docs, nc * sizeof *docs);
            if (nd == NULL) {
                rc = CRDT_ENOMEM;
                break;
            }
            docs = nd;
            cap = nc;
        }
        memcpy(docs[n], d, dl);
        docs[n++][dl] = 0;
    }
    mdb_cursor_close(cur);
    if (rc == CRDT_OK && mrc != 0 && mrc != MDB_NOTFOUND)
        rc = crdt__mdb_err(mrc); /* not the end: a failed step */
    for (size_t i = 0; i < n && rc == CRDT_OK; i++) {
        unsigned char fk[3 * CRDT_NAME_MAX + 8];
        size_t fkl = field_prefix(fk, coll, cl, docs[i], strlen(docs[i]),
                                  field, fl);
        rc = to_text ? register_to_text(w, fk, fkl)
                     : text_to_register(w, fk, fkl);
    }
    free(docs);
    return crdt__full(rc);
}
