/*
 * test_lens.c: the lens language (parse, format, invert) and what lenses
 * do to documents and ops (epoch/lens.h).
 *
 * Cases: parse (every form), errors (exact code and line), format
 * (canonical text round trips), invert, steps (each step and its inverse
 * on documents and ops), convert (every built-in pair both ways, maps,
 * failures), chain (rebasing through three lenses and back), drop, doc
 * (the container), model (a seeded check that migrating a document equals
 * rebasing the ops that built it).
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "epoch/lens.h"
#include "support/support.h"

/* ---- helpers ---------------------------------------------------------- */

static epoch_lens *
parse_ok(const char *text)
{
    epoch_lens_error e;
    epoch_lens *l = NULL;
    int rc = epoch_lens_parse(&l, text, strlen(text), &e);

    ck_assert_msg(rc == CRDT_OK, "parse failed (%d): line %d: %s", rc,
                  e.line, e.message);
    ck_assert_ptr_nonnull(l);
    return l;
}

static char *
format_ok(const epoch_lens *l)
{
    char *text = NULL;
    size_t len = 0;

    ck_assert_int_eq(epoch_lens_format(&text, &len, l), CRDT_OK);
    ck_assert_uint_eq(strlen(text), len);
    return text;
}

static epoch_lens *
invert_ok(const epoch_lens *l)
{
    epoch_lens *inv = NULL;

    ck_assert_int_eq(epoch_lens_invert(&inv, l), CRDT_OK);
    return inv;
}

/* The canonical text of @p text must be @p want, and stable. */
static void
assert_canonical(const char *text, const char *want)
{
    epoch_lens *l = parse_ok(text), *again;
    char *got = format_ok(l), *got2;

    ck_assert_str_eq(got, want);
    again = parse_ok(got);
    got2 = format_ok(again);
    ck_assert_str_eq(got2, got);
    epoch_free(got);
    epoch_free(got2);
    epoch_lens_free(l);
    epoch_lens_free(again);
}

static void
assert_error(const char *text, size_t len, int rc, int line,
             const char *part)
{
    epoch_lens *sentinel = (epoch_lens *)&sentinel, *l = sentinel;
    epoch_lens_error e;
    int got;

    memset(&e, 0, sizeof e);
    got = epoch_lens_parse(&l, text, len, &e);
    ck_assert_msg(got == rc, "want %d got %d (line %d: %s)", rc, got, e.line,
                  e.message);
    ck_assert_ptr_eq(l, sentinel); /* nothing returned */
    ck_assert_int_eq(e.line, line);
    ck_assert_msg(strstr(e.message, part) != NULL, "message \"%s\" lacks \"%s\"",
                  e.message, part);
}

#define ERR(text, rc, line, part) assert_error(text, strlen(text), rc, line, part)

static crdt_value
S(const char *s)
{
    return crdt_value_str(s, strlen(s));
}

static int
value_same(const crdt_value *a, const crdt_value *b)
{
    if (a->type != b->type)
        return 0;
    switch (a->type) {
    case CRDT_VNULL:
        return 1;
    case CRDT_VBOOL:
        return a->u.b == b->u.b;
    case CRDT_VINT:
        return a->u.i == b->u.i;
    case CRDT_VDOUBLE:
        return memcmp(&a->u.d, &b->u.d, sizeof a->u.d) == 0;
    case CRDT_VSTRING:
    case CRDT_VBYTES:
        return a->u.s.len == b->u.s.len &&
               (a->u.s.len == 0 ||
                memcmp(a->u.s.ptr, b->u.s.ptr, a->u.s.len) == 0);
    }
    return 0;
}

#define ck_assert_value(got, want)                                         \
    do {                                                                   \
        crdt_value g_ = (got), w_ = (want);                                \
        ck_assert_msg(value_same(&g_, &w_), "value mismatch (type %d/%d)", \
                      (int)g_.type, (int)w_.type);                         \
    } while (0)

static epoch_op_view
op_put(const char *coll, const char *field, crdt_value v)
{
    epoch_op_view op;

    memset(&op, 0, sizeof op);
    op.kind = EPOCH_OP_PUT;
    op.coll = coll;
    op.doc = "doc1";
    op.field = field;
    op.value = v;
    return op;
}

/* One-field register document. */
static epoch_doc *
doc1(const char *field, crdt_value v)
{
    epoch_doc *d;

    ck_assert_int_eq(epoch_doc_new(&d), CRDT_OK);
    if (field != NULL)
        ck_assert_int_eq(epoch_doc_set_register(d, field, &v), CRDT_OK);
    return d;
}

/* ---- parse ------------------------------------------------------------ */

static const char example[] =
    "# contacts schema, version 1 to 2\n"
    "collection contacts 1 -> 2\n"
    "rename name -> full_name\n"
    "add note string default \"\"\n"
    "remove legacy_flag                 # inverse = add ... null\n"
    "remove old_age int default 0\n"
    "convert age int -> string          # built-in conversion\n"
    "convert status string -> int map \"a\"=1, \"b\"=2 default 0\n"
    "\n"
    "collection old_stuff 3 -> 4\n"
    "drop\n";

static const char example_canonical[] =
    "collection contacts 1 -> 2\n"
    "rename name -> full_name\n"
    "add note string default \"\"\n"
    "remove legacy_flag\n"
    "remove old_age int default 0\n"
    "convert age int -> string\n"
    "convert status string -> int map \"a\"=1, \"b\"=2 default 0\n"
    "collection old_stuff 3 -> 4\n"
    "drop\n";

START_TEST(test_parse_every_step_form)
{
    epoch_lens *l = parse_ok(example);
    const char *coll;
    uint32_t from, to;

    ck_assert_uint_eq(epoch_lens_section_count(l), 2);
    ck_assert_int_eq(epoch_lens_section(l, 0, &coll, &from, &to), CRDT_OK);
    ck_assert_str_eq(coll, "contacts");
    ck_assert_uint_eq(from, 1);
    ck_assert_uint_eq(to, 2);
    ck_assert_int_eq(epoch_lens_section(l, 1, &coll, &from, &to), CRDT_OK);
    ck_assert_str_eq(coll, "old_stuff");
    ck_assert_uint_eq(from, 3);
    ck_assert_uint_eq(to, 4);
    ck_assert_int_eq(epoch_lens_section(l, 2, &coll, &from, &to), CRDT_EINVAL);
    ck_assert_int_eq(epoch_lens_drops(l, "old_stuff"), 1);
    ck_assert_int_eq(epoch_lens_drops(l, "contacts"), 0);
    ck_assert_int_eq(epoch_lens_invertible(l), 0);
    epoch_lens_free(l);
    assert_canonical(example, example_canonical);
}
END_TEST

START_TEST(test_parse_comments_blank_lines_crlf_and_spacing)
{
    assert_canonical("\n   \n# only a comment\n"
                     "collection   c\t0->1   # header comment\r\n"
                     "\trename a\t->\tb # tabs\r\n"
                     "add  s  string  default  \"x # not a comment\"#c\n"
                     "convert n int->string\n"
                     "   # trailing comment line, no final newline",
                     "collection c 0 -> 1\n"
                     "rename a -> b\n"
                     "add s string default \"x # not a comment\"\n"
                     "convert n int -> string\n");
}
END_TEST

START_TEST(test_parse_arrow_inside_names_and_tight_arrows)
{
    /* names may hold '-' and '>': only a separate "->" is an arrow */
    assert_canonical("collection c 0->1\nrename a -> b\n"
                     "convert n int->string\n",
                     "collection c 0 -> 1\nrename a -> b\n"
                     "convert n int -> string\n");
    assert_canonical("collection c 0 -> 1\nrename x->y ->z\n",
                     "collection c 0 -> 1\nrename x->y -> z\n");
}
END_TEST

START_TEST(test_parse_multiple_sections_and_queries)
{
    epoch_lens *l = parse_ok("collection a 1 -> 2\nadd x int default 1\n"
                             "collection b 7 -> 9\nrename p -> q\n"
                             "collection c 0 -> 1\nremove z\n");
    const char *f;

    ck_assert_uint_eq(epoch_lens_section_count(l), 3);
    ck_assert_int_eq(epoch_lens_map_field(&f, l, "b", "p"), CRDT_OK);
    ck_assert_str_eq(f, "q");
    ck_assert_int_eq(epoch_lens_map_field(&f, l, "a", "p"), CRDT_OK);
    ck_assert_str_eq(f, "p");
    ck_assert_int_eq(epoch_lens_map_field(&f, l, "c", "z"), CRDT_ENOTFOUND);
    ck_assert_uint_eq(epoch_lens_default_count(l, "a"), 1);
    ck_assert_uint_eq(epoch_lens_default_count(l, "b"), 0);
    ck_assert_uint_eq(epoch_lens_default_count(l, "nope"), 0);
    ck_assert_int_eq(epoch_lens_invertible(l), 1);
    epoch_lens_free(l);
}
END_TEST

