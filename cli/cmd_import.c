/*
 * cmd_import.c: `strata import DIR FILE|- [--atomic] [--from-line N]`: a
 * JSON-lines file of writes.
 *
 * A line is one op, the same shape `strata log --json` prints; it is
 * parsed by import_line.c (the layouts are in import_line.h). Blank
 * lines are skipped. Lines are numbered from 1, blank ones included.
 *
 * Streaming (the default): the input is read in batches of BATCH_LINES
 * lines (or BATCH_BYTES), each committed as one change, in order, so an
 * input of any size imports in bounded memory.
 *  (1) At a bad line, or any failure, every line before it is committed
 *      and nothing after; the error names the line and the flag that
 *      resumes there: --from-line N (the lines before N are skipped).
 *  (2) A batch is read whole before its txn begins: the writer lock is
 *      never held while waiting on a slow pipe.
 *  (3) Bounded: a line is at most CLI_IMPORT_LINE_LIMIT bytes; a batch
 *      that reaches the change limits (CRDT_CHANGE_MAX, _MAX_OPS) is
 *      committed and the next change starts with the op that did not fit.
 * --atomic: the whole input is ONE txn, hence one change, all or nothing
 * (read whole first, at most INPUT_LIMIT bytes).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "import_line.h"

#define INPUT_LIMIT (256u * 1024 * 1024)

#define BATCH_LINES 10000
#define BATCH_BYTES ((size_t)4 * 1024 * 1024)

enum { OPT_JSON, OPT_ATOMIC, OPT_FROM };

static const cli_opt OPTS[] = { { "json", 0 }, { "atomic", 0 },
                                { "from-line", 1 }, { NULL, 0 } };

/* Read all of @p f; keeps (2) and (3). */
static int
slurp(char **buf_out, size_t *len_out, FILE *f, const char *name)
{
    size_t cap = 1 << 16, len = 0, n;
    char *buf = malloc(cap), *bigger;

    for (;;) {
        if (buf == NULL)
            return cli_error(CLI_EIO, "import", "out of memory");
        n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (len < cap) {
            if (ferror(f)) {
                free(buf);
                return cli_error(CLI_EIO, "import", "read %s: %s", name,
                                 strerror(errno));
            }
            if (feof(f))
                break;
            continue;
        }
        if (len > INPUT_LIMIT) {
            free(buf);
            return cli_error(CLI_EDATA, "import",
                             "%s: input larger than %u MiB", name,
                             INPUT_LIMIT >> 20);
        }
        /* one byte past the limit tells "exactly the limit" from more */
        cap = cap * 2 > INPUT_LIMIT ? INPUT_LIMIT + 1 : cap * 2;
        bigger = realloc(buf, cap);
        if (bigger == NULL)
            free(buf);
        buf = bigger;
    }
    *buf_out = buf;
    *len_out = len;
    return CLI_OK;
}

static int
apply_op(crdt_txn *t, const cli_import_op *op, const char **why)
{
    int rc = CRDT_OK;

    switch (op->kind) {
    case CLI_IMPORT_PUT:
        rc = crdt_txn_put(t, op->coll, op->doc, op->field, &op->value.v);
        break;
    case CLI_IMPORT_INCR:
        rc = crdt_txn_incr(t, op->coll, op->doc, op->field, (int64_t)op->n);
        break;
    case CLI_IMPORT_SADD:
        rc = crdt_txn_sadd(t, op->coll, op->doc, op->field, &op->value.v);
        break;
    case CLI_IMPORT_SREM:
        rc = crdt_txn_srem(t, op->coll, op->doc, op->field, &op->value.v);
        break;
    case CLI_IMPORT_DEL:
        rc = op->field ? crdt_txn_del_field(t, op->coll, op->doc, op->field)
                       : crdt_txn_del_doc(t, op->coll, op->doc);
        break;
    case CLI_IMPORT_TINS:
        rc = crdt_txn_text_insert(t, op->coll, op->doc, op->field,
                                  (uint64_t)op->pos, op->text, op->text_len);
        break;
    case CLI_IMPORT_TDEL:
        rc = crdt_txn_text_delete(t, op->coll, op->doc, op->field,
                                  (uint64_t)op->pos, (uint64_t)op->len);
        break;
    case CLI_IMPORT_LINS:
        rc = crdt_txn_list_insert(t, op->coll, op->doc, op->field,
                                  (uint64_t)op->pos, &op->value.v);
        break;
    case CLI_IMPORT_LDEL:
        rc = crdt_txn_list_delete(t, op->coll, op->doc, op->field,
                                  (uint64_t)op->pos, (uint64_t)op->len);
        break;
    case CLI_IMPORT_LSET:
        rc = crdt_txn_list_set(t, op->coll, op->doc, op->field,
                               (uint64_t)op->pos, &op->value.v);
        break;
    }
    switch (rc) {
    case CRDT_ETYPE: *why = "the field holds another type"; break;
    case CRDT_ENOTFOUND:
        *why = "no such text or list field (at this point of the import)";
        break;
    case CRDT_EINVAL:
        *why = op->kind >= CLI_IMPORT_TINS
                   ? "position or range past the end of the sequence (at "
                     "this point of the import), or an invalid value"
                   : "invalid name or value (not UTF-8?)";
        break;
    case CRDT_ELIMIT: {
        static char msg[200];
        snprintf(msg, sizeof msg,
                 "too large: %sone import is one change of at most %u MiB "
                 "encoded and %u ops",
                 op->kind == CLI_IMPORT_SADD || op->kind == CLI_IMPORT_SREM
                     ? "a set element is at most 256 bytes encoded, and "
                     : "",
                 (unsigned)(CRDT_CHANGE_MAX >> 20),
                 (unsigned)CRDT_CHANGE_MAX_OPS);
        *why = msg;
        break;
    }
    default: break;
    }
    return rc;
}

