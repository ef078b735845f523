/*
 * error.c: text for the shared error enum.
 */
#include "crdt/error.h"

const char *
crdt_strerror(int rc)
{
    switch (rc) {
    case CRDT_OK: return "success";
    case CRDT_ERROR: return "unexpected error";
    case CRDT_ENOMEM: return "out of memory";
    case CRDT_EINVAL: return "invalid argument";
    case CRDT_ENOTFOUND: return "not found";
    case CRDT_EEXISTS: return "already exists";
    case CRDT_EIO: return "I/O error";
    case CRDT_ECORRUPT: return "corrupt or invalid data";
    case CRDT_EBADTXN: return "transaction already failed";
    case CRDT_EVERSION: return "unsupported format or protocol version";
    case CRDT_EPROTO: return "malformed message from peer";
    case CRDT_EAUTH: return "authentication failed";
    case CRDT_ECLOSED: return "closed";
    case CRDT_EAGAIN: return "try again";
    case CRDT_EBUSY: return "busy: a migration is in progress";
    case CRDT_EREJECTED: return "rejected: stale or forked beyond policy";
    case CRDT_EFULL: return "storage full";
    case CRDT_ECLOCK: return "change stamped beyond the allowed clock drift";
    case CRDT_ECONFLICT: return "conflicting change for an existing (actor, seq)";
    case CRDT_ETYPE: return "field holds another type";
    case CRDT_ELIMIT: return "size or count limit exceeded";
    case CRDT_EPERM: return "not permitted";
    default: return "unknown error";
    }
}
