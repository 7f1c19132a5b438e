/* eval.c - `briefd eval`: read the dataset, run the calls on a loop, write the report. */
#include "eval.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <uv.h>

#include "acct.h"
#include "bderr.h"
#include "checks.h"
#include "config.h"
#include "curlm.h"
#include "evalpage.h"
#include "evalrep.h"
#include "evalset.h"
#include "job.h"
#include "judge.h"
#include "mclient.h"

struct ev;

/* One judge call of one brief. */
struct jcall {
    struct run *run;
    struct evalrep_brief *brief;
    struct mc_call call;
    char *body;
};

/* A document in flight. */
struct run {
    struct ev *ev;
    struct evalrep_doc *doc;
    struct mc_call call;         /* the draft call, then the refine call */
    char *body;
    uint64_t t0;                 /* uv_hrtime at the start of the current call */
    struct jcall judge[2];
    int pending;                 /* judge calls outstanding */
};

struct ev {
    uv_loop_t *loop;
    struct bd_config *cfg;
    struct model_cfg slot[3];    /* draft, refine, judge: the config's, at temperature 0 */
    char *url[3];
    struct curlm *engine;
    struct mc_ctx *mc;
    unsigned arms;
    int concurrency;
    struct evalset set;
    struct evalrep_doc *docs;
    size_t n, next, running, done;
    size_t draft_ok, draft_failed;
    size_t judge_calls, judge_ok, judge_failed;
    int giving_up;
};

enum { SLOT_DRAFT = 0, SLOT_REFINE = 1, SLOT_JUDGE = 2 };

static void start_next(struct ev *ev);

/* ---- calls ---- */

static double ms_since(uint64_t t0) { return (double)(uv_hrtime() - t0) / 1e6; }

/* Start call with body (owned by the caller) on slot s. */
static int start_call(struct ev *ev, int s, struct mc_call *call, const char *body,
                      size_t prompt_chars, mc_cb cb)
{
    const struct model_cfg *m = &ev->slot[s];

    config_model_call(call, m);
    call->url = ev->url[s];
    call->body = body;
    call->prompt_chars = prompt_chars;
    call->deadline_ms = uv_now(ev->loop) + (uint64_t)ev->cfg->job_timeout_ms;
    call->ttft_ms = -1;
    return mc_call_start(ev->mc, call, cb);
}

/* A brief's call: draft (draft == NULL) or refine (with the draft in its prompt). */
static int start_brief_call(struct run *r, int s, const char *draft, mc_cb cb)
{
    const struct model_cfg *m = &r->ev->slot[s];
    char *user = job_render_prompt(m->prompt_user, &r->doc->item->req, draft);
    size_t chars;

    if (!user)
        return BD_ENOMEM;
    chars = strlen(user) + (m->prompt_system ? strlen(m->prompt_system) : 0);
    free(r->body);
    r->body = oai_build_request(m->name, m->prompt_system, user, m->max_tokens, m->temperature,
                                m->stream, m->logprobs);
    free(user);
    if (!r->body)
        return BD_ENOMEM;
    mc_call_reset(&r->call);
    r->call.data = r;
    r->t0 = uv_hrtime();
    return start_call(r->ev, s, &r->call, r->body, chars, cb);
}

/* What a finished call wrote into b (usage, cost, time; the text or why it failed). */
static void take_brief(struct run *r, int s, struct evalrep_brief *b, int status)
{
    const struct mc_call *c = &r->call;

    b->asked = 1;
    b->ms = ms_since(r->t0);
    if (status == 0) {
        b->prompt_tokens = c->res.prompt_tokens;
        b->completion_tokens = c->res.completion_tokens;
        b->usage_estimated = c->res.usage_estimated;
        b->cost_usd = acct_cost(&r->ev->slot[s], b->prompt_tokens, b->completion_tokens,
                                c->busy_ms);
    }
    if (status != 0)
        snprintf(b->error, sizeof(b->error), "%s model '%.60s' failed after %d attempts "
                 "(%s): %.180s", s == SLOT_DRAFT ? "draft" : "refine", r->ev->slot[s].name,
                 c->attempts, mc_fail_name(c->fail), c->err);
    else if (!c->res.content || !c->res.content[0])
        snprintf(b->error, sizeof(b->error), "%s model '%.60s' returned an empty brief",
                 s == SLOT_DRAFT ? "draft" : "refine", r->ev->slot[s].name);
    else
        b->text = strdup(c->res.content);
    b->have = b->text != NULL;
    if (status == 0 && !b->have && !b->error[0])
        snprintf(b->error, sizeof(b->error), "out of memory");
}

