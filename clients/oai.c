/* oai.c - OpenAI-compatible Chat Completions: request builder, response and SSE parsers. */
#include "oai.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jscan.h"
#include "jsonv.h"
#include "jsonx.h"

#define HARMONY_CHANNEL "<|channel|>"
#define HARMONY_FINAL "<|channel|>final<|message|>"
#define HARMONY_ANALYSIS "<|channel|>analysis"
#define STRIPPED_START "analysis"          /* harmony with its special tokens stripped */
#define STRIPPED_FINAL "assistantfinal"
#define MAX_COUNT 1e12                     /* larger token counts are garbage */
#define MAX_SHORT_STRING 255               /* model names, finish reasons */
#define PREVIEW_BYTES 64                   /* body bytes quoted in a parse error */

/* ---------- messages ---------- */

__attribute__((format(printf, 3, 4)))
static void set_msg(char *msg, size_t msglen, const char *fmt, ...)
{
    va_list ap;

    if (msg == NULL || msglen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, msglen, fmt, ap);
    va_end(ap);
}

static void clear_msg(char *msg, size_t msglen)
{
    if (msg != NULL && msglen > 0)
        msg[0] = '\0';
}

/* Largest length <= n that does not cut s (of length > n) inside a UTF-8 sequence. */
static size_t utf8_cut(const char *s, size_t n)
{
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    return n;
}

/* Copy a string of n bytes into msg, truncated at a UTF-8 boundary. */
static void copy_msg(char *msg, size_t msglen, const char *s, size_t n)
{
    if (msg == NULL || msglen == 0)
        return;
    if (n >= msglen)
        n = utf8_cut(s, msglen - 1);
    memcpy(msg, s, n);
    msg[n] = '\0';
}

static int is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Printable ASCII rendering of s: whitespace runs become one space, other bytes '?'. */
static void printable(char *dst, size_t cap, const char *s, size_t n)
{
    size_t o = 0, i;
    int in_space = 1;

    if (dst == NULL || cap == 0)
        return;
    for (i = 0; i < n && o + 1 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (is_space(c)) {
            if (!in_space)
                dst[o++] = ' ';
            in_space = 1;
            continue;
        }
        dst[o++] = (c > 0x20 && c < 0x7f) ? (char)c : '?';
        in_space = 0;
    }
    while (o > 0 && dst[o - 1] == ' ')
        o--;
    dst[o] = '\0';
}

/* ---------- small helpers ---------- */

static const cJSON *get(const cJSON *o, const char *key)
{
    return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
}

static const char *get_str(const cJSON *o, const char *key)
{
    const cJSON *it = get(o, key);

    return cJSON_IsString(it) ? it->valuestring : NULL;
}

