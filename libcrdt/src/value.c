/*
 * value.c: ordering of scalar values.
 */
#include "crdt/value.h"

#include <string.h>

int
crdt_value_cmp(const crdt_value *a, const crdt_value *b)
{
    size_t n;
    int c;

    if (a->type != b->type)
        return a->type < b->type ? -1 : 1;
    switch (a->type) {
    case CRDT_VNULL:
        return 0;
    case CRDT_VBOOL:
        return a->u.b - b->u.b;
    case CRDT_VINT:
        return a->u.i < b->u.i ? -1 : a->u.i > b->u.i;
    case CRDT_VDOUBLE:
        return a->u.d < b->u.d ? -1 : a->u.d > b->u.d;
    case CRDT_VSTRING:
    case CRDT_VBYTES:
        n = a->u.s.len < b->u.s.len ? a->u.s.len : b->u.s.len;
        c = n ? memcmp(a->u.s.ptr, b->u.s.ptr, n) : 0;
        if (c != 0)
            return c;
        return a->u.s.len < b->u.s.len ? -1 : a->u.s.len > b->u.s.len;
    }
    return 0;
}
