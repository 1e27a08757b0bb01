/**
 * blockSparseAttention on CUDA: against the float64 reference and against the CPU backend on the same
 * inputs (float16 / bfloat16), including a PBS-style key permutation through the internal entry point.
 * Skips without a GPU; fails instead with SPARSE_KERNELS_REQUIRE_GPU=1 (npm run test:gpu).
 */
import { BlockLayout, blockSparseAttention, blockSparseAttentionWithLayoutTensors, type AttentionWithLse } from '../../lib/attention';
import { Context } from '../../lib/context';
import type { DType } from '../../lib/dtype';
import { ShapeError } from '../../lib/errors';
import { Tensor } from '../../lib/tensor';
import { cpuContext, describeGpu, gpuContext } from '../helpers/gpu';
import { Rng, rng } from '../helpers/random';
import { TOL, expectClose } from '../helpers/tolerance';
import { type KeepFn, type KeyRowFn, keepFromBlockMask, keepFromLists, keepPlain, referenceAttention } from '../reference/attention';
import { type Inputs, type Shape, expectLseClose, makeInputs, pbsStyleLayout, randomBlockMask } from './common';

// lse: float32 from fp32-accumulated scores of the same 16-bit inputs on both backends.
const LSE_TOL = 1e-4;

type Half = 'float16' | 'bfloat16';

interface Case {
  label: string;
  shape: Shape;
  dtype: Half;
  layout: (r: Rng) => { layout: BlockLayout; keep: KeepFn };
  /** Skip the float64 reference (too slow in JS): GPU == CPU only. */
  noReference?: boolean;
}

/** The same random inputs on the GPU and on the CPU. */
function pairInputs(r: Rng, shape: Shape, dtype: Half): { g: Inputs; c: Inputs } {
  const seed = r.int(1, 2 ** 30);
  return { g: makeInputs(gpuContext(), new Rng(seed), shape, dtype), c: makeInputs(cpuContext(), new Rng(seed), shape, dtype) };
}

/** GPU vs reference (unless skipped) and GPU vs CPU, for out and lse. */
async function compare(
  label: string,
  dtype: Half,
  gpu: AttentionWithLse<DType>,
  cpu: AttentionWithLse<DType>,
  ref: { out: Float64Array; lse: Float64Array } | undefined,
): Promise<void> {
  const go = await gpu.out.toFloat32Array();
  const gl = await gpu.lse.toFloat32Array();
  const co = await cpu.out.toFloat32Array();
  const cl = await cpu.lse.toFloat32Array();
  if (ref) {
    expectClose(go, ref.out, TOL[dtype], `${label}: GPU out vs reference`);
    expectLseClose(gl, ref.lse, LSE_TOL, `${label}: GPU lse vs reference`);
  }
  expectClose(go, co, TOL[dtype], `${label}: GPU out vs CPU out`);
  expectLseClose(gl, Float64Array.from(cl), LSE_TOL, `${label}: GPU lse vs CPU lse`);
}

async function check(c: Case): Promise<void> {
  const { rng: r, seed } = rng(c.label);
  const { g, c: h } = pairInputs(r, c.shape, c.dtype);
  const { layout, keep } = c.layout(r);
  const opts = { causal: layout.causal, returnLse: true } as const;
  const gpu = blockSparseAttention(g.q, g.k, g.v, layout, opts);
  const cpu = blockSparseAttention(h.q, h.k, h.v, layout, opts);
  expect(gpu.out.location).toBe('cuda');
  expect(gpu.out.dtype).toBe(c.dtype);
  const ref = c.noReference ? undefined : referenceAttention(g.problem, keep);
  await compare(`${c.label} (seed ${seed})`, c.dtype, gpu, cpu, ref);
  for (const t of [gpu.out, gpu.lse, cpu.out, cpu.lse]) t.dispose();
  layout.dispose();
  g.dispose();
  h.dispose();
}

const denseCausal = (n: number, bs: 64 | 128) => () => ({ layout: BlockLayout.denseCausal({ seqLen: n, blockSize: bs }), keep: keepPlain(true) });

function randomMaskLayout(o: { lb: number; lh: number; nq: number; nk?: number; bs: 64 | 128; density: number; causal: boolean }) {
  return (r: Rng) => {
    const nk = o.nk ?? o.nq;
    const dims = { batch: o.lb, heads: o.lh, queryLength: o.nq, keyLength: nk, blockSize: o.bs };
    const mask = randomBlockMask(r, o.lb, o.lh, Math.ceil(o.nq / o.bs), Math.ceil(nk / o.bs), o.density, o.causal);
    return { layout: BlockLayout.fromBlockMask(mask, { ...dims, causal: o.causal }), keep: keepFromBlockMask(mask, dims, o.causal) };
  };
}

