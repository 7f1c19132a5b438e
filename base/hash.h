/* hash.h - hashing: 64-bit FNV-1a (non-cryptographic: config versions, request fingerprints
 * for idempotency and cache keys, the simulator's deterministic choices), and SHA-256 /
 * HMAC-SHA-256 from libcrypto for what must not be reversible or forgeable: keyed
 * fingerprints of API keys and webhook signatures.
 *
 * The SHA-256 functions are in hash_sha256.c, so a program that uses only FNV-1a does not
 * need libcrypto.
 *
 * Ownership: pure functions; nothing is allocated or kept. Key material passed in is only
 * read; out buffers are the caller's. */
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

#define HASH_SHA256_LEN 32
/* SHA-256 of n bytes of p into out. Returns 0, or BD_ENOMEM when libcrypto fails. */
int hash_sha256(const void *p, size_t n, unsigned char out[HASH_SHA256_LEN]);
/* HMAC-SHA-256 (RFC 2104) of n bytes of msg under klen bytes of key into out. Returns 0, or
 * BD_EINVAL for a key longer than INT_MAX, or BD_ENOMEM when libcrypto fails. */
int hash_hmac_sha256(const void *key, size_t klen, const void *msg, size_t n,
                     unsigned char out[HASH_SHA256_LEN]);
/* 1 if the n bytes at a and b are equal, compared in constant time. */
int hash_equal_ct(const void *a, const void *b, size_t n);

#endif
