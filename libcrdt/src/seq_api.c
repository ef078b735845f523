/*
 * seq_api.c: the public entry points of crdt/text.h: local sequence ops
 * are computed here (origins, ids, ranges) and recorded through txn.c,
 * which applies them by the same path as remote ones.
 */
#include <stdlib.h>
#include <string.h>

#include "seq_int.h"
#include "view.h"

static int
write_seq(crdt_txn *t, const char *coll, const char *doc, const char *field,
          unsigned char kind, crdt__seq **out)
{
    crdt__seqkey key;

    crdt__seqkey_make(&key, coll, strlen(coll), doc, strlen(doc), field,
                      strlen(field), kind);
    return crdt__seq_for_write(out, crdt__txn_wctx(t), &key);
}

static void
op_names(crdt_op *op, crdt_op_kind kind, const char *coll, const char *doc,
         const char *field, uint64_t pos)
{
    memset(op, 0, sizeof *op);
    op->kind = kind;
    op->coll = coll;
    op->coll_len = strlen(coll);
    op->doc = doc;
    op->doc_len = strlen(doc);
    op->field = field;
    op->field_len = strlen(field);
    op->pos = pos;
}

static int
seq_insert(crdt_txn *t, unsigned char kind, const char *coll,
           const char *doc, const char *field, uint64_t pos,
           const char *utf8, size_t len, const crdt_value *v)
{
    crdt__seq *s;
    crdt_op op;
    int rc;

    op_names(&op, kind == 'T' ? CRDT_OP_TINS : CRDT_OP_LINS, coll, doc,
             field, pos);
    if ((rc = write_seq(t, coll, doc, field, kind, &s)) < 0 ||
        (rc = crdt__seq_origins(s, pos, &op.left, &op.right)) < 0)
        return rc;
    if (kind == 'T') {
        op.text = utf8;
        op.text_len = len;
        for (size_t i = 0; i < len; i++)
            op.len += ((unsigned char)utf8[i] & 0xc0) != 0x80;
    } else {
        op.value = *v;
        op.len = 1;
    }
    if ((rc = crdt__txn_seq_ids(t, op.len, &op.ctr)) < 0)
        return rc;
    return crdt__txn_add_op(t, &op);
}

int
crdt_txn_text_insert(crdt_txn *t, const char *coll, const char *doc,
                     const char *field, uint64_t pos, const char *utf8,
                     size_t len)
{
    int rc = crdt__txn_check(t, coll, doc, field, CRDT_FIELD_TEXT);

    if (rc < 0)
        return rc;
    if (utf8 == NULL && len > 0)
        return CRDT_EINVAL;
    if (len == 0)
        return CRDT_OK;
    if (len > CRDT_TEXT_INSERT_MAX)
        return CRDT_ELIMIT;
    if (memchr(utf8, 0, len) != NULL || !crdt__utf8_valid(utf8, len))
        return CRDT_EINVAL;
    return seq_insert(t, 'T', coll, doc, field, pos, utf8, len, NULL);
}

static int
value_ok(const crdt_value *v)
{
    unsigned char *b;
    int n;

    if (v == NULL || (unsigned)v->type > CRDT_VBYTES)
        return CRDT_EINVAL;
    if ((v->type == CRDT_VSTRING || v->type == CRDT_VBYTES) &&
        v->u.s.ptr == NULL && v->u.s.len > 0)
        return CRDT_EINVAL;
    if (v->type == CRDT_VSTRING && !crdt__utf8_valid(v->u.s.ptr, v->u.s.len))
        return CRDT_EINVAL;
    if ((b = malloc(CRDT__LIST_VALUE_MAX)) == NULL)
        return CRDT_ENOMEM;
    n = crdt__value_bytes(b, CRDT__LIST_VALUE_MAX, v);
    free(b);
    return n < 0 ? CRDT_ELIMIT : CRDT_OK;
}

int
crdt_txn_list_insert(crdt_txn *t, const char *coll, const char *doc,
                     const char *field, uint64_t pos, const crdt_value *v)
{
    int rc = crdt__txn_check(t, coll, doc, field, CRDT_FIELD_LIST);

    if (rc < 0 || (rc = value_ok(v)) < 0)
        return rc;
    return seq_insert(t, 'L', coll, doc, field, pos, NULL, 0, v);
}

static int
seq_delete(crdt_txn *t, unsigned char kind, const char *coll,
           const char *doc, const char *field, uint64_t pos, uint64_t len)
{
    crdt__seq *s;
    crdt__enc e;
    crdt_op op;
    int rc = crdt__txn_check(t, coll, doc, field,
                             kind == 'T' ? CRDT_FIELD_TEXT : CRDT_FIELD_LIST);

    if (rc < 0 || (rc = write_seq(t, coll, doc, field, kind, &s)) < 0)
        return rc;
    if (!s->has_header)
        return CRDT_ENOTFOUND;
    if (pos > crdt__seq_len(s) || len > crdt__seq_len(s) - pos)
        return CRDT_EINVAL;
    if (len == 0)
        return CRDT_OK;
    op_names(&op, kind == 'T' ? CRDT_OP_TDEL : CRDT_OP_LDEL, coll, doc,
             field, pos);
    op.len = len;
    crdt__enc_init(&e);
    rc = crdt__seq_ranges(s, pos, len, &e);
    if (rc == CRDT_OK) {
        op.ranges = (const unsigned char *)e.sb.data;
        op.ranges_len = e.sb.size;
        rc = crdt__txn_add_op(t, &op);
    }
    crdt__enc_free(&e);
    return rc;
}

