/**
 * spmm and BlockSparseMatrix on CUDA: against the float64 reference and against the CPU backend on the
 * same inputs (GPU == CPU within the dtype's tolerance), for every kernel path the dispatcher has
 * (GEMV at N = 1; tensor cores for float16 / bfloat16 with K % 8 == 0; the SIMT kernel for float32 and
 * for 16-bit X rows that are not 16-byte aligned), every block shape class, both backends, and the
 * builders (the GPU build must select exactly the CPU's blocks, bit for bit). Skips without a GPU; fails
 * instead with SPARSE_KERNELS_REQUIRE_GPU=1 (npm run test:gpu).
 */
import type { Context } from '../../lib/context';
import type { FloatDType } from '../../lib/dtype';
import { BlockSparseMatrix, type SpmmActivation, spmm } from '../../lib/spmm';
import { Tensor } from '../../lib/tensor';
import { cpuContext, describeGpu, gpuContext } from '../helpers/gpu';
import { type Rng, rng } from '../helpers/random';
import { TOL, expectClose } from '../helpers/tolerance';
import { referenceCsr, referenceLinear } from '../reference/spmm';
import { blockSparseDense, nanTensor, randomMask, roundTo, tensorOf } from './common';

interface Case {
  m: number;
  k: number;
  bm: number;
  bk: number;
  n: number;
  density: number;
  dtype: FloatDType;
  activation: SpmmActivation;
  bias: boolean;
}

const label = (c: Case) =>
  `${c.dtype} W[${c.m}, ${c.k}] ${c.bm}x${c.bk} N ${c.n} density ${c.density} ${c.activation}${c.bias ? ' +bias' : ''}` +
  (c.n === 1 ? ' (GEMV)' : c.dtype !== 'float32' && c.k % 8 === 0 ? ' (tensor cores)' : ' (SIMT)');

/** The same W, x and bias on both devices (W built by fromDense on each). */
async function pair(r: Rng, c: Case) {
  const keep = randomMask(r, Math.ceil(c.m / c.bm), Math.ceil(c.k / c.bk), c.density);
  const wv = blockSparseDense(r, c.m, c.k, c.bm, c.bk, keep, c.dtype);
  const xv = roundTo(r.normals(c.n * c.k), c.dtype);
  const bv = c.bias ? roundTo(r.normals(c.m), c.dtype) : undefined;
  const make = async (ctx: Context) => {
    const W = tensorOf(ctx, wv, [c.m, c.k], c.dtype);
    const w = await BlockSparseMatrix.fromDense(W, { blockShape: [c.bm, c.bk] });
    W.dispose();
    return { w, x: tensorOf(ctx, xv, [c.n, c.k], c.dtype), bias: bv ? tensorOf(ctx, bv, [c.m], c.dtype) : undefined };
  };
  return { wv, xv, bv, keep, g: await make(gpuContext()), c: await make(cpuContext()) };
}

async function compare(c: Case, withReference = true): Promise<void> {
  const { rng: r, seed } = rng(label(c));
  const p = await pair(r, c);
  const ref = withReference ? referenceLinear(p.xv, p.wv, c.n, c.m, c.k, p.bv, c.activation) : undefined;
  const cpu = await spmm(p.c.x, p.c.w, { bias: p.c.bias, activation: c.activation, backend: 'sparse' }).toFloat32Array();
  for (const backend of ['sparse', 'dense'] as const) {
    const out = nanTensor(gpuContext(), [c.n, c.m], c.dtype); // poisoned: an unwritten element stays NaN
    const y = spmm(p.g.x, p.g.w, { bias: p.g.bias, activation: c.activation, backend, out });
    const got = await y.toFloat32Array();
    if (ref) expectClose(got, ref, TOL[c.dtype], `${label(c)} GPU ${backend} vs reference (seed ${seed})`);
    expectClose(got, Float64Array.from(cpu), TOL[c.dtype], `${label(c)} GPU ${backend} vs CPU (seed ${seed})`);
    y.dispose();
  }
  p.g.w.dispose();
  p.c.w.dispose();
}

