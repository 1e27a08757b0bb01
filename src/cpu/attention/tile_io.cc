// User tensors <-> fp32 tiles (see tile_io.h).
//
// Cost model: every K/V row of a key tile is copied (float32) or converted (float16/bfloat16) into the
// tile buffers once per (query tile, key tile): 2 n d element moves against 4 m n d flops of tile math,
// 1 / (2 m) of the arithmetic. Measured on one Zen 5 core, dense causal: ~6% of the time (mostly the
// memory latency of rows not yet in cache; prefetch_kv hides part of it), so a cross-head cache of
// converted (b, kv head, key block) tiles would save at most that and is not done. float32 rows are
// copied too: reading them in place was not faster, and one path serves every dtype and stride. The
// query tile goes through a blocked transpose; the output uses the exact scalar conversions of
// core/half.h (once per output element).
#include "cpu/attention/tile_io.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/half.h"

namespace sk::cpu::attn {
namespace {

inline const void* row_ptr(const HeadRows& t, int64_t row) {
  return static_cast<const char*>(t.base) + row * t.row_stride * static_cast<int64_t>(dtype_size(t.dtype));
}

// One K or V row into the tile buffer dst, as fp32.
inline void copy_row(const HeadRows& t, int64_t row, int head_dim, float* dst) {
  const void* src = row_ptr(t, row);
  switch (t.dtype) {
    case DType::kFloat16: f16_to_f32(static_cast<const uint16_t*>(src), dst, head_dim); break;
    case DType::kBFloat16: bf16_to_f32(static_cast<const uint16_t*>(src), dst, head_dim); break;
    default: std::memcpy(dst, src, static_cast<size_t>(head_dim) * sizeof(float)); break;
  }
}

}  // namespace

void load_q_tile(const HeadRows& q, int64_t q0, int m, int m_pad, int head_dim, float scale, float* rows,
                 float* qt) {
  for (int i = 0; i < m; ++i) copy_row(q, q0 + i, head_dim, rows + static_cast<int64_t>(i) * head_dim);
  transpose_scaled(rows, m, head_dim, scale, qt, m_pad);
  for (int d = 0; d < head_dim; ++d)
    for (int i = m; i < m_pad; ++i) qt[static_cast<int64_t>(d) * m_pad + i] = 0.f;
}

void gather_kv(const HeadRows& k, const HeadRows& v, const int32_t* key_perm, int32_t seq_k, int64_t k0,
               int n, int head_dim, float* k_buf, float* v_buf, KvTile* tile) {
  for (int j = 0; j < n; ++j) {
    int32_t src = static_cast<int32_t>(k0 + j);
    if (key_perm != nullptr) {
      // Values were validated on the host (check_key_perm_host); clamping keeps a bad permutation
      // from reading outside K/V, whatever the caller did.
      src = std::clamp<int32_t>(key_perm[k0 + j], 0, seq_k - 1);
    }
    tile->pos[j] = src;
    float* k_dst = k_buf + static_cast<int64_t>(j) * head_dim;
    float* v_dst = v_buf + static_cast<int64_t>(j) * head_dim;
    copy_row(k, src, head_dim, k_dst);
    copy_row(v, src, head_dim, v_dst);
    tile->k_rows[j] = k_dst;
    tile->v_rows[j] = v_dst;
  }
}

void prefetch_kv(const HeadRows& k, const HeadRows& v, const int32_t* key_perm, int32_t seq_k, int64_t k0, int n,
                 int head_dim) {
  const int64_t row_bytes = static_cast<int64_t>(head_dim) * static_cast<int64_t>(dtype_size(k.dtype));
  for (int j = 0; j < n; ++j) {
    int64_t src = k0 + j;
    if (key_perm != nullptr) src = std::clamp<int32_t>(key_perm[k0 + j], 0, seq_k - 1);
    const char* kr = static_cast<const char*>(row_ptr(k, src));
    const char* vr = static_cast<const char*>(row_ptr(v, src));
    for (int64_t off = 0; off < row_bytes; off += 64) {
      __builtin_prefetch(kr + off, 0, 2);
      __builtin_prefetch(vr + off, 0, 2);
    }
  }
}

void store_out_tile(void* out, int64_t out_row_stride, DType dtype, float* lse, int64_t q0, int m,
                    int head_dim, const float* o, const float* m_run, const float* l_run) {
  const float ln2 = 0.693147180559945309f;
  const int64_t esize = static_cast<int64_t>(dtype_size(dtype));
  for (int i = 0; i < m; ++i) {
    // l == 0 only when no key was kept for this query: out = 0, lse = -inf (the contract).
    const float l = l_run[i];
    const float inv_l = l == 0.f ? 0.f : 1.f / l;
    const float* src = o + static_cast<int64_t>(i) * head_dim;
    void* row = static_cast<char*>(out) + (q0 + i) * out_row_stride * esize;
    switch (dtype) {
      case DType::kFloat16:
        for (int d = 0; d < head_dim; ++d) static_cast<uint16_t*>(row)[d] = float_to_half(src[d] * inv_l);
        break;
      case DType::kBFloat16:
        for (int d = 0; d < head_dim; ++d) static_cast<uint16_t*>(row)[d] = float_to_bf16(src[d] * inv_l);
        break;
      default:
        for (int d = 0; d < head_dim; ++d) static_cast<float*>(row)[d] = src[d] * inv_l;
        break;
    }
    if (lse != nullptr)
      lse[q0 + i] = l == 0.f ? -std::numeric_limits<float>::infinity() : ln2 * (m_run[i] + std::log2(l));
  }
}

}  // namespace sk::cpu::attn
