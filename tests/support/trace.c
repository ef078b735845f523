/* trace.c: loading the editing traces (trace.h). */
#include "support/trace.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define TRACE_MAX (256u << 20) /* decompressed bytes accepted */

static char *
read_gz(const char *path, size_t *len)
{
    gzFile f = gzopen(path, "rb");
    size_t cap = 1 << 20, n = 0;
    char *buf;
    int got;

    if (f == NULL)
        return NULL;
    buf = malloc(cap);
    while (buf != NULL) {
        if (n == cap) {
            char *nb = cap >= TRACE_MAX ? NULL : realloc(buf, cap * 2);
            if (nb == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        got = gzread(f, buf + n, (unsigned)(cap - n));
        if (got < 0) {
            free(buf);
            buf = NULL;
        } else if (got == 0) {
            break;
        } else {
            n += (size_t)got;
        }
    }
    gzclose(f);
    *len = n;
    return buf;
}

int
trace_load(trace *t, const char *path)
{
    json_error_t err;
    json_t *root, *txns, *e;
    size_t len, i;
    char *raw = read_gz(path, &len);

    memset(t, 0, sizeof *t);
    if (raw == NULL) {
        fprintf(stderr, "trace: cannot read %s\n", path);
        return -1;
    }
    root = json_loadb(raw, len, 0, &err);
    free(raw);
    if (root == NULL) {
        fprintf(stderr, "trace: %s: %s\n", path, err.text);
        return -1;
    }
    t->json = root;
    e = json_object_get(root, "kind");
    t->concurrent = json_is_string(e) &&
                    strcmp(json_string_value(e), "concurrent") == 0;
    e = json_object_get(root, "endContent");
    txns = json_object_get(root, "txns");
    if (!json_is_string(e) || !json_is_array(txns))
        goto bad;
    t->end = (char *)json_string_value(e);
    t->end_len = json_string_length(e);
    e = json_object_get(root, "startContent");
    t->start = json_is_string(e) ? (char *)json_string_value(e) : "";
    e = json_object_get(root, "numAgents");
    t->n_agents = json_is_integer(e) ? (size_t)json_integer_value(e) : 1;
    t->n_txns = json_array_size(txns);
    t->txns = calloc(t->n_txns ? t->n_txns : 1, sizeof *t->txns);
    if (t->txns == NULL)
        goto bad;
    json_array_foreach(txns, i, e) {
        trace_txn *x = &t->txns[i];
        json_t *ps = json_object_get(e, "patches"), *p, *par;
        size_t j;

        par = json_object_get(e, "parents");
        if (json_is_array(par)) {
            x->n_parents = json_array_size(par);
            x->parents = calloc(x->n_parents + 1, sizeof *x->parents);
            if (x->parents == NULL)
                goto bad;
            for (j = 0; j < x->n_parents; j++)
                x->parents[j] = (size_t)json_integer_value(
                    json_array_get(par, j));
        }
        x->agent = (int)json_integer_value(json_object_get(e, "agent"));
        if (!json_is_array(ps))
            goto bad;
        x->n_patches = json_array_size(ps);
        x->patches = calloc(x->n_patches + 1, sizeof *x->patches);
        if (x->patches == NULL)
            goto bad;
        json_array_foreach(ps, j, p) {
            json_t *ins = json_array_get(p, 2);
            if (!json_is_array(p) || json_array_size(p) != 3 ||
                !json_is_string(ins))
                goto bad;
            x->patches[j].pos = (uint64_t)json_integer_value(
                json_array_get(p, 0));
            x->patches[j].del = (uint64_t)json_integer_value(
                json_array_get(p, 1));
            x->patches[j].ins = json_string_value(ins);
            x->patches[j].ins_len = json_string_length(ins);
        }
    }
    return 0;
bad:
    fprintf(stderr, "trace: %s: not in the trace format\n", path);
    trace_free(t);
    return -1;
}

void
trace_free(trace *t)
{
    for (size_t i = 0; t->txns != NULL && i < t->n_txns; i++) {
        free(t->txns[i].parents);
        free(t->txns[i].patches);
    }
    free(t->txns);
    json_decref(t->json);
    memset(t, 0, sizeof *t);
}
