/*
 * Tests of the engine on a real model (SmolLM2-135M, the small default model; ORCD_MODELS): several
 * sequences in one batch give exactly the tokens each gives alone; stop strings, cancellation, KV
 * exhaustion, a full queue and an oversized prompt each end the right request the right way.
 */
#define _POSIX_C_SOURCE 200809L
#include "../../src/backend/backend.h"
#include "../../src/engine.h"
#include "test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_OUT 64

typedef struct Out {
    int32_t ids[MAX_OUT];
    int n, done, cancel_after;
    char text[4096];
    size_t len;
    EngineDone d;
} Out;

static int on_token(void *user, const EngineToken *t) {
    Out *o = user;
    if (o->n < MAX_OUT) o->ids[o->n++] = t->id;
    if (o->len + t->len < sizeof o->text) memcpy(o->text + o->len, t->text, t->len), o->len += t->len;
    return o->cancel_after && o->n >= o->cancel_after;
}

static void on_done(void *user, const EngineDone *d) {
    Out *o = user;
    if (d->tail_len && o->len + d->tail_len < sizeof o->text) memcpy(o->text + o->len, d->tail, d->tail_len), o->len += d->tail_len;
    o->text[o->len] = 0;
    o->d = *d;
    o->d.error = NULL;
    o->done = 1;
}

typedef struct Fixture {
    Model *m;
    Tokenizer *tok;
    Engine *e;
} Fixture;

static int open_fixture(Fixture *f, EngineOptions *o) {
    const char *dir = getenv("ORCD_MODELS");
    char path[512], err[512];
    memset(f, 0, sizeof *f);
    if (!dir) return test_skip("ORCD_MODELS not set"), -1;
    snprintf(path, sizeof path, "%s/smollm2-135m-instruct-q4_1.gguf", dir);
    if (!(f->m = model_open(path, err, sizeof err))) return test_fail_at(__FILE__, __LINE__, "%s", err), -1;
    if (tokenizer_load(&f->tok, f->m->file, err, sizeof err)) return test_fail_at(__FILE__, __LINE__, "%s", err), -1;
    o->n_threads = 2;
    if (!(f->e = engine_create(f->m, f->tok, o, err, sizeof err))) return test_fail_at(__FILE__, __LINE__, "%s", err), -1;
    return 0;
}

static void close_fixture(Fixture *f) {
    engine_free(f->e);
    tokenizer_free(f->tok);
    model_close(f->m);
}

static int encode(const Tokenizer *tok, const char *text, int32_t *ids, int cap) {
    return (int)tokenizer_encode(tok, text, strlen(text), 0, ids, (size_t)cap);
}

static EngineRequest greedy(const int32_t *ids, int n, int max_tokens, Out *o) {
    SamplerParams sp = sampler_defaults();
    sp.temperature = 0;
    return (EngineRequest){.prompt = ids, .n_prompt = n, .max_tokens = max_tokens, .sampling = sp,
                           .ignore_eog = true, .on_token = on_token, .on_done = on_done, .user = o};
}

static void run_until_done(Engine *e, Out *outs, int n) {
    for (int guard = 0; guard < 10000; guard++) {
        int done = 1;
        for (int i = 0; i < n; i++) done &= outs[i].done;
        if (done) return;
        engine_step(e);
    }
}

static const char *PROMPTS[] = {"The quick brown fox", "Once upon a time, in a land far away,",
                                "def fibonacci(n):\n    ", "The capital of France is"};

TEST(engine_batched_equals_alone) {
    EngineOptions o = engine_defaults();
    o.n_slots = 4, o.n_ctx = 256, o.max_batch = 64; /* the long prompt is prefilled over two steps */
    Fixture f;
    if (open_fixture(&f, &o)) return close_fixture(&f);
    int32_t ids[4][64];
    int n[4];
    Out alone[4] = {0}, together[4] = {0};
    char err[256];
    uint64_t id;
    for (int k = 0; k < 4; k++) {
        n[k] = encode(f.tok, PROMPTS[k], ids[k], 64);
        EngineRequest r = greedy(ids[k], n[k], 16, &alone[k]);
        ASSERT_EQ_INT(engine_submit(f.e, &r, &id, err, sizeof err), ENGINE_OK);
        run_until_done(f.e, &alone[k], 1);
    }
    for (int k = 0; k < 4; k++) {
        EngineRequest r = greedy(ids[k], n[k], 16, &together[k]);
        ASSERT_EQ_INT(engine_submit(f.e, &r, &id, err, sizeof err), ENGINE_OK);
    }
    run_until_done(f.e, together, 4);
    for (int k = 0; k < 4; k++) {
        ASSERT_EQ_INT(together[k].d.reason, STOP_LENGTH);
        ASSERT_EQ_INT(together[k].n, 16);
        for (int i = 0; i < 16; i++)
            if (together[k].ids[i] != alone[k].ids[i])
                FAIL("prompt %d token %d: %d batched, %d alone", k, i, together[k].ids[i], alone[k].ids[i]);
        ASSERT_EQ_STR(together[k].text, alone[k].text);
    }
    EngineStats st;
    engine_stats(f.e, &st);
    ASSERT_EQ_INT(st.running, 0);
    ASSERT_EQ_INT(st.kv_pages_used, 0); /* every page back */
    ASSERT_EQ_INT(st.requests_done, 8);
    close_fixture(&f);
}