START_TEST(test_parse_literals)
{
    epoch_lens *l = parse_ok(
        "collection c 0 -> 1\n"
        "add s string default \"q\\\"b\\\\s\\/\\n\\t\\r\\b\\f\\u00e9\\ud83d\\ude00\\u0000\"\n"
        "add u string default \"h\xc3\xa9 #\"\n"
        "add b bytes default {\"$bytes\":\"AAEC/w==\"}\n"
        "add e bytes default { \"$bytes\" : \"\" }\n"
        "add d double default -1.5e3\n"
        "add i int default -9223372036854775808\n"
        "add j int default 9223372036854775807\n"
        "add k double default 2\n"
        "add t bool default true\n"
        "add n null default null\n");
    static const char want_s[] = "q\"b\\s/\n\t\r\b\f\xc3\xa9\xf0\x9f\x98\x80";
    const char *f;
    crdt_value v;

    ck_assert_uint_eq(epoch_lens_default_count(l, "c"), 10);
    ck_assert_int_eq(epoch_lens_default(&f, &v, l, "c", 0), CRDT_OK);
    ck_assert_str_eq(f, "s");
    ck_assert_value(v, crdt_value_str(want_s, sizeof want_s)); /* + NUL */
    ck_assert_int_eq(epoch_lens_default(&f, &v, l, "c", 1), CRDT_OK);
    ck_assert_value(v, S("h\xc3\xa9 #"));
    ck_assert_int_eq(epoch_lens_default(&f, &v, l, "c", 2), CRDT_OK);
    ck_assert_value(v, crdt_value_bytes("\x00\x01\x02\xff", 4));
    ck_assert_int_eq(epoch_lens_default(&f, &v, l, "c", 3), CRDT_OK);
    ck_assert_value(v, crdt_value_bytes("", 0));
    ck_assert_int_eq(epoch_lens_default(&f, &v, l, "c", 4), CRDT_OK);
    ck_assert_value(v, crdt_value_double(-1500.0));
    ck_assert_int_eq(epoch_lens_default(&f, &v, l, "c", 5), CRDT_OK);
    ck_assert_value(v, crdt_value_int(INT64_MIN));
    ck_assert_int_eq(epoch_lens_default(&f, &v, l, "c", 6), CRDT_OK);
    ck_assert_value(v, crdt_value_int(INT64_MAX));
    ck_assert_int_eq(epoch_lens_default(&f, &v, l, "c", 7), CRDT_OK);
    ck_assert_value(v, crdt_value_double(2.0));
    ck_assert_int_eq(epoch_lens_default(&f, &v, l, "c", 8), CRDT_OK);
    ck_assert_value(v, crdt_value_bool(1));
    ck_assert_int_eq(epoch_lens_default(&f, &v, l, "c", 9), CRDT_OK);
    ck_assert_value(v, crdt_value_null());
    ck_assert_int_eq(epoch_lens_default(&f, &v, l, "c", 10), CRDT_EINVAL);
    epoch_lens_free(l);
}
END_TEST

/* A name of @p n bytes 'a' (n < 100). */
static const char *
long_name(size_t n)
{
    static char buf[100];

    memset(buf, 'a', n);
    buf[n] = '\0';
    return buf;
}

START_TEST(test_parse_name_of_64_bytes_is_fine)
{
    char text[256];
    epoch_lens *l;

    snprintf(text, sizeof text, "collection %s 0 -> 1\nremove %s\n",
             long_name(EPOCH_LENS_MAX_NAME), long_name(EPOCH_LENS_MAX_NAME));
    l = parse_ok(text);
    epoch_lens_free(l);
}
END_TEST

START_TEST(test_parse_limits_at_the_edge_pass)
{
    size_t cap = 20 * (EPOCH_LENS_MAX_STEPS + 2), n, i;
    char *text = malloc(cap);
    epoch_lens *l;

    n = (size_t)sprintf(text, "collection c 0 -> 1\n");
    for (i = 0; i < EPOCH_LENS_MAX_STEPS; i++)
        n += (size_t)sprintf(text + n, "add f%zu int\n", i);
    l = parse_ok(text);
    epoch_lens_free(l);
    /* a line of exactly EPOCH_LENS_MAX_LINE bytes */
    n = (size_t)sprintf(text, "collection c 0 -> 1\nremove x #");
    memset(text + n, 'x', EPOCH_LENS_MAX_LINE - 10);
    text[n + EPOCH_LENS_MAX_LINE - 10] = '\0';
    l = parse_ok(text);
    epoch_lens_free(l);
    free(text);
}
END_TEST

/* ---- errors ----------------------------------------------------------- */

START_TEST(test_error_unknown_step)
{
    ERR("collection c 1 -> 2\nadd x int\nrenme a -> b\n", CRDT_ECORRUPT, 3,
        "unknown step \"renme\"");
    ERR("# c\ncollection c 1 -> 2\nCollection d 1 -> 2\n", CRDT_ECORRUPT, 3,
        "unknown step \"Collection\"");
}
END_TEST

START_TEST(test_error_bad_arrow)
{
    ERR("collection c 1 -> 2\nrename a => b\n", CRDT_ECORRUPT, 2,
        "expected \"->\", found \"=>\"");
    ERR("collection c 1 => 2\nrename a -> b\n", CRDT_ECORRUPT, 1,
        "expected \"->\"");
    ERR("collection c 1 -> 2\nconvert a int string\n", CRDT_ECORRUPT, 2,
        "expected \"->\", found \"string\"");
    ERR("collection c 1 -> 2\nrename a->b\n", CRDT_ECORRUPT, 2,
        "expected \"->\", found \"\"");
}
END_TEST

START_TEST(test_error_versions)
{
    ERR("collection c 2 -> 2\nremove a\n", CRDT_ECORRUPT, 1,
        "TO (2) must be greater than FROM (2)");
    ERR("\ncollection c 5 -> 3\nremove a\n", CRDT_ECORRUPT, 2,
        "must be greater");
    ERR("collection c -1 -> 3\nremove a\n", CRDT_ECORRUPT, 1,
        "bad version \"-1\"");
    ERR("collection c 1x -> 3\nremove a\n", CRDT_ECORRUPT, 1,
        "bad version \"1x\"");
    ERR("collection c 1 -> 4294967296\nremove a\n", CRDT_ECORRUPT, 1,
        "version out of range");
    ERR("collection c\n", CRDT_ECORRUPT, 1, "bad version");
}
END_TEST

START_TEST(test_error_bad_type)
{
    ERR("collection c 1 -> 2\nconvert a int -> strng\n", CRDT_ECORRUPT, 2,
        "unknown type \"strng\"");
    ERR("collection c 1 -> 2\nadd a Int\n", CRDT_ECORRUPT, 2,
        "unknown type \"Int\"");
    ERR("collection c 1 -> 2\nadd a\n", CRDT_ECORRUPT, 2, "missing type");
    ERR("collection c 1 -> 2\nremove a int4 default 1\n", CRDT_ECORRUPT, 2,
        "unknown type \"int4\"");
}
END_TEST

START_TEST(test_error_bad_literal)
{
    ERR("collection c 1 -> 2\n\nadd a int default 12x\n", CRDT_ECORRUPT, 3,
        "bad default \"12x\"");
    ERR("collection c 1 -> 2\nadd a int default \"12\"\n", CRDT_ECORRUPT, 2,
        "default \"?12?\" is not an int");
    ERR("collection c 1 -> 2\nadd a bool default tru\n", CRDT_ECORRUPT, 2,
        "bad default \"tru\"");
    ERR("collection c 1 -> 2\nadd a int default 01\n", CRDT_ECORRUPT, 2,
        "bad default \"01\"");
    ERR("collection c 1 -> 2\nadd a int default 9223372036854775808\n",
        CRDT_ECORRUPT, 2, "number out of range");
    ERR("collection c 1 -> 2\nadd a double default 1e999\n", CRDT_ECORRUPT,
        2, "number out of range");
    ERR("collection c 1 -> 2\nadd a double default 9007199254740993\n",
        CRDT_ECORRUPT, 2, "no exact double");
    ERR("collection c 1 -> 2\nadd a string default \"\\x\"\n", CRDT_ECORRUPT,
        2, "bad escape");
    ERR("collection c 1 -> 2\nadd a string default \"\\udc00\"\n",
        CRDT_ECORRUPT, 2, "bad escape");
    ERR("collection c 1 -> 2\nadd a string default \"\\ud800x\"\n",
        CRDT_ECORRUPT, 2, "bad escape");
    ERR("collection c 1 -> 2\nadd a string default \"\xff\"\n", CRDT_ECORRUPT,
        2, "not valid UTF-8");
    ERR("collection c 1 -> 2\nadd a string default \"a\tb\"\n", CRDT_ECORRUPT,
        2, "control character");
    ERR("collection c 1 -> 2\nadd a bytes default {\"$bytes\":\"AAE\"}\n",
        CRDT_ECORRUPT, 2, "bad base64");
    ERR("collection c 1 -> 2\nadd a bytes default {\"$bytes\":\"AAF=\"}\n",
        CRDT_ECORRUPT, 2, "bad base64"); /* spare bits set */
    ERR("collection c 1 -> 2\nadd a bytes default \"\"\n", CRDT_ECORRUPT, 2,
        "is not a bytes");
    ERR("collection c 1 -> 2\nadd a bytes default {\"$byte\":\"\"}\n",
        CRDT_ECORRUPT, 2, "bad default");
    ERR("collection c 1 -> 2\nadd a bytes default {\"$bytes\":\"AA==\"\n",
        CRDT_ECORRUPT, 2, "bad default");
    ERR("collection c 1 -> 2\nadd a bytes default {\"$bytes\":\"AA==\n",
        CRDT_ECORRUPT, 2, "unterminated string");
    ERR("collection c 1 -> 2\nadd a bytes default {\"$bytes\":\"A=AA\"}\n",
        CRDT_ECORRUPT, 2, "bad base64");
    ERR("collection c 1 -> 2\nadd a int default\n", CRDT_ECORRUPT, 2,
        "missing default");
    ERR("collection c 1 -> 2\nadd a int 5\n", CRDT_ECORRUPT, 2,
        "expected \"default\"");
}
END_TEST

START_TEST(test_error_unterminated_string)
{
    ERR("collection c 1 -> 2\nadd a string default \"abc\n", CRDT_ECORRUPT, 2,
        "unterminated string");
    ERR("collection c 1 -> 2\nadd a string default \"abc\\\"\n",
        CRDT_ECORRUPT, 2, "unterminated string");
    ERR("collection c 1 -> 2\nadd a string default \"abc#\"x\n",
        CRDT_ECORRUPT, 2, "bad default");
}
END_TEST

