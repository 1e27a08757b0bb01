/**
 * PBS (permuted block-sparse) attention prefill, specs/attention.md 6.1-6.5:
 *
 *   1. fallback   N <= max(segmentSize, minSeqLen): dense causal attention (same kernel, dense layout)
 *   2. proxy      key importance from the last proxyRows queries                    (stages.ts)
 *   3. permute    stable argsort of the keys inside each segment of segmentSize
 *   4. select     per query block, the fewest earlier-segment key blocks reaching the threshold, plus the
 *                 sink block and the own segment (token-masked through the permutation)
 *   5. attention  the block-sparse kernel gathering permuted keys through the permutation (no permuted
 *                 copies of K/V, no K/V replication under GQA); output in the original token order
 *
 * Steps 2-5 run as ONE task on the stream: no host round trip, the layout never leaves the device. A
 * custom selector (a function) splits that task in two around the call. Validation is synchronous and
 * complete (TypeError / RangeError / ShapeError naming the argument); outputs are returned at once.
 */
import { blockSparseAttention, blockSparseAttentionWithLayoutTensors } from '../attention/index.js';
import { BlockLayout, type LayoutTensors } from '../attention/layout.js';
import { DisposedError, ShapeError } from '../errors.js';
import { allocOutput } from '../internal/op.js';
import { PBS_STAGE } from '../native/pbs.js';
import type { Stream } from '../stream.js';
import { Tensor } from '../tensor.js';
import type { DType } from '../dtype.js';
import { checkOptions, invalidType, invalidValue } from '../validate.js';
import { asDeviceLayout, makeDeviceLayout } from './device-layout.js';
import type { PbsOptions, PbsSelectorContext, PbsSelectorFn, PbsSelectorName } from './options.js';
import { type Problem, checkLimits, checkShapes, dimsOf, enqueuePbs, nativeParams, opStream, resolveOptions } from './problem.js';
import { registerInverse } from './stages.js';
import { PbsStats } from './stats.js';

export * from './options.js';
export { pbsProxyScores, pbsPermutation, pbsSelectBlocks } from './stages.js';
export type { PbsSelection } from './stages.js';
export { isDeviceLayout } from './device-layout.js';
export type { DeviceBlockLayout } from './device-layout.js';
export { PbsStats } from './stats.js';
export type { PbsStageTimes, PbsStatsReport } from './stats.js';

/** What pbsAttention returns with returnLse or returnStats. */
export interface PbsResult<D extends DType = DType> {
  /** [batch, Hq, N, D] in q's dtype, original token order. */
  out: Tensor<D>;
  /** float32 [batch, Hq, N] (with returnLse): natural-log log-sum-exp of each row's scaled scores. */
  lse?: Tensor<'float32'>;
  /** With returnStats: densities, stage times, the layout and permutation used. */
  stats?: PbsStats;
}

const OPTION_KEYS = [
  'blockSize',
  'segmentSize',
  'threshold',
  'scale',
  'gqaMode',
  'proxyRows',
  'proxyCausal',
  'forceSink',
  'pool',
  'selector',
  'antidiagonalStride',
  'minSeqLen',
  'permute',
  'returnLse',
  'returnStats',
  'stream',
] as const;

/** Dense causal layouts of the fallback, per (N, blockSize); small LRU (a layout is immutable). */
const denseLayouts = new Map<string, BlockLayout>();
const DENSE_CACHE = 8;

function denseCausalLayout(seqLen: number, blockSize: 64 | 128): BlockLayout {
  const key = `${seqLen}/${blockSize}`;
  const hit = denseLayouts.get(key);
  if (hit && !hit.isDisposed) {
    denseLayouts.delete(key);
    denseLayouts.set(key, hit);
    return hit;
  }
  const layout = BlockLayout.denseCausal({ seqLen, blockSize });
  denseLayouts.set(key, layout);
  if (denseLayouts.size > DENSE_CACHE) {
    const [oldKey, old] = denseLayouts.entries().next().value as [string, BlockLayout];
    denseLayouts.delete(oldKey);
    old.dispose(); // after the ops queued on it
  }
  return layout;
}

function result<D extends DType>(p: Problem, out: Tensor<D>, lse: Tensor<'float32'> | undefined, stats: PbsStats | undefined): Tensor<D> | PbsResult<D> {
  if (!p.returnLse && !p.returnStats) return out;
  const r: PbsResult<D> = { out };
  if (lse) r.lse = lse;
  if (stats) r.stats = stats;
  return r;
}

