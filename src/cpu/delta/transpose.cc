// W [M, K] row-major -> Wt [K, wt_ld] row-major (CPU), done once when a DeltaLinear is built: the step
// then reads "column k of W" as one contiguous row of Wt.
#include <algorithm>
#include <cstring>

#include "core/thread_pool.h"
#include "ops/delta.h"

namespace sk::cpu {

namespace {

// 64 x 64 tiles: one tile of 4-byte elements reads 64 rows of 256 B and writes 64 rows of 256 B, which
// both stay in L1 while the tile is swapped.
constexpr int64_t kTile = 64;

template <typename T>
void transpose_rows(const T* w, int32_t M, int32_t K, T* wt, int64_t ld, int64_t k_begin, int64_t k_end) {
  for (int64_t k0 = k_begin; k0 < k_end; k0 += kTile) {
    const int64_t k1 = std::min<int64_t>(k_end, k0 + kTile);
    for (int64_t m0 = 0; m0 < M; m0 += kTile) {
      const int64_t m1 = std::min<int64_t>(M, m0 + kTile);
      for (int64_t k = k0; k < k1; ++k) {
        T* out = wt + k * ld;
        for (int64_t m = m0; m < m1; ++m) out[m] = w[m * K + k];
      }
    }
    for (int64_t k = k0; k < k1; ++k) std::fill(wt + k * ld + M, wt + (k + 1) * ld, T(0));
  }
}

}  // namespace

Status delta_transpose_weights(const void* w, DType dtype, int32_t M, int32_t K, void* wt, int64_t wt_ld) {
  if (!is_valid_dtype(static_cast<int>(dtype)) || !is_float_dtype(dtype)) {
    return Status::Invalid("delta transpose: weights must be float32, float16 or bfloat16");
  }
  if (M < 0 || K < 0 || wt_ld < M) return Status::Error(ErrorCode::kShape, "delta transpose: bad M, K or wt_ld");
  if (K == 0) return Status::Ok();
  if (wt == nullptr || (M > 0 && w == nullptr)) return Status::Invalid("delta transpose: null pointer");
  const int64_t blocks = (K + kTile - 1) / kTile;
  core::parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
    const int64_t kb = b0 * kTile, ke = std::min<int64_t>(K, b1 * kTile);
    if (dtype == DType::kFloat32) {
      transpose_rows(static_cast<const uint32_t*>(w), M, K, static_cast<uint32_t*>(wt), wt_ld, kb, ke);
    } else {
      transpose_rows(static_cast<const uint16_t*>(w), M, K, static_cast<uint16_t*>(wt), wt_ld, kb, ke);
    }
  });
  return Status::Ok();
}

}  // namespace sk::cpu
