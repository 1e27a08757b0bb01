// N-API binding of PBS (permuted block-sparse attention) prefill: contracts src/ops/pbs.h (stages) and
// src/ops/attention.h (the sparse kernel). No math here.
//
//   pbsRun(stream, tensors, params) -> undefined, or a Promise<Float64Array(5)> with params.timing
//
// runs the stages named by params.stages, in this order, as ONE task on the stream (no host round trip
// between them, so the whole prefill is one enqueue):
//   kInvert    perm (a caller's tensor) -> invPerm: host check that every row is a segment-preserving
//              permutation, then the inverse (the only path with a device -> host copy; pbsSelectBlocks
//              uses it for permutations it did not make itself)
//   kIdentity  the identity permutation (the unpermuted "MeanPooling" baseline): scores zeroed, then the
//              permute stage, whose stable sort keeps tied keys in index order
//   kProxy     q, k -> scores                        sk::{cpu,cuda}::pbs_proxy_scores
//   kPermute   scores -> perm, invPerm               pbs_permute
//   kSelect    q, k, perm, invPerm -> layout, kept   pbs_pool_blocks (meanpool) + pbs_select
//   kAttention q, k, v, layout, perm -> out, lse     attention_fwd with key_perm = perm (none for kIdentity)
// Tensors (dense row-major): q [batch, headsQ, seqLen, headDim], k/v [batch, headsK, seqLen, headDim],
// scores float32 [batch, Hp, P], perm/invPerm int32 [batch, Hp, seqLen], qbar float32 [batch, headsQ, T,
// headDim], kbar float32 [batch, Hp, T, headDim], fullCnt/maskCnt int32 [batch, headsQ, T], fullIdx int32
// [batch, headsQ, T, T], maskIdx int32 [batch, headsQ, T, segmentSize/blockSize + 1], keptBlocks int32
// [batch, headsQ], out like q, lse float32 [batch, headsQ, seqLen]. Hp = headsK (gqaMode 0) or headsQ (1).
//
// With params.timing the task timestamps the stage boundaries (CUDA events recorded between the stages'
// kernels, or the worker's monotonic clock on the CPU) and the promise resolves with the milliseconds of
// [proxy, permute, pool, select, attention] (0 for a stage not run). The stages are the same kernels either
// way; the events are recorded on the stream between launches, so they add no synchronisation.
//
// lib/pbs validates every argument first with messages naming it; the checks here keep a bug of lib/ from
// becoming an out-of-bounds access (storage sizes, check_pbs_params, check_attention_params).
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "bindings/napi_util.h"
#include "bindings/op_args.h"
#include "bindings/registry.h"
#include "ops/attention.h"
#include "ops/pbs.h"
#include "runtime/gpu_api.h"

