/*
 * trace.c: load an editing trace (format in trace.h) into flat arrays.
 *
 * jansson parses the whole JSON once; the loader copies what the
 * replayer needs (positions, lengths, the inserted strings back to back,
 * parents) and frees the tree, so the figures measured after it do not
 * carry jansson's per-node memory.
 *
 * Neither the tree nor the JSON text goes through malloc: the tree is
 * carved from mappings of our own and the text grows in one, all
 * unmapped when the trace is loaded. Every figure is measured in a child
 * forked from this process, and a child inherits the parent's heap: the
 * tree of a 260,000-edit trace left about 230 MB of free heap behind
 * (and the text's 29 MB block raised malloc's mmap threshold to its
 * size), so the child's first large calloc (LMDB's 2 MiB dirty list,
 * at every open) was served from that free heap and cleared page by
 * page, about 530 page faults, where a fresh process gets fresh zero
 * pages for it and touches only what it uses.
 */
#include "trace.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <zlib.h>

static int
fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* ---- the parse arena: jansson's tree outside malloc's heap ---- */

#define ARENA_CHUNK ((size_t)64 << 20)

typedef struct arena_map {
    struct arena_map *next;
    size_t size;
} arena_map;

static struct {
    arena_map *maps;          /* every mapping, newest first */
    unsigned char *cur, *end; /* the bump region of the newest chunk */
} parse_arena;

