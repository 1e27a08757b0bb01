/**
 * spmm and BlockSparseMatrix on the CPU backend against the float64 reference (test/reference/spmm.ts).
 * Inputs are fresh random normals every run (seed printed on failure); shapes are small and odd (M, K not
 * multiples of the block), with N = 1 (GEMV), small and panel-sized N, every activation, bias or not, the
 * three dtypes and both backends. The builders are checked against the meaning of their inputs (which
 * blocks a tolerance or a target sparsity keeps), not against their own output.
 */
import { Context } from '../../lib/context';
import { type FloatDType, fromHalfBits } from '../../lib/dtype';
import { DisposedError } from '../../lib/errors';
import {
  BlockSparseMatrix,
  CROSSOVER_CLASSES,
  SPMM_ACTIVATIONS,
  SPMM_CROSSOVER,
  type SpmmActivation,
  crossoverClass,
  crossoverDensity,
  spmm,
} from '../../lib/spmm';
import { Tensor } from '../../lib/tensor';
import { cpuContext } from '../helpers/gpu';
import { type Rng, rng } from '../helpers/random';
import { TOL, expectClose } from '../helpers/tolerance';
import { denseFromCsr, referenceBlockSparse, referenceCsr, referenceLinear, referenceSelection } from '../reference/spmm';
import { blockSparseDense, nanTensor, poison, randomMask, roundTo, tensorOf } from './common';

const DTYPES: FloatDType[] = ['float32', 'float16', 'bfloat16'];

/** The host values of a float tensor as float32. */
async function host(t: Tensor): Promise<Float32Array> {
  return t.toFloat32Array();
}

interface Problem {
  m: number;
  k: number;
  bm: number;
  bk: number;
  /** Leading dims of x. */
  lead: number[];
  density: number;
  dtype: FloatDType;
  activation: SpmmActivation;
  bias: boolean;
}

/** Random W (block pattern `keep`), x and bias, all rounded to the dtype; the matrix built by fromDense. */
async function setup(ctx: Context, r: Rng, p: Problem) {
  const mb = Math.ceil(p.m / p.bm);
  const kb = Math.ceil(p.k / p.bk);
  const keep = randomMask(r, mb, kb, p.density);
  const wv = blockSparseDense(r, p.m, p.k, p.bm, p.bk, keep, p.dtype);
  const n = p.lead.reduce((a, b) => a * b, 1);
  const xv = roundTo(r.normals(n * p.k), p.dtype);
  const bv = p.bias ? roundTo(r.normals(p.m), p.dtype) : undefined;
  const W = tensorOf(ctx, wv, [p.m, p.k], p.dtype);
  const w = await BlockSparseMatrix.fromDense(W, { blockShape: [p.bm, p.bk] });
  W.dispose();
  const x = tensorOf(ctx, xv, [...p.lead, p.k], p.dtype);
  const bias = bv ? tensorOf(ctx, bv, [p.m], p.dtype) : undefined;
  const ref = referenceLinear(xv, wv, n, p.m, p.k, bv, p.activation);
  return { keep, wv, xv, bv, w, x, bias, n, ref };
}

const label = (p: Problem) =>
  `${p.dtype} W[${p.m}, ${p.k}] blocks ${p.bm}x${p.bk} x[${p.lead.join(', ')}, ${p.k}] density ${p.density} ${p.activation}${p.bias ? ' +bias' : ''}`;

