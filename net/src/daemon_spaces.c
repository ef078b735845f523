/*
 * daemon_spaces.c: changes while the daemon runs: spaces added and
 * removed, the listening address, the peers and the options.
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

/* ---- changes while running: spaces and settings -------------------- */

/* Under d->mu: 1 if a session or link may still read slot @p slot's
 * handle: one that picked its space, or one still in its handshake that
 * began while the space was served (it may pick it yet). The slot's
 * links were joined when it was removed. */
static int
slot_in_use(crdtnet_daemon *d, size_t slot)
{
    for (dconn *c = d->conns; c != NULL; c = c->next)
        if (c->r == d->reps[slot] ||
            (c->r == NULL && c->born <= d->removed_at[slot]))
            return 1;
    return 0;
}

int
crdtnet_daemon_add_space(crdtnet_daemon *d, crdt_replica *r)
{
    unsigned char a[CRDT_SPACE_ID_BYTES];
    size_t i, slot;
    int rc = CRDT_OK;

    if (d == NULL || r == NULL)
        return CRDT_EINVAL;
    crdt_replica_space_id(r, a);
    pthread_mutex_lock(&d->mu);
    /* one slot per space: this handle's, or the one its space had */
    for (i = 0, slot = d->n; i < d->n && slot == d->n; i++)
        if (d->reps[i] == r || memcmp(a, d->sids[i], sizeof a) == 0)
            slot = i;
    if (slot < d->n && !d->removed[slot]) {
        pthread_mutex_unlock(&d->mu);
        return CRDT_EEXISTS;
    }
    if (slot < d->n && d->reps[slot] != r) { /* another handle of it */
        if (slot_in_use(d, slot)) {
            pthread_mutex_unlock(&d->mu);
            return CRDT_EBUSY;
        }
        __atomic_store_n(&d->reps[slot], r, __ATOMIC_RELEASE);
        for (i = 0; i < d->n_addrs; i++)
            d->peers[slot * d->n_addrs + i].r = r;
    }
    if (slot == d->n) {
        if (d->n == CRDTNET_DAEMON_MAX_SPACES) {
            pthread_mutex_unlock(&d->mu);
            return CRDT_ELIMIT;
        }
        d->reps[slot] = r;
        memcpy(d->sids[slot], a, sizeof a);
        for (i = 0; i < d->n_addrs; i++) { /* its links, as new() makes */
            dpeer *p = &d->peers[slot * d->n_addrs + i], *q = &d->peers[i];
            memset(p, 0, sizeof *p);
            p->d = d;
            p->r = r;
            memcpy(p->host, q->host, sizeof p->host);
            memcpy(p->port, q->port, sizeof p->port);
            memcpy(p->where, q->where, sizeof p->where);
        }
        d->n_peers = (slot + 1) * d->n_addrs;
        __atomic_store_n(&d->n, slot + 1, __ATOMIC_RELEASE);
    }
    d->removed[slot] = 0;
    for (i = 0; i < d->n_addrs && !CRDTNET__FLAG(d->stop) && rc == CRDT_OK;
         i++)
        rc = crdtnet__peer_start(d, slot * d->n_addrs + i);
    pthread_mutex_unlock(&d->mu);
    return rc;
}

int
crdtnet_daemon_set_listen(crdtnet_daemon *d, const char *host,
                          const char *port)
{
    char where[sizeof d->where];
    uint64_t one = 1;
    int fd, p, rc;

    if (d == NULL || port == NULL)
        return CRDT_EINVAL;
    rc = crdtnet__open_listener(d, host, port, &fd, &p, where, sizeof where);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&d->mu);
    if (d->new_lfd >= 0) /* an earlier one the loop has not taken */
        close(d->new_lfd);
    d->new_lfd = fd;
    d->new_port = p;
    memcpy(d->new_where, where, sizeof where);
    pthread_mutex_unlock(&d->mu);
    (void)!write(d->wake_fd, &one, sizeof one);
    return CRDT_OK;
}

int
crdtnet_daemon_space_idle(crdtnet_daemon *d, crdt_replica *r)
{
    size_t slot;
    int rc;

    if (d == NULL || r == NULL)
        return CRDT_EINVAL;
    pthread_mutex_lock(&d->mu);
    for (slot = 0; slot < d->n && d->reps[slot] != r; slot++)
        ;
    if (slot == d->n)
        rc = CRDT_ENOTFOUND;
    else if (!d->removed[slot])
        rc = CRDT_EINVAL;
    else
        rc = slot_in_use(d, slot) ? CRDT_EBUSY : CRDT_OK;
    pthread_mutex_unlock(&d->mu);
    return rc;
}

