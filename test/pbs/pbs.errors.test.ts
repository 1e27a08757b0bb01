/**
 * Every invalid argument of pbsAttention and its stages is rejected synchronously, before any native
 * work, with the right error type and a message naming the argument; a custom selector's layout is
 * checked against the invariants the kernel's causality depends on.
 */
import { BlockLayout } from '../../lib/attention';
import { Context } from '../../lib/context';
import { DisposedError, ShapeError } from '../../lib/errors';
import { type PbsOptions, type PbsSelectorContext, pbsAttention, pbsPermutation, pbsProxyScores, pbsSelectBlocks } from '../../lib/pbs';
import { Tensor } from '../../lib/tensor';
import { cpuContext } from '../helpers/gpu';
import { rng } from '../helpers/random';
import { normals } from './common';

const ctx = () => cpuContext();
function tensors(dims: { b?: number; hq?: number; hk?: number; n?: number; d?: number } = {}) {
  const { b = 1, hq = 4, hk = 2, n = 600, d = 32 } = dims;
  const { rng: r } = rng('errors');
  const mk = (h: number) => Tensor.from(normals(r, b * h * n * d), [b, h, n, d], { context: ctx() });
  return { q: mk(hq), k: mk(hk), v: mk(hk) };
}

let base: ReturnType<typeof tensors>;
beforeAll(() => {
  base = tensors();
});
afterAll(() => {
  for (const t of Object.values(base)) t.dispose();
});

const call = (o: unknown) => () => pbsAttention(base.q, base.k, base.v, o as PbsOptions);

describe('options', () => {
  const cases: Array<[string, unknown, ErrorConstructor | typeof ShapeError, RegExp]> = [
    ['options not an object', 5, TypeError, /options object for options/],
    ['unknown key', { treshold: 0.9 }, RangeError, /options\.treshold/],
    ['blockSize 96', { blockSize: 96 }, RangeError, /64 or 128 for options\.blockSize/],
    ['blockSize "128"', { blockSize: '128' }, TypeError, /options\.blockSize/],
    ['segmentSize not a multiple', { segmentSize: 200 }, RangeError, /multiple of blockSize \(128\) for options\.segmentSize/],
    ['segmentSize below the block', { blockSize: 128, segmentSize: 64 }, RangeError, /options\.segmentSize/],
    ['segmentSize above 8192', { segmentSize: 16384 }, RangeError, /options\.segmentSize/],
    ['segmentSize 1.5', { segmentSize: 1.5 }, TypeError, /integer for options\.segmentSize/],
    ['threshold 0', { threshold: 0 }, RangeError, /\(0, 1\] for options\.threshold/],
    ['threshold 1.5', { threshold: 1.5 }, RangeError, /options\.threshold/],
    ['threshold NaN', { threshold: Number.NaN }, RangeError, /finite number for options\.threshold/],
    ['threshold below float32', { threshold: 1e-50 }, RangeError, /options\.threshold/],
    ['threshold "0.9"', { threshold: '0.9' }, TypeError, /number for options\.threshold/],
    ['scale 0', { scale: 0 }, RangeError, /options\.scale/],
    ['scale -1', { scale: -1 }, RangeError, /options\.scale/],
    ['scale Infinity', { scale: Number.POSITIVE_INFINITY }, RangeError, /options\.scale/],
    ['scale overflowing float32', { scale: 1e300 }, RangeError, /finite float32 for options\.scale/],
    ['gqaMode', { gqaMode: 'per_q_head' }, RangeError, /"shared", "perQueryHead" for options\.gqaMode/],
    ['proxyRows 0', { proxyRows: 0 }, RangeError, /options\.proxyRows/],
    ['proxyRows 2.5', { proxyRows: 2.5 }, TypeError, /options\.proxyRows/],
    ['proxyCausal', { proxyCausal: 'yes' }, TypeError, /boolean for options\.proxyCausal/],
    ['forceSink', { forceSink: 1 }, TypeError, /boolean for options\.forceSink/],
    ['pool', { pool: 'avg' }, RangeError, /"mean", "max" for options\.pool/],
    ['selector name', { selector: 'topk' }, RangeError, /options\.selector/],
    ['selector number', { selector: 3 }, TypeError, /options\.selector/],
    ['antidiagonalStride 3', { antidiagonalStride: 3 }, RangeError, /4, 8 or 16 for options\.antidiagonalStride/],
    ['antidiagonalStride 4 with block 128', { antidiagonalStride: 4 }, RangeError, /blockSize \/ 16 .*options\.antidiagonalStride/],
    ['minSeqLen -1', { minSeqLen: -1 }, RangeError, /options\.minSeqLen/],
    ['permute', { permute: 'no' }, TypeError, /boolean for options\.permute/],
    ['returnLse', { returnLse: 1 }, TypeError, /boolean for options\.returnLse/],
    ['returnStats', { returnStats: null }, TypeError, /boolean for options\.returnStats/],
    ['stream', { stream: {} }, TypeError, /Stream for options\.stream/],
  ];
  for (const [name, o, type, msg] of cases) {
    test(name, () => {
      expect(call(o)).toThrow(type);
      expect(call(o)).toThrow(msg);
    });
  }
  test('a stream of another context', () => {
    const other = new Context({ device: 'cpu' });
    expect(call({ stream: other.stream })).toThrow(/options\.stream/);
    other.dispose();
  });
});

