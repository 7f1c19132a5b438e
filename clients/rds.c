/* rds.c - Redis client on hiredis async + libuv, with reconnect and backoff. */
#include "rds.h"

#include <arpa/inet.h>
#include <hiredis/async.h>
#include <openssl/evp.h>
#include <hiredis/hiredis.h>
#ifdef BRIEFD_REDIS_TLS
#include <hiredis/hiredis_ssl.h>
#endif
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bderr.h"
#include "jsonx.h"
#include "list.h"
#include "log.h"
#include "sbuf.h"

#define RDS_BACKOFF_MIN_MS 100u
#define RDS_BACKOFF_MAX_MS 5000u

/* Our own libuv event adapter for hiredis (instead of hiredis' adapters/libuv.h, whose
 * 0.14 version drops poll errors on the floor: here an error status is handed to hiredis
 * as readable, so it reads, sees the error and disconnects instead of spinning). The poll
 * handle is closed by hiredis' cleanup hook, before hiredis closes the fd (libuv issue 2387). */
struct rds_ev {
    uv_poll_t poll;
    uv_prepare_t flush;        /* writes what the loop iteration queued, before polling */
    redisAsyncContext *ac;
    int events;                /* what poll watches */
    int want_write;            /* hiredis has output queued */
    int closed;                /* handles closed so far (of 2) */
};

struct rds {
    uv_loop_t *loop;
    redisAsyncContext *ac;
    uv_timer_t timer;          /* connect + handshake timeout, then reconnect backoff */
    uv_timer_t ctimer;         /* the oldest command's deadline */
    enum rds_state state;
    char *host;
    char *user;
    char *password;
    char *name;
    int port;
    int db;
    int connect_timeout_ms;
    int command_timeout_ms;
    int block_allowance_ms;
    const struct rds_script *const *scripts;
    size_t n_scripts;
    unsigned backoff_ms;
    unsigned gen;              /* connection attempt number: stale handshake replies (and
                                  address resolutions) are ignored */
    int want_primary;          /* the handshake asks ROLE */
    int started;               /* a target was given (no_target connections start unstarted) */
    int resolving;             /* uv_getaddrinfo of host in flight for this attempt */
    rds_event_cb ecb;
    void *edata;
#ifdef BRIEFD_REDIS_TLS
    redisSSLContext *ssl;
#endif
    int handshake_left;        /* handshake replies still awaited */
    struct list_node timed;    /* commands in flight, oldest first */
    char last_error[256];
    rds_state_cb scb;
    void *sdata;
    int closing;
    int handles;               /* open uv handles (timer, ctimer) + resolutions in flight */
    void (*close_cb)(void *);
    void *close_data;
    struct sbuf out;           /* scratch: the command being encoded (resp_*) */
    struct sbuf args;          /* scratch: rds_cmd's arguments, back to back */
};

struct rds_pending {
    struct rds *r;
    rds_cb cb;
    void *data;
    struct list_node node;     /* on r->timed when timed */
    uint64_t deadline;         /* uv_now() based */
    int is_eval;               /* an EVALSHA: a NOSCRIPT answer reloads the scripts */
};

static void rds_connect(struct rds *r);
static void drop(struct rds *r, const char *why);
static void finish_close(struct rds *r);

int rds_tls_supported(void)
{
#ifdef BRIEFD_REDIS_TLS
    return 1;
#else
    return 0;
#endif
}

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

/* Changing what a uv_poll watches costs epoll_ctl calls: only when it really changes. */
static void ev_watch(struct rds_ev *ev, int events)
{
    if (events == ev->events)
        return;
    ev->events = events;
    if (events)
        uv_poll_start(&ev->poll, events, ev_on_poll);
    else
        uv_poll_stop(&ev->poll);
}

/* Output: rather than waiting for the socket to be writable (it nearly always is), the
 * commands queued during one loop iteration are written together just before the loop
 * polls (one write for all of them: pipelining for free). Only a write that could not
 * finish - or a connect in progress - waits on writability. */
static void ev_on_flush(uv_prepare_t *h)
{
    struct rds_ev *ev = h->data;
    uv_prepare_stop(h);
    if (ev->ac && ev->want_write)
        redisAsyncHandleWrite(ev->ac);
    if (ev->ac && ev->want_write) /* not all of it went: wait until the socket takes more */
        ev_watch(ev, ev->events | UV_WRITABLE);
}