static void *
arena_map_new(size_t size)
{
    arena_map *m = mmap(NULL, size, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

    if (m == MAP_FAILED)
        return NULL;
    m->size = size;
    m->next = parse_arena.maps;
    parse_arena.maps = m;
    return m;
}

static void *
arena_alloc(size_t n)
{
    const size_t head = (sizeof(arena_map) + 15) & ~(size_t)15;
    unsigned char *p;

    n = (n + 15) & ~(size_t)15;
    if (n > ARENA_CHUNK / 4) { /* a large block: a mapping of its own */
        if (n > SIZE_MAX - head - 4095 ||
            (p = arena_map_new((head + n + 4095) & ~(size_t)4095)) == NULL)
            return NULL;
        return p + head;
    }
    if ((size_t)(parse_arena.end - parse_arena.cur) < n) {
        if ((p = arena_map_new(ARENA_CHUNK)) == NULL)
            return NULL;
        parse_arena.cur = p + head;
        parse_arena.end = p + ARENA_CHUNK;
    }
    p = parse_arena.cur;
    parse_arena.cur += n;
    return p;
}

static void
arena_free(void *p)
{
    (void)p; /* all of it goes at once, in arena_release() */
}

static void
arena_release(void)
{
    while (parse_arena.maps != NULL) {
        arena_map *m = parse_arena.maps;

        parse_arena.maps = m->next;
        munmap(m, m->size);
    }
    parse_arena.cur = parse_arena.end = NULL;
}

size_t
trace_utf8_cp(const char *s, size_t len)
{
    size_t n = 0;

    for (size_t i = 0; i < len; i++)
        n += ((unsigned char)s[i] & 0xC0) != 0x80;
    return n;
}

size_t
trace_utf8_off(const char *s, size_t len, size_t cp)
{
    size_t i = 0;

    while (i < len && cp > 0) {
        i++;
        while (i < len && ((unsigned char)s[i] & 0xC0) == 0x80)
            i++;
        cp--;
    }
    return i;
}

void
trace_free(trace *t)
{
    if (t == NULL)
        return;
    free(t->start);
    free(t->end);
    free(t->txns);
    free(t->patches);
    free(t->parents);
    free(t->text);
    free(t);
}

/* A non-negative integer below 2^31 from @p v. */
static int
get_u31(const json_t *v, uint32_t *out)
{
    json_int_t i;

    if (!json_is_integer(v))
        return -1;
    i = json_integer_value(v);
    if (i < 0 || i > 0x7fffffff)
        return -1;
    *out = (uint32_t)i;
    return 0;
}

static int
dup_str(char **out, size_t *len_out, const json_t *v)
{
    size_t n = json_string_length(v);

    *out = malloc(n + 1);
    if (*out == NULL)
        return -1;
    memcpy(*out, json_string_value(v), n);
    (*out)[n] = 0;
    *len_out = n;
    return 0;
}

/* Count what the arrays need, so they are allocated once. */
static int
count(const json_t *txns, size_t *patches, size_t *parents, size_t *text,
      char *err, size_t errlen)
{
    size_t i;
    const json_t *tx;

    *patches = *parents = *text = 0;
    json_array_foreach(txns, i, tx) {
        const json_t *ps = json_object_get(tx, "patches");
        const json_t *pa = json_object_get(tx, "parents");
        const json_t *p;
        size_t j;

        if (!json_is_object(tx))
            return fail(err, errlen, "txns[%zu] is not an object", i);
        if (!json_is_array(ps))
            return fail(err, errlen, "txns[%zu].patches is not an array", i);
        if (pa != NULL && !json_is_array(pa))
            return fail(err, errlen, "txns[%zu].parents is not an array", i);
        if (pa != NULL) {
            if (json_array_size(pa) > TRACE_MAX_PARENTS)
                return fail(err, errlen, "txns[%zu] has more than %u parents",
                            i, TRACE_MAX_PARENTS);
            *parents += json_array_size(pa);
        }
        json_array_foreach(ps, j, p) {
            const json_t *ins = json_array_get(p, 2);

            if (!json_is_array(p) || json_array_size(p) != 3 ||
                !json_is_string(ins))
                return fail(err, errlen,
                            "txns[%zu].patches[%zu] is not [pos, del, ins]", i,
                            j);
            *text += json_string_length(ins);
        }
        *patches += json_array_size(ps);
        if (*patches > TRACE_MAX_PATCHES)
            return fail(err, errlen, "more than %u patches",
                        TRACE_MAX_PATCHES);
        if (*text > UINT32_MAX - 1)
            return fail(err, errlen, "more than 4 GiB of inserted text");
    }
    return 0;
}

static int
fill(trace *t, const json_t *txns, char *err, size_t errlen)
{
    size_t i, np = 0, npa = 0, nt = 0;
    const json_t *tx;
    uint32_t max_agent = 0;

    json_array_foreach(txns, i, tx) {
        const json_t *ps = json_object_get(tx, "patches");
        const json_t *pa = json_object_get(tx, "parents");
        const json_t *ag = json_object_get(tx, "agent");
        const json_t *p;
        trace_txn *x = &t->txns[i];
        size_t j;

        x->first_patch = (uint32_t)np;
        x->n_patches = (uint32_t)json_array_size(ps);
        x->first_parent = (uint32_t)npa;
        x->agent = 0;
        if (t->concurrent) {
            if (get_u31(ag, &x->agent) < 0 || x->agent >= TRACE_MAX_AGENTS)
                return fail(err, errlen,
                            "txns[%zu].agent is not an integer in 0..%u", i,
                            TRACE_MAX_AGENTS - 1);
            if (x->agent > max_agent)
                max_agent = x->agent;
            json_array_foreach(pa, j, p) {
                uint32_t v;

                if (get_u31(p, &v) < 0 || v >= i)
                    return fail(err, errlen,
                                "txns[%zu].parents[%zu] is not the index of "
                                "an earlier txn",
                                i, j);
                for (uint32_t k = x->first_parent; k < npa; k++)
                    if (t->parents[k] == v)
                        return fail(err, errlen,
                                    "txns[%zu] names parent %u twice", i, v);
                t->parents[npa++] = v;
            }
        } else if (i > 0) {
            t->parents[npa++] = (uint32_t)(i - 1);
        }
        x->n_parents = (uint32_t)(npa - x->first_parent);
        json_array_foreach(ps, j, p) {
            trace_patch *q = &t->patches[np++];
            const json_t *ins = json_array_get(p, 2);
            size_t n = json_string_length(ins);

            if (get_u31(json_array_get(p, 0), &q->pos) < 0 ||
                get_u31(json_array_get(p, 1), &q->del) < 0)
                return fail(err, errlen,
                            "txns[%zu].patches[%zu]: pos and del must be "
                            "integers in 0..2^31-1",
                            i, j);
            q->ins_off = (uint32_t)nt;
            q->ins_len = (uint32_t)n;
            memcpy(t->text + nt, json_string_value(ins), n);
            q->ins_cp = (uint32_t)trace_utf8_cp(t->text + nt, n);
            nt += n;
            t->n_ins_cp += q->ins_cp;
            t->n_del_cp += q->del;
        }
    }
    t->n_patches = np;
    t->n_parents = npa;
    t->text_len = nt;
    if (t->concurrent && t->n_txns > 0 && max_agent >= t->n_agents)
        return fail(err, errlen, "agent %u is not below numAgents %u",
                    max_agent, t->n_agents);
    return 0;
}

int
trace_parse(trace **out, const char *json, size_t len, char *err,
            size_t errlen)
{
    json_error_t jerr;
    json_t *root, *txns, *v;
    trace *t = NULL;
    size_t n_patches, n_parents, n_text;
    int rc = -1;

    *out = NULL;
    if (len > TRACE_MAX_JSON)
        return fail(err, errlen, "more than %u bytes of JSON",
                    TRACE_MAX_JSON);
    json_set_alloc_funcs(arena_alloc, arena_free);
    root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        json_set_alloc_funcs(malloc, free);
        arena_release();
        return fail(err, errlen, "not JSON: %s (line %d)", jerr.text,
                    jerr.line);
    }
    if (!json_is_object(root)) {
        fail(err, errlen, "not a JSON object");
        goto out;
    }
    t = calloc(1, sizeof *t);
    if (t == NULL) {
        fail(err, errlen, "out of memory");
        goto out;
    }
    v = json_object_get(root, "kind");
    if (v != NULL) {
        if (!json_is_string(v)) {
            fail(err, errlen, "kind is not a string");
            goto out;
        }
        if (strcmp(json_string_value(v), "concurrent") == 0)
            t->concurrent = 1;
        else if (strcmp(json_string_value(v), "sequential") != 0) {
            fail(err, errlen, "unknown kind \"%s\"", json_string_value(v));
            goto out;
        }
    }
    t->n_agents = 1;
    if (t->concurrent) {
        if (get_u31(json_object_get(root, "numAgents"), &t->n_agents) < 0 ||
            t->n_agents == 0 || t->n_agents > TRACE_MAX_AGENTS) {
            fail(err, errlen, "numAgents is not an integer in 1..%u",
                 TRACE_MAX_AGENTS);
            goto out;
        }
    }
    v = json_object_get(root, "endContent");
    if (!json_is_string(v)) {
        fail(err, errlen, "endContent is not a string");
        goto out;
    }
    if (dup_str(&t->end, &t->end_len, v) < 0)
        goto oom;
    v = json_object_get(root, "startContent");
    if (v != NULL && !json_is_string(v)) {
        fail(err, errlen, "startContent is not a string");
        goto out;
    }
    if (v != NULL && t->concurrent && json_string_length(v) > 0) {
        /* every agent would need it as a common first change */
        fail(err, errlen, "a concurrent trace with startContent is not "
                          "supported");
        goto out;
    }
    if (v != NULL ? dup_str(&t->start, &t->start_len, v) < 0
                  : (t->start = calloc(1, 1)) == NULL)
        goto oom;
    txns = json_object_get(root, "txns");
    if (!json_is_array(txns)) {
        fail(err, errlen, "txns is not an array");
        goto out;
    }
    t->n_txns = json_array_size(txns);
    if (t->n_txns > TRACE_MAX_TXNS) {
        fail(err, errlen, "more than %u txns", TRACE_MAX_TXNS);
        goto out;
    }
    if (count(txns, &n_patches, &n_parents, &n_text, err, errlen) < 0)
        goto out;
    if (!t->concurrent)
        n_parents = t->n_txns;
    t->txns = calloc(t->n_txns + 1, sizeof *t->txns);
    t->patches = calloc(n_patches + 1, sizeof *t->patches);
    t->parents = calloc(n_parents + 1, sizeof *t->parents);
    t->text = malloc(n_text + 1);
    if (!t->txns || !t->patches || !t->parents || !t->text)
        goto oom;
    if (fill(t, txns, err, errlen) < 0)
        goto out;
    t->text[t->text_len] = 0;
    rc = 0;
    *out = t;
    t = NULL;
    goto out;
oom:
    fail(err, errlen, "out of memory");
out:
    trace_free(t);
    json_decref(root);
    json_set_alloc_funcs(malloc, free);
    arena_release();
    return rc;
}

