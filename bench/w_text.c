/*
 * w_text.c: w2, an editing trace through Strata: replayed, merged into a
 * fresh durable replica, compacted by epochs; the same trace on Yjs,
 * Loro and Automerge (bench/peers/w2.js) in the same run.
 *
 *   strata-bench --only w2 [--trace FILE] [--check] [--quick]
 *
 * The trace (format: trace.h) is FILE, else $STRATA_BENCH_TRACE, else
 * tests/traces/automerge-paper.json.gz of the source tree. Any trace of
 * that format replays: a sequential one on one replica, a concurrent one
 * on one replica per agent (replay.h); the replay fails unless every
 * replica ends with endContent. --quick replays a sequential trace's
 * first 1/QUICK_DIVISOR of edits (checked against a plain buffer
 * replaying the same prefix), so that with the peers (Automerge's local
 * replay is the slowest part) w2 stays well under 10 s; a concurrent
 * trace is always replayed whole.
 *
 * --check: only the replay and its check (replicas with no_sync, txn
 * boundaries of the trace for a concurrent trace, 1,000 patches per txn
 * for a sequential one), no figures: what the ctest test runs.
 *
 * Figures (each step in a forked child; see bench.h):
 *  - replay (replay_ops_per_s): the whole trace, durable, 1,000 patches
 *    per txn for a sequential trace (each trace txn its own crdt txn,
 *    and the syncs, for a concurrent one); once per run of the bench.
 *    Its changes are the spool of the merge, cut into the messages a
 *    sync session would send them in (spool_cut_messages); wire_bytes
 *    is their size (the changes as sync sends them, before framing and
 *    encryption: each without the signature its successor in the same
 *    message proves, docs/storage.md 5.5).
 *  - merge (ops_per_s): a fresh durable replica merges the spool, one
 *    crdt_merge per message as a session does (net/src/session.c,
 *    merge_changes), then reads the whole text, which must be the
 *    expected one; median of --runs. Peak private memory is the
 *    largest RssAnon a 1 ms sampler saw during it, minus the RssAnon the
 *    child had at its start (inherited from the parent, which holds the
 *    trace); the LMDB map is a shared file mapping, counted apart as
 *    RssFile.
 *  - bytes: disk_bytes is a compacting copy of the merged replica (its
 *    crdt_backup file: LMDB never shrinks a data file, so the file's own
 *    size, dir_bytes, is the high-water mark of the merge); then two
 *    epoch compactions with retention 1 (the first seals the trace's log
 *    into the archive, the second drops that archive):
 *    disk_bytes_after_epoch is the compacting copy after them, with the
 *    text read back and checked.
 *  - replay_txn_per_edit: the first 5,000 edits (quick 50) of a
 *    sequential trace, one durable txn per edit, against raw LMDB doing
 *    the same number of durable one-record commits (ref_commit_*).
 *  - peers (sequential traces): node w2.js on the same edits; the
 *    ratios are against the faster merge of Yjs and Loro, Yjs's replay
 *    (1,000 edits per txn) and Yjs's update bytes. When only a prefix is
 *    replayed (quick), node gets that prefix as a small plain trace file
 *    whose endContent is the prefix's text (trace_write_prefix), not the
 *    whole trace to parse.
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crdt/backup.h"
#include "crdt/sync.h"
#include "crdtnet/session.h"
#include "epoch/epoch.h"
#include "replay.h"
#include "trace.h"

#define SEQ_BATCH 1000      /* patches per txn of the batched replay */
/* a session's messages: the default target size (crdtnet_session_options
 * batch_bytes 0) and the limit of one message */
#define MESSAGE_BYTES ((size_t)256 * 1024)
#define MESSAGE_MAX CRDTNET_SESSION_MSG_MAX
#define PREFIX_EDITS 5000   /* one txn per edit: a prefix */
#define PREFIX_EDITS_QUICK 50 /* ... in quick mode (two syncs each) */
#define QUICK_DIVISOR 100   /* quick: this fraction of a sequential trace */
#define NODE_LIMIT_S 1800

/* ---- the trace file ---- */

