// Standalone check + benchmark of the CPU SpMM pieces (src/ops/spmm.h, src/cpu/spmm/):
//   1. dtype converters against core/half.h;
//   2. block-CSR construction (tolerance, L2 pruning with ties, NaN blocks, row order, to_dense);
//   3. validation of malformed CSR and of bad params (each must be rejected, with its message);
//   4. spmm and dense_linear against a float64 reference on fresh random inputs: every dtype, odd and
//      tiny shapes, N = 1 / 3 / 17 / ..., empty block rows, an all-empty matrix, activations, bias,
//      row strides with sentinel gaps, NaN-poisoned outputs, bitwise determinism;
//   5. timing: fp32 W 2048x2048, 32x32 blocks, X 2048x512 (N = 512) at 50/75/90/95% block sparsity,
//      against numpy (OpenBLAS) dense measured in the same run.
// Prints PASS/FAIL per case, then the timing table; exits 1 on any failure. SEED=<n> replays inputs.
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>

#include "bench/native/spmm_check_common.h"
#include "core/thread_pool.h"
#include "cpu/spmm/convert.h"
#include "cpu/spmm/panel.h"

using namespace spmm_check;
using sk::Status;

namespace {

int g_failures = 0, g_cases = 0;

void report(bool ok, const std::string& what) {
  ++g_cases;
  if (!ok) ++g_failures;
  std::printf("%s  %s\n", ok ? "PASS" : "FAIL", what.c_str());
}

double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double time_ms(const std::function<void()>& fn, int warm = 2, int reps = 10) {
  for (int i = 0; i < warm; ++i) fn();
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    const double t0 = now_ms();
    fn();
    t.push_back(now_ms() - t0);
  }
  return median(t);
}

// ---- 1. converters ----
void check_converters(Rng& rng) {
  const int64_t n = 1 << 22;
  std::vector<float> f(n);
  std::vector<uint16_t> h(n), b(n);
  for (int64_t i = 0; i < n; ++i) f[i] = sk::bits_to_float(static_cast<uint32_t>(rng.g()));
  const float edges[] = {0.f, -0.f, 65504.f, 65520.f, 65519.99f, 6.1e-5f, 5.96e-8f, 2.98e-8f, 2.99e-8f, 1e-10f,
                         INFINITY, -INFINITY, NAN, 1.f / 3, 3.4e38f};
  for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]); ++i) f[i] = edges[i];
  sk::cpu::spmm_detail::from_float(DType::kFloat16, f.data(), h.data(), n);
  sk::cpu::spmm_detail::from_float(DType::kBFloat16, f.data(), b.data(), n);
  int64_t bad = 0;
  for (int64_t i = 0; i < n; ++i) bad += (h[i] != sk::float_to_half(f[i])) + (b[i] != sk::float_to_bf16(f[i]));
  report(bad == 0, "convert float32 -> float16/bfloat16 matches core/half.h on 4M random bit patterns (" +
                       std::to_string(bad) + " mismatches)");
  std::vector<uint16_t> all(65536);
  for (int i = 0; i < 65536; ++i) all[i] = static_cast<uint16_t>(i);
  std::vector<float> o16(65536), ob(65536);
  sk::cpu::spmm_detail::to_float(DType::kFloat16, all.data(), o16.data(), 65536);
  sk::cpu::spmm_detail::to_float(DType::kBFloat16, all.data(), ob.data(), 65536);
  bad = 0;
  for (int i = 0; i < 65536; ++i)
    bad += (sk::float_to_bits(o16[i]) != sk::float_to_bits(sk::half_to_float(all[i]))) +
           (sk::float_to_bits(ob[i]) != sk::float_to_bits(sk::bf16_to_float(all[i])));
  report(bad == 0, "convert float16/bfloat16 -> float32 exact on all 65536 bit patterns");
}

