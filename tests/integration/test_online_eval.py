"""Integration: the online evaluation - shadow judging of finished jobs (evaluation.shadow_rate,
its daily budget, its bounds), the quality on the job, in /v1/stats, /metrics and the
dashboard; feedback on jobs; briefd calibrate --target-gap and replay's judged quality."""
import json
import os
import shutil
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BRIEFD, Sim, Stack, eventually, rkey, wait_for  # noqa: E402
from test_dashboard import ARTIFACTS, run_check  # noqa: E402

JUDGE_MODEL = "gpt-oss-20b"
MAX_WORDS = 120

# Kept: a short list whose extractive draft keeps its bullets and lower-case starts (the
# judge takes coherence points off; the refinement tidies it: a missed refinement).
KEPT_LIST = ("- revenue grew 12 percent in the quarter\n- costs were flat across the "
             "regions\n- the board approved a data center in Ohio")
# Kept: short prose.
KEPT_PROSE = ("Quarterly sales rose 7 percent in Norway. The warehouse in Bergen reopened in "
              "May. Staff numbers stayed at 140.")
# Refined by length.
LONG = " ".join(
    "Sentence %d describes the regional sales programme, its budget of %d million dollars, "
    "the partners involved and the milestones planned for the coming quarters." % (i, i * 3)
    for i in range(12))
# Pre-routed by its legal flag (no draft: the shadow writes one).
LEGAL = ("The supplier filed a claim over the delayed shipment of 400 units. Counsel expects "
         "a hearing in March. The contract caps damages at 2 million dollars.")
# Its refinement fails (degraded); so does the shadow's.
DEGRADED = ("Rhodes reported that the pilot plant produced 55 tonnes in April. Output is "
            "expected to double by the autumn. No incidents were recorded.")
# Refined by confidence (an unsure draft); a document where the extract reads as well as the
# rewrite (the judge's plain share, found below): a needless refinement.
PLAIN_TEMPLATE = ("The Zephyr committee met on day %d to review the budget. Members agreed to "
                  "fund the library renovation. The mayor will announce the schedule next week.")

ROUTING = {"mode": "any", "pre_route": True, "policies": [
    {"type": "length", "min_chars": 400},
    {"type": "topic", "flags": ["legal"], "keywords": []},
    {"type": "confidence", "min_mean_logprob": -0.8, "on_missing": "keep"}],
    "guards": {"max_refine_rate": None}}
RULES = [
    Sim.rule("Zephyr", logprob_mean=Sim.LOWCONF),
    Sim.rule("Rhodes", logprob_mean=Sim.LOWCONF),
    Sim.rule("Rhodes", model="gpt-oss-20b", kind="chat", status=500),
    Sim.rule(None, logprob_mean=Sim.HIGHCONF),
]


def judge_direct(sim, text, brief, max_words=MAX_WORDS):
    """The simulator's judgement of brief against text, asked directly (the layout of
    models.judge.prompt.user): {"coherence", "faithfulness", "brevity", ...}."""
    body = {"model": JUDGE_MODEL, "temperature": 0,
            "messages": [{"role": "user", "content": "Document:\n%s\n\nMaximum words: %d\n\n"
                                                     "Brief:\n%s" % (text, max_words, brief)}],
            "response_format": {"type": "json_schema",
                                "json_schema": {"name": "brief_rubric", "strict": True,
                                                "schema": {"type": "object"}}}}
    st, r, _ = sim.request("POST", "/v1/chat/completions", body)
    assert st == 200, r
    return json.loads(r["choices"][0]["message"]["content"])


def s3(side):
    return side["coherence"] + side["faithfulness"] + side["brevity"] if side else 0


