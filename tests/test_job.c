/* test_job.c - job request validation, ids, timestamps and prompt rendering. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "acct.h"
#include "config.h"
#include "facade.h"
#include "job.h"
#include "jsonx.h"
#include "sbuf.h"
#include "store.h"
#include "tcheck.h"

static int parse(const char *body, struct job_req *r, struct job_verr *e)
{
    return job_req_parse(body, strlen(body), 1000, r, e);
}

static void expect_err(const char *body, int status, const char *code, const char *param)
{
    struct job_req r;
    struct job_verr e;
    int rc;
    memset(&e, 0, sizeof(e));
    rc = parse(body, &r, &e);
    CHECK(rc == -1);
    if (rc == 0) { /* accepted: say what was kept */
        fprintf(stderr, "  accepted: %.60s -> text \"%.40s\"\n", body, r.text);
        job_req_free(&r);
    }
    CHECK(e.status == status);
    CHECK_STR(e.code, code);
    CHECK_STR(e.param, param);
    CHECK(e.msg[0] != '\0');
    CHECK(r.text == NULL); /* nothing left allocated */
}

static void test_valid(void)
{
    struct job_req r;
    struct job_verr e;
    const char *body = "{\"text\":\"Hello world\",\"instructions\":\"be brief\",\"max_words\":50,"
                       "\"topic_flags\":[\"legal\",\"exec\"],\"priority\":\"high\","
                       "\"metadata\":{\"source\":\"crm\",\"tenant\":\"acme\"},"
                       "\"callback_url\":\"https://example.test/hook\"}";
    CHECK(parse(body, &r, &e) == 0);
    CHECK_STR(r.text, "Hello world");
    CHECK(r.text_len == 11);
    CHECK_STR(r.instructions, "be brief");
    CHECK(r.max_words == 50);
    CHECK(r.n_topic_flags == 2);
    CHECK_STR(r.topic_flags[1], "exec");
    CHECK(r.priority == PRIO_HIGH);
    CHECK_STR(job_req_meta(&r, "tenant"), "acme");
    CHECK(job_req_meta(&r, "nope") == NULL);
    CHECK_STR(r.callback_url, "https://example.test/hook");

    /* round trip through the stored form */
    cJSON *j = job_req_to_json(&r);
    char *s = cJSON_PrintUnformatted(j);
    struct job_req back;
    CHECK(job_req_from_json(s, strlen(s), &back) == 0);
    CHECK_STR(back.text, r.text);
    CHECK(back.max_words == 50);
    CHECK(back.priority == PRIO_HIGH);
    CHECK(back.n_topic_flags == 2);
    job_req_free(&back);
    free(s);
    cJSON_Delete(j);
    job_req_free(&r);
    CHECK(r.text == NULL);

    CHECK(parse("{\"text\":\"x\"}", &r, &e) == 0);
    CHECK(r.max_words == JOB_DEFAULT_MAX_WORDS);
    CHECK(r.priority == PRIO_NORMAL);
    CHECK(r.instructions == NULL && r.metadata == NULL && r.callback_url == NULL);
    job_req_free(&r);
}

