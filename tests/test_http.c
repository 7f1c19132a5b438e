/* test_http.c - the HTTP server over real sockets: servers run on a uv loop in a second
 * thread; this thread is the client, with blocking sockets on 127.0.0.1.
 *
 * The servers are started from main() before the loop thread exists; afterwards only the
 * loop thread touches libuv (the stop request crosses over with uv_async_send). Handler
 * counters are atomics. Routes: /echo (method, path, query, params, body, headers as JSON),
 * /defer?ms=N (answers from a uv_timer), /stream?ms=N (3 chunks from a timer), /error,
 * /ratelimit, /big (BIG_BYTES of a known pattern), anything else 404. */
#include "http.h"
#include "tcheck.h"

#include <cjson/cJSON.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------ server side --- */

static uv_loop_t loop;
static uv_async_t stop_async;
static struct http_server *s1, *s2, *s3, *s4, *s6;
static int port1, port2, port3, port4, port6;
static atomic_int n_aborts, n_deferred, n_closed, n_handled;

/* The completion hook of s3: what the last finished request reported. */
static pthread_mutex_t done_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    int count, status;
    size_t bytes;
    double ms;
    char method[16], path[64], id[80];
} done_last;

static void on_complete(const struct http_req *r, int status, size_t bytes, void *data)
{
    (void)data;
    pthread_mutex_lock(&done_mu);
    done_last.count++;
    done_last.status = status;
    done_last.bytes = bytes;
    done_last.ms = http_req_elapsed_ms(r);
    snprintf(done_last.method, sizeof done_last.method, "%s", http_req_method(r));
    snprintf(done_last.path, sizeof done_last.path, "%s", http_req_path(r));
    snprintf(done_last.id, sizeof done_last.id, "%s", http_req_id(r));
    pthread_mutex_unlock(&done_mu);
}

struct later {
    uv_timer_t timer;
    struct http_req *req;
    int ticks;
};

static void later_free(uv_handle_t *h)
{
    free(h->data);
}

static void later_abort(struct http_req *r, void *data)
{
    struct later *l = data;
    (void)r;
    atomic_fetch_add(&n_aborts, 1);
    uv_timer_stop(&l->timer);
    uv_close((uv_handle_t *)&l->timer, later_free);
}

static void add_str(cJSON *o, const char *k, const char *v)
{
    if (v)
        cJSON_AddStringToObject(o, k, v);
    else
        cJSON_AddNullToObject(o, k);
}

static void defer_fire(uv_timer_t *t)
{
    struct later *l = t->data;
    cJSON *o = cJSON_CreateObject();
    atomic_fetch_add(&n_deferred, 1);
    cJSON_AddTrueToObject(o, "deferred");
    add_str(o, "n", http_req_query_param(l->req, "n"));
    http_respond_json(l->req, 200, o);
    cJSON_Delete(o);
    uv_close((uv_handle_t *)&l->timer, later_free);
}

static void stream_tick(uv_timer_t *t)
{
    struct later *l = t->data;
    char line[32];
    int n = snprintf(line, sizeof line, "data: %d\n\n", ++l->ticks);
    http_stream_write(l->req, line, (size_t)n);
    if (l->ticks < 3)
        return;
    http_stream_end(l->req);
    uv_timer_stop(&l->timer);
    uv_close((uv_handle_t *)&l->timer, later_free);
}

static void start_later(struct http_req *r, uv_timer_cb cb, int repeat)
{
    struct later *l = calloc(1, sizeof *l);
    const char *ms = http_req_query_param(r, "ms");
    uint64_t t = ms ? (uint64_t)atoi(ms) : 50;
    l->req = r;
    uv_timer_init(&loop, &l->timer);
    l->timer.data = l;
    http_req_on_abort(r, later_abort, l);
    uv_timer_start(&l->timer, cb, t, repeat ? t : 0);
}

/* "name=value|name=value..." of every header, in arrival order (http_req_header_at). */
static void header_list(struct http_req *r, char *out, size_t n)
{
    const char *name, *value;
    size_t used = 0;

    out[0] = '\0';
    for (size_t i = 0; http_req_header_at(r, i, &name, &value) == 0 && used < n; i++)
        used += (size_t)snprintf(out + used, n - used, "%s%s=%s", i ? "|" : "", name, value);
}

static void route_echo(struct http_req *r)
{
    char headers[512];
    cJSON *o = cJSON_CreateObject();
    size_t len;
    const char *body = http_req_body(r, &len);

    add_str(o, "method", http_req_method(r));
    add_str(o, "path", http_req_path(r));
    add_str(o, "query", http_req_query(r));
    add_str(o, "body", body);
    cJSON_AddNumberToObject(o, "body_len", (double)len);
    add_str(o, "x", http_req_header(r, "x-test"));
    add_str(o, "empty_h", http_req_header(r, "X-Empty"));
    add_str(o, "after", http_req_header(r, "x-after"));
    header_list(r, headers, sizeof headers);
    add_str(o, "headers", headers);
    add_str(o, "n", http_req_query_param(r, "n"));
    add_str(o, "q", http_req_query_param(r, "q"));
    add_str(o, "e", http_req_query_param(r, "e"));
    add_str(o, "flag", http_req_query_param(r, "flag"));
    add_str(o, "missing", http_req_query_param(r, "missing"));
    add_str(o, "id", http_req_id(r));
    add_str(o, "peer", http_req_peer(r));
    http_resp_header(r, "X-Echo", "yes");
    http_resp_header(r, "X-Bad", "a\r\nInjected: 1");
    http_respond_json(r, 200, o);
    cJSON_Delete(o);
}

static void on_server_closed(void *data)
{
    (void)data;
    atomic_fetch_add(&n_closed, 1);
}

/* data points at the server's own variable (for /drain and /shutdown). */
#define BIG_BYTES (8u << 20) /* more than a loopback socket with a small receive buffer holds */

static char big_byte(size_t i)
{
    return (char)('a' + (i * 7 + i / 4099) % 26);
}

static void route_big(struct http_req *r)
{
    char *body = malloc(BIG_BYTES);
    if (!body) {
        http_respond_error(r, 500, "out_of_memory", NULL, "out of memory");
        return;
    }
    for (size_t i = 0; i < BIG_BYTES; i++)
        body[i] = big_byte(i);
    http_respond(r, 200, "application/octet-stream", body, BIG_BYTES);
    free(body);
}

static void handler(struct http_req *r, void *data)
{
    struct http_server **self = data;
    const char *p = http_req_path(r);
    atomic_fetch_add(&n_handled, 1);
    if (strcmp(p, "/drain") == 0) {
        http_server_stop_accepting(*self);
        route_echo(r);
    } else if (strcmp(p, "/shutdown") == 0) {
        http_server_close(*self, on_server_closed, NULL);
        http_respond(r, 200, "text/plain", "late", 4); /* the connection is going: no-op */
    } else if (strcmp(p, "/echo") == 0) {
        route_echo(r);
    } else if (strcmp(p, "/defer") == 0) {
        start_later(r, defer_fire, 0);
    } else if (strcmp(p, "/stream") == 0) {
        http_stream_begin(r, 200, "text/event-stream");
        start_later(r, stream_tick, 1);
    } else if (strcmp(p, "/own-cache") == 0) {  /* a stream with its own Cache-Control */
        http_resp_header(r, "Cache-Control", "no-store");
        http_stream_begin(r, 200, "text/event-stream");
        http_stream_write(r, "data: x\n\n", 9);
        http_stream_end(r);
    } else if (strcmp(p, "/burst") == 0) {  /* several writes inside the handler */
        http_stream_begin(r, 200, "text/plain");
        http_stream_write(r, "one\n", 4);
        http_stream_write(r, "two\n", 4);
        http_stream_end(r);
    } else if (strcmp(p, "/big") == 0) {
        route_big(r);
    } else if (strcmp(p, "/error") == 0) {
        http_respond_error(r, 422, "text_required", "text", "field '%s' is required", "text");
    } else if (strcmp(p, "/ratelimit") == 0) {
        http_resp_header(r, "Retry-After", "7");
        http_respond_error(r, 429, "queue_full", NULL, "queue is full");
    } else {
        http_respond_error(r, 404, "not_found", NULL, "no route for %s", p);
    }
}

static void on_stop(uv_async_t *a)
{
    http_server_close(s1, on_server_closed, NULL);
    http_server_close(s2, on_server_closed, NULL);
    http_server_close(s4, on_server_closed, NULL);
    if (s6)
        http_server_close(s6, on_server_closed, NULL);
    uv_close((uv_handle_t *)a, NULL);
}

static void *loop_main(void *arg)
{
    (void)arg;
    uv_run(&loop, UV_RUN_DEFAULT);
    return NULL;
}

/* ------------------------------------------------------------ client side --- */

