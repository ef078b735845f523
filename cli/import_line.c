/*
 * import_line.c: parsing one line of `strata import` (import_line.h).
 *
 * Invariants:
 *  (1) No replica and no txn here: a line is parsed the same whether it
 *      is then applied (cmd_import.c) or only checked (the fuzzer).
 *  (2) Bounded: a line longer than CLI_IMPORT_LINE_LIMIT is refused
 *      before it is parsed.
 *  (3) On -1 nothing is held; on 0 everything is in the op, released by
 *      cli_import_op_free().
 */
#include <stdio.h>
#include <string.h>

#include "import_line.h"

/* A name field: a string of 1..CRDT_NAME_MAX bytes without NUL. */
static int
get_name(const char **out, json_t *o, const char *key, int required,
         const char **why)
{
    json_t *s = json_object_get(o, key);

    *out = NULL;
    if (s == NULL) {
        if (!required)
            return 0;
        *why = key[0] == 'c' ? "missing \"coll\""
             : key[0] == 'd' ? "missing \"doc\"" : "missing \"field\"";
        return -1;
    }
    if (!json_is_string(s) || json_string_length(s) == 0 ||
        json_string_length(s) > CRDT_NAME_MAX ||
        strlen(json_string_value(s)) != json_string_length(s)) {
        *why = key[0] == 'c' ? "\"coll\" must be a name of 1 to 64 bytes"
             : key[0] == 'd' ? "\"doc\" must be a name of 1 to 64 bytes"
                             : "\"field\" must be a name of 1 to 64 bytes";
        return -1;
    }
    *out = json_string_value(s);
    return 0;
}

static int
parse_kind(cli_import_kind *out, json_t *o, const char **why)
{
    static const char *const NAMES[] = { "put",  "incr", "sadd", "srem",
                                         "del",  "tins", "tdel", "lins",
                                         "ldel", "lset" };
    const char *s = json_string_value(json_object_get(o, "op"));

    if (s == NULL) {
        *why = "missing \"op\" (put, incr, sadd, srem, del, tins, tdel, "
               "lins, ldel or lset)";
        return -1;
    }
    for (int i = 0; i < (int)(sizeof NAMES / sizeof NAMES[0]); i++)
        if (strcmp(s, NAMES[i]) == 0) {
            *out = (cli_import_kind)i;
            return 0;
        }
    *why = "unknown \"op\" (put, incr, sadd, srem, del, tins, tdel, lins, "
           "ldel or lset)";
    return -1;
}

/* An integer key of a sequence op: 0..CLI_SEQ_MAX, or 1.. if @p min1. */
static int
get_seq_int(json_int_t *out, json_t *o, const char *key, int min1,
            const char **why)
{
    json_t *v = json_object_get(o, key);

    if (!json_is_integer(v) || json_integer_value(v) < (min1 ? 1 : 0) ||
        json_integer_value(v) > CLI_SEQ_MAX) {
        *why = key[0] == 'p' ? "needs an integer \"pos\" of 0 or more"
                             : "needs an integer \"len\" of 1 or more";
        return -1;
    }
    *out = json_integer_value(v);
    return 0;
}

/* The keys of a text or list op: pos plus text, len or value. */
static int
parse_seq(cli_import_op *op, json_t *o, const char **why)
{
    json_t *v = json_object_get(o, "value"), *n = json_object_get(o, "n");
    json_t *len = json_object_get(o, "len"), *text = json_object_get(o, "text");
    int k = op->kind;

    if (n != NULL) {
        *why = "a text or list op takes no \"n\"";
        return -1;
    }
    if (get_seq_int(&op->pos, o, "pos", 0, why) != 0)
        return -1;
    if ((text != NULL) != (k == CLI_IMPORT_TINS)) {
        *why = k == CLI_IMPORT_TINS ? "tins needs a \"text\""
                                    : "only tins takes a \"text\"";
        return -1;
    }
    if ((len != NULL) != (k == CLI_IMPORT_TDEL || k == CLI_IMPORT_LDEL)) {
        *why = len == NULL ? "needs a \"len\"" : "only tdel and ldel take "
                                                 "a \"len\"";
        return -1;
    }
    if ((v != NULL) != (k == CLI_IMPORT_LINS || k == CLI_IMPORT_LSET)) {
        *why = v == NULL ? "needs a \"value\"" : "only lins and lset take "
                                                 "a \"value\"";
        return -1;
    }
    if (len != NULL)
        return get_seq_int(&op->len, o, "len", 1, why);
    if (text != NULL) {
        if (!json_is_string(text) || json_string_length(text) == 0 ||
            strlen(json_string_value(text)) != json_string_length(text)) {
            *why = "\"text\" must be a non-empty string without NUL";
            return -1;
        }
        op->text = json_string_value(text);
        op->text_len = json_string_length(text);
        return 0;
    }
    return cli_value_from_json(&op->value, v, why) == CLI_OK ? 0 : -1;
}