describeGpu('spmm (cuda) vs the float64 reference and the CPU', () => {
  const cases: Case[] = [
    // tensor cores: 16-bit dtypes, K % 8 == 0; every block class, odd M, partial last block column
    { m: 200, k: 136, bm: 32, bk: 32, n: 77, density: 0.5, dtype: 'bfloat16', activation: 'none', bias: true },
    { m: 130, k: 200, bm: 64, bk: 64, n: 300, density: 0.6, dtype: 'bfloat16', activation: 'gelu', bias: true },
    { m: 97, k: 88, bm: 16, bk: 16, n: 33, density: 0.5, dtype: 'float16', activation: 'silu', bias: false },
    { m: 150, k: 112, bm: 16, bk: 64, n: 17, density: 0.5, dtype: 'float16', activation: 'relu', bias: true },
    { m: 150, k: 112, bm: 64, bk: 16, n: 5, density: 0.7, dtype: 'bfloat16', activation: 'none', bias: false },
    { m: 256, k: 512, bm: 32, bk: 32, n: 1024, density: 0.2, dtype: 'bfloat16', activation: 'silu', bias: true }, // 256-token tiles
    // SIMT: float32, and 16-bit with K % 8 != 0
    { m: 123, k: 77, bm: 32, bk: 32, n: 45, density: 0.5, dtype: 'float32', activation: 'gelu', bias: true },
    { m: 70, k: 99, bm: 16, bk: 32, n: 9, density: 0.6, dtype: 'float32', activation: 'relu', bias: false },
    { m: 100, k: 75, bm: 64, bk: 64, n: 20, density: 0.8, dtype: 'bfloat16', activation: 'relu', bias: true },
    { m: 64, k: 61, bm: 16, bk: 16, n: 3, density: 0.5, dtype: 'float16', activation: 'gelu', bias: true },
    // GEMV (N = 1), aligned and not
    { m: 300, k: 256, bm: 32, bk: 32, n: 1, density: 0.3, dtype: 'bfloat16', activation: 'none', bias: true },
    { m: 45, k: 51, bm: 16, bk: 16, n: 1, density: 0.5, dtype: 'float16', activation: 'silu', bias: false },
    { m: 77, k: 90, bm: 64, bk: 32, n: 1, density: 0.5, dtype: 'float32', activation: 'gelu', bias: true },
  ];
  test.each(cases.map((c) => [label(c), c] as const))('%s', async (_l, c) => {
    await compare(c);
  });

  test('a larger problem: bf16 W 1024 x 1024, 32x32 blocks at 90% sparsity, N 512 (GPU == CPU and reference)', async () => {
    await compare({ m: 1024, k: 1024, bm: 32, bk: 32, n: 512, density: 0.1, dtype: 'bfloat16', activation: 'gelu', bias: true });
  });

  test('batched x [..., K] flattens; results are bitwise deterministic call to call', async () => {
    const ctx = gpuContext();
    const { rng: r, seed } = rng('gpu batched');
    const keep = randomMask(r, 4, 3, 0.6);
    const wv = blockSparseDense(r, 128, 96, 32, 32, keep, 'bfloat16');
    const w = await BlockSparseMatrix.fromDense(tensorOf(ctx, wv, [128, 96], 'bfloat16'), { blockShape: [32, 32] });
    const xv = roundTo(r.normals(2 * 3 * 50 * 96), 'bfloat16');
    const x = tensorOf(ctx, xv, [2, 3, 50, 96], 'bfloat16');
    const y1 = spmm(x, w);
    const y2 = spmm(x, w);
    expect(y1.dims).toEqual([2, 3, 50, 128]);
    const a = await y1.toArray();
    expect(Array.from(await y2.toArray())).toEqual(Array.from(a));
    expectClose(await y1.toFloat32Array(), referenceLinear(xv, wv, 300, 128, 96, undefined, 'none'), TOL.bfloat16, `batched (seed ${seed})`);
    w.dispose();
  });

  test('every activation with bias on the tensor-core path', async () => {
    for (const activation of ['none', 'relu', 'gelu', 'silu'] as const) {
      await compare({ m: 96, k: 64, bm: 32, bk: 32, n: 40, density: 0.5, dtype: 'float16', activation, bias: true });
    }
  });
});

