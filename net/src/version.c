/*
 * version.c: the library's version string.
 */
#include "crdt/version.h"
#include "crdtnet/crdtnet.h"

const char *
crdtnet_version(void)
{
    return CRDT_VERSION_STRING;
}
