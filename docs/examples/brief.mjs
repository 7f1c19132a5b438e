// brief.mjs - submit a document to briefd, wait for its brief, print route, cost and latency.
//
//   node docs/examples/brief.mjs [BASE_URL] < document.txt
//
// Node.js 18+ (global fetch), nothing to install. BASE_URL defaults to $BRIEFD_URL or
// http://127.0.0.1:8080; BRIEFD_API_KEY is sent as a bearer key when set (authentication on).
// The operations and fields are those of docs/openapi.yaml (served at /openapi.json).
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";

const base = (process.argv[2] ?? process.env.BRIEFD_URL ?? "http://127.0.0.1:8080").replace(/\/$/, "");
const auth = process.env.BRIEFD_API_KEY ? { Authorization: `Bearer ${process.env.BRIEFD_API_KEY}` } : {};
const text = readFileSync(0, "utf8");
const sleep = (s) => new Promise((r) => setTimeout(r, s * 1000));

// submitJob (POST /v1/jobs): ?wait=30 holds the request until the job ends, for up to 30 s.
// The Idempotency-Key makes a retry safe: the same key and body answer with the same job.
const idempotencyKey = `example-${randomUUID()}`;
async function submit() {
  for (let attempt = 1; ; attempt++) {
    const res = await fetch(`${base}/v1/jobs?wait=30`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "Idempotency-Key": idempotencyKey, ...auth },
      body: JSON.stringify({ text, max_words: 80, metadata: { source: "example" } }),
    });
    // 429 (queue full, tenant limits) and 503 (Redis, shutdown) say when to come back
    if ((res.status === 429 || res.status === 503) && attempt < 3) {
      await sleep(Number(res.headers.get("Retry-After") ?? 1));
      continue;
    }
    return res;
  }
}

let res = await submit();
let job = await res.json();
if (!res.ok) throw new Error(`briefd answered ${res.status} ${job.error.code}: ${job.error.message}`);
// 202: not finished yet - getJob (GET /v1/jobs/{id}?wait=30) until it has ended (200)
while (res.status === 202) {
  res = await fetch(`${base}/v1/jobs/${job.id}?wait=30`, { headers: auth });
  job = await res.json();
  if (!res.ok) throw new Error(`briefd answered ${res.status} ${job.error.code}: ${job.error.message}`);
}
// A failed job is a 200 too: the failure is in job.error (the Job schema's JobError).
console.log(JSON.stringify({
  id: job.id,
  status: job.status,
  route: job.route?.decision ?? null,          // keep | refine (Route.decision)
  model: job.result?.model ?? null,            // who wrote the brief
  cost_usd: job.cost_usd?.total ?? null,       // JobCost.total
  latency_ms: job.latency_ms?.total ?? null,   // JobLatency.total
  replayed: res.headers.get("Idempotent-Replayed") === "true",
  brief: job.result?.brief ?? null,
  error: job.error,
}, null, 2));
