// Stage 2 on the CPU: segmented key permutation (spec 6.3 step 3).
// Per (b, hp, segment g < P/S): order_g = stable argsort of -s[gS:(g+1)S] (ties keep the lower index,
// NaN sorts as -inf); perm[gS + j] = gS + order_g[j], inv_perm[perm[x]] = x. Positions [P, N) keep the
// identity. Sorting the unique (score, index) keys (common.h) is the stable order, and it is the order
// the CUDA bitonic sort produces, so both backends agree bit for bit on identical scores.
#include <algorithm>
#include <new>
#include <vector>

#include "core/thread_pool.h"
#include "cpu/pbs/common.h"
#include "ops/pbs.h"

namespace sk::cpu {

Status pbs_permute(const PbsParams& p) {
  SK_RETURN_IF_ERROR(check_pbs_params(p, PbsStage::kPermute, /*for_cuda=*/false));
  const PbsDims d = pbs_dims(p);
  const int64_t N = p.seq_len, S = p.segment_size, P = d.permuted_len;
  const int64_t BH = static_cast<int64_t>(p.batch) * d.perm_heads;
  const int64_t per_head = d.num_segments + 1;  // the last task of a head writes the identity tail
  return pbs_detail::parallel_for_alloc(BH * per_head, 1, "pbs permute", [&](int64_t begin, int64_t end) {
      std::vector<uint64_t> keys(static_cast<size_t>(S));
      for (int64_t t = begin; t < end; ++t) {
        const int64_t bh = t / per_head, g = t % per_head;
        int32_t* perm = p.perm + bh * N;
        int32_t* inv = p.inv_perm + bh * N;
        if (g == d.num_segments) {
          for (int64_t x = P; x < N; ++x) perm[x] = inv[x] = static_cast<int32_t>(x);
          continue;
        }
        const float* s = p.scores + bh * P + g * S;
        for (int64_t j = 0; j < S; ++j) keys[j] = pbs_detail::desc_key(s[j], static_cast<uint32_t>(j));
        std::sort(keys.begin(), keys.end());
        for (int64_t j = 0; j < S; ++j) {
          const int32_t src = static_cast<int32_t>(g * S + pbs_detail::desc_key_index(keys[j]));
          perm[g * S + j] = src;
          inv[src] = static_cast<int32_t>(g * S + j);
        }
      }
  });
}

}  // namespace sk::cpu
