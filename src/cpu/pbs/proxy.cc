// Stage 1 on the CPU: key-importance proxy s[b, hp, 0:P] (spec 6.3 step 2).
//
//   Qp    = mean of the R last query rows over the query heads of permutation head hp      [R, D]
//   x_rj  = scale * Qp_r . K_j  (j < P), -inf where proxy_causal and j > N - R + r
//   s_j   = (1/R) sum_r softmax_j(x_r)_j
// Scaling after the mean equals the spec's "mean of the scaled queries" (a linear map; fp32 rounding
// differs in the last bit). Two passes over key chunks keep memory at O(chunk) per thread, not O(R * P):
// pass 1 writes per-(row, chunk) softmax partials (max, sum), a combine gives each row's (M, 1/L), pass 2
// recomputes the logits and accumulates the column means. Each chunk sums its rows in order 0..R-1, so
// the result does not depend on the thread count.
#include <algorithm>
#include <cmath>
#include <limits>
#include <new>
#include <vector>

#include "core/thread_pool.h"
#include "cpu/pbs/common.h"
#include "ops/pbs.h"

namespace sk::cpu {

namespace {

using pbs_detail::load_row_f32;

constexpr int kChunk = 256;  // keys per task: K^T tile of 256 x D fp32 (128 KB at D = 128) stays in L2

struct ProxyCtx {
  const PbsParams& p;
  PbsDims d;
  int64_t nchunks;
  std::vector<float> qp;  // [batch * Hp, R, D]
};

constexpr int kRowTile = 64;  // proxy rows per logits tile: x [64, 256] fp32 = 64 KB per thread

// K^T tile [D, kc] of keys [j0, j0 + kc) of (b, hp): the micro-kernel streams it along keys.
void load_kt(const ProxyCtx& c, int64_t bh, int64_t j0, int kc, std::vector<float>& kt, std::vector<float>& krow) {
  const PbsParams& p = c.p;
  const int D = p.head_dim;
  const int64_t b = bh / c.d.perm_heads, hp = bh % c.d.perm_heads;
  const int64_t kbase = b * p.k_batch_stride + c.d.kv_head_of_perm_head(static_cast<int32_t>(hp)) * p.k_head_stride;
  for (int jj = 0; jj < kc; ++jj) {
    load_row_f32(p.k, p.dtype, kbase + (j0 + jj) * p.k_row_stride, D, krow.data());
    for (int dd = 0; dd < D; ++dd) kt[static_cast<size_t>(dd) * kc + jj] = krow[dd];
  }
}

// Logits of proxy rows [r0, r0 + rn) against that K^T tile into x [rn, kc].
void tile_logits(const ProxyCtx& c, int64_t bh, int64_t j0, int kc, int r0, int rn, const std::vector<float>& kt,
                 std::vector<float>& x) {
  const PbsParams& p = c.p;
  const int D = p.head_dim, R = c.d.proxy_rows, N = p.seq_len;
  pbs_detail::rows_times_kt(c.qp.data() + (bh * R + r0) * D, rn, D, kt.data(), kc, kc, x.data());
  for (int r = 0; r < rn; ++r) {
    float* row = x.data() + static_cast<size_t>(r) * kc;
    const int64_t last_key = static_cast<int64_t>(N - R + r0 + r);  // proxy_causal: keys <= query position
    for (int jj = 0; jj < kc; ++jj) {
      row[jj] *= c.d.scale;
      if (p.proxy_causal && j0 + jj > last_key) row[jj] = -std::numeric_limits<float>::infinity();
    }
  }
}

}  // namespace

Status pbs_proxy_scores(const PbsParams& p) {
  SK_RETURN_IF_ERROR(check_pbs_params(p, PbsStage::kProxy, /*for_cuda=*/false));
  const PbsDims d = pbs_dims(p);
  const int64_t P = d.permuted_len;
  if (P == 0) return Status::Ok();  // N < S: nothing is permuted
  const int D = p.head_dim, R = d.proxy_rows, N = p.seq_len;
  const int64_t BH = static_cast<int64_t>(p.batch) * d.perm_heads;
  try {
    ProxyCtx c{p, d, (P + kChunk - 1) / kChunk, {}};
    c.qp.resize(static_cast<size_t>(BH * R * D));

    // Qp: mean over the query heads that share permutation head hp (one head in perQueryHead mode).
    SK_RETURN_IF_ERROR(pbs_detail::parallel_for_alloc(BH * R, 8, "pbs proxy", [&](int64_t begin, int64_t end) {
      std::vector<float> tmp(D);
      for (int64_t x = begin; x < end; ++x) {
        const int64_t bh = x / R, r = x % R, b = bh / d.perm_heads, hp = bh % d.perm_heads;
        float* out = c.qp.data() + x * D;
        std::fill(out, out + D, 0.f);
        for (int g = 0; g < d.q_per_perm_head; ++g) {
          const int64_t hq = hp * d.q_per_perm_head + g;
          load_row_f32(p.q, p.dtype, b * p.q_batch_stride + hq * p.q_head_stride + (N - R + r) * p.q_row_stride, D,
                       tmp.data());
          for (int dd = 0; dd < D; ++dd) out[dd] += tmp[dd];
        }
        const float inv = 1.0f / static_cast<float>(d.q_per_perm_head);
        for (int dd = 0; dd < D; ++dd) out[dd] *= inv;
      }
    }));

    // Pass 1: softmax partials (max, sum of exp) per (bh, row, chunk).
    std::vector<float> part_m(static_cast<size_t>(BH * R * c.nchunks)), part_l(part_m.size());
    const int64_t tasks = BH * c.nchunks;
    SK_RETURN_IF_ERROR(pbs_detail::parallel_for_alloc(tasks, 1, "pbs proxy", [&](int64_t begin, int64_t end) {
      std::vector<float> kt(static_cast<size_t>(D) * kChunk), krow(D), x(static_cast<size_t>(kRowTile) * kChunk);
      for (int64_t t = begin; t < end; ++t) {
        const int64_t bh = t / c.nchunks, ch = t % c.nchunks, j0 = ch * kChunk;
        const int kc = static_cast<int>(std::min<int64_t>(kChunk, P - j0));
        load_kt(c, bh, j0, kc, kt, krow);
        for (int r0 = 0; r0 < R; r0 += kRowTile) {
          const int rn = std::min(kRowTile, R - r0);
          tile_logits(c, bh, j0, kc, r0, rn, kt, x);
          for (int r = 0; r < rn; ++r) {
            float* row = x.data() + static_cast<size_t>(r) * kc;
            float m = -std::numeric_limits<float>::infinity();
            for (int jj = 0; jj < kc; ++jj) m = std::max(m, row[jj]);
            float l = 0.f;
            if (m != -std::numeric_limits<float>::infinity()) {
              for (int jj = 0; jj < kc; ++jj) row[jj] -= m;
              pbs_detail::exp_f32(row, kc);
              l = pbs_detail::sum_f32(row, kc);
            }
            part_m[(bh * R + r0 + r) * c.nchunks + ch] = m;
            part_l[(bh * R + r0 + r) * c.nchunks + ch] = l;
          }
        }
      }
    }));

    // Combine: per row (M, 1/L) with L = sum_c l_c exp(m_c - M).
    std::vector<float> row_m(static_cast<size_t>(BH * R)), row_inv_l(row_m.size());
    for (int64_t x = 0; x < BH * R; ++x) {
      float m = -std::numeric_limits<float>::infinity();
      for (int64_t ch = 0; ch < c.nchunks; ++ch) m = std::max(m, part_m[x * c.nchunks + ch]);
      float l = 0.f;
      if (m != -std::numeric_limits<float>::infinity())
        for (int64_t ch = 0; ch < c.nchunks; ++ch) {
          const float mc = part_m[x * c.nchunks + ch];
          if (mc != -std::numeric_limits<float>::infinity()) l += part_l[x * c.nchunks + ch] * std::exp(mc - m);
        }
      row_m[x] = m;
      row_inv_l[x] = l > 0.f ? 1.0f / l : 0.f;  // a fully masked row (impossible: key 0 is causal) adds 0
    }

    // Pass 2: column means of the row softmaxes.
    SK_RETURN_IF_ERROR(pbs_detail::parallel_for_alloc(tasks, 1, "pbs proxy", [&](int64_t begin, int64_t end) {
      std::vector<float> kt(static_cast<size_t>(D) * kChunk), krow(D), x(static_cast<size_t>(kRowTile) * kChunk),
          col(kChunk);
      for (int64_t t = begin; t < end; ++t) {
        const int64_t bh = t / c.nchunks, ch = t % c.nchunks, j0 = ch * kChunk;
        const int kc = static_cast<int>(std::min<int64_t>(kChunk, P - j0));
        load_kt(c, bh, j0, kc, kt, krow);
        std::fill(col.begin(), col.end(), 0.f);
        for (int r0 = 0; r0 < R; r0 += kRowTile) {
          const int rn = std::min(kRowTile, R - r0);
          tile_logits(c, bh, j0, kc, r0, rn, kt, x);
          for (int r = 0; r < rn; ++r) {  // rows in order: the column sums do not depend on threading
            const float m = row_m[bh * R + r0 + r], il = row_inv_l[bh * R + r0 + r];
            if (il == 0.f) continue;
            float* row = x.data() + static_cast<size_t>(r) * kc;
            for (int jj = 0; jj < kc; ++jj) row[jj] -= m;
            pbs_detail::exp_f32(row, kc);
            pbs_detail::axpy_f32(il, row, col.data(), kc);
          }
        }
        float* s = p.scores + bh * P + j0;
        const float inv_r = 1.0f / static_cast<float>(R);
        for (int jj = 0; jj < kc; ++jj) s[jj] = col[jj] * inv_r;
      }
    }));
  } catch (const std::bad_alloc&) {
    return Status::Error(ErrorCode::kOutOfMemory, "pbs proxy scores: host allocation failed");
  }
  return Status::Ok();
}

}  // namespace sk::cpu
