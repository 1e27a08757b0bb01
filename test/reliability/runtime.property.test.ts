/**
 * Property tests of the runtime API (Context, Stream, Tensor): random shapes, dtypes, data kinds, options,
 * disposed objects, other contexts, NaN / Infinity / negative / fractional / huge sizes. Each case is judged
 * against a model written from the documented contract (not from lib/): when the model says the call is
 * valid it must succeed and hold exactly the expected values; otherwise it must end in a typed error naming
 * an argument, with nothing allocated. Huge sizes must fail as ERR_OUT_OF_MEMORY carried by the tensor, and
 * the context keeps working.
 */
import { Context } from '../../lib/context';
import { DTYPE_BYTES, DTYPES, type DType, toHalfBits } from '../../lib/dtype';
import type { Stream } from '../../lib/stream';
import { Tensor } from '../../lib/tensor';
import { cudaUsable, describeGpu, gpuContext, cpuContext, REQUIRE_GPU } from '../helpers/gpu';
import { type CaseArea } from './helpers/budget';
import { attempt, badNumber, isPlainObject, checkAsyncProperty, checkProperty, drain, expectCaseBudget, expectMemoryAt, fc, junk, memoryMark, mostly } from './helpers/fc';

const AREA: CaseArea = 'runtime';
expectCaseBudget(AREA);

const FLOATS = new Set<DType>(['float32', 'float16', 'bfloat16']);
const INT_RANGE: Partial<Record<DType, [number, number]>> = { int32: [-(2 ** 31), 2 ** 31 - 1], int8: [-128, 127], uint8: [0, 255] };
const KNOWN_FROM_OPTIONS = ['dtype', 'context', 'stream', 'copy'];

/** Placement fixtures of one backend: the context under test, a side stream, and things that must be refused. */
interface Fixtures {
  ctx: Context;
  side: Stream;
  other: Context;
  disposedCtx: Context;
  disposedStream: Stream;
}

function makeFixtures(getCtx: () => Context): Fixtures {
  const ctx = getCtx();
  const other = new Context({ device: ctx.backend });
  const disposedCtx = new Context({ device: ctx.backend });
  disposedCtx.dispose();
  const disposedStream = ctx.createStream();
  disposedStream.dispose();
  return { ctx, side: ctx.createStream(), other, disposedCtx, disposedStream };
}

type Placement = 'ctx' | 'side' | 'sideWithCtx' | 'otherStreamWithCtx' | 'otherCtx' | 'disposedCtx' | 'disposedStream' | 'junkCtx' | 'junkStream';
const placementArb = fc.oneof(
  { weight: 10, arbitrary: fc.constant<Placement>('ctx') },
  { weight: 3, arbitrary: fc.constantFrom<Placement>('side', 'sideWithCtx') },
  { weight: 2, arbitrary: fc.constantFrom<Placement>('otherStreamWithCtx', 'otherCtx', 'disposedCtx', 'disposedStream', 'junkCtx', 'junkStream') },
);

/** The placement options of a case, and whether they are valid, and on which context the tensor lands. */
function placement(p: Placement, f: Fixtures): { opts: Record<string, unknown>; valid: boolean; ctx: Context } {
  switch (p) {
    case 'ctx':
      return { opts: { context: f.ctx }, valid: true, ctx: f.ctx };
    case 'side':
      return { opts: { stream: f.side }, valid: true, ctx: f.ctx };
    case 'sideWithCtx':
      return { opts: { context: f.ctx, stream: f.side }, valid: true, ctx: f.ctx };
    case 'otherStreamWithCtx':
      return { opts: { context: f.ctx, stream: f.other.stream }, valid: false, ctx: f.ctx };
    case 'otherCtx':
      return { opts: { context: f.other }, valid: true, ctx: f.other };
    case 'disposedCtx':
      return { opts: { context: f.disposedCtx }, valid: false, ctx: f.ctx };
    case 'disposedStream':
      return { opts: { stream: f.disposedStream }, valid: false, ctx: f.ctx };
    case 'junkCtx':
      return { opts: { context: { backend: 'cpu' } }, valid: false, ctx: f.ctx };
    case 'junkStream':
      return { opts: { stream: { context: f.ctx } }, valid: false, ctx: f.ctx };
  }
}

// ---- Tensor.from ----

