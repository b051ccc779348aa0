/*
 * backend: which compute backend runs the model, chosen at run time. CUDA when the binary was built with
 * it and a device answers; otherwise the CPU, with the reason.
 *
 * Not here yet: the forward interface (upload, forward(batch), free), which the engine issue adds.
 */
#ifndef ORCD_BACKEND_H
#define ORCD_BACKEND_H

#include <stddef.h>

typedef enum BackendKind { BACKEND_CPU, BACKEND_CUDA } BackendKind;

typedef struct DeviceInfo {
    char name[256];    /* "NVIDIA H100 80GB HBM3" */
    int cc_major, cc_minor;
    size_t total_bytes, free_bytes;
    int n_devices;     /* visible CUDA devices */
} DeviceInfo;

/* Pick the backend for CUDA device `gpu_device` (or the CPU if force_cpu). For CUDA, `dev` is filled;
 * for the CPU, `why` says why not CUDA. */
BackendKind backend_select(int gpu_device, int force_cpu, DeviceInfo *dev, char *why, size_t whylen);

const char *backend_name(BackendKind k);

#endif
