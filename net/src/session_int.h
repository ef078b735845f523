/*
 * session_int.h: shared by the session's files (session*.c); never
 * installed. Names shared between them use the crdtnet__ prefix.
 */
#ifndef CRDTNET_SESSION_INT_H
#define CRDTNET_SESSION_INT_H

#include "crdtnet/session.h"
#include "net_internal.h"
#include "internal.h" /* libcrdt: bounded msgpack reader, encoder */
#include "summary.h"
#include "cut.h"

enum {
    M_HELLO = 1, M_BUSY, M_REJECT, M_SNAP_BEGIN, M_SNAP_CHUNK, M_SNAP_END,
    M_CHANGES, M_DONE, M_FIN, M_ERROR, M_SNAP_LOG, M_FORKS, M_PACKED,
    M_SUMMARY, M_CUT
};

enum { ROLE_NONE, ROLE_SAME, ROLE_GIVER, ROLE_TAKER };

/* 2: the state hash of store format 2; 3: heads in HELLO, FORKS;
 * 4: a summary of the heads in HELLO, SUMMARY rounds, a vv digest in FIN */
#define PROTO_FULL 3
#define PROTO_SUMMARY 4
#define PROTO PROTO_FULL
/* a proto written as a uint 8 instead of a fixint: every receiver reads
 * the version, a receiver that knows PACKED also reads that the sender
 * reads it (version 3: cc 03; version 4: cc 04) */
#define PROTO_PACKS "\xcc\x03"
#define PROTO4_PACKS "\xcc\x04"
/* plain_changes: 1 nothing packed, 2 packed version 1 only (a peer from
 * before packed version 2), 3 all but kept lens defaults (a peer from
 * before store format 5) */
#define PLAIN(s) ((s)->opts.plain_changes == 1)
#define PACKS_V2(s)                                                          \
    ((s)->opts.plain_changes == 0 || (s)->opts.plain_changes == 3)
#define READS_DEFAULTS(s) ((s)->opts.plain_changes == 0)
#define FORKS_MAX 65536 /* as many actors as a version vector holds */
#define DEFAULT_BATCH (256u * 1024)

struct crdtnet_session {
    crdt_replica *r;
    crdtnet_session_options opts;
    crdtnet_report rep;
    crdt__enc out;
    crdt__enc items;      /* build_changes_as()'s changes: a large buffer
                             is kept while the export streams (no fresh
                             pages for every message) */
    int err;              /* the error that ended us, or 0 */
    int closed;           /* nothing more to send */
    int finished;         /* ended well */
    int send_error;       /* an ERROR message is due */
    char err_reason[160];
    int role;
    int hello_sent, hello_recv, busy_due;
    int reject_due;
    uint64_t moved;       /* ops quarantined by a rejected reset */
    /* what we send */
    int snap_phase;       /* 0 not started, 1 streaming, 2 done */
    epoch_snapshot *snap;
    crdt_export *exp;
    crdt_vv *lacks;       /* what the peer lacks is above this */
    int done_sent, done_recv, fin_sent, fin_recv;
    /* what we receive */
    epoch_reset *reset;
    unsigned char reset_hash[CRDT_HASH_BYTES];
    int snapshot_done;
    /* live mode */
    crdt_vv *peer_known;
    int dirty;
    /* equivocation */
    unsigned char *peer_heads; /* the peer's HELLO heads (copy) */
    size_t peer_heads_len;
    int same_epoch;
    crdt_actor *forks;         /* forked actors: ours, then the union */
    size_t n_forks;
    int forks_sent, forks_recv;
    uint64_t fork_moved;       /* our ops quarantined by losing */
    /* lost: the giver's head of forks[0] as its HELLO claimed it, which
     * its SNAP_LOG must hold before the reset may commit */
    int fork_proof_due;
    uint64_t fork_seq;
    unsigned char fork_hash[CRDT_HASH_BYTES];
    /* version negotiation and the summary (protocol 4) */
    unsigned max_proto;        /* what we offer */
    unsigned proto;            /* what we speak; 0 until decided */
    int announce_sent, peer_announced, empty_due;
    int view_ready;            /* the peer's vv and heads are known */
    crdtnet__sum *sum;         /* our heads as HELLO summarised them */
    unsigned char peer_root[CRDTNET__SUM_ROOT];
    uint64_t peer_n;
    unsigned char *peer_few;   /* the peer's HELLO entries (few heads) */
    size_t peer_few_len;
    int peer_packs;            /* the packed version the peer reads
                                  (crdt_changes_pack_version()), 0: none */
    int peer_defaults;         /* the peer reads kept lens defaults
                                  (store format 5, storage.md 4.2) */
    crdt_stats hello_st;       /* protocol 4: read with s->sum's heads */
    /* the changes of an epoch's cut a taker lacks (cut.c) */
    int peer_cuts;             /* the peer reads CUT messages */
    int cut_phase;             /* giver: 0 not planned, 1 sending, 2 done */
    crdtnet__cut cut;
    unsigned char peer_epoch[CRDT_HASH_BYTES];
    crdt_vv *cut_bound;        /* taker: the cut a CUT may fill */
    uint64_t cut_bytes;        /* taker: CUT changes received, bytes */
    /* protocol 4: our FIN's digest and state, and the snapshot they were
     * read from: the peer's FIN is judged against them when nothing was
     * committed since (one walk of the heads, not two) */
    int fin_cached;
    uint64_t fin_txn;
    crdt_stats fin_st;
    unsigned char fin_d[32];
};