function statsBase(p: Problem, fallback: boolean, permuted: boolean, selector: string) {
  return {
    fallback,
    permuted,
    selector,
    batch: p.batch,
    headsQ: p.headsQ,
    blockSize: p.blockSize,
    numBlocks: Math.ceil(p.seqLen / p.blockSize),
    stream: p.stream,
  };
}

/** Kept blocks per (batch, query head) of a host layout, broadcasting its batch / heads. */
function hostKept(layout: BlockLayout, batch: number, headsQ: number): Int32Array {
  const l = layout.toLists();
  const out = new Int32Array(batch * headsQ);
  const t = layout.queryBlocks;
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < headsQ; h++) {
      const row = ((layout.batch === 1 ? 0 : b) * layout.heads + (layout.heads === 1 ? 0 : h)) * t;
      let n = 0;
      for (let i = 0; i < t; i++) n += l.fullCounts[row + i]! + l.maskCounts[row + i]!;
      out[b * headsQ + h] = n;
    }
  }
  return out;
}

/** batch, Hq or N is 0: empty outputs, nothing enqueued. */
function runEmpty<D extends DType>(q: Tensor<D>, p: Problem): Tensor<D> | PbsResult<D> {
  const out = allocOutput(p.ctx, p.stream, q.dims, q.dtype);
  const lse = p.returnLse ? allocOutput(p.ctx, p.stream, [p.batch, p.headsQ, p.seqLen], 'float32') : undefined;
  let stats: PbsStats | undefined;
  if (p.returnStats) {
    const layout = BlockLayout.fromLists({}, { queryLength: p.seqLen, blockSize: p.blockSize, causal: true });
    const kept = new Int32Array(p.batch * p.headsQ);
    stats = new PbsStats({ ...statsBase(p, true, false, 'dense'), kept: async () => kept, layout, permutation: undefined, owned: [layout] });
  }
  return result(p, out, lse, stats);
}

/** Spec 6.3 step 1: dense causal attention through the same kernel. */
function runFallback<D extends DType>(q: Tensor<D>, k: Tensor<D>, v: Tensor<D>, p: Problem): Tensor<D> | PbsResult<D> {
  // With stats the layout is handed to the caller, so it is not the cached one.
  const layout = p.returnStats ? BlockLayout.denseCausal({ seqLen: p.seqLen, blockSize: p.blockSize }) : denseCausalLayout(p.seqLen, p.blockSize);
  const m0 = p.returnStats ? p.stream.mark() : undefined;
  const r = blockSparseAttention(q, k, v, layout, { causal: true, scale: p.scale, returnLse: p.returnLse, stream: p.stream });
  const out = (r instanceof Tensor ? r : r.out) as Tensor<D>;
  const lse = r instanceof Tensor ? undefined : r.lse;
  let stats: PbsStats | undefined;
  if (p.returnStats) {
    const m1 = p.stream.mark();
    const t = layout.queryBlocks;
    const kept = new Int32Array(p.batch * p.headsQ).fill((t * (t + 1)) / 2);
    const fence = Tensor.zeros([1], { context: p.ctx, stream: p.stream });
    stats = new PbsStats({
      ...statsBase(p, true, false, 'dense'),
      kept: async () => kept,
      marks: { attention: [m0!, m1] },
      fence,
      layout,
      permutation: undefined,
      owned: [layout],
    });
  }
  return result(p, out, lse, stats);
}

