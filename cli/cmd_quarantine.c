/*
 * cmd_quarantine.c: `strata quarantine DIR [ls|export|apply] [--json]`:
 * the ops that could not be rebased onto the current epoch (a field the
 * lens removed, a value it could not convert, a stale peer rejected
 * beyond policy). They are kept, never dropped, until re-applied.
 *
 *   ls      one line per op: actor, seq, reason (a JSON string), the op
 *           as JSON; --json: one array of the export objects
 *   export  JSON lines {"actor","seq","hlc","epoch","reason","op"}, where
 *           "op" has the shape of an import line (as in `log --json`)
 *   apply   re-apply them as NEW local writes in the current schema (one
 *           change); those that still do not fit stay: "applied N, kept M"
 *
 * ls and export only read; apply writes (busy during a migration).
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

enum { OPT_JSON };

static const cli_opt OPTS[] = { { "json", 0 }, { NULL, 0 } };

typedef enum { Q_LS, Q_EXPORT, Q_APPLY } q_mode;

typedef struct {
    q_mode mode;
    int json;
    json_t *all; /* ls --json */
    int rc;      /* CLI exit code of a failed output */
} q_ctx;

static json_t *
quarantined_json(const epoch_quarantined *q)
{
    char actor[2 * CRDT_ACTOR_BYTES + 1], epoch[2 * EPOCH_ID_BYTES + 1];
    json_t *op = cli_op_to_json(&q->op);

    if (op == NULL)
        return NULL;
    crdt_hex(actor, q->actor.b, CRDT_ACTOR_BYTES);
    crdt_hex(epoch, q->epoch_id, EPOCH_ID_BYTES);
    return json_pack("{s:s,s:I,s:I,s:s,s:s,s:o}", "actor", actor, "seq",
                     (json_int_t)q->seq, "hlc", (json_int_t)q->hlc, "epoch",
                     epoch, "reason", q->reason ? q->reason : "", "op", op);
}

static int
visit(const epoch_quarantined *q, void *p)
{
    q_ctx *c = p;
    char actor[2 * CRDT_ACTOR_BYTES + 1];
    json_t *o;

    if (c->mode == Q_LS && !c->json) {
        json_t *op = cli_op_to_json(&q->op);
        json_t *reason = json_string(q->reason ? q->reason : "");
        char *ops = op ? json_dumps(op, JSON_COMPACT | JSON_ENCODE_ANY)
                       : NULL;
        char *rs = reason ? json_dumps(reason, JSON_ENCODE_ANY) : NULL;

        crdt_hex(actor, q->actor.b, CRDT_ACTOR_BYTES);
        if (ops != NULL && rs != NULL)
            printf("%s %" PRIu64 " %s %s\n", actor, q->seq, rs, ops);
        else
            c->rc = cli_error(CLI_EIO, "quarantine", "out of memory");
        json_decref(op);
        json_decref(reason);
        free(ops);
        free(rs);
        return c->rc != CLI_OK;
    }
    o = quarantined_json(q);
    if (c->mode == Q_LS) {
        if (o == NULL || json_array_append_new(c->all, o) != 0)
            c->rc = cli_error(CLI_EIO, "quarantine", "out of memory");
    } else {
        c->rc = cli_emit(o);
    }
    return c->rc != CLI_OK;
}

static int
run_list(crdt_replica *r, q_mode mode, int json)
{
    q_ctx c = { mode, json, NULL, CLI_OK };
    int rc;

    if (mode == Q_LS && json) {
        c.all = json_array();
        if (c.all == NULL)
            return cli_error(CLI_EIO, "quarantine", "out of memory");
    }
    rc = epoch_quarantine_list(r, visit, &c);
    if (c.rc != CLI_OK) {
        json_decref(c.all);
        return c.rc;
    }
    if (rc < 0) {
        json_decref(c.all);
        return cli_fail("quarantine", rc);
    }
    return c.all != NULL ? cli_emit(c.all) : CLI_OK;
}

static int
run_apply(crdt_replica *r, int json)
{
    uint64_t applied = 0, kept = 0;
    int rc = epoch_quarantine_apply(&applied, &kept, r);

    if (rc < 0)
        return cli_fail("quarantine: apply", rc);
    if (json)
        return cli_emit(json_pack("{s:I,s:I}", "applied",
                                  (json_int_t)applied, "kept",
                                  (json_int_t)kept));
    printf("applied %" PRIu64 ", kept %" PRIu64 "\n", applied, kept);
    return CLI_OK;
}

int
cmd_quarantine(const cli_cmd *cmd, int argc, char **argv)
{
    q_mode mode = Q_LS;
    crdt_replica *r;
    cli_args a;
    int rc;

    rc = cli_parse(&a, cmd, argc, argv, OPTS, 1, 2);
    if (rc != CLI_OK)
        return rc == CLI_HELP_SHOWN ? CLI_OK : rc;
    if (a.npos > 1) {
        if (strcmp(a.pos[1], "ls") == 0)
            mode = Q_LS;
        else if (strcmp(a.pos[1], "export") == 0)
            mode = Q_EXPORT;
        else if (strcmp(a.pos[1], "apply") == 0)
            mode = Q_APPLY;
        else
            return cli_usage(cmd, "unknown action \"%s\" (ls, export or "
                                  "apply)", a.pos[1]);
    }
    rc = cli_open(&r, a.pos[0], mode == Q_APPLY);
    if (rc != CLI_OK)
        return rc;
    if (mode == Q_APPLY)
        rc = run_apply(r, cli_has(&a, OPT_JSON));
    else
        rc = run_list(r, mode, cli_has(&a, OPT_JSON));
    crdt_replica_close(r);
    return rc;
}
