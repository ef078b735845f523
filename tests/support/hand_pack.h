/* hand_pack.h: a pack of changes written byte by byte (docs/protocol.md,
 * "Packed changes"), for tests and fuzz seeds of forms the packer itself
 * never writes. */
#ifndef STRATA_TESTS_HAND_PACK_H
#define STRATA_TESTS_HAND_PACK_H

#include <stddef.h>

/* The bytes tu_hand_pack() writes before the first op. */
#define TU_HAND_PACK_HEAD 128

/* One author's changes of one PUT op each into @p p
 * (TU_HAND_PACK_HEAD + @p op_len + @p second_len bytes): the first record names its author (0x22...), epoch (0x33...),
 * seq 1 and prev (0x44...) in space 0x11..., with @p op as its op bytes;
 * @p second (or NULL) is a second record's bytes, copied after it.
 * @return the pack's length. */
size_t tu_hand_pack(unsigned char *p, const unsigned char *op, size_t op_len,
                    const unsigned char *second, size_t second_len);

#endif
