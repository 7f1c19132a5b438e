/* hash_sha256.c - SHA-256 and HMAC-SHA-256 of hash.h, through libcrypto. A file of its own so
 * that programs linking only the FNV-1a part (the simulator's standalone build) need no
 * libcrypto. */
#include "hash.h"

#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>

#include "bderr.h"

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
