/*
 * `orcd info MODEL.gguf [--meta]`: what a model file holds. Architecture and hyperparameters (in our
 * vocabulary, through model_config), the tokenizer summary, every tensor, totals by type. --meta adds
 * every metadata key. A file that does not load exits 1 with the loader's message.
 */
#include "cli.h"
#include "common.h"

#include "../chat.h"
#include "../backend/backend.h"
#include "../gguf.h"
#include "../log.h"
#include "../model.h"
#include "../quant.h"

#include <inttypes.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------------------- */
/* metadata values */

static void print_scalar(FILE *o, uint32_t type, const uint8_t *p) {
    GGUFArray one = {type, 1, p, 0};
    int64_t i;
    double d;
    if (type == GGUF_TYPE_BOOL) fprintf(o, "%s", p[0] ? "true" : "false");
    else if (type == GGUF_TYPE_FLOAT32 || type == GGUF_TYPE_FLOAT64) {
        gguf_arr_float(&one, 0, &d);
        fprintf(o, "%g", d);
    } else if (type == GGUF_TYPE_UINT64) {
        uint64_t u;
        memcpy(&u, p, 8);
        fprintf(o, "%" PRIu64, u);
    } else if (gguf_arr_int(&one, 0, &i) == GGUF_OK) fprintf(o, "%" PRId64, i);
}

/* A string for humans: at most `max` bytes, newlines and control bytes escaped. */
static void print_str(FILE *o, GGUFStr s, uint64_t max) {
    fputc('"', o);
    for (uint64_t i = 0; i < s.len && i < max; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if (c == '\n') fputs("\\n", o);
        else if (c == '"' || c == '\\') fprintf(o, "\\%c", c);
        else if (c < 0x20 || c == 0x7f) fprintf(o, "\\x%02x", c);
        else fputc(c, o);
    }
    fputc('"', o);
    if (s.len > max) fprintf(o, "... (%" PRIu64 " bytes)", s.len);
}

static void print_value(FILE *o, const GGUFKV *kv) {
    if (kv->type == GGUF_TYPE_STRING) {
        GGUFStr s;
        memcpy(&s.len, kv->data, 8);
        s.ptr = (const char *)kv->data + 8;
        print_str(o, s, 120);
    } else if (kv->type == GGUF_TYPE_ARRAY) {
        const GGUFArray *a = &kv->arr;
        fprintf(o, "[%s x %" PRIu64 "]", gguf_type_name(a->type), a->n);
        size_t sz = gguf_type_size(a->type);
        for (uint64_t i = 0; i < a->n && i < 4; i++) {
            fputc(' ', o);
            if (sz) print_scalar(o, a->type, a->data + i * sz);
        }
        if (a->type == GGUF_TYPE_STRING) {
            GGUFStrIter it = gguf_str_iter(a);
            GGUFStr s;
            for (int i = 0; i < 4 && gguf_str_next(&it, &s); i++) {
                print_str(o, s, 24);
                fputc(' ', o);
            }
        }
        if (a->n > 4) fputs(" ...", o);
    } else {
        print_scalar(o, kv->type, kv->data);
    }
}

/* ---------------------------------------------------------------------------------------------------- */
/* sections */

static void print_config(FILE *o, const Config *c) {
    fprintf(o, "architecture: %s (rope %s%s)\n", c->arch->name, c->arch->rope == ROPE_NEOX ? "neox" : "norm",
            c->arch->qkv_bias ? ", qkv bias" : "");
    fprintf(o, "  dim          %d\n", c->dim);
    fprintf(o, "  n_layers     %d\n", c->n_layers);
    fprintf(o, "  n_heads      %d\n", c->n_heads);
    fprintf(o, "  n_kv_heads   %d\n", c->n_kv_heads);
    fprintf(o, "  head_dim     %d\n", c->head_dim);
    fprintf(o, "  hidden_dim   %d\n", c->hidden_dim);
    fprintf(o, "  vocab_size   %d\n", c->vocab_size);
    fprintf(o, "  n_ctx        %d\n", c->n_ctx);
    fprintf(o, "  rope_theta   %g\n", c->rope_theta);
    fprintf(o, "  norm_eps     %g\n", c->norm_eps);
    fprintf(o, "  embeddings   %s\n", c->tied_embeddings ? "tied (LM head is token_embd)" : "untied");
}

static void print_special(FILE *o, const GGUFFile *f, const char *label, const char *key) {
    int64_t id;
    if (gguf_get_int(f, key, &id) == GGUF_OK) fprintf(o, " %s=%" PRId64, label, id);
}

