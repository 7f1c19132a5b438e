/* webhook.h - callback deliveries: when a job that named a callback_url ends, its job object
 * is POSTed there (docs/API.md). Up to WEBHOOK_ATTEMPTS attempts with exponential backoff;
 * connection failures, timeouts, 408, 429 and 5xx are retried, other answers are final.
 *
 * Every delivery carries the Standard Webhooks headers: webhook-id (one per delivery, the
 * same on its retries), webhook-timestamp (Unix seconds of the attempt) and, when
 * webhooks.secret_env holds a secret, webhook-signature "v1,<base64 HMAC-SHA256 of
 * id.timestamp.body>". Each connection's address is checked against the target policy
 * (target.h) of the configuration the delivery started under; a refused address fails the
 * delivery at once (no retry). Logs show the URL as scheme://host[:port]/path only.
 *
 * Ownership: the webhook sender belongs to the process (svc); it copies the id and URL it is
 * given, and each delivery holds a reference to the config it started under.
 * webhook_close() cancels deliveries in flight. */
#ifndef BRIEFD_WEBHOOK_H
#define BRIEFD_WEBHOOK_H

#include <stddef.h>
#include <uv.h>

struct svc;
struct webhook;

#define WEBHOOK_ATTEMPTS 3

/* The sender posts with svc->hooks and reads jobs with svc->store. */
int webhook_new(struct svc *svc, struct webhook **out);
/* Job id ended: deliver it to url (fire and forget; failures are logged). */
void webhook_send(struct webhook *w, const char *id, const char *url);

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
/* Cancel every delivery and free the sender. */
void webhook_close(struct webhook *w);

#endif
