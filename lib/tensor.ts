/**
 * Tensor: a dense, contiguous, row-major array on one device (onnxruntime-node style: `dtype`, `dims`,
 * `location`, async data access, `dispose()`; `using t = ...` works through Symbol.dispose).
 *
 * Creation and ops return at once; the data is produced in stream order. `await t.toArray()` waits
 * without blocking the event loop and rejects with the error of a failed producer (e.g. ERR_OUT_OF_MEMORY,
 * ERR_CUDA). Memory is freed by `dispose()` or, failing that, by the garbage collector (the finalizer
 * only enqueues the free).
 */
import { Context } from './context.js';
import {
  type AnyTypedArray,
  type DType,
  DTYPE_ARRAY,
  DTYPE_BYTES,
  DTYPE_ID,
  DTYPES,
  type TypedArrayOf,
  isFloatDType,
} from './dtype.js';
import { DisposedError, SparseKernelsError, fromNative } from './errors.js';
import type { NativeStorage } from './native/binding.js';
import { Stream } from './stream.js';
import { checkBoolean, checkDims, checkOneOf, checkOptions, describe, invalidType, invalidValue } from './validate.js';

export type TensorLocation = 'cpu' | 'cuda' | 'none';

export interface TensorOptions {
  /** Element type. Defaults to the data's type (Float32Array -> float32, Int32Array -> int32, ...;
   * plain arrays -> float32). Uint16Array data needs an explicit "float16" or "bfloat16". */
  dtype?: DType;
  /** Device context. Defaults to `Context.default`. */
  context?: Context;
  /** Stream the upload is ordered on. Defaults to the context's default stream. */
  stream?: Stream;
  /**
   * Copy `data` synchronously. By default arrays over 1 MiB are read asynchronously, when the upload
   * runs: do not modify them until the tensor has been used (or `await tensor.toArray()`).
   * Defaults to false.
   */
  copy?: boolean;
}

export interface EmptyOptions {
  /** Defaults to "float32". */
  dtype?: DType;
  context?: Context;
  stream?: Stream;
}

/** Reference-counted native storage shared by a tensor and its reshaped views. */
class StorageRef {
  refs = 1;
  /** Objects that live exactly as long as this memory (Tensor._attach). */
  attached: Array<{ dispose(): void }> | undefined;
  constructor(public native: NativeStorage | null) {}
  release(): void {
    if (--this.refs === 0 && this.native) {
      this.native.dispose();
      this.native = null;
      const a = this.attached;
      this.attached = undefined;
      if (a) for (const d of a) d.dispose();
    }
  }
}

const finalizer = new FinalizationRegistry<{ ctx: Context; ref: WeakRef<{ dispose(): void }> }>(({ ctx, ref }) =>
  ctx._untrack(ref),
);

const TYPED_DTYPE = new Map<Function, DType>([
  [Float32Array, 'float32'],
  [Int32Array, 'int32'],
  [Int8Array, 'int8'],
  [Uint8Array, 'uint8'],
]);

const Float16ArrayCtor = (globalThis as { Float16Array?: Function }).Float16Array;

export class Tensor<T extends DType = DType> {
  readonly dtype: T;
  readonly dims: readonly number[];
  /** Number of elements. */
  readonly size: number;
  readonly context: Context;
  /** @internal */ _ref: StorageRef | null;
  /** @internal the stream that owns the allocation (frees are ordered on it) */ readonly _home: Stream;
  /** @internal set when the allocation itself failed */ _error?: Error;
  /** @internal */ private _tracked?: WeakRef<{ dispose(): void }>;

  /** @internal use Tensor.from / empty / zeros, or an op. */
  constructor(dtype: T, dims: readonly number[], context: Context, home: Stream, ref: StorageRef | null, error?: Error) {
    this.dtype = dtype;
    this.dims = Object.freeze(dims.slice());
    this.size = dims.reduce((a, b) => a * b, 1);
    this.context = context;
    this._home = home;
    this._ref = ref;
    if (error) this._error = error;
    this._tracked = context._track(this);
    finalizer.register(this, { ctx: context, ref: this._tracked }, this);
  }

