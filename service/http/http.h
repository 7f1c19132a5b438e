/* http.h - HTTP/1.1 server on libuv + llhttp, shared by briefd and the model simulator.
 *
 * One request at a time per connection (pipelining-safe: bytes of a following request are
 * held, unparsed, until the current response is complete). Keep-alive. Every input is
 * bounded (struct http_limits): header bytes (431), header count (431), URL length (414),
 * body bytes (413), connections in all and from one address (at a cap, the connection
 * idle longest - of that address, for its cap - is closed to make room; with none idle,
 * the newcomer gets a 503 and is closed, unless it asks for a probe path: see probe_paths),
 * and timeouts for slow headers, slow bodies and
 * idle keep-alive (the connection is closed; a request timed out mid-headers or mid-body
 * gets a 408 first). Malformed requests get 400 and the connection is closed; a version
 * other than HTTP/1.x gets 505, a transfer coding other than chunked 501 (before the body
 * is read). HEAD gets every response's head without its body (a streamed response ends
 * with its head: the connection closes, and the handler's abort callback runs). Error
 * responses use the JSON envelope of docs/API.md.
 *
 * Ownership: a struct http_req and everything reachable from it (method, path, headers,
 * body, arena allocations) belongs to the server and lives until the response is complete
 * (http_respond() returned, or http_stream_end()) or the connection dies, whichever comes
 * later. A handler may answer at once or keep the request and answer later from any loop
 * callback; if the client goes away first, the abort callback (if set) is called and the
 * handler must not touch the request after it returns. Strings passed to http_respond()
 * and friends are copied. */
