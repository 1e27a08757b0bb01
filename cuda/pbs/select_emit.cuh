// The tail of both CUDA selectors, per query-block row (spec 6.3 step 6): given the candidates'
// probabilities, select the minimal descending prefix whose cumsum reaches the threshold, add the sink
// and emit the row's full and masked lists (BlockLayoutView, see src/ops/pbs.h).
//
// No sort: the prefix is {p > v*} plus, among the p == v*, the lowest indices (the stable order's tie
// rule), where v* is the probability at the cut. v* is found by bisection on the float bits of p
// (monotone for p >= 0): the largest v with mass(p >= v) >= threshold, ~31 block reductions over
// probabilities held in registers. A bitonic sort of T keys per row moved 55 x T x 16 bytes through
// shared memory and cost 3.4 ms at 128K; bisection touches shared memory only in the reductions.
// Same rules as src/cpu/pbs/common.cc select_and_emit; the sums run in another order than the CPU's
// sequential cumsum, so a row whose cumsum meets the threshold within fp32 round-off of it may cut one
// block apart from the CPU (a near tie, reported by the checks). NaN probabilities sort last (never
// selected by the prefix); a row whose finite mass never reaches the threshold selects everything.
#pragma once
#include <cstdint>

#include "cuda/pbs/block_ops.cuh"

