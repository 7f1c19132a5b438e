/* store.c - briefd's Redis schema: connections, keys, Lua scripts, reply shapes. */
#include "store.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bderr.h"
#include "clock.h"
#include "log.h"
#include "rds.h"
#include "stats.h"

#define STORE_GROUP "briefd-workers"
#define KEY_MAX 200
#define MINUTE_KEEP_S (7L * 3600L)   /* minute buckets serve windows up to 6 h */
#define DAY_KEEP_S (3L * 86400L)
#define SCAN_MAX_INFLIGHT 64         /* HMGETs in flight while scanning finished jobs */

static const char *const prio_names[] = {"low", "normal", "high"};

struct store {
    uv_loop_t *loop;
    struct rds *cmd;            /* commands */
    struct rds *sub;            /* events subscription (store_watch), or NULL */
    struct rds *blk;            /* workers' blocking reads (store_read), or NULL */
    struct rds_opts ropts;      /* borrowed strings point into the fields below */
    char *host, *password;
    char prefix[72];
    char consumer[128];
    char claim_cursor[3][48];
    store_state_cb state_cb;
    void *state_data;
    store_event_cb event_cb;
    void *event_data;
    int closing;
    int pending_closes;
    void (*close_cb)(void *);
    void *close_data;
    void (*read_stop_cb)(void *);
    void *read_stop_data;
    void (*read_cb)(void *);    /* the blocking connection came up */
    void *read_data;
};

/* --- keys ------------------------------------------------------------------------------ */

static void key_queue(const struct store *s, enum job_priority p, char *buf)
{
    snprintf(buf, KEY_MAX, "%sq:%s", s->prefix, prio_names[p]);
}

static void key_job(const struct store *s, const char *id, char *buf)
{
    snprintf(buf, KEY_MAX, "%sjob:%s", s->prefix, id);
}

static void key_events(const struct store *s, char *buf)
{
    snprintf(buf, KEY_MAX, "%sevents", s->prefix);
}

static void key_dead(const struct store *s, char *buf)
{
    snprintf(buf, KEY_MAX, "%sdead", s->prefix);
}

static void key_totals(const struct store *s, char *buf)
{
    snprintf(buf, KEY_MAX, "%sstats:total", s->prefix);
}

static void key_day(const struct store *s, int64_t at_ms, char *buf)
{
    char day[16];
    clock_utc_day(at_ms, day, sizeof(day));
    snprintf(buf, KEY_MAX, "%sstats:day:%s", s->prefix, day);
}

/* --- replies and callbacks ------------------------------------------------------------- */

/* A callback and its data, carried through one Redis command. */
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

static int send_or_free(int rc, void *o)
{
    if (rc != 0)
        free(o);
    return rc;
}

/* The status a reply stands for: 0, BD_EREDIS_DOWN (no reply: the connection dropped) or
 * BD_EREDIS_REPLY (an error reply or another type than want). */
static int reply_status(const struct rds_reply *x, enum rds_type want)
{
    if (!x)
        return BD_EREDIS_DOWN;
    return rds_reply_type(x) == want ? 0 : BD_EREDIS_REPLY;
}

/* Copy a reply string into a NUL-terminated buffer ("" when it is not a string). */
static void reply_copy(const struct rds_reply *x, char *buf, size_t len)
{
    size_t n;
    const char *s = rds_reply_str(x, &n);
    if (!s) {
        buf[0] = '\0';
        return;
    }
    if (n >= len)
        n = len - 1;
    memcpy(buf, s, n);
    buf[n] = '\0';
}

static char *elem_dup(const struct rds_reply *x, size_t i)
{
    size_t n;
    const char *s = rds_reply_str(rds_reply_elem(x, i), &n);
    return s ? strndup(s, n) : NULL;
}

/* A flat [field, value, ...] reply as a cJSON object of numbers. */
static cJSON *flat_map(const struct rds_reply *x)
{
    cJSON *m = cJSON_CreateObject();
    for (size_t k = 0; m && k + 1 < rds_reply_len(x); k += 2) {
        char fb[200], vb[48];
        reply_copy(rds_reply_elem(x, k), fb, sizeof(fb));
        reply_copy(rds_reply_elem(x, k + 1), vb, sizeof(vb));
        if (fb[0] && vb[0])
            cJSON_AddNumberToObject(m, fb, strtod(vb, NULL));
    }
    return m;
}

static int eval(struct rds *r, rds_cb cb, void *data, const char *script, int nkeys,
                const char *const *args, int nargs)
{
    const char *argv[32];
    char nk[8];
    if (nargs + 3 > (int)(sizeof(argv) / sizeof(argv[0])))
        return BD_EINVAL;
    snprintf(nk, sizeof(nk), "%d", nkeys);
    argv[0] = "EVAL";
    argv[1] = script;
    argv[2] = nk;
    for (int i = 0; i < nargs; i++)
        argv[i + 3] = args[i];
    return rds_cmdargv(r, cb, data, nargs + 3, argv, NULL);
}

/* --- scripts ---------------------------------------------------------------------------- */

/* Lua defining stats_apply(json): the scripts that end jobs begin with it and call it once
 * the result is stored, so a result and its statistics are written together. The JSON
 * (stats_arg) names the buckets: keys [[key, ttl]...], groups g [{idx, base, v, ttl}...],
 * increments i {field: n}, the day hash and its TTL, max_groups. Integers only. */
