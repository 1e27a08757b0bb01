/**
 * Options of DeltaLinear (construction), DeltaLinear.step and DeltaLinear.createState, with their frozen
 * defaults (the README API table is generated from these).
 */
import type { Stream } from '../stream.js';
import type { Tensor } from '../tensor.js';

/** "reference": DeltaRNN / EdgeDRNN thresholding; "quantized": DAL (every quantisation-level change fires). */
export const DELTA_MODES = ['reference', 'quantized'] as const;
export type DeltaMode = (typeof DELTA_MODES)[number];

/** Activations fused into the step's output (y_acc itself never sees them). */
export const DELTA_ACTIVATIONS = ['none', 'relu', 'gelu', 'silu'] as const;
export type DeltaActivation = (typeof DELTA_ACTIVATIONS)[number];

/** Per-input thresholds: one value for every input, or one per input channel [K]. */
export type DeltaThreshold = number | Float32Array | readonly number[] | Tensor;

export interface DeltaLinearOptions {
  /**
   * theta: an input k fires when |x_k - x_ref_k| >= theta_k (and the value changed). A finite number >= 0
   * for every input, or per input channel: a Float32Array / number[] of K finite values >= 0 (checked at
   * once), or a float Tensor [K] on the weight's context (read back and checked asynchronously: await
   * `layer.ready` before the first step). theta = 0 is lossless (only exact repeats are skipped). Ignored
   * in "quantized" mode, where passing it is an error. Defaults to 0.1 (unit-scale activations).
   */
  threshold?: DeltaThreshold;
  /**
   * "reference" (fires against the last transmitted value, error bounded by theta) or "quantized" (x is
   * first rounded to a multiple of quantStep; the layer then equals the dense layer on the quantised
   * inputs, up to float rounding). Defaults to "reference".
   */
  mode?: DeltaMode;
  /**
   * Quantisation step q of "quantized" mode: q(x) = rint(x / q) * q (ties to even, in float32). Required
   * (finite, > 0) in "quantized" mode; an error in "reference" mode. Defaults to undefined.
   */
  quantStep?: number;
  /**
   * Every refreshEvery delta steps a stream recomputes y_acc = W x + b densely, which removes the float32
   * rounding drift of the accumulator (1000-10000 is plenty for float32; 0 = never). An integer >= 0.
   * Defaults to 0.
   */
  refreshEvery?: number;
  /**
   * Above this fired fraction of the inputs a step walks every row of W with the masked delta instead of
   * gathering the fired rows. In [0, 1]. The default is 1 (always gather): measured on an H200 (fp16
   * 4096 x 11008) the gather streams at 4-4.7 TB/s, so the dense pass was slower at every density below 1
   * (16 streams, 81% union: 96.5 us gather vs 106 us with the spec's 0.35), and on the CPU it was 1.7x
   * slower at 50% (cuda/delta/NOTES.md; `bench --op delta` re-measures it). Defaults to 1.
   */
  denseFallbackDensity?: number;
  /** Stream for the weight transpose and, by default, for the layer's states and steps. Defaults to the weight's context's default stream. */
  stream?: Stream;
}

export const DELTA_LINEAR_DEFAULTS = Object.freeze({
  threshold: 0.1 as DeltaThreshold,
  mode: 'reference' as DeltaMode,
  quantStep: undefined as number | undefined,
  refreshEvery: 0,
  denseFallbackDensity: 1,
});

export interface DeltaStepOptions {
  /**
   * Which state streams the rows of x belong to: unique ids in [0, S), one per row. An Int32Array or
   * number[] is checked on the host (TypeError / RangeError naming the position) and uploaded; an int32
   * Tensor [s] on the layer's context is used as is and not read back: on CUDA an out-of-range id gives
   * that row a NaN output and active -1 (other rows step normally), on the CPU it fails the step (its
   * outputs reject with ERR_INVALID_ARG and the state's buffers carry the error until `state.reset()`).
   * Streams not listed are untouched. Defaults to 0, 1, ..., s - 1.
   */
  streamIds?: Int32Array | readonly number[] | Tensor;
  /** Activation applied to the returned y (not to the accumulator). Defaults to "none". */
  activation?: DeltaActivation;
  /** A preallocated output [s, M] in x's dtype on the layer's context (not x itself); returned as y. Defaults to a new tensor. */
  out?: Tensor;
  /** Stream to run on (of the layer's context). Defaults to the layer's stream. */
  stream?: Stream;
}

export const DELTA_STEP_DEFAULTS = Object.freeze({
  streamIds: undefined as Int32Array | readonly number[] | Tensor | undefined,
  activation: 'none' as DeltaActivation,
  out: undefined as Tensor | undefined,
});

export interface DeltaStateOptions {
  /** Stream the state's buffers are allocated and initialised on. Defaults to the layer's stream. */
  stream?: Stream;
}

export const DELTA_STATE_DEFAULTS = Object.freeze({});
