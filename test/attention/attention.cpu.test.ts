/**
 * blockSparseAttention on the CPU backend against the float64 reference (test/reference/attention.ts),
 * and the BlockLayout builders against the meaning of their inputs. Inputs are fresh random normals
 * every run (seed printed on failure); shapes are small and odd except one ~2K case.
 */
import { BlockLayout, blockSparseAttention, blockSparseAttentionWithLayoutTensors } from '../../lib/attention';
import { Context } from '../../lib/context';
import type { FloatDType } from '../../lib/dtype';
import { DisposedError } from '../../lib/errors';
import { Tensor } from '../../lib/tensor';
import { cpuContext } from '../helpers/gpu';
import { Rng, rng } from '../helpers/random';
import { TOL, expectClose } from '../helpers/tolerance';
import { type KeepFn, keepFromBlockMask, keepFromLists, keepPlain, referenceAttention } from '../reference/attention';
import { type Shape, expectLseClose, makeInputs, pbsStyleLayout, randomBlockMask } from './common';

const LSE_TOL = 1e-5; // lse is float32 from float32 scores on the CPU whatever the input dtype

/**
 * Best-effort poisoning of the output: frees a NaN-filled buffer of the output's size just before the op,
 * so the CPU allocator (same thread, same size) tends to hand it back as the output. A row the kernel
 * forgets to write then shows up as NaN instead of as a lucky zero.
 */
async function poison(ctx: Context, elems: number, dtype: FloatDType): Promise<void> {
  const t = Tensor.from(new Float32Array(elems).fill(NaN), [elems], { dtype, context: ctx });
  await t.toArray();
  t.dispose();
}

interface Case {
  label: string;
  shape: Shape;
  dtype: FloatDType;
  layout: (r: ReturnType<typeof rng>['rng']) => { layout: BlockLayout; keep: KeepFn };
}

/** Runs one case (out and lse) against the reference; returns nothing, throws with the seed on mismatch. */
async function check(ctx: Context, c: Case): Promise<void> {
  const { rng: r, seed } = rng(c.label);
  const inp = makeInputs(ctx, r, c.shape, c.dtype);
  const { layout, keep } = c.layout(r);
  const ref = referenceAttention(inp.problem, keep);
  await poison(ctx, inp.q.size, c.dtype);
  const { out, lse } = blockSparseAttention(inp.q, inp.k, inp.v, layout, { causal: layout.causal, returnLse: true });
  expect(out.dims).toEqual(inp.q.dims);
  expect(out.dtype).toBe(c.dtype);
  expect(lse.dims).toEqual(inp.q.dims.slice(0, 3));
  expectClose(await out.toFloat32Array(), ref.out, TOL[c.dtype], `${c.label} out (seed ${seed})`);
  expectLseClose(await lse.toFloat32Array(), ref.lse, LSE_TOL, `${c.label} lse (seed ${seed})`);
  out.dispose();
  lse.dispose();
  layout.dispose();
  inp.dispose();
}

const denseCausal = (n: number, bs: 64 | 128) => () => ({ layout: BlockLayout.denseCausal({ seqLen: n, blockSize: bs }), keep: keepPlain(true) });

function randomMaskLayout(o: { lb: number; lh: number; nq: number; nk?: number; bs: 64 | 128; density: number; causal: boolean }) {
  return (r: ReturnType<typeof rng>['rng']) => {
    const nk = o.nk ?? o.nq;
    const dims = { batch: o.lb, heads: o.lh, queryLength: o.nq, keyLength: nk, blockSize: o.bs };
    const mask = randomBlockMask(r, o.lb, o.lh, Math.ceil(o.nq / o.bs), Math.ceil(nk / o.bs), o.density, o.causal);
    return { layout: BlockLayout.fromBlockMask(mask, { ...dims, causal: o.causal }), keep: keepFromBlockMask(mask, dims, o.causal) };
  };
}