#define STATS_APPLY_LUA \
    "local function stats_add(key, ttl, inc)\n" \
    "  for f, n in pairs(inc) do redis.call('HINCRBY', key, f, n) end\n" \
    "  if ttl > 0 then redis.call('EXPIRE', key, ttl) end\n" \
    "end\n" \
    "local function stats_apply(js)\n" \
    "  local s = cjson.decode(js)\n" \
    "  for _, k in ipairs(s.keys) do stats_add(k[1], k[2], s.i) end\n" \
    "  for _, g in ipairs(s.g) do\n" \
    "    local v = g.v\n" \
    "    if redis.call('SISMEMBER', g.idx, v) == 0 and" \
    " redis.call('SCARD', g.idx) >= s.max_groups then v = '(other)' end\n" \
    "    redis.call('SADD', g.idx, v)\n" \
    "    redis.call('EXPIRE', g.idx, g.ttl)\n" \
    "    stats_add(g.base .. v, g.ttl, s.i)\n" \
    "  end\n" \
    "  local day = {refined = s.i.refined or 0, cost_refine_p = s.i.cost_refine_p or 0}\n" \
    "  stats_add(s.day, s.day_ttl, day)\n" \
    "end\n"

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

/* --- connections ----------------------------------------------------------------------- */

static void on_group(struct rds *r, struct rds_reply *x, void *data)
{
    char msg[200];
    (void)r;
    (void)data;
    if (x && rds_reply_type(x) == RDS_ERROR) {
        reply_copy(x, msg, sizeof(msg));
        if (strncmp(msg, "BUSYGROUP", 9) != 0)
            log_error("redis: XGROUP CREATE failed: %s", msg);
    }
}

/* Create the streams' consumer group if missing (MKSTREAM). */
static void ensure_groups(struct store *s, struct rds *r)
{
    for (int p = PRIO_LOW; p <= PRIO_HIGH; p++) {
        char k[KEY_MAX];
        key_queue(s, (enum job_priority)p, k);
        rds_cmd(r, on_group, NULL, "XGROUP CREATE %s %s 0 MKSTREAM", k, STORE_GROUP);
    }
}

static void on_cmd_state(struct rds *r, enum rds_state st, void *data)
{
    struct store *s = data;
    if (st == RDS_CONNECTED && s->consumer[0])
        ensure_groups(s, r);
    if (s->state_cb && st != RDS_CLOSED)
        s->state_cb(s->state_data, st == RDS_CONNECTED);
}

int store_open(uv_loop_t *loop, const struct store_opts *o, store_state_cb cb, void *data,
               struct store **out)
{
    struct store *s = calloc(1, sizeof(*s));
    int rc = BD_ENOMEM;
    if (!s)
        return BD_ENOMEM;
    s->loop = loop;
    s->state_cb = cb;
    s->state_data = data;
    snprintf(s->prefix, sizeof(s->prefix), "%s", o->prefix);
    snprintf(s->consumer, sizeof(s->consumer), "%s", o->consumer ? o->consumer : "");
    s->host = strdup(o->host);
    s->password = o->password ? strdup(o->password) : NULL;
    if (!s->host || (o->password && !s->password))
        goto fail;
    s->ropts.host = s->host;
    s->ropts.port = o->port;
    s->ropts.db = o->db;
    s->ropts.password = s->password;
    s->ropts.name = "cmd";
    rc = rds_open(loop, &s->ropts, on_cmd_state, s, &s->cmd);
    if (rc != 0)
        goto fail;
    *out = s;
    return 0;
fail:
    free(s->host);
    free(s->password);
    free(s);
    return rc;
}

int store_ready(const struct store *s)
{
    return s->cmd && rds_state(s->cmd) == RDS_CONNECTED;
}

static void free_store(struct store *s)
{
    void (*cb)(void *) = s->close_cb;
    void *data = s->close_data;
    free(s->host);
    if (s->password) {
        explicit_bzero(s->password, strlen(s->password));
        free(s->password);
    }
    free(s);
    if (cb)
        cb(data);
}

static void on_conn_closed(void *data)
{
    struct store *s = data;
    if (--s->pending_closes == 0)
        free_store(s);
}

void store_close(struct store *s, void (*cb)(void *data), void *data)
{
    struct rds *conns[3] = {s->cmd, s->sub, s->blk};
    s->closing = 1;
    s->close_cb = cb;
    s->close_data = data;
    s->pending_closes = 1;
    for (int i = 0; i < 3; i++) {
        if (conns[i]) {
            s->pending_closes++;
            rds_close(conns[i], on_conn_closed, s);
        }
    }
    s->cmd = s->sub = s->blk = NULL;
    on_conn_closed(s);
}

/* --- events ------------------------------------------------------------------------------ */

static void on_event(struct rds *r, struct rds_reply *x, void *data)
{
    struct store *s = data;
    char buf[96], *sp;
    (void)r;
    if (!x || rds_reply_len(x) != 3)
        return;
    if (rds_reply_is(rds_reply_elem(x, 0), "subscribe")) {
        s->event_cb(s->event_data, NULL, NULL);
        return;
    }
    if (!rds_reply_is(rds_reply_elem(x, 0), "message"))
        return;
    reply_copy(rds_reply_elem(x, 2), buf, sizeof(buf));
    sp = strchr(buf, ' ');
    if (!sp)
        return;
    *sp = '\0';
    s->event_cb(s->event_data, buf, sp + 1);
}

static void on_sub_state(struct rds *r, enum rds_state st, void *data)
{
    struct store *s = data;
    char chan[KEY_MAX];
    if (st != RDS_CONNECTED)
        return;
    key_events(s, chan);
    rds_subscribe(r, chan, on_event, s);
}

int store_watch(struct store *s, store_event_cb cb, void *data)
{
    struct rds_opts o = s->ropts;
    s->event_cb = cb;
    s->event_data = data;
    o.name = "sub";
    return rds_open(s->loop, &o, on_sub_state, s, &s->sub);
}

/* --- submit --------------------------------------------------------------------------- */

