/* test_hconn.c - hconn (keep-alive HTTP/1.1 client) against a scripted TCP server on one loop. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "hconn.h"
#include "tcheck.h"

#define GUARD_MS 5000         /* a state not reached by then fails the case */
#define IN_MAX   (7u << 20) /* one server connection's request bytes not yet parsed */
#define RX_MAX   (8u << 20) /* every request byte the server got in a case */
#define HDR_MAX  8192         /* the headers one exchange records */
#define BODY_MAX (64u << 10)  /* the body bytes one exchange keeps (all are counted) */

/* What the server does with one request. */
struct answer {
    const char *bytes; /* written back; NULL: nothing */
    size_t len;        /* 0: strlen(bytes) */
    size_t piece;      /* written this many bytes a write, one write a turn; 0: all */
    int close;         /* close after writing (bytes NULL: instead of answering) */
};

/* One connection the server accepted. */
struct sconn {
    uv_tcp_t tcp;
    uv_write_t wreq;
    struct sconn *next; /* srv.conns */
    int nreq;           /* requests read on it */
    int closing;
    const struct answer *out; /* being written */
    size_t off, wlen;
    size_t in_len;
    char in[IN_MAX];
};

static struct {
    uv_tcp_t tcp;
    int port;
    int accepts, requests, eofs; /* eofs: connections the client closed or reset */
    int close_on_accept;
    const struct answer *first; /* for the first request on a connection (NULL: no answer) */
    const struct answer *later; /* for every later one */
    void (*on_request)(void);   /* after each request is answered */
    struct sconn *conns;
    size_t rx_len;
    char rx[RX_MAX];
} srv;

static char sbuf[64u << 10];
static uv_loop_t loop;
static struct hc_pool *pool;
static uv_timer_t guard;
static uv_check_t check;
static int guard_fired;
static int (*want)(void *);
static void *want_arg;

/* One exchange as the caller sees it. */
struct xc {
    struct hc_xfer x;
    int ndone, result;
    int nheaders, stop_header, stop_body; /* stop_*: what on_header / on_body return */
    int header_after_body;
    size_t hlen, blen, btotal, big_vlen;
    uint32_t bhash;
    uint64_t done_ns;      /* uv_hrtime() when done ran */
    char headers[HDR_MAX]; /* "name: value\n" each */
    char body[BODY_MAX + 1];
};

/* --- waiting for a state, bounded --- */

static void poke(void)
{
    if (want && want(want_arg))
        uv_stop(&loop);
}

static void on_guard(uv_timer_t *t)
{
    (void)t;
    guard_fired = 1;
    uv_stop(&loop);
}

static void on_check(uv_check_t *c)
{
    (void)c;
    poke();
}

/* Run the loop until pred(arg) holds (1) or GUARD_MS passed (0). */
static int run_until(int (*pred)(void *), void *arg)
{
    int ok;
    if (pred(arg))
        return 1;
    want = pred;
    want_arg = arg;
    guard_fired = 0;
    uv_timer_start(&guard, on_guard, GUARD_MS, 0);
    uv_check_start(&check, on_check);
    while (!pred(arg) && !guard_fired)
        uv_run(&loop, UV_RUN_DEFAULT);
    ok = pred(arg);
    uv_timer_stop(&guard);
    uv_check_stop(&check);
    want = NULL;
    if (!ok)
        fprintf(stderr, "guard: the state was not reached in %d ms\n", GUARD_MS);
    return ok;
}

/* States to wait for. */
static int is_done(void *arg)
{
    return ((struct xc *)arg)->ndone > 0;
}

static int no_sconns(void *arg)
{
    (void)arg;
    return srv.conns == NULL;
}

static int pool_empty(void *arg)
{
    (void)arg;
    return hc_pool_open(pool) == 0;
}

static int eofs_reach(void *arg)
{
    return srv.eofs >= *(const int *)arg;
}

/* --- the scripted server --- */

static void on_sconn_closed(uv_handle_t *h)
{
    struct sconn *s = h->data, **pp;
    for (pp = &srv.conns; *pp; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    }
    free(s);
    poke();
}

static void sconn_close(struct sconn *s)
{
    if (s->closing)
        return;
    s->closing = 1;
    uv_close((uv_handle_t *)&s->tcp, on_sconn_closed);
}

static void swrite_next(struct sconn *s);

static void on_swritten(uv_write_t *w, int status)
{
    struct sconn *s = w->data;
    if (status < 0) {
        sconn_close(s);
        return;
    }
    s->off += s->wlen;
    swrite_next(s);
}

static void swrite_next(struct sconn *s)
{
    const struct answer *a = s->out;
    size_t len = a->len ? a->len : strlen(a->bytes);
    uv_buf_t buf;

    if (s->closing)
        return;
    if (s->off == len) {
        s->out = NULL;
        if (a->close)
            sconn_close(s);
        return;
    }
    s->wlen = a->piece && a->piece < len - s->off ? a->piece : len - s->off;
    buf = uv_buf_init((char *)a->bytes + s->off, (unsigned)s->wlen);
    s->wreq.data = s;
    if (uv_write(&s->wreq, (uv_stream_t *)&s->tcp, &buf, 1, on_swritten) != 0)
        sconn_close(s);
}

