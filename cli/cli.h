/*
 * cli.h: what the command files of the `strata` tool share.
 *
 * A command is one file (cmd_*.c) exporting one run function, plus one
 * line in the table in main.c. docs/cli.md is the contract: the
 * commands, their arguments, the --json fields and the exit codes.
 */
#ifndef STRATA_CLI_H
#define STRATA_CLI_H

#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include "crdt/crdt.h"
#include "crdtnet/session.h"
#include "epoch/epoch.h"

/* Exit codes (docs/cli.md, "Exit codes"). */
enum {
    CLI_OK = 0,
    CLI_EUSAGE = 1,    /* usage error */
    CLI_ENOTFOUND = 2, /* not found */
    CLI_EBUSY = 3,     /* a migration is in progress */
    CLI_EREJECTED = 4, /* stale or forked beyond policy */
    CLI_EAUTH = 5,     /* authentication or authorization failed */
    CLI_EDATA = 6,     /* corrupt or invalid data */
    CLI_EIO = 7        /* I/O or storage error */
};

/* Collections whose name starts with this are the tool's own. */
#define CLI_RESERVED_PREFIX '$'

typedef struct cli_cmd cli_cmd;

/** Runs a command; argv[0] is the command name. Returns an exit code. */
typedef int (*cli_run_fn)(const cli_cmd *cmd, int argc, char **argv);

struct cli_cmd {
    const char *name;
    cli_run_fn run;      /* NULL: not available in this build */
    const char *usage;   /* synopsis after "strata " */
    const char *summary; /* one line for `strata --help` */
    const char *help;    /* more lines for `strata CMD --help`, or NULL */
};

/* ---- args.c: options and positional arguments ---- */

#define CLI_MAX_OPTS 8
#define CLI_MAX_POS 8

/** An option a command accepts: "--name" or "--name VALUE". */
typedef struct {
    const char *name; /* without the dashes */
    int has_arg;
} cli_opt;

typedef struct {
    const char *pos[CLI_MAX_POS];
    int npos;
    /* indexed like the command's option array; NULL = not given */
    const char *opt[CLI_MAX_OPTS];
} cli_args;

/* cli_parse() returned this: --help was printed, exit 0. */
#define CLI_HELP_SHOWN (-1)

/**
 * Parse argv[1..] of @p cmd against @p opts (terminated by a NULL name)
 * and check min_pos <= positionals <= max_pos. "--" ends the options; an
 * argument starting with a single '-' (a negative number, "-" for stdin)
 * is positional; "-h" and "--help" print the command's help.
 * @return CLI_OK; CLI_HELP_SHOWN; CLI_EUSAGE (message printed).
 */
int cli_parse(cli_args *out, const cli_cmd *cmd, int argc, char **argv,
              const cli_opt *opts, int min_pos, int max_pos);

/** 1 if option @p i was given (a flag or one with a value). */
int cli_has(const cli_args *a, int i);

/** Print the help of @p cmd to @p f. */
void cli_print_help(FILE *f, const cli_cmd *cmd);

/* ---- util.c: errors, exit codes, opening a replica ---- */

/** The exit code for a crdt_err. */
int cli_exit_code(int rc);

