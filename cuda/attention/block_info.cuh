// Per-CTA view of the work: which (batch, query head, query block) this CTA owns, its key-block lists
// from the BlockLayout (with batch/head broadcasting), the K/V head it reads (GQA) and the key
// permutation row it gathers through. Tiles are numbered 0..n_tiles-1: the full blocks first, then the
// masked ones, each layout block split into kSubTiles tiles of kBlockN keys.
#pragma once
#include <cstdint>

#include "cuda/attention/attention_fwd_api.cuh"

namespace sk::cuda::attn {

struct TileInfo {
  int n0;           // first key slot of the tile; < 0 when the tile is skipped (bad block id, or past seq_k)
  bool masked;      // apply the token mask (listed as masked, or runs past seq_k)
  bool mask_list;   // listed as masked: the causal / key-position test applies (full blocks: length only)
};

template <typename Traits>
struct BlockInfo {
  int b, h, m_block;
  int n_full, n_tiles;
  const int32_t* full_row;  // full_idx row of this query block
  const int32_t* mask_row;  // mask_idx row
  const int32_t* perm_row;  // key_perm[b, hp, :], or nullptr

  // The grid is (batch * heads_q, q_blocks): x walks heads (adjacent query heads share a K/V head in L2),
  // y walks query blocks from the last: under causal layouts late blocks list the most keys, so the
  // longest CTAs start first and the tail of the launch is made of short ones.
  __device__ BlockInfo(const FwdParams& p) {
    h = blockIdx.x % p.heads_q;
    b = blockIdx.x / p.heads_q;
    m_block = p.q_blocks - 1 - static_cast<int>(blockIdx.y);
    const int64_t lb = p.lay_batch == 1 ? 0 : b;
    const int64_t lh = p.lay_heads == 1 ? 0 : h;
    const int64_t row = (lb * p.lay_heads + lh) * p.q_blocks + m_block;
    // Counts are clamped to the row strides: a corrupt count cannot walk into the next row's memory.
    n_full = min(max(__ldg(p.full_cnt + row), 0), p.max_blocks);
    const int n_mask = min(max(__ldg(p.mask_cnt + row), 0), p.mask_max_blocks);
    full_row = p.full_idx + row * p.max_blocks;
    mask_row = p.mask_idx + row * p.mask_max_blocks;
    n_tiles = (n_full + n_mask) * Traits::kSubTiles;
    perm_row = nullptr;
    if (p.key_perm != nullptr) {
      const int hp = p.perm_per_q_head ? h : h / p.group;
      perm_row = p.key_perm + (static_cast<int64_t>(b) * p.perm_heads + hp) * p.seq_k;
    }
  }

  __device__ int kv_head(const FwdParams& p) const { return h / p.group; }

  // Tile t -> first key slot and mask flag. Uniform over the CTA (same t in every thread).
  __device__ TileInfo tile(const FwdParams& p, int t) const {
    const int list_pos = t / Traits::kSubTiles;
    const int sub = t % Traits::kSubTiles;
    const bool in_mask_list = list_pos >= n_full;
    const int blk = in_mask_list ? __ldg(mask_row + (list_pos - n_full)) : __ldg(full_row + list_pos);
    TileInfo ti;
    ti.n0 = -1;
    ti.masked = ti.mask_list = in_mask_list;
    if (blk < 0 || blk >= p.k_blocks) return ti;  // out-of-range id: skipped, never dereferenced
    const int n0 = blk * Traits::kBlockM + sub * Traits::kBlockN;
    if (n0 >= p.seq_k) return ti;  // sub-tile wholly past the end of a partial last block
    ti.n0 = n0;
    // A "full" tile that runs past seq_k still needs the length mask: those keys do not exist.
    ti.masked = in_mask_list || (n0 + Traits::kBlockN > p.seq_k);
    return ti;
  }
};

}  // namespace sk::cuda::attn
