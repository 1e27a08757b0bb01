// Strided <-> packed copies of [batch, heads, rows, dim] 16-bit tensors. The fast kernel reads rows as
// 16-byte chunks, so it needs 16-byte aligned base pointers and strides that are multiples of 8
// elements; any other layout (still with a contiguous last dim) goes through a packed temporary.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/common/check.cuh"

namespace sk::cuda::attn {

struct StridedRows {
  void* data;
  int64_t batch_stride, head_stride, row_stride;  // elements
};

static __global__ void copy_rows_kernel(const uint16_t* __restrict__ src, int64_t sb, int64_t sh, int64_t sr,
                                 uint16_t* __restrict__ dst, int64_t db, int64_t dh, int64_t dr, int heads,
                                 int rows, int dim, int64_t total) {
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int c = static_cast<int>(e % dim);
    const int64_t row_id = e / dim;
    const int r = static_cast<int>(row_id % rows);
    const int64_t bh = row_id / rows;
    const int h = static_cast<int>(bh % heads);
    const int64_t b = bh / heads;
    dst[b * db + h * dh + r * dr + c] = src[b * sb + h * sh + r * sr + c];
  }
}

// (static: this header is meant for one TU, attention_fwd.cu.)
// Copies a [batch, heads, rows, dim] tensor between two strided layouts, on `stream`.
inline Status copy_rows(const StridedRows& src, const StridedRows& dst, int batch, int heads, int rows, int dim,
                        cudaStream_t stream) {
  const int64_t total = static_cast<int64_t>(batch) * heads * rows * dim;
  if (total == 0) return Status::Ok();
  const int threads = 256;
  const int64_t want = (total + threads - 1) / threads;
  const int blocks = static_cast<int>(want < 65536 ? want : 65536);
  copy_rows_kernel<<<blocks, threads, 0, stream>>>(static_cast<const uint16_t*>(src.data), src.batch_stride,
                                                   src.head_stride, src.row_stride, static_cast<uint16_t*>(dst.data),
                                                   dst.batch_stride, dst.head_stride, dst.row_stride, heads, rows, dim,
                                                   total);
  SK_CUDA_LAUNCH_CHECK("attention copy_rows_kernel");
  return Status::Ok();
}

}  // namespace sk::cuda::attn