describe('spmm (cpu) vs the float64 reference', () => {
  const cases: Problem[] = [
    { m: 70, k: 45, bm: 16, bk: 8, lead: [9], density: 0.4, dtype: 'float32', activation: 'none', bias: false },
    { m: 100, k: 130, bm: 32, bk: 32, lead: [1], density: 0.5, dtype: 'float32', activation: 'relu', bias: true }, // GEMV
    { m: 65, k: 33, bm: 32, bk: 32, lead: [37], density: 0.6, dtype: 'float32', activation: 'gelu', bias: true },
    { m: 129, k: 77, bm: 64, bk: 64, lead: [2, 3, 5], density: 0.7, dtype: 'float32', activation: 'silu', bias: true },
    { m: 31, k: 29, bm: 1, bk: 1, lead: [20], density: 0.3, dtype: 'float32', activation: 'none', bias: true }, // unstructured
    { m: 53, k: 61, bm: 7, bk: 5, lead: [70], density: 0.35, dtype: 'float32', activation: 'relu', bias: false }, // odd blocks, > 1 panel
    { m: 40, k: 300, bm: 4, bk: 1, lead: [17], density: 0.25, dtype: 'float32', activation: 'gelu', bias: false },
    { m: 96, k: 80, bm: 16, bk: 16, lead: [33], density: 0.5, dtype: 'float16', activation: 'none', bias: true },
    { m: 96, k: 80, bm: 16, bk: 16, lead: [1], density: 0.5, dtype: 'float16', activation: 'silu', bias: true },
    { m: 75, k: 90, bm: 32, bk: 16, lead: [4, 6], density: 0.5, dtype: 'bfloat16', activation: 'gelu', bias: true },
    { m: 75, k: 90, bm: 32, bk: 16, lead: [1], density: 0.5, dtype: 'bfloat16', activation: 'relu', bias: false },
  ];
  test.each(cases.map((c) => [label(c), c] as const))('%s', async (_l, p) => {
    const ctx = cpuContext();
    const { rng: r, seed } = rng(label(p));
    const s = await setup(ctx, r, p);
    await poison(ctx, s.n * p.m, p.dtype);
    for (const backend of ['sparse', 'dense', 'auto'] as const) {
      const y = spmm(s.x, s.w, { bias: s.bias, activation: p.activation, backend });
      expect(y.dims).toEqual([...p.lead, p.m]);
      expect(y.dtype).toBe(p.dtype);
      expectClose(await host(y), s.ref, TOL[p.dtype], `${label(p)} backend ${backend} (seed ${seed})`);
      y.dispose();
    }
    s.w.dispose();
    s.x.dispose();
    s.bias?.dispose();
  });

  test('every activation, with and without bias, matches on both backends (float32, 2 panels)', async () => {
    const ctx = cpuContext();
    const { rng: r, seed } = rng('activations');
    // Large pre-activations exercise GELU's tails (erfc, no cancellation) and SiLU's saturation.
    const p: Problem = { m: 50, k: 70, bm: 8, bk: 8, lead: [130], density: 0.5, dtype: 'float32', activation: 'none', bias: true };
    const s = await setup(ctx, r, p);
    for (const activation of SPMM_ACTIVATIONS) {
      for (const withBias of [false, true]) {
        const ref = referenceLinear(s.xv, s.wv, s.n, p.m, p.k, withBias ? s.bv : undefined, activation);
        for (const backend of ['sparse', 'dense'] as const) {
          const y = spmm(s.x, s.w, { activation, bias: withBias ? s.bias : undefined, backend });
          expectClose(await host(y), ref, TOL.float32, `${activation} bias ${withBias} ${backend} (seed ${seed})`);
          y.dispose();
        }
      }
    }
    s.w.dispose();
  });

  test('the two backends agree with each other on random inputs (all dtypes)', async () => {
    const ctx = cpuContext();
    for (const dtype of DTYPES) {
      const { rng: r, seed } = rng(`backends ${dtype}`);
      const p: Problem = { m: 77, k: 91, bm: 16, bk: 32, lead: [45], density: 0.45, dtype, activation: 'silu', bias: true };
      const s = await setup(ctx, r, p);
      const a = await host(spmm(s.x, s.w, { bias: s.bias, activation: 'silu', backend: 'sparse' }));
      const b = await host(spmm(s.x, s.w, { bias: s.bias, activation: 'silu', backend: 'dense' }));
      expectClose(a, Float64Array.from(b), TOL[dtype], `${dtype} sparse vs dense (seed ${seed})`);
      s.w.dispose();
    }
  });

  test('NaN / Inf in x propagate only through stored blocks (a pruned block is never read)', async () => {
    const ctx = cpuContext();
    const { rng: r, seed } = rng('nan x');
    const m = 48;
    const k = 40;
    const bm = 16;
    const bk = 8;
    const keep = Uint8Array.from([1, 0, 1, 0, 1, /**/ 0, 0, 0, 0, 0, /**/ 1, 1, 0, 0, 1]); // [3, 5]; block row 1 empty
    const wv = blockSparseDense(r, m, k, bm, bk, keep, 'float32');
    const n = 3;
    const xv = r.normals(n * k);
    xv[0 * k + 9] = NaN; // block column 1: stored only in block row 2
    xv[1 * k + 33] = Infinity; // block column 4: block rows 0 and 2
    const w = await BlockSparseMatrix.fromDense(Tensor.from(wv, [m, k], { context: ctx }), { blockShape: [bm, bk] });
    const x = Tensor.from(xv, [n, k], { context: ctx });
    const y = await host(spmm(x, w, { backend: 'sparse' }));
    const ref = referenceBlockSparse(xv, wv, keep, n, m, k, bm, bk, undefined, 'none');
    for (let i = 0; i < n * m; i++) {
      const a = y[i]!;
      const b = ref[i]!;
      if (Number.isFinite(b)) expect(Math.abs(a - b)).toBeLessThanOrEqual(1e-4 * (1 + Math.abs(b)));
      else expect(Number.isNaN(b) ? Number.isNaN(a) : Number.isNaN(a) || a === b).toBe(true);
    }
    // Row 0 sees the NaN only in block row 2; block rows 0 and 1 stay finite.
    expect(y.slice(0, 32).every(Number.isFinite)).toBe(true);
    expect(y.slice(32, 48).every(Number.isNaN)).toBe(true);
    // The sanity of the fixture itself (seed ${seed}): the dense product would be NaN everywhere in row 0.
    expect(referenceLinear(xv, wv, n, m, k, undefined, 'none').slice(0, 48).every(Number.isNaN)).toBe(true);
    w.dispose();
  });
});

