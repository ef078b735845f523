/*
 * hostport.c: addresses on the command line, parsed by libcrdtnet's
 * crdtnet_split_hostport() so the CLI and the daemon read them alike.
 */
#include "cli.h"
#include "crdtnet/conn.h"

int
cli_split_hostport(char *host, size_t hsize, char *port, size_t psize,
                   const char *arg)
{
    return crdtnet_split_hostport(host, hsize, port, psize, arg) == CRDT_OK
               ? 0
               : -1;
}
