/**
 * The PBS planning stages, each callable on its own (specs/attention.md 6.3 steps 2-6). They enqueue the
 * same kernels pbsAttention runs in one task, so a pipeline built from them gives the same permutation and
 * layout:
 *
 *   const scores = pbsProxyScores(q, k);                                  // float32 [B, Hp, P]
 *   const perm = pbsPermutation(scores, { seqLen: N });                   // int32 [B, Hp, N]
 *   const { layout, keptBlocks } = pbsSelectBlocks(q, k, perm);           // device BlockLayout
 *
 * Hp (permutation heads) is Hk with gqaMode 'shared' and Hq with 'perQueryHead'.
 */
import { ShapeError } from '../errors.js';
import { allocOutput, checkTensor, commonContext } from '../internal/op.js';
import { PBS_STAGE } from '../native/pbs.js';
import type { Tensor } from '../tensor.js';
import { checkInteger, checkOptions } from '../validate.js';
import { type DeviceBlockLayout, makeDeviceLayout } from './device-layout.js';
import { PBS_DEFAULTS, type PbsPermutationOptions, type PbsProxyOptions, type PbsSelectOptions, type PbsSelectorName } from './options.js';
import {
  type Shapes,
  SELECTORS,
  checkBlockSize,
  checkLimits,
  checkSegmentSize,
  checkShapes,
  dimsOf,
  enqueuePbs,
  nativeParams,
  opStream,
  resolveOptions,
} from './problem.js';

/**
 * @internal Inverses of the permutations our permute stage produced (it writes both). pbsSelectBlocks
 * reads the sink's slot from the inverse; a permutation found here needs no host check or inversion.
 * Weak: an inverse lives as long as its permutation tensor object.
 */
const inverses = new WeakMap<Tensor, Tensor<'int32'>>();

/** @internal */
export function registerInverse(perm: Tensor<'int32'>, inv: Tensor<'int32'>): void {
  inverses.set(perm, inv);
  // Freed with the permutation's memory: disposing perm frees its inverse at once (the WeakMap alone kept
  // it until the perm object was garbage collected, so memory grew with every pbsPermutation call).
  perm._attach(inv);
}

function knownInverse(perm: Tensor): Tensor<'int32'> | undefined {
  const inv = inverses.get(perm);
  return inv && !inv.isDisposed && !inv._error ? inv : undefined;
}

/** Placeholders the permute-only call passes where the binding's checks want q/k metadata. */
function permuteOnlyShapes(scores: Tensor, batch: number, heads: number, seqLen: number): Shapes {
  const cuda = scores.context.backend === 'cuda';
  // The stage checks validate dtype and head dim on CUDA even though the permutation never reads q or k.
  return { ctx: scores.context, cuda, dtype: cuda ? 'bfloat16' : 'float32', batch, headsQ: heads, headsK: heads, seqLen, headDim: 64 };
}

/**
 * Stage 1, the key-importance proxy: for each (batch, permutation head), the mean over the last R queries
 * of their softmax over the first P = floor(N / segmentSize) * segmentSize keys (no causal mask unless
 * proxyCausal). In 'shared' mode the group's query heads are averaged first.
 * @returns float32 [batch, Hp, P] (each row sums to 1 when P > 0).
 */
export function pbsProxyScores(q: Tensor, k: Tensor, options?: PbsProxyOptions): Tensor<'float32'> {
  const o = checkOptions<PbsProxyOptions>('options', options, ['blockSize', 'segmentSize', 'gqaMode', 'proxyRows', 'proxyCausal', 'scale', 'stream']);
  const s = checkShapes(q, k, undefined);
  const r = resolveOptions(o, s.headDim);
  checkLimits(s, r.blockSize, r.gqaMode);
  const stream = opStream(s.ctx, o.stream);
  const d = dimsOf(s, r.blockSize, r.segmentSize, r.gqaMode);
  const scores = allocOutput(s.ctx, stream, [s.batch, d.permHeads, d.permutedLen], 'float32');
  if (scores.size === 0) return scores;
  const params = nativeParams({ ...s, ...r, segment: r.segmentSize, selector: 'meanpool' }, PBS_STAGE.proxy, false);
  enqueuePbs(stream, { q, k }, { scores }, params);
  return scores;
}

