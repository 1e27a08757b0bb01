/**
 * DeltaLinear: a linear layer y = W x + b for streaming inference that only uses the columns of W whose
 * inputs changed (temporal sparsity; DeltaRNN / EdgeDRNN "reference" semantics, or DAL "quantized").
 * Contract and semantics: src/ops/delta.h; specs/delta.md.
 *
 * Per stream s the layer keeps (in a DeltaState) the last transmitted input x_ref and y_acc = W x_ref + b.
 * A step with input x fires input k when |x_k - x_ref_k| >= theta_k (or x_k is NaN), adds
 * (x_k - x_ref_k) * W[:, k] to y_acc for the fired k only, moves x_ref_k to x_k there, and returns
 * y = activation(y_acc). Unfired inputs keep their old reference, so |x - x_ref| < theta at all times and
 *   |y - (W x + b)|_i <= sum_k |W[i, k]| theta_k     (plus float32 rounding; refreshEvery bounds it)
 * at every step, without growing with time. A stream's first step (and every refresh) is dense.
 *
 * Weights are transposed once, at construction, into Wt [K, M] on the device (column k of W is then one
 * contiguous row). The layer owns that copy: changing the tensor it was built from changes nothing; use
 * `setWeights` (which invalidates every state).
 *
 * Versioning: `invalidate()` (and `setWeights`) bump `layer.version`. A state remembers the version its
 * contents belong to; its next step sees the mismatch and first marks every stream uninitialised, so each
 * stream re-initialises densely at its next step. Stale states are re-initialised, never rejected and
 * never used with stale accumulators.
 */
import type { Context } from '../context.js';
import { type DType, DTYPE_ID, FLOAT_DTYPES, type FloatDType } from '../dtype.js';
import { DisposedError, ShapeError, SparseKernelsError } from '../errors.js';
import { allocOutput, checkTensor, commonContext, opStream, runOp, storages } from '../internal/op.js';
import type { DeltaBinding, NativeDeltaStepParams, NativeDeltaStepTensors } from '../native/delta.js';
import { nativeOps } from '../native/load.js';
import type { Stream } from '../stream.js';
import { Tensor } from '../tensor.js';
import { checkInteger, checkNumber, checkOneOf, checkOptions, invalidType, invalidValue } from '../validate.js';
import {
  DELTA_ACTIVATIONS,
  DELTA_LINEAR_DEFAULTS,
  DELTA_MODES,
  DELTA_STEP_DEFAULTS,
  type DeltaActivation,
  type DeltaLinearOptions,
  type DeltaMode,
  type DeltaStateOptions,
  type DeltaStepOptions,
} from './options.js';
import { DeltaState, checkStreamIdArray } from './state.js';

export * from './options.js';
export { DeltaState } from './state.js';
export type { DeltaStateContents, DeltaStats } from './state.js';
export { SyntheticFeatureStream, SYNTHETIC_FEATURE_STREAM_DEFAULTS } from './synthetic.js';
export type { SyntheticFeatureStreamOptions } from './synthetic.js';

/** What DeltaLinear.step returns. */
export interface DeltaStepResult<D extends DType = FloatDType> {
  /** [s, M] in x's dtype: activation(y_acc) of each stepped stream. */
  y: Tensor<D>;
  /** int32 [s]: inputs that fired per row (K on an initialising or refreshing step; -1: skipped row, see streamIds). */
  active: Tensor<'int32'>;
}

const LINEAR_KEYS = ['threshold', 'mode', 'quantStep', 'refreshEvery', 'denseFallbackDensity', 'stream'] as const;
const STEP_KEYS = ['streamIds', 'activation', 'out', 'stream'] as const;
const ACTIVATION_ID: Readonly<Record<DeltaActivation, number>> = Object.freeze({ none: 0, relu: 1, gelu: 2, silu: 3 });
const INT32_MAX = 2 ** 31 - 1;
// The CUDA transpose runs a (ceil(wtLd / 32), ceil(K / 32)) grid; gridDim.y is limited to 65535.
const CUDA_MAX_K = 65535 * 32;
// The CUDA step runs a (K chunks, ceil(M / 256), ceil(rows / 16)) grid (cuda/delta/delta_launch.cuh,
// kDeltaCudaTileM and kDeltaCudaMaxStreamsPerCta); gridDim.y and gridDim.z are limited to 65535.
const CUDA_MAX_OUT_FEATURES = 65535 * 256;
const CUDA_MAX_STEP_ROWS = 65535 * 16;

