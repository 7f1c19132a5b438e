/* http.c - HTTP/1.1 server on libuv + llhttp: connections, limits, timeouts, responses. */
#include "http.h"

#include <cjson/cJSON.h>
#include <llhttp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "jsonx.h"
#include "list.h"
#include "log.h"

#define READ_BUF_SIZE    65536
#define STASH_CAP        65536        /* pipelined bytes held while a request is in flight */
#define MAX_RESP_HEADERS 32
#define LINGER_MS        2000         /* after a final response: wait this long for the EOF */
#define ARENA_BLOCK      4096
#define ARENA_ALIGN      16
#define STREAM_QUEUE_MAX ((size_t)8 << 20) /* unsent streamed bytes before we give up */
#define REQ_ID_MAX       64
#define LISTEN_BACKLOG   511
#define PROBE_HEAD_MS    2000         /* a connection on the probe reserve sends its head by then */

/* Where a connection is in its request cycle; the one timer means something per phase. */
enum phase {
    PH_IDLE,    /* no byte of the next request yet (fresh: header timeout; else idle) */
    PH_HEAD,    /* request line and headers arriving (header timeout -> 408) */
    PH_BODY,    /* body arriving (body timeout -> 408) */
    PH_HANDLER, /* the handler (or the server, for an error) owns the request; no timer */
    PH_FLUSH,   /* response complete, writes draining (idle timeout as send timeout) */
    PH_LINGER   /* final response sent and write side shut down; discarding until EOF */
};

enum req_state { RQ_PARSING, RQ_HANDLER, RQ_STREAMING, RQ_DONE };

struct arena_block {
    struct arena_block *next;
    size_t used, cap;
};

struct hdr {
    const char *name, *value;
};

/* A growable byte buffer, always NUL-terminated when non-empty. */
struct buf {
    char *p;
    size_t len, cap;
};

struct http_req {
    struct conn *conn;
    struct arena_block *arena;
    enum req_state state;
    const char *method, *path, *query, *id;
    struct hdr *headers;
    size_t nheaders;
    struct buf body;
    struct hdr resp[MAX_RESP_HEADERS];
    size_t nresp;
    void (*abort_cb)(struct http_req *r, void *data);
    void *abort_data;
    uint64_t t0;              /* uv_hrtime at the request's first byte */
    int status;               /* sent (0: nothing yet) */
    size_t bytes;             /* body bytes sent */
    unsigned is_head : 1, chunked : 1;
};

struct conn {
    struct http_server *srv;
    struct list_node node;    /* the server's connections */
    struct list_node idle_node; /* the server's idle connections, idle longest first */
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_shutdown_t shut;
    llhttp_t parser;
    enum phase phase;
    struct http_req *req;
    struct buf scratch;       /* URL and header bytes of the request being parsed */
    struct buf stash;         /* bytes that follow the request in flight: [stash_off, len) */
    size_t stash_off;
    size_t head_bytes, url_len, nheaders, trailer_bytes;
    int fail_status;          /* set by a parser callback that rejects the request */
    char ver[4];              /* the request line's version ("1.1"), as sent */
    size_t ver_len;
    const char *fail_code, *fail_msg;
    unsigned writes;          /* uv_write requests in flight */
    int handles;              /* open libuv handles (tcp, timer) */
    unsigned closing : 1, reading : 1, in_field : 1, keep_alive : 1, keep : 1,
        close_after : 1, rejected : 1, dispatch : 1, peer_eof : 1, http10 : 1,
        probe_only : 1;       /* past the caps: only a probe path is answered (on the reserve) */
    char peer[64];
    unsigned char addr[16];   /* the peer's IP address (4 or 16 bytes), for its cap */
    size_t addr_len;
};

struct http_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_timer_t guard;         /* never started; closing it makes close always asynchronous */
    struct http_limits lim;
    http_handler_fn handler;
    void *data;
    llhttp_settings_t settings;
    http_complete_fn on_complete;
    void *complete_data;
    struct list_node conns;
    struct list_node idle;    /* connections with no request in progress, idle longest first */
    unsigned nconns;          /* open, counted against max_conns */
    unsigned nprobe;          /* open past the caps on the probe reserve */
    unsigned nalive;          /* connection structs not yet freed */
    int handles;              /* listener + guard still open */
    unsigned listening : 1, draining : 1, closing : 1;
    void (*close_cb)(void *data);
    void *close_data;
    uint64_t rng;
    int port;
    char rbuf[READ_BUF_SIZE]; /* shared: every read is consumed inside its callback */
};

struct wreq {
    uv_write_t req;           /* first: the write callback casts back */
    struct conn *c;
    char data[];
};

static void conn_close(struct conn *c);
static void conn_linger(struct conn *c);
static void conn_fail(struct conn *c, int status, const char *code, const char *msg);
static void conn_update_reading(struct conn *c);
static void conn_parse(struct conn *c, const char *data, size_t len);
static void conn_parse_stash(struct conn *c);

/* ---------------------------------------------------------------- small helpers --- */

