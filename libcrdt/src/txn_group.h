/*
 * txn_group.h: what txn.c and txn_group.c share for crdt_txn_write():
 * several callers' txns, each one change, in one LMDB write txn.
 */
#ifndef CRDT_TXN_GROUP_H
#define CRDT_TXN_GROUP_H

#include "internal.h"

struct crdt__wgroup;

/* Replay the group's changes into a new write context (after growing
 * the map if @p grow), then @p cur's ops so far if it is not NULL.
 * txn.c calls it when the map fills during one of @p cur's ops. */
int crdt__wgroup_redo(struct crdt__wgroup *g, crdt_txn *cur, int grow);

/* CRDT_EBUSY when this thread is running a group body of @p r
 * (crdt__wctx_begin() refuses to begin another write then). */
int crdt__wgroup_guard(const crdt_replica *r);

/* A txn in the group's write context @p w, positioned after what the
 * context holds. crdt_txn_commit() and crdt_txn_abort() refuse it. */
int crdt__txn_member_begin(crdt_txn **out, crdt_replica *r, crdt__wctx *w,
                           struct crdt__wgroup *g);
/* Position it again and re-apply its ops (a new context). */
int crdt__txn_member_reapply(crdt_txn *t);
/* Store its change without a signature; @p unsign_prev: the change
 * before it may be signed (it is the group's first). */
int crdt__txn_member_write(crdt_txn *t, int unsign_prev,
                           crdt_commit_info *info);
/* Sign the change it stored (the group's last). */
int crdt__txn_member_sign(crdt_txn *t);
uint64_t crdt__txn_member_ops(const crdt_txn *t);
int crdt__txn_member_failed(const crdt_txn *t);
void crdt__txn_member_free(crdt_txn *t);

#endif
