/**
 * Shared pieces of the DeltaLinear tests: random layers (weights and bias never zero, rounded to their
 * dtype so the float64 reference sees exactly what the kernels see), random-walk inputs, batched
 * downloads, and the step-by-step comparison against test/reference/delta.ts.
 */
import type { Context } from '../../lib/context';
import { DeltaLinear, type DeltaLinearOptions, type DeltaState } from '../../lib/delta';
import { type FloatDType, fromHalfBits, toHalfBits } from '../../lib/dtype';
import { Tensor } from '../../lib/tensor';
import type { Rng } from '../helpers/random';
import { type DeltaRefActivation, DeltaReference, type DeltaReferenceStep } from '../reference/delta';

// Cached: inside jest's sandbox each `Math.x` lookup is ~100x slower than a local function (hot loops below).
const { abs, imul, log, sqrt, cos, max } = Math;
const TWO_PI = 2 * Math.PI;

/** The values as `dtype` stores them (round to nearest even). */
export function roundTo(v: Float32Array, dtype: FloatDType): Float32Array {
  return dtype === 'float32' ? v : fromHalfBits(toHalfBits(v, dtype), dtype);
}

/** Unit-scale relative rounding of a dtype (half an ulp at 1). */
export const UNIT: Record<FloatDType, number> = { float32: 2 ** -24, float16: 2 ** -11, bfloat16: 2 ** -8 };

/** Normal values scaled by `scale`, none of them (near) zero. */
export function nonZeroNormals(r: Rng, n: number, scale: number): Float32Array {
  const v = r.normals(n, scale);
  for (let i = 0; i < n; i++) if (abs(v[i]!) < 0.05 * scale) v[i] = v[i]! < 0 ? -0.5 * scale : 0.5 * scale;
  return v;
}

/**
 * Uniform values in +-[0.1, 1] * scale (never near zero), from a generator seeded by `r` with cached Math:
 * for the large weight matrices of the GPU tests (tens of millions of values), where Rng.normals inside
 * jest's sandbox would take minutes.
 */
export function fastNonZero(r: Rng, n: number, scale: number): Float32Array {
  let s = r.int(1, 2 ** 31);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = imul(t ^ (t >>> 15), t | 1);
    t ^= t + imul(t ^ (t >>> 7), t | 61);
    const u = ((t ^ (t >>> 14)) >>> 0) / 4294967296; // [0, 1)
    const m = 0.1 + 0.9 * (u < 0.5 ? 2 * u : 2 * u - 1);
    out[i] = (u < 0.5 ? -m : m) * scale;
  }
  return out;
}

export interface LayerSpec {
  M: number;
  K: number;
  S: number;
  dtype?: FloatDType;
  bias?: boolean;
  options?: DeltaLinearOptions;
}

export interface Built {
  layer: DeltaLinear;
  state: DeltaState;
  ref: DeltaReference;
  w: Float32Array;
  b: Float32Array | undefined;
  dtype: FloatDType;
}

/** A random layer (W ~ N(0, 1/K), bias ~ N(0, 0.5)), its state for S streams and the matching reference. */
export function buildLayer(ctx: Context, r: Rng, spec: LayerSpec): Built {
  const dtype = spec.dtype ?? 'float32';
  const { M, K, S } = spec;
  const w = roundTo(nonZeroNormals(r, M * K, 1 / sqrt(max(K, 1))), dtype);
  const b = spec.bias === false ? undefined : roundTo(nonZeroNormals(r, M, 0.5), dtype);
  const W = Tensor.from(w, [M, K], { dtype, context: ctx });
  const B = b ? Tensor.from(b, [M], { dtype, context: ctx }) : undefined;
  const layer = new DeltaLinear(W, B, spec.options);
  W.dispose(); // the layer holds its own transposed copy
  B?.dispose();
  const state = layer.createState(S);
  const o = spec.options ?? {};
  const th = o.threshold;
  const ref = new DeltaReference({
    w,
    M,
    K,
    bias: b,
    threshold: th === undefined ? 0.1 : th instanceof Tensor ? 0 : (th as number | Float32Array),
    mode: o.mode ?? 'reference',
    quantStep: o.quantStep,
    refreshEvery: o.refreshEvery ?? 0,
    streams: S,
  });
  return { layer, state, ref, w, b, dtype };
}

