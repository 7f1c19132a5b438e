/* probe.h - briefd probe: call each model of a configuration once, the way the pipeline
 * calls it (same URL, key and auth header, extra headers), and report what its server can
 * do: whether it answers at all, whether GET {base_url}/models lists the model, whether
 * logprobs come back, whether streaming works and carries usage
 * (stream_options.include_usage), where reasoning arrives (reasoning_content, reasoning,
 * content parts, harmony channels leaked into content, or none), the time to first token
 * and the total time - with advice on the settings that follow (logprobs, stream,
 * confidence.on_missing, name, base_url, keys). docs/CLI.md#briefd-probe.
 *
 * Per model, in order: GET {base_url}/models; a non-streamed chat completion asking for
 * logprobs (asked again without them if the server refuses the parameter with a 4xx); if
 * that answered, a streamed one asking for usage. One attempt each, the model's timeout
 * (at most 60 s); models are probed concurrently. Nothing is written to Redis.
 *
 * Ownership: everything is allocated and freed inside probe_main(). */
#ifndef BRIEFD_PROBE_H
#define BRIEFD_PROBE_H

/* Probe the models of cfg_path (NULL: the embedded defaults); print a report on stdout,
 * text or (json) one JSON object. Returns the exit code: 0, or 1 when a model did not
 * answer the chat call or the configuration is invalid. */
int probe_main(const char *cfg_path, int json);

#endif
