/**
 * sparse-kernels: permuted block-sparse attention, block-sparse SpMM and delta activations for Node.js,
 * on CUDA GPUs and on a multi-threaded CPU backend. Public exports only.
 */
export { Context, CONTEXT_DEFAULTS } from './context.js';
export type { ContextOptions, MemoryInfo } from './context.js';
export { Stream, StreamMark } from './stream.js';
export { Tensor } from './tensor.js';
export type { TensorOptions, EmptyOptions, TensorLocation } from './tensor.js';
export {
  DTYPES,
  FLOAT_DTYPES,
  DTYPE_BYTES,
  float32ToFloat16Bits,
  float16BitsToFloat32,
  float32ToBFloat16Bits,
  bfloat16BitsToFloat32,
  toHalfBits,
  fromHalfBits,
} from './dtype.js';
export type { DType, FloatDType, DTypeArrayMap, TypedArrayOf, AnyTypedArray } from './dtype.js';
export { backendInfo, formatBackendInfo, setNumThreads, defaultDeviceOption } from './backend.js';
export type { Backend, BackendInfo, DeviceInfo, DeviceOption } from './backend.js';
export {
  SparseKernelsError,
  NativeBindingError,
  CudaUnavailableError,
  CudaError,
  OutOfMemoryError,
  DisposedError,
  CancelledError,
  ShapeError,
} from './errors.js';
export type { ErrorCode } from './errors.js';
