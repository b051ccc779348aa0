/*
 * engine: slots, the request queue, KV pages, one batched step at a time.
 *
 * A slot's tokens[0..n_tokens) are its prompt and what it has generated; the first n_cached of them have
 * keys and values in the store. Each step runs tokens[n_cached..n_tokens) of every slot that fits the
 * batch: one token for a decoding slot, a chunk of the prompt for a prefilling one (decoding slots first,
 * so a long prompt never stalls running streams). A slot whose last token ran gets logits and samples.
 *
 * Stop strings: text that could be the start of a stop string is held back (pending) until it is known
 * not to be; a stop string found ends the request, and neither it nor what follows is emitted.
 *
 * Sampling: when every slot that samples is greedy, a backend with forward_argmax chooses on its side;
 * otherwise, when the samplers can choose from each row's best few (top-k, greedy: sampler_sample_top) and
 * the backend has forward_topk, only those cross (a row they cannot decide is fetched whole); otherwise
 * the rows of logits come to the host. Rows are sampled in parallel over the slots when the backend is a
 * GPU (each slot has its own sampler and random state, so the tokens do not depend on the threads).
 */
#define _POSIX_C_SOURCE 200809L
#include "engine.h"

#include "pool.h"
#include "log.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct Req {
    uint64_t id;
    EngineRequest r;   /* prompt and stop point into the copies below */
    int32_t *prompt;   /* owned copy */
    char **stop;       /* owned copies */
    double t_submit;
    bool cancel;
} Req;

typedef struct Slot {
    bool active, cancel;
    Req req;
    int32_t *tokens;   /* (n_ctx,) prompt, then generated */
    int n_tokens, n_cached, n_generated;
    int n_pages;       /* pages held: positions [0, n_pages * page_size) */
    Sampler *sampler;
    TokenDecoder dec;
    char *pending;     /* text not yet emitted (a possible stop-string start) */
    size_t pending_len, pending_cap;
    double t_admit, t_first;
} Slot;

struct Engine {
    EngineOptions opt;
    const Model *model;
    const Tokenizer *tok;
    Backend *backend;
    int vocab;
    /* KV pages */
    int32_t *table;    /* (n_slots, pages_per_slot) */
    int pages_per_slot;
    int32_t *free_pages; /* stack of free page ids */
    int n_free, n_pages;
    /* slots and the step's buffers */
    Slot *slots;       /* (n_slots,) */
    int32_t *b_token, *b_pos, *b_seq; /* (max_batch,) */
    uint8_t *b_want;   /* (max_batch,) */
    int *b_slot_of_logits; /* (n_slots,) which slot each logits row belongs to */
    float *logits;     /* (n_slots, vocab) */
    int32_t *b_ids;    /* (n_slots,) the step's choices (the backend's greedy ones, or sampled) */
    float *b_logprobs; /* (n_slots,) their log-probabilities (NaN for sampled tokens) */
    float *cand_val;   /* (n_slots, SAMPLER_MAX_CANDIDATES) each row's best logits (forward_topk) ... */
    int32_t *cand_id;  /* ... and their ids */
    int cand_k;        /* candidates per row in this step; 0: the rows are in logits */
    Pool *sample_pool; /* threads that sample the rows of a step (GPU backends, several slots); or NULL */
    /* the queue, under mu */
    pthread_mutex_t mu;
    pthread_cond_t work;
    Req *queue;        /* ring of max_queue */
    int q_head, q_len;
    uint64_t next_id;
    bool stopping;
    uint64_t *cancel_ids; /* cancels for running slots, applied at the next step */
    int n_cancel, cap_cancel;
    bool cancel_all;      /* engine_shutdown(cancel_all): applied at the next step */
    Req *dropped;         /* (max_queue,) queued requests cancelled before they ran, ended by the step */
    EngineStats stats;
};

/* ---------------------------------------------------------------------------------------------------- */
/* small things */

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

