/*
 * test_lens_edges.c: the edges of the lens API (epoch/lens.h) that
 * test_lens.c does not reach: every entry point handed a NULL or an
 * index out of range (each must answer the documented code and leave
 * its outputs and the document as they were), collections a lens does
 * not name, documents that differ in one way each for
 * epoch_doc_equal(), and string <-> text conversions (the retype steps
 * the migration builder asks about) around renames, removals and adds.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "epoch/lens.h"
#include "lens_internal.h"
#include "support/epoch_util.h"
#include "support/support.h"

static crdt_value
S(const char *s)
{
    return crdt_value_str(s, strlen(s));
}

#define ck_assert_value_eq(got, want)                                       \
    do {                                                                    \
        crdt_value g_ = (got), w_ = (want);                                 \
        ck_assert_int_eq(g_.type, w_.type);                                 \
        ck_assert_int_eq(crdt_value_cmp(&g_, &w_), 0);                      \
    } while (0)

static const char lens_text[] =
    "collection c 1 -> 2\n"
    "rename a -> b\n"
    "add n int default 5\n"
    "remove gone\n"
    "convert k int -> string\n"
    "collection d 1 -> 2\n"
    "drop\n";

/* ---- the lens queries --------------------------------------------------- */

START_TEST(test_lens_queries_refuse_null_and_range)
{
    epoch_lens *l = tu_lens(lens_text), *inv = (epoch_lens *)&inv;
    const char *coll = "untouched", *field = "untouched";
    crdt_value v = crdt_value_int(-1);

    ck_assert_int_eq(epoch_lens_invert(NULL, l), CRDT_EINVAL);
    ck_assert_int_eq(epoch_lens_invert(&inv, NULL), CRDT_EINVAL);
    ck_assert_ptr_eq(inv, (epoch_lens *)&inv);
    ck_assert_int_eq(epoch_lens_invertible(NULL), 0); /* no lens, no inverse */
    ck_assert_uint_eq(epoch_lens_section_count(NULL), 0);
    ck_assert_int_eq(epoch_lens_section(NULL, 0, &coll, NULL, NULL),
                     CRDT_EINVAL);
    ck_assert_int_eq(epoch_lens_section(l, 0, NULL, NULL, NULL), CRDT_EINVAL);
    ck_assert_str_eq(coll, "untouched");
    /* from and to may be NULL */
    ck_assert_int_eq(epoch_lens_section(l, 1, &coll, NULL, NULL), CRDT_OK);
    ck_assert_str_eq(coll, "d");

    ck_assert_uint_eq(epoch_lens_default_count(NULL, "c"), 0);
    ck_assert_uint_eq(epoch_lens_default_count(l, NULL), 0);
    ck_assert_uint_eq(epoch_lens_default_count(l, "c"), 1);
    ck_assert_uint_eq(epoch_lens_default_count(l, "elsewhere"), 0);
    ck_assert_int_eq(epoch_lens_default(NULL, &v, l, "c", 0), CRDT_EINVAL);
    ck_assert_int_eq(epoch_lens_default(&field, NULL, l, "c", 0),
                     CRDT_EINVAL);
    ck_assert_int_eq(epoch_lens_default(&field, &v, NULL, "c", 0),
                     CRDT_EINVAL);
    ck_assert_int_eq(epoch_lens_default(&field, &v, l, NULL, 0), CRDT_EINVAL);
    ck_assert_int_eq(epoch_lens_default(&field, &v, l, "elsewhere", 0),
                     CRDT_EINVAL);
    ck_assert_int_eq(epoch_lens_default(&field, &v, l, "c", 1), CRDT_EINVAL);
    ck_assert_str_eq(field, "untouched");
    ck_assert_value_eq(v, crdt_value_int(-1));
    ck_assert_int_eq(epoch_lens_default(&field, &v, l, "c", 0), CRDT_OK);
    ck_assert_str_eq(field, "n");
    ck_assert_value_eq(v, crdt_value_int(5));

    ck_assert_int_eq(epoch_lens_drops(NULL, "d"), 0);
    ck_assert_int_eq(epoch_lens_drops(l, NULL), 0);
    ck_assert_int_eq(epoch_lens_drops(l, "d"), 1);

    ck_assert_int_eq(epoch_lens_map_field(NULL, l, "c", "a"), CRDT_EINVAL);
    ck_assert_int_eq(epoch_lens_map_field(&field, NULL, "c", "a"),
                     CRDT_EINVAL);
    ck_assert_int_eq(epoch_lens_map_field(&field, l, NULL, "a"), CRDT_EINVAL);
    ck_assert_int_eq(epoch_lens_map_field(&field, l, "c", NULL), CRDT_EINVAL);
    ck_assert_str_eq(field, "n");
    ck_assert_int_eq(epoch_lens_map_field(&field, l, "c", "a"), CRDT_OK);
    ck_assert_str_eq(field, "b");
    epoch_lens_free(l);
    epoch_buf_free(NULL);
}
END_TEST

