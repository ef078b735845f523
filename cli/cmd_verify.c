/*
 * cmd_verify.c: `strata verify DIR [--json]`: check a replica against
 * itself, from ONE read snapshot (readers never block writers).
 *
 * What is checked:
 *  (1) the state hash: recomputed from every entry of the stored state
 *      (crdt_raw_state_rehash) and compared with the one the store keeps
 *      incrementally (crdt_raw_state_hash);
 *  (2) every change of the active epoch's log: it decodes, belongs to
 *      this space, its signature verifies, its key (actor, last seq)
 *      matches its header, its ops decode and number n_ops, and within
 *      one actor the changes follow each other (seq contiguous, each
 *      one's prev = the hash of the one before);
 *  (3) what every open checks in a small replica
 *      (crdt_replica_check_records), which adds the actors' heads: each
 *      names the last change of its actor's run.
 * Any failure exits 6 with what failed; success prints "ok" and counts.
 *
 * Not yet checked: rebuilding the state from the epoch snapshot plus the
 * log and comparing (needs the snapshot kept apart from the live state).
 */
#include <inttypes.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crdt/raw.h"
#include "cli.h"

enum { OPT_JSON };

static const cli_opt OPTS[] = { { "json", 0 }, { NULL, 0 } };

typedef struct {
    uint64_t entries, changes, ops;
    unsigned char hash[CRDT_HASH_BYTES];
} verify_counts;

/* A bad change: exit 6 naming it. */
static int
bad_change(const crdt_actor *a, uint64_t last_seq, const char *why)
{
    char actor[2 * CRDT_ACTOR_BYTES + 1];

    crdt_hex(actor, a->b, CRDT_ACTOR_BYTES);
    return cli_error(CLI_EDATA, "verify", "damaged change at %s up to seq "
                     "%" PRIu64 " in this replica's own log (local damage): "
                     "%s", actor, last_seq, why);
}

static uint64_t
be64(const unsigned char *p)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

