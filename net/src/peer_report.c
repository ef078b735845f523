/*
 * peer_report.c: what a crdtnet_peer tells besides its bytes: the
 * daemon's counters as the session goes (changes and bytes each way,
 * merges), its log lines, and at the end the result code, the outcome
 * counters and the lines that say how it ended. The same end reads the
 * same way on any transport.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "crdtnet/conn.h"
#include "io_internal.h"
#include "peer_state.h"

void
crdtnet__peer_log(crdtnet_peer *p, int level, const char *fmt, ...)
{
    char line[512];
    va_list ap;

    if (p->h.log == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    p->h.log(level, line, p->h.ctx);
}

/* ---- counters ------------------------------------------------------ */

long long
crdtnet__now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void
crdtnet__peer_publish(crdtnet_peer *p)
{
    const crdtnet_report *rep;
    crdtnet_space_stats *st;

    if (!p->st_looked && p->r != NULL) {
        p->st_looked = 1;
        if (p->h.stats != NULL)
            p->st = p->h.stats(p->r, p->h.ctx);
    }
    if ((st = p->st) == NULL)
        return;
    if (p->bytes_in > p->pub_in)
        crdtnet__count(&st->bytes_in, p->bytes_in - p->pub_in);
    if (p->bytes_out > p->pub_out)
        crdtnet__count(&st->bytes_out, p->bytes_out - p->pub_out);
    p->pub_in = p->bytes_in;
    p->pub_out = p->bytes_out;
    if (p->s == NULL)
        return;
    rep = crdtnet_session_report(p->s);
#define PUBLISH(field, counter)                                             \
    do {                                                                    \
        if (rep->field > p->pub.field)                                      \
            crdtnet__count(&st->counter, rep->field - p->pub.field);       \
        p->pub.field = rep->field;                                          \
    } while (0)
    PUBLISH(changes_received, changes_in);
    PUBLISH(changes_sent, changes_out);
    PUBLISH(ops_received, ops_in);
    PUBLISH(rebased_ops, rebased_ops);
    PUBLISH(quarantined_ops, quarantined_ops);
    PUBLISH(conflicts, conflicts);
#undef PUBLISH
}

/* ---- the end ------------------------------------------------------- */

/* The result, from what happened (see crdtnet_peer_result()): the same
 * end reads the same way on any wire. */
static int
result(const crdtnet_peer *p, crdtnet_report *out)
{
    const crdtnet_report *rep = p->s ? crdtnet_session_report(p->s) : NULL;
    int serr = p->s ? crdtnet_session_error(p->s) : CRDT_OK;
    int rc;

    if (p->s == NULL)
        rc = p->err < 0 ? p->err : CRDT_EIO;
    else if (rep->rejected)
        rc = CRDT_EREJECTED;
    else if (rep->busy_retry_ms > 0 || serr == CRDT_EBUSY)
        rc = CRDT_EBUSY;
    else if (serr < 0)
        rc = serr;
    else if (p->peer_err)
        rc = p->err;
    else if (crdtnet_session_finished(p->s))
        rc = CRDT_OK;
    else if (p->err < 0)
        rc = p->err;
    else if (p->o.live && (p->peer_final || p->stopping))
        rc = CRDT_OK;
    else if (p->stopping)
        rc = CRDT_ECLOSED;
    else
        rc = CRDT_EIO;
    if (out != NULL) {
        if (rep != NULL)
            *out = *rep;
        if (rc < 0 && (out->reason[0] == '\0' || p->peer_err)) {
            const char *why = p->reason[0] ? p->reason : crdt_strerror(rc);
            size_t wl = strlen(why);
            if (wl >= sizeof out->reason)
                wl = sizeof out->reason - 1; /* cut to fit */
            memcpy(out->reason, why, wl);
            out->reason[wl] = '\0';
        }
    }
    return rc;
}

int
crdtnet_peer_result(const crdtnet_peer *p, crdtnet_report *out)
{
    if (out != NULL)
        memset(out, 0, sizeof *out);
    if (p == NULL)
        return CRDT_EINVAL;
    if (p->state != ST_DONE)
        return CRDT_EAGAIN;
    return result(p, out);
}