START_TEST(test_map_value_refuses_null_and_passes_other_collections)
{
    epoch_lens *l = tu_lens(lens_text);
    epoch_buf scratch = EPOCH_BUF_INIT;
    crdt_value in = crdt_value_int(42), out = crdt_value_null();
    const char *reason = NULL;

    ck_assert_int_eq(epoch_lens_map_value(NULL, &scratch, l, "c", "k", &in,
                                          NULL), CRDT_EINVAL);
    ck_assert_int_eq(epoch_lens_map_value(&out, NULL, l, "c", "k", &in,
                                          NULL), CRDT_EINVAL);
    ck_assert_int_eq(epoch_lens_map_value(&out, &scratch, NULL, "c", "k", &in,
                                          NULL), CRDT_EINVAL);
    ck_assert_int_eq(epoch_lens_map_value(&out, &scratch, l, NULL, "k", &in,
                                          NULL), CRDT_EINVAL);
    ck_assert_int_eq(epoch_lens_map_value(&out, &scratch, l, "c", NULL, &in,
                                          NULL), CRDT_EINVAL);
    ck_assert_int_eq(epoch_lens_map_value(&out, &scratch, l, "c", "k", NULL,
                                          NULL), CRDT_EINVAL);
    ck_assert_value_eq(out, crdt_value_null());

    /* a collection the lens does not name: the value as it was */
    ck_assert_int_eq(epoch_lens_map_value(&out, &scratch, l, "other", "k",
                                          &in, &reason), CRDT_OK);
    ck_assert_value_eq(out, in);
    ck_assert_int_eq(epoch_lens_map_value(&out, &scratch, l, "c", "k", &in,
                                          &reason), CRDT_OK);
    ck_assert_value_eq(out, S("42"));
    epoch_buf_free(&scratch);
    epoch_lens_free(l);
}
END_TEST

START_TEST(test_apply_op_refuses_malformed_views)
{
    epoch_lens *l = tu_lens(lens_text);
    epoch_buf scratch = EPOCH_BUF_INIT;
    epoch_op_view in = { EPOCH_OP_PUT, "c", "doc1", "k", { 0 }, 0 }, bad,
                  out = { EPOCH_OP_INCR, "x", "y", "z", { 0 }, 9 };

    in.value = crdt_value_int(7);
    ck_assert_int_eq(epoch_lens_apply_op(NULL, &scratch, l, &in, NULL),
                     CRDT_EINVAL);
    ck_assert_int_eq(epoch_lens_apply_op(&out, NULL, l, &in, NULL),
                     CRDT_EINVAL);
    ck_assert_int_eq(epoch_lens_apply_op(&out, &scratch, NULL, &in, NULL),
                     CRDT_EINVAL);
    ck_assert_int_eq(epoch_lens_apply_op(&out, &scratch, l, NULL, NULL),
                     CRDT_EINVAL);
    bad = in;
    bad.coll = NULL;
    ck_assert_int_eq(epoch_lens_apply_op(&out, &scratch, l, &bad, NULL),
                     CRDT_EINVAL);
    bad = in;
    bad.kind = (epoch_op_kind)(EPOCH_OP_DEL_DOC + 1);
    ck_assert_int_eq(epoch_lens_apply_op(&out, &scratch, l, &bad, NULL),
                     CRDT_EINVAL);
    bad = in;
    bad.field = NULL; /* only a DEL_DOC has no field */
    ck_assert_int_eq(epoch_lens_apply_op(&out, &scratch, l, &bad, NULL),
                     CRDT_EINVAL);
    /* nothing was written */
    ck_assert_int_eq(out.kind, EPOCH_OP_INCR);
    ck_assert_str_eq(out.field, "z");
    ck_assert_int_eq(out.delta, 9);

    ck_assert_int_eq(epoch_lens_apply_op(&out, &scratch, l, &in, NULL),
                     CRDT_OK);
    ck_assert_str_eq(out.field, "k");
    ck_assert_value_eq(out.value, S("7"));
    epoch_buf_free(&scratch);
    epoch_lens_free(l);
}
END_TEST

