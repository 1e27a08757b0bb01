/**
 * DeltaLinear on the CPU backend against the float64 reference (test/reference/delta.ts). Inputs are fresh
 * random values every run (seed in every failure message); shapes are small and odd. What is checked:
 * the fire decisions exactly, y against the exact model W x_ref + b within a worst-case float32 rounding
 * bound, and y against the dense layer W x + b within the spec's error bound sum_k |W[i,k]| theta_k at
 * every step of long random walks (the bound must not grow with time).
 */
import { DeltaLinear, SyntheticFeatureStream } from '../../lib/delta';
import { type FloatDType } from '../../lib/dtype';
import { SparseKernelsError } from '../../lib/errors';
import { Tensor } from '../../lib/tensor';
import { cpuContext } from '../helpers/gpu';
import { rng } from '../helpers/random';
import { DeltaReference, quantize, referenceLinear } from '../reference/delta';
import { RandomWalk, type Recorded, bits, buildLayer, checkRecorded, nonZeroNormals, roundTo } from './common';

const ctx = () => cpuContext();
const tensor = (v: Float32Array, dims: number[], dtype: FloatDType = 'float32') => Tensor.from(v, dims, { dtype, context: ctx() });

describe('DeltaLinear (cpu): error model', () => {
  test('10,000-step random walks: the bound holds at every step and does not grow (no refresh)', async () => {
    const { rng: r, seed } = rng('random walk 10k');
    const M = 21;
    const K = 37;
    const S = 3;
    const b = buildLayer(ctx(), r, { M, K, S, options: { threshold: 0.1 } });
    // sigma 0.03 per step: an input fires every ~11 steps, ~9% of the inputs per step.
    const walk = new RandomWalk(r, S, K, 0.03);
    let worst = 0;
    let fired = 0;
    const batch = 500;
    for (let t0 = 0; t0 < 10_000; t0 += batch) {
      const rec: Recorded[] = [];
      for (let t = t0; t < t0 + batch; t++) {
        const xv = walk.next();
        const x = tensor(xv, [S, K]);
        const { y, active } = b.layer.step(b.state, x);
        x.dispose();
        const ref = b.ref.step(xv, S);
        for (let s = 0; s < S; s++) if (t > 0) fired += ref.active[s]!;
        rec.push({ y, active, ref, label: `step ${t} (seed ${seed})`, dtype: 'float32' });
      }
      worst = Math.max(worst, await checkRecorded(rec, M, { bound: true }));
    }
    // Sparse regime (not every input fired, not none) and the bound was approached, not trivially met.
    const density = fired / (9_999 * S * K);
    expect(density).toBeGreaterThan(0.03);
    expect(density).toBeLessThan(0.3);
    expect(worst).toBeLessThanOrEqual(1);
    expect(worst).toBeGreaterThan(0.05);
    // The state itself: the reference moved exactly as the model's (bitwise), |x - x_ref| < theta everywhere.
    const st = await b.state.read();
    for (let s = 0; s < S; s++) {
      for (let k = 0; k < K; k++) {
        expect(st.xRef[s * K + k]).toBe(b.ref.xRef[s]![k]);
        expect(Math.abs(Math.fround(walk.x[s * K + k]!) - st.xRef[s * K + k]!)).toBeLessThan(0.1);
      }
    }
    const stats = await b.state.stats();
    expect(Array.from(stats.activeTotal)).toEqual(Array.from(b.ref.activeTotal));
    expect(Array.from(stats.steps)).toEqual(Array.from(b.ref.stepsTotal));
    b.layer.dispose();
    b.state.dispose();
  });

  test.each<[FloatDType, FloatDType]>([
    ['float16', 'float16'],
    ['bfloat16', 'bfloat16'],
    ['float16', 'float32'],
    ['float32', 'bfloat16'],
  ])('weights %s, inputs %s: model and bound over 400 steps', async (wd, xd) => {
    const { rng: r, seed } = rng(`dtypes ${wd} ${xd}`);
    const M = 19;
    const K = 45;
    const S = 2;
    const b = buildLayer(ctx(), r, { M, K, S, dtype: wd, options: { threshold: 0.08 } });
    const walk = new RandomWalk(r, S, K, 0.03);
    const rec: Recorded[] = [];
    for (let t = 0; t < 400; t++) {
      const xv = roundTo(walk.next(), xd);
      const x = tensor(xv, [S, K], xd);
      const { y, active } = b.layer.step(b.state, x);
      expect(y.dtype).toBe(xd);
      rec.push({ y, active, ref: b.ref.step(xv, S), label: `${wd}/${xd} step ${t} (seed ${seed})`, dtype: xd });
      x.dispose();
    }
    await checkRecorded(rec, M, { bound: true });
    b.layer.dispose();
  });

  test('refreshEvery re-synchronises densely on schedule (active = K), and the accumulator stays exact', async () => {
    const { rng: r, seed } = rng('refresh');
    const M = 13;
    const K = 29;
    const S = 2;
    const b = buildLayer(ctx(), r, { M, K, S, options: { threshold: 0.05, refreshEvery: 5 } });
    const walk = new RandomWalk(r, S, K, 0.02);
    const rec: Recorded[] = [];
    const pattern: number[] = [];
    for (let t = 0; t < 40; t++) {
      const xv = walk.next();
      const x = tensor(xv, [S, K]);
      const out = b.layer.step(b.state, x);
      const ref = b.ref.step(xv, S);
      pattern.push(ref.init[0]!);
      rec.push({ ...out, ref, label: `refresh step ${t} (seed ${seed})`, dtype: 'float32' });
    }
    // Initialising step 0, then 5 delta steps, then a refresh: every 6th step.
    expect(pattern).toEqual(Array.from({ length: 40 }, (_, t) => (t % 6 === 0 ? 1 : 0)));
    await checkRecorded(rec, M, { bound: true });
    b.layer.dispose();
  });

  test('per-channel thresholds (host array, including 0 and large values): bound and decisions', async () => {
    const { rng: r, seed } = rng('per-channel');
    const M = 17;
    const K = 31;
    const S = 3;
    const theta = new Float32Array(K);
    for (let k = 0; k < K; k++) theta[k] = k % 7 === 0 ? 0 : k % 5 === 0 ? 5 : 0.02 + 0.2 * r.next();
    const b = buildLayer(ctx(), r, { M, K, S, options: { threshold: theta } });
    const walk = new RandomWalk(r, S, K, 0.04);
    const rec: Recorded[] = [];
    for (let t = 0; t < 300; t++) {
      const xv = walk.next();
      const x = tensor(xv, [S, K]);
      rec.push({ ...b.layer.step(b.state, x), ref: b.ref.step(xv, S), label: `per-channel step ${t} (seed ${seed})`, dtype: 'float32' });
    }
    await checkRecorded(rec, M, { bound: true });
    const st = await b.state.read();
    for (let s = 0; s < S; s++) {
      for (let k = 0; k < K; k++) {
        const x = Math.fround(walk.x[s * K + k]!);
        // theta 0 channels always track x exactly; theta 5 channels barely ever move.
        if (theta[k] === 0) expect(st.xRef[s * K + k]).toBe(x);
        else expect(Math.abs(x - st.xRef[s * K + k]!)).toBeLessThan(theta[k]!);
      }
    }
    b.layer.dispose();
  });

  test('per-channel thresholds as a Tensor: usable after layer.ready, same results as the host array', async () => {
    const { rng: r } = rng('threshold tensor');
    const M = 9;
    const K = 23;
    const theta = Float32Array.from({ length: K }, () => 0.05 + 0.1 * r.next());
    const w = nonZeroNormals(r, M * K, 0.3);
    const W = tensor(w, [M, K]);
    const a = new DeltaLinear(W, null, { threshold: theta });
    const t = new DeltaLinear(W, null, { threshold: tensor(theta, [K]) });
    const sa = a.createState(1);
    const stt = t.createState(1);
    expect(() => t.step(stt, tensor(new Float32Array(K), [1, K]))).toThrow(/await layer.ready/);
    await t.ready;
    const walk = new RandomWalk(r, 1, K, 0.05);
    for (let i = 0; i < 30; i++) {
      const x = tensor(walk.next(), [1, K]);
      const ya = a.step(sa, x);
      const yt = t.step(stt, x);
      expect(await bits(yt.y)).toEqual(await bits(ya.y));
      expect(await yt.active.toArray()).toEqual(await ya.active.toArray());
    }
  });

  test('a change of exactly theta fires, one float32 ulp less does not (>= in float32, per channel)', async () => {
    const { rng: r, seed } = rng('threshold edge');
    const M = 7;
    const K = 24;
    const theta = Float32Array.from({ length: K }, (_, k) => (k % 2 ? 0.25 : 0.375));
    const b = buildLayer(ctx(), r, { M, K, S: 1, options: { threshold: theta } });
    // Values on a 1/64 grid: x +- theta is exact in float32, so d = theta exactly.
    const x0 = Float32Array.from({ length: K }, () => Math.round(r.normal() * 64) / 64);
    const x1 = x0.slice();
    const want = new Int32Array(K);
    for (let k = 0; k < K; k++) {
      const sign = k % 3 === 0 ? -1 : 1;
      if (k % 4 < 2) {
        x1[k] = x0[k]! + sign * theta[k]!; // |d| == theta: fires
        want[k] = 1;
      } else {
        // |d| one float32 ulp below theta (from 0, so x1 holds it exactly): must not fire.
        const below = new Float32Array([theta[k]!]);
        new Uint32Array(below.buffer)[0]! -= 1;
        x0[k] = 0;
        x1[k] = sign * below[0]!;
      }
    }
    const rec: Recorded[] = [];
    for (const xv of [x0, x1]) rec.push({ ...b.layer.step(b.state, tensor(xv, [1, K])), ref: b.ref.step(xv, 1), label: `edge (seed ${seed})`, dtype: 'float32' });
    const expected = want.reduce((a, v) => a + v, 0);
    expect(rec[1]!.ref.active[0]).toBe(expected);
    expect(expected).toBe(12);
    await checkRecorded(rec, M, { bound: true });
    const st = await b.state.read();
    for (let k = 0; k < K; k++) expect(st.xRef[k]).toBe(want[k] ? x1[k] : x0[k]);
  });

  test('threshold 0 is lossless: y equals the dense layer (to rounding), only exact repeats are skipped', async () => {
    const { rng: r, seed } = rng('theta 0');
    const M = 11;
    const K = 25;
    const S = 2;
    const b = buildLayer(ctx(), r, { M, K, S, options: { threshold: 0 } });
    const xv = r.normals(S * K);
    const rec: Recorded[] = [];
    for (let t = 0; t < 60; t++) {
      // About a third of the inputs change each step, by arbitrary (also tiny) amounts.
      for (let i = 0; i < xv.length; i++) if (r.next() < 0.33) xv[i] = xv[i]! + (r.next() < 0.5 ? 1e-6 : r.normal());
      const x = tensor(xv.slice(), [S, K]);
      rec.push({ ...b.layer.step(b.state, x), ref: b.ref.step(xv, S), label: `theta 0 step ${t} (seed ${seed})`, dtype: 'float32' });
    }
    // bound = 0 here: y must equal the dense product within rounding alone.
    await checkRecorded(rec, M, { bound: true });
    b.layer.dispose();
  });

  test('the dense fallback (denseFallbackDensity 0) gives the same decisions and values as the gather', async () => {
    const { rng: r, seed } = rng('fallback');
    const M = 40;
    const K = 70;
    const S = 3;
    const w = nonZeroNormals(r, M * K, 0.1);
    const W = tensor(w, [M, K]);
    const gather = new DeltaLinear(W, null, { denseFallbackDensity: 1 });
    const dense = new DeltaLinear(W, null, { denseFallbackDensity: 0 });
    const sg = gather.createState(S);
    const sd = dense.createState(S);
    const ref = new DeltaReference({ w, M, K, threshold: 0.1, mode: 'reference', refreshEvery: 0, streams: S });
    const walk = new RandomWalk(r, S, K, 0.06);
    const rg: Recorded[] = [];
    const rd: Recorded[] = [];
    for (let t = 0; t < 100; t++) {
      const xv = walk.next();
      const x = tensor(xv, [S, K]);
      const step = ref.step(xv, S);
      rg.push({ ...gather.step(sg, x), ref: step, label: `gather step ${t} (seed ${seed})`, dtype: 'float32' });
      rd.push({ ...dense.step(sd, x), ref: step, label: `dense-pass step ${t} (seed ${seed})`, dtype: 'float32' });
    }
    await checkRecorded(rg, M, { bound: true });
    await checkRecorded(rd, M, { bound: true });
  });
});

