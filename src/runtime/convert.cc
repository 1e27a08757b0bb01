#include "runtime/convert.h"

#include <cstring>

#include "core/half.h"
#include "core/thread_pool.h"
#include "cpu/common/simd.h"

namespace sk::rt {

namespace {

float load(const void* p, DType t, int64_t i) {
  switch (t) {
    case DType::kFloat32: return static_cast<const float*>(p)[i];
    case DType::kFloat16: return half_to_float(static_cast<const uint16_t*>(p)[i]);
    case DType::kBFloat16: return bf16_to_float(static_cast<const uint16_t*>(p)[i]);
    default: return 0.f;
  }
}

void store(void* p, DType t, int64_t i, float v) {
  switch (t) {
    case DType::kFloat32: static_cast<float*>(p)[i] = v; break;
    case DType::kFloat16: static_cast<uint16_t*>(p)[i] = float_to_half(v); break;
    case DType::kBFloat16: static_cast<uint16_t*>(p)[i] = float_to_bf16(v); break;
    default: break;
  }
}

}  // namespace

bool can_convert(DType dst, DType src) { return dst == src || (is_float_dtype(dst) && is_float_dtype(src)); }

Status convert_host(void* dst, DType dst_type, const void* src, DType src_type, int64_t n) {
  if (n <= 0) return Status::Ok();
  if (dst_type == src_type) {
    const size_t es = dtype_size(dst_type);
    core::parallel_for(n, int64_t{1} << 20, [&](int64_t b, int64_t e) {
      std::memcpy(static_cast<char*>(dst) + b * es, static_cast<const char*>(src) + b * es, (e - b) * es);
    });
    return Status::Ok();
  }
  if (!can_convert(dst_type, src_type)) {
    return Status::Invalid(std::string("cannot convert ") + dtype_name(src_type) + " to " + dtype_name(dst_type));
  }
  core::parallel_for(n, int64_t{1} << 16, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) store(dst, dst_type, i, load(src, src_type, i));
  });
  return Status::Ok();
}

}  // namespace sk::rt
