/* target.c - the webhook target policy: allow list, refused names and address ranges. */
#include "target.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bderr.h"

/* Names that reach a cloud's instance metadata service whatever they resolve to here. */
static const char *const metadata_names[] = {"metadata.google.internal", "metadata.goog",
                                             "metadata", NULL};

/* Lower-case copy of a DNS-style name without its trailing dot; NULL if it is not one. */
static char *name_copy(const char *s)
{
    size_t n = strlen(s);
    char *out;

    if (n > 0 && s[n - 1] == '.')
        n--;
    if (n == 0 || n > URL_MAX_HOST)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '.' && s[i] != '_')
            return NULL;
    out = strndup(s, n);
    for (size_t i = 0; out && out[i]; i++)
        out[i] = (char)tolower((unsigned char)out[i]);
    return out;
}

static int push(void **arr, size_t *n, size_t size, const void *item)
{
    char *grown = realloc(*arr, (*n + 1) * size);

    if (!grown)
        return BD_ENOMEM;
    memcpy(grown + *n * size, item, size);
    *arr = grown;
    (*n)++;
    return 0;
}

int target_policy_add(struct target_policy *p, const char *entry, const char **why)
{
    struct netcidr c;
    char *copy, *name = NULL;
    int rc;

    if (p->n_entries >= TARGET_MAX_ALLOW) {
        *why = "too many entries (at most 64)";
        return -1;
    }
    if (netcidr_parse(entry, &c) != 0) {
        name = strchr(entry, '/') || strchr(entry, ':') ? NULL : name_copy(entry);
        if (!name) {
            *why = "expected a host name, an IP address or a CIDR block (10.0.0.0/8, fd00::/8) "
                   "without host bits below the prefix";
            return -1;
        }
    }
    copy = strdup(entry);
    rc = copy ? push((void **)&p->entries, &p->n_entries, sizeof copy, &copy) : BD_ENOMEM;
    if (rc == 0)
        rc = name ? push((void **)&p->names, &p->n_names, sizeof name, &name)
                  : push((void **)&p->cidrs, &p->n_cidrs, sizeof c, &c);
    if (rc != 0) {
        if (p->n_entries && p->entries[p->n_entries - 1] == copy)
            p->n_entries--;
        free(copy);
        free(name);
    }
    return rc;
}

void target_policy_free(struct target_policy *p)
{
    for (size_t i = 0; i < p->n_entries; i++)
        free(p->entries[i]);
    for (size_t i = 0; i < p->n_names; i++)
        free(p->names[i]);
    free(p->entries);
    free(p->names);
    free(p->cidrs);
    memset(p, 0, sizeof *p);
}

int target_name_listed(const struct target_policy *p, const char *host)
{
    char *name = name_copy(host);
    int found = 0;

    for (size_t i = 0; name && i < p->n_names && !found; i++)
        found = strcmp(p->names[i], name) == 0;
    free(name);
    return found;
}

static int cidr_listed(const struct target_policy *p, const struct netaddr *a)
{
    for (size_t i = 0; i < p->n_cidrs; i++)
        if (netcidr_contains(&p->cidrs[i], a))
            return 1;
    return 0;
}

int target_addr_ok(const struct target_policy *p, int host_listed, const struct netaddr *a,
                   char *why, size_t n)
{
    const char *reason;
    char text[NETADDR_STRLEN];

    if (host_listed || cidr_listed(p, a))
        return 1;
    reason = netaddr_refused(a);
    if (!reason)
        return 1;
    netaddr_format(a, text, sizeof text);
    snprintf(why, n, "%s is a %s; list it in webhooks.allow to permit it", text, reason);
    return 0;
}

static int metadata_name(const char *host)
{
    size_t n = strlen(host);

    if (n > 0 && host[n - 1] == '.')
        n--;
    for (int i = 0; metadata_names[i]; i++)
        if (strlen(metadata_names[i]) == n && strncasecmp(host, metadata_names[i], n) == 0)
            return 1;
    return 0;
}

enum target_verdict target_check_host(const struct target_policy *p, const struct url_parts *u,
                                      char *why, size_t n)
{
    struct netaddr a;

    if (netaddr_parse(u->host, &a) == 0)
        return target_addr_ok(p, 0, &a, why, n) ? TARGET_ALLOWED : TARGET_REFUSED;
    if (target_name_listed(p, u->host))
        return TARGET_ALLOWED;
    if (metadata_name(u->host)) {
        snprintf(why, n, "%s is a cloud metadata name; list it in webhooks.allow to permit it",
                 u->host);
        return TARGET_REFUSED;
    }
    return TARGET_RESOLVE;
}
