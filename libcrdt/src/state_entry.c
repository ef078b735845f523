/*
 * state_entry.c: one state entry as bytes and back (crdt/raw.h), for
 * code outside libcrdt that walks or rebuilds a state slot (libepoch's
 * migrations). state.c applies ops to the same layout; both follow
 * docs/storage.md section 4:
 *
 *   doc key    coll 0 doc 0                      value hlc | actor
 *   field key  coll 0 doc 0 field 0 KIND rest
 *     'R'  rest empty                            hlc | actor | scalar or c1
 *     'C'  rest actor                            count | sum | last_seq
 *     'D'  rest actor                            count | sum
 *     'S'  rest elem | actor | seq               01 live, 00 removed
 *     'T' / 'L'  rest: the block's record         its value, opaque here
 *   waiting copy  00 'W' original actor | seq | tag | copy actor | copy seq
 *                                                'C' | delta, or 'S'
 *                 (no collection: ahead of every document, op_copy.c)
 *   born after them  coll 0 doc 0 0 'N'                01
 *   lens defaults 00 'V' coll                    n x (name_len(1) | name |
 *                                                scalar_len(u16) | scalar)
 *                 (ahead of the waiting copies: shown where a document
 *                 of coll has no entry of the field, view.c)
 */
#include <string.h>

#include "internal.h"
#include "state_keys.h"

_Static_assert(CRDT_STATE_KEY_MAX == CRDT__KEY_MAX,
               "the public key limit is LMDB's");

#define TOMBSTONE_BYTE 0xc1 /* never valid msgpack: a field tombstone */

static const char KIND_BYTE[] = { 0, 'R', 'C', 'D', 'S', 'T', 'L', 0, 0, 0 };
#define WAIT_REST 40 /* a waiting copy's key after 00 'W' */

/* One name ending in a NUL at or before @p end; 1..CRDT_NAME_MAX bytes. */
static const unsigned char *
name_at(const unsigned char *p, const unsigned char *end, const char **name,
        size_t *len)
{
    const unsigned char *z = memchr(p, 0, (size_t)(end - p));

    if (z == NULL || z == p || (size_t)(z - p) > CRDT_NAME_MAX)
        return NULL;
    *name = (const char *)p;
    *len = (size_t)(z - p);
    return z + 1;
}

int
crdt_state_key_decode(crdt_state_entry *out, const void *kp, size_t kl)
{
    const unsigned char *k = kp, *end, *p;
    crdt_state_entry e;

    if (out == NULL || k == NULL)
        return CRDT_ECORRUPT;
    end = k + kl;
    memset(&e, 0, sizeof e);
    if (kl > 0 && k[0] == 0) { /* no collection: a waiting copy, lens
                                  defaults or damage */
        if (kl >= 3 && k[1] == 'V' &&
            crdt__name_ok_len((const char *)k + 2, kl - 2)) {
            e.kind = CRDT_ENTRY_DEFAULTS;
            e.coll = (const char *)k + 2;
            e.coll_len = kl - 2;
            *out = e;
            return CRDT_OK;
        }
        if (kl != 2 + WAIT_REST || k[1] != 'W')
            return CRDT_ECORRUPT;
        e.kind = CRDT_ENTRY_COPY_WAITING;
        e.rest = k + 2;
        e.rest_len = WAIT_REST;
        *out = e;
        return CRDT_OK;
    }
    if ((p = name_at(k, end, &e.coll, &e.coll_len)) == NULL ||
        (p = name_at(p, end, &e.doc, &e.doc_len)) == NULL)
        return CRDT_ECORRUPT;
    if (p == end) {
        e.kind = CRDT_ENTRY_DOC_TOMBSTONE;
        *out = e;
        return CRDT_OK;
    }
    if (end - p == 2 && p[0] == 0 && p[1] == 'N') {
        e.kind = CRDT_ENTRY_NO_DEFAULTS;
        *out = e;
        return CRDT_OK;
    }
    if ((p = name_at(p, end, &e.field, &e.field_len)) == NULL || p == end)
        return CRDT_ECORRUPT;
    switch (*p++) {
    case 'R': e.kind = CRDT_ENTRY_REGISTER; break;
    case 'C': e.kind = CRDT_ENTRY_COUNTER; break;
    case 'D': e.kind = CRDT_ENTRY_COUNTER_REMOVED; break;
    case 'S': e.kind = CRDT_ENTRY_SET_TAG; break;
    case 'T': e.kind = CRDT_ENTRY_TEXT; break;
    case 'L': e.kind = CRDT_ENTRY_LIST; break;
    default: return CRDT_ECORRUPT;
    }
    e.rest = p;
    e.rest_len = (size_t)(end - p);
    if (e.kind == CRDT_ENTRY_REGISTER && e.rest_len != 0)
        return CRDT_ECORRUPT;
    *out = e;
    return CRDT_OK;
}

