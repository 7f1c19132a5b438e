/* api.h - briefd's HTTP API handlers (SPEC §2): jobs, events, health, config, models.
 *
 * Requests that wait (POST/GET with ?wait=, the events stream) are parked on a per-request
 * context that lives until both the response is done and every Redis call made for it has
 * answered; job events from Redis pub/sub wake them.
 *
 * Ownership: the api belongs to the app; api_stop() answers every parked request (503 /
 * end of stream) and frees them once their Redis calls have answered. */
#ifndef BRIEFD_API_H
#define BRIEFD_API_H

struct app;
struct api;
struct http_req;

int api_new(struct app *a, struct api **out);
/* The HTTP handler (data = the api). */
void api_handle(struct http_req *req, void *data);
/* A job event from Redis pub/sub: "<id> <status>". */
void api_on_event(struct api *api, const char *id, const char *status);
/* The events subscription (re)connected: parked requests re-check their jobs. */
void api_on_resubscribed(struct api *api);
/* Answer parked requests and stop; cb(data) once nothing is left in flight. */
void api_stop(struct api *api, void (*cb)(void *data), void *data);

#endif
