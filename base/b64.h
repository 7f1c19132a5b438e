/* b64.h - base64 (RFC 4648, standard alphabet): encoding with padding, and a strict decoder
 * (standard alphabet only, no whitespace; padding optional but, when present, exact) for
 * secrets read from the environment (Standard Webhooks "whsec_..." secrets) and signatures.
 *
 * Ownership: pure functions over caller-owned buffers; nothing is allocated or kept. */
#ifndef BRIEFD_B64_H
#define BRIEFD_B64_H

#include <stddef.h>

/* Bytes b64_encode() writes for n input bytes, the terminating NUL included. */
#define B64_ENCODED_SIZE(n) ((((n) + 2) / 3) * 4 + 1)
/* The largest decoded size of len characters of base64. */
#define B64_DECODED_MAX(len) (((len) + 3) / 4 * 3)

/* Encode n bytes of in into out (cap bytes, at least B64_ENCODED_SIZE(n)), NUL-terminated.
 * Returns the length written (without the NUL), or 0 when out is too small (out is then
 * "" if cap > 0). */
size_t b64_encode(const void *in, size_t n, char *out, size_t cap);
/* Decode len characters of in into out (cap bytes); *outlen gets the decoded length.
 * Returns 0, or BD_EINVAL for a character outside the alphabet, misplaced or wrong padding,
 * an impossible length or non-zero trailing bits, or BD_ETOOBIG when out is too small. */
int b64_decode(const char *in, size_t len, unsigned char *out, size_t cap, size_t *outlen);

#endif
