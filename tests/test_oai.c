/* test_oai.c - oai: request bodies, every response variant, error bodies, SSE streams. */
#include "oai.h"
#include "sbuf.h"
#include "tcheck.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>

/* ---------- helpers ---------- */

#define MAX_POOL 512
static char *pool[MAX_POOL];
static int npool;

static char *keep(char *p)
{
    if (p == NULL || npool == MAX_POOL) {
        fprintf(stderr, "test pool exhausted or OOM\n");
        exit(2);
    }
    pool[npool++] = p;
    return p;
}

static void free_pool(void)
{
    while (npool > 0)
        free(pool[--npool]);
}

/* JSON written with ' for " (an apostrophe inside JSON text is \u0027). */
static const char *J(const char *s)
{
    char *p = keep(strdup(s)), *q;

    for (q = p; *q; q++)
        if (*q == '\'')
            *q = '"';
    return p;
}

/* The same text with every "\n" turned into "\r\n". */
static const char *crlf(const char *s)
{
    size_t n = strlen(s), i, o = 0;
    char *p = keep(malloc(2 * n + 1));

    for (i = 0; i < n; i++) {
        if (s[i] == '\n')
            p[o++] = '\r';
        p[o++] = s[i];
    }
    p[o] = '\0';
    return p;
}

static int parse(const char *body, size_t prompt_chars, struct oai_result *r, char *msg)
{
    return oai_parse_response(body, body ? strlen(body) : 0, prompt_chars, r, msg, 256);
}

static unsigned rng_state;
static unsigned rng(void)
{
    rng_state = rng_state * 1103515245u + 12345u;
    return (rng_state >> 16) & 0x7fff;
}

enum feed_mode { WHOLE, BYTES, RANDOM };

struct run {
    int feed_rc;            /* first negative feed return, or 0 */
    int finish_rc;
    int signals;            /* feeds that returned 1 */
    size_t signal_at;       /* bytes fed when the 1 came */
    char feed_msg[256], finish_msg[256];
    struct oai_result r;
};

static void run_stream(const char *s, size_t n, enum feed_mode mode, unsigned seed,
                       size_t prompt_chars, struct run *out)
{
    struct oai_sse sse;
    size_t off = 0;

    memset(out, 0, sizeof *out);
    rng_state = seed;
    oai_sse_init(&sse, prompt_chars);
    while (off < n) {
        size_t k = mode == WHOLE ? n : mode == BYTES ? 1 : 1 + rng() % 23;
        int rc;
        if (k > n - off)
            k = n - off;
        rc = oai_sse_feed(&sse, s + off, k, out->feed_msg, sizeof out->feed_msg);
        off += k;
        if (rc == 1) {
            out->signals++;
            out->signal_at = off;
        }
        if (rc < 0) {
            out->feed_rc = rc;
            break;
        }
    }
    out->finish_rc = oai_sse_finish(&sse, &out->r, out->finish_msg, sizeof out->finish_msg);
    oai_sse_free(&sse);  /* after finish: must be harmless */
}

static int same_result(const struct oai_result *a, const struct oai_result *b)
{
    size_t i;

    if (a->content_len != b->content_len || !a->content || !b->content ||
        memcmp(a->content, b->content, a->content_len) != 0)
        return 0;
    if ((a->finish_reason == NULL) != (b->finish_reason == NULL) ||
        (a->finish_reason && strcmp(a->finish_reason, b->finish_reason) != 0))
        return 0;
    if ((a->model == NULL) != (b->model == NULL) || (a->model && strcmp(a->model, b->model)))
        return 0;
    if (a->truncated != b->truncated || a->has_reasoning != b->has_reasoning ||
        a->prompt_tokens != b->prompt_tokens || a->completion_tokens != b->completion_tokens ||
        a->usage_estimated != b->usage_estimated || a->has_logprobs != b->has_logprobs ||
        a->n_logprobs != b->n_logprobs)
        return 0;
    for (i = 0; i < a->n_logprobs; i++)
        if (a->logprobs[i] != b->logprobs[i])
            return 0;
    return 1;
}

/* Feeds s whole, byte by byte, CRLF, and in random chunks: every run must match the first.
 * (When a feed fails, the first-token signal of that same feed is lost: only then may the
 * signal counts differ, so they are compared for clean streams.) */
static void run_all_ways(const char *s, size_t prompt_chars, struct run *whole)
{
    static const unsigned seeds[] = {1, 7, 42, 20261125};
    struct run other;
    size_t i;

    run_stream(s, strlen(s), WHOLE, 0, prompt_chars, whole);
    run_stream(s, strlen(s), BYTES, 0, prompt_chars, &other);
    CHECK(same_result(&whole->r, &other.r));
    CHECK(other.finish_rc == whole->finish_rc && other.feed_rc == whole->feed_rc);
    CHECK(whole->feed_rc < 0 || other.signals == whole->signals);
    CHECK_STR(other.feed_msg, whole->feed_msg);
    oai_result_free(&other.r);
    for (i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
        run_stream(s, strlen(s), RANDOM, seeds[i], prompt_chars, &other);
        CHECK(same_result(&whole->r, &other.r));
        CHECK(other.finish_rc == whole->finish_rc && other.feed_rc == whole->feed_rc);
        CHECK(whole->feed_rc < 0 || other.signals == whole->signals);
        oai_result_free(&other.r);
    }
    s = crlf(s);
    run_stream(s, strlen(s), RANDOM, 3, prompt_chars, &other);
    CHECK(same_result(&whole->r, &other.r));
    CHECK(other.finish_rc == whole->finish_rc && other.feed_rc == whole->feed_rc);
    oai_result_free(&other.r);
    run_stream(s, strlen(s), BYTES, 0, prompt_chars, &other);  /* splits every "\r\n" */
    CHECK(same_result(&whole->r, &other.r));
    CHECK(other.finish_rc == whole->finish_rc);
    oai_result_free(&other.r);
}

#define LIT(s) s, sizeof(s) - 1

/* ---------- small functions ---------- */

static void test_estimate(void)
{
    CHECK(oai_estimate_tokens(0) == 0);
    CHECK(oai_estimate_tokens(1) == 1);
    CHECK(oai_estimate_tokens(3) == 1);
    CHECK(oai_estimate_tokens(4) == 1);
    CHECK(oai_estimate_tokens(5) == 2);
    CHECK(oai_estimate_tokens(1000) == 250);
    CHECK(oai_estimate_tokens(1001) == 251);
    CHECK(oai_estimate_tokens(SIZE_MAX) > 0);
}

static void test_harmony_final(void)
{
    const char *leak = "<|channel|>analysis<|message|>Need facts.<|end|>"
                       "<|start|>assistant<|channel|>final<|message|>  The brief.\n<|return|>";
    const char *s;
    size_t n = 99;
    int found = 9;
    char *p;

    p = oai_harmony_final(leak, strlen(leak), &n, &found);
    CHECK_STR(p, "The brief.");
    CHECK(n == 10 && found == 1);
    free(p);
    s = "<|channel|>final<|message|>Kept.<|end|><|start|>assistant<|channel|>x<|message|>no";
    p = oai_harmony_final(s, strlen(s), &n, &found);
    CHECK_STR(p, "Kept.");
    CHECK(found == 1);
    free(p);
    s = "<|channel|>final<|message|>Stops at start<|start|>user<|message|>hi";
    p = oai_harmony_final(s, strlen(s), &n, &found);
    CHECK_STR(p, "Stops at start");
    free(p);
    s = "<|channel|>final<|message|>\n no terminator \t";
    p = oai_harmony_final(s, strlen(s), &n, &found);
    CHECK_STR(p, "no terminator");
    CHECK(n == 13);
    free(p);
    s = "<|channel|>final<|message|>first<|end|><|channel|>final<|message|>second<|end|>";
    p = oai_harmony_final(s, strlen(s), &n, &found);
    CHECK_STR(p, "second");  /* the last final section wins */
    free(p);
    s = "plain text, no channels ";
    p = oai_harmony_final(s, strlen(s), &n, &found);
    CHECK_STR(p, "plain text, no channels ");  /* untouched copy, not trimmed */
    CHECK(found == 0 && n == strlen(s));
    free(p);
    p = oai_harmony_final("<|channel|>final<|message|>cut here", 30, &n, &found);
    CHECK_STR(p, "cut");  /* len bounds the input */
    free(p);
    p = oai_harmony_final(NULL, 0, &n, &found);
    CHECK_STR(p, "");
    CHECK(found == 0 && n == 0);
    free(p);
    p = oai_harmony_final("<|channel|>final<|message|>", 27, NULL, NULL);
    CHECK_STR(p, "");
    free(p);
}

