/*
 * version.c: the library's version string.
 */
#include "epoch/epoch.h"

const char *
epoch_version(void)
{
    return "0.1.0";
}