// Vectorised epilogue activations against float64 on a dense grid of [-12, 12] (and NaN propagation).
void check_activations() {
  const int n = 2400001;
  std::vector<float> x(n);
  for (int i = 0; i < n; ++i) x[i] = -12.f + 24.f * static_cast<float>(i) / (n - 1);
  for (Activation a : {Activation::kRelu, Activation::kGelu, Activation::kSilu}) {
    std::vector<float> v = x;
    sk::cpu::spmm_detail::bias_activation(v.data(), nullptr, n, a);
    double worst = 0, at = 0;
    for (int i = 0; i < n; ++i) {
      const double ref = act_ref(x[i], a);
      if (std::fabs(ref) < 1e-30) continue;
      const double rel = std::fabs(v[i] - ref) / std::fabs(ref);
      if (rel > worst) worst = rel, at = x[i];
    }
    float nan_in = std::nanf(""), nan_out = nan_in;
    sk::cpu::spmm_detail::bias_activation(&nan_out, nullptr, 1, a);
    const double bound = a == Activation::kGelu ? 3e-5 : 1e-6;  // GELU: float rounding of x^2 in the far tail
    char buf[160];
    std::snprintf(buf, sizeof(buf), "activation %s: max relative error %.2e at x = %.4f on [-12, 12] (bound %.0e), NaN %s",
                  act_name(a), worst, at, bound, std::isnan(nan_out) ? "kept" : "LOST");
    report(worst <= bound && std::isnan(nan_out), buf);
  }
}

// ---- 2. construction ----
struct Built {
  std::vector<int32_t> row_ptr, col_idx, row_order;
  HostArray values;
  sk::BlockCsrView view;
};

Status build(const sk::BsrBuildParams& p, Built* out) {
  int64_t nnzb = 0;
  SK_RETURN_IF_ERROR(sk::cpu::bsr_count(p, &nnzb));
  const int mb = (p.rows + p.bm - 1) / p.bm, kb = (p.cols + p.bk - 1) / p.bk;
  out->row_ptr.assign(mb + 1, -7);
  out->col_idx.assign(std::max<int64_t>(nnzb, 1), -7);
  out->row_order.assign(std::max(mb, 1), -7);
  out->values = HostArray(p.dtype, nnzb * p.bm * p.bk);
  std::fill(out->values.bytes.begin(), out->values.bytes.end(), 0xAB);  // poison: every byte must be written
  sk::BsrBuildOutput o{out->row_ptr.data(), out->col_idx.data(), out->values.data(), out->row_order.data(), nnzb};
  SK_RETURN_IF_ERROR(sk::cpu::bsr_fill(p, o));
  sk::BlockCsrView& v = out->view;
  v = sk::BlockCsrView{};
  v.rows = p.rows, v.cols = p.cols, v.bm = p.bm, v.bk = p.bk, v.mb = mb, v.kb = kb, v.nnzb = nnzb;
  v.row_ptr = out->row_ptr.data(), v.col_idx = out->col_idx.data(), v.values = out->values.data();
  v.row_order = out->row_order.data();
  return Status::Ok();
}

// Expected keep mask by brute force (float64 norms, full sort).
std::vector<uint8_t> expected_keep(const HostArray& d, int rows, int cols, int bm, int bk, double tol, double sparsity) {
  const int mb = (rows + bm - 1) / bm, kb = (cols + bk - 1) / bk;
  std::vector<uint8_t> keep(static_cast<size_t>(mb) * kb);
  std::vector<std::pair<double, int64_t>> norms;
  for (int r = 0; r < mb; ++r)
    for (int c = 0; c < kb; ++c) {
      double mx = 0, sq = 0;
      bool nan = false;
      for (int i = r * bm; i < std::min(rows, (r + 1) * bm); ++i)
        for (int k = c * bk; k < std::min(cols, (c + 1) * bk); ++k) {
          const double v = d.get(static_cast<int64_t>(i) * cols + k);
          nan |= std::isnan(v);
          mx = std::max(mx, std::fabs(v));
          sq += v * v;
        }
      keep[static_cast<size_t>(r) * kb + c] = nan || mx > tol;
      norms.push_back({nan ? INFINITY : sq, static_cast<int64_t>(r) * kb + c});
    }
  if (sparsity >= 0) {
    std::sort(norms.begin(), norms.end());
    const int64_t n_drop = static_cast<int64_t>(std::ceil(sparsity * mb * kb - 1e-7 * mb * kb));
    for (int64_t i = 0; i < n_drop; ++i) keep[norms[i].second] = 0;
  }
  return keep;
}

