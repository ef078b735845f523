/*
 * applyq.c: a merge batch's ops, applied in state-key order.
 *
 * Why: applying ops in arrival order makes every op a fresh B-tree
 * descent to a random leaf. Applied sorted by (coll, doc, field), the
 * state cursor walks the tree left to right and most lookups land on the
 * leaf page it already holds (LMDB searches only that page when the key
 * falls inside it), and the pages written are written once.
 *
 * Why reordering is safe (the merge rules in state.c): every rule is
 * commutative except that a counter part must count one actor's ops in
 * seq order. The sort is stable (ties keep arrival order) and a counter
 * part lives under one (coll, doc, field), so each actor's ops on one
 * field keep their order. Ops of different documents never read each
 * other's state.
 *
 * Runs of PUTs to one field collapse to the one with the highest stamp:
 * rule (1) keeps the max stamp, so the others could only be overwritten
 * in this same batch.
 *
 * The ops are held in blocks that stay where they are, each twice the
 * one before (CRDT__QBLOCK, then 2x, 4x...): a queue that grows (a big
 * batch: a text's whole history in one message) allocates one more
 * block instead of copying every op held into a larger array, which
 * cost a sixth of such a merge's CPU. An op held is 128 bytes: what
 * crdt__state_apply() reads of it, not a whole crdt_op.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "seq.h"

#define FLUSH_AT 16384 /* ops held before applying: bounds the memory */

/* The stamp first, in two cache lines of a line-aligned array: the
 * flush visits ops in key order, i.e. at random, and an op's stamp,
 * kind, names and value then lie in the two lines it prefetches.
 * Only the parts of a crdt_op that crdt__state_apply() reads for the
 * kinds queued here (no sequence or member-set ops): copying the whole
 * 224-byte crdt_op at each push, and holding twice the bytes, cost more
 * than building one in the flush. */
struct crdt__qop {
    uint64_t hlc, seq;
    crdt_actor actor;
    const char *coll, *doc, *field;
    size_t coll_len, doc_len, field_len;
    crdt_value value;
    int64_t delta;
    union {
        struct { /* removes */
            const unsigned char *observed;
            size_t observed_len;
        };
        unsigned char tag[8]; /* INCR, SADD: their change's (op_copy.c) */
    };
    crdt_op_kind kind;
};
_Static_assert(sizeof(struct crdt__qop) == 128, "two cache lines");

/* Block k holds CRDT__QBLOCK << k ops, from CRDT__QBLOCK * (2^k - 1). */
static struct crdt__qop *
qop(const crdt__applyq *q, size_t i)
{
    size_t u = i / CRDT__QBLOCK + 1;
    int k = 63 - __builtin_clzll((unsigned long long)u);

    return &q->blk[k][i - CRDT__QBLOCK * (((size_t)1 << k) - 1)];
}

/* What the sort moves: small, so that sorting stays in cache. */
struct crdt__qkey {
    uint64_t k0, k1; /* the first 16 bytes of coll 0 doc 0 [field 0],
                        big-endian: comparing words compares bytes */
    uint32_t idx;    /* into the ops, in arrival order */
    uint16_t len;    /* of the whole joined key (names: 64 bytes at most) */
    uint8_t kind;    /* the op's, so that runs are found without it */
};

static void
key_of(struct crdt__qkey *k, const crdt_op *op, uint32_t idx)
{
    unsigned char b[16 + 1]; /* one spare byte: the last NUL may fall off */
    const char *part[3] = { op->coll, op->doc, op->field };
    size_t plen[3] = { op->coll_len, op->doc_len, op->field_len };
    size_t n = 0, total = 0;

    memset(b, 0, sizeof b);
    for (int i = 0; i < 3 && part[i] != NULL; i++) {
        if (n < 16) {
            size_t m = plen[i] < 16 - n ? plen[i] : 16 - n;
            memcpy(b + n, part[i], m);
            n += m + 1; /* the NUL separator is the zeroed byte after */
        }
        total += plen[i] + 1;
    }
    k->k0 = crdt__rd64(b);
    k->k1 = crdt__rd64(b + 8);
    k->idx = idx;
    k->len = (uint16_t)total;
    k->kind = (uint8_t)op->kind;
}

