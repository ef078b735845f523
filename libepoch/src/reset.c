/*
 * reset.c: swapping in another replica's epoch snapshot (reset sync).
 *
 *   begin (one write txn, spare slot cleared) --put...--> commit | abort
 *   commit: check hash, swap slots, adopt the epoch and its heads, bring
 *           back the archived logs of a losing fork, replay every change
 *           beyond the new heads through the lenses (rebase).
 * Invariants:
 *  (1) All in one LMDB txn: a crash leaves the replica as it was.
 *  (2) A snapshot written in an older schema than @p migrate_to is
 *      migrated in memory, one document at a time, before it is written.
 *  (3) Nothing is lost: local changes beyond the new heads stay in the
 *      log and are replayed; what cannot be rebased is quarantined.
 */
#include <stdlib.h>
#include <string.h>

#include "epoch_internal.h"

struct epoch_reset {
    crdt_replica *r;
    crdt_raw *t;
    epoch_info target;  /* the snapshot's epoch */
    epoch_info final;   /* the epoch the replica ends at */
    epoch_lens *lens;   /* target -> final, when migrating up */
    epoch__rewriter *w; /* set when migrating up */
    int failed;
};

int
epoch_reset_begin(epoch_reset **out, crdt_replica *r,
                  const unsigned char *target_id,
                  const unsigned char *migrate_to)
{
    epoch_reset *rs;
    const void *v;
    size_t vl;
    int rc;

    if (out == NULL || r == NULL || target_id == NULL)
        return CRDT_EINVAL;
    rs = calloc(1, sizeof *rs);
    if (rs == NULL)
        return CRDT_ENOMEM;
    rs->r = r;
    if ((rc = crdt_raw_begin(&rs->t, r, 1)) < 0)
        goto fail;
    if (crdt_raw_get(rs->t, CRDT_DB_META, "upgrade", 7, &v, &vl) == CRDT_OK) {
        rc = CRDT_EBUSY;
        goto fail;
    }
    if ((rc = epoch__get_in(&rs->target, rs->t, target_id)) < 0)
        goto fail;
    if (migrate_to != NULL &&
        memcmp(migrate_to, target_id, EPOCH_ID_BYTES) != 0) {
        /* keeps (2): only a direct child made by a lens is supported */
        if ((rc = epoch__get_in(&rs->final, rs->t, migrate_to)) < 0)
            goto fail;
        if (memcmp(rs->final.parent, target_id, EPOCH_ID_BYTES) != 0 ||
            rs->final.custom[0] != '\0') {
            rc = CRDT_EINVAL;
            goto fail;
        }
        if (rs->final.lens[0] != '\0' &&
            (rc = epoch_lens_parse(&rs->lens, rs->final.lens,
                                   strlen(rs->final.lens), NULL)) < 0)
            goto fail;
        if ((rc = epoch__rewriter_new(&rs->w, rs->t, rs->lens, NULL, NULL,
                                      NULL)) < 0)
            goto fail;
    } else {
        if ((rc = epoch__get_in(&rs->final, rs->t, target_id)) < 0)
            goto fail;
    }
    if ((rc = crdt_raw_spare_clear(rs->t)) < 0)
        goto fail;
    *out = rs;
    return CRDT_OK;
fail:
    epoch_reset_abort(rs);
    return rc;
}

int
epoch_reset_put(epoch_reset *rs, const void *k, size_t kl, const void *v,
                size_t vl)
{
    int rc;

    if (rs == NULL || k == NULL || kl == 0 || kl > CRDT__KEY_MAX)
        return CRDT_EINVAL;
    if (rs->failed)
        return CRDT_EBADTXN;
    rc = rs->w ? epoch__rewriter_put(rs->w, k, kl, v, vl)
               : crdt_raw_spare_put(rs->t, k, kl, v, vl);
    if (rc < 0)
        rs->failed = 1;
    return rc;
}

/* The local epochs not on the target's ancestry go back to their parent
 * until one is: their archived logs (by number) come back for replay. */
static int
restore_fork_archive(epoch_reset *rs, uint64_t *from_number)
{
    epoch_info mine, theirs;
    unsigned char id[EPOCH_ID_BYTES];
    int rc;

    *from_number = UINT64_MAX;
    if ((rc = epoch__current_in(&mine, rs->t)) < 0)
        return rc;
    /* find the common ancestor by walking both sides by number */
    memcpy(id, rs->final.id, EPOCH_ID_BYTES);
    if ((rc = epoch__get_in(&theirs, rs->t, id)) < 0) {
        epoch_info_clear(&mine);
        return rc;
    }
    while (memcmp(mine.id, theirs.id, EPOCH_ID_BYTES) != 0) {
        epoch_info up;
        int mine_side = mine.number >= theirs.number;
        epoch_info *e = mine_side ? &mine : &theirs;

        if (e->number == 0) {
            rc = CRDT_ECORRUPT;
            break;
        }
        if ((rc = epoch__get_in(&up, rs->t, e->parent)) < 0)
            break;
        epoch_info_clear(e);
        *e = up;
    }
    if (rc == CRDT_OK)
        *from_number = mine.number;
    epoch_info_clear(&mine);
    epoch_info_clear(&theirs);
    return rc;
}