const CASES: Case[] = [
  { label: 'dense causal == causal attention, N 200, D 64, block 64', shape: { batch: 1, headsQ: 2, headsK: 2, seqQ: 200, headDim: 64 }, dtype: 'float32', layout: denseCausal(200, 64) },
  { label: 'dense causal == causal attention, N 129, D 128, block 128', shape: { batch: 1, headsQ: 2, headsK: 1, seqQ: 129, headDim: 128 }, dtype: 'float32', layout: denseCausal(129, 128) },
  { label: 'N 1', shape: { batch: 1, headsQ: 1, headsK: 1, seqQ: 1, headDim: 64 }, dtype: 'float32', layout: denseCausal(1, 64) },
  { label: 'N 17', shape: { batch: 2, headsQ: 3, headsK: 1, seqQ: 17, headDim: 64 }, dtype: 'float32', layout: denseCausal(17, 128) },
  {
    label: 'dense non-causal, 70 queries x 300 keys, D 64, block 64',
    shape: { batch: 1, headsQ: 2, headsK: 2, seqQ: 70, seqK: 300, headDim: 64 },
    dtype: 'float32',
    layout: () => ({ layout: BlockLayout.dense({ queryLength: 70, keyLength: 300, blockSize: 64 }), keep: keepPlain(false) }),
  },
  {
    label: 'batch 2, per-batch per-head random causal layout, GQA 4/2, N 333',
    shape: { batch: 2, headsQ: 4, headsK: 2, seqQ: 333, headDim: 64 },
    dtype: 'float32',
    layout: randomMaskLayout({ lb: 2, lh: 4, nq: 333, bs: 64, density: 0.4, causal: true }),
  },
  {
    label: 'GQA 32/8, per-head random causal layout, N 100, D 64',
    shape: { batch: 1, headsQ: 32, headsK: 8, seqQ: 100, headDim: 64 },
    dtype: 'float32',
    layout: randomMaskLayout({ lb: 1, lh: 32, nq: 100, bs: 64, density: 0.5, causal: true }),
  },
  {
    label: 'layout broadcast over batch 2 (layout batch 1), N 260, block 128',
    shape: { batch: 2, headsQ: 2, headsK: 2, seqQ: 260, headDim: 64 },
    dtype: 'float32',
    layout: randomMaskLayout({ lb: 1, lh: 2, nq: 260, bs: 128, density: 0.5, causal: true }),
  },
  {
    label: 'random non-causal layout, partial last key block, 250 x 390, block 128',
    shape: { batch: 1, headsQ: 2, headsK: 1, seqQ: 250, seqK: 390, headDim: 64 },
    dtype: 'float32',
    layout: randomMaskLayout({ lb: 1, lh: 2, nq: 250, nk: 390, bs: 128, density: 0.6, causal: false }),
  },
  {
    label: 'sliding window 3 blocks + 1 sink, N 700, block 64',
    shape: { batch: 1, headsQ: 2, headsK: 2, seqQ: 700, headDim: 64 },
    dtype: 'float32',
    layout: () => ({
      layout: BlockLayout.slidingWindow({ seqLen: 700, blockSize: 64, windowBlocks: 3, sinkBlocks: 1 }),
      keep: (_b, _h, i, j) => {
        const qb = Math.floor(i / 64);
        const kb = Math.floor(j / 64);
        return j <= i && (kb < 1 || kb > qb - 3);
      },
    }),
  },
  ...(['float16', 'bfloat16'] as const).map(
    (dtype): Case => ({
      label: `${dtype} inputs, batch 2, random causal layout, N 190`,
      shape: { batch: 2, headsQ: 4, headsK: 2, seqQ: 190, headDim: 64 },
      dtype,
      layout: randomMaskLayout({ lb: 2, lh: 4, nq: 190, bs: 64, density: 0.5, causal: true }),
    }),
  ),
  {
    label: 'bfloat16 dense causal, D 128, N 300, block 128',
    shape: { batch: 1, headsQ: 2, headsK: 1, seqQ: 300, headDim: 128 },
    dtype: 'bfloat16',
    layout: denseCausal(300, 128),
  },
  {
    label: '~2K: N 2047, random causal layout, block 128',
    shape: { batch: 1, headsQ: 2, headsK: 1, seqQ: 2047, headDim: 64 },
    dtype: 'float32',
    layout: randomMaskLayout({ lb: 1, lh: 2, nq: 2047, bs: 128, density: 0.3, causal: true }),
  },
];

