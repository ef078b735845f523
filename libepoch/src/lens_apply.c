/*
 * lens_apply.c: what a lens does to a field name, a value, an op and a
 * document.
 *
 * Invariants:
 *  (1) One walk over a section's steps (follow()) decides the fate of a
 *      field for names, values and ops, and apply_doc() runs the same
 *      steps in the same order, so migrating a document gives the state
 *      that rebasing every op that built it would give.
 *  (2) rename a -> b gives the name b to the old a: a field that was
 *      already called b is removed, so no two old fields share a new name.
 *  (3) A field removed at some step stays removed, even if a later step
 *      adds a field of the same name: that one is a new field.
 *  (4) apply_doc() works on a copy and swaps it in at the end: all or
 *      nothing.
 */
#include "lens_internal.h"

#include <string.h>

static const char removed_reason[] = "field removed by lens";
static const char dropped_reason[] = "collection dropped by lens";

static int
why(const char **reason_out, const char *reason, int rc)
{
    if (reason_out != NULL)
        *reason_out = reason;
    return rc;
}

/* Follow @p field through @p s; convert *val on the way if non-NULL. */
static const char to_text_reason[] = "field converted to text";
static const char to_string_reason[] = "field converted to string";

/* @p op: following an op (a register or set op on a field a step turns
 * into a text has no place in it: quarantined); else a document's value,
 * which a string <-> text conversion leaves to the migration builder. */
static int
follow(const char **name_out, crdt_value *val, epoch_buf *scratch,
       const epoch__section *s, const char *field, const char **reason_out,
       int op)
{
    const char *cur = field;
    size_t i;
    int rc;

    if (s->drops)
        return why(reason_out, dropped_reason, CRDT_ENOTFOUND);
    for (i = 0; i < s->nsteps; i++) {
        const epoch__step *st = &s->steps[i];

        switch (st->kind) {
        case EPOCH__STEP_RENAME:
            if (strcmp(cur, st->field) == 0)
                cur = st->to_field;
            else if (strcmp(cur, st->to_field) == 0) /* keeps (2) */
                return why(reason_out, removed_reason, CRDT_ENOTFOUND);
            break;
        case EPOCH__STEP_REMOVE:
            if (strcmp(cur, st->field) == 0) /* keeps (3) */
                return why(reason_out, removed_reason, CRDT_ENOTFOUND);
            break;
        case EPOCH__STEP_CONVERT:
            if (val == NULL || strcmp(cur, st->field) != 0)
                break;
            if (st->retype) {
                if (op)
                    return why(reason_out,
                               st->retype == EPOCH__TO_TEXT
                                   ? to_text_reason : to_string_reason,
                               CRDT_ENOTFOUND);
                break;
            }
            rc = epoch__convert(val, scratch, st, val, reason_out);
            if (rc < 0)
                return rc;
            break;
        case EPOCH__STEP_ADD:
        case EPOCH__STEP_DROP: /* drop is alone in its section */
            break;
        }
    }
    *name_out = cur;
    return CRDT_OK;
}

int
epoch_lens_map_field(const char **field_out, const epoch_lens *l,
                     const char *coll, const char *field)
{
    const epoch__section *s;

    if (field_out == NULL || l == NULL || coll == NULL || field == NULL)
        return CRDT_EINVAL;
    s = epoch__lens_find(l, coll);
    if (s == NULL) {
        *field_out = field;
        return CRDT_OK;
    }
    return follow(field_out, NULL, NULL, s, field, NULL, 0);
}

int
epoch_lens_map_value(crdt_value *out, epoch_buf *scratch,
                     const epoch_lens *l, const char *coll,
                     const char *field, const crdt_value *in,
                     const char **reason_out)
{
    const epoch__section *s;
    const char *name;
    crdt_value v;
    int rc;

    if (out == NULL || scratch == NULL || l == NULL || coll == NULL ||
        field == NULL || in == NULL)
        return CRDT_EINVAL;
    v = *in;
    s = epoch__lens_find(l, coll);
    if (s != NULL) {
        rc = follow(&name, &v, scratch, s, field, reason_out, 0);
        if (rc < 0)
            return rc;
    }
    *out = v;
    return CRDT_OK;
}

