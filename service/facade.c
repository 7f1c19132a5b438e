/* facade.c - OpenAI chat.completions <-> brief jobs. */
#include "facade.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jsonx.h"
#include "sbuf.h"

static int ferr(struct job_verr *e, int status, const char *code, const char *param,
                const char *msg)
{
    return job_verr_set(e, status, code, param, msg);
}

/* The text of a message's content: a string, or the concatenated "text" parts. NULL if
 * neither (caller frees). */
static char *content_text(const cJSON *content)
{
    const cJSON *part;
    size_t len = 0;
    char *out;
    if (cJSON_IsString(content))
        return strdup(content->valuestring);
    if (!cJSON_IsArray(content))
        return NULL;
    cJSON_ArrayForEach(part, content) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (cJSON_IsString(t))
            len += strlen(t->valuestring) + 1;
    }
    out = calloc(1, len + 1);
    if (!out)
        return NULL;
    cJSON_ArrayForEach(part, content) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (cJSON_IsString(t)) {
            if (out[0])
                strcat(out, "\n");
            strcat(out, t->valuestring);
        }
    }
    return out;
}

/* Build the job body {"text", "instructions", "max_words", "metadata"} and validate it
 * with the job API's own rules (job_req_from_object: the body was checked whole by
 * job_body_check, so it is not printed and parsed again). */
static int to_job(const char *text, const char *instr, int max_words, const cJSON *meta,
                  size_t max_text_bytes, struct job_req *out, struct job_verr *err)
{
    cJSON *b = cJSON_CreateObject();
    int rc;
    if (!b)
        return ferr(err, 500, "out_of_memory", NULL, "out of memory");
    cJSON_AddStringToObject(b, "text", text);
    if (instr)
        cJSON_AddStringToObject(b, "instructions", instr);
    if (max_words)
        cJSON_AddNumberToObject(b, "max_words", max_words);
    if (cJSON_IsObject(meta))
        cJSON_AddItemToObject(b, "metadata", cJSON_Duplicate(meta, 1));
    rc = job_req_from_object(b, max_text_bytes, out, err);
    cJSON_Delete(b);
    if (rc != 0 && strcmp(err->param, "text") == 0)
        snprintf(err->param, sizeof(err->param), "messages");
    return rc;
}

static int parse_messages(const cJSON *msgs, char **text, char **instr, struct job_verr *err)
{
    const cJSON *m;
    *text = *instr = NULL;
    if (!cJSON_IsArray(msgs) || cJSON_GetArraySize(msgs) == 0)
        return ferr(err, 400, "invalid_type", "messages",
                    "'messages' must be a non-empty array");
    if (cJSON_GetArraySize(msgs) > 256)
        return ferr(err, 422, "invalid_value", "messages", "at most 256 messages");
    cJSON_ArrayForEach(m, msgs) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        char **slot = NULL;
        if (!cJSON_IsString(role))
            return ferr(err, 400, "invalid_type", "messages",
                        "every message needs a string 'role'");
        if (strcmp(role->valuestring, "user") == 0)
            slot = text;
        else if (strcmp(role->valuestring, "system") == 0 ||
                 strcmp(role->valuestring, "developer") == 0)
            slot = instr;
        if (!slot)
            continue;
        char *t = content_text(content);
        if (!t)
            return ferr(err, 400, "invalid_type", "messages",
                        "message content must be a string or an array of text parts");
        free(*slot);
        *slot = t; /* the last one wins */
    }
    if (!*text)
        return ferr(err, 400, "text_required", "messages", "no user message to summarize");
    return 0;
}

/* Tool calling: a brief calls no tools, so a request that offers some is refused rather
 * than answered as if they were not there. JSON null counts as absent. */
static int refuse_tools(const cJSON *root, struct job_verr *err)
{
    static const char *const names[] = {"tools", "tool_choice", "functions", "function_call",
                                        NULL};
    char msg[160];

    for (int i = 0; names[i]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, names[i]);
        if (!v || cJSON_IsNull(v))
            continue;
        snprintf(msg, sizeof(msg), "'%s' is not supported: briefd writes briefs and calls no "
                 "tools", names[i]);
        return ferr(err, 400, "unsupported_parameter", names[i], msg);
    }
    return 0;
}

