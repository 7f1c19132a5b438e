/* target.h - where a webhook may be sent: the policy that keeps callback_url away from the
 * service's own network. A target is refused when it is (or resolves to) an unspecified,
 * loopback, private (RFC 1918, fc00::/7), link-local, carrier-grade NAT, cloud metadata
 * (169.254.169.254, fd00:ec2::254, metadata.google.internal), multicast or reserved
 * address - unless webhooks.allow lists its host name or a CIDR block holding the address.
 * The API checks a callback_url at submit (a literal address directly, a host name on every
 * address it resolves to); the webhook sender checks again the address each connection
 * actually goes to, so a name that resolves differently later (DNS rebinding) gains
 * nothing. Pure: no I/O (resolution is the caller's).
 *
 * Ownership: a struct target_policy owns its strings and blocks (target_policy_free);
 * entries passed in are copied. Reasons are written into caller buffers. */
#ifndef BRIEFD_TARGET_H
#define BRIEFD_TARGET_H

#include <stddef.h>

#include "netaddr.h"
#include "url.h"

#define TARGET_MAX_ALLOW 64       /* entries of webhooks.allow */

struct target_policy {
    char **entries;               /* as written (for GET /v1/config) */
    size_t n_entries;
    char **names;                 /* host names: lower case, no trailing dot */
    size_t n_names;
    struct netcidr *cidrs;        /* addresses and blocks */
    size_t n_cidrs;
};

/* Add one allow-list entry: a host name, an IP address or a CIDR block. Returns 0, or -1
 * with *why (static) set, or BD_ENOMEM. */
int target_policy_add(struct target_policy *p, const char *entry, const char **why);
void target_policy_free(struct target_policy *p);

enum target_verdict {
    TARGET_ALLOWED,   /* nothing to resolve: an allowed literal address or a listed name */
    TARGET_RESOLVE,   /* a host name: every address it resolves to must pass target_addr_ok */
    TARGET_REFUSED    /* why says which rule */
};
/* The verdict for the host of a parsed URL. */
enum target_verdict target_check_host(const struct target_policy *p, const struct url_parts *u,
                                      char *why, size_t n);
/* 1 if the host name is on the allow list (then any address it resolves to may be used). */
int target_name_listed(const struct target_policy *p, const char *host);
/* 1 if a connection may go to a (host_listed: the URL's host name is on the allow list);
 * else 0 with why ("10.1.2.3 is a private address (RFC 1918)"). */
int target_addr_ok(const struct target_policy *p, int host_listed, const struct netaddr *a,
                   char *why, size_t n);

#endif
