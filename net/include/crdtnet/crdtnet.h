/**
 * @file crdtnet/crdtnet.h
 * crdtnet: frames, handshake, sync sessions and the daemon (umbrella).
 */
#ifndef CRDTNET_CRDTNET_H
#define CRDTNET_CRDTNET_H

#include "crdt/crdt.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The library version, e.g. "0.1.0". Static; do not free. */
const char *crdtnet_version(void);

#ifdef __cplusplus
}
#endif

#endif
