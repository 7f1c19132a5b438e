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

#define WEBHOOK_POLL_MS 500           /* look for due deliveries this often */
#define WEBHOOK_LEASE_EXTRA_MS 1000    /* a claim outlasts its attempt by this (+ 2 commands) */
#define WEBHOOK_JITTER 0.2             /* retry delays vary by +-20% */
#define WEBHOOK_ERR_MAX 200

/* The retry schedule, in units of webhooks.backoff_base_ms (5 s by default): 5 s, 30 s,
 * 2 min, 10 min, 30 min, 1 h, 2 h, 4 h, then 8 h (docs/API.md#webhooks). */
static const unsigned backoff_units[] = {1, 6, 24, 120, 360, 720, 1440, 2880, 5760};

struct webhook {
    struct svc *svc;
    struct list_node deliveries;  /* claimed: being read, sent or recorded */
    unsigned inflight;
    uv_timer_t timer;
    int claiming;                 /* a claim is in flight */
    int closing;
    int timer_closed;
};

enum dstage { D_FETCHING, D_POSTING, D_RECORDING };

/* One claimed attempt. Detached (w NULL) when the sender closes: it then releases its claim
 * (or records its outcome) and frees itself when its pending call answers. */
struct delivery {
    struct webhook *w;
    struct store *store;          /* outlives every delivery (closed after the sender) */
    struct list_node node;
    struct hook_req req;
    enum dstage stage;
    char id[JOB_ID_LEN + 1];
    int attempt;
    int64_t created_ms;
    char msg_id[64];              /* webhook-id: the same on every attempt */
    char *url;
    char shown[300];              /* the URL as logs may show it */
    char *body;
    struct bd_config *cfg;        /* this attempt's settings and target policy (a reference) */
    int host_listed;              /* the URL's host name is on webhooks.allow */
    char hdr[3][128];             /* webhook-id, -timestamp, -signature lines */
    const char *hdrs[3];
};

static void poll_due(struct webhook *w);

static void on_poll_timer(uv_timer_t *t)
{
    poll_due(t->data);
}

int webhook_new(struct svc *svc, struct webhook **out)
{
    struct webhook *w = calloc(1, sizeof(*w));
    if (!w)
        return BD_ENOMEM;
    w->svc = svc;
    list_init(&w->deliveries);
    uv_timer_init(svc->loop, &w->timer);
    w->timer.data = w;
    uv_timer_start(&w->timer, on_poll_timer, WEBHOOK_POLL_MS, WEBHOOK_POLL_MS);
    *out = w;
    return 0;
}

static void maybe_free_sender(struct webhook *w)
{
    if (w->closing && w->timer_closed && !w->claiming)
        free(w);
}

static void delivery_free(struct delivery *d)
{
    struct webhook *w = d->w;
    list_unlink(&d->node);
    free(d->url);
    free(d->body);
    config_unref(d->cfg);
    free(d);
    if (!w)
        return;
    w->inflight--;
    if (!w->closing)
        poll_due(w); /* room for another */
}

void webhook_msg_id(char *out, size_t n)
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

/* --- recording an outcome --- */

static void on_recorded(void *data, int status, int applied)
{
    struct delivery *d = data;
    if (status != 0)
        log_warn("webhook for job %s: the outcome of attempt %d could not be recorded (%s); "
                 "the delivery is claimed again when its lease ends", d->id, d->attempt,
                 bd_strerror(status));
    else if (!applied)
        log_info("webhook for job %s: attempt %d outlived its claim; another process went on",
                 d->id, d->attempt);
    delivery_free(d);
}

