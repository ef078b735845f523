/* replica_util.c: helpers for tests that drive replicas. */
#include "support/replica_util.h"

#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lmdb.h>
#include <sodium.h>

#include "crdt/raw.h"
#include "crdt/text.h"
#include "internal.h"
#include "mergeaid.h"
#include "support/support.h"

crdt_replica *
tu_create(char *dir, size_t size, const unsigned char *space)
{
    crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
    crdt_replica *r = NULL;
    char sub[300];

    ck_assert_int_eq(test_tmpdir(dir, size), 0);
    snprintf(sub, sizeof sub, "%s/r", dir);
    o.create = 1;
    o.space_id = space;
    ck_assert_int_eq(crdt_replica_open(&r, sub, &o), CRDT_OK);
    return r;
}

void
tu_pair_create(crdt_replica **a, char *da, crdt_replica **b, char *db,
               size_t dir_size)
{
    unsigned char space[16];

    *a = tu_create(da, dir_size, NULL);
    crdt_replica_space_id(*a, space);
    *b = tu_create(db, dir_size, space);
}

crdt_replica *
tu_clone_open(const char *dir, char *clone_dir, size_t size)
{
    char cmd[700];
    crdt_replica *r;

    ck_assert_int_eq(test_tmpdir(clone_dir, size), 0);
    snprintf(cmd, sizeof cmd, "cp -r %s/r %s/r", dir, clone_dir);
    ck_assert_int_eq(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "%s/r", clone_dir);
    ck_assert_int_eq(crdt_replica_open(&r, cmd, NULL), CRDT_OK);
    return r;
}

uint64_t
tu_quarantine_count(crdt_replica *r)
{
    crdt_raw *t;
    uint64_t q = 0;

    ck_assert_int_eq(crdt_raw_begin(&t, r, 0), CRDT_OK);
    ck_assert_int_eq(crdt_raw_count(&q, t, CRDT_DB_QUARANTINE), CRDT_OK);
    crdt_raw_abort(t);
    return q;
}

void
tu_set_member(crdt_replica *r, crdt_replica *who, int yes)
{
    unsigned char pk[32];
    char hex[65];
    crdt_value v = crdt_value_bool(yes);
    crdt_txn *t;

    crdt_replica_public_key(who, pk);
    crdt_hex(hex, pk, sizeof pk);
    ck_assert_int_eq(crdt_txn_begin(&t, r), CRDT_OK);
    ck_assert_int_eq(crdt_txn_put(t, "$members", hex, "member", &v),
                     CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
}

void
tu_pair_close(crdt_replica *a, const char *da, crdt_replica *b,
              const char *db)
{
    crdt_replica_close(a);
    crdt_replica_close(b);
    test_rmtree(da);
    test_rmtree(db);
}

void
tu_state_put_ghost(crdt_replica *r, const char *field, int64_t v)
{
    crdt_raw *t;
    crdt_op op;
    crdt_actor ghost;

    memset(&op, 0, sizeof op);
    op.kind = CRDT_OP_PUT;
    op.coll = "c";
    op.coll_len = 1;
    op.doc = "d";
    op.doc_len = 1;
    op.field = field;
    op.field_len = strlen(field);
    op.value.type = CRDT_VINT;
    op.value.u.i = v;
    memset(ghost.b, 0x7e, sizeof ghost.b);
    ck_assert_int_eq(crdt_raw_begin(&t, r, 1), CRDT_OK);
    ck_assert_int_eq(crdt_raw_apply_op(t, &op, UINT64_MAX / 2, &ghost, 1),
                     CRDT_OK);
    ck_assert_int_eq(crdt_raw_commit(t), CRDT_OK);
}

int
tu_sync_one_way(crdt_replica *to, crdt_replica *from)
{
    crdt_read *rd;
    crdt_vv *vv;
    crdt_export *e;
    crdt_bytes *items = NULL;
    unsigned char **copies = NULL;
    size_t n = 0, cap = 0;
    const unsigned char *p;
    size_t len;
    int rc;

    ck_assert_int_eq(crdt_read_begin(&rd, to), CRDT_OK);
    ck_assert_int_eq(crdt_read_vv(&vv, rd), CRDT_OK);
    crdt_read_end(rd);
    ck_assert_int_eq(crdt_export_begin(&e, from, vv), CRDT_OK);
    while (crdt_export_next(e, &p, &len) == CRDT_OK) {
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            items = realloc(items, cap * sizeof *items);
            copies = realloc(copies, cap * sizeof *copies);
        }
        copies[n] = malloc(len);
        memcpy(copies[n], p, len);
        items[n].data = copies[n];
        items[n].len = len;
        n++;
    }
    crdt_export_end(e);
    crdt_vv_free(vv);
    rc = crdt_merge(NULL, to, items, n);
    for (size_t i = 0; i < n; i++)
        free(copies[i]);
    free(copies);
    free(items);
    return rc;
}

