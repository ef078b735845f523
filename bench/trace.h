/*
 * trace.h: editing traces (the josephg/editing-traces format), loaded
 * into flat arrays for the w2 replayer (w_text.c) and its tests.
 *
 * A trace is JSON, usually gzip-compressed (the loader accepts both):
 *
 *   sequential: {"startContent", "endContent",
 *                "txns": [{"time", "patches": [[pos, del, ins], ...]}]}
 *   concurrent: {"kind": "concurrent", "endContent", "numAgents",
 *                "txns": [{"parents": [i, ...], "numChildren", "agent",
 *                          "time", "patches": [...]}]}
 *
 * A patch deletes `del` code points at `pos`, then inserts the string
 * `ins` there; the patches of a txn apply in order, each against the
 * text the previous one left. In a concurrent trace a txn's positions
 * are relative to the text after its parents (every parent merged; no
 * parent = the start content); parents are indexes of EARLIER txns. A
 * sequential trace is read as one agent whose txn i has parent i - 1.
 *
 * Limits (a trace is input like any other): TRACE_MAX_FILE compressed
 * bytes, TRACE_MAX_JSON bytes of JSON, TRACE_MAX_TXNS txns,
 * TRACE_MAX_PATCHES patches, TRACE_MAX_AGENTS agents (the replayer opens
 * one replica per agent), TRACE_MAX_PARENTS parents per txn, positions
 * and lengths below 2^31. Anything else is refused with its reason.
 */
#ifndef STRATA_BENCH_TRACE_H
#define STRATA_BENCH_TRACE_H

#include <stddef.h>
#include <stdint.h>

#define TRACE_MAX_FILE (256u << 20)
#define TRACE_MAX_JSON (1024u << 20)
#define TRACE_MAX_TXNS 20000000u
#define TRACE_MAX_PATCHES 50000000u
#define TRACE_MAX_AGENTS 64u
#define TRACE_MAX_PARENTS 64u

typedef struct {
    uint32_t pos;      /* code points */
    uint32_t del;      /* code points */
    uint32_t ins_off;  /* into trace.text */
    uint32_t ins_len;  /* bytes of UTF-8 */
    uint32_t ins_cp;   /* code points */
} trace_patch;

typedef struct {
    uint32_t agent;
    uint32_t first_patch, n_patches; /* into trace.patches */
    uint32_t first_parent, n_parents; /* into trace.parents */
} trace_txn;

typedef struct {
    int concurrent;
    uint32_t n_agents;
    char *start;        /* NUL-terminated UTF-8 */
    size_t start_len;   /* bytes */
    char *end;          /* endContent */
    size_t end_len;
    trace_txn *txns;
    size_t n_txns;
    trace_patch *patches;
    size_t n_patches;
    uint32_t *parents;
    size_t n_parents;
    char *text;         /* every inserted string, back to back */
    size_t text_len;
    uint64_t n_ins_cp, n_del_cp; /* totals */
} trace;

/* Parse @p len bytes of trace JSON (not compressed). 0, or -1 with the
 * reason in @p err. */
int trace_parse(trace **out, const char *json, size_t len, char *err,
                size_t errlen);

/* Read @p path (gzip or plain JSON) and parse it. */
int trace_load(trace **out, const char *path, char *err, size_t errlen);

/* Write the first @p n patches of the sequential trace @p t to @p path as
 * a plain JSON trace of the same format whose endContent is @p end (the
 * text those patches leave, replay_reference): what the peers replay in
 * quick mode instead of parsing the whole file. 0, or -1 with the reason
 * in @p err. */
int trace_write_prefix(const trace *t, size_t n, const char *end,
                       size_t end_len, const char *path, char *err,
                       size_t errlen);

void trace_free(trace *t);

/* Code points of the valid UTF-8 @p s (@p len bytes). */
size_t trace_utf8_cp(const char *s, size_t len);

/* Byte offset of code point @p cp in the valid UTF-8 @p s (@p len bytes),
 * or len if @p cp is at or past the end. */
size_t trace_utf8_off(const char *s, size_t len, size_t cp);

#endif
