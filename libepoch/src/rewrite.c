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
 *  (4) A lens default's entry is encoded by libcrdt once per collection;
 *      for each document its key is the document's key followed by the
 *      bytes after the doc key of that first encoding (checked to start
 *      with the doc key it was encoded with), its value the same bytes.
 *      Where that would exceed CRDT_STATE_KEY_MAX, or the first encoding
 *      failed, the entry is encoded for the document as before, so the
 *      same error comes back.
 *
 * Entries are read and written through crdt_state_entry_decode() and
 * crdt_state_entry_encode() (crdt/raw.h): the bytes are libcrdt's.
 *
 * Per entry:
 *   doc tombstone        kept
 *   register 'R'         field renamed/removed; value converted (a failed
 *                        conversion without a default becomes null)
 *   counter 'C' / 'D'    field renamed/removed
 *   set tag 'S'          field renamed/removed; element converted
 *   text/list 'T' / 'L'  field renamed/removed; records kept as they are
 *                        (also through a custom hook, which does not see
 *                        them)
 *   waiting copy         (no collection, before every document) kept as
 *                        it is
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

/* A lens default's entry as libcrdt encodes it: the same bytes for every
 * document of the collection but for the doc key in front (a field key
 * is its document's key, then the field: docs/storage.md 4.1). Encoded
 * once per collection, on its first document: (4). */
typedef struct {
    size_t to, tl; /* the key after the doc key: offset, length in defs */
    size_t vo, vl; /* the value: offset, length in defs */
    int ok;        /* 0: encode it per document (an error, a long key) */
} default_bytes;

/* A planned lens default of the collection: its field and the value
 * of its register entry, in vbytes. */
typedef struct {
    size_t fo, fl, vo, vl;
} vpair;

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
    int in_doc;            /* 0: no document in hand */
    char coll[CRDT_NAME_MAX + 1], doc[CRDT_NAME_MAX + 1];
    size_t coll_len, doc_len;
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
    bytes val;            /* one encoded value, reused */
    epoch_buf scratch;
    default_bytes *dflt;  /* the collection's lens defaults: (4) */
    size_t dflt_cap;
    int dflt_ready;       /* encoded for the current collection */
    bytes defs;
    int wrote_seq;        /* a text or list entry went to the spare */
    epoch__sink_fn sink;  /* NULL: crdt_raw_spare_put() on t */
    void *sink_ctx;
    epoch__vdefs *vd;     /* lens defaults kept once: rewrite_defaults.c */
    int vd_done;          /* the output's DEFAULTS entries are written */
    const unsigned char *vin; /* the collection's input pairs, or NULL */
    size_t vin_len;
    vpair *vout;          /* its planned pairs, as register values */
    size_t n_vout, cap_vout;
    bytes vbytes;         /* their names and values */
    unsigned char *elide; /* per output entry: 1 dropped, 2 left out */
    size_t cap_elide;
    int born_after;       /* the document in hand shows no kept defaults:
                             it has the mark NO_DEFAULTS */
};

/* One output entry, in key order, to the spare slot or the sink. */
static int
emit(epoch__rewriter *w, const void *k, size_t kl, const void *v, size_t vl)
{
    if (w->sink != NULL)
        return w->sink(w->sink_ctx, k, kl, v, vl);
    return crdt_raw_spare_put(w->t, k, kl, v, vl);
}

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
    if (epoch__vdefs_new(&w->vd) < 0) {
        free(w);
        return CRDT_ENOMEM;
    }
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

/* The planned default of field @p f (@p fl bytes), or NULL. */
static const vpair *
vout_find(const epoch__rewriter *w, const unsigned char *f, size_t fl)
{
    for (size_t i = 0; i < w->n_vout; i++)
        if (w->vout[i].fl == fl &&
            memcmp(w->vbytes.p + w->vout[i].fo, f, fl) == 0)
            return &w->vout[i];
    return NULL;
}

