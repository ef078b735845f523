/*
 * cmd_read.c: reads from one snapshot: get, ls, export.
 *
 * Output is JSON as in value.c. Reserved collections ('$...') are left
 * out of `ls` and `export` listings; `get` and `ls COLL` still read them
 * when named explicitly.
 */
#include <string.h>

#include "cli.h"

enum { OPT_JSON };

static const cli_opt JSON_OPT[] = { { "json", 0 }, { NULL, 0 } };

/* Collects the fields of one document into a JSON object. */
static int
add_field(const crdt_field *f, void *p)
{
    json_t *obj = p;

    return json_object_set_new(obj, f->name, cli_field_to_json(f)) != 0;
}

/* The document as an object; *rc_out is the crdt_err. */
static json_t *
doc_object(crdt_read *rd, const char *coll, const char *doc, int *rc_out)
{
    json_t *obj = json_object();
    int rc;

    if (obj == NULL) {
        *rc_out = CRDT_ENOMEM;
        return NULL;
    }
    rc = crdt_read_doc(rd, coll, doc, add_field, obj);
    if (rc > 0)
        rc = CRDT_ENOMEM; /* add_field stopped */
    if (rc < 0) {
        json_decref(obj);
        obj = NULL;
    }
    *rc_out = rc;
    return obj;
}

static int
open_read(crdt_replica **r, crdt_read **rd, const char *dir, const char *what)
{
    int rc = cli_open(r, dir, 0);

    if (rc != CLI_OK)
        return rc;
    rc = crdt_read_begin(rd, *r);
    if (rc < 0) {
        crdt_replica_close(*r);
        return cli_fail(what, rc);
    }
    return CLI_OK;
}

static void
close_read(crdt_replica *r, crdt_read *rd)
{
    crdt_read_end(rd);
    crdt_replica_close(r);
}

int
cmd_get(const cli_cmd *cmd, int argc, char **argv)
{
    const char *coll, *doc, *field;
    crdt_replica *r;
    crdt_read *rd;
    crdt_field f;
    json_t *out = NULL;
    cli_args a;
    int rc;

    rc = cli_parse(&a, cmd, argc, argv, NULL, 3, 4);
    if (rc != CLI_OK)
        return rc == CLI_HELP_SHOWN ? CLI_OK : rc;
    coll = a.pos[1];
    doc = a.pos[2];
    field = a.npos > 3 ? a.pos[3] : NULL;
    rc = cli_check_names(cmd, coll, doc, field);
    if (rc != CLI_OK)
        return rc;
    rc = open_read(&r, &rd, a.pos[0], cmd->name);
    if (rc != CLI_OK)
        return rc;
    if (field != NULL) {
        rc = crdt_read_field(&f, rd, coll, doc, field);
        if (rc == CRDT_OK)
            out = cli_field_to_json(&f);
    } else {
        out = doc_object(rd, coll, doc, &rc);
    }
    close_read(r, rd);
    if (rc == CRDT_ENOTFOUND)
        return cli_error(CLI_ENOTFOUND, cmd->name, "not found");
    if (rc < 0)
        return cli_fail(cmd->name, rc);
    return cli_emit(out);
}

typedef struct {
    json_t *list; /* --json: collect; else print as we go */
    int skip_reserved;
    int rc;
} ls_ctx;

static int
visit_name(const char *name, size_t len, void *p)
{
    ls_ctx *c = p;

    if (c->skip_reserved && cli_reserved(name))
        return 0;
    if (c->list == NULL) {
        printf("%.*s\n", (int)len, name);
        return 0;
    }
    if (json_array_append_new(c->list, json_stringn(name, len)) != 0) {
        c->rc = CRDT_ENOMEM;
        return 1;
    }
    return 0;
}

int
cmd_ls(const cli_cmd *cmd, int argc, char **argv)
{
    ls_ctx c = { NULL, 0, CRDT_OK };
    crdt_replica *r;
    crdt_read *rd;
    cli_args a;
    int rc;

    rc = cli_parse(&a, cmd, argc, argv, JSON_OPT, 1, 2);
    if (rc != CLI_OK)
        return rc == CLI_HELP_SHOWN ? CLI_OK : rc;
    if (a.npos > 1) {
        rc = cli_check_name(cmd, "collection", a.pos[1]);
        if (rc != CLI_OK)
            return rc;
    }
    if (cli_has(&a, OPT_JSON)) {
        c.list = json_array();
        if (c.list == NULL)
            return cli_fail(cmd->name, CRDT_ENOMEM);
    }
    rc = open_read(&r, &rd, a.pos[0], cmd->name);
    if (rc != CLI_OK) {
        json_decref(c.list);
        return rc;
    }
    if (a.npos > 1) {
        rc = crdt_read_docs(rd, a.pos[1], visit_name, &c);
    } else {
        c.skip_reserved = 1;
        rc = crdt_read_collections(rd, visit_name, &c);
    }
    if (c.rc < 0)
        rc = c.rc;
    close_read(r, rd);
    if (rc < 0) {
        json_decref(c.list);
        return cli_fail(cmd->name, rc);
    }
    return c.list != NULL ? cli_emit(c.list) : CLI_OK;
}

typedef struct {
    crdt_read *rd;
    const char *coll;
    int rc;   /* crdt_err of a read */
    int exit; /* exit code of an output failure */
} export_ctx;

static int
export_doc(const char *name, size_t len, void *p)
{
    export_ctx *c = p;
    json_t *fields, *line;
    int rc;

    (void)len;
    fields = doc_object(c->rd, c->coll, name, &rc);
    if (rc == CRDT_ENOTFOUND)
        return 0; /* deleted in between: cannot happen in one snapshot */
    if (rc < 0) {
        c->rc = rc;
        return 1;
    }
    line = json_pack("{s:s,s:s,s:o}", "coll", c->coll, "doc", name, "fields",
                     fields);
    c->exit = cli_emit(line);
    return c->exit != CLI_OK;
}

static int
export_coll(const char *name, size_t len, void *p)
{
    export_ctx *c = p;
    int rc;

    (void)len;
    if (cli_reserved(name))
        return 0;
    c->coll = name;
    rc = crdt_read_docs(c->rd, name, export_doc, c);
    if (rc < 0)
        c->rc = rc;
    return rc != 0;
}

int
cmd_export(const cli_cmd *cmd, int argc, char **argv)
{
    export_ctx c = { NULL, NULL, CRDT_OK, CLI_OK };
    crdt_replica *r;
    cli_args a;
    int rc;

    rc = cli_parse(&a, cmd, argc, argv, NULL, 1, 1);
    if (rc != CLI_OK)
        return rc == CLI_HELP_SHOWN ? CLI_OK : rc;
    rc = open_read(&r, &c.rd, a.pos[0], cmd->name);
    if (rc != CLI_OK)
        return rc;
    rc = crdt_read_collections(c.rd, export_coll, &c);
    close_read(r, c.rd);
    if (c.exit != CLI_OK)
        return c.exit;
    if (c.rc < 0)
        return cli_fail(cmd->name, c.rc);
    if (rc < 0)
        return cli_fail(cmd->name, rc);
    return CLI_OK;
}
