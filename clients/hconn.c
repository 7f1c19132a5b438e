/* hconn.c - plain-HTTP/1.1 client on libuv TCP and llhttp, with a keep-alive pool. */
#include "hconn.h"

#include <llhttp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "list.h"

#define HC_READ_BUF (64u << 10)  /* one read of the pool's buffer */
#define HC_NAME_MAX 64           /* header names longer than this are not passed on */
#define HC_VALUE_MAX 1024        /* header values are cut to this */

struct hc_pool {
    uv_loop_t *loop;
    struct list_node idle;       /* idle connections, newest first */
    unsigned nidle;
    unsigned open;               /* connections not yet closing */
    unsigned busy, peak;         /* exchanges in flight now, most so far */
    char rbuf[HC_READ_BUF];      /* every read lands here and is parsed at once */
};

enum conn_state { C_RESOLVING, C_CONNECTING, C_BUSY, C_IDLE, C_CLOSING };

struct hc_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_connect_t creq;
    uv_write_t wreq;
    uv_getaddrinfo_t gai;
    struct hc_pool *pool;        /* NULL once closing */
    struct hc_xfer *x;           /* the exchange on it, NULL when idle */
    enum conn_state state;
    int refs;                    /* handles not yet closed + a resolve in flight */
    struct addrinfo *ai;         /* uv_getaddrinfo's answer (freed with the connection) */
    struct addrinfo *next_ai;    /* the addresses not yet tried */
    struct list_node node;       /* pool->idle while idle */
    uint64_t idle_since;
    char *host;                  /* owned copy: the pool's key with port */
    int port;
    int reused;                  /* it served an exchange before this one */
    int writing;                 /* a write in flight */
    /* the response being read */
    llhttp_t parser;
    size_t got;                  /* response bytes read */
    size_t got_before;           /* response bytes read before the current read */
    const char *rbase;           /* the current read's bytes */
    size_t head_end;             /* where the head's last piece seen ends (from byte 0) */
    size_t head_bytes;           /* read before the final response's headers were complete */
    int headers_done;            /* the final response's headers were read */
    int complete, keep, fail;    /* fail: an hc_result set by a callback */
    struct hc_hdr *hdr;          /* the final response's header being read (owned), NULL
                                    until its first header and once its head is complete */
};

/* A header of the final response as it is read: name and value may come in pieces over
 * several reads. Allocated at the head's first header, freed when the head is complete, so
 * that a connection waiting for its answer (or idle) does not carry a kilobyte of scratch. */
struct hc_hdr {
    size_t nlen, vlen;
    int name_long;
    char name[HC_NAME_MAX + 1];
    char value[HC_VALUE_MAX + 1];
};

static void conn_close(struct hc_conn *c);
static void xfer_finish(struct hc_conn *c, int result);
static int conn_open(struct hc_pool *pool, struct hc_xfer *x, struct addrinfo *ai,
                     struct addrinfo *next);

/* --- the response parser's callbacks (parser->data = the connection) --- */

/* Where the head's last piece read so far ends, counted from the response's first byte. */
static void head_mark(struct hc_conn *c, const char *at, size_t len)
{
    c->head_end = c->got_before + (size_t)(at + len - c->rbase);
}

static int on_status(llhttp_t *p, const char *at, size_t len)
{
    head_mark(p->data, at, len);
    return 0;
}

static int on_status_complete(llhttp_t *p)
{
    struct hc_conn *c = p->data;
    if (p->status_code >= 200)
        c->x->status = p->status_code;
    return 0;
}

/* The scratch a piece of a header passed on goes to; NULL for a header not passed on (an
 * interim response's, a trailer, none wanted) - and, out of memory, c->fail is set. */
