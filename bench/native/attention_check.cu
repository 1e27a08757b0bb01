// Standalone check and benchmark of sk::cuda::attention_fwd (the block-sparse FlashAttention forward).
//   attention_check [--no-cases] [--no-timing] [--no-sweep] [--quick]
// Correctness: fresh random inputs, float64 reference of the exact contract (bench/native/attention_ref.h),
// outputs poisoned with NaN before each run, padding/guard elements checked untouched, each case run twice
// and compared bit for bit (a moving result is a race). Timing: CUDA events, 2 warm-ups, median of 10.
// Exits non-zero on any failure.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "bench/native/attention_ref.h"
#include "core/half.h"
#include "cuda/attention/attention_fwd_launch.cuh"
#include "ops/attention.h"

using namespace skcheck;

#define CK(x)                                                                                   \
  do {                                                                                          \
    cudaError_t e_ = (x);                                                                       \
    if (e_ != cudaSuccess) {                                                                    \
      std::printf("CUDA error %s at %s:%d: %s\n", cudaGetErrorName(e_), __FILE__, __LINE__, #x); \
      std::exit(2);                                                                             \
    }                                                                                           \
  } while (0)

static int g_fail = 0, g_pass = 0;
static std::vector<std::string> g_summary;

static void report(bool ok, const std::string& line) {
  (ok ? g_pass : g_fail)++;
  std::printf("%s %s\n", ok ? "PASS" : "FAIL", line.c_str());
  if (!ok) g_summary.push_back("FAIL " + line);
  std::fflush(stdout);
}

static uint16_t to_bits(float x, bool bf16) { return bf16 ? sk::float_to_bf16(x) : sk::float_to_half(x); }
static double from_bits(uint16_t b, bool bf16) { return bf16 ? sk::bf16_to_float(b) : sk::half_to_float(b); }
static constexpr uint16_t kPoison = 0x7fff;  // NaN in both fp16 and bf16

// A [B, H, N, D] tensor on the device with explicit strides, plus a guard tail.
struct DevTensor {
  uint16_t* ptr = nullptr;
  int64_t bs = 0, hs = 0, rs = 0, elems = 0;
  int64_t off(int b, int h, int n) const { return b * bs + h * hs + n * rs; }
};

static DevTensor make_tensor(int B, int H, int N, int D, int mode, int which) {
  DevTensor t;
  // mode 0: contiguous. mode 1: q and out misaligned rows (repack path), k as [B, N, H, D], v padded rows.
  if (mode == 1 && which == 0) t.rs = D + 3, t.hs = t.rs * N, t.bs = t.hs * H;        // q
  else if (mode == 1 && which == 1) t.hs = D, t.rs = int64_t(H) * D, t.bs = t.rs * N;  // k
  else if (mode == 1 && which == 2) t.rs = D + 8, t.hs = t.rs * N, t.bs = t.hs * H;   // v
  else if (mode == 1 && which == 3) t.rs = D + 5, t.hs = t.rs * N + 7, t.bs = t.hs * H;  // out
  else t.rs = D, t.hs = int64_t(N) * D, t.bs = t.hs * H;
  t.elems = std::max<int64_t>(t.bs * B, 1) + 256;  // guard tail
  CK(cudaMalloc(&t.ptr, t.elems * 2));
  return t;
}

struct CaseSpec {
  std::string name;
  bool bf16 = true;
  int D = 128, bs = 128, B = 1, Hq = 4, Hk = 4, Nq = 1000, Nk = 1000;
  bool causal = true, lse = true;
  std::string layout = "causal";  // causal | full | random | pbs | masked | empty_rows
  double density = 0.3;
  int perm = 0;  // 0 none, 1 per KV head, 2 per query head
  int stride_mode = 0;
  bool bad_ids = false;
};

struct Built {
  HostLayout lay;
  std::vector<int32_t> perm;
  int perm_heads = 0;
};

static Built build_layout(const CaseSpec& c, std::mt19937_64& rng) {
  Built bl;
  if (c.layout == "causal") bl.lay = dense_causal(c.Nq, c.bs);
  else if (c.layout == "full") bl.lay = dense_full(c.Nq, c.Nk, c.bs);
  else if (c.layout == "masked") bl.lay = all_masked(c.Nq, c.Nk, c.bs);
  else if (c.layout == "random") bl.lay = random_causal(c.B, c.Hq, c.Nq, c.bs, c.density, rng);
  else if (c.layout == "pbs") bl.lay = pbs_like(c.B, c.Hq, c.Nq, c.bs, 256, c.density, rng);
  else if (c.layout == "empty_rows") {
    // Query block 0 lists nothing; block 1 lists only a masked block wholly in its future (rows with no
    // kept key under causal); the rest dense causal.
    HostLayout l = dense_causal(c.Nq, c.bs);
    std::vector<std::vector<int>> full(l.q_blocks), masked(l.q_blocks);
    for (int i = 2; i < l.q_blocks; ++i) {
      for (int j = 0; j < i; ++j) full[i].push_back(j);
      masked[i].push_back(i);
    }
    if (l.q_blocks > 2) masked[1].push_back(2);
    l.assign(full, masked);
    bl.lay = l;
  }
  if (c.bad_ids) {  // out-of-range ids in listed entries must be skipped, never dereferenced
    HostLayout& l = bl.lay;
    for (size_t r = 0; r < l.full_cnt.size(); r += 3)
      if (l.full_cnt[r] > 0) l.full_idx[r * l.max_blocks] = (r % 2) ? -5 : l.k_blocks + 3;
  }
  if (c.perm) {
    bl.perm_heads = c.perm == 1 ? c.Hk : c.Hq;
    bl.perm = segment_perm(c.B, bl.perm_heads, c.Nk, 256, rng);
  }
  return bl;
}

struct DevLayout {
  int32_t *fc = nullptr, *fi = nullptr, *mc = nullptr, *mi = nullptr, *perm = nullptr;
  void upload(const HostLayout& l, const std::vector<int32_t>& p) {
    auto up = [](int32_t*& d, const std::vector<int32_t>& h) {
      CK(cudaMalloc(&d, std::max<size_t>(h.size(), 1) * 4));
      if (!h.empty()) CK(cudaMemcpy(d, h.data(), h.size() * 4, cudaMemcpyHostToDevice));
    };
    up(fc, l.full_cnt), up(fi, l.full_idx), up(mc, l.mask_cnt), up(mi, l.mask_idx);
    if (!p.empty()) up(perm, p);
  }
  void free_all() {
    for (int32_t* q : {fc, fi, mc, mi, perm})
      if (q) cudaFree(q);
  }
};

static sk::BlockLayoutView view_of(const HostLayout& l, const DevLayout& d) {
  sk::BlockLayoutView v;
  v.full_cnt = d.fc, v.full_idx = d.fi, v.mask_cnt = d.mc, v.mask_idx = d.mi;
  v.batch = l.lb, v.heads = l.lh, v.q_blocks = l.q_blocks, v.k_blocks = l.k_blocks;
  v.max_blocks = l.max_blocks, v.mask_max_blocks = l.mask_max, v.block_size = l.bs;
  return v;
}

namespace skcheck {
sk::Status run_sm90_variant(int which, const sk::AttentionParams& p, cudaStream_t stream);  // _sm90a.cu
}

using Runner = std::function<sk::Status(const sk::AttentionParams&, cudaStream_t)>;
// The product entry point (on an H200: the wgmma kernel for block 128 and D <= 128).
static sk::Status run_product(const sk::AttentionParams& p, cudaStream_t s) { return sk::cuda::attention_fwd(p, s); }
// The portable mma.sync kernel, as sm_80..sm_89 run it.
static sk::Status run_portable(const sk::AttentionParams& p, cudaStream_t s) {
  return sk::cuda::attn::attention_fwd_impl(p, s, /*allow_sm90=*/false);
}

// Runs one correctness case through `run`; returns true on PASS.
static bool run_case(const CaseSpec& c, uint64_t seed, const Runner& run, const std::string& tag = "") {
  std::mt19937_64 rng(seed);
  Built bl = build_layout(c, rng);
  const int D = c.D;
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  auto gen = [&](int H, int N, float amp, std::vector<uint16_t>& bits, std::vector<double>& val) {
    const size_t n = size_t(c.B) * H * N * D;
    bits.resize(n), val.resize(n);
    for (size_t i = 0; i < n; ++i) {
      bits[i] = to_bits(amp * u(rng), c.bf16);
      val[i] = from_bits(bits[i], c.bf16);
    }
  };
  std::vector<uint16_t> qb, kb, vb;
  std::vector<double> qd, kd, vd;
  gen(c.Hq, c.Nq, 2.0f, qb, qd), gen(c.Hk, c.Nk, 1.0f, kb, kd), gen(c.Hk, c.Nk, 1.0f, vb, vd);

  DevTensor tq = make_tensor(c.B, c.Hq, c.Nq, D, c.stride_mode, 0), tk = make_tensor(c.B, c.Hk, c.Nk, D, c.stride_mode, 1);
  DevTensor tv = make_tensor(c.B, c.Hk, c.Nk, D, c.stride_mode, 2), to = make_tensor(c.B, c.Hq, c.Nq, D, c.stride_mode, 3);
  auto upload = [&](const DevTensor& t, int H, int N, const std::vector<uint16_t>& bits) {
    std::vector<uint16_t> stage(t.elems, kPoison);
    for (int b = 0; b < c.B; ++b)
      for (int h = 0; h < H; ++h)
        for (int n = 0; n < N; ++n)
          std::memcpy(&stage[t.off(b, h, n)], &bits[((size_t(b) * H + h) * N + n) * D], D * 2);
    CK(cudaMemcpy(t.ptr, stage.data(), t.elems * 2, cudaMemcpyHostToDevice));
  };
  upload(tq, c.Hq, c.Nq, qb), upload(tk, c.Hk, c.Nk, kb), upload(tv, c.Hk, c.Nk, vb);
  DevLayout dl;
  dl.upload(bl.lay, bl.perm);
  const int64_t lse_n = int64_t(c.B) * c.Hq * c.Nq;
  float* d_lse = nullptr;
  CK(cudaMalloc(&d_lse, (lse_n + 64) * 4));

  sk::AttentionParams p;
  p.q = tq.ptr, p.k = tk.ptr, p.v = tv.ptr, p.out = to.ptr, p.lse = c.lse ? d_lse : nullptr;
  p.q_batch_stride = tq.bs, p.q_head_stride = tq.hs, p.q_row_stride = tq.rs;
  p.k_batch_stride = tk.bs, p.k_head_stride = tk.hs, p.k_row_stride = tk.rs;
  p.v_batch_stride = tv.bs, p.v_head_stride = tv.hs, p.v_row_stride = tv.rs;
  p.o_batch_stride = to.bs, p.o_head_stride = to.hs, p.o_row_stride = to.rs;
  p.dtype = c.bf16 ? sk::DType::kBFloat16 : sk::DType::kFloat16;
  p.batch = c.B, p.heads_q = c.Hq, p.heads_k = c.Hk, p.seq_q = c.Nq, p.seq_k = c.Nk, p.head_dim = D;
  p.softmax_scale = 1.f / std::sqrt(float(D));
  p.causal = c.causal;
  p.layout = view_of(bl.lay, dl);
  p.key_perm = dl.perm, p.key_perm_heads = bl.perm_heads;

  std::vector<uint16_t> out1(to.elems), out2(to.elems);
  std::vector<float> lse1(lse_n + 64), lse2(lse_n + 64);
  bool ok = true;
  std::string why;
  for (int rep = 0; rep < 2 && ok; ++rep) {
    std::vector<uint16_t> poison(to.elems, kPoison);
    CK(cudaMemcpy(to.ptr, poison.data(), to.elems * 2, cudaMemcpyHostToDevice));
    std::vector<float> lpoison(lse_n + 64, NAN);
    CK(cudaMemcpy(d_lse, lpoison.data(), lpoison.size() * 4, cudaMemcpyHostToDevice));
    const sk::Status st = run(p, nullptr);
    if (!st.ok()) ok = false, why = "status: " + st.message;
    CK(cudaDeviceSynchronize());
    CK(cudaGetLastError());
    CK(cudaMemcpy((rep ? out2 : out1).data(), to.ptr, to.elems * 2, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy((rep ? lse2 : lse1).data(), d_lse, lse1.size() * 4, cudaMemcpyDeviceToHost));
  }
  if (ok && (out1 != out2 || std::memcmp(lse1.data(), lse2.data(), lse1.size() * 4) != 0)) ok = false, why = "run-to-run difference";

  // Compare with the float64 reference; every element written, nothing else touched.
  std::vector<double> ref_o, ref_l;
  RefProblem pr{c.B, c.Hq, c.Hk, c.Nq, c.Nk, D, 1.0 / std::sqrt(double(D)), c.causal, &bl.lay,
                bl.perm.empty() ? nullptr : bl.perm.data(), bl.perm_heads};
  reference(pr, qd, kd, vd, ref_o, ref_l);
  double num = 0, den = 0, lnum = 0, lden = 0;
  int64_t unwritten = 0, clobbered = 0, empty_bad = 0, empty_rows = 0;
  std::vector<char> logical(to.elems, 0);
  for (int b = 0; b < c.B; ++b)
    for (int h = 0; h < c.Hq; ++h)
      for (int n = 0; n < c.Nq; ++n) {
        const int64_t rid = (int64_t(b) * c.Hq + h) * c.Nq + n;
        const bool empty = std::isinf(ref_l[rid]);
        empty_rows += empty;
        for (int d = 0; d < D; ++d) {
          const int64_t o = to.off(b, h, n) + d;
          logical[o] = 1;
          const double got = from_bits(out1[o], c.bf16), want = ref_o[rid * D + d];
          if (std::isnan(got)) ++unwritten;
          num += (got - want) * (got - want), den += want * want;
          if (empty && got != 0.0) ++empty_bad;
        }
        if (c.lse) {
          const double gl = lse1[rid];
          if (std::isnan(gl)) ++unwritten;
          else if (empty) empty_bad += !(std::isinf(gl) && gl < 0);
          else lnum += (gl - ref_l[rid]) * (gl - ref_l[rid]), lden += ref_l[rid] * ref_l[rid];
        }
      }
  for (int64_t o = 0; o < to.elems; ++o)
    if (!logical[o] && out1[o] != kPoison) ++clobbered;
  for (int64_t i = lse_n; i < lse_n + 64; ++i)
    if (!std::isnan(lse1[i])) ++clobbered;
  if (!c.lse)
    for (int64_t i = 0; i < lse_n; ++i)
      if (!std::isnan(lse1[i])) ++clobbered;
  const double err = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
  const double lerr = lden > 0 ? std::sqrt(lnum / lden) : 0.0;
  if (ok && unwritten) ok = false, why = std::to_string(unwritten) + " unwritten (NaN) outputs";
  if (ok && clobbered) ok = false, why = std::to_string(clobbered) + " elements outside the output written";
  if (ok && empty_bad) ok = false, why = std::to_string(empty_bad) + " empty rows not 0 / -inf";
  if (ok && !(err <= 1e-2)) ok = false, why = "output error";
  if (ok && !(lerr <= 1e-4)) ok = false, why = "lse error";
  char line[512];
  std::snprintf(line, sizeof line, "%-34s %s D=%d bs=%d B=%d Hq=%d Hk=%d N=%d/%d %s%s%s rel_err=%.2e lse_err=%.2e empty_rows=%lld %s",
                (tag + c.name).c_str(), c.bf16 ? "bf16" : "fp16", D, c.bs, c.B, c.Hq, c.Hk, c.Nq, c.Nk,
                c.causal ? "causal" : "noncausal", c.perm ? (c.perm == 1 ? " perm/kv" : " perm/q") : "",
                c.stride_mode ? " strided" : "", err, lerr, (long long)empty_rows, why.c_str());
  report(ok, line);
  for (auto* t : {&tq, &tk, &tv, &to}) cudaFree(t->ptr);
  cudaFree(d_lse);
  dl.free_all();
  return ok;
}

static std::vector<CaseSpec> correctness_cases(bool quick) {
  std::vector<CaseSpec> v;
  auto add = [&](CaseSpec c) { v.push_back(c); };
  CaseSpec c;
  c = {}; c.name = "dense_causal_N1000"; add(c);
  c = {}; c.name = "full_lists_with_causal_flag"; c.layout = "full"; c.Nq = c.Nk = 1000; c.Hq = 2; c.Hk = 2; add(c);
  c = {}; c.name = "dense_noncausal_N1000_fp16"; c.bf16 = false; c.layout = "full"; c.causal = false; add(c);
  c = {}; c.name = "dense_causal_D64_bs64_N4097"; c.D = 64; c.bs = 64; c.Nq = c.Nk = 4097; c.Hq = 2; c.Hk = 1; add(c);
  c = {}; c.name = "random_gqa4_B2_N4097"; c.layout = "random"; c.B = 2; c.Hq = 4; c.Hk = 1; c.Nq = c.Nk = 4097; add(c);
  c = {}; c.name = "random_gqa32_8_D64_bcast"; c.D = 64; c.layout = "random"; c.B = 2; c.Hq = 32; c.Hk = 8; c.Nq = c.Nk = 1000; c.lse = false; add(c);
  c = {}; c.name = "pbs_perm_kv_B2_gqa4"; c.layout = "pbs"; c.perm = 1; c.B = 2; c.Hq = 8; c.Hk = 2; c.Nq = c.Nk = 3000; add(c);
  c = {}; c.name = "pbs_perm_q_D64_bs64_fp16"; c.bf16 = false; c.D = 64; c.bs = 64; c.layout = "pbs"; c.perm = 2; c.Hq = 4; c.Hk = 2; c.Nq = c.Nk = 1500; add(c);
  c = {}; c.name = "pbs_perm_kv_D128_bs64"; c.bs = 64; c.layout = "pbs"; c.perm = 1; c.Hq = 4; c.Hk = 4; c.Nq = c.Nk = 1111; add(c);
  c = {}; c.name = "dense_causal_D256_N700"; c.D = 256; c.Hq = 2; c.Hk = 2; c.Nq = c.Nk = 700; add(c);
  c = {}; c.name = "random_D256_bs64_fp16"; c.bf16 = false; c.D = 256; c.bs = 64; c.layout = "random"; c.Hq = 2; c.Hk = 1; c.Nq = c.Nk = 1000; add(c);
  c = {}; c.name = "pbs_perm_q_D256"; c.D = 256; c.layout = "pbs"; c.perm = 2; c.Hq = 2; c.Hk = 1; c.Nq = c.Nk = 900; add(c);
  c = {}; c.name = "causal_seqq300_seqk1000"; c.layout = "masked"; c.Nq = 300; c.Nk = 1000; c.Hq = 4; c.Hk = 2; add(c);
  c = {}; c.name = "noncausal_seqq200_seqk777_D64"; c.D = 64; c.layout = "full"; c.causal = false; c.Nq = 200; c.Nk = 777; add(c);
  c = {}; c.name = "empty_rows"; c.layout = "empty_rows"; c.Nq = c.Nk = 600; c.Hq = 2; c.Hk = 2; add(c);
  c = {}; c.name = "strided_repack"; c.stride_mode = 1; c.layout = "random"; c.B = 2; c.Hq = 4; c.Hk = 2; c.Nq = c.Nk = 777; add(c);
  c = {}; c.name = "strided_repack_perm_D64_fp16"; c.bf16 = false; c.D = 64; c.stride_mode = 1; c.layout = "pbs"; c.perm = 1; c.Hq = 2; c.Hk = 2; c.Nq = c.Nk = 1300; add(c);
  c = {}; c.name = "bad_block_ids"; c.layout = "random"; c.bad_ids = true; c.Nq = c.Nk = 2000; c.density = 0.6; add(c);
  c = {}; c.name = "tiny_N1"; c.Nq = c.Nk = 1; c.Hq = 1; c.Hk = 1; add(c);
  c = {}; c.name = "tiny_N17_D64_bs64"; c.D = 64; c.bs = 64; c.Nq = c.Nk = 17; c.Hq = 3; c.Hk = 1; add(c);
  c = {}; c.name = "seqk0"; c.Nq = 5; c.Nk = 0; c.layout = "full"; c.Hq = 2; c.Hk = 1; add(c);
  if (!quick) {
    c = {}; c.name = "dense_causal_N8192"; c.Nq = c.Nk = 8192; c.Hq = 2; c.Hk = 1; add(c);
    c = {}; c.name = "pbs_perm_kv_N8192_fp16"; c.bf16 = false; c.layout = "pbs"; c.perm = 1; c.density = 0.2; c.Nq = c.Nk = 8192; c.Hq = 4; c.Hk = 1; add(c);
  }
  return v;
}

// Argument errors must come back as kInvalidArgument without touching memory; empty problems launch nothing.
static void error_cases() {
  auto expect = [](const char* name, sk::AttentionParams p, sk::ErrorCode code) {
    const sk::Status st = sk::cuda::attention_fwd(p, nullptr);
    const cudaError_t e = cudaDeviceSynchronize();
    report(st.code == code && e == cudaSuccess,
           std::string("error_path/") + name + " -> " + sk::error_code_string(st.code) + " " + st.message);
  };
  sk::AttentionParams base;
  base.batch = 1, base.heads_q = 2, base.heads_k = 1, base.seq_q = 100, base.seq_k = 100, base.head_dim = 128;
  base.softmax_scale = 0.1f, base.dtype = sk::DType::kBFloat16;
  base.layout.q_blocks = base.layout.k_blocks = 1, base.layout.block_size = 128;
  sk::AttentionParams p = base;
  p.dtype = sk::DType::kFloat32, expect("dtype_f32", p, sk::ErrorCode::kInvalidArgument);
  p = base, p.head_dim = 96, expect("head_dim_96", p, sk::ErrorCode::kInvalidArgument);
  p = base, p.layout.block_size = 32, expect("block_32", p, sk::ErrorCode::kInvalidArgument);
  p = base, p.heads_q = 3, p.heads_k = 2, expect("gqa_3_2", p, sk::ErrorCode::kInvalidArgument);
  p = base, p.layout.q_blocks = 2, expect("q_blocks_mismatch", p, sk::ErrorCode::kInvalidArgument);
  p = base, p.softmax_scale = -1.f, expect("negative_scale", p, sk::ErrorCode::kInvalidArgument);
  p = base, expect("null_pointers", p, sk::ErrorCode::kInvalidArgument);
  p = base, p.batch = 0, expect("batch0_no_launch", p, sk::ErrorCode::kOk);
  p = base, p.seq_q = 0, p.layout.q_blocks = 0, expect("seq_q0_no_launch", p, sk::ErrorCode::kOk);
}

// ---------------------------------------------------------------------------------------------------
// Timing
__global__ void fill_random(uint16_t* p, size_t n, uint64_t seed, float amp) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    uint64_t x = (i + 1) * 0x9E3779B97F4A7C15ull ^ seed;
    x ^= x >> 31, x *= 0xBF58476D1CE4E5B9ull, x ^= x >> 29;
    const float f = amp * (float((x >> 40) & 0xffffff) / 8388608.f - 1.f);
    const __nv_bfloat16 b = __float2bfloat16_rn(f);
    p[i] = *reinterpret_cast<const uint16_t*>(&b);
  }
}

