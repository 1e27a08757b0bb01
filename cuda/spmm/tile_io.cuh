// Where a kernel's tiles come from: the weight sources (block-CSR or dense) and the launch parameters
// shared by the SpMM kernels. Every index read from device memory is clamped into range: the host
// validates user CSR before upload (sk::check_bsr_structure), the clamps keep a bad array from ever
// turning into an out-of-bounds access.
#pragma once
#include <cstdint>

namespace sk::cuda::spmm_kernels {

__device__ __forceinline__ int clamp_int(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

// Weights from block-CSR: output tile r = block row r; its K tiles are the row's stored blocks.
template <typename T>
struct BsrSource {
  const T* values = nullptr;           // [nnzb, bm, bk]
  const int32_t* row_ptr = nullptr;    // [mb + 1]
  const int32_t* col_idx = nullptr;    // [nnzb]
  const int32_t* row_order = nullptr;  // [mb] or null
  int32_t mb = 0, kb = 0, nnzb = 0;

  __device__ int tile_row(int slot) const { return row_order ? clamp_int(__ldg(row_order + slot), 0, mb - 1) : slot; }
  __device__ void range(int r, int* begin, int* end) const {
    *begin = clamp_int(__ldg(row_ptr + r), 0, nnzb);
    *end = clamp_int(__ldg(row_ptr + r + 1), *begin, nnzb);
  }
  __device__ int col(int j) const { return clamp_int(__ldg(col_idx + j), 0, kb - 1); }
  // Element (row, kk) of tile j of a bm x bk tiling: a full stored block (padding is stored as zeros),
  // always valid.
  __device__ const T* tile_ptr(int /*r*/, int j, int row, int kk, int bm, int bk, bool* valid) const {
    *valid = true;
    return values + (static_cast<int64_t>(j) * bm + row) * bk + kk;
  }
};

// Weights from a dense W [m, k] (row stride ldw): output tile r covers rows r * kBM ..; K tile j = columns
// j * kBK ... Out-of-range rows / columns read as zeros. Used by dense_linear.
template <typename T>
struct DenseSource {
  const T* w = nullptr;
  int64_t ldw = 0;
  int32_t m = 0, k = 0;
  int32_t k_tiles = 0;  // ceil(k / kBK)

  __device__ int tile_row(int slot) const { return slot; }
  __device__ void range(int /*r*/, int* begin, int* end) const {
    *begin = 0;
    *end = k_tiles;
  }
  __device__ int col(int j) const { return j; }
  // Element (row, kk) of tile (r, j) of a bm x bk tiling; valid when inside [m, k] (callers copying
  // 8-element chunks guarantee k % 8 == 0, so a chunk is all in or all out).
  __device__ const T* tile_ptr(int r, int j, int row, int kk, int bm, int bk, bool* valid) const {
    const int64_t gm = static_cast<int64_t>(r) * bm + row, gk = static_cast<int64_t>(j) * bk + kk;
    *valid = gm < m && gk < k;
    return *valid ? w + gm * ldw + gk : w;
  }
};

// Launch parameters of the SpMM / dense linear kernels (passed by value).
template <typename T, class Source>
struct LinearParams {
  const T* x = nullptr;     // [n, k], row stride ldx
  T* y = nullptr;           // [n, m], row stride ldy
  const T* bias = nullptr;  // [m] or null
  int64_t ldx = 0, ldy = 0;
  int32_t n = 0, m = 0, k = 0;
  int32_t activation = 0;  // sk::Activation
  int32_t num_tiles_m = 0;  // output tiles along m (block rows, or dense row tiles)
  bool y_pairs = false;     // y rows allow aligned 2-element stores (even ldy, 4-byte aligned y)
  Source src;
};

}  // namespace sk::cuda::spmm_kernels