bool same_selection(const Built& b, const std::vector<uint8_t>& keep) {
  const sk::BlockCsrView& v = b.view;
  std::vector<uint8_t> got(keep.size(), 0);
  for (int r = 0; r < v.mb; ++r)
    for (int j = b.row_ptr[r]; j < b.row_ptr[r + 1]; ++j) got[static_cast<size_t>(r) * v.kb + b.col_idx[j]] = 1;
  return got == keep;
}

// to_dense(from_dense(W)) == W with the dropped blocks zeroed, bit for bit.
bool roundtrip_ok(const Built& b, const HostArray& d, const std::vector<uint8_t>& keep) {
  const sk::BlockCsrView& v = b.view;
  HostArray back(d.dt, d.count);
  std::fill(back.bytes.begin(), back.bytes.end(), 0xCD);
  if (!sk::cpu::bsr_to_dense(v, d.dt, back.data(), v.cols).ok()) return false;
  const size_t es = sk::dtype_size(d.dt);
  for (int64_t i = 0; i < v.rows; ++i)
    for (int64_t k = 0; k < v.cols; ++k) {
      const bool kept = keep[static_cast<size_t>(i / v.bm) * v.kb + k / v.bk];
      const uint8_t* got = back.bytes.data() + (i * v.cols + k) * es;
      const uint8_t* want = d.bytes.data() + (i * v.cols + k) * es;
      for (size_t e = 0; e < es; ++e)
        if (got[e] != (kept ? want[e] : 0)) return false;
    }
  return true;
}

bool row_order_ok(const Built& b) {
  const sk::BlockCsrView& v = b.view;
  std::vector<uint8_t> seen(v.mb, 0);
  for (int i = 0; i < v.mb; ++i) {
    const int r = b.row_order[i];
    if (r < 0 || r >= v.mb || seen[r]) return false;
    seen[r] = 1;
    if (i > 0) {
      const int p = b.row_order[i - 1];
      const int np = b.row_ptr[p + 1] - b.row_ptr[p], nr = b.row_ptr[r + 1] - b.row_ptr[r];
      if (np < nr || (np == nr && p > r)) return false;  // descending, stable
    }
  }
  return true;
}

