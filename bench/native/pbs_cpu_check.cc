// Standalone check of the CPU PBS stages against the float64 reference (pbs_reference.h), then a timing
// table. Usage: pbs_cpu_check [seed]. Exit status 1 on any failure.
//
// Per case (fresh random inputs, outputs poisoned with NaN / -7 before each stage):
//   1 proxy   scores vs float64                         rel. Frobenius <= 1e-5
//   2 permute perm vs a std::stable_sort of the same fp32 scores: identical; perm/inv consistent
//   3 pool    qbar/kbar vs float64 on the same perm      rel. Frobenius <= 1e-5
//   4/5 select layout invariants (counts, range, ascending, disjoint, causal, own segment, sink, kept)
//             and rows vs the float64 selection on the same inputs: equal except near ties (reported)
//   plan      pbs_plan bit-equal to the staged run
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>

#include "bench/native/pbs_reference.h"

using namespace pbsref;
using sk::DType;
using sk::PbsGqaMode;
using sk::PbsPool;
using sk::PbsSelector;

namespace {

int g_failures = 0;

bool run_case(const Case& c, uint64_t seed) {
  const Inputs in = make_inputs(c.dtype, c.B, c.Hq, c.Hk, c.N, c.D, seed, c.zero_keys);
  const sk::PbsParams base = case_params(c);
  StageRun r = run_cpu_stages(in, base);
  const sk::PbsDims d = sk::pbs_dims(r.p);
  bool ok = r.st.ok();
  if (!ok) std::printf("    status: %s\n", r.st.message.c_str());
  std::string notes;
  char buf[160];
  // 1. proxy
  if (ok && d.permuted_len > 0) {
    const auto ref = ref_proxy(in, r.p);
    const double e = rel_fro(r.scores, ref, ref.size());
    const int nf = count_nonfinite(r.scores);
    std::snprintf(buf, sizeof buf, " scores=%.1e", e);
    notes += buf;
    if (!(e <= 1e-5) || nf) { ok = false; std::printf("    proxy: rel err %.3e, %d non-finite\n", e, nf); }
    // Near-tie flips between the fp32 scores' order and the float64 scores' order (information only).
    std::vector<float> ref32(ref.begin(), ref.end());
    std::vector<int32_t> pr, ir;
    ref_permute(ref32.data(), r.p, pr, ir);
    int flips = 0;
    for (size_t x = 0; x < pr.size(); ++x) flips += pr[x] != r.perm[x];
    std::snprintf(buf, sizeof buf, " perm-vs-f64-order=%d", flips);
    notes += buf;
  }
  if (c.zero_keys) {  // every score ties: identity order
    for (size_t x = 0; x < r.perm.size(); ++x)
      if (r.perm[x] != int32_t(x % c.N)) { ok = false; std::printf("    zero keys: perm is not the identity\n"); break; }
  }
  // 2. permute (on the implementation's own scores: exact)
  if (ok) {
    std::vector<int32_t> pr, ir;
    ref_permute(r.scores.data(), r.p, pr, ir);
    if (pr != r.perm || ir != r.inv) { ok = false; std::printf("    permute: differs from the stable argsort\n"); }
  }
  // 3. pool
  if (ok && c.selector == PbsSelector::kMeanPool) {
    std::vector<double> qb, kb;
    ref_pool(in, r.p, r.perm.data(), qb, kb);
    const double eq = rel_fro(r.qbar, qb, qb.size()), ek = rel_fro(r.kbar, kb, kb.size());
    std::snprintf(buf, sizeof buf, " qbar=%.1e kbar=%.1e", eq, ek);
    notes += buf;
    if (!(eq <= 1e-5 && ek <= 1e-5)) { ok = false; std::printf("    pool: rel err q %.3e k %.3e\n", eq, ek); }
  }
  // 4/5. select
  if (ok) {
    const bool all = c.threshold >= 1.f;
    if (check_invariants(r.layout, r.p, r.inv.data(), all, "cpu") != 0) ok = false;
    const auto ref = c.selector == PbsSelector::kMeanPool
                         ? ref_select_meanpool(r.p, r.qbar.data(), r.kbar.data(), r.inv.data())
                         : ref_select_antidiagonal(in, r.p, r.perm.data(), r.inv.data());
    const LayoutDiff diff = compare_to_reference(r.layout, ref, r.p, 1e-4, 1e-4, "cpu vs f64");
    if (diff.unexplained) ok = false;
    int64_t kept = 0;
    for (int32_t v : r.layout.kept) kept += v;
    std::snprintf(buf, sizeof buf, " near-ties=%d/%zu density=%.3f", diff.near_ties, ref.size(),
                  sk::pbs_density(kept, d.num_blocks) / (double(c.B) * c.Hq));
    notes += buf;
  }
  // plan == staged
  if (ok) {
    StageRun pl;
    pl.p = base;
    bind_inputs(pl.p, in, in.q.data(), in.k.data());
    alloc_stage_buffers(pl, in);
    pl.p.scores = nullptr; pl.p.inv_perm = nullptr; pl.p.qbar = nullptr; pl.p.kbar = nullptr;  // scratch path
    const sk::Status st = sk::cpu::pbs_plan(pl.p);
    const bool same = st.ok() && pl.perm == r.perm && pl.layout.full_cnt == r.layout.full_cnt &&
                      pl.layout.mask_cnt == r.layout.mask_cnt && pl.layout.kept == r.layout.kept &&
                      pl.layout.mask_idx == r.layout.mask_idx;
    bool same_full = true;
    for (size_t x = 0; same && x < r.layout.full_cnt.size(); ++x)
      same_full = same_full && pl.layout.full(x) == r.layout.full(x);
    if (!same || !same_full) { ok = false; std::printf("    plan: differs from the staged run (%s)\n", st.message.c_str()); }
  }
  std::printf("%s %-88s%s\n", ok ? "PASS" : "FAIL", (c.name + " " + describe(c)).c_str(), notes.c_str());
  if (!ok) ++g_failures;
  return ok;
}

// Stage 2 alone on hand-made scores: ties, NaN, +-0 and -inf.
void check_sort_semantics() {
  sk::PbsParams p;
  p.batch = 1; p.heads_q = 1; p.heads_k = 1; p.seq_len = 11; p.head_dim = 64; p.dtype = DType::kFloat32;
  p.block_size = 64; p.segment_size = 64;
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  bool ok = true;
  // N = 11 < S: nothing permuted, identity.
  std::vector<int32_t> perm(11, -7), inv(11, -7);
  p.perm = perm.data(); p.inv_perm = inv.data();
  ok = ok && sk::cpu::pbs_permute(p).ok();
  for (int x = 0; x < 11; ++x) ok = ok && perm[x] == x && inv[x] == x;
  // One segment of 64 + tail of 3: scores with ties, NaN, -0/+0, -inf.
  p.seq_len = 67;
  std::vector<float> s(64);
  for (int j = 0; j < 64; ++j) s[j] = float(j % 5);  // many ties
  s[3] = nan; s[10] = -0.f; s[11] = 0.f; s[12] = -inf; s[20] = nan; s[30] = 4.f;
  perm.assign(67, -7); inv.assign(67, -7);
  p.scores = s.data(); p.perm = perm.data(); p.inv_perm = inv.data();
  ok = ok && sk::cpu::pbs_permute(p).ok();
  std::vector<int32_t> pr, ir;
  ref_permute(s.data(), p, pr, ir);
  ok = ok && pr == perm && ir == inv;
  // Spot checks of the rule itself: the 4s first in index order (4, 9, 14, ..., 30 among them), NaN/-inf last.
  ok = ok && perm[0] == 4 && perm[1] == 9 && perm[64] == 64 && perm[66] == 66;
  std::vector<float> all_eq(64, 0.5f);
  p.scores = all_eq.data();
  ok = ok && sk::cpu::pbs_permute(p).ok();
  for (int x = 0; x < 67; ++x) ok = ok && perm[x] == x;
  std::printf("%s %-88s\n", ok ? "PASS" : "FAIL", "sort semantics: ties keep index order, NaN = -inf, -0 == +0, identity tail");
  if (!ok) ++g_failures;
}

// Invalid parameters come back as kInvalidArgument, never a crash.
void check_errors() {
  const Inputs in = make_inputs(DType::kFloat32, 1, 4, 2, 300, 64, 1);
  bool ok = true;
  auto expect_invalid = [&](auto mutate, const char* what) {
    StageRun r;
    r.p = sk::PbsParams{};
    bind_inputs(r.p, in, in.q.data(), in.k.data());
    alloc_stage_buffers(r, in);
    mutate(r.p);
    const sk::Status st = sk::cpu::pbs_plan(r.p);
    if (st.code != sk::ErrorCode::kInvalidArgument) { ok = false; std::printf("    %s: not rejected\n", what); }
  };
  expect_invalid([](sk::PbsParams& p) { p.segment_size = 200; }, "segment_size not a multiple of block");
  expect_invalid([](sk::PbsParams& p) { p.block_size = 96; }, "block_size 96");
  expect_invalid([](sk::PbsParams& p) { p.threshold = 0.f; }, "threshold 0");
  expect_invalid([](sk::PbsParams& p) { p.threshold = 1.5f; }, "threshold 1.5");
  expect_invalid([](sk::PbsParams& p) { p.heads_k = 3; }, "heads_q % heads_k");
  expect_invalid([](sk::PbsParams& p) { p.full_idx = nullptr; }, "null full_idx");
  expect_invalid([](sk::PbsParams& p) { p.antidiag_stride = 5; }, "antidiag_stride 5");
  expect_invalid([](sk::PbsParams& p) { p.gqa_mode = sk::PbsGqaMode(7); }, "gqa_mode 7");
  expect_invalid([](sk::PbsParams& p) { p.q_row_stride = 3; }, "row stride < head_dim");
  // A caller-supplied perm with an out-of-range value is refused before any gather.
  {
    StageRun r;
    bind_inputs(r.p, in, in.q.data(), in.k.data());
    alloc_stage_buffers(r, in);
    for (size_t x = 0; x < r.perm.size(); ++x) r.perm[x] = int32_t(x % in.N);
    r.perm[5] = in.N + 4;
    if (sk::cpu::pbs_pool_blocks(r.p).code != sk::ErrorCode::kInvalidArgument) { ok = false; std::printf("    bad perm: not rejected\n"); }
  }
  std::printf("%s %-88s\n", ok ? "PASS" : "FAIL", "invalid parameters return ERR_INVALID_ARG");
  if (!ok) ++g_failures;
}

template <typename Fn>
double time_ms(Fn&& fn, int reps = 10) {
  fn();  // warm-up
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    const auto a = std::chrono::steady_clock::now();
    fn();
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - a).count());
  }
  return median(t);
}