struct TimingSetup {
  int N, Hq, Hk, D = 128;
  uint16_t *q = nullptr, *k = nullptr, *v = nullptr, *o = nullptr;
};

static float time_ms(const std::function<sk::Status()>& fn, int warm = 2, int reps = 10) {
  for (int i = 0; i < warm; ++i)
    if (!fn().ok()) return -1.f;
  CK(cudaDeviceSynchronize());
  std::vector<float> ts;
  cudaEvent_t a, b;
  CK(cudaEventCreate(&a));
  CK(cudaEventCreate(&b));
  for (int i = 0; i < reps; ++i) {
    CK(cudaEventRecord(a));
    fn();
    CK(cudaEventRecord(b));
    CK(cudaEventSynchronize(b));
    float ms;
    CK(cudaEventElapsedTime(&ms, a, b));
    ts.push_back(ms);
  }
  CK(cudaGetLastError());
  cudaEventDestroy(a), cudaEventDestroy(b);
  std::sort(ts.begin(), ts.end());
  return ts[ts.size() / 2];
}

// Probability p of keeping an earlier block so that kept/causal blocks ~= density (diagonal always kept).
static double p_for_density(int T, double density) {
  const double causal = T * (T + 1) / 2.0, lower = T * (T - 1) / 2.0;
  return std::clamp((density * causal - T) / lower, 0.0, 1.0);
}

