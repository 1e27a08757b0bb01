// Standalone check + benchmark of the CPU DeltaLinear (src/cpu/delta). Build: bench/native/build-delta.sh.
//   .bin-gpu/delta_cpu_check [seed] [--no-bench] [--quick: walks at 2% length]
// Runs the shared scenarios (delta_check_scenarios.h) against a float64 reference, prints PASS/FAIL per
// case, then a timing table (median of >= 10 steps) for the anchor shape W 4096 x 11008 fp16.
// Exit status: non-zero on any failure.
#include <chrono>
#include <cstdlib>

#include "core/thread_pool.h"
#include "delta_check_scenarios.h"

namespace {

using namespace dc;

class CpuBackend : public Backend {
 public:
  const char* name() const override { return "cpu"; }

  Status build(const HostOp& op) override {
    op_ = op;
    ld_ = sk::delta_wt_ld(op.M, op.wt_dtype);
    const auto w = encode(op.w, op.wt_dtype);
    wt_.assign(static_cast<size_t>(op.K) * ld_ * esize(op.wt_dtype) + 16, 0xAB);  // padding must be rewritten
    return sk::cpu::delta_transpose_weights(w.data(), op.wt_dtype, op.M, op.K, wt_.data(), ld_);
  }
  std::vector<float> read_wt(int64_t* ld) override {
    *ld = ld_;
    return decode(wt_.data(), op_.wt_dtype, static_cast<size_t>(op_.K) * ld_);
  }
  Status init_state(int S) override {
    S_ = S;
    st_ = HostState{};
    st_.S = S;
    st_.x_ref.assign(2 * static_cast<size_t>(S) * op_.K, std::nanf(""));  // poison: never read before init
    st_.y_acc.assign(static_cast<size_t>(S) * op_.M, std::nanf(""));
    st_.initialized.assign(S, 1);  // invalidate() must clear it
    st_.parity.assign(S, 0);
    st_.steps.assign(S, 12345);
    st_.stats.assign(2 * static_cast<size_t>(S), 0);
    return sk::cpu::delta_invalidate(view());
  }
  Status step(StepIO& io) override {
    sk::DeltaStepParams p;
    p.w = weights();
    p.state = view();
    p.x = io.x.data();
    p.x_dtype = io.x_dtype;
    p.num_rows = io.rows;
    p.stream_ids = io.ids ? io.ids->data() : nullptr;
    io.y.assign(static_cast<size_t>(io.rows) * op_.M * esize(io.x_dtype), 0xFF);  // NaN in every dtype
    io.n_active.assign(io.rows, 0x7F7F7F7F);
    p.y = io.y.data();
    p.n_active = io.n_active.data();
    p.activation = io.act;
    return sk::cpu::delta_step(p);
  }
  Status reset(const std::vector<int32_t>& ids) override {
    return sk::cpu::delta_reset(view(), ids.data(), static_cast<int32_t>(ids.size()));
  }
  Status invalidate() override { return sk::cpu::delta_invalidate(view()); }
  HostState read_state() override { return st_; }
  void write_state(const HostState& s) override { st_ = s; }

  sk::DeltaWeights weights() {
    sk::DeltaWeights w = op_.weights();
    w.wt = wt_.data();
    w.wt_ld = ld_;
    w.bias = op_.has_bias ? op_.bias.data() : nullptr;
    w.threshold = op_.per_channel ? op_.theta.data() : nullptr;
    return w;
  }
  sk::DeltaState view() {
    sk::DeltaState v;
    v.x_ref = st_.x_ref.data();
    v.y_acc = st_.y_acc.data();
    v.initialized = st_.initialized.data();
    v.steps = st_.steps.data();
    v.parity = st_.parity.data();
    v.stats = st_.stats.data();
    v.num_streams = S_;
    return v;
  }
  HostOp op_;

