/*
 * lens.c: the lens object: its memory, inversion and the queries the
 * migration builder makes. Parsing is in lens_parse.c, text in
 * lens_format.c, transforms in lens_apply.c.
 *
 * A lens is immutable once epoch_lens_parse() or epoch_lens_invert()
 * returns it, so every query here is read-only and thread-safe.
 * Invariants (numbered as in lens_internal.h):
 *  (1) strings live in the arena: freeing a lens is freeing its arrays
 *      and its blocks, never individual strings;
 *  (5) defaults are computed once per section, by epoch__section_finish(),
 *      both for a parsed lens and for an inverted one.
 */
#include "lens_internal.h"

#include <stdlib.h>
#include <string.h>

#define BLOCK_MIN 4096

struct epoch__block {
    epoch__block *next;
    size_t used, cap;
    char data[];
};

void
epoch_buf_free(epoch_buf *b)
{
    if (b == NULL)
        return;
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

int
epoch__buf_reserve(epoch_buf *b, size_t extra)
{
    size_t cap;
    char *p;

    if (b->cap - b->len > extra)  /* keep room for a NUL */
        return CRDT_OK;
    if (extra > SIZE_MAX / 2 - b->len)
        return CRDT_ENOMEM;
    cap = b->cap ? b->cap : 64;
    while (cap - b->len <= extra)
        cap *= 2;
    p = realloc(b->data, cap);
    if (p == NULL)
        return CRDT_ENOMEM;
    b->data = p;
    b->cap = cap;
    return CRDT_OK;
}

int
epoch__buf_put(epoch_buf *b, const char *p, size_t n)
{
    int rc = epoch__buf_reserve(b, n);

    if (rc < 0)
        return rc;
    if (n > 0)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return CRDT_OK;
}

void *
epoch__arena_alloc(epoch_lens *l, size_t n)
{
    epoch__block *b = l->arena;
    size_t cap;

    if (b == NULL || b->cap - b->used < n) {
        cap = n > BLOCK_MIN ? n : BLOCK_MIN;
        b = malloc(sizeof *b + cap);
        if (b == NULL)
            return NULL;
        b->used = 0;
        b->cap = cap;
        b->next = l->arena;
        l->arena = b;
    }
    b->used += n;
    return b->data + b->used - n;
}

char *
epoch__arena_strdup(epoch_lens *l, const char *p, size_t len)
{
    char *s = epoch__arena_alloc(l, len + 1);

    if (s == NULL)
        return NULL;
    if (len > 0)
        memcpy(s, p, len);
    s[len] = '\0';
    return s;
}

/* Make @p v's bytes belong to @p l, so it outlives the buffer they came
 * from (keeps (1)). */
int
epoch__value_intern(epoch_lens *l, crdt_value *v)
{
    char *p;

    if (v->type != CRDT_VSTRING && v->type != CRDT_VBYTES)
        return CRDT_OK;
    p = epoch__arena_strdup(l, v->u.s.ptr, v->u.s.len);
    if (p == NULL)
        return CRDT_ENOMEM;
    v->u.s.ptr = p;
    return CRDT_OK;
}

void
epoch_lens_free(epoch_lens *l)
{
    epoch__block *b, *next;
    size_t i, j;

    if (l == NULL)
        return;
    for (i = 0; i < l->nsecs; i++) {
        for (j = 0; j < l->secs[i].nsteps; j++)
            free(l->secs[i].steps[j].pairs);
        free(l->secs[i].steps);
        free(l->secs[i].defaults);
    }
    free(l->secs);
    for (b = l->arena; b != NULL; b = next) {
        next = b->next;
        free(b);
    }
    free(l);
}

const epoch__section *
epoch__lens_find(const epoch_lens *l, const char *coll)
{
    size_t i;

    for (i = 0; i < l->nsecs; i++)
        if (strcmp(l->secs[i].coll, coll) == 0)
            return &l->secs[i];
    return NULL;
}

static size_t
default_find(const epoch__default *d, size_t n, const char *field)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (strcmp(d[i].field, field) == 0)
            return i;
    return n;
}

static void
default_drop(epoch__default *d, size_t *n, size_t k)
{
    if (k >= *n)
        return;
    memmove(&d[k], &d[k + 1], (*n - k - 1) * sizeof *d);
    (*n)--;
}

/* Run the steps of @p s over the list of added fields, exactly as
 * epoch_lens_apply_doc() runs them over a document where the fields are
 * absent; so the builder writing these defaults gets the same state. */
