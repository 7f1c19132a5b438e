/* rds.c - Redis client on hiredis async + libuv, with reconnect and backoff. */
#include "rds.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bderr.h"
#include "log.h"

#define RDS_BACKOFF_MIN_MS 100u
#define RDS_BACKOFF_MAX_MS 5000u

/* Our own libuv event adapter for hiredis (instead of hiredis' adapters/libuv.h, whose
 * 0.14 version drops poll errors on the floor: here an error status is handed to hiredis
 * as readable, so it reads, sees the error and disconnects instead of spinning). The poll
 * handle is closed by hiredis' cleanup hook, before hiredis closes the fd (libuv issue 2387). */
struct rds_ev {
    uv_poll_t poll;
    redisAsyncContext *ac;
    int events;
};

struct rds {
    uv_loop_t *loop;
    redisAsyncContext *ac;
    uv_timer_t timer;          /* connect timeout, then reconnect backoff */
    enum rds_state state;
    char *host;
    char *password;
    char *name;
    int port;
    int db;
    int connect_timeout_ms;
    unsigned backoff_ms;
    rds_state_cb scb;
    void *sdata;
    int closing;
    void (*close_cb)(void *);
    void *close_data;
};

struct rds_pending {
    struct rds *r;
    rds_cb cb;
    void *data;
};

static void rds_connect(struct rds *r);

/* --- the event adapter --- */

static void ev_on_poll(uv_poll_t *h, int status, int events)
{
    struct rds_ev *ev = h->data;
    if (status < 0)
        events = UV_READABLE | UV_WRITABLE;
    if (ev->ac && (events & UV_READABLE))
        redisAsyncHandleRead(ev->ac);
    if (ev->ac && (events & UV_WRITABLE))
        redisAsyncHandleWrite(ev->ac);
}

static void ev_update(struct rds_ev *ev)
{
    if (ev->events)
        uv_poll_start(&ev->poll, ev->events, ev_on_poll);
    else
        uv_poll_stop(&ev->poll);
}

static void ev_add_read(void *p) { struct rds_ev *ev = p; ev->events |= UV_READABLE; ev_update(ev); }
static void ev_del_read(void *p) { struct rds_ev *ev = p; ev->events &= ~UV_READABLE; ev_update(ev); }
static void ev_add_write(void *p) { struct rds_ev *ev = p; ev->events |= UV_WRITABLE; ev_update(ev); }
static void ev_del_write(void *p) { struct rds_ev *ev = p; ev->events &= ~UV_WRITABLE; ev_update(ev); }

static void ev_on_closed(uv_handle_t *h) { free(h->data); }

static void ev_cleanup(void *p)
{
    struct rds_ev *ev = p;
    ev->ac = NULL;
    uv_close((uv_handle_t *)&ev->poll, ev_on_closed);
}

static int ev_attach(redisAsyncContext *ac, uv_loop_t *loop)
{
    struct rds_ev *ev = calloc(1, sizeof(*ev));
    if (!ev)
        return -1;
    if (uv_poll_init(loop, &ev->poll, ac->c.fd) != 0) {
        free(ev);
        return -1;
    }
    ev->poll.data = ev;
    ev->ac = ac;
    ac->ev.data = ev;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    return 0;
}

/* --- connection state --- */

static void set_state(struct rds *r, enum rds_state s)
{
    if (r->state == s)
        return;
    r->state = s;
    if (r->scb && !r->closing)
        r->scb(r, s, r->sdata);
}

static void on_timer(uv_timer_t *t)
{
    struct rds *r = t->data;
    if (r->closing)
        return;
    if (r->ac && r->state == RDS_CONNECTING) {
        /* connect timed out: drop this attempt and retry */
        redisAsyncContext *ac = r->ac;
        r->ac = NULL;
        ac->data = NULL;
        redisAsyncFree(ac);
    }
    if (!r->ac)
        rds_connect(r);
}

static void schedule_reconnect(struct rds *r)
{
    if (r->closing)
        return;
    uv_timer_start(&r->timer, on_timer, r->backoff_ms, 0);
    r->backoff_ms *= 2;
    if (r->backoff_ms > RDS_BACKOFF_MAX_MS)
        r->backoff_ms = RDS_BACKOFF_MAX_MS;
}

static void ignore_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    (void)priv;
    if (reply && ((redisReply *)reply)->type == REDIS_REPLY_ERROR)
        log_error("redis: setup command failed: %s", ((redisReply *)reply)->str);
}

