/* test_breaker.c - the circuit breaker's state machine. */
#include "breaker.h"
#include "tcheck.h"

int main(void)
{
    struct breaker b = {0};
    /* closed: failures below the threshold keep it closed; a success resets the count */
    CHECK(breaker_allow(&b, 0, 1000));
    CHECK(breaker_record(&b, 0, 0, 3) == 0);
    CHECK(breaker_record(&b, 0, 0, 3) == 0);
    CHECK(breaker_record(&b, 1, 0, 3) == 0);
    CHECK(b.consecutive == 0);
    CHECK(b.state == BREAKER_CLOSED);
    /* three in a row open it */
    breaker_record(&b, 0, 10, 3);
    breaker_record(&b, 0, 20, 3);
    CHECK(breaker_record(&b, 0, 30, 3) == 1);
    CHECK(b.state == BREAKER_OPEN);
    CHECK(b.opens == 1);
    CHECK_STR(breaker_state_name(b.state), "open");
    /* open: refused until open_ms has passed */
    CHECK(!breaker_allow(&b, 500, 1000));
    CHECK(!breaker_would_allow(&b, 1029, 1000));
    CHECK(breaker_would_allow(&b, 1030, 1000));
    /* then exactly one probe */
    CHECK(breaker_allow(&b, 1030, 1000));
    CHECK(b.state == BREAKER_HALF_OPEN);
    CHECK(!breaker_allow(&b, 1031, 1000));
    /* a failed probe re-opens it, from the probe's time */
    CHECK(breaker_record(&b, 0, 1100, 3) == 1);
    CHECK(b.state == BREAKER_OPEN);
    CHECK(b.opens == 2);
    CHECK(!breaker_allow(&b, 2000, 1000));
    CHECK(breaker_allow(&b, 2100, 1000));
    /* a good probe closes it */
    CHECK(breaker_record(&b, 1, 2200, 3) == 1);
    CHECK(b.state == BREAKER_CLOSED);
    CHECK(breaker_allow(&b, 2201, 1000));
    CHECK(breaker_allow(&b, 2201, 1000));
    return tcheck_summary("test_breaker");
}
