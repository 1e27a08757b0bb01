/**
 * Property tests of PBS attention: pbsAttention with random shapes, dtypes and options (NaN / Infinity /
 * negative / fractional / out-of-range thresholds, segment sizes, proxy rows, strides, ...), disposed and
 * foreign inputs; its stages with random arguments, and pbsSelectBlocks with malformed caller permutations
 * (values out of range, repeated, leaving their segment), which must fail the op's outputs with
 * ERR_INVALID_ARG instead of reaching a kernel. Valid small problems must match the float64 reference: dense
 * causal attention for threshold 1 and for the dense fallback, else attention restricted to the plan the
 * run reports (its layout and permutation), both checked against the PBS invariants.
 */
import type { Context } from '../../lib/context';
import type { FloatDType } from '../../lib/dtype';
import { type PbsOptions, pbsAttention, pbsPermutation, pbsProxyScores, pbsSelectBlocks } from '../../lib/pbs';
import { Tensor } from '../../lib/tensor';
import { cpuContext, cudaUsable, describeGpu, gpuContext, REQUIRE_GPU } from '../helpers/gpu';
import { Rng } from '../helpers/random';
import { relError, TOL } from '../helpers/tolerance';
import { refDenseCausal } from '../reference/pbs';
import { lseError, makeInputs, referenceOfRun } from '../pbs/common';
import { type CaseArea } from './helpers/budget';
import { attempt, badNumber, type CacheAllowance, checkAsyncProperty, checkProperty, expectCaseBudget, expectMemoryAt, fc, isPlainObject, junk, memoryMark, mostly } from './helpers/fc';
import { opFixtures } from './helpers/fixtures';

const AREA: CaseArea = 'pbs';
expectCaseBudget(AREA);

const isInt = (v: unknown, lo: number, hi: number): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= lo && v <= hi;
const NAMES = ['q', 'k', 'v', 'options', 'scores', 'perm'];
const OPTION_KEYS = ['blockSize', 'segmentSize', 'threshold', 'scale', 'gqaMode', 'proxyRows', 'proxyCausal', 'forceSink', 'pool', 'selector', 'antidiagonalStride', 'minSeqLen', 'permute', 'returnLse', 'returnStats', 'stream'];

/** Options with each field usually valid, sometimes not (and sometimes absent). */
const optionsArb = fc.record(
  {
    blockSize: mostly(fc.constantFrom(64, 128), 10),
    segmentSize: mostly(fc.constantFrom(64, 128, 256, 384, 512, 8192), 10),
    threshold: fc.oneof({ weight: 10, arbitrary: fc.double({ min: 0.05, max: 1, noNaN: true }) as fc.Arbitrary<unknown> }, { weight: 2, arbitrary: fc.constant<unknown>(1) }, { weight: 1, arbitrary: fc.constantFrom<unknown>(0, -0.5, 1.01, NaN, Infinity, 1e-50, '0.9') }),
    scale: mostly(fc.double({ min: 0.05, max: 1, noNaN: true }), 8),
    gqaMode: mostly(fc.constantFrom('shared', 'perQueryHead'), 10),
    proxyRows: mostly(fc.integer({ min: 1, max: 300 }), 8),
    proxyCausal: mostly(fc.boolean(), 10),
    forceSink: mostly(fc.boolean(), 10),
    pool: mostly(fc.constantFrom('mean', 'max'), 10),
    selector: fc.oneof({ weight: 10, arbitrary: fc.constantFrom<unknown>('meanpool', 'antidiagonal') }, { weight: 1, arbitrary: fc.constantFrom<unknown>('topk', 3, null) }),
    antidiagonalStride: mostly(fc.constantFrom(4, 8, 16), 10),
    minSeqLen: mostly(fc.nat(600), 8),
    permute: mostly(fc.boolean(), 10),
    returnLse: mostly(fc.boolean(), 10),
    returnStats: mostly(fc.boolean(), 10),
    stream: fc.constantFrom<unknown>('side', 'side', 'other', 'disposed', 5),
  },
  { requiredKeys: [] },
);