static void test_build_request(void)
{
    char *body = oai_build_request("phi-4-mini", "You write briefs.",
                                   "Summarize:\n\"Q3\" revenue \xc3\xa9t\xc3\xa9 up", 300, 0.4,
                                   0, 1);
    cJSON *root = body ? cJSON_Parse(body) : NULL;
    cJSON *msgs = cJSON_GetObjectItemCaseSensitive(root, "messages");
    cJSON *m0 = cJSON_GetArrayItem(msgs, 0), *m1 = cJSON_GetArrayItem(msgs, 1);

    CHECK(root != NULL);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(root, "model")), "phi-4-mini");
    CHECK(cJSON_GetArraySize(msgs) == 2);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m0, "role")), "system");
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m0, "content")),
              "You write briefs.");
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m1, "role")), "user");
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m1, "content")),
              "Summarize:\n\"Q3\" revenue \xc3\xa9t\xc3\xa9 up");
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(root, "max_tokens")) == 300);
    CHECK_NEAR(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(root, "temperature")),
               0.4, 1e-12);
    CHECK(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(root, "stream")));
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "logprobs")));
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(root, "top_logprobs")) == 0);
    CHECK(cJSON_GetObjectItemCaseSensitive(root, "stream_options") == NULL);
    CHECK(strstr(body, "\"temperature\":0.4,") != NULL);  /* no 0.40000000000000002 */
    cJSON_Delete(root);
    free(body);

    body = oai_build_request("gpt-oss-20b", "", "Improve clarity", 512, 0.0, 1, 0);
    root = body ? cJSON_Parse(body) : NULL;
    msgs = cJSON_GetObjectItemCaseSensitive(root, "messages");
    CHECK(cJSON_GetArraySize(msgs) == 1);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(msgs, 0),
                                                                     "role")), "user");
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "stream")));
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(root, "stream_options"), "include_usage")));
    CHECK(cJSON_GetObjectItemCaseSensitive(root, "logprobs") == NULL);
    CHECK(cJSON_GetObjectItemCaseSensitive(root, "top_logprobs") == NULL);
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(root, "temperature")) == 0.0);
    cJSON_Delete(root);
    free(body);

    body = oai_build_request("m", NULL, NULL, 0, NAN, 0, 0);
    CHECK_STR(body, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"\"}],"
                    "\"stream\":false}");
    free(body);
}

/* ---------- complete responses ---------- */

static void test_openai(void)
{
    struct oai_result r;
    char msg[256];
    int rc = parse(J("{'id':'chatcmpl-AbC123','object':'chat.completion','created':1764072000,"
        "'model':'gpt-4o-mini-2024-07-18','choices':[{'index':0,'message':{'role':'assistant',"
        "'content':'Q3 revenue rose 12%; margins held.','refusal':null,'annotations':[]},"
        "'logprobs':null,'finish_reason':'stop'}],'usage':{'prompt_tokens':512,"
        "'completion_tokens':11,'total_tokens':523,'prompt_tokens_details':{'cached_tokens':0,"
        "'audio_tokens':0},'completion_tokens_details':{'reasoning_tokens':0}},"
        "'service_tier':'default','system_fingerprint':'fp_560af6e559'}\n"), 2048, &r, msg);

    CHECK(rc == 0);
    CHECK_STR(msg, "");
    CHECK_STR(r.content, "Q3 revenue rose 12%; margins held.");
    CHECK(r.content_len == 34);
    CHECK_STR(r.finish_reason, "stop");
    CHECK(r.truncated == 0);
    CHECK_STR(r.model, "gpt-4o-mini-2024-07-18");
    CHECK(r.prompt_tokens == 512 && r.completion_tokens == 11 && r.usage_estimated == 0);
    CHECK(r.has_logprobs == 0 && r.n_logprobs == 0 && r.logprobs == NULL);
    CHECK(r.has_reasoning == 0);
    oai_result_free(&r);
    CHECK(r.content == NULL && r.model == NULL && r.content_len == 0);
    oai_result_free(&r);  /* twice is harmless */
}

static void test_vllm_logprobs(void)
{
    struct oai_result r;
    char msg[256];
    int rc = parse(J("{'id':'chatcmpl-9f0c','object':'chat.completion','created':1764072001,"
        "'model':'microsoft/Phi-4-mini-instruct','choices':[{'index':0,'message':{'role':"
        "'assistant','reasoning_content':null,'content':'Revenue rose.','tool_calls':[]},"
        "'logprobs':{'content':[{'token':'Revenue','logprob':-0.0312,'bytes':[82,101],"
        "'top_logprobs':[]},{'token':' rose','logprob':-0.5,'bytes':[32],'top_logprobs':[]},"
        "{'token':'.','logprob':-1.25,'bytes':[46],'top_logprobs':[]}]},'finish_reason':'stop',"
        "'stop_reason':null}],'usage':{'prompt_tokens':40,'total_tokens':43,"
        "'completion_tokens':3,'prompt_tokens_details':null},'prompt_logprobs':null,"
        "'kv_transfer_params':null}"), 160, &r, msg);

    CHECK(rc == 0);
    CHECK_STR(r.content, "Revenue rose.");
    CHECK_STR(r.model, "microsoft/Phi-4-mini-instruct");
    CHECK(r.has_logprobs == 1 && r.n_logprobs == 3);
    CHECK(r.n_logprobs == 3 && r.logprobs[0] == -0.0312 && r.logprobs[1] == -0.5 &&
          r.logprobs[2] == -1.25);
    CHECK(r.has_reasoning == 0);  /* reasoning_content: null */
    CHECK(r.prompt_tokens == 40 && r.completion_tokens == 3 && r.usage_estimated == 0);
    oai_result_free(&r);
}

static void test_llamacpp(void)
{
    struct oai_result r;
    char msg[256];
    int rc = parse(J("{'choices':[{'finish_reason':'stop','index':0,'message':{'role':"
        "'assistant','content':'Revenue rose 12%.'},'logprobs':{'content':[{'id':19651,"
        "'token':'Revenue','bytes':[82],'logprob':-0.25,'top_logprobs':[]},{'id':16392,"
        "'token':' rose','bytes':[32],'logprob':-2.0,'top_logprobs':[]},{'id':220,'token':' ',"
        "'bytes':[32],'logprob':'-inf?','top_logprobs':[]},{'id':1,'token':'x'}]}}],"
        "'created':1764072002,'model':'phi-4-mini-instruct-q4_k_m.gguf',"
        "'system_fingerprint':'b6100-1d72c841','object':'chat.completion','usage':"
        "{'completion_tokens':5,'prompt_tokens':44,'total_tokens':49},'id':'chatcmpl-Xyz',"
        "'timings':{'prompt_n':44,'prompt_ms':30.1,'predicted_n':5,'predicted_ms':80.2}}"),
        176, &r, msg);

    CHECK(rc == 0);
    CHECK_STR(r.content, "Revenue rose 12%.");
    CHECK_STR(r.model, "phi-4-mini-instruct-q4_k_m.gguf");
    CHECK(r.has_logprobs == 1);
    CHECK(r.n_logprobs == 2 && r.logprobs[0] == -0.25 && r.logprobs[1] == -2.0);
    CHECK(r.prompt_tokens == 44 && r.completion_tokens == 5 && r.usage_estimated == 0);
    oai_result_free(&r);
}

static void test_ollama(void)
{
    struct oai_result r;
    char msg[256];
    int rc = parse(J("{'id':'chatcmpl-310','object':'chat.completion','created':1764072003,"
        "'model':'phi4-mini:3.8b','system_fingerprint':'fp_ollama','choices':[{'index':0,"
        "'message':{'role':'assistant','content':'Revenue rose 12%.'},"
        "'finish_reason':'stop'}],'usage':{'prompt_tokens':38,'completion_tokens':6,"
        "'total_tokens':44}}"), 150, &r, msg);

    CHECK(rc == 0);
    CHECK_STR(r.content, "Revenue rose 12%.");
    CHECK_STR(r.model, "phi4-mini:3.8b");
    CHECK(r.has_logprobs == 0 && r.n_logprobs == 0);
    CHECK(r.prompt_tokens == 38 && r.completion_tokens == 6 && r.usage_estimated == 0);
    oai_result_free(&r);
}

static void test_foundry_local_no_usage(void)
{
    struct oai_result r;
    char msg[256];
    int rc = parse(J("{'model':'Phi-4-mini-instruct-generic-cpu','choices':[{'delta':{'role':"
        "'assistant','content':null,'tool_calls':[]},'message':{'role':'assistant','content':"
        "'Revenue rose 12% on cloud demand.','tool_calls':[]},'index':0,'finish_reason':"
        "'stop'}],'id':'chat.id.7','created':1764072004,'CreatedAt':'2025-11-25T12:00:04+00:00',"
        "'IsDelta':false,'Successful':true,'HttpStatusCode':0,'object':'chat.completion'}"),
        1000, &r, msg);

    CHECK(rc == 0);
    CHECK_STR(r.content, "Revenue rose 12% on cloud demand.");
    CHECK_STR(r.model, "Phi-4-mini-instruct-generic-cpu");
    CHECK(r.usage_estimated == 1);
    CHECK(r.prompt_tokens == 250);     /* 1000 bytes / 4 */
    CHECK(r.completion_tokens == 9);   /* 33 bytes */
    CHECK(r.has_logprobs == 0);
    oai_result_free(&r);
}

