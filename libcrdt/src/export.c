/*
 * export.c: streaming the changes another replica lacks.
 *
 * The cursor walks the heads (actor order) and, per actor, the log from
 * the first change that ends above what the other side holds. Only one
 * change is in hand at a time, as a view into the map: memory does not
 * grow with history.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct crdt_export {
    crdt_replica *r;
    MDB_txn *txn;
    MDB_cursor *heads;
    MDB_cursor *log;
    crdt_vv *lacks; /* borrowed */
    crdt_actor actor;
    uint64_t upto;  /* our seq for the current actor */
    int in_actor;   /* the log cursor is positioned inside an actor */
    uint64_t have;  /* the other side's seq for the current actor */
    crdt__logrec rec; /* the record in hand; rec.n == 0: none */
    crdt__logrec prev_rec; /* the one before, kept: a caller may still
                              hold the change it handed out last */
    size_t rec_i;     /* its next change */
    int started;
    int done;
    int as_stored;         /* crdt_export_begin_as_stored() */
    /* crdt_export_begin_archive(): the archive of one epoch, actors of
     * @c upto instead of the heads, keys prefixed by the epoch number */
    int archive;
    uint64_t archive_epoch;
    crdt_vv *upto_vv;      /* borrowed */
    size_t next_entry;     /* index in upto_vv of the next actor */
    size_t lacks_at;       /* where lacks_seq() looks first */
    unsigned char *signed_copy; /* an own change given its signature back */
    size_t signed_cap;
};

int
crdt_export_begin_as_stored(crdt_export **out, crdt_replica *r,
                            const crdt_vv *lacks)
{
    int rc = crdt_export_begin(out, r, lacks);

    if (rc == CRDT_OK)
        (*out)->as_stored = 1;
    return rc;
}

/* An own change the log holds without its signature (a later commit
 * proves it, txn.c): sign it again. Ed25519 is deterministic, so these
 * are the bytes the commit made, and a caller may move each change on
 * its own as before. 0 when @p v is not such a change. */
static int
own_signed(crdt_export *e, const crdt_bytes *v, const unsigned char **buf,
           size_t *len)
{
    const unsigned char *p = v->data;
    unsigned char sig[64];
    crdt_change c;
    int rc;

    if (v->len < 2 || p[v->len - 1] != 0xc0 ||
        crdt_change_decode(&c, p, v->len) != CRDT_OK || c.sig != NULL ||
        memcmp(c.actor.b, e->r->actor.b, CRDT_ACTOR_BYTES) != 0 ||
        memcmp(c.pubkey, e->r->pk, CRDT_PUBKEY_BYTES) != 0)
        return 0;
    if (e->signed_cap < v->len + 65) {
        unsigned char *nb = realloc(e->signed_copy, v->len + 65);
        if (nb == NULL)
            return CRDT_ENOMEM;
        e->signed_copy = nb;
        e->signed_cap = v->len + 65;
    }
    if ((rc = crdt__change_sign(sig, c.hash, e->r->sk)) < 0)
        return rc;
    /* the signature is the last item: nil (c0) becomes bin8 of 64 */
    memcpy(e->signed_copy, p, v->len - 1);
    e->signed_copy[v->len - 1] = 0xc4;
    e->signed_copy[v->len] = 0x40;
    memcpy(e->signed_copy + v->len + 1, sig, sizeof sig);
    *buf = e->signed_copy;
    *len = v->len + 65;
    return 1;
}

/* Allocates an export that reads one snapshot of @p r: the heads and the
 * log, or with @p archive the archive only (its actors come from the
 * caller's upto vv, not from the heads). */
static int
export_open(crdt_export **out, crdt_replica *r, const crdt_vv *lacks,
            int archive)
{
    crdt_export *e;
    int rc;

    e = calloc(1, sizeof *e);
    if (e == NULL)
        return CRDT_ENOMEM;
    e->r = r;
    e->lacks = (crdt_vv *)lacks;
    rc = crdt__txn_begin(r, 0, &e->txn);
    if (rc == CRDT_OK && !archive)
        rc = crdt__mdb_err(mdb_cursor_open(e->txn, r->dbi[CRDT_DB_HEADS],
                                           &e->heads));
    if (rc == CRDT_OK)
        rc = crdt__mdb_err(mdb_cursor_open(
            e->txn, r->dbi[archive ? CRDT_DB_ARCHIVE : CRDT_DB_LOG], &e->log));
    if (rc < 0) {
        crdt_export_end(e);
        return rc;
    }
    *out = e;
    return CRDT_OK;
}

