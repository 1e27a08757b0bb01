// Token mask of the *masked* key tiles (full tiles never come here):
//   keep(i, j) = j < seq_k  and, when causal,  pos(j) <= i + (seq_k - seq_q)
// with pos(j) = key_perm[j] (read from the tile's shared-memory permutation slot) or j.
// Dropped scores become -inf; the online softmax maps them to probability 0.
#pragma once
#include <cmath>

namespace sk::cuda::attn {

// acc_s: this warp's S tile in the mma C layout: acc_s[mt][nt][e] holds
//   row = row0 + mt*16 + (lane/4) + (e/2)*8,  key slot = n0 + nt*8 + 2*(lane%4) + (e%2).
// perm_slot: kBlockN key positions of this tile, or nullptr for the identity.
template <typename Traits>
__device__ __forceinline__ void apply_token_mask(float (&acc_s)[Traits::kMTiles][Traits::kNTiles][4], int row0,
                                                 int n0, int seq_q, int seq_k, bool causal,
                                                 const int* perm_slot, int lane) {
  const int row_g = row0 + lane / 4;
  const int causal_shift = seq_k - seq_q;  // bottom-right aligned causal mask when seq_q != seq_k
#pragma unroll
  for (int nt = 0; nt < Traits::kNTiles; ++nt) {
#pragma unroll
    for (int e1 = 0; e1 < 2; ++e1) {
      const int local = nt * 8 + 2 * (lane % 4) + e1;
      const int slot = n0 + local;
      const int pos = perm_slot != nullptr ? perm_slot[local] : slot;
      const bool exists = slot < seq_k;
#pragma unroll
      for (int mt = 0; mt < Traits::kMTiles; ++mt) {
#pragma unroll
        for (int hh = 0; hh < 2; ++hh) {
          const int row = row_g + mt * 16 + hh * 8;
          const bool keep = exists && (!causal || pos <= row + causal_shift);
          if (!keep) acc_s[mt][nt][hh * 2 + e1] = -INFINITY;
        }
      }
    }
  }
}

}  // namespace sk::cuda::attn
