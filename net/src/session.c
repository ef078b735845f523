/*
 * session.c: the sync protocol, without I/O (crdtnet/session.h): a
 * session's life, the order of what it sends (next_message()) and the
 * dispatch of what it receives. The messages themselves:
 * session_hello.c (HELLO, SUMMARY, the roles), session_forks.c (FORKS),
 * session_give.c (CUT, the snapshot, CHANGES), session_take.c (merging
 * CHANGES, PACKED and CUT, resetting into a snapshot), session_fin.c
 * (FIN and its verdict); session_int.h holds the state they share.
 *
 * Messages (docs/protocol.md, "Sync messages"), each a msgpack array
 * whose first element is the type:
 *   1 HELLO  [1, proto, epoch_id, epoch_no, state_hash, vv, [record...]]
 *            (every epoch record the sender holds, by number)
 *   2 BUSY   [2, retry_after_ms]
 *   3 REJECT [3, reason]             (we quarantined our unsynced ops)
 *   4 SNAP_BEGIN [4, epoch_id, state_hash, [record...]]  (records again:
 *                the giver may have made an epoch since its HELLO)
 *   5 SNAP_CHUNK [5, [key, value, key, value, ...]]  a collection's kept
 *                lens defaults only to a peer whose HELLO wrote its
 *                epoch_id as bin 16 (c5)
 *   6 SNAP_END   [6]
 *   7 CHANGES    [7, [change...]]
 *   8 DONE       [8]
 *   9 FIN        [9, state_hash, vv, epoch_id]
 *  10 ERROR      [10, code, reason]
 *  11 SNAP_LOG   [11, [change...]]  the giver's log beyond the epoch's
 *                base, between the last SNAP_CHUNK and SNAP_END
 *  12 FORKS      [12, [actor...]]  right after HELLO, from both sides:
 *                the actors whose chain in the peer's HELLO heads forks
 *                from ours (equivocation: a copied replica wrote)
 *  13 PACKED     [13, 7 or 11, bin]  a CHANGES or SNAP_LOG whose changes
 *                are packed (crdt_changes_pack()); sent only to a peer
 *                whose HELLO wrote its proto as uint 8 (cc 03): it reads
 *                them. An older peer writes 03, reads plain messages only
 *                and never sees one. Packed version 2 goes only to a
 *                peer whose HELLO wrote its state hash as bin 16 (c5);
 *                to one from before it, version 1.
 *  14 SUMMARY    [14, digests, entries]  protocol 4 only: one round of
 *                the heads summary (summary.h), between HELLO and FORKS
 *  15 CUT        [15, [change...]]  from a giver, before SNAP_BEGIN: the
 *                archived changes of the cut of the taker's next epoch
 *                that the taker lacks (cut.c), so it can re-derive that
 *                epoch; sent only to a peer whose HELLO wrote its
 *                epoch_number as uint 64 (cf): it reads them
 * HELLO is [1, proto, epoch_id, epoch_no, state_hash, vv, [record...],
 * heads] where heads is every head with its chain hash
 * (crdt_heads_export()); protocol 4 sends, in place of vv and heads,
 * the root digest of the heads and their count:
 * [1, 4, epoch_id, epoch_no, state_hash, root, n_heads, [record...]],
 * and FIN carries the digest of the vv (crdtnet__vv_digest_add()).
 *
 * Version negotiation: a side that offers 4 first sends one empty
 * message (a keepalive to a version 3 peer, which ignores it and sends
 * its HELLO at once), then waits for the peer's first message: an empty
 * one (the peer offers 4 too) -> HELLO of version 4; a HELLO of version
 * 3 -> our HELLO of version 3.
 *
 * Equivocation: in the same epoch, if either side's FORKS names an
 * actor, the side whose chain of the smallest such actor loses (the
 * lower head seq; at equal seqs the larger head hash) becomes TAKER:
 * its changes off the winner's chains go to the quarantine and it
 * resets to the winner's snapshot, so both converge. A side whose own
 * actor is named starts a new incarnation (it cannot know whether it is
 * the copy); the loser re-applies its own losing ops under it.
 * Roles, from how the two epochs relate (libepoch epoch_relate()):
 *   SAME  both send the changes the other lacks (by the HELLO vv);
 *   GIVER (ahead, or the canonical side of a fork) sends its snapshot,
 *         then its log beyond the epoch's base heads;
 *   TAKER (behind, or the losing side) resets into the snapshot (its
 *         own log is replayed and rebased), then sends what the giver
 *         lacks.
 * Invariants:
 *  (1) Output is produced one message at a time from cursors: memory
 *      does not grow with history or state size.
 *  (2) Each CHANGES message is merged in one txn, all or nothing.
 *  (3) "In sync" is reported only if, at FIN, both vvs and both state
 *      hashes are equal; equal vvs with different hashes is an error
 *      when the comparison is conclusive (session_fin.c,
 *      fin_conclusive()).
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "session_int.h"

int
crdtnet_session_new(crdtnet_session **out, crdt_replica *r,
                    const crdtnet_session_options *opts)
{
    crdtnet_session_options defaults = CRDTNET_SESSION_OPTIONS_INIT;
    crdtnet_session *s;

    if (out == NULL || r == NULL)
        return CRDT_EINVAL;
    s = calloc(1, sizeof *s);
    if (s == NULL)
        return CRDT_ENOMEM;
    s->r = r;
    s->opts = defaults;
    if (opts != NULL && opts->version >= 2)
        s->opts = *opts;
    else if (opts != NULL) /* version 1: the fields before sync_proto */
        memcpy(&s->opts, opts,
               offsetof(crdtnet_session_options, sync_proto));
    s->max_proto = s->opts.sync_proto == PROTO_FULL ? PROTO_FULL
                                                     : PROTO_SUMMARY;
    if (s->opts.batch_bytes == 0)
        s->opts.batch_bytes = DEFAULT_BATCH;
    if (s->opts.batch_bytes > CRDTNET_SESSION_MSG_MAX / 2)
        s->opts.batch_bytes = CRDTNET_SESSION_MSG_MAX / 2;
    crdt__enc_init(&s->out);
    crdt__enc_init(&s->items);
    *out = s;
    return CRDT_OK;
}