static void ev_add_read(void *p) { struct rds_ev *ev = p; ev_watch(ev, ev->events | UV_READABLE); }
static void ev_del_read(void *p) { struct rds_ev *ev = p; ev_watch(ev, ev->events & ~UV_READABLE); }

static void ev_add_write(void *p)
{
    struct rds_ev *ev = p;
    ev->want_write = 1;
    if (!(ev->ac->c.flags & REDIS_CONNECTED))
        ev_watch(ev, ev->events | UV_WRITABLE); /* the connect's completion */
    else if (!(ev->events & UV_WRITABLE))
        uv_prepare_start(&ev->flush, ev_on_flush);
}

static void ev_del_write(void *p)
{
    struct rds_ev *ev = p;
    ev->want_write = 0;
    ev_watch(ev, ev->events & ~UV_WRITABLE);
}

static void ev_on_closed(uv_handle_t *h)
{
    struct rds_ev *ev = h->data;
    if (++ev->closed == 2)
        free(ev);
}

static void ev_cleanup(void *p)
{
    struct rds_ev *ev = p;
    ev->ac = NULL;
    uv_prepare_stop(&ev->flush);
    uv_close((uv_handle_t *)&ev->poll, ev_on_closed);
    uv_close((uv_handle_t *)&ev->flush, ev_on_closed);
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
    uv_prepare_init(loop, &ev->flush);
    ev->poll.data = ev;
    ev->flush.data = ev;
    ev->ac = ac;
    ac->ev.data = ev;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    return 0;
}

/* --- scripts --- */

void rds_script_init(struct rds_script *s, const char *text)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    s->text = text;
    s->sha[0] = '\0';
    if (EVP_Digest(text, strlen(text), md, &n, EVP_sha1(), NULL) != 1 || n != 20)
        return;
    for (unsigned i = 0; i < n; i++)
        snprintf(s->sha + 2 * i, 3, "%02x", md[i]);
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

static void fire(struct rds *r, enum rds_event ev, const char *detail)
{
    if (r->ecb && !r->closing)
        r->ecb(r, ev, detail, r->edata);
}

static void fail_attempt(struct rds *r, const char *why);

