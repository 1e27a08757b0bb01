// Host-side helpers shared by the SpMM checks (spmm_cpu_check.cc, spmm_check.cu): random inputs, random
// block-CSR matrices, an independent float64 reference, and the poison / sentinel comparison.
// The reference never calls the code under test: dense W comes from scattering the blocks here.
#pragma once
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/half.h"
#include "ops/spmm.h"

namespace spmm_check {

using sk::Activation;
using sk::DType;

inline uint64_t pick_seed() {
  if (const char* s = std::getenv("SEED")) return std::strtoull(s, nullptr, 10);
  return static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) ^ 0x9e3779b97f4a7c15ull;
}

struct Rng {
  std::mt19937_64 g;
  explicit Rng(uint64_t seed) : g(seed) {}
  double uni(double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(g); }
  int64_t below(int64_t n) { return static_cast<int64_t>(g() % static_cast<uint64_t>(n)); }
};

inline const char* act_name(Activation a) {
  switch (a) {
    case Activation::kRelu: return "relu";
    case Activation::kGelu: return "gelu";
    case Activation::kSilu: return "silu";
    default: return "none";
  }
}

inline double act_ref(double v, Activation a) {
  switch (a) {
    case Activation::kRelu: return v < 0 ? 0.0 : v;
    case Activation::kGelu: return 0.5 * v * std::erfc(-v / std::sqrt(2.0));  // 1 + erf cancels for v << 0
    case Activation::kSilu: return v / (1.0 + std::exp(-v));
    default: return v;
  }
}

// A host array of one float dtype, kept as raw bits (what the kernels read and write).
struct HostArray {
  DType dt = DType::kFloat32;
  int64_t count = 0;
  std::vector<uint8_t> bytes;
  HostArray() = default;
  HostArray(DType d, int64_t n) : dt(d), count(n), bytes(static_cast<size_t>(std::max<int64_t>(n, 1)) * sk::dtype_size(d)) {}
  void* data() { return bytes.data(); }
  const void* data() const { return bytes.data(); }
  size_t nbytes() const { return static_cast<size_t>(count) * sk::dtype_size(dt); }
  double get(int64_t i) const {
    if (dt == DType::kFloat32) {
      float f;
      std::memcpy(&f, bytes.data() + i * 4, 4);
      return f;
    }
    uint16_t h;
    std::memcpy(&h, bytes.data() + i * 2, 2);
    return dt == DType::kFloat16 ? sk::half_to_float(h) : sk::bf16_to_float(h);
  }
  void set(int64_t i, double v) {  // rounds once to the dtype
    const float f = static_cast<float>(v);
    if (dt == DType::kFloat32) {
      std::memcpy(bytes.data() + i * 4, &f, 4);
      return;
    }
    const uint16_t h = dt == DType::kFloat16 ? sk::float_to_half(f) : sk::float_to_bf16(f);
    std::memcpy(bytes.data() + i * 2, &h, 2);
  }
  void fill_uniform(Rng& rng, double lo, double hi) {
    for (int64_t i = 0; i < count; ++i) set(i, rng.uni(lo, hi));
  }
};

// A block-CSR matrix on the host with its arrays.
struct HostBsr {
  sk::BlockCsrView view;  // pointers into the vectors below (refresh with bind())
  std::vector<int32_t> row_ptr, col_idx, row_order;
  HostArray values;
  void bind() {
    view.row_ptr = row_ptr.data();
    view.col_idx = col_idx.empty() ? nullptr : col_idx.data();
    view.values = view.nnzb > 0 ? values.data() : nullptr;
    view.row_order = row_order.empty() ? nullptr : row_order.data();
  }
};

