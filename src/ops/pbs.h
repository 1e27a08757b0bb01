// PBS (permuted block-sparse attention) planning stages: the contract between the bindings and the two
// backends. Spec: specs/attention.md 6.1-6.5 (contract) and 1.2-1.8 (reference behaviour).
//
// The stages turn q, k into what the sparse attention kernel (ops/attention.h) consumes:
//   1. proxy scores   s[b, hp, 0:P]       key importance from the last R queries (softmax over P keys,
//                                         mean over the R rows), P = floor(N/S)*S permuted tokens
//   2. permutation    perm, inv_perm      per segment of S keys: stable argsort of -s (NaN = -inf);
//                                         perm[gS + j] = gS + order[j]; the tail [P, N) keeps identity
//   3. block pooling  qbar, kbar          mean|max of the valid rows of each block (kbar through perm)
//   4. selection      layout + kept       selector "meanpool" (pooled scores) or 5. "antidiagonal"
//                                         (XAttention strided antidiagonal scores, PBS-Attn+), both on
//                                         the permuted keys, both emitting the same BlockLayoutView
// The caller then runs attention_fwd with key_perm = perm (key_perm_heads = perm_heads) and this layout.
//
// Limits: S <= 8192 and a multiple of B in {64, 128}; CUDA also needs fp16/bf16, head_dim 64 or 128,
// 16-byte aligned rows and T <= 8192. Design notes and measured times: cuda/pbs/NOTES.md.
//
// Notation: B = block_size, S = segment_size, N = seq_len, T = ceil(N/B) blocks, seg(i) = i / (S/B).
// hp (permutation head) = KV head in kShared mode (queries of the group averaged after scaling),
// query head in kPerQueryHead mode. Everything is computed in fp32; index arrays are int32.
//
// Layout emitted per (b, hq, query block i) (FlexAttention from_kv_blocks form, batch = B, heads = Hq):
//   full  = selected blocks of earlier segments (+ the sink block inv_perm[0]/B when force_sink and
//           seg(i) > 0), ascending; a selected block that holds padding (the partial last block) goes to
//           the masked list instead.  Row stride max_blocks = T.
//   mask  = own segment {j : seg(j) == seg(i), j < T} (+ selected padding blocks), ascending.
//           Row stride mask_max_blocks = S/B + 1.
//   Entries after a row's count are left unwritten (undefined), as in FlexAttention.
//   kept_blocks[b, hq] = sum_i (full_cnt + mask_cnt); density = kept / (T(T+1)/2) (pbs_density).
#pragma once
#include <cstdint>

#include "ops/common.h"

namespace sk {

// Enum values are part of the JS<->native contract (lib/pbs.ts keeps the same numbers).
enum class PbsGqaMode : int32_t {
  kShared = 0,        // one permutation per KV head (spec default; memory-friendly)
  kPerQueryHead = 1,  // one permutation per query head (paper default)
};
enum class PbsPool : int32_t { kMean = 0, kMax = 1 };
enum class PbsSelector : int32_t {
  kMeanPool = 0,      // pooled block scores Qbar_i . Kbar_j (PBS-Attn)
  kAntidiagonal = 1,  // strided antidiagonal scores (XAttention scoring on permuted keys, PBS-Attn+)
};

struct PbsParams {
  // ---- inputs: q [batch, heads_q, seq_len, head_dim], k [batch, heads_k, seq_len, head_dim] ----
  // Element strides; the last dimension is contiguous. CPU: float32/float16/bfloat16; CUDA: float16/
  // bfloat16 with 16-byte aligned rows (pointers 16-byte aligned, strides multiples of 8 elements).
  const void* q = nullptr;
  const void* k = nullptr;
  int64_t q_batch_stride = 0, q_head_stride = 0, q_row_stride = 0;
  int64_t k_batch_stride = 0, k_head_stride = 0, k_row_stride = 0;
  DType dtype = DType::kBFloat16;
  int32_t batch = 0, heads_q = 0, heads_k = 0, seq_len = 0, head_dim = 0;

  // ---- options (spec 6.1 names in comments) ----
  int32_t block_size = 128;    // block_size: 64 or 128
  int32_t segment_size = 256;  // segment_size: a multiple of block_size, <= 8192
  float threshold = 0.9f;      // threshold tau in (0, 1]; 1 selects every causal candidate
  float softmax_scale = 0.f;   // softmax_scale; 0 = 1/sqrt(head_dim)
  PbsGqaMode gqa_mode = PbsGqaMode::kShared;
  int32_t proxy_rows = 0;      // proxy_rows R; 0 = block_size; capped at seq_len
  bool proxy_causal = false;   // mask key j > query position N-R+r in the proxy softmax
  bool force_sink = true;      // always keep the key block that holds original token 0
  PbsPool pool = PbsPool::kMean;
  PbsSelector selector = PbsSelector::kMeanPool;
  int32_t antidiag_stride = 8;  // XAttention stride S_x in {4, 8, 16}, block_size/S_x <= 16

