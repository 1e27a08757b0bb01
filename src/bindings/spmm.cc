// N-API binding of the block-sparse SpMM op and of block-CSR construction (contract: src/ops/spmm.h).
// No math here: argument plumbing, storage-size checks and the host round trips the CUDA side needs.
//
//   spmmForward(stream, {x, y, bias?, rowPtr, colIdx, values, rowOrder?}, params)
//     enqueues sk::{cpu,cuda}::spmm. params: dtype, n, m (rows of W), k (cols of W), bm, bk, nnzb, activation.
//   spmmDenseForward(stream, {x, w, y, bias?}, params)
//     enqueues sk::{cpu,cuda}::dense_linear (the 'dense' backend). params: dtype, n, m, k, activation.
//   spmmFromDense(stream, {w}, params) -> Promise<{nnzb, rowPtr, colIdx, rowOrder, values}>
//     reads the dense [rows, cols] W on the stream's worker (CUDA: one device-to-host copy), runs
//     bsr_count / bsr_fill there, and resolves with host arrays (Int32Array x 3, values as an ArrayBuffer
//     owning the filled blocks). lib/ uploads them. params: dtype, rows, cols, bm, bk, tolerance, sparsity
//     (< 0: no pruning).
//   spmmToDense(stream, {rowPtr, colIdx, values, out}, params)
//     enqueues bsr_to_dense into out [rows, cols]. CUDA: there is no device kernel for this one-off
//     expansion, so the task copies the block-CSR to the host, expands it there and uploads the result.
//   spmmZeroPadding(stream, {rowPtr, colIdx, values}, params)
//     zeroes the entries of stored blocks that lie outside [rows, cols] (user-given values may hold
//     anything there; the kernels multiply padded weight columns by zero-filled activations, so an Inf or
//     NaN there would leak into the output). CPU: in place; CUDA: host round trip (build time only).
//   spmmCheckStructure(rowPtr: Int32Array, colIdx: Int32Array, params) -> Int32Array rowOrder
//     synchronous host gate for user-given arrays: check_bsr_structure (RangeError naming the position and
//     value), then bsr_row_order (block rows by nnz descending, the GPU's schedule).
//
// lib/spmm validates everything first with messages naming the argument; the checks here keep a bug of
// lib/ from becoming an out-of-bounds access (storage sizes, check_spmm_params / check_bsr_structure).
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "bindings/async.h"
#include "bindings/napi_util.h"
#include "bindings/op_args.h"
#include "bindings/registry.h"
#include "ops/spmm.h"
#include "runtime/gpu_api.h"

