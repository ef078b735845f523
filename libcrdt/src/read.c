/*
 * read.c: read transactions: documents, fields, listings, counters.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "state_keys.h"
#include "view.h"

struct crdt_read {
    crdt_replica *r;
    MDB_txn *txn;
    MDB_dbi state;
    crdt__scratch scratch;
    crdt_field field; /* for crdt_read_field() */
    char name[CRDT_NAME_MAX + 1];
};

int
crdt_read_begin(crdt_read **out, crdt_replica *r)
{
    crdt_read *rd;
    int rc, slot;

    if (out == NULL || r == NULL)
        return CRDT_EINVAL;
    rd = calloc(1, sizeof *rd);
    if (rd == NULL)
        return CRDT_ENOMEM;
    rd->r = r;
    if ((rc = crdt__txn_begin(r, 0, &rd->txn)) < 0) {
        free(rd);
        return rc;
    }
    if ((rc = crdt__state_slot(rd->txn, r, &slot)) < 0) {
        crdt__txn_end(r, rd->txn, 0);
        free(rd);
        return rc;
    }
    rd->state = r->dbi[CRDT_DB_STATE0 + slot];
    rd->scratch.r = r;
    *out = rd;
    return CRDT_OK;
}

void
crdt_read_end(crdt_read *rd)
{
    if (rd == NULL)
        return;
    crdt__txn_end(rd->r, rd->txn, 0);
    crdt__scratch_free(&rd->scratch);
    free(rd);
}

int
crdt_read_doc(crdt_read *rd, const char *coll, const char *doc,
              crdt_field_cb cb, void *ctx)
{
    if (rd == NULL || !crdt__name_ok(coll) || !crdt__name_ok(doc))
        return CRDT_EINVAL;
    return crdt__view_doc(&rd->scratch, rd->txn, rd->state, coll,
                          strlen(coll), doc, strlen(doc), NULL, 0, cb, ctx);
}

static int
copy_field(const crdt_field *f, void *ctx)
{
    crdt_read *rd = ctx;

    rd->field = *f;
    snprintf(rd->name, sizeof rd->name, "%s", f->name);
    rd->field.name = rd->name;
    return 0;
}

int
crdt_read_field(crdt_field *out, crdt_read *rd, const char *coll,
                const char *doc, const char *field)
{
    int rc;

    if (out == NULL || rd == NULL || !crdt__name_ok(coll) ||
        !crdt__name_ok(doc) || !crdt__name_ok(field))
        return CRDT_EINVAL;
    rc = crdt__view_doc(&rd->scratch, rd->txn, rd->state, coll,
                        strlen(coll), doc, strlen(doc), field, strlen(field),
                        copy_field, rd);
    if (rc == CRDT_OK)
        *out = rd->field;
    return rc;
}

static int
stop_at_first(const crdt_field *f, void *ctx)
{
    (void)f;
    (void)ctx;
    return 1;
}

/*
 * Walk the distinct names at one level: collections (prefix empty) or the
 * doc ids of one collection (prefix "coll\0"). After each name, jump past
 * all its keys by seeking to name + 0x01.
 */
typedef int (*level_fn)(crdt_read *rd, const char *name, size_t len,
                        void *ctx);

static int
walk_level(crdt_read *rd, const unsigned char *prefix, size_t plen,
           level_fn fn, void *ctx)
{
    MDB_cursor *cur;
    MDB_val k, v;
    unsigned char seek[CRDT__KEY_MAX + 2];
    int rc;

    if ((rc = crdt__mdb_err(mdb_cursor_open(rd->txn, rd->state, &cur))) < 0)
        return rc;
    memcpy(seek, prefix, plen);
    k.mv_size = plen;
    k.mv_data = seek;
    if (plen == 0) { /* past the keys with no collection (op_copy.c) */
        seek[0] = 1;
        k.mv_size = 1;
    }
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0) {
        const unsigned char *kb = k.mv_data, *end;
        size_t nlen;
        char name[CRDT_NAME_MAX + 1];

        if (k.mv_size < plen || memcmp(kb, prefix, plen) != 0)
            break;
        end = memchr(kb + plen, 0, k.mv_size - plen);
        if (end == NULL) {
            rc = MDB_CORRUPTED;
            break;
        }
        nlen = (size_t)(end - (kb + plen));
        if (nlen == 0 || nlen > CRDT_NAME_MAX) {
            rc = MDB_CORRUPTED;
            break;
        }
        memcpy(name, kb + plen, nlen);
        name[nlen] = 0;
        rc = fn(rd, name, nlen, ctx);
        if (rc != 0)
            goto done;
        /* seek past every key starting with prefix + name + 0 */
        memcpy(seek + plen, name, nlen);
        seek[plen + nlen] = 1;
        k.mv_size = plen + nlen + 1;
        k.mv_data = seek;
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    }
    rc = (rc == 0 || rc == MDB_NOTFOUND) ? CRDT_OK : crdt__mdb_err(rc);
done:
    mdb_cursor_close(cur);
    return rc;
}

typedef struct {
    const char *coll;
    crdt_name_cb cb;
    void *ctx;
    uint64_t count;
    int any;
} level_ctx;

