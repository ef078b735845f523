/*
 * snapshot.c: reading the current state one entry at a time from one
 * read txn, so a snapshot streams to a peer in bounded memory. Opening
 * one checks the entries against the kept state hash first: a damaged
 * state is never sent (CRDT_ECORRUPT).
 */
#include <stdlib.h>
#include <string.h>

#include "epoch_internal.h"

struct epoch_snapshot {
    crdt_raw *t;
    crdt_raw_cursor *c;
    int started;
};

int
epoch_snapshot_open(epoch_snapshot **out, crdt_replica *r,
                    unsigned char *epoch_id_out, unsigned char *hash_out)
{
    epoch_snapshot *s;
    int rc;

    if (out == NULL || r == NULL)
        return CRDT_EINVAL;
    s = calloc(1, sizeof *s);
    if (s == NULL)
        return CRDT_ENOMEM;
    if ((rc = crdt_raw_begin(&s->t, r, 0)) < 0)
        goto fail;
    {
        /* never serve a damaged snapshot: the entries, read now in this
         * same txn, must hash to the hash the store keeps (a second pass
         * over the state, before the first entry is sent) */
        unsigned char kept[CRDT_HASH_BYTES], now[CRDT_HASH_BYTES];
        if ((rc = crdt_raw_state_hash(s->t, kept)) < 0 ||
            (rc = crdt_raw_state_rehash(s->t, now)) < 0)
            goto fail;
        if (memcmp(kept, now, sizeof kept) != 0) {
            rc = CRDT_ECORRUPT;
            goto fail;
        }
        if (hash_out != NULL)
            memcpy(hash_out, kept, sizeof kept);
    }
    if (epoch_id_out != NULL &&
        (rc = crdt_raw_get_epoch(s->t, NULL, epoch_id_out)) < 0)
        goto fail;
    if ((rc = crdt_raw_cursor_open(&s->c, s->t, crdt_raw_state_db(s->t, 0))) < 0)
        goto fail;
    *out = s;
    return CRDT_OK;
fail:
    epoch_snapshot_close(s);
    return rc;
}

int
epoch_snapshot_next(epoch_snapshot *s, const void **k, size_t *kl,
                    const void **v, size_t *vl)
{
    if (s == NULL)
        return CRDT_EINVAL;
    if (!s->started) {
        s->started = 1;
        return crdt_raw_cursor_seek(s->c, NULL, 0, k, kl, v, vl);
    }
    return crdt_raw_cursor_next(s->c, k, kl, v, vl);
}

void
epoch_snapshot_close(epoch_snapshot *s)
{
    if (s == NULL)
        return;
    crdt_raw_cursor_close(s->c);
    crdt_raw_abort(s->t);
    free(s);
}
