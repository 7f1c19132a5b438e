/* app.c - the briefd process: wiring, signals, reload, orderly shutdown. */
#include "app.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "api.h"
#include "bderr.h"
#include "config.h"
#include "curlm.h"
#include "handoff.h"
#include "hook.h"
#include "http.h"
#include "job.h"
#include "log.h"
#include "mclient.h"
#include "pipeline.h"
#include "rds.h"
#include "oplog.h"
#include "shadow.h"
#include "store.h"
#include "svc.h"
#include "worker.h"

struct app {
    struct svc svc;             /* what the API and the pipeline are handed */
    const char *cfg_path;       /* NULL: embedded defaults */
    enum app_role role;
    const char *listen;         /* --listen override, or NULL */
    struct curlm *engine;       /* HTTP transfers for the model and webhook clients */
    struct http_server *http;
    struct worker *worker;
    struct api *api;
    uv_signal_t sig_term, sig_int, sig_hup;
    uv_prepare_t log_flush;     /* held log lines written before the loop waits */
    char instance[96];          /* host-pid-random: the worker's consumer name */
    int redis_seen;             /* connected since the last loss (for log lines) */
};

static int app_reload(struct svc *svc, struct cfg_err *err)
{
    struct app *a = (struct app *)(void *)svc; /* svc is the app's first member */
    struct bd_config *next, *cur = svc->cfg;
    if (!a->cfg_path) {
        snprintf(err->path, sizeof(err->path), "%s", "");
        snprintf(err->msg, sizeof(err->msg), "%s",
                 "briefd runs on its embedded defaults (no --config file): nothing to reload");
        return -1;
    }
    next = config_load(a->cfg_path, err);
    if (!next)
        return -1;
    /* Settings bound at start-up (listen, Redis) need a restart: refused, not half-applied. */
    if (config_restart_diff(cur, next, err) != 0) {
        config_unref(next);
        return -1;
    }
    config_unref(cur);
    svc->cfg = next;
    store_set_retention(svc->store, next->stats_retention_s);
    oplog_apply(next);
    log_info("config reloaded from %s (version %s)", a->cfg_path, next->version);
    oplog_config(next);
    return 0;
}

static void on_store_state(void *data, int connected)
{
    struct app *a = data;
    int port = 0;
    const char *via = "url";
    const char *host = a->svc.store ? store_primary(a->svc.store, &port, &via) : "";
    char addr[300];
    rds_addr_text(host, port, addr, sizeof(addr));
    if (connected) {
        log_info("redis %s connected (primary from %s)", addr, via);
        a->redis_seen = 1;
    } else if (!a->svc.stopping && a->redis_seen) {
        log_warn("redis %s unreachable; retrying", addr);
        a->redis_seen = 0;
    }
}

/* --- shutdown: worker -> api -> http -> shadow judging -> clients -> store --- */

static void closed_one(void *data)
{
    (void)data; /* the loop ends when the last handle is closed */
}

/* After the shadow evaluations in flight were canceled (shadow.h): the clients, the store. */
static void on_shadow_closed(void *data)
{
    struct app *a = data;
    a->svc.shadow = NULL;
    if (a->svc.pipe)
        pipeline_close(a->svc.pipe, closed_one, a);
    if (a->svc.mc)
        mc_ctx_close(a->svc.mc);
    if (a->svc.hooks)
        hook_client_close(a->svc.hooks);
    if (a->engine)
        curlm_close(a->engine, closed_one, a);
    if (a->svc.store)
        store_close(a->svc.store, closed_one, a);
    a->svc.pipe = NULL;
    a->svc.mc = NULL;
    a->svc.hooks = NULL;
    a->engine = NULL;
    a->svc.store = NULL;
}

static void on_http_closed(void *data)
{
    struct app *a = data;
    a->http = NULL;
    if (a->svc.shadow)
        shadow_close(a->svc.shadow, on_shadow_closed, a);
    else
        on_shadow_closed(a);
}

static void on_api_stopped(void *data)
{
    struct app *a = data;
    if (a->api)
        api_free(a->api);
    a->api = NULL;
    if (a->http)
        http_server_close(a->http, on_http_closed, a);
    else
        on_http_closed(a);
}

