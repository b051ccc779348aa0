/*
 * engine: runs generation requests on one model, several at once. Each step it takes every running
 * sequence's next token plus chunks of waiting prompts, as one batch, through backend->forward; samples
 * each sequence's next token; checks stop conditions; and hands each token's text to the request's
 * callback as soon as it is sampled.
 *
 * Keys and values live in fixed-size pages allocated once at start (n_slots sequences of at most n_ctx
 * tokens, kv_tokens positions in all): a sequence takes pages as it grows and gives them back when it
 * ends. Running out of pages ends that one request with ENGINE_ERR_KV, others go on.
 *
 * Threads: engine_submit, engine_cancel and engine_stats may be called from any thread; engine_step (or
 * engine_run, which loops on it) from one thread only, and the callbacks run there: they must not block.
 *
 * Not here: text to tokens for prompts (the caller encodes: tokenizer, chat), network I/O.
 */
#ifndef ORCD_ENGINE_H
#define ORCD_ENGINE_H

#include "backend/backend.h"
#include "model.h"
#include "sampler.h"
#include "tokenizer.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct EngineOptions {
    int n_slots;    /* sequences decoding at once (--parallel) */
    int n_ctx;      /* tokens per sequence, prompt and generated (--ctx) */
    int kv_tokens;  /* positions in the KV store for all sequences; 0 = n_slots * n_ctx */
    int page_size;  /* tokens per KV page */
    int max_batch;  /* tokens per forward step */
    int max_queue;  /* requests waiting for a slot; beyond it, submit says ENGINE_ERR_BUSY */
    int n_threads;  /* CPU threads; 0 = all cores */
    int gpu_device;
    int force_cpu;
    int exact;      /* the CPU backend's reference mode (BackendOptions.exact) */
    int sample_threads; /* threads that sample a step's rows of logits: 0 = automatic (up to 8 with a GPU
                           backend; 1 with the CPU backend, whose own threads are busy); 1 = the engine
                           thread alone. The tokens never depend on it (a sampler per slot). */
} EngineOptions;

EngineOptions engine_defaults(void);

typedef enum StopReason {
    STOP_LENGTH,    /* max_tokens reached, or the context is full */
    STOP_EOG,       /* the model ended its turn (an end-of-generation token) */
    STOP_STRING,    /* a stop string appeared (it is not part of the output) */
    STOP_CANCELLED, /* engine_cancel, or a callback asked to stop */
    STOP_ERROR,     /* see EngineDone.error */
} StopReason;

const char *stop_reason_name(StopReason r); /* "length", "eog", "stop", "cancelled", "error" */

/* Errors, for submit and EngineDone.error_code. */
enum {
    ENGINE_OK = 0,
    ENGINE_ERR_INVALID = -1, /* a request field out of range (message says which) */
    ENGINE_ERR_CONTEXT = -2, /* the prompt does not fit the context */
    ENGINE_ERR_BUSY = -3,    /* the queue is full */
    ENGINE_ERR_KV = -4,      /* no free KV pages for this sequence */
    ENGINE_ERR_INTERNAL = -5,
    ENGINE_ERR_STOPPED = -6, /* the engine is shutting down */
};

typedef struct EngineToken {
    int32_t id;
    const char *text;  /* the text this token completes (valid UTF-8, may be empty), not NUL-terminated */
    size_t len;
    float logprob;     /* log-probability at temperature 1 (see sampler_sample) of a greedy choice; NaN for
                          sampled tokens (not computed) */
    int index;         /* 0 for the first generated token */
} EngineToken;

typedef struct EngineDone {
    StopReason reason;
    int error_code;        /* ENGINE_ERR_* when reason is STOP_ERROR */
    const char *error;     /* message when reason is STOP_ERROR */
    const char *tail;      /* text held back by the decoder or a stop-string prefix, released at the end
                              (never NULL; empty after a stop string) */
    size_t tail_len;
    int n_prompt, n_generated;
    double queue_ms;       /* submit to admission */
    double prefill_ms;     /* admission to the first token */
    double decode_ms;      /* first token to the end */
    double ttft_ms;        /* submit to the first token */
} EngineDone;

typedef struct EngineRequest {
    const int32_t *prompt;   /* n_prompt ids (copied at submit) */
    int n_prompt;
    int max_tokens;          /* >= 1 */
    SamplerParams sampling;  /* validated at submit */
    const char *const *stop; /* n_stop NUL-terminated stop strings (copied), non-empty */
    int n_stop;
    bool ignore_eog;         /* keep going past end-of-generation tokens (benchmarks) */
    /* Called for each token in order; return nonzero to stop (as cancelled). */
    int (*on_token)(void *user, const EngineToken *tok);
    /* Called once at the end, whatever the reason. */
    void (*on_done)(void *user, const EngineDone *done);
    void *user;
} EngineRequest;

typedef struct Engine Engine;

/* The engine for an opened model (which must outlive it) and its tokenizer. Creates the backend. NULL
 * with a message on failure. */
Engine *engine_create(Model *m, const Tokenizer *tok, const EngineOptions *opt, char *err, size_t errlen);
void engine_free(Engine *e);

/* Queue a request. ENGINE_OK and *id, or an ENGINE_ERR_* with a message (the callbacks are not called). */
int engine_submit(Engine *e, const EngineRequest *r, uint64_t *id, char *err, size_t errlen);

/* Stop request `id` (queued or running) at the next step: it ends with STOP_CANCELLED. Unknown or finished
 * ids are ignored. */
void engine_cancel(Engine *e, uint64_t id);

/* Run one step. Returns the number of requests still queued or running afterwards. */
int engine_step(Engine *e);

/* Loop on engine_step, sleeping while there is no work, until engine_shutdown. */
void engine_run(Engine *e);

/* Make engine_run return after its current step; with cancel_all, running and queued requests end with
 * STOP_CANCELLED first. Further submits get ENGINE_ERR_STOPPED. */
void engine_shutdown(Engine *e, bool cancel_all);

typedef struct EngineStats {
    int running, queued;
    int kv_pages_used, kv_pages_total;
    uint64_t requests_done, tokens_in, tokens_out;
} EngineStats;

void engine_stats(Engine *e, EngineStats *s);

const Backend *engine_backend(const Engine *e);

#endif
