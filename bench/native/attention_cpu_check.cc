// Standalone check + benchmark of the CPU block-sparse attention kernel (sk::cpu::attention_fwd) and the
// attention validation functions. Not a product test: a developer tool that must be able to fail.
//
//  1. correctness: fresh random inputs (seed printed; SEED=<n> reproduces a run), outputs and lse
//     poisoned with NaN before the run, compared with a float64 reference of the exact contract in
//     src/ops/attention.h (relative Frobenius norm: fp32 <= 1e-5, fp16/bf16 inputs <= 1e-2; lse <= 1e-5;
//     rows without a kept key must be exactly out = 0, lse = -inf; padding between output rows must stay
//     untouched);
//  2. validation: every check function fed bad inputs must return a non-OK Status (messages printed);
//  3. timing (float32, Hq = 8, Hk = 2, D = 128, N = 4096): dense causal vs ~10% density causal layout,
//     median of 10 runs after a warm-up, GFLOP/s on the computed (listed) blocks; "dense/this" is the
//     wall-time ratio to the dense causal run; "cpu ms" is process CPU time (all threads), which keeps
//     GFLOP/s per busy core readable when other jobs share the machine.
// Exit status: non-zero if any correctness or validation case fails.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/half.h"
#include "core/thread_pool.h"
#include "ops/attention.h"

namespace {

using sk::AttentionParams;
using sk::BlockLayoutView;
using sk::DType;

std::mt19937_64 rng;
int failures = 0;

// ---------------------------------------------------------------------------------------------------
// Layouts and permutations
// ---------------------------------------------------------------------------------------------------

enum class LayoutKind { kDense, kRandom, kSegments };  // kSegments: PBS shape (earlier segments full)
enum class PermMode { kNone, kPerKvHead, kPerQHead };

struct HostLayout {
  std::vector<int32_t> full_cnt, full_idx, mask_cnt, mask_idx;
  BlockLayoutView view;
  int64_t listed_blocks = 0;  // over all (b, h, query block) of the op, broadcast rows counted per use
};

// rows[r] = (full list, masked list) for layout row r = (lb, lh, qb) flattened.
HostLayout pack_layout(const std::vector<std::pair<std::vector<int>, std::vector<int>>>& rows, int lb, int lh,
                       int q_blocks, int k_blocks, int bs) {
  HostLayout L;
  int maxf = 0, maxm = 0;
  for (const auto& r : rows) {
    maxf = std::max<int>(maxf, r.first.size());
    maxm = std::max<int>(maxm, r.second.size());
  }
  const size_t n = rows.size();
  L.full_cnt.assign(n, 0);
  L.mask_cnt.assign(n, 0);
  L.full_idx.assign(n * maxf + 1, -7);  // +1: never empty; unused slots hold garbage on purpose
  L.mask_idx.assign(n * maxm + 1, -7);
  for (size_t r = 0; r < n; ++r) {
    L.full_cnt[r] = rows[r].first.size();
    L.mask_cnt[r] = rows[r].second.size();
    std::copy(rows[r].first.begin(), rows[r].first.end(), L.full_idx.begin() + r * maxf);
    std::copy(rows[r].second.begin(), rows[r].second.end(), L.mask_idx.begin() + r * maxm);
  }
  BlockLayoutView& v = L.view;
  v.full_cnt = L.full_cnt.data();
  v.full_idx = L.full_idx.data();
  v.mask_cnt = L.mask_cnt.data();
  v.mask_idx = L.mask_idx.data();
  v.batch = lb;
  v.heads = lh;
  v.q_blocks = q_blocks;
  v.k_blocks = k_blocks;
  v.max_blocks = maxf;
  v.mask_max_blocks = maxm;
  v.block_size = bs;
  return L;
}

HostLayout make_layout(LayoutKind kind, bool causal, double density, int lb, int lh, int q_blocks, int k_blocks,
                       int bs, int seg_blocks) {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  std::vector<std::pair<std::vector<int>, std::vector<int>>> rows(static_cast<size_t>(lb) * lh * q_blocks);
  for (size_t r = 0; r < rows.size(); ++r) {
    const int qb = static_cast<int>(r % q_blocks);
    auto& [full, masked] = rows[r];
    for (int kb = 0; kb < k_blocks; ++kb) {
      switch (kind) {
        case LayoutKind::kDense:
          if (!causal) full.push_back(kb);
          else if (kb < qb) full.push_back(kb);
          else if (kb == qb) masked.push_back(kb);
          break;
        case LayoutKind::kRandom:  // any block, any list: the reference follows the contract exactly
          if (u(rng) < density) (u(rng) < 0.5 ? full : masked).push_back(kb);
          break;
        case LayoutKind::kSegments:  // PBS: earlier segments full (kept with probability density), own segment masked
          if (kb / seg_blocks < qb / seg_blocks) {
            if (u(rng) < density) full.push_back(kb);
          } else if (kb / seg_blocks == qb / seg_blocks) {
            masked.push_back(kb);
          }
          break;
      }
    }
  }
  return pack_layout(rows, lb, lh, q_blocks, k_blocks, bs);
}

// Random permutation rows; seg > 0 permutes inside consecutive segments only (PBS), else the whole row.
std::vector<int32_t> make_perm(int rows, int seq_k, int seg) {
  std::vector<int32_t> p(static_cast<size_t>(rows) * seq_k);
  for (int r = 0; r < rows; ++r) {
    int32_t* row = p.data() + static_cast<size_t>(r) * seq_k;
    for (int j = 0; j < seq_k; ++j) row[j] = j;
    const int s = seg > 0 ? seg : seq_k;
    for (int a = 0; a < seq_k; a += s) std::shuffle(row + a, row + std::min(seq_k, a + s), rng);
  }
  return p;
}

// ---------------------------------------------------------------------------------------------------
// Tensors: typed strided storage + the exact values (after rounding to the dtype) for the reference
// ---------------------------------------------------------------------------------------------------

enum class Strides { kContiguous, kBshdPadded };  // [B,H,N,D] contiguous, or [B,N,H,D] with padded rows

struct HostTensor {
  DType dtype;
  int B, H, N, D;
  int64_t sb, sh, sn;            // element strides
  std::vector<uint8_t> storage;  // typed elements
  std::vector<double> exact;     // [B,H,N,D] logical values

