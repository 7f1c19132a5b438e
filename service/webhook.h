/* webhook.h - callback deliveries: when a job that named a callback_url ends, its job object
 * is POSTed there (docs/API.md). Up to WEBHOOK_ATTEMPTS attempts with exponential backoff;
 * connection failures, timeouts, 408, 429 and 5xx are retried, other answers are final.
 *
 * Ownership: the webhook sender belongs to the process (svc); it copies the id and URL it is
 * given. webhook_close() cancels deliveries in flight. */
#ifndef BRIEFD_WEBHOOK_H
#define BRIEFD_WEBHOOK_H

struct svc;
struct webhook;

#define WEBHOOK_ATTEMPTS 3

/* The sender posts with svc->hooks and reads jobs with svc->store. */
int webhook_new(struct svc *svc, struct webhook **out);
/* Job id ended: deliver it to url (fire and forget; failures are logged). */
void webhook_send(struct webhook *w, const char *id, const char *url);
/* Cancel every delivery and free the sender. */
void webhook_close(struct webhook *w);

#endif
