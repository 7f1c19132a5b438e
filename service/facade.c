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

/* --- responses --- */

static double usage_sum(const cJSON *job, const char *kind)
{
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(job, "usage"), *stage;
    double sum = 0;
    cJSON_ArrayForEach(stage, u) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(stage, kind);
        if (cJSON_IsNumber(v))
            sum += v->valuedouble;
    }
    return sum;
}

static cJSON *usage_obj(const cJSON *job)
{
    cJSON *u = cJSON_CreateObject();
    double p = usage_sum(job, "prompt_tokens"), c = usage_sum(job, "completion_tokens");
    cJSON_AddNumberToObject(u, "prompt_tokens", p);
    cJSON_AddNumberToObject(u, "completion_tokens", c);
    cJSON_AddNumberToObject(u, "total_tokens", p + c);
    return u;
}

static cJSON *briefd_obj(const cJSON *job)
{
    static const char *const keys[] = {"route", "latency_ms", "cost_usd", "cached", "cached_from",
                                       NULL};
    cJSON *b = cJSON_CreateObject();
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(job, "id");
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(job, "result");
    cJSON_AddStringToObject(b, "job_id", cJSON_IsString(id) ? id->valuestring : "");
    for (size_t i = 0; keys[i]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(job, keys[i]);
        if (v)
            cJSON_AddItemToObject(b, keys[i], cJSON_Duplicate(v, 1));
    }
    if (res) {
        cJSON_AddItemToObject(b, "model",
                              cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(res, "model"), 1));
        cJSON_AddItemToObject(b, "refined", cJSON_Duplicate(
                                                cJSON_GetObjectItemCaseSensitive(res, "refined"), 1));
        cJSON_AddItemToObject(b, "degraded", cJSON_Duplicate(
                                                 cJSON_GetObjectItemCaseSensitive(res, "degraded"), 1));
    }
    return b;
}

static const char *job_str(const cJSON *job, const char *a, const char *b)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(job, a);
    if (b)
        v = cJSON_GetObjectItemCaseSensitive(v, b);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static cJSON *base_of(const char *job_id, long created, const char *alias, const char *object)
{
    cJSON *o = cJSON_CreateObject();
    char id[64];
    snprintf(id, sizeof(id), "chatcmpl-%s", job_id);
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "object", object);
    cJSON_AddNumberToObject(o, "created", (double)created);
    cJSON_AddStringToObject(o, "model", alias);
    cJSON_AddStringToObject(o, "system_fingerprint", "briefd");
    return o;
}

static cJSON *base(const cJSON *job, const char *alias, const char *object)
{
    return base_of(job_str(job, "id", NULL), (long)time(NULL), alias, object);
}

cJSON *facade_completion(const cJSON *job, const char *alias)
{
    cJSON *o = base(job, alias, "chat.completion");
    cJSON *choices = cJSON_AddArrayToObject(o, "choices");
    cJSON *ch = cJSON_CreateObject(), *msg;
    cJSON_AddNumberToObject(ch, "index", 0);
    msg = cJSON_AddObjectToObject(ch, "message");
    cJSON_AddStringToObject(msg, "role", "assistant");
    cJSON_AddStringToObject(msg, "content", job_str(job, "result", "brief"));
    cJSON_AddNullToObject(msg, "refusal");
    cJSON_AddNullToObject(ch, "logprobs");
    cJSON_AddStringToObject(ch, "finish_reason", "stop");
    cJSON_AddItemToArray(choices, ch);
    cJSON_AddItemToObject(o, "usage", usage_obj(job));
    cJSON_AddItemToObject(o, "briefd", briefd_obj(job));
    return o;
}

/* o as one "data: {...}\n\n" event appended to b (o is freed). */
static void event(struct sbuf *b, cJSON *o)
{
    char *s = o ? jsonx_print(o) : NULL;
    cJSON_Delete(o);
    if (!s) {
        b->oom = 1;
        return;
    }
    sbuf_add(b, "data: ", 6);
    sbuf_add(b, s, strlen(s));
    sbuf_add(b, "\n\n", 2);
    free(s);
}

/* A chunk whose choices[0] has delta (owned; NULL: {}) and finish_reason (NULL: null). */
static cJSON *chunk_of(const char *id, long created, const char *alias, cJSON *delta,
                       const char *finish)
{
    cJSON *o = base_of(id, created, alias, "chat.completion.chunk");
    cJSON *choices = cJSON_AddArrayToObject(o, "choices");
    cJSON *ch = cJSON_CreateObject();
    cJSON_AddNumberToObject(ch, "index", 0);
    cJSON_AddItemToObject(ch, "delta", delta ? delta : cJSON_CreateObject());
    cJSON_AddNullToObject(ch, "logprobs");
    if (finish)
        cJSON_AddStringToObject(ch, "finish_reason", finish);
    else
        cJSON_AddNullToObject(ch, "finish_reason");
    cJSON_AddItemToArray(choices, ch);
    return o;
}

char *facade_chunk_role(const char *id, long created, const char *alias)
{
    struct sbuf b = {0};
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "role", "assistant");
    cJSON_AddStringToObject(d, "content", "");
    event(&b, chunk_of(id, created, alias, d, NULL));
    return sbuf_take(&b);
}

char *facade_chunk_text(const char *id, long created, const char *alias, const char *text,
                        size_t len)
{
    struct sbuf b = {0};
    char *piece = strndup(text, len);
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "content", piece ? piece : "");
    free(piece);
    event(&b, chunk_of(id, created, alias, d, NULL));
    return sbuf_take(&b);
}

char *facade_chunk_end(const cJSON *job, long created, const char *alias, int include_usage)
{
    struct sbuf b = {0};
    const char *id = job_str(job, "id", NULL);
    cJSON *last = chunk_of(id, created, alias, NULL, "stop");
    cJSON_AddItemToObject(last, "briefd", briefd_obj(job));
    event(&b, last);
    if (include_usage) {
        cJSON *u = base_of(id, created, alias, "chat.completion.chunk");
        cJSON_AddArrayToObject(u, "choices");
        cJSON_AddItemToObject(u, "usage", usage_obj(job));
        cJSON_AddItemToObject(u, "briefd", briefd_obj(job)); /* on the last chunk too */
        event(&b, u);
    }
    sbuf_add(&b, "data: [DONE]\n\n", 14);
    return sbuf_take(&b);
}

char *facade_chunk_error(const char *type, const char *code, const char *message)
{
    struct sbuf b = {0};
    cJSON *o = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(e, "message", message);
    cJSON_AddStringToObject(e, "type", type);
    cJSON_AddNullToObject(e, "param");
    cJSON_AddStringToObject(e, "code", code);
    event(&b, o);
    return sbuf_take(&b);
}

char *facade_stream(const cJSON *job, const char *alias, int include_usage)
{
    struct sbuf b = {0};
    const char *id = job_str(job, "id", NULL), *brief = job_str(job, "result", "brief");
    long created = (long)time(NULL);
    size_t n = strlen(brief), i = 0;
    char *part = facade_chunk_role(id, created, alias);
    sbuf_adds(&b, part ? part : "");
    free(part);
    while (i < n) { /* a few words per chunk, split on spaces */
        size_t j = i, words = 0;
        while (j < n && words < 4) {
            if (brief[j] == ' ')
                words++;
            j++;
        }
        part = facade_chunk_text(id, created, alias, brief + i, j - i);
        sbuf_adds(&b, part ? part : "");
        free(part);
        i = j;
    }
    part = facade_chunk_end(job, created, alias, include_usage);
    sbuf_adds(&b, part ? part : "");
    free(part);
    return sbuf_take(&b);
}
