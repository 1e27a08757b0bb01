/**
 * BlockSparseMatrix: a weight W [M, K] (out x in, nn.Linear's layout) in block-CSR on one device.
 *
 * Storage (src/ops/spmm.h): blocks of bm x bk; Mb = ceil(M / bm) block rows, Kb = ceil(K / bk) block
 * columns; rowPtr int32 [Mb + 1], colIdx int32 [nnzb] (strictly ascending inside a block row), values
 * [nnzb, bm, bk] in the dtype (row-major inside a block; entries outside [M, K] are zero), and rowOrder
 * int32 [Mb], the block rows by nnz descending (the GPU schedules the heavy rows first). rowOrder is
 * computed once, when the matrix is built.
 *
 * A matrix is immutable: builders copy what they are given, and every array is validated on the host
 * before it is uploaded, so malformed block-CSR never reaches a kernel. dispose() frees the device
 * arrays and the dense copy the 'dense' backend may have cached.
 */
import type { Backend } from '../backend.js';
import { Context } from '../context.js';
import { DTYPE_ID, type FloatDType, FLOAT_DTYPES } from '../dtype.js';
import { DisposedError, ShapeError, fromNative } from '../errors.js';
import { checkTensor, commonContext, opStream } from '../internal/op.js';
import type { SpmmBinding } from '../native/spmm.js';
import { nativeOps } from '../native/load.js';
import { Stream } from '../stream.js';
import { Tensor } from '../tensor.js';
import { checkInteger, checkNumber, checkOneOf, checkOptions, invalidType, invalidValue } from '../validate.js';
import {
  BLOCK_SPARSE_FROM_DENSE_DEFAULTS,
  type BlockSparseFromCsrOptions,
  type BlockSparseFromDenseOptions,
  GPU_BLOCK_SIDES,
  type SpmmPlan,
  crossoverDensity,
} from './options.js';

/** Shapes, block sides and N are int32 in the kernels. */
const INT32_MAX = 2 ** 31 - 1;

/** An int32 index array: an Int32Array or an array of integers. */
export type IndexArray = Int32Array | readonly number[];

/** Block values for fromBlockCsr: float32 data, raw 16-bit bits, a Float16Array, or a tensor on the device. */
export type BlockValues = Float32Array | Uint16Array | Tensor | ArrayBufferView;

/** A matrix's block-CSR arrays as host copies (toBlockCsr). */
export interface BlockCsrArrays {
  rowPtr: Int32Array;
  colIdx: Int32Array;
  /** [nnzb * bm * bk]: Float32Array for float32, raw bits (Uint16Array) for float16 / bfloat16. */
  values: Float32Array | Uint16Array;
  /** The block rows by nnz descending (stable): the GPU's schedule. */
  rowOrder: Int32Array;
}

/** @internal The device arrays the kernels read. */
export interface CsrTensors {
  rowPtr: Tensor<'int32'>;
  colIdx: Tensor<'int32'>;
  values: Tensor;
  rowOrder: Tensor<'int32'>;
}

function ceilDiv(a: number, b: number): number {
  return Math.floor((a + b - 1) / b);
}

/** A [rows, cols] pair of int32-range integers (>= lo). */
function checkPair(name: string, v: unknown, lo: number, what: string): [number, number] {
  if (!Array.isArray(v) || v.length !== 2) throw invalidType(name, `a pair [${what}]`, v);
  return [checkInteger(`${name}[0]`, v[0], lo, INT32_MAX), checkInteger(`${name}[1]`, v[1], lo, INT32_MAX)];
}

/** A block shape, with the CUDA restriction on a CUDA context. */
function checkBlockShape(name: string, v: unknown, ctx: Context): [number, number] {
  const [bm, bk] = checkPair(name, v, 1, 'bm, bk');
  if (bm * bk > 1 << 24) throw invalidValue(name, 'a block of at most 2^24 elements', v);
  if (ctx.backend === 'cuda' && !((GPU_BLOCK_SIDES as readonly number[]).includes(bm) && (GPU_BLOCK_SIDES as readonly number[]).includes(bk))) {
    throw invalidValue(name, `[bm, bk] with each side ${GPU_BLOCK_SIDES.join(', ')} on a CUDA context (the CPU takes any sides)`, v);
  }
  return [bm, bk];
}