/** The fused path: stages and attention in one task. */
function runFused<D extends DType>(q: Tensor<D>, k: Tensor<D>, v: Tensor<D>, p: Problem, selector: PbsSelectorName): Tensor<D> | PbsResult<D> {
  const segment = p.segmentSize;
  const d = dimsOf(p, p.blockSize, segment, p.gqaMode);
  const { ctx, stream } = p;
  const t = d.numBlocks;
  const rows = [p.batch, p.headsQ, t];
  const out = allocOutput(ctx, stream, q.dims, q.dtype);
  const lse = p.returnLse ? allocOutput(ctx, stream, [p.batch, p.headsQ, p.seqLen], 'float32') : undefined;
  const perm = allocOutput(ctx, stream, [p.batch, d.permHeads, p.seqLen], 'int32');
  const inv = allocOutput(ctx, stream, [p.batch, d.permHeads, p.seqLen], 'int32');
  const scores = d.permutedLen > 0 ? allocOutput(ctx, stream, [p.batch, d.permHeads, d.permutedLen], 'float32') : undefined;
  const meanpool = selector === 'meanpool';
  const qbar = meanpool ? allocOutput(ctx, stream, [...rows, p.headDim], 'float32') : undefined;
  const kbar = meanpool ? allocOutput(ctx, stream, [p.batch, d.permHeads, t, p.headDim], 'float32') : undefined;
  const lt: LayoutTensors = {
    fullCounts: allocOutput(ctx, stream, rows, 'int32'),
    fullIndices: allocOutput(ctx, stream, [...rows, t], 'int32'),
    maskCounts: allocOutput(ctx, stream, rows, 'int32'),
    maskIndices: allocOutput(ctx, stream, [...rows, d.maskMaxBlocks], 'int32'),
    blockSize: p.blockSize,
  };
  const kept = p.returnStats ? allocOutput(ctx, stream, [p.batch, p.headsQ], 'int32') : undefined;
  const stages = (p.permute ? PBS_STAGE.proxy | PBS_STAGE.permute : PBS_STAGE.identity) | PBS_STAGE.select | PBS_STAGE.attention;
  const params = nativeParams({ ...p, segment, selector }, stages, p.returnStats);
  const times = enqueuePbs(
    stream,
    { q, k, v },
    {
      out,
      lse,
      scores,
      perm,
      invPerm: inv,
      qbar,
      kbar,
      fullCnt: lt.fullCounts,
      fullIdx: lt.fullIndices,
      maskCnt: lt.maskCounts,
      maskIdx: lt.maskIndices,
      keptBlocks: kept,
    },
    params,
  );
  // Scratch: the task holds its storages until it is done (CPU) or issued (CUDA, freed in stream order).
  scores?.dispose();
  qbar?.dispose();
  kbar?.dispose();
  if (!p.returnStats) {
    for (const x of [perm, inv, lt.fullCounts, lt.fullIndices, lt.maskCounts, lt.maskIndices]) x.dispose();
    return result(p, out, lse, undefined);
  }
  registerInverse(perm, inv);
  const layout = makeDeviceLayout({
    context: ctx,
    batch: p.batch,
    heads: p.headsQ,
    seqLen: p.seqLen,
    blockSize: p.blockSize,
    maskMaxBlocks: d.maskMaxBlocks,
    tensors: lt,
    keyPermutation: p.permute ? perm : undefined,
  });
  const stats = new PbsStats({
    ...statsBase(p, false, p.permute, selector),
    kept: () => kept!.toArray({ stream }),
    taskTimes: times,
    layout,
    permutation: perm,
    owned: [layout, perm, inv, kept!],
  });
  return result(p, out, lse, stats);
}

/**
 * Checks a custom selector's layout against the invariants the kernel's causality depends on: one causal
 * layout of the right geometry in which every query block keeps the block holding its own key. With the
 * permutation that block is unknown (keys move inside the segment), so the whole own segment must be kept
 * as masked blocks (only the token mask through the permutation keeps those keys causal) and full blocks
 * may come only from earlier segments (they run without a mask). In natural order (permute: false) a
 * causal layout with the diagonal block masked is enough.
 */
