/*
 * peer_internal.h: what a transport loop that owns its clock (conn.c's
 * TCP connection) asks of a crdtnet_peer beyond crdtnet/peer.h: hooks
 * for logs, counters and progress, the phase for its timers, the live
 * tick (pushes and revocation), keepalives, failures it detects (timeouts,
 * socket errors) and the end report with its log lines. Never installed;
 * names use the crdtnet__ prefix.
 */
#ifndef CRDTNET_PEER_INTERNAL_H
#define CRDTNET_PEER_INTERNAL_H

#include "crdtnet/daemon.h"
#include "crdtnet/peer.h"

/* Where a peer is (the state machine of peer.c). */
enum {
    CRDTNET__PEER_HS = 1, /* handshake in progress */
    CRDTNET__PEER_FLUSH,  /* handshake failed: its error frame goes out */
    CRDTNET__PEER_SESSION,
    CRDTNET__PEER_CLOSING, /* our FINAL goes out, then we wait for theirs */
    CRDTNET__PEER_DONE
};

/* Called from the thread that drives the peer; any may be NULL; @c ctx
 * is passed to each. */
typedef struct {
    /* One event (CRDTNET_LOG_*), without the peer's address. */
    void (*log)(int level, const char *msg, void *ctx);
    /* The handshake succeeded (once, before the session starts). */
    void (*authenticated)(void *ctx);
    /* The counters of replica @p r's space (asked once the space is
     * known); NULL: not counted. Updated with relaxed atomic adds. */
    crdtnet_space_stats *(*stats)(crdt_replica *r, void *ctx);
    /* After each session message received, with the report so far. */
    void (*progress)(const crdtnet_report *rep, void *ctx);
    void *ctx;
} crdtnet__peer_hooks;

/* Set the hooks (copied) before the first feed or next_out. */
void crdtnet__peer_set_hooks(crdtnet_peer *p, const crdtnet__peer_hooks *h);

/* CRDTNET__PEER_*. */
int crdtnet__peer_phase(const crdtnet_peer *p);

/* 1 once our FINAL was handed out by crdtnet_peer_next_out(). */
int crdtnet__peer_final_sent(const crdtnet_peer *p);

/* The transport failed or a deadline passed: keep the first failure;
 * a session says goodbye (our FINAL carries the error), anything else
 * ends at once. */
void crdtnet__peer_fail(crdtnet_peer *p, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* End at once, whatever the phase; @p code 0 records no failure. */
void crdtnet__peer_kill(crdtnet_peer *p, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Live sessions, every tick (about 250 ms): a commit by any process or
 * session since the last tick reaches the peer (poked on that tick and
 * the next, since a commit's id can be seen a moment before its data),
 * and the peer's membership is read again: one that lost it gets an
 * authentication error in our FINAL (docs/security.md, revocation).
 */
void crdtnet__peer_tick(crdtnet_peer *p);

/*
 * Idle (nothing handed out and not yet sent): free the buffers that
 * only hold the last message each way (output, framer, channel, the
 * session's encoder); the next message allocates them again. An idle
 * live session then holds its state and no message buffers.
 */
void crdtnet__peer_trim(crdtnet_peer *p);

/* Everything queued is sent and we wait for the peer: the session may
 * do now what it will need next (crdtnet__session_idle()). */
void crdtnet__peer_idle(crdtnet_peer *p);

/* Send an empty sealed message when the session has nothing to send
 * (keeps a quiet live connection within the other side's idle timeout). */
void crdtnet__peer_keepalive(crdtnet_peer *p);

/*
 * The end: crdtnet_peer_result(), plus the end's log lines (session
 * ended or failed, handshake failed, equivocation, local damage) and
 * the outcome counters. Call once, after crdtnet_peer_done().
 */
int crdtnet__peer_finish(crdtnet_peer *p, crdtnet_report *out);

#endif