  // ---- stage buffers (device memory for sk::cuda, host memory for sk::cpu) ----
  float* scores = nullptr;      // [batch, perm_heads, P]          stage 1 out, stage 2 in
  int32_t* perm = nullptr;      // [batch, perm_heads, seq_len]    stage 2 out; attention key_perm
  int32_t* inv_perm = nullptr;  // [batch, perm_heads, seq_len]    stage 2 out (inv_perm[perm[x]] = x)
  float* qbar = nullptr;        // [batch, heads_q, T, head_dim]   stage 3 out (meanpool only)
  float* kbar = nullptr;        // [batch, perm_heads, T, head_dim] stage 3 out (meanpool only)
  int32_t* full_cnt = nullptr;  // [batch, heads_q, T]             stage 4/5 out
  int32_t* full_idx = nullptr;  // [batch, heads_q, T, T]
  int32_t* mask_cnt = nullptr;  // [batch, heads_q, T]
  int32_t* mask_idx = nullptr;  // [batch, heads_q, T, S/B + 1]
  int32_t* kept_blocks = nullptr;  // [batch, heads_q], optional: per-head kept-block totals (stats)
};

// Sizes derived from PbsParams (valid once check_pbs_params passed).
struct PbsDims {
  int32_t group = 1;               // G = heads_q / heads_k
  int32_t perm_heads = 0;          // Hp: heads_k (kShared) or heads_q (kPerQueryHead)
  int32_t num_blocks = 0;          // T = ceil(N / B)
  int32_t permuted_len = 0;        // P = floor(N / S) * S
  int32_t num_segments = 0;        // P / S (complete, permuted segments)
  int32_t blocks_per_segment = 0;  // S / B
  int32_t proxy_rows = 0;          // R, resolved (default B, capped at N)
  int32_t max_blocks = 0;          // full_idx row stride = T
  int32_t mask_max_blocks = 0;     // mask_idx row stride = S/B + 1
  int32_t q_per_perm_head = 1;     // query heads sharing one permutation head: G (kShared) or 1
  int32_t perm_per_kv_head = 1;    // permutation heads reading one KV head: 1 (kShared) or G
  float scale = 0.f;               // resolved softmax scale
  int32_t perm_head_of_q_head(int32_t hq) const { return hq / q_per_perm_head; }
  int32_t kv_head_of_perm_head(int32_t hp) const { return hp / perm_per_kv_head; }
};

PbsDims pbs_dims(const PbsParams& p);

// Which buffers a call reads and writes, for check_pbs_params.
enum class PbsStage : int32_t {
  kProxy,         // q, k -> scores
  kPermute,       // scores -> perm, inv_perm
  kPool,          // q, k, perm -> qbar, kbar
  kSelect,        // meanpool: qbar, kbar, inv_perm -> layout; antidiagonal: q, k, perm, inv_perm -> layout
  kPlan,          // q, k -> perm, layout (scores, inv_perm, qbar, kbar may be null: scratch is used)
};

// Validates what memory safety depends on: shapes, options, strides, alignment (CUDA) and the buffers the
// stage touches. Returns kInvalidArgument with a message naming the field.
Status check_pbs_params(const PbsParams& p, PbsStage stage, bool for_cuda);

// Spec 6.3 step 1: dense causal attention instead of PBS when N <= max(S, min_seq_len).
inline bool pbs_use_dense_fallback(int64_t seq_len, int32_t segment_size, int32_t min_seq_len) {
  const int64_t limit = segment_size > min_seq_len ? segment_size : min_seq_len;
  return seq_len <= limit;
}

// The layout the select stage wrote, as the attention kernel reads it.
BlockLayoutView pbs_layout_view(const PbsParams& p);

// Kept blocks over the causal block count T(T+1)/2 (spec 6.3 step 8). Can exceed 1 at threshold 1
// because own-segment blocks above the diagonal are computed (token-masked) too.
double pbs_density(int64_t kept_blocks, int32_t num_blocks);

namespace cpu {
// Synchronous; parallel over sk::core::parallel_for.
Status pbs_proxy_scores(const PbsParams& p);
Status pbs_permute(const PbsParams& p);
Status pbs_pool_blocks(const PbsParams& p);
Status pbs_select_meanpool(const PbsParams& p);
Status pbs_select_antidiagonal(const PbsParams& p);
Status pbs_select(const PbsParams& p);  // dispatches on p.selector
// Stages 1-3 (3 only for meanpool) then 4|5. Null scores/inv_perm/qbar/kbar use internal scratch.
Status pbs_plan(const PbsParams& p);
}  // namespace cpu

namespace cuda {
// Enqueue on `stream`; return launch errors. Scratch is stream-ordered (cudaMallocAsync/FreeAsync).
Status pbs_proxy_scores(const PbsParams& p, GpuStream stream);
Status pbs_permute(const PbsParams& p, GpuStream stream);
Status pbs_pool_blocks(const PbsParams& p, GpuStream stream);
Status pbs_select_meanpool(const PbsParams& p, GpuStream stream);
Status pbs_select_antidiagonal(const PbsParams& p, GpuStream stream);
Status pbs_select(const PbsParams& p, GpuStream stream);
Status pbs_plan(const PbsParams& p, GpuStream stream);
}  // namespace cuda

}  // namespace sk