const char *stop_reason_name(StopReason r) {
    static const char *const names[] = {"length", "eog", "stop", "cancelled", "error"};
    return r <= STOP_ERROR ? names[r] : "?";
}

EngineOptions engine_defaults(void) {
    return (EngineOptions){.n_slots = 4, .n_ctx = 4096, .kv_tokens = 0, .page_size = 16, .max_batch = 512,
                           .max_queue = 64, .n_threads = 0, .gpu_device = 0, .force_cpu = 0};
}

static int pending_append(Slot *sl, const char *s, size_t n) {
    if (sl->pending_len + n + 8 > sl->pending_cap) {
        size_t cap = (sl->pending_len + n + 8) * 2;
        char *p = realloc(sl->pending, cap);
        if (!p) return -1;
        sl->pending = p, sl->pending_cap = cap;
    }
    memcpy(sl->pending + sl->pending_len, s, n);
    sl->pending_len += n;
    return 0;
}

static void req_free(Req *q) {
    free(q->prompt);
    if (q->stop)
        for (int i = 0; i < q->r.n_stop; i++) free(q->stop[i]);
    free(q->stop);
    memset(q, 0, sizeof *q);
}

/* ---------------------------------------------------------------------------------------------------- */
/* creation */

Engine *engine_create(Model *m, const Tokenizer *tok, const EngineOptions *opt, char *err, size_t errlen) {
    const Config *c = &m->config;
    EngineOptions o = *opt;
    if (o.n_slots < 1 || o.n_ctx < 2 || o.page_size < 1 || o.max_batch < 1 || o.max_queue < 0) {
        snprintf(err, errlen, "engine options: expected n_slots >= 1, n_ctx >= 2, page_size >= 1, max_batch >= 1");
        return NULL;
    }
    if (o.n_ctx > c->n_ctx) {
        log_warn("context %d is longer than the model's training context %d", o.n_ctx, c->n_ctx);
    }
    if (tokenizer_n_vocab(tok) > c->vocab_size) {
        snprintf(err, errlen, "tokenizer has %d tokens, the model's embedding only %d", tokenizer_n_vocab(tok),
                 c->vocab_size);
        return NULL;
    }
    if (o.kv_tokens <= 0) o.kv_tokens = o.n_slots * o.n_ctx;
    Engine *e = calloc(1, sizeof *e);
    if (!e) return snprintf(err, errlen, "out of memory"), NULL;
    e->opt = o;
    e->model = m;
    e->tok = tok;
    e->vocab = c->vocab_size;
    e->pages_per_slot = (o.n_ctx + o.page_size - 1) / o.page_size;
    e->n_pages = (o.kv_tokens + o.page_size - 1) / o.page_size;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->work, NULL);

    BackendOptions bo = {.n_threads = o.n_threads, .max_batch = o.max_batch, .n_slots = o.n_slots,
                         .n_pages = e->n_pages, .page_size = o.page_size, .gpu_device = o.gpu_device,
                         .force_cpu = o.force_cpu || o.exact, .exact = o.exact};
    e->backend = backend_create(c, &m->weights, &bo, err, errlen);
    if (!e->backend) goto fail;

    e->table = malloc((size_t)o.n_slots * e->pages_per_slot * sizeof *e->table);
    e->free_pages = malloc((size_t)e->n_pages * sizeof *e->free_pages);
    e->slots = calloc((size_t)o.n_slots, sizeof *e->slots);
    e->b_token = malloc((size_t)o.max_batch * sizeof *e->b_token);
    e->b_pos = malloc((size_t)o.max_batch * sizeof *e->b_pos);
    e->b_seq = malloc((size_t)o.max_batch * sizeof *e->b_seq);
    e->b_want = malloc((size_t)o.max_batch);
    e->b_slot_of_logits = malloc((size_t)o.n_slots * sizeof *e->b_slot_of_logits);
    e->logits = malloc((size_t)o.n_slots * e->vocab * sizeof *e->logits);
    e->b_ids = malloc((size_t)o.n_slots * sizeof *e->b_ids);
    int n_sample = o.sample_threads;
    if (n_sample <= 0) { /* automatic: the CPU backend's own threads are busy enough */
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        n_sample = e->backend->kind == BACKEND_CPU || cpus < 2 ? 1 : cpus > 8 ? 8 : (int)cpus;
    }
    if (n_sample > o.n_slots) n_sample = o.n_slots;
    if (n_sample > 1) e->sample_pool = pool_create(n_sample); /* NULL: sampled one by one */
    e->b_logprobs = malloc((size_t)o.n_slots * sizeof *e->b_logprobs);
    e->cand_val = malloc((size_t)o.n_slots * SAMPLER_MAX_CANDIDATES * sizeof *e->cand_val);
    e->cand_id = malloc((size_t)o.n_slots * SAMPLER_MAX_CANDIDATES * sizeof *e->cand_id);
    e->queue = calloc((size_t)(o.max_queue > 0 ? o.max_queue : 1), sizeof *e->queue);
    e->dropped = calloc((size_t)(o.max_queue > 0 ? o.max_queue : 1), sizeof *e->dropped);
    if (!e->table || !e->free_pages || !e->slots || !e->b_token || !e->b_pos || !e->b_seq || !e->b_want ||
        !e->b_slot_of_logits || !e->logits || !e->b_ids || !e->b_logprobs || !e->cand_val || !e->cand_id || !e->queue ||
        !e->dropped)
        goto oom;
    for (int i = 0; i < o.n_slots * e->pages_per_slot; i++) e->table[i] = -1;
    for (int p = 0; p < e->n_pages; p++) e->free_pages[p] = e->n_pages - 1 - p;
    e->n_free = e->n_pages;
    SamplerParams sp = sampler_defaults();
    for (int s = 0; s < o.n_slots; s++) {
        Slot *sl = &e->slots[s];
        sl->tokens = malloc((size_t)o.n_ctx * sizeof *sl->tokens);
        sl->sampler = sampler_create(&sp, e->vocab);
        if (!sl->tokens || !sl->sampler || token_decoder_init(&sl->dec, tok, 0) != TOKENIZER_OK) goto oom;
        if (pending_append(sl, "", 0)) goto oom; /* pending's first buffer */
    }
    e->stats.kv_pages_total = e->n_pages;
    e->next_id = 1;
    log_info("engine: %d slots x %d tokens, KV %d pages of %d tokens (%.1f MiB), batch %d, queue %d", o.n_slots,
             o.n_ctx, e->n_pages, o.page_size, e->backend->kv_bytes / 1048576.0, o.max_batch, o.max_queue);
    return e;
