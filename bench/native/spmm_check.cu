// Standalone check + benchmark of the CUDA SpMM (sk::cuda::spmm, sk::cuda::dense_linear).
//
// Correctness (float64 host reference on fresh random inputs, NaN-poisoned outputs, sentinel-filled row
// gaps, bitwise determinism of a second run):
//   every dtype x every GPU block shape (16/32/64 each side) x N = 1, 3, 17, 100, 300; M, K not multiples
//   of the block; empty block rows; bias on/off; every activation; row_order given or not; X that is not
//   16-byte aligned (SIMT fallback); an all-empty matrix; every tensor-core variant; dense_linear on the
//   tensor-core, SIMT and GEMV paths; one target-size case checked on sampled outputs (all outputs for NaN).
// Timing (CUDA events, 3 warm-ups, median of 15): bf16 W 8192x8192, X [N, 8192], N = 4096 / 256 / 16,
// 32x32 and 64x64 blocks at 50/75/90/95% block sparsity, against our dense_linear in the same run and the
// cuBLAS / torch-BSR anchors of specs/anchors.md (measured on this H200 model; rerun bench/native/build-spmm.sh
// peers on the GPU for same-run peers). Exits 1 on any failure. SEED=<n> replays the inputs.
#include <cuda_runtime.h>

#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "bench/native/spmm_check_common.h"
#include "cuda/spmm/spmm_variants.h"

using namespace spmm_check;
using sk::Status;