static void print_tokenizer(FILE *o, const GGUFFile *f) {
    GGUFStr model = {"(none)", 6}, pre = {"(none)", 6}, tmpl = {NULL, 0};
    GGUFArray tokens = {0}, merges = {0};
    gguf_get_str(f, "tokenizer.ggml.model", &model);
    gguf_get_str(f, "tokenizer.ggml.pre", &pre);
    gguf_get_arr(f, "tokenizer.ggml.tokens", &tokens);
    gguf_get_arr(f, "tokenizer.ggml.merges", &merges);
    gguf_get_str(f, "tokenizer.chat_template", &tmpl);
    fprintf(o, "tokenizer: model %.*s, pre %.*s, %" PRIu64 " tokens, %" PRIu64 " merges\n", (int)model.len,
            model.ptr, (int)pre.len, pre.ptr, tokens.n, merges.n);
    fprintf(o, "  special ids:");
    print_special(o, f, "bos", "tokenizer.ggml.bos_token_id");
    print_special(o, f, "eos", "tokenizer.ggml.eos_token_id");
    print_special(o, f, "eot", "tokenizer.ggml.eot_token_id");
    print_special(o, f, "pad", "tokenizer.ggml.padding_token_id");
    print_special(o, f, "unk", "tokenizer.ggml.unknown_token_id");
    bool add_bos = false;
    gguf_get_bool(f, "tokenizer.ggml.add_bos_token", &add_bos);
    fprintf(o, " (add_bos %s)\n", add_bos ? "true" : "false");
    fprintf(o, "  chat template: %s\n", chat_family_name(chat_family(tmpl.ptr, tmpl.len)));
}

static void fmt_shape(char *buf, size_t n, const GGUFTensor *t) {
    size_t o = (size_t)snprintf(buf, n, "[");
    for (uint32_t d = 0; d < t->n_dims && o < n; d++)
        o += (size_t)snprintf(buf + o, n - o, "%s%" PRIu64, d ? ", " : "", t->ne[d]);
    if (o < n) snprintf(buf + o, n - o, "]");
}

static void print_tensors(FILE *o, const GGUFFile *f) {
    uint64_t count[QT_COUNT] = {0}, elems[QT_COUNT] = {0}, bytes[QT_COUNT] = {0};
    fprintf(o, "tensors: %" PRIu64 "\n  %-40s %-8s %-20s %12s\n", f->n_tensors, "name", "type", "shape", "bytes");
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const GGUFTensor *t = &f->tensors[i];
        char shape[128];
        fmt_shape(shape, sizeof shape, t);
        fprintf(o, "  %-40.*s %-8s %-20s %12" PRIu64 "\n", (int)(t->name.len > 64 ? 64 : t->name.len), t->name.ptr,
                quant_name(t->type), shape, t->nbytes);
        count[t->type]++;
        elems[t->type] += t->n_elems;
        bytes[t->type] += t->nbytes;
    }
    uint64_t tc = 0, te = 0, tb = 0;
    fprintf(o, "totals by type:\n  %-8s %8s %14s %14s %8s\n", "type", "tensors", "params", "bytes", "bits/w");
    for (int ty = 0; ty < QT_COUNT; ty++) {
        if (!count[ty]) continue;
        fprintf(o, "  %-8s %8" PRIu64 " %14" PRIu64 " %14" PRIu64 " %8.2f\n", quant_name((uint32_t)ty), count[ty],
                elems[ty], bytes[ty], 8.0 * (double)bytes[ty] / (double)elems[ty]);
        tc += count[ty], te += elems[ty], tb += bytes[ty];
    }
    fprintf(o, "  %-8s %8" PRIu64 " %14" PRIu64 " %14" PRIu64 " %8.2f\n", "total", tc, te, tb,
            te ? 8.0 * (double)tb / (double)te : 0.0);
}

/* ---------------------------------------------------------------------------------------------------- */

static double gib(size_t b) {
    return (double)b / (double)(1ull << 30);
}

static double mib(size_t b) {
    return (double)b / (double)(1 << 20);
}

/* --gpu: the device, then the model loaded on it with these options and the memory it holds (weights as
 * stored, the KV cache for --parallel x --ctx, scratch), as the CUDA backend accounts it. 1 when there is
 * no usable device or the model does not fit (the reason is printed). */
