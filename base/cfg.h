/* cfg.h - config readers shared by every parser of briefd's configuration (the service's key
 * table, the router, each policy): a mistake is reported as the JSON path of the offending
 * value plus what was expected, e.g. "routing.policies[2].min_mean_logprob: expected number".
 *
 * Ownership: nothing here allocates; objects read belong to the caller; errors are written
 * into a caller-owned struct cfg_err. */
#ifndef BRIEFD_CFG_H
#define BRIEFD_CFG_H

#include <stdio.h>

struct cJSON;

/* A configuration mistake: the JSON path of the offending value and what was expected,
 * e.g. path "routing.policies[2].min_mean_logprob", msg "expected number". */
struct cfg_err {
    char path[160];
    char msg[240];
};
/* Fill err (printf-style message). Always returns -1 so callers can `return cfg_fail(...)`. */
int cfg_fail(struct cfg_err *err, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The same with the path "path.key" (e.g. "routing.policies[0]" + "min_chars"). */
int cfg_fail_key(struct cfg_err *err, const char *path, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Typed readers. obj is a JSON object the caller owns; path is its JSON path; errors name
 * "path.key". Nothing is allocated.
 *
 * cfg_check_keys: every key of obj must be in known (NULL-terminated) and appear once; else
 *   "path.key: unknown key" / "path.key: duplicate key". Returns 0 or -1.
 * cfg_number / cfg_integer: read obj.key. Return CFG_ABSENT (key missing, *out untouched),
 *   CFG_NULL (JSON null and nullable, *out untouched), CFG_VALUE (*out set) or -1:
 *   wrong type -> "expected number" / "expected integer" (with " or null" when nullable);
 *   cfg_integer also checks lo <= v <= hi -> "must be >= lo" / "must be <= hi".
 *   Range checks of numbers are the caller's (they differ: > 0, <= 0, [0, 1], ...).
 * cfg_enum: obj.key must be a string among names (NULL-terminated); sets *out to its index.
 *   Returns CFG_ABSENT, CFG_VALUE or -1 with "expected one of a, b, c". */
#define CFG_ABSENT 0
#define CFG_VALUE 1
#define CFG_NULL 2
int cfg_check_keys(const struct cJSON *obj, const char *path, const char *const *known,
                   struct cfg_err *err);
int cfg_number(const struct cJSON *obj, const char *path, const char *key, int nullable,
               double *out, struct cfg_err *err);
int cfg_integer(const struct cJSON *obj, const char *path, const char *key, int nullable,
                long long lo, long long hi, long long *out, struct cfg_err *err);
int cfg_enum(const struct cJSON *obj, const char *path, const char *key,
             const char *const *names, int *out, struct cfg_err *err);

/* Print "<what>: <path>: <msg>" (or "<what>: <msg>" when the path is empty) and a newline. */
void cfg_err_print(FILE *f, const char *what, const struct cfg_err *err);

#endif
