/* job.c - brief job requests: validation, normalization, ids, timestamps, prompts. */
#include "job.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "hash.h"
#include "jsonv.h"
#include "policy.h"
#include "sbuf.h"
#include "url.h"

const char *job_priority_name(enum job_priority p)
{
    switch (p) {
    case PRIO_LOW: return "low";
    case PRIO_HIGH: return "high";
    default: return "normal";
    }
}

static int verr(struct job_verr *e, int status, const char *code, const char *param,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Copy s into out[0..n), cut to fit, each byte outside printable ASCII as '?'. */
static void ascii_copy(char *out, size_t n, const char *s)
{
    size_t i = 0;

    for (; s && s[i] && i + 1 < n; i++)
        out[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
    out[i] = '\0';
}

int job_verr_set(struct job_verr *e, int status, const char *code, const char *param,
                 const char *msg)
{
    e->status = status;
    e->code = code;
    ascii_copy(e->param, sizeof(e->param), param);
    ascii_copy(e->msg, sizeof(e->msg), msg);
    return -1;
}

static int verr(struct job_verr *e, int status, const char *code, const char *param,
                const char *fmt, ...)
{
    char msg[sizeof(e->msg)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return job_verr_set(e, status, code, param, msg);
}

int job_body_check(const char *body, size_t len, struct job_verr *e)
{
    struct jsonv_result jr;
    const char *what, *path;

    if (len == 0)
        return verr(e, 400, "invalid_json", NULL,
                    "request body is empty; expected a JSON object");
    if (jsonv_check(body, len, &jr) == 0)
        return 0;
    what = jsonv_kind_text(jr.kind);
    path = jr.path[0] ? jr.path : NULL;
    if (jr.kind == JSONV_NUL && path)
        return verr(e, 400, "invalid_value", path, "%s '%s' contains %s, which is not accepted",
                    jr.in_key ? "the name of field" : "field", path, what);
    if ((jr.kind == JSONV_UTF8 || jr.kind == JSONV_SURROGATE) && path)
        return verr(e, 400, "invalid_utf8", path, "%s '%s' is not valid UTF-8: %s (byte %zu)",
                    jr.in_key ? "the name of field" : "field", path, what, jr.offset);
    if (jr.kind == JSONV_NUL)
        return verr(e, 400, "invalid_value", NULL, "request body contains %s", what);
    if (jr.kind == JSONV_UTF8 || jr.kind == JSONV_SURROGATE)
        return verr(e, 400, "invalid_utf8", NULL, "request body is not valid UTF-8: %s", what);
    if (path)
        return verr(e, 400, "invalid_json", NULL, "request body is not valid JSON: %s at byte "
                    "%zu (in '%s')", what, jr.offset, path);
    return verr(e, 400, "invalid_json", NULL, "request body is not valid JSON: %s at byte %zu",
                what, jr.offset);
}

/* Bytes of a maximal job besides its text (instructions, callback_url, flags, metadata),
 * and the allowance for member names, punctuation, numbers and whitespace. */
#define JOB_FIELDS_MAX                                                                   \
    ((size_t)JOB_MAX_INSTRUCTIONS + JOB_MAX_URL + (size_t)JOB_MAX_FLAGS * JOB_MAX_FLAG_LEN + \
     (size_t)JOB_MAX_META * (JOB_MAX_META_KEY + JOB_MAX_META_VALUE))
#define JOB_BODY_SLACK   ((size_t)64 << 10)
#define JSON_ESCAPE_MAX  6 /* \u00XX: the longest JSON form of one byte */

size_t job_body_bound(size_t max_text_bytes)
{
    const size_t fixed = JSON_ESCAPE_MAX * JOB_FIELDS_MAX + JOB_BODY_SLACK;

    if (max_text_bytes > (SIZE_MAX - fixed) / JSON_ESCAPE_MAX)
        return SIZE_MAX;
    return JSON_ESCAPE_MAX * max_text_bytes + fixed;
}

/* Strict UTF-8 check (no overlongs, no surrogates, <= U+10FFFF). */
static int utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t k;
        unsigned cp, min;
        if (c < 0x80) { i++; continue; }
        if ((c & 0xE0) == 0xC0) { k = 1; cp = c & 0x1F; min = 0x80; }
        else if ((c & 0xF0) == 0xE0) { k = 2; cp = c & 0x0F; min = 0x800; }
        else if ((c & 0xF8) == 0xF0) { k = 3; cp = c & 0x07; min = 0x10000; }
        else return 0;
        for (size_t j = 1; j <= k; j++) {
            if (i + j >= n || (s[i + j] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + j] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += k + 1;
    }
    return 1;
}

static int all_space(const char *s)
{
    for (; *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r')
            return 0;
    return 1;
}

static int printable_ascii(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
            return 0;
    return 1;
}

/* 1 if a member of obj before it has it's name (duplicate keys are refused: a proxy that
 * kept the last value would otherwise read another request than ours). */
static int repeated(const cJSON *obj, const cJSON *it)
{
    for (const cJSON *p = obj->child; p && p != it; p = p->next)
        if (strcmp(p->string, it->string) == 0)
            return 1;
    return 0;
}

static int parse_text(const cJSON *v, size_t max, struct job_req *out, struct job_verr *e)
{
    size_t len;
    if (!v)
        return verr(e, 400, "text_required", "text", "field 'text' is required");
    if (!cJSON_IsString(v))
        return verr(e, 400, "invalid_type", "text", "field 'text' must be a string");
    len = strlen(v->valuestring);
    if (len == 0 || all_space(v->valuestring))
        return verr(e, 400, "text_required", "text", "field 'text' must not be empty");
    if (len > max)
        return verr(e, 413, "text_too_large", "text",
                    "field 'text' is %zu bytes; the limit is %zu (limits.max_text_bytes)", len,
                    max);
    if (!utf8_valid((const unsigned char *)v->valuestring, len))
        return verr(e, 400, "invalid_utf8", "text", "field 'text' is not valid UTF-8");
    out->text = strdup(v->valuestring);
    out->text_len = len;
    return out->text ? 0 : verr(e, 500, "out_of_memory", NULL, "out of memory");
}

static int parse_instructions(const cJSON *v, struct job_req *out, struct job_verr *e)
{
    size_t len;
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsString(v))
        return verr(e, 400, "invalid_type", "instructions",
                    "field 'instructions' must be a string");
    len = strlen(v->valuestring);
    if (len > JOB_MAX_INSTRUCTIONS)
        return verr(e, 422, "invalid_value", "instructions",
                    "field 'instructions' is %zu bytes; at most %d allowed", len,
                    JOB_MAX_INSTRUCTIONS);
    if (!utf8_valid((const unsigned char *)v->valuestring, len))
        return verr(e, 400, "invalid_utf8", "instructions",
                    "field 'instructions' is not valid UTF-8");
    out->instructions = strdup(v->valuestring);
    return out->instructions ? 0 : verr(e, 500, "out_of_memory", NULL, "out of memory");
}

static int parse_max_words(const cJSON *v, struct job_req *out, struct job_verr *e)
{
    double d;
    out->max_words = JOB_DEFAULT_MAX_WORDS;
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsNumber(v))
        return verr(e, 400, "invalid_type", "max_words", "field 'max_words' must be an integer");
    d = v->valuedouble;
    if (!(d >= 10 && d <= 2000)) /* range first: the cast below needs it */
        return verr(e, 422, "invalid_value", "max_words",
                    "field 'max_words' must be between 10 and 2000");
    if (d != (double)(int)d)
        return verr(e, 400, "invalid_type", "max_words", "field 'max_words' must be an integer");
    out->max_words = (int)d;
    return 0;
}

static int parse_flags(const cJSON *v, struct job_req *out, struct job_verr *e)
{
    const cJSON *it;
    size_t n = 0;
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsArray(v))
        return verr(e, 400, "invalid_type", "topic_flags",
                    "field 'topic_flags' must be an array of strings");
    if (cJSON_GetArraySize(v) > JOB_MAX_FLAGS)
        return verr(e, 422, "invalid_value", "topic_flags",
                    "field 'topic_flags' has more than %d entries", JOB_MAX_FLAGS);
    out->topic_flags = calloc((size_t)cJSON_GetArraySize(v) + 1, sizeof(char *));
    if (!out->topic_flags)
        return verr(e, 500, "out_of_memory", NULL, "out of memory");
    cJSON_ArrayForEach(it, v) {
        char param[40];
        snprintf(param, sizeof(param), "topic_flags[%zu]", n);
        if (!cJSON_IsString(it))
            return verr(e, 400, "invalid_type", param, "field '%s' must be a string", param);
        size_t len = strlen(it->valuestring);
        if (len == 0 || len > JOB_MAX_FLAG_LEN || !printable_ascii(it->valuestring))
            return verr(e, 422, "invalid_value", param,
                        "field '%s' must be 1 to %d printable ASCII characters", param,
                        JOB_MAX_FLAG_LEN);
        out->topic_flags[n] = strdup(it->valuestring);
        if (!out->topic_flags[n])
            return verr(e, 500, "out_of_memory", NULL, "out of memory");
        out->n_topic_flags = ++n;
    }
    return 0;
}

static int parse_priority(const cJSON *v, struct job_req *out, struct job_verr *e)
{
    out->priority = PRIO_NORMAL;
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsString(v))
        return verr(e, 400, "invalid_type", "priority", "field 'priority' must be a string");
    if (strcmp(v->valuestring, "low") == 0)
        out->priority = PRIO_LOW;
    else if (strcmp(v->valuestring, "high") == 0)
        out->priority = PRIO_HIGH;
    else if (strcmp(v->valuestring, "normal") != 0)
        return verr(e, 422, "invalid_value", "priority",
                    "field 'priority' must be one of low, normal, high");
    return 0;
}

