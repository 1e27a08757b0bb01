/**
 * Float64 reference of DeltaLinear (specs/delta.md, src/ops/delta.h), written from the spec, not from the
 * kernels.
 *
 * The fire decisions are float32 operations in the contract (q(x) = rint(x / q) * q rounded to float32,
 * d = q(x) - x_ref rounded to float32, |d| >= theta in float32), and they decide which inputs move their
 * reference: this model computes them with fround, which gives the float32 results exactly (a
 * double result of +, -, *, / rounded once more to float32 equals the float32 operation). Everything else
 * is float64: the reference keeps x_ref per stream and returns, per step,
 *   - yModel = act(W x_ref + b): what an exact implementation of the semantics returns;
 *   - dense  = W x + b (reference mode) or W q(x) + b (quantised mode): the dense layer on this input;
 *   - slack: a first-order worst-case bound on the float32 rounding of y_acc since its last dense
 *     (re)initialisation, updated every step as the spec's error model describes (float32 accumulation
 *     drift, O(steps * eps), reset by a refresh). Any summation order of n terms errs by at most
 *     (n + 1) u sum|term| (u = 2^-24, products included); a delta step adds its c fired terms to y_acc,
 *     and each term's delta d = q(x) - x_ref is itself rounded (one more u |d w|).
 *   - bound: sum_k |W[i, k]| theta_k, the spec's reference-mode error bound against the dense layer.
 */

export type DeltaRefMode = 'reference' | 'quantized';
export type DeltaRefActivation = 'none' | 'relu' | 'gelu' | 'silu';

const U32 = 2 ** -24;
// Local bindings: inside jest's sandbox every `Math.x` lookup goes through the sandbox global and is ~100x
// slower than a cached function, which made 10,000-step checks take half a minute.
const { abs, exp, floor, fround, sqrt, max } = Math;
const SQRT_PI = sqrt(Math.PI);
const SQRT1_2 = Math.SQRT1_2;

/** erfc(x) in float64: series for |x| < 3, continued fraction beyond (relative error ~1e-15). */
export function erfc(x: number): number {
  if (x !== x) return NaN;
  if (x < 0) return 2 - erfc(-x);
  if (x < 3) {
    let sum = 0;
    let term = x;
    for (let n = 0; n < 200; n++) {
      const t = term / (2 * n + 1);
      sum += t;
      if (abs(t) < 1e-17 * abs(sum)) break;
      term *= (-x * x) / (n + 1);
    }
    return 1 - (2 / SQRT_PI) * sum;
  }
  // erfc(x) = exp(-x^2) / sqrt(pi) / (x + 1/2 / (x + 1 / (x + 3/2 / (x + ...)))), evaluated bottom-up.
  let f = x;
  for (let n = 60; n >= 1; n--) f = x + n / 2 / f;
  return exp(-x * x) / SQRT_PI / f;
}

export function activate(v: number, act: DeltaRefActivation): number {
  switch (act) {
    case 'relu':
      return v !== v ? v : max(v, 0);
    case 'gelu':
      return 0.5 * v * erfc(-v * SQRT1_2);
    case 'silu':
      return v / (1 + exp(-v));
    default:
      return v;
  }
}

/** rint with ties to even (IEEE round-to-nearest-even), as std::rint / rintf in the default mode. */
export function rintEven(v: number): number {
  if (v !== v || v === Infinity || v === -Infinity) return v;
  const f = floor(v);
  const diff = v - f;
  const r = diff < 0.5 ? f : diff > 0.5 ? f + 1 : f % 2 === 0 ? f : f + 1;
  // rintf keeps the sign of a zero result: rint(-0.3) = -0 (so q(x) = -0 * q = -0, as the kernels store).
  return r === 0 && (v < 0 || Object.is(v, -0)) ? -0 : r;
}

/** q(x) of the contract, in float32: rint(x / q) * q (reference mode: x). */
export function quantize(x: number, mode: DeltaRefMode, q: number): number {
  if (mode === 'reference') return fround(x);
  const qf = fround(q);
  return fround(rintEven(fround(fround(x) / qf)) * qf);
}