static void sanswer(struct sconn *s)
{
    const struct answer *a = s->nreq == 1 ? srv.first : srv.later;
    if (!a)
        return; /* never answers */
    if (!a->bytes) {
        if (a->close)
            sconn_close(s);
        return;
    }
    CHECK(s->out == NULL); /* the client sent a request before the last answer ended */
    s->out = a;
    s->off = 0;
    swrite_next(s);
}

static size_t content_length(const char *head, size_t n)
{
    static const char key[] = "\r\ncontent-length:";
    size_t k = sizeof(key) - 1;
    for (size_t i = 0; i + k <= n; i++) {
        if (strncasecmp(head + i, key, k) == 0)
            return strtoul(head + i + k, NULL, 10);
    }
    return 0;
}

/* Take every complete request (head and Content-Length body) off s->in and answer it. */
static void sparse(struct sconn *s)
{
    for (;;) {
        const char *e = memmem(s->in, s->in_len, "\r\n\r\n", 4);
        size_t total;
        if (s->closing || !e)
            return;
        total = (size_t)(e - s->in) + 4;
        total += content_length(s->in, total);
        if (s->in_len < total)
            return;
        memmove(s->in, s->in + total, s->in_len - total);
        s->in_len -= total;
        s->nreq++;
        srv.requests++;
        sanswer(s);
        if (srv.on_request)
            srv.on_request();
        poke();
    }
}

static void on_salloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)h;
    (void)hint;
    *buf = uv_buf_init(sbuf, sizeof(sbuf));
}

static void on_sread(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct sconn *s = st->data;
    size_t n = (size_t)nread;
    if (nread == 0)
        return;
    if (nread < 0) {
        srv.eofs++;
        sconn_close(s);
        poke();
        return;
    }
    CHECK(srv.rx_len + n <= RX_MAX && s->in_len + n <= IN_MAX);
    if (srv.rx_len + n > RX_MAX || s->in_len + n > IN_MAX) {
        sconn_close(s);
        return;
    }
    memcpy(srv.rx + srv.rx_len, buf->base, n);
    srv.rx_len += n;
    memcpy(s->in + s->in_len, buf->base, n);
    s->in_len += n;
    sparse(s);
}

static void on_accept(uv_stream_t *l, int status)
{
    struct sconn *s = calloc(1, sizeof(*s));
    CHECK(status == 0 && s != NULL);
    if (status != 0 || !s) {
        free(s);
        return;
    }
    uv_tcp_init(&loop, &s->tcp);
    s->tcp.data = s;
    s->next = srv.conns;
    srv.conns = s;
    if (uv_accept(l, (uv_stream_t *)&s->tcp) != 0) {
        sconn_close(s);
        return;
    }
    srv.accepts++;
    uv_tcp_nodelay(&s->tcp, 1);
    if (srv.close_on_accept)
        sconn_close(s);
    else
        uv_read_start((uv_stream_t *)&s->tcp, on_salloc, on_sread);
    poke();
}

/* A port of 127.0.0.1, listened on (srv) or not (refused). */
static int port_of(uv_tcp_t *t)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    CHECK(uv_tcp_getsockname(t, (struct sockaddr *)&ss, &len) == 0);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void srv_start(void)
{
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", 0, &sa);
    uv_tcp_init(&loop, &srv.tcp);
    CHECK(uv_tcp_bind(&srv.tcp, (const struct sockaddr *)&sa, 0) == 0);
    CHECK(uv_listen((uv_stream_t *)&srv.tcp, 128, on_accept) == 0);
    srv.port = port_of(&srv.tcp);
    CHECK(srv.port > 0);
}

/* --- the client side --- */

static int rec_header(struct hc_xfer *x, const char *name, size_t nlen, const char *value,
                      size_t vlen)
{
    struct xc *c = x->data;
    c->nheaders++;
    if (c->btotal)
        c->header_after_body = 1;
    if (nlen == 5 && memcmp(name, "X-Big", 5) == 0)
        c->big_vlen = vlen;
    if (c->hlen + nlen + vlen + 3 < sizeof(c->headers)) { /* the bytes given, NULs and all */
        memcpy(c->headers + c->hlen, name, nlen);
        memcpy(c->headers + c->hlen + nlen, ": ", 2);
        memcpy(c->headers + c->hlen + nlen + 2, value, vlen);
        c->hlen += nlen + 2 + vlen;
        c->headers[c->hlen++] = '\n';
        c->headers[c->hlen] = '\0';
    }
    return c->stop_header;
}

static int rec_body(struct hc_xfer *x, const char *p, size_t len)
{
    struct xc *c = x->data;
    size_t keep = len < BODY_MAX - c->blen ? len : BODY_MAX - c->blen;
    memcpy(c->body + c->blen, p, keep);
    c->blen += keep;
    c->body[c->blen] = '\0';
    c->btotal += len;
    for (size_t i = 0; i < len; i++)
        c->bhash = (c->bhash ^ (unsigned char)p[i]) * 16777619u;
    return c->stop_body;
}