static void
stamp_of(crdt_state_entry *e, const unsigned char *v)
{
    e->hlc = crdt__rd64(v);
    memcpy(e->actor.b, v + 8, CRDT_ACTOR_BYTES);
}

static int scalar_len(size_t *out, const crdt_value *v);

int
crdt__field_order(const char *a, size_t al, const char *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);

    if (c != 0)
        return c;
    return al < bl ? -1 : al > bl;
}

int
crdt_state_defaults_next(const unsigned char **pp, const unsigned char *end,
                         const char **field, size_t *field_len,
                         crdt_value *value)
{
    const unsigned char *p = *pp;
    size_t nl, sl;

    if (p == NULL || end == NULL || p > end || field == NULL ||
        field_len == NULL || value == NULL)
        return CRDT_ECORRUPT;
    if (p == end)
        return 0;
    nl = p[0];
    if ((size_t)(end - p) < 1 + nl + 2)
        return CRDT_ECORRUPT;
    if (!crdt__name_ok_len((const char *)p + 1, nl))
        return CRDT_ECORRUPT;
    sl = (size_t)p[1 + nl] << 8 | p[2 + nl];
    if ((size_t)(end - p) - (3 + nl) < sl ||
        crdt__value_parse(value, p + 3 + nl, sl) < 0)
        return CRDT_ECORRUPT;
    *field = (const char *)p + 1;
    *field_len = nl;
    *pp = p + 3 + nl + sl;
    return 1;
}

/* A DEFAULTS value: at least one pair, fields strictly increasing, each
 * scalar whole, at most CRDT_STATE_DEFAULTS_MAX bytes. */
static int
defaults_check(const unsigned char *v, size_t vl)
{
    const unsigned char *p = v, *end = v + vl;
    const char *last = NULL, *f;
    size_t last_len = 0, fl;
    crdt_value val;
    int rc, n = 0;

    if (vl == 0 || vl > CRDT_STATE_DEFAULTS_MAX)
        return CRDT_ECORRUPT;
    while ((rc = crdt_state_defaults_next(&p, end, &f, &fl, &val)) == 1) {
        if (last != NULL && crdt__field_order(last, last_len, f, fl) >= 0)
            return CRDT_ECORRUPT;
        last = f;
        last_len = fl;
        n++;
    }
    return rc < 0 || n == 0 ? CRDT_ECORRUPT : CRDT_OK;
}

int
crdt_state_defaults_put(unsigned char *v, size_t cap, size_t *len,
                        const char *field, size_t field_len,
                        const crdt_value *value)
{
    size_t sl;
    int rc;

    if ((v == NULL && cap > 0) || len == NULL || value == NULL || *len > cap ||
        !crdt__name_ok_len(field, field_len))
        return CRDT_EINVAL;
    if ((rc = scalar_len(&sl, value)) < 0)
        return rc;
    if (sl > 0xffff || 3 + field_len + sl > cap - *len ||
        *len + 3 + field_len + sl > CRDT_STATE_DEFAULTS_MAX)
        return CRDT_ELIMIT;
    v += *len;
    v[0] = (unsigned char)field_len;
    memcpy(v + 1, field, field_len);
    v[1 + field_len] = (unsigned char)(sl >> 8);
    v[2 + field_len] = (unsigned char)sl;
    if (crdt__value_bytes(v + 3 + field_len, sl, value) != (int)sl)
        return CRDT_ERROR;
    *len += 3 + field_len + sl;
    return CRDT_OK;
}

