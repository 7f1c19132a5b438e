/* url.c - split http(s) URLs strictly; a loggable form without credentials or query. */
#include "url.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "bderr.h"
#include "netaddr.h"

static int fail(const char **why, const char *msg)
{
    if (why)
        *why = msg;
    return BD_EINVAL;
}

/* RFC 3986 userinfo: unreserved, pct-encoded, sub-delims, ':' */
static int userinfo_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("-._~%!$&'()*+,;=:", s[i]))
            return 0;
    return 1;
}

int url_parse_port(const char *s, size_t n, int *port)
{
    long v = 0;

    if (n == 0 || n > 5)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < 1 || v > 65535)
        return -1;
    *port = (int)v;
    return 0;
}

/* host[:port] or [v6][:port] (s, n) into out. */
static int parse_hostport(const char *s, size_t n, struct url_parts *out, const char **why)
{
    const char *h = s, *colon;
    size_t hlen;
    struct netaddr a;

    if (n > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (!close)
            return fail(why, "missing ']' after an IPv6 address");
        h = s + 1;
        hlen = (size_t)(close - h);
        colon = close + 1 < s + n ? close + 1 : NULL;
        if (colon && *colon != ':')
            return fail(why, "expected ':' after ']'");
        out->host_v6 = 1;
    } else {
        colon = memchr(s, ':', n);
        hlen = colon ? (size_t)(colon - s) : n;
    }
    if (hlen == 0 || hlen > URL_MAX_HOST)
        return fail(why, "the host must have 1 to 253 characters");
    for (size_t i = 0; i < hlen; i++) {
        int ch = (unsigned char)h[i];
        if (!(isalnum(ch) || ch == '-' || ch == '.' || ch == '_' || ch == '~' ||
              (out->host_v6 && ch == ':')))
            return fail(why, "invalid character in the host");
        out->host[i] = (char)tolower(ch);
    }
    out->host[hlen] = '\0';
    if (out->host_v6 && (netaddr_parse(out->host, &a) != 0 || !a.v6))
        return fail(why, "brackets must hold an IPv6 address (without a zone)");
    if (colon && url_parse_port(colon + 1, n - (size_t)(colon + 1 - s), &out->port) != 0)
        return fail(why, "the port must be a number from 1 to 65535");
    out->has_port = colon != NULL;
    return 0;
}

static int parse_scheme(const char *url, struct url_parts *out, const char **rest)
{
    if (strncasecmp(url, "http://", 7) == 0) {
        snprintf(out->scheme, sizeof out->scheme, "http");
        out->port = 80;
        *rest = url + 7;
        return 0;
    }
    if (strncasecmp(url, "https://", 8) == 0) {
        snprintf(out->scheme, sizeof out->scheme, "https");
        out->port = 443;
        *rest = url + 8;
        return 0;
    }
    return -1;
}

int url_parse(const char *url, struct url_parts *out, const char **why)
{
    const char *auth, *end, *at;
    size_t alen;

    memset(out, 0, sizeof *out);
    out->path = "";
    if (!url || parse_scheme(url, out, &auth) != 0)
        return fail(why, "expected an http:// or https:// URL");
    if (strchr(url, '\\'))
        return fail(why, "a backslash is not allowed in a URL");
    for (const char *p = url; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
            return fail(why, "spaces, control and non-ASCII characters are not allowed");
    alen = strcspn(auth, "/?#");
    end = auth + alen;
    at = memchr(auth, '@', alen);
    if (at) {
        if (memchr(at + 1, '@', (size_t)(end - at - 1)) || !userinfo_ok(auth, (size_t)(at - auth)))
            return fail(why, "malformed credentials before '@'");
        out->has_userinfo = 1;
        auth = at + 1;
    }
    if (parse_hostport(auth, (size_t)(end - auth), out, why) != 0)
        return BD_EINVAL;
    if (*end == '/') {
        out->path = end;
        out->path_len = strcspn(end, "?#");
    }
    return 0;
}

void url_redact(const char *url, char *out, size_t n)
{
    struct url_parts u;
    int v6;

    if (url_parse(url, &u, NULL) != 0) {
        snprintf(out, n, "(unparsable URL)");
        return;
    }
    v6 = u.host_v6;
    if (u.has_port)
        snprintf(out, n, "%s://%s%s%s:%d%.*s", u.scheme, v6 ? "[" : "", u.host, v6 ? "]" : "",
                 u.port, (int)(u.path_len > 1024 ? 1024 : u.path_len), u.path);
    else
        snprintf(out, n, "%s://%s%s%s%.*s", u.scheme, v6 ? "[" : "", u.host, v6 ? "]" : "",
                 (int)(u.path_len > 1024 ? 1024 : u.path_len), u.path);
}
