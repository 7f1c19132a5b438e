/* test_base.c - base/: SHA-256 and HMAC-SHA-256 (RFC 4231 vectors), FNV-1a (reference
 * values), base64 (RFC 4648 vectors, strict decoding), IP literals, CIDR blocks and refused
 * ranges, URL parts and redaction, error names, ISO 8601 timestamps read back, held log
 * lines. */
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "b64.h"
#include "bderr.h"
#include "clock.h"
#include "hash.h"
#include "jscan.h"
#include "jsonx.h"
#include "log.h"
#include "sbuf.h"
#include "netaddr.h"
#include "tcheck.h"
#include "url.h"

#include <unistd.h>
#include <uv.h>

static void hex(const unsigned char *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", p[i]);
}

static void check_hmac(const void *key, size_t klen, const void *msg, size_t n,
                       const char *want)
{
    unsigned char mac[HASH_SHA256_LEN];
    char text[2 * HASH_SHA256_LEN + 1];

    CHECK(hash_hmac_sha256(key, klen, msg, n, mac) == 0);
    hex(mac, sizeof mac, text);
    CHECK_STR(text, want);
}

/* RFC 4231, section 4: test cases 1, 2, 3, 4, 6 and 7 (5 is about truncated output). */
static void test_hmac_rfc4231(void)
{
    unsigned char k20[20], k131[131], d50[50], k25[25];

    memset(k20, 0x0b, sizeof k20);
    check_hmac(k20, 20, "Hi There", 8,
               "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    check_hmac("Jefe", 4, "what do ya want for nothing?", 28,
               "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    memset(k20, 0xaa, sizeof k20);
    memset(d50, 0xdd, sizeof d50);
    check_hmac(k20, 20, d50, 50,
               "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe");
    for (int i = 0; i < 25; i++)
        k25[i] = (unsigned char)(i + 1);
    memset(d50, 0xcd, sizeof d50);
    check_hmac(k25, 25, d50, 50,
               "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b");
    memset(k131, 0xaa, sizeof k131);
    check_hmac(k131, 131, "Test Using Larger Than Block-Size Key - Hash Key First", 54,
               "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    check_hmac(k131, 131,
               "This is a test using a larger than block-size key and a larger than block-size "
               "data. The key needs to be hashed before being used by the HMAC algorithm.", 152,
               "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2");
}

static void test_sha256(void)
{
    unsigned char d[HASH_SHA256_LEN];
    char text[2 * HASH_SHA256_LEN + 1];

    CHECK(hash_sha256("abc", 3, d) == 0);
    hex(d, sizeof d, text);
    CHECK_STR(text, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK(hash_equal_ct("abc", "abc", 3) && !hash_equal_ct("abc", "abd", 3));
}

/* RFC 4648, section 10, both ways; then what the strict decoder refuses. */
static void test_b64(void)
{
    static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const coded[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=",
                                        "Zm9vYmFy"};
    static const char *const bad[] = {"Zg=", "Z", "Zm9v\n", "Zm9v YmFy", "Zh==", "Zm-v",
                                      "Zm9v====", "=Zm9", "Zm=v"};
    unsigned char out[16];
    char enc[16];
    size_t n;

    for (int i = 0; i < 7; i++) {
        CHECK(b64_encode(plain[i], strlen(plain[i]), enc, sizeof enc) == strlen(coded[i]));
        CHECK_STR(enc, coded[i]);
        CHECK(b64_decode(coded[i], strlen(coded[i]), out, sizeof out, &n) == 0);
        CHECK(n == strlen(plain[i]) && memcmp(out, plain[i], n) == 0);
    }
    CHECK(b64_decode("Zm9vYg", 6, out, sizeof out, &n) == 0 && n == 4); /* padding optional */
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(b64_decode(bad[i], strlen(bad[i]), out, sizeof out, &n) == BD_EINVAL);
    CHECK(b64_decode("Zm9vYmFy", 8, out, 5, &n) == BD_ETOOBIG);
    CHECK(b64_encode("foobar", 6, enc, 8) == 0 && enc[0] == '\0');
}

/* The Standard Webhooks specification's published test vector. */
static void test_standard_webhooks_vector(void)
{
    const char *secret = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const char *content = "msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330.{\"test\": 2432232314}";
    unsigned char key[64], mac[HASH_SHA256_LEN];
    char sig[64];
    size_t n;

    CHECK(b64_decode(secret, strlen(secret), key, sizeof key, &n) == 0 && n == 24);
    CHECK(hash_hmac_sha256(key, n, content, strlen(content), mac) == 0);
    b64_encode(mac, sizeof mac, sig, sizeof sig);
    CHECK_STR(sig, "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
}

static const char *refused(const char *lit)
{
    struct netaddr a;

    if (netaddr_parse(lit, &a) != 0)
        return "(unparsable)";
    return netaddr_refused(&a);
}

static void test_netaddr(void)
{
    static const char *const bad[] = {"127.1", "0177.0.0.1", "1.2.3.4.5", "::1%eth0", "[::1]",
                                      "", "256.1.1.1", "2130706433"};
    struct netaddr a;
    struct netcidr c;
    char text[NETADDR_STRLEN];

    CHECK_STR(refused("127.0.0.1"), "loopback address");
    CHECK_STR(refused("10.1.2.3"), "private address (RFC 1918)");
    CHECK_STR(refused("172.31.255.255"), "private address (RFC 1918)");
    CHECK(refused("172.32.0.1") == NULL);
    CHECK_STR(refused("192.168.0.1"), "private address (RFC 1918)");
    CHECK_STR(refused("169.254.169.254"), "cloud metadata address");
    CHECK_STR(refused("169.254.1.1"), "link-local address");
    CHECK_STR(refused("100.64.0.1"), "carrier-grade NAT address (RFC 6598)");
    CHECK(refused("100.128.0.1") == NULL);
    CHECK_STR(refused("0.0.0.0"), "unspecified address");
    CHECK_STR(refused("224.0.0.1"), "multicast address");
    CHECK_STR(refused("255.255.255.255"), "reserved address");
    CHECK(refused("93.184.216.34") == NULL);
    CHECK_STR(refused("::"), "unspecified address");
    CHECK_STR(refused("::1"), "loopback address");
    CHECK_STR(refused("fd00:ec2::254"), "cloud metadata address");
    CHECK_STR(refused("fd12::1"), "private address (unique local, fc00::/7)");
    CHECK_STR(refused("fe80::1"), "link-local address");
    CHECK_STR(refused("::ffff:127.0.0.1"), "loopback address");
    CHECK_STR(refused("::ffff:10.0.0.1"), "private address (RFC 1918)");
    CHECK_STR(refused("64:ff9b::169.254.169.254"), "cloud metadata address");
    CHECK_STR(refused("2002:7f00:1::"), "loopback address");
    CHECK(refused("2606:4700::1111") == NULL);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(netaddr_parse(bad[i], &a) == BD_EINVAL);
    CHECK(netaddr_parse("2001:db8::1", &a) == 0);
    netaddr_format(&a, text, sizeof text);
    CHECK_STR(text, "2001:db8::1");

    CHECK(netcidr_parse("10.0.0.0/8", &c) == 0 && c.bits == 8);
    CHECK(netaddr_parse("10.200.3.4", &a) == 0 && netcidr_contains(&c, &a));
    CHECK(netaddr_parse("::ffff:10.200.3.4", &a) == 0 && netcidr_contains(&c, &a));
    CHECK(netaddr_parse("11.0.0.1", &a) == 0 && !netcidr_contains(&c, &a));
    CHECK(netcidr_parse("127.0.0.1", &c) == 0 && c.bits == 32);
    CHECK(netcidr_parse("fd00::/8", &c) == 0 && c.bits == 8);
    CHECK(netaddr_parse("fd12::1", &a) == 0 && netcidr_contains(&c, &a));
    CHECK(netaddr_parse("10.0.0.1", &a) == 0 && !netcidr_contains(&c, &a));
    CHECK(netcidr_parse("10.0.0.1/8", &c) == BD_EINVAL);   /* host bits set */
    CHECK(netcidr_parse("10.0.0.0/33", &c) == BD_EINVAL);
    CHECK(netcidr_parse("10.0.0.0/", &c) == BD_EINVAL);
    CHECK(netcidr_parse("10.0.0.0/+8", &c) == BD_EINVAL);
    CHECK(netcidr_parse("0.0.0.0/0", &c) == 0 && c.bits == 0);
}

static void test_url(void)
{
    struct url_parts u;
    const char *why = NULL;
    char shown[200];

    CHECK(url_parse("https://User:Pw@Hooks.Example.COM:8443/a/b?x=1#f", &u, &why) == 0);
    CHECK_STR(u.scheme, "https");
    CHECK_STR(u.host, "hooks.example.com");
    CHECK(u.port == 8443 && u.has_port && u.has_userinfo && !u.host_v6);
    CHECK(u.path_len == 4 && strncmp(u.path, "/a/b", 4) == 0);
    CHECK(url_parse("http://[::1]/x", &u, &why) == 0 && u.host_v6 && u.port == 80);
    CHECK_STR(u.host, "::1");
    CHECK(url_parse("http://example.com", &u, &why) == 0 && u.path_len == 0);
    CHECK(url_parse("ftp://example.com/", &u, &why) == BD_EINVAL);
    CHECK(url_parse("http://a@b@example.com/", &u, &why) == BD_EINVAL);
    CHECK(url_parse("http://example.com\\@evil/", &u, &why) == BD_EINVAL);
    CHECK(url_parse("http://exa%6dple.com/", &u, &why) == BD_EINVAL);
    CHECK(url_parse("http://[::1%25lo]/", &u, &why) == BD_EINVAL);
    CHECK(url_parse("http://[127.0.0.1]/", &u, &why) == BD_EINVAL);
    CHECK(url_parse("http://example.com:0/", &u, &why) == BD_EINVAL);
    CHECK(url_parse("http://example.com:99999/", &u, &why) == BD_EINVAL);
    CHECK(url_parse("http://example.com:65536/", &u, &why) == BD_EINVAL);
    CHECK(url_parse("http://example.com:65535/", &u, &why) == 0 && u.port == 65535);
    CHECK(url_parse("http://:80/", &u, &why) == BD_EINVAL);
    CHECK(url_parse("http://ex ample.com/", &u, &why) == BD_EINVAL);
    url_redact("https://user:secret@hooks.example.com:8443/in/briefd?token=abc#x", shown,
               sizeof shown);
    CHECK_STR(shown, "https://hooks.example.com:8443/in/briefd");
    url_redact("http://[::1]/", shown, sizeof shown);
    CHECK_STR(shown, "http://[::1]/");
    url_redact("nonsense", shown, sizeof shown);
    CHECK_STR(shown, "(unparsable URL)");
}

/* clock_iso8601 and clock_parse_iso8601 agree; anything else is refused. */
static void test_iso8601(void)
{
    static const int64_t times[] = {0, 1700000000123, 951782400000 /* 2000-02-29 */,
                                    4102444799999 /* 2099-12-31T23:59:59.999Z */};
    char buf[40];
    int64_t back;
    for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
        clock_iso8601(times[i], buf, sizeof(buf));
        CHECK(clock_parse_iso8601(buf, &back) == 0 && back == times[i]);
    }
    CHECK(clock_parse_iso8601("2023-11-14T22:13:20.123Z", &back) == 0 && back == 1700000000123);
    clock_iso8601(1700000000123, buf, sizeof(buf));
    CHECK_STR(buf, "2023-11-14T22:13:20.123Z");
    clock_iso8601(951782400007, buf, sizeof(buf));
    CHECK_STR(buf, "2000-02-29T00:00:00.007Z");
    clock_iso8601(1700000000123, buf, 25); /* exactly enough room */
    CHECK_STR(buf, "2023-11-14T22:13:20.123Z");
    clock_iso8601(1700000000123, buf, 10); /* cut, as snprintf cuts */
    CHECK_STR(buf, "2023-11-1");
    CHECK(clock_parse_iso8601("2023-11-14T22:13:20.123", &back) == -1);
    CHECK(clock_parse_iso8601("2023-11-14T22:13:20.123Zx", &back) == -1);
    CHECK(clock_parse_iso8601("2023-13-14T22:13:20.123Z", &back) == -1);
    CHECK(clock_parse_iso8601("2023-11-14 22:13:20.123Z", &back) == -1);
    CHECK(clock_parse_iso8601("", &back) == -1);
    CHECK(clock_parse_iso8601(NULL, &back) == -1);
}

/* HTTP dates (RFC 9110 IMF-fixdate), as Python's email.utils.formatdate(t, usegmt=True)
 * writes them; a year past 9999 is refused. */
static void test_http_date(void)
{
    char d[CLOCK_HTTP_DATE_LEN + 1];
    CHECK(clock_http_date(0, d) == 0);
    CHECK_STR(d, "Thu, 01 Jan 1970 00:00:00 GMT");
    CHECK(clock_http_date(1796230397, d) == 0);
    CHECK_STR(d, "Wed, 02 Dec 2026 16:53:17 GMT");
    CHECK(clock_http_date(951782400, d) == 0);
    CHECK_STR(d, "Tue, 29 Feb 2000 00:00:00 GMT");
    CHECK(clock_http_date(253402300799, d) == 0);
    CHECK_STR(d, "Fri, 31 Dec 9999 23:59:59 GMT");
    CHECK(strlen(d) == CLOCK_HTTP_DATE_LEN);
    memcpy(d, "untouched", 10);
    CHECK(clock_http_date(253402300800, d) == -1);
    CHECK_STR(d, "untouched");
}

/* FNV-1a 64 (job ids' check bits, config versions): the reference values of the
 * algorithm's authors (offset basis 0xcbf29ce484222325, prime 0x100000001b3). */
static void test_fnv(void)
{
    CHECK(hash_fnv1a64(HASH_FNV1A64_INIT, "", 0) == 0xcbf29ce484222325ull);
    CHECK(hash_fnv1a64_str(HASH_FNV1A64_INIT, "a") == 0xaf63dc4c8601ec8cull);
    CHECK(hash_fnv1a64_str(HASH_FNV1A64_INIT, "foobar") == 0x85944171f73967e8ull);
    CHECK(hash_fnv1a64_str(hash_fnv1a64_str(HASH_FNV1A64_INIT, "foo"), "bar") ==
          hash_fnv1a64_str(HASH_FNV1A64_INIT, "foobar")); /* it continues */
}

/* briefd's codes are named by the table, libuv's by libuv, anything else is unknown. */
static void test_strerror(void)
{
    CHECK_STR(bd_strerror(BD_ETIMEOUT), "timed out");
    CHECK_STR(bd_strerror(BD_EREPLICATION), "not acknowledged by enough replicas in time");
    CHECK_STR(bd_strerror(UV_ECONNREFUSED), uv_strerror(UV_ECONNREFUSED));
    CHECK_STR(bd_strerror(-5000), "unknown error");
    CHECK_STR(bd_strerror(7), "unknown error");
}

/* jsonx_write_string (8 bytes at a time between escapes) writes what a byte-by-byte
 * escaper writes, whatever the length and wherever the escapes fall. */
static void test_jsonx_string(void)
{
    static const unsigned char alphabet[] = {'a', 'Z', ' ', '"', '\\', '\n', '\t', 0x01, 0x1f,
                                             0x7f, 0xc3, 0xa9, '/', 0x20, 0x21, 0x5b, 0x5d};
    unsigned x = 2463534242u;
    int bad = 0;
    for (int t = 0; t < 20000 && !bad; t++) {
        char in[40], want[300];
        struct sbuf got = {0};
        size_t n, w = 0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        n = x % 39;
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            in[i] = (char)(t % 4 == 0 || x % 5 == 0 ? alphabet[x % sizeof alphabet] : 'q');
        }
        in[n] = '\0';
        want[w++] = '"';
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)in[i];
            if (c == '"' || c == '\\') {
                want[w++] = '\\';
                want[w++] = (char)c;
            } else if (c == '\n') {
                want[w++] = '\\';
                want[w++] = 'n';
            } else if (c == '\t') {
                want[w++] = '\\';
                want[w++] = 't';
            } else if (c < 0x20) {
                w += (size_t)snprintf(want + w, 7, "\\u%04x", c);
            } else {
                want[w++] = (char)c;
            }
        }
        want[w++] = '"';
        want[w] = '\0';
        jsonx_write_string(&got, in);
        sbuf_addc(&got, '\0');
        if (strcmp(got.p ? got.p : "", want) != 0) {
            fprintf(stderr, "  string %d: written unlike byte by byte (%zu vs %zu bytes)\n", t,
                    strlen(got.p ? got.p : ""), strlen(want));
            bad = 1;
        }
        free(got.p);
    }
    CHECK(!bad);
}

