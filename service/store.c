/* store.c - briefd's Redis schema: connections, keys, Lua scripts, reply shapes, batches. */
#include "store.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bderr.h"
#include "clock.h"
#include "hash.h"
#include "jscan.h"
#include "jsonx.h"
#include "list.h"
#include "log.h"
#include "rds.h"
#include "rloc.h"
#include "rwait.h"
#include "sbuf.h"
#include "stats.h"
#include "tenant.h"

#define GROUP "briefd-workers"
#define KEY_MAX 320 /* a tenant key: tag (79) + "tenant:spend:" + day + part (165) */
#define MINUTE_KEEP_S (7L * 3600L)    /* minute buckets serve windows up to 6 h */
#define BATCH_MAX 64                  /* jobs per finish / transition script */
#define RUN_TTL_S 3600                /* a running status outlives no job */
#define FLUSH_MS 1000                 /* fold pending statistics this often */
#define HEARTBEAT_MS 5000
#define DEAD_AFTER_MS 30000           /* a process silent this long is dead */
#define RECOVER_MS 10000              /* look for dead processes this often */
#define FLUSH_MAX_ITEMS 20000         /* pending items folded per script */
#define DEPTH_STALE_MS 500            /* a queue depth estimate older than this is re-measured */
#define SCAN_MAX_INFLIGHT 64
#define LATE_MARGIN_MS 50             /* a submit's deadline is this much before the give-up */

static const char *const prio_names[] = {"low", "normal", "high"};

struct batch_item;

/* A batch of finishes (or transitions) sent as one script. */
struct batch {
    struct batch_item *items[BATCH_MAX];
    size_t n;
};

struct store {
    uv_loop_t *loop;
    struct rds *cmd;            /* commands */
    struct rds *sub;            /* events subscription (store_watch), or NULL */
    struct rds *blk;            /* workers' blocking reads (store_read_open), or NULL */
    struct rds *ack;            /* acknowledged submits, followed by WAIT, or NULL */
    struct rwait *waits;        /* the WAITs on ack */
    struct rloc *loc;           /* where the primary is; every connection follows it */
    int acks;                   /* min_replicas_acked (0: off) */
    int ack_timeout_ms;
    struct rds_opts ropts;      /* strings point into the fields below */
    char *host, *user, *password, *tls_ca;
    char tag[80];               /* "{<prefix>}": every key starts with it */
    char instance[128];
    char role[16];
    int consumer;
    long retention_s;
    char claim_cursor[3][48];
    char last_reply_error[200];
    int64_t clock_off_ms;       /* Redis's clock minus ours (TIME at each connect) ... */
    int64_t clock_err_ms;       /* ... within this much */
    int clock_ok;
    uv_timer_t tick;            /* flush, heartbeat, recovery */
    uint64_t last_flush, last_beat, last_recover;
    int flushing, recovering;
    struct list_node finishes;  /* queued finish items, oldest first */
    size_t n_finishes;
    size_t finishing;           /* the finish batch in flight: its items (the first on the
                                   queue), 0 when none is */
    size_t n_urgent;            /* queued finishes not held (store_result.hold_ms 0: a job's,
                                   which a client may wait for); the others wait for a batch to
                                   gather */
    uv_timer_t hold;            /* from the first held finish queued, its hold_ms */
    int hold_ms;                /* the hold of the last held finish queued */
    int hold_over;              /* it ran out: the held finishes go with the next batch */
    struct list_node held_gets; /* store_get of a job whose finish waits behind that batch */
    struct list_node transitions;
    size_t transiting;          /* the same for transitions */
    char (*batch_keys)[KEY_MAX]; /* a batch's keys, kept from one batch to the next (NULL until
                                   the first): 125 KB for 64 finishes, which a fresh
                                   allocation per batch page-faulted in again each time */
    /* queue depth estimate for the bound check (store_submit) */
    long depth_est;
    uint64_t depth_at;
    long submitted_since;
    store_state_cb state_cb;
    void *state_data;
    store_event_cb event_cb;
    void *event_data;
    void (*read_cb)(void *);
    void *read_data;
    void (*read_stop_cb)(void *);
    void *read_stop_data;
    int closing;
    int close_phase;            /* 0 draining, 1 final fold, 2 leaving, 3 disconnecting */
    int pending_closes;
    void (*close_cb)(void *);
    void *close_data;
};

/* --- keys -------------------------------------------------------------------------------- */

/* buf (KEY_MAX bytes) = the hash tag + name + suffix (suffix may be NULL), cut to KEY_MAX - 1
 * bytes (no printf: many per job). */
static void key(const struct store *s, char *buf, const char *name, const char *suffix)
{
    const char *parts[3] = {s->tag, name, suffix ? suffix : ""};
    size_t n = 0;
    for (int i = 0; i < 3; i++) {
        size_t k = strlen(parts[i]);
        if (k > KEY_MAX - 1 - n)
            k = KEY_MAX - 1 - n;
        memcpy(buf + n, parts[i], k);
        n += k;
    }
    buf[n] = '\0';
}

static void key_queue(const struct store *s, enum job_priority p, char *buf)
{
    key(s, buf, "q:", prio_names[p]);
}

static void key_bucket(const struct store *s, char g, long long n, char *buf)
{
    char num[32];
    num[0] = g;
    num[1] = ':';
    num[2 + jsonx_int(n, num + 2)] = '\0';
    key(s, buf, "stats:", num);
}

/* --- scripts (every key a script touches is in KEYS) ------------------------------------ */

/* A submit that reaches Redis after its deadline (the Lua local "deadline": ms on Redis's
 * clock, 0 for none) - after briefd told its client it failed - does nothing
 * (store_submit). */
#define LATE_CHECK_LUA \
    "if deadline > 0 then\n" \
    "  if redis.replicate_commands then redis.replicate_commands() end\n" \
    "  local t = redis.call('TIME')\n" \
    "  if tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) > deadline then\n" \
    "    return redis.error_reply('LATE the submit reached Redis after briefd gave up on it;" \
    " nothing was queued')\n" \
    "  end\n" \
    "end\n"

/* KEYS: q:low q:normal q:high [idem]. ARGV: prio (0..2), max_queue (0: no bound), req, meta,
 * idem hash, idem ttl, deadline[, group, consumer: then the oldest entry of the job's queue
 * not yet delivered - the new one unless the queue had a backlog - is read for consumer in
 * the same script (store_submit_claim)].
 * -> {'ok', entry, depth[, claimed entry]} | {'full', depth} | {'dup', value} */
static const char SUBMIT_LUA[] =
    "local deadline = tonumber(ARGV[7])\n" LATE_CHECK_LUA
    "local p = tonumber(ARGV[1]) + 1\n"
    "if KEYS[4] then\n"
    "  local ex = redis.call('GET', KEYS[4])\n"
    "  if ex then return {'dup', ex} end\n"
    "end\n"
    "local depth = -1\n"
    "if tonumber(ARGV[2]) > 0 then\n"
    "  depth = redis.call('XLEN', KEYS[1]) + redis.call('XLEN', KEYS[2])"
    " + redis.call('XLEN', KEYS[3])\n"
    "  if depth >= tonumber(ARGV[2]) then return {'full', tostring(depth)} end\n"
    "  depth = depth + 1\n"
    "end\n"
    "local e = redis.call('XADD', KEYS[p], '*', 'r', ARGV[3], 'm', ARGV[4])\n"
    "if KEYS[4] then\n"
    "  redis.call('SET', KEYS[4], e .. ' ' .. ARGV[1] .. ' ' .. ARGV[5], 'EX', ARGV[6])\n"
    "end\n"
    "local c\n"
    "if ARGV[9] then\n" /* pcall: a missing group must not fail a job already queued */
    "  local r = redis.pcall('XREADGROUP', 'GROUP', ARGV[8], ARGV[9], 'COUNT', 1,"
    " 'STREAMS', KEYS[p], '>')\n"
    "  if type(r) == 'table' and r[1] and r[1][2] then c = r[1][2][1] end\n"
    "end\n"
    "return {'ok', e, tostring(depth), c}\n";

/* KEYS: job, jobx, run, q:low, q:normal, q:high, wh:st, quality, feedback. ARGV: group, entry,
 * prio (the id's first entry; "" for an id that never was queued), with record (1: return
 * it; 0: the caller read it with a plain GET just before - a record's bytes cost Lua about
 * 10 instructions each).
 * -> {'done', record or '', webhook status or '', quality or '', [feedback...]} |
 *    {'live', fields, pending, run} | {'none'} */
static const char GET_LUA[] =
    "local rec = redis.call(ARGV[4] == '1' and 'GET' or 'EXISTS', KEYS[1])\n"
    "if rec and rec ~= 0 then return {'done', ARGV[4] == '1' and rec or '',"
    " redis.call('GET', KEYS[7]) or '',"
    " redis.call('GET', KEYS[8]) or '', redis.call('LRANGE', KEYS[9], 0, -1)} end\n"
    "local e, p = ARGV[2], tonumber(ARGV[3])\n"
    "local x = redis.call('HMGET', KEYS[2], 'e', 'p')\n"
    "if x[1] then e = x[1]; p = tonumber(x[2]) end\n"
    "if not p then return {'none'} end\n"
    "local q = KEYS[p + 4]\n"
    "local f = redis.call('XRANGE', q, e, e)\n"
    "if #f == 0 then return {'none'} end\n"
    "local pend = redis.call('XPENDING', q, ARGV[1], e, e, 1)\n"
    "return {'live', f[1][2], #pend > 0 and 1 or 0, redis.call('GET', KEYS[3]) or ''}\n";

/* KEYS: q:low q:normal q:high pend, then per job: job, jobx, its record as written just
 * before (fin:<id>:<entry>, with the record's TTL), and its tenant's spend today,
 * reservations and their expiries (tenant keys: any key when the job has no tenant); then
 * wh:q wh:due.
 * ARGV: group, channel, n, origin (the event that leads what this batch publishes), then per
 * job: prio (-1: never queued), entry, has jobx (0/1), status, delta, id, has tenant (0/1),
 * cost (picodollars), webhook ("" or "<id> <created ms> <msg id> <url>": a delivery to keep,
 * see WH_CLAIM_LUA), event (its whole event, with the job object, for a job another process
 * waits for - published as a message of its own; "": the event without the object, in the
 * batch's message).
 * -> per job 1 stored, 2 stored earlier by this very delivery (a resent batch), 0 refused
 * (the delivery is no longer current); an error, and nothing written, when a record is
 * missing. A queued job's delivery is current while its entry is pending (XACK); a job that
 * never was queued (the facade's, entry "direct") has no entry, and its record in place
 * tells a resent batch (RENAMENX). A stored job's record is renamed into place (its bytes
 * never pass through Lua: Redis's Lua hashes every byte of every string it is given or makes), its terminal event
 * carries no job object unless another process waits for it (other listeners read the
 * record; the origin delivers its own in process)
 * and a stored job of a tenant settles its budget: its reservation goes and its cost is
 * added to the tenant's spend today. */
static const char FINISH_LUA[] =
    "local group, chan, n = ARGV[1], ARGV[2], tonumber(ARGV[3])\n"
    "local recs = {}\n"
    "for i = 0, n - 1 do recs[i + 1] = KEYS[7 + i * 6] end\n"
    "if redis.call('EXISTS', unpack(recs)) ~= n then\n" /* one call for the batch */
    "  for i = 0, n - 1 do\n"
    "    if redis.call('EXISTS', KEYS[7 + i * 6]) == 0 then\n"
    "      return redis.error_reply('ERR finish: the record of ' .. ARGV[10 + i * 10] .."
    " ' is missing (not written or expired); nothing was stored')\n"
    "    end\n"
    "  end\n"
    "end\n"
    "local res, dels, deltas, events = {}, {{}, {}, {}}, {}, {ARGV[4]}\n"
    "local whq, whdue = KEYS[5 + n * 6], KEYS[6 + n * 6]\n"
    "for i = 0, n - 1 do\n"
    "  local a, k = 5 + i * 10, 5 + i * 6\n"
    "  local p, entry = tonumber(ARGV[a]), ARGV[a + 1]\n"
    "  local jk, xk, tk = KEYS[k], KEYS[k + 1], KEYS[k + 2]\n"
    "  local ok\n"
    "  if p >= 0 then\n"
    "    ok = redis.call('XACK', KEYS[p + 1], group, entry)\n"
    "    if ok == 1 then redis.call('RENAME', tk, jk) end\n"
    "  else\n" /* never queued: fenced by its record, in place once stored */
    "    ok = redis.call('RENAMENX', tk, jk)\n"
    "  end\n"
    "  if ok == 1 then\n"
    "    if ARGV[a + 2] == '1' then redis.call('DEL', xk) end\n"
    "    if p >= 0 then table.insert(dels[p + 1], entry) end\n"
    "    deltas[#deltas + 1] = ARGV[a + 4]\n"
    "    if ARGV[a + 9] == '' then\n"
    "      events[#events + 1] = ARGV[a + 5] .. ' ' .. ARGV[a + 3] .. ' 0\\n\\n'\n"
    "    else\n" /* its own message: no concatenation, which would hash the job again */
    "      redis.call('PUBLISH', chan, ARGV[a + 9])\n"
    "    end\n"
    "    if ARGV[a + 6] == '1' then\n"
    "      local sk, rk, ek, id = KEYS[k + 3], KEYS[k + 4], KEYS[k + 5], ARGV[a + 5]\n"
    "      local own = redis.call('HGET', rk, id)\n"
    "      if own then\n"
    "        redis.call('HDEL', rk, id)\n"
    "        redis.call('ZREM', ek, id)\n"
    "        redis.call('HINCRBY', rk, '#sum', -tonumber(own))\n"
    "      end\n"
    "      redis.call('INCRBY', sk, ARGV[a + 7])\n"
    "      redis.call('EXPIRE', sk, 172800)\n"
    "    end\n"
    "    local w = ARGV[a + 8]\n"
    "    if w ~= '' then\n"
    "      local wid, wc = string.match(w, '^(%S+) (%d+) ')\n"
    "      if wid and redis.call('HSETNX', whq, wid, '0 ' .. string.sub(w, #wid + 2)) == 1 then\n"
    "        redis.call('ZADD', whdue, wc, wid)\n"
    "      end\n"
    "    end\n"
    "    res[#res + 1] = 1\n"
    "  else\n"
    "    redis.call('DEL', tk)\n"
    "    local cur = redis.call('GETRANGE', jk, 0, #entry + 13)\n"
    "    if cur == '{\"delivery\":\"' .. entry .. '\"' then res[#res + 1] = 2"
    " else res[#res + 1] = 0 end\n"
    "  end\n"
    "end\n"
    "for p = 1, 3 do\n"
    "  if #dels[p] > 0 then redis.call('XDEL', KEYS[p], unpack(dels[p])) end\n"
    "end\n"
    "if #deltas > 0 then redis.call('RPUSH', KEYS[4], unpack(deltas)) end\n"
    "if #events > 1 then redis.call('PUBLISH', chan, table.concat(events)) end\n"
    "return res\n";

/* KEYS: run:<id> per job. ARGV: channel, ttl, then per job: status, event. */
static const char TRANSITION_LUA[] =
    "local ev = {}\n"
    "for i = 1, #KEYS do\n"
    "  redis.call('SET', KEYS[i], ARGV[1 + i * 2], 'EX', ARGV[2])\n"
    "  ev[#ev + 1] = ARGV[2 + i * 2]\n"
    "end\n"
    "redis.call('PUBLISH', ARGV[1], table.concat(ev))\n"
    "return #KEYS\n";

/* KEYS: q:low q:normal q:high jobx job dead pend. ARGV: group, channel, prio, entry, id,
 * attempt, max_attempts (0: none), created_ms, req, meta, now_ms, failed record, ttl, delta,
 * failed event, handbacks. -> 1 queued again, 2 dead-lettered, 0 the entry was not ours. */
static const char REDELIVER_LUA[] =
    "local p = tonumber(ARGV[3]) + 1\n"
    "if redis.call('XACK', KEYS[p], ARGV[1], ARGV[4]) == 0 then return 0 end\n"
    "redis.call('XDEL', KEYS[p], ARGV[4])\n"
    "local a, maxa = tonumber(ARGV[6]), tonumber(ARGV[7])\n"
    "if maxa > 0 and a > maxa then\n"
    "  local de = redis.call('XADD', KEYS[6], 'MAXLEN', '~', '100000', '*', 'id', ARGV[5],"
    " 'reason', 'max_attempts', 'at_ms', ARGV[11])\n"
    "  local nl = string.find(ARGV[12], '\\n', 1, true)\n"
    "  local rec = string.sub(ARGV[12], 1, nl - 2) .. ',\"dead_entry\":\"' .. de .. '\"}'"
    " .. string.sub(ARGV[12], nl)\n"
    "  redis.call('SET', KEYS[5], rec, 'EX', ARGV[13])\n"
    "  redis.call('DEL', KEYS[4])\n"
    "  redis.call('RPUSH', KEYS[7], ARGV[14])\n"
    "  redis.call('PUBLISH', ARGV[2], ARGV[15])\n"
    "  return 2\n"
    "end\n"
    "local ne = redis.call('XADD', KEYS[p], '*', 'id', ARGV[5], 'a', ARGV[6], 'c', ARGV[8],"
    " 'h', ARGV[16], 'r', ARGV[9], 'm', ARGV[10], 'x', '1')\n"
    "redis.call('HSET', KEYS[4], 'e', ne, 'p', ARGV[3])\n"
    "redis.call('PUBLISH', ARGV[2], ARGV[5] .. ' queued 0\\n')\n"
    "return 1\n";

/* KEYS: job dead q:low q:normal q:high jobx. ARGV: channel, id, entry, prio (the id's first
 * entry, "" if none), group. -> 1 requeued, -1 exists but not dead-lettered, 0 no such job */
static const char REQUEUE_LUA[] =
    "local rec = redis.call('GET', KEYS[1])\n"
    "if not rec then\n"
    "  local x = redis.call('HGET', KEYS[6], 'e')\n"
    "  local p = tonumber(ARGV[4])\n"
    "  if x or (p and #redis.call('XRANGE', KEYS[p + 3], ARGV[3], ARGV[3]) > 0) then"
    " return -1 end\n"
    "  return 0\n"
    "end\n"
    "local nl = string.find(rec, '\\n', 1, true)\n"
    "local nl2 = string.find(rec, '\\n', nl + 1, true)\n"
    "local r = cjson.decode(string.sub(rec, 1, nl - 1))\n"
    "r.req, r.meta = string.sub(rec, nl + 1, nl2 - 1), string.sub(rec, nl2 + 1)\n"
    "if not r.dead_entry then return -1 end\n"
    "redis.call('XDEL', KEYS[2], r.dead_entry)\n"
    "local pr = {low = 0, normal = 1, high = 2}\n"
    "local p = pr[r.job.priority] or 1\n"
    "local ne = redis.call('XADD', KEYS[p + 3], '*', 'id', ARGV[2], 'a', '1', 'c',"
    " tostring(r.created_ms), 'r', r.req, 'm', r.meta, 'x', '1')\n"
    "redis.call('HSET', KEYS[6], 'e', ne, 'p', tostring(p))\n"
    "redis.call('DEL', KEYS[1])\n"
    "redis.call('PUBLISH', ARGV[1], ARGV[2] .. ' queued 0\\n')\n"
    "return 1\n";

/* KEYS: procs, pend (the folded list), total, then bucket keys. ARGV: instance, mode
 * ('flush': the process must still be registered; then trim count items and heartbeat /
 * 'recover': the registry must still hold the seen heartbeat; then delete list and entry),
 * count, heartbeat (flush) or seen value (recover), max_groups, then per bucket (KEYS[3..]):
 * ttl, nfields, then field, increment pairs (a field "g|<dim>|<value>|<f>" is a group's
 * counter: past max_groups distinct values of a dim in that bucket, the value becomes
 * "(other)"). */
static const char FOLD_LUA[] =
    "local inst, mode, count = ARGV[1], ARGV[2], tonumber(ARGV[3])\n"
    "local cur = redis.call('HGET', KEYS[1], inst)\n"
    "if mode == 'flush' and not cur then return -1 end\n"
    "if mode == 'recover' and cur ~= ARGV[4] then return -1 end\n"
    "local maxg, ai = tonumber(ARGV[5]), 6\n"
    "for b = 3, #KEYS do\n"
    "  local k, ttl, nf = KEYS[b], tonumber(ARGV[ai]), tonumber(ARGV[ai + 1])\n"
    "  local fresh, remap = redis.call('EXISTS', k) == 0, {}\n"
    "  ai = ai + 2\n"
    "  for f = 1, nf do\n"
    "    local field, n = ARGV[ai], ARGV[ai + 1]\n"
    "    ai = ai + 2\n"
    "    local dim, val, rest = string.match(field, '^g|([^|]+)|([^|]+)|(.+)$')\n"
    "    if dim then\n"
    "      local g = dim .. '|' .. val\n"
    "      if not remap[g] then\n"
    "        remap[g] = val\n"
    "        if val ~= '(other)' and"
    " redis.call('HEXISTS', k, 'g|' .. g .. '|jobs') == 0 then\n"
    "          if tonumber(redis.call('HGET', k, 'ngroups:' .. dim) or '0') >= maxg then\n"
    "            remap[g] = '(other)'\n"
    "          else redis.call('HINCRBY', k, 'ngroups:' .. dim, 1) end\n"
    "        end\n"
    "      end\n"
    "      field = 'g|' .. dim .. '|' .. remap[g] .. '|' .. rest\n"
    "    end\n"
    "    redis.call('HINCRBY', k, field, n)\n"
    "  end\n"
    "  if fresh and ttl > 0 then redis.call('EXPIRE', k, ttl) end\n"
    "end\n"
    "if mode == 'flush' then\n"
    "  redis.call('LTRIM', KEYS[2], count, -1)\n"
    "  redis.call('HSET', KEYS[1], inst, ARGV[4])\n"
    "else\n"
    "  redis.call('DEL', KEYS[2])\n"
    "  redis.call('HDEL', KEYS[1], inst)\n"
    "end\n"
    "return 1\n";

/* KEYS: minute buckets of the window, then today's hour buckets. ARGV: number of minute keys.
 * -> {decided, refined, refine cost (pico) of the window, refine cost (pico) today} */
static const char GUARD_LUA[] =
    "local nm, d, rf, c, day = tonumber(ARGV[1]), 0, 0, 0, 0\n"
    "for i = 1, #KEYS do\n"
    "  local v = redis.call('HMGET', KEYS[i], 'decided', 'refined', 'cost_refine_p')\n"
    "  if i <= nm then\n"
    "    d = d + (tonumber(v[1]) or 0); rf = rf + (tonumber(v[2]) or 0)\n"
    "    c = c + (tonumber(v[3]) or 0)\n"
    "  else day = day + (tonumber(v[3]) or 0) end\n"
    "end\n"
    "return {tostring(d), tostring(rf), string.format('%.17g', c), string.format('%.17g', day)}\n";

