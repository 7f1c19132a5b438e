/* sim.h - briefd-modelsim's process state, shared by its modules: where it listens, its
 * timing profile, the settings (faults.h), the counters and request log (stats.h), the
 * fault PRNG, and the requests that are answered later (reply.h).
 *
 * Ownership: one struct sim per process (sim_main.c); the modules borrow it. */
#ifndef SIM_SIM_H
#define SIM_SIM_H

#include <stdint.h>
#include <uv.h>

#include "faults.h"
#include "list.h"
#include "model.h"
#include "stats.h"

#define SIM_DEFAULT_HOST "127.0.0.1"
#define SIM_DEFAULT_PORT 5273
#define SIM_MAX_BODY ((size_t)8 << 20)  /* request body limit (413 beyond) */
#define SIM_MAX_PENDING 4096u           /* delayed, streaming or hanging requests (503 beyond) */
#define SIM_MAX_DELAY_MS 3600000.0      /* cap on any simulated delay */

enum sim_profile { PROFILE_REALISTIC, PROFILE_FAST, PROFILE_ZERO, PROFILE_COUNT };
extern const char *const sim_profiles[PROFILE_COUNT];  /* "realistic", "fast", "zero" */

struct http_server;

struct sim {
    uv_loop_t *loop;
    struct http_server *server;
    uv_signal_t sig_int, sig_term;
    char host[256];
    int port;
    enum sim_profile profile;
    double ttft_override, tps_override;     /* < 0: none */
    unsigned retry_after;                   /* seconds, on 429 */
    unsigned max_conns;                     /* open connections at most (0: the server's default) */
    int closing;
    uint64_t seed, rng, next_id;
    int64_t started_ms;
    struct faults faults;
    struct stats stats;
    struct list_node pending;               /* requests answered later (reply.c) */
    unsigned npending;
};

/* Defaults: 127.0.0.1:5273, realistic, seed 1, Retry-After 1, every fault off. */
void sim_init(struct sim *s);
/* Time to first token (ms) and tokens per second of model under the profile/overrides. */
void sim_timing(const struct sim *s, int model, double *ttft_ms, double *tps);
/* The next value in [0, 1) of the fault PRNG (splitmix64 seeded by --seed). */
double sim_draw(struct sim *s);
/* Restart the PRNG from the seed. */
void sim_reseed(struct sim *s);

#endif