static int
unarchive(crdt_raw *t, uint64_t from_number)
{
    crdt_raw_cursor *c;
    const void *k, *v;
    size_t kl, vl;
    unsigned char start[8];
    int rc;

    crdt__be64(start, from_number);
    if ((rc = crdt_raw_cursor_open(&c, t, CRDT_DB_ARCHIVE)) < 0)
        return rc;
    rc = crdt_raw_cursor_seek(c, start, 8, &k, &kl, &v, &vl);
    while (rc == CRDT_OK) {
        if (kl == 24) {
            unsigned char *copy = malloc(vl);
            if (copy == NULL) {
                rc = CRDT_ENOMEM;
                break;
            }
            memcpy(copy, v, vl);
            /* the log key is the archive key without the epoch number;
             * a change already in the log is the same change */
            rc = crdt_raw_put(t, CRDT_DB_LOG, (const unsigned char *)k + 8,
                              16, copy, vl);
            free(copy);
            if (rc < 0)
                break;
        }
        rc = crdt_raw_cursor_next(c, &k, &kl, &v, &vl);
    }
    crdt_raw_cursor_close(c);
    return rc == CRDT_ENOTFOUND ? CRDT_OK : rc;
}

int
epoch_reset_commit(crdt_merge_report *report, epoch_reset *rs,
                   const unsigned char *expected_hash)
{
    const unsigned char *heads;
    size_t heads_len;
    unsigned char hash[CRDT_HASH_BYTES];
    uint64_t old_number, fork_from;
    int rc;

    if (rs == NULL)
        return CRDT_EINVAL;
    if (rs->failed) {
        epoch_reset_abort(rs);
        return CRDT_EBADTXN;
    }
    if (rs->w != NULL && (rc = epoch__rewriter_finish(rs->w)) < 0)
        goto fail;
    if ((rc = crdt_raw_get_epoch(rs->t, &old_number, NULL)) < 0 ||
        (rc = restore_fork_archive(rs, &fork_from)) < 0)
        goto fail;
    if ((rc = crdt_raw_swap_state(rs->t)) < 0)
        goto fail;
    crdt_raw_state_hash(rs->t, hash);
    if (rs->w == NULL && expected_hash != NULL &&
        memcmp(hash, expected_hash, CRDT_HASH_BYTES) != 0) {
        rc = CRDT_ECORRUPT; /* the snapshot is not the epoch's state */
        goto fail;
    }
    if ((rc = epoch__record_heads(&heads, &heads_len, &rs->final)) < 0)
        goto fail;
    if ((rc = crdt_raw_heads_replace(rs->t, heads, heads_len)) < 0 ||
        (rc = crdt_raw_set_epoch(rs->t, rs->final.number, rs->final.id)) < 0)
        goto fail;
    if (fork_from != UINT64_MAX && fork_from < old_number &&
        (rc = unarchive(rs->t, fork_from)) < 0)
        goto fail;
    /* keeps (3) */
    if ((rc = crdt_raw_replay_log(report, rs->t, old_number)) < 0)
        goto fail;
    rc = crdt_raw_commit(rs->t);
    rs->t = NULL;
    epoch_reset_abort(rs);
    return rc;
fail:
    epoch_reset_abort(rs);
    return rc;
}

void
epoch_reset_abort(epoch_reset *rs)
{
    if (rs == NULL)
        return;
    crdt_raw_abort(rs->t);
    epoch__rewriter_free(rs->w);
    epoch_lens_free(rs->lens);
    epoch_info_clear(&rs->target);
    epoch_info_clear(&rs->final);
    free(rs);
}

int
epoch_snapshot_walk(crdt_replica *r, unsigned char *epoch_id_out,
                    unsigned char *hash_out, epoch_entry_cb cb, void *ctx)
{
    crdt_raw *t;
    crdt_raw_cursor *c;
    const void *k, *v;
    size_t kl, vl;
    int rc;

    if (r == NULL || cb == NULL)
        return CRDT_EINVAL;
    if ((rc = crdt_raw_begin(&t, r, 0)) < 0)
        return rc;
    if (hash_out != NULL)
        crdt_raw_state_hash(t, hash_out);
    if (epoch_id_out != NULL &&
        (rc = crdt_raw_get_epoch(t, NULL, epoch_id_out)) < 0) {
        crdt_raw_abort(t);
        return rc;
    }
    if ((rc = crdt_raw_cursor_open(&c, t, crdt_raw_state_db(t, 0))) < 0) {
        crdt_raw_abort(t);
        return rc;
    }
    rc = crdt_raw_cursor_seek(c, NULL, 0, &k, &kl, &v, &vl);
    while (rc == CRDT_OK) {
        if ((rc = cb(k, kl, v, vl, ctx)) != 0)
            break;
        rc = crdt_raw_cursor_next(c, &k, &kl, &v, &vl);
    }
    crdt_raw_cursor_close(c);
    crdt_raw_abort(t);
    return rc == CRDT_ENOTFOUND ? CRDT_OK : rc;
}
