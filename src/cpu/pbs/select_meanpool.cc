// Stage 4 on the CPU: the "meanpool" selector (spec 6.3 steps 5-6), one query-block row at a time so
// the [T, T] score matrix never exists:
//   A_ij = scale * qbar_i . kbar_j over the candidates j < seg(i) * S/B (all blocks of earlier segments)
//   p_i  = softmax over the candidates (fp32); a row without candidates selects nothing
// then select_and_emit (common.cc): minimal descending prefix with cumsum >= threshold, sink, own segment.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "cpu/pbs/common.h"
#include "ops/pbs.h"

namespace sk::cpu {

Status pbs_select_meanpool(const PbsParams& p) {
  SK_RETURN_IF_ERROR(check_pbs_params(p, PbsStage::kSelect, /*for_cuda=*/false));
  const PbsDims d = pbs_dims(p);
  const int64_t D = p.head_dim, T = d.num_blocks;
  const int64_t rows = static_cast<int64_t>(p.batch) * p.heads_q * T;
  SK_RETURN_IF_ERROR(pbs_detail::parallel_for_alloc(rows, 4, "pbs select", [&](int64_t begin, int64_t end) {
    pbs_detail::SelectScratch scratch;
    std::vector<float> prob(static_cast<size_t>(T));
    for (int64_t x = begin; x < end; ++x) {
      const int64_t bh = x / T, i = x % T, b = bh / p.heads_q, hq = bh % p.heads_q;
      const int64_t hp = d.perm_head_of_q_head(static_cast<int32_t>(hq));
      const int32_t ncand = static_cast<int32_t>((i / d.blocks_per_segment) * d.blocks_per_segment);
      const pbs_detail::SelectRow row =
          pbs_detail::make_select_row(p, d, static_cast<int32_t>(b), static_cast<int32_t>(hq), static_cast<int32_t>(i));
      // threshold 1 keeps every candidate whatever the scores: skip computing them.
      if (ncand > 0 && p.threshold < 1.f) {
        const float* qb = p.qbar + x * D;
        const float* kb = p.kbar + (b * d.perm_heads + hp) * T * D;
        float m = -std::numeric_limits<float>::infinity();
        for (int32_t j = 0; j < ncand; ++j) {
          prob[j] = pbs_detail::dot_f32(qb, kb + j * D, static_cast<int>(D)) * d.scale;
          m = std::max(m, prob[j]);
        }
        for (int32_t j = 0; j < ncand; ++j) prob[j] -= m;
        pbs_detail::exp_f32(prob.data(), ncand);
        const float inv = 1.0f / pbs_detail::sum_f32(prob.data(), ncand);
        for (int32_t j = 0; j < ncand; ++j) prob[j] *= inv;
      }
      pbs_detail::select_and_emit(prob.data(), ncand, row, scratch, p.full_idx + x * d.max_blocks, p.full_cnt + x,
                                  p.mask_idx + x * d.mask_max_blocks, p.mask_cnt + x);
    }
  }));
  pbs_detail::sum_kept_blocks(p, d);
  return Status::Ok();
}

}  // namespace sk::cpu