void
crdtnet_session_free(crdtnet_session *s)
{
    if (s == NULL)
        return;
    crdt_export_end(s->exp);
    epoch_snapshot_close(s->snap);
    epoch_reset_abort(s->reset);
    crdt_vv_free(s->lacks);
    crdt_vv_free(s->peer_known);
    free(s->peer_heads);
    crdt_free(s->forks);
    crdtnet__sum_free(s->sum);
    free(s->peer_few);
    crdtnet__cut_clear(&s->cut);
    crdt_vv_free(s->cut_bound);
    crdt__enc_free(&s->out);
    crdt__enc_free(&s->items);
    free(s);
}

int
crdtnet_session_finished(const crdtnet_session *s)
{
    return s != NULL && s->finished;
}

int
crdtnet_session_error(const crdtnet_session *s)
{
    return s ? s->err : CRDT_EINVAL;
}

const crdtnet_report *
crdtnet_session_report(const crdtnet_session *s)
{
    return s ? &s->rep : NULL;
}

void
crdtnet_session_poke(crdtnet_session *s)
{
    if (s != NULL)
        s->dirty = 1;
}

/* End the session with @p rc; tell the peer why unless it told us. */
int
crdtnet__fail(crdtnet_session *s, int rc, const char *why, int tell_peer)
{
    if (s->err == 0) {
        s->err = rc;
        /* cut to fit: a reason is one line for a log and a report */
        snprintf(s->rep.reason, sizeof s->rep.reason, "%.*s",
                 (int)sizeof s->rep.reason - 1, why);
        snprintf(s->err_reason, sizeof s->err_reason, "%.*s",
                 (int)sizeof s->err_reason - 1, why);
        s->send_error = tell_peer;
        if (!tell_peer)
            s->closed = 1;
    }
    crdt_export_end(s->exp);
    s->exp = NULL;
    epoch_snapshot_close(s->snap);
    s->snap = NULL;
    epoch_reset_abort(s->reset);
    s->reset = NULL;
    return rc;
}

/* A failure to read our own replica. CRDT_ECORRUPT: it is damaged; the
 * replica is marked (a daemon stops serving it) and the report says the
 * damage is local, never the peer's. */