static size_t align_up(size_t n)
{
    return (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
}

static void *arena_alloc(struct arena_block **head, size_t n)
{
    size_t hdr = align_up(sizeof(struct arena_block));
    struct arena_block *b = *head;
    void *p;

    if (n > SIZE_MAX / 2)
        return NULL;
    n = align_up(n ? n : 1);
    if (!b || b->cap - b->used < n) {
        size_t cap = n > ARENA_BLOCK ? n : ARENA_BLOCK;
        b = malloc(hdr + cap);
        if (!b)
            return NULL;
        b->next = *head;
        b->used = 0;
        b->cap = cap;
        *head = b;
    }
    p = (char *)b + hdr + b->used;
    b->used += n;
    return p;
}

static void arena_free(struct arena_block *b)
{
    while (b) {
        struct arena_block *next = b->next;
        free(b);
        b = next;
    }
}

static int buf_append(struct buf *b, const void *p, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        char *np;
        while (cap < b->len + n + 1)
            cap *= 2;
        np = realloc(b->p, cap);
        if (!np)
            return -1;
        b->p = np;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

static size_t stash_held(const struct conn *c)
{
    return c->stash.len - c->stash_off;
}

static void stash_drop(struct conn *c)
{
    c->stash.len = 0;
    c->stash_off = 0;
}

/* Hold bytes for later; the consumed front is dropped first (at most one move per read). */
static int stash_add(struct conn *c, const char *p, size_t n)
{
    if (c->stash_off > 0) {
        memmove(c->stash.p, c->stash.p + c->stash_off, stash_held(c));
        c->stash.len -= c->stash_off;
        c->stash_off = 0;
    }
    return buf_append(&c->stash, p, n);
}

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static int has_crlf(const char *s)
{
    return strpbrk(s, "\r\n") != NULL;
}

/* ------------------------------------------------------------- the request --- */

static struct http_req *req_new(struct conn *c)
{
    struct http_req *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->conn = c;
    r->state = RQ_PARSING;
    r->t0 = uv_hrtime();
    r->method = "";
    r->path = "";
    r->query = "";
    return r;
}

double http_req_elapsed_ms(const struct http_req *r)
{
    return (double)(uv_hrtime() - r->t0) / 1e6;
}

/* The request is over (done or its connection dead): tell the completion hook, once. */
static void req_report(struct http_server *s, struct http_req *r)
{
    int status = r->status;

    if (!s->on_complete || (status == 0 && r->state == RQ_PARSING))
        return;
    if (status == 0)
        status = 499; /* the client left before any response */
    s->on_complete(r, status, r->bytes, s->complete_data);
}

static void req_free(struct http_req *r)
{
    free(r->body.p);
    arena_free(r->arena);
    free(r);
}

static const char *req_gen_id(struct http_req *r)
{
    char *id = http_req_alloc(r, 4 + 16 + 1);
    uint64_t v = rng_next(&r->conn->srv->rng);
    if (!id)
        return "req_0000000000000000";
    snprintf(id, 4 + 16 + 1, "req_%016llx", (unsigned long long)v);
    return id;
}

static int req_id_ok(const char *v)
{
    size_t n = 0;
    if (!v || !*v)
        return 0;
    for (; v[n]; n++) {
        if (n >= REQ_ID_MAX || v[n] < 0x21 || v[n] > 0x7e)
            return 0;
    }
    return 1;
}

static void trim_right(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = '\0';
}

/* Build method/path/query/headers/id from the scratch buffer ("url\0name\0value\0..."). */
static int req_finish_head(struct conn *c)
{
    struct http_req *r = c->req;
    size_t n = c->scratch.len, i;
    char *s = http_req_alloc(r, n + 1), *end, *cur, *q;

    if (!s)
        return -1;
    if (n)
        memcpy(s, c->scratch.p, n);
    s[n] = '\0';
    end = s + n;
    r->headers = http_req_alloc(r, (c->nheaders ? c->nheaders : 1) * sizeof *r->headers);
    if (!r->headers)
        return -1;
    cur = s + strlen(s) + 1;
    for (i = 0; i < c->nheaders && cur < end; i++) {
        r->headers[i].name = cur;
        cur += strlen(cur) + 1;
        r->headers[i].value = cur < end ? cur : "";
        if (cur < end) {
            size_t vlen = strlen(cur);  /* before trimming: the next name follows it */
            trim_right(cur);
            cur += vlen + 1;
        }
    }
    r->nheaders = i;
    q = strchr(s, '?');
    if (q) {
        *q = '\0';
        r->query = q + 1;
    }
    r->path = s;
    r->method = llhttp_method_name((llhttp_method_t)c->parser.method);
    r->is_head = c->parser.method == HTTP_HEAD;
    c->http10 = c->parser.http_major < 1 || (c->parser.http_major == 1 && c->parser.http_minor == 0);
    r->id = http_req_header(r, "X-Request-Id");
    if (!req_id_ok(r->id))
        r->id = req_gen_id(r);
    return 0;
}

const char *http_req_method(const struct http_req *r) { return r->method; }
const char *http_req_path(const struct http_req *r) { return r->path; }
const char *http_req_query(const struct http_req *r) { return r->query; }
const char *http_req_peer(const struct http_req *r) { return r->conn->peer; }

const char *http_req_id(const struct http_req *r)
{
    return r->id ? r->id : "";
}

const char *http_req_header(const struct http_req *r, const char *name)
{
    size_t i;
    for (i = 0; i < r->nheaders; i++) {
        if (strcasecmp(r->headers[i].name, name) == 0)
            return r->headers[i].value;
    }
    return NULL;
}

int http_req_header_at(const struct http_req *r, size_t i, const char **name,
                       const char **value)
{
    if (i >= r->nheaders)
        return -1;
    *name = r->headers[i].name;
    *value = r->headers[i].value;
    return 0;
}

const char *http_req_body(const struct http_req *r, size_t *len)
{
    if (len)
        *len = r->body.len;
    return r->body.p ? r->body.p : "";
}

void *http_req_alloc(struct http_req *r, size_t n)
{
    return arena_alloc(&r->arena, n);
}

char *http_req_strdup(struct http_req *r, const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = http_req_alloc(r, n);
    if (d)
        memcpy(d, s, n);
    return d;
}

void http_req_on_abort(struct http_req *r, void (*cb)(struct http_req *r, void *data), void *data)
{
    r->abort_cb = cb;
    r->abort_data = data;
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Percent-decode s[0..n) into the arena; '+' is a space; a bad or NUL escape stays as is. */
static char *pct_decode(struct http_req *r, const char *s, size_t n)
{
    char *out = http_req_alloc(r, n + 1), *o = out;
    size_t i;
    if (!out)
        return NULL;
    for (i = 0; i < n; i++) {
        int hi = -1, lo = -1;
        if (s[i] == '%' && i + 2 < n) {
            hi = hexval(s[i + 1]);
            lo = hexval(s[i + 2]);
        }
        if (hi >= 0 && lo >= 0 && (hi | lo) != 0) {
            *o++ = (char)(hi * 16 + lo);
            i += 2;
        } else {
            *o++ = s[i] == '+' ? ' ' : s[i];
        }
    }
    *o = '\0';
    return out;
}

const char *http_req_query_param(struct http_req *r, const char *name)
{
    const char *q = r->query;
    while (q && *q) {
        const char *end = strchr(q, '&'), *eq;
        char *key;
        if (!end)
            end = q + strlen(q);
        eq = memchr(q, '=', (size_t)(end - q));
        key = pct_decode(r, q, (size_t)((eq ? eq : end) - q));
        if (key && strcmp(key, name) == 0)
            return eq ? pct_decode(r, eq + 1, (size_t)(end - eq - 1)) : pct_decode(r, end, 0);
        q = *end ? end + 1 : end;
    }
    return NULL;
}

/* ------------------------------------------------------- status texts, types --- */

const char *http_status_text(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

const char *http_error_type(int status)
{
    if (status == 401 || status == 403)
        return "authentication_error";
    if (status == 429)
        return "rate_limit_error";
    if (status >= 500)
        return "server_error";
    return "invalid_request_error";
}

/* ---------------------------------------------------------------- writing --- */

static void conn_on_write(uv_write_t *req, int status);

static struct wreq *wreq_new(struct conn *c, size_t cap)
{
    struct wreq *w = malloc(sizeof *w + cap);
    if (w)
        w->c = c;
    return w;
}

/* Send w->data[0..len): written at once when nothing is queued before it and the socket
 * takes it (uv_try_write: no write request, so libuv makes no epoll change for it), else
 * what is left is queued; w is freed once its bytes are written. On failure w is freed and
 * the connection closed. */
static int conn_submit(struct conn *c, struct wreq *w, size_t len)
{
    size_t off = 0;
    uv_buf_t b;
    int rc;
    if (c->writes == 0) {
        b = uv_buf_init(w->data, (unsigned)len);
        rc = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        if (rc < 0 && rc != UV_EAGAIN) {
            free(w);
            conn_close(c);
            return -1;
        }
        off = rc > 0 ? (size_t)rc : 0;
        if (off == len) {
            free(w);
            return 0;
        }
    }
    b = uv_buf_init(w->data + off, (unsigned)(len - off));
    rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, conn_on_write);
    if (rc < 0) {
        free(w);
        conn_close(c);
        return -1;
    }
    c->writes++;
    return 0;
}

static int conn_write_raw(struct conn *c, const char *data, size_t len)
{
    struct wreq *w = wreq_new(c, len);
    if (!w) {
        conn_close(c);
        return -1;
    }
    memcpy(w->data, data, len);
    return conn_submit(c, w, len);
}

struct out {
    char *p;
    size_t cap, len;
};

/* Appends within o's bound (head_bound sized it); no printf: a response's head is built
 * for every request. */
static void out_add(struct out *o, const char *s, size_t n)
{
    if (n > o->cap - o->len - 1)
        n = o->cap - o->len - 1;
    memcpy(o->p + o->len, s, n);
    o->len += n;
    o->p[o->len] = '\0';
}

static void out_str(struct out *o, const char *s) { out_add(o, s, strlen(s)); }

static void out_date(struct out *o)
{
    char d[CLOCK_HTTP_DATE_LEN + 1];
    if (clock_http_date((int64_t)time(NULL), d) != 0)
        return;
    out_str(o, "Date: ");
    out_add(o, d, CLOCK_HTTP_DATE_LEN);
    out_str(o, "\r\n");
}

static size_t head_bound(const struct http_req *r, const char *ctype, const char *framing)
{
    size_t n = 512 + strlen(http_req_id(r)) + strlen(framing) + (ctype ? strlen(ctype) : 0);
    size_t i;
    for (i = 0; i < r->nresp; i++)
        n += strlen(r->resp[i].name) + strlen(r->resp[i].value) + 4;
    return n;
}

static void head_format(struct out *o, const struct http_req *r, int status, const char *ctype,
                        const char *framing, int keep)
{
    size_t i;
    char num[24];
    out_str(o, "HTTP/1.1 ");
    out_add(o, num, jsonx_int(status, num));
    out_str(o, " ");
    out_str(o, http_status_text(status));
    out_str(o, "\r\n");
    out_date(o);
    if (ctype) {
        out_str(o, "Content-Type: ");
        out_str(o, ctype);
        out_str(o, "\r\n");
    }
    out_str(o, framing);
    out_str(o, "X-Request-Id: ");
    out_str(o, http_req_id(r));
    out_str(o, keep ? "\r\nConnection: keep-alive\r\n" : "\r\nConnection: close\r\n");
    for (i = 0; i < r->nresp; i++) {
        out_str(o, r->resp[i].name);
        out_str(o, ": ");
        out_str(o, r->resp[i].value);
        out_str(o, "\r\n");
    }
    out_str(o, "\r\n");
}

/* Write status line + headers (+ body) in one buffer; decides keep-alive for the response. */
static int conn_send_head(struct conn *c, struct http_req *r, int status, const char *ctype,
                          const char *framing, const char *body, size_t blen)
{
    struct out o;
    struct wreq *w;

    if (!r->id)
        r->id = req_gen_id(r);
    r->status = status;
    c->keep = c->keep_alive && !c->close_after && !c->srv->draining &&
              !(c->peer_eof && stash_held(c) == 0);  /* half-closed, nothing more to do */
    o.cap = head_bound(r, ctype, framing);
    o.len = 0;
    w = wreq_new(c, o.cap + blen);
    if (!w) {
        conn_close(c);
        return -1;
    }
    o.p = w->data;
    head_format(&o, r, status, ctype, framing, c->keep);
    if (blen)
        memcpy(w->data + o.len, body, blen);
    return conn_submit(c, w, o.len + blen);
}

static void conn_timer(struct conn *c, uint64_t ms);
static void conn_on_timer(uv_timer_t *t);

/* The response is complete: wait for the writes to drain, then finish the request
 * (never synchronously: with nothing left to write, the timer finishes it next tick). */
static void conn_response_complete(struct conn *c)
{
    if (c->closing)
        return;
    c->phase = PH_FLUSH;
    if (c->writes == 0)
        uv_timer_start(&c->timer, conn_on_timer, 0, 0);
    else
        conn_timer(c, c->srv->lim.idle_timeout_ms);
}

/* A response may start only once, from the handler (or from the server for its errors). */
static int resp_may_start(struct http_req *r)
{
    if (r->state == RQ_HANDLER || r->state == RQ_PARSING)
        return 1;
    log_error("http: %s %s: response already started", r->method, r->path);
    return 0;
}

void http_resp_header(struct http_req *r, const char *name, const char *value)
{
    if (!resp_may_start(r) || r->nresp >= MAX_RESP_HEADERS || !*name)
        return;
    if (has_crlf(name) || has_crlf(value) || strchr(name, ':'))
        return;
    r->resp[r->nresp].name = http_req_strdup(r, name);
    r->resp[r->nresp].value = http_req_strdup(r, value);
    if (r->resp[r->nresp].name && r->resp[r->nresp].value)
        r->nresp++;
}

void http_respond(struct http_req *r, int status, const char *content_type, const char *body,
                  size_t len)
{
    struct conn *c = r->conn;
    char framing[64] = "";
    int bodyless = status < 200 || status == 204 || status == 304;

    if (!resp_may_start(r))
        return;
    r->state = RQ_DONE;
    if (c->closing)
        return;
    if (!bodyless)
        snprintf(framing, sizeof framing, "Content-Length: %zu\r\n", len);
    if (bodyless || r->is_head)
        len = 0;
    r->bytes = len;
    if (conn_send_head(c, r, status, bodyless ? NULL : content_type, framing, body, len) == 0)
        conn_response_complete(c);
}

void http_respond_json(struct http_req *r, int status, const struct cJSON *body)
{
    static const char oom[] = "{\"error\":{\"type\":\"server_error\",\"code\":\"out_of_memory\","
                              "\"message\":\"out of memory\",\"param\":null}}";
    char *s = jsonx_print(body);
    if (!s) {
        http_respond(r, 500, "application/json", oom, sizeof oom - 1);
        return;
    }
    http_respond(r, status, "application/json", s, strlen(s));
    free(s);
}

static cJSON *error_envelope(int status, const char *code, const char *param, const char *msg)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(root, "error");
    int ok = e != NULL;

    ok = ok && cJSON_AddStringToObject(e, "type", http_error_type(status));
    ok = ok && cJSON_AddStringToObject(e, "code", code ? code : "error");
    ok = ok && cJSON_AddStringToObject(e, "message", msg);
    if (ok && param)
        ok = cJSON_AddStringToObject(e, "param", param) != NULL;
    else if (ok)
        ok = cJSON_AddNullToObject(e, "param") != NULL;
    if (!ok) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

void http_respond_error(struct http_req *r, int status, const char *code, const char *param,
                        const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    cJSON *env;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    env = error_envelope(status, code, param, msg);
    http_respond_json(r, status, env);  /* NULL env -> the 500 out-of-memory body */
    cJSON_Delete(env);
}

static int resp_has_header(const struct http_req *r, const char *name)
{
    for (size_t i = 0; i < r->nresp; i++)
        if (strcasecmp(r->resp[i].name, name) == 0)
            return 1;
    return 0;
}

void http_stream_begin(struct http_req *r, int status, const char *content_type)
{
    struct conn *c = r->conn;
    const char *framing;

    if (!resp_may_start(r))
        return;
    r->state = RQ_STREAMING;
    if (c->closing)
        return;
    r->chunked = !c->http10;
    if (!r->chunked)
        c->keep_alive = 0;  /* HTTP/1.0: no chunked coding, the close ends the body */
    if (r->is_head)
        c->close_after = 1; /* HEAD: the head is the whole response; the close ends it */
    framing = r->chunked ? "Transfer-Encoding: chunked\r\n" : "";
    if (!resp_has_header(r, "Cache-Control"))
        framing = r->chunked ? "Transfer-Encoding: chunked\r\nCache-Control: no-cache\r\n"
                             : "Cache-Control: no-cache\r\n";
    if (conn_send_head(c, r, status, content_type, framing, NULL, 0) == 0 && r->is_head)
        conn_linger(c);     /* the handler sees the client leave (abort) when it closes */
}

int http_stream_write(struct http_req *r, const char *data, size_t len)
{
    struct conn *c = r->conn;
    struct wreq *w;
    size_t n = 0;

    if (r->state != RQ_STREAMING || c->closing)
        return -1;
    if (len == 0 || r->is_head)
        return 0;
    if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) > STREAM_QUEUE_MAX) {
        conn_close(c);  /* the client does not read: give up rather than buffer forever */
        return -1;
    }
    w = wreq_new(c, len + 32);
    if (!w) {
        conn_close(c);
        return -1;
    }
    if (r->chunked)
        n = (size_t)snprintf(w->data, 32, "%zx\r\n", len);
    memcpy(w->data + n, data, len);
    n += len;
    if (r->chunked) {
        memcpy(w->data + n, "\r\n", 2);
        n += 2;
    }
    r->bytes += len;
    return conn_submit(c, w, n);
}

void http_stream_end(struct http_req *r)
{
    struct conn *c = r->conn;

    if (r->state != RQ_STREAMING)
        return;
    r->state = RQ_DONE;
    if (c->closing || c->phase == PH_LINGER)
        return;             /* gone, or a HEAD whose response ended with its head */
    if (r->chunked && !r->is_head && conn_write_raw(c, "0\r\n\r\n", 5) < 0)
        return;
    conn_response_complete(c);
}

/* ------------------------------------------------------------ connections --- */

/* After http_server_close(): free the server once its handles and connections are gone. */
static void srv_maybe_done(struct http_server *s)
{
    void (*cb)(void *);
    void *data;

    if (!s->closing || s->handles > 0 || s->nalive > 0)
        return;
    cb = s->close_cb;
    data = s->close_data;
    free(s);
    if (cb)
        cb(data);
}

static void conn_timer(struct conn *c, uint64_t ms)
{
    if (ms == 0)
        uv_timer_stop(&c->timer);
    else
        uv_timer_start(&c->timer, conn_on_timer, ms, 0);
}

static void conn_free(struct conn *c)
{
    struct http_server *s = c->srv;
    struct http_req *r = c->req;

    if (r && (r->state == RQ_HANDLER || r->state == RQ_STREAMING) && r->abort_cb)
        r->abort_cb(r, r->abort_data);
    if (r) {
        req_report(s, r);
        req_free(r);
    }
    list_unlink(&c->node);
    list_unlink(&c->idle_node);
    free(c->scratch.p);
    free(c->stash.p);
    free(c);
    s->nalive--;
    srv_maybe_done(s);
}

static void conn_on_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    if (--c->handles > 0)
        return;
    conn_free(c);
}

