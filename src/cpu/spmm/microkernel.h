// Register-tiled float32 micro-kernels of the CPU SpMM / dense linear paths.
//
// The output is computed transposed, as tiles acc[rows][NT] of Y^T (rows = output features m, NT = a
// panel of tokens n): X is packed per panel as X^T [Kp][NT] (a weight column k meets one contiguous panel
// row), so the inner step is a broadcast-FMA of one weight against NT/16 vectors of 16 tokens. Four rows
// share every panel load; on AVX-512 with NT = 64 that is 16 accumulators + 4 loads, ~95% of one core's
// FMA peak in isolation (measured on the dev box: 208 GFLOP/s single core).
//
// Bodies use GCC vector extensions (not intrinsics): a plain-array version kept its accumulators on the
// stack (120 GFLOP/s), the vector types keep them in registers for every SK_CPU_DISPATCH clone
// (zmm on x86-64-v4, split into ymm/xmm pairs on v3 / default).
#pragma once
#include <cstdint>

namespace sk::cpu::spmm_detail {

// Panel widths (tokens per panel) with a compiled micro-kernel.
inline constexpr int kPanelWidths[] = {16, 32, 64};

// The widest panel the running CPU keeps in registers: 64 with AVX-512 (32 vector registers), else 16.
int preferred_panel_width();

// Block-CSR row group: acc[r][j] += sum over blocks b < nblk, k < bk of
//   w[b * w_block_stride + r * w_row_stride + k] * panel[(cols[b] * bk + k) * NT + j]
// for r < rows (rows = 4 or 1), j < NT. acc is [rows][NT] with row stride NT, accumulated in place.
// Blocks are visited in list order, k ascending: the reduction order is fixed by col_idx.
void bsr_rows(int rows, int nt, float* acc, const float* w, int64_t w_block_stride, int64_t w_row_stride,
              const int32_t* cols, int64_t nblk, int bk, const float* panel);

// Dense row group: acc[r][j] += sum_{k < depth} w[r * w_row_stride + k] * panel[k * NT + j].
void dense_rows(int rows, int nt, float* acc, const float* w, int64_t w_row_stride, const float* panel,
                int64_t depth);

// GEMV of one block row: acc[i] += sum_b sum_k w[b][i][k] * x[cols[b] * bk + k], i < bm; w is [nblk][bm][bk].
void bsr_gemv_row(float* acc, const float* w, int bm, int bk, const int32_t* cols, int64_t nblk, const float* x);

// Dot product with a fixed order (16 lanes, then a fixed tree, then the tail).
float dot(const float* a, const float* b, int64_t n);

}  // namespace sk::cpu::spmm_detail