void check_construction(Rng& rng) {
  for (DType dt : {DType::kFloat32, DType::kFloat16, DType::kBFloat16}) {
    const int rows = 70, cols = 45, bm = 16, bk = 8;  // neither a multiple of the block
    HostArray d(dt, static_cast<int64_t>(rows) * cols);
    d.fill_uniform(rng, -1, 1);
    for (int i = 0; i < rows; ++i)  // zero about half of the blocks, and block row 2 entirely
      for (int k = 0; k < cols; ++k)
        if (((i / bm) * 7 + (k / bk) * 3) % 2 == 0 || i / bm == 2) d.set(static_cast<int64_t>(i) * cols + k, 0.0);
    const std::string tag = std::string(sk::dtype_name(dt)) + " 70x45 blocks 16x8";
    for (double tol : {0.0, 0.9}) {
      sk::BsrBuildParams p;
      p.dense = d.data(), p.row_stride = cols, p.rows = rows, p.cols = cols, p.bm = bm, p.bk = bk, p.dtype = dt;
      p.tolerance = static_cast<float>(tol);
      Built b;
      const Status s = build(p, &b);
      const auto keep = expected_keep(d, rows, cols, bm, bk, p.tolerance, -1);
      report(s.ok() && sk::check_bsr_structure(b.view).ok() && same_selection(b, keep) && roundtrip_ok(b, d, keep) &&
                 row_order_ok(b),
             "bsr_from_dense " + tag + " tolerance " + std::to_string(tol) + ": selection, structure, to_dense, row_order " +
                 (s.ok() ? "" : s.message));
    }
    for (double sp : {0.3, 0.75, 1.0}) {
      HostArray dd(dt, static_cast<int64_t>(rows) * cols);
      dd.fill_uniform(rng, -1, 1);
      sk::BsrBuildParams p;
      p.dense = dd.data(), p.row_stride = cols, p.rows = rows, p.cols = cols, p.bm = bm, p.bk = bk, p.dtype = dt;
      p.target_sparsity = static_cast<float>(sp);
      Built b;
      const Status s = build(p, &b);
      const auto keep = expected_keep(dd, rows, cols, bm, bk, 0, p.target_sparsity);
      report(s.ok() && same_selection(b, keep) && roundtrip_ok(b, dd, keep) && row_order_ok(b),
             "bsr_from_dense " + tag + " prune to " + std::to_string(sp) + " by block L2: " +
                 std::to_string(b.view.nnzb) + " of " + std::to_string(b.view.mb * b.view.kb) + " kept " +
                 (s.ok() ? "" : s.message));
    }
  }
  {  // ties: every block has the same L2 norm (entries +-1) -> the lower block indices go first
    const int rows = 32, cols = 48, bm = 8, bk = 8;
    HostArray d(DType::kFloat32, rows * cols);
    for (int64_t i = 0; i < d.count; ++i) d.set(i, rng.uni(0, 1) < 0.5 ? -1.0 : 1.0);
    sk::BsrBuildParams p;
    p.dense = d.data(), p.row_stride = cols, p.rows = rows, p.cols = cols, p.bm = bm, p.bk = bk;
    p.target_sparsity = 0.5f;
    Built b;
    const Status s = build(p, &b);
    bool ok = s.ok() && b.view.nnzb == 12;
    for (int r = 0; ok && r < 4; ++r) ok = (b.row_ptr[r + 1] - b.row_ptr[r]) == (r < 2 ? 0 : 6);
    report(ok, "bsr_from_dense prune ties: equal norms drop the lowest block indices first");
  }
  {  // NaN in a block keeps it (tolerance and pruning), as dense would propagate it
    const int rows = 16, cols = 16, bm = 8, bk = 8;
    HostArray d(DType::kFloat32, rows * cols);
    for (int64_t i = 0; i < d.count; ++i) d.set(i, 0.0);
    d.set(9 * cols + 9, std::nan(""));  // block (1, 1)
    d.set(0, 0.5);                        // block (0, 0)
    sk::BsrBuildParams p;
    p.dense = d.data(), p.row_stride = cols, p.rows = rows, p.cols = cols, p.bm = bm, p.bk = bk;
    p.target_sparsity = 0.75f;
    Built b;
    const Status s = build(p, &b);
    report(s.ok() && b.view.nnzb == 1 && b.col_idx[0] == 1 && b.row_ptr[1] == 0,
           "bsr_from_dense keeps a NaN block (ranked +inf) and prunes the finite ones");
  }
  {  // capacity mismatch, bad params
    HostArray d(DType::kFloat32, 64);
    d.fill_uniform(rng, -1, 1);
    sk::BsrBuildParams p;
    p.dense = d.data(), p.row_stride = 8, p.rows = 8, p.cols = 8, p.bm = 4, p.bk = 4;
    std::vector<int32_t> rp(3), ci(4), ro(2);
    std::vector<float> vals(64);
    sk::BsrBuildOutput o{rp.data(), ci.data(), vals.data(), ro.data(), 3};
    const Status s1 = sk::cpu::bsr_fill(p, o);
    p.row_stride = 7;
    int64_t n = 0;
    const Status s2 = sk::cpu::bsr_count(p, &n);
    p.row_stride = 8, p.target_sparsity = 1.5f;
    const Status s3 = sk::cpu::bsr_count(p, &n);
    report(!s1.ok() && !s2.ok() && !s3.ok(), "bsr_fill/bsr_count reject a wrong capacity, row_stride < cols, sparsity > 1: [" +
                                                 s1.message + "] [" + s2.message + "] [" + s3.message + "]");
  }
}