/** The documented rules of PbsOptions (options.ts / problem.ts docs): whether `o` is valid for head dim d. */
function optionsValid(o: Record<string, unknown>, stream: 'ok' | 'bad' | 'none'): boolean {
  if (Object.keys(o).some((k) => !OPTION_KEYS.includes(k))) return false;
  const bs = o.blockSize === undefined ? 128 : o.blockSize;
  if (bs !== 64 && bs !== 128) return false;
  if (o.segmentSize !== undefined && !(isInt(o.segmentSize, bs, 8192) && o.segmentSize % bs === 0)) return false;
  if (o.threshold !== undefined && !(typeof o.threshold === 'number' && o.threshold > 0 && o.threshold <= 1 && Math.fround(o.threshold) > 0)) return false;
  if (o.scale !== undefined && !(typeof o.scale === 'number' && Number.isFinite(o.scale) && Math.fround(o.scale) > 0 && Number.isFinite(Math.fround(o.scale)))) return false;
  if (o.gqaMode !== undefined && o.gqaMode !== 'shared' && o.gqaMode !== 'perQueryHead') return false;
  if (o.proxyRows !== undefined && !isInt(o.proxyRows, 1, 2 ** 31 - 1)) return false;
  for (const b of ['proxyCausal', 'forceSink', 'permute', 'returnLse', 'returnStats']) if (o[b] !== undefined && typeof o[b] !== 'boolean') return false;
  if (o.pool !== undefined && o.pool !== 'mean' && o.pool !== 'max') return false;
  if (o.selector !== undefined && o.selector !== 'meanpool' && o.selector !== 'antidiagonal') return false;
  if (o.antidiagonalStride !== undefined && !(isInt(o.antidiagonalStride, 4, 16) && [4, 8, 16].includes(o.antidiagonalStride) && bs / o.antidiagonalStride <= 16)) return false;
  if (o.minSeqLen !== undefined && !isInt(o.minSeqLen, 0, Number.MAX_SAFE_INTEGER)) return false;
  return stream !== 'bad';
}

/** The dense fallback keeps the device copies of its last 8 dense causal layouts (4 int32 tensors each). */
const DENSE_LAYOUT_CACHE: CacheAllowance = { what: 'PBS dense-fallback layouts', max: 8 * 4, owns: (t) => t.dtype === 'int32' && (t.rank === 3 || t.rank === 4) };