static void on_timer(uv_timer_t *t)
{
    struct rds *r = t->data;
    if (r->closing)
        return;
    if (r->resolving && r->state == RDS_CONNECTING) {
        char why[64];
        snprintf(why, sizeof(why), "could not resolve the host within %d ms",
                 r->connect_timeout_ms);
        r->resolving = 0;
        r->gen++; /* the resolution still running is stale */
        fail_attempt(r, why);
        return;
    }
    if (r->ac && r->state == RDS_CONNECTING) {
        char why[64];
        snprintf(why, sizeof(why), "no answer within %d ms", r->connect_timeout_ms);
        drop(r, why);
        return;
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

static void set_error(struct rds *r, const char *why)
{
    if (strcmp(r->last_error, why) != 0) {
        char addr[300];
        rds_addr_text(r->host, r->port, addr, sizeof(addr));
        log_warn("redis %s (%s): %s", addr, r->name, why);
    }
    snprintf(r->last_error, sizeof(r->last_error), "%s", why);
}

/* Give up on the current connection (its commands get NULL replies) and reconnect later. */
static void drop_quiet(struct rds *r, const char *why)
{
    redisAsyncContext *ac = r->ac;
    set_error(r, why);
    r->ac = NULL;
    r->gen++;
    if (ac) {
        ac->data = NULL; /* its disconnect callback must not touch r */
        redisAsyncFree(ac);
    }
    uv_timer_stop(&r->ctimer);
    set_state(r, RDS_CONNECTING);
    schedule_reconnect(r);
}

/* The same, told to the event hook. */
static void drop(struct rds *r, const char *why)
{
    drop_quiet(r, why);
    fire(r, RDS_EV_FAILED, r->last_error);
}

/* An attempt that never got a connection (no address, refused): retry later. */
static void fail_attempt(struct rds *r, const char *why)
{
    set_error(r, why);
    set_state(r, RDS_CONNECTING);
    uv_timer_stop(&r->timer);
    schedule_reconnect(r);
    fire(r, RDS_EV_FAILED, r->last_error);
}

/* --- the handshake: AUTH, SELECT, CLIENT SETNAME, SCRIPT LOAD, PING --- */

struct hs {
    struct rds *r;
    unsigned gen;
    int role;                  /* the ROLE check */
};

static void handshake_done(struct rds *r)
{
    uv_timer_stop(&r->timer);
    r->backoff_ms = RDS_BACKOFF_MIN_MS;
    r->last_error[0] = '\0';
    set_state(r, RDS_CONNECTED);
    if (r->state == RDS_CONNECTED)
        fire(r, RDS_EV_UP, "");
}

/* Why a handshake reply refuses the connection (0: it does not). A refused ROLE is no
 * refusal: an ACL user may lack the permission, and then nothing can be told. */
static int hs_refused(const struct hs *h, const redisReply *x, char *why, size_t len)
{
    if (h->role) {
        const redisReply *e = x->type == REDIS_REPLY_ARRAY && x->elements ? x->element[0] : NULL;
        if (!e || (e->type != REDIS_REPLY_STRING && e->type != REDIS_REPLY_STATUS) ||
            strcmp(e->str, "master") == 0)
            return 0;
        snprintf(why, len, "the server is a replica (ROLE %.40s), not the primary", e->str);
        return 1;
    }
    if (x->type != REDIS_REPLY_ERROR)
        return 0;
    snprintf(why, len, "handshake refused: %.*s", (int)(x->len < 180 ? x->len : 180), x->str);
    return 1;
}

static void on_hs_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    struct hs *h = priv;
    struct rds *r = h->r;
    const redisReply *x = reply;
    unsigned gen = h->gen;
    char why[200];
    int refused;
    (void)ac;
    if (!x || r->closing || gen != r->gen) {
        free(h);
        return; /* a connection that was dropped meanwhile */
    }
    refused = hs_refused(h, x, why, sizeof(why));
    free(h);
    if (refused) {
        drop(r, why);
        return;
    }
    if (--r->handshake_left == 0)
        handshake_done(r);
}

static int hs_send(struct rds *r, int argc, const char **argv)
{
    struct hs *h = malloc(sizeof(*h));
    if (!h)
        return -1;
    h->r = r;
    h->gen = r->gen;
    h->role = strcmp(argv[0], "ROLE") == 0;
    if (redisAsyncCommandArgv(r->ac, on_hs_reply, h, argc, argv, NULL) != REDIS_OK) {
        free(h);
        return -1;
    }
    r->handshake_left++;
    return 0;
}

static int send_handshake(struct rds *r)
{
    char db[16], cname[80];
    int rc = 0;
    snprintf(db, sizeof(db), "%d", r->db);
    snprintf(cname, sizeof(cname), "briefd-%s", r->name);
    for (char *p = cname; *p; p++)
        if (*p == ' ')
            *p = '-';
    if (r->password) {
        const char *a2[] = {"AUTH", r->password};
        const char *a3[] = {"AUTH", r->user ? r->user : "", r->password};
        rc |= r->user ? hs_send(r, 3, a3) : hs_send(r, 2, a2);
    }
    if (r->db) {
        const char *a[] = {"SELECT", db};
        rc |= hs_send(r, 2, a);
    }
    {
        const char *a[] = {"CLIENT", "SETNAME", cname};
        rc |= hs_send(r, 3, a);
    }
    for (size_t i = 0; i < r->n_scripts; i++) {
        const char *a[] = {"SCRIPT", "LOAD", r->scripts[i]->text};
        rc |= hs_send(r, 3, a);
    }
    if (r->want_primary) {
        const char *a[] = {"ROLE"};
        rc |= hs_send(r, 1, a);
    }
    {
        const char *a[] = {"PING"};
        rc |= hs_send(r, 1, a);
    }
    return rc;
}

static void on_connect(const redisAsyncContext *cac, int status)
{
    struct rds *r = cac->data;
    if (!r)
        return;
    if (status != REDIS_OK) {
        r->ac = NULL; /* hiredis frees the context after this callback */
        fail_attempt(r, cac->errstr[0] ? cac->errstr : "connect failed");
        return;
    }
    r->handshake_left = 0;
    if (send_handshake(r) != 0)
        drop(r, "could not send the handshake");
}

static void on_disconnect(const redisAsyncContext *cac, int status)
{
    struct rds *r = cac->data;
    (void)status;
    if (!r)
        return;
    r->ac = NULL;
    r->gen++;
    if (r->closing)
        return;
    set_error(r, "connection lost");
    uv_timer_stop(&r->ctimer);
    set_state(r, RDS_CONNECTING);
    schedule_reconnect(r);
    fire(r, RDS_EV_FAILED, r->last_error);
}

static int tls_attach(struct rds *r, redisAsyncContext *ac)
{
#ifdef BRIEFD_REDIS_TLS
    if (r->ssl && redisInitiateSSLWithContext(&ac->c, r->ssl) != REDIS_OK)
        return -1;
#else
    (void)r;
    (void)ac;
#endif
    return 0;
}

/* Connect (non-blocking) to ip, a numeric address, or to the Unix socket at r->host when ip
 * is NULL; the connect timer is running. */
static void connect_ip(struct rds *r, const char *ip)
{
    redisAsyncContext *ac = ip ? redisAsyncConnect(ip, r->port) : redisAsyncConnectUnix(r->host);
    if (!ac) {
        fail_attempt(r, "out of memory");
        return;
    }
    if (ac->err || tls_attach(r, ac) != 0 || ev_attach(ac, r->loop) != 0) {
        char why[200];
        snprintf(why, sizeof(why), "%s", ac->err ? ac->errstr : "TLS or event set-up failed");
        redisAsyncFree(ac);
        fail_attempt(r, why);
        return;
    }
    ac->data = r;
    r->ac = ac;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
}

struct rds_resolve {
    uv_getaddrinfo_t req;
    struct rds *r;
    unsigned gen;
};

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *ai)
{
    struct rds_resolve *rr = req->data;
    struct rds *r = rr->r;
    unsigned gen = rr->gen;
    char ip[64] = "", why[128];
    free(rr);
    if (status == 0 && ai && ai->ai_family == AF_INET6)
        uv_ip6_name((const struct sockaddr_in6 *)(const void *)ai->ai_addr, ip, sizeof(ip));
    else if (status == 0 && ai)
        uv_ip4_name((const struct sockaddr_in *)(const void *)ai->ai_addr, ip, sizeof(ip));
    uv_freeaddrinfo(ai);
    if (--r->handles == 0 && r->closing) {
        finish_close(r);
        return;
    }
    if (r->closing || gen != r->gen)
        return; /* superseded (a timeout, a retarget) */
    r->resolving = 0;
    if (!ip[0]) {
        snprintf(why, sizeof(why), "cannot resolve %.60s: %s", r->host,
                 status < 0 ? uv_strerror(status) : "no address");
        fail_attempt(r, why);
        return;
    }
    connect_ip(r, ip);
}