static void test_errors(void)
{
    char big[1100];
    expect_err("", 400, "invalid_json", "");
    expect_err("{", 400, "invalid_json", "");
    expect_err("\"text\"", 400, "invalid_json", "");
    expect_err("{}", 400, "text_required", "text");
    expect_err("{\"text\":\"\"}", 400, "text_required", "text");
    expect_err("{\"text\":null}", 400, "invalid_type", "text");
    expect_err("{\"text\":\"\\t \\n\"}", 400, "text_required", "text");
    expect_err("{\"text\":[]}", 400, "invalid_type", "text");
    memset(big, 'a', sizeof(big));
    memcpy(big, "{\"text\":\"", 9);
    memcpy(big + sizeof(big) - 3, "\"}", 3);
    expect_err(big, 413, "text_too_large", "text");
    expect_err("{\"text\":\"\xc3\x28\"}", 400, "invalid_utf8", "text");
    expect_err("{\"text\":\"\xed\xa0\x80\"}", 400, "invalid_utf8", "text"); /* surrogate */
    expect_err("{\"text\":\"\xc0\xaf\"}", 400, "invalid_utf8", "text");     /* overlong */
    expect_err("{\"text\":\"x\",\"max_words\":9}", 422, "invalid_value", "max_words");
    expect_err("{\"text\":\"x\",\"max_words\":2001}", 422, "invalid_value", "max_words");
    expect_err("{\"text\":\"x\",\"max_words\":1e300}", 422, "invalid_value", "max_words");
    expect_err("{\"text\":\"x\",\"max_words\":10.5}", 400, "invalid_type", "max_words");
    expect_err("{\"text\":\"x\",\"topic_flags\":[\"\"]}", 422, "invalid_value", "topic_flags[0]");
    expect_err("{\"text\":\"x\",\"topic_flags\":[\"a\",2]}", 400, "invalid_type", "topic_flags[1]");
    expect_err("{\"text\":\"x\",\"priority\":\"HIGH\"}", 422, "invalid_value", "priority");
    expect_err("{\"text\":\"x\",\"metadata\":{\"a\":{}}}", 400, "invalid_type", "metadata.a");
    expect_err("{\"text\":\"x\",\"callback_url\":\"javascript:alert(1)\"}", 422, "invalid_value",
               "callback_url");
    expect_err("{\"text\":\"x\",\"callback_url\":\"http://a@b@example.test/\"}", 422,
               "invalid_value", "callback_url");
    expect_err("{\"text\":\"x\",\"callback_url\":\"http://[127.0.0.1]/hook\"}", 422,
               "invalid_value", "callback_url");
    expect_err("{\"text\":\"x\",\"callback_url\":\"http://example.test:0/hook\"}", 422,
               "invalid_value", "callback_url");
    expect_err("{\"text\":\"x\",\"extra\":1}", 400, "unknown_parameter", "extra");
    expect_err("{\"text\":\"x\",\"max_words\":50,\"text\":\"y\"}", 400, "duplicate_parameter",
               "text");
    expect_err("{\"text\":\"x\",\"metadata\":{\"a\":\"1\",\"b\":\"2\",\"a\":\"3\"}}", 400,
               "duplicate_parameter", "metadata.a");

    /* valid multi-byte UTF-8 passes */
    struct job_req r;
    struct job_verr e;
    CHECK(parse("{\"text\":\"Gr\xc3\xbc\xc3\x9f \xe2\x82\xac \xf0\x9f\x98\x80\"}", &r, &e) == 0);
    job_req_free(&r);
}

/* Strict JSON (RFC 8259) before cJSON: nothing is cut at a \u0000, nothing follows the
 * value, no raw control characters, no lone surrogates, no invalid UTF-8 anywhere. */
static void expect_err_len(const char *body, size_t len, int status, const char *code,
                           const char *param)
{
    struct job_req r;
    struct job_verr e;
    int rc;
    memset(&e, 0, sizeof(e));
    rc = job_req_parse(body, len, 1000, &r, &e);
    CHECK(rc == -1);
    if (rc == 0)
        job_req_free(&r);
    CHECK(e.status == status);
    CHECK_STR(e.code, code);
    CHECK_STR(e.param, param);
    CHECK(r.text == NULL);
}