/* jsonx_number: every double reads back as itself; the fast forms are what they say. */
static void test_jsonx_number(void)
{
    static const struct {
        double v;
        const char *want;
    } cases[] = {
        {0, "0"}, {-0.0, "0"}, {42, "42"}, {-7, "-7"}, {9007199254740991.0, "9007199254740991"},
        {28.717, "28.717"}, {-3.5, "-3.5"}, {0.05, "0.05"}, {2.6325e-05, "0.000026325"},
        {0.1 + 0.2, "0.30000000000000004"}, {1e-12, "1e-12"}, {1e300, "1e+300"},
        {123456.001, "123456.001"}, {0.000000001, "0.000000001"},
    };
    char buf[64];
    unsigned long long x = 88172645463325252ull;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        jsonx_number(cases[i].v, buf, sizeof buf);
        CHECK_STR(buf, cases[i].want);
        CHECK(strtod(buf, NULL) == cases[i].v);
    }
    jsonx_number(NAN, buf, sizeof buf);
    CHECK_STR(buf, "null");
    for (int i = 0; i < 200000; i++) { /* random doubles, and decimals like latencies, costs */
        double v;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if (i % 3 == 0) {
            memcpy(&v, &x, sizeof v);
            if (!isfinite(v))
                continue;
        } else if (i % 3 == 1) {
            v = (double)(x % 100000000ull) / 1000.0;
        } else {
            v = (double)(x % 1000000ull) * 0.075 / 1e6;
        }
        jsonx_number(v, buf, sizeof buf);
        if (strtod(buf, NULL) != v) {
            fprintf(stderr, "  %.17g printed as %s\n", v, buf);
            CHECK(0);
            break;
        }
    }
    CHECK(jsonx_int(-9223372036854775807LL - 1, buf) == 20);
    CHECK_STR(buf, "-9223372036854775808");
}

