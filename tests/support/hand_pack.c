/* hand_pack.c: tu_hand_pack() of support/hand_pack.h. */
#include "hand_pack.h"

#include <string.h>

size_t
tu_hand_pack(unsigned char *p, const unsigned char *op, size_t op_len,
             const unsigned char *second, size_t second_len)
{
    size_t at = 0;

    p[at++] = 1;                 /* version */
    memset(p + at, 0x11, 16);    /* space */
    at += 16;
    p[at++] = second ? 2 : 1;    /* n */
    p[at++] = 0x01;              /* packed, unsigned, not chained */
    p[at++] = 0;                 /* author 0, new */
    memset(p + at, 0x22, 40);
    at += 40;
    p[at++] = 0;                 /* epoch 0, new */
    memset(p + at, 0x33, 32);
    at += 32;
    p[at++] = 1;                 /* seq 1 */
    memset(p + at, 0x44, 32);    /* prev */
    at += 32;
    p[at++] = 2;                 /* zigzag(hlc 1) */
    p[at++] = 1;                 /* one op */
    memcpy(p + at, op, op_len);
    at += op_len;
    if (second != NULL) {
        memcpy(p + at, second, second_len);
        at += second_len;
    }
    return at;
}
