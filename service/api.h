/* api.h - briefd's HTTP API handlers (docs/API.md): jobs, events, the OpenAI-compatible
 * facade, statistics, metrics, the dashboard, health, config, dead letters, tenants and
 * the OpenAPI description (GET /openapi.json).
 *
 * Requests that wait (POST/GET with ?wait=, the events stream, the facade) are parked on a
 * per-request context that lives until both the response is done and every Redis call made
 * for it has answered; job events from the store's subscription wake them.
 *
 * Ownership: the api belongs to the process, which hands it the service context (svc.h).
 * api_stop() answers every parked request (503 / end of stream) and calls back once their
 * Redis calls have answered; then api_free() releases it. */
#ifndef BRIEFD_API_H
#define BRIEFD_API_H

struct api;
struct http_req;
struct svc;

/* Create the API and subscribe to job events. Returns 0 or a negative error. */
int api_new(struct svc *svc, struct api **out);
/* The HTTP handler (data = the api). */
void api_handle(struct http_req *req, void *data);
/* Answer parked requests and stop; cb(data) once nothing is left in flight. */
void api_stop(struct api *api, void (*cb)(void *data), void *data);
void api_free(struct api *api);

/* Every operation the API serves, as docs/openapi.yaml lists them: cb(method, path, auth,
 * data) once each, in the route table's order; path is a template ("/v1/jobs/{id}"), method
 * "GET" or "POST" (HEAD is served wherever GET is and not listed), auth "none", "client" or
 * "admin". The strings are static. For `briefd routes` and the tests. */
typedef void (*api_route_cb)(const char *method, const char *path, const char *auth,
                             void *data);
void api_routes(api_route_cb cb, void *data);

#endif
