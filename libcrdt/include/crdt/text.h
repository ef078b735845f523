/**
 * @file crdt/text.h
 * Sequence fields: collaborative text and ordered lists.
 *
 * A text field is a sequence of Unicode code points (UTF-8 in and out,
 * positions and lengths counted in code points, never in bytes). A list
 * field is a sequence of scalar values (crdt_value, the register's
 * types). Both merge with the same sequence CRDT (docs/text.md):
 * concurrent inserts at one place never interleave element by element,
 * every replica that applied the same ops holds the same sequence, in
 * whatever order the ops arrived.
 *
 * Element ids. Every inserted element has a permanent id: the inserting
 * actor and a counter (crdt_seq_id). A replica numbers the elements it
 * inserts 1, 2, 3, ... across all its sequence fields, so an insert of k
 * code points takes ids (actor, ctr) .. (actor, ctr + k - 1). Ids are
 * what ops and cursors name; positions are only what a writer saw.
 *
 * Field types. A field holds one type: an insert into a field that is a
 * live register, counter or set (or a list op on a text) is refused with
 * CRDT_ETYPE, like crdt_txn_put() on a text. If concurrent writers
 * choose different types, every replica shows the same one: register,
 * then counter, then set, then text, then list (see read.h).
 *
 * In crdt_read_doc() / crdt_read_field() a sequence field appears with
 *   kind CRDT_FIELD_TEXT:  @c value is a CRDT_VSTRING holding the whole
 *                          text (an empty text is "" and still visible);
 *   kind CRDT_FIELD_LIST:  @c elems / @c n_elems are the list's values in
 *                          list order (NOT sorted, duplicates kept).
 * As for every field view, those pointers are valid only during the
 * callback / until the next call on the same read txn.
 *
 * crdt_txn_del_field() on a sequence field deletes the elements the
 * writer has seen (an element inserted concurrently survives, as an
 * add survives a concurrent remove in a set); the field stays a
 * sequence. crdt_txn_del_doc() does the same for the document's
 * sequence fields.
 *
 * Ops carried in a change (crdt/change.h, crdt_op; bytes in
 * docs/storage.md). Every sequence op records @c pos, the index the
 * writer saw, for display (`log --json`) and import; merging uses ids:
 *   CRDT_OP_TINS  insert text: @c text / @c text_len (UTF-8, @c len code
 *                 points) with ids (change actor, @c ctr ..); placed
 *                 between origins @c left and @c right (the elements
 *                 that were left and right of the insertion point when it
 *                 was written; a null id = the start / the end).
 *   CRDT_OP_TDEL  delete text: @c len code points starting at @c pos;
 *                 merged as the id ranges in @c ranges (crdt_seq_range
 *                 items, see crdt_op_ranges_next()). Deleting a deleted
 *                 element is a no-op; a delete never waits for anything.
 *   CRDT_OP_LINS  insert ONE list element @c value with id (change actor,
 *                 @c ctr), between @c left and @c right.
 *   CRDT_OP_LDEL  delete @c len list elements from @c pos: as TDEL.
 *   CRDT_OP_LSET  replace the value of list element @c target (the one at
 *                 @c pos for the writer) with @c value: last writer wins
 *                 by (HLC, actor) per element; a set on a deleted element
 *                 changes nothing visible.
 * An insert whose origin has not arrived yet (another actor's change not
 * merged) is held in the state and placed as soon as the origin arrives.
 */
#ifndef CRDT_TEXT_H
#define CRDT_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "crdt/change.h"
#include "crdt/read.h"
#include "crdt/replica.h"
#include "crdt/txn.h"
#include "crdt/value.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Largest text one insert takes, in bytes of UTF-8 (a change must fit
 *  CRDT_CHANGE_MAX). */
#define CRDT_TEXT_INSERT_MAX (1024u * 1024)

/* crdt_seq_id and crdt_seq_range are defined in crdt/change.h. */

/* ---- writes (inside a crdt_txn; each call is one op of the change) ---- */

/**
 * Insert @p len bytes of UTF-8 @p utf8 at code-point index @p pos of
 * text field @p field (created as text if absent). @p pos may equal the
 * length (append). Inserting "" is a no-op that records nothing.
 * @return CRDT_OK; CRDT_EINVAL (bad name, invalid UTF-8 or NUL in the
 *         text, @p pos past the end); CRDT_ELIMIT (longer than
 *         CRDT_TEXT_INSERT_MAX or the change is full); CRDT_ETYPE (the
 *         field is another type); CRDT_EBADTXN; CRDT_EFULL; CRDT_EIO.
 */
int crdt_txn_text_insert(crdt_txn *t, const char *coll, const char *doc,
                         const char *field, uint64_t pos, const char *utf8,
                         size_t len);

/**
 * Delete @p len code points of text @p field starting at index @p pos.
 * @p len 0 is a no-op that records nothing.
 * @return CRDT_OK; CRDT_EINVAL (range past the end, bad name);
 *         CRDT_ENOTFOUND (no such text); CRDT_ETYPE; CRDT_EBADTXN;
 *         CRDT_EFULL; CRDT_EIO.
 */