static int print_gpu(FILE *o, const char *path, const EngineOptions *eo) {
    DeviceInfo dev;
    char why[256];
    if (backend_select(eo->gpu_device, 0, &dev, why, sizeof why) != BACKEND_CUDA) {
        fprintf(o, "gpu: none: %s\n", why);
        return 1;
    }
    fprintf(o, "gpu: %s (compute %d.%d, device %d of %d), %.1f GiB free of %.1f GiB\n", dev.name, dev.cc_major,
            dev.cc_minor, eo->gpu_device, dev.n_devices, gib(dev.free_bytes), gib(dev.total_bytes));
    CliModel cm;
    if (cli_open(&cm, path, eo)) {
        fprintf(o, "memory: the model does not load on the GPU with --parallel %d --ctx %d (the log says why)\n",
                eo->n_slots, eo->n_ctx);
        return 1;
    }
    const Backend *b = engine_backend(cm.engine);
    int rc = 0;
    if (b->kind != BACKEND_CUDA) {
        fprintf(o, "memory: the engine fell back to the CPU (the log says why)\n");
        rc = 1;
    } else {
        const size_t total = b->weight_bytes + b->kv_bytes + b->scratch_bytes;
        fprintf(o, "memory on the GPU with --parallel %d --ctx %d: %.1f MiB (%zu bytes)\n", eo->n_slots, eo->n_ctx,
                mib(total), total);
        fprintf(o, "  weights   %10.1f MiB  (quantized as stored)\n", mib(b->weight_bytes));
        fprintf(o, "  KV cache  %10.1f MiB  (fp16, %d sequences x %d tokens)\n", mib(b->kv_bytes), eo->n_slots,
                eo->n_ctx);
        fprintf(o, "  scratch   %10.1f MiB  (activations, logits, the tensor-core inputs)\n", mib(b->scratch_bytes));
        fprintf(o, "  free before loading %.1f GiB; after, %.1f GiB left\n", gib(dev.free_bytes),
                gib(dev.free_bytes > total ? dev.free_bytes - total : 0));
    }
    cli_close(&cm);
    return rc;
}

#define INFO_USAGE "usage: orcd info [-m] MODEL.gguf [--meta] [--gpu [--gpu-device N] [--parallel N] [--ctx N]]\n"

int cmd_info(int argc, char **argv) {
    const char *path = NULL;
    bool meta = false, gpu = false;
    EngineOptions eo = engine_defaults();
    SamplerParams sp = sampler_defaults();
    bool seed_set = false;
    for (int i = 1; i < argc; i++) {
        int rc;
        if (!strcmp(argv[i], "--meta")) meta = true;
        else if (!strcmp(argv[i], "--gpu")) gpu = true;
        else if (!strcmp(argv[i], "--gpu-device") && i + 1 < argc) {
            char *end;
            long d = strtol(argv[++i], &end, 10);
            if (*end || end == argv[i] || d < 0 || d > 1024) {
                log_error("--gpu-device: expected 0..1024, found \"%s\"", argv[i]);
                return 1;
            }
            eo.gpu_device = (int)d;
        } else if ((!strcmp(argv[i], "-m") || !strcmp(argv[i], "--model")) && i + 1 < argc) path = argv[++i];
        else if (argv[i][0] != '-' && !path) path = argv[i];
        else if ((rc = cli_parse_option(argc, argv, &i, &sp, &seed_set, &eo)) < 0) return 1;
        else if (rc == 0) {
            fprintf(stderr, INFO_USAGE);
            return 1;
        }
    }
    if (!path) {
        fprintf(stderr, INFO_USAGE);
        return 1;
    }
    char err[512];
    GGUFFile *f;
    if (gguf_open(&f, path, err, sizeof err) != GGUF_OK) {
        log_error("%s: %s", path, err);
        return 1;
    }
    FILE *o = stdout;
    GGUFStr name = {"", 0};
    gguf_get_str(f, "general.name", &name);
    fprintf(o, "file: %s (%" PRIu64 " bytes)\n", path, f->size);
    fprintf(o, "gguf: version %u, %" PRIu64 " metadata keys, %" PRIu64 " tensors, alignment %u, data at %" PRIu64 "\n",
            f->version, f->n_kv, f->n_tensors, f->alignment, f->data_offset);
    fprintf(o, "name: %.*s\n", (int)(name.len > 200 ? 200 : name.len), name.ptr);
    Config c;
    int rc = 0;
    if (model_config(&c, f, err, sizeof err) == 0) print_config(o, &c);
    else {
        fprintf(o, "architecture: not runnable: %s\n", err);
        rc = 1;
    }
    print_tokenizer(o, f);
    if (meta) {
        fprintf(o, "metadata: %" PRIu64 "\n", f->n_kv);
        for (uint64_t i = 0; i < f->n_kv; i++) {
            const GGUFKV *kv = &f->kv[i];
            fprintf(o, "  %-45.*s %-8s ", (int)(kv->key.len > 80 ? 80 : kv->key.len), kv->key.ptr,
                    gguf_type_name(kv->type));
            print_value(o, kv);
            fputc('\n', o);
        }
    }
    print_tensors(o, f);
    if (rc) log_error("%s: %s", path, err);
    gguf_close(f);
    if (gpu && rc == 0) rc = print_gpu(o, path, &eo);
    return rc;
}