static void on_connect(const redisAsyncContext *cac, int status)
{
    struct rds *r = cac->data;
    if (!r)
        return;
    if (status != REDIS_OK) {
        r->ac = NULL; /* hiredis frees the context after this callback */
        set_state(r, RDS_CONNECTING);
        schedule_reconnect(r);
        return;
    }
    uv_timer_stop(&r->timer);
    r->backoff_ms = RDS_BACKOFF_MIN_MS;
    if (r->password)
        redisAsyncCommand(r->ac, ignore_reply, NULL, "AUTH %s", r->password);
    if (r->db)
        redisAsyncCommand(r->ac, ignore_reply, NULL, "SELECT %d", r->db);
    set_state(r, RDS_CONNECTED);
}

static void finish_close(struct rds *r);

static void on_disconnect(const redisAsyncContext *cac, int status)
{
    struct rds *r = cac->data;
    (void)status;
    if (!r)
        return;
    r->ac = NULL;
    if (r->closing)
        return;
    log_warn("redis: connection '%s' lost; reconnecting", r->name);
    set_state(r, RDS_CONNECTING);
    schedule_reconnect(r);
}

static void rds_connect(struct rds *r)
{
    redisAsyncContext *ac = redisAsyncConnect(r->host, r->port);
    set_state(r, RDS_CONNECTING);
    if (!ac) {
        schedule_reconnect(r);
        return;
    }
    if (ac->err || ev_attach(ac, r->loop) != 0) {
        redisAsyncFree(ac);
        schedule_reconnect(r);
        return;
    }
    ac->data = r;
    r->ac = ac;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    uv_timer_start(&r->timer, on_timer, (uint64_t)r->connect_timeout_ms, 0);
}

int rds_open(uv_loop_t *loop, const struct rds_opts *o, rds_state_cb cb, void *data,
             struct rds **out)
{
    struct rds *r = calloc(1, sizeof(*r));
    if (!r)
        return BD_ENOMEM;
    r->loop = loop;
    r->host = strdup(o->host ? o->host : "127.0.0.1");
    r->name = strdup(o->name ? o->name : "redis");
    r->password = o->password ? strdup(o->password) : NULL;
    if (!r->host || !r->name || (o->password && !r->password))
        goto fail;
    r->port = o->port ? o->port : 6379;
    r->db = o->db;
    r->connect_timeout_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 2000;
    r->backoff_ms = RDS_BACKOFF_MIN_MS;
    r->scb = cb;
    r->sdata = data;
    uv_timer_init(loop, &r->timer);
    r->timer.data = r;
    *out = r;
    rds_connect(r);
    return 0;
fail:
    free(r->host);
    free(r->name);
    free(r->password);
    free(r);
    return BD_ENOMEM;
}

enum rds_state rds_state(const struct rds *r) { return r->state; }

static void on_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    struct rds_pending *p = priv;
    (void)ac;
    if (!p)
        return;
    if (p->cb)
        p->cb(p->r, reply, p->data);
    free(p);
}

static struct rds_pending *pending_new(struct rds *r, rds_cb cb, void *data)
{
    struct rds_pending *p;
    if (r->state != RDS_CONNECTED || !r->ac || r->closing)
        return NULL;
    p = malloc(sizeof(*p));
    if (p) {
        p->r = r;
        p->cb = cb;
        p->data = data;
    }
    return p;
}

int rds_cmd(struct rds *r, rds_cb cb, void *data, const char *fmt, ...)
{
    va_list ap;
    int rc;
    struct rds_pending *p = pending_new(r, cb, data);
    if (!p)
        return r->state == RDS_CONNECTED ? BD_ENOMEM : BD_EREDIS_DOWN;
    va_start(ap, fmt);
    rc = redisvAsyncCommand(r->ac, on_reply, p, fmt, ap);
    va_end(ap);
    if (rc != REDIS_OK) {
        free(p);
        return BD_EREDIS_DOWN;
    }
    return 0;
}

int rds_cmdargv(struct rds *r, rds_cb cb, void *data, int argc, const char **argv,
                const size_t *argvlen)
{
    struct rds_pending *p = pending_new(r, cb, data);
    if (!p)
        return r->state == RDS_CONNECTED ? BD_ENOMEM : BD_EREDIS_DOWN;
    if (redisAsyncCommandArgv(r->ac, on_reply, p, argc, argv, argvlen) != REDIS_OK) {
        free(p);
        return BD_EREDIS_DOWN;
    }
    return 0;
}

