/* hook.h - the webhook client: one HTTP POST of a JSON body to a receiver's URL, on the
 * shared transfer engine (curlm.h). One call is one attempt; the delivery policy (retries,
 * backoff, signatures, what to record) is the caller's. Redirects are not followed and
 * proxies from the environment are not used; the caller may vet every address a connection
 * is about to be opened to (check_addr), which is where a target that resolves somewhere it
 * must not go is stopped.
 *
 * Ownership: struct hook_req is caller-owned and must stay valid until its callback has run
 * (or hook_cancel() returned). url, body and headers are copied when the request starts. The
 * outputs are valid in the callback. */
#ifndef BRIEFD_HOOK_H
#define BRIEFD_HOOK_H

#include <stddef.h>
#include <stdint.h>

#include "curlm.h"
#include "list.h"

struct hook_client;
struct hook_req;

/* status 0: the receiver answered 2xx; else a negative BD_E* code (BD_EUPSTREAM for a
 * non-2xx answer, BD_ECONNECT, BD_ETIMEOUT, BD_ECANCELED, BD_EREFUSED when check_addr
 * refused the address) and r->err says why. */
typedef void (*hook_cb)(struct hook_req *r, int status);

struct hook_req {
    void *data;                     /* the caller's */
    /* inputs */
    const char *url;
    const char *body;
    const char *const *headers;     /* "Name: value" lines (besides Content-Type), or NULL */
    size_t n_headers;
    long timeout_ms;                /* whole request; 0: 10000 */
    /* Called (during the transfer) with each struct sockaddr a connection is about to be
     * opened to: 0 allows it; non-zero refuses it, with the reason written into why (n
     * bytes). NULL: every address is allowed. */
    int (*check_addr)(const void *sa, char *why, size_t n, void *data);
    void *check_data;
    /* outputs */
    long http_status;               /* 0: no answer */
    char err[256];
    double elapsed_ms;
    /* internal */
    struct hook_client *client;
    struct curlm_xfer xfer;
    void *hdrs;                     /* struct curl_slist * */
    char *body_copy;
    int refused;                    /* check_addr refused an address */
    hook_cb cb;
    uint64_t t0;
    struct list_node node;
};

int hook_client_new(struct curlm *engine, struct hook_client **out);
/* Cancel every request in flight (callbacks run with BD_ECANCELED) and free the client. */
void hook_client_close(struct hook_client *c);

/* Start the POST. Returns 0 (cb runs exactly once, never from inside this call) or a
 * negative error (cb will not run). */
int hook_post(struct hook_client *c, struct hook_req *r, hook_cb cb);
/* Cancel a started request: its callback runs with BD_ECANCELED before this returns. */
void hook_cancel(struct hook_req *r);

#endif