/* jsonx_read_number reads what strtod reads, to the bit and to the same end, on the fast
 * path's edges and on random decimals of every length. */
static void read_same(const char *text)
{
    char *e1, *e2;
    double a = jsonx_read_number(text, &e1), b = strtod(text, &e2);
    if (memcmp(&a, &b, sizeof a) != 0 || e1 != e2) {
        fprintf(stderr, "  %s read as %.17g (end +%d), strtod %.17g (end +%d)\n", text, a,
                (int)(e1 - text), b, (int)(e2 - text));
        CHECK(0);
    }
}

static void test_jsonx_read_number(void)
{
    static const char *edges[] = {
        "0", "-0", "-0.0", "1", "-1.5", "0.1", "0.30000000000000004", "123456789012345",
        "1234567890123456", "999999999999999e22", "1e22", "1e23", "1e-22", "1e-23",
        "-0.000123", "0.0000000000000000000001", "12.50,", "-3.25}", "1.", "1e", "1e+",
        "1E5", "2.5e-3", "2.5E+3", "7e0009", "1e10000", "00012", "-", ".5", "0x10",
        "-0.12345678901234567", "4.9406564584124654e-324", "1.7976931348623157e308",
    };
    unsigned long long x = 0x9E3779B97F4A7C15ull;
    char buf[64];
    for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]); i++)
        read_same(edges[i]);
    for (int i = 0; i < 200000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        int digits = 1 + (int)(x % 18), point = (int)((x >> 8) % (unsigned)(digits + 1));
        int exp = (int)((x >> 16) % 61) - 30, n = 0;
        unsigned long long y = x;
        if ((x >> 24) & 1)
            buf[n++] = '-';
        for (int d = 0; d < digits; d++) {
            if (d == point && d > 0)
                buf[n++] = '.';
            y = y * 6364136223846793005ull + 1442695040888963407ull;
            buf[n++] = (char)('0' + (y >> 60) % 10);
        }
        if ((x >> 25) & 1)
            n += snprintf(buf + n, sizeof(buf) - (size_t)n, "e%d", exp);
        buf[n] = '\0';
        read_same(buf);
    }
}

