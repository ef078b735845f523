/*
 * vv.c: version vectors as a sorted array of (actor, seq).
 *
 * Keeps: (1) entries are in strictly increasing actor order (memcmp), so
 * lookups are binary searches and the encoding is canonical.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define VV_MAX_ENTRIES 65536

typedef struct {
    crdt_actor a;
    uint64_t seq;
} vv_entry;

struct crdt_vv {
    vv_entry *e;
    size_t n, cap;
};

MDB_txn *crdt__read_txn(crdt_read *rd);
crdt_replica *crdt__read_replica(crdt_read *rd);
int crdt__vv_from_heads(crdt_vv **out, MDB_txn *txn, crdt_replica *r);

int
crdt_vv_new(crdt_vv **out)
{
    if (out == NULL)
        return CRDT_EINVAL;
    *out = calloc(1, sizeof **out);
    return *out ? CRDT_OK : CRDT_ENOMEM;
}

void
crdt_vv_free(crdt_vv *vv)
{
    if (vv == NULL)
        return;
    free(vv->e);
    free(vv);
}

static size_t
find(const crdt_vv *vv, const crdt_actor *a, int *found)
{
    size_t lo = 0, hi = vv->n;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = memcmp(vv->e[mid].a.b, a->b, CRDT_ACTOR_BYTES);
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = 0;
    return lo;
}

uint64_t
crdt_vv_get(const crdt_vv *vv, const crdt_actor *actor)
{
    int found;
    size_t i;

    if (vv == NULL)
        return 0;
    i = find(vv, actor, &found);
    return found ? vv->e[i].seq : 0;
}

int
crdt_vv_reserve(crdt_vv *vv, size_t n)
{
    vv_entry *e;

    if (vv == NULL)
        return CRDT_EINVAL;
    if (n > VV_MAX_ENTRIES)
        return CRDT_ELIMIT;
    if (n <= vv->cap)
        return CRDT_OK;
    /* one allocation of the final size: a vector of 10,000 actors built
     * by doubling reallocs moves (and faults in) its pages about twice */
    e = realloc(vv->e, n * sizeof *e);
    if (e == NULL)
        return CRDT_ENOMEM;
    crdt__prefault(e + vv->n, (n - vv->n) * sizeof *e); /* to be filled */
    vv->e = e;
    vv->cap = n;
    return CRDT_OK;
}

int
crdt_vv_copy(crdt_vv **out, const crdt_vv *vv)
{
    crdt_vv *c;
    int rc;

    if (out == NULL || vv == NULL)
        return CRDT_EINVAL;
    *out = NULL;
    if ((rc = crdt_vv_new(&c)) < 0)
        return rc;
    if ((rc = crdt_vv_reserve(c, vv->n)) < 0) {
        crdt_vv_free(c);
        return rc;
    }
    if (vv->n > 0)
        memcpy(c->e, vv->e, vv->n * sizeof *vv->e);
    c->n = vv->n; /* the same entries: (1) holds */
    *out = c;
    return CRDT_OK;
}

int
crdt_vv_set(crdt_vv *vv, const crdt_actor *actor, uint64_t seq)
{
    int found = 0;
    size_t i;

    /* vectors are mostly built in actor order (decoding, the heads
     * cursor, a summary): an actor after the last one appends at once */
    if (vv->n > 0 &&
        memcmp(vv->e[vv->n - 1].a.b, actor->b, CRDT_ACTOR_BYTES) < 0)
        i = vv->n;
    else
        i = find(vv, actor, &found);

    if (found) {
        if (seq > vv->e[i].seq)
            vv->e[i].seq = seq;
        return CRDT_OK;
    }
    if (vv->n >= VV_MAX_ENTRIES)
        return CRDT_ELIMIT;
    if (vv->n == vv->cap) {
        size_t cap = vv->cap ? vv->cap * 2 : 8;
        vv_entry *e = realloc(vv->e, cap * sizeof *e);
        if (e == NULL)
            return CRDT_ENOMEM;
        vv->e = e;
        vv->cap = cap;
    }
    memmove(vv->e + i + 1, vv->e + i, (vv->n - i) * sizeof *vv->e);
    vv->e[i].a = *actor;
    vv->e[i].seq = seq;
    vv->n++;
    /* keeps (1) */
    assert(i == 0 || memcmp(vv->e[i - 1].a.b, actor->b, CRDT_ACTOR_BYTES) < 0);
    assert(i + 1 == vv->n ||
           memcmp(actor->b, vv->e[i + 1].a.b, CRDT_ACTOR_BYTES) < 0);
    return CRDT_OK;
}

size_t
crdt_vv_count(const crdt_vv *vv)
{
    return vv ? vv->n : 0;
}

void
crdt_vv_entry(const crdt_vv *vv, size_t i, crdt_actor *actor_out,
              uint64_t *seq_out)
{
    *actor_out = vv->e[i].a;
    *seq_out = vv->e[i].seq;
}

