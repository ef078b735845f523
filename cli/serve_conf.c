/*
 * serve_conf.c: the settings of `strata serve`, from the command line
 * and from a config file of "key = value" lines.
 *
 * One table lists every option; the config file takes the same names
 * without the dashes, plus "space = DIR" for a replica. The command line
 * wins over the file for single values; DIRs and peers of both are
 * served. The file is read again on SIGHUP (cmd_serve.c), with the same
 * command line on top.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "serve.h"

#define CONF_MAX_BYTES (1024 * 1024) /* a config file is small */
#define CONF_LINE_MAX 4096

enum { K_STR, K_LONG, K_PEER, K_SPACE, K_LEVEL, K_FORMAT, K_FLAG, K_CONFIG };

typedef struct {
    const char *name; /* option without "--", config key */
    int has_arg;
    int kind;
    size_t off; /* K_STR: char *, K_LONG: long, in serve_conf */
    long min, max;
} serve_opt;

#define STR(f) K_STR, offsetof(serve_conf, f), 0, 0
#define LONG(f, lo, hi) K_LONG, offsetof(serve_conf, f), lo, hi

static const serve_opt opts[] = {
    { "listen", 1, STR(listen) },
    { "peer", 1, K_PEER, 0, 0, 0 },
    { "space", 1, K_SPACE, 0, 0, 0 },
    { "config", 1, K_CONFIG, 0, 0, 0 },
    { "metrics", 1, STR(metrics) },
    { "log-level", 1, K_LEVEL, 0, 0, 0 },
    { "log-format", 1, K_FORMAT, 0, 0, 0 },
    { "quiet", 0, K_FLAG, 0, 0, 0 },
    { "backup-dir", 1, STR(backup_dir) },
    { "backup-every", 1, LONG(backup_every, 0, 100000000) },
    { "backup-keep", 1, LONG(backup_keep, 0, 100000000) },
    { "max-epochs-behind", 1, LONG(max_epochs_behind, 0, 100000000) },
    { "max-conns", 1, LONG(max_conns, 1, 100000) },
    { "max-handshakes", 1, LONG(max_handshakes, 1, 100000) },
    { "max-handshakes-per-addr", 1,
      LONG(max_handshakes_per_addr, 1, 100000) },
    { "idle-timeout", 1, LONG(idle_timeout_s, 1, 86400) },
    { NULL, 0, 0, 0, 0, 0 }
};

const char serve_help[] =
    "  Serves every space given, pushes local changes (also those written\n"
    "  by other processes) to connected peers within a second, and keeps\n"
    "  a live session to each --peer, reconnecting with backoff.\n"
    "  Options (also --name=value):\n"
    "  --listen HOST:PORT       address to accept peers on (required)\n"
    "  --peer HOST:PORT         keep a live session with it (repeatable)\n"
    "  --config FILE            read settings from FILE (see below)\n"
    "  --metrics HOST:PORT      serve /metrics (Prometheus) and /healthz\n"
    "  --log-level LEVEL        error, warn, info (default) or debug\n"
    "  --log-format FORMAT      text (default) or json: one object a line\n"
    "  --quiet                  log nothing\n"
    "  --backup-dir DIR         take backups into DIR ...\n"
    "  --backup-every SECONDS   ... this often (both or neither)\n"
    "  --backup-keep N          keep the newest N per space (default 5)\n"
    "  --max-epochs-behind N    sync policy: reject a replica more than\n"
    "                           N epochs behind (default 0: no limit)\n"
    "  --max-conns N            accepted connections at once (16384)\n"
    "  --max-handshakes N       of them not yet authenticated (128)\n"
    "  --max-handshakes-per-addr N  of those from one source address (32)\n"
    "  --idle-timeout SECONDS   close a silent connection (30)\n"
    "  The config file has one \"key = value\" a line, keys as the options\n"
    "  without dashes, \"space = DIR\" for a replica, '#' comment lines.\n"
    "  The command line wins; DIRs and peers of both are served.\n"
    "  serve DIR... --stdio [--quiet]: serve ONE session on stdin/stdout\n"
    "  instead (what `strata sync DIR --via 'ssh HOST strata serve DIR\n"
    "  --stdio'` runs); its log line goes to stderr.\n"
    "  SIGHUP reads the file again: logging, backups, the spaces served,\n"
    "  the peers, the limits of new sessions and the listen and metrics\n"
    "  addresses change at once (an address that cannot be bound is\n"
    "  logged and the old one stays). SIGTERM or SIGINT stop the daemon\n"
    "  cleanly.\n";

static const serve_opt *
find(const char *name, size_t len)
{
    for (const serve_opt *o = opts; o->name != NULL; o++)
        if (strlen(o->name) == len && strncmp(o->name, name, len) == 0)
            return o;
    return NULL;
}

