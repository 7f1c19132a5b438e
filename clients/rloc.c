/* rloc.c - locate the Redis primary (fixed, Sentinel, Cluster) and keep connections there. */
#include "rloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bderr.h"
#include "log.h"
#include "rds.h"

#define RLOC_BACKOFF_MIN_MS 100u
#define RLOC_BACKOFF_MAX_MS 5000u
#define SWITCH_CHANNEL "+switch-master"
#define NAME_MAX_LEN 128

struct node {
    char host[RLOC_HOST_MAX];
    int port;
};

struct rloc {
    uv_loop_t *loop;
    enum rloc_mode mode;
    struct node nodes[RLOC_MAX_NODES > RLOC_MAX_SENTINELS ? RLOC_MAX_NODES : RLOC_MAX_SENTINELS];
    size_t n_nodes;             /* sentinels, or the Cluster nodes known */
    size_t cur;                 /* the node the probe asks */
    char master[NAME_MAX_LEN];
    char *user, *password;      /* data nodes (Cluster probes) */
    char *sentinel_password;
    int slot;
    int connect_timeout_ms, command_timeout_ms;
    struct rds *probe;          /* asks the question, moving from node to node */
    struct rds *sub;            /* sentinel: the +switch-master subscription */
    struct rds *follow[RLOC_MAX_FOLLOW];
    size_t n_follow;
    char host[RLOC_HOST_MAX];   /* the primary, "" while unknown */
    int port;
    int asking, inflight, again, move_probe, apply, check_sub, decided, fresh;
    unsigned tried, backoff_ms;
    uv_timer_t kick;            /* 0 ms: work outside the connections' callbacks */
    uv_timer_t retry;           /* the next round after one in which nobody answered */
    int closing, pending;
    void (*close_cb)(void *);
    void *close_data;
};

static void kick(struct rloc *l);

/* --- pure helpers ------------------------------------------------------------------------- */

static unsigned crc16(const char *p, size_t len)
{
    unsigned crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (unsigned)(unsigned char)p[i] << 8;
        for (int b = 0; b < 8; b++)
            crc = (crc & 0x8000) ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    }
    return crc;
}

int rloc_slot(const char *key, size_t len)
{
    const char *open = memchr(key, '{', len), *close;
    if (open) {
        close = memchr(open + 1, '}', len - (size_t)(open + 1 - key));
        if (close && close > open + 1)
            return (int)(crc16(open + 1, (size_t)(close - open - 1)) & 16383);
    }
    return (int)(crc16(key, len) & 16383);
}

static int parse_port(const char *s, int *port)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end != '\0' || v < 1 || v > 65535)
        return BD_EINVAL;
    *port = (int)v;
    return 0;
}

int rloc_parse_hostport(const char *s, char *host, size_t hostlen, int *port)
{
    const char *colon, *h = s;
    size_t n;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':')
            return BD_EINVAL;
        h = s + 1;
        n = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || memchr(s, ':', (size_t)(colon - s)))
            return BD_EINVAL;
        n = (size_t)(colon - s);
    }
    if (n == 0 || n >= hostlen)
        return BD_EINVAL;
    memcpy(host, h, n);
    host[n] = '\0';
    return parse_port(colon + 1, port);
}

int rloc_parse_switch(const char *msg, size_t len, const char *master, char *host,
                      size_t hostlen, int *port)
{
    char buf[512], name[NAME_MAX_LEN], oh[RLOC_HOST_MAX], op[8], nh[RLOC_HOST_MAX], np[8];
    if (len >= sizeof(buf))
        return BD_EINVAL;
    memcpy(buf, msg, len);
    buf[len] = '\0';
    if (sscanf(buf, "%127s %255s %7s %255s %7s", name, oh, op, nh, np) != 5 ||
        strcmp(name, master) != 0 || strlen(nh) >= hostlen)
        return BD_EINVAL;
    snprintf(host, hostlen, "%s", nh);
    return parse_port(np, port);
}

/* --- the primary and the followers --------------------------------------------------------- */

static void moved_to(struct rloc *l, const char *host, int port, const char *how)
{
    if (strcmp(host, l->host) == 0 && port == l->port)
        return;
    log_info("redis primary is %s:%d (%s)", host, port, how);
    snprintf(l->host, sizeof(l->host), "%s", host);
    l->port = port;
    l->apply = 1;
    kick(l);
}