oom:
    snprintf(err, errlen, "out of memory creating the engine");
fail:
    engine_free(e);
    return NULL;
}

void engine_free(Engine *e) {
    if (!e) return;
    if (e->backend) e->backend->free(e->backend);
    if (e->slots)
        for (int s = 0; s < e->opt.n_slots; s++) {
            Slot *sl = &e->slots[s];
            free(sl->tokens);
            sampler_free(sl->sampler);
            token_decoder_free(&sl->dec);
            free(sl->pending);
            req_free(&sl->req);
        }
    if (e->queue)
        for (int i = 0; i < e->q_len; i++) req_free(&e->queue[(e->q_head + i) % e->opt.max_queue]);
    free(e->slots), free(e->table), free(e->free_pages), free(e->b_token), free(e->b_pos), free(e->b_seq);
    free(e->b_want), free(e->b_slot_of_logits), free(e->logits), free(e->b_ids), free(e->b_logprobs), free(e->queue), free(e->cancel_ids);
    free(e->cand_val), free(e->cand_id);
    free(e->dropped);
    if (e->sample_pool) pool_free(e->sample_pool);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->work);
    free(e);
}

const Backend *engine_backend(const Engine *e) {
    return e->backend;
}

/* ---------------------------------------------------------------------------------------------------- */
/* submit and cancel (any thread) */

