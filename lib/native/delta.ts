/**
 * Typed description of the DeltaLinear binding (src/bindings/delta.cc). lib/delta validates every argument
 * before calling these; the native side only re-checks what memory safety depends on.
 */
import type { NativeStorage, NativeStream } from './binding.js';

/** Byte sizes of a state's buffers for S streams (delta_state_sizes in src/ops/delta.h). */
export interface NativeDeltaStateSizes {
  xRef: number;
  yAcc: number;
  initialized: number;
  steps: number;
  parity: number;
  stats: number;
  /** CUDA split-K / arrival counters (unused on the CPU). */
  sync: number;
}

/** A state's storages (`sync` only on CUDA). */
export interface NativeDeltaStateTensors {
  xRef: NativeStorage;
  yAcc: NativeStorage;
  initialized: NativeStorage;
  steps: NativeStorage;
  parity: NativeStorage;
  stats: NativeStorage;
  sync?: NativeStorage;
}

export interface NativeDeltaStepTensors extends NativeDeltaStateTensors {
  wt: NativeStorage;
  bias?: NativeStorage;
  threshold?: NativeStorage;
  x: NativeStorage;
  y: NativeStorage;
  nActive: NativeStorage;
  streamIds?: NativeStorage;
}

export interface NativeDeltaStepParams {
  /** DTYPE_ID of Wt. */
  wtDtype: number;
  wtLd: number;
  M: number;
  K: number;
  /** Used when no per-channel threshold tensor is passed. */
  thresholdScalar: number;
  /** 0 reference, 1 quantized. */
  mode: number;
  quantStep: number;
  refreshEvery: number;
  denseFallbackDensity: number;
  numStreams: number;
  numRows: number;
  /** DTYPE_ID of x and y. */
  xDtype: number;
  /** 0 none, 1 relu, 2 gelu, 3 silu (sk::Activation). */
  activation: number;
}

export interface DeltaBinding {
  deltaWtLd(M: number, dtype: number): number;
  deltaStateSizes(S: number, M: number, K: number): NativeDeltaStateSizes;
  deltaTransposeWeights(
    stream: NativeStream,
    tensors: { w: NativeStorage; wt: NativeStorage },
    params: { dtype: number; M: number; K: number; wtLd: number },
  ): void;
  deltaStep(stream: NativeStream, tensors: NativeDeltaStepTensors, params: NativeDeltaStepParams): void;
  deltaReset(
    stream: NativeStream,
    tensors: { initialized: NativeStorage; streamIds: NativeStorage },
    params: { numStreams: number; n: number },
  ): void;
  deltaInvalidate(stream: NativeStream, tensors: NativeDeltaStateTensors, params: { numStreams: number; M: number; K: number }): void;
}
