/*
 * cmd_migrate.c: `strata migrate DIR [LENS_FILE] [--resume|--abort]
 * [--json] [--retention N]`: build the next epoch with the migration
 * builder (libepoch), as a pure compaction or through a lens file.
 *
 *   migrate DIR            compact: fold the log into the state
 *   migrate DIR LENS_FILE  compact and migrate the state through the lens
 *   migrate DIR --resume   re-run an interrupted migration from the start
 *   migrate DIR --abort    drop its marker; the epoch stays as it is
 *
 * Invariants:
 *  (1) A lens file is read and parsed before the replica is opened: a
 *      file that does not parse (exit 6, "FILE:LINE: why") or names a
 *      version the replica is not at (exit 6) changes nothing.
 *  (2) A new migration never starts over a marker: the marker means one
 *      is running or was interrupted, and only --resume or --abort may
 *      touch it (exit 3 otherwise).
 *  (3) The builder does the work in ONE write txn (libepoch builder.c):
 *      killed at any point, the replica is at the old epoch (marker
 *      present, or not yet written) or at the new one (marker gone).
 *  (4) Progress goes to stderr, and only when stderr is a terminal, so
 *      scripts see nothing but the result on stdout.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

enum { OPT_RESUME, OPT_ABORT, OPT_JSON, OPT_RETENTION };

static const cli_opt OPTS[] = { { "resume", 0 },
                                 { "abort", 0 },
                                 { "json", 0 },
                                 { "retention", 1 },
                                 { NULL, 0 } };

#define BUSY_FMT                                                          \
    "busy: a migration is in progress or was interrupted; run strata "   \
    "migrate %s --resume or --abort"

/* ---- the lens file ---- */

/* Read at most EPOCH_LENS_MAX_FILE + 1 bytes: the parser reports a file
 * past its limit with the line, so nothing more is needed. */
static int
read_lens_file(char **buf_out, size_t *len_out, const char *path)
{
    size_t cap = (size_t)EPOCH_LENS_MAX_FILE + 1, len;
    FILE *f = fopen(path, "rb");
    char *buf;

    if (f == NULL)
        return cli_error(errno == ENOENT ? CLI_ENOTFOUND : CLI_EIO,
                         "migrate", "open %s: %s", path, strerror(errno));
    buf = malloc(cap);
    if (buf == NULL) {
        fclose(f);
        return cli_error(CLI_EIO, "migrate", "out of memory");
    }
    len = fread(buf, 1, cap, f);
    if (ferror(f)) {
        int e = errno;
        fclose(f);
        free(buf);
        return cli_error(CLI_EIO, "migrate", "read %s: %s", path,
                         strerror(e));
    }
    fclose(f);
    *buf_out = buf;
    *len_out = len;
    return CLI_OK;
}

/* Parse @p path; keeps (1). */
static int
load_lens(epoch_lens **out, const char *path)
{
    epoch_lens_error err;
    char *text = NULL;
    size_t len = 0;
    int rc;

    rc = read_lens_file(&text, &len, path);
    if (rc != CLI_OK)
        return rc;
    memset(&err, 0, sizeof err);
    rc = epoch_lens_parse(out, text, len, &err);
    free(text);
    if (rc == CRDT_ECORRUPT || rc == CRDT_ELIMIT) {
        if (err.line > 0)
            return cli_error(CLI_EDATA, "migrate", "%s:%d: %s", path,
                             err.line, err.message);
        return cli_error(CLI_EDATA, "migrate", "%s: %s", path, err.message);
    }
    if (rc < 0)
        return cli_fail("migrate", rc);
    return CLI_OK;
}

/* Every section must start from the version the replica is at; keeps
 * (1) with a clearer message than the builder's CRDT_EINVAL. */
static int
check_versions(const epoch_lens *l, const epoch_info *cur, const char *path)
{
    for (size_t i = 0; i < epoch_lens_section_count(l); i++) {
        const char *coll;
        uint32_t from, to, have;

        if (epoch_lens_section(l, i, &coll, &from, &to) < 0)
            return cli_error(CLI_EDATA, "migrate", "%s: bad section", path);
        if (cli_reserved(coll))
            return cli_error(CLI_EDATA, "migrate",
                             "%s: collection \"%s\" is strata's own and "
                             "cannot be migrated", path, coll);
        have = epoch_schema_version(cur, coll);
        if (have != from)
            return cli_error(CLI_EDATA, "migrate",
                             "%s: collection \"%s\" is at version %" PRIu32
                             " in epoch %" PRIu64 ", but the lens "
                             "migrates it from version %" PRIu32,
                             path, coll, have, cur->number, from);
    }
    return CLI_OK;
}