int engine_submit(Engine *e, const EngineRequest *r, uint64_t *id, char *err, size_t errlen) {
    if (r->n_prompt < 1 || !r->prompt)
        return snprintf(err, errlen, "prompt: expected at least one token"), ENGINE_ERR_INVALID;
    for (int i = 0; i < r->n_prompt; i++)
        if (r->prompt[i] < 0 || r->prompt[i] >= e->vocab)
            return snprintf(err, errlen, "prompt token %d: id %d outside 0..%d", i, r->prompt[i], e->vocab - 1),
                   ENGINE_ERR_INVALID;
    if (r->max_tokens < 1)
        return snprintf(err, errlen, "max_tokens: expected >= 1, found %d", r->max_tokens), ENGINE_ERR_INVALID;
    if (r->n_prompt >= e->opt.n_ctx)
        return snprintf(err, errlen, "context exceeded: the prompt has %d tokens, the context holds %d (prompt and "
                                     "at least one generated token)", r->n_prompt, e->opt.n_ctx),
               ENGINE_ERR_CONTEXT;
    if (sampler_validate(&r->sampling, err, errlen)) return ENGINE_ERR_INVALID;
    if (r->n_stop < 0 || (r->n_stop > 0 && !r->stop))
        return snprintf(err, errlen, "stop: expected a list of strings"), ENGINE_ERR_INVALID;
    for (int i = 0; i < r->n_stop; i++)
        if (!r->stop[i] || !r->stop[i][0])
            return snprintf(err, errlen, "stop[%d]: expected a non-empty string", i), ENGINE_ERR_INVALID;

    Req q = {.r = *r};
    q.prompt = malloc((size_t)r->n_prompt * sizeof *q.prompt);
    q.stop = r->n_stop ? calloc((size_t)r->n_stop, sizeof *q.stop) : NULL;
    if (!q.prompt || (r->n_stop && !q.stop)) goto oom;
    memcpy(q.prompt, r->prompt, (size_t)r->n_prompt * sizeof *q.prompt);
    for (int i = 0; i < r->n_stop; i++)
        if (!(q.stop[i] = strdup(r->stop[i]))) goto oom;
    q.r.prompt = q.prompt;
    q.r.stop = (const char *const *)q.stop;
    q.t_submit = now_ms();

    pthread_mutex_lock(&e->mu);
    int rc = ENGINE_OK;
    if (e->stopping) rc = ENGINE_ERR_STOPPED, snprintf(err, errlen, "the engine is shutting down");
    else if (e->q_len >= e->opt.max_queue) rc = ENGINE_ERR_BUSY, snprintf(err, errlen, "the queue is full (%d waiting)", e->q_len);
    if (rc == ENGINE_OK) {
        q.id = e->next_id++;
        *id = q.id;
        e->queue[(e->q_head + e->q_len) % e->opt.max_queue] = q;
        e->q_len++;
        e->stats.queued = e->q_len;
        pthread_cond_signal(&e->work);
    }
    pthread_mutex_unlock(&e->mu);
    if (rc != ENGINE_OK) req_free(&q);
    return rc;
oom:
    q.r.n_stop = r->n_stop;
    req_free(&q);
    return snprintf(err, errlen, "out of memory"), ENGINE_ERR_INTERNAL;
}

void engine_cancel(Engine *e, uint64_t id) {
    pthread_mutex_lock(&e->mu);
    for (int i = 0; i < e->q_len; i++) {
        Req *q = &e->queue[(e->q_head + i) % e->opt.max_queue];
        if (q->id == id) q->cancel = true;
    }
    if (e->n_cancel == e->cap_cancel) {
        int cap = e->cap_cancel ? 2 * e->cap_cancel : 16;
        uint64_t *p = realloc(e->cancel_ids, (size_t)cap * sizeof *p);
        if (p) e->cancel_ids = p, e->cap_cancel = cap;
    }
    if (e->n_cancel < e->cap_cancel) e->cancel_ids[e->n_cancel++] = id;
    pthread_cond_signal(&e->work);
    pthread_mutex_unlock(&e->mu);
}

