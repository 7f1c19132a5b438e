/* app.c - the briefd process: wiring, signals, reload, orderly shutdown. */
#include "app.h"

#include <curl/curl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "bderr.h"
#include "clock.h"
#include "http.h"
#include "job.h"
#include "mclient.h"
#include "rds.h"
#include "store.h"
#include "worker.h"

void app_log(const char *fmt, ...)
{
    char ts[40];
    va_list ap;
    clock_iso8601(clock_wall_ms(), ts, sizeof(ts));
    fprintf(stderr, "%s briefd[%d]: ", ts, (int)getpid());
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int app_reload(struct app *a, struct cfg_err *err)
{
    struct bd_config *next;
    if (!a->cfg_path) {
        snprintf(err->path, sizeof(err->path), "%s", "");
        snprintf(err->msg, sizeof(err->msg), "%s",
                 "briefd runs on its embedded defaults (no --config file): nothing to reload");
        return -1;
    }
    next = config_load(a->cfg_path, err);
    if (!next)
        return -1;
    /* Settings bound at start-up (listen address, Redis) need a restart to change. */
    if (strcmp(next->redis_url, a->cfg->redis_url) != 0 ||
        strcmp(next->redis_prefix, a->cfg->redis_prefix) != 0 ||
        strcmp(next->listen_host, a->cfg->listen_host) != 0 ||
        next->listen_port != a->cfg->listen_port) {
        app_log("reload: listen and redis settings changed in the file; they take effect "
                "at the next restart");
    }
    config_unref(a->cfg);
    a->cfg = next;
    a->reloads++;
    app_log("config reloaded from %s (version %s)", a->cfg_path, next->version);
    return 0;
}

/* --- events subscription --- */

static void on_event(struct rds *r, struct rds_reply *x, void *data)
{
    struct app *a = data;
    size_t len;
    const char *payload;
    char buf[96], *sp;
    (void)r;
    if (!x || rds_reply_len(x) != 3 || !rds_reply_is(rds_reply_elem(x, 0), "message"))
        return;
    payload = rds_reply_str(rds_reply_elem(x, 2), &len);
    if (!payload || len >= sizeof(buf))
        return;
    memcpy(buf, payload, len);
    buf[len] = '\0';
    sp = strchr(buf, ' ');
    if (!sp)
        return;
    *sp = '\0';
    if (a->api)
        api_on_event(a->api, buf, sp + 1);
}

static void on_sub_state(struct rds *r, enum rds_state s, void *data)
{
    struct app *a = data;
    char chan[200];
    if (s != RDS_CONNECTED)
        return;
    store_events_key(a->cfg->redis_prefix, chan, sizeof(chan));
    if (rds_subscribe(r, chan, on_event, a) == 0 && a->api)
        api_on_resubscribed(a->api);
}

static void on_cmd_state(struct rds *r, enum rds_state s, void *data)
{
    struct app *a = data;
    if (s == RDS_CONNECTED) {
        app_log("redis %s:%d connected", a->cfg->redis_host, a->cfg->redis_port);
        if (a->role != ROLE_API)
            store_ensure_groups(r, a->cfg->redis_prefix);
        a->redis_seen = 1;
    } else if (s == RDS_CONNECTING && !a->stopping && a->redis_seen) {
        app_log("redis %s:%d unreachable; retrying", a->cfg->redis_host, a->cfg->redis_port);
        a->redis_seen = 0;
    }
}

/* --- shutdown: worker -> api -> http -> model client -> redis --- */

static void closed_one(void *data)
{
    (void)data; /* the loop ends when the last handle is closed */
}

static void on_http_closed(void *data)
{
    struct app *a = data;
    a->http = NULL;
    if (a->mc)
        mc_ctx_close(a->mc, closed_one, a);
    if (a->sub)
        rds_close(a->sub, closed_one, a);
    if (a->cmd)
        rds_close(a->cmd, closed_one, a);
}

static void on_api_stopped(void *data)
{
    struct app *a = data;
    free(a->api);
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
    if (a->api)
        api_stop(a->api, on_api_stopped, a);
    else
        on_api_stopped(a);
}

static void on_sig_closed(uv_handle_t *h) { (void)h; }

static void app_shutdown(struct app *a)
{
    if (a->stopping)
        return;
    a->stopping = 1;
    app_log("shutting down: no new connections; in-flight jobs get %d ms",
            a->cfg->shutdown_grace_ms);
    uv_close((uv_handle_t *)&a->sig_term, on_sig_closed);
    uv_close((uv_handle_t *)&a->sig_int, on_sig_closed);
    uv_close((uv_handle_t *)&a->sig_hup, on_sig_closed);
    if (a->http)
        http_server_stop_accepting(a->http);
    if (a->worker)
        worker_stop(a->worker, (unsigned)a->cfg->shutdown_grace_ms, on_worker_stopped, a);
    else
        on_worker_stopped(a);
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct app *a = s->data;
    if (signum == SIGHUP) {
        struct cfg_err err;
        if (app_reload(a, &err) != 0)
            app_log("reload refused, running config kept: %s%s%s", err.path,
                    err.path[0] ? ": " : "", err.msg);
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

static int open_redis(struct app *a)
{
    struct rds_opts o;
    int rc;
    store_redis_opts(a->cfg, "cmd", &o);
    rc = rds_open(a->loop, &o, on_cmd_state, a, &a->cmd);
    if (rc != 0)
        return rc;
    o.name = "sub";
    return rds_open(a->loop, &o, on_sub_state, a, &a->sub);
}

static int open_http(struct app *a)
{
    struct http_limits lim;
    char host[256];
    int port = a->cfg->listen_port;
    int rc;
    snprintf(host, sizeof(host), "%s", a->cfg->listen_host);
    if (a->listen) {
        const char *colon = strrchr(a->listen, ':');
        if (!colon) {
            app_log("--listen must be HOST:PORT");
            return BD_EINVAL;
        }
        snprintf(host, sizeof(host), "%.*s", (int)(colon - a->listen), a->listen);
        port = atoi(colon + 1);
        if (host[0] == '[') {
            memmove(host, host + 1, strlen(host));
            host[strcspn(host, "]")] = '\0';
        }
    }
    http_limits_default(&lim);
    /* a body holds the text plus JSON escaping (up to 6x for control characters) */
    lim.max_body = a->cfg->max_text_bytes * 2 + 65536;
    rc = http_server_start(a->loop, host, port, &lim, api_handle, a->api, &a->http);
    if (rc != 0) {
        app_log("cannot listen on %s:%d: %s", host, port, bd_strerror(rc));
        return rc;
    }
    app_log("listening on http://%s:%d (role %s)", host, http_server_port(a->http),
            a->role == ROLE_ALL ? "all" : a->role == ROLE_API ? "api" : "worker");
    return 0;
}

static int app_start(struct app *a)
{
    int rc;
    make_instance(a);
    rc = open_redis(a);
    if (rc == 0)
        rc = mc_ctx_new(a->loop, &a->mc);
    if (rc == 0)
        rc = api_new(a, &a->api);
    if (rc == 0 && (a->role != ROLE_WORKER || a->listen))
        rc = open_http(a);
    if (rc == 0 && a->role != ROLE_API)
        rc = worker_start(a, &a->worker);
    if (rc != 0)
        return rc;
    uv_signal_init(a->loop, &a->sig_term);
    uv_signal_init(a->loop, &a->sig_int);
    uv_signal_init(a->loop, &a->sig_hup);
    a->sig_term.data = a->sig_int.data = a->sig_hup.data = a;
    uv_signal_start(&a->sig_term, on_signal, SIGTERM);
    uv_signal_start(&a->sig_int, on_signal, SIGINT);
    uv_signal_start(&a->sig_hup, on_signal, SIGHUP);
    app_log("briefd started: instance %s, config %s (version %s), draft %s, refine %s",
            a->instance, a->cfg_path ? a->cfg_path : "(embedded defaults)", a->cfg->version,
            a->cfg->draft.name, a->cfg->refine.name);
    return 0;
}

int app_run(const char *cfg_path, enum app_role role, const char *listen)
{
    struct app a;
    uv_loop_t loop;
    struct cfg_err err;
    int rc;
    memset(&a, 0, sizeof(a));
    a.cfg = config_load(cfg_path, &err);
    if (!a.cfg) {
        cfg_err_print(stderr, cfg_path ? cfg_path : "briefd: embedded config", &err);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&loop);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    a.loop = &loop;
    a.cfg_path = cfg_path;
    a.role = role;
    a.listen = listen;
    rc = app_start(&a);
    if (rc != 0) {
        a.stopping = 0;
        /* close what was opened, then leave */
        uv_signal_init(a.loop, &a.sig_term);
        uv_signal_init(a.loop, &a.sig_int);
        uv_signal_init(a.loop, &a.sig_hup);
        app_shutdown(&a);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    curl_global_cleanup();
    config_unref(a.cfg);
    if (rc == 0)
        app_log("stopped cleanly");
    return rc == 0 ? 0 : 1;
}
