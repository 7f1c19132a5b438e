/* fuzz_hconn.c - libFuzzer harness: raw bytes as the response clients/hconn.c reads, over a
 * real loopback socket. */
/*
 * Everything runs on this thread. A non-blocking listening socket on 127.0.0.1:<any> (opened
 * in LLVMFuzzerInitialize, closed by an atexit handler with the uv loop, so LeakSanitizer
 * sees a clean exit) plays the server; hconn is the client, on a pool made and closed for
 * each input. The harness drives the uv loop with uv_run(UV_RUN_NOWAIT) in bounded loops,
 * and between those accepts hconn's connections, reads the requests hconn sends and answers
 * each with the input's bytes, written in chunks with a loop turn after each, so that hconn
 * reads (and llhttp parses) the response split exactly there.
 *
 * Input layout:  [mode] [chunk seed] [split] [response bytes ...]
 *   mode bits 0-1      after writing the response: 0 close (FIN), 1 keep the connection
 *                      open (the exchange has a short timeout, KEEP_TIMEOUT_MS: an answer
 *                      that does not end, ends with HC_ETIMEOUT), 2 reset (SO_LINGER 0),
 *                      3 half-close (shutdown SHUT_WR; closed at the input's end)
 *   mode bits 2-3      largest chunk: 1, 7, 64 or 4096 bytes
 *   mode bit 4 (0x10)  POST with a small body instead of a GET
 *   mode bit 5 (0x20)  a second exchange on the same pool after the first (the kept-alive
 *                      connection reused, or the stale one sent again on a new connection);
 *                      the first response is bytes [0, len * split / 256), the second the
 *                      rest; without this bit split is ignored and all bytes are the first's
 *   mode bit 6 (0x40)  the caller stops the exchange: on_header returns nonzero at a header
 *                      named X-Stop, on_body once more than STOP_BODY bytes came
 *   mode bit 7 (0x80)  answer at the request's first byte instead of after all of it
 *   chunk seed         0: the response in one send(); else seeds the chunk-size sequence
 * Seeds in corpus/fuzz_hconn/ carry their own three leading bytes (most: close after
 * writing, split 0x80); reuse_after_close has the stale kept-alive connection sent again.
 *
 * Oracles (abort() when broken): done runs exactly once per started exchange, never from
 * inside hc_start, within the exchange's timeout + GRACE_MS, with a documented hc_result;
 * HC_EABORT exactly when a callback returned nonzero; on HC_OK the status is a final one
 * (200..999) and the body bytes delivered are at most the bytes the server sent; on_header
 * gets names of at most 64 bytes and values of at most 1024, never after a body byte;
 * nothing is called after done; every byte hconn sends is the request, again and again;
 * after done at most one connection is open (none after a failure); once the server closed
 * every connection the pool has none open within CLEANUP_MS, and after hc_pool_close the loop
 * has no handle left within CLEANUP_MS. FUZZ_HCONN_VERBOSE=1 prints each exchange's outcome.
 */
#include "hconn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define KEEP_TIMEOUT_MS 10   /* an exchange whose connection the server keeps open */
#define TIMEOUT_MS      1000 /* every other exchange (ended by the server's close) */
#define GRACE_MS        2000 /* done must have run by the timeout + this */
#define CLEANUP_MS      2000 /* closing connections and handles must take less than this */
#define MAX_SCONN       4    /* server-side connections at once (hconn opens at most 2) */
#define STOP_BODY       16
#define NAME_MAX_LEN    64   /* hconn.c's HC_NAME_MAX */
#define VALUE_MAX_LEN   1024 /* hconn.c's HC_VALUE_MAX */

#define MODE_END    0x03
#define END_CLOSE   0
#define END_KEEP    1
#define END_RESET   2
#define END_HALF    3
#define MODE_POST   0x10
#define MODE_SECOND 0x20
#define MODE_STOP   0x40
#define MODE_EARLY  0x80

