/*
 * main.c: strata-bench: options, the workload table, and the report
 * (a human table, or ONE JSON object with --json).
 *
 *   strata-bench [--json] [--quick] [--only NAME] [--runs N] [--seed N]
 *                [--dir DIR] [--json-file FILE] [--quiet] [--list]
 *                [--trace FILE] [--check]
 *
 * Every figure is the median of --runs runs (default 3, quick 1) with
 * min and max, next to a reference measured in the same run. Adding a
 * workload: write bench/w_<name>.c with `int w_<name>_run(bench_entry *)`
 * (declare it in bench.h) and list it in WORKLOADS below; an entry with
 * a NULL run function is reported as "not run: <reason>", and so is one
 * whose run function sets e->status = 1 (peers without node).
 */
#include "bench.h"

#include <errno.h>
#include <lmdb.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

bench_opts g_opts;

typedef struct {
    const char *name;
    int (*run)(bench_entry *e);
    const char *not_run; /* reason, when run is NULL */
    const char *what;
} workload;

/* memory follows w1_merge so that it can reuse its 1x figures. */
static const workload WORKLOADS[] = {
    { "w1_merge", w_merge_run, NULL,
      "fresh replica merges 4 peers' 1M register writes, then reads" },
    { "memory", w_memory_run, NULL,
      "peak RSS of w1_merge at 1M and 4M ops" },
    { "local_commit", w_commit_run, NULL,
      "durable local commits of 1-op and 100-op changes" },
    { "group_commit", w_group_run, NULL,
      "16 threads' durable one-op commits on one replica vs one thread" },
    { "migrate", w_migrate_run, NULL,
      "1M documents through a four-step lens" },
    { "open", w_open_run, NULL, "open + status of the 1M-document replica" },
    { "w1_sync", w_sync_run, NULL,
      "w1 pulled over an encrypted loopback crdtnet session between two "
      "processes" },
    { "sync_delta", w_delta_run, NULL,
      "replicas sharing 10,000 actors, one change each way, sync over "
      "loopback: bytes and ms" },
    { "w1_small", w_small_run, NULL,
      "w1 in changes of one op: merge and sync vs w1's 100-op changes" },
    { "watch_latency", w_watch_run, NULL,
      "1,000 commits by another process reach a watcher (p50, p99)" },
    { "hub", w_hub_run, NULL,
      "one strata serve holding 10,000 live sessions: RSS per session, "
      "a change fanned out to 1,000 subscribers (p50, p99)" },
    { "peers", w_peers_run, NULL,
      "w1 merge on Yjs, Automerge and Loro (node bench/peers/w1.js)" },
    { "w2", w_text_run, NULL,
      "an editing trace (automerge-paper, or --trace FILE) replayed, "
      "merged into a fresh replica, compacted; Yjs, Loro, Automerge "
      "(bench/peers/w2.js)" },
};
#define N_WORKLOADS (sizeof WORKLOADS / sizeof WORKLOADS[0])

static bench_entry entries[N_WORKLOADS];

/* ---- machine ---- */

static char cpu_model[200] = "unknown";
static char kernel[200] = "unknown";
static long n_cpu;
static double load_start = -1, load_end = -1;

/* 1-minute load average: other work on the machine skews every figure. */
static double
loadavg(void)
{
    FILE *f = fopen("/proc/loadavg", "r");
    double l = -1;

    if (f != NULL) {
        if (fscanf(f, "%lf", &l) != 1)
            l = -1;
        fclose(f);
    }
    return l;
}

static void
machine_probe(void)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    struct utsname u;
    char line[512];

    n_cpu = sysconf(_SC_NPROCESSORS_ONLN);
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) == 0) {
            char *p = strchr(line, ':');
            if (p) {
                p++;
                while (*p == ' ' || *p == '\t')
                    p++;
                p[strcspn(p, "\n")] = 0;
                snprintf(cpu_model, sizeof cpu_model, "%s", p);
            }
            break;
        }
    }
    if (f)
        fclose(f);
    if (uname(&u) == 0)
        snprintf(kernel, sizeof kernel, "%s %s %s", u.sysname, u.release,
                 u.machine);
}

/* ---- JSON ---- */

static void
json_str(FILE *o, const char *s)
{
    fputc('"', o);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(o, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", o);
        else if (c < 0x20)
            fprintf(o, "\\u%04x", c);
        else
            fputc(c, o);
    }
    fputc('"', o);
}

static void
json_num(FILE *o, double v)
{
    if (!isfinite(v))
        fputs("null", o);
    else if (v >= 1e5 || v <= -1e5)
        fprintf(o, "%.1f", v);
    else
        fprintf(o, "%.6g", v);
}

