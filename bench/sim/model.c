/* model.c - the simulated models. */
#include "model.h"

#include <string.h>

const struct model_def model_defs[MODEL_COUNT] = {
    {"phi-4-mini", 80.0, 60.0, 0},
    {"gpt-oss-20b", 350.0, 25.0, 1},
};

const char *const model_kinds[KIND_COUNT] = {"chat", "judge"};

int model_find(const char *id)
{
    for (int m = 0; id && m < MODEL_COUNT; m++)
        if (strcmp(id, model_defs[m].id) == 0)
            return m;
    return -1;
}

int model_kind_find(const char *name)
{
    for (int k = 0; name && k < KIND_COUNT; k++)
        if (strcmp(name, model_kinds[k]) == 0)
            return k;
    return -1;
}
