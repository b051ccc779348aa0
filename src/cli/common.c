/*
 * cli/common: model opening, option parsing and prompt encoding shared by generate, chat and bench.
 */
#define _POSIX_C_SOURCE 200809L
#include "common.h"

#include "../log.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char CLI_OPTIONS_HELP[] =
    "  --temp T               temperature, 0..2 (0 = greedy; default 0.8)\n"
    "  --top-k K              keep the K most likely tokens (0 = off; default 40)\n"
    "  --top-p P              nucleus sampling, (0, 1] (default 0.95)\n"
    "  --min-p M              drop tokens below M x the most likely, 0..1 (default 0.05)\n"
    "  --repeat-penalty R     repetition penalty, (0, 10] (default 1.0 = off)\n"
    "  --frequency-penalty F  OpenAI frequency penalty, -2..2 (default 0)\n"
    "  --presence-penalty P   OpenAI presence penalty, -2..2 (default 0)\n"
    "  --repeat-last-n N      tokens the penalties look back over (-1 = all; default 64)\n"
    "  --seed S               random seed (default: from the clock)\n"
    "  --threads N            CPU threads (default: all cores)\n"
    "  --ctx N                tokens per sequence (default 4096)\n"
    "  --cpu                  use the CPU even when a GPU is present\n"
    "  --exact                CPU reference mode: fp32 activations (slow; for comparisons)\n";

int cli_open(CliModel *cm, const char *path, const EngineOptions *eo) {
    memset(cm, 0, sizeof *cm);
    char err[512];
    if (!(cm->model = model_open(path, err, sizeof err))) goto fail;
    if (tokenizer_load(&cm->tok, cm->model->file, err, sizeof err) != TOKENIZER_OK) goto fail;
    if (chat_template_load(&cm->tmpl, cm->model->file, err, sizeof err)) goto fail;
    if (!(cm->engine = engine_create(cm->model, cm->tok, eo, err, sizeof err))) goto fail;
    return 0;
fail:
    log_error("%s: %s", path, err);
    cli_close(cm);
    return -1;
}

void cli_close(CliModel *cm) {
    engine_free(cm->engine);
    if (cm->tok) chat_template_free(&cm->tmpl);
    tokenizer_free(cm->tok);
    model_close(cm->model);
    memset(cm, 0, sizeof *cm);
}

static int parse_float(const char *name, const char *v, float *out) {
    char *end;
    errno = 0;
    double d = v ? strtod(v, &end) : 0;
    if (!v || end == v || *end || errno || !isfinite(d)) {
        log_error("%s: expected a number, found \"%s\"", name, v ? v : "");
        return -1;
    }
    *out = (float)d;
    return 0;
}

static int parse_int(const char *name, const char *v, long long lo, long long hi, long long *out) {
    char *end;
    errno = 0;
    long long x = v ? strtoll(v, &end, 10) : 0;
    if (!v || end == v || *end || errno || x < lo || x > hi) {
        log_error("%s: expected an integer in %lld..%lld, found \"%s\"", name, lo, hi, v ? v : "");
        return -1;
    }
    *out = x;
    return 0;
}