describe('structure edge cases (cpu)', () => {
  /** A matrix given as explicit block-CSR, with the dense W it denotes. */
  function csrCase(r: Rng, m: number, k: number, bm: number, bk: number, keep: Uint8Array, dtype: FloatDType) {
    const wv = blockSparseDense(r, m, k, bm, bk, keep, dtype);
    const csr = referenceCsr(wv, keep, m, k, bm, bk);
    const w = BlockSparseMatrix.fromBlockCsr(csr.rowPtr, csr.colIdx, Float32Array.from(csr.values), [m, k], [bm, bk], { dtype, context: cpuContext() });
    return { w, wv };
  }

  test('empty block rows write bias + activation only (GEMV and panel paths, both backends)', async () => {
    const ctx = cpuContext();
    const { rng: r, seed } = rng('empty rows');
    const m = 70;
    const k = 50;
    const bm = 16;
    const bk = 16;
    // Block rows 0, 2, 4 empty (4 is the partial last one).
    const keep = Uint8Array.from([0, 0, 0, 0, /**/ 1, 0, 1, 1, /**/ 0, 0, 0, 0, /**/ 1, 1, 1, 1, /**/ 0, 0, 0, 0]);
    const { w, wv } = csrCase(r, m, k, bm, bk, keep, 'float32');
    expect(w.nnzBlocks).toBe(7);
    const bv = r.normals(m);
    const bias = Tensor.from(bv, [m], { context: ctx });
    for (const n of [1, 19]) {
      const xv = r.normals(n * k);
      const x = Tensor.from(xv, [n, k], { context: ctx });
      const ref = referenceLinear(xv, wv, n, m, k, bv, 'gelu');
      for (const backend of ['sparse', 'dense'] as const) {
        await poison(ctx, n * m, 'float32');
        const y = spmm(x, w, { bias, activation: 'gelu', backend });
        expectClose(await host(y), ref, TOL.float32, `N ${n} ${backend} (seed ${seed})`);
      }
    }
    w.dispose();
  });

  test('an all-empty matrix (nnzb 0) gives act(bias), or zeros without bias', async () => {
    const ctx = cpuContext();
    const { rng: r, seed } = rng('all empty');
    const m = 37;
    const k = 21;
    for (const dtype of DTYPES) {
      const w = BlockSparseMatrix.fromBlockCsr(new Int32Array(Math.ceil(m / 16) + 1), new Int32Array(0), new Float32Array(0), [m, k], [16, 16], { dtype, context: ctx });
      expect(w.nnzBlocks).toBe(0);
      expect(w.density).toBe(0);
      const fromZeros = await BlockSparseMatrix.fromDense(Tensor.zeros([m, k], { dtype, context: ctx }), { blockShape: [16, 16] });
      expect(fromZeros.nnzBlocks).toBe(0);
      const bv = roundTo(r.normals(m), dtype);
      const bias = tensorOf(ctx, bv, [m], dtype);
      for (const n of [1, 5]) {
        const x = tensorOf(ctx, roundTo(r.normals(n * k), dtype), [n, k], dtype);
        for (const matrix of [w, fromZeros]) {
          for (const backend of ['sparse', 'dense'] as const) {
            const y = await host(spmm(x, matrix, { bias, activation: 'silu', backend }));
            const want = Float64Array.from({ length: n * m }, (_, i) => {
              const b = bv[i % m]!;
              return b / (1 + Math.exp(-b));
            });
            expectClose(y, want, TOL[dtype], `${dtype} N ${n} ${backend} (seed ${seed})`);
            const plain = await host(spmm(x, matrix, { backend }));
            expect(Array.from(plain).every((v) => v === 0)).toBe(true);
          }
        }
      }
      w.dispose();
      fromZeros.dispose();
    }
  });

  test('zero-sized problems: N = 0, M = 0 and K = 0', async () => {
    const ctx = cpuContext();
    const { rng: r } = rng('zero sized');
    const w = await BlockSparseMatrix.fromDense(Tensor.from(r.normals(6 * 5), [6, 5], { context: ctx }), { blockShape: [4, 4] });
    const y0 = spmm(Tensor.zeros([0, 5], { context: ctx }), w);
    expect(y0.dims).toEqual([0, 6]);
    expect((await y0.toArray()).length).toBe(0);
    const y0b = spmm(Tensor.zeros([2, 0, 5], { context: ctx }), w);
    expect(y0b.dims).toEqual([2, 0, 6]);

    const wm0 = await BlockSparseMatrix.fromDense(Tensor.zeros([0, 5], { context: ctx }), { blockShape: [4, 4] });
    expect(wm0.shape).toEqual([0, 5]);
    const ym0 = spmm(Tensor.from(r.normals(3 * 5), [3, 5], { context: ctx }), wm0);
    expect(ym0.dims).toEqual([3, 0]);
    expect((await ym0.toArray()).length).toBe(0);

    const wk0 = await BlockSparseMatrix.fromDense(Tensor.zeros([4, 0], { context: ctx }), { blockShape: [4, 4] });
    expect(wk0.nnzBlocks).toBe(0);
    const bv = r.normals(4);
    for (const backend of ['sparse', 'dense'] as const) {
      const yk0 = spmm(Tensor.zeros([3, 0], { context: ctx }), wk0, { bias: Tensor.from(bv, [4], { context: ctx }), activation: 'relu', backend });
      expectClose(await host(yk0), Float64Array.from({ length: 12 }, (_, i) => Math.max(0, bv[i % 4]!)), TOL.float32, `K = 0 ${backend}`);
      expect(spmm(Tensor.zeros([0, 5], { context: ctx }), w, { backend }).dims).toEqual([0, 6]);
      expect(spmm(Tensor.zeros([3, 5], { context: ctx }), wm0, { backend }).dims).toEqual([3, 0]);
    }
    await ctx.synchronize(); // no task of the zero-sized calls failed
    for (const t of [w, wm0, wk0]) t.dispose();
  });

  test('a [K] vector is N = 1 and returns [M]', async () => {
    const ctx = cpuContext();
    const { rng: r, seed } = rng('vector');
    const keep = Uint8Array.from([1, 1, 0, 1, 0, 1]);
    const { w, wv } = csrCase(r, 20, 23, 8, 8, keep, 'float32');
    const xv = r.normals(23);
    const y = spmm(Tensor.from(xv, [23], { context: ctx }), w);
    expect(y.dims).toEqual([20]);
    expectClose(await host(y), referenceLinear(xv, wv, 1, 20, 23, undefined, 'none'), TOL.float32, `vector (seed ${seed})`);
    w.dispose();
  });

  test('options.out is written (every element) and returned, on both backends', async () => {
    const ctx = cpuContext();
    const { rng: r, seed } = rng('out');
    const p: Problem = { m: 33, k: 40, bm: 8, bk: 8, lead: [3, 7], density: 0.5, dtype: 'bfloat16', activation: 'relu', bias: true };
    const s = await setup(ctx, r, p);
    for (const backend of ['sparse', 'dense'] as const) {
      const out = nanTensor(ctx, [3, 7, 33], 'bfloat16');
      const y = spmm(s.x, s.w, { bias: s.bias, activation: 'relu', out, backend });
      expect(y).toBe(out);
      expectClose(await host(out), s.ref, TOL.bfloat16, `out ${backend} (seed ${seed})`);
    }
    s.w.dispose();
  });

  test('a NaN weight in a kept block propagates (NaN blocks are kept by fromDense)', async () => {
    const ctx = cpuContext();
    const wv = new Float32Array(8 * 8);
    wv[3 * 8 + 5] = NaN; // block (0, 1) of 4x4 blocks; everything else zero
    const w = await BlockSparseMatrix.fromDense(Tensor.from(wv, [8, 8], { context: ctx }), { blockShape: [4, 4], tolerance: 1 });
    expect(w.nnzBlocks).toBe(1);
    const y = await host(spmm(Tensor.from(new Float32Array(8).fill(1), [1, 8], { context: ctx }), w));
    expect(Number.isNaN(y[3])).toBe(true);
    expect(Array.from(y).filter((v) => Number.isNaN(v)).length).toBe(1);
    w.dispose();
  });
});