void engine_shutdown(Engine *e, bool cancel_all) {
    pthread_mutex_lock(&e->mu);
    e->stopping = true;
    if (cancel_all) {
        e->cancel_all = true;
        for (int i = 0; i < e->q_len; i++) e->queue[(e->q_head + i) % e->opt.max_queue].cancel = true;
    }
    pthread_cond_broadcast(&e->work);
    pthread_mutex_unlock(&e->mu);
}

void engine_stats(Engine *e, EngineStats *s) {
    pthread_mutex_lock(&e->mu);
    *s = e->stats;
    pthread_mutex_unlock(&e->mu);
}

/* ---------------------------------------------------------------------------------------------------- */
/* finishing */


static void finish(Engine *e, int s, StopReason reason, int code, const char *msg) {
    Slot *sl = &e->slots[s];
    size_t flen = 0;
    const char *flushed = token_decoder_flush(&sl->dec, &flen);
    /* what the decoder held back joins what the stop-string check held back */
    if (reason != STOP_STRING && flen && pending_append(sl, flushed, flen))
        log_warn("request %llu: out of memory for the final %zu bytes", (unsigned long long)sl->req.id, flen);
    double t = now_ms();
    EngineDone d = {.reason = reason, .error_code = code, .error = msg,
                    .tail = reason == STOP_STRING ? "" : sl->pending,
                    .tail_len = reason == STOP_STRING ? 0 : sl->pending_len, .n_prompt = sl->req.r.n_prompt,
                    .n_generated = sl->n_generated, .queue_ms = sl->t_admit - sl->req.t_submit,
                    .prefill_ms = (sl->t_first ? sl->t_first : t) - sl->t_admit,
                    .decode_ms = sl->t_first ? t - sl->t_first : 0,
                    .ttft_ms = sl->t_first ? sl->t_first - sl->req.t_submit : 0};
    if (sl->req.r.on_done) sl->req.r.on_done(sl->req.r.user, &d);
    /* give the pages back */
    for (int p = 0; p < sl->n_pages; p++) {
        int32_t *entry = &e->table[(size_t)s * e->pages_per_slot + p];
        e->free_pages[e->n_free++] = *entry;
        *entry = -1;
    }
    pthread_mutex_lock(&e->mu);
    e->stats.requests_done++;
    e->stats.tokens_out += (uint64_t)sl->n_generated;
    pthread_mutex_unlock(&e->mu);
    req_free(&sl->req);
    sl->active = sl->cancel = false;
    sl->n_pages = sl->n_tokens = sl->n_cached = sl->n_generated = 0;
    sl->pending_len = 0;
}

/* A queued request that never ran (cancelled while waiting). */
static void finish_queued(Req *q, StopReason reason) {
    EngineDone d = {.reason = reason, .tail = "", .n_prompt = q->r.n_prompt, .queue_ms = now_ms() - q->t_submit};
    if (q->r.on_done) q->r.on_done(q->r.user, &d);
    req_free(q);
}

/* ---------------------------------------------------------------------------------------------------- */
/* a token's text and the stop strings */


/* Longest suffix of text that is a proper prefix of stop. */
static size_t partial_match(const char *text, size_t n, const char *stop) {
    size_t sl = strlen(stop);
    for (size_t k = sl - 1 < n ? sl - 1 : n; k > 0; k--)
        if (!memcmp(text + n - k, stop, k)) return k;
    return 0;
}

