/**
 * Typed description of the SpMM binding (src/bindings/spmm.cc). lib/spmm validates every argument before
 * calling these; the native side only re-checks what memory safety depends on.
 */
import type { NativeStorage, NativeStream } from './binding.js';

/** The block-CSR header as the native side reads it (BlockCsrView in src/ops/spmm.h). */
export interface NativeCsrDims {
  /** M, K: the logical (unpadded) weight shape. */
  rows: number;
  cols: number;
  bm: number;
  bk: number;
  nnzb: number;
}

export interface NativeCsrTensors {
  rowPtr: NativeStorage;
  colIdx: NativeStorage;
  values: NativeStorage;
}

export interface NativeSpmmParams extends NativeCsrDims {
  /** DTYPE_ID of x, values, bias and y. */
  dtype: number;
  /** sk::Activation id: 0 none, 1 relu, 2 gelu, 3 silu. */
  activation: number;
  /** Rows of x and y. */
  n: number;
}

export interface NativeDenseLinearParams {
  dtype: number;
  activation: number;
  n: number;
  m: number;
  k: number;
}

export interface NativeFromDenseParams {
  dtype: number;
  rows: number;
  cols: number;
  bm: number;
  bk: number;
  /** Keep blocks with max |w| > tolerance. */
  tolerance: number;
  /** Fraction of blocks to drop by L2 norm; < 0: no pruning. */
  sparsity: number;
}

/** What spmmFromDense resolves with: host arrays of the new block-CSR matrix. */
export interface NativeBuiltCsr {
  nnzb: number;
  rowPtr: Int32Array;
  colIdx: Int32Array;
  rowOrder: Int32Array;
  /** [nnzb, bm, bk] in the dtype (raw bits for 16-bit types). */
  values: ArrayBuffer;
}

export interface SpmmBinding {
  spmmForward(
    stream: NativeStream,
    tensors: NativeCsrTensors & { x: NativeStorage; y: NativeStorage; bias?: NativeStorage; rowOrder?: NativeStorage },
    params: NativeSpmmParams,
  ): void;
  spmmDenseForward(
    stream: NativeStream,
    tensors: { x: NativeStorage; w: NativeStorage; y: NativeStorage; bias?: NativeStorage },
    params: NativeDenseLinearParams,
  ): void;
  spmmFromDense(stream: NativeStream, tensors: { w: NativeStorage }, params: NativeFromDenseParams): Promise<NativeBuiltCsr>;
  spmmToDense(stream: NativeStream, tensors: NativeCsrTensors & { out: NativeStorage }, params: NativeCsrDims & { dtype: number }): void;
  spmmZeroPadding(stream: NativeStream, tensors: NativeCsrTensors, params: NativeCsrDims & { dtype: number }): void;
  /** check_bsr_structure on host arrays (RangeError naming the position), then the nnz-descending row order. */
  spmmCheckStructure(rowPtr: Int32Array, colIdx: Int32Array, params: Omit<NativeCsrDims, 'nnzb'>): Int32Array;
}
