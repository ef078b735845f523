/*
 * cmd_member.c: `strata member add DIR PUBKEY` and `strata member ls DIR`.
 *
 * See members.c for how the member set is stored. `ls` lists the keys
 * whose "member" register is true, in key order.
 */
#include <string.h>

#include "cli.h"

enum { OPT_JSON };

static const cli_opt OPTS[] = { { "json", 0 }, { NULL, 0 } };

static int
member_add(const cli_cmd *cmd, const char *dir, const char *key_hex)
{
    unsigned char pk[CRDT_PUBKEY_BYTES];
    crdt_replica *r;
    int rc;

    if (strlen(key_hex) != 2 * CRDT_PUBKEY_BYTES ||
        crdt_unhex(pk, sizeof pk, key_hex) != CRDT_OK)
        return cli_usage(cmd, "PUBKEY must be %d hex digits",
                         2 * CRDT_PUBKEY_BYTES);
    rc = cli_open(&r, dir, 1);
    if (rc != CLI_OK)
        return rc;
    rc = cli_member_add(r, pk);
    crdt_replica_close(r);
    return rc < 0 ? cli_fail("member add", rc) : CLI_OK;
}

typedef struct {
    crdt_read *rd;
    json_t *list;
    int rc;
} ls_ctx;

static int
visit_member(const char *name, size_t len, void *p)
{
    ls_ctx *c = p;
    crdt_field f;
    int rc;

    rc = crdt_read_field(&f, c->rd, CLI_MEMBERS_COLL, name,
                         CLI_MEMBERS_FIELD);
    if (rc == CRDT_ENOTFOUND)
        return 0;
    if (rc < 0) {
        c->rc = rc;
        return 1;
    }
    if (f.kind != CRDT_FIELD_REGISTER || f.value.type != CRDT_VBOOL ||
        !f.value.u.b)
        return 0;
    if (json_array_append_new(c->list, json_stringn(name, len)) != 0) {
        c->rc = CRDT_ENOMEM;
        return 1;
    }
    return 0;
}

static int
member_ls(const char *dir, int json)
{
    ls_ctx c = { NULL, json_array(), CRDT_OK };
    crdt_replica *r;
    json_t *v;
    size_t i;
    int rc;

    if (c.list == NULL)
        return cli_fail("member ls", CRDT_ENOMEM);
    rc = cli_open(&r, dir, 0);
    if (rc != CLI_OK) {
        json_decref(c.list);
        return rc;
    }
    rc = crdt_read_begin(&c.rd, r);
    if (rc == CRDT_OK) {
        rc = crdt_read_docs(c.rd, CLI_MEMBERS_COLL, visit_member, &c);
        if (c.rc < 0)
            rc = c.rc;
        crdt_read_end(c.rd);
    }
    crdt_replica_close(r);
    if (rc < 0) {
        json_decref(c.list);
        return cli_fail("member ls", rc);
    }
    if (json)
        return cli_emit(c.list);
    json_array_foreach(c.list, i, v)
        printf("%s\n", json_string_value(v));
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
        return member_add(cmd, a.pos[1], a.pos[2]);
    }
    if (strcmp(a.pos[0], "ls") == 0) {
        if (a.npos != 2)
            return cli_usage(cmd, "member ls takes DIR");
        return member_ls(a.pos[1], cli_has(&a, OPT_JSON));
    }
    return cli_usage(cmd, "unknown subcommand \"%s\"", a.pos[0]);
}