struct TimedLayout {
  std::string name;
  HostLayout lay;
  DevLayout dev;
};

static std::vector<TimedLayout> timed_layouts(int N) {
  std::vector<TimedLayout> v;
  std::mt19937_64 rng(1234 + N);
  const int T = ceil_div(N, 128);
  v.push_back({"dense_causal", dense_causal(N, 128), {}});
  v.push_back({"sparse25", random_causal(1, 32, N, 128, p_for_density(T, 0.25), rng), {}});
  v.push_back({"sparse11", random_causal(1, 32, N, 128, p_for_density(T, 0.11), rng), {}});
  for (auto& t : v) t.dev.upload(t.lay, {});
  return v;
}

static sk::AttentionParams timing_params(const TimingSetup& s, const TimedLayout& t) {
  sk::AttentionParams p;
  p.q = s.q, p.k = s.k, p.v = s.v, p.out = s.o;
  p.q_row_stride = p.k_row_stride = p.v_row_stride = p.o_row_stride = s.D;
  p.q_head_stride = p.o_head_stride = int64_t(s.N) * s.D, p.q_batch_stride = p.o_batch_stride = p.q_head_stride * s.Hq;
  p.k_head_stride = p.v_head_stride = int64_t(s.N) * s.D, p.k_batch_stride = p.v_batch_stride = p.k_head_stride * s.Hk;
  p.dtype = sk::DType::kBFloat16;
  p.batch = 1, p.heads_q = s.Hq, p.heads_k = s.Hk, p.seq_q = p.seq_k = s.N, p.head_dim = s.D;
  p.softmax_scale = 1.f / std::sqrt(float(s.D));
  p.causal = true;
  p.layout = view_of(t.lay, t.dev);
  return p;
}

