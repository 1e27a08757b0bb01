// Float64 reference of the PBS stages, random inputs and layout checks, shared by pbs_cpu_check.cc and
// pbs_check.cu. Written straight from specs/attention.md 6.3 with none of the kernels' tricks: no
// chunking, std::stable_sort on -score for the permutation, double everywhere.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "core/half.h"
#include "core/thread_pool.h"
#include "ops/pbs.h"

namespace pbsref {

// ---------------------------------------------------------------------------------------------------
// Inputs: contiguous q [B, Hq, N, D] and k [B, Hk, N, D] in the case's dtype (raw storage).
// Structured random: q = g + v_h, k = g + c_j v_h with a shared direction v_h per KV head, so a few
// heavy-hitter keys (and token 0, a sink) dominate the proxy and the pooled scores are not uniform.
struct Inputs {
  sk::DType dtype = sk::DType::kBFloat16;
  int B = 1, Hq = 1, Hk = 1, N = 1, D = 64;
  std::vector<uint8_t> q, k;
  size_t esize() const { return sk::dtype_size(dtype); }
  double qv(int b, int h, int n, int d) const { return at(q, ((int64_t(b) * Hq + h) * N + n) * D + d); }
  double kv(int b, int h, int n, int d) const { return at(k, ((int64_t(b) * Hk + h) * N + n) * D + d); }
  double at(const std::vector<uint8_t>& v, int64_t i) const {
    if (dtype == sk::DType::kFloat32) return reinterpret_cast<const float*>(v.data())[i];
    const uint16_t h = reinterpret_cast<const uint16_t*>(v.data())[i];
    return dtype == sk::DType::kBFloat16 ? sk::bf16_to_float(h) : sk::half_to_float(h);
  }
};

inline void store(std::vector<uint8_t>& v, sk::DType dt, int64_t i, float x) {
  if (dt == sk::DType::kFloat32) reinterpret_cast<float*>(v.data())[i] = x;
  else reinterpret_cast<uint16_t*>(v.data())[i] = dt == sk::DType::kBFloat16 ? sk::float_to_bf16(x) : sk::float_to_half(x);
}

inline Inputs make_inputs(sk::DType dt, int B, int Hq, int Hk, int N, int D, uint64_t seed, bool zero_keys = false) {
  Inputs in;
  in.dtype = dt; in.B = B; in.Hq = Hq; in.Hk = Hk; in.N = N; in.D = D;
  in.q.resize(size_t(B) * Hq * N * D * in.esize());
  in.k.resize(size_t(B) * Hk * N * D * in.esize());
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::uniform_real_distribution<float> ud(0.f, 1.f);
  const int G = Hq / Hk;
  for (int b = 0; b < B; ++b)
    for (int hk = 0; hk < Hk; ++hk) {
      std::vector<float> v(D);
      for (auto& x : v) x = nd(rng) * 0.35f;
      for (int n = 0; n < N; ++n) {
        float c = 0.1f * nd(rng);
        if (n == 0) c = 1.5f;                 // attention sink
        else if (ud(rng) < 0.02f) c = 0.9f;   // heavy hitters
        for (int d = 0; d < D; ++d)
          store(in.k, dt, ((int64_t(b) * Hk + hk) * N + n) * D + d, zero_keys ? 0.f : nd(rng) + c * v[d]);
      }
      for (int g = 0; g < G; ++g)
        for (int n = 0; n < N; ++n)
          for (int d = 0; d < D; ++d)
            store(in.q, dt, ((int64_t(b) * Hq + hk * G + g) * N + n) * D + d, nd(rng) + 2.0f * v[d]);
    }
  return in;
}

inline void bind_inputs(sk::PbsParams& p, const Inputs& in, const void* qptr, const void* kptr) {
  p.q = qptr; p.k = kptr; p.dtype = in.dtype;
  p.batch = in.B; p.heads_q = in.Hq; p.heads_k = in.Hk; p.seq_len = in.N; p.head_dim = in.D;
  p.q_row_stride = in.D; p.q_head_stride = int64_t(in.N) * in.D; p.q_batch_stride = int64_t(in.Hq) * in.N * in.D;
  p.k_row_stride = in.D; p.k_head_stride = int64_t(in.N) * in.D; p.k_batch_stride = int64_t(in.Hk) * in.N * in.D;
}

// ---------------------------------------------------------------------------------------------------
// Stage references.
inline std::vector<double> ref_proxy(const Inputs& in, const sk::PbsParams& p) {
  const sk::PbsDims d = sk::pbs_dims(p);
  const int P = d.permuted_len, R = d.proxy_rows, D = in.D, N = in.N, Hp = d.perm_heads;
  std::vector<double> s(size_t(in.B) * Hp * P, 0.0);
  sk::core::parallel_for(int64_t(in.B) * Hp, 1, [&](int64_t begin, int64_t end) {
    std::vector<double> qp(D), logit(P);
    for (int64_t bh = begin; bh < end; ++bh) {
      const int b = int(bh / Hp), hp = int(bh % Hp);
      for (int r = 0; r < R; ++r) {
        std::fill(qp.begin(), qp.end(), 0.0);
        for (int g = 0; g < d.q_per_perm_head; ++g)  // mean of the *scaled* query rows (spec wording)
          for (int x = 0; x < D; ++x) qp[x] += double(d.scale) * in.qv(b, hp * d.q_per_perm_head + g, N - R + r, x);
        for (auto& x : qp) x /= d.q_per_perm_head;
        const int hk = d.kv_head_of_perm_head(hp);
        double mx = -INFINITY;
        for (int j = 0; j < P; ++j) {
          double a = 0;
          for (int x = 0; x < D; ++x) a += qp[x] * in.kv(b, hk, j, x);
          if (p.proxy_causal && j > N - R + r) a = -INFINITY;
          logit[j] = a;
          mx = std::max(mx, a);
        }
        double sum = 0;
        for (int j = 0; j < P; ++j) sum += std::exp(logit[j] - mx);
        for (int j = 0; j < P; ++j) s[bh * P + j] += std::exp(logit[j] - mx) / sum / R;
      }
    }
  });
  return s;
}

// Stable argsort of -s per segment, NaN as -inf; tail identity.
inline void ref_permute(const float* scores, const sk::PbsParams& p, std::vector<int32_t>& perm,
                        std::vector<int32_t>& inv) {
  const sk::PbsDims d = sk::pbs_dims(p);
  const int N = p.seq_len, S = p.segment_size, P = d.permuted_len;
  const int64_t BH = int64_t(p.batch) * d.perm_heads;
  perm.assign(BH * N, 0);
  inv.assign(BH * N, 0);
  auto val = [](float x) { return std::isnan(x) ? -std::numeric_limits<float>::infinity() : x; };
  for (int64_t bh = 0; bh < BH; ++bh) {
    for (int x = 0; x < N; ++x) perm[bh * N + x] = x;
    for (int g = 0; g < P / S; ++g) {
      const float* s = scores + bh * P + int64_t(g) * S;
      std::vector<int> order(S);
      for (int j = 0; j < S; ++j) order[j] = j;
      std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return val(s[a]) > val(s[b]); });
      for (int j = 0; j < S; ++j) perm[bh * N + g * S + j] = g * S + order[j];
    }
    for (int x = 0; x < N; ++x) inv[bh * N + perm[bh * N + x]] = x;
  }
}

