/* test_rds.c - rds_cmd's own command encoder, held byte for byte to hiredis's
 * redisFormatCommand (which it replaces on the hot path) over the format subset briefd uses.
 * (The client itself runs against a real redis-server in every integration test.) And how
 * an address shows in messages (rds_addr_text) and which hosts are Unix sockets. */
#include <hiredis/hiredis.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rds.h"
#include "tcheck.h"

/* Both encodings of one format and its arguments must be equal. */
#define SAME(...)                                                                          \
    do {                                                                                   \
        char *hi_ = NULL, *ours_;                                                          \
        size_t n_ = 0;                                                                     \
        int hn_ = redisFormatCommand(&hi_, __VA_ARGS__);                                   \
        ours_ = rds_format(&n_, __VA_ARGS__);                                              \
        CHECK(hn_ > 0 && ours_ != NULL);                                                \
        if (hn_ > 0 && ours_) {                                                            \
            CHECK((size_t)hn_ == n_);                                                      \
            CHECK(n_ == (size_t)hn_ && memcmp(hi_, ours_, n_) == 0);                       \
        }                                                                                  \
        free(ours_);                                                                       \
        redisFreeCommand(hi_);                                                             \
    } while (0)

static void test_words_and_strings(void)
{
    SAME("PING");
    SAME("GET %s", "{briefd:}job:job_01");
    SAME("SET %s %s EX %s", "k", "a value with spaces\r\nand CRLF", "3600");
    SAME("SET %s %s", "k", "");                       /* an empty string is an argument */
    SAME("XADD %s * r %s m %s d %s", "{t:}q:normal", "{\"text\":\"x y\"}", "{}", "17962");
    SAME("key:%s:tail %s", "mid", "x");                /* literal and %s in one word */
    SAME("A  B   C");                                  /* runs of spaces split once */
    SAME(" LEADING TRAILING ");
    SAME("%s%s %s", "a", "b", "c");
    SAME("100%% %s", "x");
    char big[5000];
    memset(big, 'r', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    SAME("SET %s %s", "k", big);
}

static void test_binary_and_numbers(void)
{
    const char bin[] = {'a', '\0', 'b', '\r', '\n', (char)0xff};
    SAME("SET %s %b", "k", bin, sizeof(bin));
    SAME("SET %s %b", "k", "", (size_t)0);
    SAME("WAIT %d %d", 0, -1);
    SAME("WAIT %d %d", INT_MAX, INT_MIN);
    SAME("HINCRBY %s %s %ld", "h", "f", -42L);
    SAME("HINCRBY %s %s %ld", "h", "f", LONG_MIN);
    SAME("INCRBY %s %lld", "k", LLONG_MAX);
    SAME("INCRBY %s %lld", "k", LLONG_MIN);
    SAME("EXPIRE %s %u", "k", 4294967295u);
    SAME("LRANGE %s 0 %d", "k", 19999);
    SAME("n:%d:%s", 7, "x");
}

static void test_outside_the_subset(void)
{
    size_t n = 0;
    CHECK(rds_format(&n, "SET %s %f", "k", 1.5) == NULL);   /* hiredis formats these */
    CHECK(rds_format(&n, "SET %s %x", "k", 255u) == NULL);
    CHECK(rds_format(&n, "LRANGE %s 0 %zu", "k", (size_t)1) == NULL); /* hiredis has no %z */
    char *many = malloc(70 * 2 + 1), *out;
    for (int i = 0; i < 70; i++)
        memcpy(many + 2 * i, "a ", 2);
    many[140] = '\0';
    out = rds_format(&n, many);
    CHECK(out == NULL);                                     /* past 64 arguments */
    free(out);
    free(many);
}

/* How an address shows in logs and messages. */
static void test_addr_text(void)
{
    char out[64];
    rds_addr_text("10.0.0.7", 6379, out, sizeof(out));
    CHECK(strcmp(out, "10.0.0.7:6379") == 0);
    rds_addr_text("::1", 6380, out, sizeof(out));
    CHECK(strcmp(out, "[::1]:6380") == 0);
    rds_addr_text("redis.internal", 7000, out, sizeof(out));
    CHECK(strcmp(out, "redis.internal:7000") == 0);
    rds_addr_text("/run/redis/redis.sock", 0, out, sizeof(out));
    CHECK(strcmp(out, "/run/redis/redis.sock") == 0);
    rds_addr_text("/run/redis/redis.sock", 0, out, 8);
    CHECK(strcmp(out, "/run/re") == 0);
    CHECK(rds_is_socket("/run/redis/redis.sock"));
    CHECK(!rds_is_socket("10.0.0.7") && !rds_is_socket("::1") && !rds_is_socket("redis"));
    CHECK(!rds_is_socket(""));
}

int main(void)
{
    test_words_and_strings();
    test_binary_and_numbers();
    test_outside_the_subset();
    test_addr_text();
    return tcheck_summary("test_rds");
}
