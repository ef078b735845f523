/*
 * daemon_peers.c: the daemon's configured peers: one thread per (peer,
 * replica) that connects, runs a live session and reconnects with
 * exponential backoff and jitter, until stop (daemon.c (2), (4)).
 */
#define _GNU_SOURCE /* accept4, pipe2 */
#define _GNU_SOURCE /* accept4, pipe2 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon_int.h"

/* ---- outgoing peers ----------------------------------------------- */

static void
peer_authenticated(void *ctx)
{
    dpeer *p = ctx;

    p->authed = 1;
}

static crdtnet_space_stats *
peer_stats(crdt_replica *r, void *ctx)
{
    return crdtnet__space_stats_of(((dpeer *)ctx)->d, r);
}

static long long
jitter(long long ms)
{
    /* between half and the whole delay, so peers do not reconnect in
     * lockstep */
    uint32_t half = (uint32_t)(ms / 2);

    return ms - half + randombytes_uniform(half + 1);
}

static void *
peer_main(void *arg)
{
    dpeer *p = arg;
    crdtnet_daemon *d = p->d;
    crdtnet__conn_hooks h = { peer_authenticated, peer_stats, p, NULL, NULL };
    long long backoff = d->backoff_min, wait;
    crdtnet_report rep;
    int rc;

    while (!CRDTNET__FLAG(d->stop) && !CRDTNET__FLAG(p->stop)) {
        if (crdt_replica_damaged(p->r)) {
            dlogf(d, CRDTNET_LOG_ERROR, "peer %s:%s: not syncing %s any "
                  "more: its replica is damaged", p->host, p->port,
                  crdt_replica_path(p->r));
            break;
        }
        p->authed = 0;
        pthread_mutex_lock(&d->mu); /* the settings in force */
        p->copts = d->copts;
        p->copts.stop = &p->stop;
        pthread_mutex_unlock(&d->mu);
        rc = crdtnet__sync_connect(&rep, p->r, p->host, p->port, &p->copts,
                                   &h);
        if (CRDTNET__FLAG(d->stop) || CRDTNET__FLAG(p->stop))
            break;
        if (p->authed)
            backoff = d->backoff_min; /* it worked; start over */
        if (rc == CRDT_EBUSY) {
            wait = rep.busy_retry_ms ? (long long)rep.busy_retry_ms : 1000;
            if (wait > d->backoff_max)
                wait = d->backoff_max;
        } else {
            wait = jitter(backoff);
            backoff = backoff * 2 > d->backoff_max ? d->backoff_max
                                                   : backoff * 2;
        }
        crdtnet__dlog(d, rc == CRDT_OK ? CRDTNET_LOG_INFO : CRDTNET_LOG_WARN,
                      p->where, "%s%s%s; reconnecting in %lld ms",
                      rc == CRDT_OK ? "session ended" : crdt_strerror(rc),
                      rep.reason[0] && rc != CRDT_OK ? ": " : "",
                      rc != CRDT_OK ? rep.reason : "", wait);
        /* in slices, so a removal ends the wait too */
        while (wait > 0 && !CRDTNET__FLAG(p->stop)) {
            if (crdtnet__wait_stop(d, wait > 250 ? 250 : wait))
                break;
            wait -= 250;
        }
    }
    return NULL;
}

/* Under d->mu: start the thread of peer link @p i (if running). */
int
crdtnet__peer_start(crdtnet_daemon *d, size_t i)
{
    dpeer *p = &d->peers[i];

    if (!d->running || p->started)
        return CRDT_OK;
    CRDTNET__FLAG_SET(p->stop, 0);
    if (pthread_create(&p->th, NULL, peer_main, p) != 0) {
        crdtnet__dlog(d, CRDTNET_LOG_ERROR, p->where,
                      "cannot start a thread for this peer");
        return CRDT_ERROR;
    }
    p->started = 1;
    return CRDT_OK;
}

/* Stop the peer links of replica slot @p slot (SIZE_MAX: all of them)
 * and join their threads. The threads are taken under d->mu, so two
 * callers never join one thread. */
void
crdtnet__peers_end(crdtnet_daemon *d, size_t slot)
{
    pthread_t *ths;
    size_t k = 0, i;

    pthread_mutex_lock(&d->mu);
    ths = malloc((d->n_peers ? d->n_peers : 1) * sizeof *ths);
    for (i = 0; i < d->n_peers; i++) {
        dpeer *p = &d->peers[i];
        if (slot != SIZE_MAX && i / d->n_addrs != slot)
            continue;
        CRDTNET__FLAG_SET(p->stop, 1);
        if (p->started && ths != NULL) {
            ths[k++] = p->th;
            p->started = 0;
        }
    }
    pthread_mutex_unlock(&d->mu);
    for (i = 0; i < k; i++) /* their waits are sliced: about a second */
        pthread_join(ths[i], NULL);
    free(ths);
}