/** A finite float32 value >= 0 (what the kernels compare against). */
function checkThresholdValue(name: string, v: unknown): number {
  if (typeof v !== 'number') throw invalidType(name, 'a number', v);
  if (!(v >= 0) || !Number.isFinite(v)) throw invalidValue(name, 'a finite number >= 0', v);
  return v;
}

export class DeltaLinear {
  /** K: inputs per stream (columns of W). */
  readonly inFeatures: number;
  /** M: outputs per stream (rows of W). */
  readonly outFeatures: number;
  readonly context: Context;
  /** dtype of the stored (transposed) weights: the weight tensor's dtype. */
  readonly weightDtype: FloatDType;
  readonly mode: DeltaMode;
  /** The quantisation step ("quantized" mode), else undefined. */
  readonly quantStep: number | undefined;
  readonly refreshEvery: number;
  readonly denseFallbackDensity: number;
  /** @internal */ readonly _stream: Stream;
  /** @internal Wt [K, wtLd] */ _wt: Tensor | null;
  /** @internal row stride of Wt (>= M, 16-byte rows) */ readonly _wtLd: number;
  /** @internal float32 [M] */ _bias: Tensor<'float32'> | undefined;
  /** @internal float32 [K] per-channel thresholds */ _threshold: Tensor<'float32'> | undefined;
  /** @internal */ readonly _thresholdScalar: number;
  /** @internal why the per-channel threshold tensor was rejected (set asynchronously) */ _thresholdError?: Error;
  /** @internal whether the per-channel threshold tensor has been checked */ _thresholdChecked = true;
  /** @internal settles (never rejects) once the threshold tensor is checked */ _thresholdCheck: Promise<void> = Promise.resolve();
  /** @internal */ _version = 0;