describe('BlockSparseMatrix.fromDense selection (cpu)', () => {
  async function kept(w: BlockSparseMatrix): Promise<Uint8Array> {
    const { rowPtr, colIdx } = await w.toBlockCsr();
    const [mb, kb] = w.blockGrid;
    const keep = new Uint8Array(mb * kb);
    for (let r = 0; r < mb; r++) for (let j = rowPtr[r]!; j < rowPtr[r + 1]!; j++) keep[r * kb + colIdx[j]!] = 1;
    return keep;
  }

  test('tolerance: a block is kept iff max |w| > tolerance (equal is dropped), sign ignored', async () => {
    const ctx = cpuContext();
    const bm = 4;
    const bk = 4;
    const m = 8;
    const k = 12;
    // Six blocks, each zero except one entry of a chosen magnitude.
    const mags = [0.5, -0.5, 0.50001, 0.25, -0.75, 0];
    const wv = new Float32Array(m * k);
    mags.forEach((v, b) => {
      const r = Math.floor(b / 3);
      const c = b % 3;
      wv[(r * bm + 1) * k + c * bk + 2] = v;
    });
    for (const tolerance of [0, 0.25, 0.5, 0.6, 1]) {
      const w = await BlockSparseMatrix.fromDense(Tensor.from(wv, [m, k], { context: ctx }), { blockShape: [bm, bk], tolerance });
      const want = Uint8Array.from(mags.map((v) => (Math.abs(v) > tolerance ? 1 : 0)));
      expect(Array.from(await kept(w))).toEqual(Array.from(want));
      expect(Array.from(await kept(w))).toEqual(Array.from(referenceSelection(wv, m, k, bm, bk, tolerance, undefined)));
      w.dispose();
    }
  });

  test('sparsity: exactly ceil(s * blocks) lowest-L2 blocks are dropped (random data, odd grid, all dtypes)', async () => {
    const ctx = cpuContext();
    for (const dtype of DTYPES) {
      const { rng: r, seed } = rng(`sparsity ${dtype}`);
      const m = 45;
      const k = 70;
      const bm = 8;
      const bk = 16;
      const total = Math.ceil(m / bm) * Math.ceil(k / bk); // 6 x 5 = 30
      // Blocks of very different scales so the L2 order is the point, not noise.
      const wv = new Float32Array(m * k);
      const scale = Float32Array.from({ length: total }, () => Math.exp(3 * r.normal()));
      for (let i = 0; i < m; i++) for (let j = 0; j < k; j++) wv[i * k + j] = r.normal() * scale[Math.floor(i / bm) * 5 + Math.floor(j / bk)]!;
      const wd = roundTo(wv, dtype);
      const W = tensorOf(ctx, wd, [m, k], dtype);
      for (const s of [0, 0.1, 0.3, 0.5, 0.9, 0.99, 1]) {
        const w = await BlockSparseMatrix.fromDense(W, { blockShape: [bm, bk], sparsity: s });
        const want = referenceSelection(wd, m, k, bm, bk, 0, s);
        expect(w.nnzBlocks).toBe(total - Math.ceil(s * total - 1e-9));
        expect(Array.from(await kept(w))).toEqual(Array.from(want));
        expect(w.density).toBeCloseTo(w.nnzBlocks / total, 12);
        // The kept blocks hold W's values bit for bit.
        const dense = await w.toDense().toArray();
        const expected = referenceCsr(wd, want, m, k, bm, bk);
        const expDense = denseFromCsr(expected.rowPtr, expected.colIdx, expected.values, m, k, bm, bk);
        const got = dtype === 'float32' ? (dense as Float32Array) : fromHalfBits(dense as Uint16Array, dtype);
        expect(Array.from(got)).toEqual(Array.from(expDense).map((v) => Math.fround(v)));
        w.dispose();
        void seed;
      }
    }
  });

  test('sparsity ties: equal-norm blocks are dropped lowest index first', async () => {
    const ctx = cpuContext();
    // 3 x 4 blocks of 2x2, every block the same values: all norms tie exactly.
    const m = 6;
    const k = 8;
    const wv = new Float32Array(m * k);
    for (let i = 0; i < m; i++) for (let j = 0; j < k; j++) wv[i * k + j] = [0.5, -1, 2, 0.25][(i % 2) * 2 + (j % 2)]!;
    for (const s of [0.25, 0.5, 0.75]) {
      const w = await BlockSparseMatrix.fromDense(Tensor.from(wv, [m, k], { context: ctx }), { blockShape: [2, 2], sparsity: s });
      const drop = Math.ceil(s * 12);
      const want = Array.from({ length: 12 }, (_, b) => (b < drop ? 0 : 1));
      expect(Array.from(await kept(w))).toEqual(want);
      w.dispose();
    }
    // One block with a smaller norm goes first, then the ties by index.
    wv[5 * k + 7] = 0.1; // block (2, 3), index 11: norm now smaller than the others
    const w = await BlockSparseMatrix.fromDense(Tensor.from(wv, [m, k], { context: ctx }), { blockShape: [2, 2], sparsity: 0.25 });
    expect(Array.from(await kept(w))).toEqual([0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0]);
    w.dispose();
  });

  test('tolerance and sparsity together: zero blocks never count as kept', async () => {
    const ctx = cpuContext();
    const { rng: r } = rng('tol + sparsity');
    const keep = randomMask(r, 5, 6, 0.5);
    const wv = blockSparseDense(r, 40, 48, 8, 8, keep, 'float32');
    const w = await BlockSparseMatrix.fromDense(Tensor.from(wv, [40, 48], { context: ctx }), { blockShape: [8, 8], sparsity: 0.2 });
    const want = referenceSelection(wv, 40, 48, 8, 8, 0, 0.2);
    expect(Array.from(await kept(w))).toEqual(Array.from(want));
    expect(1 - w.density).toBeGreaterThanOrEqual(0.2);
    w.dispose();
  });

  test('toDense round trip: fromDense(W).toDense() == W bit for bit (tolerance 0, all dtypes, odd shapes)', async () => {
    const ctx = cpuContext();
    for (const dtype of DTYPES) {
      const { rng: r } = rng(`roundtrip ${dtype}`);
      for (const [m, k, bm, bk] of [
        [50, 37, 16, 16],
        [64, 64, 32, 32],
        [9, 130, 4, 64],
        [33, 1, 1, 1],
      ] as const) {
        const keep = randomMask(r, Math.ceil(m / bm), Math.ceil(k / bk), 0.5);
        const wv = blockSparseDense(r, m, k, bm, bk, keep, dtype);
        const W = tensorOf(ctx, wv, [m, k], dtype);
        const w = await BlockSparseMatrix.fromDense(W, { blockShape: [bm, bk] });
        expect(Array.from(await w.toDense().toArray())).toEqual(Array.from(await W.toArray()));
        // and through the block-CSR arrays
        const csr = await w.toBlockCsr();
        const w2 = BlockSparseMatrix.fromBlockCsr(csr.rowPtr, csr.colIdx, csr.values, [m, k], [bm, bk], { dtype, context: ctx });
        expect(Array.from(await w2.toDense().toArray())).toEqual(Array.from(await W.toArray()));
        w.dispose();
        w2.dispose();
      }
    }
  });
});

