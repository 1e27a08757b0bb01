// Standalone check + benchmark of the CUDA PBS stages. Usage: pbs_check [seed] [--no-timing] [--small]
// (--small: only the cases with N <= 4096 and no timing, e.g. under compute-sanitizer).
// Exit status 1 on any failure, 2 on a CUDA error outside the code under test.
//
// Correctness (fresh random inputs; device outputs poisoned with 0xFF bytes = NaN / -1 before each call):
//   each stage in isolation, fed with the CPU backend's output of the previous stage (identical inputs):
//     proxy    GPU scores vs CPU and vs float64            rel. Frobenius <= 1e-5, all finite
//     permute  GPU perm/inv on the CPU scores               identical to the CPU (stable sort)
//     pool     GPU qbar/kbar on the CPU perm                rel. Frobenius <= 1e-5 vs CPU
//     select   GPU layout on the CPU qbar/kbar (or perm)    BlockLayoutView invariants; rows vs the
//              float64 selection equal except near ties; rows vs CPU: near ties reported, counts within 1
//   pbs_plan end to end (scratch path): perm differences only between near-equal scores (reported),
//   layout invariants, rows vs the CPU plan (counts within 1 when the perms agree), bitwise repeatable.
// Timing: every stage at N = 16K..128K, bf16, B=1, Hq=32, Hk=8, D=128 (CUDA events, 3 warm-ups, median
// of 10), against the spec budget (stages <= ~0.5 ms at 32K; dense cuDNN causal 14.9 ms, anchors.md).
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include "bench/native/pbs_reference.h"

using namespace pbsref;
using sk::DType;
using sk::PbsGqaMode;
using sk::PbsPool;
using sk::PbsSelector;

