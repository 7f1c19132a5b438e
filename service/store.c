/* store.c - the Redis data model of briefd: Lua scripts for every multi-key write. */
#include "store.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bderr.h"
#include "clock.h"
#include "stats.h"

static const char *const prio_names[] = {"low", "normal", "high"};

void store_redis_opts(const struct bd_config *c, const char *name, struct rds_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->host = c->redis_host;
    o->port = c->redis_port;
    o->db = c->redis_db;
    o->password = c->redis_password;
    o->name = name;
}

void store_queue_key(const char *prefix, enum job_priority p, char *buf, size_t len)
{
    snprintf(buf, len, "%sq:%s", prefix, prio_names[p]);
}

void store_job_key(const char *prefix, const char *id, char *buf, size_t len)
{
    snprintf(buf, len, "%sjob:%s", prefix, id);
}

void store_events_key(const char *prefix, char *buf, size_t len)
{
    snprintf(buf, len, "%sevents", prefix);
}

/* KEYS: job, target stream, q:high, q:normal, q:low, idem key (or "")
 * ARGV: id, req, meta, created_ms, max_queue, tenant, idem value ("" = none), idem ttl */
static const char SUBMIT_LUA[] =
    "if ARGV[7] ~= '' then\n"
    "  local ex = redis.call('GET', KEYS[6])\n"
    "  if ex then return {'dup', ex} end\n"
    "end\n"
    "local depth = redis.call('XLEN', KEYS[3]) + redis.call('XLEN', KEYS[4])"
    " + redis.call('XLEN', KEYS[5])\n"
    "if depth >= tonumber(ARGV[5]) then return {'full', tostring(depth)} end\n"
    "redis.call('HSET', KEYS[1], 'req', ARGV[2], 'meta', ARGV[3], 'status', 'queued',"
    " 'created_ms', ARGV[4], 'attempts', '0', 'tenant', ARGV[6])\n"
    "redis.call('XADD', KEYS[2], '*', 'id', ARGV[1])\n"
    "if ARGV[7] ~= '' then redis.call('SET', KEYS[6], ARGV[7], 'EX', ARGV[8]) end\n"
    "return {'ok', tostring(depth + 1)}\n";

/* KEYS: job, stream, dead stream. ARGV: group, entry, max_attempts, now_ms, channel, id,
 * out JSON for an exhausted job, ttl, stats increments for an exhausted job.
 * Prefixed with STATS_APPLY_LUA. */
static const char BEGIN_LUA[] = STATS_APPLY_LUA
    "local st = redis.call('HGET', KEYS[1], 'status')\n"
    "if not st then\n"
    "  redis.call('XACK', KEYS[2], ARGV[1], ARGV[2]); redis.call('XDEL', KEYS[2], ARGV[2])\n"
    "  return {'gone'}\n"
    "end\n"
    "if st == 'succeeded' or st == 'failed' then\n"
    "  redis.call('XACK', KEYS[2], ARGV[1], ARGV[2]); redis.call('XDEL', KEYS[2], ARGV[2])\n"
    "  return {'done'}\n"
    "end\n"
    "local n = redis.call('HINCRBY', KEYS[1], 'attempts', 1)\n"
    "if n > tonumber(ARGV[3]) then\n"
    "  redis.call('HSET', KEYS[1], 'status', 'failed', 'out', ARGV[7], 'finished_ms', ARGV[4])\n"
    "  redis.call('HINCRBY', KEYS[1], 'attempts', -1)\n"
    "  redis.call('EXPIRE', KEYS[1], ARGV[8])\n"
    "  redis.call('XACK', KEYS[2], ARGV[1], ARGV[2]); redis.call('XDEL', KEYS[2], ARGV[2])\n"
    "  local dead = redis.call('XADD', KEYS[3], 'MAXLEN', '~', '100000', '*', 'id', ARGV[6],"
    " 'reason', 'max_attempts', 'stream', KEYS[2], 'at_ms', ARGV[4])\n"
    "  redis.call('HSET', KEYS[1], 'dead_entry', dead)\n"
    "  if ARGV[9] ~= '' then stats_apply(ARGV[9]) end\n"
    "  redis.call('PUBLISH', ARGV[5], ARGV[6] .. ' failed')\n"
    "  return {'exhausted', tostring(n - 1)}\n"
    "end\n"
    "redis.call('HSET', KEYS[1], 'status', 'drafting', 'started_ms', ARGV[4])\n"
    "redis.call('PUBLISH', ARGV[5], ARGV[6] .. ' drafting')\n"
    "local v = redis.call('HMGET', KEYS[1], 'req', 'created_ms')\n"
    "return {'ok', tostring(n), v[1] or '', v[2] or '0'}\n";

