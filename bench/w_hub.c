/*
 * w_hub.c: hub: one `strata serve` holding thousands of live sessions.
 *
 * Setup (a forked child, untimed): two spaces on the server, "hub" and
 * "idle"; one writer and S subscriber replicas in hub (each its own
 * replica, each a member), one idle replica per load process in idle.
 * Then the real daemon (`strata serve`, the binary built beside us, or
 * $STRATA_BIN) serves both on 127.0.0.1, and P load processes
 * (strata-hubload, or $STRATA_HUBLOAD; one event loop each, so the
 * 20,000-fd limit of one process does not cap the count) connect
 * T sessions in all: the writer, the S subscribers and idle ones
 * (live, keepalives on, nothing to sync). Full: T = 10,000, S = 1,000,
 * P = 4; quick: 500, 100, 2.
 *
 * Measured:
 *  - peers_connected: sessions authenticated and open at once, as the
 *    load processes count them after all connected (T is the target);
 *  - rss_per_idle_session_kib: (daemon VmRSS with them - VmRSS before
 *    the first connection) / sessions; also RssAnon alone;
 *  - fanout: 5 times (quick: 3), the writer commits one change (its clock,
 *    CLOCK_MONOTONIC, is every process's) and each subscriber notes when
 *    it arrives: p50 and p99 over every (round, subscriber); subscribers
 *    that did not get it within 5 s count as 5 s.
 * Reference, same run: the same fanout with only the writer and one
 * subscriber connected (before the load), so the ratio shows what the
 * thousands of sessions cost over the daemon's own path (the writer's
 * session picks up a commit at once; the daemon's sessions of the
 * subscribers notice the merged change on their next tick, <= 250 ms).
 */
#define _GNU_SOURCE
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "crdt/crdt.h"

#ifndef STRATA_CLI
#define STRATA_CLI "strata"
#endif
#ifndef STRATA_HUBLOAD
#define STRATA_HUBLOAD "strata-hubload"
#endif

#define MAX_PROCS 8
#define ROUNDS_MAX 5 /* fanouts per run (quick: 3) */
#define FANOUT_WAIT_MS 5000
#define MAP_BYTES ((size_t)16 * 1024 * 1024)

typedef struct {
    char dir[600];
    int subs, procs;
} hub_args;

typedef struct {
    pid_t pid;
    int in, out;      /* its stdin (we write), its stdout (we read) */
    char buf[1 << 16];
    size_t len;
} loadproc;

static double
mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* ---- setup --------------------------------------------------------- */

static int
create(bench_res *out, crdt_replica **r, const char *path,
       const unsigned char *space)
{
    crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
    int rc;

    o.create = 1;
    o.no_sync = 1;
    o.map_size = MAP_BYTES;
    o.space_id = space;
    if ((rc = crdt_replica_open(r, path, &o)) < 0)
        return bench_fail(out, "create %s: %s", path, crdt_strerror(rc));
    return 0;
}

/* Create replica @p path in @p srv's space and make it a member. */
static int
member(bench_res *out, crdt_txn *t, const char *path,
       const unsigned char *space)
{
    unsigned char pk[CRDT_PUBKEY_BYTES];
    crdt_replica *r;
    int rc;

    if (create(out, &r, path, space) < 0)
        return -1;
    crdt_replica_public_key(r, pk);
    crdt_replica_close(r);
    if ((rc = crdt_txn_member_set(t, pk, CRDT_ROLE_WRITER)) < 0)
        return bench_fail(out, "member: %s", crdt_strerror(rc));
    return 0;
}

static int
setup_space(bench_res *out, const char *srv, const char *prefix, int n,
            const char *writer)
{
    unsigned char space[CRDT_SPACE_ID_BYTES];
    crdt_replica *s;
    crdt_txn *t;
    char p[700];
    int rc;

    if (create(out, &s, srv, NULL) < 0)
        return -1;
    crdt_replica_space_id(s, space);
    if ((rc = crdt_txn_begin(&t, s)) < 0) {
        crdt_replica_close(s);
        return bench_fail(out, "begin: %s", crdt_strerror(rc));
    }
    {   /* the server itself, or clients that synced the member set
         * would stop trusting it (docs/security.md) */
        unsigned char pk[CRDT_PUBKEY_BYTES];
        crdt_replica_public_key(s, pk);
        rc = crdt_txn_member_set(t, pk, CRDT_ROLE_ADMIN);
        if (rc < 0)
            bench_fail(out, "server member: %s", crdt_strerror(rc));
    }
    if (rc == 0 && writer != NULL)
        rc = member(out, t, writer, space);
    for (int i = 0; i < n && rc == 0; i++) {
        snprintf(p, sizeof p, "%s%d", prefix, i);
        rc = member(out, t, p, space);
    }
    if (rc == 0 && (rc = crdt_txn_commit(t, NULL)) < 0)
        bench_fail(out, "commit members: %s", crdt_strerror(rc));
    else if (rc < 0)
        crdt_txn_abort(t);
    crdt_replica_close(s);
    return rc < 0 ? -1 : 0;
}

