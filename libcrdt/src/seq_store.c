/*
 * seq_store.c: sequence fields in LMDB: applying the sequence ops and
 * writing their records. Their order is built from the records in
 * seq_load.c, cached per replica in seq_cache.c, and a list read with
 * its values in seq_list.c.
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
    seq_skey k;

    if (len == old)
        return CRDT_OK;
    /* no state_get put the cursor on this key: no in-place overwrite */
    w->cur_at = 0;
    seq_skey_make(&k, &s->key, 'd', a, c);
    crdt__be64(ov, old);
    crdt__be64(nv, len);
    return len == 0 ? crdt__state_del(w, k.b, k.len, &o)
                    : crdt__state_put(w, k.b, k.len, nv, 8,
                                      old ? &o : NULL);
}

/* Room for one more delete record of @p sa at the end: the free slots
 * before the array are taken back first, then the allocation grows. */
int
crdt__seq_dels_grow(seq_actor *sa)
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
        if (sa->ndel == sa->capdel && crdt__seq_dels_grow(sa) < 0)
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
    seq_put_id(v + 8, &r->left);
    seq_put_id(v + 24, &r->right);
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
        seq_skey k;

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
        seq_skey_make(&k, &s->key, 'r', &r->actor, r->ctr);
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
    seq_skey k;
    MDB_val old;
    int rc;

    seq_skey_make(&k, &s->key, 'p', &wait->actor, wait->ctr);
    memcpy(k.b + k.len, actor->b, 8);
    crdt__be64(k.b + k.len + 8, ctr);
    k.len += 16;
    rc = crdt__state_get(w, k.b, k.len, &old);
    if (rc != CRDT_ENOTFOUND)
        return rc; /* held already (invariant 3) */
    if ((v = malloc(40 + nb)) == NULL)
        return CRDT_ENOMEM;
    seq_put_id(v, left);
    seq_put_id(v + 16, right);
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
        !seq_id_eq(right, &r->right) ||
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
        seq_id_eq(left, &prev_id) &&
        seq_id_eq(right, &r->right)) {
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
    seq_skey k;
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
        seq_skey_make(&k, &s->key, 'p', a, c);
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
            seq_get_id(&l, copy + kl);
            seq_get_id(&r, copy + kl + 16);
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
    seq_skey k;
    int n, rc, c = 1;

    seq_skey_make(&k, &s->key, 'v', &target->actor, target->ctr);
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