function pbsProperties(backend: string, getCtx: () => Context, scale: number): void {
  const cuda = backend === 'cuda';
  const f = opFixtures(getCtx);
  const runs = (n: number) => Math.max(20, Math.round(n * scale));

  const resolveStream = (s: unknown): { value: unknown; kind: 'ok' | 'bad' } =>
    s === 'side' ? { value: f.side, kind: 'ok' } : s === 'other' ? { value: f.other.stream, kind: 'bad' } : s === 'disposed' ? { value: f.disposedStream, kind: 'bad' } : { value: s, kind: 'bad' };

  test('pbsAttention: random shapes and options end in a typed error naming the argument, or outputs of the documented dims; nothing leaks', async () => {
    const mark = await memoryMark(f.ctx);
    const arb = fc.record({
      b: fc.integer({ min: 0, max: 2 }),
      hk: fc.integer({ min: 0, max: 2 }),
      g: fc.integer({ min: 0, max: 2 }),
      n: fc.oneof({ weight: 3, arbitrary: fc.integer({ min: 0, max: 300 }) }, { weight: 1, arbitrary: fc.integer({ min: 300, max: 700 }) }),
      nkDelta: fc.oneof({ weight: 12, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.constantFrom(-1, 1) }),
      d: cuda ? fc.oneof({ weight: 8, arbitrary: fc.constantFrom(64, 128) }, { weight: 1, arbitrary: fc.constantFrom(32, 96) }) : fc.oneof({ weight: 8, arbitrary: fc.integer({ min: 1, max: 24 }) }, { weight: 1, arbitrary: fc.constantFrom(0, 1025) }),
      dtype: cuda ? fc.constantFrom('float16', 'bfloat16', 'float32') : fc.oneof({ weight: 8, arbitrary: fc.constantFrom('float32', 'float16', 'bfloat16') }, { weight: 1, arbitrary: fc.constant('int32') }),
      kvDtype: fc.oneof({ weight: 12, arbitrary: fc.constant('same') }, { weight: 1, arbitrary: fc.constantFrom('float32', 'bfloat16') }),
      rank: fc.oneof({ weight: 15, arbitrary: fc.constant(4) }, { weight: 1, arbitrary: fc.constantFrom(3, 5) }),
      foreign: fc.oneof({ weight: 15, arbitrary: fc.constant('none') }, { weight: 1, arbitrary: fc.constantFrom('k', 'disposedQ', 'notTensor') }),
      options: fc.oneof({ weight: 15, arbitrary: optionsArb as fc.Arbitrary<unknown> }, { weight: 1, arbitrary: junk }),
    });
    checkProperty(AREA, `pbsAttention arguments (${backend})`, arb, (c) => {
      const hq = c.hk * c.g;
      const dt = (x: string) => (x === 'same' ? c.dtype : x);
      const qDims = c.rank === 4 ? [c.b, hq, c.n, c.d] : c.rank === 3 ? [hq, c.n, c.d] : [1, c.b, hq, c.n, c.d];
      const kDims = [c.b, c.hk, Math.max(0, c.n + c.nkDelta), c.d];
      const made: Tensor[] = [];
      const T = (dims: number[], dtype: string, on = f.ctx) => {
        const t = Tensor.zeros(dims, { dtype: dtype as FloatDType, context: on });
        made.push(t);
        return t;
      };
      const q = T(qDims, c.dtype);
      const k = T(kDims, dt(c.kvDtype), c.foreign === 'k' ? f.other : f.ctx);
      const v = T(kDims, dt(c.kvDtype));
      if (c.foreign === 'disposedQ') q.dispose();
      let options = c.options;
      let streamKind: 'ok' | 'bad' | 'none' = 'none';
      if (isPlainObject(options)) {
        options = { ...options };
        const o = options as Record<string, unknown>;
        if ('stream' in o) {
          const s = resolveStream(o.stream);
          o.stream = s.value;
          streamKind = s.kind;
        }
      }
      const floats = cuda ? ['float16', 'bfloat16'] : ['float32', 'float16', 'bfloat16'];
      const valid =
        (options === undefined || (isPlainObject(options) && optionsValid(options, streamKind))) &&
        c.foreign === 'none' &&
        c.rank === 4 &&
        floats.includes(c.dtype) &&
        dt(c.kvDtype) === c.dtype &&
        (cuda ? [64, 128].includes(c.d) : c.d >= 1 && c.d <= 1024) &&
        kDims[2] === c.n &&
        (c.hk === 0 ? hq === 0 : hq % c.hk === 0);
      const before = f.ctx.memory().tensors;
      const r = attempt(() => pbsAttention((c.foreign === 'notTensor' ? {} : q) as Tensor, k, v, options as PbsOptions), NAMES, 'pbsAttention');
      try {
        if (!r.ok) {
          if (valid) throw new Error(`valid pbsAttention rejected: ${(r.error as Error).message}`);
          expect(f.ctx.memory().tensors).toBeLessThanOrEqual(before);
          return;
        }
        const res = r.value;
        const out = res instanceof Tensor ? res : res.out;
        const extra = res instanceof Tensor ? [] : [res.lse, res.stats];
        try {
          if (!valid) throw new Error(`invalid pbsAttention accepted: ${fc.stringify(c)}`);
          expect(out.dims).toEqual(qDims);
          expect(out.dtype).toBe(c.dtype);
          const o = (options ?? {}) as PbsOptions;
          if (!(res instanceof Tensor)) {
            expect(res.lse !== undefined).toBe(o.returnLse === true);
            expect(res.stats !== undefined).toBe(o.returnStats === true);
            if (res.lse) expect(res.lse.dims).toEqual(qDims.slice(0, 3));
          } else expect(o.returnLse === true || o.returnStats === true).toBe(false);
        } finally {
          out.dispose();
          for (const x of extra) x?.dispose();
        }
      } finally {
        for (const t of made) t.dispose();
      }
    }, runs(cuda ? 1500 : 6000));
    await expectMemoryAt(f.ctx, mark, 'pbsAttention arguments', DENSE_LAYOUT_CACHE);
  });

  test('pbsProxyScores / pbsPermutation: random arguments end in a typed error or outputs of the documented dims', async () => {
    const mark = await memoryMark(f.ctx);
    const arb = fc.record({
      stage: fc.constantFrom('proxy', 'permutation'),
      b: fc.integer({ min: 0, max: 2 }),
      h: fc.integer({ min: 1, max: 2 }),
      n: fc.integer({ min: 0, max: 600 }),
      d: cuda ? fc.constantFrom(64, 128) : fc.integer({ min: 1, max: 16 }),
      scoresLen: fc.oneof({ weight: 8, arbitrary: fc.constant(-1) }, { weight: 1, arbitrary: fc.nat(600) }),
      scoresDtype: fc.oneof({ weight: 10, arbitrary: fc.constant('float32') }, { weight: 1, arbitrary: fc.constantFrom('float16', 'int32') }),
      seqLen: fc.oneof({ weight: 10, arbitrary: fc.constant<unknown>('n') }, { weight: 1, arbitrary: badNumber }, { weight: 1, arbitrary: junk }),
      options: optionsArb,
      noOptions: fc.oneof({ weight: 15, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
    });
    checkProperty(AREA, `pbs stages (${backend})`, arb, (c) => {
      const made: Tensor[] = [];
      const dtype = cuda ? 'bfloat16' : 'float32';
      const o = { ...(c.options as Record<string, unknown>) };
      let streamKind: 'ok' | 'bad' | 'none' = 'none';
      if ('stream' in o) {
        const s = resolveStream(o.stream);
        o.stream = s.value;
        streamKind = s.kind;
      }
      const bsRaw = o.blockSize === undefined ? 128 : o.blockSize;
      const bs = bsRaw === 64 || bsRaw === 128 ? bsRaw : 128;
      const seg = isInt(o.segmentSize, 1, 8192) ? o.segmentSize : 256; // only matters when valid
      try {
        if (c.stage === 'proxy') {
          const allowed = ['blockSize', 'segmentSize', 'gqaMode', 'proxyRows', 'proxyCausal', 'scale', 'stream'];
          for (const key of Object.keys(o)) if (!allowed.includes(key) && (c.n & 3) !== 0) delete o[key]; // mostly only its own options
          const q = Tensor.zeros([c.b, c.h * 2, c.n, c.d], { dtype, context: f.ctx });
          const k = Tensor.zeros([c.b, c.h, c.n, c.d], { dtype, context: f.ctx });
          made.push(q, k);
          const valid = Object.keys(o).every((key) => allowed.includes(key)) && optionsValid(o, streamKind);
          const r = attempt(() => pbsProxyScores(q, k, (c.noOptions ? 7 : o) as never), NAMES, 'pbsProxyScores');
          if (!r.ok) {
            if (valid && !c.noOptions) throw new Error(`valid pbsProxyScores rejected: ${(r.error as Error).message}`);
            return;
          }
          made.push(r.value);
          if (!valid || c.noOptions) throw new Error(`invalid pbsProxyScores accepted: ${fc.stringify(o)}`);
          const permHeads = o.gqaMode === 'perQueryHead' ? c.h * 2 : c.h;
          expect(r.value.dims).toEqual([c.b, permHeads, Math.floor(c.n / seg) * seg]);
        } else {
          const allowed = ['seqLen', 'segmentSize', 'blockSize', 'stream'];
          for (const key of Object.keys(o)) if (!allowed.includes(key) && (c.n & 3) !== 0) delete o[key];
          o.seqLen = c.seqLen === 'n' ? c.n : c.seqLen;
          const p = c.scoresLen >= 0 ? c.scoresLen : Math.floor(c.n / seg) * seg;
          const scores = Tensor.zeros([c.b, c.h, p], { dtype: c.scoresDtype as FloatDType, context: f.ctx });
          made.push(scores);
          const segOk = o.segmentSize === undefined || (isInt(o.segmentSize, bs, 8192) && o.segmentSize % bs === 0);
          const seqLen = o.seqLen as number;
          const valid =
            !c.noOptions &&
            Object.keys(o).every((key) => allowed.includes(key)) &&
            bsRaw === bs &&
            segOk &&
            streamKind !== 'bad' &&
            isInt(seqLen, 1, 2 ** 31 - 1) &&
            c.scoresDtype === 'float32' &&
            p === Math.floor(seqLen / seg) * seg;
          const r = attempt(() => pbsPermutation(scores, (c.noOptions ? undefined : o) as never), NAMES, 'pbsPermutation');
          if (!r.ok) {
            if (valid) throw new Error(`valid pbsPermutation rejected: ${(r.error as Error).message}`);
            return;
          }
          made.push(r.value);
          if (!valid) throw new Error(`invalid pbsPermutation accepted: ${fc.stringify(o)}`);
          expect(r.value.dims).toEqual([c.b, c.h, seqLen]);
        }
      } finally {
        for (const t of made) t.dispose();
      }
    }, runs(cuda ? 800 : 3000));
    await expectMemoryAt(f.ctx, mark, 'pbs stages');
  });

  test('pbsSelectBlocks: a malformed caller permutation (out of range, repeated, leaving its segment) fails the outputs with ERR_INVALID_ARG; a valid one selects', async () => {
    const mark = await memoryMark(f.ctx);
    const arb = fc.record({
      n: fc.integer({ min: 1, max: 700 }),
      seg: fc.constantFrom(128, 256),
      how: fc.constantFrom('valid', 'valid', 'minus1', 'n', 'int32max', 'int32min', 'repeat', 'crossSegment', 'tailMoved'),
      at: fc.nat(),
      seed: fc.integer(),
    });
    await checkAsyncProperty(AREA, `pbsSelectBlocks permutations (${backend})`, arb, async (c) => {
      const d = cuda ? 64 : 8;
      const dtype = cuda ? 'bfloat16' : 'float32';
      const q = Tensor.zeros([1, 2, c.n, d], { dtype, context: f.ctx });
      const k = Tensor.zeros([1, 1, c.n, d], { dtype, context: f.ctx });
      // A valid permutation: each complete segment shuffled inside itself, the tail in order.
      const perm = Int32Array.from({ length: c.n }, (_, i) => i);
      const complete = Math.floor(c.n / c.seg) * c.seg;
      const r = new Rng(c.seed);
      for (let s0 = 0; s0 < complete; s0 += c.seg) {
        for (let i = c.seg - 1; i > 0; i--) {
          const j = r.int(0, i);
          [perm[s0 + i], perm[s0 + j]] = [perm[s0 + j]!, perm[s0 + i]!];
        }
      }
      const i = c.at % c.n;
      let broken = true;
      switch (c.how) {
        case 'valid':
          broken = false;
          break;
        case 'minus1':
          perm[i] = -1;
          break;
        case 'n':
          perm[i] = c.n;
          break;
        case 'int32max':
          perm[i] = 2 ** 31 - 1;
          break;
        case 'int32min':
          perm[i] = -(2 ** 31);
          break;
        case 'repeat':
          if (c.n < 2) broken = false;
          else perm[i] = perm[(i + 1) % c.n]!;
          break;
        case 'crossSegment':
          if (complete < 2 * c.seg) broken = false;
          else [perm[0], perm[c.seg]] = [perm[c.seg]!, perm[0]!];
          break;
        case 'tailMoved':
          if (c.n - complete < 2) broken = false;
          else [perm[complete], perm[complete + 1]] = [perm[complete + 1]!, perm[complete]!];
          break;
      }
      const pt = Tensor.from(perm, [1, 1, c.n], { context: f.ctx });
      try {
        const sel = pbsSelectBlocks(q, k, pt, { segmentSize: c.seg, blockSize: 128 });
        try {
          const host = sel.layout.toHost();
          const kept = sel.keptBlocks.toArray();
          if (broken) {
            await expect(kept).rejects.toMatchObject({ code: 'ERR_INVALID_ARG' });
            await expect(host).rejects.toMatchObject({ code: 'ERR_INVALID_ARG' });
          } else {
            const layout = await host;
            expect((await kept).length).toBe(2);
            expect(layout.queryLength).toBe(c.n);
            layout.dispose();
          }
        } finally {
          sel.layout.dispose();
          sel.keptBlocks.dispose();
        }
      } finally {
        q.dispose();
        k.dispose();
        pt.dispose();
      }
    }, runs(cuda ? 200 : 700));
    await expectMemoryAt(f.ctx, mark, 'pbsSelectBlocks permutations');
  });

  test('pbsAttention: valid small problems match the float64 reference (threshold 1 and the dense fallback: dense causal; otherwise the reported plan)', async () => {
    const mark = await memoryMark(f.ctx);
    const arb = fc.record({
      b: fc.integer({ min: 1, max: 2 }),
      hk: fc.integer({ min: 1, max: 2 }),
      g: fc.integer({ min: 1, max: 2 }),
      n: fc.integer({ min: 1, max: cuda ? 700 : 450 }),
      d: cuda ? fc.constantFrom(64, 128) : fc.integer({ min: 1, max: 20 }),
      dtype: cuda ? fc.constantFrom<FloatDType>('float16', 'bfloat16') : fc.constantFrom<FloatDType>('float32', 'float16', 'bfloat16'),
      blockSize: fc.constantFrom<64 | 128>(64, 128),
      segMul: fc.integer({ min: 1, max: 3 }),
      threshold: fc.oneof(fc.constant(1), fc.double({ min: 0.3, max: 0.99, noNaN: true })),
      gqaMode: fc.constantFrom<'shared' | 'perQueryHead'>('shared', 'perQueryHead'),
      selector: fc.constantFrom<'meanpool' | 'antidiagonal'>('meanpool', 'antidiagonal'),
      permute: fc.boolean(),
      forceSink: fc.boolean(),
      seed: fc.integer(),
    });
    await checkAsyncProperty(AREA, `pbsAttention values (${backend})`, arb, async (c) => {
      const shape = { batch: c.b, headsQ: c.hk * c.g, headsK: c.hk, seqLen: c.n, headDim: c.d };
      const inp = makeInputs(f.ctx, new Rng(c.seed), shape, c.dtype);
      const o: PbsOptions = { blockSize: c.blockSize, segmentSize: c.blockSize * c.segMul, threshold: c.threshold, gqaMode: c.gqaMode, selector: c.selector, permute: c.permute, forceSink: c.forceSink };
      try {
        const res = pbsAttention(inp.q, inp.k, inp.v, { ...o, returnLse: true, returnStats: true });
        try {
          const got = await res.out.toFloat32Array();
          const lse = await res.lse!.toArray();
          const tol = TOL[c.dtype];
          const fallback = c.n <= c.blockSize * c.segMul;
          let ref: { out: Float64Array; lse: Float64Array };
          if (fallback || c.threshold === 1) ref = refDenseCausal(inp.qv, inp.kv, inp.vv, shape, 1 / Math.sqrt(c.d));
          else ref = await referenceOfRun(inp, o, res.stats!);
          const e = relError(got, ref.out);
          if (!(e <= tol)) throw new Error(`out: relative error ${e} > ${tol} (fallback ${fallback}, threshold ${c.threshold})`);
          const el = lseError(lse, ref.lse);
          if (!(el <= tol)) throw new Error(`lse: relative error ${el} > ${tol}`);
        } finally {
          res.out.dispose();
          res.lse?.dispose();
          res.stats?.dispose();
        }
      } finally {
        inp.dispose();
      }
    }, runs(cuda ? 150 : 300));
    await expectMemoryAt(f.ctx, mark, 'pbsAttention values', DENSE_LAYOUT_CACHE);
  });
}

describe('pbs properties on cpu', () => {
  pbsProperties('cpu', cpuContext, 1);
});

describeGpu('pbs properties on cuda', () => {
  if (cudaUsable() || REQUIRE_GPU) pbsProperties('cuda', gpuContext, 0.25);
});
