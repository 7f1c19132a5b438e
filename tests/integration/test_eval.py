"""Integration: `briefd eval` end to end against the model simulator (one simulator for the
draft and refine models, another as the judge), and the cheap checks in a finished job's
signals (real Redis, simulator, briefd over HTTP)."""
import html.parser
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BRIEFD, ROOT, Sim, Stack, free_port, tail  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DATASET = os.path.join(HERE, "data", "eval_docs.jsonl")
EXAMPLE = os.path.join(ROOT, "deploy", "briefd.example.json")

PRICES = {
    "draft": {"input_per_mtok": 0.075, "output_per_mtok": 0.3},
    "refine": {"input_per_mtok": 0.07, "output_per_mtok": 0.3},
    "judge": {"input_per_mtok": 0.1, "output_per_mtok": 0.4},
}
# Routing that refines some documents and keeps others; the guard would hold nearly every
# refinement back if eval applied guards (it must not).
ROUTING = {
    "mode": "any",
    "policies": [{"type": "length", "min_chars": 300},
                 {"type": "topic", "flags": ["legal", "security"], "keywords": ["lawsuit"]},
                 {"type": "confidence", "min_mean_logprob": -0.4}],
    "guards": {"max_refine_rate": 0.1},
}
TIMINGS = ("latency_ms",)


def fmt(v, f):
    """A figure as evalpage prints it."""
    return "n/a" if v is None else f % v


def arm_cells(name, arm):
    q = arm["quality"]
    ci = q["overall_ci95"]
    return [name, fmt(arm["n"], "%.0f"), fmt(arm["refine_rate"], "%.3f"),
            fmt(q["overall"], "%.3f"),
            "n/a" if ci is None else "[%.3f, %.3f]" % tuple(ci),
            fmt(q["coherence"], "%.3f"), fmt(q["faithfulness"], "%.3f"),
            fmt(q["brevity"], "%.3f"), fmt(arm["cost_usd"]["per_job"], "%.6g"),
            fmt(arm["cost_usd"]["total"], "%.6g"),
            fmt(arm["latency_ms"]["total"]["p50"], "%.0f"),
            fmt(arm["latency_ms"]["total"]["p95"], "%.0f")]


def md_row(cells):
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


class Tables(html.parser.HTMLParser):
    """The cells of every <table id=...> of a page: {id: [[cell, ...], ...]} (body rows)."""

    def __init__(self):
        super().__init__()
        self.tables, self.cur, self.row, self.cell, self.in_body = {}, None, None, None, False
        self.tags = set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        attrs = dict(attrs)
        for k, v in attrs.items():
            if k in ("src", "href") or (v and "http" in v and "w3.org/2000/svg" not in v):
                self.tags.add("external:" + k)
        if tag == "table":
            self.cur = self.tables.setdefault(attrs.get("id"), [])
        elif tag == "tbody":
            self.in_body = True
        elif tag == "tr" and self.in_body:
            self.row = []
        elif tag == "td" and self.row is not None:
            self.cell = ""

    def handle_endtag(self, tag):
        if tag == "td" and self.cell is not None:
            self.row.append(self.cell)
            self.cell = None
        elif tag == "tr" and self.row is not None:
            self.cur.append(self.row)
            self.row = None
        elif tag == "tbody":
            self.in_body = False

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data


def render(tmpl, text, max_words, instructions=None, draft=None):
    """job_render_prompt: {text} {draft} {max_words} {instructions}, one pass."""
    def sub(m):
        k = m.group(1)
        if k == "text":
            return text
        if k == "draft":
            return draft or ""
        if k == "max_words":
            return str(max_words)
        return "\n\nInstructions: " + instructions if instructions else ""
    return re.sub(r"\{(text|draft|max_words|instructions)\}", sub, tmpl)


def tokens(nbytes):
    return (nbytes + 3) // 4


def cost(p, c, price):
    """acct_cost with per_hour 0, in the same operation order."""
    return (p * price["input_per_mtok"] + c * price["output_per_mtok"]) / 1e6


