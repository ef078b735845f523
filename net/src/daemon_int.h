/*
 * daemon_int.h: shared by the daemon's files (daemon*.c); never
 * installed: its connections, peer links and state, and the functions
 * the files share (crdtnet__ prefix).
 */
#ifndef CRDTNET_DAEMON_INT_H
#define CRDTNET_DAEMON_INT_H

#include <pthread.h>
#include <signal.h>
#include <stdint.h>

#include "crdtnet/daemon.h"
#include "io_internal.h"
#include "timer_heap.h"

#define HOST_MAX 256
#define RBUF_BYTES ((size_t)64 * 1024) /* one read of one connection */
#define ACCEPT_BURST 64   /* connections accepted per wake */
#define EVENTS_MAX 256    /* readiness events per wake */
#define TIMERS_BURST 4096 /* due connections turned per wake */
#define ACCEPT_PAUSE_MS 100 /* out of fds: stop accepting this long */
#define EVICT_AGE_MS 100 /* a handshake younger than this is never evicted */
#define PORT_MAX 32

struct crdtnet_daemon;

typedef struct dconn {
    struct crdtnet_daemon *d;
    crdtnet__conn *cn;
    crdtnet__conn_hooks h;
    int fd;
    volatile sig_atomic_t stop; /* its own: set on stop or its space's
                                   removal */
    crdtnet_conn_options copts; /* the daemon's, with its own stop flag */
    crdt_replica *r;            /* its space, once known (conn_stats) */
    int authed; /* its handshake slot was given back */
    volatile int evict; /* told to end if still in its handshake */
    int events;         /* what epoll waits for (POLLIN, POLLOUT); 0: none */
    size_t heap_pos;    /* its deadline in d->timers */
    long long t_accept;
    long long rx_ms;    /* when it last sent bytes (conn.c stores it) */
    unsigned char addr[16]; /* its source address (IPv4: 4 bytes) */
    int family;
    uint64_t born;      /* d->conn_seq when it was listed */
    struct dconn *next, *prev;       /* d->conns: every one */
    struct dconn *hs_next, *hs_prev; /* d->hs: those in the handshake */
} dconn;

typedef struct {
    struct crdtnet_daemon *d;
    pthread_t th;
    int started;
    int authed;
    volatile sig_atomic_t stop; /* its own: set on stop or removal */
    crdtnet_conn_options copts; /* refreshed from the daemon's per dial */
    crdt_replica *r;
    char host[HOST_MAX];
    char port[PORT_MAX];
    char where[HOST_MAX + PORT_MAX + 4]; /* "host:port", for logs */
} dpeer;

struct crdtnet_daemon {
    /* CRDTNET_DAEMON_MAX_SPACES slots, filled in order and never moved
     * (threads hold pointers into them); n is published last */
    crdt_replica **reps; /* a slot's handle changes only while removed
                          * and idle (add_space): atomic loads */
    unsigned char (*sids)[CRDT_SPACE_ID_BYTES]; /* each slot's space */
    crdtnet_space_stats *stats; /* one per replica */
    uint64_t *seen_txn;         /* the loop's: last commit id seen */
    int *removed;               /* 1: no longer served (under mu) */
    uint64_t *removed_at;       /* conn_seq when it was removed */
    uint64_t conn_seq;          /* connections listed so far (under mu) */
    size_t n;
    int lfd;
    int port;                        /* atomic: read by any thread */
    char where[HOST_MAX + PORT_MAX]; /* the bound address, for logs */
    /* a listener set_listen() bound, for the loop to take (under mu) */
    int new_lfd, new_port;
    char new_where[HOST_MAX + PORT_MAX];
    int wake_fd; /* an eventfd: set_listen() wakes the loop with it */
    int pipe_r, pipe_w;
    volatile sig_atomic_t stop;
    crdtnet_conn_options copts; /* live, our stop flag, our log */
    crdtnet_log_fn user_log;
    crdtnet_log_event_fn user_event;
    void *user_log_ctx;
    int quiet;
    unsigned max_conns, max_hs, max_per_addr;
    int backoff_min, backoff_max;
    dpeer *peers;    /* n_addrs * CRDTNET_DAEMON_MAX_SPACES slots */
    size_t n_peers;  /* used: n_addrs per replica slot */
    size_t n_addrs;  /* configured peer addresses */
    int running;     /* peer threads are started as links are added */
    pthread_mutex_t mu;
    dconn *conns;
    dconn *hs;       /* those of conns not yet authenticated */
    int ep;          /* the event loop's epoll instance */
    crdtnet__heap timers;
    unsigned char *rbuf; /* every connection's reads go through it */
    long long accept_paused_until; /* 0: accepting */
    unsigned n_conns, n_hs;
    unsigned n_evicting; /* evicted, in their handshake, not yet ended */
    int ran;
    long long refused_logged_ms;
    unsigned long refused;
    unsigned long refused_evicted; /* pending handshakes evicted */
};

/* daemon.c: every line of the daemon and its connections, to the
 * caller's event or line function, else to stderr; @p peer may be NULL. */
void crdtnet__dlog(crdtnet_daemon *d, int level, const char *peer,
                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* The daemon's own lines that concern no peer. */
#define dlogf(d, level, ...) crdtnet__dlog((d), (level), NULL, __VA_ARGS__)
/* Wait up to @p ms or until stop; 1 if stopping (keeps daemon.c (2)). */
int crdtnet__wait_stop(crdtnet_daemon *d, long long ms);
/* A listening socket on @p host:@p port (non-blocking), its port and
 * "host:port" for logs; a failure is logged. */
int crdtnet__open_listener(crdtnet_daemon *d, const char *host,
                           const char *port, int *fd_out, int *port_out,
                           char *where, size_t where_len);
/* The counters of replica @p r, or NULL. */
crdtnet_space_stats *crdtnet__space_stats_of(crdtnet_daemon *d,
                                             crdt_replica *r);

/* daemon_admit.c (the loop's thread only) */
/* Accept one connection; 0 when there was none to accept. */
int crdtnet__accept_one(crdtnet_daemon *d);
/* Accept again after a pause (out of descriptors) once it is over. */
void crdtnet__accept_resume(crdtnet_daemon *d);
/* Turn connection @p c: it is ready for @p revents (poll(2) events), or
 * its deadline is due (0). */
void crdtnet__dconn_turn(crdtnet_daemon *d, dconn *c, int revents);
/* epoll's events as poll(2)'s. */
int crdtnet__poll_of_epoll(uint32_t ev);

/* daemon_peers.c */
/* Under d->mu: start the thread of peer link @p i (if running). */
int crdtnet__peer_start(crdtnet_daemon *d, size_t i);
/* Stop the peer links of replica slot @p slot (SIZE_MAX: all of them)
 * and join their threads. */
void crdtnet__peers_end(crdtnet_daemon *d, size_t slot);

#endif