/* (2) of the file comment. */
static int
check_log(verify_counts *n, crdt_raw *t, const unsigned char *space)
{
    unsigned char prev_hash[CRDT_HASH_BYTES];
    crdt_actor prev_actor, key_actor;
    uint64_t prev_last = 0, key_last;
    int have_prev = 0, rc;
    int open_run = 0; /* the previous change is held without its
                       * signature: its successor must follow it */
    crdt_raw_cursor *cur;
    const void *k, *v;
    size_t kl, vl;
    uint64_t total = 0;
    cli_progress p;

    cli_progress_init(&p, "verify", "changes");
    if (crdt_raw_count(&total, t, CRDT_DB_LOG) < 0)
        total = 0; /* a count only */
    rc = crdt_raw_cursor_open(&cur, t, CRDT_DB_LOG);
    if (rc < 0)
        return cli_fail("verify: read the log", rc);
    rc = crdt_raw_cursor_seek(cur, NULL, 0, &k, &kl, &v, &vl);
    while (rc == CRDT_OK) {
        crdt_bytes *list = NULL;
        unsigned char *buf = NULL;
        size_t n_list = 0;

        if ((n->changes & 255) == 0)
            cli_progress_draw(n->changes, total, &p);
        if (kl != CRDT_ACTOR_BYTES + 8) {
            cli_progress_end(&p);
            crdt_raw_cursor_close(cur);
            return cli_error(CLI_EDATA, "verify", "a log key of %zu bytes",
                             kl);
        }
        memcpy(key_actor.b, k, CRDT_ACTOR_BYTES);
        key_last = be64((const unsigned char *)k + CRDT_ACTOR_BYTES);
        rc = crdt_raw_log_changes(&list, &n_list, &buf, k, kl, v, vl);
        if (rc < 0) {
            cli_progress_end(&p);
            crdt_raw_cursor_close(cur);
            if (rc != CRDT_ECORRUPT)
                return cli_fail("verify: read the log", rc);
            char actor[2 * CRDT_ACTOR_BYTES + 1];
            crdt_hex(actor, key_actor.b, CRDT_ACTOR_BYTES);
            return cli_error(CLI_EDATA, "verify", "damaged run at %s up to "
                             "seq %" PRIu64 " in this replica's own log "
                             "(local damage): it does not unpack into a "
                             "chain of the key's changes", actor, key_last);
        }
        /* a record holds one change or a run of them (storage.md 3):
         * each is checked as if stored alone, under its own last seq */
        for (size_t ci = 0; ci < n_list; ci++) {
            crdt_change c;
            crdt_op_iter it;
            crdt_op op;
            uint64_t ops = 0;
            rc = crdt_change_decode(&c, list[ci].data, list[ci].len);
            if (rc < 0) {
                cli_progress_end(&p);
                crdt_raw_cursor_close(cur);
                crdt_free(list);
                crdt_free(buf);
                return bad_change(&key_actor, key_last,
                                  rc == CRDT_ENOMEM ? "out of memory"
                                                    : "it does not decode");
            }
            if (n_list > 1 && c.n_ops > 0) /* the key names the last */
                key_last = c.seq + c.n_ops - 1;
            const char *why = NULL;
            if (memcmp(c.space_id, space, CRDT_SPACE_ID_BYTES) != 0)
                why = "written in another space";
            else if (memcmp(c.actor.b, key_actor.b, CRDT_ACTOR_BYTES) != 0 ||
                     c.n_ops == 0 || c.seq + c.n_ops - 1 != key_last)
                why = "stored under the wrong key";
            else if (open_run &&
                     memcmp(prev_actor.b, c.actor.b, CRDT_ACTOR_BYTES) != 0) {
                cli_progress_end(&p);
                crdt_raw_cursor_close(cur);
                crdt_free(list);
                crdt_free(buf);
                return bad_change(&prev_actor, prev_last, "held without its "
                                  "signature, and no signed change of its "
                                  "actor follows it");
            } else if (c.sig != NULL && crdt_change_verify(&c) != CRDT_OK)
                why = "bad signature";
            else if (have_prev &&
                     memcmp(prev_actor.b, c.actor.b, CRDT_ACTOR_BYTES) == 0 &&
                     (c.seq != prev_last + 1 ||
                      memcmp(c.prev, prev_hash, CRDT_HASH_BYTES) != 0))
                why = "does not follow the actor's previous change (hash chain)";
            if (why == NULL) {
                crdt_op_iter_init(&it, &c);
                while ((rc = crdt_op_iter_next(&op, &it)) == CRDT_OK)
                    ops++;
                if (rc != CRDT_ENOTFOUND)
                    why = "an op does not decode";
                else if (ops != c.n_ops)
                    why = "op count differs from the header";
            }
            if (why != NULL) {
                cli_progress_end(&p);
                crdt_raw_cursor_close(cur);
                crdt_free(list);
                crdt_free(buf);
                return bad_change(&key_actor, key_last, why);
            }
            n->changes++;
            n->ops += ops;
            open_run = c.sig == NULL; /* proven by the chain to a signed one */
            prev_actor = c.actor;
            prev_last = key_last;
            memcpy(prev_hash, c.hash, CRDT_HASH_BYTES);
            have_prev = 1;
        }
        crdt_free(list);
        crdt_free(buf);
        rc = crdt_raw_cursor_next(cur, &k, &kl, &v, &vl);
    }
    if (rc == CRDT_ENOTFOUND)
        cli_progress_draw(n->changes, total, &p);
    cli_progress_end(&p);
    crdt_raw_cursor_close(cur);
    if (rc != CRDT_ENOTFOUND)
        return cli_fail("verify: read the log", rc);
    if (open_run)
        return bad_change(&prev_actor, prev_last, "held without its "
                          "signature, and no signed change of its actor "
                          "follows it");
    return CLI_OK;
}

