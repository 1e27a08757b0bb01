// Developer hook for the timing sweep of bench/native/spmm_check.cu: run sk::cuda::spmm with a fixed
// tensor-core configuration instead of the automatic choice. Not part of the bindings' surface.
#pragma once
#include "ops/spmm.h"

namespace sk::cuda {

// variant 0: automatic (what sk::cuda::spmm does); 1: small-N tile; 2: large-N tile; 3..5: alternatives
// built for bfloat16 with 32x32 and 64x64 blocks only (see cuda/spmm/spmm_launch.cuh). Variants other than
// 0 apply to float16 / bfloat16 with aligned X and skip the GEMV path.
Status spmm_variant(const SpmmParams& p, GpuStream stream, int variant);

}  // namespace sk::cuda
