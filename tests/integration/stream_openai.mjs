// stream_openai.mjs - the official OpenAI JS SDK (npm `openai`) streaming from briefd's
// facade: when each chunk arrived (ms since the request), its content, the usage chunk, and
// the SDK's error when the stream ends with an error chunk. Prints one JSON object.
// usage: node stream_openai.mjs BASE_URL DOCUMENT
import OpenAI from "openai";

const client = new OpenAI({ baseURL: process.argv[2], apiKey: "unused", maxRetries: 0 });
const out = { chunks: [], error: null, usage: null };
const t0 = performance.now();
try {
  const stream = await client.chat.completions.create({
    model: "briefd-hybrid",
    messages: [{ role: "user", content: process.argv[3] }],
    stream: true,
    stream_options: { include_usage: true },
  });
  for await (const chunk of stream) {
    const c = chunk.choices.length ? chunk.choices[0] : null;
    out.chunks.push({
      t: performance.now() - t0,
      role: c && c.delta.role ? c.delta.role : null,
      content: c ? c.delta.content || "" : "",
      finish_reason: c ? c.finish_reason : null,
      job_id: chunk.briefd ? chunk.briefd.job_id : null,
    });
    if (chunk.usage) out.usage = chunk.usage;
  }
} catch (e) {
  out.error = { name: e.constructor.name, code: e.code, type: e.type, message: e.message,
                t: performance.now() - t0 };
}
console.log(JSON.stringify(out));
