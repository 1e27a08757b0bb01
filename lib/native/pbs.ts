/**
 * Typed description of the PBS binding (src/bindings/pbs.cc). lib/pbs validates every argument before
 * calling it; the native side only re-checks what memory safety depends on.
 */
import type { NativeStorage, NativeStream } from './binding.js';

/** Stage bits of NativePbsParams.stages (src/bindings/pbs.cc keeps the same numbers). */
export const PBS_STAGE = Object.freeze({
  /** q, k -> scores (key-importance proxy). */
  proxy: 1,
  /** scores -> perm, invPerm (segmented stable argsort). */
  permute: 2,
  /** q, k, perm, invPerm -> layout, keptBlocks (pooling for meanpool, then the selector). */
  select: 4,
  /** q, k, v, layout, perm -> out, lse (the sparse attention kernel). */
  attention: 8,
  /** A caller's perm -> invPerm, after a host check that it only reorders keys inside segments. */
  invert: 16,
  /** The identity permutation (zero scores through the permute stage); attention without a gather. */
  identity: 32,
});

/** Enum values of src/ops/pbs.h. */
export const PBS_GQA_MODE_ID = Object.freeze({ shared: 0, perQueryHead: 1 });
export const PBS_POOL_ID = Object.freeze({ mean: 0, max: 1 });
export const PBS_SELECTOR_ID = Object.freeze({ meanpool: 0, antidiagonal: 1 });

export interface NativePbsTensors {
  q?: NativeStorage;
  k?: NativeStorage;
  v?: NativeStorage;
  out?: NativeStorage;
  lse?: NativeStorage;
  scores?: NativeStorage;
  perm?: NativeStorage;
  invPerm?: NativeStorage;
  qbar?: NativeStorage;
  kbar?: NativeStorage;
  fullCnt?: NativeStorage;
  fullIdx?: NativeStorage;
  maskCnt?: NativeStorage;
  maskIdx?: NativeStorage;
  keptBlocks?: NativeStorage;
}

export interface NativePbsParams {
  /** Bitwise or of PBS_STAGE values, run in the order invert, identity | proxy, permute, select, attention. */
  stages: number;
  /** Resolve a promise with the stage times (ms: proxy, permute, pool, select, attention). */
  timing: boolean;
  /** DTYPE_ID of q, k, v, out. */
  dtype: number;
  batch: number;
  headsQ: number;
  headsK: number;
  seqLen: number;
  headDim: number;
  blockSize: number;
  segmentSize: number;
  threshold: number;
  /** 0 = 1 / sqrt(headDim). */
  scale: number;
  gqaMode: number;
  /** 0 = blockSize. */
  proxyRows: number;
  proxyCausal: boolean;
  forceSink: boolean;
  pool: number;
  selector: number;
  antidiagStride: number;
}

export interface PbsBinding {
  /**
   * Enqueues the stages as one task. Returns undefined, or with `timing` a promise of the stage times
   * [proxy, permute, pool, select, attention] in milliseconds (it rejects when the task fails).
   */
  pbsRun(stream: NativeStream, tensors: NativePbsTensors, params: NativePbsParams): Promise<Float64Array> | undefined;
}
