/*
 * seq_codec.c: the byte layout of the sequence ops (docs/storage.md).
 *
 *   id     = nil | [ actor: bin8, ctr: uint ]          (nil: none)
 *   TINS   = [ 6,  coll, doc, field, pos, ctr, left: id, right: id, text: str ]
 *   TDEL   = [ 7,  coll, doc, field, pos, len, ranges ]
 *   LINS   = [ 8,  coll, doc, field, pos, ctr, left: id, right: id, value ]
 *   LDEL   = [ 9,  coll, doc, field, pos, len, ranges ]
 *   LSET   = [ 10, coll, doc, field, pos, target: id, value ]
 *   ranges = [ actor: bin8, ctr: uint, len: uint, ... ]  (3 items a range)
 *
 * In a format-2 change (codec.c) a name may be nil (the op before's), an
 * id may be a bare ctr: uint, an element of the change's own actor, a
 * range's actor may be nil (the change's own), and an insert's ctr may be
 * nil: the next after the change's previous insert (its ctr + len).
 *
 * Invariants: a decoded op is fully checked (names, UTF-8 text without
 * NUL, counters from 1 that never wrap, a range count within the
 * limits); the text's code points are counted into op->len.
 */
#include <string.h>

#include "internal.h"
#include "op_codec.h"
#include "crdt/text.h"

#define CTR_MAX (UINT64_C(1) << 62) /* ids stay far from wrapping */
#define RANGES_MAX 1000000u

/* Inlined: an insert reads two of them, mostly nil or bare ctrs. */
static inline int
dec_id(crdt__mp *m, crdt_seq_id *id, int may_be_nil, const crdt_op_iter *ctx)
{
    uint32_t n;

    memset(id, 0, sizeof *id);
    if (m->p < m->end && *m->p == 0xc0) {
        m->p++;
        return may_be_nil ? CRDT_OK : CRDT_EPROTO;
    }
    if (ctx != NULL && ctx->compact && m->p < m->end &&
        (*m->p < 0x80 || (*m->p >= 0xcc && *m->p <= 0xd3))) {
        id->actor = ctx->self; /* an element of the change's own actor */
        if (op_uint(m, &id->ctr) < 0 || id->ctr == 0 || id->ctr >= CTR_MAX)
            return CRDT_EPROTO;
        return CRDT_OK;
    }
    if (op_array(m, &n) < 0 || n != 2 ||
        op_actor(m, id->actor.b) < 0 ||
        op_uint(m, &id->ctr) < 0 || id->ctr == 0 || id->ctr >= CTR_MAX)
        return CRDT_EPROTO;
    return CRDT_OK;
}

static int
enc_id(crdt__enc *e, const crdt_seq_id *id, const crdt_op_iter *ctx)
{
    if (id->ctr == 0)
        return msgpack_pack_nil(&e->pk) < 0 ? CRDT_ENOMEM : CRDT_OK;
    if (ctx != NULL && ctx->compact &&
        memcmp(id->actor.b, ctx->self.b, CRDT_ACTOR_BYTES) == 0)
        return msgpack_pack_uint64(&e->pk, id->ctr) < 0 ? CRDT_ENOMEM
                                                        : CRDT_OK;
    if (msgpack_pack_array(&e->pk, 2) < 0 ||
        crdt__enc_bin(e, id->actor.b, CRDT_ACTOR_BYTES) < 0 ||
        msgpack_pack_uint64(&e->pk, id->ctr) < 0)
        return CRDT_ENOMEM;
    return CRDT_OK;
}

/* Code points in valid UTF-8: the bytes that are not continuations. */
static uint64_t
cp_count(const char *s, size_t len)
{
    uint64_t n = 0;

    for (size_t i = 0; i < len; i++)
        n += ((unsigned char)s[i] & 0xc0) != 0x80;
    return n;
}

/* An insert's text: no NUL, valid UTF-8; 1 with its code points in
 * @p cps, else 0. Typed text is mostly ASCII: its leading ASCII bytes
 * are checked and counted in one pass, eight at a time, the rest as
 * before. */
static int
text_ok(const char *s, size_t len, uint64_t *cps)
{
    size_t i = op_ascii_run((const unsigned char *)s, len);

    if (i < len && (memchr(s + i, 0, len - i) != NULL ||
                    !crdt__utf8_valid(s + i, len - i)))
        return 0;
    *cps = i + cp_count(s + i, len - i);
    return 1;
}

