/*
 * progress.c: progress on stderr for long commands (migrate, import,
 * backup, restore, verify, sync, rebuild), drawn only when stderr is a
 * terminal, so scripts and logs see nothing but the result.
 *
 * With a known total: "\rLABEL: [#####     ]  42% (DONE/TOTAL UNIT)",
 * redrawn when the percentage changes. Without one: "\rLABEL: DONE UNIT",
 * redrawn at most ten times a second, and the last count when it ends.
 * Sizes in bytes print as MiB.
 */
#include <inttypes.h>
#include <pthread.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

void
cli_progress_init(cli_progress *p, const char *label, const char *unit)
{
    memset(p, 0, sizeof *p);
    p->label = label;
    p->unit = unit;
    p->on = isatty(STDERR_FILENO);
    p->percent = -1;
}

static void
amount(char *buf, size_t size, const cli_progress *p, uint64_t n)
{
    if (strcmp(p->unit, "bytes") == 0)
        snprintf(buf, size, "%.1f", (double)n / (1024.0 * 1024.0));
    else
        snprintf(buf, size, "%" PRIu64, n);
}

void
cli_progress_draw(uint64_t done, uint64_t total, void *ctx)
{
    cli_progress *p = ctx;
    const char *unit;
    char a[32], b[32];

    if (p == NULL || !p->on)
        return;
    unit = strcmp(p->unit, "bytes") == 0 ? "MiB" : p->unit;
    amount(a, sizeof a, p, done);
    if (total > 0) {
        int percent = (int)(done >= total ? 100 : done * 100 / total), bars;

        if (p->shown && percent == p->percent)
            return;
        bars = percent / 4;
        amount(b, sizeof b, p, total);
        fprintf(stderr, "\r%s: [%.*s%*s] %3d%% (%s/%s %s)", p->label, bars,
                "#########################", 25 - bars, "", percent, a, b,
                unit);
        p->percent = percent;
    } else {
        long long now = cli_mono_ms();

        if (p->shown && now - p->last_ms < 100) {
            p->held = done; /* drawn by cli_progress_end() */
            p->holding = 1;
            return;
        }
        fprintf(stderr, "\r%s: %s %s", p->label, a, unit);
        p->last_ms = now;
        p->holding = 0;
    }
    fflush(stderr);
    p->shown = 1;
}

void
cli_progress_end(cli_progress *p)
{
    if (p->holding) { /* the last count was not drawn yet */
        p->last_ms = 0;
        p->shown = 0;
        cli_progress_draw(p->held, 0, p);
    }
    if (p->shown)
        fputc('\n', stderr);
    p->shown = 0;
}

/* ---- watching work the tool cannot see from inside ---- */

static void *
watch_loop(void *arg)
{
    cli_progress_watch *w = arg;

    while (!__atomic_load_n(&w->stop, __ATOMIC_RELAXED)) {
        struct timespec ts = { 0, 100 * 1000000L };

        cli_progress_draw(w->measure(w->ctx), w->total, w->p);
        nanosleep(&ts, NULL);
    }
    return NULL;
}

void
cli_progress_watch_start(cli_progress_watch *w, cli_progress *p,
                         uint64_t total, uint64_t (*measure)(void *ctx),
                         void *ctx)
{
    memset(w, 0, sizeof *w);
    w->p = p;
    w->total = total;
    w->measure = measure;
    w->ctx = ctx;
    if (p->on)
        w->running = pthread_create(&w->th, NULL, watch_loop, w) == 0;
}

void
cli_progress_watch_stop(cli_progress_watch *w, int finished)
{
    if (w->running) {
        __atomic_store_n(&w->stop, 1, __ATOMIC_RELAXED);
        pthread_join(w->th, NULL);
        w->running = 0;
    }
    if (finished && w->p->shown)
        cli_progress_draw(w->total, w->total, w->p);
    cli_progress_end(w->p);
}
