/*
 * util.c: error reporting, exit codes, opening a replica, names, and
 * the JSON shapes several commands share (schema, op).
 *
 * Invariants:
 *  (1) Every failure goes through cli_error(), so each one is a single
 *      line "strata: <what failed>: <why>" and maps to one exit code of
 *      docs/cli.md.
 *  (2) Every replica opened for writing is epoch_attach()ed before any
 *      command touches it (cli_open_ex()), so no merge ever bypasses the
 *      rebasing hook.
 *  (3) A pending migration marker is announced by one warning line on
 *      stderr when a replica is opened, except by the commands that show
 *      it themselves (migrate, status).
 */
#include <errno.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"

int
cli_exit_code(int rc)
{
    switch (rc) {
    case CRDT_OK: return CLI_OK;
    case CRDT_EINVAL: case CRDT_ETYPE: case CRDT_ELIMIT: case CRDT_EEXISTS:
        return CLI_EUSAGE;
    case CRDT_ENOTFOUND: return CLI_ENOTFOUND;
    case CRDT_EBUSY: return CLI_EBUSY;
    case CRDT_EREJECTED: case CRDT_ECLOCK: return CLI_EREJECTED;
    case CRDT_EAUTH: return CLI_EAUTH;
    case CRDT_ECORRUPT: case CRDT_EPROTO: case CRDT_EVERSION:
    case CRDT_ECONFLICT:
        return CLI_EDATA;
    default: /* EIO, EFULL, EPERM, ENOMEM, ERROR, EBADTXN, ECLOSED... */
        return CLI_EIO;
    }
}

int
cli_error(int code, const char *what, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "strata: %s: ", what);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return code;
}

int
cli_fail(const char *what, int rc)
{
    if (rc == CRDT_EBUSY)
        return cli_error(CLI_EBUSY, what,
                         "busy: a migration is in progress, retry later");
    if (rc == CRDT_ECORRUPT) /* read from the replica opened last */
        return cli_corrupt(what, cli_fault_dir(), NULL);
    return cli_error(cli_exit_code(rc), what, "%s", crdt_strerror(rc));
}

int
cli_usage(const cli_cmd *cmd, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "strata: %s: ", cmd->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (usage: strata %s)\n", cmd->usage);
    return CLI_EUSAGE;
}

int
cli_corrupt(const char *what, const char *dir, const char *damage)
{
    return cli_error(CLI_EDATA, what,
                     "corrupt replica: %s; run strata verify %s, then "
                     "strata restore BACKUP NEWDIR or strata rebuild %s "
                     "HOST:PORT (docs/operations.md)",
                     damage != NULL && damage[0] ? damage
                                                 : "its data does not read",
                     dir, dir);
}

/* The one warning line of cli_open_ex(); a marker that cannot be read
 * is left to the command (its own reads or writes will say why). */
static void
warn_marker(crdt_replica *r, const char *dir)
{
    epoch_marker m;

    if (epoch_marker_get(&m, r) != CRDT_OK)
        return;
    fprintf(stderr,
            "strata: warning: a migration was interrupted (target epoch "
            "%llu); run strata migrate %s --resume or --abort\n",
            (unsigned long long)m.target_number, dir);
    epoch_marker_clear(&m);
}

/* 1 if the data file is no larger than the pages a plain open checks
 * (CRDT_CHECK_PAGES_DEFAULT pages of 4 KiB, LMDB's page on Linux). */
static int
within_budget(const char *dir)
{
    char file[4096 + 16];
    struct stat st;

    if ((size_t)snprintf(file, sizeof file, "%s/data.mdb", dir) >=
            sizeof file ||
        stat(file, &st) != 0)
        return 0;
    return (uint64_t)st.st_size <= (uint64_t)CRDT_CHECK_PAGES_DEFAULT * 4096;
}

int
cli_open_ex(crdt_replica **out, const char *dir, int flags)
{
    crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
    crdt_open_report report;
    char what[64 + 4096];
    struct stat st;
    int rc;

    snprintf(what, sizeof what, "open %s", dir);
    if (stat(dir, &st) != 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return cli_error(CLI_ENOTFOUND, what, "not a replica");
        return cli_error(CLI_EIO, what, "%s", strerror(errno));
    }
    if (!S_ISDIR(st.st_mode))
        return cli_error(CLI_ENOTFOUND, what, "not a replica");
    o.read_only = !(flags & CLI_OPEN_WRITE);
    o.report = &report;
    if (flags & CLI_OPEN_CHECK_ALL)
        o.check_pages = UINT64_MAX;
    cli_fault_set_dir(dir);
    {   /* STRATA_MAP_MAX_MB caps the LMDB map: a quota for operators, and
         * how the tests fill a replica up without filling the disk */
        const char *cap = getenv("STRATA_MAP_MAX_MB");
        long long mb;
        if (cap != NULL && cli_parse_int64(&mb, cap) == 0 && mb > 0 &&
            mb < (1ll << 30)) {
            o.max_map_size = (size_t)mb << 20;
            o.map_size = o.max_map_size < (64u << 20) ? o.max_map_size : 0;
        }
    }
    rc = crdt_replica_open(out, dir, &o);
    if (rc == CRDT_EVERSION && o.read_only) {
        /* store format 1 opens read-only only once upgraded, which one
         * writable open does (docs/storage.md); a newer format fails
         * that open too, and keeps this answer */
        crdt_open_options w = o;
        crdt_replica *up;
        w.read_only = 0;
        if (crdt_replica_open(&up, dir, &w) == CRDT_OK) {
            crdt_replica_close(up);
            rc = crdt_replica_open(out, dir, &o);
        }
    }
    switch (rc) {
    case CRDT_OK: break;
    case CRDT_ENOTFOUND:
        return cli_error(CLI_ENOTFOUND, what, "not a replica");
    case CRDT_EPERM:
        return cli_error(CLI_EIO, what, "permission denied");
    case CRDT_ECORRUPT:
        return cli_corrupt(what, dir, report.damage);
    default:
        return cli_fail(what, rc);
    }
    if (!(flags & CLI_OPEN_NO_RECORDS) &&
        ((flags & CLI_OPEN_CHECK_ALL) || within_budget(dir))) {
        /* every page was checked: the records in them are checked too,
         * so a value damaged inside a sound page is refused here rather
         * than printed as data or written on top of */
        char damage[sizeof report.damage];
        rc = crdt_replica_check_records(*out, damage, sizeof damage);
        if (rc < 0) {
            crdt_replica_close(*out);
            *out = NULL;
            return rc == CRDT_ECORRUPT ? cli_corrupt(what, dir, damage)
                                       : cli_fail(what, rc);
        }
    }
    if (report.meta_restored)
        fprintf(stderr, "strata: warning: %s: %s; it opened at LMDB commit "
                "%llu, and the last commit may be lost; run strata verify "
                "%s\n", dir, report.damage,
                (unsigned long long)report.meta_txnid, dir);
    /* a writer merges through the rebasing hook, whatever it does next */
    if (flags & CLI_OPEN_WRITE) {
        rc = epoch_attach(*out);
        if (rc < 0) {
            crdt_replica_close(*out);
            *out = NULL;
            return cli_fail(what, rc);
        }
    }
    if (!(flags & CLI_OPEN_NO_WARNING))
        warn_marker(*out, dir);
    return CLI_OK;
}

