/*
 * cmd_sync.c: `strata sync DIR HOST:PORT [--json]`: one authenticated,
 * encrypted session with a peer, then a report of what moved. The peer
 * may also be at the other end of stdin/stdout (--stdio; the report goes
 * to stderr then, stdout being the wire) or of a command's
 * (--via 'ssh host strata serve /data --stdio'): the same bytes as over
 * TCP, driven by a crdtnet_peer (peer_pipe.c).
 *
 * Exit codes: 0 done; 3 busy (a migration on either side; retry after
 * the reported delay); 4 rejected (beyond policy: this replica's
 * unsynced ops went to its quarantine, `strata quarantine ls`); 5 the
 * handshake was refused (not a member, wrong space, bad signature);
 * 6 the peer sent bad data; 7 I/O (connect failed, timeout).
 */
#include <stdlib.h>
#include <string.h>

#include <errno.h>
#include <signal.h>
#include <unistd.h>

#include "cli.h"
#include "crdtnet/conn.h"
#include "peer_pipe.h"

static json_t *
report_json(const crdtnet_report *rep, int rc)
{
    char hash[2 * CRDT_HASH_BYTES + 1];

    crdt_hex(hash, rep->state_hash, CRDT_HASH_BYTES);
    return json_pack("{s:I, s:I, s:I, s:I, s:b, s:b, s:I, s:I, s:I, s:I,"
                     " s:I, s:b, s:b, s:b, s:s, s:s, s:I}",
                     "changes_sent", (json_int_t)rep->changes_sent,
                     "changes_received", (json_int_t)rep->changes_received,
                     "cut_changes",
                     (json_int_t)rep->cut_changes_received,
                     "ops_received", (json_int_t)rep->ops_received,
                     "snapshot_received", rep->snapshot_received,
                     "snapshot_sent", rep->snapshot_sent,
                     "snapshot_entries",
                     (json_int_t)(rep->snapshot_entries_received +
                                  rep->snapshot_entries_sent),
                     "rebased", (json_int_t)rep->rebased_ops,
                     "quarantined", (json_int_t)rep->quarantined_ops,
                     "conflicts", (json_int_t)rep->conflicts,
                     "equivocations", (json_int_t)rep->equivocations,
                     "equivocation_lost", rep->equivocation_lost,
                     "rejected", rep->rejected, "in_sync", rep->in_sync,
                     "reason", rep->reason, "state_hash", hash,
                     "busy_retry_ms", (json_int_t)(rc == CRDT_EBUSY
                                                       ? rep->busy_retry_ms
                                                       : 0));
}

void
cli_sync_progress(const crdtnet_report *rep, void *ctx)
{
    cli_progress_draw(rep->ops_received + rep->snapshot_entries_received,
                      0, ctx);
}

