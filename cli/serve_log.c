/*
 * serve_log.c: the daemon's log on stderr, one line per event, each with
 * a UTC timestamp (milliseconds), a level and the peer it concerns:
 *
 *   text: 2026-01-02T03:04:05.678Z info peer=127.0.0.1:40112 MESSAGE
 *         (peer=- when the line concerns no peer)
 *   json: {"ts":"2026-01-02T03:04:05.678Z","level":"info",
 *          "peer":"127.0.0.1:40112","msg":"MESSAGE"}   (peer null if none)
 *
 * Lines come from every connection thread: each is built whole, then
 * written with one call under stdio's lock, so lines never interleave.
 * The level and format may change at any time (SIGHUP reload).
 */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "serve.h"

static int cur_level = CRDTNET_LOG_INFO; /* atomic loads and stores */
static int cur_format = SERVE_LOG_TEXT;

static const char *const level_names[] = { "error", "warn", "info",
                                           "debug" };

void
serve_log_set(int level, int format)
{
    __atomic_store_n(&cur_level, level, __ATOMIC_RELAXED);
    __atomic_store_n(&cur_format, format, __ATOMIC_RELAXED);
}

static void
timestamp(char *buf, size_t size)
{
    struct timespec ts;
    struct tm tm;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, (int)((ts.tv_nsec / 1000000) % 1000));
}

void
serve_log_event(int level, const char *peer, const char *msg, void *ctx)
{
    char ts[64];
    int format;

    (void)ctx;
    if (level < 0 || level > CRDTNET_LOG_DEBUG ||
        level > __atomic_load_n(&cur_level, __ATOMIC_RELAXED))
        return;
    format = __atomic_load_n(&cur_format, __ATOMIC_RELAXED);
    timestamp(ts, sizeof ts);
    if (format == SERVE_LOG_JSON) {
        json_t *o = json_pack("{s:s, s:s, s:s?, s:s}", "ts", ts, "level",
                              level_names[level], "peer", peer, "msg", msg);
        char *line = o ? json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII)
                       : NULL;

        /* a message that is not UTF-8 (jansson refuses it) loses only
         * its text, never the line */
        if (line == NULL) {
            json_decref(o);
            o = json_pack("{s:s, s:s, s:s?, s:s}", "ts", ts, "level",
                          level_names[level], "peer", NULL, "msg",
                          "(message not UTF-8)");
            line = o ? json_dumps(o, JSON_COMPACT) : NULL;
        }
        if (line != NULL)
            fprintf(stderr, "%s\n", line);
        free(line);
        json_decref(o);
    } else {
        fprintf(stderr, "%s %s peer=%s %s\n", ts, level_names[level],
                peer != NULL ? peer : "-", msg);
    }
    fflush(stderr);
}

void
serve_logf(int level, const char *fmt, ...)
{
    char line[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    serve_log_event(level, NULL, line, NULL);
}