static int
setup_child(bench_res *out, void *ctx)
{
    const hub_args *a = ctx;
    char srv[700], pre[700], w[700];

    snprintf(srv, sizeof srv, "%s/srv_hub", a->dir);
    snprintf(pre, sizeof pre, "%s/sub", a->dir);
    snprintf(w, sizeof w, "%s/writer", a->dir);
    if (setup_space(out, srv, pre, a->subs + 1, w) < 0)
        return -1; /* sub<subs>: the reference's lone subscriber */
    snprintf(srv, sizeof srv, "%s/srv_idle", a->dir);
    snprintf(pre, sizeof pre, "%s/idle", a->dir);
    return setup_space(out, srv, pre, a->procs, NULL);
}

/* ---- processes ----------------------------------------------------- */

/*
 * The program @p name: $@p env, else where the build put it (@p built),
 * else beside strata-bench (an installed copy); NULL if none runs.
 */
static const char *
prog(const char *env, const char *built, const char *name)
{
    static char beside[2][600];
    static int which;
    const char *p = getenv(env);
    char self[512];
    ssize_t n;

    if (p != NULL && p[0])
        return p;
    if (access(built, X_OK) == 0)
        return built;
    n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return NULL;
    self[n] = '\0';
    if (strrchr(self, '/') != NULL)
        strrchr(self, '/')[1] = '\0';
    which = !which; /* two names in use at once */
    snprintf(beside[which], sizeof beside[which], "%s%s", self, name);
    return access(beside[which], X_OK) == 0 ? beside[which] : NULL;
}

static const char *strata_bin, *hubload_bin;

/* Start the daemon; its log goes to @p log. @return pid, or -1. */
static pid_t
start_daemon(const hub_args *a, const char *log)
{
    char srv_hub[700], srv_idle[700];
    pid_t pid;
    int fd;

    snprintf(srv_hub, sizeof srv_hub, "%s/srv_hub", a->dir);
    snprintf(srv_idle, sizeof srv_idle, "%s/srv_idle", a->dir);
    if ((pid = fork()) != 0)
        return pid;
    (void)prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlives us */
    fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd >= 0) {
        dup2(fd, 2);
        close(fd);
    }
    fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
        dup2(fd, 0);
        dup2(fd, 1);
    }
    execl(strata_bin, "strata", "serve", srv_hub,
          srv_idle, "--listen", "127.0.0.1:0", (char *)NULL);
    _exit(127);
}

/* The daemon's port, from its log; -1 after @p ms. */
static int
daemon_port(const char *log, int ms)
{
    char line[512];

    for (int i = 0; i < ms / 20; i++) {
        FILE *f = fopen(log, "r");
        while (f != NULL && fgets(line, sizeof line, f) != NULL) {
            const char *p = strstr(line, "listening on 127.0.0.1:");
            if (p != NULL) {
                fclose(f);
                return atoi(p + strlen("listening on 127.0.0.1:"));
            }
        }
        if (f != NULL)
            fclose(f);
        usleep(20000);
    }
    return -1;
}

/* A field of /proc/PID/status in KiB. */
static double
proc_kib(pid_t pid, const char *field)
{
    char path[64], line[256];
    size_t fl = strlen(field);
    double v = 0;
    FILE *f;

    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    if ((f = fopen(path, "r")) == NULL)
        return 0;
    while (fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, field, fl) == 0 && line[fl] == ':') {
            v = atof(line + fl + 1);
            break;
        }
    fclose(f);
    return v;
}

/* CPU seconds (user + system) process @p pid used so far. */
static double
proc_cpu_s(pid_t pid)
{
    char path[64], buf[1024], *p;
    unsigned long ut = 0, st = 0;
    FILE *f;
    size_t n;

    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    if ((f = fopen(path, "r")) == NULL)
        return 0;
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* after "(comm)": state is field 3, utime 14, stime 15 */
    if ((p = strrchr(buf, ')')) == NULL ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
               &ut, &st) != 2)
        return 0;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* Start a load process with @p argv (NULL-terminated). */