describe('DeltaLinear (cpu): quantized mode', () => {
  test('equals the dense layer on the quantised inputs, ties to even, every level change fires', async () => {
    const { rng: r, seed } = rng('quantized');
    const M = 15;
    const K = 33;
    const S = 2;
    const q = 0.25;
    const b = buildLayer(ctx(), r, { M, K, S, options: { mode: 'quantized', quantStep: q } });
    const walk = new RandomWalk(r, S, K, 0.1);
    const rec: Recorded[] = [];
    for (let t = 0; t < 200; t++) {
      const xv = walk.next();
      // Exact ties (m + 1/2) q: rint rounds them to the even level (e.g. 0.375 / 0.25 = 1.5 -> 2).
      if (t % 10 === 3) for (let k = 0; k < K; k += 4) xv[k] = (Math.floor(xv[k]! / q) + 0.5) * q;
      const x = tensor(xv, [S, K]);
      const out = b.layer.step(b.state, x);
      const ref = b.ref.step(xv, S);
      rec.push({ ...out, ref, label: `quantized step ${t} (seed ${seed})`, dtype: 'float32' });
    }
    // bound is 0 in quantised mode: y = W q(x) + b up to rounding.
    await checkRecorded(rec, M, { bound: true });
    // x_ref holds the quantised values of the last input (every change of level fired); numerically:
    // a move between -0 and +0 is no change (d = 0), so the sign of a zero reference may lag, as in the model.
    const st = await b.state.read();
    for (let i = 0; i < S * K; i++) {
      expect(st.xRef[i] === quantize(walk.x[i]!, 'quantized', q)).toBe(true);
      expect(st.xRef[i]).toBe(b.ref.xRef[Math.floor(i / K)]![i % K]);
    }
    expect(quantize(0.375, 'quantized', 0.25)).toBe(0.5);
    expect(quantize(0.625, 'quantized', 0.25)).toBe(0.5);
    expect(quantize(-0.375, 'quantized', 0.25)).toBe(-0.5);
    b.layer.dispose();
  });
});