def percentile(xs, p):
    """quality.h's percentile: sorted values, rank p (n - 1), linear interpolation."""
    xs = sorted(xs)
    h = p * (len(xs) - 1)
    lo, hi = int(h // 1), int(-(-h // 1))
    return xs[lo] + (h - lo) * (xs[hi] - xs[lo])


def plain_document(sim):
    """A Zephyr document in the judge's plain share: its own text scores full coherence."""
    for n in range(1, 400):
        doc = PLAIN_TEMPLATE % n
        if judge_direct(sim, doc, doc)["coherence"] == 5:
            return doc
    raise AssertionError("no plain-share document among 400 candidates")


def wait_quality(briefd, job_id, timeout=60.0):
    """The job once its quality is stored."""
    return eventually(lambda: briefd.get("/v1/jobs/%s" % job_id)[1],
                      lambda j: "quality" in j, timeout=timeout,
                      what="the quality of %s" % job_id)


def stats(briefd, window=3600):
    st, body, _ = briefd.get("/v1/stats?window=%d" % window)
    assert st == 200, body
    return body


def metric(text, line_prefix):
    for line in text.splitlines():
        if line.startswith(line_prefix + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError("no metric line %r" % line_prefix)


class ShadowOn(Stack):
    """shadow_rate 1.0: every finished job gets the brief it did not serve and two judgements
    after it answered; feedback on some of them; statistics, metrics, dashboard, calibrate."""
    config_over = {"evaluation": {"shadow_rate": 1.0}, "routing": ROUTING}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.sim.rules(*RULES)
            cls.plain = plain_document(cls.sim)
            cls.docs = {"kept_list": (KEPT_LIST, []), "kept_prose": (KEPT_PROSE, []),
                        "long": (LONG, []), "legal": (LEGAL, ["legal"]),
                        "degraded": (DEGRADED, []), "needless": (cls.plain, [])}
            cls.answers, cls.jobs = {}, {}
            for name, (text, flags) in cls.docs.items():
                body = {"text": text, "max_words": MAX_WORDS, "topic_flags": flags,
                        "metadata": {"source": "crm" if "kept" in name else "wiki"}}
                st, job, _ = cls.briefd.post_job(body, wait=30)
                assert st == 200 and job["status"] == "succeeded", job
                cls.answers[name] = job
            for name, job in cls.answers.items():
                cls.jobs[name] = wait_quality(cls.briefd, job["id"])
            # feedback: 5 and 2 on kept jobs, 4 on the refined long one
            cls.feedback = []
            for name, score in (("kept_list", 5), ("kept_prose", 2), ("long", 4)):
                st, fb, _ = cls.briefd.request("POST", "/v1/jobs/%s/feedback"
                                               % cls.jobs[name]["id"],
                                               {"score": score, "label": "label-%d" % score,
                                                "comment": "from the test"})
                assert st == 201, fb
                cls.feedback.append((name, fb))
            eventually(lambda: stats(cls.briefd),
                       lambda s: s["quality"]["shadow"] == len(cls.docs) and
                       s["quality"]["feedback"]["count"] == 3, timeout=20,
                       what="every evaluation and feedback counted")
        except BaseException:
            cls.tearDownClass()
            raise

    def side_text(self, job, side):
        """The text the judge scored for side ("draft" / "refine")."""
        q, res = job["quality"], job["result"]
        if q["shadow_brief"] and q["shadow_brief"]["side"] == side:
            return q["shadow_brief"]["text"]
        if side == "draft":
            return res["draft"]
        return res["brief"] if res["refined"] else None

    def test_answer_has_no_quality_and_cost_excludes_it(self):
        for name, ans in self.answers.items():
            self.assertNotIn("quality", ans, name)
            job = self.jobs[name]
            # the job's own cost is what it was when it answered: evaluation spend is apart
            self.assertEqual(job["cost_usd"], ans["cost_usd"], name)
            self.assertEqual(job["usage"], ans["usage"], name)
            self.assertGreater(job["quality"]["evaluation_usd"], 0, name)

    def test_quality_shapes(self):
        jobs = self.jobs
        for name, job in jobs.items():
            q = job["quality"]
            self.assertEqual((q["source"], q["judge"]), ("shadow", JUDGE_MODEL), name)
            self.assertEqual(q["served"], "refine" if job["result"]["refined"] else "draft",
                             name)
        # a kept draft got a background refinement; a refined job needed nothing more
        self.assertEqual(jobs["kept_list"]["quality"]["shadow_brief"]["side"], "refine")
        self.assertEqual(jobs["kept_list"]["quality"]["shadow_brief"]["model"], "gpt-oss-20b")
        self.assertIsNone(jobs["long"]["quality"]["shadow_brief"])
        # a pre-routed job (no draft) got a background draft
        self.assertEqual(jobs["legal"]["route"]["stage"], "input")
        self.assertIsNone(jobs["legal"]["result"]["draft"])
        self.assertEqual(jobs["legal"]["quality"]["shadow_brief"]["side"], "draft")
        self.assertEqual(jobs["legal"]["quality"]["shadow_brief"]["model"], "phi-4-mini")
        # the degraded job's refinement fails in the shadow too: that side is null, no gap
        dq = jobs["degraded"]["quality"]
        self.assertTrue(jobs["degraded"]["result"]["degraded"])
        self.assertIsNone(dq["refine"])
        self.assertIsNone(dq["gap"])
        self.assertIn("shadow refinement", dq["error"])
        self.assertIsNotNone(dq["draft"])

    def test_scores_are_the_judges(self):
        """Every judgement is what the simulator's judge says of that text and document."""
        for name, job in self.jobs.items():
            text = self.docs[name][0]
            q = job["quality"]
            for side in ("draft", "refine"):
                brief = self.side_text(job, side)
                if q[side] is None:
                    continue
                want = judge_direct(self.sim, text, brief)
                for k in ("coherence", "faithfulness", "brevity"):
                    self.assertEqual(q[side][k], want[k], (name, side, k))
                self.assertEqual(q[side]["overall"], s3(want) / 3, (name, side))
            if q["draft"] and q["refine"]:
                self.assertAlmostEqual(q["gap"], (s3(q["refine"]) - s3(q["draft"])) / 3,
                                       places=12)

    def test_stats_from_known_scores(self):
        jobs = list(self.jobs.values())
        qs = [j["quality"] for j in jobs]
        kept = [j for j in jobs if j["route"]["decision"] == "keep"]
        refined = [j for j in jobs if j["result"]["refined"] and j["route"]["decision"] == "refine"]
        both = lambda j: j["quality"]["draft"] and j["quality"]["refine"]  # noqa: E731
        gaps = [(s3(j["quality"]["refine"]) - s3(j["quality"]["draft"])) / 3
                for j in kept if both(j)]
        missed = sum(1 for g in gaps if g >= 1 - 1e-9)
        needless = sum(1 for j in refined if both(j) and
                       s3(j["quality"]["draft"]) >= s3(j["quality"]["refine"]))
        # the documents were chosen so that both happen
        self.assertGreaterEqual(missed, 1)
        self.assertGreaterEqual(needless, 1)
        served = [s3(q["refine"] if q["served"] == "refine" else q["draft"]) for q in qs]
        served = [v for v in served if v]
        d = [s3(q["draft"]) for q in qs if q["draft"]]
        r = [s3(q["refine"]) for q in qs if q["refine"]]
        got = stats(self.briefd)
        gq = got["quality"]
        self.assertEqual(gq["shadow"], len(jobs))
        self.assertEqual(gq["judged"], sum(1 for q in qs if q["draft"] or q["refine"]))
        self.assertEqual(gq["overall"]["draft"], sum(d) / (3 * len(d)))
        self.assertEqual(gq["overall"]["refine"], sum(r) / (3 * len(r)))
        self.assertEqual(gq["overall"]["served"], sum(served) / (3 * len(served)))
        self.assertEqual(gq["gap_when_kept"]["count"], len(gaps))
        self.assertAlmostEqual(gq["gap_when_kept"]["mean"], sum(gaps) / len(gaps), places=12)
        self.assertAlmostEqual(gq["gap_when_kept"]["p90"], percentile(gaps, 0.9), places=12)
        self.assertEqual(gq["missed_refinements"], missed)
        self.assertEqual(gq["needless_refinements"], needless)
        self.assertEqual(gq["by_model"]["phi-4-mini"]["count"], len(d))
        self.assertEqual(gq["by_model"]["gpt-oss-20b"]["mean"], sum(r) / (3 * len(r)))
        self.assertEqual(gq["skipped"], {"budget": 0, "breaker": 0, "busy": 0})
        self.assertAlmostEqual(got["evaluation_usd"], sum(q["evaluation_usd"] for q in qs),
                               places=12)
        self.assertEqual(sum(p["missed_refinements"] for p in got["series"]), missed)
        self.assertEqual(sum(p["needless_refinements"] for p in got["series"]), needless)
        # counted with the jobs' own dimensions
        st, by, _ = self.briefd.get("/v1/stats?window=3600&by=source")
        self.assertEqual(by["groups"]["crm"]["quality"]["shadow"], 2)
        self.assertEqual(by["groups"]["wiki"]["quality"]["shadow"], len(jobs) - 2)

    def test_feedback_stored_and_counted(self):
        for name, fb in self.feedback:
            jid = self.jobs[name]["id"]
            self.assertEqual(fb["job_id"], jid)
            self.assertEqual(fb["api_key_id"], "anon")
            self.assertTrue(fb["created_at"].endswith("Z"))
            st, job, _ = self.briefd.get("/v1/jobs/%s" % jid)
            self.assertEqual(job["feedback"], [fb])
        self.assertNotIn("feedback", self.jobs["legal"])
        f = stats(self.briefd)["quality"]["feedback"]
        self.assertEqual((f["count"], f["mean_score"]), (3, 11 / 3))
        self.assertEqual(f["by_decision"]["keep"], {"count": 2, "mean_score": 3.5})
        self.assertEqual(f["by_decision"]["refine"], {"count": 1, "mean_score": 4})
        self.assertEqual(f["by_score"], {"1": 0, "2": 1, "3": 0, "4": 1, "5": 1})
        # the long job was refined by length; the kept ones had every policy say keep
        self.assertEqual(f["by_policy"]["length"]["refine"], {"count": 1, "mean_score": 4})
        self.assertEqual(f["by_policy"]["length"]["keep"], {"count": 2, "mean_score": 3.5})

    def test_metrics(self):
        st, text, _ = self.briefd.get("/metrics")
        self.assertEqual(st, 200)
        text = text.decode()
        s = stats(self.briefd, window=86400)
        gq = s["quality"]
        for model, m in gq["by_model"].items():
            self.assertEqual(metric(text, 'briefd_quality_score_count{model="%s"}' % model),
                             m["count"])
            self.assertAlmostEqual(metric(text, 'briefd_quality_score_sum{model="%s"}' % model),
                                   m["count"] * m["mean"], places=9)
            self.assertEqual(metric(text, 'briefd_quality_score_bucket{model="%s",le="+Inf"}'
                                    % model), m["count"])
        self.assertEqual(metric(text, 'briefd_feedback_total{score="5"}'), 1)
        self.assertEqual(metric(text, 'briefd_feedback_total{score="3"}'), 0)
        self.assertAlmostEqual(metric(text, "briefd_evaluation_cost_usd_total"),
                               s["evaluation_usd"], places=11)
        self.assertEqual(metric(text, "briefd_missed_refinements_total"),
                         gq["missed_refinements"])
        promtool = shutil.which("promtool")
        self.assertIsNotNone(promtool, "promtool (package prometheus) is needed")
        r = subprocess.run([promtool, "check", "metrics"], input=text.encode(),
                           capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_dashboard_quality_section(self):
        page = run_check(self, self.briefd.port, os.path.join(ARTIFACTS, "dashboard-quality.png"))
        s = stats(self.briefd)
        gq, tiles = s["quality"], page["tiles"]
        self.assertEqual(tiles["q-judged"]["value"], gq["judged"])
        self.assertEqual(tiles["q-missed"]["value"], gq["missed_refinements"])
        self.assertEqual(tiles["q-needless"]["value"], gq["needless_refinements"])
        self.assertAlmostEqual(tiles["q-served"]["value"], gq["overall"]["served"], places=12)
        self.assertEqual(tiles["q-served"]["text"], "%.2f" % gq["overall"]["served"])
        self.assertAlmostEqual(tiles["q-gap"]["value"], gq["gap_when_kept"]["mean"], places=12)
        self.assertTrue(tiles["q-gap"]["text"].startswith("+"), tiles["q-gap"])
        self.assertAlmostEqual(tiles["q-feedback"]["value"], 11 / 3, places=12)
        self.assertEqual(tiles["q-feedback-sub"]["text"], "3 given")
        self.assertAlmostEqual(tiles["q-eval-usd"]["value"], s["evaluation_usd"], places=12)
        models = page["tables"]["quality-models"]
        self.assertEqual(set(models), set(gq["by_model"]))
        for model, m in gq["by_model"].items():
            self.assertEqual(models[model]["count"]["value"], m["count"], model)
            self.assertEqual(models[model]["mean"]["text"], "%.2f" % m["mean"], model)
        decisions = page["tables"]["feedback-decisions"]
        self.assertEqual(decisions["keep"]["count"]["value"], 2)
        self.assertEqual(decisions["refine"]["mean_score"]["text"], "4.00")
        self.assertEqual(page["tables"]["feedback-policies"]["length:refine"]["count"]["value"], 1)
        self.assertGreater(page["charts"]["chart-quality"]["painted"], 0)

    def run_cli(self, *args):
        cfg = dict(self.briefd.config)
        cfg.pop("listen", None)
        path = os.path.join(self.tmp, "calibrate.json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        r = subprocess.run([BRIEFD] + list(args) + ["--config", path, "--window", "3600"],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return r.stdout

    def judged_with_drafts(self):
        """The jobs calibrate fits on: a stored draft, both sides judged."""
        return [j for j in self.jobs.values() if j["result"]["draft"] and
                j["quality"]["draft"] and j["quality"]["refine"]]

    def expected_min_chars(self, target):
        """The length policy alone: the largest min_chars whose kept jobs (draft shorter)
        lose at most target on average - refining costs, so fewer refinements are cheaper."""
        jobs = self.judged_with_drafts()
        chars = sorted({len(j["result"]["draft"]) for j in jobs})
        for t in sorted(chars + [chars[-1] + 1], reverse=True):
            kept = [j for j in jobs if len(j["result"]["draft"]) < t]
            gap = (sum(s3(j["quality"]["refine"]) - s3(j["quality"]["draft"]) for j in kept)
                   / (3 * len(kept)) if kept else 0)
            if gap <= target + 1e-9:
                return t, len(jobs) - len(kept), len(jobs)
        raise AssertionError("refining everything is always within the target")

    def test_calibrate_target_gap(self):
        for target in (0.0, 4.0):
            out = self.run_cli("calibrate", "--target-gap", "%g" % target)
            snippet = json.loads(out[out.index("{"):])
            pols = {p["type"]: p for p in snippet["routing"]["policies"]}
            want, refined, n = self.expected_min_chars(target)
            self.assertEqual(pols["length"]["min_chars"], want, out)
            self.assertIn("length: min_chars %d refines %.3f of the %d judged jobs"
                          % (want, refined / n, n), out)
            self.assertIn("topic: no threshold to fit", out)
            self.assertIn("over %d judged jobs" % n, out)
        # at 4 points nothing needs refining: the threshold lies beyond the longest draft
        self.assertGreater(want, max(len(j["result"]["draft"]) for j in self.judged_with_drafts()))

    def test_replay_reports_judged_quality(self):
        out = self.run_cli("replay")
        jobs = [j for j in self.jobs.values() if j["result"]["draft"]]  # replay needs drafts

        def served(side_of):
            v = [s3(j["quality"][side_of(j)]) for j in jobs if j["quality"][side_of(j)]]
            return "%.4f" % (sum(v) / (3 * len(v))), str(len(v))
        # live: what each job served; replayed (the same config): the side its decision
        # serves - for the degraded job, the refinement, which was never judged
        live = served(lambda j: "refine" if j["result"]["refined"] else "draft")
        now = served(lambda j: "refine" if j["route"]["decision"] == "refine" else "draft")
        self.assertNotEqual(live[1], now[1])
        line = [l for l in out.splitlines() if l.startswith("served overall")][0]
        self.assertEqual(line.split()[-2:], [live[0], now[0]])
        line = [l for l in out.splitlines() if l.startswith("judged jobs covered")][0]
        self.assertEqual(line.split()[-2:], [live[1], now[1]])


class ShadowTiming(Stack):
    """The client never waits for the evaluation: with a slow judge, ?wait answers at once and
    the quality comes later."""
    config_over = {"evaluation": {"shadow_rate": 1.0}, "routing": ROUTING}
    JUDGE_DELAY_MS = 3000

    def test_answer_comes_before_the_judge(self):
        self.sim.rules(Sim.rule(kind="judge", delay_ms=self.JUDGE_DELAY_MS),
                       Sim.rule(None, logprob_mean=Sim.HIGHCONF))
        self.sim.reset()
        t0 = time.monotonic()
        st, job, _ = self.briefd.post_job({"text": KEPT_PROSE}, wait=30)
        answered = time.monotonic() - t0
        self.assertEqual((st, job["status"]), (200, "succeeded"), job)
        self.assertEqual(job["route"]["decision"], "keep")
        self.assertLess(answered, self.JUDGE_DELAY_MS / 1000)
        self.assertNotIn("quality", job)
        st, now, _ = self.briefd.get("/v1/jobs/%s" % job["id"])
        self.assertNotIn("quality", now)
        # the shadow work went out after the answer: the background refinement and the
        # judge requests are in the simulator's log after the draft
        log = list(reversed(self.sim.requests()))
        kinds = [(e["model"], e["kind"]) for e in log]
        self.assertEqual(kinds[0], ("phi-4-mini", "chat"))
        wait_for(lambda: sum(1 for e in self.sim.requests() if e["kind"] == "judge") == 2, 20,
                 "both judge requests sent")
        done = wait_quality(self.briefd, job["id"])
        self.assertGreaterEqual(time.monotonic() - t0, self.JUDGE_DELAY_MS / 1000)
        self.assertIsNotNone(done["quality"]["draft"])
        self.assertIsNotNone(done["quality"]["refine"])
        self.assertEqual(done["quality"]["shadow_brief"]["side"], "refine")


class ShadowOff(Stack):
    """shadow_rate 0: no judge call at all; feedback still works, and every bad feedback body
    gets its status and param."""
    config_over = {"evaluation": {"shadow_rate": 0.0}, "routing": ROUTING,
                   "workers": {"shutdown_grace_ms": 2000}}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.sim.rules(Sim.rule(None, logprob_mean=Sim.HIGHCONF))
            cls.ids = []
            for text, flags in ((KEPT_PROSE, []), (LONG, []), (LEGAL, ["legal"])):
                st, job, _ = cls.briefd.post_job({"text": text, "topic_flags": flags}, wait=30)
                assert st == 200 and job["status"] == "succeeded", job
                cls.ids.append(job["id"])
            eventually(lambda: stats(cls.briefd), lambda s: s["jobs"] == 3, timeout=20,
                       what="the jobs counted")
        except BaseException:
            cls.tearDownClass()
            raise

    def test_no_judge_calls(self):
        self.assertEqual(self.sim.stats()["by_kind"].get("judge", 0), 0)
        self.assertFalse(any(e["kind"] == "judge" for e in self.sim.requests()))
        for jid in self.ids:
            st, job, _ = self.briefd.get("/v1/jobs/%s" % jid)
            self.assertNotIn("quality", job)
        s = stats(self.briefd)
        self.assertEqual((s["quality"]["shadow"], s["quality"]["judged"]), (0, 0))
        self.assertEqual(s["evaluation_usd"], 0)

    def post_fb(self, job_id, body=None, raw=None, headers=None):
        return self.briefd.request("POST", "/v1/jobs/%s/feedback" % job_id, body,
                                   headers=headers, raw=raw)

    def test_feedback_validation(self):
        jid = self.ids[0]
        cases = [
            (None, b"", 400, "invalid_json", None),
            (None, b"{", 400, "invalid_json", None),
            (None, b"[4]", 400, "invalid_json", None),
            (None, b'{"score": 4, "score": 5}', 400, "duplicate_parameter", "score"),
            ({"score": 4, "stars": 5}, None, 400, "unknown_parameter", "stars"),
            ({}, None, 400, "score_required", "score"),
            ({"label": "good"}, None, 400, "score_required", "score"),
            ({"score": "4"}, None, 400, "invalid_type", "score"),
            ({"score": True}, None, 400, "invalid_type", "score"),
            ({"score": 4.5}, None, 400, "invalid_type", "score"),
            ({"score": 0}, None, 422, "invalid_value", "score"),
            ({"score": 6}, None, 422, "invalid_value", "score"),
            ({"score": 4, "label": 1}, None, 400, "invalid_type", "label"),
            ({"score": 4, "label": ""}, None, 422, "invalid_value", "label"),
            ({"score": 4, "label": "x" * 65}, None, 422, "invalid_value", "label"),
            ({"score": 4, "comment": {"a": 1}}, None, 400, "invalid_type", "comment"),
            ({"score": 4, "comment": "y" * 2001}, None, 422, "invalid_value", "comment"),
            (None, b'{"score": 4, "label": "a\\u0000"}', 400, "invalid_value", "label"),
        ]
        for body, raw, status, code, param in cases:
            hdrs = {"Content-Type": "application/json"} if raw is not None else None
            st, err, _ = self.post_fb(jid, body, raw=raw, headers=hdrs)
            self.assertEqual(st, status, (body, raw, err))
            self.assertEqual(err["error"]["code"], code, (body, raw))
            self.assertEqual(err["error"]["param"], param, (body, raw))
            self.assertEqual(err["error"]["type"], "invalid_request_error")
        st, err, _ = self.post_fb(jid, raw=b'{"score": 4}', headers={"Content-Type": "text/plain"})
        self.assertEqual((st, err["error"]["code"]), (415, "unsupported_media_type"))
        st, err, _ = self.briefd.request("GET", "/v1/jobs/%s/feedback" % jid)
        self.assertEqual(st, 405)
        # nothing was stored by any of them
        st, job, _ = self.briefd.get("/v1/jobs/%s" % jid)
        self.assertNotIn("feedback", job)

    def test_feedback_unknown_and_unfinished_jobs(self):
        st, err, _ = self.post_fb("job_01ZZZZZZZZZZZZZZZZZZZZZZZZ", {"score": 3})
        self.assertEqual((st, err["error"]["code"], err["error"]["param"]),
                         (404, "job_not_found", "id"))
        st, err, _ = self.post_fb("nonsense", {"score": 3})
        self.assertEqual((st, err["error"]["code"]), (404, "job_not_found"))
        # a job still drafting (its draft is slow) is not finished
        self.sim.rules(Sim.rule("Unfinished", delay_ms=4000),
                       Sim.rule(None, logprob_mean=Sim.HIGHCONF))
        st, job, _ = self.briefd.post_job({"text": "Unfinished business: " + KEPT_PROSE})
        self.assertEqual(st, 202, job)
        st, err, _ = self.post_fb(job["id"], {"score": 3})
        self.assertEqual((st, err["error"]["code"], err["error"]["param"]),
                         (409, "job_not_finished", "id"))
        done = self.briefd.wait_job(job["id"])
        self.assertEqual(done["status"], "succeeded")
        st, fb, _ = self.post_fb(job["id"], {"score": 3})
        self.assertEqual(st, 201, fb)

    def test_feedback_kept_newest_twenty(self):
        jid = self.ids[1]
        for k in range(23):
            st, fb, _ = self.post_fb(jid, {"score": 1 + k % 5, "comment": "n%d" % k})
            self.assertEqual(st, 201, fb)
        st, job, _ = self.briefd.get("/v1/jobs/%s" % jid)
        self.assertEqual([f["comment"] for f in job["feedback"]],
                         ["n%d" % k for k in range(3, 23)])
        # every one is counted, not only the ones kept
        eventually(lambda: stats(self.briefd)["quality"]["feedback"]["by_decision"]["refine"],
                   lambda f: f["count"] >= 23, timeout=20, what="the feedback counted")


class FeedbackTenants(Stack):
    """A key bound to a tenant gives feedback on its tenant's jobs only (the job is found the
    way GET finds it: another tenant's job is not found)."""
    KEYS = "acme=acme-key-0001,globex=globex-key-0001"
    config_over = {"routing": ROUTING}
    briefd_env = {"BRIEFD_API_KEYS": KEYS}

    def test_other_tenants_job_is_not_found(self):
        acme = {"Authorization": "Bearer acme-key-0001"}
        globex = {"Authorization": "Bearer globex-key-0001"}
        st, job, _ = self.briefd.post_job({"text": KEPT_PROSE}, wait=30, headers=acme)
        self.assertEqual((st, job["status"], job["tenant"]), (200, "succeeded", "acme"), job)
        path = "/v1/jobs/%s/feedback" % job["id"]
        st, err, _ = self.briefd.request("POST", path, {"score": 2}, headers=globex)
        self.assertEqual((st, err["error"]["code"]), (404, "job_not_found"), err)
        st, err, _ = self.briefd.request("POST", path, {"score": 2})
        self.assertEqual(st, 401, err)
        st, fb, _ = self.briefd.request("POST", path, {"score": 5}, headers=acme)
        self.assertEqual(st, 201, fb)
        self.assertTrue(fb["api_key_id"].startswith("key_"), fb)
        st, got, _ = self.briefd.get("/v1/jobs/%s" % job["id"], headers=acme)
        self.assertEqual(got["feedback"], [fb])


class ShadowBudget(Stack):
    """evaluation.daily_budget_usd: reservations against the day's budget in Redis stop the
    shadow work once the budget is spent."""
    BUDGET = 0.0006
    config_over = {"evaluation": {"shadow_rate": 1.0, "daily_budget_usd": BUDGET},
                   "routing": ROUTING}

    def test_budget_stops_shadow_work(self):
        self.sim.rules(Sim.rule(None, logprob_mean=Sim.HIGHCONF))
        outcomes = []
        for k in range(8):
            st, job, _ = self.briefd.post_job({"text": "Item %d. %s" % (k, KEPT_PROSE)}, wait=30)
            self.assertEqual(st, 200, job)
            before = len([o for o in outcomes if o == "skipped"])
            # the evaluation ends with a quality on the job, or a budget skip counted
            r = eventually(lambda: (self.briefd.get("/v1/jobs/%s" % job["id"])[1],
                                    stats(self.briefd)["quality"]["skipped"]["budget"]),
                           lambda r: "quality" in r[0] or r[1] > before, timeout=30,
                           what="job %d evaluated or skipped" % k)
            outcomes.append("judged" if "quality" in r[0] else "skipped")
        # some were judged, then the budget ran out and every later one was skipped
        self.assertEqual(outcomes[0], "judged", outcomes)
        self.assertIn("skipped", outcomes)
        first = outcomes.index("skipped")
        self.assertEqual(set(outcomes[first:]), {"skipped"}, outcomes)
        # the shared day's spend: exactly what the evaluations cost (reservations settled),
        # within the budget
        prefix = self.briefd.config["redis"]["prefix"]
        day = time.strftime("%Y%m%d", time.gmtime())
        spent = int(self.redis.cmd("GET", rkey(prefix, "evalspend:" + day)))
        s = eventually(lambda: stats(self.briefd), lambda s: s["quality"]["shadow"] == first,
                       timeout=20, what="the evaluations counted")
        self.assertLessEqual(spent, self.BUDGET * 1e12)
        self.assertAlmostEqual(spent / 1e12, s["evaluation_usd"], delta=first * 3e-12)
        self.assertEqual(s["quality"]["skipped"]["budget"], len(outcomes) - first)


class ShadowLimits(Stack):
    """At most evaluation.max_in_flight evaluations at once per process ("busy" beyond); none
    while the judge's breaker is open ("breaker")."""
    config_over = {"evaluation": {"shadow_rate": 1.0, "max_in_flight": 1}, "routing": ROUTING,
                   "models": {"judge": {"breaker_failures": 2, "breaker_open_ms": 60000,
                                        "max_attempts": 1}}}

    def skipped(self):
        return stats(self.briefd)["quality"]["skipped"]

    def test_1_busy(self):
        self.sim.rules(Sim.rule(kind="judge", delay_ms=2000),
                       Sim.rule(None, logprob_mean=Sim.HIGHCONF))
        ids = []
        for k in range(3):
            st, job, _ = self.briefd.post_job({"text": "Busy %d. %s" % (k, KEPT_PROSE)})
            self.assertEqual(st, 202, job)
            ids.append(job["id"])
        for jid in ids:
            self.briefd.wait_job(jid)
        s = eventually(self.skipped, lambda s: s["busy"] >= 1, timeout=20,
                       what="a busy skip counted")
        judged = eventually(lambda: stats(self.briefd)["quality"]["shadow"],
                            lambda n: n + s["busy"] == 3, timeout=30,
                            what="the others evaluated")
        self.assertGreaterEqual(judged, 1)

    def test_2_breaker(self):
        self.sim.rules(Sim.rule(kind="judge", status=500),
                       Sim.rule(None, logprob_mean=Sim.HIGHCONF))
        base = stats(self.briefd)["quality"]["shadow"]
        for k in range(4):
            st, job, _ = self.briefd.post_job({"text": "Breaker %d. %s" % (k, KEPT_PROSE)},
                                              wait=30)
            self.assertEqual(st, 200, job)
            # one evaluation at a time (max_in_flight 1): wait for this one to end
            eventually(lambda: stats(self.briefd)["quality"],
                       lambda q: q["shadow"] + q["skipped"]["breaker"] >= base + k + 1,
                       timeout=30, what="evaluation %d over" % k)
        q = stats(self.briefd)["quality"]
        # the first evaluation's two failed judge calls (breaker_failures 2) opened the
        # judge's breaker: it is stored with both judgements null, the rest are skipped
        self.assertEqual(q["shadow"] - base, 1, q)
        self.assertEqual(q["skipped"]["breaker"], 3, q)
        failed = [e for e in self.sim.requests() if e["kind"] == "judge" and e["outcome"] != "ok"]
        self.assertEqual(len(failed), 2, failed)


if __name__ == "__main__":
    unittest.main(verbosity=2)