export interface DeltaReferenceOptions {
  /** W [M, K] row-major, the values the layer stores (already rounded to the weight dtype). */
  w: ArrayLike<number>;
  M: number;
  K: number;
  /** [M] as float32 values, or undefined. */
  bias?: ArrayLike<number>;
  /** Scalar or per-channel [K]; ignored in quantised mode. */
  threshold: number | ArrayLike<number>;
  mode: DeltaRefMode;
  quantStep?: number;
  refreshEvery: number;
  streams: number;
}

export interface DeltaReferenceStep {
  /** [s] inputs fired per row (K for initialising rows). */
  active: Int32Array;
  /** [s, M] act(W x_ref + b) after the step. */
  yModel: Float64Array;
  /** [s, M] the pre-activation W x_ref + b after the step. */
  yAcc: Float64Array;
  /** [s, M] W q(x) + b: the dense layer on this step's (quantised) input. */
  dense: Float64Array;
  /** [s, M] worst-case float32 rounding of y_acc (pre-activation). */
  slack: Float64Array;
  /** [M] sum_k |W[i, k]| theta_k. */
  bound: Float64Array;
  /** [s] whether the row (re)initialised. */
  init: Uint8Array;
}

export class DeltaReference {
  readonly M: number;
  readonly K: number;
  readonly S: number;
  readonly xRef: Float32Array[];
  readonly initialized: Uint8Array;
  readonly steps: Int32Array;
  readonly slack: Float64Array[];
  readonly activeTotal: Float64Array;
  readonly stepsTotal: Float64Array;
  /** sum_k |W[i, k]| theta_k per output. */
  readonly bound: Float64Array;
  private readonly o: DeltaReferenceOptions;
  private readonly theta: Float32Array;
  private readonly w64: Float64Array;
  private readonly bias64: Float64Array | undefined;

  constructor(o: DeltaReferenceOptions) {
    this.o = o;
    this.M = o.M;
    this.K = o.K;
    this.S = o.streams;
    this.theta = new Float32Array(o.K);
    this.w64 = Float64Array.from(o.w);
    this.bias64 = o.bias ? Float64Array.from(o.bias) : undefined;
    for (let k = 0; k < o.K; k++) {
      this.theta[k] = o.mode === 'quantized' ? 0 : typeof o.threshold === 'number' ? o.threshold : o.threshold[k]!;
    }
    this.xRef = Array.from({ length: this.S }, () => new Float32Array(o.K));
    this.slack = Array.from({ length: this.S }, () => new Float64Array(o.M));
    this.initialized = new Uint8Array(this.S);
    this.steps = new Int32Array(this.S);
    this.activeTotal = new Float64Array(this.S);
    this.stepsTotal = new Float64Array(this.S);
    this.bound = new Float64Array(o.M);
    for (let i = 0; i < o.M; i++) {
      let b = 0;
      for (let k = 0; k < o.K; k++) b += abs(o.w[i * o.K + k]!) * (o.mode === 'quantized' ? 0 : this.theta[k]!);
      this.bound[i] = b;
    }
  }

  reset(ids?: ArrayLike<number>): void {
    if (ids === undefined) this.initialized.fill(0);
    else for (let i = 0; i < ids.length; i++) this.initialized[ids[i]!] = 0;
  }

  /** W v + b in float64 for one stream's vector v [K]; also sum |W v| + |b| per output in `abs`. */
  private affine(v: ArrayLike<number>, out: Float64Array, off: number, absOut?: Float64Array): void {
    const { M, K } = this;
    const w = this.w64;
    const bias = this.bias64;
    for (let i = 0; i < M; i++) {
      let acc = bias ? bias[i]! : 0;
      let a = bias ? abs(bias[i]!) : 0;
      const row = i * K;
      for (let k = 0; k < K; k++) {
        const t = w[row + k]! * v[k]!;
        acc += t;
        a += t < 0 ? -t : t;
      }
      out[off + i] = acc;
      if (absOut) absOut[i] = a;
    }
  }

