/* main.c - briefd's command line: arguments -> config -> the loop, nothing else. */
#include <stdio.h>
#include <string.h>

#include "app.h"
#include "config.h"
#include "replay.h"
#include <stdlib.h>

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

static int cmd_check(const char *path)
{
    struct cfg_err err;
    struct bd_config *c;
    if (!path) {
        fprintf(stderr, "briefd check: --config F is required\n");
        return 2;
    }
    c = cfg_load(path, &err);
    if (!c) {
        fprintf(stderr, "%s: %s%s%s\n", path, err.path, err.path[0] ? ": " : "", err.msg);
        return 1;
    }
    printf("%s: ok (version %s)\n", path, c->version);
    cfg_unref(c);
    return 0;
}

int main(int argc, char **argv)
{
    const char *cmd, *config = NULL, *role = "all", *listen = NULL;
    long window = 86400;
    double target = -1;
    enum app_role r;
    if (argc < 2)
        return usage(stderr, 2);
    cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0)
        return usage(stdout, 0);
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            config = argv[++i];
        else if (strcmp(argv[i], "--role") == 0 && i + 1 < argc)
            role = argv[++i];
        else if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc)
            listen = argv[++i];
        else if (strcmp(argv[i], "--window") == 0 && i + 1 < argc)
            window = strtol(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--target-refine-rate") == 0 && i + 1 < argc)
            target = strtod(argv[++i], NULL);
        else
            return usage(stderr, 2);
    }
    if (strcmp(cmd, "check") == 0)
        return cmd_check(config);
    if (strcmp(cmd, "replay") == 0 || strcmp(cmd, "calibrate") == 0) {
        int cal = strcmp(cmd, "calibrate") == 0;
        if (window < 1 || (cal && !(target >= 0 && target <= 1)) || (!cal && target >= 0)) {
            fprintf(stderr, "briefd %s: %s\n", cmd,
                    cal ? "--target-refine-rate R (0..1) is required; --window S >= 1"
                        : "--window S must be >= 1");
            return 2;
        }
        return replay_main(config, window, cal ? target : -1);
    }
    if (strcmp(cmd, "serve") != 0)
        return usage(stderr, 2);
    if (strcmp(role, "all") == 0)
        r = ROLE_ALL;
    else if (strcmp(role, "api") == 0)
        r = ROLE_API;
    else if (strcmp(role, "worker") == 0)
        r = ROLE_WORKER;
    else
        return usage(stderr, 2);
    return app_run(config, r, listen);
}
