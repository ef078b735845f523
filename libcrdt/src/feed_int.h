/*
 * feed_int.h: the change feed's record layout, shared by feed.c (which
 * writes records) and feed_read.c (which reads them); never installed.
 */
#ifndef CRDT_FEED_INT_H
#define CRDT_FEED_INT_H

#define REC_V1 1 /* entries whole: len(u16) | entry; read, not written */
#define REC_V2 2 /* coded against the entry before (code_entry()): store
                    format 4 writes it */
#define REC_HEAD 6                   /* version, flags, count(4) */
#define V1_ENTRY_HEAD 2
#define V2_ENTRY_HEAD 3              /* keep, tail, n */
#define REC_MAX_ENTRIES 65536u       /* more: the record says everything */
#define REC_MAX_BYTES (4u << 20)     /* the decoder's size limit */
#define ENTRY_MAX (3 * CRDT_NAME_MAX + 3)
#define SINCE_DEFAULT 1024
#define SINCE_MAX_BYTES (16u << 20)  /* records copied out per call */

#endif
