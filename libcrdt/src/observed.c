/*
 * observed.c: re-encoding the observed part of removes through a mapping
 * of field names and set elements (what a lens does to an op).
 *
 *   SREM       [actor, seq]*                      (no names inside)
 *   DEL_FIELD  [ [actor, count, sum]*, [elem, actor, seq]* ]
 *   DEL_DOC    [ field, fobs ]*
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static int
map_fobs(crdt__enc *e, crdt__mp *m, const char *field, size_t fl,
         crdt_map_elem_fn map_elem, void *ctx)
{
    const unsigned char *start;
    uint32_t n, cn, sn;
    int rc;

    if (crdt__mp_array(m, &n) < 0 || n != 2)
        return CRDT_EPROTO;
    start = m->p;
    if (crdt__mp_skip(m) < 0)
        return CRDT_EPROTO;
    msgpack_pack_array(&e->pk, 2);
    crdt__enc_raw(e, (const char *)start, (size_t)(m->p - start));
    (void)cn;
    if (crdt__mp_array(m, &sn) < 0 || sn % 3 != 0)
        return CRDT_EPROTO;
    msgpack_pack_array(&e->pk, sn);
    for (uint32_t i = 0; i < sn / 3; i++) {
        crdt_value in, out;
        const unsigned char *a;
        uint32_t al;
        uint64_t seq;

        if (crdt__mp_value(m, &in) < 0 || crdt__mp_bin(m, &a, &al) < 0 ||
            al != 8 || crdt__mp_uint(m, &seq) < 0)
            return CRDT_EPROTO;
        out = in;
        if (map_elem != NULL &&
            (rc = map_elem(&out, field, fl, &in, ctx)) < 0)
            return rc;
        if ((rc = crdt__enc_value(e, &out)) < 0)
            return rc;
        crdt__enc_bin(e, a, 8);
        msgpack_pack_uint64(&e->pk, seq);
    }
    return CRDT_OK;
}

int
crdt_observed_map(unsigned char **buf_out, size_t *len_out,
                  const crdt_op *op, crdt_map_field_fn map_field,
                  crdt_map_elem_fn map_elem, void *ctx)
{
    crdt__mp m = { op->observed, op->observed + op->observed_len };
    crdt__enc e, parts;
    uint32_t n;
    size_t kept = 0;
    int rc = CRDT_OK;

    if (buf_out == NULL || len_out == NULL || op->observed == NULL)
        return CRDT_EINVAL;
    crdt__enc_init(&e);
    switch (op->kind) {
    case CRDT_OP_SREM:
        crdt__enc_raw(&e, (const char *)op->observed,
                              op->observed_len);
        break;
    case CRDT_OP_DEL_FIELD:
        rc = map_fobs(&e, &m, op->field, op->field_len, map_elem, ctx);
        break;
    case CRDT_OP_DEL_DOC:
        crdt__enc_init(&parts);
        if (crdt__mp_array(&m, &n) < 0 || n % 2 != 0) {
            rc = CRDT_EPROTO;
        }
        for (uint32_t i = 0; rc == CRDT_OK && i < n / 2; i++) {
            const char *f, *nf = NULL;
            uint32_t fl;
            crdt__enc one;

            if (crdt__mp_str(&m, &f, &fl) < 0) {
                rc = CRDT_EPROTO;
                break;
            }
            rc = map_field ? map_field(&nf, f, fl, ctx) : CRDT_OK;
            if (rc == CRDT_ENOTFOUND) { /* the lens removed it */
                rc = crdt__mp_skip(&m) < 0 ? CRDT_EPROTO : CRDT_OK;
                continue;
            }
            if (rc < 0)
                break;
            crdt__enc_init(&one);
            if (nf != NULL)
                crdt__enc_str(&parts, nf, strlen(nf));
            else
                crdt__enc_str(&parts, f, fl);
            rc = map_fobs(&one, &m, f, fl, map_elem, ctx);
            if (rc == CRDT_OK)
                rc = crdt__enc_ok(&one);
            crdt__enc_raw(&parts, one.sb.data, one.sb.size);
            crdt__enc_free(&one);
            kept++;
        }
        if (rc == CRDT_OK)
            rc = crdt__enc_ok(&parts);
        if (rc == CRDT_OK) {
            msgpack_pack_array(&e.pk, 2 * kept);
            crdt__enc_raw(&e, parts.sb.data, parts.sb.size);
        }
        crdt__enc_free(&parts);
        break;
    default:
        rc = CRDT_EINVAL;
    }
    if (rc == CRDT_OK)
        rc = crdt__enc_ok(&e);
    if (rc < 0) {
        crdt__enc_free(&e);
        return rc;
    }
    *buf_out = (unsigned char *)e.sb.data;
    *len_out = e.sb.size;
    return CRDT_OK;
}
