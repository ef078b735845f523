/*
 * session_fin.c: FIN, both ways: our state, version vector (or its
 * digest) and epoch, and the verdict on the peer's (session.c invariant
 * (3)).
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "session_int.h"

/* Protocol 4: our heads in @p rd, a piece of HEADS_PIECE entries at a
 * time (no buffer for all of them), each piece given to @p fn. */
#define HEADS_PIECE 128
static int
each_heads(crdt_read *rd,
           int (*fn)(void *ctx, const unsigned char *e, size_t n), void *ctx)
{
    unsigned char buf[HEADS_PIECE * CRDT_HEAD_ENTRY_BYTES];
    crdt_actor after;
    size_t n;
    int rc, first = 1;

    do {
        rc = crdt_read_heads_after(buf, HEADS_PIECE, &n,
                                   first ? NULL : &after, rd);
        if (rc < 0)
            return rc;
        if (n > 0 && (rc = fn(ctx, buf, n)) < 0)
            return rc;
        if (n > 0)
            memcpy(after.b, buf + (n - 1) * CRDT_HEAD_ENTRY_BYTES,
                   CRDT_ACTOR_BYTES);
        first = 0;
    } while (n == HEADS_PIECE);
    return CRDT_OK;
}

static int
digest_piece(void *ctx, const unsigned char *e, size_t n)
{
    crdtnet__vv_digest_add(ctx, e, n);
    return CRDT_OK;
}

/* Protocol 4: our state hash and epoch, and the digest of our vv (of the
 * empty vv if @p empty), from the one read snapshot @p rd. */
static int
read_fin_state(crdt_read *rd, crdt_stats *st, int empty,
               unsigned char d[32])
{
    crypto_generichash_state hs;
    int rc = crdt_read_stats(st, rd);

    crypto_generichash_init(&hs, NULL, 0, 32);
    if (rc == CRDT_OK && !empty)
        rc = each_heads(rd, digest_piece, &hs);
    crypto_generichash_final(&hs, d, 32);
    return rc;
}

/* Our FIN's state and digest on @p rd's snapshot (@p empty: those of
 * the empty vv, read_fin_state()). Both sides' FIN are of one snapshot
 * when nothing is committed between them: the read is kept, keyed by
 * the snapshot's txn id, and the second one takes it instead of a second
 * walk of the heads. */
static int
fin_state(crdtnet_session *s, crdt_read *rd, int empty, crdt_stats *st,
          unsigned char d[32])
{
    uint64_t txn = crdt_read_txn_id(rd);
    int rc;

    if (!empty && s->fin_cached && s->fin_txn == txn) {
        *st = s->fin_st;
        memcpy(d, s->fin_d, 32);
        return CRDT_OK;
    }
    if ((rc = read_fin_state(rd, st, empty, d)) < 0 || empty)
        return rc;
    s->fin_cached = 1;
    s->fin_txn = txn;
    s->fin_st = *st;
    memcpy(s->fin_d, d, 32);
    return CRDT_OK;
}

/* FIN of protocol 4: the digest of the vv stands for it, hashed from
 * the heads as they are read (no version vector is built). */
static int
build_fin_digest(crdtnet_session *s)
{
    unsigned char d[32];
    crdt_read *rd;
    crdt_stats st;
    int rc;

    if ((rc = crdt_read_begin(&rd, s->r)) < 0)
        return rc;
    /* a merge of this session met an equivocation: the digest of the
     * empty vv (see crdtnet__build_fin()) */
    rc = fin_state(s, rd, s->rep.conflicts > 0, &st, d);
    crdt_read_end(rd);
    if (rc < 0)
        return rc;
    memcpy(s->rep.state_hash, st.state_hash, CRDT_HASH_BYTES);
    msgpack_pack_array(&s->out.pk, 4);
    msgpack_pack_uint64(&s->out.pk, M_FIN);
    crdt__enc_bin(&s->out, st.state_hash, CRDT_HASH_BYTES);
    crdt__enc_bin(&s->out, d, sizeof d);
    crdt__enc_bin(&s->out, st.epoch_id, CRDT_HASH_BYTES);
    return CRDT_OK;
}

