/*
 * server/http: libmicrohttpd glue and the routes. One thread per connection (libmicrohttpd's
 * THREAD_PER_CONNECTION): a connection thread reads the body, checks auth, parses, tokenizes and submits
 * to the engine, then either streams (a chunked response whose reader drains the job's events) or waits
 * for the end and answers one JSON body. Idle connections close after --idle-timeout; bodies over
 * --max-body get 413; generations over --max-request-time end with TIMEOUT.
 *
 * Not here: the request fields (request.c), the job's life (job.c), the bytes of events (events.c).
 */
#define _GNU_SOURCE
#include "internal.h"

#include "../log.h"

#include <microhttpd.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EARLY_REJECT_BYTES (64u << 20) /* a declared body this large is refused before it is read */

ServerOptions server_defaults(void) {
    return (ServerOptions){.host = "127.0.0.1", .port = 8080, .api_key = NULL, .model_name = "orcd",
                           .max_body = 1u << 20, .idle_timeout_s = 30, .max_request_s = 600,
                           .drain_timeout_s = 30, .max_connections = 512, .defaults = sampler_defaults()};
}

/* ---------------------------------------------------------------------------------------------------- */
/* routes */

typedef enum Route {
    R_NONE, R_HEALTH, R_READY, R_METRICS, R_MODELS, R_EXECUTE, R_CANCEL, R_COMPLETIONS, R_CHAT
} Route;

static const struct {
    const char *path, *method;
    Route route;
    bool open; /* answers without the API key */
} ROUTES[] = {
    {"/health", "GET", R_HEALTH, true},
    {"/ready", "GET", R_READY, true},
    {"/metrics", "GET", R_METRICS, true},
    {"/v1/models", "GET", R_MODELS, false},
    {"/execute", "POST", R_EXECUTE, false},
    {"/cancel", "POST", R_CANCEL, false},
    {"/v1/completions", "POST", R_COMPLETIONS, false},
    {"/v1/chat/completions", "POST", R_CHAT, false},
};
#define N_ROUTES (sizeof ROUTES / sizeof ROUTES[0])

static bool is_openai_path(const char *url) {
    return !strncmp(url, "/v1/", 4);
}

/* Per request (MHD's con_cls): the route and the body so far. */
typedef struct Conn {
    int route_ix;     /* into ROUTES; -1: no such path */
    bool bad_method, too_large;
    Buf body;
} Conn;

static bool is_ready(const Server *s) {
    return __atomic_load_n(&s->ready, __ATOMIC_ACQUIRE) != 0;
}

/* ---------------------------------------------------------------------------------------------------- */
/* answers */

/* Queue `body` (malloc'd, taken; NULL = out of memory: the connection is closed). */
static enum MHD_Result respond(struct MHD_Connection *c, unsigned status, const char *ctype, char *body,
                               int retry_after) {
    if (!body) return MHD_NO;
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (retry_after > 0) {
        char v[16];
        snprintf(v, sizeof v, "%d", retry_after);
        MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, v);
    }
    if (status == 401) MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    enum MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result respond_json(struct MHD_Connection *c, unsigned status, json_t *obj) {
    char *s = obj ? json_dumps(obj, JSON_FLAGS) : NULL;
    json_decref(obj);
    return respond(c, status, "application/json", s, 0);
}

static enum MHD_Result respond_error(struct MHD_Connection *c, bool openai, ErrCode code, const char *msg,
                                     const RequestErrors *errs, json_t *extra) {
    const ErrInfo *ei = err_info(code);
    if (ei->status >= 500 || code == ERR_CONFLICT) log_info("answered %d %s: %s", ei->status, ei->code, msg);
    return respond(c, (unsigned)ei->status, "application/json", error_body(openai, code, msg, errs, extra),
                   ei->retry_after);
}

/* ---------------------------------------------------------------------------------------------------- */
/* GET routes */

static enum MHD_Result get_health(Server *s, struct MHD_Connection *c) {
    const ServerModelInfo *mi = &s->info;
    json_t *o = json_pack("{s:s, s:s, s:b}", "status", is_ready(s) ? "ok" : "loading", "model", s->opt.model_name,
                          "resident", is_ready(s));
    if (o && is_ready(s)) {
        json_object_set_new(o, "arch", json_string(mi->arch));
        json_object_set_new(o, "quant", json_string(mi->quant));
        json_object_set_new(o, "backend", json_string(mi->backend));
        json_object_set_new(o, mi->on_gpu ? "vram_bytes" : "ram_bytes", json_integer((json_int_t)mi->memory_bytes));
        json_object_set_new(o, "vocab_size", json_integer(mi->vocab_size));
        json_object_set_new(o, "context_length", json_integer(mi->n_ctx));
        json_object_set_new(o, "model_context_length", json_integer(mi->model_ctx));
        json_object_set_new(o, "parallel", json_integer(mi->n_slots));
    }
    return respond_json(c, 200, o);
}