/* Start closing; the struct (and a pending request, after its abort callback) is freed in
 * the last close callback, never here. */
static void conn_close(struct conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    c->reading = 0;  /* uv_close stops reading */
    list_unlink(&c->idle_node);
    if (!c->rejected)
        c->srv->nconns--;
    if (c->probe_only)
        c->srv->nprobe--;
    uv_close((uv_handle_t *)&c->timer, conn_on_closed);
    uv_close((uv_handle_t *)&c->tcp, conn_on_closed);
}

static void conn_on_shutdown(uv_shutdown_t *req, int status)
{
    struct conn *c = req->data;
    if ((status < 0 || c->peer_eof) && !c->closing)
        conn_close(c);  /* failed, or the peer has already sent its EOF: nothing to wait for */
}

/* After a final response: send FIN, keep reading (and discarding) until the peer's EOF so
 * that its unread request bytes do not turn our close into a reset that eats the response. */
static void conn_linger(struct conn *c)
{
    c->phase = PH_LINGER;
    stash_drop(c);
    c->shut.data = c;
    if (uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, conn_on_shutdown) < 0) {
        conn_close(c);
        return;
    }
    conn_timer(c, LINGER_MS);
    conn_update_reading(c);
}


/* No request in progress: the connection joins the idle list, at the back (a newcomer past
 * a connection cap closes the one at the front). */