int
crdtnet__build_fin(crdtnet_session *s)
{
    crdt_stats st;
    crdt_vv *vv = NULL;
    unsigned char *vb = NULL;
    size_t vl = 0;
    int rc;

    if (s->proto == PROTO_SUMMARY)
        return build_fin_digest(s);
    rc = crdtnet__read_state(s->r, &st, &vv);
    if (rc == CRDT_OK && s->rep.conflicts > 0) {
        /* a merge of this session met an equivocation (a change of the
         * peer's for seqs we hold with other content, written or heard
         * of after the HELLOs compared the heads): our chains and the
         * peer's differ where vvs cannot show it, so the peer must not
         * take equal vvs for equal ops; an empty vv makes it report "not
         * in sync", and the next session's FORKS settles the fork */
        crdt_vv_free(vv);
        vv = NULL;
        rc = crdt_vv_new(&vv);
    }
    if (rc == CRDT_OK)
        rc = crdt_vv_encode(&vb, &vl, vv);
    if (rc == CRDT_OK) {
        memcpy(s->rep.state_hash, st.state_hash, CRDT_HASH_BYTES);
        msgpack_pack_array(&s->out.pk, 4);
        msgpack_pack_uint64(&s->out.pk, M_FIN);
        crdt__enc_bin(&s->out, st.state_hash, CRDT_HASH_BYTES);
        crdt__enc_bin(&s->out, vb, vl);
        crdt__enc_bin(&s->out, st.epoch_id, CRDT_HASH_BYTES);
    }
    crdt_vv_free(vv);
    crdt_free(vb);
    return rc;
}

static uint64_t
entry_seq(const unsigned char *e, crdt_actor *a)
{
    uint64_t seq = 0;

    memcpy(a->b, e, CRDT_ACTOR_BYTES);
    for (int b = 0; b < 8; b++)
        seq = seq << 8 | e[CRDT_ACTOR_BYTES + b];
    return seq;
}

/*
 * Equal vvs with different state hashes prove a divergence only when
 * both sides hold the same chains, and a vv (or its digest in FIN) shows
 * seqs, not chains. So the verdict counts only when every head of ours
 * at FIN is the very head (seq and chain hash) the peer's HELLO named:
 * then we hold the peer's chains, and the peer, whose FIN names the same
 * seqs, held them already or took them from us. A head of ours the peer
 * did not announce came from us or from a third replica during the
 * session; the peer may hold another version of those seqs (a copied
 * replica wrote both, and a third replica gave it one: simulator seed
 * 4705), which neither side can see. A merge of this session that met
 * such a version counted a conflict. In those cases the verdict is "not
 * in sync", and the next session's HELLOs compare the heads again: a
 * real divergence is reported there, where nothing moves. The side that
 * only received changes still judges this one.
 */
typedef struct {
    crdtnet_session *s;
    unsigned char *peer; /* version 3: the peer's HELLO heads, sorted */
    size_t n_peer;
    size_t seen;
} fin_judge;

static int
cmp_entry_actor(const void *x, const void *y)
{
    return memcmp(x, y, CRDT_ACTOR_BYTES);
}

/* Version 3: the peer's HELLO heads (crdt_heads_export() format) into
 * j->peer, sorted by actor. CRDT_OK; CRDT_EPROTO; CRDT_ENOMEM. */
static int
peer_hello_heads(fin_judge *j)
{
    crdt__mp m = { j->s->peer_heads, j->s->peer_heads + j->s->peer_heads_len };
    uint32_t items;

    /* an entry takes at least 43 bytes (two bin headers, 8 + 32 bytes, a
     * uint): a count the blob cannot hold is not believed */
    if (j->s->peer_heads == NULL || crdt__mp_array(&m, &items) < 0 ||
        items % 3 != 0 || items / 3 > j->s->peer_heads_len / 43)
        return CRDT_EPROTO;
    j->peer = malloc(items / 3 * (size_t)CRDT_HEAD_ENTRY_BYTES + 1);
    if (j->peer == NULL)
        return CRDT_ENOMEM;
    for (uint32_t i = 0; i < items / 3; i++) {
        unsigned char *e = j->peer + (size_t)i * CRDT_HEAD_ENTRY_BYTES;
        uint64_t seq;
        if (crdt__mp_bin_fixed(&m, e, CRDT_ACTOR_BYTES) < 0 ||
            crdt__mp_uint(&m, &seq) < 0 ||
            crdt__mp_bin_fixed(&m, e + 16, CRDT_HASH_BYTES) < 0)
            return CRDT_EPROTO;
        crdt__be64(e + CRDT_ACTOR_BYTES, seq);
    }
    j->n_peer = items / 3;
    qsort(j->peer, j->n_peer, CRDT_HEAD_ENTRY_BYTES, cmp_entry_actor);
    return CRDT_OK;
}

