// Pieces shared by every op contract in src/ops/. Plain C++: no N-API, no CUDA headers.
#pragma once
#include <cstdint>

#include "core/dtype.h"
#include "core/status.h"

namespace sk {

// A cudaStream_t, carried as an opaque pointer so src/ stays free of CUDA headers.
using GpuStream = void*;

// Block-sparse attention layout in FlexAttention's `from_kv_blocks` form (see src/ops/attention.h).
// Arrays are int32 and live on the same device as the op's tensors.
struct BlockLayoutView {
  const int32_t* full_cnt = nullptr;  // [lb, lh, q_blocks]
  const int32_t* full_idx = nullptr;  // [lb, lh, q_blocks, max_blocks]
  const int32_t* mask_cnt = nullptr;  // [lb, lh, q_blocks]
  const int32_t* mask_idx = nullptr;  // [lb, lh, q_blocks, mask_max_blocks]
  int32_t batch = 1;                  // lb: 1 (broadcast over the batch) or the batch size
  int32_t heads = 1;                  // lh: 1 (broadcast over heads) or Hq
  int32_t q_blocks = 0;               // ceil(seq_q / block_size)
  int32_t k_blocks = 0;               // ceil(seq_k / block_size)
  int32_t max_blocks = 0;             // row stride of full_idx (>= the largest full count)
  int32_t mask_max_blocks = 0;        // row stride of mask_idx (>= the largest masked count); PBS keeps
                                      // this small (own segment + tail) so the layout stays O(T^2) once
  int32_t block_size = 128;           // 64 or 128 tokens, for queries and keys alike

  // Offset of the (b, h) row group, in q_blocks units; broadcast dims collapse to 0.
  int64_t row_base(int b, int h) const {
    const int64_t bb = batch == 1 ? 0 : b;
    const int64_t hh = heads == 1 ? 0 : h;
    return (bb * heads + hh) * q_blocks;
  }
};

}  // namespace sk

namespace sk {

// Fused epilogue activations (SpMM, DeltaLinear outputs). Values are part of the JS<->native contract.
enum class Activation : int32_t {
  kNone = 0,
  kRelu = 1,
  kGelu = 2,  // exact erf form, as torch.nn.GELU()
  kSilu = 3,
};

}  // namespace sk
