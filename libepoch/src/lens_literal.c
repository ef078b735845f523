/*
 * lens_literal.c: reading JSON scalar literals (and {"$bytes":"..."}) out
 * of a lens line, and the strict number grammars that conversions share.
 *
 * Invariants:
 *  (1) Only JSON syntax is accepted (RFC 8259 numbers, strings, true,
 *      false, null), so a literal means the same to every tool reading
 *      the file; strtod() only ever sees text that passed the grammar.
 *  (2) Decoded strings are valid UTF-8 (lone surrogates are refused);
 *      bytes use standard base64 with padding and zero spare bits, so
 *      every bytes value has exactly one spelling.
 *  (3) A decoded string or bytes value lives in the lens's arena.
 */
#include "internal.h" /* libcrdt's strict UTF-8 check */
#include "lens_internal.h"

#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

/* Length of the JSON number at the start of [p, end), 0 if none. */
static size_t
number_span(const char *p, const char *end, int *is_int)
{
    const char *s = p;

    *is_int = 1;
    if (p < end && *p == '-')
        p++;
    if (p == end || *p < '0' || *p > '9')
        return 0;
    if (*p == '0')
        p++;
    else
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    if (p < end && *p == '.') {
        *is_int = 0;
        if (++p == end || *p < '0' || *p > '9')
            return 0;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        *is_int = 0;
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (p == end || *p < '0' || *p > '9')
            return 0;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    return (size_t)(p - s);
}

/* 0 ok, -1 not a JSON integer, -2 out of int64 range. */
int
epoch__int_parse(int64_t *out, const char *p, size_t len)
{
    uint64_t v = 0, lim;
    int is_int, neg = len > 0 && p[0] == '-';
    size_t i;

    if (number_span(p, p + len, &is_int) != len || !is_int)
        return -1;
    lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (i = (size_t)neg; i < len; i++) {
        unsigned dgt = (unsigned)(p[i] - '0');

        if (v > (lim - dgt) / 10)
            return -2;
        v = v * 10 + dgt;
    }
    if (neg)
        *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    else
        *out = (int64_t)v;
    return 0;
}

/* 0 ok, -1 not a JSON number, -2 not finite as a double. */
int
epoch__double_parse(double *out, const char *p, size_t len)
{
    char buf[512], *stop;
    int is_int;
    double d;

    if (number_span(p, p + len, &is_int) != len)
        return -1;
    if (len >= sizeof buf)
        return -2; /* no double needs this many digits */
    memcpy(buf, p, len);
    buf[len] = '\0';
    d = strtod(buf, &stop);
    if (stop != buf + len)
        return -1; /* only under a locale whose decimal point is not '.' */
    if (!isfinite(d))
        return -2;
    *out = d;
    return 0;
}

static int
hex4(const char *p, const char *end, uint32_t *out)
{
    uint32_t v = 0;
    int i;

    if (end - p < 4)
        return -1;
    for (i = 0; i < 4; i++) {
        char c = p[i];

        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (uint32_t)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static size_t
utf8_put(char *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* One \uXXXX escape (or a surrogate pair of them) at @p p, after the
 * backslash and 'u'. */
static int
unicode_escape(const char **pp, const char *end, char *o, size_t *olen)
{
    const char *p = *pp;
    uint32_t cp, lo;

    if (hex4(p, end, &cp) < 0)
        return -1;
    p += 4;
    if (cp >= 0xDC00 && cp <= 0xDFFF)
        return -1; /* a low surrogate cannot come first */
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (end - p < 6 || p[0] != '\\' || p[1] != 'u' ||
            hex4(p + 2, end, &lo) < 0 || lo < 0xDC00 || lo > 0xDFFF)
            return -1;
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        p += 6;
    }
    *olen = utf8_put(o, cp);
    *pp = p;
    return 0;
}

/* A JSON string starting at the quote @p p; decoded into the arena
 * (keeps (3)). A decoded string is never longer than its source. */
static epoch__lit_status
string_read(crdt_value *out, const char **endp, epoch_lens *l, const char *p,
            const char *end)
{
    char *o = epoch__arena_alloc(l, (size_t)(end - p) + 1);
    size_t n = 0, k;

    if (o == NULL)
        return EPOCH__LIT_NOMEM;
    for (p++;; p++) {
        if (p == end)
            return EPOCH__LIT_UNTERMINATED;
        if (*p == '"')
            break;
        if ((unsigned char)*p < 0x20)
            return EPOCH__LIT_CONTROL;
        if (*p != '\\') {
            o[n++] = *p;
            continue;
        }
        if (++p == end)
            return EPOCH__LIT_UNTERMINATED;
        switch (*p) {
        case '"': case '\\': case '/':
            o[n++] = *p;
            break;
        case 'b': o[n++] = '\b'; break;
        case 'f': o[n++] = '\f'; break;
        case 'n': o[n++] = '\n'; break;
        case 'r': o[n++] = '\r'; break;
        case 't': o[n++] = '\t'; break;
        case 'u':
            p++;
            if (unicode_escape(&p, end, o + n, &k) < 0)
                return EPOCH__LIT_ESCAPE;
            n += k;
            p--; /* the loop steps past the last hex digit */
            break;
        default:
            return EPOCH__LIT_ESCAPE;
        }
    }
    if (!crdt__utf8_valid(o, n))
        return EPOCH__LIT_UTF8; /* keeps (2) */
    *out = crdt_value_str(o, n);
    *endp = p + 1;
    return EPOCH__LIT_OK;
}

/* Strict base64 (keeps (2)): libsodium's decoder with the standard
 * alphabet, padding required, no whitespace, spare bits zero, and the
 * whole string consumed. @p o holds @p len + 1 bytes, more than any
 * decoding of @p len characters needs. */
static int
base64_decode(char *o, size_t *olen, const char *p, size_t len)
{
    return sodium_base642bin((unsigned char *)o, len + 1, p, len,
                             NULL, olen, NULL,
                             sodium_base64_VARIANT_ORIGINAL) == 0 ? 0 : -1;
}

static const char *
skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    return p;
}

static int
expect(const char **pp, const char *end, const char *lit)
{
    size_t n = strlen(lit);
    const char *p = skip_ws(*pp, end);

    if ((size_t)(end - p) < n || memcmp(p, lit, n) != 0)
        return -1;
    *pp = p + n;
    return 0;
}

/* {"$bytes":"<base64>"}, spaces allowed between the JSON tokens. */
static epoch__lit_status
bytes_read(crdt_value *out, const char **endp, epoch_lens *l, const char *p,
           const char *end)
{
    const char *b64, *q;
    size_t n;
    char *o;

    p++;
    if (expect(&p, end, "\"$bytes\"") < 0 || expect(&p, end, ":") < 0 ||
        expect(&p, end, "\"") < 0)
        return EPOCH__LIT_BAD;
    b64 = p;
    q = memchr(p, '"', (size_t)(end - p));
    if (q == NULL)
        return EPOCH__LIT_UNTERMINATED;
    p = q + 1;
    if (expect(&p, end, "}") < 0)
        return EPOCH__LIT_BAD;
    o = epoch__arena_alloc(l, (size_t)(q - b64) + 1);
    if (o == NULL)
        return EPOCH__LIT_NOMEM;
    if (base64_decode(o, &n, b64, (size_t)(q - b64)) < 0)
        return EPOCH__LIT_BASE64;
    *out = crdt_value_bytes(o, n);
    *endp = p;
    return EPOCH__LIT_OK;
}

static int
keyword(const char *p, const char *end, const char *kw)
{
    size_t n = strlen(kw);

    return (size_t)(end - p) >= n && memcmp(p, kw, n) == 0;
}

/* Read one literal at @p p (no leading space). The caller checks what
 * follows *endp. */
epoch__lit_status
epoch__literal_read(crdt_value *out, const char **endp, epoch_lens *l,
                    const char *p, const char *end)
{
    size_t n;
    int is_int, rc;
    int64_t i;
    double d;

    if (p == end)
        return EPOCH__LIT_BAD;
    if (*p == '"')
        return string_read(out, endp, l, p, end);
    if (*p == '{')
        return bytes_read(out, endp, l, p, end);
    if (keyword(p, end, "true") || keyword(p, end, "false")) {
        *out = crdt_value_bool(*p == 't');
        *endp = p + (*p == 't' ? 4 : 5);
        return EPOCH__LIT_OK;
    }
    if (keyword(p, end, "null")) {
        *out = crdt_value_null();
        *endp = p + 4;
        return EPOCH__LIT_OK;
    }
    n = number_span(p, end, &is_int);
    if (n == 0)
        return EPOCH__LIT_BAD;
    if (is_int) {
        rc = epoch__int_parse(&i, p, n);
        if (rc < 0)
            return EPOCH__LIT_RANGE;
        *out = crdt_value_int(i);
    } else {
        rc = epoch__double_parse(&d, p, n);
        if (rc < 0)
            return EPOCH__LIT_RANGE;
        *out = crdt_value_double(d);
    }
    *endp = p + n;
    return EPOCH__LIT_OK;
}