static void on_done(struct hc_xfer *x, int result)
{
    struct xc *c = x->data;
    c->ndone++;
    c->result = result;
    c->done_ns = uv_hrtime();
    poke();
}

static struct xc *xc_new(void)
{
    struct xc *c = calloc(1, sizeof(*c));
    if (!c)
        abort();
    c->x.data = c;
    c->x.on_header = rec_header;
    c->x.on_body = rec_body;
    c->bhash = 2166136261u;
    return c;
}

static const char GET_HEAD[] = "GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

static struct hc_req req_to(const char *host, int port, const char *head)
{
    struct hc_req r;
    memset(&r, 0, sizeof(r));
    r.host = host;
    r.port = port;
    r.head = head;
    r.head_len = strlen(head);
    r.timeout_ms = 3000;
    r.connect_timeout_ms = 2000;
    return r;
}

/* Start c's exchange and run until its done ran. */
static void exchange(struct xc *c, const struct hc_req *r)
{
    CHECK(hc_start(pool, &c->x, r, on_done) == 0);
    CHECK(c->ndone == 0); /* never from inside hc_start */
    if (!run_until(is_done, c)) {
        CHECK(0);
        hc_cancel(&c->x); /* so that c may be freed */
    }
    CHECK(c->ndone == 1);
}

/* A GET to the server: a new record, run to its done. */
static struct xc *get(void)
{
    struct xc *c = xc_new();
    struct hc_req r = req_to("127.0.0.1", srv.port, GET_HEAD);
    exchange(c, &r);
    return c;
}

static void case_begin(const struct answer *first, const struct answer *later)
{
    CHECK(hc_pool_new(&loop, &pool) == 0);
    srv.accepts = srv.requests = srv.eofs = 0;
    srv.close_on_accept = 0;
    srv.first = first;
    srv.later = later;
    srv.on_request = NULL;
    srv.rx_len = 0;
}

/* Close the pool and the server's connections; each xc given must have seen done once. */
static void case_end(struct xc *a, struct xc *b, struct xc *c)
{
    struct xc *all[3] = {a, b, c};
    hc_pool_close(pool);
    pool = NULL;
    for (struct sconn *s = srv.conns; s; s = s->next)
        sconn_close(s);
    CHECK(run_until(no_sconns, NULL));
    for (int i = 0; i < 3; i++) {
        if (all[i])
            CHECK(all[i]->ndone == 1); /* still once after more turns of the loop */
        free(all[i]);
    }
}

static const struct answer OK_KEEP = {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 0, 0, 0};

/* --- the cases --- */

/* 1: a Content-Length answer; headers whole and trimmed; the request sent byte for byte. */
static void test_length(void)
{
    static const char body[] = "{\"id\":\"r1\",\"text\":\"hello\"}";
    static const char rbody[] = "{\"model\":\"m\",\"messages\":[]}";
    char resp[512], head[256];
    struct answer a = {resp, 0, 0, 0};
    struct xc *c = xc_new();
    struct hc_req r;

    snprintf(resp, sizeof(resp),
             "HTTP/1.1 200 OK\r\nContent-Type:   application/json  \r\nRetry-After:\t 7 \t\r\n"
             "X-Inner: a  b\r\nContent-Length: %zu\r\n\r\n%s",
             strlen(body), body);
    snprintf(head, sizeof(head),
             "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
             "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
             strlen(rbody));
    case_begin(&a, &a);
    r = req_to("127.0.0.1", srv.port, head);
    r.body = rbody;
    r.body_len = strlen(rbody);
    exchange(c, &r);
    CHECK(c->result == HC_OK);
    CHECK(c->x.status == 200);
    CHECK(c->x.err[0] == '\0');
    CHECK(c->nheaders == 4);
    CHECK_STR(c->headers, "Content-Type: application/json\nRetry-After: 7\nX-Inner: a  b\n"
                          "Content-Length: 26\n");
    CHECK_STR(c->body, body);
    CHECK(c->btotal == strlen(body));
    CHECK(srv.rx_len == strlen(head) + strlen(rbody) && memcmp(srv.rx, head, strlen(head)) == 0 &&
          memcmp(srv.rx + strlen(head), rbody, strlen(rbody)) == 0);
    CHECK(srv.accepts == 1 && srv.requests == 1);
    case_end(c, NULL, NULL);
}

/* 1b: a 6 MB request body (more than the socket takes at once: the rest is queued) and a
 * 300 KB response body, each over many reads. */
