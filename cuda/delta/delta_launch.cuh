// run_delta_step<TW, kStreams>: launch geometry, split-K workspace, shared-memory attribute, launch.
// Instantiated once per (weight dtype, stream tier) in inst/delta_step_*.cu; delta.cu picks the tier.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <string>

#include "cuda/common/check.cuh"
#include "cuda/delta/delta_kernel.cuh"

namespace sk::cuda::delta {

struct LaunchPlan {
  int32_t k_splits = 1, chunk = 0, m_tiles = 1, groups = 1;
  size_t smem = 0;
  size_t partial_bytes = 0;
};

// Chunks: aim for 2 CTAs per SM over the whole grid (two fit by shared memory and registers), within
// [kMinChunk, kMaxChunk] rows per chunk. More CTAs mean more bytes in flight but re-derive x/x_ref once
// more per M tile and add one more partial per output to sum.
template <class Tr>
LaunchPlan plan_launch(const DeltaStepParams& p, int num_sms) {
  LaunchPlan lp;
  const int64_t K = p.w.K;
  lp.m_tiles = std::max<int32_t>(1, (p.w.M + Tr::kTileM - 1) / Tr::kTileM);
  lp.groups = (p.num_rows + Tr::kStreams - 1) / Tr::kStreams;
  // Rounded down: one full wave (e.g. 16 M tiles x 16 chunks = 256 CTAs on 132 SMs), never a 2nd partial one.
  int64_t splits = p.k_splits > 0 ? p.k_splits
                                  : std::max<int64_t>(1, 2 * static_cast<int64_t>(num_sms) /
                                                             (static_cast<int64_t>(lp.m_tiles) * lp.groups));
  if (p.k_splits <= 0) splits = std::min<int64_t>(splits, std::max<int64_t>(1, K / Tr::kMinChunk));
  splits = std::max<int64_t>({splits, (K + Tr::kMaxChunk - 1) / Tr::kMaxChunk, 1});
  int64_t chunk = (K + splits - 1) / splits;
  chunk = (chunk + Tr::kChunkAlign - 1) / Tr::kChunkAlign * Tr::kChunkAlign;
  chunk = std::min<int64_t>(chunk, Tr::kMaxChunk);
  lp.chunk = static_cast<int32_t>(chunk);
  lp.k_splits = chunk == 0 ? 1 : static_cast<int32_t>((K + chunk - 1) / chunk);
  lp.smem = Tr::smem_bytes(lp.chunk);
  lp.partial_bytes = static_cast<size_t>(lp.groups) * lp.k_splits * Tr::kStreams * static_cast<size_t>(p.w.M) * sizeof(float);
  return lp;
}

// Raises the kernel's dynamic shared-memory limit to `bytes` once per device instead of on every step
// (it is a driver call on the host path of a step whose GPU time is ~10 us).
template <class Tr>
cudaError_t allow_max_smem(void (*kernel)(KernelArgs), size_t bytes) {
  static std::atomic<uint64_t> done{0};  // per instantiation; bit d: device d (devices >= 64: every time)
  int device = 0;
  const cudaError_t e = cudaGetDevice(&device);
  if (e != cudaSuccess) return e;
  const uint64_t bit = device < 64 ? (uint64_t{1} << device) : 0;
  if (bit != 0 && (done.load(std::memory_order_acquire) & bit)) return cudaSuccess;
  const cudaError_t r = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
  if (r == cudaSuccess) done.fetch_or(bit, std::memory_order_acq_rel);
  return r;
}

// With workspace_bytes non-null: only reports the workspace this launch would need.
template <typename TW, int kStreams>
Status run_delta_step(const DeltaStepParams& p, int num_sms, cudaStream_t stream, size_t* workspace_bytes) {
  using Tr = KernelTraits<TW, kStreams>;
  const LaunchPlan lp = plan_launch<Tr>(p, num_sms);
  if (workspace_bytes != nullptr) {
    *workspace_bytes = lp.partial_bytes;
    return Status::Ok();
  }
  if (p.workspace != nullptr && p.workspace_bytes < lp.partial_bytes) {
    return Status::Invalid("delta step: workspace of " + std::to_string(p.workspace_bytes) + " bytes, needs " +
                           std::to_string(lp.partial_bytes) + " (delta_workspace_bytes)");
  }
  // gridDim.y / gridDim.z: lib/delta refuses larger shapes first; this keeps a direct caller from an
  // opaque cudaErrorInvalidConfiguration.
  if (lp.m_tiles > 65535 || lp.groups > 65535) {
    return Status::Error(ErrorCode::kShape, "delta step: M = " + std::to_string(p.w.M) + " and " +
                                                std::to_string(p.num_rows) +
                                                " rows exceed the CUDA grid (at most 65535 * 256 outputs and " +
                                                "65535 * 16 rows per step)");
  }
  KernelArgs a;
  a.p = p;
  a.chunk = lp.chunk;
  a.k_splits = lp.k_splits;
  a.m_tiles = lp.m_tiles;
#ifdef SK_DELTA_PROFILE
  a.marks = g_delta_profile_marks;
#endif
  void* owned = nullptr;
  if (p.workspace != nullptr) {
    a.partials = static_cast<float*>(p.workspace);
  } else if (lp.partial_bytes > 0) {
    SK_CUDA_TRY(cudaMallocAsync(&owned, lp.partial_bytes, stream));
    a.partials = static_cast<float*>(owned);
  }
  auto kernel = delta_step_kernel<Tr>;
  Status st;
  const cudaError_t attr = allow_max_smem<Tr>(kernel, Tr::smem_bytes(Tr::kMaxChunk));
  if (attr != cudaSuccess) {
    st = cuda_status(attr, "cudaFuncSetAttribute(delta_step_kernel)");
  } else {
    kernel<<<dim3(lp.k_splits, lp.m_tiles, lp.groups), Tr::kThreads, lp.smem, stream>>>(a);
    st = launch_status("delta_step_kernel");
  }
  if (owned != nullptr) {
    const cudaError_t fr = cudaFreeAsync(owned, stream);  // stream-ordered: after the kernel
    if (st.ok() && fr != cudaSuccess) st = cuda_status(fr, "cudaFreeAsync(delta workspace)");
  }
  return st;
}

}  // namespace sk::cuda::delta
