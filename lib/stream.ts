/**
 * A Stream is an ordered queue of work on one device: a CUDA stream, or a CPU task queue run by a
 * worker thread (kernels spread each task over the CPU thread pool). Ops enqueued on one stream run in
 * order; ops on different streams may run concurrently, ordered only through the tensors they share.
 */
import type { Context } from './context.js';
import { DisposedError, fromNative } from './errors.js';
import type { NativeMark, NativeStream } from './native/binding.js';

/** A timestamp taken in stream order; compare two with `elapsedSince` once the stream has passed both. */
export class StreamMark {
  /** @internal */
  constructor(
    /** @internal */ readonly _native: NativeMark,
    readonly stream: Stream,
  ) {}

  /** Whether the stream has reached this mark. */
  get done(): boolean {
    return this._native.done;
  }

  /** Milliseconds from `earlier` to this mark (CUDA events on GPU, a monotonic clock on CPU). */
  elapsedSince(earlier: StreamMark): number {
    return this._native.elapsedSince(earlier._native);
  }
}

export class Stream {
  /** @internal */ _native: NativeStream | null;
  /** @internal */ _pendingErrors: Error[] = [];
  readonly context: Context;
  /** Whether this is the context's default stream (disposed with the context). */
  readonly isDefault: boolean;

  /** @internal */
  constructor(context: Context, native: NativeStream, isDefault: boolean) {
    this.context = context;
    this._native = native;
    this.isDefault = isDefault;
  }

  get isDisposed(): boolean {
    return this._native === null;
  }

  /** @internal */
  _requireNative(): NativeStream {
    if (this._native === null) throw new DisposedError('this stream was disposed');
    return this._native;
  }

  /**
   * Resolves once everything enqueued on this stream so far has completed. Rejects with the first error
   * of any op since the previous synchronize() (for example ERR_OUT_OF_MEMORY, or ERR_CUDA with the CUDA
   * error name after a device fault). Never blocks the event loop.
   */
  async synchronize(): Promise<void> {
    const callSite = new Error();
    const nativeStream = this._requireNative();
    const jsErrors = this._pendingErrors;
    this._pendingErrors = [];
    try {
      await nativeStream.synchronize();
    } catch (e) {
      throw fromNative(e, callSite);
    }
    if (jsErrors.length > 0) throw jsErrors[0];
  }

  /** Records a timestamp in stream order (for benchmarks). */
  mark(): StreamMark {
    return new StreamMark(this._requireNative().mark(), this);
  }

  /** Number of tasks enqueued and not finished yet. */
  get pending(): number {
    return this._native?.pending ?? 0;
  }

  /**
   * Lets queued work finish, then ends the stream's threads. Using the stream afterwards throws
   * DisposedError. The default stream is disposed with its context.
   */
  dispose(): void {
    if (this.isDefault) throw new TypeError('the default stream is disposed with its context (context.dispose())');
    this._native?.dispose();
    this._native = null;
    this.context._forgetStream(this);
  }

  [Symbol.dispose](): void {
    if (!this.isDefault) this.dispose();
  }

  /** @internal records an error detected in JS (e.g. an allocation failure) for the next synchronize(). */
  _recordError(e: Error): void {
    if (this._pendingErrors.length < 16) this._pendingErrors.push(e);
  }
}
