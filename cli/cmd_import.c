/*
 * cmd_import.c: `strata import DIR FILE|-`: a JSON-lines file of writes
 * applied in ONE write transaction, hence one change.
 *
 * A line is one op, the same shape `strata log --json` prints; it is
 * parsed by import_line.c (the layouts are in import_line.h). Blank
 * lines are skipped.
 *
 * Invariants:
 *  (1) All or nothing: the first bad line aborts the txn (exit 6, with
 *      its line number), so the replica is unchanged.
 *  (2) The input is read whole before the txn begins: the writer lock
 *      is never held while waiting on a slow pipe.
 *  (3) Bounded: a line is at most CLI_IMPORT_LINE_LIMIT bytes, the input
 *      at most INPUT_LIMIT; the change itself is bounded by
 *      CRDT_CHANGE_MAX and CRDT_CHANGE_MAX_OPS (txn.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "import_line.h"

#define INPUT_LIMIT (256u * 1024 * 1024)

enum { OPT_JSON };

static const cli_opt OPTS[] = { { "json", 0 }, { NULL, 0 } };

/* Read all of @p f; keeps (2) and (3). */
static int
slurp(char **buf_out, size_t *len_out, FILE *f, const char *name)
{
    size_t cap = 1 << 16, len = 0, n;
    char *buf = malloc(cap), *bigger;

    for (;;) {
        if (buf == NULL)
            return cli_error(CLI_EIO, "import", "out of memory");
        n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (len < cap) {
            if (ferror(f)) {
                free(buf);
                return cli_error(CLI_EIO, "import", "read %s: %s", name,
                                 strerror(errno));
            }
            if (feof(f))
                break;
            continue;
        }
        if (len > INPUT_LIMIT) {
            free(buf);
            return cli_error(CLI_EDATA, "import",
                             "%s: input larger than %u MiB", name,
                             INPUT_LIMIT >> 20);
        }
        /* one byte past the limit tells "exactly the limit" from more */
        cap = cap * 2 > INPUT_LIMIT ? INPUT_LIMIT + 1 : cap * 2;
        bigger = realloc(buf, cap);
        if (bigger == NULL)
            free(buf);
        buf = bigger;
    }
    *buf_out = buf;
    *len_out = len;
    return CLI_OK;
}

static int
apply_op(crdt_txn *t, const cli_import_op *op, const char **why)
{
    int rc = CRDT_OK;

    switch (op->kind) {
    case CLI_IMPORT_PUT:
        rc = crdt_txn_put(t, op->coll, op->doc, op->field, &op->value.v);
        break;
    case CLI_IMPORT_INCR:
        rc = crdt_txn_incr(t, op->coll, op->doc, op->field, (int64_t)op->n);
        break;
    case CLI_IMPORT_SADD:
        rc = crdt_txn_sadd(t, op->coll, op->doc, op->field, &op->value.v);
        break;
    case CLI_IMPORT_SREM:
        rc = crdt_txn_srem(t, op->coll, op->doc, op->field, &op->value.v);
        break;
    case CLI_IMPORT_DEL:
        rc = op->field ? crdt_txn_del_field(t, op->coll, op->doc, op->field)
                       : crdt_txn_del_doc(t, op->coll, op->doc);
        break;
    }
    switch (rc) {
    case CRDT_ETYPE: *why = "the field holds another type"; break;
    case CRDT_EINVAL: *why = "invalid name or value (not UTF-8?)"; break;
    case CRDT_ELIMIT: {
        static char msg[200];
        snprintf(msg, sizeof msg,
                 "too large: %sone import is one change of at most %u MiB "
                 "encoded and %u ops",
                 op->kind == CLI_IMPORT_SADD || op->kind == CLI_IMPORT_SREM
                     ? "a set element is at most 256 bytes encoded, and "
                     : "",
                 (unsigned)(CRDT_CHANGE_MAX >> 20),
                 (unsigned)CRDT_CHANGE_MAX_OPS);
        *why = msg;
        break;
    }
    default: break;
    }
    return rc;
}