static void
json_entry(FILE *o, const bench_entry *e)
{
    int first = 1, depth = 0;

    fputs("{", o);
    if (e->status != 0) {
        fputs("\"status\":", o);
        json_str(o, e->status > 0 ? "not run" : "failed");
        fputs(",\"reason\":", o);
        json_str(o, e->reason);
        fputs("}", o);
        return;
    }
    fputs("\"status\":\"ok\"", o);
    first = 0;
    for (int i = 0; i < e->n_kv; i++) {
        const bench_kv *kv = &e->kv[i];
        if (kv->kind == KV_END) {
            fputs("}", o);
            depth--;
            first = 0;
            continue;
        }
        if (!first)
            fputc(',', o);
        first = 0;
        json_str(o, kv->key);
        fputc(':', o);
        switch (kv->kind) {
        case KV_NUM: json_num(o, kv->num); break;
        case KV_INT: fprintf(o, "%llu", (unsigned long long)kv->i); break;
        case KV_STR: json_str(o, kv->str); break;
        case KV_OBJ:
            fputc('{', o);
            depth++;
            first = 1;
            break;
        case KV_END: break;
        }
    }
    while (depth-- > 0)
        fputs("}", o);
    fputs("}", o);
}

static void
print_json(FILE *o)
{
    fputs("{\"program\":\"strata-bench\",\"format\":1", o);
    fprintf(o, ",\"quick\":%s,\"runs\":%d,\"seed\":%llu",
            g_opts.quick ? "true" : "false", g_opts.runs,
            (unsigned long long)g_opts.seed);
    fputs(",\"machine\":{\"nproc\":", o);
    fprintf(o, "%ld,\"cpu\":", n_cpu);
    json_str(o, cpu_model);
    fputs(",\"kernel\":", o);
    json_str(o, kernel);
    fputs(",\"lmdb\":", o);
    json_str(o, mdb_version(NULL, NULL, NULL));
    fputs(",\"tmpdir\":", o);
    json_str(o, g_opts.base);
    fputs(",\"loadavg_start\":", o);
    json_num(o, load_start);
    fputs(",\"loadavg_end\":", o);
    json_num(o, load_end);
    fputs("},\"workloads\":{", o);
    for (size_t i = 0, n = 0; i < N_WORKLOADS; i++) {
        if (entries[i].name == NULL)
            continue;
        if (n++)
            fputc(',', o);
        json_str(o, entries[i].name);
        fputc(':', o);
        json_entry(o, &entries[i]);
    }
    fputs("}}\n", o);
}

static void
print_table(FILE *o)
{
    fprintf(o, "strata-bench: %s sizes, %d run%s per figure: median "
               "[min..max]\n",
            g_opts.quick ? "quick (1/20)" : "full", g_opts.runs,
            g_opts.runs == 1 ? "" : "s");
    fprintf(o, "machine: %ld cpus | %s | %s | %s\n", n_cpu, cpu_model,
            kernel, mdb_version(NULL, NULL, NULL));
    fprintf(o, "temp dir: %s   seed: %llu   load average %.2f -> %.2f\n\n",
            g_opts.base, (unsigned long long)g_opts.seed, load_start,
            load_end);
    for (size_t i = 0; i < N_WORKLOADS; i++) {
        const bench_entry *e = &entries[i];
        if (e->name == NULL)
            continue;
        if (e->status > 0)
            fprintf(o, "%-12s not run: %s\n", e->name, e->reason);
        else if (e->status < 0)
            fprintf(o, "%-12s FAILED: %s\n", e->name, e->reason);
        else
            for (int r = 0; r < e->n_rows; r++)
                fprintf(o, "%s\n", e->rows[r]);
    }
}

/* ---- options ---- */

static void
usage(FILE *o)
{
    fprintf(o,
            "usage: strata-bench [--json] [--quick] [--only NAME] [--runs N]\n"
            "                    [--seed N] [--dir DIR] [--json-file FILE]\n"
            "                    [--quiet] [--list] [--trace FILE] [--check]\n"
            "  --json      print ONE JSON object on stdout\n"
            "  --quick     1/20 sizes, 1 run (CI: proves the program works)\n"
            "  --only NAME run one workload (see --list)\n"
            "  --runs N    runs per figure (default 3; quick 1)\n"
            "  --seed N    PRNG seed (default 1)\n"
            "  --dir DIR   where the temp dir goes (default $TMPDIR or "
            "/tmp)\n"
            "  --json-file FILE  also write the JSON object to FILE\n"
            "  --quiet     no progress on stderr\n"
            "  --trace FILE  w2: the editing trace (gzip JSON, sequential or\n"
            "              concurrent; default tests/traces/automerge-paper)\n"
            "  --check     w2: only replay the trace and check endContent\n");
}