void
tu_field_str(char *buf, size_t size, crdt_replica *r, const char *coll,
             const char *doc, const char *field)
{
    crdt_read *rd;
    crdt_field f;
    int rc;

    buf[0] = 0;
    ck_assert_int_eq(crdt_read_begin(&rd, r), CRDT_OK);
    rc = crdt_read_field(&f, rd, coll, doc, field);
    if (rc == CRDT_OK) {
        switch (f.kind) {
        case CRDT_FIELD_REGISTER:
        case CRDT_FIELD_TEXT:
            if (f.value.type == CRDT_VINT)
                snprintf(buf, size, "%" PRId64, f.value.u.i);
            else if (f.value.type == CRDT_VSTRING)
                snprintf(buf, size, "\"%.*s\"", (int)f.value.u.s.len,
                         f.value.u.s.ptr);
            else if (f.value.type == CRDT_VNULL)
                snprintf(buf, size, "null");
            else
                snprintf(buf, size, "reg:%d", (int)f.value.type);
            break;
        case CRDT_FIELD_COUNTER:
            snprintf(buf, size, "c%" PRId64, f.counter);
            break;
        case CRDT_FIELD_SET:
        case CRDT_FIELD_LIST: {
            size_t off = (size_t)snprintf(buf, size, "[");
            for (size_t i = 0; i < f.n_elems && off < size; i++) {
                const crdt_value *v = &f.elems[i];
                if (v->type == CRDT_VINT)
                    off += (size_t)snprintf(buf + off, size - off, "%s%" PRId64,
                                            i ? "," : "", v->u.i);
                else
                    off += (size_t)snprintf(buf + off, size - off, "%s\"%.*s\"",
                                            i ? "," : "", (int)v->u.s.len,
                                            v->u.s.ptr);
            }
            if (off < size)
                snprintf(buf + off, size - off, "]");
            break;
        }
        }
    } else {
        ck_assert_int_eq(rc, CRDT_ENOTFOUND);
    }
    crdt_read_end(rd);
}

void
tu_hash(char *hex65, crdt_replica *r)
{
    crdt_read *rd;
    crdt_stats st;

    ck_assert_int_eq(crdt_read_begin(&rd, r), CRDT_OK);
    ck_assert_int_eq(crdt_read_stats(&st, rd), CRDT_OK);
    crdt_read_end(rd);
    crdt_hex(hex65, st.state_hash, 32);
}

int
tu_put_int(crdt_replica *r, const char *coll, const char *doc,
           const char *field, int64_t v)
{
    crdt_txn *t;
    crdt_value val = crdt_value_int(v);
    int rc = crdt_txn_begin(&t, r);

    if (rc < 0)
        return rc;
    rc = crdt_txn_put(t, coll, doc, field, &val);
    if (rc < 0) {
        crdt_txn_abort(t);
        return rc;
    }
    return crdt_txn_commit(t, NULL);
}

typedef struct {
    const char *coll, *doc, *field;
    crdt_value v;
} tu_put_args;

static int
tu_put_fn(crdt_txn *t, void *arg)
{
    const tu_put_args *a = arg;

    return crdt_txn_put(t, a->coll, a->doc, a->field, &a->v);
}

