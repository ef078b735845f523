/*
 * state_keys.h: building and parsing state keys (layout in state.c).
 * Callers validate names first (1..64 bytes, no NUL), so a key of
 * coll + doc + field + kind + element (<= 256) + actor + seq always fits
 * in CRDT__KEY_MAX; crdt__key_* never write past the buffer regardless.
 */
#ifndef CRDT_STATE_KEYS_H
#define CRDT_STATE_KEYS_H

#include <string.h>

#include "internal.h"

typedef struct {
    unsigned char b[CRDT__KEY_MAX + 64];
    size_t len;
} crdt__key;

static inline void
crdt__key_bytes(crdt__key *k, const void *p, size_t n)
{
    if (k->len + n > sizeof k->b) {
        k->len = sizeof k->b; /* overlong: the caller's check fails */
        return;
    }
    memcpy(k->b + k->len, p, n);
    k->len += n;
}

static inline void
crdt__key_byte(crdt__key *k, unsigned char c)
{
    crdt__key_bytes(k, &c, 1);
}

static inline void
crdt__key_u64(crdt__key *k, uint64_t v)
{
    unsigned char b[8];

    crdt__be64(b, v);
    crdt__key_bytes(k, b, 8);
}

/* coll 0 doc 0 */
static inline void
crdt__key_doc(crdt__key *k, const char *c, size_t cl, const char *d,
              size_t dl)
{
    k->len = 0;
    crdt__key_bytes(k, c, cl);
    crdt__key_byte(k, 0);
    crdt__key_bytes(k, d, dl);
    crdt__key_byte(k, 0);
}

/* append: field 0 */
static inline void
crdt__key_field(crdt__key *k, const char *f, size_t fl)
{
    crdt__key_bytes(k, f, fl);
    crdt__key_byte(k, 0);
}

#endif
