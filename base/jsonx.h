/* jsonx.h - exact JSON output: numbers printed so they read back as the same double.
 *
 * cJSON 1.7's printer checks its 15-digit form only approximately, so a cost or a score
 * can come back one unit in the last place off. Everything briefd sends or stores goes
 * through this printer, which prints integers as integers and every other number in the
 * shortest form (15, 16 or 17 significant digits) that reads back exactly; non-finite
 * numbers become null. It walks the tree once (no copy), unformatted, escaping strings the
 * way cJSON does (control characters as \uXXXX).
 *
 * Ownership: jsonx_print returns a malloc'd string (caller frees), NULL on OOM; the tree
 * is not modified. The write functions append to a caller-owned sbuf. */
#ifndef BRIEFD_JSONX_H
#define BRIEFD_JSONX_H

#include <stddef.h>

struct cJSON;
struct sbuf;

/* v as JSON text that reads back as exactly v, into buf (>= 32 bytes): an integer's digits;
 * a decimal of at most 9 places when that is exact ("28.717", "0.000026325"); else the
 * shortest %.Ng (N = 15..17) that reads back as v; "null" when not finite. */
void jsonx_number(double v, char *buf, size_t len);
/* The number at s as a double, exactly as strtod reads it, *end past it when end is set:
 * a number of at most 15 significant digits and a power of ten within 10^+-22 is one
 * correctly rounded IEEE multiplication or division of two exact doubles (Clinger's fast
 * path), read without strtod; others go to strtod. */
double jsonx_read_number(const char *s, char **end);
/* v's decimal digits into buf (at least 21 bytes), NUL-terminated; returns the length. */
size_t jsonx_int(long long v, char *buf);
/* Unformatted JSON text of item with exact numbers. */
char *jsonx_print(const struct cJSON *item);
/* Append item's JSON text / s as a JSON string literal / v as jsonx_number prints it to b. */
void jsonx_write(struct sbuf *b, const struct cJSON *item);
void jsonx_write_string(struct sbuf *b, const char *s);
void jsonx_write_number(struct sbuf *b, double v);
/* Append ,"name":item (an object's next member; nothing when item is NULL) to b. */
void jsonx_write_member(struct sbuf *b, const char *name, const struct cJSON *item);
/* Add name: v to obj (caller-owned) as a number, or null when v is not finite. */
void jsonx_add_number(struct cJSON *obj, const char *name, double v);

#endif
