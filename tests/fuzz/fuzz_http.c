/* fuzz_http.c - libFuzzer harness: raw bytes into service/http.c over a real loopback socket. */
/*
 * One server runs in-process on 127.0.0.1:<any> (started in LLVMFuzzerInitialize, closed by
 * an atexit handler so LeakSanitizer sees a clean exit). Everything runs on this thread: the
 * harness is the client with a non-blocking socket and drives the uv loop with
 * uv_run(UV_RUN_NOWAIT) in bounded loops.
 *
 * Input layout:  [mode] [chunk seed] [bytes sent to the server ...]
 *   mode bit 0 (0x01)  half-close (shutdown SHUT_WR) after the last byte
 *   mode bit 1 (0x02)  wait for the server to close (up to WAIT_MS: timeouts fire)
 *   mode bit 2 (0x04)  close the client with a reset (SO_LINGER 0) instead of a FIN
 *   mode bit 3 (0x08)  occupy the connection cap first: MAX_CONNS idle connections from
 *                      other addresses (the request's connection closes the oldest)
 *   mode bits 4-5      largest chunk: 1, 7, 64 or 1024 bytes
 *   mode bit 6 (0x40)  with bit 3: the occupants each have a request in hand (/~, answered
 *                      after HOLD_MS), so none can be closed: the request gets 503
 *   mode bit 7 (0x80)  with bit 3: PER_ADDR occupants from the request's own address
 *                      (its per-address cap instead of the global one)
 *   chunk seed         0: everything in one send(); else seeds the chunk-size sequence
 * Seeds in corpus/fuzz_http/ start with "0A" (mode 0x30: 1024-byte chunks, nothing else).
 *
 * Handler routes (by the second byte of the path): /d... answers later from a uv timer,
 * /~... answers after HOLD_MS,
 * /s... streams three chunks from a timer, /b... streams inside the handler, /e... sends the
 * error envelope, /n... 204, /q... echoes query parameters, anything else echoes the body
 * length. Oracles: the request accessors keep their documented contracts, every byte the
 * server sends parses as HTTP/1.1 responses (llhttp, response mode; skipped when the input
 * mentions HEAD, whose responses carry no body), and every connection is closed within
 * CLEANUP_MS of the client closing.
 */
#include "http.h"

#include <cjson/cJSON.h>
#include <llhttp.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CONNS  3
#define PER_ADDR   2
#define HOLD_MS    10   /* /~: a request the server holds while the fuzzed one arrives */
#define SETTLE_MS  200  /* without the wait bit: give up waiting for quiet after this */
#define WAIT_MS    120  /* with the wait bit: longer than every server timeout below */
#define CLEANUP_MS 2000 /* after the client closed: the server must have closed too */
#define RECV_BUF   65536

#define MODE_HALF_CLOSE 0x01
#define MODE_WAIT       0x02
#define MODE_RESET      0x04
#define MODE_CAP        0x08
#define MODE_BUSY       0x40
#define MODE_SAME_ADDR  0x80

struct later {
    uv_timer_t timer;
    struct http_req *req;
    int ticks;
};

struct client {
    int fd;
    int eof;   /* the server closed (or reset) its side */
    int check; /* validate the response bytes with llhttp */
    llhttp_t parser;
    llhttp_settings_t settings;
    size_t responses;
};

static uv_loop_t loop;
static struct http_server *srv;
static int srv_port;
static int srv_closed;
static long pending; /* our own timers (answer-later, streams) not yet freed */

/* ------------------------------------------------------------------ server side --- */

static void later_free(uv_handle_t *h)
{
    free(h->data);
    pending--;
}

static void later_close(struct later *l)
{
    uv_timer_stop(&l->timer);
    uv_close((uv_handle_t *)&l->timer, later_free);
}

static void later_abort(struct http_req *r, void *data)
{
    (void)r;
    later_close(data);
}

static void defer_fire(uv_timer_t *t)
{
    struct later *l = t->data;
    size_t len;

    http_req_body(l->req, &len);
    http_resp_header(l->req, "X-Deferred", "1");
    if (len % 2)
        http_respond_error(l->req, 503, "busy", NULL, "deferred error for %zu bytes", len);
    else
        http_respond(l->req, 200, "text/plain", "deferred\n", 9);
    later_close(l);
}

static void stream_tick(uv_timer_t *t)
{
    struct later *l = t->data;
    char line[48];
    int n = snprintf(line, sizeof line, "data: {\"tick\": %d}\n\n", ++l->ticks);

    if (http_stream_write(l->req, line, (size_t)n) < 0)
        return; /* the connection is gone: the abort callback closes the timer */
    if (l->ticks < 3)
        return;
    http_stream_end(l->req);
    later_close(l);
}