int facade_parse(const char *body, size_t len, const char *alias, size_t max_text_bytes,
                 struct job_req *out, struct facade_req *fr, struct job_verr *err)
{
    cJSON *root = NULL;
    const cJSON *model, *mt, *so, *n;
    char *text = NULL, *instr = NULL;
    int max_words = 0, rc = -1;
    memset(out, 0, sizeof(*out));
    memset(fr, 0, sizeof(*fr));
    if (job_body_check(body, len, err) != 0)
        return -1;
    root = cJSON_ParseWithLength(body, len);
    if (!cJSON_IsObject(root)) {
        ferr(err, 400, "invalid_json", NULL, "request body must be a JSON object");
        goto out;
    }
    model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsString(model)) {
        ferr(err, 400, "invalid_type", "model", "'model' is required and must be a string");
        goto out;
    }
    if (strcmp(model->valuestring, alias) != 0) {
        char msg[256];
        snprintf(msg, sizeof(msg), "The model '%.100s' does not exist; use '%.100s'",
                 model->valuestring, alias);
        ferr(err, 404, "model_not_found", "model", msg);
        goto out;
    }
    n = cJSON_GetObjectItemCaseSensitive(root, "n");
    if (n && !(cJSON_IsNumber(n) && n->valuedouble == 1)) {
        ferr(err, 400, "invalid_value", "n", "only n = 1 is supported");
        goto out;
    }
    if (refuse_tools(root, err) != 0)
        goto out;
    fr->stream = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "stream"));
    so = cJSON_GetObjectItemCaseSensitive(root, "stream_options");
    fr->include_usage = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(so, "include_usage"));
    mt = cJSON_GetObjectItemCaseSensitive(root, "max_completion_tokens");
    if (!mt)
        mt = cJSON_GetObjectItemCaseSensitive(root, "max_tokens");
    if (cJSON_IsNumber(mt) && mt->valuedouble >= 1) {
        double w = mt->valuedouble * 0.75;
        max_words = w < 10 ? 10 : w > 2000 ? 2000 : (int)w;
    }
    if (parse_messages(cJSON_GetObjectItemCaseSensitive(root, "messages"), &text, &instr,
                       err) != 0)
        goto out;
    rc = to_job(text, instr, max_words, cJSON_GetObjectItemCaseSensitive(root, "metadata"),
                max_text_bytes, out, err);
out:
    free(text);
    free(instr);
    cJSON_Delete(root);
    return rc;
}

/* --- responses ---
 *
 * Printed straight into a buffer from the run's output object (pipe_out_json's shape):
 * nothing is copied into a tree of its own first. */

/* The sum of one count over the stages of out's "usage" ({"draft": {...}, "refine": {...}}). */
static double usage_sum(const cJSON *out, const char *kind)
{
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(out, "usage"), *stage;
    double sum = 0;
    cJSON_ArrayForEach(stage, u) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(stage, kind);
        if (cJSON_IsNumber(v))
            sum += v->valuedouble;
    }
    return sum;
}

/* ,"usage":{"prompt_tokens":P,"completion_tokens":C,"total_tokens":P+C} */
static void put_usage(struct sbuf *b, const cJSON *out)
{
    double p = usage_sum(out, "prompt_tokens"), c = usage_sum(out, "completion_tokens");
    sbuf_adds(b, ",\"usage\":{\"prompt_tokens\":");
    jsonx_write_number(b, p);
    sbuf_adds(b, ",\"completion_tokens\":");
    jsonx_write_number(b, c);
    sbuf_adds(b, ",\"total_tokens\":");
    jsonx_write_number(b, p + c);
    sbuf_addc(b, '}');
}

/* ,"briefd":{"job_id", "route", "latency_ms", "cost_usd", "cached", "cached_from", and the
 * result's "model", "refined", "degraded"} - the members out has. */
static void put_briefd(struct sbuf *b, const char *id, const cJSON *out)
{
    static const char *const keys[] = {"route", "latency_ms", "cost_usd", "cached", "cached_from",
                                       NULL};
    static const char *const result_keys[] = {"model", "refined", "degraded", NULL};
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(out, "result");
    sbuf_adds(b, ",\"briefd\":{\"job_id\":");
    jsonx_write_string(b, id);
    for (size_t i = 0; keys[i]; i++)
        jsonx_write_member(b, keys[i], cJSON_GetObjectItemCaseSensitive(out, keys[i]));
    for (size_t i = 0; res && result_keys[i]; i++)
        jsonx_write_member(b, result_keys[i],
                           cJSON_GetObjectItemCaseSensitive(res, result_keys[i]));
    sbuf_addc(b, '}');
}

