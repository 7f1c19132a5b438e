/* judge.c - the judge's request body and the tolerant reader of its rubric answer. */
#include "judge.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "job.h"
#include "jsonx.h"
#include "oai.h"

static const char *const score_names[3] = {"coherence", "faithfulness", "brevity"};

/* ---- the request ---- */

static cJSON *score_schema(const char *what)
{
    cJSON *s = cJSON_CreateObject();
    cJSON *e = cJSON_AddArrayToObject(s, "enum");

    cJSON_AddStringToObject(s, "type", "integer");
    for (int v = JUDGE_MIN_SCORE; e && v <= JUDGE_MAX_SCORE; v++)
        cJSON_AddItemToArray(e, cJSON_CreateNumber(v));
    cJSON_AddStringToObject(s, "description", what);
    return s;
}

static cJSON *rubric_schema(void)
{
    static const char *const what[3] = {
        "1-5: reads clearly, well organised",
        "1-5: every fact, name, number and date is in the document; nothing invented",
        "1-5: within the word limit, no filler"};
    cJSON *schema = cJSON_CreateObject();
    cJSON *props = cJSON_AddObjectToObject(schema, "properties");
    cJSON *req = cJSON_CreateArray();
    cJSON *rat = cJSON_CreateObject();

    cJSON_AddStringToObject(schema, "type", "object");
    for (int i = 0; i < 3; i++) {
        cJSON_AddItemToObject(props, score_names[i], score_schema(what[i]));
        cJSON_AddItemToArray(req, cJSON_CreateString(score_names[i]));
    }
    cJSON_AddStringToObject(rat, "type", "string");
    cJSON_AddStringToObject(rat, "description", "one or two sentences on the scores");
    cJSON_AddItemToObject(props, "rationale", rat);
    cJSON_AddItemToArray(req, cJSON_CreateString("rationale"));
    cJSON_AddItemToObject(schema, "required", req);
    cJSON_AddBoolToObject(schema, "additionalProperties", 0);
    return schema;
}

cJSON *judge_response_format(void)
{
    cJSON *rf = cJSON_CreateObject();
    cJSON *js = cJSON_CreateObject();
    char *text;

    cJSON_AddStringToObject(rf, "type", "json_schema");
    cJSON_AddItemToObject(rf, "json_schema", js);
    cJSON_AddStringToObject(js, "name", JUDGE_SCHEMA_NAME);
    cJSON_AddBoolToObject(js, "strict", 1);
    cJSON_AddItemToObject(js, "schema", rubric_schema());
    /* cJSON's adders fail silently on OOM: the tree is complete only if it prints whole */
    text = cJSON_PrintUnformatted(rf);
    if (!text || !strstr(text, "\"additionalProperties\":false")) {
        cJSON_Delete(rf);
        rf = NULL;
    }
    free(text);
    return rf;
}

char *judge_build_request(const struct model_cfg *m, const char *doc, size_t doc_len,
                          int max_words, const char *brief, size_t *prompt_chars)
{
    struct job_req r;
    char *user, *base, *out = NULL;
    cJSON *root = NULL, *rf = NULL;

    memset(&r, 0, sizeof(r));
    r.text = (char *)doc; /* only read by the renderer */
    r.text_len = doc_len;
    r.max_words = max_words;
    user = job_render_prompt(m->prompt_user, &r, brief ? brief : "");
    if (!user)
        return NULL;
    *prompt_chars = strlen(user) + (m->prompt_system ? strlen(m->prompt_system) : 0);
    base = oai_build_request(m->name, m->prompt_system, user, m->max_tokens, m->temperature,
                             m->stream, m->logprobs);
    free(user);
    root = base ? cJSON_Parse(base) : NULL;
    free(base);
    rf = root ? judge_response_format() : NULL;
    if (!rf || !cJSON_AddItemToObject(root, "response_format", rf)) {
        cJSON_Delete(rf);
        goto out;
    }
    out = jsonx_print(root);
out:
    cJSON_Delete(root);
    return out;
}

/* ---- reading the answer ---- */

/* From s[a] == '{': the end (exclusive) of its brace-balanced span, strings and their
 * escapes respected; 0 when it does not close. */