static int parse_metadata(const cJSON *v, struct job_req *out, struct job_verr *e)
{
    const cJSON *it;
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsObject(v))
        return verr(e, 400, "invalid_type", "metadata",
                    "field 'metadata' must be an object of strings");
    if (cJSON_GetArraySize(v) > JOB_MAX_META)
        return verr(e, 422, "invalid_value", "metadata",
                    "field 'metadata' has more than %d keys", JOB_MAX_META);
    cJSON_ArrayForEach(it, v) {
        char param[96];
        size_t klen = strlen(it->string);
        snprintf(param, sizeof(param), "metadata.%.64s", it->string);
        if (repeated(v, it))
            return verr(e, 400, "duplicate_parameter", param, "field '%s' appears twice",
                        param);
        if (klen == 0 || klen > JOB_MAX_META_KEY || !printable_ascii(it->string))
            return verr(e, 422, "invalid_value", "metadata",
                        "metadata keys must be 1 to %d printable ASCII characters",
                        JOB_MAX_META_KEY);
        if (!cJSON_IsString(it))
            return verr(e, 400, "invalid_type", param, "field '%s' must be a string", param);
        size_t vlen = strlen(it->valuestring);
        if (vlen > JOB_MAX_META_VALUE ||
            !utf8_valid((const unsigned char *)it->valuestring, vlen))
            return verr(e, 422, "invalid_value", param,
                        "field '%s' must be valid UTF-8 of at most %d bytes", param,
                        JOB_MAX_META_VALUE);
    }
    out->metadata = cJSON_Duplicate(v, 1);
    return out->metadata ? 0 : verr(e, 500, "out_of_memory", NULL, "out of memory");
}