/* The four PROMPTS submitted together, request k sampling with sp[k], 24 tokens each, run to the end. */
static void run_four(Fixture *f, const SamplerParams sp[4], Out outs[4]) {
    int32_t ids[4][64];
    char err[256];
    uint64_t id;
    for (int k = 0; k < 4; k++) {
        const int n = encode(f->tok, PROMPTS[k], ids[k], 64);
        EngineRequest r = greedy(ids[k], n, 24, &outs[k]);
        r.sampling = sp[k];
        ASSERT_EQ_INT(engine_submit(f->e, &r, &id, err, sizeof err), ENGINE_OK);
    }
    run_until_done(f->e, outs, 4);
}

/* Each of the four requests ran its 24 tokens, the same in `got` as in `want`. */
static void same_tokens(const Out got[4], const Out want[4], const char *how) {
    for (int k = 0; k < 4; k++) {
        ASSERT_EQ_INT(got[k].d.reason, STOP_LENGTH);
        ASSERT_EQ_INT(got[k].n, 24);
        for (int i = 0; i < 24; i++)
            if (got[k].ids[i] != want[k].ids[i])
                FAIL("request %d token %d: %d %s, %d otherwise", k, i, got[k].ids[i], how, want[k].ids[i]);
    }
}

/* Sampled (temperature 0.8, top-k 40, top-p 0.9) requests give the same tokens whether the step's rows are
 * sampled on 4 threads or on the engine thread alone: each slot draws from its own seeded sampler. */
TEST(engine_parallel_sampling_equals_serial) {
    Out outs[2][4];
    memset(outs, 0, sizeof outs);
    SamplerParams sp[4];
    for (int k = 0; k < 4; k++) {
        sp[k] = sampler_defaults();
        sp[k].temperature = 0.8f, sp[k].top_k = 40, sp[k].top_p = 0.9f, sp[k].seed = 1000 + (uint64_t)k;
    }
    for (int pass = 0; pass < 2; pass++) {
        EngineOptions o = engine_defaults();
        o.n_slots = 4, o.n_ctx = 256, o.sample_threads = pass ? 4 : 1;
        Fixture f;
        if (open_fixture(&f, &o)) return close_fixture(&f);
        run_four(&f, sp, outs[pass]);
        close_fixture(&f);
        if (test_failed()) return;
    }
    same_tokens(outs[1], outs[0], "on 4 threads");
}

/* The engine's sampling-candidates path (Backend.forward_topk + logits_row, which the CUDA backend has),
 * driven here by a stand-in on the CPU backend: the CPU's logits, each row's k best sorted on the host.
 * Requests that candidates serve (top-k), that need some rows whole (penalties that push a candidate
 * below the rest), that need every row whole (no top-k) and greedy ones with a penalty, all in one batch,
 * give exactly the tokens of the whole-row path, seed for seed. */
static float *cand_rows;     /* the last forward's rows of logits */
static int cand_vocab, cand_kept, cand_topk_calls, cand_row_calls;
static int cand_forward_topk(Backend *b, const Batch *batch, const KVPages *kv, int k, float *vals, int32_t *ids,
                             char *err, size_t errlen) {
    if (b->forward(b, batch, kv, cand_rows, err, errlen)) return -1;
    cand_topk_calls++;
    cand_kept = 0;
    int *order = malloc(sizeof(int) * cand_vocab);
    for (int i = 0; i < batch->n; i++) {
        if (!batch->want_logits[i]) continue;
        const float *row = cand_rows + (size_t)cand_kept * cand_vocab;
        test_rank(row, cand_vocab, order);
        for (int j = 0; j < k; j++) vals[cand_kept * k + j] = row[order[j]], ids[cand_kept * k + j] = order[j];
        cand_kept++;
    }
    free(order);
    return 0;
}