function checkSelectorLayout(l: unknown, p: Problem, perm: Tensor<'int32'>): BlockLayout {
  const name = 'the layout returned by options.selector';
  if (!(l instanceof BlockLayout)) throw invalidType(name, 'a BlockLayout', l);
  if (l.isDisposed) throw new DisposedError(`${name} was disposed`);
  if (!l.causal) throw invalidValue(`${name}.causal`, 'true (PBS is causal)', l.causal);
  if (l.queryLength !== p.seqLen || l.keyLength !== p.seqLen) {
    throw new ShapeError(`Expected ${name} to be for ${p.seqLen} queries and keys but it is for ${l.queryLength} and ${l.keyLength}`);
  }
  if (l.blockSize !== p.blockSize) throw invalidValue(`${name}.blockSize`, `options.blockSize (${p.blockSize})`, l.blockSize);
  if (l.batch !== 1 && l.batch !== p.batch) throw new ShapeError(`Expected ${name} to have batch 1 or ${p.batch} but it has ${l.batch}`);
  if (l.heads !== 1 && l.heads !== p.headsQ) throw new ShapeError(`Expected ${name} to have heads 1 or ${p.headsQ} but it has ${l.heads}`);
  const dev = asDeviceLayout(l);
  if (dev) {
    if (dev.context !== p.ctx) throw new TypeError(`${name} lives on another context (${dev.context.backend}) than q (${p.ctx.backend})`);
    if (dev._keyPerm !== perm) {
      throw new TypeError(`${name} was selected for another permutation: call pbsSelectBlocks(ctx.q, ctx.k, ctx.perm, ...) inside the selector`);
    }
    if (dev.maskMaxBlocks !== p.segmentSize / p.blockSize + 1) {
      throw invalidValue(`${name}`, `a layout selected with segmentSize ${p.segmentSize} (ctx.segmentSize)`, `a layout selected with segmentSize ${(dev.maskMaxBlocks - 1) * p.blockSize}`);
    }
    return l; // made by our selection kernels for this permutation: the invariants hold by construction
  }
  const lists = l.toLists();
  const perSeg = p.permute ? p.segmentSize / p.blockSize : 1;
  const t = l.queryBlocks;
  for (let row = 0; row < l.batch * l.heads * t; row++) {
    const qb = row % t;
    const segStart = Math.floor(qb / perSeg) * perSeg;
    const segEnd = Math.min(segStart + perSeg, t);
    const at = (list: string) => `${name}: ${list}[b=${Math.floor(row / t / l.heads)}, h=${Math.floor(row / t) % l.heads}, queryBlock=${qb}]`;
    if (p.permute) {
      for (let j = 0; j < lists.fullCounts[row]!; j++) {
        const kb = lists.fullIndices[row * l.maxBlocks + j]!;
        if (kb >= segStart) {
          throw invalidValue(
            at('fullIndices'),
            `full blocks of earlier segments only (< ${segStart}): keys of the own segment are permuted and need the token mask (list them in maskIndices)`,
            kb,
          );
        }
      }
    }
    const masked = new Set<number>();
    for (let j = 0; j < lists.maskCounts[row]!; j++) masked.add(lists.maskIndices[row * l.maskMaxBlocks + j]!);
    for (let kb = segStart; kb < segEnd; kb++) {
      if (!masked.has(kb)) {
        const what = p.permute ? `every block of the query block's own segment (${segStart}..${segEnd - 1}), which holds its own key` : `the diagonal block (${qb}), which holds the query's own key`;
        throw invalidValue(at('maskIndices'), what, `a list without block ${kb}`);
      }
    }
  }
  return l;
}