inline void ref_pool(const Inputs& in, const sk::PbsParams& p, const int32_t* perm, std::vector<double>& qbar,
                     std::vector<double>& kbar) {
  const sk::PbsDims d = sk::pbs_dims(p);
  const int T = d.num_blocks, Bk = p.block_size, D = in.D, N = in.N;
  qbar.assign(size_t(in.B) * in.Hq * T * D, 0.0);
  kbar.assign(size_t(in.B) * d.perm_heads * T * D, 0.0);
  const bool mx = p.pool == sk::PbsPool::kMax;
  auto pool = [&](double* out, int rows, auto&& val) {
    for (int x = 0; x < D; ++x) {
      double a = mx ? -INFINITY : 0.0;
      for (int t = 0; t < rows; ++t) a = mx ? std::max(a, val(t, x)) : a + val(t, x);
      out[x] = mx ? a : a / rows;
    }
  };
  for (int b = 0; b < in.B; ++b)
    for (int i = 0; i < T; ++i) {
      const int rows = std::min(Bk, N - i * Bk);
      for (int h = 0; h < in.Hq; ++h)
        pool(&qbar[((size_t(b) * in.Hq + h) * T + i) * D], rows, [&](int t, int x) { return in.qv(b, h, i * Bk + t, x); });
      for (int hp = 0; hp < d.perm_heads; ++hp) {
        const int32_t* pr = perm + (int64_t(b) * d.perm_heads + hp) * N;
        pool(&kbar[((size_t(b) * d.perm_heads + hp) * T + i) * D], rows,
             [&](int t, int x) { return in.kv(b, d.kv_head_of_perm_head(hp), pr[i * Bk + t], x); });
      }
    }
}