type DataKind = 'f32' | 'i32' | 'i8' | 'u8' | 'u16' | 'f64' | 'numbers' | 'ints' | 'mixed' | 'junk';
const dataArb: fc.Arbitrary<{ kind: DataKind; data: unknown }> = fc.oneof(
  { weight: 4, arbitrary: fc.float32Array({ maxLength: 48 }).map((data) => ({ kind: 'f32' as DataKind, data })) },
  { weight: 2, arbitrary: fc.int32Array({ maxLength: 48 }).map((data) => ({ kind: 'i32' as DataKind, data })) },
  { weight: 1, arbitrary: fc.int8Array({ maxLength: 48 }).map((data) => ({ kind: 'i8' as DataKind, data })) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 48 }).map((data) => ({ kind: 'u8' as DataKind, data })) },
  { weight: 2, arbitrary: fc.uint16Array({ maxLength: 48 }).map((data) => ({ kind: 'u16' as DataKind, data })) },
  { weight: 1, arbitrary: fc.float64Array({ maxLength: 8 }).map((data) => ({ kind: 'f64' as DataKind, data })) },
  { weight: 3, arbitrary: fc.array(fc.double(), { maxLength: 48 }).map((data) => ({ kind: 'numbers' as DataKind, data })) },
  { weight: 2, arbitrary: fc.array(fc.integer({ min: -300, max: 300 }), { maxLength: 48 }).map((data) => ({ kind: 'ints' as DataKind, data })) },
  { weight: 1, arbitrary: fc.array(fc.oneof(fc.integer(), junk), { minLength: 1, maxLength: 6 }).map((data) => ({ kind: 'mixed' as DataKind, data })) },
  { weight: 1, arbitrary: junk.map((data) => ({ kind: 'junk' as DataKind, data })) },
);

type DimsSpec = { kind: 'none' } | { kind: 'exact'; variant: number } | { kind: 'random'; dims: unknown[] } | { kind: 'junk'; value: unknown };
const dimsSpecArb: fc.Arbitrary<DimsSpec> = fc.oneof(
  { weight: 3, arbitrary: fc.constant<DimsSpec>({ kind: 'none' }) },
  { weight: 6, arbitrary: fc.nat(5).map((variant): DimsSpec => ({ kind: 'exact', variant })) },
  { weight: 2, arbitrary: fc.array(mostly(fc.nat(12)), { maxLength: 4 }).map((dims): DimsSpec => ({ kind: 'random', dims })) },
  { weight: 1, arbitrary: junk.map((value): DimsSpec => ({ kind: 'junk', value })) },
);

/** Dims for `len` elements in one of a few shapes (rank 0 needs len 1). */
function exactDims(len: number, variant: number): number[] {
  let d = 1;
  for (let i = 2; i * i <= len; i++) if (len % i === 0) d = i;
  switch (variant) {
    case 0:
      return [len];
    case 1:
      return [d, len / d];
    case 2:
      return [1, len, 1];
    case 3:
      return len === 1 ? [] : [len, 1];
    case 4:
      return [d, 1, len / d, 1];
    default:
      return len === 0 ? [0, 5, 3] : [len];
  }
}

function dimsOf(spec: DimsSpec, len: number): unknown {
  switch (spec.kind) {
    case 'none':
      return undefined;
    case 'exact':
      return exactDims(len, spec.variant);
    case 'random':
      return spec.dims;
    case 'junk':
      return spec.value;
  }
}

const validDims = (v: unknown): v is number[] =>
  Array.isArray(v) && v.every((d) => typeof d === 'number' && Number.isSafeInteger(d) && d >= 0) && Number.isSafeInteger(v.reduce((a: number, b: number) => a * b, 1));

const dtypeArb = fc.oneof(
  { weight: 3, arbitrary: fc.constant<unknown>(undefined) },
  { weight: 8, arbitrary: fc.constantFrom<unknown>(...DTYPES) },
  { weight: 1, arbitrary: fc.constantFrom<unknown>('float64', 'Float32', 'int16', '', 'half', null, 32) },
);

/**
 * The model of Tensor.from (its JSDoc and ARCHITECTURE.md "Tensors"): undefined when the call must throw,
 * else the dtype, dims and the exact contents toArray() must return.
 */
