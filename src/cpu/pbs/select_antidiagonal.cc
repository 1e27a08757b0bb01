// Stage 5 on the CPU: the "antidiagonal" selector (XAttention scoring on the permuted keys, PBS-Attn+;
// spec 3.4), emitting the same layout as meanpool.
//
// With stride X = antidiag_stride, query block i holds Mr = B/X reshaped rows m (query positions
// iB + mX .. iB + mX + X-1, natural order) and key block j holds Mr reshaped columns c (permuted key
// slots jB + cX .. jB + cX + X-1). A reshaped logit is one antidiagonal of the X x X sub-tile:
//   L[m, c] = scale / X * sum_{t<X} q[iB + mX + X-1-t] . k[perm[jB + cX + t]]
// Query positions >= N contribute zero; a reshaped row is valid when its first position is < N.
// Each valid row is soft-maxed over the candidate columns (blocks of earlier segments, as in meanpool),
// and block j's probability is its share of the mass: sum over valid rows and its columns / valid rows.
// Candidates are complete segments, so no key slot is padding. Then select_and_emit as meanpool.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "cpu/pbs/common.h"
#include "ops/pbs.h"

namespace sk::cpu {

namespace {

// Block masses of one query-block row into prob[0:ncand). ktx holds the permuted keys of (b, hp) as
// X transposed planes, ktx[t][d][c] = k[perm[cX + t]][d] (c < P/X), so that for each phase t the logits
// are one [Mr, D] x [D, ncols] micro-kernel product (rows_times_kt), accumulated over t.
void antidiagonal_row_mass(const PbsParams& p, const PbsDims& d, int64_t b, int64_t hq, int64_t i, int32_t ncand,
                           const float* ktx, std::vector<float>& qblk, std::vector<float>& at,
                           std::vector<float>& logits, std::vector<float>& tmp, float* prob) {
  const int D = p.head_dim, B = p.block_size, N = p.seq_len, X = p.antidiag_stride, Mr = B / X;
  const int64_t ldk = d.permuted_len / X;
  const int64_t qbase = b * p.q_batch_stride + hq * p.q_head_stride;
  for (int t = 0; t < B; ++t) {  // the query block in fp32, zero rows past N
    float* dst = qblk.data() + static_cast<size_t>(t) * D;
    if (i * B + t < N)
      pbs_detail::load_row_f32(p.q, p.dtype, qbase + (i * B + t) * p.q_row_stride, D, dst);
    else
      std::fill(dst, dst + D, 0.f);
  }
  const int ncols = ncand * Mr;
  for (int t = 0; t < X; ++t) {
    for (int m = 0; m < Mr; ++m)  // A_t: reshaped row m takes query position mX + X-1-t (reversed phase)
      std::copy_n(qblk.data() + static_cast<size_t>(m * X + X - 1 - t) * D, D, at.data() + static_cast<size_t>(m) * D);
    float* dst = t == 0 ? logits.data() : tmp.data();
    pbs_detail::rows_times_kt(at.data(), Mr, D, ktx + static_cast<int64_t>(t) * D * ldk, ldk, ncols, dst);
    if (t > 0)
      for (size_t x = 0; x < static_cast<size_t>(Mr) * ncols; ++x) logits[x] += tmp[x];
  }
  const float lscale = d.scale / static_cast<float>(X);
  std::fill(prob, prob + ncand, 0.f);
  int valid_rows = 0;
  for (int m = 0; m < Mr; ++m) {
    if (i * B + static_cast<int64_t>(m) * X >= N) break;  // this and later reshaped rows are padding
    ++valid_rows;
    float* row = logits.data() + static_cast<size_t>(m) * ncols;
    float mx = -std::numeric_limits<float>::infinity();
    for (int c = 0; c < ncols; ++c) mx = std::max(mx, row[c] *= lscale);
    for (int c = 0; c < ncols; ++c) row[c] -= mx;
    pbs_detail::exp_f32(row, ncols);
    const float inv = 1.0f / pbs_detail::sum_f32(row, ncols);
    for (int32_t j = 0; j < ncand; ++j) {
      float s = 0.f;
      for (int c = 0; c < Mr; ++c) s += row[j * Mr + c];
      prob[j] += s * inv;
    }
  }
  const float inv_rows = 1.0f / static_cast<float>(valid_rows);
  for (int32_t j = 0; j < ncand; ++j) prob[j] *= inv_rows;
}

}  // namespace

Status pbs_select_antidiagonal(const PbsParams& p) {
  SK_RETURN_IF_ERROR(check_pbs_params(p, PbsStage::kSelect, /*for_cuda=*/false));
  const PbsDims d = pbs_dims(p);
  SK_RETURN_IF_ERROR(pbs_detail::check_perm_values(p, d));
  const int D = p.head_dim, B = p.block_size;
  const int64_t T = d.num_blocks, P = d.permuted_len, N = p.seq_len;
  const bool score = p.threshold < 1.f && P > 0;  // threshold 1 keeps every candidate: no scores needed
  const int X = p.antidiag_stride;
  const int64_t ldk = P / X;
  std::vector<float> ktx;
  try {
    if (score) ktx.resize(static_cast<size_t>(P) * D);
  } catch (const std::bad_alloc&) {
    return Status::Error(ErrorCode::kOutOfMemory, "pbs antidiagonal: host allocation failed");
  }
  for (int64_t b = 0; b < p.batch; ++b) {
    for (int64_t hp = 0; hp < d.perm_heads; ++hp) {
      const int32_t* perm = p.perm + (b * d.perm_heads + hp) * N;
      if (score) {  // permuted keys of the candidate region [0, P) as X transposed planes, once per head
        const int64_t kbase = b * p.k_batch_stride + d.kv_head_of_perm_head(static_cast<int32_t>(hp)) * p.k_head_stride;
        SK_RETURN_IF_ERROR(pbs_detail::parallel_for_alloc(P, 64, "pbs antidiagonal", [&](int64_t begin, int64_t end) {
          std::vector<float> krow(D);
          for (int64_t s = begin; s < end; ++s) {
            // Checked above (check_perm_values); clamped again, as the CUDA kernels do, so no value reads outside K.
            const int64_t row = std::clamp<int32_t>(perm[s], 0, static_cast<int32_t>(N - 1));
            pbs_detail::load_row_f32(p.k, p.dtype, kbase + row * p.k_row_stride, D, krow.data());
            float* plane = ktx.data() + (s % X) * D * ldk + s / X;
            for (int dd = 0; dd < D; ++dd) plane[dd * ldk] = krow[dd];
          }
        }));
      }
      // Rows of the query heads that use this permutation head.
      const int64_t tasks = static_cast<int64_t>(d.q_per_perm_head) * T;
      SK_RETURN_IF_ERROR(pbs_detail::parallel_for_alloc(tasks, 1, "pbs antidiagonal", [&](int64_t begin, int64_t end) {
        pbs_detail::SelectScratch scratch;
        const int Mr = B / X;
        std::vector<float> qblk(static_cast<size_t>(B) * D), at(static_cast<size_t>(Mr) * D), logits, tmp,
            prob(static_cast<size_t>(T));
        for (int64_t x = begin; x < end; ++x) {
          const int64_t hq = hp * d.q_per_perm_head + x / T, i = x % T;
          const int32_t ncand = static_cast<int32_t>((i / d.blocks_per_segment) * d.blocks_per_segment);
          if (score && ncand > 0) {
            logits.resize(static_cast<size_t>(ncand) * Mr * Mr);
            tmp.resize(logits.size());
            antidiagonal_row_mass(p, d, b, hq, i, ncand, ktx.data(), qblk, at, logits, tmp, prob.data());
          }
          const pbs_detail::SelectRow row = pbs_detail::make_select_row(
              p, d, static_cast<int32_t>(b), static_cast<int32_t>(hq), static_cast<int32_t>(i));
          const int64_t r = (b * p.heads_q + hq) * T + i;
          pbs_detail::select_and_emit(prob.data(), ncand, row, scratch, p.full_idx + r * d.max_blocks, p.full_cnt + r,
                                      p.mask_idx + r * d.mask_max_blocks, p.mask_cnt + r);
        }
      }));
    }
  }
  pbs_detail::sum_kept_blocks(p, d);
  return Status::Ok();
}

}  // namespace sk::cpu
