/**
 * A Context is one device (the CPU, or one CUDA GPU) with its default stream and memory accounting.
 * Most code uses the default context (`Context.default`); create more for other GPUs, for a memory cap
 * (`maxDeviceBytes`), or to pin a backend.
 */
import { type Backend, type DeviceOption, DEVICE_OPTIONS, defaultDeviceOption, resolveBackend } from './backend.js';
import { DisposedError, fromNative } from './errors.js';
import type { NativeContext } from './native/binding.js';
import { native } from './native/load.js';
import { Stream } from './stream.js';
import { checkInteger, checkOneOf, checkOptions } from './validate.js';

export interface ContextOptions {
  /**
   * Which backend: "cuda" (throws CudaUnavailableError when CUDA cannot be used), "cpu" (never touches
   * CUDA), or "auto" (CUDA when usable, else CPU, logging the reason once).
   * Defaults to SPARSE_KERNELS_DEVICE, else "auto".
   */
  device?: DeviceOption;
  /** CUDA device index on multi-GPU hosts. Defaults to 0. */
  deviceIndex?: number;
  /**
   * Cap on the bytes of live tensors of this context (GPU memory on CUDA, host memory on the CPU); an
   * allocation beyond it fails with ERR_OUT_OF_MEMORY (the tensor's promises and the next synchronize()
   * reject) and the library keeps working. Defaults to 0 = no cap (the device is the limit).
   */
  maxDeviceBytes?: number;
}

export const CONTEXT_DEFAULTS = Object.freeze({ deviceIndex: 0, maxDeviceBytes: 0 });

export interface MemoryInfo {
  /** Live tensors (storages) allocated through this context. */
  tensors: number;
  /** Bytes of live device tensors (CUDA contexts). */
  deviceBytes: number;
  /** Bytes of live host tensors (CPU contexts). */
  hostBytes: number;
  /** Pinned host staging memory held by this context (0: copies go through the driver's staging). */
  pinnedBytes: number;
  /** Device memory held by the CUDA memory pool (live + cached, whole device). */
  poolReservedBytes: number;
}

interface Disposable {
  dispose(): void;
}

let defaultContext: Context | undefined;

export class Context {
  readonly backend: Backend;
  readonly deviceIndex: number;
  readonly maxDeviceBytes: number;
  /** Why this context runs on the CPU although CUDA was not excluded (device "auto" only). */
  readonly fallbackReason?: string;
  /** The default stream: ops run here unless given `{ stream }`. */
  readonly stream: Stream;
  /** @internal */ _native: NativeContext | null;
  /** @internal */ readonly _streams = new Set<Stream>();
  /** @internal */ readonly _owned = new Set<WeakRef<Disposable>>();

  constructor(options?: ContextOptions) {
    const o = checkOptions<ContextOptions>('options', options, ['device', 'deviceIndex', 'maxDeviceBytes']);
    const device = o.device === undefined ? defaultDeviceOption() : checkOneOf('options.device', o.device, DEVICE_OPTIONS);
    this.deviceIndex = o.deviceIndex === undefined ? 0 : checkInteger('options.deviceIndex', o.deviceIndex, 0, 1023);
    this.maxDeviceBytes =
      o.maxDeviceBytes === undefined ? 0 : checkInteger('options.maxDeviceBytes', o.maxDeviceBytes, 0, Number.MAX_SAFE_INTEGER);
    const resolved = resolveBackend(device);
    this.backend = resolved.backend;
    if (device === 'auto' && resolved.backend === 'cpu') this.fallbackReason = resolved.reason;
    const binding = native();
    try {
      this._native = new binding.NativeContext(this.backend === 'cuda' ? 1 : 0, this.deviceIndex, this.maxDeviceBytes);
    } catch (e) {
      throw fromNative(e);
    }
    this.stream = new Stream(this, this._native.defaultStream, true);
  }

  /** The process-wide default context (created on first use from SPARSE_KERNELS_DEVICE / "auto"). */
  static get default(): Context {
    if (defaultContext === undefined || defaultContext.isDisposed) defaultContext = new Context();
    return defaultContext;
  }

  /** Replaces the default context (e.g. `Context.setDefault(new Context({ device: 'cpu' }))`). */
  static setDefault(context: Context): void {
    if (!(context instanceof Context)) throw new TypeError('Expected a Context for context');
    defaultContext = context;
  }

  get isDisposed(): boolean {
    return this._native === null;
  }

  /** @internal */
  _requireNative(): NativeContext {
    if (this._native === null) throw new DisposedError('this context was disposed');
    return this._native;
  }

  /** A new stream on this device; work on it may overlap work on other streams. */
  createStream(): Stream {
    const s = new Stream(this, this._requireNative().createStream(), false);
    this._streams.add(s);
    return s;
  }

  /** Resolves when every stream of this context has finished its enqueued work (rejects on the first error). */
  async synchronize(): Promise<void> {
    const streams = [this.stream, ...this._streams];
    const results = await Promise.allSettled(streams.map((s) => s.synchronize()));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }

  /** Memory accounting of this context (tfjs `memory()` analogue). */
  memory(): MemoryInfo {
    const m = this._requireNative().memory();
    return { tensors: m.tensors, deviceBytes: m.deviceBytes, hostBytes: m.hostBytes, pinnedBytes: 0, poolReservedBytes: m.poolReservedBytes };
  }

  /** Free and total device memory as the driver reports it (cudaMemGetInfo). CUDA contexts only. */
  deviceMemoryInfo(): { freeBytes: number; totalBytes: number } {
    if (this.backend !== 'cuda') throw new TypeError('deviceMemoryInfo() needs a CUDA context');
    return this._requireNative().deviceMemoryInfo();
  }

  /** Waits for all streams, then returns the memory pool's cached blocks to the device. */
  async releaseCachedMemory(): Promise<void> {
    await this.synchronize();
    this._requireNative().releaseCachedMemory();
  }

  /**
   * Disposes every tensor and stream created through this context, then the context. Queued work still
   * finishes in the background; `await context[Symbol.asyncDispose]()` waits for it first.
   */
  dispose(): void {
    if (this._native === null) return;
    for (const ref of this._owned) ref.deref()?.dispose();
    this._owned.clear();
    for (const s of [...this._streams]) s.dispose();
    this._native.dispose();
    this._native = null;
    if (defaultContext === this) defaultContext = undefined;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (this._native === null) return;
    try {
      await this.synchronize();
    } finally {
      this.dispose();
    }
  }

  /** @internal */
  _forgetStream(s: Stream): void {
    this._streams.delete(s);
  }

  /** @internal tensors register so context.dispose() can dispose them */
  _track(t: Disposable): WeakRef<Disposable> {
    const ref = new WeakRef(t);
    this._owned.add(ref);
    return ref;
  }

  /** @internal */
  _untrack(ref: WeakRef<Disposable>): void {
    this._owned.delete(ref);
  }
}
