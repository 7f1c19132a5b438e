/* faults.h - the simulator's runtime settings: fault knobs (rates, one-shot counters),
 * capabilities, required headers and judge knobs, globally and per model, plus an ordered
 * list of rules that match requests by model, kind and a substring of the last user
 * message. One declarative table of knobs drives the CLI flags, POST /sim/faults and
 * GET /sim/faults (bench/sim/README.md documents every key).
 *
 * Resolution of a knob for a request to model M: the value in "models": {M: {...}} if it
 * is set there; else the global value if it was set and fail_model is null or M; else off.
 *
 * Ownership: a struct faults is a plain value without pointers; copy it freely.
 * faults_parse() builds a complete new setting into *out or reports the offending key;
 * on failure *out is unspecified and the caller keeps its old setting. */
#ifndef SIM_FAULTS_H
#define SIM_FAULTS_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

struct cJSON;

#define FAULTS_MAX_RULES 64
#define FAULTS_MAX_CONTAINS 256         /* bytes of a rule's "contains" */
#define FAULTS_MAX_HEADERS 8            /* require_headers entries */
#define FAULTS_NAME_MAX 64              /* header names */
#define FAULTS_VALUE_MAX 256            /* header values, require_bearer */
#define FAULTS_MAX_DELAY_MS 600000.0    /* a rule's delay_ms */
#define FAULTS_MAX_COUNT 1000000000L    /* counters, rule counts */

enum reasoning_field { RF_DEFAULT, RF_CONTENT, RF_REASONING, RF_NONE };

struct faults_header {
    char name[FAULTS_NAME_MAX + 1];     /* lower case */
    char value[FAULTS_VALUE_MAX + 1];
    int any;                            /* 1: present with any value */
};

struct faults_headers {
    struct faults_header h[FAULTS_MAX_HEADERS];
    size_t n;
};

struct knobs {
    uint32_t set;                       /* bit i: knob i of the table was given */
    double error_rate, rate_limit_rate, hang_rate, garbage_rate, truncate_rate;
    long fail_next, rate_limit_next;
    int no_usage, no_logprobs, null_logprobs, harmony_leak;
    int no_stream, no_stream_usage, unlisted;
    int reasoning_field;                /* enum reasoning_field */
    int judge_wrap;                     /* enum judge_wrap (judge.h) */
    int judge_out_of_range, judge_garbage;
    char require_bearer[FAULTS_VALUE_MAX + 1];  /* "" = not required */
    struct faults_headers require_headers;
};

/* A rule's effects (bits of struct rule.effects). EF_FAULT is one of status, hang,
 * garbage or stream_error_after: a rule has at most one of them. */
enum { EF_FAULT = 1u, EF_LOGPROB = 2u, EF_MAX_TOKENS = 4u, EF_DELAY = 8u };

struct rule {
    int model;                          /* -1: any */
    int kind;                           /* -1: any; else enum model_kind */
    char contains[FAULTS_MAX_CONTAINS + 1];   /* "" = any */
    long count;                         /* matching requests left; -1: unlimited */
    unsigned effects;
    long status;                        /* 0, or an HTTP status 400..599 */
    int hang, garbage;
    long stream_error_after;            /* -1: none */
    double logprob_mean;
    long max_tokens;
    double delay_ms;
    uint64_t hits;                      /* requests matched (GET /sim/stats) */
};

/* What the matching rules decided for one request (effects: EF_* bits). */
struct rule_effect {
    unsigned effects;
    long status;
    int hang, garbage;
    long stream_error_after;
    double logprob_mean;
    long max_tokens;
    double delay_ms;
};

struct faults {
    struct knobs global;
    int fail_model;                     /* -1: global knobs apply to every model */
    struct knobs model[MODEL_COUNT];
    struct rule rules[FAULTS_MAX_RULES];
    size_t n_rules;
};

struct faults_err {
    char key[160];                      /* JSON path: "rules[2].status", "models.x.no_stream" */
    char msg[240];
};

/* Everything off. */
void faults_init(struct faults *f);
/* A whole new setting from a JSON object (what is left out is off). 0, or BD_EINVAL with
 * err filled. */
int faults_parse(const struct cJSON *o, struct faults *out, struct faults_err *err);
/* The setting as JSON (counters and rule counts as they are now); NULL on OOM. */
struct cJSON *faults_json(const struct faults *f);
/* Rule hits in rule order, as a JSON array; NULL on OOM. */
struct cJSON *faults_hits_json(const struct faults *f);
void faults_clear_hits(struct faults *f);

/* The knobs in force for model (-1: the global knobs as set, whatever fail_model says). */
void faults_effective(const struct faults *f, int model, struct knobs *out);
enum faults_counter { FC_FAIL_NEXT, FC_RATE_LIMIT_NEXT };
/* 1 if the counter in force for model was above 0 (it is decremented), else 0. */
int faults_take(struct faults *f, int model, enum faults_counter c);
/* Apply the rules to a request: every live rule that matches counts a hit and uses up one
 * of its count; for each effect the first matching rule that has it wins. */
void faults_match(struct faults *f, int model, int kind, const char *input,
                  struct rule_effect *out);

/* Header checks: require_headers, then require_bearer. */
typedef const char *(*faults_header_fn)(const void *ctx, const char *name);
struct faults_denial {
    int status;                         /* 400 or 401 */
    const char *code;
    char param[FAULTS_NAME_MAX + 1];
    char msg[200];
};
/* 0 when the request's headers (read through get) pass k's checks; else -1 with d filled. */
int faults_check_headers(const struct knobs *k, faults_header_fn get, const void *ctx,
                         struct faults_denial *d);

/* CLI: "--name[=value]" for a knob (name as in JSON with '-' for '_'; "require-header"
 * takes NAME or NAME=VALUE and may repeat; "fail-model" takes a model id).
 * faults_flag_arity: 1 takes a value, 0 does not, -1 not a knob flag. */
int faults_flag_arity(const char *name);
/* 0, or BD_EINVAL for a bad value. */
int faults_flag(struct faults *f, const char *name, const char *value);

#endif
