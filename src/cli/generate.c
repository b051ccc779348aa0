/*
 * `orcd generate -m MODEL (-p PROMPT | -f FILE) [--chat [--system S]] [-n N] [--stop STR]... [options]`:
 * stream a continuation of PROMPT to stdout as tokens are sampled, then a summary on stderr (prompt tokens
 * and tok/s, generated tokens and tok/s, time to first token). One request through the engine: the same
 * path the server takes.
 */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"
#include "common.h"

#include "../log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_STOP 16

typedef struct Run {
    int done, print_ids;
    EngineDone result;
    char error[512];
} Run;

static int on_token(void *user, const EngineToken *t) {
    if (((Run *)user)->print_ids) printf("%s%d", t->index ? " " : "", t->id);
    else fwrite(t->text, 1, t->len, stdout);
    fflush(stdout);
    return 0;
}

static void on_done(void *user, const EngineDone *d) {
    Run *r = user;
    if (!r->print_ids) fwrite(d->tail, 1, d->tail_len, stdout);
    fflush(stdout);
    r->result = *d;
    if (d->error) snprintf(r->error, sizeof r->error, "%s", d->error);
    r->done = 1;
}

static void usage(void) {
    fprintf(stderr,
            "usage: orcd generate -m MODEL (-p PROMPT | -f FILE | --ids IDS) [options]\n"
            "  -p PROMPT              the prompt (\"-\" reads stdin)\n"
            "  -f FILE                the prompt from a file\n"
            "  --ids \"ID ID ...\"      the prompt as token ids (no template)\n"
            "  --print-ids            print the generated token ids instead of text\n"
            "  --chat                 wrap the prompt as a user message in the model's chat template\n"
            "  --system TEXT          a system message (with --chat)\n"
            "  -n N                   tokens to generate at most (default 256)\n"
            "  --stop STR             stop before this text (repeatable, up to %d)\n"
            "  --ignore-eos           keep generating past end-of-generation tokens\n"
            "%s",
            MAX_STOP, CLI_OPTIONS_HELP);
}

int cmd_generate(int argc, char **argv) {
    const char *path = NULL, *prompt = NULL, *file = NULL, *ids_arg = NULL, *system = NULL, *stop[MAX_STOP];
    int n_stop = 0, max_tokens = 256;
    bool chat = false, seed_set = false, ignore_eos = false, print_ids = false;
    SamplerParams sp = sampler_defaults();
    sp.temperature = 0.8f, sp.top_k = 40, sp.top_p = 0.95f, sp.min_p = 0.05f;
    EngineOptions eo = engine_defaults();
    eo.n_slots = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int rc = cli_parse_option(argc, argv, &i, &sp, &seed_set, &eo);
        if (rc < 0) return 1;
        if (rc > 0) continue;
        if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && v) path = v, i++;
        else if ((!strcmp(a, "-p") || !strcmp(a, "--prompt")) && v) prompt = v, i++;
        else if (!strcmp(a, "-f") && v) file = v, i++;
        else if (!strcmp(a, "--ids") && v) ids_arg = v, i++;
        else if (!strcmp(a, "--print-ids")) print_ids = true;
        else if (!strcmp(a, "--system") && v) system = v, i++;
        else if (!strcmp(a, "--chat")) chat = true;
        else if (!strcmp(a, "--ignore-eos")) ignore_eos = true;
        else if (!strcmp(a, "--stop") && v && n_stop < MAX_STOP) stop[n_stop++] = v, i++;
        else if (!strcmp(a, "-n") && v) {
            char *end;
            long n = strtol(v, &end, 10);
            if (end == v || *end || n < 1 || n > 1 << 24) {
                log_error("-n: expected a number of tokens >= 1, found \"%s\"", v);
                return 1;
            }
            max_tokens = (int)n, i++;
        } else {
            usage();
            return 1;
        }
    }
    if (!path || (!!prompt + !!file + !!ids_arg) != 1) {
        log_error("generate: expected -m MODEL and one of -p PROMPT, -f FILE or --ids IDS");
        return 1;
    }
    char err[512];
    if (sampler_validate(&sp, err, sizeof err)) {
        log_error("generate: %s", err);
        return 1;
    }
    if (!seed_set) sp.seed = (uint64_t)time(NULL);

    size_t len = 0;
    char *text = NULL;
    int32_t *ids = NULL;
    int n_ids = 0, rc = 1;
    if (ids_arg) {
        if (cli_parse_ids(ids_arg, &ids, &n_ids)) return 1;
        len = 1;
    } else if (file || !strcmp(prompt, "-")) {
        if (!(text = cli_read_file(file ? file : "-", &len))) return 1;
    } else {
        len = strlen(prompt);
    }
    const char *ptext = text ? text : prompt;
    if (len == 0) {
        log_error("generate: the prompt is empty");
        free(text);
        return 1;
    }
    CliModel cm;
    if (cli_open(&cm, path, &eo)) {
        free(text);
        free(ids);
        return 1;
    }
    if (!ids && cli_encode(&cm, ptext, len, chat, system, &ids, &n_ids)) goto done;
    Run run = {.print_ids = print_ids};
    EngineRequest req = {.prompt = ids, .n_prompt = n_ids, .max_tokens = max_tokens, .sampling = sp,
                         .stop = stop, .n_stop = n_stop, .ignore_eog = ignore_eos, .on_token = on_token,
                         .on_done = on_done, .user = &run};
    uint64_t id;
    if (engine_submit(cm.engine, &req, &id, err, sizeof err) != ENGINE_OK) {
        log_error("generate: %s", err);
        goto done;
    }
    while (!run.done) engine_step(cm.engine);
    fputc('\n', stdout);
    const EngineDone *d = &run.result;
    if (d->reason == STOP_ERROR) {
        log_error("generate: %s", run.error);
        goto done;
    }
    double dec_tps = d->n_generated > 1 && d->decode_ms > 0 ? (d->n_generated - 1) / (d->decode_ms / 1e3) : 0;
    fprintf(stderr,
            "prompt: %d tokens, %.1f tok/s | generated: %d tokens, %.1f tok/s | first token %.0f ms | stop: %s | "
            "seed %llu\n",
            d->n_prompt, d->prefill_ms > 0 ? d->n_prompt / (d->prefill_ms / 1e3) : 0, d->n_generated, dec_tps,
            d->ttft_ms, stop_reason_name(d->reason), (unsigned long long)sp.seed);
    rc = 0;
done:
    free(ids);
    free(text);
    cli_close(&cm);
    return rc;
}