/* Resolve r->host off the loop (libuv's thread pool); the resolution counts as a handle. */
static void resolve(struct rds *r)
{
    struct addrinfo hints;
    struct rds_resolve *rr = calloc(1, sizeof(*rr));
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (!rr) {
        fail_attempt(r, "out of memory");
        return;
    }
    rr->r = r;
    rr->gen = r->gen;
    rr->req.data = rr;
    if (uv_getaddrinfo(r->loop, &rr->req, on_resolved, r->host, NULL, &hints) != 0) {
        free(rr);
        fail_attempt(r, "cannot start resolving the host");
        return;
    }
    r->handles++;
    r->resolving = 1;
}

static int is_ip_literal(const char *host)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

static void rds_connect(struct rds *r)
{
    r->gen++;
    r->resolving = 0;
    r->started = 1;
    set_state(r, RDS_CONNECTING);
    uv_timer_start(&r->timer, on_timer, (uint64_t)r->connect_timeout_ms, 0);
    if (rds_is_socket(r->host))
        connect_ip(r, NULL);
    else if (is_ip_literal(r->host))
        connect_ip(r, r->host);
    else
        resolve(r);
}

static char *dup_opt(const char *s, int *bad)
{
    char *d;
    if (!s)
        return NULL;
    d = strdup(s);
    if (!d)
        *bad = 1;
    return d;
}

