/* hook.c - webhook POSTs on the shared curl multi engine. */
#include "hook.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "bderr.h"
#include "clock.h"

struct hook_client {
    struct curlm *engine;
    struct list_node reqs;
};

int hook_client_new(struct curlm *engine, struct hook_client **out)
{
    struct hook_client *c = calloc(1, sizeof(*c));
    if (!c)
        return BD_ENOMEM;
    c->engine = engine;
    list_init(&c->reqs);
    *out = c;
    return 0;
}

static size_t discard(char *p, size_t size, size_t n, void *userp)
{
    (void)p;
    (void)userp;
    return size * n;
}

static void req_release(struct hook_req *r)
{
    if (r->xfer.easy)
        curl_easy_cleanup(r->xfer.easy);
    curl_slist_free_all(r->hdrs);
    free(r->body_copy);
    r->xfer.easy = NULL;
    r->hdrs = NULL;
    r->body_copy = NULL;
    list_unlink(&r->node);
}

static void req_done(struct hook_req *r, int status)
{
    req_release(r);
    r->cb(r, status);
}

static void on_done(struct curlm_xfer *x, int result)
{
    struct hook_req *r = x->data;
    long code = 0;
    curl_easy_getinfo(r->xfer.easy, CURLINFO_RESPONSE_CODE, &code);
    r->http_status = code;
    r->elapsed_ms = clock_ms_since(r->t0);
    if (result != CURLE_OK && r->refused) {
        req_done(r, BD_EREFUSED); /* err holds check_addr's reason */
        return;
    }
    if (result != CURLE_OK) {
        snprintf(r->err, sizeof(r->err), "%s", curl_easy_strerror((CURLcode)result));
        req_done(r, result == CURLE_OPERATION_TIMEDOUT ? BD_ETIMEOUT : BD_ECONNECT);
        return;
    }
    if (code < 200 || code > 299) {
        snprintf(r->err, sizeof(r->err), "receiver answered HTTP %ld", code);
        req_done(r, BD_EUPSTREAM);
        return;
    }
    r->err[0] = '\0';
    req_done(r, 0);
}

static int build_headers(struct hook_req *r)
{
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    for (size_t i = 0; h && i < r->n_headers; i++) {
        struct curl_slist *n = curl_slist_append(h, r->headers[i]);
        if (!n) {
            curl_slist_free_all(h);
            return BD_ENOMEM;
        }
        h = n;
    }
    r->hdrs = h;
    return h ? 0 : BD_ENOMEM;
}

/* libcurl's socket opener: the caller vets the address first. */
static curl_socket_t open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *a)
{
    struct hook_req *r = clientp;

    (void)purpose;
    if (r->check_addr && r->check_addr(&a->addr, r->err, sizeof(r->err), r->check_data) != 0) {
        r->refused = 1;
        return CURL_SOCKET_BAD;
    }
    return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

static void setup(struct hook_req *r, CURL *e)
{
    long timeout = r->timeout_ms > 0 ? r->timeout_ms : 10000;
    curl_easy_setopt(e, CURLOPT_URL, r->url);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body_copy);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(r->body_copy));
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->hdrs);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, timeout < 10000 ? timeout : 10000L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "briefd-webhook/0.1");
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_PROXY, ""); /* no proxy from the environment */
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_socket);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, r);
}

int hook_post(struct hook_client *c, struct hook_req *r, hook_cb cb)
{
    int rc = BD_ENOMEM;
    if (!r->url || !r->body)
        return BD_EINVAL;
    list_init(&r->node);
    r->client = c;
    r->cb = cb;
    r->http_status = 0;
    r->refused = 0;
    r->err[0] = '\0';
    r->body_copy = strdup(r->body);
    r->xfer.data = r;
    r->xfer.easy = curl_easy_init();
    if (!r->body_copy || !r->xfer.easy || build_headers(r) != 0)
        goto fail;
    setup(r, r->xfer.easy);
    r->t0 = clock_mono_ns();
    if (curlm_add(c->engine, &r->xfer, on_done) != 0)
        goto fail;
    list_push_back(&c->reqs, &r->node);
    return 0;
fail:
    req_release(r);
    return rc;
}

void hook_cancel(struct hook_req *r)
{
    if (!r->xfer.easy)
        return;
    curlm_remove(&r->xfer);
    snprintf(r->err, sizeof(r->err), "canceled");
    req_done(r, BD_ECANCELED);
}

void hook_client_close(struct hook_client *c)
{
    struct list_node *first;
    while ((first = list_first(&c->reqs)) != NULL)
        hook_cancel(LIST_ENTRY(first, struct hook_req, node));
    free(c);
}
