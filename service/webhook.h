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

struct svc;
struct webhook;

#define WEBHOOK_ATTEMPTS 3

/* The sender posts with svc->hooks and reads jobs with svc->store. */
int webhook_new(struct svc *svc, struct webhook **out);
/* Job id ended: deliver it to url (fire and forget; failures are logged). */
void webhook_send(struct webhook *w, const char *id, const char *url);

/* The webhook-signature value for one message: "v1," + base64(HMAC-SHA256(secret,
 * "<msg_id>.<timestamp>.<body>")) into out (WEBHOOK_SIGNATURE_LEN bytes). Returns 0, or a
 * negative BD_E* code. */
#define WEBHOOK_SIGNATURE_LEN 48
int webhook_sign(const unsigned char *secret, size_t secret_len, const char *msg_id,
                 long long timestamp, const char *body, char *out, size_t n);
/* Cancel every delivery and free the sender. */
void webhook_close(struct webhook *w);

#endif