START_TEST(test_error_step_before_section)
{
    ERR("# header comes later\nadd a int\ncollection c 1 -> 2\n",
        CRDT_ECORRUPT, 2, "step before any collection line");
}
END_TEST

START_TEST(test_error_empty_section)
{
    ERR("collection a 1 -> 2\n\n# nothing\ncollection b 1 -> 2\nremove x\n",
        CRDT_ECORRUPT, 1, "empty section");
    ERR("collection a 1 -> 2\nremove x\ncollection b 1 -> 2\n# nothing\n",
        CRDT_ECORRUPT, 3, "empty section");
    ERR("", CRDT_ECORRUPT, 0, "no collection section");
    ERR("# just a comment\n\n", CRDT_ECORRUPT, 0, "no collection section");
}
END_TEST

START_TEST(test_error_name_too_long)
{
    char text[256];

    snprintf(text, sizeof text, "collection c 0 -> 1\n\nrename a -> %s\n",
             long_name(EPOCH_LENS_MAX_NAME + 1));
    ERR(text, CRDT_ECORRUPT, 3, "new field name too long (65 bytes");
    snprintf(text, sizeof text, "collection %s 0 -> 1\nremove a\n",
             long_name(EPOCH_LENS_MAX_NAME + 1));
    ERR(text, CRDT_ECORRUPT, 1, "collection name too long");
    ERR("collection c 0 -> 1\nremove a\xff\n", CRDT_ECORRUPT, 2,
        "bad field name");
    assert_error("collection c 0 -> 1\nremove a\0b\n", 31, CRDT_ECORRUPT, 2,
                 "bad field name");
}
END_TEST

START_TEST(test_error_file_too_long)
{
    size_t len = EPOCH_LENS_MAX_FILE + 1, i;
    char *text = malloc(len);

    epoch_lens *l = NULL;

    /* 100-byte lines after a 2-line header: the first byte past 1 MiB
     * follows 2 + 10485 line ends, so it is on line 10488 */
    for (i = 0; i < len; i++)
        text[i] = i % 100 == 99 ? '\n' : '#';
    memcpy(text, "collection c 0 -> 1\nremove a\n", 29);
    assert_error(text, len, CRDT_ELIMIT, 10488,
                 "file longer than 1048576 bytes");
    /* exactly 1 MiB is fine */
    ck_assert_int_eq(epoch_lens_parse(&l, text, EPOCH_LENS_MAX_FILE, NULL),
                     CRDT_OK);
    epoch_lens_free(l);
    free(text);
}
END_TEST

START_TEST(test_error_line_and_step_limits)
{
    size_t cap = 20 * (EPOCH_LENS_MAX_STEPS + 2), n, i;
    char *text = malloc(cap);

    n = (size_t)sprintf(text, "collection c 0 -> 1\nremove x\n#");
    memset(text + n, 'x', EPOCH_LENS_MAX_LINE);
    strcpy(text + n + EPOCH_LENS_MAX_LINE, "\nremove y\n");
    ERR(text, CRDT_ELIMIT, 3, "line longer than 4096 bytes");

    n = (size_t)sprintf(text, "collection c 0 -> 1\n");
    for (i = 0; i <= EPOCH_LENS_MAX_STEPS; i++)
        n += (size_t)sprintf(text + n, "add f%zu int\n", i);
    ERR(text, CRDT_ELIMIT, EPOCH_LENS_MAX_STEPS + 2, "more than 10000 steps");
    free(text);
}
END_TEST

START_TEST(test_error_meaning)
{
    ERR("collection c 0 -> 1\nremove a\ncollection c 1 -> 2\nremove b\n",
        CRDT_ECORRUPT, 3, "second section for collection \"c\"");
    ERR("collection c 0 -> 1\nremove a\ndrop\n", CRDT_ECORRUPT, 3,
        "drop must be the only step");
    ERR("collection c 0 -> 1\ndrop\nremove a\n", CRDT_ECORRUPT, 3,
        "drop must be the only step");
    ERR("collection c 0 -> 1\nrename a -> a\n", CRDT_ECORRUPT, 2,
        "rename to the same name");
    ERR("collection c 0 -> 1\nconvert a string -> int map \"x\"=1, \"x\"=2\n",
        CRDT_ECORRUPT, 2, "duplicate map key");
    ERR("collection c 0 -> 1\nconvert a string -> int map \"x\"=1, \"y\"=1\n",
        CRDT_ECORRUPT, 2, "the inverse would be ambiguous");
    ERR("collection c 0 -> 1\nconvert a string -> int map \"x\" 1\n",
        CRDT_ECORRUPT, 2, "expected \"=\"");
    ERR("collection c 0 -> 1\nconvert a string -> int map \"x\"=null\n",
        CRDT_ECORRUPT, 2, "map value \"null\" is not an int");
    ERR("collection c 0 -> 1\nconvert a null -> int\n", CRDT_ECORRUPT, 2,
        "cannot convert from or to null");
    ERR("collection c 0 -> 1\nconvert a int -> int\n", CRDT_ECORRUPT, 2,
        "needs a map");
    ERR("collection c 0 -> 1\nconvert a bool -> double\n", CRDT_ECORRUPT, 2,
        "no built-in conversion from bool to double");
    ERR("collection c 0 -> 1\nconvert a int -> string default \"\" map 1=\"\"\n",
        CRDT_ECORRUPT, 2, "unexpected \"map\"");
    ERR("collection c 0 -> 1\nremove a b\n", CRDT_ECORRUPT, 2,
        "unknown type \"b\"");
    ERR("collection c 0 -> 1\nrename a -> b c\n", CRDT_ECORRUPT, 2,
        "unexpected \"c\" at end of line");
    ERR("collection c 0 -> 1\ndrop it\n", CRDT_ECORRUPT, 2,
        "unexpected \"it\"");
    ERR("collection c 0 -> 1 2\nremove a\n", CRDT_ECORRUPT, 1,
        "unexpected \"2\"");
    ERR("collection c 0 -> 1\nrename\n", CRDT_ECORRUPT, 2,
        "missing field name");
}
END_TEST

START_TEST(test_error_null_err_and_bad_args)
{
    epoch_lens *l = NULL;

    ck_assert_int_eq(epoch_lens_parse(&l, "nope", 4, NULL), CRDT_ECORRUPT);
    ck_assert_ptr_null(l);
    ck_assert_int_eq(epoch_lens_parse(NULL, "x", 1, NULL), CRDT_EINVAL);
    ck_assert_int_eq(epoch_lens_parse(&l, NULL, 1, NULL), CRDT_EINVAL);
    ck_assert_int_eq(epoch_lens_parse(&l, NULL, 0, NULL), CRDT_ECORRUPT);
}
END_TEST

/* ---- format ----------------------------------------------------------- */

START_TEST(test_format_every_step_round_trips)
{
    static const char *const lines[] = {
        "rename a -> b",
        "add a string default \"\"",
        "add a null default null",
        "add a bytes default {\"$bytes\":\"AP8=\"}",
        "add a double default 0.1",
        "add a double default -0.0",
        "add a double default 1e+300",
        "add a int default -5",
        "add a bool default false",
        "remove a",
        "remove a int default 0",
        "remove a string default null",
        "convert a int -> string",
        "convert a string -> int map \"a\"=1, \"b\"=2 default 0",
        "convert a string -> int default null reverse-default \"?\"",
        "convert a int -> bool map 2=true reverse-default -1",
        "convert a bytes -> string",
        "convert a double -> int map 0.5=1000",
        "convert a string -> string map \"\\n\"=\"\\u0001\"",
        "drop",
    };
    char text[512], want[512];
    size_t i;

    for (i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        snprintf(text, sizeof text, "collection c 0 -> 1\n%s\n", lines[i]);
        snprintf(want, sizeof want, "collection c 0 -> 1\n%s\n", lines[i]);
        assert_canonical(text, want);
    }
}
END_TEST

START_TEST(test_format_normalizes)
{
    assert_canonical("collection c 0 -> 1\n"
                     "add a double default 2\n"
                     "add b int\n"
                     "remove c null default null\n"
                     "remove d int\n"
                     "convert e string -> int map \"z\" = 3 ,\"b\"=1,\"a\"=2\n"
                     "add f string default \"\\/\\u00e9\\t\"\n"
                     "add g double default 1E2\n"
                     "add h double default 1.5e-7\n"
                     "add i double default 1.5e-8\n"
                     "add j double default 1e21\n"
                     "add k string default \"say \\\"hi\\\" \\u20AC\"\n",
                     "collection c 0 -> 1\n"
                     "add a double default 2.0\n"
                     "add b int default null\n"
                     "remove c\n"
                     "remove d int default null\n"
                     "convert e string -> int map \"a\"=2, \"b\"=1, \"z\"=3\n"
                     "add f string default \"/\xc3\xa9\\t\"\n"
                     "add g double default 100.0\n"
                     "add h double default 0.00000015\n"
                     "add i double default 1.5e-08\n"
                     "add j double default 1e+21\n"
                     "add k string default \"say \\\"hi\\\" \xe2\x82\xac\"\n");
}
END_TEST

START_TEST(test_format_args)
{
    epoch_lens *l = parse_ok("collection c 0 -> 1\nremove a\n");
    char *text = NULL;

    ck_assert_int_eq(epoch_lens_format(NULL, NULL, l), CRDT_EINVAL);
    ck_assert_int_eq(epoch_lens_format(&text, NULL, NULL), CRDT_EINVAL);
    ck_assert_int_eq(epoch_lens_format(&text, NULL, l), CRDT_OK);
    ck_assert_str_eq(text, "collection c 0 -> 1\nremove a\n");
    epoch_free(text);
    epoch_lens_free(l);
    epoch_lens_free(NULL);
}
END_TEST

