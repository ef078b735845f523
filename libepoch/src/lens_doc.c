/*
 * lens_doc.c: epoch_doc, a small in-memory document that lens tests and
 * snapshot migration use. Not a CRDT: it holds one resolved state.
 *
 * Invariants:
 *  (1) Fields are sorted by name (strcmp) and names are distinct, so
 *      lookups are binary searches and equality is a linear walk.
 *  (2) Set elements are sorted by crdt_value_cmp() and distinct.
 *  (3) The document owns every name and every string or bytes value in
 *      it; a value handed in is copied before anything else changes, so
 *      a failed call leaves the document as it was.
 */
#include "lens_internal.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

int
epoch__value_copy(crdt_value *out, const crdt_value *in)
{
    char *p;

    *out = *in;
    if (in->type != CRDT_VSTRING && in->type != CRDT_VBYTES)
        return CRDT_OK;
    p = malloc(in->u.s.len > 0 ? in->u.s.len : 1);
    if (p == NULL) {
        *out = crdt_value_null(); /* not the caller's bytes to free */
        return CRDT_ENOMEM;
    }
    if (in->u.s.len > 0)
        memcpy(p, in->u.s.ptr, in->u.s.len);
    out->u.s.ptr = p;
    return CRDT_OK;
}

void
epoch__value_release(crdt_value *v)
{
    if (v->type == CRDT_VSTRING || v->type == CRDT_VBYTES)
        free((void *)v->u.s.ptr);
    *v = crdt_value_null();
}

static int
elem_cmp(const void *a, const void *b)
{
    return crdt_value_cmp(a, b);
}

/* Sort owned values and release duplicates (keeps (2)). */
void
epoch__values_normalize(crdt_value *v, size_t *n)
{
    size_t i, k = 0;

    if (*n > 1)
        qsort(v, *n, sizeof *v, elem_cmp);
    for (i = 0; i < *n; i++) {
        if (k > 0 && crdt_value_cmp(&v[k - 1], &v[i]) == 0)
            epoch__value_release(&v[i]);
        else
            v[k++] = v[i];
    }
    *n = k;
#ifndef NDEBUG
    /* keeps (2): an inconsistent order would leave duplicates apart */
    for (i = 1; i < k; i++)
        assert(crdt_value_cmp(&v[i - 1], &v[i]) < 0);
#endif
}

static void
field_release(epoch__field *f)
{
    size_t i;

    free(f->name);
    if (f->kind == EPOCH_FIELD_REGISTER)
        epoch__value_release(&f->reg);
    for (i = 0; i < f->nelems; i++)
        epoch__value_release(&f->elems[i]);
    free(f->elems);
}

