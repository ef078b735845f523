/*
 * version.c: the library's version string.
 */
#include "crdt/version.h"
#include "epoch/epoch.h"

const char *
epoch_version(void)
{
    return CRDT_VERSION_STRING;
}