int
tu_write_int(crdt_replica *r, const char *coll, const char *doc,
             const char *field, int64_t v)
{
    tu_put_args a = { coll, doc, field, crdt_value_int(v) };

    return crdt_txn_write(r, tu_put_fn, &a, NULL);
}

void
tu_put_numbered(crdt_replica *r, const char *coll, const char *prefix,
                int width, int n, const char *field)
{
    for (int i = 0; i < n; i++) {
        char doc[64];
        snprintf(doc, sizeof doc, "%s%0*d", prefix, width, i);
        ck_assert_int_eq(tu_put_int(r, coll, doc, field, i), CRDT_OK);
    }
}

/* Every change @p e gives, copied; ends @p e. */
static tu_batch
export_drain(crdt_export *e)
{
    tu_batch out = { NULL, 0 };
    const unsigned char *p;
    size_t len;

    while (crdt_export_next(e, &p, &len) == CRDT_OK) {
        unsigned char *c = malloc(len);
        crdt_bytes *v = realloc(out.v, (out.n + 1) * sizeof *out.v);

        ck_assert(c != NULL && v != NULL);
        memcpy(c, p, len);
        out.v = v;
        out.v[out.n].data = c;
        out.v[out.n].len = len;
        out.n++;
    }
    crdt_export_end(e);
    return out;
}

static tu_batch
export_lacking(crdt_replica *r, const crdt_vv *lacks)
{
    crdt_export *e;

    ck_assert_int_eq(crdt_export_begin(&e, r, lacks), CRDT_OK);
    return export_drain(e);
}

tu_batch
tu_export_as_stored(crdt_replica *r)
{
    crdt_export *e;

    ck_assert_int_eq(crdt_export_begin_as_stored(&e, r, NULL), CRDT_OK);
    return export_drain(e);
}

int
tu_merge_batch(crdt_replica *r, void *batch)
{
    const tu_batch *x = batch;

    return crdt_merge(NULL, r, x->v, x->n);
}

tu_batch
tu_export_all(crdt_replica *r)
{
    return export_lacking(r, NULL);
}

tu_batch
tu_export_beyond(crdt_replica *r, crdt_replica *holder)
{
    crdt_read *rd;
    crdt_vv *vv = NULL;
    tu_batch out;

    ck_assert_int_eq(crdt_read_begin(&rd, holder), CRDT_OK);
    ck_assert_int_eq(crdt_read_vv(&vv, rd), CRDT_OK);
    crdt_read_end(rd);
    out = export_lacking(r, vv);
    crdt_vv_free(vv);
    return out;
}

crdt_stats
tu_stats(crdt_replica *r)
{
    crdt_read *rd;
    crdt_stats st;

    ck_assert_int_eq(crdt_read_begin(&rd, r), CRDT_OK);
    ck_assert_int_eq(crdt_read_stats(&st, rd), CRDT_OK);
    crdt_read_end(rd);
    return st;
}

uint64_t
tu_pending(crdt_replica *r)
{
    return tu_stats(r).pending;
}

void
tu_batch_free(tu_batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        free((void *)b->v[i].data);
    free(b->v);
    b->v = NULL;
    b->n = 0;
}

void
tu_log_put_run(crdt_replica *r, const crdt_bytes *list, size_t n)
{
    unsigned char *packed = NULL, *val, key[16];
    size_t plen = 0;
    uint64_t last;
    crdt_change c;
    crdt_raw *t;

    ck_assert_uint_ge(n, 2);
    ck_assert_int_eq(crdt_change_decode(&c, list[n - 1].data,
                                        list[n - 1].len), CRDT_OK);
    last = c.seq + c.n_ops - 1;
    crdt__log_key(key, &c.actor, last);
    ck_assert_int_eq(crdt_changes_pack(&packed, &plen, list, n), CRDT_OK);
    val = malloc(plen + 1);
    ck_assert_ptr_nonnull(val);
    val[0] = 0xc1;
    memcpy(val + 1, packed, plen);
    ck_assert_int_eq(crdt_raw_begin(&t, r, 1), CRDT_OK);
    ck_assert_int_eq(crdt_raw_put(t, CRDT_DB_LOG, key, sizeof key, val,
                                  plen + 1), CRDT_OK);
    ck_assert_int_eq(crdt_raw_commit(t), CRDT_OK);
    free(val);
    crdt_free(packed);
}