describe('blockSparseAttention (CPU) vs the float64 reference', () => {
  test.each(CASES.map((c) => [c.label, c] as const))('%s', async (_label, c) => {
    await check(cpuContext(), c);
  });

  test('rows without any kept key give out = 0 and lse = -Infinity', async () => {
    const ctx = cpuContext();
    const { rng: r, seed } = rng('empty rows');
    const n = 300; // 3 query blocks of 128: the middle one lists nothing
    const inp = makeInputs(ctx, r, { batch: 1, headsQ: 1, headsK: 1, seqQ: n, headDim: 64 }, 'float32');
    const lists = { fullCounts: [0, 0, 2], fullIndices: [0, 0, 0, 0, 0, 1], maskCounts: [1, 0, 1], maskIndices: [0, 0, 2] };
    const layout = BlockLayout.fromLists(lists, { queryLength: n });
    const dims = { batch: 1, heads: 1, queryBlocks: 3, keyBlocks: 3, blockSize: 128, seqK: n };
    const ref = referenceAttention(inp.problem, keepFromLists(layout.toLists(), dims, true));
    await poison(ctx, inp.q.size, 'float32');
    const { out, lse } = blockSparseAttention(inp.q, inp.k, inp.v, layout, { returnLse: true });
    const o = await out.toFloat32Array();
    const l = await lse.toFloat32Array();
    for (let i = 128; i < 256; i++) expect(l[i]).toBe(-Infinity);
    expect(o.subarray(128 * 64, 256 * 64).every((x) => x === 0)).toBe(true);
    expectClose(o, ref.out, TOL.float32, `empty rows (seed ${seed})`);
    expectLseClose(l, ref.lse, LSE_TOL, `empty rows lse (seed ${seed})`);
  });

  test('options.scale replaces 1/sqrt(D); returnLse false returns the output tensor alone', async () => {
    const ctx = cpuContext();
    const { rng: r, seed } = rng('scale');
    const inp = makeInputs(ctx, r, { batch: 1, headsQ: 2, headsK: 2, seqQ: 100, headDim: 64 }, 'float32');
    const layout = BlockLayout.denseCausal({ seqLen: 100, blockSize: 64 });
    const out = blockSparseAttention(inp.q, inp.k, inp.v, layout, { scale: 0.3 });
    expect(out).toBeInstanceOf(Tensor);
    const ref = referenceAttention({ ...inp.problem, scale: 0.3 }, keepPlain(true));
    expectClose(await out.toFloat32Array(), ref.out, TOL.float32, `scale (seed ${seed})`);
  });

  test.each([
    ['per KV head (shared), block 128', 1, 128],
    ['per query head, block 64', 2, 64],
  ] as const)('PBS-style key permutation through the internal entry point: %s', async (_label, permHeads, bs) => {
    const ctx = cpuContext();
    const { rng: r, seed } = rng(`pbs ${permHeads} ${bs}`);
    const n = 700; // two complete segments of 256 and a 188-token identity tail
    const shape = { batch: 2, headsQ: 2, headsK: 1, seqQ: n, headDim: 64 };
    const inp = makeInputs(ctx, r, shape, 'float32');
    const pbs = pbsStyleLayout(r, { batch: 2, headsQ: 2, permHeads, n, blockSize: bs, segment: 256, density: 0.5 });
    const layout = BlockLayout.fromLists(pbs.lists, { batch: 2, heads: 2, queryLength: n, blockSize: bs });
    const permT = Tensor.from(pbs.perm, [2, permHeads, n], { context: ctx });
    const group = permHeads === 2 ? 1 : 2;
    const pos = (b: number, h: number, j: number) => pbs.perm[(b * permHeads + Math.floor(h / group)) * n + j]!;
    const dims = { batch: 2, heads: 2, queryBlocks: pbs.queryBlocks, keyBlocks: pbs.keyBlocks, blockSize: bs, seqK: n };
    const ref = referenceAttention(inp.problem, keepFromLists(pbs.lists, dims, true, pos), pos);
    const res = blockSparseAttentionWithLayoutTensors(inp.q, inp.k, inp.v, layout._tensors(ctx), { keyPermutation: permT, returnLse: true });
    if (res instanceof Tensor) throw new Error('expected {out, lse}');
    expectClose(await res.out.toFloat32Array(), ref.out, TOL.float32, `pbs out (seed ${seed})`);
    expectLseClose(await res.lse.toFloat32Array(), ref.lse, LSE_TOL, `pbs lse (seed ${seed})`);
  });

  test('runs on options.stream, ordered after the layout upload on the default stream', async () => {
    const ctx = cpuContext();
    const stream = ctx.createStream();
    const { rng: r, seed } = rng('stream');
    const inp = makeInputs(ctx, r, { batch: 1, headsQ: 2, headsK: 1, seqQ: 160, headDim: 64 }, 'float32');
    const layout = BlockLayout.slidingWindow({ seqLen: 160, blockSize: 64, windowBlocks: 2 });
    const out = blockSparseAttention(inp.q, inp.k, inp.v, layout, { stream });
    await stream.synchronize();
    const keep: KeepFn = (_b, _h, i, j) => j <= i && Math.floor(j / 64) >= Math.floor(i / 64) - 1;
    expectClose(await out.toFloat32Array(), referenceAttention(inp.problem, keep).out, TOL.float32, `stream (seed ${seed})`);
    stream.dispose();
  });
});