#ifndef BRIEFD_HTTP_H
#define BRIEFD_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* Details of this implementation (http.c):
 * - Request-line + header bytes are counted exactly as fed to the parser; a Content-Length
 *   over max_body is refused at the end of the headers, before any body byte is read.
 * - A fresh connection that sends nothing is closed after header_timeout_ms, silently.
 *   While a response is draining to a slow reader, idle_timeout_ms bounds the wait. During
 *   a streamed response no timer runs.
 * - While a request is in flight the socket is still read, so that a client that resets
 *   the connection is noticed and the request aborted; the bytes that follow (pipelining)
 *   are held unparsed, up to 64 KiB, beyond which reading pauses until the response is done.
 * - A client's EOF (FIN) after a complete request is a half-close (shutdown(SHUT_WR), as
 *   some clients and proxies do): the request, and every complete one it pipelined, is
 *   answered, then the connection closes. An EOF with no complete request in hand (between
 *   requests, mid-head, mid-body) means gone, as does a reset or a failed write. TCP cannot
 *   tell a half-close from a full close: a handler that answers later learns that such a
 *   client is gone only from a write (a stream's next chunk fails). With abort_on_eof set,
 *   an EOF while the handler holds the request aborts it instead (for handlers that may
 *   never answer, such as the model simulator's hangs).
 * - After a final response (error, Connection: close, HTTP/1.0) the write side is shut
 *   down and input is discarded until the client's EOF (at most 2 s), so that unread
 *   request bytes do not turn the close into a reset that destroys the response.
 * - Expect: 100-continue is answered with "100 Continue" when the body is acceptable.
 * - HTTP/1.0 clients get streamed responses without chunked coding, ended by the close. */

struct http_server;
struct http_req;

struct http_limits {
    size_t max_header_bytes;   /* request line + headers; default 16384 -> 431 */
    size_t max_headers;        /* header fields; default 64 -> 431 */
    size_t max_url;            /* default 4096 -> 414 */
    size_t max_body;           /* default 1 MiB -> 413 (checked against Content-Length first) */
    unsigned max_conns;        /* default 1024 */
    unsigned max_conns_per_addr; /* from one IP address; default 256 */
    uint64_t header_timeout_ms;/* first byte of a request to end of headers; default 10000 */
    uint64_t body_timeout_ms;  /* end of headers to end of body; default 30000 */
    uint64_t idle_timeout_ms;  /* keep-alive idle; default 60000 */
    unsigned abort_on_eof;     /* 1: a client's EOF aborts the request in hand; default 0 */
    /* Paths answered even past the connection caps (health probes; NULL-terminated, borrowed,
     * default NULL: none): up to probe_reserve (default 64) connections beyond the caps are
     * read, and a request for one of these paths is answered (then the connection closes);
     * any other request on them gets the 503. */
    const char *const *probe_paths;
    unsigned probe_reserve;
};
/* A zero size or count takes its default; a zero timeout disables that timeout. */
/* Fill l with the defaults above. */
void http_limits_default(struct http_limits *l);

/* Called once per complete request, on the loop thread. */
typedef void (*http_handler_fn)(struct http_req *req, void *data);

/* Listen on host:port (port 0 = any; see http_server_port()). limits may be NULL
 * (defaults; copied). Returns 0 or a negative libuv error; nothing is left open on error. */
int http_server_start(uv_loop_t *loop, const char *host, int port,
                      const struct http_limits *limits, http_handler_fn handler, void *data,
                      struct http_server **out);
/* host: IPv4 or IPv6 literal ("[::1]" too), "localhost" (127.0.0.1), NULL or "" (0.0.0.0);
 * SO_REUSEADDR is on (libuv's default). After a bind/listen error the listener handle is
 * closed, and its memory is released when the loop next runs (run the loop before
 * uv_loop_close). If SIGPIPE is at its default disposition it is set to SIG_IGN: a write
 * to a reset peer must fail with EPIPE, not kill the process. */
int http_server_port(const struct http_server *s);
/* Stop accepting new connections (the listener closes; open connections go on). */
void http_server_stop_accepting(struct http_server *s);
/* Responses sent afterwards say "Connection: close", so keep-alive connections drain. */
/* Close the listener and every connection (pending requests get their abort callback),
 * then free the server and call cb(data) once everything is closed. */
void http_server_close(struct http_server *s, void (*cb)(void *data), void *data);
/* Counters, for metrics. */
unsigned http_server_connections(const struct http_server *s);

/* Called once for every request that got a response or reached the handler, when it is
 * over: the response written out (or the connection dead). status is the status sent, or
 * 499 when the client went away before any response; bytes are the body bytes sent (chunk
 * framing and headers not counted; 0 for HEAD). Server-generated errors (400, 408, 413,
 * 414, 431, 503) count too; their method and path may be "". The callback may read the
 * request (http_req_*), never answer it. NULL turns it off. For access logs. */
typedef void (*http_complete_fn)(const struct http_req *req, int status, size_t bytes,
                                 void *data);
void http_server_on_complete(struct http_server *s, http_complete_fn cb, void *data);
/* Milliseconds since the first byte of the request was read. */
double http_req_elapsed_ms(const struct http_req *r);

/* --- the request --- */
const char *http_req_method(const struct http_req *r);  /* "GET", "POST", ... */
const char *http_req_path(const struct http_req *r);    /* URL path, without the query */
const char *http_req_query(const struct http_req *r);   /* after '?', or "" */
/* Value of query parameter name (first occurrence, percent-decoded, in the arena), or NULL. */
const char *http_req_query_param(struct http_req *r, const char *name);
/* Header value by case-insensitive name (first occurrence), or NULL. */
const char *http_req_header(const struct http_req *r, const char *name);
/* The i-th header (0-based, in arrival order, name as sent): 0 with *name and *value set,
 * or -1 when there are not that many headers. */
int http_req_header_at(const struct http_req *r, size_t i, const char **name,
                       const char **value);
const char *http_req_body(const struct http_req *r, size_t *len); /* NUL-terminated too */
/* The request id: the client's X-Request-Id if it is sane (<= 64 printable chars), else a
 * generated one ("req_" + 16 hex). Sent back as X-Request-Id on every response. */
const char *http_req_id(const struct http_req *r);
const char *http_req_peer(const struct http_req *r);    /* "127.0.0.1:53422" */
/* Per-request arena: memory freed when the request is done. NULL on OOM. */
void *http_req_alloc(struct http_req *r, size_t n);
char *http_req_strdup(struct http_req *r, const char *s);
/* Called if the connection dies before the response is complete. */
void http_req_on_abort(struct http_req *r, void (*cb)(struct http_req *r, void *data), void *data);
/* A handler that keeps a request past its own return must set an abort callback: without
 * one, the request is freed silently when the connection dies. The callback runs from the
 * connection's close callback, never inside an http_* call; it is not called once the
 * response is complete. Between the connection's death and the callback, http_respond()
 * and friends are harmless no-ops (http_stream_write() returns -1). */

/* --- the response --- */
/* Add a response header (copied) before http_respond()/http_stream_begin(). */
void http_resp_header(struct http_req *r, const char *name, const char *value);
/* Send a complete response (Content-Length, Date, X-Request-Id and Connection added). */
void http_respond(struct http_req *r, int status, const char *content_type,
                  const char *body, size_t len);
/* JSON convenience: serializes body with cJSON (body not freed: the caller owns it). */
struct cJSON;
void http_respond_json(struct http_req *r, int status, const struct cJSON *body);
/* The docs/API.md error envelope: {"error": {"type", "code", "message", "param"}}; type is
 * derived from status; param may be NULL (then null). */
void http_respond_error(struct http_req *r, int status, const char *code, const char *param,
                        const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Streaming (chunked transfer encoding), e.g. Server-Sent Events. "Cache-Control: no-cache"
 * is sent unless the handler set a Cache-Control header of its own. */
void http_stream_begin(struct http_req *r, int status, const char *content_type);
/* Queue bytes (copied). Returns 0, or -1 if the connection is gone. */
int http_stream_write(struct http_req *r, const char *data, size_t len);
/* (Zero-length writes are ignored; more than 8 MiB unsent closes the connection: -1.) */
void http_stream_end(struct http_req *r);

/* Reason phrase for a status code ("Not Found"). */
const char *http_status_text(int status);
/* The error envelope type for a status ("invalid_request_error", ...). */
const char *http_error_type(int status);

#endif
