/*
 * cuda_device: device discovery through the CUDA runtime (linked statically, so a machine without the
 * driver still runs the binary and lands on the CPU backend).
 */
#include "cuda_device.h"

#include <cuda_runtime.h>
#include <stdio.h>
#include <string.h>

extern "C" int cuda_device_probe(int device, CudaDeviceInfo *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        snprintf(err, errlen, "no usable CUDA device: %s", cudaGetErrorString(e));
        return -1;
    }
    if (device < 0 || device >= n) {
        snprintf(err, errlen, "CUDA device %d requested, found %d device(s)", device, n);
        return -1;
    }
    cudaDeviceProp p;
    if ((e = cudaGetDeviceProperties(&p, device)) != cudaSuccess || (e = cudaSetDevice(device)) != cudaSuccess ||
        (e = cudaMemGetInfo(&out->free_bytes, &out->total_bytes)) != cudaSuccess) {
        snprintf(err, errlen, "CUDA device %d: %s", device, cudaGetErrorString(e));
        return -1;
    }
    if (p.major < 8) {
        snprintf(err, errlen, "CUDA device %d (%s): compute capability %d.%d, expected 8.0 or newer", device,
                 p.name, p.major, p.minor);
        return -1;
    }
    snprintf(out->name, sizeof out->name, "%s", p.name);
    out->cc_major = p.major;
    out->cc_minor = p.minor;
    out->n_devices = n;
    return 0;
}