/* (coll, doc, field) in LMDB's key order; a DEL_DOC (no field) first */
static int
cmp_key(const crdt__applyq *q, const struct crdt__qkey *x,
        const struct crdt__qkey *y)
{
    const struct crdt__qop *a, *b;
    int c;

    if (x->k0 != y->k0)
        return x->k0 < y->k0 ? -1 : 1;
    if (x->k1 != y->k1)
        return x->k1 < y->k1 ? -1 : 1;
    /* names hold no NUL, so two keys that fit in the prefix and agree
     * on it differ only if one is a doc key and the other a field key,
     * which the prefix already told apart */
    if (x->len <= 16 && y->len <= 16)
        return 0;
    a = qop(q, x->idx);
    b = qop(q, y->idx);
    if ((c = crdt__key_cmp(a->coll, a->coll_len, b->coll, b->coll_len)) != 0 ||
        (c = crdt__key_cmp(a->doc, a->doc_len, b->doc, b->doc_len)) != 0)
        return c;
    if (a->field == NULL || b->field == NULL)
        return (a->field != NULL) - (b->field != NULL);
    return crdt__key_cmp(a->field, a->field_len, b->field, b->field_len);
}

/* Bottom-up merge sort on the full key: stable, so equal keys keep
 * arrival order. */
static void
merge_sort(const crdt__applyq *q, struct crdt__qkey *a,
           struct crdt__qkey *tmp, size_t n)
{
    struct crdt__qkey *src = a, *dst = tmp;

    for (size_t w = 1; w < n; w *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * w) {
            size_t mid = lo + w < n ? lo + w : n;
            size_t hi = lo + 2 * w < n ? lo + 2 * w : n;
            size_t i = lo, j = mid, k = lo;

            while (i < mid && j < hi)
                dst[k++] = cmp_key(q, &src[j], &src[i]) < 0 ? src[j++]
                                                           : src[i++];
            while (i < mid)
                dst[k++] = src[i++];
            while (j < hi)
                dst[k++] = src[j++];
        }
        struct crdt__qkey *t = src;
        src = dst;
        dst = t;
    }
    if (src != a)
        memcpy(a, src, n * sizeof *a);
}

static unsigned
prefix_byte(const struct crdt__qkey *k, int i)
{
    return (unsigned)((i < 8 ? k->k0 >> (56 - 8 * i)
                             : k->k1 >> (56 - 8 * (i - 8))) & 0xff);
}

/*
 * Stable sort into key order: an LSD radix sort on the 16-byte prefix,
 * one pass per byte position where the keys differ (keys share most of
 * their bytes: one collection, similar doc ids), then a merge sort of
 * each run that ties on the prefix but is longer than it.
 */
static void
sort_keys(const crdt__applyq *q, struct crdt__qkey *a, struct crdt__qkey *tmp,
          size_t n)
{
    static const int B = 16;
    uint32_t count[16][256];
    struct crdt__qkey *src = a, *dst = tmp;
    size_t lo, hi;

    uint64_t d0 = 0, d1 = 0;

    /* the byte positions where some key differs from the first: keys
     * share most of their bytes, and only those positions need counts
     * and a pass */
    for (size_t i = 1; i < n; i++) {
        d0 |= a[i].k0 ^ a[0].k0;
        d1 |= a[i].k1 ^ a[0].k1;
    }
    struct crdt__qkey diff = { d0, d1, 0, 0, 0 };
    int varies[16], nv = 0;

    for (int b = 0; b < B; b++)
        if (prefix_byte(&diff, b) != 0)
            varies[nv++] = b;
    memset(count, 0, sizeof count);
    for (size_t i = 0; i < n; i++)
        for (int j = 0; j < nv; j++)
            count[varies[j]][prefix_byte(&a[i], varies[j])]++;
    for (int j = nv - 1; j >= 0; j--) {
        int b = varies[j];
        uint32_t pos[256], sum = 0;

        for (int v = 0; v < 256; v++) {
            pos[v] = sum;
            sum += count[b][v];
        }
        for (size_t i = 0; i < n; i++)
            dst[pos[prefix_byte(&src[i], b)]++] = src[i];
        struct crdt__qkey *t = src;
        src = dst;
        dst = t;
    }
    if (src != a)
        memcpy(a, src, n * sizeof *a);
    for (lo = 0; lo < n; lo = hi) {
        int longer = a[lo].len > B;

        for (hi = lo + 1; hi < n && a[hi].k0 == a[lo].k0 &&
                          a[hi].k1 == a[lo].k1; hi++)
            longer |= a[hi].len > B;
        if (longer && hi - lo > 1)
            merge_sort(q, a + lo, tmp, hi - lo);
    }
}

