/*
 * version.c: the library's version string, and its free() for the
 * buffers it hands out (one allocator, whoever linked what).
 */
#include <stdlib.h>

#include "crdt/version.h"
#include "crdtnet/crdtnet.h"

const char *
crdtnet_version(void)
{
    return CRDT_VERSION_STRING;
}

void
crdtnet_free(void *p)
{
    free(p);
}