static void test_gptoss_reasoning(void)
{
    struct oai_result r;
    char msg[256];
    int rc = parse(J("{'id':'chatcmpl-a1','object':'chat.completion','created':1764072005,"
        "'model':'openai/gpt-oss-20b','choices':[{'index':0,'message':{'role':'assistant',"
        "'content':'Cloud revenue grew 12%; costs were flat.','refusal':null,'annotations':null,"
        "'audio':null,'function_call':null,'tool_calls':[],'reasoning_content':'We need to "
        "improve clarity. The draft says revenue rose.'},'logprobs':null,'finish_reason':"
        "'stop','stop_reason':null}],'usage':{'prompt_tokens':120,'total_tokens':180,"
        "'completion_tokens':60}}"), 480, &r, msg);

    CHECK(rc == 0);
    CHECK_STR(r.content, "Cloud revenue grew 12%; costs were flat.");
    CHECK(r.has_reasoning == 1 && r.reasoning_from == OAI_REASONING_CONTENT);
    CHECK(r.prompt_tokens == 120 && r.completion_tokens == 60 && r.usage_estimated == 0);
    oai_result_free(&r);

    /* Ollama / OpenRouter spell it "reasoning"; no usage: the estimate counts it too */
    rc = parse(J("{'model':'gpt-oss:20b','choices':[{'index':0,'message':{'role':'assistant',"
        "'content':'Brief.','reasoning':'Thinking hard.'},'finish_reason':'stop'}]}"), 8, &r,
        msg);
    CHECK(rc == 0);
    CHECK_STR(r.content, "Brief.");
    CHECK(r.has_reasoning == 1 && r.reasoning_from == OAI_REASONING_FIELD);
    CHECK(r.usage_estimated == 1 && r.prompt_tokens == 2);
    CHECK(r.completion_tokens == 5);   /* 6 + 14 bytes generated */
    oai_result_free(&r);
}

static void test_harmony_leak(void)
{
    const char *raw = "<|channel|>analysis<|message|>We need to rewrite the draft for clarity."
                      "<|end|><|start|>assistant<|channel|>final<|message|>Cloud revenue grew "
                      "12%.<|return|>";
    char body[1024];
    struct oai_result r;
    char msg[256];
    int rc;

    snprintf(body, sizeof body, "{\"model\":\"gpt-oss-20b\",\"choices\":[{\"index\":0,"
             "\"message\":{\"role\":\"assistant\",\"content\":\"%s\"},\"finish_reason\":"
             "\"stop\"}]}", raw);
    rc = parse(body, 400, &r, msg);
    CHECK(rc == 0);
    CHECK_STR(r.content, "Cloud revenue grew 12%.");
    CHECK(r.content_len == 23);
    CHECK(r.has_reasoning == 1 && r.reasoning_from == OAI_REASONING_HARMONY);
    CHECK(r.usage_estimated == 1 && r.prompt_tokens == 100);
    CHECK(r.completion_tokens == oai_estimate_tokens(strlen(raw)));  /* all of it generated */
    oai_result_free(&r);

    /* cut off while still reasoning: no final channel, the brief is empty */
    rc = parse(J("{'model':'gpt-oss-20b','choices':[{'index':0,'message':{'role':'assistant',"
        "'content':'<|channel|>analysis<|message|>We need to summarize the filing. First'},"
        "'finish_reason':'length'}],'usage':{'prompt_tokens':900,'completion_tokens':300}}"),
        3600, &r, msg);
    CHECK(rc == 0);
    CHECK_STR(r.content, "");
    CHECK(r.content_len == 0);
    CHECK(r.has_reasoning == 1 && r.truncated == 1);
    CHECK_STR(r.finish_reason, "length");
    CHECK(r.completion_tokens == 300 && r.usage_estimated == 0);
    oai_result_free(&r);

    /* special tokens stripped by the server's detokenizer */
    rc = parse(J("{'choices':[{'message':{'content':'analysisThe user wants a brief."
        "assistantfinal Revenue rose 12%.'},'finish_reason':'stop'}]}"), 0, &r, msg);
    CHECK(rc == 0);
    CHECK_STR(r.content, "Revenue rose 12%.");
    CHECK(r.has_reasoning == 1 && r.reasoning_from == OAI_REASONING_HARMONY);
    CHECK(r.prompt_tokens == 0 && r.model == NULL);
    oai_result_free(&r);

    /* a brief that merely starts with the word is left alone */
    rc = parse(J("{'choices':[{'message':{'content':'analysis of Q3: revenue rose.'},"
        "'finish_reason':'stop'}]}"), 0, &r, msg);
    CHECK(rc == 0);
    CHECK_STR(r.content, "analysis of Q3: revenue rose.");
    CHECK(r.has_reasoning == 0 && r.reasoning_from == 0);
    oai_result_free(&r);
}

static void test_shapes(void)
{
    struct oai_result r;
    char msg[256];
    int rc;

    rc = parse(J("{'model':'phi-4-mini','choices':[{'index':0,'message':{'role':'assistant',"
        "'content':'Revenue rose 12% and the board approved the'},'finish_reason':'length'}],"
        "'usage':{'prompt_tokens':700,'completion_tokens':300,'total_tokens':1000}}"), 0, &r,
        msg);
    CHECK(rc == 0 && r.truncated == 1);
    CHECK_STR(r.finish_reason, "length");
    oai_result_free(&r);

    rc = parse(J("{'choices':[{'index':0,'message':{'role':'assistant','content':null,"
        "'tool_calls':[]},'finish_reason':'stop'}],'usage':{'prompt_tokens':5,"
        "'completion_tokens':0}}"), 0, &r, msg);
    CHECK(rc == 0);
    CHECK_STR(r.content, "");
    CHECK(r.content_len == 0 && r.completion_tokens == 0 && r.usage_estimated == 0);
    CHECK(r.finish_reason != NULL && r.truncated == 0);
    oai_result_free(&r);

    rc = parse(J("{'choices':[{'message':{'role':'assistant'}}]}"), 0, &r, msg);
    CHECK(rc == 0);
    CHECK_STR(r.content, "");
    CHECK(r.finish_reason == NULL && r.completion_tokens == 0 && r.usage_estimated == 1);
    oai_result_free(&r);

    rc = parse(J("{'choices':[{'message':{'content':[{'type':'thinking','thinking':'hm'},"
        "{'type':'text','text':'Revenue '},{'type':'image_url','image_url':{'url':'x'}},"
        "{'type':'output_text','text':'rose.'},{'type':'summary_text','text':'not the brief'},"
        "{'text':'!'},'?',{'type':'text','text':7}]},"
        "'finish_reason':'stop'}]}"), 0, &r, msg);
    CHECK(rc == 0);
    CHECK_STR(r.content, "Revenue rose.!?");
    CHECK(r.has_reasoning == 1 && r.reasoning_from == OAI_REASONING_PARTS);
    oai_result_free(&r);

    /* partial and bogus usage: what is missing or not a sane count is estimated */
    rc = parse(J("{'choices':[{'message':{'content':'abcdefgh'},'finish_reason':'stop'}],"
        "'usage':{'prompt_tokens':12}}"), 999, &r, msg);
    CHECK(rc == 0 && r.prompt_tokens == 12 && r.completion_tokens == 2 && r.usage_estimated);
    oai_result_free(&r);
    rc = parse(J("{'choices':[{'message':{'content':'abcdefgh'},'finish_reason':'stop'}],"
        "'usage':{'prompt_tokens':-5,'completion_tokens':'7'}}"), 40, &r, msg);
    CHECK(rc == 0 && r.prompt_tokens == 10 && r.completion_tokens == 2 && r.usage_estimated);
    oai_result_free(&r);
    rc = parse(J("{'choices':[{'message':{'content':'abcd'},'finish_reason':'stop'}],"
        "'usage':{'prompt_tokens':1e300,'completion_tokens':3}}"), 4, &r, msg);
    CHECK(rc == 0 && r.prompt_tokens == 1 && r.completion_tokens == 3 && r.usage_estimated);
    oai_result_free(&r);
    rc = parse(J("{'choices':[{'message':{'content':'x'},'finish_reason':'stop'}],"
        "'usage':null}"), 4, &r, msg);
    CHECK(rc == 0 && r.prompt_tokens == 1 && r.completion_tokens == 1 && r.usage_estimated);
    oai_result_free(&r);

    /* logprobs variants */
    rc = parse(J("{'choices':[{'message':{'content':'a'},'logprobs':{'content':null,"
        "'refusal':null},'finish_reason':'stop'}]}"), 0, &r, msg);
    CHECK(rc == 0 && r.has_logprobs == 0 && r.n_logprobs == 0);
    oai_result_free(&r);
    rc = parse(J("{'choices':[{'message':{'content':'a'},'logprobs':{'content':[]},"
        "'finish_reason':'stop'}]}"), 0, &r, msg);
    CHECK(rc == 0 && r.has_logprobs == 1 && r.n_logprobs == 0);
    oai_result_free(&r);
    rc = parse(J("{'choices':[{'message':{'content':'a b'},'logprobs':{'tokens':['a',' b',"
        "'!'],'token_logprobs':[-0.5,null,-4]},'finish_reason':'stop'}]}"), 0, &r, msg);
    CHECK(rc == 0 && r.has_logprobs == 1);
    CHECK(r.n_logprobs == 2 && r.logprobs[0] == -0.5 && r.logprobs[1] == -4.0);
    oai_result_free(&r);

    /* the result is overwritten even when it was left dirty-but-freed */
    rc = parse(J("{'choices':[{'message':{'content':'x'}}],'model':7}"), 0, &r, msg);
    CHECK(rc == 0 && r.model == NULL && r.finish_reason == NULL);
    oai_result_free(&r);
}

