/* curlm.h - libcurl's multi interface driven by libuv: the transfer engine that the model
 * client and the webhook client share (one connection pool, one timer). Follows curl's
 * docs/examples/multi-uv.c: CURLMOPT_SOCKETFUNCTION -> uv_poll, CURLMOPT_TIMERFUNCTION ->
 * one uv_timer; libcurl is never called from inside its own timer callback; a negative poll
 * status is handed to curl as CURL_CSELECT_ERR; curl_multi_info_read is drained after
 * every action. Unlike the example, a pooled connection's socket keeps its poll between
 * transfers (registered once, not once a transfer; released when curl closes it, through
 * CURLOPT_CLOSESOCKETFUNCTION, which curlm_add sets on every easy handle).
 *
 * Ownership: struct curlm_xfer is the caller's and stays valid until its done callback has
 * run or curlm_remove() returned. The easy handle is the caller's too: curlm only adds it to
 * the multi and removes it again (before calling done). curl's types stay out of this header
 * (the easy handle is a void *). */
#ifndef BRIEFD_CURLM_H
#define BRIEFD_CURLM_H

#include <uv.h>

#include "list.h"

/* Idle connections kept in the pool: 4 per transfer at the busiest moment so far, at least
 * CURLM_POOL_MIN. libcurl's default, 4 per transfer in flight *now*, closes pooled
 * connections whenever the load dips, and opens new ones when it comes back (at 32 steady
 * connections, one upstream connection opened and closed every ~16 requests). An idle
 * connection costs a descriptor and a few KB; the server's keep-alive timeout and libcurl's
 * CURLOPT_MAXAGE_CONN (118 s) end the ones left unused. */
#define CURLM_POOL_MIN 64

struct curlm;
struct curlm_xfer;

/* result: the transfer's CURLcode (0 = CURLE_OK). The easy handle is already removed. */
typedef void (*curlm_done_cb)(struct curlm_xfer *x, int result);

struct curlm_xfer {
    void *data;                 /* the caller's */
    void *easy;                 /* CURL *, set up by the caller */
    /* internal */
    struct curlm *m;
    curlm_done_cb done;
    int on_listed;              /* it used a pooled connection's socket already listed */
    struct list_node node;
};

/* libcurl's process-wide setup and teardown (curl_global_init / curl_global_cleanup), for
 * programs that do not include curl.h themselves. Returns 0 or BD_ENOMEM. */
int curlm_global_init(void);
void curlm_global_cleanup(void);

/* Create the engine on loop. curl_global_init is the caller's. Returns 0 or BD_ENOMEM. */
int curlm_new(uv_loop_t *loop, struct curlm **out);
/* Start a transfer (x->easy set up). Returns 0 (done runs exactly once, never from inside
 * this call) or BD_ENOMEM (done will not run). */
int curlm_add(struct curlm *m, struct curlm_xfer *x, curlm_done_cb done);
/* Stop a started transfer without calling done (no-op if it already finished). */
void curlm_remove(struct curlm_xfer *x);
/* Transfers in flight. */
unsigned curlm_active(const struct curlm *m);
/* Close: every transfer still running must have been removed by its owner first (the
 * clients built on curlm cancel theirs in their own close). Pooled connections are closed,
 * then cb(data) once every handle is closed and the engine freed. */
void curlm_close(struct curlm *m, void (*cb)(void *data), void *data);

#endif
