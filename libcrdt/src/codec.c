/*
 * codec.c: the byte layout of changes and ops (docs/storage.md).
 *
 *   change = [ body: bin, sig: bin(64) | nil ]
 *   body   = [ format: 1 | 2, space: bin16, epoch: bin32, pubkey: bin32,
 *              incarnation: bin8, seq: uint, hlc: uint, prev: bin32,
 *              ops: [op...] ]
 *   hash   = BLAKE2b-256(body);  sig = Ed25519("strata-change-v1"||hash)
 *
 * Format 2 (written since) differs from 1 in two ways: the signature may
 * be nil (the change's successor in the same batch or log proves it,
 * merge.c), and an op may refer instead of repeating (a nil name: the
 * one of the op before in this change; a bare uint id: that counter of
 * the change's own actor). Format 1 changes are read as they always were.
 *
 * Encoding uses msgpack-c's packer; decoding the bounded reader in mp.c
 * (an op's usual encodings are read inline first: op_codec.h).
 * Invariants:
 *  (1) A decoded change or op is fully validated: types, lengths, names
 *      (1..64 bytes, UTF-8, no NUL), counts, no trailing bytes.
 *  (2) Encoding is canonical (smallest integer forms, float64 only), so
 *      equal values give equal bytes and equal state hashes.
 */
#include <sodium.h>
#include <string.h>

#include "internal.h"
#include "op_codec.h"

static const char SIG_CONTEXT[] = "strata-change-v1";

/* The packer's writer: into the buffer, remembering a failure. */
static int
enc_write(void *data, const char *p, size_t len)
{
    crdt__enc *e = data;

    if (len == 0)
        return 0;
    if (msgpack_sbuffer_write(&e->sb, p, len) < 0) {
        e->failed = 1;
        return -1;
    }
    return 0;
}

void
crdt__enc_init(crdt__enc *e)
{
    msgpack_sbuffer_init(&e->sb);
    msgpack_packer_init(&e->pk, e, enc_write);
    e->failed = 0;
}

int
crdt__enc_raw(crdt__enc *e, const void *p, size_t len)
{
    return enc_write(e, p, len) < 0 ? CRDT_ENOMEM : CRDT_OK;
}

void
crdt__enc_reset(crdt__enc *e)
{
    msgpack_sbuffer_clear(&e->sb);
    e->failed = 0;
}

void
crdt__enc_free(crdt__enc *e)
{
    msgpack_sbuffer_destroy(&e->sb);
}

int
crdt__enc_str(crdt__enc *e, const char *s, size_t len)
{
    if (msgpack_pack_str(&e->pk, len) < 0 ||
        msgpack_pack_str_body(&e->pk, s, len) < 0)
        return CRDT_ENOMEM;
    return CRDT_OK;
}

int
crdt__enc_bin(crdt__enc *e, const void *p, size_t len)
{
    if (msgpack_pack_bin(&e->pk, len) < 0 ||
        msgpack_pack_bin_body(&e->pk, p, len) < 0)
        return CRDT_ENOMEM;
    return CRDT_OK;
}

int
crdt__enc_value(crdt__enc *e, const crdt_value *v)
{
    int rc = 0;

    switch (v->type) {
    case CRDT_VNULL: rc = msgpack_pack_nil(&e->pk); break;
    case CRDT_VBOOL:
        rc = v->u.b ? msgpack_pack_true(&e->pk) : msgpack_pack_false(&e->pk);
        break;
    case CRDT_VINT: rc = msgpack_pack_int64(&e->pk, v->u.i); break;
    case CRDT_VDOUBLE: rc = msgpack_pack_double(&e->pk, v->u.d); break;
    case CRDT_VSTRING: return crdt__enc_str(e, v->u.s.ptr, v->u.s.len);
    case CRDT_VBYTES: return crdt__enc_bin(e, v->u.s.ptr, v->u.s.len);
    default: return CRDT_EINVAL;
    }
    return rc < 0 ? CRDT_ENOMEM : CRDT_OK;
}

/* A packer target that writes into a fixed buffer. */
typedef struct {
    unsigned char *p;
    size_t len, cap;
} fixed_buf;

static int
fixed_write(void *data, const char *buf, size_t len)
{
    fixed_buf *f = data;

    if (f->cap - f->len < len)
        return -1;
    memcpy(f->p + f->len, buf, len);
    f->len += len;
    return 0;
}

