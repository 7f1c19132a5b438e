/* netaddr.c - IP literals, CIDR blocks, and the ranges outbound requests must not reach. */
#include "netaddr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "bderr.h"

int netaddr_parse(const char *s, struct netaddr *out)
{
    memset(out, 0, sizeof *out);
    if (!s || !*s)
        return BD_EINVAL;
    if (inet_pton(AF_INET, s, out->b) == 1)
        return 0;
    if (inet_pton(AF_INET6, s, out->b) == 1) {
        out->v6 = 1;
        return 0;
    }
    return BD_EINVAL;
}

int netaddr_from_sockaddr(const void *sa, struct netaddr *out)
{
    const struct sockaddr *s = sa;

    memset(out, 0, sizeof *out);
    if (s && s->sa_family == AF_INET) {
        const struct sockaddr_in *in = sa;
        memcpy(out->b, &in->sin_addr, 4);
        return 0;
    }
    if (s && s->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = sa;
        memcpy(out->b, &in6->sin6_addr, 16);
        out->v6 = 1;
        return 0;
    }
    return BD_EINVAL;
}

void netaddr_format(const struct netaddr *a, char *out, size_t n)
{
    char buf[NETADDR_STRLEN];

    if (!inet_ntop(a->v6 ? AF_INET6 : AF_INET, a->b, buf, sizeof buf))
        snprintf(buf, sizeof buf, "?");
    snprintf(out, n, "%s", buf);
}

/* 1 if the first bits of a and b (byte arrays) are equal. */
static int prefix_equal(const unsigned char *a, const unsigned char *b, int bits)
{
    int full = bits / 8, rest = bits % 8;

    if (memcmp(a, b, (size_t)full) != 0)
        return 0;
    if (rest == 0)
        return 1;
    return ((a[full] ^ b[full]) & (0xff << (8 - rest)) & 0xff) == 0;
}

/* The IPv4 address an IPv6 address carries, if any (mapped, compatible, NAT64, 6to4). */
static int embedded_v4(const struct netaddr *a, struct netaddr *v4)
{
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const unsigned char zero[12] = {0};
    static const unsigned char nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
    const unsigned char *src = NULL;

    if (!a->v6)
        return 0;
    if (memcmp(a->b, mapped, 12) == 0 || memcmp(a->b, nat64, 12) == 0)
        src = a->b + 12;
    else if (memcmp(a->b, zero, 12) == 0 && (a->b[12] | a->b[13] | a->b[14]) != 0)
        src = a->b + 12; /* ::a.b.c.d, but not :: or ::1 */
    else if (a->b[0] == 0x20 && a->b[1] == 0x02)
        src = a->b + 2;  /* 6to4 */
    if (!src)
        return 0;
    memset(v4, 0, sizeof *v4);
    memcpy(v4->b, src, 4);
    return 1;
}

struct range {
    unsigned char net[16];
    int bits;
    const char *why;
};

/* In order: the first range that holds the address names it. */
static const struct range v4_ranges[] = {
    {{0, 0, 0, 0}, 8, "unspecified address"},
    {{127, 0, 0, 0}, 8, "loopback address"},
    {{10, 0, 0, 0}, 8, "private address (RFC 1918)"},
    {{172, 16, 0, 0}, 12, "private address (RFC 1918)"},
    {{192, 168, 0, 0}, 16, "private address (RFC 1918)"},
    {{169, 254, 169, 254}, 32, "cloud metadata address"},
    {{169, 254, 0, 0}, 16, "link-local address"},
    {{100, 64, 0, 0}, 10, "carrier-grade NAT address (RFC 6598)"},
    {{192, 0, 0, 0}, 24, "reserved address (IETF protocol assignments)"},
    {{224, 0, 0, 0}, 4, "multicast address"},
    {{240, 0, 0, 0}, 4, "reserved address"},
};

static const struct range v6_ranges[] = {
    {{0}, 128, "unspecified address"},
    {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 128, "loopback address"},
    {{0xfd, 0x00, 0x0e, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x54}, 128,
     "cloud metadata address"},
    {{0xfc}, 7, "private address (unique local, fc00::/7)"},
    {{0xfe, 0x80}, 10, "link-local address"},
    {{0xfe, 0xc0}, 10, "private address (site-local)"},
    {{0xff}, 8, "multicast address"},
};

const char *netaddr_refused(const struct netaddr *a)
{
    struct netaddr v4;
    const struct range *r = a->v6 ? v6_ranges : v4_ranges;
    size_t n = a->v6 ? sizeof v6_ranges / sizeof v6_ranges[0]
                     : sizeof v4_ranges / sizeof v4_ranges[0];

    for (size_t i = 0; i < n; i++)
        if (prefix_equal(a->b, r[i].net, r[i].bits))
            return r[i].why;
    if (embedded_v4(a, &v4))
        return netaddr_refused(&v4);
    return NULL;
}

int netcidr_parse(const char *s, struct netcidr *out)
{
    char buf[64];
    const char *slash = s ? strchr(s, '/') : NULL;
    size_t alen = slash ? (size_t)(slash - s) : (s ? strlen(s) : 0);
    int max;
    char *end = NULL;
    long bits;
    struct netaddr masked;

    memset(out, 0, sizeof *out);
    if (alen == 0 || alen >= sizeof buf)
        return BD_EINVAL;
    memcpy(buf, s, alen);
    buf[alen] = '\0';
    if (netaddr_parse(buf, &out->net) != 0)
        return BD_EINVAL;
    max = out->net.v6 ? 128 : 32;
    bits = max;
    if (slash) {
        bits = strtol(slash + 1, &end, 10);
        if (end == slash + 1 || *end || bits < 0 || bits > max || slash[1] == '+' ||
            slash[1] == '-' || slash[1] == ' ')
            return BD_EINVAL;
    }
    out->bits = (int)bits;
    memset(&masked, 0, sizeof masked);
    masked.v6 = out->net.v6;
    memcpy(masked.b, out->net.b, (size_t)(bits / 8));
    if (bits % 8)
        masked.b[bits / 8] = (unsigned char)(out->net.b[bits / 8] & (0xff << (8 - bits % 8)));
    return memcmp(&masked, &out->net, sizeof masked) == 0 ? 0 : BD_EINVAL;
}

int netcidr_contains(const struct netcidr *c, const struct netaddr *a)
{
    struct netaddr v4;

    if (c->net.v6 == a->v6)
        return prefix_equal(a->b, c->net.b, c->bits);
    if (!c->net.v6 && embedded_v4(a, &v4))
        return prefix_equal(v4.b, c->net.b, c->bits);
    return 0;
}
