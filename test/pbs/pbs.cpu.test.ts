/**
 * pbsAttention and its stages on the CPU backend against the float64 reference (test/reference/pbs.ts).
 * Fresh random inputs every run (seed printed on failure); small odd shapes so the suite stays fast.
 *
 * The central checks are the spec's two exactness tests (6.4): threshold 1 equals dense causal attention,
 * and for any threshold the output equals dense softmax attention restricted to the keys the reported
 * layout + permutation keep. The layout itself is checked against the reference selection (exact except
 * at reported near ties) and the structural invariants, so "restricted to what it chose" cannot hide a
 * wrong choice.
 */
import { BlockLayout, blockSparseAttention } from '../../lib/attention';
import type { FloatDType } from '../../lib/dtype';
import {
  type PbsOptions,
  type PbsSelectorContext,
  isDeviceLayout,
  pbsAttention,
  pbsPermutation,
  pbsProxyScores,
  pbsSelectBlocks,
} from '../../lib/pbs';
import { Tensor } from '../../lib/tensor';
import { cpuContext } from '../helpers/gpu';
import { rng } from '../helpers/random';
import { TOL, expectClose, relError } from '../helpers/tolerance';
import {
  type PbsRefShape,
  checkLayoutInvariants,
  invertPermutation,
  listRows,
  permHeadsOf,
  refDenseCausal,
  refPermutation,
  refProxyScores,
  refRestrictedAttention,
  refSelectAntidiagonal,
  refSelectMeanpool,
} from '../reference/pbs';
import { type PbsInputs, lseError, makeInputs, poison, refOptions, referenceOfRun, runPbs, usedPlan } from './common';

const LSE_TOL = 1e-5; // lse is float32 from float32 scores whatever the input dtype

interface Case {
  label: string;
  shape: PbsRefShape;
  dtype: FloatDType;
  opts: PbsOptions;
}

const shape = (batch: number, headsQ: number, headsK: number, seqLen: number, headDim: number): PbsRefShape => ({ batch, headsQ, headsK, seqLen, headDim });
const small = { blockSize: 64, segmentSize: 128 } as const;

/** Compares the run's selection with the reference selection on the run's own permutation. */
function checkSelection(inp: PbsInputs, o: PbsOptions, rows: Array<{ full: number[]; masked: number[] }>, perm: Int32Array, label: string): void {
  const ro = refOptions(o, inp.shape.headDim);
  const ref =
    (o.selector ?? 'meanpool') === 'antidiagonal'
      ? refSelectAntidiagonal(inp.qv, inp.kv, perm, inp.shape, ro)
      : refSelectMeanpool(inp.qv, inp.kv, perm, inp.shape, ro);
  expect(rows.length).toBe(ref.rows.length);
  let exact = 0;
  rows.forEach((r, x) => {
    const e = ref.rows[x]!;
    if (e.nearTie) {
      // A round-off flip at the cut: the kernel may keep one block more or less, nothing else.
      expect(Math.abs(r.full.length - e.full.length)).toBeLessThanOrEqual(1);
      expect(r.masked).toEqual(e.masked);
    } else {
      if (r.full.join() !== e.full.join() || r.masked.join() !== e.masked.join()) {
        throw new Error(`${label}: row ${x} selected full [${r.full}] masked [${r.masked}], reference full [${e.full}] masked [${e.masked}]`);
      }
      exact++;
    }
  });
  // Near ties are rare on random inputs; a reference that flags everything would test nothing.
  expect(exact).toBeGreaterThanOrEqual(Math.floor(rows.length * 0.8));
  const sinkOf = (row: number) => {
    const t = Math.ceil(inp.shape.seqLen / ro.blockSize);
    const bh = Math.floor(row / t);
    const b = Math.floor(bh / inp.shape.headsQ);
    const hq = bh % inp.shape.headsQ;
    const hpN = permHeadsOf(inp.shape, ro.gqaMode);
    const hp = ro.gqaMode === 'shared' ? Math.floor(hq / (inp.shape.headsQ / inp.shape.headsK)) : hq;
    return Math.floor(invertPermutation(perm, inp.shape.batch * hpN, inp.shape.seqLen)[(b * hpN + hp) * inp.shape.seqLen]! / ro.blockSize);
  };
  const bad = checkLayoutInvariants(rows, { ...ro, seqLen: inp.shape.seqLen, sinkOf });
  if (bad) throw new Error(`${label}: ${bad}`);
}