int
crdt__seq_op_decode(crdt_op *op, crdt__mp *m, uint32_t n, crdt_op_iter *ctx)
{
    static const uint32_t want[] = { 9, 7, 9, 7, 7 };
    const char *txt;
    uint32_t tl, rn;
    const unsigned char *r0;

    if (n != want[op->kind - CRDT_OP_TINS])
        return CRDT_EPROTO;
    if (op_name(m, &op->coll, &op->coll_len, ctx, 0) < 0 ||
        op_name(m, &op->doc, &op->doc_len, ctx, 1) < 0 ||
        op_name(m, &op->field, &op->field_len, ctx, 2) < 0 ||
        op_uint(m, &op->pos) < 0 || op->pos >= CTR_MAX)
        return CRDT_EPROTO;
    if (ctx != NULL && ctx->compact) {
        op->author = ctx->self;
        op->has_author = 1;
    }
    switch (op->kind) {
    case CRDT_OP_TINS:
    case CRDT_OP_LINS:
        if (ctx != NULL && ctx->compact && m->p < m->end && *m->p == 0xc0) {
            if (ctx->next_ctr == 0)
                return CRDT_EPROTO; /* no insert before it */
            m->p++;
            op->ctr = ctx->next_ctr;
        } else if (op_uint(m, &op->ctr) < 0) {
            return CRDT_EPROTO;
        }
        if (op->ctr == 0 ||
            op->ctr >= CTR_MAX - CRDT_TEXT_INSERT_MAX ||
            dec_id(m, &op->left, 1, ctx) < 0 ||
            dec_id(m, &op->right, 1, ctx) < 0)
            return CRDT_EPROTO;
        if (op->kind == CRDT_OP_LINS) {
            const unsigned char *v0 = m->p;
            if (op_value(m, &op->value) < 0 ||
                (size_t)(m->p - v0) > CRDT__LIST_VALUE_MAX)
                return CRDT_EPROTO;
            op->len = 1;
            if (ctx != NULL)
                ctx->next_ctr = op->ctr + 1;
            return CRDT_OK;
        }
        /* text_ok() checks the text: crdt__mp_str would check it twice */
        if (op_str_bytes(m, &txt, &tl) < 0 || tl == 0 ||
            tl > CRDT_TEXT_INSERT_MAX || !text_ok(txt, tl, &op->len))
            return CRDT_EPROTO;
        op->text = txt;
        op->text_len = tl;
        if (ctx != NULL)
            ctx->next_ctr = op->ctr + op->len;
        return CRDT_OK;
    case CRDT_OP_TDEL:
    case CRDT_OP_LDEL:
        if (op_uint(m, &op->len) < 0 || op->len == 0 ||
            op->len >= CTR_MAX)
            return CRDT_EPROTO;
        r0 = m->p;
        if (op_array(m, &rn) < 0 || rn == 0 || rn % 3 != 0 ||
            rn / 3 > RANGES_MAX)
            return CRDT_EPROTO;
        for (uint32_t i = 0; i < rn / 3; i++) {
            unsigned char a[CRDT_ACTOR_BYTES];
            uint64_t c, l;
            if (op->has_author && m->p < m->end && *m->p == 0xc0)
                m->p++; /* the change's own actor */
            else if (op_actor(m, a) < 0)
                return CRDT_EPROTO;
            if (op_uint(m, &c) < 0 || op_uint(m, &l) < 0 ||
                c == 0 || l == 0 || c >= CTR_MAX || l >= CTR_MAX - c)
                return CRDT_EPROTO;
        }
        op->ranges = r0;
        op->ranges_len = (size_t)(m->p - r0);
        return CRDT_OK;
    case CRDT_OP_LSET: {
        const unsigned char *v0;
        if (dec_id(m, &op->target, 0, ctx) < 0)
            return CRDT_EPROTO;
        v0 = m->p;
        if (op_value(m, &op->value) < 0 ||
            (size_t)(m->p - v0) > CRDT__LIST_VALUE_MAX)
            return CRDT_EPROTO;
        return CRDT_OK;
    }
    default:
        return CRDT_EPROTO;
    }
}

/* The ranges of @p op, each actor spelled out, or (in a format-2
 * context) nil for the change's own actor. */
