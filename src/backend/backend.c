/*
 * backend: run-time choice between the CUDA and CPU backends.
 */
#include "backend.h"

#include "../log.h"

#include <stdio.h>
#include <string.h>

#ifdef ORCD_CUDA
#include "cuda/cuda_device.h"
#endif

BackendKind backend_select(int gpu_device, int force_cpu, DeviceInfo *dev, char *why, size_t whylen) {
    memset(dev, 0, sizeof *dev);
    if (force_cpu) {
        snprintf(why, whylen, "CPU requested");
        return BACKEND_CPU;
    }
#ifdef ORCD_CUDA
    CudaDeviceInfo ci;
    if (cuda_device_probe(gpu_device, &ci, why, whylen) != 0) return BACKEND_CPU;
    snprintf(dev->name, sizeof dev->name, "%s", ci.name);
    dev->cc_major = ci.cc_major;
    dev->cc_minor = ci.cc_minor;
    dev->total_bytes = ci.total_bytes;
    dev->free_bytes = ci.free_bytes;
    dev->n_devices = ci.n_devices;
    return BACKEND_CUDA;
#else
    (void)gpu_device;
    snprintf(why, whylen, "built without CUDA (no nvcc at build time)");
    return BACKEND_CPU;
#endif
}

const char *backend_name(BackendKind k) {
    return k == BACKEND_CUDA ? "cuda" : "cpu";
}

Backend *backend_create(const Config *c, const Weights *w, const BackendOptions *opt, char *err, size_t errlen) {
    DeviceInfo dev;
    char why[256];
    BackendKind k = backend_select(opt->gpu_device, opt->force_cpu, &dev, why, sizeof why);
#ifdef ORCD_CUDA
    if (k == BACKEND_CUDA) {
        log_info("backend: cuda (%s, compute %d.%d, %.1f GiB free of %.1f GiB)", dev.name, dev.cc_major, dev.cc_minor,
                 (double)dev.free_bytes / (1 << 30), (double)dev.total_bytes / (1 << 30));
        Backend *b = backend_cuda_create(c, w, opt, err, errlen);
        if (b)
            log_info("cuda: resident: weights %.1f MiB, KV cache %.1f MiB, scratch %.1f MiB",
                     (double)b->weight_bytes / (1 << 20), (double)b->kv_bytes / (1 << 20),
                     (double)b->scratch_bytes / (1 << 20));
        return b;
    }
#endif
    (void)k;
    log_info("backend: cpu (%s)", why);
    return backend_cpu_create(c, w, opt, err, errlen);
}

int backend_check_batch(const Backend *be, const Batch *b, const KVPages *kv, char *err, size_t errlen) {
    const BackendOptions *o = &be->opt;
    if (b->n < 1 || b->n > o->max_batch)
        return snprintf(err, errlen, "batch of %d entries: expected 1..%d", b->n, o->max_batch), -1;
    for (int i = 0; i < b->n; i++) {
        if (b->token[i] < 0 || b->token[i] >= be->config->vocab_size)
            return snprintf(err, errlen, "token id %d: expected 0..%d", b->token[i], be->config->vocab_size - 1), -1;
        if (b->seq[i] < 0 || b->seq[i] >= o->n_slots)
            return snprintf(err, errlen, "sequence slot %d: expected 0..%d", b->seq[i], o->n_slots - 1), -1;
        if (b->pos[i] < 0 || b->pos[i] >= kv->pages_per_slot * o->page_size)
            return snprintf(err, errlen, "position %d: expected 0..%d", b->pos[i],
                            kv->pages_per_slot * o->page_size - 1), -1;
        for (int t = 0; t <= b->pos[i]; t += o->page_size) {
            int page = kv->table[(size_t)b->seq[i] * kv->pages_per_slot + t / o->page_size];
            if (page < 0 || page >= o->n_pages)
                return snprintf(err, errlen, "slot %d position %d: page %d not in 0..%d", b->seq[i], t, page,
                                o->n_pages - 1), -1;
        }
    }
    return 0;
}