/* Apply every line of @p buf in @p t; keeps (1) by stopping at the first
 * bad one. Returns an exit code; prints the error. */
static int
apply_all(crdt_txn *t, char *buf, size_t len, cli_progress *p)
{
    char what[64];
    size_t pos = 0, line_no = 0;

    while (pos < len) {
        char *line = buf + pos, *nl = memchr(line, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - line) : len - pos;
        const char *why = NULL;
        char reason[256];
        cli_import_op op;
        int rc;

        pos += n + (nl != NULL);
        line_no++;
        if ((line_no & 1023) == 0)
            cli_progress_draw(pos, len, p);
        snprintf(what, sizeof what, "import: line %zu", line_no);
        rc = cli_import_line_parse(&op, line, n, reason, sizeof reason);
        if (rc > 0)
            continue; /* blank */
        if (rc < 0)
            return cli_error(CLI_EDATA, what, "%s", reason);
        rc = apply_op(t, &op, &why);
        cli_import_op_free(&op);
        if (rc < 0 && why != NULL)
            return cli_error(CLI_EDATA, what, "%s", why);
        if (rc < 0)
            return cli_fail(what, rc);
    }
    return CLI_OK;
}

static int
read_input(char **buf, size_t *len, const char *name)
{
    FILE *f;
    int rc;

    if (strcmp(name, "-") == 0)
        return slurp(buf, len, stdin, "stdin");
    f = fopen(name, "rb");
    if (f == NULL)
        return cli_error(errno == ENOENT ? CLI_ENOTFOUND : CLI_EIO, "import",
                         "open %s: %s", name, strerror(errno));
    rc = slurp(buf, len, f, name);
    fclose(f);
    return rc;
}

static int
report(uint64_t ops, uint64_t changes, uint64_t first_seq, uint64_t last_seq,
       int json)
{
    if (json)
        return cli_emit(json_pack("{s:I,s:I,s:I,s:I}", "ops", (json_int_t)ops,
                                  "first_seq", (json_int_t)first_seq,
                                  "last_seq", (json_int_t)last_seq,
                                  "changes", (json_int_t)changes));
    printf("imported %llu ops\n", (unsigned long long)ops);
    return CLI_OK;
}

/* --atomic: the whole input in one txn. */
static int
import_atomic(crdt_replica *r, const char *name, int json)
{
    crdt_commit_info info = { 0, 0, 0 };
    crdt_txn *t = NULL;
    char *buf = NULL;
    size_t len = 0;
    uint64_t ops = 0;
    int rc;

    rc = read_input(&buf, &len, name);
    if (rc == CLI_OK) {
        int crc = crdt_txn_begin(&t, r);
        rc = crc < 0 ? cli_fail("import", crc) : CLI_OK;
    }
    if (rc == CLI_OK) {
        cli_progress p;

        cli_progress_init(&p, "import", "bytes");
        rc = apply_all(t, buf, len, &p);
        if (rc == CLI_OK)
            cli_progress_draw(len, len, &p);
        cli_progress_end(&p);
    }
    if (rc == CLI_OK) {
        int crc;
        ops = crdt_txn_op_count(t);
        crc = crdt_txn_commit(t, &info); /* frees t on every path */
        t = NULL;
        rc = crc < 0 ? cli_fail("import", crc) : CLI_OK;
    }
    crdt_txn_abort(t);
    free(buf);
    if (rc == CLI_OK)
        rc = report(ops, ops ? 1 : 0, info.first_seq, info.last_seq, json);
    return rc;
}

/* ---- streaming ---- */

/* Reads lines of at most CLI_IMPORT_LINE_LIMIT bytes, in bounded memory. */
typedef struct {
    FILE *f;
    char *buf;
    size_t cap, start, end;
    int eof;
} line_reader;

