/*
 * version.c: the library's version string, from the build's one version.
 */
#include "crdt/version.h"

const char *
crdt_version(void)
{
    return CRDT_VERSION_STRING;
}