static struct hc_hdr *header_scratch(llhttp_t *p)
{
    struct hc_conn *c = p->data;
    if (p->status_code < 200 || c->headers_done || !c->x->on_header)
        return NULL;
    if (!c->hdr && !(c->hdr = calloc(1, sizeof(*c->hdr)))) {
        c->fail = HC_ENOMEM;
        snprintf(c->x->err, sizeof(c->x->err), "out of memory reading the headers");
    }
    return c->hdr;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    struct hc_conn *c = p->data;
    struct hc_hdr *h;
    head_mark(c, at, len);
    if (!(h = header_scratch(p)))
        return c->fail ? -1 : 0;
    if (h->nlen + len > HC_NAME_MAX) {
        h->name_long = 1;
        return 0;
    }
    memcpy(h->name + h->nlen, at, len);
    h->nlen += len;
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    struct hc_conn *c = p->data;
    struct hc_hdr *h;
    head_mark(c, at, len);
    if (!(h = header_scratch(p)))
        return c->fail ? -1 : 0;
    if (len > HC_VALUE_MAX - h->vlen)
        len = HC_VALUE_MAX - h->vlen;
    memcpy(h->value + h->vlen, at, len);
    h->vlen += len;
    return 0;
}

static int on_header_value_complete(llhttp_t *p)
{
    struct hc_conn *c = p->data;
    struct hc_xfer *x = c->x;
    struct hc_hdr *h = header_scratch(p);
    int rc = 0;
    size_t vlen;

    if (!h)
        return c->fail ? -1 : 0;
    vlen = h->vlen;
    while (vlen && (h->value[vlen - 1] == ' ' || h->value[vlen - 1] == '\t'))
        vlen--;
    h->name[h->nlen] = '\0';
    h->value[vlen] = '\0';
    if (!h->name_long && x->on_header(x, h->name, h->nlen, h->value, vlen) != 0) {
        c->fail = HC_EABORT;
        snprintf(x->err, sizeof(x->err), "stopped by the caller at a header");
        rc = -1;
    }
    h->nlen = h->vlen = 0;
    h->name_long = 0;
    return rc;
}

static int on_headers_complete(llhttp_t *p)
{
    struct hc_conn *c = p->data;
    if (p->status_code < 200)
        return 0;
    c->headers_done = 1; /* what follows a chunked body's end is trailers: not passed */
    free(c->hdr);
    c->hdr = NULL;
    if (c->head_end + 4 > HC_MAX_HEAD) { /* + the blank line's CRLF CRLF at most */
        c->fail = HC_EPROTO;
        snprintf(c->x->err, sizeof(c->x->err), "response head larger than %u bytes",
                 HC_MAX_HEAD);
        return -1;
    }
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    struct hc_conn *c = p->data;
    struct hc_xfer *x = c->x;
    if (p->status_code < 200 || !x->on_body)
        return 0;
    if (x->on_body(x, at, len) != 0) {
        c->fail = HC_EABORT;
        snprintf(x->err, sizeof(x->err), "stopped by the caller in the body");
        return -1;
    }
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    struct hc_conn *c = p->data;
    if (p->status_code < 200) /* an interim response: the final one follows */
        return 0;
    c->complete = 1;
    c->keep = llhttp_should_keep_alive(p);
    return HPE_PAUSED;
}

static llhttp_settings_t parser_settings;

static void parser_reset(struct hc_conn *c)
{
    llhttp_init(&c->parser, HTTP_RESPONSE, &parser_settings);
    c->parser.data = c;
    c->got = c->head_bytes = c->head_end = 0;
    c->complete = c->keep = c->fail = c->headers_done = 0;
    free(c->hdr);
    c->hdr = NULL;
}

/* --- connections --- */

/* One of c's handles closed, or its resolve came back: the last one frees it. */
static void conn_unref(struct hc_conn *c)
{
    if (--c->refs == 0) {
        if (c->ai)
            uv_freeaddrinfo(c->ai);
        free(c->hdr);
        free(c->host);
        free(c);
    }
}

static void on_handle_closed(uv_handle_t *h) { conn_unref(h->data); }

