/* handoff.c - requests kept parsed for this process's worker (handoff.h).
 *
 * A ring in arrival order (oldest evicted first) with an open-addressed index by the text's
 * hash: a take looks at the few entries of its hash, compares lengths, then bytes. */
#include "handoff.h"

#include <stdlib.h>
#include <string.h>

#include "bderr.h"
#include "hash.h"

#define SLOTS (HANDOFF_MAX * 4) /* index slots: a power of two, at most a quarter full */

struct kept {
    char *text;                 /* the normalized request text (owned); NULL: free */
    size_t len;
    uint64_t hash;
    struct job_req req;
};

struct handoff {
    struct kept ring[HANDOFF_MAX];
    size_t head, n;             /* oldest at ring[head]; n in use */
    size_t bytes;
    size_t tombs;               /* deleted index slots (lookups pass over them) */
    int index[SLOTS];           /* ring position + 1; 0: empty; -1: deleted */
};

/* The index's key: the length and the first HASHED bytes (where a normalized request's
 * text begins); texts alike there meet in the index and the byte comparison tells them apart. */
#define HASHED 128
static uint64_t text_hash(const char *s, size_t len)
{
    return hash_fnv1a64(hash_fnv1a64(HASH_FNV1A64_INIT, &len, sizeof(len)), s,
                        len < HASHED ? len : HASHED);
}

int handoff_new(struct handoff **out)
{
    struct handoff *h = calloc(1, sizeof(*h));
    if (!h)
        return BD_ENOMEM;
    *out = h;
    return 0;
}

static void unindex(struct handoff *h, size_t pos)
{
    size_t i = (size_t)h->ring[pos].hash & (SLOTS - 1);
    for (size_t probes = 0; probes < SLOTS && h->index[i] != 0; probes++) {
        if (h->index[i] == (int)pos + 1) {
            h->index[i] = -1;
            h->tombs++;
            return;
        }
        i = (i + 1) & (SLOTS - 1);
    }
}

/* Free ring[pos]'s entry (its request too, unless taken). */
static void drop(struct handoff *h, size_t pos)
{
    struct kept *k = &h->ring[pos];
    unindex(h, pos);
    h->bytes -= k->len;
    free(k->text);
    job_req_free(&k->req);
    memset(k, 0, sizeof(*k));
}

/* Evict the oldest entries (skipping holes left by takes) until one more fits. */
static void make_room(struct handoff *h, size_t len)
{
    while (h->n > 0 && (h->n >= HANDOFF_MAX || h->bytes + len > HANDOFF_MAX_BYTES)) {
        if (h->ring[h->head].text)
            drop(h, h->head);
        h->head = (h->head + 1) % HANDOFF_MAX;
        h->n--;
    }
}

/* Index ring[pos] (the index has room: at most HANDOFF_MAX of its SLOTS are in use). */
static void index_add(struct handoff *h, size_t pos)
{
    size_t i = (size_t)h->ring[pos].hash & (SLOTS - 1);
    while (h->index[i] > 0)
        i = (i + 1) & (SLOTS - 1);
    if (h->index[i] < 0)
        h->tombs--;
    h->index[i] = (int)pos + 1;
}

/* The index rebuilt from the ring, without deleted slots (every take and eviction leaves
 * one, and lookups pass over them). */
static void reindex(struct handoff *h)
{
    memset(h->index, 0, sizeof(h->index));
    h->tombs = 0;
    for (size_t k = 0; k < h->n; k++) {
        size_t pos = (h->head + k) % HANDOFF_MAX;
        if (h->ring[pos].text)
            index_add(h, pos);
    }
}

void handoff_put(struct handoff *h, char *req_text, struct job_req *r)
{
    size_t len, pos;
    if (!h || !req_text || (len = strlen(req_text)) > HANDOFF_MAX_BYTES) {
        free(req_text);
        return;
    }
    make_room(h, len);
    pos = (h->head + h->n) % HANDOFF_MAX;
    h->ring[pos].text = req_text;
    h->ring[pos].len = len;
    h->ring[pos].hash = text_hash(req_text, len);
    h->ring[pos].req = *r;
    memset(r, 0, sizeof(*r));
    h->n++;
    h->bytes += len;
    if (h->tombs > SLOTS / 2)
        reindex(h); /* (places the new entry too) */
    else
        index_add(h, pos);
}

int handoff_take(struct handoff *h, const char *req_text, size_t len, struct job_req *out)
{
    uint64_t hash;
    size_t i;
    if (!h || !req_text || h->n == 0)
        return -1;
    hash = text_hash(req_text, len);
    i = (size_t)hash & (SLOTS - 1);
    for (size_t probes = 0; probes < SLOTS && h->index[i] != 0; probes++) {
        int v = h->index[i];
        if (v > 0) {
            struct kept *k = &h->ring[v - 1];
            if (k->hash == hash && k->len == len && memcmp(k->text, req_text, len) == 0) {
                *out = k->req;
                memset(&k->req, 0, sizeof(k->req));
                drop(h, (size_t)v - 1); /* a hole in the ring until make_room passes it */
                return 0;
            }
        }
        i = (i + 1) & (SLOTS - 1);
    }
    return -1;
}

size_t handoff_count(const struct handoff *h, size_t *bytes)
{
    size_t kept = 0;
    for (size_t k = 0; h && k < h->n; k++)
        kept += h->ring[(h->head + k) % HANDOFF_MAX].text != NULL;
    if (bytes)
        *bytes = h ? h->bytes : 0;
    return kept;
}

void handoff_free(struct handoff *h)
{
    if (!h)
        return;
    for (size_t k = 0; k < h->n; k++) {
        size_t pos = (h->head + k) % HANDOFF_MAX;
        if (h->ring[pos].text)
            drop(h, pos);
    }
    free(h);
}