/* Apply every line of @p buf in @p t; keeps (1) by stopping at the first
 * bad one. Returns an exit code; prints the error. */
static int
apply_all(crdt_txn *t, char *buf, size_t len, cli_progress *p)
{
    char what[64];
    size_t pos = 0, line_no = 0;

    while (pos < len) {
        char *line = buf + pos, *nl = memchr(line, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - line) : len - pos;
        const char *why = NULL;
        char reason[256];
        cli_import_op op;
        int rc;

        pos += n + (nl != NULL);
        line_no++;
        if ((line_no & 1023) == 0)
            cli_progress_draw(pos, len, p);
        snprintf(what, sizeof what, "import: line %zu", line_no);
        rc = cli_import_line_parse(&op, line, n, reason, sizeof reason);
        if (rc > 0)
            continue; /* blank */
        if (rc < 0)
            return cli_error(CLI_EDATA, what, "%s", reason);
        rc = apply_op(t, &op, &why);
        cli_import_op_free(&op);
        if (rc < 0 && why != NULL)
            return cli_error(CLI_EDATA, what, "%s", why);
        if (rc < 0)
            return cli_fail(what, rc);
    }
    return CLI_OK;
}

static int
read_input(char **buf, size_t *len, const char *name)
{
    FILE *f;
    int rc;

    if (strcmp(name, "-") == 0)
        return slurp(buf, len, stdin, "stdin");
    f = fopen(name, "rb");
    if (f == NULL)
        return cli_error(errno == ENOENT ? CLI_ENOTFOUND : CLI_EIO, "import",
                         "open %s: %s", name, strerror(errno));
    rc = slurp(buf, len, f, name);
    fclose(f);
    return rc;
}

static int
report(const crdt_commit_info *info, uint64_t ops, int json)
{
    if (json)
        return cli_emit(json_pack("{s:I,s:I,s:I}", "ops", (json_int_t)ops,
                                  "first_seq", (json_int_t)info->first_seq,
                                  "last_seq", (json_int_t)info->last_seq));
    printf("imported %llu ops\n", (unsigned long long)ops);
    return CLI_OK;
}

int
cmd_import(const cli_cmd *cmd, int argc, char **argv)
{
    crdt_commit_info info = { 0, 0, 0 };
    crdt_replica *r = NULL;
    crdt_txn *t = NULL;
    char *buf = NULL;
    size_t len = 0;
    uint64_t ops = 0;
    cli_args a;
    int rc;

    rc = cli_parse(&a, cmd, argc, argv, OPTS, 2, 2);
    if (rc != CLI_OK)
        return rc == CLI_HELP_SHOWN ? CLI_OK : rc;
    rc = cli_open(&r, a.pos[0], 1);
    if (rc != CLI_OK)
        return rc;
    rc = read_input(&buf, &len, a.pos[1]);
    if (rc == CLI_OK) {
        int crc = crdt_txn_begin(&t, r);
        rc = crc < 0 ? cli_fail(cmd->name, crc) : CLI_OK;
    }
    if (rc == CLI_OK) {
        cli_progress p;

        cli_progress_init(&p, "import", "bytes");
        rc = apply_all(t, buf, len, &p);
        if (rc == CLI_OK)
            cli_progress_draw(len, len, &p);
        cli_progress_end(&p);
    }
    if (rc == CLI_OK) {
        int crc;
        ops = crdt_txn_op_count(t);
        crc = crdt_txn_commit(t, &info); /* frees t on every path */
        t = NULL;
        rc = crc < 0 ? cli_fail(cmd->name, crc) : CLI_OK;
    }
    crdt_txn_abort(t);
    crdt_replica_close(r);
    free(buf);
    if (rc == CLI_OK)
        rc = report(&info, ops, cli_has(&a, OPT_JSON));
    return rc;
}