/* ---- invert ----------------------------------------------------------- */

START_TEST(test_invert_text)
{
    epoch_lens *l = parse_ok(
        "collection a 1 -> 2\n"
        "rename name -> full_name\n"
        "add note string default \"\"\n"
        "remove legacy_flag\n"
        "remove old_age int default 0\n"
        "convert age int -> string\n"
        "convert status string -> int map \"a\"=2, \"b\"=1 default 0\n"
        "collection b 4 -> 5\n"
        "convert x int -> bool default false reverse-default 7\n");
    epoch_lens *inv = invert_ok(l), *back = invert_ok(inv);
    char *t = format_ok(l), *ti = format_ok(inv), *tb = format_ok(back);

    ck_assert_str_eq(ti,
                     "collection b 5 -> 4\n"
                     "convert x bool -> int default 7 reverse-default false\n"
                     "collection a 2 -> 1\n"
                     "convert status int -> string map 1=\"b\", 2=\"a\" "
                     "reverse-default 0\n"
                     "convert age string -> int\n"
                     "add old_age int default 0\n"
                     "add legacy_flag null default null\n"
                     "remove note string default \"\"\n"
                     "rename full_name -> name\n");
    ck_assert_str_eq(tb, t);
    ck_assert_int_eq(epoch_lens_invertible(inv), 1);
    epoch_free(t);
    epoch_free(ti);
    epoch_free(tb);
    epoch_lens_free(l);
    epoch_lens_free(inv);
    epoch_lens_free(back);
}
END_TEST

START_TEST(test_invert_twice_is_identity_for_every_step)
{
    epoch_lens *l = parse_ok(example), *inv = invert_ok(l);
    epoch_lens *back = invert_ok(inv);
    char *t = format_ok(l), *tb = format_ok(back);

    ck_assert_str_eq(tb, t);
    ck_assert_int_eq(epoch_lens_invert(NULL, l), CRDT_EINVAL);
    epoch_free(t);
    epoch_free(tb);
    epoch_lens_free(l);
    epoch_lens_free(inv);
    epoch_lens_free(back);
}
END_TEST

/* ---- steps on documents and ops --------------------------------------- */

/* Migrate @p d through @p l and its inverse; the result must be @p mid
 * and then @p back. */
static void
doc_round_trip(const char *text, const char *coll, epoch_doc *d,
               const epoch_doc *mid, const epoch_doc *back)
{
    epoch_lens *l = parse_ok(text), *inv = invert_ok(l);

    ck_assert_int_eq(epoch_lens_apply_doc(d, l, coll), CRDT_OK);
    ck_assert(epoch_doc_equal(d, mid));
    ck_assert_int_eq(epoch_lens_apply_doc(d, inv, coll), CRDT_OK);
    ck_assert(epoch_doc_equal(d, back));
    epoch_lens_free(l);
    epoch_lens_free(inv);
}

START_TEST(test_step_rename)
{
    static const char text[] = "collection c 1 -> 2\nrename name -> full\n";
    static const char other[] = "other";
    epoch_doc *d = doc1("name", S("Ann")), *mid = doc1("full", S("Ann"));
    epoch_doc *back = doc1("name", S("Ann"));
    epoch_lens *l = parse_ok(text), *inv = invert_ok(l);
    epoch_op_view op = op_put("c", "name", S("Bo")), out;
    epoch_buf scratch = EPOCH_BUF_INIT;
    const char *reason = NULL, *f;
    crdt_value one = crdt_value_int(1);

    ck_assert_int_eq(epoch_doc_set_register(d, "other", &one), CRDT_OK);
    ck_assert_int_eq(epoch_doc_set_register(mid, "other", &one), CRDT_OK);
    ck_assert_int_eq(epoch_doc_set_register(back, "other", &one), CRDT_OK);
    doc_round_trip(text, "c", d, mid, back);

    ck_assert_int_eq(epoch_lens_apply_op(&out, &scratch, l, &op, &reason),
                     CRDT_OK);
    ck_assert_str_eq(out.field, "full");
    ck_assert_str_eq(out.coll, "c");
    ck_assert_str_eq(out.doc, "doc1");
    ck_assert_value(out.value, S("Bo"));
    ck_assert_int_eq(epoch_lens_apply_op(&out, &scratch, inv, &out, &reason),
                     CRDT_OK);
    ck_assert_str_eq(out.field, "name");
    /* an untouched field keeps its pointer */
    ck_assert_int_eq(epoch_lens_map_field(&f, l, "c", other), CRDT_OK);
    ck_assert_ptr_eq(f, other);
    epoch_buf_free(&scratch);
    epoch_lens_free(l);
    epoch_lens_free(inv);
    epoch_doc_free(d);
    epoch_doc_free(mid);
    epoch_doc_free(back);
}
END_TEST

START_TEST(test_step_rename_onto_existing_field_replaces_it)
{
    epoch_lens *l = parse_ok("collection c 1 -> 2\nrename a -> b\n");
    epoch_doc *d = doc1("a", crdt_value_int(1)), *want = doc1("b",
                                                              crdt_value_int(1));
    epoch_doc *only_b = doc1("b", crdt_value_int(2)), *empty = doc1(NULL,
                                                              crdt_value_null());
    crdt_value two = crdt_value_int(2);
    epoch_op_view op = op_put("c", "b", two), out;
    epoch_buf scratch = EPOCH_BUF_INIT;
    const char *reason = NULL, *f;

    ck_assert_int_eq(epoch_doc_set_register(d, "b", &two), CRDT_OK);
    ck_assert_int_eq(epoch_lens_apply_doc(d, l, "c"), CRDT_OK);
    ck_assert(epoch_doc_equal(d, want));
    /* the old b is gone even when there is no a to take its name */
    ck_assert_int_eq(epoch_lens_apply_doc(only_b, l, "c"), CRDT_OK);
    ck_assert(epoch_doc_equal(only_b, empty));
    ck_assert_int_eq(epoch_lens_map_field(&f, l, "c", "b"), CRDT_ENOTFOUND);
    ck_assert_int_eq(epoch_lens_apply_op(&out, &scratch, l, &op, &reason),
                     CRDT_ENOTFOUND);
    ck_assert_str_eq(reason, "field removed by lens");
    epoch_buf_free(&scratch);
    epoch_lens_free(l);
    epoch_doc_free(d);
    epoch_doc_free(want);
    epoch_doc_free(only_b);
    epoch_doc_free(empty);
}
END_TEST

START_TEST(test_step_add)
{
    static const char text[] = "collection c 1 -> 2\nadd note string default \"-\"\n";
    epoch_doc *d = doc1(NULL, crdt_value_null()), *mid = doc1("note", S("-"));
    epoch_doc *back = doc1(NULL, crdt_value_null());
    epoch_doc *has = doc1("note", S("kept")), *has_want = doc1("note", S("kept"));
    epoch_lens *l = parse_ok(text), *inv = invert_ok(l);
    epoch_op_view op = op_put("c", "note", S("x")), out;
    epoch_buf scratch = EPOCH_BUF_INIT;
    const char *reason = NULL, *f;
    crdt_value v;

    doc_round_trip(text, "c", d, mid, back);
    ck_assert_int_eq(epoch_lens_apply_doc(has, l, "c"), CRDT_OK);
    ck_assert(epoch_doc_equal(has, has_want)); /* present: left alone */

    ck_assert_uint_eq(epoch_lens_default_count(l, "c"), 1);
    ck_assert_int_eq(epoch_lens_default(&f, &v, l, "c", 0), CRDT_OK);
    ck_assert_str_eq(f, "note");
    ck_assert_value(v, S("-"));
    ck_assert_uint_eq(epoch_lens_default_count(inv, "c"), 0);

    /* forward, ops on the field pass; back, the field is removed */
    ck_assert_int_eq(epoch_lens_apply_op(&out, &scratch, l, &op, &reason),
                     CRDT_OK);
    ck_assert_str_eq(out.field, "note");
    ck_assert_int_eq(epoch_lens_apply_op(&out, &scratch, inv, &op, &reason),
                     CRDT_ENOTFOUND);
    ck_assert_str_eq(reason, "field removed by lens");
    epoch_buf_free(&scratch);
    epoch_lens_free(l);
    epoch_lens_free(inv);
    epoch_doc_free(d);
    epoch_doc_free(mid);
    epoch_doc_free(back);
    epoch_doc_free(has);
    epoch_doc_free(has_want);
}
END_TEST

START_TEST(test_step_remove_with_default)
{
    static const char text[] = "collection c 1 -> 2\nremove age int default 0\n";
    epoch_doc *d = doc1("age", crdt_value_int(0));
    epoch_doc *mid = doc1(NULL, crdt_value_null());
    epoch_doc *back = doc1("age", crdt_value_int(0));
    epoch_lens *l = parse_ok(text), *inv = invert_ok(l);
    epoch_op_view op = op_put("c", "age", crdt_value_int(3)), out;
    epoch_buf scratch = EPOCH_BUF_INIT;
    const char *reason = NULL, *f;

    doc_round_trip(text, "c", d, mid, back);
    ck_assert_int_eq(epoch_lens_apply_op(&out, &scratch, l, &op, &reason),
                     CRDT_ENOTFOUND);
    ck_assert_str_eq(reason, "field removed by lens");
    op.kind = EPOCH_OP_DEL_FIELD;
    ck_assert_int_eq(epoch_lens_apply_op(&out, &scratch, l, &op, NULL),
                     CRDT_ENOTFOUND);
    ck_assert_int_eq(epoch_lens_map_field(&f, l, "c", "age"), CRDT_ENOTFOUND);
    /* the inverse adds it back, with the default */
    ck_assert_int_eq(epoch_lens_apply_op(&out, &scratch, inv, &op, &reason),
                     CRDT_OK);
    ck_assert_str_eq(out.field, "age");
    ck_assert_uint_eq(epoch_lens_default_count(inv, "c"), 1);
    epoch_buf_free(&scratch);
    epoch_lens_free(l);
    epoch_lens_free(inv);
    epoch_doc_free(d);
    epoch_doc_free(mid);
    epoch_doc_free(back);
}
END_TEST