static void test_strict_json(void)
{
    static const char raw_nul[] = "{\"text\":\"a\0b\"}";
    struct job_req r;
    struct job_verr e;

    /* \u0000 in any string: 400 invalid_value naming the field, never a cut string */
    expect_err("{\"text\":\"Revenue rose 10%.\\u0000 SECRET TAIL\"}", 400, "invalid_value",
               "text");
    expect_err("{\"text\":\"x\",\"instructions\":\"a\\u0000\"}", 400, "invalid_value",
               "instructions");
    expect_err("{\"text\":\"x\",\"topic_flags\":[\"a\",\"b\\u0000c\"]}", 400, "invalid_value",
               "topic_flags[1]");
    expect_err("{\"text\":\"x\",\"metadata\":{\"k\":\"v\\u0000w\"}}", 400, "invalid_value",
               "metadata.k");
    expect_err("{\"text\":\"x\",\"metadata\":{\"a\\u0000b\":\"v\"}}", 400, "invalid_value",
               "metadata.a\\u0000b");
    expect_err("{\"text\":\"x\",\"callback_url\":\"https://a.example/\\u0000\"}", 400,
               "invalid_value", "callback_url");
    expect_err("{\"te\\u0078t\":\"\\u0000\"}", 400, "invalid_value", "text");
    expect_err("{\"text\":\"x\",\"priority\":\"high\\u0000\"}", 400, "invalid_value",
               "priority");
    /* data after the value */
    expect_err("{\"text\":\"x\"} garbage", 400, "invalid_json", "");
    expect_err("{\"text\":\"x\"}{\"text\":\"y\"}", 400, "invalid_json", "");
    expect_err("{\"text\":\"x\"},", 400, "invalid_json", "");
    CHECK(parse("{\"text\":\"x\"} \r\n\t", &r, &e) == 0);
    job_req_free(&r);
    /* raw control characters inside strings */
    expect_err("{\"text\":\"a\x01z\"}", 400, "invalid_json", "");
    expect_err("{\"text\":\"tab\there\"}", 400, "invalid_json", "");
    expect_err("{\"text\":\"line\nbreak\"}", 400, "invalid_json", "");
    expect_err("{\"text\":\"x\",\"metadata\":{\"k\":\"\x1f\"}}", 400, "invalid_json", "");
    expect_err_len(raw_nul, sizeof raw_nul - 1, 400, "invalid_json", "");
    /* lone surrogates and invalid UTF-8, wherever they are */
    expect_err("{\"text\":\"a\\ud800\"}", 400, "invalid_utf8", "text");
    expect_err("{\"text\":\"a\\udc00b\"}", 400, "invalid_utf8", "text");
    expect_err("{\"text\":\"a\\ud800\\u0041\"}", 400, "invalid_utf8", "text");
    expect_err("{\"text\":\"x\",\"metadata\":{\"k\":\"\\udfff\"}}", 400, "invalid_utf8",
               "metadata.k");
    expect_err("{\"text\":\"x\",\"metadata\":{\"k\":\"\xff\"}}", 400, "invalid_utf8",
               "metadata.k");
    expect_err("{\"text\":\"x\",\"instructions\":\"\xc0\xaf\"}", 400, "invalid_utf8",
               "instructions");
    /* strict numbers and literals */
    expect_err("{\"text\":\"x\",\"max_words\":012}", 400, "invalid_json", "");
    expect_err("{\"text\":\"x\",\"max_words\":12.}", 400, "invalid_json", "");
    expect_err("{\"text\":\"x\",\"max_words\":+12}", 400, "invalid_json", "");
    expect_err("{\"text\":\"x\",\"instructions\":nul}", 400, "invalid_json", "");
    /* what stays valid: escapes of every kind, a surrogate pair, numbers with exponents */
    CHECK(parse("{\"text\":\"\\ud83d\\ude00 \\u00e9\\t\\\"\\\\\\/\\b\\f\\n\\r\","
                "\"max_words\":1.2e2}", &r, &e) == 0);
    CHECK(r.text && strcmp(r.text, "\xf0\x9f\x98\x80 \xc3\xa9\t\"\\/\b\f\n\r") == 0);
    CHECK(r.max_words == 120);
    job_req_free(&r);
}

/* An error's param is printable ASCII even for a name that is not: the envelope must stay
 * valid UTF-8 when the name is cut at 64 bytes. */
