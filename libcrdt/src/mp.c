/*
 * mp.c: a bounded, zero-copy msgpack reader for everything we decode
 * (changes, ops, version vectors, stored records).
 *
 * Why not msgpack-c's object unpacker here: it allocates an array of a
 * declared element count before checking that the input can hold that
 * many elements, so a five-byte input can ask for gigabytes, and it
 * copies every object. This reader never allocates, checks each declared
 * count against the bytes left (every element takes at least one byte),
 * limits nesting, and returns views into the input.
 * Encoding still goes through msgpack-c's packer (codec.c).
 *
 * Invariants:
 *  (1) No read goes past m->end; on any error m is left unchanged.
 *  (2) A declared count is accepted only if count <= bytes left.
 */
#include <assert.h>
#include <string.h>

#include "internal.h"

#define MP_DEPTH_MAX 32

static int
need(const crdt__mp *m, size_t n)
{
    assert(m->p <= m->end); /* keeps (1): else the subtraction wraps */
    return (size_t)(m->end - m->p) >= n ? CRDT_OK : CRDT_EPROTO;
}

/* Read a container header; @p base is the fix-type base, @p mask its
 * size bits, @p t16/@p t32 the 16- and 32-bit type bytes. */
static int
container(crdt__mp *m, uint32_t *n, unsigned base, unsigned mask,
          unsigned t16, unsigned t32, size_t per_elem)
{
    const unsigned char *p = m->p;
    size_t hdr;
    uint64_t count;

    if (need(m, 1) < 0)
        return CRDT_EPROTO;
    if ((p[0] & ~mask) == base) {
        count = p[0] & mask;
        hdr = 1;
    } else if (p[0] == t16) {
        if (need(m, 3) < 0)
            return CRDT_EPROTO;
        count = crdt__be_n(p + 1, 2);
        hdr = 3;
    } else if (p[0] == t32) {
        if (need(m, 5) < 0)
            return CRDT_EPROTO;
        count = crdt__be_n(p + 1, 4);
        hdr = 5;
    } else {
        return CRDT_EPROTO;
    }
    if (count * per_elem > (uint64_t)(m->end - p - hdr))
        return CRDT_EPROTO; /* keeps (2) */
    m->p += hdr;
    *n = (uint32_t)count;
    return CRDT_OK;
}

int
crdt__mp_array(crdt__mp *m, uint32_t *n)
{
    return container(m, n, 0x90, 0x0f, 0xdc, 0xdd, 1);
}

int
crdt__mp_map(crdt__mp *m, uint32_t *n)
{
    return container(m, n, 0x80, 0x0f, 0xde, 0xdf, 2);
}

int
crdt__mp_uint(crdt__mp *m, uint64_t *v)
{
    const unsigned char *p = m->p;
    int64_t s;

    if (need(m, 1) < 0)
        return CRDT_EPROTO;
    switch (p[0]) {
    case 0xcc: if (need(m, 2) < 0) return CRDT_EPROTO;
        *v = p[1]; m->p += 2; return CRDT_OK;
    case 0xcd: if (need(m, 3) < 0) return CRDT_EPROTO;
        *v = crdt__be_n(p + 1, 2); m->p += 3; return CRDT_OK;
    case 0xce: if (need(m, 5) < 0) return CRDT_EPROTO;
        *v = crdt__be_n(p + 1, 4); m->p += 5; return CRDT_OK;
    case 0xcf: if (need(m, 9) < 0) return CRDT_EPROTO;
        *v = crdt__be_n(p + 1, 8); m->p += 9; return CRDT_OK;
    default:
        break;
    }
    if (p[0] <= 0x7f) {
        *v = p[0];
        m->p += 1;
        return CRDT_OK;
    }
    /* A signed encoding of a non-negative number is still a uint. */
    if (crdt__mp_int(m, &s) == CRDT_OK) {
        if (s < 0) {
            m->p = p;
            return CRDT_EPROTO;
        }
        *v = (uint64_t)s;
        return CRDT_OK;
    }
    return CRDT_EPROTO;
}

int
crdt__mp_int(crdt__mp *m, int64_t *v)
{
    const unsigned char *p = m->p;
    uint64_t u;

    if (need(m, 1) < 0)
        return CRDT_EPROTO;
    if (p[0] <= 0x7f) {
        *v = p[0];
        m->p += 1;
        return CRDT_OK;
    }
    if (p[0] >= 0xe0) {
        *v = (int8_t)p[0];
        m->p += 1;
        return CRDT_OK;
    }
    switch (p[0]) {
    case 0xd0: if (need(m, 2) < 0) return CRDT_EPROTO;
        *v = (int8_t)p[1]; m->p += 2; return CRDT_OK;
    case 0xd1: if (need(m, 3) < 0) return CRDT_EPROTO;
        *v = (int16_t)crdt__be_n(p + 1, 2); m->p += 3; return CRDT_OK;
    case 0xd2: if (need(m, 5) < 0) return CRDT_EPROTO;
        *v = (int32_t)crdt__be_n(p + 1, 4); m->p += 5; return CRDT_OK;
    case 0xd3: if (need(m, 9) < 0) return CRDT_EPROTO;
        *v = (int64_t)crdt__be_n(p + 1, 8); m->p += 9; return CRDT_OK;
    case 0xcc: case 0xcd: case 0xce: case 0xcf:
        if (crdt__mp_uint(m, &u) < 0)
            return CRDT_EPROTO;
        if (u > (uint64_t)INT64_MAX) {
            m->p = p;
            return CRDT_EPROTO;
        }
        *v = (int64_t)u;
        return CRDT_OK;
    default:
        return CRDT_EPROTO;
    }
}