describeGpu('structure on cuda', () => {
  test('empty block rows and an all-empty matrix write act(bias) (both backends, N 1 and 40)', async () => {
    const ctx = gpuContext();
    const { rng: r, seed } = rng('gpu empty');
    const m = 100;
    const k = 64;
    // Grid [4, 4] (the last block row holds 4 of 32 rows): block rows 0 and 2 empty.
    const keep = Uint8Array.from([0, 0, 0, 0, 1, 0, 1, 1, 0, 0, 0, 0, 1, 0, 1, 1]);
    const wv = blockSparseDense(r, m, k, 32, 16, keep, 'bfloat16');
    const csr = referenceCsr(wv, keep, m, k, 32, 16);
    const w = BlockSparseMatrix.fromBlockCsr(csr.rowPtr, csr.colIdx, Float32Array.from(csr.values), [m, k], [32, 16], { dtype: 'bfloat16', context: ctx });
    const empty = BlockSparseMatrix.fromBlockCsr(new Int32Array(5), new Int32Array(0), new Float32Array(0), [m, k], [32, 16], { dtype: 'bfloat16', context: ctx });
    const bv = roundTo(r.normals(m), 'bfloat16');
    const bias = tensorOf(ctx, bv, [m], 'bfloat16');
    for (const n of [1, 40]) {
      const xv = roundTo(r.normals(n * k), 'bfloat16');
      const x = tensorOf(ctx, xv, [n, k], 'bfloat16');
      for (const backend of ['sparse', 'dense'] as const) {
        const y = spmm(x, w, { bias, activation: 'relu', backend, out: nanTensor(ctx, [n, m], 'bfloat16') });
        expectClose(await y.toFloat32Array(), referenceLinear(xv, wv, n, m, k, bv, 'relu'), TOL.bfloat16, `rows N ${n} ${backend} (seed ${seed})`);
        const e = spmm(x, empty, { bias, activation: 'gelu', backend, out: nanTensor(ctx, [n, m], 'bfloat16') });
        expectClose(await e.toFloat32Array(), referenceLinear(xv, new Float32Array(m * k), n, m, k, bv, 'gelu'), TOL.bfloat16, `empty N ${n} ${backend}`);
      }
    }
    w.dispose();
    empty.dispose();
  });

  test('fromDense on the GPU selects exactly the CPU blocks (tolerance, sparsity; arrays bit for bit)', async () => {
    const { rng: r } = rng('gpu fromDense');
    for (const dtype of ['float32', 'float16', 'bfloat16'] as const) {
      const m = 200;
      const k = 150;
      const keep = randomMask(r, Math.ceil(m / 32), Math.ceil(k / 32), 0.7);
      const wv = blockSparseDense(r, m, k, 32, 32, keep, dtype);
      for (const opts of [{}, { tolerance: 0.5 }, { sparsity: 0.6 }, { tolerance: 0.3, sparsity: 0.4 }]) {
        const g = await BlockSparseMatrix.fromDense(tensorOf(gpuContext(), wv, [m, k], dtype), { blockShape: [32, 32], ...opts });
        const c = await BlockSparseMatrix.fromDense(tensorOf(cpuContext(), wv, [m, k], dtype), { blockShape: [32, 32], ...opts });
        const a = await g.toBlockCsr();
        const b = await c.toBlockCsr();
        expect(g.nnzBlocks).toBe(c.nnzBlocks);
        expect(Array.from(a.rowPtr)).toEqual(Array.from(b.rowPtr));
        expect(Array.from(a.colIdx)).toEqual(Array.from(b.colIdx));
        expect(Array.from(a.rowOrder)).toEqual(Array.from(b.rowOrder));
        expect(Array.from(a.values)).toEqual(Array.from(b.values));
        // toDense on the GPU (host round trip inside the task) == the CPU's.
        expect(Array.from(await g.toDense().toArray())).toEqual(Array.from(await c.toDense().toArray()));
        g.dispose();
        c.dispose();
      }
    }
  });

  test('fromBlockCsr zeroes NaN / Inf padding on the GPU too (host values and a device values tensor)', async () => {
    const ctx = gpuContext();
    const { rng: r, seed } = rng('gpu padding');
    const m = 40;
    const k = 50; // 16x16 blocks: last block row has 8 rows, last block column 2 columns
    const keep = randomMask(r, 3, 4, 0.8);
    keep[2 * 4 + 3] = 1;
    const wv = blockSparseDense(r, m, k, 16, 16, keep, 'float16');
    const csr = referenceCsr(wv, keep, m, k, 16, 16);
    const vals = Float32Array.from(csr.values);
    const mbOf = (j: number) => csr.rowPtr.findIndex((p, i) => i > 0 && j < p) - 1;
    for (let j = 0; j < csr.colIdx.length; j++) {
      for (let i = 0; i < 16; i++) {
        for (let q = 0; q < 16; q++) {
          if (mbOf(j) * 16 + i >= m || csr.colIdx[j]! * 16 + q >= k) vals[(j * 16 + i) * 16 + q] = (i + q) % 2 ? NaN : -Infinity;
        }
      }
    }
    const n = 24;
    const xv = roundTo(r.normals(n * k), 'float16');
    const x = tensorOf(ctx, xv, [n, k], 'float16');
    const ref = referenceLinear(xv, wv, n, m, k, undefined, 'none');
    const a = BlockSparseMatrix.fromBlockCsr(csr.rowPtr, csr.colIdx, vals, [m, k], [16, 16], { dtype: 'float16', context: ctx });
    const b = BlockSparseMatrix.fromBlockCsr(csr.rowPtr, csr.colIdx, tensorOf(ctx, vals, [vals.length], 'float16'), [m, k], [16, 16]);
    for (const w of [a, b]) {
      for (const backend of ['sparse', 'dense'] as const) {
        expectClose(await spmm(x, w, { backend }).toFloat32Array(), ref, TOL.float16, `padding ${backend} (seed ${seed})`);
      }
      expect(Array.from(await w.toDense().toFloat32Array())).toEqual(Array.from(wv));
      w.dispose();
    }
  });

  test('block shapes outside {16, 32, 64} are rejected on a CUDA context, with the fix in the message', async () => {
    const ctx = gpuContext();
    const W = Tensor.from(new Float32Array(64 * 64).fill(1), [64, 64], { context: ctx });
    await expect(BlockSparseMatrix.fromDense(W, { blockShape: [8, 8] })).rejects.toThrow(
      /each side 16, 32, 64 on a CUDA context \(the CPU takes any sides\) for options.blockShape but received \[8, 8\]/,
    );
    await expect(BlockSparseMatrix.fromDense(W, { blockShape: [32, 128] })).rejects.toThrow(RangeError);
    expect(() => BlockSparseMatrix.fromBlockCsr([0, 1], [0], new Float32Array(48 * 48), [48, 48], [48, 48], { context: ctx })).toThrow(
      /for blockShape but received \[48, 48\]/,
    );
    // The default [32, 32] works.
    const w = await BlockSparseMatrix.fromDense(W);
    expect(w.blockShape).toEqual([32, 32]);
    expect(w.nnzBlocks).toBe(4);
    w.dispose();
  });

  test('plans on CUDA follow the H200 crossover table (bf16 32x32: sparse at 10% density; float32: always sparse)', async () => {
    const ctx = gpuContext();
    const { rng: r } = rng('gpu plan');
    const keep = randomMask(r, 8, 8, 0.1);
    keep[0] = 1;
    const wv = blockSparseDense(r, 256, 256, 32, 32, keep, 'bfloat16');
    const w = await BlockSparseMatrix.fromDense(tensorOf(ctx, wv, [256, 256], 'bfloat16'));
    const p = w.plan(4096);
    expect(p.device).toBe('cuda');
    expect(p.backend).toBe('sparse');
    const full = await BlockSparseMatrix.fromDense(Tensor.from(r.normals(64 * 64), [64, 64], { context: ctx }));
    expect(full.density).toBe(1);
    expect(full.plan(512).backend).toBe('sparse'); // float32: the dense path is the same SIMT kernel
    w.dispose();
    full.dispose();
  });

  test('streams: build on one GPU stream, multiply on another', async () => {
    const ctx = gpuContext();
    const { rng: r, seed } = rng('gpu streams');
    const s1 = ctx.createStream();
    const s2 = ctx.createStream();
    const keep = randomMask(r, 4, 4, 0.5);
    const wv = blockSparseDense(r, 128, 128, 32, 32, keep, 'float16');
    const W = tensorOf(ctx, wv, [128, 128], 'float16');
    s1._native!.spinForTesting(50);
    const w = await BlockSparseMatrix.fromDense(W, { stream: s1 });
    const xv = roundTo(r.normals(64 * 128), 'float16');
    const x = Tensor.from(xv, [64, 128], { dtype: 'float16', stream: s2 });
    const y = spmm(x, w, { stream: s2 });
    expectClose(await y.toFloat32Array(), referenceLinear(xv, wv, 64, 128, 128, undefined, 'none'), TOL.float16, `streams (seed ${seed})`);
    w.dispose();
    s1.dispose();
    s2.dispose();
  });
});