static void start_later(struct http_req *r, uv_timer_cb cb, uint64_t ms, uint64_t repeat)
{
    struct later *l = calloc(1, sizeof *l);

    if (!l) {
        http_respond(r, 500, "text/plain", "oom\n", 4);
        return;
    }
    l->req = r;
    uv_timer_init(&loop, &l->timer);
    l->timer.data = l;
    pending++;
    http_req_on_abort(r, later_abort, l);
    uv_timer_start(&l->timer, cb, ms, repeat);
}

static void add_str(cJSON *o, const char *k, const char *v)
{
    if (v)
        cJSON_AddStringToObject(o, k, v);
    else
        cJSON_AddNullToObject(o, k);
}

static void route_query(struct http_req *r)
{
    static const char *const names[] = {"a", "b", "", "%41", "x y", "ms"};
    cJSON *o = cJSON_CreateObject();
    size_t i;

    for (i = 0; o && i < sizeof names / sizeof names[0]; i++)
        add_str(o, names[i], http_req_query_param(r, names[i]));
    http_respond_json(r, 200, o);
    cJSON_Delete(o);
}

static void route_echo(struct http_req *r, size_t len)
{
    cJSON *o = cJSON_CreateObject();
    const char *echo = http_req_header(r, "X-Echo");

    add_str(o, "method", http_req_method(r));
    add_str(o, "path", http_req_path(r));
    add_str(o, "query", http_req_query(r));
    add_str(o, "id", http_req_id(r));
    add_str(o, "peer", http_req_peer(r));
    add_str(o, "type", http_req_header(r, "Content-Type"));
    cJSON_AddNumberToObject(o, "body_len", (double)len);
    if (echo)
        http_resp_header(r, "X-Echo", echo); /* copied; CR/LF and ':' in names refused */
    http_resp_header(r, "X-Bad", "a\r\nInjected: 1");
    http_respond_json(r, 200, o);
    cJSON_Delete(o);
}

/* The documented contracts of the request accessors. */
static void check_request(struct http_req *r)
{
    size_t len, i, n;
    const char *body = http_req_body(r, &len);
    const char *id = http_req_id(r);
    char *copy;

    if (!http_req_method(r) || !http_req_path(r) || !http_req_query(r) || !body ||
        body[len] != '\0' || len > 2048) {
        fprintf(stderr, "fuzz_http: bad request accessors (body %zu bytes)\n", len);
        abort();
    }
    n = strlen(id);
    for (i = 0; i < n; i++)
        if (id[i] < 0x21 || id[i] > 0x7e)
            break;
    if (n == 0 || n > 64 || i != n) {
        fprintf(stderr, "fuzz_http: request id \"%s\" breaks its contract\n", id);
        abort();
    }
    copy = http_req_strdup(r, http_req_path(r));
    if (!copy || strcmp(copy, http_req_path(r)) != 0 || !http_req_alloc(r, 3000))
        abort();
}

static void handler(struct http_req *r, void *data)
{
    const char *p = http_req_path(r);
    size_t len;

    (void)data;
    check_request(r);
    http_req_body(r, &len);
    switch (p[0] ? p[1] : 0) {
    case 'd':
        start_later(r, defer_fire, len % 3, 0);
        break;
    case '~':
        start_later(r, defer_fire, HOLD_MS, 0);
        break;
    case 's':
        http_stream_begin(r, 200, "text/event-stream");
        start_later(r, stream_tick, 1, 1);
        break;
    case 'b':
        http_stream_begin(r, 200, "text/plain");
        http_stream_write(r, "one\n", 4);
        http_stream_write(r, "", 0);
        http_stream_write(r, "two\n", 4);
        http_stream_end(r);
        break;
    case 'e':
        http_resp_header(r, "Retry-After", "7");
        http_respond_error(r, 422, "text_required", "text", "field '%s' is required", "text");
        break;
    case 'n':
        http_respond(r, 204, "text/plain", "ignored", 7);
        break;
    case 'q':
        route_query(r);
        break;
    default:
        route_echo(r, len);
        break;
    }
}

static void on_server_closed(void *data)
{
    (void)data;
    srv_closed = 1;
}

static int loop_quiet(void)
{
    struct pollfd p = {.fd = uv_backend_fd(&loop), .events = POLLIN};

    return uv_backend_timeout(&loop) != 0 && poll(&p, 1, 0) == 0;
}