static void apply_all(struct rloc *l)
{
    l->apply = 0;
    for (size_t i = 0; i < l->n_follow; i++)
        if (rds_retarget(l->follow[i], l->host, l->port) != 0)
            log_error("redis: out of memory moving a connection to %s:%d", l->host, l->port);
}

/* --- the question, asked of each node in turn -------------------------------------------- */

static void on_retry(uv_timer_t *t);

static void ask_next(struct rloc *l)
{
    l->inflight = 0;
    if (++l->tried >= l->n_nodes) {
        l->asking = 0;
        if (!l->closing && l->mode != RLOC_FIXED) /* fixed: the connections say why */
            log_warn("redis: no %s answered where the primary is; asking again in %u ms",
                     l->mode == RLOC_SENTINEL ? "sentinel" : "cluster node", l->backoff_ms);
        if (!l->closing)
            uv_timer_start(&l->retry, on_retry, l->backoff_ms, 0);
        l->backoff_ms = l->backoff_ms * 2 > RLOC_BACKOFF_MAX_MS ? RLOC_BACKOFF_MAX_MS
                                                                : l->backoff_ms * 2;
        return;
    }
    l->cur = (l->cur + 1) % l->n_nodes;
    l->move_probe = 1;
    kick(l);
}

static void answered(struct rloc *l, const char *host, int port)
{
    const char *how = l->mode == RLOC_SENTINEL ? "from sentinel" : "owner of the slot";
    l->inflight = 0;
    l->asking = 0;
    l->tried = 0;
    l->backoff_ms = RLOC_BACKOFF_MIN_MS;
    moved_to(l, host, port, how);
    if (l->mode == RLOC_SENTINEL)
        l->check_sub = 1;
    if (l->again) {
        l->again = 0;
        rloc_refresh(l);
    }
    kick(l);
}

/* SENTINEL get-master-addr-by-name -> [ip, port] | nil */
static void on_sentinel_answer(struct rds *r, struct rds_reply *x, void *data)
{
    struct rloc *l = data;
    char host[RLOC_HOST_MAX], port[8];
    size_t n, pn;
    const char *h = rds_reply_str(rds_reply_elem(x, 0), &n);
    const char *p = rds_reply_str(rds_reply_elem(x, 1), &pn);
    int pv = 0;
    if (l->closing)
        return;
    if (!x) { /* the probe dropped: its failure event moves on */
        l->inflight = 0;
        return;
    }
    if (rds_reply_len(x) != 2 || !h || !p || n == 0 || n >= sizeof(host) || pn >= sizeof(port)) {
        log_warn("redis: sentinel %s:%d does not know a primary named '%s'", rds_host(r),
                     rds_port(r), l->master);
        ask_next(l);
        return;
    }
    memcpy(host, h, n);
    host[n] = '\0';
    memcpy(port, p, pn);
    port[pn] = '\0';
    if (parse_port(port, &pv) != 0) {
        ask_next(l);
        return;
    }
    answered(l, host, pv);
}

/* Remember the nodes of one CLUSTER SLOTS range (master and replicas) for later questions. */
static void learn_nodes(struct rloc *l, const struct rds_reply *range)
{
    for (size_t i = 2; i < rds_reply_len(range); i++) {
        const struct rds_reply *n = rds_reply_elem(range, i);
        size_t len, k;
        const char *h = rds_reply_str(rds_reply_elem(n, 0), &len);
        int port = (int)rds_reply_int(rds_reply_elem(n, 1));
        if (!h || len == 0 || len >= RLOC_HOST_MAX || port <= 0)
            continue;
        for (k = 0; k < l->n_nodes; k++)
            if (l->nodes[k].port == port && strlen(l->nodes[k].host) == len &&
                memcmp(l->nodes[k].host, h, len) == 0)
                break;
        if (k == l->n_nodes && l->n_nodes < RLOC_MAX_NODES) {
            memcpy(l->nodes[k].host, h, len);
            l->nodes[k].host[len] = '\0';
            l->nodes[k].port = port;
            l->n_nodes++;
        }
    }
}

