/*
 * cuda_device: find and describe a CUDA device. C interface to cuda_device.cu.
 */
#ifndef ORCD_CUDA_DEVICE_H
#define ORCD_CUDA_DEVICE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct CudaDeviceInfo {
    char name[256];
    int cc_major, cc_minor;
    size_t total_bytes, free_bytes;
    int n_devices;
} CudaDeviceInfo;

/* 0 and `out` filled if device `device` exists and answers; -1 with the driver's reason otherwise (no
 * driver, no device, index out of range, compute capability below what this build targets). */
int cuda_device_probe(int device, CudaDeviceInfo *out, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
