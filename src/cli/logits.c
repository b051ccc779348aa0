/*
 * `orcd logits -m MODEL --ids "ID ID ..." [--top-k K] [--all] [--cpu] [--dump-logits F] [--dump-hidden F]`:
 * run one forward pass over the given token ids (one sequence, one batch) and print the top-k logits of
 * the last position (every position with --all) as "pos id:logit ...". --dump-logits writes the full
 * logits (n_positions, vocab_size) as raw little-endian float32, --dump-hidden the residual stream
 * (n_layers + 1, n, dim). --exact: the CPU backend's reference mode (fp32 activations against dequantized
 * weights). For comparisons with a reference implementation; not a generation tool.
 */
#include "cli.h"
#include "common.h"

#include "../backend/backend.h"
#include "../log.h"
#include "../model.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct Scored {
    int id;
    float logit;
} Scored;

static int cmp_scored(const void *a, const void *b) {
    const Scored *x = a, *y = b;
    return x->logit < y->logit ? 1 : x->logit > y->logit ? -1 : x->id - y->id;
}

static int dump(const char *path, const float *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, sizeof *data, n, f) != n) {
        if (f) fclose(f);
        return -1;
    }
    return fclose(f);
}

int cmd_logits(int argc, char **argv) {
    const char *path = NULL, *ids_arg = NULL, *dump_logits = NULL, *dump_hidden = NULL;
    int top_k = 10, all = 0, threads = 0, force_cpu = 0, exact = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && v) path = v, i++;
        else if (!strcmp(a, "--ids") && v) ids_arg = v, i++;
        else if (!strcmp(a, "--top-k") && v) top_k = atoi(v), i++;
        else if (!strcmp(a, "--threads") && v) threads = atoi(v), i++;
        else if (!strcmp(a, "--dump-logits") && v) dump_logits = v, i++;
        else if (!strcmp(a, "--dump-hidden") && v) dump_hidden = v, i++;
        else if (!strcmp(a, "--all")) all = 1;
        else if (!strcmp(a, "--cpu")) force_cpu = 1;
        else if (!strcmp(a, "--exact")) exact = 1, force_cpu = 1;
        else {
            fprintf(stderr, "usage: orcd logits -m MODEL --ids \"ID ID ...\" [--top-k K] [--all] [--cpu] [--exact] [--threads N] "
                            "[--dump-logits FILE] [--dump-hidden FILE]\n");
            return 1;
        }
    }
    if (!path || !ids_arg) {
        log_error("logits: -m MODEL and --ids are required");
        return 1;
    }
    int32_t *ids = NULL;
    int n = 0, rc = 1;
    if (cli_parse_ids(ids_arg, &ids, &n)) return 1;
    char err[512];
    Model *m = model_open(path, err, sizeof err);
    if (!m) {
        log_error("%s: %s", path, err);
        free(ids);
        return 1;
    }
    const Config *c = &m->config;
    const int page = 16, pages = (n + page - 1) / page;
    BackendOptions opt = {.n_threads = threads, .max_batch = n, .n_slots = 1, .n_pages = pages, .page_size = page,
                          .force_cpu = force_cpu, .exact = exact};
    Backend *b = backend_create(c, &m->weights, &opt, err, sizeof err);
    int32_t *pos = malloc((size_t)n * sizeof *pos), *seq = calloc((size_t)n, sizeof *seq),
            *table = malloc((size_t)pages * sizeof *table);
    uint8_t *want = malloc((size_t)n);
    size_t n_out = all ? (size_t)n : 1;
    float *logits = malloc(n_out * (size_t)c->vocab_size * sizeof *logits);
    float *hidden = dump_hidden ? malloc((size_t)(c->n_layers + 1) * n * c->dim * sizeof *hidden) : NULL;
    Scored *sc = malloc((size_t)c->vocab_size * sizeof *sc);
    if (!b || !pos || !seq || !table || !want || !logits || !sc || (dump_hidden && !hidden)) {
        log_error("logits: %s", b ? "out of memory" : err);
        goto done;
    }
    for (int i = 0; i < n; i++) pos[i] = i, want[i] = all || i == n - 1;
    for (int p = 0; p < pages; p++) table[p] = p;
    Batch batch = {n, ids, pos, seq, want, hidden};
    KVPages kv = {table, pages};
    if (b->forward(b, &batch, &kv, logits, err, sizeof err)) {
        log_error("logits: %s", err);
        goto done;
    }
    for (size_t r = 0; r < n_out; r++) {
        const float *lg = logits + r * c->vocab_size;
        for (int j = 0; j < c->vocab_size; j++) sc[j] = (Scored){j, lg[j]};
        qsort(sc, (size_t)c->vocab_size, sizeof *sc, cmp_scored);
        printf("%zu", all ? r : (size_t)n - 1);
        for (int j = 0; j < top_k && j < c->vocab_size; j++) printf(" %d:%.6f", sc[j].id, sc[j].logit);
        printf("\n");
    }
    if (dump_logits && dump(dump_logits, logits, n_out * c->vocab_size)) {
        log_error("logits: cannot write %s", dump_logits);
        goto done;
    }
    if (dump_hidden && dump(dump_hidden, hidden, (size_t)(c->n_layers + 1) * n * c->dim)) {
        log_error("logits: cannot write %s", dump_hidden);
        goto done;
    }
    rc = 0;
done:
    if (b) b->free(b);
    free(ids), free(pos), free(seq), free(table), free(want), free(logits), free(hidden), free(sc);
    model_close(m);
    return rc;
}