static const char GET_HEAD[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
static const char POST_HEAD[] = "POST /v1/x HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
                                "Content-Length: 5\r\n\r\n";
static const char POST_BODY[] = "hello";

/* One exchange as the caller sees it. */
struct xc {
    struct hc_xfer x;
    int started, ndone, result, stopped, body_seen;
    size_t body;
};

/* One connection the server accepted. */
struct sconn {
    int fd;
    size_t in;       /* request bytes read on it */
    size_t answered; /* requests answered on it */
};

static uv_loop_t loop;
static uv_timer_t keeper; /* keeps the loop alive: idle connections are unreferenced, and
                           * uv_run does not poll a loop with nothing referenced */
static int lfd = -1;
static int lport;
static struct sconn sc[MAX_SCONN];

/* the current input */
static int verbose; /* FUZZ_HCONN_VERBOSE set: each exchange's outcome on stderr */
static uint8_t mode;
static uint8_t seed;
static uint32_t rng;
static const uint8_t *resp; /* the current exchange's response */
static size_t resp_len;
static size_t sent_total;  /* response bytes the server sent for this input */
static char reqbytes[256]; /* what hconn must send, once per request */
static size_t req_len;

/* ------------------------------------------------------------------ helpers --- */

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_hconn: %s (mode 0x%02x)\n", what, mode);
    abort();
}

static uint64_t ms_since(uint64_t start)
{
    return (uv_hrtime() - start) / 1000000;
}

static uint32_t rng_next(void)
{
    uint32_t x = rng;

    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    rng = x;
    return x;
}

/* Wait (at most ms) for the loop's backend, the listening socket or a server connection to
 * have something to do. */
static void io_wait(int ms)
{
    struct pollfd p[2 + MAX_SCONN];
    int n = 0, i, t = uv_backend_timeout(&loop);

    p[n].fd = uv_backend_fd(&loop);
    p[n++].events = POLLIN;
    p[n].fd = lfd;
    p[n++].events = POLLIN;
    for (i = 0; i < MAX_SCONN; i++) {
        if (sc[i].fd >= 0) {
            p[n].fd = sc[i].fd;
            p[n++].events = POLLIN;
        }
    }
    if (t < 0 || t > ms)
        t = ms;
    poll(p, (nfds_t)n, t);
}

static void sconn_close(struct sconn *s, int reset)
{
    struct linger lg = {1, 0};

    if (s->fd < 0)
        return;
    if (reset)
        setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(s->fd);
    s->fd = -1;
}

/* ------------------------------------------------------------------ client side --- */

static struct xc *xc_of(struct hc_xfer *x)
{
    struct xc *c = x->data;

    if (!c->started || c->ndone)
        fail("a callback ran for an exchange not started or already done");
    return c;
}

static int on_header(struct hc_xfer *x, const char *name, size_t nlen, const char *value,
                     size_t vlen)
{
    struct xc *c = xc_of(x);

    if (c->stopped)
        fail("on_header ran after it returned nonzero");
    if (c->body_seen)
        fail("on_header ran after a body byte");
    if (!name || !value || nlen == 0 || nlen > NAME_MAX_LEN || vlen > VALUE_MAX_LEN)
        fail("on_header got a name or value out of its bounds");
    if ((mode & MODE_STOP) && nlen == 6 && strncasecmp(name, "X-Stop", 6) == 0) {
        c->stopped = 1;
        return 1;
    }
    return 0;
}

static int on_body(struct hc_xfer *x, const char *p, size_t len)
{
    struct xc *c = xc_of(x);

    if (c->stopped)
        fail("on_body ran after a callback returned nonzero");
    if (!p || len == 0)
        fail("on_body got no bytes");
    c->body_seen = 1;
    c->body += len;
    if (c->body > sent_total)
        fail("on_body got more bytes than the server sent");
    if ((mode & MODE_STOP) && c->body > STOP_BODY) {
        c->stopped = 1;
        return 1;
    }
    return 0;
}

static void on_done(struct hc_xfer *x, int result)
{
    struct xc *c = x->data;

    if (!c->started)
        fail("done ran for an exchange not started");
    if (++c->ndone > 1)
        fail("done ran twice");
    c->result = result;
}

/* ------------------------------------------------------------------ server side --- */

