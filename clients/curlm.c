/* curlm.c - libcurl multi on libuv (curl's multi-uv.c pattern). */
#include "curlm.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bderr.h"

struct curlm_sock;

struct curlm {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    struct list_node xfers;     /* started, not yet done */
    unsigned active;
    unsigned peak;              /* the most transfers in flight at once so far */
    struct curlm_sock **conns;  /* by fd: the pooled connections' sockets (note_pooled) */
    size_t n_conns;
    void (*close_cb)(void *);
    void *close_data;
};

/* A socket curl asked us to watch. A pooled connection's socket (conn set: listed in
 * m->conns from the end of its first transfer until curl closes it, note_pooled) keeps its
 * poll handle between transfers: when curl stops watching it (CURL_POLL_REMOVE, the
 * connection goes back to the pool) the poll goes on watching for input, unreferenced
 * (idle), so the next transfer on the connection finds it registered and no epoll_ctl is
 * made for it; a poll is restarted only when the events curl wants change (libuv's
 * uv_poll_start always unregisters and registers again). Input on an idle connection (the
 * server closed it) stops the poll until curl uses or closes the connection. Other sockets
 * - a connection's first transfer, a connection attempt, the threaded resolver's wake-up
 * pipe - are watched as curl's multi-uv.c does: a handle from the first action to REMOVE. */
struct curlm_sock {
    uv_poll_t poll;
    curl_socket_t fd;
    struct curlm *m;
    int conn;                   /* a connection's socket, in m->conns */
    int inited;                 /* poll initialized (closed with uv_close) */
    int events;                 /* what the poll watches (0: stopped) */
    int idle;                   /* curl is not watching it: the connection is pooled */
};

static void check_info(struct curlm *m);

/* The pooled connection's socket listed for fd, or NULL. */
static struct curlm_sock *listed(const struct curlm *m, curl_socket_t fd)
{
    return fd >= 0 && (size_t)fd < m->n_conns ? m->conns[fd] : NULL;
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    struct curlm_sock *s = h->data;
    struct curlm *m = s->m;
    int flags = 0, running = 0;
    if (s->idle) { /* a pooled connection's input: its end; curl finds it closed on reuse */
        uv_poll_stop(&s->poll);
        s->events = 0;
        return;
    }
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

/* Watch events on s (0: stop); a poll is only restarted when they change. */
static int sock_watch(struct curlm_sock *s, int events)
{
    if (!s->inited) {
        if (uv_poll_init_socket(s->m->loop, &s->poll, s->fd) != 0)
            return -1;
        s->poll.data = s;
        s->inited = 1;
    }
    if (events == s->events)
        return 0;
    if (events == 0)
        uv_poll_stop(&s->poll);
    else if (uv_poll_start(&s->poll, events, on_poll) != 0)
        return -1;
    s->events = events;
    return 0;
}

/* Stop watching s and free it (the fd stays open: curl closes it). */
static void sock_release(struct curlm_sock *s)
{
    if (s->conn && (size_t)s->fd < s->m->n_conns)
        s->m->conns[s->fd] = NULL;
    if (!s->inited) {
        free(s);
        return;
    }
    uv_poll_stop(&s->poll); /* before curl closes the fd (libuv issue 2387) */
    uv_close((uv_handle_t *)&s->poll, on_sock_closed);
}

static int on_socket(CURL *easy, curl_socket_t fd, int action, void *userp, void *socketp)
{
    struct curlm *m = userp;
    struct curlm_sock *s = socketp;
    int events = 0;
    if (action == CURL_POLL_REMOVE) {
        if (s == NULL)
            return 0;
        curl_multi_assign(m->multi, fd, NULL);
        if (!s->conn) {
            sock_release(s);
            return 0;
        }
        s->idle = 1; /* pooled: keep watching for its end, without keeping the loop alive */
        if (s->events != 0 && sock_watch(s, UV_READABLE) != 0)
            sock_watch(s, 0);
        if (s->inited)
            uv_unref((uv_handle_t *)&s->poll);
        return 0;
    }
    if (s == NULL && (s = listed(m, fd)) != NULL) {
        struct curlm_xfer *x = NULL; /* its end need not look the socket up (note_pooled) */
        if (curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x) == CURLE_OK && x)
            x->on_listed = 1;
    }
    if (s == NULL) {
        s = calloc(1, sizeof(*s));
        if (s == NULL)
            return -1;
        s->fd = fd;
        s->m = m;
    }
    if (s->idle) {
        s->idle = 0;
        if (s->inited)
            uv_ref((uv_handle_t *)&s->poll);
    }
    curl_multi_assign(m->multi, fd, s);
    if (action != CURL_POLL_OUT)
        events |= UV_READABLE;
    if (action != CURL_POLL_IN)
        events |= UV_WRITABLE;
    if (sock_watch(s, events) != 0) {
        curl_multi_assign(m->multi, fd, NULL);
        if (!s->conn)
            sock_release(s); /* its poll may be initialized: closed through libuv */
        return -1;
    }
    return 0;
}

