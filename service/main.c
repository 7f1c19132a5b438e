/* main.c - briefd's command line: arguments -> config -> the loop, nothing else. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "app.h"
#include "config.h"
#include "eval.h"
#include "evalrep.h"
#include "probe.h"
#include "replay.h"

#ifndef BRIEFD_VERSION
#define BRIEFD_VERSION "0.0.0"
#endif

static int usage(FILE *f, int code)
{
    fprintf(f,
            "usage:\n"
            "  briefd serve  [--config F] [--role all|api|worker] [--listen HOST:PORT]\n"
            "  briefd check  --config F\n"
            "  briefd probe  [--config F] [--json]\n"
            "  briefd replay [--config F] [--window S]\n"
            "  briefd calibrate [--config F] (--target-refine-rate R | --target-gap G)\n"
            "                [--window S]\n"
            "  briefd eval   --config F --dataset FILE.jsonl [--out DIR]\n"
            "                [--arms draft,refine,hybrid] [--concurrency N] [--limit N]\n"
            "  briefd --help | --version\n"
            "\n"
            "serve   run the service (default role all: HTTP API and worker in one process;\n"
            "        --listen overrides the config's listen address, and gives a worker-only\n"
            "        process an HTTP port for /healthz and /readyz)\n"
            "check   validate a config file: exit 0, or 1 with every error's JSON path;\n"
            "        variables the file names but the environment lacks are warned about\n"
            "probe   call each configured model once and report what its server can do\n"
            "        (reachable, listed, logprobs, streaming, usage, reasoning, timings) with\n"
            "        advice; exit 1 if a model does not answer\n"
            "replay  re-run routing with F's policies over the drafts stored in Redis (the\n"
            "        last S seconds, default 86400): refine rate, cost and the jobs that flip,\n"
            "        and the judged quality served where shadow judging scored jobs; no model\n"
            "        is called\n"
            "calibrate  propose each policy's threshold that would have refined a fraction R\n"
            "        (0..1) of those jobs, or (--target-gap) the cheapest one whose kept\n"
            "        judged jobs lose at most G points of overall score on average, as a\n"
            "        config snippet\n"
            "eval    score briefs of a dataset with the judge (models.judge): the draft model's,\n"
            "        the refine model's and what F's routing would serve (arms), with cost,\n"
            "        latency, a threshold sweep, APGR and CPT; the Markdown table on stdout,\n"
            "        report.json/.md/.html in DIR (default concurrency 4, every document)\n");
    return code;
}

static void print_warning(const char *path, const char *msg, void *data)
{
    fprintf(stderr, "%s: warning: %s: %s\n", (const char *)data, path, msg);
}

static void print_error(const struct cfg_err *err, void *data)
{
    cfg_err_print(stderr, data, err);
}

static int cmd_check(const char *path)
{
    struct cfg_err err;
    struct bd_config *c;
    int n;
    if (!path) {
        fprintf(stderr, "briefd check: --config F is required\n");
        return 2;
    }
    n = config_check_file(path, print_error, (void *)path);
    if (n > 0) {
        fprintf(stderr, "%s: %d mistake%s\n", path, n, n == 1 ? "" : "s");
        return 1;
    }
    c = config_load(path, &err);
    if (!c) {
        print_error(&err, (void *)path);
        return 1;
    }
    printf("%s: ok (version %s)\n", path, c->version);
    config_env_warnings(c, print_warning, (void *)path);
    config_unref(c);
    return 0;
}

struct args {
    const char *config, *role, *listen;
    long window;
    double target, target_gap;
    const char *dataset, *out, *arms, *concurrency, *limit; /* eval; checked by cmd_eval */
    int json, help;
};

/* The options of `briefd eval`; 0, or -1 when opt is none of them. */
static int parse_eval_arg(const char *opt, const char *val, struct args *a)
{
    if (strcmp(opt, "--dataset") == 0)
        a->dataset = val;
    else if (strcmp(opt, "--out") == 0)
        a->out = val;
    else if (strcmp(opt, "--arms") == 0)
        a->arms = val;
    else if (strcmp(opt, "--concurrency") == 0)
        a->concurrency = val;
    else if (strcmp(opt, "--limit") == 0)
        a->limit = val;
    else
        return -1;
    return 0;
}

/* Options after the subcommand; 0, or -1 on an unknown option. */
static int parse_args(int argc, char **argv, struct args *a)
{
    a->config = NULL;
    a->role = "all";
    a->listen = NULL;
    a->window = 86400;
    a->target = -1;
    a->target_gap = -1;
    a->dataset = a->out = a->arms = a->concurrency = a->limit = NULL;
    a->json = a->help = 0;
    for (int i = 2; i < argc; i++) {
        const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(opt, "-h") == 0 || strcmp(opt, "--help") == 0) {
            a->help = 1;
            continue;
        }
        if (strcmp(opt, "--json") == 0) {
            a->json = 1;
            continue;
        }
        if (!val)
            return -1;
        if (strcmp(opt, "--config") == 0)
            a->config = val;
        else if (strcmp(opt, "--role") == 0)
            a->role = val;
        else if (strcmp(opt, "--listen") == 0)
            a->listen = val;
        else if (strcmp(opt, "--window") == 0)
            a->window = strtol(val, NULL, 10);
        else if (strcmp(opt, "--target-refine-rate") == 0)
            a->target = strtod(val, NULL);
        else if (strcmp(opt, "--target-gap") == 0)
            a->target_gap = strtod(val, NULL);
        else if (parse_eval_arg(opt, val, a) != 0)
            return -1;
        i++;
    }
    return 0;
}

