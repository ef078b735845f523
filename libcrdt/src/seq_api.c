/*
 * seq_api.c: the public entry points of crdt/text.h.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "crdt/text.h"

int
crdt_txn_text_insert(crdt_txn *t, const char *coll, const char *doc,
                     const char *field, uint64_t pos, const char *utf8,
                     size_t len)
{
    (void)t; (void)coll; (void)doc; (void)field; (void)pos; (void)utf8;
    (void)len;
    return CRDT_ERROR;
}

int
crdt_txn_text_delete(crdt_txn *t, const char *coll, const char *doc,
                     const char *field, uint64_t pos, uint64_t len)
{
    (void)t; (void)coll; (void)doc; (void)field; (void)pos; (void)len;
    return CRDT_ERROR;
}

int
crdt_txn_list_insert(crdt_txn *t, const char *coll, const char *doc,
                     const char *field, uint64_t pos, const crdt_value *v)
{
    (void)t; (void)coll; (void)doc; (void)field; (void)pos; (void)v;
    return CRDT_ERROR;
}

int
crdt_txn_list_delete(crdt_txn *t, const char *coll, const char *doc,
                     const char *field, uint64_t pos, uint64_t len)
{
    (void)t; (void)coll; (void)doc; (void)field; (void)pos; (void)len;
    return CRDT_ERROR;
}

int
crdt_txn_list_set(crdt_txn *t, const char *coll, const char *doc,
                  const char *field, uint64_t pos, const crdt_value *v)
{
    (void)t; (void)coll; (void)doc; (void)field; (void)pos; (void)v;
    return CRDT_ERROR;
}

int
crdt_read_seq_len(uint64_t *out, crdt_read *rd, const char *coll,
                  const char *doc, const char *field)
{
    (void)out; (void)rd; (void)coll; (void)doc; (void)field;
    return CRDT_ENOTFOUND;
}

int
crdt_read_text(char **out, size_t *out_len, crdt_read *rd, const char *coll,
               const char *doc, const char *field)
{
    (void)out; (void)out_len; (void)rd; (void)coll; (void)doc; (void)field;
    return CRDT_ENOTFOUND;
}

int
crdt_read_text_slice(char **out, size_t *out_len, crdt_read *rd,
                     const char *coll, const char *doc, const char *field,
                     uint64_t pos, uint64_t len)
{
    (void)out; (void)out_len; (void)rd; (void)coll; (void)doc; (void)field;
    (void)pos; (void)len;
    return CRDT_ENOTFOUND;
}

void
crdt_text_free(char *s)
{
    free(s);
}

int
crdt_read_list(crdt_value **out, size_t *n, crdt_read *rd, const char *coll,
               const char *doc, const char *field)
{
    (void)out; (void)n; (void)rd; (void)coll; (void)doc; (void)field;
    return CRDT_ENOTFOUND;
}

void
crdt_list_free(crdt_value *vals)
{
    free(vals);
}

int
crdt_read_cursor_at(crdt_cursor *out, crdt_read *rd, const char *coll,
                    const char *doc, const char *field, uint64_t pos)
{
    (void)out; (void)rd; (void)coll; (void)doc; (void)field; (void)pos;
    return CRDT_ENOTFOUND;
}

int
crdt_read_cursor_pos(uint64_t *out, crdt_read *rd, const char *coll,
                     const char *doc, const char *field, const crdt_cursor *c)
{
    (void)out; (void)rd; (void)coll; (void)doc; (void)field; (void)c;
    return CRDT_ENOTFOUND;
}

void
crdt_cursor_bytes(unsigned char out[CRDT_CURSOR_BYTES], const crdt_cursor *c)
{
    memcpy(out, c->id.actor.b, CRDT_ACTOR_BYTES);
    crdt__be64(out + 8, c->id.ctr);
}

void
crdt_cursor_parse(crdt_cursor *out, const unsigned char in[CRDT_CURSOR_BYTES])
{
    memcpy(out->id.actor.b, in, CRDT_ACTOR_BYTES);
    out->id.ctr = crdt__rd64(in + 8);
}

