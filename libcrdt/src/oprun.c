/*
 * oprun.c: a local txn's sequence ops folded into runs.
 *
 * Typing one character after another, or deleting with backspace or
 * delete, records one op per keystroke. Each op of such a run says
 * exactly what one op for the whole run says:
 *
 *  - inserts: a TINS whose first element's left origin is the last
 *    element of the previous TINS (same actor, the next id), with the
 *    same right origin, at the next position, is that TINS with a longer
 *    text (seq.c integrates the elements of one TINS each after the one
 *    before it, up to the op's right origin: the same order);
 *  - deletes: a TDEL (LDEL) just before the previous one's position
 *    (backspace) or at the same position (delete) removes, with it, one
 *    contiguous range of what the writer saw: one op with both id
 *    ranges, adjacent ranges of one actor joined.
 *
 * So the folded change applies to the same state everywhere (delete
 * records are joined by their store, insert runs grow by the same rule),
 * and the txn records one op where there were many: one name triple,
 * one pair of origins and one stamp per run instead of per keystroke.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "crdt/text.h"

static int
same_names(const crdt_op *a, const crdt_op *b)
{
    return a->coll_len == b->coll_len && a->doc_len == b->doc_len &&
           a->field_len == b->field_len &&
           memcmp(a->coll, b->coll, a->coll_len) == 0 &&
           memcmp(a->doc, b->doc, a->doc_len) == 0 &&
           memcmp(a->field, b->field, a->field_len) == 0;
}

static int
id_eq(const crdt_seq_id *a, const crdt_seq_id *b)
{
    return a->ctr == b->ctr &&
           (a->ctr == 0 || memcmp(a->actor.b, b->actor.b,
                                  CRDT_ACTOR_BYTES) == 0);
}

static int
fold_insert(crdt__enc *out, const crdt_op *last, const crdt_op *next,
            const crdt_actor *self)
{
    crdt_seq_id tail = { *self, last->ctr + last->len - 1 };
    crdt_op m = *last;
    char *txt;
    int rc;

    if (next->ctr != last->ctr + last->len || !id_eq(&next->left, &tail) ||
        !id_eq(&next->right, &last->right) ||
        next->pos != last->pos + last->len ||
        last->text_len + next->text_len > CRDT_TEXT_INSERT_MAX)
        return 0;
    if ((txt = malloc(last->text_len + next->text_len)) == NULL)
        return CRDT_ENOMEM;
    memcpy(txt, last->text, last->text_len);
    memcpy(txt + last->text_len, next->text, next->text_len);
    m.text = txt;
    m.text_len = last->text_len + next->text_len;
    m.len = last->len + next->len;
    rc = crdt__op_encode(out, &m);
    free(txt);
    return rc < 0 ? rc : 1;
}

/* The ranges of @p a then @p b as one encoded array, adjacent ranges of
 * one actor joined. */
static int
join_ranges(crdt__enc *out, const crdt_op *a, const crdt_op *b)
{
    crdt_seq_range *v = NULL, g;
    size_t n = 0, cap = 0;
    const crdt_op *src[2] = { a, b };
    int rc = CRDT_OK;

    for (int s = 0; s < 2 && rc == CRDT_OK; s++) {
        crdt_op_ranges it;
        crdt_op_ranges_init(&it, src[s]);
        while ((rc = crdt_op_ranges_next(&g, &it)) == CRDT_OK) {
            if (n > 0 && memcmp(v[n - 1].actor.b, g.actor.b,
                                CRDT_ACTOR_BYTES) == 0 &&
                v[n - 1].ctr + v[n - 1].len == g.ctr) {
                v[n - 1].len += g.len;
                continue;
            }
            if (n == cap) {
                crdt_seq_range *nv;
                cap = cap ? 2 * cap : 8;
                if ((nv = realloc(v, cap * sizeof *nv)) == NULL) {
                    free(v);
                    return CRDT_ENOMEM;
                }
                v = nv;
            }
            v[n++] = g;
        }
        if (rc == CRDT_ENOTFOUND)
            rc = CRDT_OK;
    }
    if (rc == CRDT_OK && msgpack_pack_array(&out->pk, 3 * n) < 0)
        rc = CRDT_ENOMEM;
    for (size_t i = 0; rc == CRDT_OK && i < n; i++)
        if (crdt__enc_bin(out, v[i].actor.b, CRDT_ACTOR_BYTES) < 0 ||
            msgpack_pack_uint64(&out->pk, v[i].ctr) < 0 ||
            msgpack_pack_uint64(&out->pk, v[i].len) < 0)
            rc = CRDT_ENOMEM;
    free(v);
    return rc < 0 ? rc : crdt__enc_ok(out);
}

static int
fold_delete(crdt__enc *out, const crdt_op *last, const crdt_op *next)
{
    crdt_op m = *last;
    crdt__enc rg;
    int rc;

    if (next->pos + next->len != last->pos && next->pos != last->pos)
        return 0;
    crdt__enc_init(&rg);
    /* ranges in the writer's document order */
    rc = next->pos == last->pos ? join_ranges(&rg, last, next)
                                : join_ranges(&rg, next, last);
    if (rc == CRDT_OK) {
        m.pos = next->pos < last->pos ? next->pos : last->pos;
        m.len = last->len + next->len;
        m.ranges = (const unsigned char *)rg.sb.data;
        m.ranges_len = rg.sb.size;
        rc = crdt__op_encode(out, &m);
    }
    crdt__enc_free(&rg);
    return rc < 0 ? rc : 1;
}

int
crdt__op_fold(crdt__enc *out, const crdt_op *last, const crdt_op *next,
              const crdt_actor *self)
{
    if (last->kind != next->kind || !same_names(last, next))
        return 0;
    switch (next->kind) {
    case CRDT_OP_TINS:
        return fold_insert(out, last, next, self);
    case CRDT_OP_TDEL:
    case CRDT_OP_LDEL:
        if (last->len + next->len >= UINT64_C(1) << 62)
            return 0;
        return fold_delete(out, last, next);
    default:
        return 0;
    }
}