static void test_large(void)
{
    size_t qn = 6000000, pn = 300000;
    int small = 16384, big = 131072; /* the server's receive buffer: the request does not fit */
    char *q = malloc(qn), *resp = malloc(pn + 128), head[200];
    uint32_t h = 2166136261u;
    struct answer a = {resp, 0, 0, 0};
    struct xc *c = xc_new();
    struct hc_req r;
    int hn;

    if (!q || !resp)
        abort();
    for (size_t i = 0; i < qn; i++)
        q[i] = (char)('a' + i % 26);
    hn = snprintf(resp, 128, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", pn);
    for (size_t i = 0; i < pn; i++) {
        resp[hn + i] = (char)(i * 7 + i / 251);
        h = (h ^ (unsigned char)resp[hn + i]) * 16777619u;
    }
    a.len = (size_t)hn + pn;
    snprintf(head, sizeof(head),
             "POST /big HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %zu\r\n\r\n", qn);
    case_begin(&a, &a);
    CHECK(uv_recv_buffer_size((uv_handle_t *)&srv.tcp, &small) == 0); /* accepted ones inherit */
    r = req_to("127.0.0.1", srv.port, head);
    r.body = q;
    r.body_len = qn;
    exchange(c, &r);
    CHECK(uv_recv_buffer_size((uv_handle_t *)&srv.tcp, &big) == 0);
    CHECK(c->result == HC_OK && c->x.status == 200);
    CHECK(c->btotal == pn);
    CHECK(c->bhash == h);
    CHECK(srv.rx_len == strlen(head) + qn && memcmp(srv.rx, head, strlen(head)) == 0 &&
          memcmp(srv.rx + strlen(head), q, qn) == 0);
    CHECK(hc_pool_open(pool) == 1);
    case_end(c, NULL, NULL);
    free(q);
    free(resp);
}

/* 2: two exchanges in turn share one connection; canceling a finished one is a no-op. */
/* uv_walk: client sockets (their peer is the server) that keep the loop running. */
static void count_held(uv_handle_t *h, void *arg)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (h->type != UV_TCP || !uv_has_ref(h) || !uv_is_active(h) || uv_is_closing(h) ||
        uv_tcp_getpeername((uv_tcp_t *)h, (struct sockaddr *)&ss, &len) != 0)
        return;
    if (ss.ss_family == AF_INET && ntohs(((struct sockaddr_in *)&ss)->sin_port) == srv.port)
        (*(int *)arg)++;
}

static void test_reuse(void)
{
    struct xc *a, *b, *c;
    int held = 0;
    case_begin(&OK_KEEP, &OK_KEEP);
    a = get();
    CHECK(a->result == HC_OK && a->x.status == 200);
    CHECK(hc_pool_open(pool) == 1);
    uv_walk(&loop, count_held, &held);
    CHECK(held == 0); /* an idle connection does not keep uv_run(UV_RUN_DEFAULT) going */
    b = get();
    CHECK(b->result == HC_OK && b->x.status == 200);
    CHECK_STR(b->body, "ok");
    CHECK(srv.accepts == 1 && srv.requests == 2);
    CHECK(hc_pool_open(pool) == 1);
    CHECK(srv.rx_len == 2 * strlen(GET_HEAD));
    hc_cancel(&a->x); /* done ran: nothing to stop, the idle connection stays */
    CHECK(hc_pool_open(pool) == 1);
    c = get();
    CHECK(c->result == HC_OK);
    CHECK(srv.accepts == 1 && srv.requests == 3);
    case_end(a, b, c);
}

/* 3: chunked, written a byte at a time: de-chunked body, whole headers, still reusable. */
static void test_chunked_bytewise(void)
{
    static const struct answer a = {
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n"
        "X-Long-Header-Name: a value split across many reads\r\n\r\n"
        "5\r\nHello\r\n10\r\n, chunked world!\r\n1;ext=1\r\n.\r\n0\r\n\r\n",
        0, 1, 0};
    struct xc *c, *d;
    case_begin(&a, &a);
    c = get();
    CHECK(c->result == HC_OK && c->x.status == 200);
    CHECK_STR(c->body, "Hello, chunked world!.");
    CHECK(c->nheaders == 3);
    CHECK_STR(c->headers, "Content-Type: text/plain\nTransfer-Encoding: chunked\n"
                          "X-Long-Header-Name: a value split across many reads\n");
    CHECK(c->header_after_body == 0);
    CHECK(hc_pool_open(pool) == 1);
    d = get();
    CHECK(d->result == HC_OK);
    CHECK_STR(d->body, "Hello, chunked world!.");
    CHECK(srv.accepts == 1 && srv.requests == 2);
    case_end(c, d, NULL);
}

/* 4: "Connection: close" (the server keeps its end open): not reused; so is HTTP/1.0. */
static void test_connection_close(void)
{
    static const struct answer close_hdr = {
        "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", 0, 0, 0};
    static const struct answer http10 = {"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", 0, 0, 0};
    struct xc *a, *b, *c;
    case_begin(&close_hdr, &close_hdr);
    a = get();
    CHECK(a->result == HC_OK && a->x.status == 200);
    CHECK_STR(a->body, "ok");
    CHECK(hc_pool_open(pool) == 0);
    b = get();
    CHECK(b->result == HC_OK);
    CHECK(srv.accepts == 2 && srv.requests == 2);
    srv.first = srv.later = &http10;
    c = get();
    CHECK(c->result == HC_OK && c->x.status == 200);
    CHECK(hc_pool_open(pool) == 0);
    CHECK(srv.accepts == 3);
    case_end(a, b, c);
}

/* 5: no Content-Length, not chunked: the body ends with the connection. */
static void test_eof_body(void)
{
    static const struct answer a = {
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nthe body ends with the connection", 0,
        4, 1};
    struct xc *c;
    case_begin(&a, &a);
    c = get();
    CHECK(c->result == HC_OK && c->x.status == 200);
    CHECK_STR(c->body, "the body ends with the connection");
    CHECK_STR(c->headers, "Content-Type: text/plain\n");
    CHECK(hc_pool_open(pool) == 0);
    case_end(c, NULL, NULL);
}