static void test_logprob_cap(void)
{
    size_t n = OAI_MAX_LOGPROBS + 10, i, o;
    char *body = malloc(n * 16 + 128);
    struct oai_result r;
    char msg[256];
    int rc;

    o = (size_t)sprintf(body, "{\"choices\":[{\"message\":{\"content\":\"x\"},\"logprobs\":"
                              "{\"content\":[");
    for (i = 0; i < n; i++)
        o += (size_t)sprintf(body + o, "%s{\"logprob\":-%zu}", i ? "," : "", i % 7);
    o += (size_t)sprintf(body + o, "]},\"finish_reason\":\"stop\"}]}");
    rc = oai_parse_response(body, o, 0, &r, msg, sizeof msg);
    CHECK(rc == 0);
    CHECK(r.n_logprobs == OAI_MAX_LOGPROBS);
    CHECK(r.n_logprobs == OAI_MAX_LOGPROBS && r.logprobs[OAI_MAX_LOGPROBS - 1] ==
          -(double)((OAI_MAX_LOGPROBS - 1) % 7));
    oai_result_free(&r);
    free(body);
}

static void test_bounds(void)
{
    size_t big = OAI_MAX_CONTENT_BYTES;
    char *body = malloc(big + 200);
    struct oai_result r;
    char msg[256];
    size_t o;
    int rc;

    o = (size_t)sprintf(body, "{\"choices\":[{\"message\":{\"content\":\"");
    memset(body + o, 'a', big);
    o += big;
    o += (size_t)sprintf(body + o, "\"},\"finish_reason\":\"stop\"}]}");
    rc = oai_parse_response(body, o, 0, &r, msg, sizeof msg);
    CHECK(rc == 0 && r.content_len == big);
    oai_result_free(&r);

    o = (size_t)sprintf(body, "{\"choices\":[{\"message\":{\"content\":\"");
    memset(body + o, 'a', big + 1);
    o += big + 1;
    o += (size_t)sprintf(body + o, "\"},\"finish_reason\":\"stop\"}]}");
    rc = oai_parse_response(body, o, 0, &r, msg, sizeof msg);
    CHECK(rc == OAI_ETOOBIG);
    CHECK_STR(msg, "content exceeds 1048576 bytes");
    oai_result_free(&r);
    free(body);

    body = malloc((size_t)OAI_MAX_BODY_BYTES + 1);
    memset(body, ' ', (size_t)OAI_MAX_BODY_BYTES + 1);
    memcpy(body, "{}", 2);
    rc = oai_parse_response(body, (size_t)OAI_MAX_BODY_BYTES + 1, 0, &r, msg, sizeof msg);
    CHECK(rc == OAI_ETOOBIG);
    CHECK_STR(msg, "body exceeds 33554432 bytes");
    oai_result_free(&r);
    free(body);
}

static void test_parse_errors(void)
{
    static const char trunc[] = "{\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"message\":"
                                "{\"role\":\"assistant\",\"content\":\"Revenue ro";
    struct oai_result r;
    char msg[256];
    int rc;

    rc = parse("", 0, &r, msg);
    CHECK(rc == OAI_EPARSE);
    CHECK_STR(msg, "body is empty");
    oai_result_free(&r);
    rc = oai_parse_response(NULL, 5, 0, &r, msg, sizeof msg);
    CHECK(rc == OAI_EPARSE);
    oai_result_free(&r);

    rc = parse(trunc, 0, &r, msg);
    CHECK(rc == OAI_EPARSE);
    CHECK_STR(msg, "body is not valid JSON: {\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,"
                   "\"message\":{\"role\":\"assi");
    oai_result_free(&r);

    rc = parse("Internal Server Error", 0, &r, msg);
    CHECK(rc == OAI_EPARSE);
    CHECK_STR(msg, "body is not valid JSON: Internal Server Error");
    oai_result_free(&r);

    rc = parse("<html>\r\n<head><title>502 Bad Gateway</title></head></html>", 0, &r, msg);
    CHECK(rc == OAI_EPARSE);
    CHECK_STR(msg, "body is not valid JSON: <html> <head><title>502 Bad Gateway</title></head>"
                   "</html>");
    oai_result_free(&r);

    rc = parse("{\"choices\":[]} trailing", 0, &r, msg);
    CHECK(rc == OAI_EPARSE);
    oai_result_free(&r);
    rc = parse("{\"choices\":[{\"message\":{\"content\":\"ok\"}}]} \r\n", 0, &r, msg);
    CHECK(rc == 0);
    CHECK_STR(r.content, "ok");
    oai_result_free(&r);

    rc = parse("[1,2]", 0, &r, msg);
    CHECK(rc == OAI_EPARSE);
    CHECK_STR(msg, "body is not a JSON object");
    oai_result_free(&r);

    rc = parse(J("{'id':'x','object':'chat.completion','choices':[],'usage':"
                 "{'prompt_tokens':3,'completion_tokens':0}}"), 0, &r, msg);
    CHECK(rc == OAI_ENOCHOICE);
    CHECK_STR(msg, "no choices[0].message in the response");
    oai_result_free(&r);
    rc = parse(J("{'choices':[{'index':0,'text':'completions style'}]}"), 0, &r, msg);
    CHECK(rc == OAI_ENOCHOICE);
    oai_result_free(&r);
    rc = parse(J("{'choices':{'message':{'content':'not an array'}}}"), 0, &r, msg);
    CHECK(rc == OAI_ENOCHOICE);
    oai_result_free(&r);
    rc = parse(J("{'model':'m','choices':[{'message':{'content':42}}]}"), 0, &r, msg);
    CHECK(rc == OAI_EPARSE);
    CHECK_STR(msg, "content is neither a string, an array nor null");
    CHECK_STR(r.model, "m");  /* what was parsed before the failure */
    oai_result_free(&r);

    /* deep nesting is refused by cJSON, not a crash */
    {
        char deep[6001];
        memset(deep, '[', 3000);
        memset(deep + 3000, ']', 3000);
        deep[6000] = '\0';
        rc = parse(deep, 0, &r, msg);
        CHECK(rc == OAI_EPARSE);
        oai_result_free(&r);
    }
    /* msg may be absent */
    rc = oai_parse_response(LIT("nope"), 0, &r, NULL, 0);
    CHECK(rc == OAI_EPARSE);
    oai_result_free(&r);
}

