/* trace.h: loading the editing traces of tests/traces (format in its
 * README): gzip-compressed JSON, sequential or concurrent. */
#ifndef TEST_TRACE_H
#define TEST_TRACE_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t pos, del;
    const char *ins; /* UTF-8, NUL-terminated; owned by the trace */
    size_t ins_len;
} trace_patch;

typedef struct {
    size_t *parents; /* concurrent traces only */
    size_t n_parents;
    int agent;
    trace_patch *patches;
    size_t n_patches;
} trace_txn;

typedef struct {
    int concurrent;
    char *start, *end; /* startContent (sequential), endContent */
    size_t end_len;
    trace_txn *txns;
    size_t n_txns;
    size_t n_agents;
    void *json; /* the parsed document the strings point into */
} trace;

/* Load @p path; 0 on success, -1 with a message on stderr. */
int trace_load(trace *t, const char *path);
void trace_free(trace *t);

#endif