describe('DeltaLinear (cpu): streams', () => {
  test('subsets of streams, a stream joining mid-run, one leaving: untouched streams keep their state', async () => {
    const { rng: r, seed } = rng('subsets');
    const M = 14;
    const K = 27;
    const S = 5;
    const b = buildLayer(ctx(), r, { M, K, S, options: { threshold: 0.07 } });
    const walk = new RandomWalk(r, S, K, 0.03);
    const rec: Recorded[] = [];
    let frozen: Float32Array | undefined;
    for (let t = 0; t < 120; t++) {
      const all = walk.next();
      // Streams 0..3 step at different rates and in varying order; stream 4 joins at t = 50; stream 2
      // leaves at t = 80.
      const ids: number[] = [];
      for (const s of [3, 0, 2, 1, 4]) {
        if (s === 4 && t < 50) continue;
        if (s === 2 && t >= 80) continue;
        if (s === 1 && t % 3 !== 0) continue;
        ids.push(s);
      }
      if (t % 2 === 1) ids.reverse();
      const xv = new Float32Array(ids.length * K);
      ids.forEach((s, i) => xv.set(all.subarray(s * K, (s + 1) * K), i * K));
      const x = tensor(xv, [ids.length, K]);
      const idArg = t % 4 === 0 ? Int32Array.from(ids) : t % 4 === 1 ? Tensor.from(Int32Array.from(ids), [ids.length], { dtype: 'int32', context: ctx() }) : ids;
      const out = b.layer.step(b.state, x, { streamIds: idArg });
      const ref = b.ref.step(xv, ids.length, ids);
      if (t === 50) expect(ref.active[ids.indexOf(4)]).toBe(K); // joining stream initialises
      rec.push({ ...out, ref, label: `subset step ${t} ids [${ids}] (seed ${seed})`, dtype: 'float32' });
      if (t === 79) {
        await checkRecorded(rec.splice(0), M, { bound: true });
        frozen = (await b.state.read()).xRef.slice(2 * K, 3 * K);
      }
    }
    await checkRecorded(rec, M, { bound: true });
    const st = await b.state.read();
    expect(st.xRef.slice(2 * K, 3 * K)).toEqual(frozen);
    expect(Array.from(st.stepsTotal)).toEqual(Array.from(b.ref.stepsTotal));
    b.layer.dispose();
  });

  test('NaN fires and poisons only its stream; it stays NaN until reset, which restores exact outputs', async () => {
    const { rng: r, seed } = rng('nan');
    const M = 10;
    const K = 19;
    const S = 3;
    const b = buildLayer(ctx(), r, { M, K, S, options: { threshold: 0.1 } });
    const walk = new RandomWalk(r, S, K, 0.01);
    const rec: Recorded[] = [];
    const nanStep = 5;
    for (let t = 0; t < 15; t++) {
      const xv = walk.next();
      if (t === nanStep) xv[1 * K + 4] = NaN; // stream 1, input 4
      if (t === 10) {
        b.state.reset([1]);
        b.ref.reset([1]);
      }
      const x = tensor(xv, [S, K]);
      const out = b.layer.step(b.state, x);
      const ref = b.ref.step(xv, S);
      if (t === nanStep) {
        // The NaN input fired although its change is not >= theta in IEEE arithmetic.
        expect(ref.active[1]).toBeGreaterThanOrEqual(1);
        expect(Number.isNaN(ref.yModel[1 * M])).toBe(true);
      }
      rec.push({ ...out, ref, label: `nan step ${t} (seed ${seed})`, dtype: 'float32' });
    }
    const ys = await Promise.all(rec.map((x) => x.y.toFloat32Array()));
    for (let t = 0; t < 15; t++) {
      const row1 = ys[t]!.subarray(M, 2 * M);
      const poisoned = t >= nanStep && t < 10;
      expect(row1.every((v) => Number.isNaN(v))).toBe(poisoned);
      expect(ys[t]!.subarray(0, M).every((v) => Number.isFinite(v))).toBe(true); // other streams unaffected
      expect(ys[t]!.subarray(2 * M).every((v) => Number.isFinite(v))).toBe(true);
    }
    expect(Array.from(await rec[10]!.active.toArray())).toEqual([rec[10]!.ref.active[0], K, rec[10]!.ref.active[2]]);
    await checkRecorded(rec, M, { bound: false });
    b.layer.dispose();
  });

  test('steps enqueued on two streams alternately run in program order (same results as one stream)', async () => {
    const { rng: r, seed } = rng('two streams');
    const M = 12;
    const K = 20;
    const S = 2;
    const b = buildLayer(ctx(), r, { M, K, S, options: { threshold: 0.05 } });
    const other = ctx().createStream();
    const walk = new RandomWalk(r, S, K, 0.03);
    const rec: Recorded[] = [];
    for (let t = 0; t < 80; t++) {
      const xv = walk.next();
      const x = tensor(xv, [S, K]);
      const out = b.layer.step(b.state, x, t % 2 ? { stream: other } : {});
      rec.push({ ...out, ref: b.ref.step(xv, S), label: `two-stream step ${t} (seed ${seed})`, dtype: 'float32' });
    }
    await checkRecorded(rec, M, { bound: true });
    other.dispose();
  });

  test('a device stream-id tensor out of range fails the step on the CPU; reset() recovers the state', async () => {
    const { rng: r } = rng('bad device ids');
    const M = 6;
    const K = 8;
    const b = buildLayer(ctx(), r, { M, K, S: 2 });
    const x = tensor(r.normals(2 * K), [2, K]);
    const ok = b.layer.step(b.state, x);
    await ok.y.toArray();
    const ids = Tensor.from(new Int32Array([0, 7]), [2], { dtype: 'int32', context: ctx() });
    const bad = b.layer.step(b.state, x, { streamIds: ids });
    await expect(bad.y.toArray()).rejects.toThrow(/stream id 7/);
    await expect(ctx().stream.synchronize()).rejects.toBeInstanceOf(SparseKernelsError);
    // The state carries the error...
    await expect(b.layer.step(b.state, x).y.toArray()).rejects.toThrow(/stream id 7/);
    await ctx().stream.synchronize().catch(() => undefined);
    // ...until a full reset, after which steps initialise again and match the dense layer.
    b.state.reset();
    const again = b.layer.step(b.state, x);
    expect(Array.from(await again.active.toArray())).toEqual([K, K]);
    const want = referenceLinear(await x.toFloat32Array(), b.w, 2, M, K, b.b);
    const got = await again.y.toFloat32Array();
    for (let i = 0; i < got.length; i++) expect(Math.abs(got[i]! - want[i]!)).toBeLessThan(1e-5 * (1 + Math.abs(want[i]!)));
  });
});