static char *dup_bytes(const char *s, size_t n)
{
    char *p = malloc(n + 1);

    if (p == NULL)
        return NULL;
    if (n > 0)
        memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static char *dup_short(const char *s)
{
    size_t n = strnlen(s, MAX_SHORT_STRING + 1);

    if (n > MAX_SHORT_STRING)
        n = utf8_cut(s, MAX_SHORT_STRING);
    return dup_bytes(s, n);
}

static const char *last_memmem(const char *s, size_t n, const char *needle)
{
    size_t nl = strlen(needle);
    const char *hit = NULL, *p = s;

    for (;;) {
        const char *q = memmem(p, n - (size_t)(p - s), needle, nl);
        if (q == NULL)
            return hit;
        hit = q;
        p = q + 1;
    }
}

static int contains(const char *s, size_t n, const char *needle)
{
    return s != NULL && memmem(s, n, needle, strlen(needle)) != NULL;
}

static char *dup_trimmed(const char *b, const char *e, size_t *out_len)
{
    while (b < e && is_space((unsigned char)*b))
        b++;
    while (e > b && is_space((unsigned char)e[-1]))
        e--;
    *out_len = (size_t)(e - b);
    return dup_bytes(b, (size_t)(e - b));
}

/* ---------- public small functions ---------- */

void oai_result_free(struct oai_result *r)
{
    if (r == NULL)
        return;
    free(r->content);
    free(r->finish_reason);
    free(r->model);
    free(r->logprobs);
    memset(r, 0, sizeof *r);
}

long oai_estimate_tokens(size_t bytes)
{
    size_t t = bytes / 4 + (bytes % 4 != 0);

    return t > (size_t)LONG_MAX ? LONG_MAX : (long)t;
}

/* Where a harmony message starting at b ends: its first end-of-message token, or e. */
static const char *harmony_end(const char *b, const char *e)
{
    static const char *const stops[] = {"<|end|>", "<|return|>", "<|start|>", "<|call|>"};
    size_t i;

    for (i = 0; i < sizeof stops / sizeof stops[0]; i++) {
        const char *q = memmem(b, (size_t)(e - b), stops[i], strlen(stops[i]));
        if (q != NULL)
            e = q;
    }
    return e;
}

char *oai_harmony_final(const char *s, size_t len, size_t *out_len, int *found)
{
    const char *b;
    size_t n = len;
    char *p;

    if (s == NULL || len == 0) {
        s = "";
        n = len = 0;
    }
    b = len ? last_memmem(s, len, HARMONY_FINAL) : NULL;
    if (found != NULL)
        *found = b != NULL;
    if (b == NULL) {
        p = dup_bytes(s, len);
    } else {
        b += strlen(HARMONY_FINAL);
        p = dup_trimmed(b, harmony_end(b, s + len), &n);
    }
    if (out_len != NULL)
        *out_len = p ? n : 0;
    return p;
}

/* ---------- request ---------- */

static int add_message(cJSON *arr, const char *role, const char *text)
{
    cJSON *m = cJSON_CreateObject();

    if (m == NULL)
        return -1;
    if (!cJSON_AddItemToArray(arr, m)) {
        cJSON_Delete(m);
        return -1;
    }
    if (cJSON_AddStringToObject(m, "role", role) == NULL)
        return -1;
    if (cJSON_AddStringToObject(m, "content", text ? text : "") == NULL)
        return -1;
    return 0;
}

static int add_messages(cJSON *root, const char *system, const char *user)
{
    cJSON *arr = cJSON_AddArrayToObject(root, "messages");

    if (arr == NULL)
        return -1;
    if (system != NULL && system[0] != '\0' && add_message(arr, "system", system) < 0)
        return -1;
    return add_message(arr, "user", user);
}

static int add_options(cJSON *root, int max_tokens, double temperature, int stream,
                       int logprobs)
{
    cJSON *so;

    if (max_tokens > 0 && cJSON_AddNumberToObject(root, "max_tokens", max_tokens) == NULL)
        return -1;
    if (isfinite(temperature) &&
        cJSON_AddNumberToObject(root, "temperature", temperature) == NULL)
        return -1;
    if (cJSON_AddBoolToObject(root, "stream", stream != 0) == NULL)
        return -1;
    if (logprobs && (cJSON_AddTrueToObject(root, "logprobs") == NULL ||
                     cJSON_AddNumberToObject(root, "top_logprobs", 0) == NULL))
        return -1;
    if (!stream)
        return 0;
    so = cJSON_AddObjectToObject(root, "stream_options");
    if (so == NULL || cJSON_AddTrueToObject(so, "include_usage") == NULL)
        return -1;
    return 0;
}

char *oai_build_request(const char *model, const char *system, const char *user,
                        int max_tokens, double temperature, int stream, int logprobs)
{
    cJSON *root = cJSON_CreateObject();
    char *out = NULL;

    if (root == NULL)
        return NULL;
    if (cJSON_AddStringToObject(root, "model", model ? model : "") == NULL)
        goto fail;
    if (add_messages(root, system, user) < 0)
        goto fail;
    if (add_options(root, max_tokens, temperature, stream, logprobs) < 0)
        goto fail;
    out = jsonx_print(root);
    if (out) { /* held for the whole call and its retries: without the printer's slack */
        char *fit = realloc(out, strlen(out) + 1);
        if (fit)
            out = fit;
    }
fail:
    cJSON_Delete(root);
    return out;
}

/* ---------- JSON and error bodies ---------- */

/* One JSON value filling buf[0..len) (NUL-terminated at len), trailing whitespace allowed. */
static cJSON *parse_whole(const char *buf, size_t len)
{
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(buf, len, &end, 0);

    while (root != NULL && end < buf + len && (is_space((unsigned char)*end) || *end == 0))
        end++;
    if (root != NULL && end < buf + len) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

/* Parse len bytes as one JSON value into *root. what names the input in msg. */
/* ---------- logprobs without a tree ----------
 * A completion with logprobs is mostly its choices[0].logprobs.content array: an object per
 * token ({"token", "logprob", "bytes": [...], "top_logprobs": [...]}), several times the
 * size of the text. Building a cJSON tree of it dominated the cost of a draft. So before
 * cJSON sees the body, the array is found by a small scanner (base/jscan.h), checked strictly
 * in the same pass that takes its "logprob" numbers - elements in the shape servers write
 * by a matcher of that shape, any other by jsonv (what they accept, cJSON reads the same) -
 * and blanked to "[]" in the private copy cJSON parses. Anything unexpected - a
 * key written with escapes, a region jsonv refuses - leaves the body as it is, for the tree
 * to handle as before. */

struct lifted {
    int found;
    int odd;            /* the tree must read it (a name with escapes, out of memory) */
    int elem_taken;     /* the element being read had its logprob taken */
    double *v;
    size_t n, cap;
};

static int lp_push(struct lifted *l, double v)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        double *nv = realloc(l->v, cap * sizeof *nv);
        if (nv == NULL)
            return -1;
        l->v = nv;
        l->cap = cap;
    }
    l->v[l->n++] = v;
    return 0;
}

/* The logprob whose value starts at v, when it is a number; out of memory sets l->odd
 * (the tree reads the body, and fails the same way). */