void timing_table(uint64_t seed) {
  std::printf("\nCPU timing (median of 10 after 1 warm-up, %d threads), bf16, B=1, Hq=32, Hk=8, D=128, shared, defaults\n",
              sk::core::ThreadPool::global().num_threads());
  std::printf("%8s %10s %10s %10s %10s %12s %14s\n", "N", "proxy", "permute", "pool", "meanpool", "plan(total)", "antidiag sel");
  for (int N : {2048, 4096}) {
    const Inputs in = make_inputs(DType::kBFloat16, 1, 32, 8, N, 128, seed + N);
    StageRun r;
    r.p = sk::PbsParams{};
    bind_inputs(r.p, in, in.q.data(), in.k.data());
    alloc_stage_buffers(r, in);
    const double t1 = time_ms([&] { (void)sk::cpu::pbs_proxy_scores(r.p); });
    const double t2 = time_ms([&] { (void)sk::cpu::pbs_permute(r.p); });
    const double t3 = time_ms([&] { (void)sk::cpu::pbs_pool_blocks(r.p); });
    const double t4 = time_ms([&] { (void)sk::cpu::pbs_select_meanpool(r.p); });
    const double t5 = time_ms([&] { (void)sk::cpu::pbs_plan(r.p); });
    const double t6 = time_ms([&] { (void)sk::cpu::pbs_select_antidiagonal(r.p); }, N > 2048 ? 3 : 10);
    std::printf("%8d %8.2fms %8.2fms %8.2fms %8.2fms %10.2fms %12.2fms\n", N, t1, t2, t3, t4, t5, t6);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const uint64_t seed = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : uint64_t(std::time(nullptr));
  std::printf("pbs_cpu_check seed=%llu (rerun with: pbs_cpu_check %llu)\n", (unsigned long long)seed,
              (unsigned long long)seed);
  std::vector<Case> cases;
  auto add = [&](const char* name, auto mutate) {
    Case c;
    c.name = name;
    mutate(c);
    cases.push_back(c);
  };
  add("gqa-odd", [](Case& c) { c.B = 2; c.Hq = 8; c.Hk = 2; c.N = 1111; });
  add("gqa-perq-max", [](Case& c) { c.dtype = DType::kFloat16; c.B = 2; c.Hq = 8; c.Hk = 2; c.N = 1111;
                                    c.gqa = PbsGqaMode::kPerQueryHead; c.pool = PbsPool::kMax; c.threshold = 0.5f; });
  add("mha-f32-blk64", [](Case& c) { c.dtype = DType::kFloat32; c.Hq = 4; c.Hk = 4; c.N = 777; c.block = 64;
                                     c.seg = 192; c.proxy_rows = 50; c.proxy_causal = true; });
  add("n<s", [](Case& c) { c.N = 200; c.Hq = 4; c.Hk = 4; });
  add("n=s", [](Case& c) { c.N = 256; c.dtype = DType::kFloat16; });
  add("gqa32/8", [](Case& c) { c.Hq = 32; c.Hk = 8; c.N = 1024; c.D = 128; });
  add("gqa32/8-perq", [](Case& c) { c.Hq = 32; c.Hk = 8; c.N = 1000; c.D = 128; c.gqa = PbsGqaMode::kPerQueryHead;
                                    c.dtype = DType::kFloat16; c.threshold = 0.7f; });
  add("seg512-rows300", [](Case& c) { c.B = 2; c.Hq = 4; c.Hk = 1; c.N = 2100; c.seg = 512; c.proxy_rows = 300;
                                      c.proxy_causal = true; c.pool = PbsPool::kMax; });
  add("odd-D", [](Case& c) { c.dtype = DType::kFloat32; c.Hq = 2; c.Hk = 1; c.N = 999; c.D = 40; c.block = 64; });
  add("no-sink", [](Case& c) { c.N = 1500; c.force_sink = false; c.threshold = 0.3f; });
  add("tau1-meanpool", [](Case& c) { c.B = 2; c.N = 1333; c.threshold = 1.f; });
  add("antidiag", [](Case& c) { c.B = 2; c.Hq = 8; c.Hk = 2; c.N = 1111; c.selector = PbsSelector::kAntidiagonal; });
  add("antidiag-perq", [](Case& c) { c.Hq = 8; c.Hk = 2; c.N = 1000; c.D = 128; c.gqa = PbsGqaMode::kPerQueryHead;
                                     c.selector = PbsSelector::kAntidiagonal; c.dtype = DType::kFloat16; c.threshold = 0.6f; });
  add("antidiag-blk64-x4", [](Case& c) { c.dtype = DType::kFloat32; c.Hq = 4; c.Hk = 4; c.N = 901; c.block = 64;
                                         c.seg = 128; c.stride = 4; c.selector = PbsSelector::kAntidiagonal; });
  add("antidiag-x16", [](Case& c) { c.Hq = 4; c.Hk = 2; c.N = 1300; c.stride = 16; c.selector = PbsSelector::kAntidiagonal; });
  add("tau1-antidiag", [](Case& c) { c.N = 1400; c.threshold = 1.f; c.selector = PbsSelector::kAntidiagonal; });
  add("zero-keys", [](Case& c) { c.N = 1030; c.zero_keys = true; });
  for (size_t x = 0; x < cases.size(); ++x) run_case(cases[x], seed + 7919 * x);
  check_sort_semantics();
  check_errors();
  timing_table(seed);
  std::printf("\n%s: %d failure(s)\n", g_failures ? "FAILED" : "ALL PASSED", g_failures);
  return g_failures ? 1 : 0;
}
