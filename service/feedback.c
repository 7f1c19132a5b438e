/* feedback.c - validation of a feedback body, the stored item, the job's facts. */
#include "feedback.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"

static const char *const known_fields[] = {"score", "label", "comment"};

static int fail(struct job_verr *e, int status, const char *code, const char *param,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int fail(struct job_verr *e, int status, const char *code, const char *param,
                const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return job_verr_set(e, status, code, param, msg);
}

/* Unicode characters of a valid UTF-8 string. */
static size_t chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static int check_fields(const cJSON *root, struct job_verr *e)
{
    for (const cJSON *it = root->child; it; it = it->next) {
        int known = 0;
        char name[72];
        snprintf(name, sizeof(name), "%.64s", it->string);
        for (const cJSON *p = root->child; p != it; p = p->next)
            if (strcmp(p->string, it->string) == 0)
                return fail(e, 400, "duplicate_parameter", name, "field '%s' appears twice",
                            name);
        for (size_t i = 0; i < sizeof(known_fields) / sizeof(known_fields[0]); i++)
            known |= strcmp(it->string, known_fields[i]) == 0;
        if (!known)
            return fail(e, 400, "unknown_parameter", name, "unknown field '%s'", name);
    }
    return 0;
}

static int parse_score(const cJSON *v, struct feedback *out, struct job_verr *e)
{
    if (!v)
        return fail(e, 400, "score_required", "score", "field 'score' is required");
    if (!cJSON_IsNumber(v))
        return fail(e, 400, "invalid_type", "score", "field 'score' must be an integer");
    if (!(v->valuedouble >= 1 && v->valuedouble <= 5))
        return fail(e, 422, "invalid_value", "score", "field 'score' must be from 1 to 5");
    if (v->valuedouble != floor(v->valuedouble))
        return fail(e, 400, "invalid_type", "score", "field 'score' must be an integer");
    out->score = (int)v->valuedouble;
    return 0;
}

/* An optional string of at most max characters (min 1 when nonempty); NULL/null: absent. */
static int parse_text(const cJSON *v, const char *name, size_t min, size_t max, char **out,
                      struct job_verr *e)
{
    size_t n;
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsString(v))
        return fail(e, 400, "invalid_type", name, "field '%s' must be a string", name);
    n = chars(v->valuestring);
    if (n < min || n > max)
        return fail(e, 422, "invalid_value", name, "field '%s' must have %zu to %zu characters",
                    name, min, max);
    *out = strdup(v->valuestring);
    return *out ? 0 : fail(e, 500, "out_of_memory", NULL, "out of memory");
}

int feedback_parse(const char *body, size_t len, struct feedback *out, struct job_verr *err)
{
    cJSON *root;
    int rc = -1;
    memset(out, 0, sizeof(*out));
    if (len > FEEDBACK_BODY_MAX)
        return fail(err, 413, "body_too_large", NULL, "a feedback body is at most %d bytes",
                    FEEDBACK_BODY_MAX);
    if (job_body_check(body, len, err) != 0)
        return -1;
    root = cJSON_ParseWithLength(body, len);
    if (!root)
        return fail(err, 400, "invalid_json", NULL, "request body is not valid JSON");
    if (!cJSON_IsObject(root)) {
        fail(err, 400, "invalid_json", NULL, "request body must be a JSON object");
        goto out;
    }
    if (check_fields(root, err) != 0 ||
        parse_score(cJSON_GetObjectItemCaseSensitive(root, "score"), out, err) != 0 ||
        parse_text(cJSON_GetObjectItemCaseSensitive(root, "label"), "label", 1,
                   FEEDBACK_LABEL_MAX, &out->label, err) != 0 ||
        parse_text(cJSON_GetObjectItemCaseSensitive(root, "comment"), "comment", 0,
                   FEEDBACK_COMMENT_MAX, &out->comment, err) != 0)
        goto out;
    rc = 0;
out:
    cJSON_Delete(root);
    if (rc != 0)
        feedback_free(out);
    return rc;
}

void feedback_free(struct feedback *f)
{
    free(f->label);
    free(f->comment);
    memset(f, 0, sizeof(*f));
}

static void add_opt(cJSON *o, const char *name, const char *v)
{
    if (v)
        cJSON_AddStringToObject(o, name, v);
    else
        cJSON_AddNullToObject(o, name);
}

cJSON *feedback_item_json(const struct feedback *f, const char *job_id, int64_t now_ms,
                          const char *api_key_id)
{
    cJSON *o = cJSON_CreateObject();
    char ts[40];
    if (!o)
        return NULL;
    clock_iso8601(now_ms, ts, sizeof(ts));
    cJSON_AddStringToObject(o, "object", "brief.feedback");
    cJSON_AddStringToObject(o, "job_id", job_id);
    cJSON_AddNumberToObject(o, "score", f->score);
    add_opt(o, "label", f->label);
    add_opt(o, "comment", f->comment);
    cJSON_AddStringToObject(o, "created_at", ts);
    add_opt(o, "api_key_id", api_key_id);
    return o;
}

static const char *str_of(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

void feedback_job_facts(const cJSON *job, struct feedback_facts *out)
{
    const cJSON *route = cJSON_GetObjectItemCaseSensitive(job, "route");
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(job, "metadata");
    const char *status = str_of(job, "status"), *fin = str_of(job, "finished_at");
    const cJSON *v;
    memset(out, 0, sizeof(*out));
    out->finished = status && (strcmp(status, "succeeded") == 0 || strcmp(status, "failed") == 0);
    out->decision = str_of(route, "decision");
    if (out->decision && strcmp(out->decision, "keep") != 0 &&
        strcmp(out->decision, "refine") != 0)
        out->decision = NULL;
    cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(route, "verdicts")) {
        const char *p = str_of(v, "policy"), *k = str_of(v, "verdict");
        if (!p || !k || strncmp(p, "guard:", 6) == 0 || out->n == FEEDBACK_MAX_VOTES)
            continue;
        out->policies[out->n] = p;
        out->verdicts[out->n++] = k;
    }
    out->source = str_of(meta, "source");
    out->tenant = str_of(meta, "tenant");
    if (clock_parse_iso8601(fin, &out->finished_ms) != 0)
        out->finished_ms = 0;
}