namespace sk::cuda::pbs {

struct SelectRowOut {
  int32_t* full_idx;  // this row's full list (stride max_blocks)
  int32_t* full_cnt;
  int32_t* mask_idx;  // this row's masked list (stride mask_max_blocks)
  int32_t* mask_cnt;
  int32_t* kept;      // per-(b, hq) total, or nullptr
};

struct SelectRowInfo {
  int i, ncand;        // query block, candidates (blocks 0..ncand-1)
  int blocks_per_segment, num_blocks;
  int sink_block;      // -1 when no sink is forced
  int pad_block;       // T-1 when it holds padding, else -1
  bool select_all;     // threshold >= 1
  float threshold;
};

constexpr int kMaxSelectCandidates = 8192;  // T limit on CUDA (check_pbs_params)

// Marks the threshold prefix in `bitmap`; each thread holds kPer consecutive candidates (index order
// = thread order, so tie ranks are a block scan). Returns false when everything must be selected.
template <int kThreads, int kPer>
__device__ bool mark_threshold_prefix(const float* prob, uint32_t* bitmap, const SelectRowInfo& r, int* s_redi) {
  constexpr int kWarps = kThreads / 32;
  __shared__ float s_red2[2][kWarps];  // parity double buffer: one __syncthreads per reduction
  const int per = (r.ncand + kThreads - 1) / kThreads, j0 = threadIdx.x * per;
  float v[kPer];
  float vmax = 0.f;
#pragma unroll
  for (int e = 0; e < kPer; ++e) {
    const int j = j0 + e;
    const float x = (e < per && j < r.ncand) ? prob[j] : -1.f;
    v[e] = x >= 0.f ? x : -1.f;  // NaN and padding: -1, below every threshold tried
    vmax = fmaxf(vmax, v[e]);
  }
  int parity = 0;
  auto reduce = [&](float x, bool is_max) {
    x = is_max ? warp_max(x) : warp_sum(x);
    if ((threadIdx.x & 31) == 0) s_red2[parity][threadIdx.x >> 5] = x;
    __syncthreads();
    float t = s_red2[parity][0];
#pragma unroll
    for (int w = 1; w < kWarps; ++w) t = is_max ? fmaxf(t, s_red2[parity][w]) : t + s_red2[parity][w];
    parity ^= 1;
    return t;
  };
  auto mass_ge = [&](float t) {
    float s = 0.f;
#pragma unroll
    for (int e = 0; e < kPer; ++e) s += v[e] >= t ? v[e] : 0.f;
    return reduce(s, false);
  };
  const float total = mass_ge(0.f);
  if (!(total >= r.threshold)) return false;  // round-off never reaches the threshold
  // Bracket: mass(>= hi) = 0 above the largest probability; mass(< v) < ncand * v, so mass(>= v) >= tau
  // holds for v <= (total - tau) / ncand (checked, with margin, before it is used).
  uint32_t lo = 0u, hi = __float_as_uint(reduce(vmax, true)) + 1u;
  const float vlo = 0.5f * (total - r.threshold) / static_cast<float>(r.ncand);
  if (vlo > 0.f && mass_ge(vlo) >= r.threshold) lo = __float_as_uint(vlo);
  while (hi - lo > 1u) {  // invariant: mass(>= lo) >= tau > mass(>= hi)
    const uint32_t mid = lo + (hi - lo) / 2u;
    if (mass_ge(__uint_as_float(mid)) >= r.threshold) lo = mid;
    else hi = mid;
  }
  const float vstar = __uint_as_float(lo);
  if (!(vstar > 0.f)) return false;
  float gt = 0.f;
  int ties = 0;
#pragma unroll
  for (int e = 0; e < kPer; ++e) {
    gt += v[e] > vstar ? v[e] : 0.f;
    ties += v[e] == vstar ? 1 : 0;
  }
  gt = reduce(gt, false);
  int total_ties;
  int rank = block_exclusive_scan<kThreads>(ties, s_redi, &total_ties);
  // Ties at v* taken in index order until the cumsum reaches the threshold (at least one: v* is the
  // value at which it does).
  const int need = min(total_ties, max(1, static_cast<int>(ceilf((r.threshold - gt) / vstar))));
#pragma unroll
  for (int e = 0; e < kPer; ++e) {
    const int j = j0 + e;
    const bool sel = v[e] > vstar || (v[e] == vstar && rank++ < need);
    if (sel) atomicOr(&bitmap[j >> 5], 1u << (j & 31));
  }
  return true;
}

/// Candidates per thread for a row of `ncand` candidates: the register array size of the bisection.
template <int kThreads>
__host__ __device__ inline int select_per_thread(int ncand) {
  const int per = (ncand + kThreads - 1) / kThreads;
  return per <= 1 ? 1 : per <= 4 ? 4 : per <= 16 ? 16 : 32;
}

/// prob[0:ncand) in shared memory (the caller syncs after writing it); bitmap holds >= ceil(ncand/32)
/// words and must not alias prob. kPer >= select_per_thread<kThreads>(ncand): the caller picks it (a
/// template, so that rows of small T keep the kernel's register count, hence its occupancy, low).
template <int kThreads, int kPer>
__device__ void select_and_emit(const float* prob, uint32_t* bitmap, const SelectRowInfo& r, const SelectRowOut& out) {
  static_assert(kThreads * 32 >= kMaxSelectCandidates, "at most 32 candidates per thread");
  __shared__ int s_redi[kThreads / 32];
  const int words = (r.ncand + 31) / 32;
  // Step 1: the selected set as a bitmap over candidates.
  for (int w = threadIdx.x; w < words; w += kThreads) bitmap[w] = 0u;
  __syncthreads();
  bool all = r.select_all;
  if (!all && r.ncand > 0) all = !mark_threshold_prefix<kThreads, kPer>(prob, bitmap, r, s_redi);
  __syncthreads();
  if (all)
    for (int w = threadIdx.x; w < words; w += kThreads) {
      const int rest = r.ncand - 32 * w;
      bitmap[w] = rest >= 32 ? 0xffffffffu : ((1u << rest) - 1u);
    }
  if (threadIdx.x == 0 && r.sink_block >= 0 && r.sink_block < r.ncand)
    atomicOr(&bitmap[r.sink_block >> 5], 1u << (r.sink_block & 31));
  __syncthreads();
  // Step 2: full list = selected blocks without padding, ascending: scan of per-thread word counts.
  const int wrun = (words + kThreads - 1) / kThreads;
  const int wb = min(words, static_cast<int>(threadIdx.x) * wrun), we = min(words, wb + wrun);
  auto word_at = [&](int w) {
    uint32_t v = bitmap[w];
    if (r.pad_block >= 0 && (r.pad_block >> 5) == w) v &= ~(1u << (r.pad_block & 31));
    return v;
  };
  int cnt = 0;
  for (int w = wb; w < we; ++w) cnt += __popc(word_at(w));
  int nfull;
  int off = block_exclusive_scan<kThreads>(cnt, s_redi, &nfull);
  for (int w = wb; w < we; ++w)
    for (uint32_t v = word_at(w); v != 0u; v &= v - 1u) out.full_idx[off++] = 32 * w + __ffs(v) - 1;
  // Step 3: masked list = a selected padding block (below the own segment), then the own segment.
  if (threadIdx.x == 0) {
    int nm = 0;
    if (r.pad_block >= 0 && r.pad_block < r.ncand && ((bitmap[r.pad_block >> 5] >> (r.pad_block & 31)) & 1u))
      out.mask_idx[nm++] = r.pad_block;
    const int s0 = (r.i / r.blocks_per_segment) * r.blocks_per_segment;
    const int s1 = min(s0 + r.blocks_per_segment, r.num_blocks);
    for (int j = s0; j < s1; ++j) out.mask_idx[nm++] = j;
    *out.full_cnt = nfull;
    *out.mask_cnt = nm;
    if (out.kept != nullptr) atomicAdd(out.kept, nfull + nm);
  }
}

}  // namespace sk::cuda::pbs