static void on_submit(struct rds *r, struct rds_reply *x, void *data)
{
    struct op *o = data;
    store_submit_cb cb = (store_submit_cb)o->fn;
    void *udata = o->data;
    char what[16], arg[200];
    (void)r;
    free(o);
    if (reply_status(x, RDS_ARRAY) != 0 || rds_reply_len(x) < 2) {
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

int store_submit(struct store *s, const struct store_submit *sub, store_submit_cb cb,
                 void *data)
{
    char kjob[KEY_MAX], kq[KEY_MAX], kh[KEY_MAX], kn[KEY_MAX], kl[KEY_MAX], kidem[KEY_MAX + 200];
    char maxq[24], created[24], ttl[24];
    int idem = sub->idem_scope && sub->idem_key;
    struct op *o = op_new((void (*)(void))cb, data);
    if (!o)
        return BD_ENOMEM;
    key_job(s, sub->id, kjob);
    key_queue(s, sub->priority, kq);
    key_queue(s, PRIO_HIGH, kh);
    key_queue(s, PRIO_NORMAL, kn);
    key_queue(s, PRIO_LOW, kl);
    if (idem)
        snprintf(kidem, sizeof(kidem), "%sidem:%s:%s", s->prefix, sub->idem_scope,
                 sub->idem_key);
    snprintf(maxq, sizeof(maxq), "%ld", sub->max_queue);
    snprintf(created, sizeof(created), "%lld", (long long)sub->created_ms);
    snprintf(ttl, sizeof(ttl), "%ld", sub->idem_ttl_s > 0 ? sub->idem_ttl_s : 86400);
    const char *args[] = {kjob, kq, kh, kn, kl, idem ? kidem : kjob,
                          sub->id, sub->req_json, sub->meta_json, created, maxq,
                          sub->tenant ? sub->tenant : "", idem ? sub->idem_value : "", ttl};
    return send_or_free(eval(s->cmd, on_submit, o, SUBMIT_LUA, 6, args, 14), o);
}

/* --- get ------------------------------------------------------------------------------ */

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

static void on_get(struct rds *r, struct rds_reply *x, void *data)
{
    struct get_op *g = data;
    char *f[6] = {0};
    (void)r;
    if (reply_status(x, RDS_ARRAY) != 0 || rds_reply_len(x) != 6) {
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

int store_get(struct store *s, const char *id, store_job_cb cb, void *data)
{
    char key[KEY_MAX];
    struct get_op *g = calloc(1, sizeof(*g));
    if (!g)
        return BD_ENOMEM;
    g->cb = cb;
    g->data = data;
    snprintf(g->id, sizeof(g->id), "%s", id);
    key_job(s, id, key);
    return send_or_free(rds_cmd(s->cmd, on_get, g,
                                "HMGET %s status created_ms attempts meta out finished_ms", key),
                        g);
}

/* --- reading the queue -------------------------------------------------------------------- */

struct read_op {
    struct store *s;
    store_entries_cb cb;
    void *data;
    int prio;                   /* the stream claimed from (reclaim), or -1 */
};

/* entries: [[entry_id, [field, value, ...]], ...] of stream p, appended to out. */
static size_t take_entries(const struct rds_reply *entries, enum job_priority p,
                           struct store_entry *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < rds_reply_len(entries) && n < cap; i++) {
        const struct rds_reply *e = rds_reply_elem(entries, i);
        const struct rds_reply *fields = rds_reply_elem(e, 1);
        struct store_entry *se = &out[n];
        memset(se, 0, sizeof(*se));
        se->prio = p;
        reply_copy(rds_reply_elem(e, 0), se->entry, sizeof(se->entry));
        if (!se->entry[0])
            continue;
        for (size_t k = 0; k + 1 < rds_reply_len(fields); k += 2)
            if (rds_reply_is(rds_reply_elem(fields, k), "id"))
                reply_copy(rds_reply_elem(fields, k + 1), se->id, sizeof(se->id));
        n++;
    }
    return n;
}

static int prio_of_stream(const struct store *s, const struct rds_reply *name)
{
    for (int p = PRIO_LOW; p <= PRIO_HIGH; p++) {
        char k[KEY_MAX];
        key_queue(s, (enum job_priority)p, k);
        if (rds_reply_is(name, k))
            return p;
    }
    return -1;
}

/* Entries of an XREADGROUP reply ([[stream, entries], ...] or nil) or of an XAUTOCLAIM
 * reply ([cursor, entries, ...]). Returns how many were taken into out. */
static size_t entries_of(struct read_op *op, const struct rds_reply *x, struct store_entry *out,
                         size_t cap)
{
    size_t n = 0;
    if (op->prio >= 0)
        return take_entries(rds_reply_elem(x, 1), (enum job_priority)op->prio, out, cap);
    for (size_t i = 0; i < rds_reply_len(x); i++) {
        const struct rds_reply *st = rds_reply_elem(x, i);
        int p = prio_of_stream(op->s, rds_reply_elem(st, 0));
        if (p >= 0)
            n += take_entries(rds_reply_elem(st, 1), (enum job_priority)p, out + n, cap - n);
    }
    return n;
}

static size_t count_entries(const struct rds_reply *x, int claim)
{
    size_t n = 0;
    if (claim)
        return rds_reply_len(rds_reply_elem(x, 1));
    for (size_t i = 0; i < rds_reply_len(x); i++)
        n += rds_reply_len(rds_reply_elem(rds_reply_elem(x, i), 1));
    return n;
}

static void deliver_entries(struct read_op *op, const struct rds_reply *x)
{
    size_t cap = count_entries(x, op->prio >= 0);
    struct store_entry *es = cap ? calloc(cap, sizeof(*es)) : NULL;
    size_t n = es ? entries_of(op, x, es, cap) : 0;
    op->cb(op->data, cap && !es ? BD_ENOMEM : 0, es, n);
    free(es);
}

static void on_read(struct rds *r, struct rds_reply *x, void *data)
{
    struct read_op *op = data;
    (void)r;
    if (x && rds_reply_type(x) == RDS_ERROR) {
        char msg[200];
        reply_copy(x, msg, sizeof(msg));
        log_error("redis: XREADGROUP failed: %s", msg);
        if (strncmp(msg, "NOGROUP", 7) == 0 && op->s->cmd)
            ensure_groups(op->s, op->s->cmd);
    }
    if (!x || rds_reply_type(x) == RDS_ERROR)
        op->cb(op->data, x ? BD_EREDIS_REPLY : BD_EREDIS_DOWN, NULL, 0);
    else
        deliver_entries(op, x);
    free(op);
}

static void on_blk_state(struct rds *r, enum rds_state st, void *data)
{
    struct store *s = data;
    if (st != RDS_CONNECTED)
        return;
    ensure_groups(s, r);
    if (s->read_cb)
        s->read_cb(s->read_data);
}

int store_read_open(struct store *s, void (*cb)(void *data), void *data)
{
    struct rds_opts o = s->ropts;
    if (s->blk)
        return 0;
    s->read_cb = cb;
    s->read_data = data;
    o.name = "worker";
    return rds_open(s->loop, &o, on_blk_state, s, &s->blk);
}

int store_read_ready(const struct store *s)
{
    return s->blk && rds_state(s->blk) == RDS_CONNECTED;
}

static struct read_op *read_op_new(struct store *s, store_entries_cb cb, void *data, int prio)
{
    struct read_op *op = malloc(sizeof(*op));
    if (op) {
        op->s = s;
        op->cb = cb;
        op->data = data;
        op->prio = prio;
    }
    return op;
}

int store_read(struct store *s, int prio, unsigned count, int block_ms, store_entries_cb cb,
               void *data)
{
    struct read_op *op;
    char n[16], blk[16], qh[KEY_MAX], qn[KEY_MAX], ql[KEY_MAX];
    if (!store_read_ready(s))
        return BD_EREDIS_DOWN;
    op = read_op_new(s, cb, data, -1);
    if (!op)
        return BD_ENOMEM;
    snprintf(n, sizeof(n), "%u", count);
    snprintf(blk, sizeof(blk), "%d", block_ms);
    if (prio >= 0) {
        key_queue(s, (enum job_priority)prio, qh);
        return send_or_free(rds_cmd(s->blk, on_read, op,
                                    "XREADGROUP GROUP %s %s COUNT %s STREAMS %s >", STORE_GROUP,
                                    s->consumer, n, qh),
                            op);
    }
    key_queue(s, PRIO_HIGH, qh);
    key_queue(s, PRIO_NORMAL, qn);
    key_queue(s, PRIO_LOW, ql);
    return send_or_free(rds_cmd(s->blk, on_read, op,
                                "XREADGROUP GROUP %s %s COUNT %s BLOCK %s STREAMS %s %s %s > > >",
                                STORE_GROUP, s->consumer, n, blk, qh, qn, ql),
                        op);
}

static void on_blk_closed(void *data)
{
    struct store *s = data;
    void (*cb)(void *) = s->read_stop_cb;
    s->read_stop_cb = NULL;
    if (cb)
        cb(s->read_stop_data);
}

void store_read_stop(struct store *s, void (*cb)(void *data), void *data)
{
    struct rds *blk = s->blk;
    s->blk = NULL;
    s->read_cb = NULL;
    s->read_stop_cb = cb;
    s->read_stop_data = data;
    if (blk)
        rds_close(blk, on_blk_closed, s);
    else
        on_blk_closed(s);
}

static void on_claim(struct rds *r, struct rds_reply *x, void *data)
{
    struct read_op *op = data;
    (void)r;
    if (reply_status(x, RDS_ARRAY) != 0 || rds_reply_len(x) < 2) {
        op->cb(op->data, x ? BD_EREDIS_REPLY : BD_EREDIS_DOWN, NULL, 0);
    } else {
        char *cur = op->s->claim_cursor[op->prio];
        reply_copy(rds_reply_elem(x, 0), cur, sizeof(op->s->claim_cursor[0]));
        deliver_entries(op, x);
    }
    free(op);
}

int store_reclaim(struct store *s, enum job_priority p, int idle_ms, unsigned count,
                  store_entries_cb cb, void *data)
{
    char q[KEY_MAX], n[16], idle[16];
    const char *cursor = s->claim_cursor[p][0] ? s->claim_cursor[p] : "0-0";
    struct read_op *op = read_op_new(s, cb, data, (int)p);
    if (!op)
        return BD_ENOMEM;
    key_queue(s, p, q);
    snprintf(n, sizeof(n), "%u", count);
    snprintf(idle, sizeof(idle), "%d", idle_ms);
    return send_or_free(rds_cmd(s->cmd, on_claim, op, "XAUTOCLAIM %s %s %s %s %s COUNT %s", q,
                                STORE_GROUP, s->consumer, idle, cursor, n),
                        op);
}

void store_discard(struct store *s, const struct store_entry *e)
{
    char q[KEY_MAX];
    key_queue(s, e->prio, q);
    rds_cmd(s->cmd, NULL, NULL, "XACK %s %s %s", q, STORE_GROUP, e->entry);
}

/* --- statistics arguments ------------------------------------------------------------------ */

static cJSON *key_ttl(const char *key, long ttl)
{
    cJSON *a = cJSON_CreateArray();
    cJSON_AddItemToArray(a, cJSON_CreateString(key));
    cJSON_AddItemToArray(a, cJSON_CreateNumber((double)ttl));
    return a;
}

static void add_group(cJSON *g, const char *bucket, const char *dim, const char *value, long ttl)
{
    char idx[KEY_MAX + 32], base[KEY_MAX + 32];
    cJSON *o;
    if (!value[0])
        return;
    snprintf(idx, sizeof(idx), "%s:idx:%s", bucket, dim);
    snprintf(base, sizeof(base), "%s:%s:", bucket, dim);
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "idx", idx);
    cJSON_AddStringToObject(o, "base", base);
    cJSON_AddStringToObject(o, "v", value);
    cJSON_AddNumberToObject(o, "ttl", (double)ttl);
    cJSON_AddItemToArray(g, o);
}

/* The JSON argument of stats_apply (STATS_APPLY_LUA) for delta d (caller frees; NULL: none). */
static char *stats_arg(const struct store *s, const struct stats_delta *d, long retention_s)
{
    cJSON *root, *keys, *g;
    char mkey[KEY_MAX], hkey[KEY_MAX], day[KEY_MAX], total[KEY_MAX];
    long mttl = retention_s < MINUTE_KEEP_S ? retention_s : MINUTE_KEEP_S;
    char *text;
    if (!d || !d->inc)
        return NULL;
    root = cJSON_CreateObject();
    snprintf(mkey, sizeof(mkey), "%sstats:m:%lld", s->prefix, (long long)(d->at_ms / 60000));
    snprintf(hkey, sizeof(hkey), "%sstats:h:%lld", s->prefix, (long long)(d->at_ms / 3600000));
    key_day(s, d->at_ms, day);
    key_totals(s, total);
    keys = cJSON_AddArrayToObject(root, "keys");
    cJSON_AddItemToArray(keys, key_ttl(mkey, mttl));
    cJSON_AddItemToArray(keys, key_ttl(hkey, retention_s));
    cJSON_AddItemToArray(keys, key_ttl(total, 0));
    g = cJSON_AddArrayToObject(root, "g");
    add_group(g, mkey, "source", d->source, mttl);
    add_group(g, hkey, "source", d->source, retention_s);
    add_group(g, mkey, "tenant", d->tenant, mttl);
    add_group(g, hkey, "tenant", d->tenant, retention_s);
    cJSON_AddItemToObject(root, "i", cJSON_Duplicate(d->inc, 1));
    cJSON_AddStringToObject(root, "day", day);
    cJSON_AddNumberToObject(root, "day_ttl", DAY_KEEP_S);
    cJSON_AddNumberToObject(root, "max_groups", STATS_MAX_GROUPS);
    text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return text;
}

/* --- begin, transition, finish, hand back --------------------------------------------------- */

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
    if (reply_status(x, RDS_ARRAY) != 0 || rds_reply_len(x) < 1) {
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

int store_begin(struct store *s, const struct store_entry *e, int max_attempts, long ttl_s,
                const struct stats_delta *exhausted, long stats_retention_s,
                store_begin_cb cb, void *data)
{
    char kjob[KEY_MAX], kq[KEY_MAX], kdead[KEY_MAX], chan[KEY_MAX];
    char maxa[16], now[24], ttl[24], out[400];
    char *sj = stats_arg(s, exhausted, stats_retention_s);
    struct op *o = op_new((void (*)(void))cb, data);
    int rc;
    if (!o || (exhausted && !sj)) {
        free(o);
        free(sj);
        return BD_ENOMEM;
    }
    key_job(s, e->id, kjob);
    key_queue(s, e->prio, kq);
    key_dead(s, kdead);
    key_events(s, chan);
    snprintf(maxa, sizeof(maxa), "%d", max_attempts);
    snprintf(now, sizeof(now), "%lld", (long long)clock_wall_ms());
    snprintf(ttl, sizeof(ttl), "%ld", ttl_s);
    snprintf(out, sizeof(out),
             "{\"error\":{\"code\":\"max_attempts_exceeded\",\"message\":\"the job was "
             "delivered %d times without finishing (workers.max_attempts); moved to the "
             "dead-letter stream\"}}",
             max_attempts);
    const char *args[] = {kjob, kq, kdead, STORE_GROUP, e->entry, maxa, now, chan, e->id, out,
                          ttl, sj ? sj : ""};
    rc = send_or_free(eval(s->cmd, on_begin, o, BEGIN_LUA, 3, args, 12), o);
    free(sj);
    return rc;
}

/* The integer reply of a script that reports 1 for "applied". */
static void on_flag(struct rds *r, struct rds_reply *x, void *data)
{
    struct op *o = data;
    store_flag_cb cb = (store_flag_cb)o->fn;
    void *udata = o->data;
    int status = reply_status(x, RDS_INTEGER);
    (void)r;
    free(o);
    if (cb)
        cb(udata, status, status == 0 && rds_reply_int(x) == 1);
}

int store_transition(struct store *s, const char *id, const char *status, int attempt,
                     store_flag_cb cb, void *data)
{
    char kjob[KEY_MAX], chan[KEY_MAX], att[16];
    struct op *o = op_new((void (*)(void))cb, data);
    if (!o)
        return BD_ENOMEM;
    key_job(s, id, kjob);
    key_events(s, chan);
    snprintf(att, sizeof(att), "%d", attempt);
    const char *args[] = {kjob, status, chan, id, att};
    return send_or_free(eval(s->cmd, on_flag, o, TRANSITION_LUA, 1, args, 5), o);
}

int store_finish(struct store *s, const struct store_entry *e, int attempt,
                 const struct store_result *r, store_flag_cb cb, void *data)
{
    char kjob[KEY_MAX], kq[KEY_MAX], chan[KEY_MAX], fin[24], ttl[24], att[16];
    char *sj = stats_arg(s, r->stats, r->stats_retention_s);
    struct op *o = op_new((void (*)(void))cb, data);
    int rc;
    if (!o || (r->stats && !sj)) {
        free(o);
        free(sj);
        return BD_ENOMEM;
    }
    key_job(s, e->id, kjob);
    key_queue(s, e->prio, kq);
    key_events(s, chan);
    snprintf(fin, sizeof(fin), "%lld", (long long)r->finished_ms);
    snprintf(ttl, sizeof(ttl), "%ld", r->ttl_s);
    snprintf(att, sizeof(att), "%d", attempt);
    const char *args[] = {kjob, kq, r->status, r->out_json, fin, ttl, STORE_GROUP, e->entry,
                          chan, e->id, sj ? sj : "", att};
    rc = send_or_free(eval(s->cmd, on_flag, o, FINISH_LUA, 2, args, 12), o);
    free(sj);
    return rc;
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

int store_handback(struct store *s, const struct store_entry *e, store_flag_cb cb, void *data)
{
    char kjob[KEY_MAX], kq[KEY_MAX], chan[KEY_MAX];
    struct op *o = op_new((void (*)(void))cb, data);
    if (!o)
        return BD_ENOMEM;
    key_job(s, e->id, kjob);
    key_queue(s, e->prio, kq);
    key_events(s, chan);
    const char *args[] = {kjob, kq, STORE_GROUP, e->entry, e->id, chan};
    return send_or_free(eval(s->cmd, on_flag, o, HANDBACK_LUA, 2, args, 6), o);
}

/* --- dead letters ------------------------------------------------------------------------- */

static void on_dead_list(struct rds *r, struct rds_reply *x, void *data)
{
    struct op *o = data;
    store_json_cb cb = (store_json_cb)o->fn;
    void *udata = o->data;
    cJSON *arr;
    (void)r;
    free(o);
    if (reply_status(x, RDS_ARRAY) != 0) {
        cb(udata, x ? BD_EREDIS_REPLY : BD_EREDIS_DOWN, NULL);
        return;
    }
    arr = cJSON_CreateArray();
    for (size_t i = 0; i < rds_reply_len(x); i++) {
        struct rds_reply *e = rds_reply_elem(x, i), *f = rds_reply_elem(e, 1);
        cJSON *item = cJSON_CreateObject();
        char eid[48], name[32], val[200];
        reply_copy(rds_reply_elem(e, 0), eid, sizeof(eid));
        cJSON_AddStringToObject(item, "entry", eid);
        for (size_t k = 0; k + 1 < rds_reply_len(f); k += 2) {
            reply_copy(rds_reply_elem(f, k), name, sizeof(name));
            reply_copy(rds_reply_elem(f, k + 1), val, sizeof(val));
            if (strcmp(name, "at_ms") == 0) {
                char ts[40];
                clock_iso8601(atoll(val), ts, sizeof(ts));
                cJSON_AddStringToObject(item, "dead_at", ts);
            } else if (strcmp(name, "id") == 0 || strcmp(name, "reason") == 0) {
                cJSON_AddStringToObject(item, name, val);
            }
        }
        cJSON_AddItemToArray(arr, item);
    }
    cb(udata, 0, arr);
}

int store_dead_list(struct store *s, long count, store_json_cb cb, void *data)
{
    char key[KEY_MAX], n[24];
    struct op *o = op_new((void (*)(void))cb, data);
    if (!o)
        return BD_ENOMEM;
    key_dead(s, key);
    snprintf(n, sizeof(n), "%ld", count);
    return send_or_free(rds_cmd(s->cmd, on_dead_list, o, "XREVRANGE %s + - COUNT %s", key, n), o);
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
    int status = reply_status(x, RDS_INTEGER);
    (void)r;
    free(o);
    if (status == 0 && rds_reply_int(x) == 0)
        status = BD_ENOTFOUND; /* the script's 0: no such job */
    cb(udata, status, status == 0 && rds_reply_int(x) == 1);
}

int store_requeue(struct store *s, const char *id, store_flag_cb cb, void *data)
{
    char kjob[KEY_MAX], kdead[KEY_MAX], chan[KEY_MAX], now[24];
    struct op *o = op_new((void (*)(void))cb, data);
    if (!o)
        return BD_ENOMEM;
    key_job(s, id, kjob);
    key_dead(s, kdead);
    key_events(s, chan);
    snprintf(now, sizeof(now), "%lld", (long long)clock_wall_ms());
    const char *args[] = {kjob, kdead, s->prefix, chan, id, now};
    return send_or_free(eval(s->cmd, on_requeue, o, REQUEUE_LUA, 2, args, 6), o);
}

/* --- finished jobs ------------------------------------------------------------------------ */

struct scan {
    struct store *s;
    store_scan_each_cb each;
    store_scan_done_cb done;
    void *data;
    int64_t since_ms;
    char cursor[32];
    int pending;                /* HMGETs in flight */
    int scanning;
    int status;
};

static void scan_next(struct scan *sc);

static void scan_maybe_done(struct scan *sc)
{
    if (sc->pending > 0 || sc->scanning)
        return;
    if (sc->status == 0 && strcmp(sc->cursor, "0") != 0) {
        scan_next(sc);
        return;
    }
    sc->done(sc->data, sc->status);
    free(sc);
}

struct scan_get {
    struct scan *sc;
    char id[JOB_ID_LEN + 1];
};

static void on_scan_job(struct rds *r, struct rds_reply *x, void *data)
{
    struct scan_get *g = data;
    struct scan *sc = g->sc;
    (void)r;
    sc->pending--;
    if (x && rds_reply_type(x) == RDS_ARRAY && rds_reply_len(x) == 3) {
        size_t rl;
        const char *req = rds_reply_str(rds_reply_elem(x, 0), &rl);
        char *out = elem_dup(x, 1);
        char fin[24];
        reply_copy(rds_reply_elem(x, 2), fin, sizeof(fin));
        if (req && out && fin[0] && atoll(fin) >= sc->since_ms)
            sc->each(sc->data, g->id, req, rl, out);
        free(out);
    } else if (!x) {
        sc->status = BD_EREDIS_DOWN;
    }
    free(g);
    scan_maybe_done(sc);
}

static void scan_job(struct scan *sc, const struct rds_reply *key, size_t plen)
{
    size_t kl;
    const char *k = rds_reply_str(key, &kl);
    struct scan_get *g;
    if (!k || kl != plen + JOB_ID_LEN)
        return;
    g = calloc(1, sizeof(*g));
    if (!g)
        return;
    g->sc = sc;
    memcpy(g->id, k + plen, JOB_ID_LEN);
    if (rds_cmd(sc->s->cmd, on_scan_job, g, "HMGET %b req out finished_ms", k, kl) == 0)
        sc->pending++;
    else
        free(g);
}

static void on_scan(struct rds *r, struct rds_reply *x, void *data)
{
    struct scan *sc = data;
    const struct rds_reply *keys;
    size_t plen = strlen(sc->s->prefix) + 4; /* "<prefix>job:" */
    (void)r;
    sc->scanning = 0;
    if (reply_status(x, RDS_ARRAY) != 0 || rds_reply_len(x) != 2) {
        sc->status = x ? BD_EREDIS_REPLY : BD_EREDIS_DOWN;
        scan_maybe_done(sc);
        return;
    }
    reply_copy(rds_reply_elem(x, 0), sc->cursor, sizeof(sc->cursor));
    keys = rds_reply_elem(x, 1);
    for (size_t i = 0; i < rds_reply_len(keys); i++)
        scan_job(sc, rds_reply_elem(keys, i), plen);
    scan_maybe_done(sc);
}

static void scan_next(struct scan *sc)
{
    char pattern[KEY_MAX];
    snprintf(pattern, sizeof(pattern), "%sjob:*", sc->s->prefix);
    if (rds_cmd(sc->s->cmd, on_scan, sc, "SCAN %s MATCH %s COUNT 1000", sc->cursor, pattern) == 0)
        sc->scanning = 1;
    else
        sc->status = BD_EREDIS_DOWN;
}

int store_scan_finished(struct store *s, int64_t since_ms, store_scan_each_cb each,
                        store_scan_done_cb done, void *data)
{
    struct scan *sc = calloc(1, sizeof(*sc));
    if (!sc)
        return BD_ENOMEM;
    sc->s = s;
    sc->each = each;
    sc->done = done;
    sc->data = data;
    sc->since_ms = since_ms;
    snprintf(sc->cursor, sizeof(sc->cursor), "0");
    scan_next(sc);
    if (!sc->scanning) {
        free(sc);
        return BD_EREDIS_DOWN;
    }
    return 0;
}

/* --- statistics ---------------------------------------------------------------------------- */

/* ARGV: prefix, granularity (m|h), first, last, dim ('' for none) */
static const char QUERY_LUA[] =
    "local p, g, first, last, dim = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]),"
    " ARGV[5]\n"
    "local sf = {'jobs','succeeded','failed','refined','degraded','cost_draft_p',"
    "'cost_refine_p','dtok_all','dtok_refined'}\n"
    "local total, series, groups = {}, {}, {}\n"
    "local function sum(t, kv)\n"
    "  for i = 1, #kv, 2 do t[kv[i]] = (t[kv[i]] or 0) + tonumber(kv[i + 1]) end\n"
    "end\n"
    "for b = first, last do\n"
    "  local key = p .. 'stats:' .. g .. ':' .. b\n"
    "  local kv = redis.call('HGETALL', key)\n"
    "  if #kv > 0 then\n"
    "    local row = {}\n"
    "    sum(total, kv)\n"
    "    sum(row, kv)\n"
    "    local out = {tostring(b)}\n"
    "    for _, f in ipairs(sf) do out[#out + 1] = string.format('%.17g', row[f] or 0) end\n"
    "    series[#series + 1] = out\n"
    "    if dim ~= '' then\n"
    "      for _, v in ipairs(redis.call('SMEMBERS', key .. ':idx:' .. dim)) do\n"
    "        groups[v] = groups[v] or {}\n"
    "        sum(groups[v], redis.call('HGETALL', key .. ':' .. dim .. ':' .. v))\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "end\n"
    "local function flat(t)\n"
    "  local o = {}\n"
    "  for k, v in pairs(t) do o[#o + 1] = k; o[#o + 1] = string.format('%.17g', v) end\n"
    "  return o\n"
    "end\n"
    "local gout = {}\n"
    "for k, t in pairs(groups) do gout[#gout + 1] = k; gout[#gout + 1] = flat(t) end\n"
    "return {flat(total), series, gout}\n";
/* ARGV: prefix, first minute, last minute, day key */
static const char GUARD_LUA[] =
    "local d, rf, c = 0, 0, 0\n"
    "for b = tonumber(ARGV[2]), tonumber(ARGV[3]) do\n"
    "  local v = redis.call('HMGET', ARGV[1] .. 'stats:m:' .. b, 'decided', 'refined',"
    " 'cost_refine_p')\n"
    "  d = d + (tonumber(v[1]) or 0); rf = rf + (tonumber(v[2]) or 0); c = c + (tonumber(v[3]) or 0)\n"
    "end\n"
    "local day = redis.call('HGET', ARGV[4], 'cost_refine_p') or '0'\n"
    "return {tostring(d), tostring(rf), string.format('%.17g', c), day}\n";

/* ARGV: prefix. Returns {total hash, queue depth, pending (in flight)} */
static const char METRICS_LUA[] =
    "local p = ARGV[1]\n"
    "local depth, pending = 0, 0\n"
    "for _, q in ipairs({'high', 'normal', 'low'}) do\n"
    "  local k = p .. 'q:' .. q\n"
    "  depth = depth + redis.call('XLEN', k)\n"
    "  local ok, s = pcall(redis.call, 'XPENDING', k, 'briefd-workers')\n"
    "  if ok and type(s) == 'table' then pending = pending + (tonumber(s[1]) or 0) end\n"
    "end\n"
    "return {redis.call('HGETALL', p .. 'stats:total'), depth, pending}\n";

/* The fields of a series row, in the order QUERY_LUA returns them. */
static const char *const series_fields[] = {"jobs", "succeeded", "failed", "refined",
                                            "degraded", "cost_draft_p", "cost_refine_p",
                                            "dtok_all", "dtok_refined"};
#define N_SERIES_FIELDS (sizeof(series_fields) / sizeof(series_fields[0]))

struct window_op {
    store_rows_cb cb;
    void *data;
    long gran_s;
    long long first;
};

/* [[bucket, v1..v9], ...] as [[bucket, {field -> v}], ...] */
static cJSON *series_rows(const struct rds_reply *x)
{
    cJSON *rows = cJSON_CreateArray();
    for (size_t r = 0; rows && r < rds_reply_len(x); r++) {
        const struct rds_reply *row = rds_reply_elem(x, r);
        cJSON *pair = cJSON_CreateArray(), *m = cJSON_CreateObject();
        cJSON_AddItemToArray(pair, cJSON_CreateNumber((double)rds_reply_num(
                                       rds_reply_elem(row, 0), 0)));
        for (size_t f = 0; f < N_SERIES_FIELDS; f++) {
            char v[48];
            reply_copy(rds_reply_elem(row, f + 1), v, sizeof(v));
            cJSON_AddNumberToObject(m, series_fields[f], strtod(v, NULL));
        }
        cJSON_AddItemToArray(pair, m);
        cJSON_AddItemToArray(rows, pair);
    }
    return rows;
}

static cJSON *group_maps(const struct rds_reply *g)
{
    cJSON *groups = cJSON_CreateObject();
    for (size_t k = 0; groups && k + 1 < rds_reply_len(g); k += 2) {
        char name[80];
        reply_copy(rds_reply_elem(g, k), name, sizeof(name));
        if (name[0])
            cJSON_AddItemToObject(groups, name, flat_map(rds_reply_elem(g, k + 1)));
    }
    return groups;
}

static void on_window(struct rds *r, struct rds_reply *x, void *data)
{
    struct window_op *q = data;
    struct stats_rows rows;
    (void)r;
    if (reply_status(x, RDS_ARRAY) != 0 || rds_reply_len(x) != 3) {
        q->cb(q->data, x ? BD_EREDIS_REPLY : BD_EREDIS_DOWN, NULL);
        free(q);
        return;
    }
    rows.total = flat_map(rds_reply_elem(x, 0));
    rows.rows = series_rows(rds_reply_elem(x, 1));
    rows.groups = group_maps(rds_reply_elem(x, 2));
    rows.gran_s = q->gran_s;
    rows.first = q->first;
    if (!rows.total || !rows.rows || !rows.groups)
        q->cb(q->data, BD_ENOMEM, NULL);
    else
        q->cb(q->data, 0, &rows);
    cJSON_Delete(rows.total);
    cJSON_Delete(rows.rows);
    cJSON_Delete(rows.groups);
    free(q);
}

int store_stats_window(struct store *s, long window_s, const char *dim, store_rows_cb cb,
                       void *data)
{
    struct window_op *q = calloc(1, sizeof(*q));
    long long now_s = (long long)time(NULL);
    char first[24], last[24];
    if (!q)
        return BD_ENOMEM;
    q->cb = cb;
    q->data = data;
    q->gran_s = window_s > 6 * 3600 ? 3600 : 60;
    q->first = (now_s - window_s) / q->gran_s + 1;
    if (q->first < 0)
        q->first = 0;
    snprintf(first, sizeof(first), "%lld", q->first);
    snprintf(last, sizeof(last), "%lld", now_s / q->gran_s);
    const char *args[] = {s->prefix, q->gran_s == 60 ? "m" : "h", first, last, dim ? dim : ""};
    return send_or_free(eval(s->cmd, on_window, q, QUERY_LUA, 0, args, 5), q);
}

static void on_guard(struct rds *r, struct rds_reply *x, void *data)
{
    struct op *o = data;
    store_guard_cb cb = (store_guard_cb)o->fn;
    void *udata = o->data;
    (void)r;
    free(o);
    if (reply_status(x, RDS_ARRAY) != 0 || rds_reply_len(x) != 4) {
        cb(udata, x ? BD_EREDIS_REPLY : BD_EREDIS_DOWN, 0, 0, 0, 0);
    } else {
        double v[4];
        for (size_t k = 0; k < 4; k++) {
            char b[48];
            reply_copy(rds_reply_elem(x, k), b, sizeof(b));
            v[k] = strtod(b, NULL);
        }
        cb(udata, 0, v[0], v[1], v[3] / STATS_PICO, v[1] > 0 ? v[2] / STATS_PICO / v[1] : 0);
    }
}

int store_stats_guard(struct store *s, long window_s, store_guard_cb cb, void *data)
{
    struct op *o = op_new((void (*)(void))cb, data);
    long long now_s = (long long)time(NULL);
    char first[24], last[24], day[KEY_MAX];
    if (!o)
        return BD_ENOMEM;
    snprintf(first, sizeof(first), "%lld", (now_s - window_s) / 60 + 1);
    snprintf(last, sizeof(last), "%lld", now_s / 60);
    key_day(s, (int64_t)now_s * 1000, day);
    const char *args[] = {s->prefix, first, last, day};
    return send_or_free(eval(s->cmd, on_guard, o, GUARD_LUA, 0, args, 4), o);
}

static void on_totals(struct rds *r, struct rds_reply *x, void *data)
{
    struct op *o = data;
    store_totals_cb cb = (store_totals_cb)o->fn;
    void *udata = o->data;
    (void)r;
    free(o);
    if (reply_status(x, RDS_ARRAY) != 0 || rds_reply_len(x) != 3) {
        cb(udata, x ? BD_EREDIS_REPLY : BD_EREDIS_DOWN, NULL, 0, 0);
    } else {
        cJSON *m = flat_map(rds_reply_elem(x, 0));
        cb(udata, m ? 0 : BD_ENOMEM, m, (long)rds_reply_int(rds_reply_elem(x, 1)),
           (long)rds_reply_int(rds_reply_elem(x, 2)));
        cJSON_Delete(m);
    }
}

int store_stats_totals(struct store *s, store_totals_cb cb, void *data)
{
    struct op *o = op_new((void (*)(void))cb, data);
    if (!o)
        return BD_ENOMEM;
    const char *args[] = {s->prefix};
    return send_or_free(eval(s->cmd, on_totals, o, METRICS_LUA, 0, args, 1), o);
}

void store_count_upstream_error(struct store *s, const char *model, const char *reason, long n)
{
    char key[KEY_MAX], field[KEY_MAX];
    if (n <= 0)
        return;
    key_totals(s, key);
    snprintf(field, sizeof(field), "err:%s:%s", model, reason);
    rds_cmd(s->cmd, NULL, NULL, "HINCRBY %s %s %ld", key, field, n);
}
