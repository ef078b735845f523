/*
 * changepack.c: a list of changes in a compact form that rebuilds each
 * change's exact bytes (crdt_changes_pack(), crdt_changes_unpack();
 * byte layout in docs/protocol.md, "Packed changes").
 *
 * Why: a change spells out its author (72 bytes), its epoch (34), its
 * prev hash (34) and, in every op, the msgpack headers of a name and a
 * value; over a message most of that repeats. The packed form keeps a
 * table of authors, epochs, names and name templates ("d" + 5 digits)
 * per message, implies seq and prev from the author's previous change
 * in the message, delta-codes the stamp and writes an op of a register,
 * counter or set as one header byte, its names as table indices and its
 * value without the type byte it shares with the op before.
 *
 * Exactness: the receiver rebuilds the change bytes and hashes and
 * verifies them as ever, so the packed form can lose nothing. A packed
 * record rebuilds every msgpack header in its shortest form: the packer
 * packs a change only when its bytes are exactly that
 * (change_rebuilds(); an op in another form goes raw), and writes any
 * other (format 1, another writer's encoding) verbatim. It does not
 * unpack a record to check it: the unpacker accepts only the canonical
 * form (docs/protocol.md), the one the packer writes, and the packer
 * moves its state as the unpacker does (enc_record()). fuzz_changepack
 * checks that whatever is packed unpacks to the same bytes.
 */
#include <stdlib.h>
#include <string.h>

#include "crdt/crdt.h"
#include "internal.h"

#define PK_VERSION 1  /* what the log's run records hold */
#define PK_VERSION_2 2 /* one-op records and stamps in flags, short ops
                        * repeat the names: only to a peer that reads it */
#define PK_AUTHORS_MAX 4096
#define PK_EPOCHS_MAX 256
#define PK_NAMES_MAX 65536
#define PK_TMPLS_MAX 1024
#define PK_DIGITS_MAX 19 /* a template's number fits a u64 */

/* record flags */
#define F_PACKED 0x01
#define F_SIG 0x02
#define F_CHAINED 0x04
#define F_SAME_AUTHOR 0x08
#define F_SAME_EPOCH 0x10
/* version 2 only */
#define F_ONE_OP 0x20   /* n_ops is 1: its varint is left out */
#define F_HLC 0xc0      /* how the stamp is given: */
#define F_HLC_DELTA 0x00 /* zigzag(hlc - expected) follows */
#define F_HLC_SAME 0x40 /* hlc is expected */
#define F_HLC_NEXT_MS 0x80 /* the first stamp of expected's next ms */
#define F_HLC_LATER_MS 0xc0 /* varint d: the first stamp of ms + 2 + d */
#define HLC_MS_SHIFT 16 /* a stamp is ms << 16 | counter (hlc.c) */
#define HLC_MS_END ((uint64_t)1 << (64 - HLC_MS_SHIFT))

/* op header byte */
#define H_KIND 0x03      /* 0 PUT, 1 INCR, 2 SADD, 3 raw op */
#define H_COLL_NIL 0x04
#define H_DOC_SHIFT 3    /* 2 bits: 0 nil, 1 token, 2 last template */
#define H_FIELD_NIL 0x20
#define H_SAME_TAG 0x40
/* bit 7: the short form of an op whose header is the last compact op's
 * (with the doc by the last template): bits 0..5 the low bits of the
 * doc's number, bit 6 a varint with the rest follows */
#define H_SHORT 0x80
#define H_SHORT_MORE 0x40
#define H_SHORT_LOW 0x3f

typedef struct {
    unsigned char pk[CRDT_PUBKEY_BYTES], inc[8];
    int has_last;
    uint64_t next_seq, next_hlc;
    unsigned char last_hash[CRDT_HASH_BYTES];
} pk_author;

/* names and templates are offsets into the packed bytes */
typedef struct {
    size_t off;
    uint32_t len;
} pk_name;

typedef struct {
    size_t off;
    uint32_t plen, width;
} pk_tmpl;

typedef struct {
    unsigned char *p;
    size_t len, cap, max;
} pk_buf;

/* a name as the last compact op had it: len 0 is nil */
typedef struct {
    uint32_t len;
    unsigned char b[CRDT_NAME_MAX];
} pk_last_name;

typedef struct {
    int version;
    unsigned char space[CRDT_SPACE_ID_BYTES];
    pk_author *authors;
    size_t n_authors, cap_authors;
    unsigned char (*epochs)[CRDT_HASH_BYTES];
    size_t n_epochs, cap_epochs;
    pk_name *names;
    size_t n_names, cap_names;
    pk_tmpl *tmpls;
    size_t n_tmpls, cap_tmpls;
    int have_author, have_epoch, have_tag, have_h;
    size_t last_author, last_epoch;
    long last_tmpl; /* -1: none */
    unsigned char last_tag;
    unsigned char last_h; /* the last compact op's header byte */
    /* version 2: a short op repeats the last compact op's coll, field */
    pk_last_name last_coll, last_field;
} pk_state;

/* ---- small helpers ---- */

static int
grow(void **p, size_t *cap, size_t need, size_t elem)
{
    size_t nc;
    void *np;

    if (need <= *cap)
        return CRDT_OK;
    nc = *cap ? *cap * 2 : 16;
    while (nc < need)
        nc *= 2;
    np = realloc(*p, nc * elem);
    if (np == NULL)
        return CRDT_ENOMEM;
    *p = np;
    *cap = nc;
    return CRDT_OK;
}

static int
buf_put_grow(pk_buf *b, const void *p, size_t n)
{
    if (n > b->max || b->len > b->max - n)
        return CRDT_ELIMIT;
    if (b->len + n > b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 4096;
        unsigned char *np;
        while (nc < b->len + n)
            nc *= 2;
        if ((np = realloc(b->p, nc)) == NULL)
            return CRDT_ENOMEM;
        b->p = np;
        b->cap = nc;
    }
    if (n > 0)
        memcpy(b->p + b->len, p, n);
    b->len += n;
    return CRDT_OK;
}

/* The buffer's writes take a few bytes at a time, several per op: the
 * common case (room, within the limit; len <= max always) inline, the
 * rest in buf_put_grow(). */
static inline int
buf_put(pk_buf *b, const void *p, size_t n)
{
    if (n <= b->cap - b->len && n <= b->max - b->len) {
        if (n > 0)
            memcpy(b->p + b->len, p, n);
        b->len += n;
        return CRDT_OK;
    }
    return buf_put_grow(b, p, n);
}

static inline int
buf_byte(pk_buf *b, unsigned char c)
{
    if (b->len < b->cap && b->len < b->max) {
        b->p[b->len++] = c;
        return CRDT_OK;
    }
    return buf_put_grow(b, &c, 1);
}

static inline int
buf_varint(pk_buf *b, uint64_t v)
{
    unsigned char t[CRDT__VARINT_MAX];

    if (b->cap - b->len >= CRDT__VARINT_MAX &&
        b->max - b->len >= CRDT__VARINT_MAX) {
        b->len += crdt__varint_put(b->p + b->len, v);
        return CRDT_OK;
    }
    return buf_put(b, t, crdt__varint_put(t, v));
}

/* msgpack uint, shortest form */
static int
buf_mp_uint(pk_buf *b, uint64_t v)
{
    unsigned char t[9];
    size_t n;

    if (v <= 0x7f) {
        t[0] = (unsigned char)v;
        n = 1;
    } else if (v <= 0xff) {
        t[0] = 0xcc;
        t[1] = (unsigned char)v;
        n = 2;
    } else if (v <= 0xffff) {
        t[0] = 0xcd;
        t[1] = (unsigned char)(v >> 8);
        t[2] = (unsigned char)v;
        n = 3;
    } else if (v <= 0xffffffffu) {
        t[0] = 0xce;
        for (int i = 0; i < 4; i++)
            t[1 + i] = (unsigned char)(v >> (24 - 8 * i));
        n = 5;
    } else {
        t[0] = 0xcf;
        for (int i = 0; i < 8; i++)
            t[1 + i] = (unsigned char)(v >> (56 - 8 * i));
        n = 9;
    }
    return buf_put(b, t, n);
}