int
epoch__section_finish(epoch_lens *l, epoch__section *s)
{
    epoch_buf scratch = EPOCH_BUF_INIT;
    epoch__default *d;
    crdt_value v;
    size_t n = 0, i, k;
    int rc = CRDT_OK;

    d = calloc(s->nsteps, sizeof *d);
    if (d == NULL)
        return CRDT_ENOMEM;
    s->drops = 0;
    for (i = 0; i < s->nsteps && rc == CRDT_OK; i++) {
        const epoch__step *st = &s->steps[i];

        switch (st->kind) {
        case EPOCH__STEP_DROP:
            s->drops = 1;
            n = 0;
            break;
        case EPOCH__STEP_ADD:
            if (default_find(d, n, st->field) == n) {
                d[n].field = st->field;
                d[n++].value = st->def;
            }
            break;
        case EPOCH__STEP_REMOVE:
            default_drop(d, &n, default_find(d, n, st->field));
            break;
        case EPOCH__STEP_RENAME:
            /* the new name belongs to the renamed field from now on */
            default_drop(d, &n, default_find(d, n, st->to_field));
            k = default_find(d, n, st->field);
            if (k < n)
                d[k].field = st->to_field;
            break;
        case EPOCH__STEP_CONVERT:
            k = default_find(d, n, st->field);
            if (k == n || st->retype)
                break; /* a default stays the register it was */
            rc = epoch__convert(&v, &scratch, st, &d[k].value, NULL);
            if (rc == CRDT_ETYPE) {
                v = crdt_value_null();
                rc = CRDT_OK;
            }
            if (rc == CRDT_OK)
                rc = epoch__value_intern(l, &v);
            if (rc == CRDT_OK)
                d[k].value = v;
            break;
        }
    }
    epoch_buf_free(&scratch);
    if (rc < 0 || n == 0) {
        free(d);
        d = NULL;
        n = 0;
    }
    free(s->defaults);
    s->defaults = d;
    s->ndefaults = n;
    return rc;
}

static int
invert_step(epoch_lens *inv, epoch__step *dst, const epoch__step *src)
{
    size_t i;
    int rc = CRDT_OK;

    *dst = *src;
    dst->pairs = NULL;
    dst->npairs = 0;
    if (src->field != NULL) {
        dst->field = epoch__arena_strdup(inv, src->field, strlen(src->field));
        if (dst->field == NULL)
            return CRDT_ENOMEM;
    }
    switch (src->kind) {
    case EPOCH__STEP_RENAME:
        dst->to_field = dst->field;
        dst->field = epoch__arena_strdup(inv, src->to_field,
                                         strlen(src->to_field));
        if (dst->field == NULL)
            return CRDT_ENOMEM;
        break;
    case EPOCH__STEP_ADD:
        dst->kind = EPOCH__STEP_REMOVE;
        rc = epoch__value_intern(inv, &dst->def);
        break;
    case EPOCH__STEP_REMOVE:
        dst->kind = EPOCH__STEP_ADD;
        rc = epoch__value_intern(inv, &dst->def);
        break;
    case EPOCH__STEP_CONVERT:
        /* the reverse-default is the inverse's default and vice versa,
         * so inverting twice gives back the same step */
        dst->type = src->to_type;
        dst->to_type = src->type;
        if (src->retype)
            dst->retype = src->retype == EPOCH__TO_TEXT ? EPOCH__TO_STRING
                                                        : EPOCH__TO_TEXT;
        dst->def = src->rdef;
        dst->has_def = src->has_rdef;
        dst->rdef = src->def;
        dst->has_rdef = src->has_def;
        rc = epoch__value_intern(inv, &dst->def);
        if (rc == CRDT_OK)
            rc = epoch__value_intern(inv, &dst->rdef);
        if (rc < 0 || src->npairs == 0)
            break;
        dst->pairs = malloc(src->npairs * sizeof *dst->pairs);
        if (dst->pairs == NULL)
            return CRDT_ENOMEM;
        dst->npairs = src->npairs;
        for (i = 0; i < src->npairs && rc == CRDT_OK; i++) {
            dst->pairs[i].from = src->pairs[i].to;
            dst->pairs[i].to = src->pairs[i].from;
            rc = epoch__value_intern(inv, &dst->pairs[i].from);
            if (rc == CRDT_OK)
                rc = epoch__value_intern(inv, &dst->pairs[i].to);
        }
        epoch__pairs_sort(dst->pairs, dst->npairs); /* keeps (4) */
        break;
    case EPOCH__STEP_DROP:
        break;
    }
    return rc;
}

static int
invert_section(epoch_lens *inv, epoch__section *dst,
               const epoch__section *src)
{
    size_t j;
    int rc;

    dst->coll = epoch__arena_strdup(inv, src->coll, strlen(src->coll));
    if (dst->coll == NULL)
        return CRDT_ENOMEM;
    dst->from = src->to;
    dst->to = src->from;
    dst->steps = calloc(src->nsteps, sizeof *dst->steps);
    if (dst->steps == NULL)
        return CRDT_ENOMEM;
    for (j = 0; j < src->nsteps; j++) {
        dst->nsteps = j + 1; /* so epoch_lens_free() sees what to free */
        rc = invert_step(inv, &dst->steps[j],
                         &src->steps[src->nsteps - 1 - j]);
        if (rc < 0)
            return rc;
    }
    return epoch__section_finish(inv, dst);
}