int crdt_txn_text_delete(crdt_txn *t, const char *coll, const char *doc,
                         const char *field, uint64_t pos, uint64_t len);

/**
 * Insert value @p v as element @p pos of list @p field (created as a list
 * if absent); @p pos may equal the length (append). Strings must be
 * UTF-8; an encoded value is at most 64 KiB.
 * @return codes as crdt_txn_text_insert().
 */
int crdt_txn_list_insert(crdt_txn *t, const char *coll, const char *doc,
                         const char *field, uint64_t pos,
                         const crdt_value *v);

/** Delete @p len elements of list @p field from @p pos. Codes as
 *  crdt_txn_text_delete(). */
int crdt_txn_list_delete(crdt_txn *t, const char *coll, const char *doc,
                         const char *field, uint64_t pos, uint64_t len);

/**
 * Replace the value of element @p pos of list @p field with @p v.
 * @return CRDT_OK; CRDT_EINVAL (@p pos not below the length, bad value);
 *         CRDT_ENOTFOUND (no such list); CRDT_ETYPE; CRDT_EBADTXN; ...
 */
int crdt_txn_list_set(crdt_txn *t, const char *coll, const char *doc,
                      const char *field, uint64_t pos, const crdt_value *v);

/* ---- reads (from a crdt_read snapshot) ---- */

/**
 * Length of sequence @p field: code points of a text, elements of a list.
 * @return CRDT_OK; CRDT_ENOTFOUND (no such field, or not a sequence);
 *         CRDT_EIO; CRDT_ENOMEM.
 */
int crdt_read_seq_len(uint64_t *out, crdt_read *rd, const char *coll,
                      const char *doc, const char *field);

/**
 * The whole text of @p field, into a buffer the library allocates:
 * @p *out holds *out_len bytes of UTF-8 followed by a NUL (not counted).
 * Free it with crdt_text_free(). Costs O(length of the text), not of its
 * history (docs/text.md, "Reading").
 * @return CRDT_OK; CRDT_ENOTFOUND (no text field of that name);
 *         CRDT_ENOMEM; CRDT_EIO; CRDT_ECORRUPT.
 */
int crdt_read_text(char **out, size_t *out_len, crdt_read *rd,
                   const char *coll, const char *doc, const char *field);

/**
 * Code points [@p pos, @p pos + @p len) of text @p field (clipped to the
 * end), allocated as by crdt_read_text().
 * @return codes as crdt_read_text(); CRDT_EINVAL if @p pos is past the end.
 */
int crdt_read_text_slice(char **out, size_t *out_len, crdt_read *rd,
                         const char *coll, const char *doc,
                         const char *field, uint64_t pos, uint64_t len);

/** Free a buffer from crdt_read_text() / _slice(). NULL does nothing. */
void crdt_text_free(char *s);

/**
 * The values of list @p field in order, in ONE allocation (strings and
 * bytes point inside it): free it with crdt_list_free(). An empty list
 * gives *n = 0 and a non-NULL pointer.
 * @return CRDT_OK; CRDT_ENOTFOUND (no list field of that name);
 *         CRDT_ENOMEM; CRDT_EIO; CRDT_ECORRUPT.
 */
int crdt_read_list(crdt_value **out, size_t *n, crdt_read *rd,
                   const char *coll, const char *doc, const char *field);

/** Free the array from crdt_read_list(). NULL does nothing. */
void crdt_list_free(crdt_value *vals);

/* ---- stable cursors ---- */

/**
 * A stable position in a sequence: it follows its element across
 * concurrent inserts and deletes. It names the element at the index it
 * was made for (the caret sits just before it); a cursor made at the
 * length names no element (ctr 0) and always reads back as the length.
 * A value type: store its 16 bytes (crdt_cursor_bytes) where you like.
 */
typedef struct {
    crdt_seq_id id;
} crdt_cursor;

/** Serialized size of a cursor: actor (8) then ctr (8, big-endian). */
#define CRDT_CURSOR_BYTES 16

/**
 * Make a cursor at index @p pos (0 ..= length) of sequence @p field.
 * @return CRDT_OK; CRDT_EINVAL (@p pos past the end); CRDT_ENOTFOUND.
 */
int crdt_read_cursor_at(crdt_cursor *out, crdt_read *rd, const char *coll,
                        const char *doc, const char *field, uint64_t pos);

/**
 * The index of cursor @p c now: the number of visible elements before
 * its element. If that element was deleted, the cursor sits where it
 * was (just before the next surviving element). An element this replica
 * has not received yet reads as the length.
 * @return CRDT_OK; CRDT_ENOTFOUND (no such sequence field).
 */
int crdt_read_cursor_pos(uint64_t *out, crdt_read *rd, const char *coll,
                         const char *doc, const char *field,
                         const crdt_cursor *c);

/** Serialize / parse a cursor as CRDT_CURSOR_BYTES bytes. */
void crdt_cursor_bytes(unsigned char out[CRDT_CURSOR_BYTES],
                       const crdt_cursor *c);
void crdt_cursor_parse(crdt_cursor *out,
                       const unsigned char in[CRDT_CURSOR_BYTES]);

#ifdef __cplusplus
}
#endif

#endif
