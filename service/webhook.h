/* webhook.h - callback deliveries: when a job that named a callback_url ends, its job object
 * is POSTed there (docs/API.md#webhooks).
 *
 * Deliveries are durable and shared: the job's finish leaves one in Redis (store_finish, same
 * script), and every process that runs workers claims due deliveries (store_webhook_claim: a
 * lease, so a delivery survives a restart, SIGTERM or kill -9 of the process that had it, and
 * two processes never make the same attempt). At most webhooks.max_in_flight attempts run at
 * once per process, each bounded by webhooks.timeout_ms. Connection failures, timeouts, 408,
 * 429 and 5xx are retried on a schedule of webhooks.backoff_base_ms x (1, 6, 24, 120, 360,
 * 720, 1440, 2880, 5760) with +-20% jitter (5 s, 30 s, 2 min ... 8 h by default), up to
 * webhooks.max_attempts attempts, none later than webhooks.max_age_s after the job ended;
 * other answers are final. Each outcome is recorded beside the job (its "webhook" object:
 * attempts, status pending|delivered|failed, last_status, error).
 *
 * Every attempt carries the Standard Webhooks headers: webhook-id (one per delivery, the
 * same on its retries), webhook-timestamp (Unix seconds of the attempt) and, when
 * webhooks.secret_env holds a secret, webhook-signature "v1,<base64 HMAC-SHA256 of
 * id.timestamp.body>". Each connection's address is checked against the target policy
 * (target.h) of the configuration current at the attempt; a refused address fails the
 * delivery at once (no retry). Logs and recorded errors show the URL as
 * scheme://host[:port]/path only - never its credentials or query string.
 *
 * Ownership: the sender belongs to the worker; webhook_close() cancels the attempts in flight
 * and gives their claims back (uncounted) through the store, which must stay open until those
 * calls are answered (it is closed after the worker). */
#ifndef BRIEFD_WEBHOOK_H
#define BRIEFD_WEBHOOK_H

#include <stddef.h>
#include <uv.h>

struct svc;
struct webhook;

/* The sender claims with svc->store and posts with svc->hooks; it looks for due deliveries
 * every half second. */
int webhook_new(struct svc *svc, struct webhook **out);
/* A job with a callback_url just ended: look for due deliveries now. */
void webhook_kick(struct webhook *w);
/* A new webhook-id: "msg_" + 32 hex digits of randomness, into out (at least 37 bytes). */
void webhook_msg_id(char *out, size_t n);

/* Vet a callback_url before its job is accepted, against the target policy of cfg
 * (target.h). webhook_vet_now() decides what needs no lookup: 0 allowed (an allowed literal
 * address, a listed name), -1 refused with why, 1 when the host name must be resolved.
 * webhook_vet_resolve() resolves it off the loop (uv_getaddrinfo) and calls cb(data, 0,
 * NULL) when every address is allowed, or cb(data, BD_EREFUSED, why) when one is not or
 * the name does not resolve. It returns 0 (cb runs exactly once, never from inside the call;
 * cfg is referenced until then) or a negative error (cb will not run). */
struct bd_config;
int webhook_vet_now(const struct bd_config *cfg, const char *url, char *why, size_t n);
int webhook_vet_resolve(uv_loop_t *loop, struct bd_config *cfg, const char *url,
                        void (*cb)(void *data, int status, const char *why), void *data);

/* The webhook-signature value for one message: "v1," + base64(HMAC-SHA256(secret,
 * "<msg_id>.<timestamp>.<body>")) into out (WEBHOOK_SIGNATURE_LEN bytes). Returns 0, or a
 * negative BD_E* code. */
#define WEBHOOK_SIGNATURE_LEN 48
int webhook_sign(const unsigned char *secret, size_t secret_len, const char *msg_id,
                 long long timestamp, const char *body, char *out, size_t n);
/* Cancel the attempts in flight (their claims are given back, uncounted) and free the sender
 * (once its handles are closed). */
void webhook_close(struct webhook *w);

#endif