async function runCase(c: Case): Promise<void> {
  const ctx = cpuContext();
  const { rng: r, seed } = rng(c.label);
  const label = `${c.label} (seed ${seed})`;
  const inp = makeInputs(ctx, r, c.shape, c.dtype);
  await poison(ctx, inp.q.size, c.dtype);
  const { out, lse, stats } = runPbs(inp, c.opts);
  expect(out.dims).toEqual(inp.q.dims);
  expect(out.dtype).toBe(c.dtype);
  expect(lse.dims).toEqual(inp.q.dims.slice(0, 3));
  const got = await out.toFloat32Array();
  const gotLse = await lse.toFloat32Array();
  const report = await stats.read();
  const { out: refOut, lse: refLse, plan } = await referenceOfRun(inp, c.opts, stats);
  expectClose(got, refOut, TOL[c.dtype], `${label} out vs restricted reference`);
  expect(lseError(gotLse, refLse)).toBeLessThanOrEqual(LSE_TOL);
  checkSelection(inp, c.opts, plan.rows, plan.perm!, label);

  // Stats agree with the layout they describe.
  const t = Math.ceil(c.shape.seqLen / (c.opts.blockSize ?? 128));
  expect(report.fallback).toBe(false);
  expect(report.numBlocks).toBe(t);
  expect(report.causalBlocks).toBe((t * (t + 1)) / 2);
  const kept = new Int32Array(c.shape.batch * c.shape.headsQ);
  plan.rows.forEach((row, x) => (kept[Math.floor(x / t)] = kept[Math.floor(x / t)]! + row.full.length + row.masked.length));
  expect(Array.from(report.keptBlocks)).toEqual(Array.from(kept));
  report.headDensity.forEach((d, i) => expect(d).toBeCloseTo(kept[i]! / report.causalBlocks, 12));
  expect(report.density).toBeCloseTo(kept.reduce((a, b) => a + b, 0) / (kept.length * report.causalBlocks), 12);
  // Own-segment blocks above the diagonal are computed too: at most (S/B - 1) per query block beyond causal.
  const perSeg = (c.opts.segmentSize ?? 256) / (c.opts.blockSize ?? 128) - 1;
  for (const d of report.headDensity) {
    expect(d).toBeGreaterThan(0);
    expect(d).toBeLessThanOrEqual(1 + (perSeg * t) / report.causalBlocks + 1e-12);
  }
  // The case must exercise the selection: with tau < 1 some row drops candidates (else "restricted to
  // the selected keys" would be dense attention again and prove little).
  if ((c.opts.threshold ?? 0.9) < 1 && typeof c.opts.selector !== 'function') {
    const per = refOptions(c.opts, c.shape.headDim).segmentSize / (c.opts.blockSize ?? 128);
    const dropped = plan.rows.filter((row, x) => row.full.length < Math.floor((x % t) / per) * per).length;
    expect(dropped).toBeGreaterThan(0);
  }
  const tm = report.times;
  for (const v of Object.values(tm)) expect(v).toBeGreaterThanOrEqual(0);
  expect(tm.totalMs).toBeCloseTo(tm.stagesMs + tm.attentionMs, 9);
  expect(tm.attentionMs).toBeGreaterThan(0);
  if (c.opts.permute !== false) expect(tm.proxyMs).toBeGreaterThan(0);
  out.dispose();
  lse.dispose();
  stats.dispose();
  inp.dispose();
}