static pid_t main_pid;

static void
cleanup(void)
{
    if (getpid() == main_pid && g_opts.base[0])
        bench_rmtree(g_opts.base);
}

int
main(int argc, char **argv)
{
    const char *tmp = getenv("TMPDIR"), *dir = NULL, *json_file = NULL;
    int runs = 0, failed = 0, matched = 0;

    g_opts.seed = 1;
    g_opts.verbose = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--json") == 0)
            g_opts.json = 1;
        else if (strcmp(a, "--quick") == 0)
            g_opts.quick = 1;
        else if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0)
            g_opts.verbose = 0;
        else if (strcmp(a, "--only") == 0 && i + 1 < argc)
            g_opts.only = argv[++i];
        else if (strcmp(a, "--runs") == 0 && i + 1 < argc)
            runs = atoi(argv[++i]);
        else if (strcmp(a, "--seed") == 0 && i + 1 < argc)
            g_opts.seed = strtoull(argv[++i], NULL, 0);
        else if (strcmp(a, "--dir") == 0 && i + 1 < argc)
            dir = argv[++i];
        else if (strcmp(a, "--json-file") == 0 && i + 1 < argc)
            json_file = argv[++i];
        else if (strcmp(a, "--trace") == 0 && i + 1 < argc)
            g_opts.trace = argv[++i];
        else if (strcmp(a, "--check") == 0)
            g_opts.check = 1;
        else if (strcmp(a, "--list") == 0) {
            for (size_t w = 0; w < N_WORKLOADS; w++)
                printf("%-12s %s%s\n", WORKLOADS[w].name, WORKLOADS[w].what,
                       WORKLOADS[w].run ? "" : " (not run yet)");
            return 0;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (runs < 0 || runs > 64) {
        fprintf(stderr, "strata-bench: --runs must be 1..64\n");
        return 2;
    }
    g_opts.runs = runs ? runs : g_opts.quick ? 1 : 3;
    if (g_opts.only) {
        for (size_t w = 0; w < N_WORKLOADS; w++)
            matched += strcmp(WORKLOADS[w].name, g_opts.only) == 0;
        if (!matched) {
            fprintf(stderr, "strata-bench: no workload %s (see --list)\n",
                    g_opts.only);
            return 2;
        }
    }
    if (dir == NULL)
        dir = tmp && tmp[0] ? tmp : "/tmp";
    snprintf(g_opts.base, sizeof g_opts.base, "%s/strata-bench.XXXXXX", dir);
    if (mkdtemp(g_opts.base) == NULL) {
        fprintf(stderr, "strata-bench: mkdtemp %s: %s\n", g_opts.base,
                strerror(errno));
        return 1;
    }
    main_pid = getpid();
    atexit(cleanup);
    machine_probe();
    load_start = loadavg();
    bench_log("strata-bench %s, %d run(s), temp dir %s",
              g_opts.quick ? "quick" : "full", g_opts.runs, g_opts.base);

    for (size_t w = 0; w < N_WORKLOADS; w++) {
        bench_entry *e = &entries[w];
        double t0 = bench_now();

        if (g_opts.only && strcmp(WORKLOADS[w].name, g_opts.only) != 0)
            continue;
        e->name = WORKLOADS[w].name;
        if (WORKLOADS[w].run == NULL) {
            e->status = 1;
            snprintf(e->reason, sizeof e->reason, "%s", WORKLOADS[w].not_run);
            continue;
        }
        if (WORKLOADS[w].run(e) < 0 || e->status < 0) {
            if (e->status == 0)
                entry_failed(e, "failed");
            failed++;
            fprintf(stderr, "strata-bench: %s failed: %s\n", e->name,
                    e->reason);
        }
        bench_log("%s done in %.1f s", e->name, bench_now() - t0);
    }
    load_end = loadavg();
    if (g_opts.json)
        print_json(stdout);
    else
        print_table(stdout);
    if (json_file != NULL) {
        FILE *f = fopen(json_file, "w");
        if (f == NULL) {
            fprintf(stderr, "strata-bench: %s: %s\n", json_file,
                    strerror(errno));
            return 1;
        }
        print_json(f);
        if (fclose(f) != 0)
            return 1;
    }
    return failed ? 1 : 0;
}
