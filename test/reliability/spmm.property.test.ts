/**
 * Property tests of block-sparse SpMM: BlockSparseMatrix.fromBlockCsr with random and malformed block-CSR
 * (out of range, unsorted, duplicate, negative, counts too large, wrong lengths, non-integers, wrong value
 * kinds and dtypes, huge shapes), fromDense with random options (NaN / Infinity / negative tolerance and
 * sparsity, bad block shapes), and spmm with random shapes, dtypes, biases, outputs (wrong dims, aliasing),
 * activations, backends and streams. Each case is judged against a model of the documented rules, written
 * independently of lib/spmm: valid calls succeed with exactly the matrix their arrays denote, or the float64
 * reference product; invalid ones throw (or reject with) a typed error naming an argument, allocating nothing.
 */
import { Context } from '../../lib/context';
import { type FloatDType, fromHalfBits, toHalfBits } from '../../lib/dtype';
import { BlockSparseMatrix, spmm } from '../../lib/spmm';
import type { Stream } from '../../lib/stream';
import { Tensor } from '../../lib/tensor';
import { cpuContext, cudaUsable, describeGpu, gpuContext, REQUIRE_GPU } from '../helpers/gpu';
import { relError, TOL } from '../helpers/tolerance';
import { activate, denseFromCsr, referenceSelection } from '../reference/spmm';
import { type CaseArea } from './helpers/budget';
import { normalsFrom, roundTo } from './helpers/data';
import { attempt, attemptAsync, badNumber, checkAsyncProperty, checkProperty, expectCaseBudget, expectMemoryAt, fc, junk, memoryMark, mostly } from './helpers/fc';
import { opFixtures } from './helpers/fixtures';

const AREA: CaseArea = 'spmm';
expectCaseBudget(AREA);

const INT32_MAX = 2 ** 31 - 1;
const FLOATS = ['float32', 'float16', 'bfloat16'] as const;
const GPU_SIDES = [16, 32, 64];
const isInt = (v: unknown, lo: number, hi: number): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= lo && v <= hi;
const NAMES = ['x', 'w', 'options', 'rowPtr', 'colIdx', 'values', 'shape', 'blockShape', 'n', 'this matrix'];


// ---- fromBlockCsr ----