static int
local_fail(crdtnet_session *s, int rc, const char *why)
{
    if (rc == CRDT_ECORRUPT) {
        crdt_replica_mark_damaged(s->r);
        s->rep.local_damage = 1;
        return crdtnet__fail(s, rc,
                             "this replica's data is damaged: nothing "
                             "damaged was sent",
                             1);
    }
    return crdtnet__fail(s, rc, why, 1);
}

/* Our state's figures and version vector from one read snapshot (*@p vv
 * the caller's to free, also on failure). */
int
crdtnet__read_state(crdt_replica *r, crdt_stats *st, crdt_vv **vv)
{
    crdt_read *rd;
    int rc;

    if ((rc = crdt_read_begin(&rd, r)) < 0)
        return rc;
    rc = crdt_read_stats(st, rd);
    if (rc == CRDT_OK)
        rc = crdt_read_vv(vv, rd);
    crdt_read_end(rd);
    return rc;
}

/* A decoder's failure: out of memory is ours, anything else the peer's. */
int
crdtnet__fail_decode(crdtnet_session *s, int rc, const char *why)
{
    if (rc == CRDT_ENOMEM)
        return crdtnet__fail(s, CRDT_ENOMEM, "out of memory", 1);
    return crdtnet__fail(s, CRDT_EPROTO, why, 1);
}

int
crdtnet_session_error_msg(unsigned char **out, size_t *len, int code,
                          const char *reason)
{
    crdt__enc e;

    if (out == NULL || len == NULL || reason == NULL)
        return CRDT_EINVAL;
    crdt__enc_init(&e);
    msgpack_pack_array(&e.pk, 3);
    msgpack_pack_uint64(&e.pk, M_ERROR);
    msgpack_pack_int64(&e.pk, code);
    crdt__enc_str(&e, reason, strnlen(reason, 159));
    if (crdt__enc_ok(&e) < 0) {
        crdt__enc_free(&e);
        return CRDT_ENOMEM;
    }
    *out = (unsigned char *)e.sb.data;
    *len = e.sb.size;
    return CRDT_OK;
}

static int
busy_now(crdtnet_session *s)
{
    epoch_marker m;
    int rc = epoch_marker_get(&m, s->r);

    if (rc < 0)
        return rc == CRDT_ENOTFOUND ? 0 : rc;
    epoch_marker_clear(&m);
    return 1;
}