  HostTensor(DType dt, int b, int h, int n, int d, Strides st) : dtype(dt), B(b), H(h), N(n), D(d) {
    if (st == Strides::kContiguous) {
      sn = d, sh = int64_t(n) * d, sb = int64_t(h) * n * d;
    } else {  // [B, N, H, D+3]: heads interleaved, 3 spare elements after each row
      sh = d + 3, sn = int64_t(h) * sh, sb = int64_t(n) * sn;
    }
    storage.assign(static_cast<size_t>(int64_t(b) * sb) * sk::dtype_size(dt), 0);
    exact.assign(static_cast<size_t>(b) * h * n * d, 0.0);
  }
  int64_t offset(int b, int h, int n, int d) const { return b * sb + h * sh + n * sn + d; }
  size_t logical(int b, int h, int n, int d) const { return ((size_t(b) * H + h) * N + n) * D + d; }

  void set(int64_t off, float x) {
    switch (dtype) {
      case DType::kFloat16: reinterpret_cast<uint16_t*>(storage.data())[off] = sk::float_to_half(x); break;
      case DType::kBFloat16: reinterpret_cast<uint16_t*>(storage.data())[off] = sk::float_to_bf16(x); break;
      default: reinterpret_cast<float*>(storage.data())[off] = x; break;
    }
  }
  double get(int64_t off) const {
    switch (dtype) {
      case DType::kFloat16: return sk::half_to_float(reinterpret_cast<const uint16_t*>(storage.data())[off]);
      case DType::kBFloat16: return sk::bf16_to_float(reinterpret_cast<const uint16_t*>(storage.data())[off]);
      default: return reinterpret_cast<const float*>(storage.data())[off];
    }
  }
  void fill_random(double amp) {
    std::uniform_real_distribution<float> u(-1.f, 1.f);
    for (int b = 0; b < B; ++b)
      for (int h = 0; h < H; ++h)
        for (int n = 0; n < N; ++n)
          for (int d = 0; d < D; ++d) {
            set(offset(b, h, n, d), static_cast<float>(amp * u(rng)));
            exact[logical(b, h, n, d)] = get(offset(b, h, n, d));
          }
  }
  void poison() {  // NaN in every byte pattern the dtype reads as NaN
    const size_t n = storage.size() / sk::dtype_size(dtype);
    for (size_t i = 0; i < n; ++i) set(static_cast<int64_t>(i), std::numeric_limits<float>::quiet_NaN());
  }
  const void* data() const { return storage.data(); }
  void* data() { return storage.data(); }
};

// ---------------------------------------------------------------------------------------------------
// float64 reference of the contract, one query row at a time
// ---------------------------------------------------------------------------------------------------

struct Problem {
  AttentionParams p;
  const HostTensor *q, *k, *v;
  std::vector<int32_t> perm;
};

// out_row[D] and lse of query row i of (b, h).
void reference_row(const Problem& pr, int b, int h, int i, double* out_row, double* lse) {
  const AttentionParams& p = pr.p;
  const BlockLayoutView& l = p.layout;
  const int G = p.heads_q / p.heads_k, kvh = h / G, bs = l.block_size;
  const int64_t row = l.row_base(b, h) + i / bs;
  const int32_t* perm = nullptr;
  if (p.key_perm) perm = p.key_perm + (int64_t(b) * p.key_perm_heads + (p.key_perm_heads == p.heads_q ? h : kvh)) * p.seq_k;
  std::vector<int> kept;  // key rows (after the permutation)
  auto visit = [&](int kb, bool masked) {
    for (int j = kb * bs; j < std::min((kb + 1) * bs, p.seq_k); ++j) {
      const int pos = perm ? perm[j] : j;
      if (!masked || !p.causal || pos <= i + (p.seq_k - p.seq_q)) kept.push_back(pos);
    }
  };
  for (int t = 0; t < l.full_cnt[row]; ++t) visit(l.full_idx[row * l.max_blocks + t], false);
  for (int t = 0; t < l.mask_cnt[row]; ++t) visit(l.mask_idx[row * l.mask_max_blocks + t], true);
  const int D = p.head_dim;
  std::fill(out_row, out_row + D, 0.0);
  if (kept.empty()) {
    *lse = -std::numeric_limits<double>::infinity();
    return;
  }
  std::vector<double> s(kept.size());
  double mx = -std::numeric_limits<double>::infinity();
  for (size_t t = 0; t < kept.size(); ++t) {
    double acc = 0;
    for (int d = 0; d < D; ++d) acc += pr.q->exact[pr.q->logical(b, h, i, d)] * pr.k->exact[pr.k->logical(b, kvh, kept[t], d)];
    s[t] = acc * p.softmax_scale;
    mx = std::max(mx, s[t]);
  }
  double sum = 0;
  for (size_t t = 0; t < kept.size(); ++t) {
    s[t] = std::exp(s[t] - mx);
    sum += s[t];
  }
  for (size_t t = 0; t < kept.size(); ++t)
    for (int d = 0; d < D; ++d) out_row[d] += s[t] / sum * pr.v->exact[pr.v->logical(b, kvh, kept[t], d)];
  *lse = mx + std::log(sum);
}

// ---------------------------------------------------------------------------------------------------
// Correctness cases
// ---------------------------------------------------------------------------------------------------

struct Case {
  const char* name;
  DType dt;
  int B, Hq, Hk, Nq, Nk, D, bs;
  bool causal;
  LayoutKind kind;
  double density;
  bool bcast_batch, bcast_heads;
  PermMode perm;
  bool lse;
  Strides strides;
};

struct Built {
  HostTensor q, k, v, out;
  HostLayout layout;
  std::vector<float> lse;
  Problem pr;
};

// Heap-allocated: the params and the reference point into it, so it must never move.
std::unique_ptr<Built> build(const Case& c) {
  const int seg_blocks = 2;  // PBS: segment = 2 blocks (S = 256 at B = 128)
  std::unique_ptr<Built> xp(new Built{
      HostTensor(c.dt, c.B, c.Hq, c.Nq, c.D, c.strides), HostTensor(c.dt, c.B, c.Hk, c.Nk, c.D, c.strides),
      HostTensor(c.dt, c.B, c.Hk, c.Nk, c.D, c.strides), HostTensor(c.dt, c.B, c.Hq, c.Nq, c.D, c.strides), {}, {}, {}});
  Built& x = *xp;
  x.q.fill_random(2.0);  // amplitude 2: sharper softmaxes than 1/sqrt(D)-scaled unit noise
  x.k.fill_random(2.0);
  x.v.fill_random(1.0);
  x.out.poison();
  const int qbk = (c.Nq + c.bs - 1) / c.bs, kbk = (c.Nk + c.bs - 1) / c.bs;
  x.layout = make_layout(c.kind, c.causal, c.density, c.bcast_batch ? 1 : c.B, c.bcast_heads ? 1 : c.Hq, qbk, kbk,
                         c.bs, seg_blocks);
  AttentionParams& p = x.pr.p;
  p.q = x.q.data(), p.k = x.k.data(), p.v = x.v.data(), p.out = x.out.data();
  p.q_batch_stride = x.q.sb, p.q_head_stride = x.q.sh, p.q_row_stride = x.q.sn;
  p.k_batch_stride = x.k.sb, p.k_head_stride = x.k.sh, p.k_row_stride = x.k.sn;
  p.v_batch_stride = x.v.sb, p.v_head_stride = x.v.sh, p.v_row_stride = x.v.sn;
  p.o_batch_stride = x.out.sb, p.o_head_stride = x.out.sh, p.o_row_stride = x.out.sn;
  p.dtype = c.dt;
  p.batch = c.B, p.heads_q = c.Hq, p.heads_k = c.Hk, p.seq_q = c.Nq, p.seq_k = c.Nk, p.head_dim = c.D;
  p.softmax_scale = 1.0f / std::sqrt(static_cast<float>(c.D));
  p.causal = c.causal;
  p.layout = x.layout.view;
  if (c.lse) {
    x.lse.assign(static_cast<size_t>(c.B) * c.Hq * c.Nq, std::numeric_limits<float>::quiet_NaN());
    p.lse = x.lse.data();
  }
  if (c.perm != PermMode::kNone) {
    const int ph = c.perm == PermMode::kPerQHead ? c.Hq : c.Hk;
    x.pr.perm = make_perm(c.B * ph, c.Nk, c.kind == LayoutKind::kSegments ? seg_blocks * c.bs : 0);
    p.key_perm = x.pr.perm.data();
    p.key_perm_heads = ph;
  }
  x.pr.q = &x.q, x.pr.k = &x.k, x.pr.v = &x.v;
  return xp;
}

// Compares rows (all, or `sample` random rows per (b, h)) with the reference. Returns the error text
// or "" and fills rel_err / lse_err.
std::string compare(const Built& x, int sample, double tol, double* rel_err, double* lse_err) {
  const AttentionParams& p = x.pr.p;
  const int D = p.head_dim;
  double num = 0, den = 0, lnum = 0, lden = 0;
  std::vector<double> ref(D);
  std::uniform_int_distribution<int> pick(0, p.seq_q - 1);
  for (int b = 0; b < p.batch; ++b)
    for (int h = 0; h < p.heads_q; ++h)
      for (int t = 0; t < (sample > 0 ? sample : p.seq_q); ++t) {
        const int i = sample > 0 ? pick(rng) : t;
        double rl;
        reference_row(x.pr, b, h, i, ref.data(), &rl);
        for (int d = 0; d < D; ++d) {
          const double got = x.out.get(x.out.offset(b, h, i, d));
          if (std::isnan(got)) return "NaN (unwritten or poisoned) output at b=" + std::to_string(b) + " h=" +
                                      std::to_string(h) + " i=" + std::to_string(i) + " d=" + std::to_string(d);
          if (std::isinf(rl) && got != 0.0) return "row without kept keys is not exactly 0 at i=" + std::to_string(i);
          num += (got - ref[d]) * (got - ref[d]);
          den += ref[d] * ref[d];
        }
        if (p.lse) {
          const double gl = p.lse[(size_t(b) * p.heads_q + h) * p.seq_q + i];
          if (std::isinf(rl) != std::isinf(gl) || std::isnan(gl) || (std::isinf(rl) && gl > 0))
            return "lse mismatch at b=" + std::to_string(b) + " h=" + std::to_string(h) + " i=" + std::to_string(i) +
                   ": got " + std::to_string(gl) + ", want " + std::to_string(rl);
          if (!std::isinf(rl)) lnum += (gl - rl) * (gl - rl), lden += rl * rl;
        }
      }
  // Spare elements after each output row (padded layouts) must still hold the poison.
  if (x.out.sh > D && x.out.sn > x.out.sh)
    for (int b = 0; b < p.batch; ++b)
      for (int i = 0; i < p.seq_q; ++i)
        for (int h = 0; h < p.heads_q; ++h)
          for (int64_t e = x.out.offset(b, h, i, 0) + D; e < x.out.offset(b, h, i, 0) + x.out.sh; ++e)
            if (!std::isnan(x.out.get(e))) return "kernel wrote into the padding between output rows";
  *rel_err = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
  *lse_err = lden > 0 ? std::sqrt(lnum / lden) : 0.0;
  if (*rel_err > tol) return "relative error above tolerance";
  if (*lse_err > 1e-5) return "lse relative error above 1e-5";
  return "";
}

void run_case(const Case& c) {
  const std::unique_ptr<Built> xp = build(c);
  Built& x = *xp;
  const sk::Status st = sk::cpu::attention_fwd(x.pr.p);
  double rel = 0, lrel = 0;
  std::string why;
  if (!st.ok()) why = "attention_fwd returned " + std::string(sk::error_code_string(st.code)) + ": " + st.message;
  else why = compare(x, 0, c.dt == DType::kFloat32 ? 1e-5 : 1e-2, &rel, &lrel);
  const sk::Status lay = sk::check_block_layout_host(x.layout.view);
  if (why.empty() && !lay.ok()) why = "generated layout rejected: " + lay.message;
  std::printf("%s  %-44s %-8s B=%d H=%d/%d N=%d/%d D=%d bs=%d  err %.2e lse %.2e%s%s\n", why.empty() ? "PASS" : "FAIL",
              c.name, sk::dtype_name(c.dt), c.B, c.Hq, c.Hk, c.Nq, c.Nk, c.D, c.bs, rel, lrel, why.empty() ? "" : "  <- ",
              why.c_str());
  if (!why.empty()) ++failures;
}

// ---------------------------------------------------------------------------------------------------
// Validation functions fed bad inputs
// ---------------------------------------------------------------------------------------------------

void expect(const char* what, const sk::Status& s, bool want_ok) {
  const bool pass = s.ok() == want_ok;
  std::printf("%s  %-46s -> %s%s%s\n", pass ? "PASS" : "FAIL", what, sk::error_code_string(s.code),
              s.message.empty() ? "" : ": ", s.message.c_str());
  if (!pass) ++failures;
}

void run_validation() {
  std::printf("\n== validation: each bad input must be rejected with a clear message ==\n");
  const Case base{"valid", DType::kFloat16, 2, 4, 2, 256, 256, 128, 128, true, LayoutKind::kDense, 1, false, false,
                  PermMode::kPerKvHead, true, Strides::kContiguous};
  const std::unique_ptr<Built> x = build(base);
  const AttentionParams good = x->pr.p;
  expect("valid params (cpu)", sk::check_attention_params(good, false), true);
  expect("valid params (cuda)", sk::check_attention_params(good, true), true);
  expect("valid layout", sk::check_block_layout_host(good.layout), true);
  expect("valid key_perm", sk::check_key_perm_host(good.key_perm, 2, 2, 256), true);

  struct Bad {
    const char* what;
    bool cuda;
    void (*mutate)(AttentionParams&);
  };
  const Bad bad[] = {
      {"null q", false, [](AttentionParams& p) { p.q = nullptr; }},
      {"null out", false, [](AttentionParams& p) { p.out = nullptr; }},
      {"dtype int32", false, [](AttentionParams& p) { p.dtype = DType::kInt32; }},
      {"dtype value 99", false, [](AttentionParams& p) { p.dtype = static_cast<DType>(99); }},
      {"dtype float32 on cuda", true, [](AttentionParams& p) { p.dtype = DType::kFloat32; }},
      {"batch -1", false, [](AttentionParams& p) { p.batch = -1; }},
      {"heads_k 0 with heads_q 4", false, [](AttentionParams& p) { p.heads_k = 0; }},
      {"head_dim 0 on cpu", false, [](AttentionParams& p) { p.head_dim = 0; }},
      {"seq_k negative", false, [](AttentionParams& p) { p.seq_k = -5; }},
      {"heads_q 4 not a multiple of heads_k 3", false, [](AttentionParams& p) { p.heads_k = 3; }},
      {"head_dim 2048 on cpu", false, [](AttentionParams& p) { p.head_dim = 2048; }},
      {"head_dim 96 on cuda", true, [](AttentionParams& p) { p.head_dim = 96; }},
      {"softmax_scale NaN", false, [](AttentionParams& p) { p.softmax_scale = std::nanf(""); }},
      {"softmax_scale 0", false, [](AttentionParams& p) { p.softmax_scale = 0.f; }},
      {"softmax_scale -0.1 on cuda", true, [](AttentionParams& p) { p.softmax_scale = -0.1f; }},
      {"causal with seq_q != seq_k", false, [](AttentionParams& p) { p.seq_q = 128; }},
      {"negative k row stride", false, [](AttentionParams& p) { p.k_row_stride = -128; }},
      {"strides reaching past 2^63", false, [](AttentionParams& p) { p.v_batch_stride = int64_t(1) << 62; }},
      {"out rows overlapping (row stride < D)", false, [](AttentionParams& p) { p.o_row_stride = 64; }},
      {"out heads aliasing (head stride 0)", false, [](AttentionParams& p) { p.o_head_stride = 0; }},
      {"q at an odd byte address", false, [](AttentionParams& p) { p.q = static_cast<const char*>(p.q) + 1; }},
      {"lse misaligned", false, [](AttentionParams& p) { p.lse = reinterpret_cast<float*>(reinterpret_cast<char*>(p.lse) + 2); }},
      {"null k with seq_k > 0", false, [](AttentionParams& p) { p.k = nullptr; }},
      {"block_size 32 on cuda", true, [](AttentionParams& p) { p.layout.block_size = 32; }},
      {"block_size 0 on cpu", false, [](AttentionParams& p) { p.layout.block_size = 0; }},
      {"layout.batch 3 (batch 2)", false, [](AttentionParams& p) { p.layout.batch = 3; }},
      {"layout.heads 2 (heads_q 4)", false, [](AttentionParams& p) { p.layout.heads = 2; }},
      {"layout.q_blocks 3 (want 2)", false, [](AttentionParams& p) { p.layout.q_blocks = 3; }},
      {"layout.k_blocks 1 (want 2)", false, [](AttentionParams& p) { p.layout.k_blocks = 1; }},
      {"layout.max_blocks 3 > k_blocks", false, [](AttentionParams& p) { p.layout.max_blocks = 3; }},
      {"layout.mask_max_blocks -1", false, [](AttentionParams& p) { p.layout.mask_max_blocks = -1; }},
      {"layout.full_cnt null", false, [](AttentionParams& p) { p.layout.full_cnt = nullptr; }},
      {"layout.mask_idx null with capacity", false, [](AttentionParams& p) { p.layout.mask_idx = nullptr; }},
      {"key_perm_heads 3", false, [](AttentionParams& p) { p.key_perm_heads = 3; }},
  };
  for (const Bad& b : bad) {
    AttentionParams p = good;
    b.mutate(p);
    expect(b.what, sk::check_attention_params(p, b.cuda), false);
  }
  {
    AttentionParams p = good;
    p.heads_k = 3;
    expect("cpu::attention_fwd re-checks (heads_k 3)", sk::cpu::attention_fwd(p), false);
  }
  // Legal edge cases (decisions in src/ops/attention.cc).
  {
    AttentionParams p = good;
    p.k_row_stride = 132;  // rows not 16-byte aligned: the CUDA entry point repacks them
    expect("legal: k row stride 132 on cuda", sk::check_attention_params(p, true), true);
    p = good;
    p.q = static_cast<const char*>(p.q) + 2;  // element-aligned, not 16-byte aligned
    expect("legal: q 2-byte aligned on cuda", sk::check_attention_params(p, true), true);
    p = good;
    p.seq_q = p.seq_k = 0, p.layout.q_blocks = p.layout.k_blocks = 0, p.layout.max_blocks = p.layout.mask_max_blocks = 0;
    p.q = p.k = p.v = nullptr, p.out = nullptr, p.layout.full_cnt = p.layout.mask_cnt = nullptr;
    expect("legal: empty problem, null pointers", sk::check_attention_params(p, false), true);
    expect("legal: empty problem runs as a no-op", sk::cpu::attention_fwd(p), true);
  }

  // Layout values. Base: q_blocks = k_blocks = 2, one row per (lb=1, lh=1).
  auto layout_with = [](std::vector<int> f0, std::vector<int> m0, std::vector<int> f1, std::vector<int> m1,
                        int k_blocks) {
    return pack_layout({{f0, m0}, {f1, m1}}, 1, 1, 2, k_blocks, 128);
  };
  {
    HostLayout L = layout_with({}, {0}, {0}, {1}, 2);
    expect("layout: dense causal rows", sk::check_block_layout_host(L.view), true);
  }
  struct BadLayout {
    const char* what;
    HostLayout L;
  };
  BadLayout bl[] = {
      {"layout: index 2 out of range (k_blocks 2)", layout_with({}, {0}, {0}, {2}, 2)},
      {"layout: index -1", layout_with({-1}, {0}, {0}, {1}, 2)},
      {"layout: full list not ascending (1, 0)", layout_with({1, 0}, {}, {0}, {1}, 2)},
      {"layout: duplicate in masked list (1, 1)", layout_with({}, {1, 1}, {0}, {1}, 2)},
      {"layout: block 0 in full and masked lists", layout_with({0}, {0}, {0}, {1}, 2)},
      {"layout: 2 full + 1 masked > k_blocks 2", layout_with({0, 1}, {0}, {0}, {1}, 2)},
  };
  for (BadLayout& b : bl) expect(b.what, sk::check_block_layout_host(b.L.view), false);
  {
    HostLayout L = layout_with({}, {0}, {0}, {1}, 2);
    L.full_cnt[1] = 2;  // capacity of full rows is 1
    expect("layout: full count above max_blocks", sk::check_block_layout_host(L.view), false);
    L.full_cnt[1] = -1;
    expect("layout: negative count", sk::check_block_layout_host(L.view), false);
    L.full_cnt[1] = 1;
    L.view.q_blocks = -1;
    expect("layout: q_blocks -1", sk::check_block_layout_host(L.view), false);
    L.view.q_blocks = 2;
    L.view.mask_idx = nullptr;
    expect("layout: null mask_idx", sk::check_block_layout_host(L.view), false);
  }

  // Permutations: batch 1, heads 2, seq_k 5.
  std::vector<int32_t> perm = {4, 3, 2, 1, 0, 0, 1, 2, 3, 4};
  expect("key_perm: two valid rows", sk::check_key_perm_host(perm.data(), 1, 2, 5), true);
  perm[7] = 5;
  expect("key_perm: value 5 == seq_k", sk::check_key_perm_host(perm.data(), 1, 2, 5), false);
  perm[7] = -1;
  expect("key_perm: value -1", sk::check_key_perm_host(perm.data(), 1, 2, 5), false);
  perm[7] = 1;
  expect("key_perm: value 1 repeated in row 1", sk::check_key_perm_host(perm.data(), 1, 2, 5), false);
  expect("key_perm: null", sk::check_key_perm_host(nullptr, 1, 2, 5), false);
  expect("key_perm: seq_k -1", sk::check_key_perm_host(perm.data(), 1, 2, -1), false);
  expect("key_perm: empty rows (seq_k 0) are legal", sk::check_key_perm_host(nullptr, 1, 2, 0), true);
}

// ---------------------------------------------------------------------------------------------------
// Timing
// ---------------------------------------------------------------------------------------------------

// Median wall time and median process CPU time (all threads) of `runs` runs after one warm-up. The CPU
// time makes a busy shared machine readable: wall / cpu shows how much of the cores the op really got.
struct Timing {
  double wall_ms = 0, cpu_ms = 0;
};
double cpu_now_ms() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}
Timing median_times(const AttentionParams& p, int runs) {
  (void)sk::cpu::attention_fwd(p);  // warm-up (page faults, pool start, ifunc resolution)
  std::vector<double> wall, cpu;
  for (int r = 0; r < runs; ++r) {
    const double c0 = cpu_now_ms();
    const auto t0 = std::chrono::steady_clock::now();
    const sk::Status s = sk::cpu::attention_fwd(p);
    wall.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    cpu.push_back(cpu_now_ms() - c0);
    if (!s.ok()) {
      std::printf("FAIL  timing run returned %s\n", s.message.c_str());
      ++failures;
      return {};
    }
  }
  std::sort(wall.begin(), wall.end());
  std::sort(cpu.begin(), cpu.end());
  return {wall[wall.size() / 2], cpu[cpu.size() / 2]};
}