def without_timings(o):
    if isinstance(o, dict):
        return {k: without_timings(v) for k, v in o.items() if k not in TIMINGS}
    if isinstance(o, list):
        return [without_timings(v) for v in o]
    return o


class Eval(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmpdir = tempfile.TemporaryDirectory(prefix="briefd-eval-")
        cls.tmp = cls.tmpdir.name
        cls.sim = Sim(cls.tmp, "fast").start()
        cls.judge_sim = Sim(cls.tmp, "fast").start()
        cls.config = {
            "workers": {"job_timeout_ms": 20000},
            "models": {
                "draft": {"base_url": cls.sim.base_url, "price": PRICES["draft"],
                          "backoff_ms": 20, "temperature": 0.9},
                "refine": {"base_url": cls.sim.base_url, "price": PRICES["refine"],
                           "backoff_ms": 20},
                "judge": {"base_url": cls.judge_sim.base_url, "price": PRICES["judge"],
                          "backoff_ms": 20},
            },
            "routing": ROUTING,
        }
        cls.config_path = cls.write_config(cls.config, "eval.json")
        with open(EXAMPLE) as f:
            cls.defaults = json.load(f)
        with open(DATASET) as f:
            cls.docs = [json.loads(line) for line in f if line.strip()]
        cls.rep, cls.out, cls.stdout, cls.stats = cls.full_run("out")

    @classmethod
    def tearDownClass(cls):
        errs = [s.stop(check=False) for s in (cls.sim, cls.judge_sim)]
        cls.tmpdir.cleanup()
        for e in errs:
            if e:
                raise AssertionError(e)

    def setUp(self):
        for s in (self.sim, self.judge_sim):
            s.faults()
            s.reset()

    @classmethod
    def write_config(cls, config, name):
        path = os.path.join(cls.tmp, name)
        with open(path, "w") as f:
            json.dump(config, f)
        return path

    @classmethod
    def run_eval(cls, *args, config=None, dataset=DATASET, out=None):
        cmd = [BRIEFD, "eval", "--config", config or cls.config_path]
        if dataset is not None:
            cmd += ["--dataset", dataset]
        if out is not None:
            cmd += ["--out", os.path.join(cls.tmp, out)]
        r = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=300)
        return r.returncode, r.stdout, r.stderr

    @classmethod
    def full_run(cls, out, *args):
        for s in (cls.sim, cls.judge_sim):
            s.reset()
        rc, stdout, stderr = cls.run_eval(*args, out=out)
        assert rc == 0, "exit %d\n%s\n%s" % (rc, stdout, stderr)
        d = os.path.join(cls.tmp, out)
        with open(os.path.join(d, "report.json")) as f:
            rep = json.load(f)
        stats = {"models": cls.sim.stats(), "judge": cls.judge_sim.stats()}
        return rep, d, stdout, stats

    def eval_ok(self, *args, **kw):
        rc, stdout, stderr = self.run_eval(*args, **kw)
        self.assertEqual(rc, 0, stdout + stderr)
        with open(os.path.join(self.tmp, kw["out"], "report.json")) as f:
            return json.load(f), stdout, stderr

    # --- the report and its three forms ---

    def test_report_shape(self):
        rep = self.rep
        self.assertEqual(rep["dataset"], {"path": DATASET, "n": 10, "failed": 0})
        self.assertEqual(rep["judge"], "gpt-oss-20b")
        self.assertRegex(rep["config_version"], "^[0-9a-f]{16}$")
        self.assertEqual(list(rep["arms"]), ["draft", "refine", "hybrid"])
        for name, arm in rep["arms"].items():
            self.assertEqual(arm["n"], 10)
            q = arm["quality"]
            self.assertEqual(q["judged"], 10)
            self.assertEqual(q["null"], 0)
            self.assertAlmostEqual(q["overall"], (q["coherence"] + q["faithfulness"] +
                                                  q["brevity"]) / 3, places=12)
            lo, hi = q["overall_ci95"]
            self.assertTrue(1 <= lo <= q["overall"] <= hi <= 5, (name, q))
            self.assertLessEqual(arm["latency_ms"]["total"]["p50"],
                                 arm["latency_ms"]["total"]["p95"])
        self.assertEqual(rep["arms"]["draft"]["refine_rate"], 0)
        self.assertEqual(rep["arms"]["refine"]["refine_rate"], 1)
        decisions = [d["decision"] for d in rep["documents"]]
        rate = decisions.count("refine") / 10
        self.assertEqual(rep["arms"]["hybrid"]["refine_rate"], rate)
        # the guard (max_refine_rate 0.1) is off: more than 10% refined, not all
        self.assertTrue(0.1 < rate < 1, decisions)
        # the simulator's refined briefs score higher here: APGR and CPT are defined
        self.assertIsNone(rep["quality_gap"]["note"])
        self.assertGreater(rep["quality_gap"]["gap"], 0)
        self.assertTrue(0 < rep["apgr"] <= 1.5)
        self.assertTrue(0 <= rep["cpt"]["50"] <= rep["cpt"]["80"] <= 1)
        self.assertEqual(rep["judgements"], {"calls": 20, "failed": 0, "null": 0})
        self.assertEqual([d["id"] for d in rep["documents"]], [d["id"] for d in self.docs])

    def test_hybrid_is_routing(self):
        """hybrid serves the refined brief exactly where routing refined."""
        rep = self.rep
        served = [d["scores"]["refine" if d["decision"] == "refine" else "draft"]["overall"]
                  for d in rep["documents"]]
        self.assertAlmostEqual(rep["arms"]["hybrid"]["quality"]["overall"],
                               sum(served) / len(served), places=12)
        by_id = {d["id"]: d for d in rep["documents"]}
        # the topic policy refines the legal and security documents whatever their length
        self.assertEqual(by_id["lease-dispute"]["decision"], "refine")
        self.assertEqual(by_id["breach-notice"]["decision"], "refine")

    def test_files_agree(self):
        rep = self.rep
        with open(os.path.join(self.out, "report.md")) as f:
            md = f.read()
        with open(os.path.join(self.out, "report.html")) as f:
            page = f.read()
        rows = [arm_cells(name, arm) for name, arm in rep["arms"].items()]
        for cells in rows:
            self.assertIn(md_row(cells), md)
            self.assertIn(md_row(cells), self.stdout)
        self.assertEqual(len(self.stdout.strip().splitlines()), 2 + len(rows))
        t = Tables()
        t.feed(page)
        self.assertEqual(t.tables["arms"], rows)
        sweep = [["%s (policies[%d])" % (p["policy"], p["index"]), fmt(p["threshold"], "%.6g"),
                  fmt(p["refine_rate"], "%.3f"), fmt(p["cost_per_job"], "%.6g"),
                  fmt(p["overall"], "%.3f"),
                  fmt((p["overall"] - rep["quality_gap"]["draft"]) / rep["quality_gap"]["gap"],
                      "%.3f")] for p in rep["sweep"]]
        self.assertEqual(t.tables["sweep"], sweep)
        for cells in sweep:
            self.assertIn(md_row(cells), md)
        self.assertEqual(len(t.tables["documents"]), 10)
        self.assertIn("APGR %.3f; CPT(50%%) %.3f, CPT(80%%) %.3f" % (
            rep["apgr"], rep["cpt"]["50"], rep["cpt"]["80"]), md)
        self.assertIn("APGR %.3f; CPT(50%%) %.3f, CPT(80%%) %.3f" % (
            rep["apgr"], rep["cpt"]["50"], rep["cpt"]["80"]), page)
        # standalone: inline SVG charts, nothing fetched, no script
        self.assertGreaterEqual(page.count("<svg"), 3)
        self.assertNotIn("script", t.tags)
        self.assertFalse([x for x in t.tags if x.startswith("external:")], t.tags)
        self.assertNotIn("<link", page)

    def test_sweep(self):
        rep = self.rep
        by_policy = {}
        for p in rep["sweep"]:
            by_policy.setdefault((p["policy"], p["index"]), []).append(p)
        self.assertEqual(sorted(by_policy), [("confidence", 2), ("length", 0)])
        lengths = sorted({len(d["briefs"]["draft"]) for d in rep["documents"]})
        got = [p["threshold"] for p in by_policy[("length", 0)]]
        self.assertEqual(got, [lengths[0] - 1] + lengths + [lengths[-1] + 1])
        # the thresholds beyond the ends: length refines nothing past the longest draft,
        # everything at the shortest; the extremes of the chain bound every other point
        last = by_policy[("length", 0)][-1]
        first = by_policy[("length", 0)][0]
        self.assertGreaterEqual(first["refine_rate"], last["refine_rate"])
        self.assertEqual(first["refine_rate"], 1)
        for pts in by_policy.values():
            rates = [p["refine_rate"] for p in pts]
            self.assertEqual(rates, sorted(rates, reverse=pts[0]["policy"] == "length"))
        # the first swept length >= the configured 300 decides like 300 (no draft length lies
        # in between): that point is the hybrid arm again
        at300 = [p for p in by_policy[("length", 0)] if p["threshold"] >= 300][0]
        hyb = rep["arms"]["hybrid"]
        self.assertEqual(at300["refine_rate"], hyb["refine_rate"])
        self.assertEqual(at300["cost_per_job"], hyb["cost_usd"]["per_job"])
        self.assertAlmostEqual(at300["overall"], hyb["quality"]["overall"], places=12)

    def test_costs_to_the_last_digit(self):
        rep, st = self.rep, self.stats
        m = self.defaults["models"]
        sums = {"draft": [0, 0], "refine": [0, 0], "judge": [0, 0]}
        totals = {"draft": 0.0, "refine": 0.0, "hybrid": 0.0}
        evaluation = 0.0
        for src, d in zip(self.docs, rep["documents"]):
            text, mw, ins = src["text"], src.get("max_words", 120), src.get("instructions")
            draft, refine = d["briefs"]["draft"], d["briefs"]["refine"]
            p = len(m["draft"]["prompt"]["system"].encode()) + len(
                render(m["draft"]["prompt"]["user"], text, mw, ins).encode())
            want = {"draft": (tokens(p), tokens(len(draft.encode())))}
            p = len(m["refine"]["prompt"]["system"].encode()) + len(
                render(m["refine"]["prompt"]["user"], text, mw, ins, draft).encode())
            want["refine"] = (tokens(p), tokens(len(refine.encode())))
            for stage in ("draft", "refine"):
                u = d["usage"][stage]
                self.assertEqual((u["prompt_tokens"], u["completion_tokens"]), want[stage])
                self.assertFalse(u["estimated"])
                self.assertEqual(d["cost_usd"][stage], cost(*want[stage], PRICES[stage]))
                sums[stage][0] += want[stage][0]
                sums[stage][1] += want[stage][1]
            dc, rc = d["cost_usd"]["draft"], d["cost_usd"]["refine"]
            totals["draft"] += dc
            totals["refine"] += dc + rc
            totals["hybrid"] += dc + rc if d["decision"] == "refine" else dc
            for stage, brief in (("draft", draft), ("refine", refine)):
                ju = d["judge_usage"].get(stage)
                if ju is None:  # the same text as the draft: judged once
                    self.assertEqual(refine, draft)
                    continue
                user = "Document:\n%s\n\nMaximum words: %d\n\nBrief:\n%s" % (text, mw, brief)
                jp = tokens(len(m["judge"]["prompt"]["system"].encode()) + len(user.encode()))
                self.assertEqual(ju["prompt_tokens"], jp)
                self.assertEqual(ju["cost_usd"],
                                 cost(jp, ju["completion_tokens"], PRICES["judge"]))
                evaluation += ju["cost_usd"]
                sums["judge"][0] += jp
                sums["judge"][1] += ju["completion_tokens"]
        for name, total in totals.items():
            self.assertEqual(rep["arms"][name]["cost_usd"]["total"], total)
            self.assertEqual(rep["arms"][name]["cost_usd"]["per_job"], total / 10)
        self.assertEqual(rep["evaluation_usd"], evaluation)
        # the simulators counted the same tokens (judge spend is not in any arm)
        bm = st["models"]["by_model"]
        self.assertEqual([bm["phi-4-mini"]["prompt_tokens"], bm["phi-4-mini"]["completion_tokens"]],
                         sums["draft"])
        self.assertEqual([bm["gpt-oss-20b"]["prompt_tokens"],
                          bm["gpt-oss-20b"]["completion_tokens"]], sums["refine"])
        jm = st["judge"]["by_model"]["gpt-oss-20b"]
        self.assertEqual([jm["prompt_tokens"], jm["completion_tokens"]], sums["judge"])
        self.assertEqual(st["judge"]["by_kind"], {"chat": 0, "judge": 20})
        self.assertEqual(st["models"]["by_kind"], {"chat": 20, "judge": 0})

    def test_temperature_zero_and_schema(self):
        """Every call at temperature 0 (the config says 0.9 for the draft); judge calls ask
        for the brief_rubric schema."""
        self.run_eval("--limit", "2", out="temp")
        reqs = self.sim.requests() + self.judge_sim.requests()
        self.assertEqual(len(reqs), 2 * 2 + 2 * 2)
        self.assertEqual({r["temperature"] for r in reqs}, {0})
        judge = [r for r in reqs if r["kind"] == "judge"]
        self.assertEqual(len(judge), 4)
        self.assertEqual({r["response_format"] for r in judge}, {"brief_rubric"})

    def test_checks_in_report(self):
        for d in self.rep["documents"]:
            for stage in ("draft", "refine"):
                c = d["checks"][stage]
                text = re.sub(r"^\s*(?i:brief:|summary:)", "", d["briefs"][stage])
                words = len([w for w in text.split() if re.search(r"[A-Za-z0-9]", w)])
                self.assertEqual(c["words"], words, d["briefs"][stage])
                src = [s for s in self.docs if s["id"] == d["id"]][0]
                self.assertEqual(c["over_max_words"], words > src.get("max_words", 120))
                # extractive simulated briefs invent no number
                self.assertEqual(c["unsupported_numbers"], [])

    # --- determinism, options ---

    def test_deterministic(self):
        rep2, _, _, _ = self.full_run("out-again", "--concurrency", "1")
        self.assertEqual(without_timings(rep2), without_timings(self.rep))
        # same figures, only timings differ: the latencies are really there
        self.assertIn("latency_ms", rep2["arms"]["draft"])

    def test_concurrency(self):
        self.sim.rules(Sim.rule(model="phi-4-mini", delay_ms=150))
        self.run_eval("--concurrency", "1", "--limit", "3", "--arms", "draft", out="c1")
        self.assertEqual(self.sim.stats()["by_model"]["phi-4-mini"]["peak_inflight"], 1)
        self.sim.reset()
        self.run_eval("--concurrency", "3", "--limit", "6", "--arms", "draft", out="c3")
        self.assertEqual(self.sim.stats()["by_model"]["phi-4-mini"]["peak_inflight"], 3)

    def test_arms_and_limit(self):
        rep, stdout, _ = self.eval_ok("--arms", "hybrid", "--limit", "4", out="hyb")
        self.assertEqual(list(rep["arms"]), ["hybrid"])
        self.assertEqual(rep["dataset"]["n"], 4)
        self.assertEqual([d["id"] for d in rep["documents"]], [d["id"] for d in self.docs[:4]])
        self.assertEqual(len(stdout.strip().splitlines()), 3)
        self.assertTrue(stdout.strip().splitlines()[2].startswith("| hybrid |"))
        # only what hybrid serves: refine calls where routed, one judge call per document
        refined = [d for d in rep["documents"] if d["decision"] == "refine"]
        st = self.sim.stats()["by_model"]
        self.assertEqual(st["phi-4-mini"]["requests"], 4)
        self.assertEqual(st["gpt-oss-20b"]["requests"], len(refined))
        self.assertEqual(self.judge_sim.stats()["requests"], 4)
        self.assertEqual(rep["sweep"], [])
        self.assertIsNone(rep["apgr"])
        self.assertIn("both the draft and the refine arm", rep["quality_gap"]["note"])
        for d in rep["documents"]:
            self.assertEqual(list(d["scores"]), [d["decision"] if d["decision"] == "refine"
                                                 else "draft"])
        # the same documents' hybrid figures as in the full run's documents
        full = {d["id"]: d for d in self.rep["documents"]}
        for d in rep["documents"]:
            self.assertEqual(d["decision"], full[d["id"]]["decision"])

    def test_draft_arm_calls_no_refine_model(self):
        rep, _, _ = self.eval_ok("--arms", "draft", out="draft-only")
        self.assertEqual(list(rep["arms"]), ["draft"])
        self.assertEqual(self.sim.stats()["by_model"]["gpt-oss-20b"]["requests"], 0)
        self.assertEqual(rep["arms"]["draft"], self.rep["arms"]["draft"] | {
            "latency_ms": rep["arms"]["draft"]["latency_ms"]})

    def test_identical_briefs_judged_once(self):
        """A refined brief identical to its draft is judged once (here the refine slot is the
        draft model with the draft prompt, so both answers are the same)."""
        cfg = json.loads(json.dumps(self.config))
        cfg["models"]["refine"].update({"name": "phi-4-mini",
                                        "prompt": self.defaults["models"]["draft"]["prompt"]})
        rc, stdout, stderr = self.run_eval("--limit", "3", out="same",
                                           config=self.write_config(cfg, "same.json"))
        self.assertEqual(rc, 0, stderr)
        with open(os.path.join(self.tmp, "same", "report.json")) as f:
            rep = json.load(f)
        self.assertEqual(rep["judgements"], {"calls": 3, "failed": 0, "null": 0})
        self.assertEqual(self.judge_sim.stats()["requests"], 3)
        for d in rep["documents"]:
            self.assertEqual(d["briefs"]["refine"], d["briefs"]["draft"])
            self.assertEqual(d["scores"]["refine"], d["scores"]["draft"])
            self.assertEqual(list(d["judge_usage"]), ["draft"])
        self.assertEqual(rep["arms"]["refine"]["quality"], rep["arms"]["draft"]["quality"])
        self.assertEqual(rep["evaluation_usd"],
                         sum(d["judge_usage"]["draft"]["cost_usd"] for d in rep["documents"]))

    # --- the judge's answers ---

    def test_judge_wrap_modes(self):
        base = {d["id"]: d["scores"]["draft"] for d in self.rep["documents"][:3]}
        for wrap in ("none", "prose", "fence"):
            self.judge_sim.faults(judge_wrap=wrap)
            rep, _, _ = self.eval_ok("--arms", "draft", "--limit", "3", out="wrap-" + wrap)
            self.assertEqual(rep["judgements"], {"calls": 3, "failed": 0, "null": 0}, wrap)
            self.assertEqual({d["id"]: d["scores"]["draft"] for d in rep["documents"]}, base,
                             wrap)

    def test_out_of_range_and_garbage_are_null(self):
        for knob, why in (("judge_out_of_range", "out of range (7; expected 1 to 5)"),
                          ("judge_garbage", "no JSON object in the answer")):
            self.judge_sim.faults(**{knob: True})
            rep, stdout, stderr = self.eval_ok("--arms", "draft", "--limit", "3", out=knob)
            self.assertEqual(rep["judgements"], {"calls": 3, "failed": 0, "null": 3})
            q = rep["arms"]["draft"]["quality"]
            self.assertEqual((q["judged"], q["null"], q["overall"], q["overall_ci95"]),
                             (0, 3, None, None))
            for d in rep["documents"]:
                self.assertIsNone(d["scores"]["draft"])
                self.assertIn(why, d["judge_errors"]["draft"])
            self.assertIn("| draft | 3 | 0.000 | n/a | n/a |", stdout)
            # the judge still answered, and its answers are still paid for
            self.assertGreater(rep["evaluation_usd"], 0)

    def test_some_null(self):
        """A judge answer cut at its token limit (one document): that judgement is null, the
        means are over the others."""
        self.judge_sim.rules(Sim.rule(contains="Northwind", kind="judge", max_tokens=5))
        rep, _, _ = self.eval_ok("--arms", "draft", "--limit", "3", out="some-null")
        self.assertEqual(rep["judgements"], {"calls": 3, "failed": 0, "null": 1})
        d0 = rep["documents"][0]
        self.assertEqual(d0["id"], "q3-results")
        self.assertIsNone(d0["scores"]["draft"])
        self.assertEqual(d0["judge_errors"]["draft"], "no JSON object in the answer")
        rest = [d["scores"]["draft"]["overall"] for d in rep["documents"][1:]]
        q = rep["arms"]["draft"]["quality"]
        self.assertEqual((q["judged"], q["null"]), (2, 1))
        self.assertAlmostEqual(q["overall"], sum(rest) / 2, places=12)

    def test_harmony_leak(self):
        """A judge whose harmony channels leak into content: the final channel is read."""
        self.judge_sim.faults(harmony_leak=True)
        rep, _, _ = self.eval_ok("--arms", "draft", "--limit", "3", out="harmony")
        base = {d["id"]: d["scores"]["draft"] for d in self.rep["documents"][:3]}
        self.assertEqual({d["id"]: d["scores"]["draft"] for d in rep["documents"]}, base)

    def test_judge_retried(self):
        """Judge calls go through the model client: a 500 is retried."""
        self.judge_sim.faults(fail_next=2)
        rep, _, _ = self.eval_ok("--arms", "draft", "--limit", "3", out="retry")
        self.assertEqual(rep["judgements"], {"calls": 3, "failed": 0, "null": 0})
        self.assertEqual(self.judge_sim.stats()["requests"], 5)

    # --- refusals ---

    def test_bad_dataset_lines(self):
        path = os.path.join(self.tmp, "bad.jsonl")
        lines = ['{"id": "a", "text": "fine"}', "", '{"text": ""}', "not json",
                 '{"id": "a", "text": "again"}', '{"text": "x", "priority": "high"}',
                 '{"text": "x", "max_words": 3}', '{"text": "ok"}']
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        rc, stdout, stderr = self.run_eval(dataset=path, out="bad-out")
        self.assertEqual(rc, 1, stderr)
        for line, msg in ((3, "field 'text' must not be empty"), (4, "invalid JSON"),
                          (5, "id 'a' already used on line 1"),
                          (6, "unknown field 'priority'"),
                          (7, "field 'max_words' must be between 10 and 2000")):
            self.assertIn("%s:%d: %s" % (path, line, msg), stderr)
        self.assertIn("5 invalid lines; nothing was evaluated", stderr)
        self.assertNotIn(":1:", stderr.replace(path, "P"))
        self.assertNotIn(":8:", stderr.replace(path, "P"))
        self.assertEqual(stdout, "")
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "bad-out")))
        self.assertEqual(self.sim.stats()["requests"], 0)
        # empty and missing files
        empty = os.path.join(self.tmp, "empty.jsonl")
        with open(empty, "w") as f:
            f.write("\n\n")
        rc, _, stderr = self.run_eval(dataset=empty)
        self.assertEqual((rc, stderr.strip()), (1, "%s: no documents" % empty))
        rc, _, stderr = self.run_eval(dataset=os.path.join(self.tmp, "missing.jsonl"))
        self.assertEqual(rc, 1)
        self.assertIn("cannot open", stderr)

    def test_usage_errors(self):
        for args, msg in ((["--arms", "draft,nope"], "--arms takes"),
                          (["--arms", "draft,draft"], "--arms takes"),
                          (["--concurrency", "0"], "--concurrency N"),
                          (["--concurrency", "x"], "--concurrency N"),
                          (["--limit", "0"], "--limit N"),
                          (["--bogus", "1"], "usage:")):
            rc, _, stderr = self.run_eval(*args)
            self.assertEqual(rc, 2, args)
            self.assertIn(msg, stderr, args)
        rc, _, stderr = self.run_eval(dataset=None)
        self.assertEqual((rc, stderr.strip()), (2, "briefd eval: --dataset FILE is required"))
        r = subprocess.run([BRIEFD, "eval", "--dataset", DATASET], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual((r.returncode, r.stderr.strip()),
                         (2, "briefd eval: --config F is required"))
        bad = self.write_config({"models": {"judge": {"temperature": 3}}}, "bad.json")
        rc, _, stderr = self.run_eval(config=bad)
        self.assertEqual(rc, 1)
        self.assertIn("models.judge.temperature: must be between 0 and 2", stderr)

    def test_unreachable(self):
        cfg = json.loads(json.dumps(self.config))
        dead = "http://127.0.0.1:%d/v1" % free_port()
        cfg["models"]["draft"]["base_url"] = cfg["models"]["refine"]["base_url"] = dead
        rc, stdout, stderr = self.run_eval(config=self.write_config(cfg, "dead.json"),
                                           out="dead")
        self.assertEqual(rc, 1, stderr)
        self.assertIn("gave up: the first 3 draft calls all failed", stderr)
        self.assertIn("(connect)", stderr)
        with open(os.path.join(self.tmp, "dead", "report.json")) as f:
            rep = json.load(f)
        self.assertEqual(rep["dataset"]["failed"], 10)
        self.assertEqual(self.judge_sim.stats()["requests"], 0)
        # a judge that cannot be reached
        cfg = json.loads(json.dumps(self.config))
        cfg["models"]["judge"]["base_url"] = dead
        rc, _, stderr = self.run_eval("--arms", "draft", config=self.write_config(cfg, "dj.json"))
        self.assertEqual(rc, 1, stderr)
        self.assertIn("gave up: the first 3 judge calls all failed", stderr)

    def test_example_config_is_the_defaults(self):
        """The prompts these tests compute costs from are the embedded defaults."""
        empty = self.write_config({}, "empty.json")
        out = [subprocess.run([BRIEFD, "check", "--config", p], capture_output=True,
                              text=True, timeout=60).stdout.split("version ")[1]
               for p in (EXAMPLE, empty)]
        self.assertEqual(out[0], out[1])


SIGNAL_DOC = "Acme booked revenue of 987654321 dollars in the quarter, the board said."
LONG_DOC = ("The plant in Ohio ran three full shifts through March while output rose to 4,120 "
            "units for the quarter. Two assembly lines were retooled for the new model at a "
            "cost of 2.5 million dollars over six weeks. Staff training took 300 hours. ")


class Signals(Stack):
    """The cheap checks of the brief served, in a finished job's signals."""
    # a draft prompt without the word limit: the simulated draft then writes its own length
    # (a third of the document, at least 25 words), over a small max_words
    config_over = {"routing": {"policies": [], "guards": {"max_refine_rate": None}},
                   "models": {"draft": {"prompt": {"user": "Summarize.\n\nDocument:\n{text}"}}}}

    def test_signals_carry_checks(self):
        # the draft cut off inside the number: its start is a number the document lacks
        self.sim.rules(Sim.rule(contains="Acme booked", model="phi-4-mini", max_tokens=7))
        st, job, _ = self.briefd.post_job({"text": SIGNAL_DOC, "max_words": 40}, wait=30)
        self.assertEqual(st, 200, job)
        brief = job["result"]["brief"]
        self.assertEqual(brief, SIGNAL_DOC[:28])
        sig = job["signals"]
        self.assertTrue(sig["truncated"])
        self.assertEqual(sig["words"], 5)
        self.assertFalse(sig["over_max_words"])
        self.assertEqual(sig["unsupported_numbers"], ["98765"])
        # a whole brief over its limit, every number supported
        st, job, _ = self.briefd.post_job({"text": LONG_DOC, "max_words": 10}, wait=30)
        self.assertEqual(st, 200, job)
        sig = job["signals"]
        words = len(job["result"]["brief"].split())
        self.assertEqual(sig["words"], words)
        self.assertGreater(words, 10)
        self.assertTrue(sig["over_max_words"])
        self.assertEqual(sig["unsupported_numbers"], [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
