/*
 * ops: the reference operations of the forward pass, one token's row at a time, in fp32. The CPU
 * forward calls them; every CUDA kernel is tested against them.
 *
 * Not here: matrix products with stored weights (quant_vec_dot in quant.h), threading (the forward).
 */
#ifndef ORCD_OPS_H
#define ORCD_OPS_H

#include "../../model.h"

/* y = x / sqrt(mean(x^2) + eps) * w, over dim values (sum in double). y may be x. */
void op_rmsnorm(float *y, const float *x, const float *w, int dim, float eps);

/* inv_freq[i] = 1 / theta^(2i / rope_dim) for i < rope_dim / 2, in fp32 as Hugging Face computes it. */
void op_rope_freqs(float *inv_freq, int rope_dim, float theta);

/* Rotate n_heads heads of head_dim values at position pos, in place: the first rope_dim dimensions of
 * each head, pairs (i, i + rope_dim/2) for ROPE_NEOX, (2i, 2i+1) for ROPE_NORM. */
void op_rope(float *x, int n_heads, int head_dim, int rope_dim, int pos, const float *inv_freq, RopeStyle style);

/* In place: x = exp(x - max) / sum. */
void op_softmax(float *x, int n);

/* gate = silu(gate) * up, over n values. */
void op_swiglu(float *gate, const float *up, int n);

/* y += x over n values. */
void op_add(float *y, const float *x, int n);

#endif
