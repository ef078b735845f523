/*
 * record.c: epoch records.
 *
 *   record = [ body: bin, creator: bin32, created_ms: uint, sig: bin64 ]
 *   body   = [ 1, number: uint, parent: bin32, schema: {coll: uint},
 *              lens: str, custom: str, heads: bin, state_hash: bin32 ]
 *   id     = BLAKE2b-256("strata-epoch-v1" || body)
 *   sig    = Ed25519(id || created_ms as 8 bytes big-endian)
 *
 * The id covers what the epoch IS (parent, schema, lens, folded heads,
 * resulting state); creator and time are outside it, so two replicas
 * that fold the same ops with the same migration make the same epoch.
 */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "epoch_internal.h"

static const char ID_CONTEXT[] = "strata-epoch-v1";

void
epoch_info_clear(epoch_info *e)
{
    if (e == NULL)
        return;
    free(e->schema);
    free(e->lens);
    free(e->custom);
    free(e->raw);
    memset(e, 0, sizeof *e);
}

uint32_t
epoch_schema_version(const epoch_info *e, const char *coll)
{
    for (size_t i = 0; i < e->n_schema; i++)
        if (strcmp(e->schema[i].coll, coll) == 0)
            return e->schema[i].version;
    return 1;
}

static void
id_of(unsigned char *id, const unsigned char *body, size_t len)
{
    crypto_generichash_state st;

    crypto_generichash_init(&st, NULL, 0, EPOCH_ID_BYTES);
    crypto_generichash_update(&st, (const unsigned char *)ID_CONTEXT,
                              sizeof ID_CONTEXT - 1);
    crypto_generichash_update(&st, body, len);
    crypto_generichash_final(&st, id, EPOCH_ID_BYTES);
}

static void
sig_msg(unsigned char *msg, const unsigned char *id, uint64_t ms)
{
    memcpy(msg, id, EPOCH_ID_BYTES);
    crdt__be64(msg + EPOCH_ID_BYTES, ms);
}

static char *
dup_n(const char *s, size_t n)
{
    char *d = malloc(n + 1);

    if (d != NULL) {
        memcpy(d, s, n);
        d[n] = 0;
    }
    return d;
}

static int
add_seq(const crdt_head *h, void *ctx)
{
    *(uint64_t *)ctx += h->seq;
    return CRDT_OK;
}

