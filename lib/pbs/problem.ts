/**
 * @internal Validation and native plumbing shared by pbsAttention and its stages: every argument is
 * checked here (TypeError / RangeError / ShapeError naming it) before anything is enqueued, and the
 * resolved problem is turned into the binding's parameters (src/bindings/pbs.cc).
 */
import type { Context } from '../context.js';
import { DTYPE_ID, type FloatDType } from '../dtype.js';
import { ShapeError } from '../errors.js';
import { checkTensor, commonContext, opStream, runOp, storages } from '../internal/op.js';
import { nativeOps } from '../native/load.js';
import {
  type NativePbsParams,
  PBS_GQA_MODE_ID,
  PBS_POOL_ID,
  PBS_SELECTOR_ID,
  type PbsBinding,
} from '../native/pbs.js';
import type { Stream } from '../stream.js';
import type { Tensor } from '../tensor.js';
import { checkBoolean, checkInteger, checkNumber, checkOneOf, invalidType, invalidValue, isInteger } from '../validate.js';
import {
  PBS_DEFAULTS,
  type PbsGqaMode,
  type PbsOptions,
  type PbsPool,
  type PbsSelectorFn,
  type PbsSelectorName,
} from './options.js';

const CUDA_DTYPES: readonly FloatDType[] = ['float16', 'bfloat16'];
const CPU_DTYPES: readonly FloatDType[] = ['float32', 'float16', 'bfloat16'];
/** The CUDA stage kernels are built for these head dims (src/ops/pbs.h). */
const CUDA_HEAD_DIMS = [64, 128];
const CPU_MAX_HEAD_DIM = 1024;
/** One CTA sorts a segment in shared memory (cuda/pbs/NOTES.md); the CPU keeps the same limit. */
export const MAX_SEGMENT_SIZE = 8192;
/** CUDA selection keeps one row of T candidates per CTA. */
const CUDA_MAX_BLOCKS = 8192;
const CUDA_MAX_GRID_Y = 65535;
const INT32_MAX = 2 ** 31 - 1;

export const GQA_MODES: readonly PbsGqaMode[] = ['shared', 'perQueryHead'];
export const POOLS: readonly PbsPool[] = ['mean', 'max'];
export const SELECTORS: readonly PbsSelectorName[] = ['meanpool', 'antidiagonal'];

/** q and k (and v) checked against each other and the backend. */
export interface Shapes {
  ctx: Context;
  cuda: boolean;
  dtype: FloatDType;
  batch: number;
  headsQ: number;
  headsK: number;
  seqLen: number;
  headDim: number;
}

/** Every option of PbsOptions resolved to a value (selector may be a function). */
export interface Resolved {
  blockSize: 64 | 128;
  segmentSize: number;
  threshold: number;
  /** The resolved softmax scale. */
  scale: number;
  gqaMode: PbsGqaMode;
  /** As given (undefined = blockSize); the kernels cap it at N. */
  proxyRows: number | undefined;
  proxyCausal: boolean;
  forceSink: boolean;
  pool: PbsPool;
  selector: PbsSelectorName | PbsSelectorFn;
  antidiagonalStride: 4 | 8 | 16;
  minSeqLen: number;
  permute: boolean;
  returnLse: boolean;
  returnStats: boolean;
}

export type Problem = Shapes & Resolved & { stream: Stream };

/**
 * Checks q, k (and v when given): rank 4, one context, dtypes (CUDA: float16 | bfloat16; CPU: any float,
 * computed in float32), equal lengths (causal self-attention prefill only), Hq a multiple of Hk, head dim
 * (CUDA 64 | 128; CPU up to 1024) and the CUDA grid limits.
 */
