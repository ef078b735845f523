/*
 * session_hello.c: HELLO, both ways, and what it decides: the protocol
 * version, the capabilities each side announces, the two epochs'
 * relation (our role), and the peer's version vector and heads (whole in
 * version 3, through SUMMARY rounds in version 4).
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "session_int.h"

/* HELLO's first six fields, alike in protocols 3 and 4: the array of
 * @p fields, the type, @p proto (as the uint 8 @p packs when we read
 * PACKED), our epoch, its number and our state hash. */
static void
pack_hello_head(crdtnet_session *s, uint32_t fields, uint64_t proto,
                const char *packs, size_t packs_len, const crdt_stats *st)
{
    msgpack_pack_array(&s->out.pk, fields);
    msgpack_pack_uint64(&s->out.pk, M_HELLO);
    if (PLAIN(s))
        msgpack_pack_uint64(&s->out.pk, proto);
    else /* the same proto, as uint 8: "I read PACKED" */
        crdt__enc_raw(&s->out, packs, packs_len);
    if (READS_DEFAULTS(s)) { /* as bin 16: "I read kept lens defaults" */
        unsigned char id[3 + CRDT_HASH_BYTES] = { 0xc5, 0, CRDT_HASH_BYTES };
        memcpy(id + 3, st->epoch_id, CRDT_HASH_BYTES);
        crdt__enc_raw(&s->out, id, sizeof id);
    } else {
        crdt__enc_bin(&s->out, st->epoch_id, CRDT_HASH_BYTES);
    }
    if (PLAIN(s)) {
        msgpack_pack_uint64(&s->out.pk, st->epoch_number);
    } else { /* as uint 64: "I read CUT" */
        unsigned char n[9] = { 0xcf };
        for (int i = 0; i < 8; i++)
            n[1 + i] = (unsigned char)(st->epoch_number >> (56 - 8 * i));
        crdt__enc_raw(&s->out, n, sizeof n);
    }
    if (PACKS_V2(s)) { /* as bin 16: "I read packed version 2" */
        unsigned char h[3 + CRDT_HASH_BYTES] = { 0xc5, 0, CRDT_HASH_BYTES };
        memcpy(h + 3, st->state_hash, CRDT_HASH_BYTES);
        crdt__enc_raw(&s->out, h, sizeof h);
    } else {
        crdt__enc_bin(&s->out, st->state_hash, CRDT_HASH_BYTES);
    }
}

/* The epoch records we hold, oldest first, as an array of bin. */
static void
pack_epoch_chain(crdtnet_session *s, const epoch_info *chain, size_t n)
{
    msgpack_pack_array(&s->out.pk, n);
    for (size_t i = 0; i < n; i++)
        crdt__enc_bin(&s->out, chain[i].raw, chain[i].raw_len);
}

/* Protocol 4: our heads and state hash for HELLO, from one read
 * snapshot, into s->sum and s->hello_st (once: built early when the
 * transport waits for the peer, crdtnet__session_idle()). */
static int
prepare_hello_summary(crdtnet_session *s)
{
    unsigned char *hb = NULL;
    size_t cap = 0, nh = 0;
    crdt_read *rd;
    int rc;

    if (s->sum != NULL)
        return CRDT_OK;
    if ((rc = crdt_read_begin(&rd, s->r)) < 0)
        return rc;
    rc = crdt_read_stats(&s->hello_st, rd);
    if (rc == CRDT_OK)
        rc = crdt_read_heads(&hb, &cap, &nh, rd);
    crdt_read_end(rd);
    if (rc == CRDT_OK)
        return crdtnet__sum_new_entries(&s->sum, hb, nh); /* takes hb */
    crdt_free(hb);
    return rc;
}

void
crdtnet__session_idle(crdtnet_session *s)
{
    /* we offered protocol 4 and wait for the peer's first message: read
     * and hash our heads now, while the peer builds its own HELLO, not
     * after its answer came (a failure is met again at HELLO) */
    if (s != NULL && s->max_proto >= PROTO_SUMMARY && s->announce_sent &&
        !s->empty_due && !s->hello_sent && !s->hello_recv &&
        !s->peer_announced && !s->closed && s->err == 0)
        (void)prepare_hello_summary(s);
}