int
crdt_export_begin(crdt_export **out, crdt_replica *r, const crdt_vv *lacks)
{
    if (out == NULL || r == NULL)
        return CRDT_EINVAL;
    return export_open(out, r, lacks, 0);
}

/* The archive's key for (@p a, @p seq) in epoch @p number. */
static void
archive_key(unsigned char *key, uint64_t number, const crdt_actor *a,
            uint64_t seq)
{
    crdt__be64(key, number);
    crdt__log_key(key + 8, a, seq);
}

/* Archive mode of next_actor(): the next actor of upto_vv that the other
 * side lacks changes of, the log cursor at its first archived change
 * that ends above what the other side holds. */
static int
next_archived_actor(crdt_export *e)
{
    while (e->next_entry < crdt_vv_count(e->upto_vv)) {
        unsigned char key[24];
        MDB_val lk = { sizeof key, key }, lv;
        uint64_t have;
        int rc;

        crdt_vv_entry(e->upto_vv, e->next_entry++, &e->actor, &e->upto);
        have = e->lacks ? crdt_vv_get(e->lacks, &e->actor) : 0;
        if (have >= e->upto)
            continue;
        archive_key(key, e->archive_epoch, &e->actor, have + 1);
        rc = mdb_cursor_get(e->log, &lk, &lv, MDB_SET_RANGE);
        if (rc == MDB_NOTFOUND)
            continue;
        if (rc != 0)
            return crdt__mdb_err(rc);
        e->in_actor = 1;
        e->have = have;
        return CRDT_OK;
    }
    return CRDT_ENOTFOUND;
}

/* What the other side holds of e->actor. The heads come in actor
 * order, and so do the entries of lacks: a scan forward from where the
 * last actor was found, not a binary search per head (10,000 heads: the
 * walk of a sync that differs by one change). The caller may raise
 * entries of lacks, or add one, as it goes (crdt_vv_set()), but only of
 * actors it was handed already: an entry added before e->lacks_at
 * shifts the rest by one, and the scan steps over the entry that sorts
 * before this actor. */
static uint64_t
lacks_seq(crdt_export *e)
{
    size_t n = crdt_vv_count(e->lacks);

    while (e->lacks_at < n) {
        crdt_actor a;
        uint64_t seq;
        int c;
        crdt_vv_entry(e->lacks, e->lacks_at, &a, &seq);
        c = memcmp(a.b, e->actor.b, CRDT_ACTOR_BYTES);
        if (c == 0)
            return seq;
        if (c > 0)
            return 0;
        e->lacks_at++;
    }
    return 0;
}

/* Move to the next actor the other side lacks something of. */
static int
next_actor(crdt_export *e)
{
    MDB_val k, v;
    int rc;

    if (e->archive)
        return next_archived_actor(e);
    for (;;) {
        rc = mdb_cursor_get(e->heads, &k, &v, e->started ? MDB_NEXT
                                                         : MDB_FIRST);
        e->started = 1;
        if (rc == MDB_NOTFOUND)
            return CRDT_ENOTFOUND;
        if (rc != 0)
            return crdt__mdb_err(rc);
        if (k.mv_size != CRDT_ACTOR_BYTES || v.mv_size != CRDT__HEAD_BYTES)
            return CRDT_ECORRUPT;
        memcpy(e->actor.b, k.mv_data, CRDT_ACTOR_BYTES);
        e->upto = crdt__rd64(v.mv_data);
        uint64_t have = e->lacks ? lacks_seq(e) : 0;
        if (have >= e->upto)
            continue;
        /* first change whose last seq is above @have */
        unsigned char key[16];
        MDB_val lk = { sizeof key, key }, lv;
        crdt__log_key(key, &e->actor, have + 1);
        rc = mdb_cursor_get(e->log, &lk, &lv, MDB_SET_RANGE);
        if (rc == MDB_NOTFOUND)
            continue;
        if (rc != 0)
            return crdt__mdb_err(rc);
        e->in_actor = 1;
        e->have = have;
        return CRDT_OK;
    }
}