/* Handle a sampled, non-final-EOG token: text, stop strings, callbacks, limits. */
static void emit(Engine *e, int s, int32_t tok, float logprob) {
    Slot *sl = &e->slots[s];
    const EngineRequest *r = &sl->req.r;
    size_t len = 0;
    const char *text = token_decoder_push(&sl->dec, tok, &len);
    if (pending_append(sl, text, len)) return finish(e, s, STOP_ERROR, ENGINE_ERR_INTERNAL, "out of memory");
    /* a complete stop string: emit what precedes it and end */
    size_t cut = sl->pending_len, hold = 0;
    int stopped = 0;
    for (int i = 0; i < r->n_stop; i++) {
        size_t n = strlen(r->stop[i]);
        for (size_t at = 0; at + n <= sl->pending_len; at++)
            if (!memcmp(sl->pending + at, r->stop[i], n)) {
                if (at < cut) cut = at;
                stopped = 1;
                break;
            }
    }
    if (!stopped)
        for (int i = 0; i < r->n_stop; i++) {
            size_t k = partial_match(sl->pending, sl->pending_len, r->stop[i]);
            if (k > hold) hold = k;
        }
    size_t out = stopped ? cut : sl->pending_len - hold;
    sl->n_generated++;
    EngineToken ev = {tok, sl->pending, out, logprob, sl->n_generated - 1};
    int want_stop = r->on_token ? r->on_token(r->user, &ev) : 0;
    memmove(sl->pending, sl->pending + out, sl->pending_len - out);
    sl->pending_len -= out;
    if (stopped) return finish(e, s, STOP_STRING, 0, NULL);
    if (want_stop) return finish(e, s, STOP_CANCELLED, 0, NULL);
    if (sl->n_generated >= r->max_tokens || sl->n_tokens >= e->opt.n_ctx) return finish(e, s, STOP_LENGTH, 0, NULL);
}

/* ---------------------------------------------------------------------------------------------------- */
/* the step */

/* Pages so that slot s holds positions [0, upto). */
static int grow_pages(Engine *e, int s, int upto) {
    Slot *sl = &e->slots[s];
    int need = (upto + e->opt.page_size - 1) / e->opt.page_size;
    while (sl->n_pages < need) {
        if (e->n_free == 0) return -1;
        e->table[(size_t)s * e->pages_per_slot + sl->n_pages++] = e->free_pages[--e->n_free];
    }
    return 0;
}

/* Under mu: move queued requests into free slots; collect cancellations. */
static int admit(Engine *e, Req *dropped, int *n_dropped) {
    *n_dropped = 0;
    for (int s = 0; s < e->opt.n_slots && e->cancel_all; s++) e->slots[s].cancel = e->slots[s].active;
    for (int c = 0; c < e->n_cancel; c++)
        for (int s = 0; s < e->opt.n_slots; s++)
            if (e->slots[s].active && e->slots[s].req.id == e->cancel_ids[c]) e->slots[s].cancel = true;
    e->n_cancel = 0;
    int admitted = 0;
    for (int s = 0; s < e->opt.n_slots && e->q_len > 0; s++) {
        if (e->slots[s].active) continue;
        Req q = e->queue[e->q_head];
        e->q_head = (e->q_head + 1) % e->opt.max_queue;
        e->q_len--;
        if (q.cancel) {
            dropped[(*n_dropped)++] = q;
            s--; /* this slot is still free */
            continue;
        }
        Slot *sl = &e->slots[s];
        sl->req = q;
        sl->active = true;
        sl->cancel = false;
        memcpy(sl->tokens, q.prompt, (size_t)q.r.n_prompt * sizeof *sl->tokens);
        sl->n_tokens = q.r.n_prompt;
        sl->n_cached = sl->n_generated = 0;
        sl->t_admit = now_ms();
        sl->t_first = 0;
        sl->pending_len = 0;
        sampler_reset(sl->sampler, &q.r.sampling);
        e->stats.tokens_in += (uint64_t)q.r.n_prompt;
        admitted++;
    }
    /* requests cancelled while still queued behind full slots */
    for (int i = 0; i < e->q_len;) {
        Req *q = &e->queue[(e->q_head + i) % e->opt.max_queue];
        if (!q->cancel) {
            i++;
            continue;
        }
        dropped[(*n_dropped)++] = *q;
        for (int j = i; j + 1 < e->q_len; j++)
            e->queue[(e->q_head + j) % e->opt.max_queue] = e->queue[(e->q_head + j + 1) % e->opt.max_queue];
        e->q_len--;
    }
    return admitted;
}