int
crdt_txn_text_delete(crdt_txn *t, const char *coll, const char *doc,
                     const char *field, uint64_t pos, uint64_t len)
{
    return seq_delete(t, 'T', coll, doc, field, pos, len);
}

int
crdt_txn_list_delete(crdt_txn *t, const char *coll, const char *doc,
                     const char *field, uint64_t pos, uint64_t len)
{
    return seq_delete(t, 'L', coll, doc, field, pos, len);
}

int
crdt_txn_list_set(crdt_txn *t, const char *coll, const char *doc,
                  const char *field, uint64_t pos, const crdt_value *v)
{
    crdt__seq *s;
    crdt_op op;
    int rc = crdt__txn_check(t, coll, doc, field, CRDT_FIELD_LIST);

    if (rc < 0 || (rc = value_ok(v)) < 0 ||
        (rc = write_seq(t, coll, doc, field, 'L', &s)) < 0)
        return rc;
    if (!s->has_header)
        return CRDT_ENOTFOUND;
    if (pos >= crdt__seq_len(s))
        return CRDT_EINVAL;
    op_names(&op, CRDT_OP_LSET, coll, doc, field, pos);
    op.value = *v;
    if ((rc = crdt__seq_id_at(s, pos, &op.target)) < 0)
        return rc;
    return crdt__txn_add_op(t, &op);
}

/* ---- deleting fields and documents ---- */

typedef struct {
    char names[64][CRDT_NAME_MAX + 1];
    int kinds[64];
    size_t n;
    int more;
} seq_fields;

static int
collect_seq(const crdt_field *f, void *ctx)
{
    seq_fields *sf = ctx;

    if (f->kind != CRDT_FIELD_TEXT && f->kind != CRDT_FIELD_LIST)
        return 0;
    if (sf->n == 64) {
        sf->more = 1;
        return 0;
    }
    snprintf(sf->names[sf->n], sizeof sf->names[0], "%s", f->name);
    sf->kinds[sf->n++] = f->kind;
    return 0;
}

static int
clear_one(crdt_txn *t, const char *coll, const char *doc, const char *field)
{
    static const unsigned char kinds[2] = { 'T', 'L' };
    int rc;

    for (int i = 0; i < 2; i++) {
        crdt__seq *s;
        uint64_t n;
        if ((rc = write_seq(t, coll, doc, field, kinds[i], &s)) < 0)
            return rc;
        if (!s->has_header || (n = crdt__seq_len(s)) == 0)
            continue;
        if ((rc = seq_delete(t, kinds[i], coll, doc, field, 0, n)) < 0 &&
            rc != CRDT_ETYPE)
            return rc;
        if (rc == CRDT_ETYPE) {
            /* the field shows as another type; delete under the hood */
            crdt__enc e;
            crdt_op op;
            op_names(&op, kinds[i] == 'T' ? CRDT_OP_TDEL : CRDT_OP_LDEL,
                     coll, doc, field, 0);
            op.len = n;
            crdt__enc_init(&e);
            rc = crdt__seq_ranges(s, 0, n, &e);
            if (rc == CRDT_OK) {
                op.ranges = (const unsigned char *)e.sb.data;
                op.ranges_len = e.sb.size;
                rc = crdt__txn_add_op(t, &op);
            }
            crdt__enc_free(&e);
            if (rc < 0)
                return rc;
        }
    }
    return CRDT_OK;
}

int
crdt__txn_seq_clear(crdt_txn *t, const char *coll, const char *doc,
                    const char *field)
{
    crdt__wctx *w = crdt__txn_wctx(t);
    crdt__scratch sc = { 0 };
    seq_fields *sf;
    int rc;

    if (field != NULL)
        return clear_one(t, coll, doc, field);
    if ((sf = calloc(1, sizeof *sf)) == NULL)
        return CRDT_ENOMEM;
    sc.kind_only = 1;
    rc = crdt__view_doc(&sc, w->txn, w->state, coll, strlen(coll), doc,
                        strlen(doc), NULL, 0, collect_seq, sf);
    crdt__scratch_free(&sc);
    if (rc == CRDT_ENOTFOUND)
        rc = CRDT_OK;
    for (size_t i = 0; rc == CRDT_OK && i < sf->n; i++)
        rc = clear_one(t, coll, doc, sf->names[i]);
    if (rc == CRDT_OK && sf->more)
        rc = CRDT_ELIMIT;
    free(sf);
    return rc;
}

/* ---- reads ---- */

