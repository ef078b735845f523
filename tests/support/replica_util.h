/* Helpers for tests that drive replicas. */
#ifndef TEST_REPLICA_UTIL_H
#define TEST_REPLICA_UTIL_H

#include "crdt/crdt.h"

/* Create a fresh replica in a new temp dir (joining @p space if given). */
crdt_replica *tu_create(char *dir, size_t size, const unsigned char *space);
/* Copy every change @p from has that @p to lacks; returns merge rc. */
int tu_sync_one_way(crdt_replica *to, crdt_replica *from);
/* Field as a JSON-ish string for assertions ("" if absent). */
void tu_field_str(char *buf, size_t size, crdt_replica *r, const char *coll,
                  const char *doc, const char *field);
/* Every change @p r exports, as copies the caller frees with
 * tu_batch_free(). */
typedef struct {
    crdt_bytes *v;
    size_t n;
} tu_batch;
tu_batch tu_export_all(crdt_replica *r);
void tu_batch_free(tu_batch *b);
/* State hash as hex. */
void tu_hash(char *hex65, crdt_replica *r);
/* put int helper: one change. */
int tu_put_int(crdt_replica *r, const char *coll, const char *doc,
               const char *field, int64_t v);

#endif