/* msgpack header of a container or bin of @p n, shortest form */
static int
buf_mp_len(pk_buf *b, unsigned fix, unsigned fixmax, unsigned c8,
           unsigned c16, unsigned c32, uint64_t n)
{
    unsigned char t[5];

    if (fix && n <= fixmax) {
        t[0] = (unsigned char)(fix | n);
        return buf_put(b, t, 1);
    }
    if (c8 && n <= 0xff) {
        t[0] = (unsigned char)c8;
        t[1] = (unsigned char)n;
        return buf_put(b, t, 2);
    }
    if (n <= 0xffff) {
        t[0] = (unsigned char)c16;
        t[1] = (unsigned char)(n >> 8);
        t[2] = (unsigned char)n;
        return buf_put(b, t, 3);
    }
    t[0] = (unsigned char)c32;
    for (int i = 0; i < 4; i++)
        t[1 + i] = (unsigned char)(n >> (24 - 8 * i));
    return buf_put(b, t, 5);
}

static int
buf_mp_bin(pk_buf *b, const void *p, size_t n)
{
    int rc = buf_mp_len(b, 0, 0, 0xc4, 0xc5, 0xc6, n);
    return rc < 0 ? rc : buf_put(b, p, n);
}

static int
buf_mp_str(pk_buf *b, const void *p, size_t n)
{
    int rc = buf_mp_len(b, 0xa0, 31, 0xd9, 0xda, 0xdb, n);
    return rc < 0 ? rc : buf_put(b, p, n);
}

static size_t
varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* ---- the reader of packed bytes ---- */

typedef struct {
    const unsigned char *base; /* start of the packed bytes */
    size_t at, len;
} pk_in;

static int
in_bytes(pk_in *in, const unsigned char **p, size_t n)
{
    if (n > in->len - in->at)
        return CRDT_EPROTO;
    *p = in->base + in->at;
    in->at += n;
    return CRDT_OK;
}

static int
in_byte(pk_in *in, unsigned char *c)
{
    const unsigned char *p;
    int rc = in_bytes(in, &p, 1);
    if (rc == CRDT_OK)
        *c = p[0];
    return rc;
}

static int
in_varint(pk_in *in, uint64_t *v)
{
    uint64_t r = 0;

    for (int i = 0; i < 10; i++) {
        unsigned char c;
        if (in_byte(in, &c) < 0)
            return CRDT_EPROTO;
        if (i == 9 && c > 1)
            return CRDT_EPROTO; /* beyond 64 bits */
        r |= (uint64_t)(c & 0x7f) << (7 * i);
        if (!(c & 0x80)) {
            if (i > 0 && c == 0)
                return CRDT_EPROTO; /* not the shortest form */
            *v = r;
            return CRDT_OK;
        }
    }
    return CRDT_EPROTO;
}

/* Bytes after the type byte @p tag of a msgpack scalar; @p rest is what
 * follows it (at most @p avail bytes). -1: not a scalar, or cut short. */
static int64_t
scalar_rest(unsigned char tag, const unsigned char *rest, size_t avail)
{
    size_t n, hdr = 0;

    if (tag <= 0x7f || tag >= 0xe0 || tag == 0xc0 || tag == 0xc2 ||
        tag == 0xc3)
        n = 0;
    else if (tag >= 0xa0 && tag <= 0xbf)
        n = tag & 0x1f;
    else
        switch (tag) {
        case 0xcc: case 0xd0: n = 1; break;
        case 0xcd: case 0xd1: n = 2; break;
        case 0xce: case 0xd2: case 0xca: n = 4; break;
        case 0xcf: case 0xd3: case 0xcb: n = 8; break;
        case 0xd9: case 0xc4: hdr = 1; break;
        case 0xda: case 0xc5: hdr = 2; break;
        case 0xdb: case 0xc6: hdr = 4; break;
        default: return -1;
        }
    if (hdr) {
        if (avail < hdr)
            return -1;
        n = (size_t)crdt__be_n(rest, hdr);
        if (n > CRDT_CHANGE_MAX)
            return -1;
        n += hdr;
    }
    return n <= avail ? (int64_t)n : -1;
}

/* ---- names and templates ---- */

/* The trailing decimal digits of a name (at most PK_DIGITS_MAX): 0 if
 * none, else their count, with the prefix length and the number. */
static uint32_t
name_digits(const unsigned char *s, uint32_t len, uint32_t *plen,
            uint64_t *num)
{
    uint32_t w = 0;
    uint64_t v = 0, mul = 1;

    while (w < len && w < PK_DIGITS_MAX && s[len - 1 - w] >= '0' &&
           s[len - 1 - w] <= '9') {
        v += (uint64_t)(s[len - 1 - w] - '0') * mul;
        mul *= 10;
        w++;
    }
    *plen = len - w;
    *num = v;
    return w;
}

static long
tmpl_find(const pk_state *st, const unsigned char *base,
          const unsigned char *prefix, uint32_t plen, uint32_t width)
{
    for (size_t i = st->n_tmpls; i-- > 0;) {
        const pk_tmpl *t = &st->tmpls[i];
        if (t->width == width && t->plen == plen &&
            memcmp(base + t->off, prefix, plen) == 0)
            return (long)i;
    }
    return -1;
}

/* The name of template @p t with number @p num into @p out (64 bytes). */
static int
tmpl_name(const pk_state *st, const unsigned char *base, size_t t,
          uint64_t num, unsigned char *out, uint32_t *len)
{
    const pk_tmpl *tp = &st->tmpls[t];
    uint64_t v = num;

    if (tp->plen + tp->width > CRDT_NAME_MAX)
        return CRDT_EPROTO;
    memcpy(out, base + tp->off, tp->plen);
    for (uint32_t i = tp->width; i-- > 0;) {
        out[tp->plen + i] = (unsigned char)('0' + v % 10);
        v /= 10;
    }
    if (v != 0)
        return CRDT_EPROTO; /* more digits than the template's width */
    *len = tp->plen + tp->width;
    return CRDT_OK;
}

/* ---- ops the compact form holds ---- */

/* An op [kind 0..2, coll, doc, field, scalar]: each name nil or a str of
 * 1..CRDT_NAME_MAX bytes whose header is the shortest (the one
 * dec_name() writes back), the scalar any msgpack scalar (copied as it
 * is). Any other op is written raw, byte for byte. */
typedef struct {
    const unsigned char *coll, *doc, *field; /* NULL: nil */
    uint32_t cl, dl, fl;
    const unsigned char *scalar; /* its type byte */
    size_t rest;                 /* bytes after the type byte */
} pk_op;

static int
op_name(crdt__mp *m, const unsigned char **p, uint32_t *len)
{
    const unsigned char *at = m->p;
    const char *s;

    if (m->p < m->end && m->p[0] == 0xc0) {
        m->p++;
        *p = NULL;
        return CRDT_OK;
    }
    if (m->p < m->end && (m->p[0] & 0xe0) == 0xa0) {
        /* the commonest name, a fixstr (its shortest header), read here:
         * it is read for every op the log stores */
        uint32_t n = m->p[0] & 0x1f;
        if (n < 1 || n > (size_t)(m->end - m->p - 1) ||
            !crdt__utf8_valid((const char *)m->p + 1, n))
            return CRDT_EPROTO;
        *p = m->p + 1;
        *len = n;
        m->p += 1 + n;
        return CRDT_OK;
    }
    if (crdt__mp_str(m, &s, len) < 0 || *len < 1 || *len > CRDT_NAME_MAX ||
        (const unsigned char *)s - at != (*len <= 31 ? 1 : 2))
        return CRDT_EPROTO;
    *p = (const unsigned char *)s;
    return CRDT_OK;
}

/* The op at @p op, in at most @p avail bytes, as the compact form holds
 * it; its length in @p len (what crdt__mp_skip() would step over). */
static int
op_parse_at(pk_op *o, const unsigned char *op, size_t avail, size_t *len)
{
    crdt__mp m = { op, op + avail };
    int64_t rest;

    if (avail < 6 || op[0] != 0x95 || op[1] > 2)
        return CRDT_EPROTO;
    m.p += 2;
    if (op_name(&m, &o->coll, &o->cl) < 0 ||
        op_name(&m, &o->doc, &o->dl) < 0 ||
        op_name(&m, &o->field, &o->fl) < 0 || m.p >= m.end)
        return CRDT_EPROTO;
    rest = scalar_rest(m.p[0], m.p + 1, (size_t)(m.end - m.p - 1));
    if (rest < 0)
        return CRDT_EPROTO;
    o->scalar = m.p;
    o->rest = (size_t)rest;
    *len = (size_t)(m.p + 1 + rest - op);
    return CRDT_OK;
}

/* The op of exactly @p len bytes at @p op as the compact form holds it. */
static int
op_parse(pk_op *o, const unsigned char *op, size_t len)
{
    size_t got;

    return op_parse_at(o, op, len, &got) == CRDT_OK && got == len
               ? CRDT_OK
               : CRDT_EPROTO;
}

