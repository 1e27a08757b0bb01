/**
 * DeltaState: the per-stream memory of a DeltaLinear layer for S streams, resident on the layer's device
 * (layout: src/ops/delta.h). Per stream: the last transmitted input x_ref (two buffers, the GPU ping-pongs
 * between them), the accumulator y_acc = W x_ref + b (float32), whether it is initialised, steps since the
 * last (re)initialisation, and statistics (inputs fired, steps). CUDA states also hold split-K counters
 * that every step leaves at zero.
 *
 * Steps on one state are ordered: each step reads and writes every state buffer, and the runtime orders
 * tasks through the storages they touch, so steps enqueued on different streams still run one after
 * another, in program order. A state belongs to the layer that created it.
 */
import type { Context } from '../context.js';
import { DisposedError, ShapeError } from '../errors.js';
import { checkTensor, opStream, runOp, storages } from '../internal/op.js';
import type { DeltaBinding, NativeDeltaStateSizes, NativeDeltaStateTensors } from '../native/delta.js';
import { nativeOps } from '../native/load.js';
import type { Stream } from '../stream.js';
import { Tensor } from '../tensor.js';
import { invalidType, invalidValue, isInteger } from '../validate.js';
import type { DeltaLinear } from './index.js';

/** @internal the state's device buffers (`sync` on CUDA only). */
export interface DeltaStateBuffers {
  xRef: Tensor<'float32'>;
  yAcc: Tensor<'float32'>;
  initialized: Tensor<'uint8'>;
  steps: Tensor<'int32'>;
  parity: Tensor<'uint8'>;
  /** int64 [S, 2] carried as int32 pairs (little-endian): fired inputs, steps. */
  stats: Tensor<'int32'>;
  sync?: Tensor<'int32'>;
}

/** What `DeltaState.read()` returns (host copies, for monitoring, debugging and tests). */
export interface DeltaStateContents {
  /** The current reference x_ref of every stream, float32 [S, K] row-major. */
  xRef: Float32Array;
  /** The accumulator y_acc = W x_ref + b of every stream, float32 [S, M] row-major. */
  yAcc: Float32Array;
  /** 1 where the stream is initialised (its next step is a delta step unless a refresh is due). */
  initialized: Uint8Array;
  /** Delta steps since each stream's last (re)initialisation. */
  steps: Int32Array;
  /** Per stream: inputs fired over all steps (K for each initialising step). */
  activeTotal: Float64Array;
  /** Per stream: steps taken, initialising ones included. */
  stepsTotal: Float64Array;
}

/** Per-stream statistics (`DeltaState.stats()`). */
export interface DeltaStats {
  /** Inputs fired over all steps (K counted for each initialising step). */
  activeTotal: Float64Array;
  /** Steps taken, initialising ones included. */
  steps: Float64Array;
  /** activeTotal / (steps * K): the temporal density (NaN for a stream that never stepped or K = 0). */
  density: Float64Array;
}

/** Host check of stream ids given as an array: integers in [0, S), optionally unique. */
export function checkStreamIdArray(name: string, ids: unknown, S: number, unique: boolean): Int32Array {
  if (!(ids instanceof Int32Array) && !Array.isArray(ids)) throw invalidType(name, 'an Int32Array, a number[] or an int32 Tensor', ids);
  const out = new Int32Array(ids.length);
  const seen = unique ? new Uint8Array(S) : undefined;
  for (let i = 0; i < ids.length; i++) {
    const v = (ids as ArrayLike<unknown>)[i];
    if (!isInteger(v)) throw invalidType(`${name}[${i}]`, 'an integer', v);
    if (v < 0 || v >= S) throw invalidValue(`${name}[${i}]`, `a stream id in [0, ${S}) (the state's streams)`, v);
    if (seen) {
      if (seen[v]) throw invalidValue(`${name}[${i}]`, `a stream id not listed before (ids of one step must be unique)`, v);
      seen[v] = 1;
    }
    out[i] = v;
  }
  return out;
}

function int64Pairs(words: Int32Array, n: number): { a: Float64Array; b: Float64Array } {
  // stats is int64 [S, 2]: words (lo, hi) per value; counts stay far below 2^53.
  const a = new Float64Array(n);
  const b = new Float64Array(n);
  for (let s = 0; s < n; s++) {
    a[s] = (words[4 * s + 1]! * 4294967296) + (words[4 * s]! >>> 0);
    b[s] = (words[4 * s + 3]! * 4294967296) + (words[4 * s + 2]! >>> 0);
  }
  return { a, b };
}

export class DeltaState {
  /** S: the number of streams this state holds. */
  readonly streams: number;
  /** The layer that created this state (steps must use it). */
  readonly layer: DeltaLinear;
  readonly context: Context;
  /** @internal */ _buf: DeltaStateBuffers | null;
  /** @internal the layer version (DeltaLinear.version) the contents belong to */ _version: number;
  /** @internal the stream the buffers were allocated on */ readonly _stream: Stream;