int
crdt__value_bytes(unsigned char *out, size_t cap, const crdt_value *v)
{
    fixed_buf f = { out, 0, cap };
    msgpack_packer pk;
    int rc = 0;

    msgpack_packer_init(&pk, &f, fixed_write);
    switch (v->type) {
    case CRDT_VNULL: rc = msgpack_pack_nil(&pk); break;
    case CRDT_VBOOL: rc = v->u.b ? msgpack_pack_true(&pk)
                                 : msgpack_pack_false(&pk); break;
    case CRDT_VINT: rc = msgpack_pack_int64(&pk, v->u.i); break;
    case CRDT_VDOUBLE: rc = msgpack_pack_double(&pk, v->u.d); break;
    case CRDT_VSTRING:
        rc = msgpack_pack_str(&pk, v->u.s.len);
        if (rc == 0)
            rc = msgpack_pack_str_body(&pk, v->u.s.ptr, v->u.s.len);
        break;
    case CRDT_VBYTES:
        rc = msgpack_pack_bin(&pk, v->u.s.len);
        if (rc == 0)
            rc = msgpack_pack_bin_body(&pk, v->u.s.ptr, v->u.s.len);
        break;
    default:
        return -1;
    }
    return rc < 0 ? -1 : (int)f.len;
}

int
crdt__value_parse(crdt_value *v, const unsigned char *p, size_t len)
{
    crdt__mp m = { p, p + len };

    if (crdt__mp_value(&m, v) < 0 || m.p != m.end)
        return CRDT_ECORRUPT;
    return CRDT_OK;
}

/* The changes of a batch come in runs of one actor: the last key pair
 * and its id are kept per thread, sparing a BLAKE2b per change. */
static _Thread_local struct {
    int ok;
    unsigned char in[CRDT_PUBKEY_BYTES + 8];
    crdt_actor id;
} last_actor;

void
crdt__actor_of(crdt_actor *out, const unsigned char *pk,
               const unsigned char *inc)
{
    unsigned char in[CRDT_PUBKEY_BYTES + 8];

    memcpy(in, pk, CRDT_PUBKEY_BYTES);
    memcpy(in + CRDT_PUBKEY_BYTES, inc, 8);
    if (last_actor.ok && memcmp(last_actor.in, in, sizeof in) == 0) {
        *out = last_actor.id;
        return;
    }
    crypto_generichash(out->b, CRDT_ACTOR_BYTES, in, sizeof in, NULL, 0);
    memcpy(last_actor.in, in, sizeof in);
    last_actor.id = *out;
    last_actor.ok = 1;
}

int
crdt__name_ok_len(const char *s, size_t len)
{
    size_t i = 0;

    if (len == 0 || len > CRDT_NAME_MAX)
        return 0;
    /* most names are plain ASCII: one pass, no calls */
    while (i < len && (unsigned char)s[i] - 1u < 0x7fu)
        i++;
    if (i == len)
        return 1;
    return memchr(s + i, 0, len - i) == NULL &&
           crdt__utf8_valid(s + i, len - i);
}

int
crdt__name_ok(const char *s)
{
    return s != NULL && crdt__name_ok_len(s, strnlen(s, CRDT_NAME_MAX + 1));
}

/* @p walk: check that the ops are well-formed msgpack filling the body
 * exactly; without it they are checked as they are iterated. @p hash:
 * the body's hash, computed earlier from these same bytes, or NULL: it
 * is computed here. */