int
crdt_state_entry_decode(crdt_state_entry *out, const void *k, size_t kl,
                        const void *vp, size_t vl)
{
    const unsigned char *v = vp;
    crdt_state_entry e;
    int rc;

    if ((rc = crdt_state_key_decode(&e, k, kl)) < 0)
        return rc;
    if (v == NULL && vl > 0)
        return CRDT_ECORRUPT;
    switch (e.kind) {
    case CRDT_ENTRY_DOC_TOMBSTONE:
        if (vl != 16)
            return CRDT_ECORRUPT;
        stamp_of(&e, v);
        break;
    case CRDT_ENTRY_REGISTER:
        if (vl <= 16)
            return CRDT_ECORRUPT;
        stamp_of(&e, v);
        if (vl == 17 && v[16] == TOMBSTONE_BYTE)
            e.tombstone = 1;
        else if (crdt__value_parse(&e.value, v + 16, vl - 16) < 0)
            return CRDT_ECORRUPT;
        break;
    case CRDT_ENTRY_COUNTER:
    case CRDT_ENTRY_COUNTER_REMOVED:
        if (e.rest_len != CRDT_ACTOR_BYTES ||
            vl != (e.kind == CRDT_ENTRY_COUNTER ? 24u : 16u))
            return CRDT_ECORRUPT;
        memcpy(e.actor.b, e.rest, CRDT_ACTOR_BYTES);
        e.count = crdt__rd64(v);
        e.sum = crdt__rd64(v + 8);
        if (e.kind == CRDT_ENTRY_COUNTER)
            e.seq = crdt__rd64(v + 16);
        break;
    case CRDT_ENTRY_SET_TAG: {
        crdt__mp m = { e.rest, e.rest + e.rest_len };
        if (crdt__mp_value(&m, &e.value) < 0 || m.end - m.p != 16 ||
            vl != 1 || v[0] > 1)
            return CRDT_ECORRUPT;
        memcpy(e.actor.b, m.p, CRDT_ACTOR_BYTES);
        e.seq = crdt__rd64(m.p + 8);
        e.live = v[0];
        break;
    }
    case CRDT_ENTRY_NO_DEFAULTS:
        if (vl != 1 || v[0] != 1)
            return CRDT_ECORRUPT;
        break;
    case CRDT_ENTRY_DEFAULTS:
        if ((rc = defaults_check(v, vl)) < 0)
            return rc;
        e.raw = v;
        e.raw_len = vl;
        break;
    case CRDT_ENTRY_COPY_WAITING:
        if (!((vl == 9 && v[0] == 'C') || (vl == 1 && v[0] == 'S')))
            return CRDT_ECORRUPT;
        /* fall through */
    case CRDT_ENTRY_TEXT:
    case CRDT_ENTRY_LIST:
        e.raw = v;
        e.raw_len = vl;
        break;
    }
    *out = e;
    return CRDT_OK;
}

/* Bytes of a scalar as crdt__value_bytes() writes it (msgpack's shortest
 * form: a str or bin header of 1, 2, 3 or 5 bytes), without writing. */
static int
scalar_len(size_t *out, const crdt_value *v)
{
    unsigned char b[16];
    size_t n;
    int len;

    if (v->type != CRDT_VSTRING && v->type != CRDT_VBYTES) {
        if ((len = crdt__value_bytes(b, sizeof b, v)) < 0)
            return CRDT_EINVAL;
        *out = (size_t)len;
        return CRDT_OK;
    }
    n = v->u.s.len;
    if (n > UINT32_MAX)
        return CRDT_ELIMIT;
    if (v->type == CRDT_VSTRING && n < 32)
        *out = 1 + n;
    else
        *out = n + (n < 256 ? 2 : n < 65536 ? 3 : 5);
    return CRDT_OK;
}

