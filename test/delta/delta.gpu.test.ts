/**
 * DeltaLinear on CUDA: against the float64 reference (exact fire decisions, y within the float32
 * rounding slack of W x_ref + b, the spec's error bound against the dense layer at every step), and
 * against the CPU backend on the same inputs (identical fire decisions and references, bit for bit; y
 * equal to rounding) across the kernel's stream tiers (1, 4, 8, 16 rows per CTA, and > 16 rows: several
 * stream groups), several M tiles and K chunks, the anchor shape, subsets, refresh, quantized mode,
 * per-channel thresholds, activations, NaN, device-resident stream ids and snapshots.
 */
import type { Context } from '../../lib/context';
import { DeltaLinear, type DeltaLinearOptions, type DeltaState } from '../../lib/delta';
import type { FloatDType } from '../../lib/dtype';
import { Tensor } from '../../lib/tensor';
import { cpuContext, describeGpu, gpuContext } from '../helpers/gpu';
import { rng } from '../helpers/random';
import { relError } from '../helpers/tolerance';
import { DeltaReference } from '../reference/delta';
import { RandomWalk, type Recorded, bits, checkRecorded, fastNonZero, nonZeroNormals, roundTo } from './common';

interface Pair {
  gpu: DeltaLinear;
  cpu: DeltaLinear;
  sg: DeltaState;
  sc: DeltaState;
  w: Float32Array;
  b: Float32Array;
}

/** The same layer (weights, bias, options) on the GPU and on the CPU, with a state of S streams each. */
function pair(M: number, K: number, S: number, wd: FloatDType, options: DeltaLinearOptions, seedLabel: string): Pair {
  const { rng: r } = rng(seedLabel);
  // Both contexts convert the same float32 values to `wd` on upload (round to nearest even, tested
  // exhaustively by the runtime), so no host rounding is needed for a backend comparison.
  const w = fastNonZero(r, M * K, 1.7 / Math.sqrt(Math.max(K, 1)));
  const b = fastNonZero(r, M, 0.5);
  const make = (ctx: Context) =>
    new DeltaLinear(Tensor.from(w, [M, K], { dtype: wd, context: ctx }), Tensor.from(b, [M], { dtype: wd, context: ctx }), options);
  const gpu = make(gpuContext());
  const cpu = make(cpuContext());
  return { gpu, cpu, sg: gpu.createState(S), sc: cpu.createState(S), w, b };
}

const tol = (d: FloatDType) => (d === 'float32' ? 1e-5 : 2e-3);