function modelFrom(data: unknown, dims: unknown, o: unknown, placementValid: boolean): { dtype: DType; dims: number[]; values: ArrayLike<number> } | undefined {
  if (o !== undefined && !isPlainObject(o)) return undefined;
  const opts = (o ?? {}) as Record<string, unknown>;
  if (Object.keys(opts).some((k) => !KNOWN_FROM_OPTIONS.includes(k))) return undefined;
  if (opts.copy !== undefined && typeof opts.copy !== 'boolean') return undefined;
  const dt = opts.dtype;
  if (dt !== undefined && !(DTYPES as readonly unknown[]).includes(dt)) return undefined;
  const dtype = dt as DType | undefined;
  let src: DType;
  let values: number[];
  if (data instanceof Float32Array) [src, values] = ['float32', Array.from(data)];
  else if (data instanceof Int32Array) [src, values] = ['int32', Array.from(data)];
  else if (data instanceof Int8Array) [src, values] = ['int8', Array.from(data)];
  else if (data instanceof Uint8Array) [src, values] = ['uint8', Array.from(data)];
  else if (data instanceof Uint16Array) {
    if (dtype !== 'float16' && dtype !== 'bfloat16') return undefined;
    [src, values] = [dtype, Array.from(data)];
  } else if (Array.isArray(data)) {
    if (dtype === undefined || FLOATS.has(dtype)) {
      if (!data.every((x) => typeof x === 'number')) return undefined;
      [src, values] = ['float32', Array.from(Float32Array.from(data as number[]))];
    } else {
      const [lo, hi] = INT_RANGE[dtype]!;
      if (!data.every((x) => Number.isInteger(x) && (x as number) >= lo && (x as number) <= hi)) return undefined;
      [src, values] = [dtype, (data as number[]).map((x) => x + 0)]; // integer arrays hold no -0
    }
  } else return undefined;
  const out = dtype ?? src;
  if (src !== out && !(FLOATS.has(src) && FLOATS.has(out))) return undefined;
  const shape = dims === undefined ? [values.length] : dims;
  if (!validDims(shape) || shape.reduce((a, b) => a * b, 1) !== values.length) return undefined;
  if (!placementValid) return undefined;
  // Contents: half dtypes hold the float32 values rounded to nearest even (raw bits pass through).
  if (out === 'float16' || out === 'bfloat16') {
    if (data instanceof Uint16Array) return { dtype: out, dims: shape, values: Uint16Array.from(values) };
    return { dtype: out, dims: shape, values: toHalfBits(Float32Array.from(values), out) };
  }
  return { dtype: out, dims: shape, values };
}

function sameValues(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return false;
  return true;
}

// ---- Tensor.empty / zeros with small and huge sizes ----

/** Bytes no device has: 1 TiB, far beyond this machine's host memory and an H200's 141 GB. */
const IMPOSSIBLE_BYTES = 2 ** 40;

/** Small dims, or dims of at least IMPOSSIBLE_BYTES whatever the dtype. */
const sizeArb = fc.oneof(
  { weight: 6, arbitrary: fc.array(fc.nat(9), { maxLength: 4 }) as fc.Arbitrary<unknown[]> },
  { weight: 2, arbitrary: fc.tuple(fc.integer({ min: 40, max: 50 }), fc.nat(2)).map(([log2, r]) => (r === 0 ? [2 ** log2] : r === 1 ? [2 ** (log2 - 20), 2 ** 20] : [3, 2 ** (log2 - 1)]) as unknown[]) },
  { weight: 2, arbitrary: fc.array(mostly(fc.nat(9)), { maxLength: 4 }) as fc.Arbitrary<unknown[]> },
  { weight: 1, arbitrary: fc.constantFrom<unknown[]>([2 ** 53], [2 ** 27, 2 ** 27], [-1], [NaN], [Infinity], [1.5]) },
);