static void conn_set_idle(struct conn *c)
{
    c->phase = PH_IDLE;
    list_unlink(&c->idle_node);
    list_push_back(&c->srv->idle, &c->idle_node);
}

/* The response is written: free the request; on keep-alive parse what was held back. */
static void conn_response_done(struct conn *c)
{
    req_report(c->srv, c->req);
    req_free(c->req);
    c->req = NULL;
    if (c->peer_eof && (!c->keep || stash_held(c) == 0)) {
        conn_close(c);  /* half-closed peer: serve what it pipelined, then close */
        return;
    }
    if (!c->keep) {
        conn_linger(c);
        return;
    }
    conn_set_idle(c);
    conn_timer(c, c->srv->lim.idle_timeout_ms);
    llhttp_resume(&c->parser);
    if (stash_held(c))
        conn_parse_stash(c);
    if (c->peer_eof && !c->closing && c->phase <= PH_BODY) {
        conn_close(c);  /* half-closed, and what it pipelined last is incomplete */
        return;
    }
    conn_update_reading(c);
}

static void conn_on_write(uv_write_t *req, int status)
{
    struct wreq *w = (struct wreq *)req;
    struct conn *c = w->c;

    free(w);
    c->writes--;
    if (c->closing)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (c->writes == 0 && c->phase == PH_FLUSH)
        conn_response_done(c);
}