int cli_parse_option(int argc, char **argv, int *i, SamplerParams *sp, bool *seed_set, EngineOptions *eo) {
    const char *a = argv[*i], *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    long long x;
    int rc = 1;
    if (!strcmp(a, "--cpu") || !strcmp(a, "--exact")) {
        eo->force_cpu = 1;
        eo->exact |= !strcmp(a, "--exact");
        return 1;
    }
    if (!strcmp(a, "--temp")) rc = parse_float(a, v, &sp->temperature);
    else if (!strcmp(a, "--top-p")) rc = parse_float(a, v, &sp->top_p);
    else if (!strcmp(a, "--min-p")) rc = parse_float(a, v, &sp->min_p);
    else if (!strcmp(a, "--repeat-penalty")) rc = parse_float(a, v, &sp->repetition_penalty);
    else if (!strcmp(a, "--frequency-penalty")) rc = parse_float(a, v, &sp->frequency_penalty);
    else if (!strcmp(a, "--presence-penalty")) rc = parse_float(a, v, &sp->presence_penalty);
    else if (!strcmp(a, "--top-k")) rc = parse_int(a, v, 0, 1 << 30, &x), sp->top_k = (int)x;
    else if (!strcmp(a, "--repeat-last-n")) rc = parse_int(a, v, -1, 1 << 30, &x), sp->penalty_last_n = (int)x;
    else if (!strcmp(a, "--seed")) rc = parse_int(a, v, 0, INT64_MAX, &x), sp->seed = (uint64_t)x, *seed_set = true;
    else if (!strcmp(a, "--threads")) rc = parse_int(a, v, 1, 1024, &x), eo->n_threads = (int)x;
    else if (!strcmp(a, "--ctx")) rc = parse_int(a, v, 2, 1 << 24, &x), eo->n_ctx = (int)x;
    else if (!strcmp(a, "--parallel")) rc = parse_int(a, v, 1, 4096, &x), eo->n_slots = (int)x;
    else if (!strcmp(a, "--batch")) rc = parse_int(a, v, 1, 1 << 16, &x), eo->max_batch = (int)x;
    else return 0;
    if (rc < 0) return -1;
    (*i)++;
    return 1;
}

int cli_encode(CliModel *cm, const char *text, size_t len, bool chat, const char *system, int32_t **ids, int *n) {
    char *rendered = NULL;
    size_t rlen = len;
    unsigned flags = TOKENIZE_ADD_BOS;
    if (chat) {
        ChatMessage msgs[2];
        size_t k = 0;
        if (system) msgs[k++] = (ChatMessage){CHAT_SYSTEM, system, strlen(system)};
        msgs[k++] = (ChatMessage){CHAT_USER, text, len};
        if (chat_render(&cm->tmpl, msgs, k, true, &rendered, &rlen)) {
            log_error("out of memory rendering the chat prompt");
            return -1;
        }
        text = rendered;
        flags = TOKENIZE_PARSE_SPECIAL | TOKENIZE_ADD_BOS; /* the template's markers are special tokens */
    }
    int64_t need = tokenizer_encode(cm->tok, text, rlen, flags, NULL, 0);
    *ids = need > 0 ? malloc((size_t)need * sizeof **ids) : NULL;
    if (need < 0 || (need > 0 && !*ids)) {
        log_error("out of memory encoding the prompt");
        free(rendered);
        return -1;
    }
    *n = (int)tokenizer_encode(cm->tok, text, rlen, flags, *ids, (size_t)need);
    free(rendered);
    return 0;
}

int cli_parse_ids(const char *s, int32_t **out, int *n) {
    int cap = 64;
    *out = malloc((size_t)cap * sizeof **out);
    *n = 0;
    while (*out && *s) {
        while (*s == ' ' || *s == ',' || *s == '\n' || *s == '\t') s++;
        if (!*s) break;
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (end == s || errno || v < 0 || v > INT32_MAX) {
            log_error("--ids: expected token ids separated by spaces, found \"%.20s\"", s);
            return -1;
        }
        if (*n == cap) {
            int32_t *p = realloc(*out, (size_t)(cap *= 2) * sizeof **out);
            if (!p) return log_error("--ids: out of memory"), -1;
            *out = p;
        }
        (*out)[(*n)++] = (int32_t)v;
        s = end;
    }
    if (!*out || *n == 0) return log_error("--ids: expected at least one token id"), -1;
    return 0;
}

char *cli_read_file(const char *path, size_t *len) {
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) {
        log_error("%s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) break;
        if (n == cap) {
            char *p = realloc(buf, cap *= 2);
            if (!p) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = p;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    if (f != stdin) fclose(f);
    if (!buf) log_error("%s: out of memory", path);
    *len = n;
    return buf;
}