export function checkShapes(q: unknown, k: unknown, v: unknown | undefined, extra: Record<string, Tensor | undefined> = {}): Shapes {
  const qt = checkTensor('q', q, { rank: 4 });
  const kt = checkTensor('k', k, { rank: 4 });
  const vt = v === undefined ? undefined : checkTensor('v', v, { rank: 4 });
  const ctx = commonContext({ q: qt, k: kt, v: vt, ...extra });
  const cuda = ctx.backend === 'cuda';
  const dtypes = cuda ? CUDA_DTYPES : CPU_DTYPES;
  if (!(dtypes as readonly string[]).includes(qt.dtype)) {
    const where = cuda ? ' on a CUDA context (cast with q.cast("bfloat16"))' : '';
    throw new TypeError(`Expected q to have dtype ${dtypes.join(' | ')}${where} but it is ${qt.dtype}`);
  }
  if (kt.dtype !== qt.dtype) throw new TypeError(`Expected k to have q's dtype (${qt.dtype}) but it is ${kt.dtype}`);
  if (vt && vt.dtype !== qt.dtype) throw new TypeError(`Expected v to have q's dtype (${qt.dtype}) but it is ${vt.dtype}`);
  const [batch, headsQ, seqLen, headDim] = qt.dims as [number, number, number, number];
  if (cuda ? !CUDA_HEAD_DIMS.includes(headDim) : headDim < 1 || headDim > CPU_MAX_HEAD_DIM) {
    const want = cuda ? '64 or 128 on CUDA' : `between 1 and ${CPU_MAX_HEAD_DIM} on the CPU`;
    throw new ShapeError(`Expected q's head dimension (dims[3]) to be ${want} but q's dims are [${qt.dims.join(', ')}]`);
  }
  const [kb, headsK, seqK, kd] = kt.dims as [number, number, number, number];
  if (kb !== batch || kd !== headDim) {
    throw new ShapeError(`Expected k to have dims [${batch}, *, *, ${headDim}] (q's batch and head dim) but they are [${kt.dims.join(', ')}]`);
  }
  if (seqK !== seqLen) {
    throw new ShapeError(
      `Expected k to have q's length (${seqLen}) but it has ${seqK} rows: PBS is causal self-attention prefill (equal query and key lengths) only`,
    );
  }
  if (vt) checkTensor('v', vt, { dims: kt.dims });
  if (headsK === 0 ? headsQ !== 0 : headsQ % headsK !== 0) {
    throw new ShapeError(`Expected q's heads (${headsQ}) to be a multiple of k's heads (${headsK}) (grouped-query attention)`);
  }
  if (seqLen > INT32_MAX) throw new ShapeError(`Expected at most ${INT32_MAX} tokens but q has ${seqLen}`);
  if (cuda && batch > CUDA_MAX_GRID_Y) throw new ShapeError(`Expected a batch of at most ${CUDA_MAX_GRID_Y} on CUDA but q's is ${batch}`);
  return { ctx, cuda, dtype: qt.dtype as FloatDType, batch, headsQ, headsK, seqLen, headDim };
}

export function checkBlockSize(name: string, v: unknown): 64 | 128 {
  if (v === undefined) return PBS_DEFAULTS.blockSize;
  if (!isInteger(v)) throw invalidType(name, 'an integer (64 or 128)', v);
  if (v !== 64 && v !== 128) throw invalidValue(name, '64 or 128', v);
  return v;
}

export function checkSegmentSize(name: string, v: unknown, blockSize: number): number {
  if (v === undefined) {
    // The default (256) is a multiple of both block sizes.
    return PBS_DEFAULTS.segmentSize;
  }
  const s = checkInteger(name, v, blockSize, MAX_SEGMENT_SIZE);
  if (s % blockSize !== 0) throw invalidValue(name, `a multiple of blockSize (${blockSize})`, v);
  return s;
}

export function checkThreshold(name: string, v: unknown): number {
  if (v === undefined) return PBS_DEFAULTS.threshold;
  const t = checkNumber(name, v);
  // The kernels compare in float32: a positive value that rounds to 0 would select nothing.
  if (!(t > 0 && t <= 1 && Math.fround(t) > 0)) throw invalidValue(name, 'a number in (0, 1]', v);
  return t;
}

