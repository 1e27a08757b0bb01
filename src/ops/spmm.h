// Block-sparse weight SpMM: the contract between the bindings and the two backends.
//
//   Y[n, m] = act( sum_k X[n, k] * W[m, k] + bias[m] )        (nn.Linear convention: Y = X . W^T + b)
//
// W [M, K] (out x in) is stored in block-CSR (BlockCsrView) with blocks of bm x bk; X [N, K] and Y [N, M]
// are row-major with a row stride. x, W values, bias and y share one dtype (float32, float16 or bfloat16);
// accumulation is float32 always and the output is rounded once to the dtype. The activation is fused in the
// epilogue (sk::Activation: none, relu (NaN stays NaN), gelu = exact form x * Phi(x), silu). GELU is
// evaluated through erfc, never 1 + erf (which cancels for x << 0): CUDA uses normcdff; the CPU uses a
// vectorised erfc / exp (relative error <= 1e-6 for |x| < 5, <= 2e-5 up to |x| = 12).
//
// Reduction order: for one output element the products are summed block by block in col_idx order (inside
// a block the order is fixed by the kernel), so results are bitwise deterministic for a fixed backend,
// block shape and N bucket. No atomics anywhere.
//
// Padding: M and K need not be multiples of the block. Mb = ceil(M / bm), Kb = ceil(K / bk); the last block
// row / column is stored padded with zeros (values are always full bm x bk blocks). Outputs are written for
// m < M only, and X is read for k < K only: padded weight columns meet no activation data at all.
//
// Where validation happens:
//  - check_bsr_structure (host arrays) is the gate for row_ptr / col_idx / row_order *values*: the builders
//    below produce valid arrays; user-given CSR must pass it before it is uploaded to a device. The CPU
//    entry points run it on every call (it is O(Mb + nnzb), far below the op's cost).
//  - check_spmm_params / check_dense_linear_params re-check shapes, strides, pointers and block shapes,
//    what memory safety depends on. The CUDA entry points run them; device index arrays cannot be read on
//    the host, so the CUDA kernels additionally clamp every index they load (wrong but never out of bounds
//    if unvalidated arrays ever reached them).
#pragma once
#include <cstdint>

#include "ops/common.h"