static void lp_take(struct lifted *l, const char *v)
{
    double d;

    if (*v != '-' && (*v < '0' || *v > '9'))
        return; /* not a number: no logprob, as for the tree */
    d = jsonx_read_number(v, NULL);
    if (isfinite(d) && l->n < OAI_MAX_LOGPROBS && lp_push(l, d) < 0)
        l->odd = 1;
}

/* jsonv_value's member hook over one element of the array: its first "logprob" member
 * (depth 1: the element's own members), when its value is a number - what take_logprobs
 * would take. A member name written with escapes there may decode to "logprob": the tree
 * must decide. */
static void lp_member(void *ctx, const struct jsonv_member *m)
{
    struct lifted *l = ctx;

    if (m->depth != 1 || l->odd)
        return;
    if (m->escaped) {
        l->odd = 1;
        return;
    }
    if (m->name_len != 7 || memcmp(m->name, "logprob", 7) != 0 || l->elem_taken)
        return;
    l->elem_taken = 1;
    lp_take(l, m->value);
}

#define LIT(p, e, lit) ((size_t)((e) - (p)) >= sizeof(lit) - 1 && memcmp(p, lit, sizeof(lit) - 1) == 0)

/* The element at p in the shape servers write, members in this order and no whitespace:
 * {"token":S,"logprob":N,"bytes":null|[N,...],"top_logprobs":V} - every token held to
 * jsonv's rules (V, usually [], by jsonv_value). Returns past it with its logprob taken,
 * or NULL for any other shape (nothing taken: jsonv_value reads it). */
static const char *lp_fast_element(const char *p, const char *e, struct lifted *l)
{
    struct jsonv_result vr;
    const char *num;
    size_t n;

    if (!LIT(p, e, "{\"token\":"))
        return NULL;
    p += 9;
    if ((n = jsonv_string(p, (size_t)(e - p))) == 0)
        return NULL;
    p += n;
    if (!LIT(p, e, ",\"logprob\":"))
        return NULL;
    num = p += 11;
    if ((n = jsonv_number(p, (size_t)(e - p))) == 0)
        return NULL;
    p += n;
    if (!LIT(p, e, ",\"bytes\":"))
        return NULL;
    p += 9;
    if (LIT(p, e, "null")) {
        p += 4;
    } else if (p < e && *p == '[') {
        p++;
        while (p < e && *p != ']') {
            if ((n = jsonv_number(p, (size_t)(e - p))) == 0)
                return NULL;
            p += n;
            if (p < e && *p == ',' && p + 1 < e && p[1] != ']')
                p++;
            else if (p >= e || *p != ']')
                return NULL;
        }
        if (p >= e)
            return NULL;
        p++;
    } else {
        return NULL;
    }
    if (!LIT(p, e, ",\"top_logprobs\":"))
        return NULL;
    p += 16;
    if (LIT(p, e, "[]")) {
        p += 2;
    } else {
        if (jsonv_value(p, (size_t)(e - p), &n, &vr, NULL, NULL) != 0)
            return NULL;
        p += n;
    }
    if (p >= e || *p != '}')
        return NULL;
    lp_take(l, num);
    return p + 1;
}

/* The array at a ('['): each element's logprob taken, the array checked strictly - the
 * usual shape by lp_fast_element, anything else by jsonv_value. Returns past the array, or
 * NULL when it is not valid or the tree must read it. */
static const char *lp_array(const char *a, const char *e, struct lifted *l)
{
    const char *p = jscan_ws(a + 1, e);
    struct jsonv_result vr;

    if (p < e && *p == ']')
        return p + 1;
    while (p < e) {
        const char *q = lp_fast_element(p, e, l);
        if (q == NULL && !l->odd) {
            size_t used;
            l->elem_taken = 0;
            if (jsonv_value(p, (size_t)(e - p), &used, &vr, lp_member, l) != 0)
                return NULL;
            q = p + used;
        }
        if (l->odd)
            return NULL;
        p = jscan_ws(q, e);
        if (p < e && *p == ']')
            return p + 1;
        if (p >= e || *p != ',')
            return NULL;
        p = jscan_ws(p + 1, e);
    }
    return NULL;
}

/* Find, take and empty choices[0].logprobs.content in buf (NUL-terminated, len bytes):
 * the array becomes "[]" (what follows moves up). Returns buf's new length. */
static size_t lift_logprobs(char *buf, size_t len, struct lifted *l)
{
    const char *e = buf + len, *c, *a, *z;
    int odd = 0;
    c = jscan_member(buf, e, "choices", &odd);
    if (c == NULL || *c != '[')
        return len;
    c = jscan_ws(c + 1, e);
    if (c >= e || *c != '{' || (c = jscan_member(c, e, "logprobs", &odd)) == NULL || *c != '{' ||
        (a = jscan_member(c, e, "content", &odd)) == NULL || *a != '[')
        return len; /* (a name with escapes on the way: not found, the tree reads it all) */
    z = lp_array(a, e, l);
    if (z == NULL || z - a < 64) {
        free(l->v); /* not strictly valid, a shape for the tree, or small: the tree reads it */
        memset(l, 0, sizeof *l);
        return len;
    }
    l->found = 1;
    memmove((char *)a + 1, z - 1, (size_t)(e - (z - 1)) + 1); /* "]" onwards, and the NUL */
    return len - (size_t)(z - a - 2);
}

