/*
 * hostport.c: splitting "HOST:PORT" and "[V6]:PORT", for the daemon's
 * peers and every address the CLI takes.
 */
#include <stdio.h>
#include <string.h>

#include "crdtnet/conn.h"

/* 1..5 decimal digits, at most 65535. */
static int
port_ok(const char *p)
{
    size_t n = strlen(p);
    long v = 0;

    if (n == 0 || n > 5)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return 0;
        v = v * 10 + (p[i] - '0');
    }
    return v <= 65535;
}

int
crdtnet_split_hostport(char *host, size_t host_size, char *port,
                       size_t port_size, const char *s)
{
    const char *colon, *h = s;
    size_t hl;

    if (s == NULL || host == NULL || port == NULL)
        return CRDT_EINVAL;
    if (s[0] == '[') {
        const char *close_br = strchr(s, ']');

        if (close_br == NULL || close_br[1] != ':')
            return CRDT_EINVAL;
        h = s + 1;
        hl = (size_t)(close_br - h);
        colon = close_br + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL)
            return CRDT_EINVAL;
        hl = (size_t)(colon - s);
        if (memchr(s, ':', hl) != NULL)
            return CRDT_EINVAL; /* a bare IPv6 literal needs brackets */
    }
    if (hl == 0 || hl >= host_size || !port_ok(colon + 1) ||
        strlen(colon + 1) >= port_size)
        return CRDT_EINVAL;
    memcpy(host, h, hl);
    host[hl] = '\0';
    snprintf(port, port_size, "%s", colon + 1);
    return CRDT_OK;
}