function runtimeProperties(backend: string, getCtx: () => Context, scale: number): void {
  let f: Fixtures;
  const runs = (n: number) => Math.max(20, Math.round(n * scale));
  beforeAll(() => {
    f = makeFixtures(getCtx);
  });
  afterAll(() => {
    f.side.dispose();
    f.other.dispose();
  });

  test('Tensor.from: valid calls hold exactly the data; invalid ones throw a typed error naming the argument and allocate nothing', async () => {
    const mark = await memoryMark(f.ctx);
    const arb = fc.record({ data: dataArb, dims: dimsSpecArb, dtype: dtypeArb, copy: fc.option(mostly(fc.boolean()), { nil: undefined }), place: placementArb, extra: fc.nat(20) });
    await checkAsyncProperty(AREA, `Tensor.from (${backend})`, arb, async (c) => {
      const len = ArrayBuffer.isView(c.data.data) || Array.isArray(c.data.data) ? (c.data.data as { length: number }).length : 0;
      const dims = dimsOf(c.dims, len);
      const pl = placement(c.place, f);
      const opts: Record<string, unknown> = { ...pl.opts };
      if (c.dtype !== undefined) opts.dtype = c.dtype;
      if (c.copy !== undefined) opts.copy = c.copy;
      const options = c.extra === 0 ? { ...opts, colour: 'red' } : c.extra === 1 ? [opts] : opts;
      const want = modelFrom(c.data.data, dims, options, pl.valid);
      const before = pl.ctx.memory().tensors;
      const r = attempt(() => Tensor.from(c.data.data as Float32Array, dims as number[], options as never), ['data', 'dims', 'options'], 'Tensor.from');
      if (!r.ok) {
        if (want !== undefined) throw new Error(`a valid call was rejected: ${String((r.error as Error).message)}`);
        expect(pl.ctx.memory().tensors).toBeLessThanOrEqual(before); // frees of earlier cases may still land
        return;
      }
      const t = r.value;
      try {
        if (want === undefined) throw new Error(`an invalid call was accepted: ${t.toString()}`);
        expect(t.dtype).toBe(want.dtype);
        // -0 is stored as 0 (checkDims), so that dims compare as users expect.
        expect(t.dims).toEqual(want.dims.map((d) => d + 0));
        expect(t.context).toBe(pl.ctx);
        const got = await t.toArray();
        if (!sameValues(got, want.values)) throw new Error(`contents differ: got ${Array.from(got).slice(0, 8)}, want ${Array.from(want.values).slice(0, 8)}`);
      } finally {
        t.dispose();
      }
    }, runs(9000));
    await expectMemoryAt(f.ctx, mark, 'Tensor.from');
  });

  test('Tensor.empty / zeros: small sizes are zero-filled, impossible sizes fail as ERR_OUT_OF_MEMORY carried by the tensor and its consumers', async () => {
    const mark = await memoryMark(f.ctx);
    let huge = 0;
    const arb = fc.record({ dims: sizeArb, dtype: dtypeArb, zeros: fc.boolean(), place: placementArb });
    await checkAsyncProperty(AREA, `Tensor.empty/zeros (${backend})`, arb, async (c) => {
      const pl = placement(c.place, f);
      const options: Record<string, unknown> = { ...pl.opts };
      if (c.dtype !== undefined) options.dtype = c.dtype;
      const dtypeOk = c.dtype === undefined || (DTYPES as readonly unknown[]).includes(c.dtype);
      const valid = validDims(c.dims) && dtypeOk && pl.valid;
      // A valid size between 4 MiB and IMPOSSIBLE_BYTES (2^31 elements from badNumber, say) may well be
      // allocatable: such a case only allocates (lazily committed) and frees, it does not fill gigabytes.
      const bytes = valid ? (c.dims as number[]).reduce((a, b) => a * b, 1) * DTYPE_BYTES[(c.dtype as DType | undefined) ?? 'float32'] : 0;
      const fill = c.zeros && bytes <= 2 ** 22;
      const r = attempt(() => (fill ? Tensor.zeros(c.dims as number[], options as never) : Tensor.empty(c.dims as number[], options as never)), ['dims', 'options'], 'Tensor.zeros');
      if (!r.ok) {
        if (valid) throw new Error(`valid dims rejected: ${(r.error as Error).message}`);
        return;
      }
      const t = r.value;
      try {
        if (!valid) throw new Error(`invalid dims accepted: ${t.toString()}`);
        const bytes = t.byteLength;
        if (bytes >= IMPOSSIBLE_BYTES) {
          huge++;
          // The allocation failed; the tensor carries it, and so does everything computed from it.
          await expect(t.toArray()).rejects.toMatchObject({ code: 'ERR_OUT_OF_MEMORY' });
          if (FLOATS.has(t.dtype)) {
            const derived = t.cast(t.dtype === 'float32' ? 'bfloat16' : 'float32');
            await expect(derived.toArray()).rejects.toMatchObject({ code: 'ERR_OUT_OF_MEMORY' });
            derived.dispose();
          }
          await drain(pl.ctx);
        } else if (fill) {
          const got = await t.toArray();
          expect(got.length).toBe(t.size);
          expect(got.every((x) => x === 0)).toBe(true);
        }
      } finally {
        t.dispose();
      }
    }, runs(4000));
    expect(huge).toBeGreaterThan(0); // the impossible sizes were exercised
    // The context still works after every failed allocation.
    const ok = Tensor.from([1, 2, 3], [3], { context: f.ctx });
    expect(Array.from(await ok.toArray())).toEqual([1, 2, 3]);
    ok.dispose();
    await expectMemoryAt(f.ctx, mark, 'Tensor.empty/zeros');
  });

  test('cast / clone / reshape / toArray / toFloat32Array / dispose: random sequences on random tensors', async () => {
    const mark = await memoryMark(f.ctx);
    const opArb = fc.oneof(
      fc.record({ op: fc.constant('cast' as const), dtype: dtypeArb, options: fc.option(fc.oneof(fc.constant<unknown>({}), fc.constant<unknown>('side'), junk), { nil: undefined }) }),
      fc.record({ op: fc.constant('clone' as const), options: fc.option(fc.oneof(fc.constant<unknown>({}), fc.constant<unknown>('side'), junk), { nil: undefined }) }),
      fc.record({ op: fc.constant('reshape' as const), dims: fc.oneof(fc.nat(5).map((v) => ({ exact: v }) as unknown), fc.array(mostly(fc.nat(8)), { maxLength: 4 }), junk) }),
      fc.record({ op: fc.constant('read' as const), f32: fc.boolean(), options: fc.option(fc.oneof(fc.constant<unknown>('side'), fc.constant<unknown>({}), junk), { nil: undefined }) }),
      fc.record({ op: fc.constant('dispose' as const) }),
    );
    const arb = fc.record({ dtype: fc.constantFrom(...DTYPES), values: fc.array(fc.integer({ min: -100, max: 100 }), { minLength: 1, maxLength: 24 }), ops: fc.array(opArb, { minLength: 1, maxLength: 6 }) });
    await checkAsyncProperty(AREA, `tensor ops (${backend})`, arb, async (c) => {
      // Integer values in [-100, 100] are exact in every dtype: expectations stay simple and exact.
      const ints = c.dtype === 'uint8' ? c.values.map((v) => Math.abs(v)) : c.values;
      let cur: { t: Tensor; values: number[] } = { t: Tensor.from(ints, [ints.length], { dtype: c.dtype, context: f.ctx }), values: ints };
      const live: Tensor[] = [cur.t];
      const resolveOpts = (o: unknown) => (o === 'side' ? { stream: f.side } : o);
      const optionsValid = (o: unknown) => o === undefined || o === 'side' || (isPlainObject(o) && Object.keys(o).length === 0);
      try {
        for (const op of c.ops) {
          const disposed = cur.t.isDisposed;
          switch (op.op) {
            case 'cast': {
              const target = op.dtype;
              const known = (DTYPES as readonly unknown[]).includes(target);
              const valid = !disposed && known && (target === cur.t.dtype || (FLOATS.has(target as DType) && FLOATS.has(cur.t.dtype))) && optionsValid(op.options);
              const r = attempt(() => cur.t.cast(target as DType, resolveOpts(op.options) as never), ['dtype', 'options', 'tensor'], 'cast');
              if (!r.ok) {
                if (valid) throw new Error(`cast to ${String(target)} rejected: ${(r.error as Error).message}`);
                break;
              }
              live.push(r.value);
              if (!valid) throw new Error(`invalid cast to ${String(target)} accepted`);
              cur = { t: r.value, values: cur.values };
              break;
            }
            case 'clone': {
              const valid = !disposed && optionsValid(op.options);
              const r = attempt(() => cur.t.clone(resolveOpts(op.options) as never), ['options', 'tensor'], 'clone');
              if (!r.ok) {
                if (valid) throw new Error(`clone rejected: ${(r.error as Error).message}`);
                break;
              }
              live.push(r.value);
              if (!valid) throw new Error('invalid clone accepted');
              cur = { t: r.value, values: cur.values };
              break;
            }
            case 'reshape': {
              const dims = isPlainObject(op.dims) && 'exact' in op.dims ? exactDims(cur.t.size, op.dims.exact as number) : op.dims;
              const valid = !disposed && validDims(dims) && dims.reduce((a, b) => a * b, 1) === cur.t.size;
              const r = attempt(() => cur.t.reshape(dims as number[]), ['dims', 'tensor'], 'reshape');
              if (!r.ok) {
                if (valid) throw new Error(`reshape to ${JSON.stringify(dims)} rejected: ${(r.error as Error).message}`);
                break;
              }
              live.push(r.value);
              if (!valid) throw new Error(`invalid reshape to ${String(dims)} accepted`);
              expect(r.value.dims).toEqual((dims as number[]).map((d) => d + 0));
              cur = { t: r.value, values: cur.values };
              break;
            }
            case 'read': {
              const wantF32 = op.f32;
              const valid = !disposed && optionsValid(op.options) && (!wantF32 || FLOATS.has(cur.t.dtype));
              let got: ArrayLike<number> | undefined;
              let error: unknown;
              try {
                got = wantF32 ? await cur.t.toFloat32Array(resolveOpts(op.options) as never) : await cur.t.toArray(resolveOpts(op.options) as never);
              } catch (e) {
                error = e;
              }
              if (error !== undefined) {
                const kind = attempt(() => {
                  throw error;
                }, ['options', 'tensor', 'toFloat32Array', 'stream'], 'read');
                if (valid) throw new Error(`read rejected (${kind.ok ? '' : kind.outcome}): ${(error as Error).message}`);
                break;
              }
              if (!valid) throw new Error('invalid read accepted');
              const want = wantF32 || !(cur.t.dtype === 'float16' || cur.t.dtype === 'bfloat16') ? cur.values : Array.from(toHalfBits(Float32Array.from(cur.values), cur.t.dtype));
              if (!sameValues(Array.from(got!), want)) throw new Error(`read ${Array.from(got!).slice(0, 6)} want ${want.slice(0, 6)}`);
              break;
            }
            case 'dispose':
              cur.t.dispose();
              expect(cur.t.location).toBe('none');
              break;
          }
        }
      } finally {
        for (const t of live) t.dispose();
      }
    }, runs(6000));
    await expectMemoryAt(f.ctx, mark, 'tensor ops');
  });

  test('Context options: device, deviceIndex, maxDeviceBytes (NaN, negative, fractional, huge, junk); a cap is enforced as ERR_OUT_OF_MEMORY and the context keeps working', async () => {
    const cudaOk = cudaUsable();
    const arb = fc.record({
      device: fc.oneof({ weight: 4, arbitrary: fc.constant<unknown>(backend) }, { weight: 1, arbitrary: fc.constantFrom<unknown>('cpu', 'cuda', 'auto', 'gpu', '', 'CPU', undefined) }, { weight: 1, arbitrary: junk }),
      deviceIndex: fc.option(fc.oneof({ weight: 3, arbitrary: fc.constant<unknown>(0) }, { weight: 1, arbitrary: badNumber }, { weight: 1, arbitrary: junk }), { nil: undefined }),
      maxDeviceBytes: fc.option(fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 0, max: 1 << 16 }) as fc.Arbitrary<unknown> }, { weight: 1, arbitrary: badNumber }, { weight: 1, arbitrary: junk }), { nil: undefined }),
      alloc: fc.integer({ min: 0, max: 1 << 15 }),
      shape: fc.oneof({ weight: 10, arbitrary: fc.constant('object') }, { weight: 1, arbitrary: fc.constantFrom('array', 'unknownKey', 'null') }),
    });
    await checkAsyncProperty(AREA, `Context options (${backend})`, arb, async (c) => {
      const o: Record<string, unknown> = {};
      if (c.device !== undefined) o.device = c.device;
      if (c.deviceIndex !== undefined) o.deviceIndex = c.deviceIndex;
      if (c.maxDeviceBytes !== undefined) o.maxDeviceBytes = c.maxDeviceBytes;
      const options = c.shape === 'array' ? [o] : c.shape === 'unknownKey' ? { ...o, gpu: true } : c.shape === 'null' ? null : o;
      const device = c.device === undefined ? 'auto' : c.device;
      const deviceOk = device === 'cpu' || ((device === 'cuda' || device === 'auto') && (cudaOk || device === 'auto'));
      const isInt = (v: unknown, lo: number, hi: number) => typeof v === 'number' && Number.isSafeInteger(v) && v >= lo && v <= hi;
      // deviceIndex 0 always exists where CUDA does; other indices are outside this property.
      const valid =
        c.shape === 'object' &&
        deviceOk &&
        (c.deviceIndex === undefined || c.deviceIndex === 0) &&
        (c.maxDeviceBytes === undefined || isInt(c.maxDeviceBytes, 0, Number.MAX_SAFE_INTEGER));
      const r = attempt(() => new Context(options as never), ['options', 'device', 'deviceIndex', 'maxDeviceBytes'], 'Context', ['ERR_CUDA_UNAVAILABLE']);
      if (!r.ok) {
        // Asking for CUDA where it is unusable is a CudaUnavailableError (ERR_CUDA_UNAVAILABLE), also typed.
        if (valid) throw new Error(`valid options rejected: ${(r.error as Error).message}`);
        return;
      }
      const ctx = r.value;
      try {
        if (!valid) throw new Error(`invalid options accepted: ${JSON.stringify(o)}`);
        const cap = (c.maxDeviceBytes as number | undefined) ?? 0;
        const elems = c.alloc;
        const t = Tensor.from(new Float32Array(elems).fill(1.5), [elems], { context: ctx });
        if (cap > 0 && elems * 4 > cap) {
          await expect(t.toArray()).rejects.toMatchObject({ code: 'ERR_OUT_OF_MEMORY' });
          await expect(ctx.synchronize()).rejects.toMatchObject({ code: 'ERR_OUT_OF_MEMORY' });
        } else {
          const got = await t.toArray();
          expect(got.length === elems && got.every((x) => x === 1.5)).toBe(true);
        }
        t.dispose();
        // Afterwards the context works within its cap.
        const small = Tensor.from([7], [1], { context: ctx });
        if (cap === 0 || cap >= 4) expect(Array.from(await small.toArray())).toEqual([7]);
        else await expect(small.toArray()).rejects.toMatchObject({ code: 'ERR_OUT_OF_MEMORY' });
        small.dispose();
        await drain(ctx);
        expect(ctx.memory().tensors).toBe(0);
      } finally {
        ctx.dispose();
      }
    }, runs(2000));
  });

  test('streams: ops refuse a disposed stream, a stream of another context and non-streams; createStream on a disposed context throws', () => {
    const ctx = f.ctx;
    const arb = fc.record({ which: fc.constantFrom('disposed', 'other', 'junk', 'object', 'live'), op: fc.constantFrom('from', 'zeros', 'cast', 'clone', 'create') });
    const base = Tensor.from([1, 2], [2], { context: ctx });
    try {
      checkProperty(AREA, `streams (${backend})`, arb, (c) => {
        const s = c.which === 'disposed' ? f.disposedStream : c.which === 'other' ? f.other.stream : c.which === 'junk' ? 5 : c.which === 'object' ? { context: ctx, synchronize: () => 0 } : f.side;
        const before = ctx.memory().tensors;
        const r = attempt(
          () => {
            switch (c.op) {
              case 'from':
                return Tensor.from([1], [1], { context: ctx, stream: s as Stream });
              case 'zeros':
                return Tensor.zeros([1], { context: ctx, stream: s as Stream });
              case 'cast':
                return base.cast('float16', { stream: s as Stream });
              case 'clone':
                return base.clone({ stream: s as Stream });
              case 'create':
                return f.disposedCtx.createStream();
            }
          },
          ['options', 'stream', 'context'],
          'stream',
        );
        const valid = c.op !== 'create' && c.which === 'live';
        if (r.ok) {
          (r.value as { dispose(): void }).dispose();
          if (!valid) throw new Error(`${c.op} accepted stream kind ${c.which}`);
        } else {
          if (valid) throw new Error(`${c.op} rejected a live stream: ${(r.error as Error).message}`);
          expect(ctx.memory().tensors).toBeLessThanOrEqual(before); // nothing allocated (earlier frees may land)
        }
      }, runs(5000));
    } finally {
      base.dispose();
    }
  });
}

describe('runtime properties on cpu', () => {
  runtimeProperties('cpu', cpuContext, 1);
});

// The same properties on the GPU (the argument checks are shared; allocation, copies and conversions are
// the device's own), with fewer cases: the CPU run carries the case budget.
describeGpu('runtime properties on cuda', () => {
  if (cudaUsable() || REQUIRE_GPU) runtimeProperties('cuda', gpuContext, 0.25);
});