START_TEST(test_apply_doc_refuses_null_and_passes_other_collections)
{
    epoch_lens *l = tu_lens(lens_text);
    epoch_doc *d, *before;
    crdt_value v = crdt_value_int(3);

    ck_assert_int_eq(epoch_doc_new(&d), CRDT_OK);
    ck_assert_int_eq(epoch_doc_set_register(d, "a", &v), CRDT_OK);
    ck_assert_int_eq(epoch_doc_set_register(d, "k", &v), CRDT_OK);
    ck_assert_int_eq(epoch_doc_clone(&before, d), CRDT_OK);
    ck_assert_int_eq(epoch_lens_apply_doc(NULL, l, "c"), CRDT_EINVAL);
    ck_assert_int_eq(epoch_lens_apply_doc(d, NULL, "c"), CRDT_EINVAL);
    ck_assert_int_eq(epoch_lens_apply_doc(d, l, NULL), CRDT_EINVAL);
    ck_assert(epoch_doc_equal(d, before));
    /* not in the lens: unchanged, and not the dropped one */
    ck_assert_int_eq(epoch_lens_apply_doc(d, l, "other"), CRDT_OK);
    ck_assert(epoch_doc_equal(d, before));
    ck_assert_int_eq(epoch_lens_apply_doc(d, l, "d"), CRDT_ENOTFOUND);
    ck_assert(epoch_doc_equal(d, before));
    epoch_doc_free(before);
    epoch_doc_free(d);
    epoch_lens_free(l);
}
END_TEST

/* ---- the document container ---------------------------------------------- */