#define CHECK_CUDA(expr)                                                                          \
  do {                                                                                            \
    cudaError_t e_ = (expr);                                                                      \
    if (e_ != cudaSuccess) {                                                                      \
      std::printf("FATAL  %s: %s (%s:%d)\n", #expr, cudaGetErrorString(e_), __FILE__, __LINE__); \
      std::exit(2);                                                                               \
    }                                                                                             \
  } while (0)

namespace {

int g_failures = 0, g_cases = 0;

void report(bool ok, const std::string& what) {
  ++g_cases;
  if (!ok) ++g_failures;
  std::printf("%s  %s\n", ok ? "PASS" : "FAIL", what.c_str());
}

// Device copy of a host buffer (freed at scope end).
struct DevBuf {
  void* p = nullptr;
  size_t bytes = 0;
  DevBuf() = default;
  explicit DevBuf(size_t n) : bytes(n) { CHECK_CUDA(cudaMalloc(&p, n > 0 ? n : 16)); }
  DevBuf(const void* host, size_t n) : DevBuf(n) {
    if (n) CHECK_CUDA(cudaMemcpy(p, host, n, cudaMemcpyHostToDevice));
  }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  ~DevBuf() {
    if (p) cudaFree(p);
  }
  template <typename U>
  U* as() const {
    return static_cast<U*>(p);
  }
};

struct DevBsr {
  DevBuf row_ptr, col_idx, values, row_order;
  sk::BlockCsrView view;
  DevBsr(const HostBsr& h, bool with_order)
      : row_ptr(h.row_ptr.data(), h.row_ptr.size() * 4),
        col_idx(h.col_idx.data(), h.col_idx.size() * 4),
        values(h.values.data(), h.values.nbytes()),
        row_order(h.row_order.data(), h.row_order.size() * 4) {
    view = h.view;
    view.row_ptr = row_ptr.as<int32_t>();
    view.col_idx = col_idx.as<int32_t>();
    view.values = values.p;
    view.row_order = with_order ? row_order.as<int32_t>() : nullptr;
  }
};

// Runs fn on the default stream and returns its Status, synchronizing so device faults surface here.
Status run_sync(const std::function<Status()>& fn) {
  Status s = fn();
  const cudaError_t e = cudaDeviceSynchronize();
  if (s.ok() && e != cudaSuccess) s = Status::Error(sk::ErrorCode::kCuda, cudaGetErrorString(e));
  return s;
}

struct Case {
  DType dt;
  int M, K, N, bm, bk;
  double density, empty_rows;
  Activation act;
  bool bias, order;
  int x_pad = 0, y_pad = 0;
  int x_offset = 0;  // elements: X starts this far into its buffer (breaks 16-byte alignment)
  int variant = 0;
};

std::string describe(const Case& c) {
  char buf[240];
  std::snprintf(buf, sizeof(buf),
                "%-8s M=%d K=%d N=%d block %dx%d dens %.2f empty %.2f %s%s%s ld+%d/+%d xoff %d variant %d",
                sk::dtype_name(c.dt), c.M, c.K, c.N, c.bm, c.bk, c.density, c.empty_rows, act_name(c.act),
                c.bias ? " +bias" : "", c.order ? " +row_order" : "", c.x_pad, c.y_pad, c.x_offset, c.variant);
  return buf;
}

void run_case(Rng& rng, const Case& c) {
  HostBsr w = random_bsr(rng, c.dt, c.M, c.K, c.bm, c.bk, c.density, c.empty_rows);
  const int64_t ldx = c.K + c.x_pad, ldy = c.M + c.y_pad;
  HostArray x(c.dt, c.N * ldx + c.x_offset), bias(c.dt, c.M), y(c.dt, c.N * ldy);
  x.fill_uniform(rng, -1, 1);
  bias.fill_uniform(rng, -1, 1);
  poison(y, ldy, c.N, c.M);
  DevBsr dw(w, c.order);
  DevBuf dx(x.data(), x.nbytes()), db(bias.data(), bias.nbytes()), dy(y.data(), y.nbytes());
  sk::SpmmParams p;
  p.x = dx.as<char>() + c.x_offset * sk::dtype_size(c.dt);
  p.y = dy.p, p.bias = c.bias ? db.p : nullptr;
  p.x_row_stride = ldx, p.y_row_stride = ldy, p.n = c.N, p.dtype = c.dt, p.activation = c.act, p.w = dw.view;
  const Status s = run_sync([&] { return sk::cuda::spmm_variant(p, nullptr, c.variant); });
  CHECK_CUDA(cudaMemcpy(y.data(), dy.p, y.nbytes(), cudaMemcpyDeviceToHost));
  // Reference on the X actually passed (offset view).
  HostArray xv(c.dt, c.N * ldx);
  std::memcpy(xv.data(), x.bytes.data() + c.x_offset * sk::dtype_size(c.dt), xv.nbytes());
  const auto ref = reference(xv, ldx, c.N, c.K, dense_of(w), c.M, c.bias ? &bias : nullptr, c.act);
  const Compare cmp = compare(y, ldy, c.N, c.M, ref);
  // Determinism: poison again, run again, same bits.
  HostArray y2(c.dt, c.N * ldy);
  poison(y2, ldy, c.N, c.M);
  CHECK_CUDA(cudaMemcpy(dy.p, y2.data(), y2.nbytes(), cudaMemcpyHostToDevice));
  const Status s2 = run_sync([&] { return sk::cuda::spmm_variant(p, nullptr, c.variant); });
  CHECK_CUDA(cudaMemcpy(y2.data(), dy.p, y2.nbytes(), cudaMemcpyDeviceToHost));
  const bool same = y.bytes == y2.bytes;
  char buf[160];
  std::snprintf(buf, sizeof(buf), " nnzb=%lld err %.2e unwritten %lld clobbered %lld%s",
                static_cast<long long>(w.view.nnzb), cmp.rel_err, static_cast<long long>(cmp.unwritten),
                static_cast<long long>(cmp.clobbered), same ? "" : " NOT DETERMINISTIC");
  report(s.ok() && s2.ok() && cmp.rel_err <= tolerance(c.dt) && cmp.unwritten == 0 && cmp.clobbered == 0 && same,
         "spmm " + describe(c) + buf + (s.ok() ? "" : " [" + s.message + "]"));
}

void run_dense_case(Rng& rng, DType dt, int M, int K, int N, Activation act, bool with_bias) {
  const int64_t ldw = K + (K % 8 == 0 ? 8 : 1), ldx = K + (K % 8 == 0 ? 8 : 3), ldy = M + 2;
  HostArray x(dt, N * ldx), w(dt, M * ldw), bias(dt, M), y(dt, N * ldy);
  x.fill_uniform(rng, -1, 1);
  w.fill_uniform(rng, -1, 1);
  bias.fill_uniform(rng, -1, 1);
  poison(y, ldy, N, M);
  DevBuf dx(x.data(), x.nbytes()), dw(w.data(), w.nbytes()), db(bias.data(), bias.nbytes()), dy(y.data(), y.nbytes());
  sk::DenseLinearParams p;
  p.x = dx.p, p.w = dw.p, p.bias = with_bias ? db.p : nullptr, p.y = dy.p;
  p.x_row_stride = ldx, p.w_row_stride = ldw, p.y_row_stride = ldy, p.n = N, p.m = M, p.k = K, p.dtype = dt;
  p.activation = act;
  const Status s = run_sync([&] { return sk::cuda::dense_linear(p, nullptr); });
  CHECK_CUDA(cudaMemcpy(y.data(), dy.p, y.nbytes(), cudaMemcpyDeviceToHost));
  std::vector<double> wd(static_cast<size_t>(M) * K);
  for (int m = 0; m < M; ++m)
    for (int k = 0; k < K; ++k) wd[static_cast<size_t>(m) * K + k] = w.get(static_cast<int64_t>(m) * ldw + k);
  const Compare cmp = compare(y, ldy, N, M, reference(x, ldx, N, K, wd, M, with_bias ? &bias : nullptr, act));
  char buf[256];
  std::snprintf(buf, sizeof(buf), "dense_linear %-8s M=%d K=%d N=%d %s%s err %.2e unwritten %lld clobbered %lld",
                sk::dtype_name(dt), M, K, N, act_name(act), with_bias ? " +bias" : "", cmp.rel_err,
                static_cast<long long>(cmp.unwritten), static_cast<long long>(cmp.clobbered));
  report(s.ok() && cmp.rel_err <= tolerance(dt) && cmp.unwritten == 0 && cmp.clobbered == 0,
         std::string(buf) + (s.ok() ? "" : " [" + s.message + "]"));
}

void check_correctness(Rng& rng) {
  const DType dts[] = {DType::kFloat32, DType::kFloat16, DType::kBFloat16};
  const int sides[] = {16, 32, 64};
  const int ns[] = {1, 3, 17, 100, 300};
  const Activation acts[] = {Activation::kNone, Activation::kRelu, Activation::kGelu, Activation::kSilu};
  int i = 0;
  for (DType dt : dts)
    for (int bm : sides)
      for (int bk : sides)
        for (int n : ns) {
          // M, K off the block grid; K % 8 == 0 keeps the tensor-core path (K odd is covered below).
          const int M = 2 * bm + bm / 2 + 3, K = 3 * bk + 24;
          run_case(rng, {dt, M, K, n, bm, bk, 0.5, 0.2, acts[i % 4], i % 3 != 0, i % 2 == 0, (i % 3) * 8, i % 3});
          ++i;
        }
  for (DType dt : dts) {
    // X not 16-byte aligned / K odd / odd row stride: the SIMT fallback (half types) must agree.
    run_case(rng, {dt, 70, 77, 45, 32, 32, 0.6, 0.1, Activation::kGelu, true, true, 0, 1, 1});
    run_case(rng, {dt, 70, 96, 45, 64, 16, 0.6, 0.1, Activation::kSilu, true, true, 1, 0, 0});
    run_case(rng, {dt, 70, 77, 1, 16, 64, 0.6, 0.1, Activation::kRelu, true, true, 0, 0, 1});  // GEMV scalar
    // All-empty matrix (nnzb == 0): bias + activation everywhere; then without bias: zeros.
    run_case(rng, {dt, 77, 96, 33, 16, 16, 0.0, 0.0, Activation::kGelu, true, true});
    run_case(rng, {dt, 77, 96, 1, 16, 16, 0.0, 0.0, Activation::kSilu, true, false});
    run_case(rng, {dt, 77, 96, 20, 32, 32, 0.0, 0.0, Activation::kNone, false, true});
    // Tiny.
    run_case(rng, {dt, 1, 8, 1, 16, 16, 1.0, 0.0, Activation::kNone, true, true});
    run_case(rng, {dt, 5, 8, 2, 16, 16, 1.0, 0.0, Activation::kRelu, true, true});
    // Larger: several token tiles, long block rows, uneven rows.
    run_case(rng, {dt, 1000, 1504, 520, 64, 64, 0.3, 0.1, Activation::kRelu, true, true, 8, 8});
    run_case(rng, {dt, 777, 2048, 260, 32, 32, 0.2, 0.3, Activation::kGelu, true, true});
  }
  // Every tensor-core variant (fixed configuration) on shapes with token and feature tails.
  for (DType dt : {DType::kFloat16, DType::kBFloat16})
    for (int v = 1; v <= 2; ++v)
      for (int side : sides) run_case(rng, {dt, 300, 520, 300, side, side, 0.4, 0.1, Activation::kSilu, true, true, 0, 0, 0, v});
  for (int v = 3; v <= 5; ++v)
    for (int side : {32, 64})
      run_case(rng, {DType::kBFloat16, 300, 520, 600, side, side, 0.4, 0.1, Activation::kGelu, true, true, 0, 2, 0, v});
  // dense_linear: tensor cores (K % 8 == 0), SIMT (K odd, float32), GEMV (N = 1), small-N tiles.
  for (DType dt : dts)
    for (int n : {1, 5, 17, 200})
      for (int k : {520, 301}) run_dense_case(rng, dt, 203, k, n, acts[(n + k) % 4], n != 5);
  run_dense_case(rng, DType::kBFloat16, 64, 0, 7, Activation::kSilu, true);  // K == 0: bias only
}

// One target-size case: every output checked for NaN (poison), 4096 sampled outputs against float64.
void check_large(Rng& rng) {
  const int M = 8192, K = 8192, N = 512, b = 32;
  HostBsr w = random_bsr(rng, DType::kBFloat16, M, K, b, b, 0.1, 0.0, true);
  HostArray x(DType::kBFloat16, static_cast<int64_t>(N) * K), bias(DType::kBFloat16, M), y(DType::kBFloat16, static_cast<int64_t>(N) * M);
  x.fill_uniform(rng, -1, 1);
  bias.fill_uniform(rng, -1, 1);
  poison(y, M, N, M);
  DevBsr dw(w, true);
  DevBuf dx(x.data(), x.nbytes()), db(bias.data(), bias.nbytes()), dy(y.data(), y.nbytes());
  sk::SpmmParams p;
  p.x = dx.p, p.y = dy.p, p.bias = db.p, p.x_row_stride = K, p.y_row_stride = M, p.n = N;
  p.dtype = DType::kBFloat16, p.activation = Activation::kGelu, p.w = dw.view;
  const Status s = run_sync([&] { return sk::cuda::spmm(p, nullptr); });
  CHECK_CUDA(cudaMemcpy(y.data(), dy.p, y.nbytes(), cudaMemcpyDeviceToHost));
  int64_t nan = 0;
  for (int64_t i = 0; i < y.count; ++i) nan += std::isnan(y.get(i));
  double num = 0, den = 0;
  for (int t = 0; t < 4096; ++t) {
    const int n = static_cast<int>(rng.below(N)), m = static_cast<int>(rng.below(M));
    const int r = m / b, i = m % b;
    double acc = bias.get(m);
    for (int j = w.row_ptr[r]; j < w.row_ptr[r + 1]; ++j)
      for (int k = 0; k < b; ++k)
        acc += w.values.get((static_cast<int64_t>(j) * b + i) * b + k) *
               x.get(static_cast<int64_t>(n) * K + static_cast<int64_t>(w.col_idx[j]) * b + k);
    const double ref = act_ref(acc, Activation::kGelu), got = y.get(static_cast<int64_t>(n) * M + m);
    num += (got - ref) * (got - ref);
    den += ref * ref;
  }
  const double err = std::sqrt(num / den);
  char buf[200];
  std::snprintf(buf, sizeof(buf), "spmm bfloat16 8192x8192 32x32 90%% sparse N=512 gelu+bias: NaN left %lld, sampled err %.2e",
                static_cast<long long>(nan), err);
  report(s.ok() && nan == 0 && err <= 1e-2, buf);
}

// ---- timing ----
float time_ms(const std::function<Status()>& fn, int warm = 3, int reps = 15) {
  for (int i = 0; i < warm; ++i)
    if (!fn().ok()) return -1.f;
  CHECK_CUDA(cudaDeviceSynchronize());
  cudaEvent_t a, b;
  CHECK_CUDA(cudaEventCreate(&a));
  CHECK_CUDA(cudaEventCreate(&b));
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    CHECK_CUDA(cudaEventRecord(a));
    const Status s = fn();
    CHECK_CUDA(cudaEventRecord(b));
    CHECK_CUDA(cudaEventSynchronize(b));
    if (!s.ok()) return -1.f;
    float ms = 0;
    CHECK_CUDA(cudaEventElapsedTime(&ms, a, b));
    t.push_back(ms);
  }
  CHECK_CUDA(cudaEventDestroy(a));
  CHECK_CUDA(cudaEventDestroy(b));
  CHECK_CUDA(cudaGetLastError());
  return static_cast<float>(median(t));
}

// L2 -> SM read bandwidth: 16-byte L1-bypassing loads over a buffer that fits in L2, read repeatedly.
// The 32x32 SpMM re-reads each X tile once per block row that uses it (nnzb * N * bk * 2 bytes), so this
// rate over those bytes is the kernel's real floor (NOTES.md).
__global__ void l2_read_kernel(const uint4* __restrict__ buf, size_t n, int reps, uint4* sink) {
  uint4 acc = make_uint4(0, 0, 0, 0);
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (int r = 0; r < reps; ++r)
    for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n; i += stride) {
      const uint4 v = __ldcg(buf + i);
      acc.x ^= v.x, acc.y ^= v.y, acc.z ^= v.z, acc.w ^= v.w;
    }
  if ((acc.x ^ acc.y ^ acc.z ^ acc.w) == 0x12345678u) *sink = acc;  // keeps the loads alive
}

