// Validation of the attention contract (src/ops/attention.h), shared by both backends and the bindings.
//
// check_attention_params: everything memory safety depends on that is visible without reading index
// values (shapes, strides, alignment, layout dimensions, backend limits). Cheap; both entry points call
// it (or an equivalent) again. check_block_layout_host / check_key_perm_host: index values, on host
// copies, before any kernel.
//
// Decisions written down here:
//  - Empty problems are valid: batch, heads_q, seq_q or seq_k may be 0 (as cuda/attention does). With
//    seq_k == 0 every query row has no key: out = 0, lse = -inf. Pointers only need to be non-null
//    where something is read or written.
//  - causal requires seq_q == seq_k in v1 (both backends), although the mask formula carries the
//    bottom-right offset seq_k - seq_q for later.
//  - softmax_scale must be finite and > 0 on both backends (the CUDA kernel takes the row max before
//    scaling, which needs a positive scale; the CPU follows so results never depend on the backend).
//  - CUDA: float16/bfloat16, head_dim in {64, 128, 256}, block_size in {64, 128}. Rows that are not
//    16-byte aligned are legal: the CUDA entry point repacks them. Launch-shape limits (query blocks per
//    grid dimension) are checked by the CUDA launcher, which owns the grid shape.
//  - CPU: any float dtype, head_dim in [1, 1024] (bounds the per-thread tiles), any block_size >= 1
//    (blocks above 128 are walked in sub-tiles). The public API still only builds 64 and 128.
//  - Strides are elements and non-negative (0 is a broadcast view of an input); out must not overlap
//    itself, since its rows are written concurrently. Every reachable byte offset fits in int64. Data
//    pointers are aligned to their element size (lse to 4 bytes).
#include "ops/attention.h"

#include <cmath>
#include <cstdint>
#include <new>
#include <sstream>
#include <string>
#include <vector>

