/*
 * server: orcd's HTTP server. Two APIs on one port, one engine behind them:
 *  - the worker API: POST /execute (server-sent events), POST /cancel, GET /health, /ready, /metrics;
 *  - the OpenAI-compatible API: GET /v1/models, POST /v1/completions, POST /v1/chat/completions.
 * docs/server.md describes the routes, the events, the error table and the flags.
 *
 * Threads: libmicrohttpd's listening thread and one thread per connection (parsing, tokenizing, writing);
 * the engine runs on its own thread (the caller's, see server_attach) and only hands tokens to
 * per-request queues that the connection threads drain. No model code runs on a connection thread.
 *
 * Life cycle: server_start (listening; /health answers, /ready says 503) -> server_attach (model loaded
 * and warm: /ready 200, generation accepted) -> server_drain (SIGTERM: stop accepting, let streams finish
 * up to the drain timeout, end the rest with a terminal event) -> server_stop.
 *
 * Not here: flags and signals (cli/serve.c), the model and the engine loop (engine.h).
 */
#ifndef ORCD_SERVER_H
#define ORCD_SERVER_H

#include "../chat.h"
#include "../engine.h"
#include "../sampler.h"
#include "../tokenizer.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct ServerOptions {
    const char *host;         /* address to listen on (default 127.0.0.1) */
    int port;                 /* 0: any free port (server_port says which) */
    const char *api_key;      /* NULL: no auth; else "Authorization: Bearer KEY" on every route but
                                 /health, /ready and /metrics */
    const char *model_name;   /* the id in /v1/models, responses and events */
    size_t max_body;          /* bytes; larger bodies get 413 */
    int idle_timeout_s;       /* a connection idle (no bytes either way) this long is closed */
    int max_request_s;        /* a generation running longer ends with TIMEOUT */
    int drain_timeout_s;      /* SIGTERM: how long running streams may take to finish */
    int max_connections;
    SamplerParams defaults;   /* sampling for fields a request leaves out */
} ServerOptions;

ServerOptions server_defaults(void);

typedef struct Server Server;

/* Listen. NULL with a message on failure (address in use, bad host). */
Server *server_start(const ServerOptions *o, char *err, size_t errlen);

/* The port actually bound. */
int server_port(const Server *s);

/* What /health reports about the model: set before server_attach. */
typedef struct ServerModelInfo {
    const char *arch;       /* "qwen2" */
    const char *quant;      /* "Q4_K_M" */
    const char *backend;    /* "cpu" or "cuda" */
    size_t memory_bytes;    /* weights + KV + scratch on the backend */
    bool on_gpu;
    int vocab_size, n_ctx, n_slots, model_ctx;
} ServerModelInfo;

/* The model is loaded and warm: generation requests go to `engine` (whose loop the caller runs on its own
 * thread), prompts are encoded with tok and tmpl. All must outlive the server. /ready turns 200. */
void server_attach(Server *s, Engine *engine, const Tokenizer *tok, const ChatTemplate *tmpl,
                   const ServerModelInfo *info);

/* SIGTERM: stop accepting connections and generation requests, wait up to drain_timeout_s for running
 * requests, cancel the rest (they end with a SHUTTING_DOWN event), and return once every request has
 * written its terminal event (or after a few more seconds). Stops the engine (engine_shutdown); the
 * caller then joins its engine thread. */
void server_drain(Server *s);

/* Close every connection and free the server. */
void server_stop(Server *s);

#endif
