// CPU DeltaLinear step / reset / invalidate (contract and semantics: src/ops/delta.h).
//
// A step runs in three phases:
//   1. derive (parallel over the stepped rows): quantise x, compare with x_ref, build each row's ascending
//      list of fired inputs with their deltas, and update x_ref in place where fired. O(K) per row.
//   2. accumulate (parallel over (M tile, group of rows) tasks): y_acc tile += sum of d_k * Wt[k, tile]
//      over the fired rows (AXPYs over contiguous Wt rows, row_ops.h), or over all K rows with the masked
//      delta when the row is denser than dense_fallback_density or (re)initialising; then
//      y = act(y_acc) cast. K is walked in blocks and all rows of the task consume a block before the
//      next, so a Wt row fired by several streams is read from memory once, not once per stream.
//   3. bookkeeping (serial, O(rows)): n_active, initialised, steps, stats.
#include <algorithm>
#include <cmath>
#include <new>
#include <vector>

#include "core/half.h"
#include "core/thread_pool.h"
#include "cpu/delta/row_ops.h"
#include "ops/delta.h"

namespace sk::cpu {

namespace {

// Output columns per task: a 4 KB fp32 accumulator stays in L1 while four Wt row segments stream past
// (2 KB each for fp16), long enough runs for the hardware prefetcher.
constexpr int64_t kTileM = 1024;
// Inputs per K block: 64 rows (one uint64 "needed rows" mask) x 2 KB (fp16 tile) = 128 KB of Wt, plus its
// 256 KB fp32 copy, stay in L2 while every stream of the task takes its fired rows from them.
constexpr int64_t kBlockK = 64;

struct RowPlan {
  int32_t stream = 0;
  bool init = false;   // (re)initialising: x_ref <- q(x), y_acc <- W q(x) + b
  bool dense = false;  // d holds a masked delta for all K inputs (no index list)
  int64_t count = 0;   // fired inputs (n_active)
};

float load_elem(const void* base, DType t, int64_t i) {
  switch (t) {
    case DType::kFloat16: return half_to_float(static_cast<const uint16_t*>(base)[i]);
    case DType::kBFloat16: return bf16_to_float(static_cast<const uint16_t*>(base)[i]);
    default: return static_cast<const float*>(base)[i];
  }
}

void store_elem(void* base, DType t, int64_t i, float v) {
  switch (t) {
    case DType::kFloat16: static_cast<uint16_t*>(base)[i] = float_to_half(v); break;
    case DType::kBFloat16: static_cast<uint16_t*>(base)[i] = float_to_bf16(v); break;
    default: static_cast<float*>(base)[i] = v; break;
  }
}

float activate(float v, Activation a) {
  switch (a) {
    case Activation::kRelu: return v > 0.f ? v : (v == v ? 0.f : v);  // NaN stays NaN
    case Activation::kGelu: return 0.5f * v * (1.f + std::erf(v * 0.70710678118654752f));
    case Activation::kSilu: return v / (1.f + std::exp(-v));
    default: return v;
  }
}

// Phase 1 for one row. `idx` and `d` have room for K entries. The quantised inputs are written to `d`
// first and compared in a second loop so that q(x) - x_ref is a plain fp32 subtraction of the stored
// q(x) (never fused into an FMA with the quantiser's multiply): the CUDA kernel computes the same bits,
// and the fired sets of both backends agree exactly.
RowPlan derive_row(const DeltaStepParams& p, int64_t r, int32_t* idx, float* d) {
  const DeltaWeights& w = p.w;
  const DeltaState& st = p.state;
  const int64_t K = w.K;
  RowPlan plan;
  plan.stream = p.stream_ids != nullptr ? p.stream_ids[r] : static_cast<int32_t>(r);
  const int32_t s = plan.stream;
  plan.init = st.initialized[s] == 0 || (w.refresh_every > 0 && st.steps[s] >= w.refresh_every);
  float* xr = st.x_ref + ((st.parity[s] & 1) * static_cast<int64_t>(st.num_streams) + s) * K;

  const bool quant = w.mode == DeltaMode::kQuantized;
  for (int64_t k = 0; k < K; ++k) {
    const float xv = load_elem(p.x, p.x_dtype, r * K + k);
    d[k] = quant ? std::rint(xv / w.quant_step) * w.quant_step : xv;
  }
  if (plan.init) {  // every input "fires" with d = q(x) against a zero reference; y_acc restarts at b
    std::copy(d, d + K, xr);
    plan.dense = true;
    plan.count = K;
    return plan;
  }
  int64_t c = 0;
  for (int64_t k = 0; k < K; ++k) {
    const float xq = d[k];
    const float dd = xq - xr[k];
    const float th = quant ? 0.f : (w.threshold != nullptr ? w.threshold[k] : w.threshold_scalar);
    const bool fire = std::isnan(xq) || (std::fabs(dd) >= th && dd != 0.f);
    if (fire) {
      idx[c] = static_cast<int32_t>(k);
      d[c] = dd;  // c <= k: never overwrites a q(x) still to be read
      xr[k] = xq;
      ++c;
    }
  }
  plan.count = c;
  plan.dense = K > 0 && static_cast<double>(c) > static_cast<double>(w.dense_fallback_density) * K;
  if (plan.dense) {
    // Expand the compacted (idx, d) into a masked delta over all K, in place and backwards: idx[i] >= i,
    // so writing d[idx[i]] never clobbers an entry d[j], j < i, that is still to be moved.
    int64_t next = K;
    for (int64_t i = c - 1; i >= 0; --i) {
      const int64_t k = idx[i];
      const float v = d[i];
      std::fill(d + k + 1, d + next, 0.f);
      d[k] = v;
      next = k;
    }
    std::fill(d, d + next, 0.f);
  }
  return plan;
}

void accumulate_rows(DType t, const void* wt, int64_t ld, float* acc, int64_t n, int64_t col0, const int32_t* list,
                     const float* vals, int64_t count) {
  if (count == 0) return;
  switch (t) {
    case DType::kFloat16:
      delta::accumulate_rows_f16(acc, n, static_cast<const uint16_t*>(wt), ld, col0, list, vals, count);
      break;
    case DType::kBFloat16:
      delta::accumulate_rows_bf16(acc, n, static_cast<const uint16_t*>(wt), ld, col0, list, vals, count);
      break;
    default:
      delta::accumulate_rows_f32(acc, n, static_cast<const float*>(wt), ld, col0, list, vals, count);
      break;
  }
}

struct TaskScratch {
  std::vector<float> acc;      // [rows of the task, kTileM]
  std::vector<int64_t> cursor;  // per row: next entry of its fired list
  std::vector<float> wblock;   // [kBlockK, kTileM] fp32 copy of the block's needed 16-bit Wt rows
  std::vector<int32_t> rel;    // a row's fired list inside the block, relative to the block start
};

// One phase-2 task: rows [r0, r1) of the step times output columns [col0, col0 + n).
// Each K block is consumed by every row of the task before the next block. With 16-bit weights and
// several rows, the block's Wt rows that any row needs are widened to fp32 once and shared: otherwise
// every stream re-converts the same rows, and the conversion (5-6 vector ops per weight against one
// FMA) dominates: 16 streams x 10% active (same inputs) went from 27 to 16 ms per step (median; min 18
// to 10 ms) on the shared 2-core VM.
void run_task(const DeltaStepParams& p, const RowPlan* plans, const int32_t* idx, const float* d, int64_t r0,
              int64_t r1, int64_t col0, int64_t n, TaskScratch& sc) {
  const DeltaWeights& w = p.w;
  const int64_t K = w.K, M = w.M, rows = r1 - r0;
  const bool share = rows > 1 && is_half_dtype(w.wt_dtype);
  sc.acc.resize(static_cast<size_t>(rows * kTileM));
  sc.cursor.assign(static_cast<size_t>(rows), 0);
  if (share) {
    sc.wblock.resize(static_cast<size_t>(kBlockK * kTileM));
    sc.rel.resize(static_cast<size_t>(kBlockK));
  }
  for (int64_t r = r0; r < r1; ++r) {
    const RowPlan& plan = plans[r];
    const float* yacc = p.state.y_acc + plan.stream * M + col0;
    float* acc = sc.acc.data() + (r - r0) * kTileM;
    for (int64_t j = 0; j < n; ++j) acc[j] = plan.init ? (w.bias != nullptr ? w.bias[col0 + j] : 0.f) : yacc[j];
  }
  const size_t esz = dtype_size(w.wt_dtype);
  for (int64_t kb = 0; kb < K; kb += kBlockK) {
    const int64_t ke = std::min(K, kb + kBlockK);
    const uint8_t* wt_block = static_cast<const uint8_t*>(w.wt) + static_cast<size_t>(kb * w.wt_ld) * esz;
    uint64_t need = 0;  // bit b: row kb + b is used by some row of the task (kBlockK == 64)
    for (int64_t r = r0; r < r1 && share; ++r) {
      const RowPlan& plan = plans[r];
      if (plan.dense) {
        need = ke - kb == 64 ? ~0ull : (1ull << (ke - kb)) - 1;
        break;
      }
      const int32_t* list = idx + r * K;
      for (int64_t i = sc.cursor[r - r0]; i < plan.count && list[i] < ke; ++i) need |= 1ull << (list[i] - kb);
    }
    for (uint64_t m = need; m != 0; m &= m - 1) {
      const int b = __builtin_ctzll(m);
      const uint16_t* src = reinterpret_cast<const uint16_t*>(wt_block) + b * w.wt_ld + col0;
      float* dst = sc.wblock.data() + b * kTileM;
      if (w.wt_dtype == DType::kFloat16) delta::convert_f16(dst, src, n);
      else delta::convert_bf16(dst, src, n);
    }
    for (int64_t r = r0; r < r1; ++r) {
      const RowPlan& plan = plans[r];
      float* acc = sc.acc.data() + (r - r0) * kTileM;
      const int32_t* list = idx + r * K;
      const float* dr = d + r * K;
      if (plan.dense) {  // the masked delta over the whole block
        if (share) accumulate_rows(DType::kFloat32, sc.wblock.data(), kTileM, acc, n, 0, nullptr, dr + kb, ke - kb);
        else accumulate_rows(w.wt_dtype, wt_block, w.wt_ld, acc, n, col0, nullptr, dr + kb, ke - kb);
        continue;
      }
      const int64_t begin = sc.cursor[r - r0];
      int64_t end = begin;
      while (end < plan.count && list[end] < ke) ++end;
      sc.cursor[r - r0] = end;
      if (share) {
        for (int64_t i = begin; i < end; ++i) sc.rel[i - begin] = list[i] - static_cast<int32_t>(kb);
        accumulate_rows(DType::kFloat32, sc.wblock.data(), kTileM, acc, n, 0, sc.rel.data(), dr + begin, end - begin);
      } else {
        accumulate_rows(w.wt_dtype, w.wt, w.wt_ld, acc, n, col0, list + begin, dr + begin, end - begin);
      }
    }
  }
  for (int64_t r = r0; r < r1; ++r) {
    float* yacc = p.state.y_acc + plans[r].stream * M + col0;
    const float* acc = sc.acc.data() + (r - r0) * kTileM;
    for (int64_t j = 0; j < n; ++j) {
      yacc[j] = acc[j];
      store_elem(p.y, p.x_dtype, r * M + col0 + j, activate(acc[j], p.activation));
    }
  }
}

}  // namespace

Status delta_step(const DeltaStepParams& p) {
  SK_RETURN_IF_ERROR(check_delta_step(p, /*for_cuda=*/false));
  const int64_t rows = p.num_rows;
  if (rows == 0) return Status::Ok();
  const DeltaWeights& w = p.w;
  const DeltaState& st = p.state;
  const int64_t K = w.K, M = w.M;
  try {
    // Scratch kept per calling thread and only ever grown: with a fresh rows*K allocation per step, perf
    // showed page faults and zeroing dominating 16-stream steps (16 x 11008 inputs) on the 2-core VM.
    // The lambdas below run on pool workers, which see their own thread_locals: they use these pointers.
    thread_local std::vector<RowPlan> plan_buf;
    thread_local std::vector<int32_t> idx_buf;
    thread_local std::vector<float> d_buf;
    if (plan_buf.size() < static_cast<size_t>(rows)) plan_buf.resize(static_cast<size_t>(rows));
    if (idx_buf.size() < static_cast<size_t>(rows * K)) {
      idx_buf.resize(static_cast<size_t>(rows * K));
      d_buf.resize(static_cast<size_t>(rows * K));
    }
    RowPlan* const plans = plan_buf.data();
    int32_t* const idx = idx_buf.data();
    float* const d = d_buf.data();

    core::parallel_for(rows, 1, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) plans[r] = derive_row(p, r, idx + r * K, d + r * K);
    });

