/*
 * cmd_status.c: `strata status DIR [--json]`: identity, epoch, version
 * vector, state hash and counters, all from one read snapshot.
 *
 * "docs" counts the live documents of user collections (the reserved
 * '$' ones, such as the member set, are left out, as in ls and export).
 * "schema" and "quarantined" are filled in by the epoch layer's commands
 * once they exist; until then {} and 0.
 */
#include <inttypes.h>
#include <string.h>

#include "cli.h"

enum { OPT_JSON };

static const cli_opt OPTS[] = { { "json", 0 }, { NULL, 0 } };

typedef struct {
    crdt_stats stats;
    json_t *vv; /* {actor hex: seq} */
    uint64_t docs;
} status_info;

static int
count_doc(const char *name, size_t len, void *p)
{
    (void)name;
    (void)len;
    (*(uint64_t *)p)++;
    return 0;
}

typedef struct {
    crdt_read *rd;
    uint64_t n;
    int rc;
} count_ctx;

static int
count_coll(const char *name, size_t len, void *p)
{
    count_ctx *c = p;

    (void)len;
    if (cli_reserved(name))
        return 0;
    c->rc = crdt_read_docs(c->rd, name, count_doc, &c->n);
    return c->rc != 0;
}

static int
vv_json(json_t **out, crdt_read *rd)
{
    char hex[2 * CRDT_ACTOR_BYTES + 1];
    crdt_actor actor;
    crdt_vv *vv;
    uint64_t seq;
    json_t *o;
    int rc;

    rc = crdt_read_vv(&vv, rd);
    if (rc < 0)
        return rc;
    o = json_object();
    for (size_t i = 0; o != NULL && i < crdt_vv_count(vv); i++) {
        crdt_vv_entry(vv, i, &actor, &seq);
        crdt_hex(hex, actor.b, sizeof actor.b);
        if (json_object_set_new(o, hex, json_integer((json_int_t)seq))) {
            json_decref(o);
            o = NULL;
        }
    }
    crdt_vv_free(vv);
    if (o == NULL)
        return CRDT_ENOMEM;
    *out = o;
    return CRDT_OK;
}

static int
gather(status_info *s, crdt_replica *r)
{
    count_ctx c = { NULL, 0, CRDT_OK };
    int rc;

    rc = crdt_read_begin(&c.rd, r);
    if (rc < 0)
        return rc;
    rc = crdt_read_stats(&s->stats, c.rd);
    if (rc == CRDT_OK)
        rc = vv_json(&s->vv, c.rd);
    if (rc == CRDT_OK) {
        rc = crdt_read_collections(c.rd, count_coll, &c);
        if (c.rc < 0)
            rc = c.rc;
        s->docs = c.n;
    }
    crdt_read_end(c.rd);
    return rc;
}

static void
print_text(const status_info *s, const char *space_hex,
           const char *pk_hex, const char *epoch_hex, const char *hash_hex)
{
    const char *key;
    json_t *v;
    int first = 1;

    printf("space_id:    %s\n", space_hex);
    printf("public_key:  %s\n", pk_hex);
    printf("epoch:       %" PRIu64 " (%s)\n", s->stats.epoch_number,
           epoch_hex);
    printf("schema:      (none)\n");
    printf("vv:         ");
    json_object_foreach(s->vv, key, v) {
        printf("%s%s=%" JSON_INTEGER_FORMAT, first ? " " : ", ", key,
               json_integer_value(v));
        first = 0;
    }
    printf("%s\n", first ? " (empty)" : "");
    printf("state_hash:  %s\n", hash_hex);
    printf("ops_in_log:  %" PRIu64 " (%" PRIu64 " changes, %" PRIu64
           " pending)\n",
           s->stats.ops_in_log, s->stats.changes_in_log, s->stats.pending);
    printf("docs:        %" PRIu64 "\n", s->docs);
    printf("quarantined: 0\n");
    printf("upgrading:   no\n");
}

int
cmd_status(const cli_cmd *cmd, int argc, char **argv)
{
    unsigned char space[CRDT_SPACE_ID_BYTES], pk[CRDT_PUBKEY_BYTES];
    char space_hex[2 * sizeof space + 1], pk_hex[2 * sizeof pk + 1];
    char epoch_hex[2 * CRDT_HASH_BYTES + 1], hash_hex[2 * CRDT_HASH_BYTES + 1];
    status_info s;
    crdt_replica *r;
    cli_args a;
    int rc;

    rc = cli_parse(&a, cmd, argc, argv, OPTS, 1, 1);
    if (rc != CLI_OK)
        return rc == CLI_HELP_SHOWN ? CLI_OK : rc;
    rc = cli_open(&r, a.pos[0], 0);
    if (rc != CLI_OK)
        return rc;
    memset(&s, 0, sizeof s);
    rc = gather(&s, r);
    if (rc < 0) {
        crdt_replica_close(r);
        return cli_fail(cmd->name, rc);
    }
    crdt_replica_space_id(r, space);
    crdt_replica_public_key(r, pk);
    crdt_hex(space_hex, space, sizeof space);
    crdt_hex(pk_hex, pk, sizeof pk);
    crdt_hex(epoch_hex, s.stats.epoch_id, CRDT_HASH_BYTES);
    crdt_hex(hash_hex, s.stats.state_hash, CRDT_HASH_BYTES);
    if (!cli_has(&a, OPT_JSON)) {
        print_text(&s, space_hex, pk_hex, epoch_hex, hash_hex);
        json_decref(s.vv);
        crdt_replica_close(r);
        return CLI_OK;
    }
    crdt_replica_close(r);
    return cli_emit(json_pack(
        "{s:s,s:s,s:{s:I,s:s},s:{},s:o,s:s,s:I,s:I,s:i,s:n}",
        "space_id", space_hex, "public_key", pk_hex,
        "epoch", "number", (json_int_t)s.stats.epoch_number, "id", epoch_hex,
        "schema", "vv", s.vv, "state_hash", hash_hex,
        "ops_in_log", (json_int_t)s.stats.ops_in_log,
        "docs", (json_int_t)s.docs, "quarantined", 0, "upgrading"));
}