  /** Where the data lives; "none" once disposed. */
  get location(): TensorLocation {
    if (this._ref === null && !this._error) return 'none';
    return this.context.backend;
  }

  get isDisposed(): boolean {
    return this._ref === null && !this._error;
  }

  get rank(): number {
    return this.dims.length;
  }

  get byteLength(): number {
    return this.size * DTYPE_BYTES[this.dtype];
  }

  /** @internal the native storage, or throws DisposedError */
  _storage(name = 'tensor'): NativeStorage {
    if (this._ref?.native == null) {
      if (this._error) throw this._error;
      throw new DisposedError(`${name} was disposed`);
    }
    return this._ref.native;
  }

  /**
   * Allocates a tensor without initialising it (contents are unspecified). Ops use this for outputs.
   * An allocation failure does not throw: the tensor carries the error, its promises reject with it.
   */
  static empty<D extends DType = 'float32'>(dims: readonly number[], options?: EmptyOptions & { dtype?: D }): Tensor<D> {
    const o = checkOptions<EmptyOptions>('options', options, ['dtype', 'context', 'stream']);
    const shape = checkDims('dims', dims);
    const dtype = (o.dtype === undefined ? 'float32' : checkOneOf('options.dtype', o.dtype, DTYPES)) as D;
    const { context, stream } = resolvePlacement(o.context, o.stream);
    return Tensor._allocate(shape, dtype, context, stream);
  }

  /** A tensor filled with zeros. */
  static zeros<D extends DType = 'float32'>(dims: readonly number[], options?: EmptyOptions & { dtype?: D }): Tensor<D> {
    const t = Tensor.empty<D>(dims, options);
    if (t._ref?.native) t._ref.native.fill(t._home._requireNative(), 0);
    return t;
  }

  /**
   * A tensor holding `data` (copied to the device in stream order). `dims` defaults to `[data.length]`.
   * float16/bfloat16 tensors accept Float32Array or number[] (rounded to nearest even), raw bits as
   * Uint16Array, or a Float16Array.
   */
  static from<D extends DType = DType>(
    data: ArrayLike<number> | AnyTypedArray,
    dims?: readonly number[],
    options?: TensorOptions & { dtype?: D },
  ): Tensor<D> {
    const o = checkOptions<TensorOptions>('options', options, ['dtype', 'context', 'stream', 'copy']);
    const copy = o.copy === undefined ? false : checkBoolean('options.copy', o.copy);
    // The dtype is checked before the data is read: normaliseData indexes its tables by it.
    const dtypeOpt = o.dtype === undefined ? undefined : checkOneOf('options.dtype', o.dtype, DTYPES);
    const { src, srcType } = normaliseData(data, dtypeOpt);
    const dtype = (dtypeOpt ?? inferDType(data, srcType)) as D;
    if (srcType !== dtype && !(isFloatDType(srcType) && isFloatDType(dtype))) {
      throw invalidType('data', `an array of ${dtype} values`, data);
    }
    const shape = dims === undefined ? [src.length] : checkDims('dims', dims);
    const size = shape.reduce((a, b) => a * b, 1);
    if (size !== src.length) {
      throw invalidValue('dims', `a shape with ${src.length} elements (the data length)`, shape);
    }
    const { context, stream } = resolvePlacement(o.context, o.stream);
    const t = Tensor._allocate(shape, dtype, context, stream);
    const nativeStorage = t._ref?.native;
    if (nativeStorage && size > 0) {
      const view = copy ? src.slice() : src;
      nativeStorage.upload(stream._requireNative(), view, DTYPE_ID[srcType], DTYPE_ID[dtype], size);
    }
    return t;
  }

  /** @internal allocation shared by empty/from and the ops */
  static _allocate<D extends DType>(dims: readonly number[], dtype: D, context: Context, stream: Stream): Tensor<D> {
    const bytes = dims.reduce((a, b) => a * b, 1) * DTYPE_BYTES[dtype];
    try {
      const nativeStorage = context._requireNative().allocate(bytes, stream._requireNative());
      return new Tensor(dtype, dims, context, stream, new StorageRef(nativeStorage));
    } catch (e) {
      const err = fromNative(e, new Error());
      if (!(err instanceof SparseKernelsError) || err.code !== 'ERR_OUT_OF_MEMORY') throw err;
      // Out of memory is reported through the tensor's promises and the next synchronize(), like a
      // failure of any later stage, so callers handle one error path.
      stream._recordError(err);
      return new Tensor(dtype, dims, context, stream, null, err);
    }
  }

