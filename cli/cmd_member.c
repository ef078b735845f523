/*
 * cmd_member.c: `strata member add DIR PUBKEY [--role R]`,
 * `strata member rm DIR PUBKEY` and `strata member ls DIR [--json]`.
 *
 * See members.c for how the member set is written and docs/security.md
 * for who may change it. `ls` lists the keys let in, one a line; with
 * --json every key with a role (removed keys too, as "removed"), each
 * {"public_key", "role"}, in key order.
 */
#include <string.h>

#include "cli.h"

enum { OPT_JSON, OPT_ROLE };

static const cli_opt OPTS[] = { { "json", 0 }, { "role", 1 }, { NULL, 0 } };

static int
parse_key(const cli_cmd *cmd, unsigned char *pk, const char *key_hex)
{
    if (strlen(key_hex) != 2 * CRDT_PUBKEY_BYTES ||
        crdt_unhex(pk, CRDT_PUBKEY_BYTES, key_hex) != CRDT_OK)
        return cli_usage(cmd, "PUBKEY must be %d hex digits",
                         2 * CRDT_PUBKEY_BYTES);
    return CLI_OK;
}

static int
member_change(const cli_cmd *cmd, const char *dir, const char *key_hex,
              const char *role_s, int remove)
{
    unsigned char pk[CRDT_PUBKEY_BYTES];
    const char *what = remove ? "member rm" : "member add";
    crdt_role role = CRDT_ROLE_WRITER;
    crdt_replica *r;
    int rc;

    if ((rc = parse_key(cmd, pk, key_hex)) != CLI_OK)
        return rc;
    if (role_s != NULL && crdt_role_parse(role_s, &role) != CRDT_OK)
        return cli_usage(cmd, "--role must be reader, writer or admin");
    rc = cli_open(&r, dir, 1);
    if (rc != CLI_OK)
        return rc;
    rc = remove ? cli_member_rm(r, pk) : cli_member_add(r, pk, role);
    crdt_replica_close(r);
    if (rc == CRDT_EPERM)
        return cli_error(CLI_EREJECTED, what,
                         remove ? "not permitted: only an admin removes "
                                  "members, only the owner removes an "
                                  "admin, and the owner stays"
                                : "not permitted: only an admin adds "
                                  "members, only the owner makes admins, "
                                  "and a removed key stays removed");
    if (rc == CRDT_ENOTFOUND)
        return cli_error(CLI_ENOTFOUND, what, "%s is not a member", key_hex);
    return rc < 0 ? cli_fail(what, rc) : CLI_OK;
}

typedef struct {
    crdt_replica *r;
    json_t *list;
    int rc;
} ls_ctx;

static int
visit_member(const unsigned char *pk, crdt_role role, void *p)
{
    ls_ctx *c = p;
    char hex[2 * CRDT_PUBKEY_BYTES + 1];

    crdt_hex(hex, pk, CRDT_PUBKEY_BYTES);
    if (json_array_append_new(c->list,
                              json_pack("{s:s,s:s}", "public_key", hex,
                                        "role", crdt_role_name(role))) != 0)
        return CRDT_ENOMEM;
    return 0;
}

static int
member_ls(const char *dir, int json)
{
    ls_ctx c = { NULL, json_array(), CRDT_OK };
    json_t *v;
    size_t i;
    int rc;

    if (c.list == NULL)
        return cli_fail("member ls", CRDT_ENOMEM);
    rc = cli_open(&c.r, dir, 0);
    if (rc != CLI_OK) {
        json_decref(c.list);
        return rc;
    }
    rc = crdt_members_each(c.r, 0, visit_member, &c);
    crdt_replica_close(c.r);
    if (rc < 0) {
        json_decref(c.list);
        return cli_fail("member ls", rc);
    }
    if (json)
        return cli_emit(c.list);
    /* the plain listing stays one key a line: the keys let in */
    json_array_foreach(c.list, i, v)
        if (strcmp(json_string_value(json_object_get(v, "role")),
                   "removed") != 0)
            printf("%s\n",
                   json_string_value(json_object_get(v, "public_key")));
    json_decref(c.list);
    return CLI_OK;
}

int
cmd_member(const cli_cmd *cmd, int argc, char **argv)
{
    cli_args a;
    int rc;

    rc = cli_parse(&a, cmd, argc, argv, OPTS, 1, 3);
    if (rc != CLI_OK)
        return rc == CLI_HELP_SHOWN ? CLI_OK : rc;
    if (strcmp(a.pos[0], "add") == 0) {
        if (a.npos != 3)
            return cli_usage(cmd, "member add takes DIR PUBKEY");
        return member_change(cmd, a.pos[1], a.pos[2], a.opt[OPT_ROLE], 0);
    }
    if (cli_has(&a, OPT_ROLE))
        return cli_usage(cmd, "--role goes with member add");
    if (strcmp(a.pos[0], "rm") == 0) {
        if (a.npos != 3)
            return cli_usage(cmd, "member rm takes DIR PUBKEY");
        return member_change(cmd, a.pos[1], a.pos[2], NULL, 1);
    }
    if (strcmp(a.pos[0], "ls") == 0) {
        if (a.npos != 2)
            return cli_usage(cmd, "member ls takes DIR");
        return member_ls(a.pos[1], cli_has(&a, OPT_JSON));
    }
    return cli_usage(cmd, "unknown subcommand \"%s\"", a.pos[0]);
}
