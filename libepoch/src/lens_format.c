/*
 * lens_format.c: epoch_lens -> canonical text, the form that is stored
 * and hashed, so two lenses that mean the same steps hash the same.
 *
 * Invariants:
 *  (1) One line per section header and per step, single spaces, "\n"
 *      endings, no comments, no blank lines.
 *  (2) Optional parts are written in one fixed spelling: add always says
 *      "default", remove says nothing when its type and default are both
 *      null, map pairs come sorted (lens_internal.h (4)), literals are
 *      written by epoch__literal_format().
 *  (3) Parsing the text gives a lens that formats identically (tested by
 *      tests/libepoch/test_lens.c and tests/fuzz/fuzz_lens.c).
 */
#include "lens_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int
put(epoch_buf *b, const char *s)
{
    return epoch__buf_put(b, s, strlen(s));
}

/* Appends each string argument in turn, up to a NULL; stops at an error. */
static int
puts_n(epoch_buf *b, const char *s1, const char *s2, const char *s3,
       const char *s4)
{
    const char *parts[4];
    int i, rc = CRDT_OK;

    parts[0] = s1, parts[1] = s2, parts[2] = s3, parts[3] = s4;
    for (i = 0; i < 4 && parts[i] != NULL && rc == CRDT_OK; i++)
        rc = put(b, parts[i]);
    return rc;
}

static int
convert_tail(epoch_buf *b, const epoch__step *s)
{
    size_t i;
    int rc = CRDT_OK;

    for (i = 0; i < s->npairs && rc == CRDT_OK; i++) {
        rc = put(b, i == 0 ? " map " : ", ");
        if (rc == CRDT_OK)
            rc = epoch__literal_format(b, &s->pairs[i].from);
        if (rc == CRDT_OK)
            rc = put(b, "=");
        if (rc == CRDT_OK)
            rc = epoch__literal_format(b, &s->pairs[i].to);
    }
    if (rc == CRDT_OK && s->has_def) {
        rc = put(b, " default ");
        if (rc == CRDT_OK)
            rc = epoch__literal_format(b, &s->def);
    }
    if (rc == CRDT_OK && s->has_rdef) {
        rc = put(b, " reverse-default ");
        if (rc == CRDT_OK)
            rc = epoch__literal_format(b, &s->rdef);
    }
    return rc;
}

static int
step_format(epoch_buf *b, const epoch__step *s)
{
    int rc;

    switch (s->kind) {
    case EPOCH__STEP_RENAME:
        return puts_n(b, "rename ", s->field, " -> ", s->to_field);
    case EPOCH__STEP_ADD:
    case EPOCH__STEP_REMOVE:
        rc = puts_n(b, s->kind == EPOCH__STEP_ADD ? "add " : "remove ",
                    s->field, NULL, NULL);
        if (rc < 0 || (s->kind == EPOCH__STEP_REMOVE &&
                       s->type == CRDT_VNULL && s->def.type == CRDT_VNULL))
            return rc; /* keeps (2) */
        rc = puts_n(b, " ", epoch__type_name(s->type), " default ", NULL);
        return rc == CRDT_OK ? epoch__literal_format(b, &s->def) : rc;
    case EPOCH__STEP_CONVERT:
        if (s->retype)
            return puts_n(b, "convert ", s->field,
                          s->retype == EPOCH__TO_TEXT ? " string -> text"
                                                      : " text -> string",
                          NULL);
        rc = puts_n(b, "convert ", s->field, " ", epoch__type_name(s->type));
        if (rc == CRDT_OK)
            rc = puts_n(b, " -> ", epoch__type_name(s->to_type), NULL, NULL);
        return rc == CRDT_OK ? convert_tail(b, s) : rc;
    case EPOCH__STEP_DROP:
        return put(b, "drop");
    }
    return CRDT_EINVAL;
}

int
epoch_lens_format(char **text_out, size_t *len_out, const epoch_lens *l)
{
    epoch_buf b = EPOCH_BUF_INIT;
    char head[64];
    size_t i, j;
    int rc = CRDT_OK;

    if (text_out == NULL || l == NULL)
        return CRDT_EINVAL;
    for (i = 0; i < l->nsecs && rc == CRDT_OK; i++) {
        const epoch__section *s = &l->secs[i];

        snprintf(head, sizeof head, " %u -> %u\n", (unsigned)s->from,
                 (unsigned)s->to);
        rc = puts_n(&b, "collection ", s->coll, head, NULL);
        for (j = 0; j < s->nsteps && rc == CRDT_OK; j++) {
            rc = step_format(&b, &s->steps[j]);
            if (rc == CRDT_OK)
                rc = put(&b, "\n");
        }
    }
    if (rc == CRDT_OK)
        rc = epoch__buf_reserve(&b, 0); /* a NUL even for an empty lens */
    if (rc < 0) {
        epoch_buf_free(&b);
        return rc;
    }
    b.data[b.len] = '\0';
    *text_out = b.data;
    if (len_out != NULL)
        *len_out = b.len;
    return CRDT_OK;
}
