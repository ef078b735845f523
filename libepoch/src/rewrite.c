/*
 * rewrite.c: rewriting state entries through a lens (or a custom hook)
 * into the spare state slot, one document at a time.
 *
 * Entries arrive in key order, so a document's entries are contiguous:
 * only one document is held in memory at once, whatever the replica's
 * size. Collections the migration does not touch are copied as they come.
 *
 * Invariants:
 *  (1) The spare slot receives strictly increasing keys when the input
 *      is in key order: every key written for a document starts with its
 *      "coll\0doc\0" prefix (so documents stay in input order), and a
 *      document's output entries are sorted and written together (renames
 *      reorder the fields inside it). crdt_raw_spare_put() then appends.
 *  (2) Of two output entries with one key (a lens default for a name a
 *      rename also produced), the later one is written, as if both
 *      were put in turn.
 *  (3) A document's input and output bytes live in two buffers reused
 *      from one document to the next: no allocation per entry.
 *
 * Per entry (key layout: docs/storage.md):
 *   doc tombstone        kept
 *   register 'R'         field renamed/removed; value converted (a failed
 *                        conversion without a default becomes null)
 *   counter 'C' / 'D'    field renamed/removed
 *   set tag 'S'          field renamed/removed; element converted
 *   text/list 'T' / 'L'  field renamed/removed; records kept as they are
 *                        (also through a custom hook, which does not see
 *                        them)
 * Then each field the lens adds gets its default as a register stamped
 * (0, actor 0): any real write, before or after, wins over it.
 */
#include <stdlib.h>
#include <string.h>

#include "epoch_internal.h"

typedef struct {
    unsigned char *k, *v; /* set when the document is complete */
    size_t ko, vo;        /* offsets into the buffer while it grows */
    size_t kl, vl;
} entry;

/* What the lens does to one field name of the current collection. */
typedef struct {
    char from[CRDT_NAME_MAX + 1];
    const char *to; /* into the lens; NULL: the name is kept */
    int dropped;
} field_map;

#define FIELD_CACHE 32

/* Bytes of one document, reused from one document to the next. */
typedef struct {
    unsigned char *p;
    size_t len, cap;
} bytes;

struct epoch__rewriter {
    crdt_raw *t;
    const epoch_lens *lens;
    const char *custom_coll;
    epoch_custom_fn custom;
    void *custom_ctx;
    unsigned char doc_prefix[2 * CRDT_NAME_MAX + 2];
    size_t doc_prefix_len; /* 0: no document in hand */
    char coll[CRDT_NAME_MAX + 1], doc[CRDT_NAME_MAX + 1];
    int touched;           /* the document's collection is migrated */
    int drops, custom_here; /* the lens drops it; the custom hook owns it */
    size_t n_defaults;
    field_map fields[FIELD_CACHE]; /* the collection's fields seen so far */
    size_t n_fields;
    entry *ents;          /* the document's entries, in key order */
    size_t n, cap;
    bytes in;
    entry *outs;          /* what it becomes, in the order produced */
    size_t n_out, cap_out;
    bytes out;
    epoch_buf scratch;
};

int
epoch__rewriter_new(epoch__rewriter **out, crdt_raw *t,
                    const epoch_lens *lens, const char *custom_coll,
                    epoch_custom_fn custom, void *custom_ctx)
{
    epoch__rewriter *w = calloc(1, sizeof *w);

    if (w == NULL)
        return CRDT_ENOMEM;
    w->t = t;
    w->lens = lens;
    w->custom_coll = custom_coll;
    w->custom = custom;
    w->custom_ctx = custom_ctx;
    *out = w;
    return CRDT_OK;
}

static void
drop_entries(epoch__rewriter *w)
{
    w->n = 0;
    w->in.len = 0;
    w->n_out = 0;
    w->out.len = 0;
}