static int parse_json_lifting(const char *body, size_t len, cJSON **root, struct lifted *l,
                              const char *what, char *msg, size_t msglen);

static int parse_json(const char *body, size_t len, cJSON **root, const char *what,
                      char *msg, size_t msglen)
{
    return parse_json_lifting(body, len, root, NULL, what, msg, msglen);
}

static int parse_json_lifting(const char *body, size_t len, cJSON **root, struct lifted *l,
                              const char *what, char *msg, size_t msglen)
{
    char preview[PREVIEW_BYTES + 1];
    char *copy;

    *root = NULL;
    if (body == NULL || len == 0) {
        set_msg(msg, msglen, "%s is empty", what);
        return OAI_EPARSE;
    }
    if (len > OAI_MAX_BODY_BYTES) {
        set_msg(msg, msglen, "%s exceeds %u bytes", what, OAI_MAX_BODY_BYTES);
        return OAI_ETOOBIG;
    }
    copy = malloc(len + 1);  /* NUL-terminated: cJSON never reads past our buffer */
    if (copy == NULL) {
        set_msg(msg, msglen, "out of memory");
        return OAI_ENOMEM;
    }
    memcpy(copy, body, len);
    copy[len] = '\0';
    if (l != NULL)
        len = lift_logprobs(copy, len, l);
    *root = parse_whole(copy, len);
    free(copy);
    if (*root != NULL)
        return 0;
    printable(preview, sizeof preview, body, len);
    set_msg(msg, msglen, "%s is not valid JSON: %s", what, preview);
    return OAI_EPARSE;
}

static int error_object_text(const cJSON *e, char *msg, size_t msglen)
{
    const cJSON *code = get(e, "code");
    const char *s = get_str(e, "message");

    if (s == NULL || s[0] == '\0')
        s = get_str(e, "type");
    if (s == NULL || s[0] == '\0')
        s = get_str(e, "code");
    if (s != NULL && s[0] != '\0') {
        copy_msg(msg, msglen, s, strlen(s));
        return 0;
    }
    if (cJSON_IsNumber(code) && fabs(code->valuedouble) < 1e9) {
        set_msg(msg, msglen, "error code %d", (int)code->valuedouble);
        return 0;
    }
    return -1;
}

/* The message of a parsed error body, or -1 when it holds none. */
static int json_error_text(const cJSON *root, char *msg, size_t msglen)
{
    static const char *const keys[] = {"message", "detail"};
    const cJSON *e = get(root, "error");
    size_t i;

    if (cJSON_IsString(root) && root->valuestring[0] != '\0') {
        copy_msg(msg, msglen, root->valuestring, strlen(root->valuestring));
        return 0;
    }
    if (cJSON_IsString(e) && e->valuestring[0] != '\0') {
        copy_msg(msg, msglen, e->valuestring, strlen(e->valuestring));
        return 0;
    }
    if (cJSON_IsObject(e) && error_object_text(e, msg, msglen) == 0)
        return 0;
    for (i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const char *s = get_str(root, keys[i]);
        if (s != NULL && s[0] != '\0') {
            copy_msg(msg, msglen, s, strlen(s));
            return 0;
        }
    }
    return -1;
}

/* {"error": <non-null>} or vLLM's {"object": "error", ...}. */
static int is_error_body(const cJSON *root)
{
    const cJSON *e = get(root, "error");
    const char *obj = get_str(root, "object");

    return (e != NULL && !cJSON_IsNull(e)) || (obj != NULL && strcmp(obj, "error") == 0);
}

static int upstream_error(const cJSON *root, char *msg, size_t msglen)
{
    if (json_error_text(root, msg, msglen) < 0)
        set_msg(msg, msglen, "upstream error without a message");
    return OAI_EUPSTREAM;
}

int oai_error_message(const char *body, size_t len, char *msg, size_t msglen)
{
    cJSON *root = NULL;
    int rc = -1;

    if (body == NULL)
        len = 0;
    if (len > 0 && parse_json(body, len, &root, "body", NULL, 0) == 0)
        rc = json_error_text(root, msg, msglen);
    cJSON_Delete(root);
    if (rc == 0)
        return 0;
    printable(msg, msglen, body, len);
    if (msg != NULL && msglen > 0 && msg[0] == '\0')
        copy_msg(msg, msglen, "(empty body)", strlen("(empty body)"));
    return -1;
}

/* ---------- accumulating a result ---------- */

