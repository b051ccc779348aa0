/*
 * vec: the fp32 row loops of the CPU forward that are not matrix products: attention over a run of keys
 * (scores, softmax, weighted sum of values), SwiGLU and the greedy choice over a row of logits, in AVX2/FMA where the CPU has it and portable C
 * otherwise. Keys and values are rows `stride` floats apart (one page of the paged store); a head is hd
 * floats.
 */
#ifndef ORCD_VEC_H
#define ORCD_VEC_H

typedef struct VecKernels {
    /* sc[t] = dot(q, k + t * stride) * scale for t < n */
    void (*scores)(float *sc, const float *q, const float *k, int n, int stride, int hd, float scale);
    /* in place: x = exp(x - max) / sum over n >= 1 values */
    void (*softmax)(float *x, int n);
    /* out[d] += sum_t p[t] * v[t * stride + d] for t < n, d < hd */
    void (*accum)(float *out, const float *p, const float *v, int n, int stride, int hd);
    /* gate = silu(gate) * up = gate / (1 + exp(-gate)) * up over n values */
    void (*swiglu)(float *gate, const float *up, int n);
    /* the index a scalar loop `if (x[i] > x[best]) best = i` from best = 0 finds: the first of the largest
     * values (NaNs never win; a NaN at x[0] stays) */
    int (*argmax)(const float *x, int n);
    /* log(sum_i exp(x[i] - max)) over n >= 1 values, the sum in double (max: the largest x) */
    double (*log_sum_exp)(const float *x, int n, float max);
} VecKernels;

/* The AVX2 kernels when the CPU has AVX2 and FMA and portable is 0, the portable ones otherwise. */
VecKernels vec_kernels(int portable);

#endif