START_TEST(test_doc_calls_refuse_null)
{
    epoch_doc *d, *c = (epoch_doc *)&c;
    crdt_value v = S("x"), got = crdt_value_int(-1);
    const char *name = "untouched";
    int64_t n = -1;
    size_t size = 77;

    ck_assert_int_eq(epoch_doc_new(NULL), CRDT_EINVAL);
    ck_assert_int_eq(epoch_doc_new(&d), CRDT_OK);
    ck_assert_int_eq(epoch_doc_set_register(NULL, "r", &v), CRDT_EINVAL);
    ck_assert_int_eq(epoch_doc_set_register(d, NULL, &v), CRDT_EINVAL);
    ck_assert_int_eq(epoch_doc_set_register(d, "r", NULL), CRDT_EINVAL);
    ck_assert_int_eq(epoch_doc_set_counter(NULL, "c", 1), CRDT_EINVAL);
    ck_assert_int_eq(epoch_doc_set_counter(d, NULL, 1), CRDT_EINVAL);
    ck_assert_int_eq(epoch_doc_set_counter(d, "", 1), CRDT_EINVAL);
    ck_assert_int_eq(epoch_doc_set_add(NULL, "s", &v), CRDT_EINVAL);
    ck_assert_int_eq(epoch_doc_set_add(d, "", &v), CRDT_EINVAL);
    ck_assert_int_eq(epoch_doc_set_add(d, "s", NULL), CRDT_EINVAL);
    ck_assert_uint_eq(epoch_doc_field_count(d), 0);

    ck_assert_int_eq(epoch_doc_set_register(d, "r", &v), CRDT_OK);
    ck_assert_int_eq(epoch_doc_set_counter(d, "c", 2), CRDT_OK);
    ck_assert_int_eq(epoch_doc_set_add(d, "s", &v), CRDT_OK);

    ck_assert_int_eq(epoch_doc_set_remove(NULL, "s", &v), CRDT_EINVAL);
    ck_assert_int_eq(epoch_doc_set_remove(d, NULL, &v), CRDT_EINVAL);
    ck_assert_int_eq(epoch_doc_set_remove(d, "s", NULL), CRDT_EINVAL);
    ck_assert_int_eq(epoch_doc_set_remove(d, "r", &v), CRDT_ETYPE);
    ck_assert_int_eq(epoch_doc_set_remove(d, "nope", &v), CRDT_ENOTFOUND);
    ck_assert_int_eq(epoch_doc_remove(NULL, "r"), CRDT_EINVAL);
    ck_assert_int_eq(epoch_doc_remove(d, NULL), CRDT_EINVAL);
    ck_assert_int_eq(epoch_doc_clone(NULL, d), CRDT_EINVAL);
    ck_assert_int_eq(epoch_doc_clone(&c, NULL), CRDT_EINVAL);
    ck_assert_ptr_eq(c, (epoch_doc *)&c);
    ck_assert_uint_eq(epoch_doc_field_count(NULL), 0);

    ck_assert_int_eq(epoch_doc_field(NULL, NULL, d, 0), CRDT_EINVAL);
    ck_assert_int_eq(epoch_doc_field(&name, NULL, NULL, 0), CRDT_EINVAL);
    ck_assert_str_eq(name, "untouched");
    ck_assert_int_eq(epoch_doc_field(&name, NULL, d, 1), CRDT_OK); /* kind
                                                          may be NULL */
    ck_assert_str_eq(name, "r");

    ck_assert_int_eq(epoch_doc_get_register(NULL, d, "r"), CRDT_EINVAL);
    ck_assert_int_eq(epoch_doc_get_register(&got, NULL, "r"), CRDT_EINVAL);
    ck_assert_int_eq(epoch_doc_get_register(&got, d, NULL), CRDT_EINVAL);
    ck_assert_value_eq(got, crdt_value_int(-1));
    ck_assert_int_eq(epoch_doc_get_counter(NULL, d, "c"), CRDT_EINVAL);
    ck_assert_int_eq(epoch_doc_get_counter(&n, d, "r"), CRDT_ETYPE);
    ck_assert_int_eq(n, -1);
    ck_assert_int_eq(epoch_doc_set_size(NULL, d, "s"), CRDT_EINVAL);
    ck_assert_int_eq(epoch_doc_set_size(&size, d, "c"), CRDT_ETYPE);
    ck_assert_uint_eq(size, 77);
    ck_assert_int_eq(epoch_doc_set_elem(NULL, d, "s", 0), CRDT_EINVAL);
    ck_assert_int_eq(epoch_doc_set_elem(&got, d, "r", 0), CRDT_ETYPE);
    ck_assert_int_eq(epoch_doc_set_elem(&got, d, "nope", 0), CRDT_ENOTFOUND);
    ck_assert_value_eq(got, crdt_value_int(-1));

    /* none of the refused calls changed it */
    ck_assert_uint_eq(epoch_doc_field_count(d), 3);
    ck_assert_int_eq(epoch_doc_get_counter(&n, d, "c"), CRDT_OK);
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(epoch_doc_set_size(&size, d, "s"), CRDT_OK);
    ck_assert_uint_eq(size, 1);
    epoch_doc_free(d);
}
END_TEST

/* Two documents of one field each, equal but for what @p b changes */
START_TEST(test_doc_equal_tells_each_difference)
{
    epoch_doc *a, *b;
    crdt_value x = S("x"), y = S("y");

    ck_assert_int_eq(epoch_doc_equal(NULL, NULL), 1);
    ck_assert_int_eq(epoch_doc_new(&a), CRDT_OK);
    ck_assert_int_eq(epoch_doc_equal(a, NULL), 0);
    ck_assert_int_eq(epoch_doc_equal(NULL, a), 0);

    /* same count, other name */
    ck_assert_int_eq(epoch_doc_new(&b), CRDT_OK);
    ck_assert_int_eq(epoch_doc_set_register(a, "f", &x), CRDT_OK);
    ck_assert_int_eq(epoch_doc_set_register(b, "g", &x), CRDT_OK);
    ck_assert_int_eq(epoch_doc_equal(a, b), 0);
    epoch_doc_free(b);

    /* same name, other kind */
    ck_assert_int_eq(epoch_doc_new(&b), CRDT_OK);
    ck_assert_int_eq(epoch_doc_set_add(b, "f", &x), CRDT_OK);
    ck_assert_int_eq(epoch_doc_equal(a, b), 0);
    ck_assert_int_eq(epoch_doc_equal(b, a), 0);
    epoch_doc_free(b);

    /* counters of other values, then equal */
    ck_assert_int_eq(epoch_doc_remove(a, "f"), CRDT_OK);
    ck_assert_int_eq(epoch_doc_set_counter(a, "f", 1), CRDT_OK);
    ck_assert_int_eq(epoch_doc_new(&b), CRDT_OK);
    ck_assert_int_eq(epoch_doc_set_counter(b, "f", 2), CRDT_OK);
    ck_assert_int_eq(epoch_doc_equal(a, b), 0);
    ck_assert_int_eq(epoch_doc_set_counter(b, "f", 1), CRDT_OK);
    ck_assert_int_eq(epoch_doc_equal(a, b), 1);
    epoch_doc_free(b);

    /* sets of one element each, other elements */
    ck_assert_int_eq(epoch_doc_remove(a, "f"), CRDT_OK);
    ck_assert_int_eq(epoch_doc_set_add(a, "f", &x), CRDT_OK);
    ck_assert_int_eq(epoch_doc_new(&b), CRDT_OK);
    ck_assert_int_eq(epoch_doc_set_add(b, "f", &y), CRDT_OK);
    ck_assert_int_eq(epoch_doc_equal(a, b), 0);
    epoch_doc_free(b);
    epoch_doc_free(a);
}
END_TEST

