// N-API binding of the block-sparse attention forward (contract: src/ops/attention.h). No math here.
//
//   attentionForward(stream, {q, k, v, out, lse?, fullCnt, fullIdx, maskCnt, maskIdx, keyPerm?}, params)
//     enqueues sk::{cpu,cuda}::attention_fwd on the stream. Tensors are dense row-major: q/out
//     [batch, headsQ, seqQ, headDim], k/v [batch, headsK, seqK, headDim], lse [batch, headsQ, seqQ] float32,
//     layout arrays int32 as in BlockLayoutView, keyPerm int32 [batch, keyPermHeads, seqK].
//   attentionCheckLayout(fullCnt, fullIdx, maskCnt, maskIdx, params)  (host Int32Arrays, synchronous)
//   attentionCheckKeyPerm(perm, batch, heads, seqK)                     (host Int32Array, synchronous)
//     run the host value checks of src/ops/attention.cc on a layout / permutation before it is uploaded:
//     the kernels only clamp indices, so these are what keeps a malformed layout from a silent wrong answer.
//
// lib/attention validates everything first with messages naming the argument; the checks here only keep
// a bug of lib/ from becoming an out-of-bounds access (storage sizes, check_attention_params).
#include <cstdint>
#include <cstring>

#include "bindings/napi_util.h"
#include "bindings/op_args.h"
#include "bindings/registry.h"
#include "ops/attention.h"

