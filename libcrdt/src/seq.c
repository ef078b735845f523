/*
 * seq.c: the in-memory order of a sequence field, and its merge rule.
 *
 * The merge rule is YjsMod, which orders elements exactly as FugueMax
 * does (docs/text.md): an element is placed between its left and right
 * origins; among concurrent elements with the same origins the scan
 * below decides, and ties go by actor id. An insert of several
 * elements, or a run of one actor's consecutive inserts, stays
 * contiguous, so no two concurrent runs interleave.
 *
 * In memory the sequence is a list of fragments (a slice of one stored
 * run, all visible or all deleted) in document order, held in chunks of
 * at most CH_MAX fragments that keep their visible and total counts:
 * index -> element walks the chunk counts, then one chunk
 * (O(n / CH_MAX + CH_MAX)); id -> element is a binary search in the
 * actor's runs, then in the run's fragments. A position is compared as
 * (chunk number, index in chunk, offset): O(1) once found.
 *
 * Invariants:
 *  (1) Every run's fragments partition the elements of the run that are
 *      integrated, sorted by offset in run->frags.
 *  (2) Chunks are never empty; chunk->idx and frag->idx are their
 *      indexes; chunk and sequence counts equal the sums below them.
 *  (3) An element is integrated only after both its origins.
 */
#include <stdlib.h>
#include <string.h>

#include "seq_int.h"

/* ---- memory of runs, fragments and chunks ----
 *
 * A merge of a long history creates tens of thousands of them (the
 * automerge-paper trace: 4,626 runs, about 18,000 fragments, 200
 * chunks), and none is freed before the whole sequence is. One malloc
 * each handed out memory whose first write was a page fault, one per
 * page touched (5-8 us each on a virtual machine, more than the
 * integration itself, and a copy-on-write fault for heap pages a
 * forked process shares). They are carved from blocks instead, which
 * double from BLOCK_FIRST up to BLOCK_MAX so that a small sequence
 * stays small, and a large block is faulted in with one call
 * (crdt__prefault). */
#define BLOCK_FIRST 4096
#define BLOCK_MAX (512 * 1024)

/* @p n zeroed bytes, 8-aligned, freed with the sequence; NULL if out of
 * memory. */
static void *
seq_alloc(crdt__seq *s, size_t n)
{
    seq_block *b = s->blocks;
    void *p;

    n = (n + 7) & ~(size_t)7;
    if (b == NULL || b->size - b->used < n) {
        size_t size = s->block_next ? s->block_next : BLOCK_FIRST;
        while (size - sizeof *b < n)
            size *= 2;
        /* zeroed as a whole (a large block is a fresh mapping, zero
         * already): no object is cleared on its own */
        if ((b = calloc(1, size)) == NULL)
            return NULL;
        crdt__prefault(b, size);
        b->next = s->blocks;
        b->size = size - sizeof *b;
        b->used = 0;
        s->blocks = b;
        s->block_next = size < BLOCK_MAX ? size * 2 : BLOCK_MAX;
    }
    p = (unsigned char *)(b + 1) + b->used;
    b->used += n;
    return p;
}

/* ---- small helpers ---- */

static int
actor_cmp(const crdt_actor *a, const crdt_actor *b)
{
    return memcmp(a->b, b->b, CRDT_ACTOR_BYTES);
}

/* The binary search of crdt__seq_actor, apart (not inlined): the last
 * actor found is the answer to most calls, which then need none of its
 * registers. */
