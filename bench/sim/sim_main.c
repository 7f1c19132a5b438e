/* sim_main.c - briefd-modelsim: an OpenAI-compatible SIMULATOR of phi-4-mini and gpt-oss-20b.
 * The process: arguments, the route table, signals, the loop. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <uv.h>

#include "bderr.h"
#include "chat.h"
#include "ctl.h"
#include "http.h"
#include "log.h"
#include "reply.h"
#include "sim.h"

#define MAX_FAULTS_ARG ((size_t)1 << 20)  /* --faults @FILE */

/* ---- routing ---- */

struct route {
    const char *method, *path;
    void (*fn)(struct sim *s, struct http_req *req);
};

static const struct route k_routes[] = {
    {"POST", "/v1/chat/completions", chat_handle},
    {"GET", "/v1/models", ctl_models},
    {"GET", "/healthz", ctl_health},
    {"GET", "/sim/faults", ctl_faults_get},
    {"POST", "/sim/faults", ctl_faults_post},
    {"GET", "/sim/stats", ctl_stats},
    {"GET", "/sim/requests", ctl_requests},
    {"POST", "/sim/reset", ctl_reset},
};
#define N_ROUTES (sizeof k_routes / sizeof k_routes[0])

static void respond_405(struct http_req *req, const char *path)
{
    char allow[64] = "";

    for (size_t i = 0; i < N_ROUTES; i++) {
        if (strcmp(k_routes[i].path, path) != 0)
            continue;
        if (allow[0])
            strncat(allow, ", ", sizeof allow - strlen(allow) - 1);
        strncat(allow, k_routes[i].method, sizeof allow - strlen(allow) - 1);
    }
    http_resp_header(req, "Allow", allow);
    http_respond_error(req, 405, "method_not_allowed", NULL, "use %s", allow);
}

static void on_request(struct http_req *req, void *data)
{
    struct sim *s = data;
    const char *method = http_req_method(req), *path = http_req_path(req);
    int path_known = 0;

    for (size_t i = 0; i < N_ROUTES; i++) {
        if (strcmp(k_routes[i].path, path) != 0)
            continue;
        path_known = 1;
        if (strcmp(k_routes[i].method, method) == 0) {
            k_routes[i].fn(s, req);
            return;
        }
    }
    if (path_known)
        respond_405(req, path);
    else if (strcmp(method, "GET") == 0 && strncmp(path, "/v1/models/", 11) == 0)
        ctl_model_one(s, req, path + 11);
    else
        http_respond_error(req, 404, "not_found", NULL, "no route for %.16s %.200s (" SIM_NAME ")",
                           method, path);
}

/* ---- command line ---- */

static void usage(FILE *out)
{
    fputs(
        "briefd-modelsim - an OpenAI-compatible model SIMULATOR for briefd. It runs no model:\n"
        "it answers as phi-4-mini and gpt-oss-20b with deterministic extractive summaries,\n"
        "and as a judge of briefs (response_format json_schema \"brief_rubric\").\n"
        "\n"
        "usage: briefd-modelsim [options]\n"
        "  --listen HOST:PORT     listen address (default 127.0.0.1:5273; port 0 = any)\n"
        "  --profile P            realistic | fast | zero (default realistic)\n"
        "                         realistic: phi-4-mini ttft 80 ms, 60 tok/s;\n"
        "                                    gpt-oss-20b ttft 350 ms, 25 tok/s\n"
        "                         fast: ttft 5 ms, 2000 tok/s; zero: no delay at all\n"
        "  --ttft-ms N            time to first token for every model (overrides profile)\n"
        "  --tps N                tokens per second for every model (0 = instant)\n"
        "  --retry-after S        Retry-After seconds on 429 (default 1)\n"
        "  --max-conns N          open connections at most (default 1024; 1..65536); past\n"
        "                         it a new connection is refused with a 503\n"
        "  --seed N               fault PRNG seed (default 1)\n"
        "  --faults JSON|@FILE    initial settings, the body of POST /sim/faults (knobs,\n"
        "                         \"models\", \"rules\"); must come before other knob flags\n"
        "  --quiet                no per-request log lines on stderr\n"
        "  --log-format F         text | json (default text)\n"
        "  --help                 this text\n"
        "Knobs (global; per model via --faults '{\"models\": {ID: {...}}}'):\n"
        "  --error-rate P  --rate-limit-rate P  --hang-rate P  --garbage-rate P\n"
        "  --truncate-rate P      fractions of requests (P in [0,1]) answered 500, 429,\n"
        "                         never, 200 non-JSON, 200 cut in half\n"
        "  --fail-next N  --rate-limit-next N   the next N requests get 500 / 429\n"
        "  --no-usage  --no-logprobs  --null-logprobs  --harmony-leak\n"
        "  --no-stream            ignore stream: true (answer one JSON completion)\n"
        "  --no-stream-usage      never send the usage chunk\n"
        "  --reasoning-field F    reasoning_content | reasoning | none\n"
        "  --unlisted             leave the models out of /v1/models\n"
        "  --require-header NAME[=VALUE]   400 without it (401 with another value)\n"
        "  --require-bearer KEY   401 invalid_api_key unless Authorization: Bearer KEY\n"
        "  --judge-wrap W         none | prose | fence;  --judge-out-of-range  --judge-garbage\n"
        "  --fail-model ID        the global knobs apply only to this model\n"
        "\n"
        "Endpoints: POST /v1/chat/completions, GET /v1/models[/ID], GET /healthz,\n"
        "  GET|POST /sim/faults, GET /sim/stats, GET /sim/requests?limit=N, POST /sim/reset.\n"
        "Tokens: prompt_tokens = ceil(sum of message content bytes / 4);\n"
        "  completion_tokens = ceil(content bytes / 4); max_tokens N cuts content to 4N bytes\n"
        "  and answers finish_reason \"length\". See bench/sim/README.md.\n",
        out);
}