void
tu_change_alter_op(crdt_bytes *b)
{
    crdt_change c;
    unsigned char *p = (unsigned char *)b->data;
    size_t at;

    ck_assert_int_eq(crdt_change_decode(&c, b->data, b->len), CRDT_OK);
    at = (size_t)(c.ops - b->data) + c.ops_len - 1;
    p[at] = p[at] == 0x01 ? 0x02 : 0x01; /* still a positive fixint or a
                                            value's last byte */
    ck_assert_int_eq(crdt_change_decode(&c, b->data, b->len), CRDT_OK);
}

void
tu_db_digest(crdt_replica *r, int db, unsigned char out[32])
{
    crypto_generichash_state st;
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_val k, v;
    int rc;

    crypto_generichash_init(&st, NULL, 0, 32);
    ck_assert_int_eq(crdt__txn_begin(r, 0, &txn), CRDT_OK);
    ck_assert_int_eq(mdb_cursor_open(txn, r->dbi[db], &cur), 0);
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        uint64_t kl = k.mv_size, vl = v.mv_size;
        crypto_generichash_update(&st, (const void *)&kl, sizeof kl);
        crypto_generichash_update(&st, k.mv_data, k.mv_size);
        crypto_generichash_update(&st, (const void *)&vl, sizeof vl);
        crypto_generichash_update(&st, v.mv_data, v.mv_size);
    }
    ck_assert_int_eq(rc, MDB_NOTFOUND);
    mdb_cursor_close(cur);
    crdt__txn_end(r, txn, 0);
    crypto_generichash_final(&st, out, 32);
}

void
tu_digest_all(crdt_replica *r, unsigned char out[32])
{
    crypto_generichash_state st;
    unsigned char d[32];

    crypto_generichash_init(&st, NULL, 0, 32);
    for (int db = 0; db < CRDT_DB__COUNT; db++) {
        tu_db_digest(r, db, d);
        crypto_generichash_update(&st, d, sizeof d);
    }
    crypto_generichash_final(&st, out, 32);
}

void
tu_merge_aid_always(int on)
{
    crdt__mergeaid_min_bytes = on ? 0 : CRDT__MERGEAID_MIN_BYTES;
    crdt__mergeaid_split_min = on ? 0 : CRDT__MERGEAID_SPLIT_MIN;
}

int
tu_all_kinds(crdt_txn *t, void *arg)
{
    int i = *(const int *)arg;
    crdt_value v = crdt_value_int(i), s = crdt_value_str("x", 1);
    char doc[16];
    int rc;

    snprintf(doc, sizeof doc, "d%d", i % 4);
    if ((rc = crdt_txn_put(t, "c", doc, "v", &v)) < 0 ||
        (rc = crdt_txn_incr(t, "c", doc, "n", i)) < 0 ||
        (rc = crdt_txn_sadd(t, "c", doc, "s", &s)) < 0 ||
        (rc = crdt_txn_text_insert(t, "c", doc, "t", 0, "ab", 2)) < 0 ||
        (rc = crdt_txn_list_insert(t, "c", doc, "l", 0, &v)) < 0 ||
        (i % 2 == 1 &&
         (rc = crdt_txn_text_delete(t, "c", doc, "t", 1, 1)) < 0) ||
        (i % 2 == 1 && (rc = crdt_txn_list_set(t, "c", doc, "l", 0, &s)) < 0) ||
        (i % 3 == 0 && (rc = crdt_txn_srem(t, "c", doc, "s", &s)) < 0) ||
        (i % 5 == 0 && (rc = crdt_txn_del_field(t, "c", doc, "v")) < 0) ||
        (i % 7 == 6 && (rc = crdt_txn_del_doc(t, "c", doc)) < 0))
        return rc;
    return CRDT_OK;
}

