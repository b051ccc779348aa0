/*
 * `orcd bench -m MODEL [-p 512] [-n 128] [-r 3] [--streams 1,16,64] [options]`: prefill and decode speed
 * through the engine, the path requests take. Each run submits one (or `streams` concurrent) requests of a
 * synthetic prompt of p tokens (ordinary token ids from a fixed seed) and generates exactly n tokens
 * (end-of-generation ignored; greedy unless sampling options such as --temp are given). Prints medians over r runs: prefill tok/s, decode tok/s (all
 * streams together), time to first token, and for one stream the GB/s of weights read while decoding and,
 * where the backend measured its memory bandwidth (CUDA), the fraction of the bandwidth limit that is.
 * Where the backend can profile (CUDA), more runs print the time per step in each kernel group: decode at
 * each stream count (1-token prompts, so every step is a decode step), then the p-token prefill.
 */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"
#include "common.h"

#include "../log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_RUNS 64
#define MAX_STREAM_SETTINGS 8

typedef struct Stream {
    int done, generated;
    EngineDone d;
} Stream;

static int on_token(void *user, const EngineToken *t) {
    (void)t;
    ((Stream *)user)->generated++;
    return 0;
}

static void on_done(void *user, const EngineDone *d) {
    Stream *s = user;
    s->d = *d;
    s->done = 1;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* One run of `streams` requests at once. prefill: prompt tokens of all streams over the time until every
 * stream has its first token; decode: tokens after each stream's first, over the time from then to the end;
 * ttft: mean time to first token. */
static int run_once(CliModel *cm, const SamplerParams *sp, const int32_t *prompt, int n_prompt, int n_gen, int streams,
                    double *prefill_tps, double *decode_tps, double *ttft_ms) {
    Stream *st = calloc((size_t)streams, sizeof *st);
    if (!st) return -1;
    char err[256];
    double t0 = now_s(), t_all_first = 0;
    for (int k = 0; k < streams; k++) {
        EngineRequest r = {.prompt = prompt, .n_prompt = n_prompt, .max_tokens = n_gen, .sampling = *sp,
                           .ignore_eog = true, .on_token = on_token, .on_done = on_done, .user = &st[k]};
        uint64_t id;
        if (engine_submit(cm->engine, &r, &id, err, sizeof err) != ENGINE_OK) {
            log_error("bench: %s", err);
            free(st);
            return -1;
        }
    }
    for (int left = streams; left > 0;) {
        engine_step(cm->engine);
        int started = 0;
        left = 0;
        for (int k = 0; k < streams; k++) left += !st[k].done, started += st[k].generated > 0 || st[k].done;
        if (!t_all_first && started == streams) t_all_first = now_s();
    }
    double t1 = now_s(), ttft = 0;
    int tokens = 0, errors = 0;
    for (int k = 0; k < streams; k++) {
        tokens += st[k].d.n_generated - 1;
        errors += st[k].d.reason == STOP_ERROR;
        ttft += st[k].d.ttft_ms / streams;
    }
    free(st);
    if (errors) {
        log_error("bench: %d of %d requests failed", errors, streams);
        return -1;
    }
    *prefill_tps = (double)n_prompt * streams / (t_all_first - t0);
    *decode_tps = tokens / (t1 - t_all_first);
    *ttft_ms = ttft;
    return 0;
}

int cmd_bench(int argc, char **argv) {
    const char *path = NULL, *streams_arg = "1";
    int n_prompt = 512, n_gen = 128, runs = 3;
    bool seed_set = false;
    SamplerParams sp = sampler_defaults();
    sp.temperature = 0; /* greedy unless --temp says otherwise */
    EngineOptions eo = engine_defaults();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int rc = cli_parse_option(argc, argv, &i, &sp, &seed_set, &eo);
        if (rc < 0) return 1;
        if (rc > 0) continue;
        if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && v) path = v, i++;
        else if (!strcmp(a, "-p") && v) n_prompt = atoi(v), i++;
        else if (!strcmp(a, "-n") && v) n_gen = atoi(v), i++;
        else if (!strcmp(a, "-r") && v) runs = atoi(v), i++;
        else if (!strcmp(a, "--streams") && v) streams_arg = v, i++;
        else {
            fprintf(stderr, "usage: orcd bench -m MODEL [-p PROMPT_TOKENS] [-n GEN_TOKENS] [-r RUNS] "
                            "[--streams 1,16,64]\n%s", CLI_OPTIONS_HELP);
            return 1;
        }
    }
    int streams[MAX_STREAM_SETTINGS], n_streams = 0, max_streams = 1;
    for (const char *p = streams_arg; *p && n_streams < MAX_STREAM_SETTINGS;) {
        char *end;
        long s = strtol(p, &end, 10);
        if (end == p || s < 1 || s > 4096) {
            log_error("--streams: expected numbers >= 1 separated by commas, found \"%s\"", streams_arg);
            return 1;
        }
        streams[n_streams++] = (int)s;
        if (s > max_streams) max_streams = (int)s;
        p = *end == ',' ? end + 1 : end;
    }
    if (!path || n_prompt < 1 || n_gen < 2 || runs < 1 || runs > MAX_RUNS) {
        log_error("bench: expected -m MODEL, -p >= 1, -n >= 2, 1 <= -r <= %d", MAX_RUNS);
        return 1;
    }
    eo.n_slots = max_streams;
    eo.max_queue = max_streams;
    if (eo.n_ctx < n_prompt + n_gen) eo.n_ctx = n_prompt + n_gen;
    CliModel cm;
    if (cli_open(&cm, path, &eo)) return 1;
    const Config *c = &cm.model->config;
    /* a synthetic prompt: ordinary tokens, fixed seed */
    int32_t *prompt = malloc((size_t)n_prompt * sizeof *prompt);
    uint64_t x = 42;
    for (int i = 0; i < n_prompt; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        int32_t t = (int32_t)((x >> 33) % (uint64_t)tokenizer_n_vocab(cm.tok));
        prompt[i] = tokenizer_token_type(cm.tok, t) == TOKEN_NORMAL ? t : 1000 + i % 1000; /* skip specials */
    }
    const Backend *be = engine_backend(cm.engine);
    double bytes_per_token = (double)be->weight_bytes;
    if (!c->tied_embeddings) bytes_per_token -= (double)cm.model->weights.token_embd.nbytes; /* a row per token */
    printf("model: %s (%s, dim %d, %d layers), weights %.1f MiB\n", path, c->arch->name, c->dim, c->n_layers,
           be->weight_bytes / 1048576.0);
    printf("backend: %s, %d threads\n", backend_name(be->kind), be->opt.n_threads);
    int rc = 0;
    for (int s = 0; s < n_streams && !rc; s++) {
        double pf[MAX_RUNS], dc[MAX_RUNS], tf[MAX_RUNS];
        for (int r = 0; r < runs && !rc; r++)
            rc = run_once(&cm, &sp, prompt, n_prompt, n_gen, streams[s], &pf[r], &dc[r], &tf[r]);
        if (rc) break;
        double p = median(pf, runs), d = median(dc, runs), t = median(tf, runs);
        printf("streams %3d: prefill %.1f tok/s (%d tokens) | decode %.1f tok/s (%d tokens each) | ttft %.0f ms",
               streams[s], p, n_prompt, d, n_gen, t);
        if (streams[s] == 1) {
            printf(" | weights read %.2f GB/s", d * bytes_per_token / 1e9);
            if (be->mem_bandwidth > 0)
                printf(" = %.1f%% of the bandwidth limit (%.0f GB/s measured: limit %.0f tok/s)",
                       100.0 * d * bytes_per_token / be->mem_bandwidth, be->mem_bandwidth / 1e9,
                       be->mem_bandwidth / bytes_per_token);
        }
        printf("  [median of %d]\n", runs);
    }
    /* kernel by kernel: a decode run at each stream count (1-token prompts: every step a decode step), then
     * the prefill of the whole prompt */
    for (int s = 0; s <= n_streams && !rc && be->profile; s++) {
        const int pre = s == n_streams, k = pre ? 1 : streams[s];
        if (be->profile((Backend *)be, 1, NULL, 0)) break;
        double p, d, t;
        rc = run_once(&cm, &sp, prompt, pre ? n_prompt : 1, pre ? 2 : n_gen, k, &p, &d, &t);
        char report[2048];
        if (!be->profile((Backend *)be, 0, report, sizeof report)) {
            if (pre) printf("profile of the %d-token prefill (and one decode step):\n", n_prompt);
            else printf("profile of decode, %d stream%s:\n", k, k > 1 ? "s" : "");
            printf("%s", report);
        }
    }
    free(prompt);
    cli_close(&cm);
    return rc ? 1 : 0;
}
