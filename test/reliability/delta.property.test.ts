/**
 * Property tests of DeltaLinear: construction with random weights, biases and options (NaN / Infinity /
 * negative thresholds and quantisation steps, per-channel thresholds with bad entries or lengths, bad modes,
 * refresh counts, fallback densities), states with random stream counts (negative, fractional, huge: an
 * allocation no device holds fails as ERR_OUT_OF_MEMORY carried by the state), and steps with random inputs,
 * stream ids (duplicates, out of range, negative, non-integers, wrong lengths, device tensors), outputs and
 * streams. Each case is judged against a model of the documented rules: valid calls succeed with outputs of
 * the documented dims, invalid ones throw a typed error naming an argument, and nothing leaks. Valid small
 * runs are checked step by step against the float64 reference (fire decisions exactly, y within the spec's
 * error bound); out-of-range device-resident stream ids fail the step with ERR_INVALID_ARG (CPU) and the state
 * recovers with reset().
 */
import type { Context } from '../../lib/context';
import { DeltaLinear, type DeltaState } from '../../lib/delta';
import type { FloatDType } from '../../lib/dtype';
import { Tensor } from '../../lib/tensor';
import { type Recorded, buildLayer, checkRecorded, roundTo } from '../delta/common';
import { cpuContext, cudaUsable, describeGpu, gpuContext, REQUIRE_GPU } from '../helpers/gpu';
import { Rng } from '../helpers/random';
import { type CaseArea } from './helpers/budget';
import { normalsFrom } from './helpers/data';
import { attempt, badNumber, checkAsyncProperty, checkProperty, drain, expectCaseBudget, expectMemoryAt, fc, isPlainObject, junk, memoryMark, mostly } from './helpers/fc';
import { opFixtures } from './helpers/fixtures';

const AREA: CaseArea = 'delta';
expectCaseBudget(AREA);

const INT32_MAX = 2 ** 31 - 1;
const isInt = (v: unknown, lo: number, hi: number): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= lo && v <= hi;
const isNum = (v: unknown): v is number => typeof v === 'number';
const FLOATS = ['float32', 'float16', 'bfloat16'];
const NAMES = ['weight', 'bias', 'options', 'streams', 'state', 'x', 'streamIds', 'layer'];
const LINEAR_KEYS = ['threshold', 'mode', 'quantStep', 'refreshEvery', 'denseFallbackDensity', 'stream'];