/* ---- unpacking one record ---- */

typedef struct {
    pk_state *st;
    pk_in in;
    pk_buf body; /* scratch: one change's body */
} pk_dec;

/* One name (token form) into @p out. */
static int
dec_token(pk_dec *d, unsigned char *out, uint32_t *len)
{
    pk_state *st = d->st;
    uint64_t t, num;
    const unsigned char *p;

    if (in_varint(&d->in, &t) < 0)
        return CRDT_EPROTO;
    if (t == 0) { /* a literal: joins the table, its template too */
        uint64_t l;
        uint32_t plen, w;
        if (in_varint(&d->in, &l) < 0 || l < 1 || l > CRDT_NAME_MAX ||
            in_bytes(&d->in, &p, (size_t)l) < 0)
            return CRDT_EPROTO;
        memcpy(out, p, (size_t)l);
        *len = (uint32_t)l;
        if (st->n_names < PK_NAMES_MAX) {
            if (grow((void **)&st->names, &st->cap_names, st->n_names + 1,
                     sizeof *st->names) < 0)
                return CRDT_ENOMEM;
            st->names[st->n_names].off = (size_t)(p - d->in.base);
            st->names[st->n_names].len = (uint32_t)l;
            st->n_names++;
        }
        if ((w = name_digits(p, (uint32_t)l, &plen, &num)) > 0) {
            long ti = tmpl_find(st, d->in.base, p, plen, w);
            if (ti < 0 && st->n_tmpls < PK_TMPLS_MAX) {
                if (grow((void **)&st->tmpls, &st->cap_tmpls,
                         st->n_tmpls + 1, sizeof *st->tmpls) < 0)
                    return CRDT_ENOMEM;
                st->tmpls[st->n_tmpls].off = (size_t)(p - d->in.base);
                st->tmpls[st->n_tmpls].plen = plen;
                st->tmpls[st->n_tmpls].width = w;
                ti = (long)st->n_tmpls++;
            }
            if (ti >= 0)
                st->last_tmpl = ti;
        }
        return CRDT_OK;
    }
    if (t & 1) {
        const pk_name *n;
        if ((t - 1) / 2 >= st->n_names)
            return CRDT_EPROTO;
        n = &st->names[(t - 1) / 2];
        memcpy(out, d->in.base + n->off, n->len);
        *len = n->len;
        return CRDT_OK;
    }
    if ((t - 2) / 2 >= st->n_tmpls || in_varint(&d->in, &num) < 0 ||
        tmpl_name(st, d->in.base, (size_t)(t - 2) / 2, num, out, len) < 0)
        return CRDT_EPROTO;
    st->last_tmpl = (long)((t - 2) / 2);
    return CRDT_OK;
}

static int
put_last_name(pk_buf *b, const pk_last_name *n)
{
    return n->len ? buf_mp_str(b, n->b, n->len) : buf_byte(b, 0xc0);
}

/* @p given: the number of a mode-2 name, already read (the short form
 * of an op), or NULL: it follows. The name is also left in @p keep. */
static int
dec_name(pk_dec *d, unsigned mode, pk_buf *b, const uint64_t *given,
         pk_last_name *keep)
{
    unsigned char *name = keep->b;
    uint32_t len;
    uint64_t num = given ? *given : 0;
    int rc;

    switch (mode) {
    case 0:
        keep->len = 0;
        return buf_byte(b, 0xc0);
    case 1:
        if ((rc = dec_token(d, name, &len)) < 0)
            return rc;
        break;
    case 2:
        if (d->st->last_tmpl < 0 ||
            (given == NULL && in_varint(&d->in, &num) < 0) ||
            tmpl_name(d->st, d->in.base, (size_t)d->st->last_tmpl, num, name,
                      &len) < 0)
            return CRDT_EPROTO;
        break;
    default:
        return CRDT_EPROTO;
    }
    keep->len = len;
    return buf_mp_str(b, name, len);
}

/* Whether name @p p of @p len bytes (NULL or len 0: nil) is @p n. */
static int
same_bytes(const pk_last_name *n, const unsigned char *p, uint32_t len)
{
    return p == NULL ? n->len == 0
                     : n->len == len && memcmp(n->b, p, len) == 0;
}

static int
dec_op(pk_dec *d, pk_buf *b)
{
    pk_last_name coll, doc, field;
    unsigned char h, tag;
    const unsigned char *p;
    uint64_t l, num = 0;
    int64_t rest;
    int rc, is_short = 0, names_read;

    if (in_byte(&d->in, &h) < 0)
        return CRDT_EPROTO;
    if (h & H_SHORT) { /* the last header again; the doc's number here */
        num = h & H_SHORT_LOW;
        if (h & H_SHORT_MORE) {
            if (in_varint(&d->in, &l) < 0 || (l >> 58) != 0 || l == 0)
                return CRDT_EPROTO;
            num |= l << 6;
        }
        if (!d->st->have_h || ((d->st->last_h >> H_DOC_SHIFT) & 3) != 2)
            return CRDT_EPROTO;
        h = d->st->last_h;
        is_short = 1;
    }
    if ((h & H_KIND) == 3) { /* a raw op */
        pk_op o;
        if (h != 3 || in_varint(&d->in, &l) < 0 || l > CRDT_CHANGE_MAX ||
            in_bytes(&d->in, &p, (size_t)l) < 0)
            return CRDT_EPROTO;
        if (op_parse(&o, p, (size_t)l) == CRDT_OK)
            return CRDT_EPROTO; /* not canonical: the compact form holds it */
        return buf_put(b, p, (size_t)l);
    }
    /* not canonical: the short form says this header again (version 1;
     * version 2: the header and the names, checked once they are read) */
    if (d->st->version < PK_VERSION_2 && !is_short && d->st->have_h &&
        h == d->st->last_h && ((h >> H_DOC_SHIFT) & 3) == 2)
        return CRDT_EPROTO;
    if ((rc = buf_byte(b, 0x95)) < 0 || (rc = buf_byte(b, h & H_KIND)) < 0)
        return rc;
    if (is_short && d->st->version >= PK_VERSION_2) {
        /* the last compact op's names: none follows */
        if ((rc = put_last_name(b, &d->st->last_coll)) < 0 ||
            (rc = dec_name(d, 2, b, &num, &doc)) < 0 ||
            (rc = put_last_name(b, &d->st->last_field)) < 0)
            return rc;
    } else if ((rc = dec_name(d, (h & H_COLL_NIL) ? 0 : 1, b, NULL,
                              &coll)) < 0 ||
               (rc = dec_name(d, (h >> H_DOC_SHIFT) & 3, b,
                              is_short ? &num : NULL, &doc)) < 0 ||
               (rc = dec_name(d, (h & H_FIELD_NIL) ? 0 : 1, b, NULL,
                              &field)) < 0) {
        return rc;
    }
    names_read = !is_short || d->st->version < PK_VERSION_2;
    if (d->st->version >= PK_VERSION_2 && !is_short && d->st->have_h &&
        h == d->st->last_h && ((h >> H_DOC_SHIFT) & 3) == 2 &&
        same_bytes(&d->st->last_coll, coll.b, coll.len) &&
        same_bytes(&d->st->last_field, field.b, field.len))
        return CRDT_EPROTO; /* not canonical: the short form says it */
    if (h & H_SAME_TAG) {
        if (!d->st->have_tag)
            return CRDT_EPROTO;
        tag = d->st->last_tag;
    } else if (in_byte(&d->in, &tag) < 0 ||
               (d->st->have_tag && tag == d->st->last_tag)) {
        return CRDT_EPROTO; /* cut short; or not canonical: H_SAME_TAG */
    }
    rest = scalar_rest(tag, d->in.base + d->in.at, d->in.len - d->in.at);
    if (rest < 0 || in_bytes(&d->in, &p, (size_t)rest) < 0)
        return CRDT_EPROTO;
    d->st->last_tag = tag;
    d->st->have_tag = 1;
    d->st->last_h = h;
    d->st->have_h = 1;
    if (names_read) {
        d->st->last_coll = coll;
        d->st->last_field = field;
    }
    if ((rc = buf_byte(b, tag)) < 0)
        return rc;
    return buf_put(b, p, (size_t)rest);
}

/* A token naming an entry of a table of @p n (== n: a new entry of
 * @p size bytes follows, copied to @p fresh). */
