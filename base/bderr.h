/* bderr.h - briefd's own error codes: one X-macro table, negative values, bd_strerror().
 * Functions across briefd return 0 or one of these (libuv's negative errno values may also
 * pass through where a libuv call failed; bd_strerror() names those too). */
#ifndef BRIEFD_BDERR_H
#define BRIEFD_BDERR_H

#define BD_ERRORS(X)                                                     \
    X(NOMEM,       -1001, "out of memory")                               \
    X(INVAL,       -1002, "invalid argument")                            \
    X(REDIS_DOWN,  -1003, "redis is not connected")                      \
    X(REDIS_REPLY, -1004, "unexpected redis reply")                      \
    X(CANCELED,    -1005, "canceled")                                    \
    X(TIMEOUT,     -1006, "timed out")                                   \
    X(CONNECT,     -1007, "could not connect to upstream")               \
    X(UPSTREAM,    -1008, "upstream returned an error")                  \
    X(RATELIMIT,   -1009, "upstream rate limited the request")           \
    X(BADBODY,     -1010, "upstream sent a malformed body")              \
    X(DEADLINE,    -1011, "job deadline reached")                        \
    X(QUEUE_FULL,  -1012, "queue is full")                               \
    X(NOTFOUND,    -1013, "not found")                                   \
    X(CONFLICT,    -1014, "conflict")                                    \
    X(TOOBIG,      -1015, "too large")                                   \
    X(SHUTDOWN,    -1016, "shutting down")                               \
    X(CIRCUIT_OPEN,-1017, "circuit breaker open")                        \
    X(REFUSED,     -1018, "target refused by policy")                    \
    X(REPLICATION, -1019, "not acknowledged by enough replicas in time")

enum bd_err {
#define BD_ERR_ENUM(name, val, msg) BD_E##name = (val),
    BD_ERRORS(BD_ERR_ENUM)
#undef BD_ERR_ENUM
};

/* A static description of err (a bd_err, or a libuv/errno value). Never NULL. */
const char *bd_strerror(int err);

#endif