describeGpu('DeltaLinear (cuda) vs the float64 reference', () => {
  test.each<[string, number, number, number, FloatDType, FloatDType]>([
    // name, M, K, S, weight dtype, x dtype
    ['1 stream, 2 M tiles', 300, 257, 1, 'float32', 'float32'],
    ['3 streams (tier 4), fp16', 260, 301, 3, 'float16', 'float16'],
    ['7 streams (tier 8), bf16 weights, fp32 x', 129, 190, 7, 'bfloat16', 'float32'],
    ['18 streams (two stream groups), fp16 weights, bf16 x', 97, 113, 18, 'float16', 'bfloat16'],
  ])('%s: decisions exact, y within rounding of the model, the bound holds (600 steps)', async (name, M, K, S, wd, xd) => {
    const { rng: r, seed } = rng(`gpu ref ${name}`);
    const ctx = gpuContext();
    const w = roundTo(nonZeroNormals(r, M * K, 1 / Math.sqrt(K)), wd);
    const b = roundTo(nonZeroNormals(r, M, 0.5), wd);
    const layer = new DeltaLinear(Tensor.from(w, [M, K], { dtype: wd, context: ctx }), Tensor.from(b, [M], { dtype: wd, context: ctx }), {
      threshold: 0.1,
      refreshEvery: 250,
    });
    const state = layer.createState(S);
    const ref = new DeltaReference({ w, M, K, bias: b, threshold: 0.1, mode: 'reference', refreshEvery: 250, streams: S });
    const walk = new RandomWalk(r, S, K, 0.03);
    for (let t0 = 0; t0 < 600; t0 += 200) {
      const rec: Recorded[] = [];
      for (let t = t0; t < t0 + 200; t++) {
        const xv = roundTo(walk.next(), xd);
        const x = Tensor.from(xv, [S, K], { dtype: xd, context: ctx });
        rec.push({ ...layer.step(state, x), ref: ref.step(xv, S), label: `cuda ${name} step ${t} (seed ${seed})`, dtype: xd });
        x.dispose();
      }
      await checkRecorded(rec, M, { bound: true });
    }
    const st = await state.read();
    for (let s = 0; s < S; s++) expect(st.xRef.subarray(s * K, (s + 1) * K)).toEqual(ref.xRef[s]);
    const stats = await state.stats();
    expect(Array.from(stats.activeTotal)).toEqual(Array.from(ref.activeTotal));
  });

  test('10,000 steps without refresh: the bound holds at every step', async () => {
    const { rng: r, seed } = rng('gpu 10k');
    const ctx = gpuContext();
    const M = 40;
    const K = 70;
    const S = 2;
    const w = nonZeroNormals(r, M * K, 1 / Math.sqrt(K));
    const layer = new DeltaLinear(Tensor.from(w, [M, K], { context: ctx }), null, { threshold: 0.1 });
    const state = layer.createState(S);
    const ref = new DeltaReference({ w, M, K, threshold: 0.1, mode: 'reference', refreshEvery: 0, streams: S });
    const walk = new RandomWalk(r, S, K, 0.03);
    for (let t0 = 0; t0 < 10_000; t0 += 1000) {
      const rec: Recorded[] = [];
      for (let t = t0; t < t0 + 1000; t++) {
        const xv = walk.next();
        const x = Tensor.from(xv, [S, K], { context: ctx });
        rec.push({ ...layer.step(state, x), ref: ref.step(xv, S), label: `cuda 10k step ${t} (seed ${seed})`, dtype: 'float32' });
        x.dispose();
      }
      await checkRecorded(rec, M, { bound: true });
    }
  });

  test('a change of exactly theta fires, one float32 ulp less does not; theta 0 is lossless', async () => {
    const { rng: r, seed } = rng('gpu threshold edge');
    const ctx = gpuContext();
    const M = 300;
    const K = 64;
    const S = 3;
    const theta = Float32Array.from({ length: K }, (_, k) => (k % 2 ? 0.25 : 0.375));
    const w = nonZeroNormals(r, M * K, 0.1);
    for (const th of [theta, 0] as const) {
      const layer = new DeltaLinear(Tensor.from(w, [M, K], { context: ctx }), null, { threshold: th });
      const state = layer.createState(S);
      const ref = new DeltaReference({ w, M, K, threshold: th, mode: 'reference', refreshEvery: 0, streams: S });
      // Values on a 1/64 grid (x +- theta exact); the "below" channels start at 0 and move by theta minus one ulp.
      const x0 = Float32Array.from({ length: S * K }, (_, i) => (i % 4 < 2 ? Math.round(r.normal() * 64) / 64 : 0));
      const x1 = x0.slice();
      for (let i = 0; i < S * K; i++) {
        const k = i % K;
        const below = new Float32Array([theta[k]!]);
        new Uint32Array(below.buffer)[0]! -= 1;
        x1[i] = i % 4 < 2 ? x0[i]! + (i % 3 ? 1 : -1) * theta[k]! : (i % 3 ? 1 : -1) * below[0]!;
      }
      const rec: Recorded[] = [];
      for (const xv of [x0, x1, x1, x0]) {
        rec.push({ ...layer.step(state, Tensor.from(xv, [S, K], { context: ctx })), ref: ref.step(xv, S), label: `cuda edge theta ${typeof th} (seed ${seed})`, dtype: 'float32' });
      }
      expect(Array.from(rec[1]!.ref.active)).toEqual(th === 0 ? [K, K, K] : [K / 2, K / 2, K / 2]);
      expect(Array.from(rec[2]!.ref.active)).toEqual([0, 0, 0]);
      await checkRecorded(rec, M, { bound: true });
    }
  });

  test('quantized mode equals the dense layer on quantised inputs', async () => {
    const { rng: r, seed } = rng('gpu quantized');
    const ctx = gpuContext();
    const M = 270;
    const K = 150;
    const S = 5;
    const q = 0.125;
    const w = roundTo(nonZeroNormals(r, M * K, 0.1), 'float16');
    const layer = new DeltaLinear(Tensor.from(w, [M, K], { dtype: 'float16', context: ctx }), null, { mode: 'quantized', quantStep: q });
    const state = layer.createState(S);
    const ref = new DeltaReference({ w, M, K, threshold: 0, mode: 'quantized', quantStep: q, refreshEvery: 0, streams: S });
    const walk = new RandomWalk(r, S, K, 0.05);
    const rec: Recorded[] = [];
    for (let t = 0; t < 200; t++) {
      const xv = walk.next();
      if (t % 7 === 3) for (let k = 0; k < xv.length; k += 3) xv[k] = (Math.floor(xv[k]! / q) + 0.5) * q; // exact ties
      rec.push({ ...layer.step(state, Tensor.from(xv, [S, K], { context: ctx })), ref: ref.step(xv, S), label: `cuda quantized step ${t} (seed ${seed})`, dtype: 'float32' });
    }
    await checkRecorded(rec, M, { bound: true });
  });
});