/* HELLO of protocol 4: the heads' root digest and count stand for the
 * vv and the heads; the summary keeps our heads for the rounds (and
 * FIN is judged against them: fin_conclusive_sum()). */
int
crdtnet__build_hello_summary(crdtnet_session *s)
{
    unsigned char root[CRDTNET__SUM_ROOT];
    const unsigned char *few;
    size_t n = 0, fl;
    uint64_t n_heads;
    epoch_info *chain = NULL;
    int rc;

    if ((rc = prepare_hello_summary(s)) < 0)
        return rc;
    if ((rc = epoch_all(&chain, &n, s->r)) < 0)
        return rc;
    crdtnet__sum_root(s->sum, root, &n_heads);
    crdtnet__sum_hello_entries(s->sum, &few, &fl);
    pack_hello_head(s, 9, PROTO_SUMMARY, PROTO4_PACKS,
                    sizeof PROTO4_PACKS - 1, &s->hello_st);
    crdt__enc_bin(&s->out, root, sizeof root);
    msgpack_pack_uint64(&s->out.pk, n_heads);
    pack_epoch_chain(s, chain, n);
    crdt__enc_bin(&s->out, few, fl);
    epoch_chain_free(chain, n);
    return CRDT_OK;
}

int
crdtnet__build_hello(crdtnet_session *s)
{
    crdt_stats st;
    crdt_vv *vv = NULL;
    unsigned char *vb = NULL, *hb = NULL;
    size_t vl = 0, n = 0, hl = 0;
    epoch_info *chain = NULL;
    int rc;

    rc = crdtnet__read_state(s->r, &st, &vv);
    if (rc == CRDT_OK)
        rc = crdt_vv_encode(&vb, &vl, vv);
    if (rc == CRDT_OK) /* every record we hold, oldest first */
        rc = epoch_all(&chain, &n, s->r);
    if (rc == CRDT_OK) /* a write between the two reads only adds a head */
        rc = crdt_heads_export(&hb, &hl, s->r);
    if (rc == CRDT_OK) {
        s->proto = PROTO_FULL;
        pack_hello_head(s, 8, PROTO, PROTO_PACKS, sizeof PROTO_PACKS - 1,
                        &st);
        crdt__enc_bin(&s->out, vb, vl);
        pack_epoch_chain(s, chain, n);
        crdt__enc_bin(&s->out, hb, hl);
    }
    epoch_chain_free(chain, n);
    crdt_vv_free(vv);
    crdt_free(vb);
    crdt_free(hb);
    return rc;
}

/* We send our snapshot and our log beyond the epoch's base heads (set
 * again when the snapshot is opened: crdtnet__build_snapshot()). */
int
crdtnet__become_giver(crdtnet_session *s)
{
    unsigned char id[CRDT_HASH_BYTES];
    crdt_read *rd;
    crdt_stats st;
    int rc;

    s->role = ROLE_GIVER;
    if ((rc = crdt_read_begin(&rd, s->r)) < 0)
        return crdtnet__fail(s, rc, "cannot read", 1);
    rc = crdt_read_stats(&st, rd);
    crdt_read_end(rd);
    if (rc < 0)
        return crdtnet__fail(s, rc, "cannot read", 1);
    memcpy(id, st.epoch_id, sizeof id);
    if ((rc = crdtnet__giver_lacks(s, id)) < 0)
        return crdtnet__fail(s, rc,
                             rc == CRDT_ENOMEM ? "out of memory"
                             : rc == CRDT_ECORRUPT || rc == CRDT_EPROTO
                                 ? "the epoch's heads are bad"
                                 : "cannot read the epoch",
                             1);
    return CRDT_OK;
}

/*
 * What the peer holds is known (its HELLO's vv and heads; in protocol 4,
 * rebuilt by the summary): @p their_vv (taken over) is what it holds,
 * s->peer_heads the heads it may hold differently from ours.
 */
