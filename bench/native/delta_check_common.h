// Shared part of the DeltaLinear standalone checks (delta_cpu_check.cc, delta_check.cu): a float64
// reference of the contract in src/ops/delta.h, and the correctness scenarios, written once against a
// small Backend interface that each check program implements (CPU: host buffers; CUDA: device buffers
// with explicit copies). Host-only C++17.
//
// What the reference pins down exactly: which inputs fire (the fp32 decision is part of the contract,
// so it is re-computed here in fp32), n_active, x_ref bit for bit, steps / initialised, and that streams
// not stepped are untouched. What it bounds: y_acc against W x_ref + b in float64 (fp32 rounding drift),
// y against activation(W x_ref + b) in the output dtype, and in reference mode the spec's error model
// |y - (W x + b)|_i <= sum_k |W[i,k]| theta_k at every step.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/half.h"
#include "ops/delta.h"

namespace dc {

using sk::Activation;
using sk::DeltaMode;
using sk::DType;
using sk::Status;

inline size_t esize(DType t) { return sk::dtype_size(t); }

inline std::vector<uint8_t> encode(const std::vector<float>& v, DType t) {
  std::vector<uint8_t> out(v.size() * esize(t));
  for (size_t i = 0; i < v.size(); ++i) {
    if (t == DType::kFloat32) {
      std::memcpy(out.data() + 4 * i, &v[i], 4);
    } else {
      const uint16_t h = t == DType::kFloat16 ? sk::float_to_half(v[i]) : sk::float_to_bf16(v[i]);
      std::memcpy(out.data() + 2 * i, &h, 2);
    }
  }
  return out;
}

inline std::vector<float> decode(const uint8_t* p, DType t, size_t n) {
  std::vector<float> out(n);
  for (size_t i = 0; i < n; ++i) {
    if (t == DType::kFloat32) {
      std::memcpy(&out[i], p + 4 * i, 4);
    } else {
      uint16_t h;
      std::memcpy(&h, p + 2 * i, 2);
      out[i] = t == DType::kFloat16 ? sk::half_to_float(h) : sk::bf16_to_float(h);
    }
  }
  return out;
}
inline std::vector<float> round_to(const std::vector<float>& v, DType t) {
  const auto b = encode(v, t);
  return decode(b.data(), t, v.size());
}

inline double act_ref(double v, Activation a) {
  switch (a) {
    case Activation::kRelu: return v > 0 ? v : (std::isnan(v) ? v : 0.0);
    case Activation::kGelu: return 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0)));
    case Activation::kSilu: return v / (1.0 + std::exp(-v));
    default: return v;
  }
}

// One operator: W [M, K] (already rounded to its dtype), bias, thresholds, options.
struct HostOp {
  int M = 0, K = 0;
  DType wt_dtype = DType::kFloat32;
  std::vector<float> w;  // [M, K] values representable in wt_dtype
  bool has_bias = true;
  std::vector<float> bias;   // [M]
  bool per_channel = false;
  std::vector<float> theta;  // [K] when per_channel
  float theta_scalar = 0.1f;
  DeltaMode mode = DeltaMode::kReference;
  float quant_step = 0.f;
  int refresh_every = 0;
  float density = 0.35f;

  float theta_at(int k) const { return per_channel ? theta[k] : theta_scalar; }
  // Fills the value fields of DeltaWeights; the backend sets wt / wt_ld / bias / threshold pointers.
  sk::DeltaWeights weights() const {
    sk::DeltaWeights p;
    p.wt_dtype = wt_dtype;
    p.threshold_scalar = theta_scalar;
    p.mode = mode;
    p.quant_step = quant_step;
    p.refresh_every = refresh_every;
    p.dense_fallback_density = density;
    p.M = M;
    p.K = K;
    return p;
  }
};

