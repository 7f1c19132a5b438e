/* tenant.c - per-tenant limits: the "tenants" config section, lookups, Retry-After arithmetic. */
#include "tenant.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "job.h"

#define DAY_MS 86400000LL

struct tenant_entry {
    char *id;
    struct tenant_limits lim;
};

struct tenant_table {
    struct tenant_limits dflt;
    struct tenant_entry *e;     /* sorted by id (strcmp) */
    size_t n;
};

static const char *const section_keys[] = {"default", "by_id", NULL};
static const char *const limit_keys[] = {"jobs_per_minute", "daily_budget_usd",
                                         "max_refine_rate", NULL};

/* One LIMITS object as written: each key absent, null or a value. */
enum { L_JPM, L_BUDGET, L_RATE, L_N };
struct limits_in {
    int state[L_N];             /* CFG_ABSENT | CFG_NULL | CFG_VALUE */
    struct tenant_limits v;
};

static const struct tenant_limits no_limits = {0, -1, 0};

/* ---- parse ---- */

static int parse_jpm(const cJSON *o, const char *path, struct limits_in *in, struct cfg_err *err)
{
    long long v = 0;
    int rc = cfg_integer(o, path, "jobs_per_minute", 1, 1, TENANT_MAX_JPM, &v, err);
    if (rc < 0)
        return -1;
    in->state[L_JPM] = rc;
    in->v.jobs_per_minute = (long)v;
    return 0;
}

static int parse_budget(const cJSON *o, const char *path, struct limits_in *in,
                        struct cfg_err *err)
{
    double v = 0;
    int rc = cfg_number(o, path, "daily_budget_usd", 1, &v, err);
    if (rc < 0)
        return -1;
    if (rc == CFG_VALUE && !(v >= 0 && v <= 1e9))
        return cfg_fail_key(err, path, "daily_budget_usd", "must be between 0 and 1e9");
    in->state[L_BUDGET] = rc;
    in->v.daily_budget_usd = v;
    return 0;
}

static int parse_rate(const cJSON *o, const char *path, struct limits_in *in, struct cfg_err *err)
{
    double v = 0;
    int rc = cfg_number(o, path, "max_refine_rate", 1, &v, err);
    if (rc < 0)
        return -1;
    if (rc == CFG_VALUE && !(v > 0 && v <= 1))
        return cfg_fail_key(err, path, "max_refine_rate", "must be in (0, 1]");
    in->state[L_RATE] = rc;
    in->v.max_refine_rate = v;
    return 0;
}

static int parse_limits(const cJSON *o, const char *path, struct limits_in *in,
                        struct cfg_err *err)
{
    memset(in, 0, sizeof(*in));
    if (!cJSON_IsObject(o))
        return cfg_fail(err, path, "expected object");
    if (cfg_check_keys(o, path, limit_keys, err) < 0)
        return -1;
    if (parse_jpm(o, path, in, err) < 0 || parse_budget(o, path, in, err) < 0)
        return -1;
    return parse_rate(o, path, in, err);
}

/* The limits in says, a key it leaves out taking base's value. */
static struct tenant_limits resolve(const struct limits_in *in, const struct tenant_limits *base)
{
    struct tenant_limits l = *base;
    if (in->state[L_JPM] != CFG_ABSENT)
        l.jobs_per_minute = in->state[L_JPM] == CFG_VALUE ? in->v.jobs_per_minute : 0;
    if (in->state[L_BUDGET] != CFG_ABSENT)
        l.daily_budget_usd = in->state[L_BUDGET] == CFG_VALUE ? in->v.daily_budget_usd : -1;
    if (in->state[L_RATE] != CFG_ABSENT)
        l.max_refine_rate = in->state[L_RATE] == CFG_VALUE ? in->v.max_refine_rate : 0;
    return l;
}

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const struct tenant_entry *)a)->id, ((const struct tenant_entry *)b)->id);
}

static void entry_path(char *path, size_t n, const char *id)
{
    snprintf(path, n, "tenants.by_id.%.100s", id);
}

/* by_id: every member a valid tenant id with a LIMITS object, each id once. The entries'
 * limits are resolved against dflt once it is known (resolve_by_id). */
static int parse_by_id(const cJSON *by, struct tenant_table *t, struct limits_in *ins,
                       struct cfg_err *err)
{
    char path[128];
    for (const cJSON *it = by->child; it; it = it->next) {
        entry_path(path, sizeof(path), it->string);
        if (!tenant_id_valid(it->string))
            return cfg_fail(err, path, "a tenant id must be 1 to %d bytes of valid UTF-8",
                            TENANT_ID_MAX);
        if (parse_limits(it, path, &ins[t->n], err) < 0)
            return -1;
        t->e[t->n].id = strdup(it->string);
        if (!t->e[t->n].id)
            return cfg_fail(err, "tenants", "out of memory");
        t->n++;
    }
    return 0;
}

static int resolve_by_id(struct tenant_table *t, const struct limits_in *ins,
                         struct cfg_err *err)
{
    char path[128];
    for (size_t i = 0; i < t->n; i++)
        t->e[i].lim = resolve(&ins[i], &t->dflt);
    qsort(t->e, t->n, sizeof(*t->e), entry_cmp);
    for (size_t i = 1; i < t->n; i++) {
        if (strcmp(t->e[i - 1].id, t->e[i].id) == 0) {
            entry_path(path, sizeof(path), t->e[i].id);
            return cfg_fail(err, path, "duplicate key");
        }
    }
    return 0;
}