/* A failure of our own storage or memory, not of the peer or network. */
static int
local_failure(int rc)
{
    return rc == CRDT_ECORRUPT || rc == CRDT_EFULL || rc == CRDT_ENOMEM ||
           rc == CRDT_ERROR;
}

static void
log_end(crdtnet_peer *p, int rc, const crdtnet_report *rep,
        const char *out_reason)
{
    if (rep != NULL && rep->local_damage && p->r != NULL) {
        unsigned char sid[CRDT_SPACE_ID_BYTES];
        char sidhex[2 * CRDT_SPACE_ID_BYTES + 1];

        crdt_replica_space_id(p->r, sid);
        crdt_hex(sidhex, sid, sizeof sid);
        crdtnet__peer_log(p, CRDTNET_LOG_ERROR,
              "corrupt replica %s (space %s): a change or snapshot it was "
              "about to send failed its check, nothing damaged was sent; "
              "no longer serving this space; run strata verify %s",
              crdt_replica_path(p->r), sidhex, crdt_replica_path(p->r));
    }
    if (rep != NULL && rep->equivocations > 0) {
        char actor[2 * CRDT_ACTOR_BYTES + 1];
        crdt_hex(actor, rep->equivocating.b, CRDT_ACTOR_BYTES);
        crdtnet__peer_log(p, CRDTNET_LOG_WARN,
              "equivocation: actor %s (and %llu more) wrote two different "
              "chains (a copied or twice-restored replica); ours %s%s",
              actor, (unsigned long long)(rep->equivocations - 1),
              rep->equivocation_lost ? "lost: quarantined, took the peer's"
                                     : "won",
              rep->renewed ? "; now writing as a new actor" : "");
    }
    if (rc == CRDT_OK && p->err == 0 && rep != NULL)
        crdtnet__peer_log(p, CRDTNET_LOG_INFO,
              "session ended: sent %llu changes, received %llu changes "
              "(%llu ops)%s%s",
              (unsigned long long)rep->changes_sent,
              (unsigned long long)rep->changes_received,
              (unsigned long long)rep->ops_received,
              rep->snapshot_received ? ", reset to the peer's snapshot" : "",
              rep->in_sync ? ", in sync" : "");
    else if (rc == CRDT_OK && rep != NULL)
        crdtnet__peer_log(p, CRDTNET_LOG_INFO,
              "session ended: sent %llu changes, received %llu changes "
              "(%llu ops) (%s)",
              (unsigned long long)rep->changes_sent,
              (unsigned long long)rep->changes_received,
              (unsigned long long)rep->ops_received, p->reason);
    else if (rep == NULL && !p->stopped_in_hs)
        crdtnet__peer_log(p, CRDTNET_LOG_WARN, "handshake failed: %s",
              p->reason[0] ? p->reason : crdt_strerror(rc));
    else if (rep != NULL)
        crdtnet__peer_log(p, local_failure(rc) ? CRDTNET_LOG_ERROR : CRDTNET_LOG_WARN,
              "session failed: %s: %s", crdt_strerror(rc),
              out_reason != NULL
                  ? out_reason
                  : (p->reason[0] ? p->reason : rep->reason));
}

int
crdtnet__peer_finish(crdtnet_peer *p, crdtnet_report *out)
{
    const crdtnet_report *rep = p->s ? crdtnet_session_report(p->s) : NULL;
    int rc;

    if (out != NULL)
        memset(out, 0, sizeof *out);
    p->state = ST_DONE;
    rc = result(p, out);
    if (p->finished)
        return rc;
    p->finished = 1;
    crdtnet__peer_publish(p);
    if (p->st != NULL) {
        crdtnet__count(&p->st->sessions[crdtnet__outcome(rc)], 1);
        if (rep != NULL && rep->snapshot_received)
            crdtnet__count(&p->st->snapshots_in, 1);
        if (rep != NULL && rep->snapshot_sent)
            crdtnet__count(&p->st->snapshots_out, 1);
        if (p->st_peer)
            __atomic_fetch_sub(&p->st->peers_connected, 1,
                               __ATOMIC_RELAXED);
        p->st_peer = 0;
    }
    log_end(p, rc, rep, out != NULL ? out->reason : NULL);
    return rc;
}