static void wipe(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

static int tls_setup(struct rds *r, const struct rds_opts *o)
{
    if (!o->tls)
        return 0;
#ifdef BRIEFD_REDIS_TLS
    {
        static int openssl_ready;
        redisSSLContextError e = REDIS_SSL_CTX_NONE;
        if (!openssl_ready)
            openssl_ready = redisInitOpenSSL() == REDIS_OK;
        r->ssl = redisCreateSSLContext(o->tls_ca_file, NULL, NULL, NULL, r->host, &e);
        if (!r->ssl) {
            log_error("redis (%s): TLS set-up failed: %s", r->name,
                      redisSSLContextGetError(e));
            return BD_EINVAL;
        }
        return 0;
    }
#else
    log_error("redis (%s): this build of hiredis has no TLS", r->name);
    return BD_EINVAL;
#endif
}

int rds_open(uv_loop_t *loop, const struct rds_opts *o, rds_state_cb cb, void *data,
             struct rds **out)
{
    struct rds *r = calloc(1, sizeof(*r));
    int bad = 0;
    if (!r)
        return BD_ENOMEM;
    r->loop = loop;
    r->host = dup_opt(o->host ? o->host : "127.0.0.1", &bad);
    r->name = dup_opt(o->name ? o->name : "redis", &bad);
    r->user = dup_opt(o->user, &bad);
    r->password = dup_opt(o->password, &bad);
    if (bad) {
        free(r->host);
        free(r->name);
        wipe(r->user);
        wipe(r->password);
        free(r);
        return BD_ENOMEM;
    }
    if (tls_setup(r, o) != 0) {
        free(r->host);
        free(r->name);
        wipe(r->user);
        wipe(r->password);
        free(r);
        return BD_EINVAL;
    }
    r->port = o->port ? o->port : rds_is_socket(r->host) ? 0 : 6379;
    r->db = o->db;
    r->want_primary = o->want_primary;
    r->connect_timeout_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 2000;
    r->command_timeout_ms = o->command_timeout_ms;
    r->block_allowance_ms = o->block_allowance_ms;
    r->scripts = o->scripts;
    r->n_scripts = o->n_scripts;
    r->backoff_ms = RDS_BACKOFF_MIN_MS;
    r->scb = cb;
    r->sdata = data;
    list_init(&r->timed);
    uv_timer_init(loop, &r->timer);
    uv_timer_init(loop, &r->ctimer);
    r->timer.data = r->ctimer.data = r;
    r->handles = 2;
    *out = r;
    if (!o->no_target) {
        rds_connect(r);
    } else {
        r->state = RDS_CONNECTING;
        set_error(r, "waiting for the primary's address");
    }
    return 0;
}

void rds_on_event(struct rds *r, rds_event_cb cb, void *data)
{
    r->ecb = cb;
    r->edata = data;
}

enum rds_state rds_state(const struct rds *r) { return r->state; }
const char *rds_last_error(const struct rds *r) { return r->last_error; }
const char *rds_host(const struct rds *r) { return r->host; }
int rds_port(const struct rds *r) { return r->port; }

int rds_is_socket(const char *host) { return host[0] == '/'; }

void rds_addr_text(const char *host, int port, char *out, size_t n)
{
    int v6 = strchr(host, ':') != NULL;
    if (rds_is_socket(host))
        snprintf(out, n, "%s", host);
    else
        snprintf(out, n, "%s%s%s:%d", v6 ? "[" : "", host, v6 ? "]" : "", port);
}

int rds_retarget(struct rds *r, const char *host, int port)
{
    char *h;
    if (r->closing || (r->started && strcmp(host, r->host) == 0 && port == r->port))
        return 0;
    h = strdup(host);
    if (!h)
        return BD_ENOMEM;
    free(r->host);
    r->host = h;
    r->port = port;
    {
        char addr[300];
        rds_addr_text(host, port, addr, sizeof(addr));
        log_info("redis (%s): now %s", r->name, addr);
    }
    r->backoff_ms = RDS_BACKOFF_MIN_MS;
    if (r->ac || r->state == RDS_CONNECTED)
        drop_quiet(r, "the primary moved");
    uv_timer_stop(&r->timer);
    rds_connect(r);
    return 0;
}

/* --- commands --- */

static void on_ctimer(uv_timer_t *t);

static void arm_ctimer(struct rds *r)
{
    struct list_node *first = list_first(&r->timed);
    uint64_t now = uv_now(r->loop), at;
    if (!first) {
        uv_timer_stop(&r->ctimer);
        return;
    }
    at = LIST_ENTRY(first, struct rds_pending, node)->deadline;
    uv_timer_start(&r->ctimer, on_ctimer, at > now ? at - now : 0, 0);
}

static void on_ctimer(uv_timer_t *t)
{
    struct rds *r = t->data;
    struct list_node *first = list_first(&r->timed);
    if (!first || r->closing)
        return;
    if (LIST_ENTRY(first, struct rds_pending, node)->deadline <= uv_now(r->loop)) {
        char why[64];
        snprintf(why, sizeof(why), "no reply within %d ms",
                 r->command_timeout_ms + r->block_allowance_ms);
        drop(r, why);
        return;
    }
    arm_ctimer(r);
}

uint64_t rds_drop_at(const struct rds *r)
{
    struct list_node *first;

    if (r->command_timeout_ms <= 0)
        return 0;
    first = list_first(&r->timed);
    if (first)
        return LIST_ENTRY(first, struct rds_pending, node)->deadline;
    return uv_now(r->loop) + (uint64_t)(r->command_timeout_ms + r->block_allowance_ms);
}

static void reload_scripts(struct rds *r)
{
    for (size_t i = 0; i < r->n_scripts && r->ac; i++)
        redisAsyncCommand(r->ac, NULL, NULL, "SCRIPT LOAD %s", r->scripts[i]->text);
}

/* READONLY (a primary demoted to replica) and MOVED (Cluster) go to the event hook. */
static void notice_error(struct rds *r, const redisReply *x)
{
    const char *sp;
    if (!x || x->type != REDIS_REPLY_ERROR || !x->str || r->closing)
        return;
    if (strncmp(x->str, "READONLY", 8) == 0) {
        fire(r, RDS_EV_READONLY, x->str);
    } else if (strncmp(x->str, "MOVED ", 6) == 0) {
        sp = strrchr(x->str, ' ');
        fire(r, RDS_EV_MOVED, sp + 1);
    }
}

static void on_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    struct rds_pending *p = priv;
    const redisReply *x = reply;
    (void)ac;
    if (!p)
        return;
    list_unlink(&p->node);
    if (p->is_eval && x && x->type == REDIS_REPLY_ERROR && strncmp(x->str, "NOSCRIPT", 8) == 0)
        reload_scripts(p->r);
    if (p->cb)
        p->cb(p->r, reply, p->data);
    notice_error(p->r, x);
    free(p);
}

