/*
 * session_take.c: what a session takes into its replica: CHANGES and
 * PACKED (each message merged in one txn, session.c invariant (2)), CUT,
 * and a snapshot the replica resets into.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "session_int.h"

static int merge_changes(crdtnet_session *s, const crdt_bytes *items,
                         size_t n, const crdt_unpacked *u);

/* May a CUT come now? Only to us as a taker that announced it, before
 * the snapshot begins. */
static int
cut_order_ok(const crdtnet_session *s)
{
    return !PLAIN(s) && s->role == ROLE_TAKER &&
           s->reset == NULL && !s->snapshot_done;
}

/* A CUT only fills the cut of our next epoch on the giver's chain: a
 * change beyond it would leave us beyond the cut, where the epoch can no
 * longer be re-derived and its signature alone would vouch. */
static int
cut_within(crdtnet_session *s, const crdt_bytes *items, size_t n)
{
    int rc;

    if (s->cut_bound == NULL &&
        (rc = crdtnet__cut_bound(&s->cut_bound, s->r, s->peer_epoch)) < 0) {
        if (rc == CRDT_ENOTFOUND)
            return crdtnet__fail(s, CRDT_EPROTO, "unexpected CUT", 1);
        return crdtnet__fail(
            s, rc,
            rc == CRDT_ENOMEM ? "out of memory" : "cannot read the epoch", 1);
    }
    for (size_t i = 0; i < n; i++) {
        crdt_actor a;
        uint64_t last;
        s->cut_bytes += items[i].len;
        if (s->cut_bytes > CRDTNET__CUT_BYTES_MAX)
            return crdtnet__fail(s, CRDT_ELIMIT,
                                 "CUT larger than a cut fetch may be", 1);
        if (crdt_change_peek(&a, &last, items[i].data, items[i].len) !=
            CRDT_OK)
            return crdtnet__fail(s, CRDT_EPROTO, "malformed CUT", 1);
        if (last > crdt_vv_get(s->cut_bound, &a))
            return crdtnet__fail(s, CRDT_EPROTO, "CUT beyond the epoch's cut",
                                 1);
    }
    return CRDT_OK;
}

/* CHANGES, or (@p type M_CUT) a CUT: the same list, merged alike. */
int
crdtnet__on_changes(crdtnet_session *s, crdt__mp *m, uint64_t type)
{
    const char *bad = type == M_CUT ? "malformed CUT" : "malformed CHANGES";
    crdt_bytes *items;
    uint32_t n;
    int rc;

    if (type == M_CUT && !cut_order_ok(s))
        return crdtnet__fail(s, CRDT_EPROTO, "unexpected CUT", 1);
    if (type != M_CUT &&
        (!s->hello_recv || (s->role == ROLE_TAKER && !s->snapshot_done)))
        return crdtnet__fail(s, CRDT_EPROTO, "CHANGES out of order", 1);
    if (crdt__mp_array(m, &n) < 0)
        return crdtnet__fail(s, CRDT_EPROTO, bad, 1);
    /* memory for the list is bounded by the message, not by a count the
     * peer chose: no change is shorter than CRDT_CHANGE_MIN */
    if (n > (size_t)(m->end - m->p) / CRDT_CHANGE_MIN)
        return crdtnet__fail(s, CRDT_ELIMIT,
                             "more changes than the message can hold", 1);
    items = calloc(n ? n : 1, sizeof *items);
    if (items == NULL)
        return crdtnet__fail(s, CRDT_ENOMEM, "out of memory", 1);
    for (uint32_t i = 0; i < n; i++) {
        const unsigned char *p;
        uint32_t l;
        if (crdt__mp_bin(m, &p, &l) < 0) {
            free(items);
            return crdtnet__fail(s, CRDT_EPROTO, bad, 1);
        }
        items[i].data = p;
        items[i].len = l;
    }
    rc = type == M_CUT ? cut_within(s, items, n) : CRDT_OK;
    if (rc == CRDT_OK)
        rc = merge_changes(s, items, n, NULL);
    if (rc == CRDT_OK && type == M_CUT)
        s->rep.cut_changes_received += n;
    free(items);
    return rc;
}

