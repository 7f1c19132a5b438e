/* jsonx.c - JSON printing with exact (round-trip) numbers. */
#include "jsonx.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void jsonx_number(double v, char *buf, size_t len)
{
    if (!isfinite(v)) {
        snprintf(buf, len, "null");
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

/* Turn every number of a (copied) tree into raw text of its exact form. */
static int exact_numbers(cJSON *node)
{
    for (cJSON *it = node; it; it = it->next) {
        if (cJSON_IsNumber(it)) {
            char buf[40];
            char *s;
            jsonx_number(it->valuedouble, buf, sizeof(buf));
            s = strdup(buf);
            if (!s)
                return -1;
            it->type = cJSON_Raw;
            it->valuestring = s;
        } else if (it->child && exact_numbers(it->child) != 0) {
            return -1;
        }
    }
    return 0;
}

char *jsonx_print(const cJSON *item)
{
    cJSON *copy;
    char *out = NULL;
    if (!item)
        return NULL;
    copy = cJSON_Duplicate(item, 1);
    if (!copy)
        return NULL;
    /* the top node itself may be a number; its siblings are not part of item */
    if (cJSON_IsNumber(copy)) {
        char buf[40];
        jsonx_number(copy->valuedouble, buf, sizeof(buf));
        out = strdup(buf);
    } else if (exact_numbers(copy->child) == 0) {
        out = cJSON_PrintUnformatted(copy);
    }
    cJSON_Delete(copy);
    return out;
}

void jsonx_add_number(cJSON *obj, const char *name, double v)
{
    if (isfinite(v))
        cJSON_AddNumberToObject(obj, name, v);
    else
        cJSON_AddNullToObject(obj, name);
}