/* row k of the step: its slot's sampler chooses (pool task: one row each), from the row's candidates when
 * the step has them and they decide it, else from the whole row (fetched from the backend if need be);
 * -1 when that fetch fails */
static void sample_task(void *ctx, int k, int thread) {
    (void)thread;
    Engine *e = ctx;
    Slot *sl = &e->slots[e->b_slot_of_logits[k]];
    if (!sl->active) return;
    e->b_logprobs[k] = NAN; /* not computed: one more exp per vocabulary entry, and nothing reports it yet */
    const size_t c0 = (size_t)k * e->cand_k;
    if (e->cand_k &&
        !sampler_sample_top(sl->sampler, e->cand_val + c0, e->cand_id + c0, e->cand_k, sl->tokens, sl->n_tokens, &e->b_ids[k]))
        return;
    float *row = e->logits + (size_t)k * e->vocab;
    char err[256];
    if (e->cand_k && e->backend->logits_row(e->backend, k, row, err, sizeof err)) {
        log_error("logits of row %d: %s", k, err);
        e->b_ids[k] = -1;
        return;
    }
    e->b_ids[k] = sampler_sample(sl->sampler, row, sl->tokens, sl->n_tokens, NULL);
}

_Static_assert(SAMPLER_MAX_CANDIDATES <= BACKEND_TOPK_MAX, "forward_topk sends what a sampler may need");

/* Candidates per row for a step that samples: the most any row's sampler needs, when the backend can send
 * only those; 0 (whole rows) when it cannot, or when most rows need the whole row anyway. */
static int step_candidates(const Engine *e, int n_logits) {
    if (!e->backend->forward_topk || !e->backend->logits_row) return 0;
    int k = 0, whole = 0;
    for (int i = 0; i < n_logits; i++) {
        const int need = sampler_candidates_needed(e->slots[e->b_slot_of_logits[i]].sampler);
        if (!need) whole++;
        if (need > k) k = need;
    }
    return 2 * whole > n_logits ? 0 : k;
}