/* KEYS: job. ARGV: status, channel, id, attempt */
static const char TRANSITION_LUA[] =
    "local v = redis.call('HMGET', KEYS[1], 'status', 'attempts')\n"
    "if not v[1] or v[1] == 'succeeded' or v[1] == 'failed' or v[2] ~= ARGV[4] then"
    " return 0 end\n"
    "redis.call('HSET', KEYS[1], 'status', ARGV[1])\n"
    "redis.call('PUBLISH', ARGV[2], ARGV[3] .. ' ' .. ARGV[1])\n"
    "return 1\n";

/* KEYS: job, stream. ARGV: status, out, finished_ms, ttl, group, entry, channel, id,
 * stats increments JSON ('' = none), attempt (the finishing delivery).
 * Prefixed with STATS_APPLY_LUA. Refuses (0) a job that already ended, and a delivery that
 * is no longer the job's current one (another worker reclaimed it: that worker's entry is
 * left alone); acks the entry in the first case only. */
static const char FINISH_LUA[] = STATS_APPLY_LUA
    "local v = redis.call('HMGET', KEYS[1], 'status', 'attempts')\n"
    "local st = v[1]\n"
    "if not st or st == 'succeeded' or st == 'failed' then\n"
    "  redis.call('XACK', KEYS[2], ARGV[5], ARGV[6]); redis.call('XDEL', KEYS[2], ARGV[6])\n"
    "  return 0\n"
    "end\n"
    "if v[2] ~= ARGV[10] then return -1 end\n"
    "redis.call('XACK', KEYS[2], ARGV[5], ARGV[6]); redis.call('XDEL', KEYS[2], ARGV[6])\n"
    "redis.call('HSET', KEYS[1], 'status', ARGV[1], 'out', ARGV[2], 'finished_ms', ARGV[3])\n"
    "redis.call('EXPIRE', KEYS[1], ARGV[4])\n"
    "if ARGV[9] ~= '' then stats_apply(ARGV[9]) end\n"
    "redis.call('PUBLISH', ARGV[7], ARGV[8] .. ' ' .. ARGV[1])\n"
    "return 1\n";

struct op {
    void (*fn)(void);
    void *data;
};

static struct op *op_new(void (*fn)(void), void *data)
{
    struct op *o = malloc(sizeof(*o));
    if (o) {
        o->fn = fn;
        o->data = data;
    }
    return o;
}

static int send_or_free(int rc, struct op *o)
{
    if (rc != 0)
        free(o);
    return rc;
}

/* Copy a reply string into a NUL-terminated buffer. */
static void reply_copy(struct rds_reply *x, char *buf, size_t len)
{
    size_t n;
    const char *s = rds_reply_str(x, &n);
    if (!s || len == 0) {
        if (len)
            buf[0] = '\0';
        return;
    }
    if (n >= len)
        n = len - 1;
    memcpy(buf, s, n);
    buf[n] = '\0';
}

/* --- submit --- */