const CASES: Case[] = [
  { label: 'meanpool tau 0.9, GQA 8/2 shared, N 1000 (block 64, segment 128)', shape: shape(1, 8, 2, 1000, 64), dtype: 'float32', opts: { ...small } },
  { label: 'meanpool tau 0.6, GQA 8/2 perQueryHead, N 640', shape: shape(1, 8, 2, 640, 32), dtype: 'float32', opts: { ...small, threshold: 0.6, gqaMode: 'perQueryHead' } },
  { label: 'max pool, tau 0.8, MHA, N 700', shape: shape(1, 2, 2, 700, 64), dtype: 'float32', opts: { ...small, pool: 'max', threshold: 0.8 } },
  { label: 'antidiagonal stride 8, tau 0.7, GQA 4/2, N 700', shape: shape(1, 4, 2, 700, 32), dtype: 'float32', opts: { ...small, selector: 'antidiagonal', threshold: 0.7 } },
  {
    label: 'antidiagonal stride 4, perQueryHead, N 700',
    shape: shape(1, 4, 2, 700, 32),
    dtype: 'float32',
    opts: { ...small, selector: 'antidiagonal', antidiagonalStride: 4, gqaMode: 'perQueryHead', threshold: 0.5 },
  },
  { label: 'batch 2, default block 128 / segment 256, N 600 (neither multiple)', shape: shape(2, 2, 1, 600, 32), dtype: 'float32', opts: { threshold: 0.7 } },
  {
    label: 'forceSink false, proxyCausal, proxyRows 40, segment 192, N 700',
    shape: shape(1, 2, 1, 700, 64),
    dtype: 'float32',
    opts: { blockSize: 64, segmentSize: 192, forceSink: false, proxyCausal: true, proxyRows: 40, threshold: 0.75 },
  },
  { label: 'permute false (unpermuted MeanPooling baseline), N 700', shape: shape(1, 4, 2, 700, 32), dtype: 'float32', opts: { ...small, permute: false, threshold: 0.8 } },
  { label: 'N = segment + 1 (smallest planned length), N 257', shape: shape(1, 2, 1, 257, 64), dtype: 'float32', opts: { threshold: 0.5 } },
  { label: 'bfloat16 inputs, D 128, scale 0.2, N 640', shape: shape(1, 2, 1, 640, 128), dtype: 'bfloat16', opts: { ...small, scale: 0.2 } },
  { label: 'float16 inputs, D 80, N 640', shape: shape(1, 2, 1, 640, 80), dtype: 'float16', opts: { ...small, threshold: 0.85 } },
];

describe('pbsAttention (CPU) == attention restricted to the selected keys', () => {
  for (const c of CASES) test(c.label, () => runCase(c));
});

describe('threshold 1 and the dense fallback reproduce dense causal attention', () => {
  const dense = async (label: string, s: PbsRefShape, dtype: FloatDType, o: PbsOptions, expectFallback: boolean) => {
    const ctx = cpuContext();
    const { rng: r, seed } = rng(label);
    const inp = makeInputs(ctx, r, s, dtype);
    await poison(ctx, inp.q.size, dtype);
    const { out, lse, stats } = runPbs(inp, o);
    const ref = refDenseCausal(inp.qv, inp.kv, inp.vv, s, o.scale ?? 1 / Math.sqrt(s.headDim));
    expectClose(await out.toFloat32Array(), ref.out, TOL[dtype], `${label} (seed ${seed})`);
    expect(lseError(await lse.toFloat32Array(), ref.lse)).toBeLessThanOrEqual(LSE_TOL);
    const rep = await stats.read();
    expect(rep.fallback).toBe(expectFallback);
    expect(stats.fallback).toBe(expectFallback);
    if (expectFallback) {
      expect(rep.density).toBe(1);
      expect(stats.permutation).toBeUndefined();
      expect(rep.times.stagesMs).toBe(0);
      expect(rep.times.attentionMs).toBeGreaterThan(0);
    } else {
      // Every causal candidate is kept: each row holds all blocks of earlier segments as full blocks.
      const plan = await usedPlan(stats);
      const bs = o.blockSize ?? 128;
      const perSeg = (o.segmentSize ?? 256) / bs;
      const t = Math.ceil(s.seqLen / bs);
      // (The partial last block is never a candidate: it sits in the last, own segment.)
      plan.rows.forEach((row, x) => expect(row.full.length).toBe(Math.floor((x % t) / perSeg) * perSeg));
    }
    out.dispose();
    lse.dispose();
    stats.dispose();
    inp.dispose();
  };
  test('threshold 1, N 1000, block 64 / segment 128, GQA 4/2 (float32)', () => dense('tau 1 f32', shape(1, 4, 2, 1000, 64), 'float32', { ...small, threshold: 1 }, false));
  test('threshold 1, N 777, defaults, perQueryHead (bfloat16)', () =>
    dense('tau 1 bf16', shape(1, 2, 1, 777, 64), 'bfloat16', { threshold: 1, gqaMode: 'perQueryHead' }, false));
  test('threshold 1, antidiagonal, N 520 (float32)', () => dense('tau 1 antidiag', shape(1, 2, 2, 520, 32), 'float32', { threshold: 1, selector: 'antidiagonal' }, false));
  test('N <= segmentSize falls back (N 256 = segment)', () => dense('fallback N=S', shape(2, 4, 2, 256, 32), 'float32', {}, true));
  test('N 100 (< one block) falls back', () => dense('fallback N 100', shape(1, 2, 1, 100, 64), 'float32', {}, true));
  test('minSeqLen 700 makes N 700 fall back', () => dense('fallback minSeqLen', shape(1, 2, 1, 700, 32), 'float32', { ...small, minSeqLen: 700 }, true));
  test('minSeqLen 699 does not (N 700, threshold 1)', () => dense('no fallback', shape(1, 2, 1, 700, 32), 'float32', { ...small, minSeqLen: 699, threshold: 1 }, false));
});