static struct rds_pending *pending_new(struct rds *r, rds_cb cb, void *data, int timed)
{
    struct rds_pending *p;
    if (r->state != RDS_CONNECTED || !r->ac || r->closing)
        return NULL;
    p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->r = r;
    p->cb = cb;
    p->data = data;
    list_init(&p->node);
    if (timed && r->command_timeout_ms > 0) {
        p->deadline = uv_now(r->loop) + (uint64_t)(r->command_timeout_ms + r->block_allowance_ms);
        list_push_back(&r->timed, &p->node);
        if (!uv_is_active((uv_handle_t *)&r->ctimer))
            arm_ctimer(r);
    }
    return p;
}

static void pending_abort(struct rds_pending *p)
{
    list_unlink(&p->node);
    free(p);
}

/* --- commands: encoded here and handed to hiredis preformatted. hiredis 0.14's own
 * formatters cost about 20 K instructions a command (its printf-style one a call per byte
 * of the format, its argv one a sprintf per argument): about 70 K instructions a job. --- */

#define RDS_FMT_MAX_ARGS 64

static void resp_len(struct sbuf *b, char mark, size_t n)
{
    char num[26];
    size_t k = jsonx_int((long long)n, num + 1);
    num[0] = mark;
    num[k + 1] = '\r';
    num[k + 2] = '\n';
    sbuf_add(b, num, k + 3);
}

/* The RESP array of argv into r->out (reset first). */
static void resp_argv(struct rds *r, int argc, const char *const *argv, const size_t *argl)
{
    r->out.len = 0;
    resp_len(&r->out, '*', (size_t)argc);
    for (int i = 0; i < argc; i++) {
        size_t n = argl ? argl[i] : strlen(argv[i]);
        resp_len(&r->out, '$', n);
        sbuf_add(&r->out, argv[i], n);
        sbuf_add(&r->out, "\r\n", 2);
    }
}

#define RDS_SCRATCH_KEEP (64 * 1024) /* scratch kept between commands; a bigger one goes */

static void scratch_trim(struct sbuf *b)
{
    if (b->oom || b->cap > RDS_SCRATCH_KEEP) {
        free(b->p);
        memset(b, 0, sizeof(*b));
    }
}

