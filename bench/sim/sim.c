/* sim.c - the process state: defaults, timing, the fault PRNG. */
#include "sim.h"

#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "hash.h"

const char *const sim_profiles[PROFILE_COUNT] = {"realistic", "fast", "zero"};

void sim_init(struct sim *s)
{
    memset(s, 0, sizeof *s);
    snprintf(s->host, sizeof s->host, "%s", SIM_DEFAULT_HOST);
    s->port = SIM_DEFAULT_PORT;
    s->profile = PROFILE_REALISTIC;
    s->ttft_override = -1;
    s->tps_override = -1;
    s->retry_after = 1;
    s->seed = 1;
    s->rng = 1;
    s->started_ms = clock_wall_ms();
    faults_init(&s->faults);
    stats_init(&s->stats);
    list_init(&s->pending);
}

void sim_timing(const struct sim *s, int model, double *ttft_ms, double *tps)
{
    *ttft_ms = model_defs[model].ttft_ms;
    *tps = model_defs[model].tps;
    if (s->profile == PROFILE_FAST) {
        *ttft_ms = 5;
        *tps = 2000;
    } else if (s->profile == PROFILE_ZERO) {
        *ttft_ms = 0;
        *tps = 0;
    }
    if (s->ttft_override >= 0)
        *ttft_ms = s->ttft_override;
    if (s->tps_override >= 0)
        *tps = s->tps_override;
}

double sim_draw(struct sim *s)
{
    s->rng += 0x9e3779b97f4a7c15ull;
    return hash_unit(s->rng);
}

void sim_reseed(struct sim *s)
{
    s->rng = s->seed;
}
