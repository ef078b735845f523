/*
 * serve.h: what the files of `strata serve` share: its settings (from
 * the command line and a config file), its log and its metrics
 * endpoint. docs/operations.md describes them for operators.
 */
#ifndef STRATA_SERVE_H
#define STRATA_SERVE_H

#include <stddef.h>
#include <stdint.h>

#include "cli.h"
#include "crdtnet/daemon.h"

#define SERVE_MAX_DIRS 64
#define SERVE_MAX_PEERS 64

enum { SERVE_LOG_TEXT = 0, SERVE_LOG_JSON = 1 };

/* ---- serve_conf.c: settings ---- */

/** Every setting of the daemon; strings are owned (serve_conf_free()). */
typedef struct {
    char *dirs[SERVE_MAX_DIRS]; /* "space" lines and positional DIRs */
    size_t n_dirs;
    char *peers[SERVE_MAX_PEERS];
    size_t n_peers;
    char *config; /* the file read, or NULL */
    char *listen;
    char *metrics;
    char *backup_dir;
    long backup_every; /* seconds; 0 = no backups */
    long backup_keep;
    long max_epochs_behind; /* -1: the library's default */
    long max_conns;         /* 0: the library's default */
    long max_handshakes;    /* 0: the library's default */
    long max_handshakes_per_addr; /* 0: the library's default */
    long idle_timeout_s;    /* 0: the library's default */
    int log_level;          /* crdtnet_log_level */
    int log_format;         /* SERVE_LOG_* */
    int quiet;
} serve_conf;

/**
 * Read the settings: the file of --config (if given), then the command
 * line, whose values win; DIRs and peers of both are served.
 * Checks every value and that DIRs and --listen are there.
 * @param why  on failure, why (a usage message, no prefix)
 * @return CLI_OK; CLI_HELP_SHOWN (printed); CLI_EUSAGE; CLI_ENOTFOUND
 *         (no config file); CLI_EIO (cannot read it).
 */
int serve_conf_load(serve_conf *c, const cli_cmd *cmd, int argc,
                    char **argv, char *why, size_t why_size);

void serve_conf_free(serve_conf *c);

/** The help text of `serve`: every option and config key. */
extern const char serve_help[];

/* ---- serve_log.c: the daemon's log on stderr ---- */

/** Set what is logged and how; safe while other threads log. */
void serve_log_set(int level, int format);

/** Log a line (a crdtnet_log_event_fn; @p ctx is unused). */
void serve_log_event(int level, const char *peer, const char *msg,
                     void *ctx);

/** Log a line of the serve command itself. */
void serve_logf(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/** "error", "warn", "info", "debug" to a level; -1 if none. */
int serve_log_level_parse(const char *s);

/* ---- serve_metrics.c: /metrics and /healthz ---- */

/** What the daemon last did about backups of one space. */
typedef struct {
    int64_t last_ms; /* wall clock of the last attempt; 0 = none yet */
    int last_ok;     /* that attempt succeeded */
    uint64_t ok, failed;
} serve_backup_state;

typedef struct serve_metrics serve_metrics;

/**
 * Serve metrics over HTTP on @p hostport for the @p n replicas of @p d,
 * those with @p served[i] set (NULL: all); @p backups (n entries, may be
 * updated concurrently under serve_metrics_lock()) is read at each
 * scrape. A reload may start a second one and stop the first.
 * @return CLI_OK; CLI_EUSAGE (bad address); CLI_EIO (cannot listen).
 */
int serve_metrics_start(serve_metrics **out, const char *hostport,
                        crdtnet_daemon *d, crdt_replica *const *reps,
                        size_t n, const int *served,
                        serve_backup_state *backups);

/**
 * After a reload: report replicas 0..@p n-1 of the array given to
 * serve_metrics_start() (a reload appends), those with @p served[i] set.
 * @p m may be NULL (no metrics).
 */
void serve_metrics_spaces(serve_metrics *m, size_t n, const int *served);

/**
 * Spaces out because their storage failed (LMDB gave up on the
 * environment) and not open again yet: /healthz fails while one is, and
 * /metrics has strata_space_storage_failed{space} 1. @p m may be NULL.
 */
void serve_metrics_down(serve_metrics *m, size_t n, const int *down);

void serve_metrics_stop(serve_metrics *m);

/** Guard the backup states handed to serve_metrics_start(). */
void serve_metrics_lock(void);
void serve_metrics_unlock(void);

#endif
