// The CUDA PBS plan: stages 1-3 (3 for meanpool only) then the chosen selector, all enqueued on one
// stream with no host synchronisation (spec 6.3 steps 2-6). Intermediates the caller did not provide
// (scores, inv_perm, qbar, kbar) come from one stream-ordered scratch allocation, released with
// cudaFreeAsync on the same stream after the last stage is enqueued.
#include "cuda/pbs/launch_util.cuh"
#include "ops/pbs.h"

namespace sk::cuda {

Status pbs_plan(const PbsParams& p_in, GpuStream gpu_stream) {
  SK_RETURN_IF_ERROR(check_pbs_params(p_in, PbsStage::kPlan, /*for_cuda=*/true));
  const PbsDims d = pbs_dims(p_in);
  cudaStream_t stream = static_cast<cudaStream_t>(gpu_stream);
  PbsParams p = p_in;
  const bool meanpool = p.selector == PbsSelector::kMeanPool;
  const size_t bhp = static_cast<size_t>(p.batch) * d.perm_heads;
  const size_t n_scores = p.scores == nullptr ? bhp * d.permuted_len : 0;
  const size_t n_inv = p.inv_perm == nullptr ? bhp * p.seq_len : 0;
  const size_t n_qbar = meanpool && p.qbar == nullptr ? static_cast<size_t>(p.batch) * p.heads_q * d.num_blocks * p.head_dim : 0;
  const size_t n_kbar = meanpool && p.kbar == nullptr ? bhp * d.num_blocks * p.head_dim : 0;
  using S = pbs::StreamScratch;
  pbs::StreamScratch scratch(stream);
  SK_RETURN_IF_ERROR(scratch.alloc(S::round_up(n_scores * 4) + S::round_up(n_inv * 4) + S::round_up(n_qbar * 4) +
                                   S::round_up(n_kbar * 4)));
  if (p.scores == nullptr) p.scores = scratch.carve<float>(n_scores);
  if (p.inv_perm == nullptr) p.inv_perm = scratch.carve<int32_t>(n_inv);
  if (meanpool && p.qbar == nullptr) p.qbar = scratch.carve<float>(n_qbar);
  if (meanpool && p.kbar == nullptr) p.kbar = scratch.carve<float>(n_kbar);
  SK_RETURN_IF_ERROR(pbs_proxy_scores(p, gpu_stream));
  SK_RETURN_IF_ERROR(pbs_permute(p, gpu_stream));
  if (meanpool) SK_RETURN_IF_ERROR(pbs_pool_blocks(p, gpu_stream));
  return pbs_select(p, gpu_stream);
}

}  // namespace sk::cuda
