/*
 * cmd_watch.c: `strata watch DIR [COLL [DOC]] [--json] [--since CURSOR]`:
 * one line per document changed by each commit, by any process, as it
 * happens, until interrupted (SIGINT/SIGTERM: exit 0).
 *
 * Line: CURSOR COLL DOC FIELD,FIELD...  ("-" when only the document
 * itself changed; a '!' after the fields: the document was deleted or
 * written after a delete, any field may have changed), or CURSOR * for
 * "everything may have changed" (a migration, a cursor that cannot be
 * served). --json: {"cursor","coll","doc","fields","whole"} or
 * {"cursor","everything":true}. The cursor of a line resumes right
 * after that commit with --since.
 *
 * No polling: between commits the process sleeps in poll() on the
 * replica's feed watch (crdt/feed.h) and costs no CPU.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>

#include "cli.h"

enum { OPT_JSON, OPT_SINCE };

static const cli_opt OPTS[] = { { "json", 0 }, { "since", 1 },
                                { NULL, 0 } };

static volatile sig_atomic_t stop;

static void
on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

/* The walk: the gen is the same for every event of one call, so the
 * printing callback gets it through this struct. */
typedef struct {
    struct {
        int json;
        int rc; /* an output error stops the walk */
    } o;
    /* crdt_feed_since()'s next: set before the first event, its gen is
     * the one the events' cursors carry (a head read in a txn of its own
     * could predate the commit that created the feed's generation) */
    const crdt_feed_cursor *at;
} walk_ctx;

static int
emit(void *ctx, const crdt_feed_event *ev)
{
    walk_ctx *w = ctx;
    char cur[CRDT_FEED_CURSOR_CHARS];
    crdt_feed_cursor c;

    memcpy(c.gen, w->at->gen, 8);
    c.seq = ev->commit;
    crdt_feed_cursor_format(cur, &c);
    if (ev->everything) {
        if (w->o.json)
            w->o.rc = cli_emit(json_pack("{s:s,s:b}", "cursor", cur,
                                         "everything", 1));
        else if (printf("%s *\n", cur) < 0)
            w->o.rc = cli_error(CLI_EIO, "write output", "%s",
                                strerror(errno));
        return w->o.rc != CLI_OK;
    }
    for (size_t i = 0; i < ev->ndocs && w->o.rc == CLI_OK; i++) {
        const crdt_feed_doc *d = &ev->docs[i];
        if (w->o.json) {
            json_t *f = json_array();
            for (size_t j = 0; f && j < d->nfields; j++)
                json_array_append_new(f, json_string(d->fields[j]));
            w->o.rc = cli_emit(json_pack("{s:s,s:s,s:s,s:o*,s:b}", "cursor",
                                         cur, "coll", d->coll, "doc", d->doc,
                                         "fields", f, "whole", d->whole));
            continue;
        }
        if (printf("%s %s %s ", cur, d->coll, d->doc) < 0)
            w->o.rc = CLI_EIO;
        for (size_t j = 0; j < d->nfields && w->o.rc == CLI_OK; j++)
            if (printf("%s%s", j ? "," : "", d->fields[j]) < 0)
                w->o.rc = CLI_EIO;
        if (w->o.rc == CLI_OK &&
            printf("%s%s\n", d->nfields ? "" : "-", d->whole ? "!" : "") < 0)
            w->o.rc = CLI_EIO;
        if (w->o.rc != CLI_OK)
            w->o.rc = cli_error(CLI_EIO, "write output", "%s",
                                strerror(errno));
    }
    return w->o.rc != CLI_OK;
}

int
cmd_watch(const cli_cmd *cmd, int argc, char **argv)
{
    const char *coll = NULL, *doc = NULL;
    crdt_replica *r = NULL;
    crdt_feed_watch *fw = NULL;
    crdt_feed_cursor cur, next;
    struct sigaction sa;
    walk_ctx w;
    cli_args a;
    int rc;

    rc = cli_parse(&a, cmd, argc, argv, OPTS, 1, 3);
    if (rc != CLI_OK)
        return rc == CLI_HELP_SHOWN ? CLI_OK : rc;
    if (a.npos >= 2 && (rc = cli_check_name(cmd, "collection", a.pos[1])))
        return rc;
    if (a.npos >= 3 && (rc = cli_check_name(cmd, "document", a.pos[2])))
        return rc;
    coll = a.npos >= 2 ? a.pos[1] : NULL;
    doc = a.npos >= 3 ? a.pos[2] : NULL;
    if (a.opt[OPT_SINCE] &&
        crdt_feed_cursor_parse(&cur, a.opt[OPT_SINCE]) != CRDT_OK)
        return cli_usage(cmd, "bad cursor '%s' (want HEX16.SEQ, as printed "
                              "by watch)", a.opt[OPT_SINCE]);
    if ((rc = cli_open_ex(&r, a.pos[0], CLI_OPEN_NO_WARNING)) != CLI_OK)
        return rc;
    /* the watch first, then the cursor: no commit falls in between */
    if ((rc = crdt_feed_watch_open(&fw, a.pos[0])) < 0) {
        crdt_replica_close(r);
        return cli_fail("watch", rc);
    }
    if (!a.opt[OPT_SINCE] && (rc = crdt_feed_head(&cur, r)) < 0)
        goto fail;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART: poll() returns */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    memset(&w, 0, sizeof w);
    w.o.json = cli_has(&a, OPT_JSON);
    while (!stop) {
        /* catch up; then sleep until a commit */
        w.at = &next;
        rc = crdt_feed_since(r, &cur, coll, doc, 0, emit, &w, &next);
        if (rc < 0)
            goto fail;
        if (fflush(stdout) != 0 && w.o.rc == CLI_OK)
            w.o.rc = cli_error(CLI_EIO, "write output", "%s",
                               strerror(errno));
        if (w.o.rc != CLI_OK)
            break;
        if (memcmp(&next, &cur, sizeof cur) != 0) {
            cur = next;
            continue; /* maybe more than one call's worth */
        }
        if ((rc = crdt_feed_watch_wait(fw, -1)) < 0)
            goto fail;
    }
    crdt_feed_watch_close(fw);
    crdt_replica_close(r);
    return w.o.rc;
fail:
    crdt_feed_watch_close(fw);
    crdt_replica_close(r);
    return cli_fail("watch", rc);
}