static void conn_on_timer(uv_timer_t *t)
{
    struct conn *c = t->data;

    switch (c->phase) {
    case PH_HEAD:
    case PH_BODY:
        if (c->probe_only)  /* past the caps and no probe in time: what it would have got */
            conn_fail(c, 503, "too_many_connections", "too many connections; retry later");
        else
            conn_fail(c, 408, "request_timeout", "request not received in time");
        break;
    case PH_FLUSH:
        if (c->writes == 0)
            conn_response_done(c);
        else
            conn_close(c);  /* the client does not read its response */
        break;
    default:
        conn_close(c);      /* idle keep-alive, never-used connection, or linger over */
        break;
    }
}

/* The server answers on its own (400/408/413/414/431/503) and closes afterwards. */
static void conn_fail(struct conn *c, int status, const char *code, const char *msg)
{
    struct http_req *r = c->req;

    c->close_after = 1;
    stash_drop(c);
    uv_timer_stop(&c->timer);
    if (!r || r->state != RQ_PARSING) {
        conn_close(c);
        return;
    }
    r->state = RQ_HANDLER;
    c->phase = PH_HANDLER;
    http_respond_error(r, status, code, NULL, "%s", msg);
    conn_update_reading(c);
}

static void srv_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    struct conn *c = h->data;
    (void)hint;
    *b = uv_buf_init(c->srv->rbuf, sizeof c->srv->rbuf);
}

static void conn_on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b);

static void conn_update_reading(struct conn *c)
{
    int want = !c->closing && !c->peer_eof &&
               (c->phase < PH_HANDLER || c->phase == PH_LINGER || c->close_after ||
                stash_held(c) < STASH_CAP);

    if (want && !c->reading) {
        if (uv_read_start((uv_stream_t *)&c->tcp, srv_alloc, conn_on_read) < 0) {
            conn_close(c);
            return;
        }
        c->reading = 1;
    } else if (!want && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    }
}

/* The client's EOF (FIN) after a complete request is a half-close: that request (and any
 * complete one it pipelined) is answered, then the connection closes. A reset, or an EOF
 * while no complete request is in hand (between requests, or mid-head, mid-body), means
 * the client is gone. */
static void conn_on_eof(struct conn *c, ssize_t err)
{
    int answering = c->phase == PH_FLUSH ||
                    (c->phase == PH_HANDLER && !c->srv->lim.abort_on_eof);

    c->reading = 0;  /* libuv stops reading at EOF and on errors */
    if (err == UV_EOF && answering) {
        c->peer_eof = 1;
        return;
    }
    conn_close(c);   /* a pending request is aborted in the close callback */
}

static void conn_on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b)
{
    struct conn *c = st->data;

    if (nread < 0) {
        conn_on_eof(c, nread);
        return;
    }
    if (nread == 0 || c->closing || c->phase == PH_LINGER || c->close_after)
        return;
    if (c->phase >= PH_HANDLER) {
        if (stash_add(c, b->base, (size_t)nread) < 0)
            conn_close(c);
        else
            conn_update_reading(c);
        return;
    }
    conn_parse(c, b->base, (size_t)nread);
}

/* -------------------------------------------------------------- the parser --- */

static int set_fail(llhttp_t *p, int status, const char *code, const char *msg)
{
    struct conn *c = p->data;
    c->fail_status = status;
    c->fail_code = code;
    c->fail_msg = msg;
    llhttp_set_error_reason(p, msg);
    return HPE_USER;
}

static int scratch_add(llhttp_t *p, const char *at, size_t n)
{
    struct conn *c = p->data;
    if (buf_append(&c->scratch, at, n) < 0)
        return set_fail(p, 500, "out_of_memory", "out of memory");
    return 0;
}

/* Trailer fields of a chunked body are not kept; they count against max_body. */
static int count_trailer(llhttp_t *p, size_t n)
{
    struct conn *c = p->data;
    c->trailer_bytes += n;
    if (c->req->body.len + c->trailer_bytes > c->srv->lim.max_body)
        return set_fail(p, 413, "body_too_large", "request body is too large");
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t n)
{
    struct conn *c = p->data;
    c->url_len += n;
    if (c->url_len > c->srv->lim.max_url)
        return set_fail(p, 414, "url_too_long", "request URL is too long");
    return scratch_add(p, at, n);
}

/* The version as sent ("1.1"), kept for the 505 of a version llhttp refuses (3.0). */
static int on_version(llhttp_t *p, const char *at, size_t n)
{
    struct conn *c = p->data;
    while (n-- > 0 && c->ver_len < sizeof c->ver - 1)
        c->ver[c->ver_len++] = *at++;
    c->ver[c->ver_len] = '\0';
    return 0;
}

/* HTTP/1.x only: 2.0 (an h2 preface too) and 0.9 get 505. */
static int on_version_complete(llhttp_t *p)
{
    if (p->http_major != 1)
        return set_fail(p, 505, "http_version_not_supported",
                        "HTTP version not supported; use HTTP/1.1");
    return 0;
}

/* A version llhttp refused: 505 when it has the shape D.D with a major other than 1. */
static int version_unsupported(const struct conn *c)
{
    return c->ver_len == 3 && c->ver[0] >= '0' && c->ver[0] <= '9' && c->ver[0] != '1' &&
           c->ver[1] == '.' && c->ver[2] >= '0' && c->ver[2] <= '9';
}