static int
stamp_above(const struct crdt__qop *x, const struct crdt__qop *y)
{
    if (x->hlc != y->hlc)
        return x->hlc > y->hlc;
    return memcmp(x->actor.b, y->actor.b, CRDT_ACTOR_BYTES) > 0;
}

void
crdt__applyq_init(crdt__applyq *q)
{
    memset(q, 0, sizeof *q);
}

void
crdt__applyq_free(crdt__applyq *q)
{
    for (size_t i = 0; i < q->nblk; i++)
        free(q->blk[i]);
    free(q->blk);
    free(q->keys);
    memset(q, 0, sizeof *q);
}

/* One more block of ops, twice the last (and room for their keys). */
static int
grow(crdt__applyq *q)
{
    size_t size = (size_t)CRDT__QBLOCK << q->nblk, cap = q->cap + size;
    struct crdt__qkey *keys;
    struct crdt__qop *b;

    if (q->nblk == q->capblk) {
        size_t nc = q->capblk ? q->capblk * 2 : 4;
        struct crdt__qop **nb = realloc(q->blk, nc * sizeof *nb);
        if (nb == NULL)
            return CRDT_ENOMEM;
        q->blk = nb;
        q->capblk = nc;
    }
    if ((b = aligned_alloc(64, size * sizeof *b)) == NULL)
        return CRDT_ENOMEM;
    /* twice: the sort's scratch space is the second half (empty now:
     * nothing of it survives a push) */
    if ((keys = realloc(q->keys, 2 * cap * sizeof *keys)) == NULL) {
        free(b);
        return CRDT_ENOMEM;
    }
    q->keys = keys;
    q->blk[q->nblk++] = b;
    q->cap = cap;
    return CRDT_OK;
}

int
crdt__applyq_push(crdt__wctx *w, crdt__applyq *q, const crdt_op *op,
                  uint64_t hlc, const crdt_actor *actor, uint64_t seq,
                  const unsigned char *hash)
{
    struct crdt__qop *e;
    int rc;

    if (q->n == FLUSH_AT && (rc = crdt__applyq_flush(w, q)) < 0)
        return rc;
    if (q->n == q->cap && (rc = grow(q)) < 0)
        return rc;
    e = qop(q, q->n);
    e->coll = op->coll;
    e->doc = op->doc;
    e->field = op->field;
    e->coll_len = op->coll_len;
    e->doc_len = op->doc_len;
    e->field_len = op->field_len;
    e->value = op->value;
    e->delta = op->delta;
    if (op->kind == CRDT_OP_INCR || op->kind == CRDT_OP_SADD) {
        memcpy(e->tag, hash, sizeof e->tag);
    } else {
        e->observed = op->observed;
        e->observed_len = op->observed_len;
    }
    e->kind = op->kind;
    e->hlc = hlc;
    e->seq = seq;
    e->actor = *actor;
    key_of(&q->keys[q->n], op, (uint32_t)q->n);
    q->n++;
    return CRDT_OK;
}