/* Is each head of ours in @p e the peer's HELLO head? -1 stops
 * each_heads() at the first that is not. */
static int
announced(void *ctx, const unsigned char *e, size_t n)
{
    fin_judge *j = ctx;

    for (size_t i = 0; i < n; i++) {
        const unsigned char *o = e + i * CRDT_HEAD_ENTRY_BYTES;
        unsigned char ph[CRDT_HEAD_ENTRY_BYTES];
        if (j->peer != NULL) {
            const unsigned char *p = bsearch(o, j->peer, j->n_peer,
                                             CRDT_HEAD_ENTRY_BYTES,
                                             cmp_entry_actor);
            if (p == NULL)
                return -1;
            memcpy(ph, p, sizeof ph);
        } else {
            crdt_actor a;
            uint64_t seq;
            entry_seq(o, &a);
            if (crdtnet__sum_peer_head(j->s->sum, &a, &seq, ph + 16) < 0)
                return -1;
            memcpy(ph, a.b, CRDT_ACTOR_BYTES);
            crdt__be64(ph + CRDT_ACTOR_BYTES, seq);
        }
        if (memcmp(ph, o, CRDT_HEAD_ENTRY_BYTES) != 0)
            return -1;
        j->seen++;
    }
    return CRDT_OK;
}

/* The verdict's condition on @p rd, the snapshot FIN was judged on: 1
 * conclusive, 0 not, or CRDT_ENOMEM. */
static int
fin_conclusive(crdtnet_session *s, crdt_read *rd)
{
    fin_judge j = { s, NULL, 0, 0 };
    int ok;

    if (s->rep.conflicts > 0)
        return 0;
    if (s->proto == PROTO_SUMMARY) {
        if (s->sum == NULL || !crdtnet__sum_done(s->sum))
            return 0;
    } else if ((ok = peer_hello_heads(&j)) < 0) {
        free(j.peer);
        /* heads we could not hold say nothing about the peer's: without
         * memory there is no verdict, and "not in sync" would hide a
         * divergence the next session may never meet again */
        return ok == CRDT_ENOMEM ? ok : 0;
    }
    ok = each_heads(rd, announced, &j) == CRDT_OK &&
         (j.peer == NULL || j.seen == j.n_peer);
    free(j.peer);
    return ok;
}

/* Live mode: the peer holds every head of ours (equal FIN digests). */
static int
peer_holds(void *ctx, const unsigned char *e, size_t n)
{
    crdt_vv *known = ctx;

    for (size_t i = 0; i < n; i++) {
        crdt_actor a;
        uint64_t seq = entry_seq(e + i * CRDT_HEAD_ENTRY_BYTES, &a);
        crdt_vv_set(known, &a, seq);
    }
    return CRDT_OK;
}

/* The verdict on the peer's FIN (keeps (3) of session.c): @p same_vv
 * says whether its vv (or digest) and epoch are ours, @p hash is its
 * state hash, @p st ours, read in @p rd. Returns 1 when both hold the
 * same ops, 0 when they do not (or the comparison is not conclusive),
 * or the error that ends the session: the same ops in a different
 * state. */
static int
fin_verdict(crdtnet_session *s, crdt_read *rd, const crdt_stats *st,
            const unsigned char *hash, int same_vv)
{
    int same_hash = memcmp(hash, st->state_hash, CRDT_HASH_BYTES) == 0;
    int conclusive = 1;

    memcpy(s->rep.state_hash, st->state_hash, CRDT_HASH_BYTES);
    s->rep.in_sync = same_vv && same_hash;
    if (same_vv && !same_hash)
        conclusive = fin_conclusive(s, rd);
    if (conclusive < 0)
        return crdtnet__fail(s, conclusive, "out of memory", 1);
    if (same_vv && !same_hash && !conclusive)
        return 0; /* not in sync; the next session decides */
    if (same_vv && !same_hash)
        return crdtnet__fail(s, CRDT_ECORRUPT,
                             "same ops but different state: replicas "
                             "diverged", 1);
    return same_vv;
}

