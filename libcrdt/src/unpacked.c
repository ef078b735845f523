/*
 * unpacked.c: a packed list rebuilt together with the hashes its rebuild
 * computed, and its merge (crdt/sync.h, crdt_unpacked).
 *
 * Why: a receiver of packed changes rebuilt them (crdt_changes_unpack()
 * hashes each body to chain the next one's prev) and then merged them
 * (the merge hashes each body again while it decodes the headers): two
 * BLAKE2b per change, half of the receiver's CPU for changes of one op.
 * The hashes stay inside libcrdt, so the merge can trust them.
 */
#include <stdlib.h>

#include "internal.h"

struct crdt_unpacked {
    crdt_bytes *list;
    size_t n;
    unsigned char *buf;
    unsigned char *hashes; /* n x CRDT_HASH_BYTES */
};

int
crdt_unpacked_new(crdt_unpacked **out, const unsigned char *in, size_t len)
{
    crdt_unpacked *u;
    int rc;

    if (out == NULL)
        return CRDT_EINVAL;
    *out = NULL;
    if ((u = calloc(1, sizeof *u)) == NULL)
        return CRDT_ENOMEM;
    rc = crdt__changes_unpack_hashed(&u->list, &u->n, &u->buf, &u->hashes,
                                     in, len);
    if (rc < 0) {
        free(u);
        return rc;
    }
    *out = u;
    return CRDT_OK;
}

const crdt_bytes *
crdt_unpacked_changes(const crdt_unpacked *u, size_t *n_out)
{
    if (n_out != NULL)
        *n_out = u != NULL ? u->n : 0;
    return u != NULL ? u->list : NULL;
}

void
crdt_unpacked_free(crdt_unpacked *u)
{
    if (u == NULL)
        return;
    crdt_free(u->list);
    crdt_free(u->buf);
    free(u->hashes);
    free(u);
}

int
crdt_merge_unpacked(crdt_merge_report *report, crdt_replica *r,
                    const crdt_unpacked *u)
{
    if (u == NULL)
        return CRDT_EINVAL;
    return crdt__merge_hashed(report, r, u->list, u->hashes, u->n);
}