/* ---- one document ---- */

static void finish_run(struct run *r);

/* Judge briefs: which the arms need, each distinct text once. */
static int wants_judge(const struct ev *ev, const struct evalrep_doc *d, int refine)
{
    unsigned arm = 1u << (refine ? EVALREP_REFINE : EVALREP_DRAFT);
    int hybrid_serves = (ev->arms & (1u << EVALREP_HYBRID)) && d->route.refine == refine;

    return (ev->arms & arm) || hybrid_serves;
}

static void on_judge(struct mc_call *c, int status)
{
    struct jcall *j = c->data;
    struct run *r = j->run;
    struct ev *ev = r->ev;

    if (status == 0) {
        struct evalrep_brief *b = j->brief;
        ev->judge_ok++;
        b->judge_answered = 1;
        b->judge_prompt_tokens = c->res.prompt_tokens;
        b->judge_completion_tokens = c->res.completion_tokens;
        b->judge_usage_estimated = c->res.usage_estimated;
        b->judge_cost_usd = acct_cost(&ev->slot[SLOT_JUDGE], b->judge_prompt_tokens,
                                      b->judge_completion_tokens, c->busy_ms);
        judge_parse(c->res.content, c->res.content_len, &b->judge);
        b->judged = 1;
    } else {
        ev->judge_failed++;
        snprintf(j->brief->judge_error, sizeof(j->brief->judge_error), "judge '%.60s' failed "
                 "after %d attempts (%s): %.180s", ev->slot[SLOT_JUDGE].name, c->attempts,
                 mc_fail_name(c->fail), c->err);
        if (ev->judge_failed >= EVAL_GIVE_UP && ev->judge_ok == 0)
            ev->giving_up = 1;
    }
    r->pending--;
    if (r->pending == 0)
        finish_run(r);
}

static int start_judge(struct run *r, int k, struct evalrep_brief *b)
{
    struct jcall *j = &r->judge[k];
    const struct evalset_item *it = r->doc->item;
    size_t chars = 0;

    j->run = r;
    j->brief = b;
    j->call.data = j;
    j->body = judge_build_request(&r->ev->slot[SLOT_JUDGE], it->req.text, it->req.text_len,
                                  it->req.max_words, b->text, &chars);
    if (!j->body)
        return BD_ENOMEM;
    r->ev->judge_calls++;
    return start_call(r->ev, SLOT_JUDGE, &j->call, j->body, chars, on_judge);
}

static void start_judges(struct run *r)
{
    struct evalrep_doc *d = r->doc;
    struct evalrep_brief *want[2] = {NULL, NULL};
    int n = 0;

    if (wants_judge(r->ev, d, 0))
        want[n++] = &d->draft;
    if (d->refine.have && wants_judge(r->ev, d, 1) &&
        !(n == 1 && strcmp(d->refine.text, d->draft.text) == 0))
        want[n++] = &d->refine;
    r->pending = n + 1; /* held until every call is started */
    for (int k = 0; k < n; k++)
        if (start_judge(r, k, want[k]) != 0) {
            snprintf(want[k]->judge_error, sizeof(want[k]->judge_error),
                     "could not start the judge call");
            r->pending--;
        }
    r->pending--; /* the hold */
    if (r->pending == 0)
        finish_run(r);
}

static void on_refine(struct mc_call *c, int status)
{
    struct run *r = c->data;

    take_brief(r, SLOT_REFINE, &r->doc->refine, status);
    if (r->doc->refine.have)
        start_judges(r);
    else
        finish_run(r);
}

static int needs_refine(const struct ev *ev, const struct evalrep_doc *d)
{
    return (ev->arms & (1u << EVALREP_REFINE)) ||
           ((ev->arms & (1u << EVALREP_HYBRID)) && d->route.refine);
}

static void route_doc(struct evalrep_doc *d, const struct router *router)
{
    struct route_input in;

    job_route_input(&d->item->req, d->draft.text, &d->lp, d->truncated, &in);
    router_decide(router, &in, NULL, &d->route);
    d->routed = 1;
}