/* Build the next message into s->out; CRDT_EAGAIN if there is none. */
static int
next_message(crdtnet_session *s)
{
    int rc;

    if (s->send_error) {
        s->send_error = 0;
        s->closed = 1;
        msgpack_pack_array(&s->out.pk, 3);
        msgpack_pack_uint64(&s->out.pk, M_ERROR);
        msgpack_pack_int64(&s->out.pk, s->err);
        crdt__enc_str(&s->out, s->err_reason, strlen(s->err_reason));
        return CRDT_OK;
    }
    if (s->closed)
        return CRDT_ECLOSED;
    if (!s->hello_sent) {
        int busy = busy_now(s);

        if (busy < 0)
            return local_fail(s, busy, "cannot read the replica");
        if (s->max_proto >= PROTO_SUMMARY && !busy) {
            /* offer protocol 4, then answer in the peer's version */
            if (!s->announce_sent) {
                s->announce_sent = 1;
                s->empty_due = 1;
                return CRDT_OK;
            }
            if (!s->hello_recv && !s->peer_announced)
                return CRDT_EAGAIN;
            s->hello_sent = 1;
            if (s->hello_recv && s->proto == PROTO_FULL) {
                /* the peer spoke first, in version 3 */
                if ((rc = crdtnet__build_hello(s)) < 0)
                    return local_fail(s, rc, "cannot read the replica");
                return CRDT_OK;
            }
            s->proto = PROTO_SUMMARY;
            s->rep.sync_proto = PROTO_SUMMARY;
            if ((rc = crdtnet__build_hello_summary(s)) < 0)
                return local_fail(s, rc, "cannot read the replica");
            if ((rc = crdtnet__summary_rounds_begin(s)) < 0) {
                /* the peer's HELLO, judged only now that ours is built,
                 * does not add up: the ERROR goes in place of our HELLO
                 * (returning rc here left next_out() answering an error
                 * it never documents, and the peer waiting for a HELLO
                 * that never came) */
                crdt__enc_reset(&s->out);
                if (s->err == 0) /* a failure of ours, not yet reported */
                    return local_fail(s, rc, "cannot read the replica");
                return CRDT_EAGAIN;
            }
            return CRDT_OK;
        }
        s->hello_sent = 1;
        if (busy) {
            s->rep.busy_retry_ms = 1000;
            s->err = CRDT_EBUSY;
            snprintf(s->rep.reason, sizeof s->rep.reason,
                     "a migration is in progress here");
            s->closed = 1;
            msgpack_pack_array(&s->out.pk, 2);
            msgpack_pack_uint64(&s->out.pk, M_BUSY);
            msgpack_pack_uint64(&s->out.pk, 1000);
            return CRDT_OK;
        }
        if ((rc = crdtnet__build_hello(s)) < 0)
            return local_fail(s, rc, "cannot read the replica");
        return CRDT_OK;
    }
    if (!s->hello_recv)
        return CRDT_EAGAIN;
    if (s->proto == PROTO_SUMMARY && s->sum != NULL &&
        crdtnet__sum_round_due(s->sum)) {
        const unsigned char *sums, *heads;
        size_t sl, hl;

        crdtnet__sum_round_take(s->sum, &sums, &sl, &heads, &hl);
        msgpack_pack_array(&s->out.pk, 3);
        msgpack_pack_uint64(&s->out.pk, M_SUMMARY);
        crdt__enc_bin(&s->out, sums, sl);
        crdt__enc_bin(&s->out, heads, hl);
        return CRDT_OK;
    }
    if (!s->view_ready)
        return CRDT_EAGAIN; /* the peer's next round is due */
    if (!s->forks_sent) {
        s->forks_sent = 1;
        return crdtnet__build_forks(s);
    }
    if (!s->forks_recv)
        return CRDT_EAGAIN;
    if (s->reject_due) {
        s->reject_due = 0;
        msgpack_pack_array(&s->out.pk, 2);
        msgpack_pack_uint64(&s->out.pk, M_REJECT);
        crdt__enc_str(&s->out, s->rep.reason, strlen(s->rep.reason));
        return CRDT_OK;
    }
    if (s->role == ROLE_GIVER && s->snap_phase == 0 && s->cut_phase < 2) {
        rc = crdtnet__build_cut(s);
        if (rc == CRDT_OK)
            return CRDT_OK;
        if (rc != CRDT_ENOTFOUND)
            return local_fail(s, rc, "cannot read the archive");
    }
    if (s->role == ROLE_GIVER && s->snap_phase < 2) {
        if ((rc = crdtnet__build_snapshot(s)) < 0)
            return local_fail(s, rc, "cannot read the snapshot");
        return CRDT_OK;
    }
    if (s->role == ROLE_TAKER && !s->snapshot_done)
        return CRDT_EAGAIN;
    if (!s->done_sent) {
        rc = crdtnet__build_changes(s);
        if (rc == CRDT_OK)
            return CRDT_OK;
        if (rc != CRDT_ENOTFOUND)
            return local_fail(s, rc, "cannot read the log");
        s->done_sent = 1;
        msgpack_pack_array(&s->out.pk, 1);
        msgpack_pack_uint64(&s->out.pk, M_DONE);
        return CRDT_OK;
    }
    if (!s->done_recv)
        return CRDT_EAGAIN;
    if (!s->fin_sent) {
        if ((rc = crdtnet__build_fin(s)) < 0)
            return local_fail(s, rc, "cannot read the replica");
        s->fin_sent = 1;
        return CRDT_OK;
    }
    if (!s->fin_recv)
        return CRDT_EAGAIN;
    if (!s->opts.live) {
        s->finished = 1;
        s->closed = 1;
        return CRDT_ECLOSED;
    }
    /* live: push what the peer lacks whenever the replica changed */
    if (s->dirty && s->exp == NULL) {
        s->dirty = 0;
        crdt_vv_free(s->lacks);
        s->lacks = NULL;
        if (s->peer_known != NULL) /* export from what the peer is */
            (void)crdt_vv_copy(&s->lacks, s->peer_known); /* known to hold */
    }
    if (s->lacks != NULL || s->exp != NULL) {
        rc = crdtnet__build_changes(s);
        if (rc == CRDT_OK)
            return CRDT_OK;
        crdt_vv_free(s->lacks);
        s->lacks = NULL;
        if (rc != CRDT_ENOTFOUND)
            return local_fail(s, rc, "cannot read the log");
    }
    return CRDT_EAGAIN;
}

