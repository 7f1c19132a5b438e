/* app.h - the briefd process: one libuv loop holding the current config, the Redis
 * connections, the model client, the HTTP server (roles all/api), the worker (roles
 * all/worker) and the signal handlers.
 *
 * Ownership: the app owns everything in it. app->cfg is the current config (one reference
 * held by the app); a reload swaps it. Everything is closed asynchronously on shutdown and
 * app_run() returns only when the loop has no handles left. */
#ifndef BRIEFD_APP_H
#define BRIEFD_APP_H

#include <uv.h>

#include "config.h"

enum app_role { ROLE_ALL = 0, ROLE_API = 1, ROLE_WORKER = 2 };

struct rds;
struct mc_ctx;
struct http_server;
struct worker;
struct api;

struct app {
    uv_loop_t *loop;
    struct bd_config *cfg;
    const char *cfg_path;       /* NULL: embedded defaults */
    enum app_role role;
    const char *listen;         /* --listen override, or NULL */
    struct rds *cmd;            /* commands */
    struct rds *sub;            /* pub/sub: job events */
    struct mc_ctx *mc;
    struct http_server *http;
    struct worker *worker;
    struct api *api;
    uv_signal_t sig_term, sig_int, sig_hup;
    uv_timer_t grace;           /* shutdown grace period */
    int stopping;
    int pending_closes;
    char instance[96];          /* host-pid-random: the worker's consumer name */
    unsigned long reloads;
    int redis_seen;             /* connected since the last loss (for log lines) */
};

/* Run the service until SIGTERM/SIGINT; returns the process exit code. */
int app_run(const char *cfg_path, enum app_role role, const char *listen);
/* Re-read the config file, validate all of it, swap atomically. Returns 0, or -1 with err
 * filled and the running config unchanged. */
int app_reload(struct app *a, struct cfg_err *err);
/* Log a line to stderr with a timestamp (never secrets). */
void app_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