static int
dec_table_ref(pk_dec *d, size_t n, size_t max, size_t size, size_t *idx,
              const unsigned char **fresh)
{
    uint64_t t;

    *fresh = NULL;
    if (in_varint(&d->in, &t) < 0 || t > n || (t == n && n >= max))
        return CRDT_EPROTO;
    if (t == n && in_bytes(&d->in, fresh, size) < 0)
        return CRDT_EPROTO;
    *idx = (size_t)t;
    return CRDT_OK;
}

/* Version 2: how stamp @p hlc is written after @p expected (the
 * author's previous change's hlc + its n_ops, 0 for its first): the
 * first of F_HLC_SAME, F_HLC_NEXT_MS, F_HLC_LATER_MS (@p *d set) that
 * gives it, else F_HLC_DELTA. A writer that commits faster than once a
 * millisecond stamps its next change expected (the same ms); a slower
 * one the first stamp of a later ms (hlc.c): no byte either way, or one
 * for a gap below 130 ms, where the delta took three. */
static unsigned char
hlc_mode(uint64_t expected, uint64_t hlc, uint64_t *d)
{
    uint64_t ms = hlc >> HLC_MS_SHIFT, ems = expected >> HLC_MS_SHIFT;

    if (hlc == expected)
        return F_HLC_SAME;
    if ((hlc & ((1u << HLC_MS_SHIFT) - 1)) != 0 || ms <= ems)
        return F_HLC_DELTA;
    if (ms == ems + 1)
        return F_HLC_NEXT_MS;
    *d = ms - ems - 2;
    return F_HLC_LATER_MS;
}

/* The stamp of a version-2 record with flags @p f after @p expected;
 * CRDT_EPROTO: beyond 64 bits, or not canonical (a delta giving a stamp
 * another mode says). */
static int
dec_hlc(pk_dec *d, unsigned char f, uint64_t expected, uint64_t *hlc)
{
    uint64_t v, ems = expected >> HLC_MS_SHIFT, dd;

    switch (f & F_HLC) {
    case F_HLC_SAME:
        *hlc = expected;
        return CRDT_OK;
    case F_HLC_NEXT_MS:
        if (ems + 1 >= HLC_MS_END)
            return CRDT_EPROTO;
        *hlc = (ems + 1) << HLC_MS_SHIFT;
        return CRDT_OK;
    case F_HLC_LATER_MS:
        if (in_varint(&d->in, &v) < 0 || ems + 2 >= HLC_MS_END ||
            v >= HLC_MS_END - ems - 2)
            return CRDT_EPROTO;
        *hlc = (ems + 2 + v) << HLC_MS_SHIFT;
        return CRDT_OK;
    default:
        if (in_varint(&d->in, &v) < 0)
            return CRDT_EPROTO;
        *hlc = expected + ((v >> 1) ^ (uint64_t)-(int64_t)(v & 1));
        return hlc_mode(expected, *hlc, &dd) == F_HLC_DELTA ? CRDT_OK
                                                            : CRDT_EPROTO;
    }
}

/* One record from d->in; the rebuilt change is appended to @p out, its
 * body's hash to @p hash_out (when not NULL). A record in a form the
 * packer does not write (docs/protocol.md, "Packed changes": the
 * canonical form) is refused as malformed: whatever decodes is what
 * the packer makes of the changes it rebuilds. */
static int
dec_record(pk_dec *d, pk_buf *out, unsigned char *hash_out)
{
    pk_state *st = d->st;
    unsigned char f, prev[CRDT_HASH_BYTES];
    const unsigned char *p, *fresh, *sig = NULL;
    size_t ai, ei;
    uint64_t seq, hlc, zz, n_ops, l;
    pk_author *a;
    crdt_change c;
    size_t start = out->len;
    int rc;

    if (in_byte(&d->in, &f) < 0)
        return CRDT_EPROTO;
    if (f == 0) { /* verbatim */
        if (in_varint(&d->in, &l) < 0 || l < CRDT_CHANGE_MIN ||
            l > CRDT_CHANGE_MAX ||
            in_bytes(&d->in, &p, (size_t)l) < 0)
            return CRDT_EPROTO;
        if (hash_out != NULL) { /* the caller wants every change's hash */
            if (crdt_change_decode(&c, p, (size_t)l) != CRDT_OK)
                return CRDT_EPROTO;
            memcpy(hash_out, c.hash, CRDT_HASH_BYTES);
        }
        return buf_put(out, p, (size_t)l);
    }
    if (!(f & F_PACKED) || (st->version < PK_VERSION_2 && (f & ~0x1f)))
        return CRDT_EPROTO;
    if (f & F_SAME_AUTHOR) {
        if (!st->have_author)
            return CRDT_EPROTO;
        ai = st->last_author;
    } else {
        if ((rc = dec_table_ref(d, st->n_authors, PK_AUTHORS_MAX,
                                CRDT_PUBKEY_BYTES + 8, &ai, &fresh)) < 0)
            return rc;
        if (st->have_author && ai == st->last_author)
            return CRDT_EPROTO; /* not canonical: F_SAME_AUTHOR */
        if (fresh != NULL) {
            for (size_t i = 0; i < st->n_authors; i++)
                if (memcmp(st->authors[i].pk, fresh, CRDT_PUBKEY_BYTES) ==
                        0 &&
                    memcmp(st->authors[i].inc, fresh + CRDT_PUBKEY_BYTES,
                           8) == 0)
                    return CRDT_EPROTO; /* not canonical: in the table */
            if (grow((void **)&st->authors, &st->cap_authors,
                     st->n_authors + 1, sizeof *st->authors) < 0)
                return CRDT_ENOMEM;
            a = &st->authors[st->n_authors++];
            memset(a, 0, sizeof *a);
            memcpy(a->pk, fresh, CRDT_PUBKEY_BYTES);
            memcpy(a->inc, fresh + CRDT_PUBKEY_BYTES, 8);
        }
    }
    if (f & F_SAME_EPOCH) {
        if (!st->have_epoch)
            return CRDT_EPROTO;
        ei = st->last_epoch;
    } else {
        if ((rc = dec_table_ref(d, st->n_epochs, PK_EPOCHS_MAX,
                                CRDT_HASH_BYTES, &ei, &fresh)) < 0)
            return rc;
        if (st->have_epoch && ei == st->last_epoch)
            return CRDT_EPROTO; /* not canonical: F_SAME_EPOCH */
        if (fresh != NULL) {
            for (size_t i = 0; i < st->n_epochs; i++)
                if (memcmp(st->epochs[i], fresh, CRDT_HASH_BYTES) == 0)
                    return CRDT_EPROTO; /* not canonical: in the table */
            if (grow((void **)&st->epochs, &st->cap_epochs, st->n_epochs + 1,
                     sizeof *st->epochs) < 0)
                return CRDT_ENOMEM;
            memcpy(st->epochs[st->n_epochs++], fresh, CRDT_HASH_BYTES);
        }
    }
    a = &st->authors[ai];
    if (f & F_CHAINED) {
        if (!a->has_last)
            return CRDT_EPROTO;
        seq = a->next_seq;
        memcpy(prev, a->last_hash, sizeof prev);
    } else if (in_varint(&d->in, &seq) < 0 ||
               in_bytes(&d->in, &p, CRDT_HASH_BYTES) < 0) {
        return CRDT_EPROTO;
    } else {
        /* not refused when it could have been chained: the packer
         * chains by the hashes its caller gives (a wrong one, and the
         * next change is written out) */
        memcpy(prev, p, sizeof prev);
    }
    if (st->version >= PK_VERSION_2) {
        if (dec_hlc(d, f, a->has_last ? a->next_hlc : 0, &hlc) < 0)
            return CRDT_EPROTO;
        n_ops = 1;
        if (!(f & F_ONE_OP) && (in_varint(&d->in, &n_ops) < 0 ||
                                n_ops == 1)) /* not canonical: F_ONE_OP */
            return CRDT_EPROTO;
    } else if (in_varint(&d->in, &zz) < 0 ||
               in_varint(&d->in, &n_ops) < 0) {
        return CRDT_EPROTO;
    } else {
        hlc = (a->has_last ? a->next_hlc : 0) +
              ((zz >> 1) ^ (uint64_t)-(int64_t)(zz & 1));
    }
    if (n_ops < 1 || n_ops > CRDT_CHANGE_MAX_OPS ||
        n_ops > d->in.len - d->in.at) /* every op takes a byte */
        return CRDT_EPROTO;
    d->body.len = 0;
    d->body.max = CRDT_CHANGE_MAX;
    if ((rc = buf_byte(&d->body, 0x99)) < 0 ||
        (rc = buf_byte(&d->body, 2)) < 0 ||
        (rc = buf_mp_bin(&d->body, st->space, CRDT_SPACE_ID_BYTES)) < 0 ||
        (rc = buf_mp_bin(&d->body, st->epochs[ei], CRDT_HASH_BYTES)) < 0 ||
        (rc = buf_mp_bin(&d->body, a->pk, CRDT_PUBKEY_BYTES)) < 0 ||
        (rc = buf_mp_bin(&d->body, a->inc, 8)) < 0 ||
        (rc = buf_mp_uint(&d->body, seq)) < 0 ||
        (rc = buf_mp_uint(&d->body, hlc)) < 0 ||
        (rc = buf_mp_bin(&d->body, prev, sizeof prev)) < 0 ||
        (rc = buf_mp_len(&d->body, 0x90, 15, 0, 0xdc, 0xdd, n_ops)) < 0)
        return rc == CRDT_ELIMIT ? CRDT_EPROTO : rc;
    for (uint64_t i = 0; i < n_ops; i++)
        if ((rc = dec_op(d, &d->body)) < 0)
            return rc == CRDT_ELIMIT ? CRDT_EPROTO : rc;
    if ((f & F_SIG) && in_bytes(&d->in, &sig, 64) < 0)
        return CRDT_EPROTO;
    if ((rc = buf_byte(out, 0x92)) < 0 ||
        (rc = buf_mp_bin(out, d->body.p, d->body.len)) < 0)
        return rc;
    if (sig != NULL)
        rc = buf_mp_bin(out, sig, 64);
    else
        rc = buf_byte(out, 0xc0);
    if (rc < 0)
        return rc;
    if (crdt_change_decode(&c, out->p + start, out->len - start) !=
        CRDT_OK) {
        /* the rebuilt change must be one: its hash chains the next */
        return CRDT_EPROTO;
    }
    if (hash_out != NULL)
        memcpy(hash_out, c.hash, CRDT_HASH_BYTES);
    a->has_last = 1;
    a->next_seq = c.seq + c.n_ops;
    a->next_hlc = c.hlc + c.n_ops;
    memcpy(a->last_hash, c.hash, CRDT_HASH_BYTES);
    st->have_author = 1;
    st->last_author = ai;
    st->have_epoch = 1;
    st->last_epoch = ei;
    return CRDT_OK;
}