function deltaProperties(backend: string, getCtx: () => Context, scale: number): void {
  const cuda = backend === 'cuda';
  const f = opFixtures(getCtx);
  const runs = (n: number) => Math.max(20, Math.round(n * scale));
  const streamOf = (s: unknown): { value: unknown; ok: boolean } =>
    s === 'side' ? { value: f.side, ok: true } : s === 'other' ? { value: f.other.stream, ok: false } : s === 'disposed' ? { value: f.disposedStream, ok: false } : { value: s, ok: false };

  test('new DeltaLinear: random weights, biases and options end in a typed error naming the argument, or a layer of the documented geometry', async () => {
    const mark = await memoryMark(f.ctx);
    const thresholdArb = fc.oneof(
      { weight: 6, arbitrary: fc.double({ min: 0, max: 1, noNaN: true }) as fc.Arbitrary<unknown> },
      { weight: 1, arbitrary: fc.constantFrom<unknown>(-0.1, NaN, Infinity, -Infinity, '0.1', null) },
      { weight: 2, arbitrary: fc.record({ kind: fc.constantFrom('f32', 'array', 'tensor'), lenDelta: fc.constantFrom(0, 0, 0, -1, 1), bad: fc.constantFrom<unknown>(undefined, undefined, undefined, -1, NaN, Infinity, 'x') }) },
    );
    const arb = fc.record({
      m: fc.nat(12),
      k: fc.nat(12),
      wRank: fc.oneof({ weight: 15, arbitrary: fc.constant(2) }, { weight: 1, arbitrary: fc.constantFrom(1, 3) }),
      wDtype: fc.oneof({ weight: 10, arbitrary: fc.constantFrom('float32', 'float16', 'bfloat16') }, { weight: 1, arbitrary: fc.constantFrom('int32', 'uint8') }),
      wKind: fc.oneof({ weight: 15, arbitrary: fc.constant('ok') }, { weight: 1, arbitrary: fc.constantFrom('disposed', 'notTensor') }),
      bias: fc.oneof({ weight: 5, arbitrary: fc.constantFrom('none', 'null', 'ok', 'okHalf') }, { weight: 1, arbitrary: fc.constantFrom('long', 'int', 'disposed', 'foreign', 'junk') }),
      options: fc.oneof(
        { weight: 12, arbitrary: fc.record({ threshold: thresholdArb, mode: mostly(fc.constantFrom('reference', 'quantized'), 8), quantStep: mostly(fc.double({ min: 0.01, max: 1, noNaN: true }), 6), refreshEvery: mostly(fc.nat(100), 8), denseFallbackDensity: mostly(fc.double({ min: 0, max: 1, noNaN: true }), 8), stream: fc.constantFrom<unknown>('side', 'side', 'other', 'disposed', 1) }, { requiredKeys: [] }) as fc.Arbitrary<unknown> },
        { weight: 1, arbitrary: fc.constantFrom<unknown>(undefined, null, 3, [], { thresh: 0.1 }) },
      ),
    });
    checkProperty(AREA, `DeltaLinear constructor (${backend})`, arb, (c) => {
      const made: Tensor[] = [];
      const T = (dims: number[], dtype: string, on = f.ctx) => {
        const t = Tensor.zeros(dims, { dtype: dtype as FloatDType, context: on });
        made.push(t);
        return t;
      };
      const wDims = c.wRank === 2 ? [c.m, c.k] : c.wRank === 1 ? [c.m * c.k] : [1, c.m, c.k];
      const w = T(wDims, c.wDtype);
      if (c.wKind === 'disposed') w.dispose();
      let bias: unknown;
      let biasOk = true;
      switch (c.bias) {
        case 'none':
          bias = undefined;
          break;
        case 'null':
          bias = null;
          break;
        case 'ok':
          bias = T([c.m], 'float32');
          break;
        case 'okHalf':
          bias = T([c.m], 'bfloat16');
          break;
        case 'long':
          bias = T([c.m + 1], 'float32');
          biasOk = false;
          break;
        case 'int':
          bias = T([c.m], 'int32');
          biasOk = false;
          break;
        case 'disposed':
          bias = T([c.m], 'float32');
          (bias as Tensor).dispose();
          biasOk = false;
          break;
        case 'foreign':
          bias = T([c.m], 'float32', f.other);
          biasOk = false;
          break;
        case 'junk':
          bias = new Float32Array(c.m);
          biasOk = false;
          break;
      }
      // Options and their model (DeltaLinearOptions).
      let options = c.options;
      let optionsOk = options === undefined;
      if (isPlainObject(options)) {
        const o: Record<string, unknown> = { ...options };
        let ok = Object.keys(o).every((key) => LINEAR_KEYS.includes(key));
        if ('stream' in o) {
          const s = streamOf(o.stream);
          o.stream = s.value;
          ok &&= s.ok;
        }
        const mode = o.mode === undefined ? 'reference' : o.mode;
        ok &&= mode === 'reference' || mode === 'quantized';
        if (mode === 'quantized') {
          ok &&= isNum(o.quantStep) && Number.isFinite(o.quantStep) && Math.fround(o.quantStep) > 0 && Number.isFinite(Math.fround(o.quantStep));
          ok &&= o.threshold === undefined;
        } else ok &&= o.quantStep === undefined;
        ok &&= o.refreshEvery === undefined || isInt(o.refreshEvery, 0, INT32_MAX);
        ok &&= o.denseFallbackDensity === undefined || (isNum(o.denseFallbackDensity) && o.denseFallbackDensity >= 0 && o.denseFallbackDensity <= 1);
        const th = o.threshold;
        if (isPlainObject(th) && 'kind' in th) {
          const len = Math.max(0, c.k + (th.lenDelta as number));
          const vals = Array.from({ length: len }, (_, i) => (i === 0 && th.bad !== undefined ? th.bad : 0.05 * (i + 1)));
          if (th.kind === 'f32') o.threshold = Float32Array.from(vals as number[]);
          else if (th.kind === 'array') o.threshold = vals;
          else {
            const t = Tensor.from(Float32Array.from(vals as number[]), [len], { context: f.ctx });
            made.push(t);
            o.threshold = t;
          }
          if (th.kind === 'tensor') ok &&= len === c.k; // values are checked asynchronously (layer.ready)
          else ok &&= len === c.k && vals.every((v) => isNum(v) && v >= 0 && Number.isFinite(v) && (th.kind !== 'f32' || Number.isFinite(Math.fround(v))));
        } else if (mode !== 'quantized' || th !== undefined) {
          ok &&= th === undefined || (isNum(th) && th >= 0 && Number.isFinite(th));
        }
        optionsOk = ok;
        options = o;
      }
      const valid = c.wKind === 'ok' && c.wRank === 2 && FLOATS.includes(c.wDtype) && biasOk && optionsOk;
      const before = f.ctx.memory().tensors;
      const r = attempt(() => new DeltaLinear((c.wKind === 'notTensor' ? {} : w) as Tensor, bias as Tensor, options as never), NAMES, 'DeltaLinear');
      try {
        if (!r.ok) {
          if (valid) throw new Error(`valid DeltaLinear rejected: ${(r.error as Error).message}`);
          expect(f.ctx.memory().tensors).toBeLessThanOrEqual(before);
          return;
        }
        const layer = r.value;
        try {
          if (!valid) throw new Error(`invalid DeltaLinear accepted: ${fc.stringify(c)}`);
          expect(layer.inFeatures).toBe(c.k);
          expect(layer.outFeatures).toBe(c.m);
          expect(layer.weightDtype).toBe(c.wDtype);
        } finally {
          layer.dispose();
        }
      } finally {
        for (const t of made) t.dispose();
      }
    }, runs(cuda ? 1500 : 6500));
    await expectMemoryAt(f.ctx, mark, 'DeltaLinear constructor');
  });

  // A pool of layers for the step property: built once (their weights are not under test here).
  let layers: DeltaLinear[];
  beforeAll(() => {
    const mk = (m: number, k: number, dtype: FloatDType, mode: 'reference' | 'quantized') => {
      const w = Tensor.from(normalsFrom(m * 13 + k, m * k, 0.3), [m, k], { context: f.ctx });
      const wd = dtype === 'float32' ? w : w.cast(dtype);
      const layer = new DeltaLinear(wd, null, mode === 'quantized' ? { mode, quantStep: 0.05 } : { threshold: 0.05 });
      w.dispose();
      wd.dispose();
      return layer;
    };
    layers = [mk(5, 7, 'float32', 'reference'), mk(3, 9, 'bfloat16', 'quantized'), mk(8, 1, 'float16', 'reference'), mk(0, 4, 'float32', 'reference'), mk(4, 0, 'float32', 'reference')];
  });
  afterAll(() => {
    for (const l of layers) l.dispose();
  });

  test('createState / step: random stream counts, inputs, stream ids, outputs and streams end in a typed error naming the argument, or outputs of the documented dims', async () => {
    const mark = await memoryMark(f.ctx);
    const idsArb = fc.oneof(
      { weight: 6, arbitrary: fc.constant<unknown>('none') },
      { weight: 4, arbitrary: fc.constantFrom<unknown>('perm', 'permArray', 'tensor') },
      { weight: 2, arbitrary: fc.constantFrom<unknown>('dup', 'neg', 'S', 'frac', 'nan', 'short', 'long', 'string', 'tensorDims', 'tensorFloat', 'junk') },
    );
    const arb = fc.record({
      layer: fc.nat(),
      // Huge valid counts are the next test's business (an allocatable one would fill gigabytes here).
      streams: fc.oneof({ weight: 12, arbitrary: fc.integer({ min: 0, max: 5 }) as fc.Arbitrary<unknown> }, { weight: 1, arbitrary: badNumber.filter((v) => !(isInt(v, 64, INT32_MAX))) }, { weight: 1, arbitrary: junk }),
      stateKind: fc.oneof({ weight: 15, arbitrary: fc.constant('own') }, { weight: 1, arbitrary: fc.constantFrom('otherLayer', 'disposed', 'junk') }),
      rows: fc.integer({ min: 0, max: 6 }),
      kDelta: fc.oneof({ weight: 12, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.constantFrom(-1, 1) }),
      xRank: fc.oneof({ weight: 15, arbitrary: fc.constant(2) }, { weight: 1, arbitrary: fc.constantFrom(1, 3) }),
      xDtype: fc.oneof({ weight: 10, arbitrary: fc.constantFrom('float32', 'float16', 'bfloat16') }, { weight: 1, arbitrary: fc.constant('int32') }),
      xKind: fc.oneof({ weight: 15, arbitrary: fc.constant('ok') }, { weight: 1, arbitrary: fc.constantFrom('disposed', 'foreign', 'notTensor') }),
      ids: idsArb,
      activation: fc.option(mostly(fc.constantFrom('none', 'relu', 'gelu', 'silu'), 12), { nil: undefined }),
      out: fc.oneof({ weight: 6, arbitrary: fc.constant('none') }, { weight: 3, arbitrary: fc.constant('ok') }, { weight: 1, arbitrary: fc.constantFrom('dims', 'dtype', 'x', 'disposed', 'junk') }),
      stream: fc.oneof({ weight: 10, arbitrary: fc.constant<unknown>(undefined) }, { weight: 1, arbitrary: fc.constantFrom<unknown>('side', 'other', 'disposed', 2) }),
      optionsForm: fc.oneof({ weight: 20, arbitrary: fc.constant('object') }, { weight: 1, arbitrary: fc.constantFrom('null', 'array', 'unknownKey') }),
    });
    checkProperty(AREA, `DeltaLinear.step (${backend})`, arb, (c) => {
      const layer = layers[c.layer % layers.length]!;
      const made: Array<{ dispose(): void }> = [];
      const before = f.ctx.memory().tensors;
      // createState
      const sOk = isInt(c.streams, 0, INT32_MAX);
      const rs = attempt(() => layer.createState(c.streams as number), NAMES, 'createState');
      if (!rs.ok) {
        if (sOk) throw new Error(`valid createState(${String(c.streams)}) rejected: ${(rs.error as Error).message}`);
        expect(f.ctx.memory().tensors).toBeLessThanOrEqual(before);
        return;
      }
      if (!sOk) throw new Error(`invalid createState(${String(c.streams)}) accepted`);
      const own = rs.value;
      made.push(own);
      try {
        const S = own.streams;
        let state: unknown = own;
        if (c.stateKind === 'otherLayer') {
          state = layers[(c.layer + 1) % layers.length]!.createState(S);
          made.push(state as DeltaState);
        } else if (c.stateKind === 'disposed') own.dispose();
        else if (c.stateKind === 'junk') state = { streams: S };
        const K = layer.inFeatures;
        const M = layer.outFeatures;
        const s = c.rows;
        const xDims = c.xRank === 2 ? [s, Math.max(0, K + c.kDelta)] : c.xRank === 1 ? [s * K] : [1, s, K];
        const x = Tensor.zeros(xDims, { dtype: c.xDtype as FloatDType, context: c.xKind === 'foreign' ? f.other : f.ctx });
        made.push(x);
        if (c.xKind === 'disposed') x.dispose();
        const options: Record<string, unknown> = {};
        let idsOk = true;
        const perm = Array.from({ length: s }, (_, i) => (S - 1 - i) % Math.max(S, 1));
        switch (c.ids) {
          case 'perm':
            options.streamIds = Int32Array.from(perm);
            break;
          case 'permArray':
            options.streamIds = perm;
            break;
          case 'tensor': {
            const t = Tensor.from(Int32Array.from(perm), [s], { context: f.ctx });
            made.push(t);
            options.streamIds = t;
            break;
          }
          case 'dup':
            options.streamIds = s >= 2 ? [0, ...new Array<number>(s - 1).fill(0)] : perm;
            idsOk = s < 2;
            break;
          case 'neg':
            options.streamIds = perm.map((v, i) => (i === 0 ? -1 : v));
            idsOk = s === 0;
            break;
          case 'S':
            options.streamIds = perm.map((v, i) => (i === 0 ? S : v));
            idsOk = s === 0;
            break;
          case 'frac':
            options.streamIds = perm.map((v, i) => (i === 0 ? v + 0.5 : v));
            idsOk = s === 0;
            break;
          case 'nan':
            options.streamIds = perm.map((v, i) => (i === 0 ? NaN : v));
            idsOk = s === 0;
            break;
          case 'string':
            options.streamIds = perm.map((v, i) => (i === 0 ? String(v) : v));
            idsOk = s === 0;
            break;
          case 'short':
            options.streamIds = perm.slice(1);
            idsOk = s === 0;
            break;
          case 'long':
            options.streamIds = [...perm, S];
            idsOk = false;
            break;
          case 'tensorDims': {
            const t = Tensor.from(new Int32Array(s + 1), [s + 1], { context: f.ctx });
            made.push(t);
            options.streamIds = t;
            idsOk = false;
            break;
          }
          case 'tensorFloat': {
            const t = Tensor.zeros([s], { context: f.ctx });
            made.push(t);
            options.streamIds = t;
            idsOk = false;
            break;
          }
          case 'junk':
            options.streamIds = 'ids';
            idsOk = false;
            break;
        }
        // Ids within [0, S) and unique only when s <= S: perm repeats otherwise.
        if (s > S && ['perm', 'permArray', 'tensor'].includes(c.ids as string)) idsOk = c.ids === 'tensor' ? idsOk : false;
        if (c.activation !== undefined) options.activation = c.activation;
        let outOk = true;
        const yDims = [s, M];
        switch (c.out) {
          case 'ok': {
            const o = Tensor.zeros(yDims, { dtype: c.xDtype as FloatDType, context: f.ctx });
            made.push(o);
            options.out = o;
            break;
          }
          case 'dims': {
            const o = Tensor.zeros([s, M + 1], { dtype: c.xDtype as FloatDType, context: f.ctx });
            made.push(o);
            options.out = o;
            outOk = false;
            break;
          }
          case 'dtype': {
            const o = Tensor.zeros(yDims, { dtype: c.xDtype === 'float32' ? 'bfloat16' : 'float32', context: f.ctx });
            made.push(o);
            options.out = o;
            outOk = false;
            break;
          }
          case 'x':
            options.out = x;
            outOk = false; // x itself (dims [s, K] unless K == M: then still refused, it aliases x)
            break;
          case 'disposed': {
            const o = Tensor.zeros(yDims, { dtype: c.xDtype as FloatDType, context: f.ctx });
            o.dispose();
            options.out = o;
            outOk = false;
            break;
          }
          case 'junk':
            options.out = new Float32Array(s * M);
            outOk = false;
            break;
        }
        let streamOk = true;
        if (c.stream !== undefined) {
          const st = streamOf(c.stream);
          options.stream = st.value;
          streamOk = st.ok;
        }
        const opts = c.optionsForm === 'null' ? null : c.optionsForm === 'array' ? [options] : c.optionsForm === 'unknownKey' ? { ...options, ids: [0] } : options;
        const valid =
          c.optionsForm === 'object' &&
          c.stateKind === 'own' &&
          c.xKind === 'ok' &&
          c.xRank === 2 &&
          xDims[1] === K &&
          FLOATS.includes(c.xDtype) &&
          s <= S &&
          idsOk &&
          outOk &&
          streamOk &&
          (c.activation === undefined || ['none', 'relu', 'gelu', 'silu'].includes(c.activation as string));
        const r = attempt(() => layer.step(state as DeltaState, (c.xKind === 'notTensor' ? [] : x) as Tensor, opts as never), NAMES, 'step');
        if (!r.ok) {
          if (valid) throw new Error(`valid step rejected: ${(r.error as Error).message}`);
          return;
        }
        made.push(r.value.active);
        if (r.value.y !== options.out) made.push(r.value.y);
        if (!valid) throw new Error(`invalid step accepted: ${fc.stringify(c)}`);
        expect(r.value.y.dims).toEqual(yDims);
        expect(r.value.y.dtype).toBe(c.xDtype);
        expect(r.value.active.dims).toEqual([s]);
      } finally {
        for (const d of made) d.dispose();
      }
    }, runs(cuda ? 2000 : 9000));
    await expectMemoryAt(f.ctx, mark, 'DeltaLinear.step');
  });

  test('huge states fail as ERR_OUT_OF_MEMORY carried by the state and its steps, holding no memory; the layer keeps working', async () => {
    const K = 256;
    const w = Tensor.from(normalsFrom(3, 2 * K, 0.1), [2, K], { context: f.ctx });
    const layer = new DeltaLinear(w, null);
    w.dispose();
    const mark = await memoryMark(f.ctx);
    // x_ref alone is 2 x (2^31 - 1) x 256 floats (4 TiB): no device holds that. The buffers that would fit
    // (steps, parity: 8 + 2 GiB) must not be kept, let alone zero-filled.
    const state = layer.createState(2 ** 31 - 1);
    expect(f.ctx.memory().tensors).toBe(mark.tensors);
    expect(f.ctx.memory().hostBytes + f.ctx.memory().deviceBytes).toBe(mark.hostBytes + mark.deviceBytes);
    const x = Tensor.from(normalsFrom(1, 2 * layer.inFeatures), [2, layer.inFeatures], { context: f.ctx });
    const { y, active } = layer.step(state, x);
    await expect(y.toArray()).rejects.toMatchObject({ code: 'ERR_OUT_OF_MEMORY' });
    await expect(active.toArray()).rejects.toMatchObject({ code: 'ERR_OUT_OF_MEMORY' });
    await expect(state.read()).rejects.toMatchObject({ code: 'ERR_OUT_OF_MEMORY' });
    for (const t of [y, active, state]) t.dispose();
    await drain(f.ctx);
    const small = layer.createState(2);
    const r = layer.step(small, x);
    expect((await r.y.toArray()).length).toBe(2 * layer.outFeatures);
    for (const t of [r.y, r.active, small, x, layer]) t.dispose();
  });

  test('valid small runs match the float64 reference step by step (fire decisions exactly, y within the error bound); bad device ids fail the step and reset() recovers', async () => {
    const mark = await memoryMark(f.ctx);
    const arb = fc.record({
      m: fc.integer({ min: 1, max: 9 }),
      k: fc.integer({ min: 1, max: 11 }),
      S: fc.integer({ min: 1, max: 4 }),
      dtype: fc.constantFrom<FloatDType>('float32', 'float16', 'bfloat16'),
      mode: fc.constantFrom<'reference' | 'quantized'>('reference', 'quantized'),
      threshold: fc.double({ min: 0, max: 0.3, noNaN: true }),
      refreshEvery: fc.constantFrom(0, 0, 3),
      steps: fc.array(fc.record({ rows: fc.nat(), sigma: fc.constantFrom(0.01, 0.1, 1), badIds: fc.oneof({ weight: 12, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }) }), { minLength: 1, maxLength: 8 }),
      seed: fc.integer(),
    });
    await checkAsyncProperty(AREA, `DeltaLinear values (${backend})`, arb, async (c) => {
      const options = c.mode === 'quantized' ? { mode: c.mode, quantStep: 0.05 + c.threshold, refreshEvery: c.refreshEvery } : { threshold: c.threshold, refreshEvery: c.refreshEvery };
      const b = buildLayer(f.ctx, new Rng(c.seed), { M: c.m, K: c.k, S: c.S, dtype: c.dtype, options });
      const rec: Recorded[] = [];
      const xs = normalsFrom(c.seed + 1, c.S * c.k);
      let n = 0;
      try {
        for (const st of c.steps) {
          // A random subset of the streams, in a random order.
          const order = Array.from({ length: c.S }, (_, i) => i).sort((a, z) => ((a * 7919 + st.rows) % 13) - ((z * 7919 + st.rows) % 13));
          const ids = order.slice(0, 1 + (st.rows % c.S));
          const noise = normalsFrom(c.seed + 2 + n++, ids.length * c.k, st.sigma);
          const xv = new Float32Array(ids.length * c.k);
          ids.forEach((sid, r) => {
            for (let q = 0; q < c.k; q++) xs[sid * c.k + q] = xs[sid * c.k + q]! + noise[r * c.k + q]!;
            xv.set(xs.subarray(sid * c.k, (sid + 1) * c.k), r * c.k);
          });
          const exact = roundTo(xv, c.dtype);
          const x = c.dtype === 'float32' ? Tensor.from(exact, [ids.length, c.k], { context: f.ctx }) : Tensor.from(exact, [ids.length, c.k], { dtype: c.dtype, context: f.ctx });
          if (st.badIds && !cuda) {
            // A device-resident id out of range is not read back on the host: on the CPU the step fails with
            // ERR_INVALID_ARG and the state carries the error until reset() (CUDA gives that row NaN, -1).
            const bad = Tensor.from(Int32Array.from(ids.map((v, i) => (i === 0 ? c.S + 5 : v))), [ids.length], { context: f.ctx });
            const r = b.layer.step(b.state, x, { streamIds: bad });
            await expect(r.y.toArray()).rejects.toMatchObject({ code: 'ERR_INVALID_ARG' });
            const r2 = b.layer.step(b.state, x, { streamIds: ids });
            await expect(r2.y.toArray()).rejects.toMatchObject({ code: 'ERR_INVALID_ARG' });
            for (const t of [bad, r.y, r.active, r2.y, r2.active]) t.dispose();
            await drain(f.ctx);
            b.state.reset();
            b.ref.reset();
          }
          const { y, active } = b.layer.step(b.state, x, { streamIds: Int32Array.from(ids) });
          x.dispose();
          rec.push({ y, active, ref: b.ref.step(exact, ids.length, ids), label: `step ${rec.length} (case seed ${c.seed})`, dtype: c.dtype });
        }
        await checkRecorded(rec, c.m, { bound: c.mode === 'reference' });
      } finally {
        for (const r of rec) {
          r.y.dispose();
          r.active.dispose();
        }
        b.state.dispose();
        b.layer.dispose();
      }
    }, runs(cuda ? 150 : 500));
    await expectMemoryAt(f.ctx, mark, 'DeltaLinear values');
  });
}

describe('delta properties on cpu', () => {
  deltaProperties('cpu', cpuContext, 1);
});

describeGpu('delta properties on cuda', () => {
  if (cudaUsable() || REQUIRE_GPU) deltaProperties('cuda', gpuContext, 0.25);
});