/* @p s as a JSON string: quotes, backslashes and control characters
 * escaped, the rest (UTF-8) as it is. */
static void
put_json_str(FILE *f, const char *s, size_t len)
{
    fputc('"', f);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

int
trace_write_prefix(const trace *t, size_t n, const char *end, size_t end_len,
                   const char *path, char *err, size_t errlen)
{
    FILE *f;
    size_t done = 0;
    int ok;

    if (t->concurrent)
        return fail(err, errlen, "a prefix of a concurrent trace is not a "
                                 "trace");
    f = fopen(path, "wb");
    if (f == NULL)
        return fail(err, errlen, "%s: %s", path, strerror(errno));
    fputs("{\"startContent\":", f);
    put_json_str(f, t->start, t->start_len);
    fputs(",\"endContent\":", f);
    put_json_str(f, end, end_len);
    fputs(",\"txns\":[", f);
    for (size_t i = 0; i < t->n_txns && done < n; i++) {
        const trace_txn *x = &t->txns[i];

        fputs(done ? ",{\"patches\":[" : "{\"patches\":[", f);
        for (uint32_t k = 0; k < x->n_patches && done < n; k++, done++) {
            const trace_patch *p = &t->patches[x->first_patch + k];

            fprintf(f, "%s[%u,%u,", k ? "," : "", p->pos, p->del);
            put_json_str(f, t->text + p->ins_off, p->ins_len);
            fputc(']', f);
        }
        fputs("]}", f);
    }
    fputs("]}\n", f);
    ok = !ferror(f);
    if (fclose(f) != 0)
        ok = 0;
    if (!ok)
        return fail(err, errlen, "%s: write failed", path);
    return 0;
}

/* The JSON text grows in a mapping of its own (see the top). */
static void
text_unmap(char *buf, size_t cap)
{
    if (buf != NULL)
        munmap(buf, cap);
}

int
trace_load(trace **out, const char *path, char *err, size_t errlen)
{
    struct stat st;
    gzFile gz;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int rc;

    *out = NULL;
    if (stat(path, &st) != 0)
        return fail(err, errlen, "%s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return fail(err, errlen, "%s: not a regular file", path);
    if ((uint64_t)st.st_size > TRACE_MAX_FILE)
        return fail(err, errlen, "%s: larger than %u bytes", path,
                    TRACE_MAX_FILE);
    gz = gzopen(path, "rb"); /* reads plain files as they are */
    if (gz == NULL)
        return fail(err, errlen, "%s: cannot open: %s", path,
                    errno ? strerror(errno) : "out of memory");
    for (;;) {
        int n;

        if (cap - len < 65536) {
            size_t ncap = cap ? cap * 2 : 1 << 20;
            char *nb;

            if (ncap > (size_t)TRACE_MAX_JSON + 65536)
                ncap = (size_t)TRACE_MAX_JSON + 65536;
            if (ncap - len < 2) {
                gzclose(gz);
                text_unmap(buf, cap);
                return fail(err, errlen, "%s: more than %u bytes of JSON",
                            path, TRACE_MAX_JSON);
            }
            nb = mmap(NULL, ncap, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (nb == MAP_FAILED) {
                gzclose(gz);
                text_unmap(buf, cap);
                return fail(err, errlen, "out of memory");
            }
            if (len > 0)
                memcpy(nb, buf, len);
            text_unmap(buf, cap);
            buf = nb;
            cap = ncap;
        }
        n = gzread(gz, buf + len, (unsigned)(cap - len - 1 > 1u << 30
                                                 ? 1u << 30
                                                 : cap - len - 1));
        if (n < 0) {
            int zerr;
            const char *msg = gzerror(gz, &zerr);

            fail(err, errlen, "%s: %s", path,
                 zerr == Z_ERRNO ? strerror(errno) : msg);
            gzclose(gz);
            text_unmap(buf, cap);
            return -1;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > TRACE_MAX_JSON) {
            gzclose(gz);
            text_unmap(buf, cap);
            return fail(err, errlen, "%s: more than %u bytes of JSON", path,
                        TRACE_MAX_JSON);
        }
    }
    gzclose(gz);
    rc = trace_parse(out, buf ? buf : "", len, err, errlen);
    text_unmap(buf, cap);
    if (rc < 0) {
        char tmp[300];

        snprintf(tmp, sizeof tmp, "%s", err);
        snprintf(err, errlen, "%s: %s", path, tmp);
    }
    return rc;
}
