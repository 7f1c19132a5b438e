/* jscan.h - members of JSON text found without building a tree.
 *
 * A small lenient scanner: values are skipped by their brackets and strings (a backslash
 * skips the character after it), numbers and literals by the bytes that end them. It is for
 * text whose validity is settled elsewhere - checked by jsonv, or printed by briefd itself -
 * where building a cJSON tree only to read two members would cost more than the rest of the
 * work. It never reads past e and returns NULL rather than guess when the text is not what
 * it expects. A member name written with escapes is not decoded: meeting one stops a search
 * (NULL, *odd set), and a caller that cares reads the text with cJSON instead.
 *
 * Ownership: pure; every pointer returned points into the text given. */
#ifndef BRIEFD_JSCAN_H
#define BRIEFD_JSCAN_H

#include <stddef.h>

/* Past the whitespace at p. */
const char *jscan_ws(const char *p, const char *e);
/* Past the string at p (p[0] == '"'); NULL if unterminated. *escaped: it had a backslash. */
const char *jscan_string(const char *p, const char *e, int *escaped);
/* Past the value at p; NULL if its brackets or strings do not close before e. */
const char *jscan_skip(const char *p, const char *e);
/* The member whose name starts at p ('"'): its name in [*k, *k + *kl) and a pointer to its
 * value; NULL if malformed or the name has escapes (*odd set). */
const char *jscan_key(const char *p, const char *e, const char **k, size_t *kl, int *odd);
/* Past the value at v and the comma after it: the next member or element (or the end). */
const char *jscan_next(const char *v, const char *e);
/* In the object at p ('{', after whitespace), the value of the first member named key;
 * NULL if none, if p is no object, or if the text is malformed or a name has escapes
 * before it (*odd set). */
const char *jscan_member(const char *p, const char *e, const char *key, int *odd);
/* The string value at p (may be NULL) when it has no escapes: 0 and its bytes in
 * [*s, *s + *n); -1 otherwise. */
int jscan_plain_string(const char *p, const char *e, const char **s, size_t *n);

#endif
