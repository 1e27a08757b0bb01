/**
 * Typed description of the attention binding (src/bindings/attention.cc). lib/attention validates every
 * argument before calling these; the native side only re-checks what memory safety depends on.
 */
import type { NativeStorage, NativeStream } from './binding.js';

/** Layout dimensions as the native side reads them (BlockLayoutView in src/ops/common.h). */
export interface NativeLayoutDims {
  layoutBatch: number;
  layoutHeads: number;
  qBlocks: number;
  kBlocks: number;
  maxBlocks: number;
  maskMaxBlocks: number;
  blockSize: number;
}

export interface NativeAttentionTensors {
  q: NativeStorage;
  k: NativeStorage;
  v: NativeStorage;
  out: NativeStorage;
  lse?: NativeStorage;
  fullCnt: NativeStorage;
  fullIdx: NativeStorage;
  maskCnt: NativeStorage;
  maskIdx: NativeStorage;
  keyPerm?: NativeStorage;
}

export interface NativeAttentionParams extends NativeLayoutDims {
  /** DTYPE_ID of q, k, v and out. */
  dtype: number;
  batch: number;
  headsQ: number;
  headsK: number;
  seqQ: number;
  seqK: number;
  headDim: number;
  scale: number;
  causal: boolean;
  /** Heads of keyPerm (headsK or headsQ); only read when keyPerm is given. */
  keyPermHeads?: number;
}

export interface AttentionBinding {
  /** Enqueues the forward pass on the stream (sk::cpu / sk::cuda attention_fwd). */
  attentionForward(stream: NativeStream, tensors: NativeAttentionTensors, params: NativeAttentionParams): void;
  /** check_block_layout_host on host arrays; throws RangeError naming the position. */
  attentionCheckLayout(
    fullCnt: Int32Array,
    fullIdx: Int32Array,
    maskCnt: Int32Array,
    maskIdx: Int32Array,
    params: NativeLayoutDims,
  ): void;
  /** check_key_perm_host on a host array [batch, heads, seqK]; throws RangeError naming the position. */
  attentionCheckKeyPerm(perm: Int32Array, batch: number, heads: number, seqK: number): void;
}
