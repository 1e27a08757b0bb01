// sk::cuda::attention_fwd: checks what the kernel's memory safety depends on, handles empty and
// misaligned inputs, then dispatches dtype x head dim to the generated instantiations in inst/.
// (check_attention_params in src/ops/attention.cc is the binding-level check; this file does not rely on
// it, so the kernel stays safe when called directly.)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <string>

#include "cuda/attention/attention_fwd_api.cuh"
#include "cuda/attention/repack.cuh"
#include "cuda/common/check.cuh"
#include "ops/attention.h"

namespace sk::cuda {
namespace {

using attn::FwdParams;

Status invalid(const std::string& what) { return Status::Invalid("attention (CUDA): " + what); }

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// 16-byte rows for cp.async: base 16-byte aligned and every stride that is actually used a multiple of 8.
bool fast_aligned(const void* ptr, int64_t bs, int64_t hs, int64_t rs, int batch, int heads, int rows) {
  if (reinterpret_cast<uintptr_t>(ptr) % 16 != 0) return false;
  if (batch > 1 && bs % 8 != 0) return false;
  if (heads > 1 && hs % 8 != 0) return false;
  if (rows > 1 && rs % 8 != 0) return false;
  return true;
}

Status check_params(const AttentionParams& p) {
  if (p.dtype != DType::kFloat16 && p.dtype != DType::kBFloat16) {
    return invalid(std::string("dtype must be float16 or bfloat16, got ") +
                   (is_valid_dtype(static_cast<int>(p.dtype)) ? dtype_name(p.dtype) : "an unknown dtype"));
  }
  if (p.head_dim != 64 && p.head_dim != 128 && p.head_dim != 256) {
    return invalid("head_dim must be 64, 128 or 256, got " + std::to_string(p.head_dim));
  }
  if (p.batch < 0 || p.heads_q < 0 || p.heads_k < 0 || p.seq_q < 0 || p.seq_k < 0) {
    return invalid("batch, heads and sequence lengths must be >= 0");
  }
  if (p.heads_q > 0 && (p.heads_k <= 0 || p.heads_q % p.heads_k != 0)) {
    return invalid("heads_q (" + std::to_string(p.heads_q) + ") must be a positive multiple of heads_k (" +
                   std::to_string(p.heads_k) + ")");
  }
  if (!(std::isfinite(p.softmax_scale) && p.softmax_scale > 0.f)) {
    return invalid("softmax_scale must be finite and > 0");
  }
  const BlockLayoutView& l = p.layout;
  if (l.block_size != 64 && l.block_size != 128) {
    return invalid("layout block_size must be 64 or 128, got " + std::to_string(l.block_size));
  }
  if (l.q_blocks != ceil_div(p.seq_q, l.block_size) || l.k_blocks != ceil_div(p.seq_k, l.block_size)) {
    return invalid("layout q_blocks/k_blocks do not match ceil(seq / block_size)");
  }
  if (l.batch != 1 && l.batch != p.batch) return invalid("layout batch must be 1 or batch");
  if (l.heads != 1 && l.heads != p.heads_q) return invalid("layout heads must be 1 or heads_q");
  if (l.max_blocks < 0 || l.mask_max_blocks < 0) return invalid("layout row strides must be >= 0");
  if (p.key_perm != nullptr && p.key_perm_heads != p.heads_k && p.key_perm_heads != p.heads_q) {
    return invalid("key_perm_heads must be heads_k or heads_q");
  }
  return Status::Ok();
}

// Pointers that the kernel dereferences for a non-empty problem.
Status check_pointers(const AttentionParams& p) {
  const BlockLayoutView& l = p.layout;
  if (p.q == nullptr || p.out == nullptr) return invalid("q and out must not be null");
  if (p.seq_k > 0 && (p.k == nullptr || p.v == nullptr)) return invalid("k and v must not be null");
  if (l.full_cnt == nullptr || l.mask_cnt == nullptr) return invalid("layout counts must not be null");
  if ((l.max_blocks > 0 && l.full_idx == nullptr) || (l.mask_max_blocks > 0 && l.mask_idx == nullptr)) {
    return invalid("layout index arrays must not be null");
  }
  const auto odd = [](const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 2 != 0; };
  if (odd(p.q) || odd(p.k) || odd(p.v) || odd(p.out)) return invalid("16-bit tensors must be 2-byte aligned");
  if (reinterpret_cast<uintptr_t>(p.lse) % 4 != 0) return invalid("lse must be 4-byte aligned");
  return Status::Ok();
}

template <typename T>
Status dispatch_head_dim(const FwdParams& fp, int head_dim, int layout_block, int max_smem, bool sm90,
                         cudaStream_t stream) {
#ifndef SK_ATTENTION_DISABLE_SM90A
  // Hopper: wgmma kernel for 128-token blocks and D <= 128 (see attention_fwd_kernel_sm90.cuh).
  if (sm90 && layout_block == 128) {
    switch (head_dim) {
#ifndef SK_ATTENTION_DISABLE_HDIM64
      case 64: return attn::run_attention_fwd_sm90<T, 64>(fp, max_smem, stream);
#endif
#ifndef SK_ATTENTION_DISABLE_HDIM128
      case 128: return attn::run_attention_fwd_sm90<T, 128>(fp, max_smem, stream);
#endif
      default: break;
    }
  }
#else
  (void)sm90;
#endif
  switch (head_dim) {
#ifndef SK_ATTENTION_DISABLE_HDIM64
    case 64: return attn::run_attention_fwd<T, 64>(fp, layout_block, max_smem, stream);
#endif
#ifndef SK_ATTENTION_DISABLE_HDIM128
    case 128: return attn::run_attention_fwd<T, 128>(fp, layout_block, max_smem, stream);
#endif
#ifndef SK_ATTENTION_DISABLE_HDIM256
    case 256: return attn::run_attention_fwd<T, 256>(fp, layout_block, max_smem, stream);
#endif
    default: return invalid("head_dim " + std::to_string(head_dim) + " is not built into this binary");
  }
}

}  // namespace

FwdParams attn::make_fwd_params(const AttentionParams& p) {
  FwdParams f;
  f.q = p.q;
  f.k = p.k;
  f.v = p.v;
  f.o = p.out;
  f.lse = p.lse;
  f.q_batch_stride = p.q_batch_stride, f.q_head_stride = p.q_head_stride, f.q_row_stride = p.q_row_stride;
  f.k_batch_stride = p.k_batch_stride, f.k_head_stride = p.k_head_stride, f.k_row_stride = p.k_row_stride;
  f.v_batch_stride = p.v_batch_stride, f.v_head_stride = p.v_head_stride, f.v_row_stride = p.v_row_stride;
  f.o_batch_stride = p.o_batch_stride, f.o_head_stride = p.o_head_stride, f.o_row_stride = p.o_row_stride;
  const BlockLayoutView& l = p.layout;
  f.full_cnt = l.full_cnt, f.full_idx = l.full_idx, f.mask_cnt = l.mask_cnt, f.mask_idx = l.mask_idx;
  f.lay_batch = l.batch, f.lay_heads = l.heads, f.q_blocks = l.q_blocks, f.k_blocks = l.k_blocks;
  f.max_blocks = l.max_blocks, f.mask_max_blocks = l.mask_max_blocks;
  f.key_perm = p.seq_k > 0 ? p.key_perm : nullptr;
  f.perm_heads = p.key_perm_heads;
  f.perm_per_q_head = (p.key_perm != nullptr && p.key_perm_heads == p.heads_q) ? 1 : 0;
  f.batch = p.batch, f.heads_q = p.heads_q, f.heads_k = p.heads_k, f.group = p.heads_q / p.heads_k;
  f.seq_q = p.seq_q, f.seq_k = p.seq_k;
  f.causal = p.causal ? 1 : 0;
  f.scale_log2 = p.softmax_scale * 1.4426950408889634f;
  return f;
}

Status attention_fwd(const AttentionParams& p, GpuStream gpu_stream) {
  return attn::attention_fwd_impl(p, static_cast<cudaStream_t>(gpu_stream), /*allow_sm90=*/true);
}

Status attn::attention_fwd_impl(const AttentionParams& p, cudaStream_t stream, bool allow_sm90) {
  SK_RETURN_IF_ERROR(check_params(p));
  // Nothing to write: no launch. (seq_k == 0 with queries still launches: every row gets 0 and -inf.)
  if (p.batch == 0 || p.heads_q == 0 || p.seq_q == 0) return Status::Ok();
  SK_RETURN_IF_ERROR(check_pointers(p));

  int device = 0, major = 0, minor = 0, max_smem = 0;
  SK_CUDA_TRY(cudaGetDevice(&device));
  SK_CUDA_TRY(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  SK_CUDA_TRY(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
  SK_CUDA_TRY(cudaDeviceGetAttribute(&max_smem, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  if (major < 8) {
    return Status::Error(ErrorCode::kCudaUnavailable,
                         "attention (CUDA) needs compute capability 8.0 or newer (bf16 mma.sync, cp.async); "
                         "this device is " + std::to_string(major) + "." + std::to_string(minor));
  }

  FwdParams fp = attn::make_fwd_params(p);

  // Misaligned layouts: pack the offending tensors into one temporary (stream-ordered allocation).
  const int D = p.head_dim;
  const bool pack_q = !fast_aligned(p.q, p.q_batch_stride, p.q_head_stride, p.q_row_stride, p.batch, p.heads_q, p.seq_q);
  const bool pack_o =
      !fast_aligned(p.out, p.o_batch_stride, p.o_head_stride, p.o_row_stride, p.batch, p.heads_q, p.seq_q);
  const bool pack_k =
      p.seq_k > 0 && !fast_aligned(p.k, p.k_batch_stride, p.k_head_stride, p.k_row_stride, p.batch, p.heads_k, p.seq_k);
  const bool pack_v =
      p.seq_k > 0 && !fast_aligned(p.v, p.v_batch_stride, p.v_head_stride, p.v_row_stride, p.batch, p.heads_k, p.seq_k);
  const int64_t q_elems = static_cast<int64_t>(p.batch) * p.heads_q * p.seq_q * D;
  const int64_t k_elems = static_cast<int64_t>(p.batch) * p.heads_k * p.seq_k * D;
  const int64_t total = (pack_q ? q_elems : 0) + (pack_o ? q_elems : 0) + (pack_k ? k_elems : 0) + (pack_v ? k_elems : 0);
  uint16_t* tmp = nullptr;
  if (total > 0) SK_CUDA_TRY(cudaMallocAsync(reinterpret_cast<void**>(&tmp), total * 2, stream));
  Status st = Status::Ok();
  uint16_t* cursor = tmp;
  auto packed_q_like = [&](uint16_t* base) {
    return attn::StridedRows{base, static_cast<int64_t>(p.heads_q) * p.seq_q * D, static_cast<int64_t>(p.seq_q) * D, D};
  };
  auto packed_k_like = [&](uint16_t* base) {
    return attn::StridedRows{base, static_cast<int64_t>(p.heads_k) * p.seq_k * D, static_cast<int64_t>(p.seq_k) * D, D};
  };
  auto repack_in = [&](bool pack, const void* src, int64_t bs, int64_t hs, int64_t rs, bool q_like, const void** dst,
                       int64_t* dbs, int64_t* dhs, int64_t* drs) {
    if (!pack || !st.ok()) return;
    const attn::StridedRows to = q_like ? packed_q_like(cursor) : packed_k_like(cursor);
    st = attn::copy_rows({const_cast<void*>(src), bs, hs, rs}, to, p.batch, q_like ? p.heads_q : p.heads_k,
                         q_like ? p.seq_q : p.seq_k, D, stream);
    *dst = to.data, *dbs = to.batch_stride, *dhs = to.head_stride, *drs = to.row_stride;
    cursor += q_like ? q_elems : k_elems;
  };
  repack_in(pack_q, p.q, p.q_batch_stride, p.q_head_stride, p.q_row_stride, true, &fp.q, &fp.q_batch_stride,
            &fp.q_head_stride, &fp.q_row_stride);
  repack_in(pack_k, p.k, p.k_batch_stride, p.k_head_stride, p.k_row_stride, false, &fp.k, &fp.k_batch_stride,
            &fp.k_head_stride, &fp.k_row_stride);
  repack_in(pack_v, p.v, p.v_batch_stride, p.v_head_stride, p.v_row_stride, false, &fp.v, &fp.v_batch_stride,
            &fp.v_head_stride, &fp.v_row_stride);
  attn::StridedRows o_packed{};
  if (pack_o) {
    o_packed = packed_q_like(cursor);
    fp.o = o_packed.data, fp.o_batch_stride = o_packed.batch_stride, fp.o_head_stride = o_packed.head_stride;
    fp.o_row_stride = o_packed.row_stride;
  }

  const bool sm90 = allow_sm90 && major == 9 && minor == 0;
  if (st.ok()) {
    st = p.dtype == DType::kBFloat16
             ? dispatch_head_dim<__nv_bfloat16>(fp, D, p.layout.block_size, max_smem, sm90, stream)
             : dispatch_head_dim<__half>(fp, D, p.layout.block_size, max_smem, sm90, stream);
  }
  if (st.ok() && pack_o) {
    st = attn::copy_rows(o_packed, {p.out, p.o_batch_stride, p.o_head_stride, p.o_row_stride}, p.batch, p.heads_q,
                         p.seq_q, D, stream);
  }
  if (tmp != nullptr) {
    const Status freed = cuda_status(cudaFreeAsync(tmp, stream), "cudaFreeAsync(attention temporaries)");
    if (st.ok()) st = freed;
  }
  return st;
}

}  // namespace sk::cuda
