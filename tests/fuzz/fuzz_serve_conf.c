/*
 * fuzz_serve_conf.c: a `strata serve --config FILE` file -> the daemon's
 * settings reader (cli/serve_conf.c), no replica or socket needed.
 *
 * Input: the file's bytes, written to a file in the target's private
 * directory and read with `serve --config=FILE --listen=127.0.0.1:0`
 * on the command line (so a file without a listen line still loads).
 * Checked: no crash, leak or sanitizer report; only CLI_OK or
 * CLI_EUSAGE, and a usage error says why; a loaded config has 1..64
 * replicas and at most 64 peers, none empty or repeated, a listen,
 * metrics and peer addresses that split as HOST:PORT, a log level of 0
 * to 3, a backup dir exactly when backups are scheduled, and numbers in
 * their ranges; reading the same file again gives the same settings.
 *
 * Seeds: `STRATA_FUZZ_SEEDS=DIR fuzz_serve_conf` writes the corpus (the
 * shipped example, every key, bad values, a line of 5,000 bytes, NULs)
 * into DIR and exits. (A file over the 1 MiB limit is longer than the
 * inputs the fuzzer makes: tests/integration/test_serve_ops.sh has one.)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* the code under test, compiled into this target (tests/fuzz/
 * CMakeLists.txt links jansson for it) */
#include "../../cli/args.c"
#include "../../cli/hostport.c"
#include "../../cli/serve_conf.c"
#include "../../cli/util.c"
#include "../../cli/value.c"
#include "../../cli/fault.c"
#include "support/fuzz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[512], file[600];

static const cli_cmd cmd = { "serve", NULL, "serve", "fuzz", NULL };

static void
check_list(char *const *list, size_t n, size_t max)
{
    if (n > max)
        abort();
    for (size_t i = 0; i < n; i++) {
        if (list[i] == NULL || list[i][0] == '\0')
            abort();
        for (size_t j = 0; j < i; j++)
            if (strcmp(list[i], list[j]) == 0)
                abort();
    }
}

static void
check_hp(const char *s)
{
    char h[256], p[16];

    if (s != NULL && cli_split_hostport(h, sizeof h, p, sizeof p, s) < 0)
        abort();
}

static int
same_str(const char *a, const char *b)
{
    return (a == NULL) == (b == NULL) && (a == NULL || strcmp(a, b) == 0);
}

static void
same_conf(const serve_conf *a, const serve_conf *b)
{
    if (a->n_dirs != b->n_dirs || a->n_peers != b->n_peers ||
        !same_str(a->listen, b->listen) || !same_str(a->metrics, b->metrics) ||
        !same_str(a->backup_dir, b->backup_dir) ||
        a->backup_every != b->backup_every ||
        a->backup_keep != b->backup_keep ||
        a->max_epochs_behind != b->max_epochs_behind ||
        a->max_conns != b->max_conns ||
        a->max_handshakes != b->max_handshakes ||
        a->max_handshakes_per_addr != b->max_handshakes_per_addr ||
        a->idle_timeout_s != b->idle_timeout_s ||
        a->log_level != b->log_level || a->log_format != b->log_format ||
        a->quiet != b->quiet)
        abort();
    for (size_t i = 0; i < a->n_dirs; i++)
        if (strcmp(a->dirs[i], b->dirs[i]) != 0)
            abort();
    for (size_t i = 0; i < a->n_peers; i++)
        if (strcmp(a->peers[i], b->peers[i]) != 0)
            abort();
}