describeGpu('DeltaLinear (cuda) vs the CPU backend', () => {
  /** Steps both with the same inputs; decisions must agree exactly, y to rounding, references bitwise. */
  async function compare(p: Pair, S: number, K: number, steps: number, xd: FloatDType, sigma: number, label: string, extra?: (t: number) => { ids?: number[]; activation?: 'none' | 'relu' | 'gelu' | 'silu' }) {
    const { rng: r, seed } = rng(label);
    const walk = new RandomWalk(r, S, K, sigma);
    for (let t = 0; t < steps; t++) {
      const all = roundTo(walk.next(), xd);
      const e = extra?.(t) ?? {};
      const ids = e.ids ?? Array.from({ length: S }, (_, i) => i);
      const xv = new Float32Array(ids.length * K);
      ids.forEach((s, i) => xv.set(all.subarray(s * K, (s + 1) * K), i * K));
      const opts = { streamIds: ids, activation: e.activation ?? 'none' };
      const g = p.gpu.step(p.sg, Tensor.from(xv, [ids.length, K], { dtype: xd, context: gpuContext() }), opts);
      const c = p.cpu.step(p.sc, Tensor.from(xv, [ids.length, K], { dtype: xd, context: cpuContext() }), opts);
      const [ga, ca] = await Promise.all([g.active.toArray(), c.active.toArray()]);
      if (Array.from(ga).join() !== Array.from(ca).join()) throw new Error(`${label} step ${t}: active ${ga} (cuda) vs ${ca} (cpu) (seed ${seed})`);
      const [gy, cy] = await Promise.all([g.y.toFloat32Array(), c.y.toFloat32Array()]);
      const err = relError(gy, Float64Array.from(cy));
      if (!(err <= tol(xd))) throw new Error(`${label} step ${t}: y rel. error ${err.toExponential(3)} (cuda vs cpu, seed ${seed})`);
    }
    const [g, c] = await Promise.all([p.sg.read(), p.sc.read()]);
    expect(g.xRef).toEqual(c.xRef);
    expect(g.initialized).toEqual(c.initialized);
    expect(g.steps).toEqual(c.steps);
    expect(g.activeTotal).toEqual(c.activeTotal);
    expect(relError(g.yAcc, Float64Array.from(c.yAcc))).toBeLessThanOrEqual(1e-5);
  }

  test.each<[number, number, number, FloatDType]>([
    [1, 1000, 3001, 'float16'],
    [4, 777, 1234, 'bfloat16'],
    [8, 513, 999, 'float32'],
    [16, 1024, 2048, 'float16'],
    [35, 300, 700, 'bfloat16'],
  ])('S = %i, W %i x %i %s: 60 steps, refresh every 25', async (S, M, K, wd) => {
    const p = pair(M, K, S, wd, { threshold: 0.1, refreshEvery: 25 }, `pair ${S} ${M} ${K}`);
    await compare(p, S, K, 60, wd, 0.04, `S${S} ${M}x${K} ${wd}`);
  });

  test('subsets, joins and leaves, activations, per-channel thresholds, dense fallback', async () => {
    const S = 12;
    const K = 530;
    const { rng: r } = rng('thresholds');
    const theta = Float32Array.from({ length: K }, (_, k) => (k % 11 === 0 ? 0 : 0.03 + 0.2 * r.next()));
    for (const fallback of [1, 0.2]) {
      const p = pair(400, K, S, 'float16', { threshold: theta, denseFallbackDensity: fallback }, `subsets ${fallback}`);
      const acts = ['none', 'relu', 'gelu', 'silu'] as const;
      await compare(p, S, K, 80, 'float16', 0.05, `subsets fallback ${fallback}`, (t) => ({
        ids: Array.from({ length: S }, (_, i) => i).filter((s) => (s === 11 ? t >= 40 : s === 3 ? t < 50 : (s + t) % 3 !== 0)).reverse(),
        activation: acts[t % 4],
      }));
    }
  });

  test('a per-channel threshold Tensor and quantized mode match the CPU', async () => {
    const K = 333;
    const { rng: r } = rng('threshold tensor gpu');
    const theta = Float32Array.from({ length: K }, () => 0.02 + 0.1 * r.next());
    const W = nonZeroNormals(r, 200 * K, 0.05);
    const gpu = new DeltaLinear(Tensor.from(W, [200, K], { context: gpuContext() }), null, {
      threshold: Tensor.from(theta, [K], { context: gpuContext() }),
    });
    await gpu.ready;
    const cpu = new DeltaLinear(Tensor.from(W, [200, K], { context: cpuContext() }), null, { threshold: theta });
    await compare({ gpu, cpu, sg: gpu.createState(6), sc: cpu.createState(6), w: W, b: new Float32Array(0) }, 6, K, 50, 'float32', 0.03, 'threshold tensor');
    const q = pair(300, 410, 9, 'bfloat16', { mode: 'quantized', quantStep: 0.25 }, 'quantized pair');
    await compare(q, 9, 410, 50, 'bfloat16', 0.1, 'quantized');
  });

  test('the anchor shape: fp16 W 4096 x 11008, 16 streams, ~10% active per stream', async () => {
    const M = 4096;
    const K = 11008;
    const S = 16;
    const p = pair(M, K, S, 'float16', { threshold: 0.1 }, 'anchor');
    const { rng: r } = rng('anchor inputs');
    const base = roundTo(fastNonZero(r, S * K, 2), 'float16');
    for (let t = 0; t < 4; t++) {
      const xv = base.slice();
      // ~10% of each stream's inputs move by 0.5 (fire), the rest stay put.
      if (t > 0) for (let i = 0; i < xv.length; i++) if (r.next() < 0.1) base[i] = xv[i] = roundTo(Float32Array.of(xv[i]! + 0.5), 'float16')[0]!;
      const g = p.gpu.step(p.sg, Tensor.from(xv, [S, K], { dtype: 'float16', context: gpuContext() }));
      const c = p.cpu.step(p.sc, Tensor.from(xv, [S, K], { dtype: 'float16', context: cpuContext() }));
      expect(Array.from(await g.active.toArray())).toEqual(Array.from(await c.active.toArray()));
      expect(relError(await g.y.toFloat32Array(), Float64Array.from(await c.y.toFloat32Array()))).toBeLessThanOrEqual(2e-3);
    }
    const [g, c] = await Promise.all([p.sg.read(), p.sc.read()]);
    expect(relError(g.yAcc, Float64Array.from(c.yAcc))).toBeLessThanOrEqual(1e-5);
  });
});

