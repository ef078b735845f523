/* fuzz_util.h: what the fuzz targets share besides randomness: their
 * private directory, writing seeds, comparing values. */
#ifndef FUZZ_UTIL_H
#define FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "crdt/crdt.h"
#include "crdt/sync.h"
#include "crdt/value.h"

/*
 * Make "<base>/strata-fuzz-<name>-<pid>-XXXXXX" into @p out and return 0
 * (-1 on failure). @p base NULL or empty: /dev/shm if writable, else
 * /tmp. Directories that dead runs of the same target left behind (a
 * crash ends the process without atexit()) are removed first.
 */
int fuzz_dir_make(char *out, size_t size, const char *base,
                  const char *name);
/* Remove @p path and everything under it. */
void fuzz_dir_remove(const char *path);

/* Write @p n bytes as the seed file @p dir/@p name; exits on failure. */
void fuzz_put_seed(const char *dir, const char *name, const void *p,
                   size_t n);
/*
 * With STRATA_FUZZ_SEEDS set to a directory, call @p write_seeds on it
 * and exit 0 (how scripts/fuzz.sh makes each target's seeds); else
 * return 0. What a target's LLVMFuzzerInitialize() returns.
 */
int fuzz_seeds_if_asked(void (*write_seeds)(const char *dir));
/* What targets that sign changes set up first: the fuzzer's randomness
 * for libsodium (fuzz_rng_install()), fuzz_fixed_clock(), sodium_init()
 * (aborts on failure). */
void fuzz_init_signing(void);
/* A clock for crdt_set_clock() that always reads 2023-11-14 (1.7e12 ms):
 * seeds written with it come out byte for byte the same every run. */
uint64_t fuzz_fixed_clock(void *ctx);
/* A new replica "@p dir/r<fill hex>" without fsync, of a fixed space
 * (16 bytes 0x5a), its key from a seed of 32 bytes @p fill; exits on
 * failure. */
crdt_replica *fuzz_seed_replica(const char *dir, unsigned char fill);
/* Abort unless @p packed (@p plen bytes) unpacks to the @p n changes of
 * @p list byte for byte (what every packer must give back). */
void fuzz_check_unpacks_to(const unsigned char *packed, size_t plen,
                           const crdt_bytes *list, size_t n);
/* Equal type and bytes (doubles bit for bit: NaN payloads, -0.0). */
int fuzz_same_value(const crdt_value *a, const crdt_value *b);

#endif