/* Does output entry @p e hold field prefix @p p (@p pl bytes: the doc
 * key, the field, its NUL)? */
static int
same_field(const entry *e, const unsigned char *p, size_t pl)
{
    return e->kl > pl && memcmp(e->k, p, pl) == 0;
}

/* May sorted output entry @p i be left out: a register stamped (0, actor
 * 0) equal to its field's planned default, the only key of that field? */
static int
leaves_out(const epoch__rewriter *w, size_t i)
{
    static const unsigned char zero[16];
    const entry *e = &w->outs[i];
    size_t dk = w->coll_len + w->doc_len + 2, pl;
    const unsigned char *z;
    const vpair *vp;

    if (e->kl <= dk + 2 || e->vl < 16 || memcmp(e->v, zero, 16) != 0)
        return 0;
    z = memchr(e->k + dk, 0, e->kl - dk);
    if (z == NULL || z + 2 != e->k + e->kl || z[1] != 'R')
        return 0;
    vp = vout_find(w, e->k + dk, (size_t)(z - (e->k + dk)));
    if (vp == NULL || vp->vl != e->vl ||
        memcmp(w->vbytes.p + vp->vo, e->v, e->vl) != 0)
        return 0;
    pl = (size_t)(z + 1 - e->k);
    /* sorted: any other key of the field is next to this one's */
    for (size_t j = i; j-- > 0;) {
        if (w->outs[j].kl == e->kl && memcmp(w->outs[j].k, e->k, e->kl) == 0)
            continue;
        if (same_field(&w->outs[j], e->k, pl))
            return 0;
        break;
    }
    for (size_t j = i + 1; j < w->n_out; j++) {
        if (w->outs[j].kl == e->kl && memcmp(w->outs[j].k, e->k, e->kl) == 0)
            continue;
        if (same_field(&w->outs[j], e->k, pl))
            return 0;
        break;
    }
    return 1;
}

/* Write the document's output in key order: keeps (1) and (2). With
 * planned defaults, what equals them is left out while the document
 * keeps some other entry (rewrite_defaults.c). */
static int
write_out(epoch__rewriter *w)
{
    int rc = CRDT_OK, kept = 0, any = 0;

    resolve(w->outs, w->n_out, &w->out);
    sort_entries(w->outs, w->n_out);
    if (w->n_vout > 0 && w->n_out > 0 && !w->born_after) {
        if (w->n_out > w->cap_elide) {
            unsigned char *p = realloc(w->elide, w->n_out);
            if (p == NULL)
                return CRDT_ENOMEM;
            w->elide = p;
            w->cap_elide = w->n_out;
        }
        for (size_t i = 0; i < w->n_out; i++) {
            const entry *e = &w->outs[i];
            if (i + 1 < w->n_out && e->kl == e[1].kl &&
                memcmp(e->k, e[1].k, e->kl) == 0)
                w->elide[i] = 1; /* (2): the later one wins */
            else if (leaves_out(w, i))
                w->elide[i] = any = 2;
            else {
                w->elide[i] = 0;
                kept = 1;
            }
        }
        if (!kept && any) /* the document would vanish: keep them */
            for (size_t i = 0; i < w->n_out; i++)
                if (w->elide[i] == 2)
                    w->elide[i] = 0;
        for (size_t i = 0; i < w->n_out && rc == CRDT_OK; i++)
            if (w->elide[i] == 0)
                rc = emit(w, w->outs[i].k, w->outs[i].kl, w->outs[i].v,
                          w->outs[i].vl);
        return rc;
    }
    for (size_t i = 0; i < w->n_out && rc == CRDT_OK; i++) {
        const entry *e = &w->outs[i];
        if (i + 1 < w->n_out && e->kl == e[1].kl &&
            memcmp(e->k, e[1].k, e->kl) == 0)
            continue; /* (2): the later one wins */
        rc = emit(w, e->k, e->kl, e->v, e->vl);
    }
    return rc;
}

