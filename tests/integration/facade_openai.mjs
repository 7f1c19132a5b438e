// facade_openai.mjs - the official OpenAI JS SDK (npm `openai`) against briefd's
// /v1/chat/completions facade: a plain completion, a streamed one, models.list,
// models.retrieve, and the SDK's typed errors for an unknown model (404 NotFoundError, on a
// completion and on models.retrieve) and for tool calling (400 BadRequestError). Prints one
// JSON object with what it saw.
// usage: node facade_openai.mjs BASE_URL
import OpenAI from "openai";

const client = new OpenAI({ baseURL: process.argv[2], apiKey: "unused", maxRetries: 0 });
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
console.log(JSON.stringify(out));
