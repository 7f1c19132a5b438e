/* slots.h - model call slots: at most models.X.max_concurrency calls in flight to one model
 * server, counted across every process that shares the Redis (docs/CONFIG.md#models).
 *
 * The leases live in Redis (store.h: store_slot_*); this module keeps this process's side:
 * one waiting line per model server, in priority order (high before normal before low, then
 * first come, first served), and the leases it holds, renewed every third of the lease time.
 * The head of each line asks Redis for a lease at once, then every SLOTS_POLL_MS while all
 * slots are taken; a slot given back in this process goes to the line at once. A process
 * that dies stops renewing: its leases lapse within the lease time (workers.claim_idle_ms).
 *
 * Redis unreachable: the line falls back to a local count (at most cap calls from this
 * process), so a model call never waits on Redis coming back.
 *
 * Ownership: struct slot_wait is the caller's and must stay valid until slots_give() (or
 * slots_close()); its callback runs at most once, never from inside slots_take(). The server
 * string is copied. */
#ifndef BRIEFD_SLOTS_H
#define BRIEFD_SLOTS_H

#include <stdint.h>
#include <uv.h>

#include "list.h"

#define SLOTS_POLL_MS 50

struct slots;
struct slot_line;
struct store;
struct slot_wait;

/* status 0: the slot is held (give it back with slots_give). */
typedef void (*slot_cb)(struct slot_wait *w, int status);

struct slot_wait {
    void *data;                 /* the caller's */
    /* internal */
    slot_cb cb;
    struct slot_line *line;
    struct list_node node;      /* in its line's waiting or held list */
    int prio;
    int state;                  /* 0 idle, 1 waiting, 2 held */
    int local;                  /* held without a lease in Redis (Redis was unreachable) */
    char member[64];
};

/* store and instance (copied) are borrowed for the life of slots. 0 or BD_ENOMEM. */
int slots_new(uv_loop_t *loop, struct store *store, const char *instance, struct slots **out);
/* Give back every lease held, stop the timers, free (waiters must be gone: slots_give). */
void slots_close(struct slots *s);

/* Get in line for a slot of server (at most cap at once everywhere; leases of lease_ms),
 * with priority prio (higher first). Returns 0 (cb will run) or BD_ENOMEM. */
int slots_take(struct slots *s, const char *server, int cap, int lease_ms, int prio,
               struct slot_wait *w, slot_cb cb);
/* Give the slot back, or leave the line (cb then never runs). Safe on an idle wait. */
void slots_give(struct slot_wait *w);
/* Calls waiting for a slot of server in this process, and slots it holds (for tests and
 * metrics). */
void slots_counts(const struct slots *s, const char *server, int *waiting, int *held);

#endif
