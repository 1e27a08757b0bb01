/**
 * Runtime errors. Argument problems are plain `TypeError` / `RangeError` naming the argument, thrown
 * synchronously before any native work; everything that goes wrong later (CUDA faults, out of memory,
 * disposed objects, a missing binary) is a `SparseKernelsError` subclass with a stable `code`.
 */

export type ErrorCode =
  | 'ERR_NO_BINARY'
  | 'ERR_CUDA_UNAVAILABLE'
  | 'ERR_CUDA'
  | 'ERR_OUT_OF_MEMORY'
  | 'ERR_DISPOSED'
  | 'ERR_SHAPE'
  | 'ERR_CANCELLED'
  | 'ERR_INVALID_ARG'
  | 'ERR_INTERNAL';

export interface SparseKernelsErrorOptions {
  cause?: unknown;
  op?: string;
  cudaError?: string;
  cudaErrorCode?: number;
}

/** Base class of every runtime error of this package. */
export class SparseKernelsError extends Error {
  /** Stable machine-readable code. */
  readonly code: ErrorCode;
  /** The op that failed, when known (e.g. `"blockSparseAttention"`, `"upload"`). */
  readonly op?: string;
  /** CUDA error name (e.g. `"cudaErrorIllegalAddress"`) for CUDA failures. */
  readonly cudaError?: string;
  /** Numeric CUDA error code for CUDA failures. */
  readonly cudaErrorCode?: number;

  constructor(code: ErrorCode, message: string, options: SparseKernelsErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    if (options.op !== undefined) this.op = options.op;
    if (options.cudaError !== undefined) this.cudaError = options.cudaError;
    if (options.cudaErrorCode !== undefined) this.cudaErrorCode = options.cudaErrorCode;
  }
}

/** No native binary could be loaded; the message lists every path tried and how to fix it. */
export class NativeBindingError extends SparseKernelsError {
  constructor(message: string, options: SparseKernelsErrorOptions = {}) {
    super('ERR_NO_BINARY', message, options);
  }
}

/** `device: "cuda"` was requested but CUDA cannot be used; `message` says why. */
export class CudaUnavailableError extends SparseKernelsError {
  constructor(message: string, options: SparseKernelsErrorOptions = {}) {
    super('ERR_CUDA_UNAVAILABLE', message, options);
  }
}

/** A CUDA runtime error or device fault; see `cudaError`. A device fault poisons the CUDA context. */
export class CudaError extends SparseKernelsError {
  constructor(message: string, options: SparseKernelsErrorOptions = {}) {
    super('ERR_CUDA', message, options);
  }
}

/** An allocation failed: beyond `maxDeviceBytes`, beyond the device, or out of host memory. */
export class OutOfMemoryError extends SparseKernelsError {
  constructor(message: string, options: SparseKernelsErrorOptions = {}) {
    super('ERR_OUT_OF_MEMORY', message, options);
  }
}

/** A tensor, stream or context was used after `dispose()`. */
export class DisposedError extends SparseKernelsError {
  constructor(message: string, options: SparseKernelsErrorOptions = {}) {
    super('ERR_DISPOSED', message, options);
  }
}

/** Work was dropped because its stream or the process shut down first. */
export class CancelledError extends SparseKernelsError {
  constructor(message: string, options: SparseKernelsErrorOptions = {}) {
    super('ERR_CANCELLED', message, options);
  }
}

/** Tensor shapes that do not fit together (a RangeError with `code: "ERR_SHAPE"`). */
export class ShapeError extends RangeError {
  readonly code = 'ERR_SHAPE' as const;
  constructor(message: string) {
    super(message);
    this.name = 'ShapeError';
  }
}

interface NativeErrorLike {
  message?: string;
  code?: string;
  op?: string;
  cudaError?: string;
  cudaErrorCode?: number;
}

/**
 * Converts an error produced by the native layer into the matching subclass. When `callSite` is given
 * (an Error captured where the user called the API), its stack replaces the native one, so an async
 * failure points at the user's code (sharp's pattern).
 */
export function fromNative(err: unknown, callSite?: Error): Error {
  if (err instanceof SparseKernelsError || err instanceof TypeError || err instanceof RangeError) return err;
  const e = (err ?? {}) as NativeErrorLike;
  const message = e.message ?? String(err);
  const opts: SparseKernelsErrorOptions = { op: e.op, cudaError: e.cudaError, cudaErrorCode: e.cudaErrorCode };
  let out: SparseKernelsError;
  switch (e.code) {
    case 'ERR_OUT_OF_MEMORY':
      out = new OutOfMemoryError(message, opts);
      break;
    case 'ERR_CUDA':
      out = new CudaError(e.cudaError ? `${message} (${e.cudaError})` : message, opts);
      break;
    case 'ERR_CUDA_UNAVAILABLE':
      out = new CudaUnavailableError(message, opts);
      break;
    case 'ERR_DISPOSED':
      out = new DisposedError(message, opts);
      break;
    case 'ERR_CANCELLED':
      out = new CancelledError(message, opts);
      break;
    case 'ERR_SHAPE':
    case 'ERR_INVALID_ARG':
    case 'ERR_INTERNAL':
      out = new SparseKernelsError(e.code, message, opts);
      break;
    default:
      return err instanceof Error ? err : new Error(message);
  }
  if (callSite?.stack) {
    const frames = callSite.stack.split('\n').slice(1).join('\n');
    out.stack = `${out.name}: ${out.message}\n${frames}`;
  }
  return out;
}
