/*
 * report.c: figures over runs (median, min, max) and the report
 * entries every workload fills: JSON keys plus rows of the human table.
 */
#include "bench.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

bench_fig
bench_fig_of(const double *x, int n)
{
    bench_fig f = { 0, 0, 0, n };
    double s[64];

    if (n <= 0)
        return f;
    if (n > 64)
        n = 64;
    memcpy(s, x, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    f.min = s[0];
    f.max = s[n - 1];
    f.med = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
    f.n = n;
    return f;
}

static bench_kv *
add(bench_entry *e, kv_kind kind, const char *key)
{
    bench_kv *kv;

    if (e->n_kv >= BENCH_MAX_KV) {
        fprintf(stderr, "strata-bench: too many keys in %s\n", e->name);
        abort(); /* a bug in this program, not in the library */
    }
    kv = &e->kv[e->n_kv++];
    memset(kv, 0, sizeof *kv);
    kv->kind = kind;
    if (key)
        snprintf(kv->key, sizeof kv->key, "%s", key);
    return kv;
}

void
entry_num(bench_entry *e, const char *key, double v)
{
    add(e, KV_NUM, key)->num = v;
}

void
entry_int(bench_entry *e, const char *key, uint64_t v)
{
    add(e, KV_INT, key)->i = v;
}

void
entry_str(bench_entry *e, const char *key, const char *v)
{
    snprintf(add(e, KV_STR, key)->str, sizeof e->kv[0].str, "%s", v);
}

void
entry_obj(bench_entry *e, const char *key)
{
    add(e, KV_OBJ, key);
}

void
entry_end(bench_entry *e)
{
    add(e, KV_END, NULL);
}

void
entry_timing(bench_entry *e, const char *count_key, uint64_t count,
             const bench_fig *sec)
{
    char k[48];

    entry_int(e, count_key, count);
    entry_num(e, "seconds", sec->med);
    entry_num(e, "min", sec->min);
    entry_num(e, "max", sec->max);
    snprintf(k, sizeof k, "%s_per_s", count_key);
    entry_num(e, k, sec->med > 0 ? (double)count / sec->med : 0);
    entry_int(e, "runs", (uint64_t)sec->n);
}

void
entry_mib(bench_entry *e, const char *key, const bench_fig *kib)
{
    char k[48];

    entry_num(e, key, kib->med / 1024);
    snprintf(k, sizeof k, "%s_min", key);
    entry_num(e, k, kib->min / 1024);
    snprintf(k, sizeof k, "%s_max", key);
    entry_num(e, k, kib->max / 1024);
}

void
entry_row(bench_entry *e, const char *fmt, ...)
{
    va_list ap;

    if (e->n_rows >= BENCH_MAX_ROWS)
        return;
    va_start(ap, fmt);
    vsnprintf(e->rows[e->n_rows++], sizeof e->rows[0], fmt, ap);
    va_end(ap);
}

void
entry_failed(bench_entry *e, const char *fmt, ...)
{
    va_list ap;

    e->status = -1;
    va_start(ap, fmt);
    vsnprintf(e->reason, sizeof e->reason, fmt, ap);
    va_end(ap);
}