/* Append @p k and @p v to @p b as a new entry of @p *ents; keeps (3). */
static int
add_entry(entry **ents, size_t *n, size_t *cap, bytes *b, const void *k,
          size_t kl, const void *v, size_t vl)
{
    entry *e;

    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 16;
        e = realloc(*ents, c * sizeof *e);
        if (e == NULL)
            return CRDT_ENOMEM;
        *ents = e;
        *cap = c;
    }
    if (kl + vl > b->cap - b->len) {
        size_t c = b->cap ? b->cap : 4096;
        unsigned char *p;
        while (kl + vl > c - b->len)
            c *= 2;
        p = realloc(b->p, c);
        if (p == NULL)
            return CRDT_ENOMEM;
        b->p = p;
        b->cap = c;
    }
    e = &(*ents)[(*n)++];
    e->ko = b->len;
    e->kl = kl;
    memcpy(b->p + b->len, k, kl);
    b->len += kl;
    e->vo = b->len;
    e->vl = vl;
    if (vl > 0)
        memcpy(b->p + b->len, v, vl);
    b->len += vl;
    return CRDT_OK;
}

/* The buffer will not move any more: point the entries into it. */
static void
resolve(entry *ents, size_t n, const bytes *b)
{
    for (size_t i = 0; i < n; i++) {
        ents[i].k = b->p + ents[i].ko;
        ents[i].v = b->p + ents[i].vo;
    }
}

/* Key order as LMDB sorts them; equal keys by production order. */
static int
entry_cmp(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    size_t l = x->kl < y->kl ? x->kl : y->kl;
    int c = memcmp(x->k, y->k, l);

    if (c != 0)
        return c;
    if (x->kl != y->kl)
        return x->kl < y->kl ? -1 : 1;
    /* ko grows with production order: (2) */
    return x->ko < y->ko ? -1 : x->ko > y->ko;
}

static void
sort_entries(entry *e, size_t n)
{
    if (n > 16) {
        qsort(e, n, sizeof *e, entry_cmp);
        return;
    }
    for (size_t i = 1; i < n; i++) { /* few fields: insertion sort */
        entry x = e[i];
        size_t j = i;
        while (j > 0 && entry_cmp(&e[j - 1], &x) > 0) {
            e[j] = e[j - 1];
            j--;
        }
        e[j] = x;
    }
}

/* Write the document's output in key order: keeps (1) and (2). */
static int
write_out(epoch__rewriter *w)
{
    int rc = CRDT_OK;

    resolve(w->outs, w->n_out, &w->out);
    sort_entries(w->outs, w->n_out);
    for (size_t i = 0; i < w->n_out && rc == CRDT_OK; i++) {
        const entry *e = &w->outs[i];
        if (i + 1 < w->n_out && e->kl == e[1].kl &&
            memcmp(e->k, e[1].k, e->kl) == 0)
            continue; /* (2): the later one wins */
        rc = crdt_raw_spare_put(w->t, e->k, e->kl, e->v, e->vl);
    }
    return rc;
}

void
epoch__rewriter_set_txn(epoch__rewriter *w, crdt_raw *t)
{
    if (w != NULL)
        w->t = t;
}

void
epoch__rewriter_free(epoch__rewriter *w)
{
    if (w == NULL)
        return;
    drop_entries(w);
    free(w->ents);
    free(w->in.p);
    free(w->outs);
    free(w->out.p);
    epoch_buf_free(&w->scratch);
    free(w);
}

static int
in_lens(const epoch_lens *l, const char *coll)
{
    const char *c;
    uint32_t from, to;

    for (size_t i = 0; l && i < epoch_lens_section_count(l); i++)
        if (epoch_lens_section(l, i, &c, &from, &to) == CRDT_OK &&
            strcmp(c, coll) == 0)
            return 1;
    return 0;
}