static int on_url_complete(llhttp_t *p)
{
    return scratch_add(p, "", 1) == 0 ? 0 : -1;
}

static int on_header_field(llhttp_t *p, const char *at, size_t n)
{
    struct conn *c = p->data;
    if (c->phase != PH_HEAD)
        return count_trailer(p, n);
    if (!c->in_field) {
        if (c->nheaders >= c->srv->lim.max_headers)
            return set_fail(p, 431, "headers_too_large", "too many header fields");
        c->nheaders++;
        c->in_field = 1;
    }
    return scratch_add(p, at, n);
}

static int on_header_field_complete(llhttp_t *p)
{
    struct conn *c = p->data;
    if (c->phase != PH_HEAD)
        return 0;
    c->in_field = 0;
    return scratch_add(p, "", 1) == 0 ? 0 : -1;
}

static int on_header_value(llhttp_t *p, const char *at, size_t n)
{
    struct conn *c = p->data;
    if (c->phase != PH_HEAD)
        return count_trailer(p, n);
    return scratch_add(p, at, n);
}

static int on_header_value_complete(llhttp_t *p)
{
    struct conn *c = p->data;
    if (c->phase != PH_HEAD)
        return 0;
    return scratch_add(p, "", 1) == 0 ? 0 : -1;
}

/* Transfer-Encoding (every such field, in order): 0 when absent or exactly "chunked"; 501
 * when it ends with chunked after a coding the server does not implement (gzip, chunked);
 * 400 when chunked is not the last coding (the body length is unknown) or the request is
 * HTTP/1.0 (which has no transfer codings). */
static int te_status(const struct http_req *r, int http10)
{
    int n = 0, other = 0, last_chunked = 0;

    for (size_t i = 0; i < r->nheaders; i++) {
        const char *v = r->headers[i].value;
        if (strcasecmp(r->headers[i].name, "Transfer-Encoding") != 0)
            continue;
        for (;;) {
            size_t len, tl;
            v += strspn(v, " \t,");
            if (!*v)
                break;
            len = strcspn(v, ",");
            for (tl = len; tl > 0 && (v[tl - 1] == ' ' || v[tl - 1] == '\t'); tl--)
                ;
            last_chunked = tl == 7 && strncasecmp(v, "chunked", 7) == 0;
            other += !last_chunked;
            n++;
            v += len;
        }
    }
    if (n == 0)
        return 0;
    if (http10 || !last_chunked)
        return 400;
    return other ? 501 : 0;
}

static int expects_continue(const struct conn *c)
{
    const char *e = http_req_header(c->req, "Expect");
    return e && strcasecmp(e, "100-continue") == 0 && !c->http10;
}