static int append_content(struct oai_result *r, struct oai_accum *st, const char *s,
                          size_t n, char *msg, size_t msglen)
{
    size_t need, cap;
    char *p;

    if (n > OAI_MAX_CONTENT_BYTES - r->content_len) {
        set_msg(msg, msglen, "content exceeds %u bytes", OAI_MAX_CONTENT_BYTES);
        return OAI_ETOOBIG;
    }
    if (r->content == NULL)
        st->content_cap = 0;
    need = r->content_len + n + 1;
    if (need > st->content_cap) {
        cap = st->content_cap ? st->content_cap : 256;
        while (cap < need)
            cap *= 2;
        p = realloc(r->content, cap);
        if (p == NULL) {
            set_msg(msg, msglen, "out of memory");
            return OAI_ENOMEM;
        }
        r->content = p;
        st->content_cap = cap;
    }
    if (n > 0)
        memcpy(r->content + r->content_len, s, n);
    r->content_len += n;
    r->content[r->content_len] = '\0';
    return 0;
}

static int append_logprob(struct oai_result *r, struct oai_accum *st, double v)
{
    double *p;
    size_t cap;

    if (!isfinite(v) || r->n_logprobs >= OAI_MAX_LOGPROBS)
        return 0;  /* past the cap the first OAI_MAX_LOGPROBS are kept */
    if (r->logprobs == NULL)
        st->logprobs_cap = 0;
    if (r->n_logprobs == st->logprobs_cap) {
        cap = st->logprobs_cap ? st->logprobs_cap * 2 : 64;
        p = realloc(r->logprobs, cap * sizeof *p);
        if (p == NULL)
            return OAI_ENOMEM;
        r->logprobs = p;
        st->logprobs_cap = cap;
    }
    r->logprobs[r->n_logprobs++] = v;
    return 0;
}

static void note_reasoning(const cJSON *m, struct oai_result *r, struct oai_accum *st)
{
    static const char *const keys[] = {"reasoning_content", "reasoning"};
    static const int from[] = {OAI_REASONING_CONTENT, OAI_REASONING_FIELD};
    size_t i;

    for (i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const char *s = get_str(m, keys[i]);
        if (s != NULL && s[0] != '\0') {
            r->has_reasoning = 1;
            r->reasoning_from |= from[i];
            st->reasoning_bytes += strlen(s);
        }
    }
}

