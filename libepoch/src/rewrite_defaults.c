/*
 * rewrite_defaults.c: the lens defaults a migration keeps once per
 * collection (state entry 00 'V' coll, docs/storage.md 4.2) instead of
 * once per document.
 *
 * A document of a collection with such an entry shows each of its
 * (field, value) pairs as a register stamped (0, actor 0) when it has
 * no entry of that field (libcrdt's view.c). The rewriter therefore:
 *  - reads a document as if the input's pairs were stored in it where it
 *    has no entry of the field, and runs the lens over that;
 *  - plans, per collection, the pairs of the output: the input's pairs
 *    taken through the lens as a document of their own (so renamed,
 *    converted or removed as the documents' fields are), plus the
 *    section's new defaults (epoch_lens_apply_doc());
 *  - leaves out of a document's output a register stamped (0, actor 0)
 *    that equals its field's planned pair, when the document has no
 *    other entry of that field and keeps some other entry (so it still
 *    exists): what the view then shows is what was written.
 * Whatever the plan, the output reads the same; the plan only decides
 * how much is left out. A collection the lens converts between string
 * and text, or that a custom hook rewrites, gets no pairs: its
 * documents keep every value stored, where those passes see them.
 */
#include <stdlib.h>
#include <string.h>

#include "epoch_internal.h"
#include "lens_internal.h"

typedef struct {
    char coll[CRDT_NAME_MAX + 1];
    size_t cl;
    unsigned char *in, *out; /* DEFAULTS values; NULL: none */
    size_t in_len, out_len;
} vcoll;

struct epoch__vdefs {
    vcoll *c;
    size_t n, cap;
};

static int
name_cmp(const char *a, size_t al, const char *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);

    return c != 0 ? c : al < bl ? -1 : al > bl;
}

static vcoll *
find(const epoch__vdefs *d, const char *coll, size_t cl)
{
    for (size_t i = 0; d != NULL && i < d->n; i++)
        if (d->c[i].cl == cl && memcmp(d->c[i].coll, coll, cl) == 0)
            return &d->c[i];
    return NULL;
}

static int
add(epoch__vdefs *d, const char *coll, size_t cl, vcoll **out)
{
    vcoll *c = find(d, coll, cl);

    if (c == NULL) {
        if (cl > CRDT_NAME_MAX)
            return CRDT_ECORRUPT;
        if (d->n == d->cap) {
            size_t nc = d->cap ? d->cap * 2 : 8;
            vcoll *p = realloc(d->c, nc * sizeof *p);
            if (p == NULL)
                return CRDT_ENOMEM;
            d->c = p;
            d->cap = nc;
        }
        c = &d->c[d->n++];
        memset(c, 0, sizeof *c);
        memcpy(c->coll, coll, cl);
        c->cl = cl;
    }
    *out = c;
    return CRDT_OK;
}

int
epoch__vdefs_new(epoch__vdefs **out)
{
    *out = calloc(1, sizeof **out);
    return *out == NULL ? CRDT_ENOMEM : CRDT_OK;
}

void
epoch__vdefs_free(epoch__vdefs *d)
{
    if (d == NULL)
        return;
    for (size_t i = 0; i < d->n; i++) {
        free(d->c[i].in);
        free(d->c[i].out);
    }
    free(d->c);
    free(d);
}

int
epoch__vdefs_input(epoch__vdefs *d, const crdt_state_entry *e)
{
    vcoll *c;
    int rc;

    if (e->kind != CRDT_ENTRY_DEFAULTS)
        return CRDT_EINVAL;
    if ((rc = add(d, e->coll, e->coll_len, &c)) < 0)
        return rc;
    if (c->in != NULL)
        return CRDT_ECORRUPT; /* one key, one entry */
    if ((c->in = malloc(e->raw_len)) == NULL)
        return CRDT_ENOMEM;
    memcpy(c->in, e->raw, e->raw_len);
    c->in_len = e->raw_len;
    return CRDT_OK;
}

/* Does section @p coll of @p l convert a field between string and text? */
static int
retypes(const epoch_lens *l, const char *coll)
{
    const char *c, *f;
    int dir;

    for (size_t i = 0; epoch__lens_retype(l, i, &c, &f, &dir) == CRDT_OK;
         i++)
        if (f != NULL && strcmp(c, coll) == 0)
            return 1;
    return 0;
}

/* The input pairs of @p c through the lens, with the section's new
 * defaults: the registers of that one document. */
