/*
 * lens_parse.c: lens text -> epoch_lens. The language is in docs/lenses.md.
 *
 * The parser reads one line at a time with a cursor; every rule below is
 * checked where the offending line is read, so the first error in the
 * file is the one reported, with its line. Lines are split on '\n'; one
 * '\r' before it is dropped, so CRLF files parse the same.
 *
 * Invariants (numbered as in lens_internal.h):
 *  (2) a section is closed (close_section) only once it has a step, and a
 *      drop step is refused in a section that has any other step;
 *  (3) a second section for the same collection is refused;
 *  (4) map pairs are sorted, and refused when a key or a value repeats;
 *  (6) on error the half-built lens is freed: nothing is returned.
 */
#include "internal.h" /* libcrdt's strict UTF-8 check */
#include "lens_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *p, *end; /* the unread part of the current line */
    int line;
    epoch_lens_error *err;
    epoch_lens *l;
    size_t cap;      /* of l->secs */
    int open;        /* the last section of l still takes steps */
    int sec_line;    /* where it started */
    size_t step_cap; /* of its steps */
    size_t nsteps;   /* in the whole file */
} parser;

static int __attribute__((format(printf, 3, 4)))
fail(parser *ps, int rc, const char *fmt, ...)
{
    va_list ap;

    if (ps->err != NULL) {
        ps->err->line = ps->line;
        va_start(ap, fmt);
        vsnprintf(ps->err->message, sizeof ps->err->message, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* Quote user text for a message: at most 32 bytes, printable ASCII. */
static const char *
show(char *buf, const char *p, size_t n)
{
    size_t i, k = n > 32 ? 32 : n;

    for (i = 0; i < k; i++)
        buf[i] = (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '"') ? p[i] : '?';
    memcpy(buf + k, n > k ? "..." : "", n > k ? 4 : 1);
    return buf;
}

static int
is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static void
skip_ws(parser *ps)
{
    while (ps->p < ps->end && is_ws(*ps->p))
        ps->p++;
}

static int
at_eol(parser *ps)
{
    skip_ws(ps);
    return ps->p == ps->end || *ps->p == '#';
}

/* The next run of bytes up to a space or '#'; empty at end of line. */
static size_t
word(parser *ps, const char **w)
{
    skip_ws(ps);
    *w = ps->p;
    while (ps->p < ps->end && !is_ws(*ps->p) && *ps->p != '#')
        ps->p++;
    return (size_t)(ps->p - *w);
}

static int
is(const char *w, size_t n, const char *kw)
{
    return strlen(kw) == n && memcmp(w, kw, n) == 0;
}

static int
name(parser *ps, const char **out, const char *what)
{
    char q[40];
    const char *w;
    size_t n = word(ps, &w);

    if (n == 0)
        return fail(ps, CRDT_ECORRUPT, "missing %s", what);
    if (n > EPOCH_LENS_MAX_NAME)
        return fail(ps, CRDT_ECORRUPT, "%s too long (%zu bytes, at most %d)",
                    what, n, EPOCH_LENS_MAX_NAME);
    if (memchr(w, '\0', n) != NULL || !crdt__utf8_valid(w, n))
        return fail(ps, CRDT_ECORRUPT, "bad %s \"%s\"", what, show(q, w, n));
    *out = epoch__arena_strdup(ps->l, w, n);
    return *out != NULL ? CRDT_OK : CRDT_ENOMEM;
}

static int
arrow(parser *ps)
{
    char q[40];
    const char *w;
    size_t n;

    skip_ws(ps);
    if (ps->end - ps->p >= 2 && ps->p[0] == '-' && ps->p[1] == '>') {
        ps->p += 2;
        return CRDT_OK;
    }
    n = word(ps, &w);
    return fail(ps, CRDT_ECORRUPT, "expected \"->\", found \"%s\"",
                show(q, w, n));
}

/* A token ends at a space, '#', the end of the line, or an arrow. */
static int
token_ends(parser *ps)
{
    return ps->p == ps->end || is_ws(*ps->p) || *ps->p == '#' ||
           *ps->p == '-';
}

static int
version(parser *ps, uint32_t *out)
{
    char q[40];
    const char *w;
    uint64_t v = 0;
    size_t n;

    skip_ws(ps);
    w = ps->p;
    while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') {
        v = v * 10 + (uint64_t)(*ps->p++ - '0');
        if (v > UINT32_MAX)
            return fail(ps, CRDT_ECORRUPT, "version out of range");
    }
    if (ps->p == w || !token_ends(ps)) {
        ps->p = w;
        n = word(ps, &w);
        return fail(ps, CRDT_ECORRUPT, "bad version \"%s\"", show(q, w, n));
    }
    *out = (uint32_t)v;
    return CRDT_OK;
}

static int
type(parser *ps, crdt_vtype *out)
{
    char q[40];
    const char *w;
    size_t n;

    skip_ws(ps);
    w = ps->p;
    while (ps->p < ps->end && *ps->p >= 'a' && *ps->p <= 'z')
        ps->p++;
    n = (size_t)(ps->p - w);
    if (n == 0 && at_eol(ps))
        return fail(ps, CRDT_ECORRUPT, "missing type");
    if (!token_ends(ps) || epoch__type_parse(out, w, n) < 0) {
        ps->p = w;
        n = word(ps, &w);
        return fail(ps, CRDT_ECORRUPT,
                    "unknown type \"%s\" (null, bool, int, double, string "
                    "or bytes)", show(q, w, n));
    }
    return CRDT_OK;
}

static const char *const lit_errors[] = {
    [EPOCH__LIT_BAD] = "bad literal",
    [EPOCH__LIT_UNTERMINATED] = "unterminated string",
    [EPOCH__LIT_ESCAPE] = "bad escape in string",
    [EPOCH__LIT_CONTROL] = "control character in string (use an escape)",
    [EPOCH__LIT_UTF8] = "string is not valid UTF-8",
    [EPOCH__LIT_RANGE] = "number out of range",
    [EPOCH__LIT_BASE64] = "bad base64 in bytes literal",
};

/* A literal of type @p want (or null if @p null_ok); an integer literal
 * is taken as a double where a double is wanted, if it is exact. */
static int
literal(parser *ps, crdt_value *out, crdt_vtype want, int null_ok,
        const char *what)
{
    char q[40];
    const char *start, *e = NULL, *w;
    epoch__lit_status st;
    crdt_value v;
    size_t n;
    double d;

    if (at_eol(ps))
        return fail(ps, CRDT_ECORRUPT, "missing %s", what);
    start = ps->p;
    st = epoch__literal_read(&v, &e, ps->l, ps->p, ps->end);
    if (st == EPOCH__LIT_NOMEM)
        return CRDT_ENOMEM;
    if (st == EPOCH__LIT_OK && e < ps->end && !is_ws(*e) && *e != '#' &&
        *e != ',' && *e != '=')
        st = EPOCH__LIT_BAD; /* e.g. 0abc, nullx, 01 */
    if (st == EPOCH__LIT_BAD) {
        n = word(ps, &w);
        return fail(ps, CRDT_ECORRUPT, "bad %s \"%s\"", what, show(q, w, n));
    }
    if (st != EPOCH__LIT_OK)
        return fail(ps, CRDT_ECORRUPT, "%s: %s", what, lit_errors[st]);
    ps->p = e;
    if (v.type == CRDT_VINT && want == CRDT_VDOUBLE) {
        d = (double)v.u.i;
        if (d >= 9223372036854775808.0 || (int64_t)d != v.u.i)
            return fail(ps, CRDT_ECORRUPT, "%s: integer has no exact double",
                        what);
        v = crdt_value_double(d);
    }
    if (v.type == CRDT_VNULL ? !null_ok : v.type != want) {
        ps->p = start;
        n = word(ps, &w);
        return fail(ps, CRDT_ECORRUPT, "%s \"%s\" is not a%s %s", what,
                    show(q, w, n), want == CRDT_VINT ? "n" : "",
                    epoch__type_name(want));
    }
    *out = v;
    return CRDT_OK;
}

static int
map_pairs(parser *ps, epoch__step *s)
{
    epoch__pair *pp, *tos;
    size_t cap = 0, i;
    int rc;

    for (;;) {
        if (s->npairs == cap) {
            cap = cap ? cap * 2 : 4;
            pp = realloc(s->pairs, cap * sizeof *pp);
            if (pp == NULL)
                return CRDT_ENOMEM;
            s->pairs = pp;
        }
        pp = &s->pairs[s->npairs];
        rc = literal(ps, &pp->from, s->type, 0, "map key");
        if (rc < 0)
            return rc;
        skip_ws(ps);
        if (ps->p == ps->end || *ps->p != '=')
            return fail(ps, CRDT_ECORRUPT, "expected \"=\" in map pair");
        ps->p++;
        rc = literal(ps, &pp->to, s->to_type, 0, "map value");
        if (rc < 0)
            return rc;
        s->npairs++;
        skip_ws(ps);
        if (ps->p == ps->end || *ps->p != ',')
            break;
        ps->p++;
    }
    epoch__pairs_sort(s->pairs, s->npairs); /* keeps (4) */
    for (i = 1; i < s->npairs; i++)
        if (crdt_value_cmp(&s->pairs[i - 1].from, &s->pairs[i].from) == 0)
            return fail(ps, CRDT_ECORRUPT, "duplicate map key");
    /* the inverse looks values up as keys, so they must be distinct too */
    tos = malloc(s->npairs * sizeof *tos);
    if (tos == NULL)
        return CRDT_ENOMEM;
    for (i = 0; i < s->npairs; i++) {
        tos[i].from = s->pairs[i].to;
        tos[i].to = s->pairs[i].from;
    }
    epoch__pairs_sort(tos, s->npairs);
    rc = CRDT_OK;
    for (i = 1; i < s->npairs && rc == CRDT_OK; i++)
        if (crdt_value_cmp(&tos[i - 1].from, &tos[i].from) == 0)
            rc = fail(ps, CRDT_ECORRUPT, "two map keys have the same value "
                      "(the inverse would be ambiguous)");
    free(tos);
    return rc;
}

/* The word "text" at the parser's position (consumed if so). */
static int
is_text_type(parser *ps)
{
    const char *save = ps->p, *w;
    size_t n;

    skip_ws(ps);
    w = ps->p;
    while (ps->p < ps->end && *ps->p >= 'a' && *ps->p <= 'z')
        ps->p++;
    n = (size_t)(ps->p - w);
    if (n == 4 && memcmp(w, "text", 4) == 0 && token_ends(ps))
        return 1;
    ps->p = save;
    return 0;
}

/* A type of a convert step: a value type, or "text" (*text set). */
static int
convert_type(parser *ps, crdt_vtype *out, int *text)
{
    *text = is_text_type(ps);
    if (*text) {
        *out = CRDT_VSTRING;
        return CRDT_OK;
    }
    return type(ps, out);
}

static int
step_convert(parser *ps, epoch__step *s)
{
    char q[40];
    const char *w;
    size_t n;
    int rc, state = 0, from_text = 0, to_text = 0;

    rc = name(ps, &s->field, "field name");
    if (rc == CRDT_OK)
        rc = convert_type(ps, &s->type, &from_text);
    if (rc == CRDT_OK)
        rc = arrow(ps);
    if (rc == CRDT_OK)
        rc = convert_type(ps, &s->to_type, &to_text);
    if (rc < 0)
        return rc;
    if (from_text || to_text) {
        if (from_text == to_text || s->type != CRDT_VSTRING ||
            s->to_type != CRDT_VSTRING)
            return fail(ps, CRDT_ECORRUPT,
                        "text converts to string and string to text only");
        if (word(ps, &w) > 0)
            return fail(ps, CRDT_ECORRUPT,
                        "a text conversion takes no map or default");
        s->retype = to_text ? EPOCH__TO_TEXT : EPOCH__TO_STRING;
        return CRDT_OK;
    }
    if (s->type == CRDT_VNULL || s->to_type == CRDT_VNULL)
        return fail(ps, CRDT_ECORRUPT, "cannot convert from or to null");
    /* optional clauses, each at most once, in this order */
    while (rc == CRDT_OK && (n = word(ps, &w)) > 0) {
        if (state < 1 && is(w, n, "map")) {
            rc = map_pairs(ps, s);
            state = 1;
        } else if (state < 2 && is(w, n, "default")) {
            rc = literal(ps, &s->def, s->to_type, 1, "default");
            s->has_def = 1;
            state = 2;
        } else if (state < 3 && is(w, n, "reverse-default")) {
            rc = literal(ps, &s->rdef, s->type, 1, "reverse-default");
            s->has_rdef = 1;
            state = 3;
        } else {
            return fail(ps, CRDT_ECORRUPT, "unexpected \"%s\"",
                        show(q, w, n));
        }
    }
    if (rc < 0)
        return rc;
    if (s->type == s->to_type && s->npairs == 0)
        return fail(ps, CRDT_ECORRUPT, "convert to the same type needs a map");
    if (!epoch__builtin_exists(s->type, s->to_type) && s->npairs == 0 &&
        !s->has_def)
        return fail(ps, CRDT_ECORRUPT,
                    "no built-in conversion from %s to %s: give a map",
                    epoch__type_name(s->type), epoch__type_name(s->to_type));
    return CRDT_OK;
}

/* Reads the step's arguments; the caller has read the keyword. */
static int
step_args(parser *ps, epoch__step *s)
{
    const char *w;
    size_t n;
    int rc = CRDT_OK;

    switch (s->kind) {
    case EPOCH__STEP_RENAME:
        rc = name(ps, &s->field, "field name");
        if (rc == CRDT_OK)
            rc = arrow(ps);
        if (rc == CRDT_OK)
            rc = name(ps, &s->to_field, "new field name");
        if (rc == CRDT_OK && strcmp(s->field, s->to_field) == 0)
            rc = fail(ps, CRDT_ECORRUPT, "rename to the same name");
        return rc;
    case EPOCH__STEP_ADD:
    case EPOCH__STEP_REMOVE:
        s->def = crdt_value_null();
        rc = name(ps, &s->field, "field name");
        if (rc < 0 || (s->kind == EPOCH__STEP_REMOVE && at_eol(ps)))
            return rc; /* remove f: type null, default null */
        rc = type(ps, &s->type);
        if (rc < 0 || at_eol(ps))
            return rc;
        n = word(ps, &w);
        if (!is(w, n, "default"))
            return fail(ps, CRDT_ECORRUPT, "expected \"default\"");
        return literal(ps, &s->def, s->type, 1, "default");
    case EPOCH__STEP_CONVERT:
        return step_convert(ps, s);
    case EPOCH__STEP_DROP:
        return CRDT_OK;
    }
    return CRDT_ECORRUPT;
}

static int
close_section(parser *ps)
{
    epoch__section *sec;
    int line = ps->line, rc;

    if (!ps->open)
        return CRDT_OK;
    ps->open = 0;
    sec = &ps->l->secs[ps->l->nsecs - 1];
    if (sec->nsteps == 0) { /* keeps (2) */
        ps->line = ps->sec_line;
        rc = fail(ps, CRDT_ECORRUPT, "empty section: collection \"%s\" has "
                  "no steps", sec->coll);
        ps->line = line;
        return rc;
    }
    return epoch__section_finish(ps->l, sec);
}

static int
header(parser *ps)
{
    epoch__section sec, *secs;
    int rc;

    rc = close_section(ps);
    if (rc < 0)
        return rc;
    memset(&sec, 0, sizeof sec);
    rc = name(ps, &sec.coll, "collection name");
    if (rc == CRDT_OK && epoch__lens_find(ps->l, sec.coll) != NULL)
        rc = fail(ps, CRDT_ECORRUPT, "second section for collection \"%s\"",
                  sec.coll); /* keeps (3) */
    if (rc == CRDT_OK)
        rc = version(ps, &sec.from);
    if (rc == CRDT_OK)
        rc = arrow(ps);
    if (rc == CRDT_OK)
        rc = version(ps, &sec.to);
    if (rc == CRDT_OK && sec.to <= sec.from)
        rc = fail(ps, CRDT_ECORRUPT, "TO (%u) must be greater than FROM (%u)",
                  (unsigned)sec.to, (unsigned)sec.from);
    if (rc < 0)
        return rc;
    if (ps->l->nsecs == ps->cap) {
        ps->cap = ps->cap ? ps->cap * 2 : 4;
        secs = realloc(ps->l->secs, ps->cap * sizeof *secs);
        if (secs == NULL)
            return CRDT_ENOMEM;
        ps->l->secs = secs;
    }
    ps->l->secs[ps->l->nsecs++] = sec;
    ps->open = 1;
    ps->sec_line = ps->line;
    ps->step_cap = 0;
    return CRDT_OK;
}

static const struct {
    const char *word;
    epoch__step_kind kind;
} step_words[] = {
    {"rename", EPOCH__STEP_RENAME},   {"add", EPOCH__STEP_ADD},
    {"remove", EPOCH__STEP_REMOVE},   {"convert", EPOCH__STEP_CONVERT},
    {"drop", EPOCH__STEP_DROP},
};

static int
step(parser *ps, const char *w, size_t n)
{
    epoch__section *sec;
    epoch__step *steps, *s;
    char q[40];
    size_t i;

    for (i = 0; i < sizeof step_words / sizeof step_words[0]; i++)
        if (is(w, n, step_words[i].word))
            break;
    if (i == sizeof step_words / sizeof step_words[0])
        return fail(ps, CRDT_ECORRUPT, "unknown step \"%s\"", show(q, w, n));
    if (!ps->open)
        return fail(ps, CRDT_ECORRUPT, "step before any collection line");
    sec = &ps->l->secs[ps->l->nsecs - 1];
    if (++ps->nsteps > EPOCH_LENS_MAX_STEPS)
        return fail(ps, CRDT_ELIMIT, "more than %d steps",
                    EPOCH_LENS_MAX_STEPS);
    if (sec->nsteps > 0 && (step_words[i].kind == EPOCH__STEP_DROP ||
                            sec->steps[0].kind == EPOCH__STEP_DROP))
        return fail(ps, CRDT_ECORRUPT,
                    "drop must be the only step of its section"); /* (2) */
    if (sec->nsteps == ps->step_cap) {
        ps->step_cap = ps->step_cap ? ps->step_cap * 2 : 8;
        steps = realloc(sec->steps, ps->step_cap * sizeof *steps);
        if (steps == NULL)
            return CRDT_ENOMEM;
        sec->steps = steps;
    }
    s = &sec->steps[sec->nsteps++]; /* counted now so free sees its pairs */
    memset(s, 0, sizeof *s);
    s->kind = step_words[i].kind;
    return step_args(ps, s);
}

static int
line(parser *ps)
{
    char q[40];
    const char *w;
    size_t n;
    int rc;

    if (at_eol(ps))
        return CRDT_OK; /* blank or comment */
    n = word(ps, &w);
    if (is(w, n, "collection"))
        rc = header(ps);
    else
        rc = step(ps, w, n);
    if (rc < 0)
        return rc;
    if (!at_eol(ps)) {
        n = word(ps, &w);
        return fail(ps, CRDT_ECORRUPT, "unexpected \"%s\" at end of line",
                    show(q, w, n));
    }
    return CRDT_OK;
}

/* The line holding byte @p off, for errors about the file as a whole. */
static int
line_of(const char *text, size_t off)
{
    int nl = 1;
    size_t i;

    for (i = 0; i < off; i++)
        nl += text[i] == '\n';
    return nl;
}

static int
parse(parser *ps, const char *text, size_t len)
{
    const char *p = text, *end = text + len, *nl;
    int rc;

    if (len > EPOCH_LENS_MAX_FILE) {
        ps->line = line_of(text, EPOCH_LENS_MAX_FILE);
        return fail(ps, CRDT_ELIMIT, "file longer than %d bytes",
                    EPOCH_LENS_MAX_FILE);
    }
    for (ps->line = 1; p < end; ps->line++) {
        nl = memchr(p, '\n', (size_t)(end - p));
        ps->p = p;
        ps->end = nl != NULL ? nl : end;
        p = nl != NULL ? nl + 1 : end;
        if (ps->end > ps->p && ps->end[-1] == '\r')
            ps->end--;
        if (ps->end - ps->p > EPOCH_LENS_MAX_LINE)
            return fail(ps, CRDT_ELIMIT, "line longer than %d bytes",
                        EPOCH_LENS_MAX_LINE);
        rc = line(ps);
        if (rc < 0)
            return rc;
    }
    rc = close_section(ps);
    if (rc < 0)
        return rc;
    if (ps->l->nsecs == 0) {
        ps->line = 0;
        return fail(ps, CRDT_ECORRUPT, "no collection section");
    }
    return CRDT_OK;
}

int
epoch_lens_parse(epoch_lens **out, const char *text, size_t len,
                 epoch_lens_error *err)
{
    parser ps;
    int rc;

    if (out == NULL || (text == NULL && len > 0))
        return CRDT_EINVAL;
    memset(&ps, 0, sizeof ps);
    ps.err = err;
    ps.l = calloc(1, sizeof *ps.l);
    if (ps.l == NULL)
        return CRDT_ENOMEM;
    rc = parse(&ps, text != NULL ? text : "", len);
    if (rc == CRDT_ENOMEM)
        fail(&ps, rc, "out of memory");
    if (rc < 0) {
        epoch_lens_free(ps.l); /* keeps (6) */
        return rc;
    }
    if (err != NULL) {
        err->line = 0;
        err->message[0] = '\0';
    }
    *out = ps.l;
    return CRDT_OK;
}
