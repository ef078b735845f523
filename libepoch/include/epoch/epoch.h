/**
 * @file epoch/epoch.h
 * libepoch: epochs, lenses and the migration builder (umbrella header).
 */
#ifndef EPOCH_EPOCH_H
#define EPOCH_EPOCH_H

#include "crdt/crdt.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The library version, e.g. "0.1.0". Static; do not free. */
const char *epoch_version(void);

#ifdef __cplusplus
}
#endif

#endif
