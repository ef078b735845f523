/*
 * cmd_rebuild.c: `strata rebuild DIR HOST:PORT [--phrase-file F]
 * [--space-id ID]`: a replica that is corrupt or cannot be opened is
 * moved aside (never deleted) and rebuilt from a peer with the same
 * identity, in one command.
 *
 * The identity comes from the old replica when it can still be read
 * (its key pair and space id), else from --phrase-file and --space-id.
 * The old key pair is taken over by crdt_replica_create_like(), so the
 * secret key is never copied out of libcrdt.
 * The rebuilt replica is a new incarnation, so its future writes never
 * reuse an (actor, seq) the old one sent; its old writes come back from
 * the peer like everything else.
 */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "crdtnet/conn.h"

enum { OPT_PHRASE, OPT_SPACE, OPT_JSON };

static const cli_opt OPTS[] = {
    { "phrase-file", 1 }, { "space-id", 1 }, { "json", 0 }, { NULL, 0 }
};

/* Remove what a failed creation left in @p dir (LMDB's two files). */
static void
remove_partial(const char *dir)
{
    static const char *const files[] = { "data.mdb", "lock.mdb" };
    char f[4300];

    for (size_t i = 0; i < 2; i++)
        if (snprintf(f, sizeof f, "%s/%s", dir, files[i]) < (int)sizeof f)
            unlink(f);
    rmdir(dir);
}

/*
 * In a child process (a damaged file may fault inside LMDB): open the
 * old replica at @p dir, hand its space id back in @p space and, when
 * @p like is not NULL, create the new replica there with the old one's
 * key pair (crdt_replica_create_like(): the secret key never leaves
 * libcrdt) in @p space_override's space, or the old one's when NULL.
 * 0 when done.
 */
static int
salvage_identity(unsigned char *space, const char *dir, const char *like,
                 const unsigned char *space_override)
{
    int fds[2], status;
    unsigned char buf[CRDT_SPACE_ID_BYTES];
    pid_t pid;
    ssize_t got;

    if (pipe(fds) != 0)
        return -1;
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
        crdt_replica *r, *nr;
        close(fds[0]);
        o.read_only = 1;
        if (crdt_replica_open(&r, dir, &o) != CRDT_OK)
            _exit(1);
        crdt_replica_space_id(r, buf);
        if (like != NULL) {
            crdt_open_options no = CRDT_OPEN_OPTIONS_INIT;
            no.space_id = space_override;
            if (crdt_replica_create_like(&nr, r, like, &no) != CRDT_OK)
                _exit(1);
            crdt_replica_close(nr);
        }
        crdt_replica_close(r);
        if (write(fds[1], buf, sizeof buf) != (ssize_t)sizeof buf)
            _exit(1);
        _exit(0);
    }
    close(fds[1]);
    got = read(fds[0], buf, sizeof buf);
    close(fds[0]);
    waitpid(pid, &status, 0);
    if (got != (ssize_t)sizeof buf || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0)
        return -1;
    memcpy(space, buf, CRDT_SPACE_ID_BYTES);
    return 0;
}