static void on_submit(struct rds *r, struct rds_reply *x, void *data)
{
    struct op *o = data;
    store_submit_cb cb = (store_submit_cb)o->fn;
    void *udata = o->data;
    char what[16], arg[200];
    (void)r;
    free(o);
    if (!x || rds_reply_type(x) != RDS_ARRAY || rds_reply_len(x) < 2) {
        cb(udata, x ? BD_EREDIS_REPLY : BD_EREDIS_DOWN, STORE_SUBMITTED, 0, NULL);
        return;
    }
    reply_copy(rds_reply_elem(x, 0), what, sizeof(what));
    reply_copy(rds_reply_elem(x, 1), arg, sizeof(arg));
    if (strcmp(what, "dup") == 0)
        cb(udata, 0, STORE_DUPLICATE, 0, arg);
    else if (strcmp(what, "full") == 0)
        cb(udata, 0, STORE_FULL, atol(arg), NULL);
    else
        cb(udata, 0, STORE_SUBMITTED, atol(arg), NULL);
}

int store_submit(struct rds *r, const struct store_submit *s, store_submit_cb cb, void *data)
{
    char kjob[200], kq[200], kh[200], kn[200], kl[200], maxq[24], created[24], ttl[24];
    struct op *o = op_new((void (*)(void))cb, data);
    if (!o)
        return BD_ENOMEM;
    store_job_key(s->prefix, s->id, kjob, sizeof(kjob));
    store_queue_key(s->prefix, s->priority, kq, sizeof(kq));
    store_queue_key(s->prefix, PRIO_HIGH, kh, sizeof(kh));
    store_queue_key(s->prefix, PRIO_NORMAL, kn, sizeof(kn));
    store_queue_key(s->prefix, PRIO_LOW, kl, sizeof(kl));
    snprintf(maxq, sizeof(maxq), "%ld", s->max_queue);
    snprintf(created, sizeof(created), "%lld", (long long)s->created_ms);
    snprintf(ttl, sizeof(ttl), "%ld", s->idem_ttl_s > 0 ? s->idem_ttl_s : 86400);
    const char *argv[] = {"EVAL", SUBMIT_LUA, "6", kjob, kq, kh, kn, kl,
                          s->idem_key ? s->idem_key : kjob, s->id, s->req_json, s->meta_json,
                          created, maxq, s->tenant ? s->tenant : "",
                          s->idem_key ? s->idem_value : "", ttl};
    return send_or_free(rds_cmdargv(r, on_submit, o, (int)(sizeof(argv) / sizeof(argv[0])),
                                    argv, NULL),
                        o);
}

/* --- get --- */

struct cJSON *store_job_object(const char *id, const char *status, const char *created_ms,
                               const char *attempts, const char *meta, const char *out,
                               const char *finished_ms)
{
    cJSON *job = cJSON_CreateObject(), *m, *o, *it;
    char ts[40];
    if (!job)
        return NULL;
    cJSON_AddStringToObject(job, "id", id);
    cJSON_AddStringToObject(job, "object", "brief.job");
    cJSON_AddStringToObject(job, "status", status ? status : "queued");
    clock_iso8601(created_ms ? atoll(created_ms) : 0, ts, sizeof(ts));
    cJSON_AddStringToObject(job, "created_at", ts);
    if (finished_ms && finished_ms[0]) {
        clock_iso8601(atoll(finished_ms), ts, sizeof(ts));
        cJSON_AddStringToObject(job, "finished_at", ts);
    } else {
        cJSON_AddNullToObject(job, "finished_at");
    }
    cJSON_AddNumberToObject(job, "attempts", attempts ? atoi(attempts) : 0);
    m = meta ? cJSON_Parse(meta) : NULL;
    if (m) {
        cJSON *child = m->child;
        while (child) {
            cJSON *next = child->next;
            cJSON_AddItemToObject(job, child->string, cJSON_DetachItemViaPointer(m, child));
            child = next;
        }
        cJSON_Delete(m);
    }
    o = out ? cJSON_Parse(out) : NULL;
    if (o) {
        it = o->child;
        while (it) {
            cJSON *next = it->next;
            cJSON_DeleteItemFromObjectCaseSensitive(job, it->string);
            cJSON_AddItemToObject(job, it->string, cJSON_DetachItemViaPointer(o, it));
            it = next;
        }
        cJSON_Delete(o);
    }
    if (!cJSON_GetObjectItemCaseSensitive(job, "result"))
        cJSON_AddNullToObject(job, "result");
    if (!cJSON_GetObjectItemCaseSensitive(job, "error"))
        cJSON_AddNullToObject(job, "error");
    return job;
}

