/* slots.c - model call slots: the local waiting lines and the leases this process holds. */
#include "slots.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bderr.h"
#include "store.h"

#define RENEW_TICK_MS 1000

enum { W_IDLE = 0, W_WAITING, W_HELD };

struct slot_line {
    struct list_node node;      /* in slots->lines */
    struct slots *s;
    char *server;
    int cap, lease_ms;
    struct list_node waiting;   /* slot_wait, by priority then arrival */
    struct list_node held;
    int n_held;                 /* held by this process (leases and local) */
    int asking;                 /* a take is in flight for asked */
    struct slot_wait *asked;    /* NULL once it left the line */
    char asked_member[64];
    uint64_t renewed_at;
};

struct slots {
    uv_loop_t *loop;
    struct store *store;
    char instance[96];
    uint64_t seq;
    struct list_node lines;
    uv_timer_t poll, renew;
    int closing;                /* 1 while closing, +1 per timer closed */
    int asks;                   /* takes in flight (their lines wait for the answer) */
};

static void slots_maybe_free(struct slots *s)
{
    if (s->closing == 3 && s->asks == 0)
        free(s);
}

static void pump(struct slot_line *l);

static struct slot_line *line_find(struct slots *s, const char *server)
{
    struct list_node *it, *tmp;
    LIST_FOR_EACH_SAFE(it, tmp, &s->lines) {
        struct slot_line *l = LIST_ENTRY(it, struct slot_line, node);
        if (strcmp(l->server, server) == 0)
            return l;
    }
    return NULL;
}

static struct slot_line *line_get(struct slots *s, const char *server)
{
    struct slot_line *l = line_find(s, server);
    if (l)
        return l;
    l = calloc(1, sizeof(*l));
    if (!l || !(l->server = strdup(server))) {
        free(l);
        return NULL;
    }
    l->s = s;
    list_init(&l->waiting);
    list_init(&l->held);
    l->renewed_at = uv_now(s->loop);
    list_push_back(&s->lines, &l->node);
    return l;
}

/* An unused line goes (a reload may have changed the servers). */
static void line_maybe_free(struct slot_line *l)
{
    if (l->asking || !list_empty(&l->waiting) || !list_empty(&l->held))
        return;
    list_unlink(&l->node);
    free(l->server);
    free(l);
}

static void grant(struct slot_line *l, struct slot_wait *w, int local)
{
    list_unlink(&w->node);
    list_push_back(&l->held, &w->node);
    w->state = W_HELD;
    w->local = local;
    l->n_held++;
    w->cb(w, 0);
}

/* The answer to a take for a line of a closing process: give a granted lease back. */
static void taken_while_closing(struct slot_line *l, int status, int granted)
{
    struct slots *s = l->s;
    if (status == 0 && granted)
        store_slot_give(s->store, l->server, l->asked_member);
    free(l->server);
    free(l);
    slots_maybe_free(s);
}

static void on_taken(void *data, int status, int granted)
{
    struct slot_line *l = data;
    struct slot_wait *w = l->asked;
    l->asking = 0;
    l->asked = NULL;
    l->s->asks--;
    if (l->s->closing) {
        taken_while_closing(l, status, granted);
        return;
    }
    if (status != 0) {
        /* Redis unreachable: a local slot, if this process is under the cap */
        if (w && l->n_held < l->cap)
            grant(l, w, 1);
    } else if (granted) {
        if (w)
            grant(l, w, 0);
        else
            store_slot_give(l->s->store, l->server, l->asked_member);
    }
    if (status == 0 && granted)
        pump(l);
    line_maybe_free(l);
}

/* Ask for a slot for the head of the line (one question in flight per line). */
static void pump(struct slot_line *l)
{
    struct list_node *first;
    while (!l->asking && l->n_held < l->cap && (first = list_first(&l->waiting)) != NULL) {
        struct slot_wait *w = LIST_ENTRY(first, struct slot_wait, node);
        l->asked = w;
        snprintf(l->asked_member, sizeof(l->asked_member), "%s", w->member);
        if (store_slot_take(l->s->store, l->server, l->cap, w->member, l->lease_ms, on_taken,
                            l) == 0) {
            l->asking = 1;
            l->s->asks++;
            return;
        }
        l->asked = NULL;
        grant(l, w, 1); /* Redis unreachable: counted locally */
    }
}

static void on_poll(uv_timer_t *t)
{
    struct slots *s = t->data;
    struct list_node *it, *tmp;
    int waiting = 0;
    LIST_FOR_EACH_SAFE(it, tmp, &s->lines) {
        struct slot_line *l = LIST_ENTRY(it, struct slot_line, node);
        pump(l);
        waiting |= !list_empty(&l->waiting);
        line_maybe_free(l);
    }
    if (!waiting)
        uv_timer_stop(t);
}

static void kick(struct slots *s)
{
    uv_timer_start(&s->poll, on_poll, 0, SLOTS_POLL_MS);
}

