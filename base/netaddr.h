/* netaddr.h - IP addresses and networks for outbound-target policy: parse IPv4/IPv6 literals
 * and CIDR blocks, match an address against a block, and classify addresses that a request
 * from briefd to a URL a client gave must not reach: unspecified, loopback, private
 * (RFC 1918, fc00::/7), link-local, carrier-grade NAT, cloud metadata, multicast and
 * reserved ranges. IPv6 addresses that embed an IPv4 address (::ffff:a.b.c.d, ::a.b.c.d,
 * 64:ff9b::a.b.c.d, 2002:AABB:CCDD::) are classified by the IPv4 address they carry.
 *
 * Ownership: plain values without pointers; reasons are static strings. */
#ifndef BRIEFD_NETADDR_H
#define BRIEFD_NETADDR_H

#include <stddef.h>

struct netaddr {
    int v6;                    /* 0: IPv4 in b[0..3]; 1: IPv6 in b[0..15] */
    unsigned char b[16];
};

struct netcidr {
    struct netaddr net;        /* host bits cleared */
    int bits;                  /* prefix length: 0..32 or 0..128 */
};

#define NETADDR_STRLEN 46      /* INET6_ADDRSTRLEN */

/* A literal "192.0.2.1" (dotted quad only) or "2001:db8::1" (no brackets, no zone).
 * Returns 0 or BD_EINVAL. */
int netaddr_parse(const char *s, struct netaddr *out);
/* From a struct sockaddr (AF_INET or AF_INET6). Returns 0 or BD_EINVAL. */
int netaddr_from_sockaddr(const void *sa, struct netaddr *out);
/* The address as text into out (NETADDR_STRLEN bytes suffice). */
void netaddr_format(const struct netaddr *a, char *out, size_t n);
/* NULL when a is a public unicast address; else why it must not be a target
 * ("loopback address", "private address", "cloud metadata address", ...). */
const char *netaddr_refused(const struct netaddr *a);

/* "10.0.0.0/8", "fd00::/8", or a bare address (a /32 or /128). Host bits set below the
 * prefix are refused ("10.0.0.1/8"). Returns 0 or BD_EINVAL. */
int netcidr_parse(const char *s, struct netcidr *out);
/* 1 if a is inside c. An IPv6 address carrying an IPv4 address (see above) is inside an
 * IPv4 block when the address it carries is. */
int netcidr_contains(const struct netcidr *c, const struct netaddr *a);

#endif