/* One CHANGES message's changes, merged in one txn. */
static int
merge_changes(crdtnet_session *s, const crdt_bytes *items, size_t n,
              const crdt_unpacked *u)
{
    crdt_merge_report mr;
    int rc;

    /* @p u: @p items unpacked, with the hashes the unpack computed */
    rc = u != NULL ? crdt_merge_unpacked(&mr, s->r, u)
                   : crdt_merge(&mr, s->r, items, n);
    if (rc == CRDT_OK && s->peer_known != NULL) {
        for (size_t i = 0; i < n; i++) /* the peer holds what it sent */
            crdtnet__note_sent(s, items[i].data, items[i].len);
    }
    if (rc == CRDT_EBUSY) { /* a migration, or the map must grow while
                               this thread holds a read of it */
        s->rep.busy_retry_ms = 1000;
        return crdtnet__fail(s, CRDT_EBUSY, "busy here; retry later", 1);
    }
    if (rc < 0) {
        const char *why = rc == CRDT_EAUTH      ? "forged or foreign change"
                          : rc == CRDT_ECONFLICT ? "conflicting change for "
                                                   "an existing (actor, seq)"
                          : rc == CRDT_ECLOCK    ? "change stamped too far "
                                                   "in the future"
                          : rc == CRDT_ENOTFOUND ? "change of an unknown epoch"
                                                 : crdt_strerror(rc);
        return crdtnet__fail(s, rc, why, 1);
    }
    s->rep.changes_received += n;
    s->rep.ops_received += mr.ops_applied;
    s->rep.rebased_ops += mr.rebased_ops;
    s->rep.quarantined_ops += mr.quarantined_ops;
    s->rep.conflicts += mr.conflicts;
    return CRDT_OK;
}

/* Before a snapshot's epoch is adopted, a replica that holds its parent
 * re-derives it from its own state (docs/security.md, "Epochs"): a
 * mismatch refuses it, and this replica stays at its epoch with nothing
 * changed. */
static int
refuse_underived(crdtnet_session *s, const unsigned char *id)
{
    epoch_check chk;
    int rc = epoch_check_derivation(&chk, s->r, id);

    if (rc == CRDT_EBUSY) {
        s->rep.busy_retry_ms = 1000;
        return crdtnet__fail(s, rc, "a reset is in progress here", 1);
    }
    if (rc < 0)
        return crdtnet__fail(s, rc, "cannot check the snapshot's epoch", 1);
    if (chk.verdict == EPOCH_DERIVED_MISMATCH)
        return crdtnet__fail(s, CRDT_EREJECTED, chk.reason, 1);
    return CRDT_OK;
}

/* Whether the SNAP_LOG change @p c is the giver's head of the forked
 * actor that made us lose, as its HELLO claimed it: a head that no
 * signed change of the giver's backs was made up, and resetting to it
 * would quarantine our side of a fork that does not exist (the commit
 * checks every SNAP_LOG change's signature). */
static void
fork_proof_note(crdtnet_session *s, const unsigned char *c, size_t len)
{
    crdt_actor actor;
    crdt_change ch;
    uint64_t last;

    if (!s->fork_proof_due || crdt_change_peek(&actor, &last, c, len) < 0 ||
        last != s->fork_seq ||
        memcmp(actor.b, s->forks[0].b, CRDT_ACTOR_BYTES) != 0 ||
        crdt_change_decode(&ch, c, len) < 0)
        return;
    if (memcmp(ch.hash, s->fork_hash, CRDT_HASH_BYTES) == 0)
        s->fork_proof_due = 0;
}

/* One change of the giver's SNAP_LOG, staged for the reset. */
static int
snap_log_change(crdtnet_session *s, const unsigned char *c, size_t len)
{
    int rc;

    if ((rc = epoch_reset_change(s->reset, c, len)) < 0)
        return crdtnet__fail(s, rc == CRDT_EINVAL ? CRDT_EPROTO : rc,
                             "bad change in the snapshot's log", 1);
    fork_proof_note(s, c, len);
    s->rep.changes_received++;
    return CRDT_OK;
}

/* A snapshot message: @p m is the rest of it; for a PACKED SNAP_LOG, @p m
 * is NULL and the changes are @p packed. */