static int
doc_level(crdt_read *rd, const char *name, size_t len, void *p)
{
    level_ctx *c = p;
    crdt__scratch s = { 0 };
    int rc;

    rc = crdt__view_doc(&s, rd->txn, rd->state, c->coll, strlen(c->coll),
                        name, len, NULL, 0, stop_at_first, NULL);
    crdt__scratch_free(&s);
    if (rc == CRDT_ENOTFOUND)
        return 0; /* only tombstones */
    if (rc < 0)
        return rc;
    c->count++;
    c->any = 1;
    return c->cb ? c->cb(name, len, c->ctx) : 0;
}

int
crdt_read_docs(crdt_read *rd, const char *coll, crdt_name_cb cb, void *ctx)
{
    unsigned char prefix[CRDT_NAME_MAX + 1];
    level_ctx c = { coll, cb, ctx, 0, 0 };
    size_t cl;

    if (rd == NULL || !crdt__name_ok(coll))
        return CRDT_EINVAL;
    cl = strlen(coll);
    memcpy(prefix, coll, cl);
    prefix[cl] = 0;
    return walk_level(rd, prefix, cl + 1, doc_level, &c);
}

static int
first_doc(const char *name, size_t len, void *ctx)
{
    (void)name;
    (void)len;
    (void)ctx;
    return 1;
}

static int
coll_level(crdt_read *rd, const char *name, size_t len, void *p)
{
    level_ctx *c = p;
    int rc = crdt_read_docs(rd, name, first_doc, NULL);

    if (rc < 0)
        return rc;
    if (rc == 0)
        return 0; /* no live document */
    return c->cb ? c->cb(name, len, c->ctx) : 0;
}

int
crdt_read_collections(crdt_read *rd, crdt_name_cb cb, void *ctx)
{
    level_ctx c = { NULL, cb, ctx, 0, 0 };

    if (rd == NULL)
        return CRDT_EINVAL;
    return walk_level(rd, (const unsigned char *)"", 0, coll_level, &c);
}

static int
count_docs(crdt_read *rd, const char *name, size_t len, void *p)
{
    uint64_t *n = p;
    level_ctx c = { name, NULL, NULL, 0, 0 };
    unsigned char prefix[CRDT_NAME_MAX + 1];
    int rc;

    memcpy(prefix, name, len);
    prefix[len] = 0;
    rc = walk_level(rd, prefix, len + 1, doc_level, &c);
    *n += c.count;
    return rc;
}

int
crdt_read_doc_count(uint64_t *out, crdt_read *rd)
{
    uint64_t n = 0;
    int rc;

    if (out == NULL || rd == NULL)
        return CRDT_EINVAL;
    rc = walk_level(rd, (const unsigned char *)"", 0, count_docs, &n);
    if (rc == CRDT_OK)
        *out = n;
    return rc;
}

int
crdt_read_stats(crdt_stats *out, crdt_read *rd)
{
    MDB_val v;
    int slot, rc;

    if (out == NULL || rd == NULL)
        return CRDT_EINVAL;
    memset(out, 0, sizeof *out);
    if ((rc = crdt__meta_u64(rd->txn, rd->r, "ops_in_log",
                             &out->ops_in_log)) < 0 ||
        (rc = crdt__meta_u64(rd->txn, rd->r, "changes_in_log",
                             &out->changes_in_log)) < 0 ||
        (rc = crdt__meta_u64(rd->txn, rd->r, "pending", &out->pending)) < 0 ||
        (rc = crdt__meta_u64(rd->txn, rd->r, "epoch_num",
                             &out->epoch_number)) < 0 ||
        (rc = crdt__meta_u64(rd->txn, rd->r, "equivocations",
                             &out->equivocations)) < 0)
        return rc;
    rc = crdt__meta_get(rd->txn, rd->r, "epoch_id", &v);
    if (rc == CRDT_OK && v.mv_size == CRDT_HASH_BYTES)
        memcpy(out->epoch_id, v.mv_data, CRDT_HASH_BYTES);
    else if (rc < 0 && rc != CRDT_ENOTFOUND)
        return rc;
    if ((rc = crdt__state_slot(rd->txn, rd->r, &slot)) < 0)
        return rc;
    rc = crdt__meta_get(rd->txn, rd->r, slot ? "hash1" : "hash0", &v);
    if (rc == CRDT_OK && v.mv_size == CRDT_HASH_BYTES)
        memcpy(out->state_hash, v.mv_data, CRDT_HASH_BYTES);
    else if (rc < 0 && rc != CRDT_ENOTFOUND)
        return rc;
    return CRDT_OK;
}

/* for vv.c */
MDB_txn *crdt__read_txn(crdt_read *rd);
crdt_replica *crdt__read_replica(crdt_read *rd);

MDB_txn *
crdt__read_txn(crdt_read *rd)
{
    return rd->txn;
}

uint64_t
crdt_read_txn_id(crdt_read *rd)
{
    return rd != NULL ? (uint64_t)mdb_txn_id(rd->txn) : 0;
}

crdt_replica *
crdt__read_replica(crdt_read *rd)
{
    return rd->r;
}

void
crdt__read_parts(crdt_read *rd, crdt_replica **r, MDB_txn **txn,
                 MDB_dbi *dbi)
{
    *r = rd->r;
    *txn = rd->txn;
    *dbi = rd->state;
}