/* FIN of protocol 4: the same checks as crdtnet__on_fin(), on the vv digests;
 * equal digests mean the peer holds what we hold. Everything is judged
 * on one read snapshot. */
static int
on_fin_digest(crdtnet_session *s, const unsigned char *hash,
              const unsigned char *d, uint32_t dl,
              const unsigned char *epoch)
{
    unsigned char ours_d[32];
    crdt_read *rd;
    crdt_stats st;
    int rc, same_vv;

    if (dl != sizeof ours_d)
        return crdtnet__fail(s, CRDT_EPROTO, "malformed FIN", 1);
    s->fin_recv = 1;
    if ((rc = crdt_read_begin(&rd, s->r)) < 0)
        return crdtnet__fail(s, rc, "cannot read", 1);
    if ((rc = fin_state(s, rd, 0, &st, ours_d)) < 0) {
        crdt_read_end(rd);
        return crdtnet__fail(s, rc, "cannot read", 1);
    }
    same_vv = sodium_memcmp(ours_d, d, sizeof ours_d) == 0 &&
              memcmp(epoch, st.epoch_id, CRDT_HASH_BYTES) == 0;
    rc = fin_verdict(s, rd, &st, hash, same_vv);
    /* live pushes start above it; a session without live mode ends here
     * and needs no walk */
    if (rc == 1 && s->opts.live && s->peer_known != NULL)
        (void)each_heads(rd, peer_holds, s->peer_known);
    crdt_read_end(rd);
    return rc < 0 ? rc : CRDT_OK;
}

int
crdtnet__on_fin(crdtnet_session *s, crdt__mp *m)
{
    unsigned char hash[CRDT_HASH_BYTES], epoch[CRDT_HASH_BYTES];
    const unsigned char *vb;
    uint32_t vl;
    crdt_vv *theirs = NULL, *ours = NULL;
    crdt_read *rd;
    crdt_stats st;
    int rc;

    if (s->fin_recv || crdt__mp_bin_fixed(m, hash, sizeof hash) < 0 ||
        crdt__mp_bin(m, &vb, &vl) < 0 ||
        crdt__mp_bin_fixed(m, epoch, sizeof epoch) < 0)
        return crdtnet__fail(s, CRDT_EPROTO, "malformed FIN", 1);
    if (s->proto == PROTO_SUMMARY) /* the digest of the peer's vv */
        return on_fin_digest(s, hash, vb, vl, epoch);
    if ((rc = crdt_vv_decode(&theirs, vb, vl)) < 0)
        return crdtnet__fail_decode(s, rc, "malformed FIN");
    s->fin_recv = 1;
    if ((rc = crdt_read_begin(&rd, s->r)) < 0) {
        crdt_vv_free(theirs);
        return crdtnet__fail(s, rc, "cannot read", 1);
    }
    rc = crdt_read_stats(&st, rd);
    if (rc == CRDT_OK)
        rc = crdt_read_vv(&ours, rd);
    /* FIN is taken (fin_recv): unless the failure ends the session here,
     * it would end as finished, with no verdict made */
    if (rc < 0)
        crdtnet__fail(s, rc, "cannot read", 1);
    if (rc == CRDT_OK) {
        /* a migration on either side during the session makes the
         * states differ legitimately: compare within one epoch only */
        int same_vv = crdt_vv_covers(ours, theirs) &&
                      crdt_vv_covers(theirs, ours) &&
                      memcmp(epoch, st.epoch_id, CRDT_HASH_BYTES) == 0;
        if ((rc = fin_verdict(s, rd, &st, hash, same_vv)) > 0)
            rc = CRDT_OK;
        if (s->peer_known != NULL && rc == CRDT_OK) {
            for (size_t i = 0; i < crdt_vv_count(theirs); i++) {
                crdt_actor a;
                uint64_t seq;
                crdt_vv_entry(theirs, i, &a, &seq);
                crdt_vv_set(s->peer_known, &a, seq);
            }
        }
    }
    crdt_read_end(rd);
    crdt_vv_free(theirs);
    crdt_vv_free(ours);
    return rc;
}