    // Phase 2 tasks: (M tile, group of rows). Rows are grouped only when there are too few tiles to
    // keep every thread busy; within a task the K range is walked in blocks, and every row of the group
    // consumes its fired rows of the block while that block of Wt is still in cache.
    const int64_t tiles = (M + kTileM - 1) / kTileM;
    const int64_t threads = core::ThreadPool::global().num_threads();
    int64_t groups = tiles == 0 ? 1 : std::min<int64_t>(rows, std::max<int64_t>(1, (2 * threads + tiles - 1) / tiles));
    const int64_t group_rows = (rows + groups - 1) / groups;
    groups = (rows + group_rows - 1) / group_rows;  // e.g. 5 rows in 4 groups of 2 -> 3 groups, none empty
    core::parallel_for(tiles * groups, 1, [&](int64_t t0, int64_t t1) {
      thread_local TaskScratch scratch;  // per worker, grown once
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t tile = t / groups, r0 = (t % groups) * group_rows, r1 = std::min(rows, r0 + group_rows);
        const int64_t col0 = tile * kTileM;
        run_task(p, plans, idx, d, r0, r1, col0, std::min(kTileM, M - col0), scratch);
      }
    });

    for (int64_t r = 0; r < rows; ++r) {
      const RowPlan& plan = plans[r];
      const int32_t s = plan.stream;
      p.n_active[r] = static_cast<int32_t>(plan.count);
      st.steps[s] = plan.init ? 0 : st.steps[s] + 1;
      st.initialized[s] = 1;
      if (st.stats != nullptr) {
        st.stats[2 * s] += plan.count;
        st.stats[2 * s + 1] += 1;
      }
    }
  } catch (const std::bad_alloc&) {
    return Status::Error(ErrorCode::kOutOfMemory, "delta step: host scratch allocation failed");
  }
  return Status::Ok();
}

Status delta_reset(const DeltaState& st, const int32_t* stream_ids, int32_t n) {
  SK_RETURN_IF_ERROR(check_delta_reset(st, stream_ids, n, /*for_cuda=*/false));
  for (int32_t i = 0; i < n; ++i) st.initialized[stream_ids[i]] = 0;
  return Status::Ok();
}

Status delta_invalidate(const DeltaState& st) {
  if (st.num_streams < 0) return Status::Error(ErrorCode::kShape, "delta invalidate: negative stream count");
  if (st.num_streams > 0 && st.initialized == nullptr) return Status::Invalid("delta invalidate: null state");
  std::fill(st.initialized, st.initialized + st.num_streams, uint8_t{0});
  return Status::Ok();
}

}  // namespace sk::cpu