/* Close c (idle, or its exchange already detached). Pending writes are canceled. */
static void conn_close(struct hc_conn *c)
{
    if (c->state == C_CLOSING)
        return;
    if (c->state == C_IDLE) {
        list_unlink(&c->node);
        c->pool->nidle--;
    }
    if (c->state == C_RESOLVING)
        uv_cancel((uv_req_t *)&c->gai); /* its callback still runs and drops its ref */
    c->pool->open--;
    c->state = C_CLOSING;
    c->pool = NULL;
    c->x = NULL;
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct hc_conn *c = h->data;
    (void)hint;
    *buf = uv_buf_init(c->pool->rbuf, sizeof(c->pool->rbuf));
}

static void on_timer(uv_timer_t *t)
{
    struct hc_conn *c = t->data;
    struct hc_xfer *x = c->x;
    if (!x)
        return;
    if (c->fail == HC_ECONNECT && c->state == C_CONNECTING) { /* conn_open could not start */
        xfer_finish(c, HC_ECONNECT);
        return;
    }
    snprintf(x->err, sizeof(x->err), "timed out %s after %lu ms",
             c->state == C_BUSY ? "waiting for the response" : "connecting",
             (unsigned long)(uv_now(t->loop) - x->started));
    xfer_finish(c, HC_ETIMEOUT);
}

/* The exchange on c ends with result: c goes back to the pool or is closed, then done. */
static void xfer_finish(struct hc_conn *c, int result)
{
    struct hc_xfer *x = c->x;
    struct hc_pool *pool = c->pool;

    uv_timer_stop(&c->timer);
    c->x = NULL;
    x->conn = NULL;
    pool->busy--;
    if (result == HC_OK && c->keep && !c->writing && c->state == C_BUSY) {
        c->state = C_IDLE;
        c->reused = 1;
        c->idle_since = uv_now(pool->loop);
        uv_unref((uv_handle_t *)&c->tcp); /* an idle connection does not keep the loop running */
        list_push_front(&pool->idle, &c->node);
        pool->nidle++;
        if (pool->nidle > (pool->peak > HC_IDLE_MIN ? pool->peak : HC_IDLE_MIN)) {
            struct hc_conn *old = LIST_ENTRY(pool->idle.prev, struct hc_conn, node);
            conn_close(old);
        }
    } else {
        conn_close(c);
    }
    x->done(x, result);
}

/* c's exchange moves to a new connection (to [ai, next...] as conn_open takes them), c is
 * closed; out of memory, the exchange ends with HC_ENOMEM. */
static void reopen(struct hc_conn *c, struct addrinfo *ai, struct addrinfo *next)
{
    struct hc_xfer *x = c->x;
    struct hc_pool *pool = c->pool;
    c->x = NULL;
    x->conn = NULL;
    conn_close(c);
    if (conn_open(pool, x, ai, next) == 0)
        return;
    pool->busy--;
    snprintf(x->err, sizeof(x->err), "out of memory");
    x->done(x, HC_ENOMEM);
}