static void
state_free(pk_state *st)
{
    free(st->authors);
    free(st->epochs);
    free(st->names);
    free(st->tmpls);
}

/* Back to the tables and scalars of @p to (a snapshot taken earlier):
 * entries are only appended, so the counts say it all; the arrays
 * themselves (maybe moved by realloc since) stay. The author entries'
 * contents are the caller's to restore. */
static void
state_rewind(pk_state *st, const pk_state *to)
{
    st->n_authors = to->n_authors;
    st->n_epochs = to->n_epochs;
    st->n_names = to->n_names;
    st->n_tmpls = to->n_tmpls;
    st->have_author = to->have_author;
    st->have_epoch = to->have_epoch;
    st->have_tag = to->have_tag;
    st->last_author = to->last_author;
    st->last_epoch = to->last_epoch;
    st->last_tmpl = to->last_tmpl;
    st->last_tag = to->last_tag;
    st->have_h = to->have_h;
    st->last_h = to->last_h;
    st->last_coll = to->last_coll;
    st->last_field = to->last_field;
}

/* ---- unpacking ---- */

int
crdt_changes_unpack(crdt_bytes **changes_out, size_t *n_out,
                    unsigned char **buf_out, const unsigned char *in,
                    size_t len)
{
    return crdt__changes_unpack_hashed(changes_out, n_out, buf_out, NULL, in,
                                       len);
}

int
crdt__changes_unpack_hashed(crdt_bytes **changes_out, size_t *n_out,
                            unsigned char **buf_out,
                            unsigned char **hashes_out,
                            const unsigned char *in, size_t len)
{
    unsigned char *hashes = NULL;
    pk_state st;
    pk_dec d;
    pk_buf out = { NULL, 0, 0, CRDT_CHANGES_UNPACKED_MAX };
    size_t *ends = NULL;
    crdt_bytes *list = NULL;
    const unsigned char *p;
    unsigned char ver;
    uint64_t n;
    int rc = CRDT_EPROTO;

    if (changes_out == NULL || n_out == NULL || buf_out == NULL ||
        (in == NULL && len > 0))
        return CRDT_EINVAL;
    *changes_out = NULL;
    *n_out = 0;
    *buf_out = NULL;
    if (hashes_out != NULL)
        *hashes_out = NULL;
    if (len > CRDT_CHANGES_PACKED_MAX)
        return CRDT_ELIMIT;
    memset(&st, 0, sizeof st);
    st.last_tmpl = -1;
    memset(&d, 0, sizeof d);
    d.st = &st;
    d.in.base = in;
    d.in.len = len;
    if (in_byte(&d.in, &ver) < 0 ||
        (ver != PK_VERSION && ver != PK_VERSION_2) ||
        in_bytes(&d.in, &p, CRDT_SPACE_ID_BYTES) < 0 ||
        in_varint(&d.in, &n) < 0)
        goto out;
    memcpy(st.space, p, CRDT_SPACE_ID_BYTES);
    st.version = ver;
    /* no record is shorter than 4 bytes (version 2: 2, flags and a short
     * op), nor rebuilds a change shorter than CRDT_CHANGE_MIN: the list
     * is bounded before it is allocated */
    if (n > (len - d.in.at) / (ver == PK_VERSION ? 4 : 2) ||
        n > CRDT_CHANGES_UNPACKED_MAX / CRDT_CHANGE_MIN)
        goto out;
    ends = malloc((n ? (size_t)n : 1) * sizeof *ends);
    if (hashes_out != NULL)
        hashes = malloc((n ? (size_t)n : 1) * CRDT_HASH_BYTES);
    if (ends == NULL || (hashes_out != NULL && hashes == NULL)) {
        rc = CRDT_ENOMEM;
        goto out;
    }
    for (uint64_t i = 0; i < n; i++) {
        if ((rc = dec_record(&d, &out,
                             hashes ? hashes + i * CRDT_HASH_BYTES
                                    : NULL)) < 0)
            goto out;
        ends[i] = out.len;
    }
    rc = CRDT_EPROTO;
    if (d.in.at != len)
        goto out; /* trailing bytes */
    list = malloc((n ? (size_t)n : 1) * sizeof *list);
    if (list == NULL) {
        rc = CRDT_ENOMEM;
        goto out;
    }
    for (uint64_t i = 0; i < n; i++) {
        size_t from = i ? ends[i - 1] : 0;
        list[i].data = out.p + from;
        list[i].len = ends[i] - from;
    }
    *changes_out = list;
    *n_out = (size_t)n;
    *buf_out = out.p;
    out.p = NULL;
    if (hashes_out != NULL) {
        *hashes_out = hashes;
        hashes = NULL;
    }
    rc = CRDT_OK;
out:
    free(hashes);
    free(ends);
    free(out.p);
    free(d.body.p);
    state_free(&st);
    return rc;
}

/* ---- packing ---- */

/* Names the packer has seen as literals: an open-addressing index over
 * st->names (rebuilt lazily: entries are only ever appended). */
typedef struct {
    uint32_t *slot; /* name index + 1; 0 empty */
    size_t cap, indexed;
} pk_index;

static uint64_t
name_hash(const unsigned char *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}

static int
index_sync(pk_index *x, const pk_state *st, const unsigned char *base)
{
    if (st->n_names < x->indexed)
        x->indexed = 0; /* cannot happen: names are only appended */
    if ((st->n_names + 1) * 2 > x->cap) {
        size_t nc = x->cap ? x->cap * 2 : 1024;
        while ((st->n_names + 1) * 2 > nc)
            nc *= 2;
        free(x->slot);
        if ((x->slot = calloc(nc, sizeof *x->slot)) == NULL) {
            x->cap = x->indexed = 0;
            return CRDT_ENOMEM;
        }
        x->cap = nc;
        x->indexed = 0;
    }
    for (; x->indexed < st->n_names; x->indexed++) {
        const pk_name *n = &st->names[x->indexed];
        size_t i = name_hash(base + n->off, n->len) & (x->cap - 1);
        while (x->slot[i] != 0)
            i = (i + 1) & (x->cap - 1);
        x->slot[i] = (uint32_t)x->indexed + 1;
    }
    return CRDT_OK;
}

