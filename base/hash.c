/* hash.c - FNV-1a; SHA-256 and HMAC-SHA-256 through libcrypto. */
#include "hash.h"

#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>

#include "bderr.h"

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

int hash_sha256(const void *p, size_t n, unsigned char out[HASH_SHA256_LEN])
{
    unsigned int len = 0;

    if (EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) != 1 || len != HASH_SHA256_LEN)
        return BD_ENOMEM;
    return 0;
}

int hash_hmac_sha256(const void *key, size_t klen, const void *msg, size_t n,
                     unsigned char out[HASH_SHA256_LEN])
{
    static const unsigned char empty[1] = {0};
    unsigned int len = 0;

    if (klen > INT_MAX)
        return BD_EINVAL;
    /* libcrypto wants a non-NULL key even when it is empty */
    if (!HMAC(EVP_sha256(), klen ? key : empty, (int)klen, n ? msg : empty, n, out, &len) ||
        len != HASH_SHA256_LEN)
        return BD_ENOMEM;
    return 0;
}

int hash_equal_ct(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}
