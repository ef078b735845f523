/*
 * cmd_import.c: `strata import DIR FILE|-`: a JSON-lines file of writes
 * applied in ONE write transaction, hence one change.
 *
 * A line is one op:
 *   {"op":"put","coll":C,"doc":D,"field":F,"value":V}
 *   {"op":"incr","coll":C,"doc":D,"field":F,"n":N}     ("value" also)
 *   {"op":"sadd"|"srem","coll":C,"doc":D,"field":F,"value":V}
 *   {"op":"del","coll":C,"doc":D}        {"op":"del",...,"field":F}
 * the same shape `strata log --json` prints. Blank lines are skipped.
 *
 * Invariants:
 *  (1) All or nothing: the first bad line aborts the txn (exit 6, with
 *      its line number), so the replica is unchanged.
 *  (2) The input is read whole before the txn begins: the writer lock
 *      is never held while waiting on a slow pipe.
 *  (3) Bounded: a line is at most LINE_LIMIT bytes, the input at most
 *      INPUT_LIMIT; the change itself is bounded by CRDT_CHANGE_MAX and
 *      CRDT_CHANGE_MAX_OPS (txn.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define LINE_LIMIT (1024u * 1024)
#define INPUT_LIMIT (256u * 1024 * 1024)

enum { OPT_JSON };

static const cli_opt OPTS[] = { { "json", 0 }, { NULL, 0 } };

typedef enum { OP_PUT, OP_INCR, OP_SADD, OP_SREM, OP_DEL } op_kind;

typedef struct {
    op_kind kind;
    const char *coll, *doc, *field; /* point into the line's json_t */
    json_t *value;                  /* put, sadd, srem */
    json_int_t n;                   /* incr */
} import_op;

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

/* A name field: a string of 1..CRDT_NAME_MAX bytes without NUL. */
static int
get_name(const char **out, json_t *o, const char *key, int required,
         const char **why)
{
    json_t *s = json_object_get(o, key);

    *out = NULL;
    if (s == NULL) {
        if (!required)
            return 0;
        *why = key[0] == 'c' ? "missing \"coll\""
             : key[0] == 'd' ? "missing \"doc\"" : "missing \"field\"";
        return -1;
    }
    if (!json_is_string(s) || json_string_length(s) == 0 ||
        json_string_length(s) > CRDT_NAME_MAX ||
        strlen(json_string_value(s)) != json_string_length(s)) {
        *why = key[0] == 'c' ? "\"coll\" must be a name of 1 to 64 bytes"
             : key[0] == 'd' ? "\"doc\" must be a name of 1 to 64 bytes"
                             : "\"field\" must be a name of 1 to 64 bytes";
        return -1;
    }
    *out = json_string_value(s);
    return 0;
}

static int
parse_kind(op_kind *out, json_t *o, const char **why)
{
    static const char *const NAMES[] = { "put", "incr", "sadd", "srem",
                                         "del" };
    const char *s = json_string_value(json_object_get(o, "op"));

    if (s == NULL) {
        *why = "missing \"op\" (put, incr, sadd, srem or del)";
        return -1;
    }
    for (int i = 0; i < 5; i++)
        if (strcmp(s, NAMES[i]) == 0) {
            *out = (op_kind)i;
            return 0;
        }
    *why = "unknown \"op\" (put, incr, sadd, srem or del)";
    return -1;
}

