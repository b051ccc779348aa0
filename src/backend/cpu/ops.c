/*
 * ops: the reference element-wise and row operations (fp32, accumulation in double where sums run long).
 */
#include "ops.h"

#include <math.h>

void op_rmsnorm(float *y, const float *x, const float *w, int dim, float eps) {
    double ss = 0;
    for (int i = 0; i < dim; i++) ss += (double)x[i] * x[i];
    float scale = (float)(1.0 / sqrt(ss / dim + eps));
    for (int i = 0; i < dim; i++) y[i] = x[i] * scale * w[i];
}

void op_rope_freqs(float *inv_freq, int rope_dim, float theta) {
    for (int i = 0; i < rope_dim / 2; i++) inv_freq[i] = 1.0f / powf(theta, (float)(2 * i) / (float)rope_dim);
}

void op_rope(float *x, int n_heads, int head_dim, int rope_dim, int pos, const float *inv_freq, RopeStyle style) {
    int half = rope_dim / 2;
    for (int i = 0; i < half; i++) {
        float angle = (float)pos * inv_freq[i];
        float c = cosf(angle), s = sinf(angle);
        for (int h = 0; h < n_heads; h++) {
            float *v = x + (size_t)h * head_dim;
            int a = style == ROPE_NEOX ? i : 2 * i, b = style == ROPE_NEOX ? i + half : 2 * i + 1;
            float x0 = v[a], x1 = v[b];
            v[a] = x0 * c - x1 * s;
            v[b] = x0 * s + x1 * c;
        }
    }
}

void op_softmax(float *x, int n) {
    float max = x[0];
    for (int i = 1; i < n; i++) max = x[i] > max ? x[i] : max;
    double sum = 0;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += x[i];
    }
    float inv = (float)(1.0 / sum);
    for (int i = 0; i < n; i++) x[i] *= inv;
}

void op_swiglu(float *gate, const float *up, int n) {
    for (int i = 0; i < n; i++) gate[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

void op_add(float *y, const float *x, int n) {
    for (int i = 0; i < n; i++) y[i] += x[i];
}
