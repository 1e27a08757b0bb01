// Host-side element conversion between float32 / float16 / bfloat16 (and plain copies for equal dtypes),
// parallel over the thread pool for large arrays. Used by uploads, downloads and Tensor.cast on the CPU.
#pragma once
#include <cstdint>

#include "core/dtype.h"
#include "core/status.h"

namespace sk::rt {

bool can_convert(DType dst, DType src);
Status convert_host(void* dst, DType dst_type, const void* src, DType src_type, int64_t n);

}  // namespace sk::rt