int
epoch_record_decode(epoch_info *out, const unsigned char *buf, size_t len)
{
    crdt__mp m = { buf, NULL }, b;
    const unsigned char *body, *sig, *heads;
    uint32_t n, body_len, sl, hl, ns;
    uint64_t version;
    unsigned char msg[EPOCH_ID_BYTES + 8];
    epoch_info e;
    const char *s;
    uint32_t l;

    if (out == NULL || buf == NULL)
        return CRDT_EINVAL;
    if (len > EPOCH_RECORD_MAX)
        return CRDT_ELIMIT;
    m.end = buf + len;
    memset(&e, 0, sizeof e);
    if (crdt__mp_array(&m, &n) < 0 || n != 4 ||
        crdt__mp_bin(&m, &body, &body_len) < 0 ||
        crdt__mp_bin_fixed(&m, e.creator, CRDT_PUBKEY_BYTES) < 0 ||
        crdt__mp_uint(&m, &e.created_ms) < 0 ||
        crdt__mp_bin(&m, &sig, &sl) < 0 || sl != 64 || m.p != m.end)
        return CRDT_EPROTO;
    b.p = body;
    b.end = body + body_len;
    if (crdt__mp_array(&b, &n) < 0 || n != 8 ||
        crdt__mp_uint(&b, &version) < 0)
        return CRDT_EPROTO;
    if (version != EPOCH__FORMAT)
        return CRDT_EVERSION;
    if (crdt__mp_uint(&b, &e.number) < 0 ||
        crdt__mp_bin_fixed(&b, e.parent, EPOCH_ID_BYTES) < 0 ||
        crdt__mp_map(&b, &ns) < 0 || ns > 100000)
        return CRDT_EPROTO;
    e.schema = calloc(ns ? ns : 1, sizeof *e.schema);
    if (e.schema == NULL)
        return CRDT_ENOMEM;
    e.n_schema = ns;
    for (uint32_t i = 0; i < ns; i++) {
        uint64_t v;
        if (crdt__mp_str(&b, &s, &l) < 0 || !crdt__name_ok_len(s, l) ||
            crdt__mp_uint(&b, &v) < 0 || v > UINT32_MAX)
            goto proto;
        memcpy(e.schema[i].coll, s, l);
        e.schema[i].coll[l] = 0;
        e.schema[i].version = (uint32_t)v;
    }
    if (crdt__mp_str(&b, &s, &l) < 0)
        goto proto;
    if ((e.lens = dup_n(s, l)) == NULL)
        goto nomem;
    if (crdt__mp_str(&b, &s, &l) < 0)
        goto proto;
    if ((e.custom = dup_n(s, l)) == NULL)
        goto nomem;
    if (crdt__mp_bin(&b, &heads, &hl) < 0 ||
        crdt__mp_bin_fixed(&b, e.state_hash, CRDT_HASH_BYTES) < 0 ||
        b.p != b.end)
        goto proto;
    e.base_total = 0;
    if (crdt_heads_parse(heads, hl, add_seq, &e.base_total) < 0)
        goto proto;
    id_of(e.id, body, body_len);
    sig_msg(msg, e.id, e.created_ms);
    if (crypto_sign_verify_detached(sig, msg, sizeof msg, e.creator) != 0) {
        epoch_info_clear(&e);
        return CRDT_EAUTH;
    }
    e.raw = malloc(len);
    if (e.raw == NULL)
        goto nomem;
    memcpy(e.raw, buf, len);
    e.raw_len = len;
    *out = e;
    return CRDT_OK;
proto:
    epoch_info_clear(&e);
    return CRDT_EPROTO;
nomem:
    epoch_info_clear(&e);
    return CRDT_ENOMEM;
}

int
epoch__record_heads(const unsigned char **out, size_t *len,
                    const epoch_info *e)
{
    crdt__mp m = { e->raw, e->raw + e->raw_len }, b;
    const unsigned char *body;
    uint32_t n, bl, hl;

    if (e->raw == NULL)
        return CRDT_ENOTFOUND; /* genesis folds nothing */
    if (crdt__mp_array(&m, &n) < 0 || crdt__mp_bin(&m, &body, &bl) < 0)
        return CRDT_ECORRUPT;
    b.p = body;
    b.end = body + bl;
    if (crdt__mp_array(&b, &n) < 0)
        return CRDT_ECORRUPT;
    for (int i = 0; i < 6; i++)
        if (crdt__mp_skip(&b) < 0)
            return CRDT_ECORRUPT;
    if (crdt__mp_bin(&b, out, &hl) < 0)
        return CRDT_ECORRUPT;
    *len = hl;
    return CRDT_OK;
}