/* A transfer ended with its connection back in the pool: remember that connection's socket
 * (curl closes it through on_close_socket, whoever closes the connection), so that the next
 * transfer on it keeps its poll between transfers. Asked only after a transfer that did not
 * run on a listed socket: libcurl finds the socket by walking its whole connection pool.
 * Any other socket - a connection attempt that lost or failed, which curl closes itself -
 * is never listed. */
static void note_pooled(struct curlm *m, CURL *easy)
{
    curl_socket_t fd = CURL_SOCKET_BAD;
    struct curlm_sock *s;
    if (curl_easy_getinfo(easy, CURLINFO_ACTIVESOCKET, &fd) != CURLE_OK || fd < 0)
        return;
    if ((size_t)fd >= m->n_conns) {
        size_t n = (size_t)fd + 64;
        struct curlm_sock **c = realloc(m->conns, n * sizeof(*c));
        if (c == NULL)
            return; /* it is watched as any other socket */
        memset(c + m->n_conns, 0, (n - m->n_conns) * sizeof(*c));
        m->conns = c;
        m->n_conns = n;
    }
    if (listed(m, fd) != NULL)
        return;
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return;
    s->fd = fd;
    s->m = m;
    s->conn = 1;
    s->idle = 1;
    m->conns[fd] = s;
}

/* CURLOPT_CLOSESOCKETFUNCTION: the poll goes before the fd. */
static int on_close_socket(void *clientp, curl_socket_t fd)
{
    struct curlm_sock *s = listed(clientp, fd);
    if (s != NULL)
        sock_release(s);
    return close(fd);
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
            if (rc == CURLE_OK && !x->on_listed)
                note_pooled(m, msg->easy_handle);
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
    curl_multi_setopt(m->multi, CURLMOPT_MAXCONNECTS, (long)CURLM_POOL_MIN);
    *out = m;
    return 0;
}

int curlm_add(struct curlm *m, struct curlm_xfer *x, curlm_done_cb done)
{
    x->on_listed = 0;
    curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x);
    curl_easy_setopt(x->easy, CURLOPT_CLOSESOCKETFUNCTION, on_close_socket);
    curl_easy_setopt(x->easy, CURLOPT_CLOSESOCKETDATA, m);
    if (curl_multi_add_handle(m->multi, x->easy) != CURLM_OK)
        return BD_ENOMEM;
    x->m = m;
    x->done = done;
    list_push_back(&m->xfers, &x->node);
    m->active++;
    if (m->active > m->peak) { /* the pool follows the busiest moment, not the current one */
        m->peak = m->active;
        if ((size_t)m->peak * 4 > CURLM_POOL_MIN)
            curl_multi_setopt(m->multi, CURLMOPT_MAXCONNECTS, (long)m->peak * 4);
    }
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
    curl_multi_cleanup(m->multi); /* closes pooled connections, and their polls */
    m->multi = NULL;
    for (size_t i = 0; i < m->n_conns; i++) /* none left unless curl closed one without us */
        if (m->conns[i] != NULL)
            sock_release(m->conns[i]);
    free(m->conns);
    m->conns = NULL;
    m->n_conns = 0;
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