START_TEST(test_step_remove_plain_inverts_to_null)
{
    static const char text[] = "collection c 1 -> 2\nremove flag\n";
    epoch_doc *d = doc1("flag", crdt_value_bool(1));
    epoch_doc *mid = doc1(NULL, crdt_value_null());
    epoch_doc *back = doc1("flag", crdt_value_null());

    doc_round_trip(text, "c", d, mid, back);
    epoch_doc_free(d);
    epoch_doc_free(mid);
    epoch_doc_free(back);
}
END_TEST

START_TEST(test_step_removed_then_added_is_a_new_field)
{
    epoch_lens *l = parse_ok("collection c 1 -> 2\nremove f\n"
                             "add f int default 9\n");
    epoch_doc *d = doc1("f", S("old")), *want = doc1("f", crdt_value_int(9));
    const char *f;

    ck_assert_int_eq(epoch_lens_map_field(&f, l, "c", "f"), CRDT_ENOTFOUND);
    ck_assert_uint_eq(epoch_lens_default_count(l, "c"), 1);
    ck_assert_int_eq(epoch_lens_apply_doc(d, l, "c"), CRDT_OK);
    ck_assert(epoch_doc_equal(d, want));
    epoch_lens_free(l);
    epoch_doc_free(d);
    epoch_doc_free(want);
}
END_TEST

START_TEST(test_defaults_follow_later_steps)
{
    epoch_lens *l = parse_ok("collection c 1 -> 2\n"
                             "add n int default 5\n"
                             "rename n -> count\n"
                             "convert count int -> string\n"
                             "add gone int default 1\n"
                             "remove gone\n"
                             "add shadowed int default 1\n"
                             "rename other -> shadowed\n"
                             "add bad string default \"x\"\n"
                             "convert bad string -> int\n");
    epoch_doc *d = doc1(NULL, crdt_value_null()), *want;
    const char *f;
    crdt_value v;

    ck_assert_uint_eq(epoch_lens_default_count(l, "c"), 2);
    ck_assert_int_eq(epoch_lens_default(&f, &v, l, "c", 0), CRDT_OK);
    ck_assert_str_eq(f, "count");
    ck_assert_value(v, S("5"));
    ck_assert_int_eq(epoch_lens_default(&f, &v, l, "c", 1), CRDT_OK);
    ck_assert_str_eq(f, "bad");
    ck_assert_value(v, crdt_value_null()); /* failed conversion */
    /* apply_doc on an empty document writes exactly the defaults */
    want = doc1("count", S("5"));
    ck_assert_int_eq(epoch_doc_set_register(want, "bad", &v), CRDT_OK);
    ck_assert_int_eq(epoch_lens_apply_doc(d, l, "c"), CRDT_OK);
    ck_assert(epoch_doc_equal(d, want));
    epoch_lens_free(l);
    epoch_doc_free(d);
    epoch_doc_free(want);
}
END_TEST

/* ---- convert ---------------------------------------------------------- */

/* @p from converts to @p to through "convert f A -> B" on values, docs and
 * ops, and the inverse lens brings it back. */
static void
convert_step_both_ways(const char *tail, crdt_value from, crdt_value to)
{
    char text[160];
    epoch_lens *l, *inv;
    epoch_buf scratch = EPOCH_BUF_INIT;
    epoch_op_view op = op_put("c", "f", from), out;
    epoch_doc *d = doc1("f", from), *mid = doc1("f", to);
    epoch_doc *back = doc1("f", from);
    const char *reason = "unset";
    crdt_value v;

    snprintf(text, sizeof text, "collection c 0 -> 1\nconvert f %s\n", tail);
    l = parse_ok(text);
    inv = invert_ok(l);
    ck_assert_int_eq(epoch_lens_map_value(&v, &scratch, l, "c", "f", &from,
                                          &reason), CRDT_OK);
    ck_assert_value(v, to);
    ck_assert_int_eq(epoch_lens_map_value(&v, &scratch, inv, "c", "f", &v,
                                          &reason), CRDT_OK);
    ck_assert_value(v, from);
    ck_assert_str_eq(reason, "unset");

    ck_assert_int_eq(epoch_lens_apply_op(&out, &scratch, l, &op, &reason),
                     CRDT_OK);
    ck_assert_value(out.value, to);
    ck_assert_int_eq(epoch_lens_apply_op(&out, &scratch, inv, &out, &reason),
                     CRDT_OK);
    ck_assert_value(out.value, from);

    doc_round_trip(text, "c", d, mid, back);
    epoch_buf_free(&scratch);
    epoch_lens_free(l);
    epoch_lens_free(inv);
    epoch_doc_free(d);
    epoch_doc_free(mid);
    epoch_doc_free(back);
}

static void
convert_both_ways(const char *a, const char *b, crdt_value from,
                  crdt_value to)
{
    char tail[64];

    snprintf(tail, sizeof tail, "%s -> %s", a, b);
    convert_step_both_ways(tail, from, to);
}

START_TEST(test_convert_builtins_both_ways)
{
    convert_both_ways("int", "string", crdt_value_int(42), S("42"));
    convert_both_ways("int", "string", crdt_value_int(INT64_MIN),
                      S("-9223372036854775808"));
    convert_both_ways("double", "string", crdt_value_double(0.1), S("0.1"));
    convert_both_ways("double", "string", crdt_value_double(1.0), S("1"));
    convert_both_ways("double", "string", crdt_value_double(-0.0), S("-0"));
    convert_both_ways("double", "string", crdt_value_double(1e300),
                      S("1e+300"));
    convert_both_ways("double", "string", crdt_value_double(1.0 / 3),
                      S("0.3333333333333333"));
    convert_both_ways("bool", "string", crdt_value_bool(1), S("true"));
    convert_both_ways("bool", "string", crdt_value_bool(0), S("false"));
    convert_both_ways("string", "int", S("-17"), crdt_value_int(-17));
    convert_both_ways("string", "double", S("2.5"), crdt_value_double(2.5));
    convert_both_ways("string", "bool", S("false"), crdt_value_bool(0));
    convert_both_ways("int", "double", crdt_value_int(-3),
                      crdt_value_double(-3.0));
    convert_both_ways("int", "double", crdt_value_int(9007199254740992LL),
                      crdt_value_double(9007199254740992.0));
    convert_both_ways("double", "int", crdt_value_double(-4e15),
                      crdt_value_int(-4000000000000000LL));
    convert_both_ways("bool", "int", crdt_value_bool(1), crdt_value_int(1));
    convert_both_ways("int", "bool", crdt_value_int(0), crdt_value_bool(0));
    convert_both_ways("string", "bytes", S("h\xc3\xa9"),
                      crdt_value_bytes("h\xc3\xa9", 3));
    convert_both_ways("bytes", "string", crdt_value_bytes("", 0), S(""));
}
END_TEST

static void
convert_fails(const char *a, const char *b, crdt_value from,
              const char *reason_part)
{
    char text[128];
    epoch_lens *l;
    epoch_buf scratch = EPOCH_BUF_INIT;
    const char *reason = NULL;
    crdt_value v;

    snprintf(text, sizeof text, "collection c 0 -> 1\nconvert f %s -> %s\n",
             a, b);
    l = parse_ok(text);
    ck_assert_int_eq(epoch_lens_map_value(&v, &scratch, l, "c", "f", &from,
                                          &reason), CRDT_ETYPE);
    ck_assert_ptr_nonnull(reason);
    ck_assert_msg(strstr(reason, reason_part) != NULL, "reason \"%s\"",
                  reason);
    epoch_buf_free(&scratch);
    epoch_lens_free(l);
}

START_TEST(test_convert_failures_are_etype_with_reason)
{
    convert_fails("string", "int", S("abc"), "not a decimal integer");
    convert_fails("string", "int", S("07"), "not a decimal integer");
    convert_fails("string", "int", S(" 7"), "not a decimal integer");
    convert_fails("string", "int", S("-0"), "not a decimal integer");
    convert_fails("string", "int", S("9223372036854775808"), "int64 range");
    convert_fails("string", "double", S("1e999"), "finite JSON number");
    convert_fails("string", "double", S("nan"), "finite JSON number");
    convert_fails("string", "bool", S("TRUE"), "\"true\" or \"false\"");
    convert_fails("int", "bool", crdt_value_int(2), "neither 0 nor 1");
    convert_fails("int", "double", crdt_value_int(9007199254740993LL),
                  "no exact double");
    convert_fails("int", "double", crdt_value_int(INT64_MAX),
                  "no exact double");
    convert_fails("double", "int", crdt_value_double(1.5), "not an integer");
    convert_fails("double", "int", crdt_value_double(9.3e18),
                  "not an integer");
    convert_fails("double", "int", crdt_value_double(-0.0), "not an integer");
    convert_fails("double", "string", crdt_value_double(INFINITY),
                  "not finite");
    convert_fails("bytes", "string", crdt_value_bytes("\xc0\x80", 2),
                  "not valid UTF-8");
}
END_TEST

