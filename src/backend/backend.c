/*
 * backend: run-time choice between the CUDA and CPU backends.
 */
#include "backend.h"

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