static void on_draft(struct mc_call *c, int status)
{
    struct run *r = c->data;
    struct evalrep_doc *d = r->doc;
    struct ev *ev = r->ev;

    take_brief(r, SLOT_DRAFT, &d->draft, status);
    if (!d->draft.have) {
        ev->draft_failed++;
        if (ev->draft_failed >= EVAL_GIVE_UP && ev->draft_ok == 0)
            ev->giving_up = 1;
        finish_run(r);
        return;
    }
    ev->draft_ok++;
    d->truncated = c->res.truncated;
    lp_summarize(c->res.logprobs, c->res.has_logprobs ? c->res.n_logprobs : 0, &d->lp);
    route_doc(d, ev->cfg->router);
    if (!needs_refine(ev, d)) {
        start_judges(r);
        return;
    }
    if (start_brief_call(r, SLOT_REFINE, d->draft.text, on_refine) != 0) {
        snprintf(d->refine.error, sizeof(d->refine.error), "could not start the refine call");
        finish_run(r);
    }
}

/* ---- the run ---- */

static void closed(void *data) { (void)data; }

static void progress(const struct ev *ev, const struct evalrep_doc *d)
{
    const char *err = d->draft.error[0] ? d->draft.error : d->refine.error;
    char q[2][16];
    const struct evalrep_brief *b[2] = {&d->draft, &d->refine};

    for (int k = 0; k < 2; k++)
        if (b[k]->judge.valid)
            snprintf(q[k], sizeof(q[k]), "%.3f", b[k]->judge.overall);
        else
            snprintf(q[k], sizeof(q[k]), "%s", b[k]->judged ? "null" : "-");
    if (d->complete)
        fprintf(stderr, "eval: %zu/%zu %s: %s; overall draft %s, refine %s\n", ev->done, ev->n,
                d->item->id, d->route.refine ? "refine" : "keep", q[0], q[1]);
    else
        fprintf(stderr, "eval: %zu/%zu %s: failed: %s\n", ev->done, ev->n, d->item->id,
                err[0] ? err : "not evaluated");
}

static void finish_run(struct run *r)
{
    struct ev *ev = r->ev;
    struct evalrep_doc *d = r->doc;
    struct evalrep_brief *b[2] = {&d->draft, &d->refine};
    const struct job_req *req = &d->item->req;

    for (int k = 0; k < 2; k++)
        if (b[k]->have)
            checks_run(b[k]->text, strlen(b[k]->text), req->text, req->text_len,
                       req->max_words, &b[k]->checks);
    if (d->refine.have && d->draft.have && !d->refine.judge_answered &&
        !d->refine.judge_error[0] && wants_judge(ev, d, 1) &&
        strcmp(d->refine.text, d->draft.text) == 0) { /* judged once, with the draft */
        d->refine.judged = d->draft.judged;
        d->refine.judge = d->draft.judge;
        memcpy(d->refine.judge_error, d->draft.judge_error, sizeof(d->refine.judge_error));
    }
    d->complete = d->draft.have && (d->refine.have || !needs_refine(ev, d));
    mc_call_reset(&r->call);
    for (int k = 0; k < 2; k++) {
        mc_call_reset(&r->judge[k].call);
        free(r->judge[k].body);
    }
    free(r->body);
    free(r);
    ev->running--;
    ev->done++;
    progress(ev, d);
    start_next(ev);
}

static void start_doc(struct ev *ev, struct evalrep_doc *d)
{
    struct run *r = calloc(1, sizeof(*r));

    ev->running++;
    if (!r) {
        snprintf(d->draft.error, sizeof(d->draft.error), "out of memory");
        ev->running--;
        ev->done++;
        return;
    }
    r->ev = ev;
    r->doc = d;
    if (start_brief_call(r, SLOT_DRAFT, NULL, on_draft) != 0) {
        snprintf(d->draft.error, sizeof(d->draft.error), "could not start the draft call");
        finish_run(r);
    }
}

/* The model client, then the transfer engine (the loop ends once they are closed). */
static void close_clients(struct ev *ev)
{
    if (ev->mc)
        mc_ctx_close(ev->mc);
    if (ev->engine)
        curlm_close(ev->engine, closed, ev);
    ev->mc = NULL;
    ev->engine = NULL;
}

static void start_next(struct ev *ev)
{
    while (!ev->giving_up && ev->running < (size_t)ev->concurrency && ev->next < ev->n)
        start_doc(ev, &ev->docs[ev->next++]);
    if (ev->running == 0)
        close_clients(ev);
}

