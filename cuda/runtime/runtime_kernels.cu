#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "core/dtype.h"
#include "cuda/common/check.cuh"
#include "cuda/runtime/runtime_kernels.h"

namespace sk::cuda {

namespace {

__global__ void probe_kernel(int* p) {
  if (p) *p = 1;
}

template <typename T>
__device__ __forceinline__ float load_as_float(const T* p, int64_t i);
template <>
__device__ __forceinline__ float load_as_float<float>(const float* p, int64_t i) { return p[i]; }
template <>
__device__ __forceinline__ float load_as_float<__half>(const __half* p, int64_t i) { return __half2float(p[i]); }
template <>
__device__ __forceinline__ float load_as_float<__nv_bfloat16>(const __nv_bfloat16* p, int64_t i) {
  return __bfloat162float(p[i]);
}

template <typename T>
__device__ __forceinline__ void store_from_float(T* p, int64_t i, float v);
template <>
__device__ __forceinline__ void store_from_float<float>(float* p, int64_t i, float v) { p[i] = v; }
template <>
__device__ __forceinline__ void store_from_float<__half>(__half* p, int64_t i, float v) { p[i] = __float2half_rn(v); }
template <>
__device__ __forceinline__ void store_from_float<__nv_bfloat16>(__nv_bfloat16* p, int64_t i, float v) {
  p[i] = __float2bfloat16_rn(v);
}

template <typename D, typename S>
__global__ void convert_kernel(D* dst, const S* src, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    store_from_float(dst, i, load_as_float(src, i));
  }
}

template <typename D, typename S>
Status launch_convert(void* dst, const void* src, int64_t n, cudaStream_t stream) {
  const int threads = 256;
  const int64_t blocks64 = (n + threads - 1) / threads;
  const int blocks = static_cast<int>(blocks64 < 65535 * 8 ? blocks64 : 65535 * 8);
  convert_kernel<D, S><<<blocks, threads, 0, stream>>>(static_cast<D*>(dst), static_cast<const S*>(src), n);
  SK_CUDA_LAUNCH_CHECK("convert_kernel");
  return Status::Ok();
}

template <typename S>
Status convert_from(void* dst, int dst_dtype, const void* src, int64_t n, cudaStream_t stream) {
  switch (static_cast<DType>(dst_dtype)) {
    case DType::kFloat32: return launch_convert<float, S>(dst, src, n, stream);
    case DType::kFloat16: return launch_convert<__half, S>(dst, src, n, stream);
    case DType::kBFloat16: return launch_convert<__nv_bfloat16, S>(dst, src, n, stream);
    default: return Status::Invalid("convert: destination must be float32, float16 or bfloat16");
  }
}

__global__ void fault_kernel() {
  volatile int* bad = reinterpret_cast<int*>(static_cast<uintptr_t>(0x10));
  *bad = 42;
}

// Wall-clock (%globaltimer, ns) rather than clock64(): SM cycles at the boost clock that
// cudaDevAttrClockRate reports made a spin last several times longer than asked on a GPU idling at a
// low clock, and the tests size their spins against the host's clock.
__device__ __forceinline__ unsigned long long global_timer_ns() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

__global__ void spin_kernel(unsigned long long ns) {
  const unsigned long long start = global_timer_ns();
  while (global_timer_ns() - start < ns) {
    __nanosleep(1000);
  }
}

}  // namespace

bool probe_kernel_image() {
  cudaFuncAttributes attr;
  const cudaError_t err = cudaFuncGetAttributes(&attr, probe_kernel);
  if (err != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return true;
}

Status convert_elements(void* dst, int dst_dtype, const void* src, int src_dtype, int64_t n, cudaStream_t stream) {
  if (n <= 0) return Status::Ok();
  switch (static_cast<DType>(src_dtype)) {
    case DType::kFloat32: return convert_from<float>(dst, dst_dtype, src, n, stream);
    case DType::kFloat16: return convert_from<__half>(dst, dst_dtype, src, n, stream);
    case DType::kBFloat16: return convert_from<__nv_bfloat16>(dst, dst_dtype, src, n, stream);
    default: return Status::Invalid("convert: source must be float32, float16 or bfloat16");
  }
}

Status launch_fault(cudaStream_t stream) {
  fault_kernel<<<1, 1, 0, stream>>>();
  SK_CUDA_LAUNCH_CHECK("fault_kernel");
  return Status::Ok();
}

Status launch_spin(cudaStream_t stream, double ms) {
  const auto ns = static_cast<unsigned long long>(ms > 0 ? ms * 1e6 : 0);
  spin_kernel<<<1, 1, 0, stream>>>(ns);
  SK_CUDA_LAUNCH_CHECK("spin_kernel");
  return Status::Ok();
}

}  // namespace sk::cuda
