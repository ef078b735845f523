/*
 * fuzz_import.c: the lines of a `strata import` file -> the CLI's line
 * parser (cli/import_line.c: JSON, op shape, names, values with
 * cli/value.c), no replica needed.
 *
 * Input: the file; split into lines at '\n' as cmd_import.c does.
 * Checked: no crash, leak or sanitizer report; the parser answers 1, 0
 * or -1, and -1 with a non-empty reason; a parsed op has names of
 * 1..64 bytes without NUL, a collection that is not reserved, a field
 * unless it deletes a document, and a value of a known type; the op
 * written back as JSON (cli_op_to_json, as `strata log --json` prints
 * it) parses to the same op (parse -> print -> parse).
 *
 * Built from one file like every target: the CLI sources it tests are
 * included below, and jansson, which tests/fuzz/CMakeLists.txt does not
 * link, is reached through dlopen() (the shim at the end). Define
 * STRATA_FUZZ_HAVE_JANSSON when the build links -ljansson to drop it.
 *
 * Seeds: `STRATA_FUZZ_SEEDS=DIR fuzz_import` writes the corpus (lines of
 * every op kind, the error cases of docs/cli.md and the bombs of
 * docs/testing.md B3, B4) into DIR and exits.
 */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* the code under test, compiled into this target */
#include "../../cli/import_line.c"
#include "../../cli/util.c"
#include "../../cli/value.c"
#include "../../cli/fault.c"
#include "support/fuzz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
has_value(cli_import_kind k)
{
    return k == CLI_IMPORT_PUT || k == CLI_IMPORT_SADD ||
           k == CLI_IMPORT_SREM || k == CLI_IMPORT_LINS ||
           k == CLI_IMPORT_LSET;
}

static void
check_name(const char *s)
{
    size_t n;

    if (s == NULL)
        abort();
    n = strlen(s);
    if (n == 0 || n > CRDT_NAME_MAX)
        abort();
}

static void
check_op(const cli_import_op *op)
{
    if ((unsigned)op->kind > CLI_IMPORT_LSET || op->json == NULL)
        abort();
    if (op->kind >= CLI_IMPORT_TINS &&
        (op->field == NULL || op->pos < 0 || op->pos > CLI_SEQ_MAX ||
         ((op->kind == CLI_IMPORT_TDEL || op->kind == CLI_IMPORT_LDEL) &&
          (op->len < 1 || op->len > CLI_SEQ_MAX)) ||
         ((op->kind == CLI_IMPORT_TINS) !=
          (op->text != NULL && op->text_len > 0 &&
           strlen(op->text) == op->text_len))))
        abort();
    check_name(op->coll);
    check_name(op->doc);
    if (op->field != NULL)
        check_name(op->field);
    else if (op->kind != CLI_IMPORT_DEL)
        abort();
    if (cli_reserved(op->coll))
        abort();
    if (has_value(op->kind)) {
        const crdt_value *v = &op->value.v;
        if ((unsigned)v->type > CRDT_VBYTES)
            abort();
        if ((v->type == CRDT_VSTRING || v->type == CRDT_VBYTES) &&
            v->u.s.len > 0 && v->u.s.ptr == NULL)
            abort();
    }
}

