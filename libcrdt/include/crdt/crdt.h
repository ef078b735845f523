/**
 * @file crdt/crdt.h
 * libcrdt umbrella header: an op-log CRDT replica stored in LMDB.
 *
 * Not included here: crdt/raw.h, libepoch's interface to the storage
 * layer (raw databases inside one LMDB txn, nothing checked for CRDT
 * semantics, and the process-wide clock override). It is installed
 * because libepoch's and the tools' builds need it; applications do not.
 *
 * Start here:
 *   crdt/replica.h  open a replica, identity
 *   crdt/txn.h      local writes (one txn = one signed change)
 *   crdt/read.h     reads from a snapshot
 *   crdt/vv.h       version vectors
 *   crdt/sync.h     export what a peer lacks, merge remote changes
 *   crdt/change.h   decode a change (inspection)
 *   crdt/backup.h   online backup and restore
 *   crdt/members.h  the member set and roles
 *   crdt/version.h  the release (crdt_version())
 */
#ifndef CRDT_CRDT_H
#define CRDT_CRDT_H

#include "crdt/backup.h"
#include "crdt/change.h"
#include "crdt/error.h"
#include "crdt/members.h"
#include "crdt/read.h"
#include "crdt/replica.h"
#include "crdt/sync.h"
#include "crdt/txn.h"
#include "crdt/value.h"
#include "crdt/version.h"
#include "crdt/vv.h"

#endif