/* ---- output ---- */

static int
report(const epoch_info *e, const epoch_marker *aborted, int json)
{
    char id[2 * EPOCH_ID_BYTES + 1];
    json_t *schema, *o;

    crdt_hex(id, e->id, EPOCH_ID_BYTES);
    if (!json) {
        if (aborted != NULL)
            printf("aborted the migration to epoch %" PRIu64
                   "; the replica stays at epoch %" PRIu64 " %s\n",
                   aborted->target_number, e->number, id);
        else
            printf("epoch %" PRIu64 " %s\n", e->number, id);
        return CLI_OK;
    }
    schema = cli_schema_json(e);
    if (schema == NULL)
        return cli_error(CLI_EIO, "output", "out of memory");
    o = json_pack("{s:{s:I,s:s},s:o}", "epoch", "number",
                  (json_int_t)e->number, "id", id, "schema", schema);
    if (o != NULL && aborted != NULL &&
        json_object_set_new(o, "aborted",
                            json_pack("{s:I}", "target_epoch",
                                      (json_int_t)aborted->target_number))) {
        json_decref(o);
        o = NULL;
    }
    return cli_emit(o);
}

/* A failure of the builder or of resume. */
static int
build_error(const char *dir, int rc)
{
    switch (rc) {
    case CRDT_EBUSY: return cli_error(CLI_EBUSY, "migrate", BUSY_FMT, dir);
    case CRDT_EINVAL:
        return cli_error(CLI_EDATA, "migrate",
                         "the lens does not fit the replica's schema");
    case CRDT_EFULL:
        return cli_error(CLI_EIO, "migrate",
                         "storage full (disk or map limit); nothing changed");
    default: return cli_fail("migrate", rc);
    }
}

/* ---- the three modes ---- */

static int
run_new(crdt_replica *r, const char *dir, const epoch_lens *l,
        const char *lens_path, const char *retention, int json)
{
    epoch_builder *b = NULL;
    epoch_info cur, next;
    cli_progress p;
    int rc;

    cli_progress_init(&p, "migrate", "entries"); /* keeps (4) */
    memset(&next, 0, sizeof next);
    rc = epoch_current(&cur, r);
    if (rc < 0)
        return cli_fail("migrate: read the current epoch", rc);
    if (l != NULL) {
        rc = check_versions(l, &cur, lens_path);
        if (rc != CLI_OK) {
            epoch_info_clear(&cur);
            return rc;
        }
    }
    epoch_info_clear(&cur);
    rc = epoch_builder_new(&b, r);
    if (rc == CRDT_OK && l != NULL)
        rc = epoch_builder_add_lens(b, l);
    if (rc == CRDT_OK) {
        if (retention != NULL)
            epoch_builder_set_retention(b, (uint32_t)strtoul(retention, NULL,
                                                             10));
        if (p.on)
            epoch_builder_set_progress(b, cli_progress_draw, &p);
        rc = epoch_builder_commit(&next, b);
        cli_progress_end(&p);
    }
    epoch_builder_free(b);
    if (rc < 0)
        return build_error(dir, rc);
    rc = report(&next, NULL, json);
    epoch_info_clear(&next);
    return rc;
}

static int
run_resume(crdt_replica *r, const char *dir, int json)
{
    cli_progress p;
    epoch_marker m;
    epoch_info next;
    int rc;

    rc = epoch_marker_get(&m, r);
    if (rc == CRDT_ENOTFOUND)
        return cli_error(CLI_ENOTFOUND, "migrate",
                         "no interrupted migration to resume");
    if (rc < 0)
        return cli_fail("migrate: read the migration marker", rc);
    if (m.custom[0] != '\0') {
        rc = cli_error(CLI_EDATA, "migrate",
                       "the interrupted migration is a custom one (\"%s\"): "
                       "only the program that started it can resume it; "
                       "run strata migrate %s --abort",
                       m.custom, dir);
        epoch_marker_clear(&m);
        return rc;
    }
    epoch_marker_clear(&m);
    memset(&next, 0, sizeof next);
    cli_progress_init(&p, "migrate", "entries"); /* keeps (4) */
    rc = epoch_migration_resume(&next, r, p.on ? cli_progress_draw : NULL,
                                &p);
    cli_progress_end(&p);
    if (rc == CRDT_ECORRUPT)
        return cli_error(CLI_EDATA, "migrate",
                         "the marker's lens does not parse; run strata "
                         "migrate %s --abort", dir);
    if (rc < 0)
        return build_error(dir, rc);
    rc = report(&next, NULL, json);
    epoch_info_clear(&next);
    return rc;
}