static enum MHD_Result get_ready(Server *s, struct MHD_Connection *c) {
    pthread_mutex_lock(&s->mu);
    bool draining = s->draining;
    pthread_mutex_unlock(&s->mu);
    bool ok = is_ready(s) && !draining;
    const char *status = ok ? "ready" : draining ? "draining" : "loading";
    json_t *o = json_pack("{s:b, s:s}", "ready", ok, "status", status);
    if (ok) return respond_json(c, 200, o);
    char *body = o ? json_dumps(o, JSON_FLAGS) : NULL;
    json_decref(o);
    return respond(c, 503, "application/json", body, 1);
}

static enum MHD_Result get_metrics(Server *s, struct MHD_Connection *c) {
    EngineStats es = {0};
    if (is_ready(s)) engine_stats(s->engine, &es);
    pthread_mutex_lock(&s->mu);
    int open = s->n_open;
    pthread_mutex_unlock(&s->mu);
    return respond(c, 200, "text/plain; version=0.0.4", metrics_render(&s->metrics, &es, open, is_ready(s)), 0);
}

static enum MHD_Result get_models(Server *s, struct MHD_Connection *c) {
    return respond_json(c, 200, json_pack("{s:s, s:[{s:s, s:s, s:I, s:s}]}", "object", "list", "data", "id",
                                          s->opt.model_name, "object", "model", "created", (json_int_t)0,
                                          "owned_by", "orcd"));
}

/* ---------------------------------------------------------------------------------------------------- */
/* POST /cancel */

static enum MHD_Result post_cancel(Server *s, struct MHD_Connection *c, const Buf *body) {
    ParsedRequest req;
    RequestErrors errs;
    if (request_parse(&req, API_CANCEL, body->p ? body->p : "", body->len, &s->opt.defaults, &errs)) {
        char msg[1024];
        request_errors_join(&errs, msg, sizeof msg);
        return respond_error(c, false, ERR_INVALID_REQUEST, msg, &errs, NULL);
    }
    int found = job_cancel_by_id(s, req.job_id);
    if (found) log_info("request %s: cancel asked", req.job_id);
    enum MHD_Result rc = respond_json(c, 202, json_pack("{s:s, s:b}", "job_id", req.job_id, "found", found));
    request_free(&req);
    return rc;
}

/* ---------------------------------------------------------------------------------------------------- */
/* generation */

/* The prompt's token ids: ids given, a rendered chat, or raw text (special-token text stays plain). 0, or
 * -1 with a message. */
static int encode(Server *s, const ParsedRequest *r, int32_t **ids, int *n, char *err, size_t errlen) {
    *ids = NULL, *n = 0;
    if (r->prompt_ids) {
        int vocab = tokenizer_n_vocab(s->tok);
        for (int i = 0; i < r->n_prompt_ids; i++)
            if (r->prompt_ids[i] >= vocab)
                return snprintf(err, errlen, "prompt[%d]: expected a token id in 0..%d, found %d", i, vocab - 1,
                                r->prompt_ids[i]), -1;
        if (!(*ids = malloc((size_t)r->n_prompt_ids * sizeof **ids))) return snprintf(err, errlen, "out of memory"), -1;
        memcpy(*ids, r->prompt_ids, (size_t)r->n_prompt_ids * sizeof **ids);
        *n = r->n_prompt_ids;
        return 0;
    }
    char *rendered = NULL;
    const char *text = r->prompt;
    size_t len = r->prompt_len;
    unsigned flags = TOKENIZE_ADD_BOS;
    if (r->msgs) {
        if (chat_render(s->tmpl, r->msgs, r->n_msgs, true, &rendered, &len))
            return snprintf(err, errlen, "out of memory rendering the chat template"), -1;
        text = rendered;
        flags |= TOKENIZE_PARSE_SPECIAL; /* the template's markers */
    }
    int64_t need = tokenizer_encode(s->tok, text, len, flags, NULL, 0);
    if (need > 0 && (*ids = malloc((size_t)need * sizeof **ids)))
        *n = (int)tokenizer_encode(s->tok, text, len, flags, *ids, (size_t)need);
    free(rendered);
    if (need <= 0 || !*ids) return snprintf(err, errlen, need == 0 ? "prompt: encodes to no tokens" : "out of memory"), -1;
    return 0;
}

