/*
 * peer_state.h: the state of a crdtnet_peer, shared by peer.c (the
 * protocol steps) and peer_report.c (counters, the result and the end's
 * log lines). Never installed; names use the crdtnet__ prefix.
 */
#ifndef CRDTNET_PEER_STATE_H
#define CRDTNET_PEER_STATE_H

#include <stdint.h>

#include "crdtnet/channel.h"
#include "crdtnet/frame.h"
#include "crdtnet/handshake.h"
#include "crdtnet/peer.h"
#include "crdtnet/session.h"
#include "peer_internal.h"

enum {
    ST_HS = CRDTNET__PEER_HS,
    ST_FLUSH = CRDTNET__PEER_FLUSH,
    ST_SESSION = CRDTNET__PEER_SESSION,
    ST_CLOSING = CRDTNET__PEER_CLOSING,
    ST_DONE = CRDTNET__PEER_DONE
};

struct crdtnet_peer {
    crdtnet_hs_role role;
    int state;
    crdtnet_peer_options o;
    crdtnet__peer_hooks h;
    crdt_replica *r;             /* the client's, or the server's pick */
    crdt_replica **reps;
    size_t n_reps;
    crdtnet_framer *fr;
    crdtnet_hs *hs;
    /* handshake frames queued by feed(), moved to obuf by next_out() */
    unsigned char *hsq;
    size_t hsq_len, hsq_cap;
    crdtnet_channel *ch;
    crdtnet_session *s;
    int tofu_used, authenticated;
    unsigned char peer_key[CRDTNET_PK_BYTES];
    /* output: bytes waiting to be handed out, then the piece handed out */
    unsigned char *obuf;
    size_t olen, ocap;
    int handed;                  /* obuf was handed out: drop it next */
    int final_sent, peer_final, peer_err, eof, stopping, stopped_in_hs;
    int keepalive;               /* send an empty message when idle */
    int err;
    char reason[CRDTNET_REASON_MAX + 8];
    uint64_t bytes_in, bytes_out;
    /* live: the last commit seen (keeps (6)) */
    uint64_t last_txn;
    int repoke;
    /* crdtnet_peer_tick(): its clock, and bytes seen at the last tick */
    int ticked;
    uint64_t t_start, t_rx, t_tx, t_live;
    uint64_t tick_in, tick_out;
    /* counters (hooks.stats), once the space is known */
    crdtnet_space_stats *st;
    int st_looked, st_peer;      /* looked up; counted in peers_connected */
    uint64_t pub_in, pub_out;    /* bytes already published */
    crdtnet_report pub;          /* the session report as last published */
    int finished;
};

/* peer_report.c: one log event through the hooks (none without). */
void crdtnet__peer_log(crdtnet_peer *p, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* peer_report.c: add what happened since the last call to the space's
 * counters (looked up once the space is known). */
void crdtnet__peer_publish(crdtnet_peer *p);

/* Microseconds on the monotonic clock (merge latency). */
long long crdtnet__now_us(void);

#endif