describeGpu('DeltaLinear (cuda): streams, state and edge cases', () => {
  test('device stream ids out of range: that row is NaN with active -1, other rows step normally', async () => {
    const p = pair(300, 100, 4, 'float32', { threshold: 0.1 }, 'bad ids');
    const { rng: r } = rng('bad ids x');
    const xv = r.normals(2 * 100);
    const ids = Tensor.from(new Int32Array([2, 9]), [2], { dtype: 'int32', context: gpuContext() });
    const g = p.gpu.step(p.sg, Tensor.from(xv, [2, 100], { context: gpuContext() }), { streamIds: ids });
    const c = p.cpu.step(p.sc, Tensor.from(xv.subarray(0, 100), [1, 100], { context: cpuContext() }), { streamIds: [2] });
    expect(Array.from(await g.active.toArray())).toEqual([100, -1]);
    const gy = await g.y.toFloat32Array();
    expect(gy.subarray(300).every((v) => Number.isNaN(v))).toBe(true);
    expect(relError(gy.subarray(0, 300), Float64Array.from(await c.y.toFloat32Array()))).toBeLessThanOrEqual(1e-5);
    const st = await p.sg.read();
    expect(Array.from(st.initialized)).toEqual([0, 0, 1, 0]);
  });

  test('NaN poisons its stream until reset; snapshot/restore replays bit for bit; two CUDA streams stay ordered', async () => {
    const { rng: r } = rng('gpu nan snapshot');
    const ctx = gpuContext();
    const M = 520;
    const K = 260;
    const S = 5;
    const layer = new DeltaLinear(Tensor.from(nonZeroNormals(r, M * K, 0.06), [M, K], { dtype: 'float16', context: ctx }), null, { refreshEvery: 9 });
    const state = layer.createState(S);
    const walk = new RandomWalk(r, S, K, 0.05);
    for (let t = 0; t < 12; t++) {
      const xv = walk.next();
      if (t === 4) xv[2 * K + 7] = NaN;
      if (t === 8) state.reset([2]);
      const y = await layer.step(state, Tensor.from(xv, [S, K], { dtype: 'float16', context: ctx })).y.toFloat32Array();
      const row2 = y.subarray(2 * M, 3 * M);
      expect(row2.every((v) => Number.isNaN(v))).toBe(t >= 4 && t < 8);
      expect(y.subarray(0, 2 * M).every((v) => Number.isFinite(v))).toBe(true);
    }
    const snap = state.snapshot();
    const xs = Array.from({ length: 20 }, () => Tensor.from(walk.next(), [S, K], { dtype: 'float16', context: ctx }));
    const other = ctx.createStream();
    const run = async (s: DeltaState) => {
      const out: Array<Uint32Array | Uint16Array | Int32Array> = [];
      for (const [i, x] of xs.entries()) {
        const res = layer.step(s, x, { activation: 'silu', ...(i % 2 ? { stream: other } : {}) });
        out.push(await bits(res.y), await res.active.toArray());
      }
      return out;
    };
    const first = await run(state);
    const copy = snap.snapshot();
    expect(await run(snap)).toEqual(first);
    state.restore(copy);
    expect(await run(state)).toEqual(first);
    other.dispose();
  });

  test('S = 0, K = 0, M = 0; invalidate and setWeights', async () => {
    const ctx = gpuContext();
    const l0 = new DeltaLinear(Tensor.from(new Float32Array(12).fill(0.5), [3, 4], { context: ctx }));
    const s0 = l0.createState(0);
    const r0 = l0.step(s0, Tensor.empty([0, 4], { context: ctx }));
    expect(r0.y.dims).toEqual([0, 3]);
    expect((await r0.y.toArray()).length).toBe(0);
    const bias = Float32Array.of(1.5, -2, 0.25);
    const lk = new DeltaLinear(Tensor.empty([3, 0], { context: ctx }), Tensor.from(bias, [3], { context: ctx }));
    const rk = lk.step(lk.createState(2), Tensor.empty([2, 0], { context: ctx }));
    expect(Array.from(await rk.y.toFloat32Array())).toEqual([...bias, ...bias]);
    expect(Array.from(await rk.active.toArray())).toEqual([0, 0]);
    const lm = new DeltaLinear(Tensor.empty([0, 6], { context: ctx }));
    const rm = lm.step(lm.createState(2), Tensor.from(new Float32Array(12).fill(1), [2, 6], { context: ctx }));
    expect(rm.y.dims).toEqual([2, 0]);
    expect(Array.from(await rm.active.toArray())).toEqual([6, 6]);
    // setWeights: the next step re-initialises with the new weights.
    const st = l0.createState(1);
    await l0.step(st, Tensor.from(Float32Array.of(1, 2, 3, 4), [1, 4], { context: ctx })).y.toArray();
    l0.setWeights(Tensor.from(new Float32Array(12).fill(2), [3, 4], { context: ctx }));
    const after = l0.step(st, Tensor.from(Float32Array.of(1, 2, 3, 4), [1, 4], { context: ctx }));
    expect(Array.from(await after.active.toArray())).toEqual([4]);
    expect(Array.from(await after.y.toFloat32Array())).toEqual([20, 20, 20]);
  });
});