describe('BlockSparseMatrix.fromBlockCsr (cpu)', () => {
  test('rowOrder is the block rows by nnz descending, stable', async () => {
    const ctx = cpuContext();
    const rowPtr = [0, 1, 4, 4, 6, 9, 10];
    const colIdx = [2, 0, 1, 3, 0, 1, 0, 2, 3, 1];
    const w = BlockSparseMatrix.fromBlockCsr(rowPtr, colIdx, new Float32Array(10 * 4).fill(1), [12, 8], [2, 2], { context: ctx });
    const { rowOrder, rowPtr: rp, colIdx: ci } = await w.toBlockCsr();
    expect(Array.from(rp)).toEqual(rowPtr);
    expect(Array.from(ci)).toEqual(colIdx);
    expect(Array.from(rowOrder)).toEqual([1, 4, 3, 0, 5, 2]);
    w.dispose();
  });

  test('padding entries (outside [M, K]) are ignored, even NaN / Inf: host values and a values tensor', async () => {
    const ctx = cpuContext();
    const { rng: r, seed } = rng('padding');
    const m = 10;
    const k = 7;
    const bm = 4;
    const bk = 4;
    const keep = Uint8Array.from([1, 1, 0, 1, 1, 1]); // [3, 2]
    const wv = blockSparseDense(r, m, k, bm, bk, keep, 'float32');
    const csr = referenceCsr(wv, keep, m, k, bm, bk);
    const vals = Float32Array.from(csr.values);
    // Poison every padding entry.
    let poisoned = 0;
    const mbRows = [0, 0, 1, 2, 2];
    const cols = csr.colIdx;
    for (let j = 0; j < cols.length; j++) {
      for (let i = 0; i < bm; i++) {
        for (let q = 0; q < bk; q++) {
          if (mbRows[j]! * bm + i >= m || cols[j]! * bk + q >= k) {
            vals[(j * bm + i) * bk + q] = poisoned++ % 2 ? NaN : Infinity;
          }
        }
      }
    }
    expect(poisoned).toBeGreaterThan(0);
    const n = 5;
    const xv = r.normals(n * k);
    const x = Tensor.from(xv, [n, k], { context: ctx });
    const ref = referenceLinear(xv, wv, n, m, k, undefined, 'none');
    const fromHost = BlockSparseMatrix.fromBlockCsr(csr.rowPtr, csr.colIdx, vals, [m, k], [bm, bk], { context: ctx });
    const valuesTensor = Tensor.from(vals, [vals.length], { context: ctx });
    const fromTensor = BlockSparseMatrix.fromBlockCsr(csr.rowPtr, csr.colIdx, valuesTensor, [m, k], [bm, bk]);
    for (const w of [fromHost, fromTensor]) {
      for (const backend of ['sparse', 'dense'] as const) {
        expectClose(await host(spmm(x, w, { backend })), ref, TOL.float32, `padding ${backend} (seed ${seed})`);
      }
      expect(Array.from(await w.toDense().toArray())).toEqual(Array.from(wv));
    }
    // The caller's values tensor is untouched (the matrix works on a copy).
    expect(Array.from(await valuesTensor.toArray()).filter((v) => !Number.isFinite(v)).length).toBe(poisoned);
    fromHost.dispose();
    fromTensor.dispose();
  });

  test('the matrix keeps its own copies: later changes to the caller arrays do not leak in', async () => {
    const ctx = cpuContext();
    const rowPtr = new Int32Array([0, 1, 2]);
    const colIdx = new Int32Array([0, 1]);
    const values = new Float32Array(2 * 4).fill(1);
    const w = BlockSparseMatrix.fromBlockCsr(rowPtr, colIdx, values, [4, 4], [2, 2], { context: ctx });
    rowPtr[1] = 2;
    colIdx[0] = 5;
    values.fill(7);
    const csr = await w.toBlockCsr();
    expect(Array.from(csr.rowPtr)).toEqual([0, 1, 2]);
    expect(Array.from(csr.colIdx)).toEqual([0, 1]);
    expect(Array.from(csr.values)).toEqual(new Array(8).fill(1));
    w.dispose();
  });

  test('float16 / bfloat16 from raw bits, from float32 (rounded), and Float32Array -> dtype', async () => {
    const ctx = cpuContext();
    const { rng: r, seed } = rng('half csr');
    for (const dtype of ['float16', 'bfloat16'] as const) {
      const keep = Uint8Array.from([1, 0, 1, 1]);
      const wv = blockSparseDense(r, 16, 16, 8, 8, keep, dtype);
      const csr = referenceCsr(wv, keep, 16, 16, 8, 8);
      const f32 = Float32Array.from(csr.values);
      const fromF32 = BlockSparseMatrix.fromBlockCsr(csr.rowPtr, csr.colIdx, f32, [16, 16], [8, 8], { dtype, context: ctx });
      const bits = (await fromF32.toBlockCsr()).values as Uint16Array;
      const fromBits = BlockSparseMatrix.fromBlockCsr(csr.rowPtr, csr.colIdx, bits, [16, 16], [8, 8], { dtype, context: ctx });
      expect(fromBits.dtype).toBe(dtype);
      const xv = roundTo(r.normals(3 * 16), dtype);
      const x = tensorOf(ctx, xv, [3, 16], dtype);
      const ref = referenceLinear(xv, wv, 3, 16, 16, undefined, 'none');
      expectClose(await host(spmm(x, fromF32)), ref, TOL[dtype], `${dtype} from f32 (seed ${seed})`);
      expectClose(await host(spmm(x, fromBits)), ref, TOL[dtype], `${dtype} from bits (seed ${seed})`);
      fromF32.dispose();
      fromBits.dispose();
    }
  });
});

