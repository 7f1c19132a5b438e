/* test_trace.c - W3C traceparent / tracestate: what is accepted, and child spans. */
#include "tcheck.h"
#include "trace.h"

#define TID "4bf92f3577b34da6a3ce929d0e0e4736"
#define PID "00f067aa0ba902b7"

static void test_parent(void)
{
    char out[TRACE_PARENT_LEN + 1];
    CHECK(trace_parent_ok("00-" TID "-" PID "-01", out));
    CHECK_STR(out, "00-" TID "-" PID "-01");
    CHECK(trace_parent_ok("00-" TID "-" PID "-00", NULL));
    /* a later version is read as 00, extra fields after a '-' ignored */
    CHECK(trace_parent_ok("cc-" TID "-" PID "-01-what-comes-next", out));
    CHECK_STR(out, "00-" TID "-" PID "-01");
    CHECK(trace_parent_ok("01-" TID "-" PID "-09", out));
    CHECK_STR(out, "00-" TID "-" PID "-09");
    /* refused */
    CHECK(!trace_parent_ok(NULL, out));
    CHECK(!trace_parent_ok("", out));
    CHECK(!trace_parent_ok("ff-" TID "-" PID "-01", out));   /* version ff */
    CHECK(!trace_parent_ok("00-" TID "-" PID "-01-x", out)); /* 00 is exact */
    CHECK(!trace_parent_ok("cc-" TID "-" PID "-01x", out));  /* not '-' after */
    CHECK(!trace_parent_ok("00-00000000000000000000000000000000-" PID "-01", out));
    CHECK(!trace_parent_ok("00-" TID "-0000000000000000-01", out));
    CHECK(!trace_parent_ok("00-4BF92F3577B34DA6A3CE929D0E0E4736-" PID "-01", out)); /* upper */
    CHECK(!trace_parent_ok("00-" TID "-" PID "-0g", out));
    CHECK(!trace_parent_ok("00_" TID "-" PID "-01", out));
    CHECK(!trace_parent_ok("00-" TID "-" PID, out)); /* short */
    CHECK(!trace_parent_ok("0-" TID "-" PID "-01x", out));
    CHECK(!trace_parent_ok(" 00-" TID "-" PID "-01", out));
}

static void test_child(void)
{
    char out[TRACE_PARENT_LEN + 1];
    trace_child("00-" TID "-" PID "-01", 0x1234abcdULL, out);
    CHECK_STR(out, "00-" TID "-000000001234abcd-01");
    trace_child("00-" TID "-" PID "-00", 0, out); /* never an all-zero parent id */
    CHECK_STR(out, "00-" TID "-0000000000000001-00");
    CHECK(trace_parent_ok(out, NULL));
}

static void test_state(void)
{
    char big[TRACE_STATE_MAX + 2];
    CHECK(trace_state_ok("congo=t61rcWkgMzE"));
    CHECK(trace_state_ok("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"));
    CHECK(trace_state_ok("rojo=1, ,  congo=2 "));
    CHECK(trace_state_ok("fw529a3039@dt=FzKDaJ3jlEO1Gs/9nV8aH1zj"));
    CHECK(!trace_state_ok(NULL));
    CHECK(!trace_state_ok(""));
    CHECK(!trace_state_ok("novalue"));
    CHECK(!trace_state_ok("Upper=1"));
    CHECK(!trace_state_ok("=1"));
    CHECK(!trace_state_ok("a="));
    CHECK(!trace_state_ok("a=b=c"));
    CHECK(!trace_state_ok("a=\x01"));
    CHECK(!trace_state_ok("a=1\r\nx-evil: 1"));
    memset(big, 'a', sizeof(big) - 1);
    big[0] = 'k';
    big[1] = '=';
    big[sizeof(big) - 1] = '\0';
    CHECK(!trace_state_ok(big)); /* over TRACE_STATE_MAX bytes */
    {
        char many[400] = "";
        for (int i = 0; i < 33; i++)
            snprintf(many + strlen(many), sizeof(many) - strlen(many), "%sk%d=v", i ? "," : "", i);
        CHECK(!trace_state_ok(many));  /* 33 members */
        many[strlen(many) - 6] = '\0'; /* 32 */
        CHECK(trace_state_ok(many));
    }
}

static void test_request_id(void)
{
    CHECK(trace_request_id_ok("req_0123456789abcdef"));
    CHECK(trace_request_id_ok("trace-42.ABC"));
    CHECK(!trace_request_id_ok(""));
    CHECK(!trace_request_id_ok(NULL));
    CHECK(!trace_request_id_ok("has space"));
    CHECK(!trace_request_id_ok("a\r\nx: y"));
    CHECK(trace_request_id_ok("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
    CHECK(
        !trace_request_id_ok("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
}

int main(void)
{
    test_parent();
    test_child();
    test_state();
    test_request_id();
    return tcheck_summary("test_trace");
}