/* 6: a fresh connection closed before a byte of the answer: ECONNECT, no second try. */
static void test_empty_reply(void)
{
    static const struct answer hang_up = {NULL, 0, 0, 1};
    struct xc *c, *d;
    case_begin(&hang_up, &hang_up);
    c = get();
    CHECK(c->result == HC_ECONNECT);
    CHECK(c->x.status == 0);
    CHECK(strstr(c->x.err, "empty reply from server") != NULL);
    CHECK(srv.accepts == 1 && srv.requests == 1);
    CHECK(hc_pool_open(pool) == 0);
    srv.close_on_accept = 1; /* closed before the request was even read */
    d = get();
    CHECK(d->result == HC_ECONNECT);
    CHECK(d->x.err[0] != '\0');
    CHECK(srv.accepts == 2);
    case_end(c, d, NULL);
}

/* 7: a reused connection closed without a byte of the answer: sent again once, new conn. */
static void test_stale_resend(void)
{
    static const struct answer hang_up = {NULL, 0, 0, 1};
    struct xc *a, *b;
    case_begin(&OK_KEEP, &hang_up);
    a = get();
    CHECK(a->result == HC_OK);
    CHECK(srv.accepts == 1 && srv.requests == 1);
    b = get();
    CHECK(b->result == HC_OK && b->x.status == 200);
    CHECK_STR(b->body, "ok");
    CHECK(srv.accepts == 2 && srv.requests == 3);
    CHECK(srv.rx_len == 3 * strlen(GET_HEAD));
    CHECK(hc_pool_open(pool) == 1);
    case_end(a, b, NULL);
}

/* 7b: a reused connection that answered part of a response: ECONNECT, not sent again. */
static void test_reused_partial(void)
{
    static const struct answer partial = {"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\npartial", 0,
                                          0, 1};
    struct xc *a, *b;
    case_begin(&OK_KEEP, &partial);
    a = get();
    CHECK(a->result == HC_OK);
    b = get();
    CHECK(b->result == HC_ECONNECT);
    CHECK(strstr(b->x.err, "before the response ended") != NULL);
    CHECK(srv.accepts == 1 && srv.requests == 2);
    case_end(a, b, NULL);
}

/* 7c: the server closes an idle connection: the pool sees it at once, the next one is new. */
static void test_idle_closed(void)
{
    static const struct answer ok_then_close = {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 0,
                                                0, 1};
    struct xc *a, *b;
    case_begin(&ok_then_close, &ok_then_close);
    a = get();
    CHECK(a->result == HC_OK);
    CHECK(run_until(pool_empty, NULL));
    b = get();
    CHECK(b->result == HC_OK);
    CHECK(srv.accepts == 2 && srv.requests == 2);
    case_end(a, b, NULL);
}

/* 8: closed in the middle of a Content-Length body. */
static void test_mid_body(void)
{
    static const struct answer a = {"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789", 0,
                                    0, 1};
    struct xc *c;
    case_begin(&a, &a);
    c = get();
    CHECK(c->result == HC_ECONNECT);
    CHECK(c->x.status == 200);
    CHECK(c->btotal == 10);
    CHECK(strstr(c->x.err, "before the response ended") != NULL);
    CHECK(hc_pool_open(pool) == 0);
    case_end(c, NULL, NULL);
}

/* 9: no answer at all: the exchange's timeout, not before it; on a new connection and on a
 * reused one. */
static void test_timeout(void)
{
    struct xc *c = xc_new(), *a, *d = xc_new();
    struct hc_req r;
    uint64_t t0;
    case_begin(NULL, NULL);
    r = req_to("127.0.0.1", srv.port, GET_HEAD);
    r.timeout_ms = 200;
    uv_update_time(&loop);
    t0 = uv_hrtime();
    exchange(c, &r);
    t0 = (uv_hrtime() - t0) / 1000000u;
    CHECK(c->result == HC_ETIMEOUT);
    CHECK(t0 >= 195 && t0 < 2000);
    CHECK(strstr(c->x.err, "timed out") != NULL);
    CHECK(srv.requests == 1);
    CHECK(hc_pool_open(pool) == 0);
    srv.first = &OK_KEEP; /* answers the first request on a connection, never a later one */
    a = get();
    CHECK(a->result == HC_OK && hc_pool_open(pool) == 1);
    uv_update_time(&loop);
    t0 = uv_hrtime();
    exchange(d, &r);
    t0 = (uv_hrtime() - t0) / 1000000u;
    CHECK(d->result == HC_ETIMEOUT);
    CHECK(t0 >= 195 && t0 < 2000);
    CHECK(srv.accepts == 2 && srv.requests == 3);
    case_end(c, a, d);
}

