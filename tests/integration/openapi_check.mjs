// openapi_check.mjs - hold briefd's real responses to docs/openapi.yaml.
//
//   node openapi_check.mjs SPEC.json RECORDS.jsonl [RECORDS.jsonl ...]
//
// SPEC.json is docs/openapi.yaml as JSON (cmake/openapi_json.py). Each line of a records
// file is one exchange with briefd, written by harness.py's request() (or record_response()):
//   {"test", "method", "path" (with the query), "status", "headers" {lower-case name: value},
//    "body" (text; null when not kept), "request": {"headers", "body"}}
// Every exchange is checked:
//   - the path against the spec's templates (a literal path before a templated one) and the
//     method against its operations (HEAD as GET, without a body). A path the spec does not
//     list must have answered 404 (or 401 first, or an HTTP-level refusal) with the error
//     envelope; a method it does not list 405 with Allow (or 401/403/404 first);
//   - the status against the operation's responses (exact, then 4XX/5XX);
//   - the headers: every required one present, every declared one valid, and none of
//     briefd's own (Location, Retry-After, Idempotent-Replayed, WWW-Authenticate, x-briefd-*)
//     sent where the spec does not declare it;
//   - the content type against the response's media types, and the body with ajv (JSON
//     Schema 2020-12, strict mode, every format): JSON as is, an event stream as its array
//     of {"event", "data"} (the convention docs/openapi.yaml's info describes);
//   - for a 2xx answer, the request too: the spec must accept what briefd accepted (the JSON
//     body against the request body's schema, every query parameter declared and valid,
//     path parameters and the declared request headers valid - except those the spec marks
//     `x-briefd-invalid: ignored`, which briefd ignores rather than refuses when invalid).
// Exits 0 when everything matches, else 1 after printing each mismatch (and how many of the
// same kind there were); 2 when it cannot run.
import fs from "node:fs";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";

const OWN_HEADERS = ["location", "retry-after", "idempotent-replayed", "www-authenticate"];
const UNROUTED = { 401: "Unauthorized", 404: "NotFound" };
const SPEC_ID = "openapi";
// A method a path does not serve: 405, the error envelope, Allow (the spec's info says so).
const METHOD_NOT_ALLOWED = {
  headers: { "X-Request-Id": { $ref: "#/components/headers/X-Request-Id" } },
  content: { "application/json": { schema: { $ref: "#/components/schemas/ErrorEnvelope" } } },
};

function die(msg) {
  process.stderr.write(`openapi_check: ${msg}\n`);
  process.exit(2);
}

const [specPath, ...recordFiles] = process.argv.slice(2);
if (!specPath || recordFiles.length === 0)
  die("usage: node openapi_check.mjs SPEC.json RECORDS.jsonl [...]");
const spec = JSON.parse(fs.readFileSync(specPath, "utf8"));

// --- schemas: components.schemas as one document, refs rewritten to it ---------------------
function rewriteRefs(node) {
  if (Array.isArray(node)) return node.map(rewriteRefs);
  if (node === null || typeof node !== "object") return node;
  const out = {};
  for (const [k, v] of Object.entries(node)) {
    if (k === "$ref" && typeof v === "string" && v.startsWith("#/components/schemas/"))
      out[k] = `${SPEC_ID}#/$defs/${v.slice("#/components/schemas/".length)}`;
    else out[k] = rewriteRefs(v);
  }
  return out;
}

const ajv = new Ajv2020({ strict: true, allErrors: true, allowUnionTypes: true });
addFormats(ajv);
ajv.addSchema({ $id: SPEC_ID, $defs: rewriteRefs(spec.components?.schemas ?? {}) });
for (const name of Object.keys(spec.components?.schemas ?? {}))
  ajv.getSchema(`${SPEC_ID}#/$defs/${name}`); // every schema compiles, in strict mode

const compiled = new Map();
function validator(schema) {
  if (!compiled.has(schema)) compiled.set(schema, ajv.compile(rewriteRefs(schema)));
  return compiled.get(schema);
}

