/* cache.c - the exact cache's key and entries. */
#include "cache.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bderr.h"
#include "hash.h"
#include "jsonx.h"
#include "sbuf.h"

#define KEY_LABEL "briefd-exact-cache-v1"

/* n bytes of p, preceded by their length (8 bytes, little-endian): no two field lists
 * encode the same. */
static void field(struct sbuf *b, const char *p, size_t n)
{
    unsigned char len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (unsigned char)((uint64_t)n >> (8 * i));
    sbuf_add(b, (const char *)len, sizeof(len));
    sbuf_add(b, p ? p : "", p ? n : 0);
}

static void fields(struct sbuf *b, const char *s)
{
    field(b, s, s ? strlen(s) : 0);
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The topic flags sorted, each once. */
static int add_flags(struct sbuf *b, const struct job_req *r)
{
    const char **f = calloc(r->n_topic_flags ? r->n_topic_flags : 1, sizeof(*f));
    size_t n = 0;
    char num[24];
    if (!f)
        return BD_ENOMEM;
    for (size_t i = 0; i < r->n_topic_flags; i++)
        f[i] = r->topic_flags[i];
    qsort(f, r->n_topic_flags, sizeof(*f), str_cmp);
    for (size_t i = 0; i < r->n_topic_flags; i++)
        if (i == 0 || strcmp(f[i], f[i - 1]) != 0)
            f[n++] = f[i];
    snprintf(num, sizeof(num), "%zu", n);
    fields(b, num);
    for (size_t i = 0; i < n; i++)
        fields(b, f[i]);
    free(f);
    return 0;
}

int cache_key(const struct job_req *r, const char *tenant, const char *scope,
              char out[CACHE_KEY_LEN + 1])
{
    struct sbuf b = {0};
    unsigned char md[HASH_SHA256_LEN];
    char num[24];
    char *text;
    int rc;
    fields(&b, KEY_LABEL);
    fields(&b, scope);
    fields(&b, tenant);
    field(&b, r->text, r->text_len);
    fields(&b, r->instructions ? "1" : "0");
    fields(&b, r->instructions);
    snprintf(num, sizeof(num), "%d", r->max_words);
    fields(&b, num);
    rc = add_flags(&b, r);
    if (rc == 0 && (b.oom || !b.p))
        rc = BD_ENOMEM;
    if (rc == 0)
        rc = hash_sha256(b.p, b.len, md);
    text = sbuf_take(&b);
    free(text);
    if (rc != 0)
        return rc;
    for (int i = 0; i < HASH_SHA256_LEN; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    return 0;
}

char *cache_value(const char *job_id, const cJSON *result)
{
    struct sbuf b = {0};
    sbuf_adds(&b, "{\"job\":");
    jsonx_write_string(&b, job_id);
    sbuf_adds(&b, ",\"result\":");
    jsonx_write(&b, result);
    sbuf_addc(&b, '}');
    return sbuf_take(&b);
}

int cache_value_parse(const char *value, size_t len, cJSON **result, char from[JOB_ID_LEN + 1])
{
    cJSON *v = cJSON_ParseWithLength(value, len);
    cJSON *job = cJSON_GetObjectItemCaseSensitive(v, "job");
    cJSON *res = cJSON_GetObjectItemCaseSensitive(v, "result");
    *result = NULL;
    if (!cJSON_IsString(job) || !job_id_valid(job->valuestring) || !cJSON_IsObject(res)) {
        cJSON_Delete(v);
        return -1;
    }
    snprintf(from, JOB_ID_LEN + 1, "%s", job->valuestring);
    *result = cJSON_DetachItemViaPointer(v, res);
    cJSON_Delete(v);
    return 0;
}
