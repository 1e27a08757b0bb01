/**
 * Every invalid argument of blockSparseAttention and of the BlockLayout builders is rejected before any
 * native work, with the right error type and a message naming it; random malformed layouts never get
 * through (fuzz against an independent statement of the rules, and against the native host check).
 */
import { BlockLayout, blockSparseAttention, blockSparseAttentionWithLayoutTensors, checkKeyPermutation } from '../../lib/attention';
import { Context } from '../../lib/context';
import { DisposedError, ShapeError } from '../../lib/errors';
import type { AttentionBinding } from '../../lib/native/attention';
import { nativeOps } from '../../lib/native/load';
import { Tensor } from '../../lib/tensor';
import { cpuContext } from '../helpers/gpu';
import { type Rng, rng } from '../helpers/random';

type ErrorClass = new (...args: never[]) => Error;

function qkv(ctx: Context, o: { b?: number; hq?: number; hk?: number; n?: number; nk?: number; d?: number; dtype?: 'float32' | 'float16' | 'bfloat16' } = {}) {
  const b = o.b ?? 1;
  const hq = o.hq ?? 2;
  const hk = o.hk ?? 1;
  const n = o.n ?? 100;
  const nk = o.nk ?? n;
  const d = o.d ?? 64;
  const dtype = o.dtype ?? 'float32';
  const { rng: r } = rng('errors');
  const mk = (dims: number[]) => Tensor.from(r.normals(dims.reduce((x, y) => x * y, 1)), dims, { dtype, context: ctx });
  return { q: mk([b, hq, n, d]), k: mk([b, hk, nk, d]), v: mk([b, hk, nk, d]) };
}

/** Expects `fn` to throw `cls` with a message matching `re`, and nothing to have been allocated. */
function expectReject(ctx: Context, fn: () => unknown, cls: ErrorClass, re: RegExp): void {
  const before = ctx.memory().tensors;
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(cls);
  expect((err as Error).message).toMatch(re);
  expect(ctx.memory().tensors).toBe(before);
}