/* Write resp on s in chunks, a loop turn after each; then end as the mode says. */
static void answer(struct sconn *s)
{
    static const size_t max_chunk[4] = {1, 7, 64, 4096};
    size_t off = 0, cap = max_chunk[(mode >> 2) & 3];
    uint64_t start = uv_hrtime();

    s->answered++;
    while (off < resp_len && ms_since(start) < CLEANUP_MS) {
        size_t n = seed ? 1 + rng_next() % cap : resp_len - off;
        ssize_t k;

        if (n > resp_len - off)
            n = resp_len - off;
        k = send(s->fd, resp + off, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            break; /* hconn closed or reset it */
        if (k > 0) {
            off += (size_t)k;
            sent_total += (size_t)k;
        }
        uv_run(&loop, UV_RUN_NOWAIT); /* hconn reads this chunk on its own */
        if (k <= 0)
            io_wait(1);
    }
    switch (mode & MODE_END) {
    case END_CLOSE:
        sconn_close(s, 0);
        break;
    case END_RESET:
        sconn_close(s, 1);
        break;
    case END_HALF:
        shutdown(s->fd, SHUT_WR);
        break;
    default:
        break;
    }
}

/* Accept new connections, read requests, answer the ones complete (or begun). */
static void server_step(void)
{
    char buf[4096];
    int i, fd;

    while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
        int one = 1;

        for (i = 0; i < MAX_SCONN && sc[i].fd >= 0; i++)
            ;
        if (i == MAX_SCONN)
            fail("hconn opened more connections than it may");
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        sc[i].fd = fd;
        sc[i].in = sc[i].answered = 0;
    }
    for (i = 0; i < MAX_SCONN; i++) {
        struct sconn *s = &sc[i];
        int bound = 64;

        while (s->fd >= 0 && bound-- > 0) {
            ssize_t n = recv(s->fd, buf, sizeof buf, MSG_DONTWAIT);
            size_t j;

            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
                break;
            if (n <= 0) {
                sconn_close(s, 0); /* hconn closed (or reset) it */
                break;
            }
            for (j = 0; j < (size_t)n; j++)
                if (buf[j] != reqbytes[(s->in + j) % req_len])
                    fail("hconn sent bytes that are not the request");
            s->in += (size_t)n;
            /* one answer a request: when all of it came, or (early) its first byte */
            while (s->fd >= 0 && (s->in >= (s->answered + 1) * req_len ||
                                  ((mode & MODE_EARLY) && s->in > s->answered * req_len)))
                answer(s);
        }
    }
}

/* ------------------------------------------------------------------ one exchange --- */

static void exchange(struct hc_pool *pool, struct xc *c, const uint8_t *r, size_t rlen)
{
    struct hc_req req;
    uint64_t start;
    long timeout = (mode & MODE_END) == END_KEEP ? KEEP_TIMEOUT_MS : TIMEOUT_MS;
    unsigned open;

    memset(c, 0, sizeof *c);
    memset(&req, 0, sizeof req);
    c->x.data = c;
    c->x.on_header = on_header;
    c->x.on_body = on_body;
    req.host = "127.0.0.1";
    req.port = lport;
    req.head = reqbytes;
    req.head_len = (mode & MODE_POST) ? sizeof POST_HEAD - 1 : sizeof GET_HEAD - 1;
    if (mode & MODE_POST) {
        req.body = POST_BODY;
        req.body_len = sizeof POST_BODY - 1;
    }
    req.timeout_ms = timeout;
    req.connect_timeout_ms = timeout;
    resp = r;
    resp_len = rlen;

    uv_update_time(&loop); /* the deadline counts from now, not from the last loop turn */
    c->started = 1;
    if (hc_start(pool, &c->x, &req, on_done) != 0)
        return; /* HC_ENOMEM: done will not run */
    if (c->ndone)
        fail("done ran inside hc_start");
    start = uv_hrtime();
    while (!c->ndone) {
        if (ms_since(start) > (uint64_t)(timeout + GRACE_MS))
            fail("done did not run by the exchange's timeout");
        uv_run(&loop, UV_RUN_NOWAIT);
        server_step();
        if (!c->ndone)
            io_wait(1);
    }

    switch (c->result) {
    case HC_OK:
        if (c->x.status < 200 || c->x.status > 999)
            fail("HC_OK with a status that is not a final one");
        if (c->body > sent_total)
            fail("more body bytes than the server sent");
        break;
    case HC_ECONNECT:
    case HC_ETIMEOUT:
    case HC_EPROTO:
    case HC_EABORT:
    case HC_ENOMEM:
        if (c->x.err[0] == '\0' || !memchr(c->x.err, '\0', sizeof c->x.err))
            fail("a failed exchange without a reason in err");
        break;
    default:
        fail("done's result is not an hc_result");
    }
    if ((c->result == HC_EABORT) != (c->stopped != 0))
        fail("HC_EABORT without a callback's nonzero return, or the other way round");
    open = hc_pool_open(pool);
    if (verbose)
        fprintf(stderr,
                "fuzz_hconn: mode 0x%02x: result %d status %d body %zu of %zu sent, "
                "%u open%s%s\n",
                mode, c->result, c->x.status, c->body, sent_total, open, c->x.err[0] ? ": " : "",
                c->x.err);
    if (open > 1 || (c->result != HC_OK && open != 0))
        fail("connections left open after done");
}

