/**
 * @file epoch/lens.h
 * Lenses: declarative, invertible schema migrations for one or more
 * collections, and the transforms they define on documents and ops.
 *
 * A lens is parsed from text (the language is in docs/lenses.md), is
 * immutable afterwards, and can be shared by threads for reading. This
 * module is pure: no storage, no I/O, no global state. What it promises
 * the migration builder and the sync layer above it:
 *  - epoch_lens_format() gives canonical text, the form that is stored and
 *    hashed; parsing that text gives a lens that formats identically;
 *  - epoch_lens_invert() of an inverse formats identically to the original;
 *  - transforming a document equals transforming every op that built it
 *    (field renames, removals and value conversions are the same functions
 *    in epoch_lens_apply_doc() and epoch_lens_apply_op()).
 */
#ifndef EPOCH_LENS_H
#define EPOCH_LENS_H

#include <stddef.h>
#include <stdint.h>

#include "crdt/error.h"
#include "crdt/value.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Release a buffer libepoch allocated for the caller (the text of
 * epoch_lens_format()). NULL does nothing. Use this rather than free():
 * the library may use another allocator than the caller. Declared here,
 * so epoch/lens.h and epoch/epoch.h (which includes it) both have it.
 */
EPOCH_API void epoch_free(void *p);

/** A parsed lens: sections of steps, one per collection. Opaque. */
typedef struct epoch_lens epoch_lens;

/** Where and why a lens file was refused. */
typedef struct {
    int line;          /**< 1-based; 0 when it concerns the whole file */
    char message[160]; /**< NUL-terminated, without the line number;
                            print as "line %d: %s" */
} epoch_lens_error;

/** Limits enforced by epoch_lens_parse() (CRDT_ELIMIT). */
#define EPOCH_LENS_MAX_FILE (1024 * 1024) /**< bytes in a file */
#define EPOCH_LENS_MAX_STEPS 10000        /**< steps in a file */
#define EPOCH_LENS_MAX_LINE 4096          /**< bytes in a line, w/o EOL */
#define EPOCH_LENS_MAX_NAME 64            /**< bytes in a name */

/**
 * A growable byte buffer that receives converted strings. Start from
 * EPOCH_BUF_INIT; release with epoch_buf_free(). It may be reused for
 * any number of calls.
 */
typedef struct {
    char *data;
    size_t len, cap;
} epoch_buf;
#define EPOCH_BUF_INIT { NULL, 0, 0 }

/** Release the memory of @p b and reset it to empty. NULL does nothing. */
EPOCH_API void epoch_buf_free(epoch_buf *b);

/**
 * Parse a lens file.
 * @param[out] out  the lens; release it with epoch_lens_free()
 * @param text      @p len bytes of UTF-8; need not be NUL-terminated
 * @param[out] err  on CRDT_ECORRUPT or CRDT_ELIMIT, the line and reason;
 *                  may be NULL
 * @return CRDT_OK; CRDT_ECORRUPT (syntax or meaning); CRDT_ELIMIT (file,
 *         line or step count over the limits above); CRDT_ENOMEM;
 *         CRDT_EINVAL (@p out NULL, or @p text NULL with @p len > 0).
 *         On error nothing is returned and *out is untouched.
 */
EPOCH_API int epoch_lens_parse(epoch_lens **out, const char *text, size_t len,
                     epoch_lens_error *err);

/** Release @p l. Passing NULL does nothing. */
EPOCH_API void epoch_lens_free(epoch_lens *l);

/**
 * The canonical text of @p l: one line per section header and per step,
 * sections and steps in order, single spaces, "\n" line endings, no
 * comments, map pairs sorted. This is what gets stored and hashed.
 * @param[out] text_out  NUL-terminated; release it with epoch_free()
 * @param[out] len_out   bytes before the NUL; may be NULL
 * @return CRDT_OK; CRDT_ENOMEM; CRDT_EINVAL.
 */
EPOCH_API int epoch_lens_format(char **text_out, size_t *len_out, const epoch_lens *l);

/**
 * The inverse of @p l: sections and their steps in reverse order, each
 * step inverted, FROM and TO swapped. Works on every lens; a lens that
 * drops a collection inverts to one that drops it too, which does not
 * restore data (see epoch_lens_invertible()). The inverse's sections go
 * from a higher to a lower version, so its text does not parse back:
 * store the forward lens and invert it when needed.
 * @param[out] out  the inverse; release it with epoch_lens_free()
 * @return CRDT_OK; CRDT_ENOMEM; CRDT_EINVAL.
 */
EPOCH_API int epoch_lens_invert(epoch_lens **out, const epoch_lens *l);

/** 1 if every step of @p l can be undone by its inverse, 0 if it drops. */
EPOCH_API int epoch_lens_invertible(const epoch_lens *l);