/* The op as `strata log --json` prints it, and parsed back. */
static void
round_trip(const cli_import_op *op)
{
    static const crdt_op_kind KINDS[] = {
        CRDT_OP_PUT,  CRDT_OP_INCR, CRDT_OP_SADD, CRDT_OP_SREM,
        CRDT_OP_PUT /* del: below */, CRDT_OP_TINS, CRDT_OP_TDEL,
        CRDT_OP_LINS, CRDT_OP_LDEL, CRDT_OP_LSET};
    crdt_op c;
    cli_import_op back;
    char why[256];
    json_t *j;
    char *text;
    int rc;

    memset(&c, 0, sizeof c);
    if (op->kind == CLI_IMPORT_DEL)
        c.kind = op->field ? CRDT_OP_DEL_FIELD : CRDT_OP_DEL_DOC;
    else
        c.kind = KINDS[op->kind];
    c.coll = op->coll;
    c.coll_len = strlen(op->coll);
    c.doc = op->doc;
    c.doc_len = strlen(op->doc);
    c.field = op->field;
    c.field_len = op->field ? strlen(op->field) : 0;
    c.value = op->value.v;
    c.delta = (int64_t)op->n;
    c.pos = (uint64_t)op->pos;
    c.len = (uint64_t)op->len;
    c.text = op->text;
    c.text_len = op->text_len;
    j = cli_op_to_json(&c);
    if (j == NULL)
        abort();
    text = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_decref(j);
    if (text == NULL)
        abort();
    if (strchr(text, '\n') != NULL)
        abort(); /* one op, one line */
    rc = cli_import_line_parse(&back, text, strlen(text), why, sizeof why);
    if (rc != 0)
        abort();
    if (back.kind != op->kind || strcmp(back.coll, op->coll) != 0 ||
        strcmp(back.doc, op->doc) != 0 || (back.field == NULL) !=
        (op->field == NULL) ||
        (op->field != NULL && strcmp(back.field, op->field) != 0) ||
        (op->kind == CLI_IMPORT_INCR && back.n != op->n) ||
        back.pos != op->pos || back.len != op->len ||
        back.text_len != op->text_len ||
        (op->text != NULL && memcmp(back.text, op->text, op->text_len)) ||
        (has_value(op->kind) && !fuzz_same_value(&back.value.v, &op->value.v)))
        abort();
    cli_import_op_free(&back);
    free(text);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size ? size : 1);
    size_t pos = 0;

    if (buf == NULL)
        return 0;
    if (size)
        memcpy(buf, data, size); /* exactly @p size bytes for ASan */
    while (pos < size) {
        char *line = buf + pos, *nl = memchr(line, '\n', size - pos);
        size_t n = nl ? (size_t)(nl - line) : size - pos;
        cli_import_op op;
        char why[256];
        int rc;

        pos += n + (nl != NULL);
        memset(why, 0x55, sizeof why);
        rc = cli_import_line_parse(&op, line, n, why, sizeof why);
        if (rc == 0) {
            check_op(&op);
            round_trip(&op);
            cli_import_op_free(&op);
            cli_import_op_free(&op); /* documented: safe twice */
        } else if (rc < 0) {
            if (memchr(why, 0, sizeof why) == NULL || why[0] == '\0')
                abort();
        } else if (rc != 1) {
            abort();
        }
    }
    free(buf);
    return 0;
}

/* ---- seeds ----------------------------------------------------------- */

#define PUT_TEXT(dir, name, text) fuzz_put_seed(dir, name, text, sizeof text - 1)

