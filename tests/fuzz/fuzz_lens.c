/*
 * fuzz_lens.c: libFuzzer target for the lens parser and transforms.
 *
 * Properties checked (abort() on violation, so libFuzzer keeps the input):
 *  (1) a refused file names a line in range and a NUL-terminated message;
 *  (2) format -> parse succeeds and formats identically;
 *  (3) invert(invert(l)) formats identically to l;
 *  (4) transforms of documents and ops built from the lens's own field
 *      names never crash or leak (ASan), and return documented codes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "epoch/lens.h"
#include "lens_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(int ok)
{
    if (!ok)
        abort();
}

static char *
format(const epoch_lens *l)
{
    char *text = NULL;
    size_t len = 0;

    check(epoch_lens_format(&text, &len, l) == CRDT_OK);
    check(strlen(text) == len);
    return text;
}

/* One value of each type, picked by @p i. */
static crdt_value
sample(size_t i)
{
    switch (i % 7) {
    case 0: return crdt_value_int((int64_t)i - 3);
    case 1: return crdt_value_str("1", 1);
    case 2: return crdt_value_double(0.5 * (double)i);
    case 3: return crdt_value_bool((int)(i & 1));
    case 4: return crdt_value_bytes("a\xff", 2);
    case 5: return crdt_value_str("true", 4);
    default: return crdt_value_null();
    }
}

static int
op_code_ok(int rc)
{
    return rc == CRDT_OK || rc == CRDT_ENOTFOUND || rc == CRDT_ETYPE;
}

/* Property (4) for section @p s of @p l. */
static void
exercise(const epoch_lens *l, const epoch__section *s)
{
    epoch_buf scratch = EPOCH_BUF_INIT;
    epoch_op_view op, out;
    const char *f, *reason;
    epoch_doc *doc;
    crdt_value v;
    size_t i, k;
    int rc;

    if (epoch_doc_new(&doc) != CRDT_OK)
        return;
    for (i = 0; i < s->nsteps; i++) {
        const char *name = s->steps[i].field;

        if (name == NULL)
            continue;
        v = sample(i);
        if (i % 3 == 2) {
            epoch_doc_set_add(doc, name, &v);
        } else {
            epoch_doc_set_register(doc, name, &v);
        }
        memset(&op, 0, sizeof op);
        op.kind = (epoch_op_kind)(i % 6);
        op.coll = s->coll;
        op.doc = "d";
        op.field = op.kind == EPOCH_OP_DEL_DOC ? NULL : name;
        op.value = v;
        op.delta = 1;
        reason = NULL;
        rc = epoch_lens_apply_op(&out, &scratch, l, &op, &reason);
        check(op_code_ok(rc) && (rc == CRDT_OK || reason != NULL));
        rc = epoch_lens_map_value(&v, &scratch, l, s->coll, name, &v, &reason);
        check(op_code_ok(rc));
        rc = epoch_lens_map_field(&f, l, s->coll, name);
        check(rc == CRDT_OK || rc == CRDT_ENOTFOUND);
    }
    rc = epoch_lens_apply_doc(doc, l, s->coll);
    check(rc == (s->drops ? CRDT_ENOTFOUND : CRDT_OK));
    for (k = 0; k < epoch_lens_default_count(l, s->coll); k++)
        check(epoch_lens_default(&f, &v, l, s->coll, k) == CRDT_OK);
    epoch_doc_free(doc);
    epoch_buf_free(&scratch);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    epoch_lens_error err;
    epoch_lens *l = NULL, *again = NULL, *inv = NULL, *inv2 = NULL;
    char *t1, *t2, *t3;
    size_t i;

    memset(&err, 0x55, sizeof err);
    if (epoch_lens_parse(&l, (const char *)data, size, &err) != CRDT_OK) {
        check(l == NULL); /* (1) */
        check(err.line >= 0 && (size_t)err.line <= size + 1);
        check(memchr(err.message, '\0', sizeof err.message) != NULL);
        return 0;
    }
    t1 = format(l);
    check(epoch_lens_parse(&again, t1, strlen(t1), NULL) == CRDT_OK); /* (2) */
    t2 = format(again);
    check(strcmp(t1, t2) == 0);

    check(epoch_lens_invert(&inv, l) == CRDT_OK); /* (3) */
    check(epoch_lens_invert(&inv2, inv) == CRDT_OK);
    t3 = format(inv2);
    check(strcmp(t1, t3) == 0);
    check(epoch_lens_invertible(inv) == epoch_lens_invertible(l));

    for (i = 0; i < l->nsecs; i++) { /* (4) */
        exercise(l, &l->secs[i]);
        exercise(inv, &inv->secs[i]);
    }
    free(t1);
    free(t2);
    free(t3);
    epoch_lens_free(l);
    epoch_lens_free(again);
    epoch_lens_free(inv);
    epoch_lens_free(inv2);
    return 0;
}