/* content as [{"type": "text", "text": ...}, ...]: text parts joined, reasoning parts noted. */
static int append_parts(const cJSON *arr, struct oai_result *r, struct oai_accum *st,
                        char *msg, size_t msglen)
{
    const cJSON *part;
    int rc = 0;

    cJSON_ArrayForEach(part, arr) {
        const char *type = get_str(part, "type");
        const char *text = cJSON_IsString(part) ? part->valuestring : get_str(part, "text");
        if (type != NULL && (strcmp(type, "thinking") == 0 || strcmp(type, "reasoning") == 0)) {
            r->has_reasoning = 1;
            r->reasoning_from |= OAI_REASONING_PARTS;
            continue;
        }
        if (text == NULL || (type != NULL && strcmp(type, "text") != 0 &&
                             strcmp(type, "output_text") != 0))
            continue;
        rc = append_content(r, st, text, strlen(text), msg, msglen);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* A message (complete body) or a delta (stream chunk). */
static int take_message(const cJSON *m, struct oai_result *r, struct oai_accum *st,
                        char *msg, size_t msglen)
{
    const cJSON *c = get(m, "content");

    note_reasoning(m, r, st);
    if (cJSON_IsString(c))
        return append_content(r, st, c->valuestring, strlen(c->valuestring), msg, msglen);
    if (cJSON_IsArray(c))
        return append_parts(c, r, st, msg, msglen);
    if (c == NULL || cJSON_IsNull(c))
        return 0;
    set_msg(msg, msglen, "content is neither a string, an array nor null");
    return OAI_EPARSE;
}

static int take_logprobs(const cJSON *choice, struct oai_result *r, struct oai_accum *st)
{
    const cJSON *lp = get(choice, "logprobs");
    const cJSON *arr = get(lp, "content"), *el;
    int by_token = 0;

    if (!cJSON_IsArray(arr)) {
        arr = get(lp, "token_logprobs");
        by_token = 1;
    }
    if (!cJSON_IsArray(arr))
        return 0;
    r->has_logprobs = 1;
    cJSON_ArrayForEach(el, arr) {
        const cJSON *v = by_token ? el : get(el, "logprob");
        if (cJSON_IsNumber(v) && append_logprob(r, st, v->valuedouble) < 0)
            return OAI_ENOMEM;
    }
    return 0;
}

static int take_finish(const cJSON *choice, struct oai_result *r)
{
    const char *fr = get_str(choice, "finish_reason");
    char *p;

    if (fr == NULL)
        return 0;
    p = dup_short(fr);
    if (p == NULL)
        return OAI_ENOMEM;
    free(r->finish_reason);
    r->finish_reason = p;
    r->truncated = strcmp(fr, "length") == 0;
    return 0;
}

static int take_model(const cJSON *root, struct oai_result *r)
{
    const char *m = get_str(root, "model");

    if (m == NULL || r->model != NULL)
        return 0;
    r->model = dup_short(m);
    return r->model ? 0 : OAI_ENOMEM;
}

static int take_count(const cJSON *o, const char *key, long *out)
{
    const cJSON *n = get(o, key);

    if (!cJSON_IsNumber(n) || !(n->valuedouble >= 0.0 && n->valuedouble <= MAX_COUNT))
        return 0;
    *out = (long)n->valuedouble;
    return 1;
}

static void take_usage(const cJSON *root, struct oai_result *r, struct oai_accum *st)
{
    const cJSON *u = get(root, "usage");

    if (take_count(u, "prompt_tokens", &r->prompt_tokens))
        st->usage_seen |= 1;
    if (take_count(u, "completion_tokens", &r->completion_tokens))
        st->usage_seen |= 2;
}

/* model, usage, and choices[0] (finish_reason, logprobs, and message or delta). */
static int take_body(const cJSON *root, const char *part, struct oai_result *r,
                     struct oai_accum *st, char *msg, size_t msglen)
{
    const cJSON *choices = get(root, "choices");
    const cJSON *choice = cJSON_IsArray(choices) ? cJSON_GetArrayItem(choices, 0) : NULL;
    const cJSON *m = get(choice, part);
    int rc;

    if (take_model(root, r) < 0)
        goto oom;
    take_usage(root, r, st);
    if (!cJSON_IsObject(choice))
        return OAI_ENOCHOICE;
    if (take_finish(choice, r) < 0 || take_logprobs(choice, r, st) < 0)
        goto oom;
    if (!cJSON_IsObject(m))
        return OAI_ENOCHOICE;
    rc = take_message(m, r, st, msg, msglen);
    if (rc == OAI_ENOMEM)
        goto oom;
    return rc;
oom:
    set_msg(msg, msglen, "out of memory");
    return OAI_ENOMEM;
}

/* Replace content by the harmony final channel, or by "" when only other channels came. */
static int apply_harmony(struct oai_result *r, struct oai_accum *st)
{
    const char *b, *s = r->content;
    size_t n = 0;
    int found = 0;
    char *p;

    if (contains(s, r->content_len, HARMONY_CHANNEL)) {
        p = oai_harmony_final(s, r->content_len, &n, &found);
        if (p != NULL && !found) {
            p[0] = '\0';
            n = 0;
        }
        r->has_reasoning |= !found || contains(s, r->content_len, HARMONY_ANALYSIS);
        r->reasoning_from |= OAI_REASONING_HARMONY;
    } else if (s != NULL && r->content_len > strlen(STRIPPED_START) &&
               strncmp(s, STRIPPED_START, strlen(STRIPPED_START)) == 0 &&
               contains(s, r->content_len, STRIPPED_FINAL)) {
        b = last_memmem(s, r->content_len, STRIPPED_FINAL) + strlen(STRIPPED_FINAL);
        p = dup_trimmed(b, s + r->content_len, &n);
        r->has_reasoning = 1;
        r->reasoning_from |= OAI_REASONING_HARMONY;
    } else {
        return 0;
    }
    if (p == NULL)
        return OAI_ENOMEM;
    free(r->content);
    r->content = p;
    r->content_len = n;
    st->content_cap = n + 1;
    return 0;
}

/* Harmony, content never NULL, usage estimated where missing. */
static int finalize(struct oai_result *r, struct oai_accum *st, size_t prompt_chars,
                    char *msg, size_t msglen)
{
    size_t generated = r->content_len + st->reasoning_bytes;

    if (apply_harmony(r, st) < 0)
        goto oom;
    if (r->content == NULL && append_content(r, st, "", 0, msg, msglen) < 0)
        goto oom;
    if (!(st->usage_seen & 1)) {
        r->prompt_tokens = oai_estimate_tokens(prompt_chars);
        r->usage_estimated = 1;
    }
    if (!(st->usage_seen & 2)) {
        r->completion_tokens = oai_estimate_tokens(generated);
        r->usage_estimated = 1;
    }
    return 0;
oom:
    set_msg(msg, msglen, "out of memory");
    return OAI_ENOMEM;
}

/* ---------- complete responses ---------- */

int oai_parse_response(const char *body, size_t len, size_t prompt_chars,
                       struct oai_result *out, char *msg, size_t msglen)
{
    struct oai_accum st;
    cJSON *root = NULL;
    int rc;

    struct lifted lp;

    memset(out, 0, sizeof *out);
    memset(&st, 0, sizeof st);
    memset(&lp, 0, sizeof lp);
    clear_msg(msg, msglen);
    rc = parse_json_lifting(body, len, &root, &lp, "body", msg, msglen);
    if (rc < 0) {
        free(lp.v);
        return rc;
    }
    if (!cJSON_IsObject(root)) {
        set_msg(msg, msglen, "body is not a JSON object");
        rc = OAI_EPARSE;
        goto fail;
    }
    if (is_error_body(root)) {
        rc = upstream_error(root, msg, msglen);
        goto fail;
    }
    rc = take_body(root, "message", out, &st, msg, msglen);
    if (lp.found && out->has_logprobs && out->n_logprobs == 0) { /* the blanked array */
        free(out->logprobs);
        out->logprobs = lp.v;
        out->n_logprobs = lp.n;
        st.logprobs_cap = lp.cap;
        lp.v = NULL;
    }
    if (rc == OAI_ENOCHOICE)
        set_msg(msg, msglen, "no choices[0].message in the response");
    if (rc == 0)
        rc = finalize(out, &st, prompt_chars, msg, msglen);
fail:
    free(lp.v);
    cJSON_Delete(root);
    return rc;
}

/* ---------- Server-Sent Events ---------- */

void oai_sse_init(struct oai_sse *s, size_t prompt_chars)
{
    memset(s, 0, sizeof *s);
    s->prompt_chars = prompt_chars;
}

void oai_sse_free(struct oai_sse *s)
{
    if (s == NULL)
        return;
    free(s->line);
    free(s->data);
    s->line = s->data = NULL;
    s->line_len = s->line_cap = s->data_len = s->data_cap = 0;
    s->has_data = 0;
    oai_result_free(&s->acc);
    memset(&s->st, 0, sizeof s->st);
}

/* Make room for need bytes in *buf (capacity *cap), bounded by OAI_SSE_MAX_LINE + 1. */
static int reserve(char **buf, size_t *cap, size_t need, char *msg, size_t msglen)
{
    size_t c;
    char *p;

    if (need > OAI_SSE_MAX_LINE + 1) {
        set_msg(msg, msglen, "stream line or event exceeds %u bytes", OAI_SSE_MAX_LINE);
        return OAI_ETOOBIG;
    }
    if (need <= *cap)
        return 0;
    c = *cap ? *cap : 1024;
    while (c < need)
        c *= 2;
    p = realloc(*buf, c);
    if (p == NULL) {
        set_msg(msg, msglen, "out of memory");
        return OAI_ENOMEM;
    }
    *buf = p;
    *cap = c;
    return 0;
}

/* One chat.completion.chunk payload. */
static int take_chunk(struct oai_sse *s, const char *p, size_t n, char *msg, size_t msglen)
{
    cJSON *root = NULL;
    int rc = parse_json(p, n, &root, "stream chunk", msg, msglen);

    if (rc < 0)
        return rc;
    if (!cJSON_IsObject(root)) {
        set_msg(msg, msglen, "stream chunk is not a JSON object");
        rc = OAI_EPARSE;
    } else if (is_error_body(root)) {
        rc = upstream_error(root, msg, msglen);
    } else {
        rc = take_body(root, "delta", &s->acc, &s->st, msg, msglen);
        if (rc == OAI_ENOCHOICE)
            rc = 0;  /* usage-only chunks, role-only chunks, keep-alives */
    }
    if (s->acc.content_len > 0)
        s->got_token = 1;
    cJSON_Delete(root);
    return rc;
}

static int dispatch(struct oai_sse *s, char *msg, size_t msglen)
{
    const char *b, *e;

    if (!s->has_data)
        return 0;  /* s->data may still be NULL */
    b = s->data;
    e = s->data + s->data_len;
    s->has_data = 0;
    s->data_len = 0;
    if (s->done)
        return 0;
    while (b < e && is_space((unsigned char)*b))
        b++;
    while (e > b && is_space((unsigned char)e[-1]))
        e--;
    if (b == e)
        return 0;
    if (e - b == 6 && memcmp(b, "[DONE]", 6) == 0) {
        s->done = 1;
        return 0;
    }
    return take_chunk(s, b, (size_t)(e - b), msg, msglen);
}

static int add_data(struct oai_sse *s, const char *v, size_t n, char *msg, size_t msglen)
{
    size_t sep = s->has_data ? 1 : 0;
    int rc = reserve(&s->data, &s->data_cap, s->data_len + sep + n + 1, msg, msglen);

    if (rc < 0)
        return rc;
    if (sep)
        s->data[s->data_len++] = '\n';
    if (n > 0)
        memcpy(s->data + s->data_len, v, n);
    s->data_len += n;
    s->data[s->data_len] = '\0';
    s->has_data = 1;
    return 0;
}

/* One complete line, without its '\n'. */
static int process_line(struct oai_sse *s, const char *p, size_t n, char *msg, size_t msglen)
{
    const char *colon;
    size_t field;

    if (n > 0 && p[n - 1] == '\r')
        n--;
    if (n == 0)
        return dispatch(s, msg, msglen);
    if (p[0] == ':')
        return 0;
    colon = memchr(p, ':', n);
    field = colon ? (size_t)(colon - p) : n;
    if (field != 4 || memcmp(p, "data", 4) != 0)
        return 0;  /* event:, id:, retry: and unknown fields */
    if (colon == NULL)
        return add_data(s, "", 0, msg, msglen);
    colon++;
    if (colon < p + n && *colon == ' ')
        colon++;
    return add_data(s, colon, (size_t)(p + n - colon), msg, msglen);
}

static int keep_partial(struct oai_sse *s, const char *p, size_t n, char *msg, size_t msglen)
{
    int rc = reserve(&s->line, &s->line_cap, s->line_len + n + 1, msg, msglen);

    if (rc < 0)
        return rc;
    memcpy(s->line + s->line_len, p, n);
    s->line_len += n;
    return 0;
}

static int end_line(struct oai_sse *s, const char *p, size_t n, char *msg, size_t msglen)
{
    size_t total;
    int rc;

    if (s->line_len == 0) {
        if (n > OAI_SSE_MAX_LINE) {
            set_msg(msg, msglen, "stream line exceeds %u bytes", OAI_SSE_MAX_LINE);
            return OAI_ETOOBIG;
        }
        return process_line(s, p, n, msg, msglen);
    }
    rc = keep_partial(s, p, n, msg, msglen);
    if (rc < 0)
        return rc;
    total = s->line_len;
    s->line_len = 0;  /* the bytes stay valid: processing a line never touches s->line */
    return process_line(s, s->line, total, msg, msglen);
}

int oai_sse_feed(struct oai_sse *s, const char *buf, size_t len, char *msg, size_t msglen)
{
    int had = s->got_token, rc = 0;
    size_t i = 0;

    clear_msg(msg, msglen);
    if (s->failed) {
        set_msg(msg, msglen, "stream already failed");
        return s->failed;
    }
    if (buf == NULL)
        len = 0;
    while (i < len && rc == 0) {
        const char *nl = memchr(buf + i, '\n', len - i);
        size_t seg = nl ? (size_t)(nl - (buf + i)) : len - i;
        rc = nl ? end_line(s, buf + i, seg, msg, msglen)
                : keep_partial(s, buf + i, seg, msg, msglen);
        i += seg + (nl ? 1 : 0);
    }
    if (rc < 0) {
        s->failed = rc;
        return rc;
    }
    return !had && s->got_token ? 1 : 0;
}

int oai_sse_finish(struct oai_sse *s, struct oai_result *out, char *msg, size_t msglen)
{
    int rc = s->failed, frc;
    size_t n = s->line_len;

    clear_msg(msg, msglen);
    s->line_len = 0;
    if (rc == 0 && n > 0)
        rc = process_line(s, s->line, n, msg, msglen);
    if (rc == 0)
        rc = dispatch(s, msg, msglen);
    else if (s->failed)
        set_msg(msg, msglen, "stream had failed before its end");
    frc = finalize(&s->acc, &s->st, s->prompt_chars, msg, msglen);
    if (rc == 0)
        rc = frc;
    if (rc == 0 && !s->done && s->acc.finish_reason == NULL) {
        set_msg(msg, msglen, "stream ended early: no [DONE] and no finish_reason");
        rc = OAI_EPARSE;
    }
    *out = s->acc;
    memset(&s->acc, 0, sizeof s->acc);
    oai_sse_free(s);
    return rc;
}

/* ---------- what a stream may show so far ---------- */

/* n less a tail of s[0..n) that is a proper prefix of a harmony token ("<", "<|", "<|en"). */
static size_t hold_token_prefix(const char *s, size_t n)
{
    static const char *const toks[] = {"<|channel|>", "<|end|>", "<|return|>", "<|start|>",
                                       "<|call|>", "<|message|>"};
    size_t longest = strlen("<|channel|>"), i, k;

    for (k = n < longest ? n : longest; k > 0; k--) {
        for (i = 0; i < sizeof toks / sizeof toks[0]; i++)
            if (k < strlen(toks[i]) && memcmp(s + n - k, toks[i], k) == 0)
                return n - k;
    }
    return n;
}

/* Is s[0..n) harmony, or too short to tell? (The same tests as apply_harmony.) */
static int may_be_harmony(const char *s, size_t n, int *stripped)
{
    size_t ls = strlen(STRIPPED_START), lc = strlen("<|");

    *stripped = 0;
    if (n >= lc && memcmp(s, "<|", lc) == 0)
        return 1;
    if (memcmp(s, STRIPPED_START, n < ls ? n : ls) == 0) {
        *stripped = 1;
        return 1;
    }
    return n < lc && s[0] == '<';
}

/* The final channel's text so far, from b (just past its marker) to e. */
static size_t final_so_far(const char *b, const char *e, int stripped, const char **text)
{
    if (!stripped)
        e = harmony_end(b, e);
    while (b < e && is_space((unsigned char)*b))
        b++;
    if (!stripped)
        e = b + hold_token_prefix(b, (size_t)(e - b));
    while (e > b && is_space((unsigned char)e[-1]))
        e--;
    *text = b;
    return (size_t)(e - b);
}

size_t oai_sse_visible(const struct oai_sse *s, const char **text)
{
    const char *c = s->acc.content, *m;
    size_t n = s->acc.content_len;
    int stripped;

    *text = c ? c : "";
    if (c == NULL || n == 0)
        return 0;
    if (!may_be_harmony(c, n, &stripped))
        return hold_token_prefix(c, n);
    m = memmem(c, n, stripped ? STRIPPED_FINAL : HARMONY_FINAL,
               strlen(stripped ? STRIPPED_FINAL : HARMONY_FINAL));
    if (m == NULL)
        return 0;
    m += strlen(stripped ? STRIPPED_FINAL : HARMONY_FINAL);
    return final_so_far(m, c + n, stripped, text);
}
