/*
 * value.c: the one order of scalar values, and the one rule for printing
 * a double shortest, for every layer.
 *
 * Keeps: (1) crdt_value_cmp() is a total order in which two values are
 * equal exactly when they are the same value bit for bit: doubles by IEEE
 * 754 totalOrder (-NaN < -inf < ... < -0.0 < +0.0 < ... < +inf < +NaN,
 * NaNs by payload), so -0.0 and +0.0 are two values and a NaN equals only
 * a NaN with the same bits. Set elements, stored under their encoded
 * bytes, are then unique under this order too, and a sort by it is
 * consistent whatever the elements.
 */
#include "crdt/value.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
crdt_double_digits(double d)
{
    char buf[40];

    if (!isfinite(d))
        return 17;
    for (int p = 1; p < 17; p++) {
        snprintf(buf, sizeof buf, "%.*e", p - 1, d);
        if (strtod(buf, NULL) == d)
            return p;
    }
    return 17; /* always enough for a binary64 */
}

/* A double's bits as an integer whose signed order is IEEE totalOrder:
 * negative doubles have their magnitude bits flipped. */
static int64_t
double_key(double d)
{
    int64_t k;

    memcpy(&k, &d, sizeof k);
    return k < 0 ? (int64_t)((uint64_t)k ^ (uint64_t)INT64_MAX) : k;
}

int
crdt_value_cmp(const crdt_value *a, const crdt_value *b)
{
    int64_t x, y;
    size_t n;
    int c;

    if (a->type != b->type)
        return a->type < b->type ? -1 : 1;
    switch (a->type) {
    case CRDT_VNULL:
        return 0;
    case CRDT_VBOOL:
        return (a->u.b != 0) - (b->u.b != 0);
    case CRDT_VINT:
        return (a->u.i > b->u.i) - (a->u.i < b->u.i);
    case CRDT_VDOUBLE:
        x = double_key(a->u.d);
        y = double_key(b->u.d);
        return (x > y) - (x < y);
    case CRDT_VSTRING:
    case CRDT_VBYTES:
        n = a->u.s.len < b->u.s.len ? a->u.s.len : b->u.s.len;
        c = n > 0 ? memcmp(a->u.s.ptr, b->u.s.ptr, n) : 0;
        if (c != 0)
            return c < 0 ? -1 : 1;
        return (a->u.s.len > b->u.s.len) - (a->u.s.len < b->u.s.len);
    }
    return 0;
}