/* Queue r->out (a whole command; hiredis copies it) for p. */
static int send_out(struct rds *r, struct rds_pending *p)
{
    int rc = r->out.oom ? BD_ENOMEM
             : redisAsyncFormattedCommand(r->ac, on_reply, p, r->out.p, r->out.len) == REDIS_OK
                 ? 0
                 : BD_EREDIS_DOWN;
    scratch_trim(&r->out); /* a job's record can be megabytes: not held per connection */
    scratch_trim(&r->args);
    return rc;
}

/* The arguments of a hiredis-style format (words split at spaces; %s, %b, %d, %u, %ld,
 * %lld and %% within or as words) back to back in r->args, their offsets and lengths
 * in off[], len[]. Returns the count, or -1 for what this subset does not take (the caller
 * lets hiredis format it). */
static int fmt_args(struct rds *r, const char *fmt, va_list ap, size_t *off, size_t *len)
{
    int n = 0, touched = 0;
    char num[24];
    size_t start = 0;
    r->args.len = 0;
    for (const char *c = fmt;; c++) {
        if (*c == ' ' || *c == '\0') {
            if (touched) {
                if (n == RDS_FMT_MAX_ARGS)
                    return -1;
                off[n] = start;
                len[n++] = r->args.len - start;
            }
            if (*c == '\0')
                break;
            touched = 0;
            start = r->args.len;
            continue;
        }
        touched = 1;
        if (*c != '%') {
            sbuf_addc(&r->args, *c);
            continue;
        }
        c++;
        if (*c == 's') {
            const char *v = va_arg(ap, const char *);
            sbuf_adds(&r->args, v ? v : "");
        } else if (*c == 'b') {
            const char *v = va_arg(ap, const char *);
            size_t k = va_arg(ap, size_t);
            if (k)
                sbuf_add(&r->args, v, k);
        } else if (*c == 'd') {
            sbuf_add(&r->args, num, jsonx_int(va_arg(ap, int), num));
        } else if (*c == 'u') {
            sbuf_add(&r->args, num, jsonx_int(va_arg(ap, unsigned), num));
        } else if (c[0] == 'l' && c[1] == 'd') {
            sbuf_add(&r->args, num, jsonx_int(va_arg(ap, long), num));
            c++;
        } else if (c[0] == 'l' && c[1] == 'l' && c[2] == 'd') {
            sbuf_add(&r->args, num, jsonx_int(va_arg(ap, long long), num));
            c += 2;
        } else if (*c == '%') {
            sbuf_addc(&r->args, '%');
        } else {
            return -1;
        }
    }
    return r->args.oom ? -1 : n;
}

/* fmt and its arguments as one command in r->out (fmt_args, then resp_argv); -1 when fmt
 * is outside the subset or memory ran out (r->out untouched). */
static int encode_fmt(struct rds *r, const char *fmt, va_list ap)
{
    const char *argv[RDS_FMT_MAX_ARGS];
    size_t off[RDS_FMT_MAX_ARGS], len[RDS_FMT_MAX_ARGS];
    int n = fmt_args(r, fmt, ap, off, len);
    if (n < 0)
        return -1;
    for (int i = 0; i < n; i++)
        argv[i] = r->args.p + off[i];
    resp_argv(r, n, argv, len);
    return 0;
}

int rds_cmd(struct rds *r, rds_cb cb, void *data, const char *fmt, ...)
{
    va_list ap, again;
    int rc;
    struct rds_pending *p = pending_new(r, cb, data, 1);
    if (!p)
        return r->state == RDS_CONNECTED ? BD_ENOMEM : BD_EREDIS_DOWN;
    va_start(ap, fmt);
    va_copy(again, ap);
    if (encode_fmt(r, fmt, ap) == 0) {
        rc = send_out(r, p);
    } else { /* outside the subset (or out of memory): hiredis formats it */
        scratch_trim(&r->args);
        rc = redisvAsyncCommand(r->ac, on_reply, p, fmt, again) == REDIS_OK ? 0
                                                                             : BD_EREDIS_DOWN;
    }
    va_end(again);
    va_end(ap);
    if (rc != 0)
        pending_abort(p);
    return rc;
}

char *rds_format(size_t *len, const char *fmt, ...)
{
    struct rds r;
    va_list ap;
    int rc;
    memset(&r, 0, sizeof(r));
    va_start(ap, fmt);
    rc = encode_fmt(&r, fmt, ap);
    va_end(ap);
    free(r.args.p);
    if (rc != 0 || r.out.oom) {
        free(r.out.p);
        return NULL;
    }
    *len = r.out.len;
    return r.out.p;
}

