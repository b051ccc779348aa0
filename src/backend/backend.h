/*
 * backend: the interface every compute backend implements, and the run-time choice between them (CUDA
 * when the binary was built with it and a device answers; otherwise the CPU, with the reason).
 *
 * A backend owns the weights in its memory, the KV store and its scratch. forward() takes a batch of
 * (sequence, token, position) entries: one token of one sequence is the special case, a whole prompt in
 * one call the common one. Keys and values live in fixed-size pages of the backend's KV store; which pages
 * belong to which sequence is the caller's (the engine's) business, passed in as a page table.
 *
 * Not here: choosing what to run (engine), sampling (sampler).
 */
#ifndef ORCD_BACKEND_H
#define ORCD_BACKEND_H

#include "../model.h"

#include <stddef.h>
#include <stdint.h>

typedef enum BackendKind { BACKEND_CPU, BACKEND_CUDA } BackendKind;

typedef struct DeviceInfo {
    char name[256]; /* "NVIDIA H100 80GB HBM3" */
    int cc_major, cc_minor;
    size_t total_bytes, free_bytes;
    int n_devices; /* visible CUDA devices */
} DeviceInfo;

/* One forward step. Entries of one sequence appear in position order, and an entry sees every earlier
 * position of its sequence: those already in the KV store and those earlier in this batch. */
typedef struct Batch {
    int n;                      /* entries, 1..max_batch */
    const int32_t *token;       /* (n,) token ids, 0..vocab_size-1 */
    const int32_t *pos;         /* (n,) position in the sequence, 0..max_ctx-1 */
    const int32_t *seq;         /* (n,) sequence slot, 0..n_slots-1 */
    const uint8_t *want_logits; /* (n,) nonzero: this entry's logits go out, in entry order */
    float *hidden;              /* optional (n_layers + 1, n, dim): the residual stream before layer 0 and
                                   after each layer, for comparisons with a reference; NULL normally */
} Batch;

/* The page table: slot s's position t lives in page table[s * pages_per_slot + t / page_size]. */
typedef struct KVPages {
    const int32_t *table; /* (n_slots, pages_per_slot) page ids, 0..n_pages-1 */
    int pages_per_slot;
} KVPages;

typedef struct BackendOptions {
    int n_threads;   /* CPU threads (0: all cores) */
    int max_batch;   /* entries per forward */
    int n_slots;     /* sequences at once */
    int n_pages;     /* pages in the KV store */
    int page_size;   /* tokens per page */
    int gpu_device;  /* CUDA device index */
    int force_cpu;
    int exact;       /* reference mode: fp32 activations against dequantized weights (no 8-bit activation
                        quantization); slower, for comparisons with a reference implementation */
} BackendOptions;

#define BACKEND_TOPK_MAX 256 /* the most candidates per row forward_topk sends */

typedef struct Backend Backend;
struct Backend {
    BackendKind kind;
    const Config *config;
    BackendOptions opt;
    /* Run one batch; logits (n_wanted, vocab_size) in entry order. 0, or -1 with a message in err. */
    int (*forward)(Backend *b, const Batch *batch, const KVPages *kv, float *logits, char *err, size_t errlen);
    /* Optional (NULL when the backend lacks it): forward, then the greedy choice made where the logits are,
     * so that only token ids cross to the host: for each entry that wants logits, in entry order, the
     * first index of the largest logit and its log-probability (softmax at temperature 1). */
    int (*forward_argmax)(Backend *b, const Batch *batch, const KVPages *kv, int32_t *ids, float *logprobs,
                          char *err, size_t errlen);
    /* Optional: forward, then for each entry that wants logits its k best (1 <= k <= BACKEND_TOPK_MAX; best first, equal
     * logits by smaller id) into vals and ids (n_wanted, k), so that only those cross to the host; the
     * logits stay with the backend until the next forward, for logits_row. */
    int (*forward_topk)(Backend *b, const Batch *batch, const KVPages *kv, int k, float *vals, int32_t *ids,
                        char *err, size_t errlen);
    /* With forward_topk: the whole row `row` (of the wanted entries, in order) of the last forward_topk's
     * logits into dst (vocab_size floats), for a sampler the candidates cannot serve. Safe to call from
     * several threads at once. */
    int (*logits_row)(Backend *b, int row, float *dst, char *err, size_t errlen);
    void (*free)(Backend *b);
    /* Optional: on = 1 starts a profile (steps run kernel by kernel, timed by group); on = 0 ends it and
     * writes a table of the time per step in each group to report. 0, or -1 when not available. */
    int (*profile)(Backend *b, int on, char *report, size_t len);
    size_t weight_bytes, kv_bytes, scratch_bytes; /* memory held, for reports */
    double mem_bandwidth; /* device memory bandwidth measured by a copy at creation, bytes/s (0: unknown) */
};

/* Create the backend for a model: CUDA when possible (unless force_cpu), else the CPU; logs which and why.
 * NULL with a message in err when the model cannot run (a weight type the backend lacks, too little
 * memory). The Backend keeps pointers to c and w (and, on the CPU, into the file's mapping). */
Backend *backend_create(const Config *c, const Weights *w, const BackendOptions *opt, char *err, size_t errlen);

/* The CPU backend itself (backend/cpu/). */
Backend *backend_cpu_create(const Config *c, const Weights *w, const BackendOptions *opt, char *err,
                            size_t errlen);

/* The CUDA backend (backend/cuda/; only in builds with CUDA): weights uploaded quantized as stored, the KV
 * store and all scratch in device memory. NULL with a message when the model does not fit (bytes needed
 * and free), a weight type lacks a kernel, or the driver fails. */
Backend *backend_cuda_create(const Config *c, const Weights *w, const BackendOptions *opt, char *err,
                             size_t errlen);

/* Every backend's forward starts here: 0 if the batch and page table are within the backend's options
 * (entries 1..max_batch, token ids, slots, positions, and every page an entry reads), else -1 with what was
 * expected and what was found in err. */
int backend_check_batch(const Backend *b, const Batch *batch, const KVPages *kv, char *err, size_t errlen);

/* Which backend a model would get: CUDA device `gpu_device`, or the CPU with `why`. */
BackendKind backend_select(int gpu_device, int force_cpu, DeviceInfo *dev, char *why, size_t whylen);

const char *backend_name(BackendKind k);

#endif