void
crdtnet__session_trim(crdtnet_session *s)
{
    /* the message buffer is rebuilt by every next_out(): between calls
     * it holds nothing anyone reads */
    if (s == NULL)
        return;
    crdt__enc_free(&s->out);
    crdt__enc_init(&s->out);
}

int
crdtnet_session_next_out(crdtnet_session *s, const unsigned char **msg,
                         size_t *len)
{
    int rc;

    if (s == NULL || msg == NULL || len == NULL)
        return CRDT_EINVAL;
    crdt__enc_reset(&s->out);
    rc = next_message(s);
    if (rc < 0) {
        if (rc != CRDT_EAGAIN && rc != CRDT_ECLOSED)
            return rc;
        if (rc == CRDT_EAGAIN && s->send_error) /* a failure just now */
            rc = next_message(s);
        if (rc < 0)
            return rc;
    }
    if (crdt__enc_ok(&s->out) < 0) { /* a short message is never sent */
        crdt__enc_reset(&s->out);
        return crdtnet__fail(s, CRDT_ENOMEM, "out of memory", 0);
    }
    if (s->empty_due && s->out.sb.size == 0) {
        static const unsigned char nothing[1];
        s->empty_due = 0; /* the offer of protocol 4 */
        *msg = nothing;
        *len = 0;
        return CRDT_OK;
    }
    if (s->out.sb.size == 0)
        return s->closed ? CRDT_ECLOSED : CRDT_EAGAIN;
    *msg = (const unsigned char *)s->out.sb.data;
    *len = s->out.sb.size;
    return CRDT_OK;
}

static int dispatch(crdtnet_session *s, crdt__mp *mp, uint32_t n,
                    uint64_t type);

int
crdtnet_session_feed(crdtnet_session *s, const unsigned char *msg,
                     size_t len)
{
    /* an empty message may come as NULL: no offset on a null pointer */
    crdt__mp m = { msg, msg != NULL ? msg + len : msg };
    uint32_t n;
    uint64_t type;
    int rc;

    if (s == NULL || (msg == NULL && len > 0))
        return CRDT_EINVAL;
    if (s->err != 0 || s->closed)
        return s->err ? s->err : CRDT_ECLOSED;
    if (len == 0) {
        /* the first before any HELLO: the peer offers protocol 4; any
         * other is a keepalive */
        if (!s->hello_recv)
            s->peer_announced = 1;
        return CRDT_OK;
    }
    if (len > CRDTNET_SESSION_MSG_MAX)
        return crdtnet__fail(s, CRDT_ELIMIT, "message too large", 1);
    if (crdt__mp_array(&m, &n) < 0 || n < 1 || crdt__mp_uint(&m, &type) < 0)
        return crdtnet__fail(s, CRDT_EPROTO, "malformed message", 1);
    if (type != M_HELLO && type != M_BUSY && type != M_ERROR &&
        !s->hello_recv)
        return crdtnet__fail(s, CRDT_EPROTO, "message before HELLO", 1);
    if (type == M_SUMMARY && (!s->hello_recv || s->view_ready ||
                              s->proto != PROTO_SUMMARY))
        return crdtnet__fail(s, CRDT_EPROTO, "unexpected SUMMARY", 1);
    if (type == M_FORKS && s->hello_recv && !s->view_ready)
        return crdtnet__fail(s, CRDT_EPROTO,
                             "FORKS before the end of the summary", 1);
    if (type != M_FORKS && type != M_SUMMARY && type != M_BUSY &&
        type != M_ERROR && s->hello_recv && !s->forks_recv)
        return crdtnet__fail(s, CRDT_EPROTO, "message before FORKS", 1);
    {   /* the whole message must be well formed, with nothing after it,
         * before any part of it is acted on */
        crdt__mp whole = m;
        for (uint32_t i = 1; i < n; i++)
            if (crdt__mp_skip(&whole) < 0)
                return crdtnet__fail(s, CRDT_EPROTO, "malformed message", 1);
        if (whole.p != whole.end)
            return crdtnet__fail(s, CRDT_EPROTO,
                                 "trailing bytes after a message", 1);
    }
    rc = dispatch(s, &m, n, type);
    if (rc == CRDT_OK && m.p != m.end) /* every byte must be accounted for */
        return crdtnet__fail(s, CRDT_EPROTO, "trailing bytes after a message",
                             1);
    return rc;
}

