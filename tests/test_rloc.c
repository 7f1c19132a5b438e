/* test_rloc.c - the primary locator's pure parts: Cluster hash slots, addresses, and the
 * +switch-master message. (The locator itself runs against real sentinels and a real Cluster
 * in tests/integration/test_ha.py.) */
#include <string.h>

#include "bderr.h"
#include "rloc.h"
#include "tcheck.h"

static void test_slot(void)
{
    /* Redis Cluster specification values: CRC16("123456789") = 0x31C3 */
    CHECK(rloc_slot("123456789", 9) == (0x31C3 & 16383));
    CHECK(rloc_slot("foo", 3) == 12182);
    CHECK(rloc_slot("bar", 3) == 5061);
    /* a hash tag: only what is between the first { and the next } counts */
    CHECK(rloc_slot("{user1000}.following", 21) == rloc_slot("user1000", 8));
    CHECK(rloc_slot("{briefd:}job:1", 14) == rloc_slot("{briefd:}q:high", 15));
    CHECK(rloc_slot("{briefd:}", 9) == rloc_slot("briefd:", 7));
    /* an empty tag {} is no tag: the whole key is hashed (CRC16 of the whole key) */
    CHECK(rloc_slot("{}x", 3) == 10595);
    CHECK(rloc_slot("foo{}{bar}", 10) == 8363);
    CHECK(rloc_slot("foo{}{bar}", 10) != rloc_slot("bar", 3));
}

static void test_hostport(void)
{
    char h[64];
    int port = 0;
    CHECK(rloc_parse_hostport("127.0.0.1:26379", h, sizeof(h), &port) == 0);
    CHECK_STR(h, "127.0.0.1");
    CHECK(port == 26379);
    CHECK(rloc_parse_hostport("[::1]:7000", h, sizeof(h), &port) == 0);
    CHECK_STR(h, "::1");
    CHECK(port == 7000);
    CHECK(rloc_parse_hostport("sentinel-2.local:1", h, sizeof(h), &port) == 0);
    CHECK_STR(h, "sentinel-2.local");
    CHECK(rloc_parse_hostport("127.0.0.1", h, sizeof(h), &port) == BD_EINVAL);
    CHECK(rloc_parse_hostport(":80", h, sizeof(h), &port) == BD_EINVAL);
    CHECK(rloc_parse_hostport("h:0", h, sizeof(h), &port) == BD_EINVAL);
    CHECK(rloc_parse_hostport("h:65536", h, sizeof(h), &port) == BD_EINVAL);
    CHECK(rloc_parse_hostport("h:12x", h, sizeof(h), &port) == BD_EINVAL);
    CHECK(rloc_parse_hostport("::1:80", h, sizeof(h), &port) == BD_EINVAL);
    CHECK(rloc_parse_hostport("[::1]80", h, sizeof(h), &port) == BD_EINVAL);
    CHECK(rloc_parse_hostport("averyveryverylonghostname.example:1", h, 8, &port) == BD_EINVAL);
}

static void test_switch(void)
{
    char h[64];
    int port = 0;
    const char *m = "mymaster 127.0.0.1 6379 127.0.0.1 6380";
    CHECK(rloc_parse_switch(m, strlen(m), "mymaster", h, sizeof(h), &port) == 0);
    CHECK_STR(h, "127.0.0.1");
    CHECK(port == 6380);
    CHECK(rloc_parse_switch(m, strlen(m), "other", h, sizeof(h), &port) == BD_EINVAL);
    CHECK(rloc_parse_switch(m, 20, "mymaster", h, sizeof(h), &port) == BD_EINVAL);
    m = "mymaster 10.0.0.1 6379 10.0.0.2 notaport";
    CHECK(rloc_parse_switch(m, strlen(m), "mymaster", h, sizeof(h), &port) == BD_EINVAL);
}

int main(void)
{
    test_slot();
    test_hostport();
    test_switch();
    return tcheck_summary("test_rloc");
}
