/* url.h - the parts of an http(s) URL that outbound-target policy and logs need: scheme,
 * host (a name, or an IP literal without brackets), port, whether credentials are present,
 * and the path. Strict: an authority holding anything but an optional "user[:password]@",
 * a host of letters, digits, '-', '.', '_' and '~' (or a bracketed IPv6 address without a
 * zone) and an optional port is refused, as is a backslash anywhere, so that briefd and
 * libcurl cannot read one URL as two different hosts.
 *
 * Ownership: struct url_parts holds copies of scheme and host; path points into the URL
 * given and is valid as long as it is. */
#ifndef BRIEFD_URL_H
#define BRIEFD_URL_H

#include <stddef.h>

#define URL_MAX_HOST 253

struct url_parts {
    char scheme[8];                 /* "http" or "https", lower case */
    char host[URL_MAX_HOST + 1];    /* lower case; IPv6 without brackets */
    int host_v6;                    /* the host was a bracketed IPv6 literal */
    int port;                       /* as written, or 80 / 443 */
    int has_port;
    int has_userinfo;               /* "user[:password]@" present (never logged) */
    const char *path;               /* from the first '/' up to '?', '#' or the end; "" */
    size_t path_len;
};

/* Returns 0, or BD_EINVAL with *why (static) saying what is wrong. */
int url_parse(const char *url, struct url_parts *out, const char **why);
/* The decimal port of 1 to 5 digits at s (n bytes) into *port: 0, or -1 unless 1..65535. */
int url_parse_port(const char *s, size_t n, int *port);
/* "scheme://host[:port]/path" of url into out (n bytes): no credentials, query or fragment,
 * what logs may show. A URL that does not parse gives "(unparsable URL)". */
void url_redact(const char *url, char *out, size_t n);

#endif
