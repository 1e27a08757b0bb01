// Block-sparse FlashAttention forward: the contract between the bindings and the two backends.
//
// out[b, h, i, :] = softmax_j(scale * q[b,h,i,:] . k[b,h/G,j,:] over the kept keys j) @ v[b,h/G,j,:]
// where G = heads_q / heads_k (GQA without replicating K/V) and the kept keys are:
//  - every key of the *full* key blocks listed for (b, h, i / block_size): no per-token mask at all;
//  - the keys of the *masked* key blocks for which keep(i, j) holds:
//      j < seq_k  and, when causal,  pos(j) <= i + (seq_k - seq_q)
//    with pos(j) = key_perm[b, hp, j] when a key permutation is given, else j.
// With a key permutation (PBS), key slot j of K/V is read from row key_perm[b, hp, j] of k and v: the
// kernels gather permuted keys on the fly instead of materialising permuted copies.
// hp = h when key_perm_heads == heads_q, else h / G (one permutation per KV head).
// A query row with no kept key gets out = 0 and lse = -inf (it cannot happen with the PBS layouts,
// which always include the query's own block).
//
// lse[b, h, i] = natural log of sum_j exp(scale * q.k_j) over the kept keys (FlashAttention convention),
// so chunked results merge as out = sum_c exp(lse_c - lse) out_c.
#pragma once
#include <cstdint>

#include "ops/common.h"

namespace sk {

struct AttentionParams {
  // Tensors: q [batch, heads_q, seq_q, head_dim], k and v [batch, heads_k, seq_k, head_dim], out like q.
  // Element strides; the last dimension is contiguous.
  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  void* out = nullptr;
  float* lse = nullptr;  // optional [batch, heads_q, seq_q] float32
  int64_t q_batch_stride = 0, q_head_stride = 0, q_row_stride = 0;
  int64_t k_batch_stride = 0, k_head_stride = 0, k_row_stride = 0;
  int64_t v_batch_stride = 0, v_head_stride = 0, v_row_stride = 0;
  int64_t o_batch_stride = 0, o_head_stride = 0, o_row_stride = 0;

  DType dtype = DType::kFloat16;  // q, k, v and out share it: float16 or bfloat16 on CUDA; any float on CPU
  int32_t batch = 0, heads_q = 0, heads_k = 0, seq_q = 0, seq_k = 0, head_dim = 0;
  float softmax_scale = 0.f;  // usually 1/sqrt(head_dim)
  bool causal = false;

  BlockLayoutView layout;

  // Optional key permutation [batch, key_perm_heads, seq_k], int32, values a permutation of [0, seq_k).
  const int32_t* key_perm = nullptr;
  int32_t key_perm_heads = 0;  // heads_k or heads_q
};

// Validates what memory safety depends on (shapes, strides, layout dimensions). Index *values* are
// validated by the caller before the op is enqueued (lib/attention validates host layouts; device
// layouts produced by our own PBS kernels are in range by construction and the kernels clamp anyway).
Status check_attention_params(const AttentionParams& p, bool for_cuda);

// Host-side checks of index *values*, run on host copies of user input before any kernel (both
// backends; the kernels clamp indices anyway, so a bad value can give a wrong result but never an
// out-of-bounds access). Messages name the offending (batch, head, query block, position) and value.
// Layout rows: counts in [0, max_blocks] (full) / [0, mask_max_blocks] (masked) with full + masked <=
// k_blocks; indices in [0, k_blocks), strictly ascending in each list; no block in both lists of a row.
Status check_block_layout_host(const BlockLayoutView& l);
// Every row of perm [batch, heads, seq_k] is a permutation of [0, seq_k).
Status check_key_perm_host(const int32_t* perm, int batch, int heads, int seq_k);

namespace cpu {
Status attention_fwd(const AttentionParams& p);
}  // namespace cpu

namespace cuda {
// Enqueues the kernel on `stream`; returns launch errors. Requires dtype float16/bfloat16 and
// head_dim in {64, 128} (256 where built).
Status attention_fwd(const AttentionParams& p, GpuStream stream);
}  // namespace cuda

}  // namespace sk