int
serve_log_level_parse(const char *s)
{
    static const char *const names[] = { "error", "warn", "info", "debug" };

    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

static int
say(char *why, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
say(char *why, size_t size, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, size, fmt, ap);
    va_end(ap);
    return CLI_EUSAGE;
}

/* Add @p s to a list unless it is there already. */
static int
add_unique(char **list, size_t *n, size_t max, const char *s,
           const char *what, char *why, size_t why_size)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp(list[i], s) == 0)
            return CLI_OK;
    if (*n == max)
        return say(why, why_size, "at most %zu %s", max, what);
    if ((list[*n] = strdup(s)) == NULL)
        return say(why, why_size, "out of memory");
    (*n)++;
    return CLI_OK;
}

/* Apply one setting; @p where names it in errors ("--x" or "FILE:N"). */
static int
apply(serve_conf *c, const serve_opt *o, const char *val, int from_file,
      const char *where, char *why, size_t why_size)
{
    long long n;
    char **sp;

    if (o->has_arg && val[0] == '\0')
        return say(why, why_size, "%s: empty value", where);
    switch (o->kind) {
    case K_STR:
        sp = (char **)((char *)c + o->off);
        free(*sp);
        if ((*sp = strdup(val)) == NULL)
            return say(why, why_size, "out of memory");
        return CLI_OK;
    case K_LONG:
        if (cli_parse_int64(&n, val) < 0 || n < o->min || n > o->max)
            return say(why, why_size, "%s: bad value \"%s\" (want %ld to "
                       "%ld)", where, val, o->min, o->max);
        *(long *)((char *)c + o->off) = (long)n;
        return CLI_OK;
    case K_PEER:
        return add_unique(c->peers, &c->n_peers, SERVE_MAX_PEERS, val,
                          "peers", why, why_size);
    case K_SPACE:
        if (!from_file)
            return say(why, why_size, "%s: give DIRs as arguments", where);
        return add_unique(c->dirs, &c->n_dirs, SERVE_MAX_DIRS, val,
                          "replicas", why, why_size);
    case K_LEVEL:
        if ((c->log_level = serve_log_level_parse(val)) < 0)
            return say(why, why_size, "%s: bad level \"%s\" (want error, "
                       "warn, info or debug)", where, val);
        return CLI_OK;
    case K_FORMAT:
        if (strcmp(val, "text") == 0)
            c->log_format = SERVE_LOG_TEXT;
        else if (strcmp(val, "json") == 0)
            c->log_format = SERVE_LOG_JSON;
        else
            return say(why, why_size, "%s: bad format \"%s\" (want text "
                       "or json)", where, val);
        return CLI_OK;
    case K_FLAG:
        if (!from_file || strcmp(val, "true") == 0 || strcmp(val, "1") == 0)
            c->quiet = 1;
        else if (strcmp(val, "false") == 0 || strcmp(val, "0") == 0)
            c->quiet = 0;
        else
            return say(why, why_size, "%s: want true or false, not \"%s\"",
                       where, val);
        return CLI_OK;
    default: /* K_CONFIG: handled by the caller */
        return say(why, why_size, "%s: a config file cannot name another",
                   where);
    }
}

static char *
trim(char *s)
{
    char *e;

    while (*s == ' ' || *s == '\t')
        s++;
    e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
        *--e = '\0';
    return s;
}

/* Read the config file @p path into @p c: at most CONF_MAX_BYTES, read
 * whole, then split into lines (no NUL bytes: a NUL would end a value
 * silently). */
static int
load_file(serve_conf *c, const char *path, char *why, size_t why_size)
{
    char where[1100], *buf, *line, *next;
    FILE *f = fopen(path, "rb");
    size_t len;
    int lineno = 0, rc = CLI_OK;

    if (f == NULL) {
        snprintf(why, why_size, "cannot read config %s: %s", path,
                 strerror(errno));
        return errno == ENOENT ? CLI_ENOTFOUND : CLI_EIO;
    }
    buf = malloc(CONF_MAX_BYTES + 2);
    if (buf == NULL) {
        fclose(f);
        return say(why, why_size, "out of memory");
    }
    len = fread(buf, 1, CONF_MAX_BYTES + 1, f);
    if (ferror(f)) {
        snprintf(why, why_size, "cannot read config %s: %s", path,
                 strerror(errno));
        rc = CLI_EIO;
    } else if (len > CONF_MAX_BYTES) {
        rc = say(why, why_size, "%.1024s: config file larger than %d bytes",
                 path, CONF_MAX_BYTES);
    } else if (memchr(buf, '\0', len) != NULL) {
        rc = say(why, why_size, "%.1024s: a NUL byte in a config file",
                 path);
    }
    fclose(f);
    buf[len] = '\0';
    for (line = buf; rc == CLI_OK && line < buf + len; line = next) {
        char *k, *v, *eq, *nl = strchr(line, '\n');
        const serve_opt *o;

        next = nl != NULL ? nl + 1 : buf + len;
        if (nl != NULL)
            *nl = '\0';
        lineno++;
        snprintf(where, sizeof where, "%.1024s:%d", path, lineno);
        if (strlen(line) > CONF_LINE_MAX) {
            rc = say(why, why_size, "%s: line longer than %d bytes", where,
                     CONF_LINE_MAX);
            break;
        }
        k = trim(line);
        if (k[0] == '\0' || k[0] == '#')
            continue;
        if ((eq = strchr(k, '=')) == NULL) {
            rc = say(why, why_size, "%s: want \"key = value\"", where);
            break;
        }
        *eq = '\0';
        k = trim(k);
        v = trim(eq + 1);
        if ((o = find(k, strlen(k))) == NULL) {
            rc = say(why, why_size, "%s: unknown key \"%.64s\"", where, k);
            break;
        }
        if (v[0] == '\0') {
            rc = say(why, why_size, "%s: %s has no value", where, k);
            break;
        }
        rc = apply(c, o, v, 1, where, why, why_size);
    }
    free(buf);
    return rc;
}

