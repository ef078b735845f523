/*
 * cmd_serve.c: `strata serve DIR... --listen HOST:PORT [OPTION]...`: the
 * sync daemon for one or more replicas, with optional scheduled backups,
 * a log on stderr (serve_log.c), metrics over HTTP (serve_metrics.c) and
 * settings from a config file (serve_conf.c).
 *
 * Threads: the caller runs the daemon; a housekeeping thread applies a
 * SIGHUP reload and takes the scheduled backups; libmicrohttpd runs the
 * metrics endpoint.
 * Signals: SIGTERM and SIGINT stop it cleanly (every merge is its own
 * committed txn, so nothing acknowledged is lost); SIGHUP asks for the
 * settings to be read again. Both handlers only set flags (and write the
 * daemon's stop pipe), which is async-signal-safe.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "peer_pipe.h"
#include "serve.h"

static crdtnet_daemon *running;
/* Set by the signal handlers, read by the housekeeping thread too:
 * relaxed atomics (lock-free for an int, so a handler may store one). */
static volatile sig_atomic_t stopping, reload_wanted;

static void
on_stop(int sig)
{
    (void)sig;
    __atomic_store_n(&stopping, 1, __ATOMIC_RELAXED);
    if (running != NULL)
        crdtnet_daemon_stop(running); /* async-signal-safe */
}

static void
on_hup(int sig)
{
    (void)sig;
    __atomic_store_n(&reload_wanted, 1, __ATOMIC_RELAXED);
}

