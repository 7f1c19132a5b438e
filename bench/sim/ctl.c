/* ctl.c - models, health, and the control plane under /sim. */
#include "ctl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "chat.h"
#include "http.h"
#include "jsonx.h"

static void respond_json(struct http_req *req, int status, cJSON *o)
{
    char *s = o ? jsonx_print(o) : NULL;

    cJSON_Delete(o);
    if (!s) {
        http_respond_error(req, 500, "sim_oom", NULL, "out of memory");
        return;
    }
    http_respond(req, status, "application/json", s, strlen(s));
    free(s);
}

static int listed(const struct sim *s, int m)
{
    struct knobs k;

    faults_effective(&s->faults, m, &k);
    return !k.unlisted;
}

static cJSON *model_json(const struct sim *s, int m)
{
    cJSON *o = cJSON_CreateObject();

    cJSON_AddStringToObject(o, "id", model_defs[m].id);
    cJSON_AddStringToObject(o, "object", "model");
    cJSON_AddNumberToObject(o, "created", (double)(s->started_ms / 1000));
    cJSON_AddStringToObject(o, "owned_by", SIM_NAME);
    return o;
}

void ctl_models(struct sim *s, struct http_req *req)
{
    cJSON *root, *data;

    if (chat_check_headers(s, req, -1) != 0)
        return;
    root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "object", "list");
    data = cJSON_AddArrayToObject(root, "data");
    for (int m = 0; m < MODEL_COUNT; m++)
        if (listed(s, m))
            cJSON_AddItemToArray(data, model_json(s, m));
    respond_json(req, 200, root);
}

void ctl_model_one(struct sim *s, struct http_req *req, const char *id)
{
    int m = model_find(id);

    if (chat_check_headers(s, req, m) != 0)
        return;
    if (m >= 0 && listed(s, m)) {
        respond_json(req, 200, model_json(s, m));
        return;
    }
    http_respond_error(req, 404, "model_not_found", "model", "model '%.120s' not found", id);
}

void ctl_health(struct sim *s, struct http_req *req)
{
    static const char body[] = "{\"ok\":true}";

    (void)s;
    http_respond(req, 200, "application/json", body, sizeof body - 1);
}

void ctl_faults_get(struct sim *s, struct http_req *req)
{
    respond_json(req, 200, faults_json(&s->faults));
}

void ctl_faults_post(struct sim *s, struct http_req *req)
{
    size_t len;
    const char *body = http_req_body(req, &len);
    cJSON *root = body ? cJSON_ParseWithLength(body, len) : NULL;
    struct faults *nf = malloc(sizeof *nf);
    struct faults_err err;

    if (!nf) {
        http_respond_error(req, 500, "sim_oom", NULL, "out of memory");
    } else if (!cJSON_IsObject(root)) {
        http_respond_error(req, 400, "invalid_json", NULL, "body must be a JSON object");
    } else if (faults_parse(root, nf, &err) != 0) {
        http_respond_error(req, 400, "invalid_value", err.key[0] ? err.key : NULL,
                           "bad fault setting '%s': %s", err.key, err.msg);
    } else {
        s->faults = *nf;
        respond_json(req, 200, faults_json(&s->faults));
    }
    free(nf);
    cJSON_Delete(root);
}

void ctl_stats(struct sim *s, struct http_req *req)
{
    respond_json(req, 200, stats_json(&s->stats, s->npending, faults_hits_json(&s->faults)));
}

void ctl_requests(struct sim *s, struct http_req *req)
{
    const char *v = http_req_query_param(req, "limit");
    unsigned long limit = STATS_LOG_CAP;
    char *end = NULL;
    cJSON *o;

    if (v) {
        errno = 0;
        limit = strtoul(v, &end, 10);
        if (end == v || *end || errno || limit < 1 || limit > STATS_LOG_CAP) {
            http_respond_error(req, 400, "invalid_value", "limit",
                               "limit must be an integer in [1, %d]", STATS_LOG_CAP);
            return;
        }
    }
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "list");
    cJSON_AddItemToObject(o, "data", stats_log_json(&s->stats, (size_t)limit));
    respond_json(req, 200, o);
}

void ctl_reset(struct sim *s, struct http_req *req)
{
    stats_reset(&s->stats);
    faults_clear_hits(&s->faults);
    sim_reseed(s);
    ctl_health(s, req);
}