  /** @internal use layer.createState(S) or state.snapshot(). */
  constructor(layer: DeltaLinear, streams: number, stream: Stream, buf: DeltaStateBuffers, version: number) {
    this.layer = layer;
    this.streams = streams;
    this.context = layer.context;
    this._stream = stream;
    this._buf = buf;
    this._version = version;
  }

  /** @internal allocates the buffers for S streams and marks every stream uninitialised. */
  static _create(layer: DeltaLinear, streams: number, stream: Stream, version: number): DeltaState {
    const ctx = layer.context;
    const M = layer.outFeatures;
    const K = layer.inFeatures;
    const sizes: NativeDeltaStateSizes = nativeOps<DeltaBinding>().deltaStateSizes(streams, M, K);
    const place = { context: ctx, stream };
    const buf: DeltaStateBuffers = {
      xRef: Tensor.empty([2, streams, K], { dtype: 'float32', ...place }),
      yAcc: Tensor.empty([streams, M], { dtype: 'float32', ...place }),
      initialized: Tensor.empty([streams], { dtype: 'uint8', ...place }),
      steps: Tensor.empty([streams], { dtype: 'int32', ...place }),
      parity: Tensor.empty([streams], { dtype: 'uint8', ...place }),
      stats: Tensor.empty([streams * 4], { dtype: 'int32', ...place }),
      ...(ctx.backend === 'cuda' ? { sync: Tensor.empty([sizes.sync / 4], { dtype: 'int32', ...place }) } : {}),
    };
    const all = Object.values(buf) as Tensor[];
    const failed = all.find((t) => t._error)?._error;
    if (failed) {
      // One buffer could not be allocated (out of memory): the whole state carries the error and holds no
      // memory, instead of keeping (and zero-filling) the buffers that did fit, gigabytes for a huge S.
      for (const t of all) {
        t._ref?.release();
        t._ref = null;
        t._error = failed;
      }
    } else {
      // Zeroed: a step reads parity[s] (which x_ref buffer is current) even on an initialising step.
      const ns = stream._requireNative();
      for (const t of [buf.steps, buf.parity, buf.stats]) t._ref!.native!.fill(ns, 0);
    }
    const state = new DeltaState(layer, streams, stream, buf, version);
    state._invalidate(stream);
    return state;
  }

  get isDisposed(): boolean {
    return this._buf === null;
  }

  /** @internal the live buffers, or DisposedError naming `name` */
  _buffers(name = 'state'): DeltaStateBuffers {
    if (this._buf === null) throw new DisposedError(`${name} was disposed`);
    for (const t of Object.values(this._buf)) {
      if (t.isDisposed) throw new DisposedError(`${name}'s buffers were disposed (was its context disposed?)`);
    }
    return this._buf;
  }

  /** @internal the buffers as native storages (for a step) */
  _tensors(): Record<keyof DeltaStateBuffers, Tensor | undefined> {
    const b = this._buffers();
    return { xRef: b.xRef, yAcc: b.yAcc, initialized: b.initialized, steps: b.steps, parity: b.parity, stats: b.stats, sync: b.sync };
  }

  /**
   * @internal marks every stream uninitialised (and zeroes the CUDA counters). Declares every buffer
   * written, so it also clears an error a failed step left on them.
   */
  _invalidate(stream: Stream): void {
    const t = this._tensors();
    const all = Object.values(t).filter((x): x is Tensor => x !== undefined);
    runOp(all, [], stream, (ns) => {
      nativeOps<DeltaBinding>().deltaInvalidate(ns, storages(t) as unknown as NativeDeltaStateTensors, {
        numStreams: this.streams,
        M: this.layer.outFeatures,
        K: this.layer.inFeatures,
      });
    });
  }

  /**
   * Marks streams uninitialised: their next step re-initialises them densely (x_ref <- x, y_acc <- W x + b).
   * Without ids, every stream; this also recovers a state whose buffers carry the error of a failed step.
   * Ids: an Int32Array / number[] (checked: integers in [0, S)) or an int32 Tensor on the state's context
   * (not read back; on CUDA out-of-range ids are skipped, on the CPU they fail the reset and leave the
   * error on the state until a `reset()` without ids). Enqueued on `options.stream` (default: the
   * state's stream), ordered after steps already enqueued.
   */
  reset(streamIds?: Int32Array | readonly number[] | Tensor, options?: { stream?: Stream }): void {
    const b = this._buffers();
    const stream = options?.stream === undefined ? this._stream : opStream(this.context, options.stream);
    if (streamIds === undefined) {
      this._invalidate(stream);
      return;
    }
    let ids: Tensor;
    let owned = false;
    if (streamIds instanceof Tensor) {
      ids = checkTensor('streamIds', streamIds, { dtypes: ['int32'], rank: 1 });
      if (ids.context !== this.context) throw new TypeError(`streamIds is on another context (${ids.context.backend}) than the state (${this.context.backend})`);
    } else {
      const host = checkStreamIdArray('streamIds', streamIds, this.streams, false);
      if (host.length === 0) return;
      ids = Tensor.from(host, [host.length], { dtype: 'int32', context: this.context, stream });
      owned = true;
    }
    const n = ids.dims[0]!;
    try {
      if (n === 0) return;
      runOp([b.initialized, ids], [], stream, (ns) => {
        nativeOps<DeltaBinding>().deltaReset(
          ns,
          { initialized: b.initialized._storage('state'), streamIds: ids._storage('streamIds') },
          { numStreams: this.streams, n },
        );
      });
    } finally {
      // The enqueued task holds the storage until it has run.
      if (owned) ids.dispose();
    }
  }