const CASES: Case[] = [
  { label: 'bf16 dense causal == causal attention, N 1000, D 128, block 128', shape: { batch: 1, headsQ: 4, headsK: 2, seqQ: 1000, headDim: 128 }, dtype: 'bfloat16', layout: denseCausal(1000, 128) },
  { label: 'fp16 dense causal == causal attention, N 777, D 64, block 64', shape: { batch: 1, headsQ: 2, headsK: 2, seqQ: 777, headDim: 64 }, dtype: 'float16', layout: denseCausal(777, 64) },
  { label: 'bf16 N 1', shape: { batch: 1, headsQ: 2, headsK: 1, seqQ: 1, headDim: 128 }, dtype: 'bfloat16', layout: denseCausal(1, 128) },
  { label: 'fp16 N 17, batch 2', shape: { batch: 2, headsQ: 2, headsK: 1, seqQ: 17, headDim: 64 }, dtype: 'float16', layout: denseCausal(17, 64) },
  {
    label: 'bf16 dense non-causal, 300 queries x 1000 keys',
    shape: { batch: 1, headsQ: 4, headsK: 1, seqQ: 300, seqK: 1000, headDim: 128 },
    dtype: 'bfloat16',
    layout: () => ({ layout: BlockLayout.dense({ queryLength: 300, keyLength: 1000 }), keep: keepPlain(false) }),
  },
  {
    label: 'fp16 batch 2, per-batch per-head random causal layout, N 500, block 64',
    shape: { batch: 2, headsQ: 4, headsK: 2, seqQ: 500, headDim: 64 },
    dtype: 'float16',
    layout: randomMaskLayout({ lb: 2, lh: 4, nq: 500, bs: 64, density: 0.4, causal: true }),
  },
  {
    label: 'bf16 GQA 32/8, per-head random causal layout, N 300',
    shape: { batch: 1, headsQ: 32, headsK: 8, seqQ: 300, headDim: 128 },
    dtype: 'bfloat16',
    layout: randomMaskLayout({ lb: 1, lh: 32, nq: 300, bs: 128, density: 0.5, causal: true }),
  },
  {
    label: 'bf16 sliding window 4 blocks + 1 sink, N 2000',
    shape: { batch: 1, headsQ: 2, headsK: 2, seqQ: 2000, headDim: 128 },
    dtype: 'bfloat16',
    layout: () => ({
      layout: BlockLayout.slidingWindow({ seqLen: 2000, windowBlocks: 4, sinkBlocks: 1 }),
      keep: (_b, _h, i, j) => j <= i && (j < 128 || Math.floor(j / 128) > Math.floor(i / 128) - 4),
    }),
  },
  {
    label: 'bf16 random non-causal layout, partial last key block, 650 x 900, block 64',
    shape: { batch: 1, headsQ: 2, headsK: 1, seqQ: 650, seqK: 900, headDim: 64 },
    dtype: 'bfloat16',
    layout: randomMaskLayout({ lb: 1, lh: 2, nq: 650, nk: 900, bs: 64, density: 0.5, causal: false }),
  },
  { label: 'bf16 D 256, dense causal, N 400', shape: { batch: 1, headsQ: 2, headsK: 1, seqQ: 400, headDim: 256 }, dtype: 'bfloat16', layout: denseCausal(400, 128) },
  {
    label: 'fp16 layout broadcast over batch 3, N 333',
    shape: { batch: 3, headsQ: 2, headsK: 2, seqQ: 333, headDim: 128 },
    dtype: 'float16',
    layout: randomMaskLayout({ lb: 1, lh: 2, nq: 333, bs: 128, density: 0.5, causal: true }),
  },
  {
    label: 'bf16 N 8192, Hq 8 / Hk 2, random ~25% causal layout (GPU == CPU only)',
    shape: { batch: 1, headsQ: 8, headsK: 2, seqQ: 8192, headDim: 128 },
    dtype: 'bfloat16',
    layout: randomMaskLayout({ lb: 1, lh: 8, nq: 8192, bs: 128, density: 0.24, causal: true }),
    noReference: true,
  },
];