static int
is_file(const char *p)
{
    struct stat st;

    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static int
find_trace(char *out, size_t size)
{
    const char *env = getenv("STRATA_BENCH_TRACE");

    if (g_opts.trace != NULL) {
        snprintf(out, size, "%s", g_opts.trace);
        return 0; /* given: its errors are reported as they are */
    }
    if (env != NULL && env[0]) {
        snprintf(out, size, "%s", env);
        return 0;
    }
#ifdef STRATA_SOURCE_DIR
    snprintf(out, size, "%s/tests/traces/automerge-paper.json.gz",
             STRATA_SOURCE_DIR);
    if (is_file(out))
        return 0;
#endif
    return -1;
}

/* ---- the spool file: the replay's changes for the merge children ---- */

/* The spool and where its messages end (spool_cut_messages). */
typedef struct {
    size_t *ends; /* message i is changes [ends[i - 1], ends[i]) */
    size_t n;
} spool_messages;

static int
spool_write(const replay_spool *s, const spool_messages *m, const char *path,
            char *err, size_t errlen)
{
    FILE *f = fopen(path, "wb");
    uint64_t n = s->n, nm = m->n;
    int ok;

    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    ok = fwrite(s->space_id, 1, sizeof s->space_id, f) ==
             sizeof s->space_id &&
         fwrite(&n, sizeof n, 1, f) == 1 &&
         fwrite(s->off, sizeof *s->off, s->n + 1, f) == s->n + 1 &&
         fwrite(s->buf, 1, s->len, f) == s->len &&
         fwrite(&nm, sizeof nm, 1, f) == 1 &&
         fwrite(m->ends, sizeof *m->ends, m->n, f) == m->n;
    if (fclose(f) != 0)
        ok = 0;
    if (!ok)
        snprintf(err, errlen, "%s: write failed", path);
    return ok ? 0 : -1;
}

static int
spool_read(replay_spool *s, spool_messages *m, const char *path, char *err,
           size_t errlen)
{
    FILE *f = fopen(path, "rb");
    uint64_t n, nm;
    int ok;

    memset(s, 0, sizeof *s);
    memset(m, 0, sizeof *m);
    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    ok = fread(s->space_id, 1, sizeof s->space_id, f) ==
             sizeof s->space_id &&
         fread(&n, sizeof n, 1, f) == 1 && n < (1ULL << 32);
    if (ok) {
        s->n = s->n_cap = (size_t)n;
        s->off = malloc((s->n + 1) * sizeof *s->off);
        ok = s->off != NULL &&
             fread(s->off, sizeof *s->off, s->n + 1, f) == s->n + 1 &&
             s->off[0] == 0;
    }
    if (ok) {
        s->len = s->cap = s->off[s->n];
        s->buf = malloc(s->len ? s->len : 1);
        ok = s->buf != NULL && fread(s->buf, 1, s->len, f) == s->len;
    }
    if (ok)
        ok = fread(&nm, sizeof nm, 1, f) == 1 && nm <= s->n &&
             (m->ends = malloc((nm ? nm : 1) * sizeof *m->ends)) != NULL &&
             fread(m->ends, sizeof *m->ends, nm, f) == nm;
    if (ok)
        m->n = (size_t)nm;
    fclose(f);
    if (!ok) {
        replay_spool_free(s);
        free(m->ends);
        m->ends = NULL;
        snprintf(err, errlen, "%s: unreadable spool", path);
    }
    return ok ? 0 : -1;
}

/* ---- children ---- */

typedef struct {
    const trace *t;
    replay_opts o;
    const char *spool_path; /* NULL: keep no changes */
} replay_args;

/*
 * The spool as a sync session sends it (net/src/session.c,
 * build_changes_as; docs/protocol.md, CHANGES): a message takes changes
 * until it holds MESSAGE_BYTES (each a msgpack bin), but never ends on a
 * change the sender's log holds without its signature (it runs on to the
 * next signed change of that actor, which proves the run); a change
 * whose successor in the same message proves it travels without its
 * signature. The receiver merges each message in one crdt_merge. A
 * local commit drops the signature of the change before it, so the log
 * of a sequential replay holds one signed change, its newest, and a
 * session sends the whole log in ONE message (up to MESSAGE_MAX; a
 * longer unsigned run, which a session refuses with CRDT_ELIMIT, is cut
 * here with the signature kept where it is cut). Without the log's
 * signature marks (a concurrent trace) every change counts as signed:
 * messages of MESSAGE_BYTES. In place; the offsets follow; @p m gets
 * the messages' ends.
 */
static size_t
bin_bytes(size_t len)
{
    return len + (len < 256 ? 2 : len < 65536 ? 3 : 5);
}

static int
spool_cut_messages(replay_spool *s, spool_messages *m)
{
    size_t w = 0, size = 0; /* write position in buf; message bytes */

    m->n = 0;
    if ((m->ends = malloc((s->n ? s->n : 1) * sizeof *m->ends)) == NULL)
        return -1;
    for (size_t i = 0; i < s->n; i++) {
        unsigned char *p = s->buf + s->off[i];
        size_t len = s->off[i + 1] - s->off[i], nl = 0;
        int held_unsigned = s->unsigned_in_log && s->unsigned_in_log[i];
        int last;
        crdt_change c, next;

        /* does change i end its message? */
        if (i + 1 == s->n)
            last = 1;
        else if (size + bin_bytes(len) +
                     bin_bytes(s->off[i + 2] - s->off[i + 1]) + 64 >
                 MESSAGE_MAX)
            last = 1; /* the next one does not fit */
        else
            last = size + bin_bytes(len) >= MESSAGE_BYTES && !held_unsigned;
        if (!last && crdt_change_decode(&c, p, len) == CRDT_OK &&
            crdt_change_decode(&next, s->buf + s->off[i + 1],
                               s->off[i + 2] - s->off[i + 1]) == CRDT_OK &&
            crdt_change_proves(&next, &c))
            nl = crdt_change_strip_sig(p, len);
        if (nl > 0)
            len = nl;
        memmove(s->buf + w, p, len);
        s->off[i] = w;
        w += len;
        size += bin_bytes(len);
        if (last) {
            m->ends[m->n++] = i + 1;
            size = 0;
        }
    }
    s->off[s->n] = w;
    s->len = w;
    return 0;
}

/* v[0] seconds, v[1] patches, v[2] txns, v[3] merged, v[4] rebuilds,
 * v[5] replicas, v[6] changes, v[7] change bytes, v[8] messages */
static int
replay_child(bench_res *out, void *ctx)
{
    replay_args *a = ctx;
    replay_result r;
    replay_spool s = { 0 };
    spool_messages m = { 0 };

    if (replay_run(&r, &s, a->t, &a->o, out->err, sizeof out->err) < 0) {
        replay_spool_free(&s);
        return -1;
    }
    out->v[0] = r.seconds;
    out->v[1] = (double)r.patches;
    out->v[2] = (double)r.txns;
    out->v[3] = (double)r.merged;
    out->v[4] = (double)r.rebuilds;
    out->v[5] = r.replicas;
    if (a->spool_path != NULL && spool_cut_messages(&s, &m) < 0) {
        replay_spool_free(&s);
        return bench_fail(out, "out of memory");
    }
    out->v[6] = (double)s.n;
    out->v[7] = (double)s.len;
    out->v[8] = (double)m.n;
    if (a->spool_path != NULL &&
        spool_write(&s, &m, a->spool_path, out->err, sizeof out->err) < 0) {
        replay_spool_free(&s);
        free(m.ends);
        return -1;
    }
    replay_spool_free(&s);
    free(m.ends);
    return 0;
}

typedef struct {
    const char *spool_path;
    const char *dir;
    const char *want;
    size_t want_len;
    int epochs; /* also compact, and measure the bytes */
} merge_args;

static int
backup_bytes(crdt_replica *r, const char *dir, double *out, char *err,
             size_t errlen)
{
    char file[600];
    struct stat st;
    int rc;

    snprintf(file, sizeof file, "%s.backup", dir);
    rc = crdt_backup(NULL, r, file);
    if (rc < 0 || stat(file, &st) != 0) {
        snprintf(err, errlen, "crdt_backup: %s", crdt_strerror(rc));
        return -1;
    }
    *out = (double)st.st_size;
    unlink(file);
    return 0;
}

static int
check_text(crdt_replica *r, const merge_args *a, const char *when, char *err,
           size_t errlen)
{
    char *s = NULL;
    size_t n = 0;
    int same;

    if (replay_read_text(&s, &n, r, err, errlen) < 0)
        return -1;
    same = n == a->want_len && memcmp(s, a->want, n) == 0;
    free(s);
    if (!same) {
        snprintf(err, errlen, "%s: the text (%zu bytes) is not the "
                              "expected one (%zu bytes)",
                 when, n, a->want_len);
        return -1;
    }
    return 0;
}

static int
compact(crdt_replica *r, char *err, size_t errlen)
{
    epoch_builder *b = NULL;
    int rc = epoch_builder_new(&b, r);

    if (rc == CRDT_OK) {
        epoch_builder_set_retention(b, 1);
        rc = epoch_builder_commit(NULL, b);
    }
    epoch_builder_free(b);
    if (rc < 0)
        snprintf(err, errlen, "epoch compaction: %s", crdt_strerror(rc));
    return rc < 0 ? -1 : 0;
}

/*
 * v[0] seconds (open + merge + read), v[1] merge s, v[2] read s,
 * v[3] RssAnon max KiB, v[4] RssFile max KiB, v[5] dir bytes,
 * v[6] compact bytes; with epochs: v[7] epoch s, v[8] compact bytes
 * after the first epoch, v[9] after the second, v[10] dir bytes after;
 * v[11] RssAnon KiB at the start (what the child inherited: v[3] minus
 * it is what the merge itself took).
 */
static int
merge_child(bench_res *out, void *ctx)
{
    merge_args *a = ctx;
    replay_spool s;
    spool_messages m;
    crdt_open_options oo = CRDT_OPEN_OPTIONS_INIT;
    crdt_replica *r = NULL;
    bench_sampler *smp;
    char *text = NULL;
    size_t len = 0;
    double t0, t1, t2, anon = 0, file = 0;
    int rc;

    if (spool_read(&s, &m, a->spool_path, out->err, sizeof out->err) < 0)
        return -1;
    bench_rmtree(a->dir);
    bench_rss_reset();
    out->v[11] = bench_status_kib("RssAnon");
    smp = bench_sampler_start();
    t0 = bench_now();
    oo.create = 1;
    oo.space_id = s.space_id;
    rc = crdt_replica_open(&r, a->dir, &oo);
    if (rc < 0) {
        bench_sampler_stop(smp, &anon, &file);
        replay_spool_free(&s);
        free(m.ends);
        return bench_fail(out, "create %s: %s", a->dir, crdt_strerror(rc));
    }
    rc = replay_merge_spool_cut(r, &s, m.ends, m.n, out->err,
                                sizeof out->err);
    t1 = bench_now();
    if (rc == 0)
        rc = replay_read_text(&text, &len, r, out->err, sizeof out->err);
    t2 = bench_now();
    bench_sampler_stop(smp, &anon, &file);
    replay_spool_free(&s);
    free(m.ends);
    if (rc == 0 && (len != a->want_len || memcmp(text, a->want, len) != 0))
        rc = bench_fail(out, "the merged replica's text (%zu bytes) is not "
                             "the expected one (%zu bytes)",
                        len, a->want_len);
    free(text);
    if (rc < 0)
        goto done;
    out->v[0] = t2 - t0;
    out->v[1] = t1 - t0;
    out->v[2] = t2 - t1;
    out->v[3] = anon;
    out->v[4] = file;
    out->v[5] = (double)bench_dir_bytes(a->dir);
    if ((rc = backup_bytes(r, a->dir, &out->v[6], out->err,
                           sizeof out->err)) < 0 ||
        !a->epochs)
        goto done;
    t0 = bench_now();
    if ((rc = compact(r, out->err, sizeof out->err)) < 0)
        goto done;
    out->v[7] = bench_now() - t0;
    if ((rc = backup_bytes(r, a->dir, &out->v[8], out->err,
                           sizeof out->err)) < 0 ||
        (rc = compact(r, out->err, sizeof out->err)) < 0 ||
        (rc = backup_bytes(r, a->dir, &out->v[9], out->err,
                           sizeof out->err)) < 0 ||
        (rc = check_text(r, a, "after the epochs", out->err,
                         sizeof out->err)) < 0)
        goto done;
    out->v[10] = (double)bench_dir_bytes(a->dir);
done:
    crdt_replica_close(r);
    bench_rmtree(a->dir);
    return rc < 0 ? -1 : 0;
}

typedef struct {
    const char *dir;
    uint64_t n;
    uint64_t seed;
} ref_args;

/* v[0] seconds of @c n durable one-record commits on raw LMDB */
static int
ref_child(bench_res *out, void *ctx)
{
    ref_args *a = ctx;
    ref_commit *rc = NULL;
    double t0;
    int r;

    bench_rmtree(a->dir);
    if (mkdir(a->dir, 0700) != 0)
        return bench_fail(out, "mkdir %s: %s", a->dir, strerror(errno));
    if (ref_commit_open(&rc, a->dir, 1000, a->seed, out->err,
                        sizeof out->err) < 0)
        return -1;
    t0 = bench_now();
    r = ref_commit_run(rc, a->n, 1, out->err, sizeof out->err);
    out->v[0] = bench_now() - t0;
    ref_commit_close(rc);
    bench_rmtree(a->dir);
    return r < 0 ? -1 : 0;
}

/* ---- peers ---- */

typedef struct {
    char name[40], version[40], error[160];
    double replay_ops_per_s, merge_ops_per_s, merge_seconds, merge_min,
        merge_max, update_bytes, edits;
} w2_peer;

static int
run_peers(bench_entry *e, const char *trace_path, size_t edits,
          w2_peer *peers, int max, char *nodever, size_t nvsize)
{
    static char buf[1 << 14];
    char dir[PATH_MAX], path[PATH_MAX + 64], why[300] = "", a_edits[32],
        a_runs[32];
    int n = 0, rc;

    if (bench_peers_prepare(e, dir, sizeof dir, nodever, nvsize) != 0)
        return -1;
    snprintf(path, sizeof path, "%s/w2.js", dir);
    snprintf(a_edits, sizeof a_edits, "%zu", edits);
    snprintf(a_runs, sizeof a_runs, "%d", g_opts.runs);
    {
        char *argv[] = { "node",    "--expose-gc", path,    "--trace",
                         (char *)trace_path,       "--edits", a_edits,
                         "--runs",  a_runs,        g_opts.verbose ? NULL
                                                                  : "--quiet",
                         NULL };
        bench_log("w2: node %s w2.js --edits %s --runs %s", nodever, a_edits,
                  a_runs);
        rc = bench_run_prog(argv, dir, buf, sizeof buf, NODE_LIMIT_S, why,
                            sizeof why);
    }
    for (char *line = buf, *nl; line && *line && n < max; line = nl) {
        w2_peer *p = &peers[n];

        nl = strchr(line, '\n');
        if (nl != NULL)
            *nl++ = 0;
        if (line[0] != '{')
            continue;
        memset(p, 0, sizeof *p);
        if (bench_json_str(line, "name", p->name, sizeof p->name) < 0)
            continue;
        bench_json_str(line, "version", p->version, sizeof p->version);
        if (bench_json_str(line, "error", p->error, sizeof p->error) != 0 &&
            (bench_json_num(line, "merge_ops_per_s", &p->merge_ops_per_s) <
                 0 ||
             bench_json_num(line, "replay_ops_per_s", &p->replay_ops_per_s) <
                 0 ||
             bench_json_num(line, "update_bytes", &p->update_bytes) < 0))
            snprintf(p->error, sizeof p->error, "unreadable result");
        bench_json_num(line, "merge_seconds", &p->merge_seconds);
        bench_json_num(line, "merge_min", &p->merge_min);
        bench_json_num(line, "merge_max", &p->merge_max);
        bench_json_num(line, "edits", &p->edits);
        if (!p->error[0] && (size_t)p->edits != edits)
            snprintf(p->error, sizeof p->error, "ran %.0f edits, not %zu",
                     p->edits, edits);
        if (p->error[0])
            bench_log("w2: %s: %s", p->name, p->error);
        n++;
    }
    if (n == 0)
        bench_log("w2: node w2.js gave no result (%s)",
                  why[0] ? why : rc ? "non-zero exit" : "empty output");
    return n;
}

static const w2_peer *
peer_named(const w2_peer *p, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(p[i].name, name) == 0 && !p[i].error[0])
            return &p[i];
    return NULL;
}