int
crdtnet__on_snapshot(crdtnet_session *s, uint64_t type, crdt__mp *m,
                     const crdt_bytes *packed, size_t n_packed)
{
    crdt_merge_report mr;
    unsigned char id[CRDT_HASH_BYTES];
    uint32_t n;
    int rc;

    if (s->role != ROLE_TAKER || s->snapshot_done)
        return crdtnet__fail(s, CRDT_EPROTO, "unexpected snapshot", 1);
    if (type == M_SNAP_BEGIN) {
        if (s->reset != NULL ||
            crdt__mp_bin_fixed(m, id, sizeof id) < 0 ||
            crdt__mp_bin_fixed(m, s->reset_hash, sizeof s->reset_hash) < 0 ||
            crdt__mp_array(m, &n) < 0)
            return crdtnet__fail(s, CRDT_EPROTO, "malformed SNAP_BEGIN", 1);
        for (uint32_t i = 0; i < n; i++) {
            const unsigned char *rec;
            uint32_t rl;
            size_t len;
            if (crdt__mp_bin(m, &rec, &rl) < 0)
                return crdtnet__fail(s, CRDT_EPROTO, "malformed SNAP_BEGIN", 1);
            len = rl;
            if ((rc = epoch_store_records(s->r, &rec, &len, 1)) < 0 &&
                crdtnet__ours(rc))
                return crdtnet__fail(s, rc, crdt_strerror(rc), 1);
            if (rc < 0)
                return crdtnet__fail(
                    s, rc == CRDT_EBUSY ? rc : CRDT_EAUTH,
                    rc == CRDT_EPERM ? "epoch record made by a key that is not "
                                       "an admin of the space"
                                     : "invalid epoch record from peer",
                    1);
        }
        if ((rc = refuse_underived(s, id)) < 0)
            return rc;
        rc = epoch_reset_begin(&s->reset, s->r, id, NULL);
        if (rc == CRDT_EBUSY) {
            s->rep.busy_retry_ms = 1000;
            return crdtnet__fail(s, rc, "a migration is in progress here", 1);
        }
        if (rc < 0)
            return crdtnet__fail(s, rc, "cannot start the reset", 1);
        if (s->rep.rejected &&
            (rc = epoch_reset_quarantine_unsynced(s->reset, s->rep.reason,
                                                  &s->moved)) < 0)
            return crdtnet__fail(s, rc, "cannot prepare the quarantine", 1);
        if (s->rep.equivocation_lost) {
            char why[200], a[17];
            crdt_hex(a, s->rep.equivocating.b, CRDT_ACTOR_BYTES);
            snprintf(why, sizeof why,
                     "equivocation: actor %s wrote two chains (a copied "
                     "replica?); this one lost to the peer's", a);
            rc = epoch_reset_quarantine_forks(s->reset, s->forks, s->n_forks,
                                              why, &s->fork_moved);
            if (rc < 0)
                return crdtnet__fail(s, rc, "cannot prepare the quarantine", 1);
        }
        return CRDT_OK;
    }
    if (s->reset == NULL)
        return crdtnet__fail(s, CRDT_EPROTO, "snapshot without SNAP_BEGIN", 1);
    if (type == M_SNAP_LOG && m == NULL) { /* PACKED: the list is here */
        for (size_t i = 0; i < n_packed; i++)
            if ((rc = snap_log_change(s, packed[i].data, packed[i].len)) < 0)
                return rc;
        return CRDT_OK;
    }
    if (type == M_SNAP_LOG) {
        if (crdt__mp_array(m, &n) < 0)
            return crdtnet__fail(s, CRDT_EPROTO, "malformed SNAP_LOG", 1);
        for (uint32_t i = 0; i < n; i++) {
            const unsigned char *c;
            uint32_t cl;
            if (crdt__mp_bin(m, &c, &cl) < 0)
                return crdtnet__fail(s, CRDT_EPROTO, "malformed SNAP_LOG", 1);
            if ((rc = snap_log_change(s, c, cl)) < 0)
                return rc;
        }
        return CRDT_OK;
    }
    if (type == M_SNAP_CHUNK) {
        if (crdt__mp_array(m, &n) < 0 || n % 2 != 0)
            return crdtnet__fail(s, CRDT_EPROTO, "malformed SNAP_CHUNK", 1);
        for (uint32_t i = 0; i < n / 2; i++) {
            const unsigned char *k, *v;
            uint32_t kl, vl;
            if (crdt__mp_bin(m, &k, &kl) < 0 || crdt__mp_bin(m, &v, &vl) < 0)
                return crdtnet__fail(s, CRDT_EPROTO, "malformed SNAP_CHUNK", 1);
            if ((rc = epoch_reset_put(s->reset, k, kl, v, vl)) < 0)
                return crdtnet__fail(s, rc == CRDT_EINVAL ? CRDT_EPROTO : rc,
                                     "bad snapshot entry", 1);
            s->rep.snapshot_entries_received++;
        }
        return CRDT_OK;
    }
    /* SNAP_END */
    if (s->fork_proof_due)
        return crdtnet__fail(s, CRDT_EPROTO,
                             "the peer's log lacks the head it claimed for "
                             "the forked actor",
                             1);
    memset(&mr, 0, sizeof mr);
    rc = epoch_reset_commit(&mr, s->reset, s->reset_hash);
    s->reset = NULL;
    if (rc == CRDT_EPERM) /* docs/security.md */
        return crdtnet__fail(s, CRDT_EAUTH,
                             "snapshot not signed by the space's "
                             "owner",
                             1);
    if (rc < 0)
        return crdtnet__fail(s, rc,
                             rc == CRDT_ECORRUPT ? "snapshot hash mismatch"
                                                 : "cannot apply the snapshot",
                             1);
    s->snapshot_done = 1;
    s->rep.snapshot_received = 1;
    s->rep.rebased_ops += mr.rebased_ops;
    s->rep.quarantined_ops += mr.quarantined_ops + s->moved + s->fork_moved;
    return CRDT_OK;
}

