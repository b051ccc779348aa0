/*
 * model: what a GGUF file's metadata says about the network. The architecture table (qwen2, llama, ...)
 * and the one function that maps GGUF keys to our hyperparameter vocabulary.
 *
 * Also the weights, bound by name with their expected shapes (pointers into the file's mapping; the
 * backends upload or use them as stored).
 *
 * Not here: computing with the weights (backends), tokenizer.
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

/* A weight as stored: `type` blocks, rows of ne[0] values, ne[1] rows. */
typedef struct Tensor {
    uint32_t type;       /* QuantType */
    int64_t ne[2];       /* (cols, rows): ne[0] fastest */
    const void *data;    /* in the file's mapping */
    uint64_t nbytes;
} Tensor;

typedef struct LayerWeights {
    Tensor attn_norm;    /* (dim,) F32 */
    Tensor wq, wk, wv;   /* (dim cols, n_heads*head_dim rows), (dim, n_kv_heads*head_dim) x2 */
    Tensor bq, bk, bv;   /* (n_heads*head_dim,), (n_kv_heads*head_dim,) x2 F32; only with arch->qkv_bias */
    Tensor wo;           /* (n_heads*head_dim cols, dim rows) */
    Tensor ffn_norm;     /* (dim,) F32 */
    Tensor w_gate, w_up; /* (dim cols, hidden_dim rows) */
    Tensor w_down;       /* (hidden_dim cols, dim rows) */
} LayerWeights;

typedef struct Weights {
    Tensor token_embd;   /* (dim cols, vocab_size rows): row t is token t's embedding */
    Tensor output_norm;  /* (dim,) F32 */
    Tensor output;       /* (dim cols, vocab_size rows): the LM head; token_embd when tied */
    LayerWeights *layers; /* (n_layers,) */
} Weights;

/* Bind every weight by name with its expected shape; norms and biases must be F32. Returns 0, or -1 with
 * "NAME: expected ..., found ..." in err. On success w->layers is allocated (model_weights_free). */
int model_weights(Weights *w, const Config *c, const GGUFFile *f, char *err, size_t errlen);
void model_weights_free(Weights *w);

/* An opened model: the mapped file, its Config and its bound weights. */
typedef struct Model {
    GGUFFile *file;
    Config config;
    Weights weights;
} Model;

/* Open, validate and bind the model at `path`. NULL with the reason in err (bad file, unsupported
 * architecture, missing or misshapen weights). */
Model *model_open(const char *path, char *err, size_t errlen);
void model_close(Model *m);

/* The architectures orcd runs; NULL-terminated by name == NULL. */
extern const ArchInfo ARCHS[];

/* Fill `c` from the file's metadata (and the shape of token_embd.weight). Returns 0, or -1 with a
 * message in err naming the key, what was expected and what was found. */
int model_config(Config *c, const GGUFFile *f, char *err, size_t errlen);

#endif