describe('blockSparseAttention argument errors', () => {
  const ctx = cpuContext();
  const base = qkv(ctx);
  const layout = BlockLayout.denseCausal({ seqLen: 100, blockSize: 64 });
  const run = (over: Partial<{ q: unknown; k: unknown; v: unknown; layout: unknown; options: unknown }>) => () =>
    blockSparseAttention(
      ('q' in over ? over.q : base.q) as Tensor<'float32'>,
      ('k' in over ? over.k : base.k) as Tensor<'float32'>,
      ('v' in over ? over.v : base.v) as Tensor<'float32'>,
      ('layout' in over ? over.layout : layout) as BlockLayout,
      over.options as never,
    );

  test.each([
    ['q not a tensor', { q: new Float32Array(4) }, TypeError, /for q but received Float32Array/],
    ['k not a tensor', { k: null }, TypeError, /for k but received null/],
    ['v missing', { v: 'v' }, TypeError, /for v/],
    ['q rank 3', { q: Tensor.from(new Float32Array(100 * 64), [1, 100, 64], { context: ctx }) }, ShapeError, /q to have rank 4/],
    ['q int32', { q: Tensor.from(new Int32Array(200 * 64), [1, 2, 100, 64], { context: ctx }) }, TypeError, /q to have dtype float32 \| float16 \| bfloat16/],
    ['k dtype differs', { k: qkv(ctx, { dtype: 'float16' }).k }, TypeError, /k to have q's dtype \(float32\) but it is float16/],
    ['v dtype differs', { v: qkv(ctx, { dtype: 'bfloat16' }).v }, TypeError, /v to have q's dtype/],
    ['k head dim differs', { k: qkv(ctx, { d: 32 }).k }, ShapeError, /Expected k to have dims \[1, \*, \*, 64\]/],
    ['k batch differs', { k: qkv(ctx, { b: 2 }).k }, ShapeError, /Expected k to have dims \[1,/],
    ['v dims differ from k', { v: qkv(ctx, { nk: 99 }).v }, ShapeError, /Expected v to have dims \[1, 1, 100, 64\]/],
    ['Hq not a multiple of Hk', { k: qkv(ctx, { hk: 3 }).k, v: qkv(ctx, { hk: 3 }).v }, ShapeError, /multiple of k's heads \(3\)/],
    ['causal with different lengths', { k: qkv(ctx, { nk: 120 }).k, v: qkv(ctx, { nk: 120 }).v }, ShapeError, /equal query and key lengths for causal/],
    ['layout not a BlockLayout', { layout: { queryLength: 100 } }, TypeError, /a BlockLayout for layout/],
    ['layout for another length', { layout: BlockLayout.denseCausal({ seqLen: 101, blockSize: 64 }) }, ShapeError, /layout for 100 queries and 100 keys .* layout is for 101 and 101/],
    ['layout batch 3 for batch 1', { layout: BlockLayout.fromBlockMask(new Uint8Array(3 * 4).fill(1), { batch: 3, queryLength: 100, blockSize: 64 }) }, ShapeError, /layout batch 1 or 1/],
    ['layout heads 3 for Hq 2', { layout: BlockLayout.fromBlockMask(new Uint8Array(3 * 4).fill(1), { heads: 3, queryLength: 100, blockSize: 64 }) }, ShapeError, /layout heads 1 or 2/],
    ['causal option differs from the layout', { options: { causal: false } }, RangeError, /options\.causal to be true \(the layout was built causal; pass \{ causal: true \}.* but it is false/],
    ['non-causal layout run causally', { layout: BlockLayout.dense({ queryLength: 100, blockSize: 64 }) }, RangeError, /options\.causal to be false \(the layout was built non-causal.* but it is true/],
    ['options not an object', { options: 5 }, TypeError, /options object for options/],
    ['unknown option', { options: { scal: 1 } }, RangeError, /options\.scal/],
    ['keyPermutation is internal', { options: { keyPermutation: base.q } }, RangeError, /options\.keyPermutation/],
    ['scale NaN', { options: { scale: NaN } }, RangeError, /options\.scale/],
    ['scale 0', { options: { scale: 0 } }, RangeError, /options\.scale/],
    ['scale negative', { options: { scale: -1 } }, RangeError, /options\.scale/],
    ['scale Infinity', { options: { scale: Infinity } }, RangeError, /options\.scale/],
    ['scale underflows float32', { options: { scale: 1e-50 } }, RangeError, /float32 for options\.scale/],
    ['scale overflows float32', { options: { scale: 1e39 } }, RangeError, /float32 for options\.scale/],
    ['scale a string', { options: { scale: '1' } }, TypeError, /options\.scale/],
    ['causal not boolean', { options: { causal: 1 } }, TypeError, /options\.causal/],
    ['returnLse not boolean', { options: { returnLse: 'yes' } }, TypeError, /options\.returnLse/],
    ['stream not a Stream', { options: { stream: {} } }, TypeError, /options\.stream/],
  ] as const)('%s', (_label, over, cls, re) => {
    expectReject(ctx, run(over as never), cls as unknown as ErrorClass, re);
  });

  test('head dimension 0 and above 1024 on the CPU', () => {
    for (const d of [0, 1025]) {
      const t = qkv(ctx, { d });
      expectReject(ctx, () => blockSparseAttention(t.q, t.k, t.v, layout), ShapeError, /head dimension .*between 1 and 1024/);
    }
  });

  test('disposed tensors, layout and stream; a stream and tensors of another context', () => {
    const t = qkv(ctx);
    t.k.dispose();
    expectReject(ctx, () => blockSparseAttention(t.q, t.k, t.v, layout), DisposedError, /k was disposed/);
    const l = BlockLayout.denseCausal({ seqLen: 100, blockSize: 64 });
    l.dispose();
    expectReject(ctx, () => blockSparseAttention(base.q, base.k, base.v, l), DisposedError, /layout was disposed/);
    const s = ctx.createStream();
    s.dispose();
    expectReject(ctx, () => blockSparseAttention(base.q, base.k, base.v, layout, { stream: s }), DisposedError, /stream was disposed/);
    const other = new Context({ device: 'cpu' });
    const o = qkv(other);
    expectReject(ctx, () => blockSparseAttention(base.q, o.k, base.v, layout), TypeError, /k is on another context/);
    expectReject(ctx, () => blockSparseAttention(base.q, base.k, base.v, layout, { stream: other.stream }), RangeError, /options\.stream/);
    other.dispose();
  });

  test('internal entry point: layout tensors and key permutation are checked', () => {
    const lt = layout._tensors(ctx);
    const n = 100;
    const perm = Tensor.from(new Int32Array(n).map((_, i) => i), [1, 1, n], { context: ctx });
    const call = (over: Record<string, unknown>, options: Record<string, unknown> = {}) => () =>
      blockSparseAttentionWithLayoutTensors(base.q, base.k, base.v, { ...lt, ...over } as never, options as never);
    expectReject(ctx, call({ fullCounts: Tensor.from(new Float32Array(2), [1, 1, 2], { context: ctx }) }), TypeError, /layoutTensors\.fullCounts to have dtype int32/);
    expectReject(ctx, call({ maskCounts: Tensor.from(new Int32Array(3), [1, 1, 3], { context: ctx }) }), ShapeError, /layoutTensors\.maskCounts to have dims \[1, 1, 2\]/);
    expectReject(ctx, call({ fullIndices: Tensor.from(new Int32Array(6), [1, 1, 2, 3], { context: ctx }) }), ShapeError, /fullIndices dims\[3\] <= 2/);
    expectReject(ctx, call({ maskIndices: 'x' }), TypeError, /layoutTensors\.maskIndices/);
    expectReject(ctx, call({ blockSize: 32 }), RangeError, /layoutTensors\.blockSize/);
    expectReject(ctx, call({}, { keyPermutation: Tensor.from(new Int32Array(2 * 3 * n), [2, 3, n], { context: ctx }) }), ShapeError, /keyPermutation to have dims \[1, \*, 100\]/);
    expectReject(ctx, call({}, { keyPermutation: Tensor.from(new Int32Array(3 * n), [1, 3, n], { context: ctx }) }), ShapeError, /keyPermutation dims\[1\] to be Hk \(1\) or Hq \(2\)/);
    expectReject(ctx, call({}, { keyPermutation: Tensor.from(new Float32Array(n), [1, 1, n], { context: ctx }) }), TypeError, /keyPermutation to have dtype int32/);
    expect(() => call({}, { keyPermutation: perm })()).not.toThrow();
  });

  test('checkKeyPermutation rejects repeats and out-of-range values, naming the position', () => {
    expect(() => checkKeyPermutation(new Int32Array([0, 2, 1, 1, 0, 2]), 1, 2, 3)).not.toThrow();
    expect(() => checkKeyPermutation(new Int32Array([0, 2, 1, 1, 1, 2]), 1, 2, 3)).toThrow(/key_perm\[b=0, h=1, j=1\] = 1 repeats/);
    expect(() => checkKeyPermutation(new Int32Array([0, 3, 1]), 1, 1, 3)).toThrow(/key_perm\[b=0, h=0, j=1\] = 3 is outside/);
    expect(() => checkKeyPermutation(new Int32Array(5), 1, 2, 3)).toThrow(ShapeError);
  });
});

describe('BlockLayout builder errors', () => {
  test.each([
    ['denseCausal without options', () => BlockLayout.denseCausal(undefined as never), TypeError, /options\.seqLen/],
    ['seqLen negative', () => BlockLayout.denseCausal({ seqLen: -1 }), RangeError, /options\.seqLen/],
    ['seqLen fractional', () => BlockLayout.denseCausal({ seqLen: 1.5 }), TypeError, /options\.seqLen/],
    ['seqLen a string', () => BlockLayout.denseCausal({ seqLen: '10' as never }), TypeError, /options\.seqLen/],
    ['seqLen too large', () => BlockLayout.denseCausal({ seqLen: 2 ** 31 }), RangeError, /options\.seqLen/],
    ['blockSize 32', () => BlockLayout.denseCausal({ seqLen: 10, blockSize: 32 as never }), RangeError, /64 or 128 for options\.blockSize/],
    ['blockSize fractional', () => BlockLayout.dense({ queryLength: 10, blockSize: 64.5 as never }), TypeError, /options\.blockSize/],
    ['unknown builder option', () => BlockLayout.dense({ queryLength: 10, causal: true } as never), RangeError, /options\.causal/],
    ['keyLength negative', () => BlockLayout.dense({ queryLength: 10, keyLength: -3 }), RangeError, /options\.keyLength/],
    ['windowBlocks 0', () => BlockLayout.slidingWindow({ seqLen: 10, windowBlocks: 0 }), RangeError, /options\.windowBlocks/],
    ['windowBlocks missing', () => BlockLayout.slidingWindow({ seqLen: 10 } as never), TypeError, /options\.windowBlocks/],
    ['sinkBlocks negative', () => BlockLayout.slidingWindow({ seqLen: 10, windowBlocks: 1, sinkBlocks: -1 }), RangeError, /options\.sinkBlocks/],
    ['mask not a Uint8Array', () => BlockLayout.fromBlockMask([1] as never, { queryLength: 10 }), TypeError, /a Uint8Array for mask/],
    ['mask too short', () => BlockLayout.fromBlockMask(new Uint8Array(3), { queryLength: 300 }), ShapeError, /Expected 9 entries .* for mask but received 3/],
    ['batch 0', () => BlockLayout.fromBlockMask(new Uint8Array(1), { batch: 0, queryLength: 10 }), RangeError, /options\.batch/],
    ['heads fractional', () => BlockLayout.fromBlockMask(new Uint8Array(1), { heads: 1.5, queryLength: 10 }), TypeError, /options\.heads/],
    ['causal with different lengths', () => BlockLayout.fromBlockMask(new Uint8Array(2), { queryLength: 10, keyLength: 200 }), RangeError, /causal layout .* for options\.keyLength but received 200/],
    ['causal not boolean', () => BlockLayout.fromBlockMask(new Uint8Array(1), { queryLength: 10, causal: 'no' as never }), TypeError, /options\.causal/],
  ] as const)('%s', (_label, fn, cls, re) => {
    expect(fn).toThrow(cls as unknown as ErrorClass);
    expect(fn).toThrow(re);
  });
});

describe('BlockLayout.fromLists errors name the position', () => {
  // 3 query blocks of 128 (N = 300: the last block is partial), one row per query block.
  const opts = { queryLength: 300 };
  const ok = { fullCounts: [0, 1, 2], fullIndices: [0, 0, 0, 0, 0, 1], maskCounts: [1, 1, 1], maskIndices: [0, 1, 2] };
  const withOver = (over: Record<string, unknown>, o: Record<string, unknown> = opts) => () => BlockLayout.fromLists({ ...ok, ...over } as never, o as never);

  test('the valid base case passes', () => {
    expect(withOver({})().keptBlocks()).toBe(6);
  });

  test.each([
    ['lists not an object', () => BlockLayout.fromLists(null as never, opts), TypeError, /object of count and index arrays for lists/],
    ['unknown list', withOver({ fullCount: [] }), RangeError, /lists\.fullCount/],
    ['counts without indices', withOver({ fullIndices: undefined }), TypeError, /\(lists\.fullCounts is given\) for lists\.fullIndices/],
    ['indices without counts', withOver({ maskCounts: undefined }), TypeError, /\(lists\.maskIndices is given\) for lists\.maskCounts/],
    ['Float32Array indices', withOver({ maskIndices: new Float32Array(3) }), TypeError, /Int32Array or an array of integers for lists\.maskIndices/],
    ['fractional entry', withOver({ maskIndices: [0, 1.5, 2] }), TypeError, /lists\.maskIndices\[1\]/],
    ['entry beyond int32', withOver({ maskIndices: [0, 2 ** 31, 2] }), RangeError, /int32 value for lists\.maskIndices\[1\]/],
    ['wrong count length', withOver({ fullCounts: [0, 1] }), ShapeError, /Expected 3 counts .* for lists\.fullCounts but received 2/],
    ['indices not a multiple of the rows', withOver({ fullIndices: [0, 0, 0, 0, 1] }), ShapeError, /multiple of 3 entries .* lists\.fullIndices but received 5/],
    ['negative count', withOver({ maskCounts: [1, -1, 1] }), RangeError, /count in \[0, 1\] .* for lists\.maskCounts\[b=0, h=0, queryBlock=1\] but received -1/],
    ['count above the row capacity', withOver({ fullCounts: [0, 1, 3] }), RangeError, /count in \[0, 2\] .* lists\.fullCounts\[b=0, h=0, queryBlock=2\] but received 3/],
    ['index out of range', withOver({ maskIndices: [0, 1, 3] }), RangeError, /key block index in \[0, 3\) for lists\.maskIndices\[b=0, h=0, queryBlock=2, pos=0\] but received 3/],
    ['negative index', withOver({ fullIndices: [0, 0, -1, 0, 0, 1] }), RangeError, /lists\.fullIndices\[b=0, h=0, queryBlock=1, pos=0\] but received -1/],
    ['unsorted', withOver({ fullIndices: [0, 0, 0, 0, 1, 0] }), RangeError, /above the previous one \(1\).* lists\.fullIndices\[b=0, h=0, queryBlock=2, pos=1\] but received 0/],
    ['duplicate', withOver({ fullIndices: [0, 0, 0, 0, 1, 1] }), RangeError, /strictly ascending for lists\.fullIndices\[b=0, h=0, queryBlock=2, pos=1\] but received 1/],
    ['full and masked overlap', withOver({ maskCounts: [1, 1, 2], maskIndices: [0, 0, 1, 0, 1, 2] }, opts), RangeError, /not also in fullIndices \(it is at lists\.fullIndices\[b=0, h=0, queryBlock=2, pos=1\]\).*lists\.maskIndices\[b=0, h=0, queryBlock=2, pos=0\] but received 1/],
    ['causal full block on the diagonal', withOver({ fullCounts: [0, 2, 2], fullIndices: [0, 0, 0, 1, 0, 1], maskCounts: [1, 0, 1] }), RangeError, /below the diagonal \(< 1\) in a causal layout .*lists\.fullIndices\[b=0, h=0, queryBlock=1, pos=1\] but received 1/],
    ['full block with padding keys (non-causal)', withOver({ fullCounts: [0, 1, 3], fullIndices: [0, 0, 0, 0, 0, 0, 0, 1, 2], maskCounts: [1, 1, 0] }, { ...opts, causal: false }), RangeError, /without padding keys \(block 2 covers keys 256\.\.383 but keyLength is 300: list it in maskIndices\) for lists\.fullIndices\[b=0, h=0, queryBlock=2, pos=2\]/],
  ] as const)('%s', (_label, fn, cls, re) => {
    expect(fn).toThrow(cls as unknown as ErrorClass);
    expect(fn).toThrow(re);
  });

  test('per-head layouts name b and h', () => {
    const lists = { maskCounts: [1, 1, 1, 1], maskIndices: [0, 1, 0, 2] };
    expect(() => BlockLayout.fromLists(lists, { heads: 2, queryLength: 256 })).toThrow(/lists\.maskIndices\[b=0, h=1, queryBlock=1, pos=0\] but received 2/);
  });
});

describe('malformed layouts never get through (fuzz)', () => {
  /** The rules, stated independently of lib/attention: null when valid, else a reason. */
  function violation(
    l: { fullCounts: Int32Array; fullIndices: Int32Array; maskCounts: Int32Array; maskIndices: Int32Array },
    rows: number,
    qB: number,
    kB: number,
    n: number,
    bs: number,
    causal: boolean,
  ): string | null {
    const fCap = l.fullIndices.length / rows;
    const mCap = l.maskIndices.length / rows;
    for (let r = 0; r < rows; r++) {
      const qb = r % qB;
      const full = Array.from(l.fullIndices.subarray(r * fCap, r * fCap + Math.max(0, Math.min(l.fullCounts[r]!, fCap))));
      const masked = Array.from(l.maskIndices.subarray(r * mCap, r * mCap + Math.max(0, Math.min(l.maskCounts[r]!, mCap))));
      if (l.fullCounts[r]! < 0 || l.fullCounts[r]! > fCap || l.maskCounts[r]! < 0 || l.maskCounts[r]! > mCap) return 'count';
      for (const list of [full, masked]) {
        if (list.some((x) => x < 0 || x >= kB)) return 'range';
        if (list.some((x, i) => i > 0 && x <= list[i - 1]!)) return 'order';
      }
      if (full.some((x) => masked.includes(x))) return 'overlap';
      if (full.some((x) => (x + 1) * bs > n)) return 'padding';
      if (causal && full.some((x) => x >= qb)) return 'causal';
    }
    return null;
  }

  function randomLists(r: Rng, rows: number, qB: number, kB: number, causal: boolean) {
    const fCap = r.int(0, kB);
    const mCap = r.int(1, kB);
    const l = {
      fullCounts: new Int32Array(rows),
      fullIndices: new Int32Array(rows * fCap),
      maskCounts: new Int32Array(rows),
      maskIndices: new Int32Array(rows * mCap),
    };
    for (let row = 0; row < rows; row++) {
      const qb = row % qB;
      const cands = Array.from({ length: causal ? Math.min(qb + 1, kB) : kB }, (_, i) => i);
      const pick = cands.filter(() => r.next() < 0.5);
      const fullOk = pick.filter((x) => x < kB - 1 && (!causal || x < qb)).slice(0, fCap);
      const maskOk = pick.filter((x) => !fullOk.includes(x)).slice(0, mCap);
      l.fullCounts[row] = fullOk.length;
      l.fullIndices.set(fullOk, row * fCap);
      l.maskCounts[row] = maskOk.length;
      l.maskIndices.set(maskOk, row * mCap);
    }
    // One to three random corruptions of the kinds the rules forbid (or harmless ones).
    const arrays = [l.fullCounts, l.fullIndices, l.maskCounts, l.maskIndices].filter((a) => a.length > 0);
    for (let c = r.int(0, 3); c > 0; c--) {
      const a = arrays[r.int(0, arrays.length - 1)]!;
      const i = r.int(0, a.length - 1);
      const kinds = [() => -1, () => kB, () => a[i]! + 1, () => a[i]! - 1, () => r.int(0, kB), () => 2 ** 31 - 1, () => -(2 ** 31)];
      a[i] = kinds[r.int(0, kinds.length - 1)]!();
    }
    return l;
  }

  test('fromLists accepts exactly the valid random layouts; the native host check agrees', () => {
    const { rng: r, seed } = rng('fuzz');
    const check = nativeOps<AttentionBinding>().attentionCheckLayout;
    let accepted = 0;
    let rejected = 0;
    for (let iter = 0; iter < 600; iter++) {
      const bs = r.next() < 0.5 ? 64 : 128;
      const n = r.int(1, 6 * bs);
      const causal = r.next() < 0.5;
      const heads = r.int(1, 2);
      const qB = Math.ceil(n / bs);
      const kB = qB;
      const lists = randomLists(r, heads * qB, qB, kB, causal);
      const reason = violation(lists, heads * qB, qB, kB, n, bs, causal);
      let layout: BlockLayout | undefined;
      try {
        layout = BlockLayout.fromLists(lists, { heads, queryLength: n, blockSize: bs, causal });
      } catch (e) {
        if (!(e instanceof RangeError || e instanceof TypeError)) throw e;
        if (reason === null) throw new Error(`valid layout rejected (seed ${seed}, iter ${iter}): ${(e as Error).message}`);
        rejected++;
        continue;
      }
      if (reason !== null) throw new Error(`invalid layout (${reason}) accepted (seed ${seed}, iter ${iter})`);
      const p = layout.toLists();
      expect(() => check(p.fullCounts, p.fullIndices, p.maskCounts, p.maskIndices, layout._nativeDims())).not.toThrow();
      accepted++;
    }
    // The generator must exercise both outcomes, or this test could not fail.
    expect(accepted).toBeGreaterThan(50);
    expect(rejected).toBeGreaterThan(50);
  });

  test('the native host check rejects malformed arrays by itself', () => {
    const check = nativeOps<AttentionBinding>().attentionCheckLayout;
    const dims = { layoutBatch: 1, layoutHeads: 1, qBlocks: 2, kBlocks: 2, maxBlocks: 1, maskMaxBlocks: 1, blockSize: 128 };
    const i32 = (a: number[]) => new Int32Array(a);
    expect(() => check(i32([0, 1]), i32([0, 0]), i32([1, 1]), i32([0, 1]), dims)).not.toThrow();
    expect(() => check(i32([0, 1]), i32([0, 2]), i32([1, 1]), i32([0, 1]), dims)).toThrow(/full_idx\[b=0, h=0, qblock=1, pos=0\] = 2 is outside/);
    expect(() => check(i32([0, 1]), i32([0, 1]), i32([1, 1]), i32([0, 1]), dims)).toThrow(/block 1 is in both lists/);
    expect(() => check(i32([0, 2]), i32([0, 0]), i32([1, 1]), i32([0, 1]), dims)).toThrow(/full_cnt\[b=0, h=0, qblock=1\] = 2 is outside/);
    expect(() => check(i32([0]), i32([0, 0]), i32([1, 1]), i32([0, 1]), dims)).toThrow(/fullCnt holds 1 elements but 2 are needed/);
    expect(() => check([0, 1] as never, i32([0, 0]), i32([1, 1]), i32([0, 1]), dims)).toThrow(/fullCnt must be an Int32Array/);
  });
});