int engine_step(Engine *e) {
    const int n_slots = e->opt.n_slots;
    int n_dropped = 0;
    pthread_mutex_lock(&e->mu);
    admit(e, e->dropped, &n_dropped);
    pthread_mutex_unlock(&e->mu);
    for (int i = 0; i < n_dropped; i++) finish_queued(&e->dropped[i], STOP_CANCELLED);

    for (int s = 0; s < n_slots; s++)
        if (e->slots[s].active && e->slots[s].cancel) finish(e, s, STOP_CANCELLED, 0, NULL);

    /* the batch: decoding slots first, then prompt chunks */
    int n = 0, n_logits = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (int s = 0; s < n_slots && n < e->opt.max_batch; s++) {
            Slot *sl = &e->slots[s];
            if (!sl->active) continue;
            int todo = sl->n_tokens - sl->n_cached;
            if ((pass == 0) != (todo == 1)) continue;
            int chunk = todo < e->opt.max_batch - n ? todo : e->opt.max_batch - n;
            if (grow_pages(e, s, sl->n_cached + chunk)) {
                finish(e, s, STOP_ERROR, ENGINE_ERR_KV, "out of KV cache pages: too many tokens in flight");
                continue;
            }
            for (int j = 0; j < chunk; j++) {
                int p = sl->n_cached + j;
                e->b_token[n] = sl->tokens[p];
                e->b_pos[n] = p;
                e->b_seq[n] = s;
                e->b_want[n] = p == sl->n_tokens - 1;
                if (e->b_want[n]) e->b_slot_of_logits[n_logits++] = s;
                n++;
            }
            sl->n_cached += chunk;
        }
    }
    if (n > 0) {
        Batch b = {n, e->b_token, e->b_pos, e->b_seq, e->b_want, NULL};
        KVPages kv = {e->table, e->pages_per_slot};
        char err[256];
        /* when every sequence that samples now is greedy, a backend that can take the argmax itself does,
         * and only ids cross (the CUDA backend); otherwise logits come back for the sampler */
        bool greedy = e->backend->forward_argmax != NULL && n_logits > 0;
        for (int k = 0; k < n_logits && greedy; k++) greedy = sampler_is_greedy(e->slots[e->b_slot_of_logits[k]].sampler);
        e->cand_k = greedy ? 0 : step_candidates(e, n_logits);
        int rc = greedy     ? e->backend->forward_argmax(e->backend, &b, &kv, e->b_ids, e->b_logprobs, err, sizeof err)
                 : e->cand_k ? e->backend->forward_topk(e->backend, &b, &kv, e->cand_k, e->cand_val, e->cand_id, err,
                                                        sizeof err)
                             : e->backend->forward(e->backend, &b, &kv, e->logits, err, sizeof err);
        if (rc) {
            log_error("forward: %s", err);
            for (int s = 0; s < n_slots; s++)
                if (e->slots[s].active) finish(e, s, STOP_ERROR, ENGINE_ERR_INTERNAL, err);
        } else {
            if (!greedy) {
                if (e->sample_pool && n_logits > 1) pool_for(e->sample_pool, n_logits, sample_task, e);
                else
                    for (int k = 0; k < n_logits; k++) sample_task(e, k, 0);
            }
            for (int k = 0; k < n_logits; k++) {
                int s = e->b_slot_of_logits[k];
                Slot *sl = &e->slots[s];
                if (!sl->active) continue;
                const float lp = e->b_logprobs[k];
                const int32_t tok = e->b_ids[k];
                if (tok < 0) {
                    finish(e, s, STOP_ERROR, ENGINE_ERR_INTERNAL, "reading the logits from the backend failed");
                    continue;
                }
                if (!sl->t_first) sl->t_first = now_ms();
                if (tokenizer_is_eog(e->tok, tok) && !sl->req.r.ignore_eog) {
                    finish(e, s, STOP_EOG, 0, NULL);
                    continue;
                }
                sl->tokens[sl->n_tokens++] = tok;
                emit(e, s, tok, lp);
            }
        }
    }

    int busy = 0, pages_used = e->n_pages - e->n_free;
    for (int s = 0; s < n_slots; s++) busy += e->slots[s].active;
    pthread_mutex_lock(&e->mu);
    e->stats.running = busy;
    e->stats.queued = e->q_len;
    e->stats.kv_pages_used = pages_used;
    busy += e->q_len;
    pthread_mutex_unlock(&e->mu);
    return busy;
}

void engine_run(Engine *e) {
    for (;;) {
        pthread_mutex_lock(&e->mu);
        bool idle = e->q_len == 0 && e->n_cancel == 0;
        for (int s = 0; s < e->opt.n_slots && idle; s++) idle = !e->slots[s].active;
        while (idle && !e->stopping && e->q_len == 0 && e->n_cancel == 0) pthread_cond_wait(&e->work, &e->mu);
        bool stop = e->stopping && idle;
        pthread_mutex_unlock(&e->mu);
        if (stop) return;
        if (engine_step(e) == 0 && e->stopping) {
            pthread_mutex_lock(&e->mu);
            bool done = e->q_len == 0;
            pthread_mutex_unlock(&e->mu);
            if (done) return;
        }
    }
}
