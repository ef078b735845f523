/*
 * version.c: the library's version string.
 */
#include "crdtnet/crdtnet.h"

const char *
crdtnet_version(void)
{
    return "0.1.0";
}
