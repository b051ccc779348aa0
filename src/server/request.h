/*
 * server/request: the body of a generation request (JSON) to a ParsedRequest, with every field checked.
 * Pure: no socket, no model, no engine; the fuzz target (tests/fuzz/fuzz_request.c) calls it directly.
 *
 * Bodies by route (fields not listed are ignored, as OpenAI clients send extras; null is the same as
 * absent):
 *  1. POST /execute (worker API): {job_id?, prompt, max_tokens?, temperature?, top_p?, top_k?, min_p?,
 *     repetition_penalty?, frequency_penalty?, presence_penalty?, stop?, seed?, chat?, system?}.
 *     prompt is raw text; with chat: true it is the user's message in the model's chat template (system:
 *     an optional system message).
 *  2. POST /v1/completions: {model?, prompt (a string, [string], [ids] or [[ids]]), max_tokens?, n?,
 *     stream?, stream_options?: {include_usage?}, echo?, logprobs?, best_of?, suffix?, ...sampling}.
 *  3. POST /v1/chat/completions: {model?, messages: [{role, content}], max_tokens? (or
 *     max_completion_tokens), n?, stream?, stream_options?, logprobs?, ...sampling}; role is system,
 *     developer (as system), user or assistant; content is a string or an array of {type: "text", text}.
 *  4. POST /cancel: {job_id}.
 * Sampling fields and their ranges: temperature 0..2, top_p (0, 1], top_k >= 0, min_p 0..1,
 * repetition_penalty (0, 10], frequency_penalty and presence_penalty -2..2, seed 0..2^63-1, stop a
 * string or up to REQ_MAX_STOP strings of 1..REQ_MAX_STOP_LEN bytes, max_tokens 1..REQ_MAX_TOKENS,
 * ignore_eos true or false (vLLM's extension: keep going past end-of-generation tokens). n and
 * best_of must be 1; echo, logprobs and suffix are not supported (an error, not a silent difference).
 *
 * Strings are UTF-8 (the JSON parser rejects anything else); prompt and message contents may hold
 * \u0000, other strings may not.
 */
#ifndef ORCD_SERVER_REQUEST_H
#define ORCD_SERVER_REQUEST_H

#include "../chat.h"
#include "../sampler.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define REQ_MAX_ERRORS 16
#define REQ_MAX_STOP 16
#define REQ_MAX_STOP_LEN 256
#define REQ_MAX_JOB_ID 128
#define REQ_MAX_TOKENS (1 << 24)
#define REQ_MAX_MESSAGES 1024

typedef enum ApiKind { API_EXECUTE, API_COMPLETIONS, API_CHAT, API_CANCEL } ApiKind;

typedef struct FieldError {
    char field[64]; /* "temperature", "messages[2].content", "" for the body as a whole */
    char msg[192];  /* "expected a number in 0..2, found 7" */
} FieldError;

typedef struct RequestErrors {
    int n;       /* errors in e */
    int dropped; /* further errors not kept */
    FieldError e[REQ_MAX_ERRORS];
} RequestErrors;

typedef struct ParsedRequest {
    ApiKind api;
    char *job_id;           /* owned, NUL-terminated; NULL when not given */
    char *model;            /* owned; NULL when not given */
    char *prompt;           /* owned, prompt_len bytes (+ NUL); NULL for chat or a prompt of ids */
    size_t prompt_len;
    int32_t *prompt_ids;    /* owned; completions given token ids (checked against the vocabulary later) */
    int n_prompt_ids;
    ChatMessage *msgs;      /* owned (contents too) for chat, and for execute with chat: true */
    size_t n_msgs;
    int max_tokens;         /* 0: the route's default */
    SamplerParams sampling; /* the defaults given to request_parse, with the request's fields applied */
    bool seed_set;
    bool ignore_eos;        /* generate past end-of-generation tokens (benchmarks, tests) */
    char *stop[REQ_MAX_STOP]; /* owned, NUL-terminated */
    int n_stop;
    bool stream, include_usage;
} ParsedRequest;

/* Parse and check `len` bytes of body for `api`. Returns 0 with *r filled (request_free it), or -1 with
 * every problem found in errs (and *r empty). Never crashes on any bytes. */
int request_parse(ParsedRequest *r, ApiKind api, const char *body, size_t len, const SamplerParams *defaults,
                  RequestErrors *errs);

void request_free(ParsedRequest *r);

/* All errors as one line: "temperature: expected ...; top_p: expected ..." into buf. */
void request_errors_join(const RequestErrors *errs, char *buf, size_t cap);

#endif