static int
start_load(loadproc *lp, char **argv)
{
    int in[2], out[2];

    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0)
        return -1;
    lp->len = 0;
    if ((lp->pid = fork()) < 0)
        return -1;
    if (lp->pid == 0) {
        (void)prctl(PR_SET_PDEATHSIG, SIGTERM);
        dup2(in[0], 0);
        dup2(out[1], 1);
        execv(argv[0], argv);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    lp->in = in[1];
    lp->out = out[0];
    return 0;
}

static void
say(loadproc *lp, const char *line)
{
    ssize_t w = write(lp->in, line, strlen(line));
    (void)w;
}

/* The next line from @p lp (without '\n') in @p line; -1 after @p ms. */
static int
hear(loadproc *lp, char *line, size_t size, int ms)
{
    double end = mono_us() + ms * 1e3;

    for (;;) {
        char *nl = memchr(lp->buf, '\n', lp->len);
        struct pollfd pfd = { lp->out, POLLIN, 0 };
        double left;
        ssize_t n;

        if (nl != NULL) {
            size_t l = (size_t)(nl - lp->buf);
            size_t c = l < size - 1 ? l : size - 1;
            memcpy(line, lp->buf, c);
            line[c] = '\0';
            lp->len -= l + 1;
            memmove(lp->buf, nl + 1, lp->len);
            return 0;
        }
        left = end - mono_us();
        if (left <= 0 || lp->len == sizeof lp->buf)
            return -1;
        if (poll(&pfd, 1, (int)(left / 1e3) + 1) <= 0)
            continue;
        n = read(lp->out, lp->buf + lp->len, sizeof lp->buf - lp->len);
        if (n <= 0)
            return -1;
        lp->len += (size_t)n;
    }
}

static void
stop_load(loadproc *lp)
{
    char line[64];

    say(lp, "quit\n");
    (void)hear(lp, line, sizeof line, 5000);
    close(lp->in);
    close(lp->out);
    kill(lp->pid, SIGTERM);
    waitpid(lp->pid, NULL, 0);
}

static int
cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static double
pct(const double *v, size_t n, double p)
{
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);

    return n ? v[i < n ? i : n - 1] : 0;
}

/*
 * rounds() fanouts: the writer (in @p lp[0]) commits, every process
 * reports its subscribers' arrivals. Latencies in ms into @p lat (room
 * for rounds() * @p subs); @return how many arrived, or -1.
 */
static int
rounds(void)
{
    return g_opts.quick ? 3 : ROUNDS_MAX;
}

static long
fanout(loadproc *lp, int n, int subs, double *lat, size_t *n_lat,
       char *why, size_t why_size)
{
    static char line[1 << 16];
    long got = 0;

    for (int round = 0; round < rounds(); round++) {
        long long t0 = 0;
        char cmd[64];

        for (int i = 0; i < n; i++)
            say(&lp[i], "mark\n");
        for (int i = 0; i < n; i++)
            if (hear(&lp[i], line, sizeof line, 5000) < 0 ||
                strcmp(line, "marked") != 0) {
                snprintf(why, why_size, "load process %d: no mark", i);
                return -1;
            }
        say(&lp[0], "write\n");
        if (hear(&lp[0], line, sizeof line, 5000) < 0 ||
            sscanf(line, "wrote %lld", &t0) != 1 || t0 == 0) {
            snprintf(why, why_size, "the writer did not write");
            return -1;
        }
        snprintf(cmd, sizeof cmd, "report %lld %d\n", t0, FANOUT_WAIT_MS);
        for (int i = 0; i < n; i++)
            say(&lp[i], cmd);
        for (int i = 0; i < n; i++) {
            char *p, *end;
            long k;

            if (hear(&lp[i], line, sizeof line, FANOUT_WAIT_MS + 5000) < 0 ||
                strncmp(line, "lat ", 4) != 0) {
                snprintf(why, why_size, "load process %d: no report", i);
                return -1;
            }
            k = strtol(line + 4, &p, 10);
            for (long j = 0; j < k; j++) {
                double us = strtod(p, &end);
                if (end == p)
                    break;
                p = end;
                lat[(*n_lat)++] = us / 1e3;
                got++;
            }
        }
        /* those that never got it count as the wait */
        while (*n_lat < (size_t)(round + 1) * (size_t)subs)
            lat[(*n_lat)++] = FANOUT_WAIT_MS;
        usleep(200000); /* the round's last pushes settle */
    }
    qsort(lat, *n_lat, sizeof *lat, cmp_d);
    return got;
}

