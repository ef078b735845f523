/*
 * cmd_serve.c: `strata serve DIR... --listen HOST:PORT [--peer HP]...`:
 * the sync daemon for one or more replicas, with optional scheduled
 * backups. SIGTERM and SIGINT stop it cleanly: every merge is its own
 * committed txn, so nothing acknowledged is lost.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "crdtnet/daemon.h"

#define MAX_DIRS 64
#define MAX_PEERS 64

static crdtnet_daemon *running;
static volatile sig_atomic_t stopping;

static void
on_signal(int sig)
{
    (void)sig;
    stopping = 1;
    if (running != NULL)
        crdtnet_daemon_stop(running); /* async-signal-safe */
}

typedef struct {
    crdt_replica **reps;
    size_t n;
    const char *dir;
    long every_s;
    long keep;
} backup_plan;

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Keep the newest @p keep backups of the space with hex prefix @p pre. */
static void
prune(const char *dir, const char *pre, long keep)
{
    char *names[4096];
    size_t n = 0;
    struct dirent *de;
    DIR *d = opendir(dir);

    if (d == NULL)
        return;
    while ((de = readdir(d)) != NULL && n < 4096) {
        size_t l = strlen(de->d_name);
        if (strncmp(de->d_name, pre, strlen(pre)) == 0 && l > 7 &&
            strcmp(de->d_name + l - 7, ".strata") == 0)
            names[n++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str); /* names sort by time */
    for (size_t i = 0; i < n; i++) {
        if ((long)(n - i) > keep && names[i] != NULL) {
            char p[4200];
            snprintf(p, sizeof p, "%s/%s", dir, names[i]);
            unlink(p);
        }
        free(names[i]);
    }
}

static void *
backup_loop(void *arg)
{
    backup_plan *b = arg;
    long waited_ms = 0;

    while (!stopping) {
        struct timespec ts = { 0, 200 * 1000000L };
        nanosleep(&ts, NULL);
        waited_ms += 200;
        if (waited_ms < b->every_s * 1000)
            continue;
        waited_ms = 0;
        for (size_t i = 0; i < b->n && !stopping; i++) {
            unsigned char space[CRDT_SPACE_ID_BYTES];
            char hex[2 * CRDT_SPACE_ID_BYTES + 1], file[4200], pre[40];
            struct timespec now;
            crdt_backup_info info;
            int rc;

            crdt_replica_space_id(b->reps[i], space);
            crdt_hex(hex, space, sizeof space);
            clock_gettime(CLOCK_REALTIME, &now);
            snprintf(pre, sizeof pre, "%.16s-", hex);
            snprintf(file, sizeof file, "%s/%s%013lld.strata", b->dir, pre,
                     (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000);
            rc = crdt_backup(&info, b->reps[i], file);
            if (rc < 0)
                fprintf(stderr, "strata serve: backup of %s failed: %s\n",
                        crdt_replica_path(b->reps[i]), crdt_strerror(rc));
            else
                fprintf(stderr, "strata serve: backup %s (epoch %llu, "
                        "%llu ops)\n", file,
                        (unsigned long long)info.epoch_number,
                        (unsigned long long)info.ops_total);
            prune(b->dir, pre, b->keep);
        }
    }
    return NULL;
}

int
cmd_serve(const cli_cmd *cmd, int argc, char **argv)
{
    const char *dirs[MAX_DIRS], *peers[MAX_PEERS], *listen = NULL;
    const char *backup_dir = NULL;
    long every = 0, keep = 5;
    long long n;
    size_t n_dirs = 0, n_peers = 0, opened = 0;
    crdt_replica *reps[MAX_DIRS];
    crdtnet_daemon_options o = CRDTNET_DAEMON_OPTIONS_INIT;
    crdtnet_daemon *d = NULL;
    char host[256], port[16];
    backup_plan plan;
    pthread_t th;
    int have_thread = 0, rc, code = CLI_OK;

    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;

        if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
            cli_print_help(stdout, cmd);
            return CLI_OK;
        }
        if (!strcmp(s, "--listen") || !strcmp(s, "--peer") ||
            !strcmp(s, "--backup-dir") || !strcmp(s, "--backup-every") ||
            !strcmp(s, "--backup-keep") || !strcmp(s, "--max-epochs-behind")) {
            if (val == NULL)
                return cli_usage(cmd, "%s needs a value", s);
            i++;
            if (!strcmp(s, "--listen")) {
                listen = val;
            } else if (!strcmp(s, "--peer")) {
                if (n_peers == MAX_PEERS)
                    return cli_usage(cmd, "at most %d peers", MAX_PEERS);
                peers[n_peers++] = val;
            } else if (!strcmp(s, "--backup-dir")) {
                backup_dir = val;
            } else if (cli_parse_int64(&n, val) < 0 || n < 0 ||
                       n > 100000000) {
                return cli_usage(cmd, "bad value for %s", s);
            } else if (!strcmp(s, "--backup-every")) {
                every = (long)n;
            } else if (!strcmp(s, "--backup-keep")) {
                keep = (long)n;
            } else {
                o.conn.policy.max_epochs_behind = (uint32_t)n;
            }
            continue;
        }
        if (!strcmp(s, "--quiet")) {
            o.quiet = 1;
            continue;
        }
        if (s[0] == '-' && s[1] == '-')
            return cli_usage(cmd, "unknown option %s", s);
        if (n_dirs == MAX_DIRS)
            return cli_usage(cmd, "at most %d replicas", MAX_DIRS);
        dirs[n_dirs++] = s;
    }
    if (n_dirs == 0 || listen == NULL)
        return cli_usage(cmd, "need at least one DIR and --listen");
    if (cli_split_hostport(host, sizeof host, port, sizeof port, listen) < 0)
        return cli_usage(cmd, "bad address %s (want HOST:PORT)", listen);
    for (size_t i = 0; i < n_peers; i++) {
        char h2[256], p2[16];
        if (cli_split_hostport(h2, sizeof h2, p2, sizeof p2, peers[i]) < 0)
            return cli_usage(cmd, "bad peer address %s", peers[i]);
    }
    if ((backup_dir == NULL) != (every == 0))
        return cli_usage(cmd, "--backup-dir and --backup-every go together");
    if (backup_dir != NULL && mkdir(backup_dir, 0700) != 0 && errno != EEXIST)
        return cli_error(CLI_EIO, "serve", "cannot create %s: %s", backup_dir,
                         strerror(errno));

    /* every page is checked at open (a daemon opens once); a corrupt
     * replica is left out with its error line and the others are served */
    for (size_t i = 0; i < n_dirs; i++) {
        rc = cli_open_ex(&reps[opened], dirs[i],
                         CLI_OPEN_WRITE | CLI_OPEN_CHECK_ALL);
        if (rc == CLI_EDATA && n_dirs > 1) {
            fprintf(stderr, "strata serve: not serving %s: its replica is "
                    "corrupt\n", dirs[i]);
            code = rc;
            continue;
        }
        if (rc != CLI_OK) {
            code = rc;
            goto out;
        }
        opened++;
    }
    if (opened == 0)
        goto out;
    code = CLI_OK;
    rc = crdtnet_daemon_new(&d, reps, opened, host, port, peers, n_peers, &o);
    if (rc < 0) {
        code = cli_error(cli_exit_code(rc), "serve", "cannot listen on %s: %s",
                         listen, crdt_strerror(rc));
        goto out;
    }
    running = d;
    {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
        sa.sa_handler = SIG_IGN;
        sigaction(SIGPIPE, &sa, NULL);
    }
    if (backup_dir != NULL) {
        plan.reps = reps;
        plan.n = opened;
        plan.dir = backup_dir;
        plan.every_s = every;
        plan.keep = keep > 0 ? keep : 1;
        have_thread = pthread_create(&th, NULL, backup_loop, &plan) == 0;
    }
    rc = crdtnet_daemon_run(d);
    stopping = 1;
    if (have_thread)
        pthread_join(th, NULL);
    if (rc < 0)
        code = cli_fail("serve", rc);
out:
    running = NULL;
    crdtnet_daemon_free(d);
    for (size_t i = 0; i < opened; i++)
        crdt_replica_close(reps[i]);
    return code;
}