#define CK(expr)                                                                                    \
  do {                                                                                              \
    const cudaError_t e_ = (expr);                                                                  \
    if (e_ != cudaSuccess) {                                                                        \
      std::printf("CUDA error %s at %s:%d: %s\n", cudaGetErrorName(e_), __FILE__, __LINE__, #expr); \
      std::exit(2);                                                                                 \
    }                                                                                               \
  } while (0)

namespace {

int g_failures = 0;
cudaStream_t g_stream;

// Device allocations of one case, freed together.
struct Dev {
  std::vector<void*> ptrs;
  ~Dev() {
    for (void* p : ptrs) cudaFree(p);
  }
  template <typename T>
  T* alloc(size_t n) {
    void* p = nullptr;
    CK(cudaMalloc(&p, std::max<size_t>(n, 1) * sizeof(T)));
    ptrs.push_back(p);
    return static_cast<T*>(p);
  }
  template <typename T>
  T* upload(const std::vector<T>& v) {
    T* p = alloc<T>(v.size());
    CK(cudaMemcpy(p, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice));
    return p;
  }
};

template <typename T>
void poison(T* p, size_t n) {
  CK(cudaMemsetAsync(p, 0xFF, std::max<size_t>(n, 1) * sizeof(T), g_stream));
}
template <typename T>
std::vector<T> download(const T* p, size_t n) {
  std::vector<T> v(n);
  CK(cudaStreamSynchronize(g_stream));
  if (n) CK(cudaMemcpy(v.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost));
  return v;
}

// Device twin of StageRun's buffers.
struct DevStage {
  float *scores, *qbar, *kbar;
  int32_t *perm, *inv, *full_cnt, *full_idx, *mask_cnt, *mask_idx, *kept;
  size_t n_scores, n_perm, n_qbar, n_kbar, n_rows, n_full, n_mask, n_kept;
  void alloc(Dev& dev, const sk::PbsParams& p) {
    const sk::PbsDims d = sk::pbs_dims(p);
    const size_t bhp = size_t(p.batch) * d.perm_heads;
    n_scores = bhp * d.permuted_len;
    n_perm = bhp * p.seq_len;
    n_qbar = size_t(p.batch) * p.heads_q * d.num_blocks * p.head_dim;
    n_kbar = bhp * d.num_blocks * p.head_dim;
    n_rows = size_t(p.batch) * p.heads_q * d.num_blocks;
    n_full = n_rows * d.max_blocks;
    n_mask = n_rows * d.mask_max_blocks;
    n_kept = size_t(p.batch) * p.heads_q;
    scores = dev.alloc<float>(n_scores);
    qbar = dev.alloc<float>(n_qbar);
    kbar = dev.alloc<float>(n_kbar);
    perm = dev.alloc<int32_t>(n_perm);
    inv = dev.alloc<int32_t>(n_perm);
    full_cnt = dev.alloc<int32_t>(n_rows);
    mask_cnt = dev.alloc<int32_t>(n_rows);
    full_idx = dev.alloc<int32_t>(n_full);
    mask_idx = dev.alloc<int32_t>(n_mask);
    kept = dev.alloc<int32_t>(n_kept);
  }
  void bind(sk::PbsParams& p) const {
    p.scores = scores; p.perm = perm; p.inv_perm = inv; p.qbar = qbar; p.kbar = kbar;
    p.full_cnt = full_cnt; p.full_idx = full_idx; p.mask_cnt = mask_cnt; p.mask_idx = mask_idx; p.kept_blocks = kept;
  }
  void poison_layout() const {
    poison(full_cnt, n_rows); poison(mask_cnt, n_rows); poison(full_idx, n_full); poison(mask_idx, n_mask); poison(kept, n_kept);
  }
  HostLayout layout(const sk::PbsParams& p) const {
    HostLayout L;
    L.alloc(p);
    L.full_cnt = download(full_cnt, n_rows); L.mask_cnt = download(mask_cnt, n_rows);
    L.full_idx = download(full_idx, n_full); L.mask_idx = download(mask_idx, n_mask);
    L.kept = download(kept, n_kept);
    return L;
  }
};

bool status_ok(const sk::Status& st, const char* what) {
  if (st.ok()) return true;
  std::printf("    %s: %s (%s)\n", what, st.message.c_str(), st.cuda_error.c_str());
  return false;
}

// Rows whose lists differ between two layouts, and the largest full-count difference.
std::pair<int, int> layout_rows_differ(const HostLayout& a, const HostLayout& b) {
  int rows = 0, maxd = 0;
  for (size_t r = 0; r < a.full_cnt.size(); ++r)
    if (a.full(r) != b.full(r) || a.mask(r) != b.mask(r)) {
      ++rows;
      maxd = std::max(maxd, std::abs(a.full_cnt[r] - b.full_cnt[r]) + std::abs(a.mask_cnt[r] - b.mask_cnt[r]));
    }
  return {rows, maxd};
}

// Positions where two permutations differ must swap keys whose reference scores are within tol.
int unexplained_perm_diffs(const std::vector<int32_t>& a, const std::vector<int32_t>& b, const std::vector<float>& scores,
                           const sk::PbsParams& p, double tol, int* diffs) {
  const sk::PbsDims d = sk::pbs_dims(p);
  const int N = p.seq_len, P = d.permuted_len;
  int bad = 0;
  *diffs = 0;
  for (size_t x = 0; x < a.size(); ++x) {
    if (a[x] == b[x]) continue;
    ++*diffs;
    const size_t bh = x / N;
    const int pos = int(x % N);
    if (pos >= P || a[x] < 0 || a[x] >= P || b[x] < 0 || b[x] >= P) { ++bad; continue; }
    const double sa = scores[bh * P + a[x]], sb = scores[bh * P + b[x]];
    if (std::fabs(sa - sb) > tol * std::max(std::fabs(sa), std::fabs(sb))) ++bad;
  }
  return bad;
}

bool run_case(const Case& c, uint64_t seed, bool with_ref) {
  const Inputs in = make_inputs(c.dtype, c.B, c.Hq, c.Hk, c.N, c.D, seed, c.zero_keys);
  const StageRun cpu = run_cpu_stages(in, case_params(c));
  bool ok = status_ok(cpu.st, "cpu stages");
  std::string notes;
  char buf[200];
  Dev dev;
  const void* dq = dev.upload(in.q);
  const void* dk = dev.upload(in.k);
  sk::PbsParams g = cpu.p;
  bind_inputs(g, in, dq, dk);
  DevStage ds;
  ds.alloc(dev, g);
  ds.bind(g);
  const sk::PbsDims d = sk::pbs_dims(g);
  const bool meanpool = c.selector == PbsSelector::kMeanPool;

  // 1. proxy
  if (ok && d.permuted_len > 0) {
    poison(ds.scores, ds.n_scores);
    ok = status_ok(sk::cuda::pbs_proxy_scores(g, g_stream), "gpu proxy");
    const auto gs = download(ds.scores, ds.n_scores);
    const double e_cpu = rel_fro(gs, cpu.scores, gs.size());
    double e_ref = 0;
    if (with_ref) {
      const auto ref = ref_proxy(in, cpu.p);
      e_ref = rel_fro(gs, ref, ref.size());
    }
    const int nf = count_nonfinite(gs);
    std::snprintf(buf, sizeof buf, " scores: cpu %.1e f64 %.1e", e_cpu, e_ref);
    notes += buf;
    if (!(e_cpu <= 1e-5 && e_ref <= 1e-5) || nf) { ok = false; std::printf("    proxy: rel err vs cpu %.2e, vs f64 %.2e, %d non-finite\n", e_cpu, e_ref, nf); }
    // Permutation of the GPU's own scores is still exactly the stable argsort of those scores.
    if (ok) {
      poison(ds.perm, ds.n_perm); poison(ds.inv, ds.n_perm);
      ok = status_ok(sk::cuda::pbs_permute(g, g_stream), "gpu permute");
      std::vector<int32_t> pr, ir;
      ref_permute(gs.data(), g, pr, ir);
      if (download(ds.perm, ds.n_perm) != pr || download(ds.inv, ds.n_perm) != ir) { ok = false; std::printf("    permute (gpu scores): not the stable argsort\n"); }
    }
  }
  // 2. permute on the CPU scores: identical to the CPU.
  if (ok) {
    if (ds.n_scores) CK(cudaMemcpy(ds.scores, cpu.scores.data(), ds.n_scores * 4, cudaMemcpyHostToDevice));
    poison(ds.perm, ds.n_perm); poison(ds.inv, ds.n_perm);
    ok = status_ok(sk::cuda::pbs_permute(g, g_stream), "gpu permute");
    if (download(ds.perm, ds.n_perm) != cpu.perm || download(ds.inv, ds.n_perm) != cpu.inv) { ok = false; std::printf("    permute: differs from the CPU on identical scores\n"); }
  }
  // 3. pool on the CPU perm.
  if (ok && meanpool) {
    poison(ds.qbar, ds.n_qbar); poison(ds.kbar, ds.n_kbar);
    ok = status_ok(sk::cuda::pbs_pool_blocks(g, g_stream), "gpu pool");
    const auto qb = download(ds.qbar, ds.n_qbar), kb = download(ds.kbar, ds.n_kbar);
    const double eq = rel_fro(qb, cpu.qbar, qb.size()), ek = rel_fro(kb, cpu.kbar, kb.size());
    std::snprintf(buf, sizeof buf, " pool: %.1e/%.1e", eq, ek);
    notes += buf;
    if (!(eq <= 1e-5 && ek <= 1e-5) || count_nonfinite(qb) || count_nonfinite(kb)) { ok = false; std::printf("    pool: rel err q %.2e k %.2e\n", eq, ek); }
  }
  // 4/5. select on the CPU's qbar/kbar (meanpool) or the inputs + CPU perm (antidiagonal).
  if (ok) {
    if (meanpool) {
      CK(cudaMemcpy(ds.qbar, cpu.qbar.data(), ds.n_qbar * 4, cudaMemcpyHostToDevice));
      CK(cudaMemcpy(ds.kbar, cpu.kbar.data(), ds.n_kbar * 4, cudaMemcpyHostToDevice));
    }
    ds.poison_layout();
    ok = status_ok(sk::cuda::pbs_select(g, g_stream), "gpu select");
    const HostLayout L = ds.layout(g);
    if (check_invariants(L, g, cpu.inv.data(), c.threshold >= 1.f, "gpu select") != 0) ok = false;
    if (with_ref) {
      const auto ref = meanpool ? ref_select_meanpool(cpu.p, cpu.qbar.data(), cpu.kbar.data(), cpu.inv.data())
                                : ref_select_antidiagonal(in, cpu.p, cpu.perm.data(), cpu.inv.data());
      const LayoutDiff diff = compare_to_reference(L, ref, g, 1e-4, 1e-4, "gpu vs f64");
      if (diff.unexplained) ok = false;
      std::snprintf(buf, sizeof buf, " sel: f64-ties %d", diff.near_ties);
      notes += buf;
    }
    const auto rd = layout_rows_differ(L, cpu.layout);
    std::snprintf(buf, sizeof buf, " cpu-diff-rows %d/%zu", rd.first, L.full_cnt.size());
    notes += buf;
    if (rd.second > 1) { ok = false; std::printf("    select: a row's counts differ from the CPU by %d (> 1)\n", rd.second); }
  }
  // plan end to end, twice (bitwise repeatable).
  if (ok) {
    sk::PbsParams pl = g;
    pl.scores = nullptr; pl.inv_perm = nullptr; pl.qbar = nullptr; pl.kbar = nullptr;
    std::vector<int32_t> perm_first;
    HostLayout first;
    for (int rep = 0; rep < 2 && ok; ++rep) {
      poison(ds.perm, ds.n_perm);
      ds.poison_layout();
      ok = status_ok(sk::cuda::pbs_plan(pl, g_stream), "gpu plan");
      const auto gp = download(ds.perm, ds.n_perm);
      const HostLayout L = ds.layout(g);
      if (rep == 0) {
        perm_first = gp;
        first = L;
        int diffs = 0;
        const int bad = unexplained_perm_diffs(gp, cpu.perm, cpu.scores, g, 1e-5, &diffs);
        if (bad) { ok = false; std::printf("    plan: %d perm positions differ from the CPU between non-tied scores\n", bad); }
        std::vector<int32_t> inv(gp.size());
        const int N = g.seq_len;
        for (size_t x = 0; x < gp.size(); ++x) inv[x / N * N + (gp[x] >= 0 && gp[x] < N ? gp[x] : 0)] = int32_t(x % N);
        if (check_invariants(L, g, inv.data(), c.threshold >= 1.f, "gpu plan") != 0) ok = false;
        const auto rd = layout_rows_differ(L, cpu.layout);
        std::snprintf(buf, sizeof buf, " | plan: perm-ties %d rows-diff %d", diffs, rd.first);
        notes += buf;
        if (diffs == 0 && rd.second > 1) { ok = false; std::printf("    plan: a row's counts differ from the CPU by %d\n", rd.second); }
      } else if (gp != perm_first || L.full_cnt != first.full_cnt || L.full_idx != first.full_idx ||
                 L.mask_cnt != first.mask_cnt || L.mask_idx != first.mask_idx || L.kept != first.kept) {
        ok = false;
        std::printf("    plan: two runs on the same inputs differ\n");
      }
    }
  }
  std::printf("%s %-84s%s\n", ok ? "PASS" : "FAIL", (c.name + " " + describe(c)).c_str(), notes.c_str());
  if (!ok) ++g_failures;
  return ok;
}

// Random inputs straight on the device for the large timing shapes (host generation of 1 GB is slow).
__device__ float hash_normal(uint64_t i, uint64_t seed) {
  uint64_t x = i * 0x9E3779B97F4A7C15ull + seed;
  x ^= x >> 31; x *= 0xBF58476D1CE4E5B9ull; x ^= x >> 29; x *= 0x94D049BB133111EBull; x ^= x >> 32;
  const float u1 = (float((x >> 8) & 0xFFFFFF) + 1.f) / 16777217.f, u2 = float(x >> 40) / 16777216.f;
  return sqrtf(-2.f * logf(u1)) * cospif(2.f * u2);
}
template <typename Elem>
__global__ void fill_kernel(Elem* p, size_t n, int D, int N, float shared_scale, uint64_t seed, bool is_k) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    const size_t row = i / D;
    const int d = int(i % D);
    float c = 2.0f;  // queries: a shared direction per head group
    if (is_k) {
      const int n_pos = int(row % N);
      const float u = hash_normal(row, seed ^ 0x1234) ;
      c = n_pos == 0 ? 1.5f : (u > 2.05f ? 0.9f : 0.1f * u);  // sink, ~2% heavy hitters
    }
    const float v = 0.35f * hash_normal(d + 7919 * (row / N / (is_k ? 1 : 4)), 99);
    p[i] = Elem(hash_normal(i, seed) + shared_scale * c * v);
  }
}