describe('tensors', () => {
  test('q not a tensor', () => {
    expect(() => pbsAttention([1, 2] as unknown as Tensor, base.k, base.v)).toThrow(/Tensor for q/);
  });
  test('rank', () => {
    const t = Tensor.zeros([4, 600, 32], { context: ctx() });
    expect(() => pbsAttention(t, base.k, base.v)).toThrow(ShapeError);
    expect(() => pbsAttention(t, base.k, base.v)).toThrow(/q to have rank 4/);
    t.dispose();
  });
  test('dtypes: integer q, k of another dtype, v of another dtype', () => {
    const i = Tensor.zeros([1, 4, 600, 32], { dtype: 'int32', context: ctx() });
    expect(() => pbsAttention(i, base.k, base.v)).toThrow(TypeError);
    const h = base.k.cast('float16');
    expect(() => pbsAttention(base.q, h, base.v)).toThrow(/k to have q's dtype/);
    const hv = base.v.cast('bfloat16');
    expect(() => pbsAttention(base.q, base.k, hv)).toThrow(/v to have q's dtype/);
    for (const t of [i, h, hv]) t.dispose();
  });
  test('shapes: heads not a multiple, lengths differ, head dims differ, batch differs, v unlike k', () => {
    const t3 = tensors({ hq: 3, hk: 2 });
    expect(() => pbsAttention(t3.q, t3.k, t3.v)).toThrow(/multiple of k's heads/);
    const short = tensors({ n: 500 });
    expect(() => pbsAttention(base.q, short.k, short.v)).toThrow(/causal self-attention prefill/);
    const d64 = tensors({ d: 64 });
    expect(() => pbsAttention(base.q, d64.k, d64.v)).toThrow(ShapeError);
    const b2 = tensors({ b: 2 });
    expect(() => pbsAttention(base.q, b2.k, b2.v)).toThrow(/batch and head dim/);
    expect(() => pbsAttention(base.q, base.k, d64.v)).toThrow(/Expected v to have dims/);
    for (const s of [t3, short, d64, b2]) for (const t of Object.values(s)) t.dispose();
  });
  test('head dim beyond the CPU kernels', () => {
    const big = tensors({ hq: 1, hk: 1, n: 300, d: 1025 });
    expect(() => pbsAttention(big.q, big.k, big.v)).toThrow(/head dimension/);
    for (const t of Object.values(big)) t.dispose();
  });
  test('disposed input and mixed contexts', () => {
    const t = tensors();
    t.v.dispose();
    expect(() => pbsAttention(t.q, t.k, t.v)).toThrow(DisposedError);
    const other = new Context({ device: 'cpu' });
    const kOther = Tensor.zeros([1, 2, 600, 32], { context: other });
    expect(() => pbsAttention(t.q, kOther, t.k)).toThrow(/another context/);
    kOther.dispose();
    other.dispose();
    t.q.dispose();
    t.k.dispose();
  });
});

describe('stages', () => {
  test('pbsProxyScores: only its options, validated', () => {
    expect(() => pbsProxyScores(base.q, base.k, { threshold: 0.5 } as never)).toThrow(/options\.threshold/);
    expect(() => pbsProxyScores(base.q, base.k, { proxyRows: -3 })).toThrow(/options\.proxyRows/);
    expect(() => pbsProxyScores(base.q, base.q)).not.toThrow(); // Hk = Hq is MHA
  });
  test('pbsPermutation: scores dtype, rank, length vs seqLen, missing seqLen', () => {
    const ok = Tensor.zeros([1, 2, 512], { context: ctx() });
    expect(() => pbsPermutation(ok, undefined as never)).toThrow(/seqLen/);
    expect(() => pbsPermutation(ok, {} as never)).toThrow(/integer for options\.seqLen/);
    expect(() => pbsPermutation(ok, { seqLen: 800 })).toThrow(/floor\(800 \/ 256\)/);
    expect(() => pbsPermutation(ok, { seqLen: 600, segmentSize: 100 })).toThrow(/options\.segmentSize/);
    const i = Tensor.zeros([1, 2, 512], { dtype: 'int32', context: ctx() });
    expect(() => pbsPermutation(i, { seqLen: 600 })).toThrow(/scores to have dtype float32/);
    const r2 = Tensor.zeros([2, 512], { context: ctx() });
    expect(() => pbsPermutation(r2, { seqLen: 600 })).toThrow(/rank 3/);
    const p = pbsPermutation(ok, { seqLen: 600 });
    expect(p.dims).toEqual([1, 2, 600]);
    for (const t of [ok, i, r2, p]) t.dispose();
  });
  test('pbsSelectBlocks: perm dtype, dims per gqaMode, function selector', () => {
    const perm = Tensor.zeros([1, 2, 600], { dtype: 'int32', context: ctx() });
    const f = Tensor.zeros([1, 2, 600], { context: ctx() });
    expect(() => pbsSelectBlocks(base.q, base.k, f)).toThrow(/perm to have dtype int32/);
    expect(() => pbsSelectBlocks(base.q, base.k, perm, { gqaMode: 'perQueryHead' })).toThrow(/Expected perm to have dims \[1, 4, 600\]/);
    expect(() => pbsSelectBlocks(base.q, base.k, perm, { selector: (() => null) as never })).toThrow(/custom selectors plug into pbsAttention/);
    expect(() => pbsSelectBlocks(base.q, base.k, perm, { threshold: 2 })).toThrow(/options\.threshold/);
    perm.dispose();
    f.dispose();
  });
});

describe('custom selector results', () => {
  const small = { blockSize: 64, segmentSize: 128 } as const;
  const t = 10; // ceil(600 / 64)
  // A valid host layout for small: own segment masked, nothing else.
  const lists = (mutate?: (fc: Int32Array, fi: Int32Array, mc: Int32Array, mi: Int32Array) => void) => {
    const fc = new Int32Array(t);
    const fi = new Int32Array(t * t);
    const mc = new Int32Array(t);
    const mi = new Int32Array(t * 2);
    for (let i = 0; i < t; i++) {
      const s0 = i - (i % 2);
      mi[i * 2] = s0;
      mi[i * 2 + 1] = s0 + 1;
      mc[i] = 2;
    }
    mutate?.(fc, fi, mc, mi);
    return BlockLayout.fromLists({ fullCounts: fc, fullIndices: fi, maskCounts: mc, maskIndices: mi }, { queryLength: 600, blockSize: 64 });
  };
  const withSelector = (fn: (c: PbsSelectorContext) => unknown) => () => pbsAttention(base.q, base.k, base.v, { ...small, selector: fn as never });

  test('a valid minimal layout runs', async () => {
    const out = pbsAttention(base.q, base.k, base.v, { ...small, selector: () => lists() });
    expect((await out.toArray()).every(Number.isFinite)).toBe(true);
    out.dispose();
  });
  test('not a layout', () => {
    expect(withSelector(() => ({}))).toThrow(TypeError);
    expect(withSelector(() => undefined)).toThrow(/BlockLayout for the layout returned by options\.selector/);
  });
  test('a full block inside the own segment (future keys without the token mask)', () => {
    const l = lists((fc, fi, mc, mi) => {
      fc[5] = 1;
      fi[5 * t] = 4; // block 4 is in query block 5's segment (4, 5): listed full instead of masked
      mc[5] = 1;
      mi[5 * 2] = 5;
    });
    expect(withSelector(() => l)).toThrow(RangeError);
    expect(withSelector(() => l)).toThrow(/earlier segments only .*queryBlock=5/);
  });
  test('an own-segment block missing', () => {
    const l = lists((_fc, _fi, mc) => {
      mc[3] = 1; // drops block 3 from row 3 (its own key's block)
    });
    expect(withSelector(() => l)).toThrow(/every block of the query block's own segment/);
  });
  test('wrong geometry: length, block size, non-causal, heads', () => {
    expect(withSelector(() => BlockLayout.denseCausal({ seqLen: 500, blockSize: 64 }))).toThrow(/for 600 queries and keys/);
    expect(withSelector(() => BlockLayout.denseCausal({ seqLen: 600, blockSize: 128 }))).toThrow(/options\.selector\.blockSize|blockSize/);
    expect(withSelector(() => BlockLayout.dense({ queryLength: 600, blockSize: 64 }))).toThrow(/causal/);
    const heads3 = BlockLayout.fromBlockMask(new Uint8Array(3 * t * t).fill(1), { heads: 3, queryLength: 600, blockSize: 64 });
    expect(withSelector(() => heads3)).toThrow(/heads 1 or 4/);
  });
  test('a disposed layout; a device layout of another permutation or segment', () => {
    const l = lists();
    l.dispose();
    expect(withSelector(() => l)).toThrow(DisposedError);
    const scores = pbsProxyScores(base.q, base.k, small);
    const perm = pbsPermutation(scores, { seqLen: 600, ...small });
    const foreign = pbsSelectBlocks(base.q, base.k, perm, small);
    expect(withSelector(() => foreign.layout)).toThrow(/another permutation/);
    expect(withSelector((c) => pbsSelectBlocks(c.q, c.k, c.perm, { blockSize: 64, segmentSize: 256 }).layout)).toThrow(/segmentSize 128/);
    for (const x of [scores, perm, foreign.keptBlocks]) x.dispose();
    foreign.layout.dispose();
  });
  test('an exception in the selector propagates', () => {
    expect(
      withSelector(() => {
        throw new Error('selector failed');
      }),
    ).toThrow('selector failed');
  });
});
