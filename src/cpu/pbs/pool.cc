// Stage 3 on the CPU: block pooling for the meanpool selector (spec 6.3 step 5).
//   qbar[b, hq, i] = pool of q rows [iB, min((i+1)B, N)) in natural order
//   kbar[b, hp, j] = pool of the permuted key slots of block j: rows perm[b, hp, t] of KV head kv(hp)
// over the valid rows only (mean divides by the real count; padding never enters), in fp32.
// Max pooling uses fmaxf, which ignores NaN like the CUDA kernel does.
#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/pbs/common.h"
#include "ops/pbs.h"

namespace sk::cpu {

namespace {

// out[D] = pool over the rows of one block; row_of(t) gives the element offset of block row t.
template <typename RowOffset>
void pool_block(const void* base, DType dt, int D, int rows, bool max_pool, RowOffset&& row_of, float* tmp,
                float* out) {
  for (int t = 0; t < rows; ++t) {
    pbs_detail::load_row_f32(base, dt, row_of(t), D, tmp);
    if (t == 0) {
      std::copy(tmp, tmp + D, out);
    } else if (max_pool) {
      for (int dd = 0; dd < D; ++dd) out[dd] = std::fmax(out[dd], tmp[dd]);
    } else {
      for (int dd = 0; dd < D; ++dd) out[dd] += tmp[dd];
    }
  }
  if (!max_pool) {
    const float inv = 1.0f / static_cast<float>(rows);
    for (int dd = 0; dd < D; ++dd) out[dd] *= inv;
  }
}

}  // namespace

Status pbs_pool_blocks(const PbsParams& p) {
  SK_RETURN_IF_ERROR(check_pbs_params(p, PbsStage::kPool, /*for_cuda=*/false));
  const PbsDims d = pbs_dims(p);
  SK_RETURN_IF_ERROR(pbs_detail::check_perm_values(p, d));
  const int D = p.head_dim, B = p.block_size, N = p.seq_len, T = d.num_blocks;
  const bool max_pool = p.pool == PbsPool::kMax;
  const int64_t q_rows = static_cast<int64_t>(p.batch) * p.heads_q * T;
  const int64_t k_rows = static_cast<int64_t>(p.batch) * d.perm_heads * T;
  return pbs_detail::parallel_for_alloc(q_rows + k_rows, 4, "pbs pool", [&](int64_t begin, int64_t end) {
    std::vector<float> tmp(D);
    for (int64_t x = begin; x < end; ++x) {
      const bool is_q = x < q_rows;
      const int64_t y = is_q ? x : x - q_rows;
      const int64_t bh = y / T, i = y % T;
      const int rows = static_cast<int>(std::min<int64_t>(B, N - i * B));
      if (is_q) {
        const int64_t b = bh / p.heads_q, h = bh % p.heads_q;
        const int64_t base = b * p.q_batch_stride + h * p.q_head_stride;
        pool_block(p.q, p.dtype, D, rows, max_pool, [&](int t) { return base + (i * B + t) * p.q_row_stride; },
                   tmp.data(), p.qbar + y * D);
      } else {
        const int64_t b = bh / d.perm_heads, hp = bh % d.perm_heads;
        const int64_t base = b * p.k_batch_stride + d.kv_head_of_perm_head(static_cast<int32_t>(hp)) * p.k_head_stride;
        const int32_t* perm = p.perm + bh * N;
        pool_block(p.k, p.dtype, D, rows, max_pool,
                   // Checked above (check_perm_values); clamped again so that no value can read outside K.
                   [&](int t) { return base + static_cast<int64_t>(std::clamp(perm[i * B + t], 0, N - 1)) * p.k_row_stride; },
                   tmp.data(),
                   p.kbar + y * D);
      }
    }
  });
}

}  // namespace sk::cpu