inline HostOp make_op(std::mt19937_64& rng, int M, int K, DType wt, bool bias, bool per_channel) {
  HostOp op;
  op.M = M;
  op.K = K;
  op.wt_dtype = wt;
  std::normal_distribution<float> n01(0.f, 1.f);
  std::uniform_real_distribution<float> uth(0.05f, 0.2f);
  const float scale = 1.f / std::sqrt(static_cast<float>(std::max(K, 1)));
  op.w.resize(static_cast<size_t>(M) * K);
  for (auto& v : op.w) v = n01(rng) * scale;
  op.w = round_to(op.w, wt);
  op.has_bias = bias;
  op.bias.resize(M);
  for (auto& v : op.bias) v = n01(rng) * 0.5f;
  op.per_channel = per_channel;
  op.theta.resize(K);
  for (auto& v : op.theta) v = uth(rng);
  return op;
}

struct HostState {
  int S = 0;
  std::vector<float> x_ref;  // [2, S, K]
  std::vector<float> y_acc;  // [S, M]
  std::vector<uint8_t> initialized, parity;
  std::vector<int32_t> steps;
  std::vector<int64_t> stats;  // [S, 2]
  const float* xref_row(int s, int K) const {
    return x_ref.data() + (static_cast<size_t>(parity[s] & 1) * S + s) * K;
  }
};

struct StepIO {
  std::vector<uint8_t> x;  // [rows, K] in x_dtype
  DType x_dtype = DType::kFloat32;
  int rows = 0;
  const std::vector<int32_t>* ids = nullptr;
  Activation act = Activation::kNone;
  int k_splits = 0;
  std::vector<uint8_t> y;  // out: [rows, M] in x_dtype (the backend poisons it with NaN before the step)
  std::vector<int32_t> n_active;  // out: [rows] (poisoned before the step)
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;
  virtual Status build(const HostOp& op) = 0;  // upload W [M, K], transpose, bias, thresholds
  virtual std::vector<float> read_wt(int64_t* ld) = 0;  // Wt [K, ld] decoded (transpose check)
  virtual Status init_state(int S) = 0;        // allocate and invalidate
  virtual Status step(StepIO& io) = 0;
  virtual Status reset(const std::vector<int32_t>& ids) = 0;
  virtual Status invalidate() = 0;
  virtual HostState read_state() = 0;
  virtual void write_state(const HostState& s) = 0;  // snapshot restore (everything but `sync`)
};

// The contract in fp32 decisions (exactly as the kernels decide) with float64 sums.
class RefModel {
 public:
  const HostOp* op = nullptr;
  int S = 0;
  std::vector<uint8_t> init;
  std::vector<int32_t> steps;
  std::vector<float> xref;  // [S, K]
  std::vector<int64_t> stats;

  void reset_all(const HostOp& o, int s) {
    op = &o;
    S = s;
    init.assign(S, 0);
    steps.assign(S, 0);
    xref.assign(static_cast<size_t>(S) * o.K, 0.f);
    stats.assign(2 * static_cast<size_t>(S), 0);
  }
  float quant(float x) const {
    return op->mode == DeltaMode::kQuantized ? std::rint(x / op->quant_step) * op->quant_step : x;
  }
  // Returns n_active. x: decoded input row.
  int step(int s, const float* x) {
    const int K = op->K;
    std::vector<float> xq(K);
    for (int k = 0; k < K; ++k) xq[k] = quant(x[k]);  // stored first: no FMA with the subtraction below
    float* xr = xref.data() + static_cast<size_t>(s) * K;
    int n = 0;
    const bool is_init = !init[s] || (op->refresh_every > 0 && steps[s] >= op->refresh_every);
    if (is_init) {
      std::copy(xq.begin(), xq.end(), xr);
      n = K;
      steps[s] = 0;
      init[s] = 1;
    } else {
      for (int k = 0; k < K; ++k) {
        const float dd = xq[k] - xr[k];
        const float th = op->mode == DeltaMode::kQuantized ? 0.f : op->theta_at(k);
        if (std::isnan(xq[k]) || (std::fabs(dd) >= th && dd != 0.f)) {
          xr[k] = xq[k];
          ++n;
        }
      }
      ++steps[s];
    }
    stats[2 * s] += n;
    stats[2 * s + 1] += 1;
    return n;
  }
  // (W v + b)_i in float64 for a row vector v of length K.
  std::vector<double> affine(const float* v) const {
    std::vector<double> y(op->M);
    for (int i = 0; i < op->M; ++i) {
      double a = op->has_bias ? op->bias[i] : 0.0;
      const float* wr = op->w.data() + static_cast<size_t>(i) * op->K;
      for (int k = 0; k < op->K; ++k) a += static_cast<double>(wr[k]) * v[k];
      y[i] = a;
    }
    return y;
  }
};

