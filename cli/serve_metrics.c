/*
 * serve_metrics.c: `strata serve --metrics HOST:PORT`: Prometheus text
 * at /metrics and a health check at /healthz, over HTTP.
 *
 * The HTTP side is libmicrohttpd (Debian's libmicrohttpd-dev), not a
 * parser of our own: requests come from the network, and a well-kept,
 * widely fuzzed server is safer than a new one. It runs its own thread
 * (poll); each scrape reads the daemon's counters (relaxed atomics, no
 * lock), one read txn per space and the backup states (under a mutex).
 * At most 16 connections, 10 s each, GET and HEAD only.
 *
 * The metric names and what they mean are in docs/operations.md.
 */
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "serve.h"

struct serve_metrics {
    struct MHD_Daemon *mhd;
    crdtnet_daemon *d;
    crdt_replica *const *reps; /* SERVE_MAX_DIRS slots, n filled */
    serve_backup_state *backups;
    /* under serve_metrics_lock(): a reload appends replicas, stops
     * serving some, and may close and reopen one it stopped serving;
     * a scrape holds the lock while it reads the served handles */
    size_t n;
    int served[SERVE_MAX_DIRS];
    int down[SERVE_MAX_DIRS]; /* storage failed, not open again yet */
    char space[SERVE_MAX_DIRS][2 * CRDT_SPACE_ID_BYTES + 1]; /* labels */
};

/* The spaces one scrape reports: those served when it began. */
typedef struct {
    size_t n;
    int served[SERVE_MAX_DIRS];
} view;

#define FOR_SERVED(v, i)                                                    \
    for (size_t i = 0; i < (v)->n; i++)                                     \
        if ((v)->served[i])

static pthread_mutex_t backup_mu = PTHREAD_MUTEX_INITIALIZER;

void
serve_metrics_lock(void)
{
    pthread_mutex_lock(&backup_mu);
}

void
serve_metrics_unlock(void)
{
    pthread_mutex_unlock(&backup_mu);
}

/* ---- a growing text buffer ---- */

typedef struct {
    char *p;
    size_t len, cap;
    int oom;
} buf;