template <typename Fn>
double time_ms(Fn&& fn) {
  cudaEvent_t a, b;
  CK(cudaEventCreate(&a));
  CK(cudaEventCreate(&b));
  for (int i = 0; i < 3; ++i) fn();
  std::vector<double> t;
  for (int i = 0; i < 10; ++i) {
    CK(cudaEventRecord(a, g_stream));
    fn();
    CK(cudaEventRecord(b, g_stream));
    CK(cudaEventSynchronize(b));
    float ms = 0;
    CK(cudaEventElapsedTime(&ms, a, b));
    t.push_back(ms);
  }
  CK(cudaEventDestroy(a));
  CK(cudaEventDestroy(b));
  return median(t);
}

void timing(uint64_t seed) {
  std::printf("\nStage timing (CUDA events, 3 warm-ups, median of 10), bf16, B=1, Hq=32, Hk=8, D=128, block 128, "
              "segment 256, tau 0.9, proxy_rows 128\n");
  std::printf("%-7s %-6s %9s %9s %9s %9s %10s %9s %8s %12s\n", "N", "gqa", "proxy", "permute", "pool", "meanpool",
              "plan", "density", "plan/ref", "antidiag sel");
  for (int N : {16384, 32768, 65536, 131072}) {
    for (PbsGqaMode mode : {PbsGqaMode::kShared, PbsGqaMode::kPerQueryHead}) {
      if (mode == PbsGqaMode::kPerQueryHead && N != 32768) continue;
      Dev dev;
      Inputs shape;
      shape.dtype = DType::kBFloat16; shape.B = 1; shape.Hq = 32; shape.Hk = 8; shape.N = N; shape.D = 128;
      const size_t nq = size_t(32) * N * 128, nk = size_t(8) * N * 128;
      auto* q = dev.alloc<__nv_bfloat16>(nq);
      auto* k = dev.alloc<__nv_bfloat16>(nk);
      fill_kernel<<<1024, 256, 0, g_stream>>>(q, nq, 128, N, 1.f, seed, false);
      fill_kernel<<<1024, 256, 0, g_stream>>>(k, nk, 128, N, 1.f, seed + 1, true);
      CK(cudaGetLastError());
      sk::PbsParams p;
      p.gqa_mode = mode;
      bind_inputs(p, shape, q, k);
      DevStage ds;
      ds.alloc(dev, p);
      ds.bind(p);
      auto run = [&](sk::Status st) { if (!st.ok()) { std::printf("    timing: %s\n", st.message.c_str()); ++g_failures; } };
      const double t1 = time_ms([&] { run(sk::cuda::pbs_proxy_scores(p, g_stream)); });
      const double t2 = time_ms([&] { run(sk::cuda::pbs_permute(p, g_stream)); });
      const double t3 = time_ms([&] { run(sk::cuda::pbs_pool_blocks(p, g_stream)); });
      const double t4 = time_ms([&] { run(sk::cuda::pbs_select_meanpool(p, g_stream)); });
      sk::PbsParams pl = p;
      pl.scores = nullptr; pl.inv_perm = nullptr; pl.qbar = nullptr; pl.kbar = nullptr;
      const double t5 = time_ms([&] { run(sk::cuda::pbs_plan(pl, g_stream)); });
      const auto kept = download(ds.kept, ds.n_kept);
      int64_t total = 0;
      for (int32_t v : kept) total += v;
      const double density = sk::pbs_density(total, sk::pbs_dims(p).num_blocks) / 32.0;
      double t6 = -1;
      if (N <= 65536 && mode == PbsGqaMode::kShared) {
        sk::PbsParams pa = p;
        pa.selector = PbsSelector::kAntidiagonal;
        t6 = time_ms([&] { run(sk::cuda::pbs_select_antidiagonal(pa, g_stream)); });
      }
      // plan/ref: share of the 14.9 ms dense cuDNN causal anchor at 32K (anchors.md; not this run).
      char ref[16] = "";
      if (N == 32768) std::snprintf(ref, sizeof ref, "%.1f%%", 100.0 * t5 / 14.9);
      char ad[24] = "-";
      if (t6 >= 0) std::snprintf(ad, sizeof ad, "%.3f ms", t6);
      std::printf("%-7d %-6s %6.3f ms %6.3f ms %6.3f ms %6.3f ms %7.3f ms %9.3f %8s %12s\n", N,
                  mode == PbsGqaMode::kShared ? "shared" : "perQ", t1, t2, t3, t4, t5, density, ref, ad);
    }
  }
  std::printf("plan = all stages through pbs_plan (scratch allocation included). density = kept blocks / causal blocks.\n"
              "Target: stages <= ~0.5 ms at 32K (<= 10%% of a PBS total; dense cuDNN causal 14.9 ms at 32K on H200).\n");
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t seed = uint64_t(std::time(nullptr));
  bool timing_on = true, small = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--no-timing")) timing_on = false;
    else if (!std::strcmp(argv[i], "--small")) { small = true; timing_on = false; }  // for compute-sanitizer
    else seed = std::strtoull(argv[i], nullptr, 10);
  }
  int dev = 0;
  cudaDeviceProp prop;
  CK(cudaGetDevice(&dev));
  CK(cudaGetDeviceProperties(&prop, dev));
  std::printf("pbs_check seed=%llu on %s (sm_%d%d, %d SMs)\n", (unsigned long long)seed, prop.name, prop.major,
              prop.minor, prop.multiProcessorCount);
  CK(cudaStreamCreate(&g_stream));

  std::vector<std::pair<Case, bool>> cases;  // (case, with the float64 reference)
  auto add = [&](const char* name, bool ref, auto mutate) {
    Case c;
    c.name = name;
    mutate(c);
    cases.push_back({c, ref});
  };
  add("gqa-odd", true, [](Case& c) { c.B = 2; c.Hq = 8; c.Hk = 2; c.N = 1111; });
  add("gqa-perq-max-f16", true, [](Case& c) { c.dtype = DType::kFloat16; c.B = 2; c.Hq = 8; c.Hk = 2; c.N = 1111;
                                              c.gqa = PbsGqaMode::kPerQueryHead; c.pool = PbsPool::kMax; c.threshold = 0.5f; });
  add("mha-blk64-causal", true, [](Case& c) { c.Hq = 4; c.Hk = 4; c.N = 777; c.block = 64; c.seg = 192;
                                              c.proxy_rows = 50; c.proxy_causal = true; });
  add("n<s", true, [](Case& c) { c.N = 200; c.Hq = 4; c.Hk = 4; c.D = 128; });
  add("n=s", true, [](Case& c) { c.N = 256; c.dtype = DType::kFloat16; });
  add("gqa32/8", true, [](Case& c) { c.Hq = 32; c.Hk = 8; c.N = 2000; c.D = 128; });
  add("gqa32/8-perq-f16", true, [](Case& c) { c.Hq = 32; c.Hk = 8; c.N = 1500; c.D = 128; c.gqa = PbsGqaMode::kPerQueryHead;
                                              c.dtype = DType::kFloat16; c.threshold = 0.7f; });
  add("seg512-rows300", true, [](Case& c) { c.B = 2; c.Hq = 4; c.Hk = 1; c.N = 2100; c.seg = 512; c.proxy_rows = 300;
                                            c.proxy_causal = true; c.pool = PbsPool::kMax; });
  add("no-sink", true, [](Case& c) { c.N = 1500; c.force_sink = false; c.threshold = 0.3f; });
  add("tau1-meanpool", true, [](Case& c) { c.B = 2; c.N = 1333; c.threshold = 1.f; });
  add("antidiag", true, [](Case& c) { c.B = 2; c.Hq = 8; c.Hk = 2; c.N = 1111; c.selector = PbsSelector::kAntidiagonal; });
  add("antidiag-perq-f16", true, [](Case& c) { c.Hq = 8; c.Hk = 2; c.N = 1000; c.D = 128; c.gqa = PbsGqaMode::kPerQueryHead;
                                               c.selector = PbsSelector::kAntidiagonal; c.dtype = DType::kFloat16; c.threshold = 0.6f; });
  add("antidiag-blk64-x4", true, [](Case& c) { c.Hq = 4; c.Hk = 4; c.N = 901; c.block = 64; c.seg = 128; c.stride = 4;
                                               c.selector = PbsSelector::kAntidiagonal; c.dtype = DType::kFloat16; });
  add("antidiag-x16", true, [](Case& c) { c.Hq = 4; c.Hk = 2; c.N = 1300; c.stride = 16; c.selector = PbsSelector::kAntidiagonal; });
  add("tau1-antidiag", true, [](Case& c) { c.N = 1400; c.threshold = 1.f; c.selector = PbsSelector::kAntidiagonal; });
  add("zero-keys", true, [](Case& c) { c.N = 1030; c.zero_keys = true; });
  add("16K-gqa32/8", false, [](Case& c) { c.Hq = 32; c.Hk = 8; c.N = 16384 + 77; c.D = 128; });
  // T > 256 and T > 1024: the select kernels' 4- and 16-candidates-per-thread variants.
  add("40K-T313", true, [](Case& c) { c.Hq = 4; c.Hk = 2; c.N = 40000; c.D = 64; c.threshold = 0.8f; });
  add("70K-blk64-T1094", true, [](Case& c) { c.Hq = 4; c.Hk = 1; c.N = 70000; c.D = 64; c.block = 64; c.seg = 128;
                                             c.gqa = PbsGqaMode::kPerQueryHead; c.threshold = 0.95f; });
  add("8K-antidiag", false, [](Case& c) { c.Hq = 8; c.Hk = 2; c.N = 8192; c.D = 128; c.selector = PbsSelector::kAntidiagonal; });
  for (size_t x = 0; x < cases.size(); ++x)
    if (!small || cases[x].first.N <= 4096) run_case(cases[x].first, seed + 7919 * x, cases[x].second);

  // Stage 2 alone on hand-made scores (ties, NaN, +-0, -inf; 2 segments + a tail): identical to the
  // stable argsort, and all-equal scores give the identity.
  {
    sk::PbsParams p;
    p.batch = 1; p.heads_q = 2; p.heads_k = 2; p.seq_len = 64 * 2 + 5; p.head_dim = 64; p.dtype = DType::kBFloat16;
    p.block_size = 64; p.segment_size = 64;
    const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
    std::vector<float> sc(2 * 128);
    for (size_t j = 0; j < sc.size(); ++j) sc[j] = float(j % 5);
    sc[3] = nan; sc[10] = -0.f; sc[11] = 0.f; sc[12] = -inf; sc[70] = nan; sc[130] = 4.f;
    for (int j = 128; j < 192; ++j) sc[j] = 0.25f;  // head 1, segment 0: all equal
    Dev dev;
    float* ds = dev.upload(sc);
    int32_t* dp = dev.alloc<int32_t>(2 * p.seq_len);
    int32_t* di = dev.alloc<int32_t>(2 * p.seq_len);
    p.scores = ds; p.perm = dp; p.inv_perm = di;
    poison(dp, 2 * p.seq_len); poison(di, 2 * p.seq_len);
    bool ok = status_ok(sk::cuda::pbs_permute(p, g_stream), "gpu permute");
    std::vector<int32_t> pr, ir;
    ref_permute(sc.data(), p, pr, ir);
    ok = ok && download(dp, 2 * p.seq_len) == pr && download(di, 2 * p.seq_len) == ir;
    for (int x = 0; x < 64; ++x) ok = ok && pr[p.seq_len + x] == x;  // the reference itself: identity on ties
    std::printf("%s %-84s\n", ok ? "PASS" : "FAIL", "GPU sort semantics: ties keep index order, NaN = -inf, -0 == +0");
    if (!ok) ++g_failures;
  }
  // Invalid parameters on CUDA are refused before any launch.
  {
    Case c;
    const Inputs in = make_inputs(DType::kFloat32, 1, 2, 1, 300, 64, seed);
    sk::PbsParams p = case_params(c);
    bind_inputs(p, in, in.q.data(), in.k.data());
    float dummy[4];
    p.scores = dummy;
    const bool ok = sk::cuda::pbs_proxy_scores(p, g_stream).code == sk::ErrorCode::kInvalidArgument;  // float32
    std::printf("%s %-84s\n", ok ? "PASS" : "FAIL", "CUDA refuses float32 inputs with ERR_INVALID_ARG");
    if (!ok) ++g_failures;
  }
  if (timing_on) timing(seed);
  CK(cudaStreamSynchronize(g_stream));
  CK(cudaGetLastError());
  std::printf("\n%s: %d failure(s)\n", g_failures ? "FAILED" : "ALL PASSED", g_failures);
  return g_failures ? 1 : 0;
}