/* Queue one entry, field part replaced: key = prefix field 0 kind rest. */
static int
put_field_entry(epoch__rewriter *w, const char *field, unsigned char kind,
                const unsigned char *rest, size_t rl, const void *v,
                size_t vl)
{
    unsigned char k[CRDT__KEY_MAX + 64];
    size_t fl = strlen(field), kl = w->doc_prefix_len + fl + 2 + rl;

    if (kl > CRDT__KEY_MAX)
        return CRDT_ELIMIT;
    memcpy(k, w->doc_prefix, w->doc_prefix_len);
    memcpy(k + w->doc_prefix_len, field, fl);
    k[w->doc_prefix_len + fl] = 0;
    k[w->doc_prefix_len + fl + 1] = kind;
    if (rl > 0)
        memcpy(k + w->doc_prefix_len + fl + 2, rest, rl);
    return add_entry(&w->outs, &w->n_out, &w->cap_out, &w->out, k, kl, v, vl);
}

/* Does what the document becomes hold @p field (its new name)? A lens
 * default goes only where the field is absent after the lens: renamed
 * fields count under their new names, removed ones no longer count. */
static int
has_out_field(const epoch__rewriter *w, const char *field)
{
    size_t fl = strlen(field), base = w->doc_prefix_len;

    for (size_t i = 0; i < w->n_out; i++) {
        const entry *e = &w->outs[i];
        const unsigned char *k = w->out.p + e->ko; /* not resolved yet */

        if (e->kl > base + fl && memcmp(k + base, field, fl) == 0 &&
            k[base + fl] == 0)
            return 1;
    }
    return 0;
}

/* epoch_lens_map_field(), remembered per field of the collection: the
 * lens is walked once per field name, not once per document. */
static int
map_field(const char **out, epoch__rewriter *w, const char *field, size_t fl)
{
    const char *nf;
    field_map *m;
    int rc;

    for (size_t i = 0; i < w->n_fields; i++) {
        m = &w->fields[i];
        if (memcmp(m->from, field, fl + 1) == 0) {
            if (m->dropped)
                return CRDT_ENOTFOUND;
            *out = m->to ? m->to : field;
            return CRDT_OK;
        }
    }
    rc = epoch_lens_map_field(&nf, w->lens, w->coll, field);
    if (rc < 0 && rc != CRDT_ENOTFOUND)
        return rc;
    if (w->n_fields < FIELD_CACHE) {
        m = &w->fields[w->n_fields++];
        memcpy(m->from, field, fl + 1);
        m->dropped = rc == CRDT_ENOTFOUND;
        m->to = rc == CRDT_OK && nf != field ? nf : NULL;
    }
    if (rc == CRDT_OK)
        *out = nf;
    return rc;
}

