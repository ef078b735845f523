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
 * not copied: the merge's message stays alive until the merge ends, and
 * the packed record is copied once, into its space in LMDB. A drained
 * pending change's copy (its view into the pending area dies at the
 * next write) is handed to the run, which frees it once written. The
 * body hashes and decodes the merge computed are kept: the packer takes
 * them instead of decoding and hashing each change again. A large
 * merge's aid (mergeaid.h) packs its runs beside the merge: a run that
 * is exactly the changes the aid packs is handed to it to write.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "mergeaid.h"

/* The changes the run owns go, and the run is empty. */
void
crdt__logrun_reset(crdt__logrun *run)
{
    for (size_t i = 0; i < run->n_owned; i++)
        free(run->owned[i]);
    run->n_owned = 0;
    run->n = 0;
    run->len = 0;
    run->no_dec = 0;
}

int
crdt__logrun_reserve(crdt__logrun *run, size_t want)
{
    size_t nc;
    void *p;

    if (want > CRDT__LOGRUN_CHANGES_MAX)
        want = CRDT__LOGRUN_CHANGES_MAX;
    if (run->n < run->cap && want <= run->cap)
        return CRDT_OK;
    nc = run->cap ? run->cap * 2 : 64;
    if (nc < want)
        nc = want;
    /* the three arrays have one capacity: each grown one is kept even
     * when a later one fails, and cap moves only once all three have */
    if ((p = realloc(run->list, nc * sizeof *run->list)) == NULL)
        return CRDT_ENOMEM;
    run->list = p;
    if ((p = realloc(run->hashes, nc * CRDT_HASH_BYTES)) == NULL)
        return CRDT_ENOMEM;
    run->hashes = p;
    if ((p = realloc(run->dec, nc * sizeof *run->dec)) == NULL)
        return CRDT_ENOMEM;
    run->dec = p;
    run->cap = nc;
    return CRDT_OK;
}

/* Keep @p data (malloc'd) until the run is written. */
static int
take(crdt__logrun *run, const unsigned char *data)
{
    if (run->n_owned == run->cap_owned) {
        size_t nc = run->cap_owned ? run->cap_owned * 2 : 16;
        void *p = realloc(run->owned, nc * sizeof *run->owned);
        if (p == NULL)
            return CRDT_ENOMEM;
        run->owned = p;
        run->cap_owned = nc;
    }
    run->owned[run->n_owned++] = (unsigned char *)data;
    return CRDT_OK;
}

int
crdt__logrun_add(crdt__logrun *run, MDB_txn *txn, MDB_dbi dbi,
                 MDB_cursor *cur, const crdt_change *c,
                 const unsigned char *data, size_t len, int own)
{
    int rc;

    if (run->n > 0 &&
        (memcmp(run->actor.b, c->actor.b, CRDT_ACTOR_BYTES) != 0 ||
         run->n == CRDT__LOGRUN_CHANGES_MAX ||
         run->len + len > CRDT__LOGRUN_BYTES_MAX) &&
        (rc = crdt__logrun_flush(run, txn, dbi, cur)) < 0)
        goto fail;
    if ((rc = crdt__logrun_reserve(run, 0)) < 0 ||
        (own && (rc = take(run, data)) < 0))
        goto fail;
    own = 0; /* the run's now */
    /* the decoded change, its views into its bytes; views elsewhere:
     * the packer decodes the run's changes itself */
    run->dec[run->n] = *c;
    if (!crdt__change_views_inside(c, data, len))
        run->no_dec = 1;
    memcpy(run->hashes + run->n * CRDT_HASH_BYTES, c->hash, CRDT_HASH_BYTES);
    run->list[run->n].data = data;
    run->list[run->n].len = len;
    run->n++;
    run->len += len;
    run->actor = c->actor;
    run->last = c->seq + c->n_ops - 1;
    return CRDT_OK;
fail:
    if (own)
        free((void *)data);
    return rc;
}

int
crdt__logrun_put_packed(MDB_txn *txn, MDB_dbi dbi, MDB_cursor *cur,
                        const unsigned char key[16],
                        const unsigned char *packed, size_t len)
{
    MDB_val k = { 16, (void *)key }, v = { len + 1, NULL };
    unsigned char *val;
    int rc;

    if (len + 1 > CRDT__LOGRUN_MAX)
        return CRDT_ELIMIT; /* cannot be: the bounds leave room */
    /* the tag and the packed bytes go straight into the record's space
     * in LMDB (MDB_RESERVE), not through a copy of their own */
    rc = crdt__mdb_err(cur != NULL ? mdb_cursor_put(cur, &k, &v, MDB_RESERVE)
                                   : mdb_put(txn, dbi, &k, &v, MDB_RESERVE));
    if (rc < 0)
        return rc;
    val = v.mv_data;
    /* a large record's space is overflow pages LMDB has just allocated:
     * faulted in with one call, not one fault per page as the copy
     * reaches it */
    crdt__prefault(val, v.mv_size);
    val[0] = CRDT__LOGRUN_TAG;
    memcpy(val + 1, packed, len);
    return CRDT_OK;
}

int
crdt__logrun_flush(crdt__logrun *run, MDB_txn *txn, MDB_dbi dbi,
                   MDB_cursor *cur)
{
    unsigned char key[16], *packed = NULL;
    size_t packed_len = 0;
    MDB_val k = { sizeof key, key }, v;
    int rc = CRDT_OK;

    if (run->n == 0)
        return CRDT_OK;
    crdt__log_key(key, &run->actor, run->last);
    if (run->n == 1) {
        v.mv_size = run->list[0].len;
        v.mv_data = (void *)run->list[0].data;
        rc = crdt__mdb_err(cur != NULL ? mdb_cursor_put(cur, &k, &v, 0)
                                       : mdb_put(txn, dbi, &k, &v, 0));
    } else if (crdt__mergeaid_defer(run->aid, &run->actor, run->list, run->n,
                                    key)) {
        rc = CRDT_OK; /* packed and written by the merge's aid */
    } else {
        /* the merge decoded and hashed each change: not again here */
        rc = run->no_dec ? crdt__changes_pack_hashed(&packed, &packed_len,
                                                     run->list, run->hashes,
                                                     run->n)
                         : crdt__changes_pack_decoded(&packed, &packed_len,
                                                      run->list, run->dec,
                                                      run->n);
        if (rc == CRDT_OK)
            rc = crdt__logrun_put_packed(txn, dbi, cur, key, packed,
                                         packed_len);
    }
    crdt_free(packed);
    crdt__logrun_reset(run);
    return rc;
}

void
crdt__logrun_free(crdt__logrun *run)
{
    crdt__logrun_reset(run);
    free(run->list);
    free(run->owned);
    free(run->hashes);
    free(run->dec);
    memset(run, 0, sizeof *run);
}