int
tu_write_all_kinds(crdt_replica *r, int i, int shared)
{
    crdt_txn *t;
    int rc;

    if (shared)
        return crdt_txn_write(r, tu_all_kinds, &i, NULL);
    if ((rc = crdt_txn_begin(&t, r)) < 0)
        return rc;
    if ((rc = tu_all_kinds(t, &i)) < 0) {
        crdt_txn_abort(t);
        return rc;
    }
    return crdt_txn_commit(t, NULL);
}

static uint64_t
text_len(crdt_replica *r, const char *doc)
{
    crdt_read *rd;
    uint64_t n = 0;

    ck_assert_int_eq(crdt_read_begin(&rd, r), CRDT_OK);
    if (crdt_read_seq_len(&n, rd, "c", doc, "t") != CRDT_OK)
        n = 0;
    crdt_read_end(rd);
    return n;
}

void
tu_edit_seqs_both(crdt_replica *x, crdt_replica *y)
{
    for (int round = 0; round < 3; round++) {
        crdt_replica *r[2] = { x, y };
        for (int k = 0; k < 2; k++) {
            for (int i = 0; i < 6; i++) {
                crdt_value v = crdt_value_int(100 * round + 10 * k + i);
                crdt_txn *t;
                char c[2] = { (char)('a' + (i + k + round) % 26), 0 };
                /* one types at the end, the other at the start */
                uint64_t at = k ? 0 : text_len(r[k], "d2");

                ck_assert_int_eq(crdt_txn_begin(&t, r[k]), CRDT_OK);
                ck_assert_int_eq(crdt_txn_text_insert(t, "c", "d2", "t",
                                                      at, c, 1),
                                 CRDT_OK);
                ck_assert_int_eq(crdt_txn_list_insert(t, "c", "d3", "l", 0,
                                                      &v),
                                 CRDT_OK);
                ck_assert_int_eq(crdt_txn_text_insert(t, "c", "d3", "t", 0,
                                                      "xyz", 3),
                                 CRDT_OK);
                if (i % 3 == 2 && text_len(r[k], "d2") > 3) {
                    ck_assert_int_eq(crdt_txn_text_delete(t, "c", "d2", "t",
                                                          1, 2),
                                     CRDT_OK);
                    ck_assert_int_eq(crdt_txn_list_delete(t, "c", "d3", "l",
                                                          1, 1),
                                     CRDT_OK);
                    ck_assert_int_eq(crdt_txn_list_set(t, "c", "d3", "l", 0,
                                                       &v),
                                     CRDT_OK);
                }
                ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
            }
        }
        if (round == 1)
            ck_assert_int_eq(tu_sync_one_way(y, x), CRDT_OK);
    }
}

void
tu_owner_space(unsigned char space[16], unsigned char nonce[16],
               const unsigned char *seed)
{
    unsigned char pk[32], sk[64];

    crypto_sign_seed_keypair(pk, sk, seed);
    randombytes_buf(nonce, CRDT_SPACE_NONCE_BYTES);
    crdt_space_id_for_owner(space, pk, nonce);
    sodium_memzero(sk, sizeof sk);
}

crdt_replica *
tu_create_seeded(char *dir, size_t size, const unsigned char *space,
                 const unsigned char *seed, const unsigned char *nonce)
{
    crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
    crdt_replica *r = NULL;
    crdt_txn *t;

    ck_assert_int_eq(test_tmpdir(dir, size), 0);
    o.create = 1;
    o.seed = seed;
    o.space_id = space;
    ck_assert_int_eq(crdt_replica_open(&r, dir, &o), CRDT_OK);
    if (nonce != NULL) {
        ck_assert_int_eq(crdt_txn_begin(&t, r), CRDT_OK);
        ck_assert_int_eq(crdt_txn_member_genesis(t, nonce), CRDT_OK);
        ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    }
    return r;
}