static int
rewrite_lens_entry(epoch__rewriter *w, const entry *e)
{
    const unsigned char *f = e->k + w->doc_prefix_len, *fend;
    char field[CRDT_NAME_MAX + 1];
    const char *nf = NULL;
    unsigned char kind;
    size_t fl;
    int rc;

    fend = memchr(f, 0, e->kl - w->doc_prefix_len);
    if (fend == NULL || fend + 1 >= e->k + e->kl)
        return CRDT_ECORRUPT;
    fl = (size_t)(fend - f);
    if (fl == 0 || fl > CRDT_NAME_MAX)
        return CRDT_ECORRUPT;
    memcpy(field, f, fl);
    field[fl] = 0;
    kind = fend[1];
    if ((rc = map_field(&nf, w, field, fl)) < 0)
        return rc == CRDT_ENOTFOUND ? CRDT_OK : rc; /* removed by the lens */
    const unsigned char *rest = fend + 2;
    size_t rl = (size_t)(e->k + e->kl - rest);

    if (kind == 'R' && e->vl > 16 && e->v[16] != 0xc1) {
        crdt_value in, out;
        unsigned char vb[16 + 4096], *big = NULL, *vp = vb;
        size_t cap = sizeof vb;
        int n;

        if (crdt__value_parse(&in, e->v + 16, e->vl - 16) < 0)
            return CRDT_ECORRUPT;
        rc = epoch_lens_map_value(&out, &w->scratch, w->lens, w->coll, field,
                                  &in, NULL);
        if (rc == CRDT_ENOMEM)
            return rc; /* ours, not the value's */
        if (rc < 0)
            out = crdt_value_null(); /* documented: failed → null */
        if ((out.type == CRDT_VSTRING || out.type == CRDT_VBYTES) &&
            out.u.s.len + 32 > cap) {
            cap = out.u.s.len + 32;
            big = malloc(cap);
            if (big == NULL)
                return CRDT_ENOMEM;
            vp = big;
        }
        memcpy(vp, e->v, 16);
        n = crdt__value_bytes(vp + 16, cap - 16, &out);
        rc = n < 0 ? CRDT_ELIMIT
                   : put_field_entry(w, nf, kind, rest, rl, vp,
                                     16 + (size_t)n);
        free(big);
        return rc;
    }
    if (kind == 'S') {
        crdt__mp m = { rest, rest + rl };
        crdt_value in, out;
        unsigned char nk[CRDT__ELEM_MAX + 16];
        int n;

        if (crdt__mp_value(&m, &in) < 0 || m.end - m.p != 16)
            return CRDT_ECORRUPT;
        rc = epoch_lens_map_value(&out, &w->scratch, w->lens, w->coll, field,
                                  &in, NULL);
        if (rc == CRDT_ENOMEM)
            return rc;
        if (rc < 0)
            out = crdt_value_null();
        n = crdt__value_bytes(nk, CRDT__ELEM_MAX, &out);
        if (n < 0)
            return CRDT_ELIMIT;
        memcpy(nk + n, m.p, 16);
        return put_field_entry(w, nf, kind, nk, (size_t)n + 16, e->v, e->vl);
    }
    return put_field_entry(w, nf, kind, rest, rl, e->v, e->vl);
}

/* ---- custom hook: visible fields in, fresh entries out ---- */

static int
to_doc(epoch__rewriter *w, epoch_doc *doc)
{
    const unsigned char *tomb = NULL;
    size_t base = w->doc_prefix_len;
    int rc = CRDT_OK;

    for (size_t i = 0; i < w->n && rc == CRDT_OK; i++) {
        const entry *e = &w->ents[i];
        const unsigned char *fend;
        char field[CRDT_NAME_MAX + 1];
        size_t fl;

        if (e->kl == base) {
            tomb = e->v;
            continue;
        }
        fend = memchr(e->k + base, 0, e->kl - base);
        if (fend == NULL || fend + 1 >= e->k + e->kl)
            return CRDT_ECORRUPT;
        fl = (size_t)(fend - (e->k + base));
        memcpy(field, e->k + base, fl);
        field[fl] = 0;
        switch (fend[1]) {
        case 'R': {
            crdt_value v;
            if (e->vl <= 16 || e->v[16] == 0xc1)
                break;
            if (tomb && memcmp(e->v, tomb, 16) <= 0)
                break;
            if (crdt__value_parse(&v, e->v + 16, e->vl - 16) < 0)
                return CRDT_ECORRUPT;
            rc = epoch_doc_set_register(doc, field, &v);
            break;
        }
        case 'C':
        case 'D': {
            int64_t cur = 0, part;
            if (e->vl != (fend[1] == 'C' ? 24u : 16u))
                return CRDT_ECORRUPT;
            part = (int64_t)crdt__rd64(e->v + 8);
            epoch_doc_get_counter(&cur, doc, field);
            rc = epoch_doc_set_counter(doc, field, fend[1] == 'C'
                                                       ? cur + part
                                                       : cur - part);
            break;
        }
        case 'S': {
            crdt__mp m = { fend + 2, e->k + e->kl };
            crdt_value v;
            if (crdt__mp_value(&m, &v) < 0)
                return CRDT_ECORRUPT;
            if (e->vl == 1 && e->v[0] == 1)
                rc = epoch_doc_set_add(doc, field, &v);
            break;
        }
        case 'T':
        case 'L':
            break; /* a sequence is not in an epoch_doc: carry_seqs() */
        default:
            return CRDT_ECORRUPT;
        }
    }
    return rc;
}