describe('stages on their own', () => {
  test('pbsProxyScores == float64 reference (shared, perQueryHead, proxyCausal, proxyRows)', async () => {
    const ctx = cpuContext();
    const { rng: r, seed } = rng('proxy');
    const s = shape(2, 6, 2, 700, 48);
    const inp = makeInputs(ctx, r, s, 'float32');
    const variants: PbsOptions[] = [
      { ...small },
      { ...small, gqaMode: 'perQueryHead' },
      { ...small, proxyCausal: true, proxyRows: 200 },
      { segmentSize: 256, proxyRows: 5000 }, // capped at N
    ];
    for (const o of variants) {
      const scores = pbsProxyScores(inp.q, inp.k, o);
      const ro = refOptions(o, s.headDim);
      const p = Math.floor(s.seqLen / ro.segmentSize) * ro.segmentSize;
      expect(scores.dims).toEqual([2, permHeadsOf(s, ro.gqaMode), p]);
      const got = await scores.toArray();
      expectClose(got, refProxyScores(inp.qv, inp.kv, s, ro), 1e-5, `proxy ${JSON.stringify(o)} (seed ${seed})`);
      for (let row = 0; row < got.length / p; row++) {
        let sum = 0;
        for (let j = 0; j < p; j++) sum += got[row * p + j]!;
        expect(sum).toBeCloseTo(1, 4);
      }
      scores.dispose();
    }
    // N < segmentSize: no permuted tokens, an empty score tensor.
    const short = makeInputs(ctx, r, shape(1, 2, 1, 100, 32), 'float32');
    const e = pbsProxyScores(short.q, short.k);
    expect(e.dims).toEqual([1, 1, 0]);
    short.dispose();
    inp.dispose();
  });

  test('pbsPermutation == stable argsort of its scores; ties keep index order, NaN sorts last, -0 ties +0', async () => {
    const ctx = cpuContext();
    const { rng: r, seed } = rng('perm');
    const n = 700;
    const seg = 128;
    const p = Math.floor(n / seg) * seg;
    const rows = 3;
    const scores = r.uniforms(rows * p, 0, 1);
    // Row 1: plateaus of equal values, NaN, and signed zeros.
    for (let j = 0; j < p; j++) scores[p + j] = j % 7 === 0 ? Number.NaN : j % 5 === 0 ? (j % 2 ? -0 : 0) : Math.floor(j / 40) * 0.25;
    // Row 2: all equal: the identity.
    scores.fill(0.5, 2 * p, 3 * p);
    const st = Tensor.from(scores, [1, rows, p], { context: ctx });
    const perm = pbsPermutation(st, { seqLen: n, segmentSize: seg, blockSize: 64 });
    expect(perm.dims).toEqual([1, rows, n]);
    const got = await perm.toArray();
    const want = refPermutation(scores, rows, n, seg);
    expect(Array.from(got)).toEqual(Array.from(want));
    for (let x = 0; x < n; x++) expect(got[2 * n + x]).toBe(x);
    // Kernel scores through the kernel permutation: the pipeline's own argsort.
    const inp = makeInputs(ctx, r, shape(1, 4, 2, 900, 64), 'float32');
    const sc = pbsProxyScores(inp.q, inp.k, { segmentSize: 256 });
    const pm = pbsPermutation(sc, { seqLen: 900 });
    expect(Array.from(await pm.toArray())).toEqual(Array.from(refPermutation(await sc.toArray(), 2, 900, 256)));
    for (const t of [st, perm, sc, pm]) t.dispose();
    inp.dispose();
    void seed;
  });

  const selectCases: Array<[string, PbsRefShape, PbsOptions]> = [
    ['meanpool mean, shared', shape(1, 4, 2, 900, 64), { ...small, threshold: 0.8 }],
    ['meanpool max, perQueryHead, batch 2', shape(2, 4, 2, 650, 64), { ...small, pool: 'max', gqaMode: 'perQueryHead', threshold: 0.6 }],
    ['antidiagonal stride 16, block 128 / segment 256', shape(1, 2, 1, 1100, 64), { selector: 'antidiagonal', antidiagonalStride: 16, threshold: 0.7 }],
  ];
  for (const [name, s, o] of selectCases) {
    test(`pbsSelectBlocks (${name}) == reference selection; pipeline == pbsAttention bit for bit`, async () => {
      const ctx = cpuContext();
      const { rng: r, seed } = rng(name);
      const inp = makeInputs(ctx, r, s, 'float32');
      const ro = refOptions(o, s.headDim);
      const scores = pbsProxyScores(inp.q, inp.k, { blockSize: o.blockSize, segmentSize: o.segmentSize, gqaMode: o.gqaMode });
      const perm = pbsPermutation(scores, { seqLen: s.seqLen, segmentSize: ro.segmentSize, blockSize: ro.blockSize as 64 | 128 });
      const { selector, threshold, pool, gqaMode, antidiagonalStride, blockSize, segmentSize } = o;
      const sel = pbsSelectBlocks(inp.q, inp.k, perm, { selector: selector as 'meanpool' | 'antidiagonal' | undefined, threshold, pool, gqaMode, antidiagonalStride, blockSize, segmentSize });
      expect(isDeviceLayout(sel.layout)).toBe(true);
      expect(sel.layout).toBeInstanceOf(BlockLayout);
      const host = await sel.layout.toHost();
      const rows = listRows(host.toLists(), s.batch * s.headsQ * host.queryBlocks);
      const permArr = await perm.toArray();
      checkSelection(inp, o, rows, permArr, `${name} (seed ${seed})`);
      const kept = await sel.keptBlocks.toArray();
      expect(kept.reduce((a, b) => a + b, 0)).toBe(host.keptBlocks());
      expect(sel.causalBlocks).toBe((host.queryBlocks * (host.queryBlocks + 1)) / 2);

      // The fused op plans exactly the same way.
      const { out, stats } = runPbs(inp, o);
      const plan = await usedPlan(stats);
      expect(Array.from(plan.perm!)).toEqual(Array.from(permArr));
      expect(plan.rows).toEqual(rows);
      // And the seam with the stage's layout gives the same output, bit for bit.
      const seam = <Tensor>pbsAttention(inp.q, inp.k, inp.v, {
        ...o,
        selector: (c: PbsSelectorContext) => pbsSelectBlocks(c.q, c.k, c.perm, { selector: selector as 'meanpool' | 'antidiagonal' | undefined, threshold, pool, gqaMode, antidiagonalStride, blockSize, segmentSize: c.segmentSize }).layout,
      });
      expect(Array.from(await seam.toArray())).toEqual(Array.from(await out.toArray()));
      for (const t of [scores, perm, sel.keptBlocks, out, seam]) t.dispose();
      sel.layout.dispose();
      host.dispose();
      stats.dispose();
      inp.dispose();
    });
  }

  test('pbsSelectBlocks with a caller permutation: checked, inverted, same layout as the known one', async () => {
    const ctx = cpuContext();
    const { rng: r } = rng('caller perm');
    const s = shape(1, 2, 2, 600, 64);
    const inp = makeInputs(ctx, r, s, 'float32');
    const scores = pbsProxyScores(inp.q, inp.k, small);
    const perm = pbsPermutation(scores, { seqLen: 600, ...small });
    const copy = Tensor.from(await perm.toArray(), [1, 2, 600], { context: ctx }); // unknown to the library
    const a = pbsSelectBlocks(inp.q, inp.k, perm, { ...small, threshold: 0.7 });
    const b = pbsSelectBlocks(inp.q, inp.k, copy, { ...small, threshold: 0.7 });
    expect((await b.layout.toHost()).toLists()).toEqual((await a.layout.toHost()).toLists());
    // A key moved across a segment boundary would break causality: the op fails, naming the position.
    const bad = await copy.toArray();
    [bad[5], bad[200]] = [bad[200]!, bad[5]!];
    const badT = Tensor.from(bad, [1, 2, 600], { context: ctx });
    const c = pbsSelectBlocks(inp.q, inp.k, badT, { ...small, threshold: 0.7 });
    await expect(c.keptBlocks.toArray()).rejects.toThrow(/leaves its segment/);
    for (const t of [scores, perm, copy, badT, a.keptBlocks, b.keptBlocks, c.keptBlocks]) t.dispose();
    for (const l of [a.layout, b.layout, c.layout]) l.dispose();
    inp.dispose();
  });
});