double l2_read_tbps(size_t bytes) {
  DevBuf buf(bytes), sink(16);
  CHECK_CUDA(cudaMemset(buf.p, 1, bytes));
  int sms = 0;
  CHECK_CUDA(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  const int reps = 20;
  auto run = [&] {
    l2_read_kernel<<<sms * 8, 256>>>(buf.as<uint4>(), bytes / 16, reps, sink.as<uint4>());
    return Status::Ok();
  };
  const float ms = time_ms(run);
  return bytes * static_cast<double>(reps) / (ms * 1e-3) / 1e12;
}

void timing(Rng& rng) {
  const int M = 8192, K = 8192, NMAX = 4096;
  const double cublas_ms = 0.748, torch_bsr32_90 = 1.29, torch_bsr32_95 = 0.98;  // specs/anchors.md
  std::printf("\nTiming: bf16, W %dx%d, X [N, %d]; CUDA events, 3 warm-ups, median of 15.\n", M, K, K);
  std::printf("Anchors (specs/anchors.md, N = 4096): cuBLAS dense %.3f ms; torch BSR 32x32 90%% %.2f ms, 95%% %.2f ms;"
              " 64x64 50/90/95%% 1.35/0.52/0.44 ms.\n", cublas_ms, torch_bsr32_90, torch_bsr32_95);
  std::printf("L2 read bandwidth (16-byte __ldcg, buffer read 20x): 16 MB %.2f TB/s, 40 MB %.2f TB/s\n",
              l2_read_tbps(16u << 20), l2_read_tbps(40u << 20));
  HostArray x(DType::kBFloat16, static_cast<int64_t>(NMAX) * K);
  x.fill_uniform(rng, -1, 1);
  DevBuf dx(x.data(), x.nbytes()), dy(static_cast<size_t>(NMAX) * M * 2);
  // Our dense baseline, same run.
  float dense_ms[3] = {0, 0, 0};
  const int ns[3] = {4096, 256, 16};
  {
    HostArray wd(DType::kBFloat16, static_cast<int64_t>(M) * K);
    wd.fill_uniform(rng, -1, 1);
    DevBuf dw(wd.data(), wd.nbytes());
    sk::DenseLinearParams p;
    p.x = dx.p, p.w = dw.p, p.y = dy.p, p.x_row_stride = K, p.w_row_stride = K, p.y_row_stride = M;
    p.m = M, p.k = K, p.dtype = DType::kBFloat16;
    std::printf("%-40s %6s %9s %10s\n", "dense_linear (ours)", "N", "ms", "TFLOP/s");
    for (int i = 0; i < 3; ++i) {
      p.n = ns[i];
      dense_ms[i] = time_ms([&] { return sk::cuda::dense_linear(p, nullptr); });
      std::printf("%-40s %6d %9.3f %10.1f\n", "dense_linear bf16", ns[i], dense_ms[i], 2.0 * M * K * ns[i] / dense_ms[i] / 1e9);
    }
  }
  std::printf("\n%-34s %6s %9s %9s %10s %9s %9s %9s\n", "spmm bf16 (auto)", "N", "ms", "useful", "vs dense", "vs cuBLAS",
              "floor*", "variants**");
  std::printf("%-34s %6s %9s %9s %10s %9s %9s\n", "", "", "", "TFLOP/s", "(ours)", "anchor", "ms");
  for (int b : {32, 64})
    for (double sp : {0.5, 0.75, 0.9, 0.95}) {
      HostBsr w = random_bsr(rng, DType::kBFloat16, M, K, b, b, 1.0 - sp, 0.0, true);
      DevBsr dw(w, true);
      for (int i = 0; i < 3; ++i) {
        sk::SpmmParams p;
        p.x = dx.p, p.y = dy.p, p.x_row_stride = K, p.y_row_stride = M, p.n = ns[i], p.dtype = DType::kBFloat16;
        p.w = dw.view;
        const float ms = time_ms([&] { return sk::cuda::spmm(p, nullptr); });
        const double flops = 2.0 * w.view.nnzb * b * b * ns[i];
        // HBM floor: kept values + X + Y once, at the copy ceiling (4.15 TB/s).
        const double bytes = w.view.nnzb * b * b * 2.0 + 2.0 * ns[i] * K + 2.0 * ns[i] * M;
        std::string variants;
        if (ns[i] == 4096) {
          for (int v = 1; v <= 5; ++v) {
            const float vm = time_ms([&] { return sk::cuda::spmm_variant(p, nullptr, v); });
            char t[32];
            std::snprintf(t, sizeof(t), " v%d:%.3f", v, vm);
            variants += vm < 0 ? std::string(" v") + std::to_string(v) + ":-" : t;
          }
        }
        char name[64];
        std::snprintf(name, sizeof(name), "%dx%d %.0f%% sparse", b, b, sp * 100);
        std::printf("%-34s %6d %9.3f %9.1f %9.2fx %8.2fx %9.4f %s\n", name, ns[i], ms, flops / ms / 1e9,
                    dense_ms[i] / ms, ns[i] == 4096 ? cublas_ms / ms : 0.0, bytes / 4.15e12 * 1e3, variants.c_str());
      }
    }
  {
    HostBsr w = random_bsr(rng, DType::kBFloat16, M, K, 32, 32, 0.1, 0.0, true);
    DevBsr dw(w, true);
    sk::SpmmParams p;
    p.x = dx.p, p.y = dy.p, p.x_row_stride = K, p.y_row_stride = M, p.n = 1, p.dtype = DType::kBFloat16, p.w = dw.view;
    const float ms = time_ms([&] { return sk::cuda::spmm(p, nullptr); });
    std::printf("%-34s %6d %9.4f  (GEMV; W bytes floor %.4f ms)\n", "32x32 90% sparse", 1, ms,
                w.view.nnzb * 32 * 32 * 2.0 / 4.15e12 * 1e3);
  }
  std::printf("* floor: kept weights + X + Y read/written once at 4.15 TB/s (HBM). Compute floor at the 767 TFLOP/s "
              "cuBLAS ceiling: useful FLOPs / 767e12.\n** v1 small-N, v2 large-N (auto for N > 16), v3-v5 tuning "
              "alternatives (spmm_launch.cuh), ms.\n");
}

}  // namespace

