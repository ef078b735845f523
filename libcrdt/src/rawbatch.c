/*
 * rawbatch.c: entries for the spare state slot, copied and hashed on any
 * thread (crdt/raw.h), so a migration can prepare the next batch while
 * its write txn appends this one.
 *
 * Invariants:
 *  (1) b->sum is the sum of crdt__hash_entry() over the entries held:
 *      only crdt_raw_batch_add() adds an entry, and it adds its hash.
 *      The handle is opaque, so a sum handed to the spare slot's hash
 *      is always libcrdt's own.
 *  (2) The buffer only grows; clear keeps it for the next batch.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct crdt_raw_batch {
    unsigned char *p;
    size_t len, cap;
    size_t count;
    uint64_t sum[4];
};

int
crdt_raw_batch_new(crdt_raw_batch **out)
{
    if (out == NULL)
        return CRDT_EINVAL;
    *out = calloc(1, sizeof **out);
    return *out ? CRDT_OK : CRDT_ENOMEM;
}

void
crdt_raw_batch_free(crdt_raw_batch *b)
{
    if (b == NULL)
        return;
    free(b->p);
    free(b);
}

void
crdt_raw_batch_clear(crdt_raw_batch *b)
{
    if (b == NULL)
        return;
    b->len = 0;
    b->count = 0;
    memset(b->sum, 0, sizeof b->sum);
}

int
crdt_raw_batch_add(crdt_raw_batch *b, const void *k, size_t kl,
                   const void *v, size_t vl)
{
    uint32_t k32 = (uint32_t)kl, v32 = (uint32_t)vl;
    size_t need;
    uint64_t h[4];

    if (b == NULL || k == NULL || kl == 0 || (v == NULL && vl > 0))
        return CRDT_EINVAL;
    if (kl > CRDT_STATE_KEY_MAX || vl > UINT32_MAX)
        return CRDT_ELIMIT;
    need = b->len + 8 + kl + vl;
    if (need > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64 * 1024;
        unsigned char *p;
        while (cap < need)
            cap *= 2;
        if ((p = realloc(b->p, cap)) == NULL)
            return CRDT_ENOMEM;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, &k32, 4);
    memcpy(b->p + b->len + 4, &v32, 4);
    memcpy(b->p + b->len + 8, k, kl);
    if (vl)
        memcpy(b->p + b->len + 8 + kl, v, vl);
    b->len = need;
    b->count++;
    crdt__hash_entry(h, k, kl, v, vl);
    for (int i = 0; i < 4; i++)
        b->sum[i] += h[i];
    return CRDT_OK;
}

size_t
crdt_raw_batch_bytes(const crdt_raw_batch *b)
{
    return b ? b->len : 0;
}

size_t
crdt_raw_batch_count(const crdt_raw_batch *b)
{
    return b ? b->count : 0;
}

const unsigned char *
crdt__batch_entries(const crdt_raw_batch *b, const unsigned char **end)
{
    *end = b->p + b->len;
    return b->p;
}

void
crdt__batch_sum_into(const crdt_raw_batch *b, uint64_t acc[4])
{
    for (int i = 0; i < 4; i++)
        acc[i] += b->sum[i];
}
