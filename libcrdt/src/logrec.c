/*
 * logrec.c: the one reader of log records (`log`, `archive`, `staging`;
 * docs/storage.md section 3, "Run records").
 *
 * A record is either one change, stored as signed (its first byte is a
 * msgpack fixarray 2, 0x92), or a run: several consecutive changes of one
 * actor merged together, stored as the tag byte 0xc1 (never the first
 * byte of a msgpack value) followed by the packed form of the changes
 * (crdt_changes_pack(), docs/protocol.md "Packed changes"), which
 * rebuilds each change byte for byte. Either way the key is actor | the
 * seq of the record's last op, so a lookup by seq with MDB_SET_RANGE on
 * actor | seq finds the record that holds it.
 *
 * Why runs: a merge of a thousand one-op changes wrote a thousand
 * records, each with its 150-byte header (author, epoch, prev, signature)
 * and a B-tree node, and a 2 KiB change took an overflow page of its own.
 * The run keeps one author, one epoch, implied seqs and prevs, and fills
 * its overflow pages.
 *
 * Every reader goes through crdt__logrec_open(), which hands out the
 * changes as their exact signed bytes, so hashes, chains and signatures
 * are checked as ever. A run is checked whole when it is opened: bounded
 * in size and count, every change decodes, all of the key's actor, each
 * chained to the one before (next seq, prev = its hash), the last ending
 * at the key's seq. A damaged run is CRDT_ECORRUPT.
 */
#include <stdlib.h>
#include <string.h>

#include "crdt/crdt.h"
#include "internal.h"

int
crdt__logrec_is_run(const void *v, size_t len)
{
    return len > 0 && ((const unsigned char *)v)[0] == CRDT__LOGRUN_TAG;
}

int
crdt__logrec_decode(crdt_change *out, const crdt__logrec *lr, size_t i)
{
    if (i >= lr->n)
        return CRDT_EINVAL;
    if (lr->hashes != NULL)
        return crdt__change_decode_hashed(out, lr->list[i].data,
                                          lr->list[i].len,
                                          lr->hashes + i * CRDT_HASH_BYTES);
    return crdt__change_decode_header(out, lr->list[i].data, lr->list[i].len);
}

/* The run's changes against each other and against the key (each
 * change's hash is the one its unpack computed from the rebuilt bytes). */
static int
check_run(const crdt__logrec *lr, const unsigned char *key, size_t klen)
{
    crdt_change prev, c;
    size_t n = lr->n;

    if (n < 2 || n > CRDT__LOGRUN_CHANGES_MAX)
        return CRDT_ECORRUPT;
    for (size_t i = 0; i < n; i++) {
        if (crdt__logrec_decode(&c, lr, i) < 0)
            return CRDT_ECORRUPT;
        if (key != NULL &&
            memcmp(c.actor.b, key + klen - 16, CRDT_ACTOR_BYTES) != 0)
            return CRDT_ECORRUPT;
        if (i > 0 && !crdt_change_proves(&c, &prev))
            return CRDT_ECORRUPT; /* another actor, a gap or a broken link */
        prev = c;
    }
    if (key != NULL &&
        prev.seq + prev.n_ops - 1 != crdt__rd64(key + klen - 8))
        return CRDT_ECORRUPT;
    return CRDT_OK;
}

int
crdt__logrec_open(crdt__logrec *lr, const void *key, size_t klen,
                  const void *v, size_t vlen)
{
    size_t total = 0;
    int rc;

    memset(lr, 0, sizeof *lr);
    if (key != NULL && klen < 16)
        return CRDT_ECORRUPT;
    if (!crdt__logrec_is_run(v, vlen)) {
        lr->one.data = v;
        lr->one.len = vlen;
        lr->list = &lr->one;
        lr->n = 1;
        return CRDT_OK;
    }
    if (vlen > CRDT__LOGRUN_MAX)
        return CRDT_ECORRUPT;
    rc = crdt__changes_unpack_hashed(&lr->list, &lr->n, &lr->buf,
                                     &lr->hashes,
                                     (const unsigned char *)v + 1, vlen - 1);
    if (rc == CRDT_ENOMEM)
        return rc;
    if (rc == CRDT_OK) {
        lr->run = 1; /* owns list and buf from here */
        for (size_t i = 0; i < lr->n; i++)
            total += lr->list[i].len;
        rc = total > CRDT__LOGRUN_BYTES_MAX
                 ? CRDT_ECORRUPT
                 : check_run(lr, key, klen);
    }
    if (rc < 0) {
        crdt__logrec_close(lr);
        return CRDT_ECORRUPT;
    }
    return CRDT_OK;
}

void
crdt__logrec_close(crdt__logrec *lr)
{
    if (lr->run) { /* a single change's list is lr->one: nothing owned */
        crdt_free(lr->list);
        crdt_free(lr->buf);
        free(lr->hashes);
    }
    memset(lr, 0, sizeof *lr);
}