/* ---- string <-> text conversions ------------------------------------------ */

/* An added string field later made text keeps its default as it is: a
 * retype changes the field's kind, not the default's value */
START_TEST(test_retype_keeps_the_default_of_an_added_field)
{
    epoch_lens *l = tu_lens("collection c 1 -> 2\n"
                             "add t string default \"hi\"\n"
                             "convert t string -> text\n");
    const char *field;
    crdt_value v;

    ck_assert_uint_eq(epoch_lens_default_count(l, "c"), 1);
    ck_assert_int_eq(epoch_lens_default(&field, &v, l, "c", 0), CRDT_OK);
    ck_assert_str_eq(field, "t");
    ck_assert_value_eq(v, S("hi"));
    epoch_lens_free(l);
}
END_TEST

/* The builder asks which fields a lens retypes and what they are called
 * at the end of their section: renamed, or gone when another field is
 * renamed onto them */
START_TEST(test_retype_names_follow_later_steps)
{
    epoch_lens *l = tu_lens("collection c 1 -> 2\n"
                             "convert n int -> string\n"
                             "convert t string -> text\n"
                             "rename t -> u\n"
                             "convert w string -> text\n"
                             "rename x -> w\n"
                             "rename a -> b\n"
                             "convert b string -> text\n");
    const char *coll, *field;
    int dir = 0;

    ck_assert_int_eq(epoch__lens_retype(l, 0, &coll, &field, &dir), CRDT_OK);
    ck_assert_str_eq(coll, "c");
    ck_assert_str_eq(field, "u");
    ck_assert_int_eq(dir, EPOCH__TO_TEXT);
    ck_assert_int_eq(epoch__lens_retype(l, 1, &coll, &field, &dir), CRDT_OK);
    ck_assert_ptr_null(field); /* x took its name */
    ck_assert_int_eq(epoch__lens_retype(l, 2, &coll, &field, &dir), CRDT_OK);
    ck_assert_str_eq(field, "b");
    ck_assert_int_eq(epoch__lens_retype(l, 3, &coll, &field, &dir),
                     CRDT_ENOTFOUND);

    /* by the name before the lens */
    ck_assert_int_eq(epoch__lens_retypes(l, "c", "a"), EPOCH__TO_TEXT);
    ck_assert_int_eq(epoch__lens_retypes(l, "c", "t"), EPOCH__TO_TEXT);
    ck_assert_int_eq(epoch__lens_retypes(l, "c", "n"), 0);
    ck_assert_int_eq(epoch__lens_retypes(l, "c", "x"), 0);
    ck_assert_int_eq(epoch__lens_retypes(l, "other", "t"), 0);
    ck_assert_int_eq(epoch__lens_retype(NULL, 0, &coll, &field, &dir),
                     CRDT_ENOTFOUND);
    epoch_lens_free(l);
}
END_TEST

Suite *
test_suite(void)
{
    Suite *s = suite_create("lens_edges");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_lens_queries_refuse_null_and_range);
    tcase_add_test(tc, test_map_value_refuses_null_and_passes_other_collections);
    tcase_add_test(tc, test_apply_op_refuses_malformed_views);
    tcase_add_test(tc, test_apply_doc_refuses_null_and_passes_other_collections);
    tcase_add_test(tc, test_doc_calls_refuse_null);
    tcase_add_test(tc, test_doc_equal_tells_each_difference);
    tcase_add_test(tc, test_retype_keeps_the_default_of_an_added_field);
    tcase_add_test(tc, test_retype_names_follow_later_steps);
    suite_add_tcase(s, tc);
    return s;
}