struct get_op {
    store_job_cb cb;
    void *data;
    char id[JOB_ID_LEN + 1];
};

static char *elem_dup(struct rds_reply *x, size_t i)
{
    size_t n;
    const char *s = rds_reply_str(rds_reply_elem(x, i), &n);
    return s ? strndup(s, n) : NULL;
}

static void on_get(struct rds *r, struct rds_reply *x, void *data)
{
    struct get_op *g = data;
    char *f[6] = {0};
    (void)r;
    if (!x || rds_reply_type(x) != RDS_ARRAY || rds_reply_len(x) != 6) {
        g->cb(g->data, x ? BD_EREDIS_REPLY : BD_EREDIS_DOWN, NULL);
        free(g);
        return;
    }
    for (size_t i = 0; i < 6; i++)
        f[i] = elem_dup(x, i);
    if (!f[0]) {
        g->cb(g->data, BD_ENOTFOUND, NULL);
    } else {
        cJSON *job = store_job_object(g->id, f[0], f[1], f[2], f[3], f[4], f[5]);
        g->cb(g->data, job ? 0 : BD_ENOMEM, job);
    }
    for (size_t i = 0; i < 6; i++)
        free(f[i]);
    free(g);
}

int store_get(struct rds *r, const char *prefix, const char *id, store_job_cb cb, void *data)
{
    char key[200];
    int rc;
    struct get_op *g = calloc(1, sizeof(*g));
    if (!g)
        return BD_ENOMEM;
    g->cb = cb;
    g->data = data;
    snprintf(g->id, sizeof(g->id), "%s", id);
    store_job_key(prefix, id, key, sizeof(key));
    rc = rds_cmd(r, on_get, g, "HMGET %s status created_ms attempts meta out finished_ms", key);
    if (rc != 0)
        free(g);
    return rc;
}

/* --- begin --- */

static void on_begin(struct rds *r, struct rds_reply *x, void *data)
{
    struct op *o = data;
    store_begin_cb cb = (store_begin_cb)o->fn;
    void *udata = o->data;
    char what[16] = "", num[24] = "", created[24] = "";
    size_t req_len = 0;
    const char *req = NULL;
    (void)r;
    free(o);
    if (!x || rds_reply_type(x) != RDS_ARRAY || rds_reply_len(x) < 1) {
        cb(udata, x ? BD_EREDIS_REPLY : BD_EREDIS_DOWN, "", 0, NULL, 0, 0);
        return;
    }
    reply_copy(rds_reply_elem(x, 0), what, sizeof(what));
    if (rds_reply_len(x) >= 2)
        reply_copy(rds_reply_elem(x, 1), num, sizeof(num));
    if (rds_reply_len(x) >= 4) {
        req = rds_reply_str(rds_reply_elem(x, 2), &req_len);
        reply_copy(rds_reply_elem(x, 3), created, sizeof(created));
    }
    cb(udata, 0, what, atoi(num), req, req_len, atoll(created));
}

int store_begin(struct rds *r, const char *prefix, const char *stream, const char *entry,
                const char *id, int max_attempts, long ttl_s, const char *stats_json,
                store_begin_cb cb, void *data)
{
    char kjob[200], kdead[200], chan[200], maxa[16], now[24], ttl[24], out[400];
    struct op *o = op_new((void (*)(void))cb, data);
    if (!o)
        return BD_ENOMEM;
    store_job_key(prefix, id, kjob, sizeof(kjob));
    snprintf(kdead, sizeof(kdead), "%sdead", prefix);
    store_events_key(prefix, chan, sizeof(chan));
    snprintf(maxa, sizeof(maxa), "%d", max_attempts);
    snprintf(now, sizeof(now), "%lld", (long long)clock_wall_ms());
    snprintf(ttl, sizeof(ttl), "%ld", ttl_s);
    snprintf(out, sizeof(out),
             "{\"error\":{\"code\":\"max_attempts_exceeded\",\"message\":\"the job was "
             "delivered %d times without finishing (workers.max_attempts); moved to the "
             "dead-letter stream\"}}",
             max_attempts);
    const char *argv[] = {"EVAL", BEGIN_LUA, "3", kjob, stream, kdead,
                          STORE_GROUP, entry, maxa, now, chan, id, out, ttl,
                          stats_json ? stats_json : ""};
    return send_or_free(rds_cmdargv(r, on_begin, o, (int)(sizeof(argv) / sizeof(argv[0])),
                                    argv, NULL),
                        o);
}

