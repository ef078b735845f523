/* op_context.h: the op iterator's context of a format-2 change, for
 * decoding one op outside a change (test_codec and fuzz_seqop). */
#ifndef TEST_OP_CONTEXT_H
#define TEST_OP_CONTEXT_H

#include <string.h>

#include "internal.h"

/* A format-2 change's context: compact ops, actor 07..07, and the names
 * c/d/f as the last op's (what a name reference repeats). */
static inline void
tu_format2_context(crdt_op_iter *ctx)
{
    memset(ctx, 0, sizeof *ctx);
    ctx->compact = 1;
    memset(ctx->self.b, 0x07, sizeof ctx->self.b);
    ctx->coll = "c";
    ctx->doc = "d";
    ctx->field = "f";
    ctx->coll_len = ctx->doc_len = ctx->field_len = 1;
}

#endif