static void
write_seeds(const char *dir)
{
    char *b = malloc(100001);
    size_t n;

    if (b == NULL)
        exit(1);
    PUT_TEXT(dir, "valid_every_op",
             "{\"op\":\"put\",\"coll\":\"people\",\"doc\":\"p1\","
             "\"field\":\"name\",\"value\":\"Ada\"}\n"
             "{\"op\":\"incr\",\"coll\":\"stats\",\"doc\":\"s\","
             "\"field\":\"hits\",\"n\":-9223372036854775808}\n"
             "{\"op\":\"sadd\",\"coll\":\"tags\",\"doc\":\"t\","
             "\"field\":\"c\",\"value\":7}\n"
             "{\"op\":\"srem\",\"coll\":\"tags\",\"doc\":\"t\","
             "\"field\":\"c\",\"value\":1.5e-300}\n"
             "{\"op\":\"del\",\"coll\":\"tags\",\"doc\":\"t\","
             "\"field\":\"c\"}\n"
             "\t \r\n"
             "{\"op\":\"del\",\"coll\":\"tags\",\"doc\":\"t\"}\n");
    PUT_TEXT(dir, "valid_sequence_ops",
             "{\"op\":\"tins\",\"coll\":\"n\",\"doc\":\"d\",\"field\":\"t\","
             "\"pos\":0,\"text\":\"h\\u00e9llo \\ud83d\\ude00\"}\n"
             "{\"op\":\"tdel\",\"coll\":\"n\",\"doc\":\"d\",\"field\":\"t\","
             "\"pos\":1,\"len\":2}\n"
             "{\"op\":\"lins\",\"coll\":\"n\",\"doc\":\"d\",\"field\":\"l\","
             "\"pos\":0,\"value\":{\"$bytes\":\"AAE=\"}}\n"
             "{\"op\":\"lset\",\"coll\":\"n\",\"doc\":\"d\",\"field\":\"l\","
             "\"pos\":0,\"value\":-1.5}\n"
             "{\"op\":\"ldel\",\"coll\":\"n\",\"doc\":\"d\",\"field\":\"l\","
             "\"pos\":0,\"len\":1}\n");
    PUT_TEXT(dir, "bad_sequence_ops",
             "{\"op\":\"tins\",\"coll\":\"n\",\"doc\":\"d\",\"field\":\"t\","
             "\"pos\":-1,\"text\":\"x\"}\n"
             "{\"op\":\"tins\",\"coll\":\"n\",\"doc\":\"d\",\"field\":\"t\","
             "\"pos\":0,\"text\":\"\"}\n"
             "{\"op\":\"tins\",\"coll\":\"n\",\"doc\":\"d\",\"field\":\"t\","
             "\"pos\":0,\"text\":\"a\\u0000b\"}\n"
             "{\"op\":\"tdel\",\"coll\":\"n\",\"doc\":\"d\",\"field\":\"t\","
             "\"pos\":0,\"len\":0}\n"
             "{\"op\":\"tdel\",\"coll\":\"n\",\"doc\":\"d\",\"field\":\"t\","
             "\"pos\":0,\"len\":1,\"text\":\"x\"}\n"
             "{\"op\":\"lset\",\"coll\":\"n\",\"doc\":\"d\",\"field\":\"l\","
             "\"pos\":1099511627777,\"value\":1}\n"
             "{\"op\":\"ldel\",\"coll\":\"n\",\"doc\":\"d\",\"field\":\"l\","
             "\"pos\":0}\n"
             "{\"op\":\"put\",\"coll\":\"n\",\"doc\":\"d\",\"field\":\"l\","
             "\"pos\":0,\"value\":1}\n");
    PUT_TEXT(dir, "valid_values",
             "{\"op\":\"put\",\"coll\":\"c\",\"doc\":\"d\",\"field\":\"f\","
             "\"value\":null}\n"
             "{\"op\":\"put\",\"coll\":\"c\",\"doc\":\"d\",\"field\":\"f\","
             "\"value\":true}\n"
             "{\"op\":\"put\",\"coll\":\"c\",\"doc\":\"d\",\"field\":\"f\","
             "\"value\":-0.0}\n"
             "{\"op\":\"put\",\"coll\":\"c\",\"doc\":\"d\",\"field\":\"f\","
             "\"value\":{\"$bytes\":\"AAEC/w==\"}}\n"
             "{\"op\":\"put\",\"coll\":\"c\",\"doc\":\"d\",\"field\":\"f\","
             "\"value\":\"a\\u0000b \\ud83d\\ude00 caf\xc3\xa9\"}\n");
    PUT_TEXT(dir, "incr_value_form",
             "{\"op\":\"incr\",\"coll\":\"c\",\"doc\":\"d\",\"field\":\"f\","
             "\"value\":9223372036854775807}\n");
    PUT_TEXT(dir, "bad_shapes",
             "{\"op\":\"put\",\"coll\":\"$members\",\"doc\":\"d\","
             "\"field\":\"f\",\"value\":1}\n"
             "{\"op\":\"put\",\"coll\":\"c\",\"doc\":\"d\",\"field\":\"f\","
             "\"value\":1,\"extra\":2}\n"
             "{\"op\":\"incr\",\"coll\":\"c\",\"doc\":\"d\",\"field\":\"f\","
             "\"n\":1,\"value\":2}\n"
             "{\"op\":\"del\",\"coll\":\"c\",\"doc\":\"d\",\"n\":1}\n"
             "{\"op\":\"move\",\"coll\":\"c\",\"doc\":\"d\"}\n"
             "{\"coll\":\"c\"}\n[1,2]\n\"str\"\n");
    PUT_TEXT(dir, "bad_names",
             "{\"op\":\"put\",\"coll\":\"\",\"doc\":\"d\",\"field\":\"f\","
             "\"value\":1}\n"
             "{\"op\":\"put\",\"coll\":\"c\",\"doc\":\"a\\u0000b\","
             "\"field\":\"f\",\"value\":1}\n"
             "{\"op\":\"put\",\"coll\":\"c\",\"doc\":\"d\",\"field\":"
             "\"0123456789012345678901234567890123456789012345678901234567890"
             "12345\",\"value\":1}\n");
    PUT_TEXT(dir, "bad_values",
             "{\"op\":\"put\",\"coll\":\"c\",\"doc\":\"d\",\"field\":\"f\","
             "\"value\":[1]}\n"
             "{\"op\":\"put\",\"coll\":\"c\",\"doc\":\"d\",\"field\":\"f\","
             "\"value\":{\"$bytes\":\"!!\"}}\n"
             "{\"op\":\"put\",\"coll\":\"c\",\"doc\":\"d\",\"field\":\"f\","
             "\"value\":{\"$bytes\":\"AA==\",\"x\":1}}\n"
             "{\"op\":\"put\",\"coll\":\"c\",\"doc\":\"d\",\"field\":\"f\","
             "\"value\":99999999999999999999}\n"
             "{\"op\":\"put\",\"coll\":\"c\",\"doc\":\"d\",\"field\":\"f\","
             "\"value\":1e999}\n");
    PUT_TEXT(dir, "bad_json",
             "{\"op\":\"put\",\"coll\":\"c\"\n{\"op\":\"put\"}}\n"
             "{\"op\":\"put\",\"op\":\"del\",\"coll\":\"c\",\"doc\":\"d\"}\n"
             "\xff\xfe{}\n{\"op\":\"put\\ud800\"}\n");
    PUT_TEXT(dir, "msgpack_dd_ff000000", "\xdd\xff\x00\x00\x00");
    memset(b, '[', 100000); /* 100,000 levels of nesting */
    fuzz_put_seed(dir, "bomb_nesting_100000", b, 100000);
    for (n = 0; n + 11 <= 60000; n += 11)
        memcpy(b + n, "{\"value\":[", 10), b[n + 10] = ' ';
    fuzz_put_seed(dir, "bomb_object_chain", b, n);
    {
        static const char head[] =
            "{\"op\":\"put\",\"coll\":\"c\",\"doc\":\"d\",\"field\":\"f\","
            "\"value\":{\"$bytes\":\"";
        n = sizeof head - 1;
        memcpy(b, head, n);
        memset(b + n, 'A', 60000); /* 45,000 bytes of zeros */
        memcpy(b + n + 60000, "\"}}\n", 4);
        fuzz_put_seed(dir, "big_bytes_value", b, n + 60004);
    }
    free(b);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return fuzz_seeds_if_asked(write_seeds);
}

