/*
 * bench.h: what the files of strata-bench share.
 *
 * strata-bench answers one question per workload: how fast is Strata
 * compared with a reference measured in the SAME run on the SAME disk
 * (raw LMDB doing the same amount of storage work, or the disk's fsync
 * rate). Absolute figures depend on the machine; the ratios are what
 * docs/performance.md tracks.
 *
 * Layout:
 *   main.c        options, the workload table, human and JSON output
 *   util.c        clock, PRNG, forked children, peak RSS, temp dirs
 *   report.c      figures (median/min/max) and the report entries
 *   w_merge.c     w1_merge and memory (+ the lmdb_ref reference)
 *   w_commit.c    local_commit (+ the fsync reference)
 *   w_group.c     group_commit: 16 threads' commits (+ one thread's)
 *   w_migrate.c   migrate and open (+ the raw LMDB rewrite reference)
 *   w_sync.c      w1_sync: w1 over an encrypted loopback crdtnet session
 *                 between two processes (+ w1_merge, interleaved)
 *   w_delta.c     sync_delta: replicas sharing 10,000 actors, one change
 *                 each way, synced over loopback (bytes, ms)
 *   w_watch.c     watch_latency: a commit by another process reaching a
 *                 watcher (+ the commit itself as reference)
 *   w_hub.c       hub: one strata serve holding thousands of live
 *                 sessions from strata-hubload processes (hubload/)
 *   w_peers.c     peers: w1 on Yjs, Automerge and Loro (node, peers/w1.js)
 *   w_text.c      w2: an editing trace replayed, merged, compacted (+ raw
 *                 LMDB commits, and Yjs, Loro, Automerge: peers/w2.js)
 *   replay.c      the trace replayer (one replica per agent)
 *   trace.c       editing traces: gzip JSON -> flat arrays
 *   lmdb_ref.c    the raw LMDB references
 *
 * Every measured workload runs in a forked child: the parent stays
 * small, so a child's peak RSS (VmHWM, reset at the child's start) is
 * that workload's own.
 */
#ifndef STRATA_BENCH_H
#define STRATA_BENCH_H

#include <stddef.h>
#include <stdint.h>

#include "crdt/replica.h"

#define BENCH_FMT(a, b) __attribute__((format(printf, a, b)))

/* ---- options ---- */

typedef struct {
    int json;
    int quick;
    int runs;
    int verbose;          /* progress on stderr */
    const char *only;     /* NULL: every workload */
    const char *trace;    /* w2: the editing trace (NULL: automerge-paper) */
    int check;            /* w2: only replay the trace and check it */
    uint64_t seed;
    char base[512];       /* the run's temp dir (removed at exit) */
} bench_opts;

extern bench_opts g_opts;

/* Progress line on stderr (not part of the report). */
void bench_log(const char *fmt, ...) BENCH_FMT(1, 2);

/* ---- clock and PRNG ---- */

double bench_now(void); /* CLOCK_MONOTONIC, seconds */
double bench_cpu_seconds(void); /* user + sys of this process so far */
double bench_user_seconds(void); /* user only */

static inline uint64_t
bench_rand(uint64_t *s) /* splitmix64 */
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* A register value that msgpack encodes in 9 bytes (uint64 form), so
 * every value in the state is 16 + 9 bytes. */
static inline int64_t
bench_value(uint64_t *s)
{
    return (int64_t)((bench_rand(s) >> 2) | (1ULL << 40));
}

/* Document id "d" followed by @p width decimal digits of @p n; returns
 * its length. @p buf holds at least width + 2 bytes. */
size_t bench_doc_id(char *buf, unsigned width, uint64_t n);

/* ---- files ---- */

/* mkdir base/name; @p out gets the path. */
int bench_subdir(char *out, size_t size, const char *name);
/* rm -rf @p path (nftw, no shell). */
void bench_rmtree(const char *path);
/* Copy the regular files of @p from (except lock.mdb) into new dir @p to. */
int bench_copy_dir(const char *from, const char *to);
/* Bytes of the regular files in @p dir. */
uint64_t bench_dir_bytes(const char *dir);
/* Bytes written so far by the block device holding @p path (the whole
 * device's count, from sysfs); -1 when it cannot tell. */
double bench_disk_written(const char *path);

/* ---- children ---- */

#define BENCH_VALS 24

/* What a child sends back through its pipe. */
typedef struct {
    int rc;               /* 0 ok, else failed with @c err */
    char err[240];
    double v[BENCH_VALS]; /* the workload's figures, by index */
    double peak_rss_kib;  /* VmHWM at the end of the child */
    double base_rss_kib;  /* VmRSS after the reset at its start */
} bench_res;

typedef int (*bench_child_fn)(bench_res *out, void *ctx);

/*
 * Run @p fn in a forked child and collect its result. The child resets
 * its peak RSS first (/proc/self/clear_refs), so peak_rss_kib is the
 * child's own. @return 0, or -1 (child failed: out->err says why).
 */