/* The job's "webhook" object: {"attempts", "status", "last_status", "error"}. */
static char *status_json(int attempts, const char *status, long http, const char *err)
{
    cJSON *o = cJSON_CreateObject();
    char *text;
    cJSON_AddNumberToObject(o, "attempts", attempts);
    cJSON_AddStringToObject(o, "status", status);
    if (http > 0)
        cJSON_AddNumberToObject(o, "last_status", (double)http);
    else
        cJSON_AddNullToObject(o, "last_status");
    if (err && *err)
        cJSON_AddStringToObject(o, "error", err);
    else
        cJSON_AddNullToObject(o, "error");
    text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

/* Record the outcome of d's attempt (attempts made so far: made), then free d. */
static void record(struct delivery *d, enum store_webhook_outcome o, int64_t due, int made,
                   long http, const char *err)
{
    static const char *const names[] = {"delivered", "failed", "pending", "pending"};
    struct store_webhook_done done;
    char *st = o == STORE_WH_RELEASE ? NULL : status_json(made, names[o], http, err);
    int rc;

    memset(&done, 0, sizeof(done));
    done.id = d->id;
    done.attempt = d->attempt;
    done.outcome = o;
    done.due_ms = due;
    done.status_json = st;
    done.ttl_s = d->cfg->result_ttl_s;
    d->stage = D_RECORDING;
    rc = (o == STORE_WH_RELEASE || st) ? store_webhook_done(d->store, &done, on_recorded, d)
                                       : BD_ENOMEM;
    free(st);
    if (rc != 0)
        delivery_free(d); /* the lease ends, and the delivery is claimed again */
}

/* Give the claim back without counting the attempt (the process is stopping). */
static void release(struct delivery *d)
{
    record(d, STORE_WH_RELEASE, clock_wall_ms(), 0, 0, NULL);
}

/* --- an attempt --- */

static int retryable(int status, long http_status)
{
    if (status == BD_ECONNECT || status == BD_ETIMEOUT)
        return 1;
    return status == BD_EUPSTREAM &&
           (http_status >= 500 || http_status == 408 || http_status == 429);
}

/* The delay before the attempt after attempt n (from 1), with jitter. */
static int64_t retry_delay_ms(const struct bd_config *c, int n)
{
    size_t k = sizeof(backoff_units) / sizeof(backoff_units[0]);
    size_t i = (size_t)(n - 1) < k ? (size_t)(n - 1) : k - 1;
    double d = (double)c->webhook_backoff_base_ms * backoff_units[i];
    double j = 1.0 + WEBHOOK_JITTER * (2.0 * ((double)rand() / RAND_MAX) - 1.0);
    return (int64_t)(d * j);
}

/* What an attempt's failure says, without the URL (it may hold credentials). */
static void describe_failure(const struct hook_req *r, int status, int timeout_ms, char *out,
                             size_t n)
{
    switch (status) {
    case BD_EUPSTREAM:
        snprintf(out, n, "HTTP %ld", r->http_status);
        break;
    case BD_ETIMEOUT:
        snprintf(out, n, "no answer within %d ms", timeout_ms);
        break;
    case BD_ECONNECT:
        snprintf(out, n, "could not connect");
        break;
    case BD_EREFUSED:
        snprintf(out, n, "refused: %.180s", r->err);
        break;
    default:
        snprintf(out, n, "%s", bd_strerror(status));
        break;
    }
}

static void on_posted(struct hook_req *r, int status)
{
    struct delivery *d = r->data;
    const struct bd_config *c = d->cfg;
    int64_t now = clock_wall_ms(), due = 0;
    char err[WEBHOOK_ERR_MAX] = "";
    int again;

    if (status == BD_ECANCELED) {
        release(d);
        return;
    }
    if (status == 0) {
        record(d, STORE_WH_DELIVERED, 0, d->attempt, r->http_status, NULL);
        return;
    }
    describe_failure(r, status, c->webhook_timeout_ms, err, sizeof(err));
    due = now + retry_delay_ms(c, d->attempt);
    again = retryable(status, r->http_status) && d->attempt < c->webhook_max_attempts &&
            due <= d->created_ms + c->webhook_max_age_s * 1000;
    if (again) {
        log_info("webhook for job %s to %s: attempt %d failed (%s); next in %lld ms", d->id,
                 d->shown, d->attempt, err, (long long)(due - now));
        record(d, STORE_WH_RETRY, due, d->attempt, r->http_status, err);
        return;
    }
    if (status == BD_EREFUSED)
        log_warn("webhook for job %s to %s %s", d->id, d->shown, err);
    else
        log_warn("webhook for job %s to %s failed after %d attempts: %s%s", d->id, d->shown,
                 d->attempt, err, retryable(status, r->http_status) &&
                 d->attempt < c->webhook_max_attempts ? " (webhooks.max_age_s reached)" : "");
    record(d, STORE_WH_FAILED, 0, d->attempt, r->http_status, err);
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
    d->req.timeout_ms = d->cfg->webhook_timeout_ms;
    d->req.check_addr = check_addr;
    d->req.check_data = d;
    n = sign_headers(d);
    d->req.headers = d->hdrs;
    d->req.n_headers = n > 0 ? (size_t)n : 0;
    d->stage = D_POSTING;
    if (n < 0 || hook_post(d->w->svc->hooks, &d->req, on_posted) != 0) {
        log_warn("webhook for job %s to %s could not start; retried when its claim ends",
                 d->id, d->shown);
        delivery_free(d);
    }
}

static void on_job(void *data, int status, cJSON *job)
{
    struct delivery *d = data;
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(job, "status");
    int done = cJSON_IsString(st) && (strcmp(st->valuestring, "succeeded") == 0 ||
                                      strcmp(st->valuestring, "failed") == 0);

    if (!d->w) {
        cJSON_Delete(job);
        release(d);
        return;
    }
    if (status == BD_ENOTFOUND || (status == 0 && !done)) {
        cJSON_Delete(job);
        log_warn("webhook for job %s to %s failed: the job's record is gone", d->id, d->shown);
        record(d, STORE_WH_FAILED, 0, d->attempt - 1, 0, "the job's record is gone");
        return;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(job, "webhook"); /* the same body on every try */
    d->body = status == 0 ? jsonx_print(job) : NULL;
    cJSON_Delete(job);
    if (!d->body) {
        delivery_free(d); /* Redis failed: claimed again when the lease ends */
        return;
    }
    post(d);
}

/* --- claiming due deliveries --- */

/* Start one claimed delivery (or end it: too old, out of attempts). */
static void start(struct webhook *w, const struct store_webhook *c)
{
    const struct bd_config *cfg = w->svc->cfg;
    struct delivery *d = calloc(1, sizeof(*d));
    struct url_parts u;
    int64_t age;

    if (!d)
        return; /* claimed again when the lease ends */
    d->w = w;
    d->store = w->svc->store;
    list_init(&d->node);
    snprintf(d->id, sizeof(d->id), "%s", c->id);
    snprintf(d->msg_id, sizeof(d->msg_id), "%s", c->msg_id);
    d->attempt = c->attempt;
    d->created_ms = c->created_ms;
    d->url = strdup(c->url);
    d->cfg = config_ref(w->svc->cfg);
    url_redact(c->url, d->shown, sizeof(d->shown));
    d->host_listed = url_parse(c->url, &u, NULL) == 0 &&
                     target_name_listed(&cfg->webhook_allow, u.host);
    list_push_back(&w->deliveries, &d->node);
    w->inflight++;
    age = clock_wall_ms() - c->created_ms;
    if (!d->url) {
        delivery_free(d);
    } else if (c->attempt > cfg->webhook_max_attempts || age > cfg->webhook_max_age_s * 1000) {
        log_warn("webhook for job %s to %s failed: no attempt left (webhooks.max_attempts %d, "
                 "max_age_s %ld)", d->id, d->shown, cfg->webhook_max_attempts,
                 cfg->webhook_max_age_s);
        record(d, STORE_WH_FAILED, 0, c->attempt - 1, 0, "no attempt left within "
               "webhooks.max_attempts and webhooks.max_age_s");
    } else if (store_get(d->store, d->id, on_job, d) != 0) {
        delivery_free(d);
    }
}

static void on_claimed(void *data, int status, const struct store_webhook *c, size_t n)
{
    struct webhook *w = data;
    w->claiming = 0;
    if (status != 0 && !w->closing)
        log_warn("webhooks: could not claim due deliveries: %s", bd_strerror(status));
    for (size_t i = 0; i < n && !w->closing; i++)
        start(w, &c[i]);
    for (size_t i = 0; i < n && w->closing; i++) {
        struct store_webhook_done done = {c[i].id, c[i].attempt, STORE_WH_RELEASE,
                                          clock_wall_ms(), NULL, 1};
        store_webhook_done(w->svc->store, &done, NULL, NULL);
    }
    maybe_free_sender(w);
}

static void poll_due(struct webhook *w)
{
    const struct bd_config *cfg = w->svc->cfg;
    unsigned max = (unsigned)cfg->webhook_max_in_flight;
    long lease = cfg->webhook_timeout_ms + 2L * cfg->redis_command_timeout_ms +
                 WEBHOOK_LEASE_EXTRA_MS;

    if (w->closing || w->claiming || w->inflight >= max || !store_ready(w->svc->store))
        return;
    w->claiming = 1;
    if (store_webhook_claim(w->svc->store, clock_wall_ms(), max - w->inflight, lease,
                            on_claimed, w) != 0)
        w->claiming = 0;
}

void webhook_kick(struct webhook *w)
{
    poll_due(w);
}

static void on_timer_closed(uv_handle_t *h)
{
    struct webhook *w = h->data;
    w->timer_closed = 1;
    maybe_free_sender(w);
}

void webhook_close(struct webhook *w)
{
    struct list_node *it, *tmp;
    w->closing = 1;
    LIST_FOR_EACH_SAFE(it, tmp, &w->deliveries) {
        struct delivery *d = LIST_ENTRY(it, struct delivery, node);
        list_unlink(&d->node);
        d->w = NULL; /* it ends on its own: its pending call answers */
        if (d->stage == D_POSTING)
            hook_cancel(&d->req); /* on_posted releases the claim */
    }
    w->inflight = 0;
    uv_timer_stop(&w->timer);
    uv_close((uv_handle_t *)&w->timer, on_timer_closed);
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