  /**
   * @param weight W [M, K] (out x in, as nn.Linear), float32 | float16 | bfloat16. Copied (transposed)
   *   at once in stream order; the tensor may be disposed afterwards.
   * @param bias b [M] (any float dtype; kept in float32, the accumulator's dtype), or null / undefined.
   */
  constructor(weight: Tensor, bias?: Tensor | null, options?: DeltaLinearOptions) {
    const o = checkOptions<DeltaLinearOptions>('options', options, LINEAR_KEYS);
    const w = checkTensor('weight', weight, { rank: 2, dtypes: FLOAT_DTYPES });
    const [M, K] = w.dims as [number, number];
    if (M > INT32_MAX || K > INT32_MAX) throw new ShapeError(`Expected weight dims below 2^31 but they are [${M}, ${K}]`);
    const b = bias === undefined || bias === null ? undefined : checkTensor('bias', bias, { dtypes: FLOAT_DTYPES, dims: [M] });
    const ctx = commonContext({ weight: w, bias: b });
    if (ctx.backend === 'cuda' && K > CUDA_MAX_K) {
      throw new ShapeError(`Expected at most ${CUDA_MAX_K} inputs (weight dims[1]) on CUDA but weight's dims are [${M}, ${K}]`);
    }
    if (ctx.backend === 'cuda' && M > CUDA_MAX_OUT_FEATURES) {
      throw new ShapeError(`Expected at most ${CUDA_MAX_OUT_FEATURES} outputs (weight dims[0]) on CUDA but weight's dims are [${M}, ${K}]`);
    }
    const mode = o.mode === undefined ? DELTA_LINEAR_DEFAULTS.mode : checkOneOf('options.mode', o.mode, DELTA_MODES);
    let quantStep: number | undefined;
    if (mode === 'quantized') {
      if (o.quantStep === undefined) throw invalidType('options.quantStep', 'a number > 0 (required in "quantized" mode)', o.quantStep);
      quantStep = checkNumber('options.quantStep', o.quantStep);
      // The kernels divide by the float32 value: it must stay finite and > 0 there.
      const f = Math.fround(quantStep);
      if (!(f > 0 && Number.isFinite(f))) throw invalidValue('options.quantStep', 'a number > 0 representable as a finite float32', o.quantStep);
      if (o.threshold !== undefined) {
        throw invalidValue('options.threshold', 'no threshold in "quantized" mode (every quantisation-level change fires)', o.threshold);
      }
    } else if (o.quantStep !== undefined) {
      throw invalidValue('options.quantStep', 'no quantStep in "reference" mode (pass mode: "quantized")', o.quantStep);
    }
    const refreshEvery = o.refreshEvery === undefined ? DELTA_LINEAR_DEFAULTS.refreshEvery : checkInteger('options.refreshEvery', o.refreshEvery, 0, INT32_MAX);
    const denseFallbackDensity =
      o.denseFallbackDensity === undefined
        ? DELTA_LINEAR_DEFAULTS.denseFallbackDensity
        : checkNumber('options.denseFallbackDensity', o.denseFallbackDensity, 0, 1);
    const stream = opStream(ctx, o.stream);

    // Threshold: scalar, host vector (checked now) or device tensor (checked when read back).
    let thresholdScalar = 0;
    let thresholdHost: Float32Array | undefined;
    let thresholdTensor: Tensor | undefined;
    const th = mode === 'quantized' ? 0 : o.threshold === undefined ? DELTA_LINEAR_DEFAULTS.threshold : o.threshold;
    if (typeof th === 'number' || th === null || typeof th !== 'object') {
      thresholdScalar = checkThresholdValue('options.threshold', th);
    } else if (th instanceof Tensor) {
      thresholdTensor = checkTensor('options.threshold', th, { dtypes: FLOAT_DTYPES, dims: [K] });
      if (th.context !== ctx) throw new TypeError(`options.threshold is on another context (${th.context.backend}) than weight (${ctx.backend})`);
    } else if (th instanceof Float32Array || Array.isArray(th)) {
      if (th.length !== K) throw new ShapeError(`Expected ${K} per-channel thresholds (weight dims[1]) for options.threshold but received ${th.length}`);
      thresholdHost = new Float32Array(K);
      for (let k = 0; k < K; k++) thresholdHost[k] = checkThresholdValue(`options.threshold[${k}]`, (th as ArrayLike<unknown>)[k]);
    } else {
      throw invalidType('options.threshold', 'a number, a Float32Array, a number[] or a Tensor [K]', th);
    }

    this.inFeatures = K;
    this.outFeatures = M;
    this.context = ctx;
    this.weightDtype = w.dtype as FloatDType;
    this.mode = mode;
    this.quantStep = quantStep;
    this.refreshEvery = refreshEvery;
    this.denseFallbackDensity = denseFallbackDensity;
    this._stream = stream;
    this._thresholdScalar = thresholdScalar;
    const native = nativeOps<DeltaBinding>();
    this._wtLd = native.deltaWtLd(M, DTYPE_ID[this.weightDtype]);
    this._wt = allocOutput(ctx, stream, [K, this._wtLd], this.weightDtype);
    this._transpose(w);
    this._bias = b ? this._biasCopy(b) : undefined;
    if (thresholdHost) {
      this._threshold = Tensor.from(thresholdHost, [K], { dtype: 'float32', context: ctx, stream, copy: true });
    } else if (thresholdTensor) {
      // The layer's own float32 copy: what is checked is what the kernels read, whatever the caller
      // does with its tensor afterwards.
      const copy = thresholdTensor.dtype === 'float32' ? thresholdTensor.clone({ stream }) : thresholdTensor.cast('float32', { stream });
      this._threshold = copy as Tensor<'float32'>;
      this._thresholdChecked = false;
      this._thresholdCheck = copy.toArray().then(
        (values) => {
          for (let k = 0; k < values.length; k++) {
            const v = values[k]!;
            if (!(v >= 0) || !Number.isFinite(v)) {
              this._thresholdError = invalidValue(`options.threshold[${k}]`, 'a finite number >= 0', v);
              break;
            }
          }
          this._thresholdChecked = true;
        },
        (e: unknown) => {
          this._thresholdError = e instanceof Error ? e : new Error(String(e));
          this._thresholdChecked = true;
        },
      );
    }
  }

  /**
   * Resolves once the layer can step: at once, except with a per-channel threshold Tensor, which is read
   * back and checked first (rejects with a RangeError naming the first invalid entry).
   */
  get ready(): Promise<void> {
    return this._thresholdCheck.then(() => {
      if (this._thresholdError) throw this._thresholdError;
    });
  }