static int
peer_view(crdtnet_session *s, crdt_vv *their_vv)
{
    int rc;

    s->view_ready = 1;
    if (s->role == ROLE_SAME) {
        /* which of the peer's heads fork from the chains we hold; the
         * peer checks ours: each side can judge the heads it is ahead of */
        rc = crdt_forks_find(&s->forks, &s->n_forks, s->r, s->peer_heads,
                             s->peer_heads_len);
        if (rc == CRDT_ENOMEM || rc == CRDT_EIO) {
            crdt_vv_free(their_vv);
            return crdtnet__fail(s, rc, crdt_strerror(rc), 1);
        }
        if (rc < 0) {
            crdt_vv_free(their_vv);
            return crdtnet__fail(s, CRDT_EPROTO, "malformed heads in HELLO", 1);
        }
    }
    /* what the peer holds, raised by every change sent or received
     * (crdtnet__note_sent()): the start of live pushes and of a giver's cut */
    crdt_vv_free(s->peer_known);
    s->peer_known = their_vv;
    if (s->role == ROLE_SAME || s->role == ROLE_TAKER) {
        crdt_vv_free(s->lacks);
        s->lacks = NULL;
        if ((rc = crdt_vv_copy(&s->lacks, their_vv)) < 0)
            return crdtnet__fail(s, rc, crdt_strerror(rc), 1);
    }
    return CRDT_OK;
}

/* Protocol 4: the summary is done; the peer's vv and differing heads. */
static int
peer_view_from_summary(crdtnet_session *s)
{
    crdt_vv *vv = NULL;
    int rc;

    s->rep.summary_rounds = crdtnet__sum_rounds(s->sum);
    free(s->peer_heads);
    s->peer_heads = NULL;
    if ((rc = crdtnet__sum_peer_heads(s->sum, &s->peer_heads,
                                      &s->peer_heads_len)) < 0 ||
        (rc = crdtnet__sum_peer_vv(s->sum, &vv)) < 0)
        return crdtnet__fail(s, rc, crdt_strerror(rc), 1);
    return peer_view(s, vv);
}

/* Protocol 4: once both HELLOs are known, compare the summaries. */
int
crdtnet__summary_rounds_begin(crdtnet_session *s)
{
    int rc;

    if (s->sum == NULL || !s->hello_sent || !s->hello_recv || s->err != 0)
        return CRDT_OK;
    rc = crdtnet__sum_start(s->sum, s->peer_root, s->peer_n, s->peer_few,
                            s->peer_few_len);
    if (rc < 0)
        return crdtnet__fail_decode(s, rc, "malformed HELLO");
    if (crdtnet__sum_done(s->sum))
        return peer_view_from_summary(s);
    return CRDT_OK;
}

int
crdtnet__on_summary(crdtnet_session *s, crdt__mp *m)
{
    const unsigned char *sums, *heads;
    uint32_t sl, hl;
    int rc;

    if (crdt__mp_bin(m, &sums, &sl) < 0 || crdt__mp_bin(m, &heads, &hl) < 0)
        return crdtnet__fail(s, CRDT_EPROTO, "malformed SUMMARY", 1);
    rc = crdtnet__sum_round_feed(s->sum, sums, sl, heads, hl);
    if (rc == CRDT_ELIMIT)
        return crdtnet__fail(s, rc, "too many heads in SUMMARY", 1);
    if (rc < 0)
        return crdtnet__fail_decode(s, rc, "malformed SUMMARY");
    if (crdtnet__sum_done(s->sum))
        return peer_view_from_summary(s);
    return CRDT_OK;
}