int bench_run_child(bench_res *out, bench_child_fn fn, void *ctx);

/* Fail helper for children: fills out->err, returns -1. */
int bench_fail(bench_res *out, const char *fmt, ...) BENCH_FMT(2, 3);

/* Reset the peak RSS to the current RSS (what the child start does). */
void bench_rss_reset(void);
/* VmHWM / VmRSS of this process in KiB (0 if unknown). */
double bench_rss_peak_kib(void);
double bench_rss_now_kib(void);
/* Any field of /proc/self/status in KiB (RssAnon, RssFile...). */
double bench_status_kib(const char *field);

/*
 * VmHWM says how big a process got, not what of it was private: the
 * LMDB map is a shared file mapping, and every page LMDB reads through
 * it (plus the kernel's fault-around neighbours already in the page
 * cache, 64 KiB around each fault) counts as RssFile. A sampler thread
 * reads RssAnon and RssFile every millisecond and keeps their maxima.
 */
typedef struct bench_sampler bench_sampler;
bench_sampler *bench_sampler_start(void); /* NULL if it cannot run */
/* Stop @p s (NULL does nothing) and store the maxima in KiB. */
void bench_sampler_stop(bench_sampler *s, double *anon_kib,
                        double *file_kib);

/* ---- figures and the report ---- */

/* Median, min and max of a set of samples. */
typedef struct {
    double med, min, max;
    int n;
} bench_fig;

bench_fig bench_fig_of(const double *x, int n);

/* One key of a report entry: a number, a string, or a nested object. */
typedef enum { KV_NUM, KV_INT, KV_STR, KV_OBJ, KV_END } kv_kind;

typedef struct {
    kv_kind kind;
    char key[64];
    double num;
    uint64_t i;
    char str[200];
} bench_kv;

#define BENCH_MAX_KV 128
#define BENCH_MAX_ROWS 8

/* One workload's report: JSON keys plus human table rows. */
typedef struct {
    const char *name;
    int status;      /* 0 ok, 1 not run, -1 failed */
    char reason[300];
    bench_kv kv[BENCH_MAX_KV];
    int n_kv;
    char rows[BENCH_MAX_ROWS][200];
    int n_rows;
} bench_entry;

void entry_num(bench_entry *e, const char *key, double v);
void entry_int(bench_entry *e, const char *key, uint64_t v);
void entry_str(bench_entry *e, const char *key, const char *v);
void entry_obj(bench_entry *e, const char *key); /* open {...} */
void entry_end(bench_entry *e);                  /* close it */
/* A timing: count key ("ops"/"docs"/"commits"), seconds median, min,
 * max, and <count>_per_s, inside the current object. */
void entry_timing(bench_entry *e, const char *count_key, uint64_t count,
                  const bench_fig *sec);
/* A memory figure in MiB: key, key_min, key_max. */
void entry_mib(bench_entry *e, const char *key, const bench_fig *kib);
void entry_row(bench_entry *e, const char *fmt, ...) BENCH_FMT(2, 3);
void entry_failed(bench_entry *e, const char *fmt, ...) BENCH_FMT(2, 3);

/* ---- workloads ---- */

int w_merge_run(bench_entry *e);       /* w1_merge */
int w_memory_run(bench_entry *e);      /* memory */
int w_commit_run(bench_entry *e);      /* local_commit */
int w_group_run(bench_entry *e);       /* group_commit */
int w_migrate_run(bench_entry *e);     /* migrate */
int w_open_run(bench_entry *e);        /* open */
int w_sync_run(bench_entry *e);        /* w1_sync */
int w_delta_run(bench_entry *e);       /* sync_delta */
int w_peers_run(bench_entry *e);       /* peers */
int w_watch_run(bench_entry *e);       /* watch_latency */
int w_hub_run(bench_entry *e);         /* hub */
int w_text_run(bench_entry *e);        /* w2 */
int w_small_run(bench_entry *e);       /* w1_small */

/* ---- node peers (w_peers.c, used by w_text.c too) ---- */

/* Find bench/peers, check node, install the npm packages if missing
 * (unless STRATA_BENCH_NO_NPM). 0 ready; 1 not run (@p e says why). */
int bench_peers_prepare(bench_entry *e, char *dir, size_t dir_size,
                        char *nodever, size_t nodever_size);
/*
 * Run @p argv in @p cwd. With @p out, its stdout is collected there (up
 * to @p cap - 1 bytes, NUL-terminated). Killed after @p limit_s seconds.
 * @return the exit status, 127 if it could not be executed, -1 on a
 * local error or a timeout (@p why says which), -2 - signal if killed.
 */
int bench_run_prog(char *const argv[], const char *cwd, char *out,
                   size_t cap, int limit_s, char *why, size_t why_size);
/* A number / a string of a flat JSON line (the peers' output). */
int bench_json_num(const char *line, const char *key, double *v);
int bench_json_str(const char *line, const char *key, char *out,
                   size_t size);

