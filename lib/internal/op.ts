/**
 * Shared plumbing of every op in lib/ (validate tensors, pick the stream, allocate outputs, propagate
 * failed inputs, call native). An op then reads as: validate options -> check tensors -> allocate
 * outputs -> runOp(...) -> return outputs.
 */
import { Context } from '../context.js';
import type { DType } from '../dtype.js';
import { DisposedError, ShapeError, fromNative } from '../errors.js';
import type { NativeStorage, NativeStream } from '../native/binding.js';
import { Stream } from '../stream.js';
import { Tensor } from '../tensor.js';
import { describe, invalidType, invalidValue } from '../validate.js';

export interface TensorRequirements {
  /** Allowed dtypes. */
  dtypes?: readonly DType[];
  /** Exact rank. */
  rank?: number;
  /** Exact dims; -1 matches any size. */
  dims?: readonly number[];
}

/** Checks `t` is a live Tensor meeting the requirements; TypeError/RangeError/DisposedError name it. */
export function checkTensor(name: string, t: unknown, req: TensorRequirements = {}): Tensor {
  if (!(t instanceof Tensor)) throw invalidType(name, 'a Tensor', t);
  if (t.isDisposed) throw new DisposedError(`${name} was disposed`);
  if (req.dtypes && !req.dtypes.includes(t.dtype)) {
    throw new TypeError(`Expected ${name} to have dtype ${req.dtypes.join(' | ')} but it is ${t.dtype}`);
  }
  if (req.rank !== undefined && t.rank !== req.rank) {
    throw new ShapeError(`Expected ${name} to have rank ${req.rank} but its dims are [${t.dims.join(', ')}]`);
  }
  if (req.dims) {
    const ok = req.dims.length === t.rank && req.dims.every((d, i) => d === -1 || d === t.dims[i]);
    if (!ok) {
      const want = req.dims.map((d) => (d === -1 ? '*' : String(d))).join(', ');
      throw new ShapeError(`Expected ${name} to have dims [${want}] but they are [${t.dims.join(', ')}]`);
    }
  }
  return t;
}

/** All tensors on one context; returns it. */
export function commonContext(tensors: Record<string, Tensor | undefined>): Context {
  let ctx: Context | undefined;
  let first = '';
  for (const [name, t] of Object.entries(tensors)) {
    if (!t) continue;
    if (ctx === undefined) {
      ctx = t.context;
      first = name;
    } else if (t.context !== ctx) {
      throw new TypeError(`${name} is on another context (${t.context.backend}) than ${first} (${ctx.backend})`);
    }
  }
  if (ctx === undefined) throw new TypeError('an op needs at least one tensor');
  ctx._requireNative();
  return ctx;
}

/** The stream an op runs on: options.stream (of the same context) or the context's default stream. */
export function opStream(ctx: Context, stream: unknown, name = 'options.stream'): Stream {
  if (stream === undefined) return ctx.stream;
  if (!(stream instanceof Stream)) throw invalidType(name, 'a Stream', stream);
  if (stream.context !== ctx) throw invalidValue(name, 'a stream of the tensors\' context', describe(stream));
  stream._requireNative();
  return stream;
}

/** Allocates an op output on `stream`. */
export function allocOutput<D extends DType>(ctx: Context, stream: Stream, dims: readonly number[], dtype: D): Tensor<D> {
  return Tensor._allocate(dims, dtype, ctx, stream);
}

/** The native storage handles of named tensors (undefined entries are skipped). */
export function storages(tensors: Record<string, Tensor | undefined>): Record<string, NativeStorage> {
  const out: Record<string, NativeStorage> = {};
  for (const [name, t] of Object.entries(tensors)) {
    if (t) out[name] = t._storage(name);
  }
  return out;
}

/**
 * Runs an op: when an input or an output already carries an error (a failed allocation), the outputs get
 * that error and nothing is enqueued; otherwise `call` enqueues the native work. Synchronous native
 * errors (defensive re-checks) are rethrown as the matching JS errors with the caller's stack.
 */
export function runOp(
  inputs: readonly (Tensor | undefined)[],
  outputs: readonly Tensor[],
  stream: Stream,
  call: (nativeStream: NativeStream) => void,
): void {
  const failed = [...inputs, ...outputs].find((t) => t?._error)?._error;
  if (failed) {
    for (const o of outputs) {
      o._ref?.release();
      o._ref = null;
      o._error = failed;
    }
    return;
  }
  try {
    call(stream._requireNative());
  } catch (e) {
    for (const o of outputs) o.dispose();
    // Synchronous: the stack here is the caller's. (Capturing it before every call cost ~5 us per op.)
    throw fromNative(e, new Error());
  }
}