/* Walk the command line: @p pass 0 only finds --config, 1 applies. */
static int
walk_argv(serve_conf *c, int pass, int argc, char **argv, char *why,
          size_t why_size)
{
    int only_pos = 0, rc;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *name, *eq, *val;
        char where[80];
        const serve_opt *o;
        size_t len;

        if (!only_pos && strcmp(a, "--") == 0) {
            only_pos = 1;
            continue;
        }
        if (only_pos || strncmp(a, "--", 2) != 0) {
            if (pass == 1 &&
                (rc = add_unique(c->dirs, &c->n_dirs, SERVE_MAX_DIRS, a,
                                 "replicas", why, why_size)) != CLI_OK)
                return rc;
            continue;
        }
        name = a + 2;
        eq = strchr(name, '=');
        len = eq ? (size_t)(eq - name) : strlen(name);
        snprintf(where, sizeof where, "--%.*s", (int)(len > 64 ? 64 : len),
                 name);
        if ((o = find(name, len)) == NULL || o->kind == K_SPACE)
            return say(why, why_size, "unknown option %s", where);
        if (!o->has_arg) {
            if (eq != NULL)
                return say(why, why_size, "%s takes no value", where);
            val = "";
        } else if (eq != NULL) {
            val = eq + 1;
        } else if (i + 1 < argc) {
            val = argv[++i];
        } else {
            return say(why, why_size, "%s needs a value", where);
        }
        if (o->kind == K_CONFIG) {
            if (pass == 0) {
                free(c->config);
                if ((c->config = strdup(val)) == NULL)
                    return say(why, why_size, "out of memory");
            }
            continue;
        }
        if (pass == 1 &&
            (rc = apply(c, o, val, 0, where, why, why_size)) != CLI_OK)
            return rc;
    }
    return CLI_OK;
}

static int
check_hostport(const char *what, const char *hp, char *why,
               size_t why_size)
{
    char h[256], p[16];

    if (cli_split_hostport(h, sizeof h, p, sizeof p, hp) < 0)
        return say(why, why_size, "bad %saddress %s (want HOST:PORT)",
                   what, hp);
    return CLI_OK;
}

int
serve_conf_load(serve_conf *c, const cli_cmd *cmd, int argc, char **argv,
                char *why, size_t why_size)
{
    int rc;

    memset(c, 0, sizeof *c);
    c->backup_keep = 5;
    c->max_epochs_behind = -1;
    c->log_level = CRDTNET_LOG_INFO;
    why[0] = '\0';
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            cli_print_help(stdout, cmd);
            return CLI_HELP_SHOWN;
        }
    if ((rc = walk_argv(c, 0, argc, argv, why, why_size)) != CLI_OK)
        return rc;
    if (c->config != NULL &&
        (rc = load_file(c, c->config, why, why_size)) != CLI_OK)
        return rc;
    if ((rc = walk_argv(c, 1, argc, argv, why, why_size)) != CLI_OK)
        return rc;
    if (c->n_dirs == 0 || c->listen == NULL)
        return say(why, why_size, "need at least one DIR and --listen");
    if ((rc = check_hostport("", c->listen, why, why_size)) != CLI_OK)
        return rc;
    if (c->metrics != NULL &&
        (rc = check_hostport("metrics ", c->metrics, why, why_size)) !=
            CLI_OK)
        return rc;
    for (size_t i = 0; i < c->n_peers; i++)
        if ((rc = check_hostport("peer ", c->peers[i], why, why_size)) !=
            CLI_OK)
            return rc;
    if ((c->backup_dir == NULL) != (c->backup_every == 0))
        return say(why, why_size,
                   "--backup-dir and --backup-every go together");
    return CLI_OK;
}

void
serve_conf_free(serve_conf *c)
{
    for (size_t i = 0; i < c->n_dirs; i++)
        free(c->dirs[i]);
    for (size_t i = 0; i < c->n_peers; i++)
        free(c->peers[i]);
    free(c->config);
    free(c->listen);
    free(c->metrics);
    free(c->backup_dir);
    memset(c, 0, sizeof *c);
}