static int parse_callback(const cJSON *v, struct job_req *out, struct job_verr *e)
{
    struct url_parts u;
    const char *s, *why = NULL;
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsString(v))
        return verr(e, 400, "invalid_type", "callback_url",
                    "field 'callback_url' must be a string");
    s = v->valuestring;
    if (strlen(s) > JOB_MAX_URL || !printable_ascii(s) || strchr(s, ' ') ||
        (strncmp(s, "http://", 7) != 0 && strncmp(s, "https://", 8) != 0) ||
        strlen(s) < 10)
        return verr(e, 422, "invalid_value", "callback_url",
                    "field 'callback_url' must be an http:// or https:// URL of at most %d "
                    "characters",
                    JOB_MAX_URL);
    if (url_parse(s, &u, &why) != 0)
        return verr(e, 422, "invalid_value", "callback_url", "field 'callback_url': %s", why);
    out->callback_url = strdup(s);
    return out->callback_url ? 0 : verr(e, 500, "out_of_memory", NULL, "out of memory");
}

static const char *const known_fields[] = {"text", "instructions", "max_words", "topic_flags",
                                           "priority", "metadata", "callback_url", NULL};

static int check_unknown(const cJSON *root, struct job_verr *e)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, root) {
        if (repeated(root, it)) {
            char name[72];
            snprintf(name, sizeof(name), "%.64s", it->string);
            return verr(e, 400, "duplicate_parameter", name, "field '%s' appears twice", name);
        }
        int known = 0;
        for (size_t i = 0; known_fields[i]; i++)
            if (strcmp(it->string, known_fields[i]) == 0)
                known = 1;
        if (!known) {
            char name[72];
            snprintf(name, sizeof(name), "%.64s", it->string);
            return verr(e, 400, "unknown_parameter", name, "unknown field '%s'", name);
        }
    }
    return 0;
}