namespace sk::bind {
namespace {

size_t Bytes(int64_t elems, size_t elem_size) { return static_cast<size_t>(elems) * elem_size; }
int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

DType FloatDTypeParam(const OpArgs& a, const char* op) {
  const int32_t id = a.Int32("dtype");
  SK_THROW_RANGE_IF(!is_valid_dtype(id) || !is_float_dtype(static_cast<DType>(id)), a.env(), op,
                    ": dtype id ", id, " is not float32, float16 or bfloat16");
  return static_cast<DType>(id);
}

Activation ActivationParam(const OpArgs& a, const char* op) {
  const int32_t act = a.Int32("activation");
  SK_THROW_RANGE_IF(act < 0 || act > static_cast<int32_t>(Activation::kSilu), a.env(), op, ": activation id ", act,
                    " is not one of none/relu/gelu/silu");
  return static_cast<Activation>(act);
}

// The block-CSR header (shape, block, grid, nnzb) from params; pointers are filled by the caller.
// Largest block (bm * bk elements) accepted, as in lib/spmm/matrix.ts.
constexpr int64_t kMaxBlockElems = int64_t{1} << 24;

BlockCsrView CsrHeader(Napi::Env env, Napi::Object params) {
  BlockCsrView w;
  w.rows = PropInt32(params, "rows");
  w.cols = PropInt32(params, "cols");
  w.bm = PropInt32(params, "bm");
  w.bk = PropInt32(params, "bk");
  SK_THROW_RANGE_IF(w.rows < 0 || w.cols < 0 || w.bm < 1 || w.bk < 1, env,
                    "spmm: shape must be non-negative and the block shape positive");
  // Same bound as lib/ (checkBlockShape): a block of 2^30 elements would mean gigabytes of padding for a
  // matrix of a few elements, i.e. minutes of zero-filling on the stream, not an error.
  SK_THROW_RANGE_IF(static_cast<int64_t>(w.bm) * w.bk > kMaxBlockElems, env, "spmm: the block shape [", w.bm, ", ",
                    w.bk, "] has more than 2^24 elements");
  w.mb = static_cast<int32_t>(CeilDiv(w.rows, w.bm));
  w.kb = static_cast<int32_t>(CeilDiv(w.cols, w.bk));
  w.nnzb = HasProp(params, "nnzb") ? PropInt64(params, "nnzb") : 0;
  SK_THROW_RANGE_IF(w.nnzb < 0 || w.nnzb > static_cast<int64_t>(w.mb) * w.kb, env, "spmm: nnzb ", w.nnzb,
                    " is outside [0, mb * kb]");
  return w;
}

// The block-CSR tensors of a call (read access), sized from the header.
void CsrTensors(OpArgs& a, BlockCsrView* w, DType dtype, bool row_order) {
  const int64_t block_elems = static_cast<int64_t>(w->bm) * w->bk;
  w->row_ptr = static_cast<const int32_t*>(a.In("rowPtr", Bytes(w->mb + 1, 4)));
  w->col_idx = static_cast<const int32_t*>(a.In("colIdx", Bytes(w->nnzb, 4)));
  w->values = a.In("values", Bytes(w->nnzb * block_elems, dtype_size(dtype)));
  if (row_order) w->row_order = static_cast<const int32_t*>(a.OptIn("rowOrder", Bytes(w->mb, 4)));
}

// ---- the two compute entry points ----

Napi::Value SpmmForward(const Napi::CallbackInfo& info) {
  OpArgs a(info);
  Napi::Env env = a.env();
  SpmmParams p;
  p.dtype = FloatDTypeParam(a, "spmm");
  p.activation = ActivationParam(a, "spmm");
  p.n = a.Int32("n");
  SK_THROW_RANGE_IF(p.n < 0, env, "spmm: n must be >= 0");
  p.w = CsrHeader(env, a.params());
  const size_t es = dtype_size(p.dtype);
  p.x_row_stride = p.w.cols;
  p.y_row_stride = p.w.rows;
  p.x = a.In("x", Bytes(static_cast<int64_t>(p.n) * p.w.cols, es));
  p.y = a.Out("y", Bytes(static_cast<int64_t>(p.n) * p.w.rows, es));
  p.bias = a.OptIn("bias", Bytes(p.w.rows, es));
  CsrTensors(a, &p.w, p.dtype, /*row_order=*/true);
  a.Check(check_spmm_params(p, a.cuda()));
  return a.Enqueue("spmm", [p, cs = a.cuda_stream()](bool cuda) -> Status {
#if SK_WITH_CUDA
    if (cuda) return sk::cuda::spmm(p, cs);
#else
    (void)cs;
    if (cuda) return Status::Internal("spmm: a CUDA stream in a build without CUDA");
#endif
    return sk::cpu::spmm(p);
  });
}

Napi::Value SpmmDenseForward(const Napi::CallbackInfo& info) {
  OpArgs a(info);
  Napi::Env env = a.env();
  DenseLinearParams p;
  p.dtype = FloatDTypeParam(a, "spmm (dense)");
  p.activation = ActivationParam(a, "spmm (dense)");
  p.n = a.Int32("n");
  p.m = a.Int32("m");
  p.k = a.Int32("k");
  SK_THROW_RANGE_IF(p.n < 0 || p.m < 0 || p.k < 0, env, "spmm (dense): n, m, k must be >= 0");
  const size_t es = dtype_size(p.dtype);
  p.x_row_stride = p.w_row_stride = p.k;
  p.y_row_stride = p.m;
  p.x = a.In("x", Bytes(static_cast<int64_t>(p.n) * p.k, es));
  p.w = a.In("w", Bytes(static_cast<int64_t>(p.m) * p.k, es));
  p.y = a.Out("y", Bytes(static_cast<int64_t>(p.n) * p.m, es));
  p.bias = a.OptIn("bias", Bytes(p.m, es));
  a.Check(check_dense_linear_params(p, a.cuda()));
  return a.Enqueue("spmm", [p, cs = a.cuda_stream()](bool cuda) -> Status {
#if SK_WITH_CUDA
    if (cuda) return sk::cuda::dense_linear(p, cs);
#else
    (void)cs;
    if (cuda) return Status::Internal("spmm: a CUDA stream in a build without CUDA");
#endif
    return sk::cpu::dense_linear(p);
  });
}

// ---- construction ----

// Host memory released with free(); ownership can move into an external ArrayBuffer.
struct HostBuffer {
  void* data = nullptr;
  size_t bytes = 0;
  HostBuffer() = default;
  HostBuffer(const HostBuffer&) = delete;
  HostBuffer& operator=(const HostBuffer&) = delete;
  ~HostBuffer() { std::free(data); }
  Status Allocate(size_t n, const char* what) {
    bytes = n;
    if (n == 0) return Status::Ok();
    data = std::malloc(n);
    if (data == nullptr)
      return Status::Error(ErrorCode::kOutOfMemory, std::string("spmm: cannot allocate host memory for ") + what);
    return Status::Ok();
  }
};

// An ArrayBuffer taking ownership of buf's memory (a copy where external buffers are forbidden).
Napi::Value TakeArrayBuffer(Napi::Env env, HostBuffer* buf) {
  if (buf->bytes == 0 || buf->data == nullptr) return Napi::ArrayBuffer::New(env, 0);
  void* data = buf->data;
  const size_t bytes = buf->bytes;
  buf->data = nullptr;
  napi_value ab;
  if (napi_create_external_arraybuffer(
          env, data, bytes, [](napi_env, void* d, void*) { std::free(d); }, nullptr, &ab) == napi_ok)
    return Napi::Value(env, ab);
  Napi::ArrayBuffer copy = Napi::ArrayBuffer::New(env, bytes);
  std::memcpy(copy.Data(), data, bytes);
  std::free(data);
  return copy;
}

Napi::Int32Array ToInt32Array(Napi::Env env, const std::vector<int32_t>& v) {
  Napi::Int32Array out = Napi::Int32Array::New(env, v.size());
  if (!v.empty()) std::memcpy(out.Data(), v.data(), v.size() * 4);
  return out;
}

struct BuildResult {
  int64_t nnzb = 0;
  std::vector<int32_t> row_ptr, col_idx, row_order;
  HostBuffer values;
};

Napi::Value SpmmFromDense(const Napi::CallbackInfo& info) {
  OpArgs a(info);
  Napi::Env env = a.env();
  BsrBuildParams p;
  p.dtype = FloatDTypeParam(a, "BlockSparseMatrix.fromDense");
  p.rows = a.Int32("rows");
  p.cols = a.Int32("cols");
  p.bm = a.Int32("bm");
  p.bk = a.Int32("bk");
  p.row_stride = p.cols;
  p.tolerance = static_cast<float>(a.Double("tolerance"));
  p.target_sparsity = static_cast<float>(a.Double("sparsity"));
  SK_THROW_RANGE_IF(p.rows < 0 || p.cols < 0 || p.bm < 1 || p.bk < 1, env,
                    "BlockSparseMatrix.fromDense: shape must be non-negative and the block shape positive");
  SK_THROW_RANGE_IF(static_cast<int64_t>(p.bm) * p.bk > kMaxBlockElems, env, "BlockSparseMatrix.fromDense: the block shape [",
                    p.bm, ", ", p.bk, "] has more than 2^24 elements");
  const size_t bytes = Bytes(static_cast<int64_t>(p.rows) * p.cols, dtype_size(p.dtype));
  p.dense = a.In("w", bytes);

  auto result = std::make_shared<BuildResult>();
  auto run = [p, result, bytes, cs = a.cuda_stream()](bool cuda) mutable -> Status {
    // CUDA: the selection is a host computation (two passes over W, a sort for pruning); one
    // device-to-host copy of W on the worker is cheaper than a device implementation for a one-off build.
    HostBuffer host;
    if (cuda) {
      SK_RETURN_IF_ERROR(host.Allocate(bytes, "the dense weight"));
      if (bytes > 0) SK_RETURN_IF_ERROR(gpu::memcpy_d2h(host.data, p.dense, bytes, cs));
      p.dense = host.data;
    }
    int64_t nnzb = 0;
    SK_RETURN_IF_ERROR(cpu::bsr_count(p, &nnzb));
    const int64_t mb = CeilDiv(p.rows, p.bm);
    try {
      result->row_ptr.resize(static_cast<size_t>(mb + 1));
      result->col_idx.resize(static_cast<size_t>(nnzb));
      result->row_order.resize(static_cast<size_t>(mb));
    } catch (const std::bad_alloc&) {
      return Status::Error(ErrorCode::kOutOfMemory, "BlockSparseMatrix.fromDense: cannot allocate the index arrays");
    }
    SK_RETURN_IF_ERROR(result->values.Allocate(
        Bytes(nnzb * static_cast<int64_t>(p.bm) * p.bk, dtype_size(p.dtype)), "the block values"));
    BsrBuildOutput out;
    out.row_ptr = result->row_ptr.data();
    out.col_idx = result->col_idx.data();
    out.values = result->values.data;
    out.row_order = result->row_order.data();
    out.nnzb = nnzb;
    result->nnzb = nnzb;
    return cpu::bsr_fill(p, out);
  };
  return a.EnqueueWithPromise("BlockSparseMatrix.fromDense", run, [result](Napi::Env env) -> Napi::Value {
    Napi::Object o = Napi::Object::New(env);
    o.Set("nnzb", Napi::Number::New(env, static_cast<double>(result->nnzb)));
    o.Set("rowPtr", ToInt32Array(env, result->row_ptr));
    o.Set("colIdx", ToInt32Array(env, result->col_idx));
    o.Set("rowOrder", ToInt32Array(env, result->row_order));
    o.Set("values", TakeArrayBuffer(env, &result->values));
    return o;
  });
}

// Copies the block-CSR arrays of `w` (device pointers) to host buffers and points `host` at them.
Status CsrToHost(const BlockCsrView& w, DType dtype, void* cs, std::vector<int32_t>* row_ptr,
                 std::vector<int32_t>* col_idx, HostBuffer* values, BlockCsrView* host) {
  const size_t vbytes = Bytes(w.nnzb * static_cast<int64_t>(w.bm) * w.bk, dtype_size(dtype));
  try {
    row_ptr->resize(static_cast<size_t>(w.mb + 1));
    col_idx->resize(static_cast<size_t>(w.nnzb));
  } catch (const std::bad_alloc&) {
    return Status::Error(ErrorCode::kOutOfMemory, "spmm: cannot allocate host index arrays");
  }
  SK_RETURN_IF_ERROR(values->Allocate(vbytes, "block values"));
  SK_RETURN_IF_ERROR(gpu::memcpy_d2h(row_ptr->data(), w.row_ptr, row_ptr->size() * 4, cs));
  if (w.nnzb > 0) {
    SK_RETURN_IF_ERROR(gpu::memcpy_d2h(col_idx->data(), w.col_idx, col_idx->size() * 4, cs));
    SK_RETURN_IF_ERROR(gpu::memcpy_d2h(values->data, w.values, vbytes, cs));
  }
  *host = w;
  host->row_ptr = row_ptr->data();
  host->col_idx = col_idx->data();
  host->values = values->data;
  host->row_order = nullptr;
  return Status::Ok();
}

Napi::Value SpmmToDense(const Napi::CallbackInfo& info) {
  OpArgs a(info);
  Napi::Env env = a.env();
  const DType dtype = FloatDTypeParam(a, "BlockSparseMatrix.toDense");
  BlockCsrView w = CsrHeader(env, a.params());
  CsrTensors(a, &w, dtype, /*row_order=*/false);
  const size_t bytes = Bytes(static_cast<int64_t>(w.rows) * w.cols, dtype_size(dtype));
  void* out = a.Out("out", bytes);
  return a.Enqueue("BlockSparseMatrix.toDense", [w, dtype, out, bytes, cs = a.cuda_stream()](bool cuda) -> Status {
    if (!cuda) return cpu::bsr_to_dense(w, dtype, out, w.cols);
    std::vector<int32_t> row_ptr, col_idx;
    HostBuffer values, dense;
    BlockCsrView host;
    SK_RETURN_IF_ERROR(CsrToHost(w, dtype, cs, &row_ptr, &col_idx, &values, &host));
    SK_RETURN_IF_ERROR(dense.Allocate(bytes, "the dense matrix"));
    SK_RETURN_IF_ERROR(cpu::bsr_to_dense(host, dtype, dense.data, w.cols));
    if (bytes == 0) return Status::Ok();
    // A pageable source is staged by the driver before cudaMemcpyAsync returns: `dense` may go after.
    return gpu::memcpy_h2d(out, dense.data, bytes, cs);
  });
}

// Zeroes the out-of-range entries of every stored block of the last block row / block column.
Status ZeroPaddingHost(const BlockCsrView& w, DType dtype, void* values) {
  const int64_t es = static_cast<int64_t>(dtype_size(dtype));
  const int64_t block_bytes = static_cast<int64_t>(w.bm) * w.bk * es;
  const int64_t rows_last = w.rows - static_cast<int64_t>(w.mb - 1) * w.bm;  // valid rows of the last block row
  const int64_t cols_last = w.cols - static_cast<int64_t>(w.kb - 1) * w.bk;
  for (int64_t r = 0; r < w.mb; ++r) {
    for (int64_t j = w.row_ptr[r]; j < w.row_ptr[r + 1]; ++j) {
      char* blk = static_cast<char*>(values) + j * block_bytes;
      const int64_t nrows = r == w.mb - 1 ? rows_last : w.bm;
      const int64_t ncols = w.col_idx[j] == w.kb - 1 ? cols_last : w.bk;
      if (ncols < w.bk)
        for (int64_t i = 0; i < nrows; ++i)
          std::memset(blk + (i * w.bk + ncols) * es, 0, static_cast<size_t>((w.bk - ncols) * es));
      if (nrows < w.bm) std::memset(blk + nrows * w.bk * es, 0, static_cast<size_t>((w.bm - nrows) * w.bk * es));
    }
  }
  return Status::Ok();
}

Napi::Value SpmmZeroPadding(const Napi::CallbackInfo& info) {
  OpArgs a(info);
  Napi::Env env = a.env();
  const DType dtype = FloatDTypeParam(a, "BlockSparseMatrix.fromBlockCsr");
  BlockCsrView w = CsrHeader(env, a.params());
  const int64_t block_elems = static_cast<int64_t>(w.bm) * w.bk;
  w.row_ptr = static_cast<const int32_t*>(a.In("rowPtr", Bytes(w.mb + 1, 4)));
  w.col_idx = static_cast<const int32_t*>(a.In("colIdx", Bytes(w.nnzb, 4)));
  void* values = a.InOut("values", Bytes(w.nnzb * block_elems, dtype_size(dtype)));
  w.values = values;
  return a.Enqueue("BlockSparseMatrix.fromBlockCsr", [w, dtype, values, cs = a.cuda_stream()](bool cuda) -> Status {
    // The structure was checked on the host before upload; re-check the copy we index with (cheap).
    if (!cuda) {
      SK_RETURN_IF_ERROR(check_bsr_structure(w));
      return ZeroPaddingHost(w, dtype, values);
    }
    std::vector<int32_t> row_ptr, col_idx;
    HostBuffer host_values;
    BlockCsrView host;
    SK_RETURN_IF_ERROR(CsrToHost(w, dtype, cs, &row_ptr, &col_idx, &host_values, &host));
    SK_RETURN_IF_ERROR(check_bsr_structure(host));
    SK_RETURN_IF_ERROR(ZeroPaddingHost(host, dtype, host_values.data));
    if (host_values.bytes == 0) return Status::Ok();
    return gpu::memcpy_h2d(values, host_values.data, host_values.bytes, cs);
  });
}

// An Int32Array argument (exact length checks are the caller's: check_bsr_structure reads mb + 1 / nnzb).
Napi::Int32Array Int32ArrayArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Napi::Env env = info.Env();
  SK_THROW_TYPE_IF(i >= info.Length() || !info[i].IsTypedArray() ||
                       info[i].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array,
                   env, name, " must be an Int32Array");
  return info[i].As<Napi::Int32Array>();
}

Napi::Value SpmmCheckStructure(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Int32Array row_ptr = Int32ArrayArg(info, 0, "rowPtr");
  Napi::Int32Array col_idx = Int32ArrayArg(info, 1, "colIdx");
  BlockCsrView w = CsrHeader(env, GetObject(info, 2, "params"));
  SK_THROW_RANGE_IF(static_cast<int64_t>(row_ptr.ElementLength()) != w.mb + 1, env, "rowPtr holds ",
                    row_ptr.ElementLength(), " entries but the block grid needs mb + 1 = ", w.mb + 1);
  // nnzb comes from the array itself (row_ptr[mb] is checked against it by check_bsr_structure).
  w.nnzb = static_cast<int64_t>(col_idx.ElementLength());
  w.row_ptr = row_ptr.Data();
  w.col_idx = col_idx.Data();
  w.values = w.nnzb > 0 ? col_idx.Data() : nullptr;  // only its presence is checked; never read here
  Status s = check_bsr_structure(w);
  if (!s.ok()) ThrowStatus(env, s);
  Napi::Int32Array order = Napi::Int32Array::New(env, static_cast<size_t>(w.mb));
  s = cpu::bsr_row_order(w.mb, w.row_ptr, order.Data());
  if (!s.ok()) ThrowStatus(env, s);
  return order;
}

void Init(Napi::Env env, Napi::Object exports) {
  exports.Set("spmmForward", Napi::Function::New(env, SpmmForward, "spmmForward"));
  exports.Set("spmmDenseForward", Napi::Function::New(env, SpmmDenseForward, "spmmDenseForward"));
  exports.Set("spmmFromDense", Napi::Function::New(env, SpmmFromDense, "spmmFromDense"));
  exports.Set("spmmToDense", Napi::Function::New(env, SpmmToDense, "spmmToDense"));
  exports.Set("spmmZeroPadding", Napi::Function::New(env, SpmmZeroPadding, "spmmZeroPadding"));
  exports.Set("spmmCheckStructure", Napi::Function::New(env, SpmmCheckStructure, "spmmCheckStructure"));
}

}  // namespace

SK_REGISTER_BINDING(spmm, Init);

}  // namespace sk::bind