/** Print "strata: WHAT: WHY" on stderr and return @p code. */
int cli_error(int code, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/** Report a library error for step @p what; return its exit code. */
int cli_fail(const char *what, int rc);

/** A usage error of @p cmd: the reason and its synopsis; returns 1. */
int cli_usage(const cli_cmd *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Flags of cli_open_ex(). */
#define CLI_OPEN_WRITE 1     /* for writing or syncing (else read-only) */
#define CLI_OPEN_NO_WARNING 2 /* no warning about a migration marker */
#define CLI_OPEN_CHECK_ALL 4  /* check every page at open, not a budget */
#define CLI_OPEN_NO_RECORDS 8 /* no record check at open (verify's own) */

/**
 * Open the replica in @p dir (never creating one), read-only unless
 * @p flags has CLI_OPEN_WRITE. On failure prints "strata: open DIR: WHY".
 *  - A replica opened for writing gets epoch_attach() at once, so every
 *    merge into it rebases ops written in older epochs.
 *  - If a migration marker is present (a migration was interrupted, or
 *    is running), prints one warning line on stderr unless
 *    CLI_OPEN_NO_WARNING (migrate and status report it themselves).
 *  - The records inside the pages are checked too
 *    (crdt_replica_check_records: the state against its hash, the log's
 *    hash chains and signatures) when every page was checked: with
 *    CLI_OPEN_CHECK_ALL, or when the data file is within the page budget
 *    of a plain open; never with CLI_OPEN_NO_RECORDS. Damage is the
 *    corrupt-replica error (exit 6), and nothing is read or written.
 * @return CLI_OK or an exit code.
 */
int cli_open_ex(crdt_replica **out, const char *dir, int flags);

/**
 * "strata: WHAT: corrupt replica: DAMAGE; run strata verify DIR, then
 * strata restore ... or strata rebuild ..."; returns CLI_EDATA.
 */
int cli_corrupt(const char *what, const char *dir, const char *damage);

/* ---- fault.c: the last line against a damaged data file ---- */

/**
 * Catch SIGSEGV and SIGBUS for the whole process: a read of a damaged
 * data file that faults (past what the checks at open saw) prints the
 * corrupt-replica error for the replica opened last and exits 6,
 * instead of dying by the signal. Call once, first thing in main().
 */
void cli_fault_install(void);

/** The replica directory the fault message names (copied; long ones
 *  are cut). */
void cli_fault_set_dir(const char *dir);

/** That directory ("the replica" before any open). */
const char *cli_fault_dir(void);

/** cli_open_ex() with CLI_OPEN_WRITE if @p write. */
int cli_open(crdt_replica **out, const char *dir, int write);

/**
 * Check a collection, document or field name given by the user:
 * 1..CRDT_NAME_MAX bytes (the library checks UTF-8). @p kind is
 * "collection", "document" or "field". Prints a usage error.
 */
int cli_check_name(const cli_cmd *cmd, const char *kind, const char *name);

/** cli_check_name() of a collection, a document and (if not NULL) a
 *  field, in that order. */
int cli_check_names(const cli_cmd *cmd, const char *coll, const char *doc,
                    const char *field);

/** 1 if @p coll is reserved (starts with CLI_RESERVED_PREFIX). */
int cli_reserved(const char *coll);

/** The epoch layer's JSON: {COLL: VERSION} of @p e; NULL: no memory. */
json_t *cli_schema_json(const epoch_info *e);

/**
 * An op as JSON, in the shape of an import line (and of `log --json`):
 * {"op","coll","doc"[,"field"][,"value"|"n"]}; a sequence op
 * {"op","coll","doc","field","pos"[,"text"|"len"|"value"]} (tins: text,
 * tdel and ldel: len, lins and lset: value). NULL: no memory.
 */
json_t *cli_op_to_json(const crdt_op *op);

/** 1 if @p id (EPOCH_ID_BYTES) is all zero: genesis has no parent. */
int cli_id_is_zero(const unsigned char *id);

/* ---- value.c: VALUEs and JSON ---- */

/** A parsed value and the memory its strings point into. */
typedef struct {
    crdt_value v;
    json_t *json;         /* holds a string value */
    unsigned char *bytes; /* decoded $bytes */
} cli_value;

void cli_value_free(cli_value *cv);

/**
 * A JSON value (as in an import line) to a crdt value: a scalar, or
 * {"$bytes":"<base64>"}. Big integers are already refused by jansson.
 * @return CLI_OK, or CLI_EDATA with @p why set to a static reason.
 */
int cli_value_from_json(cli_value *out, json_t *j, const char **why);

/**
 * A VALUE argument (docs/cli.md, "Values"): JSON scalar or $bytes object; any
 * other text that is not valid JSON is the string itself.
 * @return CLI_OK, or CLI_EUSAGE with @p why set.
 */
int cli_value_parse_arg(cli_value *out, const char *arg, const char **why);

/** A strict decimal int64 ("-12"); 0 on success, -1 if not one. */
int cli_parse_int64(long long *out, const char *s);

/* Milliseconds on the monotonic clock (for timeouts and backoffs). */
long long cli_mono_ms(void);

/** New reference to the JSON form of @p v ({"$bytes":..} for bytes). */
json_t *cli_value_to_json(const crdt_value *v);

/** A field as JSON: register value, counter number, set sorted array. */
json_t *cli_field_to_json(const crdt_field *f);

/**
 * Print @p j compactly on one line to stdout, reals in the fewest
 * digits that read back exactly. Steals the reference to @p j.
 * @return CLI_OK; CLI_EIO (no memory or output failed).
 */
int cli_emit(json_t *j);

/* ---- members.c: the replicated member set ---- */

/**
 * Give @p pubkey (CRDT_PUBKEY_BYTES) @p role (reader, writer, admin), in
 * one txn. @return a crdt_err (CRDT_OK; CRDT_EPERM: this replica's key
 * may not, or the key was removed; CRDT_EBUSY; CRDT_EIO...).
 */
int cli_member_add(crdt_replica *r, const unsigned char *pubkey,
                   crdt_role role);

/**
 * Remove @p pubkey for good, in one txn. @return a crdt_err (CRDT_OK;
 * CRDT_ENOTFOUND: not a member; CRDT_EPERM as above; CRDT_EIO...).
 */
int cli_member_rm(crdt_replica *r, const unsigned char *pubkey);

/* ---- cmd_init.c ---- */

/** Read the recovery phrase in @p path and derive the identity seed
 *  (CRDT_SEED_BYTES). Prints the error; returns an exit code. */
int cli_seed_from_file(const cli_cmd *cmd, unsigned char *seed,
                       const char *path);

/* ---- progress.c: progress bars on a terminal ---- */

/** A progress display on stderr; silent unless stderr is a terminal. */
typedef struct {
    const char *label; /* "migrate", "import"... */
    const char *unit;  /* "entries", "lines"; "bytes" prints as MiB */
    int on;            /* stderr is a terminal */
    int shown;         /* something was drawn: end the line */
    int percent;       /* last percentage drawn */
    long long last_ms; /* last draw without a total */
    uint64_t held;     /* a count not drawn yet (too soon) */
    int holding;
} cli_progress;

void cli_progress_init(cli_progress *p, const char *label, const char *unit);

/**
 * Draw @p done of @p total (0: unknown, a count only) for the
 * cli_progress @p ctx; the signature of epoch_progress_fn.
 */
void cli_progress_draw(uint64_t done, uint64_t total, void *ctx);

/** End the line if something was drawn. */
void cli_progress_end(cli_progress *p);

/**
 * Progress of work done inside one library call: a thread calls
 * @p measure every 100 ms and draws its result against @p total.
 * Only runs when the display is on.
 */
typedef struct {
    cli_progress *p;
    uint64_t total;
    uint64_t (*measure)(void *ctx);
    void *ctx;
    pthread_t th;
    int running, stop;
} cli_progress_watch;

void cli_progress_watch_start(cli_progress_watch *w, cli_progress *p,
                              uint64_t total, uint64_t (*measure)(void *ctx),
                              void *ctx);

/** Stop the thread; with @p finished draw 100% first; end the line. */
void cli_progress_watch_stop(cli_progress_watch *w, int finished);

/* ---- cmd_sync.c ---- */

/** A crdtnet_conn_options progress function drawing the ops and
 *  snapshot entries received so far on the cli_progress @p ctx. */
void cli_sync_progress(const crdtnet_report *rep, void *ctx);

/* ---- hostport.c ---- */

/** Split "HOST:PORT" or "[V6]:PORT"; 0 on success, -1 if malformed. */
int cli_split_hostport(char *host, size_t hsize, char *port, size_t psize,
                       const char *arg);

/* ---- the commands ---- */

int cmd_init(const cli_cmd *cmd, int argc, char **argv);
int cmd_sync(const cli_cmd *cmd, int argc, char **argv);
int cmd_rebuild(const cli_cmd *cmd, int argc, char **argv);
int cmd_serve(const cli_cmd *cmd, int argc, char **argv);
int cmd_backup(const cli_cmd *cmd, int argc, char **argv);
int cmd_restore(const cli_cmd *cmd, int argc, char **argv);
int cmd_phrase(const cli_cmd *cmd, int argc, char **argv);
int cmd_id(const cli_cmd *cmd, int argc, char **argv);
int cmd_member(const cli_cmd *cmd, int argc, char **argv);
int cmd_invite(const cli_cmd *cmd, int argc, char **argv);
int cmd_write(const cli_cmd *cmd, int argc, char **argv); /* put incr ... */
int cmd_seq(const cli_cmd *cmd, int argc, char **argv);   /* text, list */
int cmd_get(const cli_cmd *cmd, int argc, char **argv);
int cmd_ls(const cli_cmd *cmd, int argc, char **argv);
int cmd_export(const cli_cmd *cmd, int argc, char **argv);
int cmd_import(const cli_cmd *cmd, int argc, char **argv);
int cmd_status(const cli_cmd *cmd, int argc, char **argv);
int cmd_log(const cli_cmd *cmd, int argc, char **argv);
int cmd_migrate(const cli_cmd *cmd, int argc, char **argv);
int cmd_epochs(const cli_cmd *cmd, int argc, char **argv);
int cmd_quarantine(const cli_cmd *cmd, int argc, char **argv);
int cmd_verify(const cli_cmd *cmd, int argc, char **argv);
int cmd_watch(const cli_cmd *cmd, int argc, char **argv);

#endif