static int
blob(crdt__mp *m, const unsigned char **out, uint32_t *len, int str)
{
    const unsigned char *p = m->p;
    size_t hdr;
    uint64_t n;

    if (need(m, 1) < 0)
        return CRDT_EPROTO;
    if (str && (p[0] & 0xe0) == 0xa0) {
        n = p[0] & 0x1f;
        hdr = 1;
    } else if (p[0] == (str ? 0xd9 : 0xc4)) {
        if (need(m, 2) < 0)
            return CRDT_EPROTO;
        n = p[1];
        hdr = 2;
    } else if (p[0] == (str ? 0xda : 0xc5)) {
        if (need(m, 3) < 0)
            return CRDT_EPROTO;
        n = crdt__be_n(p + 1, 2);
        hdr = 3;
    } else if (p[0] == (str ? 0xdb : 0xc6)) {
        if (need(m, 5) < 0)
            return CRDT_EPROTO;
        n = crdt__be_n(p + 1, 4);
        hdr = 5;
    } else {
        return CRDT_EPROTO;
    }
    if (n > (uint64_t)(m->end - p - hdr))
        return CRDT_EPROTO;
    *out = p + hdr;
    *len = (uint32_t)n;
    m->p = p + hdr + n;
    return CRDT_OK;
}

int
crdt__mp_bin(crdt__mp *m, const unsigned char **p, uint32_t *len)
{
    return blob(m, p, len, 0);
}

int
crdt__mp_bin_fixed(crdt__mp *m, unsigned char *out, uint32_t len)
{
    const unsigned char *save = m->p, *p;
    uint32_t n;

    if (blob(m, &p, &n, 0) < 0)
        return CRDT_EPROTO;
    if (n != len) {
        m->p = save;
        return CRDT_EPROTO;
    }
    memcpy(out, p, len);
    return CRDT_OK;
}

int
crdt__mp_str(crdt__mp *m, const char **p, uint32_t *len)
{
    const unsigned char *s;
    const unsigned char *save = m->p;

    if (blob(m, &s, len, 1) < 0)
        return CRDT_EPROTO;
    if (!crdt__utf8_valid((const char *)s, *len)) {
        m->p = save;
        return CRDT_EPROTO;
    }
    *p = (const char *)s;
    return CRDT_OK;
}

int
crdt__mp_str_bytes(crdt__mp *m, const char **p, uint32_t *len)
{
    const unsigned char *s;

    if (blob(m, &s, len, 1) < 0)
        return CRDT_EPROTO;
    *p = (const char *)s;
    return CRDT_OK;
}

int
crdt__mp_name(crdt__mp *m, const char **p, uint32_t *len)
{
    const unsigned char *s, *save = m->p;
    uint32_t i = 0;

    if (blob(m, &s, len, 1) < 0 || *len == 0 || *len > CRDT_NAME_MAX)
        goto bad;
    /* one pass for the usual plain-ASCII name: no NUL, nothing >= 0x80 */
    while (i < *len && s[i] - 1u < 0x7fu)
        i++;
    if (i < *len && (memchr(s + i, 0, *len - i) != NULL ||
                     !crdt__utf8_valid((const char *)s + i, *len - i)))
        goto bad;
    *p = (const char *)s;
    return CRDT_OK;
bad:
    m->p = save;
    return CRDT_EPROTO;
}

int
crdt__mp_value(crdt__mp *m, crdt_value *v)
{
    const unsigned char *p = m->p;
    const unsigned char *b;
    uint32_t n;
    union {
        uint64_t u;
        double d;
    } bits;

    if (need(m, 1) < 0)
        return CRDT_EPROTO;
    switch (p[0]) {
    case 0xc0:
        *v = crdt_value_null();
        m->p += 1;
        return CRDT_OK;
    case 0xc2:
    case 0xc3:
        *v = crdt_value_bool(p[0] == 0xc3);
        m->p += 1;
        return CRDT_OK;
    case 0xcb:
        if (need(m, 9) < 0)
            return CRDT_EPROTO;
        bits.u = crdt__be_n(p + 1, 8);
        *v = crdt_value_double(bits.d);
        m->p += 9;
        return CRDT_OK;
    case 0xc4: case 0xc5: case 0xc6:
        if (crdt__mp_bin(m, &b, &n) < 0)
            return CRDT_EPROTO;
        *v = crdt_value_bytes(b, n);
        return CRDT_OK;
    default:
        break;
    }
    if ((p[0] & 0xe0) == 0xa0 || p[0] == 0xd9 || p[0] == 0xda ||
        p[0] == 0xdb) {
        const char *s;
        if (crdt__mp_str(m, &s, &n) < 0)
            return CRDT_EPROTO;
        *v = crdt_value_str(s, n);
        return CRDT_OK;
    }
    v->type = CRDT_VINT;
    return crdt__mp_int(m, &v->u.i);
}