static size_t balanced_end(const char *s, size_t len, size_t a)
{
    int depth = 0, in_str = 0, esc = 0;

    for (size_t i = a; i < len; i++) {
        char c = s[i];
        if (in_str) {
            if (esc)
                esc = 0;
            else if (c == '\\')
                esc = 1;
            else if (c == '"')
                in_str = 0;
            continue;
        }
        if (c == '"')
            in_str = 1;
        else if (c == '{')
            depth++;
        else if (c == '}')
            depth--;
        if (c == '}' && depth == 0)
            return i + 1;
    }
    return 0;
}

static cJSON *parse_object(const char *s, size_t a, size_t e)
{
    cJSON *o = cJSON_ParseWithLength(s + a, e - a);

    if (o && !cJSON_IsObject(o)) {
        cJSON_Delete(o);
        o = NULL;
    }
    return o;
}

int judge_find_object(const char *s, size_t len, size_t *start, size_t *end)
{
    size_t a = 0;

    for (int tries = 0; tries < JUDGE_MAX_CANDIDATES; tries++) {
        const char *open = a < len ? memchr(s + a, '{', len - a) : NULL;
        size_t e;
        cJSON *o;
        if (!open)
            return -1;
        a = (size_t)(open - s);
        e = balanced_end(s, len, a);
        o = e ? parse_object(s, a, e) : NULL;
        if (o) {
            cJSON_Delete(o);
            *start = a;
            *end = e;
            return 0;
        }
        a++;
    }
    return -1;
}

static void copy_utf8(char *dst, size_t cap, const char *s)
{
    size_t n = strlen(s);

    if (n >= cap) {
        n = cap - 1;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    memcpy(dst, s, n);
    dst[n] = '\0';
}

/* One score of o into *v; 0, or -1 with why set. */
static int read_score(const cJSON *o, const char *name, int *v, char *why, size_t whylen)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, name);
    double d;

    if (!it) {
        snprintf(why, whylen, "%s: missing", name);
        return -1;
    }
    if (!cJSON_IsNumber(it)) {
        snprintf(why, whylen, "%s: not a number", name);
        return -1;
    }
    d = it->valuedouble;
    if (!isfinite(d) || floor(d) != d) {
        snprintf(why, whylen, "%s: not an integer (%g)", name, d);
        return -1;
    }
    if (d < JUDGE_MIN_SCORE || d > JUDGE_MAX_SCORE) {
        snprintf(why, whylen, "%s: out of range (%g; expected %d to %d)", name, d,
                 JUDGE_MIN_SCORE, JUDGE_MAX_SCORE);
        return -1;
    }
    *v = (int)d;
    return 0;
}

static void read_rubric(const cJSON *o, struct judgement *out)
{
    int v[3];
    const cJSON *r;

    for (int i = 0; i < 3; i++)
        if (read_score(o, score_names[i], &v[i], out->why, sizeof(out->why)) != 0)
            return;
    out->coherence = v[0];
    out->faithfulness = v[1];
    out->brevity = v[2];
    out->overall = (double)(v[0] + v[1] + v[2]) / 3.0;
    r = cJSON_GetObjectItemCaseSensitive(o, "rationale");
    if (cJSON_IsString(r))
        copy_utf8(out->rationale, sizeof(out->rationale), r->valuestring);
    out->valid = 1;
}

void judge_parse(const char *content, size_t len, struct judgement *out)
{
    char *final = NULL;
    size_t a, e;
    cJSON *o;

    memset(out, 0, sizeof(*out));
    if (content && len && memmem(content, len, "<|channel|>", 11)) {
        int found = 0;
        final = oai_harmony_final(content, len, &len, &found);
        content = final;
        if (final && !found)
            len = 0;
    }
    if (!content || len == 0) {
        snprintf(out->why, sizeof(out->why), "empty answer");
    } else if (judge_find_object(content, len, &a, &e) != 0) {
        snprintf(out->why, sizeof(out->why), "no JSON object in the answer");
    } else {
        o = parse_object(content, a, e);
        if (o)
            read_rubric(o, out);
        else
            snprintf(out->why, sizeof(out->why), "out of memory");
        cJSON_Delete(o);
    }
    free(final);
}