static int parse_num(const char *v, double lo, double hi, double *out)
{
    char *end;
    double d;

    errno = 0;
    d = strtod(v, &end);
    if (end == v || *end || errno || !(d >= lo && d <= hi))
        return BD_EINVAL;
    *out = d;
    return 0;
}

static int parse_listen(struct sim *s, const char *v)
{
    const char *colon = strrchr(v, ':');
    size_t hl;
    double port;

    if (!colon || parse_num(colon + 1, 0, 65535, &port) != 0 || port != floor(port))
        return BD_EINVAL;
    hl = (size_t)(colon - v);
    if (hl >= 2 && v[0] == '[' && v[hl - 1] == ']') {
        v++;
        hl -= 2;
    }
    if (hl == 0 || hl >= sizeof s->host)
        return BD_EINVAL;
    memcpy(s->host, v, hl);
    s->host[hl] = '\0';
    s->port = (int)port;
    return 0;
}

static int parse_profile(struct sim *s, const char *v)
{
    for (int p = 0; p < PROFILE_COUNT; p++) {
        if (strcmp(v, sim_profiles[p]) == 0) {
            s->profile = (enum sim_profile)p;
            return 0;
        }
    }
    return BD_EINVAL;
}

static int parse_seed(struct sim *s, const char *v)
{
    char *end;
    unsigned long long n;

    errno = 0;
    n = strtoull(v, &end, 10);
    if (end == v || *end || errno || v[0] == '-')
        return BD_EINVAL;
    s->seed = (uint64_t)n;
    return 0;
}

/* The text of --faults: the argument, or the file after '@' (caller frees). */
static char *faults_text(const char *v)
{
    char *buf;
    size_t n;
    FILE *f;

    if (v[0] != '@')
        return strdup(v);
    f = fopen(v + 1, "rb");
    if (!f)
        return NULL;
    buf = malloc(MAX_FAULTS_ARG + 1);
    n = buf ? fread(buf, 1, MAX_FAULTS_ARG + 1, f) : 0;
    fclose(f);
    if (buf && n > MAX_FAULTS_ARG) {
        free(buf);
        return NULL;
    }
    if (buf)
        buf[n] = '\0';
    return buf;
}

static int parse_faults(struct sim *s, const char *v)
{
    char *text = faults_text(v);
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    struct faults_err err;
    int rc = BD_EINVAL;

    if (!root)
        fprintf(stderr, "briefd-modelsim: --faults: not readable JSON\n");
    else if (faults_parse(root, &s->faults, &err) != 0)
        fprintf(stderr, "briefd-modelsim: --faults: '%s': %s\n", err.key, err.msg);
    else
        rc = 0;
    cJSON_Delete(root);
    free(text);
    return rc;
}

struct args {
    int knob_flags;             /* knob flags seen so far (--faults must come first) */
    int quiet;
    enum log_format log_format;
};

static int parse_log_format(struct args *a, const char *v)
{
    if (strcmp(v, "text") == 0 || strcmp(v, "json") == 0) {
        a->log_format = strcmp(v, "json") == 0 ? LOG_JSON : LOG_TEXT;
        return 0;
    }
    return BD_EINVAL;
}

static int set_option(struct sim *s, struct args *a, const char *name, const char *v)
{
    double d;

    if (faults_flag_arity(name) >= 0) {
        a->knob_flags++;
        return faults_flag(&s->faults, name, v);
    }
    if (strcmp(name, "faults") == 0)
        return a->knob_flags ? BD_EINVAL : parse_faults(s, v);
    if (strcmp(name, "listen") == 0)
        return parse_listen(s, v);
    if (strcmp(name, "profile") == 0)
        return parse_profile(s, v);
    if (strcmp(name, "seed") == 0)
        return parse_seed(s, v);
    if (strcmp(name, "log-format") == 0)
        return parse_log_format(a, v);
    if (strcmp(name, "ttft-ms") == 0)
        return parse_num(v, 0, SIM_MAX_DELAY_MS, &s->ttft_override);
    if (strcmp(name, "tps") == 0)
        return parse_num(v, 0, 1e9, &s->tps_override);
    if (strcmp(name, "max-conns") == 0 && parse_num(v, 1, 65536, &d) == 0 && d == floor(d)) {
        s->max_conns = (unsigned)d;
        return 0;
    }
    if (strcmp(name, "retry-after") == 0 && parse_num(v, 0, 86400, &d) == 0 && d == floor(d)) {
        s->retry_after = (unsigned)d;
        return 0;
    }
    return BD_EINVAL;
}