static void test_param_printable(void)
{
    char body[400];
    struct job_req r;
    struct job_verr e;
    int n = snprintf(body, sizeof body, "{\"text\":\"x\",\"a");
    for (int i = 0; i < 40; i++)
        n += snprintf(body + n, sizeof body - (size_t)n, "\xc3\xa9");
    snprintf(body + n, sizeof body - (size_t)n, "\":1}");
    CHECK(parse(body, &r, &e) == -1);
    CHECK_STR(e.code, "unknown_parameter");
    for (const char *p = e.param; *p; p++)
        CHECK(*p >= 0x20 && *p < 0x7f);
    for (const char *p = e.msg; *p; p++)
        CHECK((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f);
}

/* The HTTP body bound admits every field at its bound with every byte escaped (\u00XX:
 * 6 bytes a byte), and job_req_parse accepts that body. */
static void put_escaped(struct sbuf *b, size_t n, char c)
{
    for (size_t i = 0; i < n; i++)
        sbuf_printf(b, "\\u%04x", (unsigned char)c);
}

static void test_body_bound(void)
{
    struct sbuf b = {0};
    struct job_req r;
    struct job_verr e;
    char *body;
    size_t max = 3000;

    sbuf_adds(&b, "{\"text\":\"");
    put_escaped(&b, max, 'x');
    sbuf_adds(&b, "\",\"instructions\":\"");
    put_escaped(&b, JOB_MAX_INSTRUCTIONS, 'i');
    sbuf_adds(&b, "\",\"callback_url\":\"https://a.example/"); /* a host is <= 253 bytes */
    put_escaped(&b, JOB_MAX_URL - 18, 'u');
    sbuf_adds(&b, "\",\"topic_flags\":[");
    for (int f = 0; f < JOB_MAX_FLAGS; f++) {
        sbuf_adds(&b, f ? ",\"" : "\"");
        put_escaped(&b, JOB_MAX_FLAG_LEN - 1, 'f');
        sbuf_printf(&b, "%c\"", 'A' + f % 26);
    }
    sbuf_adds(&b, "],\"metadata\":{");
    for (int m = 0; m < JOB_MAX_META; m++) {
        sbuf_printf(&b, "%s\"%02d", m ? "," : "", m);
        put_escaped(&b, JOB_MAX_META_KEY - 2, 'k');
        sbuf_adds(&b, "\":\"");
        put_escaped(&b, JOB_MAX_META_VALUE, 'v');
        sbuf_adds(&b, "\"");
    }
    sbuf_adds(&b, "},\"max_words\":2000,\"priority\":\"normal\"}");
    body = sbuf_take(&b);
    CHECK(body && strlen(body) <= job_body_bound(max));
    CHECK(body && job_req_parse(body, strlen(body), max, &r, &e) == 0);
    if (r.text_len != max)
        fprintf(stderr, "  refused: %d %s %s: %s\n", e.status, e.code, e.param, e.msg);
    CHECK(r.text_len == max && r.n_topic_flags == JOB_MAX_FLAGS);
    job_req_free(&r);
    free(body);
    /* 6 bytes a byte of text, and never an overflow */
    CHECK(job_body_bound(262144) >= 6 * 262144);
    CHECK(job_body_bound(262145) - job_body_bound(262144) == 6);
    CHECK(job_body_bound((size_t)-1) == (size_t)-1);
}

static void test_ids(void)
{
    char a[JOB_ID_LEN + 1], b[JOB_ID_LEN + 1];
    job_new_id(a, 1764072000123LL);
    job_new_id(b, 1764072000124LL);
    CHECK(strlen(a) == JOB_ID_LEN);
    CHECK(strncmp(a, "job_", 4) == 0);
    CHECK(job_id_valid(a));
    CHECK(job_id_valid(b));
    CHECK(strcmp(a, b) < 0); /* sortable by time */
    CHECK(!job_id_valid("job_../../../etc/passwd"));
    CHECK(!job_id_valid("job_01M899CZYDCP5YQKTPHM9B7QD"));   /* one short */
    CHECK(!job_id_valid("job_01M899CZYDCP5YQKTPHM9B7QDI"));  /* I is not Crockford */
    CHECK(!job_id_valid(NULL));
    CHECK(!job_id_valid("job_81M899CZYDCP5YQKTPHM9B7QDZ")); /* more than 48 bits of time */
    CHECK(job_id_ms(a) == 1764072000123LL);
    {
        /* the random part comes from a pool that getrandom refills every 32 ids: 100 ids of
         * one millisecond, across three refills, all valid and all different */
        static char many[100][JOB_ID_LEN + 1];
        int dup = 0;
        for (int i = 0; i < 100; i++) {
            job_new_id(many[i], 1764072000125LL);
            CHECK(job_id_valid(many[i]));
            for (int k = 0; k < i; k++)
                dup += strcmp(many[i], many[k]) == 0;
        }
        CHECK(dup == 0);
    }
}

/* A queued job's id encodes its first entry: both ways, and nothing else decodes. */
static void test_entry_ids(void)
{
    char id[JOB_ID_LEN + 1], id2[JOB_ID_LEN + 1], entry[48], direct[JOB_ID_LEN + 1];
    enum job_priority p;
    CHECK(job_id_of_entry(id, PRIO_HIGH, "1764072000123-7") == 0);
    CHECK(job_id_valid(id));
    CHECK(job_id_ms(id) == 1764072000123LL);
    CHECK(job_entry_of_id(id, &p, entry, sizeof(entry)) == 0);
    CHECK(p == PRIO_HIGH);
    CHECK_STR(entry, "1764072000123-7");
    CHECK(job_id_of_entry(id2, PRIO_HIGH, "1764072000123-7") == 0);
    CHECK_STR(id, id2); /* deterministic: the worker derives the id the API answered */
    CHECK(job_id_of_entry(id2, PRIO_LOW, "1764072000123-7") == 0);
    CHECK(strcmp(id, id2) != 0);
    CHECK(job_id_of_entry(id2, PRIO_NORMAL, "1764072000123-1099511627775") == 0); /* 2^40-1 */
    CHECK(job_entry_of_id(id2, &p, entry, sizeof(entry)) == 0);
    CHECK_STR(entry, "1764072000123-1099511627775");
    CHECK(job_id_of_entry(id2, PRIO_NORMAL, "1764072000123-1099511627776") == -1);
    CHECK(job_id_of_entry(id2, PRIO_NORMAL, "x-1") == -1);
    CHECK(job_id_of_entry(id2, PRIO_NORMAL, "12") == -1);
    /* one character changed: the check bits refuse it */
    id[20] = id[20] == 'A' ? 'B' : 'A';
    CHECK(job_entry_of_id(id, &p, entry, sizeof(entry)) == -1);
    /* an id that never was queued decodes to nothing */
    job_new_id(direct, 1764072000123LL);
    CHECK(job_entry_of_id(direct, &p, entry, sizeof(entry)) == -1);
    CHECK(job_id_ms(direct) == 1764072000123LL);
}

static void test_time(void)
{
    char ts[40];
    clock_iso8601(1764072000123LL, ts, sizeof(ts));
    CHECK_STR(ts, "2025-11-25T12:00:00.123Z");
    clock_iso8601(0, ts, sizeof(ts));
    CHECK_STR(ts, "1970-01-01T00:00:00.000Z");
}

static void test_prompt(void)
{
    struct job_req r;
    struct job_verr e;
    char *p;
    CHECK(parse("{\"text\":\"DOC {draft}\",\"max_words\":42,\"instructions\":\"risks\"}", &r,
                &e) == 0);
    p = job_render_prompt("At most {max_words} words.{instructions}\n{text}\n[{draft}] {x", &r,
                          "DRAFT");
    CHECK_STR(p, "At most 42 words.\n\nInstructions: risks\nDOC {draft}\n[DRAFT] {x");
    free(p);
    free(r.instructions);
    r.instructions = NULL;
    p = job_render_prompt("{instructions}{text}", &r, NULL);
    CHECK_STR(p, "DOC {draft}");
    free(p);
    job_req_free(&r);
}

static void test_job_object(void)
{
    cJSON *j = store_job_object("job_X", "succeeded", 1764072000123LL, 2,
                                "{\"priority\":\"low\",\"max_words\":50,\"metadata\":{}}",
                                cJSON_Parse("{\"result\":{\"brief\":\"b\"},\"error\":null}"),
                                1764072001000LL);
    char *s = cJSON_PrintUnformatted(j);
    CHECK_STR(s, "{\"id\":\"job_X\",\"object\":\"brief.job\",\"status\":\"succeeded\","
                 "\"created_at\":\"2025-11-25T12:00:00.123Z\","
                 "\"finished_at\":\"2025-11-25T12:00:01.000Z\",\"attempts\":2,"
                 "\"priority\":\"low\",\"max_words\":50,\"metadata\":{},"
                 "\"result\":{\"brief\":\"b\"},\"error\":null}");
    free(s);
    cJSON_Delete(j);
}

/* store_job_text prints what jsonx_print makes of store_job_object's tree, byte for byte:
 * the plain shapes (meta's members copied as text) and those it hands to the tree. */
static void check_job_text(const char *meta, const char *out, int64_t finished_ms)
{
    cJSON *tree = store_job_object("job_T", "succeeded", 1764072000123LL, 3, meta,
                                   out ? cJSON_Parse(out) : NULL, finished_ms);
    char *want = jsonx_print(tree);
    char *got = store_job_text("job_T", "succeeded", 1764072000123LL, 3, meta,
                               out ? cJSON_Parse(out) : NULL, finished_ms);
    CHECK(want != NULL && got != NULL);
    if (want && got)
        CHECK_STR(got, want);
    free(want);
    free(got);
    cJSON_Delete(tree);
}

static void test_job_text(void)
{
    const char *meta = "{\"priority\":\"high\",\"max_words\":80,\"metadata\":{\"t\":\"a \\\"q\\\" "
                       "\\n\\u0001 \u00e9\",\"n\":[1,2.5]},\"tenant\":\"acme\",\"api_key_id\":\"k1\","
                       "\"waiter\":\"host-1-x\",\"request_id\":\"r1\"}";
    const char *out = "{\"result\":{\"brief\":\"B \\\"x\\\"\",\"refined\":true},\"cached\":false,"
                      "\"route\":{\"decision\":\"keep\"},\"usage\":{\"draft\":{\"prompt_tokens\":7}},"
                      "\"cost_usd\":{\"total\":6.0524999999999994e-05},\"latency_ms\":{\"total\":0.517},"
                      "\"config_version\":\"v1\"}";
    char *plain;

    check_job_text(meta, out, 1764072001000LL);
    check_job_text(meta, out, 0);                                       /* not finished */
    check_job_text(meta, NULL, 0);                                      /* queued: nulls */
    check_job_text(NULL, out, 1764072001000LL);
    check_job_text("{}", "{}", 1764072001000LL);
    check_job_text(meta, "{\"error\":{\"code\":\"x\"},\"max_words\":5}", 1); /* replaces meta's */
    check_job_text("{\"status\":\"odd\",\"a\":1}", out, 1);              /* a base member */
    check_job_text("{\"result\":1}", out, 1);
    check_job_text(meta, "{\"a\":1,\"a\":2}", 1);                         /* a name twice */
    check_job_text(meta, "{\"attempts\":9}", 1);
    check_job_text(meta, "{\"waiter\":\"w\"}", 1);
    check_job_text("{\"a\\u0062\":1,\"c\":2}", out, 1);                    /* escaped name */
    check_job_text("{\"a\":", out, 1);                                    /* malformed */
    check_job_text("[1]", out, 1);
    /* the plain shape is the text path, not the tree's (the waiter mark dropped) */
    plain = store_job_text("job_T", "queued", 1764072000123LL, 0, meta, NULL, 0);
    CHECK(plain && strstr(plain, "waiter") == NULL && strstr(plain, "\"tenant\":\"acme\"") &&
          strstr(plain, ",\"result\":null,\"error\":null}"));
    free(plain);
}

static void test_cost(void)
{
    struct model_cfg m;
    memset(&m, 0, sizeof(m));
    m.price_in_per_mtok = 0.07;
    m.price_out_per_mtok = 0.35;
    CHECK(acct_cost(&m, 512, 180, 1000) == (512 * 0.07 + 180 * 0.35) / 1e6);
    m.price_per_hour = 1.2;
    CHECK(acct_cost(&m, 512, 180, 1800) == (512 * 0.07 + 180 * 0.35) / 1e6 + 1.2 * 1800 / 3.6e6);
    CHECK_NEAR(acct_cost(&m, 0, 0, 3.6e6), 1.2, 1e-12);
}

/* A job's prices: each model on its own tokens and its own busy time (the per-hour part of
 * the refine cost is the refine call's time, never the draft's), as the job shows them. */
static void test_price(void)
{
    struct model_cfg d, r;
    struct job_acct a;
    cJSON *o = cJSON_CreateObject();
    double want_d = (400 * 0.07 + 100 * 0.35) / 1e6 + 0.5 * 900 / 3.6e6;
    double want_r = (700 * 0.5 + 200 * 1.5) / 1e6 + 1.2 * 2500 / 3.6e6;
    memset(&d, 0, sizeof(d));
    memset(&r, 0, sizeof(r));
    d.price_in_per_mtok = 0.07;
    d.price_out_per_mtok = 0.35;
    d.price_per_hour = 0.5;
    r.price_in_per_mtok = 0.5;
    r.price_out_per_mtok = 1.5;
    r.price_per_hour = 1.2;
    acct_init(&a);
    a.draft = (struct stage_usage){1, 400, 100, 0};
    a.refine = (struct stage_usage){1, 700, 200, 0};
    a.draft_busy_ms = 900;
    a.refine_busy_ms = 2500;
    acct_price(&a, &d, &r);
    CHECK(a.cost_draft == want_d);
    CHECK(a.cost_refine == want_r);
    acct_to_json(&a, o);
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "cost_usd"),
                                                   "refine")) == want_r);
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "cost_usd"),
                                                   "total")) == want_d + want_r);
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(
              cJSON_GetObjectItem(cJSON_GetObjectItem(o, "usage"), "refine"), "busy_ms")) == 2500);
    cJSON_Delete(o);
    /* no refine call: no refine cost, whatever its busy time says */
    acct_init(&a);
    a.draft = (struct stage_usage){1, 400, 100, 0};
    a.draft_busy_ms = 900;
    acct_price(&a, &d, &r);
    CHECK(a.cost_draft == want_d && a.cost_refine == 0);
}