static uint64_t random_seed(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t z = (uint64_t)ts.tv_sec * 1000000007ull ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)pthread_self() << 17);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return (z ^ (z >> 31)) & INT64_MAX;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *out, size_t max) {
    (void)pos;
    Job *j = cls;
    int keepalive_ms = j->srv->opt.idle_timeout_s > 0 ? j->srv->opt.idle_timeout_s * 1000 / 3 : 10000;
    if (keepalive_ms > 10000) keepalive_ms = 10000;
    for (;;) {
        if (j->out_off < j->out.len) {
            size_t n = j->out.len - j->out_off < max ? j->out.len - j->out_off : max;
            memcpy(out, j->out.p + j->out_off, n);
            j->out_off += n;
            if (j->out_off == j->out.len) j->out.len = j->out_off = 0;
            j->t_last_write = now_ms();
            return (ssize_t)n;
        }
        if (j->out.oom) return MHD_CONTENT_READER_END_WITH_ERROR;
        if (j->terminal_sent) return MHD_CONTENT_READER_END_OF_STREAM;
        if (j->gone || job_wait(j, 50) == JOB_GONE) return MHD_CONTENT_READER_END_WITH_ERROR;
        events_pump(j);
        if (j->out.len == 0 && now_ms() - j->t_last_write > keepalive_ms) buf_str(&j->out, ": keep-alive\n\n");
    }
}

static void stream_free(void *cls) {
    job_release(cls);
}

static enum MHD_Result post_generate(Server *s, struct MHD_Connection *c, ApiKind api, const Buf *body) {
    bool openai = api != API_EXECUTE;
    char msg[1024];
    pthread_mutex_lock(&s->mu);
    bool draining = s->draining;
    pthread_mutex_unlock(&s->mu);
    if (draining || !is_ready(s)) {
        ErrCode code = draining ? ERR_SHUTTING_DOWN : ERR_NOT_READY;
        metrics_request(&s->metrics, api, false, code, 0, 0);
        return respond_error(c, openai, code, draining ? "the server is shutting down" : "the model is loading", NULL, NULL);
    }
    ParsedRequest req;
    RequestErrors errs;
    if (request_parse(&req, api, body->p ? body->p : "", body->len, &s->opt.defaults, &errs)) {
        request_errors_join(&errs, msg, sizeof msg);
        metrics_request(&s->metrics, api, false, ERR_INVALID_REQUEST, 0, 0);
        return respond_error(c, openai, ERR_INVALID_REQUEST, msg, &errs, NULL);
    }
    if (!req.seed_set) req.sampling.seed = random_seed();
    int32_t *ids = NULL;
    int n = 0;
    if (encode(s, &req, &ids, &n, msg, sizeof msg)) {
        request_free(&req);
        metrics_request(&s->metrics, api, false, ERR_INVALID_REQUEST, 0, 0);
        return respond_error(c, openai, ERR_INVALID_REQUEST, msg, NULL, NULL);
    }
    /* the context: prompt + max_tokens must fit (the default max_tokens is cut to fit) */
    int n_ctx = s->info.n_ctx, room = n_ctx - n;
    int max_tokens = req.max_tokens;
    if (room < 1 || (max_tokens && max_tokens > room)) {
        if (room < 1)
            snprintf(msg, sizeof msg, "context exceeded: the prompt has %d tokens, the context holds %d (the prompt "
                                      "and at least one generated token)", n, n_ctx);
        else
            snprintf(msg, sizeof msg, "context exceeded: the prompt's %d tokens + max_tokens %d = %d, the context "
                                      "holds %d", n, max_tokens, n + max_tokens, n_ctx);
        json_t *extra = json_pack("{s:i, s:i, s:i}", "prompt_tokens", n, "max_tokens", max_tokens, "context_length", n_ctx);
        free(ids);
        request_free(&req);
        metrics_request(&s->metrics, api, false, ERR_CONTEXT_EXCEEDED, 0, 0);
        return respond_error(c, openai, ERR_CONTEXT_EXCEEDED, msg, NULL, extra);
    }
    if (!max_tokens) max_tokens = api == API_EXECUTE ? 256 : api == API_COMPLETIONS ? 16 : room;
    if (max_tokens > room) max_tokens = room;

