/* b64.c - base64 encode/decode (RFC 4648, standard alphabet). */
#include "b64.h"

#include "bderr.h"

static const char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t b64_encode(const void *in, size_t n, char *out, size_t cap)
{
    const unsigned char *p = in;
    size_t o = 0;

    if (cap < B64_ENCODED_SIZE(n)) {
        if (cap > 0)
            out[0] = '\0';
        return 0;
    }
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16;
        size_t left = n - i;
        if (left > 1)
            v |= (unsigned)p[i + 1] << 8;
        if (left > 2)
            v |= p[i + 2];
        out[o++] = alphabet[(v >> 18) & 63];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = left > 1 ? alphabet[(v >> 6) & 63] : '=';
        out[o++] = left > 2 ? alphabet[v & 63] : '=';
    }
    out[o] = '\0';
    return o;
}

static int sextet(char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == '+')
        return 62;
    return ch == '/' ? 63 : -1;
}

/* Characters that carry data: len without padding, if the padding is well-formed. */
static int data_length(const char *in, size_t len, size_t *n)
{
    size_t pad = 0;

    while (pad < len && pad < 2 && in[len - 1 - pad] == '=')
        pad++;
    if (pad > 0 && len % 4 != 0)
        return BD_EINVAL; /* padding only completes a final quantum */
    *n = len - pad;
    return *n % 4 == 1 ? BD_EINVAL : 0;
}

int b64_decode(const char *in, size_t len, unsigned char *out, size_t cap, size_t *outlen)
{
    size_t n, o = 0;
    unsigned acc = 0;
    int bits = 0;

    if (data_length(in, len, &n) != 0)
        return BD_EINVAL;
    if (n * 3 / 4 > cap)
        return BD_ETOOBIG;
    for (size_t i = 0; i < n; i++) {
        int v = sextet(in[i]);
        if (v < 0)
            return BD_EINVAL;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0)
        return BD_EINVAL; /* non-canonical: the unused trailing bits must be zero */
    *outlen = o;
    return 0;
}