/* ---- the workload -------------------------------------------------- */

typedef struct {
    long connected, live;
    double rss0, rssn, anon0, anonn;
    double connect_s;
    double p50, p99, max;
    long fan_got, fan_expected;
    double ref_p50, ref_p99;
    double daemon_idle_cpu, daemon_fan_cpu, load_fan_cpu; /* s */
} hub_figs;

static int
hub_measure(const hub_args *a, int total, hub_figs *f, char *why,
            size_t why_size)
{
    static char line[1 << 16];
    loadproc *lp = calloc(MAX_PROCS + 1, sizeof *lp);
    char log[700], hp[64], idle[700], writer[700], n_idle[32];
    char **argv = NULL;
    double *lat = calloc((size_t)ROUNDS_MAX * (size_t)(a->subs + 1),
                         sizeof *lat);
    size_t n_lat = 0;
    int port, started = 0, rc = -1, sub = 0;
    pid_t d;
    double t0;

    memset(f, 0, sizeof *f);
    argv = calloc((size_t)a->subs * 2 + 16, sizeof *argv);
    if (lp == NULL || lat == NULL || argv == NULL) {
        snprintf(why, why_size, "out of memory");
        goto out_free;
    }
    snprintf(log, sizeof log, "%s/serve.log", a->dir);
    if ((d = start_daemon(a, log)) < 0 || (port = daemon_port(log, 10000)) <
                                              0) {
        snprintf(why, why_size, "strata serve did not start (its log: "
                 "serve.log)");
        if (d > 0) {
            kill(d, SIGTERM);
            waitpid(d, NULL, 0);
        }
        goto out_free;
    }
    snprintf(hp, sizeof hp, "127.0.0.1:%d", port);
    snprintf(writer, sizeof writer, "%s/writer", a->dir);
    usleep(300000);
    f->rss0 = proc_kib(d, "VmRSS");
    f->anon0 = proc_kib(d, "RssAnon");

    /* the reference: the writer and one subscriber, nothing else */
    {
        char subdir[700];
        long got;
        int k = 0;

        argv[k++] = (char *)hubload_bin;
        argv[k++] = hp;
        argv[k++] = "--writer";
        argv[k++] = writer;
        snprintf(subdir, sizeof subdir, "%s/sub%d", a->dir, a->subs);
        argv[k++] = "--sub";
        argv[k++] = subdir;
        argv[k] = NULL;
        if (start_load(&lp[MAX_PROCS], argv) < 0 ||
            hear(&lp[MAX_PROCS], line, sizeof line, 30000) < 0 ||
            strcmp(line, "connected 2 failed 0") != 0) {
            snprintf(why, why_size, "reference load: %.100s", line);
            goto out_daemon;
        }
        got = fanout(&lp[MAX_PROCS], 1, 1, lat, &n_lat, why, why_size);
        stop_load(&lp[MAX_PROCS]);
        if (got < 0)
            goto out_daemon;
        f->ref_p50 = pct(lat, n_lat, 0.50);
        f->ref_p99 = pct(lat, n_lat, 0.99);
        n_lat = 0;
        usleep(500000); /* its sessions end on the daemon */
    }

    t0 = mono_us();
    for (int i = 0; i < a->procs; i++) {
        int k = 0, subs_here = a->subs / a->procs +
                               (i < a->subs % a->procs ? 1 : 0);
        int idle_here = (total - 1 - a->subs) / a->procs +
                        (i < (total - 1 - a->subs) % a->procs ? 1 : 0);
        char **subdirs = calloc((size_t)subs_here + 1, sizeof *subdirs);

        argv[k++] = (char *)hubload_bin;
        argv[k++] = hp;
        if (i == 0) {
            argv[k++] = "--writer";
            argv[k++] = writer;
        }
        snprintf(idle, sizeof idle, "%s/idle%d", a->dir, i);
        snprintf(n_idle, sizeof n_idle, "%d", idle_here);
        argv[k++] = "--idle";
        argv[k++] = idle;
        argv[k++] = "--idle-sessions";
        argv[k++] = n_idle;
        for (int j = 0; subdirs != NULL && j < subs_here; j++, sub++) {
            subdirs[j] = malloc(700);
            snprintf(subdirs[j], 700, "%s/sub%d", a->dir, sub);
            argv[k++] = "--sub";
            argv[k++] = subdirs[j];
        }
        argv[k] = NULL;
        rc = subdirs == NULL ? -1 : start_load(&lp[i], argv);
        for (int j = 0; subdirs != NULL && j < subs_here; j++)
            free(subdirs[j]);
        free(subdirs);
        if (rc < 0) {
            snprintf(why, why_size, "cannot start %s", argv[0]);
            goto out_loads;
        }
        started++;
    }
    rc = -1;
    for (int i = 0; i < a->procs; i++) {
        long c = 0, fl = 0;

        if (hear(&lp[i], line, sizeof line, 180000) < 0 ||
            sscanf(line, "connected %ld failed %ld", &c, &fl) != 2) {
            snprintf(why, why_size, "load process %d did not connect", i);
            goto out_loads;
        }
        f->connected += c;
    }
    f->connect_s = (mono_us() - t0) / 1e6;
    bench_log("hub: %ld of %d sessions connected in %.1f s", f->connected,
              total, f->connect_s);
    usleep(g_opts.quick ? 500000 : 2000000); /* idle from here */
    for (int i = 0; i < a->procs; i++) {
        long c = 0;
        say(&lp[i], "count\n");
        if (hear(&lp[i], line, sizeof line, 10000) < 0 ||
            sscanf(line, "live %ld", &c) != 1) {
            snprintf(why, why_size, "load process %d: no count", i);
            goto out_loads;
        }
        f->live += c;
    }
    f->rssn = proc_kib(d, "VmRSS");
    f->anonn = proc_kib(d, "RssAnon");
    {   /* what holding the idle sessions costs the daemon */
        double c0 = proc_cpu_s(d), secs = g_opts.quick ? 1 : 3;
        usleep((useconds_t)(secs * 1e6));
        f->daemon_idle_cpu = (proc_cpu_s(d) - c0) / secs;
    }
    f->fan_expected = (long)rounds() * a->subs;
    {
        double dc = proc_cpu_s(d), lc = 0;
        for (int i = 0; i < a->procs; i++)
            lc -= proc_cpu_s(lp[i].pid);
        f->fan_got = fanout(lp, a->procs, a->subs, lat, &n_lat, why,
                            why_size);
        f->daemon_fan_cpu = (proc_cpu_s(d) - dc) / rounds();
        for (int i = 0; i < a->procs; i++)
            lc += proc_cpu_s(lp[i].pid);
        f->load_fan_cpu = lc / rounds();
    }
    if (f->fan_got < 0)
        goto out_loads;
    f->p50 = pct(lat, n_lat, 0.50);
    f->p99 = pct(lat, n_lat, 0.99);
    f->max = n_lat ? lat[n_lat - 1] : 0;
    rc = 0;
out_loads:
    for (int i = 0; i < started; i++)
        stop_load(&lp[i]);
out_daemon:
    kill(d, SIGTERM);
    waitpid(d, NULL, 0);
out_free:
    free(argv);
    free(lat);
    free(lp);
    return rc;
}

