/* rds.h - Redis client: hiredis async on libuv, with reconnect, a handshake, bounded
 * commands and scripts called by SHA.
 *
 * One struct rds is one logical connection that keeps itself connected: when the socket
 * drops, a connect fails or the handshake fails, it retries with exponential backoff
 * (100 ms doubling to 5 s) until rds_close(). The handshake (AUTH [user] password, SELECT,
 * CLIENT SETNAME, SCRIPT LOAD of the registered scripts, PING) must complete within
 * connect_timeout_ms before the connection counts as connected: a Redis that accepts TCP but
 * does not answer (stopped, overloaded), refuses the password or the database is never
 * "connected", and rds_last_error() says why.
 *
 * Every command is bounded: when the oldest command in flight has waited longer than
 * command_timeout_ms (+ block_allowance_ms, for connections that issue blocking reads), the
 * connection is declared dead: every command in flight gets its callback with reply NULL at
 * once, and it reconnects. Subscriptions are not timed (they wait by design).
 *
 * Commands issued while not connected fail at once with BD_EREDIS_DOWN (the callback is not
 * called: a function that returns an error never calls its callback). Commands in flight when
 * the connection drops get their callback with reply NULL.
 *
 * A host that is an absolute path is a Unix socket (redis.url unix://...): no resolving,
 * no TLS, port 0.
 *
 * Nothing blocks the loop: a host that is not an IP literal is resolved with uv_getaddrinfo
 * (within connect_timeout_ms) before every connect attempt, and hiredis only ever connects
 * (non-blocking) to the numeric address.
 *
 * Following a primary (docs/REDIS.md): an event hook (rds_on_event) hears of every failed
 * attempt or lost connection, of commands refused with READONLY (the server became a replica)
 * and of MOVED redirections (Redis Cluster), so that whoever locates the primary can move the
 * connection with rds_retarget. With want_primary the handshake also asks ROLE and refuses a
 * replica. A connection opened with no_target waits for its first rds_retarget.
 *
 * TLS: only in builds where CMake found hiredis_ssl (BRIEFD_REDIS_TLS, rds_tls_supported());
 * elsewhere opening a connection with tls set fails with BD_EINVAL.
 *
 * Third-party types stay inside: callers see struct rds_reply only through accessors.
 *
 * Ownership: a reply passed to a callback belongs to the client and is valid only during
 * the callback. Command arguments are copied before rds_cmd* returns. Scripts registered
 * in rds_opts are borrowed and must outlive the connection. */
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

/* A Lua script called by its SHA1 (EVALSHA). rds_script_init fills sha from text. */
struct rds_script {
    const char *text;
    char sha[41];
};
void rds_script_init(struct rds_script *s, const char *text);

struct rds_opts {
    const char *host;           /* copied; an absolute path ("/run/redis.sock"): a Unix socket */
    int port;                   /* 0: 6379 (a Unix socket: unused, rds_port says 0) */
    int db;                     /* SELECT when != 0 */
    const char *user;           /* ACL user for AUTH (NULL: password only), copied */
    const char *password;       /* AUTH when non-NULL (copied, wiped on close) */
    const char *name;           /* for log lines and CLIENT SETNAME, e.g. "cmd" (copied) */
    int connect_timeout_ms;     /* connect + handshake; 0: 2000 */
    int command_timeout_ms;     /* 0: commands are not timed */
    int block_allowance_ms;     /* added to the command timeout (blocking reads) */
    const struct rds_script *const *scripts; /* loaded at every (re)connect; may be NULL */
    size_t n_scripts;
    int want_primary;           /* handshake: ROLE must not say replica (a refused ROLE is
                                   accepted: an ACL user may lack the permission) */
    int no_target;              /* 1: do not connect until rds_retarget names the address */
    int tls;                    /* TLS (rds_tls_supported() builds only) */
    const char *tls_ca_file;    /* PEM bundle to verify the server with (NULL: system's) */
};

/* 1 when this build can speak TLS to Redis (hiredis_ssl was found at configure time). */
int rds_tls_supported(void);

