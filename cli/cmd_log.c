/*
 * cmd_log.c: `strata log DIR [--json]`: the changes of the active epoch,
 * per actor in seq order (the order sync exports them).
 *
 * --json prints one object per change; its "ops" have the shape of
 * import lines, so a change's ops can be replayed with `strata import`.
 */
#include <inttypes.h>
#include <time.h>

#include "cli.h"

enum { OPT_JSON };

static const cli_opt OPTS[] = { { "json", 0 }, { NULL, 0 } };

static int
ops_json(json_t **out, const crdt_change *c)
{
    crdt_op_iter it;
    crdt_op op;
    json_t *a = json_array();
    int rc;

    if (a == NULL)
        return CRDT_ENOMEM;
    crdt_op_iter_init(&it, c);
    while ((rc = crdt_op_iter_next(&op, &it)) == CRDT_OK)
        if (json_array_append_new(a, cli_op_to_json(&op)) != 0) {
            rc = CRDT_ENOMEM;
            break;
        }
    if (rc != CRDT_ENOTFOUND) {
        json_decref(a);
        return rc;
    }
    *out = a;
    return CRDT_OK;
}

static int
print_json(const crdt_change *c)
{
    char actor[2 * CRDT_ACTOR_BYTES + 1], epoch[2 * CRDT_HASH_BYTES + 1];
    char hash[2 * CRDT_HASH_BYTES + 1];
    json_t *ops = NULL;
    int rc;

    rc = ops_json(&ops, c);
    if (rc == CRDT_ENOMEM)
        return cli_fail("log: decode a change", rc);
    if (rc < 0)
        return cli_corrupt("log", cli_fault_dir(), "a damaged op in this "
                           "replica's own log (local damage)");
    crdt_hex(actor, c->actor.b, CRDT_ACTOR_BYTES);
    crdt_hex(epoch, c->epoch_id, CRDT_HASH_BYTES);
    crdt_hex(hash, c->hash, CRDT_HASH_BYTES);
    return cli_emit(json_pack("{s:s,s:I,s:I,s:I,s:s,s:s,s:o}", "actor", actor,
                              "seq", (json_int_t)c->seq, "last_seq",
                              (json_int_t)(c->seq + c->n_ops - 1), "hlc",
                              (json_int_t)c->hlc, "epoch", epoch, "hash",
                              hash, "ops", ops));
}

static void
print_text(const crdt_change *c)
{
    char actor[2 * CRDT_ACTOR_BYTES + 1], hash[2 * CRDT_HASH_BYTES + 1];
    char when[32] = "?";
    uint64_t ms = c->hlc >> 16;
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;

    crdt_hex(actor, c->actor.b, CRDT_ACTOR_BYTES);
    crdt_hex(hash, c->hash, CRDT_HASH_BYTES);
    if (gmtime_r(&secs, &tm) != NULL)
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    printf("%s %" PRIu64 "-%" PRIu64 " %sZ hlc=%" PRIu64 " ops=%" PRIu64
           " hash=%.12s\n",
           actor, c->seq, c->seq + c->n_ops - 1, when, c->hlc, c->n_ops,
           hash);
}

int
cmd_log(const cli_cmd *cmd, int argc, char **argv)
{
    const unsigned char *buf;
    crdt_export *e;
    crdt_replica *r;
    crdt_change c;
    size_t len;
    cli_args a;
    int rc, json;

    rc = cli_parse(&a, cmd, argc, argv, OPTS, 1, 1);
    if (rc != CLI_OK)
        return rc == CLI_HELP_SHOWN ? CLI_OK : rc;
    json = cli_has(&a, OPT_JSON);
    rc = cli_open(&r, a.pos[0], 0);
    if (rc != CLI_OK)
        return rc;
    rc = crdt_export_begin(&e, r, NULL);
    if (rc < 0) {
        crdt_replica_close(r);
        return cli_fail(cmd->name, rc);
    }
    while ((rc = crdt_export_next(e, &buf, &len)) == CRDT_OK) {
        rc = crdt_change_decode(&c, buf, len);
        if (rc < 0) {
            /* it was checked when it was stored: the damage is local */
            rc = rc == CRDT_ENOMEM
                     ? cli_fail("log: decode a change", rc)
                     : cli_corrupt("log", a.pos[0], "a damaged change in "
                                   "this replica's own log (local damage)");
            break;
        }
        if (json) {
            rc = print_json(&c);
            if (rc != CLI_OK)
                break;
        } else {
            print_text(&c);
        }
    }
    crdt_export_end(e);
    crdt_replica_close(r);
    if (rc == CRDT_ENOTFOUND)
        return CLI_OK;
    return rc < 0 ? cli_fail(cmd->name, rc) : rc;
}