/* Store the peer's epoch records (HELLO). */
static int
store_hello_records(crdtnet_session *s, crdt__mp *m)
{
    const unsigned char *rec;
    uint32_t n_rec, rl;
    int rc;

    if (crdt__mp_array(m, &n_rec) < 0)
        return crdtnet__fail(s, CRDT_EPROTO, "malformed HELLO", 1);
    for (uint32_t i = 0; i < n_rec; i++) {
        size_t len;
        if (crdt__mp_bin(m, &rec, &rl) < 0)
            return crdtnet__fail(s, CRDT_EPROTO, "malformed epoch record", 1);
        len = rl;
        rc = epoch_store_records(s->r, &rec, &len, 1);
        if (rc < 0) {
            if (crdtnet__ours(rc))
                return crdtnet__fail(s, rc, crdt_strerror(rc), 1);
            return crdtnet__fail(s, rc == CRDT_EBUSY ? CRDT_EBUSY : CRDT_EAUTH,
                                 rc == CRDT_EPERM
                                     ? "epoch record made by a key that "
                                       "is not an admin of the space"
                                     : "invalid epoch record from peer",
                                 1);
        }
    }
    return CRDT_OK;
}

/* May the peer's HELLO be of version @p proto? */
static int
proto_ok(const crdtnet_session *s, uint64_t proto)
{
    if (proto == PROTO_FULL) /* unless our HELLO of version 4 is out */
        return !s->hello_sent || s->proto == PROTO_FULL;
    if (proto == PROTO_SUMMARY) /* only after we offered it */
        return s->max_proto >= PROTO_SUMMARY && s->announce_sent &&
               (!s->hello_sent || s->proto == PROTO_SUMMARY);
    return 0;
}

