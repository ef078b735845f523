/*
 * op_codec.h: the op decoder's reads of the encodings ops use most
 * (codec.c, seq_codec.c), inlined where every op pays for them.
 *
 * Each fast read takes only an encoding it can check completely in a
 * few instructions (a fixint or a sized int, a fixarray, a fixstr or
 * str8, a bin8 actor, a nil name of format 2) and leaves everything
 * else, including any input too short for it, to the general reader in
 * mp.c, which makes the same checks and fails the same way. So a fast
 * read accepts exactly what the general one accepts and returns the
 * same value (tests/libcrdt/test_codec.c reads every encoding).
 */
#ifndef CRDT_OP_CODEC_H
#define CRDT_OP_CODEC_H

#include <string.h>

#include "internal.h"

/* A msgpack 64-bit field: one load (crdt__be_n is a byte loop). */
static inline uint64_t
op_be64(const unsigned char *p)
{
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && \
    __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t v;

    memcpy(&v, p, 8);
    return __builtin_bswap64(v);
#else
    return crdt__be_n(p, 8);
#endif
}

/* How many of the @p n bytes at @p p are plain ASCII without NUL
 * (0x01 .. 0x7f) before the first that is not; eight at a time. */
static inline size_t
op_ascii_run(const unsigned char *p, size_t n)
{
    const uint64_t ones = UINT64_C(0x0101010101010101),
                   highs = UINT64_C(0x8080808080808080);
    size_t i = 0;

    for (; i + 8 <= n; i += 8) { /* no byte 0, none >= 0x80 */
        uint64_t w;
        memcpy(&w, p + i, 8);
        if (((w | ((w - ones) & ~w)) & highs) != 0)
            break;
    }
    while (i < n && p[i] - 1u < 0x7fu)
        i++;
    return i;
}

static inline int
op_uint(crdt__mp *m, uint64_t *v)
{
    const unsigned char *p = m->p;

    if (p < m->end) {
        if (p[0] <= 0x7f) {
            *v = p[0];
            m->p = p + 1;
            return CRDT_OK;
        }
        if (p[0] == 0xcc && m->end - p >= 2) {
            *v = p[1];
            m->p = p + 2;
            return CRDT_OK;
        }
        if (p[0] == 0xcd && m->end - p >= 3) {
            *v = crdt__be_n(p + 1, 2);
            m->p = p + 3;
            return CRDT_OK;
        }
        if (p[0] == 0xce && m->end - p >= 5) {
            *v = crdt__be_n(p + 1, 4);
            m->p = p + 5;
            return CRDT_OK;
        }
    }
    return crdt__mp_uint(m, v);
}

/* A signed integer (crdt__mp_int). */
static inline int
op_int(crdt__mp *m, int64_t *v)
{
    const unsigned char *p = m->p;
    uint64_t u;

    if (p < m->end) {
        if (p[0] <= 0x7f || p[0] >= 0xe0) { /* positive, negative fixint */
            *v = (int8_t)p[0];
            m->p = p + 1;
            return CRDT_OK;
        }
        if (p[0] == 0xcf && m->end - p >= 9 &&
            (u = op_be64(p + 1)) <= (uint64_t)INT64_MAX) {
            *v = (int64_t)u;
            m->p = p + 9;
            return CRDT_OK;
        }
        if (p[0] == 0xd3 && m->end - p >= 9) {
            *v = (int64_t)op_be64(p + 1);
            m->p = p + 9;
            return CRDT_OK;
        }
    }
    return crdt__mp_int(m, v);
}

/* A scalar value (crdt__mp_value): an integer is read here, whatever
 * its encoding, as crdt__mp_value reads it (type, then crdt__mp_int). */
static inline int
op_value(crdt__mp *m, crdt_value *v)
{
    const unsigned char *p = m->p;

    if (p < m->end && (p[0] <= 0x7f || p[0] >= 0xe0 ||
                       (p[0] >= 0xcc && p[0] <= 0xcf) ||
                       (p[0] >= 0xd0 && p[0] <= 0xd3))) {
        v->type = CRDT_VINT;
        return op_int(m, &v->u.i);
    }
    return crdt__mp_value(m, v);
}