/* --- transition / finish --- */

/* The integer reply of a script that reports 1 for "applied": the status to report. */
static int flag_status(struct rds_reply *x)
{
    if (!x)
        return BD_EREDIS_DOWN;
    return rds_reply_type(x) == RDS_INTEGER ? 0 : BD_EREDIS_REPLY;
}

static void on_flag(struct rds *r, struct rds_reply *x, void *data)
{
    struct op *o = data;
    store_flag_cb cb = (store_flag_cb)o->fn;
    void *udata = o->data;
    int status = flag_status(x);
    (void)r;
    free(o);
    if (cb)
        cb(udata, status, status == 0 && rds_reply_int(x) == 1);
}

int store_transition(struct rds *r, const char *prefix, const char *id, const char *status,
                     int attempt, store_flag_cb cb, void *data)
{
    char kjob[200], chan[200], att[16];
    struct op *o = op_new((void (*)(void))cb, data);
    if (!o)
        return BD_ENOMEM;
    store_job_key(prefix, id, kjob, sizeof(kjob));
    store_events_key(prefix, chan, sizeof(chan));
    snprintf(att, sizeof(att), "%d", attempt);
    const char *argv[] = {"EVAL", TRANSITION_LUA, "1", kjob, status, chan, id, att};
    return send_or_free(rds_cmdargv(r, on_flag, o, 8, argv, NULL), o);
}

int store_finish(struct rds *r, const char *prefix, const char *stream, const char *entry,
                 const char *id, int attempt, const char *status, const char *out_json,
                 int64_t finished_ms, long ttl_s, const char *stats_json, store_flag_cb cb,
                 void *data)
{
    char kjob[200], chan[200], fin[24], ttl[24], att[16];
    struct op *o = op_new((void (*)(void))cb, data);
    if (!o)
        return BD_ENOMEM;
    store_job_key(prefix, id, kjob, sizeof(kjob));
    store_events_key(prefix, chan, sizeof(chan));
    snprintf(fin, sizeof(fin), "%lld", (long long)finished_ms);
    snprintf(ttl, sizeof(ttl), "%ld", ttl_s);
    snprintf(att, sizeof(att), "%d", attempt);
    const char *argv[] = {"EVAL", FINISH_LUA, "2", kjob, stream,
                          status, out_json, fin, ttl, STORE_GROUP, entry, chan, id,
                          stats_json ? stats_json : "", att};
    return send_or_free(rds_cmdargv(r, on_flag, o, (int)(sizeof(argv) / sizeof(argv[0])), argv,
                                    NULL),
                        o);
}

/* KEYS: job, stream. ARGV: group, entry, id, channel */
static const char HANDBACK_LUA[] =
    "local st = redis.call('HGET', KEYS[1], 'status')\n"
    "redis.call('XACK', KEYS[2], ARGV[1], ARGV[2]); redis.call('XDEL', KEYS[2], ARGV[2])\n"
    "if not st or st == 'succeeded' or st == 'failed' then return 0 end\n"
    "redis.call('HSET', KEYS[1], 'status', 'queued')\n"
    "redis.call('HINCRBY', KEYS[1], 'attempts', -1)\n"
    "redis.call('XADD', KEYS[2], '*', 'id', ARGV[3])\n"
    "redis.call('PUBLISH', ARGV[4], ARGV[3] .. ' queued')\n"
    "return 1\n";

