/*
 * recordcheck.c: checking the records inside sound pages
 * (crdt_replica_check_records).
 *
 * The page check (pagecheck.c) proves LMDB can read the file; it cannot
 * see a value whose bytes changed inside a sound page. Two hashes the
 * store keeps anyway cover the records that hold data:
 *
 *  (1) the state: the multiset hash of every (key, value) entry is kept
 *      incrementally (meta "hash0"/"hash1"); recomputed from the entries
 *      it must match, or some entry's bytes changed. The sum cannot say
 *      which entry (no per-entry checksum is stored).
 *  (2) the log: each change's hash is computed from its body when it is
 *      decoded, the next change of its actor names it as `prev`, and the
 *      last one of each actor's run carries a signature over its body
 *      (which covers `prev`, hence the whole run): decode every change,
 *      check its key, follow the chain, verify one signature per actor
 *      run, and where the actor's head (HEADS) names the same seq, its
 *      hash. The first damaged change is named.
 *
 * Cost: one pass over the state and the log (SipHash per entry, BLAKE2b
 * per change) and one Ed25519 check per actor; callers run it on small
 * replicas at every open and on any replica a daemon is about to serve.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

/* (1) of the file comment. */
static int
check_state(MDB_txn *txn, crdt_replica *r, char *why, size_t why_len)
{
    unsigned char now[CRDT_HASH_BYTES];
    int slot, rc;
    MDB_val kept;

    if ((rc = crdt__state_slot(txn, r, &slot)) < 0)
        return rc;
    rc = crdt__meta_get(txn, r, slot ? "hash1" : "hash0", &kept);
    if (rc == CRDT_ENOTFOUND || (rc == CRDT_OK &&
                                 kept.mv_size != CRDT_HASH_BYTES))
        return crdt__corrupt(why, why_len, "damaged state hash record");
    if (rc < 0)
        return rc;
    rc = crdt__state_rehash(txn, r->dbi[CRDT_DB_STATE0 + slot],
                            CRDT__STORE_FORMAT, now);
    if (rc < 0)
        return rc;
    if (memcmp(now, kept.mv_data, CRDT_HASH_BYTES) != 0)
        return crdt__corrupt(why, why_len, "damaged state: its entries no longer add "
                   "up to the state hash (a state entry's bytes changed)");
    return CRDT_OK;
}

/* The last change of an actor's run, @p c (key seq @p last): its
 * signature, and the head's hash when the head is at that seq. */
static int
check_run_end(MDB_txn *txn, crdt_replica *r, const crdt_change *c,
              uint64_t last, char *why, size_t why_len)
{
    char hex[2 * CRDT_ACTOR_BYTES + 1];
    crdt__head h;
    int rc;

    crdt_hex(hex, c->actor.b, CRDT_ACTOR_BYTES);
    if (crdt_change_verify(c) != CRDT_OK)
        return crdt__corrupt(why, why_len, "damaged change at %s up to seq %" PRIu64
                   " in the log (bad signature)", hex, last);
    rc = crdt__head_get(txn, r, &c->actor, &h);
    if (rc == CRDT_ECORRUPT)
        return crdt__corrupt(why, why_len, "damaged head record at actor %s", hex);
    if (rc < 0 && rc != CRDT_ENOTFOUND)
        return rc;
    if (rc == CRDT_OK && h.seq == last &&
        memcmp(h.hash, c->hash, CRDT_HASH_BYTES) != 0)
        return crdt__corrupt(why, why_len, "damaged head record at actor %s: it "
                   "does not name its last change (seq %" PRIu64 ", whose "
                   "signature is sound)", hex, last);
    return CRDT_OK;
}

/* One change of the log, @p c, under key seq @p last, against the one
 * before it (@p prev, if @p have_prev). NULL, or what is wrong. */
