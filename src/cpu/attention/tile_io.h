// Moving data between the user's tensors (any float dtype, any row stride, optional key permutation)
// and the fp32 tiles of tile_ops.h.
#pragma once
#include <cstdint>

#include "core/dtype.h"
#include "cpu/attention/tile_ops.h"

namespace sk::cpu::attn {

// One (batch, head) slice of q, k or v: rows of head_dim contiguous elements.
struct HeadRows {
  const void* base = nullptr;
  int64_t row_stride = 0;  // elements
  DType dtype = DType::kFloat32;
};

// qt[d * m_pad + i] = scale * q[q0 + i][d] for i < m, 0 for m <= i < m_pad (padded queries).
// rows: m x head_dim floats of working space (the rows as fp32 before the transpose).
void load_q_tile(const HeadRows& q, int64_t q0, int m, int m_pad, int head_dim, float scale, float* rows,
                 float* qt);

// Key slots [k0, k0 + n) of one KV head: pos[j] = key_perm[k0 + j] (clamped to [0, seq_k)) or k0 + j,
// k_rows[j] / v_rows[j] point at fp32 rows pos[j] of K / V. float32 rows are used in place; 16-bit
// rows are converted into k_buf / v_buf (n x head_dim floats each), once per key tile.
struct KvTile {
  const float* k_rows[kMaxTile];
  const float* v_rows[kMaxTile];
  int32_t pos[kMaxTile];
};
void gather_kv(const HeadRows& k, const HeadRows& v, const int32_t* key_perm, int32_t seq_k, int64_t k0,
               int n, int head_dim, float* k_buf, float* v_buf, KvTile* tile);

// Hints the caches to fetch the K/V rows of the next key tile (same arguments as gather_kv) while the
// current one is computed: gather_kv then copies from L2 instead of waiting on memory.
void prefetch_kv(const HeadRows& k, const HeadRows& v, const int32_t* key_perm, int32_t seq_k, int64_t k0, int n,
                 int head_dim);

// out rows (one (batch, head) slice of out, out_row_stride elements apart):
// out[q0 + i] = o[i] / l[i] (0 when l[i] == 0: no kept key) in the output dtype, rounded to nearest
// even; lse[q0 + i] = ln(2) * (m[i] + log2(l[i])), or -inf without a kept key. lse may be null.
void store_out_tile(void* out, int64_t out_row_stride, DType dtype, float* lse, int64_t q0, int m,
                    int head_dim, const float* o, const float* m_run, const float* l_run);

}  // namespace sk::cpu::attn