describe('the selector seam', () => {
  test('a host layout from a custom selector: output == reference on that layout and the permutation', async () => {
    const ctx = cpuContext();
    const { rng: r, seed } = rng('custom host');
    const s = shape(1, 4, 2, 700, 32);
    const inp = makeInputs(ctx, r, s, 'float32');
    let seen: PbsSelectorContext | undefined;
    // Own segment + the segment before it ("local window" in permuted space) + block 0.
    const selector = (c: PbsSelectorContext) => {
      seen = c;
      const t = Math.ceil(c.seqLen / c.blockSize);
      const per = c.segmentSize / c.blockSize;
      const fc = new Int32Array(t);
      const fi = new Int32Array(t * t);
      const mc = new Int32Array(t);
      const mi = new Int32Array(t * per);
      for (let i = 0; i < t; i++) {
        const s0 = Math.floor(i / per) * per;
        const full = new Set<number>();
        if (s0 > 0) full.add(0);
        for (let j = Math.max(0, s0 - per); j < s0; j++) full.add(j);
        [...full].sort((a, b) => a - b).forEach((j, x) => (fi[i * t + x] = j));
        fc[i] = full.size;
        for (let j = s0; j < Math.min(s0 + per, t); j++) mi[i * per + mc[i]!++] = j;
      }
      return BlockLayout.fromLists({ fullCounts: fc, fullIndices: fi, maskCounts: mc, maskIndices: mi }, { queryLength: c.seqLen, blockSize: c.blockSize as 64 | 128 });
    };
    const o: PbsOptions = { ...small, selector };
    const { out, lse, stats } = runPbs(inp, o);
    expect(seen).toBeDefined();
    expect(seen!.perm.dims).toEqual([1, 2, 700]);
    expect(seen!.segmentSize).toBe(128);
    expect(seen!.permutationHeads).toBe(2);
    expect(stats.layout).toBeInstanceOf(BlockLayout);
    const ref = await referenceOfRun(inp, o, stats);
    expectClose(await out.toFloat32Array(), ref.out, 1e-5, `custom host selector (seed ${seed})`);
    expect(lseError(await lse.toFloat32Array(), ref.lse)).toBeLessThanOrEqual(LSE_TOL);
    const rep = await stats.read();
    expect(rep.selector).toBe('custom');
    expect(rep.keptBlocks.every((x) => x === stats.layout.keptBlocks())).toBe(true); // heads broadcast
    expect(rep.times.selectMs).toBeGreaterThanOrEqual(0);
    // The permutation really is the planner's (same as the stage pipeline).
    const perm = pbsPermutation(pbsProxyScores(inp.q, inp.k, small), { seqLen: 700, ...small });
    expect(Array.from(ref.plan.perm!)).toEqual(Array.from(await perm.toArray()));
    for (const t of [out, lse, perm]) t.dispose();
    stats.layout.dispose();
    stats.dispose();
    inp.dispose();
  });

  test('built-in antidiagonal == the same selector through the seam; permute false with a sliding window', async () => {
    const ctx = cpuContext();
    const { rng: r, seed } = rng('seam');
    const s = shape(1, 2, 1, 700, 32);
    const inp = makeInputs(ctx, r, s, 'float32');
    const builtIn = pbsAttention(inp.q, inp.k, inp.v, { ...small, selector: 'antidiagonal', threshold: 0.6 });
    const viaSeam = pbsAttention(inp.q, inp.k, inp.v, {
      ...small,
      threshold: 0.6,
      selector: (c) => pbsSelectBlocks(c.q, c.k, c.perm, { ...small, selector: 'antidiagonal', threshold: c.threshold, segmentSize: c.segmentSize }).layout,
    });
    expect(Array.from(await viaSeam.toArray())).toEqual(Array.from(await builtIn.toArray()));
    // permute: false hands the selector the identity order: any causal layout keeping the diagonal block.
    const o: PbsOptions = { ...small, permute: false, selector: (c) => BlockLayout.slidingWindow({ seqLen: c.seqLen, blockSize: c.blockSize as 64, windowBlocks: 3, sinkBlocks: 1 }) };
    const { out, stats } = runPbs(inp, o);
    const ref = await referenceOfRun(inp, o, stats);
    expect(Array.from(ref.plan.perm!).every((x, i) => x === i % 700)).toBe(true);
    expectClose(await out.toFloat32Array(), ref.out, 1e-5, `permute false seam (seed ${seed})`);
    for (const t of [builtIn, viaSeam, out]) t.dispose();
    stats.layout.dispose();
    stats.dispose();
    inp.dispose();
  });
});

