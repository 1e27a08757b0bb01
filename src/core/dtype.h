// Element types shared by the bindings, the CPU kernels and the CUDA launchers.
// The numeric values are part of the JS<->native contract (lib/dtype.ts keeps the same table).
#pragma once
#include <cstddef>
#include <cstdint>

namespace sk {

enum class DType : int32_t {
  kFloat32 = 0,
  kFloat16 = 1,
  kBFloat16 = 2,
  kInt32 = 3,
  kInt8 = 4,
  kUInt8 = 5,
};
inline constexpr int kNumDTypes = 6;

// One row per DType, indexed by its value (static_asserts below keep the tables in step).
inline constexpr size_t kDTypeSize[kNumDTypes] = {
    4,  // float32
    2,  // float16 (IEEE binary16, carried as uint16 bits)
    2,  // bfloat16 (upper half of a float32, carried as uint16 bits)
    4,  // int32
    1,  // int8
    1,  // uint8
};
inline constexpr const char* kDTypeName[kNumDTypes] = {
    "float32", "float16", "bfloat16", "int32", "int8", "uint8",
};
static_assert(sizeof(kDTypeSize) / sizeof(kDTypeSize[0]) == kNumDTypes, "one size per dtype");
static_assert(sizeof(kDTypeName) / sizeof(kDTypeName[0]) == kNumDTypes, "one name per dtype");

inline constexpr size_t dtype_size(DType t) { return kDTypeSize[static_cast<int>(t)]; }
inline constexpr const char* dtype_name(DType t) { return kDTypeName[static_cast<int>(t)]; }
inline constexpr bool is_valid_dtype(int v) { return v >= 0 && v < kNumDTypes; }
inline constexpr bool is_float_dtype(DType t) {
  return t == DType::kFloat32 || t == DType::kFloat16 || t == DType::kBFloat16;
}
inline constexpr bool is_half_dtype(DType t) { return t == DType::kFloat16 || t == DType::kBFloat16; }

}  // namespace sk
