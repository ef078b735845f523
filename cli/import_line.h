/*
 * import_line.h: one line of `strata import`, parsed and checked without
 * a replica (cmd_import.c applies it; tests/fuzz/fuzz_import.c fuzzes it).
 *
 * A line is one op, the shape `strata log --json` prints:
 *   {"op":"put","coll":C,"doc":D,"field":F,"value":V}
 *   {"op":"incr","coll":C,"doc":D,"field":F,"n":N}     ("value" also)
 *   {"op":"sadd"|"srem","coll":C,"doc":D,"field":F,"value":V}
 *   {"op":"del","coll":C,"doc":D}        {"op":"del",...,"field":F}
 *   {"op":"tins","coll":C,"doc":D,"field":F,"pos":N,"text":S}
 *   {"op":"tdel","coll":C,"doc":D,"field":F,"pos":N,"len":L}
 *   {"op":"lins","coll":C,"doc":D,"field":F,"pos":N,"value":V}
 *   {"op":"ldel","coll":C,"doc":D,"field":F,"pos":N,"len":L}
 *   {"op":"lset","coll":C,"doc":D,"field":F,"pos":N,"value":V}
 * pos counts code points of a text (elements of a list) from 0; len is
 * at least 1; text is a non-empty string.
 */
#ifndef STRATA_IMPORT_LINE_H
#define STRATA_IMPORT_LINE_H

#include <stddef.h>

#include "cli.h"

/** Longest line accepted, in bytes (without its newline). */
#define CLI_IMPORT_LINE_LIMIT (1024u * 1024)

typedef enum {
    CLI_IMPORT_PUT,
    CLI_IMPORT_INCR,
    CLI_IMPORT_SADD,
    CLI_IMPORT_SREM,
    CLI_IMPORT_DEL,
    CLI_IMPORT_TINS,
    CLI_IMPORT_TDEL,
    CLI_IMPORT_LINS,
    CLI_IMPORT_LDEL,
    CLI_IMPORT_LSET
} cli_import_kind;

/** Largest pos or len accepted (the library refuses what is past the
 *  end; this only keeps the numbers in range). */
#define CLI_SEQ_MAX ((json_int_t)1 << 40)

/** One parsed line. Release with cli_import_op_free(). */
typedef struct {
    cli_import_kind kind;
    const char *coll, *doc, *field; /* into @c json; field NULL: none */
    cli_value value;                /* put, sadd, srem */
    json_int_t n;                   /* incr */
    json_int_t pos, len;            /* tins..lset (len: tdel, ldel) */
    const char *text;               /* tins, into @c json */
    size_t text_len;                /* bytes */
    json_t *json;                   /* the parsed line */
} cli_import_op;

/**
 * Parse the line @p line of @p len bytes (without the newline): JSON,
 * the op's shape and names, and its value. The library checks the rest
 * (UTF-8, sizes, types) when the op is applied.
 * @param[out] why  on -1, the reason (@p why_size bytes, NUL-terminated)
 * @return 1 (blank line: nothing to do); 0 (@p op filled: release it
 *         with cli_import_op_free()); -1 (a bad line; @p op is empty).
 */
int cli_import_line_parse(cli_import_op *op, const char *line, size_t len,
                          char *why, size_t why_size);

/** Release what @p op holds. Safe on an empty or released op. */
void cli_import_op_free(cli_import_op *op);

#endif