static void test_error_bodies(void)
{
    struct oai_result r;
    char msg[256], small[8];
    int rc;

    /* 400, OpenAI */
    const char *b400 = J("{'error':{'message':'This model\\u0027s maximum context length is "
        "4096 tokens. However, you requested 5000 tokens.','type':'invalid_request_error',"
        "'param':'messages','code':'context_length_exceeded'}}");
    rc = parse(b400, 0, &r, msg);
    CHECK(rc == OAI_EUPSTREAM);
    CHECK_STR(msg, "This model's maximum context length is 4096 tokens. However, you "
                   "requested 5000 tokens.");
    oai_result_free(&r);
    CHECK(oai_error_message(b400, strlen(b400), msg, sizeof msg) == 0);
    CHECK_STR(msg, "This model's maximum context length is 4096 tokens. However, you "
                   "requested 5000 tokens.");

    /* 429, Azure */
    const char *b429 = J("{'error':{'code':'429','message':'Requests to the ChatCompletions_"
        "Create Operation have exceeded token rate limit. Please retry after 6 seconds.'}}");
    CHECK(oai_error_message(b429, strlen(b429), msg, sizeof msg) == 0);
    CHECK_STR(msg, "Requests to the ChatCompletions_Create Operation have exceeded token rate "
                   "limit. Please retry after 6 seconds.");

    /* 500, llama.cpp */
    const char *b500 = J("{'error':{'code':500,'message':'Internal server error: failed to "
        "decode','type':'server_error'}}");
    CHECK(oai_error_message(b500, strlen(b500), msg, sizeof msg) == 0);
    CHECK_STR(msg, "Internal server error: failed to decode");

    /* 404, Ollama */
    const char *b404 = J("{'error':'model \\'phi4-mini\\' not found, try pulling it first'}");
    CHECK(oai_error_message(b404, strlen(b404), msg, sizeof msg) == 0);
    CHECK_STR(msg, "model \"phi4-mini\" not found, try pulling it first");
    rc = parse(b404, 0, &r, msg);
    CHECK(rc == OAI_EUPSTREAM);
    CHECK_STR(msg, "model \"phi4-mini\" not found, try pulling it first");
    oai_result_free(&r);

    /* 404, vLLM's older envelope, and FastAPI's */
    const char *vllm = J("{'object':'error','message':'The model `phi` does not exist.',"
        "'type':'NotFoundError','param':null,'code':404}");
    CHECK(oai_error_message(vllm, strlen(vllm), msg, sizeof msg) == 0);
    CHECK_STR(msg, "The model `phi` does not exist.");
    rc = parse(vllm, 0, &r, msg);
    CHECK(rc == OAI_EUPSTREAM);
    CHECK_STR(msg, "The model `phi` does not exist.");
    oai_result_free(&r);
    CHECK(oai_error_message(LIT("{\"detail\":\"Not Found\"}"), msg, sizeof msg) == 0);
    CHECK_STR(msg, "Not Found");

    /* error objects without a message */
    CHECK(oai_error_message(LIT("{\"error\":{\"type\":\"overloaded_error\"}}"), msg,
                            sizeof msg) == 0);
    CHECK_STR(msg, "overloaded_error");
    CHECK(oai_error_message(LIT("{\"error\":{\"code\":503}}"), msg, sizeof msg) == 0);
    CHECK_STR(msg, "error code 503");
    rc = parse("{\"error\":{}}", 0, &r, msg);
    CHECK(rc == OAI_EUPSTREAM);
    CHECK_STR(msg, "upstream error without a message");
    oai_result_free(&r);
    rc = parse("{\"error\":null,\"choices\":[{\"message\":{\"content\":\"fine\"}}]}", 0, &r,
               msg);
    CHECK(rc == 0);
    CHECK_STR(r.content, "fine");
    oai_result_free(&r);

    /* not JSON: a printable prefix */
    const char *html = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
                       "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>"
                       "\r\n</body>\r\n</html>\r\n";
    CHECK(oai_error_message(html, strlen(html), msg, sizeof msg) == -1);
    CHECK_STR(msg, "<html> <head><title>502 Bad Gateway</title></head> <body> <center><h1>502 "
                   "Bad Gateway</h1></center> <hr><center>nginx</center> </body> </html>");
    CHECK(oai_error_message(LIT(""), msg, sizeof msg) == -1);
    CHECK_STR(msg, "(empty body)");
    CHECK(oai_error_message(NULL, 10, msg, sizeof msg) == -1);
    CHECK_STR(msg, "(empty body)");
    CHECK(oai_error_message(LIT(" \r\n"), msg, sizeof msg) == -1);
    CHECK_STR(msg, "(empty body)");
    CHECK(oai_error_message(LIT("\x01upstream\xff\x00x"), msg, sizeof msg) == -1);
    CHECK_STR(msg, "?upstream??x");
    CHECK(oai_error_message(LIT("{\"ok\":true}"), msg, sizeof msg) == -1);
    CHECK_STR(msg, "{\"ok\":true}");
    CHECK(oai_error_message(LIT("{\"error\":{\"message\":\"cut"), msg, sizeof msg) == -1);
    CHECK_STR(msg, "{\"error\":{\"message\":\"cut");

    /* msg bounds: truncation, UTF-8 boundaries, no buffer */
    CHECK(oai_error_message(LIT("{\"error\":\"abcdefghij\"}"), small, sizeof small) == 0);
    CHECK_STR(small, "abcdefg");
    CHECK(oai_error_message(LIT("{\"error\":\"h\xc3\xa9llo\"}"), small, 3) == 0);
    CHECK_STR(small, "h");
    CHECK(oai_error_message(LIT("{\"error\":\"h\xc3\xa9llo\"}"), small, 4) == 0);
    CHECK_STR(small, "h\xc3\xa9");
    CHECK(oai_error_message(LIT("Bad Gateway"), small, sizeof small) == -1);
    CHECK_STR(small, "Bad Gat");
    CHECK(oai_error_message(LIT("{\"error\":\"x\"}"), NULL, 0) == 0);
    CHECK(oai_error_message(LIT("nope"), NULL, 0) == -1);
}

/* ---------- streams ---------- */

#define OPENAI_CHUNK(delta, lp, fr) \
    "data: {'id':'chatcmpl-S1','object':'chat.completion.chunk','created':1764072010," \
    "'model':'gpt-4o-mini-2024-07-18','system_fingerprint':'fp_5','choices':[{'index':0," \
    "'delta':" delta ",'logprobs':" lp ",'finish_reason':" fr "}],'usage':null}\n\n"

static const char *openai_stream(void)
{
    return J(": keep-alive\n\n"
        OPENAI_CHUNK("{'role':'assistant','content':'','refusal':null}", "{'content':[],"
                     "'refusal':null}", "null")
        OPENAI_CHUNK("{'content':'Revenue'}", "{'content':[{'token':'Revenue','logprob':-0.5,"
                     "'bytes':[82],'top_logprobs':[]}]}", "null")
        OPENAI_CHUNK("{'content':' rose 12%.'}", "{'content':[{'token':' rose','logprob':"
                     "-0.25,'bytes':[32],'top_logprobs':[]},{'token':' 12%.','logprob':-2,"
                     "'bytes':[32],'top_logprobs':[]}]}", "null")
        OPENAI_CHUNK("{}", "null", "'stop'")
        "data: {'id':'chatcmpl-S1','object':'chat.completion.chunk','created':1764072010,"
        "'model':'gpt-4o-mini-2024-07-18','choices':[],'usage':{'prompt_tokens':57,"
        "'completion_tokens':4,'total_tokens':61}}\n\n"
        "data: [DONE]\n\n");
}

static void test_sse_openai(void)
{
    const char *s = openai_stream();
    struct run w, b;

    run_all_ways(s, 999, &w);
    CHECK(w.feed_rc == 0 && w.finish_rc == 0);
    CHECK_STR(w.finish_msg, "");
    CHECK_STR(w.r.content, "Revenue rose 12%.");
    CHECK(w.r.content_len == 17);
    CHECK_STR(w.r.finish_reason, "stop");
    CHECK_STR(w.r.model, "gpt-4o-mini-2024-07-18");
    CHECK(w.r.prompt_tokens == 57 && w.r.completion_tokens == 4 && w.r.usage_estimated == 0);
    CHECK(w.r.has_logprobs == 1);
    CHECK(w.r.n_logprobs == 3 && w.r.logprobs[0] == -0.5 && w.r.logprobs[1] == -0.25 &&
          w.r.logprobs[2] == -2.0);
    CHECK(w.signals == 1 && w.signal_at == strlen(s));
    oai_result_free(&w.r);

    /* byte by byte: the signal comes with the blank line ending the first content event */
    run_stream(s, strlen(s), BYTES, 0, 999, &b);
    {
        const char *tok = strstr(s, "\"Revenue\"");
        const char *end = tok ? strstr(tok, "\n\n") : NULL;
        CHECK(b.signals == 1);
        CHECK(end != NULL && b.signal_at == (size_t)(end - s) + 2);
    }
    oai_result_free(&b.r);
}