/* 10: nothing listens on the port. */
static void test_refused(void)
{
    uv_tcp_t t;
    struct sockaddr_in sa;
    struct xc *c = xc_new();
    struct hc_req r;
    int port;

    uv_ip4_addr("127.0.0.1", 0, &sa);
    uv_tcp_init(&loop, &t);
    CHECK(uv_tcp_bind(&t, (const struct sockaddr *)&sa, 0) == 0);
    port = port_of(&t);
    uv_close((uv_handle_t *)&t, NULL); /* the socket is closed at once */
    case_begin(NULL, NULL);
    r = req_to("127.0.0.1", port, GET_HEAD);
    exchange(c, &r);
    CHECK(c->result == HC_ECONNECT);
    CHECK(strstr(c->x.err, "connecting to 127.0.0.1") != NULL);
    CHECK(hc_pool_open(pool) == 0);
    case_end(c, NULL, NULL);
}

static int four_done(void *arg)
{
    struct xc **v = arg;
    return v[0]->ndone && v[1]->ndone && v[2]->ndone && v[3]->ndone;
}

/* 10b: connect_timeout_ms bounds connecting. A socket listening with a backlog of 0 and never
 * accepting completes one handshake; the SYNs of the others are dropped (Linux). */
static void test_connect_timeout(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0), quick = 0;
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    struct xc *v[4];
    uint64_t t0;

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(fd, 0) == 0);
    CHECK(getsockname(fd, (struct sockaddr *)&sa, &len) == 0);
    case_begin(NULL, NULL);
    uv_update_time(&loop);
    t0 = uv_hrtime();
    for (int i = 0; i < 4; i++) {
        struct hc_req r = req_to("127.0.0.1", ntohs(sa.sin_port), GET_HEAD);
        r.timeout_ms = 600;
        r.connect_timeout_ms = 150;
        v[i] = xc_new();
        CHECK(hc_start(pool, &v[i]->x, &r, on_done) == 0);
    }
    if (!run_until(four_done, v)) {
        CHECK(0);
        for (int i = 0; i < 4; i++)
            hc_cancel(&v[i]->x);
    }
    for (int i = 0; i < 4; i++) {
        uint64_t ms = (v[i]->done_ns - t0) / 1000000u;
        CHECK(v[i]->result == HC_ETIMEOUT);
        CHECK(ms >= 145 && ms < 2000);
        if (ms < 450 && strstr(v[i]->x.err, "connecting") != NULL)
            quick++;
    }
    CHECK(quick >= 2); /* at most two handshakes complete: the rest time out connecting */
    CHECK(hc_pool_open(pool) == 0);
    case_end(v[0], v[1], v[2]);
    free(v[3]);
    close(fd);
}

/* 11: the caller stops the exchange from on_body, or from on_header. */
static void test_abort(void)
{
    static const struct answer a = {"HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 5\r\n\r\nhello",
                                    0, 0, 0};
    struct xc *c = xc_new(), *d = xc_new(), *e;
    struct hc_req r;
    case_begin(&a, &a);
    r = req_to("127.0.0.1", srv.port, GET_HEAD);
    c->stop_body = 1;
    exchange(c, &r);
    CHECK(c->result == HC_EABORT);
    CHECK(c->x.err[0] != '\0');
    CHECK(hc_pool_open(pool) == 0);
    d->stop_header = 1;
    exchange(d, &r);
    CHECK(d->result == HC_EABORT);
    CHECK(d->nheaders == 1 && d->btotal == 0);
    e = get(); /* the pool still works */
    CHECK(e->result == HC_OK);
    CHECK_STR(e->body, "hello");
    case_end(c, d, e);
}

/* 12: a response head over HC_MAX_HEAD (3000 headers). */
static void test_head_too_large(void)
{
    size_t cap = 256u << 10, n = 0;
    char *resp = malloc(cap);
    struct answer a = {resp, 0, 0, 0};
    struct xc *c;

    if (!resp)
        abort();
    n += (size_t)snprintf(resp, cap, "HTTP/1.1 200 OK\r\n");
    for (int i = 0; i < 3000; i++)
        n += (size_t)snprintf(resp + n, cap - n, "X-Filler-%04d: %040d\r\n", i, i);
    n += (size_t)snprintf(resp + n, cap - n, "Content-Length: 0\r\n\r\n");
    CHECK(n > 2 * HC_MAX_HEAD && n < cap);
    a.len = n;
    case_begin(&a, &a);
    c = get();
    CHECK(c->result == HC_EPROTO);
    CHECK(strstr(c->x.err, "larger than") != NULL);
    CHECK(c->nheaders < 3000);
    CHECK(hc_pool_open(pool) == 0);
    case_end(c, NULL, NULL);
    free(resp);
}

/* 13: not HTTP. */
static void test_garbage(void)
{
    static const struct answer a = {"SSH-2.0-OpenSSH_9.6\r\n", 0, 0, 0};
    struct xc *c;
    case_begin(&a, &a);
    c = get();
    CHECK(c->result == HC_EPROTO);
    CHECK(strstr(c->x.err, "bad HTTP response") != NULL);
    CHECK(c->nheaders == 0 && c->btotal == 0);
    CHECK(hc_pool_open(pool) == 0);
    case_end(c, NULL, NULL);
}