int
cmd_sync(const cli_cmd *cmd, int argc, char **argv)
{
    static const cli_opt opts[] = {
        { "json", 0 }, { "max-epochs-behind", 1 }, { "max-age-ms", 1 },
        { "timeout-ms", 1 }, { "stdio", 0 }, { "via", 1 }, { NULL, 0 }
    };
    crdtnet_conn_options co = CRDTNET_CONN_OPTIONS_INIT;
    crdtnet_report rep;
    crdt_replica *r;
    char host[256], port[16];
    long long n;
    cli_progress p;
    cli_args a;
    int rc, code, stdout_is_wire = 0;
    FILE *report_out = stdout;

    rc = cli_parse(&a, cmd, argc, argv, opts, 1, 2);
    if (rc != CLI_OK)
        return rc == CLI_HELP_SHOWN ? CLI_OK : rc;
    if ((a.npos == 2) + cli_has(&a, 4) + cli_has(&a, 5) != 1)
        return cli_usage(cmd, "give one of HOST:PORT, --stdio, --via CMD");
    if (a.npos == 2 &&
        cli_split_hostport(host, sizeof host, port, sizeof port, a.pos[1]) < 0)
        return cli_usage(cmd, "bad address %s (want HOST:PORT)", a.pos[1]);
    if (a.opt[5] != NULL && a.opt[5][0] == '\0')
        return cli_usage(cmd, "--via needs a command");
    if (a.opt[1] != NULL) {
        if (cli_parse_int64(&n, a.opt[1]) < 0 || n < 0 || n > 1000000)
            return cli_usage(cmd, "bad --max-epochs-behind");
        co.policy.max_epochs_behind = (uint32_t)n;
    }
    if (a.opt[2] != NULL) {
        if (cli_parse_int64(&n, a.opt[2]) < 0 || n < 0)
            return cli_usage(cmd, "bad --max-age-ms");
        co.policy.max_age_ms = (uint64_t)n;
    }
    if (a.opt[3] != NULL) {
        if (cli_parse_int64(&n, a.opt[3]) < 0 || n <= 0 || n > 3600000)
            return cli_usage(cmd, "bad --timeout-ms");
        co.idle_timeout_ms = (int)n;
        co.connect_timeout_ms = (int)n;
        co.handshake_timeout_ms = (int)n;
    }
    if ((rc = cli_open(&r, a.pos[0], 1)) != CLI_OK)
        return rc;
    memset(&rep, 0, sizeof rep);
    if (a.npos == 2) {
        cli_progress_init(&p, "sync", "ops and snapshot entries received");
        if (p.on) {
            co.progress = cli_sync_progress;
            co.progress_ctx = &p;
        }
        rc = crdtnet_sync_connect(&rep, r, host, port, &co);
        cli_progress_end(&p);
    } else {
        crdtnet_peer_options po = CRDTNET_PEER_OPTIONS_INIT;
        crdtnet_peer *peer = NULL;
        int idle = co.idle_timeout_ms > 0 ? co.idle_timeout_ms : 30000;

        po.policy = co.policy;
        po.handshake_timeout_ms = co.handshake_timeout_ms;
        po.idle_timeout_ms = idle;
        rc = crdtnet_peer_new(&peer, &r, 1, CRDTNET_HS_CLIENT, &po);
        if (rc == CRDT_OK && cli_has(&a, 4)) {
            rc = cli_peer_pipe(peer, 0, 1, idle, &rep);
            close(1); /* the other side sees EOF */
            stdout_is_wire = 1;
        } else if (rc == CRDT_OK) {
            pid_t pid;
            int to, from;

            if (cli_spawn_sh(&pid, &to, &from, a.opt[5]) != 0) {
                crdtnet_peer_free(peer);
                crdt_replica_close(r);
                return cli_error(CLI_EIO, "sync", "cannot run %s: %s",
                                 a.opt[5], strerror(errno));
            }
            rc = cli_peer_pipe(peer, from, to, idle, &rep);
            close(to);
            close(from);
            if (cli_reap(pid, 5000) != 0 && rc == CRDT_EIO &&
                !rep.reason[0])
                snprintf(rep.reason, sizeof rep.reason,
                         "the command failed: %.100s", a.opt[5]);
        }
        crdtnet_peer_free(peer);
    }
    crdt_replica_close(r);
    if (stdout_is_wire) /* the report goes where a person sees it */
        report_out = stderr;

    if (rc == CRDT_OK && rep.rejected)
        rc = CRDT_EREJECTED;
    code = rc == CRDT_OK ? CLI_OK : cli_exit_code(rc);
    if (rc == CRDT_OK && rep.equivocations > 0) {
        char actor[2 * CRDT_ACTOR_BYTES + 1];
        crdt_hex(actor, rep.equivocating.b, CRDT_ACTOR_BYTES);
        fprintf(stderr, "strata: sync: warning: equivocation: actor %s "
                "(and %llu more) wrote two different chains (a copied "
                "or twice-restored replica); %s%s\n", actor,
                (unsigned long long)(rep.equivocations - 1),
                rep.equivocation_lost
                    ? "this replica's chain lost: its ops are in the "
                      "quarantine and it took the peer's"
                    : "this replica's chain won",
                rep.renewed ? "; this replica now writes as a new actor"
                            : "");
    }
    if (cli_has(&a, 0) && (rc == CRDT_OK || rc == CRDT_EREJECTED ||
                           rc == CRDT_EBUSY)) {
        int e;
        if (stdout_is_wire) {
            json_t *j = report_json(&rep, rc);
            char *js = j ? json_dumps(j, JSON_COMPACT) : NULL;
            json_decref(j);
            e = js && fprintf(stderr, "%s\n", js) > 0 ? CLI_OK : CLI_EIO;
            free(js);
        } else {
            e = cli_emit(report_json(&rep, rc));
        }
        if (e != CLI_OK)
            return e;
    } else if (rc == CRDT_OK) {
        if (rep.conflicts > 0)
            fprintf(stderr, "strata: sync: warning: %llu change(s) contradict "
                    "what this replica holds for the same (actor, seq) (a "
                    "cloned replica?); quarantined, not merged\n",
                    (unsigned long long)rep.conflicts);
        fprintf(report_out, "sent %llu changes, received %llu (%llu ops)%s%s, "
               "rebased %llu, quarantined %llu; %s\n",
               (unsigned long long)rep.changes_sent,
               (unsigned long long)rep.changes_received,
               (unsigned long long)rep.ops_received,
               rep.snapshot_received ? ", reset to the peer's epoch" : "",
               rep.snapshot_sent ? ", sent a snapshot" : "",
               (unsigned long long)rep.rebased_ops,
               (unsigned long long)rep.quarantined_ops,
               rep.in_sync ? "in sync" : "not yet in sync");
    }
    if (rc == CRDT_OK)
        return CLI_OK;
    if (rc == CRDT_EREJECTED && !rep.rejected) /* we refused the peer's
                                                    epoch: nothing moved */
        return cli_error(code, "sync", "%s",
                         rep.reason[0] ? rep.reason : "rejected");
    if (rc == CRDT_EREJECTED)
        return cli_error(code, "sync", "%s; %llu ops moved to quarantine "
                         "(strata quarantine ls %s)",
                         rep.reason[0] ? rep.reason : "rejected",
                         (unsigned long long)rep.quarantined_ops, a.pos[0]);
    if (rc == CRDT_EBUSY)
        return cli_error(code, "sync", "busy: %s; retry in %llu ms",
                         rep.reason[0] ? rep.reason
                                       : "a migration is in progress",
                         (unsigned long long)rep.busy_retry_ms);
    return cli_error(code, "sync", "%s",
                     rep.reason[0] ? rep.reason : crdt_strerror(rc));
}