int job_req_parse(const char *body, size_t len, size_t max_text_bytes, struct job_req *out,
                  struct job_verr *err)
{
    cJSON *root;
    int rc;
    memset(out, 0, sizeof(*out));
    if (job_body_check(body, len, err) != 0)
        return -1;
    root = cJSON_ParseWithLength(body, len);
    if (!root)
        return verr(err, 400, "invalid_json", NULL, "request body is not valid JSON");
    rc = job_req_from_object(root, max_text_bytes, out, err);
    cJSON_Delete(root);
    return rc;
}

int job_req_from_object(const cJSON *root, size_t max_text_bytes, struct job_req *out,
                        struct job_verr *err)
{
    memset(out, 0, sizeof(*out));
    if (!cJSON_IsObject(root))
        return verr(err, 400, "invalid_json", NULL, "request body must be a JSON object");
    if (check_unknown(root, err) != 0 ||
        parse_text(cJSON_GetObjectItemCaseSensitive(root, "text"), max_text_bytes, out, err) ||
        parse_instructions(cJSON_GetObjectItemCaseSensitive(root, "instructions"), out, err) ||
        parse_max_words(cJSON_GetObjectItemCaseSensitive(root, "max_words"), out, err) ||
        parse_flags(cJSON_GetObjectItemCaseSensitive(root, "topic_flags"), out, err) ||
        parse_priority(cJSON_GetObjectItemCaseSensitive(root, "priority"), out, err) ||
        parse_metadata(cJSON_GetObjectItemCaseSensitive(root, "metadata"), out, err) ||
        parse_callback(cJSON_GetObjectItemCaseSensitive(root, "callback_url"), out, err)) {
        job_req_free(out);
        return -1;
    }
    return 0;
}

void job_req_free(struct job_req *r)
{
    free(r->text);
    free(r->instructions);
    for (size_t i = 0; r->topic_flags && i < r->n_topic_flags; i++)
        free(r->topic_flags[i]);
    free(r->topic_flags);
    cJSON_Delete(r->metadata);
    free(r->callback_url);
    memset(r, 0, sizeof(*r));
}

cJSON *job_req_to_json(const struct job_req *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *flags;
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "text", r->text ? r->text : "");
    if (r->instructions)
        cJSON_AddStringToObject(o, "instructions", r->instructions);
    cJSON_AddNumberToObject(o, "max_words", r->max_words);
    flags = cJSON_AddArrayToObject(o, "topic_flags");
    for (size_t i = 0; flags && i < r->n_topic_flags; i++)
        cJSON_AddItemToArray(flags, cJSON_CreateString(r->topic_flags[i]));
    cJSON_AddStringToObject(o, "priority", job_priority_name(r->priority));
    if (r->metadata)
        cJSON_AddItemToObject(o, "metadata", cJSON_Duplicate(r->metadata, 1));
    if (r->callback_url)
        cJSON_AddStringToObject(o, "callback_url", r->callback_url);
    return o;
}

int job_req_from_json(const char *json, size_t len, struct job_req *out)
{
    struct job_verr e;
    /* The stored form is a validated request; re-validate with no text bound beyond the
     * hard ceiling so a stored job is never refused by a later, smaller limit. */
    return job_req_parse(json, len, (size_t)1 << 30, out, &e);
}