static long
index_find(const pk_index *x, const pk_state *st, const unsigned char *base,
           const unsigned char *p, uint32_t len)
{
    size_t i;

    if (x->cap == 0)
        return -1;
    i = name_hash(p, len) & (x->cap - 1);
    while (x->slot[i] != 0) {
        const pk_name *n = &st->names[x->slot[i] - 1];
        if (n->len == len && memcmp(base + n->off, p, len) == 0)
            return (long)x->slot[i] - 1;
        i = (i + 1) & (x->cap - 1);
    }
    return -1;
}

typedef struct {
    pk_state st;
    pk_buf out;
    pk_index idx;
    pk_buf scratch; /* an op decoded to move the state */
} pk_enc;

/* What a token moves in the decoder's state (dec_token()): a name by
 * its index nothing, a template's name the last template (@p *tmpl set
 * to its index), a literal the tables (@p *literal set). */
static int
enc_token(pk_enc *e, const unsigned char *p, uint32_t len, long *tmpl,
          int *literal)
{
    uint32_t plen, w;
    uint64_t num;
    long i = index_find(&e->idx, &e->st, e->out.p, p, len);
    int rc;

    if (i >= 0)
        return buf_varint(&e->out, 2 * (uint64_t)i + 1);
    if ((w = name_digits(p, len, &plen, &num)) > 0 &&
        (i = tmpl_find(&e->st, e->out.p, p, plen, w)) >= 0) {
        if ((rc = buf_varint(&e->out, 2 * (uint64_t)i + 2)) < 0)
            return rc;
        *tmpl = i;
        return buf_varint(&e->out, num);
    }
    *literal = 1;
    if ((rc = buf_varint(&e->out, 0)) < 0 || (rc = buf_varint(&e->out, len)) < 0)
        return rc;
    return buf_put(&e->out, p, len);
}

static void
set_last_name(pk_last_name *n, const unsigned char *p, uint32_t len)
{
    n->len = p == NULL ? 0 : len;
    if (p != NULL)
        memcpy(n->b, p, len);
}

/* One op [kind 0..2, coll, doc, field, scalar] in the compact form; the
 * caller falls back to the raw form on CRDT_EPROTO (or when the record
 * does not come back identical). */
/* @p simple: set when no name token was written (the op moves only the
 * header and tag state, which the caller then sets itself) */
static int
enc_op_compact(pk_enc *e, const unsigned char *op, const pk_op *parsed,
               int *simple)
{
    pk_op o = *parsed;
    const unsigned char *coll, *doc, *field, *sc;
    uint32_t cl, dl, fl, plen, w;
    uint64_t num = 0;
    unsigned char h;
    size_t at, rest;
    long tmpl = -1; /* the last template a token named */
    int rc, doc_mode = 1, literal = 0, short_names, is_short, names;

    coll = o.coll, doc = o.doc, field = o.field;
    cl = o.cl, dl = o.dl, fl = o.fl;
    sc = o.scalar;
    rest = o.rest;
    h = op[1];
    if (coll == NULL)
        h |= H_COLL_NIL;
    if (field == NULL)
        h |= H_FIELD_NIL;
    if (doc == NULL)
        doc_mode = 0;
    else if (e->st.last_tmpl >= 0 &&
             /* coll's token comes first: a coll ending in digits may
              * name another template, which becomes the last one */
             (coll == NULL || name_digits(coll, cl, &plen, &num) == 0) &&
             (w = name_digits(doc, dl, &plen, &num)) > 0 &&
             tmpl_find(&e->st, e->out.p, doc, plen, w) == e->st.last_tmpl) {
        long i = index_find(&e->idx, &e->st, e->out.p, doc, dl);
        /* "the last template" unless the table says it shorter */
        if (i < 0 || varint_len(num) <= varint_len(2 * (uint64_t)i + 1))
            doc_mode = 2;
    }
    h |= (unsigned char)(doc_mode << H_DOC_SHIFT);
    if (e->st.have_tag && e->st.last_tag == sc[0])
        h |= H_SAME_TAG;
    at = e->out.len;
    /* version 2: the short form also stands for the last op's names */
    short_names = e->st.version >= PK_VERSION_2;
    if (doc_mode == 2 && e->st.have_h && e->st.last_h == h &&
        (!short_names ||
         (same_bytes(&e->st.last_coll, coll, cl) &&
          same_bytes(&e->st.last_field, field, fl)))) {
        /* the short form: the header is the last one, the number here */
        unsigned char b = (unsigned char)(H_SHORT | (num & H_SHORT_LOW));
        if (num > H_SHORT_LOW)
            b |= H_SHORT_MORE;
        if ((rc = buf_byte(&e->out, b)) < 0 ||
            (num > H_SHORT_LOW && (rc = buf_varint(&e->out, num >> 6)) < 0))
            return rc;
    } else if ((rc = buf_byte(&e->out, h)) < 0) {
        return rc;
    }
    is_short = (e->out.p[at] & H_SHORT) != 0;
    names = !is_short || !short_names;
    if (names && coll && (rc = enc_token(e, coll, cl, &tmpl, &literal)) < 0)
        return rc;
    if (doc_mode == 1 && (rc = enc_token(e, doc, dl, &tmpl, &literal)) < 0)
        return rc;
    if (doc_mode == 2 && !is_short && (rc = buf_varint(&e->out, num)) < 0)
        return rc;
    if ((names && field &&
         (rc = enc_token(e, field, fl, &tmpl, &literal)) < 0) ||
        (!(h & H_SAME_TAG) && (rc = buf_byte(&e->out, sc[0])) < 0) ||
        (rc = buf_put(&e->out, sc + 1, rest)) < 0)
        return rc;
    (void)at;
    /* no literal: the tables stay, and the state moves by what the
     * decoder would do with these bytes (last template, header, tag),
     * set here; with a literal the caller decodes the op to move it */
    *simple = !literal;
    if (*simple) {
        if (tmpl >= 0)
            e->st.last_tmpl = tmpl;
        e->st.last_h = h;
        e->st.have_h = 1;
        e->st.last_tag = sc[0];
        e->st.have_tag = 1;
        if (names) {
            set_last_name(&e->st.last_coll, coll, cl);
            set_last_name(&e->st.last_field, field, fl);
        }
    }
    return CRDT_OK;
}

static long
author_find(const pk_state *st, const crdt_change *c)
{
    if (st->have_author &&
        memcmp(st->authors[st->last_author].pk, c->pubkey,
               CRDT_PUBKEY_BYTES) == 0 &&
        memcmp(st->authors[st->last_author].inc, c->incarnation, 8) == 0)
        return (long)st->last_author;
    for (size_t i = 0; i < st->n_authors; i++)
        if (memcmp(st->authors[i].pk, c->pubkey, CRDT_PUBKEY_BYTES) == 0 &&
            memcmp(st->authors[i].inc, c->incarnation, 8) == 0)
            return (long)i;
    return -1;
}

static long
epoch_find(const pk_state *st, const unsigned char *id)
{
    for (size_t i = 0; i < st->n_epochs; i++)
        if (memcmp(st->epochs[i], id, CRDT_HASH_BYTES) == 0)
            return (long)i;
    return -1;
}

/* Write change @p c as a packed record, its bytes being those the record
 * rebuilds (change_rebuilds()), and move the state as dec_record() moves
 * it. CRDT_EPROTO: it cannot be packed (the caller rewinds the state
 * and writes it verbatim). */
