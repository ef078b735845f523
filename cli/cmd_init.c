/*
 * cmd_init.c: `strata init DIR [--space-id ID [--peer-key KEY] |
 * --invite TOKEN] [--phrase-file F] [--json]`.
 *
 * Creates the replica. A new space (no --space-id) gets an id bound to
 * its creator's key (crdt_space_id_for_owner) and records the creator
 * as its owner, so the member set is never empty and every replica can
 * tell the owner from the space id alone (docs/security.md); a replica
 * joining a space learns the members from its peers: from the peer whose
 * key it pinned with --peer-key or the inviter named by --invite (whose
 * daemon also admits it, once, on the invitation's secret), else from
 * the first it syncs with.
 */
#include <ctype.h>
#include <errno.h>
#include <sodium.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"
#include "crdt/raw.h"
#include "crdtnet/conn.h"
#include "crdtnet/invite.h"

/* Keep the peer key a joining replica trusts for its first sync. */
static int
pin_peer(crdt_replica *r, const unsigned char *pk)
{
    crdt_raw *t;
    int rc;

    if ((rc = crdt_raw_begin(&t, r, 1)) < 0)
        return rc;
    rc = crdt_raw_put(t, CRDT_DB_META, CRDTNET_PIN_META,
                      sizeof CRDTNET_PIN_META - 1, pk, CRDT_PUBKEY_BYTES);
    if (rc < 0) {
        crdt_raw_abort(t);
        return rc;
    }
    return crdt_raw_commit(t);
}

enum { OPT_SPACE_ID, OPT_PHRASE_FILE, OPT_JSON, OPT_PEER_KEY, OPT_INVITE };

static const cli_opt OPTS[] = {
    { "space-id", 1 }, { "phrase-file", 1 }, { "json", 0 },
    { "peer-key", 1 }, { "invite", 1 }, { NULL, 0 },
};

#define PHRASE_MAX 4096

/* Read the phrase in @p path, trimmed, and derive the identity seed. */
int
cli_seed_from_file(const cli_cmd *cmd, unsigned char *seed, const char *path)
{
    char buf[PHRASE_MAX + 1], *p;
    size_t len;
    FILE *f;
    int rc;

    f = fopen(path, "rb");
    if (f == NULL)
        return cli_error(errno == ENOENT ? CLI_ENOTFOUND : CLI_EIO, cmd->name,
                         "read %s: %s", path, strerror(errno));
    len = fread(buf, 1, sizeof buf, f);
    rc = ferror(f);
    fclose(f);
    if (rc)
        return cli_error(CLI_EIO, cmd->name, "read %s: I/O error", path);
    if (len > PHRASE_MAX) {
        sodium_memzero(buf, sizeof buf);
        return cli_error(CLI_EUSAGE, cmd->name,
                         "%s: a phrase file holds at most %d bytes", path,
                         PHRASE_MAX);
    }
    p = buf;
    while (len > 0 && isspace((unsigned char)p[len - 1]))
        len--;
    while (len > 0 && isspace((unsigned char)*p)) {
        p++;
        len--;
    }
    rc = crdt_seed_from_phrase(seed, p, len);
    sodium_memzero(buf, sizeof buf);
    if (rc == CRDT_EINVAL)
        return cli_error(CLI_EUSAGE, cmd->name,
                         "%s: the phrase is shorter than 8 bytes", path);
    if (rc < 0)
        return cli_fail(cmd->name, rc);
    return CLI_OK;
}

static int
print_identity(crdt_replica *r, int json)
{
    unsigned char space[CRDT_SPACE_ID_BYTES], pk[CRDT_PUBKEY_BYTES];
    char space_hex[2 * sizeof space + 1], pk_hex[2 * sizeof pk + 1];

    crdt_replica_space_id(r, space);
    crdt_replica_public_key(r, pk);
    crdt_hex(space_hex, space, sizeof space);
    crdt_hex(pk_hex, pk, sizeof pk);
    if (json)
        return cli_emit(json_pack("{s:s,s:s}", "space_id", space_hex,
                                  "public_key", pk_hex));
    printf("space_id %s\npublic_key %s\n", space_hex, pk_hex);
    return CLI_OK;
}

