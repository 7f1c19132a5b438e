/* sbuf.h - a growable, always NUL-terminated string buffer.
 *
 * Ownership: the buffer owns p until sbuf_take() hands it to the caller (who frees it).
 * After an allocation failure the buffer stops growing and sbuf_take() returns NULL. */
#ifndef BRIEFD_SBUF_H
#define BRIEFD_SBUF_H

#include <stddef.h>

struct sbuf {
    char *p;
    size_t len, cap;
    int oom;
};

void sbuf_add(struct sbuf *b, const char *s, size_t n);
/* A NUL-terminated string / one byte. */
void sbuf_adds(struct sbuf *b, const char *s);
void sbuf_addc(struct sbuf *b, char c);
void sbuf_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Room for n more bytes (and the NUL) at the end, or NULL after an allocation failure: the
 * caller writes up to n bytes there, adds what it wrote to len and keeps p[len] = '\0'.
 * (Small pieces written this way cost a few instructions instead of a call each.) */
char *sbuf_room(struct sbuf *b, size_t n);
/* The text (never NULL unless out of memory: an empty buffer gives ""); b is reset. */
char *sbuf_take(struct sbuf *b);

#endif