static int parse_section(const cJSON *v, struct tenant_table *t, struct cfg_err *err)
{
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(v, "default");
    const cJSON *by = cJSON_GetObjectItemCaseSensitive(v, "by_id");
    struct limits_in din, *ins = NULL;
    int n, rc = -1;
    t->dflt = no_limits;
    if (d) {
        if (parse_limits(d, "tenants.default", &din, err) < 0)
            return -1;
        t->dflt = resolve(&din, &no_limits);
    }
    if (!by || cJSON_IsNull(by))
        return 0;
    if (!cJSON_IsObject(by))
        return cfg_fail(err, "tenants.by_id", "expected object");
    n = cJSON_GetArraySize(by);
    if (n > TENANT_MAX_IDS)
        return cfg_fail(err, "tenants.by_id", "at most %d tenants", TENANT_MAX_IDS);
    t->e = calloc((size_t)(n ? n : 1), sizeof(*t->e));
    ins = calloc((size_t)(n ? n : 1), sizeof(*ins));
    if (!t->e || !ins)
        cfg_fail(err, "tenants", "out of memory");
    else if (parse_by_id(by, t, ins, err) == 0)
        rc = resolve_by_id(t, ins, err);
    free(ins);
    return rc;
}

int tenant_table_parse(const cJSON *v, struct tenant_table **out, struct cfg_err *err)
{
    struct tenant_table *t;
    *out = NULL;
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsObject(v))
        return cfg_fail(err, "tenants", "expected object");
    if (cfg_check_keys(v, "tenants", section_keys, err) < 0)
        return -1;
    t = calloc(1, sizeof(*t));
    if (!t)
        return cfg_fail(err, "tenants", "out of memory");
    if (parse_section(v, t, err) < 0) {
        tenant_table_free(t);
        return -1;
    }
    *out = t;
    return 0;
}

void tenant_table_free(struct tenant_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++)
        free(t->e[i].id);
    free(t->e);
    free(t);
}

size_t tenant_table_count(const struct tenant_table *t)
{
    return t ? t->n : 0;
}

/* ---- describe ---- */

cJSON *tenant_limits_json(const struct tenant_limits *l)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    l = l ? l : &no_limits;
    if (l->jobs_per_minute > 0)
        cJSON_AddNumberToObject(o, "jobs_per_minute", (double)l->jobs_per_minute);
    else
        cJSON_AddNullToObject(o, "jobs_per_minute");
    if (l->daily_budget_usd >= 0)
        cJSON_AddNumberToObject(o, "daily_budget_usd", l->daily_budget_usd);
    else
        cJSON_AddNullToObject(o, "daily_budget_usd");
    if (l->max_refine_rate > 0)
        cJSON_AddNumberToObject(o, "max_refine_rate", l->max_refine_rate);
    else
        cJSON_AddNullToObject(o, "max_refine_rate");
    return o;
}

cJSON *tenant_table_describe(const struct tenant_table *t)
{
    cJSON *o = cJSON_CreateObject(), *by;
    if (!o)
        return NULL;
    cJSON_AddItemToObject(o, "default", tenant_limits_json(t ? &t->dflt : NULL));
    by = cJSON_AddObjectToObject(o, "by_id");
    if (!by) {
        cJSON_Delete(o);
        return NULL;
    }
    for (size_t i = 0; t && i < t->n; i++)
        cJSON_AddItemToObject(by, t->e[i].id, tenant_limits_json(&t->e[i].lim));
    return o;
}

/* ---- lookups ---- */

const struct tenant_limits *tenant_limits_of(const struct tenant_table *t, const char *id,
                                             const char **src)
{
    struct tenant_entry key, *e;
    if (src)
        *src = NULL;
    if (!t || !id || !*id)
        return NULL;
    key.id = (char *)id;
    e = t->n ? bsearch(&key, t->e, t->n, sizeof(*t->e), entry_cmp) : NULL;
    if (src)
        *src = e ? "by_id" : "default";
    return e ? &e->lim : &t->dflt;
}

int tenant_limits_any(const struct tenant_limits *l)
{
    return l && (l->jobs_per_minute > 0 || l->daily_budget_usd >= 0 || l->max_refine_rate > 0);
}

int tenant_id_valid(const char *id)
{
    size_t n = id ? strnlen(id, TENANT_ID_MAX + 1) : 0;
    return n >= 1 && n <= TENANT_ID_MAX && job_utf8_valid(id, n);
}

/* ---- Retry-After ---- */

long tenant_retry_midnight_s(int64_t now_ms)
{
    int64_t next = (now_ms / DAY_MS + 1) * DAY_MS;
    long s = (long)((next - now_ms + 999) / 1000);
    return s < 1 ? 1 : s;
}

long tenant_retry_window_s(int64_t oldest_ms, int64_t now_ms)
{
    int64_t left = oldest_ms + TENANT_WINDOW_MS - now_ms;
    long s = (long)((left + 999) / 1000);
    return s < 1 ? 1 : s;
}