/* ------------------------------------------------------------------ setup --- */

static unsigned handles;

static void count_handle(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (h != (uv_handle_t *)&keeper)
        handles++;
}

static void on_keeper(uv_timer_t *t)
{
    (void)t;
}

static unsigned loop_handles(void)
{
    handles = 0;
    uv_walk(&loop, count_handle, NULL);
    return handles;
}

static void teardown(void)
{
    if (lfd < 0)
        return;
    close(lfd);
    lfd = -1;
    uv_timer_stop(&keeper);
    uv_close((uv_handle_t *)&keeper, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    if (uv_loop_close(&loop) != 0)
        fail("the loop is still busy at exit");
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    int i;

    (void)argc;
    (void)argv;
    for (i = 0; i < MAX_SCONN; i++)
        sc[i].fd = -1;
    uv_loop_init(&loop);
    uv_timer_init(&loop, &keeper);
    uv_timer_start(&keeper, on_keeper, 3600000, 3600000);
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(lfd, 64) != 0 ||
        getsockname(lfd, (struct sockaddr *)&a, &len) != 0) {
        fprintf(stderr, "fuzz_hconn: listening on 127.0.0.1: %s\n", strerror(errno));
        exit(1);
    }
    lport = ntohs(a.sin_port);
    verbose = getenv("FUZZ_HCONN_VERBOSE") != NULL;
    atexit(teardown);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct xc xc[2];
    struct hc_pool *pool;
    size_t first;
    uint64_t start;
    int i, fd;

    if (size < 3 || lfd < 0)
        return 0;
    mode = data[0];
    seed = data[1];
    first = (mode & MODE_SECOND) ? (size - 3) * data[2] / 256 : size - 3;
    data += 3;
    size -= 3;
    rng = seed * 0x9E3779B9u + 1;
    sent_total = 0;
    req_len = 0;
    if (mode & MODE_POST) {
        memcpy(reqbytes, POST_HEAD, sizeof POST_HEAD - 1);
        memcpy(reqbytes + sizeof POST_HEAD - 1, POST_BODY, sizeof POST_BODY - 1);
        req_len = sizeof POST_HEAD - 1 + sizeof POST_BODY - 1;
    } else {
        memcpy(reqbytes, GET_HEAD, sizeof GET_HEAD - 1);
        req_len = sizeof GET_HEAD - 1;
    }

    if (hc_pool_new(&loop, &pool) != 0)
        return 0;
    exchange(pool, &xc[0], data, first);
    if (mode & MODE_SECOND)
        exchange(pool, &xc[1], data + first, size - first);

    /* The server closes every connection: the pool's idle one must see it and close. */
    for (i = 0; i < MAX_SCONN; i++)
        sconn_close(&sc[i], 0);
    start = uv_hrtime();
    while (hc_pool_open(pool) != 0) {
        if (ms_since(start) > CLEANUP_MS)
            fail("an idle connection the server closed is still open");
        uv_run(&loop, UV_RUN_NOWAIT);
        while ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) >= 0)
            close(fd);
        if (hc_pool_open(pool) != 0)
            io_wait(1);
    }
    hc_pool_close(pool);
    start = uv_hrtime();
    while (uv_run(&loop, UV_RUN_NOWAIT), loop_handles() != 0) {
        if (ms_since(start) > CLEANUP_MS)
            fail("handles left on the loop after hc_pool_close");
        io_wait(1);
    }
    while ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) >= 0)
        close(fd);
    return 0;
}