describe('DeltaLinear (cpu): state management', () => {
  test('snapshot / restore replay bit for bit (float16, refresh, subsets, activation)', async () => {
    const { rng: r } = rng('snapshot');
    const M = 26;
    const K = 35;
    const S = 3;
    const b = buildLayer(ctx(), r, { M, K, S, dtype: 'float16', options: { threshold: 0.05, refreshEvery: 7 } });
    const walk = new RandomWalk(r, S, K, 0.05);
    for (let t = 0; t < 13; t++) b.layer.step(b.state, tensor(walk.next(), [S, K], 'float16')).y.dispose();
    const snapA = b.state.snapshot();
    const snapB = b.state.snapshot();
    const xs = Array.from({ length: 25 }, () => tensor(walk.next(), [S, K], 'float16'));
    const sub = tensor(r.normals(2 * K), [2, K], 'float16');
    const replay = async (state: typeof b.state) => {
      const out: Array<Uint32Array | Uint16Array | Int32Array> = [];
      for (const [i, x] of xs.entries()) {
        const res = i % 5 === 2 ? b.layer.step(state, sub, { streamIds: [2, 0] }) : b.layer.step(state, x, { activation: 'gelu' });
        out.push(await bits(res.y), await res.active.toArray());
      }
      out.push(...Object.values(await state.read()).map((a) => new Uint8Array((a as ArrayBufferView).buffer.slice(0))) as never[]);
      return out;
    };
    const first = await replay(b.state);
    // The snapshot steps on its own, exactly as the state did from that point...
    expect(await replay(snapA)).toEqual(first);
    // ...and restoring one puts the state back there.
    b.state.restore(snapB);
    expect(await replay(b.state)).toEqual(first);
    snapA.dispose();
    snapB.dispose();
  });

  test('invalidate() and setWeights() re-initialise stale states at their next step', async () => {
    const { rng: r } = rng('invalidate');
    const M = 12;
    const K = 18;
    const S = 2;
    const b = buildLayer(ctx(), r, { M, K, S, options: { threshold: 0.1 } });
    const walk = new RandomWalk(r, S, K, 0.01);
    for (let t = 0; t < 5; t++) b.layer.step(b.state, tensor(walk.next(), [S, K])).y.dispose();
    const snap = b.state.snapshot();
    const v0 = b.layer.version;
    b.layer.invalidate();
    expect(b.layer.version).toBe(v0 + 1);
    let out = b.layer.step(b.state, tensor(walk.next().subarray(K), [1, K]), { streamIds: [1] });
    expect(Array.from(await out.active.toArray())).toEqual([K]);
    // New weights and bias: every stream re-initialises with them.
    const w2 = nonZeroNormals(r, M * K, 0.2);
    const b2 = nonZeroNormals(r, M, 0.3);
    b.layer.setWeights(tensor(w2, [M, K]), tensor(b2, [M]));
    const xv = walk.next();
    out = b.layer.step(b.state, tensor(xv, [S, K]));
    expect(Array.from(await out.active.toArray())).toEqual([K, K]);
    const want = referenceLinear(xv, w2, S, M, K, b2);
    const got = await out.y.toFloat32Array();
    for (let i = 0; i < got.length; i++) expect(Math.abs(got[i]! - want[i]!)).toBeLessThan(1e-5 * (1 + Math.abs(want[i]!)));
    // A snapshot from before the change is stale too: restoring it re-initialises at the next step.
    b.state.restore(snap);
    out = b.layer.step(b.state, tensor(walk.next(), [S, K]));
    expect(Array.from(await out.active.toArray())).toEqual([K, K]);
    // Bias removed (null): outputs are W x.
    b.layer.setWeights(tensor(w2, [M, K]), null);
    const xv2 = walk.next();
    out = b.layer.step(b.state, tensor(xv2, [S, K]));
    const want2 = referenceLinear(xv2, w2, S, M, K);
    const got2 = await out.y.toFloat32Array();
    for (let i = 0; i < got2.length; i++) expect(Math.abs(got2[i]! - want2[i]!)).toBeLessThan(1e-5 * (1 + Math.abs(want2[i]!)));
  });

  test('activations apply to y only: the accumulator continues unchanged', async () => {
    const { rng: r, seed } = rng('activations');
    const M = 16;
    const K = 22;
    const S = 2;
    const b = buildLayer(ctx(), r, { M, K, S, options: { threshold: 0.05 } });
    const walk = new RandomWalk(r, S, K, 0.05);
    for (const activation of ['relu', 'gelu', 'silu', 'none', 'gelu', 'relu'] as const) {
      const rec: Recorded[] = [];
      for (let t = 0; t < 5; t++) {
        const xv = walk.next();
        rec.push({
          ...b.layer.step(b.state, tensor(xv, [S, K]), { activation }),
          ref: b.ref.step(xv, S, undefined, activation),
          label: `${activation} step ${t} (seed ${seed})`,
          dtype: 'float32',
        });
      }
      await checkRecorded(rec, M, { activation });
    }
  });

  test('out: the step writes into a preallocated (NaN-poisoned) tensor and returns it', async () => {
    const { rng: r, seed } = rng('out');
    const M = 9;
    const K = 14;
    const b = buildLayer(ctx(), r, { M, K, S: 2, dtype: 'bfloat16' });
    const out = Tensor.from(new Float32Array(2 * M).fill(NaN), [2, M], { dtype: 'bfloat16', context: ctx() });
    const rec: Recorded[] = [];
    for (let t = 0; t < 3; t++) {
      const xv = roundTo(r.normals(2 * K), 'bfloat16');
      const res = b.layer.step(b.state, tensor(xv, [2, K], 'bfloat16'), { out });
      expect(res.y).toBe(out);
      const ref = b.ref.step(xv, 2);
      rec.push({ y: res.y.clone(), active: res.active, ref, label: `out step ${t} (seed ${seed})`, dtype: 'bfloat16' });
    }
    await checkRecorded(rec, M, { bound: true });
  });

  test('edge sizes: S = 0, K = 0 (outputs are the bias), M = 0, zero-row steps', async () => {
    const { rng: r } = rng('edges');
    // S = 0: a state with no streams; steps take zero rows.
    let b = buildLayer(ctx(), r, { M: 4, K: 6, S: 0 });
    let out = b.layer.step(b.state, tensor(new Float32Array(0), [0, 6]));
    expect(out.y.dims).toEqual([0, 4]);
    expect((await out.y.toArray()).length).toBe(0);
    expect((await out.active.toArray()).length).toBe(0);
    // K = 0: y = act(b) every step, nothing fires.
    b = buildLayer(ctx(), r, { M: 5, K: 0, S: 2 });
    for (let t = 0; t < 3; t++) {
      out = b.layer.step(b.state, tensor(new Float32Array(0), [2, 0]), { activation: 'relu' });
      expect(Array.from(await out.active.toArray())).toEqual([0, 0]);
      const y = await out.y.toFloat32Array();
      for (let s = 0; s < 2; s++) for (let i = 0; i < 5; i++) expect(y[s * 5 + i]).toBe(Math.max(b.b![i]!, 0));
    }
    // K = 0 without bias: zeros.
    b = buildLayer(ctx(), r, { M: 3, K: 0, S: 1, bias: false });
    out = b.layer.step(b.state, tensor(new Float32Array(0), [1, 0]));
    expect(Array.from(await out.y.toFloat32Array())).toEqual([0, 0, 0]);
    // M = 0: active counts still reported.
    b = buildLayer(ctx(), r, { M: 0, K: 7, S: 2 });
    out = b.layer.step(b.state, tensor(r.normals(14), [2, 7]));
    expect(out.y.dims).toEqual([2, 0]);
    expect(Array.from(await out.active.toArray())).toEqual([7, 7]);
    // A zero-row step on a state with streams changes nothing.
    b = buildLayer(ctx(), r, { M: 3, K: 4, S: 2 });
    out = b.layer.step(b.state, tensor(new Float32Array(0), [0, 4]));
    expect(out.y.dims).toEqual([0, 3]);
    expect(Array.from((await b.state.read()).stepsTotal)).toEqual([0, 0]);
  });
});