/* ---- w1 pieces shared by w_merge.c, w_sync.c and w_peers.c ---- */

#define W1_DOC_WIDTH 5   /* document ids "d00042" */
#define W1_CHANGE_OPS 100

uint64_t w1_total_ops(void); /* 1,000,000 (quick 50,000) */
uint64_t w1_n_docs(void);    /* 10,000 (quick 500) */
/* The w1 spool (4 sources' changes, interleaved), built once per run of
 * strata-bench. NULL on failure (@p e says why). */
const char *w1_spool(bench_entry *e);
/* One measured w1_merge of @p spool into a fresh replica (removed
 * after); fails unless it applied @p expect_ops ops. v[0] seconds, v[1]
 * ops, v[4] docs read, v[5] merge s, v[6] read s. Spool format: "SBSP",
 * the 16-byte space id, then per change its length (u32 LE) and bytes;
 * merged in batches of 100 changes. */
int w1_merge_fresh(bench_res *res, const char *spool, uint64_t expect_ops,
                   int run);
/* crdt_read_doc() on every w1 document of @p r: how both workloads end.
 * 0 with the number found, or bench_fail()'s -1. */
int w1_read_docs(bench_res *out, crdt_replica *r, uint64_t n_docs,
                 uint64_t *docs_out);
/* The same merge into @p dir (a new replica), kept: setup for w1_sync. */
int w1_merge_into(bench_res *res, const char *spool, const char *dir);

/* w1_small: the same w1 writes in changes of ONE op (1,000,000 changes;
 * quick 24,000), spooled like w1 but W1_SMALL_BATCH changes per merge
 * batch (the same 10,000 ops as w1's 100 x 100), 2,500 of each source
 * in turn, a change without its signature when its successor is in
 * the same batch (as a sync session sends them). */
#define W1_SMALL_BATCH 10000
const char *w1_small_spool(bench_entry *e);
/* w1_small's size: w1's, but half of w1's quick size in quick mode; and
 * the w1 spool (changes of 100 ops) of that size. */
uint64_t w1_small_total_ops(void);
const char *w1_small_ref_spool(bench_entry *e);
/* w1_merge_fresh / w1_merge_into with @p batch_changes per crdt_merge
 * (0: w1's 100). */
int w1_merge_fresh_batch(bench_res *res, const char *spool,
                         uint64_t expect_ops, int run, int batch_changes);
int w1_merge_into_batch(bench_res *res, const char *spool, const char *dir,
                        int batch_changes);
/* w_sync.c: the sync pieces, for w1_small. Setup: merge @p spool into
 * server dir @p srv (batches of @p batch changes), create client @p cli
 * in its space and make it a writer. Then one measured sync on copies;
 * v[] as w1_sync's child: v[0] seconds, v[6] bytes server to client. */
int w1_sync_setup(bench_res *res, const char *spool, int batch,
                  const char *srv, const char *cli);
int w1_sync_once(bench_res *res, const char *srv, const char *cli,
                 uint64_t expect_changes, uint64_t expect_ops, int run);
/* ops/s median of w1_merge in this run of strata-bench; 0 if not run. */
extern double g_w1_merge_ops_per_s;

/* ---- raw LMDB references (lmdb_ref.c) ---- */

/* The key and value of a register write to "c"/doc/"v", byte for byte
 * what libcrdt stores (coll 0 doc 0 field 0 'R' -> hlc actor scalar). */
size_t bench_state_key(unsigned char *k, const char *doc, size_t dl);
void bench_state_val(unsigned char v[25], uint64_t hlc, int64_t val);

/*
 * w1 reference: @p n_ops puts of state-shaped records (docs drawn from
 * @p n_docs like the workload, so overwrites happen), one durable txn
 * per @p batch_ops, then one get per document. Seconds in out->v[0].
 */
typedef struct {
    const char *dir;
    uint64_t n_ops, n_docs, batch_ops, seed;
} ref_w1_args;
int ref_w1_child(bench_res *out, void *ctx);

/* Build an env in @p dir with @p n records "c"/d<7 digits>/"v" in DB
 * "a" (setup for ref_rewrite_child). */
int ref_rewrite_setup(const char *dir, uint64_t n, uint64_t seed,
                      char *err, size_t errlen);
/* Migrate reference: ONE txn reads every record of "a", puts it into
 * "b", drops "a", commits durably. Seconds in out->v[0]. */
int ref_rewrite_child(bench_res *out, void *ctx);

/* Raw LMDB commits for local_commit: an env in @p dir with DB "state";
 * each run commits @p n durable txns of @p ops_per_txn state-shaped
 * puts (documents drawn from @p n_docs). */
typedef struct ref_commit ref_commit;
int ref_commit_open(ref_commit **out, const char *dir, uint64_t n_docs,
                    uint64_t seed, char *err, size_t errlen);
int ref_commit_run(ref_commit *rc, uint64_t n, uint64_t ops_per_txn,
                   char *err, size_t errlen);
void ref_commit_close(ref_commit *rc);

#endif