/** The typed-array kind of `v` whatever realm made it ('Int32Array', ...; '' for anything else). */
function typedKind(v: unknown): string {
  if (!ArrayBuffer.isView(v)) return '';
  const tag = Object.prototype.toString.call(v);
  return tag.slice(8, -1);
}

/**
 * An Int32Array of this realm over the same memory. Arrays made by the native module (or another vm
 * context, e.g. jest's) fail `instanceof` and Tensor.from's type map, although they are Int32Arrays.
 */
function localInt32(v: Int32Array): Int32Array {
  if (v instanceof Int32Array) return v;
  const foreign = v as { buffer: ArrayBuffer; byteOffset: number; length: number };
  return new Int32Array(foreign.buffer, foreign.byteOffset, foreign.length);
}

/** Host copy of an index array as Int32Array, every entry an int32 (TypeError/RangeError naming it). */
function toInt32Array(name: string, v: unknown): Int32Array {
  if (typedKind(v) === 'Int32Array') return localInt32(v as Int32Array).slice();
  if (Array.isArray(v)) {
    const out = new Int32Array(v.length);
    for (let i = 0; i < v.length; i++) {
      const e: unknown = v[i];
      if (typeof e !== 'number' || !Number.isInteger(e)) throw invalidType(`${name}[${i}]`, 'an integer', e);
      if (e < -(2 ** 31) || e > INT32_MAX) throw invalidValue(`${name}[${i}]`, 'an int32', e);
      out[i] = e;
    }
    return out;
  }
  throw invalidType(name, 'an Int32Array or an array of integers', v);
}

/**
 * The host checks of user-given block-CSR, each error naming the position and the value. (The native
 * check_bsr_structure runs after these as a second gate.)
 */
function checkCsr(rowPtr: Int32Array, colIdx: Int32Array, mb: number, kb: number): void {
  if (rowPtr.length !== mb + 1) {
    throw invalidValue('rowPtr', `an array of ceil(M / bm) + 1 = ${mb + 1} entries`, rowPtr);
  }
  if (rowPtr[0] !== 0) throw invalidValue('rowPtr[0]', '0', rowPtr[0]);
  for (let r = 0; r < mb; r++) {
    const a = rowPtr[r]!;
    const b = rowPtr[r + 1]!;
    if (b < a) throw invalidValue(`rowPtr[${r + 1}]`, `a value >= rowPtr[${r}] = ${a} (rowPtr must be non-decreasing)`, b);
    if (b - a > kb) throw invalidValue(`rowPtr[${r + 1}]`, `a value <= rowPtr[${r}] + ${kb} (a block row holds at most ceil(K / bk) = ${kb} blocks)`, b);
  }
  if (rowPtr[mb] !== colIdx.length) {
    throw invalidValue(`rowPtr[${mb}]`, `the number of blocks, colIdx.length = ${colIdx.length}`, rowPtr[mb]);
  }
  for (let r = 0; r < mb; r++) {
    for (let j = rowPtr[r]!; j < rowPtr[r + 1]!; j++) {
      const c = colIdx[j]!;
      if (c < 0 || c >= kb) throw invalidValue(`colIdx[${j}]`, `a block column in [0, ${kb}) (block row ${r})`, c);
      if (j > rowPtr[r]! && c <= colIdx[j - 1]!) {
        const why = c === colIdx[j - 1] ? 'a duplicate block' : 'out of order';
        throw invalidValue(`colIdx[${j}]`, `a block column > colIdx[${j - 1}] = ${colIdx[j - 1]} (block row ${r}: ${why})`, c);
      }
    }
  }
}

export class BlockSparseMatrix {
  /** [M, K]: output features x input features. */
  readonly shape: readonly [number, number];
  /** [bm, bk]. */
  readonly blockShape: readonly [number, number];
  /** Stored blocks (nnzb). */
  readonly nnzBlocks: number;
  readonly dtype: FloatDType;
  readonly context: Context;
  /** @internal */ private _t: CsrTensors | null;
  /** @internal */ private _dense: Tensor | undefined;
  /** @internal */ private readonly _plans = new Map<string, Readonly<SpmmPlan>>();

