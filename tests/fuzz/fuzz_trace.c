/*
 * fuzz_trace.c: editing-trace JSON -> the strata-bench trace loader
 * (bench/trace.c: trace_parse), and a parsed sequential trace through
 * the plain-buffer replay the w2 replayer checks prefixes against
 * (bench/replay.c's replay_reference, compiled in below).
 *
 * Checked: no crash, leak or sanitizer report; -1 comes with a reason;
 * a parsed trace holds what the replayer relies on: every patch's text
 * inside the text buffer and of the code points it says, every txn's
 * patches and parents inside their arrays, parents earlier than their
 * txn, agents below numAgents; the reference replay of a small
 * sequential trace either fails with a reason or yields valid lengths.
 *
 * Built from one file: bench/trace.c is included below; this target
 * links jansson and zlib (tests/fuzz/CMakeLists.txt).
 *
 * Seeds: `STRATA_FUZZ_SEEDS=DIR fuzz_trace` writes the corpus into DIR.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../bench/trace.c"
#include "support/fuzz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* replay.c's reference replay, restated over the same helpers (replay.c
 * itself needs a replica) */
static char *
reference(const trace *t, size_t *len, int *bad)
{
    size_t used = t->start_len;
    char *b = malloc(t->start_len + t->text_len + 1);

    *bad = 0;
    if (b == NULL)
        return NULL;
    memcpy(b, t->start, t->start_len);
    for (size_t i = 0; i < t->n_patches; i++) {
        const trace_patch *p = &t->patches[i];
        size_t at = trace_utf8_off(b, used, p->pos);
        size_t end = trace_utf8_off(b + at, used - at, p->del) + at;

        if (trace_utf8_cp(b, at) != p->pos ||
            trace_utf8_cp(b + at, end - at) != p->del) {
            *bad = 1;
            break;
        }
        memmove(b + at, b + end, used - end);
        used -= end - at;
        memmove(b + at + p->ins_len, b + at, used - at);
        memcpy(b + at, t->text + p->ins_off, p->ins_len);
        used += p->ins_len;
    }
    b[used] = 0;
    *len = used;
    return b;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    trace *t = NULL;
    char err[300];

    memset(err, 0x55, sizeof err);
    if (trace_parse(&t, (const char *)data, size, err, sizeof err) < 0) {
        if (t != NULL || memchr(err, 0, sizeof err) == NULL || !err[0])
            abort();
        return 0;
    }
    if (t == NULL || t->start == NULL || t->end == NULL ||
        strlen(t->end) != t->end_len || (t->concurrent && t->start_len))
        abort();
    for (size_t i = 0; i < t->n_patches; i++) {
        const trace_patch *p = &t->patches[i];
        if ((size_t)p->ins_off + p->ins_len > t->text_len ||
            trace_utf8_cp(t->text + p->ins_off, p->ins_len) != p->ins_cp ||
            p->pos > 0x7fffffffu || p->del > 0x7fffffffu)
            abort();
    }
    for (size_t i = 0, np = 0; i < t->n_txns; i++) {
        const trace_txn *x = &t->txns[i];
        if (x->first_patch != np ||
            (size_t)x->first_patch + x->n_patches > t->n_patches ||
            (size_t)x->first_parent + x->n_parents > t->n_parents ||
            x->agent >= t->n_agents)
            abort();
        np += x->n_patches;
        for (uint32_t k = 0; k < x->n_parents; k++)
            if (t->parents[x->first_parent + k] >= i)
                abort();
    }
    if (!t->concurrent && t->n_patches <= 2000 && t->text_len <= 65536) {
        size_t len = 0;
        int bad;
        char *s = reference(t, &len, &bad);
        if (s != NULL && strlen(s) != len)
            abort();
        free(s);
    }
    trace_free(t);
    return 0;
}

#define PUT_TEXT(dir, name, text) fuzz_put_seed(dir, name, text, sizeof text - 1)

static void
write_seeds(const char *dir)
{
    PUT_TEXT(dir, "sequential",
             "{\"startContent\":\"\",\"endContent\":\"hi\",\"txns\":["
             "{\"time\":\"t\",\"patches\":[[0,0,\"h\\u00e9\"]]},"
             "{\"time\":\"t\",\"patches\":[[1,1,\"i\"]]}]}");
    PUT_TEXT(dir, "concurrent",
             "{\"kind\":\"concurrent\",\"endContent\":\"ab\",\"numAgents\":2,"
             "\"txns\":[{\"parents\":[],\"numChildren\":2,\"agent\":0,"
             "\"patches\":[[0,0,\"a\"]]},{\"parents\":[0],\"agent\":1,"
             "\"patches\":[[1,0,\"b\"]]},{\"parents\":[0,1],\"agent\":0,"
             "\"patches\":[]}]}");
    PUT_TEXT(dir, "bad_parent",
             "{\"kind\":\"concurrent\",\"endContent\":\"\",\"numAgents\":1,"
             "\"txns\":[{\"parents\":[0],\"agent\":0,\"patches\":[]}]}");
    PUT_TEXT(dir, "bad_patch",
             "{\"endContent\":\"\",\"txns\":[{\"patches\":[[0,-1,\"x\"],"
             "[0,0]]}]}");
    PUT_TEXT(dir, "past_end",
             "{\"endContent\":\"\",\"txns\":[{\"patches\":[[5,2,\"x\"]]}]}");
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return fuzz_seeds_if_asked(write_seeds);
}
