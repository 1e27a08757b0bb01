// Host side of bench/native/attention_check.cu: block layouts as the PBS pipeline and the layout
// helpers produce them, key permutations, and a float64 reference of the exact contract of
// src/ops/attention.h (computed on all CPU cores).
#pragma once
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <random>
#include <thread>
#include <vector>

namespace skcheck {

struct HostLayout {
  int lb = 1, lh = 1, q_blocks = 0, k_blocks = 0, max_blocks = 0, mask_max = 0, bs = 128;
  std::vector<int32_t> full_cnt, full_idx, mask_cnt, mask_idx;

  // Builds from per-row lists (rows ordered (lb, lh, q_block)).
  void assign(const std::vector<std::vector<int>>& full, const std::vector<std::vector<int>>& masked) {
    const size_t rows = full.size();
    max_blocks = 0, mask_max = 0;
    for (size_t r = 0; r < rows; ++r) {
      max_blocks = std::max<int>(max_blocks, static_cast<int>(full[r].size()));
      mask_max = std::max<int>(mask_max, static_cast<int>(masked[r].size()));
    }
    max_blocks = std::max(max_blocks, 1), mask_max = std::max(mask_max, 1);
    full_cnt.assign(rows, 0), mask_cnt.assign(rows, 0);
    // Unused entries hold garbage on purpose: the kernel must read only the first `cnt` of each row.
    full_idx.assign(rows * max_blocks, 0x7fff0000), mask_idx.assign(rows * mask_max, -77);
    for (size_t r = 0; r < rows; ++r) {
      full_cnt[r] = static_cast<int32_t>(full[r].size());
      mask_cnt[r] = static_cast<int32_t>(masked[r].size());
      std::copy(full[r].begin(), full[r].end(), full_idx.begin() + r * max_blocks);
      std::copy(masked[r].begin(), masked[r].end(), mask_idx.begin() + r * mask_max);
    }
  }
  int64_t row(int b, int h, int i) const {
    return ((static_cast<int64_t>(lb == 1 ? 0 : b) * lh) + (lh == 1 ? 0 : h)) * q_blocks + i;
  }
  // Listed (query block, key block) pairs over the whole batch and all heads: the work the kernel does.
  int64_t kept_blocks(int batch, int heads) const {
    int64_t n = 0;
    for (int b = 0; b < batch; ++b)
      for (int h = 0; h < heads; ++h)
        for (int i = 0; i < q_blocks; ++i) n += full_cnt[row(b, h, i)] + mask_cnt[row(b, h, i)];
    return n;
  }
};

inline int ceil_div(int a, int b) { return (a + b - 1) / b; }

// Dense causal for seq_q == seq_k: earlier blocks full, the diagonal block masked.
inline HostLayout dense_causal(int seq, int bs) {
  HostLayout l;
  l.bs = bs, l.q_blocks = l.k_blocks = ceil_div(seq, bs);
  std::vector<std::vector<int>> full(l.q_blocks), masked(l.q_blocks);
  for (int i = 0; i < l.q_blocks; ++i) {
    for (int j = 0; j < i; ++j) full[i].push_back(j);
    masked[i].push_back(i);
  }
  l.assign(full, masked);
  return l;
}

// Every key block full (non-causal); a partial last key block must still get its length mask.
inline HostLayout dense_full(int seq_q, int seq_k, int bs) {
  HostLayout l;
  l.bs = bs, l.q_blocks = ceil_div(seq_q, bs), l.k_blocks = ceil_div(seq_k, bs);
  std::vector<std::vector<int>> full(l.q_blocks), masked(l.q_blocks);
  for (int i = 0; i < l.q_blocks; ++i)
    for (int j = 0; j < l.k_blocks; ++j) full[i].push_back(j);
  l.assign(full, masked);
  return l;
}

// Every key block masked (token-level causal / length mask everywhere), e.g. for seq_q != seq_k.
inline HostLayout all_masked(int seq_q, int seq_k, int bs) {
  HostLayout l;
  l.bs = bs, l.q_blocks = ceil_div(seq_q, bs), l.k_blocks = ceil_div(seq_k, bs);
  std::vector<std::vector<int>> full(l.q_blocks), masked(l.q_blocks);
  for (int i = 0; i < l.q_blocks; ++i)
    for (int j = 0; j < l.k_blocks; ++j) masked[i].push_back(j);
  l.assign(full, masked);
  return l;
}

// Random causal block sparsity: the diagonal block masked, each earlier block full with probability p
// (in random order, as a selector may emit them). One layout row per (lb, lh).
inline HostLayout random_causal(int lb, int lh, int seq, int bs, double p, std::mt19937_64& rng) {
  HostLayout l;
  l.lb = lb, l.lh = lh, l.bs = bs, l.q_blocks = l.k_blocks = ceil_div(seq, bs);
  const size_t rows = static_cast<size_t>(lb) * lh * l.q_blocks;
  std::vector<std::vector<int>> full(rows), masked(rows);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (size_t r = 0; r < rows; ++r) {
    const int i = static_cast<int>(r % l.q_blocks);
    for (int j = 0; j < i; ++j)
      if (u(rng) < p) full[r].push_back(j);
    std::shuffle(full[r].begin(), full[r].end(), rng);
    masked[r].push_back(i);
  }
  l.assign(full, masked);
  return l;
}

// PBS-style layout: own segment masked (all its blocks, also those right of the diagonal), earlier
// segments' blocks full with probability p, plus the sink block 0. Key permutation: a random permutation
// inside every complete segment, identity on the tail. perm is [batch, perm_heads, seq].
inline HostLayout pbs_like(int lb, int lh, int seq, int bs, int seg, double p, std::mt19937_64& rng) {
  HostLayout l;
  l.lb = lb, l.lh = lh, l.bs = bs, l.q_blocks = l.k_blocks = ceil_div(seq, bs);
  const int per_seg = seg / bs;
  const size_t rows = static_cast<size_t>(lb) * lh * l.q_blocks;
  std::vector<std::vector<int>> full(rows), masked(rows);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (size_t r = 0; r < rows; ++r) {
    const int i = static_cast<int>(r % l.q_blocks);
    const int s = i / per_seg;
    for (int j = 0; j < s * per_seg; ++j)
      if (j == 0 || u(rng) < p) full[r].push_back(j);
    for (int j = s * per_seg; j < std::min((s + 1) * per_seg, l.k_blocks); ++j) masked[r].push_back(j);
  }
  l.assign(full, masked);
  return l;
}

inline std::vector<int32_t> segment_perm(int batch, int heads, int seq, int seg, std::mt19937_64& rng) {
  std::vector<int32_t> perm(static_cast<size_t>(batch) * heads * seq);
  const int complete = seq / seg * seg;
  for (size_t bh = 0; bh < static_cast<size_t>(batch) * heads; ++bh) {
    int32_t* row = perm.data() + bh * seq;
    for (int j = 0; j < seq; ++j) row[j] = j;
    for (int s0 = 0; s0 < complete; s0 += seg) std::shuffle(row + s0, row + s0 + seg, rng);
  }
  return perm;
}

// Float64 reference. q [B,Hq,Nq,D], k/v [B,Hk,Nk,D] as contiguous doubles (the exact values the GPU sees).
struct RefProblem {
  int batch, heads_q, heads_k, seq_q, seq_k, dim;
  double scale;
  bool causal;
  const HostLayout* layout;
  const int32_t* perm = nullptr;  // [B, perm_heads, Nk] or nullptr
  int perm_heads = 0;
};

inline void reference(const RefProblem& pr, const std::vector<double>& q, const std::vector<double>& k,
                      const std::vector<double>& v, std::vector<double>& out, std::vector<double>& lse) {
  const int D = pr.dim, G = pr.heads_q / pr.heads_k, bs = pr.layout->bs;
  const int64_t total_rows = static_cast<int64_t>(pr.batch) * pr.heads_q * pr.seq_q;
  out.assign(total_rows * D, 0.0);
  lse.assign(total_rows, -INFINITY);
  std::atomic<int64_t> next{0};
  auto worker = [&]() {
    std::vector<int> keys;
    std::vector<double> s;
    for (;;) {
      const int64_t chunk = next.fetch_add(16);
      if (chunk >= total_rows) return;
      for (int64_t rid = chunk; rid < std::min(chunk + 16, total_rows); ++rid) {
        const int i = static_cast<int>(rid % pr.seq_q);
        const int h = static_cast<int>((rid / pr.seq_q) % pr.heads_q);
        const int b = static_cast<int>(rid / pr.seq_q / pr.heads_q);
        const int hk = h / G;
        const int hp = pr.perm_heads == pr.heads_q ? h : hk;
        const int32_t* perm = pr.perm ? pr.perm + (static_cast<int64_t>(b) * pr.perm_heads + hp) * pr.seq_k : nullptr;
        const HostLayout& L = *pr.layout;
        const int64_t row = L.row(b, h, i / bs);
        keys.clear();
        const int nf = std::clamp(L.full_cnt[row], 0, L.max_blocks);
        const int nm = std::clamp(L.mask_cnt[row], 0, L.mask_max);
        for (int t = 0; t < nf + nm; ++t) {
          const bool masked = t >= nf;
          const int blk = masked ? L.mask_idx[row * L.mask_max + (t - nf)] : L.full_idx[row * L.max_blocks + t];
          if (blk < 0 || blk >= L.k_blocks) continue;
          for (int j = blk * bs; j < std::min((blk + 1) * bs, pr.seq_k); ++j) {
            const int pos = perm ? perm[j] : j;
            if (masked && pr.causal && pos > i + (pr.seq_k - pr.seq_q)) continue;
            keys.push_back(j);
          }
        }
        if (keys.empty()) continue;  // out 0, lse -inf
        const double* qr = q.data() + rid * D;
        const int64_t kv_base = (static_cast<int64_t>(b) * pr.heads_k + hk) * pr.seq_k;
        s.resize(keys.size());
        double mx = -INFINITY;
        for (size_t t = 0; t < keys.size(); ++t) {
          const int src = perm ? perm[keys[t]] : keys[t];
          const double* kr = k.data() + (kv_base + src) * D;
          double dot = 0;
          for (int d = 0; d < D; ++d) dot += qr[d] * kr[d];
          s[t] = dot * pr.scale;
          mx = std::max(mx, s[t]);
        }
        double sum = 0;
        for (double& x : s) sum += (x = std::exp(x - mx));
        double* o = out.data() + rid * D;
        for (size_t t = 0; t < keys.size(); ++t) {
          const int src = perm ? perm[keys[t]] : keys[t];
          const double* vr = v.data() + (kv_base + src) * D;
          const double w = s[t] / sum;
          for (int d = 0; d < D; ++d) o[d] += w * vr[d];
        }
        lse[rid] = mx + std::log(sum);
      }
    }
  };
  const unsigned n = std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < n; ++t) pool.emplace_back(worker);
  for (auto& t : pool) t.join();
}

}  // namespace skcheck
