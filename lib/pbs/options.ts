/**
 * Options of pbsAttention and of its separately callable stages, with their frozen defaults (the README
 * API table is generated from these). Names are the camelCase of specs/attention.md 6.1.
 */
import type { BlockLayout } from '../attention/layout.js';
import type { Stream } from '../stream.js';
import type { Tensor } from '../tensor.js';

/** How query heads share permutations under grouped-query attention (Hq = G * Hk). */
export type PbsGqaMode = 'shared' | 'perQueryHead';
/** Pooling of a block's rows into one vector (block scores of the meanpool selector). */
export type PbsPool = 'mean' | 'max';
/** Built-in block selectors. */
export type PbsSelectorName = 'meanpool' | 'antidiagonal';

/**
 * What a custom selector receives: the inputs, the permutation pbsAttention computed, and the resolved
 * options. Return a causal BlockLayout for (seqLen, seqLen) tokens with `blockSize` blocks, batch 1 or
 * `batch` and heads 1 or `headsQ`, whose key-block indices address the *permuted* key order (slot j of
 * (b, hp) holds key perm[b, hp, j]). Each query block must keep its own segment as masked blocks (those
 * keys are shuffled, so only the token mask keeps them causal) and may list as full blocks only blocks of
 * earlier segments. Either build one on the host (BlockLayout.fromLists / fromBlockMask) or call
 * pbsSelectBlocks(ctx.q, ctx.k, ctx.perm, ...) (device lists, no host round trip). The tensors are valid
 * during the call only (clone() what you keep).
 */
export interface PbsSelectorContext {
  q: Tensor;
  k: Tensor;
  /** int32 [batch, permutationHeads, seqLen]: key slot j reads key perm[b, hp, j] (identity with permute: false). */
  perm: Tensor<'int32'>;
  batch: number;
  headsQ: number;
  headsK: number;
  seqLen: number;
  headDim: number;
  blockSize: number;
  /** options.segmentSize: the segments the permutation (and the layout's own-segment rule) is built on. */
  segmentSize: number;
  /** Hk ('shared') or Hq ('perQueryHead'). */
  permutationHeads: number;
  gqaMode: PbsGqaMode;
  threshold: number;
  scale: number;
  forceSink: boolean;
  pool: PbsPool;
  permute: boolean;
  stream: Stream;
}

/** A custom block selector (the seam of specs/attention.md section 5). */
export type PbsSelectorFn = (ctx: PbsSelectorContext) => BlockLayout;

