/* rds.h - Redis client: hiredis async on libuv, with reconnect and backoff.
 *
 * One struct rds is one logical connection that keeps itself connected: when the socket
 * drops or a connect fails it retries with exponential backoff (100 ms doubling to 5 s)
 * until rds_close(). AUTH and SELECT are sent first on every (re)connection.
 * Commands issued while not connected fail at once with BD_EREDIS_DOWN (the callback is
 * not called: a function that returns an error never calls its callback). Commands in
 * flight when the connection drops get their callback with reply NULL.
 *
 * Third-party types stay inside: callers see struct rds_reply only through accessors.
 *
 * Ownership: a reply passed to a callback belongs to the client and is valid only during
 * the callback. Command arguments are copied before rds_cmd* returns. */
#ifndef BRIEFD_RDS_H
#define BRIEFD_RDS_H

#include <stddef.h>
#include <uv.h>

struct rds;
struct rds_reply;

enum rds_state { RDS_CLOSED = 0, RDS_CONNECTING = 1, RDS_CONNECTED = 2 };

enum rds_type {
    RDS_NIL = 0, RDS_STRING, RDS_ARRAY, RDS_INTEGER, RDS_STATUS, RDS_ERROR, RDS_OTHER
};

struct rds_opts {
    const char *host;       /* copied */
    int port;
    int db;                 /* SELECT when != 0 */
    const char *password;   /* AUTH when non-NULL (copied, wiped on close) */
    const char *name;       /* for log lines, e.g. "cmd", "sub" (copied) */
    int connect_timeout_ms; /* 0: 2000 */
};

/* Called on every state change (connected / disconnected); may be NULL. */
typedef void (*rds_state_cb)(struct rds *r, enum rds_state state, void *data);
/* reply NULL: the connection dropped (or closed) before a reply came. */
typedef void (*rds_cb)(struct rds *r, struct rds_reply *reply, void *data);

/* Create and start connecting. Returns 0 or BD_ENOMEM. */
int rds_open(uv_loop_t *loop, const struct rds_opts *o, rds_state_cb cb, void *data,
             struct rds **out);
enum rds_state rds_state(const struct rds *r);
/* printf-style hiredis format (%s, %b with pointer+length, %d via %lld etc.). cb may be
 * NULL (fire and forget). */
int rds_cmd(struct rds *r, rds_cb cb, void *data, const char *fmt, ...);
int rds_cmdargv(struct rds *r, rds_cb cb, void *data, int argc, const char **argv,
                const size_t *argvlen);
/* SUBSCRIBE to channel: cb runs for the subscribe confirmation and for every message
 * (an ARRAY ["message", channel, payload]), and once more with NULL when the connection
 * drops or closes (then the subscription is gone: re-subscribe from the state callback).
 * Use a dedicated struct rds for subscriptions. */
int rds_subscribe(struct rds *r, const char *channel, rds_cb cb, void *data);
/* Close: pending callbacks get NULL, then cb(data) once all handles are closed and the
 * struct is freed. */
void rds_close(struct rds *r, void (*cb)(void *data), void *data);

/* --- replies --- */
enum rds_type rds_reply_type(const struct rds_reply *x);
const char *rds_reply_str(const struct rds_reply *x, size_t *len); /* STRING/STATUS/ERROR */
long long rds_reply_int(const struct rds_reply *x);
size_t rds_reply_len(const struct rds_reply *x);                    /* ARRAY elements */
struct rds_reply *rds_reply_elem(const struct rds_reply *x, size_t i); /* NULL if out of range */
/* 1 if x is a STATUS or STRING equal to s. */
int rds_reply_is(const struct rds_reply *x, const char *s);
/* Integer from an INTEGER or a numeric STRING reply, else dflt. */
long long rds_reply_num(const struct rds_reply *x, long long dflt);

#endif
