/* hash.h - non-cryptographic hashing: 64-bit FNV-1a, for config versions, request
 * fingerprints (idempotency, cache keys) and the simulator's deterministic choices.
 * Not for secrets: keyed fingerprints of API keys use HMAC (see hash_hmac_sha256).
 *
 * Ownership: pure functions; nothing is allocated or kept. */
#ifndef BRIEFD_HASH_H
#define BRIEFD_HASH_H

#include <stddef.h>
#include <stdint.h>

#define HASH_FNV1A64_INIT 0xcbf29ce484222325ull

/* Continue an FNV-1a hash h over n bytes of p (start with HASH_FNV1A64_INIT). */
uint64_t hash_fnv1a64(uint64_t h, const void *p, size_t n);
/* The same over a NUL-terminated string (NULL hashes like ""). */
uint64_t hash_fnv1a64_str(uint64_t h, const char *s);
/* splitmix64's finalizer: every bit of x spread over the result (x = 0 gives 0). */
uint64_t hash_mix64(uint64_t x);
/* A number in [0, 1) from x (the top 53 bits of hash_mix64(x)). */
double hash_unit(uint64_t x);

#endif