export interface PbsOptions {
  /** Tokens per block, the selection granularity and the kernel's logical block: 128 or 64. Defaults to 128. */
  blockSize?: 64 | 128;
  /**
   * Tokens per permutation segment S: keys are reordered only inside complete segments of S tokens (the tail
   * N mod S keeps its order). A multiple of blockSize, at most 8192. Defaults to 256.
   */
  segmentSize?: number;
  /**
   * Cumulative block-probability threshold tau in (0, 1]: each query block keeps the fewest earlier-segment
   * key blocks whose estimated probabilities sum to tau. 1 keeps every causal block (dense attention through
   * the sparse path). Defaults to 0.9.
   */
  threshold?: number;
  /** Softmax scale applied to q.k; finite and > 0. Defaults to 1 / sqrt(headDim). */
  scale?: number;
  /**
   * 'shared': one permutation per KV head (queries of the group averaged), so K/V are never replicated;
   * 'perQueryHead': one per query head (the paper's setting). Defaults to 'shared'.
   */
  gqaMode?: PbsGqaMode;
  /** Number of last queries whose attention ranks the keys (the proxy). At least 1; capped at N. Defaults to blockSize. */
  proxyRows?: number;
  /** Apply the causal mask inside the proxy (false reproduces the reference code's unmasked proxy). Defaults to false. */
  proxyCausal?: boolean;
  /** Always keep the key block holding original token 0 (the attention sink). Defaults to true. */
  forceSink?: boolean;
  /** Pooling of query and key blocks for the meanpool selector: 'mean' or 'max'. Defaults to 'mean'. */
  pool?: PbsPool;
  /**
   * Block selector: 'meanpool' (pooled block scores, PBS-Attn), 'antidiagonal' (XAttention's strided
   * antidiagonal scores on the permuted keys, PBS-Attn+), or a function (PbsSelectorFn) returning your own
   * layout. Defaults to 'meanpool'.
   */
  selector?: PbsSelectorName | PbsSelectorFn;
  /** Stride of the antidiagonal selector: 4, 8 or 16, with blockSize / stride <= 16. Defaults to 8. */
  antidiagonalStride?: 4 | 8 | 16;
  /**
   * Dense fallback: sequences with N <= max(segmentSize, minSeqLen) run dense causal attention (through the
   * same kernel, dense causal layout), where the planning stages cannot pay off. Defaults to 0.
   */
  minSeqLen?: number;
  /**
   * Reorder keys inside segments (PBS). false runs the same selector, segments and layout rules on the
   * natural key order (the identity permutation, no gather in the kernel): the unpermuted MeanPooling
   * baseline, isolating what the permutation buys at the same threshold. Defaults to true.
   */
  permute?: boolean;
  /**
   * Also return the log-sum-exp of each query row, float32 [batch, Hq, N], natural log, scale included
   * (chunked results merge as out = sum_c exp(lse_c - lse) out_c). Defaults to false.
   */
  returnLse?: boolean;
  /**
   * Also return PbsStats: the kept blocks and density per head and overall, the time of each stage
   * (measured inside the one task: CUDA events between the stages' kernels, or the worker's clock), the
   * layout and the permutation that were used. Defaults to false.
   */
  returnStats?: boolean;
  /** Stream to run on (of the tensors' context). Defaults to the context's default stream. */
  stream?: Stream;
}

/** `scale: undefined` stands for 1 / sqrt(headDim), `proxyRows: undefined` for blockSize. */
export const PBS_DEFAULTS = Object.freeze({
  blockSize: 128 as 64 | 128,
  segmentSize: 256,
  threshold: 0.9,
  scale: undefined as number | undefined,
  gqaMode: 'shared' as PbsGqaMode,
  proxyRows: undefined as number | undefined,
  proxyCausal: false,
  forceSink: true,
  pool: 'mean' as PbsPool,
  selector: 'meanpool' as PbsSelectorName,
  antidiagonalStride: 8 as 4 | 8 | 16,
  minSeqLen: 0,
  permute: true,
  returnLse: false,
  returnStats: false,
});

/** Options of pbsProxyScores (the same meaning and defaults as in PbsOptions). */
export type PbsProxyOptions = Pick<PbsOptions, 'blockSize' | 'segmentSize' | 'gqaMode' | 'proxyRows' | 'proxyCausal' | 'scale' | 'stream'>;

/** Options of pbsPermutation. */
export interface PbsPermutationOptions {
  /** Sequence length N (the scores cover its floor(N / segmentSize) * segmentSize permuted tokens). Required. */
  seqLen: number;
  /** Segment size S, a multiple of blockSize, at most 8192. Defaults to 256. */
  segmentSize?: number;
  /** Block size the segment must be a multiple of: 128 or 64. Defaults to 128. */
  blockSize?: 64 | 128;
  /** Stream to run on (of the scores' context). Defaults to the context's default stream. */
  stream?: Stream;
}

/** Options of pbsSelectBlocks (the same meaning and defaults as in PbsOptions; selector by name only). */
export type PbsSelectOptions = Pick<
  PbsOptions,
  'blockSize' | 'segmentSize' | 'threshold' | 'gqaMode' | 'forceSink' | 'pool' | 'antidiagonalStride' | 'scale' | 'stream'
> & {
  /** 'meanpool' or 'antidiagonal'. Defaults to 'meanpool'. */
  selector?: PbsSelectorName;
};