/* 14: interim 103 and 100 before the final 200, in 7-byte writes: only the final's headers. */
static void test_interim(void)
{
    static const struct answer a = {
        "HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n"
        "HTTP/1.1 100 Continue\r\nX-Interim: yes\r\n\r\n"
        "HTTP/1.1 200 OK\r\nX-Final: yes\r\nContent-Length: 2\r\n\r\nok",
        0, 7, 0};
    static const struct answer only_interim = {"HTTP/1.1 100 Continue\r\n\r\n", 0, 0, 1};
    struct xc *c, *d, *e;
    case_begin(&a, &a);
    c = get();
    CHECK(c->result == HC_OK);
    CHECK(c->x.status == 200);
    CHECK_STR(c->headers, "X-Final: yes\nContent-Length: 2\n");
    CHECK_STR(c->body, "ok");
    CHECK(hc_pool_open(pool) == 1);
    d = get();
    CHECK(d->result == HC_OK && d->x.status == 200);
    CHECK(srv.accepts == 1);
    srv.later = &only_interim; /* then closed: no final response, so no status */
    e = get();
    CHECK(e->result == HC_ECONNECT);
    CHECK(e->x.status == 0);
    CHECK(e->nheaders == 0);
    CHECK(srv.accepts == 1 && srv.requests == 3); /* a byte came: not sent again */
    case_end(c, d, e);
}

static struct xc *to_cancel;

static void cancel_hook(void)
{
    if (!to_cancel)
        return;
    hc_cancel(&to_cancel->x);
    hc_cancel(&to_cancel->x); /* again: a no-op */
    to_cancel = NULL;
}

/* 15: hc_cancel of an exchange sent and waiting, then while connecting and resolving. */
static void test_cancel(void)
{
    struct xc *c = xc_new(), *d, *e = xc_new(), *f = xc_new();
    struct hc_req r, local;
    int one = 1;

    case_begin(NULL, &OK_KEEP);
    r = req_to("127.0.0.1", srv.port, GET_HEAD);
    CHECK(hc_start(pool, &c->x, &r, on_done) == 0);
    to_cancel = c;
    srv.on_request = cancel_hook; /* cancels once the server has the request */
    if (!run_until(eofs_reach, &one)) {
        CHECK(0);
        hc_cancel(&c->x);
    }
    CHECK(to_cancel == NULL);
    CHECK(c->ndone == 0);
    CHECK(hc_pool_open(pool) == 0);
    srv.on_request = NULL;
    srv.first = &OK_KEEP;
    d = get();
    CHECK(d->result == HC_OK);
    CHECK(c->ndone == 0);
    CHECK(hc_pool_open(pool) == 1);

    CHECK(hc_start(pool, &e->x, &r, on_done) == 0); /* on the idle connection: sent */
    hc_cancel(&e->x);
    CHECK(hc_pool_open(pool) == 0);
    CHECK(hc_start(pool, &e->x, &r, on_done) == 0); /* connecting */
    hc_cancel(&e->x);
    local = req_to("localhost", srv.port, GET_HEAD);
    CHECK(hc_start(pool, &f->x, &local, on_done) == 0); /* resolving */
    hc_cancel(&f->x);
    CHECK(hc_pool_open(pool) == 0);
    free(d);
    d = get();
    CHECK(d->result == HC_OK);
    CHECK(c->ndone == 0 && e->ndone == 0 && f->ndone == 0);
    free(c);
    free(e);
    free(f);
    case_end(d, NULL, NULL);
}

/* 16: a host name, resolved (and reused by name). */
static void test_localhost(void)
{
    struct xc *c = xc_new(), *d = xc_new(), *e = xc_new();
    struct hc_req r;
    case_begin(&OK_KEEP, &OK_KEEP);
    r = req_to("localhost", srv.port, GET_HEAD);
    exchange(c, &r);
    CHECK(c->result == HC_OK && c->x.status == 200);
    CHECK_STR(c->body, "ok");
    exchange(d, &r);
    CHECK(d->result == HC_OK);
    CHECK(srv.accepts == 1 && srv.requests == 2);
    /* the same address by another name: a connection of its own (pooled by host name and
     * port, as libcurl does: the Host header and a proxy's routing follow the name) */
    r = req_to("127.0.0.1", srv.port, GET_HEAD);
    exchange(e, &r);
    CHECK(e->result == HC_OK);
    CHECK(srv.accepts == 2 && srv.requests == 3);
    case_end(c, d, e);
}

/* 17: hconn does not judge statuses. */
static void test_status_503(void)
{
    static const struct answer a = {
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        "Retry-After: 2\r\nContent-Length: 32\r\n\r\n{\"error\":{\"message\":\"overload\"}}",
        0, 0, 0};
    struct xc *c;
    case_begin(&a, &a);
    c = get();
    CHECK(c->result == HC_OK);
    CHECK(c->x.status == 503);
    CHECK_STR(c->body, "{\"error\":{\"message\":\"overload\"}}");
    CHECK(c->x.err[0] == '\0');
    CHECK(hc_pool_open(pool) == 1);
    case_end(c, NULL, NULL);
}

/* 18: bodiless answers (204, Content-Length 0) keep the connection; two answers in one read
 * do not (the server sent what nobody asked for). */
