/*
 * logrun.c: a merge's run of consecutive changes of one actor, written
 * as ONE log record (docs/storage.md 3, "Run records"; read back by
 * logrec.c).
 *
 * A merge appends the changes it applies of an actor here instead of
 * writing a record each; the run is written when the actor is done, or
 * earlier when it would pass its bounds (CRDT__LOGRUN_CHANGES_MAX changes,
 * CRDT__LOGRUN_BYTES_MAX bytes) or when the merge must read the log of
 * that actor (a duplicate's check). One change is written as it is; two
 * or more as the tag byte and their packed form (crdt_changes_pack()),
 * which drops what repeats from change to change (author, epoch, seq,
 * prev, the names and value headers of the ops). The change bytes are
 * copied: a drained pending change's buffer dies before the run is
 * written. So are their body hashes, which the merge computed: the
 * packer takes them instead of hashing each change again.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static int
buf_reserve(crdt__logrun *run, size_t more)
{
    size_t cap;
    void *p;

    if (run->len + more <= run->cap)
        return CRDT_OK;
    cap = run->cap ? run->cap : 64 * 1024;
    while (cap < run->len + more)
        cap *= 2;
    if ((p = realloc(run->buf, cap)) == NULL)
        return CRDT_ENOMEM;
    run->buf = p;
    run->cap = cap;
    return CRDT_OK;
}

int
crdt__logrun_add(crdt__logrun *run, MDB_txn *txn, MDB_dbi dbi,
                 MDB_cursor *cur, const crdt_change *c,
                 const unsigned char *data, size_t len)
{
    int rc;

    if (run->n > 0 &&
        (memcmp(run->actor.b, c->actor.b, CRDT_ACTOR_BYTES) != 0 ||
         run->n == CRDT__LOGRUN_CHANGES_MAX ||
         run->len + len > CRDT__LOGRUN_BYTES_MAX) &&
        (rc = crdt__logrun_flush(run, txn, dbi, cur)) < 0)
        return rc;
    if (run->n == run->cap_n) {
        size_t nc = run->cap_n ? run->cap_n * 2 : 64;
        void *p = realloc(run->off, nc * sizeof *run->off);
        if (p == NULL)
            return CRDT_ENOMEM;
        run->off = p;
        if ((p = realloc(run->hashes, nc * CRDT_HASH_BYTES)) == NULL)
            return CRDT_ENOMEM;
        run->hashes = p;
        run->cap_n = nc;
    }
    if ((rc = buf_reserve(run, len)) < 0)
        return rc;
    memcpy(run->buf + run->len, data, len);
    memcpy(run->hashes + run->n * CRDT_HASH_BYTES, c->hash, CRDT_HASH_BYTES);
    run->off[run->n++] = run->len;
    run->len += len;
    run->actor = c->actor;
    run->last = c->seq + c->n_ops - 1;
    return CRDT_OK;
}

int
crdt__logrun_flush(crdt__logrun *run, MDB_txn *txn, MDB_dbi dbi,
                   MDB_cursor *cur)
{
    unsigned char key[16], *packed = NULL, *val = NULL;
    size_t packed_len = 0;
    crdt_bytes *list = NULL;
    MDB_val k = { sizeof key, key }, v;
    int rc = CRDT_OK;

    if (run->n == 0)
        return CRDT_OK;
    crdt__log_key(key, &run->actor, run->last);
    if (run->n == 1) {
        v.mv_size = run->len;
        v.mv_data = run->buf;
    } else {
        if ((list = malloc(run->n * sizeof *list)) == NULL)
            return CRDT_ENOMEM;
        for (size_t i = 0; i < run->n; i++) {
            list[i].data = run->buf + run->off[i];
            list[i].len = (i + 1 < run->n ? run->off[i + 1] : run->len) -
                          run->off[i];
        }
        /* the merge decoded and hashed each change: not again here */
        rc = crdt__changes_pack_hashed(&packed, &packed_len, list,
                                       run->hashes, run->n);
        if (rc == CRDT_OK && packed_len + 1 > CRDT__LOGRUN_MAX)
            rc = CRDT_ELIMIT; /* cannot be: the bounds leave room */
        if (rc == CRDT_OK && (val = malloc(packed_len + 1)) == NULL)
            rc = CRDT_ENOMEM;
        if (rc < 0)
            goto done;
        val[0] = CRDT__LOGRUN_TAG;
        memcpy(val + 1, packed, packed_len);
        v.mv_size = packed_len + 1;
        v.mv_data = val;
    }
    rc = crdt__mdb_err(cur != NULL ? mdb_cursor_put(cur, &k, &v, 0)
                                   : mdb_put(txn, dbi, &k, &v, 0));
done:
    crdt_free(packed);
    free(val);
    free(list);
    run->n = 0;
    run->len = 0;
    return rc;
}

void
crdt__logrun_free(crdt__logrun *run)
{
    free(run->buf);
    free(run->off);
    free(run->hashes);
    memset(run, 0, sizeof *run);
}