// ---- 3. validation ----
void check_validation() {
  // A valid 3 x 4 block grid: rows {0, 2}, {}, {1, 3}
  auto make = [](std::vector<int32_t> rp, std::vector<int32_t> ci, int mb = 3, int kb = 4) {
    sk::BlockCsrView v;
    v.bm = v.bk = 2, v.mb = mb, v.kb = kb, v.rows = mb * 2, v.cols = kb * 2;
    v.nnzb = static_cast<int64_t>(ci.size());
    static std::vector<int32_t> srp, sci;
    static float vals[64];
    srp = std::move(rp), sci = std::move(ci);
    v.row_ptr = srp.data(), v.col_idx = sci.data(), v.values = vals;
    return v;
  };
  report(sk::check_bsr_structure(make({0, 2, 2, 4}, {0, 2, 1, 3})).ok(), "check_bsr_structure accepts a valid CSR");
  struct Bad {
    std::vector<int32_t> rp, ci;
    const char* what;
  };
  const Bad bad[] = {
      {{1, 2, 2, 4}, {0, 2, 1, 3}, "row_ptr[0] != 0"},
      {{0, 3, 2, 4}, {0, 2, 1, 3}, "non-monotone row_ptr"},
      {{0, 2, 2, 3}, {0, 2, 1, 3}, "row_ptr[mb] != nnzb"},
      {{0, 2, 2, 4}, {0, 4, 1, 3}, "col_idx >= kb"},
      {{0, 2, 2, 4}, {0, -1, 1, 3}, "col_idx < 0"},
      {{0, 2, 2, 4}, {2, 2, 1, 3}, "duplicate col_idx"},
      {{0, 2, 2, 4}, {2, 0, 1, 3}, "unsorted col_idx"},
  };
  for (const Bad& b : bad) {
    const Status s = sk::check_bsr_structure(make(b.rp, b.ci));
    report(!s.ok(), std::string("check_bsr_structure rejects ") + b.what + ": " + s.message);
  }
  {
    sk::BlockCsrView v = make({0, 2, 2, 4}, {0, 2, 1, 3});
    const int32_t dup[] = {0, 0, 2}, oob[] = {0, 3, 1};
    v.row_order = dup;
    const Status s1 = sk::check_bsr_structure(v);
    v.row_order = oob;
    const Status s2 = sk::check_bsr_structure(v);
    v.row_order = nullptr, v.mb = 2;  // grid does not match the shape
    const Status s3 = sk::check_bsr_structure(v);
    report(!s1.ok() && !s2.ok() && !s3.ok(),
           "check_bsr_structure rejects repeated / out-of-range row_order and a wrong block grid: [" + s1.message +
               "] [" + s2.message + "] [" + s3.message + "]");
  }
  {  // spmm refuses a malformed CSR before touching data, and bad params
    sk::SpmmParams p;
    std::vector<float> x(8 * 8, 1.f), y(8 * 8);
    p.x = x.data(), p.y = y.data(), p.n = 8, p.x_row_stride = 8, p.y_row_stride = 8;
    p.w = make({0, 2, 2, 4}, {0, 4, 1, 3});
    const Status s1 = sk::cpu::spmm(p);
    p.w = make({0, 2, 2, 4}, {0, 2, 1, 3});
    p.y_row_stride = 5;
    const Status s2 = sk::cpu::spmm(p);
    p.y_row_stride = 8, p.dtype = DType::kInt8;
    const Status s3 = sk::cpu::spmm(p);
    p.dtype = DType::kFloat32;
    const Status s4 = sk::check_spmm_params(p, /*for_cuda=*/true);  // 2x2 blocks: CPU only
    report(!s1.ok() && !s2.ok() && !s3.ok() && !s4.ok() && sk::cpu::spmm(p).ok(),
           "spmm rejects bad col_idx, y_row_stride < M, int8 dtype; CUDA params reject 2x2 blocks: [" + s1.message +
               "] [" + s2.message + "] [" + s3.message + "] [" + s4.message + "]");
  }
}

// ---- 4. correctness ----
struct SpmmCase {
  DType dt;
  int M, K, N, bm, bk;
  double density, empty_rows;
  Activation act;
  bool bias;
  int x_pad = 0, y_pad = 0;  // extra row-stride elements
};

std::string describe(const SpmmCase& c) {
  char buf[200];
  std::snprintf(buf, sizeof(buf), "%-8s M=%d K=%d N=%d block %dx%d density %.2f empty %.2f %s%s strides +%d/+%d",
                sk::dtype_name(c.dt), c.M, c.K, c.N, c.bm, c.bk, c.density, c.empty_rows, act_name(c.act),
                c.bias ? " +bias" : "", c.x_pad, c.y_pad);
  return buf;
}