/** The seam: stages 2-3 as one task, the caller's selector, then the kernel on its layout. */
function runCustom<D extends DType>(q: Tensor<D>, k: Tensor<D>, v: Tensor<D>, p: Problem, fn: PbsSelectorFn): Tensor<D> | PbsResult<D> {
  const segment = p.segmentSize;
  const d = dimsOf(p, p.blockSize, segment, p.gqaMode);
  const { ctx, stream } = p;
  const perm = allocOutput(ctx, stream, [p.batch, d.permHeads, p.seqLen], 'int32');
  const inv = allocOutput(ctx, stream, [p.batch, d.permHeads, p.seqLen], 'int32');
  const scores = d.permutedLen > 0 ? allocOutput(ctx, stream, [p.batch, d.permHeads, d.permutedLen], 'float32') : undefined;
  const stages = p.permute ? PBS_STAGE.proxy | PBS_STAGE.permute : PBS_STAGE.identity;
  const params = nativeParams({ ...p, segment, selector: 'meanpool' }, stages, p.returnStats);
  const times = enqueuePbs(stream, { q, k }, { scores, perm, invPerm: inv }, params);
  scores?.dispose();
  registerInverse(perm, inv);
  const sel0 = p.returnStats ? stream.mark() : undefined;
  const sctx: PbsSelectorContext = {
    q,
    k,
    perm,
    batch: p.batch,
    headsQ: p.headsQ,
    headsK: p.headsK,
    seqLen: p.seqLen,
    headDim: p.headDim,
    blockSize: p.blockSize,
    segmentSize: segment,
    permutationHeads: d.permHeads,
    gqaMode: p.gqaMode,
    threshold: p.threshold,
    scale: p.scale,
    forceSink: p.forceSink,
    pool: p.pool,
    permute: p.permute,
    stream,
  };
  let layout: BlockLayout;
  let lt: LayoutTensors;
  try {
    layout = checkSelectorLayout(fn(sctx), p, perm);
    lt = asDeviceLayout(layout)?._lt ?? layout._tensors(ctx);
  } catch (e) {
    perm.dispose();
    inv.dispose();
    throw e;
  }
  const sel1 = p.returnStats ? stream.mark() : undefined;
  const r = blockSparseAttentionWithLayoutTensors(q, k, v, lt, {
    causal: true,
    scale: p.scale,
    returnLse: p.returnLse,
    stream,
    ...(p.permute ? { keyPermutation: perm } : {}),
  });
  const out = (r instanceof Tensor ? r : r.out) as Tensor<D>;
  const lse = r instanceof Tensor ? undefined : r.lse;
  if (!p.returnStats) {
    perm.dispose();
    inv.dispose();
    return result(p, out, lse, undefined);
  }
  const att1 = stream.mark();
  const fence = Tensor.zeros([1], { context: ctx, stream });
  const dev = asDeviceLayout(layout);
  const kept = dev
    ? async () => {
        const [fc, mc] = await Promise.all([dev._lt.fullCounts.toArray({ stream }), dev._lt.maskCounts.toArray({ stream })]);
        const t = layout.queryBlocks;
        const n = new Int32Array(p.batch * p.headsQ);
        for (let r2 = 0; r2 < n.length; r2++) for (let i = 0; i < t; i++) n[r2] = n[r2]! + fc[r2 * t + i]! + mc[r2 * t + i]!;
        return n;
      }
    : async () => hostKept(layout, p.batch, p.headsQ);
  const stats = new PbsStats({
    ...statsBase(p, false, p.permute, 'custom'),
    kept,
    taskTimes: times,
    marks: { select: [sel0!, sel1!], attention: [sel1!, att1] },
    fence,
    layout,
    permutation: perm,
    owned: [perm, inv],
  });
  return result(p, out, lse, stats);
}

/**
 * PBS attention prefill: causal self-attention over the key blocks PBS selects, in the original token order.
 *
 * @param q [batch, Hq, N, D]; CUDA: float16 | bfloat16 with D 64 or 128; CPU: float32 | float16 | bfloat16
 *   (computed in float32), D up to 1024.
 * @param k [batch, Hk, N, D] in q's dtype, Hq a multiple of Hk (GQA without replicating K/V); the same N
 *   (prefill only).
 * @param v like k.
 * @returns out [batch, Hq, N, D] in q's dtype, or `{ out, lse?, stats? }` with returnLse / returnStats.
 */
export function pbsAttention<D extends DType>(
  q: Tensor<D>,
  k: Tensor<D>,
  v: Tensor<D>,
  options?: PbsOptions & { returnLse?: false; returnStats?: false },
): Tensor<D>;
export function pbsAttention<D extends DType>(
  q: Tensor<D>,
  k: Tensor<D>,
  v: Tensor<D>,
  options: PbsOptions & ({ returnLse: true } | { returnStats: true }),
): PbsResult<D>;
export function pbsAttention<D extends DType>(q: Tensor<D>, k: Tensor<D>, v: Tensor<D>, options?: PbsOptions): Tensor<D> | PbsResult<D>;
export function pbsAttention<D extends DType>(q: Tensor<D>, k: Tensor<D>, v: Tensor<D>, options?: PbsOptions): Tensor<D> | PbsResult<D> {
  const o = checkOptions<PbsOptions>('options', options, OPTION_KEYS);
  const s = checkShapes(q, k, v);
  const r = resolveOptions(o, s.headDim);
  checkLimits(s, r.blockSize, r.gqaMode);
  const stream: Stream = opStream(s.ctx, o.stream);
  const p: Problem = { ...s, ...r, stream };
  if (p.batch * p.headsQ * p.seqLen === 0) return runEmpty(q, p);
  if (p.seqLen <= Math.max(p.segmentSize, p.minSeqLen)) return runFallback(q, k, v, p);
  if (typeof p.selector === 'function') return runCustom(q, k, v, p, p.selector);
  return runFused(q, k, v, p, p.selector);
}