/* ---- the workload ---- */

static int
run_check(bench_entry *e, const trace *t, const char *path)
{
    replay_args ra;
    bench_res res;
    char dir[600];

    if (bench_subdir(dir, sizeof dir, "w2check") < 0) {
        entry_failed(e, "cannot create a temp dir");
        return -1;
    }
    memset(&ra, 0, sizeof ra);
    ra.t = t;
    ra.o.base = dir;
    ra.o.durable = 0;
    ra.o.batch = t->concurrent ? 0 : SEQ_BATCH;
    if (bench_run_child(&res, replay_child, &ra) < 0) {
        entry_failed(e, "replay of %s: %s", path, res.err);
        return -1;
    }
    entry_str(e, "mode", "check");
    entry_str(e, "trace", path);
    entry_str(e, "kind", t->concurrent ? "concurrent" : "sequential");
    entry_int(e, "patches", (uint64_t)res.v[1]);
    entry_int(e, "txns", (uint64_t)res.v[2]);
    entry_int(e, "replicas", (uint64_t)res.v[5]);
    entry_int(e, "changes_merged", (uint64_t)res.v[3]);
    entry_num(e, "seconds", res.v[0]);
    entry_str(e, "end_content", "equal on every replica");
    entry_row(e, "%-12s %s (%s): %.0f patches, %u replica(s), endContent "
                 "on every replica, %.2f s",
              "w2", path, t->concurrent ? "concurrent" : "sequential",
              res.v[1], (unsigned)res.v[5], res.v[0]);
    return 0;
}