static int
decode(crdt_change *out, const unsigned char *buf, size_t len, int walk,
       const unsigned char *hash)
{
    crdt__mp m = { buf, NULL }, b;
    const unsigned char *body, *sig;
    uint32_t n, body_len, sig_len, n_ops;
    uint64_t version;
    crdt_change c;

    if (buf == NULL || out == NULL)
        return CRDT_EINVAL;
    if (len > CRDT_CHANGE_MAX)
        return CRDT_ELIMIT;
    m.end = buf + len;
    if (crdt__mp_array(&m, &n) < 0 || n != 2 ||
        crdt__mp_bin(&m, &body, &body_len) < 0)
        return CRDT_EPROTO;
    if (m.p < m.end && *m.p == 0xc0) { /* nil: no signature */
        m.p++;
        sig = NULL;
    } else if (crdt__mp_bin(&m, &sig, &sig_len) < 0 ||
               sig_len != crypto_sign_BYTES) {
        return CRDT_EPROTO;
    }
    if (m.p != m.end)
        return CRDT_EPROTO;

    b.p = body;
    b.end = body + body_len;
    if (crdt__mp_array(&b, &n) < 0 || n != 9 ||
        crdt__mp_uint(&b, &version) < 0)
        return CRDT_EPROTO;
    if (version != CRDT__FORMAT && version != CRDT__FORMAT_V1)
        return CRDT_EVERSION;
    if (sig == NULL && version == CRDT__FORMAT_V1)
        return CRDT_EPROTO; /* format 1 is always signed */
    c.version = (unsigned)version;
    if (crdt__mp_bin_fixed(&b, c.space_id, CRDT_SPACE_ID_BYTES) < 0 ||
        crdt__mp_bin_fixed(&b, c.epoch_id, CRDT_HASH_BYTES) < 0 ||
        crdt__mp_bin_fixed(&b, c.pubkey, CRDT_PUBKEY_BYTES) < 0 ||
        crdt__mp_bin_fixed(&b, c.incarnation, 8) < 0 ||
        crdt__mp_uint(&b, &c.seq) < 0 || crdt__mp_uint(&b, &c.hlc) < 0 ||
        crdt__mp_bin_fixed(&b, c.prev, CRDT_HASH_BYTES) < 0)
        return CRDT_EPROTO;
    c.ops = b.p;
    if (crdt__mp_array(&b, &n_ops) < 0)
        return CRDT_EPROTO;
    if (n_ops == 0 || n_ops > CRDT_CHANGE_MAX_OPS)
        return n_ops == 0 ? CRDT_EPROTO : CRDT_ELIMIT;
    c.n_ops = n_ops;
    /* seq counts from 1; neither seq nor hlc may wrap inside the change */
    if (c.seq == 0 || c.seq > UINT64_MAX / 2 - n_ops ||
        c.hlc > UINT64_MAX - n_ops)
        return CRDT_EPROTO;
    c.ops_len = (size_t)(b.end - c.ops);
    if (walk && crdt__change_check_ops(&c) < 0)
        return CRDT_EPROTO;
    c.sig = sig;
    if (hash != NULL)
        memcpy(c.hash, hash, CRDT_HASH_BYTES);
    else
        crypto_generichash(c.hash, CRDT_HASH_BYTES, body, body_len, NULL, 0);
    crdt__actor_of(&c.actor, c.pubkey, c.incarnation);
    *out = c;
    return CRDT_OK;
}

int
crdt_change_decode(crdt_change *out, const unsigned char *buf, size_t len)
{
    return decode(out, buf, len, 1, NULL);
}

int
crdt__change_decode_header(crdt_change *out, const unsigned char *buf,
                           size_t len)
{
    return decode(out, buf, len, 0, NULL);
}

int
crdt__change_decode_hashed(crdt_change *out, const unsigned char *buf,
                           size_t len, const unsigned char *hash)
{
    return decode(out, buf, len, 0, hash);
}

int
crdt__change_check_ops(const crdt_change *c)
{
    crdt__mp b = { c->ops, c->ops + c->ops_len };
    uint32_t n;

    if (crdt__mp_array(&b, &n) < 0 || n != c->n_ops)
        return CRDT_EPROTO;
    for (uint32_t i = 0; i < n; i++)
        if (crdt__mp_skip(&b) < 0)
            return CRDT_EPROTO;
    return b.p == b.end ? CRDT_OK : CRDT_EPROTO;
}

int
crdt_change_peek(crdt_actor *actor_out, uint64_t *last_seq_out,
                 const unsigned char *buf, size_t len)
{
    crdt__mp m = { buf, NULL }, b;
    const unsigned char *body, *p;
    unsigned char pk[CRDT_PUBKEY_BYTES], inc[8];
    uint32_t n, body_len, n_ops;
    uint64_t version, seq, hlc;

    if (actor_out == NULL || last_seq_out == NULL || buf == NULL)
        return CRDT_EINVAL;
    m.end = buf + len;
    if (crdt__mp_array(&m, &n) < 0 || n != 2 ||
        crdt__mp_bin(&m, &body, &body_len) < 0)
        return CRDT_EPROTO;
    b.p = body;
    b.end = body + body_len;
    if (crdt__mp_array(&b, &n) < 0 || n != 9 ||
        crdt__mp_uint(&b, &version) < 0 ||
        (version != CRDT__FORMAT && version != CRDT__FORMAT_V1) ||
        crdt__mp_bin(&b, &p, &n) < 0 || /* space */
        crdt__mp_bin(&b, &p, &n) < 0 || /* epoch */
        crdt__mp_bin_fixed(&b, pk, sizeof pk) < 0 ||
        crdt__mp_bin_fixed(&b, inc, sizeof inc) < 0 ||
        crdt__mp_uint(&b, &seq) < 0 || crdt__mp_uint(&b, &hlc) < 0 ||
        crdt__mp_bin(&b, &p, &n) < 0 || /* prev */
        crdt__mp_array(&b, &n_ops) < 0 || n_ops == 0 || seq == 0 ||
        seq > UINT64_MAX / 2)
        return CRDT_EPROTO;
    crdt__actor_of(actor_out, pk, inc);
    *last_seq_out = seq + n_ops - 1;
    return CRDT_OK;
}