  /** @internal use BlockSparseMatrix.fromDense / fromBlockCsr. */
  constructor(shape: [number, number], blockShape: [number, number], nnzb: number, dtype: FloatDType, context: Context, t: CsrTensors) {
    this.shape = Object.freeze(shape);
    this.blockShape = Object.freeze(blockShape);
    this.nnzBlocks = nnzb;
    this.dtype = dtype;
    this.context = context;
    this._t = t;
  }

  /** Block rows and block columns [ceil(M / bm), ceil(K / bk)]. */
  get blockGrid(): readonly [number, number] {
    return [ceilDiv(this.shape[0], this.blockShape[0]), ceilDiv(this.shape[1], this.blockShape[1])];
  }

  /** nnzb * bm * bk / (Mp * Kp) with Mp, Kp the block-padded shape; 0 for an empty shape. */
  get density(): number {
    const [mb, kb] = this.blockGrid;
    return mb * kb === 0 ? 0 : this.nnzBlocks / (mb * kb);
  }

  /** True after dispose() (or once its context was disposed). */
  get isDisposed(): boolean {
    return this._t === null || this._t.values.isDisposed;
  }

  /**
   * Builds a block-CSR matrix from a dense W [M, K] (float32 / float16 / bfloat16; values keep their dtype
   * bit for bit). A block is kept when its largest |w| exceeds `tolerance` and, with `sparsity`, it is not
   * among the lowest-L2 blocks pruned. The selection runs as native work on the stream's worker (CUDA:
   * after one device-to-host copy of W): the event loop never waits. Rejects with TypeError / RangeError
   * for bad arguments.
   */
  static async fromDense(w: Tensor, options?: BlockSparseFromDenseOptions): Promise<BlockSparseMatrix> {
    const callSite = new Error();
    const o = checkOptions<BlockSparseFromDenseOptions>('options', options, ['blockShape', 'tolerance', 'sparsity', 'stream']);
    const wt = checkTensor('w', w, { rank: 2, dtypes: FLOAT_DTYPES });
    const ctx = commonContext({ w: wt });
    const [m, k] = wt.dims as [number, number];
    if (m > INT32_MAX || k > INT32_MAX) throw new ShapeError(`Expected w's dims to be at most 2^31 - 1 but they are [${m}, ${k}]`);
    // undefined (only) means the default: null is a value like any other, and is refused.
    const [bm, bk] = checkBlockShape('options.blockShape', o.blockShape === undefined ? BLOCK_SPARSE_FROM_DENSE_DEFAULTS.blockShape : o.blockShape, ctx);
    let tolerance: number = BLOCK_SPARSE_FROM_DENSE_DEFAULTS.tolerance;
    if (o.tolerance !== undefined) {
      tolerance = checkNumber('options.tolerance', o.tolerance, 0);
      // The selection compares in float32: the tolerance must stay finite there.
      if (!Number.isFinite(Math.fround(tolerance))) throw invalidValue('options.tolerance', 'a number representable as a finite float32', o.tolerance);
    }
    const sparsity = o.sparsity === undefined ? -1 : checkNumber('options.sparsity', o.sparsity, 0, 1);
    const stream = opStream(ctx, o.stream);
    const dtype = wt.dtype as FloatDType;
    if (wt._error) throw wt._error;
    let built;
    try {
      built = await nativeOps<SpmmBinding>().spmmFromDense(
        stream._requireNative(),
        { w: wt._storage('w') },
        { dtype: DTYPE_ID[dtype], rows: m, cols: k, bm, bk, tolerance, sparsity },
      );
    } catch (e) {
      throw fromNative(e, callSite);
    }
    const values = dtype === 'float32' ? new Float32Array(built.values) : new Uint16Array(built.values);
    const [rowPtr, colIdx, rowOrder] = [built.rowPtr, built.colIdx, built.rowOrder].map(localInt32) as [Int32Array, Int32Array, Int32Array];
    return BlockSparseMatrix._upload(ctx, stream, [m, k], [bm, bk], dtype, rowPtr, colIdx, rowOrder, values, false);
  }