void run_spmm_case(Rng& rng, const SpmmCase& c) {
  HostBsr w = random_bsr(rng, c.dt, c.M, c.K, c.bm, c.bk, c.density, c.empty_rows);
  const int64_t ldx = c.K + c.x_pad, ldy = c.M + c.y_pad;
  HostArray x(c.dt, c.N * ldx), bias(c.dt, c.M), y(c.dt, c.N * ldy);
  x.fill_uniform(rng, -1, 1);
  bias.fill_uniform(rng, -1, 1);
  poison(y, ldy, c.N, c.M);
  sk::SpmmParams p;
  p.x = x.data(), p.y = y.data(), p.bias = c.bias ? bias.data() : nullptr;
  p.x_row_stride = ldx, p.y_row_stride = ldy, p.n = c.N, p.dtype = c.dt, p.activation = c.act, p.w = w.view;
  const Status s = sk::cpu::spmm(p);
  const auto ref = reference(x, ldx, c.N, c.K, dense_of(w), c.M, c.bias ? &bias : nullptr, c.act);
  const Compare cmp = compare(y, ldy, c.N, c.M, ref);
  // Determinism: a second run gives the same bits.
  HostArray y2(c.dt, c.N * ldy);
  poison(y2, ldy, c.N, c.M);
  p.y = y2.data();
  const Status s2 = sk::cpu::spmm(p);
  const bool same = y.bytes == y2.bytes;
  char buf[160];
  std::snprintf(buf, sizeof(buf), " nnzb=%lld rel_err %.2e unwritten %lld clobbered %lld%s",
                static_cast<long long>(w.view.nnzb), cmp.rel_err, static_cast<long long>(cmp.unwritten),
                static_cast<long long>(cmp.clobbered), same ? "" : " NOT DETERMINISTIC");
  report(s.ok() && s2.ok() && cmp.rel_err <= tolerance(c.dt) && cmp.unwritten == 0 && cmp.clobbered == 0 && same,
         "spmm " + describe(c) + buf + (s.ok() ? "" : " " + s.message));
}

void run_dense_case(Rng& rng, DType dt, int M, int K, int N, Activation act, bool with_bias) {
  const int64_t ldw = K + 3, ldx = K + 1, ldy = M + 2;
  HostArray x(dt, N * ldx), w(dt, M * ldw), bias(dt, M), y(dt, N * ldy);
  x.fill_uniform(rng, -1, 1);
  w.fill_uniform(rng, -1, 1);
  bias.fill_uniform(rng, -1, 1);
  poison(y, ldy, N, M);
  sk::DenseLinearParams p;
  p.x = x.data(), p.w = w.data(), p.bias = with_bias ? bias.data() : nullptr, p.y = y.data();
  p.x_row_stride = ldx, p.w_row_stride = ldw, p.y_row_stride = ldy, p.n = N, p.m = M, p.k = K, p.dtype = dt;
  p.activation = act;
  const Status s = sk::cpu::dense_linear(p);
  std::vector<double> wd(static_cast<size_t>(M) * K);
  for (int m = 0; m < M; ++m)
    for (int k = 0; k < K; ++k) wd[static_cast<size_t>(m) * K + k] = w.get(static_cast<int64_t>(m) * ldw + k);
  const Compare cmp = compare(y, ldy, N, M, reference(x, ldx, N, K, wd, M, with_bias ? &bias : nullptr, act));
  char buf[256];
  std::snprintf(buf, sizeof(buf), "dense_linear %-8s M=%d K=%d N=%d %s%s rel_err %.2e unwritten %lld clobbered %lld",
                sk::dtype_name(dt), M, K, N, act_name(act), with_bias ? " +bias" : "", cmp.rel_err,
                static_cast<long long>(cmp.unwritten), static_cast<long long>(cmp.clobbered));
  report(s.ok() && cmp.rel_err <= tolerance(dt) && cmp.unwritten == 0 && cmp.clobbered == 0,
         std::string(buf) + (s.ok() ? "" : " " + s.message));
}

