// Shared, backend-independent part of the PBS contract: derived sizes, parameter validation, the layout
// view and the density statistic. Both backends call check_pbs_params first.
#include "ops/pbs.h"

#include <cmath>
#include <cstdint>
#include <string>

namespace sk {

namespace {

constexpr int32_t kMaxSegmentSize = 8192;  // CUDA sorts one segment in one CTA's shared memory
constexpr int32_t kMaxCudaBlocks = 8192;   // CUDA selection sorts one row of T candidates in smem (64 KB)

Status invalid(const std::string& field, const std::string& what) {
  return Status::Invalid("pbs: " + field + " " + what);
}

bool aligned16(const void* ptr) { return (reinterpret_cast<uintptr_t>(ptr) & 15u) == 0; }

Status check_tensor(const char* name, const void* data, int64_t bs, int64_t hs, int64_t rs, int32_t batch,
                    int32_t heads, int32_t rows, int32_t cols, bool for_cuda) {
  const std::string n(name);
  if (data == nullptr) return invalid(n, "is null");
  if (rs < cols || (rows > 1 && rs <= 0)) return invalid(n + "_row_stride", "must be >= head_dim");
  if ((heads > 1 && hs <= 0) || hs < 0) return invalid(n + "_head_stride", "must be positive");
  if ((batch > 1 && bs <= 0) || bs < 0) return invalid(n + "_batch_stride", "must be positive");
  if (for_cuda) {
    // 16-byte vector loads / cp.async of whole rows.
    if (!aligned16(data)) return invalid(n, "must be 16-byte aligned on CUDA");
    if (rs % 8 != 0 || hs % 8 != 0 || bs % 8 != 0)
      return invalid(n + " strides", "must be multiples of 8 elements on CUDA");
  }
  return Status::Ok();
}

}  // namespace

PbsDims pbs_dims(const PbsParams& p) {
  PbsDims d;
  d.group = p.heads_k > 0 ? p.heads_q / p.heads_k : 1;
  const bool shared = p.gqa_mode == PbsGqaMode::kShared;
  d.perm_heads = shared ? p.heads_k : p.heads_q;
  d.q_per_perm_head = shared ? d.group : 1;
  d.perm_per_kv_head = shared ? 1 : d.group;
  const int32_t b = p.block_size > 0 ? p.block_size : 1;
  const int32_t s = p.segment_size > 0 ? p.segment_size : 1;
  d.num_blocks = static_cast<int32_t>((static_cast<int64_t>(p.seq_len) + b - 1) / b);
  d.num_segments = p.seq_len / s;
  d.permuted_len = d.num_segments * s;
  d.blocks_per_segment = s / b;
  const int32_t r = p.proxy_rows > 0 ? p.proxy_rows : p.block_size;
  d.proxy_rows = r < p.seq_len ? r : p.seq_len;
  d.max_blocks = d.num_blocks;
  d.mask_max_blocks = d.blocks_per_segment + 1;
  d.scale = p.softmax_scale > 0.f ? p.softmax_scale
                                  : (p.head_dim > 0 ? 1.0f / std::sqrt(static_cast<float>(p.head_dim)) : 0.f);
  return d;
}

Status check_pbs_params(const PbsParams& p, PbsStage stage, bool for_cuda) {
  // Shapes.
  if (p.batch < 1) return invalid("batch", "must be >= 1");
  if (p.heads_q < 1 || p.heads_k < 1) return invalid("heads", "must be >= 1");
  if (p.heads_q % p.heads_k != 0) return invalid("heads_q", "must be a multiple of heads_k");
  if (p.seq_len < 1) return invalid("seq_len", "must be >= 1");
  if (for_cuda) {
    if (p.head_dim != 64 && p.head_dim != 128) return invalid("head_dim", "must be 64 or 128 on CUDA");
    if (!is_half_dtype(p.dtype)) return invalid("dtype", "must be float16 or bfloat16 on CUDA");
  } else {
    if (p.head_dim < 1 || p.head_dim > 1024) return invalid("head_dim", "must be in [1, 1024]");
    if (!is_float_dtype(p.dtype)) return invalid("dtype", "must be float32, float16 or bfloat16");
  }
  // Options.
  if (p.block_size != 64 && p.block_size != 128) return invalid("block_size", "must be 64 or 128");
  if (p.segment_size < p.block_size || p.segment_size % p.block_size != 0)
    return invalid("segment_size", "must be a positive multiple of block_size");
  if (p.segment_size > kMaxSegmentSize) return invalid("segment_size", "must be <= 8192");
  if (!(p.threshold > 0.f && p.threshold <= 1.f)) return invalid("threshold", "must be in (0, 1]");
  if (!std::isfinite(p.softmax_scale) || p.softmax_scale < 0.f)
    return invalid("softmax_scale", "must be finite and >= 0 (0 = 1/sqrt(head_dim))");
  if (p.proxy_rows < 0) return invalid("proxy_rows", "must be >= 0 (0 = block_size)");
  if (p.gqa_mode != PbsGqaMode::kShared && p.gqa_mode != PbsGqaMode::kPerQueryHead)
    return invalid("gqa_mode", "must be 0 (shared) or 1 (perQueryHead)");
  if (p.pool != PbsPool::kMean && p.pool != PbsPool::kMax) return invalid("pool", "must be 0 (mean) or 1 (max)");
  if (p.selector != PbsSelector::kMeanPool && p.selector != PbsSelector::kAntidiagonal)
    return invalid("selector", "must be 0 (meanpool) or 1 (antidiagonal)");
  const int32_t sx = p.antidiag_stride;
  if (sx != 4 && sx != 8 && sx != 16) return invalid("antidiag_stride", "must be 4, 8 or 16");
  if (p.block_size / sx > 16) return invalid("antidiag_stride", "must be >= block_size / 16");
  const PbsDims d = pbs_dims(p);
  if (for_cuda && (p.batch > 65535 || p.heads_q + d.perm_heads > 65535))
    return invalid("batch/heads", "exceed the CUDA grid limits (65535)");
  if (for_cuda && d.num_blocks > kMaxCudaBlocks)
    return invalid("seq_len", "must be <= 8192 * block_size on CUDA (one row of candidates per CTA)");

  // Buffers the stage touches.
  const bool antidiag = p.selector == PbsSelector::kAntidiagonal;
  const bool reads_qk = stage == PbsStage::kProxy || stage == PbsStage::kPool || stage == PbsStage::kPlan ||
                        (stage == PbsStage::kSelect && antidiag);
  if (reads_qk) {
    SK_RETURN_IF_ERROR(check_tensor("q", p.q, p.q_batch_stride, p.q_head_stride, p.q_row_stride, p.batch, p.heads_q,
                                    p.seq_len, p.head_dim, for_cuda));
    SK_RETURN_IF_ERROR(check_tensor("k", p.k, p.k_batch_stride, p.k_head_stride, p.k_row_stride, p.batch, p.heads_k,
                                    p.seq_len, p.head_dim, for_cuda));
  }
  switch (stage) {
    case PbsStage::kProxy:
      if (p.scores == nullptr && d.permuted_len > 0) return invalid("scores", "is null");
      break;
    case PbsStage::kPermute:
      if (p.scores == nullptr && d.permuted_len > 0) return invalid("scores", "is null");
      if (p.perm == nullptr) return invalid("perm", "is null");
      if (p.inv_perm == nullptr) return invalid("inv_perm", "is null");
      break;
    case PbsStage::kPool:
      if (p.perm == nullptr) return invalid("perm", "is null");
      if (p.qbar == nullptr) return invalid("qbar", "is null");
      if (p.kbar == nullptr) return invalid("kbar", "is null");
      break;
    case PbsStage::kSelect:
      if (p.inv_perm == nullptr) return invalid("inv_perm", "is null");
      if (antidiag) {
        if (p.perm == nullptr) return invalid("perm", "is null");
      } else {
        if (p.qbar == nullptr) return invalid("qbar", "is null");
        if (p.kbar == nullptr) return invalid("kbar", "is null");
      }
      [[fallthrough]];
    case PbsStage::kPlan:
      if (stage == PbsStage::kPlan && p.perm == nullptr) return invalid("perm", "is null");
      if (p.full_cnt == nullptr || p.full_idx == nullptr) return invalid("full_cnt/full_idx", "is null");
      if (p.mask_cnt == nullptr || p.mask_idx == nullptr) return invalid("mask_cnt/mask_idx", "is null");
      break;
  }
  // CUDA reads qbar/kbar rows as float4.
  if (for_cuda && ((p.qbar != nullptr && !aligned16(p.qbar)) || (p.kbar != nullptr && !aligned16(p.kbar))))
    return invalid("qbar/kbar", "must be 16-byte aligned on CUDA");
  return Status::Ok();
}

BlockLayoutView pbs_layout_view(const PbsParams& p) {
  const PbsDims d = pbs_dims(p);
  BlockLayoutView v;
  v.full_cnt = p.full_cnt;
  v.full_idx = p.full_idx;
  v.mask_cnt = p.mask_cnt;
  v.mask_idx = p.mask_idx;
  v.batch = p.batch;
  v.heads = p.heads_q;
  v.q_blocks = d.num_blocks;
  v.k_blocks = d.num_blocks;
  v.max_blocks = d.max_blocks;
  v.mask_max_blocks = d.mask_max_blocks;
  v.block_size = p.block_size;
  return v;
}

double pbs_density(int64_t kept_blocks, int32_t num_blocks) {
  const double causal = 0.5 * static_cast<double>(num_blocks) * (static_cast<double>(num_blocks) + 1.0);
  return causal > 0 ? static_cast<double>(kept_blocks) / causal : 0.0;
}

}  // namespace sk