/* What the housekeeping thread works with. */
typedef struct {
    const cli_cmd *cmd;
    int argc;
    char **argv;
    serve_conf *conf; /* the settings in force; this thread changes them */
    crdtnet_daemon *d;
    /* every replica opened, in the daemon's order (a reload appends;
     * a removed one stays open until the daemon ends, unless it is
     * reopened: then NULL between the close and the new open, which is
     * why the directories are kept apart). Changed under
     * serve_metrics_lock() (a scrape reads the served ones). */
    crdt_replica **reps;
    char *dirs[SERVE_MAX_DIRS];
    unsigned char sids[SERVE_MAX_DIRS][CRDT_SPACE_ID_BYTES];
    size_t n;
    int served[SERVE_MAX_DIRS];  /* 0: removed by a reload */
    int checked[SERVE_MAX_DIRS]; /* its damage was looked into */
    /* LMDB gave up on its environment (an I/O error, not damage): close
     * the handle once the daemon is done with it and open it anew, not
     * before retry_at (monotonic ms; 0: at once); an open that fails
     * waits backoff_ms (5 s doubling to 5 min) before the next */
    int reopen[SERVE_MAX_DIRS];
    long long retry_at[SERVE_MAX_DIRS];
    int down[SERVE_MAX_DIRS]; /* out since its storage failed (health) */
    long long opened_at[SERVE_MAX_DIRS]; /* its last open again */
    long backoff_ms[SERVE_MAX_DIRS];
    serve_backup_state *bk; /* under serve_metrics_lock() */
    serve_metrics *metrics; /* NULL: none */
} house;

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Keep the newest @p keep backups of the space with hex prefix @p pre. */
static void
prune(const char *dir, const char *pre, long keep)
{
    char *names[4096];
    size_t n = 0;
    struct dirent *de;
    DIR *d = opendir(dir);

    if (d == NULL)
        return;
    while ((de = readdir(d)) != NULL && n < 4096) {
        size_t l = strlen(de->d_name);
        if (strncmp(de->d_name, pre, strlen(pre)) == 0 && l > 7 &&
            strcmp(de->d_name + l - 7, ".strata") == 0)
            names[n++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str); /* names sort by time */
    for (size_t i = 0; i < n; i++) {
        if ((long)(n - i) > keep && names[i] != NULL) {
            char p[4200];
            snprintf(p, sizeof p, "%s/%s", dir, names[i]);
            unlink(p);
        }
        free(names[i]);
    }
}

static void
backup_all(house *h)
{
    const serve_conf *c = h->conf;

    for (size_t i = 0;
         i < h->n && !__atomic_load_n(&stopping, __ATOMIC_RELAXED); i++) {
        unsigned char space[CRDT_SPACE_ID_BYTES];

        if (!h->served[i] || crdt_replica_damaged(h->reps[i]))
            continue;
        char hex[2 * CRDT_SPACE_ID_BYTES + 1], file[4200], pre[40];
        struct timespec now;
        crdt_backup_info info;
        int64_t ms;
        int rc;

        crdt_replica_space_id(h->reps[i], space);
        crdt_hex(hex, space, sizeof space);
        clock_gettime(CLOCK_REALTIME, &now);
        ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
        snprintf(pre, sizeof pre, "%.16s-", hex);
        snprintf(file, sizeof file, "%s/%s%013lld.strata", c->backup_dir,
                 pre, (long long)ms);
        rc = crdt_backup(&info, h->reps[i], file);
        serve_metrics_lock();
        h->bk[i].last_ms = ms;
        h->bk[i].last_ok = rc >= 0;
        if (rc >= 0)
            h->bk[i].ok++;
        else
            h->bk[i].failed++;
        serve_metrics_unlock();
        if (rc < 0)
            serve_logf(CRDTNET_LOG_ERROR, "backup of %s failed: %s",
                       crdt_replica_path(h->reps[i]), crdt_strerror(rc));
        else
            serve_logf(CRDTNET_LOG_INFO, "backup %s (epoch %llu, %llu ops)",
                       file, (unsigned long long)info.epoch_number,
                       (unsigned long long)info.ops_total);
        prune(c->backup_dir, pre, c->backup_keep > 0 ? c->backup_keep : 1);
    }
}

static int
same_str(const char *a, const char *b)
{
    return (a == NULL && b == NULL) ||
           (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static int
same_list(char *const *a, size_t na, char *const *b, size_t nb)
{
    if (na != nb)
        return 0;
    for (size_t i = 0; i < na; i++)
        if (strcmp(a[i], b[i]) != 0)
            return 0;
    return 1;
}

static void
apply_log(const serve_conf *c)
{
    serve_log_set(c->quiet ? -1 : c->log_level, c->log_format);
}

/* The limits of @p c as daemon options (0 or -1: the library's). */
static void
daemon_limits(crdtnet_daemon_options *o, const serve_conf *c)
{
    if (c->max_epochs_behind >= 0)
        o->conn.policy.max_epochs_behind = (uint32_t)c->max_epochs_behind;
    o->conn.idle_timeout_ms = (int)(c->idle_timeout_s * 1000);
    o->max_conns = (unsigned)c->max_conns;
    o->max_handshakes = (unsigned)c->max_handshakes;
    o->max_handshakes_per_addr = (unsigned)c->max_handshakes_per_addr;
}

/* The same directory, however it is written ("./a", "a/", a link). */
static int
same_dir(const char *a, const char *b)
{
    struct stat sa, sb;

    if (stat(a, &sa) == 0 && stat(b, &sb) == 0)
        return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
    return strcmp(a, b) == 0;
}

static int
listed(const char *dir, char *const *dirs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (same_dir(dir, dirs[i]))
            return 1;
    return 0;
}

/* Check a replica before the daemon reads it (again): every page, then
 * the records in them. 0 sound; else @p why says what is damaged. */
static int
check_replica(crdt_replica *r, char *why, size_t len)
{
    int rc = crdt_replica_check(r, 0, why, len);

    if (rc == CRDT_OK)
        rc = crdt_replica_check_records(r, why, len);
    if (rc < 0 && rc != CRDT_ECORRUPT)
        snprintf(why, len, "%s", crdt_strerror(rc));
    return rc;
}

static void
space_hex(char *hex, crdt_replica *r)
{
    unsigned char sid[CRDT_SPACE_ID_BYTES];

    crdt_replica_space_id(r, sid);
    crdt_hex(hex, sid, sizeof sid);
}

/* Open replica @p i again (reopen_spaces()), not before @p not_before
 * (monotonic ms; 0: at once); until then it is out and health says so. */
static void
want_reopen(house *h, size_t i, long long not_before)
{
    h->reopen[i] = 1;
    h->down[i] = 1;
    h->retry_at[i] = not_before;
}

/* Reload: serve the spaces of @p n. A space no longer listed is removed
 * (its sessions end cleanly); every space kept is checked again before
 * the daemon reads more of it; a new one is opened with every page and
 * record checked, as at start. Each step is one log line. */
static void
apply_spaces(house *h, const serve_conf *n)
{
    char why[300], hex[2 * CRDT_SPACE_ID_BYTES + 1];
    unsigned char dropped[SERVE_MAX_DIRS] = { 0 }; /* by this reload */
    int rc;

    for (size_t i = 0; i < h->n; i++) /* no longer listed: let it be */
        if (!h->served[i] && !listed(h->dirs[i], n->dirs, n->n_dirs))
            h->reopen[i] = h->down[i] = 0;

    for (size_t i = 0; i < h->n; i++) {
        const char *dir = h->dirs[i];

        if (!h->served[i])
            continue;
        space_hex(hex, h->reps[i]);
        if (!listed(dir, n->dirs, n->n_dirs)) {
            (void)crdtnet_daemon_remove_space(h->d, h->reps[i]);
            h->served[i] = 0;
            serve_logf(CRDTNET_LOG_INFO, "reload: no longer serving %s "
                       "(space %s); its sessions were ended", dir, hex);
        } else if (!crdt_replica_damaged(h->reps[i]) &&
                   (rc = check_replica(h->reps[i], why, sizeof why)) < 0) {
            (void)crdtnet_daemon_remove_space(h->d, h->reps[i]);
            h->served[i] = 0;
            dropped[i] = 1;
            if (rc == CRDT_ECORRUPT) {
                crdt_replica_mark_damaged(h->reps[i]);
                serve_logf(CRDTNET_LOG_ERROR, "reload: corrupt replica %s "
                           "(space %s): %s; no longer serving this space; "
                           "run strata verify %s", dir, hex, why, dir);
            } else { /* e.g. LMDB gave up after a failed write: not damage */
                want_reopen(h, i, 0);
                serve_logf(CRDTNET_LOG_ERROR, "reload: cannot read %s "
                           "(space %s): %s; no longer serving this space; "
                           "opening it again", dir, hex, why);
            }
        }
    }
    for (size_t j = 0; j < n->n_dirs; j++) {
        const char *dir = n->dirs[j];
        crdt_replica *r = NULL;
        size_t at = h->n;

        for (size_t i = 0; i < h->n; i++)
            if (same_dir(h->dirs[i], dir))
                at = i;
        if (at < h->n && (h->served[at] || dropped[at]))
            continue; /* served, or dropped by the checks above */
        if (at < h->n && (h->reopen[at] || h->reps[at] == NULL)) {
            want_reopen(h, at, 0); /* closed or failed: open it anew, now */
            continue;
        }
        if (at < h->n) { /* removed before: check it again */
            r = h->reps[at];
            if (crdt_replica_damaged(r) ||
                (rc = check_replica(r, why, sizeof why)) == CRDT_ECORRUPT) {
                serve_logf(CRDTNET_LOG_ERROR, "reload: not serving %s: "
                           "its replica is corrupt", dir);
                continue;
            }
            if (rc < 0) {
                want_reopen(h, at, 0);
                serve_logf(CRDTNET_LOG_ERROR, "reload: cannot read %s: %s; "
                           "opening it again", dir, why);
                continue;
            }
        } else if (h->n == SERVE_MAX_DIRS) {
            serve_logf(CRDTNET_LOG_ERROR, "reload: not serving %s: at "
                       "most %d replicas over the daemon's life", dir,
                       SERVE_MAX_DIRS);
            continue;
        } else if ((h->dirs[h->n] = strdup(dir)) == NULL) {
            serve_logf(CRDTNET_LOG_ERROR, "reload: not serving %s: out of "
                       "memory", dir);
            continue;
        } else {
            rc = cli_open_ex(&r, dir, CLI_OPEN_WRITE | CLI_OPEN_CHECK_ALL);
            if (rc != CLI_OK) {
                serve_logf(CRDTNET_LOG_ERROR, "reload: not serving %s: %s",
                           dir, rc == CLI_EDATA ? "its replica is corrupt"
                                                : "it does not open");
                free(h->dirs[h->n]);
                h->dirs[h->n] = NULL;
                continue;
            }
        }
        space_hex(hex, r);
        rc = crdtnet_daemon_add_space(h->d, r);
        if (rc < 0) {
            serve_logf(CRDTNET_LOG_ERROR, "reload: not serving %s (space "
                       "%s): %s", dir, hex, rc == CRDT_EEXISTS
                       ? "another replica of that space is served"
                       : crdt_strerror(rc));
            if (at == h->n) {
                crdt_replica_close(r);
                free(h->dirs[h->n]);
                h->dirs[h->n] = NULL;
            }
            continue;
        }
        if (at == h->n) {
            serve_metrics_lock();
            h->reps[h->n] = r;
            serve_metrics_unlock();
            crdt_replica_space_id(r, h->sids[h->n]);
            h->checked[h->n] = 0;
            h->n++;
        }
        h->served[at] = 1;
        serve_logf(CRDTNET_LOG_INFO, "reload: serving %s (space %s)", dir,
                   hex);
    }
}

/* A replica the daemon stopped serving because what it was about to
 * send failed its check: say what the whole check finds, once. */
static void
look_into_damage(house *h)
{
    char why[300];

    for (size_t i = 0; i < h->n; i++) {
        const char *dir = h->dirs[i];

        if (h->reps[i] == NULL || h->checked[i] ||
            !crdt_replica_damaged(h->reps[i]))
            continue;
        h->checked[i] = 1;
        if (check_replica(h->reps[i], why, sizeof why) < 0)
            serve_logf(CRDTNET_LOG_ERROR, "corrupt replica %s: %s", dir,
                       why);
        else
            serve_logf(CRDTNET_LOG_ERROR, "corrupt replica %s: its pages "
                       "and records check sound now; it stays out until "
                       "a restart; run strata verify %s", dir, dir);
    }
}

/* A served replica whose environment LMDB gave up on (after a failed
 * write of its meta page): stop serving it and open it again
 * (reopen_spaces()), without waiting for a reload. */
static void
watch_storage(house *h)
{
    char hex[2 * CRDT_SPACE_ID_BYTES + 1];

    for (size_t i = 0; i < h->n; i++) {
        if (!h->served[i] || !crdt_replica_failed(h->reps[i]))
            continue;
        space_hex(hex, h->reps[i]);
        (void)crdtnet_daemon_remove_space(h->d, h->reps[i]);
        h->served[i] = 0;
        /* at most one open again in 10 s: each reads the whole
         * replica, and a disk failing again would fail it again */
        want_reopen(h, i, h->opened_at[i] ? h->opened_at[i] + 10000 : 0);
        serve_metrics_spaces(h->metrics, h->n, h->served);
        serve_metrics_down(h->metrics, h->n, h->down);
        serve_logf(CRDTNET_LOG_ERROR, "storage failed under %s (space %s): "
                   "LMDB refuses its environment after a failed write; no "
                   "longer serving this space; opening it again",
                   h->dirs[i], hex);
    }
}

/*
 * A replica whose environment LMDB gave up on (MDB_PANIC after a failed
 * write: every txn of that handle fails, the file holds every commit)
 * needs a new handle. Once the daemon is done with the old one (its
 * sessions end within about a second of the removal), close it and open
 * the directory again with every page and record checked, as at start,
 * and serve the new handle in the space's place. Tried on every
 * housekeeping turn until the daemon lets go; an open that fails (the
 * disk is still failing) is tried again after a backoff, or at once by
 * a reload. LMDB forbids two handles of one file in a process, hence
 * the close before the open.
 */
static void
reopen_spaces(house *h)
{
    long long now = cli_mono_ms();

    for (size_t i = 0; i < h->n; i++) {
        const char *dir = h->dirs[i];
        crdt_replica *old = h->reps[i], *r = NULL;
        char hex[2 * CRDT_SPACE_ID_BYTES + 1];
        unsigned char sid[CRDT_SPACE_ID_BYTES];
        int rc;

        if (!h->reopen[i] || now < h->retry_at[i])
            continue;
        if (old != NULL) {
            if (crdtnet_daemon_space_idle(h->d, old) == CRDT_EBUSY)
                continue; /* a session still reads it: next turn */
            serve_metrics_lock();
            h->reps[i] = NULL;
            serve_metrics_unlock();
            crdt_replica_close(old);
        }
        h->opened_at[i] = now;
        if (cli_open_ex(&r, dir, CLI_OPEN_WRITE | CLI_OPEN_CHECK_ALL) !=
            CLI_OK) {
            h->backoff_ms[i] = h->backoff_ms[i] == 0 ? 5000
                               : h->backoff_ms[i] >= 150000
                                   ? 300000
                                   : h->backoff_ms[i] * 2;
            h->retry_at[i] = now + h->backoff_ms[i];
            serve_logf(CRDTNET_LOG_ERROR, "cannot open %s again; not "
                       "serving it; next try in %ld s (or at a reload)",
                       dir, h->backoff_ms[i] / 1000);
            continue;
        }
        h->reopen[i] = 0;
        h->backoff_ms[i] = 0;
        space_hex(hex, r);
        crdt_replica_space_id(r, sid);
        if (memcmp(sid, h->sids[i], sizeof sid) != 0) {
            /* the directory holds another space now: the daemon's place
             * (and counters) is the old space's */
            serve_logf(CRDTNET_LOG_ERROR, "not serving %s: it holds space "
                       "%s now, not the one served before; restart the "
                       "daemon to serve it", dir, hex);
            crdt_replica_close(r);
            continue;
        }
        if ((rc = crdtnet_daemon_add_space(h->d, r)) < 0) {
            serve_logf(CRDTNET_LOG_ERROR, "not serving %s (space %s): %s",
                       dir, hex, crdt_strerror(rc));
            crdt_replica_close(r);
            continue;
        }
        serve_metrics_lock();
        h->reps[i] = r;
        serve_metrics_unlock();
        h->served[i] = 1;
        h->checked[i] = 0;
        h->down[i] = 0;
        serve_metrics_spaces(h->metrics, h->n, h->served);
        serve_metrics_down(h->metrics, h->n, h->down);
        serve_logf(CRDTNET_LOG_INFO, "opened %s again, every page and "
                   "record checked: serving it (space %s)", dir, hex);
    }
}

/* Reload: listen on @p n's address from now on. The new socket is bound
 * first, so a failure leaves the daemon where it was. */
static void
move_listener(house *h, serve_conf *n)
{
    serve_conf *c = h->conf;
    char host[256], port[16];
    char *swap;

    if (cli_split_hostport(host, sizeof host, port, sizeof port,
                           n->listen) < 0 ||
        crdtnet_daemon_set_listen(h->d, host, port) < 0) {
        serve_logf(CRDTNET_LOG_ERROR, "reload: cannot listen on %s; still "
                   "listening on port %d", n->listen,
                   crdtnet_daemon_port(h->d));
        return;
    }
    swap = c->listen; /* the loop logs "listening on NEW (was OLD)" */
    c->listen = n->listen;
    n->listen = swap;
}

/* Reload: the metrics endpoint on @p n's address (or none). The new one
 * starts before the old one stops; if it cannot, the old one stays. */
static void
move_metrics(house *h, serve_conf *n)
{
    serve_conf *c = h->conf;
    serve_metrics *m = NULL;
    char *swap;

    if (n->metrics != NULL &&
        serve_metrics_start(&m, n->metrics, h->d, h->reps, h->n, h->served,
                            h->bk) != CLI_OK) {
        serve_logf(CRDTNET_LOG_ERROR, "reload: cannot serve metrics on %s; "
                   "%s", n->metrics,
                   c->metrics ? "they stay where they were" : "none");
        return;
    }
    serve_metrics_down(m, h->n, h->down);
    serve_metrics_stop(h->metrics); /* waits for a scrape in flight */
    h->metrics = m;
    if (m == NULL)
        serve_logf(CRDTNET_LOG_INFO, "reload: metrics endpoint closed");
    swap = c->metrics;
    c->metrics = n->metrics;
    n->metrics = swap;
}

/* SIGHUP: read the settings again; apply what can change live. */
static void
reload(house *h)
{
    serve_conf n, *c = h->conf;
    char why[1200];
    int rc;

    rc = serve_conf_load(&n, h->cmd, h->argc, h->argv, why, sizeof why);
    if (rc != CLI_OK) {
        serve_logf(CRDTNET_LOG_ERROR, "reload: %s; the settings in force "
                   "stay", why);
        serve_conf_free(&n);
        return;
    }
    if (n.backup_dir != NULL && mkdir(n.backup_dir, 0700) != 0 &&
        errno != EEXIST) {
        serve_logf(CRDTNET_LOG_ERROR, "reload: cannot create %s: %s; the "
                   "settings in force stay", n.backup_dir, strerror(errno));
        serve_conf_free(&n);
        return;
    }
    if (!same_str(c->listen, n.listen))
        move_listener(h, &n);
    if (!same_str(c->metrics, n.metrics))
        move_metrics(h, &n);
    /* live: logging, backups, the spaces served and the limits of new
     * sessions; listen, peer and metrics keep their running values */
    apply_log(&n);
    apply_spaces(h, &n);
    serve_metrics_spaces(h->metrics, h->n, h->served);
    serve_metrics_down(h->metrics, h->n, h->down);
    if (!same_list(c->peers, c->n_peers, n.peers, n.n_peers)) {
        rc = crdtnet_daemon_set_peers(h->d, (const char *const *)n.peers,
                                      n.n_peers);
        if (rc < 0) {
            serve_logf(CRDTNET_LOG_ERROR, "reload: peer links unchanged: "
                       "%s", crdt_strerror(rc));
        } else {
            for (size_t i = 0; i < c->n_peers; i++)
                free(c->peers[i]);
            memcpy(c->peers, n.peers, n.n_peers * sizeof *n.peers);
            c->n_peers = n.n_peers;
            n.n_peers = 0; /* moved */
            serve_logf(CRDTNET_LOG_INFO, "reload: peer links restarted: "
                       "%zu address(es)", c->n_peers);
        }
    }
    if (c->max_epochs_behind != n.max_epochs_behind ||
        c->max_conns != n.max_conns ||
        c->max_handshakes != n.max_handshakes ||
        c->max_handshakes_per_addr != n.max_handshakes_per_addr ||
        c->idle_timeout_s != n.idle_timeout_s) {
        crdtnet_daemon_options o = CRDTNET_DAEMON_OPTIONS_INIT;
        daemon_limits(&o, &n);
        (void)crdtnet_daemon_set_options(h->d, &o);
        c->max_epochs_behind = n.max_epochs_behind;
        c->max_conns = n.max_conns;
        c->max_handshakes = n.max_handshakes;
        c->max_handshakes_per_addr = n.max_handshakes_per_addr;
        c->idle_timeout_s = n.idle_timeout_s;
        serve_logf(CRDTNET_LOG_INFO, "reload: limits applied to new "
                   "sessions: max-conns %ld, max-handshakes %ld, "
                   "max-handshakes-per-addr %ld, idle-timeout %ld s, "
                   "max-epochs-behind %ld",
                   c->max_conns, c->max_handshakes,
                   c->max_handshakes_per_addr, c->idle_timeout_s,
                   c->max_epochs_behind);
    }
    free(c->backup_dir);
    c->backup_dir = n.backup_dir;
    n.backup_dir = NULL;
    c->backup_every = n.backup_every;
    c->backup_keep = n.backup_keep;
    c->log_level = n.log_level;
    c->log_format = n.log_format;
    c->quiet = n.quiet;
    serve_conf_free(&n);
    serve_logf(CRDTNET_LOG_INFO, "reloaded %s: log-level %s, backups %s",
               c->config != NULL ? c->config : "the command line",
               (const char *[]){ "error", "warn", "info",
                                 "debug" }[c->log_level],
               c->backup_dir != NULL ? c->backup_dir : "off");
}

static void *
house_loop(void *arg)
{
    house *h = arg;
    long waited_ms = 0;

    while (!__atomic_load_n(&stopping, __ATOMIC_RELAXED)) {
        struct timespec ts = { 0, 200 * 1000000L };

        nanosleep(&ts, NULL);
        if (__atomic_exchange_n(&reload_wanted, 0, __ATOMIC_RELAXED)) {
            reload(h);
        }
        watch_storage(h);
        reopen_spaces(h);
        look_into_damage(h);
        waited_ms += 200;
        if (h->conf->backup_dir == NULL ||
            waited_ms < h->conf->backup_every * 1000)
            continue;
        waited_ms = 0;
        backup_all(h);
    }
    return NULL;
}

/* Two arguments naming one replica, or two replicas of one space, are a
 * mistake the daemon cannot serve: say which. */
static int
check_distinct(crdt_replica **reps, size_t n)
{
    unsigned char a[CRDT_SPACE_ID_BYTES], b[CRDT_SPACE_ID_BYTES];
    char hex[2 * CRDT_SPACE_ID_BYTES + 1];

    for (size_t i = 0; i < n; i++) {
        crdt_replica_space_id(reps[i], a);
        for (size_t j = 0; j < i; j++) {
            crdt_replica_space_id(reps[j], b);
            if (memcmp(a, b, sizeof a) != 0)
                continue;
            crdt_hex(hex, a, sizeof a);
            return cli_error(CLI_EUSAGE, "serve",
                             "%s and %s are replicas of the same space "
                             "%s: a daemon serves one replica per space "
                             "(sync the other with it instead)",
                             crdt_replica_path(reps[j]),
                             crdt_replica_path(reps[i]), hex);
        }
    }
    return CLI_OK;
}

static int
check_same_dir(const serve_conf *c)
{
    struct stat st[SERVE_MAX_DIRS];
    int have[SERVE_MAX_DIRS];

    for (size_t i = 0; i < c->n_dirs; i++) {
        have[i] = stat(c->dirs[i], &st[i]) == 0;
        for (size_t j = 0; j < i && have[i]; j++)
            if (have[j] && st[j].st_dev == st[i].st_dev &&
                st[j].st_ino == st[i].st_ino)
                return cli_error(CLI_EUSAGE, "serve",
                                 "%s and %s are the same replica",
                                 c->dirs[j], c->dirs[i]);
    }
    return CLI_OK;
}

/*
 * serve DIR... --stdio [--quiet] [--max-epochs-behind N]: one session
 * with the client at the other end of stdin and stdout (what `strata
 * sync DIR --via 'ssh host strata serve D --stdio'` runs). stdout is the
 * wire: the one log line goes to stderr (unless --quiet).
 */
static int
serve_stdio(const cli_cmd *cmd, int argc, char **argv)
{
    crdt_replica *reps[SERVE_MAX_DIRS];
    const char *dirs[SERVE_MAX_DIRS];
    crdtnet_peer_options po = CRDTNET_PEER_OPTIONS_INIT;
    crdtnet_peer *p = NULL;
    crdtnet_report rep;
    size_t n_dirs = 0, opened;
    long long n;
    int rc, code = CLI_OK, quiet = 0;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--stdio"))
            continue;
        if (!strcmp(argv[i], "--quiet")) {
            quiet = 1;
        } else if (!strcmp(argv[i], "--max-epochs-behind") && i + 1 < argc) {
            if (cli_parse_int64(&n, argv[++i]) < 0 || n < 0 ||
                n > 100000000)
                return cli_usage(cmd, "bad value for --max-epochs-behind");
            po.policy.max_epochs_behind = (uint32_t)n;
        } else if (argv[i][0] == '-' && argv[i][1] == '-') {
            return cli_usage(cmd, "--stdio serves one session on "
                                  "stdin/stdout: %s does not apply",
                             argv[i]);
        } else if (n_dirs == SERVE_MAX_DIRS) {
            return cli_usage(cmd, "at most %d replicas", SERVE_MAX_DIRS);
        } else {
            dirs[n_dirs++] = argv[i];
        }
    }
    if (n_dirs == 0)
        return cli_usage(cmd, "need at least one DIR");
    for (opened = 0; opened < n_dirs; opened++)
        if ((code = cli_open(&reps[opened], dirs[opened], 1)) != CLI_OK)
            goto out;
    memset(&rep, 0, sizeof rep);
    rc = crdtnet_peer_new(&p, reps, n_dirs, CRDTNET_HS_SERVER, &po);
    if (rc == CRDT_OK)
        rc = cli_peer_pipe(p, 0, 1, 30000, &rep);
    close(1);
    if (rc == CRDT_OK && !quiet)
        fprintf(stderr, "strata serve: session ended: sent %llu changes, "
                "received %llu (%llu ops)%s\n",
                (unsigned long long)rep.changes_sent,
                (unsigned long long)rep.changes_received,
                (unsigned long long)rep.ops_received,
                rep.in_sync ? ", in sync" : "");
    else if (rc < 0)
        code = cli_error(cli_exit_code(rc), "serve", "%s",
                         rep.reason[0] ? rep.reason : crdt_strerror(rc));
    crdtnet_peer_free(p);
out:
    for (size_t i = 0; i < opened; i++)
        crdt_replica_close(reps[i]);
    return code;
}

/*
 * Every accepted connection holds a file descriptor, and the usual soft
 * limit (1024) is far below what one daemon can hold: raise the soft
 * limit to the hard one (what the service manager allows, systemd's
 * LimitNOFILE=, docs/operations.md), and say so when max-conns cannot
 * be reached under it.
 */
static void
raise_fd_limit(const serve_conf *c)
{
    struct rlimit rl;
    unsigned long want = c->max_conns > 0
                             ? (unsigned long)c->max_conns
                             : (unsigned long)CRDTNET_DAEMON_MAX_CONNS_DEFAULT;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rlim_t was = rl.rlim_cur;

        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            rl.rlim_cur = was;
    }
    /* the replicas, the listener, logs and metrics take a few dozen */
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want + 64)
        serve_logf(CRDTNET_LOG_WARN,
                   "file descriptor limit %llu is below max-conns %lu + 64: "
                   "connections beyond it wait (raise LimitNOFILE)",
                   (unsigned long long)rl.rlim_cur, want);
}