int
crdt_vv_covers(const crdt_vv *a, const crdt_vv *b)
{
    for (size_t i = 0; i < b->n; i++)
        if (crdt_vv_get(a, &b->e[i].a) < b->e[i].seq)
            return 0;
    return 1;
}

uint64_t
crdt_vv_total(const crdt_vv *vv)
{
    uint64_t t = 0;

    for (size_t i = 0; i < vv->n; i++)
        t += vv->e[i].seq;
    return t;
}

int
crdt__vv_from_heads(crdt_vv **out, MDB_txn *txn, crdt_replica *r)
{
    MDB_cursor *cur;
    MDB_val k, v;
    MDB_stat st;
    crdt_vv *vv;
    int rc;

    if ((rc = crdt_vv_new(&vv)) < 0)
        return rc;
    /* sized once by the count (more than a vector holds fails at the
     * set that passes the limit, as before) */
    if ((rc = crdt__mdb_err(mdb_stat(txn, r->dbi[CRDT_DB_HEADS], &st))) <
            0 ||
        (rc = crdt_vv_reserve(vv, st.ms_entries < VV_MAX_ENTRIES
                                      ? st.ms_entries
                                      : VV_MAX_ENTRIES)) < 0 ||
        (rc = crdt__mdb_err(mdb_cursor_open(txn, r->dbi[CRDT_DB_HEADS],
                                            &cur))) < 0) {
        crdt_vv_free(vv);
        return rc;
    }
    rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (rc == 0) {
        crdt_actor a;
        if (k.mv_size != CRDT_ACTOR_BYTES || v.mv_size != CRDT__HEAD_BYTES) {
            rc = MDB_CORRUPTED;
            break;
        }
        memcpy(a.b, k.mv_data, CRDT_ACTOR_BYTES);
        if (crdt_vv_set(vv, &a, crdt__rd64(v.mv_data)) < 0) {
            rc = ENOMEM;
            break;
        }
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (rc != MDB_NOTFOUND) {
        crdt_vv_free(vv);
        return crdt__mdb_err(rc);
    }
    *out = vv;
    return CRDT_OK;
}

int
crdt_read_vv(crdt_vv **out, crdt_read *rd)
{
    if (out == NULL || rd == NULL)
        return CRDT_EINVAL;
    return crdt__vv_from_heads(out, crdt__read_txn(rd),
                               crdt__read_replica(rd));
}

int
crdt_vv_encode(unsigned char **buf_out, size_t *len_out, const crdt_vv *vv)
{
    crdt__enc e;

    crdt__enc_init(&e);
    msgpack_pack_map(&e.pk, vv->n);
    for (size_t i = 0; i < vv->n; i++) {
        crdt__enc_bin(&e, vv->e[i].a.b, CRDT_ACTOR_BYTES);
        msgpack_pack_uint64(&e.pk, vv->e[i].seq);
    }
    if (crdt__enc_ok(&e) < 0) {
        crdt__enc_free(&e);
        return CRDT_ENOMEM;
    }
    *buf_out = (unsigned char *)e.sb.data; /* handed over */
    *len_out = e.sb.size;
    return *buf_out || e.sb.size == 0 ? CRDT_OK : CRDT_ENOMEM;
}

int
crdt_vv_decode(crdt_vv **out, const unsigned char *buf, size_t len)
{
    crdt__mp m = { buf, buf + len };
    crdt_vv *vv;
    uint32_t n;
    int rc;

    if (crdt__mp_map(&m, &n) < 0)
        return CRDT_EPROTO;
    if (n > VV_MAX_ENTRIES)
        return CRDT_ELIMIT;
    if ((rc = crdt_vv_new(&vv)) < 0)
        return rc;
    /* sized once, but never beyond what @p len can hold (an entry takes
     * at least 11 bytes: bin 8 and a one-byte uint), so a short message
     * that claims 65,536 entries allocates little */
    if ((rc = crdt_vv_reserve(vv, n < len / 11 ? n : len / 11)) < 0) {
        crdt_vv_free(vv);
        return rc;
    }
    for (uint32_t i = 0; i < n; i++) {
        crdt_actor a;
        uint64_t seq;
        if (crdt__mp_bin_fixed(&m, a.b, CRDT_ACTOR_BYTES) < 0 ||
            crdt__mp_uint(&m, &seq) < 0) {
            crdt_vv_free(vv);
            return CRDT_EPROTO;
        }
        if ((rc = crdt_vv_set(vv, &a, seq)) < 0) {
            crdt_vv_free(vv);
            return rc;
        }
    }
    if (m.p != m.end) {
        crdt_vv_free(vv);
        return CRDT_EPROTO;
    }
    *out = vv;
    return CRDT_OK;
}