/* A reused connection closed before a byte of the answer: once, on a new connection. */
static int resend(struct hc_conn *c)
{
    if (!c->reused || c->got || c->x->resent)
        return 0;
    c->x->resent = 1;
    reopen(c, NULL, NULL);
    return 1;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct hc_conn *c = s->data;
    llhttp_errno_t e;

    if (nread == 0)
        return;
    if (!c->x) { /* idle: the server closed it, or sent what nobody asked for */
        conn_close(c);
        return;
    }
    if (nread < 0) {
        if (resend(c))
            return;
        if (nread == UV_EOF && c->got) {
            llhttp_finish(&c->parser); /* a body that ends with the connection */
            if (c->complete) {
                c->keep = 0;
                xfer_finish(c, HC_OK);
                return;
            }
        }
        snprintf(c->x->err, sizeof(c->x->err), "%s",
                 c->got == 0 ? (nread == UV_EOF ? "empty reply from server"
                                                : uv_strerror((int)nread))
                 : "connection closed before the response ended");
        xfer_finish(c, HC_ECONNECT);
        return;
    }
    c->got_before = c->got;
    c->rbase = buf->base;
    c->got += (size_t)nread;
    if (!c->headers_done)
        c->head_bytes += (size_t)nread;
    e = llhttp_execute(&c->parser, buf->base, (size_t)nread);
    if (e == HPE_OK && !c->headers_done && c->head_bytes > HC_MAX_HEAD) {
        snprintf(c->x->err, sizeof(c->x->err), "response head larger than %u bytes",
                 HC_MAX_HEAD);
        xfer_finish(c, HC_EPROTO);
        return;
    }
    if (e == HPE_OK)
        return;
    if (e == HPE_PAUSED && c->complete) {
        if (llhttp_get_error_pos(&c->parser) != buf->base + nread)
            c->keep = 0; /* more than one response: not reused */
        xfer_finish(c, HC_OK);
        return;
    }
    if (!c->fail) {
        c->fail = HC_EPROTO;
        snprintf(c->x->err, sizeof(c->x->err), "bad HTTP response: %s",
                 llhttp_get_error_reason(&c->parser) ? llhttp_get_error_reason(&c->parser)
                                                     : llhttp_errno_name(e));
    }
    xfer_finish(c, c->fail);
}

static void on_written(uv_write_t *w, int status)
{
    struct hc_conn *c = w->data;
    c->writing = 0;
    if (status == 0 || status == UV_ECANCELED || !c->x || c->state != C_BUSY)
        return;
    if (resend(c))
        return;
    snprintf(c->x->err, sizeof(c->x->err), "sending the request: %s", uv_strerror(status));
    xfer_finish(c, HC_ECONNECT);
}

/* Send x's request on c (connected, or idle and taken). Returns 0 or a libuv error. */
static int conn_send(struct hc_conn *c, struct hc_xfer *x)
{
    uv_buf_t bufs[2];
    unsigned n = 1, first = 0;
    uint64_t now = uv_now(c->tcp.loop);
    ssize_t w;
    int rc;

    c->x = x;
    x->conn = c;
    c->state = C_BUSY;
    parser_reset(c);
    bufs[0] = uv_buf_init((char *)x->req.head, (unsigned)x->req.head_len);
    if (x->req.body && x->req.body_len)
        bufs[n++] = uv_buf_init((char *)x->req.body, (unsigned)x->req.body_len);
    /* written at once when the socket takes it all (it nearly always does): a uv_write that
     * completes makes libuv re-register the socket with epoll (uv__drain), a system call a
     * request; what is left (or a failure, which uv_write reports through on_written, where
     * a stale pooled connection's request is sent again) goes the queued way */
    w = uv_try_write((uv_stream_t *)&c->tcp, bufs, n);
    for (unsigned i = 0; w > 0 && i < n; i++) {
        size_t take = (size_t)w < bufs[i].len ? (size_t)w : bufs[i].len;
        bufs[i].base += take;
        bufs[i].len -= take;
        w -= (ssize_t)take;
    }
    while (first < n && bufs[first].len == 0) /* what went whole */
        first++;
    if (first < n) {
        c->wreq.data = c;
        rc = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, bufs + first, n - first, on_written);
        if (rc != 0)
            return rc;
        c->writing = 1;
    }
    uv_timer_start(&c->timer, on_timer, x->deadline > now ? x->deadline - now : 0, 0);
    return 0;
}

