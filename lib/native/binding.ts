/**
 * The single typed description of the native module (node-llama-cpp's AddonTypes.ts / ORT's Binding
 * namespace). Capability bindings add their functions to `NativeBinding` here; nothing else in lib/
 * touches untyped native values. Constraints are enforced by the TS layer before these are called.
 */

export interface NativeStorage {
  readonly byteLength: number;
  dispose(): void;
  /** Host data -> storage, converting srcDType -> dstDType (dtype ids), n elements. Enqueued on `stream`. */
  upload(stream: NativeStream, data: ArrayBufferView, srcDType: number, dstDType: number, n: number): void;
  /** Storage -> host ArrayBuffer, converting. Resolves when the copy is done (stream order). */
  download(stream: NativeStream, srcDType: number, dstDType: number, n: number): Promise<ArrayBuffer>;
  fill(stream: NativeStream, byteValue: number): void;
  copyFrom(stream: NativeStream, src: NativeStorage, bytes: number): void;
  convertFrom(stream: NativeStream, src: NativeStorage, srcDType: number, dstDType: number, n: number): void;
  /** The error a failed producer op left on this storage, if any. */
  errorMessage(): (Error & NativeErrorFields) | undefined;
}

export interface NativeErrorFields {
  code?: string;
  op?: string;
  cudaError?: string;
  cudaErrorCode?: number;
}

export interface NativeMark {
  readonly done: boolean;
  elapsedSince(earlier: NativeMark): number;
}

export interface NativeStream {
  readonly isCuda: boolean;
  readonly pending: number;
  synchronize(): Promise<void>;
  mark(): NativeMark;
  dispose(): void;
  spinForTesting(ms: number): void;
  faultForTesting(): void;
}

export interface NativeMemory {
  tensors: number;
  deviceBytes: number;
  hostBytes: number;
  poolReservedBytes: number;
}

export interface NativeContext {
  allocate(bytes: number, stream: NativeStream): NativeStorage;
  readonly defaultStream: NativeStream;
  createStream(): NativeStream;
  memory(): NativeMemory;
  deviceMemoryInfo(): { freeBytes: number; totalBytes: number };
  releaseCachedMemory(): void;
  dispose(): void;
}

export interface NativeDeviceInfo {
  index: number;
  name: string;
  computeCapability: string;
  totalBytes: number;
  freeBytes: number;
  multiprocessors: number;
  hasKernelImage: boolean;
}

export interface NativeCudaProbe {
  builtWithCuda: boolean;
  usable: boolean;
  reason: string;
  reasonCode: string;
  driverVersion: number;
  runtimeVersion: number;
  builtArchitectures: string;
  /** Absent from binaries built before it existed (and from CPU-only ones). */
  moduleLoading?: string;
  moduleLoadingSource?: string;
  devices: NativeDeviceInfo[];
}

export interface NativeBinding {
  readonly napiVersion: number;
  init(options: { isMainThread: boolean }): void;
  probeCuda(): NativeCudaProbe;
  builtWithCuda(): boolean;
  cudaProbed(): boolean;
  cpuInfo(): { threads: number; features: string[]; dispatch: string };
  setNumThreads(threads: number): void;
  NativeContext: new (kind: number, device: number, maxDeviceBytes: number) => NativeContext;
  NativeStorage: Function;
  NativeStream: Function;
  NativeMark: Function;
  // Capability bindings extend this interface in their own modules via declaration merging
  // (see lib/attention/native.ts etc.), keeping one description per room.
  [op: string]: unknown;
}