#ifdef __GNUC__
__attribute__((noinline))
#endif
static seq_actor *
actor_search(crdt__seq *s, const crdt_actor *a, int create)
{
    size_t lo = 0, hi = s->nact;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = actor_cmp(&s->act[mid].actor, a);
        if (c == 0) {
            s->last_act = mid;
            return &s->act[mid];
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (!create)
        return NULL;
    if (s->nact == s->capact) {
        size_t cap = s->capact ? s->capact * 2 : 4;
        seq_actor *n = realloc(s->act, cap * sizeof *n);
        if (n == NULL)
            return NULL;
        s->act = n;
        s->capact = cap;
    }
    memmove(&s->act[lo + 1], &s->act[lo], (s->nact - lo) * sizeof *s->act);
    memset(&s->act[lo], 0, sizeof *s->act);
    s->act[lo].actor = *a;
    s->nact++;
    s->last_act = lo;
    return &s->act[lo];
}

seq_actor *
crdt__seq_actor(crdt__seq *s, const crdt_actor *a, int create)
{
    if (s->last_act < s->nact &&
        memcmp(s->act[s->last_act].actor.b, a->b, CRDT_ACTOR_BYTES) == 0)
        return &s->act[s->last_act];
    return actor_search(s, a, create);
}

/* Index of the last run of @p a starting at or before @p ctr, or -1. */
static long
run_index(const seq_actor *a, uint64_t ctr)
{
    size_t lo = 0, hi = a->n;

    if (a->n > 0 && a->ctrs[a->n - 1] <= ctr)
        return (long)a->n - 1; /* the common case: the newest run */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (a->ctrs[mid] <= ctr)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (long)lo - 1;
}

seq_run *
crdt__seq_run_find(crdt__seq *s, const crdt_seq_id *id)
{
    seq_actor *a = crdt__seq_actor(s, &id->actor, 0);
    seq_run *r;
    long i;

    if (a == NULL || a->n == 0)
        return NULL;
    if (a->ctrs[a->n - 1] <= id->ctr) {
        /* the newest run: a new id, the element before it, typing */
        r = a->runs[a->n - 1];
        return id->ctr - r->ctr < r->len ? r : NULL;
    }
    /* an integration looks up the same few runs again and again (its
     * origins' runs, the run before it, the origins of the elements its
     * scan passes): the last few found are tried first. A hint is the
     * answer if it is the last run starting at or before the id (runs
     * added since may have moved it: the test reads only ctrs). */
    for (unsigned h = 0; h < SEQ_HINTS; h++) {
        size_t k = a->hint[h];
        if (k < a->n && a->ctrs[k] <= id->ctr &&
            (k + 1 == a->n || a->ctrs[k + 1] > id->ctr)) {
            r = a->runs[k];
            return id->ctr - r->ctr < r->len ? r : NULL;
        }
    }
    if ((i = run_index(a, id->ctr)) < 0)
        return NULL;
    r = a->runs[i];
    if (id->ctr - r->ctr >= r->len)
        return NULL;
    a->hint[a->hint_next] = (size_t)i;
    a->hint_next = (a->hint_next + 1) % SEQ_HINTS;
    return r;
}

/* The fragment of @p r holding offset @p off (integrated: invariant 1). */
static uint32_t
frag_index(const seq_run *r, uint64_t off)
{
    uint32_t lo = 0, hi = r->nf;

    if (r->nf > 0 && r->frags[r->nf - 1]->off <= off)
        return r->nf - 1;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (r->frags[mid]->off <= off)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo - 1;
}

static seq_frag *
frag_of(const seq_run *r, uint64_t off)
{
    if (r->nf == 0 || off >= r->frags[r->nf - 1]->off +
                                 r->frags[r->nf - 1]->len)
        return NULL;
    return r->frags[frag_index(r, off)];
}

static seq_frag *
frag_next(const crdt__seq *s, const seq_frag *f)
{
    const seq_chunk *c = f->ch;

    if (f->idx + 1 < c->n)
        return c->f[f->idx + 1];
    if (c->idx + 1 < s->nch)
        return s->ch[c->idx + 1]->f[0];
    return NULL;
}

static seq_frag *
frag_prev(const crdt__seq *s, const seq_frag *f)
{
    const seq_chunk *c = f->ch;

    if (f->idx > 0)
        return c->f[f->idx - 1];
    if (c->idx > 0) {
        const seq_chunk *p = s->ch[c->idx - 1];
        return p->f[p->n - 1];
    }
    return NULL;
}

/* ---- chunks ---- */

static seq_chunk *
chunk_new(crdt__seq *s, size_t at)
{
    seq_chunk *c;

    if (s->nch == s->capch) {
        size_t cap = s->capch ? s->capch * 2 : 8;
        seq_chunk **n = realloc(s->ch, cap * sizeof *n);
        if (n == NULL)
            return NULL;
        s->ch = n;
        s->capch = cap;
    }
    if ((c = seq_alloc(s, sizeof *c)) == NULL)
        return NULL;
    memmove(&s->ch[at + 1], &s->ch[at], (s->nch - at) * sizeof *s->ch);
    s->ch[at] = c;
    s->nch++;
    for (size_t i = at; i < s->nch; i++)
        s->ch[i]->idx = (uint32_t)i;
    return c;
}

static uint64_t
vis_of(const seq_frag *f)
{
    return f->deleted ? 0 : f->len;
}

/* Split full chunk @p c in two halves. */
static int
chunk_split(crdt__seq *s, seq_chunk *c)
{
    seq_chunk *n = chunk_new(s, c->idx + 1);

    if (n == NULL)
        return CRDT_ENOMEM;
    for (uint32_t i = CH_HALF; i < c->n; i++) {
        seq_frag *f = c->f[i];
        n->f[i - CH_HALF] = f;
        f->ch = n;
        f->idx = i - CH_HALF;
        n->vis += vis_of(f);
        n->tot += f->len;
        c->vis -= vis_of(f);
        c->tot -= f->len;
    }
    n->n = c->n - CH_HALF;
    c->n = CH_HALF;
    return CRDT_OK;
}

/* Set the indexes of fragments [from, to) of a chunk's array @p v. The
 * bounds are locals: an idx store through v[i] could alias the chunk's
 * own count, which the compiler would then read again each step (this
 * loop is most of an insert's cost: half a chunk, on average, moves). */
static void
frags_renumber(seq_frag *const *v, uint32_t from, uint32_t to)
{
    uint32_t i = from;

    for (; i + 4 <= to; i += 4) {
        v[i]->idx = i;
        v[i + 1]->idx = i + 1;
        v[i + 2]->idx = i + 2;
        v[i + 3]->idx = i + 3;
    }
    for (; i < to; i++)
        v[i]->idx = i;
}

/* Put @p f at index @p at of chunk @p c (c NULL: the sequence is empty
 * or @p at is past the last chunk's end, i.e. append). */
static int
place(crdt__seq *s, seq_chunk *c, uint32_t at, seq_frag *f)
{
    if (c == NULL) {
        if (s->nch == 0 || s->ch[s->nch - 1]->n == CH_MAX) {
            if ((c = chunk_new(s, s->nch)) == NULL)
                return CRDT_ENOMEM;
        } else {
            c = s->ch[s->nch - 1];
        }
        at = c->n;
    }
    if (c->n == CH_MAX) {
        int rc = chunk_split(s, c);
        if (rc < 0)
            return rc;
        if (at > CH_HALF) {
            at -= CH_HALF;
            c = s->ch[c->idx + 1];
        }
    }
    memmove(&c->f[at + 1], &c->f[at], (c->n - at) * sizeof *c->f);
    c->f[at] = f;
    c->n++;
    frags_renumber(c->f, at, c->n);
    f->ch = c;
    c->vis += vis_of(f);
    c->tot += f->len;
    s->vis += vis_of(f);
    s->tot += f->len;
    return CRDT_OK;
}

/* A run's fragment array is carved from the blocks too: most runs hold
 * one or two fragments, and a malloc for each cost more than the
 * integration that added it. An outgrown array stays unused in its
 * block; with doubling, they add up to less than the array in use. */
static int
run_add_frag(crdt__seq *s, seq_run *r, uint32_t at, seq_frag *f)
{
    if (r->nf == r->capf) {
        uint32_t cap = r->capf ? r->capf * 2 : 2;
        seq_frag **n = seq_alloc(s, cap * sizeof *n);
        if (n == NULL)
            return CRDT_ENOMEM;
        if (r->nf > 0)
            memcpy(n, r->frags, r->nf * sizeof *n);
        r->frags = n;
        r->capf = cap;
    }
    memmove(&r->frags[at + 1], &r->frags[at], (r->nf - at) * sizeof *r->frags);
    r->frags[at] = f;
    r->nf++;
    return CRDT_OK;
}

/* Split @p f so that it keeps its first @p k elements; return the rest. */
static seq_frag *
frag_split(crdt__seq *s, seq_frag *f, uint64_t k)
{
    seq_frag *n = seq_alloc(s, sizeof *n);
    uint64_t rest = f->len - k;

    if (n == NULL)
        return NULL;
    n->run = f->run;
    n->off = f->off + k;
    n->len = rest;
    n->deleted = f->deleted;
    f->len = k;
    f->ch->tot -= rest;
    s->tot -= rest;
    if (!f->deleted) {
        f->ch->vis -= rest;
        s->vis -= rest;
    }
    if (run_add_frag(s, f->run, frag_index(f->run, f->off) + 1, n) < 0 ||
        place(s, f->ch, f->idx + 1, n) < 0) {
        /* out of memory halfway: the structure is dropped by the caller
         * (the write fails and the cache forgets this sequence) */
        s->broken = 1;
        return NULL;
    }
    return n;
}

/* ---- positions ---- */

typedef struct {
    int inf;       /* -1 start, 0 an element, +1 end */
    uint32_t c, i; /* chunk, index in chunk */
    uint64_t o;    /* offset in the fragment */
} seq_pos;

static int
pos_cmp(const seq_pos *a, const seq_pos *b)
{
    if (a->inf != b->inf)
        return a->inf < b->inf ? -1 : 1;
    if (a->inf != 0)
        return 0;
    if (a->c != b->c)
        return a->c < b->c ? -1 : 1;
    if (a->i != b->i)
        return a->i < b->i ? -1 : 1;
    return a->o < b->o ? -1 : a->o > b->o;
}

/* Position of element @p id; ctr 0 is the start (@p none -1) or the end
 * (+1). An id not integrated is an error the caller checked before. */
static int
pos_of(crdt__seq *s, const crdt_seq_id *id, int none, seq_pos *out)
{
    seq_run *r;
    seq_frag *f;

    memset(out, 0, sizeof *out);
    if (id->ctr == 0) {
        out->inf = none;
        return CRDT_OK;
    }
    if ((r = crdt__seq_run_find(s, id)) == NULL ||
        (f = frag_of(r, id->ctr - r->ctr)) == NULL)
        return CRDT_ECORRUPT;
    out->c = f->ch->idx;
    out->i = f->idx;
    out->o = id->ctr - r->ctr - f->off;
    return CRDT_OK;
}

int
crdt__seq_has(crdt__seq *s, const crdt_seq_id *id)
{
    seq_run *r;

    if (id->ctr == 0)
        return 1;
    r = crdt__seq_run_find(s, id);
    return r != NULL && frag_of(r, id->ctr - r->ctr) != NULL;
}

/* ---- integration (YjsMod) ---- */

/* Does the new element (@p a, @p ctr) go before @p other in a tie? */
static int
tie_before(const crdt_actor *a, uint64_t ctr, const seq_run *other,
           uint64_t octr)
{
    int c = actor_cmp(a, &other->actor);

    return c != 0 ? c < 0 : ctr < octr;
}

/*
 * The base of an epoch (seq_compact.c) is a fixed skeleton: every peer
 * at the epoch holds all of it, so an insert written there has origins
 * that no base element separates (they were adjacent in its writer's
 * view). An insert written before the epoch and rebased into it may name
 * origins that base elements now separate (elements inserted
 * concurrently, or kept between them). Its right origin is then capped
 * at the first base element after its left origin: it stays in its left
 * origin's gap, and every gap is a list of its own whose ends are base
 * elements, in which YjsMod converges as usual. The cap is a function of
 * the base and the origins only, so every replica places it alike, in
 * any order of arrival, and a rebuild too. The base's own origins are
 * never read: a scan stays inside one gap.
 */

/* The gap of element @p id (0: before the first base element). */
static uint64_t
gap_of(crdt__seq *s, const crdt_seq_id *id)
{
    seq_run *r;

    if (id->ctr == 0 || (r = crdt__seq_run_find(s, id)) == NULL)
        return 0;
    return r->base ? r->gap + (id->ctr - r->ctr) : r->gap;
}

/* The id of base element @p ord (1 .. base_total). */
static crdt_seq_id
base_elem(const crdt__seq *s, uint64_t ord)
{
    size_t lo = 0, hi = s->nbase;
    crdt_seq_id id;

    while (lo < hi) { /* the last base run starting at or before ord */
        size_t mid = (lo + hi) / 2;
        if (s->base[mid]->gap <= ord)
            lo = mid + 1;
        else
            hi = mid;
    }
    id.actor = s->base[lo - 1]->actor;
    id.ctr = s->base[lo - 1]->ctr + (ord - s->base[lo - 1]->gap);
    return id;
}

/* The right origin of an element of gap @p g whose stored right origin
 * is @p right, capped at the end of the gap. */
static crdt_seq_id
capped_right(crdt__seq *s, uint64_t g, const crdt_seq_id *right)
{
    seq_run *rr;

    if (s->base_total == 0 || g >= s->base_total)
        return *right; /* no base element after the gap */
    if (right->ctr != 0 && (rr = crdt__seq_run_find(s, right)) != NULL) {
        uint64_t j = rr->base ? rr->gap + (right->ctr - rr->ctr) : rr->gap;
        if (rr->base ? j <= g + 1 : j <= g)
            return *right;
    }
    return base_elem(s, g + 1);
}

int
crdt__seq_base_add(crdt__seq *s, seq_run *r)
{
    int rc;

    if (s->nbase == s->capbase) {
        size_t cap = s->capbase ? s->capbase * 2 : 16;
        seq_run **nb = realloc(s->base, cap * sizeof *nb);
        if (nb == NULL)
            return CRDT_ENOMEM;
        s->base = nb;
        s->capbase = cap;
    }
    r->base = 1;
    r->gap = s->base_total + 1;
    if ((rc = crdt__seq_integrate(s, r, 0, r->len)) < 0)
        return rc;
    s->base[s->nbase++] = r;
    s->base_total += r->len;
    return CRDT_OK;
}

int
crdt__seq_integrate(crdt__seq *s, seq_run *r, uint64_t off, uint64_t len)
{
    crdt_seq_id left, right;
    seq_frag *L = NULL, *R = NULL, *cur, *dest, *nf, *prev;
    seq_pos pl, pr;
    int scanning = 0, rc;

    if (off == 0) {
        left = r->left;
    } else {
        left.actor = r->actor;
        left.ctr = r->ctr + off - 1;
    }
    if (off == 0 && !r->base) /* no base: every gap is 0 */
        r->gap = s->nbase > 0 ? gap_of(s, &left) : 0;
    right = r->base ? r->right : capped_right(s, r->gap, &r->right);
    if (left.ctr != 0) {
        seq_run *lr = crdt__seq_run_find(s, &left);
        uint64_t k;
        if (lr == NULL || (L = frag_of(lr, left.ctr - lr->ctr)) == NULL)
            return CRDT_ECORRUPT;
        k = left.ctr - lr->ctr - L->off;
        if (k + 1 < L->len && frag_split(s, L, k + 1) == NULL)
            return CRDT_ENOMEM;
    }
    if (right.ctr != 0) {
        seq_run *rr = crdt__seq_run_find(s, &right);
        uint64_t k;
        if (rr == NULL || (R = frag_of(rr, right.ctr - rr->ctr)) == NULL)
            return CRDT_ECORRUPT;
        k = right.ctr - rr->ctr - R->off;
        if (k > 0 && (R = frag_split(s, R, k)) == NULL)
            return CRDT_ENOMEM;
    }
    /* the origins' positions: L ends at the left origin, R starts at
     * the right one (found again only if R's split cut L) */
    if (L != NULL && L->run->ctr + L->off + L->len - 1 == left.ctr) {
        pl.inf = 0;
        pl.c = L->ch->idx;
        pl.i = L->idx;
        pl.o = L->len - 1;
    } else if ((rc = pos_of(s, &left, -1, &pl)) < 0) {
        return rc;
    }
    if (R != NULL) {
        pr.inf = 0;
        pr.c = R->ch->idx;
        pr.i = R->idx;
        pr.o = 0;
    } else if ((rc = pos_of(s, &right, +1, &pr)) < 0) {
        return rc;
    }

    cur = L != NULL ? frag_next(s, L) : (s->nch ? s->ch[0]->f[0] : NULL);
    dest = cur;
    while (cur != NULL && cur != R) {
        crdt_seq_id ol;
        seq_pos pol, por;
        int c;

        if (!scanning)
            dest = cur;
        if (cur->off == 0) {
            ol = cur->run->left;
            if ((rc = pos_of(s, &ol, -1, &pol)) < 0)
                return rc;
        } else { /* the element before it in its run: no search by id */
            const seq_frag *of = cur->run->frags[frag_index(cur->run,
                                                            cur->off - 1)];
            pol.inf = 0;
            pol.c = of->ch->idx;
            pol.i = of->idx;
            pol.o = cur->off - 1 - of->off;
        }
        c = pos_cmp(&pol, &pl);
        if (c < 0)
            break;
        if (c == 0) {
            crdt_seq_id oright = cur->run->base
                                     ? cur->run->right
                                     : capped_right(s, cur->run->gap,
                                                    &cur->run->right);
            if ((rc = pos_of(s, &oright, +1, &por)) < 0)
                return rc;
            c = pos_cmp(&por, &pr);
            if (c < 0) {
                scanning = 1;
            } else if (c == 0) {
                if (tie_before(&r->actor, r->ctr + off, cur->run,
                               cur->run->ctr + cur->off))
                    break;
                scanning = 0;
            } else {
                scanning = 0;
            }
        }
        /* the fragment's later elements have their left origin just
         * before them, right of ours: skipped, as the scan would */
        cur = frag_next(s, cur);
    }
    if (!scanning)
        dest = cur;

    /* typing: the new elements follow the run's last fragment */
    prev = dest != NULL ? frag_prev(s, dest)
                        : (s->nch ? s->ch[s->nch - 1]->f[s->ch[s->nch - 1]->n - 1]
                                  : NULL);
    if (prev != NULL && prev->run == r && !prev->deleted &&
        prev->off + prev->len == off && prev == r->frags[r->nf - 1]) {
        prev->len += len;
        prev->ch->vis += len;
        prev->ch->tot += len;
        s->vis += len;
        s->tot += len;
        return CRDT_OK;
    }
    nf = seq_alloc(s, sizeof *nf);
    if (nf == NULL)
        return CRDT_ENOMEM;
    nf->run = r;
    nf->off = off;
    nf->len = len;
    if ((rc = run_add_frag(s, r, r->nf, nf)) < 0)
        return rc; /* nf stays unused in its block */
    rc = dest != NULL ? place(s, dest->ch, dest->idx, nf)
                      : place(s, NULL, 0, nf);
    if (rc < 0)
        s->broken = 1;
    return rc;
}

/*
 * Typing: an insert that continues its actor's newest run (its left
 * origin is the run's last element, its right origin the run's) lands
 * right after that element when the element before which the scan of
 * crdt__seq_integrate() would stop, its right origin, follows the run's
 * last fragment at once: nothing sits between the origins, so the scan
 * is empty and the fragment grows. Keystrokes applied an op each (local
 * typing, a change whose inserts were not folded into one) are such
 * inserts; this test costs no lookup by id (the right origin's is a
 * search among the actor's runs, an older one).
 */
seq_frag *
crdt__seq_typing_frag(const crdt__seq *s, const seq_run *r,
                      const crdt_seq_id *right)
{
    seq_frag *last, *next;

    /* with a base, the right origin may be capped: the scan decides */
    if (s->base_total != 0 || r->base || r->nf == 0)
        return NULL;
    last = r->frags[r->nf - 1];
    if (last->deleted || last->off + last->len != r->len)
        return NULL;
    next = frag_next(s, last);
    if (right->ctr == 0)
        return next == NULL ? last : NULL;
    if (next == NULL || next->run->ctr + next->off != right->ctr ||
        actor_cmp(&next->run->actor, &right->actor) != 0)
        return NULL;
    return last;
}

void
crdt__seq_typing_grow(crdt__seq *s, seq_frag *last, uint64_t len)
{
    last->len += len;
    last->ch->vis += len;
    last->ch->tot += len;
    s->vis += len;
    s->tot += len;
}

/* ---- deletes ---- */

int
crdt__seq_mark_deleted(crdt__seq *s, const crdt_actor *actor, uint64_t c,
                       uint64_t e)
{
    seq_actor *a = crdt__seq_actor(s, actor, 0);
    long i;

    if (a == NULL)
        return CRDT_OK;
    i = run_index(a, c);
    if (i < 0)
        i = 0;
    for (; (size_t)i < a->n && a->ctrs[i] < e; i++) {
        seq_run *r = a->runs[i];
        uint64_t lo, hi;
        uint32_t j;

        if (r->ctr + r->len <= c || r->nf == 0)
            continue;
        lo = (c > r->ctr ? c : r->ctr) - r->ctr;
        hi = (e < r->ctr + r->len ? e : r->ctr + r->len) - r->ctr;
        j = frag_index(r, lo);
        if (r->frags[j]->off + r->frags[j]->len <= lo)
            j++;
        while (j < r->nf && r->frags[j]->off < hi) {
            seq_frag *f = r->frags[j];

            if (f->deleted) {
                j++;
                continue;
            }
            if (f->off < lo) {
                if (frag_split(s, f, lo - f->off) == NULL)
                    return CRDT_ENOMEM;
                j++;
                continue;
            }
            if (f->off + f->len > hi && frag_split(s, f, hi - f->off) == NULL)
                return CRDT_ENOMEM;
            f->deleted = 1;
            f->ch->vis -= f->len;
            s->vis -= f->len;
            j++;
        }
    }
    return CRDT_OK;
}

/* ---- lookups by index ---- */

/* The fragment holding visible element @p pos, and the offset in it. */
static seq_frag *
find_vis(const crdt__seq *s, uint64_t pos, uint64_t *o)
{
    for (size_t c = 0; c < s->nch; c++) {
        const seq_chunk *ch = s->ch[c];
        if (pos >= ch->vis) {
            pos -= ch->vis;
            continue;
        }
        for (uint32_t i = 0; i < ch->n; i++) {
            seq_frag *f = ch->f[i];
            if (f->deleted)
                continue;
            if (pos < f->len) {
                *o = pos;
                return f;
            }
            pos -= f->len;
        }
        return NULL; /* counts disagree: not reached (invariant 2) */
    }
    return NULL;
}

static crdt_seq_id
id_of(const seq_frag *f, uint64_t o)
{
    crdt_seq_id id;

    id.actor = f->run->actor;
    id.ctr = f->run->ctr + f->off + o;
    return id;
}

uint64_t
crdt__seq_len(const crdt__seq *s)
{
    return s->vis;
}

int
crdt__seq_origins(const crdt__seq *s, uint64_t pos, crdt_seq_id *left,
                  crdt_seq_id *right)
{
    seq_frag *f, *p;
    uint64_t o;

    memset(left, 0, sizeof *left);
    memset(right, 0, sizeof *right);
    if (pos > s->vis)
        return CRDT_EINVAL;
    if (pos == s->vis) {
        if (s->nch > 0) {
            const seq_chunk *c = s->ch[s->nch - 1];
            p = c->f[c->n - 1];
            *left = id_of(p, p->len - 1);
        }
        return CRDT_OK;
    }
    if ((f = find_vis(s, pos, &o)) == NULL)
        return CRDT_ECORRUPT;
    *right = id_of(f, o);
    if (o > 0)
        *left = id_of(f, o - 1);
    else if ((p = frag_prev(s, f)) != NULL)
        *left = id_of(p, p->len - 1);
    return CRDT_OK;
}

int
crdt__seq_id_at(const crdt__seq *s, uint64_t pos, crdt_seq_id *out)
{
    seq_frag *f;
    uint64_t o;

    memset(out, 0, sizeof *out);
    if (pos > s->vis)
        return CRDT_EINVAL;
    if (pos == s->vis)
        return CRDT_OK;
    if ((f = find_vis(s, pos, &o)) == NULL)
        return CRDT_ECORRUPT;
    *out = id_of(f, o);
    return CRDT_OK;
}

uint64_t
crdt__seq_index_of(const crdt__seq *s, const crdt_seq_id *id)
{
    seq_run *r;
    seq_frag *f;
    uint64_t n = 0;

    if (id->ctr == 0 ||
        (r = crdt__seq_run_find((crdt__seq *)s, id)) == NULL ||
        (f = frag_of(r, id->ctr - r->ctr)) == NULL)
        return s->vis;
    for (uint32_t c = 0; c < f->ch->idx; c++)
        n += s->ch[c]->vis;
    for (uint32_t i = 0; i < f->idx; i++)
        n += vis_of(f->ch->f[i]);
    if (!f->deleted)
        n += id->ctr - r->ctr - f->off;
    return n;
}

/* Ranges for a local delete, coalesced while contiguous. */
int
crdt__seq_ranges(const crdt__seq *s, uint64_t pos, uint64_t n, crdt__enc *e)
{
    crdt_seq_range *v = NULL, *nv;
    size_t nr = 0, cap = 0;
    seq_frag *f;
    uint64_t o;
    int rc = CRDT_OK;

    if (n == 0 || pos > s->vis || n > s->vis - pos)
        return CRDT_EINVAL;
    f = find_vis(s, pos, &o);
    while (n > 0 && f != NULL) {
        if (!f->deleted) {
            uint64_t take = f->len - o < n ? f->len - o : n;
            crdt_seq_id id = id_of(f, o);
            if (nr > 0 && actor_cmp(&v[nr - 1].actor, &id.actor) == 0 &&
                v[nr - 1].ctr + v[nr - 1].len == id.ctr) {
                v[nr - 1].len += take;
            } else {
                if (nr == cap) {
                    cap = cap ? cap * 2 : 8;
                    nv = realloc(v, cap * sizeof *v);
                    if (nv == NULL) {
                        free(v);
                        return CRDT_ENOMEM;
                    }
                    v = nv;
                }
                v[nr].actor = id.actor;
                v[nr].ctr = id.ctr;
                v[nr].len = take;
                nr++;
            }
            n -= take;
        }
        o = 0;
        f = frag_next(s, f);
    }
    if (n > 0) {
        free(v);
        return CRDT_ECORRUPT;
    }
    if (msgpack_pack_array(&e->pk, (uint32_t)(nr * 3)) < 0)
        rc = CRDT_ENOMEM;
    for (size_t i = 0; rc == CRDT_OK && i < nr; i++)
        if (crdt__enc_bin(e, v[i].actor.b, CRDT_ACTOR_BYTES) < 0 ||
            msgpack_pack_uint64(&e->pk, v[i].ctr) < 0 ||
            msgpack_pack_uint64(&e->pk, v[i].len) < 0)
            rc = CRDT_ENOMEM;
    free(v);
    return rc == CRDT_OK ? crdt__enc_ok(e) : rc;
}

/* ---- content ---- */

/* Byte offset of element @p off in a text run. */
static size_t
text_off(const seq_run *r, uint64_t off)
{
    size_t b = 0;

    if (r->ascii)
        return (size_t)off;
    while (off > 0 && b < r->nbytes) {
        b++;
        while (b < r->nbytes && (r->bytes[b] & 0xc0) == 0x80)
            b++;
        off--;
    }
    return b;
}

int
crdt__seq_text(const crdt__seq *s, uint64_t pos, uint64_t n, char **out,
               size_t *out_len)
{
    size_t cap = 64, len = 0;
    char *buf;
    seq_frag *f;
    uint64_t o = 0;

    if (pos > s->vis)
        return CRDT_EINVAL;
    if (n > s->vis - pos)
        n = s->vis - pos;
    cap = (size_t)n + 16;
    if ((buf = malloc(cap)) == NULL)
        return CRDT_ENOMEM;
    /* a large text's buffer is fresh pages: one call faults them in */
    crdt__prefault(buf, cap);
    f = n > 0 ? find_vis(s, pos, &o) : NULL;
    while (n > 0 && f != NULL) {
        if (!f->deleted) {
            uint64_t take = f->len - o < n ? f->len - o : n;
            size_t b0 = text_off(f->run, f->off + o);
            size_t b1 = f->run->ascii ? b0 + (size_t)take
                                      : text_off(f->run, f->off + o + take);
            if (len + (b1 - b0) + 1 > cap) {
                size_t nc = (len + (b1 - b0) + 1) * 2;
                char *nb = realloc(buf, nc);
                if (nb == NULL) {
                    free(buf);
                    return CRDT_ENOMEM;
                }
                buf = nb;
                cap = nc;
            }
            memcpy(buf + len, f->run->bytes + b0, b1 - b0);
            len += b1 - b0;
            n -= take;
        }
        o = 0;
        f = frag_next(s, f);
    }
    buf[len] = 0;
    *out = buf;
    *out_len = len;
    return CRDT_OK;
}

int
crdt__seq_run_bytes(const seq_run *r, int text, uint64_t off, uint64_t len,
                    size_t *b0, size_t *b1)
{
    crdt__mp m = { r->bytes, r->bytes + r->nbytes };

    if (off + len > r->len)
        return CRDT_ECORRUPT;
    if (text) {
        *b0 = text_off(r, off);
        *b1 = off + len == r->len ? r->nbytes : text_off(r, off + len);
        return CRDT_OK;
    }
    for (uint64_t i = 0; i < off + len; i++) {
        if (i == off)
            *b0 = (size_t)(m.p - r->bytes);
        if (crdt__mp_skip(&m) < 0)
            return CRDT_ECORRUPT;
    }
    if (len == 0)
        *b0 = (size_t)(m.p - r->bytes);
    *b1 = (size_t)(m.p - r->bytes);
    return CRDT_OK;
}

int
crdt__seq_elem_deleted(const crdt__seq *s, const crdt_seq_id *id)
{
    seq_run *r = crdt__seq_run_find((crdt__seq *)s, id);
    const seq_frag *f;

    if (r == NULL || (f = frag_of(r, id->ctr - r->ctr)) == NULL)
        return -1;
    return f->deleted;
}

/* ---- lifetime ---- */

void
crdt__seq_free(crdt__seq *s)
{
    if (s == NULL)
        return;
    free(s->ch);
    for (size_t a = 0; a < s->nact; a++) {
        /* the runs, their bytes and frags: in the blocks */
        free(s->act[a].runs);
        free(s->act[a].ctrs);
        free(s->act[a].dels ? s->act[a].dels - s->act[a].dels_skip : NULL);
        free(s->act[a].dels0);
    }
    free(s->act);
    free(s->base);
    free(s->dirty_runs);
    free(s->dirty_dels);
    while (s->blocks != NULL) {
        seq_block *b = s->blocks;
        s->blocks = b->next;
        free(b);
    }
    free(s);
}

/* A new run in actor @p a's sorted list. */
seq_run *
crdt__seq_run_new(crdt__seq *s, const crdt_actor *actor, uint64_t ctr)
{
    seq_actor *a = crdt__seq_actor(s, actor, 1);
    seq_run *r;
    long i;

    if (a == NULL)
        return NULL;
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 8;
        seq_run **n = realloc(a->runs, cap * sizeof *n);
        uint64_t *c;
        if (n == NULL)
            return NULL;
        a->runs = n; /* cap stays until both arrays have grown */
        if ((c = realloc(a->ctrs, cap * sizeof *c)) == NULL)
            return NULL;
        a->ctrs = c;
        a->cap = cap;
    }
    if ((r = seq_alloc(s, sizeof *r)) == NULL)
        return NULL;
    r->owner = s;
    r->actor = *actor;
    r->ctr = ctr;
    r->ascii = 1;
    i = run_index(a, ctr) + 1;
    memmove(&a->runs[i + 1], &a->runs[i], (a->n - (size_t)i) * sizeof *a->runs);
    memmove(&a->ctrs[i + 1], &a->ctrs[i], (a->n - (size_t)i) * sizeof *a->ctrs);
    a->runs[i] = r;
    a->ctrs[i] = ctr;
    a->n++;
    return r;
}

