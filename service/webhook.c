/* webhook.c - POST finished jobs to their callback_url, with retries. */
#include "webhook.h"

#include <cjson/cJSON.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "b64.h"
#include "bderr.h"
#include "clock.h"
#include "config.h"
#include "hash.h"
#include "hook.h"
#include "jsonx.h"
#include "list.h"
#include "log.h"
#include "store.h"
#include "svc.h"
#include "target.h"
#include "url.h"

#define WEBHOOK_TIMEOUT_MS 10000
#define WEBHOOK_BACKOFF_MS 500

struct webhook {
    struct svc *svc;
    struct list_node deliveries;
};

struct delivery {
    struct webhook *w;
    struct list_node node;
    struct hook_req req;
    uv_timer_t *backoff;
    char id[64];
    char msg_id[40];            /* webhook-id: "msg_" + 32 hex digits, the same on retries */
    char *url;
    char shown[300];            /* the URL as logs may show it */
    char *body;
    struct bd_config *cfg;      /* the secret and the target policy (a reference) */
    int host_listed;            /* the URL's host name is on webhooks.allow */
    char hdr[3][128];           /* webhook-id, -timestamp, -signature lines */
    const char *hdrs[3];
    int attempts;
    int fetching;               /* the job is being read from the store */
    int gone;                   /* webhook_close ran while fetching */
};

int webhook_new(struct svc *svc, struct webhook **out)
{
    struct webhook *w = calloc(1, sizeof(*w));
    if (!w)
        return BD_ENOMEM;
    w->svc = svc;
    list_init(&w->deliveries);
    *out = w;
    return 0;
}

static void on_backoff_closed(uv_handle_t *h) { free(h); }

static void delivery_free(struct delivery *d)
{
    list_unlink(&d->node);
    if (d->backoff) {
        uv_timer_stop(d->backoff);
        uv_close((uv_handle_t *)d->backoff, on_backoff_closed);
    }
    free(d->url);
    free(d->body);
    config_unref(d->cfg);
    free(d);
}

int webhook_sign(const unsigned char *secret, size_t secret_len, const char *msg_id,
                 long long timestamp, const char *body, char *out, size_t n)
{
    unsigned char mac[HASH_SHA256_LEN];
    char *content = NULL;
    int len = asprintf(&content, "%s.%lld.%s", msg_id, timestamp, body);
    int rc;

    if (len < 0)
        return BD_ENOMEM;
    rc = hash_hmac_sha256(secret, secret_len, content, (size_t)len, mac);
    free(content);
    if (rc != 0)
        return rc;
    if (n < 4 || b64_encode(mac, sizeof mac, out + 3, n - 3) == 0)
        return BD_ETOOBIG;
    memcpy(out, "v1,", 3);
    return 0;
}

static int retryable(int status, long http_status)
{
    if (status == BD_ECONNECT || status == BD_ETIMEOUT)
        return 1;
    return status == BD_EUPSTREAM &&
           (http_status >= 500 || http_status == 408 || http_status == 429);
}

static void post(struct delivery *d);

static void on_backoff(uv_timer_t *t)
{
    struct delivery *d = t->data;
    d->backoff = NULL;
    uv_close((uv_handle_t *)t, on_backoff_closed);
    post(d);
}

static void on_posted(struct hook_req *r, int status)
{
    struct delivery *d = r->data;
    uint64_t delay = (uint64_t)WEBHOOK_BACKOFF_MS << (d->attempts - 1);
    if (status == 0 || status == BD_ECANCELED) {
        delivery_free(d);
        return;
    }
    if (d->attempts < WEBHOOK_ATTEMPTS && retryable(status, r->http_status)) {
        d->backoff = malloc(sizeof(*d->backoff));
        if (d->backoff) {
            uv_timer_init(d->w->svc->loop, d->backoff);
            d->backoff->data = d;
            uv_timer_start(d->backoff, on_backoff, delay / 2 + (uint64_t)rand() % (delay / 2 + 1), 0);
            return;
        }
    }
    if (status == BD_EREFUSED)
        log_warn("webhook for job %s to %s refused: %s", d->id, d->shown, r->err);
    else
        log_warn("webhook for job %s to %s failed after %d attempts: %s", d->id, d->shown,
                 d->attempts, r->err);
    delivery_free(d);
}

/* hook_req.check_addr: the target policy on the address a connection goes to. */
static int check_addr(const void *sa, char *why, size_t n, void *data)
{
    const struct delivery *d = data;
    struct netaddr a;

    if (netaddr_from_sockaddr(sa, &a) != 0) {
        snprintf(why, n, "not an IP address");
        return -1;
    }
    return target_addr_ok(&d->cfg->webhook_allow, d->host_listed, &a, why, n) ? 0 : -1;
}

/* The Standard Webhooks headers of this attempt. */
static int sign_headers(struct delivery *d)
{
    long long ts = (long long)time(NULL);
    char sig[WEBHOOK_SIGNATURE_LEN];
    int n = 2;

    snprintf(d->hdr[0], sizeof d->hdr[0], "webhook-id: %s", d->msg_id);
    snprintf(d->hdr[1], sizeof d->hdr[1], "webhook-timestamp: %lld", ts);
    if (d->cfg->webhook_secret) {
        if (webhook_sign(d->cfg->webhook_secret, d->cfg->webhook_secret_len, d->msg_id, ts,
                         d->body, sig, sizeof sig) != 0)
            return -1;
        snprintf(d->hdr[2], sizeof d->hdr[2], "webhook-signature: %s", sig);
        n = 3;
    }
    for (int i = 0; i < n; i++)
        d->hdrs[i] = d->hdr[i];
    return n;
}

