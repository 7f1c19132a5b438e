/* trace.h - W3C Trace Context (traceparent, tracestate) as briefd accepts and propagates
 * it (docs/API.md#request-ids-and-tracing). Pure: the random span ids come from the caller.
 *
 * traceparent: "VV-TTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTT-PPPPPPPPPPPPPPPP-FF", lower-case hex:
 * version 00 is exactly 55 characters; a later version (not ff) is read the same way when
 * it is at least 55 characters and the 56th, if any, is '-' (what a version-00 reader does
 * with a newer header). The trace id and the parent id must not be all zeros. Anything else
 * is not a trace context: it is ignored (a request without one is not an error).
 *
 * tracestate: kept only beside a valid traceparent, at most TRACE_STATE_MAX bytes and
 * TRACE_STATE_MEMBERS list members, each empty (OWS) or key=value with a key of
 * [a-z0-9_*-/@] starting with a letter or digit (at most 256 characters) and a value of
 * printable ASCII without ',' and '=' (at most 256 characters, not ending in a space).
 *
 * Each model call briefd makes is a new span of the caller's trace: the same trace id and
 * flags, a new parent id, version 00.
 *
 * Ownership: every function writes into caller-provided buffers; nothing is kept. */
#ifndef BRIEFD_TRACE_H
#define BRIEFD_TRACE_H

#include <stddef.h>
#include <stdint.h>

#define TRACE_PARENT_LEN 55      /* a version-00 traceparent, without the NUL */
#define TRACE_STATE_MAX 512      /* bytes of a tracestate kept */
#define TRACE_STATE_MEMBERS 32

/* Is s a request id as the HTTP server accepts one (service/http: 1 to 64 bytes of 0x21 to
 * 0x7e)? Ids read back from storage are checked again before they go into a header. */
int trace_request_id_ok(const char *s);
/* Is s a traceparent briefd accepts? If so and out is not NULL, out (TRACE_PARENT_LEN + 1
 * bytes) gets its version-00 form. */
int trace_parent_ok(const char *s, char *out);
/* Is s a tracestate briefd keeps? */
int trace_state_ok(const char *s);
/* The traceparent of a child span of parent (a valid version-00 form, as trace_parent_ok
 * gives): same trace id and flags, span as its parent id (a zero span becomes 1). out gets
 * TRACE_PARENT_LEN + 1 bytes. */
void trace_child(const char *parent, uint64_t span, char *out);

#endif