/* The owner of l->slot in a CLUSTER SLOTS reply: 0 and host/port, or -1. */
static int slot_owner(struct rloc *l, const struct rds_reply *x, const char *asked,
                      char *host, int *port)
{
    int found = -1;
    for (size_t i = 0; i < rds_reply_len(x); i++) {
        const struct rds_reply *range = rds_reply_elem(x, i);
        const struct rds_reply *m = rds_reply_elem(range, 2);
        size_t len;
        const char *h = rds_reply_str(rds_reply_elem(m, 0), &len);
        learn_nodes(l, range);
        if (rds_reply_int(rds_reply_elem(range, 0)) > l->slot ||
            rds_reply_int(rds_reply_elem(range, 1)) < l->slot || !h || len >= RLOC_HOST_MAX)
            continue;
        if (len == 0) /* "": the node asked */
            snprintf(host, RLOC_HOST_MAX, "%s", asked);
        else
            snprintf(host, RLOC_HOST_MAX, "%.*s", (int)len, h);
        *port = (int)rds_reply_int(rds_reply_elem(m, 1));
        found = *port > 0 ? 0 : -1;
    }
    return found;
}

static void on_cluster_answer(struct rds *r, struct rds_reply *x, void *data)
{
    struct rloc *l = data;
    char host[RLOC_HOST_MAX];
    int port = 0;
    if (l->closing)
        return;
    if (!x) { /* the probe dropped: its failure event moves on */
        l->inflight = 0;
        return;
    }
    if (rds_reply_type(x) == RDS_ERROR && l->mode == RLOC_FIXED) {
        l->decided = 1; /* not a Cluster node (or CLUSTER is not allowed): the URL it is */
        l->inflight = l->asking = 0;
        kick(l);
        return;
    }
    if (rds_reply_type(x) != RDS_ARRAY || slot_owner(l, x, rds_host(r), host, &port) != 0) {
        ask_next(l);
        return;
    }
    if (l->mode == RLOC_FIXED)
        log_info("redis: %s:%d is a Redis Cluster node; following slot %d", rds_host(r),
                 rds_port(r), l->slot);
    l->mode = RLOC_CLUSTER;
    l->decided = 1;
    answered(l, host, port);
}

static void send_question(struct rloc *l)
{
    int rc;
    if (l->mode == RLOC_SENTINEL)
        rc = rds_cmd(l->probe, on_sentinel_answer, l, "SENTINEL get-master-addr-by-name %s",
                     l->master);
    else
        rc = rds_cmd(l->probe, on_cluster_answer, l, "CLUSTER SLOTS");
    if (rc == 0)
        l->inflight = 1;
    else
        ask_next(l);
}

static void on_probe_event(struct rds *r, enum rds_event ev, const char *detail, void *data)
{
    struct rloc *l = data;
    (void)r;
    (void)detail;
    if (ev == RDS_EV_UP)
        kick(l);
    else if (ev == RDS_EV_FAILED && l->asking && !l->inflight)
        ask_next(l);
}

static int open_probe(struct rloc *l)
{
    struct rds_opts o;
    memset(&o, 0, sizeof(o));
    o.host = l->nodes[l->cur].host;
    o.port = l->nodes[l->cur].port;
    o.name = l->mode == RLOC_SENTINEL ? "sentinel" : "probe";
    o.user = l->mode == RLOC_SENTINEL ? NULL : l->user;
    o.password = l->mode == RLOC_SENTINEL ? l->sentinel_password : l->password;
    o.connect_timeout_ms = l->connect_timeout_ms;
    o.command_timeout_ms = l->command_timeout_ms;
    if (rds_open(l->loop, &o, NULL, NULL, &l->probe) != 0)
        return BD_ENOMEM;
    rds_on_event(l->probe, on_probe_event, l);
    return 0;
}

/* --- the +switch-master subscription (sentinel) ------------------------------------------- */

static void on_switch(struct rds *r, struct rds_reply *x, void *data)
{
    struct rloc *l = data;
    size_t n;
    const char *msg;
    char host[RLOC_HOST_MAX];
    int port;
    (void)r;
    if (!x || l->closing || rds_reply_len(x) != 3)
        return;
    if (rds_reply_is(rds_reply_elem(x, 0), "subscribe")) {
        rloc_refresh(l); /* switches may have been missed while not subscribed */
        return;
    }
    msg = rds_reply_str(rds_reply_elem(x, 2), &n);
    if (rds_reply_is(rds_reply_elem(x, 0), "message") && msg &&
        rloc_parse_switch(msg, n, l->master, host, sizeof(host), &port) == 0)
        moved_to(l, host, port, "+switch-master");
}

static void on_sub_event(struct rds *r, enum rds_event ev, const char *detail, void *data)
{
    struct rloc *l = data;
    (void)detail;
    if (ev == RDS_EV_UP) {
        if (rds_subscribe(r, SWITCH_CHANNEL, on_switch, l) != 0)
            log_warn("redis: cannot subscribe to %s on sentinel %s:%d", SWITCH_CHANNEL,
                     rds_host(r), rds_port(r));
    } else if (ev == RDS_EV_FAILED) {
        rloc_refresh(l); /* find a sentinel that answers; the subscription moves there */
    }
}

