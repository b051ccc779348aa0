/*
 * model: what a GGUF file's metadata says about the network. The architecture table (qwen2, llama, ...)
 * and the one function that maps GGUF keys to our hyperparameter vocabulary.
 *
 * Not here: tensor data, backends, tokenizer (each reads what it needs from the GGUFFile itself).
 */
#ifndef ORCD_MODEL_H
#define ORCD_MODEL_H

#include "gguf.h"

#include <stdbool.h>
#include <stddef.h>

typedef enum RopeStyle {
    ROPE_NORM, /* rotate adjacent pairs (2i, 2i+1): llama-family GGUFs (the converter permuted Q/K) */
    ROPE_NEOX, /* rotate pairs (i, i + head_dim/2): qwen2, phi3, gpt-neox */
} RopeStyle;

typedef struct ArchInfo {
    const char *name; /* general.architecture */
    RopeStyle rope;
    bool qkv_bias;    /* biases on Q, K, V (qwen2) */
} ArchInfo;

typedef struct Config {
    const ArchInfo *arch;
    int dim;          /* embedding width */
    int hidden_dim;   /* FFN inner width */
    int n_layers;
    int n_heads;      /* query heads */
    int n_kv_heads;   /* key/value heads (GQA) */
    int head_dim;     /* per head; usually dim / n_heads */
    int rope_dim;     /* rotated dimensions per head (<= head_dim) */
    int vocab_size;   /* rows of token_embd */
    int n_ctx;        /* context the model was trained for */
    float rope_theta;
    float norm_eps;   /* RMSNorm epsilon */
    bool tied_embeddings; /* no output.weight: the LM head is token_embd */
} Config;

/* The architectures orcd runs; NULL-terminated by name == NULL. */
extern const ArchInfo ARCHS[];

/* Fill `c` from the file's metadata (and the shape of token_embd.weight). Returns 0, or -1 with a
 * message in err naming the key, what was expected and what was found. */
int model_config(Config *c, const GGUFFile *f, char *err, size_t errlen);

#endif