/* Index of @p name, or where it would go (with *found = 0). */
static size_t
field_pos(const epoch_doc *doc, const char *name, int *found)
{
    size_t lo = 0, hi = doc->nfields, mid;
    int c;

    *found = 0;
    while (lo < hi) {
        mid = lo + (hi - lo) / 2;
        c = strcmp(name, doc->fields[mid].name);
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

epoch__field *
epoch__doc_find(const epoch_doc *doc, const char *name)
{
    int found;
    size_t i = field_pos(doc, name, &found);

    return found ? &doc->fields[i] : NULL;
}

/* Insert @p f (whose name is set and absent) at its place, keeping (1);
 * @p f's memory moves in. *at_out is where it went. */
static int
field_insert(size_t *at_out, epoch_doc *doc, const epoch__field *f)
{
    epoch__field *fs;
    size_t at, cap;
    int found;

    if (doc->nfields == doc->cap) {
        cap = doc->cap ? doc->cap * 2 : 8;
        fs = realloc(doc->fields, cap * sizeof *fs);
        if (fs == NULL)
            return CRDT_ENOMEM;
        doc->fields = fs;
        doc->cap = cap;
    }
    at = field_pos(doc, f->name, &found);
    memmove(&doc->fields[at + 1], &doc->fields[at],
            (doc->nfields - at) * sizeof *fs);
    doc->fields[at] = *f;
    doc->nfields++;
    *at_out = at;
    return CRDT_OK;
}

static int
valid_name(const char *name)
{
    return name != NULL && name[0] != '\0';
}

int
epoch_doc_new(epoch_doc **out)
{
    if (out == NULL)
        return CRDT_EINVAL;
    *out = calloc(1, sizeof **out);
    return *out != NULL ? CRDT_OK : CRDT_ENOMEM;
}

void
epoch_doc_free(epoch_doc *doc)
{
    size_t i;

    if (doc == NULL)
        return;
    for (i = 0; i < doc->nfields; i++)
        field_release(&doc->fields[i]);
    free(doc->fields);
    free(doc);
}

void
epoch__doc_swap(epoch_doc *a, epoch_doc *b)
{
    epoch_doc t = *a;

    *a = *b;
    *b = t;
}

/* A new field named @p name of @p kind, holding nothing yet. */
static int
field_new(epoch_doc *doc, epoch__field **out, const char *name,
          epoch_field_kind kind)
{
    epoch__field f;
    size_t n = strlen(name), at;
    int rc;

    memset(&f, 0, sizeof f);
    f.kind = kind;
    f.name = malloc(n + 1);
    if (f.name == NULL)
        return CRDT_ENOMEM;
    memcpy(f.name, name, n + 1);
    rc = field_insert(&at, doc, &f);
    if (rc < 0) {
        free(f.name);
        return rc;
    }
    *out = &doc->fields[at];
    return CRDT_OK;
}

int
epoch_doc_set_register(epoch_doc *doc, const char *field, const crdt_value *v)
{
    epoch__field *f;
    crdt_value copy;
    int rc;

    if (doc == NULL || !valid_name(field) || v == NULL)
        return CRDT_EINVAL;
    f = epoch__doc_find(doc, field);
    if (f != NULL && f->kind != EPOCH_FIELD_REGISTER)
        return CRDT_ETYPE;
    rc = epoch__value_copy(&copy, v); /* keeps (3) */
    if (rc == CRDT_OK && f == NULL)
        rc = field_new(doc, &f, field, EPOCH_FIELD_REGISTER);
    if (rc < 0) {
        epoch__value_release(&copy);
        return rc;
    }
    epoch__value_release(&f->reg);
    f->reg = copy;
    return CRDT_OK;
}

int
epoch_doc_set_counter(epoch_doc *doc, const char *field, int64_t n)
{
    epoch__field *f;
    int rc;

    if (doc == NULL || !valid_name(field))
        return CRDT_EINVAL;
    f = epoch__doc_find(doc, field);
    if (f != NULL && f->kind != EPOCH_FIELD_COUNTER)
        return CRDT_ETYPE;
    if (f == NULL) {
        rc = field_new(doc, &f, field, EPOCH_FIELD_COUNTER);
        if (rc < 0)
            return rc;
    }
    f->counter = n;
    return CRDT_OK;
}

static size_t
elem_pos(const epoch__field *f, const crdt_value *v, int *found)
{
    size_t lo = 0, hi = f->nelems, mid;
    int c;

    *found = 0;
    while (lo < hi) {
        mid = lo + (hi - lo) / 2;
        c = crdt_value_cmp(v, &f->elems[mid]);
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

int
epoch_doc_set_add(epoch_doc *doc, const char *field, const crdt_value *v)
{
    epoch__field *f;
    crdt_value copy, *es;
    size_t at;
    int rc, found = 0;

    if (doc == NULL || !valid_name(field) || v == NULL)
        return CRDT_EINVAL;
    f = epoch__doc_find(doc, field);
    if (f != NULL && f->kind != EPOCH_FIELD_SET)
        return CRDT_ETYPE;
    if (f != NULL)
        elem_pos(f, v, &found);
    if (found)
        return CRDT_OK; /* already there */
    rc = epoch__value_copy(&copy, v); /* keeps (3) */
    if (rc < 0)
        return rc;
    es = realloc(f != NULL ? f->elems : NULL,
                 ((f != NULL ? f->nelems : 0) + 1) * sizeof *es);
    if (es == NULL) {
        epoch__value_release(&copy);
        return CRDT_ENOMEM;
    }
    if (f != NULL)
        f->elems = es;
    if (f == NULL) {
        rc = field_new(doc, &f, field, EPOCH_FIELD_SET);
        if (rc < 0) {
            free(es);
            epoch__value_release(&copy);
            return rc;
        }
        f->elems = es;
    }
    at = elem_pos(f, &copy, &found);
    memmove(&f->elems[at + 1], &f->elems[at],
            (f->nelems - at) * sizeof *es);
    f->elems[at] = copy;
    f->nelems++;
    return CRDT_OK;
}

int
epoch_doc_set_remove(epoch_doc *doc, const char *field, const crdt_value *v)
{
    epoch__field *f;
    size_t at;
    int found;

    if (doc == NULL || field == NULL || v == NULL)
        return CRDT_EINVAL;
    f = epoch__doc_find(doc, field);
    if (f == NULL)
        return CRDT_ENOTFOUND;
    if (f->kind != EPOCH_FIELD_SET)
        return CRDT_ETYPE;
    at = elem_pos(f, v, &found);
    if (!found)
        return CRDT_ENOTFOUND;
    epoch__value_release(&f->elems[at]);
    memmove(&f->elems[at], &f->elems[at + 1],
            (f->nelems - at - 1) * sizeof *f->elems);
    f->nelems--;
    return CRDT_OK;
}

int
epoch_doc_remove(epoch_doc *doc, const char *field)
{
    size_t at;
    int found;

    if (doc == NULL || field == NULL)
        return CRDT_EINVAL;
    at = field_pos(doc, field, &found);
    if (!found)
        return CRDT_ENOTFOUND;
    field_release(&doc->fields[at]);
    memmove(&doc->fields[at], &doc->fields[at + 1],
            (doc->nfields - at - 1) * sizeof *doc->fields);
    doc->nfields--;
    return CRDT_OK;
}

/* Move field @p from to the absent name @p to, keeping (1). */
int
epoch__doc_rename(epoch_doc *doc, const char *from, const char *to)
{
    size_t at, n = strlen(to);
    epoch__field f;
    char *name;
    int found;

    if (epoch__doc_find(doc, to) != NULL)
        return CRDT_EEXISTS;
    at = field_pos(doc, from, &found);
    if (!found)
        return CRDT_ENOTFOUND;
    name = malloc(n + 1);
    if (name == NULL)
        return CRDT_ENOMEM;
    memcpy(name, to, n + 1);
    f = doc->fields[at];
    free(f.name);
    f.name = name;
    memmove(&doc->fields[at], &doc->fields[at + 1],
            (doc->nfields - at - 1) * sizeof f);
    doc->nfields--;
    return field_insert(&at, doc, &f); /* cannot fail: a slot is free */
}

int
epoch_doc_clone(epoch_doc **out, const epoch_doc *doc)
{
    epoch_doc *c;
    const epoch__field *f;
    epoch__field *nf;
    size_t i, j;
    int rc = CRDT_OK;

    if (out == NULL || doc == NULL)
        return CRDT_EINVAL;
    rc = epoch_doc_new(&c);
    for (i = 0; i < doc->nfields && rc == CRDT_OK; i++) {
        f = &doc->fields[i];
        if (f->kind == EPOCH_FIELD_REGISTER)
            rc = epoch_doc_set_register(c, f->name, &f->reg);
        else if (f->kind == EPOCH_FIELD_COUNTER)
            rc = epoch_doc_set_counter(c, f->name, f->counter);
        else if (f->nelems == 0)
            rc = field_new(c, &nf, f->name, EPOCH_FIELD_SET);
        for (j = 0; j < f->nelems && rc == CRDT_OK; j++)
            rc = epoch_doc_set_add(c, f->name, &f->elems[j]);
    }
    if (rc < 0) {
        epoch_doc_free(c);
        return rc;
    }
    *out = c;
    return CRDT_OK;
}

size_t
epoch_doc_field_count(const epoch_doc *doc)
{
    return doc != NULL ? doc->nfields : 0;
}

int
epoch_doc_field(const char **name_out, epoch_field_kind *kind_out,
                const epoch_doc *doc, size_t i)
{
    if (name_out == NULL || doc == NULL || i >= doc->nfields)
        return CRDT_EINVAL;
    *name_out = doc->fields[i].name;
    if (kind_out != NULL)
        *kind_out = doc->fields[i].kind;
    return CRDT_OK;
}

static int
lookup(const epoch__field **out, const epoch_doc *doc, const char *field,
       epoch_field_kind kind)
{
    const epoch__field *f;

    if (doc == NULL || field == NULL)
        return CRDT_EINVAL;
    f = epoch__doc_find(doc, field);
    if (f == NULL)
        return CRDT_ENOTFOUND;
    if (f->kind != kind)
        return CRDT_ETYPE;
    *out = f;
    return CRDT_OK;
}

int
epoch_doc_get_register(crdt_value *out, const epoch_doc *doc,
                       const char *field)
{
    const epoch__field *f;
    int rc = out != NULL ? lookup(&f, doc, field, EPOCH_FIELD_REGISTER)
                         : CRDT_EINVAL;

    if (rc == CRDT_OK)
        *out = f->reg;
    return rc;
}

int
epoch_doc_get_counter(int64_t *out, const epoch_doc *doc, const char *field)
{
    const epoch__field *f;
    int rc = out != NULL ? lookup(&f, doc, field, EPOCH_FIELD_COUNTER)
                         : CRDT_EINVAL;

    if (rc == CRDT_OK)
        *out = f->counter;
    return rc;
}

int
epoch_doc_set_size(size_t *out, const epoch_doc *doc, const char *field)
{
    const epoch__field *f;
    int rc = out != NULL ? lookup(&f, doc, field, EPOCH_FIELD_SET)
                         : CRDT_EINVAL;

    if (rc == CRDT_OK)
        *out = f->nelems;
    return rc;
}

int
epoch_doc_set_elem(crdt_value *out, const epoch_doc *doc, const char *field,
                   size_t i)
{
    const epoch__field *f;
    int rc = out != NULL ? lookup(&f, doc, field, EPOCH_FIELD_SET)
                         : CRDT_EINVAL;

    if (rc == CRDT_OK && i >= f->nelems)
        rc = CRDT_EINVAL;
    if (rc == CRDT_OK)
        *out = f->elems[i];
    return rc;
}

static int
field_equal(const epoch__field *a, const epoch__field *b)
{
    size_t i;

    if (strcmp(a->name, b->name) != 0 || a->kind != b->kind)
        return 0;
    switch (a->kind) {
    case EPOCH_FIELD_REGISTER:
        return crdt_value_cmp(&a->reg, &b->reg) == 0;
    case EPOCH_FIELD_COUNTER:
        return a->counter == b->counter;
    case EPOCH_FIELD_SET:
        if (a->nelems != b->nelems)
            return 0;
        for (i = 0; i < a->nelems; i++)
            if (crdt_value_cmp(&a->elems[i], &b->elems[i]) != 0)
                return 0;
        return 1;
    }
    return 0;
}

int
epoch_doc_equal(const epoch_doc *a, const epoch_doc *b)
{
    size_t i;

    if (a == NULL || b == NULL || a->nfields != b->nfields)
        return a == b;
    for (i = 0; i < a->nfields; i++)
        if (!field_equal(&a->fields[i], &b->fields[i]))
            return 0;
    return 1;
}