// One call each of the main kernels on the target shape, for ncu (--profile).
void profile(Rng& rng) {
  const int M = 8192, K = 8192, N = 4096;
  HostArray x(DType::kBFloat16, static_cast<int64_t>(N) * K);
  x.fill_uniform(rng, -1, 1);
  DevBuf dx(x.data(), x.nbytes()), dy(static_cast<size_t>(N) * M * 2);
  for (int b : {32, 64}) {
    HostBsr w = random_bsr(rng, DType::kBFloat16, M, K, b, b, 0.1, 0.0, true);
    DevBsr dw(w, true);
    sk::SpmmParams p;
    p.x = dx.p, p.y = dy.p, p.x_row_stride = K, p.y_row_stride = M, p.n = N, p.dtype = DType::kBFloat16, p.w = dw.view;
    const Status s = run_sync([&] { return sk::cuda::spmm(p, nullptr); });
    std::printf("profile spmm %dx%d 90%%: %s\n", b, b, s.ok() ? "ok" : s.message.c_str());
  }
  HostArray wd(DType::kBFloat16, static_cast<int64_t>(M) * K);
  wd.fill_uniform(rng, -1, 1);
  DevBuf dw(wd.data(), wd.nbytes());
  sk::DenseLinearParams p;
  p.x = dx.p, p.w = dw.p, p.y = dy.p, p.x_row_stride = K, p.w_row_stride = K, p.y_row_stride = M;
  p.n = N, p.m = M, p.k = K, p.dtype = DType::kBFloat16;
  const Status s = run_sync([&] { return sk::cuda::dense_linear(p, nullptr); });
  std::printf("profile dense: %s\n", s.ok() ? "ok" : s.message.c_str());
}