int
epoch_lens_invert(epoch_lens **out, const epoch_lens *l)
{
    epoch_lens *inv;
    size_t i;
    int rc = CRDT_OK;

    if (out == NULL || l == NULL)
        return CRDT_EINVAL;
    inv = calloc(1, sizeof *inv);
    if (inv == NULL)
        return CRDT_ENOMEM;
    inv->secs = calloc(l->nsecs, sizeof *inv->secs);
    if (inv->secs == NULL && l->nsecs > 0)
        rc = CRDT_ENOMEM;
    for (i = 0; i < l->nsecs && rc == CRDT_OK; i++) {
        inv->nsecs = i + 1;
        rc = invert_section(inv, &inv->secs[i], &l->secs[l->nsecs - 1 - i]);
    }
    if (rc < 0) {
        epoch_lens_free(inv); /* keeps (6) */
        return rc;
    }
    *out = inv;
    return CRDT_OK;
}

int
epoch_lens_invertible(const epoch_lens *l)
{
    size_t i;

    if (l == NULL)
        return 0;
    for (i = 0; i < l->nsecs; i++)
        if (l->secs[i].drops)
            return 0;
    return 1;
}

size_t
epoch_lens_section_count(const epoch_lens *l)
{
    return l != NULL ? l->nsecs : 0;
}

int
epoch_lens_section(const epoch_lens *l, size_t i, const char **coll_out,
                   uint32_t *from_out, uint32_t *to_out)
{
    if (l == NULL || coll_out == NULL || i >= l->nsecs)
        return CRDT_EINVAL;
    *coll_out = l->secs[i].coll;
    if (from_out != NULL)
        *from_out = l->secs[i].from;
    if (to_out != NULL)
        *to_out = l->secs[i].to;
    return CRDT_OK;
}

size_t
epoch_lens_default_count(const epoch_lens *l, const char *coll)
{
    const epoch__section *s;

    if (l == NULL || coll == NULL)
        return 0;
    s = epoch__lens_find(l, coll);
    return s != NULL ? s->ndefaults : 0;
}

int
epoch_lens_default(const char **field_out, crdt_value *value_out,
                   const epoch_lens *l, const char *coll, size_t i)
{
    const epoch__section *s;

    if (field_out == NULL || value_out == NULL || l == NULL || coll == NULL)
        return CRDT_EINVAL;
    s = epoch__lens_find(l, coll);
    if (s == NULL || i >= s->ndefaults)
        return CRDT_EINVAL;
    *field_out = s->defaults[i].field;
    *value_out = s->defaults[i].value;
    return CRDT_OK;
}

int
epoch_lens_drops(const epoch_lens *l, const char *coll)
{
    const epoch__section *s;

    if (l == NULL || coll == NULL)
        return 0;
    s = epoch__lens_find(l, coll);
    return s != NULL && s->drops;
}

/* Field @p cur after step @p st: its name, or NULL if it removes it. */
static const char *
name_through(const epoch__step *st, const char *cur)
{
    if (st->kind == EPOCH__STEP_RENAME) {
        if (strcmp(cur, st->field) == 0)
            return st->to_field;
        if (strcmp(cur, st->to_field) == 0)
            return NULL;
    } else if (st->kind == EPOCH__STEP_REMOVE && strcmp(cur, st->field) == 0) {
        return NULL;
    }
    return cur;
}

int
epoch__lens_retype(const epoch_lens *l, size_t i, const char **coll,
                   const char **field, int *dir)
{
    for (size_t k = 0; l != NULL && k < l->nsecs; k++) {
        const epoch__section *s = &l->secs[k];
        for (size_t j = 0; j < s->nsteps; j++) {
            const char *cur;
            if (s->steps[j].kind != EPOCH__STEP_CONVERT ||
                !s->steps[j].retype)
                continue;
            if (i-- > 0)
                continue;
            cur = s->steps[j].field;
            for (size_t m = j + 1; m < s->nsteps && cur != NULL; m++)
                cur = name_through(&s->steps[m], cur);
            *coll = s->coll;
            *field = cur;
            *dir = s->steps[j].retype;
            return CRDT_OK;
        }
    }
    return CRDT_ENOTFOUND;
}

int
epoch__lens_retypes(const epoch_lens *l, const char *coll, const char *field)
{
    const epoch__section *s = epoch__lens_find(l, coll);
    const char *cur = field;

    for (size_t i = 0; s != NULL && i < s->nsteps && cur != NULL; i++) {
        const epoch__step *st = &s->steps[i];
        if (st->kind == EPOCH__STEP_CONVERT && st->retype &&
            strcmp(cur, st->field) == 0)
            return st->retype;
        cur = name_through(st, cur);
    }
    return 0;
}