/* KEYS: total, errors, q:low, q:normal, q:high. ARGV: group.
 * -> {total hash, errors hash, depth, held by workers} */
static const char TOTALS_LUA[] =
    "local depth, pending = 0, 0\n"
    "for i = 3, 5 do\n"
    "  depth = depth + redis.call('XLEN', KEYS[i])\n"
    "  local ok, s = pcall(redis.call, 'XPENDING', KEYS[i], ARGV[1])\n"
    "  if ok and type(s) == 'table' then pending = pending + (tonumber(s[1]) or 0) end\n"
    "end\n"
    "return {redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', KEYS[2]), depth, pending}\n";

/* Model call slots (models.X.max_concurrency): a sorted set of leases scored by expiry on
 * Redis's clock. KEYS: the set. ARGV: cap, member, lease ms. -> 1 granted, 0 all taken. */
#define SLOT_NOW_LUA \
    "if redis.replicate_commands then redis.replicate_commands() end\n" \
    "local t = redis.call('TIME')\n" \
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
static const char SLOT_LUA[] =
    SLOT_NOW_LUA
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)\n"
    "if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end\n"
    "redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])\n"
    "redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) * 2)\n"
    "return 1\n";
/* KEYS: the set. ARGV: lease ms, members... -> how many of them were still held. */
static const char SLOT_RENEW_LUA[] =
    SLOT_NOW_LUA
    "local n = 0\n"
    "for i = 2, #ARGV do\n"
    "  n = n + redis.call('ZADD', KEYS[1], 'XX', 'CH', now + tonumber(ARGV[1]), ARGV[i])\n"
    "end\n"
    "redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]) * 2)\n"
    "return n\n";

/* A finished job's quality (shadow judging) and feedback live beside its record, with the
 * record's remaining time to live; each write pushes its statistics delta onto this
 * process's pending list in the same script. A record that is gone (expired, requeued)
 * gets neither.
 * KEYS: job, quality, pend. ARGV: quality JSON, delta ('' for none).
 * -> 1 stored, 2 the job already had one (nothing changed), 0 no such record. */
static const char QUALITY_LUA[] =
    "local ttl = redis.call('PTTL', KEYS[1])\n"
    "if ttl == -2 then return 0 end\n"
    "if redis.call('EXISTS', KEYS[2]) == 1 then return 2 end\n"
    "redis.call('SET', KEYS[2], ARGV[1])\n"
    "if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end\n"
    "if ARGV[2] ~= '' then redis.call('RPUSH', KEYS[3], ARGV[2]) end\n"
    "return 1\n";
/* KEYS: job, feedback (a list, the newest last), pend. ARGV: item JSON, items kept, delta.
 * -> 1 stored, 0 no such record. */
static const char FEEDBACK_LUA[] =
    "local ttl = redis.call('PTTL', KEYS[1])\n"
    "if ttl == -2 then return 0 end\n"
    "redis.call('RPUSH', KEYS[2], ARGV[1])\n"
    "redis.call('LTRIM', KEYS[2], -tonumber(ARGV[2]), -1)\n"
    "if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end\n"
    "if ARGV[3] ~= '' then redis.call('RPUSH', KEYS[3], ARGV[3]) end\n"
    "return 1\n";
/* The evaluation's daily budget: reserve an estimate (picodollars) unless it would take the
 * day's spend past the budget. KEYS: evalspend:<day>. ARGV: budget, estimate, ttl s.
 * -> 1 reserved, 0 refused. */
static const char EVAL_RESERVE_LUA[] =
    "local cur = tonumber(redis.call('GET', KEYS[1]) or '0')\n"
    "if cur + tonumber(ARGV[2]) > tonumber(ARGV[1]) then return 0 end\n"
    "redis.call('INCRBY', KEYS[1], ARGV[2])\n"
    "redis.call('EXPIRE', KEYS[1], ARGV[3])\n"
    "return 1\n";


/* --- tenants and the exact cache (docs/ARCHITECTURE.md#where-state-lives-in-redis) --------
 * P tenant:rate:<t>           zset: the tenant's admissions of the last minute (score: ms)
 * P tenant:spend:<day>:<t>    string: the tenant's spend that UTC day, picodollars
 * P tenant:resv:<t>           hash: job id -> picodollars reserved, "#sum" their total
 * P tenant:resvx:<t>          zset: job id -> when its reservation expires (ms)
 * P cache:<key>               string: an exact-cache entry (cache.h), expires cache.ttl_s
 * P cache:lock:<key>          string: the job computing that entry (single flight)
 * The tenant id comes last, so no two tenants' keys can meet. Times are Redis's (TIME), so
 * every process counts the same window. */

/* Lua shared by the tenant scripts: the clock, expired reservations, the rate window and the
 * admission check (budget spent: {'budget', seconds to midnight}; jobs_per_minute reached:
 * {'rate', the oldest admission's time, now}, both in ms). */
#define TENANT_LUA_LIB \
    "if redis.replicate_commands then redis.replicate_commands() end\n" \
    "local function now_ms()\n" \
    "  local t = redis.call('TIME')\n" \
    "  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n" \
    "end\n" \
    "local function reserved(rk, xk, now)\n" \
    "  local old = redis.call('ZRANGEBYSCORE', xk, '-inf', now, 'LIMIT', 0, 200)\n" \
    "  for _, j in ipairs(old) do\n" \
    "    local v = tonumber(redis.call('HGET', rk, j) or '0')\n" \
    "    redis.call('HDEL', rk, j)\n" \
    "    redis.call('ZREM', xk, j)\n" \
    "    if v ~= 0 then redis.call('HINCRBY', rk, '#sum', string.format('%.0f', -v)) end\n" \
    "  end\n" \
    "  return tonumber(redis.call('HGET', rk, '#sum') or '0')\n" \
    "end\n" \
    "local function admit(zk, sk, jpm, budget, midnight, now)\n" \
    "  if budget >= 0 and tonumber(redis.call('GET', sk) or '0') >= budget then\n" \
    "    return {'budget', midnight}\n" \
    "  end\n" \
    "  if jpm > 0 then\n" \
    "    redis.call('ZREMRANGEBYSCORE', zk, '-inf', now - 60000)\n" \
    "    if redis.call('ZCARD', zk) >= jpm then\n" \
    "      local o = redis.call('ZRANGE', zk, 0, 0, 'WITHSCORES')\n" \
    "      return {'rate', o[2], string.format('%d', now)}\n" \
    "    end\n" \
    "  end\n" \
    "  return nil\n" \
    "end\n" \
    "local function admitted(zk, jpm, now, member)\n" \
    "  if jpm > 0 then\n" \
    "    redis.call('ZADD', zk, now, member)\n" \
    "    redis.call('PEXPIRE', zk, 61000)\n" \
    "  end\n" \
    "end\n"

/* KEYS: q:low q:normal q:high idem (any key when there is none) rate spend. ARGV: prio, max_queue
 * (0: no bound), req, meta, idem hash, idem ttl, has idem (0/1), jobs_per_minute (0: none),
 * budget (picodollars, -1: none), seconds to midnight, deadline (LATE_CHECK_LUA).
 * -> {'ok', entry, depth} | {'full', depth} | {'dup', value} | {'budget', retry_s} |
 *    {'rate', oldest_ms, now_ms} */
static const char SUBMIT_TENANT_LUA[] = TENANT_LUA_LIB
    "local deadline = tonumber(ARGV[11])\n" LATE_CHECK_LUA
    "local p = tonumber(ARGV[1]) + 1\n"
    "if ARGV[7] == '1' then\n"
    "  local ex = redis.call('GET', KEYS[4])\n"
    "  if ex then return {'dup', ex} end\n"
    "end\n"
    "local now, jpm = now_ms(), tonumber(ARGV[8])\n"
    "local lim = admit(KEYS[5], KEYS[6], jpm, tonumber(ARGV[9]), ARGV[10], now)\n"
    "if lim then return lim end\n"
    "local depth = -1\n"
    "if tonumber(ARGV[2]) > 0 then\n"
    "  depth = redis.call('XLEN', KEYS[1]) + redis.call('XLEN', KEYS[2])"
    " + redis.call('XLEN', KEYS[3])\n"
    "  if depth >= tonumber(ARGV[2]) then return {'full', tostring(depth)} end\n"
    "  depth = depth + 1\n"
    "end\n"
    "local e = redis.call('XADD', KEYS[p], '*', 'r', ARGV[3], 'm', ARGV[4])\n"
    "if ARGV[7] == '1' then\n"
    "  redis.call('SET', KEYS[4], e .. ' ' .. ARGV[1] .. ' ' .. ARGV[5], 'EX', ARGV[6])\n"
    "end\n"
    "admitted(KEYS[5], jpm, now, e)\n"
    "return {'ok', e, tostring(depth)}\n";

/* KEYS: rate spend. ARGV: jobs_per_minute, budget (pico, -1: none), seconds to midnight,
 * member. -> {'ok', ''} | {'budget', retry_s} | {'rate', oldest_ms, now_ms} */
static const char ADMIT_LUA[] = TENANT_LUA_LIB
    "local now, jpm = now_ms(), tonumber(ARGV[1])\n"
    "local lim = admit(KEYS[1], KEYS[2], jpm, tonumber(ARGV[2]), ARGV[3], now)\n"
    "if lim then return lim end\n"
    "admitted(KEYS[1], jpm, now, ARGV[4])\n"
    "return {'ok', ''}\n";

/* KEYS: spend resv resvx. ARGV: job, amount (pico), budget (pico), mode ('admit' | 'extend'),
 * fallback (pico: extend's reservation when refused), ttl (ms).
 * admit: refused when today's spend reached the budget ('spent') or the reservations of the
 * other jobs fill it ('busy'); extend: the job's reservation becomes amount if the total stays
 * within the budget, else fallback ('held').
 * -> {'ok'|'spent'|'busy'|'held', spent, reserved (after)} */
static const char RESERVE_LUA[] = TENANT_LUA_LIB
    "local now, job = now_ms(), ARGV[1]\n"
    "local amt, b = tonumber(ARGV[2]), tonumber(ARGV[3])\n"
    "local r = reserved(KEYS[2], KEYS[3], now)\n"
    "local s = tonumber(redis.call('GET', KEYS[1]) or '0')\n"
    "local own = tonumber(redis.call('HGET', KEYS[2], job) or '0')\n"
    "local verdict = 'ok'\n"
    "if ARGV[4] == 'admit' then\n"
    "  if s >= b then return {'spent', tostring(s), tostring(r)} end\n"
    "  if s + r - own >= b then return {'busy', tostring(s), tostring(r)} end\n"
    "elseif s + r - own + amt > b then\n"
    "  verdict, amt = 'held', tonumber(ARGV[5])\n"
    "end\n"
    "local ttl = tonumber(ARGV[6])\n"
    "redis.call('HSET', KEYS[2], job, string.format('%.0f', amt))\n"
    "redis.call('HINCRBY', KEYS[2], '#sum', string.format('%.0f', amt - own))\n"
    "redis.call('ZADD', KEYS[3], now + ttl, job)\n"
    "redis.call('PEXPIRE', KEYS[2], ttl + 60000)\n"
    "redis.call('PEXPIRE', KEYS[3], ttl + 60000)\n"
    "return {verdict, tostring(s), string.format('%.0f', r - own + amt)}\n";

/* KEYS: rate spend resv resvx, then the statistics buckets of the window. ARGV: the tenant's
 * group name in the statistics.
 * -> {jobs this minute, spend today, reserved, decided, refined} */
static const char TENANT_INFO_LUA[] = TENANT_LUA_LIB
    "local now = now_ms()\n"
    "local jm = redis.call('ZCOUNT', KEYS[1], '(' .. (now - 60000), '+inf')\n"
    "local s = redis.call('GET', KEYS[2]) or '0'\n"
    "local r = reserved(KEYS[3], KEYS[4], now)\n"
    "local fd, fr = 'g|tenant|' .. ARGV[1] .. '|decided', 'g|tenant|' .. ARGV[1] .. '|refined'\n"
    "local d, rf = 0, 0\n"
    "for i = 5, #KEYS do\n"
    "  local v = redis.call('HMGET', KEYS[i], fd, fr)\n"
    "  d = d + (tonumber(v[1]) or 0)\n"
    "  rf = rf + (tonumber(v[2]) or 0)\n"
    "end\n"
    "return {tostring(jm), s, string.format('%.0f', r), tostring(d), tostring(rf)}\n";

/* KEYS: per tenant spend, resv, resvx. -> per tenant {spend, reserved} */
static const char TENANT_SPEND_LUA[] = TENANT_LUA_LIB
    "local now, out = now_ms(), {}\n"
    "for i = 1, #KEYS, 3 do\n"
    "  out[#out + 1] = redis.call('GET', KEYS[i]) or '0'\n"
    "  out[#out + 1] = string.format('%.0f', reserved(KEYS[i + 1], KEYS[i + 2], now))\n"
    "end\n"
    "return out\n";

/* KEYS: cache:<key> cache:lock:<key>. ARGV: job, lock ttl (ms).
 * -> {'hit', entry} | {'wait', owner} | {'run', ''} (this job now holds the lock) */
static const char CACHE_CLAIM_LUA[] =
    "local v = redis.call('GET', KEYS[1])\n"
    "if v then return {'hit', v} end\n"
    "local o = redis.call('GET', KEYS[2])\n"
    "if o and o ~= ARGV[1] then return {'wait', o} end\n"
    "redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])\n"
    "return {'run', ''}\n";

/* KEYS: cache:<key> cache:lock:<key>. ARGV: job, entry ('' : none), ttl (s). The entry is
 * stored; the lock is released if the job holds it. */
static const char CACHE_PUT_LUA[] =
    "if ARGV[2] ~= '' then redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3]) end\n"
    "if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end\n"
    "return 1\n";

/* KEYS: wh:due wh:q. ARGV: now ms, count, lease ms. Up to count deliveries due by now, each
 * claimed for lease ms: its due time moves past the lease and its attempt number goes up by
 * one, so another process claims it again only if this one has recorded no outcome by then.
 * -> {id, state, id, state, ...}, state "<attempt> <created ms> <msg id> <url>" */
static const char WH_CLAIM_LUA[] =
    "local now = tonumber(ARGV[1])\n"
    "local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, ARGV[2])\n"
    "local out = {}\n"
    "for _, id in ipairs(ids) do\n"
    "  local v = redis.call('HGET', KEYS[2], id)\n"
    "  local a, rest\n"
    "  if v then a, rest = string.match(v, '^(%d+) (.*)$') end\n"
    "  if a then\n"
    "    local nv = tostring(tonumber(a) + 1) .. ' ' .. rest\n"
    "    redis.call('HSET', KEYS[2], id, nv)\n"
    "    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), id)\n"
    "    out[#out + 1] = id\n"
    "    out[#out + 1] = nv\n"
    "  else\n"
    "    redis.call('ZREM', KEYS[1], id)\n"
    "    redis.call('HDEL', KEYS[2], id)\n"
    "  end\n"
    "end\n"
    "return out\n";

/* KEYS: wh:due wh:q wh:st:<id>. ARGV: id, attempt, outcome (delivered | failed | retry |
 * release), due ms (retry, release), status JSON, status ttl s. Applied (1) only while the
 * delivery is still at that attempt - no other process claimed it since. delivered / failed:
 * the delivery is over; retry: due again then; release: the attempt did not happen (the
 * process is stopping), it is due then and not counted. The status key is what GET joins. */
static const char WH_DONE_LUA[] =
    "local v = redis.call('HGET', KEYS[2], ARGV[1])\n"
    "if not v then return 0 end\n"
    "local a, rest = string.match(v, '^(%d+) (.*)$')\n"
    "if not a or tonumber(a) ~= tonumber(ARGV[2]) then return 0 end\n"
    "if ARGV[3] == 'release' then\n"
    "  redis.call('HSET', KEYS[2], ARGV[1], tostring(tonumber(a) - 1) .. ' ' .. rest)\n"
    "  redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1])\n"
    "  return 1\n"
    "end\n"
    "if ARGV[3] == 'retry' then\n"
    "  redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1])\n"
    "else\n"
    "  redis.call('ZREM', KEYS[1], ARGV[1])\n"
    "  redis.call('HDEL', KEYS[2], ARGV[1])\n"
    "end\n"
    "redis.call('SET', KEYS[3], ARGV[5], 'EX', ARGV[6])\n"
    "return 1\n";

static struct rds_script sc_submit, sc_get, sc_finish, sc_transition,
    sc_redeliver, sc_requeue, sc_fold, sc_guard, sc_totals, sc_slot, sc_slot_renew, sc_wh_claim,
    sc_wh_done;
static struct rds_script sc_submit_tenant, sc_admit, sc_reserve, sc_tenant_info,
    sc_tenant_spend, sc_cache_claim, sc_cache_put;
static struct rds_script sc_quality, sc_feedback, sc_eval_reserve;
static const struct rds_script *const scripts[] = {
    &sc_submit,     &sc_get,          &sc_finish,       &sc_transition,
    &sc_redeliver,  &sc_requeue,     &sc_fold,         &sc_guard,        &sc_totals,
    &sc_slot,       &sc_slot_renew,  &sc_wh_claim,     &sc_wh_done,      &sc_submit_tenant,
    &sc_admit,      &sc_reserve,     &sc_tenant_info,  &sc_tenant_spend, &sc_cache_claim,
    &sc_cache_put,  &sc_quality,     &sc_feedback,     &sc_eval_reserve};

static void scripts_init(void)
{
    static int done;
    if (done)
        return;
    done = 1;
    rds_script_init(&sc_submit, SUBMIT_LUA);
    rds_script_init(&sc_get, GET_LUA);
    rds_script_init(&sc_finish, FINISH_LUA);
    rds_script_init(&sc_transition, TRANSITION_LUA);
    rds_script_init(&sc_redeliver, REDELIVER_LUA);
    rds_script_init(&sc_requeue, REQUEUE_LUA);
    rds_script_init(&sc_fold, FOLD_LUA);
    rds_script_init(&sc_guard, GUARD_LUA);
    rds_script_init(&sc_totals, TOTALS_LUA);
    rds_script_init(&sc_slot, SLOT_LUA);
    rds_script_init(&sc_slot_renew, SLOT_RENEW_LUA);
    rds_script_init(&sc_wh_claim, WH_CLAIM_LUA);
    rds_script_init(&sc_wh_done, WH_DONE_LUA);
    rds_script_init(&sc_submit_tenant, SUBMIT_TENANT_LUA);
    rds_script_init(&sc_admit, ADMIT_LUA);
    rds_script_init(&sc_reserve, RESERVE_LUA);
    rds_script_init(&sc_tenant_info, TENANT_INFO_LUA);
    rds_script_init(&sc_tenant_spend, TENANT_SPEND_LUA);
    rds_script_init(&sc_cache_claim, CACHE_CLAIM_LUA);
    rds_script_init(&sc_cache_put, CACHE_PUT_LUA);
    rds_script_init(&sc_quality, QUALITY_LUA);
    rds_script_init(&sc_feedback, FEEDBACK_LUA);
    rds_script_init(&sc_eval_reserve, EVAL_RESERVE_LUA);
}

/* --- replies and callbacks ---------------------------------------------------------------- */

/* A callback and its data, carried through one Redis command. */
struct op {
    struct store *s;
    void (*fn)(void);
    void *data;
};

static struct op *op_new(struct store *s, void (*fn)(void), void *data)
{
    struct op *o = malloc(sizeof(*o));
    if (o) {
        o->s = s;
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

/* Copy a reply string into a NUL-terminated buffer ("" when it is not a string). */
static void reply_copy(const struct rds_reply *x, char *buf, size_t len)
{
    size_t n;
    const char *p = rds_reply_str(x, &n);
    if (!p) {
        buf[0] = '\0';
        return;
    }
    if (n >= len)
        n = len - 1;
    memcpy(buf, p, n);
    buf[n] = '\0';
}

/* The status a reply stands for: 0, BD_EREDIS_DOWN (no reply: the connection dropped or
 * timed out) or BD_EREDIS_REPLY (an error reply - kept for store_last_reply_error - or
 * another type than want; want RDS_OTHER accepts any non-error). */
static int reply_status(struct store *s, const struct rds_reply *x, enum rds_type want)
{
    if (!x)
        return BD_EREDIS_DOWN;
    if (rds_reply_type(x) == RDS_ERROR) {
        char msg[sizeof(s->last_reply_error)];
        reply_copy(x, msg, sizeof(msg));
        if (strcmp(msg, s->last_reply_error) != 0)
            log_error("redis refused a command: %s", msg);
        memcpy(s->last_reply_error, msg, sizeof(msg));
        return BD_EREDIS_REPLY;
    }
    return (want == RDS_OTHER || rds_reply_type(x) == want) ? 0 : BD_EREDIS_REPLY;
}

static char *reply_dup(const struct rds_reply *x, size_t *len)
{
    size_t n;
    const char *p = rds_reply_str(x, &n);
    char *d = p ? malloc(n + 1) : NULL;
    if (d) {
        memcpy(d, p, n);
        d[n] = '\0';
        if (len)
            *len = n;
    }
    return d;
}

static char *elem_dup(const struct rds_reply *x, size_t i, size_t *len)
{
    return reply_dup(rds_reply_elem(x, i), len);
}

/* A flat [field, value, ...] reply merged into m (numbers summed). */
static void merge_flat(cJSON *m, const struct rds_reply *x)
{
    for (size_t k = 0; m && k + 1 < rds_reply_len(x); k += 2) {
        char fb[256], vb[48];
        cJSON *it;
        reply_copy(rds_reply_elem(x, k), fb, sizeof(fb));
        reply_copy(rds_reply_elem(x, k + 1), vb, sizeof(vb));
        if (!fb[0] || !vb[0])
            continue;
        it = cJSON_GetObjectItemCaseSensitive(m, fb);
        if (it)
            cJSON_SetNumberValue(it, it->valuedouble + strtod(vb, NULL));
        else
            cJSON_AddNumberToObject(m, fb, strtod(vb, NULL));
    }
}

static int evalsha(struct store *s, struct rds *r, rds_cb cb, void *data,
                   const struct rds_script *sc, int nkeys, int nargs, const char *const *args,
                   const size_t *lens)
{
    struct rds *c = r ? r : s->cmd;
    if (!c)
        return BD_EREDIS_DOWN; /* closed */
    return rds_evalsha(c, cb, data, sc, nkeys, nargs, args, lens);
}

/* --- connections ----------------------------------------------------------------------------- */

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
        rds_cmd(r, on_group, NULL, "XGROUP CREATE %s %s 0 MKSTREAM", k, GROUP);
    }
}