/* Keep the subscription on the sentinel that answered last, unless it works where it is. */
static void check_sub(struct rloc *l)
{
    const struct node *n = &l->nodes[l->cur];
    struct rds_opts o;
    l->check_sub = 0;
    if (l->sub) {
        if (rds_state(l->sub) != RDS_CONNECTED)
            rds_retarget(l->sub, n->host, n->port);
        return;
    }
    memset(&o, 0, sizeof(o));
    o.host = n->host;
    o.port = n->port;
    o.name = "sentinel-sub";
    o.password = l->sentinel_password;
    o.connect_timeout_ms = l->connect_timeout_ms;
    if (rds_open(l->loop, &o, NULL, NULL, &l->sub) == 0)
        rds_on_event(l->sub, on_sub_event, l);
}

/* --- the work loop: everything that moves connections runs here, from a timer ------------ */

static void close_probe_if_done(struct rloc *l);

static void on_kick(uv_timer_t *t)
{
    struct rloc *l = t->data;
    if (l->closing)
        return;
    if (l->apply)
        apply_all(l);
    if (l->check_sub)
        check_sub(l);
    if (!l->asking) {
        close_probe_if_done(l);
        return;
    }
    if (!l->probe) {
        l->move_probe = 0;
        if (open_probe(l) != 0)
            ask_next(l);
        return;
    }
    if (l->move_probe) {
        l->move_probe = 0;
        l->fresh = 0;
        rds_retarget(l->probe, l->nodes[l->cur].host, l->nodes[l->cur].port);
    }
    if (!l->inflight && rds_state(l->probe) == RDS_CONNECTED) {
        send_question(l);
    } else if (l->fresh && !l->inflight && rds_last_error(l->probe)[0] && l->n_nodes > 1) {
        ask_next(l); /* the probe is waiting out a failure: try the next one now */
    }
    l->fresh = 0;
}

static void kick(struct rloc *l)
{
    if (!l->closing)
        uv_timer_start(&l->kick, on_kick, 0, 0);
}

static void on_retry(uv_timer_t *t)
{
    rloc_refresh(t->data);
}

static void on_closed(void *data)
{
    struct rloc *l = data;
    if (--l->pending > 0)
        return;
    if (l->close_cb)
        l->close_cb(l->close_data);
    if (l->password)
        explicit_bzero(l->password, strlen(l->password));
    if (l->sentinel_password)
        explicit_bzero(l->sentinel_password, strlen(l->sentinel_password));
    free(l->user);
    free(l->password);
    free(l->sentinel_password);
    free(l);
}

/* A URL that is no Cluster node needs no probe connection. */
static void close_probe_if_done(struct rloc *l)
{
    struct rds *p = l->probe;
    if (!p || l->mode != RLOC_FIXED || !l->decided)
        return;
    l->probe = NULL;
    rds_close(p, NULL, NULL); /* its pending replies (none) come back now, not later */
}

void rloc_refresh(struct rloc *l)
{
    if (l->closing || (l->mode == RLOC_FIXED && l->decided))
        return;
    if (l->asking) {
        l->again = 1;
        return;
    }
    uv_timer_stop(&l->retry);
    l->asking = 1;
    l->again = 0;
    l->tried = 0;
    l->fresh = 1;
    kick(l);
}

/* --- followers' events -------------------------------------------------------------------- */

static void on_follower_event(struct rds *r, enum rds_event ev, const char *detail, void *data)
{
    struct rloc *l = data;
    char host[RLOC_HOST_MAX];
    int port;
    (void)r;
    if (ev == RDS_EV_MOVED && rloc_parse_hostport(detail, host, sizeof(host), &port) == 0) {
        if (l->mode == RLOC_FIXED)
            log_info("redis: MOVED to %s: a Redis Cluster; following slot %d", detail, l->slot);
        if (l->mode != RLOC_SENTINEL) {
            l->mode = RLOC_CLUSTER;
            l->decided = 1;
            moved_to(l, host, port, "MOVED");
        }
        rloc_refresh(l);
    } else if (ev == RDS_EV_FAILED || ev == RDS_EV_READONLY) {
        rloc_refresh(l);
    }
}