/**
 * Stage 2, the segmented permutation: inside each complete segment of segmentSize keys, a stable argsort of
 * -scores (ties keep the lower index first; NaN sorts as -Infinity); the tail [P, N) keeps its order.
 * @param scores float32 [batch, Hp, P] with P = floor(seqLen / segmentSize) * segmentSize (pbsProxyScores).
 * @returns int32 [batch, Hp, seqLen]: key slot j holds original key perm[b, hp, j].
 */
export function pbsPermutation(scores: Tensor, options: PbsPermutationOptions): Tensor<'int32'> {
  const o = checkOptions<PbsPermutationOptions>('options', options, ['seqLen', 'segmentSize', 'blockSize', 'stream']);
  if (options === undefined) throw new TypeError('Expected an options object with seqLen for options but received undefined');
  const sc = checkTensor('scores', scores, { rank: 3, dtypes: ['float32'] });
  const ctx = commonContext({ scores: sc });
  const seqLen = checkInteger('options.seqLen', o.seqLen, 1, 2 ** 31 - 1);
  const blockSize = checkBlockSize('options.blockSize', o.blockSize);
  const segment = checkSegmentSize('options.segmentSize', o.segmentSize, blockSize);
  const [batch, heads, p] = sc.dims as [number, number, number];
  const want = Math.floor(seqLen / segment) * segment;
  if (p !== want) {
    throw new ShapeError(
      `Expected scores to have ${want} entries per row (floor(seqLen / segmentSize) * segmentSize = floor(${seqLen} / ${segment}) * ${segment}) but its dims are [${sc.dims.join(', ')}]`,
    );
  }
  const s = permuteOnlyShapes(sc, batch, heads, seqLen);
  checkLimits(s, blockSize, 'shared');
  const stream = opStream(ctx, o.stream);
  const perm = allocOutput(ctx, stream, [batch, heads, seqLen], 'int32');
  if (perm.size === 0) return perm;
  const inv = allocOutput(ctx, stream, [batch, heads, seqLen], 'int32');
  const params = nativeParams(
    {
      ...s,
      blockSize,
      segment,
      threshold: PBS_DEFAULTS.threshold,
      scale: 0,
      gqaMode: 'shared',
      proxyRows: undefined,
      proxyCausal: false,
      forceSink: true,
      pool: 'mean',
      selector: 'meanpool',
      antidiagonalStride: PBS_DEFAULTS.antidiagonalStride,
    },
    PBS_STAGE.permute,
    false,
  );
  enqueuePbs(stream, { scores: sc }, { perm, invPerm: inv }, params);
  registerInverse(perm, inv);
  return perm;
}

/** What pbsSelectBlocks returns. */
export interface PbsSelection {
  /**
   * The layout, device-resident ([batch, Hq] rows of T query blocks, block indices in the permuted key
   * order of `perm`): pass it to pbsAttention through a custom selector, or `await layout.toHost()`.
   */
  layout: DeviceBlockLayout;
  /** int32 [batch, Hq]: computed (query block, key block) pairs per head (selected + own segment). */
  keptBlocks: Tensor<'int32'>;
  /** T (T + 1) / 2: the causal blocks per head, the denominator of the density. */
  causalBlocks: number;
}

/**
 * Stages 3-4 (or 5): pools the query blocks and the permuted key blocks and selects, per (batch, query
 * head, query block), the fewest blocks of earlier segments whose estimated probability reaches the
 * threshold, plus the sink block and the query block's own segment (specs/attention.md 6.3 steps 5-6).
 *
 * @param perm int32 [batch, Hp, N]: from pbsPermutation or a pbsAttention selector context (used as is),
 *   or any permutation that only reorders keys inside complete segments of segmentSize (checked and
 *   inverted when the op runs; a violation fails the op's outputs with a message naming the position).
 */