int
tu_set_role(crdt_replica *r, const unsigned char *pk, crdt_role role)
{
    crdt_txn *t;
    int rc;

    if ((rc = crdt_txn_begin(&t, r)) < 0)
        return rc;
    if ((rc = crdt_txn_member_set(t, pk, role)) < 0) {
        crdt_txn_abort(t);
        return rc;
    }
    return crdt_txn_commit(t, NULL);
}

int
tu_remove_key(crdt_replica *r, const unsigned char *pk)
{
    crdt_txn *t;
    int rc;

    if ((rc = crdt_txn_begin(&t, r)) < 0)
        return rc;
    if ((rc = crdt_txn_member_remove(t, pk)) < 0) {
        crdt_txn_abort(t);
        return rc;
    }
    return crdt_txn_commit(t, NULL);
}

void
tu_removal_scene(tu_trio *t, tu_batch *removal)
{
    unsigned char so[32], sw[32], pw[32], sk[64], space[16], nonce[16];

    randombytes_buf(so, sizeof so);
    randombytes_buf(sw, sizeof sw);
    crypto_sign_seed_keypair(pw, sk, sw);
    tu_owner_space(space, nonce, so);
    t->o = tu_create_seeded(t->dir[0], sizeof t->dir[0], space, so, nonce);
    t->w = tu_create_seeded(t->dir[1], sizeof t->dir[1], space, sw, NULL);
    t->p = tu_create_seeded(t->dir[2], sizeof t->dir[2], space, so, NULL);
    ck_assert_int_eq(tu_set_role(t->o, pw, CRDT_ROLE_WRITER), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(t->w, t->o), CRDT_OK);
    ck_assert_int_eq(tu_put_int(t->w, "c", "x", "f", 1), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(t->o, t->w), CRDT_OK);
    ck_assert_int_eq(tu_remove_key(t->o, pw), CRDT_OK);
    ck_assert_int_eq(tu_put_int(t->w, "c", "x", "f", 2), CRDT_OK);
    ck_assert_int_eq(tu_put_int(t->w, "c", "y", "f", 5), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(t->p, t->w), CRDT_OK);
    *removal = tu_export_beyond(t->o, t->p);
    ck_assert_uint_gt(removal->n, 0);
}

void
tu_trio_close(tu_trio *t)
{
    crdt_replica *r[3] = { t->o, t->w, t->p };

    for (int i = 0; i < 3; i++) {
        crdt_replica_close(r[i]);
        test_rmtree(t->dir[i]);
    }
}

static int
read_seqs(crdt_read *rd, uint64_t *sum)
{
    static const char *const docs[] = { "d2", "d3" };
    int rc = CRDT_OK;

    for (size_t i = 0; i < 2 && rc == CRDT_OK; i++) {
        crdt_value *vals = NULL;
        char *text = NULL, *slice = NULL;
        size_t len = 0, n = 0, sl = 0;
        crdt_cursor cur;
        uint64_t pos = 0;

        if ((rc = crdt_read_text(&text, &len, rd, "c", docs[i], "t")) ==
                CRDT_OK &&
            (rc = crdt_read_text_slice(&slice, &sl, rd, "c", docs[i], "t", 1,
                                       len > 2 ? 2 : 0)) == CRDT_OK &&
            (rc = crdt_read_list(&vals, &n, rd, "c", docs[i], "l")) ==
                CRDT_OK &&
            (rc = crdt_read_cursor_at(&cur, rd, "c", docs[i], "t", 1)) ==
                CRDT_OK)
            rc = crdt_read_cursor_pos(&pos, rd, "c", docs[i], "t", &cur);
        if (rc == CRDT_ENOTFOUND) /* not written yet: counts as empty */
            rc = CRDT_OK;
        for (size_t k = 0; text != NULL && k < len; k++)
            *sum = *sum * 31 + (unsigned char)text[k];
        *sum += 1000 * (n + sl) + pos;
        crdt_text_free(text);
        crdt_text_free(slice);
        crdt_list_free(vals);
    }
    return rc;
}