int rloc_follow(struct rloc *l, struct rds *r)
{
    if (l->n_follow >= RLOC_MAX_FOLLOW)
        return BD_ENOMEM;
    l->follow[l->n_follow++] = r;
    rds_on_event(r, on_follower_event, l);
    if (l->host[0]) {
        l->apply = 1;
        kick(l);
    }
    return 0;
}

void rloc_unfollow(struct rloc *l, struct rds *r)
{
    for (size_t i = 0; i < l->n_follow; i++) {
        if (l->follow[i] == r) {
            rds_on_event(r, NULL, NULL);
            l->follow[i] = l->follow[--l->n_follow];
            return;
        }
    }
}

int rloc_known(const struct rloc *l) { return l->host[0] != '\0'; }
const char *rloc_host(const struct rloc *l) { return l->host; }
int rloc_port(const struct rloc *l) { return l->port; }
enum rloc_mode rloc_mode(const struct rloc *l) { return l->mode; }

const char *rloc_mode_name(enum rloc_mode m)
{
    return m == RLOC_SENTINEL ? "sentinel" : m == RLOC_CLUSTER ? "cluster" : "url";
}

/* --- open and close ------------------------------------------------------------------------ */

static int copy_secret(char **dst, const char *src)
{
    if (!src)
        return 0;
    *dst = strdup(src);
    return *dst ? 0 : BD_ENOMEM;
}

static int set_nodes(struct rloc *l, const struct rloc_opts *o)
{
    if (o->n_sentinels == 0) {
        if (!o->host || strlen(o->host) >= RLOC_HOST_MAX)
            return BD_EINVAL;
        snprintf(l->nodes[0].host, RLOC_HOST_MAX, "%s", o->host);
        l->nodes[0].port = o->port ? o->port : rds_is_socket(o->host) ? 0 : 6379;
        l->n_nodes = 1;
        snprintf(l->host, sizeof(l->host), "%s", l->nodes[0].host);
        l->port = l->nodes[0].port;
        return 0;
    }
    if (o->n_sentinels > RLOC_MAX_SENTINELS || !o->master_name || !o->master_name[0] ||
        strlen(o->master_name) >= sizeof(l->master))
        return BD_EINVAL;
    for (size_t i = 0; i < o->n_sentinels; i++)
        if (rloc_parse_hostport(o->sentinels[i], l->nodes[i].host, RLOC_HOST_MAX,
                                &l->nodes[i].port) != 0)
            return BD_EINVAL;
    l->n_nodes = o->n_sentinels;
    l->mode = RLOC_SENTINEL;
    snprintf(l->master, sizeof(l->master), "%s", o->master_name);
    return 0;
}

int rloc_open(uv_loop_t *loop, const struct rloc_opts *o, struct rloc **out)
{
    struct rloc *l = calloc(1, sizeof(*l));
    int rc;
    if (!l)
        return BD_ENOMEM;
    l->loop = loop;
    l->slot = o->slot;
    l->connect_timeout_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 2000;
    l->command_timeout_ms = o->command_timeout_ms > 0 ? o->command_timeout_ms : 3000;
    l->backoff_ms = RLOC_BACKOFF_MIN_MS;
    rc = set_nodes(l, o);
    if (rc == 0)
        rc = copy_secret(&l->user, o->user);
    if (rc == 0)
        rc = copy_secret(&l->password, o->password);
    if (rc == 0)
        rc = copy_secret(&l->sentinel_password, o->sentinel_password);
    if (rc != 0) {
        l->pending = 1;
        on_closed(l);
        return rc;
    }
    uv_timer_init(loop, &l->kick);
    uv_timer_init(loop, &l->retry);
    l->kick.data = l->retry.data = l;
    *out = l;
    rloc_refresh(l);
    return 0;
}

static void on_timer_closed(uv_handle_t *h)
{
    on_closed(h->data);
}

void rloc_close(struct rloc *l, void (*cb)(void *data), void *data)
{
    l->closing = 1;
    l->close_cb = cb;
    l->close_data = data;
    for (size_t i = 0; i < l->n_follow; i++)
        rds_on_event(l->follow[i], NULL, NULL);
    l->n_follow = 0;
    l->pending = 3; /* two timers + this function */
    if (l->probe) {
        l->pending++;
        rds_close(l->probe, on_closed, l);
    }
    if (l->sub) {
        l->pending++;
        rds_close(l->sub, on_closed, l);
    }
    l->probe = l->sub = NULL;
    uv_close((uv_handle_t *)&l->kick, on_timer_closed);
    uv_close((uv_handle_t *)&l->retry, on_timer_closed);
    on_closed(l);
}