int store_handback(struct rds *r, const char *prefix, const char *stream, const char *entry,
                   const char *id, store_flag_cb cb, void *data)
{
    char kjob[200], chan[200];
    struct op *o = op_new((void (*)(void))cb, data);
    if (!o)
        return BD_ENOMEM;
    store_job_key(prefix, id, kjob, sizeof(kjob));
    store_events_key(prefix, chan, sizeof(chan));
    const char *argv[] = {"EVAL", HANDBACK_LUA, "2", kjob, stream, STORE_GROUP, entry, id, chan};
    return send_or_free(rds_cmdargv(r, on_flag, o, 9, argv, NULL), o);
}

/* --- dead letters --- */

struct json_op {
    store_json_cb cb;
    void *data;
};

static void on_dead_list(struct rds *r, struct rds_reply *x, void *data)
{
    struct json_op *o = data;
    cJSON *arr;
    (void)r;
    if (!x || rds_reply_type(x) != RDS_ARRAY) {
        o->cb(o->data, x ? BD_EREDIS_REPLY : BD_EREDIS_DOWN, NULL);
        free(o);
        return;
    }
    arr = cJSON_CreateArray();
    for (size_t i = 0; i < rds_reply_len(x); i++) {
        struct rds_reply *e = rds_reply_elem(x, i), *f = rds_reply_elem(e, 1);
        cJSON *item = cJSON_CreateObject();
        char *eid = elem_dup(e, 0);
        cJSON_AddStringToObject(item, "entry", eid ? eid : "");
        free(eid);
        for (size_t k = 0; k + 1 < rds_reply_len(f); k += 2) {
            char *name = elem_dup(f, k), *val = elem_dup(f, k + 1);
            if (name && val) {
                if (strcmp(name, "at_ms") == 0) {
                    char ts[40];
                    clock_iso8601(atoll(val), ts, sizeof(ts));
                    cJSON_AddStringToObject(item, "dead_at", ts);
                } else if (strcmp(name, "id") == 0 || strcmp(name, "reason") == 0) {
                    cJSON_AddStringToObject(item, name, val);
                }
            }
            free(name);
            free(val);
        }
        cJSON_AddItemToArray(arr, item);
    }
    o->cb(o->data, 0, arr);
    free(o);
}

int store_dead_list(struct rds *r, const char *prefix, long count, store_json_cb cb, void *data)
{
    char key[200], n[24];
    struct json_op *o = malloc(sizeof(*o));
    int rc;
    if (!o)
        return BD_ENOMEM;
    o->cb = cb;
    o->data = data;
    snprintf(key, sizeof(key), "%sdead", prefix);
    snprintf(n, sizeof(n), "%ld", count);
    rc = rds_cmd(r, on_dead_list, o, "XREVRANGE %s + - COUNT %s", key, n);
    if (rc != 0)
        free(o);
    return rc;
}

/* KEYS: job, dead stream. ARGV: prefix, channel, id, now_ms */
static const char REQUEUE_LUA[] =
    "local v = redis.call('HMGET', KEYS[1], 'status', 'dead_entry', 'meta')\n"
    "if not v[1] then return 0 end\n"
    "if v[1] ~= 'failed' or not v[2] then return -1 end\n"
    "local prio = 'normal'\n"
    "local ok, m = pcall(cjson.decode, v[3] or '{}')\n"
    "if ok and type(m) == 'table' and (m.priority == 'high' or m.priority == 'low') then"
    " prio = m.priority end\n"
    "redis.call('XDEL', KEYS[2], v[2])\n"
    "redis.call('HDEL', KEYS[1], 'dead_entry', 'out', 'finished_ms', 'started_ms')\n"
    "redis.call('HSET', KEYS[1], 'status', 'queued', 'attempts', '0', 'requeued_ms', ARGV[4])\n"
    "redis.call('PERSIST', KEYS[1])\n"
    "redis.call('XADD', ARGV[1] .. 'q:' .. prio, '*', 'id', ARGV[3])\n"
    "redis.call('PUBLISH', ARGV[2], ARGV[3] .. ' queued')\n"
    "return 1\n";