static int
run_verify(verify_counts *n, crdt_replica *r)
{
    unsigned char stored[CRDT_HASH_BYTES], space[CRDT_SPACE_ID_BYTES];
    crdt_raw *t;
    int rc;

    crdt_replica_space_id(r, space);
    rc = crdt_raw_begin(&t, r, 0);
    if (rc < 0)
        return cli_fail("verify", rc);
    rc = crdt_raw_state_hash(t, stored);
    if (rc == CRDT_OK)
        rc = crdt_raw_state_rehash(t, n->hash);
    if (rc == CRDT_OK)
        rc = crdt_raw_count(&n->entries, t, crdt_raw_state_db(t, 0));
    if (rc < 0) {
        crdt_raw_abort(t);
        return cli_fail("verify: read the state", rc);
    }
    if (memcmp(stored, n->hash, CRDT_HASH_BYTES) != 0) { /* (1) */
        crdt_raw_abort(t);
        return cli_error(CLI_EDATA, "verify", "state hash mismatch: this "
                         "replica's own stored state is damaged (local "
                         "damage)");
    }
    rc = check_log(n, t, space);
    crdt_raw_abort(t);
    if (rc == CLI_OK) { /* (3) */
        char why[256];
        rc = crdt_replica_check_records(r, why, sizeof why);
        if (rc == CRDT_ECORRUPT)
            return cli_error(CLI_EDATA, "verify", "%s (local damage)", why);
        if (rc < 0)
            return cli_fail("verify", rc);
    }
    return rc;
}

static int verify_in_process(const cli_args *a);

/*
 * LMDB trusts its pages: a data file damaged on disk can make a read
 * fault. The open checks every page first (CLI_OPEN_CHECK_ALL); what it
 * cannot see (a value's bytes inside a sound page) is read in a child
 * process, and a child killed by a signal is reported as a corrupt file
 * (exit 6) instead of crashing the tool.
 */
int
cmd_verify(const cli_cmd *cmd, int argc, char **argv)
{
    cli_args a;
    pid_t pid;
    int rc, status;

    rc = cli_parse(&a, cmd, argc, argv, OPTS, 1, 1);
    if (rc != CLI_OK)
        return rc == CLI_HELP_SHOWN ? CLI_OK : rc;
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    if (pid < 0)
        return verify_in_process(&a);
    if (pid == 0) {
        signal(SIGSEGV, SIG_DFL);
        signal(SIGBUS, SIG_DFL);
        rc = verify_in_process(&a);
        fflush(stdout);
        fflush(stderr);
        _exit(rc);
    }
    if (waitpid(pid, &status, 0) < 0)
        return cli_error(CLI_EIO, "verify", "waitpid failed");
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    {
        char why[64];
        snprintf(why, sizeof why, "reading the data file failed with "
                 "signal %d", WIFSIGNALED(status) ? WTERMSIG(status) : 0);
        return cli_corrupt("verify", a.pos[0], why);
    }
}

static int
verify_in_process(const cli_args *ap)
{
    char hash[2 * CRDT_HASH_BYTES + 1];
    verify_counts n;
    crdt_replica *r;
    cli_args a = *ap;
    int rc;

    /* every page is checked at open: verify reads the whole file */
    /* ... and the records by verify itself, which says more */
    rc = cli_open_ex(&r, a.pos[0], CLI_OPEN_CHECK_ALL | CLI_OPEN_NO_RECORDS);
    if (rc != CLI_OK)
        return rc;
    memset(&n, 0, sizeof n);
    rc = run_verify(&n, r);
    crdt_replica_close(r);
    if (rc != CLI_OK)
        return rc;
    crdt_hex(hash, n.hash, CRDT_HASH_BYTES);
    if (cli_has(&a, OPT_JSON))
        return cli_emit(json_pack("{s:b,s:s,s:I,s:I,s:I}", "ok", 1,
                                  "state_hash", hash, "state_entries",
                                  (json_int_t)n.entries, "changes",
                                  (json_int_t)n.changes, "ops",
                                  (json_int_t)n.ops));
    printf("ok: state hash %s matches %" PRIu64 " state entries; %" PRIu64
           " changes (%" PRIu64 " ops) in the log verified\n",
           hash, n.entries, n.changes, n.ops);
    return CLI_OK;
}
