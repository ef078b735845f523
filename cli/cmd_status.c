/*
 * cmd_status.c: `strata status DIR [--json]`: identity, epoch, version
 * vector, state hash and counters, all from one read snapshot.
 *
 * "docs" counts the live documents of user collections (the reserved
 * '$' ones, such as the member set, are left out, as in ls and export).
 * "schema" is the current epoch record's (collections at version 1 are
 * not named), "quarantined" the number of ops in the quarantine, and
 * "upgrading" the migration marker: null, or {"target_epoch",
 * "started_ms","lens"} while a migration runs or after one was
 * interrupted (status shows it instead of the open warning).
 * "staging" the token of a reset (a snapshot being received): null, or
 * {"pid","started_ms","owner_alive","active"}; a token whose owner died
 * is void at once ("active": false). "readers" {"used","max"}: LMDB
 * reader slots held (by live readers, or dead ones not cleared yet).
 *
 * The epoch layer's reads are separate read txns: the marker is read
 * before and after the rest, and the whole is retried when a migration
 * committed in between, so the answer is never "new epoch, still
 * upgrading" or an epoch number with another epoch's schema.
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
    epoch_info epoch;    /* the current epoch's record */
    uint64_t quarantined;
    int upgrading;       /* a marker is present */
    epoch_marker marker; /* if upgrading */
    epoch_staging staging;
    crdt_env_stats env;  /* reader slots */
} status_info;

static void
status_clear(status_info *s)
{
    json_decref(s->vv);
    epoch_info_clear(&s->epoch);
    epoch_marker_clear(&s->marker);
    memset(s, 0, sizeof *s);
}

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
gather_crdt(status_info *s, crdt_replica *r)
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

/* The marker: 1 present (filled), 0 absent, or a crdt_err. */
static int
read_marker(epoch_marker *m, crdt_replica *r)
{
    int rc = epoch_marker_get(m, r);

    if (rc == CRDT_ENOTFOUND)
        return 0;
    return rc < 0 ? rc : 1;
}

/* Everything, consistently; see the file comment. */
static int
gather(status_info *s, crdt_replica *r)
{
    epoch_marker after;
    int rc = CRDT_OK;

    for (int tries = 0; tries < 5; tries++) {
        status_clear(s);
        rc = read_marker(&s->marker, r);
        if (rc < 0)
            return rc;
        s->upgrading = rc;
        rc = gather_crdt(s, r);
        if (rc == CRDT_OK)
            rc = epoch_current(&s->epoch, r);
        if (rc == CRDT_OK)
            rc = epoch_quarantine_count(&s->quarantined, r);
        if (rc == CRDT_OK)
            rc = epoch_staging_get(&s->staging, r);
        if (rc == CRDT_OK)
            rc = crdt_replica_env_stats(r, &s->env);
        if (rc < 0)
            return rc;
        rc = read_marker(&after, r);
        if (rc < 0)
            return rc;
        epoch_marker_clear(&after);
        if (rc == s->upgrading &&
            memcmp(s->epoch.id, s->stats.epoch_id, EPOCH_ID_BYTES) == 0)
            return CRDT_OK;
    }
    return CRDT_EBUSY; /* migrations keep committing under us */
}

static json_t *
upgrading_json(const status_info *s)
{
    if (!s->upgrading)
        return json_null();
    return json_pack("{s:I,s:I,s:s}", "target_epoch",
                     (json_int_t)s->marker.target_number, "started_ms",
                     (json_int_t)s->marker.started_ms, "lens",
                     s->marker.lens ? s->marker.lens : "");
}