/* What the event hook hears besides state changes. */
enum rds_event {
    RDS_EV_UP = 0,              /* connected (the handshake is done); detail "" */
    RDS_EV_FAILED,              /* a connect or handshake failed, or the connection was lost
                                   or timed out (not after rds_retarget/rds_close); detail why */
    RDS_EV_READONLY,            /* a command was refused with READONLY; detail the error */
    RDS_EV_MOVED,               /* a command was refused with MOVED; detail "host:port" */
};

/* Called on every state change (connected / connecting again / closed); may be NULL. */
typedef void (*rds_state_cb)(struct rds *r, enum rds_state state, void *data);
/* reply NULL: the connection dropped, timed out or was closed before a reply came. */
typedef void (*rds_cb)(struct rds *r, struct rds_reply *reply, void *data);
/* An event (detail valid during the call). Runs after the callbacks of the commands concerned
 * and after the reconnect is scheduled; it may call rds_retarget, not rds_close. */
typedef void (*rds_event_cb)(struct rds *r, enum rds_event ev, const char *detail, void *data);

/* Create and start connecting. Returns 0 or BD_ENOMEM. */
int rds_open(uv_loop_t *loop, const struct rds_opts *o, rds_state_cb cb, void *data,
             struct rds **out);
enum rds_state rds_state(const struct rds *r);
/* Why the last connect or handshake failed ("" when it did not): "connection refused",
 * "WRONGPASS invalid username-password pair", "no answer within 2000 ms", ... */
const char *rds_last_error(const struct rds *r);
/* Connect to another address from now on (a failover): drops the current connection if the
 * address differs (commands in flight get NULL) and connects at once. The first call on a
 * no_target connection starts it. Returns 0 or BD_ENOMEM. */
int rds_retarget(struct rds *r, const char *host, int port);
/* Set (or with NULL clear) the event hook. One per connection. */
void rds_on_event(struct rds *r, rds_event_cb cb, void *data);
/* The address connected to, or being connected to. */
const char *rds_host(const struct rds *r);
int rds_port(const struct rds *r);
/* host and port as log lines and messages show them: "10.0.0.7:6379", "[::1]:6380", or the
 * path alone for a Unix socket; cut to n - 1 bytes. */
void rds_addr_text(const char *host, int port, char *out, size_t n);

/* Whether host names Redis's Unix socket (a path, "/..."; its port is 0) rather than a TCP
 * host. */
int rds_is_socket(const char *host);

/* The earliest time (uv_now() ms) at which a command sent now may be given up unanswered:
 * the deadline of the oldest timed command in flight (a timeout drops every command in
 * flight), or now + the command timeout; 0 when commands are not timed. A command that
 * reaches Redis after this time may run although its caller was told it failed: writes that
 * must not (submits) carry this deadline and check it in Redis. */
uint64_t rds_drop_at(const struct rds *r);

/* printf-style hiredis format (%s, %b with pointer+length, %d via %lld etc.; briefd
 * encodes the common ones itself, see rds_format). cb may be NULL (fire and forget). */
int rds_cmd(struct rds *r, rds_cb cb, void *data, const char *fmt, ...);
int rds_cmdargv(struct rds *r, rds_cb cb, void *data, int argc, const char **argv,
                const size_t *argvlen);
/* The RESP text rds_cmd sends for fmt and its arguments (malloc'd, *len bytes; the caller
 * frees it), or NULL when fmt is outside the subset rds_cmd encodes itself (%s, %b, %d, %u,
 * %ld, %lld, %%; anything else goes to hiredis's formatter). For tests, which hold it
 * to hiredis's redisFormatCommand byte for byte. */
char *rds_format(size_t *len, const char *fmt, ...);
/* EVALSHA s with nkeys keys followed by the other arguments (args[0..nargs), lens may be
 * NULL for NUL-terminated strings). A server that lost the script answers NOSCRIPT: that
 * error reaches cb, and the scripts are loaded again for the next call. */
int rds_evalsha(struct rds *r, rds_cb cb, void *data, const struct rds_script *s, int nkeys,
                int nargs, const char *const *args, const size_t *lens);
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
