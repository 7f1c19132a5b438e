/* chat.h - POST /v1/chat/completions: header checks, validation (OpenAI-style 400/404
 * envelopes), the request log entry, the decision (rules, one-shot counters, one PRNG draw
 * against the rates), and the answer: a brief (text.h) or, for response_format json_schema
 * "brief_rubric", a judge verdict (judge.h), handed to reply.h.
 *
 * Ownership: the handler borrows s and answers req (now or later, see reply.h). */
#ifndef SIM_CHAT_H
#define SIM_CHAT_H

#include "sim.h"

struct http_req;

void chat_handle(struct sim *s, struct http_req *req);
/* require_headers / require_bearer in force for model (-1: the global knobs): 0 when req
 * passes; else the 400/401 error has been sent and -1 is returned. */
int chat_check_headers(struct sim *s, struct http_req *req, int model);

#endif
