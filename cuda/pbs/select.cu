// Stage 4/5 launchers: sk::cuda::pbs_select_meanpool, pbs_select_antidiagonal and the pbs_select
// dispatch (kernels in select_meanpool_kernel.cuh and select_antidiag_kernel.cuh).
#include <cuda_bf16.h>
#include <cuda_fp16.h>


#include "cuda/pbs/block_ops.cuh"
#include "cuda/pbs/launch_util.cuh"
#include "cuda/pbs/select_antidiag_kernel.cuh"
#include "cuda/pbs/select_meanpool_kernel.cuh"
#include "ops/pbs.h"

namespace sk::cuda {

namespace {

constexpr int kMeanpoolThreads = 256;

pbs::SelectArgs select_args(const PbsParams& p, const PbsDims& d) {
  pbs::SelectArgs a{};
  a.full_cnt = p.full_cnt;
  a.full_idx = p.full_idx;
  a.mask_cnt = p.mask_cnt;
  a.mask_idx = p.mask_idx;
  a.kept = p.kept_blocks;
  a.inv_perm = p.inv_perm;
  a.heads_q = p.heads_q;
  a.perm_heads = d.perm_heads;
  a.q_per_perm_head = d.q_per_perm_head;
  a.perm_per_kv_head = d.perm_per_kv_head;
  a.N = p.seq_len;
  a.T = d.num_blocks;
  a.block = p.block_size;
  a.blocks_per_segment = d.blocks_per_segment;
  a.max_blocks = d.max_blocks;
  a.mask_max_blocks = d.mask_max_blocks;
  a.D = p.head_dim;
  a.threshold = p.threshold;
  a.scale = d.scale;
  a.force_sink = p.force_sink;
  a.qbar = p.qbar;
  a.kbar = p.kbar;
  a.q = p.q;
  a.k = p.k;
  a.q_batch_stride = p.q_batch_stride;
  a.q_head_stride = p.q_head_stride;
  a.q_row_stride = p.q_row_stride;
  a.k_batch_stride = p.k_batch_stride;
  a.k_head_stride = p.k_head_stride;
  a.k_row_stride = p.k_row_stride;
  a.perm = p.perm;
  a.stride = p.antidiag_stride;
  a.log2_stride = p.antidiag_stride == 4 ? 2 : (p.antidiag_stride == 8 ? 3 : 4);
  return a;
}

// kept_blocks is accumulated with atomics by the row CTAs.
Status zero_kept(const PbsParams& p, cudaStream_t stream) {
  if (p.kept_blocks != nullptr)
    SK_CUDA_TRY(cudaMemsetAsync(p.kept_blocks, 0, sizeof(int32_t) * p.batch * p.heads_q, stream));
  return Status::Ok();
}

template <typename Elem, int kHeadDim>
Status run_antidiag(const pbs::SelectArgs& a, const dim3& grid, cudaStream_t stream) {
  auto* kernel = pbs::select_antidiag_kernel<Elem, kHeadDim>;
  // One pass (lse table in smem) when the device gives the block enough shared memory, else two passes.
  int dev = 0, optin = 0;
  SK_CUDA_TRY(cudaGetDevice(&dev));
  SK_CUDA_TRY(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  const bool one_pass = pbs::AntidiagTraits::smem_bytes(a.block, kHeadDim, a.T, true) <= optin;
  const int smem = pbs::AntidiagTraits::smem_bytes(a.block, kHeadDim, a.T, one_pass);
  SK_RETURN_IF_ERROR(pbs::set_dynamic_smem(kernel, smem, "pbs select antidiagonal"));
  kernel<<<grid, pbs::AntidiagTraits::kThreads, smem, stream>>>(a, one_pass);
  SK_CUDA_LAUNCH_CHECK("pbs select antidiagonal");
  return Status::Ok();
}

}  // namespace

Status pbs_select_meanpool(const PbsParams& p, GpuStream gpu_stream) {
  PbsParams q = p;
  q.selector = PbsSelector::kMeanPool;  // the buffers checked are meanpool's
  SK_RETURN_IF_ERROR(check_pbs_params(q, PbsStage::kSelect, /*for_cuda=*/true));
  const PbsDims d = pbs_dims(p);
  cudaStream_t stream = static_cast<cudaStream_t>(gpu_stream);
  SK_RETURN_IF_ERROR(zero_kept(p, stream));
  const pbs::SelectArgs a = select_args(p, d);
  const int smem = pbs::meanpool_smem_bytes(d.num_blocks, p.head_dim);
  auto* kernel = pbs::select_meanpool_kernel<kMeanpoolThreads, 32>;
  switch (pbs::select_per_thread<kMeanpoolThreads>(d.num_blocks)) {  // registers scale with T: pick per T
    case 1: kernel = pbs::select_meanpool_kernel<kMeanpoolThreads, 1>; break;
    case 4: kernel = pbs::select_meanpool_kernel<kMeanpoolThreads, 4>; break;
    case 16: kernel = pbs::select_meanpool_kernel<kMeanpoolThreads, 16>; break;
    default: break;
  }
  SK_RETURN_IF_ERROR(pbs::set_dynamic_smem(kernel, smem, "pbs select meanpool"));
  kernel<<<dim3(d.num_blocks, p.heads_q, p.batch), kMeanpoolThreads, smem, stream>>>(a);
  SK_CUDA_LAUNCH_CHECK("pbs select meanpool");
  return Status::Ok();
}

Status pbs_select_antidiagonal(const PbsParams& p, GpuStream gpu_stream) {
  PbsParams q = p;
  q.selector = PbsSelector::kAntidiagonal;
  SK_RETURN_IF_ERROR(check_pbs_params(q, PbsStage::kSelect, /*for_cuda=*/true));
  const PbsDims d = pbs_dims(p);
  cudaStream_t stream = static_cast<cudaStream_t>(gpu_stream);
  SK_RETURN_IF_ERROR(zero_kept(p, stream));
  const pbs::SelectArgs a = select_args(p, d);
  const dim3 grid(d.num_blocks, p.heads_q, p.batch);
  const bool bf16 = p.dtype == DType::kBFloat16;
  if (p.head_dim == 64)
    return bf16 ? run_antidiag<__nv_bfloat16, 64>(a, grid, stream) : run_antidiag<__half, 64>(a, grid, stream);
  return bf16 ? run_antidiag<__nv_bfloat16, 128>(a, grid, stream) : run_antidiag<__half, 128>(a, grid, stream);
}

Status pbs_select(const PbsParams& p, GpuStream stream) {
  return p.selector == PbsSelector::kAntidiagonal ? pbs_select_antidiagonal(p, stream) : pbs_select_meanpool(p, stream);
}

}  // namespace sk::cuda