static inline int
op_array(crdt__mp *m, uint32_t *n)
{
    const unsigned char *p = m->p;

    /* a fixarray whose items can fit: one byte at least each */
    if (p < m->end && (p[0] & 0xf0) == 0x90 &&
        (size_t)(p[0] & 0x0f) <= (size_t)(m->end - p - 1)) {
        *n = p[0] & 0x0f;
        m->p = p + 1;
        return CRDT_OK;
    }
    return crdt__mp_array(m, n);
}

/* An actor: bin8 of CRDT_ACTOR_BYTES (crdt__mp_bin_fixed). */
static inline int
op_actor(crdt__mp *m, unsigned char *out)
{
    const unsigned char *p = m->p;

    if ((size_t)(m->end - p) >= 2 + CRDT_ACTOR_BYTES && p[0] == 0xc4 &&
        p[1] == CRDT_ACTOR_BYTES) {
        memcpy(out, p + 2, CRDT_ACTOR_BYTES);
        m->p = p + 2 + CRDT_ACTOR_BYTES;
        return CRDT_OK;
    }
    return crdt__mp_bin_fixed(m, out, CRDT_ACTOR_BYTES);
}

/* A string's bytes, unchecked (crdt__mp_str_bytes). */
static inline int
op_str_bytes(crdt__mp *m, const char **s, uint32_t *len)
{
    const unsigned char *p = m->p;
    size_t left = (size_t)(m->end - p);

    if (left >= 1 && (p[0] & 0xe0) == 0xa0 &&
        (size_t)(p[0] & 0x1f) <= left - 1) {
        *len = p[0] & 0x1f;
        *s = (const char *)p + 1;
        m->p = p + 1 + *len;
        return CRDT_OK;
    }
    if (left >= 2 && p[0] == 0xd9 && (size_t)p[1] <= left - 2) {
        *len = p[1];
        *s = (const char *)p + 2;
        m->p = p + 2 + *len;
        return CRDT_OK;
    }
    return crdt__mp_str_bytes(m, s, len);
}

/*
 * One of an op's names (@p which: 0 collection, 1 document, 2 field),
 * as crdt__op_name() reads it, whose general path this falls back to.
 * A nil of format 2 is the op before's name. A fixstr of plain ASCII
 * is checked here in the one pass the general reader would make; one
 * that is not (a NUL, UTF-8) but repeats the name held from the op
 * before (format 1 repeats every name) is that name, checked when it
 * was read, and is not checked again.
 */
static inline int
op_name(crdt__mp *m, const char **s, size_t *len, crdt_op_iter *ctx,
        int which)
{
    const unsigned char *p = m->p;
    const char **held;
    size_t *held_len, n, i;

    if (ctx == NULL || p >= m->end)
        return crdt__op_name(m, s, len, ctx, which);
    held = which == 0 ? &ctx->coll : which == 1 ? &ctx->doc : &ctx->field;
    held_len = which == 0 ? &ctx->coll_len
               : which == 1 ? &ctx->doc_len : &ctx->field_len;
    if (p[0] == 0xc0 && ctx->compact) {
        if (*held == NULL)
            return CRDT_EPROTO; /* no op before named one */
        m->p = p + 1;
        *s = *held;
        *len = *held_len;
        return CRDT_OK;
    }
    if ((p[0] & 0xe0) != 0xa0)
        return crdt__op_name(m, s, len, ctx, which);
    n = p[0] & 0x1f; /* a fixstr: at most 31 < CRDT_NAME_MAX bytes */
    if (n == 0 || n > (size_t)(m->end - p - 1))
        return crdt__op_name(m, s, len, ctx, which);
    for (i = 1; i <= n && p[i] - 1u < 0x7fu; i++) /* short: bytewise */
        ;
    if (i <= n &&
        !(*held != NULL && *held_len == n && memcmp(*held, p + 1, n) == 0))
        return crdt__op_name(m, s, len, ctx, which); /* the full check */
    *s = (const char *)p + 1;
    *len = n;
    *held = *s;
    *held_len = n;
    m->p = p + 1 + n;
    return CRDT_OK;
}

#endif