static void heartbeat(struct store *s);
static void kick_finishes(struct store *s);
static void kick_transitions(struct store *s);

static void measure_clock(struct store *s);

static void on_cmd_state(struct rds *r, enum rds_state st, void *data)
{
    struct store *s = data;
    if (st == RDS_CONNECTED) {
        measure_clock(s);
        if (s->consumer)
            ensure_groups(s, r);
        s->depth_at = 0;
        heartbeat(s);
        kick_finishes(s);
        kick_transitions(s);
    }
    if (s->state_cb && st != RDS_CLOSED)
        s->state_cb(s->state_data, st == RDS_CONNECTED);
}

static void on_tick(uv_timer_t *t);

static int copy_opts(struct store *s, const struct store_opts *o)
{
    s->host = strdup(o->host ? o->host : "127.0.0.1");
    s->user = o->user ? strdup(o->user) : NULL;
    s->password = o->password ? strdup(o->password) : NULL;
    if (!s->host || (o->user && !s->user) || (o->password && !s->password))
        return BD_ENOMEM;
    snprintf(s->tag, sizeof(s->tag), "{%s}", o->prefix ? o->prefix : "briefd:");
    snprintf(s->instance, sizeof(s->instance), "%s", o->instance ? o->instance : "briefd");
    snprintf(s->role, sizeof(s->role), "%s", o->role ? o->role : "all");
    s->consumer = o->consumer;
    s->retention_s = o->stats_retention_s > 0 ? o->stats_retention_s : 604800;
    memset(&s->ropts, 0, sizeof(s->ropts));
    s->ropts.host = s->host;
    s->ropts.port = o->port;
    s->ropts.db = o->db;
    s->ropts.user = s->user;
    s->ropts.password = s->password;
    s->ropts.name = "cmd";
    s->ropts.connect_timeout_ms = o->connect_timeout_ms;
    s->ropts.command_timeout_ms = o->command_timeout_ms > 0 ? o->command_timeout_ms : 3000;
    s->ropts.scripts = scripts;
    s->ropts.n_scripts = sizeof(scripts) / sizeof(scripts[0]);
    s->ropts.want_primary = 1;
    s->ropts.tls = o->tls;
    s->tls_ca = o->tls_ca_file ? strdup(o->tls_ca_file) : NULL;
    s->ropts.tls_ca_file = s->tls_ca;
    s->acks = o->min_replicas_acked;
    s->ack_timeout_ms = o->replica_ack_timeout_ms > 0 ? o->replica_ack_timeout_ms : 1000;
    return o->tls_ca_file && !s->tls_ca ? BD_ENOMEM : 0;
}

/* --- following the primary (clients/rloc.h; docs/REDIS.md) ------------------------------ */

static int open_locator(struct store *s, const struct store_opts *o)
{
    struct rloc_opts lo;
    memset(&lo, 0, sizeof(lo));
    lo.host = s->host;
    lo.port = o->port;
    lo.user = s->user;
    lo.password = s->password;
    lo.sentinels = o->sentinels;
    lo.n_sentinels = o->n_sentinels;
    lo.master_name = o->master_name;
    lo.sentinel_password = o->sentinel_password;
    lo.slot = rloc_slot(s->tag, strlen(s->tag));
    lo.connect_timeout_ms = o->connect_timeout_ms;
    lo.command_timeout_ms = s->ropts.command_timeout_ms;
    return rloc_open(s->loop, &lo, &s->loc);
}

/* Open one of the store's connections at the primary (or waiting for its address), following
 * it from now on. */
static int open_conn(struct store *s, struct rds_opts *o, rds_state_cb cb, struct rds **out)
{
    int rc;
    o->no_target = !rloc_known(s->loc);
    if (rloc_known(s->loc)) {
        o->host = rloc_host(s->loc);
        o->port = rloc_port(s->loc);
    }
    rc = rds_open(s->loop, o, cb, s, out);
    if (rc == 0)
        rc = rloc_follow(s->loc, *out);
    return rc;
}

/* Close one of the store's connections (NULL: none). */
static void close_conn(struct store *s, struct rds *r, void (*cb)(void *data), void *data)
{
    if (!r)
        return;
    if (s->loc)
        rloc_unfollow(s->loc, r);
    rds_close(r, cb, data);
}

static int open_conns(struct store *s, const struct store_opts *o)
{
    struct rds_opts a = s->ropts, c = s->ropts;
    int rc = open_locator(s, o);
    if (rc == 0)
        rc = open_conn(s, &c, on_cmd_state, &s->cmd);
    if (rc == 0 && s->acks > 0) {
        a.name = "ack";
        a.block_allowance_ms = 2 * s->ack_timeout_ms; /* the WAIT in flight, then its own */
        rc = open_conn(s, &a, NULL, &s->ack);
        if (rc == 0)
            rc = rwait_new(s->ack, s->acks, s->ack_timeout_ms, &s->waits);
    }
    if (rc != 0) {
        close_conn(s, s->cmd, NULL, NULL);
        close_conn(s, s->ack, NULL, NULL);
        rwait_free(s->waits);
        if (s->loc)
            rloc_close(s->loc, NULL, NULL);
        s->cmd = s->ack = NULL;
        s->loc = NULL;
    }
    return rc;
}

const char *store_primary(const struct store *s, int *port, const char **via)
{
    *port = s->loc ? rloc_port(s->loc) : 0;
    *via = s->loc ? rloc_mode_name(rloc_mode(s->loc)) : "url";
    return s->loc ? rloc_host(s->loc) : "";
}

static void wipe_free(char *p)
{
    if (p) {
        explicit_bzero(p, strlen(p));
        free(p);
    }
}

static void free_store(struct store *s)
{
    void (*cb)(void *) = s->close_cb;
    void *data = s->close_data;
    free(s->host);
    free(s->tls_ca);
    free(s->batch_keys);
    wipe_free(s->user);
    wipe_free(s->password);
    free(s);
    if (cb)
        cb(data);
}

int store_open(uv_loop_t *loop, const struct store_opts *o, store_state_cb cb, void *data,
               struct store **out)
{
    struct store *s = calloc(1, sizeof(*s));
    int rc;
    if (!s)
        return BD_ENOMEM;
    scripts_init();
    s->loop = loop;
    s->state_cb = cb;
    s->state_data = data;
    list_init(&s->finishes);
    list_init(&s->held_gets);
    list_init(&s->transitions);
    rc = copy_opts(s, o);
    if (rc == 0)
        rc = open_conns(s, o);
    if (rc != 0) {
        free_store(s);
        return rc;
    }
    uv_timer_init(loop, &s->tick);
    s->tick.data = s;
    uv_timer_start(&s->tick, on_tick, 250, 250);
    uv_timer_init(loop, &s->hold);
    s->hold.data = s;
    *out = s;
    return 0;
}

int store_ready(const struct store *s)
{
    return s->cmd && rds_state(s->cmd) == RDS_CONNECTED;
}

const char *store_last_error(const struct store *s)
{
    return store_ready(s) || !s->cmd ? "" : rds_last_error(s->cmd);
}

const char *store_last_reply_error(const struct store *s) { return s->last_reply_error; }

const char *store_instance(const struct store *s) { return s->instance; }

void store_set_retention(struct store *s, long stats_retention_s)
{
    if (stats_retention_s > 0)
        s->retention_s = stats_retention_s;
}

/* --- events ------------------------------------------------------------------------------- */

#define EVENT_ORIGIN "origin" /* the status of a message's origin line (parse_events) */

/* A published message: events "<id> <status> <len>\n<len bytes of job JSON>\n", one after
 * the other. A finish batch's message starts with "<process> origin 0\n\n": the process
 * that finished those jobs has delivered their events (with their job objects) in process
 * already and skips the message. */
static void parse_events(struct store *s, const char *p, size_t n)
{
    const char *end = p + n;
    while (p < end) {
        char id[160], status[16]; /* an id, or an origin line's process name */
        unsigned long len = 0;
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        char head[200];
        if (!nl || (size_t)(nl - p) >= sizeof(head))
            return;
        memcpy(head, p, (size_t)(nl - p));
        head[nl - p] = '\0';
        if (sscanf(head, "%159s %15s %lu", id, status, &len) != 3 ||
            len > (unsigned long)(end - nl - 1))
            return;
        if (strcmp(status, EVENT_ORIGIN) == 0) {
            if (strcmp(id, s->instance) == 0)
                return;
            p = nl + 1 + len + 1;
            continue;
        }
        s->event_cb(s->event_data, id, status, len ? nl + 1 : NULL, len);
        p = nl + 1 + len + 1;
    }
}

static void on_event(struct rds *r, struct rds_reply *x, void *data)
{
    struct store *s = data;
    size_t n;
    const char *p;
    (void)r;
    if (!x || rds_reply_len(x) != 3 || !s->event_cb)
        return;
    if (rds_reply_is(rds_reply_elem(x, 0), "subscribe")) {
        s->event_cb(s->event_data, NULL, NULL, NULL, 0);
        return;
    }
    if (!rds_reply_is(rds_reply_elem(x, 0), "message"))
        return;
    p = rds_reply_str(rds_reply_elem(x, 2), &n);
    if (p)
        parse_events(s, p, n);
}

static void on_sub_state(struct rds *r, enum rds_state st, void *data)
{
    struct store *s = data;
    char chan[KEY_MAX];
    if (st != RDS_CONNECTED)
        return;
    key(s, chan, "events", NULL);
    rds_subscribe(r, chan, on_event, s);
}

static void on_sub_closed(void *data) { (void)data; }

void store_unwatch(struct store *s)
{
    struct rds *sub = s->sub;
    s->event_cb = NULL;
    s->sub = NULL;
    close_conn(s, sub, on_sub_closed, NULL);
}

int store_watch(struct store *s, store_event_cb cb, void *data)
{
    struct rds_opts o = s->ropts;
    s->event_cb = cb;
    s->event_data = data;
    o.name = "sub";
    o.command_timeout_ms = 0; /* a subscription waits by design */
    o.scripts = NULL;
    o.n_scripts = 0;
    return open_conn(s, &o, on_sub_state, &s->sub);
}

/* --- submit -------------------------------------------------------------------------------- */

/* With min_replicas_acked, a submit's answer waits for the WAIT sent right after it. */
enum ack_state { ACK_NONE = 0, ACK_WAITING, ACK_BROKEN };

struct submit_op {
    struct store *s;
    store_submit_cb cb;
    store_claim_cb claim_cb;    /* store_submit_claim's (then cb is NULL) */
    const struct store_entry *claimed; /* the entry its script read, during on_submit */
    void *data;
    enum job_priority prio;
    int checked;                /* the bound was checked in the script */
    int64_t deadline;           /* a plain XADD's deadline (Redis's clock, ms), 0: none */
    enum ack_state ack;
    int touched;                /* a duplicate's key was rewritten so WAIT covers it */
    /* the submit's outcome, held until WAIT answers */
    int st;
    enum store_submit_rc rc;
    long depth;
    int64_t created_ms;
    char id[JOB_ID_LEN + 1];
    char hash[64];
    char idem_value[200];       /* a duplicate: the key's value, rewritten before WAIT */
    char idem_key[KEY_MAX + 300];
};

/* Deliver the submit's outcome now, or hold it for WAIT. */
static void submit_done(struct submit_op *op, int st, enum store_submit_rc rc, long depth,
                        const char *id, int64_t created_ms, const char *hash)
{
    if (op->ack == ACK_BROKEN) /* written, but it cannot be acknowledged */
        op->cb(op->data, BD_EREDIS_DOWN, STORE_SUBMITTED, 0, NULL, 0, NULL);
    if (op->ack != ACK_WAITING) {
        if (op->ack == ACK_NONE && op->claim_cb)
            op->claim_cb(op->data, st, rc, depth, id, created_ms, hash, op->claimed);
        else if (op->ack == ACK_NONE)
            op->cb(op->data, st, rc, depth, id, created_ms, hash);
        return;
    }
    op->st = st;
    op->rc = rc;
    op->depth = depth;
    op->created_ms = created_ms;
    snprintf(op->id, sizeof(op->id), "%s", id ? id : "");
    snprintf(op->hash, sizeof(op->hash), "%s", hash ? hash : "");
}

/* "<entry> <prio> <hash>" stored for an idempotency key -> the job id and the hash. */
static void idem_existing(struct submit_op *op, const char *value)
{
    char entry[48] = "", hash[64] = "", id[JOB_ID_LEN + 1] = "";
    int prio = -1;
    if (sscanf(value, "%47s %d %63s", entry, &prio, hash) != 3 || prio < PRIO_LOW ||
        prio > PRIO_HIGH || job_id_of_entry(id, (enum job_priority)prio, entry) != 0) {
        submit_done(op, BD_EREDIS_REPLY, STORE_SUBMITTED, 0, NULL, 0, NULL);
        return;
    }
    snprintf(op->idem_value, sizeof(op->idem_value), "%s", value);
    submit_done(op, 0, STORE_DUPLICATE, 0, id, 0, hash);
}

static void submitted(struct submit_op *op, const char *entry, long depth)
{
    char id[JOB_ID_LEN + 1];
    struct store *s = op->s;
    if (job_id_of_entry(id, op->prio, entry) != 0) {
        submit_done(op, BD_EREDIS_REPLY, STORE_SUBMITTED, 0, NULL, 0, NULL);
        return;
    }
    if (depth >= 0) {
        s->depth_est = depth;
        s->depth_at = uv_now(s->loop);
        s->submitted_since = 0;
    }
    submit_done(op, 0, STORE_SUBMITTED, depth, id, job_id_ms(id), NULL);
}

static long limited_retry_s(const struct rds_reply *x);
static int take_entry(const struct rds_reply *e, enum job_priority p, struct store_entry *se);

/* Whether a plain XADD ran after its deadline (Redis's clock, ms; 0: none): the entry id's
 * first part is Redis's clock when it ran (or later, never earlier). Such an entry is
 * refused on both sides - its submit answers an error, the worker discards it. */
static int late_entry(const char *entry, int64_t deadline)
{
    return deadline > 0 && strtoll(entry, NULL, 10) > deadline;
}

static void on_submit(struct rds *r, struct rds_reply *x, void *data)
{
    struct submit_op *op = data;
    struct store_entry claimed;
    char what[16], arg[200], depth[24];
    int st;
    (void)r;
    st = reply_status(op->s, x, op->checked ? RDS_ARRAY : RDS_STRING);
    if (st != 0) {
        submit_done(op, st, STORE_SUBMITTED, 0, NULL, 0, NULL);
    } else if (!op->checked) {
        reply_copy(x, arg, sizeof(arg));
        if (late_entry(arg, op->deadline)) {
            log_warn("a submit reached Redis after briefd gave up on it (entry %s, deadline %lld):"
                     " refused; the worker that reads the entry discards it", arg,
                     (long long)op->deadline);
            submit_done(op, BD_EREDIS_REPLY, STORE_SUBMITTED, 0, NULL, 0, NULL);
        } else {
            submitted(op, arg, -1);
        }
    } else {
        reply_copy(rds_reply_elem(x, 0), what, sizeof(what));
        reply_copy(rds_reply_elem(x, 1), arg, sizeof(arg));
        reply_copy(rds_reply_elem(x, 2), depth, sizeof(depth));
        if (strcmp(what, "dup") == 0)
            idem_existing(op, arg);
        else if (strcmp(what, "full") == 0)
            submit_done(op, 0, STORE_FULL, atol(arg), NULL, 0, NULL);
        else if (strcmp(what, "rate") == 0 || strcmp(what, "budget") == 0)
            submit_done(op, 0, what[0] == 'r' ? STORE_TENANT_RATE : STORE_TENANT_BUDGET,
                        limited_retry_s(x), NULL, 0, NULL);
        else {
            if (op->claim_cb && rds_reply_len(x) > 3 &&
                take_entry(rds_reply_elem(x, 3), op->prio, &claimed) == 0)
                op->claimed = &claimed;
            submitted(op, arg, depth[0] ? atol(depth) : -1);
            op->claimed = NULL;
        }
    }
    if (op->ack != ACK_WAITING)
        free(op); /* else the WAIT's answer frees it */
}

/* WAIT answered for op's submit (n replicas, -1: no answer). */
static void on_acked(void *data, long long n)
{
    struct submit_op *op = data;
    if (op->st == 0 && op->rc != STORE_FULL && op->rc != STORE_TENANT_RATE &&
        op->rc != STORE_TENANT_BUDGET) { /* a refusal wrote nothing that matters */
        if (n < 0)
            op->st = BD_EREDIS_DOWN;
        else if (n < op->s->acks)
            op->st = BD_EREPLICATION;
    }
    if (op->st == 0 && op->rc == STORE_DUPLICATE && !op->touched && op->idem_key[0]) {
        /* the job the key names may have been written by another connection: rewrite the key
         * (same value and TTL) so that this connection's WAIT covers that job too */
        op->touched = 1;
        if (rds_cmd(op->s->ack, NULL, NULL, "SET %s %s XX KEEPTTL", op->idem_key,
                    op->idem_value) == 0 &&
            rwait_after(op->s->waits, on_acked, op) == 0)
            return;
        op->st = BD_EREDIS_DOWN;
    }
    if (op->st == BD_EREPLICATION)
        log_warn("submit %s: acknowledged by %lld of %d replicas within %d ms", op->id, n,
                 op->s->acks, op->s->ack_timeout_ms);
    op->cb(op->data, op->st, op->rc, op->depth, op->st == 0 ? op->id : NULL, op->created_ms,
           op->st == 0 && op->hash[0] ? op->hash : NULL);
    free(op);
}

/* Whether this submit must check the queue bound in Redis: when the last measurement is
 * stale, or the queue could be within a margin of the bound. Far from the bound a submit is
 * one XADD; other processes' submits since the last measurement can overshoot the bound only
 * by more than the margin (10% of it, at least 100) within DEPTH_STALE_MS. */
static int needs_check(struct store *s, long max_queue)
{
    long margin = max_queue / 10 > 100 ? max_queue / 10 : 100;
    if (s->depth_at == 0 || uv_now(s->loop) - s->depth_at > DEPTH_STALE_MS)
        return 1;
    return s->depth_est + s->submitted_since + margin >= max_queue;
}

/* --- a submit's deadline (Redis's clock): what runs later than briefd waited, never runs --- */

struct clock_op {
    struct store *s;
    int64_t t0;                 /* our wall clock when TIME was sent */
};

static void on_time(struct rds *r, struct rds_reply *x, void *data)
{
    struct clock_op *op = data;
    struct store *s = op->s;
    int64_t t1 = clock_wall_ms(), redis_ms;
    char sec[24], usec[24];
    (void)r;
    if (reply_status(s, x, RDS_ARRAY) == 0 && rds_reply_len(x) == 2) {
        reply_copy(rds_reply_elem(x, 0), sec, sizeof(sec));
        reply_copy(rds_reply_elem(x, 1), usec, sizeof(usec));
        redis_ms = atoll(sec) * 1000 + atoll(usec) / 1000;
        s->clock_off_ms = redis_ms - (op->t0 + t1) / 2;
        s->clock_err_ms = (t1 - op->t0) / 2 + 1;
        s->clock_ok = 1;
    }
    free(op);
}

/* On every (re)connect: how far Redis's clock is from ours (it may be another machine). */
static void measure_clock(struct store *s)
{
    struct clock_op *op = malloc(sizeof(*op));
    if (!op)
        return;
    op->s = s;
    op->t0 = clock_wall_ms();
    if (rds_cmd(s->cmd, on_time, op, "TIME") != 0)
        free(op);
}

/* The deadline of a submit sent now on conn, on Redis's clock: the earliest moment the
 * connection may give it up (rds_drop_at), less the clock's uncertainty and a margin; 0
 * (none) until the clock is measured or when commands are not timed. Returned, and written
 * into buf as the text the scripts and the entry's field d take. */
static int64_t submit_deadline(struct store *s, struct rds *conn, char *buf, size_t n)
{
    uint64_t at = conn ? rds_drop_at(conn) : 0;
    int64_t d = 0;
    if (s->clock_ok && at != 0)
        d = clock_wall_ms() + ((int64_t)at - (int64_t)uv_now(s->loop)) + s->clock_off_ms -
            s->clock_err_ms - LATE_MARGIN_MS;
    snprintf(buf, n, "%lld", (long long)d);
    return d;
}
static int submit_tenant(struct store *s, struct rds *conn, const struct store_submit *sub,
                         struct submit_op *op);

/* A tenant's limits are checked by a script of their own (submit_tenant). */
static int tenant_limited(const struct store_submit *sub)
{
    return sub->tenant && (sub->tenant_jpm > 0 || sub->tenant_budget_usd >= 0);
}

static int submit_send(struct store *s, const struct store_submit *sub, store_submit_cb cb,
                       store_claim_cb claim_cb, void *data)
{
    char kl[KEY_MAX], kn[KEY_MAX], kh[KEY_MAX], kidem[KEY_MAX + 300], maxq[24], prio[4], ttl[24];
    char deadline[24];
    const char *qs[3] = {kl, kn, kh};
    int idem = sub->idem_scope && sub->idem_key;
    struct submit_op *op = calloc(1, sizeof(*op));
    if (!op)
        return BD_ENOMEM;
    struct rds *conn = s->ack ? s->ack : s->cmd;
    int rc;
    op->s = s;
    op->cb = cb;
    op->claim_cb = claim_cb;
    op->data = data;
    op->prio = sub->priority;
    op->checked = idem || claim_cb || needs_check(s, sub->max_queue);
    if (tenant_limited(sub)) {
        op->checked = 1;
        rc = submit_tenant(s, conn, sub, op);
        goto sent;
    }
    key_queue(s, PRIO_LOW, kl);
    key_queue(s, PRIO_NORMAL, kn);
    key_queue(s, PRIO_HIGH, kh);
    op->deadline = submit_deadline(s, conn, deadline, sizeof(deadline));
    if (!op->checked) {
        s->submitted_since++;
        if (op->deadline > 0) { /* "d": a late entry is discarded by its reader */
            rc = rds_cmd(conn, on_submit, op, "XADD %s * r %s m %s d %s", qs[sub->priority],
                         sub->req_json, sub->meta_json, deadline);
        } else {
            rc = rds_cmd(conn, on_submit, op, "XADD %s * r %s m %s", qs[sub->priority],
                         sub->req_json, sub->meta_json);
        }
        goto sent;
    }
    if (idem) {
        char name[KEY_MAX + 200];
        snprintf(name, sizeof(name), "idem:%s:%s", sub->idem_scope, sub->idem_key);
        snprintf(kidem, sizeof(kidem), "%s%s", s->tag, name);
        snprintf(op->idem_key, sizeof(op->idem_key), "%s", kidem);
    }
    snprintf(maxq, sizeof(maxq), "%ld", needs_check(s, sub->max_queue) ? sub->max_queue : 0);
    snprintf(prio, sizeof(prio), "%d", (int)sub->priority);
    snprintf(ttl, sizeof(ttl), "%ld", sub->idem_ttl_s > 0 ? sub->idem_ttl_s : 86400);
    const char *args[13];
    int nk = 3, na = 0;
    args[na++] = kl;
    args[na++] = kn;
    args[na++] = kh;
    if (idem) {
        args[na++] = kidem;
        nk = 4;
    }
    args[na++] = prio;
    args[na++] = maxq;
    args[na++] = sub->req_json;
    args[na++] = sub->meta_json;
    args[na++] = idem ? sub->idem_hash : "";
    args[na++] = ttl;
    args[na++] = deadline;
    if (claim_cb) {
        args[na++] = GROUP;
        args[na++] = s->instance;
    }
    rc = evalsha(s, conn, on_submit, op, &sc_submit, nk, na, args, NULL);
sent:
    if (rc == 0 && s->ack)
        op->ack = rwait_after(s->waits, on_acked, op) == 0 ? ACK_WAITING : ACK_BROKEN;
    return send_or_free(rc, op);
}