namespace sk::bind {
namespace {

size_t Bytes(int64_t elems, size_t elem_size) { return static_cast<size_t>(elems) * elem_size; }

// Reads the layout dimensions (counts and strides; the pointers are filled by the caller).
BlockLayoutView LayoutDims(Napi::Env env, Napi::Object params) {
  BlockLayoutView l;
  l.batch = PropInt32(params, "layoutBatch");
  l.heads = PropInt32(params, "layoutHeads");
  l.q_blocks = PropInt32(params, "qBlocks");
  l.k_blocks = PropInt32(params, "kBlocks");
  l.max_blocks = PropInt32(params, "maxBlocks");
  l.mask_max_blocks = PropInt32(params, "maskMaxBlocks");
  l.block_size = PropInt32(params, "blockSize");
  SK_THROW_RANGE_IF(l.batch < 0 || l.heads < 0 || l.q_blocks < 0 || l.k_blocks < 0 || l.max_blocks < 0 ||
                        l.mask_max_blocks < 0 || l.block_size < 1,
                    env, "attention: layout dimensions must be non-negative and blockSize positive");
  return l;
}

int64_t LayoutRows(const BlockLayoutView& l) { return static_cast<int64_t>(l.batch) * l.heads * l.q_blocks; }

Napi::Value AttentionForward(const Napi::CallbackInfo& info) {
  OpArgs a(info);
  Napi::Env env = a.env();
  AttentionParams p;
  const int32_t dtype = a.Int32("dtype");
  SK_THROW_RANGE_IF(!is_valid_dtype(dtype), env, "attention: dtype is not a dtype id: ", dtype);
  p.dtype = static_cast<DType>(dtype);
  p.batch = a.Int32("batch");
  p.heads_q = a.Int32("headsQ");
  p.heads_k = a.Int32("headsK");
  p.seq_q = a.Int32("seqQ");
  p.seq_k = a.Int32("seqK");
  p.head_dim = a.Int32("headDim");
  p.softmax_scale = static_cast<float>(a.Double("scale"));
  p.causal = a.Bool("causal");
  SK_THROW_RANGE_IF(p.batch < 0 || p.heads_q < 0 || p.heads_k < 0 || p.seq_q < 0 || p.seq_k < 0 || p.head_dim < 1,
                    env, "attention: sizes must be non-negative and headDim positive");
  p.layout = LayoutDims(env, a.params());

  // Dense row-major strides, in elements.
  const int64_t d = p.head_dim;
  p.q_row_stride = p.o_row_stride = d;
  p.q_head_stride = p.o_head_stride = p.seq_q * d;
  p.q_batch_stride = p.o_batch_stride = p.heads_q * p.q_head_stride;
  p.k_row_stride = p.v_row_stride = d;
  p.k_head_stride = p.v_head_stride = p.seq_k * d;
  p.k_batch_stride = p.v_batch_stride = p.heads_k * p.k_head_stride;

  // Storage sizes are checked against what the kernels touch (RangeError when a storage is short).
  const size_t es = dtype_size(p.dtype);
  const int64_t q_elems = p.batch * p.q_batch_stride, kv_elems = p.batch * p.k_batch_stride;
  p.q = a.In("q", Bytes(q_elems, es));
  p.k = a.In("k", Bytes(kv_elems, es));
  p.v = a.In("v", Bytes(kv_elems, es));
  p.out = a.Out("out", Bytes(q_elems, es));
  p.lse = static_cast<float*>(a.OptOut("lse", Bytes(static_cast<int64_t>(p.batch) * p.heads_q * p.seq_q, 4)));
  const int64_t rows = LayoutRows(p.layout);
  p.layout.full_cnt = static_cast<const int32_t*>(a.In("fullCnt", Bytes(rows, 4)));
  p.layout.full_idx = static_cast<const int32_t*>(a.In("fullIdx", Bytes(rows * p.layout.max_blocks, 4)));
  p.layout.mask_cnt = static_cast<const int32_t*>(a.In("maskCnt", Bytes(rows, 4)));
  p.layout.mask_idx = static_cast<const int32_t*>(a.In("maskIdx", Bytes(rows * p.layout.mask_max_blocks, 4)));
  if (a.HasTensor("keyPerm")) {
    p.key_perm_heads = a.Int32("keyPermHeads");
    SK_THROW_RANGE_IF(p.key_perm_heads < 0, env, "attention: keyPermHeads must be non-negative");
    p.key_perm = static_cast<const int32_t*>(
        a.In("keyPerm", Bytes(static_cast<int64_t>(p.batch) * p.key_perm_heads * p.seq_k, 4)));
  }

  a.Check(check_attention_params(p, a.cuda()));
  return a.Enqueue("blockSparseAttention", [p, cs = a.cuda_stream()](bool cuda) -> Status {
#if SK_WITH_CUDA
    if (cuda) return sk::cuda::attention_fwd(p, cs);
#else
    (void)cs;
    if (cuda) return Status::Internal("attention: a CUDA stream in a build without CUDA");
#endif
    return sk::cpu::attention_fwd(p);
  });
}

// An Int32Array argument with at least `elems` elements.
const int32_t* Int32ArrayArg(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t elems) {
  Napi::Env env = info.Env();
  SK_THROW_TYPE_IF(i >= info.Length() || !info[i].IsTypedArray() ||
                       info[i].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array,
                   env, name, " must be an Int32Array");
  auto ta = info[i].As<Napi::Int32Array>();
  SK_THROW_RANGE_IF(static_cast<int64_t>(ta.ElementLength()) < elems, env, name, " holds ", ta.ElementLength(),
                    " elements but ", elems, " are needed");
  return ta.Data();
}

Napi::Value AttentionCheckLayout(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  BlockLayoutView l = LayoutDims(env, GetObject(info, 4, "params"));
  const int64_t rows = LayoutRows(l);
  l.full_cnt = Int32ArrayArg(info, 0, "fullCnt", rows);
  l.full_idx = Int32ArrayArg(info, 1, "fullIdx", rows * l.max_blocks);
  l.mask_cnt = Int32ArrayArg(info, 2, "maskCnt", rows);
  l.mask_idx = Int32ArrayArg(info, 3, "maskIdx", rows * l.mask_max_blocks);
  const Status s = check_block_layout_host(l);
  if (!s.ok()) ThrowStatus(env, s);
  return env.Undefined();
}

Napi::Value AttentionCheckKeyPerm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int32_t batch = GetInt32(info, 1, "batch"), heads = GetInt32(info, 2, "heads"), seq_k = GetInt32(info, 3, "seqK");
  SK_THROW_RANGE_IF(batch < 0 || heads < 0 || seq_k < 0, env, "attention: key_perm dimensions must be >= 0");
  const int32_t* perm = Int32ArrayArg(info, 0, "perm", static_cast<int64_t>(batch) * heads * seq_k);
  const Status s = check_key_perm_host(perm, batch, heads, seq_k);
  if (!s.ok()) ThrowStatus(env, s);
  return env.Undefined();
}

void Init(Napi::Env env, Napi::Object exports) {
  exports.Set("attentionForward", Napi::Function::New(env, AttentionForward, "attentionForward"));
  exports.Set("attentionCheckLayout", Napi::Function::New(env, AttentionCheckLayout, "attentionCheckLayout"));
  exports.Set("attentionCheckKeyPerm", Napi::Function::New(env, AttentionCheckKeyPerm, "attentionCheckKeyPerm"));
}

}  // namespace

SK_REGISTER_BINDING(attention, Init);

}  // namespace sk::bind
