/**
 * @file crdt/value.h
 * Scalar values held by registers and set elements.
 */
#ifndef CRDT_VALUE_H
#define CRDT_VALUE_H

#include <stddef.h>
#include <stdint.h>

#include "crdt/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The scalar types. Numbers are permanent (they appear on disk). */
typedef enum {
    CRDT_VNULL = 0,
    CRDT_VBOOL = 1,
    CRDT_VINT = 2,
    CRDT_VDOUBLE = 3,
    CRDT_VSTRING = 4,
    CRDT_VBYTES = 5
} crdt_vtype;

/**
 * A scalar. A value type: strings and bytes point to memory owned by
 * whoever filled the struct (a txn, a read result, the caller); the
 * function that hands one out says how long the pointer stays valid.
 * Strings are UTF-8 without a terminating NUL counted in @c len.
 */
typedef struct {
    crdt_vtype type;
    union {
        int b;     /**< CRDT_VBOOL: 0 or 1 */
        int64_t i; /**< CRDT_VINT */
        double d;  /**< CRDT_VDOUBLE */
        struct {
            const char *ptr;
            size_t len;
        } s;       /**< CRDT_VSTRING, CRDT_VBYTES */
    } u;
} crdt_value;

/** Constructors for the common cases. */
static inline crdt_value
crdt_value_null(void)
{
    crdt_value v;
    v.type = CRDT_VNULL;
    v.u.i = 0;
    return v;
}

static inline crdt_value
crdt_value_bool(int b)
{
    crdt_value v;
    v.type = CRDT_VBOOL;
    v.u.b = b ? 1 : 0;
    return v;
}

static inline crdt_value
crdt_value_int(int64_t i)
{
    crdt_value v;
    v.type = CRDT_VINT;
    v.u.i = i;
    return v;
}

static inline crdt_value
crdt_value_double(double d)
{
    crdt_value v;
    v.type = CRDT_VDOUBLE;
    v.u.d = d;
    return v;
}

static inline crdt_value
crdt_value_str(const char *p, size_t len)
{
    crdt_value v;
    v.type = CRDT_VSTRING;
    v.u.s.ptr = p;
    v.u.s.len = len;
    return v;
}

static inline crdt_value
crdt_value_bytes(const void *p, size_t len)
{
    crdt_value v;
    v.type = CRDT_VBYTES;
    v.u.s.ptr = (const char *)p;
    v.u.s.len = len;
    return v;
}

/**
 * The total order over values, the one every layer uses (sorted sets,
 * lens maps): by type number first, then by value. Booleans false <
 * true; ints numerically; strings and bytes as memcmp, then length;
 * doubles by IEEE 754 totalOrder: -NaN < -inf < ... < -0.0 < +0.0 < ...
 * < +inf < +NaN. So -0.0 and +0.0 are distinct values, and a NaN is
 * accepted as a value (in a register or a set) and equals only a NaN
 * with the same bits. Two values compare equal exactly when they are
 * the same value. Returns -1, 0 or 1.
 */
CRDT_API int crdt_value_cmp(const crdt_value *a, const crdt_value *b);

/**
 * The fewest significant decimal digits (1..17) with which @p d prints
 * ("%.*g" or "%.*e" with that many digits) to text that strtod() reads
 * back as exactly @p d: the one rule every layer uses to print a double
 * shortest (the CLI's JSON, a lens's canonical text). 17 for a value
 * that is not finite.
 */
CRDT_API int crdt_double_digits(double d);

#ifdef __cplusplus
}
#endif

#endif