    Job *j = job_new(s, &req);
    if (!j) {
        free(ids);
        request_free(&req);
        return respond_error(c, openai, ERR_INTERNAL, "out of memory", NULL, NULL);
    }
    j->max_tokens = max_tokens;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    j->fd = ci ? ci->connect_fd : -1;
    bool stream = api == API_EXECUTE || j->req.stream;
    j->whole = !stream;
    int rc = job_submit(j, ids, n, msg, sizeof msg);
    free(ids);
    if (rc != ENGINE_OK) {
        ErrCode code = rc == JOB_CONFLICT ? ERR_CONFLICT : err_from_engine(rc);
        metrics_request(&s->metrics, api, false, code, 0, 0);
        job_release(j);
        return respond_error(c, openai, code, msg, NULL, NULL);
    }
    if (stream) {
        events_begin(j);
        j->t_last_write = now_ms();
        struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, stream_read, j,
                                                                   stream_free);
        if (!r) {
            job_release(j);
            return MHD_NO;
        }
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream; charset=utf-8");
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
        MHD_add_response_header(r, "X-Accel-Buffering", "no");
        enum MHD_Result q = MHD_queue_response(c, 200, r);
        MHD_destroy_response(r); /* the job is released by stream_free when MHD is done with it */
        return q;
    }
    /* stream: false: no idle timeout while the engine works (the request's own limit applies) */
    MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, 0u);
    JobEnd end;
    while ((end = job_wait(j, 50)) == JOB_RUNNING) {
    }
    MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned)s->opt.idle_timeout_s);
    if (end == JOB_GONE) {
        job_release(j);
        return MHD_NO;
    }
    int e = job_error(j);
    enum MHD_Result q = e < 0 ? respond(c, 200, "application/json", events_openai_body(j), 0)
                              : respond_error(c, true, (ErrCode)e, events_error_message(j, e), NULL, NULL);
    job_release(j);
    return q;
}

/* ---------------------------------------------------------------------------------------------------- */
/* libmicrohttpd callbacks */

static bool authorized(Server *s, struct MHD_Connection *c) {
    if (!s->opt.api_key) return true;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncasecmp(h, "Bearer ", 7)) return false;
    h += 7;
    size_t n = strlen(h), k = strlen(s->opt.api_key);
    unsigned diff = (unsigned)(n != k);
    for (size_t i = 0; i < n; i++) diff |= (unsigned char)h[i] ^ (unsigned char)s->opt.api_key[i < k ? i : 0];
    return diff == 0 && k > 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    (void)version;
    Server *s = cls;
    Conn *cn = *con_cls;
    bool openai = is_openai_path(url);
    if (!cn) { /* headers only */
        if (!(cn = calloc(1, sizeof *cn))) return MHD_NO;
        *con_cls = cn;
        cn->route_ix = -1;
        for (size_t i = 0; i < N_ROUTES; i++)
            if (!strcmp(url, ROUTES[i].path)) {
                cn->route_ix = (int)i;
                cn->bad_method = strcmp(method, ROUTES[i].method) != 0;
            }
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > EARLY_REJECT_BYTES) {
            char msg[160];
            snprintf(msg, sizeof msg, "body: expected at most %zu bytes, found Content-Length %.40s", s->opt.max_body, cl);
            return respond_error(c, openai, ERR_BODY_TOO_LARGE, msg, NULL, NULL);
        }
        return MHD_YES;
    }
    if (*upload_size) { /* a piece of the body: keep up to max_body, count the rest */
        if (!cn->too_large && cn->body.len + *upload_size <= s->opt.max_body) buf_add(&cn->body, upload, *upload_size);
        else cn->too_large = true, buf_free(&cn->body);
        *upload_size = 0;
        return MHD_YES;
    }
    if (cn->body.oom) return respond_error(c, openai, ERR_INTERNAL, "out of memory reading the body", NULL, NULL);
    if (cn->route_ix < 0) {
        char msg[160];
        snprintf(msg, sizeof msg, "no route %.100s (see /v1/models, /execute, /health)", url);
        return respond_error(c, openai, ERR_NOT_FOUND, msg, NULL, NULL);
    }
    if (cn->bad_method) {
        char msg[128];
        snprintf(msg, sizeof msg, "%s: expected %s, found %.16s", ROUTES[cn->route_ix].path,
                 ROUTES[cn->route_ix].method, method);
        return respond_error(c, openai, ERR_METHOD_NOT_ALLOWED, msg, NULL, NULL);
    }
    if (!ROUTES[cn->route_ix].open && !authorized(s, c))
        return respond_error(c, openai, ERR_UNAUTHORIZED, "expected the header Authorization: Bearer <api key>",
                             NULL, NULL);
    if (cn->too_large) {
        char msg[128];
        snprintf(msg, sizeof msg, "body: expected at most %zu bytes (--max-body)", s->opt.max_body);
        return respond_error(c, openai, ERR_BODY_TOO_LARGE, msg, NULL, NULL);
    }
    switch (ROUTES[cn->route_ix].route) {
    case R_HEALTH: return get_health(s, c);
    case R_READY: return get_ready(s, c);
    case R_METRICS: return get_metrics(s, c);
    case R_MODELS: return get_models(s, c);
    case R_CANCEL: return post_cancel(s, c, &cn->body);
    case R_EXECUTE: return post_generate(s, c, API_EXECUTE, &cn->body);
    case R_COMPLETIONS: return post_generate(s, c, API_COMPLETIONS, &cn->body);
    case R_CHAT: return post_generate(s, c, API_CHAT, &cn->body);
    default: return MHD_NO;
    }
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)cls, (void)c, (void)toe;
    Conn *cn = *con_cls;
    if (!cn) return;
    buf_free(&cn->body);
    free(cn);
    *con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
    log_debug("http: %s", line);
}