describe('BlockLayout device copies', () => {
  test('made once per context, reused, freed by dispose(); a disposed layout is rejected', async () => {
    // A context of its own: tensors of other tests collected meanwhile cannot change its counts.
    const ctx = new Context({ device: 'cpu' });
    const { rng: r } = rng('cache');
    const inp = makeInputs(ctx, r, { batch: 1, headsQ: 1, headsK: 1, seqQ: 90, headDim: 64 }, 'float32');
    const layout = BlockLayout.denseCausal({ seqLen: 90, blockSize: 64 });
    const base = ctx.memory().tensors;
    const a = blockSparseAttention(inp.q, inp.k, inp.v, layout);
    expect(ctx.memory().tensors).toBe(base + 1 + 4); // the output and the four index arrays
    const b = blockSparseAttention(inp.q, inp.k, inp.v, layout);
    expect(ctx.memory().tensors).toBe(base + 2 + 4);
    expect(Array.from(await a.toFloat32Array())).toEqual(Array.from(await b.toFloat32Array()));
    a.dispose();
    b.dispose();
    layout.dispose();
    expect(layout.isDisposed).toBe(true);
    expect(ctx.memory().tensors).toBe(base);
    expect(() => blockSparseAttention(inp.q, inp.k, inp.v, layout)).toThrow(DisposedError);
    ctx.dispose();
  });

  test('one layout serves two contexts with identical results', async () => {
    const other = new Context({ device: 'cpu' });
    const { rng: r } = rng('two contexts');
    const shape = { batch: 1, headsQ: 2, headsK: 1, seqQ: 150, headDim: 64 };
    const seed = r.int(0, 2 ** 30);
    const a = makeInputs(cpuContext(), new Rng(seed), shape, 'float32');
    const b = makeInputs(other, new Rng(seed), shape, 'float32');
    const layout = BlockLayout.fromBlockMask(randomBlockMask(r, 1, 2, 3, 3, 0.5, true), { heads: 2, queryLength: 150, blockSize: 64 });
    const oa = await blockSparseAttention(a.q, a.k, a.v, layout).toFloat32Array();
    const ob = await blockSparseAttention(b.q, b.k, b.v, layout).toFloat32Array();
    expect(Array.from(oa)).toEqual(Array.from(ob));
    other.dispose();
    layout.dispose();
  });
});