namespace sk {
namespace {

template <typename... Args>
std::string cat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
template <typename... Args>
Status invalid(const Args&... args) {
  return Status::Invalid(cat("attention: ", args...));
}
template <typename... Args>
Status shape(const Args&... args) {
  return Status::Error(ErrorCode::kShape, cat("attention: ", args...));
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// One tensor of rank 4 [batch, heads, rows, head_dim] given by element strides (last dim contiguous).
struct TensorDims {
  const char* name;
  const void* data;
  int64_t stride[3];  // batch, head, row
  int64_t extent[3];  // batch, heads, rows
  bool empty() const { return extent[0] == 0 || extent[1] == 0 || extent[2] == 0; }
};

// acc += a * b for non-negative operands; false (acc unchanged) if the result would pass INT64_MAX.
bool add_product(int64_t* acc, int64_t a, int64_t b) {
  if (a != 0 && b > (INT64_MAX - *acc) / a) return false;
  *acc += a * b;
  return true;
}

// Present, element-aligned, strides non-negative, largest reachable byte offset representable in int64.
Status check_tensor(const TensorDims& t, int head_dim, size_t elem_size) {
  static const char* kDim[3] = {"batch", "head", "row"};
  if (t.empty()) return Status::Ok();  // nothing is read or written
  if (t.data == nullptr) return invalid(t.name, " must be non-null");
  if (reinterpret_cast<uintptr_t>(t.data) % elem_size != 0)
    return invalid(t.name, " must be aligned to its element size (", elem_size, " bytes)");
  int64_t elems = head_dim;  // one past the last reachable element
  for (int i = 0; i < 3; ++i) {
    if (t.stride[i] < 0) return shape(t.name, " ", kDim[i], " stride must be non-negative, got ", t.stride[i]);
    if (!add_product(&elems, t.extent[i] - 1, t.stride[i])) return shape(t.name, " strides reach past 2^63 bytes");
  }
  if (elems > INT64_MAX / static_cast<int64_t>(elem_size)) return shape(t.name, " strides reach past 2^63 bytes");
  return Status::Ok();
}

// Sufficient condition for no two elements sharing an address: sorted by stride, each dimension
// (of extent > 1) steps over the whole span of the smaller ones. Runs after check_tensor, so every
// span below is bounded by the tensor's reach and cannot overflow.
Status check_no_overlap(const TensorDims& t, int head_dim) {
  int order[3] = {0, 1, 2};
  for (int a = 0; a < 3; ++a)
    for (int b = a + 1; b < 3; ++b)
      if (t.stride[order[b]] < t.stride[order[a]]) std::swap(order[a], order[b]);
  int64_t span = head_dim;
  for (int i : order) {
    if (t.extent[i] <= 1) continue;
    if (t.stride[i] < span)
      return shape(t.name, " strides (batch ", t.stride[0], ", head ", t.stride[1], ", row ", t.stride[2],
                   ") make elements overlap: the output is written concurrently, so it must not alias");
    span += t.stride[i] * (t.extent[i] - 1);
  }
  return Status::Ok();
}

Status check_layout_dims(const AttentionParams& p, bool for_cuda) {
  const BlockLayoutView& l = p.layout;
  if (for_cuda ? (l.block_size != 64 && l.block_size != 128) : l.block_size < 1)
    return invalid("layout.block_size must be ", for_cuda ? "64 or 128 on CUDA" : "positive", ", got ", l.block_size);
  const bool has_rows = static_cast<int64_t>(p.batch) * p.heads_q * l.q_blocks > 0;  // rows the kernels read
  if (has_rows && (l.full_cnt == nullptr || l.mask_cnt == nullptr))
    return invalid("layout.full_cnt and layout.mask_cnt are required");
  if (l.batch != 1 && l.batch != p.batch)
    return shape("layout.batch must be 1 (broadcast) or batch (", p.batch, "), got ", l.batch);
  if (l.heads != 1 && l.heads != p.heads_q)
    return shape("layout.heads must be 1 (broadcast) or heads_q (", p.heads_q, "), got ", l.heads);
  if (l.q_blocks != ceil_div(p.seq_q, l.block_size))
    return shape("layout.q_blocks must be ceil(seq_q / block_size) = ", ceil_div(p.seq_q, l.block_size), ", got ",
                 l.q_blocks);
  if (l.k_blocks != ceil_div(p.seq_k, l.block_size))
    return shape("layout.k_blocks must be ceil(seq_k / block_size) = ", ceil_div(p.seq_k, l.block_size), ", got ",
                 l.k_blocks);
  if (l.max_blocks < 0 || l.max_blocks > l.k_blocks)
    return shape("layout.max_blocks must be in [0, k_blocks = ", l.k_blocks, "], got ", l.max_blocks);
  if (l.mask_max_blocks < 0 || l.mask_max_blocks > l.k_blocks)
    return shape("layout.mask_max_blocks must be in [0, k_blocks = ", l.k_blocks, "], got ", l.mask_max_blocks);
  if (has_rows && l.max_blocks > 0 && l.full_idx == nullptr)
    return invalid("layout.full_idx is null but max_blocks > 0");
  if (has_rows && l.mask_max_blocks > 0 && l.mask_idx == nullptr)
    return invalid("layout.mask_idx is null but mask_max_blocks > 0");
  return Status::Ok();
}

}  // namespace

Status check_attention_params(const AttentionParams& p, bool for_cuda) {
  // Scalars and dtypes first: everything below uses them.
  if (!is_valid_dtype(static_cast<int>(p.dtype))) return invalid("unknown dtype value ", static_cast<int>(p.dtype));
  if (for_cuda ? !is_half_dtype(p.dtype) : !is_float_dtype(p.dtype))
    return invalid("dtype must be ", for_cuda ? "float16 or bfloat16 on CUDA" : "float32, float16 or bfloat16",
                   ", got ", dtype_name(p.dtype));
  if (p.batch < 0 || p.heads_q < 0 || p.heads_k < 0 || p.seq_q < 0 || p.seq_k < 0)
    return shape("batch (", p.batch, "), heads_q (", p.heads_q, "), heads_k (", p.heads_k, "), seq_q (", p.seq_q,
                 ") and seq_k (", p.seq_k, ") must be >= 0");
  if (p.heads_q > 0 && (p.heads_k == 0 || p.heads_q % p.heads_k != 0))
    return shape("heads_q (", p.heads_q, ") must be a multiple of heads_k (", p.heads_k, ")");
  if (for_cuda ? (p.head_dim != 64 && p.head_dim != 128 && p.head_dim != 256)
               : (p.head_dim < 1 || p.head_dim > 1024))
    return invalid("head_dim must be ", for_cuda ? "64, 128 or 256 on CUDA" : "in [1, 1024] on the CPU", ", got ",
                   p.head_dim);
  if (!(std::isfinite(p.softmax_scale) && p.softmax_scale > 0.f))
    return invalid("softmax_scale must be finite and > 0, got ", p.softmax_scale);
  if (p.causal && p.seq_q != p.seq_k)
    return invalid("causal attention requires seq_q == seq_k in this version (got ", p.seq_q, " and ", p.seq_k, ")");

  // Tensors: presence, alignment, strides, aliasing of the output.
  const TensorDims tensors[4] = {
      {"q", p.q, {p.q_batch_stride, p.q_head_stride, p.q_row_stride}, {p.batch, p.heads_q, p.seq_q}},
      {"k", p.k, {p.k_batch_stride, p.k_head_stride, p.k_row_stride}, {p.batch, p.heads_k, p.seq_k}},
      {"v", p.v, {p.v_batch_stride, p.v_head_stride, p.v_row_stride}, {p.batch, p.heads_k, p.seq_k}},
      {"out", p.out, {p.o_batch_stride, p.o_head_stride, p.o_row_stride}, {p.batch, p.heads_q, p.seq_q}},
  };
  for (const TensorDims& t : tensors) SK_RETURN_IF_ERROR(check_tensor(t, p.head_dim, dtype_size(p.dtype)));
  if (!tensors[3].empty()) SK_RETURN_IF_ERROR(check_no_overlap(tensors[3], p.head_dim));
  if (reinterpret_cast<uintptr_t>(p.lse) % alignof(float) != 0) return invalid("lse must be 4-byte aligned");

  SK_RETURN_IF_ERROR(check_layout_dims(p, for_cuda));
  if (p.key_perm != nullptr && p.key_perm_heads != p.heads_k && p.key_perm_heads != p.heads_q)
    return shape("key_perm_heads must be heads_k (", p.heads_k, ") or heads_q (", p.heads_q, "), got ",
                 p.key_perm_heads);
  return Status::Ok();
}

Status check_block_layout_host(const BlockLayoutView& l) {
  if (l.block_size < 1 || l.batch < 0 || l.heads < 0 || l.q_blocks < 0 || l.k_blocks < 0)
    return shape("layout block_size (", l.block_size, ") must be positive and batch (", l.batch, "), heads (",
                 l.heads, "), q_blocks (", l.q_blocks, ") and k_blocks (", l.k_blocks, ") >= 0");
  if (l.max_blocks < 0 || l.max_blocks > l.k_blocks || l.mask_max_blocks < 0 || l.mask_max_blocks > l.k_blocks)
    return shape("layout.max_blocks (", l.max_blocks, ") and mask_max_blocks (", l.mask_max_blocks,
                 ") must be in [0, k_blocks = ", l.k_blocks, "]");
  if (static_cast<int64_t>(l.batch) * l.heads * l.q_blocks == 0) return Status::Ok();  // no rows
  if (l.full_cnt == nullptr || l.mask_cnt == nullptr || (l.max_blocks > 0 && l.full_idx == nullptr) ||
      (l.mask_max_blocks > 0 && l.mask_idx == nullptr))
    return invalid("layout count and index arrays must be non-null");

  struct List {
    const char* name;
    const int32_t* cnt;
    const int32_t* idx;
    int32_t cap;
  };
  const List lists[2] = {{"full", l.full_cnt, l.full_idx, l.max_blocks},
                         {"mask", l.mask_cnt, l.mask_idx, l.mask_max_blocks}};
  for (int b = 0; b < l.batch; ++b) {
    for (int h = 0; h < l.heads; ++h) {
      for (int qb = 0; qb < l.q_blocks; ++qb) {
        const int64_t row = l.row_base(b, h) + qb;
        const auto where = [&](int pos) { return cat("[b=", b, ", h=", h, ", qblock=", qb, ", pos=", pos, "]"); };
        for (const List& li : lists) {
          const int32_t n = li.cnt[row];
          if (n < 0 || n > li.cap)
            return invalid("layout.", li.name, "_cnt[b=", b, ", h=", h, ", qblock=", qb, "] = ", n,
                           " is outside [0, ", li.cap, "] (the row capacity)");
          const int32_t* idx = li.idx + row * li.cap;
          for (int t = 0; t < n; ++t) {
            if (idx[t] < 0 || idx[t] >= l.k_blocks)
              return invalid("layout.", li.name, "_idx", where(t), " = ", idx[t], " is outside [0, k_blocks = ",
                             l.k_blocks, ")");
            if (t > 0 && idx[t] <= idx[t - 1])
              return invalid("layout.", li.name, "_idx", where(t), " = ", idx[t],
                             " does not exceed the previous index ", idx[t - 1],
                             " (each list must be strictly ascending)");
          }
        }
        const int32_t nf = l.full_cnt[row], nm = l.mask_cnt[row];
        if (static_cast<int64_t>(nf) + nm > l.k_blocks)
          return invalid("layout row [b=", b, ", h=", h, ", qblock=", qb, "] lists ", nf, " full + ", nm,
                         " masked blocks, more than k_blocks = ", l.k_blocks);
        // Both lists are ascending: one merge walk finds a block listed twice.
        const int32_t* f = l.full_idx + row * l.max_blocks;
        const int32_t* m = l.mask_idx + row * l.mask_max_blocks;
        for (int i = 0, j = 0; i < nf && j < nm;) {
          if (f[i] == m[j])
            return invalid("layout block ", f[i], " is in both lists of row [b=", b, ", h=", h, ", qblock=", qb,
                           "] (full_idx pos ", i, ", mask_idx pos ", j, ")");
          if (f[i] < m[j]) ++i; else ++j;
        }
      }
    }
  }
  return Status::Ok();
}

Status check_key_perm_host(const int32_t* perm, int batch, int heads, int seq_k) {
  if (batch < 0 || heads < 0 || seq_k < 0)
    return shape("key_perm batch (", batch, "), heads (", heads, ") and seq_k (", seq_k, ") must be >= 0");
  if (static_cast<int64_t>(batch) * heads * seq_k == 0) return Status::Ok();  // no rows
  if (perm == nullptr) return invalid("key_perm is null");
  std::vector<int64_t> seen_in_row;  // row id that last saw each value: no clearing between rows
  try {
    seen_in_row.assign(static_cast<size_t>(seq_k), -1);
  } catch (const std::bad_alloc&) {
    return Status::Error(ErrorCode::kOutOfMemory, "attention: cannot allocate the key_perm check");
  }
  for (int b = 0; b < batch; ++b) {
    for (int h = 0; h < heads; ++h) {
      const int64_t row = static_cast<int64_t>(b) * heads + h;
      const int32_t* r = perm + row * seq_k;
      for (int j = 0; j < seq_k; ++j) {
        if (r[j] < 0 || r[j] >= seq_k)
          return invalid("key_perm[b=", b, ", h=", h, ", j=", j, "] = ", r[j], " is outside [0, seq_k = ", seq_k, ")");
        if (seen_in_row[r[j]] == row)
          return invalid("key_perm[b=", b, ", h=", h, ", j=", j, "] = ", r[j],
                         " repeats an earlier value of its row (each row must be a permutation of [0, seq_k))");
        seen_in_row[r[j]] = row;
      }
    }
  }
  return Status::Ok();
}

}  // namespace sk