static void test_bodiless_and_extra(void)
{
    static const struct answer no_content = {"HTTP/1.1 204 No Content\r\n\r\n", 0, 0, 0};
    static const struct answer empty = {"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0, 0, 0};
    static const struct answer two = {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                                      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nno",
                                      0, 0, 0};
    struct xc *a, *b, *c;
    case_begin(&no_content, &empty);
    a = get();
    CHECK(a->result == HC_OK && a->x.status == 204 && a->btotal == 0);
    b = get();
    CHECK(b->result == HC_OK && b->x.status == 200 && b->btotal == 0);
    CHECK(srv.accepts == 1 && hc_pool_open(pool) == 1);
    srv.later = &two;
    c = get();
    CHECK(c->result == HC_OK);
    CHECK_STR(c->body, "ok");
    CHECK(hc_pool_open(pool) == 0);
    case_end(a, b, c);
}

/* 19: a header value over 1 KB comes cut to 1 KB (read a byte at a time). */
static void test_long_value(void)
{
    char resp[2048];
    struct answer a = {resp, 0, 1, 0};
    struct xc *c;
    int n = snprintf(resp, sizeof(resp), "HTTP/1.1 200 OK\r\nX-Big: ");
    memset(resp + n, 'v', 1500);
    snprintf(resp + n + 1500, sizeof(resp) - (size_t)n - 1500, "\r\nContent-Length: 2\r\n\r\nok");
    case_begin(&a, &a);
    c = get();
    CHECK(c->result == HC_OK);
    CHECK(c->big_vlen == 1024);
    CHECK_STR(c->body, "ok");
    case_end(c, NULL, NULL);
}

/* Close what is left; a handle hconn left active fails here instead of hanging. */
static void on_walk_close(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void on_final_guard(uv_timer_t *t)
{
    (void)t;
    fprintf(stderr, "guard: handles still active at the end\n");
    CHECK(0);
    uv_walk(&loop, on_walk_close, NULL);
}

static void finish(void)
{
    uv_close((uv_handle_t *)&srv.tcp, NULL);
    uv_close((uv_handle_t *)&check, NULL);
    uv_timer_start(&guard, on_final_guard, GUARD_MS, 0);
    uv_unref((uv_handle_t *)&guard);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (!uv_is_closing((uv_handle_t *)&guard))
        uv_close((uv_handle_t *)&guard, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(uv_loop_close(&loop) == 0);
}

/* HC_MAX_HEAD bounds every byte of the head: plain headers just above it, and one value
 * whose leading blanks (skipped by llhttp) make it 512 KB. */
static void test_head_bound_counts_every_byte(void)
{
    size_t cap = 1u << 20, n;
    char *resp = malloc(cap);
    struct answer a = {resp, 0, 0, 0};
    struct xc *c, *d;

    if (!resp)
        abort();
    n = (size_t)snprintf(resp, cap, "HTTP/1.1 200 OK\r\n");
    while (n < HC_MAX_HEAD + 1000)
        n += (size_t)snprintf(resp + n, cap - n, "X-Hdr: 0123456789\r\n");
    n += (size_t)snprintf(resp + n, cap - n, "Content-Length: 2\r\n\r\nok");
    a.len = n;
    case_begin(&a, &a);
    c = get();
    CHECK(c->result == HC_EPROTO);
    n = (size_t)snprintf(resp, cap, "HTTP/1.1 200 OK\r\nX-Pad:");
    memset(resp + n, ' ', 512u << 10);
    n += 512u << 10;
    n += (size_t)snprintf(resp + n, cap - n, "v\r\nContent-Length: 2\r\n\r\nok");
    a.len = n;
    d = get();
    CHECK(d->result == HC_EPROTO);
    case_end(c, d, NULL);
    free(resp);
}

/* A chunked body's trailers do not reach on_header (headers come before the body). */
static void test_trailers_not_headers(void)
{
    static const struct answer a = {
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n"
        "3\r\nabc\r\n0\r\nX-Sum: 42\r\n\r\n", 0, 0, 0};
    struct xc *c;
    case_begin(&a, &a);
    c = get();
    CHECK(c->result == HC_OK);
    CHECK_STR(c->body, "abc");
    CHECK(c->header_after_body == 0);
    CHECK_STR(c->headers, "Transfer-Encoding: chunked\nTrailer: X-Sum\n");
    case_end(c, NULL, NULL);
}

int main(void)
{
    CHECK(uv_loop_init(&loop) == 0);
    uv_timer_init(&loop, &guard);
    uv_check_init(&loop, &check);
    srv_start();
    test_length();
    test_large();
    test_reuse();
    test_chunked_bytewise();
    test_connection_close();
    test_eof_body();
    test_empty_reply();
    test_stale_resend();
    test_reused_partial();
    test_idle_closed();
    test_mid_body();
    test_timeout();
    test_refused();
    test_connect_timeout();
    test_abort();
    test_head_too_large();
    test_garbage();
    test_interim();
    test_cancel();
    test_localhost();
    test_status_503();
    test_bodiless_and_extra();
    test_long_value();
    test_head_bound_counts_every_byte();
    test_trailers_not_headers();
    finish();
    return tcheck_summary("test_hconn");
}
