// Correctness scenarios of the DeltaLinear checks, shared by the CPU and CUDA programs (see
// delta_check_common.h for the reference and the per-step checks). Each scenario prints PASS/FAIL lines.
#pragma once
#include <numeric>

#include "delta_check_common.h"

namespace dc {

inline const char* dn(DType t) { return sk::dtype_name(t); }

// --quick (for compute-sanitizer runs): random walks run 2% of their steps.
inline double g_walk_scale = 1.0;

// Exact transpose, zero padding, odd shapes.
inline void check_transpose(Backend& be, Report& rep, std::mt19937_64& rng) {
  for (DType t : {DType::kFloat32, DType::kFloat16, DType::kBFloat16}) {
    for (auto [M, K] : {std::pair{37, 53}, std::pair{300, 129}, std::pair{1, 1}}) {
      HostOp op = make_op(rng, M, K, t, true, false);
      Status st = be.build(op);
      int64_t ld = 0;
      std::vector<float> wt = st.ok() ? be.read_wt(&ld) : std::vector<float>{};
      size_t bad = st.ok() && ld >= M ? 0 : 1;
      for (int k = 0; k < K && bad == 0; ++k) {
        for (int64_t m = 0; m < ld; ++m) {
          const float want = m < M ? op.w[static_cast<size_t>(m) * K + k] : 0.f;
          if (std::memcmp(&wt[k * ld + m], &want, 4) != 0) ++bad;
        }
      }
      rep.expect(bad == 0, std::string("transpose ") + dn(t) + " " + std::to_string(M) + "x" + std::to_string(K),
                 "ld=" + std::to_string(ld) + (st.ok() ? "" : " " + st.message));
    }
  }
}

// First (dense) step for every weight x input dtype pair, all activations, with and without bias.
inline void check_init(Backend& be, Report& rep, std::mt19937_64& rng) {
  const Activation acts[] = {Activation::kNone, Activation::kRelu, Activation::kGelu, Activation::kSilu};
  int n = 0;
  for (DType wt : {DType::kFloat32, DType::kFloat16, DType::kBFloat16}) {
    for (DType xt : {DType::kFloat32, DType::kFloat16, DType::kBFloat16}) {
      const Activation act = acts[n % 4];
      HostOp op = make_op(rng, 300, 517, wt, n % 2 == 0, n % 3 == 0);
      Harness h(be, op, 3);
      bool ok = h.setup();
      Walk walk(rng, 3 * op.K, 0.f);
      ok = ok && h.step(round_to(walk.x, xt), 3, nullptr, xt, act);
      rep.expect(ok, std::string("init W ") + dn(wt) + " x " + dn(xt) + " act " + std::to_string(int(act)),
                 ok ? "out err " + std::to_string(h.worst_out) : h.first_error);
      ++n;
    }
  }
}

struct WalkCase {
  std::string label;
  int M, K, S, steps;
  DType wt, xt;
  DeltaMode mode = DeltaMode::kReference;
  float quant_step = 0.f;
  bool per_channel = false;
  int refresh = 0;
  float sigma = 0.05f;
  float density = 0.35f;
  bool vary_splits = true;  // CUDA: also force 1..5 K-chunks on random steps
  double drift_tol = 1e-5;
};

// Random-walk streams: random subsets in random order each step, the last stream joins at steps/4,
// random activations. Every step is checked against the reference (Harness::step).
inline bool run_walk(Backend& be, Report& rep, std::mt19937_64& rng, const WalkCase& c,
                     std::vector<std::vector<float>>* outputs = nullptr) {
  HostOp op = make_op(rng, c.M, c.K, c.wt, true, c.per_channel);
  op.mode = c.mode;
  op.quant_step = c.quant_step;
  op.refresh_every = c.refresh;
  op.density = c.density;
  Harness h(be, op, c.S);
  h.drift_tol = c.drift_tol;
  bool ok = h.setup();
  std::vector<Walk> walks;
  for (int s = 0; s < c.S; ++s) walks.emplace_back(rng, c.K, c.sigma);
  std::uniform_int_distribution<int> coin(0, 3), split(0, 5);
  const Activation acts[] = {Activation::kNone, Activation::kRelu, Activation::kGelu, Activation::kSilu};
  const int steps = std::max(8, static_cast<int>(c.steps * g_walk_scale));
  for (int t = 0; t < steps && ok; ++t) {
    const int live = t < steps / 4 ? c.S - 1 : c.S;  // stream S-1 joins mid-run
    std::vector<int32_t> ids;
    for (int s = 0; s < live; ++s) {
      if (coin(rng) != 0 || (s == live - 1 && ids.empty())) ids.push_back(s);
    }
    const bool in_order = coin(rng) == 0;
    if (!in_order) std::shuffle(ids.begin(), ids.end(), rng);
    // Null ids (rows 0..rows-1) when the subset happens to be a prefix in order.
    bool prefix = in_order;
    for (size_t i = 0; i < ids.size() && prefix; ++i) prefix = ids[i] == static_cast<int32_t>(i);
    std::vector<float> x;
    for (int32_t s : ids) {
      for (auto& v : walks[s].x) v *= 0.999f;  // mild mean reversion keeps |x| ~ 1 over 10k steps
      const auto& xs = walks[s].next(rng, c.xt);
      x.insert(x.end(), xs.begin(), xs.end());
    }
    const int ks = c.vary_splits && coin(rng) == 0 ? split(rng) : 0;
    std::vector<float> y;
    ok = h.step(x, static_cast<int>(ids.size()), prefix ? nullptr : &ids, c.xt, acts[t % 4], ks, &y);
    if (outputs) outputs->push_back(y);
  }
  char buf[200];
  std::snprintf(buf, sizeof buf, "density %.3f drift %.2e out %.2e bound %.2f", h.k_total ? double(h.fired_total) / h.k_total : 0.0,
                h.worst_drift, h.worst_out, h.worst_bound_ratio);
  rep.expect(ok, c.label, ok ? buf : h.first_error);
  return ok;
}

inline void check_walks(Backend& be, Report& rep, std::mt19937_64& rng) {
  using D = DType;
  run_walk(be, rep, rng, {"walk 10000 steps W f32 x f32 per-channel theta refresh 1000", 300, 131, 5, 10000,
                          D::kFloat32, D::kFloat32, DeltaMode::kReference, 0.f, true, 1000});
  run_walk(be, rep, rng, {"walk 3000 steps W f16 x bf16 scalar theta refresh 1000", 257, 301, 4, 3000,
                          D::kFloat16, D::kBFloat16, DeltaMode::kReference, 0.f, false, 1000});
  run_walk(be, rep, rng, {"walk 3000 steps W bf16 x f16 quantised q=0.05 refresh 1000", 129, 200, 3, 3000,
                          D::kBFloat16, D::kFloat16, DeltaMode::kQuantized, 0.05f, false, 1000, 0.02f});
  // Without refresh the fp32 drift grows with the step count (the reason refresh_every exists): allow
  // 2e-4 after 10000 steps and print what it reached.
  WalkCase nr{"walk 10000 steps W f32 quantised q=0.02, NO refresh (drift tol 2e-4)", 64, 96, 2, 10000,
              D::kFloat32, D::kFloat32, DeltaMode::kQuantized, 0.02f, false, 0};
  nr.drift_tol = 2e-4;
  run_walk(be, rep, rng, nr);
  run_walk(be, rep, rng, {"walk 2000 steps W f32 18 streams (2 CTA stream groups)", 70, 90, 18, 2000,
                          D::kFloat32, D::kFloat32, DeltaMode::kReference, 0.f, true, 500});
  // High density (sigma >> theta) crosses dense_fallback_density on most steps.
  run_walk(be, rep, rng, {"walk 500 steps W f16 dense fallback (density ~0.6)", 300, 257, 3, 500, D::kFloat16,
                          D::kFloat32, DeltaMode::kReference, 0.f, false, 0, 0.2f});
}

// The dense fallback and the gather give the same results (both against the reference, and each other).
inline void check_fallback_equivalence(Backend& be, Report& rep, std::mt19937_64& rng) {
  const uint64_t seed = rng();
  std::vector<std::vector<float>> y_dense, y_sparse;
  WalkCase c{"", 300, 257, 3, 200, DType::kFloat32, DType::kFloat32};
  c.sigma = 0.08f;
  c.vary_splits = false;
  std::mt19937_64 r1(seed), r2(seed);
  c.label = "fallback density 0 (always dense masked pass)";
  c.density = 0.f;
  run_walk(be, rep, r1, c, &y_dense);
  c.label = "fallback density 1 (always gather)";
  c.density = 1.f;
  run_walk(be, rep, r2, c, &y_sparse);
  double e2 = 0, r2s = 0;
  for (size_t t = 0; t < std::min(y_dense.size(), y_sparse.size()); ++t) {
    for (size_t i = 0; i < y_dense[t].size(); ++i) {
      e2 += double(y_dense[t][i] - y_sparse[t][i]) * (y_dense[t][i] - y_sparse[t][i]);
      r2s += double(y_sparse[t][i]) * y_sparse[t][i];
    }
  }
  const double rel = std::sqrt(e2 / std::max(r2s, 1e-30));
  rep.expect(y_dense.size() == y_sparse.size() && rel <= 1e-6, "dense pass == gather (same inputs)",
             "rel diff " + std::to_string(rel));
}

// NaN fires, poisons only its stream, stays until reset; reset re-initialises exactly.
inline void check_nan_and_reset(Backend& be, Report& rep, std::mt19937_64& rng) {
  HostOp op = make_op(rng, 70, 90, DType::kFloat32, true, false);
  Harness h(be, op, 2);
  bool ok = h.setup();
  Walk w0(rng, op.K, 0.05f), w1(rng, op.K, 0.05f);
  auto both = [&](bool nan0) {
    std::vector<float> x = w0.next(rng, DType::kFloat32);
    if (nan0) x[7] = std::nanf("");
    const auto& x1 = w1.next(rng, DType::kFloat32);
    x.insert(x.end(), x1.begin(), x1.end());
    return x;
  };
  ok = ok && h.step(both(false), 2, nullptr, DType::kFloat32);
  ok = ok && h.step(both(true), 2, nullptr, DType::kFloat32);   // stream 0 NaN, stream 1 finite
  ok = ok && h.step(both(false), 2, nullptr, DType::kFloat32);  // NaN stays in stream 0
  ok = ok && be.reset({0}).ok();
  if (ok) h.ref.init[0] = 0;
  ok = ok && h.step(both(false), 2, nullptr, DType::kFloat32);  // stream 0 re-initialised, finite again
  ok = ok && h.step(both(false), 2, nullptr, DType::kFloat32);
  rep.expect(ok, "NaN input fires, stays until reset; reset re-initialises", ok ? "" : h.first_error);
}

// theta = 0: exact repeats fire nothing, any exact change fires.
inline void check_theta_zero(Backend& be, Report& rep, std::mt19937_64& rng) {
  HostOp op = make_op(rng, 33, 65, DType::kFloat16, true, false);
  op.theta_scalar = 0.f;
  Harness h(be, op, 1);
  bool ok = h.setup();
  Walk w(rng, op.K, 0.f);
  std::vector<float> x = w.x;
  ok = ok && h.step(x, 1, nullptr, DType::kFloat32);
  ok = ok && h.step(x, 1, nullptr, DType::kFloat32);  // no change: n_active 0 (checked by the reference)
  x[3] = std::nextafter(x[3], 10.f);
  x[40] = std::nextafter(x[40], -10.f);
  ok = ok && h.step(x, 1, nullptr, DType::kFloat32);  // two one-ulp changes: n_active 2
  ok = ok && h.fired_total == op.K + 2;
  rep.expect(ok, "theta = 0: repeats skip, one-ulp changes fire", ok ? "" : h.first_error);
}

inline void check_refresh(Backend& be, Report& rep, std::mt19937_64& rng) {
  HostOp op = make_op(rng, 64, 100, DType::kFloat32, true, true);
  op.refresh_every = 5;
  Harness h(be, op, 2);
  bool ok = h.setup();
  Walk w(rng, 2 * op.K, 0.05f);
  int dense_steps = 0;
  for (int t = 0; t < 23 && ok; ++t) {
    const long long before = h.fired_total;
    ok = h.step(w.next(rng, DType::kFloat32), 2, nullptr, DType::kFloat32);
    if (h.fired_total - before == 2LL * op.K) ++dense_steps;
  }
  rep.expect(ok && dense_steps == 4, "refresh_every 5: dense steps 0, 6, 12, 18",
             ok ? "dense steps " + std::to_string(dense_steps) : h.first_error);
}

inline void check_edges(Backend& be, Report& rep, std::mt19937_64& rng) {
  struct E { int M, K, S, rows; const char* what; };
  for (const E& e : {E{5, 0, 2, 2, "K = 0: bias-only outputs"}, E{0, 5, 2, 2, "M = 0: state and counts only"},
                     E{4, 6, 0, 0, "S = 0: empty step"}, E{4, 6, 3, 0, "zero rows stepped"},
                     E{1, 1, 1, 1, "M = K = 1"}}) {
    HostOp op = make_op(rng, e.M, e.K, DType::kFloat32, true, false);
    Harness h(be, op, e.S);
    bool ok = h.setup();
    Walk w(rng, e.rows * e.K, 0.3f);
    for (int t = 0; t < 3 && ok; ++t) ok = h.step(w.next(rng, DType::kFloat32), e.rows, nullptr, DType::kFloat32, Activation::kSilu);
    rep.expect(ok, e.what, ok ? "" : h.first_error);
  }
}

// Restoring a copied state replays the same outputs bit for bit.
inline void check_snapshot(Backend& be, Report& rep, std::mt19937_64& rng) {
  HostOp op = make_op(rng, 300, 200, DType::kFloat16, true, false);
  Harness h(be, op, 3);
  bool ok = h.setup();
  std::vector<Walk> w;
  for (int s = 0; s < 3; ++s) w.emplace_back(rng, op.K, 0.05f);
  auto xs = [&]() {
    std::vector<float> x;
    for (auto& wk : w) {
      const auto& v = wk.next(rng, DType::kFloat32);
      x.insert(x.end(), v.begin(), v.end());
    }
    return x;
  };
  for (int t = 0; t < 20 && ok; ++t) ok = h.step(xs(), 3, nullptr, DType::kFloat32);
  const HostState snap = be.read_state();
  const RefModel ref_snap = h.ref;
  std::vector<std::vector<float>> inputs, first, second;
  for (int t = 0; t < 10 && ok; ++t) {
    inputs.push_back(xs());
    first.emplace_back();
    ok = h.step(inputs.back(), 3, nullptr, DType::kFloat32, Activation::kNone, 0, &first.back());
  }
  if (ok) {
    be.write_state(snap);
    h.ref = ref_snap;
  }
  for (int t = 0; t < 10 && ok; ++t) {
    second.emplace_back();
    ok = h.step(inputs[t], 3, nullptr, DType::kFloat32, Activation::kNone, 0, &second.back());
    ok = ok && std::memcmp(first[t].data(), second[t].data(), first[t].size() * 4) == 0;
  }
  rep.expect(ok, "snapshot / restore replays bit for bit (deterministic)", ok ? "" : h.first_error + " (or outputs differ)");
}

// Invalid arguments come back as errors before any memory is touched.
inline void check_errors(Backend& be, Report& rep, std::mt19937_64& rng, bool host_side_ids) {
  auto expect_code = [&](const std::string& what, HostOp op, int S, int rows, std::vector<int32_t> ids,
                         sk::ErrorCode code) {
    Status st = be.build(op);
    if (st.ok()) st = be.init_state(S);
    StepIO io;
    io.x = encode(std::vector<float>(static_cast<size_t>(rows) * op.K, 0.5f), DType::kFloat32);
    io.rows = rows;
    io.ids = ids.empty() ? nullptr : &ids;
    if (st.ok()) st = be.step(io);
    rep.expect(st.code == code, "error: " + what, std::string("got ") + sk::error_code_string(st.code) + " " + st.message);
  };
  const HostOp base = make_op(rng, 20, 30, DType::kFloat32, true, false);
  HostOp o = base;
  o.theta_scalar = -0.1f;
  expect_code("negative threshold", o, 2, 1, {}, sk::ErrorCode::kInvalidArgument);
  o = base;
  o.theta_scalar = std::nanf("");
  expect_code("NaN threshold", o, 2, 1, {}, sk::ErrorCode::kInvalidArgument);
  o = base;
  o.mode = DeltaMode::kQuantized;
  expect_code("quantised mode without quant_step", o, 2, 1, {}, sk::ErrorCode::kInvalidArgument);
  o = base;
  o.density = 1.5f;
  expect_code("dense_fallback_density > 1", o, 2, 1, {}, sk::ErrorCode::kInvalidArgument);
  o = base;
  o.refresh_every = -1;
  expect_code("negative refresh_every", o, 2, 1, {}, sk::ErrorCode::kInvalidArgument);
  expect_code("more rows than streams", base, 2, 3, {}, sk::ErrorCode::kShape);
  if (host_side_ids) {
    expect_code("stream id out of range", base, 3, 2, {0, 3}, sk::ErrorCode::kInvalidArgument);
    expect_code("duplicate stream ids", base, 3, 2, {1, 1}, sk::ErrorCode::kInvalidArgument);
    o = base;
    o.per_channel = true;
    o.theta[5] = -1.f;
    expect_code("negative per-channel threshold", o, 2, 1, {}, sk::ErrorCode::kInvalidArgument);
  }
}

inline void run_all_scenarios(Backend& be, Report& rep, std::mt19937_64& rng, bool host_side_ids) {
  check_transpose(be, rep, rng);
  check_init(be, rep, rng);
  check_theta_zero(be, rep, rng);
  check_refresh(be, rep, rng);
  check_nan_and_reset(be, rep, rng);
  check_edges(be, rep, rng);
  check_snapshot(be, rep, rng);
  check_fallback_equivalence(be, rep, rng);
  check_walks(be, rep, rng);
  check_errors(be, rep, rng, host_side_ids);
}

}  // namespace dc
