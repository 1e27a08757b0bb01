#!/usr/bin/env node
/**
 * A chained delta network over a synthetic video-like feature stream:
 *
 *   frame features x [S, K0]  ->  DeltaLinear(K0 -> H) + GELU  ->  DeltaLinear(H -> O)  ->  y [S, O]
 *
 * The second layer's input is the first one's output after the activation; each layer keeps its own
 * reference and threshold and decides what propagates (specs/delta.md, "Composition"). Features drift
 * slowly with occasional scene cuts (SyntheticFeatureStream). The same chain is run densely on the same
 * backend (every step re-initialises each layer: y = W x + b from scratch) to report:
 *   - temporal sparsity: the fraction of each layer's inputs that fired per step;
 *   - the speedup over the dense chain, timed with stream marks (CUDA events / the CPU worker's clock);
 *   - the error of the delta chain against the dense chain (max abs and relative Frobenius).
 *
 * Run from a checkout after building (npm run build:ts and a native build): node examples/delta-stream.mjs
 *   [--steps N] [--streams S] [--theta1 t] [--theta2 t] [--device cpu|cuda] [--quick]
 */
import { Context, DeltaLinear, SyntheticFeatureStream, Tensor, toHalfBits } from 'sparse-kernels';

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : fallback;
}

const device = arg('--device', process.env.SPARSE_KERNELS_DEVICE ?? 'auto');
const ctx = new Context({ device });
const cuda = ctx.backend === 'cuda';
const quick = process.argv.includes('--quick');
// GPU: a Llama-7B-sized MLP (4096 -> 11008 -> 4096, fp16); CPU: a BERT-base-sized one (768 -> 3072 -> 768, float32).
const cfg = cuda
  ? { dtype: 'float16', K0: 4096, H: 11008, O: 4096, S: 4, T: quick ? 100 : 300 }
  : { dtype: 'float32', K0: 768, H: 3072, O: 768, S: 4, T: quick ? 60 : 200 };
cfg.T = Number(arg('--steps', cfg.T));
cfg.S = Number(arg('--streams', cfg.S));
const { dtype, K0, H, O, S, T } = cfg;
// Layer 1 sees unit-scale features (the spec's default 0.1); layer 2 sees GELU outputs (mostly in [0, 2]),
// where a smaller step keeps the chain's error low. Lower both for accuracy, raise them for sparsity.
const theta1 = Number(arg('--theta1', 0.1));
const theta2 = Number(arg('--theta2', 0.05));

/** Deterministic normals (mulberry32 + Box-Muller) for the weights. */
function normals(n, seed, scale) {
  let s = seed >>> 0;
  const u = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = scale * Math.sqrt(-2 * Math.log(Math.max(u(), 1e-12))) * Math.cos(2 * Math.PI * u());
  return out;
}

const upload = (v, dims) =>
  dtype === 'float32' ? Tensor.from(v, dims, { context: ctx, copy: true }) : Tensor.from(toHalfBits(v, dtype), dims, { dtype, context: ctx, copy: true });

function layer(inF, outF, seed, threshold) {
  const w = upload(normals(inF * outF, seed, 1 / Math.sqrt(inF)), [outF, inF]);
  const b = upload(normals(outF, seed + 1, 0.1), [outF]);
  const l = new DeltaLinear(w, b, { threshold });
  w.dispose();
  b.dispose();
  return l;
}

const l1 = layer(K0, H, 1, theta1);
const l2 = layer(H, O, 2, theta2);
const stream = ctx.stream;

// The frames, generated and uploaded up front so the timed loops only enqueue the layers.
const gen = new SyntheticFeatureStream({ features: K0, streams: S, seed: 42 });
const frames = [];
for (let t = 0; t < T; t++) frames.push(upload(gen.next(), [S, K0]));
await stream.synchronize();

/** One delta step of the chain; returns the final output and the per-layer fired counts. */
function deltaStep(s1, s2, x) {
  const a = l1.step(s1, x, { activation: 'gelu' });
  const b = l2.step(s2, a.y);
  a.y.dispose(); // freed after layer 2 has read it (stream order)
  return { y: b.y, active1: a.active, active2: b.active };
}

