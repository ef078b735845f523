/*
 * util.c: clock, ids, temp dirs, forked children and peak RSS.
 *
 * Peak RSS: a forked child starts as a copy of the parent, so its peak
 * would include whatever the parent holds. The child therefore resets
 * its high-water mark first (writing "5" to /proc/self/clear_refs sets
 * VmHWM to the current RSS) and reports VmHWM at its end; the parent
 * holds no workload data, so the figure is the workload's own.
 */
#define _XOPEN_SOURCE 700 /* nftw */
#include "bench.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>

void
bench_log(const char *fmt, ...)
{
    va_list ap;

    if (!g_opts.verbose)
        return;
    fputs("# ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
}

double
bench_user_seconds(void)
{
    struct rusage ru;

    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6;
}

double
bench_cpu_seconds(void)
{
    struct rusage ru;

    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

double
bench_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

size_t
bench_doc_id(char *buf, unsigned width, uint64_t n)
{
    buf[0] = 'd';
    for (unsigned i = width; i > 0; i--) {
        buf[i] = (char)('0' + n % 10);
        n /= 10;
    }
    buf[width + 1] = 0;
    return width + 1;
}

/* ---- files ---- */

int
bench_subdir(char *out, size_t size, const char *name)
{
    if ((size_t)snprintf(out, size, "%s/%s", g_opts.base, name) >= size)
        return -1;
    bench_rmtree(out);
    return mkdir(out, 0700) == 0 ? 0 : -1;
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void
bench_rmtree(const char *path)
{
    nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int
copy_file(const char *from, const char *to)
{
    static char buf[1 << 20];
    int in = open(from, O_RDONLY), out;
    ssize_t n;
    int rc = 0;

    if (in < 0)
        return -1;
    out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (out < 0) {
        close(in);
        return -1;
    }
    while ((n = read(in, buf, sizeof buf)) > 0) {
        char *p = buf;
        while (n > 0) {
            ssize_t w = write(out, p, (size_t)n);
            if (w < 0) {
                rc = -1;
                goto done;
            }
            p += w;
            n -= w;
        }
    }
    if (n < 0)
        rc = -1;
done:
    close(in);
    if (close(out) != 0)
        rc = -1;
    return rc;
}

int
bench_copy_dir(const char *from, const char *to)
{
    DIR *d;
    struct dirent *de;
    char a[1024], b[1024];
    int rc = 0;

    bench_rmtree(to);
    if (mkdir(to, 0700) != 0)
        return -1;
    d = opendir(from);
    if (d == NULL)
        return -1;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        struct stat st;
        if (strcmp(de->d_name, "lock.mdb") == 0 || de->d_name[0] == '.')
            continue;
        snprintf(a, sizeof a, "%s/%s", from, de->d_name);
        snprintf(b, sizeof b, "%s/%s", to, de->d_name);
        if (stat(a, &st) == 0 && S_ISREG(st.st_mode))
            rc = copy_file(a, b);
    }
    closedir(d);
    return rc;
}

uint64_t
bench_dir_bytes(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    uint64_t total = 0;
    char p[1024];

    if (d == NULL)
        return 0;
    while ((de = readdir(d)) != NULL) {
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        if (stat(p, &st) == 0 && S_ISREG(st.st_mode))
            total += (uint64_t)st.st_size;
    }
    closedir(d);
    return total;
}

/* Bytes the block device holding @p path has written since boot: the
 * sectors field of /sys/dev/block/MAJ:MIN/stat (512-byte units, for a
 * partition as for a whole disk). The whole device's count: other
 * processes' writes land in it too. -1 when there is none (tmpfs,
 * another OS). */
double
bench_disk_written(const char *path)
{
    struct stat st;
    char p[128], buf[512];
    unsigned long long f[7];
    FILE *fp;
    int n;

    if (stat(path, &st) != 0 || major(st.st_dev) == 0)
        return -1;
    snprintf(p, sizeof p, "/sys/dev/block/%u:%u/stat", major(st.st_dev),
             minor(st.st_dev));
    if ((fp = fopen(p, "r")) == NULL)
        return -1;
    n = fgets(buf, sizeof buf, fp) == NULL
            ? 0
            : sscanf(buf, "%llu %llu %llu %llu %llu %llu %llu", &f[0], &f[1],
                     &f[2], &f[3], &f[4], &f[5], &f[6]);
    fclose(fp);
    return n == 7 ? (double)f[6] * 512.0 : -1;
}

/* ---- RSS ---- */

double
bench_status_kib(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    size_t fl = strlen(field);
    double v = 0;

    if (f == NULL)
        return 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, field, fl) == 0 && line[fl] == ':') {
            v = strtod(line + fl + 1, NULL);
            break;
        }
    }
    fclose(f);
    return v;
}