static void test_sse_vllm_and_llamacpp(void)
{
    const char *vllm = J(
        "data: {'id':'chatcmpl-v','object':'chat.completion.chunk','created':1,'model':"
        "'microsoft/Phi-4-mini-instruct','choices':[{'index':0,'delta':{'role':'assistant',"
        "'content':''},'logprobs':null,'finish_reason':null}]}\n\n"
        "data: {'id':'chatcmpl-v','object':'chat.completion.chunk','created':1,'model':"
        "'microsoft/Phi-4-mini-instruct','choices':[{'index':0,'delta':{'content':'Margins'},"
        "'logprobs':{'content':[{'token':'Margins','logprob':-0.125,'bytes':[77],"
        "'top_logprobs':[]}]},'finish_reason':null}]}\n\n"
        "data: {'id':'chatcmpl-v','object':'chat.completion.chunk','created':1,'model':"
        "'microsoft/Phi-4-mini-instruct','choices':[{'index':0,'delta':{'content':' held'},"
        "'logprobs':{'content':[{'token':' held','logprob':-1.5,'bytes':[32],"
        "'top_logprobs':[]}]},'finish_reason':'length','stop_reason':null}]}\n\n"
        "data: {'id':'chatcmpl-v','object':'chat.completion.chunk','created':1,'model':"
        "'microsoft/Phi-4-mini-instruct','choices':[],'usage':{'prompt_tokens':31,"
        "'total_tokens':33,'completion_tokens':2}}\n\n"
        "data: [DONE]\n\n");
    const char *llama = J(
        "data: {'choices':[{'finish_reason':null,'index':0,'delta':{'role':'assistant',"
        "'content':null}}],'created':2,'id':'chatcmpl-L','model':'phi-4-mini-q4.gguf',"
        "'system_fingerprint':'b6100','object':'chat.completion.chunk'}\n\n"
        "data: {'choices':[{'finish_reason':null,'index':0,'delta':{'content':'Costs'}}],"
        "'created':2,'id':'chatcmpl-L','model':'phi-4-mini-q4.gguf','object':"
        "'chat.completion.chunk'}\n\n"
        "data: {'choices':[{'finish_reason':null,'index':0,'delta':{'content':' flat.'}}],"
        "'created':2,'id':'chatcmpl-L','model':'phi-4-mini-q4.gguf','object':"
        "'chat.completion.chunk'}\n\n"
        "data: {'choices':[{'finish_reason':'stop','index':0,'delta':{}}],'created':2,'id':"
        "'chatcmpl-L','model':'phi-4-mini-q4.gguf','object':'chat.completion.chunk','usage':"
        "{'completion_tokens':3,'prompt_tokens':22,'total_tokens':25},'timings':"
        "{'prompt_n':22,'predicted_n':3}}\n\n"
        "data: [DONE]\n\n");
    struct run w;

    run_all_ways(vllm, 0, &w);
    CHECK(w.finish_rc == 0 && w.signals == 1);
    CHECK_STR(w.r.content, "Margins held");
    CHECK(w.r.truncated == 1);
    CHECK_STR(w.r.finish_reason, "length");
    CHECK(w.r.n_logprobs == 2 && w.r.logprobs[0] == -0.125 && w.r.logprobs[1] == -1.5);
    CHECK(w.r.prompt_tokens == 31 && w.r.completion_tokens == 2 && !w.r.usage_estimated);
    oai_result_free(&w.r);

    run_all_ways(llama, 0, &w);
    CHECK(w.finish_rc == 0 && w.signals == 1);
    CHECK_STR(w.r.content, "Costs flat.");
    CHECK_STR(w.r.model, "phi-4-mini-q4.gguf");
    CHECK(w.r.has_logprobs == 0 && w.r.n_logprobs == 0);
    CHECK(w.r.prompt_tokens == 22 && w.r.completion_tokens == 3 && !w.r.usage_estimated);
    oai_result_free(&w.r);
}

static void test_sse_ollama_no_usage(void)
{
    const char *s = J(
        "data: {'id':'chatcmpl-9','object':'chat.completion.chunk','created':3,'model':"
        "'phi4-mini:3.8b','system_fingerprint':'fp_ollama','choices':[{'index':0,'delta':"
        "{'role':'assistant','content':'Q3 '},'finish_reason':null}]}\n\n"
        "data: {'id':'chatcmpl-9','object':'chat.completion.chunk','created':3,'model':"
        "'phi4-mini:3.8b','system_fingerprint':'fp_ollama','choices':[{'index':0,'delta':"
        "{'role':'assistant','content':'was strong.'},'finish_reason':null}]}\n\n"
        "data: {'id':'chatcmpl-9','object':'chat.completion.chunk','created':3,'model':"
        "'phi4-mini:3.8b','system_fingerprint':'fp_ollama','choices':[{'index':0,'delta':"
        "{'role':'assistant','content':''},'finish_reason':'stop'}]}\n\n"
        "data: [DONE]\n\n");
    struct run w;

    run_all_ways(s, 401, &w);
    CHECK(w.finish_rc == 0 && w.signals == 1);
    CHECK_STR(w.r.content, "Q3 was strong.");
    CHECK(w.r.usage_estimated == 1 && w.r.prompt_tokens == 101 && w.r.completion_tokens == 4);
    CHECK(w.r.has_logprobs == 0);
    oai_result_free(&w.r);
}

static void test_sse_gptoss(void)
{
    const char *reasoning = J(
        "data: {'model':'openai/gpt-oss-20b','choices':[{'index':0,'delta':{'role':'assistant',"
        "'content':null,'reasoning_content':'We need'},'finish_reason':null}]}\n\n"
        "data: {'model':'openai/gpt-oss-20b','choices':[{'index':0,'delta':{'reasoning_content':"
        "' clarity.'},'finish_reason':null}]}\n\n"
        "data: {'model':'openai/gpt-oss-20b','choices':[{'index':0,'delta':{'content':"
        "'Clear brief.'},'finish_reason':null}]}\n\n"
        "data: {'model':'openai/gpt-oss-20b','choices':[{'index':0,'delta':{},"
        "'finish_reason':'stop'}]}\n\n"
        "data: [DONE]\n\n");
    const char *leak = J(
        "data: {'model':'gpt-oss-20b','choices':[{'delta':{'content':'<|channel|>'}}]}\n\n"
        "data: {'model':'gpt-oss-20b','choices':[{'delta':{'content':'analysis<|message|>'}}]}"
        "\n\n"
        "data: {'model':'gpt-oss-20b','choices':[{'delta':{'content':'Check facts.<|end|>'}}]}"
        "\n\n"
        "data: {'model':'gpt-oss-20b','choices':[{'delta':{'content':'<|start|>assistant"
        "<|channel|>final<|message|>'}}]}\n\n"
        "data: {'model':'gpt-oss-20b','choices':[{'delta':{'content':'Brief text.'}}]}\n\n"
        "data: {'model':'gpt-oss-20b','choices':[{'delta':{},'finish_reason':'stop'}]}\n\n"
        "data: [DONE]\n\n");
    struct run w;

    run_all_ways(reasoning, 0, &w);
    CHECK(w.finish_rc == 0 && w.signals == 1);
    CHECK_STR(w.r.content, "Clear brief.");
    CHECK(w.r.has_reasoning == 1 && w.r.reasoning_from != 0);
    CHECK(w.r.usage_estimated == 1 && w.r.completion_tokens == 7);  /* 12 + 7 + 9 bytes */
    oai_result_free(&w.r);

    run_all_ways(leak, 0, &w);
    CHECK(w.finish_rc == 0 && w.signals == 1);
    CHECK_STR(w.r.content, "Brief text.");
    CHECK(w.r.content_len == 11);
    CHECK(w.r.has_reasoning == 1 && w.r.reasoning_from == OAI_REASONING_HARMONY);
    CHECK(w.r.completion_tokens == oai_estimate_tokens(strlen(
        "<|channel|>analysis<|message|>Check facts.<|end|><|start|>assistant<|channel|>final"
        "<|message|>Brief text.")));
    oai_result_free(&w.r);
}

static void test_sse_endings(void)
{
    const char *content = "data: {'model':'m','choices':[{'delta':{'content':'Part'}}]}\n\n";
    const char *no_end = J(content);
    const char *fr_only = J("data: {'choices':[{'delta':{'content':'Done'},'finish_reason':"
                            "'stop'}]}\n\n");
    const char *no_blank = J("data: {'choices':[{'delta':{'content':'A'},'finish_reason':"
                             "null}]}\n\ndata: [DONE]");
    const char *no_blank2 = J("data: {'choices':[{'delta':{'content':'B'},'finish_reason':"
                              "'stop'}]}\n");
    const char *cut = J("data: {'choices':[{'delta':{'content':'C'}}]}\n\ndata: {'choi");
    struct run w;

    run_all_ways(no_end, 0, &w);
    CHECK(w.feed_rc == 0 && w.finish_rc == OAI_EPARSE);
    CHECK_STR(w.finish_msg, "stream ended early: no [DONE] and no finish_reason");
    CHECK_STR(w.r.content, "Part");  /* still handed over */
    CHECK_STR(w.r.model, "m");
    CHECK(w.r.usage_estimated == 1 && w.r.completion_tokens == 1);
    oai_result_free(&w.r);

    run_all_ways(fr_only, 0, &w);
    CHECK(w.finish_rc == 0);
    CHECK_STR(w.r.content, "Done");
    oai_result_free(&w.r);

    run_all_ways(no_blank, 0, &w);
    CHECK(w.finish_rc == 0);
    CHECK_STR(w.r.content, "A");
    oai_result_free(&w.r);

    run_all_ways(no_blank2, 0, &w);
    CHECK(w.finish_rc == 0 && w.signals == 0);  /* the event is only dispatched at finish */
    CHECK_STR(w.r.content, "B");
    CHECK_STR(w.r.finish_reason, "stop");
    oai_result_free(&w.r);

    run_all_ways(cut, 0, &w);
    CHECK(w.finish_rc == OAI_EPARSE);
    CHECK_STR(w.finish_msg, "stream chunk is not valid JSON: {\"choi");
    CHECK_STR(w.r.content, "C");
    oai_result_free(&w.r);

    run_all_ways("", 0, &w);
    CHECK(w.finish_rc == OAI_EPARSE);
    CHECK_STR(w.r.content, "");
    oai_result_free(&w.r);
}