// One reference row of the selection: probabilities, descending order, cumsum, selected set and lists.
struct RefRow {
  int ncand = 0, take = 0, sink = -1;
  std::vector<double> prob;  // [ncand]
  std::vector<int> order;    // descending prob, ascending index
  std::vector<double> cum;   // cum[r] = sum of prob[order[0..r]]
  std::vector<char> sel;     // [ncand]
  std::vector<int> full, mask;
};

inline RefRow ref_select_row(const sk::PbsParams& p, int i, int sink_block, std::vector<double> prob) {
  const sk::PbsDims d = sk::pbs_dims(p);
  RefRow r;
  r.ncand = (i / d.blocks_per_segment) * d.blocks_per_segment;
  r.prob = std::move(prob);
  r.sel.assign(r.ncand, 0);
  r.order.resize(r.ncand);
  for (int j = 0; j < r.ncand; ++j) r.order[j] = j;
  auto val = [](double x) { return std::isnan(x) ? -INFINITY : x; };
  if (p.threshold < 1.f)
    std::stable_sort(r.order.begin(), r.order.end(), [&](int a, int b) { return val(r.prob[a]) > val(r.prob[b]); });
  r.cum.resize(r.ncand);
  double c = 0;
  r.take = r.ncand;
  for (int x = 0; x < r.ncand; ++x) {
    c += p.threshold < 1.f ? r.prob[r.order[x]] : 0.0;
    r.cum[x] = c;
    if (p.threshold < 1.f && r.take == r.ncand && c >= double(p.threshold)) r.take = x + 1;
  }
  for (int x = 0; x < r.take; ++x) r.sel[r.order[x]] = 1;
  if (p.force_sink && r.ncand > 0 && sink_block >= 0 && sink_block < r.ncand) {
    r.sink = sink_block;
    r.sel[sink_block] = 1;
  }
  const int pad = (p.seq_len % p.block_size) ? d.num_blocks - 1 : -1;
  for (int j = 0; j < r.ncand; ++j)
    if (r.sel[j] && j != pad) r.full.push_back(j);
  if (pad >= 0 && pad < r.ncand && r.sel[pad]) r.mask.push_back(pad);
  const int s0 = (i / d.blocks_per_segment) * d.blocks_per_segment;
  for (int j = s0; j < std::min(s0 + d.blocks_per_segment, d.num_blocks); ++j) r.mask.push_back(j);
  return r;
}

inline int ref_sink_block(const sk::PbsParams& p, const int32_t* inv_perm, int b, int hq) {
  const sk::PbsDims d = sk::pbs_dims(p);
  return inv_perm[(int64_t(b) * d.perm_heads + d.perm_head_of_q_head(hq)) * p.seq_len] / p.block_size;
}