/* ---------------------------------------------------------------------------------------------------- */
/* life cycle */

Server *server_start(const ServerOptions *o, char *err, size_t errlen) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    char port[16];
    snprintf(port, sizeof port, "%d", o->port);
    int gai = getaddrinfo(o->host, port, &hints, &ai);
    if (gai) {
        snprintf(err, errlen, "--host %s: %s", o->host, gai_strerror(gai));
        return NULL;
    }
    Server *s = calloc(1, sizeof *s);
    if (!s) {
        freeaddrinfo(ai);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->opt = *o;
    metrics_init(&s->metrics);
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->idle, &ca);
    pthread_condattr_destroy(&ca);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL | MHD_USE_ITC |
                     MHD_USE_ERROR_LOG | (ai->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0);
    s->daemon = MHD_start_daemon(flags, (uint16_t)o->port, NULL, NULL, on_request, s,
                                 MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)o->idle_timeout_s,
                                 MHD_OPTION_CONNECTION_LIMIT, (unsigned)o->max_connections,
                                 MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u,
                                 MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                                 MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s,
                                 MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!s->daemon) {
        snprintf(err, errlen, "cannot listen on %s:%d (address in use, or not an address of this machine)", o->host,
                 o->port);
        server_stop(s);
        return NULL;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : o->port;
    return s;
}

int server_port(const Server *s) {
    return s->port;
}

void server_attach(Server *s, Engine *engine, const Tokenizer *tok, const ChatTemplate *tmpl,
                   const ServerModelInfo *info) {
    pthread_mutex_lock(&s->mu);
    s->engine = engine;
    s->tok = tok;
    s->tmpl = tmpl;
    s->info = *info;
    pthread_mutex_unlock(&s->mu);
    __atomic_store_n(&s->ready, 1, __ATOMIC_RELEASE);
}

/* Wait until no job is open or `ms` passed; the number still open. */
static int wait_idle(Server *s, double ms) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(ms / 1e3);
    ts.tv_nsec += (long)((ms - (double)(time_t)(ms / 1e3) * 1e3) * 1e6);
    if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
    pthread_mutex_lock(&s->mu);
    while (s->n_open > 0 && pthread_cond_timedwait(&s->idle, &s->mu, &ts) == 0) {
    }
    int open = s->n_open;
    pthread_mutex_unlock(&s->mu);
    return open;
}

void server_drain(Server *s) {
    pthread_mutex_lock(&s->mu);
    s->draining = true;
    int open = s->n_open;
    pthread_mutex_unlock(&s->mu);
    log_info("draining: no new connections; %d request(s) running, waiting up to %d s", open, s->opt.drain_timeout_s);
    MHD_socket lfd = MHD_quiesce_daemon(s->daemon);
    if (lfd != MHD_INVALID_SOCKET) close(lfd);
    if (s->engine) engine_shutdown(s->engine, false);
    open = wait_idle(s, s->opt.drain_timeout_s * 1e3);
    if (open > 0) {
        log_warn("draining: %d request(s) still running after %d s; ending them", open, s->opt.drain_timeout_s);
        pthread_mutex_lock(&s->mu);
        s->drain_expired = true;
        pthread_mutex_unlock(&s->mu);
        if (s->engine) engine_shutdown(s->engine, true);
        if ((open = wait_idle(s, 5e3)) > 0) log_warn("draining: %d connection(s) did not finish writing", open);
    }
}

void server_stop(Server *s) {
    if (!s) return;
    if (s->daemon) MHD_stop_daemon(s->daemon);
    metrics_free(&s->metrics);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->idle);
    free(s);
}