/** The number of sections (collections) in @p l. */
EPOCH_API size_t epoch_lens_section_count(const epoch_lens *l);

/**
 * Section @p i of @p l.
 * @param[out] coll_out  the collection; points into @p l, do not free
 * @param[out] from_out  the version it migrates from; may be NULL
 * @param[out] to_out    the version it migrates to; may be NULL
 * @return CRDT_OK; CRDT_EINVAL (@p i out of range).
 */
EPOCH_API int epoch_lens_section(const epoch_lens *l, size_t i, const char **coll_out,
                       uint32_t *from_out, uint32_t *to_out);

/**
 * The name that field @p field of collection @p coll has after the lens.
 * @param[out] field_out  @p field itself if unchanged, else a name that
 *                        points into @p l (valid while @p l lives)
 * @return CRDT_OK (also when @p coll is not in the lens); CRDT_ENOTFOUND
 *         (the field is removed, or the collection dropped); CRDT_EINVAL.
 */
EPOCH_API int epoch_lens_map_field(const char **field_out, const epoch_lens *l,
                         const char *coll, const char *field);

/**
 * Convert a value of field @p field (its name BEFORE the lens) of
 * collection @p coll through every convert step that hits the field,
 * following renames.
 * @param[out] out     the converted value; its strings point into @p in,
 *                     into @p l or into @p scratch, and stay valid until
 *                     the next call using @p scratch or epoch_buf_free()
 * @param scratch      receives converted strings; @p in may point into
 *                     it (chaining lenses through one buffer is fine)
 * @param[out] reason_out  on CRDT_ETYPE or CRDT_ENOTFOUND, a static
 *                     sentence saying why; may be NULL
 * @return CRDT_OK; CRDT_ETYPE (a conversion failed and its step has no
 *         default); CRDT_ENOTFOUND (field removed or collection dropped);
 *         CRDT_ENOMEM; CRDT_EINVAL.
 */
EPOCH_API int epoch_lens_map_value(crdt_value *out, epoch_buf *scratch,
                         const epoch_lens *l, const char *coll,
                         const char *field, const crdt_value *in,
                         const char **reason_out);

/**
 * The number of fields the section of @p coll adds with a default (final
 * names; a field added then removed or shadowed is not counted). 0 if
 * @p coll is not in the lens or is dropped.
 */
EPOCH_API size_t epoch_lens_default_count(const epoch_lens *l, const char *coll);

/**
 * Added field @p i of collection @p coll and its default, converted by
 * any later convert step of the section.
 * @param[out] field_out  points into @p l; do not free
 * @param[out] value_out  its strings point into @p l; do not free
 * @return CRDT_OK; CRDT_EINVAL (@p i out of range).
 */
EPOCH_API int epoch_lens_default(const char **field_out, crdt_value *value_out,
                       const epoch_lens *l, const char *coll, size_t i);

/** 1 if the section of @p coll drops the collection, else 0. */
EPOCH_API int epoch_lens_drops(const epoch_lens *l, const char *coll);

/** The kinds of op a lens can transform. */
typedef enum {
    EPOCH_OP_PUT,       /**< set a register to @c value */
    EPOCH_OP_INCR,      /**< add @c delta to a counter */
    EPOCH_OP_SADD,      /**< add @c value to a set */
    EPOCH_OP_SREM,      /**< remove @c value from a set */
    EPOCH_OP_DEL_FIELD, /**< delete a field */
    EPOCH_OP_DEL_DOC    /**< delete a document (@c field is NULL) */
} epoch_op_kind;

/** A borrowed view of one op; all pointers belong to whoever filled it. */
typedef struct {
    epoch_op_kind kind;
    const char *coll;
    const char *doc;
    const char *field; /**< NULL for EPOCH_OP_DEL_DOC */
    crdt_value value;  /**< PUT, SADD, SREM */
    int64_t delta;     /**< INCR */
} epoch_op_view;

/**
 * Rebase one op through @p l: rename its field, convert its value (PUT,
 * SADD, SREM only). Ops on collections not in @p l pass unchanged.
 * @param[out] out  the transformed op; may be @p in itself. Its coll and
 *                  doc are those of @p in; field points into @p in or
 *                  @p l; value as for epoch_lens_map_value()
 * @param scratch   receives converted strings (see epoch_lens_map_value())
 * @param[out] reason_out  on CRDT_ENOTFOUND or CRDT_ETYPE, a static
 *                  sentence ("field removed by lens", "collection dropped
 *                  by lens", or why a conversion failed); may be NULL
 * @return CRDT_OK; CRDT_ENOTFOUND (the op has no place after the lens);
 *         CRDT_ETYPE (its value cannot be converted); CRDT_ENOMEM;
 *         CRDT_EINVAL.
 */
