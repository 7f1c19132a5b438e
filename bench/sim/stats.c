/* stats.c - counters, in-flight peaks, the request log. */
#include "stats.h"

#include <string.h>

#include <cjson/cJSON.h>

const char *const stats_outcomes[O_COUNT] = {
    "ok", "error", "rate_limited", "rejected", "hang", "garbage", "truncated", "stream_error",
    "bad_request", "unauthorized", "not_found",
};

void stats_init(struct stats *st)
{
    memset(st, 0, sizeof *st);
}

static void log_clear(struct stats *st)
{
    for (size_t i = 0; i < STATS_LOG_CAP; i++) {
        cJSON_Delete(st->log[i]);
        st->log[i] = NULL;
    }
    st->log_next = 0;
    st->log_len = 0;
}

void stats_free(struct stats *st)
{
    log_clear(st);
}

void stats_reset(struct stats *st)
{
    unsigned inflight = st->inflight, model[MODEL_COUNT];
    uint64_t seq = st->log_seq;

    for (int m = 0; m < MODEL_COUNT; m++)
        model[m] = st->model[m].inflight;
    log_clear(st);
    memset(st, 0, sizeof *st);
    st->inflight = st->peak_inflight = inflight;
    for (int m = 0; m < MODEL_COUNT; m++)
        st->model[m].inflight = st->model[m].peak_inflight = model[m];
    st->log_seq = seq;
}

void stats_begin(struct stats *st, int model)
{
    struct stats_model *m;

    st->inflight++;
    if (st->inflight > st->peak_inflight)
        st->peak_inflight = st->inflight;
    if (model < 0)
        return;
    m = &st->model[model];
    m->inflight++;
    if (m->inflight > m->peak_inflight)
        m->peak_inflight = m->inflight;
}

void stats_end(struct stats *st, int model)
{
    if (st->inflight > 0)
        st->inflight--;
    if (model >= 0 && st->model[model].inflight > 0)
        st->model[model].inflight--;
}

void stats_outcome(struct stats *st, int model, enum outcome o)
{
    st->outcome[o]++;
    if (model >= 0)
        st->model[model].outcome[o]++;
}

void stats_log_add(struct stats *st, cJSON *entry)
{
    if (!entry)
        return;
    cJSON_AddNumberToObject(entry, "seq", (double)++st->log_seq);
    cJSON_Delete(st->log[st->log_next]);
    st->log[st->log_next] = entry;
    st->log_next = (st->log_next + 1) % STATS_LOG_CAP;
    if (st->log_len < STATS_LOG_CAP)
        st->log_len++;
}

static cJSON *counts_json(const uint64_t *v, const char *const *names, int n)
{
    cJSON *o = cJSON_CreateObject();

    for (int i = 0; o && i < n; i++)
        cJSON_AddNumberToObject(o, names[i], (double)v[i]);
    return o;
}

static cJSON *model_json(const struct stats_model *m)
{
    cJSON *o = cJSON_CreateObject();

    if (!o)
        return NULL;
    cJSON_AddNumberToObject(o, "requests", (double)m->requests);
    cJSON_AddNumberToObject(o, "streams", (double)m->streams);
    cJSON_AddNumberToObject(o, "aborted", (double)m->aborted);
    cJSON_AddNumberToObject(o, "prompt_tokens", (double)m->prompt_tokens);
    cJSON_AddNumberToObject(o, "completion_tokens", (double)m->completion_tokens);
    cJSON_AddNumberToObject(o, "inflight", m->inflight);
    cJSON_AddNumberToObject(o, "peak_inflight", m->peak_inflight);
    cJSON_AddItemToObject(o, "by_outcome", counts_json(m->outcome, stats_outcomes, O_COUNT));
    cJSON_AddItemToObject(o, "by_kind", counts_json(m->kind, model_kinds, KIND_COUNT));
    return o;
}

cJSON *stats_json(const struct stats *st, unsigned pending, cJSON *rule_hits)
{
    cJSON *o = cJSON_CreateObject(), *models;

    if (!o) {
        cJSON_Delete(rule_hits);
        return NULL;
    }
    cJSON_AddStringToObject(o, "simulator", SIM_NAME);
    cJSON_AddNumberToObject(o, "requests", (double)st->requests);
    cJSON_AddNumberToObject(o, "pending", pending);
    cJSON_AddNumberToObject(o, "aborted", (double)st->aborted);
    cJSON_AddNumberToObject(o, "inflight", st->inflight);
    cJSON_AddNumberToObject(o, "peak_inflight", st->peak_inflight);
    cJSON_AddItemToObject(o, "by_outcome", counts_json(st->outcome, stats_outcomes, O_COUNT));
    cJSON_AddItemToObject(o, "by_kind", counts_json(st->kind, model_kinds, KIND_COUNT));
    models = cJSON_AddObjectToObject(o, "by_model");
    for (int m = 0; models && m < MODEL_COUNT; m++)
        cJSON_AddItemToObject(models, model_defs[m].id, model_json(&st->model[m]));
    cJSON_AddItemToObject(o, "rule_hits", rule_hits ? rule_hits : cJSON_CreateArray());
    return o;
}

cJSON *stats_log_json(const struct stats *st, size_t limit)
{
    cJSON *a = cJSON_CreateArray();
    size_t n = limit < st->log_len ? limit : st->log_len, slot;

    for (size_t i = 0; a && i < n; i++) {
        slot = (st->log_next + STATS_LOG_CAP - 1 - i) % STATS_LOG_CAP;
        cJSON_AddItemToArray(a, cJSON_Duplicate(st->log[slot], 1));
    }
    return a;
}