static void
sig_message(unsigned char *msg, const unsigned char *hash)
{
    memcpy(msg, SIG_CONTEXT, sizeof SIG_CONTEXT - 1);
    memcpy(msg + sizeof SIG_CONTEXT - 1, hash, CRDT_HASH_BYTES);
}

int
crdt_change_verify(const crdt_change *c)
{
    unsigned char msg[sizeof SIG_CONTEXT - 1 + CRDT_HASH_BYTES];

    if (c->sig == NULL)
        return CRDT_EAUTH; /* only a signed successor can vouch for it */
    sig_message(msg, c->hash);
    if (crypto_sign_verify_detached(c->sig, msg, sizeof msg, c->pubkey) != 0)
        return CRDT_EAUTH;
    return CRDT_OK;
}

int
crdt_change_proves(const crdt_change *next, const crdt_change *c)
{
    return next != NULL && c != NULL &&
           memcmp(next->actor.b, c->actor.b, CRDT_ACTOR_BYTES) == 0 &&
           memcmp(next->pubkey, c->pubkey, CRDT_PUBKEY_BYTES) == 0 &&
           memcmp(next->incarnation, c->incarnation, 8) == 0 &&
           next->seq == c->seq + c->n_ops &&
           memcmp(next->prev, c->hash, CRDT_HASH_BYTES) == 0;
}

size_t
crdt_change_strip_sig(unsigned char *buf, size_t len)
{
    crdt_change c;
    size_t at;

    if (buf == NULL || len < 66 ||
        crdt__change_decode_header(&c, buf, len) != CRDT_OK ||
        c.sig == NULL || c.version != CRDT__FORMAT)
        return 0;
    /* the signature is the last item: bin8 of 64 bytes (c4 40 ...) */
    at = (size_t)(c.sig - buf) - 2;
    if (at + 66 != len || buf[at] != 0xc4 || buf[at + 1] != 0x40)
        return 0;
    buf[at] = 0xc0;
    return at + 1;
}

int
crdt__change_sign(unsigned char *sig, const unsigned char *hash,
                  const unsigned char *sk)
{
    unsigned char msg[sizeof SIG_CONTEXT - 1 + CRDT_HASH_BYTES];

    sig_message(msg, hash);
    return crypto_sign_detached(sig, NULL, msg, sizeof msg, sk) == 0
               ? CRDT_OK : CRDT_ERROR;
}

void
crdt_op_iter_init(crdt_op_iter *it, const crdt_change *c)
{
    crdt__mp m = { c->ops, c->ops + c->ops_len };
    uint32_t n = 0;

    memset(it, 0, sizeof *it);
    it->compact = c->version >= CRDT__FORMAT;
    it->self = c->actor;
    if (crdt__mp_array(&m, &n) == CRDT_OK) {
        it->p = m.p;
        it->end = m.end;
        it->left = n;
    }
}

int
crdt__op_name(crdt__mp *m, const char **s, size_t *len, crdt_op_iter *ctx,
              int which)
{
    const char **held;
    size_t *held_len;
    uint32_t n;

    if (ctx == NULL) {
        if (crdt__mp_name(m, s, &n) < 0)
            return CRDT_EPROTO;
        *len = n;
        return CRDT_OK;
    }
    held = which == 0 ? &ctx->coll : which == 1 ? &ctx->doc : &ctx->field;
    held_len = which == 0 ? &ctx->coll_len
               : which == 1 ? &ctx->doc_len : &ctx->field_len;
    if (ctx->compact && m->p < m->end && *m->p == 0xc0) {
        if (*held == NULL)
            return CRDT_EPROTO; /* no op before named one */
        m->p++;
        *s = *held;
        *len = *held_len;
        return CRDT_OK;
    }
    if (crdt__mp_name(m, s, &n) < 0)
        return CRDT_EPROTO;
    *len = n;
    *held = *s;
    *held_len = n;
    return CRDT_OK;
}

