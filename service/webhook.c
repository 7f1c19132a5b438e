/* webhook.c - POST finished jobs to their callback_url, with retries. */
#include "webhook.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bderr.h"
#include "hook.h"
#include "jsonx.h"
#include "list.h"
#include "log.h"
#include "store.h"
#include "svc.h"

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
    char *url;
    char *body;
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
    free(d);
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
    log_warn("webhook for job %s failed after %d attempts: %s", d->id, d->attempts, r->err);
    delivery_free(d);
}

static void post(struct delivery *d)
{
    memset(&d->req, 0, sizeof(d->req));
    d->req.data = d;
    d->req.url = d->url;
    d->req.body = d->body;
    d->req.timeout_ms = WEBHOOK_TIMEOUT_MS;
    d->attempts++;
    if (hook_post(d->w->svc->hooks, &d->req, on_posted) != 0) {
        log_warn("webhook for job %s could not start", d->id);
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

void webhook_send(struct webhook *w, const char *id, const char *url)
{
    struct delivery *d = calloc(1, sizeof(*d));
    if (!d)
        return;
    d->w = w;
    list_init(&d->node);
    snprintf(d->id, sizeof(d->id), "%s", id);
    d->url = strdup(url);
    if (!d->url || store_get(w->svc->store, id, on_job, d) != 0) {
        free(d->url);
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