int
w_text_run(bench_entry *e)
{
    char path[PATH_MAX], err[300], dir[600], spool[700], mdir[700],
        nodever[64] = "";
    trace *t = NULL;
    replay_args ra;
    merge_args ma;
    bench_res rep, res, mres[64];
    double msec[64], anon[64];
    size_t edits, want_len = 0;
    char *want = NULL;
    w2_peer peers[8];
    int n_peers = 0, rc = -1;
    const char *kind;

    if (find_trace(path, sizeof path) < 0) {
        e->status = 1;
        snprintf(e->reason, sizeof e->reason,
                 "no trace: tests/traces/automerge-paper.json.gz not found "
                 "(give --trace FILE or STRATA_BENCH_TRACE)");
        return 0;
    }
    if (trace_load(&t, path, err, sizeof err) < 0) {
        entry_failed(e, "%s", err);
        return -1;
    }
    malloc_trim(0); /* the parse's heap, so the children do not inherit it */
    kind = t->concurrent ? "concurrent" : "sequential";
    bench_log("w2: %s: %s, %zu txns, %zu patches, %u agent(s)", path, kind,
              t->n_txns, t->n_patches, t->n_agents);
    if (g_opts.check) {
        rc = run_check(e, t, path);
        trace_free(t);
        return rc;
    }
    edits = t->n_patches;
    if (g_opts.quick && !t->concurrent && edits >= QUICK_DIVISOR)
        edits /= QUICK_DIVISOR;
    if (edits < t->n_patches) {
        want = replay_reference(t, edits, &want_len, err, sizeof err);
        if (want == NULL) {
            entry_failed(e, "%s", err);
            goto out;
        }
    }
    if (bench_subdir(dir, sizeof dir, "w2") < 0) {
        entry_failed(e, "cannot create a temp dir");
        goto out;
    }
    snprintf(spool, sizeof spool, "%s/spool", dir);
    snprintf(mdir, sizeof mdir, "%s/merged", dir);

    /* 1. the replay (durable), whose changes are the spool */
    memset(&ra, 0, sizeof ra);
    ra.t = t;
    ra.o.base = dir;
    ra.o.durable = 1;
    ra.o.batch = t->concurrent ? 0 : SEQ_BATCH;
    ra.o.limit_patches = edits < t->n_patches ? edits : 0;
    ra.spool_path = spool;
    bench_log("w2: replay of %zu edits (%s)", edits,
              t->concurrent ? "one replica per agent"
                            : "1,000 edits per txn");
    if (bench_run_child(&rep, replay_child, &ra) < 0) {
        entry_failed(e, "replay: %s", rep.err);
        goto out;
    }

    /* 2. the merge, --runs times; the first one also compacts */
    memset(&ma, 0, sizeof ma);
    ma.spool_path = spool;
    ma.dir = mdir;
    ma.want = want ? want : t->end;
    ma.want_len = want ? want_len : t->end_len;
    for (int i = 0; i < g_opts.runs; i++) {
        ma.epochs = i == 0;
        bench_log("w2: merge run %d/%d", i + 1, g_opts.runs);
        if (bench_run_child(&mres[i], merge_child, &ma) < 0) {
            entry_failed(e, "merge: %s", mres[i].err);
            goto out;
        }
        msec[i] = mres[i].v[0];
        anon[i] = mres[i].v[3] > mres[i].v[11] ? mres[i].v[3] - mres[i].v[11]
                                                : 0;
    }
    bench_fig fm = bench_fig_of(msec, g_opts.runs);
    bench_fig fa = bench_fig_of(anon, g_opts.runs);
    double ops = (double)edits / fm.med;

    /* 3. one durable txn per edit on a prefix, against raw LMDB */
    double r1_ops = 0, ref_ops = 0;
    size_t prefix = 0;
    if (!t->concurrent) {
        ref_args fa_ref;
        char rdir[700];

        prefix = g_opts.quick ? PREFIX_EDITS_QUICK : PREFIX_EDITS;
        if (prefix > t->n_patches)
            prefix = t->n_patches;
        ra.o.batch = 1;
        ra.o.limit_patches = prefix;
        ra.spool_path = NULL;
        bench_log("w2: replay of the first %zu edits, one durable txn each",
                  prefix);
        if (bench_run_child(&res, replay_child, &ra) < 0) {
            entry_failed(e, "one txn per edit: %s", res.err);
            goto out;
        }
        r1_ops = (double)prefix / res.v[0];
        snprintf(rdir, sizeof rdir, "%s/lmdb", dir);
        fa_ref.dir = rdir;
        fa_ref.n = prefix;
        fa_ref.seed = g_opts.seed;
        if (bench_run_child(&res, ref_child, &fa_ref) < 0) {
            entry_failed(e, "raw LMDB commits: %s", res.err);
            goto out;
        }
        ref_ops = (double)prefix / res.v[0];
    }

    /* 4. the peers, on the same edits (sequential traces) */
    if (!t->concurrent) {
        bench_entry pe;
        char ppath[700];
        const char *peer_trace = path;

        memset(&pe, 0, sizeof pe);
        if (want != NULL) {
            snprintf(ppath, sizeof ppath, "%s/prefix.json", dir);
            if (trace_write_prefix(t, edits, want, want_len, ppath, err,
                                   sizeof err) < 0) {
                entry_failed(e, "%s", err);
                goto out;
            }
            peer_trace = ppath;
        }
        n_peers = run_peers(&pe, peer_trace, edits, peers, 8, nodever,
                            sizeof nodever);
        if (n_peers < 0) {
            bench_log("w2: peers not run: %s", pe.reason);
            entry_str(e, "peers_not_run", pe.reason);
            n_peers = 0;
        }
    }

    /* ---- the entry ---- */
    const w2_peer *yjs = peer_named(peers, n_peers, "yjs");
    const w2_peer *loro = peer_named(peers, n_peers, "loro");
    const w2_peer *best = yjs;
    if (loro && (!best || loro->merge_ops_per_s > best->merge_ops_per_s))
        best = loro;
    double replay_ops = rep.v[1] / rep.v[0];
    double text_bytes = (double)ma.want_len;

    entry_str(e, "trace", path);
    entry_str(e, "kind", kind);
    entry_int(e, "edits", edits);
    entry_int(e, "agents", t->concurrent ? t->n_agents : 1);
    entry_int(e, "text_bytes", (uint64_t)text_bytes);
    entry_timing(e, "ops", edits, &fm);
    entry_num(e, "merge_only_seconds", mres[0].v[1]);
    entry_num(e, "read_seconds", mres[0].v[2]);
    entry_num(e, "ratio_vs_best_peer", best ? ops / best->merge_ops_per_s
                                            : 0.0 / 0.0);
    entry_str(e, "best_peer", best ? best->name : "none");
    entry_num(e, "replay_ops_per_s", replay_ops);
    entry_num(e, "replay_seconds", rep.v[0]);
    entry_int(e, "replay_txns", (uint64_t)rep.v[2]);
    entry_num(e, "replay_ratio_vs_yjs",
              yjs ? replay_ops / yjs->replay_ops_per_s : 0.0 / 0.0);
    if (t->concurrent) {
        entry_int(e, "replay_changes_merged", (uint64_t)rep.v[3]);
        entry_int(e, "replay_rebuilds", (uint64_t)rep.v[4]);
    }
    if (prefix > 0) {
        entry_obj(e, "replay_txn_per_edit");
        entry_int(e, "edits", prefix);
        entry_num(e, "ops_per_s", r1_ops);
        entry_num(e, "lmdb_commits_per_s", ref_ops);
        entry_num(e, "ratio_vs_lmdb", r1_ops / ref_ops);
        entry_end(e);
    }
    entry_int(e, "changes", (uint64_t)rep.v[6]);
    entry_int(e, "merge_messages", (uint64_t)rep.v[8]);
    entry_int(e, "wire_bytes", (uint64_t)rep.v[7]);
    entry_num(e, "wire_bytes_per_edit", rep.v[7] / (double)edits);
    entry_num(e, "wire_ratio_vs_yjs",
              yjs ? rep.v[7] / yjs->update_bytes : 0.0 / 0.0);
    entry_int(e, "disk_bytes", (uint64_t)mres[0].v[6]);
    entry_int(e, "dir_bytes", (uint64_t)mres[0].v[5]);
    entry_num(e, "disk_ratio_vs_yjs",
              yjs ? mres[0].v[6] / yjs->update_bytes : 0.0 / 0.0);
    entry_int(e, "disk_bytes_after_epoch", (uint64_t)mres[0].v[9]);
    entry_int(e, "disk_bytes_after_first_epoch", (uint64_t)mres[0].v[8]);
    entry_int(e, "dir_bytes_after_epoch", (uint64_t)mres[0].v[10]);
    entry_num(e, "disk_after_epoch_ratio_vs_text",
              text_bytes > 0 ? mres[0].v[9] / text_bytes : 0.0 / 0.0);
    entry_num(e, "epoch_seconds", mres[0].v[7]);
    entry_mib(e, "peak_private_mib", &fa);
    entry_num(e, "private_at_start_mib", mres[0].v[11] / 1024);
    entry_num(e, "peak_file_mib", mres[0].v[4] / 1024);
    if (nodever[0])
        entry_str(e, "node", nodever);
    for (int i = 0; i < n_peers; i++) {
        const w2_peer *p = &peers[i];

        entry_obj(e, p->name);
        entry_str(e, "version", p->version);
        if (p->error[0]) {
            entry_str(e, "error", p->error);
        } else {
            entry_num(e, "ops_per_s", p->merge_ops_per_s);
            entry_num(e, "seconds", p->merge_seconds);
            entry_num(e, "replay_ops_per_s", p->replay_ops_per_s);
            entry_int(e, "update_bytes", (uint64_t)p->update_bytes);
        }
        entry_end(e);
    }

    entry_row(e, "%-12s %s (%s), %zu edits, text %.0f bytes", "w2", path,
              kind, edits, text_bytes);
    entry_row(e, "%-12s merge %.4f s [%.4f..%.4f] %.0f ops/s (%.0f changes "
                 "in %.0f message(s)); ratio vs %s %.3f; peak private %.1f "
                 "MiB",
              "", fm.med, fm.min, fm.max, ops, rep.v[6], rep.v[8],
              best ? best->name : "(none)",
              best ? ops / best->merge_ops_per_s : 0.0, fa.med / 1024);
    entry_row(e, "%-12s replay %.0f ops/s (%s; Yjs %.0f)", "", replay_ops,
              t->concurrent ? "per trace txn, with syncs"
                            : "1,000 edits per txn",
              yjs ? yjs->replay_ops_per_s : 0.0);
    if (prefix > 0)
        entry_row(e, "%-12s one txn per edit (%zu edits) %.0f ops/s vs raw "
                     "LMDB %.0f commits/s: ratio %.3f",
                  "", prefix, r1_ops, ref_ops, r1_ops / ref_ops);
    entry_row(e, "%-12s wire %.0f B (Yjs %.0f), disk %.0f B, after epoch "
                 "%.0f B (text %.0f B)",
              "", rep.v[7], yjs ? yjs->update_bytes : 0.0, mres[0].v[6],
              mres[0].v[9], text_bytes);
    for (int i = 0; i < n_peers; i++)
        if (!peers[i].error[0])
            entry_row(e, "%-12s %-10s merge %.0f ops/s, replay %.0f ops/s, "
                         "update %.0f B (%s)",
                      "", peers[i].name, peers[i].merge_ops_per_s,
                      peers[i].replay_ops_per_s, peers[i].update_bytes,
                      peers[i].version);
    rc = 0;
out:
    free(want);
    trace_free(t);
    return rc;
}
