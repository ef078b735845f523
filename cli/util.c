/*
 * util.c: error reporting, exit codes, opening a replica, names.
 *
 * Every failure goes through cli_error(), so each one is a single line
 * "strata: <what failed>: <why>" and maps to one exit code of CLI.md.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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
cli_open(crdt_replica **out, const char *dir, int write)
{
    crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
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
    o.read_only = !write;
    rc = crdt_replica_open(out, dir, &o);
    switch (rc) {
    case CRDT_OK: return CLI_OK;
    case CRDT_ENOTFOUND:
        return cli_error(CLI_ENOTFOUND, what, "not a replica");
    case CRDT_EPERM:
        return cli_error(CLI_EIO, what, "permission denied");
    case CRDT_ECORRUPT:
        return cli_error(CLI_EDATA, what, "corrupt replica");
    default:
        return cli_fail(what, rc);
    }
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