static int
load(serve_conf *c)
{
    char opt[700], why[1200];
    char *argv[] = { "serve", opt, "--listen=127.0.0.1:0", NULL };
    int rc;

    snprintf(opt, sizeof opt, "--config=%s", file);
    rc = serve_conf_load(c, &cmd, 3, argv, why, sizeof why);
    if (rc != CLI_OK && rc != CLI_EUSAGE)
        abort(); /* the file is there and readable */
    if (rc != CLI_OK && why[0] == '\0')
        abort();
    return rc;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    serve_conf a, b;
    FILE *f = fopen(file, "wb");
    int rc;

    if (f == NULL || fwrite(data, 1, size, f) != size || fclose(f) != 0)
        abort();
    rc = load(&a);
    if (rc == CLI_OK) {
        if (a.n_dirs == 0 || a.listen == NULL)
            abort();
        check_list(a.dirs, a.n_dirs, SERVE_MAX_DIRS);
        check_list(a.peers, a.n_peers, SERVE_MAX_PEERS);
        check_hp(a.listen);
        check_hp(a.metrics);
        for (size_t i = 0; i < a.n_peers; i++)
            check_hp(a.peers[i]);
        if (a.log_level < 0 || a.log_level > 3 ||
            (a.log_format != SERVE_LOG_TEXT &&
             a.log_format != SERVE_LOG_JSON) ||
            (a.backup_dir == NULL) != (a.backup_every == 0) ||
            a.backup_every < 0 || a.backup_keep < 0 ||
            a.max_epochs_behind < -1 || a.max_conns < 0 ||
            a.max_handshakes < 0 || a.max_handshakes_per_addr < 0 ||
            a.idle_timeout_s < 0 ||
            a.idle_timeout_s > 86400)
            abort();
        if (load(&b) != CLI_OK)
            abort();
        same_conf(&a, &b);
        serve_conf_free(&b);
    }
    serve_conf_free(&a);
    return 0;
}

static void
remove_dir(void)
{
    fuzz_dir_remove(dir);
}

static void
seed(const char *out, const char *name, const char *text)
{
    fuzz_put_seed(out, name, text, strlen(text));
}

static void
write_seeds(const char *out)
{
    static const char nul[] = "space = A\0B\nlisten = 1.2.3.4:5\n";
    char *p;

    seed(out, "example",
         "# /etc/strata/strata.conf\n"
         "space = /var/lib/strata/notes\n"
         "listen = 0.0.0.0:7400\n"
         "# peer = other.example:7400\n"
         "metrics = 127.0.0.1:9464\n"
         "backup-dir = /var/lib/strata/backups\n"
         "backup-every = 3600\nbackup-keep = 24\n"
         "log-level = info\nlog-format = text\n");
    seed(out, "every_key",
         "space = A\nspace = B\nlisten = [::1]:7400\npeer = a:1\n"
         "peer = [::1]:2\nmetrics = *:9464\nlog-level = debug\n"
         "log-format = json\nquiet = true\nbackup-dir = bk\n"
         "backup-every = 1\nbackup-keep = 0\nmax-epochs-behind = 3\n"
         "max-conns = 10\nmax-handshakes = 5\nidle-timeout = 86400\n");
    seed(out, "bad_values",
         "space = A\nmax-conns = 0\nidle-timeout = -1\n"
         "log-level = loud\nbackup-every = 99999999999999999999\n");
    seed(out, "no_equals", "space A\n");
    seed(out, "unknown_key", "space = A\nlisten2 = x:1\n");
    seed(out, "config_in_config", "config = other.conf\n");
    seed(out, "bad_address", "space = A\nmetrics = nocolon\n");
    seed(out, "backup_alone", "space = A\nbackup-dir = x\n");
    seed(out, "crlf_and_blanks", "\r\n  # c\r\n\tspace =  A \r\n\n");
    seed(out, "empty", "");
    seed(out, "duplicates", "space = A\nspace = A\npeer = h:1\npeer = h:1\n");
    fuzz_put_seed(out, "nul", nul, sizeof nul - 1);
    p = malloc(5001);
    if (p == NULL)
        exit(1);
    memset(p, 'a', 5000);
    memcpy(p, "space = ", 8);
    p[5000] = '\n';
    fuzz_put_seed(out, "long_line", p, 5001);
    free(p);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *out = getenv("STRATA_FUZZ_SEEDS");

    (void)argc;
    (void)argv;
    if (out != NULL && *out != '\0') {
        write_seeds(out);
        exit(0);
    }
    if (fuzz_dir_make(dir, sizeof dir, NULL, "serve_conf") != 0)
        abort();
    atexit(remove_dir);
    snprintf(file, sizeof file, "%s/strata.conf", dir);
    return 0;
}
