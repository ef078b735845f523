/*
 * lens_convert.c: what one convert step does to one scalar value.
 *
 * Order: a value whose type is not the step's source type (null
 * included) passes unchanged; else an explicit map pair; else the
 * built-in conversion; else (failure) the step's default; else
 * CRDT_ETYPE with a static reason.
 *
 * Invariants:
 *  (1) Every built-in is injective on the values it accepts and its
 *      reverse built-in undoes it: B(A(x)) == x whenever A(x) succeeds
 *      (string -> double is the one exception: "1.50" comes back "1.5").
 *      That is why int -> bool accepts only 0 and 1, int -> double only
 *      integers a double holds exactly, and string -> int only canonical
 *      decimals ("7", never "07", "+7" or "-0").
 *  (2) A built-in result equal to the right side of a map pair is a
 *      failure: the inverse step would send it to that pair's left side,
 *      not back to where it came from.
 *  (3) @p scratch is written only while the value being converted is a
 *      number or bool, so an input string that points into @p scratch is
 *      never overwritten while still in use.
 */
#include "lens_internal.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TWO63 9223372036854775808.0

static int
to_scratch(crdt_value *out, epoch_buf *scratch, const char *p, size_t n)
{
    int rc;

    scratch->len = 0; /* keeps (3): the input was a number */
    rc = epoch__buf_put(scratch, p, n);
    if (rc < 0)
        return rc;
    *out = crdt_value_str(scratch->data, n);
    return CRDT_OK;
}

/* "%" PRId64 without snprintf, which costs more than the rest of a
 * conversion (a migration converts every value of the field). @p buf
 * holds 21 bytes; returns the length. */
static int
int_decimal(char *buf, int64_t v)
{
    char tmp[20];
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    int n = 0, len = 0;

    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0)
        buf[len++] = '-';
    while (n > 0)
        buf[len++] = tmp[--n];
    return len;
}

int
epoch__builtin_exists(crdt_vtype from, crdt_vtype to)
{
    if (from == to)
        return 1;
    switch (from) {
    case CRDT_VBOOL:
        return to == CRDT_VINT || to == CRDT_VSTRING;
    case CRDT_VINT:
        return to == CRDT_VBOOL || to == CRDT_VDOUBLE || to == CRDT_VSTRING;
    case CRDT_VDOUBLE:
        return to == CRDT_VINT || to == CRDT_VSTRING;
    case CRDT_VSTRING:
        return to != CRDT_VNULL;
    case CRDT_VBYTES:
        return to == CRDT_VSTRING;
    case CRDT_VNULL:
        break;
    }
    return 0;
}

static int
from_string(crdt_value *out, crdt_vtype to, const crdt_value *in,
            const char **why)
{
    const char *p = in->u.s.ptr;
    size_t n = in->u.s.len;
    int64_t i;
    double d;

    switch (to) {
    case CRDT_VINT:
        /* keeps (1): "-0" would come back as "0" */
        if (epoch__int_parse(&i, p, n) < 0 || (n == 2 && p[0] == '-' &&
                                               p[1] == '0')) {
            *why = "string is not a decimal integer in int64 range";
            return CRDT_ETYPE;
        }
        *out = crdt_value_int(i);
        return CRDT_OK;
    case CRDT_VDOUBLE:
        if (epoch__double_parse(&d, p, n) < 0) {
            *why = "string is not a finite JSON number";
            return CRDT_ETYPE;
        }
        *out = crdt_value_double(d);
        return CRDT_OK;
    case CRDT_VBOOL:
        if (n == 4 && memcmp(p, "true", 4) == 0) {
            *out = crdt_value_bool(1);
        } else if (n == 5 && memcmp(p, "false", 5) == 0) {
            *out = crdt_value_bool(0);
        } else {
            *why = "string is not \"true\" or \"false\"";
            return CRDT_ETYPE;
        }
        return CRDT_OK;
    case CRDT_VBYTES:
        *out = crdt_value_bytes(p, n);
        return CRDT_OK;
    default:
        break;
    }
    *why = "no built-in conversion between these types";
    return CRDT_ETYPE;
}