/* The facade refuses tool calling, naming the parameter; null counts as absent. */
static void test_facade_tools(void)
{
    static const char *const params[] = {"tools", "tool_choice", "functions", "function_call"};
    struct job_req r;
    struct facade_req fr;
    struct job_verr e;
    char body[256];

    for (int i = 0; i < 4; i++) {
        snprintf(body, sizeof body, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
                 "\"content\":\"hello\"}],\"%s\":[]}", params[i]);
        CHECK(facade_parse(body, strlen(body), "m", 1000, &r, &fr, &e) == -1);
        CHECK(e.status == 400);
        CHECK_STR(e.code, "unsupported_parameter");
        CHECK_STR(e.param, params[i]);
    }
    snprintf(body, sizeof body, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
             "\"content\":\"hello\"}],\"tools\":null}");
    CHECK(facade_parse(body, strlen(body), "m", 1000, &r, &fr, &e) == 0);
    job_req_free(&r);
}

int main(void)
{
    test_facade_tools();
    test_valid();
    test_errors();
    test_strict_json();
    test_param_printable();
    test_body_bound();
    test_ids();
    test_entry_ids();
    test_time();
    test_prompt();
    test_job_object();
    test_job_text();
    test_cost();
    test_price();
    return tcheck_summary("test_job");
}
