/* rloc.h - where the Redis primary is, and keeping connections there: a fixed address, the
 * answer of Redis Sentinel, or the Redis Cluster node that owns the keys' slot.
 *
 * Three ways to find the primary (docs/REDIS.md):
 *   - fixed: redis.url's address. At open, one CLUSTER SLOTS tells whether it is a Cluster
 *     node (then the mode becomes cluster); a MOVED reply does the same later.
 *   - sentinel: ask the sentinels SENTINEL get-master-addr-by-name, each in turn, and follow
 *     +switch-master (a subscription on the sentinel that answered last).
 *   - cluster: ask the known nodes CLUSTER SLOTS, each in turn; the node owning the slot is
 *     the primary. MOVED host:port moves there at once.
 * The question is asked again whenever a followed connection fails (connect, handshake, lost,
 * timed out) or a command is refused with READONLY, and (sentinel) whenever the subscription
 * is (re)made; a round in which no server answered is retried with backoff (100 ms doubling to
 * 5 s). Every connection here is an rds connection: bounded connects (connect_timeout_ms),
 * bounded commands (command_timeout_ms), names resolved off the loop.
 *
 * A followed connection is moved with rds_retarget (from a timer, never from inside one of its
 * own callbacks) whenever the answer changes; one opened with no_target starts at the first
 * answer.
 *
 * Ownership: strings in rloc_opts are copied by rloc_open (passwords wiped at close). The
 * struct rloc belongs to its opener and is freed by rloc_close, after which the callback runs.
 * Followed connections stay their owner's; unfollow them before closing them. */
#ifndef BRIEFD_RLOC_H
#define BRIEFD_RLOC_H

#include <stddef.h>
#include <uv.h>

struct rds;
struct rloc;

#define RLOC_MAX_SENTINELS 16
#define RLOC_MAX_NODES 16          /* Cluster nodes remembered to ask */
#define RLOC_MAX_FOLLOW 8
#define RLOC_HOST_MAX 256

enum rloc_mode { RLOC_FIXED = 0, RLOC_SENTINEL = 1, RLOC_CLUSTER = 2 };

struct rloc_opts {
    const char *host;              /* redis.url's host: the primary (fixed) or a Cluster seed */
    int port;
    const char *user;              /* the data nodes' ACL user / password (Cluster probes) */
    const char *password;
    const char *const *sentinels;  /* "host:port" (n_sentinels > 0: sentinel mode) */
    size_t n_sentinels;
    const char *master_name;       /* Sentinel's name of the primary */
    const char *sentinel_password; /* AUTH for the sentinels, or NULL */
    int slot;                      /* the keys' Cluster slot (rloc_slot) */
    int connect_timeout_ms;        /* 0: 2000 */
    int command_timeout_ms;        /* 0: 3000 */
};

/* Start locating (sentinel: ask at once; fixed: probe for a Cluster). Returns 0, BD_EINVAL
 * (a sentinel address that is not "host:port", too many sentinels, no master name) or
 * BD_ENOMEM. */
int rloc_open(uv_loop_t *loop, const struct rloc_opts *o, struct rloc **out);
/* Keep r at the primary from now on (it gets rloc's event hook). If the primary is known, r
 * is retargeted there now. Returns 0 or BD_ENOMEM (more than RLOC_MAX_FOLLOW). */
int rloc_follow(struct rloc *l, struct rds *r);
void rloc_unfollow(struct rloc *l, struct rds *r);
/* 1 when the primary's address is known (fixed: always). */
int rloc_known(const struct rloc *l);
/* The primary in use ("" / 0 while unknown); valid until the next loop iteration. */
const char *rloc_host(const struct rloc *l);
int rloc_port(const struct rloc *l);
enum rloc_mode rloc_mode(const struct rloc *l);
const char *rloc_mode_name(enum rloc_mode m);  /* "url" | "sentinel" | "cluster" */
/* Ask where the primary is now (coalesced with a question in flight). */
void rloc_refresh(struct rloc *l);
/* Close the probe and subscription connections, then cb(data) once everything is freed. */
void rloc_close(struct rloc *l, void (*cb)(void *data), void *data);

/* --- pure helpers (exposed for tests) --- */

/* The Redis Cluster hash slot of a key (CRC16-XMODEM mod 16384 of its {hash tag}). */
int rloc_slot(const char *key, size_t len);
/* "host:port" or "[v6]:port" -> host (NUL-terminated, brackets removed) and port 1..65535.
 * Returns 0 or BD_EINVAL. */
int rloc_parse_hostport(const char *s, char *host, size_t hostlen, int *port);
/* A +switch-master message "<name> <old-ip> <old-port> <new-ip> <new-port>": 0 and the new
 * address when it names master, else BD_EINVAL. */
int rloc_parse_switch(const char *msg, size_t len, const char *master, char *host,
                      size_t hostlen, int *port);

#endif