static int is_probe_path(const struct http_server *s, const char *path)
{
    for (const char *const *pp = s->lim.probe_paths; pp && *pp; pp++)
        if (strcmp(*pp, path) == 0)
            return 1;
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    struct conn *c = p->data;
    int has_len = (p->flags & F_CONTENT_LENGTH) != 0, te;

    if (req_finish_head(c) < 0) {
        set_fail(p, 500, "out_of_memory", "out of memory");
        return -1;
    }
    if (c->probe_only && !is_probe_path(c->srv, c->req->path)) {
        set_fail(p, 503, "too_many_connections", "too many connections; retry later");
        return -1;
    }
    te = te_status(c->req, c->http10);
    if (te == 501) {
        set_fail(p, 501, "unsupported_transfer_encoding",
                 "Transfer-Encoding other than chunked is not supported");
        return -1;
    }
    if (te) {
        set_fail(p, 400, "bad_request",
                 "malformed HTTP request: Transfer-Encoding must end with chunked (HTTP/1.1)");
        return -1;
    }
    if (has_len && p->content_length > c->srv->lim.max_body) {
        set_fail(p, 413, "body_too_large", "request body is too large");
        return -1;
    }
    c->phase = PH_BODY;
    conn_timer(c, c->srv->lim.body_timeout_ms);
    if (has_len && p->content_length > 0 && expects_continue(c))
        conn_write_raw(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t n)
{
    struct conn *c = p->data;
    struct http_req *r = c->req;
    if (r->body.len + n > c->srv->lim.max_body)
        return set_fail(p, 413, "body_too_large", "request body is too large");
    if (buf_append(&r->body, at, n) < 0)
        return set_fail(p, 500, "out_of_memory", "out of memory");
    return 0;
}

/* One request at a time: pause here; the caller hands the request over and holds the rest. */
static int on_message_complete(llhttp_t *p)
{
    struct conn *c = p->data;
    c->keep_alive = llhttp_should_keep_alive(p) && !llhttp_get_upgrade(p) && !c->probe_only;
    c->phase = PH_HANDLER;
    c->dispatch = 1;
    uv_timer_stop(&c->timer);
    return HPE_PAUSED;
}

static int conn_begin_request(struct conn *c)
{
    c->req = req_new(c);
    if (!c->req) {
        conn_close(c);
        return -1;
    }
    list_unlink(&c->idle_node);
    c->phase = PH_HEAD;
    c->head_bytes = 0;
    c->url_len = 0;
    c->nheaders = 0;
    c->trailer_bytes = 0;
    c->in_field = 0;
    c->keep_alive = 0;
    c->fail_status = 0;
    c->ver_len = 0;
    c->scratch.len = 0;
    conn_timer(c, c->srv->lim.header_timeout_ms);
    return 0;
}

static void conn_parse_error(struct conn *c, llhttp_errno_t err)
{
    char msg[192];
    if (c->fail_status) {
        conn_fail(c, c->fail_status, c->fail_code, c->fail_msg);
        return;
    }
    if (err == HPE_INVALID_VERSION && version_unsupported(c)) {
        conn_fail(c, 505, "http_version_not_supported",
                  "HTTP version not supported; use HTTP/1.1");
        return;
    }
    snprintf(msg, sizeof msg, "malformed HTTP request: %s (%s)",
             llhttp_get_error_reason(&c->parser), llhttp_errno_name(err));
    conn_fail(c, 400, "bad_request", msg);
}

/* Feed bytes to llhttp; returns how many it consumed. While the head is incomplete it is
 * fed at most the remaining header budget, so the 431 bound is exact. */
static size_t conn_feed(struct conn *c, const char *data, size_t len)
{
    const size_t max_head = c->srv->lim.max_header_bytes;
    size_t off = 0;

    while (off < len && c->phase <= PH_BODY && !c->closing) {
        size_t n = len - off, used;
        llhttp_errno_t err;

        if (c->phase == PH_IDLE && conn_begin_request(c) < 0)
            break;
        if (c->phase == PH_HEAD && n > max_head - c->head_bytes)
            n = max_head - c->head_bytes;
        err = llhttp_execute(&c->parser, data + off, n);
        used = n;
        if (err != HPE_OK && llhttp_get_error_pos(&c->parser))
            used = (size_t)(llhttp_get_error_pos(&c->parser) - (data + off));
        if (c->phase == PH_HEAD)
            c->head_bytes += used;
        off += used;
        if (err == HPE_PAUSED && c->dispatch)
            break;
        if (err != HPE_OK) {
            conn_parse_error(c, err);
            break;
        }
        if (c->phase == PH_HEAD && c->head_bytes >= max_head) {
            conn_fail(c, 431, "headers_too_large", "request header section is too large");
            break;
        }
    }
    return off;
}

/* After parsing: read or not, and hand a complete request to the handler. */
static void conn_dispatch(struct conn *c)
{
    struct http_server *s = c->srv;

    conn_update_reading(c);
    if (!c->dispatch || c->closing)
        return;
    c->dispatch = 0;
    c->req->state = RQ_HANDLER;
    s->handler(c->req, s->data);  /* may respond at once, later, or close the server */
}

/* Parse bytes just read; hold back what follows a complete request. */
static void conn_parse(struct conn *c, const char *data, size_t len)
{
    size_t used = conn_feed(c, data, len);

    if (c->closing || c->close_after)
        return;
    if (used < len && stash_add(c, data + used, len - used) < 0) {
        conn_close(c);
        return;
    }
    conn_dispatch(c);
}

/* Parse the held bytes in place (the handler is called only after llhttp is done). */
static void conn_parse_stash(struct conn *c)
{
    size_t used = conn_feed(c, c->stash.p + c->stash_off, stash_held(c));

    if (c->closing || c->close_after)
        return;
    c->stash_off += used;
    if (c->stash_off == c->stash.len)
        stash_drop(c);
    conn_dispatch(c);
}

/* ------------------------------------------------------------------ server --- */

void http_limits_default(struct http_limits *l)
{
    l->max_header_bytes = 16384;
    l->max_headers = 64;
    l->max_url = 4096;
    l->max_body = (size_t)1 << 20;
    l->max_conns = 1024;
    l->max_conns_per_addr = 256;
    l->header_timeout_ms = 10000;
    l->body_timeout_ms = 30000;
    l->idle_timeout_ms = 60000;
    l->probe_paths = NULL;
    l->probe_reserve = 64;
    l->abort_on_eof = 0;
}

/* Zero sizes take the default; zero timeouts stay zero (= no timeout). */
static void limits_sanitize(struct http_limits *l)
{
    struct http_limits d;
    http_limits_default(&d);
    if (!l->max_header_bytes)
        l->max_header_bytes = d.max_header_bytes;
    if (!l->max_headers)
        l->max_headers = d.max_headers;
    if (!l->max_url)
        l->max_url = d.max_url;
    if (!l->max_body)
        l->max_body = d.max_body;
    if (!l->max_conns)
        l->max_conns = d.max_conns;
    if (!l->probe_reserve)
        l->probe_reserve = d.probe_reserve;
    if (!l->max_conns_per_addr)
        l->max_conns_per_addr = d.max_conns_per_addr;
}

static void settings_init(llhttp_settings_t *st)
{
    llhttp_settings_init(st);
    st->on_url = on_url;
    st->on_version = on_version;
    st->on_version_complete = on_version_complete;
    st->on_url_complete = on_url_complete;
    st->on_header_field = on_header_field;
    st->on_header_field_complete = on_header_field_complete;
    st->on_header_value = on_header_value;
    st->on_header_value_complete = on_header_value_complete;
    st->on_headers_complete = on_headers_complete;
    st->on_body = on_body;
    st->on_message_complete = on_message_complete;
}

/* "ip:port" (IPv6 in brackets) into c->peer, and the bare address into c->addr. */
static void conn_peer(struct conn *c)
{
    struct sockaddr_storage ss;
    int len = (int)sizeof ss;
    char ip[INET6_ADDRSTRLEN] = "?";

    snprintf(c->peer, sizeof c->peer, "unknown");
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) != 0)
        return;
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
        uv_ip4_name(a, ip, sizeof ip);
        snprintf(c->peer, sizeof c->peer, "%s:%d", ip, ntohs(a->sin_port));
        memcpy(c->addr, &a->sin_addr, 4);
        c->addr_len = 4;
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
        uv_ip6_name(a, ip, sizeof ip);
        snprintf(c->peer, sizeof c->peer, "[%s]:%d", ip, ntohs(a->sin6_port));
        memcpy(c->addr, &a->sin6_addr, 16);
        c->addr_len = 16;
    }
}

/* Same peer IP address (an unknown address matches nothing). */
static int same_addr(const struct conn *a, const struct conn *b)
{
    return a->addr_len > 0 && a->addr_len == b->addr_len &&
           memcmp(a->addr, b->addr, a->addr_len) == 0;
}

static struct conn *conn_new(struct http_server *s)
{
    struct conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->srv = s;
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->handles = 2;
    c->rejected = 1;  /* not counted against the caps until admitted */
    list_push_front(&s->conns, &c->node);
    list_init(&c->idle_node);
    s->nalive++;
    llhttp_init(&c->parser, HTTP_REQUEST, &s->settings);
    c->parser.data = c;
    return c;
}

/* The connection idle longest (of c's address when same is set), or NULL. */
static struct conn *oldest_idle(struct http_server *s, const struct conn *c, int same)
{
    struct list_node *it, *tmp;

    LIST_FOR_EACH_SAFE(it, tmp, &s->idle) {
        struct conn *o = LIST_ENTRY(it, struct conn, idle_node);
        if (!same || same_addr(o, c))
            return o;
    }
    return NULL;
}

/* Room for c under the per-address and the global cap: NULL, after closing the connection
 * idle the longest (of c's address, for the per-address cap) when a cap is reached; else
 * the message of the 503 (every connection concerned is busy). Linear in the open
 * connections. */
static const char *srv_admit(struct http_server *s, struct conn *c)
{
    struct list_node *it, *tmp;
    struct conn *victim = NULL;
    unsigned same = 0;

    LIST_FOR_EACH_SAFE(it, tmp, &s->conns) {
        struct conn *o = LIST_ENTRY(it, struct conn, node);
        same += o != c && !o->rejected && !o->closing && same_addr(o, c);
    }
    if (same >= s->lim.max_conns_per_addr) {
        victim = oldest_idle(s, c, 1);
        if (!victim)
            return "too many connections from your address; retry later";
    } else if (s->nconns >= s->lim.max_conns) {
        victim = oldest_idle(s, c, 0);
        if (!victim)
            return "too many connections; retry later";
    }
    if (victim)
        conn_close(victim);  /* idle keep-alive (or never used): clients expect such closes */
    return NULL;
}