static int
plan_lens(vcoll *c, const epoch_lens *l)
{
    const unsigned char *p = c->in, *end = c->in + c->in_len;
    unsigned char *buf = NULL;
    size_t n, len = 0, cap = 0;
    epoch_doc *doc;
    const char **names = NULL;
    int rc;

    if ((rc = epoch_doc_new(&doc)) < 0)
        return rc;
    while (p != NULL && p < end) {
        char f[CRDT_NAME_MAX + 1];
        const char *fp;
        size_t fl;
        crdt_value v;

        if ((rc = crdt_state_defaults_next(&p, end, &fp, &fl, &v)) <= 0)
            break;
        memcpy(f, fp, fl);
        f[fl] = 0;
        if ((rc = epoch_doc_set_register(doc, f, &v)) < 0)
            break;
    }
    if (rc < 0)
        goto done;
    if ((rc = epoch_lens_apply_doc(doc, l, c->coll)) < 0) {
        rc = rc == CRDT_ENOTFOUND ? CRDT_OK : rc; /* dropped: none */
        goto done;
    }
    n = epoch_doc_field_count(doc);
    if (n == 0)
        goto done;
    if ((names = malloc(n * sizeof *names)) == NULL) {
        rc = CRDT_ENOMEM;
        goto done;
    }
    {
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            epoch_field_kind kind;
            if ((rc = epoch_doc_field(&names[k], &kind, doc, i)) < 0)
                goto done;
            if (kind == EPOCH_FIELD_REGISTER)
                k++;
        }
        n = k;
    }
    /* field key order: a name before the longer names it starts */
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && name_cmp(names[j - 1],
                                             strlen(names[j - 1]), names[j],
                                             strlen(names[j])) > 0; j--) {
            const char *x = names[j];
            names[j] = names[j - 1];
            names[j - 1] = x;
        }
    for (size_t i = 0; i < n; i++) {
        crdt_value v;

        if ((rc = epoch_doc_get_register(&v, doc, names[i])) < 0)
            goto done;
        for (;;) {
            rc = crdt_state_defaults_put(buf, cap, &len, names[i],
                                         strlen(names[i]), &v);
            if (rc != CRDT_ELIMIT || cap >= CRDT_STATE_DEFAULTS_MAX)
                break;
            cap = cap ? cap * 2 : 256;
            if (cap > CRDT_STATE_DEFAULTS_MAX)
                cap = CRDT_STATE_DEFAULTS_MAX;
            unsigned char *nb = realloc(buf, cap);
            if (nb == NULL) {
                rc = CRDT_ENOMEM;
                goto done;
            }
            buf = nb;
        }
        if (rc == CRDT_ELIMIT) { /* too many to keep once: keep none */
            len = 0;
            rc = CRDT_OK;
            break;
        }
        if (rc < 0)
            goto done;
    }
    if (len > 0) {
        c->out = buf;
        c->out_len = len;
        buf = NULL;
    }
done:
    free(names);
    free(buf);
    epoch_doc_free(doc);
    return rc;
}

int
epoch__vdefs_plan(epoch__vdefs *d, const epoch_lens *l,
                  const char *custom_coll, int custom)
{
    const char *c;
    uint32_t from, to;
    vcoll *vc;
    int rc;

    /* the sections that add fields get pairs even with no input ones */
    for (size_t i = 0; l != NULL && i < epoch_lens_section_count(l); i++)
        if (epoch_lens_section(l, i, &c, &from, &to) == CRDT_OK &&
            epoch_lens_default_count(l, c) > 0 &&
            (rc = add(d, c, strlen(c), &vc)) < 0)
            return rc;
    for (size_t i = 0; i < d->n; i++) {
        vcoll *v = &d->c[i];
        int in_lens = l != NULL && epoch__lens_find(l, v->coll) != NULL;

        if (custom && custom_coll != NULL && strcmp(custom_coll, v->coll) == 0)
            continue; /* the hook's output is stored whole */
        if (!in_lens) { /* untouched: kept as it is */
            if (v->in != NULL) {
                if ((v->out = malloc(v->in_len)) == NULL)
                    return CRDT_ENOMEM;
                memcpy(v->out, v->in, v->in_len);
                v->out_len = v->in_len;
            }
            continue;
        }
        if (epoch_lens_drops(l, v->coll) || retypes(l, v->coll))
            continue;
        if ((rc = plan_lens(v, l)) < 0)
            return rc;
    }
    return CRDT_OK;
}

static int
coll_order(const void *a, const void *b)
{
    const vcoll *x = a, *y = b;

    return name_cmp(x->coll, x->cl, y->coll, y->cl);
}

int
epoch__vdefs_emit(epoch__vdefs *d, epoch__sink_fn fn, void *ctx)
{
    if (d->n > 1) /* key order */
        qsort(d->c, d->n, sizeof *d->c, coll_order);
    for (size_t i = 0; i < d->n; i++) {
        vcoll *v = &d->c[i];
        unsigned char k[CRDT_STATE_KEY_MAX], *val;
        size_t kl, vl;
        crdt_state_entry e;
        int rc;

        if (v->out == NULL)
            continue;
        if ((val = malloc(v->out_len)) == NULL)
            return CRDT_ENOMEM;
        memset(&e, 0, sizeof e);
        e.kind = CRDT_ENTRY_DEFAULTS;
        e.coll = v->coll;
        e.coll_len = v->cl;
        e.raw = v->out;
        e.raw_len = v->out_len;
        rc = crdt_state_entry_encode(k, &kl, val, v->out_len, &vl, &e);
        if (rc == CRDT_OK)
            rc = fn(ctx, k, kl, val, vl);
        free(val);
        if (rc < 0)
            return rc == CRDT_EINVAL ? CRDT_ECORRUPT : rc;
    }
    return CRDT_OK;
}

const unsigned char *
epoch__vdefs_get(const epoch__vdefs *d, const char *coll, size_t cl, int out,
                 size_t *len)
{
    const vcoll *v = find(d, coll, cl);

    *len = 0;
    if (v == NULL)
        return NULL;
    *len = out ? v->out_len : v->in_len;
    return out ? v->out : v->in;
}