/*
 * A custom hook sees registers, counters and sets; the records of text
 * and list fields ('T', 'L' blocks) go through it unchanged, so the ids
 * that ops written before it name still exist after it.
 */
static int
carry_seqs(epoch__rewriter *w)
{
    size_t base = w->doc_prefix_len;
    int rc = CRDT_OK;

    for (size_t i = 0; i < w->n && rc == CRDT_OK; i++) {
        const entry *e = &w->ents[i];
        const unsigned char *fend;
        char field[CRDT_NAME_MAX + 1];
        size_t fl;

        if (e->kl == base)
            continue;
        fend = memchr(e->k + base, 0, e->kl - base);
        if (fend == NULL || fend + 1 >= e->k + e->kl)
            return CRDT_ECORRUPT;
        if (fend[1] != 'T' && fend[1] != 'L')
            continue;
        fl = (size_t)(fend - (e->k + base));
        if (fl == 0 || fl > CRDT_NAME_MAX)
            return CRDT_ECORRUPT;
        memcpy(field, e->k + base, fl);
        field[fl] = 0;
        rc = put_field_entry(w, field, fend[1], fend + 2,
                             (size_t)(e->k + e->kl - (fend + 2)), e->v,
                             e->vl);
    }
    return rc;
}

static int
from_doc(epoch__rewriter *w, const epoch_doc *doc)
{
    unsigned char zero[16] = { 0 }, vb[16 + 8192];
    size_t n = epoch_doc_field_count(doc);
    int rc = CRDT_OK;

    for (size_t i = 0; i < n && rc == CRDT_OK; i++) {
        const char *name;
        epoch_field_kind kind;
        crdt_value v;
        int64_t c;
        size_t sz;
        int len;

        if ((rc = epoch_doc_field(&name, &kind, doc, i)) < 0)
            return rc;
        switch (kind) {
        case EPOCH_FIELD_REGISTER:
            epoch_doc_get_register(&v, doc, name);
            memset(vb, 0, 16);
            len = crdt__value_bytes(vb + 16, sizeof vb - 16, &v);
            rc = len < 0 ? CRDT_ELIMIT
                         : put_field_entry(w, name, 'R', NULL, 0, vb,
                                           16 + (size_t)len);
            break;
        case EPOCH_FIELD_COUNTER:
            epoch_doc_get_counter(&c, doc, name);
            crdt__be64(vb, 1);
            crdt__be64(vb + 8, (uint64_t)c);
            crdt__be64(vb + 16, 0);
            rc = put_field_entry(w, name, 'C', zero, 8, vb, 24);
            break;
        case EPOCH_FIELD_SET:
            epoch_doc_set_size(&sz, doc, name);
            for (size_t j = 0; j < sz && rc == CRDT_OK; j++) {
                static const unsigned char one = 1;
                epoch_doc_set_elem(&v, doc, name, j);
                len = crdt__value_bytes(vb, CRDT__ELEM_MAX, &v);
                if (len < 0)
                    return CRDT_ELIMIT;
                memset(vb + len, 0, 8);
                crdt__be64(vb + len + 8, j + 1);
                rc = put_field_entry(w, name, 'S', vb, (size_t)len + 16,
                                     &one, 1);
            }
            break;
        }
    }
    return rc;
}

