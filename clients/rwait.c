/* rwait.c - acknowledged writes: coalesced WAITs after writes on one connection. */
#include "rwait.h"

#include <stdlib.h>

#include "bderr.h"
#include "list.h"
#include "rds.h"

struct waiter {
    rwait_cb cb;
    void *data;
    struct list_node node;
};

/* The waiters one WAIT answers. */
struct batch {
    struct rwait *w;
    struct list_node waiters;
};

struct rwait {
    struct rds *r;
    int replicas, timeout_ms;
    struct list_node queued;    /* writes sent since the last WAIT */
    int inflight;               /* a WAIT is in flight */
};

static void answer_all(struct list_node *head, long long n)
{
    struct list_node *it, *tmp;
    LIST_FOR_EACH_SAFE(it, tmp, head) {
        struct waiter *wt = LIST_ENTRY(it, struct waiter, node);
        list_unlink(it);
        wt->cb(wt->data, n);
        free(wt);
    }
}

static int send_wait(struct rwait *w);

static void on_wait(struct rds *r, struct rds_reply *x, void *data)
{
    struct batch *b = data;
    struct rwait *w = b->w;
    (void)r;
    w->inflight = 0;
    answer_all(&b->waiters, rds_reply_type(x) == RDS_INTEGER ? rds_reply_int(x) : -1);
    free(b);
    if (send_wait(w) != 0)
        answer_all(&w->queued, -1); /* the connection is gone: nothing can be acknowledged */
}

/* WAIT for the queued writes, unless a WAIT is in flight (its answer sends the next).
 * Returns 0, or an error when the WAIT could not be sent (the queue is left as it was). */
static int send_wait(struct rwait *w)
{
    struct batch *b;
    if (w->inflight || list_empty(&w->queued))
        return 0;
    b = malloc(sizeof(*b));
    if (!b)
        return BD_ENOMEM;
    if (rds_cmd(w->r, on_wait, b, "WAIT %d %d", w->replicas, w->timeout_ms) != 0) {
        free(b);
        return BD_EREDIS_DOWN;
    }
    b->w = w;
    list_init(&b->waiters);
    while (!list_empty(&w->queued)) {
        struct list_node *n = list_first(&w->queued);
        list_unlink(n);
        list_push_back(&b->waiters, n);
    }
    w->inflight = 1;
    return 0;
}

int rwait_new(struct rds *r, int replicas, int timeout_ms, struct rwait **out)
{
    struct rwait *w = calloc(1, sizeof(*w));
    if (!w)
        return BD_ENOMEM;
    w->r = r;
    w->replicas = replicas;
    w->timeout_ms = timeout_ms;
    list_init(&w->queued);
    *out = w;
    return 0;
}

int rwait_after(struct rwait *w, rwait_cb cb, void *data)
{
    struct waiter *wt = malloc(sizeof(*wt));
    if (!wt)
        return BD_ENOMEM;
    wt->cb = cb;
    wt->data = data;
    list_init(&wt->node);
    list_push_back(&w->queued, &wt->node);
    if (send_wait(w) != 0) {
        list_unlink(&wt->node);
        free(wt);
        return BD_EREDIS_DOWN;
    }
    return 0;
}

void rwait_free(struct rwait *w)
{
    if (!w)
        return;
    answer_all(&w->queued, -1);
    free(w);
}
