/* test_target.c - the webhook target policy (service/target.c) and the webhook signature
 * (webhook_sign, against the Standard Webhooks test vector). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bderr.h"
#include "config.h"
#include "target.h"
#include "tcheck.h"
#include "webhook.h"

static enum target_verdict verdict(const struct target_policy *p, const char *url, char *why,
                                   size_t n)
{
    struct url_parts u;

    if (url_parse(url, &u, NULL) != 0)
        return (enum target_verdict)-1;
    return target_check_host(p, &u, why, n);
}

static void test_no_allow_list(void)
{
    struct target_policy p = {0};
    char why[200];
    struct netaddr a;

    CHECK(verdict(&p, "http://127.0.0.1:8080/x", why, sizeof why) == TARGET_REFUSED);
    CHECK_STR(why, "127.0.0.1 is a loopback address; list it in webhooks.allow to permit it");
    CHECK(verdict(&p, "http://[::1]/x", why, sizeof why) == TARGET_REFUSED);
    CHECK(verdict(&p, "http://169.254.169.254/", why, sizeof why) == TARGET_REFUSED);
    CHECK(strstr(why, "cloud metadata") != NULL);
    CHECK(verdict(&p, "http://metadata.google.internal/", why, sizeof why) == TARGET_REFUSED);
    CHECK(verdict(&p, "http://METADATA.google.internal./x", why, sizeof why) == TARGET_REFUSED);
    CHECK(verdict(&p, "https://93.184.216.34/x", why, sizeof why) == TARGET_ALLOWED);
    CHECK(verdict(&p, "https://hooks.example.com/x", why, sizeof why) == TARGET_RESOLVE);
    CHECK(netaddr_parse("10.9.8.7", &a) == 0);
    CHECK(!target_addr_ok(&p, 0, &a, why, sizeof why));
    CHECK_STR(why, "10.9.8.7 is a private address (RFC 1918); list it in webhooks.allow to "
                   "permit it");
    CHECK(target_addr_ok(&p, 1, &a, why, sizeof why)); /* the host name was listed */
}

static void test_allow_list(void)
{
    struct target_policy p = {0};
    const char *why_add = NULL;
    char why[200];
    struct netaddr a;

    CHECK(target_policy_add(&p, "127.0.0.1", &why_add) == 0);
    CHECK(target_policy_add(&p, "10.0.0.0/8", &why_add) == 0);
    CHECK(target_policy_add(&p, "Hooks.Internal.", &why_add) == 0);
    CHECK(target_policy_add(&p, "fd00::/8", &why_add) == 0);
    CHECK(target_policy_add(&p, "10.0.0.1/8", &why_add) == -1 && why_add != NULL);
    CHECK(target_policy_add(&p, "bad name!", &why_add) == -1);
    CHECK(p.n_entries == 4 && p.n_names == 1 && p.n_cidrs == 3);
    CHECK(verdict(&p, "http://127.0.0.1:9/x", why, sizeof why) == TARGET_ALLOWED);
    CHECK(verdict(&p, "http://127.0.0.2:9/x", why, sizeof why) == TARGET_REFUSED);
    CHECK(verdict(&p, "http://10.1.2.3/x", why, sizeof why) == TARGET_ALLOWED);
    CHECK(verdict(&p, "http://[::ffff:10.1.2.3]/x", why, sizeof why) == TARGET_ALLOWED);
    CHECK(verdict(&p, "http://hooks.internal/x", why, sizeof why) == TARGET_ALLOWED);
    CHECK(verdict(&p, "http://other.internal/x", why, sizeof why) == TARGET_RESOLVE);
    CHECK(target_name_listed(&p, "HOOKS.internal"));
    CHECK(netaddr_parse("fd12::5", &a) == 0 && target_addr_ok(&p, 0, &a, why, sizeof why));
    CHECK(netaddr_parse("192.168.1.1", &a) == 0 && !target_addr_ok(&p, 0, &a, why, sizeof why));
    for (int i = 4; i < TARGET_MAX_ALLOW; i++) {
        char e[32];
        snprintf(e, sizeof e, "h%d.example", i);
        CHECK(target_policy_add(&p, e, &why_add) == 0);
    }
    CHECK(target_policy_add(&p, "one.too.many", &why_add) == -1);
    target_policy_free(&p);
    CHECK(p.n_entries == 0 && p.entries == NULL);
}

static void test_sign(void)
{
    /* whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw, decoded */
    static const unsigned char secret[] = {0x31, 0xf2, 0x90, 0xf6, 0xbf, 0x06, 0x29, 0x8a,
                                           0xab, 0x4f, 0x08, 0xd4, 0x3c, 0x3f, 0x08, 0x2c,
                                           0xf6, 0x48, 0xa3, 0x62, 0xda, 0x2d, 0xa4, 0xb0};
    char sig[WEBHOOK_SIGNATURE_LEN];

    CHECK(webhook_sign(secret, sizeof secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
                       "{\"test\": 2432232314}", sig, sizeof sig) == 0);
    CHECK_STR(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    CHECK(webhook_sign(secret, sizeof secret, "msg_1", 1, "{}", sig, 10) == BD_ETOOBIG);
}

/* webhook_vet_now: what needs no lookup is decided at once. */
static void test_vet_now(void)
{
    static const char conf[] = "{\"webhooks\": {\"allow\": [\"127.0.0.1\", \"hooks.internal\"]}}";
    struct cfg_err err;
    struct bd_config *c = config_load_string(conf, strlen(conf), &err);
    char why[200];

    CHECK(c != NULL);
    if (!c)
        return;
    CHECK(webhook_vet_now(c, "http://127.0.0.1:9/x", why, sizeof why) == 0);
    CHECK(webhook_vet_now(c, "http://hooks.internal/x", why, sizeof why) == 0);
    CHECK(webhook_vet_now(c, "http://10.0.0.1/x", why, sizeof why) == -1);
    CHECK(strstr(why, "10.0.0.1 is a private address") != NULL);
    CHECK(webhook_vet_now(c, "http://example.test/x", why, sizeof why) == 1);
    CHECK(webhook_vet_now(c, "http://a@b@example.test/x", why, sizeof why) == -1);
    config_unref(c);
}

int main(void)
{
    test_vet_now();
    test_no_allow_list();
    test_allow_list();
    test_sign();
    return tcheck_summary("test_target");
}