/**
 * A random walk per stream: x_{t+1} = x_t + sigma N(0, 1), started at N(0, 1). Its own mulberry32, seeded
 * from `r` (so fresh per run and replayable from the printed seed), with cached Math functions: 10,000
 * steps draw over a million normals.
 */
export class RandomWalk {
  readonly x: Float32Array;
  private s: number;
  constructor(
    r: Rng,
    readonly S: number,
    readonly K: number,
    private readonly sigma: number,
  ) {
    this.s = r.int(1, 2 ** 31);
    this.x = new Float32Array(S * K);
    for (let i = 0; i < this.x.length; i++) this.x[i] = this.normal();
  }
  private uniform(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = imul(t ^ (t >>> 15), t | 1);
    t ^= t + imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  private normal(): number {
    return sqrt(-2 * log(max(this.uniform(), 1e-12))) * cos(TWO_PI * this.uniform());
  }
  next(): Float32Array {
    for (let i = 0; i < this.x.length; i++) this.x[i] = this.x[i]! + this.sigma * this.normal();
    return this.x.slice();
  }
}

export interface Recorded {
  y: Tensor;
  active: Tensor;
  ref: DeltaReferenceStep;
  label: string;
  dtype: FloatDType;
}

/**
 * Checks recorded steps (downloaded together: one round trip per batch, not per step):
 *  - active equals the reference exactly (the fire decisions are exact float32 operations);
 *  - y is within the rounding slack of the model act(W x_ref + b), plus y's own rounding to its dtype;
 *  - with `bound`: |y - dense| <= sum_k |W[i,k]| theta_k + slack + rounding (the spec's error model).
 * Disposes the recorded tensors. Returns the largest |y - dense| / (bound + slack) seen (<= 1 when the
 * bound holds) for reporting.
 */
export async function checkRecorded(steps: Recorded[], M: number, opts: { bound?: boolean; activation?: DeltaRefActivation } = {}): Promise<number> {
  const ys = await Promise.all(steps.map((s) => s.y.toFloat32Array()));
  const acts = await Promise.all(steps.map((s) => s.active.toArray()));
  let worst = 0;
  steps.forEach((st, n) => {
    const y = ys[n]!;
    const active = acts[n]!;
    const ref = st.ref;
    const s = ref.active.length;
    for (let r = 0; r < s; r++) {
      if (active[r] !== ref.active[r]) throw new Error(`${st.label}: row ${r} fired ${active[r]} inputs, reference ${ref.active[r]}`);
    }
    const u = UNIT[st.dtype];
    for (let j = 0; j < s * M; j++) {
      const yv = y[j]!;
      const model = ref.yModel[j]!;
      const acc = ref.yAcc[j]!;
      if (model !== model || yv !== yv) {
        if ((model !== model) !== (yv !== yv)) throw new Error(`${st.label}: y[${j}] = ${yv}, model ${model}`);
        continue;
      }
      // Activations are evaluated in float32 (a few ulps of |y|, and of |y_acc| through their slope <= ~1.1).
      const cast = (opts.activation && opts.activation !== 'none' ? 8 * 2 ** -24 * (abs(acc) + 1e-30) : 0) + u * abs(model) + 1e-30;
      const slack = 1.2 * ref.slack[j]! + cast;
      const e = abs(yv - model);
      if (!(e <= slack)) {
        throw new Error(`${st.label}: y[${j}] = ${yv}, model ${model}, |diff| ${e.toExponential(3)} > rounding slack ${slack.toExponential(3)}`);
      }
      if (opts.bound) {
        const i = j % M;
        const lim = ref.bound[i]! + slack;
        const ed = abs(yv - ref.dense[j]!);
        if (!(ed <= lim)) {
          throw new Error(`${st.label}: y[${j}] = ${yv}, dense ${ref.dense[j]}, |diff| ${ed.toExponential(3)} > bound ${ref.bound[i]!.toExponential(3)} + slack ${slack.toExponential(3)}`);
        }
        if (lim > 0) worst = max(worst, ed / lim);
      }
    }
    st.y.dispose();
    st.active.dispose();
  });
  return worst;
}

/** The bits of a float tensor (exact comparisons). */
export async function bits(t: Tensor): Promise<Uint32Array | Uint16Array> {
  const a = await t.toArray();
  return a instanceof Float32Array ? new Uint32Array(a.buffer, a.byteOffset, a.length) : (a as Uint16Array);
}