describe('BlockLayout builders', () => {
  /** Rows of a layout as [full[], masked[]] per (b, h, qb). */
  function rowsOf(l: BlockLayout): Array<[number[], number[]]> {
    const { fullCounts, fullIndices, maskCounts, maskIndices } = l.toLists();
    const rows: Array<[number[], number[]]> = [];
    for (let r = 0; r < fullCounts.length; r++) {
      rows.push([
        Array.from(fullIndices.subarray(r * l.maxBlocks, r * l.maxBlocks + fullCounts[r]!)),
        Array.from(maskIndices.subarray(r * l.maskMaxBlocks, r * l.maskMaxBlocks + maskCounts[r]!)),
      ]);
    }
    return rows;
  }

  test('denseCausal: earlier blocks full, the diagonal masked; density 1', () => {
    const l = BlockLayout.denseCausal({ seqLen: 300, blockSize: 64 });
    expect([l.queryBlocks, l.keyBlocks, l.maxBlocks, l.maskMaxBlocks, l.causal]).toEqual([5, 5, 4, 1, true]);
    expect(rowsOf(l)).toEqual([0, 1, 2, 3, 4].map((qb) => [Array.from({ length: qb }, (_, i) => i), [qb]]));
    expect(l.keptBlocks()).toBe(15);
    expect(l.density()).toBe(1);
    expect(l.blockSize).toBe(64);
    expect(BlockLayout.denseCausal({ seqLen: 300 }).blockSize).toBe(128);
  });

  test('dense: every key block, a partial last block masked', () => {
    expect(rowsOf(BlockLayout.dense({ queryLength: 100, keyLength: 300 }))).toEqual([[[0, 1], [2]]]);
    expect(rowsOf(BlockLayout.dense({ queryLength: 130, keyLength: 256 }))).toEqual([
      [[0, 1], []],
      [[0, 1], []],
    ]);
    expect(BlockLayout.dense({ queryLength: 130, keyLength: 256 }).density()).toBe(1);
  });

  test('slidingWindow keeps sinks and the window, diagonal masked', () => {
    const l = BlockLayout.slidingWindow({ seqLen: 64 * 7 - 5, blockSize: 64, windowBlocks: 3, sinkBlocks: 2 });
    expect(rowsOf(l)).toEqual([
      [[], [0]],
      [[0], [1]],
      [[0, 1], [2]],
      [[0, 1, 2], [3]],
      [[0, 1, 2, 3], [4]],
      [[0, 1, 3, 4], [5]],
      [[0, 1, 4, 5], [6]],
    ]);
    expect(l.keptBlocks()).toBe(18 + 7);
    expect(l.density()).toBeCloseTo(25 / 28, 12);
  });

  test.each([
    ['causal, odd lengths, per-head', true, 1, 3, 333, 333, 64],
    ['non-causal, partial last key block, batch 2', false, 2, 1, 200, 390, 128],
    ['non-causal, lengths multiple of the block', false, 1, 2, 256, 128, 64],
  ] as const)('fromBlockMask: a block is full only when every key is kept for every query (%s)', (_l, causal, lb, lh, nq, nk, bs) => {
    const { rng: r } = rng(`classify ${_l}`);
    const qB = Math.ceil(nq / bs);
    const kB = Math.ceil(nk / bs);
    const mask = randomBlockMask(r, lb, lh, qB, kB, 0.5, false); // also sets blocks above the diagonal
    const dims = { batch: lb, heads: lh, queryLength: nq, keyLength: nk, blockSize: bs };
    const layout = BlockLayout.fromBlockMask(mask, { ...dims, causal });
    const keep = keepFromBlockMask(mask, dims, causal);
    const rows = rowsOf(layout);
    for (let b = 0; b < lb; b++) {
      for (let h = 0; h < lh; h++) {
        for (let qb = 0; qb < qB; qb++) {
          const [full, masked] = rows[(b * lh + h) * qB + qb]!;
          for (let kb = 0; kb < kB; kb++) {
            let all = true;
            let any = false;
            for (let i = qb * bs; i < Math.min((qb + 1) * bs, nq); i++) {
              for (let j = kb * bs; j < (kb + 1) * bs; j++) {
                const k = keep(b, h, i, j);
                all &&= k;
                any ||= k;
              }
            }
            const want = all ? 'full' : any ? 'masked' : 'none';
            const got = full.includes(kb) ? 'full' : masked.includes(kb) ? 'masked' : 'none';
            if (got !== want) throw new Error(`row [${b}, ${h}, ${qb}] key block ${kb}: ${got}, expected ${want}`);
          }
        }
      }
    }
  });

  test('toBlockMask / fromBlockMask and toLists / fromLists round trip', () => {
    const { rng: r } = rng('round trip');
    const mask = randomBlockMask(r, 2, 3, 6, 6, 0.4, true);
    for (let row = 0; row < 36; row++) for (let kb = (row % 6) + 1; kb < 6; kb++) mask[row * 6 + kb] = 0;
    const opts = { batch: 2, heads: 3, queryLength: 6 * 64 - 1, blockSize: 64 as const };
    const a = BlockLayout.fromBlockMask(mask, opts);
    expect(Array.from(a.toBlockMask())).toEqual(Array.from(mask));
    const b = BlockLayout.fromLists(a.toLists(), opts);
    expect(b.toLists()).toEqual(a.toLists());
    expect(b.density()).toBe(a.density());
    const kept = mask.reduce((s, x) => s + x, 0);
    expect(a.keptBlocks()).toBe(kept);
    expect(a.density()).toBeCloseTo(kept / (6 * 21), 12);
  });

  test('fromLists copies its input, accepts number[] and wide rows, ignores entries past each count', () => {
    const fullIndices = new Int32Array([7, 7, 7, 7, 0, 7, 7, 7, 0, 1, 7, 7]); // capacity 4, garbage past the counts
    const input = { fullCounts: new Int32Array([0, 1, 2]), fullIndices, maskCounts: [1, 1, 1], maskIndices: [0, 1, 2] };
    const l = BlockLayout.fromLists(input, { queryLength: 3 * 128 });
    fullIndices.fill(9);
    input.fullCounts[0] = 5;
    expect(l.maxBlocks).toBe(2);
    expect(rowsOf(l)).toEqual([
      [[], [0]],
      [[0], [1]],
      [[0, 1], [2]],
    ]);
    const copy = l.toLists();
    copy.fullCounts[0] = 3;
    expect(l.toLists().fullCounts[0]).toBe(0);
  });
});