static json_t *
staging_json(const status_info *s)
{
    const epoch_staging *g = &s->staging;

    if (!g->present)
        return json_null();
    return json_pack("{s:I,s:I,s:o,s:b}", "pid", (json_int_t)g->pid,
                     "started_ms", (json_int_t)g->started_ms, "owner_alive",
                     g->owner_alive < 0 ? json_null()
                                        : json_boolean(g->owner_alive),
                     "active", g->active);
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
    printf("schema:     ");
    for (size_t i = 0; i < s->epoch.n_schema; i++)
        printf("%s%s=%" PRIu32, i ? ", " : " ", s->epoch.schema[i].coll,
               s->epoch.schema[i].version);
    printf("%s\n", s->epoch.n_schema ? "" : " (none)");
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
    printf("quarantined: %" PRIu64 "\n", s->quarantined);
    if (s->stats.equivocations > 0) /* a copied replica wrote, once */
        printf("equivocations: %" PRIu64 "\n", s->stats.equivocations);
    if (!s->staging.present)
        printf("staging:     no\n");
    else
        printf("staging:     a snapshot being received since %" PRIu64
               " ms by pid %" PRIu64 " (%s)\n", s->staging.started_ms,
               s->staging.pid,
               s->staging.owner_alive == 0
                   ? "dead: void, the next sync takes over"
                   : s->staging.active ? "active: syncs answer busy"
                                       : "expired");
    printf("readers:     %" PRIu32 " of %" PRIu32 " reader slots held\n",
           s->env.readers_used, s->env.readers_max);
    if (!s->upgrading) {
        printf("upgrading:   no\n");
    } else {
        const char *lens = s->marker.lens ? s->marker.lens : "";
        const char *nl = strchr(lens, '\n');

        printf("upgrading:   to epoch %" PRIu64 " since %" PRIu64
               " ms, lens: %.*s\n", s->marker.target_number,
               s->marker.started_ms,
               lens[0] ? (nl ? (int)(nl - lens) : (int)strlen(lens)) : 1,
               lens[0] ? lens : "-");
    }
}

int
cmd_status(const cli_cmd *cmd, int argc, char **argv)
{
    unsigned char space[CRDT_SPACE_ID_BYTES], pk[CRDT_PUBKEY_BYTES];
    char space_hex[2 * sizeof space + 1], pk_hex[2 * sizeof pk + 1];
    char epoch_hex[2 * CRDT_HASH_BYTES + 1], hash_hex[2 * CRDT_HASH_BYTES + 1];
    status_info s;
    crdt_replica *r;
    json_t *out;
    cli_args a;
    int rc;

    rc = cli_parse(&a, cmd, argc, argv, OPTS, 1, 1);
    if (rc != CLI_OK)
        return rc == CLI_HELP_SHOWN ? CLI_OK : rc;
    rc = cli_open_ex(&r, a.pos[0], CLI_OPEN_NO_WARNING);
    if (rc != CLI_OK)
        return rc;
    memset(&s, 0, sizeof s);
    rc = gather(&s, r);
    if (rc < 0) {
        status_clear(&s);
        crdt_replica_close(r);
        return cli_fail(cmd->name, rc);
    }
    crdt_replica_space_id(r, space);
    crdt_replica_public_key(r, pk);
    crdt_replica_close(r);
    crdt_hex(space_hex, space, sizeof space);
    crdt_hex(pk_hex, pk, sizeof pk);
    crdt_hex(epoch_hex, s.stats.epoch_id, CRDT_HASH_BYTES);
    crdt_hex(hash_hex, s.stats.state_hash, CRDT_HASH_BYTES);
    if (!cli_has(&a, OPT_JSON)) {
        print_text(&s, space_hex, pk_hex, epoch_hex, hash_hex);
        status_clear(&s);
        return CLI_OK;
    }
    out = json_pack(
        "{s:s,s:s,s:{s:I,s:s},s:o,s:O,s:s,s:I,s:I,s:I,s:o,s:o,s:{s:I,s:I}}",
        "space_id", space_hex, "public_key", pk_hex,
        "epoch", "number", (json_int_t)s.stats.epoch_number, "id", epoch_hex,
        "schema", cli_schema_json(&s.epoch), "vv", s.vv,
        "state_hash", hash_hex,
        "ops_in_log", (json_int_t)s.stats.ops_in_log,
        "docs", (json_int_t)s.docs,
        "quarantined", (json_int_t)s.quarantined,
        "upgrading", upgrading_json(&s), "staging", staging_json(&s),
        "readers", "used", (json_int_t)s.env.readers_used, "max",
        (json_int_t)s.env.readers_max);
    status_clear(&s);
    return cli_emit(out);
}