START_TEST(test_convert_failure_in_documents_and_ops)
{
    epoch_lens *l = parse_ok("collection c 0 -> 1\nconvert age string -> int\n"
                             "convert n string -> int default -1\n");
    epoch_doc *d = doc1("age", S("abc")), *want = doc1("age",
                                                       crdt_value_null());
    epoch_buf scratch = EPOCH_BUF_INIT;
    epoch_op_view op = op_put("c", "age", S("abc")), out;
    const char *reason = NULL;
    crdt_value v, bad = S("x");

    ck_assert_int_eq(epoch_doc_set_register(d, "n", &bad), CRDT_OK);
    v = crdt_value_int(-1);
    ck_assert_int_eq(epoch_doc_set_register(want, "n", &v), CRDT_OK);
    ck_assert_int_eq(epoch_lens_apply_doc(d, l, "c"), CRDT_OK);
    ck_assert(epoch_doc_equal(d, want)); /* null, or the default */

    ck_assert_int_eq(epoch_lens_apply_op(&out, &scratch, l, &op, &reason),
                     CRDT_ETYPE);
    ck_assert_str_eq(reason, "string is not a decimal integer in int64 range");
    op.field = "n";
    ck_assert_int_eq(epoch_lens_apply_op(&out, &scratch, l, &op, &reason),
                     CRDT_OK);
    ck_assert_value(out.value, crdt_value_int(-1));
    /* INCR and DEL_FIELD have no value to convert */
    op.field = "age";
    op.kind = EPOCH_OP_INCR;
    op.delta = 5;
    ck_assert_int_eq(epoch_lens_apply_op(&out, &scratch, l, &op, &reason),
                     CRDT_OK);
    ck_assert_int_eq(out.delta, 5);
    ck_assert_int_eq(out.kind, EPOCH_OP_INCR);
    /* values of another type, and null, are left alone */
    v = crdt_value_int(3);
    ck_assert_int_eq(epoch_lens_map_value(&v, &scratch, l, "c", "age", &v,
                                          &reason), CRDT_OK);
    ck_assert_value(v, crdt_value_int(3));
    v = crdt_value_null();
    ck_assert_int_eq(epoch_lens_map_value(&v, &scratch, l, "c", "age", &v,
                                          &reason), CRDT_OK);
    ck_assert_value(v, crdt_value_null());
    epoch_buf_free(&scratch);
    epoch_lens_free(l);
    epoch_doc_free(d);
    epoch_doc_free(want);
}
END_TEST

START_TEST(test_convert_int_to_string_extremes)
{
    static const struct {
        int64_t in;
        const char *out;
    } cases[] = {
        { 0, "0" }, { 7, "7" }, { -1, "-1" }, { 10, "10" },
        { INT64_MAX, "9223372036854775807" },
        { INT64_MIN, "-9223372036854775808" },
    };
    epoch_lens *l = parse_ok("collection c 0 -> 1\nconvert n int -> string\n");
    epoch_buf scratch = EPOCH_BUF_INIT;
    const char *reason = NULL;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        crdt_value v, in = crdt_value_int(cases[i].in);

        ck_assert_int_eq(epoch_lens_map_value(&v, &scratch, l, "c", "n", &in,
                                              &reason), CRDT_OK);
        ck_assert_value(v, crdt_value_str(cases[i].out,
                                          strlen(cases[i].out)));
    }
    epoch_buf_free(&scratch);
    epoch_lens_free(l);
}
END_TEST

START_TEST(test_convert_with_map)
{
    static const char text[] = "collection c 0 -> 1\n"
                               "convert status string -> int map \"a\"=1, "
                               "\"b\"=2 default 0\n";
    epoch_lens *l = parse_ok(text), *inv = invert_ok(l);
    epoch_buf scratch = EPOCH_BUF_INIT;
    const char *reason = NULL;
    crdt_value v, in;

    in = S("a");
    ck_assert_int_eq(epoch_lens_map_value(&v, &scratch, l, "c", "status", &in,
                                          &reason), CRDT_OK);
    ck_assert_value(v, crdt_value_int(1));
    ck_assert_int_eq(epoch_lens_map_value(&v, &scratch, inv, "c", "status",
                                          &v, &reason), CRDT_OK);
    ck_assert_value(v, S("a"));
    in = S("7"); /* no pair: the built-in */
    ck_assert_int_eq(epoch_lens_map_value(&v, &scratch, l, "c", "status", &in,
                                          &reason), CRDT_OK);
    ck_assert_value(v, crdt_value_int(7));
    ck_assert_int_eq(epoch_lens_map_value(&v, &scratch, inv, "c", "status",
                                          &v, &reason), CRDT_OK);
    ck_assert_value(v, S("7"));
    in = S("2"); /* would collide with "b"=2: falls to the default */
    ck_assert_int_eq(epoch_lens_map_value(&v, &scratch, l, "c", "status", &in,
                                          &reason), CRDT_OK);
    ck_assert_value(v, crdt_value_int(0));
    in = S("zzz");
    ck_assert_int_eq(epoch_lens_map_value(&v, &scratch, l, "c", "status", &in,
                                          &reason), CRDT_OK);
    ck_assert_value(v, crdt_value_int(0));
    epoch_buf_free(&scratch);
    epoch_lens_free(l);
    epoch_lens_free(inv);
}
END_TEST

START_TEST(test_convert_map_collision_without_default_fails)
{
    epoch_lens *l = parse_ok("collection c 0 -> 1\n"
                             "convert s string -> int map \"one\"=1\n");
    epoch_buf scratch = EPOCH_BUF_INIT;
    const char *reason = NULL;
    crdt_value v, in = S("1");

    ck_assert_int_eq(epoch_lens_map_value(&v, &scratch, l, "c", "s", &in,
                                          &reason), CRDT_ETYPE);
    ck_assert_str_eq(reason, "converted value collides with a map target");
    epoch_buf_free(&scratch);
    epoch_lens_free(l);
}
END_TEST

START_TEST(test_convert_map_only_types_and_value_renames)
{
    convert_step_both_ways("string -> string map \"old\"=\"new\"", S("old"),
                           S("new"));
    convert_step_both_ways("int -> bool map 2=true, 3=false", crdt_value_int(3),
                           crdt_value_bool(0));
    /* no built-in between bool and double: a map makes it a conversion */
    {
        epoch_lens *l = parse_ok("collection c 0 -> 1\n"
                                 "convert f bool -> double map true=1.0, "
                                 "false=0.0\n");
        epoch_lens *inv = invert_ok(l);
        epoch_buf scratch = EPOCH_BUF_INIT;
        const char *reason = NULL;
        crdt_value v = crdt_value_bool(1);

        ck_assert_int_eq(epoch_lens_map_value(&v, &scratch, l, "c", "f", &v,
                                              &reason), CRDT_OK);
        ck_assert_value(v, crdt_value_double(1.0));
        ck_assert_int_eq(epoch_lens_map_value(&v, &scratch, inv, "c", "f",
                                              &v, &reason), CRDT_OK);
        ck_assert_value(v, crdt_value_bool(1));
        v = crdt_value_double(0.5);
        ck_assert_int_eq(epoch_lens_map_value(&v, &scratch, inv, "c", "f",
                                              &v, &reason), CRDT_ETYPE);
        ck_assert_str_eq(reason, "no built-in conversion between these types");
        epoch_buf_free(&scratch);
        epoch_lens_free(l);
        epoch_lens_free(inv);
    }
}
END_TEST

START_TEST(test_convert_sets_and_counters)
{
    epoch_lens *l = parse_ok("collection c 0 -> 1\n"
                             "convert tags int -> string\n"
                             "convert hits int -> string\n"
                             "convert flags int -> bool\n");
    epoch_doc *d, *want;
    crdt_value v;
    int64_t n;

    ck_assert_int_eq(epoch_doc_new(&d), CRDT_OK);
    ck_assert_int_eq(epoch_doc_new(&want), CRDT_OK);
    v = crdt_value_int(10);
    ck_assert_int_eq(epoch_doc_set_add(d, "tags", &v), CRDT_OK);
    v = crdt_value_int(9);
    ck_assert_int_eq(epoch_doc_set_add(d, "tags", &v), CRDT_OK);
    ck_assert_int_eq(epoch_doc_set_counter(d, "hits", 3), CRDT_OK);
    v = crdt_value_int(5);
    ck_assert_int_eq(epoch_doc_set_add(d, "flags", &v), CRDT_OK);
    v = crdt_value_int(7);
    ck_assert_int_eq(epoch_doc_set_add(d, "flags", &v), CRDT_OK);

    v = S("10");
    ck_assert_int_eq(epoch_doc_set_add(want, "tags", &v), CRDT_OK);
    v = S("9");
    ck_assert_int_eq(epoch_doc_set_add(want, "tags", &v), CRDT_OK);
    ck_assert_int_eq(epoch_doc_set_counter(want, "hits", 3), CRDT_OK);
    v = crdt_value_null(); /* 5 and 7 both fail, and merge into one null */
    ck_assert_int_eq(epoch_doc_set_add(want, "flags", &v), CRDT_OK);

    ck_assert_int_eq(epoch_lens_apply_doc(d, l, "c"), CRDT_OK);
    ck_assert(epoch_doc_equal(d, want));
    ck_assert_int_eq(epoch_doc_get_counter(&n, d, "hits"), CRDT_OK);
    ck_assert_int_eq(n, 3);
    epoch_lens_free(l);
    epoch_doc_free(d);
    epoch_doc_free(want);
}
END_TEST

START_TEST(test_convert_chained_in_one_section_shares_scratch)
{
    epoch_lens *l = parse_ok("collection c 0 -> 1\n"
                             "convert f int -> string\n"
                             "convert f string -> double\n"
                             "convert f double -> string\n"
                             "rename f -> g\n"
                             "convert g string -> bytes\n");
    epoch_buf scratch = EPOCH_BUF_INIT;
    const char *reason = NULL;
    crdt_value v = crdt_value_int(-12);

    ck_assert_int_eq(epoch_lens_map_value(&v, &scratch, l, "c", "f", &v,
                                          &reason), CRDT_OK);
    ck_assert_value(v, crdt_value_bytes("-12", 3));
    /* renames are followed: "g" is not an original name */
    v = crdt_value_int(1);
    ck_assert_int_eq(epoch_lens_map_value(&v, &scratch, l, "c", "g", &v,
                                          &reason), CRDT_ENOTFOUND);
    epoch_buf_free(&scratch);
    epoch_lens_free(l);
}
END_TEST