EPOCH_API int epoch_lens_apply_op(epoch_op_view *out, epoch_buf *scratch,
                        const epoch_lens *l, const epoch_op_view *in,
                        const char **reason_out);

/** The kind of a document field. */
typedef enum {
    EPOCH_FIELD_REGISTER, /**< holds one crdt_value */
    EPOCH_FIELD_COUNTER,  /**< holds an int64 */
    EPOCH_FIELD_SET       /**< holds distinct crdt_values, sorted */
} epoch_field_kind;

/**
 * An in-memory document: named fields, kept sorted by name. It owns
 * copies of every name and value given to it. Opaque.
 */
typedef struct epoch_doc epoch_doc;

/** A new empty document; release it with epoch_doc_free(). */
EPOCH_API int epoch_doc_new(epoch_doc **out);

/** Release @p doc. Passing NULL does nothing. */
EPOCH_API void epoch_doc_free(epoch_doc *doc);

/** A deep copy of @p doc; release it with epoch_doc_free(). */
EPOCH_API int epoch_doc_clone(epoch_doc **out, const epoch_doc *doc);

/**
 * Set register @p field to a copy of @p v, creating the field if absent.
 * @return CRDT_OK; CRDT_ETYPE (@p field is a counter or set);
 *         CRDT_ENOMEM; CRDT_EINVAL (NULL or empty name).
 */
EPOCH_API int epoch_doc_set_register(epoch_doc *doc, const char *field,
                           const crdt_value *v);

/** Set counter @p field to @p n; codes as epoch_doc_set_register(). */
EPOCH_API int epoch_doc_set_counter(epoch_doc *doc, const char *field, int64_t n);

/**
 * Add a copy of @p v to set @p field, creating the set if absent. Adding
 * an element already there does nothing.
 * @return codes as epoch_doc_set_register().
 */
EPOCH_API int epoch_doc_set_add(epoch_doc *doc, const char *field,
                      const crdt_value *v);

/** Remove @p v from set @p field: CRDT_OK; CRDT_ENOTFOUND; CRDT_ETYPE. */
EPOCH_API int epoch_doc_set_remove(epoch_doc *doc, const char *field,
                         const crdt_value *v);

/** Remove field @p field of any kind: CRDT_OK; CRDT_ENOTFOUND. */
EPOCH_API int epoch_doc_remove(epoch_doc *doc, const char *field);

/** The number of fields in @p doc. */
EPOCH_API size_t epoch_doc_field_count(const epoch_doc *doc);

/**
 * Field @p i in name order.
 * @param[out] name_out  points into @p doc; valid until it changes
 * @param[out] kind_out  may be NULL
 * @return CRDT_OK; CRDT_EINVAL (@p i out of range).
 */
EPOCH_API int epoch_doc_field(const char **name_out, epoch_field_kind *kind_out,
                    const epoch_doc *doc, size_t i);

/**
 * The value of register @p field.
 * @param[out] out  strings point into @p doc; valid until it changes
 * @return CRDT_OK; CRDT_ENOTFOUND; CRDT_ETYPE (not a register).
 */
EPOCH_API int epoch_doc_get_register(crdt_value *out, const epoch_doc *doc,
                           const char *field);

/** The value of counter @p field; codes as epoch_doc_get_register(). */
EPOCH_API int epoch_doc_get_counter(int64_t *out, const epoch_doc *doc,
                          const char *field);

/** The element count of set @p field; codes as epoch_doc_get_register(). */
EPOCH_API int epoch_doc_set_size(size_t *out, const epoch_doc *doc, const char *field);

/**
 * Element @p i of set @p field, in crdt_value_cmp() order (doubles by
 * their IEEE total order).
 * @param[out] out  strings point into @p doc; valid until it changes
 * @return CRDT_OK; CRDT_ENOTFOUND; CRDT_ETYPE; CRDT_EINVAL (@p i).
 */
EPOCH_API int epoch_doc_set_elem(crdt_value *out, const epoch_doc *doc,
                       const char *field, size_t i);

/** 1 if @p a and @p b hold the same fields and values, else 0. */
EPOCH_API int epoch_doc_equal(const epoch_doc *a, const epoch_doc *b);

/**
 * Migrate @p doc, a document of collection @p coll, through @p l in
 * place, running the section's steps in order: renames, removals,
 * conversions of registers and set elements (a failed conversion writes
 * the step's default, or null; counters are never converted), and the
 * default of each added field that is absent. All or nothing: on error
 * @p doc is unchanged.
 * @return CRDT_OK (also when @p coll is not in the lens); CRDT_ENOTFOUND
 *         (the lens drops the collection: delete the document);
 *         CRDT_ENOMEM; CRDT_EINVAL.
 */
EPOCH_API int epoch_lens_apply_doc(epoch_doc *doc, const epoch_lens *l,
                         const char *coll);

#ifdef __cplusplus
}
#endif

#endif