int
crdt__logrec_find(crdt__logrec *lr, size_t *idx, MDB_cursor *cur,
                  const unsigned char *prefix, size_t plen,
                  const crdt_actor *a, uint64_t seq)
{
    unsigned char key[24];
    MDB_val k = { plen + 16, key }, v;
    crdt_change c;
    int rc;

    memset(lr, 0, sizeof *lr);
    if (plen > 8)
        return CRDT_EINVAL;
    if (plen > 0) /* no prefix: NULL, which memcpy may not be given */
        memcpy(key, prefix, plen);
    crdt__log_key(key + plen, a, seq);
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    if (rc == MDB_NOTFOUND)
        return CRDT_ENOTFOUND;
    if (rc != 0)
        return crdt__mdb_err(rc);
    if (k.mv_size != plen + 16 || memcmp(k.mv_data, key, plen) != 0 ||
        memcmp((unsigned char *)k.mv_data + plen, a->b,
               CRDT_ACTOR_BYTES) != 0)
        return CRDT_ENOTFOUND;
    if ((rc = crdt__logrec_open(lr, k.mv_data, k.mv_size, v.mv_data,
                                v.mv_size)) < 0)
        return rc;
    for (size_t i = 0; i < lr->n; i++) {
        if (crdt__logrec_decode(&c, lr, i) < 0)
            break;
        if (c.seq + c.n_ops - 1 >= seq) {
            *idx = i;
            return CRDT_OK;
        }
    }
    crdt__logrec_close(lr);
    return CRDT_ECORRUPT; /* the key says it holds seq; nothing does */
}

/* A run's changes, split into one record each under their own keys. */
static int
split_one(MDB_txn *txn, MDB_dbi dbi, const unsigned char *key, size_t klen,
          const void *v, size_t vlen)
{
    crdt__logrec lr;
    unsigned char k2[24];
    int rc;

    if ((rc = crdt__logrec_open(&lr, key, klen, v, vlen)) < 0)
        return rc;
    memcpy(k2, key, klen);
    for (size_t i = 0; rc == CRDT_OK && i < lr.n; i++) {
        crdt_change c;
        MDB_val kk = { klen, k2 }, vv = { lr.list[i].len,
                                          (void *)lr.list[i].data };
        if (crdt__logrec_decode(&c, &lr, i) < 0) {
            rc = CRDT_ECORRUPT;
            break;
        }
        crdt__be64(k2 + klen - 8, c.seq + c.n_ops - 1);
        /* the last one replaces the run under the run's own key */
        rc = crdt__mdb_err(mdb_put(txn, dbi, &kk, &vv, 0));
    }
    crdt__logrec_close(&lr);
    return rc;
}

int
crdt__log_split(uint64_t *split_out, MDB_txn *txn, MDB_dbi dbi)
{
    unsigned char (*keys)[24] = NULL;
    size_t n = 0, klen = 0;
    MDB_cursor *cur;
    MDB_val k, v;
    int rc;

    if (split_out)
        *split_out = 0;
    if ((rc = crdt__mdb_err(mdb_cursor_open(txn, dbi, &cur))) < 0)
        return rc;
    /* collected first: the puts below would move a live cursor */
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        void *nk;
        if (!crdt__logrec_is_run(v.mv_data, v.mv_size))
            continue;
        if (k.mv_size != 16 && k.mv_size != 24) {
            rc = MDB_CORRUPTED;
            break;
        }
        if ((nk = realloc(keys, (n + 1) * sizeof *keys)) == NULL) {
            mdb_cursor_close(cur);
            free(keys);
            return CRDT_ENOMEM;
        }
        keys = nk;
        klen = k.mv_size; /* one database: one key length */
        memcpy(keys[n++], k.mv_data, k.mv_size);
    }
    mdb_cursor_close(cur);
    rc = rc == MDB_NOTFOUND ? CRDT_OK : crdt__mdb_err(rc);
    for (size_t i = 0; rc == CRDT_OK && i < n; i++) {
        MDB_val kk = { klen, keys[i] }, vv;
        unsigned char *copy;
        if ((rc = crdt__mdb_err(mdb_get(txn, dbi, &kk, &vv))) < 0)
            break;
        if ((copy = malloc(vv.mv_size)) == NULL) {
            rc = CRDT_ENOMEM;
            break;
        }
        memcpy(copy, vv.mv_data, vv.mv_size); /* the view dies at a put */
        rc = split_one(txn, dbi, keys[i], klen, copy, vv.mv_size);
        free(copy);
    }
    free(keys);
    if (rc == CRDT_OK && split_out)
        *split_out = n;
    return rc;
}

/* ---- crdt/raw.h ---- */

int
crdt_raw_log_changes(crdt_bytes **list_out, size_t *n_out,
                     unsigned char **buf_out, const void *key, size_t klen,
                     const void *v, size_t vlen)
{
    crdt__logrec lr;
    size_t total = 0, off = 0;
    crdt_bytes *list;
    unsigned char *buf;
    int rc;

    if (list_out == NULL || n_out == NULL || buf_out == NULL ||
        (v == NULL && vlen > 0) || (key != NULL && klen != 16 && klen != 24))
        return CRDT_EINVAL;
    *list_out = NULL;
    *n_out = 0;
    *buf_out = NULL;
    if ((rc = crdt__logrec_open(&lr, key, klen, v, vlen)) < 0)
        return rc;
    for (size_t i = 0; i < lr.n; i++)
        total += lr.list[i].len;
    /* copies: the caller's view of the record dies at its next write */
    list = malloc(lr.n * sizeof *list);
    buf = malloc(total ? total : 1);
    if (list == NULL || buf == NULL) {
        free(list);
        free(buf);
        crdt__logrec_close(&lr);
        return CRDT_ENOMEM;
    }
    for (size_t i = 0; i < lr.n; i++) {
        if (lr.list[i].len > 0) /* an empty value may come as NULL */
            memcpy(buf + off, lr.list[i].data, lr.list[i].len);
        list[i].data = buf + off;
        list[i].len = lr.list[i].len;
        off += lr.list[i].len;
    }
    *list_out = list;
    *n_out = lr.n;
    *buf_out = buf;
    crdt__logrec_close(&lr);
    return CRDT_OK;
}
