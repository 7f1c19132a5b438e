/* bderr.c - descriptions of briefd's error codes. */
#include "bderr.h"

#include <uv.h>

const char *bd_strerror(int err)
{
    switch (err) {
#define BD_ERR_CASE(name, val, msg) case val: return msg;
    BD_ERRORS(BD_ERR_CASE)
#undef BD_ERR_CASE
    default:
        break;
    }
    if (err < 0 && err > -1000)
        return uv_strerror(err);
    return "unknown error";
}