int
cli_open(crdt_replica **out, const char *dir, int write)
{
    return cli_open_ex(out, dir, write ? CLI_OPEN_WRITE : 0);
}

int
cli_check_name(const cli_cmd *cmd, const char *kind, const char *name)
{
    size_t len = strlen(name);

    if (len == 0 || len > CRDT_NAME_MAX)
        return cli_error(CLI_EUSAGE, cmd->name,
                         "invalid %s name \"%s\" (1 to %d bytes of UTF-8)",
                         kind, name, CRDT_NAME_MAX);
    return CLI_OK;
}

int
cli_check_names(const cli_cmd *cmd, const char *coll, const char *doc,
                const char *field)
{
    int rc = cli_check_name(cmd, "collection", coll);

    if (rc == CLI_OK)
        rc = cli_check_name(cmd, "document", doc);
    if (rc == CLI_OK && field != NULL)
        rc = cli_check_name(cmd, "field", field);
    return rc;
}

int
cli_reserved(const char *coll)
{
    return coll[0] == CLI_RESERVED_PREFIX;
}

json_t *
cli_schema_json(const epoch_info *e)
{
    json_t *o = json_object();

    for (size_t i = 0; o != NULL && i < e->n_schema; i++)
        if (json_object_set_new(o, e->schema[i].coll,
                                json_integer(e->schema[i].version))) {
            json_decref(o);
            o = NULL;
        }
    return o;
}

json_t *
cli_op_to_json(const crdt_op *op)
{
    static const char *const NAMES[] = { "put",  "incr", "sadd", "srem",
                                         "del",  "del",  "tins", "tdel",
                                         "lins", "ldel", "lset" };
    json_t *o;

    if ((unsigned)op->kind > CRDT_OP_LSET)
        return NULL;
    o = json_object();
    if (o == NULL)
        return NULL;
    if (json_object_set_new(o, "op", json_string(NAMES[op->kind])) ||
        json_object_set_new(o, "coll", json_stringn(op->coll, op->coll_len)) ||
        json_object_set_new(o, "doc", json_stringn(op->doc, op->doc_len)))
        goto fail;
    if (op->field != NULL &&
        json_object_set_new(o, "field", json_stringn(op->field,
                                                     op->field_len)))
        goto fail;
    switch (op->kind) {
    case CRDT_OP_PUT: case CRDT_OP_SADD: case CRDT_OP_SREM:
        if (json_object_set_new(o, "value", cli_value_to_json(&op->value)))
            goto fail;
        break;
    case CRDT_OP_INCR:
        if (json_object_set_new(o, "n", json_integer((json_int_t)op->delta)))
            goto fail;
        break;
    case CRDT_OP_TINS: case CRDT_OP_TDEL: case CRDT_OP_LINS:
    case CRDT_OP_LDEL: case CRDT_OP_LSET:
        if (op->pos > (uint64_t)INT64_MAX || op->len > (uint64_t)INT64_MAX ||
            json_object_set_new(o, "pos", json_integer((json_int_t)op->pos)))
            goto fail;
        if (op->kind == CRDT_OP_TINS &&
            json_object_set_new(o, "text", json_stringn(op->text,
                                                        op->text_len)))
            goto fail;
        if ((op->kind == CRDT_OP_TDEL || op->kind == CRDT_OP_LDEL) &&
            json_object_set_new(o, "len", json_integer((json_int_t)op->len)))
            goto fail;
        if ((op->kind == CRDT_OP_LINS || op->kind == CRDT_OP_LSET) &&
            json_object_set_new(o, "value", cli_value_to_json(&op->value)))
            goto fail;
        break;
    default: break;
    }
    return o;
fail:
    json_decref(o);
    return NULL;
}

int
cli_id_is_zero(const unsigned char *id)
{
    unsigned char acc = 0;

    for (size_t i = 0; i < EPOCH_ID_BYTES; i++)
        acc |= id[i];
    return acc == 0;
}

long long
cli_mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