static int
enc_record(pk_enc *e, const crdt_change *c)
{
    pk_state *st = &e->st;
    long ai = author_find(st, c), ei = epoch_find(st, c->epoch_id);
    const pk_author *a = ai >= 0 ? &st->authors[ai] : NULL;
    unsigned char f = F_PACKED;
    crdt__mp m = { c->ops, c->ops + c->ops_len };
    uint32_t n_ops;
    uint64_t expected = a != NULL && a->has_last ? a->next_hlc : 0, later = 0;
    int64_t dh;
    int rc;

    if ((ai < 0 && st->n_authors >= PK_AUTHORS_MAX) ||
        (ei < 0 && st->n_epochs >= PK_EPOCHS_MAX))
        return CRDT_EPROTO;
    if (c->sig != NULL)
        f |= F_SIG;
    if (a != NULL && a->has_last && a->next_seq == c->seq &&
        memcmp(a->last_hash, c->prev, CRDT_HASH_BYTES) == 0)
        f |= F_CHAINED;
    if (ai >= 0 && st->have_author && st->last_author == (size_t)ai)
        f |= F_SAME_AUTHOR;
    if (ei >= 0 && st->have_epoch && st->last_epoch == (size_t)ei)
        f |= F_SAME_EPOCH;
    if (st->version >= PK_VERSION_2) {
        if (c->n_ops == 1)
            f |= F_ONE_OP;
        f |= hlc_mode(expected, c->hlc, &later);
    }
    if ((rc = buf_byte(&e->out, f)) < 0)
        return rc;
    if (!(f & F_SAME_AUTHOR)) {
        if ((rc = buf_varint(&e->out, ai >= 0 ? (uint64_t)ai
                                              : st->n_authors)) < 0)
            return rc;
        if (ai < 0 && ((rc = buf_put(&e->out, c->pubkey,
                                     CRDT_PUBKEY_BYTES)) < 0 ||
                       (rc = buf_put(&e->out, c->incarnation, 8)) < 0))
            return rc;
    }
    if (!(f & F_SAME_EPOCH)) {
        if ((rc = buf_varint(&e->out, ei >= 0 ? (uint64_t)ei
                                              : st->n_epochs)) < 0)
            return rc;
        if (ei < 0 && (rc = buf_put(&e->out, c->epoch_id,
                                    CRDT_HASH_BYTES)) < 0)
            return rc;
    }
    if (!(f & F_CHAINED) &&
        ((rc = buf_varint(&e->out, c->seq)) < 0 ||
         (rc = buf_put(&e->out, c->prev, CRDT_HASH_BYTES)) < 0))
        return rc;
    dh = (int64_t)(c->hlc - expected);
    if (st->version >= PK_VERSION_2 && (f & F_HLC) != F_HLC_DELTA) {
        if ((f & F_HLC) == F_HLC_LATER_MS &&
            (rc = buf_varint(&e->out, later)) < 0)
            return rc;
    } else {
        /* zigzag; the sign spread without shifting a negative value */
        uint64_t zz = ((uint64_t)dh << 1) ^ (dh < 0 ? UINT64_MAX : 0);
        if ((rc = buf_varint(&e->out, zz)) < 0)
            return rc;
    }
    if (!(f & F_ONE_OP) && (rc = buf_varint(&e->out, c->n_ops)) < 0)
        return rc;
    if (crdt__mp_array(&m, &n_ops) < 0 || n_ops != c->n_ops)
        return CRDT_EPROTO;
    for (uint32_t i = 0; i < n_ops; i++) {
        const unsigned char *op = m.p;
        size_t at = e->out.len, op_len;
        pk_op o;
        int simple = 0, parsed;

        /* one read finds the op's end and what the compact form takes
         * (the same end crdt__mp_skip() finds); other ops are skipped */
        parsed = op_parse_at(&o, op, (size_t)(m.end - op), &op_len) ==
                 CRDT_OK;
        if (parsed)
            m.p = op + op_len;
        else if (crdt__mp_skip(&m) < 0)
            return CRDT_EPROTO;
        op_len = (size_t)(m.p - op);

        rc = parsed ? enc_op_compact(e, op, &o, &simple) : CRDT_EPROTO;
        if (rc == CRDT_EPROTO) { /* not one of ours: the raw form */
            e->out.len = at;
            if ((rc = buf_byte(&e->out, 3)) < 0 ||
                (rc = buf_varint(&e->out, (uint64_t)op_len)) < 0 ||
                (rc = buf_put(&e->out, op, op_len)) < 0)
                return rc;
            /* the decoder takes a raw op as it is, moving no table, when
             * op_parse() refuses it (every text and list op): nothing to
             * decode then; otherwise decoding finds it not canonical */
            simple = !parsed;
        } else if (rc < 0) {
            return rc;
        }
        /* the op moves the tables, the template and the tag as the
         * decoder moves them: decode it, so the next op's choices see
         * what the receiver will see */
        if (!simple) {
            pk_dec d = { st, { e->out.p, at, e->out.len }, { 0 } };
            e->scratch.len = 0;
            e->scratch.max = CRDT_CHANGE_MAX;
            rc = dec_op(&d, &e->scratch);
            if (rc < 0 || d.in.at != e->out.len)
                return rc < 0 && rc != CRDT_ELIMIT ? rc : CRDT_EPROTO;
            if ((rc = index_sync(&e->idx, st, e->out.p)) < 0)
                return rc;
        }
    }
    if (m.p != m.end)
        return CRDT_EPROTO; /* bytes after the ops: not rebuilt */
    if (c->sig != NULL && (rc = buf_put(&e->out, c->sig, 64)) < 0)
        return rc;
    /* the tables and the author's chain as dec_record() leaves them */
    if (ai < 0) {
        pk_author *na;
        if (grow((void **)&st->authors, &st->cap_authors, st->n_authors + 1,
                 sizeof *st->authors) < 0)
            return CRDT_ENOMEM;
        na = &st->authors[st->n_authors];
        memset(na, 0, sizeof *na);
        memcpy(na->pk, c->pubkey, CRDT_PUBKEY_BYTES);
        memcpy(na->inc, c->incarnation, 8);
        ai = (long)st->n_authors++;
    }
    if (ei < 0) {
        if (grow((void **)&st->epochs, &st->cap_epochs, st->n_epochs + 1,
                 sizeof *st->epochs) < 0)
            return CRDT_ENOMEM;
        memcpy(st->epochs[st->n_epochs], c->epoch_id, CRDT_HASH_BYTES);
        ei = (long)st->n_epochs++;
    }
    st->authors[ai].has_last = 1;
    st->authors[ai].next_seq = c->seq + c->n_ops;
    st->authors[ai].next_hlc = c->hlc + c->n_ops;
    memcpy(st->authors[ai].last_hash, c->hash, CRDT_HASH_BYTES);
    st->have_author = 1;
    st->last_author = (size_t)ai;
    st->have_epoch = 1;
    st->last_epoch = (size_t)ei;
    return CRDT_OK;
}

static int pack_changes(unsigned char **out, size_t *out_len,
                        const crdt_bytes *changes, const crdt_change *dec,
                        const unsigned char *hashes,
                        const crdt__mitem *const *items, size_t n,
                        int version);

int
crdt_changes_pack(unsigned char **out, size_t *out_len,
                  const crdt_bytes *changes, size_t n)
{
    return pack_changes(out, out_len, changes, NULL, NULL, NULL, n,
                        PK_VERSION);
}

int
crdt_changes_pack_hashed(unsigned char **out, size_t *out_len,
                         const crdt_bytes *changes,
                         const unsigned char *hashes, size_t n)
{
    if (hashes == NULL && n > 0)
        return CRDT_EINVAL;
    return pack_changes(out, out_len, changes, NULL, hashes, NULL, n,
                        PK_VERSION);
}

int
crdt__changes_pack_hashed(unsigned char **out, size_t *out_len,
                          const crdt_bytes *changes,
                          const unsigned char *hashes, size_t n)
{
    return pack_changes(out, out_len, changes, NULL, hashes, NULL, n,
                        PK_VERSION);
}

int
crdt_changes_pack_version(unsigned char **out, size_t *out_len,
                          const crdt_bytes *changes,
                          const unsigned char *hashes, size_t n, int version)
{
    if (version != PK_VERSION && version != PK_VERSION_2)
        return CRDT_EINVAL;
    return pack_changes(out, out_len, changes, NULL, hashes, NULL, n,
                        version);
}

int
crdt__changes_pack_decoded(unsigned char **out, size_t *out_len,
                           const crdt_bytes *changes, const crdt_change *dec,
                           size_t n)
{
    return pack_changes(out, out_len, changes, dec, NULL, NULL, n,
                        PK_VERSION);
}

int
crdt__changes_pack_items(unsigned char **out, size_t *out_len,
                         const crdt__mitem *const *items, size_t n)
{
    return pack_changes(out, out_len, NULL, NULL, NULL, items, n,
                        PK_VERSION);
}

/* @p v as a shortest msgpack uint is what @p q (@p avail bytes) begins
 * with: its length, else 0. */
static size_t
mp_uint_at(const unsigned char *q, size_t avail, uint64_t v)
{
    unsigned char t[9];
    pk_buf b = { t, 0, sizeof t, sizeof t };

    if (buf_mp_uint(&b, v) < 0 || b.len > avail || memcmp(q, t, b.len) != 0)
        return 0;
    return b.len;
}

/* A format-2 body's head up to seq: 99 02, then space, epoch, pubkey
 * and incarnation, each a bin 8 of its size (c4 NN) */
#define HEAD_FIXED (2 + 18 + 34 + 34 + 10)