/* Bytes of a scalar of fixed size by its first byte (0: not one). Every
 * such encoding is well-formed whatever its payload, as crdt__mp_value
 * and crdt__mp_uint read them: skip() steps over it without decoding
 * (most items of an op are small ints, nil or ids of fixed size). */
static size_t
fixed_size(unsigned char b)
{
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
        return 1;
    switch (b) {
    case 0xcc: case 0xd0: return 2;
    case 0xcd: case 0xd1: return 3;
    case 0xce: case 0xd2: case 0xca: return 5;
    case 0xcf: case 0xd3: case 0xcb: return 9;
    default: return 0;
    }
}

/* The bytes after the type byte @p c of a msgpack str/bin or fixed-size
 * item, read from @p p (@p avail bytes from the type byte on) into @p hdr
 * and @p n: 0 on success, -1 if cut short, 1 if @p c is neither. */
static int
flat_item(unsigned char c, const unsigned char *p, size_t avail, size_t *hdr,
          uint64_t *n)
{
    size_t fs = fixed_size(c), w;

    if (fs != 0) {
        *hdr = fs;
        *n = 0;
        return avail >= fs ? 0 : -1;
    }
    if ((c & 0xe0) == 0xa0) {
        *hdr = 1;
        *n = c & 0x1f;
        return 0;
    }
    switch (c) {
    case 0xc4: case 0xd9: w = 1; break;
    case 0xc5: case 0xda: w = 2; break;
    case 0xc6: case 0xdb: w = 4; break;
    default: return 1;
    }
    if (avail < 1 + w)
        return -1;
    *hdr = 1 + w;
    *n = crdt__be_n(p + 1, w);
    return 0;
}

/* The element count of the array or map whose type byte is @p c (a map
 * counts its keys and values), as flat_item() reports it. */
static int
container_items(unsigned char c, const unsigned char *p, size_t avail,
                size_t *hdr, uint64_t *n)
{
    size_t w;
    uint64_t per = 1;

    if ((c & 0xf0) == 0x90 || (c & 0xf0) == 0x80) {
        *hdr = 1;
        *n = (uint64_t)(c & 0x0f) << ((c & 0xf0) == 0x80);
        return 0;
    }
    switch (c) {
    case 0xdc: w = 2; break;
    case 0xdd: w = 4; break;
    case 0xde: w = 2; per = 2; break;
    case 0xdf: w = 4; per = 2; break;
    default: return 1;
    }
    if (avail < 1 + w)
        return -1;
    *hdr = 1 + w;
    *n = crdt__be_n(p + 1, w) * per;
    return 0;
}

/*
 * Skipping walks the items in one loop with a stack of the items left
 * per open container instead of a call per item: the log's packer skips
 * every op of every change it stores (nine items a text op), and a call
 * per item was most of that. Checks as the readers above: every length
 * within the bytes left, a container's count within them too (each item
 * takes a byte), at most MP_DEPTH_MAX levels, ext types refused.
 */
int
crdt__mp_skip(crdt__mp *m)
{
    const unsigned char *p = m->p, *end = m->end;
    uint64_t left[MP_DEPTH_MAX + 1];
    int d = 0;

    assert(m->p <= m->end); /* keeps (1) */
    left[0] = 1;
    for (;;) {
        size_t avail, hdr;
        uint64_t n;
        unsigned char c;
        int rc;

        while (left[d] == 0) {
            if (d == 0) {
                m->p = p;
                return CRDT_OK;
            }
            d--;
        }
        left[d]--;
        if (p >= end)
            return CRDT_EPROTO;
        c = *p;
        if (c <= 0x7f) { /* the commonest item: a small uint */
            p++;
            continue;
        }
        avail = (size_t)(end - p);
        if ((rc = flat_item(c, p, avail, &hdr, &n)) == 0) {
            if (n > avail - hdr)
                return CRDT_EPROTO;
            p += hdr + n;
            continue;
        }
        if (rc < 0 || (rc = container_items(c, p, avail, &hdr, &n)) != 0)
            return CRDT_EPROTO; /* cut short, or ext types and 0xc1 */
        if (n > avail - hdr)
            return CRDT_EPROTO; /* keeps (2) */
        p += hdr;
        if (n == 0)
            continue;
        if (d == MP_DEPTH_MAX)
            return CRDT_ELIMIT;
        left[++d] = n;
    }
}

int
crdt__utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s, *e = p + len;

    while (p < e) {
        unsigned c = *p;
        size_t n;
        uint32_t cp;

        if (c < 0x80) {
            p++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            n = 1;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            n = 2;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            n = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if ((size_t)(e - p) <= n)
            return 0;
        for (size_t i = 1; i <= n; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (p[i] & 0x3f);
        }
        /* reject overlong forms, surrogates and beyond U+10FFFF */
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) ||
            (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        p += n + 1;
    }
    return 1;
}