describe('plans, caching and lifetime (cpu)', () => {
  test('plan(n): one cached decision per N bucket; auto follows it', async () => {
    const ctx = cpuContext();
    const { rng: r } = rng('plan');
    const dense = await BlockSparseMatrix.fromDense(Tensor.from(r.normals(64 * 64), [64, 64], { context: ctx }), { blockShape: [16, 16] });
    expect(dense.density).toBe(1);
    const p = dense.plan(100);
    expect(p.nBucket).toBe(128);
    expect(dense.plan(65)).toBe(p); // same bucket -> the same cached object
    expect(dense.plan(1).nBucket).toBe(1);
    expect(dense.plan(5000).nBucket).toBe(4096);
    expect(p.dtype).toBe('float32');
    expect(p.device).toBe('cpu');
    expect(p.backend).toBe(p.density <= p.threshold ? 'sparse' : 'dense');
    // Density 1 on the CPU: the dense backend wins for N > 1 (measured), so auto materialises the cache.
    expect(p.backend).toBe('dense');
    expect(dense.hasDenseCache).toBe(false);
    spmm(Tensor.from(r.normals(100 * 64), [100, 64], { context: ctx }), dense).dispose();
    expect(dense.hasDenseCache).toBe(true);

    const sparse = BlockSparseMatrix.fromBlockCsr([0, 1, 1, 1, 1], [2], new Float32Array(256).fill(0.5), [64, 64], [16, 16], { context: ctx });
    expect(sparse.plan(100).backend).toBe('sparse');
    spmm(Tensor.from(r.normals(100 * 64), [100, 64], { context: ctx }), sparse).dispose();
    expect(sparse.hasDenseCache).toBe(false);
    dense.dispose();
    sparse.dispose();
  });

  test('the crossover table is well formed and looked up by block class and N', () => {
    for (const device of ['cpu', 'cuda'] as const) {
      for (const kind of ['float32', 'half'] as const) {
        const table = SPMM_CROSSOVER[device][kind];
        const classes = device === 'cpu' ? CROSSOVER_CLASSES : ([16, 32, 64] as const);
        for (const c of classes) {
          const list = table[c]!;
          expect(list.length).toBeGreaterThan(0);
          expect(list[list.length - 1]!.maxN).toBe(Infinity);
          list.forEach((row, i) => {
            expect(row.density).toBeGreaterThan(0);
            expect(row.density).toBeLessThanOrEqual(1);
            if (i > 0) expect(row.maxN).toBeGreaterThan(list[i - 1]!.maxN);
          });
        }
      }
    }
    expect(crossoverClass(1, 1)).toBe(1);
    expect(crossoverClass(4, 1)).toBe(4);
    expect(crossoverClass(16, 64)).toBe(32);
    expect(crossoverClass(128, 128)).toBe(64);
    expect(crossoverDensity('cpu', 'float32', 32, 32, 512)).toBe(SPMM_CROSSOVER.cpu.float32[32]![2]!.density);
    expect(crossoverDensity('cpu', 'bfloat16', 32, 32, 1)).toBe(SPMM_CROSSOVER.cpu.half[32]![0]!.density);
    expect(crossoverDensity('cuda', 'float32', 16, 16, 4096)).toBe(1);
  });

  test('dispose frees the device arrays and the dense cache; use afterwards throws DisposedError', async () => {
    const ctx = new Context({ device: 'cpu' }); // its own accounting: no other test's garbage in the counts
    const { rng: r } = rng('dispose');
    const before = ctx.memory().tensors;
    const W = Tensor.from(r.normals(40 * 40), [40, 40], { context: ctx });
    const w = await BlockSparseMatrix.fromDense(W, { blockShape: [8, 8] });
    W.dispose();
    const x = Tensor.from(r.normals(4 * 40), [4, 40], { context: ctx });
    spmm(x, w, { backend: 'dense' }).dispose();
    await ctx.synchronize(); // a disposed tensor's memory goes once the tasks holding it are done
    expect(ctx.memory().tensors).toBe(before + 4 + 1 + 1); // 4 arrays, dense cache, x
    w.dispose();
    w.dispose(); // idempotent
    await ctx.synchronize();
    expect(ctx.memory().tensors).toBe(before + 1);
    expect(w.isDisposed).toBe(true);
    expect(() => spmm(x, w)).toThrow(DisposedError);
    expect(() => w.toDense()).toThrow(DisposedError);
    expect(() => w.plan(3)).toThrow(DisposedError);
    await expect(w.toBlockCsr()).rejects.toThrow(DisposedError);
    x.dispose();
    const scoped = await BlockSparseMatrix.fromDense(Tensor.from(r.normals(16), [4, 4], { context: ctx }), { blockShape: [2, 2] });
    expect(scoped.isDisposed).toBe(false);
    scoped[Symbol.dispose]();
    expect(scoped.isDisposed).toBe(true);
    // Disposing the context disposes a matrix built on it.
    const other = await BlockSparseMatrix.fromDense(Tensor.from(r.normals(16), [4, 4], { context: ctx }), { blockShape: [2, 2] });
    ctx.dispose();
    expect(other.isDisposed).toBe(true);
  });

  test('the input tensor may be disposed right after fromDense is called (the build holds it)', async () => {
    const ctx = cpuContext();
    const { rng: r } = rng('dispose early');
    const wv = r.normals(128 * 96);
    const W = Tensor.from(wv, [128, 96], { context: ctx });
    const pending = BlockSparseMatrix.fromDense(W, { blockShape: [32, 32] });
    W.dispose();
    const w = await pending;
    expect(Array.from(await w.toDense().toArray())).toEqual(Array.from(wv));
    w.dispose();
  });

  test('streams: build on one stream, multiply on another (ordering follows the tensors)', async () => {
    const ctx = cpuContext();
    const { rng: r, seed } = rng('streams');
    const s1 = ctx.createStream();
    const s2 = ctx.createStream();
    const m = 64;
    const k = 48;
    const keep = randomMask(r, 4, 3, 0.6);
    const wv = blockSparseDense(r, m, k, 16, 16, keep, 'float32');
    const W = Tensor.from(wv, [m, k], { stream: s1 });
    s1._native!.spinForTesting(100); // the build waits behind this on s1
    const w = await BlockSparseMatrix.fromDense(W, { blockShape: [16, 16], stream: s1 });
    const xv = r.normals(9 * k);
    const x = Tensor.from(xv, [9, k], { stream: s2 });
    const y = spmm(x, w, { stream: s2, activation: 'relu' });
    expectClose(await host(y), referenceLinear(xv, wv, 9, m, k, undefined, 'relu'), TOL.float32, `streams (seed ${seed})`);
    w.dispose();
    s1.dispose();
    s2.dispose();
  });

  test('fromDense does not block the event loop (the selection runs on the stream worker)', async () => {
    const ctx = cpuContext();
    const s = ctx.createStream();
    const W = Tensor.from(new Float32Array(512 * 512).fill(0.5), [512, 512], { stream: s });
    s._native!.spinForTesting(300); // the build is queued behind 300 ms of work
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    const t0 = performance.now();
    const w = await BlockSparseMatrix.fromDense(W, { blockShape: [32, 32], stream: s });
    clearInterval(timer);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(250);
    expect(ticks).toBeGreaterThan(10); // the loop kept running while the build waited and ran
    expect(w.nnzBlocks).toBe(256);
    w.dispose();
    s.dispose();
  });
});