int rds_cmdargv(struct rds *r, rds_cb cb, void *data, int argc, const char **argv,
                const size_t *argvlen)
{
    int rc;
    struct rds_pending *p = pending_new(r, cb, data, 1);
    if (!p)
        return r->state == RDS_CONNECTED ? BD_ENOMEM : BD_EREDIS_DOWN;
    resp_argv(r, argc, argv, argvlen);
    rc = send_out(r, p);
    if (rc != 0)
        pending_abort(p);
    return rc;
}

#define RDS_EVAL_STACK_ARGS 64

static int send_evalsha(struct rds *r, struct rds_pending *p, const struct rds_script *s,
                        int nkeys, int nargs, const char *const *args, const size_t *lens,
                        const char **argv, size_t *argl)
{
    char nk[16];
    snprintf(nk, sizeof(nk), "%d", nkeys);
    argv[0] = "EVALSHA";
    argv[1] = s->sha;
    argv[2] = nk;
    for (int i = 0; i < 3; i++)
        argl[i] = strlen(argv[i]);
    for (int i = 0; i < nargs; i++) {
        argv[i + 3] = args[i];
        argl[i + 3] = lens ? lens[i] : strlen(args[i]);
    }
    resp_argv(r, nargs + 3, argv, argl);
    return send_out(r, p);
}

int rds_evalsha(struct rds *r, rds_cb cb, void *data, const struct rds_script *s, int nkeys,
                int nargs, const char *const *args, const size_t *lens)
{
    const char *sargv[RDS_EVAL_STACK_ARGS + 3], **argv = sargv;
    size_t sargl[RDS_EVAL_STACK_ARGS + 3], *argl = sargl;
    struct rds_pending *p;
    int rc;
    if (nargs < 0 || nkeys < 0 || nkeys > nargs)
        return BD_EINVAL;
    if (nargs > RDS_EVAL_STACK_ARGS) {
        argv = malloc(((size_t)nargs + 3) * sizeof(*argv));
        argl = malloc(((size_t)nargs + 3) * sizeof(*argl));
        if (!argv || !argl) {
            free(argv);
            free(argl);
            return BD_ENOMEM;
        }
    }
    p = pending_new(r, cb, data, 1);
    if (!p) {
        rc = r->state == RDS_CONNECTED ? BD_ENOMEM : BD_EREDIS_DOWN;
    } else {
        p->is_eval = 1;
        rc = send_evalsha(r, p, s, nkeys, nargs, args, lens, argv, argl);
        if (rc != 0)
            pending_abort(p);
    }
    if (argv != sargv) {
        free(argv);
        free(argl);
    }
    return rc;
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
    struct rds_pending *p = pending_new(r, cb, data, 0);
    if (!p)
        return r->state == RDS_CONNECTED ? BD_ENOMEM : BD_EREDIS_DOWN;
    if (redisAsyncCommand(r->ac, on_message, p, "SUBSCRIBE %s", channel) != REDIS_OK) {
        free(p);
        return BD_EREDIS_DOWN;
    }
    return 0;
}

static void finish_close(struct rds *r)
{
    void (*cb)(void *) = r->close_cb;
    void *data = r->close_data;
#ifdef BRIEFD_REDIS_TLS
    if (r->ssl)
        redisFreeSSLContext(r->ssl);
#endif
    free(r->host);
    free(r->name);
    wipe(r->user);
    wipe(r->password);
    free(r->out.p);
    free(r->args.p);
    free(r);
    if (cb)
        cb(data);
}

static void on_timer_closed(uv_handle_t *h)
{
    struct rds *r = h->data;
    if (--r->handles == 0)
        finish_close(r);
}

void rds_close(struct rds *r, void (*cb)(void *data), void *data)
{
    r->closing = 1;
    r->close_cb = cb;
    r->close_data = data;
    r->state = RDS_CLOSED;
    r->resolving = 0;
    uv_timer_stop(&r->timer);
    uv_timer_stop(&r->ctimer);
    if (r->ac) {
        redisAsyncContext *ac = r->ac;
        r->ac = NULL;
        redisAsyncFree(ac); /* pending callbacks run with NULL replies */
    }
    uv_close((uv_handle_t *)&r->timer, on_timer_closed);
    uv_close((uv_handle_t *)&r->ctimer, on_timer_closed);
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