int store_submit(struct store *s, const struct store_submit *sub, store_submit_cb cb,
                 void *data)
{
    return submit_send(s, sub, cb, NULL, data);
}

int store_submit_claim(struct store *s, const struct store_submit *sub, store_claim_cb cb,
                       void *data)
{
    if (s->ack || tenant_limited(sub))
        return BD_EINVAL;
    return submit_send(s, sub, NULL, cb, data);
}

/* --- the job object ------------------------------------------------------------------------- */

/* Move every member of o (deleted afterwards) into job, replacing what is there. */
static void merge_members(cJSON *job, cJSON *o)
{
    cJSON *it;
    if (!o)
        return;
    it = o->child;
    while (it) {
        cJSON *next = it->next;
        cJSON_DeleteItemFromObjectCaseSensitive(job, it->string);
        /* moved with its name (no copy of the name): appended as an array would be */
        cJSON_AddItemToArray(job, cJSON_DetachItemViaPointer(o, it));
        it = next;
    }
    cJSON_Delete(o);
}

cJSON *store_job_object(const char *id, const char *status, int64_t created_ms, int attempts,
                        const char *meta, cJSON *out, int64_t finished_ms)
{
    cJSON *job = cJSON_CreateObject();
    char ts[40];
    if (!job) {
        cJSON_Delete(out);
        return NULL;
    }
    cJSON_AddStringToObject(job, "id", id);
    cJSON_AddStringToObject(job, "object", "brief.job");
    cJSON_AddStringToObject(job, "status", status ? status : "queued");
    clock_iso8601(created_ms, ts, sizeof(ts));
    cJSON_AddStringToObject(job, "created_at", ts);
    if (finished_ms > 0) {
        clock_iso8601(finished_ms, ts, sizeof(ts));
        cJSON_AddStringToObject(job, "finished_at", ts);
    } else {
        cJSON_AddNullToObject(job, "finished_at");
    }
    cJSON_AddNumberToObject(job, "attempts", attempts);
    merge_members(job, meta ? cJSON_Parse(meta) : NULL);
    cJSON_DeleteItemFromObjectCaseSensitive(job, STORE_WAITER); /* internal (store.h) */
    merge_members(job, out);
    if (!cJSON_GetObjectItemCaseSensitive(job, "result"))
        cJSON_AddNullToObject(job, "result");
    if (!cJSON_GetObjectItemCaseSensitive(job, "error"))
        cJSON_AddNullToObject(job, "error");
    return job;
}

/* The base members of a job object, the object left open: {"id", "object", "status",
 * "created_at", "finished_at", "attempts" - as store_job_object adds them. */
static void put_job_base(struct sbuf *b, const char *id, const char *status, int64_t created_ms,
                         int attempts, int64_t finished_ms)
{
    char ts[40];
    sbuf_adds(b, "{\"id\":");
    jsonx_write_string(b, id);
    sbuf_adds(b, ",\"object\":\"brief.job\",\"status\":");
    jsonx_write_string(b, status ? status : "queued");
    clock_iso8601(created_ms, ts, sizeof(ts));
    sbuf_adds(b, ",\"created_at\":");
    jsonx_write_string(b, ts);
    sbuf_adds(b, ",\"finished_at\":");
    if (finished_ms > 0) {
        clock_iso8601(finished_ms, ts, sizeof(ts));
        jsonx_write_string(b, ts);
    } else {
        sbuf_adds(b, "null");
    }
    sbuf_adds(b, ",\"attempts\":");
    jsonx_write_number(b, attempts);
}

/* 1 if k[0..kl) names a member store_job_object sets itself: a base one, or (with
 * result_error) the "result" and "error" it adds when nothing else did. */
static int base_member(const char *k, size_t kl, int result_error)
{
    static const char *const names[] = {"id", "object", "status", "created_at", "finished_at",
                                        "attempts", "result", "error", NULL};
    for (size_t i = 0; names[i] && (result_error || i < 6); i++)
        if (strlen(names[i]) == kl && memcmp(names[i], k, kl) == 0)
            return 1;
    return 0;
}

/* 1 if out's members print as they are, in their order: all named, no name twice, none a
 * base member or the waiter mark (the tree would move or drop those). */
static int out_plain(const cJSON *out)
{
    const cJSON *it;
    if (out && !cJSON_IsObject(out))
        return 0;
    cJSON_ArrayForEach(it, out) {
        if (!it->string || cJSON_GetObjectItemCaseSensitive(out, it->string) != it ||
            base_member(it->string, strlen(it->string), 0) ||
            strcmp(it->string, STORE_WAITER) == 0)
            return 0;
    }
    return 1;
}

/* meta's members (JSON object text, as briefd prints it), but the waiter mark and those out
 * replaces, copied as text: ,"name":value each. -1 when the text is not the plain shape this
 * expects (a name with escapes, a base member): the caller builds the tree instead. */
static int put_meta_members(struct sbuf *b, const char *meta, const cJSON *out)
{
    const char *e = meta + strlen(meta), *p = jscan_ws(meta, e);
    if (p >= e || *p != '{')
        return -1;
    p = jscan_ws(p + 1, e);
    while (p < e && *p != '}') {
        const char *k, *v, *end;
        size_t kl;
        int odd = 0;
        char name[64];
        v = jscan_key(p, e, &k, &kl, &odd);
        end = v ? jscan_skip(v, e) : NULL;
        if (!end || odd || kl >= sizeof(name) || base_member(k, kl, 1))
            return -1;
        memcpy(name, k, kl);
        name[kl] = '\0';
        if (strcmp(name, STORE_WAITER) != 0 && !cJSON_GetObjectItemCaseSensitive(out, name)) {
            sbuf_addc(b, ',');
            sbuf_add(b, p, (size_t)(end - p)); /* "name":value, as printed */
        }
        p = jscan_ws(jscan_next(v, e), e);
    }
    return p < e ? 0 : -1;
}

char *store_job_text(const char *id, const char *status, int64_t created_ms, int attempts,
                     const char *meta, cJSON *out, int64_t finished_ms)
{
    struct sbuf b = {0};
    const cJSON *it;
    int plain = out_plain(out);
    put_job_base(&b, id, status, created_ms, attempts, finished_ms);
    if (plain && meta && put_meta_members(&b, meta, out) != 0)
        plain = 0;
    if (!plain) {
        cJSON *job = store_job_object(id, status, created_ms, attempts, meta, out, finished_ms);
        char *text = job ? jsonx_print(job) : NULL;
        cJSON_Delete(job);
        free(sbuf_take(&b));
        return text;
    }
    cJSON_ArrayForEach(it, out)
        jsonx_write_member(&b, it->string, it);
    if (!cJSON_GetObjectItemCaseSensitive(out, "result"))
        sbuf_adds(&b, ",\"result\":null");
    if (!cJSON_GetObjectItemCaseSensitive(out, "error"))
        sbuf_adds(&b, ",\"error\":null");
    sbuf_addc(&b, '}');
    cJSON_Delete(out);
    return sbuf_take(&b);
}

/* --- get ------------------------------------------------------------------------------------ */

struct get_op {
    struct list_node node;      /* s->held_gets, while held */
    struct store *s;
    store_job_cb cb;
    void *data;
    char id[JOB_ID_LEN + 1];
    int with_record;            /* the script returns the record (else: rec, read before it) */
    char *rec;                  /* the record as the plain GET before the script read it */
    int unsent;                 /* the script could not follow the GET: its error */
};

static int send_get(struct get_op *g);

static void get_op_free(struct get_op *g)
{
    free(g->rec);
    free(g);
}

static cJSON *record_header(const char *rec, size_t len);
static void restore_kept_draft(cJSON *job);

/* The stored record's "job" member (as GET returns it). */
static cJSON *record_job(const char *rec)
{
    cJSON *r = record_header(rec, strlen(rec)), *job;
    if (!r)
        return NULL;
    job = cJSON_DetachItemFromObjectCaseSensitive(r, "job");
    cJSON_Delete(r);
    restore_kept_draft(job);
    return job;
}

/* A live job from its entry's fields ([f, v, ...]), whether it is pending (a worker holds it)
 * and its running status. */
static cJSON *live_job(const char *id, const struct rds_reply *fields, int pending,
                       const char *run)
{
    char *meta = NULL, a[16] = "1", c[24] = "";
    cJSON *job;
    int attempt;
    for (size_t k = 0; k + 1 < rds_reply_len(fields); k += 2) {
        const struct rds_reply *f = rds_reply_elem(fields, k);
        if (rds_reply_is(f, "m") && !meta)
            meta = elem_dup(fields, k + 1, NULL);
        else if (rds_reply_is(f, "a"))
            reply_copy(rds_reply_elem(fields, k + 1), a, sizeof(a));
        else if (rds_reply_is(f, "c"))
            reply_copy(rds_reply_elem(fields, k + 1), c, sizeof(c));
    }
    attempt = atoi(a);
    job = store_job_object(id, pending ? (run[0] ? run : "drafting") : "queued",
                           c[0] ? atoll(c) : job_id_ms(id), pending ? attempt : attempt - 1,
                           meta, NULL, 0);
    free(meta);
    return job;
}

/* A finished job's webhook outcome, kept beside its record (store_webhook_done), replaces
 * the "webhook" member it was stored with. */
static void join_webhook(cJSON *job, const struct rds_reply *st)
{
    size_t n;
    const char *p = rds_reply_str(st, &n);
    cJSON *w = job && p && n ? cJSON_ParseWithLength(p, n) : NULL;
    if (!w)
        return;
    cJSON_DeleteItemFromObjectCaseSensitive(job, "webhook");
    cJSON_AddItemToObject(job, "webhook", w);
}

/* Add a finished job's side keys to its object: "quality" (the stored JSON) and
 * "feedback" (the list, oldest first); each only when there is one. */
static void add_side(cJSON *job, const struct rds_reply *q, const struct rds_reply *fb)
{
    size_t n;
    const char *p = rds_reply_str(q, &n);
    cJSON *o, *arr;
    if (p && n > 0) {
        o = cJSON_ParseWithLength(p, n);
        if (o)
            cJSON_AddItemToObject(job, "quality", o);
    }
    if (rds_reply_len(fb) == 0)
        return;
    arr = cJSON_AddArrayToObject(job, "feedback");
    for (size_t i = 0; arr && i < rds_reply_len(fb); i++) {
        p = rds_reply_str(rds_reply_elem(fb, i), &n);
        o = p ? cJSON_ParseWithLength(p, n) : NULL;
        if (o)
            cJSON_AddItemToArray(arr, o);
    }
}

static void on_get(struct rds *r, struct rds_reply *x, void *data)
{
    struct get_op *g = data;
    char what[8], run[16];
    int st = reply_status(g->s, x, RDS_ARRAY);
    cJSON *job = NULL;
    (void)r;
    if (st != 0 || rds_reply_len(x) < 1) {
        g->cb(g->data, st ? st : BD_EREDIS_REPLY, NULL);
        get_op_free(g);
        return;
    }
    reply_copy(rds_reply_elem(x, 0), what, sizeof(what));
    if (strcmp(what, "done") == 0) {
        char *rec = g->with_record ? elem_dup(x, 1, NULL) : g->rec;
        if (!rec && !g->with_record) { /* it ended between the GET and the script */
            g->with_record = 1;
            st = send_get(g);
            if (st != 0) {
                g->cb(g->data, st, NULL);
                get_op_free(g);
            }
            return;
        }
        job = rec ? record_job(rec) : NULL;
        if (g->with_record)
            free(rec);
        join_webhook(job, rds_reply_elem(x, 2));
        if (job && rds_reply_len(x) == 5)
            add_side(job, rds_reply_elem(x, 3), rds_reply_elem(x, 4));
    } else if (strcmp(what, "live") == 0 && rds_reply_len(x) == 4) {
        reply_copy(rds_reply_elem(x, 3), run, sizeof(run));
        job = live_job(g->id, rds_reply_elem(x, 1), rds_reply_int(rds_reply_elem(x, 2)) != 0,
                       run);
    } else {
        g->cb(g->data, BD_ENOTFOUND, NULL);
        get_op_free(g);
        return;
    }
    g->cb(g->data, job ? 0 : BD_ENOMEM, job);
    get_op_free(g);
}

/* The plain GET's reply, which comes just before the script's (same connection). */
static void on_get_record(struct rds *r, struct rds_reply *x, void *data)
{
    struct get_op *g = data;
    (void)r;
    free(g->rec);
    g->rec = x && rds_reply_type(x) == RDS_STRING ? reply_dup(x, NULL) : NULL;
    if (g->unsent) { /* the script could not be sent after this GET: fail here */
        g->cb(g->data, g->unsent, NULL);
        get_op_free(g);
    }
}

/* Send the reads of g: the script, after a plain GET of the record unless the script is
 * to return it. */
static int send_get(struct get_op *g)
{
    struct store *s = g->s;
    const char *id = g->id;
    char kjob[KEY_MAX], kx[KEY_MAX], krun[KEY_MAX], kl[KEY_MAX], kn[KEY_MAX], kh[KEY_MAX];
    char kw[KEY_MAX], kq[KEY_MAX], kfb[KEY_MAX], entry[48] = "", prio[4] = "";
    enum job_priority p;
    int rc;
    key(s, kjob, "job:", id);
    key(s, kx, "jobx:", id);
    key(s, krun, "run:", id);
    key(s, kw, "wh:st:", id);
    key_queue(s, PRIO_LOW, kl);
    key_queue(s, PRIO_NORMAL, kn);
    key_queue(s, PRIO_HIGH, kh);
    key(s, kq, "quality:", id);
    key(s, kfb, "feedback:", id);
    if (job_entry_of_id(id, &p, entry, sizeof(entry)) == 0)
        snprintf(prio, sizeof(prio), "%d", (int)p);
    if (!g->with_record && (rc = rds_cmd(s->cmd, on_get_record, g, "GET %s", kjob)) != 0)
        return rc;
    const char *args[] = {kjob, kx,  krun,  kl,    kn,   kh, kw, kq, kfb, GROUP, entry, prio,
                          g->with_record ? "1" : "0"};
    rc = evalsha(s, NULL, on_get, g, &sc_get, 9, 13, args, NULL);
    if (rc != 0 && !g->with_record) {
        g->unsent = rc; /* the GET's callback owns g now */
        return 0;
    }
    return rc;
}

static int finish_queued(const struct store *s, const char *id);
static int finish_waiting(const struct store *s, const char *id);

int store_get(struct store *s, const char *id, store_job_cb cb, void *data)
{
    struct get_op *g = calloc(1, sizeof(*g));
    int rc;
    if (!g)
        return BD_ENOMEM;
    g->s = s;
    g->cb = cb;
    g->data = data;
    list_init(&g->node);
    snprintf(g->id, sizeof(g->id), "%s", id);
    if (finish_queued(s, id)) { /* held (store_result.hold_ms): someone waits for it now */
        s->hold_over = 1;
        kick_finishes(s); /* sent now, unless a batch is in flight: then after it */
    }
    if (finish_waiting(s, id)) {
        /* read your writes: a job this process finished (the facade's, answered before its
         * record is stored) is read after its record, not before */
        list_push_back(&s->held_gets, &g->node);
        return 0;
    }
    rc = send_get(g);
    if (rc != 0)
        get_op_free(g);
    return rc;
}

/* --- reading the queue ------------------------------------------------------------------------ */

struct read_op {
    struct store *s;
    store_entries_cb cb;
    void *data;
    int prio;                   /* the stream claimed from (reclaim), or -1 */
};

/* One entry [entry_id, [field, value, ...]] of stream p into se (strings borrowed from the
 * reply). Returns 0, or -1 when the entry is not usable. */
static int take_entry(const struct rds_reply *e, enum job_priority p, struct store_entry *se)
{
    const struct rds_reply *fields = rds_reply_elem(e, 1);
    char a[16] = "1", c[24] = "", h[16] = "0", d[24] = "";
    memset(se, 0, sizeof(*se));
    se->prio = p;
    reply_copy(rds_reply_elem(e, 0), se->entry, sizeof(se->entry));
    if (!se->entry[0])
        return -1;
    for (size_t k = 0; k + 1 < rds_reply_len(fields); k += 2) {
        const struct rds_reply *f = rds_reply_elem(fields, k), *v = rds_reply_elem(fields, k + 1);
        if (rds_reply_is(f, "r"))
            se->req = rds_reply_str(v, &se->req_len);
        else if (rds_reply_is(f, "m"))
            se->meta = rds_reply_str(v, &se->meta_len);
        else if (rds_reply_is(f, "id"))
            reply_copy(v, se->id, sizeof(se->id));
        else if (rds_reply_is(f, "a"))
            reply_copy(v, a, sizeof(a));
        else if (rds_reply_is(f, "c"))
            reply_copy(v, c, sizeof(c));
        else if (rds_reply_is(f, "h"))
            reply_copy(v, h, sizeof(h));
        else if (rds_reply_is(f, "x"))
            se->redelivered = 1;
        else if (rds_reply_is(f, "d"))
            reply_copy(v, d, sizeof(d));
    }
    if (!se->id[0] && job_id_of_entry(se->id, p, se->entry) != 0)
        se->id[0] = '\0';
    se->attempt = atoi(a) > 0 ? atoi(a) : 1;
    se->handbacks = atoi(h);
    se->created_ms = c[0] ? atoll(c) : job_id_ms(se->id);
    if (!se->req || !se->meta)
        se->id[0] = '\0'; /* not a job entry: the caller discards it */
    if (se->id[0] && late_entry(se->entry, strtoll(d, NULL, 10))) {
        log_warn("entry %s reached Redis after its submit gave up (deadline %s; the client was "
                 "answered an error): discarded, %s never runs", se->entry, d, se->id);
        se->id[0] = '\0';
    }
    return 0;
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

static size_t take_list(const struct rds_reply *entries, enum job_priority p,
                        struct store_entry *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < rds_reply_len(entries) && n < cap; i++)
        if (take_entry(rds_reply_elem(entries, i), p, &out[n]) == 0)
            n++;
    return n;
}

/* Entries of an XREADGROUP reply ([[stream, entries], ...] or nil) or of an XAUTOCLAIM
 * reply ([cursor, entries, ...]) into out. */
static size_t entries_of(struct read_op *op, const struct rds_reply *x, struct store_entry *out,
                         size_t cap)
{
    size_t n = 0;
    if (op->prio >= 0)
        return take_list(rds_reply_elem(x, 1), (enum job_priority)op->prio, out, cap);
    for (size_t i = 0; i < rds_reply_len(x); i++) {
        const struct rds_reply *st = rds_reply_elem(x, i);
        int p = prio_of_stream(op->s, rds_reply_elem(st, 0));
        if (p >= 0)
            n += take_list(rds_reply_elem(st, 1), (enum job_priority)p, out + n, cap - n);
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
    int st = reply_status(op->s, x, RDS_OTHER);
    (void)r;
    if (st == BD_EREDIS_REPLY && strncmp(op->s->last_reply_error, "NOGROUP", 7) == 0 &&
        op->s->cmd)
        ensure_groups(op->s, op->s->cmd);
    if (st != 0)
        op->cb(op->data, st, NULL, 0);
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
    o.block_allowance_ms = 5000; /* reads block up to a few seconds by design */
    o.scripts = NULL;
    o.n_scripts = 0;
    return open_conn(s, &o, on_blk_state, &s->blk);
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
                                    "XREADGROUP GROUP %s %s COUNT %s STREAMS %s >", GROUP,
                                    s->instance, n, qh),
                            op);
    }
    key_queue(s, PRIO_HIGH, qh);
    key_queue(s, PRIO_NORMAL, qn);
    key_queue(s, PRIO_LOW, ql);
    return send_or_free(rds_cmd(s->blk, on_read, op,
                                "XREADGROUP GROUP %s %s COUNT %s BLOCK %s STREAMS %s %s %s > > >",
                                GROUP, s->instance, n, blk, qh, qn, ql),
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
        close_conn(s, blk, on_blk_closed, s);
    else
        on_blk_closed(s);
}

static void on_claim(struct rds *r, struct rds_reply *x, void *data)
{
    struct read_op *op = data;
    int st = reply_status(op->s, x, RDS_ARRAY);
    (void)r;
    if (st != 0 || rds_reply_len(x) < 2) {
        op->cb(op->data, st ? st : BD_EREDIS_REPLY, NULL, 0);
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
                                GROUP, s->instance, idle, cursor, n),
                        op);
}

void store_discard(struct store *s, const struct store_entry *e)
{
    char q[KEY_MAX];
    key_queue(s, e->prio, q);
    rds_cmd(s->cmd, NULL, NULL, "XACK %s %s %s", q, GROUP, e->entry);
    rds_cmd(s->cmd, NULL, NULL, "XDEL %s %s", q, e->entry);
}

/* --- finish and transition batches ---------------------------------------------------------- */

enum item_kind { ITEM_FINISH, ITEM_TRANSITION };

struct batch_item {
    struct list_node node;
    enum item_kind kind;
    store_flag_cb cb;
    void *data;
    int prio;                   /* -1: a job never queued */
    char entry[48];
    char id[JOB_ID_LEN + 1];
    int has_x;
    char ttl[24];
    char status[16];
    char *record;               /* owned */
    char *delta;
    char *event;
    char *tenant;               /* the job's tenant, whose budget it settles (owned), or NULL */
    char cost[24];              /* its cost in picodollars */
    char *webhook;              /* "" or the delivery to keep (FINISH_LUA) */
    int remote_waiter;          /* another process waits for the job: publish its object */
    int hold_ms;                /* store_result.hold_ms (finishes) */
};

