/* oplog.c - log settings, access lines, authentication summary, environment warnings. */
#include "oplog.h"

#include <stdlib.h>

#include "config.h"
#include "http.h"
#include "log.h"

void oplog_apply(const struct bd_config *c)
{
    log_configure(NULL, c->log_format == LOG_JSON ? LOG_JSON : LOG_TEXT,
                  (enum log_level)c->log_level);
}

void oplog_access(const struct http_req *req, int status, size_t bytes, void *data)
{
    struct log_field f[] = {
        LOG_STR("method", http_req_method(req)),
        LOG_STR("path", http_req_path(req)),
        LOG_NUM("status", status),
        LOG_NUM("duration_ms", (double)(long long)(http_req_elapsed_ms(req) * 1000.0) / 1000.0),
        LOG_STR("request_id", http_req_id(req)),
        LOG_NUM("bytes", (double)bytes),
    };

    (void)data;
    if (log_enabled(LOG_INFO))
        log_write(LOG_INFO, f, sizeof f / sizeof f[0], "access");
}

static void warn_env(const char *path, const char *msg, void *data)
{
    struct log_field f[] = {LOG_STR("key", path)};

    (void)data;
    log_write(LOG_WARN, f, 1, "%s: %s", path, msg);
}

void oplog_config(const struct bd_config *c)
{
    struct log_field f[] = {
        LOG_NUM("client_keys", (double)c->n_api_keys),
        LOG_NUM("admin_keys", (double)c->n_admin_keys),
    };

    if (config_auth_enabled(c))
        log_write(LOG_INFO, f, 2, "auth on: %zu client key%s, %zu admin key%s", c->n_api_keys,
                  c->n_api_keys == 1 ? "" : "s", c->n_admin_keys,
                  c->n_admin_keys == 1 ? "" : "s");
    else
        log_write(LOG_INFO, f, 2, "auth off: no API keys loaded; every route is open");
    config_env_warnings(c, warn_env, NULL);
}

void oplog_reload_refused(const char *path, const struct cfg_err *first)
{
    static struct cfg_err errs[CONFIG_MAX_REPORTED];
    int n = path ? config_check_collect(path, errs, CONFIG_MAX_REPORTED) : 0;
    char *text;

    if (n <= 0) {
        errs[0] = *first;
        n = 1;
    }
    text = config_mistakes_text(errs, n > CONFIG_MAX_REPORTED ? CONFIG_MAX_REPORTED : n);
    log_error("reload refused, running config kept: %s", text ? text : first->msg);
    free(text);
}