int
cmd_init(const cli_cmd *cmd, int argc, char **argv)
{
    crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
    unsigned char space[CRDT_SPACE_ID_BYTES], seed[CRDT_SEED_BYTES];
    unsigned char pk[CRDT_PUBKEY_BYTES], nonce[CRDT_SPACE_NONCE_BYTES];
    unsigned char peer[CRDT_PUBKEY_BYTES];
    crdtnet_invite inv;
    crdt_replica *r = NULL;
    int new_space = 0;
    char what[4200];
    const char *dir;
    struct stat st;
    cli_args a;
    int rc;

    rc = cli_parse(&a, cmd, argc, argv, OPTS, 1, 1);
    if (rc != CLI_OK)
        return rc == CLI_HELP_SHOWN ? CLI_OK : rc;
    dir = a.pos[0];
    snprintf(what, sizeof what, "init %s", dir);
    if (cli_has(&a, OPT_SPACE_ID)) {
        if (crdt_unhex(space, sizeof space, a.opt[OPT_SPACE_ID]) != CRDT_OK)
            return cli_usage(cmd, "--space-id must be %d hex digits",
                             2 * CRDT_SPACE_ID_BYTES);
        o.space_id = space;
    }
    if (cli_has(&a, OPT_PEER_KEY)) {
        const char *k = a.opt[OPT_PEER_KEY];
        if (!cli_has(&a, OPT_SPACE_ID))
            return cli_usage(cmd, "--peer-key goes with --space-id");
        if (strlen(k) != 2 * CRDT_PUBKEY_BYTES ||
            crdt_unhex(peer, sizeof peer, k) != CRDT_OK)
            return cli_usage(cmd, "--peer-key must be %d hex digits",
                             2 * CRDT_PUBKEY_BYTES);
    }
    if (cli_has(&a, OPT_INVITE)) {
        if (cli_has(&a, OPT_SPACE_ID) || cli_has(&a, OPT_PEER_KEY))
            return cli_usage(cmd, "--invite names the space and the peer: "
                                  "no --space-id or --peer-key with it");
        if (crdtnet_invite_parse(a.opt[OPT_INVITE], &inv) != CRDT_OK)
            return cli_usage(cmd, "--invite: not an invitation token (%d "
                                  "characters from `strata invite`)",
                             CRDTNET_INVITE_TOKEN_LEN);
        if (inv.expires <= (uint64_t)time(NULL)) {
            sodium_memzero(&inv, sizeof inv);
            return cli_error(CLI_EAUTH, what,
                             "this invitation has expired: ask for a new one");
        }
        memcpy(space, inv.space_id, sizeof space);
        o.space_id = space;
    }
    if (stat(dir, &st) == 0 && !S_ISDIR(st.st_mode))
        return cli_error(CLI_EUSAGE, what, "not a directory");
    if (cli_has(&a, OPT_PHRASE_FILE)) {
        rc = cli_seed_from_file(cmd, seed, a.opt[OPT_PHRASE_FILE]);
        if (rc != CLI_OK)
            return rc;
        o.seed = seed;
    }
    if (o.space_id == NULL) {
        /* the space id is the owner's key and a nonce, hashed */
        unsigned char sk[CRDT_SECKEY_BYTES];
        if (o.seed == NULL) {
            randombytes_buf(seed, sizeof seed);
            o.seed = seed;
        }
        crypto_sign_seed_keypair(pk, sk, seed);
        sodium_memzero(sk, sizeof sk);
        randombytes_buf(nonce, sizeof nonce);
        crdt_space_id_for_owner(space, pk, nonce);
        o.space_id = space;
        new_space = 1;
    }
    o.create = 1;
    rc = crdt_replica_open(&r, dir, &o);
    sodium_memzero(seed, sizeof seed);
    switch (rc) {
    case CRDT_OK: break;
    case CRDT_EEXISTS: return cli_error(CLI_EUSAGE, what, "already a replica");
    case CRDT_ENOTFOUND:
        return cli_error(CLI_ENOTFOUND, what,
                         "the parent directory does not exist");
    case CRDT_EPERM: return cli_error(CLI_EIO, what, "permission denied");
    default: return cli_fail(what, rc);
    }
    if (new_space) {
        crdt_txn *t;
        if ((rc = crdt_txn_begin(&t, r)) == CRDT_OK) {
            rc = crdt_txn_member_genesis(t, nonce);
            if (rc == CRDT_OK)
                rc = crdt_txn_commit(t, NULL);
            else
                crdt_txn_abort(t);
        }
        if (rc < 0) {
            crdt_replica_close(r);
            return cli_fail("init: record the creator as the owner", rc);
        }
    }
    if (cli_has(&a, OPT_PEER_KEY) && (rc = pin_peer(r, peer)) < 0) {
        crdt_replica_close(r);
        return cli_fail("init: pin the peer key", rc);
    }
    if (cli_has(&a, OPT_INVITE)) {
        rc = crdtnet_invite_keep(r, &inv);
        sodium_memzero(&inv, sizeof inv);
        if (rc < 0) {
            crdt_replica_close(r);
            return cli_fail("init: keep the invitation", rc);
        }
    }
    rc = print_identity(r, cli_has(&a, OPT_JSON));
    crdt_replica_close(r);
    return rc;
}