int
w_hub_run(bench_entry *e)
{
    hub_args a;
    hub_figs f;
    bench_res res;
    char why[300] = "", load[128] = "?";
    int total = g_opts.quick ? 500 : 10000;
    FILE *la;

    strata_bin = prog("STRATA_BIN", STRATA_CLI, "strata");
    hubload_bin = prog("STRATA_HUBLOAD", STRATA_HUBLOAD, "strata-hubload");
    if (strata_bin == NULL || hubload_bin == NULL) {
        e->status = 1; /* not run, as peers without node */
        snprintf(e->reason, sizeof e->reason, "not run: no %s (set %s)",
                 strata_bin == NULL ? "strata" : "strata-hubload",
                 strata_bin == NULL ? "STRATA_BIN" : "STRATA_HUBLOAD");
        return 0;
    }
    memset(&a, 0, sizeof a);
    a.subs = g_opts.quick ? 100 : 1000;
    a.procs = g_opts.quick ? 2 : 4;
    if ((la = fopen("/proc/loadavg", "r")) != NULL) {
        if (fgets(load, sizeof load, la) != NULL)
            load[strcspn(load, "\n")] = '\0';
        fclose(la);
    }
    bench_log("hub: %d sessions (%d subscribers) from %d processes to one "
              "strata serve", total, a.subs, a.procs);
    if (bench_subdir(a.dir, sizeof a.dir, "hub") < 0) {
        entry_failed(e, "cannot create hub dir");
        return -1;
    }
    if (bench_run_child(&res, setup_child, &a) < 0) {
        entry_failed(e, "hub setup: %s", res.err);
        bench_rmtree(a.dir);
        return -1;
    }
    if (hub_measure(&a, total, &f, why, sizeof why) < 0) {
        entry_failed(e, "hub: %s", why);
        bench_rmtree(a.dir);
        return -1;
    }
    bench_rmtree(a.dir);
    double per = f.live > 0 ? (f.rssn - f.rss0) / (double)f.live : 0;
    double per_anon = f.live > 0 ? (f.anonn - f.anon0) / (double)f.live : 0;

    entry_int(e, "sessions", (uint64_t)total);
    entry_int(e, "subscribers", (uint64_t)a.subs);
    entry_int(e, "load_processes", (uint64_t)a.procs);
    entry_int(e, "peers_connected", (uint64_t)f.live);
    entry_int(e, "peers_authenticated", (uint64_t)f.connected);
    entry_num(e, "target_peers_connected", total);
    entry_num(e, "connect_seconds", f.connect_s);
    entry_num(e, "rss_kib_idle_daemon", f.rss0);
    entry_num(e, "rss_kib_with_sessions", f.rssn);
    entry_num(e, "rss_per_idle_session_kib", per);
    entry_num(e, "rss_anon_per_idle_session_kib", per_anon);
    entry_num(e, "target_rss_per_idle_session_kib", 64);
    entry_num(e, "fanout_p50_ms", f.p50);
    entry_num(e, "fanout_p99_ms", f.p99);
    entry_num(e, "fanout_max_ms", f.max);
    entry_int(e, "fanout_rounds", (uint64_t)rounds());
    entry_int(e, "fanout_received", (uint64_t)f.fan_got);
    entry_int(e, "fanout_expected", (uint64_t)f.fan_expected);
    entry_num(e, "target_fanout_p99_ms", 1000);
    /* CPU, which a loaded machine does not inflate the way it does the
     * latencies: what the daemon and the clients spend per fanout round
     * (the round's 200 ms pause included: idle upkeep) */
    entry_num(e, "daemon_cpu_share_idle", f.daemon_idle_cpu);
    entry_num(e, "daemon_cpu_ms_per_fanout_round", f.daemon_fan_cpu * 1e3);
    entry_num(e, "load_cpu_ms_per_fanout_round", f.load_fan_cpu * 1e3);
    entry_obj(e, "reference");
    entry_str(e, "name", "fanout_one_subscriber");
    entry_str(e, "what", "the same commit reaching one subscriber, with "
                         "only the writer and it connected (same daemon, "
                         "before the load)");
    entry_num(e, "p50_ms", f.ref_p50);
    entry_num(e, "p99_ms", f.ref_p99);
    entry_end(e);
    entry_num(e, "ratio_p99_vs_one_subscriber",
              f.ref_p99 > 0 ? f.p99 / f.ref_p99 : 0);
    entry_str(e, "loadavg", load);
    entry_row(e, "%-12s %ld of %d sessions connected (%.1f s); %.1f KiB "
                 "RSS per idle session (target <= 64)",
              "hub", f.live, total, f.connect_s, per);
    entry_row(e, "%-12s   fanout to %d subscribers: p50 %.0f ms, p99 %.0f "
                 "ms (target < 1000), %ld of %ld; one subscriber alone: "
                 "p50 %.0f ms, p99 %.0f ms",
              "", a.subs, f.p50, f.p99, f.fan_got, f.fan_expected,
              f.ref_p50, f.ref_p99);
    entry_row(e, "%-12s   daemon CPU: %.0f%% of a core holding them idle, "
                 "%.0f ms per fanout round; clients %.0f ms per round",
              "", f.daemon_idle_cpu * 100, f.daemon_fan_cpu * 1e3,
              f.load_fan_cpu * 1e3);
    /* short of a target is a figure, not a failure: the entry keeps
     * every key (a subscriber that missed a round counted as 5 s) */
    entry_int(e, "all_connected", f.live >= total);
    entry_int(e, "fanout_complete", f.fan_got >= f.fan_expected);
    return 0;
}
