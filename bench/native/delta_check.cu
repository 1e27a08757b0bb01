// Standalone check + benchmark of the CUDA DeltaLinear (cuda/delta). Build: bench/native/build-delta.sh.
//   .bin-gpu/delta_check [seed] [--no-bench] [--bench-only] [--quick: walks at 2% length, for sanitizers]
//                      [--case N: only timing case N]
// 1. The shared scenarios (delta_check_scenarios.h: float64 reference, 10,000-step random walks, NaN,
//    subsets, a stream joining mid-run, refresh, per-channel thresholds, fp32/fp16/bf16, poisoned
//    outputs) run on the GPU through the same Backend interface as the CPU check. Every step also checks
//    that the kernel left its `sync` counters at zero (the invariant the next step relies on).
// 2. CUDA-only checks: device stream ids out of range, caller-provided workspace, shape-checked errors.
// 3. Timing on the anchor shape (fp16 W 4096 x 11008): CUDA events, 3 warm-up steps, median of 20 single
//    steps, and the mean of 50 back-to-back steps. Exit status non-zero on any failure.
#include <cuda_runtime.h>

#include <chrono>
#include <cstdlib>

#include "delta_check_scenarios.h"

#ifdef SK_DELTA_PROFILE
unsigned long long* g_delta_profile_marks = nullptr;  // read by the kernel launcher (kernel_args.cuh)
#endif