static void on_worker_stopped(void *data)
{
    struct app *a = data;
    a->worker = NULL;
    a->svc.worker = NULL;
    if (a->api)
        api_stop(a->api, on_api_stopped, a);
    else
        on_api_stopped(a);
}

static void on_sig_closed(uv_handle_t *h) { (void)h; }

static void app_shutdown(struct app *a)
{
    if (a->svc.stopping)
        return;
    a->svc.stopping = 1;
    log_info("shutting down: no new connections; in-flight jobs get %d ms",
             a->svc.cfg->shutdown_grace_ms);
    uv_close((uv_handle_t *)&a->sig_term, on_sig_closed);
    uv_close((uv_handle_t *)&a->sig_int, on_sig_closed);
    uv_close((uv_handle_t *)&a->sig_hup, on_sig_closed);
    uv_close((uv_handle_t *)&a->log_flush, on_sig_closed);
    log_hold(0); /* the lines of the shutdown as they come */
    if (a->http)
        http_server_stop_accepting(a->http);
    if (a->worker)
        worker_stop(a->worker, (unsigned)a->svc.cfg->shutdown_grace_ms, on_worker_stopped, a);
    else
        on_worker_stopped(a);
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct app *a = s->data;
    if (signum == SIGHUP) {
        struct cfg_err err;
        if (app_reload(&a->svc, &err) != 0)
            oplog_reload_refused(a->cfg_path, &err);
        return;
    }
    app_shutdown(a);
}

/* --- start --- */

static void make_instance(struct app *a)
{
    char host[64] = "host";
    unsigned r = 0;
    gethostname(host, sizeof(host) - 1);
    host[sizeof(host) - 1] = '\0';
    if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
        r = (unsigned)time(NULL);
    snprintf(a->instance, sizeof(a->instance), "%.60s-%d-%04x", host, (int)getpid(), r & 0xffff);
}

static int open_store(struct app *a)
{
    const struct bd_config *c = a->svc.cfg;
    struct store_opts o;
    memset(&o, 0, sizeof(o));
    o.host = c->redis_host;
    o.port = c->redis_port;
    o.db = c->redis_db;
    o.user = c->redis_user;
    o.password = c->redis_password;
    o.tls = c->redis_tls;
    o.tls_ca_file = c->redis_tls_ca_file;
    o.sentinels = (const char *const *)c->redis_sentinels.v;
    o.n_sentinels = c->redis_sentinels.n;
    o.master_name = c->redis_master_name;
    o.sentinel_password = c->redis_sentinel_password;
    o.min_replicas_acked = c->redis_min_replicas_acked;
    o.replica_ack_timeout_ms = c->redis_replica_ack_timeout_ms;
    o.prefix = c->redis_prefix;
    o.instance = a->instance;
    o.role = a->role == ROLE_ALL ? "all" : a->role == ROLE_API ? "api" : "worker";
    o.consumer = a->role != ROLE_API;
    o.command_timeout_ms = c->redis_command_timeout_ms;
    o.stats_retention_s = c->stats_retention_s;
    return store_open(a->svc.loop, &o, on_store_state, a, &a->svc.store);
}

/* The listen address: --listen HOST:PORT (IPv6 in brackets) or the config's. */
static int listen_addr(const struct app *a, char *host, size_t len, int *port)
{
    const char *colon;
    snprintf(host, len, "%s", a->svc.cfg->listen_host);
    *port = a->svc.cfg->listen_port;
    if (!a->listen)
        return 0;
    colon = strrchr(a->listen, ':');
    if (!colon) {
        log_error("--listen must be HOST:PORT");
        return BD_EINVAL;
    }
    snprintf(host, len, "%.*s", (int)(colon - a->listen), a->listen);
    *port = atoi(colon + 1);
    if (host[0] == '[') {
        memmove(host, host + 1, strlen(host));
        host[strcspn(host, "]")] = '\0';
    }
    return 0;
}

static const char *const probe_paths[] = {"/healthz", "/readyz", NULL};

