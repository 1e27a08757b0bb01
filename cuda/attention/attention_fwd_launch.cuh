// Host-side launcher of the forward kernel for one tile configuration, and the per-(dtype, head dim)
// entry that picks the configuration from the layout block size. Included by the generated
// instantiation files (inst/) and by the standalone check (to sweep alternative configurations).
#pragma once
#include <cuda_runtime.h>

#include <string>

#include "cuda/attention/attention_fwd_api.cuh"
#include "cuda/attention/attention_fwd_kernel.cuh"
#include "cuda/attention/kernel_traits.cuh"
#include "cuda/common/check.cuh"

namespace sk::cuda::attn {

template <typename Tr>
Status launch_attention_fwd(const FwdParams& p, int max_smem_optin, cudaStream_t stream) {
  constexpr int kSmem = Tr::kSmemBytes;
  if (kSmem > max_smem_optin) {
    return Status::Invalid("attention (CUDA): head_dim " + std::to_string(Tr::kHeadDim) + " with block size " +
                           std::to_string(Tr::kBlockM) + " needs " + std::to_string(kSmem) +
                           " bytes of shared memory per block; this GPU allows " + std::to_string(max_smem_optin));
  }
  if (p.q_blocks > 65535) return Status::Invalid("attention (CUDA): more than 65535 query blocks");
  auto* kernel = &attention_fwd_kernel<Tr>;
  if (kSmem > 48 * 1024) {
    SK_CUDA_TRY(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem));
  }
  // Two ~100 KB CTAs per SM need the largest shared-memory carve-out; L1 only serves index reads here.
  SK_CUDA_TRY(cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout,
                                   static_cast<int>(cudaSharedmemCarveoutMaxShared)));
  const dim3 grid(static_cast<unsigned>(p.batch) * static_cast<unsigned>(p.heads_q), static_cast<unsigned>(p.q_blocks));
  kernel<<<grid, Tr::kThreads, kSmem, stream>>>(p);
  SK_CUDA_LAUNCH_CHECK("attention_fwd_kernel");
  return Status::Ok();
}

template <typename T, int kHeadDim>
Status run_attention_fwd(const FwdParams& p, int layout_block, int max_smem_optin, cudaStream_t stream) {
  switch (layout_block) {
    case 128: return launch_attention_fwd<DefaultFwdTraits<T, kHeadDim, 128>>(p, max_smem_optin, stream);
    case 64: return launch_attention_fwd<DefaultFwdTraits<T, kHeadDim, 64>>(p, max_smem_optin, stream);
    default: return Status::Invalid("attention (CUDA): layout block_size must be 64 or 128");
  }
}

}  // namespace sk::cuda::attn