int
crdtnet_daemon_remove_space(crdtnet_daemon *d, crdt_replica *r)
{
    size_t slot;
    dconn *c;

    if (d == NULL || r == NULL)
        return CRDT_EINVAL;
    pthread_mutex_lock(&d->mu);
    for (slot = 0; slot < d->n && d->reps[slot] != r; slot++)
        ;
    if (slot == d->n || d->removed[slot]) {
        pthread_mutex_unlock(&d->mu);
        return CRDT_ENOTFOUND;
    }
    d->removed[slot] = 1; /* new handshakes: not served */
    d->removed_at[slot] = d->conn_seq;
    for (c = d->conns; c != NULL; c = c->next)
        if (c->r == r)
            CRDTNET__FLAG_SET(c->stop, 1); /* ends with its final message */
    pthread_mutex_unlock(&d->mu);
    crdtnet__peers_end(d, slot);
    return CRDT_OK;
}

int
crdtnet_daemon_set_peers(crdtnet_daemon *d, const char *const *peers,
                         size_t n_peers)
{
    dpeer *np = NULL, *old;
    size_t i, j;
    int rc = CRDT_OK;

    if (d == NULL || (n_peers > 0 && peers == NULL))
        return CRDT_EINVAL;
    if (n_peers > CRDTNET_DAEMON_MAX_PEERS)
        return CRDT_ELIMIT;
    if (n_peers > 0 &&
        (np = calloc(n_peers * CRDTNET_DAEMON_MAX_SPACES, sizeof *np)) ==
            NULL)
        return CRDT_ENOMEM;
    for (i = 0; i < n_peers; i++) { /* the addresses, in slot 0's place */
        dpeer *p = &np[i];
        if (crdtnet_split_hostport(p->host, sizeof p->host, p->port,
                                   sizeof p->port, peers[i]) != CRDT_OK) {
            free(np);
            return CRDT_EINVAL;
        }
        snprintf(p->where, sizeof p->where, "%s%s%s:%s",
                 strchr(p->host, ':') ? "[" : "", p->host,
                 strchr(p->host, ':') ? "]" : "", p->port);
    }
    crdtnet__peers_end(d, SIZE_MAX); /* every link ends; the new set starts */
    pthread_mutex_lock(&d->mu);
    if (CRDTNET__FLAG(d->stop)) {
        pthread_mutex_unlock(&d->mu);
        free(np);
        return CRDT_ECLOSED;
    }
    for (j = d->n; j-- > 0;) /* slot j's links; slot 0's last */
        for (i = 0; i < n_peers; i++) {
            dpeer *p = &np[j * n_peers + i];
            if (j > 0)
                memcpy(p, &np[i], sizeof *p);
            p->d = d;
            p->r = d->reps[j];
            p->started = 0;
        }
    old = d->peers;
    d->peers = np;
    d->n_addrs = n_peers;
    d->n_peers = d->n * n_peers;
    for (i = 0; i < d->n_peers && rc == CRDT_OK; i++)
        if (!d->removed[i / n_peers])
            rc = crdtnet__peer_start(d, i);
    pthread_mutex_unlock(&d->mu);
    free(old); /* its threads were joined above */
    return rc;
}

int
crdtnet_daemon_set_options(crdtnet_daemon *d,
                           const crdtnet_daemon_options *o)
{
    if (d == NULL || o == NULL)
        return CRDT_EINVAL;
    pthread_mutex_lock(&d->mu);
    d->max_conns =
        o->max_conns ? o->max_conns : CRDTNET_DAEMON_MAX_CONNS_DEFAULT;
    d->max_hs = o->max_handshakes ? o->max_handshakes : 128;
    d->max_per_addr =
        o->max_handshakes_per_addr ? o->max_handshakes_per_addr : 32;
    d->copts.policy = o->conn.policy;
    d->copts.idle_timeout_ms = o->conn.idle_timeout_ms;
    d->copts.handshake_timeout_ms = o->conn.handshake_timeout_ms;
    d->copts.batch_bytes = o->conn.batch_bytes;
    pthread_mutex_unlock(&d->mu);
    return CRDT_OK;
}
