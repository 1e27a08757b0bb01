// sm_90a half of the standalone check: the wgmma kernel's variants for the tile sweep of
// attention_check.cu (this TU is compiled with -gencode arch=compute_90a,code=sm_90a only).
#include <cuda_bf16.h>

#include "cuda/attention/attention_fwd_kernel_sm90.cuh"

namespace skcheck {

// which: 0 = intra-warpgroup overlap (the product's choice), 1 = sequential, 2 = sequential + warpgroup
// ping-pong. bf16, D = 128, block 128.
sk::Status run_sm90_variant(int which, const sk::AttentionParams& p, cudaStream_t stream) {
  namespace attn = sk::cuda::attn;
  int dev = 0, smem = 0;
  cudaGetDevice(&dev);
  cudaDeviceGetAttribute(&smem, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
  const attn::FwdParams fp = attn::make_fwd_params(p);
  if (which == 0) {
    return attn::launch_attention_fwd_sm90<attn::Sm90FwdTraits<__nv_bfloat16, 128, true, false>>(fp, smem, stream);
  }
  if (which == 1) {
    return attn::launch_attention_fwd_sm90<attn::Sm90FwdTraits<__nv_bfloat16, 128, false, false>>(fp, smem, stream);
  }
  return attn::launch_attention_fwd_sm90<attn::Sm90FwdTraits<__nv_bfloat16, 128, false, true>>(fp, smem, stream);
}

}  // namespace skcheck