/* Check the shape of one op object; the library checks the rest. */
static int
parse_op(cli_import_op *op, json_t *o, const char **why)
{
    const char *key;
    json_t *v, *n;

    if (!json_is_object(o)) {
        *why = "not a JSON object";
        return -1;
    }
    json_object_foreach(o, key, v) {
        if (strcmp(key, "op") && strcmp(key, "coll") && strcmp(key, "doc") &&
            strcmp(key, "field") && strcmp(key, "value") && strcmp(key, "n") &&
            strcmp(key, "pos") && strcmp(key, "len") && strcmp(key, "text")) {
            *why = "unknown key (op, coll, doc, field, value, n, pos, len, "
                   "text)";
            return -1;
        }
    }
    if (parse_kind(&op->kind, o, why) != 0 ||
        get_name(&op->coll, o, "coll", 1, why) != 0 ||
        get_name(&op->doc, o, "doc", 1, why) != 0 ||
        get_name(&op->field, o, "field", op->kind != CLI_IMPORT_DEL,
                 why) != 0)
        return -1;
    if (cli_reserved(op->coll)) {
        *why = "reserved collection";
        return -1;
    }
    if (op->kind >= CLI_IMPORT_TINS)
        return parse_seq(op, o, why);
    if (json_object_get(o, "pos") || json_object_get(o, "len") ||
        json_object_get(o, "text")) {
        *why = "only text and list ops take \"pos\", \"len\" or \"text\"";
        return -1;
    }
    v = json_object_get(o, "value");
    n = json_object_get(o, "n");
    switch (op->kind) {
    case CLI_IMPORT_INCR:
        if ((v != NULL) == (n != NULL) || !json_is_integer(n ? n : v)) {
            *why = "incr needs an integer \"n\"";
            return -1;
        }
        op->n = json_integer_value(n ? n : v);
        return 0;
    case CLI_IMPORT_DEL:
        if (v != NULL || n != NULL) {
            *why = "del takes no \"value\" or \"n\"";
            return -1;
        }
        return 0;
    default:
        if (v == NULL || n != NULL) {
            *why = "needs a \"value\" (and no \"n\")";
            return -1;
        }
        return cli_value_from_json(&op->value, v, why) == CLI_OK ? 0 : -1;
    }
}

static int
blank(const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
            return 0;
    return 1;
}

int
cli_import_line_parse(cli_import_op *op, const char *line, size_t len,
                      char *why, size_t why_size)
{
    const char *reason = NULL;
    json_error_t err;

    memset(op, 0, sizeof *op);
    if (len > CLI_IMPORT_LINE_LIMIT) { /* keeps (2) */
        snprintf(why, why_size, "longer than %u bytes",
                 CLI_IMPORT_LINE_LIMIT);
        return -1;
    }
    if (blank(line, len))
        return 1;
    op->json = json_loadb(line, len, JSON_ALLOW_NUL, &err);
    if (op->json == NULL) {
        snprintf(why, why_size, "invalid JSON: %s", err.text);
        return -1;
    }
    if (parse_op(op, op->json, &reason) != 0) {
        cli_import_op_free(op); /* keeps (3) */
        snprintf(why, why_size, "%s", reason);
        return -1;
    }
    return 0;
}

void
cli_import_op_free(cli_import_op *op)
{
    if (op == NULL)
        return;
    cli_value_free(&op->value);
    json_decref(op->json);
    memset(op, 0, sizeof *op);
}