/** One dense step: each layer re-initialises (y = W x + b from scratch), the chain without temporal sparsity. */
function denseStep(s1, s2, x) {
  s1.reset();
  const a = l1.step(s1, x, { activation: 'gelu' });
  s2.reset();
  const b = l2.step(s2, a.y);
  a.y.dispose();
  a.active.dispose();
  b.active.dispose();
  return b.y;
}

// 1. Accuracy and sparsity (untimed): both chains on every frame, outputs compared step by step.
const d1 = l1.createState(S);
const d2 = l2.createState(S);
const e1 = l1.createState(S);
const e2 = l2.createState(S);
let fired1 = 0;
let fired2 = 0;
let rows = 0;
let maxAbs = 0;
let num = 0;
let den = 0;
const batch = 50;
for (let t0 = 0; t0 < T; t0 += batch) {
  const pending = [];
  for (let t = t0; t < Math.min(T, t0 + batch); t++) pending.push({ t, delta: deltaStep(d1, d2, frames[t]), dense: denseStep(e1, e2, frames[t]) });
  for (const { t, delta, dense } of pending) {
    const [y, yd, a1, a2] = await Promise.all([delta.y.toFloat32Array(), dense.toFloat32Array(), delta.active1.toArray(), delta.active2.toArray()]);
    for (let i = 0; i < y.length; i++) {
      const d = Math.abs(y[i] - yd[i]);
      maxAbs = Math.max(maxAbs, d);
      num += d * d;
      den += yd[i] * yd[i];
    }
    // Temporal sparsity over the steady state: the first frame initialises every stream densely.
    if (t > 0) {
      for (let s = 0; s < S; s++) {
        fired1 += a1[s];
        fired2 += a2[s];
      }
      rows += S;
    }
    for (const x of [delta.y, dense, delta.active1, delta.active2]) x.dispose();
  }
}

// 2. Timing: the same frames again from fresh states, marks around the whole sequence, best of 3.
async function timeChain(run) {
  let best = Infinity;
  for (let rep = 0; rep < 3; rep++) {
    const s1 = l1.createState(S);
    const s2 = l2.createState(S);
    await stream.synchronize();
    const a = stream.mark();
    for (let t = 0; t < T; t++) run(s1, s2, frames[t]);
    const b = stream.mark();
    await stream.synchronize();
    best = Math.min(best, b.elapsedSince(a));
    s1.dispose();
    s2.dispose();
  }
  return (best * 1e3) / T;
}
const deltaUs = await timeChain((s1, s2, x) => {
  const r = deltaStep(s1, s2, x);
  r.y.dispose();
  r.active1.dispose();
  r.active2.dispose();
});
const denseUs = await timeChain((s1, s2, x) => denseStep(s1, s2, x).dispose());

const fmt = (v, d = 3) => (Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(d));
console.log(`DeltaLinear(${K0} -> ${H}) + GELU -> DeltaLinear(${H} -> ${O}), ${dtype}, ${S} streams x ${T} frames on ${ctx.backend}`);
console.log(`synthetic features: ${gen.cuts} scene cuts; thresholds ${theta1} / ${theta2}`);
console.log('');
console.log(`  layer 1 fired fraction per step   ${fmt(fired1 / (rows * K0))}`);
console.log(`  layer 2 fired fraction per step   ${fmt(fired2 / (rows * H))}`);
console.log(`  delta chain                       ${fmt(deltaUs)} us/step`);
console.log(`  dense chain (same backend)        ${fmt(denseUs)} us/step`);
console.log(`  speedup                           ${fmt(denseUs / deltaUs)}x`);
console.log(`  error vs dense chain: max abs     ${maxAbs.toExponential(3)}`);
console.log(`  error vs dense chain: relative    ${Math.sqrt(num / den).toExponential(3)} (Frobenius over all steps)`);

for (const x of frames) x.dispose();
for (const s of [d1, d2, e1, e2]) s.dispose();
l1.dispose();
l2.dispose();
await ctx[Symbol.asyncDispose]();
