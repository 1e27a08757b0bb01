#include "cpu/pbs/common.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/half.h"
#include "core/thread_pool.h"
#include "cpu/common/simd.h"

namespace sk::cpu::pbs_detail {

namespace {

SK_CPU_DISPATCH void bf16_row_to_f32(const uint16_t* SK_RESTRICT src, float* SK_RESTRICT out, int n) {
  // bf16 is the top half of a float32: a shift, which vectorises.
  for (int i = 0; i < n; ++i) {
    const uint32_t u = static_cast<uint32_t>(src[i]) << 16;
    std::memcpy(out + i, &u, 4);
  }
}

}  // namespace

void load_row_f32(const void* base, DType dt, int64_t offset, int n, float* out) {
  switch (dt) {
    case DType::kFloat32:
      std::memcpy(out, static_cast<const float*>(base) + offset, sizeof(float) * static_cast<size_t>(n));
      return;
    case DType::kBFloat16:
      bf16_row_to_f32(static_cast<const uint16_t*>(base) + offset, out, n);
      return;
    case DType::kFloat16: {
      const uint16_t* src = static_cast<const uint16_t*>(base) + offset;
      for (int i = 0; i < n; ++i) out[i] = half_to_float(src[i]);
      return;
    }
    default:
      std::fill(out, out + n, 0.f);  // unreachable: check_pbs_params admits float dtypes only
  }
}

SK_CPU_DISPATCH float dot_f32(const float* SK_RESTRICT a, const float* SK_RESTRICT b, int n) {
  // 16 independent partial sums: an element-wise loop GCC vectorises at -O3 without reassociating a
  // single reduction (which it only does under -ffast-math).
  float acc[16] = {0.f};
  int i = 0;
  for (; i + 16 <= n; i += 16)
    for (int l = 0; l < 16; ++l) acc[l] += a[i + l] * b[i + l];
  float tail = 0.f;
  for (; i < n; ++i) tail += a[i] * b[i];
  float s = 0.f;
  for (int l = 0; l < 16; ++l) s += acc[l];
  return s + tail;
}

SK_CPU_DISPATCH void axpy_f32(float a, const float* SK_RESTRICT x, float* SK_RESTRICT y, int n) {
  for (int j = 0; j < n; ++j) y[j] += a * x[j];
}

SK_CPU_DISPATCH float sum_f32(const float* SK_RESTRICT x, int n) {
  float acc[16] = {0.f};
  int i = 0;
  for (; i + 16 <= n; i += 16)
    for (int l = 0; l < 16; ++l) acc[l] += x[i + l];
  float tail = 0.f;
  for (; i < n; ++i) tail += x[i];
  float s = 0.f;
  for (int l = 0; l < 16; ++l) s += acc[l];
  return s + tail;
}

SK_CPU_DISPATCH void exp_f32(float* SK_RESTRICT x, int n) {
  // exp(v) = 2^k * exp(r), k = round(v log2 e), r = v - k ln2 (ln2 split in two for an exact product),
  // exp(r) on |r| <= ln2/2 by the Cephes degree-7 polynomial. Branch-free so it vectorises.
  for (int i = 0; i < n; ++i) {
    const float v = x[i];
    float c = v < -87.33f ? -87.33f : v;  // ternaries, not fmin/fmax/nearbyint: those stay scalar calls
    c = c > 88.72f ? 88.72f : c;
    // Round to nearest through the 1.5 * 2^23 magic constant (exact in IEEE fp32 without -ffast-math).
    const float k = (c * 1.44269504088896341f + 12582912.f) - 12582912.f;
    const float r = (c - k * 0.693359375f) + k * 2.12194440e-4f;
    const float z = r * r;
    float y = 1.9875691500e-4f;
    y = y * r + 1.3981999507e-3f;
    y = y * r + 8.3334519073e-3f;
    y = y * r + 4.1665795894e-2f;
    y = y * r + 1.6666665459e-1f;
    y = y * r + 5.0000001201e-1f;
    y = y * z + r + 1.0f;
    const uint32_t bits = static_cast<uint32_t>(static_cast<int32_t>(k) + 127) << 23;
    float scale;
    std::memcpy(&scale, &bits, 4);
    float e = y * scale;
    e = v < -87.33f ? 0.f : e;                                       // underflow, and exp(-inf) = 0
    e = v > 88.72f ? std::numeric_limits<float>::infinity() : e;  // overflow
    x[i] = v != v ? v : e;                                           // NaN stays NaN
  }
}

SK_CPU_DISPATCH void rows_times_kt(const float* SK_RESTRICT a, int rows, int D, const float* SK_RESTRICT kt,
                                   int64_t ldk, int kc, float* SK_RESTRICT out) {
  constexpr int kR = 4, kJ = 32;
  for (int r0 = 0; r0 < rows; r0 += kR) {
    for (int j0 = 0; j0 < kc; j0 += kJ) {
      if (r0 + kR <= rows && j0 + kJ <= kc) {
        float acc[kR][kJ] = {};
        for (int d = 0; d < D; ++d) {
          const float* k = kt + d * ldk + j0;
          for (int rr = 0; rr < kR; ++rr) {
            const float q = a[static_cast<size_t>(r0 + rr) * D + d];
            for (int l = 0; l < kJ; ++l) acc[rr][l] += q * k[l];
          }
        }
        for (int rr = 0; rr < kR; ++rr)
          for (int l = 0; l < kJ; ++l) out[static_cast<size_t>(r0 + rr) * kc + j0 + l] = acc[rr][l];
      } else {  // edge tile
        for (int rr = r0; rr < std::min(r0 + kR, rows); ++rr)
          for (int l = j0; l < std::min(j0 + kJ, kc); ++l) {
            float acc = 0.f;
            for (int d = 0; d < D; ++d) acc += a[static_cast<size_t>(rr) * D + d] * kt[d * ldk + l];
            out[static_cast<size_t>(rr) * kc + l] = acc;
          }
      }
    }
  }
}

int32_t select_and_emit(const float* prob, int32_t ncand, const SelectRow& row, SelectScratch& scratch,
                        int32_t* full_idx_row, int32_t* full_cnt, int32_t* mask_idx_row, int32_t* mask_cnt) {
  auto& flag = scratch.flag;
  flag.assign(static_cast<size_t>(ncand), 0);
  if (ncand > 0) {
    int32_t take = ncand;  // threshold >= 1, or cumsum never reaching it (round-off): everything
    if (row.threshold < 1.f) {
      auto& keys = scratch.keys;
      keys.resize(static_cast<size_t>(ncand));
      for (int32_t j = 0; j < ncand; ++j) keys[j] = desc_key(prob[j], static_cast<uint32_t>(j));
      std::sort(keys.begin(), keys.end());  // keys are unique: this is the stable order
      float cum = 0.f;
      for (int32_t r = 0; r < ncand; ++r) {
        cum += desc_key_value(keys[r]);
        if (cum >= row.threshold) {
          take = r + 1;
          break;
        }
      }
      for (int32_t r = 0; r < take; ++r) flag[desc_key_index(keys[r])] = 1;
    } else {
      std::fill(flag.begin(), flag.end(), 1);
    }
    if (row.sink_block >= 0 && row.sink_block < ncand) flag[row.sink_block] = 1;
  }
  // Full list: selected off-segment blocks without padding, ascending (flag order is ascending).
  int32_t nf = 0, nm = 0;
  for (int32_t j = 0; j < ncand; ++j)
    if (flag[j] && j != row.pad_block) full_idx_row[nf++] = j;
  // Masked list: a selected padding block (always below the own segment), then the own segment.
  if (row.pad_block >= 0 && row.pad_block < ncand && flag[row.pad_block]) mask_idx_row[nm++] = row.pad_block;
  const int32_t seg_begin = (row.i / row.blocks_per_segment) * row.blocks_per_segment;
  const int32_t seg_end = std::min(seg_begin + row.blocks_per_segment, row.num_blocks);
  for (int32_t j = seg_begin; j < seg_end; ++j) mask_idx_row[nm++] = j;
  *full_cnt = nf;
  *mask_cnt = nm;
  return nf + nm;
}

SelectRow make_select_row(const PbsParams& p, const PbsDims& d, int32_t b, int32_t hq, int32_t i) {
  SelectRow row;
  row.i = i;
  row.num_blocks = d.num_blocks;
  row.blocks_per_segment = d.blocks_per_segment;
  row.pad_block = (p.seq_len % p.block_size != 0) ? d.num_blocks - 1 : -1;
  row.threshold = p.threshold;
  if (p.force_sink && i / d.blocks_per_segment > 0) {
    const int32_t hp = d.perm_head_of_q_head(hq);
    const int64_t base = (static_cast<int64_t>(b) * d.perm_heads + hp) * p.seq_len;
    row.sink_block = p.inv_perm[base] / p.block_size;
  }
  return row;
}

Status check_perm_values(const PbsParams& p, const PbsDims& d) {
  const int64_t n = static_cast<int64_t>(p.batch) * d.perm_heads * p.seq_len;
  for (int64_t x = 0; x < n; ++x)
    if (p.perm[x] < 0 || p.perm[x] >= p.seq_len)
      return Status::Invalid("pbs: perm[" + std::to_string(x) + "] = " + std::to_string(p.perm[x]) +
                             " is outside [0, seq_len)");
  return Status::Ok();
}

void sum_kept_blocks(const PbsParams& p, const PbsDims& d) {
  if (p.kept_blocks == nullptr) return;
  const int64_t T = d.num_blocks;
  for (int64_t bh = 0; bh < static_cast<int64_t>(p.batch) * p.heads_q; ++bh) {
    int64_t kept = 0;
    for (int64_t i = 0; i < T; ++i) kept += p.full_cnt[bh * T + i] + p.mask_cnt[bh * T + i];
    p.kept_blocks[bh] = static_cast<int32_t>(kept);
  }
}

}  // namespace sk::cpu::pbs_detail