int
crdt__op_enc_name(crdt__enc *e, const char *s, size_t len, crdt_op_iter *ctx,
                  int which)
{
    const char **held;
    size_t *held_len;

    if (ctx == NULL || !ctx->compact)
        return crdt__enc_str(e, s, len);
    held = which == 0 ? &ctx->coll : which == 1 ? &ctx->doc : &ctx->field;
    held_len = which == 0 ? &ctx->coll_len
               : which == 1 ? &ctx->doc_len : &ctx->field_len;
    if (*held != NULL && *held_len == len && memcmp(*held, s, len) == 0)
        return msgpack_pack_nil(&e->pk) < 0 ? CRDT_ENOMEM : CRDT_OK;
    *held = s;
    *held_len = len;
    return crdt__enc_str(e, s, len);
}

static int
name(crdt__mp *m, const char **s, size_t *len, crdt_op_iter *ctx, int which)
{
    return op_name(m, s, len, ctx, which);
}

int
crdt__op_decode(crdt_op *op, crdt__mp *m)
{
    return crdt__op_decode_in(op, m, NULL);
}

static int op_decode_one(crdt_op *op, crdt__mp *m, crdt_op_iter *ctx,
                         uint32_t n, uint64_t kind);

/* [11, actor: bin8, seq: uint, tag: bin8, (hlc: uint,) op]: @p op
 * copies the op at (actor, seq) of the change whose hash starts with
 * tag, written at stamp hlc when given (5.3). A copy holds one op of
 * kinds 0..10, never another copy. */
static int
copy_decode(crdt_op *op, crdt__mp *m, crdt_op_iter *ctx, uint32_t n)
{
    crdt_actor a;
    unsigned char tag[8];
    uint64_t seq, kind, hlc = 0;
    uint32_t in;

    if ((n != 5 && n != 6) ||
        crdt__mp_bin_fixed(m, a.b, CRDT_ACTOR_BYTES) < 0 ||
        crdt__mp_uint(m, &seq) < 0 || seq < 1 || seq > INT64_MAX ||
        crdt__mp_bin_fixed(m, tag, sizeof tag) < 0 ||
        (n == 6 && (crdt__mp_uint(m, &hlc) < 0 || hlc == 0)) ||
        crdt__mp_array(m, &in) < 0 || in < 4 ||
        crdt__mp_uint(m, &kind) < 0 || kind > CRDT_OP_LSET)
        return CRDT_EPROTO;
    if (op_decode_one(op, m, ctx, in, kind) < 0)
        return CRDT_EPROTO;
    op->is_copy = 1;
    op->copy_actor = a;
    op->copy_seq = seq;
    memcpy(op->copy_tag, tag, sizeof tag);
    op->copy_hlc = hlc;
    return CRDT_OK;
}

int
crdt__op_decode_in(crdt_op *op, crdt__mp *m, crdt_op_iter *ctx)
{
    uint32_t n;
    uint64_t kind;

    memset(op, 0, sizeof *op);
    if (op_array(m, &n) < 0 || n < 4 || op_uint(m, &kind) < 0 ||
        kind > CRDT__OP_COPY)
        return CRDT_EPROTO;
    if (kind == CRDT__OP_COPY)
        return copy_decode(op, m, ctx, n);
    return op_decode_one(op, m, ctx, n, kind);
}