// Counts and prints results. Every check prints one PASS/FAIL line with its worst figure.
struct Report {
  int passed = 0, failed = 0;
  bool expect(bool ok, const std::string& name, const std::string& detail) {
    std::printf("%s  %-58s %s\n", ok ? "PASS" : "FAIL", name.c_str(), detail.c_str());
    (ok ? passed : failed)++;
    return ok;
  }
};

inline double tol_out(DType t) { return t == DType::kFloat32 ? 1e-5 : 1e-2; }

// Runs steps on a backend and the reference side by side and checks everything after each step.
class Harness {
 public:
  Backend& be;
  HostOp op;
  RefModel ref;
  int S = 0;
  // Worst figures over the steps run so far (printed by the scenario that owns the harness).
  double worst_drift = 0, worst_out = 0, worst_bound_ratio = 0;
  // Relative Frobenius drift of y_acc allowed against W x_ref + b. fp32 accumulation drifts by about
  // 1e-5 per ~1000-2000 steps (specs/delta.md "Guarantees"), which refresh_every bounds.
  double drift_tol = 1e-5;
  long long steps_run = 0, fired_total = 0, k_total = 0;
  std::string first_error;

  Harness(Backend& b, const HostOp& o, int s) : be(b), op(o), S(s) {}

  bool setup() {
    Status st = be.build(op);
    if (st.ok()) st = be.init_state(S);
    ref.reset_all(op, S);
    if (!st.ok()) return fail("setup: " + st.message);
    return true;
  }
  bool fail(const std::string& what) {
    if (first_error.empty()) first_error = what;
    return false;
  }