static void on_requeue(struct rds *r, struct rds_reply *x, void *data)
{
    struct op *o = data;
    store_flag_cb cb = (store_flag_cb)o->fn;
    void *udata = o->data;
    int status = flag_status(x);
    (void)r;
    free(o);
    if (status == 0 && rds_reply_int(x) == 0)
        status = BD_ENOTFOUND; /* the script's 0: no such job */
    cb(udata, status, status == 0 && rds_reply_int(x) == 1);
}

int store_requeue(struct rds *r, const char *prefix, const char *id, store_flag_cb cb,
                  void *data)
{
    char kjob[200], kdead[200], chan[200], now[24];
    struct op *o = op_new((void (*)(void))cb, data);
    if (!o)
        return BD_ENOMEM;
    store_job_key(prefix, id, kjob, sizeof(kjob));
    snprintf(kdead, sizeof(kdead), "%sdead", prefix);
    store_events_key(prefix, chan, sizeof(chan));
    snprintf(now, sizeof(now), "%lld", (long long)clock_wall_ms());
    const char *argv[] = {"EVAL", REQUEUE_LUA, "2", kjob, kdead, prefix, chan, id, now};
    return send_or_free(rds_cmdargv(r, on_requeue, o, 9, argv, NULL), o);
}

/* --- depth, groups --- */

static void on_depth(struct rds *r, struct rds_reply *x, void *data)
{
    struct op *o = data;
    store_depth_cb cb = (store_depth_cb)o->fn;
    void *udata = o->data;
    long depth = 0;
    (void)r;
    free(o);
    if (!x || rds_reply_type(x) != RDS_ARRAY) {
        cb(udata, x ? BD_EREDIS_REPLY : BD_EREDIS_DOWN, 0);
        return;
    }
    /* MULTI/EXEC-free: the reply of an EVAL summing three XLENs */
    depth = (long)rds_reply_num(rds_reply_elem(x, 0), 0);
    cb(udata, 0, depth);
}

int store_depth(struct rds *r, const char *prefix, store_depth_cb cb, void *data)
{
    char kh[200], kn[200], kl[200];
    static const char LUA[] = "return {redis.call('XLEN', KEYS[1]) + redis.call('XLEN', KEYS[2])"
                              " + redis.call('XLEN', KEYS[3])}";
    struct op *o = op_new((void (*)(void))cb, data);
    if (!o)
        return BD_ENOMEM;
    store_queue_key(prefix, PRIO_HIGH, kh, sizeof(kh));
    store_queue_key(prefix, PRIO_NORMAL, kn, sizeof(kn));
    store_queue_key(prefix, PRIO_LOW, kl, sizeof(kl));
    const char *argv[] = {"EVAL", LUA, "3", kh, kn, kl};
    return send_or_free(rds_cmdargv(r, on_depth, o, 6, argv, NULL), o);
}

static void on_group(struct rds *r, struct rds_reply *x, void *data)
{
    size_t n;
    const char *s;
    (void)r;
    (void)data;
    if (x && rds_reply_type(x) == RDS_ERROR) {
        s = rds_reply_str(x, &n);
        if (!s || strncmp(s, "BUSYGROUP", 9) != 0)
            fprintf(stderr, "briefd: XGROUP CREATE failed: %.*s\n", (int)n, s ? s : "");
    }
}

int store_ensure_groups(struct rds *r, const char *prefix)
{
    for (int p = PRIO_LOW; p <= PRIO_HIGH; p++) {
        char k[200];
        int rc;
        store_queue_key(prefix, (enum job_priority)p, k, sizeof(k));
        rc = rds_cmd(r, on_group, NULL, "XGROUP CREATE %s %s 0 MKSTREAM", k, STORE_GROUP);
        if (rc != 0)
            return rc;
    }
    return 0;
}