static int
flush_doc(epoch__rewriter *w)
{
    int rc = CRDT_OK;

    if (w->doc_prefix_len == 0 || !w->touched)
        goto done;
    if (w->drops)
        goto done; /* the whole collection goes */
    resolve(w->ents, w->n, &w->in);
    if (w->custom_here) {
        epoch_doc *doc;
        if ((rc = epoch_doc_new(&doc)) < 0)
            goto done;
        rc = to_doc(w, doc);
        if (rc == CRDT_OK)
            rc = w->custom(doc, w->coll, w->doc, w->custom_ctx);
        if (rc == CRDT_OK)
            rc = from_doc(w, doc);
        if (rc == CRDT_OK)
            rc = carry_seqs(w);
        if (rc == CRDT_OK)
            rc = write_out(w);
        epoch_doc_free(doc);
        goto done;
    }
    for (size_t i = 0; i < w->n && rc == CRDT_OK; i++) {
        const entry *e = &w->ents[i];
        if (e->kl == w->doc_prefix_len) /* the doc tombstone */
            rc = add_entry(&w->outs, &w->n_out, &w->cap_out, &w->out, e->k,
                           e->kl, e->v, e->vl);
        else
            rc = rewrite_lens_entry(w, e);
    }
    for (size_t i = 0; rc == CRDT_OK &&
                       i < w->n_defaults; i++) {
        const char *f;
        crdt_value v;
        unsigned char vb[16 + 4096];
        int len;

        if ((rc = epoch_lens_default(&f, &v, w->lens, w->coll, i)) < 0)
            break;
        if (has_out_field(w, f))
            continue;
        memset(vb, 0, 16);
        len = crdt__value_bytes(vb + 16, sizeof vb - 16, &v);
        rc = len < 0 ? CRDT_ELIMIT
                     : put_field_entry(w, f, 'R', NULL, 0, vb,
                                       16 + (size_t)len);
    }
    if (rc == CRDT_OK)
        rc = write_out(w);
done:
    drop_entries(w);
    w->doc_prefix_len = 0;
    return rc;
}

/* A new collection begins: what the lens and the hook do to it. */
static void
set_collection(epoch__rewriter *w)
{
    int custom = w->custom_coll && strcmp(w->custom_coll, w->coll) == 0;

    w->custom_here = custom && w->custom;
    w->touched = in_lens(w->lens, w->coll) || custom;
    w->drops = w->lens && epoch_lens_drops(w->lens, w->coll);
    w->n_defaults = epoch_lens_default_count(w->lens, w->coll);
    w->n_fields = 0;
}

int
epoch__rewriter_put(epoch__rewriter *w, const void *kp, size_t kl,
                    const void *v, size_t vl)
{
    const unsigned char *k = kp, *c0, *d0;
    size_t cl, dl;
    int rc;

    c0 = memchr(k, 0, kl);
    if (c0 == NULL)
        return CRDT_ECORRUPT;
    d0 = memchr(c0 + 1, 0, kl - (size_t)(c0 + 1 - k));
    if (d0 == NULL)
        return CRDT_ECORRUPT;
    cl = (size_t)(c0 - k);
    dl = (size_t)(d0 - (c0 + 1));
    if (cl == 0 || cl > CRDT_NAME_MAX || dl == 0 || dl > CRDT_NAME_MAX)
        return CRDT_ECORRUPT;
    if (w->doc_prefix_len != cl + dl + 2 ||
        memcmp(w->doc_prefix, k, cl + dl + 2) != 0) {
        if ((rc = flush_doc(w)) < 0)
            return rc;
        memcpy(w->doc_prefix, k, cl + dl + 2);
        w->doc_prefix_len = cl + dl + 2;
        if (strlen(w->coll) != cl || memcmp(w->coll, k, cl) != 0) {
            memcpy(w->coll, k, cl);
            w->coll[cl] = 0;
            set_collection(w);
        }
        memcpy(w->doc, c0 + 1, dl);
        w->doc[dl] = 0;
    }
    if (!w->touched) /* untouched collections are copied as they come */
        return crdt_raw_spare_put(w->t, k, kl, v, vl);
    return add_entry(&w->ents, &w->n, &w->cap, &w->in, k, kl, v, vl);
}

int
epoch__rewriter_finish(epoch__rewriter *w)
{
    return flush_doc(w);
}