/* ---- the dataset ---- */

static void bad_line(size_t line, const char *msg, void *data)
{
    const char *path = ((void **)data)[0];
    size_t *count = ((void **)data)[1];

    *count += 1;
    if (*count <= EVAL_MAX_ERRORS_SHOWN)
        fprintf(stderr, "%s:%zu: %s\n", path, line, msg);
}

/* Read every line of path into set (all checked, every mistake reported); 0 or -1. */
static int read_dataset(const char *path, size_t max_text, struct evalset *set)
{
    FILE *f = fopen(path, "r");
    char *line = NULL, msg[400];
    size_t cap = 0, lineno = 0, errors = 0;
    void *ctx[2] = {(void *)path, &errors};
    ssize_t len;

    if (!f) {
        fprintf(stderr, "%s: cannot open: %s\n", path, strerror(errno));
        return -1;
    }
    for (;;) {
        struct evalset_item it;
        len = getline(&line, &cap, f);
        if (len < 0)
            break;
        lineno++;
        if (evalset_blank(line, (size_t)len))
            continue;
        if (len > 0 && line[len - 1] == '\n')
            len--;
        if (evalset_parse_line(line, (size_t)len, lineno, max_text, &it, msg, sizeof(msg)) != 0)
            bad_line(lineno, msg, ctx);
        else if (evalset_add(set, &it) != 0) {
            bad_line(lineno, "too many documents (or out of memory)", ctx);
            evalset_item_free(&it);
        }
    }
    free(line);
    fclose(f);
    if (evalset_check_ids(set, bad_line, ctx) < 0)
        errors++;
    if (errors == 0 && set->n == 0) {
        fprintf(stderr, "%s: no documents\n", path);
        return -1;
    }
    if (errors > 0)
        fprintf(stderr, "%s: %zu invalid line%s; nothing was evaluated\n", path, errors,
                errors == 1 ? "" : "s");
    return errors ? -1 : 0;
}

/* ---- setting up, running, reporting ---- */

static int open_ev(struct ev *ev, const struct eval_opts *o)
{
    const struct model_cfg *src[3] = {&ev->cfg->draft, &ev->cfg->refine, &ev->cfg->judge};
    int rc;

    for (int s = 0; s < 3; s++) {
        ev->slot[s] = *src[s];        /* strings borrowed from the config */
        ev->slot[s].temperature = 0;  /* a deterministic, fair comparison */
        ev->url[s] = config_model_url(src[s], "/chat/completions");
        if (!ev->url[s])
            return BD_ENOMEM;
    }
    ev->arms = o->arms;
    ev->concurrency = o->concurrency;
    ev->n = o->limit > 0 && (size_t)o->limit < ev->set.n ? (size_t)o->limit : ev->set.n;
    ev->docs = calloc(ev->n ? ev->n : 1, sizeof(*ev->docs));
    if (!ev->docs)
        return BD_ENOMEM;
    for (size_t i = 0; i < ev->n; i++)
        ev->docs[i].item = &ev->set.items[i];
    rc = curlm_new(ev->loop, &ev->engine);
    if (rc == 0)
        rc = mc_ctx_new(ev->loop, ev->engine, &ev->mc);
    return rc;
}

static void close_ev(struct ev *ev)
{
    for (size_t i = 0; ev->docs && i < ev->n; i++) {
        free(ev->docs[i].draft.text);
        free(ev->docs[i].refine.text);
    }
    free(ev->docs);
    for (int s = 0; s < 3; s++)
        free(ev->url[s]);
    evalset_free(&ev->set);
    config_unref(ev->cfg);
}

static int mkdirs(const char *dir)
{
    char buf[4096];
    size_t n = strlen(dir);

    if (n == 0 || n >= sizeof(buf))
        return -1;
    memcpy(buf, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        buf[i] = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return -1;
        buf[i] = i < n ? '/' : '\0';
    }
    return 0;
}

static int write_text(const char *dir, const char *name, char *text)
{
    char path[4200];
    FILE *f;
    int ok;

    if (!text) {
        fprintf(stderr, "briefd eval: out of memory rendering %s\n", name);
        return -1;
    }
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "w");
    ok = f && fputs(text, f) >= 0;
    if (f && fclose(f) != 0)
        ok = 0;
    if (!ok)
        fprintf(stderr, "briefd eval: cannot write %s: %s\n", path, strerror(errno));
    free(text);
    return ok ? 0 : -1;
}