/* {"id":"chatcmpl-<id>","object":...,"created":...,"model":alias,"system_fingerprint":"briefd"
 * - the object left open. */
static void put_base(struct sbuf *b, const char *id, long created, const char *alias,
                     const char *object)
{
    char cid[80];
    snprintf(cid, sizeof(cid), "chatcmpl-%.60s", id);
    sbuf_adds(b, "{\"id\":");
    jsonx_write_string(b, cid);
    sbuf_adds(b, ",\"object\":");
    jsonx_write_string(b, object);
    sbuf_adds(b, ",\"created\":");
    jsonx_write_number(b, (double)created);
    sbuf_adds(b, ",\"model\":");
    jsonx_write_string(b, alias);
    sbuf_adds(b, ",\"system_fingerprint\":\"briefd\"");
}

static const char *brief_of(const cJSON *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(out, "result"), "brief");
    return cJSON_IsString(v) ? v->valuestring : "";
}

char *facade_completion(const char *id, const cJSON *out, const char *alias)
{
    struct sbuf b = {0};
    put_base(&b, id, (long)time(NULL), alias, "chat.completion");
    sbuf_adds(&b, ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
    jsonx_write_string(&b, brief_of(out));
    sbuf_adds(&b, ",\"refusal\":null},\"logprobs\":null,\"finish_reason\":\"stop\"}]");
    put_usage(&b, out);
    put_briefd(&b, id, out);
    sbuf_addc(&b, '}');
    return sbuf_take(&b);
}

/* One chunk as a "data: {...}\n\n" event: choices[0] has the delta (its members' JSON text,
 * without braces) and finish_reason (NULL: null); out, when set, adds the "briefd" object. */
static void put_chunk(struct sbuf *b, const char *id, long created, const char *alias,
                      const char *delta, const char *text, size_t len, const char *finish,
                      const cJSON *out)
{
    sbuf_adds(b, "data: ");
    put_base(b, id, created, alias, "chat.completion.chunk");
    sbuf_adds(b, ",\"choices\":[{\"index\":0,\"delta\":{");
    sbuf_adds(b, delta);
    if (text) {
        char *piece = strndup(text, len);
        if (!piece)
            b->oom = 1;
        jsonx_write_string(b, piece ? piece : "");
        free(piece);
    }
    sbuf_adds(b, "},\"logprobs\":null,\"finish_reason\":");
    if (finish)
        jsonx_write_string(b, finish);
    else
        sbuf_adds(b, "null");
    sbuf_adds(b, "}]");
    if (out)
        put_briefd(b, id, out);
    sbuf_adds(b, "}\n\n");
}

char *facade_chunk_role(const char *id, long created, const char *alias)
{
    struct sbuf b = {0};
    put_chunk(&b, id, created, alias, "\"role\":\"assistant\",\"content\":\"\"", NULL, 0, NULL,
              NULL);
    return sbuf_take(&b);
}

char *facade_chunk_text(const char *id, long created, const char *alias, const char *text,
                        size_t len)
{
    struct sbuf b = {0};
    put_chunk(&b, id, created, alias, "\"content\":", text, len, NULL, NULL);
    return sbuf_take(&b);
}

char *facade_chunk_end(const char *id, const cJSON *out, long created, const char *alias,
                       int include_usage)
{
    struct sbuf b = {0};
    put_chunk(&b, id, created, alias, "", NULL, 0, "stop", out);
    if (include_usage) {
        sbuf_adds(&b, "data: ");
        put_base(&b, id, created, alias, "chat.completion.chunk");
        sbuf_adds(&b, ",\"choices\":[]");
        put_usage(&b, out);
        put_briefd(&b, id, out); /* on the last chunk too */
        sbuf_adds(&b, "}\n\n");
    }
    sbuf_adds(&b, "data: [DONE]\n\n");
    return sbuf_take(&b);
}

char *facade_chunk_error(const char *type, const char *code, const char *message)
{
    struct sbuf b = {0};
    sbuf_adds(&b, "data: {\"error\":{\"message\":");
    jsonx_write_string(&b, message);
    sbuf_adds(&b, ",\"type\":");
    jsonx_write_string(&b, type);
    sbuf_adds(&b, ",\"param\":null,\"code\":");
    jsonx_write_string(&b, code);
    sbuf_adds(&b, "}}\n\n");
    return sbuf_take(&b);
}
