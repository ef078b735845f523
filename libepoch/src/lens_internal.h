/*
 * lens_internal.h: the parsed form of a lens and of a document, shared by
 * the lens_*.c files. Nothing here is exported.
 *
 * Invariants of a parsed lens:
 *  (1) Every string (names, literal strings and bytes) lives in the
 *      lens's arena and is freed with it; names are NUL-terminated.
 *  (2) A section has at least one step; a drop step is alone in it.
 *  (3) No two sections name the same collection.
 *  (4) Convert pairs are sorted by their left side; no two left sides
 *      and no two right sides are equal (so the inverse is a function).
 *  (5) Defaults (section.defaults) are derived from the steps by
 *      epoch__section_finish(); nothing else writes them.
 *  (6) A lens is handed out whole or not at all: parse and invert free
 *      what they built when they fail.
 */
#ifndef EPOCH_LENS_INTERNAL_H
#define EPOCH_LENS_INTERNAL_H

#include "epoch/lens.h"

typedef enum {
    EPOCH__STEP_RENAME,
    EPOCH__STEP_ADD,
    EPOCH__STEP_REMOVE,
    EPOCH__STEP_CONVERT,
    EPOCH__STEP_DROP
} epoch__step_kind;

typedef struct {
    crdt_value from, to;
} epoch__pair;

typedef struct {
    epoch__step_kind kind;
    const char *field;    /* all but drop; rename: the old name */
    const char *to_field; /* rename: the new name */
    crdt_vtype type;      /* add, remove: the field's; convert: source */
    crdt_vtype to_type;   /* convert: target */
    crdt_value def;       /* add, remove (null if not given); convert */
    int has_def;          /* convert: def given (used going forward) */
    crdt_value rdef;      /* convert: reverse-default (its inverse's def) */
    int has_rdef;
    epoch__pair *pairs; /* convert: sorted by from, keeps (4) */
    size_t npairs;
    int retype;         /* convert between a string register and a text
                           field: EPOCH__TO_TEXT or EPOCH__TO_STRING (type
                           and to_type are string then; no map, no
                           default); 0 for a value conversion */
} epoch__step;

enum { EPOCH__TO_TEXT = 1, EPOCH__TO_STRING = 2 };

typedef struct {
    const char *field;
    crdt_value value;
} epoch__default;

typedef struct {
    const char *coll;
    uint32_t from, to;
    epoch__step *steps;
    size_t nsteps;
    epoch__default *defaults; /* keeps (5) */
    size_t ndefaults;
    int drops;
} epoch__section;

typedef struct epoch__block epoch__block;

struct epoch_lens {
    epoch__section *secs;
    size_t nsecs;
    epoch__block *arena; /* keeps (1) */
};

/* lens.c: the string <-> text conversions of @p l, in section and step
 * order: the @p i-th one's collection, its field's name at the end of
 * the section (after later renames; *field NULL if a later step removes
 * it) and its direction. CRDT_ENOTFOUND past the last. */
int epoch__lens_retype(const epoch_lens *l, size_t i, const char **coll,
                       const char **field, int *dir);
/* The direction of the first string <-> text conversion that field
 * @p field of @p coll meets in @p l (following renames), 0 if none. */
int epoch__lens_retypes(const epoch_lens *l, const char *coll,
                        const char *field);

/* lens.c: allocation inside a lens, shared queries. */
void *epoch__arena_alloc(epoch_lens *l, size_t n);
char *epoch__arena_strdup(epoch_lens *l, const char *p, size_t len);
int epoch__value_intern(epoch_lens *l, crdt_value *v);
int epoch__section_finish(epoch_lens *l, epoch__section *s);
const epoch__section *epoch__lens_find(const epoch_lens *l,
                                       const char *coll);
int epoch__buf_reserve(epoch_buf *b, size_t extra);
int epoch__buf_put(epoch_buf *b, const char *p, size_t n);

/* lens_value.c: literals and copies (the value order is crdt_value_cmp). */
const char *epoch__type_name(crdt_vtype t);
int epoch__type_parse(crdt_vtype *out, const char *p, size_t len);
int epoch__double_shortest(char *buf, size_t size, double d);
int epoch__literal_format(epoch_buf *b, const crdt_value *v);
void epoch__pairs_sort(epoch__pair *p, size_t n);

/* lens_literal.c: reads one JSON scalar literal from a line. */
typedef enum {
    EPOCH__LIT_OK = 0,
    EPOCH__LIT_BAD,          /* not a literal at all */
    EPOCH__LIT_UNTERMINATED, /* string without its closing quote */
    EPOCH__LIT_ESCAPE,       /* bad backslash escape or \u sequence */
    EPOCH__LIT_CONTROL,      /* raw control character in a string */
    EPOCH__LIT_UTF8,         /* string is not UTF-8 */
    EPOCH__LIT_RANGE,        /* integer or double out of range */
    EPOCH__LIT_BASE64,       /* bad {"$bytes":...} payload */
    EPOCH__LIT_NOMEM
} epoch__lit_status;
epoch__lit_status epoch__literal_read(crdt_value *out, const char **endp,
                                      epoch_lens *l, const char *p,
                                      const char *end);
int epoch__int_parse(int64_t *out, const char *p, size_t len);
int epoch__double_parse(double *out, const char *p, size_t len);

/* lens_convert.c: one convert step applied to one value. */
int epoch__convert(crdt_value *out, epoch_buf *scratch,
                   const epoch__step *s, const crdt_value *in,
                   const char **reason_out);
int epoch__builtin_exists(crdt_vtype from, crdt_vtype to);

/* lens_doc.c: the document container. */
typedef struct {
    char *name;
    epoch_field_kind kind;
    crdt_value reg;    /* register: owned copy */
    int64_t counter;   /* counter */
    crdt_value *elems; /* set: owned copies, sorted, distinct */
    size_t nelems;
} epoch__field;

struct epoch_doc {
    epoch__field *fields; /* sorted by name, distinct names */
    size_t nfields, cap;
};

epoch__field *epoch__doc_find(const epoch_doc *doc, const char *name);
int epoch__doc_rename(epoch_doc *doc, const char *from, const char *to);
int epoch__value_copy(crdt_value *out, const crdt_value *in);
void epoch__value_release(crdt_value *v);
void epoch__values_normalize(crdt_value *v, size_t *n);
void epoch__doc_swap(epoch_doc *a, epoch_doc *b);

#endif