static void alloc_timing(TimingSetup& s) {
  const size_t nq = size_t(s.Hq) * s.N * s.D, nk = size_t(s.Hk) * s.N * s.D;
  CK(cudaMalloc(&s.q, nq * 2));
  CK(cudaMalloc(&s.o, nq * 2));
  CK(cudaMalloc(&s.k, nk * 2));
  CK(cudaMalloc(&s.v, nk * 2));
  fill_random<<<4096, 256>>>(s.q, nq, 11, 2.f), fill_random<<<4096, 256>>>(s.k, nk, 22, 1.f);
  fill_random<<<4096, 256>>>(s.v, nk, 33, 1.f);
  CK(cudaDeviceSynchronize());
}
static void free_timing(TimingSetup& s) {
  for (uint16_t* p : {s.q, s.k, s.v, s.o}) cudaFree(p);
}

static std::vector<std::string> g_table;

static void timing(bool quick) {
  std::printf("\n== timing: bf16, D=128, block 128, causal layouts, Hq=32 ==\n");
  const int Ns[] = {8192, 32768, 65536};
  for (int N : Ns) {
    if (quick && N > 32768) continue;
    auto lays = timed_layouts(N);
    for (int Hk : {32, 8}) {
      TimingSetup s{N, 32, Hk};
      alloc_timing(s);
      for (auto& t : lays) {
        const sk::AttentionParams p = timing_params(s, t);
        const float ms = time_ms([&] { return sk::cuda::attention_fwd(p, nullptr); });
        const int64_t kept = t.lay.kept_blocks(1, 32);
        const double T = ceil_div(N, 128), density = kept / (32.0 * T * (T + 1) / 2);
        const double tflops = 4.0 * 128 * 128 * 128 * kept / (ms * 1e-3) / 1e12;
        char line[256];
        std::snprintf(line, sizeof line, "N=%-6d Hk=%-2d %-12s density=%5.1f%%  %9.3f ms  %6.1f TFLOP/s (computed blocks)",
                      N, Hk, t.name.c_str(), 100 * density, ms, tflops);
        std::printf("%s\n", line);
        std::fflush(stdout);
        g_table.push_back(line);
      }
      free_timing(s);
    }
    for (auto& t : lays) t.dev.free_all();
  }
}