export function pbsSelectBlocks(q: Tensor, k: Tensor, perm: Tensor, options?: PbsSelectOptions): PbsSelection {
  const o = checkOptions<PbsSelectOptions>('options', options, [
    'blockSize',
    'segmentSize',
    'threshold',
    'gqaMode',
    'forceSink',
    'pool',
    'selector',
    'antidiagonalStride',
    'scale',
    'stream',
  ]);
  const pt = checkTensor('perm', perm, { rank: 3, dtypes: ['int32'] }) as Tensor<'int32'>;
  const s = checkShapes(q, k, undefined, { perm: pt });
  if (o.selector !== undefined && typeof o.selector !== 'string') {
    throw new TypeError(`Expected one of ${SELECTORS.map((x) => JSON.stringify(x)).join(', ')} for options.selector but received a ${typeof o.selector} (custom selectors plug into pbsAttention)`);
  }
  const r = resolveOptions(o, s.headDim);
  const selector = r.selector as PbsSelectorName;
  checkLimits(s, r.blockSize, r.gqaMode);
  const d = dimsOf(s, r.blockSize, r.segmentSize, r.gqaMode);
  checkTensor('perm', pt, { dims: [s.batch, d.permHeads, s.seqLen] });
  const stream = opStream(s.ctx, o.stream);
  return selectOnDevice(q, k, s, { ...r, selector }, r.segmentSize, pt, stream);
}

/** @internal pbsSelectBlocks after validation (pbsAttention's selector contexts pass their own permutation). */
export function selectOnDevice(
  q: Tensor,
  k: Tensor,
  s: Shapes,
  r: ReturnType<typeof resolveOptions> & { selector: PbsSelectorName },
  segment: number,
  perm: Tensor<'int32'>,
  stream: ReturnType<typeof opStream>,
): PbsSelection {
  const d = dimsOf(s, r.blockSize, segment, r.gqaMode);
  const t = d.numBlocks;
  const rows = [s.batch, s.headsQ, t];
  const fullCounts = allocOutput(s.ctx, stream, rows, 'int32');
  const fullIndices = allocOutput(s.ctx, stream, [...rows, t], 'int32');
  const maskCounts = allocOutput(s.ctx, stream, rows, 'int32');
  const maskIndices = allocOutput(s.ctx, stream, [...rows, d.maskMaxBlocks], 'int32');
  const keptBlocks = allocOutput(s.ctx, stream, [s.batch, s.headsQ], 'int32');
  const layout = makeDeviceLayout({
    context: s.ctx,
    batch: s.batch,
    heads: s.headsQ,
    seqLen: s.seqLen,
    blockSize: r.blockSize,
    maskMaxBlocks: d.maskMaxBlocks,
    tensors: { fullCounts, fullIndices, maskCounts, maskIndices, blockSize: r.blockSize },
    keyPermutation: perm,
  });
  const result = { layout, keptBlocks, causalBlocks: (t * (t + 1)) / 2 };
  if (s.batch * s.headsQ * s.seqLen === 0) return result;
  const known = knownInverse(perm);
  const inv = known ?? allocOutput(s.ctx, stream, [s.batch, d.permHeads, s.seqLen], 'int32');
  const meanpool = r.selector === 'meanpool';
  const qbar = meanpool ? allocOutput(s.ctx, stream, [s.batch, s.headsQ, t, s.headDim], 'float32') : undefined;
  const kbar = meanpool ? allocOutput(s.ctx, stream, [s.batch, d.permHeads, t, s.headDim], 'float32') : undefined;
  const stages = PBS_STAGE.select | (known ? 0 : PBS_STAGE.invert);
  const params = nativeParams({ ...s, ...r, segment }, stages, false);
  const outputs = { fullCnt: fullCounts, fullIdx: fullIndices, maskCnt: maskCounts, maskIdx: maskIndices, keptBlocks, qbar, kbar, ...(known ? {} : { invPerm: inv }) };
  enqueuePbs(stream, { q, k, perm, ...(known ? { invPerm: inv } : {}) }, outputs, params);
  qbar?.dispose();
  kbar?.dispose();
  if (known) return result;
  // The inverse we just computed (and checked) makes the next use of this permutation a device-only one.
  registerInverse(perm, inv);
  return result;
}