int
tu_seqs_sum(crdt_replica *r, uint64_t *sum)
{
    crdt_read *rd;
    int rc;

    *sum = 0;
    if ((rc = crdt_read_begin(&rd, r)) < 0)
        return rc;
    rc = read_seqs(rd, sum);
    crdt_read_end(rd);
    return rc;
}

int
tu_type_run(crdt_replica *r, const char *doc)
{
    crdt_read *rd;
    crdt_txn *t;
    uint64_t len = 0;
    int rc;

    if ((rc = crdt_read_begin(&rd, r)) < 0)
        return rc;
    rc = crdt_read_seq_len(&len, rd, "c", doc, "t");
    crdt_read_end(rd);
    if (rc < 0 && rc != CRDT_ENOTFOUND)
        return rc;
    if ((rc = crdt_txn_begin(&t, r)) < 0)
        return rc;
    for (uint64_t i = 0; i < 40 && rc == CRDT_OK; i++) {
        char ch[2] = { (char)('a' + i % 26), 0 };
        rc = crdt_txn_text_insert(t, "c", doc, "t", len + i, ch, 1);
    }
    for (int i = 0; i < 5 && rc == CRDT_OK; i++)
        rc = crdt_txn_text_delete(t, "c", doc, "t", len + 3, 1);
    if (rc < 0) {
        crdt_txn_abort(t);
        return rc;
    }
    return crdt_txn_commit(t, NULL);
}

void
tu_parked_scene(tu_parked *p, crdt_replica *a, crdt_replica *b)
{
    unsigned char space[16];

    crdt_replica_space_id(a, space);
    p->c = tu_create(p->dir, sizeof p->dir, space);
    for (int i = 0; i < 6; i++)
        ck_assert_int_eq(tu_type_run(b, "d2"), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(p->c, b), CRDT_OK);
    tu_edit_seqs_both(p->c, p->c); /* runs at both ends of d2 and d3 */
    ck_assert_int_eq(tu_type_run(p->c, "d2"), CRDT_OK);
    p->from_c = tu_export_beyond(p->c, b);
    p->from_b = tu_export_all(b);
}

void
tu_parked_close(tu_parked *p, crdt_replica *a)
{
    char ha[65], hc[65];

    ck_assert_int_eq(tu_sync_one_way(p->c, a), CRDT_OK);
    tu_hash(ha, a);
    tu_hash(hc, p->c);
    ck_assert_str_eq(ha, hc);
    tu_batch_free(&p->from_c);
    tu_batch_free(&p->from_b);
    crdt_replica_close(p->c);
    test_rmtree(p->dir);
}

void
tu_seqs_pair(crdt_replica *x, crdt_replica *y)
{
    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(tu_write_all_kinds(x, i, 0), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(y, x), CRDT_OK);
    tu_edit_seqs_both(x, y);
}

static tu_batch
batch_of(const tu_batch *from, size_t i, size_t n)
{
    tu_batch out = { calloc(n, sizeof *out.v), n };

    ck_assert_ptr_nonnull(out.v);
    ck_assert_uint_le(i + n, from->n);
    for (size_t k = 0; k < n; k++) {
        out.v[k].len = from->v[i + k].len;
        out.v[k].data = malloc(out.v[k].len);
        ck_assert_ptr_nonnull(out.v[k].data);
        memcpy((void *)out.v[k].data, from->v[i + k].data, out.v[k].len);
    }
    return out;
}

