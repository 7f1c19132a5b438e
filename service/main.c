/* main.c - briefd's command line: arguments -> config -> the loop, nothing else. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "config.h"
#include "replay.h"

static int usage(FILE *f, int code)
{
    fprintf(f,
            "usage:\n"
            "  briefd serve  [--config F] [--role all|api|worker] [--listen HOST:PORT]\n"
            "  briefd check  --config F\n"
            "  briefd replay --config F [--window S]\n"
            "  briefd calibrate --config F --target-refine-rate R [--window S]\n"
            "\n"
            "serve   run the service (default role all: HTTP API and worker in one process;\n"
            "        --listen overrides the config's listen address, and gives a worker-only\n"
            "        process an HTTP port for /healthz and /readyz)\n"
            "check   validate a config file: exit 0, or 1 with every error's JSON path\n"
            "replay  re-run routing with F's policies over the drafts stored in Redis (the\n"
            "        last S seconds, default 86400): refine rate, cost and the jobs that flip;\n"
            "        no model is called\n"
            "calibrate  propose each policy's threshold that would have refined a fraction R\n"
            "        (0..1) of those jobs, as a config snippet\n");
    return code;
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
    config_unref(c);
    return 0;
}

struct args {
    const char *config, *role, *listen;
    long window;
    double target;
};

/* Options after the subcommand; 0, or -1 on an unknown option. */
static int parse_args(int argc, char **argv, struct args *a)
{
    a->config = NULL;
    a->role = "all";
    a->listen = NULL;
    a->window = 86400;
    a->target = -1;
    for (int i = 2; i < argc; i++) {
        const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
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
        else
            return -1;
        i++;
    }
    return 0;
}

static int cmd_replay(const char *cmd, const struct args *a)
{
    int cal = strcmp(cmd, "calibrate") == 0;
    if (a->window < 1 || (cal && !(a->target >= 0 && a->target <= 1)) || (!cal && a->target >= 0)) {
        fprintf(stderr, "briefd %s: %s\n", cmd,
                cal ? "--target-refine-rate R (0..1) is required; --window S >= 1"
                    : "--window S must be >= 1");
        return 2;
    }
    return replay_main(a->config, a->window, cal ? a->target : -1);
}

static int cmd_serve(const struct args *a)
{
    static const char *const roles[] = {"all", "api", "worker"};
    for (int r = ROLE_ALL; r <= ROLE_WORKER; r++)
        if (strcmp(a->role, roles[r]) == 0)
            return app_run(a->config, (enum app_role)r, a->listen);
    return usage(stderr, 2);
}

int main(int argc, char **argv)
{
    struct args a;
    const char *cmd = argc >= 2 ? argv[1] : "";
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0)
        return usage(stdout, 0);
    if (argc < 2 || parse_args(argc, argv, &a) != 0)
        return usage(stderr, 2);
    if (strcmp(cmd, "check") == 0)
        return cmd_check(a.config);
    if (strcmp(cmd, "replay") == 0 || strcmp(cmd, "calibrate") == 0)
        return cmd_replay(cmd, &a);
    if (strcmp(cmd, "serve") == 0)
        return cmd_serve(&a);
    return usage(stderr, 2);
}