  /**
   * A matrix from block-CSR arrays (scipy / torch BSR layout): rowPtr [ceil(M / bm) + 1], colIdx [nnzb]
   * (block columns, strictly ascending inside each block row), values [nnzb * bm * bk] (row-major blocks in
   * colIdx order). Everything is validated on the host before anything is uploaded: TypeError /
   * RangeError naming the argument, the position and the value. Entries of blocks that fall outside
   * [M, K] (the padding of the last block row / column) are ignored: the matrix stores zeros there.
   * The arrays are copied (the matrix never sees later changes to them); a values tensor is copied on
   * the device.
   */
  static fromBlockCsr(
    rowPtr: IndexArray,
    colIdx: IndexArray,
    values: BlockValues,
    shape: readonly [number, number],
    blockShape: readonly [number, number],
    options?: BlockSparseFromCsrOptions,
  ): BlockSparseMatrix {
    const o = checkOptions<BlockSparseFromCsrOptions>('options', options, ['dtype', 'context', 'stream']);
    const rp = toInt32Array('rowPtr', rowPtr);
    const ci = toInt32Array('colIdx', colIdx);
    const [m, k] = checkPair('shape', shape, 0, 'M, K');

    // Placement: a values tensor fixes the context; otherwise options.context / options.stream / default.
    let ctx: Context;
    const valuesTensor = values instanceof Tensor ? checkTensor('values', values, { dtypes: FLOAT_DTYPES }) : undefined;
    if (o.context !== undefined && !(o.context instanceof Context)) throw invalidType('options.context', 'a Context', o.context);
    if (o.stream !== undefined && !(o.stream instanceof Stream)) throw invalidType('options.stream', 'a Stream', o.stream);
    if (valuesTensor) {
      ctx = valuesTensor.context;
      if (o.context !== undefined && o.context !== ctx) throw new TypeError(`values is on another context (${ctx.backend}) than options.context (${o.context.backend})`);
    } else {
      ctx = o.context ?? o.stream?.context ?? Context.default;
    }
    ctx._requireNative();
    const stream = opStream(ctx, o.stream);
    const [bm, bk] = checkBlockShape('blockShape', blockShape, ctx);

    // dtype and host values.
    let dtype: FloatDType;
    let hostValues: Float32Array | Uint16Array | undefined;
    if (valuesTensor) {
      dtype = valuesTensor.dtype as FloatDType;
      if (o.dtype !== undefined && checkOneOf('options.dtype', o.dtype, FLOAT_DTYPES) !== dtype) {
        throw new TypeError(`Expected values to have dtype ${o.dtype} (options.dtype) but it is ${dtype}`);
      }
    } else if (typedKind(values) === 'Float32Array') {
      dtype = o.dtype === undefined ? 'float32' : checkOneOf('options.dtype', o.dtype, FLOAT_DTYPES);
      const v = values as Float32Array;
      hostValues = new Float32Array(v.buffer, v.byteOffset, v.length);
    } else if (typedKind(values) === 'Float16Array') {
      const v = values as unknown as ArrayBufferView & { length: number };
      dtype = o.dtype === undefined ? 'float16' : checkOneOf('options.dtype', o.dtype, FLOAT_DTYPES);
      if (dtype !== 'float16') throw invalidValue('options.dtype', '"float16" for Float16Array values', o.dtype);
      hostValues = new Uint16Array(v.buffer, v.byteOffset, v.length);
    } else if (typedKind(values) === 'Uint16Array') {
      if (o.dtype !== 'float16' && o.dtype !== 'bfloat16') {
        throw invalidType('options.dtype', '"float16" or "bfloat16" for Uint16Array values (raw bits)', o.dtype);
      }
      dtype = o.dtype;
      const v = values as Uint16Array;
      hostValues = new Uint16Array(v.buffer, v.byteOffset, v.length);
    } else {
      throw invalidType('values', 'a Float32Array, a Uint16Array (float16 / bfloat16 bits), a Float16Array or a Tensor', values);
    }

    const mb = ceilDiv(m, bm);
    const kb = ceilDiv(k, bk);
    checkCsr(rp, ci, mb, kb);
    const nnzb = ci.length;
    const want = nnzb * bm * bk;
    const have = valuesTensor ? valuesTensor.size : hostValues!.length;
    if (have !== want) {
      const expected = `nnzb * bm * bk = ${nnzb} * ${bm} * ${bk} = ${want} elements`;
      if (valuesTensor) throw new RangeError(`Expected ${expected} for values but received a tensor of ${have} elements`);
      throw invalidValue('values', expected, values);
    }
    // Second gate: the native structure check (the one the kernels' contract names) and the row order.
    let rowOrder: Int32Array;
    try {
      rowOrder = localInt32(nativeOps<SpmmBinding>().spmmCheckStructure(rp, ci, { rows: m, cols: k, bm, bk }));
    } catch (e) {
      throw fromNative(e);
    }
    if (valuesTensor && valuesTensor._error) throw valuesTensor._error;
    const matrix = BlockSparseMatrix._upload(ctx, stream, [m, k], [bm, bk], dtype, rp, ci, rowOrder, valuesTensor ?? hostValues!, true);
    if (nnzb > 0 && (m % bm !== 0 || k % bk !== 0)) {
      // User values may hold anything outside [M, K]; the kernels multiply padded columns by zeros, so
      // an Inf / NaN there would leak into real outputs: zero them in our copy.
      const t = matrix._t!;
      nativeOps<SpmmBinding>().spmmZeroPadding(
        stream._requireNative(),
        { rowPtr: t.rowPtr._storage(), colIdx: t.colIdx._storage(), values: t.values._storage() },
        { dtype: DTYPE_ID[dtype], rows: m, cols: k, bm, bk, nnzb },
      );
    }
    return matrix;
  }

