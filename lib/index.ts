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
export {
  blockSparseAttention,
  BlockLayout,
  ATTENTION_DEFAULTS,
  BLOCK_LAYOUT_DEFAULTS,
  LAYOUT_BLOCK_SIZES,
} from './attention/index.js';
export type {
  AttentionOptions,
  AttentionWithLse,
  BlockLayoutOptions,
  BlockLayoutLists,
  BlockLayoutListsInput,
  DenseCausalLayoutOptions,
  DenseLayoutOptions,
  SlidingWindowLayoutOptions,
  IndexArray,
  LayoutBlockSize,
} from './attention/index.js';
export {
  spmm,
  BlockSparseMatrix,
  SPMM_DEFAULTS,
  SPMM_CROSSOVER,
  SPMM_ACTIVATIONS,
  SPMM_BACKENDS,
  BLOCK_SPARSE_FROM_DENSE_DEFAULTS,
  BLOCK_SPARSE_FROM_CSR_DEFAULTS,
  GPU_BLOCK_SIDES,
  CROSSOVER_CLASSES,
} from './spmm/index.js';
export type {
  SpmmOptions,
  SpmmPlan,
  SpmmActivation,
  SpmmBackend,
  CrossoverRow,
  CrossoverClass,
  BlockSparseFromDenseOptions,
  BlockSparseFromCsrOptions,
  BlockCsrArrays,
  BlockValues,
  IndexArray as BlockIndexArray,
} from './spmm/index.js';
export {
  pbsAttention,
  pbsProxyScores,
  pbsPermutation,
  pbsSelectBlocks,
  isDeviceLayout,
  PbsStats,
  PBS_DEFAULTS,
} from './pbs/index.js';
export type {
  PbsOptions,
  PbsResult,
  PbsGqaMode,
  PbsPool,
  PbsSelectorName,
  PbsSelectorFn,
  PbsSelectorContext,
  PbsProxyOptions,
  PbsPermutationOptions,
  PbsSelectOptions,
  PbsSelection,
  DeviceBlockLayout,
  PbsStageTimes,
  PbsStatsReport,
} from './pbs/index.js';
export {
  DeltaLinear,
  DeltaState,
  SyntheticFeatureStream,
  DELTA_LINEAR_DEFAULTS,
  DELTA_STEP_DEFAULTS,
  DELTA_STATE_DEFAULTS,
  DELTA_MODES,
  DELTA_ACTIVATIONS,
  SYNTHETIC_FEATURE_STREAM_DEFAULTS,
} from './delta/index.js';
export type {
  DeltaLinearOptions,
  DeltaStepOptions,
  DeltaStateOptions,
  DeltaStepResult,
  DeltaMode,
  DeltaActivation,
  DeltaThreshold,
  DeltaStateContents,
  DeltaStats,
  SyntheticFeatureStreamOptions,
} from './delta/index.js';