// Meanpool rows from the implementation's own fp32 qbar/kbar (so stage 4 is tested on its exact input).
inline std::vector<RefRow> ref_select_meanpool(const sk::PbsParams& p, const float* qbar, const float* kbar,
                                               const int32_t* inv_perm) {
  const sk::PbsDims d = sk::pbs_dims(p);
  const int T = d.num_blocks, D = p.head_dim;
  std::vector<RefRow> rows(size_t(p.batch) * p.heads_q * T);
  sk::core::parallel_for(int64_t(rows.size()), 4, [&](int64_t begin, int64_t end) {
    for (int64_t x = begin; x < end; ++x) {
      const int i = int(x % T), bh = int(x / T), b = bh / p.heads_q, hq = bh % p.heads_q;
      const int ncand = (i / d.blocks_per_segment) * d.blocks_per_segment;
      std::vector<double> prob(ncand);
      double mx = -INFINITY;
      for (int j = 0; j < ncand; ++j) {
        double a = 0;
        const float* kb = kbar + ((int64_t(b) * d.perm_heads + d.perm_head_of_q_head(hq)) * T + j) * D;
        for (int y = 0; y < D; ++y) a += double(qbar[x * D + y]) * kb[y];
        prob[j] = a * d.scale;
        mx = std::max(mx, prob[j]);
      }
      double sum = 0;
      for (auto& v : prob) sum += (v = std::exp(v - mx));
      for (auto& v : prob) v /= sum;
      rows[x] = ref_select_row(p, i, ref_sink_block(p, inv_perm, b, hq), std::move(prob));
    }
  });
  return rows;
}

// Antidiagonal rows straight from the definition (spec 3.4 on permuted keys, see select_antidiagonal.cc).
inline std::vector<RefRow> ref_select_antidiagonal(const Inputs& in, const sk::PbsParams& p, const int32_t* perm,
                                                   const int32_t* inv_perm) {
  const sk::PbsDims d = sk::pbs_dims(p);
  const int T = d.num_blocks, D = in.D, N = in.N, Bk = p.block_size, X = p.antidiag_stride, Mr = Bk / X;
  std::vector<RefRow> rows(size_t(p.batch) * p.heads_q * T);
  sk::core::parallel_for(int64_t(rows.size()), 1, [&](int64_t begin, int64_t end) {
    for (int64_t x = begin; x < end; ++x) {
      const int i = int(x % T), bh = int(x / T), b = bh / p.heads_q, hq = bh % p.heads_q;
      const int hp = d.perm_head_of_q_head(hq), hk = d.kv_head_of_perm_head(hp);
      const int32_t* pr = perm + (int64_t(b) * d.perm_heads + hp) * N;
      const int ncand = (i / d.blocks_per_segment) * d.blocks_per_segment;
      std::vector<double> prob(ncand, 0.0), logit(size_t(ncand) * Mr);
      int valid = 0;
      for (int m = 0; m < Mr && i * Bk + m * X < N; ++m, ++valid) {
        double mx = -INFINITY;
        for (int c = 0; c < ncand * Mr; ++c) {
          double a = 0;
          for (int t = 0; t < X; ++t) {
            const int qpos = i * Bk + m * X + X - 1 - t;
            if (qpos >= N) continue;
            for (int y = 0; y < D; ++y) a += in.qv(b, hq, qpos, y) * in.kv(b, hk, pr[c * X + t], y);
          }
          logit[c] = a * d.scale / X;
          mx = std::max(mx, logit[c]);
        }
        double sum = 0;
        for (int c = 0; c < ncand * Mr; ++c) sum += std::exp(logit[c] - mx);
        for (int c = 0; c < ncand * Mr; ++c) prob[c / Mr] += std::exp(logit[c] - mx) / sum;
      }
      for (auto& v : prob) v /= valid;
      rows[x] = ref_select_row(p, i, ref_sink_block(p, inv_perm, b, hq), std::move(prob));
    }
  });
  return rows;
}