  /** Uploads host arrays (copied) / clones a values tensor on `stream` and wraps them. */
  private static _upload(
    ctx: Context,
    stream: Stream,
    shape: [number, number],
    blockShape: [number, number],
    dtype: FloatDType,
    rowPtr: Int32Array,
    colIdx: Int32Array,
    rowOrder: Int32Array,
    values: Float32Array | Uint16Array | Tensor,
    copyValues: boolean,
  ): BlockSparseMatrix {
    // The index arrays are always our own copies here; host values are copied only when they are the
    // caller's (a large copy is a memcpy on this thread; the builder's own arrays are uploaded in place,
    // read by the stream's worker).
    const place = { context: ctx, stream, copy: false };
    const [bm, bk] = blockShape;
    const nnzb = colIdx.length;
    const t: Partial<CsrTensors> = {};
    try {
      t.rowPtr = Tensor.from(rowPtr, [rowPtr.length], { ...place, dtype: 'int32' });
      t.colIdx = Tensor.from(colIdx, [nnzb], { ...place, dtype: 'int32' });
      t.rowOrder = Tensor.from(rowOrder, [rowOrder.length], { ...place, dtype: 'int32' });
      if (values instanceof Tensor) {
        // A device copy: the caller may dispose or overwrite (as some op's `out`) its tensor later.
        const copy = values.clone({ stream });
        t.values = copy.reshape([nnzb, bm, bk]);
        copy.dispose();
      } else {
        t.values = Tensor.from(values, [nnzb, bm, bk], { ...place, dtype, copy: copyValues });
      }
    } catch (e) {
      for (const x of Object.values(t)) x.dispose();
      throw e;
    }
    return new BlockSparseMatrix(shape, blockShape, nnzb, dtype, ctx, t as CsrTensors);
  }

  /** @internal the device arrays, or DisposedError */
  _tensors(name = 'w'): CsrTensors {
    if (this.isDisposed) throw new DisposedError(`${name} was disposed`);
    return this._t!;
  }

  /**
   * @internal The dense copy of W the 'dense' backend multiplies with, materialised on first use (enqueued
   * on `stream`) and cached until dispose(). A failed materialisation (out of memory) is retried next time.
   */
  _denseWeight(stream: Stream): Tensor {
    if (this._dense && !this._dense.isDisposed && !this._dense._error) return this._dense;
    this._dense?.dispose();
    this._dense = this.toDense({ stream });
    return this._dense;
  }

