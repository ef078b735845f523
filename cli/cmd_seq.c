/*
 * cmd_seq.c: the writes of the sequence fields, each one write
 * transaction (one change of one op):
 *
 *   strata text DIR COLL DOC FIELD insert POS STRING
 *   strata text DIR COLL DOC FIELD delete POS LEN
 *   strata list DIR COLL DOC FIELD insert POS VALUE
 *   strata list DIR COLL DOC FIELD delete POS LEN
 *   strata list DIR COLL DOC FIELD set POS VALUE
 *
 * POS counts code points of a text (elements of a list) from 0 and may
 * equal the length for an insert; LEN is 1 or more. A position or range
 * past the end is a usage error (exit 1) that records nothing, like an
 * empty STRING. A delete or set on a field that is absent exits 2.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

typedef enum { S_INSERT, S_DELETE, S_SET } seq_verb;

typedef struct {
    int list;                      /* 0: text */
    seq_verb verb;
    const char *coll, *doc, *field;
    unsigned long long pos, len;   /* len: delete */
    const char *text;              /* text insert */
    cli_value value;               /* list insert, set */
} seq_req;

/* A strict decimal count: digits only, at most 2^40. */
static int
parse_count(unsigned long long *out, const char *s)
{
    char *end;

    if (s[0] < '0' || s[0] > '9')
        return -1;
    errno = 0;
    *out = strtoull(s, &end, 10);
    if (*end != 0 || errno != 0 || *out > (1ULL << 40))
        return -1;
    return 0;
}

static int
build(seq_req *w, const cli_cmd *cmd, const cli_args *a)
{
    const char *verb = a->pos[4], *why = NULL;
    int rc;

    w->list = strcmp(cmd->name, "list") == 0;
    w->coll = a->pos[1];
    w->doc = a->pos[2];
    w->field = a->pos[3];
    rc = cli_check_names(cmd, w->coll, w->doc, w->field);
    if (rc != CLI_OK)
        return rc;
    if (cli_reserved(w->coll))
        return cli_error(CLI_EUSAGE, cmd->name, "reserved collection \"%s\"",
                         w->coll);
    if (strcmp(verb, "insert") == 0)
        w->verb = S_INSERT;
    else if (strcmp(verb, "delete") == 0)
        w->verb = S_DELETE;
    else if (w->list && strcmp(verb, "set") == 0)
        w->verb = S_SET;
    else
        return cli_usage(cmd, "unknown operation \"%s\" (%s)", verb,
                         w->list ? "insert, delete or set"
                                 : "insert or delete");
    if (parse_count(&w->pos, a->pos[5]) != 0)
        return cli_usage(cmd, "POS must be a count of 0 or more, not \"%s\"",
                         a->pos[5]);
    switch (w->verb) {
    case S_DELETE:
        if (parse_count(&w->len, a->pos[6]) != 0 || w->len == 0)
            return cli_usage(cmd, "LEN must be a count of 1 or more, not "
                                  "\"%s\"",
                             a->pos[6]);
        return CLI_OK;
    case S_INSERT:
    case S_SET:
        break;
    }
    if (w->verb == S_INSERT && !w->list) {
        w->text = a->pos[6];
        if (w->text[0] == 0)
            return cli_usage(cmd, "STRING must not be empty");
        return CLI_OK;
    }
    rc = cli_value_parse_arg(&w->value, a->pos[6], &why);
    return rc == CLI_OK ? CLI_OK : cli_usage(cmd, "%s", why);
}

static int
apply(crdt_txn *t, const seq_req *w)
{
    if (!w->list)
        return w->verb == S_INSERT
                   ? crdt_txn_text_insert(t, w->coll, w->doc, w->field,
                                          w->pos, w->text, strlen(w->text))
                   : crdt_txn_text_delete(t, w->coll, w->doc, w->field,
                                          w->pos, w->len);
    switch (w->verb) {
    case S_INSERT:
        return crdt_txn_list_insert(t, w->coll, w->doc, w->field, w->pos,
                                    &w->value.v);
    case S_DELETE:
        return crdt_txn_list_delete(t, w->coll, w->doc, w->field, w->pos,
                                    w->len);
    case S_SET:
        return crdt_txn_list_set(t, w->coll, w->doc, w->field, w->pos,
                                 &w->value.v);
    }
    return CRDT_EINVAL;
}

/* The length of the sequence now, for the error message; 0 if unknown. */
static unsigned long long
seq_len(crdt_replica *r, const seq_req *w)
{
    crdt_read *rd;
    uint64_t n = 0;

    if (crdt_read_begin(&rd, r) < 0)
        return 0;
    if (crdt_read_seq_len(&n, rd, w->coll, w->doc, w->field) < 0)
        n = 0;
    crdt_read_end(rd);
    return n;
}

static int
op_error(const cli_cmd *cmd, crdt_replica *r, const seq_req *w, int rc)
{
    const char *unit = w->list ? "elements" : "code points";

    switch (rc) {
    case CRDT_ETYPE:
        return cli_error(CLI_EUSAGE, cmd->name,
                         "field \"%s\" holds another type", w->field);
    case CRDT_ENOTFOUND:
        return cli_error(CLI_ENOTFOUND, cmd->name, "no %s field \"%s\"",
                         w->list ? "list" : "text", w->field);
    case CRDT_EINVAL:
        if (w->verb == S_INSERT && !w->list)
            return cli_error(CLI_EUSAGE, cmd->name,
                             "position %llu is past the end (%llu %s), or "
                             "the text is not UTF-8",
                             w->pos, seq_len(r, w), unit);
        if (w->verb == S_DELETE)
            return cli_error(CLI_EUSAGE, cmd->name,
                             "range %llu+%llu is past the end (%llu %s)",
                             w->pos, w->len, seq_len(r, w), unit);
        return cli_error(CLI_EUSAGE, cmd->name,
                         "position %llu is past the end (%llu %s), or the "
                         "value is invalid",
                         w->pos, seq_len(r, w), unit);
    case CRDT_ELIMIT:
        return cli_error(CLI_EUSAGE, cmd->name, "%s too large",
                         w->list ? "value" : "text");
    default: return cli_fail(cmd->name, rc);
    }
}

int
cmd_seq(const cli_cmd *cmd, int argc, char **argv)
{
    seq_req w;
    crdt_replica *r;
    crdt_txn *t;
    cli_args a;
    int rc;

    memset(&w, 0, sizeof w);
    rc = cli_parse(&a, cmd, argc, argv, NULL, 7, 7);
    if (rc != CLI_OK)
        return rc == CLI_HELP_SHOWN ? CLI_OK : rc;
    rc = build(&w, cmd, &a);
    if (rc == CLI_OK)
        rc = cli_open(&r, a.pos[0], 1);
    if (rc != CLI_OK) {
        cli_value_free(&w.value);
        return rc;
    }
    rc = crdt_txn_begin(&t, r);
    if (rc < 0) {
        rc = cli_fail(cmd->name, rc);
    } else if ((rc = apply(t, &w)) < 0) {
        crdt_txn_abort(t);
        rc = op_error(cmd, r, &w, rc);
    } else {
        rc = crdt_txn_commit(t, NULL);
        rc = rc < 0 ? cli_fail(cmd->name, rc) : CLI_OK;
    }
    crdt_replica_close(r);
    cli_value_free(&w.value);
    return rc;
}