static void renew_line(struct slot_line *l)
{
    const char *members[64];
    size_t n = 0;
    struct list_node *it, *tmp;
    LIST_FOR_EACH_SAFE(it, tmp, &l->held) {
        struct slot_wait *w = LIST_ENTRY(it, struct slot_wait, node);
        if (w->local)
            continue;
        members[n++] = w->member;
        if (n == sizeof(members) / sizeof(members[0])) {
            store_slot_renew(l->s->store, l->server, members, n, l->lease_ms);
            n = 0;
        }
    }
    if (n > 0)
        store_slot_renew(l->s->store, l->server, members, n, l->lease_ms);
}

static void on_renew(uv_timer_t *t)
{
    struct slots *s = t->data;
    uint64_t now = uv_now(s->loop);
    struct list_node *it, *tmp;
    LIST_FOR_EACH_SAFE(it, tmp, &s->lines) {
        struct slot_line *l = LIST_ENTRY(it, struct slot_line, node);
        if (now - l->renewed_at >= (uint64_t)l->lease_ms / 3) {
            l->renewed_at = now;
            renew_line(l);
        }
    }
}

int slots_new(uv_loop_t *loop, struct store *store, const char *instance, struct slots **out)
{
    struct slots *s = calloc(1, sizeof(*s));
    if (!s)
        return BD_ENOMEM;
    s->loop = loop;
    s->store = store;
    snprintf(s->instance, sizeof(s->instance), "%s", instance ? instance : "briefd");
    list_init(&s->lines);
    uv_timer_init(loop, &s->poll);
    uv_timer_init(loop, &s->renew);
    s->poll.data = s->renew.data = s;
    uv_timer_start(&s->renew, on_renew, RENEW_TICK_MS, RENEW_TICK_MS);
    *out = s;
    return 0;
}

static void on_timer_closed(uv_handle_t *h)
{
    struct slots *s = h->data;
    s->closing++;
    slots_maybe_free(s);
}

void slots_close(struct slots *s)
{
    struct list_node *it, *tmp, *wit, *wtmp;
    s->closing = 1;
    LIST_FOR_EACH_SAFE(it, tmp, &s->lines) {
        struct slot_line *l = LIST_ENTRY(it, struct slot_line, node);
        LIST_FOR_EACH_SAFE(wit, wtmp, &l->held) {
            struct slot_wait *w = LIST_ENTRY(wit, struct slot_wait, node);
            if (!w->local)
                store_slot_give(s->store, l->server, w->member);
            list_unlink(&w->node);
            w->state = W_IDLE;
        }
        LIST_FOR_EACH_SAFE(wit, wtmp, &l->waiting) {
            struct slot_wait *w = LIST_ENTRY(wit, struct slot_wait, node);
            list_unlink(&w->node);
            w->state = W_IDLE;
        }
        list_unlink(&l->node);
        if (l->asking)
            continue; /* freed when the answer comes (taken_while_closing) */
        free(l->server);
        free(l);
    }
    uv_timer_stop(&s->poll);
    uv_timer_stop(&s->renew);
    uv_close((uv_handle_t *)&s->poll, on_timer_closed);
    uv_close((uv_handle_t *)&s->renew, on_timer_closed);
}

int slots_take(struct slots *s, const char *server, int cap, int lease_ms, int prio,
               struct slot_wait *w, slot_cb cb)
{
    struct slot_line *l = line_get(s, server);
    struct list_node *it, *tmp;
    if (!l)
        return BD_ENOMEM;
    l->cap = cap;
    l->lease_ms = lease_ms;
    w->cb = cb;
    w->line = l;
    w->prio = prio;
    w->state = W_WAITING;
    w->local = 0;
    snprintf(w->member, sizeof(w->member), "%.40s:%llu", s->instance,
             (unsigned long long)++s->seq);
    list_init(&w->node);
    LIST_FOR_EACH_SAFE(it, tmp, &l->waiting) {
        struct slot_wait *o = LIST_ENTRY(it, struct slot_wait, node);
        if (o->prio < prio) {
            list_push_back(&o->node, &w->node); /* just before o */
            break;
        }
    }
    if (w->state == W_WAITING && w->node.next == &w->node)
        list_push_back(&l->waiting, &w->node);
    kick(s);
    return 0;
}

void slots_give(struct slot_wait *w)
{
    struct slot_line *l = w->line;
    if (w->state == W_IDLE || !l)
        return;
    list_unlink(&w->node);
    if (w->state == W_WAITING) {
        if (l->asked == w)
            l->asked = NULL;
    } else {
        l->n_held--;
        if (!w->local)
            store_slot_give(l->s->store, l->server, w->member);
        kick(l->s);
    }
    w->state = W_IDLE;
    w->line = NULL;
}

void slots_counts(const struct slots *s, const char *server, int *waiting, int *held)
{
    const struct slot_line *l = line_find((struct slots *)s, server);
    struct list_node *it;
    *waiting = *held = 0;
    if (!l)
        return;
    for (it = l->waiting.next; it != &l->waiting; it = it->next)
        (*waiting)++;
    *held = l->n_held;
}