static int
enc_ranges(crdt__enc *e, const crdt_op *op, const crdt_op_iter *ctx)
{
    crdt_op_ranges it;
    crdt_seq_range g;
    int rc;

    if (!op->has_author && (ctx == NULL || !ctx->compact))
        return crdt__enc_raw(e, op->ranges, op->ranges_len); /* as is */
    crdt_op_ranges_init(&it, op);
    if (it.p == NULL ||
        msgpack_pack_array(&e->pk, (size_t)(3 * it.left)) < 0)
        return it.p == NULL ? CRDT_EINVAL : CRDT_ENOMEM;
    while ((rc = crdt_op_ranges_next(&g, &it)) == CRDT_OK) {
        if (ctx != NULL && ctx->compact &&
            memcmp(g.actor.b, ctx->self.b, CRDT_ACTOR_BYTES) == 0)
            rc = msgpack_pack_nil(&e->pk) < 0 ? CRDT_ENOMEM : CRDT_OK;
        else
            rc = crdt__enc_bin(e, g.actor.b, CRDT_ACTOR_BYTES);
        if (rc < 0 || msgpack_pack_uint64(&e->pk, g.ctr) < 0 ||
            msgpack_pack_uint64(&e->pk, g.len) < 0)
            return CRDT_ENOMEM;
    }
    return rc == CRDT_ENOTFOUND ? crdt__enc_ok(e) : rc;
}

int
crdt__seq_op_encode(crdt__enc *e, const crdt_op *op, crdt_op_iter *ctx)
{
    static const uint32_t want[] = { 9, 7, 9, 7, 7 };
    int rc;

    if (op->kind < CRDT_OP_TINS || op->kind > CRDT_OP_LSET)
        return CRDT_EINVAL;
    if (msgpack_pack_array(&e->pk, want[op->kind - CRDT_OP_TINS]) < 0 ||
        msgpack_pack_uint64(&e->pk, op->kind) < 0)
        return CRDT_ENOMEM;
    if ((rc = crdt__op_enc_name(e, op->coll, op->coll_len, ctx, 0)) < 0 ||
        (rc = crdt__op_enc_name(e, op->doc, op->doc_len, ctx, 1)) < 0 ||
        (rc = crdt__op_enc_name(e, op->field, op->field_len, ctx, 2)) < 0)
        return rc;
    if (msgpack_pack_uint64(&e->pk, op->pos) < 0)
        return CRDT_ENOMEM;
    switch (op->kind) {
    case CRDT_OP_TINS:
    case CRDT_OP_LINS:
        if (ctx != NULL && ctx->compact && ctx->next_ctr == op->ctr) {
            if (msgpack_pack_nil(&e->pk) < 0)
                return CRDT_ENOMEM;
        } else if (msgpack_pack_uint64(&e->pk, op->ctr) < 0) {
            return CRDT_ENOMEM;
        }
        if (ctx != NULL)
            ctx->next_ctr = op->ctr + op->len;
        if ((rc = enc_id(e, &op->left, ctx)) < 0 ||
            (rc = enc_id(e, &op->right, ctx)) < 0)
            return rc;
        if (op->kind == CRDT_OP_LINS)
            return crdt__enc_value(e, &op->value);
        return crdt__enc_str(e, op->text, op->text_len);
    case CRDT_OP_TDEL:
    case CRDT_OP_LDEL:
        if (msgpack_pack_uint64(&e->pk, op->len) < 0)
            return CRDT_ENOMEM;
        if (op->ranges == NULL || op->ranges_len == 0)
            return CRDT_EINVAL;
        return enc_ranges(e, op, ctx);
    case CRDT_OP_LSET:
        if ((rc = enc_id(e, &op->target, ctx)) < 0)
            return rc;
        return crdt__enc_value(e, &op->value);
    default:
        return CRDT_EINVAL;
    }
}

void
crdt_op_ranges_init(crdt_op_ranges *it, const crdt_op *op)
{
    crdt__mp m;
    uint32_t n = 0;

    memset(it, 0, sizeof *it);
    if (op != NULL && op->has_author) {
        it->author = op->author;
        it->has_author = 1;
    }
    if (op == NULL || op->ranges == NULL ||
        (op->kind != CRDT_OP_TDEL && op->kind != CRDT_OP_LDEL))
        return;
    m.p = op->ranges;
    m.end = op->ranges + op->ranges_len;
    if (op_array(&m, &n) == CRDT_OK) {
        it->p = m.p;
        it->end = m.end;
        it->left = n / 3;
    }
}

int
crdt_op_ranges_next(crdt_seq_range *out, crdt_op_ranges *it)
{
    crdt__mp m;

    if (it->left == 0)
        return CRDT_ENOTFOUND;
    m.p = it->p;
    m.end = it->end;
    if (it->has_author && m.p < m.end && *m.p == 0xc0) {
        m.p++;
        out->actor = it->author;
    } else if (op_actor(&m, out->actor.b) < 0) {
        it->left = 0;
        return CRDT_EPROTO;
    }
    if (op_uint(&m, &out->ctr) < 0 || op_uint(&m, &out->len) < 0 ||
        out->ctr == 0 || out->len == 0) {
        it->left = 0;
        return CRDT_EPROTO;
    }
    it->p = m.p;
    it->left--;
    return CRDT_OK;
}