namespace sk::bind {
namespace {

// Values of params.stages (lib/native/pbs.ts keeps the same numbers).
enum Stage : int32_t {
  kProxy = 1,
  kPermute = 2,
  kSelect = 4,
  kAttention = 8,
  kInvert = 16,
  kIdentity = 32,
};
constexpr int32_t kAllStages = kProxy | kPermute | kSelect | kAttention | kInvert | kIdentity;

// Timestamp slots: before proxy, after proxy, after permute, after pool, after select, after attention.
constexpr int kMarks = 6;

size_t Bytes(int64_t elems, size_t elem_size) { return static_cast<size_t>(elems) * elem_size; }

// Stage boundaries of one task: CUDA events (created on the JS thread, recorded by the task, read on the
// JS thread once the task completed) or host clock readings. Owned by both the task and the promise
// callback; the last owner destroys the events, whichever thread that is.
struct Timing {
  bool cuda = false;
  std::array<void*, kMarks> events{};
  std::array<std::chrono::steady_clock::time_point, kMarks> host{};
  ~Timing() {
    for (void* e : events)
      if (e != nullptr) gpu::event_destroy(e);
  }
  Status Mark(int slot, void* cs) {
    if (cuda) return gpu::event_record(events[slot], cs);
    host[slot] = std::chrono::steady_clock::now();
    return Status::Ok();
  }
  // Milliseconds between consecutive marks.
  Status Elapsed(std::array<double, kMarks - 1>* ms) const {
    for (int i = 0; i + 1 < kMarks; ++i) {
      if (cuda) {
        float f = 0.f;
        SK_RETURN_IF_ERROR(gpu::event_elapsed_ms(&f, events[i], events[i + 1]));
        (*ms)[i] = f;
      } else {
        (*ms)[i] = std::chrono::duration<double, std::milli>(host[i + 1] - host[i]).count();
      }
    }
    return Status::Ok();
  }
};

// kInvert on host arrays: every (b, hp) row of perm must map each complete segment [gS, gS + S) onto
// itself and keep the tail [P, N) in place (the layouts' full blocks are run without a token mask, which
// is only causal when no key leaves its segment); writes inv[perm[x]] = x.
Status InvertHost(const int32_t* perm, int32_t* inv, int64_t rows, int32_t n, int32_t segment) {
  const int32_t complete = (n / segment) * segment;
  std::vector<uint8_t> seen(static_cast<size_t>(n));
  for (int64_t r = 0; r < rows; ++r) {
    const int32_t* p = perm + r * n;
    int32_t* q = inv + r * n;
    std::fill(seen.begin(), seen.end(), 0);
    for (int32_t x = 0; x < n; ++x) {
      const int32_t v = p[x];
      const int32_t lo = x < complete ? (x / segment) * segment : x;
      const int32_t hi = x < complete ? lo + segment : x + 1;
      if (v < lo || v >= hi || seen[v]) {
        const std::string where = "pbsSelectBlocks: perm[row " + std::to_string(r) + ", " + std::to_string(x) +
                                  "] = " + std::to_string(v);
        if (v >= lo && v < hi) return Status::Invalid(where + " repeats a key: each row must be a permutation");
        return Status::Invalid(where + (x < complete ? " leaves its segment [" + std::to_string(lo) + ", " +
                                                           std::to_string(hi) + ")"
                                                     : " moves a key of the unpermuted tail (it must be " +
                                                           std::to_string(x) + ")") +
                               ": a PBS permutation only reorders keys inside complete segments");
      }
      seen[v] = 1;
      q[v] = x;
    }
  }
  return Status::Ok();
}

Status RunInvert(const PbsParams& p, int64_t rows, bool cuda, void* cs) {
  const int32_t n = p.seq_len;
  if (!cuda) return InvertHost(p.perm, p.inv_perm, rows, n, p.segment_size);
#if SK_WITH_CUDA
  // A caller's permutation on the device: checked and inverted on the worker thread (the copy waits for
  // the work before it on this stream; nothing runs on the JS thread).
  std::vector<int32_t> host(static_cast<size_t>(rows) * n), inv(host.size());
  SK_RETURN_IF_ERROR(gpu::memcpy_d2h(host.data(), p.perm, host.size() * 4, cs));
  SK_RETURN_IF_ERROR(InvertHost(host.data(), inv.data(), rows, n, p.segment_size));
  SK_RETURN_IF_ERROR(gpu::memcpy_h2d(p.inv_perm, inv.data(), inv.size() * 4, cs));
  return gpu::stream_synchronize(cs);  // `inv` is pageable and about to go out of scope
#else
  (void)cs;
  return Status::Internal("pbs: a CUDA stream in a build without CUDA");
#endif
}

// The stages of one task, in order. `cuda` selects the backend (the stream's kind).
Status RunStages(const PbsParams& p, const AttentionParams& ap, int32_t stages, bool cuda, void* cs,
                 Timing* timing) {
  const PbsDims d = pbs_dims(p);
  const bool meanpool = p.selector == PbsSelector::kMeanPool;
  auto mark = [&](int slot) { return timing ? timing->Mark(slot, cs) : Status::Ok(); };
#if SK_WITH_CUDA
#define SK_PBS_STAGE(fn, ...) (cuda ? sk::cuda::fn(__VA_ARGS__, cs) : sk::cpu::fn(__VA_ARGS__))
#else
  if (cuda) return Status::Internal("pbs: a CUDA stream in a build without CUDA");
#define SK_PBS_STAGE(fn, ...) sk::cpu::fn(__VA_ARGS__)
#endif
  SK_RETURN_IF_ERROR(mark(0));
  if (stages & kProxy) SK_RETURN_IF_ERROR(SK_PBS_STAGE(pbs_proxy_scores, p));
  SK_RETURN_IF_ERROR(mark(1));
  if (stages & kInvert) SK_RETURN_IF_ERROR(RunInvert(p, static_cast<int64_t>(p.batch) * d.perm_heads, cuda, cs));
  if (stages & kIdentity) {
    // All-equal scores: the stable argsort of every segment is the identity.
    const size_t bytes = Bytes(static_cast<int64_t>(p.batch) * d.perm_heads * d.permuted_len, 4);
    if (bytes > 0) {
#if SK_WITH_CUDA
      if (cuda) SK_RETURN_IF_ERROR(gpu::memset_async(p.scores, 0, bytes, cs));
#endif
      if (!cuda) std::memset(p.scores, 0, bytes);
    }
  }
  if (stages & (kPermute | kIdentity)) SK_RETURN_IF_ERROR(SK_PBS_STAGE(pbs_permute, p));
  SK_RETURN_IF_ERROR(mark(2));
  if ((stages & kSelect) && meanpool) SK_RETURN_IF_ERROR(SK_PBS_STAGE(pbs_pool_blocks, p));
  SK_RETURN_IF_ERROR(mark(3));
  if (stages & kSelect) SK_RETURN_IF_ERROR(SK_PBS_STAGE(pbs_select, p));
  SK_RETURN_IF_ERROR(mark(4));
  if (stages & kAttention) SK_RETURN_IF_ERROR(SK_PBS_STAGE(attention_fwd, ap));
  SK_RETURN_IF_ERROR(mark(5));
#undef SK_PBS_STAGE
  return Status::Ok();
}

Napi::Value PbsRun(const Napi::CallbackInfo& info) {
  OpArgs a(info);
  Napi::Env env = a.env();
  const int32_t stages = a.Int32("stages");
  SK_THROW_RANGE_IF(stages <= 0 || (stages & ~kAllStages) != 0, env, "pbs: stages is not a stage mask: ", stages);
  SK_THROW_RANGE_IF((stages & kInvert) && (stages & (kPermute | kIdentity)), env,
                    "pbs: kInvert takes the caller's permutation; it cannot follow a permute stage");

  PbsParams p;
  const int32_t dtype = a.Int32("dtype");
  SK_THROW_RANGE_IF(!is_valid_dtype(dtype), env, "pbs: dtype is not a dtype id: ", dtype);
  p.dtype = static_cast<DType>(dtype);
  p.batch = a.Int32("batch");
  p.heads_q = a.Int32("headsQ");
  p.heads_k = a.Int32("headsK");
  p.seq_len = a.Int32("seqLen");
  p.head_dim = a.Int32("headDim");
  p.block_size = a.Int32("blockSize");
  p.segment_size = a.Int32("segmentSize");
  p.threshold = static_cast<float>(a.Double("threshold"));
  p.softmax_scale = static_cast<float>(a.Double("scale"));
  p.gqa_mode = static_cast<PbsGqaMode>(a.Int32("gqaMode"));
  p.proxy_rows = a.Int32("proxyRows");
  p.proxy_causal = a.Bool("proxyCausal");
  p.force_sink = a.Bool("forceSink");
  p.pool = static_cast<PbsPool>(a.Int32("pool"));
  p.selector = static_cast<PbsSelector>(a.Int32("selector"));
  p.antidiag_stride = a.Int32("antidiagStride");
  SK_THROW_RANGE_IF(p.batch < 1 || p.heads_q < 1 || p.heads_k < 1 || p.seq_len < 1 || p.head_dim < 1 ||
                        p.block_size < 1 || p.segment_size < 1,
                    env, "pbs: sizes must be positive");
  SK_THROW_RANGE_IF(p.segment_size % p.block_size != 0, env, "pbs: segmentSize must be a multiple of blockSize");
  const PbsDims d = pbs_dims(p);
  // Every buffer size below is a product of these; keep them far from int64 overflow (lib/ bounds the real
  // sizes much lower, and check_pbs_params then validates shapes and options per stage).
  SK_THROW_RANGE_IF(static_cast<double>(p.batch) * std::max(p.heads_q, p.heads_k) * d.num_blocks * d.num_blocks >
                            9.0e15 ||
                        static_cast<double>(p.batch) * std::max(p.heads_q, p.heads_k) * p.seq_len * p.head_dim > 9.0e15,
                    env, "pbs: problem too large");

  // Dense row-major strides, in elements.
  const int64_t D = p.head_dim, N = p.seq_len, T = d.num_blocks;
  p.q_row_stride = p.k_row_stride = D;
  p.q_head_stride = p.k_head_stride = N * D;
  p.q_batch_stride = p.heads_q * p.q_head_stride;
  p.k_batch_stride = p.heads_k * p.k_head_stride;
  const size_t es = dtype_size(p.dtype);
  const int64_t bhq = static_cast<int64_t>(p.batch) * p.heads_q, bhp = static_cast<int64_t>(p.batch) * d.perm_heads;
  const bool meanpool = p.selector == PbsSelector::kMeanPool;
  const bool needs_qk = (stages & (kProxy | kAttention)) || ((stages & kSelect) != 0);
  const bool needs_scores = (stages & (kProxy | kPermute | kIdentity)) != 0;
  const bool needs_perm = (stages & ~kProxy) != 0;
  const bool needs_inv = (stages & (kPermute | kIdentity | kInvert | kSelect)) != 0;
  const bool needs_layout = (stages & (kSelect | kAttention)) != 0;

  // Storages, size-checked against what the stages touch; writes declared as writes (stream ordering).
  if (needs_qk) {
    p.q = a.In("q", Bytes(p.batch * p.q_batch_stride, es));
    p.k = a.In("k", Bytes(p.batch * p.k_batch_stride, es));
  }
  if (needs_scores && d.permuted_len > 0) {
    const size_t bytes = Bytes(bhp * d.permuted_len, 4);
    p.scores = static_cast<float*>((stages & (kProxy | kIdentity)) ? a.Out("scores", bytes) : a.In("scores", bytes));
  }
  if (needs_perm) {
    const bool writes = (stages & (kPermute | kIdentity)) != 0;
    p.perm = static_cast<int32_t*>(writes ? a.Out("perm", Bytes(bhp * N, 4)) : a.In("perm", Bytes(bhp * N, 4)));
  }
  if (needs_inv) {
    const bool writes = (stages & (kPermute | kIdentity | kInvert)) != 0;
    p.inv_perm =
        static_cast<int32_t*>(writes ? a.Out("invPerm", Bytes(bhp * N, 4)) : a.In("invPerm", Bytes(bhp * N, 4)));
  }
  if ((stages & kSelect) && meanpool) {
    p.qbar = static_cast<float*>(a.Out("qbar", Bytes(bhq * T * D, 4)));
    p.kbar = static_cast<float*>(a.Out("kbar", Bytes(bhp * T * D, 4)));
  }
  if (needs_layout) {
    auto layout = [&](const char* name, int64_t elems) {
      return static_cast<int32_t*>((stages & kSelect) ? a.Out(name, Bytes(elems, 4)) : a.In(name, Bytes(elems, 4)));
    };
    p.full_cnt = layout("fullCnt", bhq * T);
    p.full_idx = layout("fullIdx", bhq * T * d.max_blocks);
    p.mask_cnt = layout("maskCnt", bhq * T);
    p.mask_idx = layout("maskIdx", bhq * T * d.mask_max_blocks);
  }
  if (stages & kSelect) p.kept_blocks = static_cast<int32_t*>(a.OptOut("keptBlocks", Bytes(bhq, 4)));

  // Defence in depth: the same checks the stages run, before anything is enqueued.
  if (stages & kProxy) a.Check(check_pbs_params(p, PbsStage::kProxy, a.cuda()));
  if (stages & (kPermute | kIdentity)) a.Check(check_pbs_params(p, PbsStage::kPermute, a.cuda()));
  if (stages & kSelect) {
    if (meanpool) a.Check(check_pbs_params(p, PbsStage::kPool, a.cuda()));
    a.Check(check_pbs_params(p, PbsStage::kSelect, a.cuda()));
  }
  if (stages & kInvert) SK_THROW_RANGE_IF(p.perm == nullptr || p.inv_perm == nullptr, env, "pbs: kInvert needs perm and invPerm");

  AttentionParams ap;
  if (stages & kAttention) {
    a.Check(check_pbs_params(p, PbsStage::kPlan, a.cuda()));  // shapes and options the layout depends on
    ap.dtype = p.dtype;
    ap.batch = p.batch;
    ap.heads_q = p.heads_q;
    ap.heads_k = p.heads_k;
    ap.seq_q = ap.seq_k = p.seq_len;
    ap.head_dim = p.head_dim;
    ap.softmax_scale = d.scale;
    ap.causal = true;
    ap.q = p.q;
    ap.k = p.k;
    ap.q_row_stride = ap.k_row_stride = ap.v_row_stride = ap.o_row_stride = D;
    ap.q_head_stride = ap.o_head_stride = p.q_head_stride;
    ap.q_batch_stride = ap.o_batch_stride = p.q_batch_stride;
    ap.k_head_stride = ap.v_head_stride = p.k_head_stride;
    ap.k_batch_stride = ap.v_batch_stride = p.k_batch_stride;
    ap.v = a.In("v", Bytes(p.batch * p.k_batch_stride, es));
    ap.out = a.Out("out", Bytes(p.batch * p.q_batch_stride, es));
    ap.lse = static_cast<float*>(a.OptOut("lse", Bytes(bhq * N, 4)));
    ap.layout = pbs_layout_view(p);
    // The identity permutation is the kernel's default order: no gather.
    if (!(stages & kIdentity)) {
      ap.key_perm = p.perm;
      ap.key_perm_heads = d.perm_heads;
    }
    a.Check(check_attention_params(ap, a.cuda()));
  }

  std::shared_ptr<Timing> timing;
  if (a.Bool("timing")) {
    timing = std::make_shared<Timing>();
    timing->cuda = a.cuda();
    if (timing->cuda) {
      for (void*& e : timing->events) a.Check(gpu::event_create(&e, /*timing=*/true));
    }
  }
  auto run = [p, ap, stages, cs = a.cuda_stream(), timing](bool cuda) {
    return RunStages(p, ap, stages, cuda, cs, timing.get());
  };
  if (!timing) return a.Enqueue("pbsAttention", run);
  return a.EnqueueWithPromise("pbsAttention", run, [timing](Napi::Env e) -> Napi::Value {
    std::array<double, kMarks - 1> ms{};
    const Status s = timing->Elapsed(&ms);
    if (!s.ok()) ThrowStatus(e, s);
    Napi::Float64Array out = Napi::Float64Array::New(e, ms.size());
    for (size_t i = 0; i < ms.size(); ++i) out[i] = ms[i];
    return out;
  });
}

void Init(Napi::Env env, Napi::Object exports) {
  exports.Set("pbsRun", Napi::Function::New(env, PbsRun, "pbsRun"));
}

}  // namespace

SK_REGISTER_BINDING(pbs, Init);

}  // namespace sk::bind