struct batch_op {
    struct store *s;
    enum item_kind kind;
    size_t n;
    struct batch_item *items[BATCH_MAX];
};

/* Whether id's finish is queued and not yet sent (the batch in flight is the first
 * s->finishing items of the queue). */
static int finish_queued(const struct store *s, const char *id)
{
    const struct list_node *it;
    size_t i = 0;
    for (it = s->finishes.next; it != &s->finishes; it = it->next, i++) {
        if (i >= s->finishing &&
            strcmp(LIST_ENTRY(it, const struct batch_item, node)->id, id) == 0)
            return 1;
    }
    return 0;
}

/* Whether id's finish waits behind the batch in flight: a read sent now would overtake it.
 * (With nothing in flight, a queued finish would go out before anything else.) */
static int finish_waiting(const struct store *s, const char *id)
{
    return s->finishing && finish_queued(s, id);
}

/* A finish leaves the queue (answered, or failed): the counts store_finish added to. */
static void finish_dequeued(struct store *s, const struct batch_item *it)
{
    s->n_finishes--;
    s->n_urgent -= it->hold_ms == 0;
}

/* After a finish batch was answered (and the next one sent): the held reads whose finish
 * went out follow it on the same connection, so they see its record (fail: the store is
 * closing, they fail). */
static void release_gets(struct store *s, int fail)
{
    struct list_node *it, *tmp;
    LIST_FOR_EACH_SAFE(it, tmp, &s->held_gets) {
        struct get_op *g = LIST_ENTRY(it, struct get_op, node);
        int rc;
        if (!fail && finish_waiting(s, g->id))
            continue;
        list_unlink(&g->node);
        rc = fail ? BD_ESHUTDOWN : send_get(g);
        if (rc != 0) {
            g->cb(g->data, rc, NULL);
            get_op_free(g);
        }
    }
}

static void item_free(struct batch_item *it)
{
    list_unlink(&it->node);
    free(it->record);
    free(it->delta);
    free(it->event);
    free(it->tenant);
    free(it->webhook);
    free(it);
}

static void item_done(struct batch_item *it, int status, int applied)
{
    store_flag_cb cb = it->cb;
    void *data = it->data;
    item_free(it);
    if (cb)
        cb(data, status, applied);
}

/* "<id> <status> <len>\n<json>\n" */
static char *event_text(const char *id, const char *status, const char *json)
{
    size_t len = json ? strlen(json) : 0;
    struct sbuf b = {0};
    char num[24];
    sbuf_adds(&b, id);
    sbuf_addc(&b, ' ');
    sbuf_adds(&b, status);
    sbuf_addc(&b, ' ');
    sbuf_add(&b, num, jsonx_int((long long)len, num));
    sbuf_addc(&b, '\n');
    if (json)
        sbuf_add(&b, json, len);
    sbuf_add(&b, "\n", 1);
    return sbuf_take(&b);
}

/* In job (a job object as briefd prints it), the member ,"draft":"..." of its "result" when it
 * is the same text as the result's "brief" (a draft kept, as most are): 1 and its span
 * [*at, *at + *n); 0 when there is none or the text is not the shape expected. */
static int kept_draft_span(const char *job, size_t len, size_t *at, size_t *n)
{
    const char *e = job + len, *p, *brief = NULL, *brief_end = NULL, *prev_end = NULL;
    int odd = 0;
    p = jscan_member(jscan_ws(job, e), e, "result", &odd);
    if (!p || *p != '{')
        return 0;
    for (p = jscan_ws(p + 1, e); p && p < e && *p == '"';) {
        const char *k, *v, *v_end;
        size_t kl;
        v = jscan_key(p, e, &k, &kl, &odd);
        v_end = v ? jscan_skip(v, e) : NULL;
        if (!v_end)
            return 0;
        if (kl == 5 && memcmp(k, "brief", 5) == 0 && *v == '"') {
            brief = v;
            brief_end = v_end;
        } else if (kl == 5 && memcmp(k, "draft", 5) == 0) {
            /* cut from the comma that ends the previous member (draft is never first) */
            if (!brief || !prev_end || *prev_end != ',' || *v != '"' ||
                v_end - v != brief_end - brief || memcmp(v, brief, (size_t)(v_end - v)) != 0)
                return 0;
            *at = (size_t)(prev_end - job);
            *n = (size_t)(v_end - prev_end);
            return 1;
        }
        prev_end = jscan_ws(v_end, e);
        p = jscan_next(v, e);
        p = p ? jscan_ws(p, e) : NULL;
    }
    return 0;
}

/* What kept_draft_span left out of a record, put back: a "result" with a string "brief" and
 * no "draft" gets "draft" (after "degraded", before "refine_error", as the job had it). */
static void restore_kept_draft(cJSON *job)
{
    cJSON *r = cJSON_GetObjectItemCaseSensitive(job, "result"), *re;
    const cJSON *brief = cJSON_GetObjectItemCaseSensitive(r, "brief");
    if (!cJSON_IsObject(r) || !cJSON_IsString(brief) ||
        cJSON_GetObjectItemCaseSensitive(r, "draft"))
        return;
    cJSON_AddStringToObject(r, "draft", brief->valuestring);
    if ((re = cJSON_DetachItemFromObjectCaseSensitive(r, "refine_error")) != NULL)
        cJSON_AddItemToObject(r, "refine_error", re);
}

/* The stored record: a header line {"delivery", "created_ms", "finished_ms", "job"} (the job
 * object as GET returns it, but for a kept draft's text: result.draft is left out when it is
 * result.brief, and put back by whatever reads the record - restore_kept_draft), then the
 * request and the metadata as they were queued, a line each (JSON printed unformatted has no
 * newline). "delivery" comes first: the finish script recognises its own earlier write by
 * that prefix. */
#define DEAD_LETTER_MARK "dead-letter" /* the "delivery" of a record the reclaim wrote */
static char *record_text(const char *delivery, int64_t created_ms, const char *req,
                         const char *meta, const char *job)
{
    struct sbuf b = {0};
    char num[24];
    size_t job_len = strlen(job), cut_at = 0, cut_n = 0;
    sbuf_add(&b, "{\"delivery\":", 12);
    jsonx_write_string(&b, delivery);
    sbuf_add(&b, ",\"created_ms\":", 14);
    sbuf_add(&b, num, jsonx_int((long long)created_ms, num));
    sbuf_add(&b, ",\"finished_ms\":", 15);
    sbuf_add(&b, num, jsonx_int((long long)clock_wall_ms(), num));
    sbuf_add(&b, ",\"job\":", 7);
    req = req ? req : "{}";
    meta = meta ? meta : "{}";
    if (!kept_draft_span(job, job_len, &cut_at, &cut_n))
        cut_at = job_len;
    sbuf_add(&b, job, cut_at);
    sbuf_add(&b, job + cut_at + cut_n, job_len - cut_at - cut_n);
    sbuf_add(&b, "}\n", 2);
    sbuf_add(&b, req, strlen(req));
    sbuf_add(&b, "\n", 1);
    sbuf_add(&b, meta, strlen(meta));
    return sbuf_take(&b);
}

/* The header line of a record, parsed. */
static cJSON *record_header(const char *rec, size_t len)
{
    const char *nl = memchr(rec, '\n', len);
    return cJSON_ParseWithLength(rec, nl ? (size_t)(nl - rec) : len);
}

/* What a finished job adds, as pushed on the pending list: a line "<ms>\t<source>\t<tenant>"
 * then "<field>\t<n>" a line each (stats.h: no tab or newline in any of them). */
static char *delta_text(const struct stats_delta *d)
{
    struct sbuf b = {0};
    char num[24];
    size_t n = jsonx_int((long long)d->at_ms, num);
    sbuf_add(&b, num, n);
    sbuf_addc(&b, '\t');
    sbuf_adds(&b, d->source);
    sbuf_addc(&b, '\t');
    sbuf_adds(&b, d->tenant);
    sbuf_addc(&b, '\n');
    for (size_t k = 0; k < d->n; k++) { /* "field\tN\n" (no printf: it showed in profiles) */
        sbuf_adds(&b, d->inc[k].field);
        sbuf_addc(&b, '\t');
        n = jsonx_int(d->inc[k].n, num);
        sbuf_add(&b, num, n);
        sbuf_addc(&b, '\n');
    }
    return sbuf_take(&b);
}

static void send_batch(struct store *s, enum item_kind kind);
static void close_step(struct store *s);

static struct list_node *queue_of(struct store *s, enum item_kind kind)
{
    return kind == ITEM_FINISH ? &s->finishes : &s->transitions;
}

/* The items of a batch stay first on their queue while it is in flight: answered, they are
 * taken off; on an unknown outcome (no reply: the connection dropped or timed out) finishes
 * stay to be sent again - the script recognises a delivery it already stored. */
static void on_batch(struct rds *r, struct rds_reply *x, void *data)
{
    struct batch_op *b = data;
    struct store *s = b->s;
    enum item_kind kind = b->kind;
    int st = reply_status(s, x, kind == ITEM_FINISH ? RDS_ARRAY : RDS_INTEGER);
    int resend = st == BD_EREDIS_DOWN && kind == ITEM_FINISH && !s->closing;
    (void)r;
    if (kind == ITEM_FINISH)
        s->finishing = 0;
    else
        s->transiting = 0;
    for (size_t i = 0; i < b->n && !resend; i++) {
        struct batch_item *it = b->items[i];
        if (kind == ITEM_FINISH) {
            int stored = st == 0 && rds_reply_int(rds_reply_elem(x, i)) > 0;
            finish_dequeued(s, it);
            if (stored && s->event_cb) /* the published event skips this process */
                parse_events(s, it->event, strlen(it->event));
            item_done(it, st, stored);
        } else {
            item_done(it, 0, 1);
        }
    }
    free(b);
    if (!resend)
        send_batch(s, kind);
    if (kind == ITEM_FINISH)
        release_gets(s, 0); /* with Redis down (resend), they fail like any read */
    if (s->closing)
        close_step(s);
}

static void key_tenant(const struct store *s, char *buf, const char *what, const char *day,
                       const char *tenant);

/* Where a finishing delivery writes its record before the finish script renames it into
 * place: P fin:<id>:<entry> (one key per delivery). */
static void key_record(const struct store *s, char *buf, const struct batch_item *it)
{
    char tail[sizeof(it->id) + sizeof(it->entry) + 1];
    size_t n = strlen(it->id);
    memcpy(tail, it->id, n);
    tail[n] = ':';
    memcpy(tail + n + 1, it->entry, strlen(it->entry) + 1);
    key(s, buf, "fin:", tail);
}

/* Per job: KEYS job, jobx, record, tenant spend, reservations, expiries (into kbuf[0..6));
 * ARGV the 10 values FINISH_LUA reads. */
static void add_finish_args(struct batch_item *it, const char **keys, const char **args,
                            char (*kbuf)[KEY_MAX], struct store *s, char *prio, const char *day)
{
    key(s, kbuf[0], "job:", it->id);
    key(s, kbuf[1], "jobx:", it->id);
    key_record(s, kbuf[2], it);
    if (it->tenant) {
        key_tenant(s, kbuf[3], "spend", day, it->tenant);
        key_tenant(s, kbuf[4], "resv", NULL, it->tenant);
        key_tenant(s, kbuf[5], "resvx", NULL, it->tenant);
    }
    for (int k = 0; k < 6; k++)
        keys[k] = (k >= 3 && !it->tenant) ? kbuf[0] : kbuf[k]; /* declared, never touched */
    snprintf(prio, 4, "%d", it->prio);
    args[0] = prio;
    args[1] = it->entry;
    args[2] = it->has_x ? "1" : "0";
    args[3] = it->status;
    args[4] = it->delta;
    args[5] = it->id;
    args[6] = it->tenant ? "1" : "0";
    args[7] = it->cost;
    args[8] = it->webhook ? it->webhook : "";
    args[9] = it->remote_waiter ? it->event : "";
}

/* The keys of a batch (BATCH_KEYS of them, enough for the largest), filled while the batch
 * is formatted into the connection's buffer: one batch at a time, so one array serves every
 * batch. NULL on OOM. */
#define BATCH_KEYS (4 + 6 * BATCH_MAX + 2)
static char (*batch_keys(struct store *s))[KEY_MAX]
{
    if (!s->batch_keys)
        s->batch_keys = malloc((size_t)BATCH_KEYS * KEY_MAX);
    return s->batch_keys;
}

/* A batch of finishes: each record written to its own key first (plain SETs, pipelined on
 * the same connection, so they run before the script), then the script. */
static int send_finishes(struct store *s, struct batch_op *b)
{
    size_t n = b->n;
    size_t nkeys = 4 + 6 * n + 2, nargs = nkeys + 4 + 10 * n;
    const char **argv = calloc(nargs, sizeof(*argv));
    char (*kbuf)[KEY_MAX] = batch_keys(s);
    char (*prio)[4] = calloc(n ? n : 1, 4);
    char chan[KEY_MAX], num[16], day[16], origin[sizeof(s->instance) + 16];
    int rc = BD_ENOMEM;
    if (!argv || !kbuf || !prio)
        goto out;
    for (int p = PRIO_LOW; p <= PRIO_HIGH; p++) {
        key_queue(s, (enum job_priority)p, kbuf[p]);
        argv[p] = kbuf[p];
    }
    key(s, kbuf[3], "stats:pend:", s->instance);
    argv[3] = kbuf[3];
    key(s, kbuf[nkeys - 2], "wh:q", NULL);
    key(s, kbuf[nkeys - 1], "wh:due", NULL);
    argv[nkeys - 2] = kbuf[nkeys - 2];
    argv[nkeys - 1] = kbuf[nkeys - 1];
    key(s, chan, "events", NULL);
    clock_utc_day(clock_wall_ms(), day, sizeof(day));
    snprintf(num, sizeof(num), "%zu", n);
    snprintf(origin, sizeof(origin), "%s " EVENT_ORIGIN " 0\n\n", s->instance);
    argv[nkeys] = GROUP;
    argv[nkeys + 1] = chan;
    argv[nkeys + 2] = num;
    argv[nkeys + 3] = origin;
    for (size_t i = 0; i < n; i++) {
        struct batch_item *it = b->items[i];
        add_finish_args(it, argv + 4 + 6 * i, argv + nkeys + 4 + 10 * i, kbuf + 4 + 6 * i, s,
                        prio[i], day);
        rc = rds_cmd(s->cmd, NULL, NULL, "SET %s %s EX %s", kbuf[4 + 6 * i + 2], it->record,
                     it->ttl);
        if (rc != 0)
            goto out;
    }
    rc = evalsha(s, NULL, on_batch, b, &sc_finish, (int)nkeys, (int)nargs, argv, NULL);
out:
    free(argv);
    free(prio);
    return rc;
}

static int send_transitions(struct store *s, struct batch_op *b)
{
    size_t n = b->n, nargs = n + 2 + 2 * n;
    const char **argv = calloc(nargs, sizeof(*argv));
    char (*kbuf)[KEY_MAX] = batch_keys(s);
    char chan[KEY_MAX], ttl[16];
    int rc = BD_ENOMEM;
    if (!argv || !kbuf)
        goto out;
    key(s, chan, "events", NULL);
    snprintf(ttl, sizeof(ttl), "%d", RUN_TTL_S);
    argv[n] = chan;
    argv[n + 1] = ttl;
    for (size_t i = 0; i < n; i++) {
        key(s, kbuf[i], "run:", b->items[i]->id);
        argv[i] = kbuf[i];
        argv[n + 2 + 2 * i] = b->items[i]->status;
        argv[n + 3 + 2 * i] = b->items[i]->event;
    }
    rc = evalsha(s, NULL, on_batch, b, &sc_transition, (int)n, (int)nargs, argv, NULL);
out:
    free(argv);
    return rc;
}

static void on_hold(uv_timer_t *t)
{
    struct store *s = t->data;
    s->hold_over = 1;
    kick_finishes(s);
}

/* Whether the queued finishes go now: one a client waits for, a full batch, the hold over,
 * or the store closing. Otherwise the hold starts (if it has not). */
static int finishes_due(struct store *s)
{
    if (s->n_urgent > 0 || s->n_finishes >= BATCH_MAX || s->hold_over || s->closing)
        return 1;
    if (!uv_is_active((uv_handle_t *)&s->hold))
        uv_timer_start(&s->hold, on_hold, (uint64_t)s->hold_ms, 0);
    return 0;
}

static void send_batch(struct store *s, enum item_kind kind)
{
    struct list_node *q = queue_of(s, kind), *it;
    size_t *busy = kind == ITEM_FINISH ? &s->finishing : &s->transiting;
    struct batch_op *b;
    int rc;
    if (*busy || list_empty(q) || !store_ready(s) || (kind == ITEM_FINISH && !finishes_due(s)))
        return;
    b = calloc(1, sizeof(*b));
    if (!b)
        return;
    b->s = s;
    b->kind = kind;
    for (it = q->next; it != q && b->n < BATCH_MAX; it = it->next)
        b->items[b->n++] = LIST_ENTRY(it, struct batch_item, node);
    rc = kind == ITEM_FINISH ? send_finishes(s, b) : send_transitions(s, b);
    if (rc != 0) {
        free(b);
        return; /* retried on the next tick or reconnect */
    }
    *busy = b->n;
    if (kind == ITEM_FINISH) { /* what is queued from now on waits for the next hold */
        s->hold_over = 0;
        uv_timer_stop(&s->hold);
    }
}

static void kick_finishes(struct store *s) { send_batch(s, ITEM_FINISH); }
static void kick_transitions(struct store *s) { send_batch(s, ITEM_TRANSITION); }

/* Fail every queued item (the store is closing without Redis). */
static void fail_queue(struct store *s, enum item_kind kind)
{
    struct list_node *q = queue_of(s, kind), *first;
    while ((first = list_first(q)) != NULL) {
        struct batch_item *it = LIST_ENTRY(first, struct batch_item, node);
        if (kind == ITEM_FINISH)
            finish_dequeued(s, it);
        item_done(it, BD_EREDIS_DOWN, 0);
    }
}

/* The delivery a finished job leaves for its callback_url: "<id> <now ms> <msg id> <url>", or
 * "" without one (malloc'd; NULL on OOM). */
static char *webhook_arg(const char *id, const struct store_result *r)
{
    char *out = NULL;
    if (!r->webhook_url || !r->webhook_msg_id)
        return strdup("");
    if (asprintf(&out, "%s %lld %s %s", id, (long long)clock_wall_ms(), r->webhook_msg_id,
                 r->webhook_url) < 0)
        return NULL;
    return out;
}

/* Whether the metadata names another process as the job's waiter (STORE_WAITER). */
static int remote_waiter(const struct store *s, const char *meta)
{
    const char *e = meta ? meta + strlen(meta) : NULL, *v, *w;
    size_t n;
    int odd = 0;
    if (!meta || !(v = jscan_member(jscan_ws(meta, e), e, STORE_WAITER, &odd)) ||
        jscan_plain_string(v, e, &w, &n) != 0)
        return 0;
    return n != strlen(s->instance) || memcmp(w, s->instance, n) != 0;
}

int store_finish(struct store *s, const struct store_entry *e, const char *id,
                 const struct store_result *r, store_flag_cb cb, void *data)
{
    struct batch_item *it;
    if (s->closing)
        return BD_ESHUTDOWN;
    it = calloc(1, sizeof(*it));
    if (!it)
        return BD_ENOMEM;
    list_init(&it->node);
    it->kind = ITEM_FINISH;
    it->cb = cb;
    it->data = data;
    it->prio = e ? (int)e->prio : -1;
    snprintf(it->entry, sizeof(it->entry), "%s", e ? e->entry : "direct");
    snprintf(it->id, sizeof(it->id), "%s", e ? e->id : id);
    it->has_x = e ? e->redelivered : 0;
    snprintf(it->ttl, sizeof(it->ttl), "%ld", r->ttl_s);
    it->record = record_text(it->entry, e ? e->created_ms : job_id_ms(it->id), r->req_json,
                             r->meta_json, r->job_json);
    it->delta = r->stats ? delta_text(r->stats) : strdup("");
    snprintf(it->status, sizeof(it->status), "%s", r->status);
    it->remote_waiter = remote_waiter(s, r->meta_json);
    /* delivered in process (store_watch), or published whole for another process */
    it->event = s->event_cb || it->remote_waiter ? event_text(it->id, r->status, r->job_json)
                                                 : strdup("");
    it->tenant = r->tenant && *r->tenant ? strdup(r->tenant) : NULL;
    snprintf(it->cost, sizeof(it->cost), "%lld",
             r->cost_usd > 0 ? (long long)llround(r->cost_usd * STATS_PICO) : 0LL);
    it->webhook = webhook_arg(it->id, r);
    if (!it->record || !it->delta || !it->event || !it->webhook ||
        (r->tenant && *r->tenant && !it->tenant)) {
        item_free(it);
        return BD_ENOMEM;
    }
    list_push_back(&s->finishes, &it->node);
    s->n_finishes++;
    it->hold_ms = e ? 0 : r->hold_ms;
    if (it->hold_ms > 0)
        s->hold_ms = it->hold_ms;
    s->n_urgent += it->hold_ms == 0;
    kick_finishes(s);
    return 0;
}

size_t store_finishes_pending(const struct store *s) { return s->n_finishes; }

void store_transition(struct store *s, const char *id, const char *status)
{
    struct batch_item *it;
    if (!store_ready(s))
        return;
    it = calloc(1, sizeof(*it));
    if (!it)
        return;
    it->kind = ITEM_TRANSITION;
    snprintf(it->id, sizeof(it->id), "%s", id);
    snprintf(it->status, sizeof(it->status), "%s", status);
    it->event = event_text(id, status, NULL);
    if (!it->event) {
        free(it);
        return;
    }
    list_push_back(&s->transitions, &it->node);
    kick_transitions(s);
}

/* --- re-delivery, dead letters ------------------------------------------------------------------ */

static void on_flag(struct rds *r, struct rds_reply *x, void *data)
{
    struct op *o = data;
    store_flag_cb cb = (store_flag_cb)o->fn;
    void *udata = o->data;
    int st = reply_status(o->s, x, RDS_INTEGER);
    (void)r;
    free(o);
    if (cb)
        cb(udata, st, st == 0 ? (int)rds_reply_int(x) : 0);
}