void
tu_pending_scene(tu_pending_cases *p, crdt_replica *a, const char *da,
                 crdt_replica **b, const char *db)
{
    crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
    char path[300];
    tu_batch far, copied;

    ck_assert_int_eq(tu_write_all_kinds(a, 0, 0), CRDT_OK);
    p->copy = tu_clone_open(da, p->dir, sizeof p->dir);
    for (int i = 1; i < 5; i++)
        ck_assert_int_eq(tu_write_all_kinds(a, i, 0), CRDT_OK);
    /* its 2nd as many ops as a's: its 3rd starts where a's 3rd does */
    ck_assert_int_eq(tu_write_all_kinds(p->copy, 1, 0), CRDT_OK);
    for (int i = 1; i < 3; i++)
        ck_assert_int_eq(tu_put_int(p->copy, "c", "fork", "f", i), CRDT_OK);
    p->all = tu_export_all(a);
    ck_assert_uint_eq(p->all.n, 5);
    copied = tu_export_all(p->copy);
    ck_assert_uint_eq(copied.n, 4);
    p->fork = batch_of(&copied, 2, 2);
    tu_batch_free(&copied);
    p->near = batch_of(&p->all, 1, 1);

    crdt_replica_close(*b);
    o.pending_max_actor = 3;
    snprintf(path, sizeof path, "%s/r", db);
    ck_assert_int_eq(crdt_replica_open(b, path, &o), CRDT_OK);
    far = batch_of(&p->all, 3, 2);
    ck_assert_int_eq(crdt_merge(NULL, *b, far.v, far.n), CRDT_OK);
    ck_assert_uint_eq(tu_pending(*b), 2);
    tu_batch_free(&far);
}

void
tu_pending_close(tu_pending_cases *p, crdt_replica *a, crdt_replica *b)
{
    char ha[65], hb[65];

    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    ck_assert_uint_eq(tu_pending(b), 0);
    tu_hash(ha, a);
    tu_hash(hb, b);
    ck_assert_str_eq(ha, hb);
    tu_batch_free(&p->near);
    tu_batch_free(&p->all);
    tu_batch_free(&p->fork);
    crdt_replica_close(p->copy);
    test_rmtree(p->dir);
}

/* Set @p path's format record to @p fmt, nothing else. */
void
tu_set_format(const char *path, unsigned char fmt)
{
    unsigned char v[4] = { 0, 0, 0, fmt };
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi meta;

    ck_assert_int_eq(mdb_env_create(&env), 0);
    ck_assert_int_eq(mdb_env_set_maxdbs(env, 16), 0);
    ck_assert_int_eq(mdb_env_set_mapsize(env, (size_t)1 << 30), 0);
    ck_assert_int_eq(mdb_env_open(env, path, 0, 0600), 0);
    ck_assert_int_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    ck_assert_int_eq(mdb_dbi_open(txn, "meta", 0, &meta), 0);
    ck_assert_int_eq(mdb_put(txn, meta, &(MDB_val){ 6, "format" },
                             &(MDB_val){ 4, v }, 0), 0);
    ck_assert_int_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

/* Turn the replica in @p path into what format 1 wrote: format 1 and
 * the slots' hashes as format 1 defined them. Returns slot 0's. */
void
tu_downgrade_to_1(const char *path, unsigned char v1_hash[32])
{
    static const unsigned char fmt1[4] = { 0, 0, 0, 1 };
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi meta, state;
    unsigned char h[32];

    ck_assert_int_eq(mdb_env_create(&env), 0);
    ck_assert_int_eq(mdb_env_set_maxdbs(env, 16), 0);
    ck_assert_int_eq(mdb_env_set_mapsize(env, (size_t)1 << 30), 0);
    ck_assert_int_eq(mdb_env_open(env, path, 0, 0600), 0);
    ck_assert_int_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    ck_assert_int_eq(mdb_dbi_open(txn, "meta", 0, &meta), 0);
    for (int slot = 0; slot < 2; slot++) {
        ck_assert_int_eq(mdb_dbi_open(txn, slot ? "state1" : "state0", 0,
                                      &state), 0);
        ck_assert_int_eq(crdt__state_rehash(txn, state, 1, h), CRDT_OK);
        ck_assert_int_eq(mdb_put(txn, meta,
                                 &(MDB_val){ 5, slot ? "hash1" : "hash0" },
                                 &(MDB_val){ 32, h }, 0), 0);
        if (slot == 0)
            memcpy(v1_hash, h, 32);
    }
    ck_assert_int_eq(mdb_put(txn, meta, &(MDB_val){ 6, "format" },
                             &(MDB_val){ 4, (void *)fmt1 }, 0), 0);
    ck_assert_int_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}