static int cmd_replay(const char *cmd, const struct args *a)
{
    int cal = strcmp(cmd, "calibrate") == 0;
    const char *why = NULL;
    if (a->window < 1)
        why = "--window S must be >= 1";
    else if (cal && a->target != -1 && a->target_gap != -1)
        why = "give --target-refine-rate R or --target-gap G, not both";
    else if (cal && a->target_gap != -1 && !(a->target_gap >= 0 && a->target_gap <= 4))
        why = "--target-gap G must be from 0 to 4 (points of overall score)";
    else if (cal && a->target_gap == -1 && !(a->target >= 0 && a->target <= 1))
        why = "--target-refine-rate R (0..1) or --target-gap G (0..4) is required";
    else if (!cal && a->target != -1)
        why = "--target-refine-rate is an option of briefd calibrate, not of briefd replay";
    else if (!cal && a->target_gap != -1)
        why = "--target-gap is an option of briefd calibrate, not of briefd replay";
    if (why) {
        fprintf(stderr, "briefd %s: %s\n", cmd, why);
        return 2;
    }
    return replay_main(a->config, a->window, cal ? a->target : -1, cal ? a->target_gap : -1);
}

/* A whole decimal number in lo..hi from s (NULL: dflt); 0, or -1. */
static int int_arg(const char *s, long lo, long hi, long dflt, long *out)
{
    char *end;
    long v;

    if (!s) {
        *out = dflt;
        return 0;
    }
    v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int eval_usage(const char *msg)
{
    fprintf(stderr, "briefd eval: %s\n", msg);
    return 2;
}

static int cmd_eval(const struct args *a)
{
    struct eval_opts o;
    long conc, limit;

    memset(&o, 0, sizeof(o));
    if (!a->config)
        return eval_usage("--config F is required");
    if (!a->dataset)
        return eval_usage("--dataset FILE is required");
    o.arms = EVALREP_ALL_ARMS;
    if (a->arms && evalrep_parse_arms(a->arms, &o.arms) != 0)
        return eval_usage("--arms takes a comma-separated list of draft, refine, hybrid "
                          "(each at most once)");
    if (int_arg(a->concurrency, 1, EVAL_MAX_CONCURRENCY, EVAL_DEFAULT_CONCURRENCY, &conc) != 0)
        return eval_usage("--concurrency N must be a whole number from 1 to 256");
    if (int_arg(a->limit, 1, 1000000000L, 0, &limit) != 0)
        return eval_usage("--limit N must be a whole number >= 1");
    o.config = a->config;
    o.dataset = a->dataset;
    o.out_dir = a->out;
    o.concurrency = (int)conc;
    o.limit = limit;
    return eval_main(&o);
}

static int cmd_serve(const struct args *a)
{
    static const char *const roles[] = {"all", "api", "worker"};
    for (int r = ROLE_ALL; r <= ROLE_WORKER; r++)
        if (strcmp(a->role, roles[r]) == 0)
            return app_run(a->config, (enum app_role)r, a->listen);
    return usage(stderr, 2);
}

static void print_route(const char *method, const char *path, const char *auth, void *data)
{
    fprintf(data, "%s %s %s\n", method, path, auth);
}

int main(int argc, char **argv)
{
    struct args a;
    const char *cmd = argc >= 2 ? argv[1] : "";
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0)
        return usage(stdout, 0);
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        printf("briefd %s\n", BRIEFD_VERSION);
        return 0;
    }
    if (strcmp(cmd, "routes") == 0 && argc == 2) { /* not in --help: for the tests */
        api_routes(print_route, stdout);
        return 0;
    }
    if (argc < 2 || parse_args(argc, argv, &a) != 0)
        return usage(stderr, 2);
    if (a.help)
        return usage(stdout, 0);
    if (strcmp(cmd, "check") == 0)
        return cmd_check(a.config);
    if (strcmp(cmd, "probe") == 0)
        return probe_main(a.config, a.json);
    if (strcmp(cmd, "replay") == 0 || strcmp(cmd, "calibrate") == 0)
        return cmd_replay(cmd, &a);
    if (strcmp(cmd, "serve") == 0)
        return cmd_serve(&a);
    if (strcmp(cmd, "eval") == 0)
        return cmd_eval(&a);
    return usage(stderr, 2);
}