static void test_sse_errors(void)
{
    const char *mid = J(
        "data: {'choices':[{'delta':{'content':'Partial'}}]}\n\n"
        "event: error\n"
        "data: {'error':{'message':'upstream overloaded, retry later','type':'server_error',"
        "'code':503}}\n\n"
        "data: {'choices':[{'delta':{'content':' never'}}]}\n\n"
        "data: [DONE]\n\n");
    const char *garbage = J("data: {'choices':[{'delta':{'content':'x'}}]}\n\n"
                            "data: <html>oops</html>\n\ndata: [DONE]\n\n");
    struct oai_sse s;
    struct run w;
    char msg[128];
    int rc;

    run_stream(mid, strlen(mid), BYTES, 0, 0, &w);
    CHECK(w.signals == 1 && w.feed_rc == OAI_EUPSTREAM);
    oai_result_free(&w.r);
    run_all_ways(mid, 0, &w);
    CHECK(w.signals == 0);  /* the failing feed also carried the first token */
    CHECK(w.feed_rc == OAI_EUPSTREAM);
    CHECK_STR(w.feed_msg, "upstream overloaded, retry later");
    CHECK(w.finish_rc == OAI_EUPSTREAM);
    CHECK_STR(w.r.content, "Partial");
    oai_result_free(&w.r);

    run_all_ways(garbage, 0, &w);
    CHECK(w.feed_rc == OAI_EPARSE);
    CHECK_STR(w.feed_msg, "stream chunk is not valid JSON: <html>oops</html>");
    oai_result_free(&w.r);

    /* a failure is sticky */
    oai_sse_init(&s, 0);
    rc = oai_sse_feed(&s, LIT("data: nope\n\n"), msg, sizeof msg);
    CHECK(rc == OAI_EPARSE);
    rc = oai_sse_feed(&s, LIT("data: [DONE]\n\n"), msg, sizeof msg);
    CHECK(rc == OAI_EPARSE);
    CHECK_STR(msg, "stream already failed");
    CHECK(s.done == 0);
    oai_sse_free(&s);
    oai_sse_free(&s);

    /* a JSON array as a chunk */
    oai_sse_init(&s, 0);
    rc = oai_sse_feed(&s, LIT("data: [1]\n\n"), msg, sizeof msg);
    CHECK(rc == OAI_EPARSE);
    CHECK_STR(msg, "stream chunk is not a JSON object");
    oai_sse_free(&s);

    /* wrong content type inside a delta */
    oai_sse_init(&s, 0);
    rc = oai_sse_feed(&s, LIT("data: {\"choices\":[{\"delta\":{\"content\":1}}]}\n\n"), msg,
                      sizeof msg);
    CHECK(rc == OAI_EPARSE);
    oai_sse_free(&s);
}

static void test_sse_fields(void)
{
    const char *s = J(
        ": this is a comment\n"
        "retry: 3000\n"
        "id: 17\n"
        "event: message\n"
        "data:{'choices':[{'delta':{'content':'no space'}}]}\n"
        "unknownfield\n"
        "\n"
        "data: {'choices':[{'delta':\n"
        "data: {'content':' joined'}}]}\n"
        "\n"
        "data\n"
        "\n"
        "data:  {'choices':[{'delta':{'content':' two spaces'},'finish_reason':'stop'}]}\n"
        "\n\n\n"
        "data: [DONE]\n\n"
        "data: {'choices':[{'delta':{'content':' after done'}}]}\n\n"
        "data: not json after done\n\n");
    struct run w;

    run_all_ways(s, 0, &w);
    CHECK(w.feed_rc == 0 && w.finish_rc == 0 && w.signals == 1);
    CHECK_STR(w.r.content, "no space joined two spaces");
    oai_result_free(&w.r);

    /* data lines are joined with "\n" (cJSON keeps a raw newline inside a string) */
    s = J("data: {'choices':[{'delta':{'content':'two\ndata: lines'},'finish_reason':'stop'}]}"
          "\n\n");
    run_all_ways(s, 0, &w);
    CHECK(w.finish_rc == 0);
    CHECK_STR(w.r.content, "two\nlines");
    oai_result_free(&w.r);
}

static void test_sse_first_token_once(void)
{
    const char *s = J(
        "data: {'choices':[{'delta':{'role':'assistant'}}]}\n\n"
        "data: {'choices':[{'delta':{'content':''}}]}\n\n"
        "data: {'choices':[{'delta':{'content':null,'reasoning':'hmm'}}]}\n\n"
        "data: {'choices':[{'delta':{'content':'A'}}]}\n\n"
        "data: {'choices':[{'delta':{'content':'B'}}]}\n\n"
        "data: {'choices':[{'delta':{'content':'C'},'finish_reason':'stop'}]}\n\n");
    struct oai_sse sse;
    char msg[64];
    size_t split;
    int rcs[3];

    /* three feeds: before the A event, the A event, the rest */
    split = (size_t)(strstr(s, "{\"content\":\"A\"") - s);
    oai_sse_init(&sse, 0);
    rcs[0] = oai_sse_feed(&sse, s, split, msg, sizeof msg);
    rcs[1] = oai_sse_feed(&sse, s + split, 40, msg, sizeof msg);
    rcs[2] = oai_sse_feed(&sse, s + split + 40, strlen(s) - split - 40, msg, sizeof msg);
    CHECK(rcs[0] == 0 && rcs[1] == 1 && rcs[2] == 0);
    CHECK(sse.got_token == 1);
    CHECK(oai_sse_feed(&sse, "", 0, msg, sizeof msg) == 0);
    CHECK(oai_sse_feed(&sse, NULL, 5, msg, sizeof msg) == 0);
    oai_sse_free(&sse);
}

static void test_sse_bounds(void)
{
    size_t n = OAI_SSE_MAX_LINE + 1, i;
    char *big = malloc(n + 16);
    struct oai_sse s;
    struct oai_result r;
    char msg[128], chunk[600];
    int rc = 0;

    memcpy(big, "data: ", 6);
    memset(big + 6, 'x', n - 6);
    oai_sse_init(&s, 0);
    rc = oai_sse_feed(&s, big, n, msg, sizeof msg);  /* no newline yet */
    CHECK(rc == OAI_ETOOBIG);
    oai_sse_free(&s);

    big[n] = '\n';
    oai_sse_init(&s, 0);
    rc = oai_sse_feed(&s, big, n + 1, msg, sizeof msg);  /* whole line in one feed */
    CHECK(rc == OAI_ETOOBIG);
    CHECK_STR(msg, "stream line exceeds 2097152 bytes");
    oai_sse_free(&s);

    oai_sse_init(&s, 0);
    rc = oai_sse_feed(&s, big, n - 1, msg, sizeof msg);  /* exactly the bound: fine */
    CHECK(rc == 0);
    rc = oai_sse_feed(&s, "\n", 1, msg, sizeof msg);
    CHECK(rc == 0);
    oai_sse_free(&s);
    free(big);

    /* content bound across many chunks */
    {
        char text[513];
        memset(text, 'y', 512);
        text[512] = '\0';
        snprintf(chunk, sizeof chunk, "data: {\"choices\":[{\"delta\":{\"content\":\"%s\"}}]}"
                 "\n\n", text);
    }
    oai_sse_init(&s, 0);
    for (i = 0; i < OAI_MAX_CONTENT_BYTES / 512 && rc == 0; i++)
        rc = oai_sse_feed(&s, chunk, strlen(chunk), msg, sizeof msg) < 0 ? -1 : 0;
    CHECK(rc == 0 && s.acc.content_len == OAI_MAX_CONTENT_BYTES);
    rc = oai_sse_feed(&s, chunk, strlen(chunk), msg, sizeof msg);
    CHECK(rc == OAI_ETOOBIG);
    CHECK_STR(msg, "content exceeds 1048576 bytes");
    rc = oai_sse_finish(&s, &r, msg, sizeof msg);
    CHECK(rc == OAI_ETOOBIG);
    CHECK(r.content_len == OAI_MAX_CONTENT_BYTES);
    oai_result_free(&r);
    oai_sse_free(&s);
}

/* ---- what a stream shows while it runs (oai_sse_visible) ---- */

/* Feed pieces[] as content deltas, one event each; after each, the visible text must be
 * want[i]; at the end, the final content must start with the last visible text. */
static void visible_case(const char *const *pieces, const char *const *want, size_t n,
                         const char *final)
{
    struct oai_sse s;
    struct oai_result r;
    char msg[200], ev[512];
    const char *text;
    size_t len;

    oai_sse_init(&s, 10);
    for (size_t i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject(), *ch = cJSON_AddArrayToObject(o, "choices");
        cJSON *c0 = cJSON_CreateObject(), *d = cJSON_AddObjectToObject(c0, "delta");
        char *js;
        cJSON_AddStringToObject(d, "content", pieces[i]);
        cJSON_AddItemToArray(ch, c0);
        js = cJSON_PrintUnformatted(o);
        snprintf(ev, sizeof ev, "data: %s\n\n", js);
        free(js);
        cJSON_Delete(o);
        CHECK(oai_sse_feed(&s, ev, strlen(ev), msg, sizeof msg) >= 0);
        len = oai_sse_visible(&s, &text);
        if (!(len == strlen(want[i]) && memcmp(text, want[i], len) == 0)) {
            fprintf(stderr, "  after piece %zu: visible '%.*s', expected '%s'\n", i, (int)len,
                    text, want[i]);
            CHECK(0);
        }
    }
    snprintf(ev, sizeof ev, "data: [DONE]\n\n");
    CHECK(oai_sse_feed(&s, ev, strlen(ev), msg, sizeof msg) == 0);
    CHECK(oai_sse_finish(&s, &r, msg, sizeof msg) == 0);
    CHECK_STR(r.content, final);
    CHECK(strncmp(r.content, want[n - 1], strlen(want[n - 1])) == 0);
    oai_result_free(&r);
}

