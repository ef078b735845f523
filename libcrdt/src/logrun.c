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
    if (run->n == run->cap_dec) {
        size_t nc = run->cap_dec ? run->cap_dec * 2 : 64;
        void *p = realloc(run->dec, nc * sizeof *run->dec);
        if (p == NULL)
            return CRDT_ENOMEM;
        run->dec = p;
        if ((p = realloc(run->ops_off, nc * sizeof *run->ops_off)) == NULL)
            return CRDT_ENOMEM;
        run->ops_off = p;
        if ((p = realloc(run->sig_off, nc * sizeof *run->sig_off)) == NULL)
            return CRDT_ENOMEM;
        run->sig_off = p;
        run->cap_dec = nc;
    }
    if ((rc = buf_reserve(run, len)) < 0)
        return rc;
    /* the decoded change, its views as offsets into its bytes; views
     * elsewhere: the packer decodes the run's changes itself */
    run->dec[run->n] = *c;
    if (c->ops >= data && c->ops <= data + len &&
        c->ops_len <= (size_t)(data + len - c->ops) &&
        (c->sig == NULL ||
         (c->sig >= data && c->sig <= data + len &&
          (size_t)(data + len - c->sig) >= 64))) {
        run->ops_off[run->n] = (size_t)(c->ops - data);
        run->sig_off[run->n] = c->sig ? (size_t)(c->sig - data) : SIZE_MAX;
    } else {
        run->no_dec = 1;
    }
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
        if (!run->no_dec)
            for (size_t i = 0; i < run->n; i++) {
                run->dec[i].ops = run->buf + run->off[i] + run->ops_off[i];
                run->dec[i].sig = run->sig_off[i] == SIZE_MAX
                                      ? NULL
                                      : run->buf + run->off[i] +
                                            run->sig_off[i];
            }
        /* the merge decoded and hashed each change: not again here */
        rc = run->no_dec ? crdt__changes_pack_hashed(&packed, &packed_len,
                                                     list, run->hashes,
                                                     run->n)
                         : crdt__changes_pack_decoded(&packed, &packed_len,
                                                      list, run->dec,
                                                      run->n);
        if (rc == CRDT_OK && packed_len + 1 > CRDT__LOGRUN_MAX)
            rc = CRDT_ELIMIT; /* cannot be: the bounds leave room */
        if (rc < 0)
            goto done;
        /* the tag and the packed bytes go straight into the record's
         * space in LMDB (MDB_RESERVE), not through a copy of their own */
        v.mv_size = packed_len + 1;
        v.mv_data = NULL;
        rc = crdt__mdb_err(cur != NULL
                               ? mdb_cursor_put(cur, &k, &v, MDB_RESERVE)
                               : mdb_put(txn, dbi, &k, &v, MDB_RESERVE));
        if (rc == CRDT_OK) {
            val = v.mv_data;
            val[0] = CRDT__LOGRUN_TAG;
            memcpy(val + 1, packed, packed_len);
            val = NULL; /* LMDB's page, not ours */
        }
        goto done;
    }
    rc = crdt__mdb_err(cur != NULL ? mdb_cursor_put(cur, &k, &v, 0)
                                   : mdb_put(txn, dbi, &k, &v, 0));
done:
    crdt_free(packed);
    free(val);
    free(list);
    run->n = 0;
    run->len = 0;
    run->no_dec = 0;
    return rc;
}

void
crdt__logrun_free(crdt__logrun *run)
{
    free(run->buf);
    free(run->off);
    free(run->hashes);
    free(run->dec);
    free(run->ops_off);
    free(run->sig_off);
    memset(run, 0, sizeof *run);
}