/* PACKED [13, 7 or 11, bin]: unpacked, then what a CHANGES or a SNAP_LOG
 * with the same changes does. */
int
crdtnet__on_packed(crdtnet_session *s, crdt__mp *m)
{
    const unsigned char *p;
    crdt_unpacked *u = NULL;
    const crdt_bytes *list;
    uint64_t inner;
    uint32_t l;
    size_t n = 0;
    int rc;

    if (crdt__mp_uint(m, &inner) < 0 ||
        (inner != M_CHANGES && inner != M_SNAP_LOG && inner != M_CUT) ||
        crdt__mp_bin(m, &p, &l) < 0)
        return crdtnet__fail(s, CRDT_EPROTO, "malformed PACKED", 1);
    if (inner == M_CUT && !cut_order_ok(s))
        return crdtnet__fail(s, CRDT_EPROTO, "unexpected CUT", 1);
    /* the order rules of the message it stands for, before the work */
    if (inner == M_CHANGES &&
        (!s->hello_recv || (s->role == ROLE_TAKER && !s->snapshot_done)))
        return crdtnet__fail(s, CRDT_EPROTO, "CHANGES out of order", 1);
    if (inner == M_SNAP_LOG && (s->role != ROLE_TAKER || s->snapshot_done))
        return crdtnet__fail(s, CRDT_EPROTO, "unexpected snapshot", 1);
    if (inner == M_SNAP_LOG && s->reset == NULL)
        return crdtnet__fail(s, CRDT_EPROTO, "snapshot without SNAP_BEGIN", 1);
    if (l > 0 && p[0] == CRDT_CHANGES_PACK_V2 && !PACKS_V2(s))
        return crdtnet__fail(s, CRDT_EPROTO, "malformed PACKED",
                             1); /* not said */
    /* the unpack hashes each change it rebuilds (the next one's prev):
     * the merge takes those hashes instead of hashing each body again */
    rc = crdt_unpacked_new(&u, p, l);
    if (rc == CRDT_ENOMEM)
        return crdtnet__fail(s, rc, "out of memory", 1);
    if (rc < 0)
        return crdtnet__fail(s, rc == CRDT_ELIMIT ? rc : CRDT_EPROTO,
                             "malformed PACKED", 1);
    list = crdt_unpacked_changes(u, &n);
    if (inner == M_CUT)
        rc = cut_within(s, list, n);
    if (inner == M_CHANGES || (inner == M_CUT && rc == CRDT_OK))
        rc = merge_changes(s, list, n, u);
    if (inner == M_CUT && rc == CRDT_OK)
        s->rep.cut_changes_received += n;
    if (inner == M_SNAP_LOG)
        rc = crdtnet__on_snapshot(s, M_SNAP_LOG, NULL, list, n);
    crdt_unpacked_free(u);
    return rc;
}