const csrArb = (cuda: boolean) =>
  fc.record({
    m: fc.oneof({ weight: 12, arbitrary: fc.nat(40) as fc.Arbitrary<unknown> }, { weight: 1, arbitrary: fc.constantFrom<unknown>(INT32_MAX, 2 ** 20) }, { weight: 1, arbitrary: badNumber }, { weight: 1, arbitrary: junk }),
    k: fc.oneof({ weight: 12, arbitrary: fc.nat(40) as fc.Arbitrary<unknown> }, { weight: 1, arbitrary: fc.constantFrom<unknown>(INT32_MAX, 2 ** 20) }, { weight: 1, arbitrary: badNumber }),
    bm: cuda ? mostly(fc.constantFrom(16, 32, 64), 10) : mostly(fc.integer({ min: 1, max: 8 }), 10),
    bk: cuda ? mostly(fc.constantFrom(16, 32, 64), 10) : fc.oneof({ weight: 10, arbitrary: fc.integer({ min: 1, max: 8 }) as fc.Arbitrary<unknown> }, { weight: 1, arbitrary: fc.constantFrom<unknown>(2 ** 13, 0, 16, 3.5) }),
    shapeForm: fc.oneof({ weight: 15, arbitrary: fc.constant('pair') }, { weight: 1, arbitrary: fc.constantFrom('triple', 'object', 'typed') }),
    density: fc.double({ min: 0, max: 1, noNaN: true }),
    seed: fc.integer(),
    corruptions: fc.array(
      fc.record({
        what: fc.constantFrom('rowPtr', 'colIdx'),
        how: fc.constantFrom('minus1', 'kb', 'int32max', 'plus1', 'minus1rel', 'swap', 'dup', 'drop', 'append', 'fraction', 'nan', 'string', 'float32', 'big'),
        at: fc.nat(),
      }),
      { maxLength: 2 },
    ),
    asArray: fc.boolean(),
    values: fc.oneof(
      { weight: 10, arbitrary: fc.constantFrom('f32', 'u16', 'tensor') },
      { weight: 1, arbitrary: fc.constantFrom('f64', 'short', 'long', 'junk', 'disposedTensor', 'otherTensor', 'intTensor') },
    ),
    dtype: fc.oneof({ weight: 6, arbitrary: fc.constantFrom<unknown>(undefined, 'float32', 'float16', 'bfloat16') }, { weight: 1, arbitrary: fc.constantFrom<unknown>('int32', 'float64', 5) }),
    place: fc.oneof({ weight: 10, arbitrary: fc.constantFrom('ctx', 'side', 'ctxAndSide') }, { weight: 1, arbitrary: fc.constantFrom('other', 'disposedCtx', 'disposedStream', 'junkCtx', 'junkStream', 'otherStream', 'none') }),
    extraOption: fc.oneof({ weight: 20, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
  });
type CsrCase = typeof csrArb extends (c: boolean) => fc.Arbitrary<infer T> ? T : never;

/** Corrupts one int array (a copy): returns the new array value (number[] with junk, or a Float32Array). */
function corrupt(a: number[], how: string, at: number, kb: number): unknown {
  const i = a.length > 0 ? at % a.length : 0;
  const b = a.slice();
  switch (how) {
    case 'minus1':
      if (b.length) b[i] = -1;
      return b;
    case 'kb':
      if (b.length) b[i] = kb;
      return b;
    case 'int32max':
      if (b.length) b[i] = INT32_MAX;
      return b;
    case 'plus1':
      if (b.length) b[i] = b[i]! + 1;
      return b;
    case 'minus1rel':
      if (b.length) b[i] = b[i]! - 1;
      return b;
    case 'swap':
      if (b.length > 1) [b[i], b[(i + 1) % b.length]] = [b[(i + 1) % b.length]!, b[i]!];
      return b;
    case 'dup':
      if (b.length > 1) b[(i + 1) % b.length] = b[i]!;
      return b;
    case 'drop':
      b.pop();
      return b;
    case 'append':
      b.push(b.length ? b[b.length - 1]! : 0);
      return b;
    case 'fraction':
      return b.length ? b.map((x, j) => (j === i ? x + 0.5 : x)) : b;
    case 'nan':
      return b.length ? b.map((x, j) => (j === i ? NaN : x)) : b;
    case 'string':
      return b.length ? b.map((x, j) => (j === i ? String(x) : x)) : b;
    case 'float32':
      return Float32Array.from(b);
    case 'big':
      return b.length ? b.map((x, j) => (j === i ? 2 ** 31 : x)) : b;
  }
  return b;
}

/** The documented rules of fromBlockCsr arrays (independent of lib/spmm). */
function csrValid(rowPtr: unknown, colIdx: unknown, mb: number, kb: number): boolean {
  const ints = (a: unknown): number[] | null => {
    if (a instanceof Int32Array) return Array.from(a);
    if (!Array.isArray(a)) return null;
    return a.every((x) => isInt(x, -(2 ** 31), INT32_MAX)) ? (a as number[]) : null;
  };
  const rp = ints(rowPtr);
  const ci = ints(colIdx);
  if (!rp || !ci) return false;
  if (rp.length !== mb + 1 || rp[0] !== 0) return false;
  for (let r = 0; r < mb; r++) if (rp[r + 1]! < rp[r]! || rp[r + 1]! - rp[r]! > kb) return false;
  if (rp[mb] !== ci.length) return false;
  for (let r = 0; r < mb; r++) {
    for (let j = rp[r]!; j < rp[r + 1]!; j++) {
      if (ci[j]! < 0 || ci[j]! >= kb) return false;
      if (j > rp[r]! && ci[j]! <= ci[j - 1]!) return false;
    }
  }
  return true;
}

function spmmProperties(backend: string, getCtx: () => Context, scale: number): void {
  const cuda = backend === 'cuda';
  const f = opFixtures(getCtx);
  const runs = (n: number) => Math.max(20, Math.round(n * scale));

  test('BlockSparseMatrix.fromBlockCsr: valid arrays denote exactly the matrix built; malformed ones are refused on the host, naming the position', async () => {
    const mark = await memoryMark(f.ctx);
    await checkAsyncProperty(AREA, `fromBlockCsr (${backend})`, csrArb(cuda), async (c: CsrCase) => {
      const shapeOk = isInt(c.m, 0, INT32_MAX) && isInt(c.k, 0, INT32_MAX);
      const blockOk = isInt(c.bm, 1, INT32_MAX) && isInt(c.bk, 1, INT32_MAX) && c.bm * c.bk <= 2 ** 24 && (!cuda || (GPU_SIDES.includes(c.bm) && GPU_SIDES.includes(c.bk)));
      const mb = shapeOk && blockOk ? Math.ceil((c.m as number) / (c.bm as number)) : 0;
      const kb = shapeOk && blockOk ? Math.ceil((c.k as number) / (c.bk as number)) : 0;
      const small = shapeOk && blockOk && mb * kb <= 4096 && mb <= 4096;
      // Arrays: from a random block mask on a small grid, else an array of the wrong length.
      let rp: number[] = [0];
      let ci: number[] = [];
      if (small) {
        const u = normalsFrom(c.seed, mb * kb);
        for (let r = 0; r < mb; r++) {
          for (let q = 0; q < kb; q++) if (Math.abs(u[r * kb + q]!) < 2 * c.density) ci.push(q);
          rp.push(ci.length);
        }
      } else if (shapeOk && blockOk && mb <= 2 ** 16) {
        rp = new Array<number>(mb + 1).fill(0); // a huge, empty matrix
      }
      let rowPtr: unknown = c.asArray ? rp : Int32Array.from(rp);
      let colIdx: unknown = c.asArray ? ci : Int32Array.from(ci);
      for (const k of c.corruptions) {
        if (k.what === 'rowPtr') rowPtr = corrupt(Array.isArray(rowPtr) ? (rowPtr as number[]) : Array.from(rowPtr as Int32Array), k.how, k.at, kb);
        else colIdx = corrupt(Array.isArray(colIdx) ? (colIdx as number[]) : Array.from(colIdx as Int32Array), k.how, k.at, kb);
      }
      const arraysOk = shapeOk && blockOk && csrValid(rowPtr, colIdx, mb, kb);
      const nnzb = Array.isArray(colIdx) || colIdx instanceof Int32Array || colIdx instanceof Float32Array ? (colIdx as { length: number }).length : 0;
      const elems = blockOk ? nnzb * (c.bm as number) * (c.bk as number) : 0;
      // Values (and their dtype) and placement.
      // Values: normals, or (for the rare huge-block cases) a constant, which is as good for a copy check.
      const data = elems < 1 << 18 ? normalsFrom(c.seed + 7, elems + 1) : new Float32Array(elems + 1).fill(0.75);
      let values: unknown;
      let valueDtype: FloatDType | undefined; // the dtype the values carry, when they fix it
      let exact: Float32Array | undefined; // the values as the matrix must hold them (before dtype rounding)
      const disposables: Tensor[] = [];
      const optDtype = c.dtype;
      const dtypeOk = optDtype === undefined || (FLOATS as readonly unknown[]).includes(optDtype);
      let valuesOk = true;
      const tensorDtype: FloatDType = dtypeOk && optDtype !== undefined ? (optDtype as FloatDType) : 'float32';
      const len = c.values === 'short' ? Math.max(0, elems - 1) : c.values === 'long' ? elems + 1 : elems;
      switch (c.values) {
        case 'f32':
        case 'short':
        case 'long':
          values = data.slice(0, len);
          exact = values as Float32Array;
          if (len !== elems) valuesOk = false;
          break;
        case 'u16': {
          const d = optDtype === 'bfloat16' ? 'bfloat16' : 'float16';
          values = toHalfBits(data.slice(0, elems), d);
          exact = fromHalfBits(values as Uint16Array, d);
          valueDtype = d;
          if (optDtype !== 'float16' && optDtype !== 'bfloat16') valuesOk = false;
          break;
        }
        case 'f64':
          values = Float64Array.from(data.slice(0, elems));
          valuesOk = false;
          break;
        case 'junk':
          values = Array.from(data.slice(0, elems));
          valuesOk = false;
          break;
        case 'intTensor': {
          const t = Tensor.zeros([Math.max(elems, 0)], { dtype: 'int32', context: f.ctx });
          disposables.push(t);
          values = t;
          valuesOk = false;
          break;
        }
        default: {
          const on = c.values === 'otherTensor' ? f.other : f.ctx;
          const rounded = roundTo(data.slice(0, elems), tensorDtype);
          const t = tensorDtype === 'float32' ? Tensor.from(rounded, [elems], { context: on }) : Tensor.from(toHalfBits(rounded, tensorDtype), [elems], { dtype: tensorDtype, context: on });
          disposables.push(t);
          values = t;
          exact = rounded;
          valueDtype = tensorDtype;
          if (c.values === 'disposedTensor') {
            t.dispose();
            valuesOk = false;
          }
        }
      }
      const isTensor = values instanceof Tensor;
      const options: Record<string, unknown> = {};
      if (optDtype !== undefined) options.dtype = optDtype;
      let placeOk = true;
      let target: Context = isTensor ? (values as Tensor).context : f.ctx;
      switch (c.place) {
        case 'ctx':
          options.context = f.ctx;
          break;
        case 'side':
          options.stream = f.side;
          break;
        case 'ctxAndSide':
          options.context = f.ctx;
          options.stream = f.side;
          break;
        case 'other':
          options.context = f.other;
          target = f.other;
          break;
        case 'otherStream':
          options.context = f.ctx;
          options.stream = f.other.stream;
          placeOk = false;
          break;
        case 'disposedCtx':
          options.context = f.disposedCtx;
          placeOk = false;
          break;
        case 'disposedStream':
          options.stream = f.disposedStream;
          placeOk = false;
          break;
        case 'junkCtx':
          options.context = {};
          placeOk = false;
          break;
        case 'junkStream':
          options.stream = 'stream';
          placeOk = false;
          break;
        case 'none':
          placeOk = !isTensor ? false : true; // no placement: Context.default (not under test), skipped below
          break;
      }
      if (c.place === 'none' && !isTensor) fc.pre(false);
      if (isTensor && options.context !== undefined && options.context !== (values as Tensor).context) placeOk = false;
      if (isTensor && options.stream !== undefined && (options.stream as Stream).context !== (values as Tensor).context) placeOk = false;
      if (!isTensor && options.stream !== undefined && options.context === undefined) target = (options.stream as Stream).context ?? f.ctx;
      if (valueDtype !== undefined && optDtype !== undefined && c.values !== 'u16' && optDtype !== valueDtype) valuesOk = false;
      if (c.extraOption) options.colour = 1;
      const shape = c.shapeForm === 'pair' ? [c.m, c.k] : c.shapeForm === 'triple' ? [c.m, c.k, 1] : c.shapeForm === 'object' ? { 0: c.m, 1: c.k } : new Int32Array(2);
      const valid = shapeOk && blockOk && arraysOk && dtypeOk && valuesOk && placeOk && !c.extraOption && c.shapeForm === 'pair';
      const before = target.memory().tensors;
      const r = attempt(() => BlockSparseMatrix.fromBlockCsr(rowPtr as Int32Array, colIdx as Int32Array, values as Float32Array, shape as [number, number], [c.bm, c.bk] as [number, number], options as never), NAMES, 'fromBlockCsr');
      try {
        if (!r.ok) {
          if (valid) throw new Error(`valid block-CSR rejected: ${(r.error as Error).message}`);
          expect(target.memory().tensors).toBeLessThanOrEqual(before);
          return;
        }
        const w = r.value;
        try {
          if (!valid) throw new Error(`invalid block-CSR accepted: ${w.toString()}`);
          const dtype: FloatDType = (optDtype as FloatDType | undefined) ?? valueDtype ?? 'float32';
          expect(w.dtype).toBe(dtype);
          expect(w.shape).toEqual([c.m, c.k]);
          expect(w.nnzBlocks).toBe(nnzb);
          expect(w.context).toBe(target);
          if (small && (c.m as number) * (c.k as number) <= 4096) {
            const want = denseFromCsr(rowPtr as ArrayLike<number>, colIdx as ArrayLike<number>, roundTo(exact!, dtype), c.m as number, c.k as number, c.bm as number, c.bk as number);
            const d = w.toDense();
            const got = await d.toFloat32Array();
            d.dispose();
            for (let i = 0; i < want.length; i++) if (!Object.is(got[i], want[i]) && !(got[i] === 0 && want[i] === 0)) throw new Error(`toDense()[${i}] = ${got[i]}, want ${want[i]}`);
          }
        } finally {
          w.dispose();
        }
      } finally {
        for (const t of disposables) t.dispose();
      }
    }, runs(cuda ? 1500 : 8000));
    await expectMemoryAt(f.ctx, mark, 'fromBlockCsr');
  });

  test('BlockSparseMatrix.fromDense: bad tolerance / sparsity / blockShape / w reject with a typed error; valid ones keep exactly the documented blocks', async () => {
    const mark = await memoryMark(f.ctx);
    const arb = fc.record({
      m: fc.nat(cuda ? 130 : 30),
      k: fc.nat(cuda ? 130 : 30),
      dtype: fc.constantFrom<FloatDType>('float32', 'float16', 'bfloat16'),
      block: fc.oneof({ weight: 8, arbitrary: (cuda ? fc.tuple(fc.constantFrom(16, 32, 64), fc.constantFrom(16, 32, 64)) : fc.tuple(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 6 }))) as fc.Arbitrary<unknown> }, { weight: 1, arbitrary: fc.oneof(fc.constantFrom<unknown>([0, 1], [1], [2, 2, 2], [1.5, 2], [2 ** 13, 2 ** 13], [8, 8], 'x', null)) }),
      tolerance: fc.option(fc.oneof({ weight: 6, arbitrary: fc.double({ min: 0, max: 1.5, noNaN: true }) as fc.Arbitrary<unknown> }, { weight: 1, arbitrary: fc.constantFrom<unknown>(NaN, -1, -0.1, Infinity, 1e39, '0') }), { nil: undefined }),
      sparsity: fc.option(fc.oneof({ weight: 6, arbitrary: fc.double({ min: 0, max: 1, noNaN: true }) as fc.Arbitrary<unknown> }, { weight: 1, arbitrary: fc.constantFrom<unknown>(NaN, -0.1, 1.01, Infinity, '0.5', null) }), { nil: undefined }),
      wKind: fc.oneof({ weight: 12, arbitrary: fc.constant('ok') }, { weight: 1, arbitrary: fc.constantFrom('rank1', 'rank3', 'int', 'disposed', 'notTensor') }),
      stream: fc.oneof({ weight: 10, arbitrary: fc.constant<unknown>(undefined) }, { weight: 1, arbitrary: fc.constantFrom<unknown>('side', 'other', 'disposed', 3) }),
      seed: fc.integer(),
      zeroBlocks: fc.boolean(),
    });
    await checkAsyncProperty(AREA, `fromDense (${backend})`, arb, async (c) => {
      const values = normalsFrom(c.seed, c.m * c.k);
      if (c.zeroBlocks) for (let i = 0; i < values.length; i++) if ((i * 7) % 5 === 0) values[i] = 0;
      const exact = roundTo(values, c.dtype);
      const dims = c.wKind === 'rank1' ? [c.m * c.k] : c.wKind === 'rank3' ? [1, c.m, c.k] : [c.m, c.k];
      const w = c.wKind === 'int' ? Tensor.zeros(dims, { dtype: 'int32', context: f.ctx }) : c.dtype === 'float32' ? Tensor.from(exact, dims, { context: f.ctx }) : Tensor.from(toHalfBits(exact, c.dtype), dims, { dtype: c.dtype, context: f.ctx });
      if (c.wKind === 'disposed') w.dispose();
      const options: Record<string, unknown> = { blockShape: c.block };
      if (c.tolerance !== undefined) options.tolerance = c.tolerance;
      if (c.sparsity !== undefined) options.sparsity = c.sparsity;
      if (c.stream !== undefined) options.stream = c.stream === 'side' ? f.side : c.stream === 'other' ? f.other.stream : c.stream === 'disposed' ? f.disposedStream : c.stream;
      const b = c.block as unknown[];
      const blockOk = Array.isArray(b) && b.length === 2 && isInt(b[0], 1, INT32_MAX) && isInt(b[1], 1, INT32_MAX) && (b[0] as number) * (b[1] as number) <= 2 ** 24 && (!cuda || (GPU_SIDES.includes(b[0] as number) && GPU_SIDES.includes(b[1] as number)));
      const tolOk = c.tolerance === undefined || (typeof c.tolerance === 'number' && Number.isFinite(c.tolerance) && c.tolerance >= 0 && Number.isFinite(Math.fround(c.tolerance)));
      const spOk = c.sparsity === undefined || (typeof c.sparsity === 'number' && c.sparsity >= 0 && c.sparsity <= 1);
      const valid = blockOk && tolOk && spOk && c.wKind === 'ok' && (c.stream === undefined || c.stream === 'side');
      try {
        const r = await attemptAsync(() => BlockSparseMatrix.fromDense((c.wKind === 'notTensor' ? values : w) as Tensor, options as never), [...NAMES, 'w'], 'fromDense');
        if (!r.ok) {
          if (valid) throw new Error(`valid fromDense rejected: ${(r.error as Error).message}`);
          return;
        }
        const mat = r.value;
        try {
          if (!valid) throw new Error(`invalid fromDense accepted: ${mat.toString()}`);
          const [bm, bk] = b as [number, number];
          const keep = referenceSelection(exact, c.m, c.k, bm, bk, (c.tolerance as number | undefined) ?? 0, c.sparsity as number | undefined);
          const kb = Math.ceil(c.k / bk);
          expect(mat.nnzBlocks).toBe(keep.reduce((a, x) => a + x, 0));
          const d = mat.toDense();
          const got = await d.toFloat32Array();
          d.dispose();
          for (let i = 0; i < c.m; i++) {
            for (let j = 0; j < c.k; j++) {
              const want = keep[Math.floor(i / bm) * kb + Math.floor(j / bk)] ? exact[i * c.k + j]! : 0;
              if (got[i * c.k + j] !== want) throw new Error(`toDense()[${i}, ${j}] = ${got[i * c.k + j]}, want ${want}`);
            }
          }
        } finally {
          mat.dispose();
        }
      } finally {
        w.dispose();
      }
    }, runs(cuda ? 500 : 2000));
    await expectMemoryAt(f.ctx, mark, 'fromDense');
  });

  // ---- spmm ----

  interface Pool {
    mats: Array<{ w: BlockSparseMatrix; m: number; k: number }>;
    disposed: BlockSparseMatrix;
    foreign: BlockSparseMatrix;
  }
  let pool: Pool;
  beforeAll(async () => {
    const mk = async (ctx: Context, m: number, k: number, bm: number, bk: number, dtype: FloatDType) => {
      const v = normalsFrom(m * 31 + k, m * k);
      const w = dtype === 'float32' ? Tensor.from(v, [m, k], { context: ctx }) : Tensor.from(toHalfBits(v, dtype), [m, k], { dtype, context: ctx });
      const mat = await BlockSparseMatrix.fromDense(w, { blockShape: [bm, bk], sparsity: 0.4 });
      w.dispose();
      return mat;
    };
    const b = cuda ? [16, 32] : [3, 4];
    const shapes: Array<[number, number, FloatDType]> = cuda
      ? [[48, 48, 'float16'], [40, 70, 'bfloat16'], [64, 32, 'float32']]
      : [[12, 12, 'float32'], [10, 17, 'float16'], [9, 5, 'bfloat16'], [1, 1, 'float32'], [0, 4, 'float32']];
    pool = {
      mats: await Promise.all(shapes.map(async ([m, k, dt]) => ({ w: await mk(f.ctx, m, k, b[0]!, b[1]!, dt), m, k }))),
      disposed: await mk(f.ctx, 8, 8, b[0]!, b[1]!, 'float32'),
      foreign: await mk(f.other, 8, 8, b[0]!, b[1]!, 'float32'),
    };
    pool.disposed.dispose();
    // The 'dense' backend caches a dense copy of W on the matrix (until w.dispose()): make it now, so that the
    // property's memory check sees only what its cases leave behind.
    for (const { w, k } of pool.mats) {
      const x = Tensor.zeros([1, k], { dtype: w.dtype, context: f.ctx });
      spmm(x, w, { backend: 'dense' }).dispose();
      x.dispose();
    }
  });
  afterAll(() => {
    for (const p of pool.mats) p.w.dispose();
    pool.foreign.dispose();
  });

  test('spmm: random arguments end in a typed error naming one, or an output of the documented dims and dtype; nothing leaks', async () => {
    const mark = await memoryMark(f.ctx);
    const arb = fc.record({
      mat: fc.nat(),
      wKind: fc.oneof({ weight: 15, arbitrary: fc.constant('ok') }, { weight: 1, arbitrary: fc.constantFrom('disposed', 'foreign', 'junk') }),
      lead: fc.array(fc.nat(3), { maxLength: 3 }),
      kDelta: fc.oneof({ weight: 10, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.constantFrom(-1, 1) }),
      xDtype: fc.oneof({ weight: 10, arbitrary: fc.constant<unknown>('same') }, { weight: 1, arbitrary: fc.constantFrom<unknown>('float32', 'float16', 'bfloat16', 'int32') }),
      xKind: fc.oneof({ weight: 15, arbitrary: fc.constant('ok') }, { weight: 1, arbitrary: fc.constantFrom('disposed', 'foreign', 'notTensor') }),
      bias: fc.oneof({ weight: 4, arbitrary: fc.constant('none') }, { weight: 4, arbitrary: fc.constant('ok') }, { weight: 1, arbitrary: fc.constantFrom('long', 'dtype', 'disposed', 'foreign', 'junk', 'rank2') }),
      out: fc.oneof({ weight: 4, arbitrary: fc.constant('none') }, { weight: 4, arbitrary: fc.constant('ok') }, { weight: 1, arbitrary: fc.constantFrom('dims', 'dtype', 'x', 'xView', 'bias', 'disposed', 'foreign', 'junk') }),
      activation: fc.option(mostly(fc.constantFrom('none', 'relu', 'gelu', 'silu'), 12), { nil: undefined }),
      backend: fc.option(mostly(fc.constantFrom('auto', 'sparse', 'dense'), 12), { nil: undefined }),
      stream: fc.oneof({ weight: 10, arbitrary: fc.constant<unknown>(undefined) }, { weight: 1, arbitrary: fc.constantFrom<unknown>('side', 'other', 'disposed', 7) }),
      optionsForm: fc.oneof({ weight: 20, arbitrary: fc.constant('object') }, { weight: 1, arbitrary: fc.constantFrom('null', 'array', 'unknownKey', 'regexp') }),
    });
    checkProperty(AREA, `spmm arguments (${backend})`, arb, (c) => {
      const entry = pool.mats[c.mat % pool.mats.length]!;
      const w = c.wKind === 'disposed' ? pool.disposed : c.wKind === 'foreign' ? pool.foreign : c.wKind === 'junk' ? { shape: [entry.m, entry.k] } : entry.w;
      const wm = w instanceof BlockSparseMatrix ? w : entry.w;
      const [m, k] = wm.shape;
      const dtype = wm.dtype;
      const xDt = c.xDtype === 'same' ? dtype : (c.xDtype as string);
      const xDims = [...c.lead, Math.max(0, k + c.kDelta)];
      const made: Tensor[] = [];
      const T = (dims: number[], dt: string, on: Context = f.ctx) => {
        const t = Tensor.zeros(dims, { dtype: dt as FloatDType, context: on });
        made.push(t);
        return t;
      };
      const x = T(xDims, xDt, c.xKind === 'foreign' ? f.other : f.ctx);
      if (c.xKind === 'disposed') x.dispose();
      const outDims = [...c.lead, m];
      const options: Record<string, unknown> = {};
      let biasT: Tensor | undefined;
      switch (c.bias) {
        case 'ok':
          biasT = T([m], dtype);
          break;
        case 'long':
          biasT = T([m + 1], dtype);
          break;
        case 'dtype':
          biasT = T([m], dtype === 'float32' ? 'bfloat16' : 'float32');
          break;
        case 'disposed':
          biasT = T([m], dtype);
          biasT.dispose();
          break;
        case 'foreign':
          biasT = T([m], dtype, f.other);
          break;
        case 'rank2':
          biasT = T([1, m], dtype);
          break;
      }
      if (c.bias === 'junk') options.bias = new Float32Array(m);
      else if (biasT) options.bias = biasT;
      switch (c.out) {
        case 'ok':
          options.out = T(outDims, dtype);
          break;
        case 'dims':
          options.out = T([...outDims.slice(0, -1), m + 1], dtype);
          break;
        case 'dtype':
          options.out = T(outDims, dtype === 'float32' ? 'float16' : 'float32');
          break;
        case 'x':
          options.out = x;
          break;
        case 'xView':
          options.out = x.isDisposed || x.size !== outDims.reduce((a, b) => a * b, 1) ? x : x.reshape(outDims);
          if (options.out !== x) made.push(options.out as Tensor);
          break;
        case 'bias':
          options.out = biasT && !biasT.isDisposed && biasT.size === outDims.reduce((a, b) => a * b, 1) ? biasT.reshape(outDims) : T(outDims, dtype);
          if (options.out !== biasT) made.push(options.out as Tensor);
          break;
        case 'disposed': {
          const o = T(outDims, dtype);
          o.dispose();
          options.out = o;
          break;
        }
        case 'foreign':
          options.out = T(outDims, dtype, f.other);
          break;
        case 'junk':
          options.out = [];
          break;
      }
      if (c.activation !== undefined) options.activation = c.activation;
      if (c.backend !== undefined) options.backend = c.backend;
      if (c.stream !== undefined) options.stream = c.stream === 'side' ? f.side : c.stream === 'other' ? f.other.stream : c.stream === 'disposed' ? f.disposedStream : c.stream;
      const opts = c.optionsForm === 'null' ? null : c.optionsForm === 'array' ? [options] : c.optionsForm === 'unknownKey' ? { ...options, act: 'relu' } : c.optionsForm === 'regexp' ? /x/ : options;
      // The model (spmm's JSDoc and SpmmOptions).
      const out = options.out as Tensor | undefined;
      const sameStorage = (a: Tensor | undefined, b: Tensor | undefined) => a !== undefined && b !== undefined && a._ref !== null && a._ref === b._ref;
      // Everything must live on x's context (w, bias, out, stream); a consistent call on the other context is valid.
      const xCtx = x.context;
      const tensorOk = (t: unknown, dims: number[]) =>
        t instanceof Tensor && !t.isDisposed && t.context === xCtx && t.dtype === dtype && t.dims.length === dims.length && t.dims.every((d, i) => d === dims[i]);
      const streamCtx = c.stream === 'side' ? f.ctx : c.stream === 'other' ? f.other : undefined;
      const valid =
        c.optionsForm === 'object' &&
        w instanceof BlockSparseMatrix &&
        !w.isDisposed &&
        w.context === xCtx &&
        !x.isDisposed &&
        c.xKind !== 'notTensor' &&
        (c.stream === undefined || streamCtx === xCtx) &&
        c.kDelta === 0 &&
        xDt === dtype &&
        (options.bias === undefined || tensorOk(options.bias, [m])) &&
        (options.out === undefined || tensorOk(options.out, outDims)) &&
        (c.activation === undefined || ['none', 'relu', 'gelu', 'silu'].includes(c.activation as string)) &&
        (c.backend === undefined || ['auto', 'sparse', 'dense'].includes(c.backend as string)) &&
        !sameStorage(out, x) &&
        !sameStorage(out, biasT);
      // Outputs that share memory with x / the bias are invalid; an 'xView' or 'bias' out that could not be a
      // view is a plain mismatch (also invalid by the rules above).
      const before = f.ctx.memory().tensors;
      const r = attempt(() => spmm((c.xKind === 'notTensor' ? new Float32Array(4) : x) as Tensor, w as BlockSparseMatrix, opts as never), NAMES, 'spmm');
      try {
        if (!r.ok) {
          if (valid) throw new Error(`valid spmm rejected: ${(r.error as Error).message}`);
          expect(f.ctx.memory().tensors).toBeLessThanOrEqual(before);
          return;
        }
        if (!valid) throw new Error(`invalid spmm accepted: ${JSON.stringify({ ...c, dims: xDims })}`);
        expect(r.value.dims).toEqual(outDims);
        expect(r.value.dtype).toBe(dtype);
        if (out) expect(r.value).toBe(out);
        else made.push(r.value);
      } finally {
        for (const t of made) t.dispose();
      }
    }, runs(cuda ? 2000 : 9000));
    await expectMemoryAt(f.ctx, mark, 'spmm arguments');
  });

  test('spmm: valid small products match the float64 reference (odd shapes, every activation, bias, both backends, NaN-filled out)', async () => {
    const mark = await memoryMark(f.ctx);
    const arb = fc.record({
      m: fc.integer({ min: 1, max: cuda ? 100 : 24 }),
      k: fc.integer({ min: 1, max: cuda ? 100 : 24 }),
      lead: fc.array(fc.integer({ min: 1, max: 3 }), { maxLength: 2 }),
      block: cuda ? fc.tuple(fc.constantFrom(16, 32, 64), fc.constantFrom(16, 32, 64)) : fc.tuple(fc.integer({ min: 1, max: 7 }), fc.integer({ min: 1, max: 7 })),
      dtype: cuda ? fc.constantFrom<FloatDType>('float16', 'bfloat16', 'float32') : fc.constantFrom<FloatDType>('float32', 'float16', 'bfloat16'),
      density: fc.double({ min: 0, max: 1, noNaN: true }),
      bias: fc.boolean(),
      activation: fc.constantFrom('none', 'relu', 'gelu', 'silu') as fc.Arbitrary<'none' | 'relu' | 'gelu' | 'silu'>,
      backend: fc.constantFrom('auto', 'sparse', 'dense') as fc.Arbitrary<'auto' | 'sparse' | 'dense'>,
      nanOut: fc.boolean(),
      seed: fc.integer(),
    });
    await checkAsyncProperty(AREA, `spmm values (${backend})`, arb, async (c) => {
      const [bm, bk] = c.block;
      const mb = Math.ceil(c.m / bm);
      const kb = Math.ceil(c.k / bk);
      const u = normalsFrom(c.seed, mb * kb);
      const rowPtr = [0];
      const colIdx: number[] = [];
      for (let r = 0; r < mb; r++) {
        for (let q = 0; q < kb; q++) if (Math.abs(u[r * kb + q]!) < 2 * c.density) colIdx.push(q);
        rowPtr.push(colIdx.length);
      }
      const vals = roundTo(normalsFrom(c.seed + 1, colIdx.length * bm * bk, 0.5), c.dtype);
      const w = BlockSparseMatrix.fromBlockCsr(rowPtr, colIdx, c.dtype === 'float32' ? vals : toHalfBits(vals, c.dtype), [c.m, c.k], [bm, bk], { dtype: c.dtype, context: f.ctx });
      const n = c.lead.reduce((a, b) => a * b, 1);
      const xv = roundTo(normalsFrom(c.seed + 2, n * c.k), c.dtype);
      const bv = roundTo(normalsFrom(c.seed + 3, c.m, 0.5), c.dtype);
      const mkT = (v: Float32Array, dims: number[]) => (c.dtype === 'float32' ? Tensor.from(v, dims, { context: f.ctx }) : Tensor.from(toHalfBits(v, c.dtype), dims, { dtype: c.dtype, context: f.ctx }));
      const x = mkT(xv, [...c.lead, c.k]);
      const bias = c.bias ? mkT(bv, [c.m]) : undefined;
      const outDims = [...c.lead, c.m];
      const out = c.nanOut ? mkT(new Float32Array(n * c.m).fill(NaN), outDims) : undefined;
      try {
        const y = spmm(x, w, { bias, activation: c.activation, backend: c.backend, out });
        const got = await y.toFloat32Array();
        if (!out) y.dispose();
        const dense = denseFromCsr(rowPtr, colIdx, vals, c.m, c.k, bm, bk);
        const want = new Float64Array(n * c.m);
        for (let i = 0; i < n; i++) {
          for (let r = 0; r < c.m; r++) {
            let s = c.bias ? bv[r]! : 0;
            for (let q = 0; q < c.k; q++) s += xv[i * c.k + q]! * dense[r * c.k + q]!;
            want[i * c.m + r] = activate(s, c.activation);
          }
        }
        const err = relError(got, want);
        if (!(err <= TOL[c.dtype])) throw new Error(`relative error ${err} > ${TOL[c.dtype]} (${c.dtype}, ${c.activation}, ${c.backend})`);
      } finally {
        x.dispose();
        bias?.dispose();
        out?.dispose();
        w.dispose();
      }
    }, runs(cuda ? 300 : 1200));
    await expectMemoryAt(f.ctx, mark, 'spmm values');
  });
}

describe('spmm properties on cpu', () => {
  spmmProperties('cpu', cpuContext, 1);
});

describeGpu('spmm properties on cuda', () => {
  if (cudaUsable() || REQUIRE_GPU) spmmProperties('cuda', gpuContext, 0.25);
});