/* Whether the bytes @p p, @p len of change @p c are those a packed
 * record of it rebuilds (dec_record()): every msgpack header in its
 * shortest form, as our writer makes them (a change from another
 * writer, or of format 1, may differ). Its ops are checked one by one
 * as they are packed: an op in another form goes raw, byte for byte.
 * Only the headers are compared: where they stand as the record
 * rebuilds them, the decoder read @p c's fields from the very bytes
 * between them, so those are the fields the record carries.
 * @return 1 (it does), 0 (it does not). */
static int
change_rebuilds(const crdt_change *c, const unsigned char *p, size_t len)
{
    static const unsigned char bin_at[] = { 2, 2 + 18, 2 + 18 + 34,
                                            2 + 18 + 34 + 34 };
    static const unsigned char bin_size[] = { CRDT_SPACE_ID_BYTES,
                                              CRDT_HASH_BYTES,
                                              CRDT_PUBKEY_BYTES, 8 };
    unsigned char outer[6], arr[5];
    pk_buf o = { outer, 0, sizeof outer, sizeof outer };
    pk_buf a = { arr, 0, sizeof arr, sizeof arr };
    const unsigned char *body, *q, *end = p + len, *ops_end;
    size_t n;

    if (len < 2 || c->ops < p || c->ops > end ||
        c->ops_len > (size_t)(end - c->ops) || p[0] != 0x92 ||
        (p[1] != 0xc4 && p[1] != 0xc5 && p[1] != 0xc6))
        return 0;
    /* 92 and the body's bin header, shortest for where the ops end */
    body = p + 1 + (p[1] == 0xc4 ? 2 : p[1] == 0xc5 ? 3 : 5);
    ops_end = c->ops + c->ops_len;
    if (body > c->ops || buf_byte(&o, 0x92) < 0 ||
        buf_mp_len(&o, 0, 0, 0xc4, 0xc5, 0xc6,
                   (uint64_t)(ops_end - body)) < 0 ||
        p + o.len != body || memcmp(p, outer, o.len) != 0)
        return 0;
    if ((size_t)(ops_end - body) < HEAD_FIXED || body[0] != 0x99 ||
        body[1] != 2)
        return 0;
    for (size_t i = 0; i < sizeof bin_at; i++)
        if (body[bin_at[i]] != 0xc4 || body[bin_at[i] + 1] != bin_size[i])
            return 0;
    q = body + HEAD_FIXED;
    if ((n = mp_uint_at(q, (size_t)(ops_end - q), c->seq)) == 0)
        return 0;
    q += n;
    if ((n = mp_uint_at(q, (size_t)(ops_end - q), c->hlc)) == 0)
        return 0;
    q += n;
    /* prev, then the ops' array header, shortest */
    if (buf_mp_len(&a, 0x90, 15, 0, 0xdc, 0xdd, c->n_ops) < 0 ||
        (size_t)(ops_end - q) < 2 + CRDT_HASH_BYTES + a.len ||
        q[0] != 0xc4 || q[1] != CRDT_HASH_BYTES)
        return 0;
    q += 2 + CRDT_HASH_BYTES;
    if (q != c->ops || memcmp(q, arr, a.len) != 0)
        return 0;
    /* the signature: c0, or c4 40 and its 64 bytes */
    if (c->sig == NULL)
        return ops_end + 1 == end && ops_end[0] == 0xc0;
    return (size_t)(end - ops_end) == 66 && ops_end[0] == 0xc4 &&
           ops_end[1] == 64 && c->sig == ops_end + 2;
}

/* Each record is written in the one form the unpacker accepts, from a
 * change whose bytes that record rebuilds (change_rebuilds(), the ops
 * by enc_op_compact()), and the state moves as the unpacker's does: a
 * record is not unpacked again to check it. With @p dec each change's
 * decode is at hand already; with @p hashes its header is decoded
 * without hashing its body (its ops are walked as they are packed). */
static int
pack_changes(unsigned char **out, size_t *out_len, const crdt_bytes *changes,
             const crdt_change *dec, const unsigned char *hashes,
             const crdt__mitem *const *items, size_t n, int version)
{
    pk_enc e;
    crdt_change c;
    size_t space_at;
    int rc = CRDT_OK, have_space = 0;

    if (out == NULL || out_len == NULL ||
        (changes == NULL && items == NULL && n > 0))
        return CRDT_EINVAL;
    *out = NULL;
    *out_len = 0;
    memset(&e, 0, sizeof e);
    e.st.last_tmpl = -1;
    e.st.version = version;
    e.out.max = CRDT_CHANGES_PACKED_MAX;
    {
        /* sized once, near what the records take (a packed record is
         * about its change's size or less): growing from a page by
         * doubling copied and touched every smaller stage again */
        size_t want = 64;
        for (size_t i = 0; i < n && want < e.out.max; i++) {
            size_t len = items != NULL ? items[i]->len : changes[i].len;
            want += len < e.out.max ? len + 8 : e.out.max;
        }
        if (want > e.out.max)
            want = e.out.max;
        if ((e.out.p = malloc(want)) == NULL) {
            rc = CRDT_ENOMEM;
            goto done;
        }
        /* a large buffer is fresh pages: faulted in with one call, not
         * one fault per page as the packing reaches it */
        crdt__prefault(e.out.p, want);
        e.out.cap = want;
    }
    if ((rc = buf_byte(&e.out, (unsigned char)version)) < 0)
        goto done;
    space_at = e.out.len;
    if ((rc = buf_put(&e.out, e.st.space, CRDT_SPACE_ID_BYTES)) < 0 ||
        (rc = buf_varint(&e.out, n)) < 0)
        goto done;
    for (size_t i = 0; i < n; i++) {
        crdt_bytes item_bytes;
        const crdt_bytes *ch = &item_bytes;
        size_t at = e.out.len;
        pk_state keep;
        pk_author saved;
        long ai = -1;
        int packed = 0, fits = 0;

        if (items != NULL) {
            item_bytes.data = items[i]->data;
            item_bytes.len = items[i]->len;
        } else {
            ch = &changes[i];
        }
        if ((items != NULL
                 ? crdt__change_views_inside(&items[i]->c, ch->data, ch->len)
                       ? (c = items[i]->c, CRDT_OK)
                       : crdt__change_decode_hashed(&c, ch->data, ch->len,
                                                    items[i]->c.hash)
             : dec != NULL ? (c = dec[i], CRDT_OK)
             : hashes != NULL
                 ? crdt__change_decode_hashed(&c, ch->data, ch->len,
                                              hashes + i * CRDT_HASH_BYTES)
                 : crdt_change_decode(&c, ch->data, ch->len)) == CRDT_OK &&
            c.version == 2 &&
            (!have_space || memcmp(c.space_id, e.st.space,
                                   CRDT_SPACE_ID_BYTES) == 0) &&
            change_rebuilds(&c, ch->data, ch->len))
            fits = 1;
        if (fits) {
            if (!have_space) { /* the message's space: the first one's */
                memcpy(e.st.space, c.space_id, CRDT_SPACE_ID_BYTES);
                memcpy(e.out.p + space_at, c.space_id, CRDT_SPACE_ID_BYTES);
                have_space = 1;
            }
            keep = e.st;
            if ((ai = author_find(&e.st, &c)) >= 0)
                saved = e.st.authors[ai];
            rc = enc_record(&e, &c);
            if (rc == CRDT_ENOMEM)
                goto done;
            packed = rc == CRDT_OK;
            if (!packed) {
                state_rewind(&e.st, &keep);
                if (ai >= 0)
                    e.st.authors[ai] = saved;
            }
        }
        if (!packed) { /* verbatim: what it is, byte for byte */
            e.out.len = at;
            if (e.idx.indexed > e.st.n_names) { /* names of the record */
                e.idx.indexed = 0;
                if (e.idx.cap > 0)
                    memset(e.idx.slot, 0, e.idx.cap * sizeof *e.idx.slot);
            }
            if ((rc = buf_byte(&e.out, 0)) < 0 ||
                (rc = buf_varint(&e.out, ch->len)) < 0 ||
                (rc = buf_put(&e.out, ch->data, ch->len)) < 0)
                goto done;
        }
        if ((rc = index_sync(&e.idx, &e.st, e.out.p)) < 0)
            goto done;
    }
    *out = e.out.p;
    *out_len = e.out.len;
    e.out.p = NULL;
    rc = CRDT_OK;
done:
    free(e.out.p);
    free(e.idx.slot);
    free(e.scratch.p);
    state_free(&e.st);
    return rc;
}