static int takes_value(const char *name)
{
    int k = faults_flag_arity(name);

    if (k >= 0)
        return k;
    return strcmp(name, "quiet") != 0 && strcmp(name, "help") != 0;
}

/* 0: run; 1: --help printed; -1: bad usage (reported). */
static int parse_args(struct sim *s, struct args *a, int argc, char **argv)
{
    char name[48];
    const char *arg, *eq, *v;
    size_t n;
    int i;

    for (i = 1; i < argc; i++) {
        arg = argv[i];
        if (strncmp(arg, "--", 2) != 0)
            goto bad;
        arg += 2;
        eq = strchr(arg, '=');
        n = eq ? (size_t)(eq - arg) : strlen(arg);
        if (n == 0 || n >= sizeof name)
            goto bad;
        memcpy(name, arg, n);
        name[n] = '\0';
        if (strcmp(name, "help") == 0)
            return 1;
        if (strcmp(name, "quiet") == 0 && !eq) {
            a->quiet = 1;
            continue;
        }
        v = eq ? eq + 1 : NULL;
        if (takes_value(name) && !v && i + 1 < argc)
            v = argv[++i];
        if ((takes_value(name) ? !v : v != NULL) || set_option(s, a, name, v) != 0)
            goto bad;
    }
    return 0;
bad:
    fprintf(stderr, "briefd-modelsim: bad argument '%s' (see --help)\n",
            argv[i < argc ? i : argc - 1]);
    return -1;
}

/* ---- process lifecycle ---- */

static void on_server_closed(void *data)
{
    struct sim *s = data;

    s->server = NULL;
    reply_release_all(s);
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct sim *s = h->data;

    if (s->closing)
        return;
    s->closing = 1;
    log_info("signal %d, shutting down", signum);
    uv_close((uv_handle_t *)&s->sig_int, NULL);
    uv_close((uv_handle_t *)&s->sig_term, NULL);
    http_server_close(s->server, on_server_closed, s);
}

static int start_signals(struct sim *s)
{
    uv_signal_init(s->loop, &s->sig_int);
    uv_signal_init(s->loop, &s->sig_term);
    s->sig_int.data = s;
    s->sig_term.data = s;
    if (uv_signal_start(&s->sig_int, on_signal, SIGINT) != 0)
        return -1;
    return uv_signal_start(&s->sig_term, on_signal, SIGTERM);
}

static void print_banner(const struct sim *s)
{
    int v6 = strchr(s->host, ':') != NULL;

    printf("%s listening on http://%s%s%s:%d/v1 profile=%s\n", SIM_NAME, v6 ? "[" : "",
           s->host, v6 ? "]" : "", http_server_port(s->server), sim_profiles[s->profile]);
    fflush(stdout);
}

static int run(struct sim *s)
{
    struct http_limits lim;
    int rc;

    http_limits_default(&lim);
    lim.max_body = SIM_MAX_BODY;
    lim.abort_on_eof = 1; /* a client that closes while a reply hangs is gone (stats.aborted) */
    if (s->max_conns)
        lim.max_conns = s->max_conns;
    lim.max_conns_per_addr = lim.max_conns; /* its clients (briefd) share one address */
    if (start_signals(s) != 0) {
        log_error("cannot install signal handlers");
        goto fail;
    }
    rc = http_server_start(s->loop, s->host, s->port, &lim, on_request, s, &s->server);
    if (rc != 0) {
        log_error("cannot listen on %s:%d: %s", s->host, s->port, uv_strerror(rc));
        goto fail;
    }
    print_banner(s);
    uv_run(s->loop, UV_RUN_DEFAULT);
    return 0;
fail:
    uv_close((uv_handle_t *)&s->sig_int, NULL);
    uv_close((uv_handle_t *)&s->sig_term, NULL);
    uv_run(s->loop, UV_RUN_DEFAULT);
    return -1;
}

int main(int argc, char **argv)
{
    static struct sim sim;
    struct args a = {0, 0, LOG_TEXT};
    uv_loop_t loop;
    int rc;

    sim_init(&sim);
    rc = parse_args(&sim, &a, argc, argv);
    if (rc > 0)
        usage(stdout);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    log_configure("briefd-modelsim", a.log_format, a.quiet ? LOG_WARN : LOG_INFO);
    sim_reseed(&sim);
    signal(SIGPIPE, SIG_IGN);
    if (uv_loop_init(&loop) != 0)
        return 1;
    sim.loop = &loop;
    rc = run(&sim);
    if (uv_loop_close(&loop) != 0)
        log_warn("loop not empty at exit");
    stats_free(&sim.stats);
    return rc == 0 ? 0 : 1;
}