int
epoch__rewriter_wrote_seq(const epoch__rewriter *w)
{
    return w == NULL || w->wrote_seq;
}

void
epoch__rewriter_set_txn(epoch__rewriter *w, crdt_raw *t)
{
    if (w != NULL)
        w->t = t;
}

void
epoch__rewriter_set_sink(epoch__rewriter *w, epoch__sink_fn fn, void *ctx)
{
    if (w != NULL) {
        w->sink = fn;
        w->sink_ctx = ctx;
    }
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
    free(w->val.p);
    free(w->dflt);
    free(w->defs.p);
    free(w->vout);
    free(w->vbytes.p);
    free(w->elide);
    epoch__vdefs_free(w->vd);
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

/* Encode entry @p e of the current document: key into @p k, value into
 * w->val (@p vl bytes). */
static int
encode_entry(epoch__rewriter *w, crdt_state_entry *e, unsigned char *k,
             size_t *kl, size_t *vl)
{
    int rc;

    e->coll = w->coll;
    e->coll_len = w->coll_len;
    e->doc = w->doc;
    e->doc_len = w->doc_len;
    if (e->field != NULL)
        e->field_len = strlen(e->field);
    rc = crdt_state_entry_encode(k, kl, w->val.p, w->val.cap, vl, e);
    if (rc == CRDT_ELIMIT && *vl > w->val.cap) { /* grow, once */
        unsigned char *p = realloc(w->val.p, *vl);
        if (p == NULL)
            return CRDT_ENOMEM;
        w->val.p = p;
        w->val.cap = *vl;
        rc = crdt_state_entry_encode(k, kl, w->val.p, w->val.cap, vl, e);
    }
    if (rc < 0)
        return rc == CRDT_EINVAL ? CRDT_ECORRUPT : rc;
    return CRDT_OK;
}

/* Queue entry @p e of the current document, encoded by libcrdt. */
static int
put_entry(epoch__rewriter *w, crdt_state_entry *e)
{
    unsigned char k[CRDT_STATE_KEY_MAX];
    size_t kl, vl;
    int rc;

    if ((rc = encode_entry(w, e, k, &kl, &vl)) < 0)
        return rc;
    if (e->kind == CRDT_ENTRY_TEXT || e->kind == CRDT_ENTRY_LIST)
        w->wrote_seq = 1;
    return add_entry(&w->outs, &w->n_out, &w->cap_out, &w->out, k, kl,
                     w->val.p, vl);
}

/* A register stamped (0, actor 0): every real write wins over it. */
static int
put_default(epoch__rewriter *w, const char *field, const crdt_value *v)
{
    crdt_state_entry e;

    memset(&e, 0, sizeof e);
    e.kind = CRDT_ENTRY_REGISTER;
    e.field = field;
    e.value = *v;
    return put_entry(w, &e);
}

/* Lens default @p i of the collection (field @p field, value @p v) for
 * the current document: (4). */
static int cache_defaults(epoch__rewriter *w);

static int
put_lens_default(epoch__rewriter *w, size_t i, const char *field,
                 const crdt_value *v)
{
    unsigned char k[CRDT_STATE_KEY_MAX];
    size_t dk = w->coll_len + w->doc_len + 2;
    const default_bytes *d;
    int rc;

    if (!w->dflt_ready && (rc = cache_defaults(w)) < 0)
        return rc;
    d = &w->dflt[i];
    if (!d->ok || dk + d->tl > sizeof k)
        return put_default(w, field, v);
    memcpy(k, w->coll, w->coll_len + 1);
    memcpy(k + w->coll_len + 1, w->doc, w->doc_len + 1);
    memcpy(k + dk, w->defs.p + d->to, d->tl);
    return add_entry(&w->outs, &w->n_out, &w->cap_out, &w->out, k,
                     dk + d->tl, w->defs.p + d->vo, d->vl);
}

/* Does one of entries @p ents (@p n, their bytes in @p b, not resolved
 * yet: offsets) hold @p field (@p fl bytes)? Every key starts with the
 * document's key (coll 0 doc 0, (1)); a field key goes on with the
 * field's name and a 0. */
static int
has_field(const epoch__rewriter *w, const entry *ents, size_t n,
          const bytes *b, const char *field, size_t fl)
{
    size_t dk = w->coll_len + w->doc_len + 2;

    for (size_t i = 0; i < n; i++) {
        const entry *e = &ents[i];
        const unsigned char *k = b->p + e->ko;

        if (e->kl > dk + fl && memcmp(k + dk, field, fl) == 0 &&
            k[dk + fl] == 0)
            return 1;
    }
    return 0;
}

/* Does what the document becomes hold @p field (its new name)? A lens
 * default goes only where the field is absent after the lens: renamed
 * fields count under their new names, removed ones no longer count. */
static int
has_out_field(const epoch__rewriter *w, const char *field)
{
    return has_field(w, w->outs, w->n_out, &w->out, field, strlen(field));
}

/* Was the document in hand born after its collection's kept defaults
 * (its mark, coll 0 doc 0 0 'N', right after its doc key)? It shows
 * none of them, so none are read into it, and what it gets is stored. */
static int
born_after(const epoch__rewriter *w)
{
    size_t dk = w->coll_len + w->doc_len + 2;

    for (size_t i = 0; i < w->n && i < 2; i++) {
        const unsigned char *k = w->in.p + w->ents[i].ko;
        if (w->ents[i].kl == dk + 2 && k[dk] == 0 && k[dk + 1] == 'N')
            return 1;
    }
    return 0;
}

/* The next pair of a DEFAULTS value as the register stamped (0, actor 0)
 * a document would store: its field's name copied into @p f (@p fl
 * bytes). 1, 0 at the end, or CRDT_ECORRUPT. */
static int
next_default(const unsigned char **p, const unsigned char *end,
             char f[CRDT_NAME_MAX + 1], size_t *fl, crdt_state_entry *e)
{
    const char *fp;
    crdt_value v;
    int rc = crdt_state_defaults_next(p, end, &fp, fl, &v);

    if (rc <= 0)
        return rc;
    memcpy(f, fp, *fl);
    f[*fl] = 0;
    memset(e, 0, sizeof *e);
    e->kind = CRDT_ENTRY_REGISTER;
    e->field = f;
    e->value = v;
    return 1;
}

/* The collection's input defaults, read as stored in the document where
 * it has no entry of their field (rewrite_defaults.c). */
static int
materialize(epoch__rewriter *w)
{
    const unsigned char *p = w->vin, *end = w->vin + w->vin_len;
    size_t n_in = w->n;
    int rc;

    for (;;) {
        unsigned char k[CRDT_STATE_KEY_MAX];
        char f[CRDT_NAME_MAX + 1];
        size_t fl, kl, vl;
        crdt_state_entry e;

        if ((rc = next_default(&p, end, f, &fl, &e)) <= 0)
            return rc;
        if (has_field(w, w->ents, n_in, &w->in, f, fl))
            continue;
        if ((rc = encode_entry(w, &e, k, &kl, &vl)) < 0 ||
            (rc = add_entry(&w->ents, &w->n, &w->cap, &w->in, k, kl,
                            w->val.p, vl)) < 0)
            return rc;
    }
}

/* Append @p n bytes to @p b; their offset in *off. */
static int
bytes_add(bytes *b, const void *p, size_t n, size_t *off)
{
    if (n > b->cap - b->len) {
        size_t c = b->cap ? b->cap : 256;
        unsigned char *q;
        while (n > c - b->len)
            c *= 2;
        if ((q = realloc(b->p, c)) == NULL)
            return CRDT_ENOMEM;
        b->p = q;
        b->cap = c;
    }
    *off = b->len;
    if (n > 0)
        memcpy(b->p + b->len, p, n);
    b->len += n;
    return CRDT_OK;
}

/* (4): the current collection's lens defaults, encoded with the current
 * document. An entry that does not encode is left to put_default(). */
static int
cache_defaults(epoch__rewriter *w)
{
    size_t dk = w->coll_len + w->doc_len + 2;
    int rc;

    if (w->n_defaults > w->dflt_cap) {
        default_bytes *d = realloc(w->dflt, w->n_defaults * sizeof *d);
        if (d == NULL)
            return CRDT_ENOMEM;
        w->dflt = d;
        w->dflt_cap = w->n_defaults;
    }
    w->defs.len = 0;
    for (size_t i = 0; i < w->n_defaults; i++) {
        default_bytes *d = &w->dflt[i];
        unsigned char k[CRDT_STATE_KEY_MAX];
        crdt_state_entry e;
        size_t kl, vl;

        memset(d, 0, sizeof *d);
        memset(&e, 0, sizeof e);
        e.kind = CRDT_ENTRY_REGISTER;
        if ((rc = epoch_lens_default(&e.field, &e.value, w->lens, w->coll,
                                     i)) < 0)
            return rc;
        rc = encode_entry(w, &e, k, &kl, &vl);
        if (rc == CRDT_ENOMEM)
            return rc;
        if (rc < 0 || kl <= dk || memcmp(k, w->coll, w->coll_len + 1) != 0 ||
            memcmp(k + w->coll_len + 1, w->doc, w->doc_len + 1) != 0)
            continue; /* not cacheable: per document, as before */
        if ((rc = bytes_add(&w->defs, k + dk, kl - dk, &d->to)) < 0 ||
            (rc = bytes_add(&w->defs, w->val.p, vl, &d->vo)) < 0)
            return rc;
        d->tl = kl - dk;
        d->vl = vl;
        d->ok = 1;
    }
    w->dflt_ready = 1;
    return CRDT_OK;
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
rewrite_lens_entry(epoch__rewriter *w, const entry *in)
{
    char field[CRDT_NAME_MAX + 1];
    const char *nf = NULL;
    crdt_state_entry e;
    crdt_value out;
    int rc;

    if ((rc = crdt_state_entry_decode(&e, in->k, in->kl, in->v, in->vl)) < 0)
        return rc;
    if (e.kind == CRDT_ENTRY_DOC_TOMBSTONE ||
        e.kind == CRDT_ENTRY_NO_DEFAULTS) /* kept as they are */
        return add_entry(&w->outs, &w->n_out, &w->cap_out, &w->out, in->k,
                         in->kl, in->v, in->vl);
    memcpy(field, e.field, e.field_len);
    field[e.field_len] = 0;
    if ((rc = map_field(&nf, w, field, e.field_len)) < 0)
        return rc == CRDT_ENOTFOUND ? CRDT_OK : rc; /* removed by the lens */
    e.field = nf;
    if ((e.kind == CRDT_ENTRY_REGISTER && !e.tombstone) ||
        e.kind == CRDT_ENTRY_SET_TAG) {
        rc = epoch_lens_map_value(&out, &w->scratch, w->lens, w->coll, field,
                                  &e.value, NULL);
        if (rc == CRDT_ENOMEM)
            return rc; /* ours, not the value's */
        /* documented: a failed conversion becomes null */
        e.value = rc < 0 ? crdt_value_null() : out;
    }
    return put_entry(w, &e);
}

/* ---- custom hook: visible fields in, fresh entries out ---- */

/* Does stamp (h, a) come after the document tombstone @p t? */
static int
after(uint64_t h, const crdt_actor *a, const crdt_state_entry *t)
{
    if (h != t->hlc)
        return h > t->hlc;
    return memcmp(a->b, t->actor.b, sizeof a->b) > 0;
}

static int
to_doc(epoch__rewriter *w, epoch_doc *doc)
{
    crdt_state_entry tomb;
    int have_tomb = 0, rc = CRDT_OK;

    for (size_t i = 0; i < w->n && rc == CRDT_OK; i++) {
        const entry *in = &w->ents[i];
        char field[CRDT_NAME_MAX + 1];
        crdt_state_entry e;
        int64_t cur = 0;

        if ((rc = crdt_state_entry_decode(&e, in->k, in->kl, in->v,
                                          in->vl)) < 0)
            return rc;
        if (e.kind == CRDT_ENTRY_DOC_TOMBSTONE) {
            tomb = e;
            have_tomb = 1;
            continue;
        }
        if (e.kind == CRDT_ENTRY_NO_DEFAULTS)
            continue; /* the hook's output is stored whole */
        memcpy(field, e.field, e.field_len);
        field[e.field_len] = 0;
        switch (e.kind) {
        case CRDT_ENTRY_REGISTER:
            if (e.tombstone || (have_tomb && !after(e.hlc, &e.actor, &tomb)))
                break;
            rc = epoch_doc_set_register(doc, field, &e.value);
            break;
        case CRDT_ENTRY_COUNTER:
        case CRDT_ENTRY_COUNTER_REMOVED:
            epoch_doc_get_counter(&cur, doc, field);
            rc = epoch_doc_set_counter(doc, field,
                                       e.kind == CRDT_ENTRY_COUNTER
                                           ? cur + (int64_t)e.sum
                                           : cur - (int64_t)e.sum);
            break;
        case CRDT_ENTRY_SET_TAG:
            if (e.live)
                rc = epoch_doc_set_add(doc, field, &e.value);
            break;
        default:
            break; /* a sequence is not in an epoch_doc: carry_seqs() */
        }
    }
    return rc;
}

/*
 * A custom hook sees registers, counters and sets; the records of text
 * and list fields go through it unchanged, so the ids that ops written
 * before it name still exist after it.
 */
static int
carry_seqs(epoch__rewriter *w)
{
    int rc = CRDT_OK;

    for (size_t i = 0; i < w->n && rc == CRDT_OK; i++) {
        const entry *in = &w->ents[i];
        crdt_state_entry e;

        if ((rc = crdt_state_key_decode(&e, in->k, in->kl)) < 0)
            return rc;
        if (e.kind == CRDT_ENTRY_TEXT || e.kind == CRDT_ENTRY_LIST) {
            w->wrote_seq = 1;
            rc = add_entry(&w->outs, &w->n_out, &w->cap_out, &w->out, in->k,
                           in->kl, in->v, in->vl);
        }
    }
    return rc;
}

/* What the hook left, as fresh entries stamped (0, actor 0): a counter
 * is one part of actor 0 (count 1), a set one tag of actor 0 per element
 * (seqs 1, 2, ...). */
static int
from_doc(epoch__rewriter *w, const epoch_doc *doc)
{
    size_t n = epoch_doc_field_count(doc);
    int rc = CRDT_OK;

    for (size_t i = 0; i < n && rc == CRDT_OK; i++) {
        const char *name;
        epoch_field_kind kind;
        crdt_state_entry e;
        crdt_value v;
        int64_t c;
        size_t sz;

        if ((rc = epoch_doc_field(&name, &kind, doc, i)) < 0)
            return rc;
        memset(&e, 0, sizeof e);
        e.field = name;
        switch (kind) {
        case EPOCH_FIELD_REGISTER:
            epoch_doc_get_register(&v, doc, name);
            rc = put_default(w, name, &v);
            break;
        case EPOCH_FIELD_COUNTER:
            epoch_doc_get_counter(&c, doc, name);
            e.kind = CRDT_ENTRY_COUNTER;
            e.count = 1;
            e.sum = (uint64_t)c;
            rc = put_entry(w, &e);
            break;
        case EPOCH_FIELD_SET:
            epoch_doc_set_size(&sz, doc, name);
            e.kind = CRDT_ENTRY_SET_TAG;
            e.live = 1;
            for (size_t j = 0; j < sz && rc == CRDT_OK; j++) {
                epoch_doc_set_elem(&e.value, doc, name, j);
                e.seq = j + 1;
                rc = put_entry(w, &e);
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

    if (!w->in_doc || !w->touched)
        goto done;
    if (w->drops)
        goto done; /* the whole collection goes */
    w->born_after = born_after(w);
    if (w->vin != NULL && !w->born_after && (rc = materialize(w)) < 0)
        goto done;
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
    for (size_t i = 0; i < w->n && rc == CRDT_OK; i++)
        rc = rewrite_lens_entry(w, &w->ents[i]);
    for (size_t i = 0; rc == CRDT_OK &&
                       i < w->n_defaults; i++) {
        const char *f;
        crdt_value v;

        if ((rc = epoch_lens_default(&f, &v, w->lens, w->coll, i)) < 0)
            break;
        if (!has_out_field(w, f))
            rc = put_lens_default(w, i, f, &v);
    }
    if (rc == CRDT_OK)
        rc = write_out(w);
done:
    drop_entries(w);
    w->in_doc = 0;
    return rc;
}

/* The collection's planned defaults as the register values a document
 * would hold: what write_out() leaves out. */
static int
plan_collection(epoch__rewriter *w)
{
    const unsigned char *vo, *p, *end;
    size_t len;
    int rc;

    w->n_vout = 0;
    w->vbytes.len = 0;
    w->vin = epoch__vdefs_get(w->vd, w->coll, w->coll_len, 0, &w->vin_len);
    if ((vo = epoch__vdefs_get(w->vd, w->coll, w->coll_len, 1, &len)) ==
        NULL)
        return CRDT_OK;
    p = vo;
    end = vo + len;
    for (;;) {
        unsigned char k[CRDT_STATE_KEY_MAX];
        char f[CRDT_NAME_MAX + 1];
        size_t fl, kl, vl;
        crdt_state_entry e;
        vpair *vp;

        if ((rc = next_default(&p, end, f, &fl, &e)) <= 0)
            return rc;
        if (w->n_vout == w->cap_vout) {
            size_t c = w->cap_vout ? w->cap_vout * 2 : 8;
            vpair *np = realloc(w->vout, c * sizeof *np);
            if (np == NULL)
                return CRDT_ENOMEM;
            w->vout = np;
            w->cap_vout = c;
        }
        vp = &w->vout[w->n_vout];
        /* encoded with some document: the value does not depend on it */
        e.coll = w->coll;
        e.coll_len = w->coll_len;
        e.doc = "d";
        e.doc_len = 1;
        e.field_len = fl;
        rc = crdt_state_entry_encode(k, &kl, w->val.p, w->val.cap, &vl, &e);
        if (rc == CRDT_ELIMIT && vl > w->val.cap) {
            unsigned char *np = realloc(w->val.p, vl);
            if (np == NULL)
                return CRDT_ENOMEM;
            w->val.p = np;
            w->val.cap = vl;
            rc = crdt_state_entry_encode(k, &kl, w->val.p, w->val.cap, &vl,
                                         &e);
        }
        if (rc < 0)
            continue; /* not left out: stored as ever */
        if ((rc = bytes_add(&w->vbytes, f, fl, &vp->fo)) < 0 ||
            (rc = bytes_add(&w->vbytes, w->val.p, vl, &vp->vo)) < 0)
            return rc;
        vp->fl = fl;
        vp->vl = vl;
        w->n_vout++;
    }
}

/* A new collection begins: what the lens and the hook do to it. */
static int
set_collection(epoch__rewriter *w)
{
    int custom = w->custom_coll && strcmp(w->custom_coll, w->coll) == 0;

    w->custom_here = custom && w->custom;
    w->touched = in_lens(w->lens, w->coll) || custom;
    w->drops = w->lens && epoch_lens_drops(w->lens, w->coll);
    w->n_defaults = epoch_lens_default_count(w->lens, w->coll);
    w->dflt_ready = 0;
    w->n_fields = 0;
    return plan_collection(w);
}

static int
emit_cb(void *ctx, const void *k, size_t kl, const void *v, size_t vl)
{
    return emit(ctx, k, kl, v, vl);
}

/* Before the first entry of no DEFAULTS kind: plan and write the
 * output's DEFAULTS entries, which come before every other key. */
static int
defaults_done(epoch__rewriter *w)
{
    int rc;

    if (w->vd_done)
        return CRDT_OK;
    w->vd_done = 1;
    if ((rc = epoch__vdefs_plan(w->vd, w->lens, w->custom_coll,
                                w->custom != NULL)) < 0)
        return rc;
    return epoch__vdefs_emit(w->vd, emit_cb, w);
}

int
epoch__rewriter_put(epoch__rewriter *w, const void *k, size_t kl,
                    const void *v, size_t vl)
{
    crdt_state_entry e;
    size_t dk = w->coll_len + w->doc_len + 2;
    int rc;

    /* another entry of the document in hand (its key starts with the
     * doc key): decoded, and so checked, when the document is rewritten */
    if (w->in_doc && w->touched && !w->drops && kl > dk &&
        memcmp(k, w->coll, w->coll_len + 1) == 0 &&
        memcmp((const char *)k + w->coll_len + 1, w->doc, w->doc_len + 1) ==
            0)
        return add_entry(&w->ents, &w->n, &w->cap, &w->in, k, kl, v, vl);
    if ((rc = crdt_state_key_decode(&e, k, kl)) < 0)
        return rc;
    if (e.kind == CRDT_ENTRY_DEFAULTS) {
        if (w->vd_done) /* not in key order */
            return CRDT_ECORRUPT;
        if ((rc = crdt_state_entry_decode(&e, k, kl, v, vl)) < 0)
            return rc;
        return epoch__vdefs_input(w->vd, &e);
    }
    if ((rc = defaults_done(w)) < 0)
        return rc;
    if (e.kind == CRDT_ENTRY_COPY_WAITING) /* of no document */
        return (rc = flush_doc(w)) < 0 ? rc : emit(w, k, kl, v, vl);
    if (!w->in_doc || e.coll_len != w->coll_len ||
        memcmp(e.coll, w->coll, e.coll_len) != 0 ||
        e.doc_len != w->doc_len || memcmp(e.doc, w->doc, e.doc_len) != 0) {
        if ((rc = flush_doc(w)) < 0)
            return rc;
        w->in_doc = 1;
        if (e.coll_len != w->coll_len ||
            memcmp(w->coll, e.coll, e.coll_len) != 0) {
            memcpy(w->coll, e.coll, e.coll_len);
            w->coll[e.coll_len] = 0;
            w->coll_len = e.coll_len;
            if ((rc = set_collection(w)) < 0)
                return rc;
        }
        memcpy(w->doc, e.doc, e.doc_len);
        w->doc[e.doc_len] = 0;
        w->doc_len = e.doc_len;
    }
    if (!w->touched) { /* untouched collections are copied as they come */
        if (e.kind == CRDT_ENTRY_TEXT || e.kind == CRDT_ENTRY_LIST)
            w->wrote_seq = 1;
        return emit(w, k, kl, v, vl);
    }
    return add_entry(&w->ents, &w->n, &w->cap, &w->in, k, kl, v, vl);
}

int
epoch__rewriter_finish(epoch__rewriter *w)
{
    int rc = defaults_done(w);

    return rc < 0 ? rc : flush_doc(w);
}