int
crdtnet__on_hello(crdtnet_session *s, crdt__mp *m, uint32_t n)
{
    unsigned char their_epoch[CRDT_HASH_BYTES], their_hash[CRDT_HASH_BYTES];
    const unsigned char *vb = NULL;
    uint64_t proto, number;
    uint32_t vl = 0;
    crdt_vv *their_vv = NULL;
    epoch_relation rel;
    const char *reason = NULL;
    int rc, packs, cuts, defaults;

    /* proto as uint 8 (cc 03, cc 04): the peer reads PACKED messages */
    packs = !PLAIN(s) && m->p + 2 <= m->end &&
            (memcmp(m->p, PROTO_PACKS, 2) == 0 ||
             memcmp(m->p, PROTO4_PACKS, 2) == 0);
    if (s->hello_recv || n < 2 || crdt__mp_uint(m, &proto) < 0)
        return crdtnet__fail(s, CRDT_EPROTO, "malformed HELLO", 1);
    if (!proto_ok(s, proto)) /* before the shape: versions differ in it */
        return crdtnet__fail(s, CRDT_EVERSION, "unsupported sync protocol", 1);
    /* epoch_id as bin 16 (c5): the peer reads kept lens defaults */
    defaults = m->p < m->end && *m->p == 0xc5;
    if (n != (proto == PROTO_SUMMARY ? 9u : 8u) ||
        crdt__mp_bin_fixed(m, their_epoch, sizeof their_epoch) < 0)
        return crdtnet__fail(s, CRDT_EPROTO, "malformed HELLO", 1);
    /* epoch_number as uint 64 (cf): the peer reads CUT messages */
    cuts = !PLAIN(s) && m->p < m->end && *m->p == 0xcf;
    if (crdt__mp_uint(m, &number) < 0)
        return crdtnet__fail(s, CRDT_EPROTO, "malformed HELLO", 1);
    /* state_hash as bin 16 (c5): the peer reads packed version 2 */
    if (packs)
        packs = PACKS_V2(s) && m->p < m->end && *m->p == 0xc5
                    ? CRDT_CHANGES_PACK_V2
                    : CRDT_CHANGES_PACK_V1;
    if (crdt__mp_bin_fixed(m, their_hash, sizeof their_hash) < 0)
        return crdtnet__fail(s, CRDT_EPROTO, "malformed HELLO", 1);
    if (proto == PROTO_SUMMARY) {
        if (crdt__mp_bin_fixed(m, s->peer_root, sizeof s->peer_root) < 0 ||
            crdt__mp_uint(m, &s->peer_n) < 0)
            return crdtnet__fail(s, CRDT_EPROTO, "malformed HELLO", 1);
        if (s->peer_n > CRDTNET__SUM_MAX)
            return crdtnet__fail(s, CRDT_ELIMIT, "too many heads in HELLO", 1);
    } else if (crdt__mp_bin(m, &vb, &vl) < 0) {
        return crdtnet__fail(s, CRDT_EPROTO, "malformed HELLO", 1);
    } else if ((rc = crdt_vv_decode(&their_vv, vb, vl)) < 0) {
        return crdtnet__fail_decode(s, rc, "malformed version vector");
    }
    if ((rc = store_hello_records(s, m)) < 0) {
        crdt_vv_free(their_vv);
        return rc;
    }
    if (proto == PROTO_SUMMARY) {
        const unsigned char *fb;
        uint32_t fl;
        if (crdt__mp_bin(m, &fb, &fl) < 0)
            return crdtnet__fail(s, CRDT_EPROTO, "malformed HELLO", 1);
        /* checked against the count when the summary starts */
        s->peer_few = malloc(fl ? fl : 1);
        if (s->peer_few == NULL)
            return crdtnet__fail(s, CRDT_ENOMEM, "out of memory", 1);
        memcpy(s->peer_few, fb, fl);
        s->peer_few_len = fl;
    }
    if (proto == PROTO_FULL) {
        const unsigned char *hb;
        uint32_t hl;
        if (crdt__mp_bin(m, &hb, &hl) < 0) {
            crdt_vv_free(their_vv);
            return crdtnet__fail(s, CRDT_EPROTO, "malformed HELLO", 1);
        }
        s->peer_heads = malloc(hl ? hl : 1);
        if (s->peer_heads == NULL) {
            crdt_vv_free(their_vv);
            return crdtnet__fail(s, CRDT_ENOMEM, "out of memory", 1);
        }
        memcpy(s->peer_heads, hb, hl);
        s->peer_heads_len = hl;
    }
    s->hello_recv = 1;
    if (proto == PROTO_FULL && s->sum != NULL) {
        /* heads read early for a HELLO of version 4 that never goes */
        crdtnet__sum_free(s->sum);
        s->sum = NULL;
    }
    s->proto = (unsigned)proto;
    s->rep.sync_proto = (unsigned)proto;
    s->peer_packs = packs;
    s->peer_cuts = cuts;
    s->peer_defaults = defaults;
    memcpy(s->peer_epoch, their_epoch, sizeof their_epoch);
    rc = epoch_relate(&rel, &reason, s->r, their_epoch, &s->opts.policy);
    if (rc < 0 && rc != CRDT_EREJECTED) {
        crdt_vv_free(their_vv);
        return crdtnet__fail(s, rc,
                             rc == CRDT_EAUTH ? "epochs of another space"
                                              : "cannot relate epochs",
                             1);
    }
    switch (rel) {
    case EPOCH_SAME:
        s->role = ROLE_SAME;
        s->same_epoch = 1;
        break;
    case EPOCH_AHEAD:
    case EPOCH_FORK_WIN:
        if ((rc = crdtnet__become_giver(s)) < 0) {
            crdt_vv_free(their_vv);
            return rc;
        }
        break;
    case EPOCH_BEHIND:
    case EPOCH_FORK_LOSE:
        s->role = ROLE_TAKER;
        if (rc == CRDT_EREJECTED) {
            /* beyond policy: our unsynced ops go to the quarantine and we
             * follow the canonical epoch; both happen in the reset's one
             * switching txn (SNAP_END), so an interrupted session leaves
             * this replica exactly as it was */
            s->rep.rejected = 1;
            snprintf(s->rep.reason, sizeof s->rep.reason, "rejected: %s",
                     reason ? reason : "beyond policy");
            s->reject_due = 1;
        }
        break;
    default:
        crdt_vv_free(their_vv);
        return crdtnet__fail(s, CRDT_EPROTO, "peer's epoch is unknown", 1);
    }
    if (proto == PROTO_FULL)
        return peer_view(s, their_vv);
    return crdtnet__summary_rounds_begin(
        s); /* no-op until our HELLO is built */
}