static int
op_decode_one(crdt_op *op, crdt__mp *m, crdt_op_iter *ctx, uint32_t n,
              uint64_t kind)
{
    const unsigned char *obs;

    op->kind = (crdt_op_kind)kind;
    if (kind >= CRDT_OP_TINS)
        return crdt__seq_op_decode(op, m, n, ctx);
    if (name(m, &op->coll, &op->coll_len, ctx, 0) < 0 ||
        name(m, &op->doc, &op->doc_len, ctx, 1) < 0)
        return CRDT_EPROTO;
    if (op->kind != CRDT_OP_DEL_DOC &&
        name(m, &op->field, &op->field_len, ctx, 2) < 0)
        return CRDT_EPROTO;
    switch (op->kind) {
    case CRDT_OP_PUT:
    case CRDT_OP_SADD:
        if (n != 5 || op_value(m, &op->value) < 0)
            return CRDT_EPROTO;
        return CRDT_OK;
    case CRDT_OP_INCR:
        if (n != 5 || op_int(m, &op->delta) < 0)
            return CRDT_EPROTO;
        return CRDT_OK;
    case CRDT_OP_SREM:
        if (n != 6 || op_value(m, &op->value) < 0)
            return CRDT_EPROTO;
        break;
    case CRDT_OP_DEL_FIELD:
        if (n != 5)
            return CRDT_EPROTO;
        break;
    case CRDT_OP_DEL_DOC:
        if (n != 4)
            return CRDT_EPROTO;
        break;
    default:
        return CRDT_EPROTO;
    }
    obs = m->p;
    if (crdt__mp_skip(m) < 0)
        return CRDT_EPROTO;
    op->observed = obs;
    op->observed_len = (size_t)(m->p - obs);
    return CRDT_OK;
}

int
crdt_op_iter_next(crdt_op *out, crdt_op_iter *it)
{
    crdt__mp m;
    int rc;

    if (it->left == 0)
        return CRDT_ENOTFOUND;
    m.p = it->p;
    m.end = it->end;
    rc = crdt__op_decode_in(out, &m, it);
    if (rc < 0) {
        it->left = 0;
        return rc;
    }
    it->p = m.p;
    it->left--;
    if (it->left == 0 && it->p != it->end)
        return CRDT_EPROTO; /* bytes after the last op */
    return CRDT_OK;
}

int
crdt__op_encode(crdt__enc *e, const crdt_op *op)
{
    return crdt__op_encode_in(e, op, NULL);
}

/* Encode one op; the observed part is copied as encoded bytes. */
int
crdt__op_encode_in(crdt__enc *e, const crdt_op *op, crdt_op_iter *ctx)
{
    size_t n = op->kind == CRDT_OP_DEL_DOC ? 4
               : (op->kind == CRDT_OP_SREM ? 6
                  : op->kind == CRDT_OP_DEL_FIELD ? 5 : 5);
    int rc;

    if (op->is_copy &&
        (msgpack_pack_array(&e->pk, op->copy_hlc != 0 ? 6 : 5) < 0 ||
         msgpack_pack_uint64(&e->pk, CRDT__OP_COPY) < 0 ||
         crdt__enc_bin(e, op->copy_actor.b, CRDT_ACTOR_BYTES) < 0 ||
         msgpack_pack_uint64(&e->pk, op->copy_seq) < 0 ||
         crdt__enc_bin(e, op->copy_tag, sizeof op->copy_tag) < 0 ||
         (op->copy_hlc != 0 &&
          msgpack_pack_uint64(&e->pk, op->copy_hlc) < 0)))
        return CRDT_ENOMEM;
    if (op->kind >= CRDT_OP_TINS)
        return crdt__seq_op_encode(e, op, ctx);
    if (msgpack_pack_array(&e->pk, n) < 0 ||
        msgpack_pack_uint64(&e->pk, op->kind) < 0)
        return CRDT_ENOMEM;
    if ((rc = crdt__op_enc_name(e, op->coll, op->coll_len, ctx, 0)) < 0 ||
        (rc = crdt__op_enc_name(e, op->doc, op->doc_len, ctx, 1)) < 0)
        return rc;
    if (op->kind != CRDT_OP_DEL_DOC &&
        (rc = crdt__op_enc_name(e, op->field, op->field_len, ctx, 2)) < 0)
        return rc;
    switch (op->kind) {
    case CRDT_OP_PUT:
    case CRDT_OP_SADD:
        return crdt__enc_value(e, &op->value);
    case CRDT_OP_INCR:
        return msgpack_pack_int64(&e->pk, op->delta) < 0 ? CRDT_ENOMEM
                                                         : CRDT_OK;
    case CRDT_OP_SREM:
        if ((rc = crdt__enc_value(e, &op->value)) < 0)
            return rc;
        /* fall through */
    case CRDT_OP_DEL_FIELD:
    case CRDT_OP_DEL_DOC:
        if (op->observed == NULL || op->observed_len == 0)
            return CRDT_EINVAL;
        return crdt__enc_raw(e, (const char *)op->observed,
                                     op->observed_len) < 0 ? CRDT_ENOMEM
                                                           : CRDT_OK;
    default:
        return CRDT_EINVAL;
    }
}