static void test_sse_visible(void)
{
    static const char *const plain[] = {"Hello", " world", " a <", "|b"};
    static const char *const plain_w[] = {"Hello", "Hello world", "Hello world a ",
                                          "Hello world a <|b"};
    static const char *const harmony[] = {
        "<|channel|>analysis<|message|>think", "<|end|><|start|>assistant<|channel|>final",
        "<|message|>", " Brief", " text.", " <|", "return|>"};
    static const char *const harmony_w[] = {"", "", "", "Brief", "Brief text.", "Brief text.",
                                            "Brief text."};
    static const char *const stripped[] = {"ana", "lysis", "We think.", "assistantfinal",
                                           " Brief.", " More "};
    static const char *const stripped_w[] = {"", "", "", "", "Brief.", "Brief. More"};
    static const char *const lt[] = {"<", "|channel|>final<|message|>X"};
    static const char *const lt_w[] = {"", "X"};
    static const char *const analog[] = {"ana", "log of it", " Analysis"};
    static const char *const analog_w[] = {"", "analog of it", "analog of it Analysis"};
    static const char *const cap[] = {"Analysis shows"};
    static const char *const cap_w[] = {"Analysis shows"};

    visible_case(plain, plain_w, 4, "Hello world a <|b");
    visible_case(harmony, harmony_w, 7, "Brief text.");
    visible_case(stripped, stripped_w, 6, "Brief. More");
    visible_case(lt, lt_w, 2, "X");
    visible_case(analog, analog_w, 3, "analog of it Analysis");
    visible_case(cap, cap_w, 1, "Analysis shows");
}

/* Logprobs read without a cJSON tree (oai.c lifts choices[0].logprobs.content): the same
 * numbers as the tree would give, whatever the shape; odd shapes fall back to the tree. */
static void lifted_case(const char *content_array, size_t want_n, const double *want,
                        const char *what)
{
    struct oai_result r;
    char msg[256], *body;
    size_t n = strlen(content_array) + 400;
    body = malloc(n);
    snprintf(body, n, "{\"choices\": [ {\"index\":0, \"message\": {\"role\":\"assistant\","
             "\"content\":\"Brief.\"},\n \"logprobs\" : { \"content\" : %s },"
             "\"finish_reason\":\"stop\"}], \"usage\":{\"prompt_tokens\":5,"
             "\"completion_tokens\":2}}", content_array);
    CHECK(parse(body, 10, &r, msg) == 0);
    if (r.n_logprobs != want_n)
        fprintf(stderr, "  %s: %zu logprobs, expected %zu\n", what, r.n_logprobs, want_n);
    CHECK(r.has_logprobs == 1 && r.n_logprobs == want_n);
    for (size_t i = 0; i < want_n && i < r.n_logprobs; i++)
        CHECK(r.logprobs[i] == want[i]);
    CHECK_STR(r.content, "Brief.");
    CHECK(r.prompt_tokens == 5 && r.completion_tokens == 2);
    oai_result_free(&r);
    free(body);
}

static void test_logprobs_lifted(void)
{
    static const double three[] = {-0.25, -1e-05, -3};
    static const double two[] = {-0.25, -3};
    static const double one[] = {-0.5};
    struct sbuf b = {0};
    char *big;
    double *want;

    lifted_case("[{\"token\":\"A\",\"logprob\":-0.25,\"bytes\":[65],\"top_logprobs\":[]},"
                " {\"token\":\"\\u00e9\\\"}\",\"logprob\":-1e-05,\"bytes\":[195,169],"
                "\"top_logprobs\":[{\"token\":\"x\",\"logprob\":-9}]} ,"
                "{\"logprob\":-3,\"logprob\":-4,\"token\":\"]}\"}]", 3, three, "standard");
    lifted_case("[{\"token\":\"A\",\"logprob\":-0.25,\"bytes\":[65]}, 7, null,"
                " {\"token\":\"B\",\"logprob\":null}, {\"token\":\"C\",\"logprob\":\"-1\"},"
                " {\"token\":\"D\",\"logprob\":-3}]", 2, two, "odd elements");
    /* a member name written with escapes: the tree decodes it as "logprob" */
    lifted_case("[{\"token\":\"A\",\"log\\u0070rob\":-0.5,\"bytes\":[65,66,67,68,69,70]}]", 1,
                one, "escaped name");
    /* bytes that are not UTF-8 in a token (a partial character): the tree reads it */
    lifted_case("[{\"token\":\"\xc3\",\"logprob\":-0.5,\"bytes\":[195],\"top_logprobs\":[]}]",
                1, one, "partial UTF-8");
    /* the shape servers write (the fast matcher), with bytes arrays, null and top_logprobs */
    lifted_case("[{\"token\":\"A\",\"logprob\":-0.25,\"bytes\":[65],\"top_logprobs\":[]},"
                "{\"token\":\"\\u00e9\\\"}\",\"logprob\":-1e-05,\"bytes\":null,\"top_logprobs\":"
                "[{\"token\":\"x\",\"logprob\":-9,\"bytes\":[120]}]},"
                "{\"token\":\"]}\",\"logprob\":-3,\"bytes\":[93,125],\"top_logprobs\":[]}]",
                3, three, "compact");
    /* that shape with something jsonv refuses inside (a raw control character, a number
     * with a leading zero): the matcher and jsonv refuse, the tree reads */
    lifted_case("[{\"token\":\"A\",\"logprob\":-0.25,\"bytes\":[65],\"top_logprobs\":[]},"
                "{\"token\":\"\x01\",\"logprob\":-3,\"bytes\":null,\"top_logprobs\":[]}]",
                2, two, "control character");
    lifted_case("[{\"token\":\"A\",\"logprob\":-0.25,\"bytes\":[65, 66],\"top_logprobs\":[]},"
                "{\"token\":\"B\",\"logprob\":-3,\"bytes\":[066],\"top_logprobs\":[]}]",
                2, two, "bad bytes");
    {   /* a trailing comma in bytes: not JSON, and the tree says so too */
        struct oai_result r;
        char msg[256];
        const char *body = "{\"choices\":[{\"message\":{\"content\":\"B.\"},\"logprobs\":"
                           "{\"content\":[{\"token\":\"A\",\"logprob\":-0.25,\"bytes\":[65,],"
                           "\"top_logprobs\":[]},{\"token\":\"B\",\"logprob\":-3,\"bytes\":null,"
                           "\"top_logprobs\":[]}]}}]}";
        CHECK(parse(body, 10, &r, msg) == OAI_EPARSE);
        oai_result_free(&r);
        /* nor is a byte that is no number (the matcher must not step over it) */
        body = "{\"choices\":[{\"message\":{\"content\":\"B.\"},\"logprobs\":{\"content\":["
               "{\"token\":\"A\",\"logprob\":-0.25,\"bytes\":[x],\"top_logprobs\":[]},"
               "{\"token\":\"B\",\"logprob\":-3,\"bytes\":null,\"top_logprobs\":[]}]}}]}";
        CHECK(parse(body, 10, &r, msg) == OAI_EPARSE);
        oai_result_free(&r);
    }
    /* past OAI_MAX_LOGPROBS the first ones are kept */
    want = malloc(sizeof(double) * OAI_MAX_LOGPROBS);
    sbuf_addc(&b, '[');
    for (int i = 0; i < OAI_MAX_LOGPROBS + 10; i++) {
        sbuf_printf(&b, "%s{\"token\":\"t\",\"logprob\":-%d.5}", i ? "," : "", i % 7);
        if (i < OAI_MAX_LOGPROBS)
            want[i] = -(i % 7) - 0.5;
    }
    sbuf_addc(&b, ']');
    big = sbuf_take(&b);
    lifted_case(big, OAI_MAX_LOGPROBS, want, "over the cap");
    free(big);
    free(want);
}

int main(void)
{
    test_estimate();
    test_harmony_final();
    test_build_request();
    test_openai();
    test_vllm_logprobs();
    test_llamacpp();
    test_ollama();
    test_foundry_local_no_usage();
    test_gptoss_reasoning();
    test_harmony_leak();
    test_shapes();
    test_logprob_cap();
    test_bounds();
    test_parse_errors();
    test_error_bodies();
    test_sse_openai();
    test_sse_vllm_and_llamacpp();
    test_sse_ollama_no_usage();
    test_sse_gptoss();
    test_sse_endings();
    test_sse_errors();
    test_sse_fields();
    test_sse_first_token_once();
    test_sse_bounds();
    test_sse_visible();
    test_logprobs_lifted();
    free_pool();
    return tcheck_summary("test_oai");
}