/* stdout: the arms table; the files in dir when given. 0 or -1. */
static int write_report(const cJSON *rep, const char *dir)
{
    char *table = evalpage_table(rep);
    int rc = 0;

    if (!table)
        return -1;
    fputs(table, stdout);
    fflush(stdout);
    free(table);
    if (!dir)
        return 0;
    if (mkdirs(dir) != 0) {
        fprintf(stderr, "briefd eval: cannot create %s: %s\n", dir, strerror(errno));
        return -1;
    }
    rc |= write_text(dir, "report.json", evalpage_json(rep));
    rc |= write_text(dir, "report.md", evalpage_markdown(rep));
    rc |= write_text(dir, "report.html", evalpage_html(rep));
    if (rc == 0)
        fprintf(stderr, "eval: wrote %s/report.json, report.md, report.html\n", dir);
    return rc ? -1 : 0;
}

/* The exit code the run earned, with the reason on stderr. */
static int verdict(const struct ev *ev)
{
    size_t complete = 0;

    for (size_t i = 0; i < ev->n; i++)
        complete += (size_t)ev->docs[i].complete;
    if (ev->giving_up)
        fprintf(stderr, "briefd eval: gave up: the first %d %s calls all failed (are the "
                "models reachable?)\n", EVAL_GIVE_UP, ev->draft_ok ? "judge" : "draft");
    else if (complete == 0)
        fprintf(stderr, "briefd eval: no document could be evaluated\n");
    else if (ev->judge_calls > 0 && ev->judge_ok == 0)
        fprintf(stderr, "briefd eval: every judge call failed\n");
    else {
        if (complete < ev->n)
            fprintf(stderr, "briefd eval: %zu of %zu documents failed (see the report)\n",
                    ev->n - complete, ev->n);
        return 0;
    }
    return 1;
}

static int report(struct ev *ev, const struct eval_opts *o)
{
    struct evalrep_in in;
    cJSON *rep;
    int code = verdict(ev), rc;

    memset(&in, 0, sizeof(in));
    in.dataset_path = o->dataset;
    in.cfg = ev->cfg;
    in.arms = ev->arms;
    in.docs = ev->docs;
    in.n = ev->n;
    in.judge_calls = ev->judge_calls;
    in.judge_failed = ev->judge_failed;
    rep = evalrep_json(&in);
    if (!rep) {
        fprintf(stderr, "briefd eval: out of memory building the report\n");
        return 1;
    }
    rc = write_report(rep, o->out_dir);
    cJSON_Delete(rep);
    return rc != 0 ? 1 : code;
}

static void announce(const struct ev *ev, const struct eval_opts *o)
{
    char arms[40] = "";

    for (int a = 0; a < EVALREP_ARMS; a++)
        if (ev->arms & (1u << a))
            snprintf(arms + strlen(arms), sizeof(arms) - strlen(arms), "%s%s",
                     arms[0] ? "," : "", evalrep_arm_name(a));
    fprintf(stderr, "eval: %zu documents from %s, arms %s, concurrency %d; draft %s, refine "
            "%s, judge %s at %s (every call at temperature 0)\n", ev->n, o->dataset, arms,
            ev->concurrency, ev->slot[SLOT_DRAFT].name, ev->slot[SLOT_REFINE].name,
            ev->slot[SLOT_JUDGE].name, ev->slot[SLOT_JUDGE].base_url);
}

int eval_main(const struct eval_opts *o)
{
    struct cfg_err err;
    struct ev ev;
    uv_loop_t loop;
    int code = 1;

    memset(&ev, 0, sizeof(ev));
    ev.cfg = config_load(o->config, &err);
    if (!ev.cfg) {
        cfg_err_print(stderr, o->config, &err);
        return 1;
    }
    if (read_dataset(o->dataset, ev.cfg->max_text_bytes, &ev.set) != 0) {
        close_ev(&ev);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&loop);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    ev.loop = &loop;
    if (open_ev(&ev, o) != 0) {
        fprintf(stderr, "briefd eval: out of memory\n");
        close_clients(&ev);
    } else {
        announce(&ev, o);
        start_next(&ev); /* closes the clients once the last document is done */
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    curl_global_cleanup();
    if (ev.docs)
        code = report(&ev, o);
    close_ev(&ev);
    return code;
}