struct cli {
    int fd;
    size_t len;
    char buf[1 << 18];
};

struct resp {
    int status;
    char head[8192];
    char body[1 << 17];
    size_t body_len;
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void msleep(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int cli_open_af(struct cli *c, int af, int port)
{
    struct sockaddr_storage ss;
    struct timeval tv = {5, 0};
    socklen_t sl;
    int one = 1;

    memset(&ss, 0, sizeof ss);
    c->len = 0;
    c->fd = socket(af, SOCK_STREAM, 0);
    if (c->fd < 0)
        return -1;
    if (af == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        a->sin6_addr = in6addr_loopback;
        sl = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        sl = sizeof *a;
    }
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (struct sockaddr *)&ss, sl) < 0) {
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    return 0;
}

/* A client whose source address is src (another 127.x.y.z: a different peer address). */
static struct cli *cli_new_from(int port, const char *src)
{
    struct cli *c = malloc(sizeof *c);
    struct sockaddr_in a, b;
    struct timeval tv = {5, 0};

    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    inet_pton(AF_INET, src, &a.sin_addr);
    b = a;
    b.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    b.sin_port = htons((uint16_t)port);
    c->len = 0;
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (c->fd < 0 || bind(c->fd, (struct sockaddr *)&a, sizeof a) < 0 ||
        connect(c->fd, (struct sockaddr *)&b, sizeof b) < 0) {
        if (c->fd >= 0)
            close(c->fd);
        free(c);
        return NULL;
    }
    return c;
}

static struct cli *cli_new(int port)
{
    struct cli *c = malloc(sizeof *c);
    if (cli_open_af(c, AF_INET, port) < 0) {
        free(c);
        return NULL;
    }
    return c;
}

static void cli_free(struct cli *c)
{
    if (!c)
        return;
    if (c->fd >= 0)
        close(c->fd);
    free(c);
}

static int cli_send(struct cli *c, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t k = send(c->fd, s, n, MSG_NOSIGNAL);
        if (k <= 0)
            return -1;
        s += k;
        n -= (size_t)k;
    }
    return 0;
}

static int cli_sends(struct cli *c, const char *s)
{
    return cli_send(c, s, strlen(s));
}

/* Read more bytes: >0 read, 0 EOF, -1 error or timeout. */
static int cli_fill(struct cli *c)
{
    ssize_t k;
    if (c->len >= sizeof c->buf)
        return -1;
    k = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
    if (k < 0)
        return -1;
    c->len += (size_t)k;
    return (int)k;
}

static void cli_consume(struct cli *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

/* Decode a chunked body at p[0..n): bytes used when complete, 0 if more is needed, -1 bad. */
static long dechunk(const char *p, size_t n, char *out, size_t cap, size_t *outlen)
{
    size_t i = 0;
    *outlen = 0;
    for (;;) {
        const char *crlf = memmem(p + i, n - i, "\r\n", 2);
        size_t sz;
        if (!crlf)
            return 0;
        sz = strtoul(p + i, NULL, 16);
        i = (size_t)(crlf - p) + 2;
        if (sz == 0)
            return n - i < 2 ? 0 : (memcmp(p + i, "\r\n", 2) == 0 ? (long)(i + 2) : -1);
        if (n - i < sz + 2)
            return 0;
        if (*outlen + sz >= cap)
            return -1;
        memcpy(out + *outlen, p + i, sz);
        *outlen += sz;
        i += sz + 2;
    }
}

/* Case-insensitive header value from a response head, copied into out; NULL if absent. */
static const char *hval(const struct resp *r, const char *name, char *out, size_t n)
{
    const char *line = strstr(r->head, "\r\n");
    size_t nl = strlen(name);
    while (line && line[2]) {
        const char *next = strstr(line + 2, "\r\n");
        const char *l = line + 2;
        if (next && strncasecmp(l, name, nl) == 0 && l[nl] == ':') {
            const char *v = l + nl + 1;
            size_t vl;
            while (*v == ' ')
                v++;
            vl = (size_t)(next - v);
            if (vl >= n)
                vl = n - 1;
            memcpy(out, v, vl);
            out[vl] = '\0';
            return out;
        }
        line = next;
    }
    return NULL;
}

static int resp_body(struct cli *c, struct resp *r, size_t hend, int head_req)
{
    char v[64];
    if (head_req || r->status == 204 || r->status == 304 || r->status < 200) {
        cli_consume(c, hend);
        return 0;
    }
    if (hval(r, "Content-Length", v, sizeof v)) {
        size_t cl = strtoul(v, NULL, 10);
        while (c->len < hend + cl)
            if (cli_fill(c) <= 0 || cl >= sizeof r->body)
                return -1;
        memcpy(r->body, c->buf + hend, cl);
        r->body_len = cl;
        r->body[cl] = '\0';
        cli_consume(c, hend + cl);
        return 0;
    }
    if (hval(r, "Transfer-Encoding", v, sizeof v) && strcmp(v, "chunked") == 0) {
        for (;;) {
            long used = dechunk(c->buf + hend, c->len - hend, r->body, sizeof r->body, &r->body_len);
            if (used < 0)
                return -1;
            if (used > 0) {
                r->body[r->body_len] = '\0';
                cli_consume(c, hend + (size_t)used);
                return 0;
            }
            if (cli_fill(c) <= 0)
                return -1;
        }
    }
    while (cli_fill(c) > 0) /* delimited by the close */
        ;
    r->body_len = c->len - hend;
    memcpy(r->body, c->buf + hend, r->body_len);
    r->body[r->body_len] = '\0';
    cli_consume(c, c->len);
    return 0;
}

/* Read one response (skipping 100 Continue unless want_interim). 0 or -1. */
static int cli_resp2(struct cli *c, struct resp *r, int head_req, int want_interim)
{
    for (;;) {
        char *e;
        size_t hend;
        memset(r, 0, offsetof(struct resp, body) + 1);
        r->body_len = 0;
        e = memmem(c->buf, c->len, "\r\n\r\n", 4);
        while (!e) {
            if (cli_fill(c) <= 0)
                return -1;
            e = memmem(c->buf, c->len, "\r\n\r\n", 4);
        }
        hend = (size_t)(e - c->buf) + 4;
        if (hend >= sizeof r->head)
            return -1;
        memcpy(r->head, c->buf, hend);
        r->head[hend] = '\0';
        if (sscanf(r->head, "HTTP/1.1 %d", &r->status) != 1)
            return -1;
        if (r->status == 100 && !want_interim) {
            cli_consume(c, hend);
            continue;
        }
        return resp_body(c, r, hend, head_req);
    }
}

static int cli_resp(struct cli *c, struct resp *r)
{
    return cli_resp2(c, r, 0, 0);
}

/* 1 if the server closes the connection within ms without sending anything more. */
static int cli_closed(struct cli *c, int ms)
{
    double end = now_ms() + ms;
    for (;;) {
        struct pollfd pfd = {c->fd, POLLIN, 0};
        int left = (int)(end - now_ms());
        char tmp[4096];
        ssize_t k;
        if (left <= 0 || poll(&pfd, 1, left) <= 0)
            return 0;
        k = recv(c->fd, tmp, sizeof tmp, 0);
        if (k == 0 || (k < 0 && errno == ECONNRESET))
            return 1;
        if (k != 0)
            return 0;  /* an error, or bytes nobody expected */
    }
}

/* Close with a reset (SO_LINGER 0): the client is gone. */
static void cli_reset(struct cli *c)
{
    struct linger lg = {1, 0};
    if (c)
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    cli_free(c);
}

/* One request on a fresh connection; the response in *r. */
static int roundtrip(int port, const char *req, struct resp *r)
{
    struct cli *c = cli_new(port);
    int rc = -1;
    if (c && cli_sends(c, req) == 0)
        rc = cli_resp(c, r);
    cli_free(c);
    return rc;
}

static cJSON *jbody(const struct resp *r)
{
    return cJSON_ParseWithLength(r->body, r->body_len);
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int jnull(const cJSON *o, const char *k)
{
    return cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, k));
}

