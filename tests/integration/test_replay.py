"""Integration: briefd replay and calibrate over a seeded history in a real Redis."""
import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BRIEFD, Sim, Stack  # noqa: E402

DOCS = [
    "Quarterly revenue rose %d percent on strong European demand. Costs were flat. "
    "The board approved a new data center. Hiring continues in the third quarter." % i
    for i in range(12)
]
# The drafts' mean logprob, by document: 5 confident, 3 unsure, 4 as the simulator likes.
CONFIDENCE = [Sim.HIGHCONF] * 5 + [Sim.LOWCONF] * 3 + [None] * 4


class Replay(Stack):
    config_over = {"routing": {"policies": [{"type": "length", "min_chars": 100000}],
                               "guards": {"max_refine_rate": None}}}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.sim.rules(*[Sim.rule("rose %d percent" % i, logprob_mean=m)
                        for i, m in enumerate(CONFIDENCE) if m is not None])
        cls.jobs = []
        for d in DOCS:
            st, j, _ = cls.briefd.post_job({"text": d, "max_words": 60}, wait=30)
            assert st == 200, j
            cls.jobs.append(j)

    def run_cli(self, *args, routing=None):
        cfg = dict(self.briefd.config)
        cfg.pop("listen", None)
        if routing is not None:
            cfg["routing"] = routing
        path = os.path.join(self.tmp, "replay.json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        r = subprocess.run([BRIEFD] + list(args) + ["--config", path], capture_output=True,
                           text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return r.stdout

    def test_replay_counts_flips(self):
        # everything was kept; a confidence policy at -0.8 refines exactly the lowconf drafts
        out = self.run_cli("replay", "--window", "3600",
                           routing={"policies": [{"type": "confidence",
                                                  "min_mean_logprob": -0.8}]})
        low = [j["id"] for j in self.jobs if j["signals"]["logprobs"]["mean"] < -0.8]
        self.assertEqual(len(low), 3)
        for jid in low:
            self.assertIn("%s  keep -> refine" % jid, out)
        self.assertEqual(out.count(" keep -> refine"), 3)
        line = [l for l in out.splitlines() if l.startswith("refine rate")][0]
        self.assertEqual(line.split()[-2:], ["0.0000", "%.4f" % (3 / len(DOCS))])
        self.assertIn("no model is called", out)

    def test_replay_same_config_no_flips(self):
        out = self.run_cli("replay", "--window", "3600",
                           routing=self.briefd.config["routing"])
        self.assertIn("no job flips", out)

    def test_calibrate_hits_target(self):
        out = self.run_cli("calibrate", "--target-refine-rate", "0.25", "--window", "3600",
                           routing={"policies": [{"type": "confidence"}]})
        snippet = json.loads(out[out.index("{"):])
        t = snippet["routing"]["policies"][0]["min_mean_logprob"]
        means = sorted(j["signals"]["logprobs"]["mean"] for j in self.jobs)
        share = sum(1 for m in means if m < t) / len(means)
        self.assertEqual(share, 0.25)
        # and replaying the proposed snippet gives that refine rate
        out2 = self.run_cli("replay", "--window", "3600", routing=snippet["routing"])
        line = [l for l in out2.splitlines() if l.startswith("refine rate")][0]
        self.assertEqual(line.split()[-1], "0.2500")


if __name__ == "__main__":
    unittest.main(verbosity=2)
