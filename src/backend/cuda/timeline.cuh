/*
 * cuda/timeline: where a graph-replayed decode step spends its time, kernel by kernel (a developer's build:
 * `make TIMELINE=1`; without it every hook below is empty).
 *
 * Nsight Compute times kernels one at a time, and the eager profile of `orcd bench` launches them one by one,
 * so neither shows what a kernel costs inside the graph, where programmatic dependent launch overlaps each
 * kernel's start with the previous one's end. Here thread 0 of every block records the global timer
 * (%globaltimer, ns) when the block starts (TL_KERNEL, the kernel's first statement), when its
 * griddepcontrol.wait returns (pdl_begin) and when it returns (TL_KERNEL's destructor), with the launch's
 * %gridid and the kernel's source line. ck_timeline_arm() empties the record before a step,
 * ck_timeline_dump() writes one line a launch after it (cuda.c: ORCD_TIMELINE=FILE). Costs about 10% of a
 * step.
 */
#ifndef ORCD_CUDA_TIMELINE_CUH
#define ORCD_CUDA_TIMELINE_CUH

#ifdef ORCD_TIMELINE

#include <stdio.h>
#include <stdlib.h>

struct TlRec {
    unsigned long long grid, t0, t1, t2; /* start, wait returned (0: never waited), return */
    unsigned long long m[4];             /* tl_mark's points (0: not reached) */
    unsigned line, block;
};

#define TL_CAP (1u << 20)
__device__ TlRec *tl_rec;
__device__ unsigned tl_n;
__device__ int tl_on; /* recording: from ck_timeline_arm to ck_timeline_dump */

__device__ __forceinline__ unsigned long long tl_now() {
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}

__device__ __forceinline__ bool tl_first_thread() {
    return threadIdx.x == 0 && threadIdx.y == 0 && threadIdx.z == 0;
}

/* the block's record (thread 0's) */
__device__ __forceinline__ unsigned &tl_slot() {
    __shared__ unsigned slot;
    return slot;
}

struct TlScope {
    __device__ explicit TlScope(unsigned line) {
        if (!tl_first_thread()) return;
        const unsigned i = *(volatile int *)&tl_on ? atomicAdd(&tl_n, 1u) : TL_CAP;
        tl_slot() = i;
        if (i >= TL_CAP) return;
        unsigned long long grid;
        asm volatile("mov.u64 %0, %%gridid;" : "=l"(grid));
        TlRec &r = tl_rec[i];
        r.grid = grid, r.line = line, r.t1 = 0, r.m[0] = r.m[1] = r.m[2] = r.m[3] = 0;
        r.block = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
        r.t0 = tl_now();
    }
    __device__ ~TlScope() {
        if (tl_first_thread() && tl_slot() < TL_CAP) tl_rec[tl_slot()].t2 = tl_now();
    }
};

#define TL_KERNEL() TlScope tl_scope_(__LINE__)

__device__ __forceinline__ void tl_waited() {
    if (tl_first_thread() && tl_slot() < TL_CAP) tl_rec[tl_slot()].t1 = tl_now();
}

/* a point k (0 to 3) inside a kernel, when thread 0 passes it */
__device__ __forceinline__ void tl_mark(int k) {
    if (tl_first_thread() && tl_slot() < TL_CAP) tl_rec[tl_slot()].m[k] = tl_now();
}

static int tl_cmp_u64(const void *a, const void *b) {
    const unsigned long long x = *(const unsigned long long *)a, y = *(const unsigned long long *)b;
    return x < y ? -1 : x > y;
}

/* one launch: its blocks' records summed up */
struct TlLaunch {
    unsigned long long grid, t0, t1_first, t1_last, t2_last, t0_last, m_last[4];
    unsigned line, blocks;
};

static int tl_cmp_launch(const void *a, const void *b) {
    return tl_cmp_u64(&((const TlLaunch *)a)->t0, &((const TlLaunch *)b)->t0);
}

extern "C" int ck_timeline_arm(cudaStream_t s) {
    static TlRec *buf;
    if (!buf) {
        if (cudaMalloc(&buf, TL_CAP * sizeof(TlRec)) != cudaSuccess) return -1;
        if (cudaMemcpyToSymbol(tl_rec, &buf, sizeof buf) != cudaSuccess) return -1;
    }
    static const unsigned zero = 0;
    static const int one = 1;
    return cudaMemcpyToSymbolAsync(tl_n, &zero, sizeof zero, 0, cudaMemcpyHostToDevice, s) == cudaSuccess &&
                   cudaMemcpyToSymbolAsync(tl_on, &one, sizeof one, 0, cudaMemcpyHostToDevice, s) == cudaSuccess
               ? 0
               : -1;
}