  /**
   * A new state holding a copy of this one (every stream's reference, accumulator, counters and
   * statistics), taken in stream order after the steps enqueued so far. Stepping both with the same inputs
   * gives the same outputs, bit for bit. The copy belongs to the same layer.
   */
  snapshot(options?: { stream?: Stream }): DeltaState {
    const b = this._buffers();
    const stream = options?.stream === undefined ? this._stream : opStream(this.context, options.stream);
    const copy: DeltaStateBuffers = {
      xRef: b.xRef.clone({ stream }),
      yAcc: b.yAcc.clone({ stream }),
      initialized: b.initialized.clone({ stream }),
      steps: b.steps.clone({ stream }),
      parity: b.parity.clone({ stream }),
      stats: b.stats.clone({ stream }),
      // Not copied: the counters are zero between steps, and a fresh zeroed buffer is what a state needs.
      ...(b.sync ? { sync: Tensor.zeros(b.sync.dims, { dtype: 'int32', context: this.context, stream }) } : {}),
    };
    return new DeltaState(this.layer, this.streams, stream, copy, this._version);
  }

  /**
   * Overwrites this state with a snapshot of a state of the same layer and stream count (copies in
   * stream order, after the steps enqueued so far). The snapshot stays usable.
   */
  restore(snapshot: DeltaState, options?: { stream?: Stream }): void {
    const b = this._buffers();
    if (!(snapshot instanceof DeltaState)) throw invalidType('snapshot', 'a DeltaState', snapshot);
    const s = snapshot._buffers('snapshot');
    if (snapshot.layer !== this.layer) throw invalidValue('snapshot', 'a snapshot of a state of the same DeltaLinear layer', snapshot);
    if (snapshot.streams !== this.streams) {
      throw new ShapeError(`Expected a snapshot with ${this.streams} streams (this state's) but snapshot has ${snapshot.streams}`);
    }
    if (snapshot === this) return;
    const stream = options?.stream === undefined ? this._stream : opStream(this.context, options.stream);
    const ns = stream._requireNative();
    const keys = ['xRef', 'yAcc', 'initialized', 'steps', 'parity', 'stats'] as const;
    // A buffer whose allocation failed (out of memory) cannot be copied: say so instead of restoring half.
    for (const key of keys) {
      const err = s[key]._error ?? b[key]._error;
      if (err) throw err;
    }
    for (const key of keys) b[key]._storage('state').copyFrom(ns, s[key]._storage('snapshot'), b[key].byteLength);
    this._version = snapshot._version;
  }

  /** Host copies of the state (waits for the steps enqueued so far). */
  async read(): Promise<DeltaStateContents> {
    const b = this._buffers();
    const S = this.streams;
    const K = this.layer.inFeatures;
    const [xRef2, yAcc, initialized, steps, parity, stats] = await Promise.all([
      b.xRef.toArray(),
      b.yAcc.toArray(),
      b.initialized.toArray(),
      b.steps.toArray(),
      b.parity.toArray(),
      b.stats.toArray(),
    ]);
    const xRef = new Float32Array(S * K);
    for (let s = 0; s < S; s++) {
      const from = ((parity[s]! & 1) * S + s) * K;
      xRef.set(xRef2.subarray(from, from + K), s * K);
    }
    const { a, b: st } = int64Pairs(stats, S);
    return { xRef, yAcc, initialized, steps, activeTotal: a, stepsTotal: st };
  }

  /** Per-stream statistics: inputs fired, steps, temporal density (waits for the steps enqueued so far). */
  async stats(): Promise<DeltaStats> {
    const words = await this._buffers().stats.toArray();
    const { a, b } = int64Pairs(words, this.streams);
    const K = this.layer.inFeatures;
    const density = new Float64Array(this.streams);
    for (let s = 0; s < this.streams; s++) density[s] = b[s]! > 0 && K > 0 ? a[s]! / (b[s]! * K) : NaN;
    return { activeTotal: a, steps: b, density };
  }

  /** Frees the buffers (after the work already enqueued on them). Idempotent. */
  dispose(): void {
    if (this._buf === null) return;
    for (const t of Object.values(this._buf)) t.dispose();
    this._buf = null;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  toString(): string {
    return `DeltaState(${this.streams} streams, ${this.layer.outFeatures}x${this.layer.inFeatures}, ${this.isDisposed ? 'disposed' : this.context.backend})`;
  }
}

