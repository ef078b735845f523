/**
 * @file crdt/feed.h
 * The change feed: what each commit changed, for apps that show data.
 *
 * Every write commit that changed the materialized state (a local txn, a
 * merge of a peer's changes, a migration) records a short summary of
 * what it changed: which documents, and which fields of them. The
 * summaries are kept in the replica (the "feed" database, keyed by
 * commit order; docs/storage.md), so they are seen the same way by
 *  - in-process subscribers (crdt_feed_subscribe()), called right after
 *    each commit made through this handle;
 *  - any process holding a cursor (crdt_feed_since()): "what changed
 *    since cursor C", with a watch (crdt_feed_watch_open()) whose file
 *    descriptor becomes readable when any process committed.
 *
 * A summary never lies by omission: when the library cannot say exactly
 * what changed (a migration rewrote the state, the cursor is older than
 * the kept history, the replica was restored), it reports "everything
 * may have changed" once, and the app re-reads what it shows.
 *
 * Text and list fields will add per-field ranges to crdt_feed_doc
 * (appended members; existing ones keep their meaning).
 */
#ifndef CRDT_FEED_H
#define CRDT_FEED_H

#include <stddef.h>
#include <stdint.h>

#include "crdt/export.h"
#include "crdt/replica.h"

#ifdef __cplusplus
extern "C" {
#endif

/** What one commit changed in one document. */
typedef struct {
    const char *coll;
    const char *doc;
    /** 1: the document as a whole was deleted (or written after its
     *  deletion): any of its fields may have changed. */
    int whole;
    /** The fields whose state changed, sorted bytewise, no repeats. */
    const char *const *fields;
    size_t nfields;
} crdt_feed_doc;

/** What one commit changed. Valid only during the callback. */
typedef struct {
    uint64_t commit;     /**< its position in the feed (cursor seq) */
    int everything;      /**< 1: anything may have changed; docs empty */
    const crdt_feed_doc *docs; /**< sorted by (coll, doc) */
    size_t ndocs;
} crdt_feed_event;

/**
 * Receives events. Return 0 to go on; non-zero stops crdt_feed_since()
 * (the cursor it returns then resumes at this event). A subscription's
 * return value is ignored.
 */
typedef int (*crdt_feed_fn)(void *ctx, const crdt_feed_event *ev);

/* ---- in-process subscriptions ---- */

/** A subscription. Opaque. */
typedef struct crdt_feed_sub crdt_feed_sub;

/**
 * Call @p fn after every commit through @p r that changed the replica
 * (all of it; collection @p coll; or document @p doc of @p coll), with
 * only the matching documents in the event.
 *
 * Thread: @p fn runs on the thread that committed (the one calling
 * crdt_txn_commit(), crdt_merge(), a sync session, a migration), after
 * the commit is durable and the writer lock released, before that call
 * returns. Subscriptions are called one at a time, in the order they
 * were made. @p fn may read the replica (crdt/read.h, crdt_feed_since())
 * and hand the event to another thread (copy it: it is valid only during
 * the call). It must not write to @p r, merge into it, or subscribe or
 * unsubscribe on it: those return CRDT_EBUSY from within a callback.
 * Commits made by other processes or other handles are not delivered
 * here: use a cursor and a watch for them.
 *
 * @param coll  NULL for the whole replica
 * @param doc   NULL for the whole collection (needs @p coll)
 * @return CRDT_OK; CRDT_EINVAL (bad name, doc without coll);
 *         CRDT_ENOMEM; CRDT_EBUSY (called from a callback).
 */
CRDT_API int crdt_feed_subscribe(crdt_feed_sub **out, crdt_replica *r,
                        const char *coll, const char *doc, crdt_feed_fn fn,
                        void *ctx);

/**
 * End a subscription; once this returns, its callback is not running
 * and will not run again. NULL does nothing. Do not call it from a
 * callback of the same replica (it would wait for itself; it returns
 * at once then, leaving the subscription in place).
 */
CRDT_API void crdt_feed_unsubscribe(crdt_feed_sub *s);

/* ---- cursors: across processes and restarts ---- */

/** A position in the feed. Plain data: copy, store, compare freely. */
typedef struct {
    unsigned char gen[8]; /**< the feed's generation (random per replica) */
    uint64_t seq;         /**< the last commit seen */
} crdt_feed_cursor;

/** Text form: 16 hex digits, '.', decimal seq. Fits this buffer size. */
#define CRDT_FEED_CURSOR_CHARS 40

/** How many summaries the replica keeps; older cursors get "everything". */
#define CRDT_FEED_KEEP 16384

/** The cursor at the newest commit (what a new watcher starts from). */
CRDT_API int crdt_feed_head(crdt_feed_cursor *out, crdt_replica *r);

/**
 * Deliver, in commit order, every event after @p from, up to @p max
 * commits (0 = 1024), filtered as for crdt_feed_subscribe(), and set
 * @p next to resume after them. When @p from cannot be served (another
 * replica's or a restored replica's cursor, one from the future, or one
 * older than the kept history), deliver one event with everything = 1
 * and set @p next to the head: never an error. @p next is set before
 * the first event is delivered and its gen is the generation of every
 * event delivered: a callback makes an event's cursor from next's gen
 * and the event's commit (a head read in another txn may predate the
 * commit that created the generation).
 * @return the number of events delivered (>= 0); CRDT_EINVAL; CRDT_EIO;
 *         CRDT_ENOMEM.
 */
CRDT_API int crdt_feed_since(crdt_replica *r, const crdt_feed_cursor *from,
                    const char *coll, const char *doc, size_t max,
                    crdt_feed_fn fn, void *ctx, crdt_feed_cursor *next);

/** Write @p c as text into @p buf (CRDT_FEED_CURSOR_CHARS bytes). */
CRDT_API void crdt_feed_cursor_format(char *buf, const crdt_feed_cursor *c);
/** Parse the text form. @return CRDT_OK; CRDT_EINVAL. */
CRDT_API int crdt_feed_cursor_parse(crdt_feed_cursor *out, const char *s);

/* ---- watching for commits by any process ---- */

/** A watch on a replica directory. Opaque. */
typedef struct crdt_feed_watch crdt_feed_watch;

/**
 * Watch the replica in directory @p dir for commits by any process
 * (Linux inotify on the directory: the committer touches the file
 * "notify" there after each commit that recorded a summary). No thread,
 * no polling: the descriptor is readable once a commit happened since
 * the last crdt_feed_watch_clear(). Open the watch BEFORE taking the
 * cursor you read from, so no commit falls in between.
 * @return CRDT_OK; CRDT_ENOTFOUND (no such directory); CRDT_EPERM
 *         (no inotify here); CRDT_ENOMEM; CRDT_EIO.
 */
CRDT_API int crdt_feed_watch_open(crdt_feed_watch **out, const char *dir);
/** The descriptor to poll for POLLIN (owned by the watch). */
CRDT_API int crdt_feed_watch_fd(const crdt_feed_watch *w);
/**
 * Wait up to @p timeout_ms (-1 = forever) for a commit, then reset the
 * descriptor. @return 1 a commit happened (or may have); 0 timed out;
 * CRDT_EIO. An interrupting signal returns 0 early.
 */
CRDT_API int crdt_feed_watch_wait(crdt_feed_watch *w, int timeout_ms);
/** Reset the descriptor without waiting (after poll() said readable). */
CRDT_API void crdt_feed_watch_clear(crdt_feed_watch *w);
/** NULL does nothing. */
CRDT_API void crdt_feed_watch_close(crdt_feed_watch *w);

#ifdef __cplusplus
}
#endif

#endif