/* ---- ops and the chain ------------------------------------------------ */

START_TEST(test_ops_other_collections_and_kinds_pass)
{
    epoch_lens *l = parse_ok("collection c 0 -> 1\nrename a -> b\n"
                             "convert b int -> string\n");
    epoch_buf scratch = EPOCH_BUF_INIT;
    epoch_op_view op = op_put("other", "a", crdt_value_int(1)), out;
    const char *reason = NULL;

    ck_assert_int_eq(epoch_lens_apply_op(&out, &scratch, l, &op, &reason),
                     CRDT_OK);
    ck_assert_ptr_eq(out.field, op.field);
    ck_assert_value(out.value, crdt_value_int(1));
    op.coll = "c";
    op.kind = EPOCH_OP_SADD;
    ck_assert_int_eq(epoch_lens_apply_op(&op, &scratch, l, &op, &reason),
                     CRDT_OK);
    ck_assert_str_eq(op.field, "b");
    ck_assert_value(op.value, S("1"));
    op.kind = EPOCH_OP_DEL_DOC;
    op.field = NULL;
    ck_assert_int_eq(epoch_lens_apply_op(&out, &scratch, l, &op, &reason),
                     CRDT_OK);
    ck_assert_ptr_null(out.field);
    ck_assert_int_eq(epoch_lens_apply_op(&out, &scratch, l, &op, NULL),
                     CRDT_OK);
    op.kind = EPOCH_OP_PUT;
    ck_assert_int_eq(epoch_lens_apply_op(&out, &scratch, l, &op, NULL),
                     CRDT_EINVAL); /* PUT needs a field */
    ck_assert_int_eq(epoch_lens_apply_op(&out, NULL, l, &op, NULL),
                     CRDT_EINVAL);
    epoch_buf_free(&scratch);
    epoch_lens_free(l);
}
END_TEST

static const char chain_text[3][160] = {
    "collection contacts 1 -> 2\nrename name -> full_name\n"
    "convert age int -> string\n",
    "collection contacts 2 -> 3\nconvert age string -> double\n"
    "rename full_name -> display\n",
    "collection contacts 3 -> 4\nrename age -> years\n"
    "convert years double -> string\nadd note string default \"\"\n",
};

START_TEST(test_chain_rebases_put_up_and_back)
{
    epoch_lens *fw[3], *bw[3];
    epoch_buf scratch = EPOCH_BUF_INIT;
    epoch_op_view op = op_put("contacts", "age", crdt_value_int(41));
    epoch_op_view name = op_put("contacts", "name", S("Ann"));
    const char *reason = NULL;
    int i;

    for (i = 0; i < 3; i++) {
        fw[i] = parse_ok(chain_text[i]);
        bw[i] = invert_ok(fw[i]);
    }
    for (i = 0; i < 3; i++) {
        ck_assert_int_eq(epoch_lens_apply_op(&op, &scratch, fw[i], &op,
                                             &reason), CRDT_OK);
        ck_assert_int_eq(epoch_lens_apply_op(&name, &scratch, fw[i], &name,
                                             &reason), CRDT_OK);
    }
    ck_assert_str_eq(op.field, "years");
    ck_assert_value(op.value, S("41"));
    ck_assert_str_eq(name.field, "display");
    ck_assert_value(name.value, S("Ann"));
    for (i = 2; i >= 0; i--)
        ck_assert_int_eq(epoch_lens_apply_op(&op, &scratch, bw[i], &op,
                                             &reason), CRDT_OK);
    ck_assert_str_eq(op.field, "age");
    ck_assert_value(op.value, crdt_value_int(41));
    ck_assert_str_eq(op.coll, "contacts");
    ck_assert_str_eq(op.doc, "doc1");
    for (i = 0; i < 3; i++) {
        epoch_lens_free(fw[i]);
        epoch_lens_free(bw[i]);
    }
    epoch_buf_free(&scratch);
}
END_TEST

START_TEST(test_chain_rebases_documents_up_and_back)
{
    epoch_lens *fw[3], *bw[3];
    epoch_doc *d = doc1("age", crdt_value_int(41)), *up, *orig;
    crdt_value v;
    int i;

    v = S("Ann");
    ck_assert_int_eq(epoch_doc_set_register(d, "name", &v), CRDT_OK);
    ck_assert_int_eq(epoch_doc_clone(&orig, d), CRDT_OK);
    up = doc1("years", S("41"));
    ck_assert_int_eq(epoch_doc_set_register(up, "display", &v), CRDT_OK);
    v = S("");
    ck_assert_int_eq(epoch_doc_set_register(up, "note", &v), CRDT_OK);
    for (i = 0; i < 3; i++) {
        fw[i] = parse_ok(chain_text[i]);
        bw[i] = invert_ok(fw[i]);
        ck_assert_int_eq(epoch_lens_apply_doc(d, fw[i], "contacts"), CRDT_OK);
    }
    ck_assert(epoch_doc_equal(d, up));
    for (i = 2; i >= 0; i--)
        ck_assert_int_eq(epoch_lens_apply_doc(d, bw[i], "contacts"), CRDT_OK);
    ck_assert(epoch_doc_equal(d, orig));
    for (i = 0; i < 3; i++) {
        epoch_lens_free(fw[i]);
        epoch_lens_free(bw[i]);
    }
    epoch_doc_free(d);
    epoch_doc_free(up);
    epoch_doc_free(orig);
}
END_TEST

/* ---- drop ------------------------------------------------------------- */

START_TEST(test_drop)
{
    epoch_lens *l = parse_ok("collection keep 0 -> 1\nremove x\n"
                             "collection gone 4 -> 5\ndrop\n");
    epoch_lens *inv = invert_ok(l);
    epoch_buf scratch = EPOCH_BUF_INIT;
    epoch_op_view op = op_put("gone", "a", crdt_value_int(1)), out;
    epoch_doc *d = doc1("a", crdt_value_int(1)), *same = doc1("a",
                                                              crdt_value_int(1));
    const char *reason = NULL, *f;
    crdt_value v = crdt_value_int(1);
    char *t;

    ck_assert_int_eq(epoch_lens_apply_op(&out, &scratch, l, &op, &reason),
                     CRDT_ENOTFOUND);
    ck_assert_str_eq(reason, "collection dropped by lens");
    op.kind = EPOCH_OP_DEL_DOC;
    op.field = NULL;
    reason = NULL;
    ck_assert_int_eq(epoch_lens_apply_op(&out, &scratch, l, &op, &reason),
                     CRDT_ENOTFOUND);
    ck_assert_str_eq(reason, "collection dropped by lens");
    ck_assert_int_eq(epoch_lens_apply_doc(d, l, "gone"), CRDT_ENOTFOUND);
    ck_assert(epoch_doc_equal(d, same)); /* untouched */
    ck_assert_int_eq(epoch_lens_map_field(&f, l, "gone", "a"), CRDT_ENOTFOUND);
    ck_assert_int_eq(epoch_lens_map_value(&v, &scratch, l, "gone", "a", &v,
                                          &reason), CRDT_ENOTFOUND);
    ck_assert_uint_eq(epoch_lens_default_count(l, "gone"), 0);
    ck_assert_int_eq(epoch_lens_drops(l, "gone"), 1);
    ck_assert_int_eq(epoch_lens_invertible(l), 0);
    ck_assert_int_eq(epoch_lens_invertible(inv), 0);
    t = format_ok(inv);
    ck_assert_str_eq(t, "collection gone 5 -> 4\ndrop\n"
                        "collection keep 1 -> 0\nadd x null default null\n");
    epoch_free(t);
    epoch_buf_free(&scratch);
    epoch_lens_free(l);
    epoch_lens_free(inv);
    epoch_doc_free(d);
    epoch_doc_free(same);
}
END_TEST

/* ---- doc container ---------------------------------------------------- */

