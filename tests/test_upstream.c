/* test_upstream.c - a model's endpoints in order, a breaker per endpoint, what falls back. */
#include <stdlib.h>

#include "config.h"
#include "tcheck.h"
#include "upstream.h"

static struct bd_config *load(const char *json)
{
    struct cfg_err err;
    struct bd_config *c = config_load_string(json, strlen(json), &err);
    if (!c)
        fprintf(stderr, "config: %s: %s\n", err.path, err.msg);
    return c;
}

static const char *CONF =
    "{\"models\": {\"draft\": {\"breaker_failures\": 2, \"breaker_open_ms\": 1000, "
    "\"fallbacks\": [{\"base_url\": \"http://a/v1\"}, {\"base_url\": \"http://b/v1\", "
    "\"name\": \"other\"}]}, \"refine\": {\"name\": \"phi-4-mini\"}}}";

static void test_endpoints(void)
{
    struct bd_config *c = load(CONF);
    CHECK(c != NULL);
    if (!c)
        return;
    CHECK(ups_count(&c->draft) == 3 && ups_count(&c->refine) == 1);
    CHECK(ups_endpoint(&c->draft, 0) == &c->draft);
    CHECK(ups_endpoint(&c->draft, 2) == &c->draft.fallbacks[1]);
    CHECK(ups_endpoint(&c->draft, 3) == NULL && ups_endpoint(&c->draft, -1) == NULL);
    CHECK(ups_endpoint(&c->refine, 1) == NULL);
    config_unref(c);
}

static void test_pick_and_breakers(void)
{
    struct bd_config *c = load(CONF);
    struct ups u;
    const struct model_cfg *d;
    memset(&u, 0, sizeof(u));
    CHECK(c != NULL);
    if (!c)
        return;
    d = &c->draft;
    CHECK(ups_pick(&u, d, 0, 100) == 0);
    CHECK(ups_any_open(&u, d, 100));
    /* two failures open the primary's breaker (breaker_failures 2): calls skip it */
    CHECK(ups_record(&u, d, 0, 100) == 0);
    CHECK(ups_record(&u, d, 0, 101) == 1);
    CHECK(ups_state(&u, d) == BREAKER_OPEN);
    CHECK(ups_pick(&u, d, 0, 200) == 1);
    CHECK(ups_pick(&u, d, 2, 200) == 2);
    /* the refine model with the primary's name at the primary's URL shares its breaker;
     * the same name elsewhere does not */
    CHECK(ups_state(&u, &c->refine) == BREAKER_OPEN);
    CHECK(ups_state(&u, &d->fallbacks[0]) == BREAKER_CLOSED);
    ups_record(&u, &d->fallbacks[0], 0, 300);
    ups_record(&u, &d->fallbacks[0], 0, 300);
    ups_record(&u, &d->fallbacks[1], 0, 300);
    ups_record(&u, &d->fallbacks[1], 0, 300);
    CHECK(ups_pick(&u, d, 0, 400) == -1);
    CHECK(!ups_any_open(&u, d, 400));
    /* after breaker_open_ms one probe goes through, to the first endpoint */
    CHECK(ups_any_open(&u, d, 1101));
    CHECK(ups_pick(&u, d, 0, 1101) == 0);
    CHECK(ups_state(&u, d) == BREAKER_HALF_OPEN);
    CHECK(ups_pick(&u, d, 0, 1101) == -1);  /* its probe is in flight, the fallbacks open */
    CHECK(ups_record(&u, d, 1, 1200) == 1); /* it answered: closed */
    CHECK(ups_pick(&u, d, 0, 1200) == 0);
    /* a 4xx is an answer, not an outage */
    CHECK(!ups_outage(MC_FAIL_HTTP_4XX) && !ups_outage(MC_FAIL_BAD_BODY) &&
          !ups_outage(MC_FAIL_TOO_BIG) && !ups_outage(MC_FAIL_CANCELED));
    CHECK(ups_outage(MC_FAIL_CONNECT) && ups_outage(MC_FAIL_TIMEOUT) &&
          ups_outage(MC_FAIL_HTTP_5XX) && ups_outage(MC_FAIL_RATE_LIMIT) &&
          ups_outage(MC_FAIL_DEADLINE));
    ups_free(&u);
    config_unref(c);
}

/* A full table makes room with the least recently used closed breaker; open ones stay. */
static void test_eviction(void)
{
    struct bd_config *c = load(CONF);
    struct model_cfg ep;
    char url[64];
    struct ups u;
    memset(&u, 0, sizeof(u));
    CHECK(c != NULL);
    if (!c)
        return;
    ups_record(&u, &c->draft, 0, 1);
    ups_record(&u, &c->draft, 0, 1); /* open, and the oldest */
    ep = c->draft;
    for (int i = 0; i < UPS_MAX_BREAKERS + 10; i++) {
        snprintf(url, sizeof(url), "http://h%d/v1", i);
        ep.base_url = url;
        CHECK(ups_breaker(&u, &ep, (uint64_t)(10 + i)) != NULL);
    }
    CHECK(u.n == UPS_MAX_BREAKERS);
    CHECK(ups_state(&u, &c->draft) == BREAKER_OPEN);
    ep.base_url = "http://h0/v1"; /* evicted: the least recently used closed one */
    {
        int found = 0;
        for (size_t i = 0; i < u.n; i++)
            found += strncmp(u.v[i].key, "http://h0/v1\n", 13) == 0;
        CHECK(found == 0);
    }
    ups_free(&u);
    config_unref(c);
}

int main(void)
{
    unsetenv("BRIEFD_API_KEYS");
    unsetenv("BRIEFD_ADMIN_KEYS");
    test_endpoints();
    test_pick_and_breakers();
    test_eviction();
    return tcheck_summary("test_upstream");
}
