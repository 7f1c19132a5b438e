/* hash.c - FNV-1a (the SHA-256 part of hash.h is in hash_sha256.c). */
#include "hash.h"

#include <string.h>

uint64_t hash_fnv1a64(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

uint64_t hash_fnv1a64_str(uint64_t h, const char *s)
{
    return s ? hash_fnv1a64(h, s, strlen(s)) : h;
}

uint64_t hash_mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

double hash_unit(uint64_t x)
{
    return (double)(hash_mix64(x) >> 11) * (1.0 / 9007199254740992.0);
}