int
crdt_export_next(crdt_export *e, const unsigned char **buf_out,
                 size_t *len_out)
{
    MDB_val k, v;
    int rc;

    if (e == NULL || e->done)
        return CRDT_ENOTFOUND;
    for (;;) {
        while (e->rec_i < e->rec.n) {
            const crdt_bytes *b = &e->rec.list[e->rec_i++];
            crdt_change c;
            /* a run may begin below what the other side holds (or, in
             * an archive, end above the epoch's cut) */
            if (e->rec.run &&
                (crdt__change_decode_header(&c, b->data, b->len) < 0 ||
                 c.seq + c.n_ops - 1 <= e->have ||
                 c.seq + c.n_ops - 1 > e->upto))
                continue;
            if (!e->as_stored &&
                (rc = own_signed(e, b, buf_out, len_out)) != 0)
                return rc < 0 ? rc : CRDT_OK;
            *buf_out = b->data;
            *len_out = b->len;
            return CRDT_OK;
        }
        if (e->rec.n > 0) {
            crdt__logrec_close(&e->prev_rec);
            e->prev_rec = e->rec; /* views into the map or its own buffer */
            memset(&e->rec, 0, sizeof e->rec);
        }
        e->rec_i = 0;
        if (!e->in_actor) {
            rc = next_actor(e);
            if (rc < 0) {
                e->done = 1;
                return rc;
            }
            rc = mdb_cursor_get(e->log, &k, &v, MDB_GET_CURRENT);
        } else {
            rc = mdb_cursor_get(e->log, &k, &v, MDB_NEXT);
        }
        if (rc == MDB_NOTFOUND) {
            e->in_actor = 0;
            continue;
        }
        if (rc != 0)
            return crdt__mdb_err(rc);
        if (e->archive) { /* epoch | actor | last seq */
            if (k.mv_size != 24 ||
                crdt__rd64(k.mv_data) != e->archive_epoch ||
                memcmp((unsigned char *)k.mv_data + 8, e->actor.b,
                       CRDT_ACTOR_BYTES) != 0) {
                e->in_actor = 0;
                continue;
            }
        } else if (k.mv_size != 16 ||
                   memcmp(k.mv_data, e->actor.b, CRDT_ACTOR_BYTES) != 0) {
            e->in_actor = 0;
            continue;
        }
        if (crdt__rd64((unsigned char *)k.mv_data + k.mv_size - 8) >
            e->upto) {
            /* past the cut: only a run can still hold changes below it
             * (the loop above drops the rest); the actor ends here */
            e->in_actor = 0;
            if (!crdt__logrec_is_run(v.mv_data, v.mv_size))
                continue;
        }
        if ((rc = crdt__logrec_open(&e->rec, k.mv_data, k.mv_size, v.mv_data,
                                    v.mv_size)) < 0)
            return rc;
    }
}

int
crdt_export_begin_archive(crdt_export **out, crdt_replica *r,
                          uint64_t epoch_number, const crdt_vv *from,
                          const crdt_vv *upto)
{
    int rc;

    if (out == NULL || r == NULL || upto == NULL)
        return CRDT_EINVAL;
    rc = export_open(out, r, from, 1);
    if (rc < 0)
        return rc;
    (*out)->upto_vv = (crdt_vv *)upto;
    (*out)->archive = 1;
    (*out)->archive_epoch = epoch_number;
    return CRDT_OK;
}

void
crdt_export_end(crdt_export *e)
{
    if (e == NULL)
        return;
    crdt__logrec_close(&e->rec);
    crdt__logrec_close(&e->prev_rec);
    if (e->log)
        mdb_cursor_close(e->log);
    if (e->heads)
        mdb_cursor_close(e->heads);
    crdt__txn_end(e->r, e->txn, 0);
    free(e->signed_copy);
    free(e);
}
