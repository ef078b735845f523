/*
 * cmd_log.c: `strata log DIR [--json]`: the changes of the active epoch,
 * per actor in seq order (the order sync exports them).
 *
 * --json prints one object per change; its "ops" have the shape of
 * import lines, so a change's ops can be replayed with `strata import`.
 * A change is printed only once it is known sound (see held below).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* One change held back until it is known sound: the next change of its
 * actor names its hash as prev, or (the last of its actor's run) its
 * signature verifies, which covers the run through the chain. So a
 * change damaged in place is refused before it is printed, in a replica
 * of any size (the checks at open cover only small ones). */
typedef struct {
    unsigned char *buf;
    size_t len, cap;
    crdt_change c;
    int have;
} held;

static int
hold(held *h, const unsigned char *buf, size_t len)
{
    if (len > h->cap) {
        unsigned char *b = realloc(h->buf, len);
        if (b == NULL)
            return CRDT_ENOMEM;
        h->buf = b;
        h->cap = len;
    }
    memcpy(h->buf, buf, len);
    h->len = len;
    h->have = 1;
    return crdt_change_decode(&h->c, h->buf, h->len);
}

/* Print the held change if @p next (NULL: none) vouches for it or its
 * signature does. */
static int
release(held *h, const crdt_change *next, int json, const char *dir)
{
    char actor[2 * CRDT_ACTOR_BYTES + 1], why[160];
    int follows = next != NULL &&
                  memcmp(next->actor.b, h->c.actor.b, CRDT_ACTOR_BYTES) == 0;

    if (!h->have)
        return CLI_OK;
    h->have = 0;
    if (follows ? next->seq == h->c.seq + h->c.n_ops &&
                      memcmp(next->prev, h->c.hash, CRDT_HASH_BYTES) == 0
                : crdt_change_verify(&h->c) == CRDT_OK) {
        if (json)
            return print_json(&h->c);
        print_text(&h->c);
        return CLI_OK;
    }
    crdt_hex(actor, h->c.actor.b, CRDT_ACTOR_BYTES);
    snprintf(why, sizeof why, "damaged change at %s up to seq %" PRIu64
             " in the log (%s; local damage)", actor,
             h->c.seq + h->c.n_ops - 1,
             follows ? "the next change does not follow it"
                     : "bad signature");
    return cli_corrupt("log", dir, why);
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
    held h;
    int rc, json;

    memset(&h, 0, sizeof h);
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
        if ((rc = release(&h, &c, json, a.pos[0])) != CLI_OK)
            break;
        if ((rc = hold(&h, buf, len)) < 0) {
            rc = cli_fail("log: decode a change", rc);
            break;
        }
    }
    if (rc == CRDT_ENOTFOUND && (rc = release(&h, NULL, json, a.pos[0])) ==
                                    CLI_OK)
        rc = CRDT_ENOTFOUND;
    free(h.buf);
    crdt_export_end(e);
    crdt_replica_close(r);
    if (rc == CRDT_ENOTFOUND)
        return CLI_OK;
    return rc < 0 ? cli_fail(cmd->name, rc) : rc;
}