 private:
  int64_t ld_ = 0;
  int S_ = 0;
  std::vector<uint8_t> wt_;
  HostState st_;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Steady-state steps at a chosen fired fraction: every stream alternates between two inputs that differ
// (by 0.5 > theta) in a fixed random set of inputs, so each step fires exactly that set.
// correlated: all streams share one set. Returns the median milliseconds per step.
double time_steps(CpuBackend& be, int S, double frac, bool correlated, float density, std::mt19937_64& rng) {
  HostOp& op = be.op_;
  op.density = density;
  be.init_state(S);
  const int K = op.K;
  std::vector<float> x0(static_cast<size_t>(S) * K), x1;
  std::normal_distribution<float> n01(0.f, 1.f);
  std::uniform_real_distribution<double> u(0, 1);
  for (auto& v : x0) v = n01(rng);
  x1 = x0;
  std::vector<char> shared(K);
  for (auto& c : shared) c = u(rng) < frac;
  for (int s = 0; s < S; ++s) {
    for (int k = 0; k < K; ++k) {
      if (correlated ? shared[k] : u(rng) < frac) x1[static_cast<size_t>(s) * K + k] += 0.5f;
    }
  }
  StepIO a, b;
  a.x = encode(x0, DType::kFloat16);
  b.x = encode(x1, DType::kFloat16);
  a.x_dtype = b.x_dtype = DType::kFloat16;
  a.rows = b.rows = S;
  be.step(a);  // initialising step (dense), not timed
  std::vector<double> ms;
  for (int t = 0; t < 14; ++t) {
    StepIO& io = t % 2 ? a : b;
    const auto t0 = std::chrono::steady_clock::now();
    const Status st = be.step(io);
    const auto t1 = std::chrono::steady_clock::now();
    if (!st.ok()) return -1;
    if (t >= 2) ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  return median(ms);
}

void bench(std::mt19937_64& rng) {
  CpuBackend be;
  HostOp op = make_op(rng, 4096, 11008, DType::kFloat16, true, false);
  be.build(op);
  const double bytes_w = 4096.0 * 11008 * 2;
  std::printf("\nCPU timing, W 4096 x 11008 fp16, %d threads, median of 12 steps (ms/step; GB/s of W rows read)\n",
              sk::core::ThreadPool::global().num_threads());
  std::printf("%-44s %10s %10s %10s\n", "case", "ms", "W GB/s", "vs dense");
  std::printf("(vs dense: against the dense masked pass with the same number of streams, measured first)\n");
  struct C { const char* name; int S; double frac; bool corr; float density; };
  double dense[17] = {};
  for (const C& c : {C{"1 stream, dense masked pass (fallback forced)", 1, 0.10, false, 0.f},
                     C{"1 stream, 2% active", 1, 0.02, false, 0.35f}, C{"1 stream, 10% active", 1, 0.10, false, 0.35f},
                     C{"1 stream, 30% active", 1, 0.30, false, 0.35f},
                     C{"1 stream, 50% active, gather (fallback off)", 1, 0.50, false, 1.f},
                     C{"1 stream, 50% active, dense pass (default)", 1, 0.50, false, 0.35f},
                     C{"16 streams, dense masked pass (fallback forced)", 16, 0.10, false, 0.f},
                     C{"16 streams, 10% each, independent", 16, 0.10, false, 0.35f},
                     C{"16 streams, 10% each, same inputs", 16, 0.10, true, 0.35f}}) {
    const double ms = time_steps(be, c.S, c.frac, c.corr, c.density, rng);
    if (c.density == 0.f) dense[c.S] = ms;
    const double rows = c.density == 0.f || c.frac > c.density ? 1.0 : c.frac;
    std::printf("%-44s %10.3f %10.1f %9.2fx\n", c.name, ms, c.S * rows * bytes_w / (ms * 1e6), dense[c.S] / ms);
  }
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t seed = std::random_device{}();
  bool run_bench = true;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--no-bench") run_bench = false;
    else if (std::string(argv[i]) == "--quick") dc::g_walk_scale = 0.02;
    else seed = std::strtoull(argv[i], nullptr, 10);
  }
  std::printf("delta_cpu_check: seed %llu (pass it as the first argument to replay)\n", (unsigned long long)seed);
  std::mt19937_64 rng(seed);
  CpuBackend be;
  Report rep;
  run_all_scenarios(be, rep, rng, /*host_side_ids=*/true);
  // Again on one thread: the task split changes (rows of a tile are grouped, and 16-bit weight blocks
  // are widened once and shared by the streams of a group), and the results must not.
  const int threads = sk::core::ThreadPool::global().num_threads();
  sk::core::ThreadPool::global().resize(1);
  std::printf("\n-- again with 1 thread (was %d) --\n", threads);
  run_all_scenarios(be, rep, rng, /*host_side_ids=*/true);
  sk::core::ThreadPool::global().resize(threads);
  std::printf("\n%d passed, %d failed\n", rep.passed, rep.failed);
  if (run_bench) bench(rng);
  return rep.failed == 0 ? 0 : 1;
}
