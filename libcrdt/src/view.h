/* view.h: visible fields from state entries (view.c). */
#ifndef CRDT_VIEW_H
#define CRDT_VIEW_H

#include "internal.h"

/* Reusable buffers for views; values point into the LMDB map. */
typedef struct {
    crdt_value *elems;
    size_t n_elems, cap_elems;
    crdt_replica *r;  /* for the sequence cache; NULL: build each time */
    int kind_only;    /* sequence fields: report the kind, skip content */
    char *text;       /* the last text field's content */
    crdt_value *list; /* the last list field's values */
} crdt__scratch;

void crdt__scratch_free(crdt__scratch *s);

/*
 * Call @p cb for each visible field of one document (only field @p only
 * if not NULL). CRDT_ENOTFOUND if nothing is visible; a callback's
 * non-zero value stops the walk and is returned.
 */
int crdt__view_doc(crdt__scratch *s, MDB_txn *txn, MDB_dbi dbi,
                   const char *coll, size_t cl, const char *doc, size_t dl,
                   const char *only, size_t only_len, crdt_field_cb cb,
                   void *ctx);

#endif