describe('device layouts and edge cases', () => {
  test('device layouts: host views throw, toHost works, blockSparseAttention refuses permuted ones and runs identity ones', async () => {
    const ctx = cpuContext();
    const { rng: r } = rng('device layout');
    const inp = makeInputs(ctx, r, shape(1, 2, 1, 600, 64), 'float32');
    const { out, stats } = runPbs(inp, small);
    expect(() => stats.layout.keptBlocks()).toThrow(TypeError);
    expect(() => stats.layout.toBlockMask()).toThrow(/toHost/);
    expect(() => blockSparseAttention(inp.q, inp.k, inp.v, stats.layout)).toThrow(/permuted keys/);
    const base = runPbs(inp, { ...small, permute: false });
    const again = blockSparseAttention(inp.q, inp.k, inp.v, base.stats.layout);
    expect(Array.from(await again.toArray())).toEqual(Array.from(await base.out.toArray()));
    expect(String(stats.layout)).toMatch(/device/);
    for (const t of [out, base.out, base.lse, again]) t.dispose();
    stats.dispose();
    base.stats.dispose();
    expect(stats.layout.isDisposed).toBe(true);
    expect(() => blockSparseAttention(inp.q, inp.k, inp.v, base.stats.layout)).toThrow(/disposed/);
    inp.dispose();
  });

  test('empty batch: empty outputs, nothing enqueued', async () => {
    const ctx = cpuContext();
    const z = (h: number) => Tensor.zeros([0, h, 500, 64], { context: ctx });
    const [q, k, v] = [z(4), z(2), z(2)];
    const r = pbsAttention(q, k, v, { returnLse: true, returnStats: true });
    expect(r.out.dims).toEqual([0, 4, 500, 64]);
    expect(r.lse!.dims).toEqual([0, 4, 500]);
    expect((await r.stats!.read()).keptBlocks.length).toBe(0);
    for (const t of [q, k, v, r.out, r.lse!]) t.dispose();
    r.stats!.dispose();
  });

  test('outputs in original token order: permuting keys of a sequence does not change the dense result', async () => {
    // threshold 1 through the permuted path vs the same through permute: false (identity order).
    const ctx = cpuContext();
    const { rng: r, seed } = rng('order');
    const inp = makeInputs(ctx, r, shape(1, 2, 2, 700, 64), 'float32');
    const a = await pbsAttention(inp.q, inp.k, inp.v, { ...small, threshold: 1 }).toArray();
    const b = await pbsAttention(inp.q, inp.k, inp.v, { ...small, threshold: 1, permute: false }).toArray();
    const err = relError(a, b);
    if (!(err <= 1e-5)) throw new Error(`permuted vs natural order differ by ${err} (seed ${seed})`);
    inp.dispose();
  });
});