int store_redeliver(struct store *s, const struct store_entry *e, int attempt, int handbacks,
                    int max_attempts, const struct store_result *failed, store_flag_cb cb,
                    void *data)
{
    char k[7][KEY_MAX], chan[KEY_MAX], prio[4], att[16], maxa[16], created[24], now[24];
    char hb[16];
    char *req = strndup(e->req ? e->req : "{}", e->req ? e->req_len : 2);
    char *meta = strndup(e->meta ? e->meta : "{}", e->meta ? e->meta_len : 2);
    char *rec = NULL, *delta = NULL, *ev = NULL;
    struct op *o = op_new(s, (void (*)(void))cb, data);
    char ttl[24] = "0";
    int rc = BD_ENOMEM;
    if (!o || !req || !meta)
        goto out;
    if (failed) {
        /* marked as no delivery's own: the delivery that still holds e and ends later must
         * find its finish refused, not taken for a resend of its own earlier write */
        rec = record_text(DEAD_LETTER_MARK, e->created_ms, req, meta, failed->job_json);
        delta = failed->stats ? delta_text(failed->stats) : strdup("");
        ev = event_text(e->id, failed->status, failed->job_json);
        snprintf(ttl, sizeof(ttl), "%ld", failed->ttl_s);
        if (!rec || !delta || !ev)
            goto out;
    }
    for (int p = PRIO_LOW; p <= PRIO_HIGH; p++)
        key_queue(s, (enum job_priority)p, k[p]);
    key(s, k[3], "jobx:", e->id);
    key(s, k[4], "job:", e->id);
    key(s, k[5], "dead", NULL);
    key(s, k[6], "stats:pend:", s->instance);
    key(s, chan, "events", NULL);
    snprintf(prio, sizeof(prio), "%d", (int)e->prio);
    snprintf(att, sizeof(att), "%d", attempt);
    snprintf(hb, sizeof(hb), "%d", handbacks);
    snprintf(maxa, sizeof(maxa), "%d", failed ? max_attempts : 0);
    snprintf(created, sizeof(created), "%lld", (long long)e->created_ms);
    snprintf(now, sizeof(now), "%lld", (long long)clock_wall_ms());
    const char *args[] = {k[0], k[1], k[2], k[3], k[4], k[5], k[6], GROUP, chan, prio,
                          e->entry, e->id, att, maxa, created, req, meta, now,
                          rec ? rec : "", ttl, delta ? delta : "", ev ? ev : "", hb};
    rc = evalsha(s, NULL, on_flag, o, &sc_redeliver, 7, 23, args, NULL);
    if (rc == 0)
        o = NULL;
out:
    free(o);
    free(req);
    free(meta);
    free(rec);
    free(delta);
    free(ev);
    return rc;
}

static void on_dead_list(struct rds *r, struct rds_reply *x, void *data)
{
    struct op *o = data;
    store_json_cb cb = (store_json_cb)o->fn;
    void *udata = o->data;
    int st = reply_status(o->s, x, RDS_ARRAY);
    cJSON *arr;
    (void)r;
    free(o);
    if (st != 0) {
        cb(udata, st, NULL);
        return;
    }
    arr = cJSON_CreateArray();
    for (size_t i = 0; arr && i < rds_reply_len(x); i++) {
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
    cb(udata, arr ? 0 : BD_ENOMEM, arr);
}

int store_dead_list(struct store *s, long count, store_json_cb cb, void *data)
{
    char k[KEY_MAX], n[24];
    struct op *o = op_new(s, (void (*)(void))cb, data);
    if (!o)
        return BD_ENOMEM;
    key(s, k, "dead", NULL);
    snprintf(n, sizeof(n), "%ld", count);
    return send_or_free(rds_cmd(s->cmd, on_dead_list, o, "XREVRANGE %s + - COUNT %s", k, n), o);
}

static void on_requeue(struct rds *r, struct rds_reply *x, void *data)
{
    struct op *o = data;
    store_flag_cb cb = (store_flag_cb)o->fn;
    void *udata = o->data;
    int st = reply_status(o->s, x, RDS_INTEGER);
    long long v = st == 0 ? rds_reply_int(x) : 0;
    (void)r;
    free(o);
    if (st == 0 && v == 0)
        st = BD_ENOTFOUND;
    cb(udata, st, v == 1);
}

int store_requeue(struct store *s, const char *id, store_flag_cb cb, void *data)
{
    char k[6][KEY_MAX], chan[KEY_MAX], entry[48] = "", prio[4] = "";
    enum job_priority p;
    struct op *o = op_new(s, (void (*)(void))cb, data);
    if (!o)
        return BD_ENOMEM;
    key(s, k[0], "job:", id);
    key(s, k[1], "dead", NULL);
    for (int q = PRIO_LOW; q <= PRIO_HIGH; q++)
        key_queue(s, (enum job_priority)q, k[2 + q]);
    key(s, k[5], "jobx:", id);
    key(s, chan, "events", NULL);
    if (job_entry_of_id(id, &p, entry, sizeof(entry)) == 0)
        snprintf(prio, sizeof(prio), "%d", (int)p);
    const char *args[] = {k[0], k[1], k[2], k[3], k[4], k[5], chan, id, entry, prio, GROUP};
    return send_or_free(evalsha(s, NULL, on_requeue, o, &sc_requeue, 6, 11, args, NULL), o);
}

/* --- finished jobs ------------------------------------------------------------------------------ */

struct scan {
    struct store *s;
    store_scan_each_cb each;
    store_scan_done_cb done;
    void *data;
    int64_t since_ms;
    char cursor[32];
    int pending;                /* GETs in flight */
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

/* One record (and its quality, qlen bytes, or NULL): its finish time from the header, then
 * each() with the job object as GET returns it (feedback aside). */
static void scan_record(struct scan *sc, const char *id, const char *text, size_t len,
                        const char *quality, size_t qlen)
{
    cJSON *h = record_header(text, len);
    cJSON *job = cJSON_GetObjectItemCaseSensitive(h, "job");
    cJSON *q = quality && qlen ? cJSON_ParseWithLength(quality, qlen) : NULL;
    const cJSON *fin = cJSON_GetObjectItemCaseSensitive(h, "finished_ms");
    const char *req = memchr(text, '\n', len), *end;
    char *jt;
    if (!req || !cJSON_IsObject(job) ||
        (cJSON_IsNumber(fin) && fin->valuedouble < (double)sc->since_ms)) {
        cJSON_Delete(h);
        cJSON_Delete(q);
        return;
    }
    restore_kept_draft(job);
    if (q)
        cJSON_AddItemToObject(job, "quality", q);
    req++;
    end = memchr(req, '\n', len - (size_t)(req - text));
    jt = jsonx_print(job);
    if (jt)
        sc->each(sc->data, id, req, end ? (size_t)(end - req) : len - (size_t)(req - text), jt);
    free(jt);
    cJSON_Delete(h);
}

static void on_scan_job(struct rds *r, struct rds_reply *x, void *data)
{
    struct scan_get *g = data;
    struct scan *sc = g->sc;
    (void)r;
    sc->pending--;
    if (!x) {
        sc->status = BD_EREDIS_DOWN;
    } else if (rds_reply_type(x) == RDS_ARRAY && rds_reply_len(x) == 2) {
        size_t n, qn;
        const char *p = rds_reply_str(rds_reply_elem(x, 0), &n);
        const char *q = rds_reply_str(rds_reply_elem(x, 1), &qn);
        if (p)
            scan_record(sc, g->id, p, n, q, q ? qn : 0);
    }
    free(g);
    scan_maybe_done(sc);
}

static void scan_job(struct scan *sc, const struct rds_reply *keyr, size_t plen)
{
    char kq[KEY_MAX];
    size_t kl;
    const char *k = rds_reply_str(keyr, &kl);
    struct scan_get *g;
    if (!k || kl != plen + JOB_ID_LEN)
        return;
    g = calloc(1, sizeof(*g));
    if (!g)
        return;
    g->sc = sc;
    memcpy(g->id, k + plen, JOB_ID_LEN);
    key(sc->s, kq, "quality:", g->id);
    if (rds_cmd(sc->s->cmd, on_scan_job, g, "MGET %b %s", k, kl, kq) == 0)
        sc->pending++;
    else
        free(g);
}

static void on_scan(struct rds *r, struct rds_reply *x, void *data)
{
    struct scan *sc = data;
    const struct rds_reply *keys;
    char prefix[KEY_MAX];
    int st = reply_status(sc->s, x, RDS_ARRAY);
    (void)r;
    sc->scanning = 0;
    if (st != 0 || rds_reply_len(x) != 2) {
        sc->status = st ? st : BD_EREDIS_REPLY;
        scan_maybe_done(sc);
        return;
    }
    key(sc->s, prefix, "job:", NULL);
    reply_copy(rds_reply_elem(x, 0), sc->cursor, sizeof(sc->cursor));
    keys = rds_reply_elem(x, 1);
    for (size_t i = 0; i < rds_reply_len(keys); i++)
        scan_job(sc, rds_reply_elem(keys, i), strlen(prefix));
    scan_maybe_done(sc);
}

static void scan_next(struct scan *sc)
{
    char pattern[2 * KEY_MAX + 2], prefix[KEY_MAX];
    size_t n = 0;
    key(sc->s, prefix, "job:", NULL);
    for (const char *p = prefix; *p; p++) { /* glob characters of the prefix taken literally */
        if (strchr("*?[]\\", *p))
            pattern[n++] = '\\';
        pattern[n++] = *p;
    }
    pattern[n++] = '*';
    pattern[n] = '\0';
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

/* --- folding pending statistics into the counters -------------------------------------------- */

/* A field -> integer map (open addressing) for one bucket's increments. */
struct cmap_slot {
    char *field;
    long long n;
};

struct cmap {
    struct cmap_slot *slots;
    size_t cap, used;
};

/* field's hash in every cmap (computed once for the maps a line goes to) */
static uint64_t cmap_hash(const char *field)
{
    return hash_fnv1a64_str(HASH_FNV1A64_INIT, field);
}

static int cmap_grow(struct cmap *m)
{
    size_t cap = m->cap ? m->cap * 2 : 256;
    struct cmap_slot *ns = calloc(cap, sizeof(*ns));
    if (!ns)
        return -1;
    for (size_t i = 0; i < m->cap; i++) {
        size_t h;
        if (!m->slots[i].field)
            continue;
        h = (size_t)cmap_hash(m->slots[i].field) & (cap - 1);
        while (ns[h].field)
            h = (h + 1) & (cap - 1);
        ns[h] = m->slots[i];
    }
    free(m->slots);
    m->slots = ns;
    m->cap = cap;
    return 0;
}

static int cmap_add_h(struct cmap *m, const char *field, uint64_t hash, long long n)
{
    size_t h;
    if ((m->used + 1) * 2 > m->cap && cmap_grow(m) != 0)
        return -1;
    h = (size_t)hash & (m->cap - 1);
    while (m->slots[h].field && strcmp(m->slots[h].field, field) != 0)
        h = (h + 1) & (m->cap - 1);
    if (!m->slots[h].field) {
        m->slots[h].field = strdup(field);
        if (!m->slots[h].field)
            return -1;
        m->used++;
    }
    m->slots[h].n += n;
    return 0;
}

static int cmap_add(struct cmap *m, const char *field, long long n)
{
    return cmap_add_h(m, field, cmap_hash(field), n);
}

static void cmap_free(struct cmap *m)
{
    for (size_t i = 0; i < m->cap; i++)
        free(m->slots[i].field);
    free(m->slots);
    memset(m, 0, sizeof(*m));
}

#define FOLD_MAX_BUCKETS 64

/* The increments of some pending items, per counter hash. */
struct fold {
    struct {
        char key[KEY_MAX];
        long ttl;
        int groups;             /* keeps per-source/tenant counters */
        struct cmap m;
    } b[FOLD_MAX_BUCKETS];
    size_t n;
    size_t items;               /* pending items folded */
    int full;                   /* ran out of buckets: fold fewer items */
};

static struct cmap *fold_bucket(struct fold *f, const char *k, long ttl, int groups)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->b[i].key, k) == 0)
            return &f->b[i].m;
    if (f->n == FOLD_MAX_BUCKETS)
        return NULL;
    snprintf(f->b[f->n].key, sizeof(f->b[f->n].key), "%s", k);
    f->b[f->n].ttl = ttl;
    f->b[f->n].groups = groups;
    return &f->b[f->n++].m;
}

/* One "<field>\t<n>" line into the bucket (dim NULL) or into a group's counter. */
static void fold_line(struct cmap *m, const char *field, long long n, const char *dim,
                      const char *val)
{
    char gf[2 * KEY_MAX];
    if (!dim) {
        cmap_add(m, field, n);
        return;
    }
    snprintf(gf, sizeof(gf), "g|%s|%s|%s", dim, val, field);
    cmap_add(m, gf, n);
}

struct delta_head {
    long long at;
    char source[80], tenant[80];
};

/* The header line "<ms>\t<source>\t<tenant>"; returns the rest, or NULL if malformed. */
static const char *delta_head(const char *p, const char *end, struct delta_head *h)
{
    const char *nl = memchr(p, '\n', (size_t)(end - p)), *t1, *t2;
    if (!nl)
        return NULL;
    t1 = memchr(p, '\t', (size_t)(nl - p));
    t2 = t1 ? memchr(t1 + 1, '\t', (size_t)(nl - t1 - 1)) : NULL;
    if (!t2 || (size_t)(t2 - t1 - 1) >= sizeof(h->source) ||
        (size_t)(nl - t2 - 1) >= sizeof(h->tenant))
        return NULL;
    h->at = atoll(p);
    memcpy(h->source, t1 + 1, (size_t)(t2 - t1 - 1));
    h->source[t2 - t1 - 1] = '\0';
    memcpy(h->tenant, t2 + 1, (size_t)(nl - t2 - 1));
    h->tenant[nl - t2 - 1] = '\0';
    return nl + 1;
}

/* Add one pending item (delta_text's format); 0, or -1 when it needs a bucket beyond the
 * fold's (it is folded next time). A malformed item is dropped. */
static int fold_item(struct store *s, struct fold *f, const char *text, size_t len)
{
    const char *end = text + len, *p;
    long mttl = s->retention_s < MINUTE_KEEP_S ? s->retention_s : MINUTE_KEEP_S;
    struct cmap *ms, *hs, *ts;
    char km[KEY_MAX], kh[KEY_MAX], kt[KEY_MAX];
    struct delta_head h;
    p = delta_head(text, end, &h);
    if (!p)
        return 0;
    key_bucket(s, 'm', h.at / 60000, km);
    key_bucket(s, 'h', h.at / 3600000, kh);
    key(s, kt, "stats:total", NULL);
    ms = fold_bucket(f, km, mttl, 1);
    hs = fold_bucket(f, kh, s->retention_s, 1);
    ts = fold_bucket(f, kt, 0, 0);
    if (!ms || !hs || !ts) {
        f->full = 1;
        return -1;
    }
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p)), *tab;
        char field[KEY_MAX];
        long long n;
        if (!nl)
            break;
        tab = memchr(p, '\t', (size_t)(nl - p));
        if (tab && (size_t)(tab - p) < sizeof(field)) {
            memcpy(field, p, (size_t)(tab - p));
            field[tab - p] = '\0';
            uint64_t fh = cmap_hash(field);
            n = atoll(tab + 1);
            cmap_add_h(ms, field, fh, n);
            cmap_add_h(hs, field, fh, n);
            cmap_add_h(ts, field, fh, n);
            for (int g = 0; g < 2; g++) {
                const char *v = g ? h.tenant : h.source;
                if (v[0]) {
                    fold_line(ms, field, n, g ? "tenant" : "source", v);
                    fold_line(hs, field, n, g ? "tenant" : "source", v);
                }
            }
        }
        p = nl + 1;
    }
    return 0;
}

static void fold_free(struct fold *f)
{
    for (size_t i = 0; i < f->n; i++)
        cmap_free(&f->b[i].m);
    free(f);
}

struct fold_op {
    struct store *s;
    char inst[128];             /* whose list */
    char seen[64];              /* recover: the heartbeat value seen */
    int recover;
    void (*cb)(void *data, int status);
    void *data;
};

static void close_step(struct store *s);

static void fold_done(struct fold_op *op, int status)
{
    struct store *s = op->s;
    if (op->recover)
        s->recovering--;
    else
        s->flushing = 0;
    if (op->cb)
        op->cb(op->data, status);
    free(op);
    if (s->closing)
        close_step(s);
}

static void on_folded(struct rds *r, struct rds_reply *x, void *data)
{
    struct fold_op *op = data;
    int st = reply_status(op->s, x, RDS_INTEGER);
    (void)r;
    if (st == 0 && rds_reply_int(x) < 0) {
        if (!op->recover) /* another process took this list: start afresh */
            log_warn("stats: this process was taken for dead while it was stopped; its "
                     "pending statistics were folded by another process");
        st = BD_ECONFLICT;
    }
    fold_done(op, st);
}

static size_t fold_nargs(const struct fold *f)
{
    size_t n = 5;
    for (size_t i = 0; i < f->n; i++)
        n += 2 + 2 * f->b[i].m.used;
    return n;
}

/* KEYS + ARGV of FOLD_LUA for fold f into argv (strings in nums, sized by fold_nargs). */
static void fold_args(struct store *s, struct fold_op *op, const struct fold *f,
                      const char **argv, char (*nums)[24], char *kp, char *kl, char *hb)
{
    size_t a = 0, k = 0;
    key(s, kp, "procs", NULL);
    key(s, kl, "stats:pend:", op->inst);
    argv[k++] = kp;
    argv[k++] = kl;
    for (size_t i = 0; i < f->n; i++)
        argv[k++] = f->b[i].key;
    a = k;
    argv[a++] = op->inst;
    argv[a++] = op->recover ? "recover" : "flush";
    snprintf(nums[0], 24, "%zu", f->items);
    argv[a++] = nums[0];
    argv[a++] = op->recover ? op->seen : hb;
    snprintf(nums[1], 24, "%d", STATS_MAX_GROUPS);
    argv[a++] = nums[1];
    size_t ni = 2;
    for (size_t i = 0; i < f->n; i++) {
        snprintf(nums[ni], 24, "%ld", f->b[i].ttl);
        argv[a++] = nums[ni++];
        snprintf(nums[ni], 24, "%zu", f->b[i].m.used);
        argv[a++] = nums[ni++];
        for (size_t j = 0; j < f->b[i].m.cap; j++) {
            if (!f->b[i].m.slots[j].field)
                continue;
            argv[a++] = f->b[i].m.slots[j].field;
            snprintf(nums[ni], 24, "%lld", f->b[i].m.slots[j].n);
            argv[a++] = nums[ni++];
        }
    }
}

static int send_fold(struct store *s, struct fold_op *op, const struct fold *f)
{
    size_t nkeys = 2 + f->n, nargs = nkeys + fold_nargs(f);
    const char **argv = calloc(nargs, sizeof(*argv));
    char (*nums)[24] = calloc(nargs, 24);
    char kp[KEY_MAX], kl[KEY_MAX], hb[64];
    int rc = BD_ENOMEM;
    if (argv && nums) {
        snprintf(hb, sizeof(hb), "%lld %s", (long long)clock_wall_ms(), s->role);
        fold_args(s, op, f, argv, nums, kp, kl, hb);
        rc = evalsha(s, NULL, on_folded, op, &sc_fold, (int)nkeys, (int)nargs, argv, NULL);
    }
    free(argv);
    free(nums);
    return rc;
}

static void on_pending(struct rds *r, struct rds_reply *x, void *data)
{
    struct fold_op *op = data;
    struct store *s = op->s;
    struct fold *f;
    int st = reply_status(s, x, RDS_ARRAY);
    (void)r;
    if (st != 0 || rds_reply_len(x) == 0) {
        if (st == 0 && !op->recover) /* nothing to fold: heartbeat only */
            heartbeat(s);
        if (st == 0 && op->recover) {
            /* an empty list: the fold script still removes the registry entry */
        } else {
            fold_done(op, st);
            return;
        }
    }
    f = calloc(1, sizeof(*f));
    if (!f) {
        fold_done(op, BD_ENOMEM);
        return;
    }
    for (size_t i = 0; i < rds_reply_len(x); i++) {
        size_t n;
        const char *p = rds_reply_str(rds_reply_elem(x, i), &n);
        if (p && fold_item(s, f, p, n) != 0)
            break;
        f->items++;
    }
    if (op->recover && f->full) {
        /* a dead process's list is folded whole or not at all */
        fold_free(f);
        fold_done(op, BD_ETOOBIG);
        return;
    }
    if (send_fold(s, op, f) != 0)
        fold_done(op, BD_EREDIS_DOWN);
    fold_free(f);
}

/* Read up to FLUSH_MAX_ITEMS of inst's pending list and fold them. */
static int start_fold(struct store *s, struct fold_op *op)
{
    char kl[KEY_MAX], n[24];
    key(s, kl, "stats:pend:", op->inst);
    snprintf(n, sizeof(n), "%d", FLUSH_MAX_ITEMS - 1);
    return rds_cmd(s->cmd, on_pending, op, "LRANGE %s 0 %s", kl, n);
}

void store_stats_flush(struct store *s, void (*cb)(void *data, int status), void *data)
{
    struct fold_op *op;
    if (s->flushing || !store_ready(s)) {
        if (cb)
            cb(data, s->flushing ? 0 : BD_EREDIS_DOWN);
        return;
    }
    op = calloc(1, sizeof(*op));
    if (!op) {
        if (cb)
            cb(data, BD_ENOMEM);
        return;
    }
    op->s = s;
    op->cb = cb;
    op->data = data;
    snprintf(op->inst, sizeof(op->inst), "%s", s->instance);
    s->flushing = 1;
    s->last_flush = uv_now(s->loop);
    if (start_fold(s, op) != 0) {
        s->flushing = 0;
        free(op);
        if (cb)
            cb(data, BD_EREDIS_DOWN);
    }
}

/* --- the registry: heartbeats, dead processes ---------------------------------------------------- */

static void heartbeat(struct store *s)
{
    char kp[KEY_MAX], hb[64];
    if (!store_ready(s))
        return;
    key(s, kp, "procs", NULL);
    snprintf(hb, sizeof(hb), "%lld %s", (long long)clock_wall_ms(), s->role);
    rds_cmd(s->cmd, NULL, NULL, "HSET %s %s %s", kp, s->instance, hb);
    s->last_beat = uv_now(s->loop);
}

/* A dead process's consumer goes once nothing is pending for it (XGROUP DELCONSUMER would
 * make its pending entries unclaimable). */
struct cleanup_op {
    struct store *s;
    char inst[128];
    int left, held;
    void (*done)(void *data);
    void *data;
};