static void post(struct delivery *d)
{
    int n;
    memset(&d->req, 0, sizeof(d->req));
    d->req.data = d;
    d->req.url = d->url;
    d->req.body = d->body;
    d->req.timeout_ms = WEBHOOK_TIMEOUT_MS;
    d->req.check_addr = check_addr;
    d->req.check_data = d;
    n = sign_headers(d);
    d->req.headers = d->hdrs;
    d->req.n_headers = n > 0 ? (size_t)n : 0;
    d->attempts++;
    if (n < 0 || hook_post(d->w->svc->hooks, &d->req, on_posted) != 0) {
        log_warn("webhook for job %s to %s could not start", d->id, d->shown);
        delivery_free(d);
    }
}

static void on_job(void *data, int status, cJSON *job)
{
    struct delivery *d = data;
    d->fetching = 0;
    if (d->gone) {
        cJSON_Delete(job);
        free(d->url);
        config_unref(d->cfg);
        free(d);
        return;
    }
    d->body = (status == 0 && job) ? jsonx_print(job) : NULL;
    cJSON_Delete(job);
    if (!d->body) {
        log_warn("webhook for job %s: the job could not be read", d->id);
        delivery_free(d);
        return;
    }
    post(d);
}

/* "msg_" + 32 hex digits of randomness: unique per delivery. */
static void new_msg_id(char *out, size_t n)
{
    unsigned char r[16];

    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
        uint64_t t = (uint64_t)clock_wall_ms() ^ ((uint64_t)rand() << 20);
        memcpy(r, &t, sizeof t);
        t = hash_mix64(t ^ (uint64_t)(uintptr_t)out);
        memcpy(r + 8, &t, sizeof t);
    }
    snprintf(out, n, "msg_");
    for (size_t i = 0; i < sizeof r && 4 + 2 * i + 2 < n; i++)
        snprintf(out + 4 + 2 * i, n - 4 - 2 * i, "%02x", r[i]);
}

void webhook_send(struct webhook *w, const char *id, const char *url)
{
    struct url_parts u;
    struct delivery *d = calloc(1, sizeof(*d));
    if (!d)
        return;
    d->w = w;
    list_init(&d->node);
    snprintf(d->id, sizeof(d->id), "%s", id);
    new_msg_id(d->msg_id, sizeof(d->msg_id));
    url_redact(url, d->shown, sizeof(d->shown));
    d->cfg = config_ref(w->svc->cfg);
    d->host_listed = url_parse(url, &u, NULL) == 0 && target_name_listed(&d->cfg->webhook_allow,
                                                                          u.host);
    d->url = strdup(url);
    if (!d->url || store_get(w->svc->store, id, on_job, d) != 0) {
        free(d->url);
        config_unref(d->cfg);
        free(d);
        return;
    }
    d->fetching = 1;
    list_push_back(&w->deliveries, &d->node);
}

void webhook_close(struct webhook *w)
{
    struct list_node *it, *tmp;
    LIST_FOR_EACH_SAFE(it, tmp, &w->deliveries) {
        struct delivery *d = LIST_ENTRY(it, struct delivery, node);
        if (d->fetching) {
            /* the store's callback frees it (the store answers every pending call) */
            list_unlink(&d->node);
            d->gone = 1;
        } else if (d->backoff) {
            delivery_free(d);
        } else {
            hook_cancel(&d->req); /* on_posted frees it */
        }
    }
    free(w);
}

/* --- vetting a callback_url at submit --- */

int webhook_vet_now(const struct bd_config *cfg, const char *url, char *why, size_t n)
{
    struct url_parts u;
    const char *bad = NULL;

    if (url_parse(url, &u, &bad) != 0) {
        snprintf(why, n, "%s", bad);
        return -1;
    }
    switch (target_check_host(&cfg->webhook_allow, &u, why, n)) {
    case TARGET_ALLOWED:
        return 0;
    case TARGET_RESOLVE:
        return 1;
    default:
        return -1;
    }
}

struct vetting {
    uv_getaddrinfo_t gai;
    struct bd_config *cfg;
    void (*cb)(void *data, int status, const char *why);
    void *data;
};

static void on_resolved(uv_getaddrinfo_t *gai, int status, struct addrinfo *res)
{
    struct vetting *v = gai->data;
    char why[200] = "";
    int rc = 0;

    if (status < 0) {
        snprintf(why, sizeof(why), "its host does not resolve (%s)", uv_strerror(status));
        rc = BD_EREFUSED;
    }
    for (const struct addrinfo *ai = status == 0 ? res : NULL; ai && rc == 0; ai = ai->ai_next) {
        struct netaddr a;
        if (netaddr_from_sockaddr(ai->ai_addr, &a) == 0 &&
            !target_addr_ok(&v->cfg->webhook_allow, 0, &a, why, sizeof(why)))
            rc = BD_EREFUSED;
    }
    uv_freeaddrinfo(res);
    v->cb(v->data, rc, rc ? why : NULL);
    config_unref(v->cfg);
    free(v);
}

int webhook_vet_resolve(uv_loop_t *loop, struct bd_config *cfg, const char *url,
                        void (*cb)(void *data, int status, const char *why), void *data)
{
    struct addrinfo hints;
    struct url_parts u;
    struct vetting *v;
    int rc;

    if (url_parse(url, &u, NULL) != 0)
        return BD_EINVAL;
    v = calloc(1, sizeof(*v));
    if (!v)
        return BD_ENOMEM;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    v->gai.data = v;
    v->cfg = config_ref(cfg);
    v->cb = cb;
    v->data = data;
    rc = uv_getaddrinfo(loop, &v->gai, on_resolved, u.host, NULL, &hints);
    if (rc != 0) {
        config_unref(v->cfg);
        free(v);
    }
    return rc;
}
