#include "cpu/spmm/microkernel.h"

#include "cpu/common/simd.h"

namespace sk::cpu::spmm_detail {

// The vector helpers below are internal and always inlined, so GCC's note that passing 64-byte vectors by
// value changes the ABI between ISA levels does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace {

typedef float vf16 __attribute__((vector_size(64)));  // 16 floats: one zmm, two ymm or four xmm

__attribute__((always_inline)) inline vf16 load16(const float* p) {
  vf16 v;
  __builtin_memcpy(&v, p, sizeof(v));
  return v;
}
__attribute__((always_inline)) inline void store16(float* p, const vf16& v) { __builtin_memcpy(p, &v, sizeof(v)); }

// a[r][v] += w[r * ws + k] * panel[k][v * 16 .. +16] for k < depth. Inlined into each clone below so
// the accumulators stay in that clone's registers.
template <int R, int V>
__attribute__((always_inline)) inline void accumulate(vf16 (&a)[R][V], const float* SK_RESTRICT w, int64_t ws,
                                                      const float* SK_RESTRICT panel, int64_t depth) {
  for (int64_t k = 0; k < depth; ++k) {
    vf16 p[V];
    for (int v = 0; v < V; ++v) p[v] = load16(panel + k * (V * 16) + v * 16);
    for (int r = 0; r < R; ++r) {
      const float s = w[r * ws + k];
      for (int v = 0; v < V; ++v) a[r][v] += s * p[v];
    }
  }
}

template <int R, int V>
__attribute__((always_inline)) inline void load_acc(vf16 (&a)[R][V], const float* acc) {
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < V; ++v) a[r][v] = load16(acc + (r * V + v) * 16);
}
template <int R, int V>
__attribute__((always_inline)) inline void store_acc(float* acc, const vf16 (&a)[R][V]) {
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < V; ++v) store16(acc + (r * V + v) * 16, a[r][v]);
}

template <int R, int V>
__attribute__((always_inline)) inline void bsr_body(float* acc, const float* w, int64_t wbs, int64_t wrs,
                                                    const int32_t* cols, int64_t nblk, int bk,
                                                    const float* panel) {
  vf16 a[R][V];
  load_acc(a, acc);
  for (int64_t b = 0; b < nblk; ++b)
    accumulate(a, w + b * wbs, wrs, panel + static_cast<int64_t>(cols[b]) * bk * (V * 16), bk);
  store_acc(acc, a);
}

template <int R, int V>
__attribute__((always_inline)) inline void dense_body(float* acc, const float* w, int64_t wrs, const float* panel,
                                                      int64_t depth) {
  vf16 a[R][V];
  load_acc(a, acc);
  accumulate(a, w, wrs, panel, depth);
  store_acc(acc, a);
}

// One non-template clone set per (rows, panel width): target_clones is applied to plain functions only.
#define SK_SPMM_MK(R, V)                                                                                      \
  SK_CPU_DISPATCH void bsr_r##R##_v##V(float* acc, const float* w, int64_t wbs, int64_t wrs,                \
                                       const int32_t* cols, int64_t nblk, int bk, const float* panel) {       \
    bsr_body<R, V>(acc, w, wbs, wrs, cols, nblk, bk, panel);                                                  \
  }                                                                                                           \
  SK_CPU_DISPATCH void dense_r##R##_v##V(float* acc, const float* w, int64_t wrs, const float* panel,          \
                                         int64_t depth) {                                                     \
    dense_body<R, V>(acc, w, wrs, panel, depth);                                                              \
  }
SK_SPMM_MK(4, 1)
SK_SPMM_MK(4, 2)
SK_SPMM_MK(4, 4)
SK_SPMM_MK(1, 1)
SK_SPMM_MK(1, 2)
SK_SPMM_MK(1, 4)
#undef SK_SPMM_MK

}  // namespace

int preferred_panel_width() {
#if defined(__x86_64__) && defined(__GNUC__)
  static const int width = __builtin_cpu_supports("avx512f") ? 64 : 16;
  return width;
#else
  return 16;
#endif
}

void bsr_rows(int rows, int nt, float* acc, const float* w, int64_t wbs, int64_t wrs, const int32_t* cols,
              int64_t nblk, int bk, const float* panel) {
  const bool four = rows == 4;
  switch (nt) {
    case 16: return four ? bsr_r4_v1(acc, w, wbs, wrs, cols, nblk, bk, panel)
                         : bsr_r1_v1(acc, w, wbs, wrs, cols, nblk, bk, panel);
    case 32: return four ? bsr_r4_v2(acc, w, wbs, wrs, cols, nblk, bk, panel)
                         : bsr_r1_v2(acc, w, wbs, wrs, cols, nblk, bk, panel);
    default: return four ? bsr_r4_v4(acc, w, wbs, wrs, cols, nblk, bk, panel)
                         : bsr_r1_v4(acc, w, wbs, wrs, cols, nblk, bk, panel);
  }
}

void dense_rows(int rows, int nt, float* acc, const float* w, int64_t wrs, const float* panel, int64_t depth) {
  const bool four = rows == 4;
  switch (nt) {
    case 16: return four ? dense_r4_v1(acc, w, wrs, panel, depth) : dense_r1_v1(acc, w, wrs, panel, depth);
    case 32: return four ? dense_r4_v2(acc, w, wrs, panel, depth) : dense_r1_v2(acc, w, wrs, panel, depth);
    default: return four ? dense_r4_v4(acc, w, wrs, panel, depth) : dense_r1_v4(acc, w, wrs, panel, depth);
  }
}

namespace {
__attribute__((always_inline)) inline float dot_body(const float* SK_RESTRICT a, const float* SK_RESTRICT b,
                                                     int64_t n) {
  vf16 s0 = {}, s1 = {};
  int64_t k = 0;
  for (; k + 32 <= n; k += 32) {
    s0 += load16(a + k) * load16(b + k);
    s1 += load16(a + k + 16) * load16(b + k + 16);
  }
  for (; k + 16 <= n; k += 16) s0 += load16(a + k) * load16(b + k);
  s0 += s1;
  float lanes[16];
  store16(lanes, s0);
  for (int w = 8; w >= 1; w /= 2)  // fixed pairwise tree: deterministic for every clone
    for (int i = 0; i < w; ++i) lanes[i] += lanes[i + w];
  float s = lanes[0];
  for (; k < n; ++k) s += a[k] * b[k];
  return s;
}
}  // namespace

SK_CPU_DISPATCH float dot(const float* SK_RESTRICT a, const float* SK_RESTRICT b, int64_t n) {
  return dot_body(a, b, n);
}

SK_CPU_DISPATCH void bsr_gemv_row(float* SK_RESTRICT acc, const float* SK_RESTRICT w, int bm, int bk,
                                  const int32_t* SK_RESTRICT cols, int64_t nblk, const float* SK_RESTRICT x) {
  for (int64_t b = 0; b < nblk; ++b) {
    const float* xb = x + static_cast<int64_t>(cols[b]) * bk;
    const float* wb = w + b * static_cast<int64_t>(bm) * bk;
    for (int i = 0; i < bm; ++i) acc[i] += dot_body(wb + static_cast<int64_t>(i) * bk, xb, bk);
  }
}

}  // namespace sk::cpu::spmm_detail