static int open_http(struct app *a)
{
    struct http_limits lim;
    char host[256];
    int port, rc;
    rc = listen_addr(a, host, sizeof(host), &port);
    if (rc != 0)
        return rc;
    http_limits_default(&lim);
    lim.max_body = job_body_bound(a->svc.cfg->max_text_bytes); /* any encoding of a job */
    lim.probe_paths = probe_paths; /* answered even when every connection is taken */
    rc = http_server_start(a->svc.loop, host, port, &lim, api_handle, a->api, &a->http);
    if (rc != 0) {
        log_error("cannot listen on %s:%d: %s", host, port, bd_strerror(rc));
        return rc;
    }
    http_server_on_complete(a->http, oplog_access, NULL);
    log_info("listening on http://%s:%d (role %s)", host, http_server_port(a->http),
             a->role == ROLE_ALL ? "all" : a->role == ROLE_API ? "api" : "worker");
    return 0;
}

static int open_clients(struct app *a)
{
    int rc = curlm_new(a->svc.loop, &a->engine);
    if (rc == 0)
        rc = mc_ctx_new(a->svc.loop, a->engine, &a->svc.mc);
    if (rc == 0)
        rc = hook_client_new(a->engine, &a->svc.hooks);
    if (rc == 0)
        rc = pipeline_new(&a->svc, &a->svc.pipe);
    if (rc == 0)
        rc = shadow_new(&a->svc, &a->svc.shadow);
    return rc;
}

static void on_prepare(uv_prepare_t *p)
{
    (void)p;
    log_flush();
}

/* The signal handles and the log flush (closed by app_shutdown). */
static void start_signals(struct app *a)
{
    uv_signal_init(a->svc.loop, &a->sig_term);
    uv_signal_init(a->svc.loop, &a->sig_int);
    uv_signal_init(a->svc.loop, &a->sig_hup);
    a->sig_term.data = a->sig_int.data = a->sig_hup.data = a;
    uv_prepare_init(a->svc.loop, &a->log_flush);
}

static int app_start(struct app *a)
{
    int rc;
    make_instance(a);
    a->svc.instance = a->instance;
    a->svc.reload = app_reload;
    rc = open_store(a);
    if (rc == 0)
        rc = open_clients(a);
    if (rc == 0 && a->role != ROLE_API) /* this process's worker reads what its API queues */
        rc = handoff_new(&a->svc.handoff);
    if (rc == 0)
        rc = api_new(&a->svc, &a->api);
    if (rc == 0 && (a->role != ROLE_WORKER || a->listen))
        rc = open_http(a);
    if (rc == 0 && a->role != ROLE_API)
        rc = worker_start(&a->svc, &a->worker);
    a->svc.worker = a->worker;
    start_signals(a);
    if (rc != 0)
        return rc;
    uv_signal_start(&a->sig_term, on_signal, SIGTERM);
    uv_signal_start(&a->sig_int, on_signal, SIGINT);
    uv_signal_start(&a->sig_hup, on_signal, SIGHUP);
    /* info lines (an access line a request) are written together once a turn of the loop,
     * before it waits: one write for many requests under load */
    uv_prepare_start(&a->log_flush, on_prepare);
    uv_unref((uv_handle_t *)&a->log_flush);
    log_hold(1);
    log_info("briefd started: instance %s, config %s (version %s), draft %s, refine %s",
             a->instance, a->cfg_path ? a->cfg_path : "(embedded defaults)",
             a->svc.cfg->version, a->svc.cfg->draft.name, a->svc.cfg->refine.name);
    oplog_config(a->svc.cfg);
    return 0;
}

int app_run(const char *cfg_path, enum app_role role, const char *listen)
{
    struct app a;
    uv_loop_t loop;
    struct cfg_err err;
    int rc;
    memset(&a, 0, sizeof(a));
    a.svc.cfg = config_load(cfg_path, &err);
    if (!a.svc.cfg) {
        cfg_err_print(stderr, cfg_path ? cfg_path : "briefd: embedded config", &err);
        return 1;
    }
    oplog_apply(a.svc.cfg);
    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&loop);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    a.svc.loop = &loop;
    a.cfg_path = cfg_path;
    a.role = role;
    a.listen = listen;
    rc = app_start(&a);
    if (rc != 0)
        app_shutdown(&a); /* close what was opened, then leave */
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    handoff_free(a.svc.handoff);
    curl_global_cleanup();
    config_unref(a.svc.cfg);
    if (rc == 0)
        log_info("stopped cleanly");
    return rc == 0 ? 0 : 1;
}