// FLOPs of the listed blocks: 4 * rows * keys * D per (b, h, listed block); masked blocks count whole.
double listed_flops(const AttentionParams& p) {
  const BlockLayoutView& l = p.layout;
  double f = 0;
  for (int b = 0; b < p.batch; ++b)
    for (int h = 0; h < p.heads_q; ++h)
      for (int qb = 0; qb < l.q_blocks; ++qb) {
        const int64_t row = l.row_base(b, h) + qb;
        const double rows = std::min(l.block_size, p.seq_q - qb * l.block_size);
        auto keys = [&](int kb) { return std::min(l.block_size, p.seq_k - kb * l.block_size); };
        for (int t = 0; t < l.full_cnt[row]; ++t) f += 4.0 * rows * keys(l.full_idx[row * l.max_blocks + t]) * p.head_dim;
        for (int t = 0; t < l.mask_cnt[row]; ++t)
          f += 4.0 * rows * keys(l.mask_idx[row * l.mask_max_blocks + t]) * p.head_dim;
      }
  return f;
}

void run_timing() {
  std::printf("\n== timing: float32, B=1, Hq=8, Hk=2, D=128, N=4096, block 128, %d threads, median of 10 ==\n",
              sk::core::ThreadPool::global().num_threads());
  struct Row {
    const char* name;
    DType dt;
    bool causal;
    LayoutKind kind;
    double density;
  };
  // ~10% of the causal blocks: the diagonal (masked) plus each earlier block with probability 0.042
  // (the diagonal alone is 32 of the 528 causal blocks per head; 32 + 0.042 * 496 = 53).
  const Row rows[] = {
      {"dense causal", DType::kFloat32, true, LayoutKind::kDense, 1},
      {"~10% causal (diag + random)", DType::kFloat32, true, LayoutKind::kSegments, 0.042},
      {"dense non-causal", DType::kFloat32, false, LayoutKind::kDense, 1},
      {"dense causal, bfloat16", DType::kBFloat16, true, LayoutKind::kDense, 1},
  };
  std::printf("%-31s %7s %8s %9s %9s %10s %9s %12s\n", "layout", "blocks", "density", "wall ms", "GFLOP/s",
              "dense/this", "cpu ms", "GFLOP/s/core");
  Timing dense;
  for (const Row& r : rows) {
    const Case c{r.name, r.dt, 1, 8, 2, 4096, 4096, 128, 128, r.causal, r.kind, r.density, false, false,
                 PermMode::kNone, false, Strides::kContiguous};
    const std::unique_ptr<Built> xp = build(c);
    Built& x = *xp;
    if (r.kind == LayoutKind::kSegments) {
      // seg_blocks = 1 in the PBS builder: earlier blocks full with probability `density`, own block masked.
      x.layout = make_layout(LayoutKind::kSegments, true, r.density, 1, 8, 32, 32, 128, 1);
      x.pr.p.layout = x.layout.view;
    }
    const AttentionParams& p = x.pr.p;
    const Timing tm = median_times(p, 10);
    double rel = 0, lrel = 0;
    const std::string why = compare(x, 24, c.dt == DType::kFloat32 ? 1e-5 : 1e-2, &rel, &lrel);  // 24 rows per head
    if (!why.empty()) {
      std::printf("FAIL  %s: %s\n", r.name, why.c_str());
      ++failures;
    }
    int64_t blocks = 0;
    for (size_t i = 0; i < x.layout.full_cnt.size(); ++i) blocks += x.layout.full_cnt[i] + x.layout.mask_cnt[i];
    const double causal_blocks = 8.0 * 32 * 33 / 2;
    if (r.kind == LayoutKind::kDense && r.causal && r.dt == DType::kFloat32) dense = tm;
    const double flops = listed_flops(p);
    std::printf("%-31s %7lld %7.1f%% %9.1f %9.1f %9.2fx %9.1f %12.1f\n", r.name, static_cast<long long>(blocks),
                100.0 * blocks / (r.causal ? causal_blocks : 8.0 * 32 * 32), tm.wall_ms, flops / tm.wall_ms * 1e-6,
                dense.wall_ms / tm.wall_ms, tm.cpu_ms, flops / tm.cpu_ms * 1e-6);
    if (r.kind == LayoutKind::kSegments)
      std::printf("      target: ~10%% density >= 5x faster than dense: %.2fx wall, %.2fx cpu time -> %s\n",
                  dense.wall_ms / tm.wall_ms, dense.cpu_ms / tm.cpu_ms,
                  dense.wall_ms / tm.wall_ms >= 5 ? "met" : "NOT met (timing only: not counted as a failure)");
  }
}

}  // namespace

