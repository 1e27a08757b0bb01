// Stage 1 launcher: sk::cuda::pbs_proxy_scores (kernels in proxy_kernel.cuh).
// Recipe: check -> sizes -> key chunking -> scratch -> prep -> pass 1 -> combine -> pass 2.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>

#include "cuda/pbs/launch_util.cuh"
#include "cuda/pbs/proxy_kernel.cuh"
#include "ops/pbs.h"

namespace sk::cuda {

namespace {

using pbs::ProxyArgs;
using pbs::ProxyTraits;

template <typename Elem, int kHeadDim>
Status run_proxy(ProxyArgs a, int bh_count, cudaStream_t stream) {
  using Traits = ProxyTraits<kHeadDim>;
  auto* pass1 = pbs::proxy_pass_kernel<Traits, Elem, false>;
  auto* pass2 = pbs::proxy_pass_kernel<Traits, Elem, true>;
  SK_RETURN_IF_ERROR(pbs::set_dynamic_smem(pass1, Traits::kSmemBytes, "pbs proxy pass 1"));
  SK_RETURN_IF_ERROR(pbs::set_dynamic_smem(pass2, Traits::kSmemBytes, "pbs proxy pass 2"));
  pbs::proxy_prep_kernel<Elem, kHeadDim><<<bh_count, 256, 0, stream>>>(a);
  SK_CUDA_LAUNCH_CHECK("pbs proxy prep");
  const unsigned grid = static_cast<unsigned>(bh_count) * static_cast<unsigned>(a.nchunks);
  pass1<<<grid, Traits::kThreads, Traits::kSmemBytes, stream>>>(a);
  SK_CUDA_LAUNCH_CHECK("pbs proxy pass 1");
  pbs::proxy_combine_kernel<<<bh_count, 128, 0, stream>>>(a);
  SK_CUDA_LAUNCH_CHECK("pbs proxy combine");
  pass2<<<grid, Traits::kThreads, Traits::kSmemBytes, stream>>>(a);
  SK_CUDA_LAUNCH_CHECK("pbs proxy pass 2");
  return Status::Ok();
}

}  // namespace

Status pbs_proxy_scores(const PbsParams& p, GpuStream gpu_stream) {
  SK_RETURN_IF_ERROR(check_pbs_params(p, PbsStage::kProxy, /*for_cuda=*/true));
  const PbsDims d = pbs_dims(p);
  if (d.permuted_len == 0) return Status::Ok();  // N < S: nothing is permuted
  cudaStream_t stream = static_cast<cudaStream_t>(gpu_stream);
  constexpr int kRows = 64, kKeys = 64, kMaxChunkKeys = 2048;  // ProxyTraits<D>::kRows / kKeys / kMaxChunkKeys
  static_assert(kRows == ProxyTraits<64>::kRows && kKeys == ProxyTraits<128>::kKeys &&
                    kMaxChunkKeys == ProxyTraits<128>::kMaxChunkKeys, "keep in step with the traits");
  const int bh_count = p.batch * d.perm_heads;

  ProxyArgs a{};
  a.q = p.q;
  a.q_batch_stride = p.q_batch_stride;
  a.q_head_stride = p.q_head_stride;
  a.q_row_stride = p.q_row_stride;
  a.k = p.k;
  a.k_batch_stride = p.k_batch_stride;
  a.k_head_stride = p.k_head_stride;
  a.k_row_stride = p.k_row_stride;
  a.perm_heads = d.perm_heads;
  a.q_per_perm_head = d.q_per_perm_head;
  a.perm_per_kv_head = d.perm_per_kv_head;
  a.R = d.proxy_rows;
  a.R_pad = (d.proxy_rows + kRows - 1) / kRows * kRows;
  a.P = d.permuted_len;
  a.N = p.seq_len;
  a.scale = d.scale;
  a.causal = p.proxy_causal;
  // One 16-bit part is exact when q reaches the mma unchanged; a mean of several heads needs 22-24 bits.
  a.n_split = d.q_per_perm_head == 1 ? 1 : (p.dtype == DType::kFloat16 ? 2 : 3);

  // Key chunking: about 4 CTAs per SM over all heads, at most kMaxChunkKeys keys per CTA. P is a
  // multiple of S, hence of 64, so every chunk holds whole 64-key tiles.
  int sms = 0;
  SK_RETURN_IF_ERROR(pbs::device_sm_count(&sms));
  const int tiles = a.P / kKeys;
  const int chunks_per_head = std::max(1, (4 * sms + bh_count - 1) / bh_count);
  const int tiles_per_chunk = std::min(kMaxChunkKeys / kKeys, std::max(1, (tiles + chunks_per_head - 1) / chunks_per_head));
  a.chunk_keys = tiles_per_chunk * kKeys;
  a.nchunks = (tiles + tiles_per_chunk - 1) / tiles_per_chunk;
  a.scores = p.scores;

  pbs::StreamScratch scratch(stream);
  const size_t qs_elems = static_cast<size_t>(bh_count) * a.n_split * a.R_pad * p.head_dim;  // 16-bit elements
  const size_t part_elems = static_cast<size_t>(bh_count) * a.R * a.nchunks;
  const size_t stat_elems = static_cast<size_t>(bh_count) * a.R;
  SK_RETURN_IF_ERROR(scratch.alloc(pbs::StreamScratch::round_up(qs_elems * 2) +
                                   pbs::StreamScratch::round_up(part_elems * sizeof(float2)) +
                                   pbs::StreamScratch::round_up(stat_elems * sizeof(float2))));
  a.qs = scratch.carve<uint16_t>(qs_elems);
  a.part = scratch.carve<float2>(part_elems);
  a.stats = scratch.carve<float2>(stat_elems);

  const bool bf16 = p.dtype == DType::kBFloat16;
  if (p.head_dim == 64)
    return bf16 ? run_proxy<__nv_bfloat16, 64>(a, bh_count, stream) : run_proxy<__half, 64>(a, bh_count, stream);
  return bf16 ? run_proxy<__nv_bfloat16, 128>(a, bh_count, stream) : run_proxy<__half, 128>(a, bh_count, stream);
}

}  // namespace sk::cuda