// ---------------------------------------------------------------------------------------------------
// Comparisons.
template <typename A, typename B>
double rel_fro(const A& a, const B& b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) {
    const double x = double(a[i]), y = double(b[i]);
    num += (x - y) * (x - y);
    den += y * y;
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

// Host copy of an emitted layout.
struct HostLayout {
  int B = 0, H = 0, T = 0, max_blocks = 0, mask_max = 0;
  std::vector<int32_t> full_cnt, full_idx, mask_cnt, mask_idx, kept;
  void alloc(const sk::PbsParams& p) {
    const sk::PbsDims d = sk::pbs_dims(p);
    B = p.batch; H = p.heads_q; T = d.num_blocks; max_blocks = d.max_blocks; mask_max = d.mask_max_blocks;
    const size_t rows = size_t(B) * H * T;
    // Poison: a count or index left unwritten is out of range and fails the invariants.
    full_cnt.assign(rows, -7); mask_cnt.assign(rows, -7);
    full_idx.assign(rows * max_blocks, -7); mask_idx.assign(rows * mask_max, -7);
    kept.assign(size_t(B) * H, -7);
  }
  void bind(sk::PbsParams& p) {
    p.full_cnt = full_cnt.data(); p.full_idx = full_idx.data();
    p.mask_cnt = mask_cnt.data(); p.mask_idx = mask_idx.data(); p.kept_blocks = kept.data();
  }
  std::vector<int> full(size_t r) const { return {&full_idx[r * max_blocks], &full_idx[r * max_blocks] + full_cnt[r]}; }
  std::vector<int> mask(size_t r) const { return {&mask_idx[r * mask_max], &mask_idx[r * mask_max] + mask_cnt[r]}; }
};

// BlockLayoutView invariants; `all_causal` additionally demands full+mask == every causal candidate.
// Returns the number of violations (prints the first few).
inline int check_invariants(const HostLayout& L, const sk::PbsParams& p, const int32_t* inv_perm, bool all_causal,
                            const char* tag) {
  const sk::PbsDims d = sk::pbs_dims(p);
  const int bps = d.blocks_per_segment, T = L.T;
  const int pad = (p.seq_len % p.block_size) ? T - 1 : -1;
  int bad = 0;
  auto fail = [&](size_t r, const std::string& what) {
    if (++bad <= 5) std::printf("    [%s] row %zu (b,h,i)=(%zu,%zu,%zu): %s\n", tag, r, r / T / L.H, r / T % L.H, r % T, what.c_str());
  };
  for (size_t r = 0; r < size_t(L.B) * L.H * T; ++r) {
    const int i = int(r % T), si = i / bps;
    if (L.full_cnt[r] < 0 || L.full_cnt[r] > L.max_blocks) { fail(r, "full_cnt out of [0, max_blocks]"); continue; }
    if (L.mask_cnt[r] < 0 || L.mask_cnt[r] > L.mask_max) { fail(r, "mask_cnt out of [0, mask_max_blocks]"); continue; }
    const auto f = L.full(r), m = L.mask(r);
    std::set<int> seen;
    for (size_t x = 0; x < f.size(); ++x) {
      if (f[x] < 0 || f[x] >= T) { fail(r, "full index out of range"); break; }
      if (x && f[x] <= f[x - 1]) { fail(r, "full list not ascending"); break; }
      if (f[x] / bps >= si) { fail(r, "full block not in an earlier segment (causality)"); break; }
      if (f[x] == pad) { fail(r, "padding block in the full list"); break; }
      seen.insert(f[x]);
    }
    std::set<int> own;
    for (int j = si * bps; j < std::min(si * bps + bps, T); ++j) own.insert(j);
    for (size_t x = 0; x < m.size(); ++x) {
      if (m[x] < 0 || m[x] >= T) { fail(r, "mask index out of range"); break; }
      if (x && m[x] <= m[x - 1]) { fail(r, "mask list not ascending"); break; }
      if (m[x] / bps > si) { fail(r, "mask block after the query's segment (causality)"); break; }
      if (m[x] / bps < si && m[x] != pad) { fail(r, "earlier-segment block without padding in the mask list"); break; }
      if (seen.count(m[x])) { fail(r, "block in both lists"); break; }
      own.erase(m[x]);
    }
    if (!own.empty()) fail(r, "own-segment block missing from the mask list");
    if (p.force_sink && si > 0) {
      const int hq = int(r / T % L.H), b = int(r / T / L.H);
      const int sb = ref_sink_block(p, inv_perm, b, hq);
      if (!seen.count(sb) && !(sb == pad)) fail(r, "sink block missing");
    }
    if (all_causal && int(f.size() + m.size()) != si * bps + std::min(bps, T - si * bps))
      fail(r, "threshold 1: full+mask is not every causal block");
  }
  for (size_t bh = 0; bh < size_t(L.B) * L.H; ++bh) {
    int64_t kept = 0;
    for (int i = 0; i < T; ++i) kept += L.full_cnt[bh * T + i] + L.mask_cnt[bh * T + i];
    if (kept != L.kept[bh] && ++bad <= 5) std::printf("    [%s] kept_blocks[%zu] = %d, expected %lld\n", tag, bh, L.kept[bh], (long long)kept);
  }
  return bad;
}

// Layout vs reference rows. A differing row is a *near tie* when every differing block sits at the
// reference's threshold boundary (take = number the reference selected, ranks in its descending order):
//   - an extra block (selected here, not in the reference) must be rank `take` with the reference cumsum
//     before it within eps_cum of tau (the cut is ambiguous), or have a probability within eps_prob
//     (relative) of the reference's last selected one (a swap of near-equal probabilities);
//   - a missing block must be rank take-1 with the cumsum before it within eps_cum of tau, or have a
//     probability within eps_prob of the reference's first unselected one.
// Any other difference is a failure. Near ties are counted and reported, not failed.
struct LayoutDiff {
  int rows = 0, near_ties = 0, unexplained = 0, max_count_diff = 0;
};

inline LayoutDiff compare_to_reference(const HostLayout& L, const std::vector<RefRow>& ref, const sk::PbsParams& p,
                                       double eps_cum, double eps_prob, const char* tag) {
  LayoutDiff out;
  const int T = L.T;
  for (size_t r = 0; r < ref.size(); ++r) {
    const RefRow& R = ref[r];
    const auto f = L.full(r), m = L.mask(r);
    if (f == R.full && m == R.mask) continue;
    ++out.rows;
    out.max_count_diff = std::max<int>(out.max_count_diff, std::abs(int(f.size()) - int(R.full.size())));
    std::vector<char> sel(R.ncand, 0);
    for (int j : f) if (j < R.ncand) sel[j] = 1;
    for (int j : m) if (j < R.ncand) sel[j] = 1;
    std::vector<int> rank(R.ncand);
    for (int x = 0; x < R.ncand; ++x) rank[R.order[x]] = x;
    const double pb = R.take > 0 ? R.prob[R.order[R.take - 1]] : 0.0;        // last selected
    const double pn = R.take < R.ncand ? R.prob[R.order[R.take]] : -1.0;     // first unselected
    const double t = p.threshold;
    auto near = [&](double a, double b) { return b >= 0 && std::fabs(a - b) <= eps_prob * b; };
    bool ok = R.ncand > 0 && int(m.size()) == int(R.mask.size()) && p.threshold < 1.f;
    for (int j = 0; ok && j < R.ncand; ++j) {
      if (sel[j] == R.sel[j]) continue;
      const int x = rank[j];
      bool tie;
      if (sel[j])  // extra
        tie = (x == R.take && std::fabs(R.cum[x - 1] - t) <= eps_cum) || near(R.prob[j], pb);
      else  // missing
        tie = (x == R.take - 1 && x > 0 && std::fabs(R.cum[x - 1] - t) <= eps_cum) || near(R.prob[j], pn);
      ok = j != R.sink && tie;
    }
    if (ok) {
      ++out.near_ties;
    } else if (++out.unexplained <= 5) {
      std::printf("    [%s] row %zu (b,h,i)=(%zu,%zu,%zu): full %zu vs ref %zu, mask %zu vs ref %zu, not a near tie\n", tag, r,
                  r / T / L.H, r / T % L.H, r % T, f.size(), R.full.size(), m.size(), R.mask.size());
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Test cases shared by the CPU and GPU checks.
struct Case {
  std::string name;
  sk::DType dtype = sk::DType::kBFloat16;
  int B = 1, Hq = 8, Hk = 2, N = 1000, D = 64;
  int block = 128, seg = 256;
  sk::PbsGqaMode gqa = sk::PbsGqaMode::kShared;
  sk::PbsPool pool = sk::PbsPool::kMean;
  sk::PbsSelector selector = sk::PbsSelector::kMeanPool;
  float threshold = 0.9f;
  int proxy_rows = 0;
  bool proxy_causal = false;
  bool force_sink = true;
  int stride = 8;
  bool zero_keys = false;  // all-zero keys: every proxy score ties, the permutation must be the identity
};

inline sk::PbsParams case_params(const Case& c) {
  sk::PbsParams p;
  p.block_size = c.block; p.segment_size = c.seg; p.threshold = c.threshold; p.gqa_mode = c.gqa;
  p.pool = c.pool; p.selector = c.selector; p.proxy_rows = c.proxy_rows; p.proxy_causal = c.proxy_causal;
  p.force_sink = c.force_sink; p.antidiag_stride = c.stride;
  return p;
}

inline const char* dtype_short(sk::DType t) {
  return t == sk::DType::kFloat32 ? "f32" : t == sk::DType::kFloat16 ? "f16" : "bf16";
}

inline std::string describe(const Case& c) {
  char buf[256];
  std::snprintf(buf, sizeof buf, "%s B=%d Hq=%d Hk=%d N=%d D=%d blk=%d seg=%d %s %s %s tau=%g%s%s", dtype_short(c.dtype),
                c.B, c.Hq, c.Hk, c.N, c.D, c.block, c.seg, c.gqa == sk::PbsGqaMode::kShared ? "shared" : "perQ",
                c.pool == sk::PbsPool::kMean ? "mean" : "max",
                c.selector == sk::PbsSelector::kMeanPool ? "meanpool" : (c.stride == 8 ? "antidiag" : c.stride == 4 ? "antidiag/4" : "antidiag/16"),
                double(c.threshold), c.proxy_causal ? " causal-proxy" : "", c.zero_keys ? " zero-keys" : "");
  return buf;
}

// Every stage of the CPU backend, run one by one on host buffers (poisoned before each stage).
struct StageRun {
  sk::PbsParams p;
  sk::Status st;
  std::vector<float> scores, qbar, kbar;
  std::vector<int32_t> perm, inv;
  HostLayout layout;
};

inline void alloc_stage_buffers(StageRun& r, const Inputs& in) {
  const sk::PbsDims d = sk::pbs_dims(r.p);
  const size_t bhp = size_t(in.B) * d.perm_heads;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  r.scores.assign(bhp * d.permuted_len, nan);
  r.perm.assign(bhp * in.N, -7);
  r.inv.assign(bhp * in.N, -7);
  r.qbar.assign(size_t(in.B) * in.Hq * d.num_blocks * in.D, nan);
  r.kbar.assign(bhp * d.num_blocks * in.D, nan);
  r.layout.alloc(r.p);
  r.p.scores = r.scores.data(); r.p.perm = r.perm.data(); r.p.inv_perm = r.inv.data();
  r.p.qbar = r.qbar.data(); r.p.kbar = r.kbar.data();
  r.layout.bind(r.p);
}

inline StageRun run_cpu_stages(const Inputs& in, const sk::PbsParams& base) {
  StageRun r;
  r.p = base;
  bind_inputs(r.p, in, in.q.data(), in.k.data());
  alloc_stage_buffers(r, in);
  r.st = sk::cpu::pbs_proxy_scores(r.p);
  if (r.st.ok()) r.st = sk::cpu::pbs_permute(r.p);
  if (r.st.ok() && r.p.selector == sk::PbsSelector::kMeanPool) r.st = sk::cpu::pbs_pool_blocks(r.p);
  if (r.st.ok()) r.st = sk::cpu::pbs_select(r.p);
  return r;
}

inline int count_nonfinite(const std::vector<float>& v) {
  int n = 0;
  for (float x : v) n += !std::isfinite(x);
  return n;
}

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

}  // namespace pbsref
