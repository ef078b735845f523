/*
 * lens_value.c: scalar values as a lens sees them: type names and the
 * canonical text of a literal.
 *
 * Invariants:
 *  (1) Values are ordered by libcrdt's crdt_value_cmp(), a total order:
 *      doubles compare by their IEEE 754 totalOrder (so -0 != 0 and NaN
 *      equals only itself; no second order lives here), because map
 *      lookups and set elements must never treat two distinct values as
 *      one, or a conversion would stop being invertible.
 *  (2) epoch__literal_format() writes text that epoch__literal_read()
 *      reads back to an equal value: doubles always carry a '.' or an
 *      exponent, so they never come back as ints.
 */
#include "crdt/replica.h" /* crdt_hex() */
#include "lens_internal.h"

#include <inttypes.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const type_names[] = {"null", "bool", "int",
                                         "double", "string", "bytes"};

const char *
epoch__type_name(crdt_vtype t)
{
    if ((unsigned)t < sizeof type_names / sizeof type_names[0])
        return type_names[t];
    return "?";
}

int
epoch__type_parse(crdt_vtype *out, const char *p, size_t len)
{
    size_t i;

    for (i = 0; i < sizeof type_names / sizeof type_names[0]; i++) {
        if (strlen(type_names[i]) == len && memcmp(type_names[i], p, len) == 0) {
            *out = (crdt_vtype)i;
            return 0;
        }
    }
    return -1;
}

static int
pair_cmp(const void *a, const void *b)
{
    return crdt_value_cmp(&((const epoch__pair *)a)->from,
                          &((const epoch__pair *)b)->from);
}

void
epoch__pairs_sort(epoch__pair *p, size_t n)
{
    if (n > 1)
        qsort(p, n, sizeof *p, pair_cmp);
}

/* The shortest text that strtod() reads back to exactly @p d, so
 * double -> string -> double is the identity: the fewest significant
 * digits that round-trip, in plain notation for decimal exponents -7..20
 * ("100", "0.00000015") and exponent notation outside ("1e+300"), so
 * common values read naturally. -1 if @p d is not finite. */
int
epoch__double_shortest(char *buf, size_t size, double d)
{
    char *e;
    int prec, n, exp10, decimals;

    if (!isfinite(d))
        return -1;
    prec = crdt_double_digits(d); /* the digits: libcrdt's one rule */
    n = snprintf(buf, size, "%.*e", prec - 1, d);
    if (n < 0 || (size_t)n >= size)
        return -1;
    e = strchr(buf, 'e');
    exp10 = e != NULL ? atoi(e + 1) : 0; /* after rounding to prec digits */
    if (exp10 >= -7 && exp10 < 21) {
        decimals = prec - 1 - exp10;
        n = snprintf(buf, size, "%.*f", decimals > 0 ? decimals : 0, d);
    } else {
        n = snprintf(buf, size, "%.*g", prec, d);
    }
    if (n < 0 || (size_t)n >= size || strtod(buf, NULL) != d)
        return -1; /* cannot happen: same digits as the %e text */
    if (strspn(buf, "0123456789+-.e") != (size_t)n)
        return -1; /* a locale whose decimal point is not '.' */
    return n;
}

static int
put_str(epoch_buf *b, const char *s)
{
    return epoch__buf_put(b, s, strlen(s));
}

static int
string_format(epoch_buf *b, const char *p, size_t len)
{
    char esc[7];
    size_t i;
    int rc = epoch__buf_put(b, "\"", 1);

    for (i = 0; i < len && rc == CRDT_OK; i++) {
        unsigned char c = (unsigned char)p[i];

        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            rc = epoch__buf_put(b, esc, 2);
        } else if (c == '\n') {
            rc = put_str(b, "\\n");
        } else if (c == '\t') {
            rc = put_str(b, "\\t");
        } else if (c == '\r') {
            rc = put_str(b, "\\r");
        } else if (c == '\b') {
            rc = put_str(b, "\\b");
        } else if (c == '\f') {
            rc = put_str(b, "\\f");
        } else if (c < 0x20) {
            memcpy(esc, "\\u00", 4);
            crdt_hex(esc + 4, &c, 1);
            rc = epoch__buf_put(b, esc, 6);
        } else {
            rc = epoch__buf_put(b, &p[i], 1);
        }
    }
    return rc == CRDT_OK ? epoch__buf_put(b, "\"", 1) : rc;
}

/* Standard base64 with padding: libsodium's encoder, the one every
 * part of Strata uses (the CLI's JSON values too). */
static int
base64_format(epoch_buf *b, const unsigned char *p, size_t len)
{
    size_t enc = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
    int rc = epoch__buf_reserve(b, enc - 1); /* keeps room for the NUL */

    if (rc < 0)
        return rc;
    sodium_bin2base64(b->data + b->len, enc, p, len,
                      sodium_base64_VARIANT_ORIGINAL);
    b->len += enc - 1;
    return CRDT_OK;
}

int
epoch__literal_format(epoch_buf *b, const crdt_value *v)
{
    char num[40];
    int n, rc;

    switch (v->type) {
    case CRDT_VNULL:
        return put_str(b, "null");
    case CRDT_VBOOL:
        return put_str(b, v->u.b ? "true" : "false");
    case CRDT_VINT:
        snprintf(num, sizeof num, "%" PRId64, v->u.i);
        return put_str(b, num);
    case CRDT_VDOUBLE:
        n = epoch__double_shortest(num, sizeof num - 2, v->u.d);
        if (n < 0)
            return CRDT_EINVAL; /* literals are finite by construction */
        if (strpbrk(num, ".eE") == NULL) /* keeps (2) */
            memcpy(num + n, ".0", 3);
        return put_str(b, num);
    case CRDT_VSTRING:
        return string_format(b, v->u.s.ptr, v->u.s.len);
    case CRDT_VBYTES:
        rc = put_str(b, "{\"$bytes\":\"");
        if (rc == CRDT_OK)
            rc = base64_format(b, (const unsigned char *)v->u.s.ptr,
                               v->u.s.len);
        return rc == CRDT_OK ? put_str(b, "\"}") : rc;
    }
    return CRDT_EINVAL;
}
