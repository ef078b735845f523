/*
 * cmd_write.c: the one-op writes: put, incr, sadd, srem, del. Each is
 * one write transaction, hence one change of one op.
 *
 * Collections starting with '$' belong to the tool (the member set) and
 * are refused here. `del` of something absent exits 2 and records
 * nothing: a delete only removes what this replica has seen, so the op
 * would do nothing anywhere.
 */
#include <string.h>

#include "cli.h"

typedef enum { W_PUT, W_INCR, W_SADD, W_SREM, W_DEL } write_kind;

typedef struct {
    write_kind kind;
    const char *coll, *doc, *field; /* field NULL: del of a document */
    cli_value value;                /* put, sadd, srem */
    long long delta;                /* incr */
} write_req;

static int
kind_of(const char *name, write_kind *out)
{
    static const char *const NAMES[] = { "put", "incr", "sadd", "srem",
                                         "del" };

    for (int i = 0; i < 5; i++)
        if (strcmp(name, NAMES[i]) == 0) {
            *out = (write_kind)i;
            return 0;
        }
    return -1;
}

/* Check the arguments and fill @p w; prints the error. */
static int
build_request(write_req *w, const cli_cmd *cmd, const cli_args *a)
{
    const char *why = NULL;
    int rc;

    w->coll = a->pos[1];
    w->doc = a->pos[2];
    w->field = a->npos > 3 ? a->pos[3] : NULL;
    rc = cli_check_names(cmd, w->coll, w->doc, w->field);
    if (rc != CLI_OK)
        return rc;
    if (cli_reserved(w->coll))
        return cli_error(CLI_EUSAGE, cmd->name, "reserved collection \"%s\"",
                         w->coll);
    if (w->kind == W_INCR) {
        if (cli_parse_int64(&w->delta, a->pos[4]) != 0)
            return cli_usage(cmd, "N must be a 64-bit integer, not \"%s\"",
                             a->pos[4]);
    } else if (w->kind != W_DEL) {
        rc = cli_value_parse_arg(&w->value, a->pos[4], &why);
        if (rc != CLI_OK)
            return cli_usage(cmd, "%s", why);
    }
    return CLI_OK;
}

/* For del: is the document (or field) there? */
static int
present(crdt_replica *r, const write_req *w)
{
    crdt_read *rd;
    crdt_field f;
    int rc;

    rc = crdt_read_begin(&rd, r);
    if (rc < 0)
        return rc;
    if (w->field != NULL)
        rc = crdt_read_field(&f, rd, w->coll, w->doc, w->field);
    else
        rc = crdt_read_doc(rd, w->coll, w->doc, NULL, NULL);
    crdt_read_end(rd);
    return rc;
}

static int
apply(crdt_txn *t, const write_req *w)
{
    switch (w->kind) {
    case W_PUT: return crdt_txn_put(t, w->coll, w->doc, w->field, &w->value.v);
    case W_INCR:
        return crdt_txn_incr(t, w->coll, w->doc, w->field,
                             (int64_t)w->delta);
    case W_SADD:
        return crdt_txn_sadd(t, w->coll, w->doc, w->field, &w->value.v);
    case W_SREM:
        return crdt_txn_srem(t, w->coll, w->doc, w->field, &w->value.v);
    case W_DEL:
        if (w->field != NULL)
            return crdt_txn_del_field(t, w->coll, w->doc, w->field);
        return crdt_txn_del_doc(t, w->coll, w->doc);
    }
    return CRDT_EINVAL;
}

static int
op_error(const cli_cmd *cmd, const write_req *w, int rc)
{
    switch (rc) {
    case CRDT_ETYPE:
        return cli_error(CLI_EUSAGE, cmd->name,
                         "field \"%s\" holds another type", w->field);
    case CRDT_EINVAL:
        return cli_error(CLI_EUSAGE, cmd->name,
                         "invalid name or value (names are 1 to %d bytes "
                         "of UTF-8)", CRDT_NAME_MAX);
    case CRDT_ELIMIT:
        return cli_error(CLI_EUSAGE, cmd->name, "value too large%s",
                         w->kind == W_SADD || w->kind == W_SREM
                             ? " for a set element" : "");
    case CRDT_EPERM: /* the authority rules (docs/security.md) */
        return cli_error(CLI_EREJECTED, cmd->name,
                         "not permitted: this key is not a writer of the "
                         "space (a reader, removed, or not a member)");
    default: return cli_fail(cmd->name, rc);
    }
}

static int
run_write(crdt_replica *r, const cli_cmd *cmd, const write_req *w)
{
    crdt_txn *t;
    int rc;

    if (w->kind == W_DEL) {
        rc = present(r, w);
        if (rc == CRDT_ENOTFOUND)
            return cli_error(CLI_ENOTFOUND, cmd->name, "not found");
        if (rc < 0)
            return cli_fail(cmd->name, rc);
    }
    rc = crdt_txn_begin(&t, r);
    if (rc < 0)
        return cli_fail(cmd->name, rc);
    rc = apply(t, w);
    if (rc < 0) {
        crdt_txn_abort(t);
        return op_error(cmd, w, rc);
    }
    rc = crdt_txn_commit(t, NULL);
    return rc < 0 ? cli_fail(cmd->name, rc) : CLI_OK;
}

int
cmd_write(const cli_cmd *cmd, int argc, char **argv)
{
    write_req w;
    crdt_replica *r;
    cli_args a;
    int rc;

    memset(&w, 0, sizeof w);
    if (kind_of(cmd->name, &w.kind) != 0)
        return cli_error(CLI_EUSAGE, cmd->name, "unknown write");
    rc = cli_parse(&a, cmd, argc, argv, NULL, w.kind == W_DEL ? 3 : 5,
                   w.kind == W_DEL ? 4 : 5);
    if (rc != CLI_OK)
        return rc == CLI_HELP_SHOWN ? CLI_OK : rc;
    rc = build_request(&w, cmd, &a);
    if (rc == CLI_OK)
        rc = cli_open(&r, a.pos[0], 1);
    if (rc == CLI_OK) {
        rc = run_write(r, cmd, &w);
        crdt_replica_close(r);
    }
    cli_value_free(&w.value);
    return rc;
}