static int cand_logits_row(Backend *b, int row, float *dst, char *err, size_t errlen) {
    (void)b;
    if (row < 0 || row >= cand_kept) return snprintf(err, errlen, "row %d of %d", row, cand_kept), -1;
    __atomic_add_fetch(&cand_row_calls, 1, __ATOMIC_RELAXED);
    memcpy(dst, cand_rows + (size_t)row * cand_vocab, sizeof(float) * cand_vocab);
    return 0;
}

TEST(engine_sampling_candidates_equal_whole_rows) {
    Out outs[2][4];
    memset(outs, 0, sizeof outs);
    SamplerParams sp[4];
    for (int k = 0; k < 4; k++) sp[k] = sampler_defaults(), sp[k].seed = 77 + (uint64_t)k;
    sp[0].temperature = 0.8f, sp[0].top_k = 40, sp[0].top_p = 0.9f;
    sp[1].temperature = 1.0f, sp[1].top_k = 5, sp[1].repetition_penalty = 1.5f, sp[1].penalty_last_n = -1;
    sp[2].temperature = 0.7f, sp[2].top_k = 0;   /* needs whole rows */
    sp[3].temperature = 0.0f, sp[3].repetition_penalty = 1.3f; /* greedy with a penalty */
    for (int pass = 0; pass < 2; pass++) {
        EngineOptions o = engine_defaults();
        o.n_slots = 4, o.n_ctx = 256, o.sample_threads = 2;
        Fixture f;
        if (open_fixture(&f, &o)) return close_fixture(&f);
        Backend *be = (Backend *)engine_backend(f.e);
        if (pass) { /* the stand-in: the engine sees a backend with candidates */
            cand_vocab = be->config->vocab_size;
            cand_rows = malloc(sizeof(float) * o.n_slots * cand_vocab);
            be->forward_topk = cand_forward_topk, be->logits_row = cand_logits_row;
        }
        run_four(&f, sp, outs[pass]);
        if (pass) be->forward_topk = NULL, be->logits_row = NULL;
        close_fixture(&f);
        if (test_failed()) break;
    }
    free(cand_rows), cand_rows = NULL;
    if (test_failed()) return;
    fprintf(stderr, "  %d steps with candidates, %d rows fetched whole\n", cand_topk_calls, cand_row_calls);
    ASSERT(cand_topk_calls > 10 && cand_row_calls > 0);
    same_tokens(outs[1], outs[0], "from candidates");
}

TEST(engine_stop_strings_and_cancel) {
    EngineOptions o = engine_defaults();
    o.n_slots = 2, o.n_ctx = 256;
    Fixture f;
    if (open_fixture(&f, &o)) return close_fixture(&f);
    int32_t ids[64];
    int n = encode(f.tok, PROMPTS[1], ids, 64);
    char err[256];
    uint64_t id;
    Out full = {0};
    EngineRequest r = greedy(ids, n, 24, &full);
    ASSERT_EQ_INT(engine_submit(f.e, &r, &id, err, sizeof err), ENGINE_OK);
    run_until_done(f.e, &full, 1);
    ASSERT(full.len > 12);
    /* a stop string made of the end of one token and the start of the next: cut exactly before it */
    const char *stop_at = full.text + full.len / 2;
    char stop[8];
    snprintf(stop, sizeof stop, "%.3s", stop_at);
    const char *stops[] = {stop};
    Out cut = {0};
    r = greedy(ids, n, 24, &cut);
    r.stop = stops, r.n_stop = 1;
    ASSERT_EQ_INT(engine_submit(f.e, &r, &id, err, sizeof err), ENGINE_OK);
    run_until_done(f.e, &cut, 1);
    ASSERT_EQ_INT(cut.d.reason, STOP_STRING);
    const char *first = strstr(full.text, stop);
    ASSERT(first != NULL);
    ASSERT_EQ_INT(cut.len, first - full.text);
    ASSERT(strncmp(cut.text, full.text, cut.len) == 0);
    /* a callback that asks to stop; and engine_cancel */
    Out a = {.cancel_after = 3}, b = {0};
    r = greedy(ids, n, 24, &a);
    ASSERT_EQ_INT(engine_submit(f.e, &r, &id, err, sizeof err), ENGINE_OK);
    r = greedy(ids, n, 24, &b);
    uint64_t id_b;
    ASSERT_EQ_INT(engine_submit(f.e, &r, &id_b, err, sizeof err), ENGINE_OK);
    engine_step(f.e);
    engine_cancel(f.e, id_b);
    run_until_done(f.e, &a, 1);
    run_until_done(f.e, &b, 1);
    ASSERT_EQ_INT(a.d.reason, STOP_CANCELLED);
    ASSERT_EQ_INT(a.n, 3);
    ASSERT_EQ_INT(b.d.reason, STOP_CANCELLED);
    ASSERT(b.n <= 2);
    EngineStats st;
    engine_stats(f.e, &st);
    ASSERT_EQ_INT(st.kv_pages_used, 0);
    close_fixture(&f);
}