  /**
   * Copies the data to a new typed array (Float32Array, Uint16Array for float16/bfloat16 bits,
   * Int32Array, Int8Array, Uint8Array). Resolves in stream order; never blocks the event loop.
   */
  async toArray(options?: { stream?: Stream }): Promise<TypedArrayOf<T>> {
    const callSite = new Error();
    const ab = await this._download(this.dtype, this._streamOption(options), callSite);
    return new DTYPE_ARRAY[this.dtype](ab, 0, this.size) as TypedArrayOf<T>;
  }

  /** Like toArray(), converting float16/bfloat16 to float32 on the way. Float tensors only. */
  async toFloat32Array(options?: { stream?: Stream }): Promise<Float32Array> {
    const callSite = new Error();
    if (!isFloatDType(this.dtype)) throw new TypeError(`toFloat32Array() needs a float tensor, this one is ${this.dtype}`);
    const ab = await this._download('float32', this._streamOption(options), callSite);
    return new Float32Array(ab, 0, this.size);
  }

  /** @internal */
  private async _download(target: DType, stream: Stream | undefined, callSite: Error): Promise<ArrayBuffer> {
    if (this._error) throw this._error;
    const s = stream ?? this._home;
    const storage = this._storage();
    try {
      return await storage.download(s._requireNative(), DTYPE_ID[this.dtype], DTYPE_ID[target], this.size);
    } catch (e) {
      throw fromNative(e, callSite);
    }
  }

  /** A new tensor with the same data converted to `dtype` (float types), computed in stream order. */
  cast<D extends DType>(dtype: D, options?: { stream?: Stream }): Tensor<D> {
    checkOneOf('dtype', dtype, DTYPES);
    if (!isFloatDType(dtype) || !isFloatDType(this.dtype)) {
      if (dtype !== (this.dtype as DType)) throw invalidValue('dtype', 'a float dtype (casts convert between float types)', dtype);
    }
    const stream = this._streamOption(options) ?? this._home;
    if (this._error) return new Tensor(dtype, this.dims, this.context, stream, null, this._error);
    const src = this._storage();
    const out = Tensor._allocate(this.dims, dtype, this.context, stream);
    out._ref?.native?.convertFrom(stream._requireNative(), src, DTYPE_ID[this.dtype], DTYPE_ID[dtype], this.size);
    return out;
  }

  /** A new tensor with a copy of the data. */
  clone(options?: { stream?: Stream }): Tensor<T> {
    const stream = this._streamOption(options) ?? this._home;
    if (this._error) return new Tensor(this.dtype, this.dims, this.context, stream, null, this._error);
    const src = this._storage();
    const out = Tensor._allocate(this.dims, this.dtype, this.context, stream);
    out._ref?.native?.copyFrom(stream._requireNative(), src, this.byteLength);
    return out;
  }

  /**
   * @internal Ties `d` to this tensor's memory: `d` is disposed when the last view of the memory is disposed
   * (a derived buffer, such as the inverse of a permutation, then goes with it instead of waiting for the
   * garbage collector). Returns false, attaching nothing, when the tensor holds no memory.
   */
  _attach(d: { dispose(): void }): boolean {
    if (this._ref?.native == null) return false;
    (this._ref.attached ??= []).push(d);
    return true;
  }

  /**
   * @internal `{ stream }` of toArray / toFloat32Array / cast / clone: a live Stream of this tensor's context,
   * or undefined (the caller's default). Checked here so that a wrong value is a TypeError / RangeError naming
   * it, not a failure inside the native call.
   */
  _streamOption(options: unknown): Stream | undefined {
    const o = checkOptions<{ stream?: Stream }>('options', options, ['stream']);
    if (o.stream === undefined) return undefined;
    if (!(o.stream instanceof Stream)) throw invalidType('options.stream', 'a Stream', o.stream);
    if (o.stream.context !== this.context) throw invalidValue('options.stream', "a stream of the tensor's context", o.stream);
    o.stream._requireNative();
    return o.stream;
  }