// A local $ref (#/components/...) of the spec, followed until it is not one.
function deref(obj) {
  let seen = 0;
  while (obj && typeof obj.$ref === "string" && seen++ < 16) {
    const parts = obj.$ref.replace(/^#\//, "").split("/")
      .map((p) => p.replace(/~1/g, "/").replace(/~0/g, "~"));
    obj = parts.reduce((o, p) => (o ? o[p] : undefined), spec);
  }
  return obj;
}

// --- paths ---------------------------------------------------------------------------------
const templates = Object.keys(spec.paths).map((t) => {
  const names = [];
  const rx = t.split("/").map((seg) => {
    const m = /^\{(.+)\}$/.exec(seg);
    if (m) {
      names.push(m[1]);
      return "([^/]+)";
    }
    return seg.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  }).join("/");
  return { template: t, rx: new RegExp(`^${rx}$`), names };
}).sort((a, b) => a.names.length - b.names.length);

function matchPath(pathname) {
  for (const t of templates) {
    const m = t.rx.exec(pathname);
    if (m) {
      const params = {};
      t.names.forEach((n, i) => {
        try {
          params[n] = decodeURIComponent(m[i + 1]);
        } catch {
          params[n] = m[i + 1];
        }
      });
      return { template: t.template, item: spec.paths[t.template], params };
    }
  }
  return null;
}

// --- checks --------------------------------------------------------------------------------
function ajvErrors(v) {
  return (v.errors ?? []).slice(0, 6).map((e) => {
    const extra = e.params && Object.keys(e.params).length ? ` ${JSON.stringify(e.params)}` : "";
    return `${e.instancePath || "(root)"} ${e.message}${extra}`;
  }).join("; ");
}

function baseType(ct) {
  return (ct ?? "").split(";")[0].trim().toLowerCase();
}

// Server-Sent Events as [{event, data}], data parsed as JSON where it is JSON.
function sseEvents(text) {
  const events = [];
  let name = "message";
  let data = null;
  const flush = () => {
    if (data !== null) {
      let value = data;
      try {
        value = JSON.parse(data);
      } catch { /* not JSON: the string, as sent */ }
      events.push({ event: name, data: value });
    }
    name = "message";
    data = null;
  };
  for (const line of text.split(/\r?\n/)) {
    if (line === "") flush();
    else if (line.startsWith(":")) continue;
    else {
      const i = line.indexOf(":");
      const field = i < 0 ? line : line.slice(0, i);
      let value = i < 0 ? "" : line.slice(i + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") name = value;
      else if (field === "data") data = data === null ? value : `${data}\n${value}`;
    }
  }
  flush();
  return events;
}

function scalar(value, schema) {
  const s = deref(schema) ?? {};
  const types = [].concat(s.type ?? []);
  if ((types.includes("integer") || types.includes("number")) && /^-?\d+(\.\d+)?([eE][-+]?\d+)?$/.test(value))
    return Number(value);
  return value;
}

function checkValue(problems, what, value, schema) {
  const v = validator(deref(schema));
  if (!v(scalar(value, schema))) problems.push(`${what} ${JSON.stringify(value)}: ${ajvErrors(v)}`);
}

function checkHeaders(problems, rec, resp) {
  const declared = {};
  for (const [name, h] of Object.entries(resp.headers ?? {})) declared[name.toLowerCase()] = deref(h);
  for (const [name, h] of Object.entries(declared)) {
    const value = rec.headers[name];
    if (value === undefined) {
      if (h.required) problems.push(`header ${name} is required and missing`);
    } else if (h.schema) {
      checkValue(problems, `header ${name}`, value, h.schema);
    }
  }
  for (const name of Object.keys(rec.headers)) {
    if ((OWN_HEADERS.includes(name) || name.startsWith("x-briefd-")) && !(name in declared))
      problems.push(`header ${name} is sent but not declared for this response`);
  }
}

function checkBody(problems, rec, resp) {
  const content = resp.content ?? {};
  const ct = baseType(rec.headers["content-type"]);
  if (Object.keys(content).length === 0) {
    if (rec.body) problems.push(`a body (${ct}) where the spec declares none`);
    return;
  }
  const media = content[ct];
  if (!media) {
    problems.push(`content type "${ct}" is not one of ${Object.keys(content).join(", ")}`);
    return;
  }
  if (rec.method === "HEAD" || rec.body === null || rec.body === undefined || !media.schema) return;
  let value;
  if (ct === "application/json") {
    try {
      value = JSON.parse(rec.body);
    } catch (e) {
      problems.push(`the body is not JSON: ${e.message}`);
      return;
    }
  } else if (ct === "text/event-stream") {
    value = sseEvents(rec.body);
  } else {
    return; // text: the content type is what the spec can say about it
  }
  const v = validator(media.schema);
  if (!v(value)) problems.push(`body: ${ajvErrors(v)}`);
}

function checkRequest(problems, rec, op, item, params, query) {
  const declared = {};
  for (const p of [...(item.parameters ?? []), ...(op.parameters ?? [])].map(deref))
    declared[`${p.in}:${p.in === "header" ? p.name.toLowerCase() : p.name}`] = p;
  for (const [name, value] of Object.entries(params)) {
    const p = declared[`path:${name}`];
    if (!p) problems.push(`path parameter {${name}} is not declared`);
    else checkValue(problems, `path parameter ${name}`, value, p.schema);
  }
  for (const [name, value] of query) {
    const p = declared[`query:${name}`];
    if (!p) problems.push(`query parameter ${name} was accepted but is not declared`);
    else if (value !== "") checkValue(problems, `query parameter ${name}`, value, p.schema);
  }
  for (const [name, value] of Object.entries(rec.request?.headers ?? {})) {
    const p = declared[`header:${name.toLowerCase()}`];
    // a header briefd ignores when it is invalid was not accepted, whatever the status
    if (p && p["x-briefd-invalid"] !== "ignored")
      checkValue(problems, `request header ${name}`, value, p.schema);
  }
  const body = rec.request?.body;
  const rb = deref(op.requestBody);
  if (body === null || body === undefined || !rb) return;
  const ct = baseType(rec.request?.headers?.["content-type"] ?? rec.request?.headers?.["Content-Type"]);
  const media = rb.content?.[ct];
  if (!media?.schema || ct !== "application/json") return;
  let value;
  try {
    value = JSON.parse(body);
  } catch {
    return; // briefd's own parser is stricter than the spec can say (docs/API.md#json)
  }
  const v = validator(media.schema);
  if (!v(value)) problems.push(`request body accepted by briefd but refused by the spec: ${ajvErrors(v)}`);
}

function checkError(problems, rec, respName) {
  const resp = deref({ $ref: `#/components/responses/${respName}` });
  checkHeaders(problems, rec, resp);
  checkBody(problems, rec, resp);
}

function limitResponse(status) {
  return status >= 500 ? "ServerError" : "HttpLimitError";
}

// Check one exchange; returns [where, problems].
function check(rec) {
  const problems = [];
  const url = new URL(rec.path, "http://briefd");
  const found = matchPath(url.pathname);
  const status = rec.status;
  if (!found) {
    const name = UNROUTED[status] ?? ([400, 408, 413, 414, 431, 500, 501, 503, 505].includes(status)
      ? limitResponse(status) : null);
    if (!name) problems.push(`status ${status} for a path the spec does not list (404 expected)`);
    else checkError(problems, rec, name);
    return [`${rec.method} ${url.pathname} (no such path) -> ${status}`, problems];
  }
  const method = rec.method.toLowerCase();
  const op = found.item[method] ?? (method === "head" ? found.item.get : undefined);
  if (!op) {
    const name = { 401: "Unauthorized", 403: "Forbidden", 404: "NotFound" }[status];
    if (status === 405) {
      checkHeaders(problems, rec, METHOD_NOT_ALLOWED);
      checkBody(problems, rec, METHOD_NOT_ALLOWED);
      if (!["GET, HEAD", "POST"].includes(rec.headers.allow))
        problems.push(`405 without a valid Allow header (${JSON.stringify(rec.headers.allow)})`);
    } else if (!name) {
      problems.push(`status ${status} for a method the spec does not list (405 expected)`);
    } else {
      checkError(problems, rec, name);
    }
    return [`${rec.method} ${found.template} (no such operation) -> ${status}`, problems];
  }
  const where = `${rec.method} ${found.template} -> ${status}`;
  const key = String(status);
  const resp = deref(op.responses[key] ?? op.responses[`${key[0]}XX`] ?? op.responses.default);
  if (!resp) {
    problems.push(`status ${status} is not a response of this operation (${Object.keys(op.responses).join(", ")})`);
    return [where, problems];
  }
  checkHeaders(problems, rec, resp);
  checkBody(problems, rec, resp);
  if (status >= 200 && status < 300)
    checkRequest(problems, rec, op, found.item, found.params, [...url.searchParams]);
  return [where, problems];
}

// --- main ----------------------------------------------------------------------------------
let total = 0;
const failures = new Map(); // where + problem -> {count, first}
for (const file of recordFiles) {
  const text = fs.existsSync(file) ? fs.readFileSync(file, "utf8") : "";
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    const rec = JSON.parse(line);
    total++;
    const [where, problems] = check(rec);
    for (const p of problems) {
      const k = `${where}: ${p}`;
      const f = failures.get(k);
      if (f) f.count++;
      else failures.set(k, { count: 1, rec });
    }
  }
}
if (failures.size === 0) {
  process.stdout.write(`openapi_check: ${total} responses match docs/openapi.yaml\n`);
  process.exit(0);
}
process.stdout.write(`openapi_check: ${failures.size} mismatch(es) between briefd and docs/openapi.yaml in ${total} responses:\n`);
for (const [k, { count, rec }] of failures) {
  const body = rec.body === null || rec.body === undefined ? "" : String(rec.body);
  process.stdout.write(`- ${k}${count > 1 ? ` (${count} times)` : ""}\n` +
    `    in ${rec.test ?? "?"}: ${rec.method} ${rec.path}\n` +
    (body ? `    body: ${body.length > 600 ? `${body.slice(0, 600)}...` : body}\n` : ""));
}
process.exit(1);