/* A connection past the caps: kept on the probe reserve when there is room (it is answered
 * only if it asks for a probe path, then closed; its head must come within PROBE_HEAD_MS). */
static int conn_probe_only(struct conn *c)
{
    struct http_server *s = c->srv;
    uint64_t t = s->lim.header_timeout_ms;

    if (!s->lim.probe_paths || s->nprobe >= s->lim.probe_reserve)
        return 0;
    c->probe_only = 1;
    s->nprobe++;
    if (conn_begin_request(c) < 0)
        return 1;
    conn_timer(c, t && t < PROBE_HEAD_MS ? t : PROBE_HEAD_MS);
    return 1;
}

static void srv_on_connection(uv_stream_t *server, int status)
{
    struct http_server *s = server->data;
    const char *full;
    struct conn *c;

    if (status < 0) {
        log_error("http: accept: %s", uv_strerror(status));
        return;
    }
    c = conn_new(s);
    if (!c) {
        log_error("http: accept: out of memory");
        return;
    }
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    conn_peer(c);
    full = srv_admit(s, c);
    c->rejected = full != NULL;
    if (!c->rejected) {
        s->nconns++;
        conn_set_idle(c);
    }
    conn_timer(c, s->lim.header_timeout_ms);
    if (c->rejected && !conn_probe_only(c) && conn_begin_request(c) == 0)
        conn_fail(c, 503, "too_many_connections", full);
    conn_update_reading(c);
}

/* host: IPv4 or IPv6 literal (brackets allowed), "localhost", or NULL/"" for 0.0.0.0. */
static int resolve_addr(const char *host, int port, struct sockaddr_storage *ss)
{
    char h[64];
    size_t n;

    if (port < 0 || port > 65535)
        return UV_EINVAL;
    if (!host || !*host)
        host = "0.0.0.0";
    if (strcmp(host, "localhost") == 0)
        host = "127.0.0.1";
    n = strlen(host);
    if (n >= sizeof h)
        return UV_EINVAL;
    if (host[0] == '[' && n > 2 && host[n - 1] == ']') {
        memcpy(h, host + 1, n - 2);
        h[n - 2] = '\0';
    } else {
        memcpy(h, host, n + 1);
    }
    memset(ss, 0, sizeof *ss);
    if (strchr(h, ':'))
        return uv_ip6_addr(h, port, (struct sockaddr_in6 *)ss);
    return uv_ip4_addr(h, port, (struct sockaddr_in *)ss);
}

static int bound_port(uv_tcp_t *t)
{
    struct sockaddr_storage ss;
    int len = (int)sizeof ss;
    if (uv_tcp_getsockname(t, (struct sockaddr *)&ss, &len) < 0)
        return -1;
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void srv_on_failed_close(uv_handle_t *h)
{
    free(h->data);
}

static void srv_on_handle_closed(uv_handle_t *h)
{
    struct http_server *s = h->data;
    s->handles--;
    srv_maybe_done(s);
}

/* libuv does not mask SIGPIPE: a write to a peer that reset must fail with EPIPE rather
 * than kill the process. A disposition the program chose itself is left alone. */
static void ignore_sigpipe(void)
{
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
        signal(SIGPIPE, SIG_IGN);
}

static struct http_server *srv_new(uv_loop_t *loop, const struct http_limits *limits,
                                   http_handler_fn handler, void *data)
{
    struct http_server *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->loop = loop;
    list_init(&s->conns);
    list_init(&s->idle);
    s->handler = handler;
    s->data = data;
    if (limits)
        s->lim = *limits;
    else
        http_limits_default(&s->lim);
    limits_sanitize(&s->lim);
    settings_init(&s->settings);
    /* request ids only need to be unlikely to repeat, not unguessable */
    s->rng = uv_hrtime() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)s;
    if (!s->rng)
        s->rng = 0x9E3779B97F4A7C15ULL;
    return s;
}

int http_server_start(uv_loop_t *loop, const char *host, int port,
                      const struct http_limits *limits, http_handler_fn handler, void *data,
                      struct http_server **out)
{
    struct sockaddr_storage ss;
    struct http_server *s;
    int rc = resolve_addr(host, port, &ss);

    if (rc < 0)
        return rc;
    if (!loop || !handler || !out)
        return UV_EINVAL;
    s = srv_new(loop, limits, handler, data);
    if (!s)
        return UV_ENOMEM;
    ignore_sigpipe();
    rc = uv_tcp_init(loop, &s->listener);
    if (rc < 0) {
        free(s);
        return rc;
    }
    s->listener.data = s;
    rc = uv_tcp_bind(&s->listener, (const struct sockaddr *)&ss, 0); /* libuv sets SO_REUSEADDR */
    if (rc < 0)
        goto fail;
    rc = uv_listen((uv_stream_t *)&s->listener, LISTEN_BACKLOG, srv_on_connection);
    if (rc < 0)
        goto fail;
    s->port = bound_port(&s->listener);
    uv_timer_init(loop, &s->guard);
    uv_unref((uv_handle_t *)&s->guard);
    s->guard.data = s;
    s->handles = 2;
    s->listening = 1;
    *out = s;
    return 0;
fail:
    uv_close((uv_handle_t *)&s->listener, srv_on_failed_close);
    return rc;
}

int http_server_port(const struct http_server *s)
{
    return s->port;
}

unsigned http_server_connections(const struct http_server *s)
{
    return s->nconns;
}

void http_server_on_complete(struct http_server *s, http_complete_fn cb, void *data)
{
    s->on_complete = cb;
    s->complete_data = data;
}

void http_server_stop_accepting(struct http_server *s)
{
    if (!s->listening)
        return;
    s->listening = 0;
    s->draining = 1;
    uv_close((uv_handle_t *)&s->listener, srv_on_handle_closed);
}

void http_server_close(struct http_server *s, void (*cb)(void *data), void *data)
{
    struct list_node *it, *tmp;

    if (s->closing)
        return;
    s->closing = 1;
    s->close_cb = cb;
    s->close_data = data;
    http_server_stop_accepting(s);
    uv_close((uv_handle_t *)&s->guard, srv_on_handle_closed);
    LIST_FOR_EACH_SAFE(it, tmp, &s->conns)
        conn_close(LIST_ENTRY(it, struct conn, node));
}
