// Stage 2 launcher: sk::cuda::pbs_permute (kernel in permute_kernel.cuh).
#include "cuda/pbs/block_ops.cuh"
#include "cuda/pbs/launch_util.cuh"
#include "cuda/pbs/permute_kernel.cuh"
#include "ops/pbs.h"

namespace sk::cuda {

Status pbs_permute(const PbsParams& p, GpuStream gpu_stream) {
  SK_RETURN_IF_ERROR(check_pbs_params(p, PbsStage::kPermute, /*for_cuda=*/true));
  const PbsDims d = pbs_dims(p);
  cudaStream_t stream = static_cast<cudaStream_t>(gpu_stream);
  constexpr int kThreads = 256;
  pbs::PermuteArgs a{};
  a.scores = p.scores;
  a.perm = p.perm;
  a.inv_perm = p.inv_perm;
  a.N = p.seq_len;
  a.P = d.permuted_len;
  a.S = p.segment_size;
  a.num_segments = d.num_segments;
  a.npad = pbs::next_pow2(p.segment_size);
  const int smem = a.npad * static_cast<int>(sizeof(uint64_t));
  auto* kernel = pbs::permute_kernel<kThreads>;
  SK_RETURN_IF_ERROR(pbs::set_dynamic_smem(kernel, smem, "pbs permute"));
  const unsigned grid = static_cast<unsigned>(p.batch) * d.perm_heads * (d.num_segments + 1);
  kernel<<<grid, kThreads, smem, stream>>>(a);
  SK_CUDA_LAUNCH_CHECK("pbs permute");
  return Status::Ok();
}

}  // namespace sk::cuda