/* Check the shape of one op object; the library checks the rest. */
static int
parse_op(import_op *op, json_t *o, const char **why)
{
    const char *key;
    json_t *v, *n;

    if (!json_is_object(o)) {
        *why = "not a JSON object";
        return -1;
    }
    json_object_foreach(o, key, v) {
        if (strcmp(key, "op") && strcmp(key, "coll") && strcmp(key, "doc") &&
            strcmp(key, "field") && strcmp(key, "value") && strcmp(key, "n")) {
            *why = "unknown key (op, coll, doc, field, value, n)";
            return -1;
        }
    }
    if (parse_kind(&op->kind, o, why) != 0 ||
        get_name(&op->coll, o, "coll", 1, why) != 0 ||
        get_name(&op->doc, o, "doc", 1, why) != 0 ||
        get_name(&op->field, o, "field", op->kind != OP_DEL, why) != 0)
        return -1;
    if (cli_reserved(op->coll)) {
        *why = "reserved collection";
        return -1;
    }
    v = json_object_get(o, "value");
    n = json_object_get(o, "n");
    switch (op->kind) {
    case OP_INCR:
        if ((v != NULL) == (n != NULL) || !json_is_integer(n ? n : v)) {
            *why = "incr needs an integer \"n\"";
            return -1;
        }
        op->n = json_integer_value(n ? n : v);
        return 0;
    case OP_DEL:
        if (v != NULL || n != NULL) {
            *why = "del takes no \"value\" or \"n\"";
            return -1;
        }
        return 0;
    default:
        if (v == NULL || n != NULL) {
            *why = "needs a \"value\" (and no \"n\")";
            return -1;
        }
        op->value = v;
        return 0;
    }
}

static int
apply_op(crdt_txn *t, const import_op *op, const char **why)
{
    cli_value cv;
    int rc = CRDT_OK;

    memset(&cv, 0, sizeof cv);
    if (op->kind == OP_PUT || op->kind == OP_SADD || op->kind == OP_SREM) {
        if (cli_value_from_json(&cv, op->value, why) != CLI_OK)
            return CRDT_EINVAL;
    }
    switch (op->kind) {
    case OP_PUT: rc = crdt_txn_put(t, op->coll, op->doc, op->field, &cv.v);
        break;
    case OP_INCR:
        rc = crdt_txn_incr(t, op->coll, op->doc, op->field, (int64_t)op->n);
        break;
    case OP_SADD: rc = crdt_txn_sadd(t, op->coll, op->doc, op->field, &cv.v);
        break;
    case OP_SREM: rc = crdt_txn_srem(t, op->coll, op->doc, op->field, &cv.v);
        break;
    case OP_DEL:
        rc = op->field ? crdt_txn_del_field(t, op->coll, op->doc, op->field)
                       : crdt_txn_del_doc(t, op->coll, op->doc);
        break;
    }
    cli_value_free(&cv);
    switch (rc) {
    case CRDT_ETYPE: *why = "the field holds another type"; break;
    case CRDT_EINVAL: *why = "invalid name or value (not UTF-8?)"; break;
    case CRDT_ELIMIT: {
        static char msg[200];
        snprintf(msg, sizeof msg,
                 "too large: %sone import is one change of at most %u MiB "
                 "encoded and %u ops",
                 op->kind == OP_SADD || op->kind == OP_SREM
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

static int
blank(const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
            return 0;
    return 1;
}

/* Apply every line of @p buf in @p t; keeps (1) by stopping at the first
 * bad one. Returns an exit code; prints the error. */
static int
apply_all(crdt_txn *t, char *buf, size_t len)
{
    char what[64];
    size_t pos = 0, line_no = 0;

    while (pos < len) {
        char *line = buf + pos, *nl = memchr(line, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - line) : len - pos;
        const char *why = NULL;
        json_error_t err;
        import_op op;
        json_t *o;
        int rc;

        pos += n + (nl != NULL);
        line_no++;
        snprintf(what, sizeof what, "import: line %zu", line_no);
        if (n > LINE_LIMIT)
            return cli_error(CLI_EDATA, what, "longer than %u bytes",
                             LINE_LIMIT);
        if (blank(line, n))
            continue;
        o = json_loadb(line, n, JSON_ALLOW_NUL, &err);
        if (o == NULL)
            return cli_error(CLI_EDATA, what, "invalid JSON: %s", err.text);
        memset(&op, 0, sizeof op);
        if (parse_op(&op, o, &why) != 0) {
            json_decref(o);
            return cli_error(CLI_EDATA, what, "%s", why);
        }
        rc = apply_op(t, &op, &why);
        json_decref(o);
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
    if (rc == CLI_OK)
        rc = apply_all(t, buf, len);
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