export function checkScale(name: string, v: unknown, headDim: number): number {
  if (v === undefined) return 1 / Math.sqrt(headDim);
  const s = checkNumber(name, v);
  const f = Math.fround(s);
  if (!(f > 0 && Number.isFinite(f))) throw invalidValue(name, 'a number > 0 representable as a finite float32', v);
  return s;
}

export function checkAntidiagonalStride(name: string, v: unknown, blockSize: number): 4 | 8 | 16 {
  if (v === undefined) {
    return PBS_DEFAULTS.antidiagonalStride;
  }
  if (!isInteger(v)) throw invalidType(name, 'an integer (4, 8 or 16)', v);
  if (v !== 4 && v !== 8 && v !== 16) throw invalidValue(name, '4, 8 or 16', v);
  // The kernels hold blockSize / stride <= 16 reshaped rows per block.
  if (blockSize / v > 16) throw invalidValue(name, `a stride >= blockSize / 16 (${blockSize / 16}) for blockSize ${blockSize}`, v);
  return v;
}

const opt = <T>(v: T | undefined, dflt: T, check: (v: unknown) => T): T => (v === undefined ? dflt : check(v));

/** Resolves and validates every option of PbsOptions (names in messages: `options.<key>`). */
export function resolveOptions(o: Partial<PbsOptions>, headDim: number): Resolved {
  const blockSize = checkBlockSize('options.blockSize', o.blockSize);
  const segmentSize = checkSegmentSize('options.segmentSize', o.segmentSize, blockSize);
  let selector: PbsSelectorName | PbsSelectorFn = PBS_DEFAULTS.selector;
  if (o.selector !== undefined) {
    if (typeof o.selector === 'function') selector = o.selector;
    else if (typeof o.selector === 'string') selector = checkOneOf('options.selector', o.selector, SELECTORS);
    else throw invalidType('options.selector', `one of ${SELECTORS.map((s) => JSON.stringify(s)).join(', ')} or a function`, o.selector);
  }
  return {
    blockSize,
    segmentSize,
    threshold: checkThreshold('options.threshold', o.threshold),
    scale: checkScale('options.scale', o.scale, headDim),
    gqaMode: opt(o.gqaMode, PBS_DEFAULTS.gqaMode, (v) => checkOneOf('options.gqaMode', v, GQA_MODES)),
    proxyRows: o.proxyRows === undefined ? undefined : checkInteger('options.proxyRows', o.proxyRows, 1, INT32_MAX),
    proxyCausal: opt(o.proxyCausal, PBS_DEFAULTS.proxyCausal, (v) => checkBoolean('options.proxyCausal', v)),
    forceSink: opt(o.forceSink, PBS_DEFAULTS.forceSink, (v) => checkBoolean('options.forceSink', v)),
    pool: opt(o.pool, PBS_DEFAULTS.pool, (v) => checkOneOf('options.pool', v, POOLS)),
    selector,
    antidiagonalStride: checkAntidiagonalStride('options.antidiagonalStride', o.antidiagonalStride, blockSize),
    minSeqLen: opt(o.minSeqLen, PBS_DEFAULTS.minSeqLen, (v) => checkInteger('options.minSeqLen', v, 0, Number.MAX_SAFE_INTEGER)),
    permute: opt(o.permute, PBS_DEFAULTS.permute, (v) => checkBoolean('options.permute', v)),
    returnLse: opt(o.returnLse, PBS_DEFAULTS.returnLse, (v) => checkBoolean('options.returnLse', v)),
    returnStats: opt(o.returnStats, PBS_DEFAULTS.returnStats, (v) => checkBoolean('options.returnStats', v)),
  };
}

/** Limits that depend on the resolved options (the CUDA selection row and grid). */
export function checkLimits(s: Shapes, blockSize: number, gqaMode: PbsGqaMode): void {
  if (!s.cuda) return;
  const t = Math.ceil(s.seqLen / blockSize);
  if (t > CUDA_MAX_BLOCKS) {
    throw new ShapeError(
      `Expected at most ${CUDA_MAX_BLOCKS * blockSize} tokens (${CUDA_MAX_BLOCKS} blocks of ${blockSize}) on CUDA but q has ${s.seqLen}`,
    );
  }
  const permHeads = gqaMode === 'shared' ? s.headsK : s.headsQ;
  if (s.headsQ + permHeads > CUDA_MAX_GRID_Y) {
    throw new ShapeError(`Expected at most ${CUDA_MAX_GRID_Y} query plus permutation heads on CUDA but there are ${s.headsQ + permHeads}`);
  }
}