int
cmd_rebuild(const cli_cmd *cmd, int argc, char **argv)
{
    crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
    crdtnet_conn_options co = CRDTNET_CONN_OPTIONS_INIT;
    unsigned char seed[CRDT_SEED_BYTES], space[CRDT_SPACE_ID_BYTES];
    char host[256], port[16], aside[4200], fresh[4200], stamp[32];
    crdtnet_report rep;
    crdt_replica *r;
    time_t now = time(NULL);
    struct tm tm;
    cli_args a;
    int rc, have = 0, made = 0;

    rc = cli_parse(&a, cmd, argc, argv, OPTS, 2, 2);
    if (rc != CLI_OK)
        return rc == CLI_HELP_SHOWN ? CLI_OK : rc;
    if (cli_split_hostport(host, sizeof host, port, sizeof port, a.pos[1]) < 0)
        return cli_usage(cmd, "bad address %s (want HOST:PORT)", a.pos[1]);
    if (a.opt[OPT_PHRASE] != NULL) {
        if ((rc = cli_seed_from_file(cmd, seed, a.opt[OPT_PHRASE])) != CLI_OK)
            return rc;
        have = 1;
    }
    if (a.opt[OPT_SPACE] != NULL &&
        crdt_unhex(space, sizeof space, a.opt[OPT_SPACE]) < 0)
        return cli_usage(cmd, "--space-id must be 32 hex digits");
    if (access(a.pos[0], F_OK) == 0) {
        unsigned char old_space[CRDT_SPACE_ID_BYTES];
        const unsigned char *override = a.opt[OPT_SPACE] ? space : NULL;
        /* without a phrase, the new replica is made next to the old one
         * with its key pair, then put in its place */
        localtime_r(&now, &tm);
        strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
        snprintf(fresh, sizeof fresh, "%s.rebuild-%s", a.pos[0], stamp);
        if (salvage_identity(old_space, a.pos[0], have ? NULL : fresh,
                             override) == 0) {
            if (a.opt[OPT_SPACE] == NULL)
                memcpy(space, old_space, sizeof space);
            made = !have;
            have = 1;
        } else {
            if (!have)
                remove_partial(fresh);
            if (!have || a.opt[OPT_SPACE] == NULL)
                return cli_error(CLI_EDATA, "rebuild", "%s cannot be read; "
                                 "give --phrase-file and --space-id",
                                 a.pos[0]);
        }
        /* never delete: move the damaged replica aside */
        snprintf(aside, sizeof aside, "%s.broken-%s", a.pos[0], stamp);
        if (rename(a.pos[0], aside) != 0) {
            sodium_memzero(seed, sizeof seed);
            return cli_error(CLI_EIO, "rebuild", "move %s aside: %s",
                             a.pos[0], strerror(errno));
        }
        if (made && rename(fresh, a.pos[0]) != 0)
            return cli_error(CLI_EIO, "rebuild", "move %s to %s: %s", fresh,
                             a.pos[0], strerror(errno));
        fprintf(stderr, "strata: rebuild: moved %s aside to %s\n", a.pos[0],
                aside);
    } else if (!have || a.opt[OPT_SPACE] == NULL) {
        return cli_usage(cmd, "%s does not exist; give --phrase-file and "
                         "--space-id", a.pos[0]);
    }
    o.create = !made;
    o.seed = made ? NULL : seed;
    o.space_id = made ? NULL : space;
    rc = crdt_replica_open(&r, a.pos[0], &o);
    sodium_memzero(seed, sizeof seed);
    if (rc < 0)
        return cli_fail("rebuild", rc);
    if ((rc = epoch_attach(r)) < 0) {
        crdt_replica_close(r);
        return cli_fail("rebuild", rc);
    }
    memset(&rep, 0, sizeof rep);
    {
        cli_progress p;

        cli_progress_init(&p, "rebuild", "ops and snapshot entries "
                          "received");
        if (p.on) {
            co.progress = cli_sync_progress;
            co.progress_ctx = &p;
        }
        rc = crdtnet_sync_connect(&rep, r, host, port, &co);
        cli_progress_end(&p);
    }
    crdt_replica_close(r);
    if (rc < 0)
        return cli_error(cli_exit_code(rc), "rebuild", "sync with %s: %s",
                         a.pos[1], rep.reason[0] ? rep.reason
                                                 : crdt_strerror(rc));
    if (cli_has(&a, OPT_JSON)) {
        char hash[2 * CRDT_HASH_BYTES + 1];
        crdt_hex(hash, rep.state_hash, CRDT_HASH_BYTES);
        return cli_emit(json_pack("{s:I,s:b,s:b,s:s}", "changes_received",
                                  (json_int_t)rep.changes_received,
                                  "snapshot_received", rep.snapshot_received,
                                  "in_sync", rep.in_sync, "state_hash",
                                  hash));
    }
    printf("rebuilt %s from %s: %llu changes received%s; %s\n", a.pos[0],
           a.pos[1], (unsigned long long)rep.changes_received,
           rep.snapshot_received ? ", snapshot received" : "",
           rep.in_sync ? "in sync" : "not yet in sync");
    return CLI_OK;
}