int
epoch__record_make(epoch_info *out, crdt_replica *r, uint64_t number,
                   const unsigned char *parent,
                   const epoch_schema_entry *schema, size_t n_schema,
                   const char *lens, const char *custom,
                   const unsigned char *heads, size_t heads_len,
                   const unsigned char *state_hash)
{
    crdt__enc body, rec;
    unsigned char id[EPOCH_ID_BYTES], msg[EPOCH_ID_BYTES + 8],
        sig[CRDT_SIG_BYTES];
    unsigned char pk[CRDT_PUBKEY_BYTES];
    uint64_t now = crdt_raw_now_ms();
    int rc;

    crdt__enc_init(&body);
    crdt__enc_init(&rec);
    msgpack_pack_array(&body.pk, 8);
    msgpack_pack_uint64(&body.pk, EPOCH__FORMAT);
    msgpack_pack_uint64(&body.pk, number);
    crdt__enc_bin(&body, parent, EPOCH_ID_BYTES);
    msgpack_pack_map(&body.pk, n_schema);
    for (size_t i = 0; i < n_schema; i++) {
        crdt__enc_str(&body, schema[i].coll, strlen(schema[i].coll));
        msgpack_pack_uint64(&body.pk, schema[i].version);
    }
    crdt__enc_str(&body, lens, strlen(lens));
    crdt__enc_str(&body, custom, strlen(custom));
    crdt__enc_bin(&body, heads, heads_len);
    crdt__enc_bin(&body, state_hash, CRDT_HASH_BYTES);
    if (crdt__enc_ok(&body) < 0) { /* never sign a short body */
        crdt__enc_free(&body);
        crdt__enc_free(&rec);
        return CRDT_ENOMEM;
    }
    id_of(id, (unsigned char *)body.sb.data, body.sb.size);

    crdt_replica_public_key(r, pk);
    sig_msg(msg, id, now);
    rc = crdt_replica_sign(sig, r, msg, sizeof msg);
    if (rc < 0) {
        crdt__enc_free(&body);
        crdt__enc_free(&rec);
        return rc;
    }

    msgpack_pack_array(&rec.pk, 4);
    crdt__enc_bin(&rec, body.sb.data, body.sb.size);
    crdt__enc_bin(&rec, pk, sizeof pk);
    msgpack_pack_uint64(&rec.pk, now);
    crdt__enc_bin(&rec, sig, sizeof sig);
    rc = crdt__enc_ok(&rec);
    if (rc == CRDT_OK)
        rc = epoch_record_decode(out, (unsigned char *)rec.sb.data,
                                 rec.sb.size);
    crdt__enc_free(&body);
    crdt__enc_free(&rec);
    return rc;
}

int
epoch__genesis(epoch_info *out, crdt_raw *t)
{
    memset(out, 0, sizeof *out);
    out->lens = strdup("");
    out->custom = strdup("");
    out->schema = calloc(1, sizeof *out->schema);
    if (out->lens == NULL || out->custom == NULL || out->schema == NULL) {
        epoch_info_clear(out);
        return CRDT_ENOMEM;
    }
    return CRDT_OK;
    (void)t;
}

static int
is_genesis(crdt_raw *t, const unsigned char *id)
{
    unsigned char cur[EPOCH_ID_BYTES];
    uint64_t num;
    const void *v;
    size_t vl;

    /* the genesis id is the one the replica started with: it has no
     * record, and it is the parent of every epoch 1 */
    int rc = crdt_raw_get(t, CRDT_DB_META, "genesis_id", 10, &v, &vl);

    if (rc == CRDT_OK && vl == EPOCH_ID_BYTES)
        return memcmp(v, id, EPOCH_ID_BYTES) == 0;
    if (rc < 0 && rc != CRDT_ENOTFOUND)
        return rc;
    if ((rc = crdt_raw_get_epoch(t, &num, cur)) < 0)
        return rc == CRDT_ENOTFOUND || rc == CRDT_ECORRUPT ? 0 : rc;
    return num == 0 && memcmp(cur, id, EPOCH_ID_BYTES) == 0;
}

int
epoch__get_in(epoch_info *out, crdt_raw *t, const unsigned char *id)
{
    const void *v;
    size_t vl;
    int rc;

    rc = crdt_raw_get(t, CRDT_DB_EPOCHS, id, EPOCH_ID_BYTES, &v, &vl);
    if (rc == CRDT_ENOTFOUND && (rc = is_genesis(t, id)) != 1)
        return rc == 0 ? CRDT_ENOTFOUND : rc;
    if (rc == 1) {
        rc = epoch__genesis(out, t);
        if (rc == CRDT_OK)
            memcpy(out->id, id, EPOCH_ID_BYTES);
        return rc;
    }
    if (rc < 0)
        return rc;
    rc = epoch_record_decode(out, v, vl);
    /* a stored record that does not decode is damage; memory is not */
    return rc == CRDT_OK || rc == CRDT_ENOMEM ? rc : CRDT_ECORRUPT;
}

