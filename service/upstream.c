/* upstream.c - a model's endpoints in order, and a circuit breaker per endpoint. */
#include "upstream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int ups_count(const struct model_cfg *m)
{
    return 1 + (int)m->n_fallbacks;
}

const struct model_cfg *ups_endpoint(const struct model_cfg *m, int k)
{
    if (k == 0)
        return m;
    if (k < 0 || (size_t)k > m->n_fallbacks)
        return NULL;
    return &m->fallbacks[k - 1];
}

/* ep's key: base_url "\n" name (neither holds a newline: the config refuses control
 * characters in base_url, and a name is sent in a JSON body). */
static int key_is(const char *key, const struct model_cfg *ep)
{
    size_t n = strlen(ep->base_url);
    return strncmp(key, ep->base_url, n) == 0 && key[n] == '\n' &&
           strcmp(key + n + 1, ep->name) == 0;
}

static struct ups_breaker *find(const struct ups *u, const struct model_cfg *ep)
{
    for (size_t i = 0; i < u->n; i++)
        if (key_is(u->v[i].key, ep))
            return (struct ups_breaker *)&u->v[i];
    return NULL;
}

/* The slot a new breaker goes in: a free one, else the least recently used closed one, else
 * the least recently used of all. */
static struct ups_breaker *slot(struct ups *u)
{
    struct ups_breaker *lru = NULL, *lru_closed = NULL;
    if (u->n < UPS_MAX_BREAKERS)
        return &u->v[u->n++];
    for (size_t i = 0; i < u->n; i++) {
        struct ups_breaker *e = &u->v[i];
        if (!lru || e->used_ms < lru->used_ms)
            lru = e;
        if (e->b.state == BREAKER_CLOSED && (!lru_closed || e->used_ms < lru_closed->used_ms))
            lru_closed = e;
    }
    lru = lru_closed ? lru_closed : lru;
    free(lru->key);
    lru->key = NULL;
    return lru;
}

struct breaker *ups_breaker(struct ups *u, const struct model_cfg *ep, uint64_t now_ms)
{
    struct ups_breaker *e = find(u, ep);
    char *key;
    if (!e) {
        if (asprintf(&key, "%s\n%s", ep->base_url, ep->name) < 0)
            return NULL;
        e = slot(u);
        memset(e, 0, sizeof(*e));
        e->key = key;
    }
    e->used_ms = now_ms;
    return &e->b;
}

enum breaker_state ups_state(const struct ups *u, const struct model_cfg *ep)
{
    const struct ups_breaker *e = find(u, ep);
    return e ? e->b.state : BREAKER_CLOSED;
}

int ups_pick(struct ups *u, const struct model_cfg *m, int from, uint64_t now_ms)
{
    for (int k = from < 0 ? 0 : from; k < ups_count(m); k++) {
        const struct model_cfg *ep = ups_endpoint(m, k);
        struct breaker *b = ups_breaker(u, ep, now_ms);
        if (!b || breaker_allow(b, now_ms, ep->breaker_open_ms))
            return k;
    }
    return -1;
}

int ups_would_allow(const struct ups *u, const struct model_cfg *ep, uint64_t now_ms)
{
    const struct ups_breaker *e = find(u, ep);
    return !e || breaker_would_allow(&e->b, now_ms, ep->breaker_open_ms);
}

int ups_any_open(const struct ups *u, const struct model_cfg *m, uint64_t now_ms)
{
    for (int k = 0; k < ups_count(m); k++)
        if (ups_would_allow(u, ups_endpoint(m, k), now_ms))
            return 1;
    return 0;
}

int ups_record(struct ups *u, const struct model_cfg *ep, int ok, uint64_t now_ms)
{
    struct breaker *b = ups_breaker(u, ep, now_ms);
    return b ? breaker_record(b, ok, now_ms, ep->breaker_failures) : 0;
}

int ups_outage(enum mc_fail fail)
{
    return fail == MC_FAIL_CONNECT || fail == MC_FAIL_TIMEOUT || fail == MC_FAIL_HTTP_5XX ||
           fail == MC_FAIL_RATE_LIMIT || fail == MC_FAIL_DEADLINE;
}

void ups_free(struct ups *u)
{
    for (size_t i = 0; i < u->n; i++)
        free(u->v[i].key);
    u->n = 0;
}