TEST(engine_limits) {
    EngineOptions o = engine_defaults();
    o.n_slots = 2, o.n_ctx = 64, o.page_size = 16, o.kv_tokens = 80, o.max_queue = 2;
    Fixture f;
    if (open_fixture(&f, &o)) return close_fixture(&f);
    int32_t ids[80];
    for (int i = 0; i < 80; i++) ids[i] = 1000 + i;
    char err[256];
    uint64_t id;
    Out x = {0};
    /* a prompt that leaves no room for a generated token */
    EngineRequest r = greedy(ids, 64, 4, &x);
    ASSERT_EQ_INT(engine_submit(f.e, &r, &id, err, sizeof err), ENGINE_ERR_CONTEXT);
    ASSERT_CONTAINS(err, "context exceeded: the prompt has 64 tokens");
    /* out-of-range fields */
    r = greedy(ids, 4, 0, &x);
    ASSERT_EQ_INT(engine_submit(f.e, &r, &id, err, sizeof err), ENGINE_ERR_INVALID);
    r = greedy(ids, 4, 4, &x);
    r.sampling.top_p = 2;
    ASSERT_EQ_INT(engine_submit(f.e, &r, &id, err, sizeof err), ENGINE_ERR_INVALID);
    int32_t bad = 1 << 30;
    r = greedy(&bad, 1, 4, &x);
    ASSERT_EQ_INT(engine_submit(f.e, &r, &id, err, sizeof err), ENGINE_ERR_INVALID);
    /* KV: 80 positions in all; two sequences of 40+ tokens cannot both fit. One fails, the other ends
     * normally, and every page is free afterwards. */
    Out p = {0}, q = {0}, overflow = {0};
    r = greedy(ids, 40, 20, &p);
    ASSERT_EQ_INT(engine_submit(f.e, &r, &id, err, sizeof err), ENGINE_OK);
    r = greedy(ids + 1, 40, 20, &q);
    ASSERT_EQ_INT(engine_submit(f.e, &r, &id, err, sizeof err), ENGINE_OK);
    engine_step(f.e); /* both admitted: the slots are full, the queue empty */
    /* the queue holds 2: two more wait, a fifth is refused at once */
    Out waiting[2] = {0}, refused = {0};
    for (int k = 0; k < 2; k++) {
        r = greedy(ids, 8, 2, &waiting[k]);
        ASSERT_EQ_INT(engine_submit(f.e, &r, &id, err, sizeof err), ENGINE_OK);
    }
    r = greedy(ids, 8, 2, &refused);
    ASSERT_EQ_INT(engine_submit(f.e, &r, &id, err, sizeof err), ENGINE_ERR_BUSY);
    ASSERT_CONTAINS(err, "queue is full");
    run_until_done(f.e, &p, 1);
    run_until_done(f.e, &q, 1);
    run_until_done(f.e, waiting, 2);
    overflow = waiting[1];
    int errors = (p.d.reason == STOP_ERROR) + (q.d.reason == STOP_ERROR);
    ASSERT_EQ_INT(errors, 1);
    Out *failed = p.d.reason == STOP_ERROR ? &p : &q, *ok = failed == &p ? &q : &p;
    ASSERT_EQ_INT(failed->d.error_code, ENGINE_ERR_KV);
    ASSERT_EQ_INT(ok->d.reason, STOP_LENGTH);
    ASSERT_EQ_INT(ok->n, 20);
    ASSERT_EQ_INT(overflow.d.reason, STOP_LENGTH);
    EngineStats st;
    engine_stats(f.e, &st);
    ASSERT_EQ_INT(st.kv_pages_used, 0);
    close_fixture(&f);
}
