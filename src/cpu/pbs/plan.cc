// The CPU PBS plan: stages 1-3 then the chosen selector, on host buffers (spec 6.3 steps 2-6).
// Intermediates the caller did not provide (scores, inv_perm, qbar, kbar) live in scratch vectors.
#include <new>
#include <vector>

#include "cpu/pbs/common.h"
#include "ops/pbs.h"

namespace sk::cpu {

Status pbs_select(const PbsParams& p) {
  return p.selector == PbsSelector::kAntidiagonal ? pbs_select_antidiagonal(p) : pbs_select_meanpool(p);
}

Status pbs_plan(const PbsParams& p_in) {
  SK_RETURN_IF_ERROR(check_pbs_params(p_in, PbsStage::kPlan, /*for_cuda=*/false));
  const PbsDims d = pbs_dims(p_in);
  PbsParams p = p_in;
  std::vector<float> scores, qbar, kbar;
  std::vector<int32_t> inv_perm;
  const bool meanpool = p.selector == PbsSelector::kMeanPool;
  try {
    const int64_t bhp = static_cast<int64_t>(p.batch) * d.perm_heads;
    if (p.scores == nullptr && d.permuted_len > 0) {
      scores.resize(static_cast<size_t>(bhp * d.permuted_len));
      p.scores = scores.data();
    }
    if (p.inv_perm == nullptr) {
      inv_perm.resize(static_cast<size_t>(bhp * p.seq_len));
      p.inv_perm = inv_perm.data();
    }
    if (meanpool && p.qbar == nullptr) {
      qbar.resize(static_cast<size_t>(static_cast<int64_t>(p.batch) * p.heads_q * d.num_blocks * p.head_dim));
      p.qbar = qbar.data();
    }
    if (meanpool && p.kbar == nullptr) {
      kbar.resize(static_cast<size_t>(bhp * d.num_blocks * p.head_dim));
      p.kbar = kbar.data();
    }
  } catch (const std::bad_alloc&) {
    return Status::Error(ErrorCode::kOutOfMemory, "pbs plan: host scratch allocation failed");
  }
  SK_RETURN_IF_ERROR(pbs_proxy_scores(p));
  SK_RETURN_IF_ERROR(pbs_permute(p));
  if (meanpool) SK_RETURN_IF_ERROR(pbs_pool_blocks(p));
  return pbs_select(p);
}

}  // namespace sk::cpu
