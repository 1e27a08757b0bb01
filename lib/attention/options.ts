/**
 * Options of blockSparseAttention and of the BlockLayout builders, with their frozen defaults (the README
 * API table is generated from these).
 */
import type { Stream } from '../stream.js';
import type { Tensor } from '../tensor.js';

/** Layout block sizes the kernels are built for (tokens per query block and per key block). */
export const LAYOUT_BLOCK_SIZES = [64, 128] as const;
export type LayoutBlockSize = (typeof LAYOUT_BLOCK_SIZES)[number];

export interface AttentionOptions {
  /**
   * Causal masking (query i sees keys j <= i) inside the layout's *masked* blocks. It must equal the
   * `causal` the layout was built with: a causal layout lists only blocks at or below the diagonal and
   * marks the diagonal block masked, so running it non-causally (or the reverse) would silently compute
   * something else. Causal attention needs equal query and key lengths. Defaults to true.
   */
  causal?: boolean;
  /** Softmax scale applied to q.k; finite and > 0. Defaults to 1 / sqrt(headDim). */
  scale?: number;
  /**
   * Also return the log-sum-exp of each query row, float32 [batch, Hq, N], natural log, scale included
   * (FlashAttention's convention: chunked results merge as out = sum_c exp(lse_c - lse) out_c). A row
   * with no kept key has lse = -Infinity and out = 0. Defaults to false.
   */
  returnLse?: boolean;
  /** Stream to run on (of the tensors' context). Defaults to the context's default stream. */
  stream?: Stream;
}

/** `scale: undefined` stands for 1 / sqrt(headDim). */
export const ATTENTION_DEFAULTS = Object.freeze({
  causal: true,
  scale: undefined as number | undefined,
  returnLse: false,
});

/**
 * @internal Options of the internal entry point used by the PBS op: AttentionOptions plus a key
 * permutation (key slot j of K/V reads row keyPermutation[b, hp, j]; masked blocks keep key slot j for
 * query i when keyPermutation[b, hp, j] <= i). Trusted: values are not checked (the kernels clamp them).
 */
export interface InternalAttentionOptions extends AttentionOptions {
  /** int32 [batch, Hk or Hq, keyLength] on the tensors' context. Defaults to none (identity). */
  keyPermutation?: Tensor;
}

export interface DenseCausalLayoutOptions {
  /** Sequence length (queries and keys). Required. */
  seqLen: number;
  /** Tokens per block: 64 or 128. Defaults to 128. */
  blockSize?: LayoutBlockSize;
}

export interface DenseLayoutOptions {
  /** Number of queries. Required. */
  queryLength: number;
  /** Number of keys. Defaults to queryLength. */
  keyLength?: number;
  /** Tokens per block: 64 or 128. Defaults to 128. */
  blockSize?: LayoutBlockSize;
}

export interface SlidingWindowLayoutOptions {
  /** Sequence length (queries and keys). Required. */
  seqLen: number;
  /**
   * Key blocks each query block keeps ending at its own (diagonal) block: the diagonal block and the
   * windowBlocks - 1 blocks before it. Block-granular: every query of a block sees the same key blocks
   * (with the causal token mask inside the diagonal block). Required, >= 1.
   */
  windowBlocks: number;
  /** Leading key blocks every query block keeps ("attention sinks"). Defaults to 0. */
  sinkBlocks?: number;
  /** Tokens per block: 64 or 128. Defaults to 128. */
  blockSize?: LayoutBlockSize;
}

export interface BlockLayoutOptions {
  /** Batch dimension of the layout: 1 (shared by every batch element) or the batch size. Defaults to 1. */
  batch?: number;
  /** Head dimension of the layout: 1 (shared by every query head) or Hq. Defaults to 1. */
  heads?: number;
  /** Number of queries. Required. */
  queryLength: number;
  /** Number of keys. Defaults to queryLength. */
  keyLength?: number;
  /** Tokens per block: 64 or 128. Defaults to 128. */
  blockSize?: LayoutBlockSize;
  /**
   * Whether the layout is causal (needs queryLength == keyLength). fromBlockMask drops blocks above the
   * diagonal and marks the diagonal block masked; fromLists requires every full block to lie strictly
   * below the diagonal and lets masked blocks lie anywhere (without a key permutation a masked block
   * above the diagonal contributes nothing; with one, as PBS uses, it can hold earlier keys).
   * Defaults to true.
   */
  causal?: boolean;
}

export const BLOCK_LAYOUT_DEFAULTS = Object.freeze({
  batch: 1,
  heads: 1,
  blockSize: 128 as LayoutBlockSize,
  causal: true,
  sinkBlocks: 0,
});
