/*
 * value.c: VALUEs between the command line, JSON and crdt_value.
 *
 * The JSON forms (docs/cli.md, "Values"): null, true/false, an integer (int64),
 * a real, a string, and bytes as {"$bytes":"<base64>"} (the ORIGINAL
 * alphabet with padding) both ways. On the command line, text that is
 * not valid JSON is the string itself, except a number too big to hold,
 * which is refused rather than silently kept as text.
 */
#include <errno.h>
#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define BYTES_KEY "$bytes"

void
cli_value_free(cli_value *cv)
{
    if (cv == NULL)
        return;
    json_decref(cv->json);
    free(cv->bytes);
    cv->json = NULL;
    cv->bytes = NULL;
}

static int
bytes_from_json(cli_value *out, json_t *j, const char **why)
{
    json_t *s = json_object_get(j, BYTES_KEY);
    size_t b64_len, max, len;
    const char *b64;

    if (json_object_size(j) != 1 || !json_is_string(s)) {
        *why = "a value must be a JSON scalar or {\"$bytes\":\"<base64>\"}";
        return CLI_EDATA;
    }
    b64 = json_string_value(s);
    b64_len = json_string_length(s);
    max = b64_len / 4 * 3 + 3;
    out->bytes = malloc(max);
    if (out->bytes == NULL) {
        *why = "out of memory";
        return CLI_EDATA;
    }
    /* NULL end pointer: the whole string must be valid base64 */
    if (sodium_base642bin(out->bytes, max, b64, b64_len, NULL, &len, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0) {
        free(out->bytes);
        out->bytes = NULL;
        *why = "invalid base64 in $bytes";
        return CLI_EDATA;
    }
    out->v = crdt_value_bytes(out->bytes, len);
    return CLI_OK;
}

int
cli_value_from_json(cli_value *out, json_t *j, const char **why)
{
    memset(out, 0, sizeof *out);
    switch (json_typeof(j)) {
    case JSON_NULL: out->v = crdt_value_null(); return CLI_OK;
    case JSON_TRUE: out->v = crdt_value_bool(1); return CLI_OK;
    case JSON_FALSE: out->v = crdt_value_bool(0); return CLI_OK;
    case JSON_INTEGER:
        out->v = crdt_value_int((int64_t)json_integer_value(j));
        return CLI_OK;
    case JSON_REAL:
        out->v = crdt_value_double(json_real_value(j));
        return CLI_OK;
    case JSON_STRING:
        out->json = json_incref(j);
        out->v = crdt_value_str(json_string_value(j), json_string_length(j));
        return CLI_OK;
    case JSON_OBJECT: return bytes_from_json(out, j, why);
    default:
        *why = "a value must be a JSON scalar or {\"$bytes\":\"<base64>\"}";
        return CLI_EDATA;
    }
}

int
cli_value_parse_arg(cli_value *out, const char *arg, const char **why)
{
    json_error_t err;
    json_t *j;
    int rc;

    memset(out, 0, sizeof *out);
    j = json_loads(arg, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    if (j == NULL) {
        if (json_error_code(&err) == json_error_numeric_overflow) {
            *why = "number out of range (integers are 64-bit)";
            return CLI_EUSAGE;
        }
        out->v = crdt_value_str(arg, strlen(arg)); /* a bare word */
        return CLI_OK;
    }
    rc = cli_value_from_json(out, j, why);
    json_decref(j);
    return rc == CLI_OK ? CLI_OK : CLI_EUSAGE;
}

int
cli_parse_int64(long long *out, const char *s)
{
    const char *p = s;
    char *end;
    long long v;

    if (*p == '-')
        p++;
    if (*p < '0' || *p > '9')
        return -1;
    for (; *p; p++)
        if (*p < '0' || *p > '9')
            return -1;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *out = v;
    return 0;
}

json_t *
cli_value_to_json(const crdt_value *v)
{
    switch (v->type) {
    case CRDT_VNULL: return json_null();
    case CRDT_VBOOL: return json_boolean(v->u.b);
    case CRDT_VINT: return json_integer((json_int_t)v->u.i);
    case CRDT_VDOUBLE:
        /* JSON has no NaN or infinity; a peer could still send one */
        return isfinite(v->u.d) ? json_real(v->u.d) : json_null();
    case CRDT_VSTRING: {
        json_t *s = json_stringn(v->u.s.ptr, v->u.s.len);
        return s ? s : json_stringn_nocheck(v->u.s.ptr, v->u.s.len);
    }
    case CRDT_VBYTES: {
        size_t n = sodium_base64_ENCODED_LEN(v->u.s.len,
                                             sodium_base64_VARIANT_ORIGINAL);
        char *b64 = malloc(n);
        json_t *o;

        if (b64 == NULL)
            return NULL;
        sodium_bin2base64(b64, n, (const unsigned char *)v->u.s.ptr,
                          v->u.s.len, sodium_base64_VARIANT_ORIGINAL);
        o = json_object();
        if (o != NULL && json_object_set_new(o, BYTES_KEY, json_string(b64))) {
            json_decref(o);
            o = NULL;
        }
        free(b64);
        return o;
    }
    }
    return NULL;
}

json_t *
cli_field_to_json(const crdt_field *f)
{
    json_t *a;

    switch (f->kind) {
    case CRDT_FIELD_REGISTER:
    case CRDT_FIELD_TEXT: /* the whole text, a string */
        return cli_value_to_json(&f->value);
    case CRDT_FIELD_COUNTER: return json_integer((json_int_t)f->counter);
    case CRDT_FIELD_SET:
    case CRDT_FIELD_LIST: /* elements in list order */
        a = json_array();
        for (size_t i = 0; a != NULL && i < f->n_elems; i++)
            if (json_array_append_new(a, cli_value_to_json(&f->elems[i]))) {
                json_decref(a);
                a = NULL;
            }
        return a;
    }
    return NULL;
}

/* Fewest significant digits (1..17) that read back as exactly @p d:
 * libcrdt's rule, the one a lens's text uses too. */
static int
real_digits(double d)
{
    return crdt_double_digits(d);
}

/*
 * jansson prints every real of one dump with one precision. Use the most
 * any real needs; if that would lengthen another one (0.1 printed with
 * 17 digits is 0.10000000000000001), print token by token instead.
 */
typedef struct {
    int max;   /* most digits any real needs */
    int mixed; /* some real reads worse at @max than at its own */
} digits_info;

static void
scan_reals(json_t *j, digits_info *di, int pass)
{
    char a[40], b[40];
    const char *key;
    json_t *v;
    size_t i;
    int p;

    switch (json_typeof(j)) {
    case JSON_REAL:
        p = real_digits(json_real_value(j));
        if (pass == 0) {
            di->max = p > di->max ? p : di->max;
        } else if (p != di->max) {
            snprintf(a, sizeof a, "%.*g", p, json_real_value(j));
            snprintf(b, sizeof b, "%.*g", di->max, json_real_value(j));
            di->mixed |= strcmp(a, b) != 0;
        }
        return;
    case JSON_ARRAY:
        json_array_foreach(j, i, v)
            scan_reals(v, di, pass);
        return;
    case JSON_OBJECT:
        json_object_foreach(j, key, v)
            scan_reals(v, di, pass);
        return;
    default: return;
    }
}

/* One scalar through jansson, reals at their own precision. */
static int
put_scalar(FILE *f, json_t *j)
{
    char small[256], *big = NULL;
    size_t flags = JSON_COMPACT | JSON_ENCODE_ANY, n;
    int rc;

    if (json_is_real(j))
        flags |= JSON_REAL_PRECISION(real_digits(json_real_value(j)));
    n = json_dumpb(j, small, sizeof small, flags);
    if (n == 0)
        return -1;
    if (n > sizeof small) {
        big = json_dumps(j, flags);
        if (big == NULL)
            return -1;
    }
    rc = fwrite(big ? big : small, 1, n, f) == n ? 0 : -1;
    free(big);
    return rc;
}

static int
put_tokens(FILE *f, json_t *j)
{
    const char *key;
    json_t *v, *k;
    size_t i;
    int rc;

    switch (json_typeof(j)) {
    case JSON_ARRAY:
        fputc('[', f);
        json_array_foreach(j, i, v) {
            if (i > 0)
                fputc(',', f);
            if (put_tokens(f, v) != 0)
                return -1;
        }
        return fputc(']', f) == EOF ? -1 : 0;
    case JSON_OBJECT:
        fputc('{', f);
        i = 0;
        json_object_foreach(j, key, v) {
            if (i++ > 0)
                fputc(',', f);
            k = json_string(key);
            rc = k ? put_scalar(f, k) : -1;
            json_decref(k);
            if (rc != 0 || fputc(':', f) == EOF || put_tokens(f, v) != 0)
                return -1;
        }
        return fputc('}', f) == EOF ? -1 : 0;
    default: return put_scalar(f, j);
    }
}

int
cli_emit(json_t *j)
{
    digits_info di = { 1, 0 };
    char *s = NULL;
    int rc = CLI_OK, bad;

    if (j == NULL)
        return cli_error(CLI_EIO, "output", "out of memory");
    scan_reals(j, &di, 0);
    scan_reals(j, &di, 1);
    if (di.mixed) {
        bad = put_tokens(stdout, j) != 0;
    } else {
        s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY |
                              JSON_REAL_PRECISION(di.max));
        bad = s == NULL || fputs(s, stdout) == EOF;
    }
    json_decref(j);
    if (bad || putchar('\n') == EOF)
        rc = cli_error(CLI_EIO, "write output", "%s",
                       errno ? strerror(errno) : "out of memory");
    free(s);
    return rc;
}