int job_utf8_valid(const char *s, size_t n)
{
    return utf8_valid((const unsigned char *)s, n);
}

const char *job_req_meta(const struct job_req *r, const char *key)
{
    const cJSON *v = r->metadata ? cJSON_GetObjectItemCaseSensitive(r->metadata, key) : NULL;
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static const char crockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/* An id: "job_" + 10 base32 chars of ms (48 bits) + 16 chars of tail (80 bits, MSB first). */
static void id_encode(char *out, uint64_t ms, const unsigned char tail[10])
{
    memcpy(out, "job_", 4);
    for (int i = 9; i >= 0; i--) {
        out[4 + i] = crockford[ms & 31];
        ms >>= 5;
    }
    for (int i = 0; i < 16; i++) {
        int bit = i * 5, byte = bit / 8, off = bit % 8;
        unsigned v = (unsigned)tail[byte] << 8 | (byte + 1 < 10 ? tail[byte + 1] : 0);
        out[14 + i] = crockford[(v >> (11 - off)) & 31];
    }
    out[JOB_ID_LEN] = '\0';
}

static int b32_val(char c)
{
    const char *p = c ? strchr(crockford, c) : NULL;
    return p ? (int)(p - crockford) : -1;
}

/* The tail's 80 bits back from the id; -1 if it is not a well-formed id. */
static int id_decode(const char *id, uint64_t *ms, unsigned char tail[10])
{
    uint64_t t = 0;
    if (!job_id_valid(id))
        return -1;
    for (int i = 0; i < 10; i++)
        t = t << 5 | (uint64_t)b32_val(id[4 + i]);
    memset(tail, 0, 10);
    for (int i = 0; i < 16; i++) {
        unsigned v = (unsigned)b32_val(id[14 + i]);
        for (int k = 4; k >= 0; k--) {
            int bit = i * 5 + (4 - k);
            if (v >> k & 1u)
                tail[bit / 8] |= (unsigned char)(0x80u >> (bit % 8));
        }
    }
    *ms = t;
    return 0;
}

/* Tail layout: 2 bits kind (0..2: the priority of the stream that holds the job's first
 * entry, 3: a job never queued), 40 bits of the entry's sequence number, 38 bits check. */
static void tail_put(unsigned char tail[10], unsigned kind, uint64_t seq, uint64_t check)
{
    /* 80 bits as hi (16) + lo (64) */
    uint64_t hi = (uint64_t)kind << 14 | (seq >> 26);
    uint64_t lo = (seq & ((1ull << 26) - 1)) << 38 | (check & ((1ull << 38) - 1));
    tail[0] = (unsigned char)(hi >> 8);
    tail[1] = (unsigned char)hi;
    for (int i = 0; i < 8; i++)
        tail[2 + i] = (unsigned char)(lo >> (56 - 8 * i));
}

static void tail_get(const unsigned char tail[10], unsigned *kind, uint64_t *seq,
                     uint64_t *check)
{
    uint64_t hi = (uint64_t)tail[0] << 8 | tail[1], lo = 0;
    for (int i = 0; i < 8; i++)
        lo = lo << 8 | tail[2 + i];
    *kind = (unsigned)(hi >> 14) & 3u;
    *seq = (hi & 0x3fffu) << 26 | lo >> 38;
    *check = lo & ((1ull << 38) - 1);
}

static uint64_t entry_check(unsigned kind, uint64_t ms, uint64_t seq)
{
    uint64_t v[3] = {kind, ms, seq};
    return hash_fnv1a64(HASH_FNV1A64_INIT, v, sizeof(v));
}

/* n random bytes (n <= 64) into out: getrandom(2) fills a pool that serves 32 ids, not a
 * system call an id (briefd is one thread, and never forks). 0, or -1 if the kernel has none. */
static int random_bytes(unsigned char *out, size_t n)
{
    static unsigned char pool[320];
    static size_t used = sizeof(pool);
    if (sizeof(pool) - used < n) {
        if (getrandom(pool, sizeof(pool), 0) != (ssize_t)sizeof(pool))
            return -1;
        used = 0;
    }
    memcpy(out, pool + used, n);
    memset(pool + used, 0, n); /* handed out once */
    used += n;
    return 0;
}

void job_new_id(char *out, int64_t now_ms)
{
    unsigned char rnd[10];
    if (random_bytes(rnd, sizeof(rnd)) != 0) {
        uint64_t x = (uint64_t)now_ms ^ (uint64_t)clock();
        for (int i = 0; i < 10; i++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            rnd[i] = (unsigned char)(x >> 56);
        }
    }
    rnd[0] |= 0xc0; /* kind 3: never queued */
    id_encode(out, (uint64_t)now_ms & ((1ull << 48) - 1), rnd);
}

int job_id_of_entry(char *out, enum job_priority prio, const char *entry)
{
    unsigned long long ms, seq;
    unsigned char tail[10];
    char *end;
    if (!entry || !*entry)
        return -1;
    ms = strtoull(entry, &end, 10);
    if (*end != '-' || ms >= (1ull << 48))
        return -1;
    seq = strtoull(end + 1, &end, 10);
    if (*end != '\0' || seq >= (1ull << 40) || prio > PRIO_HIGH)
        return -1;
    tail_put(tail, (unsigned)prio, seq, entry_check((unsigned)prio, ms, seq));
    id_encode(out, ms, tail);
    return 0;
}

int job_entry_of_id(const char *id, enum job_priority *prio, char *entry, size_t len)
{
    uint64_t ms, seq, check;
    unsigned char tail[10];
    unsigned kind;
    if (id_decode(id, &ms, tail) != 0)
        return -1;
    tail_get(tail, &kind, &seq, &check);
    if (kind > PRIO_HIGH || check != (entry_check(kind, ms, seq) & ((1ull << 38) - 1)))
        return -1;
    *prio = (enum job_priority)kind;
    snprintf(entry, len, "%llu-%llu", (unsigned long long)ms, (unsigned long long)seq);
    return 0;
}

int64_t job_id_ms(const char *id)
{
    uint64_t ms;
    unsigned char tail[10];
    return id_decode(id, &ms, tail) == 0 ? (int64_t)ms : -1;
}

int job_id_valid(const char *s)
{
    if (!s || strlen(s) != JOB_ID_LEN || strncmp(s, "job_", 4) != 0)
        return 0;
    for (size_t i = 4; i < JOB_ID_LEN; i++)
        if (b32_val(s[i]) < 0)
            return 0;
    return b32_val(s[4]) <= 7; /* 48 bits of time: the first char holds 3 */
}

void job_route_input(const struct job_req *r, const char *draft, const struct lp_summary *lp,
                     int truncated, struct route_input *in)
{
    memset(in, 0, sizeof(*in));
    in->text = r->text;
    in->text_len = r->text_len;
    in->draft = draft;
    in->draft_len = draft ? strlen(draft) : 0;
    in->topic_flags = (const char *const *)r->topic_flags;
    in->n_topic_flags = r->n_topic_flags;
    in->lp = *lp;
    in->truncated = truncated;
}

char *job_render_prompt(const char *tmpl, const struct job_req *r, const char *draft)
{
    struct sbuf b = {0};
    const char *p = tmpl;
    while (*p) {
        const char *open = strchr(p, '{');
        if (!open) {
            sbuf_add(&b, p, strlen(p));
            break;
        }
        sbuf_add(&b, p, (size_t)(open - p));
        if (strncmp(open, "{text}", 6) == 0) {
            sbuf_add(&b, r->text, r->text_len);
            p = open + 6;
        } else if (strncmp(open, "{draft}", 7) == 0) {
            sbuf_add(&b, draft ? draft : "", draft ? strlen(draft) : 0);
            p = open + 7;
        } else if (strncmp(open, "{max_words}", 11) == 0) {
            char num[16];
            int n = snprintf(num, sizeof(num), "%d", r->max_words);
            sbuf_add(&b, num, (size_t)n);
            p = open + 11;
        } else if (strncmp(open, "{instructions}", 14) == 0) {
            if (r->instructions && r->instructions[0]) {
                sbuf_add(&b, "\n\nInstructions: ", 16);
                sbuf_add(&b, r->instructions, strlen(r->instructions));
            }
            p = open + 14;
        } else {
            sbuf_add(&b, "{", 1);
            p = open + 1;
        }
    }
    return sbuf_take(&b);
}
