// fp32 tile primitives of the CPU attention kernel: scores, online softmax, P.V.
//
// Layouts (why transposed): the scores tile is kept as S^T [keys x queries], queries contiguous.
//  - S^T = K . Q^T lets K and V be read in place, row by row (a user row, a permuted row or a converted
//    row: all are just row pointers), and only the query tile is transposed, once per query tile.
//  - Every softmax step (column max, exp, column sum, causal mask) then runs along contiguous queries,
//    which the compiler vectorises without horizontal reductions.
//  - P.V broadcasts P^T[j][i] and streams the V row j: the same register-blocked shape as the scores.
// Scores live in the log2 domain: the query tile is pre-multiplied by softmax_scale * log2(e), so the
// softmax uses exp2 and lse = ln(2) * (m + log2(l)).
//
// Every function here is compiled per ISA (SK_CPU_DISPATCH); their helpers are force-inlined into each
// clone, because an ordinary call would land in the baseline SSE2 build (measured on this machine's
// Zen 5 core: 28 vs 140 GFLOP/s for the scores tile).
#pragma once
#include <cstdint>

namespace sk::cpu::attn {

// Query tiles are padded to a multiple of kQueryPad columns (zero queries) so the micro-kernels never
// need a column tail; the padded scores are computed and ignored.
inline constexpr int kQueryPad = 32;
// Largest query / key tile; larger block sizes are walked in sub-tiles of this size. 128 keeps the
// per-tile working set (Q^T, S^T, one 32-wide V panel) inside a 1 MiB L2 at head_dim 128.
inline constexpr int kMaxTile = 128;

// st[j * ld + i] = sum_d k_rows[j][d] * qt[d * ld + i] for j < n, i < m_pad.
// m_pad % kQueryPad == 0; ld >= m_pad; qt holds head_dim rows of ld floats.
void qk_scores(const float* const* k_rows, int n, const float* qt, int m_pad, int ld, int head_dim,
               float* st);

// Causal / key-position mask of a masked block: query i of the tile (global row q0 + i) keeps key j
// iff pos[j] <= q0 + i + diag_offset (diag_offset = seq_k - seq_q). Masked scores become -inf.
void mask_scores(const int32_t* pos, int n, int64_t q0, int64_t diag_offset, int m_pad, int ld,
                 float* st);

// One online-softmax step over n keys: updates the running max m_run and sum l_run per query,
// overwrites st with P^T = exp2(st - m) and writes the factor alpha by which the previous
// accumulator must be rescaled. Queries that have seen no kept key yet keep m = -inf, l = 0.
void softmax_step(float* st, int n, int m_pad, int ld, float* m_run, float* l_run, float* alpha);

// o[i * head_dim + c] = alpha[i] * o[i * head_dim + c] + sum_j pt[j * ld + i] * v_rows[j][c]
// for i < m_pad, c < head_dim.
void pv_accumulate(const float* pt, int n, int m_pad, int ld, const float* const* v_rows, int head_dim,
                   const float* alpha, float* o);

// dst[c * ld_dst + r] = scale * src[r * cols + c] for r < rows, c < cols: the query tile transpose,
// done in 16 x 16 blocks so that neither side walks a column of a tile larger than L1.
void transpose_scaled(const float* src, int rows, int cols, float scale, float* dst, int ld_dst);

// 16-bit rows to fp32 (exact). Vectorised: these run on every K/V row of every computed block.
void f16_to_f32(const uint16_t* src, float* dst, int n);
void bf16_to_f32(const uint16_t* src, float* dst, int n);

}  // namespace sk::cpu::attn