static void on_consumer_removed(struct rds *r, struct rds_reply *x, void *data)
{
    struct cleanup_op *c = data;
    void (*done)(void *) = c->done;
    void *udata = c->data;
    (void)r;
    (void)x;
    free(c);
    if (done)
        done(udata);
}

static void on_consumer_pending(struct rds *r, struct rds_reply *x, void *data)
{
    struct cleanup_op *c = data;
    (void)r;
    if (!x || rds_reply_type(x) != RDS_ARRAY || rds_reply_len(x) > 0)
        c->held = 1;
    if (--c->left > 0)
        return;
    if (!c->held) {
        for (int p = PRIO_LOW; p <= PRIO_HIGH; p++) {
            char q[KEY_MAX];
            key_queue(c->s, (enum job_priority)p, q);
            rds_cmd(c->s->cmd, p == PRIO_HIGH ? on_consumer_removed : NULL, c,
                    "XGROUP DELCONSUMER %s %s %s", q, GROUP, c->inst);
        }
        if (!store_ready(c->s)) /* the commands failed: nothing will answer */
            on_consumer_removed(NULL, NULL, c);
        return;
    }
    on_consumer_removed(NULL, NULL, c);
}

/* Remove inst's consumer from the group if nothing is pending for it; then done(data).
 * Returns 0, or an error (done will not run). */
static int remove_consumer(struct store *s, const char *inst, void (*done)(void *data),
                           void *data)
{
    struct cleanup_op *c = calloc(1, sizeof(*c));
    if (!c)
        return BD_ENOMEM;
    c->s = s;
    c->done = done;
    c->data = data;
    snprintf(c->inst, sizeof(c->inst), "%s", inst);
    for (int p = PRIO_LOW; p <= PRIO_HIGH; p++) {
        char q[KEY_MAX];
        key_queue(s, (enum job_priority)p, q);
        if (rds_cmd(s->cmd, on_consumer_pending, c, "XPENDING %s %s - + 1 %s", q, GROUP, inst) == 0)
            c->left++;
    }
    if (c->left == 0) {
        free(c);
        return BD_EREDIS_DOWN;
    }
    return 0;
}

static void on_recovered(void *data, int status)
{
    struct cleanup_op *c = data;
    if (status == 0) {
        log_info("stats: folded the pending statistics of %s, a process that stopped "
                 "without shutting down", c->inst);
        remove_consumer(c->s, c->inst, NULL, NULL);
    }
    free(c);
}

static void recover_one(struct store *s, const char *inst, const char *seen)
{
    struct fold_op *op = calloc(1, sizeof(*op));
    struct cleanup_op *c = calloc(1, sizeof(*c));
    if (!op || !c) {
        free(op);
        free(c);
        return;
    }
    c->s = s;
    snprintf(c->inst, sizeof(c->inst), "%s", inst);
    op->s = s;
    op->recover = 1;
    op->cb = on_recovered;
    op->data = c;
    snprintf(op->inst, sizeof(op->inst), "%s", inst);
    snprintf(op->seen, sizeof(op->seen), "%s", seen);
    s->recovering++;
    if (start_fold(s, op) != 0) {
        s->recovering--;
        free(op);
        free(c);
    }
}

static void on_procs(struct rds *r, struct rds_reply *x, void *data)
{
    struct store *s = data;
    long long now = clock_wall_ms();
    (void)r;
    if (!x || rds_reply_type(x) != RDS_ARRAY)
        return;
    for (size_t k = 0; k + 1 < rds_reply_len(x); k += 2) {
        char inst[128], val[64];
        reply_copy(rds_reply_elem(x, k), inst, sizeof(inst));
        reply_copy(rds_reply_elem(x, k + 1), val, sizeof(val));
        if (strcmp(inst, s->instance) != 0 && now - atoll(val) > DEAD_AFTER_MS)
            recover_one(s, inst, val);
    }
}

static void on_tick(uv_timer_t *t)
{
    struct store *s = t->data;
    uint64_t now = uv_now(s->loop);
    if (s->closing || !store_ready(s))
        return;
    kick_finishes(s);
    kick_transitions(s);
    if (now - s->last_flush >= FLUSH_MS)
        store_stats_flush(s, NULL, NULL);
    else if (now - s->last_beat >= HEARTBEAT_MS)
        heartbeat(s);
    if (now - s->last_recover >= RECOVER_MS && !s->recovering) {
        char kp[KEY_MAX];
        s->last_recover = now;
        key(s, kp, "procs", NULL);
        rds_cmd(s->cmd, on_procs, s, "HGETALL %s", kp);
    }
}

/* --- statistics readers ---------------------------------------------------------------------- */

struct window_op {
    struct store *s;
    store_rows_cb cb;
    void *data;
    char dim[16];
    char scope[80];             /* a tenant: only its figures (store_stats_window_tenant) */
    long gran_s;
    long long first, last;
    int left;
    int status;
    cJSON **maps;               /* one per bucket */
};

/* Split a bucket's fields: plain counters into m, the dim's groups into groups. */
static void split_bucket(const cJSON *raw, const char *dim, cJSON *m, cJSON *groups)
{
    const cJSON *it;
    size_t dl = strlen(dim);
    cJSON_ArrayForEach(it, raw) {
        const char *f = it->string;
        if (strncmp(f, "g|", 2) != 0) {
            if (strncmp(f, "ngroups:", 8) != 0)
                cJSON_AddNumberToObject(m, f, it->valuedouble);
            continue;
        }
        if (!dl || strncmp(f + 2, dim, dl) != 0 || f[2 + dl] != '|')
            continue;
        const char *v = f + 3 + dl, *bar = strchr(v, '|');
        char val[80];
        cJSON *g, *c;
        if (!bar || (size_t)(bar - v) >= sizeof(val))
            continue;
        memcpy(val, v, (size_t)(bar - v));
        val[bar - v] = '\0';
        g = cJSON_GetObjectItemCaseSensitive(groups, val);
        if (!g)
            g = cJSON_AddObjectToObject(groups, val);
        c = cJSON_GetObjectItemCaseSensitive(g, bar + 1);
        if (c)
            cJSON_SetNumberValue(c, c->valuedouble + it->valuedouble);
        else
            cJSON_AddNumberToObject(g, bar + 1, it->valuedouble);
    }
}

static void add_into(cJSON *acc, const cJSON *m)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, m) {
        cJSON *c = cJSON_GetObjectItemCaseSensitive(acc, it->string);
        if (c)
            cJSON_SetNumberValue(c, c->valuedouble + it->valuedouble);
        else
            cJSON_AddNumberToObject(acc, it->string, it->valuedouble);
    }
}

/* A bucket as one tenant sees it: that tenant's group counters as the plain ones. */
static void scope_bucket(const cJSON *raw, const char *tenant, cJSON *m)
{
    char pre[100];
    size_t n = (size_t)snprintf(pre, sizeof(pre), "g|tenant|%s|", tenant);
    const cJSON *it;
    if (n >= sizeof(pre))
        return;
    cJSON_ArrayForEach(it, raw) {
        if (strncmp(it->string, pre, n) == 0)
            cJSON_AddNumberToObject(m, it->string + n, it->valuedouble);
    }
}

static void window_finish(struct window_op *q)
{
    struct stats_rows rows;
    long long nb = q->last - q->first + 1;
    memset(&rows, 0, sizeof(rows));
    rows.total = cJSON_CreateObject();
    rows.rows = cJSON_CreateArray();
    rows.groups = cJSON_CreateObject();
    rows.gran_s = q->gran_s;
    rows.first = q->first;
    for (long long b = 0; q->status == 0 && b < nb; b++) {
        cJSON *m = cJSON_CreateObject(), *row;
        if (!q->maps[b] || !q->maps[b]->child) {
            cJSON_Delete(m);
            continue;
        }
        if (q->scope[0])
            scope_bucket(q->maps[b], q->scope, m);
        else
            split_bucket(q->maps[b], q->dim, m, rows.groups);
        if (!m->child) {
            cJSON_Delete(m);
            continue;
        }
        add_into(rows.total, m);
        row = cJSON_CreateArray();
        cJSON_AddItemToArray(row, cJSON_CreateNumber((double)(q->first + b)));
        cJSON_AddItemToArray(row, m);
        cJSON_AddItemToArray(rows.rows, row);
    }
    if (q->scope[0] && strcmp(q->dim, "tenant") == 0 && rows.total && rows.total->child)
        cJSON_AddItemToObject(rows.groups, q->scope, cJSON_Duplicate(rows.total, 1));
    q->cb(q->data, q->status, q->status == 0 ? &rows : NULL);
    cJSON_Delete(rows.total);
    cJSON_Delete(rows.rows);
    cJSON_Delete(rows.groups);
    for (long long b = 0; b < nb; b++)
        cJSON_Delete(q->maps[b]);
    free(q->maps);
    free(q);
}

struct bucket_get {
    struct window_op *q;
    long long b;
};

static void on_bucket(struct rds *r, struct rds_reply *x, void *data)
{
    struct bucket_get *g = data;
    struct window_op *q = g->q;
    int st = reply_status(q->s, x, RDS_ARRAY);
    (void)r;
    if (st != 0)
        q->status = st;
    else if ((q->maps[g->b] = cJSON_CreateObject()) != NULL)
        merge_flat(q->maps[g->b], x);
    free(g);
    if (--q->left == 0)
        window_finish(q);
}

static int window_start(struct store *s, long window_s, const char *dim, const char *tenant,
                        store_rows_cb cb, void *data)
{
    struct window_op *q = calloc(1, sizeof(*q));
    long long now_s = (long long)time(NULL), nb;
    if (!q)
        return BD_ENOMEM;
    q->s = s;
    q->cb = cb;
    q->data = data;
    snprintf(q->dim, sizeof(q->dim), "%s", dim ? dim : "");
    snprintf(q->scope, sizeof(q->scope), "%s", tenant ? tenant : "");
    q->gran_s = window_s > 6 * 3600 ? 3600 : 60;
    q->first = (now_s - window_s) / q->gran_s + 1;
    q->last = now_s / q->gran_s;
    if (q->first < 0)
        q->first = 0;
    nb = q->last - q->first + 1;
    q->maps = calloc((size_t)nb, sizeof(*q->maps));
    if (!q->maps || !store_ready(s)) {
        int rc = q->maps ? BD_EREDIS_DOWN : BD_ENOMEM;
        free(q->maps);
        free(q);
        return rc;
    }
    q->left = 1; /* held until every command is sent */
    for (long long b = 0; b < nb; b++) {
        char k[KEY_MAX];
        struct bucket_get *g = malloc(sizeof(*g));
        if (!g) {
            q->status = BD_ENOMEM;
            break;
        }
        g->q = q;
        g->b = b;
        key_bucket(s, q->gran_s == 60 ? 'm' : 'h', q->first + b, k);
        if (rds_cmd(s->cmd, on_bucket, g, "HGETALL %s", k) != 0) {
            free(g);
            q->status = BD_EREDIS_DOWN;
            break;
        }
        q->left++;
    }
    if (--q->left == 0)
        window_finish(q);
    return 0;
}

int store_stats_window(struct store *s, long window_s, const char *dim, store_rows_cb cb,
                       void *data)
{
    return window_start(s, window_s, dim, NULL, cb, data);
}

int store_stats_window_tenant(struct store *s, long window_s, const char *dim,
                              const char *tenant, store_rows_cb cb, void *data)
{
    return window_start(s, window_s, dim, tenant, cb, data);
}

static void on_guard(struct rds *r, struct rds_reply *x, void *data)
{
    struct op *o = data;
    store_guard_cb cb = (store_guard_cb)o->fn;
    void *udata = o->data;
    int st = reply_status(o->s, x, RDS_ARRAY);
    (void)r;
    free(o);
    if (st != 0 || rds_reply_len(x) != 4) {
        cb(udata, st ? st : BD_EREDIS_REPLY, 0, 0, 0, 0);
        return;
    }
    double v[4];
    for (size_t k = 0; k < 4; k++) {
        char b[48];
        reply_copy(rds_reply_elem(x, k), b, sizeof(b));
        v[k] = strtod(b, NULL);
    }
    cb(udata, 0, v[0], v[1], v[3] / STATS_PICO, v[1] > 0 ? v[2] / STATS_PICO / v[1] : 0);
}

int store_stats_guard(struct store *s, long window_s, store_guard_cb cb, void *data)
{
    long long now_s = (long long)time(NULL);
    int minute = window_s <= 6 * 3600;
    long gran = minute ? 60 : 3600;
    long long first = (now_s - window_s) / gran + 1, last = now_s / gran;
    long long h0 = now_s / 86400 * 24, h1 = now_s / 3600;
    size_t nw = (size_t)(last - first + 1), nk = nw + (size_t)(h1 - h0 + 1), i = 0;
    char (*keys)[KEY_MAX] = calloc(nk, KEY_MAX);
    const char **argv = calloc(nk + 1, sizeof(*argv));
    char nm[24];
    struct op *o = op_new(s, (void (*)(void))cb, data);
    int rc = BD_ENOMEM;
    if (keys && argv && o) {
        for (long long b = first; b <= last; b++, i++)
            key_bucket(s, minute ? 'm' : 'h', b, keys[i]);
        for (long long h = h0; h <= h1; h++, i++)
            key_bucket(s, 'h', h, keys[i]);
        for (i = 0; i < nk; i++)
            argv[i] = keys[i];
        snprintf(nm, sizeof(nm), "%zu", nw);
        argv[nk] = nm;
        rc = evalsha(s, NULL, on_guard, o, &sc_guard, (int)nk, (int)nk + 1, argv, NULL);
    }
    if (rc != 0)
        free(o);
    free(keys);
    free(argv);
    return rc;
}

static void on_totals(struct rds *r, struct rds_reply *x, void *data)
{
    struct op *o = data;
    store_totals_cb cb = (store_totals_cb)o->fn;
    void *udata = o->data;
    int st = reply_status(o->s, x, RDS_ARRAY);
    cJSON *m;
    (void)r;
    free(o);
    if (st != 0 || rds_reply_len(x) != 4) {
        cb(udata, st ? st : BD_EREDIS_REPLY, NULL, 0, 0);
        return;
    }
    m = cJSON_CreateObject();
    merge_flat(m, rds_reply_elem(x, 0));
    merge_flat(m, rds_reply_elem(x, 1));
    cb(udata, m ? 0 : BD_ENOMEM, m, (long)rds_reply_int(rds_reply_elem(x, 2)),
       (long)rds_reply_int(rds_reply_elem(x, 3)));
    cJSON_Delete(m);
}

int store_stats_totals(struct store *s, store_totals_cb cb, void *data)
{
    char k[5][KEY_MAX];
    struct op *o = op_new(s, (void (*)(void))cb, data);
    if (!o)
        return BD_ENOMEM;
    key(s, k[0], "stats:total", NULL);
    key(s, k[1], "stats:errors", NULL);
    for (int p = PRIO_LOW; p <= PRIO_HIGH; p++)
        key_queue(s, (enum job_priority)p, k[2 + p]);
    const char *args[] = {k[0], k[1], k[2], k[3], k[4], GROUP};
    return send_or_free(evalsha(s, NULL, on_totals, o, &sc_totals, 5, 6, args, NULL), o);
}

void store_count_upstream_error(struct store *s, const char *model, const char *reason, long n)
{
    char k[KEY_MAX], field[KEY_MAX];
    if (n <= 0)
        return;
    key(s, k, "stats:errors", NULL);
    snprintf(field, sizeof(field), "err:%s:%s", model, reason);
    rds_cmd(s->cmd, NULL, NULL, "HINCRBY %s %s %ld", k, field, n);
}

/* --- webhook deliveries: kept in Redis, claimed by any process --------------------------- */

/* One claimed state "<attempt> <created ms> <msg id> <url>" into w (url borrowed from the
 * reply): 0, or -1 when it is malformed. */
static int take_webhook(const char *id, const char *state, size_t len, struct store_webhook *w)
{
    char head[160];
    int attempt = 0, used = 0;
    long long created = 0;
    size_t n = len < sizeof(head) - 1 ? len : sizeof(head) - 1;
    memcpy(head, state, n);
    head[n] = '\0';
    memset(w, 0, sizeof(*w));
    if (strlen(id) != JOB_ID_LEN ||
        sscanf(head, "%d %lld %63s %n", &attempt, &created, w->msg_id, &used) != 3 ||
        used <= 0 || (size_t)used >= len || attempt < 1)
        return -1;
    memcpy(w->id, id, JOB_ID_LEN + 1); /* checked just above */
    w->attempt = attempt;
    w->created_ms = created;
    w->url = state + used;
    return 0;
}

static void on_wh_claim(struct rds *r, struct rds_reply *x, void *data)
{
    struct op *op = data;
    store_webhooks_cb cb = (store_webhooks_cb)op->fn;
    size_t n = rds_reply_len(x) / 2, got = 0;
    struct store_webhook *w = NULL;
    int st = reply_status(op->s, x, RDS_ARRAY);
    (void)r;
    if (st == 0 && n > 0) {
        w = calloc(n, sizeof(*w));
        st = w ? 0 : BD_ENOMEM;
    }
    for (size_t i = 0; st == 0 && i < n; i++) {
        char id[JOB_ID_LEN + 2];
        size_t len;
        const char *state = rds_reply_str(rds_reply_elem(x, 2 * i + 1), &len);
        reply_copy(rds_reply_elem(x, 2 * i), id, sizeof(id));
        if (state && take_webhook(id, state, len, &w[got]) == 0)
            got++;
    }
    cb(op->data, st, w, got);
    free(w);
    free(op);
}

int store_webhook_claim(struct store *s, int64_t now_ms, unsigned count, long lease_ms,
                        store_webhooks_cb cb, void *data)
{
    char kd[KEY_MAX], kq[KEY_MAX], now[24], cnt[16], lease[24];
    struct op *op = op_new(s, (void (*)(void))cb, data);
    if (!op)
        return BD_ENOMEM;
    key(s, kd, "wh:due", NULL);
    key(s, kq, "wh:q", NULL);
    snprintf(now, sizeof(now), "%lld", (long long)now_ms);
    snprintf(cnt, sizeof(cnt), "%u", count);
    snprintf(lease, sizeof(lease), "%ld", lease_ms);
    const char *args[] = {kd, kq, now, cnt, lease};
    return send_or_free(evalsha(s, NULL, on_wh_claim, op, &sc_wh_claim, 2, 5, args, NULL), op);
}

static const char *const wh_outcomes[] = {"delivered", "failed", "retry", "release"};

int store_webhook_done(struct store *s, const struct store_webhook_done *d, store_flag_cb cb,
                       void *data)
{
    char kd[KEY_MAX], kq[KEY_MAX], kst[KEY_MAX], att[16], due[24], ttl[24];
    struct op *o = op_new(s, (void (*)(void))cb, data);
    if (!o)
        return BD_ENOMEM;
    key(s, kd, "wh:due", NULL);
    key(s, kq, "wh:q", NULL);
    key(s, kst, "wh:st:", d->id);
    snprintf(att, sizeof(att), "%d", d->attempt);
    snprintf(due, sizeof(due), "%lld", (long long)d->due_ms);
    snprintf(ttl, sizeof(ttl), "%ld", d->ttl_s > 0 ? d->ttl_s : 1);
    const char *args[] = {kd, kq, kst, d->id, att, wh_outcomes[d->outcome], due,
                          d->status_json ? d->status_json : "{}", ttl};
    return send_or_free(evalsha(s, NULL, on_flag, o, &sc_wh_done, 3, 9, args, NULL), o);
}

/* --- tenants: admissions, budgets, figures ---------------------------------------------- */

#define TENANT_RAW_MAX 100      /* longer tenant ids appear in keys as "#<SHA-256 hex>" */
#define RESERVE_MARGIN_MS 60000 /* a reservation outlives its job's deadline by this */

/* The tenant as it appears in its keys: the id itself, or "#" and its SHA-256 when it is
 * long (or starts with '#'), so every key stays bounded and no two tenants share one. */
static void tenant_part(const char *tenant, char *out, size_t len)
{
    unsigned char md[HASH_SHA256_LEN];
    size_t n = strlen(tenant);
    if (n <= TENANT_RAW_MAX && tenant[0] != '#') {
        snprintf(out, len, "%s", tenant);
        return;
    }
    memset(md, 0, sizeof(md));
    hash_sha256(tenant, n, md);
    out[0] = '#';
    for (int i = 0; i < HASH_SHA256_LEN && 3 + 2 * (size_t)i <= len; i++)
        snprintf(out + 1 + 2 * i, 3, "%02x", md[i]);
}

/* "P tenant:<what>:[<day>:]<tenant>" */
static void key_tenant(const struct store *s, char *buf, const char *what, const char *day,
                       const char *tenant)
{
    char part[2 * HASH_SHA256_LEN + TENANT_RAW_MAX + 2];
    tenant_part(tenant, part, sizeof(part));
    snprintf(buf, KEY_MAX, "%stenant:%s:%s%s%s", s->tag, what, day ? day : "", day ? ":" : "",
             part);
}

static void today(char *day, size_t len)
{
    clock_utc_day(clock_wall_ms(), day, len);
}

static long long to_pico(double usd)
{
    return llround(usd * STATS_PICO);
}

static double reply_num(const struct rds_reply *x, size_t i)
{
    char b[48];
    reply_copy(rds_reply_elem(x, i), b, sizeof(b));
    return strtod(b, NULL);
}

/* The Retry-After of a {'rate', oldest_ms, now_ms} or {'budget', seconds} reply. */
static long limited_retry_s(const struct rds_reply *x)
{
    char what[16];
    reply_copy(rds_reply_elem(x, 0), what, sizeof(what));
    if (strcmp(what, "rate") == 0 && rds_reply_len(x) == 3)
        return tenant_retry_window_s((int64_t)reply_num(x, 1), (int64_t)reply_num(x, 2));
    return (long)reply_num(x, 1);
}

