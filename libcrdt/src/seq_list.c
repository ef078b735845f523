/*
 * seq_list.c: a list field's elements in order, each with its value
 * (the latest 'v' record where one overrides the inserted value).
 */
#include <stdlib.h>
#include <string.h>

#include "seq_int.h"

typedef struct {
    crdt_value *v;
    size_t n, cap, bytes;
    const unsigned char **ov_key; /* overrides: sorted keys (id, 16 bytes) */
    const unsigned char **ov_val;
    size_t nov;
    int rc;
} list_acc;

static const unsigned char *
find_override(const list_acc *a, const crdt_actor *actor, uint64_t ctr)
{
    unsigned char id[16];
    size_t lo = 0, hi = a->nov;

    memcpy(id, actor->b, 8);
    crdt__be64(id + 8, ctr);
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = memcmp(a->ov_key[mid], id, 16);
        if (c == 0)
            return a->ov_val[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static int
list_cb(const seq_run *r, uint64_t off, uint64_t len, void *ctx)
{
    list_acc *a = ctx;
    crdt__mp m = { r->bytes, r->bytes + r->nbytes };

    for (uint64_t i = 0; i < off; i++)
        if (crdt__mp_skip(&m) < 0)
            return a->rc = CRDT_ECORRUPT;
    for (uint64_t i = 0; i < len; i++) {
        crdt_value v;
        const unsigned char *ov = find_override(a, &r->actor,
                                                r->ctr + off + i);
        if (crdt__mp_value(&m, &v) < 0)
            return a->rc = CRDT_ECORRUPT;
        if (ov != NULL) {
            crdt__mp om = { ov + 16, ov + 16 + crdt__rd64(ov - 8) };
            if (crdt__mp_value(&om, &v) < 0)
                return a->rc = CRDT_ECORRUPT;
        }
        if (a->n == a->cap) {
            size_t cap = a->cap ? a->cap * 2 : 16;
            crdt_value *nv = realloc(a->v, cap * sizeof *nv);
            if (nv == NULL)
                return a->rc = CRDT_ENOMEM;
            a->v = nv;
            a->cap = cap;
        }
        a->v[a->n++] = v;
        if (v.type == CRDT_VSTRING || v.type == CRDT_VBYTES)
            a->bytes += v.u.s.len;
    }
    return 0;
}

int
crdt__seq_list(const crdt__seq *s, MDB_txn *txn, MDB_dbi dbi,
               crdt_value **out, size_t *n)
{
    list_acc a = { 0 };
    MDB_cursor *cur;
    MDB_val key, val;
    seq_skey k;
    size_t capov = 0;
    unsigned char **lenbox = NULL;
    int mrc, rc;
    crdt_value *res;
    char *p;

    /* overrides: keep views into the map; the value length sits in a
     * box just before each view (ov - 8), built here */
    if ((rc = crdt__mdb_err(mdb_cursor_open(txn, dbi, &cur))) < 0)
        return rc;
    seq_skey_make(&k, &s->key, 'v', NULL, 0);
    key.mv_size = k.len;
    key.mv_data = k.b;
    for (mrc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE); mrc == 0;
         mrc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        unsigned char *box;
        if (key.mv_size != k.len + 16 || memcmp(key.mv_data, k.b, k.len) != 0)
            break;
        if (val.mv_size < 17)
            continue;
        if (a.nov == capov) {
            capov = capov ? capov * 2 : 16;
            const unsigned char **nk = realloc(a.ov_key, capov * sizeof *nk);
            if (nk != NULL)
                a.ov_key = nk;
            const unsigned char **nv = realloc(a.ov_val, capov * sizeof *nv);
            if (nv != NULL)
                a.ov_val = nv;
            unsigned char **nb = realloc(lenbox, capov * sizeof *nb);
            if (nb != NULL)
                lenbox = nb;
            if (nk == NULL || nv == NULL || nb == NULL) {
                rc = CRDT_ENOMEM;
                break;
            }
        }
        if ((box = malloc(8 + val.mv_size)) == NULL) {
            rc = CRDT_ENOMEM;
            break;
        }
        crdt__be64(box, val.mv_size - 16);
        memcpy(box + 8, val.mv_data, val.mv_size);
        lenbox[a.nov] = box;
        a.ov_key[a.nov] = (unsigned char *)key.mv_data + k.len;
        a.ov_val[a.nov] = box + 8;
        a.nov++;
    }
    if (rc == CRDT_OK && mrc != 0 && mrc != MDB_NOTFOUND)
        rc = crdt__mdb_err(mrc); /* not the end: LMDB's error */
    mdb_cursor_close(cur);
    if (rc == CRDT_OK)
        crdt__seq_walk(s, list_cb, &a);
    if (rc == CRDT_OK)
        rc = a.rc;
    if (rc == CRDT_OK) {
        res = malloc(a.n * sizeof *res + a.bytes + 1);
        if (res == NULL) {
            rc = CRDT_ENOMEM;
        } else {
            p = (char *)(res + a.n);
            for (size_t i = 0; i < a.n; i++) {
                res[i] = a.v[i];
                if (res[i].type == CRDT_VSTRING || res[i].type == CRDT_VBYTES) {
                    memcpy(p, a.v[i].u.s.ptr, a.v[i].u.s.len);
                    res[i].u.s.ptr = p;
                    p += a.v[i].u.s.len;
                }
            }
            *out = res;
            *n = a.n;
        }
    }
    for (size_t i = 0; i < a.nov; i++)
        free(lenbox[i]);
    free(lenbox);
    free(a.ov_key);
    free(a.ov_val);
    free(a.v);
    return rc;
}