/*
 * The flush visits the ops in key order, i.e. at random in memory, and
 * most of its own time was spent waiting for them. Ahead of op @i (in
 * sorted order) it asks for the op itself PF_OPS ops ahead, and for the
 * names its key is built from (they point into the change bytes, again
 * at random) PF_NAMES ahead, when the op's line has had time to arrive.
 * The cursors count every op, including those a run of PUTs to one
 * field consumes in one step (one prefetch per step fell behind there).
 */
#define PF_OPS 16
#define PF_NAMES 8

static void
prefetch_ahead(const crdt__applyq *q, size_t i, size_t *pq, size_t *pn)
{
#ifdef __GNUC__
    const struct crdt__qkey *k = q->keys;
    size_t endq = i + PF_OPS < q->n ? i + PF_OPS : q->n;
    size_t endn = i + PF_NAMES < q->n ? i + PF_NAMES : q->n;

    if (*pq < i)
        *pq = i;
    if (*pn < i)
        *pn = i;
    for (; *pq < endq; (*pq)++) {
        const char *e = (const char *)qop(q, k[*pq].idx);
        __builtin_prefetch(e);
        __builtin_prefetch(e + 64);
    }
    for (; *pn < endn; (*pn)++) {
        const struct crdt__qop *e = qop(q, k[*pn].idx);
        __builtin_prefetch(e->doc != NULL ? e->doc : e->coll);
    }
#else
    (void)q, (void)i, (void)pq, (void)pn;
#endif
}

int
crdt__applyq_flush(crdt__wctx *w, crdt__applyq *q)
{
    const struct crdt__qkey *k = q->keys;
    crdt_op op; /* what each queued op gives; the rest stays zero */
    int rc = CRDT_OK, defer, step;

    if (q->n == 0)
        return CRDT_OK;
    memset(&op, 0, sizeof op);
    sort_keys(q, q->keys, q->keys + q->cap, q->n);
    /* the ops below only read their own keys, and a sequence's own ops
     * read its order in memory: its records are written once, after */
    defer = w->seq_defer;
    w->seq_defer = 1;
    step = w->cur_step;
    w->cur_step = 1; /* the lookups below come in key order */
    for (size_t i = 0, pq = 0, pn = 0; i < q->n && rc == CRDT_OK; i++) {
        const struct crdt__qop *e = qop(q, k[i].idx);

        prefetch_ahead(q, i, &pq, &pn);
        if (k[i].kind == CRDT_OP_PUT) {
            /* the run of PUTs to this field: apply its newest only */
            size_t j = i + 1;

            for (; j < q->n && k[j].kind == CRDT_OP_PUT &&
                   cmp_key(q, &k[j], &k[i]) == 0; j++)
                if (stamp_above(qop(q, k[j].idx), e))
                    e = qop(q, k[j].idx);
            i = j - 1;
        }
        op.kind = e->kind;
        op.coll = e->coll;
        op.doc = e->doc;
        op.field = e->field;
        op.coll_len = e->coll_len;
        op.doc_len = e->doc_len;
        op.field_len = e->field_len;
        op.value = e->value;
        op.delta = e->delta;
        if (e->kind == CRDT_OP_INCR || e->kind == CRDT_OP_SADD) {
            op.observed = NULL;
            op.observed_len = 0;
            rc = crdt__state_apply(w, &op, e->hlc, &e->actor, e->seq);
            /* a copy of it applied before is neutralised */
            if (rc == CRDT_OK)
                rc = crdt__op_original_applied(w, &op, &e->actor, e->seq,
                                               e->tag);
        } else {
            op.observed = e->observed;
            op.observed_len = e->observed_len;
            rc = crdt__state_apply(w, &op, e->hlc, &e->actor, e->seq);
        }
    }
    w->seq_defer = defer;
    w->cur_step = step;
    if (rc == CRDT_OK && !defer) /* else the caller writes them */
        rc = crdt__seq_flush_touched(w);
    q->n = 0;
    return rc;
}
