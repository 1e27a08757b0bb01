// Small kernels the runtime itself needs (dtype conversion, the probe, test-only kernels).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "core/status.h"

namespace sk::cuda {

// True when this binary has code the current device can run (probes one kernel's attributes).
bool probe_kernel_image();

// dst[i] = convert(src[i]) for i < n between float32 / float16 / bfloat16 (sk::DType values).
Status convert_elements(void* dst, int dst_dtype, const void* src, int src_dtype, int64_t n, cudaStream_t stream);

// Test-only: a kernel that writes to an invalid address (a device fault), and one that spins ~ms.
Status launch_fault(cudaStream_t stream);
Status launch_spin(cudaStream_t stream, double ms);

}  // namespace sk::cuda