void check_correctness(Rng& rng) {
  const DType dts[] = {DType::kFloat32, DType::kFloat16, DType::kBFloat16};
  const int blocks[][2] = {{16, 16}, {32, 32}, {64, 64}, {16, 64}, {64, 16}, {32, 16}, {3, 5}, {1, 1}, {4, 1}};
  const int ns[] = {1, 3, 17, 64, 100};
  const Activation acts[] = {Activation::kNone, Activation::kRelu, Activation::kGelu, Activation::kSilu};
  int i = 0;
  for (DType dt : dts)
    for (auto& b : blocks)
      for (int n : ns) {
        const int M = 2 * b[0] + b[0] / 2 + 1 + (b[0] == 1 ? 40 : 0), K = 3 * b[1] + 3 + (b[1] == 1 ? 60 : 0);
        run_spmm_case(rng, {dt, M, K, n, b[0], b[1], 0.45, 0.25, acts[i % 4], i % 3 != 0, i % 2, (i / 2) % 3});
        ++i;
      }
  for (DType dt : dts) {
    run_spmm_case(rng, {dt, 77, 93, 9, 16, 16, 0.0, 0.0, Activation::kGelu, true});   // nnzb == 0: bias + act
    run_spmm_case(rng, {dt, 77, 93, 1, 16, 16, 0.0, 0.0, Activation::kSilu, true});   // nnzb == 0, N == 1
    run_spmm_case(rng, {dt, 77, 93, 5, 32, 32, 0.0, 0.0, Activation::kNone, false});  // nnzb == 0, zeros
    run_spmm_case(rng, {dt, 1, 1, 1, 16, 16, 1.0, 0.0, Activation::kNone, true});     // tiny
    run_spmm_case(rng, {dt, 520, 600, 150, 64, 64, 0.3, 0.1, Activation::kRelu, true, 8, 8});
    run_spmm_case(rng, {dt, 300, 1030, 70, 32, 32, 0.5, 0.2, Activation::kGelu, true});
  }
  for (DType dt : dts)
    for (int n : {1, 3, 17, 100}) run_dense_case(rng, dt, 77, 1030 + n, n, acts[n % 4], n != 3);
  run_dense_case(rng, DType::kFloat32, 5, 0, 4, Activation::kSilu, true);  // K == 0: bias only
}

// ---- 5. timing ----
double numpy_dense_ms(int N, int M, int K) {
  char cmd[600];
  std::snprintf(cmd, sizeof(cmd),
                "python3 -c \"import numpy as np,time\n"
                "x=np.random.rand(%d,%d).astype(np.float32); w=np.random.rand(%d,%d).astype(np.float32)\n"
                "[x@w.T for _ in range(2)]\nts=[]\nfor _ in range(10):\n t=time.perf_counter(); x@w.T; ts.append(time.perf_counter()-t)\n"
                "ts.sort(); print(ts[5]*1e3)\" 2>/dev/null",
                N, K, M, K);
  FILE* f = popen(cmd, "r");
  if (!f) return -1;
  double ms = -1;
  if (std::fscanf(f, "%lf", &ms) != 1) ms = -1;
  pclose(f);
  return ms;
}