static const char *
check_change(MDB_txn *txn, crdt_replica *r, const unsigned char *space,
             const crdt_bytes *b, const unsigned char *actor, crdt_change *c,
             uint64_t *last, const crdt_change *prev, uint64_t prev_last,
             int have_prev, int in_run, char *hex, char *why, size_t why_len,
             int *rc)
{
    *rc = CRDT_OK;
    if (crdt_change_decode(c, b->data, b->len) != CRDT_OK)
        return "it does not decode";
    if (memcmp(c->space_id, space, CRDT_SPACE_ID_BYTES) != 0)
        return "another space";
    if (in_run && c->n_ops > 0)
        *last = c->seq + c->n_ops - 1; /* the key names the run's last */
    if (memcmp(c->actor.b, actor, CRDT_ACTOR_BYTES) != 0 || c->n_ops == 0 ||
        c->seq + c->n_ops - 1 != *last)
        return "stored under the wrong key";
    if (have_prev && memcmp(prev->actor.b, c->actor.b, CRDT_ACTOR_BYTES) == 0) {
        if (c->seq != prev_last + 1 ||
            memcmp(c->prev, prev->hash, CRDT_HASH_BYTES) != 0) {
            /* the earlier body or this one changed: the signature of
             * the earlier one's run end says which */
            crdt_hex(hex, prev->actor.b, CRDT_ACTOR_BYTES);
            if (crdt_change_verify(prev) != CRDT_OK) {
                *last = prev_last;
                return "bad signature";
            }
            crdt_hex(hex, c->actor.b, CRDT_ACTOR_BYTES);
            return "it does not follow the actor's previous change";
        }
    } else if (have_prev) {
        *rc = check_run_end(txn, r, prev, prev_last, why, why_len);
    }
    return NULL;
}

/* (2) of the file comment. A record may hold a run of changes
 * (logrec.c): each is checked as if stored alone, and a run that does
 * not open is named as a damaged run. */
static int
check_log(MDB_txn *txn, crdt_replica *r, char *why, size_t why_len)
{
    unsigned char space[CRDT_SPACE_ID_BYTES];
    crdt_change c, prev;
    crdt__logrec rec, prev_rec; /* prev is a view into one of them */
    uint64_t prev_last = 0;
    int have_prev = 0, rc;
    MDB_cursor *cur;
    MDB_val k, v;

    memset(&rec, 0, sizeof rec);
    memset(&prev_rec, 0, sizeof prev_rec);
    crdt_replica_space_id(r, space);
    if ((rc = crdt__mdb_err(mdb_cursor_open(txn, r->dbi[CRDT_DB_LOG],
                                            &cur))) < 0)
        return rc;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        char hex[2 * CRDT_ACTOR_BYTES + 1];
        uint64_t key_last, last;
        const char *bad = NULL;
        int e;

        if (k.mv_size != CRDT_ACTOR_BYTES + 8) {
            rc = crdt__corrupt(why, why_len, "damaged log key of %zu bytes",
                               k.mv_size);
            goto out;
        }
        crdt_hex(hex, k.mv_data, CRDT_ACTOR_BYTES);
        key_last = crdt__rd64((const unsigned char *)k.mv_data +
                              CRDT_ACTOR_BYTES);
        crdt__logrec_close(&prev_rec);
        prev_rec = rec;
        memset(&rec, 0, sizeof rec);
        e = crdt__logrec_open(&rec, k.mv_data, k.mv_size, v.mv_data,
                              v.mv_size);
        if (e == CRDT_ENOMEM) {
            rc = e;
            goto out;
        }
        if (e < 0) {
            rc = crdt__corrupt(why, why_len, "damaged run at %s up to seq %"
                               PRIu64 " in the log (it does not unpack "
                               "into a chain of the key's changes)", hex,
                               key_last);
            goto out;
        }
        for (size_t i = 0; i < rec.n && bad == NULL; i++) {
            last = key_last;
            bad = check_change(txn, r, space, &rec.list[i], k.mv_data, &c,
                               &last, &prev, prev_last, have_prev, rec.run,
                               hex, why, why_len, &e);
            if (e < 0) {
                rc = e;
                goto out;
            }
            if (bad != NULL)
                break;
            prev = c; /* a view into the map or into rec, both kept */
            prev_last = last;
            have_prev = 1;
        }
        if (bad != NULL) {
            rc = crdt__corrupt(why, why_len, "damaged change at %s up to seq %"
                       PRIu64 " in the log (%s)", hex, last, bad);
            goto out;
        }
    }
    if (rc != MDB_NOTFOUND) {
        rc = crdt__mdb_err(rc);
        goto out;
    }
    rc = have_prev ? check_run_end(txn, r, &prev, prev_last, why, why_len)
                   : CRDT_OK;
out:
    mdb_cursor_close(cur);
    crdt__logrec_close(&rec);
    crdt__logrec_close(&prev_rec);
    return rc;
}

int
crdt_replica_check_records(crdt_replica *r, char *why, size_t why_len)
{
    MDB_txn *txn;
    int rc;

    if (r == NULL)
        return CRDT_EINVAL;
    if (why != NULL && why_len > 0)
        why[0] = '\0';
    if ((rc = crdt__txn_begin(r, 0, &txn)) < 0)
        return rc;
    rc = check_state(txn, r, why, why_len);
    if (rc == CRDT_OK)
        rc = check_log(txn, r, why, why_len);
    crdt__txn_end(r, txn, 0);
    return rc;
}