  /** Whether the dense copy for the 'dense' backend is currently cached (it costs M x K elements). */
  get hasDenseCache(): boolean {
    return this._dense !== undefined && !this._dense.isDisposed && !this._dense._error;
  }

  /** W as a dense tensor [M, K] in the matrix's dtype (zeros outside the stored blocks), in stream order. */
  toDense(options?: { stream?: Stream }): Tensor {
    const o = checkOptions<{ stream?: Stream }>('options', options, ['stream']);
    const t = this._tensors('this matrix');
    const stream = opStream(this.context, o.stream);
    const [m, k] = this.shape;
    const out = Tensor._allocate([m, k], this.dtype, this.context, stream);
    const failed = [t.rowPtr, t.colIdx, t.values].find((x) => x._error)?._error;
    if (failed || out._error) {
      if (failed) {
        out._ref?.release();
        out._ref = null;
        out._error = failed;
      }
      return out;
    }
    const [bm, bk] = this.blockShape;
    try {
      nativeOps<SpmmBinding>().spmmToDense(
        stream._requireNative(),
        { rowPtr: t.rowPtr._storage(), colIdx: t.colIdx._storage(), values: t.values._storage(), out: out._storage() },
        { dtype: DTYPE_ID[this.dtype], rows: m, cols: k, bm, bk, nnzb: this.nnzBlocks },
      );
    } catch (e) {
      out.dispose();
      throw fromNative(e);
    }
    return out;
  }

  /** Host copies of the block-CSR arrays (for inspection, serialisation or another library). */
  async toBlockCsr(options?: { stream?: Stream }): Promise<BlockCsrArrays> {
    const o = checkOptions<{ stream?: Stream }>('options', options, ['stream']);
    const t = this._tensors('this matrix');
    const stream = opStream(this.context, o.stream);
    const [rowPtr, colIdx, values, rowOrder] = await Promise.all([
      t.rowPtr.toArray({ stream }),
      t.colIdx.toArray({ stream }),
      t.values.toArray({ stream }),
      t.rowOrder.toArray({ stream }),
    ]);
    return { rowPtr, colIdx, values: values as Float32Array | Uint16Array, rowOrder };
  }

  /**
   * The cached dispatch decision of `backend: 'auto'` for N rows of X (one plan per N bucket, dtype and
   * device): sparse when the density is at most the measured crossover (SPMM_CROSSOVER).
   */
  plan(n: number): Readonly<SpmmPlan> {
    checkInteger('n', n, 0, INT32_MAX);
    this._tensors('this matrix');
    const nBucket = n <= 1 ? 1 : Math.min(4096, 2 ** Math.ceil(Math.log2(n)));
    const device: Backend = this.context.backend;
    const key = `${nBucket}:${this.dtype}:${device}:${this.context.deviceIndex}`;
    let p = this._plans.get(key);
    if (p === undefined) {
      const threshold = crossoverDensity(device, this.dtype, this.blockShape[0], this.blockShape[1], nBucket);
      const density = this.density;
      p = Object.freeze({
        backend: density <= threshold ? 'sparse' : 'dense',
        nBucket,
        dtype: this.dtype,
        device,
        deviceIndex: this.context.deviceIndex,
        density,
        threshold,
      } as const);
      this._plans.set(key, p);
    }
    return p;
  }

  /** Frees the device arrays and the dense cache. Idempotent; using the matrix afterwards throws DisposedError. */
  dispose(): void {
    if (this._t) {
      this._t.rowPtr.dispose();
      this._t.colIdx.dispose();
      this._t.values.dispose();
      this._t.rowOrder.dispose();
      this._t = null;
    }
    this._dense?.dispose();
    this._dense = undefined;
    this._plans.clear();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  toString(): string {
    const [m, k] = this.shape;
    const [bm, bk] = this.blockShape;
    return `BlockSparseMatrix(${this.dtype}, [${m}, ${k}], blocks ${bm}x${bk}, ${this.nnzBlocks} stored, density ${this.density.toFixed(4)}, ${this.isDisposed ? 'disposed' : this.context.backend})`;
  }
}