static void on_connect(uv_connect_t *req, int status)
{
    struct hc_conn *c = req->data;
    struct hc_xfer *x = c->x;
    int rc;

    if (status == UV_ECANCELED || !x)
        return;
    if (status == 0) {
        uv_tcp_nodelay(&c->tcp, 1);
        uv_tcp_keepalive(&c->tcp, 1, 60);
        rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
        if (rc == 0)
            rc = conn_send(c, x);
        if (rc == 0)
            return;
        status = rc;
    }
    if (c->next_ai) { /* the next address, on a new socket */
        struct addrinfo *ai = c->ai;
        c->ai = NULL; /* the list moves to the new connection */
        reopen(c, ai, c->next_ai);
        return;
    }
    snprintf(x->err, sizeof(x->err), "connecting to %.64s port %d: %s", c->host, c->port,
             uv_strerror(status));
    xfer_finish(c, HC_ECONNECT);
}

/* Connect c to its next address. Returns 0 or a libuv error. */
static int conn_connect(struct hc_conn *c, const struct sockaddr *sa)
{
    c->state = C_CONNECTING;
    c->creq.data = c;
    return uv_tcp_connect(&c->creq, &c->tcp, sa, on_connect);
}

static void on_resolved(uv_getaddrinfo_t *g, int status, struct addrinfo *res)
{
    struct hc_conn *c = g->data;
    struct hc_xfer *x = c->x;
    struct addrinfo *ai;
    int rc;

    c->ai = res;
    if (c->state == C_CLOSING) { /* canceled meanwhile */
        conn_unref(c);
        return;
    }
    c->refs--; /* the handles still hold it */
    if (status != 0 || !res) {
        snprintf(x->err, sizeof(x->err), "resolving %.64s: %s", c->host,
                 uv_strerror(status ? status : UV_EAI_NONAME));
        xfer_finish(c, HC_ECONNECT);
        return;
    }
    ai = res;
    c->next_ai = ai->ai_next;
    rc = conn_connect(c, ai->ai_addr);
    if (rc != 0) {
        snprintf(x->err, sizeof(x->err), "connecting to %.64s port %d: %s", c->host, c->port,
                 uv_strerror(rc));
        xfer_finish(c, HC_ECONNECT);
    }
}

/* A new connection for x: to the first of [ai, next...] when given (ai: the list it came
 * from, owned from now on), else resolved from x's host. Returns 0 or HC_ENOMEM (x not
 * attached; ai freed). Never calls done. */
static int conn_open(struct hc_pool *pool, struct hc_xfer *x, struct addrinfo *ai,
                     struct addrinfo *next)
{
    struct hc_conn *c = calloc(1, sizeof(*c));
    char *host = c ? strdup(x->req.host) : NULL;
    union {
        struct sockaddr_in v4;
        struct sockaddr_in6 v6;
    } sa;
    uint64_t now = uv_now(pool->loop);
    uint64_t left = x->deadline > now ? x->deadline - now : 0;
    int rc;

    if (!host) {
        free(c);
        if (ai)
            uv_freeaddrinfo(ai);
        return HC_ENOMEM;
    }
    c->host = host;
    c->pool = pool;
    c->x = x;
    x->conn = c;
    c->ai = ai;
    c->port = x->req.port;
    list_init(&c->node);
    uv_tcp_init(pool->loop, &c->tcp);
    uv_timer_init(pool->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->refs = 2;
    pool->open++;
    if (left > (uint64_t)x->req.connect_timeout_ms)
        left = (uint64_t)x->req.connect_timeout_ms;
    uv_timer_start(&c->timer, on_timer, left, 0);
    if (next) {
        c->next_ai = next->ai_next;
        rc = conn_connect(c, next->ai_addr);
    } else if (uv_ip4_addr(c->host, c->port, &sa.v4) == 0 ||
               uv_ip6_addr(c->host, c->port, &sa.v6) == 0) {
        rc = conn_connect(c, (const struct sockaddr *)&sa);
    } else {
        struct addrinfo hints;
        char port[8];
        memset(&hints, 0, sizeof(hints));
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        snprintf(port, sizeof(port), "%d", c->port);
        c->state = C_RESOLVING;
        c->gai.data = c;
        rc = uv_getaddrinfo(pool->loop, &c->gai, on_resolved, c->host, port, &hints);
        if (rc == 0)
            c->refs++;
    }
    if (rc != 0) { /* fails on the loop's next turn, through the timer */
        snprintf(x->err, sizeof(x->err), "connecting to %.64s port %d: %s", c->host, c->port,
                 uv_strerror(rc));
        c->state = C_CONNECTING;
        c->fail = HC_ECONNECT;
        uv_timer_start(&c->timer, on_timer, 0, 0);
    }
    return 0;
}

/* The newest idle connection to host:port that may be reused; stale ones are closed. */
static struct hc_conn *take_idle(struct hc_pool *pool, const struct hc_req *req)
{
    struct list_node *it, *tmp;
    uint64_t now = uv_now(pool->loop);