/* An RFC 7231 IMF-fixdate of now (this second or the one before), as strftime writes it. */
static int date_is_now(const char *v)
{
    time_t t = time(NULL);
    for (int back = 0; back < 3; back++) {
        char want[64];
        time_t u = t - back;
        struct tm tm;
        gmtime_r(&u, &tm);
        strftime(want, sizeof(want), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        if (strcmp(v, want) == 0)
            return 1;
    }
    return 0;
}

static int is_gen_id(const char *s)
{
    size_t i;
    if (!s || strncmp(s, "req_", 4) != 0 || strlen(s) != 20)
        return 0;
    for (i = 4; i < 20; i++)
        if (!strchr("0123456789abcdef", s[i]))
            return 0;
    return 1;
}

/* The error envelope of docs/API.md, checked field by field. */
static void check_envelope(const struct resp *r, int status, const char *type, const char *code)
{
    cJSON *j = jbody(r);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    CHECK(r->status == status);
    CHECK(cJSON_IsObject(e));
    CHECK_STR(jstr(e, "type"), type);
    CHECK_STR(jstr(e, "code"), code);
    CHECK(jstr(e, "message") != NULL);
    CHECK(cJSON_GetObjectItemCaseSensitive(e, "param") != NULL);
    cJSON_Delete(j);
}

/* ----------------------------------------------------------------- tests --- */

static void test_pure(void)
{
    CHECK_STR(http_error_type(400), "invalid_request_error");
    CHECK_STR(http_error_type(404), "invalid_request_error");
    CHECK_STR(http_error_type(408), "invalid_request_error");
    CHECK_STR(http_error_type(413), "invalid_request_error");
    CHECK_STR(http_error_type(431), "invalid_request_error");
    CHECK_STR(http_error_type(401), "authentication_error");
    CHECK_STR(http_error_type(403), "authentication_error");
    CHECK_STR(http_error_type(429), "rate_limit_error");
    CHECK_STR(http_error_type(500), "server_error");
    CHECK_STR(http_error_type(503), "server_error");
    CHECK_STR(http_status_text(404), "Not Found");
    CHECK_STR(http_status_text(431), "Request Header Fields Too Large");
}

static void test_simple_get(void)
{
    struct resp r;
    char v[128];
    cJSON *j;

    CHECK(roundtrip(port1, "GET /echo?x=1&q=hello HTTP/1.1\r\nHost: t\r\nX-TEST: abc  \r\n"
                           "X-Empty:\r\nX-After: z\r\n\r\n", &r) == 0);
    CHECK(r.status == 200);
    CHECK(strncmp(r.head, "HTTP/1.1 200 OK\r\n", 17) == 0);
    CHECK_STR(hval(&r, "Content-Type", v, sizeof v), "application/json");
    CHECK_STR(hval(&r, "Connection", v, sizeof v), "keep-alive");
    CHECK_STR(hval(&r, "X-Echo", v, sizeof v), "yes");
    CHECK(hval(&r, "X-Bad", v, sizeof v) == NULL);
    CHECK(hval(&r, "Injected", v, sizeof v) == NULL);
    CHECK(hval(&r, "Date", v, sizeof v) != NULL && date_is_now(v));
    CHECK(hval(&r, "Content-Length", v, sizeof v) && strtoul(v, NULL, 10) == r.body_len);
    CHECK(is_gen_id(hval(&r, "X-Request-Id", v, sizeof v)));
    j = jbody(&r);
    CHECK_STR(jstr(j, "method"), "GET");
    CHECK_STR(jstr(j, "path"), "/echo");
    CHECK_STR(jstr(j, "query"), "x=1&q=hello");
    CHECK_STR(jstr(j, "q"), "hello");
    CHECK_STR(jstr(j, "x"), "abc");          /* case-insensitive, trailing space trimmed */
    CHECK_STR(jstr(j, "empty_h"), "");       /* empty value still a header */
    CHECK_STR(jstr(j, "after"), "z");
    CHECK_STR(jstr(j, "headers"), "Host=t|X-TEST=abc|X-Empty=|X-After=z");
    CHECK_STR(jstr(j, "body"), "");
    CHECK_STR(jstr(j, "id"), v);
    CHECK(jstr(j, "peer") && strncmp(jstr(j, "peer"), "127.0.0.1:", 10) == 0);
    cJSON_Delete(j);

    CHECK(roundtrip(port1, "GET /nope HTTP/1.1\r\nHost: t\r\n\r\n", &r) == 0);
    check_envelope(&r, 404, "invalid_request_error", "not_found");
}

static void test_post_body(void)
{
    struct resp r;
    cJSON *j;
    CHECK(roundtrip(port1, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 13\r\n\r\n"
                           "hello \"world\"", &r) == 0);
    CHECK(r.status == 200);
    j = jbody(&r);
    CHECK_STR(jstr(j, "method"), "POST");
    CHECK_STR(jstr(j, "body"), "hello \"world\"");
    cJSON_Delete(j);

    CHECK(roundtrip(port1, "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                           "5\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n", &r) == 0);
    j = jbody(&r);
    CHECK(r.status == 200);
    CHECK_STR(jstr(j, "body"), "hello world");
    cJSON_Delete(j);
}

static void test_keepalive(void)
{
    struct cli *c = cli_new(port1);
    struct resp r;
    char id1[64] = "", id2[64] = "";

    CHECK(c != NULL);
    if (!c)
        return;
    CHECK(cli_sends(c, "GET /echo?n=1 HTTP/1.1\r\nHost: t\r\n\r\n") == 0);
    CHECK(cli_resp(c, &r) == 0 && r.status == 200);
    hval(&r, "X-Request-Id", id1, sizeof id1);
    CHECK(cli_sends(c, "GET /echo?n=2 HTTP/1.1\r\nHost: t\r\n\r\n") == 0);
    CHECK(cli_resp(c, &r) == 0 && r.status == 200);
    hval(&r, "X-Request-Id", id2, sizeof id2);
    CHECK(is_gen_id(id1) && is_gen_id(id2) && strcmp(id1, id2) != 0);
    /* Connection: close on HTTP/1.1 */
    CHECK(cli_sends(c, "GET /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n") == 0);
    CHECK(cli_resp(c, &r) == 0 && r.status == 200);
    CHECK(strstr(r.head, "Connection: close\r\n") != NULL);
    CHECK(cli_closed(c, 3000));
    cli_free(c);
}

/* Send all of reqs in one send(); expect the n parameters back in order. */
static void pipeline(const char *reqs, const char *const *ns, int count)
{
    struct cli *c = cli_new(port1);
    int i;

    CHECK(c != NULL);
    if (!c)
        return;
    CHECK(cli_sends(c, reqs) == 0);
    for (i = 0; i < count; i++) {
        struct resp r;
        cJSON *j;
        CHECK(cli_resp(c, &r) == 0);
        CHECK(r.status == 200);
        j = jbody(&r);
        CHECK_STR(jstr(j, "n"), ns[i]);
        cJSON_Delete(j);
    }
    cli_free(c);
}

static void test_pipelining(void)
{
    static const char *const n12[] = {"1", "2"}, *const n123[] = {"1", "2", "3"};
    int before = atomic_load(&n_deferred);

    pipeline("GET /echo?n=1 HTTP/1.1\r\nHost: t\r\n\r\nGET /echo?n=2 HTTP/1.1\r\nHost: t\r\n\r\n",
             n12, 2);
    pipeline("GET /echo?n=1 HTTP/1.1\r\nHost: t\r\n\r\n"
             "POST /echo?n=2 HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"
             "GET /echo?n=3 HTTP/1.1\r\nHost: t\r\n\r\n", n123, 3);
    pipeline("GET /defer?ms=80&n=1 HTTP/1.1\r\nHost: t\r\n\r\n"
             "GET /echo?n=2 HTTP/1.1\r\nHost: t\r\n\r\n"
             "GET /defer?ms=10&n=3 HTTP/1.1\r\nHost: t\r\n\r\n", n123, 3);
    CHECK(atomic_load(&n_deferred) == before + 2);
}

static void test_split_bytes(void)
{
    static const char req[] = "POST /echo?n=7 HTTP/1.1\r\nHost: t\r\nX-Test: split\r\n"
                              "Content-Length: 10\r\n\r\n0123456789";
    struct cli *c = cli_new(port1);
    struct resp r;
    size_t i;
    cJSON *j;

    CHECK(c != NULL);
    if (!c)
        return;
    for (i = 0; i < sizeof req - 1; i++) {
        cli_send(c, req + i, 1);
        if (i % 8 == 0)
            msleep(1);
    }
    CHECK(cli_resp(c, &r) == 0 && r.status == 200);
    j = jbody(&r);
    CHECK_STR(jstr(j, "body"), "0123456789");
    CHECK_STR(jstr(j, "x"), "split");
    CHECK_STR(jstr(j, "n"), "7");
    cJSON_Delete(j);
    cli_free(c);
}

/* A GET whose request line + headers are exactly total bytes long. */
static char *head_of_size(size_t total)
{
    static const char pre[] = "GET /echo HTTP/1.1\r\nHost: t\r\nX-Pad: ";
    size_t fixed = strlen(pre) + 4, pad = total - fixed;
    char *s = malloc(total + 1);
    memcpy(s, pre, strlen(pre));
    memset(s + strlen(pre), 'p', pad);
    memcpy(s + strlen(pre) + pad, "\r\n\r\n", 5);
    return s;
}

/* Expect an error status with the envelope, then the close. */
static void expect_fail(int port, const char *req, int status, const char *code)
{
    struct cli *c = cli_new(port);
    struct resp r;
    char v[32];

    CHECK(c != NULL);
    if (!c)
        return;
    CHECK(cli_sends(c, req) == 0);
    CHECK(cli_resp(c, &r) == 0);
    if (r.status != status)
        fprintf(stderr, "  expected %d got %d for %.60s\n", status, r.status, req);
    check_envelope(&r, status, http_error_type(status), code);
    CHECK_STR(hval(&r, "Connection", v, sizeof v), "close");
    CHECK(cli_closed(c, 3000));
    cli_free(c);
}

static void test_header_limits(void)
{
    struct resp r;
    char *s, many[4096];
    int i;
    size_t n;

    s = head_of_size(2048);          /* exactly max_header_bytes: fine */
    CHECK(roundtrip(port1, s, &r) == 0 && r.status == 200);
    free(s);
    s = head_of_size(2049);
    expect_fail(port1, s, 431, "headers_too_large");
    free(s);
    s = head_of_size(100000);        /* huge: answered without reading it all */
    expect_fail(port1, s, 431, "headers_too_large");
    free(s);

    n = (size_t)snprintf(many, sizeof many, "GET /echo HTTP/1.1\r\nHost: t\r\n");
    for (i = 0; i < 19; i++)         /* 20 fields: the limit */
        n += (size_t)snprintf(many + n, sizeof many - n, "X-H%d: v\r\n", i);
    snprintf(many + n, sizeof many - n, "\r\n");
    CHECK(roundtrip(port1, many, &r) == 0 && r.status == 200);
    snprintf(many + n, sizeof many - n, "X-H99: v\r\n\r\n");
    expect_fail(port1, many, 431, "headers_too_large");
}

static void test_url_limit(void)
{
    char req[2048], path[1024];
    struct resp r;

    memset(path, 'a', sizeof path);
    path[512 - 6] = '\0';            /* "/echo?" + 506 = 512 bytes: the limit */
    snprintf(req, sizeof req, "GET /echo?%s HTTP/1.1\r\nHost: t\r\n\r\n", path);
    CHECK(roundtrip(port1, req, &r) == 0 && r.status == 200);
    path[512 - 6] = 'a';             /* 513 bytes */
    path[512 - 5] = '\0';
    snprintf(req, sizeof req, "GET /echo?%s HTTP/1.1\r\nHost: t\r\n\r\n", path);
    expect_fail(port1, req, 414, "url_too_long");
}

static void test_body_limits(void)
{
    struct resp r;
    char *req = malloc(8192);
    size_t n;
    int i;
    cJSON *j;

    /* 413 at the headers: no body is ever sent */
    expect_fail(port1, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n", 413,
                "body_too_large");
    n = (size_t)snprintf(req, 8192, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4096\r\n\r\n");
    memset(req + n, 'b', 4096);
    req[n + 4096] = '\0';
    CHECK(roundtrip(port1, req, &r) == 0 && r.status == 200);
    j = jbody(&r);
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(j, "body_len")) == 4096);
    cJSON_Delete(j);

    n = (size_t)snprintf(req, 8192, "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (i = 0; i < 3; i++) {
        n += (size_t)snprintf(req + n, 8192 - n, "7d0\r\n");
        memset(req + n, 'c', 2000);
        n += 2000;
        n += (size_t)snprintf(req + n, 8192 - n, "\r\n");
    }
    snprintf(req + n, 8192 - n, "0\r\n\r\n");
    expect_fail(port1, req, 413, "body_too_large");
    free(req);
}

static void test_bad_requests(void)
{
    struct cli *c;
    struct resp r;
    cJSON *j, *e;

    expect_fail(port1, "GARBAGE\r\n\r\n", 400, "bad_request");
    expect_fail(port1, "GET /echo HTTP/1.1\r\nBad Header: x\r\n\r\n", 400, "bad_request");
    expect_fail(port1, "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\nxx", 400,
                "bad_request");
    expect_fail(port1, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "bad_request");
    /* the envelope of a server-made error: param is null */
    c = cli_new(port1);
    CHECK(c && cli_sends(c, "BLAH / HTTP/1.1\r\n\r\n") == 0);
    CHECK(c && cli_resp(c, &r) == 0);
    j = jbody(&r);
    e = cJSON_GetObjectItem(j, "error");
    CHECK(r.status == 400 && jnull(e, "param"));
    CHECK(jstr(e, "message") && strstr(jstr(e, "message"), "malformed HTTP request") != NULL);
    cJSON_Delete(j);
    cli_free(c);
}

/* A request line with another major version than 1 gets 505 (then the close). */
static void test_versions(void)
{
    struct resp r;
    char v[64];

    expect_fail(port1, "GET /echo HTTP/2.0\r\nHost: t\r\n\r\n", 505,
                "http_version_not_supported");
    expect_fail(port1, "GET /echo HTTP/3.0\r\nHost: t\r\n\r\n", 505,
                "http_version_not_supported");
    expect_fail(port1, "GET /echo HTTP/0.9\r\n\r\n", 505, "http_version_not_supported");
    expect_fail(port1, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, "http_version_not_supported");
    CHECK(roundtrip(port1, "GET /echo HTTP/2.0\r\nHost: t\r\n\r\n", &r) == 0);
    CHECK(strncmp(r.head, "HTTP/1.1 505 HTTP Version Not Supported\r\n", 41) == 0);
    CHECK_STR(http_status_text(505), "HTTP Version Not Supported");
    CHECK_STR(http_status_text(501), "Not Implemented");
    /* 1.x other than 1.0 / 1.1 is malformed for llhttp (strict): 400 */
    expect_fail(port1, "GET /echo HTTP/1.2\r\nHost: t\r\n\r\n", 400, "bad_request");
    expect_fail(port1, "GET /echo HTTP/x\r\nHost: t\r\n\r\n", 400, "bad_request");
    CHECK(roundtrip(port1, "GET /echo HTTP/1.0\r\n\r\n", &r) == 0 && r.status == 200);
    CHECK_STR(hval(&r, "Connection", v, sizeof v), "close");
}

/* Transfer codings: only plain chunked reaches the handler; a coding the server does not
 * implement is refused (501) at the end of the headers, before any body byte is read. */
static void test_transfer_codings(void)
{
    int handled = atomic_load(&n_handled);
    struct resp r;
    cJSON *j;

    expect_fail(port1, "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                501, "unsupported_transfer_encoding");
    expect_fail(port1, "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n", 501, "unsupported_transfer_encoding");
    expect_fail(port1, "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: deflate,chunked\r\n\r\n"
                       "5\r\nhello\r\n0\r\n\r\n", 501, "unsupported_transfer_encoding");
    /* the last coding is not chunked: the length is unknown, 400 */
    expect_fail(port1, "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
                400, "bad_request");
    expect_fail(port1, "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: identity\r\n\r\n",
                400, "bad_request");
    /* HTTP/1.0 has no chunked coding: faulty framing */
    expect_fail(port1, "POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400,
                "bad_request");
    CHECK(atomic_load(&n_handled) == handled);
    /* plain chunked, any case */
    CHECK(roundtrip(port1, "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: Chunked\r\n\r\n"
                           "5\r\nhello\r\n0\r\n\r\n", &r) == 0 && r.status == 200);
    j = jbody(&r);
    CHECK_STR(jstr(j, "body"), "hello");
    cJSON_Delete(j);
}

/* Trailer fields of a chunked body are accepted but not kept, and they count against
 * max_body (4096 here) with the body: a small trailer passes, a large one is a 413. */
static void test_chunked_trailers(void)
{
    static const char head[] =
        "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";
    char *req = malloc(8192);
    struct resp r;
    size_t n;
    cJSON *j;

    CHECK(roundtrip(port1, "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                           "5\r\nhello\r\n0\r\nX-Check: abc\r\n\r\n", &r) == 0 &&
          r.status == 200);
    j = jbody(&r);
    CHECK_STR(jstr(j, "body"), "hello");
    cJSON_Delete(j);
    /* 5 body bytes and one trailer value of 4100 bytes: over max_body */
    n = (size_t)snprintf(req, 8192, "%s5\r\nhello\r\n0\r\nX-Big: ", head);
    memset(req + n, 't', 4100);
    n += 4100;
    snprintf(req + n, 8192 - n, "\r\n\r\n");
    expect_fail(port1, req, 413, "body_too_large");
    /* 4000 body bytes: a 200-byte trailer field name tips it over */
    n = (size_t)snprintf(req, 8192, "%sfa0\r\n", head);
    memset(req + n, 'b', 4000);
    n += 4000;
    n += (size_t)snprintf(req + n, 8192 - n, "\r\n0\r\nX-");
    memset(req + n, 'n', 200);
    n += 200;
    snprintf(req + n, 8192 - n, ": v\r\n\r\n");
    expect_fail(port1, req, 413, "body_too_large");
    free(req);
}

/* HEAD: the head of the response, never its body; a streamed response is complete with its
 * head (the connection closes and the handler sees the client leave). */
static void test_head(void)
{
    int aborts = atomic_load(&n_aborts);
    struct cli *c;
    struct resp r;
    char v[64];
    double t0;

    c = cli_new(port1);
    t0 = now_ms();
    CHECK(c && cli_sends(c, "HEAD /stream?ms=400 HTTP/1.1\r\nHost: t\r\n\r\n") == 0);
    CHECK(c && cli_resp2(c, &r, 1, 0) == 0 && r.status == 200);
    CHECK(now_ms() - t0 < 300);
    CHECK_STR(hval(&r, "Content-Type", v, sizeof v), "text/event-stream");
    CHECK_STR(hval(&r, "Connection", v, sizeof v), "close");
    CHECK(c && cli_closed(c, 1000));           /* no chunk, no terminator: just the close */
    cli_free(c);
    for (int i = 0; i < 200 && atomic_load(&n_aborts) == aborts; i++)
        msleep(5);
    CHECK(atomic_load(&n_aborts) == aborts + 1);
    /* a stream made inside the handler: the head, then the connection goes on */
    c = cli_new(port1);
    CHECK(c && cli_sends(c, "HEAD /burst HTTP/1.1\r\nHost: t\r\n\r\n") == 0);
    CHECK(c && cli_resp2(c, &r, 1, 0) == 0 && r.status == 200);
    CHECK(c && cli_closed(c, 1000));
    cli_free(c);
    c = cli_new(port1);
    CHECK(c && cli_sends(c, "HEAD /echo HTTP/1.1\r\nHost: t\r\n\r\n"
                            "GET /echo?n=4 HTTP/1.1\r\nHost: t\r\n\r\n") == 0);
    CHECK(c && cli_resp2(c, &r, 1, 0) == 0 && r.status == 200);
    CHECK(hval(&r, "Content-Length", v, sizeof v) && atoi(v) > 0);
    CHECK(c && cli_resp(c, &r) == 0 && r.status == 200 && strstr(r.body, "\"n\":\"4\""));
    cli_free(c);
}

static void test_timeouts(void)
{
    struct cli *c;
    struct resp r;
    double t0;

    /* header timeout (250 ms on s2) */
    c = cli_new(port2);
    t0 = now_ms();
    CHECK(c && cli_sends(c, "GET /echo HTTP/1.1\r\nHost: t\r\n") == 0);
    CHECK(c && cli_resp(c, &r) == 0);
    CHECK(now_ms() - t0 >= 200);
    check_envelope(&r, 408, "invalid_request_error", "request_timeout");
    CHECK(c && cli_closed(c, 3000));
    cli_free(c);

    /* body timeout */
    c = cli_new(port2);
    t0 = now_ms();
    CHECK(c && cli_sends(c, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc") == 0);
    CHECK(c && cli_resp(c, &r) == 0);
    CHECK(now_ms() - t0 >= 200);
    check_envelope(&r, 408, "invalid_request_error", "request_timeout");
    CHECK(c && cli_closed(c, 3000));
    cli_free(c);

    /* idle keep-alive (400 ms): closed without a response */
    c = cli_new(port2);
    CHECK(c && cli_sends(c, "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n") == 0);
    CHECK(c && cli_resp(c, &r) == 0 && r.status == 200);
    t0 = now_ms();
    CHECK(c && cli_closed(c, 3000));
    CHECK(now_ms() - t0 >= 300);
    cli_free(c);

    /* a connection that never sends a byte */
    c = cli_new(port2);
    t0 = now_ms();
    CHECK(c && cli_closed(c, 3000));
    CHECK(now_ms() - t0 >= 200);
    cli_free(c);
}

static void test_stream_outlives_idle(void)
{
    struct cli *c = cli_new(port2);   /* idle 400 ms; 3 chunks 250 ms apart */
    struct resp r;
    char v[64];
    CHECK(c && cli_sends(c, "GET /stream?ms=250 HTTP/1.1\r\nHost: t\r\n\r\n") == 0);
    CHECK(c && cli_resp(c, &r) == 0 && r.status == 200);
    CHECK_STR(r.body, "data: 1\n\ndata: 2\n\ndata: 3\n\n");
    CHECK_STR(hval(&r, "Transfer-Encoding", v, sizeof v), "chunked");
    cli_free(c);
}

/* The global cap (2 on s2): a newcomer closes the connection idle the longest; only when
 * none is idle is it refused (503). */
static void test_conn_cap(void)
{
    struct cli *a = cli_new(port2), *b, *c, *d;
    struct resp r;
    char v[64];
    int i;

    CHECK(a && cli_sends(a, "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n") == 0);
    CHECK(a && cli_resp(a, &r) == 0 && r.status == 200);
    msleep(20);
    b = cli_new(port2);
    CHECK(b && cli_sends(b, "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n") == 0);
    CHECK(b && cli_resp(b, &r) == 0 && r.status == 200);
    /* both idle: the third is served, a (idle longest) is closed */
    c = cli_new(port2);
    CHECK(c && cli_sends(c, "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n") == 0);
    CHECK(c && cli_resp(c, &r) == 0 && r.status == 200);
    CHECK(a && cli_closed(a, 1000));
    CHECK(b && cli_sends(b, "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n") == 0);
    CHECK(b && cli_resp(b, &r) == 0 && r.status == 200);   /* b lives on */
    cli_free(a);
    /* both busy (answers deferred): nobody to close, the newcomer gets the 503 */
    CHECK(b && cli_sends(b, "GET /defer?ms=300 HTTP/1.1\r\nHost: t\r\n\r\n") == 0);
    CHECK(c && cli_sends(c, "GET /defer?ms=300 HTTP/1.1\r\nHost: t\r\n\r\n") == 0);
    msleep(50);
    expect_fail(port2, "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n", 503, "too_many_connections");
    /* a probe path is answered past the cap, on the reserve, and the connection closes */
    for (i = 0; i < 3; i++) {
        d = cli_new(port2);
        CHECK(d && cli_sends(d, "GET /echo-probe HTTP/1.1\r\nHost: t\r\n\r\n") == 0);
        CHECK(d && cli_resp(d, &r) == 0 && r.status == 404);
        CHECK_STR(hval(&r, "Connection", v, sizeof v), "close");
        cli_free(d);
    }
    d = cli_new(port2);    /* one that sends nothing still gets the 503 (head overdue) */
    CHECK(d && cli_resp(d, &r) == 0 && r.status == 503);
    cli_free(d);
    CHECK(b && cli_resp(b, &r) == 0 && r.status == 200);
    CHECK(c && cli_resp(c, &r) == 0 && r.status == 200);
    cli_free(b);
    cli_free(c);
}

/* The per-address cap (2 on s4, global 4): one address cannot take every slot. */
static void test_conn_cap_per_addr(void)
{
    struct cli *a = cli_new(port4), *b = cli_new(port4), *c, *o;
    struct resp r;
    char v[64];

    CHECK(a && cli_sends(a, "GET /defer?ms=400 HTTP/1.1\r\nHost: t\r\n\r\n") == 0);
    CHECK(b && cli_sends(b, "GET /defer?ms=400 HTTP/1.1\r\nHost: t\r\n\r\n") == 0);
    msleep(50);
    /* a third from 127.0.0.1: refused, though the server has room */
    c = cli_new(port4);
    CHECK(c && cli_resp(c, &r) == 0);
    check_envelope(&r, 503, "server_error", "too_many_connections");
    CHECK(c && cli_closed(c, 3000));
    cli_free(c);
    /* another address is served */
    o = cli_new_from(port4, "127.0.0.2");
    CHECK(o && cli_sends(o, "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n") == 0);
    CHECK(o && cli_resp(o, &r) == 0 && r.status == 200);
    CHECK_STR(hval(&r, "Connection", v, sizeof v), "keep-alive");
    /* once a and b are idle, a third from 127.0.0.1 closes a (its idle longest) */
    CHECK(a && cli_resp(a, &r) == 0 && r.status == 200);
    msleep(20);
    CHECK(b && cli_resp(b, &r) == 0 && r.status == 200);
    c = cli_new(port4);
    CHECK(c && cli_sends(c, "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n") == 0);
    CHECK(c && cli_resp(c, &r) == 0 && r.status == 200);
    CHECK(a && cli_closed(a, 1000));
    CHECK(o && cli_sends(o, "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n") == 0);
    CHECK(o && cli_resp(o, &r) == 0 && r.status == 200);   /* the other address untouched */
    cli_free(a);
    cli_free(b);
    cli_free(c);
    cli_free(o);
}

static void test_abort(void)
{
    int aborts = atomic_load(&n_aborts), fired = atomic_load(&n_deferred), i;
    struct cli *c = cli_new(port1);

    CHECK(c && cli_sends(c, "GET /defer?ms=600 HTTP/1.1\r\nHost: t\r\n\r\n") == 0);
    msleep(100);
    cli_reset(c);   /* gone: a reset (a FIN alone is a half-close, see test_half_close) */
    for (i = 0; i < 200 && atomic_load(&n_aborts) == aborts; i++)
        msleep(5);
    CHECK(atomic_load(&n_aborts) == aborts + 1);
    msleep(700);
    CHECK(atomic_load(&n_aborts) == aborts + 1);   /* once */
    CHECK(atomic_load(&n_deferred) == fired);      /* the handler did not answer after it */
}

/* A client that half-closes (shutdown SHUT_WR) after a complete request still gets its
 * response, then the close; EOF with the request itself incomplete means gone. */
static void test_half_close(void)
{
    int aborts = atomic_load(&n_aborts), fired = atomic_load(&n_deferred);
    int handled;
    struct cli *c;
    struct resp r;
    cJSON *j;
    double t0;

    /* answered later, from a timer */
    c = cli_new(port1);
    CHECK(c && cli_sends(c, "GET /defer?ms=150&n=5 HTTP/1.1\r\nHost: t\r\n\r\n") == 0);
    CHECK(c && shutdown(c->fd, SHUT_WR) == 0);
    CHECK(c && cli_resp(c, &r) == 0 && r.status == 200);
    CHECK(strstr(r.head, "Connection: close\r\n") != NULL);
    j = jbody(&r);
    CHECK_STR(jstr(j, "n"), "5");
    cJSON_Delete(j);
    CHECK(c && cli_closed(c, 3000));
    cli_free(c);
    CHECK(atomic_load(&n_deferred) == fired + 1);
    CHECK(atomic_load(&n_aborts) == aborts);

    /* a stream, to its end */
    c = cli_new(port1);
    CHECK(c && cli_sends(c, "GET /stream?ms=40 HTTP/1.1\r\nHost: t\r\n\r\n") == 0);
    CHECK(c && shutdown(c->fd, SHUT_WR) == 0);
    CHECK(c && cli_resp(c, &r) == 0 && r.status == 200);
    CHECK_STR(r.body, "data: 1\n\ndata: 2\n\ndata: 3\n\n");
    CHECK(c && cli_closed(c, 3000));
    cli_free(c);

    /* pipelined requests, all answered in order; a partial one after them is dropped at
     * once (no 408 after the header timeout) */
    c = cli_new(port1);
    CHECK(c && cli_sends(c, "GET /defer?ms=80&n=1 HTTP/1.1\r\nHost: t\r\n\r\n"
                            "GET /echo?n=2 HTTP/1.1\r\nHost: t\r\n\r\n"
                            "GET /defer?ms=10&n=3 HTTP/1.1\r\nHost: t\r\n\r\nGET /ec") == 0);
    CHECK(c && shutdown(c->fd, SHUT_WR) == 0);
    for (int i = 1; i <= 3; i++) {
        char want[4];
        snprintf(want, sizeof want, "%d", i);
        CHECK(c && cli_resp(c, &r) == 0 && r.status == 200);
        j = jbody(&r);
        CHECK_STR(jstr(j, "n"), want);
        cJSON_Delete(j);
    }
    t0 = now_ms();
    CHECK(c && cli_closed(c, 3000));
    CHECK(now_ms() - t0 < 1000);
    cli_free(c);
    CHECK(atomic_load(&n_aborts) == aborts);

    /* EOF in the middle of the head or the body: gone, nothing handled, nothing sent */
    handled = atomic_load(&n_handled);
    c = cli_new(port1);
    CHECK(c && cli_sends(c, "GET /echo HTTP/1.1\r\nHo") == 0);
    CHECK(c && shutdown(c->fd, SHUT_WR) == 0);
    CHECK(c && cli_closed(c, 1000));
    cli_free(c);
    c = cli_new(port1);
    CHECK(c && cli_sends(c, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc") == 0);
    CHECK(c && shutdown(c->fd, SHUT_WR) == 0);
    CHECK(c && cli_closed(c, 1000));
    cli_free(c);
    CHECK(atomic_load(&n_handled) == handled);

    /* a reset still means gone: the parked request is aborted at once */
    c = cli_new(port1);
    CHECK(c && cli_sends(c, "GET /defer?ms=600 HTTP/1.1\r\nHost: t\r\n\r\n") == 0);
    msleep(100);
    cli_reset(c);
    for (int i = 0; i < 200 && atomic_load(&n_aborts) == aborts; i++)
        msleep(5);
    CHECK(atomic_load(&n_aborts) == aborts + 1);
}

static void test_request_id(void)
{
    struct resp r;
    char v[128], req[512], id65[66];
    cJSON *j;

    CHECK(roundtrip(port1, "GET /echo HTTP/1.1\r\nHost: t\r\nX-Request-Id: trace-42.ABC\r\n\r\n",
                    &r) == 0);
    CHECK_STR(hval(&r, "X-Request-Id", v, sizeof v), "trace-42.ABC");
    j = jbody(&r);
    CHECK_STR(jstr(j, "id"), "trace-42.ABC");
    cJSON_Delete(j);
    CHECK(roundtrip(port1, "GET /echo HTTP/1.1\r\nHost: t\r\nX-Request-Id: has space\r\n\r\n",
                    &r) == 0);
    CHECK(is_gen_id(hval(&r, "X-Request-Id", v, sizeof v)));
    memset(id65, 'i', 65);
    id65[65] = '\0';
    snprintf(req, sizeof req, "GET /echo HTTP/1.1\r\nHost: t\r\nX-Request-Id: %s\r\n\r\n", id65);
    CHECK(roundtrip(port1, req, &r) == 0);
    CHECK(is_gen_id(hval(&r, "X-Request-Id", v, sizeof v)));
    id65[64] = '\0';
    snprintf(req, sizeof req, "GET /echo HTTP/1.1\r\nHost: t\r\nX-Request-Id: %s\r\n\r\n", id65);
    CHECK(roundtrip(port1, req, &r) == 0);
    CHECK_STR(hval(&r, "X-Request-Id", v, sizeof v), id65);
    /* errors made by the server carry an id too */
    CHECK(roundtrip(port1, "GARBAGE\r\n\r\n", &r) == 0);
    CHECK(is_gen_id(hval(&r, "X-Request-Id", v, sizeof v)));
}

static void test_error_envelope(void)
{
    struct resp r;
    char v[32];

    CHECK(roundtrip(port1, "GET /error HTTP/1.1\r\nHost: t\r\n\r\n", &r) == 0);
    CHECK(r.status == 422);
    CHECK_STR(r.body, "{\"error\":{\"type\":\"invalid_request_error\",\"code\":\"text_required\","
                      "\"message\":\"field 'text' is required\",\"param\":\"text\"}}");
    CHECK(roundtrip(port1, "GET /ratelimit HTTP/1.1\r\nHost: t\r\n\r\n", &r) == 0);
    CHECK(r.status == 429);
    CHECK_STR(hval(&r, "Retry-After", v, sizeof v), "7");
    CHECK_STR(r.body, "{\"error\":{\"type\":\"rate_limit_error\",\"code\":\"queue_full\","
                      "\"message\":\"queue is full\",\"param\":null}}");
}

static void test_streaming(void)
{
    struct cli *c = cli_new(port1);
    struct resp r;
    char v[64];

    CHECK(c && cli_sends(c, "GET /stream?ms=20 HTTP/1.1\r\nHost: t\r\n\r\n") == 0);
    CHECK(c && cli_resp(c, &r) == 0 && r.status == 200);
    CHECK_STR(hval(&r, "Transfer-Encoding", v, sizeof v), "chunked");
    CHECK_STR(hval(&r, "Content-Type", v, sizeof v), "text/event-stream");
    CHECK_STR(hval(&r, "Cache-Control", v, sizeof v), "no-cache");
    CHECK(hval(&r, "Content-Length", v, sizeof v) == NULL);
    CHECK_STR(r.body, "data: 1\n\ndata: 2\n\ndata: 3\n\n");
    /* the connection is reusable after the stream */
    CHECK(c && cli_sends(c, "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n") == 0);
    CHECK(c && cli_resp(c, &r) == 0 && r.status == 200);
    cli_free(c);

    /* HTTP/1.0: no chunked coding, the close ends the body */
    CHECK(roundtrip(port1, "GET /stream?ms=5 HTTP/1.0\r\n\r\n", &r) == 0);
    CHECK(r.status == 200 && hval(&r, "Transfer-Encoding", v, sizeof v) == NULL);
    CHECK_STR(r.body, "data: 1\n\ndata: 2\n\ndata: 3\n\n");
}

static int header_count(const struct resp *r, const char *name)
{
    int n = 0;
    size_t nl = strlen(name);
    for (const char *l = strstr(r->head, "\r\n"); l && l[2]; l = strstr(l + 2, "\r\n"))
        n += strncasecmp(l + 2, name, nl) == 0 && l[2 + nl] == ':';
    return n;
}

/* A handler's own Cache-Control replaces the default one; either way it is sent once. */
static void test_stream_cache_control(void)
{
    struct resp r;
    char v[64];

    CHECK(roundtrip(port1, "GET /own-cache HTTP/1.1\r\nHost: t\r\n\r\n", &r) == 0);
    CHECK(r.status == 200 && header_count(&r, "Cache-Control") == 1);
    CHECK_STR(hval(&r, "Cache-Control", v, sizeof v), "no-store");
    CHECK(roundtrip(port1, "GET /stream?ms=1 HTTP/1.1\r\nHost: t\r\n\r\n", &r) == 0);
    CHECK(header_count(&r, "Cache-Control") == 1);
}

static int done_wait(int count)
{
    for (int i = 0; i < 200; i++) {
        int n;
        pthread_mutex_lock(&done_mu);
        n = done_last.count;
        pthread_mutex_unlock(&done_mu);
        if (n >= count)
            return 1;
        msleep(5);
    }
    return 0;
}

/* The completion hook: every request, with its status and body bytes, once. */
static void test_complete_hook(void)
{
    struct resp r;
    struct cli *c;
    int before;

    pthread_mutex_lock(&done_mu);
    before = done_last.count;
    pthread_mutex_unlock(&done_mu);
    CHECK(roundtrip(port3, "GET /error?x=1 HTTP/1.1\r\nHost: t\r\nX-Request-Id: hook-1\r\n\r\n",
                    &r) == 0);
    CHECK(done_wait(before + 1));
    pthread_mutex_lock(&done_mu);
    CHECK(done_last.status == 422 && done_last.bytes == r.body_len && done_last.ms >= 0);
    CHECK_STR(done_last.path, "/error");
    CHECK_STR(done_last.method, "GET");
    CHECK_STR(done_last.id, "hook-1");
    pthread_mutex_unlock(&done_mu);
    CHECK(roundtrip(port3, "GET /burst HTTP/1.1\r\nHost: t\r\n\r\n", &r) == 0);
    CHECK(done_wait(before + 2));
    pthread_mutex_lock(&done_mu);
    CHECK(done_last.status == 200 && done_last.bytes == 8);
    pthread_mutex_unlock(&done_mu);
    CHECK(roundtrip(port3, "BLAH / NOPE\r\n\r\n", &r) == 0 && r.status == 400);
    CHECK(done_wait(before + 3));
    pthread_mutex_lock(&done_mu);
    CHECK(done_last.status == 400 && done_last.bytes > 0);
    pthread_mutex_unlock(&done_mu);
    /* a client that leaves before the answer: 499 */
    c = cli_new(port3);
    CHECK(c && cli_sends(c, "GET /defer?ms=300 HTTP/1.1\r\nHost: t\r\n\r\n") == 0);
    msleep(50);
    cli_reset(c); /* a reset: a plain close would be a half-close, still answered */
    CHECK(done_wait(before + 4));
    pthread_mutex_lock(&done_mu);
    CHECK(done_last.status == 499 && done_last.bytes == 0);
    CHECK_STR(done_last.path, "/defer");
    pthread_mutex_unlock(&done_mu);
    msleep(400);
    pthread_mutex_lock(&done_mu);
    CHECK(done_last.count == before + 4); /* reported once */
    pthread_mutex_unlock(&done_mu);
}

static void test_query(void)
{
    struct resp r;
    cJSON *j;
    CHECK(roundtrip(port1, "GET /echo?q=a%20b+c%2Bd%zz%4&e=&flag&n=%E2%82%AC%00 HTTP/1.1\r\n"
                           "Host: t\r\n\r\n", &r) == 0);
    j = jbody(&r);
    CHECK_STR(jstr(j, "q"), "a b c+d%zz%4");
    CHECK_STR(jstr(j, "e"), "");
    CHECK_STR(jstr(j, "flag"), "");
    CHECK_STR(jstr(j, "n"), "\xE2\x82\xAC%00");
    CHECK(jnull(j, "missing"));
    cJSON_Delete(j);
}

static void test_http10_and_head(void)
{
    struct cli *c;
    struct resp r;
    char v[32];

    c = cli_new(port1);
    CHECK(c && cli_sends(c, "GET /echo HTTP/1.0\r\n\r\n") == 0);
    CHECK(c && cli_resp(c, &r) == 0 && r.status == 200);
    CHECK_STR(hval(&r, "Connection", v, sizeof v), "close");
    CHECK(c && cli_closed(c, 3000));
    cli_free(c);

    c = cli_new(port1);
    CHECK(c && cli_sends(c, "GET /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\n") == 0);
    CHECK(c && cli_resp(c, &r) == 0 && r.status == 200);
    CHECK_STR(hval(&r, "Connection", v, sizeof v), "keep-alive");
    /* HEAD: Content-Length but no body; the next response must parse cleanly */
    CHECK(c && cli_sends(c, "HEAD /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\n") == 0);
    CHECK(c && cli_resp2(c, &r, 1, 0) == 0 && r.status == 200);
    CHECK(hval(&r, "Content-Length", v, sizeof v) && atoi(v) > 0);
    CHECK(c && cli_sends(c, "GET /echo?n=9 HTTP/1.0\r\n\r\n") == 0);
    CHECK(c && cli_resp(c, &r) == 0 && r.status == 200);
    CHECK(strstr(r.body, "\"n\":\"9\"") != NULL);
    CHECK(c && cli_closed(c, 3000));
    cli_free(c);
}

static void test_expect_continue(void)
{
    struct cli *c = cli_new(port1);
    struct resp r;
    CHECK(c && cli_sends(c, "POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
                            "Content-Length: 4\r\n\r\n") == 0);
    CHECK(c && cli_resp2(c, &r, 0, 1) == 0 && r.status == 100);
    CHECK(c && cli_sends(c, "ping") == 0);
    CHECK(c && cli_resp(c, &r) == 0 && r.status == 200 && strstr(r.body, "\"body\":\"ping\""));
    cli_free(c);
}

static void test_ipv6(void)
{
    struct cli c6;
    struct resp r;
    if (!s6) {
        printf("test_http: no IPv6 loopback here, IPv6 case skipped\n");
        return;
    }
    CHECK(cli_open_af(&c6, AF_INET6, port6) == 0);
    CHECK(cli_sends(&c6, "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n") == 0);
    CHECK(cli_resp(&c6, &r) == 0 && r.status == 200);
    CHECK(strstr(r.body, "\"peer\":\"[::1]:") != NULL);
    close(c6.fd);
}

/* More pipelined bytes than the server holds (64 KiB) behind a deferred request: it stops
 * reading, then resumes, and every response comes back in order. */
static void test_pipeline_flood(void)
{
    enum { N = 4000 };
    struct cli *c = cli_new(port1);
    size_t cap = (size_t)N * 48 + 64, n;
    char *reqs = malloc(cap);
    int i, in_order = 1;
    struct resp *r = malloc(sizeof *r);

    n = (size_t)snprintf(reqs, cap, "GET /defer?ms=100&n=0 HTTP/1.1\r\nHost: t\r\n\r\n");
    for (i = 1; i < N; i++)
        n += (size_t)snprintf(reqs + n, cap - n, "GET /echo?n=%d HTTP/1.1\r\nHost: t\r\n\r\n", i);
    CHECK(n > 2 * 65536);
    CHECK(c && cli_send(c, reqs, n) == 0);
    for (i = 0; c && i < N && in_order; i++) {
        char want[16];
        cJSON *j;
        snprintf(want, sizeof want, "%d", i);
        if (cli_resp(c, r) != 0 || r->status != 200) {
            in_order = 0;
            break;
        }
        j = jbody(r);
        in_order = jstr(j, "n") && strcmp(jstr(j, "n"), want) == 0;
        cJSON_Delete(j);
    }
    CHECK(in_order && i == N);
    cli_free(c);
    free(reqs);
    free(r);
}

/* Abort of a stream in progress; stop_accepting and server_close called from a handler. */
static void test_stream_abort_and_drain(void)
{
    int aborts = atomic_load(&n_aborts), closed = atomic_load(&n_closed), i, refused = 0;
    struct cli *c = cli_new(port1), *a, *b, *d;
    struct resp r;
    char v[32];

    CHECK(c && cli_sends(c, "GET /stream?ms=300 HTTP/1.1\r\nHost: t\r\n\r\n") == 0);
    msleep(100);
    cli_reset(c);
    for (i = 0; i < 200 && atomic_load(&n_aborts) == aborts; i++)
        msleep(5);
    CHECK(atomic_load(&n_aborts) == aborts + 1);

    a = cli_new(port3);
    d = cli_new(port3);
    CHECK(a && cli_sends(a, "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n") == 0);
    CHECK(a && cli_resp(a, &r) == 0 && r.status == 200);
    CHECK_STR(hval(&r, "Connection", v, sizeof v), "keep-alive");
    b = cli_new(port3);
    CHECK(b && cli_sends(b, "GET /drain HTTP/1.1\r\nHost: t\r\n\r\n") == 0);
    CHECK(b && cli_resp(b, &r) == 0 && r.status == 200);
    CHECK_STR(hval(&r, "Connection", v, sizeof v), "close");   /* draining */
    CHECK(b && cli_closed(b, 3000));
    cli_free(b);
    for (i = 0; i < 100 && !refused; i++) {
        struct cli *e = cli_new(port3);
        refused = e == NULL;
        cli_free(e);
        if (!refused)
            msleep(10);
    }
    CHECK(refused);
    CHECK(a && cli_sends(a, "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n") == 0);
    CHECK(a && cli_resp(a, &r) == 0 && r.status == 200);
    CHECK_STR(hval(&r, "Connection", v, sizeof v), "close");
    CHECK(a && cli_closed(a, 3000));
    cli_free(a);
    CHECK(d && cli_sends(d, "GET /shutdown HTTP/1.1\r\nHost: t\r\n\r\n") == 0);
    CHECK(d && cli_closed(d, 3000));                            /* no response: closed */
    cli_free(d);
    for (i = 0; i < 200 && atomic_load(&n_closed) == closed; i++)
        msleep(5);
    CHECK(atomic_load(&n_closed) == closed + 1);
}

/* The peer resets while the handler writes: EPIPE must be an error, not a SIGPIPE death. */
static void test_write_to_reset_peer(void)
{
    struct linger lg = {1, 0};
    int i, before = atomic_load(&n_handled);
    for (i = 0; i < 20; i++) {
        struct cli *c = cli_new(port1);
        CHECK(c && cli_sends(c, "GET /burst HTTP/1.1\r\nHo") == 0);
        msleep(20);             /* the server holds a partial head */
        CHECK(c && cli_sends(c, "st: t\r\n\r\n") == 0);
        if (c)
            setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        cli_free(c);            /* RST right behind the request */
    }
    msleep(100);
    CHECK(atomic_load(&n_handled) > before);  /* the server processed them and is alive: */
    struct resp r;
    CHECK(roundtrip(port1, "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n", &r) == 0 && r.status == 200);
}

/* A response larger than the socket takes at once (the client's receive buffer is small):
 * the part written at once and the rest queued behind it arrive whole and in order, twice
 * on one connection, and the connection goes on. */
static void test_big_response(void)
{
    struct sockaddr_in a;
    struct timeval tv = {10, 0};
    int fd = socket(AF_INET, SOCK_STREAM, 0), rcv = 64 * 1024;
    char head[4096];

    CHECK(fd >= 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv); /* before connect: no autotuning */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port3);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
    for (int round = 0; round < 2; round++) {
        static const char req[] = "GET /big HTTP/1.1\r\nHost: t\r\n\r\n";
        size_t hlen = 0, got = 0, bad = 0;
        char *e = NULL, *cl;
        CHECK(send(fd, req, sizeof req - 1, MSG_NOSIGNAL) == (ssize_t)(sizeof req - 1));
        while (!e && hlen < sizeof head - 1) { /* the head, a byte at a time: nothing past it */
            ssize_t k = recv(fd, head + hlen, 1, 0);
            if (k <= 0)
                break;
            hlen++;
            head[hlen] = '\0';
            e = hlen >= 4 ? strstr(head, "\r\n\r\n") : NULL;
        }
        CHECK(e != NULL && strncmp(head, "HTTP/1.1 200 ", 13) == 0);
        cl = e ? strcasestr(head, "\r\nContent-Length: ") : NULL;
        CHECK(cl && strtoul(cl + 18, NULL, 10) == BIG_BYTES);
        while (e && got < BIG_BYTES) {
            char buf[65536];
            size_t want = BIG_BYTES - got < sizeof buf ? BIG_BYTES - got : sizeof buf;
            ssize_t k = recv(fd, buf, want, 0);
            if (k <= 0)
                break;
            for (ssize_t i = 0; i < k; i++)
                bad += buf[i] != big_byte(got + (size_t)i);
            got += (size_t)k;
        }
        CHECK(got == BIG_BYTES);
        CHECK(bad == 0);
    }
    close(fd);
    struct resp r;
    CHECK(roundtrip(port3, "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n", &r) == 0 && r.status == 200);
}

static const char *const probe_paths[] = {"/echo-probe", NULL};

static int start_servers(void)
{
    struct http_limits l1, l2, l4;
    struct http_server *bad = NULL;

    http_limits_default(&l1);
    l1.max_header_bytes = 2048;
    l1.max_headers = 20;
    l1.max_url = 512;
    l1.max_body = 4096;
    l1.header_timeout_ms = 3000;
    l1.body_timeout_ms = 3000;
    l1.idle_timeout_ms = 5000;
    l2 = l1;
    l2.max_conns = 2;
    l2.probe_paths = probe_paths;
    l2.probe_reserve = 2;
    l2.header_timeout_ms = 250;
    l2.body_timeout_ms = 250;
    l2.idle_timeout_ms = 400;
    CHECK(http_server_start(&loop, "127.0.0.1", 0, &l1, handler, &s1, &s1) == 0);
    CHECK(http_server_start(&loop, "localhost", 0, &l2, handler, &s2, &s2) == 0);
    CHECK(http_server_start(&loop, "127.0.0.1", 0, NULL, handler, &s3, &s3) == 0);
    l4 = l1;
    l4.max_conns = 4;
    l4.max_conns_per_addr = 2;
    CHECK(http_server_start(&loop, "127.0.0.1", 0, &l4, handler, &s4, &s4) == 0);
    if (!s1 || !s2 || !s3 || !s4)
        return -1;
    port4 = http_server_port(s4);
    port1 = http_server_port(s1);
    port2 = http_server_port(s2);
    port3 = http_server_port(s3);
    http_server_on_complete(s3, on_complete, NULL);
    CHECK(port1 > 0 && port2 > 0 && port1 != port2);
    CHECK(http_server_connections(s1) == 0);
    CHECK(http_server_start(&loop, "not-an-ip", 0, NULL, handler, NULL, &bad) == UV_EINVAL);
    CHECK(http_server_start(&loop, "127.0.0.1", 70000, NULL, handler, NULL, &bad) == UV_EINVAL);
    CHECK(http_server_start(&loop, "127.0.0.1", port1, NULL, handler, NULL, &bad) == UV_EADDRINUSE);
    CHECK(bad == NULL);
    if (http_server_start(&loop, "[::1]", 0, &l1, handler, &s6, &s6) == 0)
        port6 = http_server_port(s6);
    return 0;
}

int main(void)
{
    pthread_t th;
    struct cli *pending;
    int aborts;

    test_pure();
    CHECK(uv_loop_init(&loop) == 0);
    uv_async_init(&loop, &stop_async, on_stop);
    if (start_servers() < 0)
        return tcheck_summary("test_http");
    pthread_create(&th, NULL, loop_main, NULL);

    test_simple_get();
    test_post_body();
    test_keepalive();
    test_pipelining();
    test_split_bytes();
    test_header_limits();
    test_url_limit();
    test_body_limits();
    test_bad_requests();
    test_request_id();
    test_error_envelope();
    test_streaming();
    test_stream_cache_control();
    test_complete_hook();
    test_query();
    test_http10_and_head();
    test_expect_continue();
    test_versions();
    test_transfer_codings();
    test_chunked_trailers();
    test_head();
    test_ipv6();
    test_abort();
    test_half_close();
    test_write_to_reset_peer();
    test_big_response();
    test_pipeline_flood();
    test_stream_abort_and_drain();
    test_timeouts();
    test_stream_outlives_idle();
    test_conn_cap();
    test_conn_cap_per_addr();

    /* close with a request pending: it is aborted, the servers report closed */
    aborts = atomic_load(&n_aborts);
    pending = cli_new(port1);
    CHECK(pending && cli_sends(pending, "GET /defer?ms=10000 HTTP/1.1\r\nHost: t\r\n\r\n") == 0);
    msleep(100);
    uv_async_send(&stop_async);
    pthread_join(th, NULL);
    CHECK(atomic_load(&n_aborts) == aborts + 1);
    CHECK(atomic_load(&n_closed) == (s6 ? 5 : 4));
    CHECK(pending && cli_closed(pending, 1000));
    cli_free(pending);
    CHECK(uv_loop_close(&loop) == 0);
    return tcheck_summary("test_http");
}