  /**
   * One step: x [s, K] holds the values the kernel sees (already rounded to x's dtype), row r for stream
   * ids[r] (default r).
   */
  step(x: ArrayLike<number>, s: number, ids?: ArrayLike<number>, activation: DeltaRefActivation = 'none'): DeltaReferenceStep {
    const { M, K } = this;
    const { mode, refreshEvery } = this.o;
    const w = this.w64;
    const q = this.o.quantStep ?? 0;
    const res: DeltaReferenceStep = {
      active: new Int32Array(s),
      yModel: new Float64Array(s * M),
      yAcc: new Float64Array(s * M),
      dense: new Float64Array(s * M),
      slack: new Float64Array(s * M),
      bound: this.bound,
      init: new Uint8Array(s),
    };
    const xq = new Float64Array(K);
    const absSum = new Float64Array(M);
    for (let r = 0; r < s; r++) {
      const sid = ids ? ids[r]! : r;
      for (let k = 0; k < K; k++) xq[k] = quantize(x[r * K + k]!, mode, q);
      const xr = this.xRef[sid]!;
      const slack = this.slack[sid]!;
      const init = this.initialized[sid] === 0 || (refreshEvery > 0 && this.steps[sid]! >= refreshEvery);
      let count = 0;
      if (init) {
        for (let k = 0; k < K; k++) xr[k] = xq[k]!;
        count = K;
        this.affine(xr, res.yAcc, r * M, absSum);
        for (let i = 0; i < M; i++) slack[i] = (K + 2) * U32 * absSum[i]!;
        this.initialized[sid] = 1;
        this.steps[sid] = 0;
      } else {
        // |y_acc| before the update (exact model plus what it may have drifted), for the rounding bound.
        const before = new Float64Array(M);
        this.affine(xr, before, 0);
        const dAbs = new Float64Array(M);
        for (let k = 0; k < K; k++) {
          const xv = xq[k]!;
          const d = fround(xv - xr[k]!);
          const fire = xv !== xv || ((d < 0 ? -d : d) >= this.theta[k]! && d !== 0);
          if (!fire) continue;
          count++;
          for (let i = 0; i < M; i++) {
            const t = d * w[i * K + k]!;
            dAbs[i] = dAbs[i]! + (t < 0 ? -t : t);
          }
          xr[k] = xv;
        }
        for (let i = 0; i < M; i++) slack[i] = slack[i]! + (count + 3) * U32 * (abs(before[i]!) + slack[i]! + dAbs[i]!);
        this.affine(xr, res.yAcc, r * M);
        this.steps[sid] = this.steps[sid]! + 1;
      }
      res.active[r] = count;
      res.init[r] = init ? 1 : 0;
      this.activeTotal[sid] = this.activeTotal[sid]! + count;
      this.stepsTotal[sid] = this.stepsTotal[sid]! + 1;
      this.affine(xq, res.dense, r * M);
      for (let i = 0; i < M; i++) {
        res.slack[r * M + i] = slack[i]!;
        res.yModel[r * M + i] = activate(res.yAcc[r * M + i]!, activation);
      }
    }
    return res;
  }

  /** A deep copy (for snapshot tests). */
  clone(): DeltaReference {
    const c = new DeltaReference(this.o);
    for (let s = 0; s < this.S; s++) {
      c.xRef[s]!.set(this.xRef[s]!);
      c.slack[s]!.set(this.slack[s]!);
    }
    c.initialized.set(this.initialized);
    c.steps.set(this.steps);
    c.activeTotal.set(this.activeTotal);
    c.stepsTotal.set(this.stepsTotal);
    return c;
  }
}

/** Plain dense linear in float64: y [n, M] = act(x W^T + b). */
export function referenceLinear(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  n: number,
  M: number,
  K: number,
  bias?: ArrayLike<number>,
  activation: DeltaRefActivation = 'none',
): Float64Array {
  const y = new Float64Array(n * M);
  for (let r = 0; r < n; r++) {
    for (let i = 0; i < M; i++) {
      let acc = bias ? bias[i]! : 0;
      for (let k = 0; k < K; k++) acc += x[r * K + k]! * w[i * K + k]!;
      y[r * M + i] = activate(acc, activation);
    }
  }
  return y;
}
