/* cfg.c - config readers: errors with JSON paths, key checks, typed reads with bounds. */
#include "cfg.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int cfg_fail(struct cfg_err *err, const char *path, const char *fmt, ...)
{
    va_list ap;

    if (!err)
        return -1;
    snprintf(err->path, sizeof err->path, "%s", path ? path : "");
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return -1;
}

int cfg_fail_key(struct cfg_err *err, const char *path, const char *key, const char *fmt, ...)
{
    va_list ap;

    if (!err)
        return -1;
    if (snprintf(err->path, sizeof err->path, "%s.%s", path ? path : "", key) < 0)
        err->path[0] = '\0';
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return -1;
}

static int key_known(const char *key, const char *const *known)
{
    for (size_t i = 0; known[i]; i++) {
        if (strcmp(key, known[i]) == 0)
            return 1;
    }
    return 0;
}

/* cJSON keeps duplicate keys and its lookups see only the first: a repeated key would be
 * silently ignored, so it is an error like an unknown one. */
static int key_repeated(const cJSON *obj, const cJSON *item)
{
    for (const cJSON *it = obj->child; it && it != item; it = it->next) {
        if (it->string && strcmp(it->string, item->string) == 0)
            return 1;
    }
    return 0;
}

int cfg_check_keys(const cJSON *obj, const char *path, const char *const *known,
                   struct cfg_err *err)
{
    for (const cJSON *it = obj ? obj->child : NULL; it; it = it->next) {
        const char *key = it->string ? it->string : "";
        if (!key_known(key, known))
            return cfg_fail_key(err, path, key, "unknown key");
        if (key_repeated(obj, it))
            return cfg_fail_key(err, path, key, "duplicate key");
    }
    return 0;
}

/* obj.key as a finite number: CFG_ABSENT, CFG_NULL (only when nullable), CFG_VALUE with *out
 * set, or -1 for a wrong type (the caller words the error). */
static int read_number(const cJSON *obj, const char *key, int nullable, double *out)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);

    if (!it)
        return CFG_ABSENT;
    if (nullable && cJSON_IsNull(it))
        return CFG_NULL;
    if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble))
        return -1;
    *out = it->valuedouble;
    return CFG_VALUE;
}

int cfg_number(const cJSON *obj, const char *path, const char *key, int nullable,
               double *out, struct cfg_err *err)
{
    int rc = read_number(obj, key, nullable, out);

    if (rc < 0)
        return cfg_fail_key(err, path, key, nullable ? "expected number or null"
                                                     : "expected number");
    return rc;
}

int cfg_integer(const cJSON *obj, const char *path, const char *key, int nullable,
                long long lo, long long hi, long long *out, struct cfg_err *err)
{
    double v = 0;
    int rc = read_number(obj, key, nullable, &v);

    if (rc == CFG_ABSENT || rc == CFG_NULL)
        return rc;
    if (rc < 0 || v != floor(v))
        return cfg_fail_key(err, path, key, nullable ? "expected integer or null"
                                                     : "expected integer");
    if (v < (double)lo)
        return cfg_fail_key(err, path, key, "must be >= %lld", lo);
    if (v > (double)hi)
        return cfg_fail_key(err, path, key, "must be <= %lld", hi);
    *out = (long long)v;
    return CFG_VALUE;
}

/* "expected one of a, b, c" for the names. */
static int enum_fail(struct cfg_err *err, const char *path, const char *key,
                     const char *const *names)
{
    char list[160] = "";
    size_t used = 0;

    for (size_t i = 0; names[i]; i++) {
        int n = snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", names[i]);
        if (n < 0 || (size_t)n >= sizeof list - used)
            break;
        used += (size_t)n;
    }
    return cfg_fail_key(err, path, key, "expected one of %s", list);
}

int cfg_enum(const cJSON *obj, const char *path, const char *key,
             const char *const *names, int *out, struct cfg_err *err)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);

    if (!it)
        return CFG_ABSENT;
    if (!cJSON_IsString(it))
        return enum_fail(err, path, key, names);
    for (int i = 0; names[i]; i++) {
        if (strcmp(it->valuestring, names[i]) == 0) {
            *out = i;
            return CFG_VALUE;
        }
    }
    return enum_fail(err, path, key, names);
}

void cfg_err_print(FILE *f, const char *what, const struct cfg_err *err)
{
    fprintf(f, "%s: %s%s%s\n", what, err->path, err->path[0] ? ": " : "", err->msg);
}