void
bench_rss_reset(void)
{
    int fd = open("/proc/self/clear_refs", O_WRONLY);

    if (fd >= 0) {
        if (write(fd, "5", 1) != 1) {
            /* older kernels: the peak then includes the parent's pages */
        }
        close(fd);
    }
}

double
bench_rss_peak_kib(void)
{
    return bench_status_kib("VmHWM");
}

double
bench_rss_now_kib(void)
{
    return bench_status_kib("VmRSS");
}

/* ---- children ---- */

int
bench_fail(bench_res *out, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(out->err, sizeof out->err, fmt, ap);
    va_end(ap);
    out->rc = -1;
    return -1;
}

int
bench_run_child(bench_res *out, bench_child_fn fn, void *ctx)
{
    int fds[2], status = 0;
    pid_t pid;
    ssize_t got = 0;

    memset(out, 0, sizeof *out);
    fflush(stdout);
    fflush(stderr);
    if (pipe(fds) != 0)
        return bench_fail(out, "pipe: %s", strerror(errno));
    pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return bench_fail(out, "fork: %s", strerror(errno));
    }
    if (pid == 0) {
        bench_res r;
        const char *p = (const char *)&r;
        size_t left = sizeof r;

        close(fds[0]);
        memset(&r, 0, sizeof r);
        bench_rss_reset();
        r.base_rss_kib = bench_rss_now_kib();
        if (fn(&r, ctx) < 0 && r.rc == 0)
            r.rc = -1;
        r.peak_rss_kib = bench_rss_peak_kib();
        while (left > 0) {
            ssize_t w = write(fds[1], p, left);
            if (w <= 0)
                _exit(3);
            p += w;
            left -= (size_t)w;
        }
        _exit(0);
    }
    close(fds[1]);
    while ((size_t)got < sizeof *out) {
        ssize_t n = read(fds[0], (char *)out + got, sizeof *out - (size_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += n;
    }
    close(fds[0]);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if ((size_t)got != sizeof *out) {
        memset(out, 0, sizeof *out);
        if (WIFSIGNALED(status))
            return bench_fail(out, "child killed by signal %d",
                              WTERMSIG(status));
        return bench_fail(out, "child exited with status %d",
                          WEXITSTATUS(status));
    }
    if (out->rc != 0) {
        if (out->err[0] == 0)
            snprintf(out->err, sizeof out->err, "child failed");
        return -1;
    }
    return 0;
}

/* ---- RSS sampler ---- */

struct bench_sampler {
    pthread_t th;
    atomic_int stop;
    double anon_max, file_max;
};

/* "FIELD:   N kB" in the status text @p buf; 0 if absent. */
static double
status_field(const char *buf, const char *field)
{
    const char *p = strstr(buf, field);

    return p != NULL ? strtod(p + strlen(field), NULL) : 0;
}

/* One read of /proc/self/status per sample, through a descriptor kept
 * open: the sampler shares the measured process's CPUs, and opening
 * the file twice a millisecond cost the measured work more than the
 * read itself. */
static void *
sampler_main(void *arg)
{
    bench_sampler *s = arg;
    struct timespec ms = { 0, 1000000 };
    int fd = open("/proc/self/status", O_RDONLY);
    char buf[4096];

    while (fd >= 0 && !atomic_load(&s->stop)) {
        ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
        double a, f;

        if (n <= 0)
            break;
        buf[n] = 0;
        a = status_field(buf, "\nRssAnon:");
        f = status_field(buf, "\nRssFile:");
        if (a > s->anon_max)
            s->anon_max = a;
        if (f > s->file_max)
            s->file_max = f;
        nanosleep(&ms, NULL);
    }
    if (fd >= 0)
        close(fd);
    return NULL;
}

bench_sampler *
bench_sampler_start(void)
{
    bench_sampler *s = calloc(1, sizeof *s);

    if (s == NULL)
        return NULL;
    atomic_init(&s->stop, 0);
    if (pthread_create(&s->th, NULL, sampler_main, s) != 0) {
        free(s);
        return NULL;
    }
    return s;
}

void
bench_sampler_stop(bench_sampler *s, double *anon_kib, double *file_kib)
{
    if (s == NULL)
        return;
    atomic_store(&s->stop, 1);
    pthread_join(s->th, NULL);
    *anon_kib = s->anon_max;
    *file_kib = s->file_max;
    free(s);
}