// Random block-CSR: each block row is empty with probability `empty_rows`, otherwise each block is kept
// with probability `density`. With exact = true exactly round(density * mb * kb) blocks are kept,
// uniformly (the layout of the timing runs). Values uniform in [-1, 1], padding zero; row_order from the
// library (it is also checked separately).
inline HostBsr random_bsr(Rng& rng, DType dt, int M, int K, int bm, int bk, double density, double empty_rows,
                          bool exact = false) {
  HostBsr b;
  sk::BlockCsrView& v = b.view;
  v.rows = M, v.cols = K, v.bm = bm, v.bk = bk;
  v.mb = (M + bm - 1) / bm, v.kb = (K + bk - 1) / bk;
  std::vector<uint8_t> keep(static_cast<size_t>(v.mb) * v.kb, 0);
  if (exact) {
    std::vector<int64_t> idx(keep.size());
    for (size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<int64_t>(i);
    std::shuffle(idx.begin(), idx.end(), rng.g);
    const size_t n = static_cast<size_t>(std::llround(density * static_cast<double>(keep.size())));
    for (size_t i = 0; i < n; ++i) keep[idx[i]] = 1;
  } else {
    for (int r = 0; r < v.mb; ++r) {
      if (rng.uni(0, 1) < empty_rows) continue;
      for (int c = 0; c < v.kb; ++c) keep[static_cast<size_t>(r) * v.kb + c] = rng.uni(0, 1) < density;
    }
  }
  b.row_ptr.assign(v.mb + 1, 0);
  for (int r = 0; r < v.mb; ++r) {
    int n = 0;
    for (int c = 0; c < v.kb; ++c) {
      if (keep[static_cast<size_t>(r) * v.kb + c]) {
        b.col_idx.push_back(c);
        ++n;
      }
    }
    b.row_ptr[r + 1] = b.row_ptr[r] + n;
  }
  v.nnzb = static_cast<int64_t>(b.col_idx.size());
  b.values = HostArray(dt, v.nnzb * bm * bk);
  for (int r = 0; r < v.mb; ++r)
    for (int j = b.row_ptr[r]; j < b.row_ptr[r + 1]; ++j) {
      const int c = b.col_idx[j];
      for (int i = 0; i < bm; ++i)
        for (int k = 0; k < bk; ++k) {
          const bool inside = r * bm + i < M && c * bk + k < K;
          b.values.set((static_cast<int64_t>(j) * bm + i) * bk + k, inside ? rng.uni(-1, 1) : 0.0);
        }
    }
  b.row_order.assign(v.mb, 0);
  sk::cpu::bsr_row_order(v.mb, b.row_ptr.data(), b.row_order.data());
  b.bind();
  return b;
}

// Dense float64 W [M, K] by scattering the blocks (independent of sk::cpu::bsr_to_dense).
inline std::vector<double> dense_of(const HostBsr& b) {
  const sk::BlockCsrView& v = b.view;
  std::vector<double> w(static_cast<size_t>(v.rows) * v.cols, 0.0);
  for (int r = 0; r < v.mb; ++r)
    for (int j = b.row_ptr[r]; j < b.row_ptr[r + 1]; ++j)
      for (int i = 0; i < v.bm; ++i)
        for (int k = 0; k < v.bk; ++k) {
          const int64_t m = static_cast<int64_t>(r) * v.bm + i, kk = static_cast<int64_t>(b.col_idx[j]) * v.bk + k;
          if (m < v.rows && kk < v.cols) w[m * v.cols + kk] = b.values.get((static_cast<int64_t>(j) * v.bm + i) * v.bk + k);
        }
  return w;
}

// Y_ref[n][m] = act(sum_k x[n][k] * w[m][k] + bias[m]) in float64, from the dtype-rounded inputs.
inline std::vector<double> reference(const HostArray& x, int64_t ldx, int N, int K, const std::vector<double>& w, int M,
                                     const HostArray* bias, Activation act) {
  std::vector<double> y(static_cast<size_t>(N) * M);
  std::vector<double> xr(K);
  for (int n = 0; n < N; ++n) {
    for (int k = 0; k < K; ++k) xr[k] = x.get(static_cast<int64_t>(n) * ldx + k);
    for (int m = 0; m < M; ++m) {
      const double* wr = w.data() + static_cast<int64_t>(m) * K;
      double s = 0;
      for (int k = 0; k < K; ++k) s += xr[k] * wr[k];
      if (bias) s += bias->get(m);
      y[static_cast<size_t>(n) * M + m] = act_ref(s, act);
    }
  }
  return y;
}

constexpr double kSentinel = 1280.0;  // exact in every dtype; written into the row-stride gap of Y, must survive

// NaN-poisons Y's [N, M] part and writes the sentinel into the gap columns [M, ldy).
inline void poison(HostArray& y, int64_t ldy, int N, int M) {
  for (int n = 0; n < N; ++n)
    for (int64_t m = 0; m < ldy; ++m) y.set(n * ldy + m, m < M ? std::nan("") : kSentinel);
}

struct Compare {
  double rel_err = 0;     // relative Frobenius norm ||y - ref|| / ||ref||
  int64_t unwritten = 0;  // NaN left where the reference is finite
  int64_t clobbered = 0;  // gap entries that lost the sentinel
};

inline Compare compare(const HostArray& y, int64_t ldy, int N, int M, const std::vector<double>& ref) {
  Compare c;
  double num = 0, den = 0;
  for (int n = 0; n < N; ++n)
    for (int64_t m = 0; m < ldy; ++m) {
      const double v = y.get(n * ldy + m);
      if (m >= M) {
        c.clobbered += v != kSentinel;
        continue;
      }
      const double r = ref[static_cast<size_t>(n) * M + m];
      if (std::isnan(v)) {
        ++c.unwritten;
        continue;
      }
      num += (v - r) * (v - r);
      den += r * r;
    }
  c.rel_err = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
  return c;
}

inline double tolerance(DType dt) { return dt == DType::kFloat32 ? 1e-5 : 1e-2; }

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

}  // namespace spmm_check
