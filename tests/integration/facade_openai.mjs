// facade_openai.mjs - the official OpenAI JS SDK (npm `openai`) against briefd's
// /v1/chat/completions facade: a plain completion, a streamed one, models.list,
// models.retrieve, and the SDK's typed errors for an unknown model (404 NotFoundError, on a
// completion and on models.retrieve), for tool calling (400 BadRequestError), for a streamed
// request whose draft fails (the stream's error chunk: APIError) and for a wrong key (401
// AuthenticationError); the x-briefd-* response headers as the SDK hands them out
// (withResponse), on a plain completion sent with an X-Request-Id and a traceparent and on a
// streamed one (whose last chunk carries the route and the cost). Prints one JSON object
// with what it saw.
// usage: node facade_openai.mjs BASE_URL API_KEY
// (the caller makes the draft model refuse documents that mention "Zanzibar")
import OpenAI from "openai";

const client = new OpenAI({ baseURL: process.argv[2], apiKey: process.argv[3] || "unused",
                            maxRetries: 0 });
const TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const text = "Revenue grew 12 percent in the third quarter. Costs were flat. " +
  "The board approved a new data center. A lawsuit is pending.";
const out = {};

const r = await client.chat.completions.create({
  model: "briefd-hybrid",
  messages: [{ role: "system", content: "focus on risks" }, { role: "user", content: text }],
  max_tokens: 80,
});
out.id = r.id;
out.content = r.choices[0].message.content;
out.finish_reason = r.choices[0].finish_reason;
out.usage = r.usage;
out.job_id = r.briefd && r.briefd.job_id;

const stream = await client.chat.completions.create({
  model: "briefd-hybrid",
  messages: [{ role: "user", content: text }],
  stream: true,
  stream_options: { include_usage: true },
});
let streamed = "";
let chunks = 0;
for await (const chunk of stream) {
  chunks++;
  if (chunk.choices.length) streamed += chunk.choices[0].delta.content || "";
  if (chunk.usage) out.stream_usage = chunk.usage;
}
out.streamed = streamed;
out.chunks = chunks;

const models = await client.models.list();
out.models = models.data.map((m) => m.id);

try {
  await client.chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: "x" }] });
  out.error = null;
} catch (e) {
  out.error = { status: e.status, code: e.code, type: e.type, name: e.constructor.name };
}

const m = await client.models.retrieve("briefd-hybrid");
out.retrieved = { id: m.id, object: m.object, owned_by: m.owned_by };

const typed = (e) =>
  ({ status: e.status, code: e.code, type: e.type, name: e.constructor.name, param: e.param });
try {
  await client.models.retrieve("gpt-4o");
  out.retrieve_error = null;
} catch (e) {
  out.retrieve_error = typed(e);
}
try {
  await client.chat.completions.create({
    model: "briefd-hybrid",
    messages: [{ role: "user", content: text }],
    tools: [{ type: "function", function: { name: "lookup", parameters: { type: "object" } } }],
  });
  out.tools_error = null;
} catch (e) {
  out.tools_error = typed(e);
}
// the x-briefd-* headers, as the SDK gives them to its caller
const briefdHeaders = (resp) => ({
  job_id: resp.headers.get("x-briefd-job-id"),
  route: resp.headers.get("x-briefd-route"),
  cost: resp.headers.get("x-briefd-cost-usd"),
  request_id: resp.headers.get("x-request-id"),
});
const traced = { headers: { "X-Request-Id": "sdk-request-0001", traceparent: TP } };
const plain = await client.chat.completions
  .create({ model: "briefd-hybrid", messages: [{ role: "user", content: text }] }, traced)
  .withResponse();
out.plain_headers = briefdHeaders(plain.response);
out.plain_job_id = plain.data.briefd && plain.data.briefd.job_id;
const streamed2 = await client.chat.completions
  .create({ model: "briefd-hybrid", messages: [{ role: "user", content: text }], stream: true })
  .withResponse();
let text2 = "";
for await (const chunk of streamed2.data) {
  if (chunk.choices.length) text2 += chunk.choices[0].delta.content || "";
  if (chunk.briefd)
    out.stream_briefd = { job_id: chunk.briefd.job_id, route: chunk.briefd.route.decision,
                          cost: chunk.briefd.cost_usd.total };
}
out.stream_headers = briefdHeaders(streamed2.response);
out.streamed2 = text2;

// a streamed request whose draft fails: the stream ends with an error chunk, which the SDK
// raises (not an empty stream that looks finished)
try {
  const failing = await client.chat.completions.create({
    model: "briefd-hybrid",
    messages: [{ role: "user", content: "The ferry to Zanzibar was delayed by a storm." }],
    stream: true,
  });
  let n = 0;
  for await (const chunk of failing) n += chunk.choices.length;
  out.stream_error = { chunks: n };
} catch (e) {
  out.stream_error = typed(e);
}

// a wrong key
const stranger = new OpenAI({ baseURL: process.argv[2], apiKey: "not-a-valid-key-0000",
                              maxRetries: 0 });
try {
  await stranger.models.retrieve("briefd-hybrid");
  out.auth_error = null;
} catch (e) {
  out.auth_error = typed(e);
}
console.log(JSON.stringify(out));
