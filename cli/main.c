/*
 * main.c: the `strata` command table and dispatch.
 *
 * Adding a command: write cmd_NAME.c with a run function (declared in
 * cli.h) and put it in its line of the table below. A line whose run is
 * NULL is a command of the contract this build does not have yet.
 *
 * Invariants:
 *  (1) Every command answers --help on stdout with exit 0.
 *  (2) An error is one line on stderr, "strata: <what failed>: <why>",
 *      and the exit code is one of docs/cli.md's.
 *  (3) Output that could not be written is an error (exit 7), so a
 *      full disk never looks like success to a script.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "crdt/version.h"
#include "serve.h"

static const cli_cmd COMMANDS[] = {
    { "init", cmd_init,
      "init DIR [--space-id ID [--peer-key KEY] | --invite TOKEN] "
      "[--phrase-file F] [--json]",
      "create a replica (a new space unless --space-id or --invite joins one)",
      "  --space-id ID     join the space with this id (32 hex digits)\n"
      "  --peer-key KEY    with --space-id: the first sync trusts only the\n"
      "                    peer with this public key (64 hex digits)\n"
      "  --invite TOKEN    join with a token from `strata invite`: the first\n"
      "                    sync trusts only the inviter, and presents it\n"
      "  --phrase-file F   derive the identity from the recovery phrase in F\n"
      "  --json            print {\"space_id\",\"public_key\"}\n" },
    { "id", cmd_id, "id DIR", "print this replica's public key (hex)", NULL },
    { "invite", cmd_invite, "invite DIR [--role R] [--ttl SECONDS] [--json]",
      "print a one-time invitation token to this replica's space",
      "  R is reader, writer (the default) or admin. The token holds the\n"
      "  space id, this replica's public key and a secret; a daemon serving\n"
      "  DIR accepts it once, within SECONDS (default 86400), and adds the\n"
      "  joiner with role R. Join with `strata init NEWDIR --invite TOKEN`,\n"
      "  then `strata sync NEWDIR HOST:PORT` (docs/security.md).\n"
      "  --json prints {\"token\",\"role\",\"expires\"} (Unix seconds).\n" },
    { "member", cmd_member,
      "member add DIR PUBKEY [--role R] | member rm DIR PUBKEY | "
      "member ls DIR [--json]",
      "authorize a peer key for this space / remove it / list the members",
      "  PUBKEY is 64 hex digits (see `strata id`). R is reader, writer\n"
      "  (the default) or admin. The member set is replicated like any\n"
      "  data; only an admin changes it, only the owner makes admins, and\n"
      "  a removal is permanent (docs/security.md).\n" },
    { "put", cmd_write, "put DIR COLL DOC FIELD VALUE", "set a register field",
      "  VALUE is a JSON scalar (42, -1.5, true, null, \"text\") or\n"
      "  {\"$bytes\":\"<base64>\"}; a bare word that is not JSON is a string.\n" },
    { "incr", cmd_write, "incr DIR COLL DOC FIELD N",
      "add N (may be negative) to a counter field", NULL },
    { "sadd", cmd_write, "sadd DIR COLL DOC FIELD VALUE",
      "add a value to a set field", NULL },
    { "srem", cmd_write, "srem DIR COLL DOC FIELD VALUE",
      "remove a value from a set field", NULL },
    { "del", cmd_write, "del DIR COLL DOC [FIELD]",
      "delete a document or one field (exit 2 if absent)", NULL },
    { "text", cmd_seq,
      "text DIR COLL DOC FIELD insert POS STRING | delete POS LEN",
      "insert into or delete from a text field",
      "  POS counts code points from 0 (an insert may append at the length);\n"
      "  LEN is 1 or more. A position past the end is a usage error.\n" },
    { "list", cmd_seq,
      "list DIR COLL DOC FIELD insert POS VALUE | delete POS LEN | set POS "
      "VALUE",
      "insert, delete or replace elements of a list field",
      "  POS counts elements from 0; VALUE is as for put.\n" },
    { "get", cmd_get, "get DIR COLL DOC [FIELD]",
      "print a document as a JSON object, or one field's value",
      "  A register prints as its value, a counter as a number, a set as a\n"
      "  sorted array, a text as a string, a list as an array in order.\n"
      "  Exit 2 if absent.\n" },
    { "ls", cmd_ls, "ls DIR [COLL] [--json]",
      "list collections, or the document ids of one", NULL },
    { "import", cmd_import,
      "import DIR FILE|- [--atomic] [--from-line N] [--json]",
      "apply a JSON-lines file of writes, one change per 10,000 lines",
      "  One op a line: {\"op\":\"put\",\"coll\":..,\"doc\":..,\"field\":..,"
      "\"value\":..};\n"
      "  also \"incr\" (\"n\"), \"sadd\", \"srem\" and \"del\" (\"field\" "
      "optional);\n"
      "  text: \"tins\" (\"pos\",\"text\"), \"tdel\" (\"pos\",\"len\"); list:\n"
      "  \"lins\" and \"lset\" (\"pos\",\"value\"), \"ldel\" (\"pos\",\"len\").\n"
      "  Any size streams, one change per 10,000 lines, in order; at a bad\n"
      "  line (exit 6) the lines before it stay imported and the error\n"
      "  says how to resume: --from-line N skips the lines before N.\n"
      "  --atomic: the whole input is one change, all or nothing (at most\n"
      "  256 MiB). --json prints {\"ops\",\"first_seq\",\"last_seq\",\"changes\"}.\n" },
    { "export", cmd_export, "export DIR",
      "every live document as JSON lines {\"coll\",\"doc\",\"fields\"}",
      NULL },
    { "status", cmd_status, "status DIR [--json]",
      "identity, epoch, version vector, state hash and counters", NULL },
    { "log", cmd_log, "log DIR [--json]", "the active epoch's changes",
      "  --json: one object per change with its ops.\n" },
    { "watch", cmd_watch, "watch DIR [COLL [DOC]] [--json] [--since CURSOR]",
      "print each committed change as it happens, from any process",
      "  One line per changed document of each commit:\n"
      "    CURSOR COLL DOC FIELD,FIELD...   ('-': no field; a trailing '!':\n"
      "                                     the document was deleted, any\n"
      "                                     field may have changed)\n"
      "    CURSOR *                         everything may have changed\n"
      "  Runs until interrupted (SIGINT/SIGTERM: exit 0). --since CURSOR\n"
      "  resumes after the line that printed CURSOR. --json prints\n"
      "  {\"cursor\",\"coll\",\"doc\",\"fields\",\"whole\"} or\n"
      "  {\"cursor\",\"everything\":true}.\n" },
    { "migrate", cmd_migrate,
      "migrate DIR [LENS_FILE] [--resume|--abort] [--json] [--retention N]",
      "build a new epoch: compact, or apply a lens file",
      "  Without LENS_FILE: fold the log into the state (compaction). With\n"
      "  one: also migrate every document through the lens (docs/lenses.md).\n"
      "  One transaction: interrupted, the replica stays at the old epoch\n"
      "  with a marker; writers get busy (exit 3) until\n"
      "  --resume            re-run the interrupted migration from the start\n"
      "  --abort             drop the marker; the epoch stays as it is\n"
      "  --json              print {\"epoch\":{\"number\",\"id\"},"
      "\"schema\":{COLL:VERSION}}\n"
      "  --retention N       keep the archived logs of N sealed epochs\n"
      "                      (default 0: keep all)\n"
      "  A lens that does not parse, or migrates from another version than\n"
      "  the replica's, exits 6 and changes nothing. Progress is shown on\n"
      "  stderr when it is a terminal.\n" },
    { "epochs", cmd_epochs, "epochs DIR [--json]",
      "the epoch chain, oldest first",
      "  number, id, parent, schema versions, lens, custom migration,\n"
      "  creation time and state hash of each epoch. --json: an array of\n"
      "  {\"number\",\"id\",\"parent\",\"schema\",\"lens\",\"custom\",\n"
      "   \"created_ms\",\"state_hash\"}.\n" },
    { "serve", cmd_serve,
      "serve DIR... --listen HOST:PORT [--peer HOST:PORT]... "
      "[--config FILE] [--metrics HOST:PORT] [--log-level LEVEL] "
      "[--log-format text|json] [--backup-dir D --backup-every SECONDS "
      "[--backup-keep N]] [OPTION]... | serve DIR... --stdio",
      "run the sync daemon for one or more replicas", serve_help },
    { "sync", cmd_sync,
      "sync DIR HOST:PORT|--stdio|--via CMD [--json] [--max-epochs-behind N] "
      "[--max-age-ms MS]",
      "one sync session with a peer, then a report of what moved",
      "  Exit 3: busy (a migration; retry). 4: rejected beyond policy, this\n"
      "  replica's unsynced ops are in its quarantine. 5: authentication\n"
      "  refused. --json prints {\"changes_sent\",\"changes_received\",\n"
      "  \"ops_received\",\"snapshot_received\",\"snapshot_sent\",\n"
      "  \"snapshot_entries\",\"rebased\",\"quarantined\",\"conflicts\",\n"
      "  \"rejected\",\n"
      "  \"in_sync\",\"reason\",\"state_hash\",\"busy_retry_ms\"}.\n"
      "  --stdio: the peer is at the other end of stdin/stdout (the report\n"
      "  goes to stderr). --via CMD: run `sh -c CMD` and sync over its\n"
      "  stdin/stdout, e.g. --via 'ssh host strata serve /data --stdio'.\n" },
    { "quarantine", cmd_quarantine, "quarantine DIR [ls|export|apply] [--json]",
      "ops that could not be rebased: list, export, re-apply",
      "  ls (default)  one line per op: actor, seq, reason, op as JSON\n"
      "                (--json: one array of the export objects)\n"
      "  export        JSON lines {\"actor\",\"seq\",\"hlc\",\"epoch\","
      "\"reason\",\"op\"}\n"
      "  apply         re-apply them as new local writes in the current\n"
      "                schema; those that still do not fit stay\n" },
    { "backup", cmd_backup, "backup DIR FILE [--json]",
      "consistent online backup (writers keep writing)",
      "  FILE is written atomically (temp file, fsync, rename) and records\n"
      "  the space, the epoch and the state hash of the copied snapshot.\n" },
    { "restore", cmd_restore, "restore FILE DIR [--json]",
      "restore a backup into a new directory",
      "  Refuses a non-empty DIR and a damaged backup (exit 6). The restored\n"
      "  replica is a new incarnation: it writes under a new actor id and\n"
      "  catches up by sync like any stale replica.\n" },
    { "rebuild", cmd_rebuild,
      "rebuild DIR HOST:PORT [--phrase-file F] [--space-id ID] [--json]",
      "move a corrupt replica aside and rebuild it from a peer",
      "  The identity comes from DIR when it can still be read, else from\n"
      "  --phrase-file and --space-id. DIR is renamed DIR.broken-DATE, never\n"
      "  deleted. The rebuilt replica is a new incarnation.\n" },
    { "phrase", cmd_phrase, "phrase [--words N]",
      "print a fresh recovery phrase (for init --phrase-file)",
      "  N is 12 to 24 (default 24). Keep it secret: it is the identity.\n" },
    { "verify", cmd_verify, "verify DIR [--json]",
      "check the state hash and every change of the log",
      "  Recomputes the state hash from the stored state and compares it\n"
      "  with the kept one, then checks every change of the active log\n"
      "  (decodes, signature, hash chain). Exit 6 on a mismatch.\n" },
};

#define N_COMMANDS (sizeof COMMANDS / sizeof COMMANDS[0])

static void
print_overview(FILE *f)
{
    fprintf(f, "usage: strata COMMAND [ARGS] [--help]\n\ncommands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-11s %s%s\n", COMMANDS[i].name, COMMANDS[i].summary,
                COMMANDS[i].run ? "" : " (not in this build)");
    fprintf(f, "\nexit codes: 0 ok, 1 usage, 2 not found, 3 busy, "
               "4 rejected, 5 auth,\n            6 invalid data, 7 I/O or "
               "storage\n");
}

static const cli_cmd *
find_command(const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(COMMANDS[i].name, name) == 0)
            return &COMMANDS[i];
    return NULL;
}

/* Keeps (3). */
static int
finish_output(int code)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        int e = errno;
        return cli_error(CLI_EIO, "write output", "%s",
                         e ? strerror(e) : "failed");
    }
    return code;
}

int
main(int argc, char **argv)
{
    const cli_cmd *cmd;

    cli_fault_install();
    if (argc < 2) {
        print_overview(stderr);
        return CLI_EUSAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        if (argc > 2 && strcmp(argv[1], "help") == 0) {
            cmd = find_command(argv[2]);
            if (cmd == NULL)
                return cli_error(CLI_EUSAGE, argv[2], "unknown command");
            cli_print_help(stdout, cmd);
        } else {
            print_overview(stdout);
        }
        return finish_output(CLI_OK);
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("strata %s\n", crdt_version());
        return finish_output(CLI_OK);
    }
    cmd = find_command(argv[1]);
    if (cmd == NULL)
        return cli_error(CLI_EUSAGE, argv[1],
                         "unknown command (see strata --help)");
    if (cmd->run == NULL) {
        /* still answer --help, keeps (1) */
        for (int i = 2; i < argc; i++)
            if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
                cli_print_help(stdout, cmd);
                return finish_output(CLI_OK);
            }
        return cli_error(CLI_EUSAGE, cmd->name, "not available in this build");
    }
    return finish_output(cmd->run(cmd, argc - 1, argv + 1));
}