/* After the step has finished: a line a launch in start order. `cost` is the time from the previous launch's
 * last return to this one's (what the launch adds to the step); `wait` from the previous launch's last return
 * to this one's first returned wait. */
extern "C" int ck_timeline_dump(FILE *f) {
    unsigned n = 0;
    TlRec *buf = NULL;
    const int off = 0;
    if (cudaMemcpyToSymbol(tl_on, &off, sizeof off) != cudaSuccess ||
        cudaMemcpyFromSymbol(&n, tl_n, sizeof n) != cudaSuccess ||
        cudaMemcpyFromSymbol(&buf, tl_rec, sizeof buf) != cudaSuccess)
        return -1;
    if (n > TL_CAP) n = TL_CAP;
    TlRec *r = (TlRec *)malloc((size_t)n * sizeof *r + 1);
    TlLaunch *l = (TlLaunch *)malloc((size_t)n * sizeof *l + 1);
    if (!r || !l || cudaMemcpy(r, buf, (size_t)n * sizeof *r, cudaMemcpyDeviceToHost) != cudaSuccess) {
        free(r), free(l);
        return -1;
    }
    qsort(r, n, sizeof *r, tl_cmp_u64); /* by grid (the first field) */
    unsigned nl = 0;
    for (unsigned i = 0; i < n; i++) {
        if (!nl || l[nl - 1].grid != r[i].grid) {
            l[nl++] = TlLaunch{r[i].grid, r[i].t0, ~0ull, 0, r[i].t2, r[i].t0, {0, 0, 0, 0}, r[i].line, 0};
        }
        TlLaunch &c = l[nl - 1];
        c.blocks++;
        if (r[i].t0 < c.t0) c.t0 = r[i].t0;
        if (r[i].t0 > c.t0_last) c.t0_last = r[i].t0;
        for (int k = 0; k < 4; k++)
            if (r[i].m[k] > c.m_last[k]) c.m_last[k] = r[i].m[k];
        if (r[i].t2 > c.t2_last) c.t2_last = r[i].t2;
        if (r[i].t1 && r[i].t1 < c.t1_first) c.t1_first = r[i].t1;
        if (r[i].t1 > c.t1_last) c.t1_last = r[i].t1;
    }
    qsort(l, nl, sizeof *l, tl_cmp_launch);
    fprintf(f, "# kernels.cu line, blocks, start, first wait return, last wait return, last return (us from the "
               "step's first start), cost (us: from the previous launch's last return to this one's), last start, "
               "last block past tl_mark 0 to 3 (us; -1: none)\n");
    unsigned long long prev = nl ? l[0].t0 : 0;
    for (unsigned i = 0; i < nl; i++) {
        const double z = (double)l[0].t0;
        const TlLaunch &c = l[i];
        fprintf(f, "%5u %6u %9.2f %9.2f %9.2f %9.2f %7.2f %9.2f %9.2f %9.2f %9.2f %9.2f\n", c.line, c.blocks,
                (c.t0 - z) / 1e3,
                c.t1_first == ~0ull ? -1.0 : (c.t1_first - z) / 1e3, c.t1_last ? (c.t1_last - z) / 1e3 : -1.0,
                (c.t2_last - z) / 1e3, ((double)c.t2_last - (double)prev) / 1e3, (c.t0_last - z) / 1e3,
                c.m_last[0] ? (c.m_last[0] - z) / 1e3 : -1.0, c.m_last[1] ? (c.m_last[1] - z) / 1e3 : -1.0,
                c.m_last[2] ? (c.m_last[2] - z) / 1e3 : -1.0, c.m_last[3] ? (c.m_last[3] - z) / 1e3 : -1.0);
        if (c.t2_last > prev) prev = c.t2_last;
    }
    free(r), free(l);
    return 0;
}

#else
#define TL_KERNEL() ((void)0)
__device__ __forceinline__ void tl_waited() {}
__device__ __forceinline__ void tl_mark(int) {}
#endif

#endif
