/*
 * session_forks.c: FORKS, both ways: the actors whose chain in the
 * peer's HELLO heads forks from ours (equivocation: a copied replica
 * wrote), and the side that loses them (docs/protocol.md,
 * "Equivocation").
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "session_int.h"

int
crdtnet__build_forks(crdtnet_session *s)
{
    msgpack_pack_array(&s->out.pk, 2);
    msgpack_pack_uint64(&s->out.pk, M_FORKS);
    msgpack_pack_array(&s->out.pk, s->n_forks);
    for (size_t i = 0; i < s->n_forks; i++)
        crdt__enc_bin(&s->out, s->forks[i].b, CRDT_ACTOR_BYTES);
    return CRDT_OK;
}

static int
cmp_actor(const void *a, const void *b)
{
    return memcmp(a, b, CRDT_ACTOR_BYTES);
}

/* Our head of @p a as the peer judged it: in version 4 as our HELLO
 * showed it (a change merged since, from a third replica, would make
 * the two sides judge different pairs of heads). */
static int
own_head(crdtnet_session *s, const crdt_actor *a, uint64_t *seq,
         unsigned char hash[CRDT_HASH_BYTES])
{
    if (s->proto == PROTO_SUMMARY && s->sum != NULL)
        return crdtnet__sum_own_head(s->sum, a, seq, hash);
    return crdt_head_read(seq, hash, s->r, a);
}

/*
 * Whether the peer may have found @p a forking: it judged our head of
 * @p a against its own chain, so we hold @p a, its heads (whole in
 * version 3, those that differ from ours in version 4) list it, the two
 * heads differ, and a head of the peer's at or below ours is not on our
 * own chain (the peer could not judge a head of ours beyond its own). A
 * FORKS naming anything else is a lie that would make us reset to the
 * peer's snapshot or renew our actor for nothing.
 * 1 if it may, 0 if not, or an error.
 */
static int
may_fork(crdtnet_session *s, const crdt_actor *a)
{
    unsigned char mh[CRDT_HASH_BYTES], th[CRDT_HASH_BYTES];
    uint64_t ms = 0, ts = 0;
    int rc, found;

    if ((rc = own_head(s, a, &ms, mh)) == CRDT_ENOTFOUND)
        return 0;
    if (rc < 0)
        return rc;
    rc = crdt_heads_lookup(&ts, th, s->peer_heads, s->peer_heads_len, a);
    if (rc == CRDT_ENOTFOUND)
        return 0;
    if (rc < 0)
        return CRDT_EPROTO;
    if (ts == ms && memcmp(th, mh, CRDT_HASH_BYTES) == 0)
        return 0;
    if (ts > ms)
        return 1;
    if ((rc = crdt_chain_check(&found, s->r, a, ts, th)) < 0)
        return rc;
    return found != CRDT_CHAIN_SAME;
}

/*
 * FORKS: the union of both sides' findings decides, the same way on both
 * sides, who keeps its chains: for the smallest forked actor, the longer
 * chain (higher head seq) wins, at equal seqs the smaller head hash.
 */
int
crdtnet__on_forks(crdtnet_session *s, crdt__mp *m)
{
    unsigned char mh[CRDT_HASH_BYTES], th[CRDT_HASH_BYTES];
    uint64_t ms = 0, ts = 0;
    crdt_actor own, *first;
    uint32_t n;
    size_t k = 0, ours = s->n_forks;
    int rc, lost, own_in = 0;

    if (s->forks_recv || crdt__mp_array(m, &n) < 0)
        return crdtnet__fail(s, CRDT_EPROTO, "malformed FORKS", 1);
    if (n > FORKS_MAX)
        return crdtnet__fail(s, CRDT_ELIMIT, "too many actors in FORKS", 1);
    s->forks_recv = 1;
    if (n > 0) {
        crdt_actor *nv = realloc(s->forks, (s->n_forks + n) * sizeof *nv);
        if (nv == NULL)
            return crdtnet__fail(s, CRDT_ENOMEM, "out of memory", 1);
        s->forks = nv;
    }
    for (uint32_t i = 0; i < n; i++) {
        if (crdt__mp_bin_fixed(m, s->forks[s->n_forks].b,
                               CRDT_ACTOR_BYTES) < 0)
            return crdtnet__fail(s, CRDT_EPROTO, "malformed FORKS", 1);
        s->n_forks++;
    }
    if (s->n_forks == 0)
        return CRDT_OK;
    if (!s->same_epoch) { /* a reset follows anyway: later sessions see it */
        s->n_forks = 0;
        return CRDT_OK;
    }
    for (size_t i = ours; i < s->n_forks; i++) { /* the peer's findings */
        if ((rc = may_fork(s, &s->forks[i])) < 0)
            return crdtnet__fail(s, rc,
                                 rc == CRDT_EPROTO ? "malformed heads in HELLO"
                                                   : "cannot read the heads",
                                 1);
        if (rc == 0)
            return crdtnet__fail(s, CRDT_EPROTO,
                                 "FORKS names an actor whose heads do not fork",
                                 1);
    }
    qsort(s->forks, s->n_forks, sizeof *s->forks, cmp_actor);
    for (size_t i = 0; i < s->n_forks; i++) /* the union: drop repeats */
        if (k == 0 || memcmp(s->forks[i].b, s->forks[k - 1].b,
                             CRDT_ACTOR_BYTES) != 0)
            s->forks[k++] = s->forks[i];
    s->n_forks = k;
    first = &s->forks[0];
    memset(mh, 0, sizeof mh);
    memset(th, 0, sizeof th);
    if ((rc = own_head(s, first, &ms, mh)) < 0 && rc != CRDT_ENOTFOUND)
        return crdtnet__fail(s, rc, "cannot read the heads", 1);
    rc = crdt_heads_lookup(&ts, th, s->peer_heads, s->peer_heads_len, first);
    if (rc < 0 && rc != CRDT_ENOTFOUND)
        return crdtnet__fail(s, CRDT_EPROTO, "malformed heads in HELLO", 1);
    lost = ts > ms || (ts == ms && memcmp(th, mh, CRDT_HASH_BYTES) < 0);
    own = crdt_replica_actor(s->r);
    for (size_t i = 0; i < s->n_forks; i++)
        own_in |= memcmp(s->forks[i].b, own.b, CRDT_ACTOR_BYTES) == 0;
    s->rep.equivocations = s->n_forks;
    s->rep.equivocating = *first;
    s->rep.equivocation_lost = lost;
    s->rep.renewed = own_in;
    if ((rc = crdt_equivocations_add(s->r, s->n_forks)) < 0)
        return crdtnet__fail(s, rc, "cannot record the equivocation", 1);
    if (lost) { /* the reset quarantines our side and renews us */
        s->role = ROLE_TAKER;
        s->fork_proof_due = 1;
        s->fork_seq = ts;
        memcpy(s->fork_hash, th, CRDT_HASH_BYTES);
        return CRDT_OK;
    }
    if (own_in && (rc = crdt_replica_new_incarnation(s->r)) < 0)
        return crdtnet__fail(s, rc, "cannot start a new incarnation", 1);
    return crdtnet__become_giver(s);
}
