/* evalset.c - reading and checking the lines of an evaluation dataset. */
#include "evalset.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bderr.h"

static const char *const fields[] = {"id", "text", "max_words", "topic_flags", "instructions"};

int evalset_blank(const char *line, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (line[i] != ' ' && line[i] != '\t' && line[i] != '\r' && line[i] != '\n')
            return 0;
    return 1;
}

static int known(const char *name)
{
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        if (strcmp(name, fields[i]) == 0)
            return 1;
    return 0;
}

/* Unknown and repeated members; 0 or -1 with msg. */
static int check_members(const cJSON *o, char *msg, size_t msglen)
{
    for (const cJSON *it = o->child; it; it = it->next) {
        if (!known(it->string)) {
            snprintf(msg, msglen, "unknown field '%.64s' (a dataset line has id, text, "
                     "max_words, topic_flags, instructions)", it->string);
            return -1;
        }
        for (const cJSON *p = o->child; p != it; p = p->next)
            if (strcmp(p->string, it->string) == 0) {
                snprintf(msg, msglen, "field '%s' appears twice", it->string);
                return -1;
            }
    }
    return 0;
}

static int printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 0;
    return 1;
}

/* The id member (detached from o and freed) into out->id. 0 or -1 with msg. */
static int take_id(cJSON *o, size_t lineno, struct evalset_item *out, char *msg, size_t msglen)
{
    cJSON *id = cJSON_DetachItemFromObjectCaseSensitive(o, "id");
    int rc = 0;

    if (!id || cJSON_IsNull(id)) {
        if (asprintf(&out->id, "line-%zu", lineno) < 0)
            out->id = NULL;
    } else if (!cJSON_IsString(id) || id->valuestring[0] == '\0' ||
               strlen(id->valuestring) > EVALSET_MAX_ID || !printable(id->valuestring)) {
        snprintf(msg, msglen, "field 'id' must be a string of 1 to %d printable characters",
                 EVALSET_MAX_ID);
        rc = -1;
    } else {
        out->id = strdup(id->valuestring);
    }
    cJSON_Delete(id);
    if (rc == 0 && !out->id) {
        snprintf(msg, msglen, "out of memory");
        rc = -1;
    }
    return rc;
}

int evalset_parse_line(const char *line, size_t len, size_t lineno, size_t max_text_bytes,
                       struct evalset_item *out, char *msg, size_t msglen)
{
    cJSON *o;
    char *rest = NULL;
    struct job_verr verr;
    int rc = -1;

    memset(out, 0, sizeof(*out));
    out->line = lineno;
    if (len > 0 && line[len - 1] == '\r')
        len--;
    o = cJSON_ParseWithLength(line, len);
    if (!o || !cJSON_IsObject(o)) {
        snprintf(msg, msglen, "%s", o ? "expected a JSON object" : "invalid JSON");
        goto out;
    }
    if (check_members(o, msg, msglen) != 0 || take_id(o, lineno, out, msg, msglen) != 0)
        goto out;
    rest = cJSON_PrintUnformatted(o);
    if (!rest) {
        snprintf(msg, msglen, "out of memory");
        goto out;
    }
    if (job_req_parse(rest, strlen(rest), max_text_bytes, &out->req, &verr) != 0) {
        snprintf(msg, msglen, "%s", verr.msg);
        goto out;
    }
    rc = 0;
out:
    free(rest);
    cJSON_Delete(o);
    if (rc != 0)
        evalset_item_free(out);
    return rc;
}

int evalset_add(struct evalset *s, struct evalset_item *it)
{
    if (s->n >= EVALSET_MAX_DOCS)
        return BD_ETOOBIG;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        struct evalset_item *v = realloc(s->items, cap * sizeof(*v));
        if (!v)
            return BD_ENOMEM;
        s->items = v;
        s->cap = cap;
    }
    s->items[s->n++] = *it;
    memset(it, 0, sizeof(*it));
    return 0;
}

/* Items by id, then line (qsort_r: glibc's argument order). */
static int cmp_id(const void *a, const void *b, void *set)
{
    const struct evalset *s = set;
    const struct evalset_item *x = &s->items[*(const size_t *)a];
    const struct evalset_item *y = &s->items[*(const size_t *)b];
    int c = strcmp(x->id, y->id);

    return c ? c : (x->line > y->line) - (x->line < y->line);
}

int evalset_check_ids(const struct evalset *s,
                      void (*report)(size_t line, const char *msg, void *data), void *data)
{
    size_t *idx = malloc((s->n ? s->n : 1) * sizeof(*idx));
    char msg[EVALSET_MAX_ID + 64];
    int n = 0;

    if (!idx)
        return BD_ENOMEM;
    for (size_t i = 0; i < s->n; i++)
        idx[i] = i;
    qsort_r(idx, s->n, sizeof(*idx), cmp_id, (void *)s);
    for (size_t i = 1; i < s->n; i++) {
        const struct evalset_item *first = &s->items[idx[i - 1]], *it = &s->items[idx[i]];
        size_t k = i - 1;
        if (strcmp(first->id, it->id) != 0)
            continue;
        while (k > 0 && strcmp(s->items[idx[k - 1]].id, it->id) == 0)
            k--;
        snprintf(msg, sizeof(msg), "id '%s' already used on line %zu", it->id,
                 s->items[idx[k]].line);
        report(it->line, msg, data);
        n++;
    }
    free(idx);
    return n;
}

void evalset_item_free(struct evalset_item *it)
{
    free(it->id);
    job_req_free(&it->req);
    memset(it, 0, sizeof(*it));
}

void evalset_free(struct evalset *s)
{
    for (size_t i = 0; i < s->n; i++)
        evalset_item_free(&s->items[i]);
    free(s->items);
    memset(s, 0, sizeof(*s));
}