int
epoch_lens_apply_op(epoch_op_view *out, epoch_buf *scratch,
                    const epoch_lens *l, const epoch_op_view *in,
                    const char **reason_out)
{
    const epoch__section *s;
    epoch_op_view op;
    int rc, has_value;

    if (out == NULL || scratch == NULL || l == NULL || in == NULL ||
        in->coll == NULL || (unsigned)in->kind > EPOCH_OP_DEL_DOC ||
        (in->kind != EPOCH_OP_DEL_DOC && in->field == NULL))
        return CRDT_EINVAL;
    op = *in; /* @p out may be @p in */
    s = epoch__lens_find(l, in->coll);
    if (s == NULL) {
        *out = op;
        return CRDT_OK;
    }
    if (s->drops)
        return why(reason_out, dropped_reason, CRDT_ENOTFOUND);
    if (op.kind == EPOCH_OP_DEL_DOC) {
        *out = op;
        return CRDT_OK;
    }
    /* converts touch scalar values only: an INCR's delta or a
     * DEL_FIELD has nothing a convert step could change */
    has_value = op.kind == EPOCH_OP_PUT || op.kind == EPOCH_OP_SADD ||
                op.kind == EPOCH_OP_SREM;
    rc = follow(&op.field, has_value ? &op.value : NULL, scratch, s,
                in->field, reason_out, 1);
    if (rc < 0)
        return rc;
    *out = op;
    return CRDT_OK;
}

/* Replace @p *v (owned) by its conversion; a failure writes null. */
static int
convert_owned(crdt_value *v, epoch_buf *scratch, const epoch__step *st)
{
    crdt_value c, copy;
    int rc = epoch__convert(&c, scratch, st, v, NULL);

    if (rc == CRDT_ETYPE)
        c = crdt_value_null();
    else if (rc < 0)
        return rc;
    rc = epoch__value_copy(&copy, &c); /* c may point into *v */
    if (rc < 0)
        return rc;
    epoch__value_release(v);
    *v = copy;
    return CRDT_OK;
}

static int
convert_field(epoch__field *f, epoch_buf *scratch, const epoch__step *st)
{
    size_t i;
    int rc = CRDT_OK;

    if (f->kind == EPOCH_FIELD_REGISTER)
        return convert_owned(&f->reg, scratch, st);
    if (f->kind == EPOCH_FIELD_COUNTER)
        return CRDT_OK;
    for (i = 0; i < f->nelems && rc == CRDT_OK; i++)
        rc = convert_owned(&f->elems[i], scratch, st);
    /* two elements may have converted to one (failures to null) */
    epoch__values_normalize(f->elems, &f->nelems);
    return rc;
}

static int
apply_step(epoch_doc *doc, epoch_buf *scratch, const epoch__step *st)
{
    epoch__field *f;
    int rc;

    switch (st->kind) {
    case EPOCH__STEP_RENAME:
        epoch_doc_remove(doc, st->to_field); /* keeps (2) */
        rc = epoch__doc_rename(doc, st->field, st->to_field);
        return rc == CRDT_ENOTFOUND ? CRDT_OK : rc;
    case EPOCH__STEP_ADD:
        if (epoch__doc_find(doc, st->field) != NULL)
            return CRDT_OK;
        return epoch_doc_set_register(doc, st->field, &st->def);
    case EPOCH__STEP_REMOVE:
        epoch_doc_remove(doc, st->field);
        return CRDT_OK;
    case EPOCH__STEP_CONVERT:
        if (st->retype)
            return CRDT_OK; /* a text is not in an epoch_doc */
        f = epoch__doc_find(doc, st->field);
        return f != NULL ? convert_field(f, scratch, st) : CRDT_OK;
    case EPOCH__STEP_DROP:
        break;
    }
    return CRDT_OK;
}

int
epoch_lens_apply_doc(epoch_doc *doc, const epoch_lens *l, const char *coll)
{
    epoch_buf scratch = EPOCH_BUF_INIT;
    const epoch__section *s;
    epoch_doc *work = NULL;
    size_t i;
    int rc;

    if (doc == NULL || l == NULL || coll == NULL)
        return CRDT_EINVAL;
    s = epoch__lens_find(l, coll);
    if (s == NULL)
        return CRDT_OK;
    if (s->drops)
        return CRDT_ENOTFOUND;
    rc = epoch_doc_clone(&work, doc); /* keeps (4) */
    for (i = 0; rc == CRDT_OK && i < s->nsteps; i++)
        rc = apply_step(work, &scratch, &s->steps[i]);
    epoch_buf_free(&scratch);
    if (rc == CRDT_OK)
        epoch__doc_swap(doc, work);
    epoch_doc_free(work); /* the old state, or the failed copy */
    return rc;
}
