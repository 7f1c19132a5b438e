/* hconn.h - plain-HTTP/1.1 client on libuv TCP and llhttp (its response parser): keep-alive
 * connections pooled per host and port, one exchange at a time on each. The model client
 * sends its calls to http:// servers through it (mclient.h); libcurl keeps https, proxies and
 * credentials in URLs. What it saves against libcurl on a loopback or LAN call is the
 * per-transfer machinery (a connection check, poll registrations, timer updates, a copy of
 * the request): the request goes out in one writev, the answer is parsed as it is read.
 *
 * The caller builds the request head (request line, Host and every other header, ending in
 * an empty line); hconn writes the head and the body, reads the response, hands the final
 * response's headers (each whole) and body bytes (de-chunked) to the caller's callbacks and
 * then calls done once. Interim 1xx responses are skipped.
 *
 * Connections: a new one resolves its host (an IP literal directly, a name with
 * uv_getaddrinfo, each address in turn until one connects), sets TCP_NODELAY and keep-alive.
 * After a complete response that allows it (HTTP/1.1 without "Connection: close", nothing
 * more sent by the server) the connection goes back to the pool, newest first; an idle one
 * is read from, so a server closing it is seen at once, and it is not reused after
 * HC_IDLE_MAX_MS. The pool keeps at most max(HC_IDLE_MIN, most exchanges in flight so far)
 * idle connections. An exchange on a reused connection that the server closed before
 * answering a byte (its keep-alive timeout crossed the request) is sent again once on a new
 * connection, as libcurl does. Bounds: the response head at HC_MAX_HEAD bytes (what
 * was read before the final response's headers ended, interim responses included); the body is
 * the caller's to bound (its on_body returns nonzero); one timer per exchange for the whole
 * exchange, connecting bounded by connect_timeout_ms as well. Responses to GET and POST only
 * (a HEAD's answer would be read for a body it does not have).
 *
 * Ownership: struct hc_xfer is the caller's and must stay valid until done has run or
 * hc_cancel returned. The request's strings (host, head, body) are borrowed for as long;
 * hconn never copies the head (it may hold a key: the caller wipes it). The pool owns its
 * connections; hc_pool_close frees the idle ones (closing) and must come after every
 * exchange ended or was canceled. Callbacks run on the loop's thread; on_header and on_body
 * must not cancel their own exchange. */
#ifndef BRIEFD_HCONN_H
#define BRIEFD_HCONN_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define HC_IDLE_MIN 64               /* idle connections kept at least */
#define HC_MAX_HEAD (64u << 10)      /* status line and headers of a response */
#define HC_IDLE_MAX_MS 118000u       /* an idle connection older than this is not reused */

/* Results of an exchange (done's result). */
enum hc_result {
    HC_OK = 0,
    HC_ECONNECT = -1,   /* resolve, connect, write or read failed; closed before the end */
    HC_ETIMEOUT = -2,   /* the exchange's timeout (or connecting's) passed */
    HC_EPROTO = -3,     /* not an HTTP/1.x response, or its head too large */
    HC_EABORT = -4,     /* the caller's on_header or on_body returned nonzero */
    HC_ENOMEM = -5
};

struct hc_pool;
struct hc_conn; /* internal: one TCP connection */
struct hc_xfer;

typedef void (*hc_done_cb)(struct hc_xfer *x, int result);

struct hc_req {
    const char *host;            /* a name or an IP literal (IPv6 without brackets) */
    int port;
    const char *head;            /* "POST /path HTTP/1.1\r\nHost: ...\r\n...\r\n\r\n" */
    size_t head_len;
    const char *body;            /* NULL: none */
    size_t body_len;
    long timeout_ms;             /* the whole exchange, > 0 */
    long connect_timeout_ms;     /* resolving and connecting a new connection, > 0 */
};

struct hc_xfer {
    void *data;                  /* the caller's */
    /* set before hc_start; NULL: not wanted. A nonzero return stops the exchange with
     * HC_EABORT. Headers come whole (name as sent, value without surrounding blanks; a
     * value longer than 1 KB comes cut to 1 KB), all before the first body bytes; a chunked
     * body's trailers are not passed on. */
    int (*on_header)(struct hc_xfer *x, const char *name, size_t nlen, const char *value,
                     size_t vlen);
    int (*on_body)(struct hc_xfer *x, const char *p, size_t len);
    /* outputs */
    int status;                  /* the final response's status code, once read (0: none) */
    char err[160];               /* why it failed (done's result < 0) */
    /* internal */
    struct hc_pool *pool;
    struct hc_conn *conn;
    struct hc_req req;
    hc_done_cb done;
    uint64_t started, deadline;  /* uv_now() at the start, and at which it times out */
    int resent;                  /* already sent again after a reused connection closed */
};

/* Create a pool on loop. Returns 0 or HC_ENOMEM. If SIGPIPE is at its default disposition
 * it is set to SIG_IGN: a write to a server that reset must fail with EPIPE, not kill the
 * process. */
int hc_pool_new(uv_loop_t *loop, struct hc_pool **out);
/* Close the idle connections and free the pool (see ownership). */
void hc_pool_close(struct hc_pool *pool);
/* Connections open (idle or busy), for tests and metrics. */
unsigned hc_pool_open(const struct hc_pool *pool);

/* Start an exchange (x's callbacks set). Returns 0 (done will run exactly once, never from
 * inside this call) or HC_ENOMEM (done will not run). */
int hc_start(struct hc_pool *pool, struct hc_xfer *x, const struct hc_req *req,
             hc_done_cb done);
/* Stop a started exchange without calling done (its connection is closed); no-op once done
 * ran. */
void hc_cancel(struct hc_xfer *x);

#endif