  // One step of `ids` (null: rows 0..rows-1) with decoded inputs x_rows [rows, K] (already representable
  // in x_dtype). Returns false (and records why) on the first mismatch.
  bool step(const std::vector<float>& x_rows, int rows, const std::vector<int32_t>* ids, DType x_dtype,
            Activation act = Activation::kNone, int k_splits = 0, std::vector<float>* y_out = nullptr) {
    const int M = op.M, K = op.K;
    const HostState before = be.read_state();
    StepIO io;
    io.x = encode(x_rows, x_dtype);
    io.x_dtype = x_dtype;
    io.rows = rows;
    io.ids = ids;
    io.act = act;
    io.k_splits = k_splits;
    const Status st = be.step(io);
    if (!st.ok()) return fail("step returned " + std::string(sk::error_code_string(st.code)) + ": " + st.message);
    const HostState after = be.read_state();
    const std::vector<float> y = decode(io.y.data(), x_dtype, static_cast<size_t>(rows) * M);
    if (y_out) *y_out = y;
    std::vector<uint8_t> stepped(S, 0);
    ++steps_run;
    for (int r = 0; r < rows; ++r) {
      const int s = ids ? (*ids)[r] : r;
      stepped[s] = 1;
      const float* x = x_rows.data() + static_cast<size_t>(r) * K;
      const int n = ref.step(s, x);
      fired_total += n;
      k_total += K;
      const std::string at = "step " + std::to_string(steps_run) + " row " + std::to_string(r) + " stream " +
                             std::to_string(s);
      if (io.n_active[r] != n) {
        return fail(at + ": n_active " + std::to_string(io.n_active[r]) + " != " + std::to_string(n));
      }
      if (after.initialized[s] != 1 || after.steps[s] != ref.steps[s]) return fail(at + ": initialized/steps");
      if (after.stats[2 * s] != ref.stats[2 * s] || after.stats[2 * s + 1] != ref.stats[2 * s + 1]) {
        return fail(at + ": stats");
      }
      const float* xr = after.xref_row(s, K);
      const float* xe = ref.xref.data() + static_cast<size_t>(s) * K;
      for (int k = 0; k < K; ++k) {
        if (std::memcmp(&xr[k], &xe[k], 4) != 0) {
          return fail(at + ": x_ref[" + std::to_string(k) + "] " + std::to_string(xr[k]) + " != " +
                      std::to_string(xe[k]));
        }
      }
      // y_acc against W x_ref + b (float64): the fp32 drift.
      const std::vector<double> yacc_ref = ref.affine(xe);
      const float* yacc = after.y_acc.data() + static_cast<size_t>(s) * M;
      const float* yr = y.data() + static_cast<size_t>(r) * M;
      double e2 = 0, r2 = 0, o2 = 0, ro2 = 0;
      bool has_nan = false;
      for (int i = 0; i < M; ++i) {
        if (std::isnan(yacc_ref[i])) {
          has_nan = true;
          if (!std::isnan(yacc[i]) || !std::isnan(yr[i])) return fail(at + ": expected NaN at output " + std::to_string(i));
          continue;
        }
        if (!std::isfinite(yr[i]) || !std::isfinite(yacc[i])) return fail(at + ": non-finite output " + std::to_string(i));
        e2 += (yacc[i] - yacc_ref[i]) * (yacc[i] - yacc_ref[i]);
        r2 += yacc_ref[i] * yacc_ref[i];
        const double ya = act_ref(yacc_ref[i], act);
        o2 += (yr[i] - ya) * (yr[i] - ya);
        ro2 += ya * ya;
      }
      const double drift = std::sqrt(e2 / std::max(r2, 1e-30));
      const double out = std::sqrt(o2 / std::max(ro2, 1e-30));
      worst_drift = std::max(worst_drift, drift);
      worst_out = std::max(worst_out, out);
      if (drift > drift_tol) return fail(at + ": y_acc drift " + std::to_string(drift) + " > " + std::to_string(drift_tol));
      if (out > std::max(tol_out(x_dtype), drift_tol)) return fail(at + ": output error " + std::to_string(out));
      // The error model against the dense product of the true input (reference mode, finite inputs).
      if (op.mode == DeltaMode::kReference && !has_nan) {
        const std::vector<double> ytrue = ref.affine(x);
        for (int i = 0; i < M; ++i) {
          double bound = 0, mag = op.has_bias ? std::fabs(op.bias[i]) : 0.0;
          const float* wr = op.w.data() + static_cast<size_t>(i) * K;
          for (int k = 0; k < K; ++k) {
            bound += std::fabs(wr[k]) * op.theta_at(k);
            mag += std::fabs(wr[k]) * std::fabs(xe[k]);
          }
          const double err = std::fabs(yacc[i] - ytrue[i]);
          const double slack = 1e-4 * mag;  // fp32 accumulation drift allowance (10x the drift check)
          worst_bound_ratio = std::max(worst_bound_ratio, err / (bound + slack));
          if (err > bound + slack) {
            return fail(at + ": error bound violated at output " + std::to_string(i) + ": " + std::to_string(err) +
                        " > " + std::to_string(bound));
          }
        }
      }
    }
    // Streams not stepped: bit-for-bit untouched.
    for (int s = 0; s < S; ++s) {
      if (stepped[s]) continue;
      const bool same = before.initialized[s] == after.initialized[s] && before.steps[s] == after.steps[s] &&
                        std::memcmp(before.xref_row(s, K), after.xref_row(s, K), sizeof(float) * K) == 0 &&
                        std::memcmp(before.y_acc.data() + static_cast<size_t>(s) * M,
                                    after.y_acc.data() + static_cast<size_t>(s) * M, sizeof(float) * M) == 0;
      if (!same) return fail("step " + std::to_string(steps_run) + ": stream " + std::to_string(s) + " not stepped but changed");
    }
    return true;
  }
};

// Random-walk input source: x_{t+1} = x_t + sigma * N(0,1) per element.
struct Walk {
  std::vector<float> x;
  float sigma;
  Walk(std::mt19937_64& rng, int n, float sig) : x(n), sigma(sig) {
    std::normal_distribution<float> n01(0.f, 1.f);
    for (auto& v : x) v = n01(rng);
  }
  const std::vector<float>& next(std::mt19937_64& rng, DType t) {
    std::normal_distribution<float> n01(0.f, 1.f);
    for (auto& v : x) v += sigma * n01(rng);
    x = round_to(x, t);
    return x;
  }
};

}  // namespace dc
