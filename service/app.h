/* app.h - the briefd process: one libuv loop holding the current config, the store (Redis),
 * the transfer engine with the model and webhook clients, the HTTP server (roles all/api),
 * the worker (roles all/worker) and the signal handlers. app.c only wires: the API and the
 * pipeline get the service context (svc.h), never the app.
 *
 * Ownership: the app owns everything in it; it is closed asynchronously on shutdown and
 * app_run() returns only when the loop has no handles left. */
#ifndef BRIEFD_APP_H
#define BRIEFD_APP_H

enum app_role { ROLE_ALL = 0, ROLE_API = 1, ROLE_WORKER = 2 };

/* Run the service until SIGTERM/SIGINT; returns the process exit code. cfg_path NULL: the
 * embedded defaults. listen overrides the config's listen address (NULL: none). */
int app_run(const char *cfg_path, enum app_role role, const char *listen);

#endif