namespace sk {

// A block-CSR matrix; arrays live on the device of the op that reads it (host for sk::cpu, device for
// sk::cuda). Construction functions below fill the same arrays on the host.
struct BlockCsrView {
  int32_t rows = 0, cols = 0;  // M, K (logical, unpadded)
  int32_t bm = 0, bk = 0;      // block shape (rows x cols). CPU: any >= 1; CUDA: each in {16, 32, 64}
  int32_t mb = 0, kb = 0;      // block rows / block columns: ceil(M / bm), ceil(K / bk)
  int64_t nnzb = 0;            // stored blocks (<= INT32_MAX: indices are int32)
  const int32_t* row_ptr = nullptr;    // [mb + 1], row_ptr[0] = 0, monotone, row_ptr[mb] = nnzb
  const int32_t* col_idx = nullptr;    // [nnzb], block columns, strictly ascending inside a block row
  const void* values = nullptr;        // [nnzb, bm, bk] in the op's dtype, row-major inside a block
  const int32_t* row_order = nullptr;  // optional [mb], a permutation of block rows (nnz descending):
                                       // the GPU schedules block rows in this order; nullptr = identity
};

struct SpmmParams {
  const void* x = nullptr;  // [n, K], row stride x_row_stride (elements, >= K)
  void* y = nullptr;        // [n, M], row stride y_row_stride (elements, >= M); fully overwritten
  const void* bias = nullptr;  // optional [M]
  int64_t x_row_stride = 0;
  int64_t y_row_stride = 0;
  int32_t n = 0;  // rows of X and Y (tokens x batch, flattened)
  DType dtype = DType::kFloat32;  // float32, float16 or bfloat16, for x, W values, bias and y
  Activation activation = Activation::kNone;
  BlockCsrView w;
};

// Y = act(X . W^T + b) with a dense W: the 'dense' backend and the baseline auto-dispatch compares against.
struct DenseLinearParams {
  const void* x = nullptr;     // [n, k], row stride x_row_stride
  const void* w = nullptr;     // [m, k], row stride w_row_stride
  const void* bias = nullptr;  // optional [m]
  void* y = nullptr;           // [n, m], row stride y_row_stride
  int64_t x_row_stride = 0, w_row_stride = 0, y_row_stride = 0;
  int32_t n = 0, m = 0, k = 0;
  DType dtype = DType::kFloat32;
  Activation activation = Activation::kNone;
};

// ---- Block-CSR construction from a dense [rows, cols] matrix (host, CPU) ----
//
// Two passes so the caller allocates exact arrays: bsr_count() returns nnzb; the caller allocates
// row_ptr[mb + 1], col_idx[nnzb], values[nnzb * bm * bk] (dtype) and row_order[mb]; bsr_fill() fills them.
// Both passes compute the same selection (it is a pure function of the input), and bsr_fill checks that
// the count it finds equals the capacity it was given.
//
// Selection: a block is kept iff max|w| over the block is > tolerance (NaN counts as kept: a NaN weight
// must propagate as it would in dense) AND, when target_sparsity >= 0, it is not among the
// ceil(target_sparsity * mb * kb) blocks of lowest L2 norm (ties: the lower block index r * kb + c is dropped
// first; NaN norms rank as +inf). With the default tolerance 0 all-zero blocks are always dropped, so the
// achieved sparsity is >= the target.
struct BsrBuildParams {
  const void* dense = nullptr;  // [rows, cols], row stride row_stride (elements)
  int64_t row_stride = 0;
  int32_t rows = 0, cols = 0;
  int32_t bm = 32, bk = 32;
  DType dtype = DType::kFloat32;  // float32, float16 or bfloat16; values keep the dtype bit for bit
  float tolerance = 0.f;          // >= 0
  float target_sparsity = -1.f;   // < 0: off; else in [0, 1], fraction of the mb * kb blocks to drop
};

struct BsrBuildOutput {
  int32_t* row_ptr = nullptr;    // [mb + 1]
  int32_t* col_idx = nullptr;    // [nnzb]
  void* values = nullptr;        // [nnzb, bm, bk], padding entries are +0
  int32_t* row_order = nullptr;  // optional [mb]: block rows by nnz descending, stable (ties: lower row first)
  int64_t nnzb = 0;              // capacity of col_idx / values in blocks: must equal bsr_count's result
};

// Checks the block-CSR arrays (host memory): row_ptr has mb + 1 entries, row_ptr[0] == 0, monotone,
// row_ptr[mb] == nnzb, col_idx in [0, kb) and strictly ascending inside each block row, and row_order (when
// given) a permutation of [0, mb). Messages name the offending position and value.
Status check_bsr_structure(const BlockCsrView& w);

// Shape / dtype / stride / pointer checks of one call (not the index values, see above). `for_cuda` adds
// the GPU restrictions (block sides in {16, 32, 64}).
Status check_spmm_params(const SpmmParams& p, bool for_cuda);
Status check_dense_linear_params(const DenseLinearParams& p, bool for_cuda);

namespace cpu {

// Pass 1: validates `p` and counts the kept blocks.
Status bsr_count(const BsrBuildParams& p, int64_t* nnzb);
// Pass 2: fills `out` (see BsrBuildOutput).
Status bsr_fill(const BsrBuildParams& p, const BsrBuildOutput& out);
// Block rows sorted by nnz descending (stable), for a user-given CSR; row_ptr must be valid.
Status bsr_row_order(int32_t mb, const int32_t* row_ptr, int32_t* row_order);
// The inverse: writes the full dense [w.rows, w.cols] (row stride `row_stride`), zeros outside blocks.
Status bsr_to_dense(const BlockCsrView& w, DType dtype, void* dense, int64_t row_stride);

// Multi-threaded on the process-wide pool; validates the params and the CSR structure first.
Status spmm(const SpmmParams& p);
Status dense_linear(const DenseLinearParams& p);

}  // namespace cpu

namespace cuda {

// Enqueue the work on `stream` and return launch errors; device faults surface at the stream's
// completion. All pointers are device pointers (row_order may be null). Requires bm, bk in {16, 32, 64}.
// Paths: float16/bfloat16 use tensor cores (mma.sync m16n8k16) when X rows are 16-byte aligned
// (K % 8 == 0, x_row_stride % 8 == 0, 16-byte aligned base), else a SIMT path; float32 uses the SIMT path;
// n == 1 uses a row-parallel GEMV without tensor cores.
Status spmm(const SpmmParams& p, GpuStream stream);
Status dense_linear(const DenseLinearParams& p, GpuStream stream);

}  // namespace cuda

}  // namespace sk
