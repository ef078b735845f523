/*
 * cmd_invite.c: `strata invite DIR [--role R] [--ttl SECONDS] [--json]`.
 *
 * Prints a one-time invitation token to the space of DIR (crdtnet/
 * invite.h): the space id, this replica's public key (which the joiner
 * pins), a secret and the role. Only the hash of the secret is kept, in
 * DIR; a daemon serving DIR accepts the token once, before it expires,
 * and adds the joiner with the role in a change signed by DIR's key.
 * `strata init NEWDIR --invite TOKEN` then `strata sync NEWDIR HOST:PORT`
 * join with it (docs/cli.md, docs/security.md "Invitations").
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "crdtnet/invite.h"

enum { OPT_ROLE, OPT_TTL, OPT_JSON };

static const cli_opt OPTS[] = {
    { "role", 1 }, { "ttl", 1 }, { "json", 0 }, { NULL, 0 },
};

#define TTL_DEFAULT (24 * 3600)

int
cmd_invite(const cli_cmd *cmd, int argc, char **argv)
{
    char token[CRDTNET_INVITE_TOKEN_LEN + 1], what[4200];
    crdt_role role = CRDT_ROLE_WRITER;
    long long ttl = TTL_DEFAULT;
    uint64_t now = (uint64_t)time(NULL);
    crdt_replica *r;
    cli_args a;
    int rc;

    rc = cli_parse(&a, cmd, argc, argv, OPTS, 1, 1);
    if (rc != CLI_OK)
        return rc == CLI_HELP_SHOWN ? CLI_OK : rc;
    snprintf(what, sizeof what, "invite %s", a.pos[0]);
    if (cli_has(&a, OPT_ROLE) &&
        crdt_role_parse(a.opt[OPT_ROLE], &role) != CRDT_OK)
        return cli_usage(cmd, "--role must be reader, writer or admin");
    if (cli_has(&a, OPT_TTL) &&
        (cli_parse_int64(&ttl, a.opt[OPT_TTL]) != 0 || ttl < 1 ||
         (uint64_t)ttl > CRDTNET_INVITE_TTL_MAX))
        return cli_usage(cmd, "--ttl must be 1 to %llu seconds",
                         (unsigned long long)CRDTNET_INVITE_TTL_MAX);
    rc = cli_open(&r, a.pos[0], 1);
    if (rc != CLI_OK)
        return rc;
    rc = crdtnet_invite_create(r, role, (uint64_t)ttl, now, token,
                               sizeof token);
    crdt_replica_close(r);
    if (rc == CRDT_EPERM)
        return cli_error(CLI_EREJECTED, what,
                         "not permitted: only an admin invites, and only "
                         "the owner invites an admin");
    if (rc < 0)
        return cli_fail(what, rc);
    if (cli_has(&a, OPT_JSON))
        return cli_emit(json_pack("{s:s,s:s,s:I}", "token", token, "role",
                                  crdt_role_name(role), "expires",
                                  (json_int_t)(now + (uint64_t)ttl)));
    printf("%s\n", token);
    return CLI_OK;
}