static void
put(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
put(buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (b->oom)
        return;
    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = 1;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap * 2 + (size_t)n + 1;
        char *p = realloc(b->p, cap);
        if (p == NULL) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
}

/* ---- /metrics ---- */

static void
family(buf *b, const char *name, const char *type, const char *help)
{
    put(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One sample per space of a counter chosen by @p off in the stats. */
static void
per_space(buf *b, serve_metrics *m, const view *v,
          const crdtnet_space_stats *st, const char *name, const char *type,
          const char *help, size_t off)
{
    family(b, name, type, help);
    FOR_SERVED(v, i)
        put(b, "%s{space=\"%s\"} %llu\n", name, m->space[i],
            (unsigned long long)*(const uint64_t *)((const char *)&st[i] +
                                                    off));
}

#define PER_SPACE(name, type, help, field)                                  \
    per_space(b, m, &v, st, name, type, help,                               \
              offsetof(crdtnet_space_stats, field))

static void
metrics_text(buf *b, serve_metrics *m)
{
    crdtnet_space_stats *st = calloc(SERVE_MAX_DIRS, sizeof *st);
    crdt_stats *cs = calloc(SERVE_MAX_DIRS, sizeof *cs);
    crdt_env_stats *es = calloc(SERVE_MAX_DIRS, sizeof *es);
    int *have_cs = calloc(SERVE_MAX_DIRS, sizeof *have_cs);
    serve_backup_state *bk = calloc(SERVE_MAX_DIRS, sizeof *bk);
    int locked = 0;
    view v;

    if (st == NULL || cs == NULL || es == NULL || have_cs == NULL ||
        bk == NULL) {
        b->oom = 1;
        goto out;
    }
    /* held to the end: a reload may close an unserved space's handle
     * (cmd_serve.c, reopen), and this scrape reads the handles */
    serve_metrics_lock();
    locked = 1;
    v.n = m->n;
    memcpy(v.served, m->served, sizeof v.served);
    memcpy(bk, m->backups, m->n * sizeof *bk);
    FOR_SERVED(&v, i) {
        crdt_read *rd;

        (void)crdtnet_daemon_space_stats(m->d, i, &st[i]);
        (void)crdt_replica_env_stats(m->reps[i], &es[i]);
        if (crdt_read_begin(&rd, m->reps[i]) == CRDT_OK) {
            have_cs[i] = crdt_read_stats(&cs[i], rd) == CRDT_OK;
            crdt_read_end(rd);
        }
    }

    family(b, "strata_space_info", "gauge",
           "A served space and its replica directory.");
    FOR_SERVED(&v, i) {
        put(b, "strata_space_info{space=\"%s\",dir=\"", m->space[i]);
        for (const char *p = crdt_replica_path(m->reps[i]); *p; p++)
            put(b, "%s%c", *p == '"' || *p == '\\' ? "\\" : "",
                *p == '\n' ? ' ' : *p);
        put(b, "\"} 1\n");
    }
    family(b, "strata_space_storage_failed", "gauge",
           "1 while a space is out because LMDB gave up on its "
           "environment and it could not be opened again yet.");
    for (size_t i = 0; i < v.n; i++)
        if (m->down[i] && m->space[i][0] != '\0')
            put(b, "strata_space_storage_failed{space=\"%s\"} 1\n",
                m->space[i]);
    PER_SPACE("strata_peers_connected", "gauge",
              "Authenticated sync sessions open now.", peers_connected);
    PER_SPACE("strata_changes_received_total", "counter",
              "Changes received from peers.", changes_in);
    PER_SPACE("strata_changes_sent_total", "counter",
              "Changes sent to peers.", changes_out);
    PER_SPACE("strata_ops_received_total", "counter",
              "Ops in the changes received.", ops_in);
    PER_SPACE("strata_bytes_received_total", "counter",
              "Bytes read from peer connections.", bytes_in);
    PER_SPACE("strata_bytes_sent_total", "counter",
              "Bytes written to peer connections.", bytes_out);
    family(b, "strata_sync_sessions_total", "counter",
           "Sync sessions ended, by outcome.");
    FOR_SERVED(&v, i)
        for (int k = 0; k < CRDTNET_OUTCOME_COUNT; k++)
            put(b, "strata_sync_sessions_total{space=\"%s\",outcome=\"%s\"}"
                   " %llu\n",
                m->space[i], crdtnet_outcome_name(k),
                (unsigned long long)st[i].sessions[k]);
    PER_SPACE("strata_rebased_ops_total", "counter",
              "Ops of older epochs rebased when merged.", rebased_ops);
    PER_SPACE("strata_quarantined_ops_total", "counter",
              "Ops set aside in the quarantine.", quarantined_ops);
    PER_SPACE("strata_conflicts_total", "counter",
              "Equivocating changes quarantined.", conflicts);
    PER_SPACE("strata_snapshots_received_total", "counter",
              "Resets to a peer's snapshot.", snapshots_in);
    PER_SPACE("strata_snapshots_sent_total", "counter",
              "Snapshots sent to peers.", snapshots_out);

    family(b, "strata_merge_seconds", "histogram",
           "Time to merge a received message that carried changes.");
    FOR_SERVED(&v, i) {
        uint64_t cum = 0;

        for (unsigned k = 0; k < CRDTNET_MERGE_BUCKETS; k++) {
            uint64_t us = crdtnet_merge_bucket_us(k);

            cum += st[i].merge_buckets[k];
            if (k + 1 < CRDTNET_MERGE_BUCKETS)
                put(b, "strata_merge_seconds_bucket{space=\"%s\","
                       "le=\"%g\"} %llu\n",
                    m->space[i], (double)us / 1e6, (unsigned long long)cum);
            else
                put(b, "strata_merge_seconds_bucket{space=\"%s\","
                       "le=\"+Inf\"} %llu\n",
                    m->space[i], (unsigned long long)cum);
        }
        put(b, "strata_merge_seconds_sum{space=\"%s\"} %.6f\n",
            m->space[i], (double)st[i].merge_us_total / 1e6);
        put(b, "strata_merge_seconds_count{space=\"%s\"} %llu\n",
            m->space[i], (unsigned long long)st[i].merges);
    }

    family(b, "strata_pending_changes", "gauge",
           "Received changes waiting for a gap to fill.");
    FOR_SERVED(&v, i)
        if (have_cs[i])
            put(b, "strata_pending_changes{space=\"%s\"} %llu\n",
                m->space[i], (unsigned long long)cs[i].pending);
    family(b, "strata_changes_in_log", "gauge",
           "Changes in the active epoch's log.");
    FOR_SERVED(&v, i)
        if (have_cs[i])
            put(b, "strata_changes_in_log{space=\"%s\"} %llu\n",
                m->space[i], (unsigned long long)cs[i].changes_in_log);
    family(b, "strata_epoch", "gauge", "Number of the active epoch.");
    FOR_SERVED(&v, i)
        if (have_cs[i])
            put(b, "strata_epoch{space=\"%s\"} %llu\n", m->space[i],
                (unsigned long long)cs[i].epoch_number);

    family(b, "strata_backup_last_timestamp_seconds", "gauge",
           "When the last scheduled backup was attempted (0: never).");
    FOR_SERVED(&v, i)
        put(b, "strata_backup_last_timestamp_seconds{space=\"%s\"} %.3f\n",
            m->space[i], (double)bk[i].last_ms / 1000.0);
    family(b, "strata_backup_last_success", "gauge",
           "1 if the last scheduled backup succeeded.");
    FOR_SERVED(&v, i)
        put(b, "strata_backup_last_success{space=\"%s\"} %d\n",
            m->space[i], bk[i].last_ms != 0 && bk[i].last_ok);
    family(b, "strata_backups_total", "counter",
           "Scheduled backups, by result.");
    FOR_SERVED(&v, i)
        put(b, "strata_backups_total{space=\"%s\",result=\"ok\"} %llu\n"
               "strata_backups_total{space=\"%s\",result=\"failed\"} "
               "%llu\n",
            m->space[i], (unsigned long long)bk[i].ok, m->space[i],
            (unsigned long long)bk[i].failed);

    family(b, "strata_map_size_bytes", "gauge",
           "Size of the replica's storage map now.");
    FOR_SERVED(&v, i)
        put(b, "strata_map_size_bytes{space=\"%s\"} %llu\n", m->space[i],
            (unsigned long long)es[i].map_size);
    family(b, "strata_map_used_bytes", "gauge",
           "Bytes of the storage map in use.");
    FOR_SERVED(&v, i)
        put(b, "strata_map_used_bytes{space=\"%s\"} %llu\n", m->space[i],
            (unsigned long long)es[i].map_used);
    family(b, "strata_reader_slots_used", "gauge",
           "LMDB reader slots held (by live or dead readers).");
    FOR_SERVED(&v, i)
        put(b, "strata_reader_slots_used{space=\"%s\"} %u\n", m->space[i],
            es[i].readers_used);
    family(b, "strata_reader_slots_max", "gauge", "LMDB reader slots.");
    FOR_SERVED(&v, i)
        put(b, "strata_reader_slots_max{space=\"%s\"} %u\n", m->space[i],
            es[i].readers_max);
out:
    if (locked)
        serve_metrics_unlock();
    free(st);
    free(cs);
    free(es);
    free(have_cs);
    free(bk);
}

/* ---- /healthz: every space readable ---- */

static int
health_text(buf *b, serve_metrics *m)
{
    int ok = 1;
    view v;

    serve_metrics_lock(); /* to the end, as in metrics_text() */
    v.n = m->n;
    memcpy(v.served, m->served, sizeof v.served);
    FOR_SERVED(&v, i) {
        crdt_read *rd;
        crdt_stats cs;
        int rc = crdt_read_begin(&rd, m->reps[i]);

        if (rc == CRDT_OK) {
            rc = crdt_read_stats(&cs, rd);
            crdt_read_end(rd);
        }
        if (rc != CRDT_OK) {
            put(b, "space %s: %s\n", m->space[i], crdt_strerror(rc));
            ok = 0;
        }
    }
    for (size_t i = 0; i < v.n; i++)
        if (m->down[i]) {
            put(b, "space %s: storage failed; not served until it opens "
                   "again\n", m->space[i]);
            ok = 0;
        }
    serve_metrics_unlock();
    if (ok)
        put(b, "ok\n");
    return ok;
}

/* ---- HTTP ---- */

static enum MHD_Result
reply(struct MHD_Connection *conn, unsigned status, buf *b,
      const char *type)
{
    struct MHD_Response *r;
    enum MHD_Result ret;

    if (b->oom) {
        free(b->p);
        b->p = NULL;
        b->len = 0;
        status = MHD_HTTP_INTERNAL_SERVER_ERROR;
    }
    r = MHD_create_response_from_buffer(b->len, b->p,
                                        MHD_RESPMEM_MUST_FREE);
    if (r == NULL) {
        free(b->p);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result
handle(void *cls, struct MHD_Connection *conn, const char *url,
       const char *method, const char *version, const char *upload,
       size_t *upload_size, void **state)
{
    serve_metrics *m = cls;
    buf b = { NULL, 0, 0, 0 };

    (void)version;
    (void)upload;
    if (*state == NULL) { /* first call: headers only; answer next */
        *state = m;
        return MHD_YES;
    }
    if (*upload_size != 0) {
        *upload_size = 0; /* a body is ignored */
        return MHD_YES;
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        put(&b, "only GET\n");
        return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, &b, "text/plain");
    }
    if (strcmp(url, "/metrics") == 0) {
        metrics_text(&b, m);
        return reply(conn, MHD_HTTP_OK, &b,
                     "text/plain; version=0.0.4; charset=utf-8");
    }
    if (strcmp(url, "/healthz") == 0) {
        int ok = health_text(&b, m);
        return reply(conn, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
                     &b, "text/plain");
    }
    put(&b, "not found: try /metrics or /healthz\n");
    return reply(conn, MHD_HTTP_NOT_FOUND, &b, "text/plain");
}

/* libmicrohttpd hands us its own format string: the one place a
 * non-literal format is right */
static void __attribute__((format(printf, 2, 0)))
mhd_log(void *cls, const char *fmt, va_list ap)
{
    char line[512];

    (void)cls;
    vsnprintf(line, sizeof line, fmt, ap);
    line[strcspn(line, "\n")] = '\0';
    serve_logf(CRDTNET_LOG_WARN, "metrics: %s", line);
}

int
serve_metrics_start(serve_metrics **out, const char *hostport,
                    crdtnet_daemon *d, crdt_replica *const *reps,
                    size_t n, const int *served, serve_backup_state *backups)
{
    char host[256], port[16];
    struct addrinfo hints, *ai = NULL;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    serve_metrics *m;
    const union MHD_DaemonInfo *info;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
                     MHD_USE_ERROR_LOG;
    int rc;

    *out = NULL;
    if (cli_split_hostport(host, sizeof host, port, sizeof port,
                           hostport) < 0)
        return cli_error(CLI_EUSAGE, "serve", "bad metrics address %s",
                         hostport);
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    rc = getaddrinfo(strcmp(host, "*") == 0 ? NULL : host, port, &hints,
                     &ai);
    if (rc != 0)
        return cli_error(CLI_EIO, "serve", "cannot resolve metrics address "
                         "%s: %s", hostport, gai_strerror(rc));
    m = calloc(1, sizeof *m);
    if (m == NULL) {
        freeaddrinfo(ai);
        return cli_error(CLI_EIO, "serve", "out of memory");
    }
    m->d = d;
    m->reps = reps;
    m->backups = backups;
    {
        int all[SERVE_MAX_DIRS];

        for (size_t i = 0; i < n && i < SERVE_MAX_DIRS; i++)
            all[i] = 1;
        serve_metrics_spaces(m, n, served != NULL ? served : all);
    }
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    m->mhd = MHD_start_daemon(
        flags, 0, NULL, NULL, handle, m, MHD_OPTION_EXTERNAL_LOGGER, mhd_log,
        NULL, MHD_OPTION_SOCK_ADDR, ai->ai_addr, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)16, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
        MHD_OPTION_END);
    freeaddrinfo(ai);
    if (m->mhd == NULL) {
        free(m);
        return cli_error(CLI_EIO, "serve", "cannot serve metrics on %s "
                         "(address in use or not local?)", hostport);
    }
    info = MHD_get_daemon_info(m->mhd, MHD_DAEMON_INFO_LISTEN_FD);
    if (info != NULL &&
        getsockname(info->listen_fd, (struct sockaddr *)&ss, &sl) == 0) {
        char h[NI_MAXHOST], p[NI_MAXSERV];

        if (getnameinfo((struct sockaddr *)&ss, sl, h, sizeof h, p,
                        sizeof p, NI_NUMERICHOST | NI_NUMERICSERV) == 0)
            serve_logf(CRDTNET_LOG_INFO,
                       "metrics on http://%s%s%s:%s/metrics",
                       strchr(h, ':') ? "[" : "", h,
                       strchr(h, ':') ? "]" : "", p);
    }
    *out = m;
    return CLI_OK;
}

void
serve_metrics_spaces(serve_metrics *m, size_t n, const int *served)
{
    if (m == NULL)
        return;
    if (n > SERVE_MAX_DIRS)
        n = SERVE_MAX_DIRS;
    serve_metrics_lock();
    for (size_t i = 0; i < n; i++) {
        unsigned char sid[CRDT_SPACE_ID_BYTES];

        /* once per replica; one being opened again (NULL) is labelled
         * when it is back (it keeps its space) */
        if (m->space[i][0] != '\0' || m->reps[i] == NULL)
            continue;
        crdt_replica_space_id(m->reps[i], sid);
        crdt_hex(m->space[i], sid, sizeof sid);
    }
    memcpy(m->served, served, n * sizeof *served);
    m->n = n;
    serve_metrics_unlock();
}

void
serve_metrics_down(serve_metrics *m, size_t n, const int *down)
{
    if (m == NULL)
        return;
    if (n > SERVE_MAX_DIRS)
        n = SERVE_MAX_DIRS;
    serve_metrics_lock();
    memcpy(m->down, down, n * sizeof *down);
    serve_metrics_unlock();
}

void
serve_metrics_stop(serve_metrics *m)
{
    if (m == NULL)
        return;
    MHD_stop_daemon(m->mhd);
    free(m);
}