/** Sizes derived from the problem (src/ops/pbs.h PbsDims). */
export interface Dims {
  /** Hk ('shared') or Hq ('perQueryHead'). */
  permHeads: number;
  /** T = ceil(N / blockSize). */
  numBlocks: number;
  /** P = floor(N / segment) * segment. */
  permutedLen: number;
  /** Row stride of the masked list: segment / blockSize + 1. */
  maskMaxBlocks: number;
}

export function dimsOf(s: { headsQ: number; headsK: number; seqLen: number }, blockSize: number, segment: number, gqaMode: PbsGqaMode): Dims {
  return {
    permHeads: gqaMode === 'shared' ? s.headsK : s.headsQ,
    numBlocks: Math.ceil(s.seqLen / blockSize),
    permutedLen: Math.floor(s.seqLen / segment) * segment,
    maskMaxBlocks: segment / blockSize + 1,
  };
}

/** Everything the binding reads (sizes and options); `segment` is the segment the stages use. */
export interface NativeInput {
  dtype: FloatDType;
  batch: number;
  headsQ: number;
  headsK: number;
  seqLen: number;
  headDim: number;
  blockSize: number;
  segment: number;
  threshold: number;
  scale: number;
  gqaMode: PbsGqaMode;
  proxyRows: number | undefined;
  proxyCausal: boolean;
  forceSink: boolean;
  pool: PbsPool;
  selector: PbsSelectorName;
  antidiagonalStride: number;
}

export function nativeParams(x: NativeInput, stages: number, timing: boolean): NativePbsParams {
  return {
    stages,
    timing,
    dtype: DTYPE_ID[x.dtype],
    batch: x.batch,
    headsQ: x.headsQ,
    headsK: x.headsK,
    seqLen: x.seqLen,
    headDim: x.headDim,
    blockSize: x.blockSize,
    segmentSize: x.segment,
    threshold: x.threshold,
    scale: x.scale,
    gqaMode: PBS_GQA_MODE_ID[x.gqaMode],
    proxyRows: x.proxyRows ?? 0,
    proxyCausal: x.proxyCausal,
    forceSink: x.forceSink,
    pool: PBS_POOL_ID[x.pool],
    selector: PBS_SELECTOR_ID[x.selector],
    antidiagStride: x.antidiagonalStride,
  };
}

/** A settled outcome that never rejects (so an unread stats object cannot raise an unhandled rejection). */
export type Outcome<T> = { ok: true; value: T } | { ok: false; error: unknown };

export function settle<T>(p: Promise<T>): Promise<Outcome<T>> {
  return p.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );
}

/**
 * Enqueues one pbsRun task through runOp (a failed input or output allocation short-circuits it: the
 * outputs carry the error). Returns the settled stage times when `timing` is set.
 */
export function enqueuePbs(
  stream: Stream,
  inputs: Record<string, Tensor | undefined>,
  outputs: Record<string, Tensor | undefined>,
  params: NativePbsParams,
): Promise<Outcome<Float64Array>> | undefined {
  let times: Promise<Float64Array> | undefined;
  const outs = Object.values(outputs).filter((t): t is Tensor => t !== undefined);
  runOp(Object.values(inputs), outs, stream, (ns) => {
    const tensors = storages({ ...inputs, ...outputs });
    times = nativeOps<PbsBinding>().pbsRun(ns, tensors, params) ?? undefined;
  });
  if (!params.timing) return undefined;
  if (times) return settle(times);
  // Short-circuited: report the error the outputs carry.
  const failed = outs.find((t) => t._error)?._error ?? new Error('pbs: the stage task was not enqueued');
  return Promise.resolve({ ok: false, error: failed });
}

export { opStream };