int
epoch__current_in(epoch_info *out, crdt_raw *t)
{
    unsigned char id[EPOCH_ID_BYTES];
    int rc = crdt_raw_get_epoch(t, NULL, id);

    if (rc < 0)
        return rc;
    return epoch__get_in(out, t, id);
}

int
epoch__put_in(crdt_raw *t, const epoch_info *e)
{
    return crdt_raw_put(t, CRDT_DB_EPOCHS, e->id, EPOCH_ID_BYTES, e->raw,
                        e->raw_len);
}

int
epoch_current(epoch_info *out, crdt_replica *r)
{
    crdt_raw *t;
    int rc;

    if (out == NULL || r == NULL)
        return CRDT_EINVAL;
    if ((rc = crdt_raw_begin(&t, r, 0)) < 0)
        return rc;
    rc = epoch__current_in(out, t);
    crdt_raw_abort(t);
    return rc;
}

int
epoch_get(epoch_info *out, crdt_replica *r, const unsigned char *id)
{
    crdt_raw *t;
    int rc;

    if (out == NULL || r == NULL || id == NULL)
        return CRDT_EINVAL;
    if ((rc = crdt_raw_begin(&t, r, 0)) < 0)
        return rc;
    rc = epoch__get_in(out, t, id);
    crdt_raw_abort(t);
    return rc;
}

void
epoch_chain_free(epoch_info *chain, size_t n)
{
    for (size_t i = 0; i < n; i++)
        epoch_info_clear(&chain[i]);
    free(chain);
}

int
epoch_chain(epoch_info **out, size_t *n_out, crdt_replica *r)
{
    epoch_info cur, *chain;
    crdt_raw *t;
    size_t n;
    int rc;

    if (out == NULL || n_out == NULL || r == NULL)
        return CRDT_EINVAL;
    if ((rc = crdt_raw_begin(&t, r, 0)) < 0)
        return rc;
    if ((rc = epoch__current_in(&cur, t)) < 0) {
        crdt_raw_abort(t);
        return rc;
    }
    /* a chain as long as its number says, within reason: a record
     * claiming epoch 2^64-1 is corrupt, not a reason to allocate */
    if (cur.number >= EPOCH__CHAIN_MAX) {
        epoch_info_clear(&cur);
        crdt_raw_abort(t);
        return CRDT_ECORRUPT;
    }
    n = (size_t)cur.number + 1;
    chain = calloc(n, sizeof *chain);
    if (chain == NULL) {
        epoch_info_clear(&cur);
        crdt_raw_abort(t);
        return CRDT_ENOMEM;
    }
    chain[n - 1] = cur;
    for (size_t i = n - 1; i > 0; i--) {
        rc = epoch__get_in(&chain[i - 1], t, chain[i].parent);
        if (rc == CRDT_OK && chain[i - 1].number + 1 != chain[i].number)
            rc = CRDT_ECORRUPT;
        if (rc < 0) {
            epoch_chain_free(chain, n);
            crdt_raw_abort(t);
            return rc == CRDT_ENOTFOUND ? CRDT_ECORRUPT : rc;
        }
    }
    crdt_raw_abort(t);
    *out = chain;
    *n_out = n;
    return CRDT_OK;
}

/* The records of epoch_store_records(), inside its write txn. */
struct records {
    const unsigned char *const *recs;
    const size_t *lens;
    size_t n;
};

