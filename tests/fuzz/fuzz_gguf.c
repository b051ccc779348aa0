/*
 * libFuzzer target for the GGUF parser: parse arbitrary bytes, and when they parse, walk everything a
 * consumer would (every metadata value, string arrays, tensor lookups by name, the model config) so that
 * any read the parser's checks failed to bound is touched under ASan.
 */
#include "../../src/gguf.h"
#include "../../src/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[256];
    GGUFFile *f;
    if (gguf_parse(&f, data, size, err, sizeof err) != GGUF_OK) {
        if (!err[0]) abort(); /* every failure must say why */
        return 0;
    }
    volatile uint64_t sink = 0;
    char key[300];
    for (uint64_t i = 0; i < f->n_kv; i++) {
        const GGUFKV *kv = &f->kv[i];
        snprintf(key, sizeof key, "%.*s", (int)(kv->key.len < 256 ? kv->key.len : 256), kv->key.ptr);
        if (kv->key.len < 256 && gguf_find(f, key) != kv) abort(); /* keys are unique: lookup finds it */
        if (kv->type == GGUF_TYPE_ARRAY) {
            GGUFStrIter it = gguf_str_iter(&kv->arr);
            GGUFStr s;
            while (gguf_str_next(&it, &s)) sink += s.len ? (uint8_t)s.ptr[s.len - 1] : 0;
            for (uint64_t j = 0; j < kv->arr.n && j < 64; j++) {
                int64_t v;
                double d;
                if (gguf_arr_int(&kv->arr, j, &v) == GGUF_OK) sink += (uint64_t)v;
                if (gguf_arr_float(&kv->arr, j, &d) == GGUF_OK) sink += (uint64_t)(d != 0);
            }
        }
        int64_t v;
        double d;
        GGUFStr s;
        if (gguf_get_int(f, key, &v) == GGUF_OK) sink += (uint64_t)v;
        if (gguf_get_float(f, key, &d) == GGUF_OK) sink += (uint64_t)(d != 0);
        if (gguf_get_str(f, key, &s) == GGUF_OK && s.len) sink += (uint8_t)s.ptr[s.len - 1];
    }
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const GGUFTensor *t = &f->tensors[i];
        if (t->nbytes) sink += ((const uint8_t *)t->data)[0] + ((const uint8_t *)t->data)[t->nbytes - 1];
        char name[300];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        if (memchr(t->name.ptr, 0, t->name.len) == NULL && gguf_find_tensor(f, name) != t) abort();
    }
    Config c;
    if (model_config(&c, f, err, sizeof err) == 0) sink += (uint64_t)c.dim;
    gguf_close(f);
    (void)sink;
    return 0;
}
