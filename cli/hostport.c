/*
 * hostport.c: splitting "HOST:PORT" ("[::1]:7000" for IPv6).
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int
cli_split_hostport(char *host, size_t hsize, char *port, size_t psize,
                   const char *arg)
{
    const char *colon, *h = arg;
    size_t hl;
    char *end;
    long p;

    if (arg == NULL)
        return -1;
    colon = strrchr(arg, ':');
    if (colon == NULL || colon == arg || colon[1] == '\0')
        return -1;
    hl = (size_t)(colon - arg);
    if (arg[0] == '[') { /* [v6]:port */
        if (hl < 3 || arg[hl - 1] != ']')
            return -1;
        h = arg + 1;
        hl -= 2;
    }
    p = strtol(colon + 1, &end, 10);
    if (*end != '\0' || p < 0 || p > 65535 || hl + 1 > hsize ||
        strlen(colon + 1) + 1 > psize)
        return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    strcpy(port, colon + 1);
    return 0;
}