    LIST_FOR_EACH_SAFE(it, tmp, &pool->idle) {
        struct hc_conn *c = LIST_ENTRY(it, struct hc_conn, node);
        if (c->port != req->port || strcmp(c->host, req->host) != 0)
            continue;
        if (now - c->idle_since > HC_IDLE_MAX_MS) {
            conn_close(c);
            continue;
        }
        list_unlink(&c->node);
        pool->nidle--;
        uv_ref((uv_handle_t *)&c->tcp);
        return c;
    }
    return NULL;
}

/* --- public --- */

int hc_pool_new(uv_loop_t *loop, struct hc_pool **out)
{
    struct hc_pool *pool = calloc(1, sizeof(*pool));
    struct sigaction sa;
    if (!pool)
        return HC_ENOMEM;
    /* libuv writes with write(2), which raises SIGPIPE on a connection the server reset: it
     * must fail with EPIPE (and the request be sent again or fail) rather than kill the
     * process. A disposition the program chose itself is left alone. */
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
        signal(SIGPIPE, SIG_IGN);
    if (!parser_settings.on_message_complete) {
        llhttp_settings_init(&parser_settings);
        parser_settings.on_status = on_status;
        parser_settings.on_status_complete = on_status_complete;
        parser_settings.on_header_field = on_header_field;
        parser_settings.on_header_value = on_header_value;
        parser_settings.on_header_value_complete = on_header_value_complete;
        parser_settings.on_headers_complete = on_headers_complete;
        parser_settings.on_body = on_body;
        parser_settings.on_message_complete = on_message_complete;
    }
    pool->loop = loop;
    list_init(&pool->idle);
    *out = pool;
    return 0;
}

void hc_pool_close(struct hc_pool *pool)
{
    struct list_node *first;
    if (!pool)
        return;
    while ((first = list_first(&pool->idle)) != NULL)
        conn_close(LIST_ENTRY(first, struct hc_conn, node));
    free(pool);
}

unsigned hc_pool_open(const struct hc_pool *pool) { return pool->open; }

int hc_start(struct hc_pool *pool, struct hc_xfer *x, const struct hc_req *req,
             hc_done_cb done)
{
    struct hc_conn *c;

    x->pool = pool;
    x->req = *req;
    x->done = done;
    x->status = 0;
    x->err[0] = '\0';
    x->resent = 0;
    x->conn = NULL;
    x->started = uv_now(pool->loop);
    x->deadline = x->started + (uint64_t)(req->timeout_ms > 0 ? req->timeout_ms : 1);
    pool->busy++;
    if (pool->busy > pool->peak)
        pool->peak = pool->busy;
    while ((c = take_idle(pool, req)) != NULL) {
        if (conn_send(c, x) == 0)
            return 0;
        c->x = NULL; /* its socket is gone: the next one, or a new connection */
        x->conn = NULL;
        conn_close(c);
    }
    if (conn_open(pool, x, NULL, NULL) == 0)
        return 0;
    pool->busy--;
    return HC_ENOMEM;
}

void hc_cancel(struct hc_xfer *x)
{
    struct hc_conn *c = x->conn;
    if (!c)
        return;
    x->pool->busy--;
    c->x = NULL;
    x->conn = NULL;
    conn_close(c);
}
