// Stage 3 launcher: sk::cuda::pbs_pool_blocks (kernel in pool_kernel.cuh).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "cuda/pbs/launch_util.cuh"
#include "cuda/pbs/pool_kernel.cuh"
#include "ops/pbs.h"

namespace sk::cuda {

Status pbs_pool_blocks(const PbsParams& p, GpuStream gpu_stream) {
  SK_RETURN_IF_ERROR(check_pbs_params(p, PbsStage::kPool, /*for_cuda=*/true));
  const PbsDims d = pbs_dims(p);
  cudaStream_t stream = static_cast<cudaStream_t>(gpu_stream);
  constexpr int kThreads = 128;
  pbs::PoolArgs a{};
  a.q = p.q;
  a.k = p.k;
  a.q_batch_stride = p.q_batch_stride;
  a.q_head_stride = p.q_head_stride;
  a.q_row_stride = p.q_row_stride;
  a.k_batch_stride = p.k_batch_stride;
  a.k_head_stride = p.k_head_stride;
  a.k_row_stride = p.k_row_stride;
  a.perm = p.perm;
  a.qbar = p.qbar;
  a.kbar = p.kbar;
  a.heads_q = p.heads_q;
  a.perm_heads = d.perm_heads;
  a.perm_per_kv_head = d.perm_per_kv_head;
  a.N = p.seq_len;
  a.T = d.num_blocks;
  a.block = p.block_size;
  a.D = p.head_dim;
  a.max_pool = p.pool == PbsPool::kMax;
  const int lanes = kThreads / (p.head_dim / 8);
  const size_t smem = static_cast<size_t>(lanes) * p.head_dim * sizeof(float);  // 4 KB
  const dim3 grid(d.num_blocks, p.heads_q + d.perm_heads, p.batch);
  if (p.dtype == DType::kBFloat16)
    pbs::pool_kernel<__nv_bfloat16, kThreads><<<grid, kThreads, smem, stream>>>(a);
  else
    pbs::pool_kernel<__half, kThreads><<<grid, kThreads, smem, stream>>>(a);
  SK_CUDA_LAUNCH_CHECK("pbs pool");
  return Status::Ok();
}

}  // namespace sk::cuda