describe('SyntheticFeatureStream', () => {
  test('deterministic per seed, drifts slowly with scene cuts, and is sparse under theta = 0.1', () => {
    const a = new SyntheticFeatureStream({ features: 300, streams: 2, seed: 7, cutProbability: 0.02 });
    const b = new SyntheticFeatureStream({ features: 300, streams: 2, seed: 7, cutProbability: 0.02 });
    const c = new SyntheticFeatureStream({ features: 300, streams: 2, seed: 8, cutProbability: 0.02 });
    const K = 300;
    const ref = new DeltaReference({ w: new Float32Array(0), M: 0, K, threshold: 0.1, mode: 'reference', refreshEvery: 0, streams: 2 });
    let fired = 0;
    let firedOnCuts = 0;
    let cutRows = 0;
    let std = 0;
    for (let t = 0; t < 400; t++) {
      const x = a.next();
      expect(b.next()).toEqual(x);
      if (t === 0) expect(c.next()).not.toEqual(x);
      const res = ref.step(x, 2);
      for (let s = 0; s < 2; s++) {
        if (t === 0) continue;
        if (a.lastCuts[s]) {
          firedOnCuts += res.active[s]!;
          cutRows++;
        } else fired += res.active[s]!;
      }
      if (t === 399) for (const v of x) std += v * v;
    }
    expect(a.cuts).toBeGreaterThan(4); // 2 streams x 400 steps x 0.02
    expect(a.cuts).toBeLessThan(40);
    const density = fired / ((399 * 2 - cutRows) * K);
    expect(density).toBeGreaterThan(0.03);
    expect(density).toBeLessThan(0.25);
    // A cut changes (almost) every feature.
    expect(firedOnCuts / (cutRows * K)).toBeGreaterThan(0.85);
    expect(Math.sqrt(std / (2 * K))).toBeGreaterThan(0.5); // unit-scale features
    expect(Math.sqrt(std / (2 * K))).toBeLessThan(2);
  });
});