describeGpu('blockSparseAttention on CUDA vs the float64 reference and the CPU backend', () => {
  test.each(CASES.map((c) => [c.label, c] as const))('%s', async (_label, c) => {
    await check(c);
  });

  test('rows without any kept key give out = 0 and lse = -Infinity', async () => {
    const { rng: r, seed } = rng('gpu empty rows');
    const n = 300;
    const { g, c } = pairInputs(r, { batch: 1, headsQ: 1, headsK: 1, seqQ: n, headDim: 64 }, 'bfloat16');
    const layout = BlockLayout.fromLists({ fullCounts: [0, 0, 2], fullIndices: [0, 0, 0, 0, 0, 1], maskCounts: [1, 0, 1], maskIndices: [0, 0, 2] }, { queryLength: n });
    const dims = { batch: 1, heads: 1, queryBlocks: 3, keyBlocks: 3, blockSize: 128, seqK: n };
    const ref = referenceAttention(g.problem, keepFromLists(layout.toLists(), dims, true));
    const gpu = blockSparseAttention(g.q, g.k, g.v, layout, { returnLse: true });
    const cpu = blockSparseAttention(c.q, c.k, c.v, layout, { returnLse: true });
    const o = await gpu.out.toFloat32Array();
    expect(o.subarray(128 * 64, 256 * 64).every((x) => x === 0)).toBe(true);
    await compare(`empty rows (seed ${seed})`, 'bfloat16', gpu, cpu, ref);
    for (const t of [gpu.out, gpu.lse, cpu.out, cpu.lse]) t.dispose();
    layout.dispose();
  });

  test.each([
    ['per KV head (shared), block 128', 2, 128, 'bfloat16'],
    ['per query head, block 64', 4, 64, 'float16'],
  ] as const)('PBS-style key permutation through the internal entry point: %s', async (_label, permHeads, bs, dtype) => {
    const { rng: r, seed } = rng(`gpu pbs ${permHeads} ${bs}`);
    const n = 1000; // three complete segments of 256 and a 232-token identity tail
    const shape = { batch: 2, headsQ: 4, headsK: 2, seqQ: n, headDim: 128 };
    const { g, c } = pairInputs(r, shape, dtype);
    const pbs = pbsStyleLayout(r, { batch: 2, headsQ: 4, permHeads, n, blockSize: bs, segment: 256, density: 0.5 });
    const layout = BlockLayout.fromLists(pbs.lists, { batch: 2, heads: 4, queryLength: n, blockSize: bs });
    const group = 4 / permHeads;
    const pos: KeyRowFn = (b, h, j) => pbs.perm[(b * permHeads + Math.floor(h / group)) * n + j]!;
    const dims = { batch: 2, heads: 4, queryBlocks: pbs.queryBlocks, keyBlocks: pbs.keyBlocks, blockSize: bs, seqK: n };
    const ref = referenceAttention(g.problem, keepFromLists(pbs.lists, dims, true, pos), pos);
    const run = (ctx: Context, inp: Inputs) => {
      const keyPermutation = Tensor.from(pbs.perm, [2, permHeads, n], { context: ctx }) as Tensor<'int32'>;
      return blockSparseAttentionWithLayoutTensors(inp.q, inp.k, inp.v, layout._tensors(ctx), { keyPermutation, returnLse: true }) as AttentionWithLse;
    };
    await compare(`pbs ${permHeads} ${bs} (seed ${seed})`, dtype, run(gpuContext(), g), run(cpuContext(), c), ref);
  });

  test('on a created stream, first use of a layout (upload on the default stream) is ordered before the kernel', async () => {
    const { rng: r, seed } = rng('gpu stream');
    const { g, c } = pairInputs(r, { batch: 1, headsQ: 4, headsK: 2, seqQ: 3000, headDim: 128 }, 'bfloat16');
    const mask = randomBlockMask(r, 1, 4, 24, 24, 0.5, true);
    const layout = BlockLayout.fromBlockMask(mask, { heads: 4, queryLength: 3000 });
    const stream = gpuContext().createStream();
    const gpu = blockSparseAttention(g.q, g.k, g.v, layout, { stream, returnLse: true });
    const cpu = blockSparseAttention(c.q, c.k, c.v, layout, { returnLse: true });
    await stream.synchronize();
    await compare(`stream (seed ${seed})`, 'bfloat16', gpu, cpu, undefined);
    stream.dispose();
  });

  test('device copies are made once per context and freed by dispose()', async () => {
    // A context of its own: tensors of other tests collected meanwhile cannot change its counts.
    const ctx = new Context({ device: 'cuda' });
    const { rng: r } = rng('gpu cache');
    const inp = makeInputs(ctx, r, { batch: 1, headsQ: 2, headsK: 2, seqQ: 256, headDim: 64 }, 'bfloat16');
    const layout = BlockLayout.denseCausal({ seqLen: 256 });
    const base = ctx.memory().tensors;
    const a = blockSparseAttention(inp.q, inp.k, inp.v, layout);
    const b = blockSparseAttention(inp.q, inp.k, inp.v, layout);
    expect(ctx.memory().tensors).toBe(base + 2 + 4);
    expect(Array.from(await a.toArray())).toEqual(Array.from(await b.toArray()));
    a.dispose();
    b.dispose();
    layout.dispose();
    expect(ctx.memory().tensors).toBe(base);
    ctx.dispose();
  });

  test('CUDA-only argument errors: float32 inputs, head dim 96', () => {
    const ctx = gpuContext();
    const mk = (dims: number[], dtype: 'float32' | 'bfloat16') => Tensor.from(new Float32Array(dims.reduce((x, y) => x * y, 1)).fill(0.5), dims, { dtype, context: ctx });
    const layout = BlockLayout.denseCausal({ seqLen: 64, blockSize: 64 });
    const f32 = mk([1, 1, 64, 64], 'float32');
    expect(() => blockSparseAttention(f32, f32, f32, layout)).toThrow(/q to have dtype float16 \| bfloat16 on a CUDA context/);
    const d96 = mk([1, 1, 64, 96], 'bfloat16');
    expect(() => blockSparseAttention(d96, d96, d96, layout)).toThrow(ShapeError);
    expect(() => blockSparseAttention(d96, d96, d96, layout)).toThrow(/64, 128 or 256 on CUDA/);
  });
});