namespace {

using namespace dc;

#define CK(expr)                                                                                   \
  do {                                                                                             \
    const cudaError_t e_ = (expr);                                                                 \
    if (e_ != cudaSuccess) {                                                                       \
      std::fprintf(stderr, "CUDA error %s at %s:%d: %s\n", cudaGetErrorName(e_), __FILE__, __LINE__, #expr); \
      std::exit(2);                                                                                \
    }                                                                                              \
  } while (0)

struct DevBuf {
  void* p = nullptr;
  size_t n = 0;
  void alloc(size_t bytes) {
    if (p) CK(cudaFree(p));
    p = nullptr;
    n = bytes;
    if (bytes) CK(cudaMalloc(&p, bytes));
  }
  void upload(const void* src, size_t bytes) {
    if (bytes > n || !p) alloc(bytes);
    if (bytes) CK(cudaMemcpy(p, src, bytes, cudaMemcpyHostToDevice));
  }
  void download(void* dst, size_t bytes) const {
    if (bytes) CK(cudaMemcpy(dst, p, bytes, cudaMemcpyDeviceToHost));
  }
  template <class T>
  T* as() const { return static_cast<T*>(p); }
  ~DevBuf() {
    if (p) cudaFree(p);
  }
};

class GpuBackend : public Backend {
 public:
  const char* name() const override { return "cuda"; }

  Status build(const HostOp& op) override {
    op_ = op;
    ld_ = sk::delta_wt_ld(op.M, op.wt_dtype);
    const auto w = encode(op.w, op.wt_dtype);
    w_.upload(w.data(), w.size());
    wt_.alloc(static_cast<size_t>(op.K) * ld_ * esize(op.wt_dtype) + 16);
    CK(cudaMemset(wt_.p, 0xAB, wt_.n));  // padding must be rewritten with zeros
    bias_.upload(op.bias.data(), op.bias.size() * 4);
    theta_.upload(op.theta.data(), op.theta.size() * 4);
    const Status st = sk::cuda::delta_transpose_weights(w_.p, op.wt_dtype, op.M, op.K, wt_.p, ld_, nullptr);
    CK(cudaDeviceSynchronize());
    return st;
  }
  std::vector<float> read_wt(int64_t* ld) override {
    *ld = ld_;
    std::vector<uint8_t> raw(static_cast<size_t>(op_.K) * ld_ * esize(op_.wt_dtype));
    wt_.download(raw.data(), raw.size());
    return decode(raw.data(), op_.wt_dtype, static_cast<size_t>(op_.K) * ld_);
  }
  Status init_state(int S) override {
    S_ = S;
    const sk::DeltaStateSizes z = sk::delta_state_sizes(S, op_.M, op_.K);
    x_ref_.alloc(z.x_ref);
    y_acc_.alloc(z.y_acc);
    init_.alloc(z.initialized);
    steps_.alloc(z.steps);
    parity_.alloc(z.parity);
    stats_.alloc(z.stats);
    sync_.alloc(z.sync);
    // Poison: NaN references/accumulators, "initialised" flags set, garbage counters; invalidate() must
    // clear the flags and the counters, and nothing may read the rest before a stream's first step.
    if (z.x_ref) CK(cudaMemset(x_ref_.p, 0xFF, z.x_ref));
    if (z.y_acc) CK(cudaMemset(y_acc_.p, 0xFF, z.y_acc));
    if (z.initialized) CK(cudaMemset(init_.p, 1, z.initialized));
    if (z.steps) CK(cudaMemset(steps_.p, 0x11, z.steps));
    if (z.parity) CK(cudaMemset(parity_.p, 0, z.parity));
    if (z.stats) CK(cudaMemset(stats_.p, 0, z.stats));
    CK(cudaMemset(sync_.p, 0x55, z.sync));
    const Status st = sk::cuda::delta_invalidate(view(), op_.M, nullptr);
    CK(cudaDeviceSynchronize());
    return st;
  }
  Status step(StepIO& io) override {
    sk::DeltaStepParams p = params(io.x_dtype, io.rows, io.act, io.k_splits);
    x_.upload(io.x.data(), io.x.size());
    p.x = x_.p;
    if (io.ids) {
      ids_.upload(io.ids->data(), io.ids->size() * 4);
      p.stream_ids = ids_.as<int32_t>();
    }
    const size_t ybytes = static_cast<size_t>(io.rows) * op_.M * esize(io.x_dtype);
    y_.alloc(ybytes + 16);
    na_.alloc(static_cast<size_t>(io.rows) * 4 + 16);
    CK(cudaMemset(y_.p, 0xFF, y_.n));  // NaN in every float dtype
    CK(cudaMemset(na_.p, 0x7F, na_.n));
    p.y = y_.p;
    p.n_active = na_.as<int32_t>();
    const Status st = sk::cuda::delta_step(p, nullptr);
    CK(cudaDeviceSynchronize());  // a device fault aborts the program here, with its name
    if (!st.ok()) return st;
    io.y.resize(ybytes);
    io.n_active.resize(io.rows);
    y_.download(io.y.data(), ybytes);
    na_.download(io.n_active.data(), static_cast<size_t>(io.rows) * 4);
    std::vector<int32_t> sync(sync_.n / 4);
    sync_.download(sync.data(), sync_.n);
    for (size_t i = 0; i < sync.size(); ++i) {
      if (sync[i] != 0) return Status::Internal("sync counter " + std::to_string(i) + " left at " + std::to_string(sync[i]));
    }
    return st;
  }
  Status reset(const std::vector<int32_t>& ids) override {
    ids_.upload(ids.data(), ids.size() * 4);
    const Status st = sk::cuda::delta_reset(view(), ids_.as<int32_t>(), static_cast<int32_t>(ids.size()), nullptr);
    CK(cudaDeviceSynchronize());
    return st;
  }
  Status invalidate() override {
    const Status st = sk::cuda::delta_invalidate(view(), op_.M, nullptr);
    CK(cudaDeviceSynchronize());
    return st;
  }
  HostState read_state() override {
    HostState h;
    h.S = S_;
    const sk::DeltaStateSizes z = sk::delta_state_sizes(S_, op_.M, op_.K);
    h.x_ref.resize(z.x_ref / 4);
    h.y_acc.resize(z.y_acc / 4);
    h.initialized.resize(z.initialized);
    h.steps.resize(z.steps / 4);
    h.parity.resize(z.parity);
    h.stats.resize(z.stats / 8);
    x_ref_.download(h.x_ref.data(), z.x_ref);
    y_acc_.download(h.y_acc.data(), z.y_acc);
    init_.download(h.initialized.data(), z.initialized);
    steps_.download(h.steps.data(), z.steps);
    parity_.download(h.parity.data(), z.parity);
    stats_.download(h.stats.data(), z.stats);
    return h;
  }
  void write_state(const HostState& h) override {
    x_ref_.upload(h.x_ref.data(), h.x_ref.size() * 4);
    y_acc_.upload(h.y_acc.data(), h.y_acc.size() * 4);
    init_.upload(h.initialized.data(), h.initialized.size());
    steps_.upload(h.steps.data(), h.steps.size() * 4);
    parity_.upload(h.parity.data(), h.parity.size());
    stats_.upload(h.stats.data(), h.stats.size() * 8);
  }

  sk::DeltaState view() const {
    sk::DeltaState v;
    v.x_ref = x_ref_.as<float>();
    v.y_acc = y_acc_.as<float>();
    v.initialized = init_.as<uint8_t>();
    v.steps = steps_.as<int32_t>();
    v.parity = parity_.as<uint8_t>();
    v.stats = stats_.as<int64_t>();
    v.sync = sync_.as<int32_t>();
    v.num_streams = S_;
    return v;
  }
  sk::DeltaStepParams params(DType xt, int rows, Activation act, int k_splits) const {
    sk::DeltaStepParams p;
    p.w = op_.weights();
    p.w.wt = wt_.p;
    p.w.wt_ld = ld_;
    p.w.bias = op_.has_bias ? bias_.as<float>() : nullptr;
    p.w.threshold = op_.per_channel ? theta_.as<float>() : nullptr;
    p.state = view();
    p.x_dtype = xt;
    p.num_rows = rows;
    p.activation = act;
    p.k_splits = k_splits;
    return p;
  }

  HostOp op_;
  int64_t ld_ = 0;
  int S_ = 0;
  DevBuf w_, wt_, bias_, theta_, x_ref_, y_acc_, init_, steps_, parity_, stats_, sync_, x_, ids_, y_, na_;
};

// Out-of-range device ids are skipped (y row NaN, n_active -1) while the other rows step normally;
// a caller-provided workspace gives the same bits as the pool; a too-small one is refused.
void check_cuda_only(GpuBackend& be, Report& rep, std::mt19937_64& rng) {
  HostOp op = make_op(rng, 300, 517, DType::kFloat16, true, false);
  {
    Harness h(be, op, 3);
    bool ok = h.setup();
    Walk w(rng, 2 * op.K, 0.f);
    StepIO io;
    io.x = encode(w.x, DType::kFloat32);
    io.rows = 2;
    std::vector<int32_t> ids{2, 7};
    io.ids = &ids;
    ok = ok && be.step(io).ok();
    const std::vector<float> y = decode(io.y.data(), DType::kFloat32, 2 * op.M);
    bool nan_row = true, fin_row = true;
    for (int i = 0; i < op.M; ++i) {
      nan_row = nan_row && std::isnan(y[op.M + i]);
      fin_row = fin_row && std::isfinite(y[i]);
    }
    const HostState st = be.read_state();
    ok = ok && io.n_active[0] == op.K && io.n_active[1] == -1 && nan_row && fin_row && st.initialized[2] == 1 &&
         st.initialized[0] == 0 && st.initialized[1] == 0;
    rep.expect(ok, "device id out of range: row skipped (NaN, n_active -1)",
               "n_active " + std::to_string(io.n_active.empty() ? 0 : io.n_active[0]) + "," +
                   std::to_string(io.n_active.size() < 2 ? 0 : io.n_active[1]));
  }
  {
    // The same 30 steps with the pool and with a caller workspace: identical outputs.
    std::vector<std::vector<uint8_t>> outs[2];
    for (int variant = 0; variant < 2; ++variant) {
      std::mt19937_64 r(1234);
      be.build(op);
      be.init_state(4);
      Walk w(r, 4 * op.K, 0.05f);
      DevBuf ws;
      for (int t = 0; t < 30; ++t) {
        sk::DeltaStepParams p = be.params(DType::kFloat32, 4, Activation::kNone, 0);
        const auto xb = encode(w.next(r, DType::kFloat32), DType::kFloat32);
        be.x_.upload(xb.data(), xb.size());
        be.y_.alloc(4 * op.M * 4);
        be.na_.alloc(16);
        p.x = be.x_.p;
        p.y = be.y_.p;
        p.n_active = be.na_.as<int32_t>();
        if (variant == 1) {
          size_t bytes = 0;
          sk::cuda::delta_workspace_bytes(p, &bytes);
          if (ws.n < bytes) ws.alloc(bytes);
          p.workspace = ws.p;
          p.workspace_bytes = ws.n;
        }
        if (!sk::cuda::delta_step(p, nullptr).ok()) break;
        outs[variant].emplace_back(4 * op.M * 4);
        CK(cudaMemcpy(outs[variant].back().data(), be.y_.p, 4 * op.M * 4, cudaMemcpyDeviceToHost));
      }
    }
    rep.expect(outs[0].size() == 30 && outs[0] == outs[1], "caller workspace == pool workspace (bitwise)", "");
    sk::DeltaStepParams p = be.params(DType::kFloat32, 4, Activation::kNone, 0);
    p.x = be.x_.p;
    p.y = be.y_.p;
    p.n_active = be.na_.as<int32_t>();
    p.workspace = be.x_.p;
    p.workspace_bytes = 4;
    const Status st = sk::cuda::delta_step(p, nullptr);
    rep.expect(st.code == sk::ErrorCode::kInvalidArgument, "too-small workspace refused", st.message);
    p.workspace = nullptr;
    p.w.wt_ld = op.M + 1;  // not a whole number of 16-byte vectors
    const Status st2 = sk::cuda::delta_step(p, nullptr);
    rep.expect(st2.code == sk::ErrorCode::kShape, "unaligned wt_ld refused", st2.message);
  }
}

// ---------------------------------------------------------------------------------------------------
// Timing.

struct TimeCase {
  const char* name;
  int S;
  double frac;
  bool correlated;
  float density;
};

void bench(std::mt19937_64& rng, int only_case) {
  const int M = 4096, K = 11008;
  GpuBackend be;
  HostOp op = make_op(rng, M, K, DType::kFloat16, true, false);
  be.build(op);
  int dev = 0;
  cudaDeviceProp prop{};
  CK(cudaGetDevice(&dev));
  CK(cudaGetDeviceProperties(&prop, dev));
  std::printf("\nGPU timing on %s (%d SMs), W %d x %d fp16, theta 0.1, x fp16.\n", prop.name,
              prop.multiProcessorCount, M, K);
  std::printf("single = median of 20 steps, each between two events (includes the host call); stream = mean of\n"
              "50 back-to-back steps; graph = mean of 50 steps replayed from a CUDA graph (GPU time per step).\n"
              "union = fraction of Wt rows any stream fired; GB/s = Wt rows read x M x 2 B / graph time;\n"
              "host = median host time of one delta_step call; n0 = n_active of row 0.\n");
  std::printf("%-48s %6s %8s %8s %8s %7s %7s  %s\n", "case", "union", "single", "stream", "graph", "GB/s", "host", "n0");
  cudaStream_t stream;
  CK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  const TimeCase cases[] = {
      {"1 stream, 2% active", 1, 0.02, false, 0.35f},
      {"1 stream, 10% active", 1, 0.10, false, 0.35f},
      {"1 stream, 30% active", 1, 0.30, false, 0.35f},
      {"1 stream, 10% active, dense pass forced", 1, 0.10, false, 0.f},
      {"1 stream, 100% active (dense pass)", 1, 1.0, false, 0.35f},
      {"4 streams, 10% each, independent", 4, 0.10, false, 0.35f},
      {"16 streams, 2% each, independent", 16, 0.02, false, 0.35f},
      {"16 streams, 10% each, independent", 16, 0.10, false, 0.35f},
      {"16 streams, 10% each, independent, gather only", 16, 0.10, false, 1.f},
      {"16 streams, 10% each, same inputs (correlated)", 16, 0.10, true, 0.35f},
      {"16 streams, 10% each, 90% shared (correlated)", 16, 0.10, true, 0.35f},
      {"16 streams, dense pass forced", 16, 0.10, false, 0.f},
  };
  for (int ci = 0; ci < static_cast<int>(sizeof(cases) / sizeof(cases[0])); ++ci) {
    const TimeCase& c = cases[ci];
    if (only_case >= 0 && ci != only_case) continue;
    be.op_.density = c.density;
    be.init_state(c.S);
    std::vector<float> x0(static_cast<size_t>(c.S) * K), x1;
    std::normal_distribution<float> n01(0.f, 1.f);
    std::uniform_real_distribution<double> u(0, 1);
    for (auto& v : x0) v = n01(rng);
    x1 = x0;
    std::vector<char> shared(K), any(K, 0);
    for (auto& s : shared) s = u(rng) < c.frac;
    const bool partly = std::string(c.name).find("90% shared") != std::string::npos;
    for (int s = 0; s < c.S; ++s) {
      for (int k = 0; k < K; ++k) {
        bool f = c.correlated ? shared[k] : u(rng) < c.frac;
        if (partly && u(rng) < 0.1) f = u(rng) < c.frac;  // 10% of inputs decided per stream
        if (f) x1[static_cast<size_t>(s) * K + k] += 0.5f, any[k] = 1;
      }
    }
    const double union_frac = std::count(any.begin(), any.end(), 1) / double(K);
    DevBuf xa, xb, y, na;
    const auto ha = encode(x0, DType::kFloat16), hb = encode(x1, DType::kFloat16);
    xa.upload(ha.data(), ha.size());
    xb.upload(hb.data(), hb.size());
    y.alloc(static_cast<size_t>(c.S) * M * 2);
    na.alloc(static_cast<size_t>(c.S) * 4);
    sk::DeltaStepParams p = be.params(DType::kFloat16, c.S, Activation::kNone, 0);
    p.y = y.p;
    p.n_active = na.as<int32_t>();
    size_t ws_bytes = 0;
    sk::cuda::delta_workspace_bytes(p, &ws_bytes);
    DevBuf ws;
    ws.alloc(ws_bytes);
    p.workspace = ws.p;
    p.workspace_bytes = ws_bytes;
    auto step = [&](int t) {
      p.x = t % 2 ? xa.p : xb.p;  // t = 0 initialises with x1; then x0, x1, ... each fire the changed set
      const Status st = sk::cuda::delta_step(p, stream);
      if (!st.ok()) {
        std::fprintf(stderr, "step failed: %s\n", st.message.c_str());
        std::exit(2);
      }
    };
    int t = 0;
    for (; t < 4; ++t) step(t);  // the initialising step + 3 warm-ups
    CK(cudaStreamSynchronize(stream));
    std::vector<double> single, host;
    for (int i = 0; i < 20; ++i, ++t) {
      CK(cudaEventRecord(e0, stream));
      const auto h0 = std::chrono::steady_clock::now();
      step(t);
      const auto h1 = std::chrono::steady_clock::now();
      CK(cudaEventRecord(e1, stream));
      CK(cudaEventSynchronize(e1));
      float ms = 0;
      CK(cudaEventElapsedTime(&ms, e0, e1));
      single.push_back(ms * 1e3);
      host.push_back(std::chrono::duration<double, std::micro>(h1 - h0).count());
    }
    CK(cudaEventRecord(e0, stream));
    for (int i = 0; i < 50; ++i, ++t) step(t);
    CK(cudaEventRecord(e1, stream));
    CK(cudaEventSynchronize(e1));
    float ms50 = 0;
    CK(cudaEventElapsedTime(&ms50, e0, e1));
    // The same steps replayed from a CUDA graph (two steps per graph, x1 then x0): the GPU time per step
    // without host launch cost, what a runtime that captures the step sees.
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    CK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    step(t);
    step(t + 1);
    CK(cudaStreamEndCapture(stream, &graph));
    CK(cudaGraphInstantiate(&exec, graph, 0));
    CK(cudaGraphLaunch(exec, stream));
    CK(cudaEventRecord(e0, stream));
    for (int i = 0; i < 25; ++i) CK(cudaGraphLaunch(exec, stream));
    CK(cudaEventRecord(e1, stream));
    CK(cudaEventSynchronize(e1));
    float ms_graph = 0;
    CK(cudaEventElapsedTime(&ms_graph, e0, e1));
    CK(cudaGraphExecDestroy(exec));
    CK(cudaGraphDestroy(graph));
    std::vector<int32_t> n(c.S);
    na.download(n.data(), n.size() * 4);
    std::sort(single.begin(), single.end());
    std::sort(host.begin(), host.end());
    const double us = single[single.size() / 2];
    const double rows_read = c.density == 0.f || union_frac > c.density ? 1.0 : union_frac;
#ifdef SK_DELTA_PROFILE
    // One more step with phase marks: per phase, the median and the latest time (us after the first CTA
    // started) at which CTAs passed it. Marks 7-9 are only written by tile / grid finishers.
    {
      const size_t n = 8192 * 10;
      unsigned long long* d_marks = nullptr;
      CK(cudaMalloc(&d_marks, n * 8));
      CK(cudaMemset(d_marks, 0, n * 8));
      g_delta_profile_marks = d_marks;
      step(t++);
      CK(cudaStreamSynchronize(stream));
      g_delta_profile_marks = nullptr;
      std::vector<unsigned long long> h(n);
      CK(cudaMemcpy(h.data(), d_marks, n * 8, cudaMemcpyDeviceToHost));
      CK(cudaFree(d_marks));
      unsigned long long t0 = ~0ull;
      for (size_t i = 0; i < n; i += 10) if (h[i]) t0 = std::min(t0, h[i]);
      std::printf("  phases (us after first CTA start; median / max over CTAs):");
      const char* names[10] = {"start", "slots", "derive", "accum", "reduce", "partials", "tile-arrive", "tile-final", "grid-arrive", "end"};
      for (int mk = 0; mk < 10; ++mk) {
        std::vector<double> v;
        for (size_t i = 0; i < n; i += 10) if (h[i + mk]) v.push_back((h[i + mk] - t0) * 1e-3);
        if (v.empty()) continue;
        std::sort(v.begin(), v.end());
        std::printf(" %s %.2f/%.2f", names[mk], v[v.size() / 2], v.back());
      }
      std::printf("\n");
    }
#endif
    const double graph_us = ms_graph * 1e3 / 50;
    std::printf("%-48s %6.3f %8.2f %8.2f %8.2f %7.0f %7.1f  %d\n", c.name, union_frac, us, ms50 * 1e3 / 50, graph_us,
                rows_read * K * M * 2.0 / (graph_us * 1e3), host[host.size() / 2], n[0]);
  }
  std::printf("bytes floor at 4.15 TB/s: 10%% of W = %.2f us, all of W = %.2f us\n", 0.1 * K * M * 2 / 4.15e6,
              1.0 * K * M * 2 / 4.15e6);
  CK(cudaStreamDestroy(stream));
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t seed = std::random_device{}();
  bool run_checks = true, run_bench = true;
  int only_case = -1;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--no-bench") run_bench = false;
    else if (a == "--quick") dc::g_walk_scale = 0.02;
    else if (a == "--bench-only") run_checks = false;
    else if (a == "--case" && i + 1 < argc) only_case = std::atoi(argv[++i]);  // one timing case (for ncu)
    else seed = std::strtoull(argv[i], nullptr, 10);
  }
  std::printf("delta_check (CUDA): seed %llu (pass it as the first argument to replay)\n", (unsigned long long)seed);
  std::mt19937_64 rng(seed);
  Report rep;
  if (run_checks) {
    GpuBackend be;
    run_all_scenarios(be, rep, rng, /*host_side_ids=*/false);
    check_cuda_only(be, rep, rng);
    std::printf("\n%d passed, %d failed\n", rep.passed, rep.failed);
  }
  if (run_bench) bench(rng, only_case);
  return rep.failed == 0 ? 0 : 1;
}