/* session.c: end the session with @p rc and the reason @p why (kept:
 * the first failure wins); @p tell_peer: an ERROR goes to the peer.
 * Returns @p rc. */
int crdtnet__fail(crdtnet_session *s, int rc, const char *why, int tell_peer);
/* 1 when @p rc is this side's failure (memory, a full disk, an I/O
 * error), never something the peer sent: reported as ours. */
static inline int
crdtnet__ours(int rc)
{
    return rc == CRDT_ENOMEM || rc == CRDT_EFULL || rc == CRDT_EIO;
}
/* A decoder's failure: out of memory is ours, anything else the peer's. */
int crdtnet__fail_decode(crdtnet_session *s, int rc, const char *why);
/* Our state's figures and version vector, from one read snapshot. */
int crdtnet__read_state(crdt_replica *r, crdt_stats *st, crdt_vv **vv);

/* session_hello.c */
int crdtnet__build_hello(crdtnet_session *s);
int crdtnet__build_hello_summary(crdtnet_session *s);
int crdtnet__on_hello(crdtnet_session *s, crdt__mp *m, uint32_t n);
/* Protocol 4: the SUMMARY rounds start once both HELLOs are known. */
int crdtnet__summary_rounds_begin(crdtnet_session *s);
int crdtnet__on_summary(crdtnet_session *s, crdt__mp *m);
/* We send our snapshot: the peer is behind, or lost a fork. */
int crdtnet__become_giver(crdtnet_session *s);

/* session_forks.c */
int crdtnet__build_forks(crdtnet_session *s);
int crdtnet__on_forks(crdtnet_session *s, crdt__mp *m);

/* session_give.c: each builds its next message into s->out, or answers
 * CRDT_ENOTFOUND once it has nothing (more) to send. */
int crdtnet__build_cut(crdtnet_session *s);
int crdtnet__build_snapshot(crdtnet_session *s);
int crdtnet__build_changes(crdtnet_session *s);
/* What a taker of our snapshot of epoch @p id lacks (s->lacks). */
int crdtnet__giver_lacks(crdtnet_session *s, const unsigned char *id);
/* The peer holds the change @p p now (s->peer_known, s->lacks). */
void crdtnet__note_sent(crdtnet_session *s, const unsigned char *p, size_t len);

/* session_take.c */
int crdtnet__on_changes(crdtnet_session *s, crdt__mp *m, uint64_t type);
/* A snapshot message: @p m is the rest of it; for a PACKED SNAP_LOG,
 * @p m is NULL and the changes are @p packed. */
int crdtnet__on_snapshot(crdtnet_session *s, uint64_t type, crdt__mp *m,
                         const crdt_bytes *packed, size_t n_packed);
int crdtnet__on_packed(crdtnet_session *s, crdt__mp *m);

/* session_fin.c */
int crdtnet__build_fin(crdtnet_session *s);
int crdtnet__on_fin(crdtnet_session *s, crdt__mp *m);

#endif