  /** A view with other dims and the same data (no copy); disposing either keeps the other valid. */
  reshape(dims: readonly number[]): Tensor<T> {
    const shape = checkDims('dims', dims);
    const size = shape.reduce((a, b) => a * b, 1);
    if (size !== this.size) throw invalidValue('dims', `a shape with ${this.size} elements`, shape);
    if (this._error) return new Tensor(this.dtype, shape, this.context, this._home, null, this._error);
    this._storage();
    const ref = this._ref!;
    ref.refs++;
    return new Tensor(this.dtype, shape, this.context, this._home, ref);
  }

  /**
   * Releases the memory (a CUDA free is enqueued on the tensor's stream, after any op still using it).
   * The tensor's location becomes "none"; using it throws DisposedError. Idempotent.
   */
  dispose(): void {
    if (this._ref) {
      this._ref.release();
      this._ref = null;
    }
    if (this._error) delete this._error;
    if (this._tracked) {
      this.context._untrack(this._tracked);
      finalizer.unregister(this);
      delete this._tracked;
    }
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  toString(): string {
    return `Tensor(${this.dtype}, [${this.dims.join(', ')}], ${this.location})`;
  }
}

function resolvePlacement(context: unknown, stream: unknown): { context: Context; stream: Stream } {
  if (stream !== undefined) {
    if (!(stream instanceof Stream)) throw invalidType('options.stream', 'a Stream', stream);
    const s = stream;
    if (context !== undefined && context !== s.context) {
      throw invalidValue('options.stream', 'a stream of options.context', stream);
    }
    s._requireNative();
    return { context: s.context, stream: s };
  }
  if (context !== undefined && !(context instanceof Context)) throw invalidType('options.context', 'a Context', context);
  const ctx = (context as Context | undefined) ?? Context.default;
  ctx._requireNative();
  return { context: ctx, stream: ctx.stream };
}

/** Maps user data to a typed array and its element type. */
function normaliseData(data: unknown, dtype: DType | undefined): { src: AnyTypedArray; srcType: DType } {
  if (Float16ArrayCtor && data instanceof Float16ArrayCtor) {
    const v = data as unknown as ArrayBufferView & { length: number };
    return { src: new Uint16Array(v.buffer, v.byteOffset, v.length), srcType: 'float16' };
  }
  if (ArrayBuffer.isView(data) && !(data instanceof DataView)) {
    if (data instanceof Uint16Array) {
      if (dtype !== 'float16' && dtype !== 'bfloat16') {
        throw invalidType('options.dtype', '"float16" or "bfloat16" for Uint16Array data (raw bits)', dtype);
      }
      return { src: data, srcType: dtype };
    }
    const t = TYPED_DTYPE.get(data.constructor);
    if (t === undefined) throw invalidType('data', 'a Float32Array, Int32Array, Int8Array, Uint8Array or Uint16Array', data);
    return { src: data as AnyTypedArray, srcType: t };
  }
  if (Array.isArray(data)) {
    if (dtype === undefined || isFloatDType(dtype)) {
      data.forEach((v, i) => {
        if (typeof v !== 'number') throw invalidType(`data[${i}]`, 'a number', v);
      });
      return { src: Float32Array.from(data as number[]), srcType: 'float32' };
    }
    const Ctor = DTYPE_ARRAY[dtype] as unknown as { from(a: number[]): AnyTypedArray };
    const lim: Record<string, [number, number]> = { int32: [-(2 ** 31), 2 ** 31 - 1], int8: [-128, 127], uint8: [0, 255] };
    const [lo, hi] = lim[dtype]!;
    data.forEach((v, i) => {
      if (!Number.isInteger(v) || v < lo || v > hi) throw invalidValue(`data[${i}]`, `an integer in the ${dtype} range`, v);
    });
    return { src: Ctor.from(data as number[]), srcType: dtype };
  }
  throw invalidType('data', 'a typed array or an array of numbers', data);
}

function inferDType(data: unknown, srcType: DType): DType {
  void data;
  return srcType;
}

export { describe as _describe };