/* jscan: members found past strings with quotes and brackets, nested objects, arrays; a
 * name with escapes stops the search (odd); cut text gives NULL, never a read past the end. */
static void test_jscan(void)
{
    static const char t[] = "{\"a\": \"x\\\"}]{\", \"s\": \"plain\", \"n\": [1, {\"b\": 2}], "
                            "\"o\": {\"b\": -0.5e-3, \"c\": null}, \"d\\u0041\": 1}";
    const char *e = t + strlen(t), *v, *s;
    size_t n;
    int odd = 0;
    v = jscan_member(t, e, "o", &odd);
    CHECK(v && *v == '{');
    v = jscan_member(v, e, "b", &odd);
    CHECK(v && strncmp(v, "-0.5e-3", 7) == 0);
    CHECK(jscan_plain_string(jscan_member(t, e, "s", &odd), e, &s, &n) == 0);
    CHECK(n == 5 && strncmp(s, "plain", 5) == 0);
    CHECK(odd == 0);
    CHECK(jscan_member(t, e, "b", &odd) == NULL); /* not at the top; "d\u0041" on the way */
    CHECK(odd == 1);
    CHECK(jscan_plain_string(jscan_member(t, e, "a", &odd), e, &s, &n) == -1); /* escapes */
    CHECK(jscan_plain_string(NULL, e, &s, &n) == -1);
    for (size_t cut = 0; cut < strlen(t) - 1; cut++) /* every prefix: no overread (ASan) */
        (void)jscan_member(t, t + cut, "o", &odd);
    CHECK(jscan_member(t, t + 40, "o", &odd) == NULL);
    v = "[1, [2, \"]\"]]";
    CHECK(jscan_skip(v, v + strlen(v)) == v + strlen(v));
    CHECK(jscan_skip(v, v + strlen(v) - 1) == NULL); /* the last bracket cut off */
}