// ---------------------------------------------------------------------------------------------------
// Sweep of tile configurations (bf16, D=128, block 128), bypassing the dispatcher's default choice.
namespace attn = sk::cuda::attn;
template <int kBlockN, int kWarps, int kStages, bool kQRegs, int kMinBlocks>
using V128 = attn::FwdTraits<__nv_bfloat16, 128, 128, kBlockN, kWarps, kStages, kQRegs, kMinBlocks>;

template <typename Tr>
static sk::Status run_variant(const sk::AttentionParams& p, cudaStream_t s) {
  int dev = 0, smem = 0;
  cudaGetDevice(&dev);
  cudaDeviceGetAttribute(&smem, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
  return attn::launch_attention_fwd<Tr>(attn::make_fwd_params(p), smem, s);
}

struct Variant {
  const char* name;
  Runner run;
};

static void sweep(bool quick) {
  const std::vector<Variant> variants = {
      {"sm90_wgmma_overlap", [](const sk::AttentionParams& p, cudaStream_t s) { return run_sm90_variant(0, p, s); }},
      {"sm90_wgmma_sequential", [](const sk::AttentionParams& p, cudaStream_t s) { return run_sm90_variant(1, p, s); }},
      {"sm90_wgmma_pingpong", [](const sk::AttentionParams& p, cudaStream_t s) { return run_sm90_variant(2, p, s); }},
      {"mma_N128_W8_S2_Qsmem", run_variant<V128<128, 8, 2, false, 1>>},
      {"mma_N64_W8_S2_Qreg", run_variant<V128<64, 8, 2, true, 1>>},
      {"mma_N64_W4x32_S2(FA2)", run_variant<V128<64, 4, 2, false, 2>>},
  };
  std::printf("\n== sweep: bf16 D=128 block 128 tile configurations ==\n");
  CaseSpec c;
  c.name = "pbs_perm_kv";
  c.layout = "pbs", c.perm = 1, c.B = 1, c.Hq = 4, c.Hk = 2, c.Nq = c.Nk = 1500;
  const int N = quick ? 8192 : 32768;
  auto lays = timed_layouts(N);
  TimingSetup s{N, 32, 8};
  alloc_timing(s);
  for (const Variant& var : variants) {
    const bool ok = run_case(c, 99, var.run, std::string("sweep/") + var.name + "/");
    std::string line = std::string("sweep ") + var.name + (ok ? "" : " (FAILED correctness)");
    for (auto& t : lays) {
      if (t.name == "sparse25") continue;
      const sk::AttentionParams p = timing_params(s, t);
      const float ms = time_ms([&] { return var.run(p, nullptr); });
      const double tflops = 4.0 * 128 * 128 * 128 * t.lay.kept_blocks(1, 32) / (ms * 1e-3) / 1e12;
      char buf[128];
      std::snprintf(buf, sizeof buf, " | N=%d Hk=8 %s %.3f ms %.1f TF/s", N, t.name.c_str(), ms, tflops);
      line += buf;
    }
    std::printf("%s\n", line.c_str());
    g_table.push_back(line);
  }
  free_timing(s);
  for (auto& t : lays) t.dev.free_all();
}

int main(int argc, char** argv) {
  bool cases = true, timing_on = true, sweep_on = true, quick = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--no-cases") cases = false;
    else if (a == "--no-timing") timing_on = false;
    else if (a == "--no-sweep") sweep_on = false;
    else if (a == "--quick") quick = true;
  }
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s, sm_%d%d, %d SMs, smem/block optin %zu\n", prop.name, prop.major, prop.minor,
              prop.multiProcessorCount, prop.sharedMemPerBlockOptin);
  if (cases) {
    std::printf("\n== correctness (float64 reference; tol 1e-2 out, 1e-4 lse) ==\n");
    error_cases();
    uint64_t seed = 1;
    const bool hopper = prop.major == 9 && prop.minor == 0;
    for (const CaseSpec& c : correctness_cases(quick)) {
      run_case(c, seed, run_product, hopper && c.bs == 128 && c.D <= 128 ? "sm90/" : "");
      if (hopper) run_case(c, seed, run_portable, "mma/");  // same inputs through the portable kernel
      if (hopper && c.bs == 128 && c.D == 128 && c.bf16) {  // candidate wgmma loops (see NOTES.md)
        run_case(c, seed, [](const sk::AttentionParams& q, cudaStream_t s) { return run_sm90_variant(1, q, s); },
                 "sm90seq/");
        run_case(c, seed, [](const sk::AttentionParams& q, cudaStream_t s) { return run_sm90_variant(2, q, s); },
                 "sm90pp/");
      }
      ++seed;
    }
  }
  if (sweep_on) sweep(quick);
  if (timing_on) timing(quick);
  std::printf("\n== summary ==\n");
  for (const auto& l : g_table) std::printf("%s\n", l.c_str());
  for (const auto& l : g_summary) std::printf("%s\n", l.c_str());
  std::printf("%d passed, %d failed\n", g_pass, g_fail);
  return g_fail == 0 ? 0 : 1;
}