/* 1 if @p n bytes at @p p are all below 0x80 (eight at a time). */
static int
bytes_ascii(const unsigned char *p, size_t n)
{
    size_t i = 0;

    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        if (w & UINT64_C(0x8080808080808080))
            return 0;
    }
    for (; i < n; i++)
        if (p[i] >= 0x80)
            return 0;
    return 1;
}

int
crdt__seq_run_append(seq_run *r, const void *p, size_t n, uint64_t elems,
                     int text)
{
    if (r->nbytes + n > r->cap) {
        /* from the blocks, as its fragments (run_add_frag): most runs
         * get their bytes once; an outgrown buffer stays unused */
        size_t cap = r->cap ? r->cap : 16;
        unsigned char *b;
        while (cap < r->nbytes + n)
            cap *= 2;
        if ((b = seq_alloc(r->owner, cap)) == NULL)
            return CRDT_ENOMEM;
        if (r->nbytes > 0)
            memcpy(b, r->bytes, r->nbytes);
        r->bytes = b;
        r->cap = cap;
    }
    memcpy(r->bytes + r->nbytes, p, n);
    if (text && r->ascii && !bytes_ascii(p, n))
        r->ascii = 0;
    r->nbytes += n;
    r->len += elems;
    return CRDT_OK;
}

/* Visit the visible elements' runs and offsets in order (lists). */
int
crdt__seq_walk(const crdt__seq *s, int (*cb)(const seq_run *r, uint64_t off,
                                             uint64_t len, void *ctx),
               void *ctx)
{
    for (size_t c = 0; c < s->nch; c++)
        for (uint32_t i = 0; i < s->ch[c]->n; i++) {
            const seq_frag *f = s->ch[c]->f[i];
            int rc;
            if (f->deleted)
                continue;
            if ((rc = cb(f->run, f->off, f->len, ctx)) != 0)
                return rc;
        }
    return CRDT_OK;
}
