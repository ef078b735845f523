/*
 * version.c: the library's version string, and its free().
 */
#include <stdlib.h>

#include "crdt/version.h"
#include "epoch/epoch.h"

void
epoch_free(void *p)
{
    free(p);
}

const char *
epoch_version(void)
{
    return CRDT_VERSION_STRING;
}