static int
records_put(crdt_raw *t, void *ctx)
{
    const struct records *x = ctx;
    int rc = CRDT_OK;

    for (size_t i = 0; i < x->n && rc == CRDT_OK; i++) {
        epoch_info e;
        rc = epoch_record_decode(&e, x->recs[i], x->lens[i]);
        if (rc == CRDT_OK) {
            rc = epoch__put_in(t, &e);
            epoch_info_clear(&e);
        }
    }
    return rc;
}

int
epoch_store_records(crdt_replica *r, const unsigned char *const *recs,
                    const size_t *lens, size_t n)
{
    int rc;

    if (r == NULL || (n > 0 && (recs == NULL || lens == NULL)))
        return CRDT_EINVAL;
    /* only an admin's epochs are kept (docs/security.md): checked
     * against our member set before the write txn */
    for (size_t i = 0; i < n; i++) {
        epoch_info e;
        if ((rc = epoch_record_decode(&e, recs[i], lens[i])) < 0)
            return rc;
        rc = epoch__creator_ok(r, e.creator);
        epoch_info_clear(&e);
        if (rc < 0)
            return rc;
    }
    return epoch__write(r, records_put, &(struct records){ recs, lens, n });
}

static int
cmp_number(const void *a, const void *b)
{
    const epoch_info *x = a, *y = b;

    if (x->number != y->number)
        return x->number < y->number ? -1 : 1;
    return memcmp(x->id, y->id, EPOCH_ID_BYTES);
}

int
epoch_all(epoch_info **out, size_t *n_out, crdt_replica *r)
{
    crdt_raw *t;
    crdt_raw_cursor *c;
    const void *k, *v;
    size_t kl, vl, n = 0, cap = 0;
    epoch_info *all = NULL;
    int rc;

    if (out == NULL || n_out == NULL || r == NULL)
        return CRDT_EINVAL;
    if ((rc = crdt_raw_begin(&t, r, 0)) < 0)
        return rc;
    if ((rc = crdt_raw_cursor_open(&c, t, CRDT_DB_EPOCHS)) < 0) {
        crdt_raw_abort(t);
        return rc;
    }
    rc = crdt_raw_cursor_seek(c, NULL, 0, &k, &kl, &v, &vl);
    while (rc == CRDT_OK) {
        if (n == cap) {
            epoch_info *na = realloc(all, (cap ? 2 * cap : 8) * sizeof *na);
            if (na == NULL) {
                rc = CRDT_ENOMEM;
                break;
            }
            all = na;
            cap = cap ? 2 * cap : 8;
        }
        if ((rc = epoch_record_decode(&all[n], v, vl)) < 0) {
            if (rc != CRDT_ENOMEM) /* damage; memory is not */
                rc = CRDT_ECORRUPT;
            break;
        }
        n++;
        rc = crdt_raw_cursor_next(c, &k, &kl, &v, &vl);
    }
    crdt_raw_cursor_close(c);
    crdt_raw_abort(t);
    if (rc != CRDT_ENOTFOUND) {
        epoch_chain_free(all, n);
        return rc;
    }
    if (n > 1)
        qsort(all, n, sizeof *all, cmp_number);
    *out = all;
    *n_out = n;
    return CRDT_OK;
}

int
epoch_record_heads(const unsigned char **out, size_t *len,
                   const epoch_info *e)
{
    if (out == NULL || len == NULL || e == NULL)
        return CRDT_EINVAL;
    return epoch__record_heads(out, len, e);
}

int
epoch__creator_ok(crdt_replica *r, const unsigned char *creator)
{
    crdt_role role;
    int rc;

    if ((rc = crdt_members_owner(r, NULL)) <= 0)
        return rc; /* no owner known: no roles (yet) to check */
    if ((rc = crdt_member_role(r, creator, &role)) < 0)
        return rc;
    return role == CRDT_ROLE_ADMIN || role == CRDT_ROLE_OWNER ? CRDT_OK
                                                               : CRDT_EPERM;
}