static int
builtin(crdt_value *out, epoch_buf *scratch, crdt_vtype to,
        const crdt_value *in, const char **why)
{
    char num[40];
    int n;
    double d;

    if (in->type == to) {
        *out = *in;
        return CRDT_OK;
    }
    switch (in->type) {
    case CRDT_VSTRING:
        return from_string(out, to, in, why);
    case CRDT_VBYTES:
        if (to != CRDT_VSTRING)
            break;
        if (!epoch__utf8_valid(in->u.s.ptr, in->u.s.len)) {
            *why = "bytes are not valid UTF-8";
            return CRDT_ETYPE;
        }
        *out = crdt_value_str(in->u.s.ptr, in->u.s.len);
        return CRDT_OK;
    case CRDT_VBOOL:
        if (to == CRDT_VINT) {
            *out = crdt_value_int(in->u.b ? 1 : 0);
            return CRDT_OK;
        }
        if (to == CRDT_VSTRING) {
            *out = in->u.b ? crdt_value_str("true", 4)
                           : crdt_value_str("false", 5);
            return CRDT_OK;
        }
        break;
    case CRDT_VINT:
        if (to == CRDT_VSTRING) {
            n = int_decimal(num, in->u.i);
            return to_scratch(out, scratch, num, (size_t)n);
        }
        if (to == CRDT_VBOOL) {
            if (in->u.i != 0 && in->u.i != 1) { /* keeps (1) */
                *why = "int is neither 0 nor 1";
                return CRDT_ETYPE;
            }
            *out = crdt_value_bool((int)in->u.i);
            return CRDT_OK;
        }
        if (to == CRDT_VDOUBLE) {
            d = (double)in->u.i;
            if (d >= TWO63 || (int64_t)d != in->u.i) { /* keeps (1) */
                *why = "int has no exact double";
                return CRDT_ETYPE;
            }
            *out = crdt_value_double(d);
            return CRDT_OK;
        }
        break;
    case CRDT_VDOUBLE:
        d = in->u.d;
        if (to == CRDT_VSTRING) {
            n = epoch__double_shortest(num, sizeof num, d);
            if (n < 0) {
                *why = "double is not finite";
                return CRDT_ETYPE;
            }
            return to_scratch(out, scratch, num, (size_t)n);
        }
        if (to == CRDT_VINT) {
            /* the range test first: the cast is undefined outside it */
            if (!(d >= -TWO63 && d < TWO63) || (double)(int64_t)d != d ||
                (d == 0 && signbit(d))) {
                *why = "double is not an integer in int64 range";
                return CRDT_ETYPE;
            }
            *out = crdt_value_int((int64_t)d);
            return CRDT_OK;
        }
        break;
    case CRDT_VNULL:
        break;
    }
    *why = "no built-in conversion between these types";
    return CRDT_ETYPE;
}

static const epoch__pair *
pair_find(const epoch__step *s, const crdt_value *v)
{
    size_t lo = 0, hi = s->npairs, mid;
    int c;

    while (lo < hi) { /* pairs are sorted by from, lens_internal.h (4) */
        mid = lo + (hi - lo) / 2;
        c = crdt_value_cmp(v, &s->pairs[mid].from);
        if (c == 0)
            return &s->pairs[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

static int
is_map_target(const epoch__step *s, const crdt_value *v)
{
    size_t i;

    for (i = 0; i < s->npairs; i++)
        if (crdt_value_cmp(v, &s->pairs[i].to) == 0)
            return 1;
    return 0;
}

int
epoch__convert(crdt_value *out, epoch_buf *scratch, const epoch__step *s,
               const crdt_value *in, const char **reason_out)
{
    const epoch__pair *pair;
    const char *why = NULL;
    crdt_value v;
    int rc;

    if (in->type != s->type) {
        *out = *in;
        return CRDT_OK;
    }
    pair = pair_find(s, in);
    if (pair != NULL) {
        *out = pair->to;
        return CRDT_OK;
    }
    rc = builtin(&v, scratch, s->to_type, in, &why);
    if (rc == CRDT_OK && is_map_target(s, &v)) { /* keeps (2) */
        why = "converted value collides with a map target";
        rc = CRDT_ETYPE;
    }
    if (rc == CRDT_ETYPE && s->has_def) {
        *out = s->def;
        return CRDT_OK;
    }
    if (rc < 0) {
        if (reason_out != NULL && why != NULL)
            *reason_out = why;
        return rc;
    }
    *out = v;
    return CRDT_OK;
}