/* ---- jansson through dlopen ------------------------------------------
 * Each function the included CLI files call forwards to the library,
 * loaded on first use. Prototypes are jansson 2.14's (jansson.h).
 */
#ifndef STRATA_FUZZ_HAVE_JANSSON

static void *
jansson_sym(const char *name)
{
    static void *lib;
    void *p;

    if (lib == NULL)
        lib = dlopen("libjansson.so.4", RTLD_NOW | RTLD_LOCAL);
    p = lib ? dlsym(lib, name) : NULL;
    if (p == NULL) {
        fprintf(stderr, "fuzz_import: jansson: %s: %s\n", name, dlerror());
        abort();
    }
    return p;
}

#define FWD(ret, name, params, args)                                         \
    ret name params                                                          \
    {                                                                        \
        static ret(*fn) params;                                              \
        if (fn == NULL)                                                      \
            *(void **)&fn = jansson_sym(#name);                              \
        return fn args;                                                      \
    }

FWD(json_t *, json_array, (void), ())
FWD(int, json_array_append_new, (json_t *a, json_t *v), (a, v))
FWD(json_t *, json_array_get, (const json_t *a, size_t i), (a, i))
FWD(size_t, json_array_size, (const json_t *a), (a))
FWD(size_t, json_dumpb,
    (const json_t *j, char *b, size_t n, size_t f), (j, b, n, f))
FWD(char *, json_dumps, (const json_t *j, size_t f), (j, f))
FWD(json_t *, json_false, (void), ())
FWD(json_t *, json_true, (void), ())
FWD(json_t *, json_null, (void), ())
FWD(json_t *, json_integer, (json_int_t v), (v))
FWD(json_int_t, json_integer_value, (const json_t *j), (j))
FWD(json_t *, json_loadb,
    (const char *b, size_t n, size_t f, json_error_t *e), (b, n, f, e))
FWD(json_t *, json_loads, (const char *s, size_t f, json_error_t *e),
    (s, f, e))
FWD(json_t *, json_object, (void), ())
FWD(json_t *, json_object_get, (const json_t *o, const char *k), (o, k))
FWD(json_t *, json_object_getn,
    (const json_t *o, const char *k, size_t n), (o, k, n))
FWD(void *, json_object_iter, (json_t *o), (o))
FWD(const char *, json_object_iter_key, (void *i), (i))
FWD(size_t, json_object_iter_key_len, (void *i), (i))
FWD(void *, json_object_iter_next, (json_t *o, void *i), (o, i))
FWD(json_t *, json_object_iter_value, (void *i), (i))
FWD(void *, json_object_key_to_iter, (const char *k), (k))
FWD(int, json_object_set_new, (json_t *o, const char *k, json_t *v),
    (o, k, v))
FWD(size_t, json_object_size, (const json_t *o), (o))
FWD(json_t *, json_real, (double v), (v))
FWD(double, json_real_value, (const json_t *j), (j))
FWD(json_t *, json_string, (const char *s), (s))
FWD(size_t, json_string_length, (const json_t *j), (j))
FWD(const char *, json_string_value, (const json_t *j), (j))
FWD(json_t *, json_stringn, (const char *s, size_t n), (s, n))
FWD(json_t *, json_stringn_nocheck, (const char *s, size_t n), (s, n))

void
json_delete(json_t *j)
{
    static void (*fn)(json_t *);

    if (fn == NULL)
        *(void **)&fn = jansson_sym("json_delete");
    fn(j);
}

#undef FWD
#endif
