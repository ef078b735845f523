/*
 * fuzz_invite.c: text -> crdtnet_invite_parse(), the decoder of the
 * invitation tokens users paste into `strata init --invite`
 * (docs/testing.md, "Fuzzing").
 *
 * Input: the token text (a NUL ends it early, as on a command line).
 * Checked: only CRDT_OK or CRDT_EINVAL; a token that parses is exactly
 * CRDTNET_INVITE_TOKEN_LEN characters of base64url, names a role an
 * invitation may give, and parses again to the same invitation.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crdtnet/invite.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char text[2 * CRDTNET_INVITE_TOKEN_LEN + 1];
    crdtnet_invite a, b;
    size_t i;
    int rc;

    if (size > sizeof text - 1)
        size = sizeof text - 1;
    memcpy(text, data, size);
    text[size] = '\0';
    memset(&a, 0, sizeof a); /* padding too: the structs are compared */
    memset(&b, 0, sizeof b);
    rc = crdtnet_invite_parse(text, &a);
    if (rc == CRDT_EINVAL)
        return 0;
    if (rc != CRDT_OK || strlen(text) != CRDTNET_INVITE_TOKEN_LEN)
        abort();
    for (i = 0; i < CRDTNET_INVITE_TOKEN_LEN; i++) {
        char c = text[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (c >= '0' && c <= '9') || c == '-' || c == '_'))
            abort();
    }
    if (a.role != CRDT_ROLE_READER && a.role != CRDT_ROLE_WRITER &&
        a.role != CRDT_ROLE_ADMIN)
        abort();
    if (crdtnet_invite_parse(text, &b) != CRDT_OK ||
        memcmp(&a, &b, sizeof a) != 0)
        abort();
    return 0;
}