static int
read_seq(crdt_read *rd, const char *coll, const char *doc, const char *field,
         unsigned char kind, crdt__seq **out, crdt_replica **r,
         MDB_txn **txn, MDB_dbi *dbi)
{
    crdt__seqkey key;
    crdt__seq *s = NULL;
    int rc = CRDT_ENOTFOUND;

    if (rd == NULL || !crdt__name_ok(coll) || !crdt__name_ok(doc) ||
        !crdt__name_ok(field))
        return CRDT_EINVAL;
    crdt__read_parts(rd, r, txn, dbi);
    for (int i = 0; i < 2; i++) {
        unsigned char k = kind ? kind : (i == 0 ? 'T' : 'L');
        crdt__seqkey_make(&key, coll, strlen(coll), doc, strlen(doc), field,
                          strlen(field), k);
        if ((rc = crdt__seq_for_read(&s, *r, *txn, *dbi, &key)) < 0)
            return rc;
        if (s->has_header) {
            *out = s;
            return CRDT_OK;
        }
        crdt__seq_release(*r, s);
        if (kind)
            break;
    }
    return CRDT_ENOTFOUND;
}

int
crdt_read_seq_len(uint64_t *out, crdt_read *rd, const char *coll,
                  const char *doc, const char *field)
{
    crdt_replica *r;
    MDB_txn *txn;
    MDB_dbi dbi;
    crdt__seq *s;
    int rc;

    if (out == NULL)
        return CRDT_EINVAL;
    if ((rc = read_seq(rd, coll, doc, field, 0, &s, &r, &txn, &dbi)) < 0)
        return rc;
    *out = crdt__seq_len(s);
    crdt__seq_release(r, s);
    return CRDT_OK;
}

int
crdt_read_text_slice(char **out, size_t *out_len, crdt_read *rd,
                     const char *coll, const char *doc, const char *field,
                     uint64_t pos, uint64_t len)
{
    crdt_replica *r;
    MDB_txn *txn;
    MDB_dbi dbi;
    crdt__seq *s;
    int rc;

    if (out == NULL || out_len == NULL)
        return CRDT_EINVAL;
    if ((rc = read_seq(rd, coll, doc, field, 'T', &s, &r, &txn, &dbi)) < 0)
        return rc;
    rc = crdt__seq_text(s, pos, len, out, out_len);
    crdt__seq_release(r, s);
    return rc;
}

int
crdt_read_text(char **out, size_t *out_len, crdt_read *rd, const char *coll,
               const char *doc, const char *field)
{
    return crdt_read_text_slice(out, out_len, rd, coll, doc, field, 0,
                                UINT64_MAX);
}

void
crdt_text_free(char *s)
{
    free(s);
}

int
crdt_read_list(crdt_value **out, size_t *n, crdt_read *rd, const char *coll,
               const char *doc, const char *field)
{
    crdt_replica *r;
    MDB_txn *txn;
    MDB_dbi dbi;
    crdt__seq *s;
    int rc;

    if (out == NULL || n == NULL)
        return CRDT_EINVAL;
    if ((rc = read_seq(rd, coll, doc, field, 'L', &s, &r, &txn, &dbi)) < 0)
        return rc;
    rc = crdt__seq_list(s, txn, dbi, out, n);
    crdt__seq_release(r, s);
    return rc;
}

void
crdt_list_free(crdt_value *vals)
{
    free(vals);
}

int
crdt_read_cursor_at(crdt_cursor *out, crdt_read *rd, const char *coll,
                    const char *doc, const char *field, uint64_t pos)
{
    crdt_replica *r;
    MDB_txn *txn;
    MDB_dbi dbi;
    crdt__seq *s;
    int rc;

    if (out == NULL)
        return CRDT_EINVAL;
    if ((rc = read_seq(rd, coll, doc, field, 0, &s, &r, &txn, &dbi)) < 0)
        return rc;
    rc = crdt__seq_id_at(s, pos, &out->id);
    crdt__seq_release(r, s);
    return rc;
}

int
crdt_read_cursor_pos(uint64_t *out, crdt_read *rd, const char *coll,
                     const char *doc, const char *field, const crdt_cursor *c)
{
    crdt_replica *r;
    MDB_txn *txn;
    MDB_dbi dbi;
    crdt__seq *s;
    int rc;

    if (out == NULL || c == NULL)
        return CRDT_EINVAL;
    if ((rc = read_seq(rd, coll, doc, field, 0, &s, &r, &txn, &dbi)) < 0)
        return rc;
    *out = crdt__seq_index_of(s, &c->id);
    crdt__seq_release(r, s);
    return CRDT_OK;
}

void
crdt_cursor_bytes(unsigned char out[CRDT_CURSOR_BYTES], const crdt_cursor *c)
{
    memcpy(out, c->id.actor.b, CRDT_ACTOR_BYTES);
    crdt__be64(out + 8, c->id.ctr);
}

void
crdt_cursor_parse(crdt_cursor *out, const unsigned char in[CRDT_CURSOR_BYTES])
{
    memcpy(out->id.actor.b, in, CRDT_ACTOR_BYTES);
    out->id.ctr = crdt__rd64(in + 8);
}
