/*
 * cmd_epochs.c: `strata epochs DIR [--json]`: the epoch chain from
 * genesis (number 0) to the current epoch, oldest first.
 *
 * Text: one block per epoch, "key: value" lines as in `status`; the lens
 * shows its first line and how many more follow. --json: an array of
 * {"number","id","parent","schema","lens","custom","created_ms",
 *  "state_hash"}, where "parent" is null for genesis, and "lens" (the
 * whole canonical text) and "custom" are null when the epoch has none.
 */
#include <inttypes.h>
#include <string.h>
#include <time.h>

#include "cli.h"

enum { OPT_JSON };

static const cli_opt OPTS[] = { { "json", 0 }, { NULL, 0 } };

static json_t *
str_or_null(const char *s)
{
    return s != NULL && s[0] != '\0' ? json_string(s) : json_null();
}

static json_t *
epoch_json(const epoch_info *e)
{
    char id[2 * EPOCH_ID_BYTES + 1], parent[2 * EPOCH_ID_BYTES + 1];
    char hash[2 * CRDT_HASH_BYTES + 1];
    json_t *schema = cli_schema_json(e);

    if (schema == NULL)
        return NULL;
    crdt_hex(id, e->id, EPOCH_ID_BYTES);
    crdt_hex(parent, e->parent, EPOCH_ID_BYTES);
    crdt_hex(hash, e->state_hash, CRDT_HASH_BYTES);
    return json_pack("{s:I,s:s,s:o,s:o,s:o,s:o,s:I,s:s}", "number",
                     (json_int_t)e->number, "id", id, "parent",
                     e->number == 0 || cli_id_is_zero(e->parent)
                         ? json_null() : json_string(parent),
                     "schema", schema, "lens", str_or_null(e->lens),
                     "custom", str_or_null(e->custom), "created_ms",
                     (json_int_t)e->created_ms, "state_hash", hash);
}

static void
print_text(const epoch_info *e)
{
    char id[2 * EPOCH_ID_BYTES + 1], parent[2 * EPOCH_ID_BYTES + 1];
    char hash[2 * CRDT_HASH_BYTES + 1], when[32] = "?";
    time_t secs = (time_t)(e->created_ms / 1000);
    const char *nl;
    size_t more = 0;
    struct tm tm;

    crdt_hex(id, e->id, EPOCH_ID_BYTES);
    crdt_hex(parent, e->parent, EPOCH_ID_BYTES);
    crdt_hex(hash, e->state_hash, CRDT_HASH_BYTES);
    if (gmtime_r(&secs, &tm) != NULL)
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    printf("epoch %" PRIu64 " %s\n", e->number, id);
    printf("  parent:     %s\n",
           e->number == 0 || cli_id_is_zero(e->parent) ? "-" : parent);
    printf("  schema:    ");
    for (size_t i = 0; i < e->n_schema; i++)
        printf("%s%s=%" PRIu32, i ? ", " : " ", e->schema[i].coll,
               e->schema[i].version);
    printf("%s\n", e->n_schema ? "" : " -");
    if (e->lens == NULL || e->lens[0] == '\0') {
        printf("  lens:       -\n");
    } else {
        nl = strchr(e->lens, '\n');
        for (const char *p = nl; p != NULL && p[1] != '\0';
             p = strchr(p + 1, '\n'))
            more++;
        printf("  lens:       %.*s",
               (int)(nl ? (size_t)(nl - e->lens) : strlen(e->lens)), e->lens);
        if (more)
            printf(" (+%zu more line%s)", more, more == 1 ? "" : "s");
        printf("\n");
    }
    printf("  custom:     %s\n",
           e->custom != NULL && e->custom[0] != '\0' ? e->custom : "-");
    if (e->created_ms == 0) /* genesis: made by nobody, at no time */
        printf("  created:    -\n");
    else
        printf("  created:    %" PRIu64 " (%s)\n", e->created_ms, when);
    printf("  state_hash: %s\n", hash);
}

int
cmd_epochs(const cli_cmd *cmd, int argc, char **argv)
{
    epoch_info *chain = NULL;
    crdt_replica *r;
    json_t *arr = NULL;
    size_t n = 0;
    cli_args a;
    int rc, json;

    rc = cli_parse(&a, cmd, argc, argv, OPTS, 1, 1);
    if (rc != CLI_OK)
        return rc == CLI_HELP_SHOWN ? CLI_OK : rc;
    json = cli_has(&a, OPT_JSON);
    rc = cli_open(&r, a.pos[0], 0);
    if (rc != CLI_OK)
        return rc;
    rc = epoch_chain(&chain, &n, r);
    crdt_replica_close(r);
    if (rc < 0)
        return cli_fail(cmd->name, rc);
    if (json)
        arr = json_array();
    for (size_t i = 0; i < n; i++) {
        if (!json) {
            print_text(&chain[i]);
            continue;
        }
        if (arr == NULL || json_array_append_new(arr, epoch_json(&chain[i]))) {
            json_decref(arr);
            arr = NULL;
            break;
        }
    }
    epoch_chain_free(chain, n);
    if (!json)
        return CLI_OK;
    return cli_emit(arr);
}