int
crdt_state_entry_encode(unsigned char *k, size_t *kl_out, unsigned char *v,
                        size_t v_cap, size_t *vl_out,
                        const crdt_state_entry *e)
{
    crdt__key kb;
    size_t need = 0;
    int rc, n;

    if (k == NULL || kl_out == NULL || vl_out == NULL || e == NULL ||
        (v == NULL && v_cap > 0) || (unsigned)e->kind >= sizeof KIND_BYTE)
        return CRDT_EINVAL;
    *vl_out = 0;
    if (e->kind == CRDT_ENTRY_COPY_WAITING) {
        if (e->rest == NULL || e->rest_len != WAIT_REST ||
            (e->raw == NULL && e->raw_len > 0))
            return CRDT_EINVAL;
        kb.len = 0;
        crdt__key_bytes(&kb, "\0W", 2);
    } else if (e->kind == CRDT_ENTRY_DEFAULTS) {
        if (!crdt__name_ok_len(e->coll, e->coll_len) || e->raw == NULL ||
            defaults_check(e->raw, e->raw_len) < 0)
            return CRDT_EINVAL;
        kb.len = 0;
        crdt__key_bytes(&kb, "\0V", 2);
        crdt__key_bytes(&kb, e->coll, e->coll_len);
    } else if (!crdt__name_ok_len(e->coll, e->coll_len) ||
               !crdt__name_ok_len(e->doc, e->doc_len) ||
               (e->kind != CRDT_ENTRY_DOC_TOMBSTONE &&
                e->kind != CRDT_ENTRY_NO_DEFAULTS &&
                !crdt__name_ok_len(e->field, e->field_len))) {
        return CRDT_EINVAL;
    } else {
        crdt__key_doc(&kb, e->coll, e->coll_len, e->doc, e->doc_len);
    }
    if (e->kind == CRDT_ENTRY_NO_DEFAULTS)
        crdt__key_bytes(&kb, "\0N", 2);
    else if (e->kind != CRDT_ENTRY_DOC_TOMBSTONE &&
             e->kind != CRDT_ENTRY_COPY_WAITING &&
             e->kind != CRDT_ENTRY_DEFAULTS) {
        crdt__key_field(&kb, e->field, e->field_len);
        crdt__key_byte(&kb, (unsigned char)KIND_BYTE[e->kind]);
    }
    switch (e->kind) {
    case CRDT_ENTRY_DOC_TOMBSTONE:
        need = 16;
        break;
    case CRDT_ENTRY_REGISTER:
        if (e->tombstone)
            need = 17;
        else if ((rc = scalar_len(&need, &e->value)) < 0)
            return rc;
        else
            need += 16;
        break;
    case CRDT_ENTRY_COUNTER:
    case CRDT_ENTRY_COUNTER_REMOVED:
        crdt__key_bytes(&kb, e->actor.b, CRDT_ACTOR_BYTES);
        need = e->kind == CRDT_ENTRY_COUNTER ? 24 : 16;
        break;
    case CRDT_ENTRY_SET_TAG: {
        unsigned char el[CRDT__ELEM_MAX];
        if ((n = crdt__value_bytes(el, sizeof el, &e->value)) < 0)
            return CRDT_ELIMIT;
        crdt__key_bytes(&kb, el, (size_t)n);
        crdt__key_bytes(&kb, e->actor.b, CRDT_ACTOR_BYTES);
        crdt__key_u64(&kb, e->seq);
        need = 1;
        break;
    }
    case CRDT_ENTRY_DEFAULTS:
        need = e->raw_len;
        break;
    case CRDT_ENTRY_NO_DEFAULTS:
        need = 1;
        break;
    case CRDT_ENTRY_COPY_WAITING:
    case CRDT_ENTRY_TEXT:
    case CRDT_ENTRY_LIST:
        if ((e->rest == NULL && e->rest_len > 0) ||
            (e->raw == NULL && e->raw_len > 0))
            return CRDT_EINVAL;
        crdt__key_bytes(&kb, e->rest, e->rest_len);
        need = e->raw_len;
        break;
    }
    if (kb.len > CRDT_STATE_KEY_MAX)
        return CRDT_ELIMIT;
    if (need > v_cap) {
        *vl_out = need;
        return CRDT_ELIMIT;
    }
    switch (e->kind) {
    case CRDT_ENTRY_DOC_TOMBSTONE:
    case CRDT_ENTRY_REGISTER:
        crdt__be64(v, e->hlc);
        memcpy(v + 8, e->actor.b, CRDT_ACTOR_BYTES);
        if (e->kind == CRDT_ENTRY_REGISTER && e->tombstone)
            v[16] = TOMBSTONE_BYTE;
        else if (e->kind == CRDT_ENTRY_REGISTER &&
                 crdt__value_bytes(v + 16, need - 16, &e->value) !=
                     (int)(need - 16))
            return CRDT_ERROR; /* scalar_len() and the packer disagree */
        break;
    case CRDT_ENTRY_COUNTER:
    case CRDT_ENTRY_COUNTER_REMOVED:
        crdt__be64(v, e->count);
        crdt__be64(v + 8, e->sum);
        if (e->kind == CRDT_ENTRY_COUNTER)
            crdt__be64(v + 16, e->seq);
        break;
    case CRDT_ENTRY_SET_TAG:
        v[0] = e->live ? 1 : 0;
        break;
    case CRDT_ENTRY_NO_DEFAULTS:
        v[0] = 1;
        break;
    case CRDT_ENTRY_TEXT:
    case CRDT_ENTRY_LIST:
    case CRDT_ENTRY_COPY_WAITING:
    case CRDT_ENTRY_DEFAULTS:
        if (need > 0)
            memcpy(v, e->raw, need);
        break;
    }
    memcpy(k, kb.b, kb.len);
    *kl_out = kb.len;
    *vl_out = need;
    return CRDT_OK;
}