  /** Bumped by invalidate() / setWeights(); states re-initialise when theirs differs. */
  get version(): number {
    return this._version;
  }

  get isDisposed(): boolean {
    return this._wt === null;
  }

  /** @internal Wt, or DisposedError */
  _weights(): Tensor {
    if (this._wt === null || this._wt.isDisposed) throw new DisposedError('layer was disposed');
    return this._wt;
  }

  /** @internal enqueues W [M, K] -> Wt [K, wtLd] */
  private _transpose(w: Tensor): void {
    const wt = this._weights();
    runOp([w], [wt], this._stream, (ns) => {
      nativeOps<DeltaBinding>().deltaTransposeWeights(
        ns,
        { w: w._storage('weight'), wt: wt._storage('layer') },
        { dtype: DTYPE_ID[this.weightDtype], M: this.outFeatures, K: this.inFeatures, wtLd: this._wtLd },
      );
    });
  }

  /** @internal the layer's float32 copy of a bias */
  private _biasCopy(b: Tensor): Tensor<'float32'> {
    return (b.dtype === 'float32' ? b.clone({ stream: this._stream }) : b.cast('float32', { stream: this._stream })) as Tensor<'float32'>;
  }

  /**
   * Replaces the weights (and the bias: a Tensor [M] replaces it, null removes it, undefined keeps it),
   * then invalidates every state. `weight` must have the layer's dims and weight dtype. In stream order:
   * steps enqueued before still use the old weights.
   */
  setWeights(weight: Tensor, bias?: Tensor | null): void {
    const wt = this._weights();
    const w = checkTensor('weight', weight, { dims: [this.outFeatures, this.inFeatures] });
    if (w.dtype !== this.weightDtype) throw new TypeError(`Expected weight to have the layer's weight dtype (${this.weightDtype}) but it is ${w.dtype}`);
    const b = bias === undefined || bias === null ? undefined : checkTensor('bias', bias, { dtypes: FLOAT_DTYPES, dims: [this.outFeatures] });
    commonContext({ layer: wt, weight: w, bias: b });
    this._transpose(w);
    if (bias !== undefined) {
      this._bias?.dispose();
      this._bias = b ? this._biasCopy(b) : undefined;
    }
    this.invalidate();
  }

  /**
   * Declares every state stale (weights or bias changed): each state's next step first marks all its
   * streams uninitialised, so every stream re-initialises densely at its next step.
   */
  invalidate(): void {
    this._weights();
    this._version++;
  }

  /** A state for S streams (all uninitialised), on the layer's device. */
  createState(streams: number, options?: DeltaStateOptions): DeltaState {
    const o = checkOptions<DeltaStateOptions>('options', options, ['stream']);
    this._weights();
    const S = checkInteger('streams', streams, 0, INT32_MAX);
    const stream = o.stream === undefined ? this._stream : opStream(this.context, o.stream);
    return DeltaState._create(this, S, stream, this._version);
  }