static int
dispatch(crdtnet_session *s, crdt__mp *mp, uint32_t n, uint64_t type)
{
    switch (type) {
    case M_HELLO:
        return crdtnet__on_hello(s, mp, n);
    case M_BUSY: {
        uint64_t ms = 1000;
        if (n == 2)
            crdt__mp_uint(mp, &ms);
        s->rep.busy_retry_ms = ms > 600000 ? 600000 : ms;
        return crdtnet__fail(s, CRDT_EBUSY, "peer is migrating; retry later",
                             0);
    }
    case M_REJECT: {
        const char *r;
        uint32_t rl;
        if (n != 2 || crdt__mp_str(mp, &r, &rl) < 0)
            return crdtnet__fail(s, CRDT_EPROTO, "malformed REJECT", 1);
        snprintf(s->rep.reason, sizeof s->rep.reason, "peer %.*s", (int)rl,
                 r);
        return CRDT_OK;
    }
    case M_SNAP_BEGIN:
    case M_SNAP_CHUNK:
    case M_SNAP_LOG:
    case M_SNAP_END:
        if ((type == M_SNAP_BEGIN && n != 4) ||
            ((type == M_SNAP_CHUNK || type == M_SNAP_LOG) && n != 2) ||
            (type == M_SNAP_END && n != 1))
            return crdtnet__fail(s, CRDT_EPROTO, "malformed snapshot message",
                                 1);
        return crdtnet__on_snapshot(s, type, mp, NULL, 0);
    case M_CHANGES:
        if (n != 2)
            return crdtnet__fail(s, CRDT_EPROTO, "malformed CHANGES", 1);
        return crdtnet__on_changes(s, mp, type);
    case M_CUT:
        if (PLAIN(s)) /* we never said we read it */
            return crdtnet__fail(s, CRDT_EPROTO, "unknown message type", 1);
        if (n != 2)
            return crdtnet__fail(s, CRDT_EPROTO, "malformed CUT", 1);
        return crdtnet__on_changes(s, mp, type);
    case M_PACKED:
        if (PLAIN(s)) /* we never said we read it */
            return crdtnet__fail(s, CRDT_EPROTO, "unknown message type", 1);
        if (n != 3)
            return crdtnet__fail(s, CRDT_EPROTO, "malformed PACKED", 1);
        return crdtnet__on_packed(s, mp);
    case M_FORKS:
        if (n != 2 || !s->hello_recv)
            return crdtnet__fail(s, CRDT_EPROTO, "unexpected FORKS", 1);
        return crdtnet__on_forks(s, mp);
    case M_SUMMARY:
        if (n != 3)
            return crdtnet__fail(s, CRDT_EPROTO, "malformed SUMMARY", 1);
        return crdtnet__on_summary(s, mp);
    case M_DONE:
        if (n != 1 || s->done_recv)
            return crdtnet__fail(s, CRDT_EPROTO, "unexpected DONE", 1);
        s->done_recv = 1;
        return CRDT_OK;
    case M_FIN:
        if (n != 4 || !s->done_recv)
            return crdtnet__fail(s, CRDT_EPROTO, "unexpected FIN", 1);
        return crdtnet__on_fin(s, mp);
    case M_ERROR: {
        int64_t code = CRDT_EPROTO;
        const char *r = "";
        uint32_t rl = 0;
        char why[160];
        if (n == 3) {
            crdt__mp_int(mp, &code);
            crdt__mp_str(mp, &r, &rl);
        }
        if (code >= 0 || code < -100)
            code = CRDT_EPROTO;
        snprintf(why, sizeof why, "peer: %.*s", (int)(rl > 120 ? 120 : rl), r);
        return crdtnet__fail(s, (int)code, why, 0);
    }
    default:
        return crdtnet__fail(s, CRDT_EPROTO, "unknown message type", 1);
    }
}
