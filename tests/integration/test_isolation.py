"""Integration: tenant isolation (issue 13, item 6). A key bound to a tenant ("tenant=KEY")
sees only its tenant's jobs - GET, ?wait, the events stream: another tenant's job (or a job of
no tenant) is 404, as if there were none - and only its own figures in /v1/stats (by=tenant
shows its own row; by=source is refused). Untenanted and admin keys see everything. The job
records its tenant."""
import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Sim, Stack, eventually, request  # noqa: E402

TEXT = "Revenue grew 12 percent. Costs were flat. The board approved a new data center."
KEYS = {"acme": "acme-key-0001", "globex": "globex-key-0001", "plain": "plain-key-0001",
        "admin": "admin-key-0001"}


def auth(who):
    return {"Authorization": "Bearer " + KEYS[who]}


class TenantIsolation(Stack):
    @classmethod
    def setUpClass(cls):
        os.environ["T_ISO_KEYS"] = "acme=%s, globex=%s, %s" % (
            KEYS["acme"], KEYS["globex"], KEYS["plain"])
        os.environ["T_ISO_ADMIN"] = KEYS["admin"]
        cls.config_over = {"auth": {"keys_env": "T_ISO_KEYS", "admin_keys_env": "T_ISO_ADMIN"}}
        super().setUpClass()
        cls.jobs = {}
        for who, meta in (("acme", {"source": "crm"}), ("acme", {"source": "wiki"}),
                          ("globex", {"source": "crm", "tenant": "acme"}),
                          ("plain", {"source": "crm"}), ("plain", {"tenant": "initech"})):
            st, job, _ = cls.briefd.post_job({"text": TEXT + " " + who, "metadata": meta},
                                             wait=30, headers=auth(who))
            assert st == 200, (st, job)
            cls.jobs.setdefault(who, []).append(job)

    def get(self, path, who):
        return self.briefd.get(path, headers=auth(who))

    def test_job_records_its_tenant(self):
        self.assertEqual([j["tenant"] for j in self.jobs["acme"]], ["acme", "acme"])
        # a tenant key's tenant wins over what the body claims
        self.assertEqual(self.jobs["globex"][0]["tenant"], "globex")
        self.assertEqual(self.jobs["globex"][0]["metadata"]["tenant"], "globex")
        self.assertNotIn("tenant", self.jobs["plain"][0])
        self.assertEqual(self.jobs["plain"][1]["tenant"], "initech")

    def test_get_other_tenants_job_is_404(self):
        acme, globex = self.jobs["acme"][0]["id"], self.jobs["globex"][0]["id"]
        untenanted = self.jobs["plain"][0]["id"]
        for who, jid, want in (("acme", acme, 200), ("globex", acme, 404),
                               ("globex", globex, 200), ("acme", globex, 404),
                               ("acme", untenanted, 404), ("plain", acme, 200),
                               ("plain", globex, 200), ("admin", acme, 200),
                               ("admin", untenanted, 200)):
            for path in ("/v1/jobs/" + jid, "/v1/jobs/%s?wait=5" % jid):
                t = time.time()
                st, body, _ = self.get(path, who)
                self.assertEqual(st, want, (who, path, body))
                self.assertLess(time.time() - t, 3.0, (who, path))
                if want == 404:
                    self.assertEqual(body["error"]["code"], "job_not_found")
                    self.assertNotIn("result", body)
                    self.assertNotIn(TEXT[:20], json.dumps(body))
                else:
                    self.assertEqual(body["id"], jid)

    def test_events_of_other_tenants_job(self):
        acme = self.jobs["acme"][0]["id"]
        st, body, _ = self.get("/v1/jobs/%s/events" % acme, "acme")
        self.assertEqual(st, 200)
        self.assertIn(b"event: done", body)
        st, body, _ = self.get("/v1/jobs/%s/events" % acme, "globex")
        text = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.assertNotIn(b"event: done", text)
        self.assertNotIn(b"succeeded", text)
        self.assertIn(b"job_not_found", text)

    def test_parked_wait_on_running_job_of_another_tenant(self):
        """A ?wait on another tenant's job that is still running answers 404 at once and
        never the job - not even when the job ends while the request is parked."""
        self.sim.rules(Sim.rule("SLOWACME", delay_ms=1500))
        st, job, _ = self.briefd.post_job({"text": TEXT + " SLOWACME"}, headers=auth("acme"))
        self.assertEqual(st, 202, job)
        t = time.time()
        st, body, _ = self.get("/v1/jobs/%s?wait=10" % job["id"], "globex")
        self.assertEqual(st, 404, body)
        self.assertLess(time.time() - t, 1.4)
        st, body, _ = self.get("/v1/jobs/%s/events" % job["id"], "globex")
        text = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.assertNotIn(b"event: done", text)
        self.assertNotIn(b"drafting", text)
        self.assertIn(b"job_not_found", text)
        st, done, _ = self.get("/v1/jobs/%s?wait=10" % job["id"], "acme")
        self.assertEqual((st, done["status"]), (200, "succeeded"))

    def stats(self, who, by=None):
        path = "/v1/stats?window=3600" + ("&by=" + by if by else "")
        return self.get(path, who)

    def test_stats_show_own_figures_only(self):
        # statistics are folded about once a second: wait for all five jobs (and the one of
        # the parked test, if it ran first) to show up for an untenanted key
        everyone = eventually(lambda: self.stats("plain", "tenant")[1],
                              lambda s: s["jobs"] >= 5, 15, "the jobs in /v1/stats")
        mine = self.stats("acme")[1]
        acme_all = everyone["groups"]["acme"]["jobs"]
        self.assertEqual(mine["jobs"], acme_all)
        self.assertGreaterEqual(mine["jobs"], 2)
        self.assertLess(mine["jobs"], everyone["jobs"])
        self.assertEqual(sum(p["jobs"] for p in mine["series"]), mine["jobs"])
        self.assertEqual(set(everyone["groups"]), {"acme", "globex", "initech"})
        st, by_tenant, _ = self.stats("acme", "tenant")
        self.assertEqual(st, 200)
        self.assertEqual(set(by_tenant["groups"]), {"acme"})
        self.assertEqual(by_tenant["groups"]["acme"]["jobs"], mine["jobs"])
        st, body, _ = self.stats("globex", "source")
        self.assertEqual(st, 403, body)
        self.assertEqual(body["error"]["code"], "tenant_scope")
        self.assertEqual(body["error"]["param"], "by")
        g = self.stats("globex")[1]
        self.assertEqual(g["jobs"], everyone["groups"]["globex"]["jobs"])
        admin = self.stats("admin", "source")[1]
        self.assertEqual(admin["jobs"], everyone["jobs"])
        self.assertIn("crm", admin["groups"])


if __name__ == "__main__":
    unittest.main()
