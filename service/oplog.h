/* oplog.h - what a briefd process says about its own operation in the log: the log settings
 * of the configuration (log.format, log.level) applied at start and on every reload, one
 * access line per HTTP request, and at start and reload whether authentication is on (with
 * how many client and admin keys) plus a warning for every *_env that names an unset
 * variable. Lines go through base/log.h; nothing here ever writes a secret.
 *
 * Ownership: nothing is kept; the config passed in is only read during the call. */
#ifndef BRIEFD_OPLOG_H
#define BRIEFD_OPLOG_H

#include <stddef.h>

struct bd_config;
struct http_req;

/* log_configure() from the config's log section. */
void oplog_apply(const struct bd_config *c);
/* The access line (an http_complete_fn, data unused): method, path without the query,
 * status, duration_ms, request_id, bytes. */
void oplog_access(const struct http_req *req, int status, size_t bytes, void *data);
/* The authentication summary and the environment warnings of c. */
void oplog_config(const struct bd_config *c);
/* A refused reload of path: one error line naming every mistake of the file (as briefd
 * check finds them), or first when checking finds none. */
struct cfg_err;
void oplog_reload_refused(const char *path, const struct cfg_err *first);

#endif