/* Wait (at most ms) for the loop's backend or fd to have something to do. */
static void loop_wait(int fd, int ms)
{
    struct pollfd p[2] = {{.fd = uv_backend_fd(&loop), .events = POLLIN},
                          {.fd = fd, .events = POLLIN}};
    int t = uv_backend_timeout(&loop);

    if (t < 0 || t > ms)
        t = ms;
    poll(p, fd >= 0 ? 2 : 1, t);
}

static void teardown(void)
{
    uint64_t start = uv_hrtime();

    if (!srv)
        return;
    http_server_close(srv, on_server_closed, NULL);
    srv = NULL;
    while (!srv_closed && uv_hrtime() - start < (uint64_t)CLEANUP_MS * 1000000) {
        uv_run(&loop, UV_RUN_NOWAIT);
        loop_wait(-1, 1);
    }
    uv_run(&loop, UV_RUN_NOWAIT);
    if (!srv_closed || uv_loop_close(&loop) != 0) {
        fprintf(stderr, "fuzz_http: http_server_close left the loop busy (closed: %d)\n",
                srv_closed);
        abort();
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct http_limits lim;
    int rc;

    (void)argc;
    (void)argv;
    http_limits_default(&lim);
    lim.max_header_bytes = 1024;
    lim.max_headers = 12;
    lim.max_url = 200;
    lim.max_body = 2048;
    lim.max_conns = MAX_CONNS;
    lim.max_conns_per_addr = PER_ADDR;
    lim.header_timeout_ms = 25;
    lim.body_timeout_ms = 25;
    lim.idle_timeout_ms = 25;
    uv_loop_init(&loop);
    rc = http_server_start(&loop, "127.0.0.1", 0, &lim, handler, NULL, &srv);
    if (rc < 0) {
        fprintf(stderr, "fuzz_http: http_server_start: %s\n", uv_strerror(rc));
        exit(1);
    }
    srv_port = http_server_port(srv);
    atexit(teardown);
    return 0;
}

/* ------------------------------------------------------------------ client side --- */

static int on_response_done(llhttp_t *p)
{
    struct client *c = p->data;

    c->responses++;
    return 0;
}

/* Spread the clients over 127.1.0.1 - 127.1.239.250: each source address has its own
 * ephemeral ports, so thousands of connections a second never run out of them while
 * earlier ones sit in TIME_WAIT (whatever net.ipv4.tcp_tw_reuse says). */
static uint32_t next_source;

static void bind_source_n(int fd, uint32_t n)
{
    struct sockaddr_in a;

    n %= 60000;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(0x7f010000u | (n / 250) << 8 | (n % 250 + 1));
    bind(fd, (struct sockaddr *)&a, sizeof a); /* on failure: the kernel's choice */
}

/* Source address number n (one per client unless several must share one). */
static int client_open(uint32_t n)
{
    struct sockaddr_in a;
    struct pollfd p;
    int one = 1, err = 0, rc;
    socklen_t len = sizeof err;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -1;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)srv_port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    bind_source_n(fd, n);
    /* Non-blocking, so that libFuzzer's timer signal cannot interrupt it half-way; on
     * loopback the kernel completes the handshake without the server's accept(). */
    rc = connect(fd, (struct sockaddr *)&a, sizeof a);
    if (rc < 0 && errno == EINPROGRESS) {
        p.fd = fd;
        p.events = POLLOUT;
        do
            rc = poll(&p, 1, CLEANUP_MS);
        while (rc < 0 && errno == EINTR);
        if (rc == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0)
            rc = 0;
        else
            errno = rc == 0 ? ETIMEDOUT : err ? err : errno;
    }
    if (rc != 0) {
        fprintf(stderr, "fuzz_http: connect: %s\n", strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static void client_close(int fd, int reset)
{
    struct linger lg = {1, 0};

    if (fd < 0)
        return;
    if (reset)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
}

/* Read what the server sent; feed it to the response parser. */
static void client_drain(struct client *c)
{
    static char buf[RECV_BUF];

    while (!c->eof) {
        ssize_t n = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        if (n <= 0) {
            c->eof = 1;
            if (n == 0 && c->check && llhttp_finish(&c->parser) != HPE_OK)
                c->check = 0; /* a response cut by the close: allowed */
            return;
        }
        if (c->check) {
            llhttp_errno_t err = llhttp_execute(&c->parser, buf, (size_t)n);
            if (err != HPE_OK) {
                fprintf(stderr, "fuzz_http: the server sent a malformed response: %s (%s)\n",
                        llhttp_errno_name(err), llhttp_get_error_reason(&c->parser));
                abort();
            }
        }
    }
}

static void pump(struct client *c)
{
    uv_run(&loop, UV_RUN_NOWAIT);
    if (c)
        client_drain(c);
}

static uint32_t rng_next(uint32_t *s)
{
    uint32_t x = *s;

    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *s = x;
    return x;
}

static void client_send(struct client *c, const uint8_t *data, size_t size, uint8_t mode,
                        uint8_t seed)
{
    static const size_t max_chunk[4] = {1, 7, 64, 1024};
    uint32_t rng = seed * 0x9E3779B9u + 1;
    size_t off = 0, cap = max_chunk[(mode >> 4) & 3];
    uint64_t start = uv_hrtime();

    while (off < size && !c->eof && uv_hrtime() - start < (uint64_t)CLEANUP_MS * 1000000) {
        size_t n = seed ? 1 + rng_next(&rng) % cap : size - off;
        ssize_t k;

        if (n > size - off)
            n = size - off;
        k = send(c->fd, data + off, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            break; /* reset by the server */
        if (k > 0)
            off += (size_t)k;
        pump(c); /* the server reads this chunk on its own */
    }
}

/* Run until the server has answered and gone quiet (or closed, or the budget passed). */
static void settle(struct client *c, int wait)
{
    uint64_t start = uv_hrtime();
    uint64_t limit = (uint64_t)(wait ? WAIT_MS : SETTLE_MS) * 1000000;
    int quiet = 0;

    while (!c->eof && uv_hrtime() - start < limit) {
        pump(c);
        if (!wait && pending == 0 && loop_quiet()) {
            if (++quiet >= 2)
                return;
            continue;
        }
        quiet = 0;
        loop_wait(c->fd, 2);
    }
}

/* After the client closed: every connection and every timer of ours must go away. */
static void cleanup(void)
{
    uint64_t start = uv_hrtime();
    int quiet = 0;

    while (quiet < 2) {
        if (uv_hrtime() - start > (uint64_t)CLEANUP_MS * 1000000) {
            fprintf(stderr,
                    "fuzz_http: %u connection(s) and %ld timer(s) still open %d ms "
                    "after the client closed\n",
                    http_server_connections(srv), pending, CLEANUP_MS);
            abort();
        }
        uv_run(&loop, UV_RUN_NOWAIT);
        if (http_server_connections(srv) == 0 && pending == 0 && loop_quiet()) {
            quiet++;
            continue;
        }
        quiet = 0;
        loop_wait(-1, 1);
    }
}

/* Occupy a cap (see the mode bits); the occupants' fds go into fds[MAX_CONNS]. */
static void fill_cap(int *fds, uint8_t mode, uint32_t source)
{
    static const char hold[] = "GET /~ HTTP/1.1\r\nHost: a\r\n\r\n";
    int same = (mode & MODE_SAME_ADDR) != 0;
    int n = same ? PER_ADDR : MAX_CONNS, i;
    uint64_t start = uv_hrtime();

    for (i = 0; i < n; i++) {
        fds[i] = client_open(same ? source : next_source++);
        if (fds[i] >= 0 && (mode & MODE_BUSY))
            send(fds[i], hold, sizeof hold - 1, MSG_NOSIGNAL);
    }
    while ((int)http_server_connections(srv) < n &&
           uv_hrtime() - start < (uint64_t)SETTLE_MS * 1000000) {
        pump(NULL);
        loop_wait(-1, 1);
    }
    for (i = 0; i < 5; i++)
        pump(NULL); /* the held requests are parsed and handed over */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct client c;
    int extra[MAX_CONNS] = {-1, -1, -1};
    uint32_t source = next_source++;
    uint8_t mode, seed;
    int i;

    if (size < 2 || !srv)
        return 0;
    mode = data[0];
    seed = data[1];
    data += 2;
    size -= 2;
    memset(&c, 0, sizeof c);
    if (mode & MODE_CAP)
        fill_cap(extra, mode, source);
    c.fd = client_open(source);
    if (c.fd < 0)
        abort();
    c.check = memmem(data, size, "HEAD", 4) == NULL;
    llhttp_settings_init(&c.settings);
    c.settings.on_message_complete = on_response_done;
    llhttp_init(&c.parser, HTTP_RESPONSE, &c.settings);
    c.parser.data = &c;
    settle(&c, 0); /* the server accepts before the first byte arrives */
    client_send(&c, data, size, mode, seed);
    if (mode & MODE_HALF_CLOSE)
        shutdown(c.fd, SHUT_WR);
    settle(&c, (mode & MODE_WAIT) != 0);
    client_close(c.fd, (mode & MODE_RESET) != 0);
    for (i = 0; i < MAX_CONNS; i++)
        client_close(extra[i], 0);
    cleanup();
    return 0;
}
