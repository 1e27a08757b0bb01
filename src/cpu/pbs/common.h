// Helpers shared by the CPU PBS stages: fp32 row loads from any float dtype, vectorisable dot/axpy,
// the (score, index) sort key and the selection + layout emission shared by both selectors.
#pragma once
#include <atomic>
#include <cstdint>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/thread_pool.h"
#include "ops/pbs.h"

namespace sk::cpu::pbs_detail {

// core::parallel_for whose chunks allocate scratch: a std::bad_alloc in a chunk (on any pool thread,
// where it could not propagate) is caught there, later chunks are skipped, and the call returns
// kOutOfMemory instead of terminating the process.
template <typename Fn>
Status parallel_for_alloc(int64_t n, int64_t grain, const char* what, Fn&& fn) {
  std::atomic<bool> oom{false};
  core::parallel_for(n, grain, [&](int64_t begin, int64_t end) {
    if (oom.load(std::memory_order_relaxed)) return;
    try {
      fn(begin, end);
    } catch (const std::bad_alloc&) {
      oom.store(true, std::memory_order_relaxed);
    }
  });
  if (oom.load()) return Status::Error(ErrorCode::kOutOfMemory, std::string(what) + ": host allocation failed");
  return Status::Ok();
}

// Converts n elements at element offset `offset` of a float tensor (float32/float16/bfloat16) to fp32.
void load_row_f32(const void* base, DType dt, int64_t offset, int n, float* out);

// sum_d a[d] * b[d] in fp32 (16 partial sums so the compiler vectorises without -ffast-math).
float dot_f32(const float* a, const float* b, int n);

// y[j] += a * x[j].
void axpy_f32(float a, const float* x, float* y, int n);

// sum_j x[j] in fp32 (16 partial sums).
float sum_f32(const float* x, int n);

// x[j] = exp(x[j]) in place, vectorised (Cephes expf polynomial, about 2 ulp; exp(-inf) = 0, NaN stays
// NaN, overflow gives +inf). std::exp is a scalar libm call: 6.5 ns per element measured here.
void exp_f32(float* x, int n);

// out[r, j] = sum_d a[r, d] * kt[d * ldk + j] for r < rows, j < kc: a [rows, D] row-major, kt = K^T with
// leading dimension ldk >= kc, out [rows, kc]. Register-blocked (4 rows x 32 keys of accumulators) so each
// K^T element loaded feeds 4 FMAs: 136-181 GFLOP/s per thread here, against 22 for the plain axpy form
// (bound by L1 traffic). Sums over d in order 0..D-1.
void rows_times_kt(const float* a, int rows, int D, const float* kt, int64_t ldk, int kc, float* out);

// Sort key of "descending score, ascending index" as one ascending uint64: ties keep the lower index
// first (a stable argsort of -score), NaN sorts as -inf and -0 ties with +0. The CUDA kernels build the
// identical key (cuda/pbs/sort_key.cuh), so both backends order equal floats identically.
inline uint32_t float_order_asc(float v) {
  uint32_t u;
  std::memcpy(&u, &v, 4);
  if (v != v) u = 0xff800000u;  // NaN -> -inf
  if (v == 0.f) u = 0u;         // -0 -> +0
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
inline uint64_t desc_key(float v, uint32_t idx) {
  return (static_cast<uint64_t>(~float_order_asc(v)) << 32) | idx;
}
inline float desc_key_value(uint64_t key) {
  const uint32_t o = ~static_cast<uint32_t>(key >> 32);
  const uint32_t u = (o & 0x80000000u) ? (o & 0x7fffffffu) : ~o;
  float v;
  std::memcpy(&v, &u, 4);
  return v;
}
inline uint32_t desc_key_index(uint64_t key) { return static_cast<uint32_t>(key); }

// One query-block row of the selection (spec 6.3 steps 5-6).
struct SelectRow {
  int32_t i = 0;                   // query block
  int32_t num_blocks = 0;          // T
  int32_t blocks_per_segment = 0;  // S / B
  int32_t pad_block = -1;          // T-1 when it holds padding (N % B != 0), else -1
  int32_t sink_block = -1;         // inv_perm[0] / B when force_sink and seg(i) > 0, else -1
  float threshold = 1.f;
};

// Per-thread scratch, reused across rows.
struct SelectScratch {
  std::vector<uint64_t> keys;
  std::vector<uint8_t> flag;
};

// Given the candidate probabilities prob[0:ncand) (blocks 0..ncand-1 = all blocks of earlier segments),
// selects the minimal prefix of the descending order whose fp32 cumsum reaches the threshold (all when
// threshold >= 1 or when round-off never reaches it), adds the sink, and writes the row's full and
// masked lists. Returns full_cnt + mask_cnt.
int32_t select_and_emit(const float* prob, int32_t ncand, const SelectRow& row, SelectScratch& scratch,
                        int32_t* full_idx_row, int32_t* full_cnt, int32_t* mask_idx_row, int32_t* mask_cnt);

// SelectRow for (b, hq, i): pad block, sink block from inv_perm, threshold.
SelectRow make_select_row(const PbsParams& p, const PbsDims& d, int32_t b, int32_t hq, int32_t i);

// Memory safety of the gathers through a caller-supplied perm: every value must lie in [0, seq_len).
Status check_perm_values(const PbsParams& p, const PbsDims& d);

// Writes kept_blocks[b, hq] = sum_i (full_cnt + mask_cnt) when the caller asked for it.
void sum_kept_blocks(const PbsParams& p, const PbsDims& d);

}  // namespace sk::cpu::pbs_detail