static int
run_abort(crdt_replica *r, int json)
{
    epoch_marker m;
    epoch_info cur;
    int rc;

    rc = epoch_marker_get(&m, r);
    if (rc == CRDT_ENOTFOUND)
        return cli_error(CLI_ENOTFOUND, "migrate", "no migration to abort");
    if (rc < 0)
        return cli_fail("migrate: read the migration marker", rc);
    rc = epoch_migration_abort(r);
    if (rc == CRDT_ENOTFOUND) /* finished or aborted meanwhile */
        rc = cli_error(CLI_ENOTFOUND, "migrate", "no migration to abort");
    else if (rc < 0)
        rc = cli_fail("migrate: abort", rc);
    else if ((rc = epoch_current(&cur, r)) < 0)
        rc = cli_fail("migrate: read the current epoch", rc);
    else {
        rc = report(&cur, &m, json);
        epoch_info_clear(&cur);
    }
    epoch_marker_clear(&m);
    return rc;
}

static int
check_retention(const cli_cmd *cmd, const char *s)
{
    long long n;

    if (cli_parse_int64(&n, s) != 0 || n < 0 || n > UINT32_MAX)
        return cli_usage(cmd, "--retention must be 0 to %u, not \"%s\"",
                         (unsigned)UINT32_MAX, s);
    return CLI_OK;
}

int
cmd_migrate(const cli_cmd *cmd, int argc, char **argv)
{
    epoch_lens *l = NULL;
    crdt_replica *r;
    epoch_marker m;
    cli_args a;
    int rc, resume, abort_, json;

    rc = cli_parse(&a, cmd, argc, argv, OPTS, 1, 2);
    if (rc != CLI_OK)
        return rc == CLI_HELP_SHOWN ? CLI_OK : rc;
    resume = cli_has(&a, OPT_RESUME);
    abort_ = cli_has(&a, OPT_ABORT);
    json = cli_has(&a, OPT_JSON);
    if (resume && abort_)
        return cli_usage(cmd, "--resume and --abort exclude each other");
    if ((resume || abort_) && a.npos > 1)
        return cli_usage(cmd, "--%s takes no LENS_FILE (the marker holds "
                              "the lens)", resume ? "resume" : "abort");
    if (cli_has(&a, OPT_RETENTION)) {
        if (resume || abort_)
            return cli_usage(cmd, "--retention applies to a new migration "
                                  "only");
        rc = check_retention(cmd, a.opt[OPT_RETENTION]);
        if (rc != CLI_OK)
            return rc;
    }
    if (a.npos > 1) {
        rc = load_lens(&l, a.pos[1]); /* keeps (1) */
        if (rc != CLI_OK)
            return rc;
    }
    rc = cli_open_ex(&r, a.pos[0], CLI_OPEN_WRITE | CLI_OPEN_NO_WARNING);
    if (rc != CLI_OK) {
        epoch_lens_free(l);
        return rc;
    }
    if (resume) {
        rc = run_resume(r, a.pos[0], json);
    } else if (abort_) {
        rc = run_abort(r, json);
    } else {
        rc = epoch_marker_get(&m, r);
        if (rc == CRDT_OK) { /* keeps (2) */
            epoch_marker_clear(&m);
            rc = cli_error(CLI_EBUSY, "migrate", BUSY_FMT, a.pos[0]);
        } else if (rc != CRDT_ENOTFOUND) {
            rc = cli_fail("migrate: read the migration marker", rc);
        } else {
            rc = run_new(r, a.pos[0], l, a.npos > 1 ? a.pos[1] : NULL,
                         a.opt[OPT_RETENTION], json);
        }
    }
    crdt_replica_close(r);
    epoch_lens_free(l);
    return rc;
}