int
cmd_serve(const cli_cmd *cmd, int argc, char **argv)
{
    serve_conf conf;
    crdt_replica *reps[SERVE_MAX_DIRS];
    serve_backup_state bk[SERVE_MAX_DIRS];
    crdtnet_daemon_options o = CRDTNET_DAEMON_OPTIONS_INIT;
    crdtnet_daemon *d = NULL;
    serve_metrics *metrics = NULL;
    char host[256], port[16], why[1200];
    size_t opened = 0;
    house h = { 0 };
    pthread_t th;
    int have_thread = 0, rc, code = CLI_OK;

    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--stdio"))
            return serve_stdio(cmd, argc, argv);
    rc = serve_conf_load(&conf, cmd, argc, argv, why, sizeof why);
    if (rc == CLI_HELP_SHOWN) {
        serve_conf_free(&conf);
        return CLI_OK;
    }
    if (rc != CLI_OK) {
        serve_conf_free(&conf);
        return rc == CLI_EUSAGE ? cli_usage(cmd, "%s", why)
                                : cli_error(rc, "serve", "%s", why);
    }
    if ((code = check_same_dir(&conf)) != CLI_OK)
        goto out;
    apply_log(&conf);
    raise_fd_limit(&conf);
    (void)cli_split_hostport(host, sizeof host, port, sizeof port,
                             conf.listen); /* checked by the load */
    if (conf.backup_dir != NULL && mkdir(conf.backup_dir, 0700) != 0 &&
        errno != EEXIST) {
        code = cli_error(CLI_EIO, "serve", "cannot create %s: %s",
                         conf.backup_dir, strerror(errno));
        goto out;
    }
    /* every page is checked at open (a daemon opens once); a corrupt
     * replica is left out with its error line and the others are served */
    for (size_t i = 0; i < conf.n_dirs; i++) {
        code = cli_open_ex(&reps[opened], conf.dirs[i],
                           CLI_OPEN_WRITE | CLI_OPEN_CHECK_ALL);
        if (code == CLI_EDATA && conf.n_dirs > 1) {
            serve_logf(CRDTNET_LOG_ERROR, "not serving %s: its replica is "
                       "corrupt", conf.dirs[i]);
            continue;
        }
        if (code != CLI_OK)
            goto out;
        opened++;
    }
    if (opened == 0) {
        code = CLI_EDATA;
        goto out;
    }
    code = CLI_OK;
    if ((code = check_distinct(reps, opened)) != CLI_OK)
        goto out;
    daemon_limits(&o, &conf);
    o.conn.log_event = serve_log_event;
    rc = crdtnet_daemon_new(&d, reps, opened, host, port,
                            (const char *const *)conf.peers, conf.n_peers,
                            &o);
    if (rc < 0) {
        code = cli_error(cli_exit_code(rc), "serve", "cannot listen on %s: "
                         "%s", conf.listen, crdt_strerror(rc));
        goto out;
    }
    memset(bk, 0, sizeof bk);
    if (conf.metrics != NULL &&
        (code = serve_metrics_start(&metrics, conf.metrics, d, reps, opened,
                                    NULL, bk)) != CLI_OK)
        goto out;
    running = d;
    {
        struct sigaction sa;

        memset(&sa, 0, sizeof sa);
        sigemptyset(&sa.sa_mask);
        sa.sa_handler = on_stop;
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
        sa.sa_handler = on_hup;
        sa.sa_flags = SA_RESTART;
        sigaction(SIGHUP, &sa, NULL);
        sa.sa_handler = SIG_IGN;
        sigaction(SIGPIPE, &sa, NULL);
    }
    memset(&h, 0, sizeof h);
    h.cmd = cmd;
    h.argc = argc;
    h.argv = argv;
    h.conf = &conf;
    h.d = d;
    h.reps = reps;
    h.n = opened;
    for (size_t i = 0; i < opened; i++) {
        h.served[i] = 1;
        crdt_replica_space_id(reps[i], h.sids[i]);
        if ((h.dirs[i] = strdup(crdt_replica_path(reps[i]))) == NULL) {
            code = cli_fail("serve", CRDT_ENOMEM);
            goto out;
        }
    }
    h.bk = bk;
    h.metrics = metrics;
    have_thread = pthread_create(&th, NULL, house_loop, &h) == 0;
    if (!have_thread)
        serve_logf(CRDTNET_LOG_ERROR, "cannot start the housekeeping "
                   "thread: no backups, SIGHUP ignored");
    rc = crdtnet_daemon_run(d);
    __atomic_store_n(&stopping, 1, __ATOMIC_RELAXED);
    if (have_thread)
        pthread_join(th, NULL);
    opened = h.n; /* a reload may have opened more */
    metrics = h.metrics; /* and moved the metrics endpoint */
    if (rc < 0)
        code = cli_fail("serve", rc);
out:
    running = NULL;
    serve_metrics_stop(metrics);
    crdtnet_daemon_free(d);
    for (size_t i = 0; i < opened; i++)
        crdt_replica_close(reps[i]);
    for (size_t i = 0; i < h.n; i++)
        free(h.dirs[i]);
    serve_conf_free(&conf);
    return code;
}
