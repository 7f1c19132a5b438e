/* curlm.c - libcurl multi on libuv (curl's multi-uv.c pattern). */
#include "curlm.h"

#include <curl/curl.h>
#include <stdlib.h>

#include "bderr.h"

struct curlm {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    struct list_node xfers;     /* started, not yet done */
    unsigned active;
    void (*close_cb)(void *);
    void *close_data;
};

struct curlm_sock {
    uv_poll_t poll;
    curl_socket_t fd;
    struct curlm *m;
};

static void check_info(struct curlm *m);

static void on_poll(uv_poll_t *h, int status, int events)
{
    struct curlm_sock *s = h->data;
    struct curlm *m = s->m;
    int flags = 0, running = 0;
    if (status < 0) {
        flags = CURL_CSELECT_ERR;
    } else {
        if (events & UV_READABLE)
            flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE)
            flags |= CURL_CSELECT_OUT;
    }
    curl_multi_socket_action(m->multi, s->fd, flags, &running);
    check_info(m);
}

static void on_sock_closed(uv_handle_t *h) { free(h->data); }

static int on_socket(CURL *easy, curl_socket_t fd, int action, void *userp, void *socketp)
{
    struct curlm *m = userp;
    struct curlm_sock *s = socketp;
    int events = 0;
    (void)easy;
    if (action == CURL_POLL_REMOVE) {
        if (s) {
            /* close the poll handle before curl closes the fd (libuv issue 2387) */
            uv_poll_stop(&s->poll);
            uv_close((uv_handle_t *)&s->poll, on_sock_closed);
            curl_multi_assign(m->multi, fd, NULL);
        }
        return 0;
    }
    if (!s) {
        s = calloc(1, sizeof(*s));
        if (!s)
            return -1;
        s->fd = fd;
        s->m = m;
        if (uv_poll_init_socket(m->loop, &s->poll, fd) != 0) {
            free(s);
            return -1;
        }
        s->poll.data = s;
        curl_multi_assign(m->multi, fd, s);
    }
    if (action != CURL_POLL_OUT)
        events |= UV_READABLE;
    if (action != CURL_POLL_IN)
        events |= UV_WRITABLE;
    uv_poll_start(&s->poll, events, on_poll);
    return 0;
}

static void on_timeout(uv_timer_t *t)
{
    struct curlm *m = t->data;
    int running = 0;
    curl_multi_socket_action(m->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_info(m);
}

/* CURLMOPT_TIMERFUNCTION: only arms the uv timer; libcurl is never called from here. */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    struct curlm *m = userp;
    (void)multi;
    if (timeout_ms < 0)
        uv_timer_stop(&m->timer);
    else
        uv_timer_start(&m->timer, on_timeout, (uint64_t)timeout_ms, 0);
    return 0;
}

static void xfer_detach(struct curlm_xfer *x)
{
    struct curlm *m = x->m;
    curl_multi_remove_handle(m->multi, x->easy);
    list_unlink(&x->node);
    m->active--;
    x->m = NULL;
}

static void check_info(struct curlm *m)
{
    CURLMsg *msg;
    int left;
    for (;;) {
        struct curlm_xfer *x = NULL;
        msg = curl_multi_info_read(m->multi, &left);
        if (!msg)
            break;
        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        if (x) {
            CURLcode rc = msg->data.result;
            xfer_detach(x);
            x->done(x, (int)rc);
        }
    }
}

int curlm_new(uv_loop_t *loop, struct curlm **out)
{
    struct curlm *m = calloc(1, sizeof(*m));
    if (!m)
        return BD_ENOMEM;
    m->multi = curl_multi_init();
    if (!m->multi) {
        free(m);
        return BD_ENOMEM;
    }
    m->loop = loop;
    list_init(&m->xfers);
    uv_timer_init(loop, &m->timer);
    m->timer.data = m;
    curl_multi_setopt(m->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(m->multi, CURLMOPT_SOCKETDATA, m);
    curl_multi_setopt(m->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(m->multi, CURLMOPT_TIMERDATA, m);
    *out = m;
    return 0;
}

int curlm_add(struct curlm *m, struct curlm_xfer *x, curlm_done_cb done)
{
    curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x);
    if (curl_multi_add_handle(m->multi, x->easy) != CURLM_OK)
        return BD_ENOMEM;
    x->m = m;
    x->done = done;
    list_push_back(&m->xfers, &x->node);
    m->active++;
    return 0;
}

void curlm_remove(struct curlm_xfer *x)
{
    if (x->m)
        xfer_detach(x);
}

unsigned curlm_active(const struct curlm *m) { return m->active; }

static void on_timer_closed(uv_handle_t *h)
{
    struct curlm *m = h->data;
    void (*cb)(void *) = m->close_cb;
    void *data = m->close_data;
    free(m);
    if (cb)
        cb(data);
}

void curlm_close(struct curlm *m, void (*cb)(void *data), void *data)
{
    struct list_node *it, *tmp;
    LIST_FOR_EACH_SAFE(it, tmp, &m->xfers)
        xfer_detach(LIST_ENTRY(it, struct curlm_xfer, node));
    m->close_cb = cb;
    m->close_data = data;
    curl_multi_cleanup(m->multi); /* closes pooled connections: REMOVE closes their polls */
    m->multi = NULL;
    uv_timer_stop(&m->timer);
    uv_close((uv_handle_t *)&m->timer, on_timer_closed);
}

int curlm_global_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : BD_ENOMEM;
}

void curlm_global_cleanup(void)
{
    curl_global_cleanup();
}