void timing(Rng& rng) {
  const int M = 2048, K = 2048, N = 512;
  std::printf("\nTiming (CPU, %d threads; median of 10 after 2 warm-ups): W %dx%d, X %dx%d (N = %d)\n",
              sk::core::ThreadPool::global().num_threads(), M, K, N, K, N);
  const double np_ms = numpy_dense_ms(N, M, K);
  const double flops = 2.0 * M * K * N;
  std::printf("%-44s %10s %12s %14s\n", "case", "ms", "GFLOP/s*", "vs numpy");
  if (np_ms > 0)
    std::printf("%-44s %10.3f %12.1f %14s\n", "numpy (OpenBLAS) dense fp32, same run", np_ms, flops / np_ms / 1e6, "1.00x");
  else
    std::printf("numpy unavailable (python3 -c 'import numpy' failed)\n");
  // `compare`: the row has the numpy shape (N = 512), so the ratio means something.
  auto row = [&](const std::string& name, double ms, double useful_flops, bool compare = true) {
    char ratio[32] = "-";
    if (np_ms > 0 && compare) std::snprintf(ratio, sizeof(ratio), "%.2fx", np_ms / ms);
    std::printf("%-44s %10.3f %12.1f %14s\n", name.c_str(), ms, useful_flops / ms / 1e6, ratio);
  };
  double ms90 = 0;
  for (DType dt : {DType::kFloat32, DType::kBFloat16})
    for (double sp : {0.5, 0.75, 0.9, 0.95}) {
      if (dt != DType::kFloat32 && sp != 0.9) continue;
      HostBsr w = random_bsr(rng, dt, M, K, 32, 32, 1.0 - sp, 0.0, /*exact=*/true);
      HostArray x(dt, static_cast<int64_t>(N) * K), y(dt, static_cast<int64_t>(N) * M);
      x.fill_uniform(rng, -1, 1);
      sk::SpmmParams p;
      p.x = x.data(), p.y = y.data(), p.x_row_stride = K, p.y_row_stride = M, p.n = N, p.dtype = dt, p.w = w.view;
      for (Activation a : {Activation::kNone, Activation::kGelu}) {
        if (a == Activation::kGelu && (sp != 0.9 || dt != DType::kFloat32)) continue;
        p.activation = a;
        const double ms = time_ms([&] { (void)sk::cpu::spmm(p); });
        if (dt == DType::kFloat32 && sp == 0.9 && a == Activation::kNone) ms90 = ms;
        char name[96];
        std::snprintf(name, sizeof(name), "spmm %s 32x32 %.0f%% sparse%s", sk::dtype_name(dt), sp * 100,
                      a == Activation::kGelu ? " +gelu" : "");
        row(name, ms, flops * (1 - sp));
      }
    }
  {
    HostArray x(DType::kFloat32, static_cast<int64_t>(N) * K), w(DType::kFloat32, static_cast<int64_t>(M) * K),
        y(DType::kFloat32, static_cast<int64_t>(N) * M);
    x.fill_uniform(rng, -1, 1);
    w.fill_uniform(rng, -1, 1);
    sk::DenseLinearParams p;
    p.x = x.data(), p.w = w.data(), p.y = y.data(), p.x_row_stride = K, p.w_row_stride = K, p.y_row_stride = M;
    p.n = N, p.m = M, p.k = K;
    row("dense_linear float32 (ours)", time_ms([&] { (void)sk::cpu::dense_linear(p); }), flops);
    p.n = 1;
    row("dense_linear float32 N=1 (GEMV)", time_ms([&] { (void)sk::cpu::dense_linear(p); }, 2, 20), 2.0 * M * K,
        false);
  }
  {
    HostBsr w = random_bsr(rng, DType::kFloat32, M, K, 32, 32, 0.1, 0.0, true);
    HostArray x(DType::kFloat32, K), y(DType::kFloat32, M);
    x.fill_uniform(rng, -1, 1);
    sk::SpmmParams p;
    p.x = x.data(), p.y = y.data(), p.x_row_stride = K, p.y_row_stride = M, p.n = 1, p.w = w.view;
    row("spmm float32 32x32 90% sparse N=1 (GEMV)", time_ms([&] { (void)sk::cpu::spmm(p); }, 2, 20), 0.2 * M * K,
        false);
  }
  std::printf("* GFLOP/s counts useful (kept-block) FLOPs only.\n");
  if (np_ms > 0 && ms90 > 0)
    std::printf("TARGET fp32 90%% 32x32 >= 4x numpy dense: %.2fx -> %s\n", np_ms / ms90,
                np_ms / ms90 >= 4.0 ? "met" : "NOT met");
}

}  // namespace

int main(int argc, char** argv) {
  // Pool workers run at nice +5 by default (the JS thread keeps priority); numpy's threads do not, so the
  // comparison runs ours at normal priority too unless the caller chose otherwise.
  setenv("SPARSE_KERNELS_WORKER_NICE", "0", /*overwrite=*/0);
  const uint64_t seed = pick_seed();
  std::printf("spmm_cpu_check: seed %llu (SEED=%llu replays)\n", static_cast<unsigned long long>(seed),
              static_cast<unsigned long long>(seed));
  Rng rng(seed);
  const bool timing_only = argc > 1 && std::string(argv[1]) == "--timing-only";
  const bool no_timing = argc > 1 && std::string(argv[1]) == "--no-timing";
  if (!timing_only) {
    check_converters(rng);
    check_activations();
    check_construction(rng);
    check_validation();
    check_correctness(rng);
    std::printf("\n%d cases, %d failed\n", g_cases, g_failures);
  }
  if (!no_timing) timing(rng);
  return g_failures == 0 ? 0 : 1;
}