static void on_message(redisAsyncContext *ac, void *reply, void *priv)
{
    struct rds_pending *p = priv;
    (void)ac;
    if (!p)
        return;
    p->cb(p->r, reply, p->data);
    if (!reply)
        free(p);
}

int rds_subscribe(struct rds *r, const char *channel, rds_cb cb, void *data)
{
    struct rds_pending *p = pending_new(r, cb, data);
    if (!p)
        return r->state == RDS_CONNECTED ? BD_ENOMEM : BD_EREDIS_DOWN;
    if (redisAsyncCommand(r->ac, on_message, p, "SUBSCRIBE %s", channel) != REDIS_OK) {
        free(p);
        return BD_EREDIS_DOWN;
    }
    return 0;
}

static void on_timer_closed(uv_handle_t *h)
{
    finish_close(h->data);
}

static void finish_close(struct rds *r)
{
    void (*cb)(void *) = r->close_cb;
    void *data = r->close_data;
    free(r->host);
    free(r->name);
    if (r->password) {
        explicit_bzero(r->password, strlen(r->password));
        free(r->password);
    }
    free(r);
    if (cb)
        cb(data);
}

void rds_close(struct rds *r, void (*cb)(void *data), void *data)
{
    r->closing = 1;
    r->close_cb = cb;
    r->close_data = data;
    r->state = RDS_CLOSED;
    uv_timer_stop(&r->timer);
    if (r->ac) {
        redisAsyncContext *ac = r->ac;
        r->ac = NULL;
        redisAsyncFree(ac); /* pending callbacks run with NULL replies */
    }
    uv_close((uv_handle_t *)&r->timer, on_timer_closed);
}

/* --- replies --- */

enum rds_type rds_reply_type(const struct rds_reply *x)
{
    const redisReply *rr = (const redisReply *)x;
    if (!rr)
        return RDS_NIL;
    switch (rr->type) {
    case REDIS_REPLY_STRING: return RDS_STRING;
    case REDIS_REPLY_ARRAY: return RDS_ARRAY;
    case REDIS_REPLY_INTEGER: return RDS_INTEGER;
    case REDIS_REPLY_NIL: return RDS_NIL;
    case REDIS_REPLY_STATUS: return RDS_STATUS;
    case REDIS_REPLY_ERROR: return RDS_ERROR;
    default: return RDS_OTHER;
    }
}

const char *rds_reply_str(const struct rds_reply *x, size_t *len)
{
    const redisReply *rr = (const redisReply *)x;
    enum rds_type t = rds_reply_type(x);
    if (t != RDS_STRING && t != RDS_STATUS && t != RDS_ERROR) {
        if (len)
            *len = 0;
        return NULL;
    }
    if (len)
        *len = rr->len;
    return rr->str;
}

long long rds_reply_int(const struct rds_reply *x)
{
    const redisReply *rr = (const redisReply *)x;
    return rds_reply_type(x) == RDS_INTEGER ? rr->integer : 0;
}

size_t rds_reply_len(const struct rds_reply *x)
{
    const redisReply *rr = (const redisReply *)x;
    return rds_reply_type(x) == RDS_ARRAY ? rr->elements : 0;
}

struct rds_reply *rds_reply_elem(const struct rds_reply *x, size_t i)
{
    const redisReply *rr = (const redisReply *)x;
    if (rds_reply_type(x) != RDS_ARRAY || i >= rr->elements)
        return NULL;
    return (struct rds_reply *)rr->element[i];
}

int rds_reply_is(const struct rds_reply *x, const char *s)
{
    size_t len;
    const char *v = rds_reply_str(x, &len);
    enum rds_type t = rds_reply_type(x);
    if (!v || (t != RDS_STRING && t != RDS_STATUS))
        return 0;
    return len == strlen(s) && memcmp(v, s, len) == 0;
}

long long rds_reply_num(const struct rds_reply *x, long long dflt)
{
    size_t len;
    const char *s;
    char buf[32], *end;
    long long v;
    if (rds_reply_type(x) == RDS_INTEGER)
        return rds_reply_int(x);
    s = rds_reply_str(x, &len);
    if (!s || rds_reply_type(x) != RDS_STRING || len == 0 || len >= sizeof(buf))
        return dflt;
    memcpy(buf, s, len);
    buf[len] = '\0';
    v = strtoll(buf, &end, 10);
    return *end == '\0' ? v : dflt;
}