static int submit_tenant(struct store *s, struct rds *conn, const struct store_submit *sub,
                         struct submit_op *op)
{
    char k[6][KEY_MAX], kidem[KEY_MAX + 300], maxq[24], prio[4], ttl[24], jpm[24], budget[32];
    char midnight[24], day[16], deadline[24];
    int idem = sub->idem_scope && sub->idem_key;
    submit_deadline(s, conn, deadline, sizeof(deadline));
    for (int p = PRIO_LOW; p <= PRIO_HIGH; p++)
        key_queue(s, (enum job_priority)p, k[p]);
    snprintf(kidem, sizeof(kidem), "%sidem:%s:%s", s->tag, idem ? sub->idem_scope : "",
             idem ? sub->idem_key : "");
    if (idem)
        snprintf(op->idem_key, sizeof(op->idem_key), "%s", kidem);
    today(day, sizeof(day));
    key_tenant(s, k[4], "rate", NULL, sub->tenant);
    key_tenant(s, k[5], "spend", day, sub->tenant);
    snprintf(maxq, sizeof(maxq), "%ld", needs_check(s, sub->max_queue) ? sub->max_queue : 0);
    snprintf(prio, sizeof(prio), "%d", (int)sub->priority);
    snprintf(ttl, sizeof(ttl), "%ld", sub->idem_ttl_s > 0 ? sub->idem_ttl_s : 86400);
    snprintf(jpm, sizeof(jpm), "%ld", sub->tenant_jpm > 0 ? sub->tenant_jpm : 0);
    snprintf(budget, sizeof(budget), "%lld",
             sub->tenant_budget_usd >= 0 ? to_pico(sub->tenant_budget_usd) : -1LL);
    snprintf(midnight, sizeof(midnight), "%ld", tenant_retry_midnight_s(clock_wall_ms()));
    const char *args[] = {k[0], k[1], k[2], idem ? kidem : k[4], k[4], k[5], prio, maxq,
                          sub->req_json, sub->meta_json, idem ? sub->idem_hash : "", ttl,
                          idem ? "1" : "0", jpm, budget, midnight, deadline};
    return evalsha(s, conn, on_submit, op, &sc_submit_tenant, 6, 17, args, NULL);
}

static void on_admit(struct rds *r, struct rds_reply *x, void *data)
{
    struct op *op = data;
    store_admit_cb cb = (store_admit_cb)op->fn;
    char what[16];
    int st = reply_status(op->s, x, RDS_ARRAY);
    (void)r;
    if (st != 0 || rds_reply_len(x) < 2) {
        cb(op->data, st ? st : BD_EREDIS_REPLY, STORE_SUBMITTED, 0);
    } else {
        reply_copy(rds_reply_elem(x, 0), what, sizeof(what));
        cb(op->data, 0,
               strcmp(what, "rate") == 0     ? STORE_TENANT_RATE
               : strcmp(what, "budget") == 0 ? STORE_TENANT_BUDGET
                                             : STORE_SUBMITTED,
               limited_retry_s(x));
    }
    free(op);
}

int store_tenant_admit(struct store *s, const char *tenant, long jpm, double budget_usd,
                       const char *member, store_admit_cb cb, void *data)
{
    char k[2][KEY_MAX], n[24], budget[32], midnight[24], day[16];
    struct op *op = op_new(s, (void (*)(void))cb, data);
    if (!op)
        return BD_ENOMEM;
    today(day, sizeof(day));
    key_tenant(s, k[0], "rate", NULL, tenant);
    key_tenant(s, k[1], "spend", day, tenant);
    snprintf(n, sizeof(n), "%ld", jpm > 0 ? jpm : 0);
    snprintf(budget, sizeof(budget), "%lld", budget_usd >= 0 ? to_pico(budget_usd) : -1LL);
    snprintf(midnight, sizeof(midnight), "%ld", tenant_retry_midnight_s(clock_wall_ms()));
    const char *args[] = {k[0], k[1], n, budget, midnight, member};
    return send_or_free(evalsha(s, NULL, on_admit, op, &sc_admit, 2, 6, args, NULL), op);
}

static enum store_reserve reserve_verdict(const char *what)
{
    if (strcmp(what, "spent") == 0)
        return STORE_RESERVE_SPENT;
    if (strcmp(what, "busy") == 0)
        return STORE_RESERVE_BUSY;
    if (strcmp(what, "held") == 0)
        return STORE_RESERVE_HELD;
    return STORE_RESERVED;
}

static void on_reserve(struct rds *r, struct rds_reply *x, void *data)
{
    struct op *op = data;
    store_reserve_cb cb = (store_reserve_cb)op->fn;
    char what[16];
    int st = reply_status(op->s, x, RDS_ARRAY);
    (void)r;
    if (st != 0 || rds_reply_len(x) != 3) {
        cb(op->data, st ? st : BD_EREDIS_REPLY, STORE_RESERVE_BUSY, 0, 0);
    } else {
        reply_copy(rds_reply_elem(x, 0), what, sizeof(what));
        cb(op->data, 0, reserve_verdict(what), reply_num(x, 1) / STATS_PICO,
               reply_num(x, 2) / STATS_PICO);
    }
    free(op);
}

int store_tenant_reserve(struct store *s, const struct store_reservation *rv,
                         store_reserve_cb cb, void *data)
{
    char k[3][KEY_MAX], amount[32], budget[32], fallback[32], ttl[24], day[16];
    struct op *op = op_new(s, (void (*)(void))cb, data);
    if (!op)
        return BD_ENOMEM;
    today(day, sizeof(day));
    key_tenant(s, k[0], "spend", day, rv->tenant);
    key_tenant(s, k[1], "resv", NULL, rv->tenant);
    key_tenant(s, k[2], "resvx", NULL, rv->tenant);
    snprintf(amount, sizeof(amount), "%lld", to_pico(rv->amount_usd));
    snprintf(budget, sizeof(budget), "%lld", to_pico(rv->budget_usd));
    snprintf(fallback, sizeof(fallback), "%lld", to_pico(rv->fallback_usd));
    snprintf(ttl, sizeof(ttl), "%ld", rv->ttl_ms + RESERVE_MARGIN_MS);
    const char *args[] = {k[0], k[1], k[2], rv->job_id, amount, budget,
                          rv->extend ? "extend" : "admit", fallback, ttl};
    return send_or_free(evalsha(s, NULL, on_reserve, op, &sc_reserve, 3, 9, args, NULL), op);
}

static void on_tenant_info(struct rds *r, struct rds_reply *x, void *data)
{
    struct op *op = data;
    store_tenant_cb cb = (store_tenant_cb)op->fn;
    struct store_tenant_figures f;
    int st = reply_status(op->s, x, RDS_ARRAY);
    (void)r;
    if (st != 0 || rds_reply_len(x) != 5) {
        cb(op->data, st ? st : BD_EREDIS_REPLY, NULL);
    } else {
        f.jobs_this_minute = (long)reply_num(x, 0);
        f.spent_today_usd = reply_num(x, 1) / STATS_PICO;
        f.reserved_usd = reply_num(x, 2) / STATS_PICO;
        f.decided = reply_num(x, 3);
        f.refined = reply_num(x, 4);
        cb(op->data, 0, &f);
    }
    free(op);
}

int store_tenant_figures(struct store *s, const char *tenant, long window_s,
                         store_tenant_cb cb, void *data)
{
    long long now_s = (long long)time(NULL);
    int minute = window_s <= 6 * 3600;
    long gran = minute ? 60 : 3600;
    long long first = (now_s - window_s) / gran + 1, last = now_s / gran;
    size_t nb = (size_t)(last - first + 1), nk = 4 + nb;
    char (*keys)[KEY_MAX] = calloc(nk, KEY_MAX);
    const char **argv = calloc(nk + 1, sizeof(*argv));
    char label[80], day[16];
    struct op *op = op_new(s, (void (*)(void))cb, data);
    int rc = BD_ENOMEM;
    if (keys && argv && op) {
        today(day, sizeof(day));
        key_tenant(s, keys[0], "rate", NULL, tenant);
        key_tenant(s, keys[1], "spend", day, tenant);
        key_tenant(s, keys[2], "resv", NULL, tenant);
        key_tenant(s, keys[3], "resvx", NULL, tenant);
        for (size_t i = 0; i < nb; i++)
            key_bucket(s, minute ? 'm' : 'h', first + (long long)i, keys[4 + i]);
        for (size_t i = 0; i < nk; i++)
            argv[i] = keys[i];
        stats_label(tenant, label, sizeof(label));
        argv[nk] = label;
        rc = evalsha(s, NULL, on_tenant_info, op, &sc_tenant_info, (int)nk, (int)nk + 1, argv,
                     NULL);
    }
    if (rc != 0)
        free(op);
    free(keys);
    free(argv);
    return rc;
}

struct spend_op {
    struct store *s;
    store_spend_cb cb;
    void *data;
    size_t n;
};

static void on_tenant_spend(struct rds *r, struct rds_reply *x, void *data)
{
    struct spend_op *op = data;
    int st = reply_status(op->s, x, RDS_ARRAY);
    double *v = st == 0 && rds_reply_len(x) == 2 * op->n ? calloc(2 * op->n + 1, sizeof(*v))
                                                        : NULL;
    (void)r;
    if (!v) {
        op->cb(op->data, st ? st : BD_EREDIS_REPLY, NULL, 0);
    } else {
        for (size_t i = 0; i < 2 * op->n; i++)
            v[i] = reply_num(x, i) / STATS_PICO;
        op->cb(op->data, 0, v, op->n);
    }
    free(v);
    free(op);
}

int store_tenant_spend(struct store *s, const char *const *tenants, size_t n,
                       store_spend_cb cb, void *data)
{
    char (*keys)[KEY_MAX] = calloc(3 * n + 1, KEY_MAX);
    const char **argv = calloc(3 * n + 1, sizeof(*argv));
    struct spend_op *op = calloc(1, sizeof(*op));
    char day[16];
    int rc = BD_ENOMEM;
    if (keys && argv && op && n <= STORE_SPEND_MAX) {
        op->s = s;
        op->cb = cb;
        op->data = data;
        op->n = n;
        today(day, sizeof(day));
        for (size_t i = 0; i < n; i++) {
            key_tenant(s, keys[3 * i], "spend", day, tenants[i]);
            key_tenant(s, keys[3 * i + 1], "resv", NULL, tenants[i]);
            key_tenant(s, keys[3 * i + 2], "resvx", NULL, tenants[i]);
        }
        for (size_t i = 0; i < 3 * n; i++)
            argv[i] = keys[i];
        rc = evalsha(s, NULL, on_tenant_spend, op, &sc_tenant_spend, (int)(3 * n),
                     (int)(3 * n), argv, NULL);
    } else if (n > STORE_SPEND_MAX) {
        rc = BD_ETOOBIG;
    }
    if (rc != 0)
        free(op);
    free(keys);
    free(argv);
    return rc;
}

/* --- the exact cache ---------------------------------------------------------------------- */

static void on_cache_claim(struct rds *r, struct rds_reply *x, void *data)
{
    struct op *op = data;
    store_cache_cb cb = (store_cache_cb)op->fn;
    char what[8];
    size_t len = 0;
    const char *v;
    int st = reply_status(op->s, x, RDS_ARRAY);
    (void)r;
    if (st != 0 || rds_reply_len(x) != 2) {
        cb(op->data, st ? st : BD_EREDIS_REPLY, STORE_CACHE_RUN, NULL, 0);
    } else {
        reply_copy(rds_reply_elem(x, 0), what, sizeof(what));
        v = rds_reply_str(rds_reply_elem(x, 1), &len);
        cb(op->data, 0,
               strcmp(what, "hit") == 0    ? STORE_CACHE_HIT
               : strcmp(what, "wait") == 0 ? STORE_CACHE_WAIT
                                           : STORE_CACHE_RUN,
               v, v ? len : 0);
    }
    free(op);
}

int store_cache_claim(struct store *s, const char *cache_key, const char *job_id, long lock_ms,
                      store_cache_cb cb, void *data)
{
    char k[2][KEY_MAX], ms[24];
    struct op *op = op_new(s, (void (*)(void))cb, data);
    if (!op)
        return BD_ENOMEM;
    key(s, k[0], "cache:", cache_key);
    key(s, k[1], "cache:lock:", cache_key);
    snprintf(ms, sizeof(ms), "%ld", lock_ms > 0 ? lock_ms : 1);
    const char *args[] = {k[0], k[1], job_id, ms};
    return send_or_free(evalsha(s, NULL, on_cache_claim, op, &sc_cache_claim, 2, 4, args, NULL),
                        op);
}

void store_cache_put(struct store *s, const char *cache_key, const char *job_id,
                     const char *entry, long ttl_s)
{
    char k[2][KEY_MAX], ttl[24];
    if (!store_ready(s))
        return; /* the lock expires with its job's deadline */
    key(s, k[0], "cache:", cache_key);
    key(s, k[1], "cache:lock:", cache_key);
    snprintf(ttl, sizeof(ttl), "%ld", ttl_s > 0 ? ttl_s : 1);
    const char *args[] = {k[0], k[1], job_id, entry && ttl_s > 0 ? entry : "", ttl};
    evalsha(s, NULL, NULL, NULL, &sc_cache_put, 2, 5, args, NULL);
}

/* --- closing: finish the batches, fold, leave the registry and the group, disconnect ------ */

static void on_conn_closed(void *data)
{
    struct store *s = data;
    if (--s->pending_closes == 0)
        free_store(s);
}

static void on_tick_closed(uv_handle_t *h)
{
    on_conn_closed(h->data);
}

static void close_connections(struct store *s)
{
    struct rds *conns[4] = {s->cmd, s->sub, s->blk, s->ack};
    s->close_phase = 3;
    fail_queue(s, ITEM_FINISH);
    fail_queue(s, ITEM_TRANSITION);
    release_gets(s, 1);
    s->pending_closes = 3; /* this function's own + the tick and hold handles */
    for (int i = 0; i < 4; i++) {
        if (conns[i]) {
            s->pending_closes++;
            close_conn(s, conns[i], on_conn_closed, s);
        }
    }
    s->cmd = s->sub = s->blk = s->ack = NULL;
    rwait_free(s->waits); /* after its connection closed: every WAIT was answered */
    s->waits = NULL;
    if (s->loc) {
        s->pending_closes++;
        rloc_close(s->loc, on_conn_closed, s);
        s->loc = NULL;
    }
    uv_close((uv_handle_t *)&s->tick, on_tick_closed);
    uv_close((uv_handle_t *)&s->hold, on_tick_closed);
    on_conn_closed(s);
}

static void on_left(struct rds *r, struct rds_reply *x, void *data)
{
    (void)r;
    (void)x;
    close_connections(data);
}

static void leave_registry(void *data)
{
    struct store *s = data;
    char kp[KEY_MAX];
    key(s, kp, "procs", NULL);
    if (rds_cmd(s->cmd, on_left, s, "HDEL %s %s", kp, s->instance) != 0)
        close_connections(s);
}

/* Deregister (after leaving the group when nothing is pending for this consumer), close. */
static void on_final_flush(void *data, int status)
{
    struct store *s = data;
    s->close_phase = 2;
    if (status != 0 || !store_ready(s)) {
        /* the list stays: another process folds it once this heartbeat is old */
        close_connections(s);
        return;
    }
    if (!s->consumer || remove_consumer(s, s->instance, leave_registry, s) != 0)
        leave_registry(s);
}

/* Closing waits for the batches and folds in flight (their answers call it again). */
static void close_step(struct store *s)
{
    if (s->close_phase != 0 || s->finishing || s->transiting || s->flushing || s->recovering)
        return;
    if (!list_empty(&s->finishes) && store_ready(s)) {
        kick_finishes(s);
        if (s->finishing)
            return;
    }
    s->close_phase = 1;
    store_stats_flush(s, on_final_flush, s);
}

void store_close(struct store *s, void (*cb)(void *data), void *data)
{
    s->closing = 1;
    s->close_cb = cb;
    s->close_data = data;
    uv_timer_stop(&s->tick);
    uv_timer_stop(&s->hold);
    close_step(s);
}

/* --- streamed text and model call slots ------------------------------------------------------ */

void store_listen(struct store *s, const char *id, int ttl_ms)
{
    char k[KEY_MAX];
    key(s, k, "listen:", id);
    rds_cmd(s->cmd, NULL, NULL, "SET %s 1 PX %d", k, ttl_ms);
}

int store_listening(struct store *s, const char *id, store_flag_cb cb, void *data)
{
    char k[KEY_MAX];
    struct op *o = op_new(s, (void (*)(void))cb, data);
    if (!o)
        return BD_ENOMEM;
    key(s, k, "listen:", id);
    return send_or_free(rds_cmd(s->cmd, on_flag, o, "EXISTS %s", k), o);
}

void store_publish_delta(struct store *s, const char *id, const char *text, size_t len)
{
    struct sbuf js = {0}, ev = {0};
    char chan[KEY_MAX], *t = malloc(len + 1), *payload;
    if (!t)
        return;
    memcpy(t, text, len);
    t[len] = '\0';
    sbuf_adds(&js, "{\"text\":");
    jsonx_write_string(&js, t);
    sbuf_addc(&js, '}');
    free(t);
    if (!js.oom)
        sbuf_printf(&ev, "%s delta %zu\n%s\n", id, js.len, js.p);
    payload = sbuf_take(&ev);
    free(sbuf_take(&js));
    if (!payload)
        return;
    key(s, chan, "events", NULL);
    rds_cmd(s->cmd, NULL, NULL, "PUBLISH %s %s", chan, payload);
    free(payload);
}

static void key_slots(const struct store *s, const char *server, char *buf)
{
    char h[24];
    snprintf(h, sizeof(h), "%016llx", (unsigned long long)hash_fnv1a64_str(HASH_FNV1A64_INIT, server));
    key(s, buf, "slots:", h);
}

int store_slot_take(struct store *s, const char *server, int cap, const char *member,
                    int lease_ms, store_flag_cb cb, void *data)
{
    char k[KEY_MAX], c[16], l[16];
    const char *argv[4];
    struct op *o = op_new(s, (void (*)(void))cb, data);
    if (!o)
        return BD_ENOMEM;
    key_slots(s, server, k);
    snprintf(c, sizeof(c), "%d", cap);
    snprintf(l, sizeof(l), "%d", lease_ms);
    argv[0] = k;
    argv[1] = c;
    argv[2] = member;
    argv[3] = l;
    return send_or_free(evalsha(s, NULL, on_flag, o, &sc_slot, 1, 4, argv, NULL), o);
}

void store_slot_renew(struct store *s, const char *server, const char *const *members, size_t n,
                      int lease_ms)
{
    char k[KEY_MAX], l[16];
    const char **argv = calloc(n + 2, sizeof(*argv));
    if (!argv)
        return;
    key_slots(s, server, k);
    snprintf(l, sizeof(l), "%d", lease_ms);
    argv[0] = k;
    argv[1] = l;
    for (size_t i = 0; i < n; i++)
        argv[i + 2] = members[i];
    evalsha(s, NULL, NULL, NULL, &sc_slot_renew, 1, (int)n + 2, argv, NULL);
    free(argv);
}

void store_slot_give(struct store *s, const char *server, const char *member)
{
    char k[KEY_MAX];
    key_slots(s, server, k);
    rds_cmd(s->cmd, NULL, NULL, "ZREM %s %s", k, member);
}

/* --- quality and feedback of finished jobs, the evaluation's budget ------------------------ */

#define EVAL_SPEND_TTL_S (2L * 86400L) /* a day's evaluation spend outlives its day */

/* A finished job's side key (side: "quality:" or "feedback:") written by script with the
 * job's record, its key and the process's pending statistics as KEYS; ARGV: json, then
 * extra when set, then the statistics delta. */
static int job_side_write(struct store *s, const char *id, const char *side,
                          struct rds_script *script, const char *json, const char *extra,
                          const struct stats_delta *delta, store_flag_cb cb, void *data)
{
    char kj[KEY_MAX], ks[KEY_MAX], kp[KEY_MAX];
    char *dt = delta ? delta_text(delta) : strdup("");
    const char *argv[6];
    int nargs = 3;
    struct op *o;
    int rc;
    if (!dt)
        return BD_ENOMEM;
    o = op_new(s, (void (*)(void))cb, data);
    if (!o) {
        free(dt);
        return BD_ENOMEM;
    }
    key(s, kj, "job:", id);
    key(s, ks, side, id);
    key(s, kp, "stats:pend:", s->instance);
    argv[0] = kj;
    argv[1] = ks;
    argv[2] = kp;
    argv[nargs++] = json;
    if (extra)
        argv[nargs++] = extra;
    argv[nargs++] = dt;
    rc = send_or_free(evalsha(s, NULL, on_flag, o, script, 3, nargs, argv, NULL), o);
    free(dt);
    return rc;
}

int store_set_quality(struct store *s, const char *id, const char *quality_json,
                      const struct stats_delta *delta, store_flag_cb cb, void *data)
{
    return job_side_write(s, id, "quality:", &sc_quality, quality_json, NULL, delta, cb, data);
}

int store_add_feedback(struct store *s, const char *id, const char *item_json, int keep,
                       const struct stats_delta *delta, store_flag_cb cb, void *data)
{
    char n[16];
    snprintf(n, sizeof(n), "%d", keep > 0 ? keep : 1);
    return job_side_write(s, id, "feedback:", &sc_feedback, item_json, n, delta, cb, data);
}

void store_stats_add(struct store *s, const struct stats_delta *delta)
{
    char kp[KEY_MAX];
    char *dt = delta_text(delta);
    if (!dt)
        return;
    key(s, kp, "stats:pend:", s->instance);
    rds_cmd(s->cmd, NULL, NULL, "RPUSH %s %s", kp, dt);
    free(dt);
}

/* USD as picodollars, within what Redis's 64-bit counters (and Lua's doubles, roughly) hold. */
static long long pico_clamped(double usd)
{
    double p = usd * 1e12;
    if (!(p > -9e18))
        return -9000000000000000000LL;
    return p < 9e18 ? llround(p) : 9000000000000000000LL;
}

static void key_spend(const struct store *s, int64_t day_ms, char *buf)
{
    char day[16];
    clock_utc_day(day_ms, day, sizeof(day));
    key(s, buf, "evalspend:", day);
}

int store_eval_reserve(struct store *s, int64_t day_ms, double estimate_usd, double budget_usd,
                       store_flag_cb cb, void *data)
{
    char k[KEY_MAX], b[32], e[32], ttl[24];
    const char *argv[4];
    struct op *o = op_new(s, (void (*)(void))cb, data);
    if (!o)
        return BD_ENOMEM;
    key_spend(s, day_ms, k);
    snprintf(b, sizeof(b), "%lld", pico_clamped(budget_usd));
    snprintf(e, sizeof(e), "%lld", pico_clamped(estimate_usd));
    snprintf(ttl, sizeof(ttl), "%ld", EVAL_SPEND_TTL_S);
    argv[0] = k;
    argv[1] = b;
    argv[2] = e;
    argv[3] = ttl;
    return send_or_free(evalsha(s, NULL, on_flag, o, &sc_eval_reserve, 1, 4, argv, NULL), o);
}

void store_eval_settle(struct store *s, int64_t day_ms, double delta_usd)
{
    char k[KEY_MAX], d[32];
    long long p = pico_clamped(delta_usd);
    if (p == 0)
        return;
    key_spend(s, day_ms, k);
    snprintf(d, sizeof(d), "%lld", p);
    rds_cmd(s->cmd, NULL, NULL, "INCRBY %s %s", k, d);
}
