/*
 * cmd_id.c: `strata id DIR`: this replica's public key in hex, the
 * string a peer passes to `strata member add`.
 */
#include "cli.h"

int
cmd_id(const cli_cmd *cmd, int argc, char **argv)
{
    unsigned char pk[CRDT_PUBKEY_BYTES];
    char hex[2 * CRDT_PUBKEY_BYTES + 1];
    crdt_replica *r;
    cli_args a;
    int rc;

    rc = cli_parse(&a, cmd, argc, argv, NULL, 1, 1);
    if (rc != CLI_OK)
        return rc == CLI_HELP_SHOWN ? CLI_OK : rc;
    rc = cli_open(&r, a.pos[0], 0);
    if (rc != CLI_OK)
        return rc;
    crdt_replica_public_key(r, pk);
    crdt_replica_close(r);
    crdt_hex(hex, pk, sizeof pk);
    printf("%s\n", hex);
    return CLI_OK;
}
