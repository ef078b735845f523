/*
 * cut.h: the changes of an epoch's cut a taker lacks (cut.c), which a
 * giver sends before its snapshot (docs/protocol.md, CUT).
 */
#ifndef CRDTNET_CUT_H
#define CRDTNET_CUT_H

#include <stddef.h>
#include <stdint.h>

#include "crdt/crdt.h"
#include "epoch/epoch.h"

/* Ceiling of one session's CUT changes, in bytes, for the giver (it
 * sends none past it) and the taker (it refuses more): past it a
 * snapshot sync would carry the history it exists to avoid. */
#define CRDTNET__CUT_BYTES_MAX ((uint64_t)64 * 1024 * 1024)

typedef struct {
    crdt_vv *upto;          /* the cut: the epoch's base heads */
    uint64_t archive_epoch; /* the number the archive keeps them under */
} crdtnet__cut;

/*
 * Should we (the giver) send the taker the changes of the cut of the
 * epoch on our chain whose parent is @p taker_epoch, and can we? The
 * taker holds @p taker_vv, with the chain hashes of @p taker_heads
 * (crdt_heads_export() format). On CRDT_OK @p out says what to export
 * (crdt_export_begin_archive(archive_epoch, taker_vv, upto)); release it
 * with crdtnet__cut_clear().
 * @return CRDT_OK; CRDT_ENOTFOUND (nothing to send: the taker keeps the
 *         old rule); CRDT_ENOMEM; CRDT_EIO.
 */
int crdtnet__cut_plan(crdtnet__cut *out, crdt_replica *r,
                      const unsigned char *taker_epoch,
                      const crdt_vv *taker_vv,
                      const unsigned char *taker_heads, size_t heads_len);
void crdtnet__cut_clear(crdtnet__cut *c);

/*
 * The taker's side: the cut a CUT may fill, that of the epoch on the
 * chain of the giver's epoch @p giver_epoch whose parent is our current
 * epoch, as a version vector into @p out (free with crdt_vv_free()).
 * @return CRDT_OK; CRDT_ENOTFOUND (no such epoch: no CUT belongs here);
 *         CRDT_ENOMEM; CRDT_EIO; CRDT_EPROTO (a bad heads blob).
 */
int crdtnet__cut_bound(crdt_vv **out, crdt_replica *r,
                       const unsigned char *giver_epoch);

#endif
