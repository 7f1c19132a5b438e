/* main.c - briefd's command line: arguments -> config -> the loop, nothing else. */
#include <stdio.h>
#include <string.h>

#include "app.h"
#include "config.h"

static int usage(FILE *f, int code)
{
    fprintf(f,
            "usage:\n"
            "  briefd serve  [--config F] [--role all|api|worker] [--listen HOST:PORT]\n"
            "  briefd check  --config F\n"
            "\n"
            "serve   run the service (default role all: HTTP API and worker in one process;\n"
            "        --listen overrides the config's listen address, and gives a worker-only\n"
            "        process an HTTP port for /healthz and /readyz)\n"
            "check   validate a config file: exit 0, or 1 with every error's JSON path\n");
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
        else
            return usage(stderr, 2);
    }
    if (strcmp(cmd, "check") == 0)
        return cmd_check(config);
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