/* stderr's bytes written since the last call (stderr is a temporary file here). */
static size_t log_out(FILE *f, char *buf, size_t cap)
{
    static long at;
    size_t n;
    fseek(f, at, SEEK_SET);
    n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    at += (long)n;
    return n;
}

static void test_log_hold(void)
{
    FILE *f = tmpfile();
    int saved = dup(STDERR_FILENO);
    char out[16384], big[LOG_HOLD_MAX];
    CHECK(f != NULL && saved >= 0);
    dup2(fileno(f), STDERR_FILENO);
    log_configure("test", LOG_TEXT, LOG_DEBUG);
    log_info("not held");
    CHECK(log_out(f, out, sizeof out) > 0 && strstr(out, "info: not held\n") != NULL);

    log_hold(1);
    log_info("first");
    log_debug("second");
    CHECK(log_out(f, out, sizeof out) == 0); /* held */
    log_warn("third");                        /* writes what is held, then itself */
    log_out(f, out, sizeof out);
    CHECK(strstr(out, "first") && strstr(out, "second") && strstr(out, "third"));
    CHECK(strstr(out, "first") < strstr(out, "second") &&
          strstr(out, "second") < strstr(out, "third"));

    log_info("fourth");
    CHECK(log_out(f, out, sizeof out) == 0);
    log_flush();
    CHECK(log_out(f, out, sizeof out) > 0 && strstr(out, "fourth") != NULL);
    log_flush();
    CHECK(log_out(f, out, sizeof out) == 0); /* nothing twice */

    /* a line that does not fit writes what is held first; one longer than the buffer (a
     * message is cut at 2 KB, a field is not) is written at once, after what is held */
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    log_info("fifth");
    log_info("%.2000s", big);
    CHECK(log_out(f, out, sizeof out) == 0);
    log_info("%.2000s", big);
    log_out(f, out, sizeof out);
    CHECK(strstr(out, "fifth") != NULL && strlen(out) > 2000 && strlen(out) < 2200);
    log_write(LOG_INFO, &LOG_STR("field", big), 1, "long");
    log_out(f, out, sizeof out);
    CHECK(strlen(out) > 2000 + sizeof big && strlen(out) < 2200 + sizeof big);

    log_info("sixth");
    log_hold(0); /* off: what is held goes out */
    log_out(f, out, sizeof out);
    CHECK(strstr(out, "sixth") != NULL);
    log_info("after");
    CHECK(log_out(f, out, sizeof out) > 0 && strstr(out, "after") != NULL);

    dup2(saved, STDERR_FILENO);
    close(saved);
    fclose(f);
    log_configure("briefd", LOG_TEXT, LOG_INFO);
}

int main(void)
{
    test_iso8601();
    test_http_date();
    test_jscan();
    test_jsonx_number();
    test_jsonx_string();
    test_jsonx_read_number();
    test_hmac_rfc4231();
    test_fnv();
    test_strerror();
    test_sha256();
    test_b64();
    test_standard_webhooks_vector();
    test_netaddr();
    test_url();
    test_log_hold();
    return tcheck_summary("test_base");
}