/* 1 a line (@p line, @p n, without its newline); 0 end of input;
 * -1 a line longer than the limit; -2 a read error. */
static int
next_line(line_reader *lr, char **line, size_t *n)
{
    for (;;) {
        char *p = lr->buf + lr->start;
        char *nl = memchr(p, '\n', lr->end - lr->start);
        size_t k;

        if (nl != NULL) {
            *line = p;
            *n = (size_t)(nl - p);
            lr->start += *n + 1;
            return 1;
        }
        if (lr->end - lr->start > CLI_IMPORT_LINE_LIMIT)
            return -1;
        if (lr->eof) {
            if (lr->end == lr->start)
                return 0;
            *line = p;
            *n = lr->end - lr->start;
            lr->start = lr->end;
            return 1;
        }
        memmove(lr->buf, p, lr->end - lr->start);
        lr->end -= lr->start;
        lr->start = 0;
        k = fread(lr->buf + lr->end, 1, lr->cap - lr->end, lr->f);
        lr->end += k;
        if (k == 0) {
            if (ferror(lr->f))
                return -2;
            lr->eof = 1;
        }
    }
}

/* One batch: copies of its lines, read before its txn begins. */
typedef struct {
    char *bytes;
    size_t len, cap;
    size_t *ends; /* end offset of each line */
    uint64_t first_line;
    size_t n;
} batch;

typedef struct {
    crdt_replica *r;
    uint64_t ops, changes, first_seq, last_seq;
    uint64_t next_line; /* every line before it is committed */
} stream;

/* Stop at @p line_no: say what was imported and how to resume. */
static int
stopped(const stream *s, int code, uint64_t line_no, const char *why)
{
    return cli_error(code, "import", "line %llu: %s; the %llu lines before "
                     "it are imported (%llu ops in %llu changes); resume "
                     "with --from-line %llu",
                     (unsigned long long)line_no, why,
                     (unsigned long long)(line_no - 1),
                     (unsigned long long)s->ops,
                     (unsigned long long)s->changes,
                     (unsigned long long)line_no);
}

static int
commit(stream *s, crdt_txn **t)
{
    crdt_commit_info info = { 0, 0, 0 };
    uint64_t n = crdt_txn_op_count(*t);
    int rc;

    if (n == 0) {
        crdt_txn_abort(*t);
        *t = NULL;
        return CRDT_OK;
    }
    rc = crdt_txn_commit(*t, &info); /* frees it on every path */
    *t = NULL;
    if (rc < 0)
        return rc;
    if (s->changes == 0)
        s->first_seq = info.first_seq;
    s->last_seq = info.last_seq;
    s->ops += n;
    s->changes++;
    return CRDT_OK;
}

/* Apply batch @p b as one change (more when it reaches the change
 * limits); keeps (1). Returns an exit code; prints the error. */
static int
apply_batch(stream *s, const batch *b)
{
    crdt_txn *t = NULL;
    size_t from = 0;
    int rc = CRDT_OK;

    for (size_t i = 0; i < b->n; i++) {
        uint64_t line_no = b->first_line + i;
        size_t end = b->ends[i];
        const char *why = NULL;
        char reason[256];
        cli_import_op op;

        rc = cli_import_line_parse(&op, b->bytes + from, end - from, reason,
                                   sizeof reason);
        from = end;
        if (rc > 0)
            continue; /* blank */
        if (rc < 0) {
            int crc = commit(s, &t);
            return crc < 0 ? stopped(s, cli_exit_code(crc), s->next_line,
                                     crdt_strerror(crc))
                           : stopped(s, CLI_EDATA, line_no, reason);
        }
        for (int fresh = 0;; fresh = 1) {
            if (t == NULL && (rc = crdt_txn_begin(&t, s->r)) < 0) {
                cli_import_op_free(&op);
                return stopped(s, rc == CRDT_EBUSY ? CLI_EBUSY
                                                   : cli_exit_code(rc),
                               line_no, crdt_strerror(rc));
            }
            rc = apply_op(t, &op, &why);
            if (rc != CRDT_ELIMIT || fresh || crdt_txn_op_count(t) == 0)
                break;
            /* (3): the change is full; this op starts the next one */
            if ((rc = commit(s, &t)) < 0)
                break;
            s->next_line = line_no;
        }
        cli_import_op_free(&op);
        if (rc < 0) {
            int crc = commit(s, &t); /* the lines before this one */
            if (crc < 0)
                return stopped(s, cli_exit_code(crc), s->next_line,
                               crdt_strerror(crc));
            return stopped(s, why != NULL ? CLI_EDATA : cli_exit_code(rc),
                           line_no, why != NULL ? why : crdt_strerror(rc));
        }
    }
    if (t != NULL && (rc = commit(s, &t)) < 0)
        return stopped(s, cli_exit_code(rc), s->next_line,
                       crdt_strerror(rc));
    s->next_line = b->first_line + b->n;
    return CLI_OK;
}