  /**
   * One step for s streams of `state`: x [s, K] (float32 | float16 | bfloat16), row r belonging to
   * stream streamIds[r]. Returns at once; the work is enqueued. Steps on one state run in program order,
   * whatever streams they are enqueued on (the runtime orders them through the state's buffers).
   */
  step<D extends DType>(state: DeltaState, x: Tensor<D>, options?: DeltaStepOptions): DeltaStepResult<D>;
  step(state: DeltaState, x: Tensor, options?: DeltaStepOptions): DeltaStepResult<DType> {
    const o = checkOptions<DeltaStepOptions>('options', options, STEP_KEYS);
    const wt = this._weights();
    if (!(state instanceof DeltaState)) throw invalidType('state', 'a DeltaState', state);
    if (state.layer !== this) throw invalidValue('state', 'a state created by this layer (layer.createState)', state);
    const stateTensors = state._tensors();
    if (!this._thresholdChecked) {
      throw new SparseKernelsError(
        'ERR_INVALID_ARG',
        'the per-channel threshold tensor (options.threshold) is still being checked: await layer.ready before the first step',
      );
    }
    if (this._thresholdError) throw this._thresholdError;
    const xt = checkTensor('x', x, { rank: 2, dtypes: FLOAT_DTYPES });
    const [s, K] = xt.dims as [number, number];
    if (K !== this.inFeatures) throw new ShapeError(`Expected x to have ${this.inFeatures} columns (the layer's inFeatures) but its dims are [${xt.dims.join(', ')}]`);
    if (s > state.streams) throw new ShapeError(`Expected at most ${state.streams} rows (the state's streams) in x but its dims are [${xt.dims.join(', ')}]`);
    if (this.context.backend === 'cuda' && s > CUDA_MAX_STEP_ROWS) {
      throw new ShapeError(`Expected at most ${CUDA_MAX_STEP_ROWS} rows in x per step on CUDA (split the step) but its dims are [${xt.dims.join(', ')}]`);
    }
    const M = this.outFeatures;
    const dtype = xt.dtype as FloatDType;

    let ids: Tensor | undefined;
    let idsHost: Int32Array | undefined;
    if (o.streamIds !== undefined) {
      if (o.streamIds instanceof Tensor) {
        ids = checkTensor('options.streamIds', o.streamIds, { dtypes: ['int32'], dims: [s] });
      } else {
        idsHost = checkStreamIdArray('options.streamIds', o.streamIds, state.streams, true);
        if (idsHost.length !== s) throw new ShapeError(`Expected ${s} stream ids (one per row of x) for options.streamIds but received ${idsHost.length}`);
      }
    }
    const activation = o.activation === undefined ? DELTA_STEP_DEFAULTS.activation : checkOneOf('options.activation', o.activation, DELTA_ACTIVATIONS);
    let out: Tensor | undefined;
    if (o.out !== undefined) {
      out = checkTensor('options.out', o.out, { dims: [s, M] });
      if (out.dtype !== dtype) throw new TypeError(`Expected options.out to have x's dtype (${dtype}) but it is ${out.dtype}`);
      if (out._ref !== null && out._ref === xt._ref) throw invalidValue('options.out', 'a tensor other than x (the step reads x while it writes y)', out);
    }
    const ctx = commonContext({ layer: wt, x: xt, 'options.streamIds': ids, 'options.out': out, state: stateTensors.yAcc });
    const stream = o.stream === undefined ? this._stream : opStream(ctx, o.stream);

    if (state._version !== this._version) {
      state._invalidate(stream);
      state._version = this._version;
    }
    if (idsHost) ids = Tensor.from(idsHost, [s], { dtype: 'int32', context: ctx, stream, copy: true });
    const y = out ?? allocOutput(ctx, stream, [s, M], dtype);
    const active = allocOutput(ctx, stream, [s], 'int32');
    const params: NativeDeltaStepParams = {
      wtDtype: DTYPE_ID[this.weightDtype],
      wtLd: this._wtLd,
      M,
      K,
      thresholdScalar: this._thresholdScalar,
      mode: this.mode === 'quantized' ? 1 : 0,
      quantStep: this.quantStep ?? 0,
      refreshEvery: this.refreshEvery,
      denseFallbackDensity: this.denseFallbackDensity,
      numStreams: state.streams,
      numRows: s,
      xDtype: DTYPE_ID[dtype],
      activation: ACTIVATION_ID[activation],
    };
    const inputs = { wt, bias: this._bias, threshold: this._threshold, ...stateTensors, x: xt, streamIds: ids };
    try {
      runOp(Object.values(inputs), [y, active], stream, (ns) => {
        const tensors = storages({ ...inputs, y, nActive: active });
        nativeOps<DeltaBinding>().deltaStep(ns, tensors as unknown as NativeDeltaStepTensors, params);
      });
    } finally {
      // An uploaded id tensor is held by the enqueued task until it has run.
      if (idsHost) ids?.dispose();
    }
    return { y, active };
  }

  /** Frees the transposed weights, bias and thresholds (after the work already enqueued). States stay valid objects but cannot step. Idempotent. */
  dispose(): void {
    this._wt?.dispose();
    this._wt = null;
    this._bias?.dispose();
    this._bias = undefined;
    this._threshold?.dispose();
    this._threshold = undefined;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  toString(): string {
    return `DeltaLinear(${this.inFeatures} -> ${this.outFeatures}, ${this.weightDtype}, ${this.mode}, ${this.isDisposed ? 'disposed' : this.context.backend})`;
  }
}