START_TEST(test_doc_container)
{
    epoch_doc *d, *c;
    epoch_field_kind k;
    const char *name;
    crdt_value v = S("x"), e;
    size_t n;
    int64_t i;

    ck_assert_int_eq(epoch_doc_new(&d), CRDT_OK);
    ck_assert_int_eq(epoch_doc_set_register(d, "r", &v), CRDT_OK);
    ck_assert_int_eq(epoch_doc_set_counter(d, "c", 4), CRDT_OK);
    ck_assert_int_eq(epoch_doc_set_add(d, "s", &v), CRDT_OK);
    ck_assert_int_eq(epoch_doc_set_add(d, "s", &v), CRDT_OK);
    ck_assert_int_eq(epoch_doc_set_add(d, "r", &v), CRDT_ETYPE);
    ck_assert_int_eq(epoch_doc_set_counter(d, "r", 1), CRDT_ETYPE);
    ck_assert_int_eq(epoch_doc_set_register(d, "c", &v), CRDT_ETYPE);
    ck_assert_int_eq(epoch_doc_set_register(d, "", &v), CRDT_EINVAL);
    ck_assert_uint_eq(epoch_doc_field_count(d), 3);
    ck_assert_int_eq(epoch_doc_field(&name, &k, d, 0), CRDT_OK);
    ck_assert_str_eq(name, "c");
    ck_assert_int_eq(k, EPOCH_FIELD_COUNTER);
    ck_assert_int_eq(epoch_doc_field(&name, &k, d, 3), CRDT_EINVAL);
    ck_assert_int_eq(epoch_doc_get_counter(&i, d, "c"), CRDT_OK);
    ck_assert_int_eq(i, 4);
    ck_assert_int_eq(epoch_doc_get_register(&e, d, "c"), CRDT_ETYPE);
    ck_assert_int_eq(epoch_doc_get_register(&e, d, "zz"), CRDT_ENOTFOUND);
    ck_assert_int_eq(epoch_doc_set_size(&n, d, "s"), CRDT_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(epoch_doc_set_elem(&e, d, "s", 0), CRDT_OK);
    ck_assert_value(e, v);
    ck_assert_int_eq(epoch_doc_set_elem(&e, d, "s", 1), CRDT_EINVAL);
    ck_assert_int_eq(epoch_doc_clone(&c, d), CRDT_OK);
    ck_assert(epoch_doc_equal(c, d));
    ck_assert_int_eq(epoch_doc_set_remove(c, "s", &v), CRDT_OK);
    ck_assert_int_eq(epoch_doc_set_remove(c, "s", &v), CRDT_ENOTFOUND);
    ck_assert(!epoch_doc_equal(c, d));
    ck_assert_int_eq(epoch_doc_set_add(c, "s", &v), CRDT_OK);
    ck_assert(epoch_doc_equal(c, d));
    ck_assert_int_eq(epoch_doc_remove(c, "r"), CRDT_OK);
    ck_assert_int_eq(epoch_doc_remove(c, "r"), CRDT_ENOTFOUND);
    ck_assert_uint_eq(epoch_doc_field_count(c), 2);
    ck_assert(!epoch_doc_equal(c, d));
    epoch_doc_free(c);
    epoch_doc_free(d);
    epoch_doc_free(NULL);
}
END_TEST

/* ---- model: documents vs ops ------------------------------------------ */

static const char model_lens[] =
    "collection m 0 -> 1\n"
    "rename a -> b\n"        /* the old b is shadowed */
    "remove c\n"
    "add d int default 5\n"
    "convert e int -> string\n"
    "convert b int -> double\n"
    "convert s int -> string\n"
    "rename s -> t\n";

static void
model_apply(epoch_doc *d, const epoch_op_view *op)
{
    int64_t n = 0;

    switch (op->kind) {
    case EPOCH_OP_PUT:
        ck_assert_int_eq(epoch_doc_set_register(d, op->field, &op->value),
                         CRDT_OK);
        break;
    case EPOCH_OP_INCR:
        epoch_doc_get_counter(&n, d, op->field);
        ck_assert_int_eq(epoch_doc_set_counter(d, op->field, n + op->delta),
                         CRDT_OK);
        break;
    case EPOCH_OP_SADD:
        ck_assert_int_eq(epoch_doc_set_add(d, op->field, &op->value),
                         CRDT_OK);
        break;
    case EPOCH_OP_SREM:
        epoch_doc_set_remove(d, op->field, &op->value);
        break;
    case EPOCH_OP_DEL_FIELD:
        epoch_doc_remove(d, op->field);
        break;
    case EPOCH_OP_DEL_DOC:
        break;
    }
}

START_TEST(test_model_migrating_a_doc_equals_rebasing_its_ops)
{
    static const char *const regs[] = {"a", "b", "c", "d", "e"};
    uint64_t seed = test_seed("lens model"), st = seed;
    epoch_lens *l = parse_ok(model_lens);
    epoch_buf scratch = EPOCH_BUF_INIT;
    int round, i;

    for (round = 0; round < 200; round++) {
        epoch_doc *old, *rebased;
        epoch_op_view op, out;
        const char *f;
        crdt_value v;
        size_t k;

        ck_assert_int_eq(epoch_doc_new(&old), CRDT_OK);
        ck_assert_int_eq(epoch_doc_new(&rebased), CRDT_OK);
        for (i = 0; i < 12; i++) {
            uint64_t r = test_rand(&st);

            memset(&op, 0, sizeof op);
            op.coll = "m";
            op.doc = "d";
            op.value = crdt_value_int((int64_t)(r >> 40) % 5 - 2);
            switch (r % 5) {
            case 0: case 1:
                op.kind = EPOCH_OP_PUT;
                op.field = regs[(r >> 8) % 5];
                break;
            case 2:
                op.kind = EPOCH_OP_INCR;
                op.field = "n";
                op.delta = (int64_t)(r >> 16) % 7;
                break;
            case 3:
                op.kind = (r >> 8) % 2 ? EPOCH_OP_SADD : EPOCH_OP_SREM;
                op.field = "s";
                break;
            default:
                op.kind = EPOCH_OP_DEL_FIELD;
                op.field = regs[(r >> 8) % 5];
                break;
            }
            model_apply(old, &op);
            if (epoch_lens_apply_op(&out, &scratch, l, &op, NULL) == CRDT_OK)
                model_apply(rebased, &out);
        }
        ck_assert_int_eq(epoch_lens_apply_doc(old, l, "m"), CRDT_OK);
        /* the builder's rule: defaults fill the added fields left absent */
        for (k = 0; k < epoch_lens_default_count(l, "m"); k++) {
            ck_assert_int_eq(epoch_lens_default(&f, &v, l, "m", k), CRDT_OK);
            if (epoch_doc_get_register(&v, rebased, f) == CRDT_ENOTFOUND) {
                ck_assert_int_eq(epoch_lens_default(&f, &v, l, "m", k),
                                 CRDT_OK);
                ck_assert_int_eq(epoch_doc_set_register(rebased, f, &v),
                                 CRDT_OK);
            }
        }
        ck_assert_msg(epoch_doc_equal(old, rebased),
                      "round %d differs (STRATA_SEED=%llu)", round,
                      (unsigned long long)seed);
        epoch_doc_free(old);
        epoch_doc_free(rebased);
    }
    epoch_buf_free(&scratch);
    epoch_lens_free(l);
}
END_TEST

Suite *
test_suite(void)
{
    Suite *s = suite_create("lens");
    TCase *tc;

    tc = tcase_create("parse");
    tcase_add_test(tc, test_parse_every_step_form);
    tcase_add_test(tc, test_parse_comments_blank_lines_crlf_and_spacing);
    tcase_add_test(tc, test_parse_arrow_inside_names_and_tight_arrows);
    tcase_add_test(tc, test_parse_multiple_sections_and_queries);
    tcase_add_test(tc, test_parse_literals);
    tcase_add_test(tc, test_parse_name_of_64_bytes_is_fine);
    tcase_add_test(tc, test_parse_limits_at_the_edge_pass);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_add_test(tc, test_error_unknown_step);
    tcase_add_test(tc, test_error_bad_arrow);
    tcase_add_test(tc, test_error_versions);
    tcase_add_test(tc, test_error_bad_type);
    tcase_add_test(tc, test_error_bad_literal);
    tcase_add_test(tc, test_error_unterminated_string);
    tcase_add_test(tc, test_error_step_before_section);
    tcase_add_test(tc, test_error_empty_section);
    tcase_add_test(tc, test_error_name_too_long);
    tcase_add_test(tc, test_error_file_too_long);
    tcase_add_test(tc, test_error_line_and_step_limits);
    tcase_add_test(tc, test_error_meaning);
    tcase_add_test(tc, test_error_null_err_and_bad_args);
    suite_add_tcase(s, tc);

    tc = tcase_create("format");
    tcase_add_test(tc, test_format_every_step_round_trips);
    tcase_add_test(tc, test_format_normalizes);
    tcase_add_test(tc, test_format_args);
    suite_add_tcase(s, tc);

    tc = tcase_create("invert");
    tcase_add_test(tc, test_invert_text);
    tcase_add_test(tc, test_invert_twice_is_identity_for_every_step);
    suite_add_tcase(s, tc);

    tc = tcase_create("steps");
    tcase_add_test(tc, test_step_rename);
    tcase_add_test(tc, test_step_rename_onto_existing_field_replaces_it);
    tcase_add_test(tc, test_step_add);
    tcase_add_test(tc, test_step_remove_with_default);
    tcase_add_test(tc, test_step_remove_plain_inverts_to_null);
    tcase_add_test(tc, test_step_removed_then_added_is_a_new_field);
    tcase_add_test(tc, test_defaults_follow_later_steps);
    suite_add_tcase(s, tc);

    tc = tcase_create("convert");
    tcase_add_test(tc, test_convert_builtins_both_ways);
    tcase_add_test(tc, test_convert_failures_are_etype_with_reason);
    tcase_add_test(tc, test_convert_failure_in_documents_and_ops);
    tcase_add_test(tc, test_convert_with_map);
    tcase_add_test(tc, test_convert_int_to_string_extremes);
    tcase_add_test(tc, test_convert_map_collision_without_default_fails);
    tcase_add_test(tc, test_convert_map_only_types_and_value_renames);
    tcase_add_test(tc, test_convert_sets_and_counters);
    tcase_add_test(tc, test_convert_chained_in_one_section_shares_scratch);
    suite_add_tcase(s, tc);

    tc = tcase_create("chain");
    tcase_add_test(tc, test_ops_other_collections_and_kinds_pass);
    tcase_add_test(tc, test_chain_rebases_put_up_and_back);
    tcase_add_test(tc, test_chain_rebases_documents_up_and_back);
    suite_add_tcase(s, tc);

    tc = tcase_create("drop");
    tcase_add_test(tc, test_drop);
    suite_add_tcase(s, tc);

    tc = tcase_create("doc");
    tcase_add_test(tc, test_doc_container);
    suite_add_tcase(s, tc);

    tc = tcase_create("model");
    tcase_add_test(tc, test_model_migrating_a_doc_equals_rebasing_its_ops);
    suite_add_tcase(s, tc);
    return s;
}