int main(int argc, char** argv) {
  int dev = 0;
  cudaDeviceProp prop;
  if (cudaGetDevice(&dev) != cudaSuccess || cudaGetDeviceProperties(&prop, dev) != cudaSuccess) {
    std::printf("FAIL  no CUDA device\n");
    return 1;
  }
  std::printf("device: %s, sm_%d%d, %d SMs, L2 %d MB\n", prop.name, prop.major, prop.minor, prop.multiProcessorCount,
              prop.l2CacheSize >> 20);
  const uint64_t seed = pick_seed();
  std::printf("spmm_check: seed %llu (SEED=<n> replays)\n", static_cast<unsigned long long>(seed));
  Rng rng(seed);
  if (argc > 1 && std::string(argv[1]) == "--profile") {
    profile(rng);
    return 0;
  }
  const bool timing_only = argc > 1 && std::string(argv[1]) == "--timing-only";
  const bool no_timing = argc > 1 && std::string(argv[1]) == "--no-timing";
  if (!timing_only) {
    check_correctness(rng);
    check_large(rng);
    std::printf("\n%d cases, %d failed\n", g_cases, g_failures);
  }
  if (!no_timing) timing(rng);
  if (!timing_only) std::printf("\nRESULT: %d cases, %d failed\n", g_cases, g_failures);
  return g_failures == 0 ? 0 : 1;
}