int main(int argc, char** argv) {
  bool correctness = true, timing = true;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--timing-only") == 0) correctness = false;
    else if (std::strcmp(argv[i], "--no-timing") == 0) timing = false;
    else {
      std::printf("usage: %s [--timing-only | --no-timing]\n", argv[0]);
      return 2;
    }
  }
  uint64_t seed = std::random_device{}();
  if (const char* s = std::getenv("SEED")) seed = std::strtoull(s, nullptr, 10);
  rng.seed(seed);
  std::printf("attention_cpu_check: seed %llu (SEED=<n> reproduces), %d threads\n",
              static_cast<unsigned long long>(seed), sk::core::ThreadPool::global().num_threads());

  using LK = LayoutKind;
  using PM = PermMode;
  const DType F32 = DType::kFloat32, F16 = DType::kFloat16, BF16 = DType::kBFloat16;
  const Strides C = Strides::kContiguous, P = Strides::kBshdPadded;
  const Case cases[] = {
      // name                                      dtype B  Hq Hk  Nq    Nk    D   bs  causal kind  dens  lb1  lh1  perm lse strides
      {"dense causal N=1", F32, 1, 4, 1, 1, 1, 64, 64, true, LK::kDense, 1, false, false, PM::kNone, true, C},
      {"dense causal N=7", F16, 2, 4, 1, 7, 7, 128, 128, true, LK::kDense, 1, false, false, PM::kNone, true, C},
      {"dense causal N=130 GQA 32/8", BF16, 2, 32, 8, 130, 130, 64, 64, true, LK::kDense, 1, false, false, PM::kNone, true, C},
      {"dense causal N=1000", F32, 1, 4, 1, 1000, 1000, 128, 128, true, LK::kDense, 1, false, false, PM::kNone, true, C},
      {"dense causal N=1000 bs64", F16, 2, 4, 1, 1000, 1000, 64, 64, true, LK::kDense, 1, true, true, PM::kNone, true, C},
      {"dense non-causal N=130 GQA 32/8", F32, 2, 32, 8, 130, 130, 128, 128, false, LK::kDense, 1, false, true, PM::kNone, false, C},
      {"dense non-causal Nq=130 Nk=1000", F16, 2, 4, 1, 130, 1000, 64, 64, false, LK::kDense, 1, true, false, PM::kNone, true, C},
      {"dense non-causal Nq=7 Nk=1", BF16, 2, 4, 1, 7, 1, 128, 128, false, LK::kDense, 1, false, false, PM::kNone, true, C},
      {"random causal N=1000", F32, 2, 4, 1, 1000, 1000, 64, 64, true, LK::kRandom, 0.3, false, false, PM::kNone, true, C},
      {"random non-causal N=1000 (empty rows)", BF16, 2, 4, 1, 1000, 1000, 128, 128, false, LK::kRandom, 0.15, true, false, PM::kNone, true, C},
      {"random causal N=130 GQA 32/8", F16, 2, 32, 8, 130, 130, 128, 64, true, LK::kRandom, 0.5, false, false, PM::kNone, true, C},
      {"random causal N=7", BF16, 2, 4, 1, 7, 7, 64, 64, true, LK::kRandom, 0.7, false, false, PM::kNone, true, C},
      {"perm per KV head, random causal N=1000", F32, 2, 4, 1, 1000, 1000, 128, 128, true, LK::kRandom, 0.4, false, false, PM::kPerKvHead, true, C},
      {"perm per Q head, random causal N=130 32/8", F16, 2, 32, 8, 130, 130, 64, 64, true, LK::kRandom, 0.5, false, false, PM::kPerQHead, true, C},
      {"perm per KV head, PBS segments N=1000", BF16, 2, 4, 1, 1000, 1000, 128, 128, true, LK::kSegments, 0.5, false, false, PM::kPerKvHead, true, C},
      {"perm per Q head, PBS segments N=1000", F32, 2, 4, 1, 1000, 1000, 64, 64, true, LK::kSegments, 0.6, false, false, PM::kPerQHead, true, C},
      {"perm per KV head, non-causal N=130", F32, 2, 4, 2, 130, 130, 64, 64, false, LK::kRandom, 0.6, false, false, PM::kPerKvHead, true, C},
      {"PBS tau=1 (all earlier segments) N=1000", F32, 1, 4, 1, 1000, 1000, 128, 128, true, LK::kSegments, 1.0, true, true, PM::kPerKvHead, true, C},
      {"strided [B,N,H,D+3] dense causal N=130", F32, 2, 4, 2, 130, 130, 64, 64, true, LK::kDense, 1, false, false, PM::kNone, true, P},
      {"strided [B,N,H,D+3] random N=130 bf16", BF16, 2, 4, 1, 130, 130, 128, 128, true, LK::kRandom, 0.5, false, false, PM::kPerQHead, true, P},
      {"cpu-only: block 48, D=40", F32, 2, 4, 2, 130, 130, 40, 48, true, LK::kRandom, 0.5, false, false, PM::kPerKvHead, true, C},
      {"cpu-only: block 200 (sub-tiles), D=72", F32, 1, 2, 1, 1000, 1000, 72, 200, true, LK::kDense, 1, false, false, PM::kNone, true, C},
      {"cpu-only: block 300 random, D=200, fp16", F16, 1, 2, 2, 700, 700, 200, 300, true, LK::kRandom, 0.7, false, false, PM::kPerQHead, true, C},
      {"cpu-only: D=1 non-causal", F32, 1, 2, 1, 70, 70, 1, 64, false, LK::kDense, 1, false, false, PM::kNone, true, C},
      {"empty keys (seq_k=0): out 0, lse -inf", F16, 2, 4, 1, 7, 0, 64, 64, false, LK::kDense, 1, false, false, PM::kNone, true, C},
      {"empty queries (seq_q=seq_k=0)", F32, 2, 4, 1, 0, 0, 64, 64, true, LK::kDense, 1, false, false, PM::kNone, true, C},
      {"empty batch (batch=0)", BF16, 0, 4, 1, 130, 130, 64, 64, true, LK::kDense, 1, false, false, PM::kPerKvHead, true, C},
  };
  if (correctness) {
    std::printf("\n== correctness vs float64 reference (fp32 tol 1e-5, fp16/bf16 tol 1e-2, lse tol 1e-5) ==\n");
    for (const Case& c : cases) run_case(c);
    run_validation();
  }
  if (timing) run_timing();
  std::printf("\n%s: %d failure(s)\n", failures == 0 ? "ALL PASS" : "FAILED", failures);
  return failures == 0 ? 0 : 1;
}