static int
batch_add(batch *b, const char *line, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 1 << 16;
        char *p;
        while (cap < b->len + n)
            cap *= 2;
        if ((p = realloc(b->bytes, cap)) == NULL)
            return -1;
        b->bytes = p;
        b->cap = cap;
    }
    memcpy(b->bytes + b->len, line, n);
    b->len += n;
    b->ends[b->n++] = b->len;
    return 0;
}

static int
import_stream(crdt_replica *r, const char *name, uint64_t from_line,
              int json)
{
    line_reader lr = { NULL, NULL, CLI_IMPORT_LINE_LIMIT + (1u << 16), 0, 0,
                       0 };
    uint64_t consumed = 0, total = 0;
    struct stat st;
    batch b = { NULL, 0, 0, NULL, 0, 0 };
    stream s = { r, 0, 0, 0, 0, 1 };
    uint64_t line_no = 0;
    cli_progress p;
    int rc = CLI_OK, got;
    char *line;
    size_t n;

    if (strcmp(name, "-") == 0) {
        lr.f = stdin;
    } else if ((lr.f = fopen(name, "rb")) == NULL) {
        return cli_error(errno == ENOENT ? CLI_ENOTFOUND : CLI_EIO, "import",
                         "open %s: %s", name, strerror(errno));
    }
    if (fstat(fileno(lr.f), &st) == 0 && S_ISREG(st.st_mode))
        total = (uint64_t)st.st_size; /* else a count without a total */
    lr.buf = malloc(lr.cap);
    b.ends = malloc(BATCH_LINES * sizeof *b.ends);
    if (lr.buf == NULL || b.ends == NULL) {
        rc = cli_error(CLI_EIO, "import", "out of memory");
        goto out;
    }
    cli_progress_init(&p, "import", "bytes");
    s.next_line = from_line;
    for (;;) {
        got = next_line(&lr, &line, &n);
        if (got == 1)
            consumed += n + 1;
        if (got == 1 && ++line_no < from_line)
            continue; /* --from-line: committed by an earlier run */
        if (got == 1) {
            if (b.n == 0)
                b.first_line = line_no;
            if (batch_add(&b, line, n) < 0) {
                rc = stopped(&s, CLI_EIO, b.first_line, "out of memory");
                break;
            }
        }
        if (got < 0 || (got == 0 && b.n > 0) || b.n == BATCH_LINES ||
            b.len >= BATCH_BYTES) {
            if (b.n > 0 && (rc = apply_batch(&s, &b)) != CLI_OK)
                break;
            b.n = 0;
            b.len = 0;
            cli_progress_draw(total && consumed > total ? total : consumed,
                              total, &p);
        }
        if (got == -1) {
            rc = stopped(&s, CLI_EDATA, line_no + 1, "line longer than 1 MiB");
            break;
        }
        if (got == -2) {
            rc = stopped(&s, CLI_EIO, line_no + 1, strerror(errno));
            break;
        }
        if (got == 0)
            break;
    }
    if (rc == CLI_OK && total)
        cli_progress_draw(total, total, &p);
    cli_progress_end(&p);
    if (rc == CLI_OK)
        rc = report(s.ops, s.changes, s.first_seq, s.last_seq, json);
out:
    if (lr.f != NULL && lr.f != stdin)
        fclose(lr.f);
    free(lr.buf);
    free(b.bytes);
    free(b.ends);
    return rc;
}

int
cmd_import(const cli_cmd *cmd, int argc, char **argv)
{
    crdt_replica *r = NULL;
    long long from = 1;
    cli_args a;
    int rc;

    rc = cli_parse(&a, cmd, argc, argv, OPTS, 2, 2);
    if (rc != CLI_OK)
        return rc == CLI_HELP_SHOWN ? CLI_OK : rc;
    if (a.opt[OPT_FROM] != NULL &&
        (cli_parse_int64(&from, a.opt[OPT_FROM]) < 0 || from < 1))
        return cli_usage(cmd, "--from-line takes a line number (1 or more)");
    if (a.opt[OPT_FROM] != NULL && cli_has(&a, OPT_ATOMIC))
        return cli_usage(cmd, "--from-line resumes a streaming import, not "
                         "an --atomic one");
    rc = cli_open(&r, a.pos[0], 1);
    if (rc != CLI_OK)
        return rc;
    if (cli_has(&a, OPT_ATOMIC))
        rc = import_atomic(r, a.pos[1], cli_has(&a, OPT_JSON));
    else
        rc = import_stream(r, a.pos[1], (uint64_t)from,
                           cli_has(&a, OPT_JSON));
    crdt_replica_close(r);
    return rc;
}
