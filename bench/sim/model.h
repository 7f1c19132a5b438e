/* model.h - the models briefd-modelsim simulates: their ids, their timing in the realistic
 * profile and how they write. A fixed table; a model is its index in it.
 *
 * Ownership: static data; nothing is allocated. */
#ifndef SIM_MODEL_H
#define SIM_MODEL_H

/* Who answers: in --help, the start line, /v1/models "owned_by" and error messages. */
#define SIM_NAME "briefd-modelsim (simulator)"

enum model_id { MODEL_PHI, MODEL_GPT, MODEL_COUNT };

struct model_def {
    const char *id;         /* "phi-4-mini" */
    double ttft_ms, tps;    /* realistic profile */
    int refine;             /* 1: the tidy "Brief:" style with reasoning; 0: extractive draft */
};

extern const struct model_def model_defs[MODEL_COUNT];

/* What a request asks of a model: a chat answer (a brief), or a judge verdict. */
enum model_kind { KIND_CHAT, KIND_JUDGE, KIND_COUNT };
extern const char *const model_kinds[KIND_COUNT];   /* "chat", "judge" */

/* The index of the model called id, or -1 (id may be NULL). */
int model_find(const char *id);
/* The kind called name, or -1. */
int model_kind_find(const char *name);

#endif
